//! Integration tests of the store: round trips, budgets, sampling statistics (ORACLES §3),
//! levels and plans, retention, corrupt files, crashes (kill -9) and interop with pyarrow and
//! DuckDB.

mod util;

use flowdrill_model::{
    Addr, ColumnRef, ColumnSource, CustomField, CustomFields, CustomKind, CustomValue, FIELDS,
    Field, FlowRecord, RecordColumns,
};
use flowdrill_store::sampling::{self, Rng};
use flowdrill_store::{BinRef, PlanGoal, Store, StoreWriter, WriterOptions};
use std::collections::HashMap;
use std::path::Path;
use util::{T0, records};

const BIN: u64 = 300_000;
const HOUR: u64 = 3_600_000;
const ALL: u64 = u64::MAX;

fn all_fields() -> Vec<Field> {
    FIELDS.iter().map(|f| f.field).collect()
}

fn store_with(dir: &Path, links: &str) -> Store {
    let mut s = Store::create(dir).unwrap();
    s.set_links(links).unwrap();
    s
}

/// A store in `dir` (links `links`) holding `records(n, seed, T0, span)`, reopened, and its
/// first level-0 bin.
fn one_bin(dir: &Path, links: &str, n: usize, seed: u64, span: u64) -> (Store, BinRef) {
    let store = store_with(dir, links);
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(records(n, seed, T0, span)).unwrap();
    w.finish().unwrap();
    let store = Store::open(dir).unwrap();
    let bin = store.bins("default", 0..ALL, 0).unwrap().remove(0);
    (store, bin)
}

/// Splits records the way the writer does, for an exact reference.
fn split_all(recs: &[FlowRecord]) -> Vec<FlowRecord> {
    recs.iter()
        .flat_map(|r| sampling::split(r, BIN, 288).0.into_iter().map(|p| p.record))
        .collect()
}

#[test]
fn an_unsampled_store_gives_back_every_field_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let custom = CustomFields {
        fields: vec![
            CustomField {
                enterprise: 6871,
                id: 1,
                name: "app".into(),
                kind: CustomKind::String,
            },
            CustomField {
                enterprise: 6871,
                id: 2,
                name: "rtt_us".into(),
                kind: CustomKind::Unsigned,
            },
        ],
    };
    let mut recs = records(3000, 1, T0, HOUR);
    for (i, r) in recs.iter_mut().enumerate() {
        if i % 3 == 0 {
            r.extra
                .push((0, CustomValue::String(format!("app{}", i % 7).into())));
        }
        if i % 2 == 0 {
            r.extra.push((1, CustomValue::Unsigned(i as u64 * 10)));
        }
    }
    let mut w = StoreWriter::new(
        &store,
        WriterOptions {
            custom,
            ..Default::default()
        },
    )
    .unwrap();
    w.push_all(recs.clone()).unwrap();
    let summary = w.finish().unwrap();
    assert_eq!(summary.records_in, 3000);
    assert!(
        summary
            .bins
            .iter()
            .all(|b| b.z_max == 0 && b.file_bytes <= b.budget)
    );

    let store = Store::open(dir.path()).unwrap();
    assert!(store.skipped().is_empty());
    let bins = store.bins("default", 0..ALL, 0).unwrap();
    assert_eq!(
        bins.len(),
        13,
        "an hour of 5-minute bins plus the flows that run over"
    );
    // Compare every column of the stored records with the split input, as multisets of rows.
    let want = split_all(&recs);
    let want_cols = RecordColumns::from_records(&want);
    let mut want_rows: Vec<Vec<u128>> = (0..want.len()).map(|i| row_of(&want_cols, i)).collect();
    let mut got_rows = Vec::new();
    let mut apps = 0;
    for b in &bins {
        let batch = store
            .read_bin_with_extras(b, &all_fields(), &["app", "rtt_us"])
            .unwrap();
        assert!(batch.sample_z().iter().all(|&z| z == 0));
        for i in 0..batch.len() {
            got_rows.push(row_of(&batch, i));
        }
        match batch.extra("app").unwrap() {
            flowdrill_store::ExtraColumn::String(v) => apps += v.iter().flatten().count(),
            other => panic!("{other:?}"),
        }
    }
    want_rows.sort();
    got_rows.sort();
    assert_eq!(got_rows, want_rows);
    let want_apps = want
        .iter()
        .filter(|r| r.extra.iter().any(|(i, _)| *i == 0))
        .count();
    assert_eq!(apps, want_apps);
    // Both families survive.
    assert!(want.iter().any(|r| !r.src_addr.is_v4()));
}

fn row_of(c: &dyn ColumnSource, i: usize) -> Vec<u128> {
    FIELDS
        .iter()
        .map(|f| match c.column(f.field).unwrap() {
            ColumnRef::Addr(v) => v[i],
            other => other.u64_at(i).unwrap() as u128,
        })
        .collect()
}

#[test]
fn every_bin_file_fits_its_budget_and_estimates_stay_close() {
    let dir = tempfile::tempdir().unwrap();
    // 800 kB/h = 66.7 kB per 5-minute bin, near the smallest budget allowed.
    let store = store_with(
        dir.path(),
        r#"[defaults]
budget = "800KB"
levels = [ { bin = "1h", budget = "200KB" }, { bin = "1d", budget = "40KB" } ]
"#,
    );
    let recs = records(120_000, 2, T0, 2 * HOUR);
    let true_bytes: u64 = recs.iter().map(|r| r.bytes).sum();
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(recs).unwrap();
    let summary = w.finish().unwrap();
    assert!(
        summary.bins.iter().any(|b| b.z_max > 0),
        "the budget forces sampling"
    );
    for b in &summary.bins {
        assert!(b.file_bytes <= b.budget, "{b:?}");
    }
    let store = Store::open(dir.path()).unwrap();
    for b in store.all_bins() {
        assert!(
            b.size <= store.config().links[0].levels[b.level as usize].bin_budget(),
            "{b:?}"
        );
    }
    for level in 0..3u8 {
        let mut est = 0u64;
        let mut var = 0.0;
        for b in store.bins("default", 0..ALL, level).unwrap() {
            let batch = store.read_bin(&b, &[Field::Bytes]).unwrap();
            est += batch.estimated_bytes().unwrap();
            var += batch.bytes_variance().unwrap();
        }
        let dev = (est as f64 - true_bytes as f64).abs();
        assert!(
            dev <= 4.0 * var.sqrt(),
            "level {level}: {est} vs {true_bytes}, sd {}",
            var.sqrt()
        );
        // Exact counters are exact at every level.
        let (stats, skipped) = store.stats("default", 0..ALL, level).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(stats.total.bytes, true_bytes);
        assert_eq!(stats.total.flows, 120_000);
    }
}

/// A population for the sampling oracle: a category of C bytes among others, sizes heavy-tailed.
fn population(seed: u64) -> Vec<(u64, bool)> {
    let mut rng = Rng::new(seed);
    (0..20_000)
        .map(|i| {
            let x = 40 + (1.0 / (1.0 - rng.next_f64() * 0.9999)).powf(1.2) as u64 * 50;
            (x, i % 5 == 0)
        })
        .collect()
}

/// ORACLES §3, exactly: R seeded runs; |Ĉ − C| ≤ 3√(zC) in ≥ 99.7 % of runs, the mean within
/// 4·sd/√R, and the records kept within E ± 4√E — for sampling at z and for re-thresholding a
/// sample at z to z' = 4z.
#[test]
fn threshold_sampling_and_rethresholding_meet_the_oracle() {
    let pop = population(11);
    let c: u64 = pop.iter().filter(|p| p.1).map(|p| p.0).sum();
    let xs: Vec<(u64, u64)> = pop.iter().map(|p| (p.0, 0)).collect();
    let z = sampling::choose_threshold(&xs, 2000.0);
    assert!(
        c as f64 >= 30.0 * z as f64,
        "C = {c} must be ≥ 30 z = {}",
        30 * z
    );
    for z_final in [z, 4 * z] {
        let r = 2000;
        let e: f64 = pop
            .iter()
            .map(|p| sampling::keep_probability(p.0, z_final))
            .sum();
        let bound = 3.0 * ((z_final * c) as f64).sqrt();
        let sd = pop
            .iter()
            .filter(|p| p.1)
            .map(|p| {
                sampling::variance_term(p.0, z_final) * sampling::keep_probability(p.0, z_final)
            })
            .sum::<f64>()
            .sqrt();
        let (mut within, mut sum) = (0, 0.0);
        for run in 0..r {
            let mut rng = Rng::new(1000 + run);
            let mut est = 0u64;
            let mut kept = 0.0;
            for &(x, in_c) in &pop {
                if !sampling::keep(x, z, &mut rng) {
                    continue;
                }
                if z_final != z && !sampling::rethreshold(x, z, z_final, &mut rng) {
                    continue;
                }
                kept += 1.0;
                if in_c {
                    est += sampling::estimated_bytes(x, z_final);
                }
            }
            assert!(
                (kept - e).abs() <= 4.0 * e.sqrt(),
                "run {run}: kept {kept}, E {e}"
            );
            within += ((est as f64 - c as f64).abs() <= bound) as u32;
            sum += est as f64;
        }
        assert!(
            within as f64 >= 0.997 * r as f64,
            "z' {z_final}: {within}/{r} within 3√(zC)"
        );
        let mean = sum / r as f64;
        assert!(
            (mean - c as f64).abs() <= 4.0 * sd / (r as f64).sqrt(),
            "z' {z_final}: mean {mean} vs {c} (sd {sd})"
        );
    }
}

/// The same oracle through the store: R seeded writes of one bin, the estimate read back.
#[test]
fn stored_samples_are_unbiased_across_seeds() {
    let recs = records(20_000, 5, T0, BIN - 130_000);
    let c: u64 = recs.iter().filter(|r| r.proto == 6).map(|r| r.bytes).sum();
    let r = 20;
    let mut sum = 0.0;
    let mut sd = 0.0;
    for run in 0..r {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), "[defaults]\nbudget = \"1MB\"\nlevels = []\n");
        let opts = WriterOptions {
            seed: run,
            ..Default::default()
        };
        let mut w = StoreWriter::new(&store, opts).unwrap();
        w.push_all(recs.clone()).unwrap();
        let s = w.finish().unwrap();
        assert!(
            s.bins
                .iter()
                .all(|b| b.z_max > 0 && b.file_bytes <= b.budget)
        );
        let store = Store::open(dir.path()).unwrap();
        let mut est = 0.0;
        let mut var = 0.0;
        for b in store.bins("default", 0..ALL, 0).unwrap() {
            let batch = store.read_bin(&b, &[Field::Bytes, Field::Proto]).unwrap();
            let tcp: Vec<bool> = match batch.column(Field::Proto).unwrap() {
                ColumnRef::U8(p) => p.iter().map(|&p| p == 6).collect(),
                other => panic!("{other:?}"),
            };
            let sub = batch.filter(&tcp, None);
            est += sub.estimated_bytes().unwrap() as f64;
            var += sub.bytes_variance().unwrap();
        }
        let z = store.all_bins().iter().map(|b| b.z_max).max().unwrap();
        assert!(
            (est - c as f64).abs() <= 3.0 * ((z * c) as f64).sqrt(),
            "run {run}"
        );
        sum += est;
        sd += var.sqrt();
    }
    let mean = sum / r as f64;
    let sd = sd / r as f64;
    assert!(
        (mean - c as f64).abs() <= 4.0 * sd / (r as f64).sqrt(),
        "mean {mean} vs {c}"
    );
}

#[test]
fn links_rules_route_and_drop_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(
        dir.path(),
        r#"[[link]]
name = "edge"
[[rule]]
name = "backbone"
in_if = [4]
drop = true
[[rule]]
exporter = "192.0.2.1"
link = "edge"
"#,
    );
    let recs = records(4000, 3, T0, BIN / 2);
    let dropped = recs.iter().filter(|r| r.in_if == 4).count() as u64;
    let edge = recs
        .iter()
        .filter(|r| r.in_if != 4 && r.exporter == Addr::from_v4_u32(0xc000_0201))
        .count() as u64;
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(recs).unwrap();
    let s = w.finish().unwrap();
    assert_eq!(s.dropped.get("backbone"), Some(&dropped));
    assert_eq!(s.per_link["edge"].flows, edge);
    assert_eq!(s.per_link["default"].flows, 4000 - dropped - edge);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.links(),
        vec!["default".to_string(), "edge".to_string()]
    );
    let flows: u64 = store
        .bins("edge", 0..ALL, 0)
        .unwrap()
        .iter()
        .map(|b| b.flows)
        .sum();
    assert_eq!(flows, edge);
    assert!(matches!(
        store.bins("nope", 0..ALL, 0),
        Err(flowdrill_store::Error::UnknownLink { .. })
    ));
}

#[test]
fn late_records_merge_into_their_bin_and_distinct_counts_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let recs = records(6000, 4, T0, BIN - 130_000);
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(recs[..3000].iter().cloned()).unwrap();
    w.advance(T0 + 2 * HOUR).unwrap();
    w.push_all(recs[3000..].iter().cloned()).unwrap();
    let s = w.finish().unwrap();
    assert!(s.late >= 3000);
    assert!(s.bins.iter().any(|b| b.merged));
    let store = Store::open(dir.path()).unwrap();
    let bins = store.bins("default", 0..ALL, 0).unwrap();
    let stored: u64 = bins.iter().map(|b| b.records_after).sum();
    assert_eq!(stored as usize, split_all(&recs).len());
    let stats = store.bin_stats(&bins[0]).unwrap();
    let exact: std::collections::HashSet<u128> = recs.iter().map(|r| r.src_addr.0).collect();
    let est = stats.src_addrs.estimate();
    let rel = (est - exact.len() as f64) / exact.len() as f64;
    assert!(rel.abs() < 4.0 * 0.0163, "HLL {est} vs {}", exact.len());
    assert_eq!(stats.total.flows, 6000);
    // One sketch read alone is the one read with the others.
    use flowdrill_store::Sketch;
    let which = [
        Sketch::SrcAddrs,
        Sketch::DstAddrs,
        Sketch::SrcPorts,
        Sketch::DstPorts,
        Sketch::SrcAddrsV6,
        Sketch::DstAddrsV6,
    ];
    let got = store.bin_sketches(&bins[0], &which).unwrap();
    let want = [
        Some(&stats.src_addrs),
        Some(&stats.dst_addrs),
        Some(&stats.src_ports),
        Some(&stats.dst_ports),
        stats.src_addrs_v6.as_ref(),
        stats.dst_addrs_v6.as_ref(),
    ];
    for ((w, g), e) in which.iter().zip(&got).zip(want) {
        assert!(g.as_ref() == e, "{w:?}");
    }
    assert!(stats.src_addrs_v6.is_some(), "new files have IPv6 sketches");
    assert!(stats.src_addrs != stats.dst_ports);
}

#[test]
fn plans_pick_the_finest_level_within_the_bound_and_expiry_removes_bins() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with(
        dir.path(),
        r#"[defaults]
budget = "2MB"
max_age = "2h"
levels = [ { bin = "1h", budget = "100KB", max_size = "250KB" } ]
"#,
    );
    let recs = records(60_000, 6, T0, 4 * HOUR);
    let mut w = StoreWriter::new(
        &store,
        WriterOptions {
            auto_close_after_ms: Some(BIN),
            ..Default::default()
        },
    )
    .unwrap();
    w.push_all(recs).unwrap();
    w.finish().unwrap();
    store.refresh().unwrap();
    let range = T0..T0 + 4 * HOUR;
    let l0: u64 = store
        .bins("default", range.clone(), 0)
        .unwrap()
        .iter()
        .map(|b| b.records_after)
        .sum();
    let l1: u64 = store
        .bins("default", range.clone(), 1)
        .unwrap()
        .iter()
        .map(|b| b.records_after)
        .sum();
    assert!(
        l1 * 3 < l0,
        "level 1 ({l1}) is much smaller than level 0 ({l0})"
    );
    let p = store
        .plan(&["default"], range.clone(), PlanGoal::MaxRecords(l0))
        .unwrap();
    assert_eq!(p.level, 0);
    let p = store
        .plan(&["default"], range.clone(), PlanGoal::MaxRecords(l0 - 1))
        .unwrap();
    assert_eq!((p.level, p.records), (1, l1));
    let p = store
        .plan(&["default"], range.clone(), PlanGoal::MaxRelativeError(1.0))
        .unwrap();
    assert_eq!(p.level, 1);
    assert!(
        store
            .plan(&["default"], range.clone(), PlanGoal::MaxRecords(1))
            .unwrap()
            .level
            == 1
    );

    // Retention: level 0 keeps 2 h, level 1 keeps 150 kB.
    let s = store.expire(T0 + 5 * HOUR).unwrap();
    assert!(!s.removed.is_empty());
    assert!(
        store
            .bins("default", 0..ALL, 0)
            .unwrap()
            .iter()
            .all(|b| b.end > T0 + 3 * HOUR)
    );
    let l1_size: u64 = store
        .bins("default", 0..ALL, 1)
        .unwrap()
        .iter()
        .map(|b| b.size)
        .sum();
    assert!(l1_size <= 250_000);
    // With level 0 partly expired, a plan over the whole range must use level 1.
    let p = store
        .plan(&["default"], range.clone(), PlanGoal::MaxRecords(u64::MAX))
        .unwrap();
    assert_eq!(p.level, 1);
    // Deleting a range removes whole bins only, at every level, and the catalog agrees.
    store
        .delete_range("default", T0 + 3 * HOUR..T0 + 4 * HOUR)
        .unwrap();
    assert!(
        store
            .bins("default", T0 + 3 * HOUR..T0 + 4 * HOUR, 0)
            .unwrap()
            .is_empty()
    );
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.all_bins(), store.all_bins());
}

#[test]
fn corrupt_and_truncated_files_are_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(records(5000, 7, T0, HOUR - 130_000)).unwrap();
    w.finish().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bins = store.bins("default", 0..ALL, 0).unwrap();
    let p1 = dir.path().join(&bins[1].path);
    let p2 = dir.path().join(&bins[2].path);
    let len = std::fs::metadata(&p1).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p1)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut b = std::fs::read(&p2).unwrap();
    let mid = b.len() / 2;
    b[mid..mid + 64].iter_mut().for_each(|x| *x ^= 0x5a);
    std::fs::write(&p2, b).unwrap();
    // The catalog still lists both; reading them reports errors naming the files.
    let res = store
        .read_range("default", 0..ALL, 0, &[Field::Bytes])
        .unwrap();
    let names: Vec<_> = res.skipped.iter().map(|s| s.path.clone()).collect();
    assert!(names.contains(&p1), "{:?}", res.skipped);
    assert!(res.batches.len() + res.skipped.len() == bins.len());
    // A fresh open notices the changed files: the truncated one is skipped with a reason.
    let store = Store::open(dir.path()).unwrap();
    assert!(
        store
            .skipped()
            .iter()
            .any(|s| s.path == p1 && !s.reason.is_empty())
    );
    let res = store
        .read_range("default", 0..ALL, 0, &all_fields())
        .unwrap();
    let skipped_total = store.skipped().len() + res.skipped.len();
    assert!(
        skipped_total >= 2,
        "both damaged files are reported: {:?} {:?}",
        store.skipped(),
        res.skipped
    );
}

/// A selective read (the filter's columns first, the others only where rows match) hands
/// over every row a full read would keep; only those when they sit together (rows are sorted
/// by protocol and destination port; the reader then skips the pages without any), every row
/// when they are scattered.
#[test]
fn selective_reads_keep_every_matching_row_and_skip_pages() {
    fn ports(b: &flowdrill_store::Batch) -> &[u16] {
        match b.column(Field::DstPort) {
            Some(ColumnRef::U16(p)) => p,
            other => panic!("dst_port column: {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let links = "[defaults]\nbudget = \"1GB\"\nbin = \"1h\"\n";
    let (store, bin) = one_bin(dir.path(), links, 300_000, 5, HOUR - 130_000);
    let fields = [Field::DstPort, Field::Bytes, Field::SrcAddr];
    let full = store.read_bin(&bin, &fields).unwrap();
    type Keep = fn(u16, u64) -> bool;
    // (name, which rows, whether pages must be skipped)
    let cases: [(&str, Keep, bool); 3] = [
        ("dst port 22", |p, _| p == 22, true),
        ("no row", |_, _| false, true),
        ("odd byte counts", |_, b| b % 2 == 1, false),
    ];
    let rows_of = |b: &flowdrill_store::Batch, keep: Keep| -> Vec<(u16, u64)> {
        let by = b.u64s(Field::Bytes).unwrap();
        ports(b)
            .iter()
            .zip(by)
            .filter(|&(&p, &x)| keep(p, x))
            .map(|(&p, &x)| (p, x))
            .collect()
    };
    for (name, keep, skips) in cases {
        let want = rows_of(&full, keep);
        let mut got = Vec::new();
        let (rows, handed) = store
            .read_bin_chunks_where(
                &bin,
                &fields,
                &[],
                &[Field::DstPort, Field::Bytes],
                &[],
                10_000,
                &mut |pre| {
                    let by = pre.u64s(Field::Bytes).unwrap();
                    Some(
                        ports(pre)
                            .iter()
                            .zip(by)
                            .map(|(&p, &x)| keep(p, x))
                            .collect(),
                    )
                },
                &mut |b| {
                    got.extend(rows_of(&b, keep));
                    true
                },
            )
            .unwrap();
        assert_eq!(rows, full.len(), "{name}");
        assert_eq!(got, want, "{name}");
        if skips {
            assert!(handed * 4 < rows, "{name}: {handed} of {rows} rows decoded");
        } else {
            assert_eq!(handed, rows, "{name}: scattered rows are read in full");
        }
    }
}

/// A byte changed anywhere in a column chunk is reported by its checksum, naming the file and
/// the column, even where the damaged bytes would still decode (bit-packed or literal data);
/// reads that do not need the damaged column are unaffected.
#[test]
fn damage_inside_a_column_is_caught_by_its_checksum() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let links = "[defaults]\nbudget = \"1GB\"\n";
    let (store, bin) = one_bin(dir.path(), links, 4000, 9, BIN - 130_000);
    let path = dir.path().join(&bin.path);
    let good = std::fs::read(&path).unwrap();
    let md = SerializedFileReader::new(std::fs::File::open(&path).unwrap())
        .unwrap()
        .metadata()
        .clone();
    let chunk = md
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "bytes");
    let (start, len) = chunk.expect("a bytes column").byte_range();
    let mut silent = Vec::new();
    for k in 0..16u64 {
        let at = (start + len * k / 16) as usize;
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        match store.read_bin(&bin, &[Field::Bytes]) {
            Err(flowdrill_store::Error::Corrupt { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains("bytes"), "{reason}");
            }
            other => silent.push((at, other.map(|b| b.len()))),
        }
        // The other columns are intact and still read.
        let b = store
            .read_bin(&bin, &[Field::SrcAddr, Field::DstPort])
            .unwrap();
        assert_eq!(b.len() as u64, bin.records_after);
    }
    assert!(silent.is_empty(), "damage read as data: {silent:?}");
    std::fs::write(&path, &good).unwrap();
    assert!(store.read_bin(&bin, &all_fields()).is_ok());
}

/// Random damage (seeded): every read either succeeds or names the file; none panics.
#[test]
fn randomly_damaged_files_never_crash_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let links = "[defaults]\nbudget = \"1GB\"\n";
    let (store, bin) = one_bin(dir.path(), links, 2000, 9, BIN - 130_000);
    let path = dir.path().join(&bin.path);
    let good = std::fs::read(&path).unwrap();
    let mut rng = Rng::new(77);
    let mut failures = 0;
    for _ in 0..60 {
        let mut bad = good.clone();
        match rng.next_u64() % 3 {
            0 => bad.truncate((rng.next_u64() % good.len() as u64) as usize),
            _ => {
                for _ in 0..1 + rng.next_u64() % 8 {
                    let i = (rng.next_u64() % bad.len() as u64) as usize;
                    bad[i] = rng.next_u64() as u8;
                }
            }
        }
        std::fs::write(&path, &bad).unwrap();
        match store.read_bin(&bin, &all_fields()) {
            Ok(b) => assert_eq!(b.len() as u64, bin.records_after),
            Err(flowdrill_store::Error::Corrupt { path: p, .. }) => {
                assert_eq!(p, path);
                failures += 1;
            }
            Err(e) => panic!("unexpected error kind: {e}"),
        }
        let _ = store.bin_stats(&bin);
    }
    assert!(failures > 0);
}

#[test]
fn absurd_timestamps_neither_panic_nor_explode() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    let rec = |s: u64, e: u64| FlowRecord {
        time_start: s,
        time_end: e,
        bytes: 100,
        packets: 1,
        ..Default::default()
    };
    w.push(rec(0, u64::MAX)).unwrap(); // spans everything: stored whole
    w.push(rec(T0 + 10, T0 - 10)).unwrap(); // ends before it starts
    w.push(rec(u64::MAX - 10, u64::MAX)).unwrap(); // the last bin of time
    let s = w.finish().unwrap();
    assert_eq!(s.overlong, 1);
    assert_eq!(s.per_link["default"].records, 3);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.skipped().is_empty(), "{:?}", store.skipped());
    let stored: u64 = store
        .all_bins()
        .iter()
        .filter(|b| b.level == 0)
        .map(|b| b.records_after)
        .sum();
    assert_eq!(stored, 3);
}

#[test]
fn the_catalog_is_rebuilt_when_missing_garbled_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(records(3000, 10, T0, HOUR)).unwrap();
    w.finish().unwrap();
    let want = Store::open(dir.path()).unwrap().all_bins().to_vec();
    assert!(want.len() > 12);
    let catalog = dir.path().join("_catalog.json");
    std::fs::remove_file(&catalog).unwrap();
    assert_eq!(Store::open(dir.path()).unwrap().all_bins(), want.as_slice());
    assert!(catalog.exists(), "rewritten on open");
    std::fs::write(&catalog, b"{ not json").unwrap();
    assert_eq!(Store::open(dir.path()).unwrap().all_bins(), want.as_slice());
    // A bin deleted behind the catalog's back disappears from it.
    std::fs::remove_file(dir.path().join(&want[0].path)).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.all_bins(), &want[1..]);
    assert!(store.skipped().is_empty());
}

#[test]
fn errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("not a flowdrill store") && e.contains("create"),
        "{e}"
    );
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    let e = Store::create(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
}

/// Run by `a_writer_killed_at_any_moment_leaves_a_readable_store` in a child process.
#[test]
#[ignore = "runs only as the child process of the crash test"]
fn crash_child_writer() {
    let dir = std::env::var("FLOWDRILL_CRASH_DIR").expect("set by the crash test");
    let round: u64 = std::env::var("FLOWDRILL_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::create(&dir).unwrap();
    let mut w = StoreWriter::new(
        &store,
        WriterOptions {
            seed: round,
            ..Default::default()
        },
    )
    .unwrap();
    // Each round rewrites some earlier bins (merge) and adds new ones, forever.
    for i in 0.. {
        let t = T0 + ((round * 3 + i) % 40) * BIN;
        w.push_all(records(3000, round * 1000 + i, t, BIN)).unwrap();
        w.advance(t + 2 * BIN).unwrap();
    }
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_readable_store() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    Store::create(&store_dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(42);
    let mut seen_bins = 0;
    for round in 0..24u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FLOWDRILL_CRASH_DIR", &store_dir)
            .env("FLOWDRILL_CRASH_ROUND", round.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + rng.next_u64() % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(&store_dir).unwrap();
        assert!(
            store.skipped().is_empty(),
            "round {round}: {:?}",
            store.skipped()
        );
        for b in store.all_bins() {
            let batch = store.read_bin(b, &all_fields()).unwrap();
            assert_eq!(batch.len() as u64, b.records_after);
            store.bin_stats(b).unwrap();
        }
        seen_bins = seen_bins.max(store.all_bins().len());
    }
    assert!(seen_bins > 0, "the children wrote something");
    // No temporaries of dead writers survive an open.
    let store = Store::open(&store_dir).unwrap();
    let mut temps = 0;
    let mut stack = vec![store.root().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".tmp.") {
                temps += 1;
            }
        }
    }
    assert_eq!(temps, 0);
}

/// pyarrow and DuckDB read the store as-is and agree with flowdrill's totals.
#[test]
fn pyarrow_and_duckdb_read_the_store_and_agree() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let have = |m: &str| {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("pyarrow") || !have("duckdb") {
        assert!(
            !ci,
            "CI=true but python3 with pyarrow and duckdb is not available"
        );
        println!("SKIPPED: python3 with pyarrow and duckdb not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"800KB\"\n");
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(records(60_000, 8, T0, HOUR)).unwrap();
    w.finish().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut rows, mut bytes, mut est) = (0u64, 0u64, 0u64);
    for b in store.bins("default", 0..ALL, 0).unwrap() {
        let batch = store.read_bin(&b, &[Field::Bytes]).unwrap();
        rows += batch.len() as u64;
        bytes += match batch.column(Field::Bytes).unwrap() {
            ColumnRef::U64(v) => v.iter().sum::<u64>(),
            other => panic!("{other:?}"),
        };
        est += batch.estimated_bytes().unwrap();
    }
    let script = format!(
        r#"
import pyarrow.dataset as ds, pyarrow.compute as pc, duckdb
d = ds.dataset({root:?}, format="parquet", partitioning="hive")
t = d.to_table(filter=(pc.field("level") == 0), columns=["bytes", "sample_z", "src_addr_v4", "time_start"])
est = pc.sum(pc.max_element_wise(t["bytes"], t["sample_z"])).as_py()
print("pyarrow", t.num_rows, pc.sum(t["bytes"]).as_py(), est)
r = duckdb.sql("SELECT count(*), sum(bytes), sum(greatest(bytes, sample_z)) FROM read_parquet('{root}/**/*.parquet', hive_partitioning=true) WHERE level = 0").fetchall()[0]
print("duckdb", *r)
try:
    import pandas as pd  # optional: the three-line session of docs/store-format.md
except ImportError:
    pd = None
if pd is not None:
    df = pd.read_parquet({root:?}, filters=[("level", "==", 0)])
    top = df.assign(est=df[["bytes", "sample_z"]].max(axis=1)).groupby("src_addr_v4")["est"].sum().nlargest(10)
    print("pandas", len(df), int(df["bytes"].sum()), int(df[["bytes", "sample_z"]].max(axis=1).sum()))
"#,
        root = dir.path().display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("flowdrill: {rows} rows, {bytes} bytes, {est} estimated\n{text}");
    let lines: HashMap<&str, Vec<u64>> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            Some((k, it.map(|x| x.parse::<f64>().unwrap() as u64).collect()))
        })
        .collect();
    assert_eq!(lines["pyarrow"], vec![rows, bytes, est]);
    assert_eq!(lines["duckdb"], vec![rows, bytes, est]);
    if let Some(p) = lines.get("pandas") {
        assert_eq!(p, &vec![rows, bytes, est]);
    }
}

#[test]
fn footer_column_ranges_are_the_exact_bounds_of_every_bin() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let mut recs = records(4000, 5, T0, HOUR);
    // Values past the signed limits of the Parquet types (unsigned statistics).
    recs[0].src_addr = Addr::from_v4_u32(0xfe00_0001);
    recs[1].dst_port = 65_000;
    recs[2].src_as = 4_200_000_000;
    let mut w = StoreWriter::new(&store, WriterOptions::default()).unwrap();
    w.push_all(recs).unwrap();
    w.finish().unwrap();
    store.refresh().unwrap();
    let bins: Vec<_> = store
        .all_bins()
        .iter()
        .filter(|b| b.level == 0)
        .cloned()
        .collect();
    assert!(bins.len() > 5);
    let mut seen_high = false;
    for b in &bins {
        let ranges = store.bin_ranges(b).unwrap();
        let batch = store.read_bin(b, &all_fields()).unwrap();
        for (field, parts) in &ranges {
            let vals: Vec<u128> = (0..batch.len())
                .map(|i| match batch.column(*field).unwrap() {
                    ColumnRef::Addr(v) => v[i],
                    other => other.u64_at(i).unwrap() as u128,
                })
                .collect();
            // Every value inside an interval, and each interval's ends are values (tight).
            for v in &vals {
                assert!(
                    parts.iter().any(|&(lo, hi)| lo <= *v && *v <= hi),
                    "{field:?}: {v} outside {parts:?}"
                );
            }
            for &(lo, hi) in parts {
                assert!(
                    vals.contains(&lo) && vals.contains(&hi),
                    "{field:?} {lo} {hi}"
                );
            }
            if *field == Field::DstPort && parts.iter().any(|p| p.1 == 65_000) {
                seen_high = true;
            }
        }
        let names: Vec<Field> = ranges.iter().map(|r| r.0).collect();
        for f in [
            Field::SrcAddr,
            Field::DstPort,
            Field::Proto,
            Field::Bytes,
            Field::TimeStart,
        ] {
            assert!(names.contains(&f), "{f:?} has statistics");
        }
    }
    assert!(seen_high, "the high port's bin has it as its maximum");
}

/// `n` records starting within one minute of `T0`, each lasting no time (one bin, no splitting).
fn instant_records(n: usize, seed: u64) -> Vec<FlowRecord> {
    records(n, seed, T0, 60_000)
        .into_iter()
        .map(|mut r| {
            r.time_end = r.time_start;
            r
        })
        .collect()
}

/// Pushes `recs` one by one; the most records the writer held in open bins meanwhile.
fn push_counting_peak(w: &mut StoreWriter, recs: &[FlowRecord]) -> usize {
    let mut peak = 0;
    for r in recs {
        w.push(r.clone()).unwrap();
        peak = peak.max(w.buffered_records());
    }
    peak
}

/// The collector's bounded memory: an open bin past `max_open_records` is sampled in place
/// (its z raised, what it holds re-thresholded), yet the bin's exact counters count every
/// record and the stored sample still estimates the byte total within the oracle's bound.
#[test]
fn open_bins_past_their_cap_are_sampled_adaptively_with_exact_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    // One bin, records of one minute (no splitting).
    let recs = instant_records(40_000, 11);
    let opts = WriterOptions {
        max_open_records: Some(2000),
        ..WriterOptions::default()
    };
    let mut w = StoreWriter::new(&store, opts).unwrap();
    let peak = push_counting_peak(&mut w, &recs);
    assert!(peak <= 2000, "an open bin held {peak} records");
    let z_open = w.open_z()["default"];
    assert!(z_open > 0);
    let s = w.finish().unwrap();
    assert!(s.open_resamples >= 5, "{s:?}");
    assert!(s.open_sampled_out > 30_000);
    let store = Store::open(dir.path()).unwrap();
    let bins = store.bins("default", 0..ALL, 0).unwrap();
    assert_eq!(bins.len(), 1);
    assert_eq!(bins[0].records_before, 40_000);
    let stats = store.bin_stats(&bins[0]).unwrap();
    let (flows, bytes): (u64, u64) = (recs.len() as u64, recs.iter().map(|r| r.bytes).sum());
    assert_eq!(stats.total.flows, flows);
    assert_eq!(stats.total.bytes, bytes);
    let batch = store.read_bin(&bins[0], &[Field::Bytes]).unwrap();
    assert!(
        batch.len() <= 2000 && batch.len() > 500,
        "{} records kept",
        batch.len()
    );
    assert!(batch.sample_z().iter().all(|&z| z >= z_open));
    let est = batch.estimated_bytes().unwrap() as f64;
    let bound = 4.0 * (z_open as f64 * bytes as f64).sqrt() * 2.0;
    assert!(
        (est - bytes as f64).abs() <= bound,
        "estimate {est} vs exact {bytes} (bound {bound})"
    );
}

/// The cap of an open bin is also twice what its disk budget keeps: with a large
/// `max_open_records` and a small budget, an open bin holds no more than that (the collector's
/// memory in a flood follows the budget, not only `--max-bin-records`), and the bin's exact
/// counters still count every record.
#[test]
fn an_open_bin_holds_at_most_twice_what_its_disk_budget_keeps() {
    let dir = tempfile::tempdir().unwrap();
    // 1.2 MB/h: 100 kB per 5-minute bin, about 6250 records at the first guess of 16 bytes
    // per record, so the cap is about 12.5 k records, far below max_open_records.
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1.2MB\"\n");
    let recs = instant_records(60_000, 12);
    let opts = WriterOptions {
        max_open_records: Some(1_000_000),
        ..WriterOptions::default()
    };
    let mut w = StoreWriter::new(&store, opts).unwrap();
    let peak = push_counting_peak(&mut w, &recs);
    assert!(peak <= 12_600, "an open bin held {peak} records");
    assert!(peak > 6_000, "an open bin held only {peak} records");
    let s = w.finish().unwrap();
    assert!(s.open_resamples >= 1, "{s:?}");
    let store = Store::open(dir.path()).unwrap();
    let bins = store.bins("default", 0..ALL, 0).unwrap();
    assert_eq!(bins.len(), 1);
    assert_eq!(bins[0].records_before, 60_000);
    let stats = store.bin_stats(&bins[0]).unwrap();
    assert_eq!(stats.total.flows, 60_000);
    assert_eq!(stats.total.bytes, recs.iter().map(|r| r.bytes).sum::<u64>());
}

#[test]
fn late_parts_of_long_flows_are_merged_in_bulk_not_once_per_record() {
    // Records in export order (by end time), as a collector or an export capture gives them:
    // one flow in 20 lasts 30–90 minutes, so its parts reach bins closed long before.
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "[defaults]\nbudget = \"1GB\"\n");
    let mut recs = records(40_000, 9, T0, 2 * HOUR);
    let mut rng = Rng::new(17);
    for r in recs.iter_mut() {
        if rng.next_u64().is_multiple_of(20) {
            r.time_end = r.time_start + 30 * 60_000 + rng.next_u64() % (60 * 60_000);
        }
    }
    recs.sort_by_key(|r| (r.time_end, r.time_start));
    let mut w = StoreWriter::new(
        &store,
        WriterOptions {
            auto_close_after_ms: Some(2 * BIN),
            ..Default::default()
        },
    )
    .unwrap();
    w.push_all(recs.iter().cloned()).unwrap();
    let s = w.finish().unwrap();
    assert!(s.late > 1000, "the test needs late records: {}", s.late);
    let writes = s.bins.iter().filter(|b| b.level == 0).count();
    let bins: std::collections::BTreeSet<u64> = s
        .bins
        .iter()
        .filter(|b| b.level == 0)
        .map(|b| b.start)
        .collect();
    assert!(
        writes <= 2 * bins.len(),
        "{writes} level-0 writes for {} bins: late records were merged one by one",
        bins.len()
    );
    let store = Store::open(dir.path()).unwrap();
    let stored = store.bins("default", 0..ALL, 0).unwrap();
    let kept: u64 = stored.iter().map(|b| b.records_after).sum();
    let flows: u64 = stored.iter().map(|b| b.flows).sum();
    assert_eq!(kept as usize, split_all(&recs).len());
    assert_eq!(flows, 40_000);
    let bytes: u64 = stored.iter().map(|b| b.bytes).sum();
    assert_eq!(bytes, recs.iter().map(|r| r.bytes).sum::<u64>());
}
