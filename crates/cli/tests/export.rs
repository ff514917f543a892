//! `flowdrill export`, `expire` and `links` as a user runs them: exports whose sums are the
//! analyses' totals in every format (Parquet read back by pyarrow), sampled stores whose
//! weights add up to the estimates, retention with and without `--dry-run`, and links files
//! checked with their line and column.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// A budget that 20k flows an hour exceed: level 0 is sampled.
const SAMPLED: &str = "[defaults]\nbin = \"5m\"\nbudget = \"800KB\"\n";

fn top_meta(store: &Path, sel: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
        "top",
    ];
    args.extend_from_slice(sel);
    let v: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    v["meta"].clone()
}

/// `meta.total` of `top --format json` with these selection flags.
fn top_total(store: &Path, sel: &[&str]) -> f64 {
    top_meta(store, sel)["total"].as_f64().unwrap()
}

/// Exports to `out` with these flags; the output's text.
fn export(store: &Path, out: &Path, flags: &[&str]) -> String {
    let mut args = vec![
        "--quiet",
        "--store",
        store.to_str().unwrap(),
        "export",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    ok(&args);
    std::fs::read_to_string(out).unwrap_or_default()
}

/// Rows of a CSV export (no quoted commas in these stores): the row count and the sums of
/// the named columns.
fn csv_sums(text: &str, cols: &[&str]) -> (usize, Vec<f64>) {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx: Vec<usize> = cols
        .iter()
        .map(|c| head.iter().position(|h| h == c).unwrap())
        .collect();
    let mut sums = vec![0.0; cols.len()];
    let mut n = 0;
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        assert_eq!(cells.len(), head.len(), "{l}");
        for (s, &i) in sums.iter_mut().zip(&idx) {
            *s += cells[i].parse::<f64>().unwrap();
        }
        n += 1;
    }
    (n, sums)
}

/// Row count and sums of the named fields of a JSON array or NDJSON export.
fn json_sums(rows: &[serde_json::Value], cols: &[&str]) -> (usize, Vec<f64>) {
    let sums = cols
        .iter()
        .map(|c| rows.iter().map(|r| r[*c].as_f64().unwrap()).sum())
        .collect();
    (rows.len(), sums)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn exports_in_every_text_format_sum_to_the_exact_total_and_a_filter_narrows_them() {
    let d = tmp("text");
    let store = generated(&d, UNSAMPLED, "20k", &[]);
    let total = top_total(&store, &["--exact"]);
    let records = top_meta(&store, &["--exact"])["records"].as_u64().unwrap() as usize;

    let csv = export(&store, &d.join("all.csv"), &[]);
    let (n, s) = csv_sums(&csv, &["bytes", "weight_bytes", "sample_z"]);
    assert_eq!(n, records);
    assert_eq!(s[0], total);
    assert_eq!(s[1], total, "unsampled: a record weighs its bytes");
    assert_eq!(s[2], 0.0);
    let first = csv.lines().nth(1).unwrap();
    assert!(first.contains("T00:"), "times as ISO 8601: {first}");

    let json = export(&store, &d.join("all.json"), &[]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(json_sums(&rows, &["bytes"]), (records, vec![total]));
    assert!(rows[0]["src_addr"].as_str().unwrap().contains(['.', ':']));

    let nd = export(&store, &d.join("all.out"), &["--as", "ndjson"]);
    let rows: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json_sums(&rows, &["bytes"]), (records, vec![total]));

    // A filter (and a field subset) narrows the export to what the same selection totals.
    let udp = ["-f", "proto udp", "--fields", "proto,bytes"];
    let csv = export(&store, &d.join("udp.csv"), &udp);
    assert_eq!(
        csv.lines().next().unwrap(),
        "link,proto,bytes,sample_z,weight_bytes,weight_packets,weight_flows"
    );
    let (n, s) = csv_sums(&csv, &["bytes", "proto"]);
    assert!(n > 0 && n < records, "{n} of {records}");
    assert_eq!(s[0], top_total(&store, &["--exact", "-f", "proto udp"]));
    assert_eq!(s[1], 17.0 * n as f64);

    // Standard output, and a time range.
    let out = ok(&[
        "--store",
        store.to_str().unwrap(),
        "export",
        "-o",
        "-",
        "--as",
        "csv",
        "-t",
        "-10m",
        "--fields",
        "bytes",
    ]);
    let (n10, s10) = csv_sums(&out, &["bytes"]);
    assert!(n10 > 0 && n10 < records);
    assert_eq!(s10[0], top_total(&store, &["--exact", "-t", "-10m"]));
}

#[test]
fn a_parquet_export_reads_in_pyarrow_with_the_same_rows_and_bytes() {
    let d = tmp("parquet");
    let store = generated(&d, UNSAMPLED, "20k", &[]);
    let file = d.join("all.parquet");
    export(&store, &file, &[]);
    let have = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("SKIPPED: pyarrow missing");
        return;
    }
    let script = "import sys, pyarrow.parquet as pq, pyarrow.compute as pc\n\
        t = pq.read_table(sys.argv[1])\n\
        print(t.num_rows, pc.sum(t['bytes']).as_py(), pc.sum(t['weight_bytes']).as_py(), \
        t.schema.field('src_addr_v4').type, t.schema.field('time_start').type)";
    let o = Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let parts: Vec<&str> = text.split_whitespace().collect();
    let meta = top_meta(&store, &["--exact"]);
    assert_eq!(parts[0], meta["records"].to_string(), "{text}");
    assert_eq!(
        parts[1].parse::<f64>().unwrap(),
        meta["total"].as_f64().unwrap()
    );
    assert_eq!(
        parts[2].parse::<f64>().unwrap(),
        meta["total"].as_f64().unwrap()
    );
    assert_eq!(
        &parts[3..],
        ["uint32", "timestamp[ms,", "tz=UTC]"],
        "{text}"
    );
}

#[test]
fn the_weights_of_a_sampled_export_sum_to_the_analyses_estimates() {
    let d = tmp("sampled");
    let store = generated(&d, SAMPLED, "20k", &[]);
    let csv = export(&store, &d.join("s.csv"), &[]);
    let (n, s) = csv_sums(
        &csv,
        &["sample_z", "weight_bytes", "weight_packets", "weight_flows"],
    );
    assert!(s[0] > 0.0, "the store is sampled");
    for (i, m) in ["bytes", "packets", "flows"].iter().enumerate() {
        let t = top_total(&store, &["--exact", "-m", m]);
        assert!(close(s[i + 1], t), "{m}: export {} top {t}", s[i + 1]);
    }
    // A bound (below every level's records: re-sampled) keeps the records the analyses keep.
    let csv = export(&store, &d.join("b.csv"), &["--max-records", "300"]);
    let (nb, sb) = csv_sums(&csv, &["weight_bytes"]);
    assert!(nb > 0 && nb < n, "{nb}");
    let t = top_total(&store, &["--max-records", "300", "--no-cache"]);
    assert!(close(sb[0], t), "bounded: export {} top {t}", sb[0]);
}

#[test]
fn bad_exports_are_usage_errors() {
    let d = tmp("usage");
    let store = generated(&d, UNSAMPLED, "2k", &[]);
    let s = store.to_str().unwrap();
    let out = d.join("x.csv");
    let o = out.to_str().unwrap();
    for args in [
        &["--store", s, "export", "-o", o, "-f", "proto tcp and"][..],
        &["--store", s, "export", "-o", o, "-t", "yesterday"],
        &["--store", s, "export", "-o", o, "--fields", "bytes,colour"],
        &["--store", s, "export", "-o", "x.unknown"],
        &["--store", s, "export", "-o", o, "-l", "nope"],
    ] {
        let r = flowdrill(args);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    assert!(!out.exists(), "a failed export leaves no file");
}

/// Bins per level of `links --format json`.
fn bins_per_level(store: &Path) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
        "links",
    ]))
    .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["bins"].as_u64().unwrap())
        .collect()
}

#[test]
fn expire_removes_old_bins_and_a_dry_run_removes_nothing() {
    let d = tmp("expire");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // An hour of data from 2.5 h ago: expiring what is older than 2 h takes its first half.
    let start = (now - 9000).to_string();
    let store = generated(&d, UNSAMPLED, "5k", &["--start", &start]);
    let s = store.to_str().unwrap();
    let before = bins_per_level(&store);
    assert!(before[0] >= 12, "{before:?}");

    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "--store",
            s,
            "--format",
            "json",
            "expire",
            "--older-than",
            "2h",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(bins_per_level(&store), before, "a dry run removes nothing");
    let removed = |v: &serde_json::Value, level: u64| -> u64 {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["level"] == level)
            .map(|r| r["bins"].as_u64().unwrap())
            .sum()
    };
    assert!(removed(&dry, 0) > 0, "{dry}");

    let real = run(&[]);
    assert_eq!(real, dry, "the dry run said what expire does");
    let after = bins_per_level(&store);
    assert_eq!(after[0], before[0] - removed(&real, 0));
    assert!(after[0] > 0, "recent bins stay: {after:?}");
    // Nothing left to remove; the table says so.
    let again = ok(&["--store", s, "expire", "--older-than", "2h"]);
    assert!(again.starts_with("# removed 0 bins"), "{again}");

    // By size: the oldest bins of level 0 go until it fits.
    let size = ok(&[
        "--store",
        s,
        "--format",
        "json",
        "expire",
        "--level",
        "0",
        "--max-size",
        "1",
        "--dry-run",
    ]);
    let v: serde_json::Value = serde_json::from_str(&size).unwrap();
    assert_eq!(removed(&v, 0), after[0]);
    assert_eq!(removed(&v, 1), 0);
}

#[test]
fn links_checks_files_with_line_and_column_and_installs_them() {
    let d = tmp("links");
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "[defaults]\nbin = \"5m\"\n\n[[rule]]\nsrc = \"10.0.0.0/8\"\nlink = \"dorms\"\n",
    )
    .unwrap();
    let o = flowdrill(&["links", "--check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml:4:1: link 'dorms' is not declared"),
        "{err}"
    );
    std::fs::write(&bad, "[defaults]\nbin = 5m\n").unwrap();
    let o = flowdrill(&["links", "--check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.toml:2:7:"));

    let good = d.join("good.toml");
    std::fs::write(
        &good,
        "[defaults]\nbudget = \"20GB\"\nmax_age = \"30d\"\n\n[[link]]\nname = \"campus\"\n\n[[rule]]\nsrc = \"10.0.0.0/8\"\nlink = \"campus\"\n",
    )
    .unwrap();
    let checked = ok(&[
        "--format",
        "csv",
        "links",
        "--check",
        good.to_str().unwrap(),
    ]);
    assert!(
        checked.contains("campus,0,5m,20000000000,30d,"),
        "{checked}"
    );

    let store = generated(&d, UNSAMPLED, "2k", &[]);
    let s = store.to_str().unwrap();
    let o = flowdrill(&["--store", s, "links", "--set", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a bad file is not installed");
    let set = ok(&[
        "--store",
        s,
        "--format",
        "json",
        "links",
        "--set",
        good.to_str().unwrap(),
    ]);
    let rows: serde_json::Value = serde_json::from_str(&set).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["link"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"campus") && names.contains(&"default"),
        "{names:?}"
    );
    let default0 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["link"] == "default" && r["level"] == 0)
        .unwrap();
    assert!(default0["bins"].as_u64().unwrap() >= 12, "{default0}");
    assert_eq!(default0["max_age"], "30d");
    assert_eq!(
        std::fs::read_to_string(store.join("_links.toml")).unwrap(),
        std::fs::read_to_string(&good).unwrap()
    );
}
