//! Selections end to end through a real store: filters on user-defined elements, flows split
//! across bins counted once, and re-thresholding to a record bound.

use flowdrill_model::{Addr, CustomField, CustomFields, CustomKind, CustomValue, FlowRecord};
use flowdrill_query::{Bound, Engine, Metric, Selection};
use flowdrill_store::{Store, StoreWriter, WriterOptions};

const T0: u64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

fn registry() -> CustomFields {
    CustomFields {
        fields: vec![
            CustomField {
                enterprise: 6871,
                id: 455,
                name: "rtt_us".into(),
                kind: CustomKind::Unsigned,
            },
            CustomField {
                enterprise: 6871,
                id: 456,
                name: "app".into(),
                kind: CustomKind::String,
            },
        ],
    }
}

fn store(name: &str, records: Vec<FlowRecord>) -> Engine {
    let dir = std::env::temp_dir().join(format!("fd-query-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = Store::create(&dir).unwrap();
    s.set_links("[defaults]\nbin = \"5m\"\nbudget = \"20GB\"\n")
        .unwrap();
    let mut w = StoreWriter::new(
        &s,
        WriterOptions {
            custom: registry(),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    w.push_all(records).unwrap();
    w.finish().unwrap();
    s.refresh().unwrap();
    Engine::new(s, 64 << 20)
}

fn rec(i: u64, start: u64, dur: u64) -> FlowRecord {
    let mut extra = vec![(0u16, CustomValue::Unsigned(i * 10))];
    if i.is_multiple_of(3) {
        extra.push((1, CustomValue::String("dns".into())));
    }
    FlowRecord {
        time_start: start,
        time_end: start + dur,
        src_addr: Addr::from_v4_u32(0x0a00_0000 + i as u32),
        dst_addr: Addr::from_v4_u32(0xc000_0201),
        proto: 17,
        packets: 10,
        bytes: 1000 + i,
        extra: if i % 5 == 4 { Vec::new() } else { extra },
        ..FlowRecord::default()
    }
}

fn total(e: &Engine, filter: &str, metric: Metric, bound: Bound) -> f64 {
    let sel = Selection {
        filter: (!filter.is_empty())
            .then(|| flowdrill_query::parse_filter(filter, &e.custom_fields()).unwrap()),
        metric,
        ..Selection::all()
    };
    e.load(&sel, &[], bound).unwrap().total().value
}

#[test]
fn filters_name_user_defined_elements() {
    let recs: Vec<FlowRecord> = (0..1000).map(|i| rec(i, T0 + i * 1000, 10)).collect();
    let e = store("custom", recs.clone());
    assert_eq!(e.custom_fields(), registry());
    let count = |f: &dyn Fn(&FlowRecord) -> bool| recs.iter().filter(|r| f(r)).count() as f64;
    let rtt = |r: &FlowRecord| match r.extra.first() {
        Some((0, CustomValue::Unsigned(v))) => Some(*v),
        _ => None,
    };
    let flows = |f: &str| total(&e, f, Metric::Flows, Bound::Exact);
    assert_eq!(
        flows("rtt_us > 5000"),
        count(&|r| rtt(r).is_some_and(|v| v > 5000))
    );
    assert_eq!(flows("rtt_us exists"), count(&|r| rtt(r).is_some()));
    assert_eq!(flows("not rtt_us exists"), count(&|r| rtt(r).is_none()));
    assert_eq!(
        flows("app = \"dns\" and proto udp"),
        count(&|r| r.extra.iter().any(|(i, _)| *i == 1))
    );
    assert!(flowdrill_query::parse_filter("rtt_us = \"x\"", &e.custom_fields()).is_err());
}

#[test]
fn a_flow_split_across_bins_counts_once() {
    // 100 flows of 12 minutes each: every one spans three or four 5-minute bins.
    let recs: Vec<FlowRecord> = (0..100).map(|i| rec(i, T0 + i * 7_000, 720_000)).collect();
    let e = store("split", recs.clone());
    let stored = e.load(&Selection::all(), &[], Bound::Exact).unwrap();
    assert!(
        stored.len() > 300,
        "the flows were split: {} records",
        stored.len()
    );
    assert_eq!(total(&e, "", Metric::Flows, Bound::Exact), 100.0);
    let bytes: u64 = recs.iter().map(|r| r.bytes).sum();
    assert_eq!(total(&e, "", Metric::Bytes, Bound::Exact), bytes as f64);
    assert_eq!(total(&e, "", Metric::Packets, Bound::Exact), 1000.0);
}

#[test]
fn a_record_bound_re_samples_without_bias() {
    let recs: Vec<FlowRecord> = (0..20_000)
        .map(|i| {
            let mut r = rec(i, T0 + i * 10, 5);
            r.bytes = 40 + (i * 7919) % 20_000;
            r
        })
        .collect();
    let e = store("bound", recs.clone());
    let truth: u64 = recs.iter().map(|r| r.bytes).sum();
    let sel = Selection::all();
    let l = e.load(&sel, &[], Bound::Records(1000)).unwrap();
    assert!(!l.exact);
    assert!(l.len() < 1300, "{} records", l.len());
    let est = l.total();
    assert!(est.variance > 0.0);
    assert!(
        (est.value - truth as f64).abs() < 5.0 * est.std_error(),
        "{} ± {} vs {truth}",
        est.value,
        est.std_error()
    );
}

#[test]
fn bins_whose_statistics_exclude_the_filter_are_not_read() {
    // Six bins: the first three hold UDP to port 53 only, the last three TCP to 443 only.
    let recs: Vec<FlowRecord> = (0..1800)
        .map(|i| {
            let mut r = rec(i, T0 + i * 1000, 10);
            if i >= 900 {
                r.proto = 6;
                r.dst_port = 443;
            } else {
                r.dst_port = 53;
            }
            r
        })
        .collect();
    let e = store("prune", recs.clone());
    let truth = |f: &dyn Fn(&FlowRecord) -> bool| -> f64 {
        recs.iter().filter(|r| f(r)).map(|r| r.bytes as f64).sum()
    };
    for (filter, want, pruned) in [
        ("proto tcp", truth(&|r| r.proto == 6), 3),
        ("dst port 53", truth(&|r| r.dst_port == 53), 3),
        ("not proto udp", truth(&|r| r.proto != 17), 3),
        ("proto tcp and dst port 53", 0.0, 6),
        ("proto tcp or dst port 53", truth(&|_| true), 0),
        // Sources 10.0.3.0..255 are records 768..1023: the third and fourth bins.
        (
            "src net 10.0.3.0/24",
            truth(&|r| r.src_addr.0 >> 8 == Addr::from_v4_u32(0x0a00_0300).0 >> 8),
            4,
        ),
    ] {
        let sel = Selection {
            filter: Some(flowdrill_query::parse_filter(filter, &e.custom_fields()).unwrap()),
            ..Selection::all()
        };
        let l = e.load(&sel, &[], Bound::Exact).unwrap();
        assert_eq!(l.total().value, want, "{filter}");
        assert_eq!(l.bins_pruned, pruned, "{filter}");
    }
}
