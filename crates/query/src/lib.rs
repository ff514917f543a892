//! # flowdrill-query
//!
//! Every analysis runs on a [`Selection`]: links, a time range, a filter and a metric.
//! [`Engine::load`] plans which store level to read ([`Bound`]), reads the selected bins
//! column by column (through a small cache of recently read bins), keeps the records inside
//! the time range and the filter, re-thresholds the sample when more records match than the
//! bound allows (unbiased: `shared/ORACLES.md` §3), and turns each record into a **weight**
//! (what it stands for in the metric) and a **variance term** (its share of the estimator's
//! variance), following the threshold sampling estimators. For a record of `x` bytes kept at threshold
//! `z` (so with probability `p = min(1, x/z)`):
//!
//! | metric  | weight          | variance term                   |
//! |---------|-----------------|---------------------------------|
//! | bytes   | `max(x, z)`     | `z(z − x)` if `x < z`           |
//! | packets | `packets / p`   | `packets² (1 − p) / p²`         |
//! | flows   | `1 / p`         | `(1 − p) / p²`                  |
//!
//! Unsampled records (`z = 0` or `x ≥ z`) weigh exactly their value with variance 0, so exact
//! data gives exact answers and every output can say whether it is exact.
//!
//! With [`Engine::set_spark`], the reading, filtering and weighing is pushed down to Apache
//! Spark ([`spark`]): the engine plans and prunes as it does for itself, Spark returns one row
//! per bin and leaf key with the sums of the weights and variance terms
//! ([`Loaded::aggregated`]), and the analyses run on those rows as they do on records.
//!
//! The store splits a flow that spans several bins into one record per bin and marks every
//! piece after the first with `continued = 1`: those pieces weigh 0 in the `flows` metric, so a
//! flow counts once, in the bin where it starts.

use flowdrill_filter::Expr;
use flowdrill_model::{ColumnRef, ColumnSource, FIELDS, Field, Kind};
use flowdrill_store::{Batch, BinRef, Skipped, Store, sampling};
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub mod cache;
pub mod drill;
mod packed;
pub mod report;
pub mod run;
pub mod spark;
mod stream;
pub use stream::{FoldPart, Schedule};
pub mod time;

pub use flowdrill_analysis::Estimate;
pub use spark::{SparkConfig, SparkError};
pub use time::{TimeError, parse_range};

/// What the analyses count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Bytes,
    Packets,
    Flows,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bytes => "bytes",
            Metric::Packets => "packets",
            Metric::Flows => "flows",
        }
    }
    pub fn from_name(s: &str) -> Option<Metric> {
        match s {
            "bytes" | "b" | "byt" => Some(Metric::Bytes),
            "packets" | "pkts" | "p" | "pkt" => Some(Metric::Packets),
            "flows" | "f" | "fl" => Some(Metric::Flows),
            _ => None,
        }
    }
}

/// Links, time range, filter and metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Links to read; empty means every link of the store.
    pub links: Vec<String>,
    /// `[start, end)` in Unix ms. Whole bins inside it are read as they are; in a bin that
    /// straddles an end, only records starting inside the range are kept.
    pub range: Range<u64>,
    /// Records must match it; `None` keeps all.
    pub filter: Option<Expr>,
    pub metric: Metric,
}

impl Selection {
    /// Everything in the store, by bytes.
    pub fn all() -> Selection {
        Selection {
            links: Vec::new(),
            range: 0..u64::MAX,
            filter: None,
            metric: Metric::Bytes,
        }
    }
}

/// How many records an analysis may be handed, and how the store level is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// Every stored record of the finest level that covers the range, without re-sampling.
    /// (The stored records are themselves a sample where the disk budget required one.)
    Exact,
    /// At most about this many records (in expectation): the finest level whose stored
    /// records in range fit is read; otherwise the level with the fewest, and the matching
    /// records are re-thresholded down to the bound. Netpy's default is 100,000.
    Records(u64),
    /// The coarsest (cheapest) level whose estimated byte total over the range has at most
    /// this relative standard error; no re-sampling.
    RelativeError(f64),
}

impl Default for Bound {
    fn default() -> Bound {
        Bound::Records(DEFAULT_MAX_RECORDS)
    }
}

/// Netpy's bound on the records handed to an analysis.
pub const DEFAULT_MAX_RECORDS: u64 = 100_000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] flowdrill_store::Error),
    #[error("unknown link '{name}'; the store has: {known}")]
    UnknownLink { name: String, known: String },
    #[error(transparent)]
    Filter(#[from] flowdrill_filter::FilterError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(transparent)]
    Spark(#[from] SparkError),
}

/// One row of an aggregated selection ([`Loaded::aggregated`]): a group of records with the
/// same bin and leaf keys, as an external engine summed them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AggRow {
    /// Records of the group.
    pub records: u64,
    /// Σ weight and Σ variance term of the group's records, in flows, packets, bytes.
    pub sums: [(f64, f64); 3],
}

impl AggRow {
    fn get(&self, metric: Metric) -> (f64, f64) {
        self.sums[match metric {
            Metric::Flows => 0,
            Metric::Packets => 1,
            Metric::Bytes => 2,
        }]
    }
}

/// The selected records, with their weights and variance terms in the selection's metric.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, per bin read (shared with the engine's cache when unfiltered).
    pub batches: Vec<(BinRef, Arc<Batch>)>,
    /// Per batch, one weight per record.
    pub weights: Vec<Vec<f64>>,
    /// Per batch, one variance term per record.
    pub variances: Vec<Vec<f64>>,
    /// Files that could not be read, with the reason (never silently hidden).
    pub skipped: Vec<Skipped>,
    /// True when no record handed over was sampled: every number is exact.
    pub exact: bool,
    /// The largest sampling threshold among the records handed over (0 when exact).
    pub z_max: u64,
    /// The store level read (0 = finest).
    pub level: u8,
    /// The links read.
    pub links: Vec<String>,
    /// Records read from the files (before the time range and filter).
    pub records_read: u64,
    /// Records that matched the time range and filter (before any re-thresholding).
    pub records_matched: u64,
    /// The threshold the matching records were re-sampled at to meet the bound, if any.
    pub rethreshold_z: Option<u64>,
    /// Bins of the plan not read because their column statistics show that no record can
    /// match the filter.
    pub bins_pruned: usize,
    /// `Some` when the records were aggregated elsewhere (the Spark engine): per batch, per
    /// row, the group it stands for. The batches then hold one row per group with only the
    /// analysis' leaf keys loaded, and weights come from here ([`Loaded::row_weights`]).
    pub aggregated: Option<Vec<Vec<AggRow>>>,
    /// `Some` when the records were folded ([`Engine::fold`]) rather than kept: `batches`,
    /// `weights` and `variances` are then empty, and this says what they held.
    pub folded: Option<Folded>,
}

/// What [`Engine::fold`] handed over, in place of the batches it did not keep.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Folded {
    /// Records (or aggregated groups' records) handed over.
    pub records: u64,
    /// The earliest start and latest end of the bins that handed records over (0 when none).
    pub start: u64,
    pub end: u64,
    /// The selection's total in its metric, as the fold's caller summed it.
    pub total: Estimate,
}

/// The weight and variance term of each row of one batch, in any metric.
#[derive(Clone, Copy, Debug)]
pub enum RowWeights<'a> {
    /// A record: from its bytes, packets and threshold.
    Records(WeightColumns<'a>),
    /// An aggregated group: its sums.
    Aggregated(&'a [AggRow]),
}

impl RowWeights<'_> {
    /// Row `i`'s weight and variance term in `metric`.
    #[inline]
    pub fn get(&self, i: usize, metric: Metric) -> (f64, f64) {
        match self {
            RowWeights::Records(c) => c.get(i, metric),
            RowWeights::Aggregated(rows) => rows.get(i).map_or((0.0, 0.0), |r| r.get(metric)),
        }
    }
}

impl Loaded {
    /// The selected records of `batches` as groups aggregated elsewhere, with their sums
    /// (`rows[i]` for `batches[i]`, one per row): the input the analyses accept from an
    /// external engine. Weights and variance terms in `metric` are set from the sums.
    pub fn aggregated(mut self, metric: Metric) -> Loaded {
        let rows = self.aggregated.take().unwrap_or_default();
        self.weights = rows
            .iter()
            .map(|r| r.iter().map(|g| g.get(metric).0).collect())
            .collect();
        self.variances = rows
            .iter()
            .map(|r| r.iter().map(|g| g.get(metric).1).collect())
            .collect();
        self.exact = self.z_max == 0;
        self.aggregated = Some(rows);
        self
    }

    /// The weights of batch `i`'s rows in any metric.
    pub fn row_weights(&self, i: usize) -> RowWeights<'_> {
        match &self.aggregated {
            Some(a) => RowWeights::Aggregated(a.get(i).map_or(&[][..], Vec::as_slice)),
            None => RowWeights::Records(WeightColumns::of(&self.batches[i].1)),
        }
    }

    /// Batch `i`'s weights and variance terms in `metric`.
    pub fn weights_of(&self, i: usize, metric: Metric) -> (Vec<f64>, Vec<f64>) {
        let w = self.row_weights(i);
        (0..self.batches[i].1.len())
            .map(|r| w.get(r, metric))
            .unzip()
    }

    /// Records the rows stand for (rows themselves unless aggregated).
    pub fn records(&self) -> u64 {
        if let Some(f) = &self.folded {
            return f.records;
        }
        match &self.aggregated {
            Some(a) => a.iter().flatten().map(|r| r.records).sum(),
            None => self.len() as u64,
        }
    }

    /// Rows handed to the analysis (records, or groups when aggregated).
    pub fn len(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Estimated total of the metric and its variance.
    pub fn total(&self) -> Estimate {
        if let Some(f) = &self.folded {
            return f.total;
        }
        Estimate {
            value: self.weights.iter().flatten().sum(),
            variance: self.variances.iter().flatten().sum(),
        }
    }
    /// The weights for an analysis: without variance terms when the data is exact (they are
    /// all 0; the analyses then skip them).
    pub fn weights_arg<'a>(&self, w: &'a [f64], v: &'a [f64]) -> flowdrill_analysis::Weights<'a> {
        if self.exact {
            flowdrill_analysis::Weights::exact(w)
        } else {
            flowdrill_analysis::Weights::sampled(w, v)
        }
    }
    /// All variance terms, concatenated (empty when exact: see [`Loaded::weights_arg`]).
    pub fn all_variances_if_sampled(&self) -> Vec<f64> {
        if self.exact {
            Vec::new()
        } else {
            self.variances.concat()
        }
    }
    /// All weights, concatenated across batches (the order of [`Loaded::concat_u128`] etc.).
    pub fn all_weights(&self) -> Vec<f64> {
        self.weights.concat()
    }
    pub fn all_variances(&self) -> Vec<f64> {
        self.variances.concat()
    }
    /// An address column, concatenated across batches.
    pub fn concat_u128(&self, f: Field) -> Vec<u128> {
        let mut out = Vec::with_capacity(self.len());
        for (_, b) in &self.batches {
            if let Some(ColumnRef::Addr(s)) = b.column(f) {
                out.extend_from_slice(s);
            }
        }
        out
    }
    /// An integer column widened to u64, concatenated across batches.
    pub fn concat_u64(&self, f: Field) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.len());
        for (_, b) in &self.batches {
            if let Some(c) = b.column(f) {
                out.extend((0..c.len()).filter_map(|i| c.u64_at(i)));
            }
        }
        out
    }
    /// One line that says what the numbers are: exact, or estimated at which z and from how
    /// many records.
    pub fn describe(&self) -> String {
        if self.exact {
            format!("exact: {} records, level {}", self.records(), self.level)
        } else {
            let mut s = format!(
                "estimated: {} records at z <= {}, level {}",
                self.records(),
                self.z_max,
                self.level
            );
            if let Some(z) = self.rethreshold_z {
                s.push_str(&format!(
                    ", re-sampled from {} matching (z {z})",
                    self.records_matched
                ));
            }
            s
        }
    }
}

/// Reads selections from one store, keeping recently read bins in memory.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    cache: Mutex<Cache>,
    /// Column ranges of the bins seen, by path, size and mtime (footers are read once).
    ranges: Mutex<HashMap<(PathBuf, u64, u64), Arc<flowdrill_store::format::ColumnRanges>>>,
    /// Seed of the re-thresholding (fixed, so that an analysis repeated gives the same answer).
    pub seed: u64,
    /// Where to push the reading down to; `None`: the embedded engine.
    spark: Mutex<Option<SparkConfig>>,
    /// The running Spark driver (started by the first query, kept for the next).
    driver: Mutex<Option<spark::SparkDriver>>,
}

impl Engine {
    /// An engine with a cache of `cache_bytes` (of decoded columns).
    pub fn new(store: Store, cache_bytes: usize) -> Engine {
        Engine {
            store,
            cache: Mutex::new(Cache::new(cache_bytes)),
            ranges: Mutex::default(),
            seed: 0x5eed_f10d,
            spark: Mutex::default(),
            driver: Mutex::default(),
        }
    }

    /// Runs the reading of every following query on Spark (`Some`) or in process (`None`,
    /// the default). A running driver of another configuration is stopped.
    pub fn set_spark(&self, config: Option<SparkConfig>) {
        if let Ok(mut s) = self.spark.lock() {
            if *s != config
                && let Ok(mut d) = self.driver.lock()
            {
                *d = None;
            }
            *s = config;
        }
    }

    /// The Spark configuration in force, if any.
    pub fn spark(&self) -> Option<SparkConfig> {
        self.spark.lock().ok().and_then(|s| s.clone())
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The links of a selection, checked against the store.
    pub fn links(&self, sel: &Selection) -> Result<Vec<String>, QueryError> {
        let known = self.store.links();
        if sel.links.is_empty() {
            return Ok(known);
        }
        for l in &sel.links {
            if !known.contains(l) {
                return Err(QueryError::UnknownLink {
                    name: l.clone(),
                    known: known.join(", "),
                });
            }
        }
        Ok(sel.links.clone())
    }

    /// The user-defined elements the store's files carry (from the newest bin of each link),
    /// so that filters can name them.
    pub fn custom_fields(&self) -> flowdrill_model::CustomFields {
        let mut out = flowdrill_model::CustomFields::default();
        for link in self.store.links() {
            let newest = self
                .store
                .all_bins()
                .iter()
                .filter(|b| b.link == link)
                .max_by_key(|b| b.start);
            if let Some(b) = newest
                && let Ok((meta, _)) =
                    flowdrill_store::format::read_meta(&self.store.root().join(&b.path))
            {
                for f in meta.custom.fields {
                    if out.by_name(&f.name).is_none() {
                        out.fields.push(f);
                    }
                }
            }
        }
        out
    }

    /// The end of the newest finest-level bin of `links` (all links when empty): the anchor of relative
    /// time ranges. The current time when the store is empty.
    pub fn anchor(&self, links: &[String]) -> u64 {
        // The finest level present: coarse bins end at the end of their day or hour, after
        // the data.
        let bins = || {
            self.store
                .all_bins()
                .iter()
                .filter(|b| links.is_empty() || links.contains(&b.link))
        };
        let finest = bins().map(|b| b.level).min();
        bins()
            .filter(|b| Some(b.level) == finest)
            .map(|b| b.end)
            .max()
            .unwrap_or_else(now_ms)
    }

    /// Reads the selection: the `fields` an analysis needs, with weights in its metric.
    pub fn load(
        &self,
        sel: &Selection,
        fields: &[Field],
        bound: Bound,
    ) -> Result<Loaded, QueryError> {
        if let Some(config) = self.spark() {
            return self.load_spark(&config, sel, fields, bound);
        }
        let (mut out, reading) = self.prepare(sel, fields, &[], bound)?;
        let Some(reading) = reading else {
            return Ok(out);
        };
        let read = self.read_bins(&reading.bins, &reading.fields, &reading.extras);
        for (bin, r) in reading.bins.iter().zip(read) {
            if let Some(batch) = self.matching(sel, bin, r, &mut out)? {
                out.batches.push((bin.clone(), batch));
            }
        }

        if let Bound::Records(max) = bound
            && out.records_matched > max
        {
            let mut items = stream::ThresholdItems::with_capacity(out.records_matched as usize);
            for (_, b) in &out.batches {
                items.add(b);
            }
            let z = items.choose(max);
            if z > 0 {
                out.rethreshold_z = Some(z);
                for (bin, b) in &mut out.batches {
                    if let Some(r) = self.rethreshold(bin, b, z) {
                        *b = Arc::new(r);
                    }
                }
                out.batches.retain(|(_, b)| !b.is_empty());
            }
        }

        for (_, batch) in &out.batches {
            let (w, v) = weights(batch, sel.metric);
            out.z_max = out.z_max.max(stream::z_max(batch));
            out.weights.push(w);
            out.variances.push(v);
        }
        out.exact = out.z_max == 0;
        Ok(out)
    }

    /// [`Engine::load`] on Spark: the same plan and pruning, then the filter and the
    /// aggregation by bin and `fields` pushed down. When more records match than the bound,
    /// they are re-thresholded as the embedded engine does it, in Spark: the threshold chosen
    /// here from their (bytes, threshold) counts, each bin's records drawn from the same
    /// seeded stream in the same order, so that both engines hand the same records to the
    /// analysis.
    fn load_spark(
        &self,
        config: &SparkConfig,
        sel: &Selection,
        fields: &[Field],
        bound: Bound,
    ) -> Result<Loaded, QueryError> {
        let (mut out, reading) = self.prepare(sel, fields, &[], bound)?;
        let Some(reading) = reading else {
            return Ok(out);
        };
        if reading.bins.is_empty() {
            return Ok(out);
        }
        let mut guard = self
            .driver
            .lock()
            .map_err(|_| SparkError::Query("the driver's lock is poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(spark::SparkDriver::start(config)?);
        }
        let Some(driver) = guard.as_mut() else {
            return Ok(out);
        };
        let t = std::time::Instant::now();
        let mut matched = None;
        let res = (|| {
            let mut rethreshold = None;
            // The stored records bound the matching ones: ask Spark only when they may exceed.
            if let Bound::Records(max) = bound
                && reading.bins.iter().map(|b| b.records_after).sum::<u64>() > max
            {
                let hist = spark::histogram(driver, self.store.root(), sel, &reading.bins)?;
                let n: u64 = hist.iter().map(|h| h.2).sum();
                matched = Some(n);
                if n > max {
                    let z = flowdrill_store::sampling::choose_threshold_counted(&hist, max as f64);
                    if z > 0 {
                        rethreshold = Some(spark::Rethreshold {
                            z,
                            seeds: reading
                                .bins
                                .iter()
                                .map(|b| self.rethreshold_seed(b))
                                .collect(),
                        });
                    }
                }
            }
            spark::load(
                driver,
                self.store.root(),
                sel,
                fields,
                &reading.bins,
                rethreshold.as_ref(),
                &mut out,
            )
            .map(|a| (a, rethreshold.map(|r| r.z)))
        })();
        let (answer, z_new) = match res {
            Ok(a) => a,
            Err(e) => {
                // A driver that failed may be in any state: start afresh next time.
                if matches!(e, SparkError::Query(_) | SparkError::Answer(_)) {
                    *guard = None;
                }
                return Err(e.into());
            }
        };
        if std::env::var_os("FLOWDRILL_TRACE").is_some() {
            eprintln!(
                "trace: spark: {} groups, {} bytes returned, {:.1} ms",
                answer.rows,
                answer.bytes,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        if let Some(z) = z_new {
            // Matched before the re-thresholding, as the embedded engine counts them.
            out.records_matched = matched.unwrap_or(out.records_matched);
            out.rethreshold_z = Some(z);
        }
        out.records_read = out.records_matched;
        Ok(out.aggregated(sel.metric))
    }

    /// Whether the engine keeps decoded bins between questions.
    pub(crate) fn caches(&self) -> bool {
        self.cache.lock().is_ok_and(|c| c.capacity > 0)
    }

    /// Reads bins through the cache, two at a time (the machines are small; Parquet decoding
    /// is the cost).
    fn read_bins(
        &self,
        bins: &[BinRef],
        fields: &[Field],
        extras: &[String],
    ) -> Vec<Result<Arc<Batch>, flowdrill_store::Error>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(bins.len().max(1));
        let one = |b: &BinRef| self.read_bin(b, fields, extras);
        if threads <= 1 {
            return bins.iter().map(one).collect();
        }
        let chunk = bins.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = bins
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    fn read_bin(
        &self,
        bin: &BinRef,
        fields: &[Field],
        extras: &[String],
    ) -> Result<Arc<Batch>, flowdrill_store::Error> {
        let key = bin.path.clone();
        let mut want: Vec<Field> = fields.to_vec();
        let mut want_x: Vec<String> = extras.to_vec();
        if let Ok(c) = self.cache.lock()
            && let Some(e) = c.map.get(&key)
            && e.mtime_ns == bin.mtime_ns
        {
            if fields.iter().all(|f| e.fields.contains(f))
                && extras.iter().all(|x| e.extras.contains(x))
            {
                return Ok(e.batch.clone());
            }
            want.extend(e.fields.iter().copied());
            want_x.extend(e.extras.iter().cloned());
        }
        want.sort_unstable();
        want.dedup();
        want_x.sort();
        want_x.dedup();
        let names: Vec<&str> = want_x.iter().map(String::as_str).collect();
        let batch = Arc::new(self.store.read_bin_with_extras(bin, &want, &names)?);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, bin.mtime_ns, (want, want_x), batch.clone());
        }
        Ok(batch)
    }
}

/// Recently read bins, least recently inserted evicted first.
#[derive(Debug)]
struct Cache {
    capacity: usize,
    used: usize,
    tick: u64,
    map: HashMap<PathBuf, CacheEntry>,
}

#[derive(Debug)]
struct CacheEntry {
    mtime_ns: u64,
    fields: Vec<Field>,
    extras: Vec<String>,
    batch: Arc<Batch>,
    bytes: usize,
    tick: u64,
}

impl Cache {
    fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            used: 0,
            tick: 0,
            map: HashMap::new(),
        }
    }
    fn insert(
        &mut self,
        key: PathBuf,
        mtime_ns: u64,
        (fields, extras): (Vec<Field>, Vec<String>),
        batch: Arc<Batch>,
    ) {
        let widths: usize = fields.iter().map(|f| width(*f)).sum();
        let bytes = batch.len() * (8 + 16 * extras.len() + widths);
        if bytes > self.capacity {
            return;
        }
        if let Some(old) = self.map.remove(&key) {
            self.used -= old.bytes;
        }
        while self.used + bytes > self.capacity {
            let Some(victim) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.tick)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.map.remove(&victim) {
                self.used -= e.bytes;
            }
        }
        self.tick += 1;
        self.used += bytes;
        self.map.insert(
            key,
            CacheEntry {
                mtime_ns,
                fields,
                extras,
                batch,
                bytes,
                tick: self.tick,
            },
        );
    }
}

fn width(f: Field) -> usize {
    match FIELDS[f as usize].kind {
        Kind::Unsigned(b) => (b / 8) as usize,
        Kind::Address => 16,
        Kind::TimeMs => 8,
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Parses a filter with the user-defined elements of `custom` usable by name.
pub fn parse_filter(
    text: &str,
    custom: &flowdrill_model::CustomFields,
) -> Result<Expr, flowdrill_filter::FilterError> {
    flowdrill_filter::parse_with(text, custom)
}

/// Reads the selection once, without a cache (for one-shot callers and tests).
pub fn load(store: &Store, sel: &Selection, fields: &[Field]) -> Result<Loaded, QueryError> {
    let engine = Engine::new(store.clone(), 0);
    engine.load(sel, fields, Bound::Exact)
}

/// Per-record weight and variance term of `batch` in `metric` (see the crate doc). Pieces of
/// a split flow after the first (`continued = 1`) weigh 0 flows.
pub fn weights(batch: &Batch, metric: Metric) -> (Vec<f64>, Vec<f64>) {
    let cols = WeightColumns::of(batch);
    let n = batch.len();
    let mut w = Vec::with_capacity(n);
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = cols.get(i, metric);
        w.push(a);
        v.push(b);
    }
    (w, v)
}

/// The columns the weights come from, borrowed from a batch.
#[derive(Clone, Copy, Debug)]
pub struct WeightColumns<'a> {
    bytes: &'a [u64],
    packets: &'a [u64],
    z: &'a [u64],
    continued: &'a [u8],
    /// Every `z` is 0 ([`Batch::unsampled`]).
    unsampled: bool,
}

impl<'a> WeightColumns<'a> {
    pub fn of(batch: &'a Batch) -> WeightColumns<'a> {
        let unsampled = batch.unsampled();
        WeightColumns {
            bytes: batch.u64s(Field::Bytes).unwrap_or(&[]),
            packets: batch.u64s(Field::Packets).unwrap_or(&[]),
            // Unsampled: no thresholds (a missing one is 0), and a read of an unsampled file
            // makes none.
            z: if unsampled { &[] } else { batch.sample_z() },
            continued: match batch.column(Field::Continued) {
                Some(ColumnRef::U8(c)) => c,
                _ => &[],
            },
            unsampled,
        }
    }

    /// Whether no record of these columns was sampled (every weight is then the record's own
    /// value: [`WeightColumns::exact_row`]).
    pub fn exact(&self) -> bool {
        self.unsampled
    }

    /// Record `i`'s flows, packets and bytes when [`WeightColumns::exact`].
    #[inline]
    pub fn exact_row(&self, i: usize) -> [f64; 3] {
        [
            (self.continued.get(i).copied().unwrap_or(0) == 0) as u8 as f64,
            self.packets.get(i).copied().unwrap_or(0) as f64,
            self.bytes.get(i).copied().unwrap_or(0) as f64,
        ]
    }

    /// Record `i`'s weight and variance term in `metric`.
    #[inline]
    pub fn get(&self, i: usize, metric: Metric) -> (f64, f64) {
        let x = self.bytes.get(i).copied().unwrap_or(0);
        let zi = self.z.get(i).copied().unwrap_or(0);
        if zi == 0 || x >= zi {
            // Not sampled away: the record's own values, exactly.
            return match metric {
                Metric::Bytes => (x as f64, 0.0),
                Metric::Packets => (self.packets.get(i).copied().unwrap_or(0) as f64, 0.0),
                Metric::Flows => (
                    (self.continued.get(i).copied().unwrap_or(0) == 0) as u8 as f64,
                    0.0,
                ),
            };
        }
        // The store's estimators (ORACLES §3); packets and flows get their Horvitz–Thompson
        // variance term (1 − p)/p² scaled by the record's value squared.
        let p = sampling::keep_probability(x, zi);
        let q = (1.0 - p) / (p * p);
        match metric {
            Metric::Bytes => (
                sampling::estimated_bytes(x, zi) as f64,
                sampling::variance_term(x, zi),
            ),
            Metric::Packets => {
                let pk = self.packets.get(i).copied().unwrap_or(0);
                (
                    sampling::estimated_packets(pk, x, zi),
                    (pk as f64).powi(2) * q,
                )
            }
            Metric::Flows => {
                if self.continued.get(i).copied().unwrap_or(0) != 0 {
                    (0.0, 0.0)
                } else {
                    (sampling::estimated_flows(x, zi), q)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::{CustomFields, FlowRecord};

    fn batch(recs: &[(u64, u64)], z: u64) -> Batch {
        let rs: Vec<FlowRecord> = recs
            .iter()
            .map(|&(bytes, packets)| FlowRecord {
                bytes,
                packets,
                ..Default::default()
            })
            .collect();
        Batch::from_records(&rs, vec![z; rs.len()], &CustomFields::default())
    }

    #[test]
    fn exact_records_weigh_their_value() {
        let b = batch(&[(100, 2), (1500, 1)], 0);
        assert_eq!(
            weights(&b, Metric::Bytes),
            (vec![100.0, 1500.0], vec![0.0, 0.0])
        );
        assert_eq!(
            weights(&b, Metric::Packets),
            (vec![2.0, 1.0], vec![0.0, 0.0])
        );
        assert_eq!(weights(&b, Metric::Flows), (vec![1.0, 1.0], vec![0.0, 0.0]));
    }

    #[test]
    fn sampled_records_follow_the_threshold_estimators() {
        // z = 1000: a 250-byte record was kept with p = 1/4.
        let b = batch(&[(250, 5), (4000, 3)], 1000);
        let (w, v) = weights(&b, Metric::Bytes);
        assert_eq!(w, vec![1000.0, 4000.0]);
        assert_eq!(v, vec![1000.0 * 750.0, 0.0]);
        let (w, v) = weights(&b, Metric::Packets);
        assert_eq!(w, vec![20.0, 3.0]);
        assert_eq!(v, vec![25.0 * 0.75 * 16.0, 0.0]);
        let (w, v) = weights(&b, Metric::Flows);
        assert_eq!(w, vec![4.0, 1.0]);
        assert_eq!(v, vec![0.75 * 16.0, 0.0]);
    }
}
