//! Reading a selection bin by bin ([`Engine::for_each_batch`]), for exports: memory holds a
//! few bins whatever the size of the selection. Planning, matching one bin's records against
//! the range and filter, and re-thresholding one bin live here and are shared with
//! [`Engine::load`], so that both hand over the same records.

use crate::{Bound, Engine, Folded, Loaded, QueryError, RowWeights, Selection, WeightColumns, fnv};
use flowdrill_model::{ColumnSource, Field};
use flowdrill_store::{Batch, BinRef, PlanGoal, Skipped, sampling};
use std::sync::Arc;

/// What a selection reads: the planned bins and their columns.
#[derive(Debug)]
pub(crate) struct Reading {
    pub(crate) bins: Vec<BinRef>,
    pub(crate) fields: Vec<Field>,
    pub(crate) extras: Vec<String>,
}

/// What a worker of [`Engine::fold`] makes its state for.
#[derive(Clone, Copy, Debug)]
pub struct FoldPart<'a> {
    /// The bins this worker reads (none on Spark; every bin, any of which it may read, when
    /// the fold is [`Schedule::Balanced`]).
    pub bins: &'a [BinRef],
    /// This worker's index, among `workers` that run at the same time.
    pub worker: usize,
    pub workers: usize,
    /// Every bin the selection reads.
    pub all: &'a [BinRef],
    /// Whether the records are re-sampled to the bound (their weights are then estimates).
    pub resampled: bool,
}

/// How [`Engine::fold_scheduled`] hands the bins to its workers.
#[derive(Clone, Copy)]
pub enum Schedule<'a> {
    /// Contiguous runs of about equal records, the same on every run: for states whose
    /// answer depends on which bins a worker folds or in which order (floating-point sums).
    Runs,
    /// The largest bins first, each to the next worker free, when the predicate says so for
    /// the bins selected and whether they are re-sampled (else [`Schedule::Runs`]): for
    /// states whose answer does not depend on it (exact integer sums). The workers then
    /// finish together however the bins' sizes fall, and whatever else runs on the machine.
    Balanced(&'a (dyn Fn(&[BinRef], bool) -> bool + Sync)),
}

impl std::fmt::Debug for Schedule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schedule::Runs => "Runs",
            Schedule::Balanced(_) => "Balanced",
        })
    }
}

impl Engine {
    /// Reads the selection as [`Engine::load`] does, but hands the records to `f` bin by bin
    /// (per link, by time) instead of keeping them. `extras` names user-defined elements to
    /// read along with `fields` (a file that lacks one has no such column in its batch).
    /// Bins are read through the engine's cache: give the engine a small one
    /// (`Engine::new(store, 0)`) to keep memory bounded.
    ///
    /// When the bound requires re-thresholding, a first pass reads the bytes of the matching
    /// records to choose the threshold, and each bin is then re-thresholded with the seed
    /// `load` uses: both hand over the same records. Returns what `load` does, without the
    /// batches, weights and variances (weigh each batch with [`crate::weights`]).
    pub fn for_each_batch<E: From<QueryError>>(
        &self,
        sel: &Selection,
        fields: &[Field],
        extras: &[String],
        bound: Bound,
        mut f: impl FnMut(&BinRef, &Batch) -> Result<(), E>,
    ) -> Result<Loaded, E> {
        let (mut out, reading) = self.prepare(sel, fields, extras, bound)?;
        let Some(reading) = reading else {
            return Ok(out);
        };
        out.rethreshold_z = self.bound_threshold(sel, bound, &reading)?;
        let z_new = out.rethreshold_z;
        let mut z_seen = 0;
        self.stream(sel, &reading, &mut out, |bin, b| {
            let resampled = z_new.and_then(|z| self.rethreshold(bin, b, z));
            let b = resampled.as_ref().unwrap_or(b);
            if b.is_empty() {
                return Ok(());
            }
            z_seen = z_seen.max(z_max(b));
            f(bin, b)
        })?;
        out.z_max = z_seen;
        out.exact = z_seen == 0;
        Ok(out)
    }

    /// Reads the selection as [`Engine::load`] does and folds each bin's matching records into
    /// a state per worker thread, without keeping the records: `init` makes a state for a
    /// worker from the bins it will read (to size it ahead; on Spark, for no bins: one
    /// worker), `f` adds one batch of a bin (with the weights of its rows) to it: the rows
    /// listed, or every row when `None` (a filter's matching rows are not copied out of the
    /// batch); a bin read in chunks comes as several batches. `done` finishes a
    /// state on its worker once its bins are folded. The bins are split among the workers in
    /// contiguous runs of about equal records, so that a selection is folded the same way on
    /// every run; the states come back in bin order. Returns what `load` does, without the
    /// batches, weights and variances.
    ///
    /// Memory holds the states and one bin per worker (plus what the engine's cache keeps).
    /// On Spark, the aggregated rows are folded into one state.
    pub fn fold<S: Send, E: From<QueryError> + Send>(
        &self,
        sel: &Selection,
        fields: &[Field],
        bound: Bound,
        init: impl Fn(FoldPart<'_>) -> S + Sync,
        f: impl Fn(&mut S, &BinRef, &Batch, RowWeights<'_>, Option<&[u32]>) -> Result<(), E> + Sync,
        done: impl Fn(&mut S) + Sync,
    ) -> Result<(Loaded, Vec<S>), E> {
        self.fold_scheduled(sel, fields, bound, Schedule::Runs, init, f, done)
    }

    /// [`Engine::fold`] with the bins handed to the workers as `schedule` says (the states
    /// then come back in worker order).
    #[allow(clippy::too_many_arguments)]
    pub fn fold_scheduled<S: Send, E: From<QueryError> + Send>(
        &self,
        sel: &Selection,
        fields: &[Field],
        bound: Bound,
        schedule: Schedule<'_>,
        init: impl Fn(FoldPart<'_>) -> S + Sync,
        f: impl Fn(&mut S, &BinRef, &Batch, RowWeights<'_>, Option<&[u32]>) -> Result<(), E> + Sync,
        done: impl Fn(&mut S) + Sync,
    ) -> Result<(Loaded, Vec<S>), E> {
        if self.spark().is_some() {
            let mut l = self.load(sel, fields, bound)?;
            let mut s = init(FoldPart {
                bins: &[],
                worker: 0,
                workers: 1,
                all: &[],
                resampled: false,
            });
            for i in 0..l.batches.len() {
                f(
                    &mut s,
                    &l.batches[i].0,
                    &l.batches[i].1,
                    l.row_weights(i),
                    None,
                )?;
            }
            done(&mut s);
            l.folded = Some(Folded {
                records: l.records(),
                start: l.batches.iter().map(|(b, _)| b.start).min().unwrap_or(0),
                end: l.batches.iter().map(|(b, _)| b.end).max().unwrap_or(0),
                total: Default::default(),
            });
            l.batches.clear();
            l.weights.clear();
            l.variances.clear();
            l.aggregated = None;
            return Ok((l, vec![s]));
        }
        let (mut out, reading) = self.prepare(sel, fields, &[], bound)?;
        let Some(reading) = reading else {
            out.folded = Some(Folded::default());
            return Ok((out, Vec::new()));
        };
        out.rethreshold_z = self.bound_threshold(sel, bound, &reading)?;
        let z_new = out.rethreshold_z;
        // Bins are read in chunks unless they are re-thresholded (a bin's sample is drawn
        // over the whole bin) or the engine caches whole bins for the next question.
        let chunked = z_new.is_none() && !self.caches();
        let workers = self.fold_workers(&reading.bins);
        let balanced = match schedule {
            Schedule::Balanced(free) => workers > 1 && free(&reading.bins, z_new.is_some()),
            Schedule::Runs => false,
        };
        let runs = if balanced {
            vec![&reading.bins[..]; workers]
        } else {
            split_bins(&reading.bins, workers)
        };
        // Balanced: the bins by size, largest first, claimed one at a time.
        let mut order: Vec<usize> = Vec::new();
        if balanced {
            order.extend(0..reading.bins.len());
            order.sort_by_key(|&i| std::cmp::Reverse(reading.bins[i].records_after));
        }
        let claimed = std::sync::atomic::AtomicUsize::new(0);
        let work = |worker: usize| -> Result<(Loaded, S), E> {
            let bins = runs[worker];
            let mut part = Loaded::default();
            let mut span = Folded {
                start: u64::MAX,
                ..Folded::default()
            };
            let mut state = init(FoldPart {
                bins,
                worker,
                workers: runs.len(),
                all: &reading.bins,
                resampled: z_new.is_some(),
            });
            let mut one = |bin: &BinRef,
                           r: Result<Arc<Batch>, flowdrill_store::Error>,
                           part: &mut Loaded|
             -> Result<(), E> {
                let Some((b, keep)) = self.matching_rows(sel, bin, r, part)? else {
                    return Ok(());
                };
                let took = |span: &mut Folded, records: usize| {
                    span.records += records as u64;
                    span.start = span.start.min(bin.start);
                    span.end = span.end.max(bin.end);
                };
                if let Some(z) = z_new {
                    // A bin's sample is drawn over its matching records: copy them first.
                    let b = match keep {
                        Some(k) => Arc::new(b.filter(&k.to_bools(), None)),
                        None => b,
                    };
                    let resampled = self.rethreshold(bin, &b, z);
                    let b = resampled.as_ref().unwrap_or(&b);
                    if b.is_empty() {
                        return Ok(());
                    }
                    part.z_max = part.z_max.max(z_max(b));
                    took(&mut span, b.len());
                    return f(
                        &mut state,
                        bin,
                        b,
                        RowWeights::Records(WeightColumns::of(b)),
                        None,
                    );
                }
                // Otherwise the analysis reads the matching rows where they are.
                let rows: Option<Vec<u32>> =
                    keep.map(|k| k.iter_ones().map(|i| i as u32).collect());
                let zm = match &rows {
                    Some(r) if !b.unsampled() => r
                        .iter()
                        .map(|&i| b.sample_z().get(i as usize).copied().unwrap_or(0))
                        .max()
                        .unwrap_or(0),
                    _ => z_max(&b),
                };
                part.z_max = part.z_max.max(zm);
                took(&mut span, rows.as_ref().map_or(b.len(), Vec::len));
                f(
                    &mut state,
                    bin,
                    &b,
                    RowWeights::Records(WeightColumns::of(&b)),
                    rows.as_deref(),
                )
            };
            let extras: Vec<&str> = reading.extras.iter().map(String::as_str).collect();
            // The filter's columns, read first so that the others are decoded only for the
            // pages that hold matching rows (rows are sorted by address family, exporter,
            // interface, protocol, destination port, ...: a drill-down's rows sit together).
            let pre_names: Vec<String> = sel
                .filter
                .as_ref()
                .map_or_else(Vec::new, |f| f.custom_names());
            let pre_extras: Vec<&str> = pre_names.iter().map(String::as_str).collect();
            let pre_fields: Vec<Field> = sel.filter.as_ref().map_or_else(Vec::new, |f| f.fields());
            let mut mine = bins.iter();
            let mut next_bin = || {
                if !balanced {
                    return mine.next();
                }
                let i = claimed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                order.get(i).map(|&j| &reading.bins[j])
            };
            while let Some(bin) = next_bin() {
                if !chunked {
                    let r = self.read_bin(bin, &reading.fields, &reading.extras);
                    one(bin, r, &mut part)?;
                    continue;
                }
                // Chunk by chunk: memory holds one chunk's columns, not the bin's.
                let mut failed: Option<E> = None;
                let mut chunks = 0;
                let mut take = |b: Batch, part: &mut Loaded| {
                    chunks += 1;
                    match one(bin, Ok(Arc::new(b)), part) {
                        Ok(()) => true,
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                };
                let mut pre = pre_fields.clone();
                if clipped(sel, bin) {
                    pre.push(Field::TimeStart);
                }
                let read = if pre.is_empty() && pre_extras.is_empty() {
                    self.store.read_bin_chunks(
                        bin,
                        &reading.fields,
                        &extras,
                        FOLD_CHUNK,
                        &mut |b| take(b, &mut part),
                    )
                } else {
                    // Rows the selection drops are not handed over: count them as read here
                    // (`one` counts the rows it is given).
                    let r = self.store.read_bin_chunks_where(
                        bin,
                        &reading.fields,
                        &extras,
                        &pre,
                        &pre_extras,
                        FOLD_CHUNK,
                        &mut |b| match keep_of(sel, bin, b) {
                            Ok(k) => k.map(|k| k.to_bools()),
                            // Read every row: `one` reports the error.
                            Err(_) => None,
                        },
                        &mut |b| take(b, &mut part),
                    );
                    r.map(|(rows, handed)| {
                        part.records_read += (rows - handed) as u64;
                    })
                };
                if let Some(e) = failed {
                    return Err(e);
                }
                match read {
                    Ok(()) => {}
                    // Unreadable from the start: skipped and reported, as `load` does.
                    Err(e) if chunks == 0 => one(bin, Err(e), &mut part)?,
                    // Records of this file were already counted: the answer would be partial.
                    Err(e) => return Err(E::from(QueryError::from(e))),
                }
            }
            done(&mut state);
            part.folded = Some(span);
            Ok((part, state))
        };
        let results: Vec<Result<(Loaded, S), E>> = if runs.len() <= 1 {
            (0..runs.len()).map(work).collect()
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (1..runs.len()).map(|w| s.spawn(move || work(w))).collect();
                let mut all = vec![work(0)];
                for h in handles {
                    all.push(h.join().expect("fold worker panicked"));
                }
                all
            })
        };
        let mut states = Vec::with_capacity(results.len());
        let mut states_skipped = 0;
        let mut all = Folded {
            start: u64::MAX,
            ..Folded::default()
        };
        for r in results {
            let (part, state) = r?;
            if let Some(f) = part.folded {
                all.records += f.records;
                all.start = all.start.min(f.start);
                all.end = all.end.max(f.end);
            }
            out.records_read += part.records_read;
            out.records_matched += part.records_matched;
            states_skipped += part.skipped.len();
            out.skipped.extend(part.skipped);
            out.z_max = out.z_max.max(part.z_max);
            states.push(state);
        }
        if all.records == 0 {
            all.start = 0;
        }
        if balanced {
            // In bin order, as the runs give them (the store's own come first).
            let first = out.skipped.len() - states_skipped;
            let rank = |p: &std::path::Path| reading.bins.iter().position(|b| p.ends_with(&b.path));
            out.skipped[first..].sort_by_key(|k| rank(&k.path));
        }
        out.folded = Some(all);
        out.exact = out.z_max == 0;
        Ok((out, states))
    }

    /// The threshold the matching records of `reading` must be re-sampled at to meet `bound`
    /// (`None` when they fit): a first pass reads the bytes and thresholds of the matching
    /// records, as `load` does after reading them. No pass when the bins hold fewer records
    /// than the bound in all.
    fn bound_threshold(
        &self,
        sel: &Selection,
        bound: Bound,
        reading: &Reading,
    ) -> Result<Option<u64>, QueryError> {
        let Bound::Records(max) = bound else {
            return Ok(None);
        };
        let stored: u64 = reading.bins.iter().map(|b| b.records_after).sum();
        if stored <= max {
            return Ok(None);
        }
        let (mut probe_out, probe) = self.prepare(sel, &[], &[], bound)?;
        let mut items = ThresholdItems::default();
        if let Some(probe) = probe {
            self.stream(sel, &probe, &mut probe_out, |_, b| {
                items.add(b);
                Ok::<(), QueryError>(())
            })?;
        }
        if probe_out.records_matched <= max {
            return Ok(None);
        }
        let z = items.choose(max);
        Ok((z > 0).then_some(z))
    }

    /// Workers for [`Engine::fold`]: the cores, at most one per bin.
    fn fold_workers(&self, bins: &[BinRef]) -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(bins.len())
            .max(1)
    }

    /// The links of a selection, the plan for the bound, and the columns to read for `fields`
    /// and the filter; no plan when nothing can match.
    pub(crate) fn prepare(
        &self,
        sel: &Selection,
        fields: &[Field],
        extras: &[String],
        bound: Bound,
    ) -> Result<(Loaded, Option<Reading>), QueryError> {
        let links = self.links(sel)?;
        let link_refs: Vec<&str> = links.iter().map(String::as_str).collect();
        let out = Loaded {
            exact: true,
            links: links.clone(),
            // Files the store could not catalogue (truncated, corrupt) are reported with every
            // answer: their records are missing from it.
            skipped: self.store.skipped().to_vec(),
            ..Loaded::default()
        };
        if links.is_empty() || sel.range.start >= sel.range.end {
            return Ok((out, None));
        }
        let goal = match bound {
            // The finest level with full coverage, whatever its size.
            Bound::Exact => PlanGoal::MaxRecords(u64::MAX),
            Bound::Records(n) => PlanGoal::MaxRecords(n),
            Bound::RelativeError(e) => PlanGoal::MaxRelativeError(e),
        };
        let mut plan = self.store.plan(&link_refs, sel.range.clone(), goal)?;
        let mut bins_pruned = 0;
        if let Some(f) = &sel.filter {
            let before = plan.bins.len();
            plan.bins.retain(|b| !self.prunes(f, b));
            bins_pruned = before - plan.bins.len();
        }
        let mut need: Vec<Field> = fields.to_vec();
        need.extend([Field::Bytes, Field::Packets, Field::Continued]);
        let mut extras = extras.to_vec();
        if let Some(f) = &sel.filter {
            need.extend(f.fields());
            extras.extend(f.custom_names());
        }
        let partial = plan
            .bins
            .iter()
            .any(|b| b.start < sel.range.start || b.end > sel.range.end);
        if partial {
            need.push(Field::TimeStart);
        }
        need.sort_unstable();
        need.dedup();
        extras.sort();
        extras.dedup();
        let out = Loaded {
            level: plan.level,
            bins_pruned,
            ..out
        };
        let reading = Reading {
            bins: plan.bins,
            fields: need,
            extras,
        };
        Ok((out, Some(reading)))
    }

    /// Whether `bin`'s column statistics show that no record of it matches `f` (a file whose
    /// footer cannot be read is not pruned: reading it reports the problem).
    fn prunes(&self, f: &flowdrill_filter::Expr, bin: &BinRef) -> bool {
        let key = (bin.path.clone(), bin.size, bin.mtime_ns);
        let cached = self.ranges.lock().ok().and_then(|m| m.get(&key).cloned());
        let ranges = match cached {
            Some(r) => r,
            None => match self.store.bin_ranges(bin) {
                Ok(r) => {
                    let r = Arc::new(r);
                    if let Ok(mut m) = self.ranges.lock() {
                        m.insert(key, r.clone());
                    }
                    r
                }
                Err(_) => return false,
            },
        };
        let lookup = |field: Field| {
            ranges
                .iter()
                .find(|(g, _)| *g == field)
                .map(|(_, parts)| parts.clone())
        };
        f.prune(&lookup) == flowdrill_filter::Tri::None
    }

    /// The records of one bin read that match the selection's range and filter, shared with
    /// the cache when all match; `None` when none does. An unreadable file is added to
    /// `out.skipped`; the counters of `out` are updated.
    pub(crate) fn matching(
        &self,
        sel: &Selection,
        bin: &BinRef,
        read: Result<Arc<Batch>, flowdrill_store::Error>,
        out: &mut Loaded,
    ) -> Result<Option<Arc<Batch>>, QueryError> {
        Ok(self
            .matching_rows(sel, bin, read, out)?
            .map(|(batch, keep)| match keep {
                Some(k) => Arc::new(batch.filter(&k.to_bools(), None)),
                None => batch,
            }))
    }

    /// [`Engine::matching`] without the copy: the batch read and which of its rows match
    /// (`None`: all of them).
    pub(crate) fn matching_rows(
        &self,
        sel: &Selection,
        bin: &BinRef,
        read: Result<Arc<Batch>, flowdrill_store::Error>,
        out: &mut Loaded,
    ) -> Result<Option<Matching>, QueryError> {
        let batch = match read {
            Ok(b) => b,
            Err(
                e @ (flowdrill_store::Error::Corrupt { .. }
                | flowdrill_store::Error::Io { .. }
                | flowdrill_store::Error::NewerFormat { .. }),
            ) => {
                out.skipped.push(Skipped {
                    path: self.store.root().join(&bin.path),
                    reason: e.to_string(),
                });
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        out.records_read += batch.len() as u64;
        let keep = keep_of(sel, bin, batch.as_ref())?;
        let matched = keep.as_ref().map_or(batch.len(), |k| k.count_ones());
        if matched == 0 {
            return Ok(None);
        }
        out.records_matched += matched as u64;
        let keep = keep.filter(|_| matched < batch.len());
        Ok(Some((batch, keep)))
    }

    /// Reads `reading`'s bins a few at a time, handing each bin's matching records to `f`.
    fn stream<E: From<QueryError>>(
        &self,
        sel: &Selection,
        reading: &Reading,
        out: &mut Loaded,
        mut f: impl FnMut(&BinRef, &Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        let step = std::thread::available_parallelism().map_or(1, |n| n.get());
        for bins in reading.bins.chunks(step) {
            let read = self.read_bins(bins, &reading.fields, &reading.extras);
            for (bin, r) in bins.iter().zip(read) {
                if let Some(b) = self.matching(sel, bin, r, out)? {
                    f(bin, &b)?;
                }
            }
        }
        Ok(())
    }

    /// One bin's records re-thresholded at `z`, seeded per bin (so that a repeated query
    /// keeps the same records).
    pub(crate) fn rethreshold(&self, bin: &BinRef, b: &Batch, z: u64) -> Option<Batch> {
        b.rethreshold(z, self.rethreshold_seed(bin))
    }

    /// The seed of `bin`'s re-thresholding (the Spark engine draws from the same stream).
    pub(crate) fn rethreshold_seed(&self, bin: &BinRef) -> u64 {
        self.seed ^ bin.start.rotate_left(17) ^ fnv(bin.link.as_bytes())
    }
}

/// What choosing a re-sampling threshold needs of the matching records, gathered batch by
/// batch: their sizes while none is sampled (sorted once, [`sampling::RawThresholds`]), their
/// (size, threshold) pairs once one is ([`sampling::choose_threshold`]).
#[derive(Debug, Default)]
pub(crate) struct ThresholdItems {
    sizes: Vec<u64>,
    pairs: Option<Vec<(u64, u64)>>,
}

impl ThresholdItems {
    pub(crate) fn with_capacity(n: usize) -> ThresholdItems {
        ThresholdItems {
            sizes: Vec::with_capacity(n),
            pairs: None,
        }
    }

    pub(crate) fn add(&mut self, b: &Batch) {
        let x = b.u64s(Field::Bytes).unwrap_or(&[]);
        if self.pairs.is_none() && b.unsampled() {
            self.sizes.extend_from_slice(x);
            return;
        }
        let z = b.sample_z();
        let pairs = self.pairs.get_or_insert_with(|| {
            std::mem::take(&mut self.sizes)
                .into_iter()
                .map(|x| (x, 0))
                .collect()
        });
        pairs.extend(x.iter().copied().zip(z.iter().copied()));
    }

    /// The threshold that keeps about `max` of the records in expectation (0: all fit).
    pub(crate) fn choose(self, max: u64) -> u64 {
        match self.pairs {
            None => sampling::RawThresholds::new(self.sizes).for_target(max as f64),
            Some(p) => sampling::choose_threshold(&p, max as f64),
        }
    }
}

/// The largest sampling threshold of a batch's records (0 when none was sampled).
pub(crate) fn z_max(b: &Batch) -> u64 {
    if b.unsampled() {
        return 0;
    }
    b.sample_z().iter().copied().max().unwrap_or(0)
}

/// A batch read and which of its rows match a selection (`None`: all of them).
pub(crate) type Matching = (Arc<Batch>, Option<flowdrill_filter::Bitmap>);

/// What opening and reading a bin file costs besides its records, in records: about 0.4 ms on
/// the development VM (footer, checksums, reader), while a worker folds some 40 k records a
/// millisecond. A trail of one-record bins after long flows made the worker that read them
/// the slower one when bins were split by records alone.
const FILE_COST: u64 = 16_384;

/// Rows per chunk when [`Engine::fold`] reads a bin chunk by chunk. A chunk's columns (about
/// 40 bytes a row for `top srcip`) then stay in a core's 1 MB L2 cache while they are folded,
/// and its buffers are small enough for the allocator to reuse from its free lists: 64 Ki-row
/// chunks (512 KB for each 8-byte column) took fresh pages for every chunk, and `top srcip` over
/// 10 M records took 0.225 s (median of 10) instead of 0.185; `top dstport` 0.10 instead of 0.06.
const FOLD_CHUNK: usize = 1 << 14;

/// `bins` in at most `parts` contiguous runs of about equal cost: stored records, and
/// [`FILE_COST`] a file.
fn split_bins(bins: &[BinRef], parts: usize) -> Vec<&[BinRef]> {
    let cost = |b: &BinRef| b.records_after + FILE_COST;
    let total: u64 = bins.iter().map(cost).sum();
    let parts = parts.max(1) as u64;
    let mut runs = Vec::new();
    let mut start = 0;
    let mut acc = 0;
    for (i, b) in bins.iter().enumerate() {
        let w = cost(b);
        // The run's share of the records (scaled by `parts`) lies between the run without
        // this bin and with it: close the run before the bin when that is nearer.
        let target = total * (runs.len() as u64 + 1);
        let (before, after) = (acc * parts, (acc + w) * parts);
        if (runs.len() as u64) + 1 < parts
            && i > start
            && after > target
            && target.saturating_sub(before) < after - target
        {
            runs.push(&bins[start..i]);
            start = i;
        }
        acc += w;
        if (runs.len() as u64) + 1 < parts && acc * parts >= total * (runs.len() as u64 + 1) {
            runs.push(&bins[start..=i]);
            start = i + 1;
        }
    }
    if start < bins.len() {
        runs.push(&bins[start..]);
    }
    runs
}

/// The rows of `batch` (of `bin`) that `sel`'s filter and time range keep (`None`: all).
fn keep_of(
    sel: &Selection,
    bin: &BinRef,
    batch: &Batch,
) -> Result<Option<flowdrill_filter::Bitmap>, QueryError> {
    let mut keep = match &sel.filter {
        Some(f) => Some(f.select(batch)?),
        None => None,
    };
    if clipped(sel, bin) {
        let ts = batch.u64s(Field::TimeStart).unwrap_or(&[]);
        let inside: Vec<bool> = ts.iter().map(|t| sel.range.contains(t)).collect();
        let m = flowdrill_filter::Bitmap::from_bools(&inside);
        match &mut keep {
            Some(k) => k.and_with(&m),
            None => keep = Some(m),
        }
    }
    Ok(keep)
}

/// Whether `bin` reaches beyond `sel`'s time range (its records are then checked one by one).
fn clipped(sel: &Selection, bin: &BinRef) -> bool {
    bin.start < sel.range.start || bin.end > sel.range.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(records: u64) -> BinRef {
        BinRef {
            link: "l".into(),
            level: 0,
            start: 0,
            end: 0,
            path: Default::default(),
            size: 0,
            records_before: records,
            records_after: records,
            z_max: 0,
            flows: 0,
            packets: 0,
            bytes: 0,
            bytes_variance: 0.0,
            mtime_ns: 0,
        }
    }

    #[test]
    fn bins_split_into_runs_of_about_equal_records() {
        let sizes = |runs: &[&[BinRef]]| -> Vec<u64> {
            runs.iter()
                .map(|r| r.iter().map(|b| b.records_after).sum())
                .collect()
        };
        let bins: Vec<BinRef> = [10, 10, 10, 10].into_iter().map(bin).collect();
        assert_eq!(sizes(&split_bins(&bins, 2)), [20, 20]);
        assert_eq!(sizes(&split_bins(&bins, 1)), [40]);
        let bins: Vec<BinRef> = [100_000, 1, 1, 1, 1].into_iter().map(bin).collect();
        assert_eq!(sizes(&split_bins(&bins, 2)), [100_000, 4]);
        let bins: Vec<BinRef> = [1, 1, 1, 100_000].into_iter().map(bin).collect();
        assert_eq!(sizes(&split_bins(&bins, 2)), [3, 100_000]);
        // Opening a file counts: forty one-record bins cost about as much as two large bins
        // (by records alone, the trail would go with the second large bin).
        let mut trail = vec![400_000, 400_000];
        trail.extend([1; 40]);
        let bins: Vec<BinRef> = trail.into_iter().map(bin).collect();
        assert_eq!(sizes(&split_bins(&bins, 2)), [800_000, 40]);
        assert!(split_bins(&[], 2).is_empty());
        // Never more runs than asked, every bin once, in order.
        let bins: Vec<BinRef> = (1..30).map(bin).collect();
        for parts in 1..5 {
            let runs = split_bins(&bins, parts);
            assert!(runs.len() <= parts);
            assert_eq!(runs.concat().len(), bins.len());
        }
    }
}
