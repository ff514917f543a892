//! User-defined elements in filters: the forms of each kind and their canonical text, what
//! they select (row- and column-wise, nulls included), and a round trip through the store.

use crate::util::registry;
use flowdrill_filter::{Expr, FilterError, parse, parse_with};
use flowdrill_model::{ColumnSource, CustomValue, Field, FlowRecord};
use flowdrill_store::{Batch, Store, StoreWriter, WriterOptions};

/// Text as written, and its canonical form (`Display`).
#[rustfmt::skip]
const FORMS: &[(&str, &str)] = &[
    ("rtt_us > 1k", "rtt_us > 1000"),
    ("rtt_us 5", "rtt_us = 5"),
    ("RTT_US ge 0x10", "rtt_us >= 16"),
    ("rtt_us in [5, 1-3]", "rtt_us in [5 1-3]"),
    ("rtt_us exists", "rtt_us exists"),
    ("delta >= -2k", "delta >= -2000"),
    ("delta in [-5--1 3]", "delta in [-5--1 3]"),
    ("loss < 1.1k", "loss < 1100"),
    ("loss in [-1.5--0.5 2e-3]", "loss in [-1.5--0.5 0.002]"),
    (r#"app eq "a\"b""#, r#"app = "a\"b""#),
    (r#"app != "dns""#, r#"app != "dns""#),
    (r#"app ~ "x""#, r#"app ~ "x""#),
    ("tag 0X0A0B", "tag = 0x0a0b"),
    ("tag != 0x", "tag != 0x"),
    ("peer 10.0.0.0/8", "peer = 10.0.0.0/8"),
    ("peer != 192.0.2.1", "peer != 192.0.2.1/32"),
    ("peer in [10.0.0.0/8, ::1]", "peer in [10.0.0.0/8 ::1/128]"),
    ("not rtt_us < 5", "not rtt_us < 5"),
    ("vlan 10", "vlan = 10"),
    ("proto tcp and (rtt_us > 1M or app ~ \"s\")", "proto = 6 and (rtt_us > 1000000 or app ~ \"s\")"),
];

#[test]
fn each_kind_has_its_forms_and_a_canonical_text() {
    let reg = registry();
    for &(text, want) in FORMS {
        let e = parse_with(text, &reg).unwrap_or_else(|e| panic!("{text}: {}", e.render(text)));
        assert_eq!(e.to_string(), want, "{text}");
        assert_eq!(parse_with(want, &reg).as_ref(), Ok(&e), "{want}");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e, "{json}");
    }
}

fn records() -> Vec<FlowRecord> {
    let s = |x: &str| CustomValue::String(x.into());
    let u = CustomValue::Unsigned;
    let a = |x: &str| CustomValue::Address(x.parse().unwrap());
    let b = |x: &[u8]| CustomValue::Bytes(x.into());
    let extras: [Vec<(u16, CustomValue)>; 6] = [
        vec![
            (0, u(100)),
            (1, CustomValue::Signed(-3)),
            (2, CustomValue::Float(0.5)),
            (3, s("dns")),
            (4, b(&[0x0a, 0x0b])),
            (5, a("10.1.2.3")),
            (6, u(10)),
        ],
        vec![
            (5, a("2001:db8::1")),
            (0, u(2000)),
            (1, CustomValue::Signed(7)),
            (2, CustomValue::Float(1.5)),
            (3, s("https")),
            (4, b(&[0xff])),
        ],
        vec![],
        vec![
            (0, u(0)),
            (2, CustomValue::Float(f64::NAN)),
            (3, s("")),
            (5, a("192.0.2.1")),
        ],
        vec![
            (0, u(1_000_000)),
            (1, CustomValue::Signed(i64::MIN)),
            (3, s("it's \"quoted\"")),
            (4, b(&[])),
        ],
        // A value of another kind than the registry's (a decoder bug) counts as missing.
        vec![(0, s("100")), (5, u(7))],
    ];
    extras
        .into_iter()
        .enumerate()
        .map(|(i, extra)| FlowRecord {
            time_start: i as u64 * 1000,
            proto: if i % 2 == 1 { 6 } else { 17 },
            extra,
            ..Default::default()
        })
        .collect()
}

/// Filter, and the records of [`records`] it selects.
#[rustfmt::skip]
const SELECTS: &[(&str, &[usize])] = &[
    ("rtt_us > 1k", &[1, 4]),
    ("rtt_us = 100", &[0]),
    ("rtt_us != 100", &[1, 3, 4]),
    ("not rtt_us = 100", &[1, 2, 3, 4, 5]),
    ("rtt_us in [0-100 1M]", &[0, 3, 4]),
    ("rtt_us exists", &[0, 1, 3, 4]),
    ("not rtt_us exists", &[2, 5]),
    ("delta < 0", &[0, 4]),
    ("delta >= -3", &[0, 1]),
    ("delta in [-10--1]", &[0]),
    ("delta = -9223372036854775808", &[4]),
    ("loss > 1", &[1]),
    ("loss <= 0.5", &[0]),
    ("loss != 0.5", &[1, 3]),
    ("loss in [0.5-1 2]", &[0]),
    (r#"app = "dns""#, &[0]),
    (r#"app != "dns""#, &[1, 3, 4]),
    (r#"app ~ "s""#, &[0, 1, 4]),
    (r#"app ~ """#, &[0, 1, 3, 4]),
    (r#"app = "it's \"quoted\"""#, &[4]),
    ("tag = 0x0a0b", &[0]),
    ("tag != 0x0A0B", &[1, 4]),
    ("tag = 0x", &[4]),
    ("peer 10.0.0.0/8", &[0]),
    ("peer = 10.1.2.3", &[0]),
    ("peer != 10.0.0.0/8", &[1, 3]),
    ("peer in [192.0.2.0/24 2001:db8::/32]", &[1, 3]),
    ("peer in [0.0.0.0/0]", &[0, 3]),
    ("peer exists", &[0, 1, 3]),
    ("vlan 10", &[0]),
    ("proto tcp and rtt_us > 1k", &[1]),
    (r#"not (rtt_us > 1k or app ~ "s")"#, &[2, 3, 5]),
    (r#"rtt_us exists and not rtt_us > 1k"#, &[0, 3]),
];

#[test]
fn tests_select_by_kind_and_nulls_never_match_a_comparison() {
    let reg = registry();
    let recs = records();
    let batch = Batch::from_records(&recs, vec![0; recs.len()], &reg);
    let mut failures = Vec::new();
    for &(text, want) in SELECTS {
        let e = parse_with(text, &reg).unwrap_or_else(|e| panic!("{text}: {}", e.render(text)));
        let rows: Vec<usize> = (0..recs.len()).filter(|&i| e.matches(&recs[i])).collect();
        let cols: Vec<usize> = e.select(&batch).unwrap().iter_ones().collect();
        if rows != want || cols != want {
            failures.push(format!(
                "{text}: rows {rows:?}, columns {cols:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_caller_learns_which_extra_columns_to_load() {
    let reg = registry();
    let e = parse_with(
        r#"proto tcp and (app ~ "s" or not rtt_us > 5 or app = "x")"#,
        &reg,
    )
    .unwrap();
    assert_eq!(e.fields(), vec![Field::Proto]);
    assert_eq!(e.custom_names(), vec!["rtt_us", "app"]);
    // A batch without the column: the error names it.
    let recs = records();
    let without = Batch::from_records(&recs, vec![0; recs.len()], &Default::default());
    match e.select(&without) {
        Err(FilterError::ColumnMissing { field }) => assert!(e.custom_names().contains(&field)),
        other => panic!("{other:?}"),
    }
    let rc = flowdrill_model::RecordColumns::from_records(&recs);
    assert!(matches!(
        e.select(&rc),
        Err(FilterError::ColumnMissing { .. })
    ));
}

#[test]
fn an_unknown_name_lists_the_registered_elements() {
    let reg = registry();
    let err = parse_with("proto tcp and rtt > 5", &reg).unwrap_err();
    let FilterError::UnknownField {
        found,
        at,
        expected,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((found.as_str(), at.column), ("rtt", 15));
    for f in &reg.fields {
        assert!(expected.contains(&f.name), "{} not in {expected:?}", f.name);
    }
    assert!(expected.contains(&"src_as".to_string()));
    let j = err.to_json();
    assert_eq!(j["found"], "rtt");
    assert!(
        j["expected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "rtt_us")
    );
    // Without the registry, the elements are unknown names (and `vlan` is nfdump's keyword).
    let err = parse("rtt_us > 5").unwrap_err();
    assert!(
        matches!(&err, FilterError::UnknownField { expected, .. } if !expected.contains(&"rtt_us".to_string()))
    );
    assert!(matches!(
        parse("vlan 10"),
        Err(FilterError::Unsupported { .. })
    ));
}

#[test]
fn filters_on_extra_columns_read_back_from_the_store() {
    let reg = registry();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path()).unwrap();
    store.set_links("[defaults]\nbudget = \"1GB\"\n").unwrap();
    // 600 records in one 5-minute bin, each element present on some and null on others.
    let recs: Vec<FlowRecord> = (0..600u64)
        .map(|i| {
            let mut extra = Vec::new();
            if i % 3 != 0 {
                extra.push((0, CustomValue::Unsigned(i * 10)));
            }
            if i % 4 != 0 {
                extra.push((
                    3,
                    CustomValue::String(["dns", "http", "https"][i as usize % 3].into()),
                ));
            }
            if i % 5 != 0 {
                let a = format!("10.0.{}.{}", i % 7, i % 250);
                extra.push((5, CustomValue::Address(a.parse().unwrap())));
            }
            if i % 2 == 0 {
                extra.push((2, CustomValue::Float(i as f64 / 8.0)));
            }
            FlowRecord {
                time_start: i * 400,
                time_end: i * 400 + 10,
                bytes: 1500,
                packets: 1,
                proto: [6, 17][i as usize % 2],
                extra,
                ..Default::default()
            }
        })
        .collect();
    let mut w = StoreWriter::new(
        &store,
        WriterOptions {
            custom: reg.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    w.push_all(recs.clone()).unwrap();
    w.finish().unwrap();

    let store = Store::open(dir.path()).unwrap();
    let bins = store.bins("default", 0..u64::MAX, 0).unwrap();
    assert_eq!(bins.len(), 1);
    for text in [
        "rtt_us > 3k",
        "not rtt_us > 3k",
        r#"app = "http" and proto udp"#,
        r#"app ~ "http" or peer 10.0.3.0/24"#,
        "peer != 10.0.3.0/24 and loss < 20.5",
        "not loss exists",
    ] {
        let e = parse_with(text, &reg).unwrap();
        let mut fields = e.fields();
        fields.push(Field::TimeStart);
        let names = e.custom_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let batch = store
            .read_bin_with_extras(&bins[0], &fields, &names)
            .unwrap();
        assert_eq!(batch.len(), recs.len(), "unsampled");
        let starts = batch.u64s(Field::TimeStart).unwrap();
        let mut got: Vec<u64> = e
            .select(&batch)
            .unwrap()
            .iter_ones()
            .map(|i| starts[i])
            .collect();
        got.sort_unstable();
        let want: Vec<u64> = recs
            .iter()
            .filter(|r| e.matches(r))
            .map(|r| r.time_start)
            .collect();
        assert!(
            !want.is_empty() && want.len() < recs.len(),
            "{text} is selective"
        );
        assert_eq!(got, want, "{text}");
    }
}
