//! `flowdrill import`: files into the store, with a progress bar and a summary of every drop.

use crate::args::{Format, Global, ImportArgs, PcapKind};
use crate::output::{Cell, Table};
use crate::{CliError, CliResult, units};
use anyhow::{Context, anyhow};
use flowdrill_ingest::anon::{Anonymizer, PrefixPreserving};
use flowdrill_ingest::import::{ImportConfig, ImportSummary, Importer, InputKind, RecordSink};
use flowdrill_model::{FlowRecord, Prefix};
use flowdrill_store::{Store, StoreWriter, WriteSummary, WriterOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Opens (or creates) the store at `dir`, installing a links file if one is given.
pub fn open_store(dir: &Path, links: Option<&Path>) -> Result<Store, CliError> {
    let mut store =
        Store::create(dir).with_context(|| format!("opening store {}", dir.display()))?;
    if let Some(l) = links {
        let text = std::fs::read_to_string(l)
            .with_context(|| format!("reading links file {}", l.display()))?;
        store.set_links(&text).map_err(CliError::usage)?;
    }
    Ok(store)
}

/// Hands imported records to the store writer.
pub struct StoreSink {
    writer: Option<StoreWriter>,
}

impl StoreSink {
    pub fn new(store: &mut Store) -> Result<StoreSink, CliError> {
        Self::with_options(store, WriterOptions::default())
    }

    pub fn with_options(store: &mut Store, mut opts: WriterOptions) -> Result<StoreSink, CliError> {
        // Records arrive roughly in time order; a bin closes once records ten minutes past its
        // end arrive, which bounds the writer's memory. Later stragglers are merged into it.
        opts.auto_close_after_ms.get_or_insert(600_000);
        Ok(StoreSink {
            writer: Some(StoreWriter::new(store, opts).context("starting the store writer")?),
        })
    }

    pub fn push(&mut self, batch: &[FlowRecord]) -> Result<(), CliError> {
        let w = self.writer.as_mut().expect("sink used after finish");
        for r in batch {
            w.push(r.clone()).context("writing to the store")?;
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<WriteSummary, CliError> {
        let w = self.writer.take().expect("sink finished twice");
        Ok(w.finish().context("closing the store's bins")?)
    }
}

impl RecordSink for StoreSink {
    fn accept(&mut self, batch: &[FlowRecord]) -> Result<(), String> {
        self.push(batch).map_err(|e| format!("{:#}", e.error))
    }
}

/// Records are counted but not stored (`--dry-run`).
struct NullSink;
impl RecordSink for NullSink {
    fn accept(&mut self, _: &[FlowRecord]) -> Result<(), String> {
        Ok(())
    }
}

/// The decoder's configuration from `--fields FILE` and `--sampling-rate PREFIX=RATE`
/// (shared with `collect`).
pub fn decoder_config(
    fields: Option<&Path>,
    sampling_rate: &[String],
) -> Result<flowdrill_wire::DecoderConfig, CliError> {
    let mut cfg = flowdrill_wire::DecoderConfig::default();
    if let Some(f) = fields {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        cfg.custom = flowdrill_ingest::registry::parse_registry(&text)
            .with_context(|| format!("in {}", f.display()))
            .map_err(CliError::usage)?;
    }
    for s in sampling_rate {
        let (p, r) = s.split_once('=').ok_or_else(|| {
            CliError::usage(anyhow!(
                "--sampling-rate {s}: expected PREFIX=RATE, e.g. 192.0.2.1=1000"
            ))
        })?;
        let prefix: Prefix = p
            .parse()
            .map_err(|e| CliError::usage(anyhow!("--sampling-rate {s}: {e}")))?;
        let rate: u32 = r.parse().ok().filter(|&r| r >= 1).ok_or_else(|| {
            CliError::usage(anyhow!(
                "--sampling-rate {s}: the rate must be a whole number ≥ 1"
            ))
        })?;
        cfg.sampling_overrides.push((prefix, rate));
    }
    Ok(cfg)
}

fn config(a: &ImportArgs) -> Result<ImportConfig, CliError> {
    let mut cfg = ImportConfig {
        decoder: decoder_config(a.fields.as_deref(), &a.sampling_rate)?,
        ..ImportConfig::default()
    };
    cfg.force_pcap_as = a.as_kind.map(|k| match k {
        PcapKind::Export => InputKind::ExportCapture,
        PcapKind::Packets => InputKind::PacketCapture,
    });
    cfg.meter.active_timeout_ms =
        units::parse_duration_ms(&a.active_timeout).map_err(CliError::usage)?;
    cfg.meter.idle_timeout_ms =
        units::parse_duration_ms(&a.idle_timeout).map_err(CliError::usage)?;
    if let Some(m) = &a.anonymize_mask {
        let mut it = m.split(',');
        let parse = |v: Option<&str>, max: u8, default: u8| -> Result<u8, CliError> {
            match v {
                None => Ok(default),
                Some(t) => t
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|&b| b <= max)
                    .ok_or_else(|| {
                        CliError::usage(anyhow!(
                            "--anonymize-mask {m}: bit counts are 0..=32 for IPv4, 0..=128 for IPv6"
                        ))
                    }),
            }
        };
        let v4 = parse(it.next(), 32, 32)?;
        let v6 = parse(it.next(), 128, 64)?;
        cfg.anonymize = Some(Anonymizer::Mask { v4, v6 });
    }
    if let Some(k) = &a.anonymize_key {
        let key = std::fs::read_to_string(k)
            .with_context(|| format!("reading key file {}", k.display()))?;
        let key = key.trim();
        if key.len() < 8 {
            return Err(CliError::usage(anyhow!(
                "the key in {} is shorter than 8 characters; use a long random passphrase",
                k.display()
            )));
        }
        cfg.anonymize = Some(Anonymizer::PrefixPreserving(PrefixPreserving::new(key)));
    }
    Ok(cfg)
}

/// Files named on the command line, directories expanded recursively in sorted order.
fn expand(files: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for f in files {
        let md = std::fs::metadata(f).with_context(|| format!("{}", f.display()))?;
        if md.is_dir() {
            let mut stack = vec![f.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&d)
                    .with_context(|| format!("{}", d.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                for e in entries.into_iter().rev() {
                    if e.is_dir() {
                        stack.push(e);
                    } else {
                        out.push(e);
                    }
                }
            }
        } else {
            out.push(f.clone());
        }
    }
    Ok(out)
}

/// The outcome of an import, for printing.
pub struct ImportReport {
    pub files: Vec<(PathBuf, ImportSummary)>,
    pub total: ImportSummary,
    pub store: Option<WriteSummary>,
    pub elapsed: Duration,
}

/// Imports `files` into `sink` (or only counts with `dry_run`).
pub fn import_files(
    files: &[PathBuf],
    cfg: ImportConfig,
    sink: Option<&mut StoreSink>,
    quiet: bool,
) -> Result<ImportReport, CliError> {
    let started = Instant::now();
    let total_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut imp = Importer::new(cfg);
    let progress = imp.progress();
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    let mut null = NullSink;
    let sink: &mut dyn RecordSink = match sink {
        Some(s) => s,
        None => &mut null,
    };
    let mut report = ImportReport {
        files: Vec::new(),
        total: ImportSummary::default(),
        store: None,
        elapsed: Duration::ZERO,
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<(), CliError> {
        if let Some(b) = &bar {
            let (b, progress, done) = (b.clone(), progress.clone(), &done);
            scope.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    b.set_position(progress.bytes_read());
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let result = (|| {
            for f in files {
                if let Some(b) = &bar {
                    b.set_message(
                        f.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    );
                }
                let s = imp
                    .import_file(f, sink)
                    .map_err(|e| CliError::from(anyhow!(e)))?;
                report.total.merge(&s);
                report.files.push((f.clone(), s));
            }
            let end = imp.finish(sink).map_err(|e| CliError::from(anyhow!(e)))?;
            report.total.merge(&end);
            Ok(())
        })();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

pub fn run(g: &Global, a: &ImportArgs) -> CliResult {
    let cfg = config(a)?;
    let files = expand(&a.files)?;
    let mut store_sink = None;
    if !a.dry_run {
        let dir = super::store_dir(g, "flowdrill-store");
        let mut store = open_store(&dir, a.links.as_deref())?;
        let opts = WriterOptions {
            custom: cfg.decoder.custom.clone(),
            ..WriterOptions::default()
        };
        store_sink = Some(StoreSink::with_options(&mut store, opts)?);
    }
    let mut report = import_files(&files, cfg, store_sink.as_mut(), g.quiet)?;
    if let Some(s) = store_sink.as_mut() {
        report.store = Some(s.finish()?);
    }
    print_report(&report, g.format, g.quiet)?;
    Ok(())
}

/// Prints the per-file table and the totals, drops and store summary.
pub fn print_report(r: &ImportReport, format: Format, quiet: bool) -> CliResult {
    let mut t = Table::new(&[
        "file",
        "kind",
        "records",
        "packets",
        "bytes",
        "datagrams",
        "drops",
    ]);
    let drops = |s: &ImportSummary| s.drops.values().sum::<u64>();
    for (f, s) in &r.files {
        t.push(vec![
            Cell::Str(f.display().to_string()),
            s.kind.map_or(Cell::Null, |k| k.name().into()),
            s.records.into(),
            s.packets.into(),
            s.bytes.into(),
            s.datagrams.into(),
            drops(s).into(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    if format != Format::Table {
        // Machine output: one row per file plus a "TOTAL" row; drops as "reason=count;...".
        let mut t = t;
        t.columns.push("drop_reasons".into());
        for (row, (_, s)) in t.rows.iter_mut().zip(&r.files) {
            row.push(Cell::Str(
                s.drops
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ));
        }
        let s = &r.total;
        t.push(vec![
            "TOTAL".into(),
            Cell::Null,
            s.records.into(),
            s.packets.into(),
            s.bytes.into(),
            s.datagrams.into(),
            drops(s).into(),
            Cell::Str(
                s.drops
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
        ]);
        t.write(format, &mut out)?;
        return Ok(());
    }
    if !quiet || r.files.len() > 1 {
        t.write(format, &mut out)?;
    }
    use std::io::Write;
    let s = &r.total;
    writeln!(
        out,
        "\nimported {} file(s), {}B in {:.2}s: {} records, {} packets, {}B",
        r.files.len(),
        units::si(s.input_bytes as f64),
        r.elapsed.as_secs_f64(),
        s.records,
        s.packets,
        units::si(s.bytes as f64)
    )?;
    if let (Some(a), Some(b)) = (s.first_ms, s.last_ms) {
        writeln!(
            out,
            "time span: {} .. {} UTC",
            flowdrill_model::time::format_ms(a),
            flowdrill_model::time::format_ms(b)
        )?;
    }
    if !s.exporters.is_empty() || s.templates > 0 {
        let ex: Vec<String> = s.exporters.iter().take(8).map(|a| a.to_string()).collect();
        writeln!(
            out,
            "exporters: {} ({}{}); templates learnt: {}",
            s.exporters.len(),
            ex.join(", "),
            if s.exporters.len() > 8 { ", ..." } else { "" },
            s.templates
        )?;
    }
    if s.drops.is_empty() {
        writeln!(out, "dropped: nothing")?;
    } else {
        writeln!(out, "dropped:")?;
        for (k, v) in &s.drops {
            writeln!(out, "  {v:>10}  {k}")?;
        }
    }
    for (f, fs) in &r.files {
        if let Some(e) = &fs.stopped_early {
            writeln!(out, "warning: {} was read only in part: {e}", f.display())?;
        }
    }
    if let Some(w) = &r.store {
        // A bin written again (late records merged into it) appears once per write; its last
        // write holds the bin's final counts.
        let mut last = std::collections::BTreeMap::new();
        for b in &w.bins {
            last.insert((b.link.as_str(), b.level, b.start), b);
        }
        let finals: Vec<_> = last.into_values().collect();
        let level0: Vec<_> = finals.iter().filter(|b| b.level == 0).collect();
        let written: u64 = level0.iter().map(|b| b.records_after).sum();
        let before: u64 = level0.iter().map(|b| b.records_before).sum();
        let sampled = level0.iter().filter(|b| b.z_max > 0).count();
        let file_bytes: u64 = finals.iter().map(|b| b.file_bytes).sum();
        let coarse = finals.len() - level0.len();
        writeln!(
            out,
            "store: {} bins ({} sampled to their budget), {} of {} bin records kept \
             (flows spanning bins are split); {} coarser-level bins; {}B on disk",
            level0.len(),
            sampled,
            written,
            before,
            coarse,
            units::si(file_bytes as f64)
        )?;
        if w.late > 0 {
            let merges = w.bins.iter().filter(|b| b.merged).count();
            writeln!(
                out,
                "late records: {} (parts of flows for bins already written; {} merges into \
                 their files)",
                w.late, merges
            )?;
        }
        for (k, v) in &w.dropped {
            writeln!(out, "  {v:>10}  dropped by link rule '{k}'")?;
        }
    }
    Ok(())
}
