//! Drill-down end to end: for every row of top, hhh, hhh2, compare and scans, the selection
//! narrowed by the row's clause holds exactly the traffic the row reports.

use flowdrill_analysis::hhh::{IpLevels, PrefixMap, PrefixMapRow};
use flowdrill_model::{Addr, Field, FlowRecord};
use flowdrill_query::report::{Cell, Report};
use flowdrill_query::run::{self, Dim, Hhh2Params, HhhParams, KeySpec, TopParams};
use flowdrill_query::{Bound, Engine, Metric, Selection, drill};
use flowdrill_store::{Store, StoreWriter, WriterOptions};

const T0: u64 = 1_704_067_200_000;

fn records() -> Vec<FlowRecord> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..20_000)
        .map(|i| {
            let r = next();
            // A few heavy sources and ports among many light ones.
            let src = if r % 4 == 0 {
                0x0a00_0000 + (r >> 8) as u32 % 4
            } else {
                0x0a00_0000 + (r >> 8) as u32 % 60_000
            };
            let proto = [6, 6, 17, 1][(r >> 40) as usize % 4];
            let (sport, dport) = if proto == 1 {
                (0, 0x0800)
            } else {
                (
                    [80, 443, 53, 40_000 + (r >> 20) as u16 % 1000][(r >> 44) as usize % 4],
                    [443, 53, 8080, 1024 + (r >> 24) as u16 % 2000][(r >> 50) as usize % 4],
                )
            };
            FlowRecord {
                time_start: T0 + i * 10,
                time_end: T0 + i * 10 + 5,
                src_addr: Addr::from_v4_u32(src),
                dst_addr: Addr::from_v4_u32(0xc000_0200 + (r >> 32) as u32 % 16),
                src_port: sport,
                dst_port: dport,
                proto,
                packets: 1 + r % 50,
                bytes: 40 + r % 100_000,
                ..FlowRecord::default()
            }
        })
        .collect()
}

/// [`records`], record `i` starting at `start(i)` and lasting 5 ms.
fn records_at(start: impl Fn(usize) -> u64) -> Vec<FlowRecord> {
    records()
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.time_start = start(i);
            r.time_end = r.time_start + 5;
            r
        })
        .collect()
}

/// A store of [`records`] in its own directory per test (tests run in parallel).
fn engine(name: &str) -> Engine {
    engine_of(name, records())
}

fn engine_of(name: &str, records: Vec<FlowRecord>) -> Engine {
    let dir = std::env::temp_dir().join(format!("fd-drill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = Store::create(&dir).unwrap();
    s.set_links("[defaults]\nbin = \"5m\"\nbudget = \"20GB\"\n")
        .unwrap();
    let mut w = StoreWriter::new(&s, WriterOptions::default()).unwrap();
    w.push_all(records).unwrap();
    w.finish().unwrap();
    s.refresh().unwrap();
    Engine::new(s, 64 << 20)
}

fn total(e: &Engine, filter: &str) -> f64 {
    let sel = Selection {
        filter: Some(flowdrill_query::parse_filter(filter, &e.custom_fields()).unwrap()),
        ..Selection::all()
    };
    e.load(&sel, &[], Bound::Exact).unwrap().total().value
}

/// Checks every drillable row of section `sec`: the narrowed total equals column `col`.
/// Returns how many rows were checked.
fn check(e: &Engine, base: &str, r: &Report, sec: usize, col: &str) -> usize {
    let s = &r.sections[sec];
    assert_eq!(s.drill.len(), s.rows.len(), "{}: a clause per row", s.title);
    let c = s.col(col).unwrap();
    let mut checked = 0;
    for (i, row) in s.rows.iter().enumerate() {
        let Some(clause) = s.drill_clause(i) else {
            continue;
        };
        let want = match &row[c] {
            Cell::Int(v) => *v as f64,
            other => panic!("{col} is not exact: {other:?}"),
        };
        let got = total(e, &drill::narrow(base, clause));
        assert_eq!(got, want, "{}: row {i} '{clause}'", s.title);
        checked += 1;
    }
    checked
}

#[test]
fn every_row_narrows_to_exactly_its_traffic() {
    let e = engine("rows");
    let sel = Selection::all();
    for by in ["srcip", "srcip/24", "dstip", "dstport", "srcport", "proto"] {
        let r = run::top(
            &e,
            &sel,
            Bound::Exact,
            &TopParams {
                by: KeySpec::parse(by).unwrap(),
                n: 15,
            },
        )
        .unwrap();
        assert!(check(&e, "", &r, 0, "bytes") >= 3, "top {by}");
    }
    let levels = IpLevels::default();
    for dim in ["src", "dst", "app", "app-dst"] {
        let r = run::hhh(
            &e,
            &sel,
            Bound::Exact,
            &HhhParams {
                dim: Dim::parse(dim, &levels, None).unwrap(),
                share: 0.02,
                labels: None,
            },
        )
        .unwrap();
        assert!(check(&e, "", &r, 0, "value") >= 3, "hhh {dim}");
    }
    let r = run::hhh2(
        &e,
        &sel,
        Bound::Exact,
        &Hhh2Params {
            rows: Dim::parse("src", &levels, None).unwrap(),
            cols: Dim::parse("app-dst", &levels, None).unwrap(),
            share: 0.05,
        },
    )
    .unwrap();
    assert!(check(&e, "", &r, 1, "value") >= 2, "hhh2 axes");
}

#[test]
fn prefix_map_keys_narrow_by_longest_match() {
    let e = engine("map");
    let rows = [
        ("10.0.0.0/8", 64500, "Campus"),
        ("10.0.0.0/30", 64501, "Servers"),
        ("10.0.128.0/17", 64502, "Dorms"),
    ]
    .map(|(p, asn, org)| PrefixMapRow {
        prefix: p.parse().unwrap(),
        asn,
        org: org.into(),
    });
    let map = PrefixMap::new(&rows).unwrap();
    let r = run::hhh(
        &e,
        &Selection::all(),
        Bound::Exact,
        &HhhParams {
            dim: Dim::Map {
                field: Field::SrcAddr,
                map,
            },
            share: 0.01,
            labels: None,
        },
    )
    .unwrap();
    // The root, the three organisations, their ASes and prefixes, under a narrowing filter.
    assert!(check(&e, "", &r, 0, "value") >= 3);
    let base = "proto tcp or proto udp";
    let sel = Selection {
        filter: Some(flowdrill_query::parse_filter(base, &e.custom_fields()).unwrap()),
        metric: Metric::Bytes,
        ..Selection::all()
    };
    let r = run::top(
        &e,
        &sel,
        Bound::Exact,
        &TopParams {
            by: KeySpec::parse("dstport").unwrap(),
            n: 5,
        },
    )
    .unwrap();
    assert_eq!(check(&e, base, &r, 0, "bytes"), 5);
}

/// The (key, value) rows of `hhh` over `sel` in `dim`, and the report.
fn hhh_rows(e: &Engine, sel: &Selection, dim: Dim, share: f64) -> (Vec<(String, String)>, Report) {
    let h = run::hhh(
        e,
        sel,
        Bound::Exact,
        &HhhParams {
            dim,
            share,
            labels: None,
        },
    )
    .unwrap();
    let hs = &h.sections[0];
    let (hk, hv) = (hs.col("key").unwrap(), hs.col("value").unwrap());
    let rows = hs
        .rows
        .iter()
        .map(|row| (row[hk].text(), row[hv].text()))
        .collect();
    (rows, h)
}

/// The (key, total) rows of an analysis-level HHH report, as `hhh` prints exact ones.
fn report_rows<K: std::fmt::Display>(
    r: &flowdrill_analysis::hhh::HhhReport<K>,
) -> Vec<(String, String)> {
    r.rows
        .iter()
        .map(|row| (row.key.to_string(), format!("{}", row.total as i128)))
        .collect()
}

/// `top` and address HHH fold the bins without keeping them, reading matching rows in place
/// (engine with a cache) or bin chunks (without): under filters and a time range cutting the
/// bin, both equal a naive aggregation of the records `load` hands over.
#[test]
fn folded_analyses_equal_a_naive_aggregation_of_the_loaded_records() {
    let cached = engine("fold");
    let dir = cached.store().root().to_path_buf();
    let uncached = Engine::new(Store::open(&dir).unwrap(), 0);
    let selections = [
        ("", T0, T0 + 3_600_000),
        ("proto tcp", T0, T0 + 3_600_000),
        ("dst port 443 or proto udp", T0, T0 + 3_600_000),
        ("", T0 + 37_000, T0 + 151_000),
        ("not proto icmp", T0 + 5_000, T0 + 99_000),
    ];
    for (filter, start, end) in selections {
        let sel = Selection {
            filter: (!filter.is_empty())
                .then(|| flowdrill_query::parse_filter(filter, &cached.custom_fields()).unwrap()),
            range: start..end,
            ..Selection::all()
        };
        // The reference: records as `load` hands them over, summed per source.
        let l = cached.load(&sel, &[Field::SrcAddr], Bound::Exact).unwrap();
        let addrs = l.concat_u128(Field::SrcAddr);
        let w = l.all_weights();
        let mut sums: std::collections::BTreeMap<u128, f64> = Default::default();
        for (a, x) in addrs.iter().zip(&w) {
            *sums.entry(*a).or_default() += x;
        }
        let mut want: Vec<(u128, f64)> = sums.into_iter().collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(12);
        let levels = IpLevels::default();
        let hhh_want = flowdrill_analysis::hhh::hhh_addrs(
            &levels,
            &addrs,
            flowdrill_analysis::Weights::exact(&w),
            flowdrill_analysis::hhh::Threshold::Share(0.03),
        )
        .unwrap();
        for (name, e) in [("cached", &cached), ("uncached", &uncached)] {
            let what = format!("{name} engine, filter '{filter}', {start}..{end}");
            let p = TopParams {
                by: KeySpec::parse("srcip").unwrap(),
                n: 12,
            };
            let r = run::top(e, &sel, Bound::Exact, &p).unwrap();
            let s = &r.sections[0];
            let (k, b) = (s.col("key").unwrap(), s.col("bytes").unwrap());
            let got: Vec<(String, f64)> = s
                .rows
                .iter()
                .map(|row| {
                    let v = match &row[b] {
                        Cell::Int(v) => *v as f64,
                        other => panic!("bytes not exact: {other:?}"),
                    };
                    (row[k].text(), v)
                })
                .collect();
            let expect: Vec<(String, f64)> = want
                .iter()
                .map(|(a, v)| (Addr(*a).to_string(), *v))
                .collect();
            assert_eq!(got, expect, "top: {what}");
            assert_eq!(r.meta.records, l.records(), "records: {what}");
            assert_eq!(r.meta.total, l.total().value, "total: {what}");
            let (got, _) = hhh_rows(e, &sel, Dim::parse("src", &levels, None).unwrap(), 0.03);
            assert_eq!(got, report_rows(&hhh_want), "hhh: {what}");
            // The application hierarchy, summed by leaf as the bins are folded.
            let l = cached
                .load(
                    &sel,
                    &[Field::Proto, Field::SrcPort, Field::DstPort],
                    Bound::Exact,
                )
                .unwrap();
            let app = flowdrill_analysis::hhh::AppHierarchy {
                side: flowdrill_analysis::hhh::PortSide::Destination,
            };
            let want = flowdrill_analysis::hhh::hhh(
                &app,
                &run::app_leaves(&l),
                flowdrill_analysis::Weights::exact(&l.all_weights()),
                flowdrill_analysis::hhh::Threshold::Share(0.02),
            )
            .unwrap();
            let (got, h) = hhh_rows(e, &sel, Dim::parse("app-dst", &levels, None).unwrap(), 0.02);
            let expect = report_rows(&want);
            assert!(expect.len() > 3, "{what}: {expect:?}");
            assert_eq!(got, expect, "hhh app-dst: {what}");
            assert_eq!(h.meta.total, l.total().value, "{what}");
        }
    }
}

/// `series` folds the bins into cells without keeping the records (over the bins of every
/// file read, then cut to the bins of the files with matching records, or folded again): under
/// filters and time ranges cutting a bin, with and without the engine's cache, each of its
/// values equals the series the analysis makes of the records `load` hands over.
#[test]
fn folded_series_equals_the_series_of_the_loaded_records() {
    use flowdrill_analysis::series::{
        Categories, LocalNets, PortKey, SeriesInput, SeriesSpec, series,
    };
    use flowdrill_query::run::{CategorySet, SeriesParams, SeriesValue};
    // The records over two hours (24 files), those of the first six minutes to port 100
    // (within every file's range of ports: no file is left out by its statistics).
    let spread: Vec<FlowRecord> = records()
        .into_iter()
        .enumerate()
        .map(|(i, r)| FlowRecord {
            time_start: T0 + i as u64 * 360,
            time_end: T0 + i as u64 * 360 + [5, 900, 70_000][i % 3],
            dst_port: if i < 1000 { 100 } else { r.dst_port },
            ..r
        })
        .collect();
    let mut cases = Vec::new();
    for (name, recs) in [("series", records()), ("series-spread", spread)] {
        let cached = engine_of(name, recs);
        let dir = cached.store().root().to_path_buf();
        cases.push((cached, Engine::new(Store::open(&dir).unwrap(), 0)));
    }
    let selections = [
        (0, "", T0, T0 + 3_600_000),
        (0, "proto udp", T0, T0 + 3_600_000),
        (0, "", T0 + 37_000, T0 + 151_000),
        (0, "not proto icmp", T0 + 5_000, T0 + 99_000),
        (1, "", T0, T0 + 7_200_000),
        (1, "proto tcp", T0 + 1_000_000, T0 + 4_000_000),
        // Matching records in two of the 24 files: 10-second bins, where all the files
        // would give 1-minute ones (folded again).
        (1, "dst port 100", T0, T0 + 7_200_000),
    ];
    let local: Vec<flowdrill_model::Prefix> = vec!["10.0.0.0/8".parse().unwrap()];
    for (case, filter, start, end) in selections {
        let (cached, uncached) = (&cases[case].0, &cases[case].1);
        let sel = Selection {
            filter: (!filter.is_empty())
                .then(|| flowdrill_query::parse_filter(filter, &cached.custom_fields()).unwrap()),
            range: start..end,
            ..Selection::all()
        };
        let fields = [
            Field::Proto,
            Field::SrcPort,
            Field::DstPort,
            Field::TimeStart,
            Field::TimeEnd,
            Field::SrcAddr,
            Field::DstAddr,
        ];
        let l = cached.load(&sel, &fields, Bound::Exact).unwrap();
        assert!(l.records() > 0, "filter '{filter}': no records");
        let (p, sp, dp) = (
            l.concat_u64(Field::Proto),
            l.concat_u64(Field::SrcPort),
            l.concat_u64(Field::DstPort),
        );
        let cats = Categories::brownlee();
        let category: Vec<u16> = (0..p.len())
            .map(|i| {
                cats.classify(&PortKey {
                    proto: p[i] as u8,
                    sport: sp[i] as u16,
                    dport: dp[i] as u16,
                })
            })
            .collect();
        let weights = |m: Metric| {
            let mut w = Vec::new();
            for i in 0..l.batches.len() {
                w.extend(l.weights_of(i, m).0);
            }
            w
        };
        let (bytes, packets, flows) = (
            weights(Metric::Bytes),
            weights(Metric::Packets),
            weights(Metric::Flows),
        );
        let (ts, te) = (l.concat_u64(Field::TimeStart), l.concat_u64(Field::TimeEnd));
        let (src, dst) = (l.concat_u128(Field::SrcAddr), l.concat_u128(Field::DstAddr));
        // The range `load` read: its files', within the selection.
        let lo = l.batches.iter().map(|(b, _)| b.start).min().unwrap();
        let hi = l.batches.iter().map(|(b, _)| b.end).max().unwrap();
        let (lo, hi) = (start.max(lo), end.min(hi));
        for (value, split) in [
            (SeriesValue::Metric, false),
            (SeriesValue::Active, false),
            (SeriesValue::Sources, false),
            (SeriesValue::Destinations, true),
            (SeriesValue::Metric, true),
        ] {
            let params = SeriesParams {
                categories: CategorySet::Brownlee,
                bin_ms: None,
                value,
                local: split.then(|| local.clone()),
            };
            for (name, e) in [("cached", cached), ("uncached", uncached)] {
                let what = format!("{name}, filter '{filter}', {start}..{end}, {value:?}");
                let r = run::series(e, &sel, Bound::Exact, &params).unwrap();
                assert_eq!((r.meta.start_ms, r.meta.end_ms), (lo, hi), "{what}");
                assert_eq!(r.meta.records, l.records(), "{what}");
                assert_eq!(r.meta.total, l.total().value, "{what}");
                let bin_ms: u64 = r.meta.params["bin=".len()..]
                    .split('s')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    * 1000;
                let spec = SeriesSpec {
                    start_ms: lo - lo % bin_ms,
                    end_ms: hi.max(lo + 1000),
                    bin_ms,
                    categories: cats.len(),
                    local: split.then(|| LocalNets {
                        prefixes: local.clone(),
                    }),
                };
                let want = series(
                    &spec,
                    SeriesInput {
                        start_ms: &ts,
                        end_ms: &te,
                        category: &category,
                        bytes: flowdrill_analysis::Weights::exact(&bytes),
                        packets: flowdrill_analysis::Weights::exact(&packets),
                        flows: flowdrill_analysis::Weights::exact(&flows),
                        src: Some(&src),
                        dst: Some(&dst),
                    },
                )
                .unwrap();
                let s = &r.sections[0];
                let v = s.col("value").unwrap();
                assert_eq!(
                    s.rows.len(),
                    want.bins * want.categories * want.directions.len(),
                    "{what}"
                );
                let mut k = 0;
                for b in 0..want.bins {
                    for c in 0..want.categories {
                        for d in 0..want.directions.len() {
                            let cell = want.cell(b, c, d);
                            let expect = match value {
                                SeriesValue::Metric => cell.bytes.value,
                                SeriesValue::Active => cell.active_flows,
                                SeriesValue::Sources => cell.sources.count(),
                                SeriesValue::Destinations => cell.destinations.count(),
                            };
                            let got: f64 = s.rows[k][v].text().parse().unwrap();
                            assert_eq!(got, expect, "{what}: bin {b} category {c} direction {d}");
                            k += 1;
                        }
                    }
                }
            }
        }
    }
}

/// `dist` counts flows by size per time bin as it folds the bins: the distribution and each
/// bin's "ignoring" row equal those of the records `load` hands over.
#[test]
fn folded_dist_equals_the_distribution_of_the_loaded_records() {
    use flowdrill_analysis::Weights;
    use flowdrill_analysis::dist::size_distribution;
    use flowdrill_query::run::DistParams;
    let spread: Vec<FlowRecord> = records()
        .into_iter()
        .enumerate()
        .map(|(i, r)| FlowRecord {
            time_start: T0 + i as u64 * 360,
            time_end: T0 + i as u64 * 360 + 5,
            ..r
        })
        .collect();
    let cached = engine_of("dist", spread);
    let dir = cached.store().root().to_path_buf();
    let uncached = Engine::new(Store::open(&dir).unwrap(), 0);
    for (filter, start, end) in [
        ("", T0, T0 + 7_200_000),
        ("proto udp", T0 + 1_000_000, T0 + 4_000_000),
        ("dst port 443", T0 + 37_000, T0 + 1_151_000),
    ] {
        let sel = Selection {
            filter: (!filter.is_empty())
                .then(|| flowdrill_query::parse_filter(filter, &cached.custom_fields()).unwrap()),
            range: start..end,
            ..Selection::all()
        };
        let l = cached.load(&sel, &[Field::Packets], Bound::Exact).unwrap();
        let of = |parts: &[usize]| {
            let mut size = Vec::new();
            let mut w = [(); 3].map(|_| Vec::new());
            for &i in parts {
                size.extend(l.batches[i].1.u64s(Field::Packets).unwrap());
                for (k, m) in [Metric::Flows, Metric::Bytes, Metric::Packets]
                    .into_iter()
                    .enumerate()
                {
                    w[k].extend(l.weights_of(i, m).0);
                }
            }
            size_distribution(
                &size,
                Weights::exact(&w[0]),
                Weights::exact(&w[1]),
                Weights::exact(&w[2]),
            )
            .unwrap()
        };
        let all: Vec<usize> = (0..l.batches.len()).collect();
        let whole = of(&all);
        let mut by_start: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
        for (i, (b, _)) in l.batches.iter().enumerate() {
            by_start.entry(b.start).or_default().push(i);
        }
        assert!(by_start.len() > 3, "filter '{filter}': too few bins");
        for (name, e) in [("cached", &cached), ("uncached", &uncached)] {
            let what = format!("{name}, filter '{filter}'");
            let r = run::dist(e, &sel, Bound::Exact, &DistParams { ignore: 2 }).unwrap();
            assert_eq!(r.meta.total, l.total().value, "{what}");
            let s = &r.sections[0];
            let got: Vec<Vec<String>> = s
                .rows
                .iter()
                .map(|row| {
                    ["packets_lo", "flows", "packets", "bytes"]
                        .iter()
                        .map(|c| row[s.col(c).unwrap()].text())
                        .collect()
                })
                .collect();
            let want: Vec<Vec<String>> = whole
                .rows
                .iter()
                .map(|row| {
                    vec![
                        row.lo.to_string(),
                        (row.totals.flows.value as u64).to_string(),
                        (row.totals.packets.value as u64).to_string(),
                        (row.totals.bytes.value as u64).to_string(),
                    ]
                })
                .collect();
            assert_eq!(got, want, "{what}");
            let per = &r.sections[1];
            let dropped = per.col("flows_dropped").unwrap();
            let mut want: Vec<String> = by_start
                .values()
                .map(|parts| (of(parts).ignoring_up_to(2).totals.flows.value as u64).to_string())
                .collect();
            want.push((whole.ignoring_up_to(2).totals.flows.value as u64).to_string());
            let got: Vec<String> = per.rows.iter().map(|row| row[dropped].text()).collect();
            assert_eq!(got, want, "{what}");
        }
    }
}

/// `compare` folds each selection into sums per key: its rows (the largest changes, before and
/// after) equal sums of the records `load` hands over for each selection.
#[test]
fn folded_compare_equals_sums_of_the_loaded_records() {
    use flowdrill_query::run::CompareParams;
    let e = engine("compare");
    let uncached = Engine::new(Store::open(e.store().root()).unwrap(), 0);
    let sel = |filter: &str, start: u64, end: u64| Selection {
        filter: (!filter.is_empty())
            .then(|| flowdrill_query::parse_filter(filter, &e.custom_fields()).unwrap()),
        range: start..end,
        ..Selection::all()
    };
    for (by, filter) in [("dstport", ""), ("srcip/24", "proto tcp"), ("srcip", "")] {
        let (after, before) = (
            sel(filter, T0 + 100_000, T0 + 200_000),
            sel(filter, T0, T0 + 100_000),
        );
        let spec = KeySpec::parse(by).unwrap();
        let sums = |s: &Selection| {
            let l = e.load(s, &[spec.field], Bound::Exact).unwrap();
            let w = l.all_weights();
            let mut m: std::collections::BTreeMap<String, f64> = Default::default();
            let keys: Vec<String> = if by.starts_with("srcip") {
                l.concat_u128(Field::SrcAddr)
                    .into_iter()
                    .map(|a| spec.show(Addr(a).masked(spec.v4_len).0))
                    .collect()
            } else {
                l.concat_u64(Field::DstPort)
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            };
            for (k, x) in keys.into_iter().zip(w) {
                *m.entry(k).or_default() += x;
            }
            m
        };
        let (b, a) = (sums(&before), sums(&after));
        for (name, eng) in [("cached", &e), ("uncached", &uncached)] {
            let r = run::compare(
                eng,
                &after,
                Bound::Exact,
                &CompareParams {
                    by: spec,
                    n: 25,
                    before: before.clone(),
                },
            )
            .unwrap();
            let s = &r.sections[0];
            assert!(s.rows.len() > 5, "{name} {by}: {} rows", s.rows.len());
            let col = |row: &Vec<Cell>, c: &str| row[s.col(c).unwrap()].text();
            for row in &s.rows {
                let k = col(row, "key");
                let want = |m: &std::collections::BTreeMap<String, f64>| {
                    format!("{}", m.get(&k).copied().unwrap_or(0.0) as i64)
                };
                assert_eq!(col(row, "before"), want(&b), "{name} {by} {k}");
                assert_eq!(col(row, "after"), want(&a), "{name} {by} {k}");
            }
        }
    }
}

/// `top` packs each group's flows, packets and bytes in 96 bits sized from the catalog's
/// totals; a catalog that understates them (a file replaced behind its back) must not make
/// the sums overflow into each other: the workers notice that they added more than the
/// fields hold and the fold runs again with the sums apart. The answers stay those of the
/// catalog that tells the truth, over several bins (so several workers when the machine has
/// the cores) and a filter.
#[test]
fn top_stays_exact_when_the_catalog_understates_the_totals() {
    // 20,000 records over 40 minutes: eight 5-minute bins.
    let recs = records_at(|i| T0 + i as u64 * 120);
    let e = engine_of("catalog", recs);
    let dir = e.store().root().to_path_buf();
    let answers = |e: &Engine| -> Vec<String> {
        let mut out = Vec::new();
        for (by, filter) in [
            ("srcip", ""),
            ("dstip", ""),
            ("dstport", ""),
            ("srcip", "proto tcp"),
        ] {
            let sel = Selection {
                filter: (!filter.is_empty())
                    .then(|| flowdrill_query::parse_filter(filter, &e.custom_fields()).unwrap()),
                ..Selection::all()
            };
            let p = TopParams {
                by: KeySpec::parse(by).unwrap(),
                n: 30,
            };
            let r = run::top(e, &sel, Bound::Exact, &p).unwrap();
            assert!(r.meta.exact, "{by}: exact");
            let rows: Vec<String> = r.sections[0]
                .rows
                .iter()
                .map(|row| row.iter().map(Cell::text).collect::<Vec<_>>().join(","))
                .collect();
            assert!(rows.len() >= 16, "{by} '{filter}': {} rows", rows.len());
            out.push(format!("{by} '{filter}': {}", rows.join(" | ")));
        }
        out
    };
    let want = answers(&e);
    let catalog = dir.join("_catalog.json");
    let text = std::fs::read_to_string(&catalog).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let bins = json["bins"].as_array_mut().unwrap();
    assert!(bins.len() >= 8, "{} bins", bins.len());
    for b in bins.iter_mut() {
        b["packets"] = 1.into();
        b["bytes"] = 1.into();
    }
    std::fs::write(&catalog, serde_json::to_string(&json).unwrap()).unwrap();
    let lied = Engine::new(Store::open(&dir).unwrap(), 0);
    let b0 = &lied.store().bins("default", 0..u64::MAX, 0).unwrap()[0];
    assert_eq!(
        (b0.packets, b0.bytes),
        (1, 1),
        "the store reads the catalog as written"
    );
    assert_eq!(answers(&lied), want);
}

/// A balanced fold hands every bin to exactly one worker, whichever is free (the largest
/// first), and folds the same records as the contiguous runs; with the predicate false it is
/// the runs.
#[test]
fn a_balanced_fold_reads_every_bin_once() {
    use flowdrill_query::{FoldPart, Schedule};
    // Uneven bins: the first half of the records in one 5-minute bin, the rest spread.
    let recs = records_at(|i| T0 + if i < 10_000 { i as u64 } else { i as u64 * 180 });
    let e = Engine::new(engine_of("balanced", recs).store().clone(), 0);
    let bins = e.store().bins("default", 0..u64::MAX, 0).unwrap();
    assert!(bins.len() >= 6, "{} bins", bins.len());
    // Each worker's state: the bins it folded, with their rows and bytes.
    type Seen = Vec<(String, u64, u64)>;
    let fold = |schedule: Schedule<'_>| -> Vec<Seen> {
        let (l, states) = e
            .fold_scheduled(
                &Selection::all(),
                &[Field::Bytes],
                Bound::Exact,
                schedule,
                |_: FoldPart<'_>| Seen::new(),
                |s: &mut Seen, bin, b, _, rows| {
                    let bytes = b.u64s(Field::Bytes).unwrap();
                    let (n, sum) = match rows {
                        Some(r) => (r.len(), r.iter().map(|&i| bytes[i as usize]).sum()),
                        None => (bytes.len(), bytes.iter().sum()),
                    };
                    s.push((bin.path.display().to_string(), n as u64, sum));
                    Ok::<(), flowdrill_query::QueryError>(())
                },
                |_| {},
            )
            .unwrap();
        assert_eq!(l.folded.unwrap().records, 20_000);
        states
    };
    // Chunks of one bin go to one worker, together.
    let per_bin = |states: &[Seen]| {
        let mut m: std::collections::BTreeMap<String, (u64, u64, Vec<usize>)> = Default::default();
        for (w, s) in states.iter().enumerate() {
            for (path, n, sum) in s {
                let e = m.entry(path.clone()).or_default();
                e.0 += n;
                e.1 += sum;
                if !e.2.contains(&w) {
                    e.2.push(w);
                }
            }
        }
        m
    };
    let runs = per_bin(&fold(Schedule::Runs));
    let always = |_: &[flowdrill_store::BinRef], _: bool| true;
    let states = fold(Schedule::Balanced(&always));
    let balanced = per_bin(&states);
    assert_eq!(runs.len(), bins.len());
    assert!(
        balanced.values().all(|(_, _, w)| w.len() == 1),
        "{balanced:?}"
    );
    let sums = |m: &std::collections::BTreeMap<String, (u64, u64, Vec<usize>)>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.0, v.1))
            .collect::<Vec<_>>()
    };
    assert_eq!(sums(&balanced), sums(&runs));
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(bins.len());
    assert_eq!(states.len(), workers);
    // Each worker claims the largest bin left: its bins come largest first (which worker
    // gets which depends on timing: on a small store one may take them all).
    for s in &states {
        let mut paths: Vec<&String> = s.iter().map(|(p, _, _)| p).collect();
        paths.dedup();
        let sizes: Vec<u64> = paths.iter().map(|p| runs[*p].0).collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    }
    let never = |_: &[flowdrill_store::BinRef], _: bool| false;
    let as_runs = fold(Schedule::Balanced(&never));
    assert_eq!(as_runs, fold(Schedule::Runs));
}
