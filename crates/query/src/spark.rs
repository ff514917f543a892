//! The Spark engine: the heavy part of an analysis pushed down to Apache Spark, over the same
//! bin files (`docs/scale-out.md`).
//!
//! ```text
//!  Engine::load ── prepare (links, level, bins, pruning: as embedded) ──┐
//!                                                                      │ JSON request (stdin)
//!                      flowdrill_spark.py (pyspark, one session) <─────┘
//!                        read bins, WHERE Expr::to_sql, time range on straddling bins,
//!                        GROUP BY bin, leaf keys: count, max z, Σ weight and variance × 3
//!                                                                      │ Parquet file of groups
//!  Loaded::aggregated <── one row per (bin, leaf key) ─────────────────┘
//!        └── run.rs: the same top-N, HHH, cross products, categories as embedded
//! ```
//!
//! The driver script is embedded in the binary and written to a temporary file when a
//! [`SparkDriver`] starts, so an installed `flowdrill` needs only `python3` with `pyspark` (and
//! Java for a local master). One driver process, hence one Spark session, serves every query of
//! an [`Engine`](crate::Engine): the console and the daemon pay Spark's start-up once.
//!
//! The groups carry, per metric, the sums of the per-record weights and variance terms that
//! [`crate::WeightColumns::get`] computes, with the same floating-point operations per record;
//! summing them by group instead of by key changes only the order of additions.

use crate::{AggRow, Loaded, Selection};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use flowdrill_model::{Addr, Field, Kind};
use flowdrill_store::{Batch, BinRef, OwnedColumn};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

/// The driver script (written to a temporary file at start).
pub const DRIVER: &str = include_str!("../spark/flowdrill_spark.py");

/// Where and how to run Spark.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SparkConfig {
    /// A Spark master URL (`local[2]`, `spark://host:7077`, `yarn`) or a Spark Connect
    /// address (`sc://host:15002`).
    pub master: String,
    /// The store's root as the cluster sees it (`s3a://bucket/store`, `hdfs:///flows`);
    /// `None`: the local path (local mode, or a path every node mounts).
    pub store_url: Option<String>,
    /// The Python interpreter with pyspark (default `python3`, or `$FLOWDRILL_PYTHON`).
    pub python: Option<PathBuf>,
}

impl SparkConfig {
    /// A configuration for `master`, everything else by default.
    pub fn new(master: impl Into<String>) -> SparkConfig {
        SparkConfig {
            master: master.into(),
            store_url: None,
            python: None,
        }
    }
}

/// Why the Spark engine failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SparkError {
    /// Python, pyspark or Java is missing, or the session did not start.
    #[error(
        "cannot start Spark ({master}): {reason}; install pyspark (`python3 -m pip install pyspark`) and Java 17, or use --engine embedded"
    )]
    Start { master: String, reason: String },
    /// Spark failed on a query.
    #[error("Spark failed: {0}")]
    Query(String),
    /// The filter has no SQL form.
    #[error(transparent)]
    Sql(#[from] flowdrill_filter::SqlError),
    /// The driver's answer could not be read (a broken invariant).
    #[error("internal error: Spark's answer is unreadable ({0}); please report this bug")]
    Answer(String),
}

/// A running driver: a Python process holding one Spark session.
#[derive(Debug)]
pub struct SparkDriver {
    config: SparkConfig,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    script: PathBuf,
    /// Spark's version, as the driver reported it.
    pub version: String,
    seq: u64,
}

/// What one pushed-down query returned.
#[derive(Debug)]
pub struct SparkAnswer {
    /// The aggregated rows as a Parquet file (removed after reading).
    pub path: PathBuf,
    /// Rows (groups) returned.
    pub rows: u64,
    /// Size of the returned Parquet file: what crosses the network from the cluster.
    pub bytes: u64,
}

impl SparkDriver {
    /// Starts the driver and waits until its Spark session is up.
    pub fn start(config: &SparkConfig) -> Result<SparkDriver, SparkError> {
        let start_err = |reason: String| SparkError::Start {
            master: config.master.clone(),
            reason,
        };
        let script = std::env::temp_dir().join(format!(
            "flowdrill-spark-{}-{:x}.py",
            std::process::id(),
            crate::fnv(DRIVER.as_bytes())
        ));
        std::fs::write(&script, DRIVER)
            .map_err(|e| start_err(format!("cannot write {}: {e}", script.display())))?;
        let python = config
            .python
            .clone()
            .or_else(|| std::env::var_os("FLOWDRILL_PYTHON").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3"));
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(&config.master)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("FLOWDRILL_SPARK_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .map_err(|e| start_err(format!("cannot run {}: {e}", python.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(start_err("no pipes to the driver".into()));
        };
        let mut d = SparkDriver {
            config: config.clone(),
            child,
            stdin,
            stdout: BufReader::new(stdout),
            script,
            version: String::new(),
            seq: 0,
        };
        let hello = d.answer().map_err(|e| match e {
            SparkError::Query(r) | SparkError::Answer(r) => start_err(r),
            e => e,
        })?;
        d.version = hello["version"].as_str().unwrap_or("").to_string();
        Ok(d)
    }

    pub fn config(&self) -> &SparkConfig {
        &self.config
    }

    /// The next JSON answer line (other output on stdout is skipped).
    fn answer(&mut self) -> Result<serde_json::Value, SparkError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| SparkError::Answer(e.to_string()))?;
            if n == 0 {
                return Err(SparkError::Query(
                    "the driver exited (python3 without pyspark, or no Java?); set FLOWDRILL_SPARK_LOG=1 to see its messages".into(),
                ));
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                continue;
            };
            if !v.is_object() || v.get("ok").is_none() {
                continue;
            }
            if v["ok"] == true {
                return Ok(v);
            }
            return Err(SparkError::Query(
                v["error"].as_str().unwrap_or("unknown error").to_string(),
            ));
        }
    }

    /// Runs one request; the groups are in the answer's file.
    fn query(&mut self, mut req: serde_json::Value) -> Result<SparkAnswer, SparkError> {
        self.seq += 1;
        let path = std::env::temp_dir().join(format!(
            "flowdrill-spark-{}-{}.parquet",
            std::process::id(),
            self.seq
        ));
        req["output"] = path.to_string_lossy().into_owned().into();
        let line = serde_json::to_string(&req).map_err(|e| SparkError::Answer(e.to_string()))?;
        writeln!(self.stdin, "{line}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| SparkError::Query(format!("the driver is gone: {e}")))?;
        let a = self.answer()?;
        Ok(SparkAnswer {
            path,
            rows: a["rows"].as_u64().unwrap_or(0),
            bytes: a["bytes"].as_u64().unwrap_or(0),
        })
    }
}

impl Drop for SparkDriver {
    fn drop(&mut self) {
        // Closing stdin ends the driver's loop; it stops its session and exits.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}

/// How a grouped field comes back: the columns named in the request.
fn group_columns(f: Field) -> Vec<(String, &'static str)> {
    match f.info().kind {
        Kind::Address => vec![
            (format!("{}_v4", f.name()), "long"),
            (format!("{}_v6", f.name()), "binary"),
        ],
        Kind::TimeMs => vec![(f.name().to_string(), "millis")],
        Kind::Unsigned(_) => vec![(f.name().to_string(), "long")],
    }
}

/// The re-thresholding of the matching records to the bound on records, as
/// [`crate::Engine::load`] does it: the threshold, and per bin of the request its seed.
#[derive(Clone, Debug)]
pub(crate) struct Rethreshold {
    pub z: u64,
    pub seeds: Vec<u64>,
}

/// The request's common part: the bins, the filter, the time range.
fn request(
    driver: &SparkDriver,
    root: &Path,
    sel: &Selection,
    bins: &[BinRef],
) -> Result<serde_json::Value, SparkError> {
    let base = match &driver.config.store_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => root.to_string_lossy().into_owned(),
    };
    let files: Vec<serde_json::Value> = bins
        .iter()
        .map(|b| {
            let rel = b.path.to_string_lossy().replace('\\', "/");
            serde_json::json!({
                "path": format!("{base}/{rel}"),
                "rel": rel,
                "partial": b.start < sel.range.start || b.end > sel.range.end,
            })
        })
        .collect();
    let filter = sel.filter.as_ref().map(|f| f.to_sql()).transpose()?;
    let range = flowdrill_filter::Expr::and(vec![
        flowdrill_filter::Expr::cmp(
            Field::TimeStart,
            flowdrill_filter::CmpOp::Ge,
            sel.range.start,
        ),
        flowdrill_filter::Expr::cmp(Field::TimeStart, flowdrill_filter::CmpOp::Lt, sel.range.end),
    ])
    .to_sql()?;
    Ok(serde_json::json!({
        "base": base,
        "files": files,
        "filter": filter,
        "range": range,
        "merge_schema": sel.filter.as_ref().is_some_and(|f| !f.custom_names().is_empty()),
    }))
}

/// The matching records' distinct `(bytes, sample_z)` pairs with their counts, over `bins`:
/// what choosing the re-sampling threshold needs
/// ([`flowdrill_store::sampling::choose_threshold_counted`]).
pub(crate) fn histogram(
    driver: &mut SparkDriver,
    root: &Path,
    sel: &Selection,
    bins: &[BinRef],
) -> Result<Vec<(u64, u64, u64)>, SparkError> {
    let mut req = request(driver, root, sel, bins)?;
    req["histogram"] = true.into();
    let answer = driver.query(req)?;
    let read = read_histogram(&answer.path);
    let _ = std::fs::remove_file(&answer.path);
    read
}

fn read_histogram(path: &Path) -> Result<Vec<(u64, u64, u64)>, SparkError> {
    let bad = |what: &str| SparkError::Answer(format!("{}: {what}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(&e.to_string()))?;
    let mut out = Vec::new();
    for rb in reader {
        let rb: RecordBatch = rb.map_err(|e| bad(&e.to_string()))?;
        let col = |name: &str| {
            rb.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
                .ok_or_else(|| bad(&format!("no int64 column {name}")))
        };
        let (x, z, n) = (col("bytes")?, col("sample_z")?, col("_records")?);
        for i in 0..rb.num_rows() {
            let v = |a: &arrow_array::Int64Array| {
                if a.is_valid(i) {
                    a.value(i).max(0) as u64
                } else {
                    0
                }
            };
            out.push((v(&x), v(&z), v(&n)));
        }
    }
    Ok(out)
}

/// The pushed-down part of [`crate::Engine::load`]: `out` and `bins` come from the engine's
/// own planning and pruning; `fields` are the analysis' leaf keys; `rethreshold`, the
/// re-sampling to the bound when the matching records exceed it.
pub(crate) fn load(
    driver: &mut SparkDriver,
    root: &Path,
    sel: &Selection,
    fields: &[Field],
    bins: &[BinRef],
    rethreshold: Option<&Rethreshold>,
    out: &mut Loaded,
) -> Result<SparkAnswer, SparkError> {
    let mut fields = fields.to_vec();
    fields.sort_unstable();
    fields.dedup();
    let mut req = request(driver, root, sel, bins)?;
    let group: Vec<(String, &str)> = fields.iter().flat_map(|f| group_columns(*f)).collect();
    req["group"] = serde_json::json!(group);
    if let Some(r) = rethreshold {
        req["rethreshold"] = serde_json::json!({ "z": r.z });
        if let Some(files) = req["files"].as_array_mut() {
            for (f, seed) in files.iter_mut().zip(&r.seeds) {
                // As a string: JSON numbers beyond 2^53 lose bits in some readers.
                f["seed"] = seed.to_string().into();
            }
        }
    }
    let answer = driver.query(req)?;
    let read = read_groups(&answer.path, &fields, bins, out);
    let _ = std::fs::remove_file(&answer.path);
    read?;
    Ok(answer)
}

/// One bin's groups as they are read.
#[derive(Default)]
struct BinGroups {
    keys: Vec<Vec<u64>>,
    addrs: Vec<Vec<u128>>,
    z: Vec<u64>,
    rows: Vec<AggRow>,
}

/// Reads the returned groups into `out`: per bin, one row per group (the leaf keys loaded,
/// no other column) and its [`AggRow`].
fn read_groups(
    path: &Path,
    fields: &[Field],
    bins: &[BinRef],
    out: &mut Loaded,
) -> Result<(), SparkError> {
    let bad = |what: &str| SparkError::Answer(format!("{}: {what}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(&e.to_string()))?;
    let (addr_fields, num_fields): (Vec<Field>, Vec<Field>) =
        fields.iter().partition(|f| f.info().kind == Kind::Address);
    let mut per_bin: Vec<BinGroups> = (0..bins.len())
        .map(|_| BinGroups {
            keys: vec![Vec::new(); num_fields.len()],
            addrs: vec![Vec::new(); addr_fields.len()],
            ..BinGroups::default()
        })
        .collect();
    for rb in reader {
        let rb: RecordBatch = rb.map_err(|e| bad(&e.to_string()))?;
        let col = |name: &str| {
            rb.column_by_name(name)
                .ok_or_else(|| bad(&format!("no column {name}")))
        };
        let i64s = |name: &str| -> Result<Vec<Option<i64>>, SparkError> {
            let c = col(name)?;
            let a = c
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(&format!("{name} is not int64")))?;
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect())
        };
        let f64s = |name: &str| -> Result<Vec<f64>, SparkError> {
            let c = col(name)?;
            let a = c
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| bad(&format!("{name} is not double")))?;
            Ok((0..a.len()).map(|i| a.value(i)).collect())
        };
        let bin_col = col("_bin")?;
        let bin = bin_col
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| bad("_bin is not int32"))?;
        let n = rb.num_rows();
        let mut nums = Vec::new();
        for &f in &num_fields {
            nums.push(i64s(f.name())?);
        }
        let mut addrs = Vec::new();
        for &f in &addr_fields {
            let v4 = i64s(&format!("{}_v4", f.name()))?;
            let c6 = col(&format!("{}_v6", f.name()))?;
            let bytes = |i: usize| -> Option<&[u8]> {
                if let Some(a) = c6.as_binary_opt::<i32>() {
                    a.is_valid(i).then(|| a.value(i))
                } else if let Some(a) = c6.as_binary_opt::<i64>() {
                    a.is_valid(i).then(|| a.value(i))
                } else {
                    c6.as_fixed_size_binary_opt()
                        .and_then(|a| a.is_valid(i).then(|| a.value(i)))
                }
            };
            let mut v = Vec::with_capacity(n);
            for (i, x4) in v4.iter().enumerate() {
                let a = match (x4, bytes(i).and_then(|b| <[u8; 16]>::try_from(b).ok())) {
                    (Some(x), _) => Addr::from_v4_u32(*x as u32).0,
                    (None, Some(b)) => u128::from_be_bytes(b),
                    (None, None) => return Err(bad("an address is null in both families")),
                };
                v.push(a);
            }
            addrs.push(v);
        }
        let count = i64s("_records")?;
        let zmax = i64s("_z_max")?;
        let sums = [
            f64s("w_flows")?,
            f64s("v_flows")?,
            f64s("w_packets")?,
            f64s("v_packets")?,
            f64s("w_bytes")?,
            f64s("v_bytes")?,
        ];
        for i in 0..n {
            let b = bin.value(i);
            let g = per_bin
                .get_mut(b as usize)
                .ok_or_else(|| bad(&format!("bin {b} out of range")))?;
            for (k, v) in g.keys.iter_mut().zip(&nums) {
                k.push(v[i].unwrap_or(0) as u64);
            }
            for (k, v) in g.addrs.iter_mut().zip(&addrs) {
                k.push(v[i]);
            }
            g.z.push(zmax[i].unwrap_or(0).max(0) as u64);
            g.rows.push(AggRow {
                records: count[i].unwrap_or(0).max(0) as u64,
                sums: [
                    (sums[0][i], sums[1][i]),
                    (sums[2][i], sums[3][i]),
                    (sums[4][i], sums[5][i]),
                ],
            });
        }
    }
    let mut agg = Vec::new();
    for (bin, g) in bins.iter().zip(per_bin) {
        if g.rows.is_empty() {
            continue;
        }
        let mut columns = Vec::new();
        for (&f, v) in num_fields.iter().zip(g.keys) {
            columns.push((f, owned(f, v)));
        }
        for (&f, v) in addr_fields.iter().zip(g.addrs) {
            columns.push((f, OwnedColumn::Addr(v)));
        }
        out.records_matched += g.rows.iter().map(|r| r.records).sum::<u64>();
        out.z_max = out.z_max.max(g.z.iter().copied().max().unwrap_or(0));
        let batch = Batch::from_columns(columns, g.z).map_err(|e| bad(&e.to_string()))?;
        out.batches.push((bin.clone(), Arc::new(batch)));
        agg.push(g.rows);
    }
    out.aggregated = Some(agg);
    Ok(())
}

/// An integer key column in its field's width.
fn owned(f: Field, v: Vec<u64>) -> OwnedColumn {
    match f.info().kind {
        Kind::Unsigned(8) => OwnedColumn::U8(v.into_iter().map(|x| x as u8).collect()),
        Kind::Unsigned(16) => OwnedColumn::U16(v.into_iter().map(|x| x as u16).collect()),
        Kind::Unsigned(32) => OwnedColumn::U32(v.into_iter().map(|x| x as u32).collect()),
        _ => OwnedColumn::U64(v),
    }
}
