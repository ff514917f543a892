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

impl Distinct {
    pub fn insert(&mut self, a: u128) {
        match self {
            Distinct::Exact(s) => {
                s.insert(a);
                if s.len() > EXACT_DISTINCT {
                    let mut h = Hll::new();
                    for &x in s.iter() {
                        h.insert_hash(hash_u128(x));
                    }
                    *self = Distinct::Sketch(h);
                }
            }
            Distinct::Sketch(h) => h.insert_hash(hash_u128(a)),
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

/// Bins `input` per `spec`.
pub fn series(spec: &SeriesSpec, input: SeriesInput<'_>) -> Result<Series, AnalysisError> {
    let n = input.start_ms.len();
    if spec.bin_ms < 1000 {
        return Err(AnalysisError::BinTooNarrow(spec.bin_ms));
    }
    if spec.end_ms <= spec.start_ms {
        return Err(AnalysisError::EmptyRange {
            start: spec.start_ms,
            end: spec.end_ms,
        });
    }
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
    if spec.local.is_some() && (input.src.is_none() || input.dst.is_none()) {
        return Err(AnalysisError::MissingColumn(
            "src and dst, for the direction split",
        ));
    }
    let cats = spec.categories.max(1);
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
    let cells_wanted = bins.saturating_mul((cats * nd) as u64);
    if cells_wanted > MAX_CELLS {
        return Err(AnalysisError::TooManyBins {
            bins,
            max: MAX_CELLS / (cats * nd) as u64,
        });
    }
    let bins = bins as usize;
    let mut cells = vec![BinCell::default(); bins * cats * nd];
    // Active flows by difference array over bins: +w at the first bin, −w after the last.
    let mut delta = vec![0.0f64; (bins + 1) * cats * nd];
    let bin_of = |t: u64| ((t - spec.start_ms) / spec.bin_ms) as usize;
    for i in 0..n {
        let (s, e) = (input.start_ms[i], input.end_ms[i].max(input.start_ms[i]));
        let c = input.category[i] as usize;
        let d = match (&spec.local, input.src, input.dst) {
            (Some(l), Some(src), Some(dst)) => directions
                .iter()
                .position(|x| *x == l.direction(src[i], dst[i]))
                .expect("every direction listed"),
            _ => 0,
        };
        let slot = |b: usize| (b * cats + c) * nd + d;
        if e >= spec.start_ms && s < spec.end_ms {
            let first = bin_of(s.max(spec.start_ms));
            let last = bin_of(e.min(spec.end_ms - 1));
            delta[slot(first)] += input.flows.weight[i];
            delta[slot(last + 1)] -= input.flows.weight[i];
        }
        if s < spec.start_ms || s >= spec.end_ms {
            continue;
        }
        let cell = &mut cells[slot(bin_of(s))];
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
    for k in 0..cats * nd {
        let mut run = 0.0;
        for b in 0..bins {
            run += delta[b * cats * nd + k];
            cells[b * cats * nd + k].active_flows = run;
        }
    }
    Ok(Series {
        start_ms: spec.start_ms,
        bin_ms: spec.bin_ms,
        bins,
        categories: cats,
        directions,
        cells,
    })
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
