//! `flowdrill export`: the records of a selection to CSV, JSON, NDJSON or Parquet, streamed
//! bin by bin (memory holds a few bins, never the whole export).
//!
//! Columns, in this order: `link`; the schema fields (every one, or the `--fields` chosen, in
//! the order given); the user-defined elements the store's files carry (or the chosen ones);
//! `sample_z`, the threshold the record was kept at (0 = not sampled); and what the record
//! stands for, `weight_bytes`, `weight_packets`, `weight_flows` (the store's estimators, so
//! that sums of a column are unbiased totals; on unsampled data a record's own bytes and
//! packets, and 1 flow for the piece holding a flow's start). The three weight columns and
//! `sample_z` are always written, so a script reads every export the same way.
//!
//! CSV and JSON write addresses as text and times as ISO 8601 UTC
//! (`2024-01-01T00:05:00.000Z`). Parquet keeps the store's column layout (`NAME_v4` UINT32
//! and `NAME_v6` 16 bytes for addresses, TIMESTAMP(MILLIS, UTC) for times;
//! [`flowdrill_store::format::ExportWriter`]), so the queries that read the store read an
//! export unchanged.

use super::analyze;
use crate::args::{ExportArgs, ExportFormat, Global};
use crate::{CliError, CliResult};
use anyhow::{Context, anyhow};
use flowdrill_model::{Addr, ColumnRef, ColumnSource, CustomFields, FIELDS, Field, Kind};
use flowdrill_query::{Bound, Metric, QueryError};
use flowdrill_store::format::ExportWriter;
use flowdrill_store::{Batch, ExtraColumn};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The columns every export ends with.
const WEIGHTS: [&str; 3] = ["weight_bytes", "weight_packets", "weight_flows"];

/// Why a streamed export stopped: the selection (exit code as the analyses map it) or the
/// output.
enum Stop {
    Query(QueryError),
    Output(anyhow::Error),
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Stop {
        Stop::Query(e)
    }
}

pub fn run(g: &Global, a: &ExportArgs) -> CliResult {
    let format = export_format(a)?;
    // No cache: the export reads each bin once.
    let engine = analyze::open_engine(g, 0)?;
    let r = analyze::resolve(&engine, &a.sel)?;
    // An export is every stored record unless the user bounds it.
    let bound = if a.sel.max_records.is_none() && a.sel.max_error.is_none() {
        Bound::Exact
    } else {
        r.bound
    };
    let cols = Columns::choose(&a.fields, &engine.custom_fields())?;
    let started = Instant::now();
    let (writer, out) = Output::open(&a.output)?;
    let mut sink: Box<dyn Sink> = match format {
        ExportFormat::Parquet => Box::new(ParquetSink::new(writer, &out.shown, &cols)?),
        text => Box::new(TextSink::new(writer, text, &cols)?),
    };
    let mut written = 0u64;
    let result = engine.for_each_batch(
        &r.sel,
        &cols.fields,
        &cols.extra_names(),
        bound,
        |bin, b| {
            written += b.len() as u64;
            sink.batch(&bin.link, b).map_err(Stop::Output)
        },
    );
    let loaded = match result {
        Ok(l) => l,
        Err(stop) => {
            out.abandon();
            return Err(match stop {
                Stop::Query(q) => analyze::query_err(q),
                Stop::Output(e) => CliError::from(e),
            });
        }
    };
    if let Err(e) = sink.finish() {
        out.abandon();
        return Err(e.into());
    }
    out.commit()?;
    for s in &loaded.skipped {
        eprintln!(
            "flowdrill: warning: skipped {}: {}",
            s.path.display(),
            s.reason
        );
    }
    if !g.quiet {
        let secs = started.elapsed().as_secs_f64();
        let mut how = if loaded.exact {
            format!("exact, level {}", loaded.level)
        } else {
            format!(
                "sampled at z <= {}, level {}: the weight_* columns are estimates",
                loaded.z_max, loaded.level
            )
        };
        if let Some(z) = loaded.rethreshold_z {
            how.push_str(&format!(
                ", re-sampled at z {z} from {} matching",
                loaded.records_matched
            ));
        }
        eprintln!(
            "exported {written} records ({how}) to {} in {secs:.2}s ({:.0} records/s)",
            out.shown.display(),
            written as f64 / secs.max(1e-9),
        );
    }
    Ok(())
}

/// `--as`, else the output file's extension.
fn export_format(a: &ExportArgs) -> Result<ExportFormat, CliError> {
    if let Some(f) = a.as_format {
        return Ok(f);
    }
    let ext = a
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(ExportFormat::Csv),
        Some("json") => Ok(ExportFormat::Json),
        Some("ndjson" | "jsonl") => Ok(ExportFormat::Ndjson),
        Some("parquet" | "pq") => Ok(ExportFormat::Parquet),
        _ => Err(CliError::usage(anyhow!(
            "say which format to write to {} with --as csv, json, ndjson or parquet",
            a.output.display()
        ))),
    }
}

/// The schema fields and user-defined elements an export writes.
#[derive(Debug)]
struct Columns {
    fields: Vec<Field>,
    custom: CustomFields,
}

impl Columns {
    /// Every field and element, or those `names` chooses (schema fields first). The columns
    /// every export has (`link`, `sample_z`, weights) may be named; they are there anyway.
    fn choose(names: &[String], custom: &CustomFields) -> Result<Columns, CliError> {
        if names.is_empty() {
            return Ok(Columns {
                fields: FIELDS.iter().map(|i| i.field).collect(),
                custom: custom.clone(),
            });
        }
        let mut out = Columns {
            fields: Vec::new(),
            custom: CustomFields::default(),
        };
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if let Some(f) = Field::from_name(n) {
                if !out.fields.contains(&f) {
                    out.fields.push(f);
                }
            } else if let Some(i) = custom.by_name(n) {
                let def = &custom.fields[i as usize];
                if !out.custom.fields.contains(def) {
                    out.custom.fields.push(def.clone());
                }
            } else if !(n == "link"
                || n == flowdrill_store::format::Z_COLUMN
                || WEIGHTS.contains(&n))
            {
                let mut known: Vec<&str> = FIELDS.iter().map(|i| i.name).collect();
                known.extend(custom.fields.iter().map(|c| c.name.as_str()));
                return Err(CliError::usage(anyhow!(
                    "--fields: no field '{n}'; the store has: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(out)
    }

    fn extra_names(&self) -> Vec<String> {
        self.custom.fields.iter().map(|c| c.name.clone()).collect()
    }

    /// The column names of a text export, in order.
    fn names(&self) -> Vec<String> {
        let mut v = vec!["link".to_string()];
        v.extend(self.fields.iter().map(|f| f.name().to_string()));
        v.extend(self.custom.fields.iter().map(|c| c.name.clone()));
        v.push(flowdrill_store::format::Z_COLUMN.to_string());
        v.extend(WEIGHTS.iter().map(|w| w.to_string()));
        v
    }
}

/// What each record of a batch stands for, per metric.
fn record_weights(b: &Batch) -> [Vec<f64>; 3] {
    [Metric::Bytes, Metric::Packets, Metric::Flows].map(|m| flowdrill_query::weights(b, m).0)
}

/// Where an export goes: standard output, or a temporary file renamed over the target when
/// complete (an export that fails leaves no partial file).
struct Output {
    /// The name to show.
    shown: PathBuf,
    /// (temporary, final) paths of a file output.
    file: Option<(PathBuf, PathBuf)>,
}

impl Output {
    fn open(path: &Path) -> Result<(Box<dyn Write + Send>, Output), CliError> {
        if path.as_os_str() == "-" {
            let out = Output {
                shown: PathBuf::from("standard output"),
                file: None,
            };
            return Ok((
                Box::new(io::BufWriter::with_capacity(1 << 20, io::stdout())),
                out,
            ));
        }
        let name = path
            .file_name()
            .ok_or_else(|| CliError::usage(anyhow!("--output {}: not a file", path.display())))?;
        let tmp = path.with_file_name(format!(
            ".tmp.{}.{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", path.display()))?;
        let out = Output {
            shown: path.to_path_buf(),
            file: Some((tmp, path.to_path_buf())),
        };
        Ok((Box::new(io::BufWriter::with_capacity(1 << 20, f)), out))
    }

    fn commit(&self) -> Result<(), CliError> {
        if let Some((tmp, path)) = &self.file {
            std::fs::rename(tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        }
        Ok(())
    }

    fn abandon(&self) {
        if let Some((tmp, _)) = &self.file {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// One output format.
trait Sink {
    /// Writes the records of `b`, all of `link`.
    fn batch(&mut self, link: &str, b: &Batch) -> anyhow::Result<()>;
    /// Completes the output and flushes it.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Parquet through the store's export writer.
struct ParquetSink {
    w: Option<ExportWriter<Box<dyn Write + Send>>>,
}

impl ParquetSink {
    fn new(w: Box<dyn Write + Send>, shown: &Path, cols: &Columns) -> anyhow::Result<ParquetSink> {
        let w = ExportWriter::new(w, shown, &cols.fields, &cols.custom, &WEIGHTS)?;
        Ok(ParquetSink { w: Some(w) })
    }
}

impl Sink for ParquetSink {
    fn batch(&mut self, link: &str, b: &Batch) -> anyhow::Result<()> {
        let [wb, wp, wf] = record_weights(b);
        let w = self
            .w
            .as_mut()
            .ok_or_else(|| anyhow!("export already finished"))?;
        Ok(w.write(link, b, &[&wb, &wp, &wf])?)
    }
    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        if let Some(w) = self.w.take() {
            w.finish()?.flush()?;
        }
        Ok(())
    }
}

/// CSV, JSON (one array) or NDJSON, a line per record.
struct TextSink<W: Write> {
    w: W,
    format: ExportFormat,
    cols: Vec<Col>,
    /// `"name":` of each column, for JSON.
    keys: Vec<Vec<u8>>,
    rows: u64,
    line: Vec<u8>,
}

/// A column of a text export.
#[derive(Clone, Debug)]
enum Col {
    Link,
    Field(Field),
    Custom(String),
    Z,
    Weight(usize),
}

impl<W: Write> TextSink<W> {
    fn new(mut w: W, format: ExportFormat, cols: &Columns) -> io::Result<TextSink<W>> {
        let mut c = vec![Col::Link];
        c.extend(cols.fields.iter().map(|&f| Col::Field(f)));
        c.extend(
            cols.custom
                .fields
                .iter()
                .map(|d| Col::Custom(d.name.clone())),
        );
        c.push(Col::Z);
        c.extend((0..WEIGHTS.len()).map(Col::Weight));
        let names = cols.names();
        let keys = names
            .iter()
            .map(|n| {
                let mut k = serde_json::to_vec(n).expect("a string serialises");
                k.push(b':');
                k
            })
            .collect();
        match format {
            ExportFormat::Csv => {
                let head: Vec<_> = names.iter().map(|n| csv_escape(n)).collect();
                writeln!(w, "{}", head.join(","))?;
            }
            ExportFormat::Json => w.write_all(b"[")?,
            _ => {}
        }
        Ok(TextSink {
            w,
            format,
            cols: c,
            keys,
            rows: 0,
            line: Vec::with_capacity(1024),
        })
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn batch(&mut self, link: &str, b: &Batch) -> anyhow::Result<()> {
        let weights = record_weights(b);
        let json = self.format != ExportFormat::Csv;
        let sources: Vec<Source> = self
            .cols
            .iter()
            .map(|c| match c {
                Col::Link => {
                    let mut v = Vec::new();
                    put_str(&mut v, link, json);
                    Source::Raw(v)
                }
                Col::Field(f) => match b.column(*f) {
                    Some(r) => Source::Field(r, f.info().kind == Kind::TimeMs),
                    None => Source::Null,
                },
                Col::Custom(n) => b.extra(n).map_or(Source::Null, Source::Custom),
                Col::Z => Source::Field(ColumnRef::U64(b.sample_z()), false),
                Col::Weight(k) => Source::Weight(&weights[*k]),
            })
            .collect();
        for i in 0..b.len() {
            let line = &mut self.line;
            line.clear();
            if self.format == ExportFormat::Json {
                line.extend_from_slice(if self.rows == 0 { b"\n" } else { b",\n" });
            }
            if json {
                line.push(b'{');
            }
            for (k, s) in sources.iter().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                if json {
                    line.extend_from_slice(&self.keys[k]);
                }
                s.put(line, i, json)?;
            }
            if json {
                line.push(b'}');
            }
            if self.format != ExportFormat::Json {
                line.push(b'\n');
            }
            self.w.write_all(line)?;
            self.rows += 1;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        if self.format == ExportFormat::Json {
            self.w.write_all(b"\n]\n")?;
        }
        self.w.flush()?;
        Ok(())
    }
}

/// Where a text column's values come from, in one batch.
enum Source<'a> {
    /// Text already rendered for the format (the link).
    Raw(Vec<u8>),
    /// A schema column; `true` for times.
    Field(ColumnRef<'a>, bool),
    Custom(&'a ExtraColumn),
    Weight(&'a [f64]),
    Null,
}

impl Source<'_> {
    /// Appends record `i`'s value: JSON (strings quoted, `null`) or CSV (quoted only when
    /// needed, empty for null).
    fn put(&self, out: &mut Vec<u8>, i: usize, json: bool) -> io::Result<()> {
        let null = |out: &mut Vec<u8>| {
            if json {
                out.extend_from_slice(b"null");
            }
        };
        match self {
            Source::Raw(v) => out.extend_from_slice(v),
            Source::Field(ColumnRef::Addr(v), _) => {
                put_plain(out, json, |o| put_addr(o, Addr(v[i])))?
            }
            Source::Field(c, time) => match c.u64_at(i) {
                Some(t) if *time => put_plain(out, json, |o| put_iso_ms(o, t))?,
                Some(v) => put_u64(out, v),
                None => null(out),
            },
            Source::Custom(c) => match c {
                ExtraColumn::Unsigned(v) => match v[i] {
                    Some(x) => put_u64(out, x),
                    None => null(out),
                },
                ExtraColumn::Signed(v) => match v[i] {
                    Some(x) => write!(out, "{x}")?,
                    None => null(out),
                },
                ExtraColumn::Float(v) => match v[i] {
                    Some(x) if x.is_finite() => write!(out, "{x}")?,
                    _ => null(out),
                },
                ExtraColumn::String(v) => match &v[i] {
                    Some(s) => put_str(out, s, json),
                    None => null(out),
                },
                ExtraColumn::Bytes(v) => match &v[i] {
                    Some(b) => put_plain(out, json, |o| {
                        b.iter().try_for_each(|x| write!(o, "{x:02x}"))
                    })?,
                    None => null(out),
                },
                ExtraColumn::Address(v) => match v[i] {
                    Some(a) => put_plain(out, json, |o| put_addr(o, a))?,
                    None => null(out),
                },
            },
            Source::Weight(w) => put_f64(out, w[i])?,
            Source::Null => null(out),
        }
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, json: bool) {
    if json {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    } else {
        out.extend_from_slice(csv_escape(s).as_bytes());
    }
}

/// Whole numbers without a fraction (`1500`), others as the shortest text that reads back.
fn put_f64(out: &mut Vec<u8>, v: f64) -> io::Result<()> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        // As an integer: `{:.0}` takes the slow exact path of float formatting.
        if v < 0.0 {
            out.push(b'-');
        }
        put_u64(out, v.abs() as u64);
        Ok(())
    } else {
        write!(out, "{v}")
    }
}

fn csv_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A decimal integer, without the formatting machinery (most of an export's cells).
fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Text that needs no CSV quoting (addresses, times, hex): quoted in JSON only.
fn put_plain(
    out: &mut Vec<u8>,
    json: bool,
    text: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    if json {
        out.push(b'"');
    }
    text(out)?;
    if json {
        out.push(b'"');
    }
    Ok(())
}

/// An address as text; IPv4 (most of them) without the formatting machinery.
fn put_addr(out: &mut Vec<u8>, a: Addr) -> io::Result<()> {
    match a.v4() {
        Some(v) => {
            for (k, o) in v.to_be_bytes().into_iter().enumerate() {
                if k > 0 {
                    out.push(b'.');
                }
                put_u64(out, o as u64);
            }
            Ok(())
        }
        None => write!(out, "{a}"),
    }
}

/// Unix ms as ISO 8601 UTC with milliseconds: `2024-01-01T00:05:00.000Z`.
fn put_iso_ms(out: &mut Vec<u8>, ms: u64) -> io::Result<()> {
    let secs = ms / 1000;
    let (y, mo, d) = flowdrill_model::time::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let digits = |out: &mut Vec<u8>, v: u64, width: u32| {
        for k in (0..width).rev() {
            out.push(b'0' + (v / 10u64.pow(k) % 10) as u8);
        }
    };
    digits(out, y.clamp(0, 9999) as u64, 4);
    for (sep, v, width) in [
        (b'-', mo as u64, 2),
        (b'-', d as u64, 2),
        (b'T', s / 3600, 2),
        (b':', s / 60 % 60, 2),
        (b':', s % 60, 2),
        (b'.', ms % 1000, 3),
    ] {
        out.push(sep);
        digits(out, v, width);
    }
    out.push(b'Z');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::{CustomField, CustomKind, CustomValue, FlowRecord};

    /// Two records with user-defined elements (one without), the second sampled.
    fn batch_with_extras() -> (Batch, CustomFields) {
        let def = |id, name: &str, kind| CustomField {
            enterprise: 6871,
            id,
            name: name.into(),
            kind,
        };
        let custom = CustomFields {
            fields: vec![
                def(1, "app", CustomKind::String),
                def(2, "rtt_us", CustomKind::Unsigned),
                def(3, "peer", CustomKind::Address),
            ],
        };
        let recs = vec![
            FlowRecord {
                time_start: 1_704_067_200_000,
                time_end: 1_704_067_201_500,
                src_addr: "192.0.2.1".parse().unwrap(),
                dst_addr: "2001:db8::1".parse().unwrap(),
                proto: 6,
                bytes: 1500,
                packets: 3,
                extra: vec![
                    (0, CustomValue::String("dns, \"quoted\"".into())),
                    (1, CustomValue::Unsigned(420)),
                    (2, CustomValue::Address("10.0.0.9".parse().unwrap())),
                ],
                ..Default::default()
            },
            FlowRecord {
                time_start: 1_704_067_260_000,
                src_addr: "198.51.100.7".parse().unwrap(),
                bytes: 250,
                packets: 5,
                ..Default::default()
            },
        ];
        (Batch::from_records(&recs, vec![0, 1000], &custom), custom)
    }

    fn render(format: ExportFormat, cols: &Columns, b: &Batch) -> String {
        let mut out = Vec::new();
        let mut s: Box<dyn Sink> = Box::new(TextSink::new(&mut out, format, cols).unwrap());
        s.batch("campus", b).unwrap();
        s.batch("campus", b).unwrap();
        s.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn user_defined_elements_and_weights_reach_every_text_format() {
        let (b, custom) = batch_with_extras();
        let cols = Columns::choose(&[], &custom).unwrap();
        let csv = render(ExportFormat::Csv, &cols, &b);
        let mut lines = csv.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("link,time_start,time_end,src_addr,"),
            "{head}"
        );
        assert!(
            head.ends_with(",app,rtt_us,peer,sample_z,weight_bytes,weight_packets,weight_flows"),
            "{head}"
        );
        let first = lines.next().unwrap();
        assert!(
            first.starts_with(
                "campus,2024-01-01T00:00:00.000Z,2024-01-01T00:00:01.500Z,192.0.2.1,2001:db8::1,"
            ),
            "{first}"
        );
        assert!(
            first.ends_with(",\"dns, \"\"quoted\"\"\",420,10.0.0.9,0,1500,3,1"),
            "{first}"
        );
        // The sampled record stands for max(x, z) bytes and x/z of a flow's packets.
        let second = lines.next().unwrap();
        assert!(second.ends_with(",,,,1000,1000,20,4"), "{second}");
        assert_eq!(csv.lines().count(), 5);

        let json: serde_json::Value =
            serde_json::from_str(&render(ExportFormat::Json, &cols, &b)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["app"], "dns, \"quoted\"");
        assert_eq!(rows[0]["rtt_us"], 420);
        assert_eq!(rows[0]["peer"], "10.0.0.9");
        assert_eq!(rows[0]["dst_addr"], "2001:db8::1");
        assert_eq!(rows[1]["app"], serde_json::Value::Null);
        assert_eq!(rows[1]["weight_packets"], 20);
        assert_eq!(rows[1]["link"], "campus");

        let nd = render(ExportFormat::Ndjson, &cols, &b);
        assert_eq!(nd.lines().count(), 4);
        for l in nd.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["weight_bytes"].is_number());
        }
    }

    #[test]
    fn fields_choose_schema_and_user_defined_columns_by_name() {
        let (b, custom) = batch_with_extras();
        let names: Vec<String> = ["rtt_us", "bytes", "src_addr", "weight_bytes"]
            .map(String::from)
            .to_vec();
        let cols = Columns::choose(&names, &custom).unwrap();
        let csv = render(ExportFormat::Csv, &cols, &b);
        assert_eq!(
            csv.lines().next().unwrap(),
            "link,bytes,src_addr,rtt_us,sample_z,weight_bytes,weight_packets,weight_flows"
        );
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "campus,1500,192.0.2.1,420,0,1500,3,1"
        );
        let bad = Columns::choose(&["nope".to_string()], &custom).unwrap_err();
        assert_eq!(bad.code, 2);
        assert!(bad.error.to_string().contains("rtt_us"), "{}", bad.error);
    }

    #[test]
    fn parquet_exports_carry_user_defined_elements() {
        let (b, custom) = batch_with_extras();
        let cols = Columns::choose(&[], &custom).unwrap();
        let dir =
            std::env::temp_dir().join(format!("flowdrill-export-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.parquet");
        let f: Box<dyn Write + Send> = Box::new(std::fs::File::create(&path).unwrap());
        let mut s: Box<dyn Sink> = Box::new(ParquetSink::new(f, &path, &cols).unwrap());
        s.batch("campus", &b).unwrap();
        s.finish().unwrap();
        let have_pyarrow = std::process::Command::new("python3")
            .args(["-c", "import pyarrow"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_pyarrow {
            eprintln!("SKIPPED: pyarrow missing");
            return;
        }
        let script = "import sys, pyarrow.parquet as pq\n\
            t = pq.read_table(sys.argv[1]).to_pydict()\n\
            print(t['app'], t['rtt_us'], t['peer'][0].hex(), t['src_addr_v4'], t['weight_packets'], t['link'])";
        let o = std::process::Command::new("python3")
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            text.trim(),
            "['dns, \"quoted\"', None] [420, None] 00000000000000000000ffff0a000009 \
             [3221225985, 3325256711] [3.0, 20.0] ['campus', 'campus']"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
