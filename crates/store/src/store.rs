//! [`Store`]: opening a store directory, its catalog of bins, reading bins, planning which
//! level to read, and retention.
//!
//! The catalog (`_catalog.json`) is a cache of the bin files' footers. It is never trusted
//! blindly: [`Store::open`] and [`Store::refresh`] walk the directory tree, keep the entries
//! whose file still has the recorded size and modification time, read the footer of every
//! other file, and rewrite the catalog when it changed. A file that cannot be read is listed in
//! [`Store::skipped`] with the reason, never silently dropped and never a crash.

use crate::batch::Batch;
use crate::config::LinksConfig;
use crate::error::{Error, Result};
use crate::format;
use crate::layout::{self, CATALOG, LINKS_FILE, MARKER};
use crate::stats::BinStats;
use flowdrill_model::Field;
use flowdrill_model::hll::Hll;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

const STORE_VERSION: u32 = 1;
const CATALOG_VERSION: u32 = 1;

/// One bin file, as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinRef {
    pub link: String,
    pub level: u8,
    /// Bin start and end, Unix ms; the bin is `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// Path relative to the store root.
    pub path: PathBuf,
    /// File size, bytes.
    pub size: u64,
    /// Records of the bin before sampling (exact).
    pub records_before: u64,
    /// Records stored.
    pub records_after: u64,
    /// Largest sampling threshold in the file (0 = not sampled).
    pub z_max: u64,
    /// Exact counters before sampling.
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Unbiased estimate of the variance of the file's estimated byte total.
    pub bytes_variance: f64,
    /// File modification time (ns since the epoch), to detect a replaced file.
    pub mtime_ns: u64,
}

/// A file that reads skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What to optimise when choosing a level ([`Store::plan`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlanGoal {
    /// The finest level whose bins hold at most this many records.
    MaxRecords(u64),
    /// The coarsest level whose estimated byte total has at most this relative standard error.
    MaxRelativeError(f64),
}

/// The bins to read for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub level: u8,
    pub bins: Vec<BinRef>,
    /// Records stored in those bins.
    pub records: u64,
    /// Milliseconds of the range covered by bins (summed over links).
    pub covered_ms: u64,
    /// Relative standard error of the byte total estimated from these bins.
    pub relative_error: f64,
}

/// Bins read over a range, and the files skipped.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub batches: Vec<(BinRef, Batch)>,
    pub skipped: Vec<Skipped>,
}

/// What an expiry deleted.
#[derive(Debug, Default, PartialEq)]
pub struct ExpireSummary {
    pub removed: Vec<BinRef>,
    pub bytes_freed: u64,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize, Default)]
struct CatalogFile {
    version: u32,
    bins: Vec<BinRef>,
}

/// An open store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    config: LinksConfig,
    /// Sorted by (link, level, start).
    bins: Vec<BinRef>,
    skipped: Vec<Skipped>,
    /// Removals only report and forget bins in memory ([`Store::set_dry_run`]).
    dry_run: bool,
}

fn mtime_ns(md: &fs::Metadata) -> u64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A [`BinRef`] from a file's footer.
pub(crate) fn bin_ref_of(root: &Path, rel: &Path) -> Result<BinRef> {
    let path = root.join(rel);
    let md = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    let (meta, stats) = format::read_meta(&path)?;
    let expected = layout::bin_path(&meta.link, meta.level, meta.bin_start);
    if expected != rel {
        return Err(Error::corrupt(
            &path,
            format!("its metadata places it at {}", expected.display()),
        ));
    }
    Ok(BinRef {
        link: meta.link,
        level: meta.level,
        start: meta.bin_start,
        end: meta.bin_end,
        path: rel.to_path_buf(),
        size: md.len(),
        records_before: meta.records_before,
        records_after: meta.records_after,
        z_max: meta.z_max,
        flows: stats.total.flows,
        packets: stats.total.packets,
        bytes: stats.total.bytes,
        bytes_variance: meta.bytes_variance,
        mtime_ns: mtime_ns(&md),
    })
}

/// Reads the catalog file; a missing or unreadable one is an empty catalog (it is a cache).
fn load_catalog(root: &Path) -> Vec<BinRef> {
    fs::read(root.join(CATALOG))
        .ok()
        .and_then(|b| serde_json::from_slice::<CatalogFile>(&b).ok())
        .filter(|c| c.version == CATALOG_VERSION)
        .map(|c| c.bins)
        .unwrap_or_default()
}

/// Writes the catalog atomically.
pub(crate) fn save_catalog(root: &Path, bins: &[BinRef]) -> Result<()> {
    let c = CatalogFile {
        version: CATALOG_VERSION,
        bins: bins.to_vec(),
    };
    let bytes = serde_json::to_vec(&c).map_err(|e| Error::Internal(e.to_string()))?;
    layout::write_atomic(&root.join(CATALOG), &bytes)
}

/// Upserts and removes entries of the catalog on disk (used by writers).
pub(crate) fn update_catalog(root: &Path, added: &[BinRef], removed: &[PathBuf]) -> Result<()> {
    let mut bins = load_catalog(root);
    bins.retain(|b| !removed.contains(&b.path) && !added.iter().any(|a| a.path == b.path));
    bins.extend_from_slice(added);
    sort_bins(&mut bins);
    save_catalog(root, &bins)
}

fn sort_bins(bins: &mut [BinRef]) {
    bins.sort_by(|a, b| (&a.link, a.level, a.start).cmp(&(&b.link, b.level, b.start)));
}

fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if let Some(n) = e.file_name().to_str() {
            out.push((n.to_string(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Creates a store in `dir` (which may exist if empty), or opens it if it already is one.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref();
        if dir.join(MARKER).exists() {
            return Store::open(dir);
        }
        if dir.exists() {
            let mut it = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if it.next().is_some() {
                return Err(Error::NotEmpty(dir.to_path_buf()));
            }
        }
        layout::create_dirs(dir)?;
        let marker = Marker {
            format: "flowdrill-store".into(),
            version: STORE_VERSION,
        };
        layout::write_atomic(
            &dir.join(MARKER),
            &serde_json::to_vec_pretty(&marker).map_err(|e| Error::Internal(e.to_string()))?,
        )?;
        Store::open(dir)
    }

    /// Opens an existing store: reads its links file and refreshes the catalog.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_path_buf();
        let mpath = root.join(MARKER);
        let bytes = match fs::read(&mpath) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotAStore(root));
            }
            Err(e) => return Err(Error::io(&mpath, e)),
        };
        let marker: Marker =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&mpath, e))?;
        if marker.version > STORE_VERSION {
            return Err(Error::NewerFormat {
                path: mpath,
                found: marker.version,
                supported: STORE_VERSION,
            });
        }
        let lpath = root.join(LINKS_FILE);
        let config = match fs::read_to_string(&lpath) {
            Ok(text) => LinksConfig::parse(&text, &lpath.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LinksConfig::default(),
            Err(e) => return Err(Error::io(&lpath, e)),
        };
        let mut s = Store {
            root,
            config,
            bins: Vec::new(),
            skipped: Vec::new(),
            dry_run: false,
        };
        s.refresh()?;
        Ok(s)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The links file in force.
    pub fn config(&self) -> &LinksConfig {
        &self.config
    }

    /// Validates a links file and makes it the store's (`DIR/_links.toml`).
    pub fn set_links(&mut self, text: &str) -> Result<()> {
        let config = LinksConfig::parse(text, LINKS_FILE)?;
        layout::write_atomic(&self.root.join(LINKS_FILE), text.as_bytes())?;
        self.config = config;
        Ok(())
    }

    /// Re-reads the directory tree (see the module doc). Returns the files skipped.
    pub fn refresh(&mut self) -> Result<&[Skipped]> {
        let old: HashMap<PathBuf, BinRef> = load_catalog(&self.root)
            .into_iter()
            .map(|b| (b.path.clone(), b))
            .collect();
        let mut bins = Vec::new();
        let mut skipped = Vec::new();
        let mut dirty = false;
        for (lname, ldir) in list_dir(&self.root)? {
            if layout::is_temp(&lname) {
                layout::remove_stale_temp(&ldir); // the catalog's or links file's
                continue;
            }
            if !lname.starts_with("link=") || !ldir.is_dir() {
                continue;
            }
            for (vname, vdir) in list_dir(&ldir)? {
                if !vname.starts_with("level=") || !vdir.is_dir() {
                    continue;
                }
                for (dname, ddir) in list_dir(&vdir)? {
                    if !dname.starts_with("date=") || !ddir.is_dir() {
                        continue;
                    }
                    for (fname, fpath) in list_dir(&ddir)? {
                        if layout::is_temp(&fname) {
                            layout::remove_stale_temp(&fpath);
                            continue;
                        }
                        if !fname.ends_with(".parquet") {
                            continue;
                        }
                        let rel = fpath
                            .strip_prefix(&self.root)
                            .map_err(|e| Error::Internal(e.to_string()))?
                            .to_path_buf();
                        let Ok(md) = fs::metadata(&fpath) else {
                            continue; // deleted meanwhile
                        };
                        if let Some(b) = old.get(&rel)
                            && b.size == md.len()
                            && b.mtime_ns == mtime_ns(&md)
                        {
                            bins.push(b.clone());
                            continue;
                        }
                        dirty = true;
                        match bin_ref_of(&self.root, &rel) {
                            Ok(b) => bins.push(b),
                            Err(e) => skipped.push(Skipped {
                                path: fpath.clone(),
                                reason: match e {
                                    Error::Corrupt { reason, .. } => reason,
                                    other => other.to_string(),
                                },
                            }),
                        }
                    }
                }
            }
        }
        dirty |= bins.len() != old.len();
        sort_bins(&mut bins);
        if dirty {
            // The catalog is a cache: failing to write it (read-only store) costs speed only.
            let _ = save_catalog(&self.root, &bins);
        }
        self.bins = bins;
        self.skipped = skipped;
        Ok(&self.skipped)
    }

    /// Files found unreadable by the last refresh, with reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Every link of the links file and of the data on disk, sorted.
    pub fn links(&self) -> Vec<String> {
        let mut v: Vec<String> = self.config.links.iter().map(|l| l.name.clone()).collect();
        v.extend(self.bins.iter().map(|b| b.link.clone()));
        v.sort();
        v.dedup();
        v
    }

    fn check_link(&self, link: &str) -> Result<()> {
        if self.config.link(link).is_some() || self.bins.iter().any(|b| b.link == link) {
            Ok(())
        } else {
            Err(Error::UnknownLink {
                name: link.to_string(),
                known: self.links().join(", "),
            })
        }
    }

    /// Every bin in the catalog, sorted by (link, level, start).
    pub fn all_bins(&self) -> &[BinRef] {
        &self.bins
    }

    /// The bins of `link` at `level` that overlap `range` (Unix ms), by start time.
    pub fn bins(&self, link: &str, range: Range<u64>, level: u8) -> Result<Vec<BinRef>> {
        self.check_link(link)?;
        Ok(self
            .bins
            .iter()
            .filter(|b| {
                b.link == link && b.level == level && b.start < range.end && b.end > range.start
            })
            .cloned()
            .collect())
    }

    /// The levels present on disk for `link`.
    pub fn levels(&self, link: &str) -> Vec<u8> {
        let mut v: Vec<u8> = self
            .bins
            .iter()
            .filter(|b| b.link == link)
            .map(|b| b.level)
            .collect();
        v.dedup();
        v
    }

    /// Reads `fields` (and the thresholds) of a bin.
    pub fn read_bin(&self, bin: &BinRef, fields: &[Field]) -> Result<Batch> {
        format::read(&self.root.join(&bin.path), fields, &[])
    }

    /// Reads `fields`, the thresholds and the user-defined columns `extras` of a bin.
    pub fn read_bin_with_extras(
        &self,
        bin: &BinRef,
        fields: &[Field],
        extras: &[&str],
    ) -> Result<Batch> {
        format::read(&self.root.join(&bin.path), fields, extras)
    }

    /// Reads a bin as [`Store::read_bin_with_extras`] does, in chunks of at most `chunk` rows
    /// handed to `f` in order (see [`format::read_chunks`]).
    pub fn read_bin_chunks(
        &self,
        bin: &BinRef,
        fields: &[Field],
        extras: &[&str],
        chunk: usize,
        f: &mut dyn FnMut(Batch) -> bool,
    ) -> Result<()> {
        format::read_chunks(&self.root.join(&bin.path), fields, extras, chunk, f)
    }

    /// Reads a bin in chunks as [`Store::read_bin_chunks`] does, decoding `fields` only for
    /// the rows `select` keeps after reading `pre_fields` (see [`format::read_chunks_where`]:
    /// the chunks may hold other rows too). Returns the bin's rows and the rows handed over.
    #[allow(clippy::too_many_arguments)]
    pub fn read_bin_chunks_where(
        &self,
        bin: &BinRef,
        fields: &[Field],
        extras: &[&str],
        pre_fields: &[Field],
        pre_extras: &[&str],
        chunk: usize,
        select: &mut dyn FnMut(&Batch) -> Option<Vec<bool>>,
        f: &mut dyn FnMut(Batch) -> bool,
    ) -> Result<(usize, usize)> {
        format::read_chunks_where(
            &self.root.join(&bin.path),
            fields,
            extras,
            pre_fields,
            pre_extras,
            chunk,
            select,
            f,
        )
    }

    /// The ranges of a bin's columns, from its footer (see [`format::column_ranges`]).
    pub fn bin_ranges(&self, bin: &BinRef) -> Result<format::ColumnRanges> {
        format::column_ranges(&self.root.join(&bin.path))
    }

    /// The exact counters and sketches of a bin (taken before sampling).
    pub fn bin_stats(&self, bin: &BinRef) -> Result<BinStats> {
        format::read_meta(&self.root.join(&bin.path)).map(|(_, s)| s)
    }

    /// Some sketches of a bin's statistics (cheaper than [`Store::bin_stats`] when only they
    /// are needed): `None` for one the file does not have (the IPv6-only sketches of files
    /// written before them).
    pub fn bin_sketches(
        &self,
        bin: &BinRef,
        which: &[crate::stats::Sketch],
    ) -> Result<Vec<Option<Hll>>> {
        format::read_sketches(&self.root.join(&bin.path), which)
    }

    /// Reads every bin of `link` at `level` overlapping `range`; unreadable files are listed
    /// in the result's `skipped`, not fatal.
    pub fn read_range(
        &self,
        link: &str,
        range: Range<u64>,
        level: u8,
        fields: &[Field],
    ) -> Result<ReadResult> {
        let mut out = ReadResult::default();
        for b in self.bins(link, range, level)? {
            match self.read_bin(&b, fields) {
                Ok(batch) => out.batches.push((b, batch)),
                Err(e @ (Error::Corrupt { .. } | Error::Io { .. } | Error::NewerFormat { .. })) => {
                    out.skipped.push(Skipped {
                        path: self.root.join(&b.path),
                        reason: e.to_string(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The merged statistics of `link` at `level` over `range` (whole bins), and the files
    /// whose statistics could not be read.
    pub fn stats(
        &self,
        link: &str,
        range: Range<u64>,
        level: u8,
    ) -> Result<(BinStats, Vec<Skipped>)> {
        let mut total = BinStats::default();
        let mut skipped = Vec::new();
        for b in self.bins(link, range, level)? {
            match self.bin_stats(&b) {
                Ok(s) => total.merge(&s)?,
                Err(e) => skipped.push(Skipped {
                    path: self.root.join(&b.path),
                    reason: e.to_string(),
                }),
            }
        }
        Ok((total, skipped))
    }

    /// Chooses the level to read for `links` over `range`.
    ///
    /// Only levels that cover the most of the range are candidates (a finer level whose older
    /// bins have expired loses to a coarser one that still has them). Among them,
    /// [`PlanGoal::MaxRecords`] picks the finest level within the bound (or, if none is, the
    /// one with the fewest records) and [`PlanGoal::MaxRelativeError`] picks the coarsest level
    /// within the error (or, if none is, the most accurate).
    pub fn plan(&self, links: &[&str], range: Range<u64>, goal: PlanGoal) -> Result<Plan> {
        if range.start >= range.end {
            return Err(Error::InvalidArgument(format!(
                "empty time range {}..{}",
                range.start, range.end
            )));
        }
        let mut plans: Vec<Plan> = Vec::new();
        let max_level = self.bins.iter().map(|b| b.level).max().unwrap_or(0);
        for level in 0..=max_level {
            let mut bins = Vec::new();
            for l in links {
                bins.extend(self.bins(l, range.clone(), level)?);
            }
            let records = bins.iter().map(|b| b.records_after).sum();
            let covered_ms = bins
                .iter()
                .map(|b| b.end.min(range.end) - b.start.max(range.start))
                .sum();
            let bytes: u64 = bins.iter().map(|b| b.bytes).sum();
            let var: f64 = bins.iter().map(|b| b.bytes_variance).sum();
            let relative_error = if bytes == 0 {
                0.0
            } else {
                var.sqrt() / bytes as f64
            };
            plans.push(Plan {
                level,
                bins,
                records,
                covered_ms,
                relative_error,
            });
        }
        // A level is complete when it has data in every period the coarsest level with data
        // has (expiry removes fine bins first): count, per link, the coarsest level's bins
        // that each level's bins overlap, and keep the levels that overlap the most. (Bin
        // widths differ, so time covered would always favour the coarse levels.)
        let coarsest = plans
            .iter()
            .rev()
            .find(|p| !p.bins.is_empty())
            .map(|p| p.bins.clone())
            .unwrap_or_default();
        let overlaps = |p: &Plan| -> usize {
            coarsest
                .iter()
                .filter(|c| {
                    p.bins
                        .iter()
                        .any(|b| b.link == c.link && b.start < c.end && b.end > c.start)
                })
                .count()
        };
        let scores: Vec<usize> = plans.iter().map(overlaps).collect();
        let best = scores.iter().copied().max().unwrap_or(0);
        let mut i = 0;
        plans.retain(|_| {
            i += 1;
            scores[i - 1] == best
        });
        let pick = match goal {
            PlanGoal::MaxRecords(max) => plans
                .iter()
                .position(|p| p.records <= max)
                .or_else(|| (0..plans.len()).min_by_key(|&i| plans[i].records)),
            PlanGoal::MaxRelativeError(err) => plans
                .iter()
                .rposition(|p| p.relative_error <= err)
                .or_else(|| {
                    (0..plans.len()).min_by(|&a, &b| {
                        plans[a].relative_error.total_cmp(&plans[b].relative_error)
                    })
                }),
        };
        pick.map(|i| plans.swap_remove(i))
            .ok_or_else(|| Error::Internal("no level to plan with".into()))
    }

    /// While on, the retention and deletion methods ([`Store::expire`], [`Store::delete_range`]
    /// ...) return what they would remove and forget those bins in this `Store` value, but
    /// touch no file: a dry run, exact also when several rules apply in turn. A later
    /// [`Store::refresh`] sees the bins again.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    fn remove(&mut self, victims: Vec<BinRef>) -> Result<ExpireSummary> {
        let mut out = ExpireSummary::default();
        for b in victims {
            if !self.dry_run {
                layout::remove_bin(&self.root, &b.path)?;
            }
            out.bytes_freed += b.size;
            out.removed.push(b);
        }
        self.bins
            .retain(|b| !out.removed.iter().any(|r| r.path == b.path));
        if !out.removed.is_empty() && !self.dry_run {
            save_catalog(&self.root, &self.bins)?;
        }
        Ok(out)
    }

    /// Deletes the bins of `link` at `level` (all links / levels when `None`) that end at or
    /// before `cutoff` (Unix ms).
    pub fn expire_older_than(
        &mut self,
        link: Option<&str>,
        level: Option<u8>,
        cutoff: u64,
    ) -> Result<ExpireSummary> {
        let victims = self
            .bins
            .iter()
            .filter(|b| {
                link.is_none_or(|l| b.link == l)
                    && level.is_none_or(|v| b.level == v)
                    && b.end <= cutoff
            })
            .cloned()
            .collect();
        self.remove(victims)
    }

    /// Deletes the oldest bins of `link` at `level` until its files total at most `max_bytes`.
    pub fn expire_to_size(
        &mut self,
        link: &str,
        level: u8,
        max_bytes: u64,
    ) -> Result<ExpireSummary> {
        let mine: Vec<&BinRef> = self
            .bins
            .iter()
            .filter(|b| b.link == link && b.level == level)
            .collect();
        let mut total: u64 = mine.iter().map(|b| b.size).sum();
        let mut victims = Vec::new();
        for b in mine {
            if total <= max_bytes {
                break;
            }
            total -= b.size;
            victims.push(b.clone());
        }
        self.remove(victims)
    }

    /// Deletes every bin of `link` (all levels) lying wholly inside `range`. Bins that only
    /// overlap it (a day bin of a coarse level and a one-hour range) are kept.
    pub fn delete_range(&mut self, link: &str, range: Range<u64>) -> Result<ExpireSummary> {
        self.check_link(link)?;
        let victims = self
            .bins
            .iter()
            .filter(|b| b.link == link && b.start >= range.start && b.end <= range.end)
            .cloned()
            .collect();
        self.remove(victims)
    }

    /// Applies the retention of the links file (each level's `max_age` relative to `now`,
    /// Unix ms, then its `max_size`).
    pub fn expire(&mut self, now: u64) -> Result<ExpireSummary> {
        self.expire_configured(now, None, None)
    }

    /// [`Store::expire`] for one link and/or one level only (`None`: all).
    pub fn expire_configured(
        &mut self,
        now: u64,
        only_link: Option<&str>,
        only_level: Option<u8>,
    ) -> Result<ExpireSummary> {
        let mut out = ExpireSummary::default();
        for link in self.config.links.clone() {
            if only_link.is_some_and(|l| l != link.name) {
                continue;
            }
            for (level, lc) in link.levels.iter().enumerate() {
                let level = level as u8;
                if only_level.is_some_and(|v| v != level) {
                    continue;
                }
                if let Some(age) = lc.max_age_ms {
                    let s = self.expire_older_than(
                        Some(&link.name),
                        Some(level),
                        now.saturating_sub(age),
                    )?;
                    out.bytes_freed += s.bytes_freed;
                    out.removed.extend(s.removed);
                }
                if let Some(max) = lc.max_size {
                    let s = self.expire_to_size(&link.name, level, max)?;
                    out.bytes_freed += s.bytes_freed;
                    out.removed.extend(s.removed);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreWriter, WriterOptions};
    use flowdrill_model::FlowRecord;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn a_dry_run_reports_what_expiry_would_remove_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::create(dir.path()).unwrap();
        store
            .set_links("[defaults]\nmax_age = \"1h\"\nmax_size = \"1MB\"\n")
            .unwrap();
        let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
        for i in 0..3000u64 {
            w.push(FlowRecord {
                time_start: i * 3000,
                time_end: i * 3000 + 10,
                bytes: 1500,
                packets: 1,
                ..Default::default()
            })
            .unwrap();
        }
        w.finish().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let before = store.all_bins().to_vec();
        store.set_dry_run(true);
        let dry = store.expire(3 * HOUR).unwrap();
        assert!(!dry.removed.is_empty());
        assert!(before.iter().all(|b| dir.path().join(&b.path).exists()));
        let mut real = Store::open(dir.path()).unwrap();
        assert_eq!(real.all_bins(), &before[..]);
        assert_eq!(real.expire(3 * HOUR).unwrap(), dry);
        assert_eq!(real.all_bins().len(), before.len() - dry.removed.len());
    }
}
