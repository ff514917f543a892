//! `Expr::to_sql` against the evaluators: random predicates (those of `randomized.rs`, raw and
//! simplified) on random records written as a store bin file; the rows DuckDB and Spark select
//! with the SQL must be exactly the rows the column-wise evaluator selects on the same file
//! read back. DuckDB and pyspark come from `scripts/setup-deps`; without them the test says
//! SKIPPED and which one is missing (with `CI` set, a missing DuckDB fails).

use crate::randomized::{batch, expr, record};
use crate::util::{Rng, registry};
use flowdrill_filter::Expr;
use flowdrill_model::{CustomValue, FlowRecord};
use flowdrill_store::BinStats;
use flowdrill_store::format::{FileMeta, encode, read_all};
use std::path::Path;
use std::process::Command;

/// Runs each SQL predicate on the file and prints, per predicate, the matching row numbers
/// (or the error) as one JSON line.
const RUNNER: &str = r#"
import json, sys
engine, path, queries = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
out = []
if engine == "duckdb":
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE VIEW t AS SELECT * FROM read_parquet('%s', file_row_number = true)" % path)
    for q in queries:
        try:
            rows = con.execute("SELECT file_row_number FROM t WHERE %s ORDER BY 1" % q).fetchall()
            out.append([r[0] for r in rows])
        except Exception as e:
            out.append(str(e).splitlines()[0])
else:
    from pyspark.sql import SparkSession, functions as F
    spark = (SparkSession.builder.master("local[1]")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    # One file, one row group, one partition: the id is the row number.
    df = spark.read.parquet(path).coalesce(1).withColumn("_row", F.monotonically_increasing_id())
    df = df.localCheckpoint()
    for q in queries:
        try:
            rows = df.where(q).select("_row").orderBy("_row").collect()
            out.append([r[0] for r in rows])
        except Exception as e:
            out.append(str(e).strip().splitlines()[0])
    spark.stop()
print(json.dumps(out))
"#;

fn have(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Records the store can hold: times and counters in the signed 64-bit range of their
/// columns, finite floats (SQL orders NaN; the evaluators never match it).
fn storable(rng: &mut Rng) -> FlowRecord {
    let mut r = record(rng);
    r.time_start %= 1 << 42;
    r.time_end %= 1 << 42;
    r.bytes %= 1 << 62;
    r.packets %= 1 << 62;
    for (_, v) in &mut r.extra {
        if let CustomValue::Float(x) = v
            && !x.is_finite()
        {
            *x = 0.5;
        }
    }
    r
}

fn run(engine: &str, file: &Path, queries: &[String]) -> Vec<serde_json::Value> {
    let dir = file.parent().unwrap();
    let script = dir.join("runner.py");
    std::fs::write(&script, RUNNER).unwrap();
    let qfile = dir.join(format!("{engine}.json"));
    std::fs::write(&qfile, serde_json::to_string(queries).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(engine)
        .arg(file)
        .arg(&qfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{engine} runner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("[]");
    serde_json::from_str(last).unwrap()
}

#[test]
fn sql_selects_in_duckdb_and_spark_what_the_evaluator_selects() {
    let duck = have("duckdb");
    let spark = have("pyspark");
    if !duck {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 duckdb is missing: run scripts/setup-deps"
        );
        eprintln!("SKIPPED: python3 duckdb is missing (scripts/setup-deps installs it)");
        return;
    }
    let mut rng = Rng(0x5eed_0050_1000_0001);
    let recs: Vec<FlowRecord> = (0..1500).map(|_| storable(&mut rng)).collect();
    let reg = registry();
    let meta = FileMeta {
        link: "default".into(),
        level: 0,
        bin_start: 0,
        bin_end: 1 << 42,
        records_before: recs.len() as u64,
        records_after: recs.len() as u64,
        z_max: 0,
        bytes_variance: 0.0,
        custom: reg.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flows.parquet");
    let bytes = encode(&batch(&recs), &meta, &BinStats::default()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    // What the engine evaluates: the file read back.
    let (stored, _, _) = read_all(&file).unwrap();

    let mut exprs: Vec<Expr> = Vec::new();
    while exprs.len() < 600 {
        let e = expr(&mut rng, 3);
        exprs.push(e.clone());
        exprs.push(e.simplify());
    }
    let mut queries = Vec::new();
    let mut expected = Vec::new();
    let mut no_sql = 0;
    for e in &exprs {
        match e.to_sql() {
            Ok(q) => {
                let rows: Vec<u64> = e
                    .select(&stored)
                    .unwrap()
                    .to_bools()
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| i as u64)
                    .collect();
                queries.push(q);
                expected.push((e, rows));
            }
            Err(_) => no_sql += 1,
        }
    }
    assert!(
        no_sql * 10 < exprs.len(),
        "{no_sql} of {} predicates have no SQL form",
        exprs.len()
    );
    let some = expected.iter().filter(|(_, r)| !r.is_empty()).count();
    let not_all = expected
        .iter()
        .filter(|(_, r)| r.len() < recs.len())
        .count();
    assert!(some > queries.len() / 4 && not_all > queries.len() / 4);

    let mut engines = vec!["duckdb"];
    if spark {
        engines.push("spark");
    } else {
        eprintln!("SKIPPED (Spark part): pyspark is missing (scripts/setup-deps installs it)");
    }
    for engine in engines {
        // Spark runs a job per predicate (about 0.2 s each): a third of them keeps the test
        // short and still covers every kind of node.
        let n = if engine == "spark" {
            queries.len() / 3
        } else {
            queries.len()
        };
        let queries = &queries[..n];
        let got = run(engine, &file, queries);
        assert_eq!(got.len(), queries.len(), "{engine}: one answer per query");
        let mut bad = Vec::new();
        for ((q, (e, want)), g) in queries.iter().zip(&expected).zip(&got) {
            let rows: Option<Vec<u64>> = g
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect());
            if rows.as_ref() != Some(want) {
                bad.push(format!(
                    "{engine}: {e}\n  SQL: {q}\n  want {} rows {:?}..., got {}",
                    want.len(),
                    &want[..want.len().min(5)],
                    match &rows {
                        Some(r) => format!("{} rows {:?}...", r.len(), &r[..r.len().min(5)]),
                        None => g.to_string(),
                    }
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "{} of {} predicates disagree:\n{}",
            bad.len(),
            queries.len(),
            bad[..bad.len().min(8)].join("\n")
        );
    }
}
