//! The analyses on a selection, each a function from ([`Engine`], [`Selection`], [`Bound`],
//! parameters) to a [`Report`]: the CLI, the console and the daemon call these and only
//! render.

use crate::drill;
use crate::packed::{self, Layout, Packed, Tally};
use crate::report::{Cell, Meta, Report, Section, Shape};
use crate::{
    Bound, Engine, FoldPart, Loaded, Metric, QueryError, RowWeights, Schedule, Selection,
    WeightColumns,
};
use flowdrill_analysis::flat;
use flowdrill_analysis::hhh::{
    self, AppHierarchy, HhhReport, Hierarchy, IpKey, IpLevels, MapKey, PortSide, PrefixMap,
    PrefixMapRow, Threshold,
};
use flowdrill_analysis::{AnalysisError, Estimate, Weights};
use flowdrill_model::{Addr, ColumnRef, ColumnSource, Field, Kind, Prefix, proto};
use flowdrill_store::{Batch, BinRef};
/// A hash map with a fast, fixed hasher (keys are addresses and ports, not attacker-chosen
/// strings; the analyses' maps are rebuilt per query).
type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// A parameter that does not make sense (a usage error: exit code 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
}

// ---------------------------------------------------------------------------------------------
// Keys

/// What `top` and `compare` group by: a field, or an address field masked to a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub field: Field,
    /// Prefix lengths for IPv4 and IPv6 addresses (32 and 128 = whole addresses).
    pub v4_len: u8,
    pub v6_len: u8,
}

impl KeySpec {
    /// Parses `srcip`, `dstport`, `proto`, `srcip/24`, `srcip4/24`, `srcip6/48`,
    /// `srcip/24,48`, nfdump's names or any schema field name.
    pub fn parse(s: &str) -> Result<KeySpec, ParamError> {
        let (name, len) = match s.split_once('/') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let (name, family) = match name {
            n if n.ends_with("ip4") => (&n[..n.len() - 1], Some(4)),
            n if n.ends_with("ip6") => (&n[..n.len() - 1], Some(6)),
            n => (n, None),
        };
        let field = field_alias(name).ok_or_else(|| {
            ParamError(format!(
                "unknown key '{name}': use srcip, dstip, srcport, dstport, proto, srcas, dstas, inif, outif, exporter, nexthop, tos, flags or a field name ({})",
                flowdrill_model::FIELDS
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let mut k = KeySpec {
            field,
            v4_len: 32,
            v6_len: 128,
        };
        if let Some(l) = len {
            if field.info().kind != Kind::Address {
                return Err(ParamError(format!(
                    "'{s}': only address keys take a prefix length"
                )));
            }
            let bad = || {
                ParamError(format!(
                    "'{s}': a prefix length is /0../32 (IPv4) or /0../128 (IPv6), e.g. srcip/24 or srcip/24,48"
                ))
            };
            let (a, b) = match l.split_once(',') {
                Some((a, b)) => (a, Some(b)),
                None => (l, None),
            };
            let a: u8 = a.parse().map_err(|_| bad())?;
            match (family, b) {
                (Some(6), None) => k.v6_len = a,
                (_, None) => k.v4_len = a,
                (_, Some(b)) => {
                    k.v4_len = a;
                    k.v6_len = b.parse().map_err(|_| bad())?;
                }
            }
            if k.v4_len > 32 || k.v6_len > 128 {
                return Err(bad());
            }
        }
        Ok(k)
    }

    /// Row `i`'s key in `b` (0 where `b` lacks the field), masked to the prefix lengths.
    fn key_of<'b>(&self, b: &'b Batch) -> Box<dyn Fn(usize) -> u128 + 'b> {
        let (v4, v6) = (self.v4_len, self.v6_len);
        match (self.field.info().kind, b.column(self.field)) {
            (Kind::Address, Some(ColumnRef::Addr(a))) if v4 == 32 && v6 == 128 => {
                Box::new(move |i| a[i])
            }
            (Kind::Address, Some(ColumnRef::Addr(a))) => Box::new(move |i| {
                let x = Addr(a[i]);
                x.masked(if x.is_v4() { v4 } else { v6 }).0
            }),
            (Kind::Address, _) => Box::new(|_| 0),
            (_, c) => Box::new(move |i| c.and_then(|c| c.u64_at(i)).map_or(0, u128::from)),
        }
    }

    /// How a key prints.
    pub fn show(&self, k: u128) -> String {
        match self.field {
            _ if self.field.info().kind == Kind::Address => {
                let a = Addr(k);
                let len = if a.is_v4() { self.v4_len } else { self.v6_len };
                let full = if a.is_v4() { 32 } else { 128 };
                if len == full {
                    a.to_string()
                } else {
                    Prefix::new(a, len).to_string()
                }
            }
            Field::Proto => proto::name(k as u8).into_owned(),
            Field::TimeStart | Field::TimeEnd => flowdrill_model::time::format_ms(k as u64),
            _ => k.to_string(),
        }
    }

    pub fn name(&self) -> String {
        let n = self.field.name().to_string();
        if self.field.info().kind == Kind::Address && (self.v4_len != 32 || self.v6_len != 128) {
            format!("{n}/{},{}", self.v4_len, self.v6_len)
        } else {
            n
        }
    }
}

/// Phase timings on stderr when `FLOWDRILL_TRACE` is set (for finding where time goes).
struct Trace(Option<std::cell::Cell<std::time::Instant>>);

impl Trace {
    fn start() -> Trace {
        Trace(
            std::env::var_os("FLOWDRILL_TRACE")
                .map(|_| std::cell::Cell::new(std::time::Instant::now())),
        )
    }
    fn mark(&self, what: &str) {
        if let Some(c) = &self.0 {
            let now = std::time::Instant::now();
            eprintln!(
                "trace: {what}: {:.1} ms",
                (now - c.get()).as_secs_f64() * 1e3
            );
            c.set(now);
        }
    }
}

fn field_alias(name: &str) -> Option<Field> {
    Some(match name {
        "srcip" | "src_ip" | "sa" | "src" => Field::SrcAddr,
        "dstip" | "dst_ip" | "da" | "dst" => Field::DstAddr,
        "srcport" | "sp" => Field::SrcPort,
        "dstport" | "dp" | "port" => Field::DstPort,
        "proto" | "pr" | "protocol" => Field::Proto,
        "srcas" | "sas" => Field::SrcAs,
        "dstas" | "das" => Field::DstAs,
        "inif" | "in" => Field::InIf,
        "outif" | "out" => Field::OutIf,
        "router" | "exporter" | "ra" => Field::Exporter,
        "nexthop" | "nhip" | "nh" => Field::NextHop,
        "flags" | "flg" => Field::TcpFlags,
        "tos" => Field::Tos,
        other => return Field::from_name(other),
    })
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

fn meta(analysis: &str, params: String, sel: &Selection, l: &Loaded) -> Meta {
    let total = l.total();
    let (start_ms, end_ms) = clip_range(sel, l);
    Meta {
        analysis: analysis.to_string(),
        params,
        links: l.links.clone(),
        start_ms,
        end_ms,
        filter: sel
            .filter
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_default(),
        metric: sel.metric.name().to_string(),
        level: l.level,
        exact: l.exact,
        z_max: l.z_max,
        records: l.records(),
        matched: l.records_matched,
        rethreshold_z: l.rethreshold_z,
        total: total.value,
        total_stderr: total.std_error(),
        skipped: l
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path.display(), s.reason))
            .collect(),
        cached: false,
    }
}

/// The selection's range with open ends clipped to the bins read.
fn clip_range(sel: &Selection, l: &Loaded) -> (u64, u64) {
    let (lo, hi) = match &l.folded {
        Some(f) => (f.start, f.end),
        None => (
            l.batches.iter().map(|(b, _)| b.start).min().unwrap_or(0),
            l.batches.iter().map(|(b, _)| b.end).max().unwrap_or(0),
        ),
    };
    (sel.range.start.max(lo), sel.range.end.min(hi.max(lo)))
}

/// The estimate columns of a value: `stderr`, `ci95_lo`, `ci95_hi` (estimated reports only).
fn error_cols(exact: bool) -> &'static [&'static str] {
    if exact {
        &[]
    } else {
        &["stderr", "ci95_lo", "ci95_hi"]
    }
}

fn error_cells(e: Estimate, exact: bool) -> Vec<Cell> {
    if exact {
        return Vec::new();
    }
    let (lo, hi) = e.interval95();
    vec![
        Cell::Float(e.std_error(), 1),
        Cell::Float(lo, 1),
        Cell::Float(hi, 1),
    ]
}

fn pct(part: f64, whole: f64) -> Cell {
    Cell::Float(
        if whole > 0.0 {
            100.0 * part / whole
        } else {
            0.0
        },
        2,
    )
}

fn cols(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

/// The weights of `l` in a metric other than the selection's.
fn weights_in(l: &Loaded, metric: Metric) -> (Vec<f64>, Vec<f64>) {
    let mut w = Vec::with_capacity(l.len());
    let mut v = Vec::with_capacity(l.len());
    for i in 0..l.batches.len() {
        let (a, c) = l.weights_of(i, metric);
        w.extend(a);
        v.extend(c);
    }
    (w, v)
}

// ---------------------------------------------------------------------------------------------
// top

/// `top`: the largest groups by a key.
#[derive(Clone, Debug, PartialEq)]
pub struct TopParams {
    pub by: KeySpec,
    pub n: usize,
}

/// The metrics in the order of [`TopAcc::sums`].
const METRICS: [Metric; 3] = [Metric::Flows, Metric::Packets, Metric::Bytes];

fn metric_index(m: Metric) -> usize {
    METRICS.iter().position(|&x| x == m).unwrap_or(2)
}

/// One group of `top`: its weight in each metric and the variance of the ranked metric's
/// weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TopAcc {
    sums: [f64; 3],
    var: f64,
}

impl TopAcc {
    fn combine(&mut self, o: TopAcc) {
        for (a, b) in self.sums.iter_mut().zip(o.sums) {
            *a += b;
        }
        self.var += o.var;
    }
}

/// The top bit of [`ExactVal::packets_flow`]: set when the record starts a flow.
const FLOW_BIT: u64 = 1 << 63;

/// What an unsampled record adds to its group, packed to 16 bytes: its bytes, and its
/// packets with [`FLOW_BIT`] set when it counts as a flow. Only for packet counts below 2^63
/// (a file's INT64 column read as `max(0)` always is; [`packs`] checks).
#[derive(Clone, Copy, Debug, Default)]
struct ExactVal {
    bytes: u64,
    packets_flow: u64,
}

/// One group of `top` over unsampled records: exact integer sums. Summed in any order they
/// are the same, and as `f64` ([`ExactAcc::to_top`]) they equal [`TopAcc`]'s sums of the
/// same records while those are below 2^53. Packed to 20 bytes, so that an IPv4 group takes
/// 24 (its 4-byte key, then this): the tables are most of the memory of `top` by address.
/// `flows` fits as [`TopState`] keeps at most `u32::MAX` records exact.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ExactAcc {
    flows: u32,
    packets: u64,
    bytes: u64,
}

impl ExactAcc {
    #[inline]
    fn add(&mut self, v: ExactVal) {
        self.flows += (v.packets_flow >> 63) as u32;
        self.packets = self.packets.saturating_add(v.packets_flow & !FLOW_BIT);
        self.bytes = self.bytes.saturating_add(v.bytes);
    }

    fn combine(&mut self, o: ExactAcc) {
        self.flows += o.flows;
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
    }

    fn to_top(self) -> TopAcc {
        TopAcc {
            sums: [self.flows as f64, self.packets as f64, self.bytes as f64],
            var: 0.0,
        }
    }
}

/// Whether the records of `c` can be added as [`ExactVal`]s: none sampled, every packet
/// count below [`FLOW_BIT`].
fn packs(c: &WeightColumns<'_>) -> bool {
    c.exact() && c.packets.iter().all(|&p| p < FLOW_BIT)
}

/// Groups of a key of at most 16 bits (ports, protocol, ToS, flags) in an array indexed by
/// the key instead of a hash table: no hashing, and the array stays in cache. A key's
/// records are added in the order given, as a [`flat::Flat`] adds them.
#[derive(Debug)]
struct Direct<A> {
    accs: Vec<A>,
    seen: Vec<bool>,
}

impl<A> Default for Direct<A> {
    fn default() -> Self {
        Direct {
            accs: Vec::new(),
            seen: Vec::new(),
        }
    }
}

impl<A: Copy + Default> Direct<A> {
    /// Adds records whose keys are below `size` (the same on every call).
    fn add<V>(
        &mut self,
        size: usize,
        items: impl Iterator<Item = (usize, V)>,
        add: impl Fn(&mut A, V),
    ) {
        if self.accs.len() < size {
            self.accs.resize(size, A::default());
            self.seen.resize(size, false);
        }
        for (k, v) in items {
            add(&mut self.accs[k], v);
            self.seen[k] = true;
        }
    }

    /// Adds `other`'s groups to these (`combine(into, from)`).
    fn merge(&mut self, other: Direct<A>, combine: impl Fn(&mut A, A)) {
        if self.accs.len() < other.accs.len() {
            self.accs.resize(other.accs.len(), A::default());
            self.seen.resize(other.accs.len(), false);
        }
        for (k, a) in other.iter() {
            combine(&mut self.accs[k as usize], a);
            self.seen[k as usize] = true;
        }
    }

    /// The groups, by key.
    fn iter(&self) -> impl Iterator<Item = (u64, A)> + '_ {
        (0..self.accs.len())
            .filter(|&k| self.seen[k])
            .map(|k| (k as u64, self.accs[k]))
    }
}

/// A worker's shares of the IPv4 keys and of the wide IPv6 keys of `top` (see
/// [`flat::Shard`]); IPv6 addresses that fit 64 bits (rare) stay in per-worker tables.
#[derive(Debug)]
struct TopShards<V> {
    v4: flat::Shard<u32, V>,
    wide: flat::Shard<u128, V>,
}

/// A worker's shards of IPv4 and of wide IPv6 keys, lent to [`Groups::add`].
type ShardsOf<'a, V> = (&'a mut flat::Shard<u32, V>, &'a mut flat::Shard<u128, V>);

/// One set of [`TopShards`] per worker.
fn top_shards<V: Copy>(workers: usize) -> Vec<TopShards<V>> {
    flat::shards(workers)
        .into_iter()
        .zip(flat::shards(workers))
        .map(|(v4, wide)| TopShards { v4, wide })
        .collect()
}

/// Exact groups of one form (`A` the sums, `V` what a record adds) and, when the workers
/// share the IPv4 and wide IPv6 keys out among themselves, this worker's shards until
/// [`ExactGroups::finish`].
#[derive(Debug)]
struct ExactGroups<A, V> {
    g: Groups<A>,
    shard: Option<TopShards<V>>,
}

impl<A: Copy + Default, V: Copy> ExactGroups<A, V> {
    fn new(keys: Expected, shard: Option<TopShards<V>>) -> Self {
        ExactGroups {
            g: Groups::with_keys(keys),
            shard,
        }
    }

    /// The groups, and the shards to add their records through (see [`Groups::add`]).
    fn lend(&mut self) -> (&mut Groups<A>, Option<ShardsOf<'_, V>>) {
        let shards = self.shard.as_mut().map(|s| (&mut s.v4, &mut s.wide));
        (&mut self.g, shards)
    }

    /// Adds what the other workers' shards still send (see [`flat::Shard::finish`]): every
    /// worker finishes its IPv4 shard first, the other's IPv6 records waiting meanwhile.
    fn finish(&mut self, add: impl Fn(&mut A, V) + Copy) {
        if let Some(mut shard) = self.shard.take() {
            shard.v4.finish(&mut self.g.v4, add);
            shard.wide.finish(&mut self.g.wide, add);
        }
    }
}

/// One family of `top` groups, in flat tables: IPv4 addresses on u32 keys (the address;
/// prefixes stay IPv4), other integers on u64 keys, IPv6 addresses on u128 keys (or u64 when
/// they fit); keys of at most 16 bits in an array.
#[derive(Debug)]
struct Groups<A> {
    v4: flat::Flat<u32, A>,
    narrow: flat::Flat<u64, A>,
    wide: flat::Flat<u128, A>,
    small: Direct<A>,
    /// The address keys expected (0: unknown), and whether `wide` was sized from them.
    expected: usize,
    wide_sized: bool,
}

impl<A: Copy + Default> Default for Groups<A> {
    fn default() -> Self {
        Self::with_keys(Expected::default())
    }
}

impl<A: Copy + Default> Groups<A> {
    /// Groups whose IPv4 table has room for about `keys.v4` keys, and the IPv6 one for
    /// `keys.v6` when known (else it is sized after its first keys: [`Groups::size_wide`]).
    fn with_keys(keys: Expected) -> Self {
        Groups {
            v4: flat::Flat::with_expected(keys.v4),
            narrow: flat::Flat::new(),
            wide: keys
                .v6
                .map_or_else(flat::Flat::new, flat::Flat::with_expected),
            small: Direct::default(),
            expected: keys.v4,
            wide_sized: keys.v6.is_some(),
        }
    }

    /// Sizes the wide IPv6 table once the first keys show how the families mix: for the keys
    /// expected times the IPv6 share of the keys so far, doubled (early keys are about one per
    /// record, and IPv6 addresses are usually a larger share of the distinct keys than of the
    /// records: 16.5 % against 10 % in the benchmark mix). It then grows once at most instead
    /// of from 1 Ki slots up, each doubling a rehash that leaves fresh memory behind (`top
    /// srcip` over 5 M records: seven doublings, 3.5 % of the query, 12 MB of memory).
    fn size_wide(&mut self) {
        let (v4, v6) = (self.v4.len(), self.wide.len());
        if self.wide_sized || self.expected == 0 || v4 + v6 < 1024 {
            return;
        }
        self.wide_sized = true;
        let want = (self.expected as f64 * 2.0 * v6 as f64 / (v4 + v6) as f64) as usize;
        self.wide.reserve(want.min(self.expected));
    }

    /// Adds rows `rows` of `b` by `by`'s key, each adding `value(row)` with `add`; IPv4 and
    /// wide IPv6 keys through `shards` when the workers share those keys out among themselves.
    fn add<V: Copy>(
        &mut self,
        by: &KeySpec,
        b: &Batch,
        rows: impl Iterator<Item = usize> + Clone,
        value: impl Fn(usize) -> V,
        add: impl Fn(&mut A, V) + Copy,
        shards: Option<ShardsOf<'_, V>>,
    ) {
        let (mut shard, mut wide_shard) = match shards {
            Some((s4, s6)) => (Some(s4), Some(s6)),
            None => (None, None),
        };
        let mut add_mut = add;
        if let Some(a4) = b.addrs_v4(by.field) {
            // Every row IPv4, as 4-byte integers: the keys are the addresses masked.
            let mask = v4_mask(by.v4_len);
            match shard {
                Some(s) => {
                    for i in rows {
                        s.push(&mut self.v4, a4[i] & mask, value(i), &mut add_mut);
                    }
                    s.flush(&mut self.v4, &mut add_mut);
                }
                None => self.v4.add(rows.map(|i| (a4[i] & mask, value(i))), add),
            }
            return;
        }
        match b.column(by.field) {
            Some(ColumnRef::Addr(addrs)) => {
                let full = by.v4_len == 32 && by.v6_len == 128;
                let key = |x: u128| -> u128 {
                    if full {
                        return x;
                    }
                    let a = Addr(x);
                    a.masked(if a.is_v4() { by.v4_len } else { by.v6_len }).0
                };
                // One pass over the rows, each family's records gathered for its table.
                let mut v4: Vec<(u32, V)> = Vec::with_capacity(flat::RUN);
                let mut narrow: Vec<(u64, V)> = Vec::new();
                let mut wide: Vec<(u128, V)> = Vec::new();
                for i in rows {
                    let x = addrs[i];
                    if Addr(x).is_v4() {
                        if let Some(s) = shard.as_deref_mut() {
                            s.push(&mut self.v4, key(x) as u32, value(i), &mut add_mut);
                            continue;
                        }
                        v4.push((key(x) as u32, value(i)));
                        if v4.len() == flat::RUN {
                            self.v4.add_run(&v4, add);
                            v4.clear();
                        }
                    } else if x <= u64::MAX as u128 {
                        narrow.push((key(x) as u64, value(i)));
                        if narrow.len() == flat::RUN {
                            self.narrow.add_run(&narrow, add);
                            narrow.clear();
                        }
                    } else {
                        if let Some(s) = wide_shard.as_deref_mut() {
                            s.push(&mut self.wide, key(x), value(i), &mut add_mut);
                            continue;
                        }
                        wide.push((key(x), value(i)));
                        if wide.len() == flat::RUN {
                            self.wide.add_run(&wide, add);
                            wide.clear();
                        }
                    }
                }
                match shard {
                    Some(s) => s.flush(&mut self.v4, &mut add_mut),
                    None => self.v4.add_run(&v4, add),
                }
                self.narrow.add_run(&narrow, add);
                match wide_shard {
                    Some(s) => s.flush(&mut self.wide, &mut add_mut),
                    None => self.wide.add_run(&wide, add),
                }
                if full {
                    self.size_wide();
                }
            }
            Some(ColumnRef::U8(c)) => {
                self.small
                    .add(1 << 8, rows.map(|i| (c[i] as usize, value(i))), add)
            }
            Some(ColumnRef::U16(c)) => {
                self.small
                    .add(1 << 16, rows.map(|i| (c[i] as usize, value(i))), add)
            }
            Some(c) => self
                .narrow
                .add(rows.map(|i| (c.u64_at(i).unwrap_or(0), value(i))), add),
            None => self.narrow.add(rows.map(|i| (0, value(i))), add),
        }
    }
}

/// A worker's groups of `top`. While every record added is unsampled, they are exact
/// integer sums (`exact`, smaller and cheaper to add); the first sampled record moves them
/// to estimates ([`TopState::switch_to_estimates`]), where they stay.
#[derive(Debug)]
struct TopState {
    exact: Option<Exact>,
    est: Groups<TopAcc>,
    /// Records added to `exact` (at most `u32::MAX`, so that [`ExactAcc::flows`] fits).
    exact_records: u64,
    /// Whether the workers share the IPv4 and wide IPv6 keys of `exact` out among themselves
    /// (see [`TopShards`]).
    sharded: bool,
}

/// The exact groups of a [`TopState`]: the three sums packed in 96 bits when the query's
/// totals allow (see [`packed`]), else apart.
#[derive(Debug)]
enum Exact {
    Packed(ExactGroups<Packed, Packed>, Layout, Tally),
    Wide(ExactGroups<ExactAcc, ExactVal>),
}

/// The shards of `top`'s workers, for exact sums packed or apart.
enum AnyShards {
    Packed(TopShards<Packed>),
    Wide(TopShards<ExactVal>),
}

/// One set of shards per worker: for packed sums when `packed`.
fn any_shards(workers: usize, packed: bool) -> Vec<AnyShards> {
    if packed {
        top_shards(workers)
            .into_iter()
            .map(AnyShards::Packed)
            .collect()
    } else {
        top_shards(workers)
            .into_iter()
            .map(AnyShards::Wide)
            .collect()
    }
}

/// Why a fold of `top` must run again: a sharded state met sampled records (run without
/// shards), or a worker added more than its packed sums have room for (run with the sums
/// apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rerun {
    Unsharded,
    Unpacked,
}

/// A packed sum as `top`'s sums.
fn packed_top(l: &Layout, a: Packed) -> TopAcc {
    let [f, p, b] = l.unpack(a);
    TopAcc {
        sums: [f as f64, p as f64, b as f64],
        var: 0.0,
    }
}

/// The records, packets and bytes of rows `rows` (all when `None`) of `c`.
fn tally_rows(c: &WeightColumns<'_>, rows: Option<&[u32]>) -> (u64, u128, u128) {
    let at = |v: &[u64], i: u32| u128::from(v.get(i as usize).copied().unwrap_or(0));
    match rows {
        None => (
            c.bytes.len().max(c.packets.len()) as u64,
            packed::sum_wide(c.packets),
            packed::sum_wide(c.bytes),
        ),
        Some(r) => (
            r.len() as u64,
            r.iter().map(|&i| at(c.packets, i)).sum(),
            r.iter().map(|&i| at(c.bytes, i)).sum(),
        ),
    }
}

impl Default for TopState {
    fn default() -> Self {
        Self::with_keys(Expected::default(), None)
    }
}

impl TopState {
    /// A state whose tables have room for about `keys` (see [`expected_keys`]), its exact
    /// sums packed in `layout` if given.
    fn with_keys(keys: Expected, layout: Option<Layout>) -> Self {
        TopState {
            exact: Some(match layout {
                Some(l) => Exact::Packed(ExactGroups::new(keys, None), l, Tally::default()),
                None => Exact::Wide(ExactGroups::new(keys, None)),
            }),
            est: Groups::default(),
            exact_records: 0,
            sharded: false,
        }
    }

    /// A state that keeps the IPv4 and wide IPv6 keys of `shard` (its tables sized for about
    /// `keys`), the other workers' states the rest. Only for unsampled records, at most
    /// `u32::MAX` in all: the exact sums are added in whatever order records arrive. The shards
    /// are made for the state's form of sums: packed ones when `layout` is given.
    fn sharded(keys: Expected, layout: Option<Layout>, shard: AnyShards) -> Self {
        let exact = match (layout, shard) {
            (Some(l), AnyShards::Packed(s)) => {
                Exact::Packed(ExactGroups::new(keys, Some(s)), l, Tally::default())
            }
            (None, AnyShards::Wide(s)) => Exact::Wide(ExactGroups::new(keys, Some(s))),
            _ => unreachable!("a worker's shards are made for the query's layout"),
        };
        TopState {
            exact: Some(exact),
            sharded: true,
            ..Self::with_keys(Expected::default(), None)
        }
    }

    /// Adds what the other workers' shards still send (see [`flat::Shard::finish`]).
    fn finish(&mut self) {
        match self.exact.as_mut() {
            Some(Exact::Packed(g, ..)) => g.finish(Packed::add),
            Some(Exact::Wide(g)) => g.finish(ExactAcc::add),
            None => {}
        }
    }

    /// Adds one batch's records to their groups: the rows listed, or all. An error (nothing
    /// added) says why the fold must run again: the state is sharded and the records are
    /// not all exact, or they would take this worker past its share of the packed sums.
    fn add(
        &mut self,
        by: &KeySpec,
        b: &Batch,
        rw: RowWeights<'_>,
        rank: usize,
        rows: Option<&[u32]>,
    ) -> Result<(), Rerun> {
        if let (Some(Exact::Packed(_, l, tally)), RowWeights::Records(c)) = (&mut self.exact, &rw) {
            let (n, packets, bytes) = tally_rows(c, rows);
            if !tally.add(l, n, packets, bytes) {
                return Err(Rerun::Unpacked);
            }
        }
        if self.exact.is_some() {
            self.exact_records += rows.map_or(b.len(), <[u32]>::len) as u64;
            if self.exact_records > u64::from(u32::MAX) {
                if self.sharded {
                    // More records than the catalog said: estimates are not sharded.
                    return Err(Rerun::Unsharded);
                }
                self.switch_to_estimates();
            }
        }
        match rows {
            Some(r) => self.add_rows(by, b, rw, rank, r.iter().map(|&i| i as usize)),
            None => self.add_rows(by, b, rw, rank, 0..b.len()),
        }
    }

    fn add_rows(
        &mut self,
        by: &KeySpec,
        b: &Batch,
        rw: RowWeights<'_>,
        rank: usize,
        rows: impl Iterator<Item = usize> + Clone,
    ) -> Result<(), Rerun> {
        let exact_cols = match rw {
            RowWeights::Records(c) if c.exact() => Some(c),
            _ => None,
        };
        if let Some(ex) = &mut self.exact {
            if let Some(c) = exact_cols.filter(packs) {
                let bytes = |i: usize| c.bytes.get(i).copied().unwrap_or(0);
                let packets = |i: usize| c.packets.get(i).copied().unwrap_or(0);
                let flow = |i: usize| c.continued.get(i).copied().unwrap_or(0) == 0;
                match ex {
                    Exact::Packed(g, l, _) => {
                        let value = |i: usize| l.pack(bytes(i), packets(i), flow(i));
                        let (g, shards) = g.lend();
                        g.add(by, b, rows, value, Packed::add, shards);
                    }
                    Exact::Wide(g) => {
                        let value = |i: usize| ExactVal {
                            bytes: bytes(i),
                            packets_flow: packets(i) | if flow(i) { FLOW_BIT } else { 0 },
                        };
                        let (g, shards) = g.lend();
                        g.add(by, b, rows, value, ExactAcc::add, shards);
                    }
                }
                return Ok(());
            }
            if self.sharded {
                // Other workers' exact records of this worker's keys keep arriving.
                return Err(Rerun::Unsharded);
            }
            self.switch_to_estimates();
        }
        // What record `i` adds to its group.
        let value = |i: usize| -> TopAcc {
            if let Some(c) = exact_cols {
                return TopAcc {
                    sums: c.exact_row(i),
                    var: 0.0,
                };
            }
            let mut a = TopAcc::default();
            for (m, &metric) in METRICS.iter().enumerate() {
                let (w, v) = rw.get(i, metric);
                a.sums[m] = w;
                if m == rank {
                    a.var = v;
                }
            }
            a
        };
        self.est.add(by, b, rows, value, TopAcc::combine, None);
        Ok(())
    }

    /// Moves the exact groups to the estimated ones (which must be empty, as they are until
    /// this is called): the same sums as `f64`.
    fn switch_to_estimates(&mut self) {
        match self.exact.take() {
            Some(Exact::Packed(g, l, _)) => self.est.take_estimates(&g.g, |a| packed_top(&l, a)),
            Some(Exact::Wide(g)) => self.est.take_estimates(&g.g, ExactAcc::to_top),
            None => {}
        }
    }
}

impl Groups<TopAcc> {
    /// Takes exact groups (these must be empty): the same sums as `f64`.
    fn take_estimates<A: Copy + Default>(
        &mut self,
        g: &Groups<A>,
        to_top: impl Fn(A) -> TopAcc + Copy,
    ) {
        self.v4 = to_estimates(&g.v4, to_top);
        self.narrow = to_estimates(&g.narrow, to_top);
        self.wide = to_estimates(&g.wide, to_top);
        let mut small = Direct::default();
        small.add(
            g.small.accs.len(),
            g.small.iter().map(|(k, a)| (k as usize, to_top(a))),
            TopAcc::combine,
        );
        self.small = small;
    }
}

/// Exact groups as estimated ones: the same sums as `f64`.
fn to_estimates<K: flat::Key, A: Copy + Default>(
    exact: &flat::Flat<K, A>,
    to_top: impl Fn(A) -> TopAcc,
) -> flat::Flat<K, TopAcc> {
    let mut est = flat::Flat::with_expected(exact.len());
    est.add(exact.iter().map(|(k, a)| (k, to_top(a))), TopAcc::combine);
    est
}

/// The workers' groups of `top` merged: the first `n` (not yet in order), the distinct keys
/// and the total.
fn merge_states(mut states: Vec<TopState>, n: usize, rank: usize) -> Pick {
    // A worker that met a sampled record holds estimates: then every worker's groups are
    // merged as estimates.
    // So do workers whose exact sums are not all in one form (they are, as every worker
    // packs them in the layout of the whole query, or none does).
    let exact_records: u64 = states.iter().map(|s| s.exact_records).sum();
    let layouts: Vec<Option<Layout>> = states
        .iter()
        .map(|s| match &s.exact {
            Some(Exact::Packed(_, l, _)) => Some(*l),
            _ => None,
        })
        .collect();
    if states.iter().any(|s| s.exact.is_none())
        || exact_records > u64::from(u32::MAX)
        || layouts.iter().any(|l| *l != layouts[0])
    {
        for s in &mut states {
            s.switch_to_estimates();
        }
    }
    let init = || Pick::new(n, rank);
    // Sharded states' IPv4 and wide IPv6 tables hold disjoint keys.
    let disjoint = states.iter().all(|s| s.sharded);
    let (mut packed, mut wide, mut est) = (Vec::new(), Vec::new(), Vec::new());
    let mut layout = None;
    for s in states {
        match s.exact {
            Some(Exact::Packed(g, l, _)) => {
                packed.push(g.g);
                layout = Some(l);
            }
            Some(Exact::Wide(g)) => wide.push(g.g),
            None => {}
        }
        est.push(s.est);
    }
    let mut picks = Vec::new();
    if let Some(l) = layout {
        let to_top = move |a| packed_top(&l, a);
        pick_groups_with(
            packed,
            disjoint,
            (Packed::add, to_top, init),
            |s, t| s.visit_packed(t, v4_key, &l),
            |s, t| s.visit_packed(t, |k| k, &l),
            &mut picks,
        );
    }
    pick_groups(
        wide,
        disjoint,
        ExactAcc::combine,
        ExactAcc::to_top,
        init,
        &mut picks,
    );
    pick_groups(est, disjoint, TopAcc::combine, |a| a, init, &mut picks);
    let mut all = Pick::new(n, rank);
    for pk in picks {
        all.distinct += pk.distinct;
        all.total.value += pk.total.value;
        all.total.variance += pk.total.variance;
        all.best.extend(pk.best);
    }
    all
}

/// Merges one family of the workers' groups (key by key, in worker order) into picks; their
/// IPv4 and wide IPv6 tables only visited when they hold `disjoint` keys.
fn pick_groups<A: Copy + Default + Send + Sync>(
    gs: Vec<Groups<A>>,
    disjoint: bool,
    combine: impl Fn(&mut A, A) + Sync + Copy,
    to_top: impl Fn(A) -> TopAcc + Sync + Copy,
    init: impl Fn() -> Pick + Sync + Copy,
    picks: &mut Vec<Pick>,
) {
    pick_groups_with(
        gs,
        disjoint,
        (combine, to_top, init),
        |s, t| s.visit_table(t, v4_key, to_top),
        |s, t| s.visit_table(t, |k| k, to_top),
        picks,
    );
}

/// An IPv4 group's key.
fn v4_key(k: u32) -> u128 {
    Addr::from_v4_u32(k).0
}

/// [`pick_groups`], disjoint IPv4 and wide IPv6 tables each visited whole by `scan_v4` and
/// `scan_wide`.
fn pick_groups_with<A: Copy + Default + Send + Sync>(
    gs: Vec<Groups<A>>,
    disjoint: bool,
    (combine, to_top, init): (
        impl Fn(&mut A, A) + Sync + Copy,
        impl Fn(A) -> TopAcc + Sync + Copy,
        impl Fn() -> Pick + Sync + Copy,
    ),
    scan_v4: impl Fn(&mut Pick, &flat::Flat<u32, A>) + Sync,
    scan_wide: impl Fn(&mut Pick, &flat::Flat<u128, A>) + Sync,
    picks: &mut Vec<Pick>,
) {
    let (v4, narrow, wide, small) = unzip_groups(gs);
    picks.extend(if disjoint {
        flat::visit_disjoint(v4, init, scan_v4)
    } else {
        flat::merge_into(v4, combine, init, |s, k, a| s.visit(v4_key(k), to_top(a)))
    });
    picks.extend(flat::merge_into(narrow, combine, init, |s, k, a| {
        s.visit(k as u128, to_top(a))
    }));
    picks.extend(if disjoint {
        flat::visit_disjoint(wide, init, scan_wide)
    } else {
        flat::merge_into(wide, combine, init, |s, k, a| s.visit(k, to_top(a)))
    });
    let mut pick = init();
    for (k, a) in merge_small(small, combine).iter() {
        pick.visit(k as u128, to_top(a));
    }
    picks.push(pick);
}

/// The tables and arrays of several workers' groups, each in worker order.
#[allow(clippy::type_complexity)]
fn unzip_groups<A>(
    gs: Vec<Groups<A>>,
) -> (
    Vec<flat::Flat<u32, A>>,
    Vec<flat::Flat<u64, A>>,
    Vec<flat::Flat<u128, A>>,
    Vec<Direct<A>>,
) {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for g in gs {
        out.0.push(g.v4);
        out.1.push(g.narrow);
        out.2.push(g.wide);
        out.3.push(g.small);
    }
    out
}

/// The arrays of several workers in one, each key's groups combined in worker order.
fn merge_small<A: Copy + Default>(all: Vec<Direct<A>>, combine: impl Fn(&mut A, A)) -> Direct<A> {
    let mut out = Direct::default();
    for d in all {
        out.merge(d, &combine);
    }
    out
}

/// The first groups as `top` ranks them, among those visited, and what all of them add up to.
struct Pick {
    best: Vec<(u128, TopAcc)>,
    n: usize,
    rank: usize,
    total: Estimate,
    distinct: usize,
    /// The ranked value of the n-th group kept after the last cut (`best` is then full).
    floor: f64,
}

impl Pick {
    fn new(n: usize, rank: usize) -> Pick {
        Pick {
            best: Vec::new(),
            n,
            rank,
            total: Estimate::default(),
            distinct: 0,
            floor: f64::NEG_INFINITY,
        }
    }

    fn visit(&mut self, k: u128, a: TopAcc) {
        self.distinct += 1;
        self.total.value += a.sums[self.rank];
        self.total.variance += a.var;
        // Below the n-th kept so far: it cannot be among the first n (a tie may, by key).
        if self.n == 0 || a.sums[self.rank] < self.floor {
            return;
        }
        self.keep(k, a);
    }

    /// Visits every group of a table, as [`Pick::visit`] would in table order, in one pass
    /// over its slots: an empty slot adds zeros to the totals (its accumulator is the
    /// default), and only the groups at or above the floor take a branch of their own. (A pass
    /// over the groups alone branches on every slot: half of them empty, in no pattern.)
    fn visit_table<K: flat::Key, A: Copy + Default>(
        &mut self,
        t: &flat::Flat<K, A>,
        key: impl Fn(K) -> u128,
        to_top: impl Fn(A) -> TopAcc,
    ) {
        if let Some(a) = t.zero() {
            self.visit(key(K::default()), to_top(a));
        }
        for &(k, a) in t.slots() {
            let a = to_top(a);
            let used = k != K::default();
            self.distinct += usize::from(used);
            self.total.value += a.sums[self.rank];
            self.total.variance += a.var;
            if used & (a.sums[self.rank] >= self.floor) & (self.n > 0) {
                self.keep(key(k), a);
            }
        }
    }

    /// [`Pick::visit_table`] for packed sums: the totals added as integers, and a group's sums
    /// unpacked only when its ranked one reaches the floor.
    fn visit_packed<K: flat::Key>(
        &mut self,
        t: &flat::Flat<K, Packed>,
        key: impl Fn(K) -> u128,
        l: &Layout,
    ) {
        if let Some(a) = t.zero() {
            self.visit(key(K::default()), packed_top(l, a));
        }
        // Within the fields: every group of the table together adds no more than the workers.
        let mut total = Packed::default();
        let mut distinct = 0;
        for &(k, a) in t.slots() {
            total.add(a);
            let used = k != K::default();
            distinct += usize::from(used);
            if used & (l.field(a, self.rank) as f64 >= self.floor) & (self.n > 0) {
                self.keep(key(k), packed_top(l, a));
            }
        }
        self.distinct += distinct;
        self.total.value += l.field(total, self.rank) as f64;
    }

    /// Keeps a group at or above the floor.
    fn keep(&mut self, k: u128, a: TopAcc) {
        self.best.push((k, a));
        if self.best.len() >= 2 * self.n.max(64) {
            self.best = top_of(std::mem::take(&mut self.best), self.n, self.rank);
            self.floor = self
                .best
                .last()
                .map_or(f64::NEG_INFINITY, |b| b.1.sums[self.rank]);
        }
    }
}

/// Orders groups as `top` ranks them: by the ranked metric descending, ties by key.
fn sort_ranked<K: Ord + Copy>(v: &mut [(K, TopAcc)], rank: usize) {
    v.sort_unstable_by(|a, b| cmp_ranked(a, b, rank));
}

fn cmp_ranked<K: Ord>(a: &(K, TopAcc), b: &(K, TopAcc), rank: usize) -> std::cmp::Ordering {
    b.1.sums[rank]
        .total_cmp(&a.1.sums[rank])
        .then_with(|| a.0.cmp(&b.0))
}

/// The `n` first groups as `top` ranks them.
fn top_of<K: Ord + Copy>(mut v: Vec<(K, TopAcc)>, n: usize, rank: usize) -> Vec<(K, TopAcc)> {
    if n == 0 {
        return Vec::new();
    }
    if n < v.len() {
        v.select_nth_unstable_by(n - 1, |a, b| cmp_ranked(a, b, rank));
        v.truncate(n);
    }
    sort_ranked(&mut v, rank);
    v
}

/// Keys expected in the tables of `top` and address HHH, to size them ahead (0: unknown, the
/// table grows): `v4` for the IPv4 table (every address when the IPv6 ones are not counted
/// apart), `v6` for the IPv6 one when every bin's footer counts them apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Expected {
    v4: usize,
    v6: Option<usize>,
}

impl Expected {
    /// One worker's share of the keys, when the workers share them out.
    fn per_worker(self, workers: usize) -> Expected {
        let w = workers.max(1);
        Expected {
            v4: self.v4 / w,
            v6: self.v6.map(|k| k / w),
        }
    }
}

/// About how many distinct keys a worker folding `bins` will group by `by`, per address family
/// (see [`Expected`]): the unions of the bins' sketches of the source or destination addresses
/// (taken before sampling), of all of them and of the IPv6 ones, at most the records stored or
/// the bound's. Only for whole addresses and no filter; a time range that cuts a bin may make
/// it an overestimate.
fn expected_keys(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    (field, v4_len): (Field, u8),
    bins: &[BinRef],
) -> Expected {
    use flowdrill_model::hll::Hll;
    use flowdrill_store::Sketch;
    let whole_addrs = matches!(field, Field::SrcAddr | Field::DstAddr) && v4_len == 32;
    if sel.filter.is_some() || !whole_addrs || bins.is_empty() {
        return Expected::default();
    }
    let which = match field {
        Field::SrcAddr => [Sketch::SrcAddrs, Sketch::SrcAddrsV6],
        _ => [Sketch::DstAddrs, Sketch::DstAddrsV6],
    };
    // A small bin adds at most its records (to each family); its footer is not worth opening
    // (a trail of one-record bins follows long flows).
    let small = |b: &BinRef| b.records_after < 4096;
    let smalls: u64 = bins
        .iter()
        .filter(|b| small(b))
        .map(|b| b.records_after)
        .sum();
    let large: Vec<&BinRef> = bins.iter().filter(|b| !small(b)).collect();
    // Unions of some bins' sketches of all addresses and of the IPv6 ones (None: a footer
    // without the first, or of another precision; the second is None when a footer lacks it).
    type Unions = (Option<Hll>, Option<Option<Hll>>);
    let merge = |a: Option<Hll>, b: Option<Hll>| -> Option<Option<Hll>> {
        match (a, b) {
            (Some(mut x), Some(y)) => x.merge(&y).ok().map(|()| Some(x)),
            (x, y) => Some(x.or(y)),
        }
    };
    let union_of = |bins: &[&BinRef]| -> Option<Unions> {
        let mut all: Option<Hll> = None;
        let mut v6: Option<Option<Hll>> = Some(None);
        for bin in bins {
            let mut got = engine.store.bin_sketches(bin, &which).ok()?.into_iter();
            all = merge(all, Some(got.next().flatten()?))?;
            v6 = match (v6, got.next().flatten()) {
                (Some(u), Some(h)) => Some(merge(u, Some(h))?),
                _ => None,
            };
        }
        Some((all, v6))
    };
    // Two threads over halves of the footers: the workers wait for this to size their tables.
    let (a, b) = large.split_at(large.len() / 2);
    let (ua, ub) = if large.len() >= 4 {
        std::thread::scope(|s| {
            let h = s.spawn(|| union_of(b));
            (union_of(a), h.join().unwrap_or(None))
        })
    } else {
        (union_of(&large), Some((None, Some(None))))
    };
    let (Some((all_a, v6_a)), Some((all_b, v6_b))) = (ua, ub) else {
        return Expected::default();
    };
    let Some(all) = merge(all_a, all_b) else {
        return Expected::default();
    };
    let v6 = match (v6_a, v6_b) {
        (Some(x), Some(y)) => merge(x, y),
        _ => None,
    };
    let stored: u64 = bins.iter().map(|b| b.records_after).sum();
    let cap = match bound {
        Bound::Records(max) => stored.min(max),
        _ => stored,
    } as f64;
    let all = all.map_or(0.0, |u| u.estimate());
    match v6 {
        Some(v6) => {
            let v6 = v6.map_or(0.0, |u| u.estimate());
            Expected {
                v4: ((all - v6).max(0.0) + smalls as f64).min(cap) as usize,
                v6: Some((v6 + smalls as f64).min(cap) as usize),
            }
        }
        None => Expected {
            v4: (all + smalls as f64).min(cap) as usize,
            v6: None,
        },
    }
}

/// The shards of `top`'s workers, each taken by its worker.
type ShardHandout = Mutex<Vec<Option<AnyShards>>>;

pub fn top(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &TopParams,
) -> Result<Report, RunError> {
    let t = Trace::start();
    let rank = metric_index(sel.metric);
    // One pass: every worker folds its bins into flat tables (IPv4 addresses on u32 keys,
    // sized ahead from the bins' sketches; integers on u64 keys, IPv6 addresses on u128
    // keys), then the tables are merged. On unsampled records, the workers share the IPv4
    // and wide IPv6 keys out among themselves instead (no merge, smaller tables), and their
    // exact sums are packed in 96 bits when the bins' totals allow. Should a sampled record
    // show up all the same, or more than the catalog's totals (a file that disagrees with the
    // catalog), the fold runs again without shards or with the sums apart.
    let by_addr = matches!(p.by.field, Field::SrcAddr | Field::DstAddr);
    let fold = |allow_shards: bool, allow_packed: bool| {
        let shards: OnceLock<ShardHandout> = OnceLock::new();
        let keys: OnceLock<Expected> = OnceLock::new();
        let rerun = [AtomicBool::new(false), AtomicBool::new(false)];
        let exact_of = |all: &[BinRef], resampled: bool| {
            let records = all.iter().map(|b| b.records_after).sum::<u64>();
            !resampled && all.iter().all(|b| b.z_max == 0) && records <= u64::from(u32::MAX)
        };
        // Whether the workers share the keys out (with more than one of them): sharded states
        // hold exact integer sums of disjoint keys, so any worker may fold any bin.
        let sharding =
            |all: &[BinRef], resampled: bool| allow_shards && by_addr && exact_of(all, resampled);
        let r = engine.fold_scheduled(
            sel,
            &[p.by.field],
            bound,
            Schedule::Balanced(&sharding),
            |part: FoldPart<'_>| {
                let spec = (p.by.field, p.by.v4_len);
                let records = part.all.iter().map(|b| b.records_after).sum::<u64>();
                let exact = exact_of(part.all, part.resampled);
                let layout = (allow_packed && exact)
                    .then(|| {
                        let packets = part.all.iter().map(|b| b.packets).sum();
                        let bytes = part.all.iter().map(|b| b.bytes).sum();
                        Layout::for_totals(records, packets, bytes, part.workers)
                    })
                    .flatten();
                if !(sharding(part.all, part.resampled) && part.workers > 1) {
                    return TopState::with_keys(
                        expected_keys(engine, sel, bound, spec, part.bins),
                        layout,
                    );
                }
                let keys = *keys.get_or_init(|| {
                    expected_keys(engine, sel, bound, spec, part.all).per_worker(part.workers)
                });
                let shard = shards
                    .get_or_init(|| {
                        let packed = layout.is_some();
                        Mutex::new(
                            any_shards(part.workers, packed)
                                .into_iter()
                                .map(Some)
                                .collect(),
                        )
                    })
                    .lock()
                    .ok()
                    .and_then(|mut all| all.get_mut(part.worker)?.take())
                    .expect("one shard per worker");
                TopState::sharded(keys, layout, shard)
            },
            |st: &mut TopState, _: &BinRef, b: &Batch, rw: RowWeights<'_>, rows: Option<&[u32]>| {
                if let Err(why) = st.add(&p.by, b, rw, rank, rows) {
                    rerun[why as usize].store(true, Ordering::Relaxed);
                }
                Ok::<(), RunError>(())
            },
            TopState::finish,
        )?;
        Ok::<_, RunError>((r, rerun.map(AtomicBool::into_inner)))
    };
    let (mut shards_ok, mut packed_ok) = (true, true);
    let (mut l, states) = loop {
        let (r, [unsharded, unpacked]) = fold(shards_ok, packed_ok)?;
        if !unsharded && !unpacked {
            break r;
        }
        shards_ok &= !unsharded;
        packed_ok &= !unpacked;
    };
    t.mark("read and group");
    let all = merge_states(states, p.n, rank);
    t.mark("merge");
    let (distinct, total) = (all.distinct, all.total);
    if let Some(f) = l.folded.as_mut() {
        f.total = total;
    }
    let best = top_of(all.best, p.n, rank);
    t.mark("top n");
    let exact = l.exact;
    let mut s = Section::new(
        format!("Top {} {} by {}", p.n, p.by.name(), sel.metric.name()),
        Shape::List,
        &cols(
            &["rank", "key", "flows", "packets", "bytes", "share"],
            error_cols(exact),
        ),
    );
    for (i, (key, a)) in best.iter().enumerate() {
        let mut row = vec![
            Cell::from(i + 1),
            Cell::Str(p.by.show(*key)),
            Cell::amount(a.sums[0], exact),
            Cell::amount(a.sums[1], exact),
            Cell::amount(a.sums[2], exact),
            pct(a.sums[rank], total.value),
        ];
        row.extend(error_cells(
            Estimate {
                value: a.sums[rank],
                variance: a.var,
            },
            exact,
        ));
        s.push_drill(row, drill::key_clause(&p.by, *key));
    }
    let params = format!("by={} n={} ({distinct} distinct)", p.by.name(), p.n);
    Ok(Report {
        meta: meta("top", params, sel, &l),
        sections: vec![s],
    })
}

// ---------------------------------------------------------------------------------------------
// hhh

/// A hierarchy to find heavy hitters in.
#[derive(Clone, Debug)]
pub enum Dim {
    /// Source or destination addresses at the given prefix lengths.
    Addr { field: Field, levels: IpLevels },
    /// The application hierarchy: protocol, port class, port, port pair (Netpy's form is
    /// the source-port one).
    App(PortSide),
    /// A user's prefix map (organisation → AS → prefix) over source or destination.
    Map { field: Field, map: PrefixMap },
}

impl Dim {
    /// `src`, `dst`, `app` (source-port form, as Netpy), `app-dst`; `src-map`/`dst-map` need
    /// a prefix map.
    pub fn parse(s: &str, levels: &IpLevels, map: Option<&PrefixMap>) -> Result<Dim, ParamError> {
        let need_map = || {
            map.cloned().ok_or_else(|| {
                ParamError(format!(
                    "dimension '{s}' needs a prefix map (--prefix-map FILE)"
                ))
            })
        };
        Ok(match s {
            "src" | "srcip" | "source" => Dim::Addr {
                field: Field::SrcAddr,
                levels: levels.clone(),
            },
            "dst" | "dstip" | "destination" => Dim::Addr {
                field: Field::DstAddr,
                levels: levels.clone(),
            },
            "app" | "app-src" | "sport" => Dim::App(PortSide::Source),
            "app-dst" | "dport" => Dim::App(PortSide::Destination),
            "src-map" | "src-as" | "src-org" => Dim::Map {
                field: Field::SrcAddr,
                map: need_map()?,
            },
            "dst-map" | "dst-as" | "dst-org" => Dim::Map {
                field: Field::DstAddr,
                map: need_map()?,
            },
            _ => {
                return Err(ParamError(format!(
                    "unknown dimension '{s}': use src, dst, app (source-port form), app-dst, src-map or dst-map"
                )));
            }
        })
    }
    fn fields(&self) -> Vec<Field> {
        match self {
            Dim::Addr { field, .. } | Dim::Map { field, .. } => vec![*field],
            Dim::App(_) => vec![Field::Proto, Field::SrcPort, Field::DstPort],
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Dim::Addr {
                field: Field::SrcAddr,
                ..
            } => "src",
            Dim::Addr { .. } => "dst",
            Dim::App(PortSide::Source) => "app",
            Dim::App(PortSide::Destination) => "app-dst",
            Dim::Map {
                field: Field::SrcAddr,
                ..
            } => "src-map",
            Dim::Map { .. } => "dst-map",
        }
    }
}

/// One reported key of any dimension, printable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnyKey {
    Ip(IpKey),
    App(hhh::AppKey),
    Map(MapKey),
}

impl fmt::Display for AnyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyKey::Ip(k) => k.fmt(f),
            AnyKey::App(k) => k.fmt(f),
            AnyKey::Map(k) => k.fmt(f),
        }
    }
}

/// The application hierarchy's leaves (protocol, source port, destination port) of `l`.
pub fn app_leaves(l: &Loaded) -> Vec<(u8, u16, u16)> {
    let p = l.concat_u64(Field::Proto);
    let s = l.concat_u64(Field::SrcPort);
    let d = l.concat_u64(Field::DstPort);
    p.iter()
        .zip(&s)
        .zip(&d)
        .map(|((&p, &s), &d)| (p as u8, s as u16, d as u16))
        .collect()
}

fn convert<K: Clone>(r: HhhReport<K>, f: impl Fn(K) -> AnyKey) -> HhhReport<AnyKey> {
    HhhReport {
        rows: r
            .rows
            .into_iter()
            .map(|x| hhh::HhhRow {
                key: f(x.key),
                rank: x.rank,
                total: x.total,
                residual: x.residual,
                share: x.share,
                variance: x.variance,
                depth: x.depth,
            })
            .collect(),
        total: r.total,
        total_variance: r.total_variance,
        threshold: r.threshold,
        unreported_residual: r.unreported_residual,
    }
}

fn hhh_of(
    dim: &Dim,
    l: &Loaded,
    w: Weights<'_>,
    t: Threshold,
) -> Result<HhhReport<AnyKey>, RunError> {
    Ok(match dim {
        Dim::Addr { field, levels } => convert(
            hhh::hhh_addrs(levels, &l.concat_u128(*field), w, t)?,
            AnyKey::Ip,
        ),
        Dim::App(side) => convert(
            hhh::hhh(&AppHierarchy { side: *side }, &app_leaves(l), w, t)?,
            AnyKey::App,
        ),
        Dim::Map { field, map } => {
            convert(hhh::hhh(map, &l.concat_u128(*field), w, t)?, AnyKey::Map)
        }
    })
}

/// The selection folded into sums per key without keeping the records: each row's key is
/// `to_key(read(batch)(row))` and it adds its weight and variance term in the selection's
/// metric; each worker sums its own rows, the sums are merged in bin order, and the fold's
/// total is theirs.
fn fold_key_sums<R, K>(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    fields: &[Field],
    read: impl for<'b> Fn(&'b Batch) -> Box<dyn Fn(usize) -> R + 'b> + Sync,
    to_key: impl Fn(R) -> K + Sync,
) -> Result<(Loaded, flowdrill_analysis::hhh::LeafSums<K>), RunError>
where
    K: Clone + Eq + std::hash::Hash + Send,
{
    use flowdrill_analysis::hhh::LeafSums;
    let (mut l, parts) = engine.fold(
        sel,
        fields,
        bound,
        |_: FoldPart<'_>| LeafSums::<K>::default(),
        |sums: &mut LeafSums<K>,
         _: &BinRef,
         b: &Batch,
         rw: RowWeights<'_>,
         rows: Option<&[u32]>| {
            let raw = read(b);
            let mut one = |i: usize| {
                let (w, v) = rw.get(i, sel.metric);
                sums.add(to_key(raw(i)), w, v)
            };
            match rows {
                Some(r) => r.iter().try_for_each(|&i| one(i as usize))?,
                None => (0..b.len()).try_for_each(one)?,
            }
            Ok::<(), RunError>(())
        },
        |_| {},
    )?;
    let mut all = LeafSums::default();
    for part in parts {
        all.merge(part);
    }
    let (value, variance) = all.total();
    if let Some(f) = l.folded.as_mut() {
        f.total = Estimate { value, variance };
    }
    Ok((l, all))
}

/// HHH of a hierarchy whose leaves come from a record's columns (the application's ports,
/// a prefix map's addresses; `leaf(batch)(row)`), folded without keeping the records
/// ([`fold_key_sums`] by leaf key).
fn hhh_leaves_folded<H>(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    h: &H,
    fields: &[Field],
    leaf: impl for<'b> Fn(&'b Batch) -> Box<dyn Fn(usize) -> H::Leaf + 'b> + Sync,
    share: f64,
) -> Result<(Loaded, HhhReport<H::Key>), RunError>
where
    H: flowdrill_analysis::hhh::Hierarchy + Sync,
{
    let (l, sums) = fold_key_sums(engine, sel, bound, fields, leaf, |x| h.leaf(x))?;
    Ok((l, sums.hhh(h, Threshold::Share(share))?))
}

/// Labels an address or prefix key with the prefix map's AS and organisation.
fn label(key: &AnyKey, map: Option<&PrefixMap>) -> Cell {
    match (map, key) {
        (Some(map), AnyKey::Ip(IpKey::Net(p))) => match map.describe(*p) {
            Some((_, asn, org)) if org.is_empty() => Cell::Str(format!("AS{asn}")),
            Some((_, asn, org)) => Cell::Str(format!("AS{asn} {org}")),
            None => Cell::Null,
        },
        _ => Cell::Null,
    }
}

/// `hhh`: hierarchical heavy hitters of one dimension.
#[derive(Clone, Debug)]
pub struct HhhParams {
    pub dim: Dim,
    /// φ, a share of the selection's total (0.05 = 5 %).
    pub share: f64,
    /// Labels addresses with AS and organisation.
    pub labels: Option<PrefixMap>,
}

pub fn hhh(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &HhhParams,
) -> Result<Report, RunError> {
    check_share(p.share)?;
    let (l, r) = match &p.dim {
        Dim::Addr { field, levels } => hhh_addrs_folded(engine, sel, bound, *field, levels, p)?,
        Dim::App(side) => {
            let (l, r) = hhh_leaves_folded(
                engine,
                sel,
                bound,
                &AppHierarchy { side: *side },
                &p.dim.fields(),
                |b| {
                    let (p, s, d) = (
                        b.column(Field::Proto),
                        b.column(Field::SrcPort),
                        b.column(Field::DstPort),
                    );
                    let at = |c: Option<ColumnRef<'_>>, i| c.and_then(|c| c.u64_at(i)).unwrap_or(0);
                    Box::new(move |i| (at(p, i) as u8, at(s, i) as u16, at(d, i) as u16))
                },
                p.share,
            )?;
            (l, convert(r, AnyKey::App))
        }
        Dim::Map { field, map } => {
            let (l, r) = hhh_leaves_folded(
                engine,
                sel,
                bound,
                map,
                &p.dim.fields(),
                |b| match b.column(*field) {
                    Some(ColumnRef::Addr(a)) => Box::new(move |i| a[i]),
                    _ => Box::new(|_| 0),
                },
                p.share,
            )?;
            (l, convert(r, AnyKey::Map))
        }
    };
    let exact = l.exact;
    let labelled = p.labels.is_some() && matches!(p.dim, Dim::Addr { .. });
    let mut base = vec!["key"];
    if labelled {
        base.push("label");
    }
    base.extend(["value", "share", "residual", "depth"]);
    let mut s = Section::new(
        format!(
            "Hierarchical heavy hitters of {} above {}% of {}",
            p.dim.name(),
            p.share * 100.0,
            sel.metric.name()
        ),
        Shape::Tree,
        &cols(&base, error_cols(exact)),
    );
    for row in &r.rows {
        let mut cells = vec![Cell::Str(row.key.to_string())];
        if labelled {
            cells.push(label(&row.key, p.labels.as_ref()));
        }
        cells.extend([
            Cell::amount(row.total, exact),
            pct(row.total, r.total),
            Cell::amount(row.residual, exact),
            Cell::from(row.depth as u64),
        ]);
        cells.extend(error_cells(
            Estimate {
                value: row.total,
                variance: row.variance,
            },
            exact,
        ));
        s.push_drill(cells, drill::dim_clause(&p.dim, &row.key));
    }
    let params = format!("dim={} threshold={}%", p.dim.name(), p.share * 100.0);
    Ok(Report {
        meta: meta("hhh", params, sel, &l),
        sections: vec![s],
    })
}

/// A worker's address leaves for HHH: Σ weight and Σ variance term per leaf prefix.
#[derive(Default)]
struct LeafState {
    v4: flat::Flat<u32, (f64, f64)>,
    v6: flat::Flat<u128, (f64, f64)>,
}

fn leaves<K>(v: Vec<(K, (f64, f64))>) -> Vec<(K, f64, f64)> {
    v.into_iter().map(|(k, (w, x))| (k, w, x)).collect()
}

fn add_pair(a: &mut (f64, f64), x: (f64, f64)) {
    a.0 += x.0;
    a.1 += x.1;
}

/// The mask of an IPv4 prefix of `len` bits, on the address as an integer.
fn v4_mask(len: u8) -> u32 {
    (u64::from(u32::MAX) << (32 - u32::from(len.min(32)))) as u32
}

impl LeafState {
    /// Adds one batch's records (the rows listed, or all) to their leaves.
    fn add(
        &mut self,
        b: &Batch,
        rw: RowWeights<'_>,
        (field, levels, m): (Field, &IpLevels, Metric),
        rows: Option<&[u32]>,
    ) {
        match rows {
            Some(r) => self.add_rows(b, rw, field, levels, m, r.iter().map(|&i| i as usize)),
            None => self.add_rows(b, rw, field, levels, m, 0..b.len()),
        }
    }

    fn add_rows(
        &mut self,
        b: &Batch,
        rw: RowWeights<'_>,
        field: Field,
        levels: &IpLevels,
        m: Metric,
        rows: impl Iterator<Item = usize> + Clone,
    ) {
        let (l4, l6) = (levels.v4()[0], levels.v6()[0]);
        if let Some(a4) = b.addrs_v4(field) {
            let mask = v4_mask(l4);
            self.v4
                .add(rows.map(|i| (a4[i] & mask, rw.get(i, m))), add_pair);
            return;
        }
        let Some(ColumnRef::Addr(addrs)) = b.column(field) else {
            return;
        };
        self.v4.add(
            rows.clone().filter_map(|i| {
                let v4 = Addr(addrs[i]).masked(l4).v4()?;
                Some((v4, rw.get(i, m)))
            }),
            add_pair,
        );
        if !rows.clone().all(|i| Addr(addrs[i]).is_v4()) {
            self.v6.add(
                rows.filter(|&i| !Addr(addrs[i]).is_v4())
                    .map(|i| (Addr(addrs[i]).masked(l6).0, rw.get(i, m))),
                add_pair,
            );
        }
    }
}

/// HHH of addresses in one pass over the bins: each worker groups its records by leaf prefix
/// as it reads them (memory holds the leaves, not the records), then the leaves are merged.
fn hhh_addrs_folded(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    field: Field,
    levels: &IpLevels,
    p: &HhhParams,
) -> Result<(Loaded, HhhReport<AnyKey>), RunError> {
    let t = Trace::start();
    let (mut l, states) = engine.fold(
        sel,
        &[field],
        bound,
        |part: FoldPart<'_>| {
            let keys = expected_keys(engine, sel, bound, (field, levels.v4()[0]), part.bins);
            LeafState {
                v4: flat::Flat::with_expected(keys.v4),
                v6: keys
                    .v6
                    .map_or_else(flat::Flat::new, flat::Flat::with_expected),
            }
        },
        |st: &mut LeafState, _: &BinRef, b: &Batch, rw: RowWeights<'_>, rows: Option<&[u32]>| {
            st.add(b, rw, (field, levels, sel.metric), rows);
            Ok::<(), RunError>(())
        },
        |_: &mut LeafState| {},
    )?;
    t.mark("read and group");
    let (v4, v6): (Vec<_>, Vec<_>) = states.into_iter().map(|s| (s.v4, s.v6)).unzip();
    let v4: Vec<(u32, f64, f64)> = leaves(flat::merge(v4, add_pair));
    let v6: Vec<(u128, f64, f64)> = leaves(flat::merge(v6, add_pair));
    t.mark("merge");
    let r = hhh::hhh_addr_leaves(levels, v4, v6, Threshold::Share(p.share))?;
    t.mark("hierarchy");
    if let Some(f) = l.folded.as_mut() {
        f.total = Estimate {
            value: r.total,
            variance: r.total_variance,
        };
    }
    Ok((l, convert(r, AnyKey::Ip)))
}

fn check_share(s: f64) -> Result<(), ParamError> {
    if s.is_finite() && s > 0.0 && s <= 1.0 {
        Ok(())
    } else {
        Err(ParamError(format!(
            "threshold {}% is out of range: give a percentage above 0 and at most 100",
            s * 100.0
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// hhh2

/// `hhh2`: two hierarchies and the traffic of every cell of their reported keys' cross
/// product.
#[derive(Clone, Debug)]
pub struct Hhh2Params {
    pub rows: Dim,
    pub cols: Dim,
    pub share: f64,
}

pub fn hhh2(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &Hhh2Params,
) -> Result<Report, RunError> {
    check_share(p.share)?;
    let mut fields = p.rows.fields();
    fields.extend(p.cols.fields());
    let l = engine.load(sel, &fields, bound)?;
    let (w, v) = (l.all_weights(), l.all_variances_if_sampled());
    let wt = l.weights_arg(&w, &v);
    let t = Threshold::Share(p.share);
    // Each axis as (hierarchy, leaves) through AnyKey leaves: the reported keys of each axis
    // and, per record, the most specific reported key above its leaf.
    let ra = hhh_of(&p.rows, &l, wt, t)?;
    let rb = hhh_of(&p.cols, &l, wt, t)?;
    let la = attribution(&p.rows, &l, &ra);
    let lb = attribution(&p.cols, &l, &rb);
    let row_keys = axis_keys(&ra);
    let col_keys = axis_keys(&rb);
    let mut cells: HashMap<(usize, usize), Estimate> = HashMap::default();
    for i in 0..w.len() {
        let e = cells.entry((la[i], lb[i])).or_default();
        e.value += w[i];
        e.variance += v.get(i).copied().unwrap_or(0.0);
    }
    let mut cells: Vec<((usize, usize), Estimate)> = cells.into_iter().collect();
    cells.sort_by_key(|c| c.0);
    let exact = l.exact;
    let total = l.total().value;
    let mut s = Section::new(
        format!(
            "{} x {} above {}% of {}",
            p.rows.name(),
            p.cols.name(),
            p.share * 100.0,
            sel.metric.name()
        ),
        Shape::Grid,
        &cols(&["row", "col", "value", "share"], error_cols(exact)),
    );
    for ((r, c), e) in cells {
        let mut row = vec![
            Cell::Str(row_keys[r].to_string()),
            Cell::Str(col_keys[c].to_string()),
            Cell::amount(e.value, exact),
            pct(e.value, total),
        ];
        row.extend(error_cells(e, exact));
        let clause = match (
            drill::dim_clause(&p.rows, &row_keys[r]),
            drill::dim_clause(&p.cols, &col_keys[c]),
        ) {
            (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
            (a, b) => a.or(b),
        };
        s.push_drill(row, clause);
    }
    let mut axes = Section::new(
        "Axes",
        Shape::List,
        &["axis", "index", "key", "value", "share"],
    );
    for (axis, keys, r, dim) in [
        ("row", &row_keys, &ra, &p.rows),
        ("col", &col_keys, &rb, &p.cols),
    ] {
        for (i, k) in keys.iter().enumerate() {
            let tot = r
                .rows
                .iter()
                .find(|x| &x.key == k)
                .map_or(r.unreported_residual, |x| x.total);
            axes.push_drill(
                vec![
                    Cell::from(axis),
                    Cell::from(i),
                    Cell::Str(k.to_string()),
                    Cell::amount(tot, exact),
                    pct(tot, total),
                ],
                drill::dim_clause(dim, k),
            );
        }
    }
    let params = format!(
        "rows={} cols={} threshold={}%",
        p.rows.name(),
        p.cols.name(),
        p.share * 100.0
    );
    Ok(Report {
        meta: meta("hhh2", params, sel, &l),
        sections: vec![s, axes],
    })
}

/// The reported keys of an axis in tree order, then the root when it is not reported.
fn axis_keys(r: &HhhReport<AnyKey>) -> Vec<AnyKey> {
    let mut k: Vec<AnyKey> = r.rows.iter().map(|x| x.key.clone()).collect();
    let root = r.rows.iter().any(|x| x.depth == 0 && x.rank == 0);
    if !root {
        k.push(AnyKey::Ip(IpKey::Any));
    }
    k
}

/// Per record, the index (in [`axis_keys`]) of the most specific reported key above its leaf,
/// or the root's index.
fn attribution(dim: &Dim, l: &Loaded, r: &HhhReport<AnyKey>) -> Vec<usize> {
    let keys = axis_keys(r);
    let root = keys.len() - 1;
    let index: HashMap<AnyKey, usize> = keys
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    let find = |chain: Vec<AnyKey>| -> usize {
        chain
            .iter()
            .find_map(|k| index.get(k).copied())
            .unwrap_or(root)
    };
    match dim {
        Dim::Addr { field, levels } => {
            let addrs = l.concat_u128(*field);
            let mut memo: HashMap<u128, usize> = HashMap::default();
            addrs
                .iter()
                .map(|&a| {
                    *memo.entry(a).or_insert_with(|| {
                        let leaf = levels.leaf(a);
                        find(levels.chain(&leaf).into_iter().map(AnyKey::Ip).collect())
                    })
                })
                .collect()
        }
        Dim::App(side) => {
            let h = AppHierarchy { side: *side };
            let mut memo: HashMap<(u8, u16, u16), usize> = HashMap::default();
            app_leaves(l)
                .into_iter()
                .map(|x| {
                    *memo.entry(x).or_insert_with(|| {
                        find(h.chain(&h.leaf(x)).into_iter().map(AnyKey::App).collect())
                    })
                })
                .collect()
        }
        Dim::Map { field, map } => {
            let mut memo: HashMap<u128, usize> = HashMap::default();
            l.concat_u128(*field)
                .into_iter()
                .map(|a| {
                    *memo.entry(a).or_insert_with(|| {
                        find(
                            map.chain(&map.leaf(a))
                                .into_iter()
                                .map(AnyKey::Map)
                                .collect(),
                        )
                    })
                })
                .collect()
        }
    }
}

/// Parses a prefix map CSV: `prefix,asn,organisation` per line (`#` comments, an optional
/// header line).
pub fn parse_prefix_map(text: &str) -> Result<PrefixMap, ParamError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ',');
        let (p, a, o) = (
            parts.next().unwrap_or("").trim(),
            parts.next().unwrap_or("").trim(),
            parts.next().unwrap_or("").trim().trim_matches('"'),
        );
        if i == 0 && p.eq_ignore_ascii_case("prefix") {
            continue;
        }
        let prefix: Prefix = p.parse().map_err(|_| {
            ParamError(format!(
                "prefix map line {}: '{p}' is not a prefix (write 192.0.2.0/24,64500,Example Org)",
                i + 1
            ))
        })?;
        let asn: u32 = a.trim_start_matches("AS").parse().map_err(|_| {
            ParamError(format!(
                "prefix map line {}: '{a}' is not an AS number",
                i + 1
            ))
        })?;
        rows.push(PrefixMapRow {
            prefix,
            asn,
            org: o.to_string(),
        });
    }
    PrefixMap::new(&rows).map_err(|e| ParamError(format!("prefix map: {e}")))
}

// ---------------------------------------------------------------------------------------------
// series

/// The categories a series is split into.
#[derive(Clone, Debug)]
pub enum CategorySet {
    /// The Internet2 weekly report's port-based applications, "unidentified" for the rest.
    Internet2,
    /// Brownlee's classes: UDP, web, SSL, non-web TCP, other.
    Brownlee,
    /// Per IP protocol.
    Protocols,
    /// The user's ordered rules: (category name, filter); first match wins, then "other".
    /// Several rules may name one category (ACL lists do).
    Rules(Vec<(String, flowdrill_filter::Expr)>),
}

impl CategorySet {
    /// `internet2`, `brownlee`, `proto`, or the text of a rules file: lines `NAME: FILTER`
    /// (`#` comments) or a Netpy ACL list (`LABEL SRC DST PROTO SPORTS DPORTS`).
    pub fn parse(
        spec: &str,
        file_text: Option<&str>,
        custom: &flowdrill_model::CustomFields,
    ) -> Result<CategorySet, RunError> {
        match (spec, file_text) {
            ("internet2" | "apps", None) => Ok(CategorySet::Internet2),
            ("brownlee" | "classes", None) => Ok(CategorySet::Brownlee),
            ("proto" | "protocols", None) => Ok(CategorySet::Protocols),
            (_, Some(text)) => Self::rules(text, custom),
            (other, None) => Err(ParamError(format!(
                "unknown category set '{other}': use internet2, brownlee, proto, or a rules file"
            ))
            .into()),
        }
    }

    fn rules(text: &str, custom: &flowdrill_model::CustomFields) -> Result<CategorySet, RunError> {
        // A file whose rule lines all have a `NAME:` head is the expression form; else ACL.
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let expr_form = lines.iter().all(|(_, l)| {
            l.split_once(':').is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || "_-. ".contains(c))
            })
        });
        if expr_form && !lines.is_empty() {
            let mut out = Vec::new();
            for (i, l) in lines {
                let (name, f) = l.split_once(':').unwrap_or((l, ""));
                let e = crate::parse_filter(f, custom)
                    .map_err(|e| ParamError(format!("category rule on line {}: {e}", i + 1)))?;
                out.push((name.trim().to_string(), e));
            }
            return Ok(CategorySet::Rules(out));
        }
        let acl = flowdrill_filter::acl::RuleList::parse(text).map_err(QueryError::from)?;
        Ok(CategorySet::Rules(
            acl.rules
                .iter()
                .map(|r| (r.action.to_string(), r.to_expr()))
                .collect(),
        ))
    }

    /// Category names, "other" (or "unidentified") last.
    pub fn names(&self) -> Vec<String> {
        use flowdrill_analysis::series::Categories;
        match self {
            CategorySet::Internet2 => names_of(&Categories::internet2()),
            CategorySet::Brownlee => names_of(&Categories::brownlee()),
            CategorySet::Protocols => names_of(&Categories::protocols()),
            CategorySet::Rules(r) => {
                let mut n: Vec<String> = Vec::new();
                for (name, _) in r {
                    if !n.contains(name) {
                        n.push(name.clone());
                    }
                }
                if !n.iter().any(|x| x == "other") {
                    n.push("other".into());
                }
                n
            }
        }
    }

    fn fields(&self) -> Vec<Field> {
        match self {
            CategorySet::Rules(r) => {
                let mut f: Vec<Field> = r.iter().flat_map(|(_, e)| e.fields()).collect();
                f.sort_unstable();
                f.dedup();
                f
            }
            _ => vec![Field::Proto, Field::SrcPort, Field::DstPort],
        }
    }

    /// The category index of each of `rows` of `b` (every row when `None`), into `out`.
    fn classify_batch(
        &self,
        b: &Batch,
        rows: Option<&[u32]>,
        out: &mut Vec<u16>,
    ) -> Result<(), RunError> {
        use flowdrill_analysis::series::{Categories, PortKey};
        out.clear();
        let n = rows.map_or(b.len(), <[u32]>::len);
        let row = |k: usize| rows.map_or(k, |r| r[k] as usize);
        let builtin = |c: Categories<PortKey>, out: &mut Vec<u16>| {
            let (p, s, d) = (
                b.column(Field::Proto),
                b.column(Field::SrcPort),
                b.column(Field::DstPort),
            );
            let at = |c: Option<ColumnRef<'_>>, i: usize| c.and_then(|c| c.u64_at(i)).unwrap_or(0);
            out.extend((0..n).map(|k| {
                let i = row(k);
                c.classify(&PortKey {
                    proto: at(p, i) as u8,
                    sport: at(s, i) as u16,
                    dport: at(d, i) as u16,
                })
            }));
        };
        match self {
            CategorySet::Internet2 => builtin(Categories::internet2(), out),
            CategorySet::Brownlee => builtin(Categories::brownlee(), out),
            CategorySet::Protocols => builtin(Categories::protocols(), out),
            CategorySet::Rules(rules) => {
                let names = self.names();
                let other = names.iter().position(|n| n == "other").unwrap_or(0) as u16;
                let idx: Vec<u16> = rules
                    .iter()
                    .map(|(n, _)| names.iter().position(|x| x == n).unwrap_or(0) as u16)
                    .collect();
                let mut cat = vec![other; b.len()];
                let mut left = match rows {
                    None => flowdrill_filter::Bitmap::ones(b.len()),
                    Some(r) => {
                        let mut bools = vec![false; b.len()];
                        for &i in r {
                            bools[i as usize] = true;
                        }
                        flowdrill_filter::Bitmap::from_bools(&bools)
                    }
                };
                for (ri, (_, e)) in rules.iter().enumerate() {
                    if left.count_ones() == 0 {
                        break;
                    }
                    let hit = e.select_within(b, Some(&left)).map_err(QueryError::from)?;
                    left.and_not_with(&hit);
                    for r in hit.iter_ones() {
                        cat[r] = idx[ri];
                    }
                }
                out.extend((0..n).map(|k| cat[row(k)]));
            }
        }
        Ok(())
    }
}

fn names_of<T>(c: &flowdrill_analysis::series::Categories<T>) -> Vec<String> {
    c.names().into_iter().map(String::from).collect()
}

/// What each cell of a series counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesValue {
    /// The selection's metric, by flow start.
    Metric,
    /// Flows active during the bin (Brownlee's active streams).
    Active,
    /// Distinct sources of the flows starting in the bin.
    Sources,
    Destinations,
}

impl SeriesValue {
    pub fn parse(s: &str) -> Result<SeriesValue, ParamError> {
        match s {
            "metric" => Ok(SeriesValue::Metric),
            "active" | "active-flows" => Ok(SeriesValue::Active),
            "sources" | "srcs" => Ok(SeriesValue::Sources),
            "destinations" | "dsts" => Ok(SeriesValue::Destinations),
            o => Err(ParamError(format!(
                "unknown series value '{o}': use metric, active, sources or destinations"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SeriesParams {
    pub categories: CategorySet,
    /// Bin width, ms (`None`: the smallest of 1 s, 10 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 d
    /// that gives at most 120 bins).
    pub bin_ms: Option<u64>,
    pub value: SeriesValue,
    /// Split by direction relative to these networks.
    pub local: Option<Vec<Prefix>>,
}

/// The weight and variance term in each of `metrics` of `rows` of a batch (its `n` rows when
/// `None`), into `out` (weight, then variance, per metric in that order); those in the metric
/// `total.0` are also added to `total.1`.
fn weigh_rows(
    rw: RowWeights<'_>,
    (rows, n): (Option<&[u32]>, usize),
    metrics: [Metric; 3],
    out: &mut [Vec<f64>; 6],
    total: (Metric, &mut Estimate),
) {
    let row = |k: usize| rows.map_or(k, |r| r[k] as usize);
    for (m, metric) in metrics.into_iter().enumerate() {
        let [w, v] = out
            .get_disjoint_mut([2 * m, 2 * m + 1])
            .expect("six columns");
        w.clear();
        v.clear();
        for k in 0..n {
            let (a, c) = rw.get(row(k), metric);
            w.push(a);
            v.push(c);
        }
        if metric == total.0 {
            total.1.value += w.iter().sum::<f64>();
            total.1.variance += v.iter().sum::<f64>();
        }
    }
}

/// A worker's part of a series: its cells, the selection's total in its metric, and the
/// columns of the batch being added.
struct SeriesPart {
    acc: Result<flowdrill_analysis::series::SeriesAcc, AnalysisError>,
    total: Estimate,
    ts: Vec<u64>,
    te: Vec<u64>,
    category: Vec<u16>,
    /// Weight and variance term of bytes, packets and flows.
    w: [Vec<f64>; 6],
    src: Vec<u128>,
    dst: Vec<u128>,
}

impl SeriesPart {
    fn new(spec: &flowdrill_analysis::series::SeriesSpec) -> SeriesPart {
        SeriesPart {
            acc: flowdrill_analysis::series::SeriesAcc::new(spec),
            total: Estimate::default(),
            ts: Vec::new(),
            te: Vec::new(),
            category: Vec::new(),
            w: Default::default(),
            src: Vec::new(),
            dst: Vec::new(),
        }
    }

    /// Adds rows `rows` of `b` (all when `None`).
    fn add(
        &mut self,
        p: &SeriesParams,
        metric: Metric,
        addrs: bool,
        b: &Batch,
        rw: RowWeights<'_>,
        rows: Option<&[u32]>,
    ) -> Result<(), RunError> {
        use flowdrill_analysis::series::SeriesInput;
        let acc = self.acc.as_mut().map_err(|e| RunError::from(e.clone()))?;
        let n = rows.map_or(b.len(), <[u32]>::len);
        let row = |k: usize| rows.map_or(k, |r| r[k] as usize);
        p.categories.classify_batch(b, rows, &mut self.category)?;
        for (f, out) in [
            (Field::TimeStart, &mut self.ts),
            (Field::TimeEnd, &mut self.te),
        ] {
            let c = b.column(f);
            out.clear();
            out.extend((0..n).map(|k| c.and_then(|c| c.u64_at(row(k))).unwrap_or(0)));
        }
        weigh_rows(
            rw,
            (rows, n),
            [Metric::Bytes, Metric::Packets, Metric::Flows],
            &mut self.w,
            (metric, &mut self.total),
        );
        if addrs {
            for (f, out) in [
                (Field::SrcAddr, &mut self.src),
                (Field::DstAddr, &mut self.dst),
            ] {
                out.clear();
                match b.column(f) {
                    Some(ColumnRef::Addr(a)) => out.extend((0..n).map(|k| a[row(k)])),
                    _ => out.resize(n, 0),
                }
            }
        }
        acc.add(SeriesInput {
            start_ms: &self.ts,
            end_ms: &self.te,
            category: &self.category,
            bytes: Weights::sampled(&self.w[0], &self.w[1]),
            packets: Weights::sampled(&self.w[2], &self.w[3]),
            flows: Weights::sampled(&self.w[4], &self.w[5]),
            src: addrs.then_some(&self.src[..]),
            dst: addrs.then_some(&self.dst[..]),
        })?;
        Ok(())
    }
}

pub fn series(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &SeriesParams,
) -> Result<Report, RunError> {
    use flowdrill_analysis::series::{LocalNets, SeriesAcc, SeriesSpec};
    let mut fields = p.categories.fields();
    fields.extend([Field::TimeStart, Field::TimeEnd]);
    let addrs =
        p.local.is_some() || matches!(p.value, SeriesValue::Sources | SeriesValue::Destinations);
    if addrs {
        fields.extend([Field::SrcAddr, Field::DstAddr]);
    }
    let names = p.categories.names();
    // The bins of a series over records read from the store bins from `lo` to `hi`.
    let spec_of = |lo: u64, hi: u64| -> SeriesSpec {
        let (start, end) = (sel.range.start.max(lo), sel.range.end.min(hi.max(lo)));
        let end = end.max(start + 1000);
        let bin_ms = p.bin_ms.unwrap_or_else(|| {
            [
                1_000, 10_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000,
            ]
            .into_iter()
            .find(|b| (end - start).div_ceil(*b) <= 120)
            .unwrap_or(86_400_000)
        });
        SeriesSpec {
            start_ms: start - start % bin_ms.min(86_400_000),
            end_ms: end,
            bin_ms,
            categories: names.len(),
            local: p.local.clone().map(|prefixes| LocalNets { prefixes }),
        }
    };
    // Folded without keeping the records: each worker adds its bins' records to the cells of
    // a series over the bins of every file the selection reads; the series is then cut to the
    // range of the files that had matching records (as `load` reads them). Should that range
    // take other bins (a narrower auto width), the fold runs again over those.
    let fold = |given: Option<&SeriesSpec>| {
        engine.fold(
            sel,
            &fields,
            bound,
            |part: FoldPart<'_>| {
                SeriesPart::new(&given.cloned().unwrap_or_else(|| {
                    spec_of(
                        part.all.iter().map(|b| b.start).min().unwrap_or(0),
                        part.all.iter().map(|b| b.end).max().unwrap_or(0),
                    )
                }))
            },
            |part: &mut SeriesPart,
             _: &BinRef,
             b: &Batch,
             rw: RowWeights<'_>,
             rows: Option<&[u32]>| { part.add(p, sel.metric, addrs, b, rw, rows) },
            |_| {},
        )
    };
    let finish = |l: &mut Loaded, parts: Vec<SeriesPart>, spec: &SeriesSpec| {
        let mut acc: Option<SeriesAcc> = None;
        let mut total = Estimate::default();
        for part in parts {
            let a = part.acc?;
            total.value += part.total.value;
            total.variance += part.total.variance;
            match &mut acc {
                None => acc = Some(a),
                Some(m) => m.merge(a)?,
            }
        }
        if let Some(f) = &mut l.folded {
            f.total = total;
        }
        Ok::<_, RunError>(match acc {
            Some(a) => a.window(spec),
            None => Some(SeriesAcc::new(spec)?.finish()),
        })
    };
    if engine.spark().is_some() {
        // Spark hands every matching record over at once (in groups): one part, over the
        // range of the bins it read.
        let l = engine.load(sel, &fields, bound)?;
        let (lo, hi) = clip_range(sel, &l);
        let mut part = SeriesPart::new(&spec_of(lo, hi));
        for i in 0..l.batches.len() {
            part.add(
                p,
                sel.metric,
                addrs,
                &l.batches[i].1,
                l.row_weights(i),
                None,
            )?;
        }
        let out = part.acc?.finish();
        return Ok(series_report(sel, p, &names, &l, out));
    }
    let (mut l, parts) = fold(None)?;
    let spec = {
        let (lo, hi) = l.folded.as_ref().map_or((0, 0), |f| (f.start, f.end));
        spec_of(lo, hi)
    };
    let out = match finish(&mut l, parts, &spec)? {
        Some(out) => out,
        None => {
            let (again, parts) = fold(Some(&spec))?;
            l = again;
            finish(&mut l, parts, &spec)?
                .ok_or(AnalysisError::Internal("a series is a window of itself"))?
        }
    };
    Ok(series_report(sel, p, &names, &l, out))
}

fn series_report(
    sel: &Selection,
    p: &SeriesParams,
    names: &[String],
    l: &Loaded,
    out: flowdrill_analysis::series::Series,
) -> Report {
    let bin_ms = out.bin_ms;
    let exact = l.exact;
    let split = p.local.is_some();
    let mut base = vec!["time", "category"];
    if split {
        base.push("direction");
    }
    base.push("value");
    let with_err = !exact && p.value == SeriesValue::Metric;
    let mut sec = Section::new(
        format!(
            "{} per {} s by category",
            match p.value {
                SeriesValue::Metric => sel.metric.name(),
                SeriesValue::Active => "active flows",
                SeriesValue::Sources => "distinct sources",
                SeriesValue::Destinations => "distinct destinations",
            },
            bin_ms / 1000
        ),
        Shape::Series,
        &cols(&base, error_cols(!with_err)),
    );
    for b in 0..out.bins {
        for (c, name) in names.iter().enumerate() {
            for (d, dir) in out.directions.iter().enumerate() {
                let cell = out.cell(b, c, d);
                let e = match p.value {
                    SeriesValue::Metric => match sel.metric {
                        Metric::Bytes => cell.bytes,
                        Metric::Packets => cell.packets,
                        Metric::Flows => cell.flows,
                    },
                    SeriesValue::Active => Estimate {
                        value: cell.active_flows,
                        variance: 0.0,
                    },
                    SeriesValue::Sources => Estimate {
                        value: cell.sources.count(),
                        variance: 0.0,
                    },
                    SeriesValue::Destinations => Estimate {
                        value: cell.destinations.count(),
                        variance: 0.0,
                    },
                };
                let mut row = vec![
                    Cell::Str(flowdrill_model::time::format_ms(out.bin_start(b))),
                    Cell::Str(name.clone()),
                ];
                if split {
                    row.push(Cell::Str(format!("{dir:?}").to_lowercase()));
                }
                row.push(Cell::amount(
                    e.value,
                    exact || p.value != SeriesValue::Metric,
                ));
                row.extend(error_cells(e, !with_err));
                sec.push(row);
            }
        }
    }
    let params = format!(
        "bin={}s categories={}{}",
        bin_ms / 1000,
        names.join("|"),
        if split { " split=direction" } else { "" }
    );
    Report {
        meta: meta("series", params, sel, l),
        sections: vec![sec],
    }
}

// ---------------------------------------------------------------------------------------------
// dist

#[derive(Clone, Debug)]
pub struct DistParams {
    /// Report what ignoring flows of at most this many packets drops, per store bin.
    pub ignore: u64,
}

pub fn dist(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &DistParams,
) -> Result<Report, RunError> {
    use flowdrill_analysis::dist::SizeCounts;
    // Folded without keeping the records: each worker counts its bins' flows by size, per
    // time bin (for the second section); the bins' counts merged make the whole.
    struct Part {
        by_bin: std::collections::BTreeMap<u64, SizeCounts>,
        total: Estimate,
        size: Vec<u64>,
        /// Weight and variance term of flows, bytes and packets.
        w: [Vec<f64>; 6],
    }
    let metrics = [Metric::Flows, Metric::Bytes, Metric::Packets];
    let (mut l, parts) = engine.fold(
        sel,
        &[Field::Packets],
        bound,
        |_: FoldPart<'_>| Part {
            by_bin: Default::default(),
            total: Estimate::default(),
            size: Vec::new(),
            w: Default::default(),
        },
        |part: &mut Part, bin: &BinRef, b: &Batch, rw: RowWeights<'_>, rows: Option<&[u32]>| {
            let n = rows.map_or(b.len(), <[u32]>::len);
            let row = |k: usize| rows.map_or(k, |r| r[k] as usize);
            let packets = b.column(Field::Packets);
            part.size.clear();
            part.size
                .extend((0..n).map(|k| packets.and_then(|c| c.u64_at(row(k))).unwrap_or(0)));
            weigh_rows(
                rw,
                (rows, n),
                metrics,
                &mut part.w,
                (sel.metric, &mut part.total),
            );
            let w = &part.w;
            part.by_bin.entry(bin.start).or_default().add(
                &part.size,
                Weights::sampled(&w[0], &w[1]),
                Weights::sampled(&w[2], &w[3]),
                Weights::sampled(&w[4], &w[5]),
            )?;
            Ok::<(), RunError>(())
        },
        |_: &mut Part| {},
    )?;
    let mut by_bin: std::collections::BTreeMap<u64, SizeCounts> = Default::default();
    let mut total = Estimate::default();
    for part in parts {
        total.value += part.total.value;
        total.variance += part.total.variance;
        for (start, c) in part.by_bin {
            by_bin.entry(start).or_default().merge(&c);
        }
    }
    if let Some(f) = l.folded.as_mut() {
        f.total = total;
    }
    let exact = l.exact;
    let mut all = SizeCounts::default();
    for c in by_bin.values() {
        all.merge(c);
    }
    let d = all.distribution();
    let mut s = Section::new(
        "Flow-size distribution (flow size in packets)",
        Shape::List,
        &[
            "packets_lo",
            "packets_hi",
            "flows",
            "packets",
            "bytes",
            "cum_flows_pct",
            "cum_packets_pct",
            "cum_bytes_pct",
        ],
    );
    for r in &d.rows {
        s.push(vec![
            Cell::from(r.lo),
            Cell::from(r.hi),
            Cell::amount(r.totals.flows.value, exact),
            Cell::amount(r.totals.packets.value, exact),
            Cell::amount(r.totals.bytes.value, exact),
            Cell::Float(100.0 * r.cum_flows, 2),
            Cell::Float(100.0 * r.cum_packets, 2),
            Cell::Float(100.0 * r.cum_bytes, 2),
        ]);
    }
    // Per time bin: what ignoring the smallest flows would drop.
    let mut per = Section::new(
        format!("Ignoring flows of {} packets or fewer, per bin", p.ignore),
        Shape::List,
        &[
            "bin",
            "flows_dropped",
            "flows_pct",
            "packets_pct",
            "bytes_pct",
        ],
    );
    for (start, counts) in &by_bin {
        let x = counts.distribution().ignoring_up_to(p.ignore);
        per.push(vec![
            Cell::Str(flowdrill_model::time::format_ms(*start)),
            Cell::amount(x.totals.flows.value, exact),
            Cell::Float(100.0 * x.flows_share, 2),
            Cell::Float(100.0 * x.packets_share, 2),
            Cell::Float(100.0 * x.bytes_share, 2),
        ]);
    }
    let x = d.ignoring_up_to(p.ignore);
    per.push(vec![
        Cell::from("all"),
        Cell::amount(x.totals.flows.value, exact),
        Cell::Float(100.0 * x.flows_share, 2),
        Cell::Float(100.0 * x.packets_share, 2),
        Cell::Float(100.0 * x.bytes_share, 2),
    ]);
    Ok(Report {
        meta: meta("dist", format!("ignore<={}", p.ignore), sel, &l),
        sections: vec![s, per],
    })
}

// ---------------------------------------------------------------------------------------------
// compare

#[derive(Clone, Debug)]
pub struct CompareParams {
    pub by: KeySpec,
    pub n: usize,
    /// The other selection (the "before").
    pub before: Selection,
}

pub fn compare(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &CompareParams,
) -> Result<Report, RunError> {
    use flowdrill_analysis::compare::{self as c, ChangeKind};
    // Each selection folded into sums per key (no records kept), merged in bin order.
    let groups = |s: &Selection| -> Result<(Loaded, Vec<(u128, Estimate)>), RunError> {
        let (l, sums) = fold_key_sums(engine, s, bound, &[p.by.field], |b| p.by.key_of(b), |k| k)?;
        let g = sums
            .into_sums()
            .map(|(k, (value, variance))| (k, Estimate { value, variance }))
            .collect();
        Ok((l, g))
    };
    let (lb, gb) = groups(&p.before)?;
    let (la, ga) = groups(sel)?;
    let exact = la.exact && lb.exact;
    let changes = c::compare(gb, ga);
    let mut s = Section::new(
        format!(
            "Largest changes of {} by {}",
            sel.metric.name(),
            p.by.name()
        ),
        Shape::List,
        &cols(
            &["key", "change", "before", "after", "delta", "relative_pct"],
            if exact { &[] } else { &["stderr"] },
        ),
    );
    for ch in changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Unchanged)
        .take(p.n)
    {
        let mut row = vec![
            Cell::Str(p.by.show(ch.key)),
            Cell::from(format!("{:?}", ch.kind).to_lowercase()),
            Cell::amount(ch.before.value, exact),
            Cell::amount(ch.after.value, exact),
            Cell::amount(ch.delta, exact),
            ch.relative
                .map_or(Cell::Null, |r| Cell::Float(100.0 * r, 1)),
        ];
        if !exact {
            row.push(Cell::Float(ch.variance.sqrt(), 1));
        }
        s.push_drill(row, drill::key_clause(&p.by, ch.key));
    }
    let mut m = meta("compare", String::new(), sel, &la);
    let (bs, be) = clip_range(&p.before, &lb);
    m.params = format!(
        "by={} before={}..{} links={} total_before={:.0}",
        p.by.name(),
        flowdrill_model::time::format_ms(bs),
        flowdrill_model::time::format_ms(be),
        lb.links.join(","),
        lb.total().value
    );
    m.exact = exact;
    m.z_max = la.z_max.max(lb.z_max);
    Ok(Report {
        meta: m,
        sections: vec![s],
    })
}

// ---------------------------------------------------------------------------------------------
// scans

#[derive(Clone, Debug)]
pub struct ScanParams {
    pub n: usize,
}

pub fn scans(
    engine: &Engine,
    sel: &Selection,
    bound: Bound,
    p: &ScanParams,
) -> Result<Report, RunError> {
    use flowdrill_analysis::scans::{HostEvidence, ScanInput};
    let fields = [
        Field::SrcAddr,
        Field::DstAddr,
        Field::SrcPort,
        Field::DstPort,
        Field::Proto,
        Field::TcpFlags,
        Field::Packets,
    ];
    let l = engine.load(sel, &fields, bound)?;
    let (fw, fv) = weights_in(&l, Metric::Flows);
    let src = l.concat_u128(Field::SrcAddr);
    let dst = l.concat_u128(Field::DstAddr);
    let sport: Vec<u16> = l
        .concat_u64(Field::SrcPort)
        .into_iter()
        .map(|x| x as u16)
        .collect();
    let dport: Vec<u16> = l
        .concat_u64(Field::DstPort)
        .into_iter()
        .map(|x| x as u16)
        .collect();
    let pr: Vec<u8> = l
        .concat_u64(Field::Proto)
        .into_iter()
        .map(|x| x as u8)
        .collect();
    let fl: Vec<u8> = l
        .concat_u64(Field::TcpFlags)
        .into_iter()
        .map(|x| x as u8)
        .collect();
    let pk = l.concat_u64(Field::Packets);
    let r = flowdrill_analysis::scans::scans(
        ScanInput {
            src: &src,
            dst: &dst,
            src_port: &sport,
            dst_port: &dport,
            proto: &pr,
            tcp_flags: &fl,
            packets: &pk,
            flows: Weights::sampled(&fw, &fv),
        },
        p.n,
    )?;
    let exact = l.exact;
    let table = |title: &str, peers: &str, rows: &[HostEvidence], side: &str| {
        let mut s = Section::new(
            title,
            Shape::List,
            &[
                "rank",
                "host",
                peers,
                "ports",
                "flows",
                "small_flows",
                "syn_only_flows",
                "small_pct",
                "score",
            ],
        );
        for (i, h) in rows.iter().enumerate() {
            s.push_drill(
                vec![
                    Cell::from(i + 1),
                    Cell::Str(h.host.to_string()),
                    Cell::from(h.peers),
                    Cell::from(h.ports),
                    Cell::amount(h.flows, exact),
                    Cell::amount(h.small_flows, exact),
                    Cell::amount(h.syn_only_flows, exact),
                    Cell::Float(100.0 * h.small_share(), 1),
                    Cell::Float(h.score, 1),
                ],
                Some(format!("{side} ip {}", h.host)),
            );
        }
        s
    };
    Ok(Report {
        meta: meta("scans", format!("n={}", p.n), sel, &l),
        sections: vec![
            table(
                "Scanners and flooders (fan-out per source)",
                "destinations",
                &r.sources,
                "src",
            ),
            table(
                "Targets (fan-in per destination)",
                "sources",
                &r.destinations,
                "dst",
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_store::OwnedColumn;
    use std::collections::BTreeMap;

    /// Test inputs from the store's seeded generator.
    struct Gen(flowdrill_store::sampling::Rng);

    impl Gen {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next_u64() % n
        }
    }

    /// A batch of `n` random records: clustered addresses (some IPv6 when `v6`), ports,
    /// protocols, AS numbers; sampled (thresholds above some sizes) when `sampled`.
    fn batch(g: &mut Gen, n: usize, sampled: bool, v6: bool) -> Batch {
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut w = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let a = if v6 && g.below(8) == 0 {
                (0x2001_0db8u128 << 96) | u128::from(g.below(50))
            } else if v6 && g.below(20) == 0 {
                // IPv6 addresses that fit 64 bits (::1, ::2, ...).
                u128::from(g.below(20))
            } else {
                Addr::from_v4_u32(0x0a00_0000 + g.below(3000) as u32).0
            };
            cols.0.push(a);
            cols.1.push(g.below(65) as u16 * 1000);
            cols.2.push([6u8, 17, 1][g.below(3) as usize]);
            cols.3.push(g.below(40) as u32);
            let bytes = 40 + g.below(100_000);
            w.0.push(bytes);
            w.1.push(1 + g.below(200));
            w.2.push(u8::from(g.below(5) == 0));
            w.3.push(if sampled && g.below(2) == 0 {
                bytes + g.below(50_000)
            } else {
                0
            });
        }
        Batch::from_columns(
            vec![
                (Field::SrcAddr, OwnedColumn::Addr(cols.0)),
                (Field::DstPort, OwnedColumn::U16(cols.1)),
                (Field::Proto, OwnedColumn::U8(cols.2)),
                (Field::SrcAs, OwnedColumn::U32(cols.3)),
                (Field::Bytes, OwnedColumn::U64(w.0)),
                (Field::Packets, OwnedColumn::U64(w.1)),
                (Field::Continued, OwnedColumn::U8(w.2)),
            ],
            w.3,
        )
        .expect("test batch")
    }

    /// Every group of `top` by a naive reference: each record's key and weights, summed in
    /// record order.
    fn naive(by: &KeySpec, batches: &[Batch], rows: &[Option<Vec<u32>>]) -> BTreeMap<u128, TopAcc> {
        let mut out: BTreeMap<u128, TopAcc> = BTreeMap::new();
        for (b, r) in batches.iter().zip(rows) {
            let c = WeightColumns::of(b);
            let all: Vec<usize> = match r {
                Some(r) => r.iter().map(|&i| i as usize).collect(),
                None => (0..b.len()).collect(),
            };
            for i in all {
                let key = match b.column(by.field).expect("loaded") {
                    ColumnRef::Addr(a) => {
                        let a = Addr(a[i]);
                        a.masked(if a.is_v4() { by.v4_len } else { by.v6_len }).0
                    }
                    c => u128::from(c.u64_at(i).expect("integer")),
                };
                let mut v = TopAcc::default();
                for (m, &metric) in METRICS.iter().enumerate() {
                    let (w, var) = c.get(i, metric);
                    v.sums[m] = w;
                    if m == 2 {
                        v.var = var;
                    }
                }
                out.entry(key).or_default().combine(v);
            }
        }
        out
    }

    /// A pick of the first n over many groups (cut as it goes, skipping groups below the
    /// n-th) keeps the same groups, in the same order, as sorting them all; ties (equal values,
    /// ranked by key) included.
    #[test]
    fn picks_keep_the_first_n_as_a_full_sort() {
        for seed in 1..40u64 {
            let mut g = Gen(flowdrill_store::sampling::Rng::new(seed));
            let n = 1 + g.below(30) as usize;
            let groups: Vec<(u128, TopAcc)> = (0..g.below(3000))
                .map(|i| {
                    let v = g.below(if seed % 2 == 0 { 20 } else { 1_000_000 }) as f64;
                    let key = u128::from(g.below(1 << 20)) << 8 | u128::from(i % 256);
                    (
                        key,
                        TopAcc {
                            sums: [0.0, 0.0, v],
                            var: 0.0,
                        },
                    )
                })
                .collect();
            let mut pick = Pick::new(n, 2);
            for &(k, a) in &groups {
                pick.visit(k, a);
            }
            let got = top_of(pick.best, n, 2);
            let mut want = groups.clone();
            sort_ranked(&mut want, 2);
            want.truncate(n);
            assert_eq!(got, want, "seed {seed}");
            assert_eq!(pick.distinct, groups.len());
        }
    }

    /// A worker's IPv4 table is sized from the bins' sketches of the key's addresses: about
    /// the distinct addresses of its bins (not of the others), none with a filter or a prefix,
    /// at most the bound.
    #[test]
    fn tables_are_sized_from_the_sketches_of_the_bins_read() {
        use flowdrill_model::FlowRecord;
        use flowdrill_store::{Store, StoreWriter, WriterOptions};
        let dir = std::env::temp_dir().join(format!("fd-run-sketch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::create(&dir).unwrap();
        s.set_links("[defaults]\nbin = \"5m\"\nbudget = \"20GB\"\n")
            .unwrap();
        let mut w = StoreWriter::new(&s, WriterOptions::default()).unwrap();
        // Two bins of 20,000 sources and 300 destinations each, no source in both, and a
        // small third bin of 100 records (counted as 100 keys, its footer not read).
        let t0 = 1_700_000_100_000u64 / 300_000 * 300_000;
        let records = (0..40_100u32).map(|i| {
            let bin = u64::from(i / 20_000);
            FlowRecord {
                time_start: t0 + bin * 300_000 + u64::from(i % 1000),
                time_end: t0 + bin * 300_000 + u64::from(i % 1000) + 10,
                // The second bin's sources are IPv6.
                src_addr: if bin == 1 {
                    Addr((0x2001_0db8u128 << 96) | u128::from(i))
                } else {
                    Addr::from_v4_u32(0x0a00_0000 + i)
                },
                dst_addr: Addr::from_v4_u32(0xc000_0200 + i % 300),
                packets: 1,
                bytes: 100,
                proto: 6,
                ..FlowRecord::default()
            }
        });
        w.push_all(records).unwrap();
        w.finish().unwrap();
        s.refresh().unwrap();
        let e = Engine::new(s, 0);
        let bins = e.store.bins("default", 0..u64::MAX, 0).unwrap();
        assert_eq!(bins.len(), 3);
        let all = Selection::all();
        let near = |got: usize, want: usize| {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.05, "{got} for {want}");
        };
        let src = (Field::SrcAddr, 32);
        let keys =
            |sel: &Selection, bound, by, bins: &[BinRef]| expected_keys(&e, sel, bound, by, bins);
        // Sources: the second bin's are IPv6 (none are IPv4 there); the small bin's 100
        // records count for either family.
        let k = keys(&all, Bound::Exact, src, &bins);
        near(k.v4, 20_100);
        near(k.v6.unwrap(), 20_100);
        let k = keys(&all, Bound::Exact, src, &bins[..1]);
        near(k.v4, 20_000);
        assert_eq!(k.v6, Some(0));
        let k = keys(&all, Bound::Exact, src, &bins[1..2]);
        assert!(k.v4 < 400, "{k:?}");
        near(k.v6.unwrap(), 20_000);
        assert_eq!(
            keys(&all, Bound::Exact, src, &bins[2..]),
            Expected {
                v4: 100,
                v6: Some(100)
            }
        );
        let k = keys(&all, Bound::Exact, (Field::DstAddr, 32), &bins);
        near(k.v4, 400);
        assert_eq!(k.v6, Some(100));
        assert_eq!(keys(&all, Bound::Records(1000), src, &bins).v4, 1000);
        for by in [(Field::SrcAddr, 24), (Field::SrcPort, 32)] {
            assert_eq!(keys(&all, Bound::Exact, by, &bins), Expected::default());
        }
        assert_eq!(k.per_worker(2).v6, Some(50));
        let filtered = Selection {
            filter: Some(crate::parse_filter("proto tcp", &e.custom_fields()).unwrap()),
            ..Selection::all()
        };
        assert_eq!(
            keys(&filtered, Bound::Exact, src, &bins),
            Expected::default()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `top`'s groups (exact sums while nothing is sampled, arrays for small keys, flat
    /// tables otherwise, over one to three workers) equal the naive reference's.
    #[test]
    fn top_groups_agree_with_a_naive_reference() {
        let keys = [
            KeySpec::parse("srcip").unwrap(),
            KeySpec::parse("srcip/24,64").unwrap(),
            KeySpec::parse("dstport").unwrap(),
            KeySpec::parse("proto").unwrap(),
            KeySpec::parse("srcas").unwrap(),
        ];
        for seed in 1..30u64 {
            let mut g = Gen(flowdrill_store::sampling::Rng::new(seed));
            let by = keys[seed as usize % keys.len()];
            // Seeds 0 mod 3: nothing sampled; 1 mod 3: the last batch sampled; else all.
            let nb = 1 + g.below(6) as usize;
            let batches: Vec<Batch> = (0..nb)
                .map(|i| {
                    let sampled = match seed % 3 {
                        0 => false,
                        1 => i + 1 == nb,
                        _ => true,
                    };
                    let n = 1 + g.below(5000) as usize;
                    batch(&mut g, n, sampled, seed % 4 != 1)
                })
                .collect();
            let rows: Vec<Option<Vec<u32>>> = batches
                .iter()
                .map(|b| {
                    (g.below(2) == 0)
                        .then(|| (0..b.len() as u32).filter(|_| g.below(3) > 0).collect())
                })
                .collect();
            let want = naive(&by, &batches, &rows);
            let workers = 1 + (seed as usize / 3) % 3;
            let per = nb.div_ceil(workers);
            // Exact sums packed (in a layout for the batches' totals) on odd seeds.
            let layout = (seed % 2 == 1)
                .then(|| {
                    let c: Vec<WeightColumns<'_>> = batches.iter().map(WeightColumns::of).collect();
                    let n: u64 = batches.iter().map(|b| b.len() as u64).sum();
                    let p = c.iter().map(|c| packed::sum_wide(c.packets)).sum::<u128>();
                    let b = c.iter().map(|c| packed::sum_wide(c.bytes)).sum::<u128>();
                    Layout::for_totals(n, p as u64, b as u64, workers)
                })
                .flatten();
            let mut states = Vec::new();
            // Tables sized for few keys (they grow) or for more (the IPv6 one is then sized
            // after the first keys: `Groups::size_wide`).
            let expect = Expected {
                v4: [100, 4000][seed as usize % 2],
                v6: [None, Some(50), None, Some(3000)][seed as usize % 4],
            };
            for w in 0..workers {
                let mut st = TopState::with_keys(expect, layout);
                for i in (w * per).min(nb)..((w + 1) * per).min(nb) {
                    let b = &batches[i];
                    let rw = RowWeights::Records(WeightColumns::of(b));
                    assert_eq!(
                        st.add(&by, b, rw, 2, rows[i].as_deref()),
                        Ok(()),
                        "an unsharded state takes every batch"
                    );
                }
                states.push(st);
            }
            let mut picks = vec![merge_states(states, 1 << 20, 2)];
            // Sharded (the workers at once, the keys shared out): a state refuses a
            // batch with sampled records; otherwise the same groups.
            if workers > 1 {
                let (batches, rows) = (&batches, &rows);
                let run = |w: usize, shard| {
                    let mut st = TopState::sharded(expect, layout, shard);
                    let mut all_added = true;
                    for i in (w * per).min(nb)..((w + 1) * per).min(nb) {
                        let b = &batches[i];
                        let rw = RowWeights::Records(WeightColumns::of(b));
                        all_added &= st.add(&by, b, rw, 2, rows[i].as_deref()).is_ok();
                    }
                    st.finish();
                    (st, all_added)
                };
                let done: Vec<(TopState, bool)> = std::thread::scope(|s| {
                    let hs: Vec<_> = any_shards(workers, layout.is_some())
                        .into_iter()
                        .enumerate()
                        .map(|(w, shard)| s.spawn(move || run(w, shard)))
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let sampled = batches.iter().any(|b| b.sample_z().iter().any(|&z| z > 0));
                assert_eq!(
                    done.iter().all(|d| d.1),
                    !sampled,
                    "seed {seed}: sharded states take exactly the unsampled batches"
                );
                if !sampled {
                    let states = done.into_iter().map(|d| d.0).collect();
                    picks.push(merge_states(states, 1 << 20, 2));
                }
            }
            for pick in picks {
                let got: BTreeMap<u128, TopAcc> = pick.best.into_iter().collect();
                assert_eq!(pick.distinct, want.len(), "seed {seed}");
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    want.keys().collect::<Vec<_>>(),
                    "seed {seed}"
                );
                for (k, a) in &want {
                    let b = got[k];
                    for m in 0..3 {
                        let tol = 1e-9 * a.sums[m].abs().max(1.0);
                        assert!(
                            (a.sums[m] - b.sums[m]).abs() <= tol,
                            "seed {seed} key {k}: {a:?} vs {b:?}"
                        );
                    }
                    assert!(
                        (a.var - b.var).abs() <= 1e-9 * a.var.max(1.0),
                        "seed {seed}"
                    );
                    if seed % 3 == 0 {
                        assert_eq!(*a, b, "seed {seed}: exact sums differ");
                    }
                }
            }
        }
    }
}
