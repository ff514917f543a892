//! [`StoreWriter`]: records in, bin files out.
//!
//! ```text
//! push(record) ─ route (links file) ─┬─ drop (counted per rule)
//!                                    └─ link ─ split over level-0 bins ─ open bin: records + exact stats
//! advance(t) / finish ─ close level-0 bin:
//!     z0 = threshold fitting the level-0 budget ─ sample ─ write  link=L/level=0/…
//!     for each coarser level k: z_k ≥ z_(k−1) fitting this bin's share of level k's budget,
//!     re-threshold the level k−1 sample ─ append to the open level-k bin (+ merged stats)
//! advance(t) / finish ─ close level-k bin ─ write link=L/level=k/…
//! ```
//!
//! Sorting, encoding and writing closed bins happen on encoder threads (one per core, at most
//! two, so at most two bins are encoded at once) while records keep coming; files are taken
//! into the catalog in the order the bins closed. An error there is returned by the next
//! [`StoreWriter::advance`] or by [`StoreWriter::finish`], which waits for every file.
//!
//! Memory is bounded by the records of the open level-0 bins (close them with
//! [`StoreWriter::advance`], or let [`WriterOptions::auto_close_after_ms`] do it) plus the
//! samples of the open coarser bins (each within its budget), plus the emptied records
//! vectors of two closed bins, kept for reuse (`SPARES`).
//!
//! Budgets are hard: after encoding, a file larger than its bin budget is re-thresholded at a
//! larger `z` and encoded again until it fits ([`Error::BudgetTooSmall`] if not even an empty
//! file fits). Records for a bin already on disk (late data, a restarted writer) are merged
//! with it: the union of two threshold samples with per-record thresholds is a valid sample.
//! The automatic close gathers such late records per bin and merges them in bulk (see
//! `late_limit`), so that a file is rewritten a few times at most, not once per late record.

use crate::batch::Batch;
use crate::config::{LinksConfig, Route};
use crate::error::{Error, Result};
use crate::format::{self, FileMeta};
use crate::layout;
use crate::sampling::{self, Rng};
use crate::stats::BinStats;
use crate::store::{self, BinRef, Store};
use flowdrill_model::hll::{hash_u64, mix64};
use flowdrill_model::{ColumnRef, CustomFields, Field, FlowRecord};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};

/// How a writer behaves.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The user-defined elements records may carry (their values become extra columns).
    pub custom: CustomFields,
    /// Seed of the sampling decisions (a bin's coin flips depend on it, the link, the level
    /// and the bin start only, so a re-run is reproducible).
    pub seed: u64,
    /// Close a bin once a record *starting* this many ms after the bin's end has been pushed.
    /// For a collector, records arrive when flows end, up to the exporter's active timeout
    /// after they start: set at least that. For a source ordered by start time, 0 works.
    /// Records that still arrive for a closed bin are merged into its file (slower).
    /// `None`: bins close only on [`StoreWriter::advance`] and [`StoreWriter::finish`].
    pub auto_close_after_ms: Option<u64>,
    /// A flow spanning more level-0 bins than this is not split (see [`sampling::split`]).
    pub max_split_bins: u64,
    /// Adaptive sampling of open bins, for a collector whose memory must stay bounded
    /// whatever the traffic: an open level-0 bin holds at most this many records, or twice
    /// what its disk budget is expected to keep when that is fewer. Past it, the
    /// bin's threshold `z` is raised so that about half of them are expected to stay, the held
    /// records are re-thresholded, and later records of the bin are sampled on arrival at that
    /// `z` (ORACLES §3: re-thresholding keeps the estimates unbiased). The bin's exact
    /// statistics (counters, sketches) are taken before this sampling. `None`: open bins grow
    /// without bound (imports, where `advance` bounds them).
    pub max_open_records: Option<usize>,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            custom: CustomFields::default(),
            seed: 0x5eed,
            auto_close_after_ms: None,
            max_split_bins: 288,
            max_open_records: None,
        }
    }
}

/// One bin file written.
#[derive(Clone, Debug, PartialEq)]
pub struct BinSummary {
    pub link: String,
    pub level: u8,
    pub start: u64,
    /// Records of the bin before sampling.
    pub records_before: u64,
    /// Records written.
    pub records_after: u64,
    /// Largest threshold in the file (0 = not sampled).
    pub z_max: u64,
    pub file_bytes: u64,
    pub budget: u64,
    /// True when the bin already existed and the new records were merged into it.
    pub merged: bool,
}

/// Per-link totals of what was pushed (after splitting, before sampling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkTotals {
    pub flows: u64,
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// What a writer did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteSummary {
    /// Records pushed.
    pub records_in: u64,
    /// Records dropped, by rule name.
    pub dropped: BTreeMap<String, u64>,
    pub per_link: BTreeMap<String, LinkTotals>,
    /// Flows longer than `max_split_bins` bins, stored whole in the bin of their end.
    pub overlong: u64,
    /// Records for a level-0 bin that had already been closed (merged into its file).
    pub late: u64,
    /// Bin files written, in order.
    pub bins: Vec<BinSummary>,
    /// Existing bin files that were unreadable and were replaced, with the reason.
    pub replaced_corrupt: Vec<(PathBuf, String)>,
    /// Times an open bin reached [`WriterOptions::max_open_records`] and its threshold was
    /// raised.
    pub open_resamples: u64,
    /// Records (parts) left out by the adaptive sampling of open bins (they are in the bins'
    /// exact statistics and stand in the estimates through the kept records' weights).
    pub open_sampled_out: u64,
}

struct OpenBin {
    /// Every held record was kept with probability `min(1, bytes / z)` (0: all kept).
    records: Vec<FlowRecord>,
    stats: BinStats,
    /// The bin's threshold so far (raised by adaptive sampling; 0 = unsampled).
    z: u64,
    /// Coin flips of the adaptive sampling (seeded per link and bin, as at close).
    rng: Option<Rng>,
    /// Records it may hold before adaptive sampling ([`open_cap_of`], refreshed at
    /// each raise; `usize::MAX` without [`WriterOptions::max_open_records`]).
    cap: usize,
    /// For a bin that was already closed (late records, merged into its file when it closes):
    /// the records it gathers before the automatic close merges it ([`late_limit`]).
    late_limit: Option<usize>,
}

struct CoarseBin {
    batch: Batch,
    stats: BinStats,
    records_before: u64,
}

/// Writes flow records into a store (see the module doc).
#[derive(Debug)]
pub struct StoreWriter {
    root: PathBuf,
    config: LinksConfig,
    opts: WriterOptions,
    /// Looked up once per record: a fast hash (the default SipHash was 5 % of a push).
    open0: HashMap<(usize, u64), OpenBin, foldhash::fast::FixedState>,
    /// Per link, the records its last closed level-0 bin held: a new current bin reserves
    /// about that much at once instead of growing (copying) its records vector by doubling.
    last_held: HashMap<usize, usize>,
    spares: Spares,
    /// Records held in reopened (late) level-0 bins, and whether one of them reached its
    /// limit or all of them [`LATE_HELD_MAX`].
    late_held: usize,
    late_due: bool,
    coarse: HashMap<(usize, u8, u64), CoarseBin>,
    /// Learned bytes per stored record and fixed file overhead, per (link, level).
    bpr: HashMap<(usize, u8), f64>,
    overhead: HashMap<(usize, u8), u64>,
    /// The latest start time pushed; drives auto-close.
    max_seen: u64,
    /// Every level-0 bin ending at or before this was closed by `advance`.
    closed_until: u64,
    pending: Vec<BinRef>,
    /// Per-link totals, by link index (copied into the summary's map by name).
    totals: Vec<LinkTotals>,
    /// The encoder threads (bins are sorted, encoded and written there while records keep
    /// coming), and the bins they have not finished, in submission order, each with the
    /// channel its result comes back on.
    worker: Option<Worker>,
    in_flight: std::collections::VecDeque<(PathBuf, Receiver<Result<Done>>)>,
    summary: WriteSummary,
}

impl std::fmt::Debug for OpenBin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenBin({} records)", self.records.len())
    }
}
impl std::fmt::Debug for CoarseBin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CoarseBin({} records)", self.batch.len)
    }
}

/// The row order of a bin file: by address family (IPv4 first, see [`ipv6_rows`]), exporter,
/// input interface, protocol, destination port, destination and source address, then start
/// time. Rows of one router interface and one service sit together, so every column has long
/// similar runs: on the demo scenario this takes a file from 21 to 17 bytes per record
/// against sorting by time alone.
const SORT_KEY: [Field; 7] = [
    Field::Exporter,
    Field::InIf,
    Field::Proto,
    Field::DstPort,
    Field::DstAddr,
    Field::SrcAddr,
    Field::TimeStart,
];

fn sort_for_compression(batch: Batch) -> Batch {
    use flowdrill_model::ColumnSource;
    let mut cols: Vec<ColumnRef<'_>> = SORT_KEY.iter().filter_map(|&f| batch.column(f)).collect();
    if cols.len() != SORT_KEY.len() {
        return batch;
    }
    let v6 = ipv6_rows(&batch);
    if !v6.is_empty() {
        cols.insert(0, ColumnRef::U8(&v6));
    }
    let order = sort_order(&cols, batch.len);
    drop(cols);
    batch.into_take(&order)
}

/// 1 for each row with an IPv6 address, else 0 (empty when every row is IPv4). The rows of
/// each family then sit together, first of all: a chunk a query reads holds one family, so its
/// IPv4 addresses stay 4-byte integers and neither address column has nulls in it to spread.
fn ipv6_rows(batch: &Batch) -> Vec<u8> {
    use flowdrill_model::{Addr, ColumnSource};
    // A column kept as 4-byte integers holds no IPv6 address (and is not widened here).
    let addrs = |f| match batch.addrs_v4(f) {
        Some(_) => None,
        None => match batch.column(f) {
            Some(ColumnRef::Addr(a)) => Some(a),
            _ => None,
        },
    };
    match (addrs(Field::SrcAddr), addrs(Field::DstAddr)) {
        (None, None) => Vec::new(),
        (s, d) => (0..batch.len)
            .map(|i| {
                let v6 = |a: Option<&[u128]>| a.is_some_and(|a| !Addr(a[i]).is_v4());
                u8::from(v6(s) || v6(d))
            })
            .collect(),
    }
}

/// Value `i` of a sort-key column.
#[inline]
fn key_value(c: &ColumnRef<'_>, i: usize) -> u128 {
    match c {
        ColumnRef::Addr(v) => v[i],
        other => other.u64_at(i).unwrap_or(0) as u128,
    }
}

/// The row order of `n` rows by the columns `cols` in turn, ties by row number.
///
/// The columns are packed, in order, into 128-bit words, each as its offset from the column's
/// minimum in as many bits as its range needs; a column that does not fit the current word
/// starts the next. On typical bins every column fits the first word (one exporter, a few
/// interfaces, IPv4 addresses, times within a bin), so the sort moves 32 bytes per row
/// instead of the full key's 128. The later words (IPv6 addresses, say) order each run of
/// equal first words afterwards, so the order is the same as a sort by the full key.
fn sort_order(cols: &[ColumnRef<'_>], n: usize) -> Vec<usize> {
    assert!(n <= u32::MAX as usize, "a bin holds fewer than 2^32 rows");
    // Per word, its (column, minimum, bits).
    let mut words: Vec<Vec<(&ColumnRef<'_>, u128, u32)>> = vec![Vec::new()];
    let mut used = 0u32;
    for c in cols {
        let (mut lo, mut hi) = (u128::MAX, 0u128);
        for i in 0..n {
            let v = key_value(c, i);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let bits = if n == 0 {
            0
        } else {
            128 - (hi - lo).leading_zeros()
        };
        if used + bits > 128 {
            words.push(Vec::new());
            used = 0;
        }
        words
            .last_mut()
            .expect("one word at least")
            .push((c, lo, bits));
        used += bits;
    }
    let mut keyed: Vec<(u128, u32)> = (0..n).map(|i| (pack(&words[0], i), i as u32)).collect();
    keyed.sort_unstable();
    let rest = &words[1..];
    match rest.len() {
        0 => {}
        1 => sort_runs::<1>(&mut keyed, rest),
        2 => sort_runs::<2>(&mut keyed, rest),
        3 => sort_runs::<3>(&mut keyed, rest),
        4 => sort_runs::<4>(&mut keyed, rest),
        _ => {
            // More columns than the file's sort key has: the later words of every row.
            let w = rest.len();
            let later: Vec<u128> = (0..n)
                .flat_map(|i| rest.iter().map(move |word| pack(word, i)))
                .collect();
            let of = |i: u32| &later[i as usize * w..(i as usize + 1) * w];
            for run in keyed.chunk_by_mut(|a, b| a.0 == b.0) {
                if run.len() > 1 {
                    run.sort_unstable_by(|a, b| of(a.1).cmp(of(b.1)).then(a.1.cmp(&b.1)));
                }
            }
        }
    }
    keyed.into_iter().map(|(_, i)| i as usize).collect()
}

/// The columns packed into one word of a sort key: (column, minimum, bits).
type Word<'a, 'b> = [(&'a ColumnRef<'b>, u128, u32)];

/// Row `i`'s value of a word of the sort key.
#[inline]
fn pack(word: &Word<'_, '_>, i: usize) -> u128 {
    let mut k = 0u128;
    for &(c, lo, bits) in word {
        let v = key_value(c, i) - lo;
        k = if bits == 128 { v } else { (k << bits) | v };
    }
    k
}

/// Orders each run of equal first words of `keyed` by the `W` later words, then row number.
fn sort_runs<const W: usize>(keyed: &mut [(u128, u32)], rest: &[Vec<(&ColumnRef<'_>, u128, u32)>]) {
    // The later words of every row, computed in row order (reading each column in turn) and
    // gathered side by side per run: looking them up per comparison, or per row in sorted
    // order from the columns, would miss the cache (runs are large: one interface, protocol
    // and service).
    let later: Vec<[u128; W]> = (0..keyed.len())
        .map(|i| std::array::from_fn(|w| pack(&rest[w], i)))
        .collect();
    let mut buf: Vec<([u128; W], u32)> = Vec::new();
    for run in keyed.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            buf.clear();
            buf.extend(run.iter().map(|&(_, i)| (later[i as usize], i)));
            buf.sort_unstable();
            for (slot, &(_, i)) in run.iter_mut().zip(&buf) {
                slot.1 = i;
            }
        }
    }
}

/// The fewest records a reopened (late) bin gathers before the automatic close merges it.
const LATE_MIN: usize = 1 << 16;

/// Records all reopened bins may hold together before the largest are merged (about 330 MB).
const LATE_HELD_MAX: usize = 1 << 21;

/// The records a reopened bin of a link gathers before the automatic close merges it into its
/// file: a quarter of what the link's last bin held (at least [`LATE_MIN`]), so that
/// rewriting files for late records costs at most a few times writing them once.
fn late_limit(last_held: usize) -> usize {
    (last_held / 4).max(LATE_MIN)
}

/// The most records a new open bin reserves room for up front.
const MAX_RESERVE: usize = 1 << 20;

/// The records a current open bin of a link makes room for: what the link's last bin held
/// and a quarter more, within the bin's cap. Growing the records vector copies it into new
/// memory, whose pages the kernel zeroes as they are first written (most of a push's time
/// when it happened for every bin); room never written costs no memory.
fn bin_room(last_held: usize, cap: usize) -> usize {
    last_held
        .saturating_add(last_held / 4)
        .min(cap.saturating_add(1))
        .min(MAX_RESERVE)
}

/// The cap of an open level-0 bin of link `k`: `max` or, when smaller, twice the records its
/// disk budget is expected to keep (at least 1000): holding more would only be sampled away
/// when the bin closes.
fn open_cap_of(
    config: &LinksConfig,
    bpr: &HashMap<(usize, u8), f64>,
    k: usize,
    max: usize,
) -> usize {
    let lc = &config.links[k].levels[0];
    let per_record = bpr
        .get(&(k, 0))
        .copied()
        .unwrap_or(INITIAL_BYTES_PER_RECORD);
    let disk = 2.0 * (lc.bin_budget() as f64 / per_record).max(0.0);
    let disk = disk.clamp(1000.0, usize::MAX as f64 / 2.0) as usize;
    max.min(disk).max(1)
}

/// A first guess of bytes per stored record, refined from every file written.
const INITIAL_BYTES_PER_RECORD: f64 = 16.0;

impl StoreWriter {
    /// A writer into `store`, with its links file.
    pub fn new(store: &Store, opts: WriterOptions) -> Result<StoreWriter> {
        format::check_custom(&opts.custom)?;
        if opts.max_split_bins == 0 {
            return Err(Error::InvalidArgument(
                "max_split_bins must be at least 1".into(),
            ));
        }
        Ok(StoreWriter {
            root: store.root().to_path_buf(),
            config: store.config().clone(),
            opts,
            open0: HashMap::default(),
            last_held: HashMap::new(),
            spares: Spares::default(),
            late_held: 0,
            late_due: false,
            coarse: HashMap::new(),
            bpr: HashMap::new(),
            overhead: HashMap::new(),
            max_seen: 0,
            closed_until: 0,
            pending: Vec::new(),
            totals: vec![LinkTotals::default(); store.config().links.len()],
            worker: None,
            in_flight: Default::default(),
            summary: WriteSummary::default(),
        })
    }

    /// The summary so far.
    pub fn summary(&self) -> WriteSummary {
        let mut s = self.summary.clone();
        for (l, t) in self.config.links.iter().zip(&self.totals) {
            if t.flows > 0 {
                s.per_link.insert(l.name.clone(), *t);
            }
        }
        s
    }

    /// Records pushed so far (cheaper than [`StoreWriter::summary`], which copies the list of
    /// bins written).
    pub fn records_in(&self) -> u64 {
        self.summary.records_in
    }

    /// Records pushed for bins already closed (merged into their files), records dropped by
    /// link rules, and records left out by the adaptive sampling of open bins, so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let dropped = self.summary.dropped.values().sum();
        (self.summary.late, dropped, self.summary.open_sampled_out)
    }

    /// The shortest level-0 bin of any link, ms.
    pub fn min_bin_ms(&self) -> u64 {
        self.config
            .links
            .iter()
            .map(|l| l.levels[0].bin_ms)
            .min()
            .unwrap_or(300_000)
    }

    /// Records held in open level-0 bins (the writer's memory, roughly × 200 bytes).
    pub fn buffered_records(&self) -> usize {
        self.open0.values().map(|b| b.records.len()).sum()
    }

    /// Adds one record, in any time order.
    pub fn push(&mut self, r: FlowRecord) -> Result<()> {
        self.summary.records_in += 1;
        let k = match self.config.route(&r) {
            Route::Drop(i) => {
                *self
                    .summary
                    .dropped
                    .entry(self.config.rules[i].name.clone())
                    .or_default() += 1;
                return Ok(());
            }
            Route::Link(k) => k,
        };
        let bin_ms = self.config.links[k].levels[0].bin_ms;
        let r_start = r.time_start;
        let end = r.time_end.max(r.time_start);
        let first = r.time_start - r.time_start % bin_ms;
        self.totals[k].flows += 1;
        if end <= first.saturating_add(bin_ms) {
            // The common case: the flow lies in one bin; no split, no copy.
            self.add_part(k, bin_ms, first, r, true);
        } else {
            let (parts, overlong) = sampling::split(&r, bin_ms, self.opts.max_split_bins);
            self.summary.overlong += overlong as u64;
            for (i, part) in parts.into_iter().enumerate() {
                self.add_part(k, bin_ms, part.bin_start, part.record, i == 0);
            }
        }
        if r_start > self.max_seen {
            self.max_seen = r_start;
            if let Some(lag) = self.opts.auto_close_after_ms {
                let wm = self.max_seen.saturating_sub(lag);
                if self
                    .open0
                    .iter()
                    .any(|(&key, b)| self.due0(key, b, wm, false))
                {
                    self.close_until(wm, false)?;
                }
            }
        }
        if self.late_due {
            self.close_full_late()?;
        }
        Ok(())
    }

    /// Files one record (or part of a split flow) into its open level-0 bin.
    #[inline]
    fn add_part(
        &mut self,
        k: usize,
        bin_ms: u64,
        bin_start: u64,
        rec: FlowRecord,
        starts_flow: bool,
    ) {
        let totals = &mut self.totals[k];
        totals.records += 1;
        totals.packets += rec.packets;
        totals.bytes += rec.bytes;
        let late = bin_start.saturating_add(bin_ms) <= self.closed_until;
        if late {
            self.summary.late += 1;
        }
        let bin = match self.open0.entry((k, bin_start)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let cap = self.opts.max_open_records.map_or(usize::MAX, |max| {
                    open_cap_of(&self.config, &self.bpr, k, max)
                });
                // A current bin expects what the last one held; a late bin, or a later bin
                // that a split flow's part opens, starts small (it makes room for a bin's
                // worth once current and full, below).
                let held = self.last_held.get(&k).copied().unwrap_or(0);
                let reserve = if late || bin_start > self.max_seen {
                    0
                } else {
                    bin_room(held, cap)
                };
                let mut records = Vec::new();
                self.spares.make_room(&mut records, reserve);
                e.insert(OpenBin {
                    records,
                    stats: BinStats::default(),
                    z: 0,
                    rng: None,
                    cap,
                    late_limit: late.then(|| late_limit(held)),
                })
            }
        };
        // Exact statistics first: they count every record, sampled out or not.
        bin.stats.add(&rec, starts_flow);
        if bin.z > 0 {
            let rng = bin.rng.get_or_insert_with(|| Rng::new(bin_start ^ 0xada9));
            if !sampling::keep(rec.bytes, bin.z, rng) {
                self.summary.open_sampled_out += 1;
                return;
            }
        }
        let bin = if bin.records.len() == bin.records.capacity()
            && bin.late_limit.is_none()
            && bin_start <= self.max_seen
        {
            // A current bin opened small (by a split flow's part, or before its link's last
            // bin closed): once full, it takes room for a bin's worth at once rather than
            // doubling: what the link's last bin held or, when more, what its other open
            // bins hold.
            let cap = bin.cap;
            let open = self
                .open0
                .iter()
                .filter(|&(&(l, s), b)| l == k && s != bin_start && b.late_limit.is_none())
                .map(|(_, b)| b.records.len())
                .max()
                .unwrap_or(0);
            let held = self.last_held.get(&k).copied().unwrap_or(0).max(open);
            let bin = self.open0.get_mut(&(k, bin_start)).expect("bin just used");
            self.spares.make_room(&mut bin.records, bin_room(held, cap));
            bin
        } else {
            bin
        };
        bin.records.push(rec);
        if let Some(limit) = bin.late_limit {
            self.late_held += 1;
            if bin.records.len() >= limit || self.late_held > LATE_HELD_MAX {
                self.late_due = true;
            }
        }
        if bin.records.len() > bin.cap
            && let Some(max) = self.opts.max_open_records
        {
            self.resample_open(k, bin_start, max);
        }
    }

    /// Adaptive sampling of a full open bin: raise its `z` so that about half the cap is
    /// expected to stay, and re-threshold the held records (ORACLES §3).
    fn resample_open(&mut self, k: usize, bin_start: u64, max: usize) {
        // The cap again: the bytes per record on disk may have been learnt since.
        let cap = open_cap_of(&self.config, &self.bpr, k, max);
        let rng_seed = self.rng_for(k, 0, bin_start ^ 0x0be2).next_u64();
        let bin = self.open0.get_mut(&(k, bin_start)).expect("bin just used");
        bin.cap = cap;
        if bin.records.len() <= cap {
            return;
        }
        let z_old = bin.z;
        let sizes: Vec<u64> = bin.records.iter().map(|r| r.bytes).collect();
        let z_new = sampling::raise_threshold(&sizes, z_old, cap as f64 / 2.0);
        let rng = bin.rng.get_or_insert_with(|| Rng::new(rng_seed));
        let before = bin.records.len();
        bin.records
            .retain(|r| sampling::rethreshold(r.bytes, z_old, z_new, rng));
        if bin.late_limit.is_some() {
            self.late_held -= before - bin.records.len();
        }
        bin.z = z_new.max(z_old);
        self.summary.open_resamples += 1;
        self.summary.open_sampled_out += (before - bin.records.len()) as u64;
    }

    /// The largest threshold of the open level-0 bins, per link (links without a sampled
    /// open bin are absent): the collector's "current z".
    pub fn open_z(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (&(k, _), b) in &self.open0 {
            if b.z > 0 {
                let e = out.entry(self.config.links[k].name.clone()).or_insert(0);
                *e = (*e).max(b.z);
            }
        }
        out
    }

    /// Open level-0 bins (all links).
    pub fn open_bins(&self) -> usize {
        self.open0.len()
    }

    /// Adds many records.
    pub fn push_all(&mut self, records: impl IntoIterator<Item = FlowRecord>) -> Result<()> {
        for r in records {
            self.push(r)?;
        }
        Ok(())
    }

    /// Declares that no more records will arrive before `watermark` (Unix ms): every bin (of
    /// every level) ending at or before it is closed and written.
    pub fn advance(&mut self, watermark: u64) -> Result<()> {
        self.close_until(watermark, true)
    }

    /// Closes the bins due at `watermark`. Without `with_late` (the automatic close), bins
    /// reopened by late records stay open until they hold their [`late_limit`], all of them
    /// [`LATE_HELD_MAX`], or an explicit [`StoreWriter::advance`] or
    /// [`StoreWriter::finish`]: each close of such a bin reads, merges and rewrites its whole
    /// file, and flows exported long after they started (a long flow leaves a part in every
    /// bin it spans) would otherwise rewrite every bin many times over.
    fn close_until(&mut self, watermark: u64, with_late: bool) -> Result<()> {
        let mut due: Vec<(usize, u64)> = self
            .open0
            .iter()
            .filter(|&(&key, b)| self.due0(key, b, watermark, with_late))
            .map(|(&key, _)| key)
            .collect();
        due.sort_by_key(|&(k, s)| (s, k));
        for key in due {
            self.close_open0(key)?;
        }
        self.closed_until = self.closed_until.max(watermark);
        self.close_coarse_until(watermark)
    }

    /// Whether the open level-0 bin `key` closes at `watermark`: it ends at or before it and,
    /// unless `with_late`, it is not a reopened (late) bin.
    fn due0(
        &self,
        (k, start): (usize, u64),
        bin: &OpenBin,
        watermark: u64,
        with_late: bool,
    ) -> bool {
        (with_late || bin.late_limit.is_none())
            && start.saturating_add(self.config.links[k].levels[0].bin_ms) <= watermark
    }

    fn close_open0(&mut self, key: (usize, u64)) -> Result<()> {
        let bin = self.open0.remove(&key).expect("an open bin");
        if bin.late_limit.is_some() {
            self.late_held -= bin.records.len();
        } else {
            self.last_held.insert(key.0, bin.records.len());
        }
        self.close_level0(key.0, key.1, bin)
    }

    /// Merges the late bins that reached their limit and, while late bins hold more than
    /// [`LATE_HELD_MAX`] records, the largest of them.
    fn close_full_late(&mut self) -> Result<()> {
        self.late_due = false;
        let mut late: Vec<((usize, u64), usize, usize)> = self
            .open0
            .iter()
            .filter_map(|(&key, b)| b.late_limit.map(|l| (key, b.records.len(), l)))
            .collect();
        late.sort_by_key(|&(key, len, _)| (std::cmp::Reverse(len), key));
        for (key, len, limit) in late {
            if len >= limit || self.late_held > LATE_HELD_MAX / 2 {
                self.close_open0(key)?;
            }
        }
        self.close_coarse_until(self.closed_until)
    }

    /// Closes the coarser bins ending at or before `watermark`, then takes what the encoder
    /// finished.
    fn close_coarse_until(&mut self, watermark: u64) -> Result<()> {
        let mut due: Vec<(usize, u8, u64)> = self
            .coarse
            .keys()
            .copied()
            .filter(|&(k, l, s)| {
                s.saturating_add(self.config.links[k].levels[l as usize].bin_ms) <= watermark
            })
            .collect();
        due.sort_by_key(|&(k, l, s)| (s, l, k));
        for key in due {
            let bin = self.coarse.remove(&key).expect("listed above");
            self.close_coarse(key, bin)?;
        }
        self.collect(false)?;
        self.flush_catalog()
    }

    /// Closes every open bin, waits for every file to be written, writes the catalog, and
    /// returns the summary.
    pub fn finish(mut self) -> Result<WriteSummary> {
        self.advance(u64::MAX)?;
        self.collect(true)?;
        self.flush_catalog()?;
        Ok(self.summary())
    }

    fn flush_catalog(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            store::update_catalog(&self.root, &self.pending, &[])?;
            self.pending.clear();
        }
        Ok(())
    }

    fn rng_for(&self, k: usize, level: u8, start: u64) -> Rng {
        let name = self.config.links[k]
            .name
            .bytes()
            .fold(0u64, |h, b| hash_u64(h ^ b as u64));
        Rng::new(mix64(
            self.opts.seed ^ name ^ ((level as u64) << 56) ^ hash_u64(start),
        ))
    }

    /// Records the fixed overhead of a (link, level)'s files: an empty file with full stats.
    fn overhead_of(&mut self, k: usize, level: u8, stats: &BinStats) -> Result<u64> {
        if let Some(&o) = self.overhead.get(&(k, level)) {
            return Ok(o);
        }
        let empty = Batch::from_records(&[], Vec::new(), &self.opts.custom);
        let meta = self.file_meta(k, level, 0, 0, &empty);
        let o = format::encode(&empty, &meta, stats)?.len() as u64;
        self.overhead.insert((k, level), o);
        Ok(o)
    }

    fn file_meta(
        &self,
        k: usize,
        level: u8,
        start: u64,
        records_before: u64,
        b: &Batch,
    ) -> FileMeta {
        let bytes = b.u64s(Field::Bytes).unwrap_or(&[]);
        FileMeta {
            link: self.config.links[k].name.clone(),
            level,
            bin_start: start,
            bin_end: start.saturating_add(self.config.links[k].levels[level as usize].bin_ms),
            records_before,
            records_after: b.len as u64,
            z_max: b.z.iter().copied().max().unwrap_or(0),
            bytes_variance: bytes
                .iter()
                .zip(&b.z)
                .map(|(&x, &z)| sampling::variance_term(x, z))
                .sum(),
            custom: b.custom_fields(),
        }
    }

    /// Expected records that fit `bytes` of budget at (link, level), overhead excluded.
    fn records_for(&self, k: usize, level: u8, bytes: f64) -> f64 {
        let bpr = self
            .bpr
            .get(&(k, level))
            .copied()
            .unwrap_or(INITIAL_BYTES_PER_RECORD);
        (bytes / bpr).max(0.0)
    }

    fn close_level0(&mut self, k: usize, start: u64, bin: OpenBin) -> Result<()> {
        let OpenBin {
            records,
            stats,
            z: z_open,
            ..
        } = bin;
        // Records before any sampling (the exact count), not only those held.
        let n = stats.total.records;
        let levels = self.config.links[k].levels.clone();
        let overhead = self.overhead_of(k, 0, &stats)?;
        // 5 % headroom for the randomness of the sample size; the write loop enforces the rest.
        let room = levels[0].bin_budget().saturating_sub(overhead) as f64 * 0.95;
        let open = OpenRows {
            records,
            z_open,
            target: self.records_for(k, 0, room),
            rng: self.rng_for(k, 0, start),
            custom: self.opts.custom.clone(),
        };
        if levels.len() == 1 {
            // Sampled and turned into columns on an encoder thread.
            return self.write_bin(k, 0, start, Rows::Open(open), stats, n);
        }
        let raw = open.raw_thresholds();
        let (batch0, z0, spare) = open.sample(Some(&raw));
        self.spares.keep(spare);

        // Coarser levels (before level 0's batch goes to the encoder, so that it is not
        // copied): this bin's share of each level's budget, nested samples.
        let mut nested: Option<Batch> = None;
        let mut z_prev = z0;
        for (lvl, lc) in levels.iter().enumerate().skip(1) {
            let prev = nested.as_ref().unwrap_or(&batch0);
            let lvl = lvl as u8;
            let overhead = self.overhead_of(k, lvl, &stats)?;
            let share = levels[0].bin_ms as f64 / lc.bin_ms as f64;
            let room = lc.bin_budget().saturating_sub(overhead) as f64 * 0.95 * share;
            let zk = raw.for_target(self.records_for(k, lvl, room)).max(z_prev);
            let mut rng = self.rng_for(k, lvl, start);
            let bytes = prev.u64s(Field::Bytes).unwrap_or(&[]);
            let mask: Vec<bool> = bytes
                .iter()
                .zip(&prev.z)
                .map(|(&x, &z)| sampling::rethreshold(x, z, zk, &mut rng))
                .collect();
            let sub = prev.filter(&mask, Some(zk));
            let cstart = start - start % lc.bin_ms;
            let entry = self
                .coarse
                .entry((k, lvl, cstart))
                .or_insert_with(|| CoarseBin {
                    batch: Batch::default(),
                    stats: BinStats::default(),
                    records_before: 0,
                });
            entry.batch.append(&sub)?;
            entry.stats.merge(&stats)?;
            entry.records_before += n;
            nested = Some(sub);
            z_prev = zk;
        }
        self.write_bin(k, 0, start, Rows::Batch(batch0), stats, n)
    }

    fn close_coarse(&mut self, key: (usize, u8, u64), bin: CoarseBin) -> Result<()> {
        let (k, lvl, start) = key;
        self.write_bin(
            k,
            lvl,
            start,
            Rows::Batch(bin.batch),
            bin.stats,
            bin.records_before,
        )
    }

    /// Writes one bin file within its budget, merging with the file already there.
    fn write_bin(
        &mut self,
        k: usize,
        level: u8,
        start: u64,
        mut rows: Rows,
        mut stats: BinStats,
        mut records_before: u64,
    ) -> Result<()> {
        if let Rows::Batch(batch) = &mut rows
            && batch.cols.is_empty()
        {
            *batch = Batch::from_records(&[], Vec::new(), &self.opts.custom);
        }
        let link = self.config.links[k].name.clone();
        let rel = layout::bin_path(&link, level, start);
        let path = self.root.join(&rel);
        let mut merged = false;
        if self.in_flight.iter().any(|(p, _)| *p == rel) {
            self.collect(true)?; // the earlier write of this bin must land before the merge
        }
        if path.exists() {
            match format::read_all(&path) {
                Ok((mut old, meta, old_stats)) => {
                    // Merging (late records, rare) is done here, on the records' columns.
                    let (new, spare) = rows.into_batch();
                    if let Some(v) = spare {
                        self.spares.keep(v);
                    }
                    old.append(&new)?;
                    rows = Rows::Batch(old);
                    stats.merge(&old_stats)?;
                    records_before += meta.records_before;
                    merged = true;
                }
                Err(e) => self
                    .summary
                    .replaced_corrupt
                    .push((path.clone(), e.to_string())),
            }
        }
        let overhead = self.overhead_of(k, level, &stats)?;
        let job = Job {
            link,
            level,
            start,
            bin_ms: self.config.links[k].levels[level as usize].bin_ms,
            budget: self.config.links[k].levels[level as usize].bin_budget(),
            overhead,
            seed: self.rng_for(k, level, start ^ 0xb0d9e7).next_u64(),
            path,
            rel,
            rows,
            stats,
            records_before,
            merged,
            key: (k, level),
        };
        self.submit(job)
    }

    /// Hands a job to an encoder thread (started on first use), first collecting what they
    /// have finished. At most [`ENCODERS`] jobs are encoded at once and the next waits here,
    /// so memory stays bounded.
    fn submit(&mut self, job: Job) -> Result<()> {
        if self.worker.is_none() {
            // A rendezvous channel: a job is handed over only when an encoder is free.
            let (jobs_tx, jobs_rx) =
                std::sync::mpsc::sync_channel::<(Job, Sender<Result<Done>>)>(0);
            let jobs_rx = std::sync::Arc::new(std::sync::Mutex::new(jobs_rx));
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(ENCODERS));
            let (spares_tx, spares_rx) = std::sync::mpsc::channel();
            self.spares.returned = Some(spares_rx);
            let mut handles = Vec::new();
            for i in 0..threads {
                let rx = jobs_rx.clone();
                let spares_tx = spares_tx.clone();
                let h = std::thread::Builder::new()
                    .name(format!("flowdrill-store-encoder-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for the next job.
                            let next = match rx.lock() {
                                Ok(r) => r.recv(),
                                Err(_) => break,
                            };
                            let Ok((job, done)) = next else { break };
                            let _ = done.send(run_job(job, &spares_tx));
                        }
                    })
                    .map_err(|e| Error::io(&self.root, e))?;
                handles.push(h);
            }
            self.worker = Some(Worker {
                jobs: jobs_tx,
                handles,
            });
        }
        self.collect(false)?;
        let w = self.worker.as_ref().expect("started above");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.in_flight.push_back((job.rel.clone(), done_rx));
        w.jobs
            .send((job, done_tx))
            .map_err(|_| Error::Internal("the encoder threads stopped".into()))
    }

    /// Takes the encoders' finished jobs into the summary and the catalog, in submission
    /// order; with `wait`, until none is in flight.
    fn collect(&mut self, wait: bool) -> Result<()> {
        let mut first_err = None;
        while let Some((_, rx)) = self.in_flight.front() {
            let next = if wait {
                rx.recv()
                    .map_err(|_| Error::Internal("an encoder thread died".into()))
            } else {
                match rx.try_recv() {
                    Ok(r) => Ok(r),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(_) => Err(Error::Internal("an encoder thread died".into())),
                }
            };
            self.in_flight.pop_front();
            match next? {
                Ok(done) => self.finish_job(done),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn finish_job(&mut self, d: Done) {
        if let Some(measured) = d.bytes_per_record {
            let e = self.bpr.entry(d.key).or_insert(measured);
            *e = 0.5 * *e + 0.5 * measured;
        }
        self.spares.take_returned();
        self.pending.retain(|b| b.path != d.bin.path);
        self.pending.push(d.bin);
        self.summary.bins.push(d.summary);
    }
}

/// Emptied records vectors of closed level-0 bins, for open bins that need room: the first
/// write to each page of new memory costs the pushing thread a page fault and the zeroing of
/// the page (most of its time when every bin's vector was new).
#[derive(Debug, Default)]
struct Spares {
    /// The largest few (at most [`SPARES`]).
    kept: Vec<Vec<FlowRecord>>,
    /// The vectors the encoder threads return once they have turned a bin's records into
    /// columns (before encoding it, so that the next bin can have it soon).
    returned: Option<Receiver<Vec<FlowRecord>>>,
}

impl Spares {
    fn keep(&mut self, v: Vec<FlowRecord>) {
        if v.capacity() == 0 {
            return;
        }
        debug_assert!(v.is_empty());
        self.kept.push(v);
        if self.kept.len() > SPARES {
            self.kept
                .sort_unstable_by_key(|v| std::cmp::Reverse(v.capacity()));
            self.kept.truncate(SPARES);
        }
    }

    fn take_returned(&mut self) {
        let back: Vec<_> = self.returned.iter().flat_map(|r| r.try_iter()).collect();
        for v in back {
            self.keep(v);
        }
    }

    /// Gives `records` room for `room` records: a spare vector's when one is large enough
    /// (the records move into it), else new memory.
    fn make_room(&mut self, records: &mut Vec<FlowRecord>, room: usize) {
        self.take_returned();
        let len = records.len();
        if room <= len {
            return;
        }
        match self.kept.iter().position(|v| v.capacity() >= room) {
            Some(i) => {
                let mut v = self.kept.swap_remove(i);
                v.append(records);
                *records = v;
            }
            None => records.reserve_exact(room - len),
        }
    }
}

/// Emptied records vectors a writer keeps for reuse: about one per bin being encoded.
const SPARES: usize = ENCODERS;

/// Encoder threads (at most; one per core): closed bins are encoded side by side while
/// records keep coming (encoding, not decoding, limits an import on 2 cores).
const ENCODERS: usize = 2;

/// The encoder threads and the channel that hands them jobs.
#[derive(Debug)]
struct Worker {
    jobs: std::sync::mpsc::SyncSender<(Job, Sender<Result<Done>>)>,
    #[allow(dead_code)] // kept so the threads are owned; they end when `jobs` is dropped
    handles: Vec<std::thread::JoinHandle<()>>,
}

/// One bin to encode within its budget and write.
struct Job {
    link: String,
    level: u8,
    start: u64,
    bin_ms: u64,
    budget: u64,
    overhead: u64,
    seed: u64,
    path: PathBuf,
    rel: PathBuf,
    rows: Rows,
    stats: BinStats,
    records_before: u64,
    merged: bool,
    key: (usize, u8),
}

/// The rows of a bin to write.
enum Rows {
    Batch(Batch),
    /// A closed level-0 bin's records, not yet sampled to its budget: for a link without
    /// coarser levels, the sampling and the conversion to columns are done on the encoder
    /// thread instead of the thread that pushes records.
    Open(OpenRows),
}

impl Rows {
    /// The rows as columns, and the emptied vector that held the records (for reuse).
    fn into_batch(self) -> (Batch, Option<Vec<FlowRecord>>) {
        match self {
            Rows::Batch(b) => (b, None),
            Rows::Open(o) => {
                let (b, _, spare) = o.sample(None);
                (b, Some(spare))
            }
        }
    }
}

/// The records of a closed level-0 bin and what sampling them to the bin's budget takes.
struct OpenRows {
    /// Kept with probability `min(1, bytes / z_open)` (all of them when `z_open` is 0).
    records: Vec<FlowRecord>,
    z_open: u64,
    /// Records expected to fit the bin's budget.
    target: f64,
    /// The bin's coin flips (seeded per link, level and bin: the sample does not depend on
    /// the thread that draws it).
    rng: Rng,
    custom: CustomFields,
}

impl OpenRows {
    /// The thresholds that fit a number of records: held records were kept at `z_open`; for
    /// thresholds z ≥ z_open a record of x bytes behaves as one of max(x, z_open) unsampled
    /// bytes (its survival probability from here is min(1, x/z) / min(1, x/z_open) =
    /// min(1, max(x, z_open)/z)).
    fn raw_thresholds(&self) -> sampling::RawThresholds {
        sampling::RawThresholds::new(
            self.records
                .iter()
                .map(|r| r.bytes.max(self.z_open))
                .collect(),
        )
    }

    /// Level 0's sample (the records kept at the threshold `z0` fitting `target`, as
    /// columns, in push order, each with its threshold `z0`), `z0`, and the emptied vector
    /// that held the records. `raw`: this bin's [`OpenRows::raw_thresholds`] when the caller
    /// needs them too.
    fn sample(self, raw: Option<&sampling::RawThresholds>) -> (Batch, u64, Vec<FlowRecord>) {
        let z0 = match raw {
            Some(raw) => raw.for_target(self.target).max(self.z_open),
            // Everything fits: `for_target`'s answer, without sorting the sizes.
            None if self.records.len() as f64 <= self.target => self.z_open,
            None => self
                .raw_thresholds()
                .for_target(self.target)
                .max(self.z_open),
        };
        let OpenRows {
            records,
            z_open,
            mut rng,
            custom,
            ..
        } = self;
        let kept: Vec<FlowRecord> = if z0 == z_open {
            records // nothing more to sample (no coin is flipped at z0 = z_open)
        } else if z_open == 0 {
            records
                .into_iter()
                .filter(|r| sampling::keep(r.bytes, z0, &mut rng))
                .collect()
        } else {
            records
                .into_iter()
                .filter(|r| sampling::rethreshold(r.bytes, z_open, z0, &mut rng))
                .collect()
        };
        let batch = Batch::from_records(&kept, vec![z0; kept.len()], &custom);
        let mut spare = kept;
        spare.clear();
        (batch, z0, spare)
    }
}

/// A bin written.
struct Done {
    bin: BinRef,
    summary: BinSummary,
    bytes_per_record: Option<f64>,
    key: (usize, u8),
}

fn meta_for(job: &Job, b: &Batch) -> FileMeta {
    let bytes = b.u64s(Field::Bytes).unwrap_or(&[]);
    FileMeta {
        link: job.link.clone(),
        level: job.level,
        bin_start: job.start,
        bin_end: job.start.saturating_add(job.bin_ms),
        records_before: job.records_before,
        records_after: b.len as u64,
        z_max: b.z.iter().copied().max().unwrap_or(0),
        bytes_variance: bytes
            .iter()
            .zip(&b.z)
            .map(|(&x, &z)| sampling::variance_term(x, z))
            .sum(),
        custom: b.custom_fields(),
    }
}

/// Sorts, encodes (re-thresholding until the file fits its budget) and writes one bin; sends
/// the emptied vector of a level-0 bin's records back on `spares`.
fn run_job(mut job: Job, spares: &Sender<Vec<FlowRecord>>) -> Result<Done> {
    let rows = std::mem::replace(&mut job.rows, Rows::Batch(Batch::default()));
    let (batch, spare) = rows.into_batch();
    if let Some(v) = spare {
        let _ = spares.send(v); // the writer may be gone after an error
    }
    let mut batch = sort_for_compression(batch);
    let (budget, overhead) = (job.budget, job.overhead);
    let mut rng = Rng::new(job.seed);
    let mut bytes;
    let mut rounds = 0;
    loop {
        bytes = format::encode(&batch, &meta_for(&job, &batch), &job.stats)?;
        let size = bytes.len() as u64;
        if size <= budget {
            break;
        }
        if batch.len == 0 || budget <= overhead || rounds >= 20 {
            return Err(Error::BudgetTooSmall {
                link: job.link,
                level: job.level,
                budget,
                needed: size,
            });
        }
        rounds += 1;
        // Re-threshold to the number of records that fit at the measured density.
        let per_rec = (size.saturating_sub(overhead)).max(1) as f64 / batch.len as f64;
        let target = ((budget - overhead) as f64 / per_rec * 0.97).floor();
        let x = batch.u64s(Field::Bytes).unwrap_or(&[]);
        let items: Vec<(u64, u64)> = x.iter().copied().zip(batch.z.iter().copied()).collect();
        let z_new = sampling::choose_threshold(&items, target.min(batch.len as f64 - 1.0));
        let mask: Vec<bool> = items
            .iter()
            .map(|&(x, z)| sampling::rethreshold(x, z, z_new, &mut rng))
            .collect();
        batch = batch.filter(&mask, Some(z_new));
    }
    let size = bytes.len() as u64;
    let bytes_per_record =
        (batch.len >= 1000 && size > overhead).then(|| (size - overhead) as f64 / batch.len as f64);
    layout::write_atomic(&job.path, &bytes)?;
    let meta = meta_for(&job, &batch);
    let md = std::fs::metadata(&job.path).map_err(|e| Error::io(&job.path, e))?;
    let mtime_ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(Done {
        bin: BinRef {
            link: job.link.clone(),
            level: job.level,
            start: job.start,
            end: meta.bin_end,
            path: job.rel,
            size,
            records_before: job.records_before,
            records_after: batch.len as u64,
            z_max: meta.z_max,
            flows: job.stats.total.flows,
            packets: job.stats.total.packets,
            bytes: job.stats.total.bytes,
            bytes_variance: meta.bytes_variance,
            mtime_ns,
        },
        summary: BinSummary {
            link: job.link,
            level: job.level,
            start: job.start,
            records_before: job.records_before,
            records_after: batch.len as u64,
            z_max: meta.z_max,
            file_bytes: size,
            budget,
            merged: job.merged,
        },
        bytes_per_record,
        key: job.key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty store in its own directory, named after the test.
    fn store(name: &str) -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("flowdrill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::create(&dir).unwrap();
        (dir, store)
    }

    /// Bins close a minute after their end.
    fn closing_after_a_minute() -> WriterOptions {
        WriterOptions {
            auto_close_after_ms: Some(60_000),
            ..WriterOptions::default()
        }
    }

    /// A one-packet flow of 100 bytes from `t` to `end`.
    fn rec(t: u64, end: u64) -> FlowRecord {
        FlowRecord {
            time_start: t,
            time_end: end,
            bytes: 100,
            packets: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_bin_opened_early_grows_to_a_bins_worth_at_once() {
        let (dir, store) = store("room");
        let mut w = StoreWriter::new(&store, closing_after_a_minute()).unwrap();
        // A flow of 14 minutes opens the bins at 5 and 10 minutes with room for a part each.
        w.push(rec(0, 840_000)).unwrap();
        for i in 1..5000u64 {
            w.push(rec(i * 50, i * 50)).unwrap();
        }
        assert_eq!(w.open_bins(), 3);
        // Six minutes in, the first bin (5000 records) closes.
        w.push(rec(360_000, 360_000)).unwrap();
        assert_eq!(w.open_bins(), 2);
        // The bin at 10 minutes fills its first room, then makes room for 5000 and more.
        for i in 0..10u64 {
            w.push(rec(600_000 + i, 600_000 + i)).unwrap();
        }
        let third = &w.open0[&(0, 600_000)];
        assert_eq!(third.records.len(), 11);
        assert!(
            third.records.capacity() >= 5000,
            "{}",
            third.records.capacity()
        );
        let s = w.finish().unwrap();
        let level0 = s.bins.iter().filter(|b| b.level == 0);
        assert_eq!(
            level0.map(|b| b.records_after).sum::<u64>(),
            5000 + 2 + 1 + 10
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_closed_bins_records_vector_is_reused_by_the_next_bin_that_fills() {
        let (dir, store) = store("spare");
        let mut w = StoreWriter::new(&store, closing_after_a_minute()).unwrap();
        for i in 0..5000u64 {
            w.push(rec(i * 50, i * 50)).unwrap();
        }
        // The first bin closes; once encoded, its vector comes back.
        w.push(rec(360_000, 360_000)).unwrap();
        w.collect(true).unwrap();
        w.spares.take_returned();
        assert_eq!(w.spares.kept.len(), 1);
        let spare = w.spares.kept[0].as_ptr();
        assert!(w.spares.kept[0].capacity() >= 5000);
        // The bin at 10 minutes fills its first room, then takes it.
        for i in 0..10u64 {
            w.push(rec(600_000 + i, 600_000 + i)).unwrap();
        }
        assert_eq!(w.open0[&(0, 600_000)].records.as_ptr(), spare);
        assert!(w.spares.kept.is_empty());
        let s = w.finish().unwrap();
        let level0 = s.bins.iter().filter(|b| b.level == 0);
        assert_eq!(level0.map(|b| b.records_after).sum::<u64>(), 5000 + 1 + 10);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A bin's rows sort by address family first (a row is IPv6 when either address is), then
    /// by the sort key: every IPv4 row before every IPv6 one, each family in the key's order,
    /// and no row lost or changed.
    #[test]
    fn rows_sort_by_address_family_then_by_the_key() {
        use flowdrill_model::{Addr, ColumnSource};
        let mut rng = Rng::new(11);
        for case in 0..20u64 {
            let n = 1 + (rng.next_u64() % 2000) as usize;
            let recs: Vec<FlowRecord> = (0..n)
                .map(|i| {
                    let r = rng.next_u64();
                    let addr = |x: u64, v6: bool| {
                        if v6 {
                            Addr((0x2001_0db8u128 << 96) | u128::from(x % 5))
                        } else {
                            Addr::from_v4_u32(0x0a00_0000 | (x % 7) as u32)
                        }
                    };
                    // Case 0: IPv4 only; else a share of IPv6 rows, a few with one IPv6 side.
                    let v6 = case > 0 && r.is_multiple_of(5);
                    FlowRecord {
                        time_start: 1_000 + i as u64,
                        src_addr: addr(r >> 8, v6 || (case > 0 && r % 97 == 1)),
                        dst_addr: addr(r >> 16, v6),
                        dst_port: (r >> 24) as u16 % 4,
                        proto: [6, 17][(r >> 40) as usize % 2],
                        bytes: r >> 44,
                        ..FlowRecord::default()
                    }
                })
                .collect();
            let batch = Batch::from_records(&recs, vec![0; n], &CustomFields::default());
            let sorted = sort_for_compression(batch.clone());
            let family = ipv6_rows(&sorted);
            if case == 0 {
                assert!(family.iter().all(|&f| f == 0));
            } else {
                assert!(family.contains(&1), "case {case}");
            }
            assert!(family.is_sorted(), "case {case}: IPv4 rows first");
            let key = |b: &Batch, i: usize| -> Vec<u128> {
                SORT_KEY
                    .iter()
                    .map(|&f| key_value(&b.column(f).unwrap(), i))
                    .collect()
            };
            for i in 1..n {
                if family[i - 1] == family[i] {
                    assert!(
                        key(&sorted, i - 1) <= key(&sorted, i),
                        "case {case} row {i}"
                    );
                }
            }
            let mut before: Vec<(Vec<u128>, u64)> = (0..n)
                .map(|i| (key(&batch, i), batch.u64s(Field::Bytes).unwrap()[i]))
                .collect();
            let mut after: Vec<(Vec<u128>, u64)> = (0..n)
                .map(|i| (key(&sorted, i), sorted.u64s(Field::Bytes).unwrap()[i]))
                .collect();
            before.sort();
            after.sort();
            assert_eq!(before, after, "case {case}");
        }
    }

    /// Row order by every column in turn, then row number: what `sort_order` must give.
    fn naive(cols: &[ColumnRef<'_>], n: usize) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..n).collect();
        rows.sort_by_key(|&i| (cols.iter().map(|c| key_value(c, i)).collect::<Vec<_>>(), i));
        rows
    }

    #[test]
    fn the_packed_sort_orders_rows_as_the_full_key() {
        let mut rng = Rng::new(5);
        for case in 0..60u64 {
            let n = (rng.next_u64() % 3000) as usize;
            // Small ranges (all fit in 128 bits), wide ones (IPv6 addresses, 64-bit values:
            // the later columns order runs of equal packed keys), and constant columns.
            let wide = case % 3 == 1;
            let mut pick = |range: u64| -> u64 {
                if range == 0 {
                    7
                } else {
                    rng.next_u64() % range
                }
            };
            let e: Vec<u128> = (0..n).map(|_| pick(2) as u128).collect();
            let ifs: Vec<u32> = (0..n)
                .map(|_| pick(if wide { 0 } else { 5 }) as u32)
                .collect();
            let proto: Vec<u8> = (0..n).map(|_| pick(3) as u8).collect();
            let port: Vec<u16> = (0..n).map(|_| pick(4) as u16).collect();
            let dst: Vec<u128> = (0..n)
                .map(|_| {
                    let x = pick(6) as u128;
                    if wide && x == 5 { u128::MAX - x } else { x }
                })
                .collect();
            let src: Vec<u128> = (0..n)
                .map(|_| pick(if wide { 4 } else { 1 << 20 }) as u128)
                .collect();
            let t: Vec<u64> = (0..n)
                .map(|_| if wide { pick(u64::MAX) } else { pick(300_000) })
                .collect();
            let cols = [
                ColumnRef::Addr(&e),
                ColumnRef::U32(&ifs),
                ColumnRef::U8(&proto),
                ColumnRef::U16(&port),
                ColumnRef::Addr(&dst),
                ColumnRef::Addr(&src),
                ColumnRef::U64(&t),
            ];
            assert_eq!(
                sort_order(&cols, n),
                naive(&cols, n),
                "case {case}, {n} rows"
            );
        }
        assert!(sort_order(&[ColumnRef::U8(&[])], 0).is_empty());
        // Seven columns of 128 bits: six later words (the general path).
        let n = 500;
        let cols: Vec<Vec<u128>> = (0..7)
            .map(|_| {
                (0..n)
                    .map(|_| match rng.next_u64() % 3 {
                        0 => 0,
                        1 => 1,
                        _ => u128::MAX,
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<ColumnRef<'_>> = cols.iter().map(|c| ColumnRef::Addr(c)).collect();
        assert_eq!(sort_order(&refs, n), naive(&refs, n));
    }
}
