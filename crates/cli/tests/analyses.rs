//! The analysis commands as a user runs them: on the mix's real export data against nfdump's
//! answers, and on generated stores for every output format, the error bars and exit codes.

use std::collections::HashMap;
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Imports `input` into a new unsampled store; returns the store path.
fn store_of(dir: &Path, input: &Path) -> PathBuf {
    let store = dir.join("store");
    let links = dir.join("links.toml");
    std::fs::write(&links, UNSAMPLED).unwrap();
    ok(&[
        "--quiet",
        "--store",
        store.to_str().unwrap(),
        "import",
        "--links",
        links.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    store
}

/// Rows of a CSV text (no quoted commas in these outputs), as maps from column to value.
fn csv_rows(text: &str) -> Vec<HashMap<String, String>> {
    let block = text.split("\n\n").next().unwrap_or("");
    let mut lines = block.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            head.iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

/// nfdump's `-s KEY/ORDER -n 20` against `flowdrill top --exact`: the same values in the same
/// order, and per key the same flows, packets and bytes. Keys tied on the ordering value may
/// come in another order (nfdump's order among ties is its hash order), so keys are compared
/// as sets within each run of equal values; the last run may be cut at 20 differently.
fn same_top(store: &Path, reference: &Path, key: &str, order: &str) {
    let want_text = std::fs::read_to_string(reference.join(format!("top_{key}_{order}.csv")))
        .expect("reference top file");
    let want = csv_rows(&want_text);
    let got_text = ok(&[
        "--store",
        store.to_str().unwrap(),
        "--format",
        "csv",
        "top",
        "--exact",
        "--no-cache",
        "--by",
        key,
        "--metric",
        order,
        "-n",
        "20",
    ]);
    let got = csv_rows(&got_text);
    let ctx = format!("{} top {key}/{order}", reference.display());
    assert_eq!(got.len(), want.len(), "{ctx}: rows\n{got_text}");
    // nfdump names packets/bytes `ipkt`/`ibyt` in some orders.
    let col = |r: &HashMap<String, String>, a: &str, b: &str| -> u64 {
        r.get(a)
            .or_else(|| r.get(b))
            .unwrap_or_else(|| panic!("{ctx}: no column {a}"))
            .parse()
            .unwrap()
    };
    let ours = |r: &HashMap<String, String>, c: &str| -> u64 { r[c].parse().unwrap() };
    let norm = |k: &str| -> String {
        if key == "proto" {
            flowdrill_model::proto::from_name(k).map_or(k.to_string(), |p| p.to_string())
        } else {
            k.to_string()
        }
    };
    let order_col = match order {
        "bytes" => "bytes",
        "packets" => "packets",
        _ => "flows",
    };
    let ref_order = |r: &HashMap<String, String>| match order {
        "bytes" => col(r, "byt", "ibyt"),
        "packets" => col(r, "pkt", "ipkt"),
        _ => col(r, "fl", "fl"),
    };
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            ours(g, order_col),
            ref_order(w),
            "{ctx}: value at rank {}",
            i + 1
        );
    }
    let by_key: HashMap<String, &HashMap<String, String>> =
        want.iter().map(|w| (norm(&w["val"]), w)).collect();
    let last = ref_order(want.last().unwrap());
    for g in &got {
        let k = norm(&g["key"]);
        match by_key.get(&k) {
            Some(w) => {
                assert_eq!(ours(g, "flows"), col(w, "fl", "fl"), "{ctx}: flows of {k}");
                assert_eq!(
                    ours(g, "packets"),
                    col(w, "pkt", "ipkt"),
                    "{ctx}: packets of {k}"
                );
                assert_eq!(
                    ours(g, "bytes"),
                    col(w, "byt", "ibyt"),
                    "{ctx}: bytes of {k}"
                );
            }
            // Only a key tied with nfdump's last row may differ.
            None => assert_eq!(
                ours(g, order_col),
                last,
                "{ctx}: {k} is not in nfdump's top"
            ),
        }
    }
}

/// On the very records nfdump answered from (nfcapd's files of each exporter), every top-20
/// list equals nfdump's.
#[test]
fn top_equals_nfdump_on_the_nfcapd_files_of_every_exporter() {
    let Some(data) = shared_data() else { return };
    let mut seen = 0;
    for e in std::fs::read_dir(data.join("generated/nfcapd"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        let reference = data.join("reference").join(&name);
        if !reference.is_dir() {
            continue;
        }
        seen += 1;
        let d = tmp(&format!("nfc-{name}"));
        let store = store_of(&d, &e.path());
        for key in ["srcip", "dstip", "dstport", "proto"] {
            for order in ["bytes", "packets", "flows"] {
                same_top(&store, &reference, key, order);
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }
    assert!(
        seen >= 6,
        "expected the six exporters' nfcapd files, found {seen}"
    );
}

/// From the export datagrams themselves (flowdrill's decoder, not nfcapd's), the same lists.
/// nfcapd's v9 decoder never takes ICMPv6 type/code for the destination port (flowdrill
/// does; see crates/ingest/tests/real_exports.rs), so v9's port list differs in port 0 only.
#[test]
fn top_equals_nfdump_on_the_mix_export_datagrams() {
    let Some(data) = shared_data() else { return };
    for exporter in [
        "softflowd_v9",
        "softflowd_v5",
        "softflowd_v10",
        "pmacctd_v10",
    ] {
        let capture = data.join(format!("generated/exports/{exporter}_devmix.pcap.gz"));
        let reference = data.join(format!("reference/{exporter}_devmix"));
        if !capture.is_file() || !reference.is_dir() {
            eprintln!("SKIPPED: {} or its reference is missing", capture.display());
            continue;
        }
        let d = tmp(&format!("nf-{exporter}"));
        let store = store_of(&d, &capture);
        for key in ["srcip", "dstip", "dstport", "proto"] {
            if key == "dstport" && exporter.ends_with("_v9") {
                continue;
            }
            for order in ["bytes", "packets", "flows"] {
                same_top(&store, &reference, key, order);
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// A generated store of 60,000 flows over an hour, unsampled.
fn generated_store(name: &str) -> PathBuf {
    generated(&tmp(name), UNSAMPLED, "60k", &[])
}

#[test]
fn every_analysis_prints_every_format() {
    let store = generated_store("formats");
    let s = store.to_str().unwrap();
    let runs: &[&[&str]] = &[
        &["top", "--by", "srcip/24"],
        &["top", "--by", "dstport", "-m", "flows"],
        &["hhh", "-d", "src", "-T", "5"],
        &["hhh", "-d", "app"],
        &["hhh", "-d", "app-dst", "-m", "packets"],
        &["hhh2", "--rows", "src", "--cols", "app", "-T", "10"],
        &["series", "-c", "brownlee", "--bin", "5m"],
        &["series", "-c", "proto", "--value", "active"],
        &["dist", "--ignore", "2"],
        &["compare", "-t", "-30m", "--by", "dstport"],
        &["scans", "-n", "5"],
    ];
    for args in runs {
        for fmt in ["table", "csv", "json", "ndjson"] {
            let mut a = vec!["--store", s, "--format", fmt];
            a.extend_from_slice(args);
            let out = ok(&a);
            assert!(!out.trim().is_empty(), "{args:?} {fmt}: empty output");
            match fmt {
                "json" => {
                    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                    assert!(v["meta"]["exact"].is_boolean(), "{args:?}");
                    let rows = v["sections"][0]["rows"].as_array().unwrap();
                    assert!(!rows.is_empty(), "{args:?}: no rows");
                    assert!(rows[0]["exact"].is_boolean());
                }
                "ndjson" => {
                    for l in out.lines() {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        assert!(v.is_object());
                    }
                }
                "csv" => assert!(out.lines().next().unwrap().contains(',')),
                _ => assert!(out.starts_with("# "), "{args:?}: a header line first"),
            }
        }
    }
}

#[test]
fn hhh_json_rows_and_tree_agree_with_the_rule() {
    let store = generated_store("hhh");
    let s = store.to_str().unwrap();
    let out = ok(&[
        "--store", s, "--format", "json", "hhh", "--exact", "-T", "5",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total = v["meta"]["total"].as_f64().unwrap();
    let rows = v["sections"][0]["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    let mut resid = 0.0;
    for r in rows {
        for k in ["key", "value", "residual", "share", "exact"] {
            assert!(!r[k].is_null(), "row lacks {k}: {r}");
        }
        // Every reported key carries more than the threshold in its residual (ORACLES §1).
        assert!(r["residual"].as_f64().unwrap() > 0.05 * total, "{r}");
        resid += r["residual"].as_f64().unwrap();
    }
    assert!(resid <= total + 1e-6);
    // The text tree indents children under their parents.
    let text = ok(&["--store", s, "hhh", "--exact", "-T", "5"]);
    assert!(text.lines().any(|l| l.starts_with("  ")), "{text}");
}

#[test]
fn a_bounded_sample_gives_estimates_with_error_bars_that_cover_the_truth() {
    let store = generated_store("bound");
    let s = store.to_str().unwrap();
    let exact = ok(&[
        "--store", s, "--format", "json", "top", "--exact", "-n", "5",
    ]);
    let exact: serde_json::Value = serde_json::from_str(&exact).unwrap();
    assert_eq!(exact["meta"]["exact"], true);
    let truth = exact["meta"]["total"].as_f64().unwrap();
    let est = ok(&[
        "--store",
        s,
        "--format",
        "json",
        "top",
        "--max-records",
        "2000",
        "-n",
        "5",
    ]);
    let est: serde_json::Value = serde_json::from_str(&est).unwrap();
    let m = &est["meta"];
    assert_eq!(m["exact"], false, "{m}");
    assert!(m["records"].as_u64().unwrap() < 3000, "{m}");
    assert!(m["rethreshold_z"].as_u64().unwrap() > 0);
    let (t, se) = (
        m["total"].as_f64().unwrap(),
        m["total_stderr"].as_f64().unwrap(),
    );
    assert!(se > 0.0);
    // 5 standard errors: fails by chance with probability < 1e-6.
    assert!((t - truth).abs() < 5.0 * se, "total {t} ± {se} vs {truth}");
    let row = &est["sections"][0]["rows"][0];
    for k in ["stderr", "ci95_lo", "ci95_hi"] {
        assert!(row[k].is_number(), "estimated rows carry {k}: {row}");
    }
    // The text header says it is an estimate, at which z.
    let text = ok(&["--store", s, "top", "--max-records", "2000"]);
    assert!(
        text.lines().next().unwrap().contains("estimated at z"),
        "{text}"
    );
}

#[test]
fn filters_and_time_ranges_narrow_the_selection() {
    let store = generated_store("filter");
    let s = store.to_str().unwrap();
    let total = |extra: &[&str]| -> f64 {
        let mut a = vec![
            "--store", s, "--format", "json", "top", "--exact", "-m", "flows",
        ];
        a.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&ok(&a)).unwrap();
        v["meta"]["total"].as_f64().unwrap()
    };
    let all = total(&[]);
    let tcp = total(&["-f", "proto tcp"]);
    let not_tcp = total(&["-f", "not proto tcp"]);
    assert!(tcp > 0.0 && not_tcp > 0.0);
    assert_eq!(
        tcp + not_tcp,
        all,
        "a filter and its negation partition the flows"
    );
    let first = total(&["-t", "2024-01-01T00:00..2024-01-01T00:30"]);
    let second = total(&["-t", "2024-01-01T00:30..2024-01-01T01:00"]);
    assert_eq!(
        first + second,
        all,
        "two halves of the hour partition the flows"
    );
    assert_eq!(total(&["-t", "2024-01-01T00:30+30m"]), second);
    // Relative ranges count back from the end of the newest bin (flows run past the hour).
    let late = total(&["-t", "-30m"]);
    assert!(late > 0.0 && late < all);
    // Split flows count once: the flows of the whole hour equal the generated count.
    assert_eq!(all, total(&["-t", "all"]));
}

#[test]
fn bad_selections_are_usage_errors_with_the_position() {
    let store = generated_store("bad");
    let s = store.to_str().unwrap();
    for (args, want) in [
        (vec!["top", "-f", "proto tcp and port x"], "expected"),
        (vec!["top", "-t", "yesterday"], "write -1h"),
        (vec!["top", "--by", "nosuchfield"], "unknown key"),
        (vec!["top", "-l", "nolink"], "unknown link"),
        (vec!["hhh", "-d", "sideways"], "unknown dimension"),
        (vec!["hhh", "-T", "0"], "threshold"),
        (vec!["hhh", "-d", "src-map"], "prefix map"),
        (vec!["series", "--bin", "10ms"], "at least 1s"),
        (vec!["compare"], "bounded --time"),
    ] {
        let mut a = vec!["--store", s];
        a.extend_from_slice(&args);
        let o = flowdrill(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let o = flowdrill(&["--store", "/nonexistent/store", "top"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn the_result_cache_serves_repeats_and_misses_after_a_change() {
    let store = generated_store("cache");
    let s = store.to_str().unwrap();
    let first = ok(&["--store", s, "top", "--by", "dstport"]);
    let second = ok(&["--store", s, "top", "--by", "dstport"]);
    assert!(!first.contains("cached"));
    assert!(
        second.lines().next().unwrap().ends_with("| cached"),
        "{second}"
    );
    assert_eq!(
        first.lines().skip(1).collect::<Vec<_>>(),
        second.lines().skip(1).collect::<Vec<_>>()
    );
    // Another parameter is another entry.
    assert!(!ok(&["--store", s, "top", "--by", "srcport"]).contains("cached"));
    // Late records merged into the bins (a second import into the same store) invalidate.
    ok(&[
        "--quiet",
        "--store",
        s,
        "generate",
        "--kind",
        "store",
        "--flows",
        "1000",
        "--duration",
        "1h",
        "--seed",
        "7",
    ]);
    let third = ok(&["--store", s, "top", "--by", "dstport"]);
    assert!(!third.lines().next().unwrap().contains("cached"), "{third}");
    assert_ne!(first, third, "the new records change the answer");
}

/// The most frequent IPv4 source or destination of a capture, by tshark (an independent
/// reader): the scanner of a scan capture, the victim of a flood.
fn tshark_top(capture: &Path, field: &str) -> Option<String> {
    let o = Command::new("tshark")
        .args(["-r", capture.to_str()?, "-T", "fields", "-e", field])
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let mut counts: HashMap<String, u64> = HashMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if !l.is_empty() {
            *counts.entry(l.to_string()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(k, n)| (*n, k.clone()))
        .map(|(k, _)| k)
}

/// On the shared captures with known scans and floods, the scanner tops the fan-out table and
/// the flood's victim tops the fan-in table (the truth taken from tshark's packet counts).
#[test]
fn scans_put_the_known_scanners_and_the_victim_on_top() {
    let Some(data) = shared_data() else { return };
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("SKIPPED: tshark is not installed (scripts/setup-deps installs it)");
        return;
    }
    let cases = [
        (
            "esnet/attacks_scanners_nmap_nmap_80_vanilla.pcap",
            "ip.src",
            0,
        ),
        ("esnet/attacks_scanners_nmap_nmap_80_all.pcap", "ip.src", 0),
        (
            "esnet/attacks_scanners_masscan_tcp_0_1000_20190821.pcap",
            "ip.src",
            0,
        ),
        (
            "esnet/attacks_scanners_masscan_udp_0_1000_20190821.pcap",
            "ip.src",
            0,
        ),
        ("ndpi/tests_cfgs_default_pcap_synscan.pcap", "ip.src", 0),
        ("stopddos/pkt.TCP.synflood.spoofed.pcap", "ip.dst", 1),
    ];
    for (file, field, section) in cases {
        let capture = data.join("pcaps").join(file);
        if !capture.is_file() {
            eprintln!("SKIPPED: {} is missing", capture.display());
            continue;
        }
        let want = tshark_top(&capture, field).expect("tshark reads the capture");
        let d = tmp(&format!("scan-{}", file.replace('/', "-")));
        let store = store_of(&d, &capture);
        let out = ok(&[
            "--store",
            store.to_str().unwrap(),
            "--format",
            "json",
            "scans",
            "--exact",
            "-n",
            "3",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let top = &v["sections"][section]["rows"][0];
        assert_eq!(
            top["host"],
            want.as_str(),
            "{file}: {}",
            v["sections"][section]
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
