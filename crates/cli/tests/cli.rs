//! The `flowdrill` binary as a user runs it: generate, import every kind of input, bad input
//! and bad usage with their exit codes.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// The TOTAL row of `import --format json`.
fn import_total(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let rows = rows.as_array().unwrap();
    let total = rows.last().unwrap().clone();
    assert_eq!(total["file"], "TOTAL");
    total
}

/// `flowdrill generate --kind KIND --flows FLOWS --duration 10m EXTRA... --out OUT`, which
/// must succeed; its output (the summary is on stderr).
fn generate(kind: &str, flows: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "generate",
        "--kind",
        kind,
        "--flows",
        flows,
        "--duration",
        "10m",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = flowdrill(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `flowdrill --format json import --dry-run EXTRA... FILE`: its TOTAL row.
fn dry_run(file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--format", "json", "import", "--dry-run"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    import_total(&flowdrill(&args))
}

#[test]
fn generated_exports_of_every_version_import_to_the_generated_records() {
    let d = tmp("gen");
    for (kind, v6) in [("v5", false), ("v9", true), ("ipfix", true)] {
        let cap = d.join(format!("{kind}.pcap"));
        generate(kind, "5000", &cap, &[]);
        let store = d.join(format!("store-{kind}"));
        let total = import_total(&flowdrill(&[
            "--store",
            store.to_str().unwrap(),
            "--format",
            "json",
            "import",
            cap.to_str().unwrap(),
        ]));
        // The scenario's records: background plus the demo's four events, v5 without IPv6.
        let recs = total["records"].as_u64().unwrap();
        assert!(recs > 5000, "{kind}: {recs}");
        assert_eq!(total["drops"], 0, "{kind}: {total}");
        if !v6 {
            assert!(recs < 5000 + 38_002, "{kind}: v5 carries no IPv6: {recs}");
        }
    }
    // v9 and IPFIX carry the same records.
    let r = |k: &str| {
        import_total(&flowdrill(&[
            "--format",
            "json",
            "import",
            "--dry-run",
            d.join(format!("{k}.pcap")).to_str().unwrap(),
        ]))
    };
    assert_eq!(r("v9")["records"], r("ipfix")["records"]);
    assert_eq!(r("v9")["bytes"], r("ipfix")["bytes"]);
}

#[test]
fn raw_packets_are_metered_back_into_the_generated_flows() {
    let d = tmp("packets");
    let cap = d.join("packets.pcap");
    let out = generate("packets", "3000", &cap, &["--no-events"]);
    // "wrote FILE: N flows, P packets, B bytes as raw packets, ..."
    let msg = String::from_utf8_lossy(&out.stderr).to_string();
    let number_before = |word: &str| -> u64 {
        let i = msg
            .find(word)
            .unwrap_or_else(|| panic!("no '{word}' in {msg}"));
        msg[..i]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (flows, packets) = (number_before(" flows"), number_before(" packets"));
    assert_eq!(flows, 3000);
    // Packets are conserved by the meter whatever the timeouts; with timeouts longer than any
    // generated flow, the meter gives back exactly the generated flows.
    for idle in ["15s", "1h"] {
        let out = flowdrill(&[
            "--format",
            "json",
            "import",
            "--dry-run",
            "--idle-timeout",
            idle,
            "--active-timeout",
            "1d",
            cap.to_str().unwrap(),
        ]);
        let total = import_total(&out);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows[0]["kind"], "packet capture");
        assert_eq!(total["packets"], packets, "idle {idle}");
        let recs = total["records"].as_u64().unwrap();
        if idle == "1h" {
            assert_eq!(recs, flows, "idle {idle}");
        } else {
            assert!(recs >= flows, "idle {idle}: {recs}");
        }
    }
}

#[test]
fn nfcapd_files_and_nfdump_csv_import_with_nfdumps_totals() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("generated/nfcapd/softflowd_v9_devmix");
    let total = dry_run(&dir, &[]);
    assert_eq!(total["records"], 80_348);
    assert_eq!(total["packets"], 157_363);
    assert_eq!(total["bytes"], 32_391_195);
    let csv = data.join("reference/pmacctd_v10_devmix/flows.csv.gz");
    let total = dry_run(&csv, &[]);
    assert_eq!(total["records"], 80_332);
    assert_eq!(total["packets"], 157_457);
}

#[test]
fn real_export_captures_import_like_nfcapd_counted_them() {
    let Some(data) = shared_data() else { return };
    let cap = data.join("generated/exports/softflowd_v10_devmix.pcap.gz");
    let d = tmp("real");
    let store = d.join("store");
    let out = flowdrill(&[
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
        "import",
        cap.to_str().unwrap(),
    ]);
    let total = import_total(&out);
    assert_eq!(total["records"], 80_348);
    assert_eq!(total["packets"], 157_363);
    assert_eq!(total["bytes"], 32_391_195);
    // The store was written and opens.
    assert!(store.join("_flowdrill-store.json").exists());
    assert!(store.join("_catalog.json").exists());
}

#[test]
fn the_mix_capture_is_metered_with_tsharks_packet_totals() {
    let Some(data) = shared_data() else { return };
    let cap = data.join("mix/dev_mix.pcap");
    let total = dry_run(&cap, &[]);
    // tshark: 152,792 IPv4 + 4,721 IPv6 packets.
    assert_eq!(total["packets"], 152_792 + 4_721);
    assert_eq!(total["bytes"], 30_182_984u64 + 1_898_204);
}

#[test]
fn garbage_and_truncated_input_give_clear_errors_not_panics() {
    let d = tmp("bad");
    let garbage = d.join("garbage.bin");
    std::fs::write(&garbage, b"this is not a flow file at all, just text\n").unwrap();
    let out = flowdrill(&["import", "--dry-run", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a format flowdrill reads"), "{err}");

    // A capture cut in the middle keeps what came before the cut and says so.
    let cap = d.join("cut.pcap");
    generate("ipfix", "2000", &cap, &["--no-events"]);
    let bytes = std::fs::read(&cap).unwrap();
    std::fs::write(&cap, &bytes[..bytes.len() * 2 / 3 + 7]).unwrap();
    let out = flowdrill(&["import", "--dry-run", cap.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("was read only in part"), "{text}");
    assert!(text.contains("capture: unreadable rest of file"), "{text}");

    let missing = flowdrill(&["import", "--dry-run", d.join("nope.pcap").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn usage_mistakes_exit_with_code_2() {
    assert_eq!(flowdrill(&["import"]).status.code(), Some(2));
    assert_eq!(flowdrill(&["frobnicate"]).status.code(), Some(2));
    let out = flowdrill(&[
        "generate",
        "--kind",
        "ipfix",
        "--flows",
        "lots",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a count"));
    let out = flowdrill(&["import", "--dry-run", "--sampling-rate", "1.2.3.4", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(flowdrill(&["--help"]).status.success());
}

#[test]
fn anonymised_imports_keep_counts() {
    let d = tmp("anon");
    let cap = d.join("v9.pcap");
    generate("v9", "2000", &cap, &[]);
    let key = d.join("key");
    std::fs::write(&key, "a long enough passphrase\n").unwrap();
    let plain = dry_run(&cap, &[]);
    for extra in [
        vec!["--anonymize-mask", "21,64"],
        vec!["--anonymize-key", key.to_str().unwrap()],
    ] {
        let mut args = vec!["--format", "json", "import", "--dry-run"];
        args.extend(extra);
        args.push(cap.to_str().unwrap());
        let t = import_total(&flowdrill(&args));
        assert_eq!(t["records"], plain["records"]);
        assert_eq!(t["bytes"], plain["bytes"]);
    }
    std::fs::write(&key, "short").unwrap();
    let out = flowdrill(&[
        "import",
        "--dry-run",
        "--anonymize-key",
        key.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn generate_writes_records_straight_into_a_store() {
    let d = tmp("genstore");
    let store = d.join("store");
    let out = flowdrill(&[
        "--store",
        store.to_str().unwrap(),
        "generate",
        "--kind",
        "store",
        "--flows",
        "20k",
        "--duration",
        "2h",
        "--no-events",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("generated 20000 records"));
    let mut parquet = 0;
    let mut stack = vec![store.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                parquet += 1;
            }
        }
    }
    // Two hours of 5-minute bins at level 0, plus the coarser levels.
    assert!(parquet >= 24, "{parquet} bin files");
    let bad = flowdrill(&["generate", "--kind", "store", "--out", "x.pcap"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn demo_runs_on_its_own_and_refuses_machine_formats() {
    let d = tmp("demo");
    let store = d.join("demo");
    let out = flowdrill(&[
        "--store",
        store.to_str().unwrap(),
        "demo",
        "--flows",
        "20k",
        "--no-events",
        "--no-serve",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "imported 1 file(s)",
        "dropped: nothing",
        "== Top 10 sources by bytes",
        "== Hierarchical heavy hitters: source prefixes",
        "== Hierarchical heavy hitters: applications",
    ] {
        assert!(text.contains(section), "missing '{section}' in:\n{text}");
    }
    let json = flowdrill(&[
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
        "demo",
    ]);
    assert_eq!(json.status.code(), Some(2));
}

#[test]
fn drops_are_counted_with_their_reasons() {
    let Some(data) = shared_data() else { return };
    // Data sets whose template never comes are held until the end of the import, then
    // counted as dropped: in the TOTAL row, as the file itself may be followed by templates.
    let cap = data.join("exports/ndpi/tests_cfgs_default_pcap_netflowv9.pcap");
    let out = flowdrill(&[
        "--format",
        "json",
        "import",
        "--dry-run",
        cap.to_str().unwrap(),
    ]);
    let total = import_total(&out);
    assert_eq!(total["records"], 0);
    assert!(total["drops"].as_u64().unwrap() > 0, "{total}");
    let reasons = total["drop_reasons"].as_str().unwrap();
    assert!(reasons.contains("decode: set: no template"), "{reasons}");
    // The meter's non-IP frames are charged to the capture that holds them: 721 in tshark,
    // one of which is cut inside its link header.
    let mix = data.join("mix/dev_mix.pcap");
    let out = flowdrill(&[
        "--format",
        "json",
        "import",
        "--dry-run",
        mix.to_str().unwrap(),
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons = rows[0]["drop_reasons"].as_str().unwrap();
    assert!(reasons.contains("meter: not an IP packet=720"), "{reasons}");
}

#[test]
fn a_relative_store_path_is_created_in_the_working_directory() {
    let d = tmp("relative");
    let o = Command::new(env!("CARGO_BIN_EXE_flowdrill"))
        .args(["--quiet", "--store", "st", "generate", "--kind", "store"])
        .args(["--flows", "500", "--duration", "5m"])
        .current_dir(&d)
        .env_remove("FLOWDRILL_STORE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.join("st").join("_flowdrill-store.json").is_file());
}
