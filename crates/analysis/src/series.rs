//! Categories over time: traffic per time bin and category, Brownlee's active flows, distinct
//! hosts, and the inbound/outbound split.
//!
//! This module owns the binning. Categories are decided before: [`Categories`] holds ordered
//! rules (closures; the first that matches wins, then an explicit "other"), and the query layer
//! may instead compute the category column itself (from its compiled filters) and pass it in
//! [`SeriesInput::category`]. Built-in category sets are data: [`INTERNET2_APPS`],
//! [`BROWNLEE_CLASSES`], [`PROTOCOLS`].
//!
//! Per bin, category and direction a [`BinCell`] holds:
//! - bytes, packets and flows of the records that **start** in the bin (each record counted
//!   once, in one cell: ORACLES §2.9);
//! - active flows: a flow counts in **every** bin its `[start, end]` overlaps (Brownlee's
//!   active streams), clipped to the range;
//! - distinct sources and destinations of the records starting in the bin: exact up to
//!   [`EXACT_DISTINCT`] addresses, then a HyperLogLog sketch (flowdrill-model's `hll`).

use crate::{AnalysisError, Estimate, FastSet, Weights, check_len, fast_set};
use flowdrill_model::hll::{Hll, hash_u128};
use flowdrill_model::{Addr, Prefix, proto};

/// Ordered category rules over items of type `T`; first match wins, else "other".
/// A named predicate.
type Rule<T> = (String, Box<dyn Fn(&T) -> bool + Send + Sync>);

pub struct Categories<T: ?Sized> {
    rules: Vec<Rule<T>>,
    other: String,
}

impl<T: ?Sized> std::fmt::Debug for Categories<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Categories")
            .field("names", &self.names())
            .finish()
    }
}

impl<T: ?Sized> Categories<T> {
    /// No rules yet; whatever no rule matches goes to `other`.
    pub fn new(other: impl Into<String>) -> Categories<T> {
        Categories {
            rules: Vec::new(),
            other: other.into(),
        }
    }
    /// Adds a rule after the existing ones.
    pub fn rule(
        mut self,
        name: impl Into<String>,
        pred: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Categories<T> {
        self.rules.push((name.into(), Box::new(pred)));
        self
    }
    /// Category names in index order; the last is "other".
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rules.iter().map(|r| r.0.as_str()).collect();
        v.push(&self.other);
        v
    }
    /// Number of categories, "other" included.
    pub fn len(&self) -> usize {
        self.rules.len() + 1
    }
    /// Always false: "other" is always there.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The index of the first rule that matches, or of "other" (`len() − 1`).
    pub fn classify(&self, item: &T) -> u16 {
        self.rules
            .iter()
            .position(|(_, p)| p(item))
            .unwrap_or(self.rules.len()) as u16
    }
}

/// The ports of a record, as the built-in category sets see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PortKey {
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// A port-based category rule: matches when the protocol is one of `protos` (empty: any) and
/// either port lies in one of `ports` (empty: any port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRule {
    pub name: &'static str,
    pub protos: &'static [u8],
    pub ports: &'static [(u16, u16)],
}

impl PortRule {
    pub fn matches(&self, k: &PortKey) -> bool {
        (self.protos.is_empty() || self.protos.contains(&k.proto))
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&k.sport) || (lo..=hi).contains(&k.dport)))
    }
}

const T: &[u8] = &[proto::TCP];
const U: &[u8] = &[proto::UDP];
const TU: &[u8] = &[proto::TCP, proto::UDP];

/// The Internet2 weekly report's port-based applications, in match order; the rest is
/// "unidentified". P2P: BitTorrent 6881–6889, Gnutella 6346–6347, eDonkey 4662 and 4672,
/// FastTrack 1214, WinMX 6699.
pub const INTERNET2_APPS: &[PortRule] = &[
    PortRule {
        name: "http",
        protos: T,
        ports: &[(80, 81), (8080, 8080)],
    },
    PortRule {
        name: "https",
        protos: T,
        ports: &[(443, 443)],
    },
    PortRule {
        name: "mail",
        protos: T,
        ports: &[
            (25, 25),
            (109, 110),
            (143, 143),
            (220, 220),
            (465, 465),
            (585, 585),
            (587, 587),
            (993, 993),
        ],
    },
    PortRule {
        name: "dns",
        protos: TU,
        ports: &[(53, 53)],
    },
    PortRule {
        name: "ssh",
        protos: T,
        ports: &[(22, 22)],
    },
    PortRule {
        name: "ftp",
        protos: T,
        ports: &[(20, 21)],
    },
    PortRule {
        name: "nntp",
        protos: T,
        ports: &[(119, 119)],
    },
    PortRule {
        name: "ntp",
        protos: U,
        ports: &[(123, 123)],
    },
    PortRule {
        name: "p2p",
        protos: TU,
        ports: &[
            (6881, 6889),
            (6346, 6347),
            (4662, 4662),
            (4672, 4672),
            (1214, 1214),
            (6699, 6699),
        ],
    },
];
/// The name of what no Internet2 rule matches.
pub const INTERNET2_OTHER: &str = "unidentified";

/// Brownlee's traffic classes, in match order; the rest is "other".
pub const BROWNLEE_CLASSES: &[PortRule] = &[
    PortRule {
        name: "web",
        protos: T,
        ports: &[(80, 80), (8080, 8080)],
    },
    PortRule {
        name: "SSL",
        protos: T,
        ports: &[(443, 443)],
    },
    PortRule {
        name: "non-web TCP",
        protos: T,
        ports: &[],
    },
    PortRule {
        name: "UDP",
        protos: U,
        ports: &[],
    },
];

/// One category per common protocol; the rest is "other".
pub const PROTOCOLS: &[PortRule] = &[
    PortRule {
        name: "TCP",
        protos: T,
        ports: &[],
    },
    PortRule {
        name: "UDP",
        protos: U,
        ports: &[],
    },
    PortRule {
        name: "ICMP",
        protos: &[proto::ICMP],
        ports: &[],
    },
    PortRule {
        name: "ICMP6",
        protos: &[proto::ICMP6],
        ports: &[],
    },
    PortRule {
        name: "GRE",
        protos: &[proto::GRE],
        ports: &[],
    },
    PortRule {
        name: "ESP",
        protos: &[proto::ESP],
        ports: &[],
    },
];

impl Categories<PortKey> {
    /// Categories from a table of port rules.
    pub fn from_port_rules(rules: &'static [PortRule], other: &str) -> Categories<PortKey> {
        rules.iter().fold(Categories::new(other), |c, r| {
            c.rule(r.name, move |k| r.matches(k))
        })
    }
    pub fn internet2() -> Categories<PortKey> {
        Categories::from_port_rules(INTERNET2_APPS, INTERNET2_OTHER)
    }
    pub fn brownlee() -> Categories<PortKey> {
        Categories::from_port_rules(BROWNLEE_CLASSES, "other")
    }
    pub fn protocols() -> Categories<PortKey> {
        Categories::from_port_rules(PROTOCOLS, "other")
    }
}

/// Where a record goes relative to the local networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// No split asked for.
    All,
    /// From outside to a local address.
    Inbound,
    /// From a local address to outside.
    Outbound,
    /// Local to local.
    Internal,
    /// Neither end local.
    Transit,
}

/// The local networks that define inbound and outbound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalNets {
    pub prefixes: Vec<Prefix>,
}

impl LocalNets {
    pub fn is_local(&self, a: u128) -> bool {
        self.prefixes.iter().any(|p| p.contains(Addr(a)))
    }
    pub fn direction(&self, src: u128, dst: u128) -> Direction {
        match (self.is_local(src), self.is_local(dst)) {
            (false, true) => Direction::Inbound,
            (true, false) => Direction::Outbound,
            (true, true) => Direction::Internal,
            (false, false) => Direction::Transit,
        }
    }
}

/// Distinct addresses are counted exactly up to this many per cell, then sketched.
pub const EXACT_DISTINCT: usize = 4096;

/// A distinct count: an exact set while small, a HyperLogLog sketch beyond.
#[derive(Clone, Debug)]
pub enum Distinct {
    Exact(FastSet<u128>),
    Sketch(Hll),
}

impl Default for Distinct {
    fn default() -> Distinct {
        Distinct::Exact(fast_set(0))
    }
}

/// The sketch of a set of addresses.
fn sketch_of(s: &FastSet<u128>) -> Hll {
    let mut h = Hll::new();
    for &x in s.iter() {
        h.insert_hash(hash_u128(x));
    }
    h
}

impl Distinct {
    pub fn insert(&mut self, a: u128) {
        match self {
            Distinct::Exact(s) => {
                s.insert(a);
                if s.len() > EXACT_DISTINCT {
                    *self = Distinct::Sketch(sketch_of(s));
                }
            }
            Distinct::Sketch(h) => h.insert_hash(hash_u128(a)),
        }
    }
    /// Adds the addresses `other` counts (a sketch from a set, or the union of two).
    pub fn merge(&mut self, other: Distinct) {
        match other {
            Distinct::Exact(s) => s.into_iter().for_each(|a| self.insert(a)),
            Distinct::Sketch(h) => {
                let mut mine = match std::mem::take(self) {
                    Distinct::Sketch(m) => m,
                    Distinct::Exact(s) => sketch_of(&s),
                };
                // Every sketch here is `Hll::new()`'s: the precisions agree.
                let _ = mine.merge(&h);
                *self = Distinct::Sketch(mine);
            }
        }
    }
    /// The count (exact, or the sketch's estimate).
    pub fn count(&self) -> f64 {
        match self {
            Distinct::Exact(s) => s.len() as f64,
            Distinct::Sketch(h) => h.estimate(),
        }
    }
    pub fn is_exact(&self) -> bool {
        matches!(self, Distinct::Exact(_))
    }
}

/// What a series is cut into.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSpec {
    /// Start of the first bin, Unix ms.
    pub start_ms: u64,
    /// End of the range (exclusive), Unix ms.
    pub end_ms: u64,
    /// Bin width, ms; at least 1000.
    pub bin_ms: u64,
    /// Number of categories (the category column's values are below it).
    pub categories: usize,
    /// Split by direction relative to these networks (`None`: no split).
    pub local: Option<LocalNets>,
}

/// The columns of a series' input; every column has the length of `start_ms`.
#[derive(Clone, Copy, Debug)]
pub struct SeriesInput<'a> {
    pub start_ms: &'a [u64],
    pub end_ms: &'a [u64],
    /// Each record's category index (see [`Categories::classify`]).
    pub category: &'a [u16],
    pub bytes: Weights<'a>,
    pub packets: Weights<'a>,
    /// Flow weights (1 per record for unsampled flows).
    pub flows: Weights<'a>,
    /// Source and destination addresses: needed for distinct counts and the direction split.
    pub src: Option<&'a [u128]>,
    pub dst: Option<&'a [u128]>,
}

/// One bin × category × direction.
#[derive(Clone, Debug, Default)]
pub struct BinCell {
    pub bytes: Estimate,
    pub packets: Estimate,
    pub flows: Estimate,
    /// Σ flow weights of flows active during the bin.
    pub active_flows: f64,
    pub sources: Distinct,
    pub destinations: Distinct,
}

/// The largest number of cells (bins × categories × directions) a series may have.
pub const MAX_CELLS: u64 = 20_000_000;

/// The result: `cells[(bin · categories + category) · directions.len() + direction]`.
#[derive(Clone, Debug)]
pub struct Series {
    pub start_ms: u64,
    pub bin_ms: u64,
    pub bins: usize,
    pub categories: usize,
    pub directions: Vec<Direction>,
    pub cells: Vec<BinCell>,
}

impl Series {
    pub fn cell(&self, bin: usize, category: usize, direction: usize) -> &BinCell {
        &self.cells[(bin * self.categories + category) * self.directions.len() + direction]
    }
    /// Start of bin `b`, Unix ms.
    pub fn bin_start(&self, b: usize) -> u64 {
        self.start_ms + b as u64 * self.bin_ms
    }
}

fn add(e: &mut Estimate, w: Weights<'_>, i: usize) {
    e.value += w.weight[i];
    e.variance += w.var(i);
}

fn add_estimate(e: &mut Estimate, o: Estimate) {
    e.value += o.value;
    e.variance += o.variance;
}

/// Bins `input` per `spec`: [`SeriesAcc`] with one part.
pub fn series(spec: &SeriesSpec, input: SeriesInput<'_>) -> Result<Series, AnalysisError> {
    let mut acc = SeriesAcc::new(spec)?;
    acc.add(input)?;
    Ok(acc.finish())
}

/// A series being built: records are added in parts as they are read ([`SeriesAcc::add`]),
/// parts built apart (one per worker) are merged ([`SeriesAcc::merge`]), and
/// [`SeriesAcc::finish`] gives the series. Memory holds the cells, not the records.
#[derive(Clone, Debug)]
pub struct SeriesAcc {
    spec: SeriesSpec,
    bins: usize,
    categories: usize,
    directions: Vec<Direction>,
    cells: Vec<BinCell>,
    /// Active flows by difference array over bins: +w at a flow's first bin, −w after its
    /// last; summed by [`SeriesAcc::finish`].
    delta: Vec<f64>,
    /// The latest start of a record added (see [`SeriesAcc::window`]).
    last_start: Option<u64>,
}

impl SeriesAcc {
    /// An empty series over `spec`'s bins.
    pub fn new(spec: &SeriesSpec) -> Result<SeriesAcc, AnalysisError> {
        if spec.bin_ms < 1000 {
            return Err(AnalysisError::BinTooNarrow(spec.bin_ms));
        }
        if spec.end_ms <= spec.start_ms {
            return Err(AnalysisError::EmptyRange {
                start: spec.start_ms,
                end: spec.end_ms,
            });
        }
        let categories = spec.categories.max(1);
        let directions = match spec.local {
            Some(_) => vec![
                Direction::Inbound,
                Direction::Outbound,
                Direction::Internal,
                Direction::Transit,
            ],
            None => vec![Direction::All],
        };
        let nd = directions.len();
        let bins = (spec.end_ms - spec.start_ms).div_ceil(spec.bin_ms);
        let cells_wanted = bins.saturating_mul((categories * nd) as u64);
        if cells_wanted > MAX_CELLS {
            return Err(AnalysisError::TooManyBins {
                bins,
                max: MAX_CELLS / (categories * nd) as u64,
            });
        }
        let bins = bins as usize;
        Ok(SeriesAcc {
            spec: spec.clone(),
            bins,
            categories,
            directions,
            cells: vec![BinCell::default(); bins * categories * nd],
            delta: vec![0.0; (bins + 1) * categories * nd],
            last_start: None,
        })
    }

    /// The bins this series is cut into.
    pub fn spec(&self) -> &SeriesSpec {
        &self.spec
    }

    /// Adds records.
    pub fn add(&mut self, input: SeriesInput<'_>) -> Result<(), AnalysisError> {
        let n = input.start_ms.len();
        check_len("end_ms", n, input.end_ms.len())?;
        check_len("category", n, input.category.len())?;
        input.bytes.check(n)?;
        input.packets.check(n)?;
        input.flows.check(n)?;
        if let Some(s) = input.src {
            check_len("src", n, s.len())?;
        }
        if let Some(d) = input.dst {
            check_len("dst", n, d.len())?;
        }
        let spec = &self.spec;
        if spec.local.is_some() && (input.src.is_none() || input.dst.is_none()) {
            return Err(AnalysisError::MissingColumn(
                "src and dst, for the direction split",
            ));
        }
        let cats = self.categories;
        if let Some((record, &index)) = input
            .category
            .iter()
            .enumerate()
            .find(|(_, c)| **c as usize >= cats)
        {
            return Err(AnalysisError::BadCategory {
                record,
                index,
                count: cats,
            });
        }
        let nd = self.directions.len();
        let bin_of = |t: u64| ((t - spec.start_ms) / spec.bin_ms) as usize;
        if let Some(&s) = input.start_ms.iter().max() {
            self.last_start = self.last_start.max(Some(s));
        }
        for i in 0..n {
            let (s, e) = (input.start_ms[i], input.end_ms[i].max(input.start_ms[i]));
            let c = input.category[i] as usize;
            let d = match (&spec.local, input.src, input.dst) {
                (Some(l), Some(src), Some(dst)) => self
                    .directions
                    .iter()
                    .position(|x| *x == l.direction(src[i], dst[i]))
                    .expect("every direction listed"),
                _ => 0,
            };
            let slot = |b: usize| (b * cats + c) * nd + d;
            if e >= spec.start_ms && s < spec.end_ms {
                let first = bin_of(s.max(spec.start_ms));
                let last = bin_of(e.min(spec.end_ms - 1));
                self.delta[slot(first)] += input.flows.weight[i];
                self.delta[slot(last + 1)] -= input.flows.weight[i];
            }
            if s < spec.start_ms || s >= spec.end_ms {
                continue;
            }
            let cell = &mut self.cells[slot(bin_of(s))];
            add(&mut cell.bytes, input.bytes, i);
            add(&mut cell.packets, input.packets, i);
            add(&mut cell.flows, input.flows, i);
            if let Some(src) = input.src {
                cell.sources.insert(src[i]);
            }
            if let Some(dst) = input.dst {
                cell.destinations.insert(dst[i]);
            }
        }
        Ok(())
    }

    /// Adds the records of `other`, a series over the same bins.
    pub fn merge(&mut self, other: SeriesAcc) -> Result<(), AnalysisError> {
        if other.spec != self.spec {
            return Err(AnalysisError::Internal(
                "series parts over different bins merged",
            ));
        }
        for (a, b) in self.cells.iter_mut().zip(other.cells) {
            add_estimate(&mut a.bytes, b.bytes);
            add_estimate(&mut a.packets, b.packets);
            add_estimate(&mut a.flows, b.flows);
            a.sources.merge(b.sources);
            a.destinations.merge(b.destinations);
        }
        for (a, b) in self.delta.iter_mut().zip(other.delta) {
            *a += b;
        }
        self.last_start = self.last_start.max(other.last_start);
        Ok(())
    }

    /// The series over `spec`, a window of this one's bins: the same width, starting on one
    /// of its bins and ending within them, and no record added starts at or after its end.
    /// Then every cell and every bin's active flows are what a series over `spec` of the
    /// same records counts (records before the window add to its active flows the same way).
    /// `None` when `spec` is no such window.
    pub fn window(self, spec: &SeriesSpec) -> Option<Series> {
        let mine = &self.spec;
        if spec.bin_ms != mine.bin_ms
            || spec.local != mine.local
            || spec.categories.max(1) != self.categories
            || spec.start_ms < mine.start_ms
            || !(spec.start_ms - mine.start_ms).is_multiple_of(mine.bin_ms)
            || spec.end_ms <= spec.start_ms
            || spec.end_ms > mine.end_ms
            || self.last_start.is_some_and(|s| s >= spec.end_ms)
        {
            return None;
        }
        let first = ((spec.start_ms - mine.start_ms) / mine.bin_ms) as usize;
        let bins = (spec.end_ms - spec.start_ms).div_ceil(spec.bin_ms) as usize;
        let width = self.categories * self.directions.len();
        let whole = self.finish();
        let mut cells = whole.cells;
        cells.truncate((first + bins) * width);
        cells.drain(..first * width);
        Some(Series {
            start_ms: spec.start_ms,
            bins,
            cells,
            ..whole
        })
    }

    /// The series.
    pub fn finish(mut self) -> Series {
        let width = self.categories * self.directions.len();
        for k in 0..width {
            let mut run = 0.0;
            for b in 0..self.bins {
                run += self.delta[b * width + k];
                self.cells[b * width + k].active_flows = run;
            }
        }
        Series {
            start_ms: self.spec.start_ms,
            bin_ms: self.spec.bin_ms,
            bins: self.bins,
            categories: self.categories,
            directions: self.directions,
            cells: self.cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{clustered_addrs, rng, weights};
    use rand::RngExt;

    struct Case {
        start: Vec<u64>,
        end: Vec<u64>,
        keys: Vec<PortKey>,
        bytes: Vec<f64>,
        packets: Vec<f64>,
        flows: Vec<f64>,
        src: Vec<u128>,
        dst: Vec<u128>,
    }

    fn random_case(seed: u64) -> Case {
        let mut r = rng(seed);
        let n = r.random_range(0..300);
        let start: Vec<u64> = (0..n).map(|_| r.random_range(0..100_000u64)).collect();
        let end = start
            .iter()
            .map(|&s| s + [0, 500, 5_000, 40_000][r.random_range(0..4)])
            .collect();
        let keys = (0..n)
            .map(|_| PortKey {
                proto: [6u8, 17, 1, 47][r.random_range(0..4)],
                sport: [80u16, 443, 53, 25, 6881, 40000][r.random_range(0..6)],
                dport: [80u16, 123, 50000, 22][r.random_range(0..4)],
            })
            .collect();
        Case {
            start,
            end,
            keys,
            bytes: weights(&mut r, n),
            packets: weights(&mut r, n),
            flows: vec![1.0; n],
            src: clustered_addrs(&mut r, n, true),
            dst: clustered_addrs(&mut r, n, false),
        }
    }

    #[test]
    fn categories_partition_each_bin_and_count_each_record_once() {
        // ORACLES §2.9 against a naive per-bin total.
        for seed in 0..100 {
            let c = random_case(seed);
            let mut r = rng(seed + 7);
            let cats = [
                Categories::internet2(),
                Categories::brownlee(),
                Categories::protocols(),
            ]
            .into_iter()
            .nth(seed as usize % 3)
            .unwrap();
            let category: Vec<u16> = c.keys.iter().map(|k| cats.classify(k)).collect();
            let local = LocalNets {
                prefixes: vec![Prefix::new(Addr(c.src.first().copied().unwrap_or(0)), 16)],
            };
            let spec = SeriesSpec {
                start_ms: r.random_range(0..20_000),
                end_ms: r.random_range(60_000..120_000),
                bin_ms: [1000, 7000, 60_000][r.random_range(0..3)],
                categories: cats.len(),
                local: if seed.is_multiple_of(2) {
                    Some(local)
                } else {
                    None
                },
            };
            let s = series(
                &spec,
                SeriesInput {
                    start_ms: &c.start,
                    end_ms: &c.end,
                    category: &category,
                    bytes: Weights::exact(&c.bytes),
                    packets: Weights::exact(&c.packets),
                    flows: Weights::exact(&c.flows),
                    src: Some(&c.src),
                    dst: Some(&c.dst),
                },
            )
            .unwrap();
            let mut counted = 0.0;
            for b in 0..s.bins {
                let (lo, hi) = (s.bin_start(b), (s.bin_start(b) + s.bin_ms).min(spec.end_ms));
                let in_bin: Vec<usize> = (0..c.start.len())
                    .filter(|&i| c.start[i] >= lo && c.start[i] < hi)
                    .collect();
                let mut sum = 0.0;
                let mut active = 0.0;
                for k in 0..s.categories {
                    for d in 0..s.directions.len() {
                        sum += s.cell(b, k, d).bytes.value;
                        active += s.cell(b, k, d).active_flows;
                        // Each record in its own category's cell only.
                        let want: f64 = in_bin
                            .iter()
                            .filter(|&&i| category[i] as usize == k)
                            .filter(|&&i| match &spec.local {
                                Some(l) => l.direction(c.src[i], c.dst[i]) == s.directions[d],
                                None => true,
                            })
                            .map(|&i| c.packets[i])
                            .sum();
                        assert_eq!(s.cell(b, k, d).packets.value, want, "seed {seed}");
                    }
                }
                let want: f64 = in_bin.iter().map(|&i| c.bytes[i]).sum();
                assert_eq!(sum, want, "seed {seed} bin {b}");
                // Active: flows whose [start, end] overlaps the bin.
                let want_active = (0..c.start.len())
                    .filter(|&i| c.start[i] < hi && c.end[i] >= lo)
                    .count() as f64;
                assert_eq!(active, want_active, "seed {seed} bin {b}");
                counted += sum;
            }
            let in_range: f64 = (0..c.start.len())
                .filter(|&i| c.start[i] >= spec.start_ms && c.start[i] < spec.end_ms)
                .map(|i| c.bytes[i])
                .sum();
            assert_eq!(counted, in_range, "seed {seed}");
        }
    }

    #[test]
    fn builtin_sets_classify_known_ports() {
        let i2 = Categories::internet2();
        let name = |c: &Categories<PortKey>, p, s, d| {
            c.names()[c.classify(&PortKey {
                proto: p,
                sport: s,
                dport: d,
            }) as usize]
                .to_string()
        };
        assert_eq!(name(&i2, 6, 51000, 8080), "http");
        assert_eq!(name(&i2, 6, 443, 51000), "https");
        assert_eq!(name(&i2, 6, 40000, 587), "mail");
        assert_eq!(name(&i2, 17, 53, 3000), "dns");
        assert_eq!(name(&i2, 17, 3000, 123), "ntp");
        assert_eq!(name(&i2, 6, 3000, 123), "unidentified");
        assert_eq!(name(&i2, 6, 6881, 3000), "p2p");
        assert_eq!(name(&i2, 1, 0, 0), "unidentified");
        let b = Categories::brownlee();
        assert_eq!(name(&b, 6, 80, 3000), "web");
        assert_eq!(name(&b, 6, 3000, 443), "SSL");
        assert_eq!(name(&b, 6, 3000, 25), "non-web TCP");
        assert_eq!(name(&b, 17, 3000, 443), "UDP");
        assert_eq!(name(&b, 47, 0, 0), "other");
        assert_eq!(name(&Categories::protocols(), 58, 0, 0), "ICMP6");
        // First match wins: a closure rule set.
        let c = Categories::new("rest")
            .rule("small", |x: &u32| *x < 10)
            .rule("even", |x: &u32| x.is_multiple_of(2));
        assert_eq!(c.names(), ["small", "even", "rest"]);
        assert_eq!(
            [c.classify(&4), c.classify(&12), c.classify(&13)],
            [0, 1, 2]
        );
    }

    /// A series added in parts and merged, or cut to a window of its bins, is the series of
    /// all the records over those bins (as the query layer builds it: one part per worker
    /// and chunk, over the bins of every selected file, then cut to the matching records'
    /// range).
    #[test]
    fn parts_merged_and_windows_equal_one_series() {
        let same = |a: &Series, b: &Series, what: &str| {
            assert_eq!(
                (a.start_ms, a.bin_ms, a.bins, a.categories),
                (b.start_ms, b.bin_ms, b.bins, b.categories),
                "{what}"
            );
            assert_eq!(a.directions, b.directions, "{what}");
            for (x, y) in a.cells.iter().zip(&b.cells) {
                assert_eq!(x.bytes, y.bytes, "{what}");
                assert_eq!(x.packets, y.packets, "{what}");
                assert_eq!(x.flows, y.flows, "{what}");
                assert_eq!(x.active_flows, y.active_flows, "{what}");
                for (d, e) in [(&x.sources, &y.sources), (&x.destinations, &y.destinations)] {
                    assert_eq!(
                        (d.count(), d.is_exact()),
                        (e.count(), e.is_exact()),
                        "{what}"
                    );
                }
            }
        };
        for seed in 0..80 {
            let mut c = random_case(seed);
            let mut r = rng(seed + 11);
            if seed % 4 == 3 {
                // Enough distinct sources that some cells turn to sketches, in some parts.
                let n = 6000;
                let keys = c.keys.clone();
                c.start = (0..n).map(|_| r.random_range(0..100_000u64)).collect();
                c.end = c.start.iter().map(|&s| s + 700).collect();
                c.keys = (0..n).map(|i| keys[i % keys.len().max(1)]).collect();
                c.src = (0..n as u128).map(|a| a * 7919 + seed as u128).collect();
                c.dst = clustered_addrs(&mut r, n, false);
                c.bytes = weights(&mut r, n);
                c.packets = weights(&mut r, n);
                c.flows = vec![1.0; n];
                if keys.is_empty() {
                    continue;
                }
            }
            let n = c.start.len();
            let cats = Categories::brownlee();
            let category: Vec<u16> = c.keys.iter().map(|k| cats.classify(k)).collect();
            let variance: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
            let spec = SeriesSpec {
                start_ms: r.random_range(0..10) * 1000,
                end_ms: r.random_range(60_000..150_000),
                bin_ms: [1000, 5000, 10_000][r.random_range(0..3)],
                categories: cats.len(),
                local: seed.is_multiple_of(2).then(|| LocalNets {
                    prefixes: vec![Prefix::new(Addr(c.src.first().copied().unwrap_or(0)), 8)],
                }),
            };
            let input = |lo: usize, hi: usize| SeriesInput {
                start_ms: &c.start[lo..hi],
                end_ms: &c.end[lo..hi],
                category: &category[lo..hi],
                bytes: Weights::sampled(&c.bytes[lo..hi], &variance[lo..hi]),
                packets: Weights::exact(&c.packets[lo..hi]),
                flows: Weights::exact(&c.flows[lo..hi]),
                src: Some(&c.src[lo..hi]),
                dst: Some(&c.dst[lo..hi]),
            };
            let whole = series(&spec, input(0, n)).unwrap();
            // Parts: each worker's run of records, in chunks, merged in order.
            let workers = r.random_range(1..5);
            let mut cuts: Vec<usize> = (0..workers - 1).map(|_| r.random_range(0..=n)).collect();
            cuts.extend([0, n]);
            cuts.sort_unstable();
            let mut merged: Option<SeriesAcc> = None;
            for w in cuts.windows(2) {
                let mut acc = SeriesAcc::new(&spec).unwrap();
                let mut at = w[0];
                while at < w[1] {
                    let to = (at + r.random_range(1..200)).min(w[1]);
                    acc.add(input(at, to)).unwrap();
                    at = to;
                }
                match &mut merged {
                    None => merged = Some(acc),
                    Some(m) => m.merge(acc).unwrap(),
                }
            }
            same(
                &merged.unwrap().finish(),
                &whole,
                &format!("seed {seed}: parts"),
            );
            // A window of the bins: the series over that range of the records that start
            // before its end (the query layer's records all do).
            let first = r.random_range(0..whole.bins);
            let bins = r.random_range(1..=whole.bins - first);
            let sub = SeriesSpec {
                start_ms: whole.bin_start(first),
                end_ms: (whole.bin_start(first + bins) - r.random_range(0..spec.bin_ms))
                    .max(whole.bin_start(first) + 1)
                    .min(spec.end_ms),
                ..spec.clone()
            };
            let keep: Vec<usize> = (0..n).filter(|&i| c.start[i] < sub.end_ms).collect();
            let pick = |v: &[u64]| -> Vec<u64> { keep.iter().map(|&i| v[i]).collect() };
            let pickf = |v: &[f64]| -> Vec<f64> { keep.iter().map(|&i| v[i]).collect() };
            let pick_addr = |v: &[u128]| -> Vec<u128> { keep.iter().map(|&i| v[i]).collect() };
            let (ks, ke) = (pick(&c.start), pick(&c.end));
            let kc: Vec<u16> = keep.iter().map(|&i| category[i]).collect();
            let (kb, kv, kp, kf) = (
                pickf(&c.bytes),
                pickf(&variance),
                pickf(&c.packets),
                pickf(&c.flows),
            );
            let (kr, kd) = (pick_addr(&c.src), pick_addr(&c.dst));
            let kept = SeriesInput {
                start_ms: &ks,
                end_ms: &ke,
                category: &kc,
                bytes: Weights::sampled(&kb, &kv),
                packets: Weights::exact(&kp),
                flows: Weights::exact(&kf),
                src: Some(&kr),
                dst: Some(&kd),
            };
            let want = series(&sub, kept).unwrap();
            let mut acc = SeriesAcc::new(&spec).unwrap();
            acc.add(kept).unwrap();
            let got = acc.clone().window(&sub).unwrap();
            same(&got, &want, &format!("seed {seed}: window"));
            // Another width, or a record at or past its end, and it is no window.
            let wider = SeriesSpec {
                bin_ms: spec.bin_ms * 2,
                ..sub.clone()
            };
            assert!(acc.window(&wider).is_none());
            let mut all = SeriesAcc::new(&spec).unwrap();
            all.add(input(0, n)).unwrap();
            assert_eq!(
                all.window(&sub).is_some(),
                c.start.iter().all(|&t| t < sub.end_ms),
                "seed {seed}"
            );
        }
        // Parts over other bins are not merged.
        let spec = SeriesSpec {
            start_ms: 0,
            end_ms: 10_000,
            bin_ms: 1000,
            categories: 2,
            local: None,
        };
        let mut a = SeriesAcc::new(&spec).unwrap();
        let b = SeriesAcc::new(&SeriesSpec {
            bin_ms: 2000,
            ..spec
        })
        .unwrap();
        assert!(matches!(a.merge(b), Err(AnalysisError::Internal(_))));
    }

    #[test]
    fn distinct_counts_are_exact_then_sketched() {
        let mut d = Distinct::default();
        for a in 0..1000u128 {
            d.insert(a % 500);
        }
        assert!(d.is_exact());
        assert_eq!(d.count(), 500.0);
        for a in 0..100_000u128 {
            d.insert(a);
        }
        assert!(!d.is_exact());
        // p = 12: 1.6 % standard error; 5 % is over 3 standard errors.
        assert!((d.count() - 100_000.0).abs() < 5_000.0, "{}", d.count());
    }

    #[test]
    fn bad_specs_are_refused() {
        let input = SeriesInput {
            start_ms: &[0],
            end_ms: &[0],
            category: &[3],
            bytes: Weights::exact(&[1.0]),
            packets: Weights::exact(&[1.0]),
            flows: Weights::exact(&[1.0]),
            src: None,
            dst: None,
        };
        let spec = SeriesSpec {
            start_ms: 0,
            end_ms: 10_000,
            bin_ms: 1000,
            categories: 2,
            local: None,
        };
        assert!(matches!(
            series(&spec, input),
            Err(AnalysisError::BadCategory { index: 3, .. })
        ));
        let split = SeriesSpec {
            local: Some(LocalNets::default()),
            categories: 4,
            ..spec.clone()
        };
        assert!(matches!(
            series(&split, input),
            Err(AnalysisError::MissingColumn(_))
        ));
        let narrow = SeriesSpec {
            bin_ms: 999,
            ..spec.clone()
        };
        assert_eq!(
            series(&narrow, input).unwrap_err(),
            AnalysisError::BinTooNarrow(999)
        );
        let empty = SeriesSpec {
            end_ms: 0,
            ..spec.clone()
        };
        assert!(matches!(
            series(&empty, input),
            Err(AnalysisError::EmptyRange { .. })
        ));
        let huge = SeriesSpec {
            end_ms: u64::MAX,
            categories: 4,
            ..spec
        };
        assert!(matches!(
            series(&huge, input),
            Err(AnalysisError::TooManyBins { .. })
        ));
    }
}
