//! Randomized comparison of the two evaluation strategies (DataFusion's fuzz style): random
//! well-typed predicates on random records; the column-wise evaluator must select exactly
//! what the row evaluator selects, simplification must not change the selection, and the
//! text and JSON forms must read back to the same predicate. Records carry user-defined
//! elements (`util::registry`), each missing (null) on some records, and predicates test
//! them; batches are the store's [`Batch`], which lends both kinds of columns.

use crate::util::{Rng, registry};
use flowdrill_filter::{Bitmap, CmpOp, CustomTest, Expr, Float, NumTest, parse_with};
use flowdrill_model::{Addr, CustomKind, CustomValue, FIELDS, Field, FlowRecord, Kind, Prefix};
use flowdrill_store::Batch;

const ADDRS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.200",
    "10.1.0.1",
    "192.168.1.1",
    "192.168.1.77",
    "0.0.0.0",
    "255.255.255.255",
    "2001:db8::1",
    "2001:db8:1::1",
    "fe80::1",
    "::",
    "::1",
    "::10.0.0.1",
    "ff02::fb",
];

const OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

fn addr(rng: &mut Rng) -> Addr {
    rng.pick(ADDRS).parse().expect("valid address")
}

/// A value near the interesting points of a field of `bits` bits.
fn value(rng: &mut Rng, max: u64) -> u64 {
    let pool = [
        0,
        1,
        2,
        6,
        17,
        22,
        53,
        80,
        443,
        1023,
        1024,
        max / 2,
        max - 1,
        max,
    ];
    match rng.below(4) {
        0 => rng.next_u64() & max,
        1 => rng.below(64).min(max),
        _ => *rng.pick(&pool),
    }
}

fn max_of(f: Field) -> u64 {
    match f.info().kind {
        Kind::Unsigned(64) | Kind::TimeMs => u64::MAX,
        Kind::Unsigned(b) => (1 << b) - 1,
        Kind::Address => unreachable!("integer field"),
    }
}

pub(crate) fn record(rng: &mut Rng) -> FlowRecord {
    let mut v = |f: Field| value(rng, max_of(f));
    let mut r = FlowRecord {
        time_start: v(Field::TimeStart),
        time_end: v(Field::TimeEnd),
        src_port: v(Field::SrcPort) as u16,
        dst_port: v(Field::DstPort) as u16,
        proto: v(Field::Proto) as u8,
        tcp_flags: v(Field::TcpFlags) as u8,
        tos: v(Field::Tos) as u8,
        packets: v(Field::Packets),
        bytes: v(Field::Bytes),
        in_if: v(Field::InIf) as u32,
        out_if: v(Field::OutIf) as u32,
        src_as: v(Field::SrcAs) as u32,
        dst_as: v(Field::DstAs) as u32,
        src_mask: v(Field::SrcMask) as u8,
        dst_mask: v(Field::DstMask) as u8,
        domain: v(Field::Domain) as u32,
        sampling_rate: v(Field::SamplingRate) as u32,
        ..Default::default()
    };
    r.src_addr = addr(rng);
    r.dst_addr = addr(rng);
    r.next_hop = addr(rng);
    r.exporter = addr(rng);
    r.extra = extras(rng);
    r
}

/// Every schema column and every element of the registry as a column.
pub(crate) fn batch(recs: &[FlowRecord]) -> Batch {
    Batch::from_records(recs, vec![0; recs.len()], &registry())
}

/// Values of the user-defined elements of `util::registry`, by kind, for records and
/// constants: edges, nulls' neighbours, and (in records only) NaN and infinities.
const SIGNED: &[i64] = &[i64::MIN, -1000, -5, -1, 0, 1, 5, 1000, i64::MAX];
const FLOATS: &[f64] = &[-1.5, 0.0, 0.5, 1.5, 1000.25, 1e300, -1e-300];
const TEXTS: &[&str] = &["", "dns", "http", "https", "DNS", "a\"b\\c", "ht", "s"];
const BYTES: &[&[u8]] = &[&[], &[0], &[0x0a, 0x0b], &[0xff], &[0x0a]];

/// Some of the registry's elements, each of its kind, sometimes of another kind (a decoder
/// bug: the store keeps it as null, the row evaluator must ignore it too).
fn extras(rng: &mut Rng) -> Vec<(u16, CustomValue)> {
    let reg = registry();
    let mut out = Vec::new();
    for (i, def) in reg.fields.iter().enumerate() {
        if rng.below(4) == 0 {
            continue;
        }
        let kind = if rng.below(50) == 0 {
            CustomKind::String
        } else {
            def.kind
        };
        let v = match kind {
            CustomKind::Unsigned => CustomValue::Unsigned(value(rng, u64::MAX)),
            CustomKind::Signed => CustomValue::Signed(*rng.pick(SIGNED)),
            CustomKind::Float => CustomValue::Float(match rng.below(10) {
                0 => *rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]),
                _ => *rng.pick(FLOATS),
            }),
            CustomKind::String => CustomValue::String((*rng.pick(TEXTS)).into()),
            CustomKind::Bytes => CustomValue::Bytes((*rng.pick(BYTES)).into()),
            CustomKind::Address => CustomValue::Address(addr(rng)),
        };
        out.push((i as u16, v));
    }
    out
}

fn prefix(rng: &mut Rng) -> Prefix {
    let a = addr(rng);
    let len = rng.below(a.family_bits() as u64 + 1) as u8;
    match rng.below(6) {
        0 => Prefix::root_v4(),
        1 => Prefix::root_v6(),
        _ => Prefix::new(a, len),
    }
}

fn num_test<T: Copy + PartialOrd>(rng: &mut Rng, mut v: impl FnMut(&mut Rng) -> T) -> NumTest<T> {
    if rng.below(3) == 0 {
        let ranges = (0..rng.below(4))
            .map(|_| {
                let (a, b) = (v(rng), v(rng));
                if a <= b { (a, b) } else { (b, a) }
            })
            .collect();
        return NumTest::In { ranges };
    }
    NumTest::Cmp {
        cmp: *rng.pick(&OPS),
        value: v(rng),
    }
}

/// A random well-typed test on a random element of the registry.
pub(crate) fn custom_leaf(rng: &mut Rng) -> Expr {
    let reg = registry();
    let index = rng.below(reg.fields.len() as u64) as usize;
    let def = &reg.fields[index];
    let eq_ne = |rng: &mut Rng| *rng.pick(&[CmpOp::Eq, CmpOp::Ne]);
    let test = if rng.below(8) == 0 {
        CustomTest::Exists(def.kind)
    } else {
        match def.kind {
            CustomKind::Unsigned => CustomTest::Unsigned(num_test(rng, |r| value(r, u64::MAX))),
            CustomKind::Signed => CustomTest::Signed(num_test(rng, |r| *r.pick(SIGNED))),
            CustomKind::Float => CustomTest::Float(num_test(rng, |r| {
                Float::new(*r.pick(FLOATS)).expect("finite")
            })),
            CustomKind::String if rng.below(3) == 0 => CustomTest::Contains {
                text: rng.pick(TEXTS).to_string(),
            },
            CustomKind::String => CustomTest::String {
                cmp: eq_ne(rng),
                text: rng.pick(TEXTS).to_string(),
            },
            CustomKind::Bytes => CustomTest::Bytes {
                cmp: eq_ne(rng),
                value: rng.pick(BYTES).to_vec(),
            },
            CustomKind::Address if rng.below(2) == 0 => CustomTest::AddressIn {
                prefixes: (0..rng.below(3)).map(|_| prefix(rng)).collect(),
            },
            CustomKind::Address => CustomTest::Address {
                cmp: eq_ne(rng),
                prefix: prefix(rng),
            },
        }
    };
    Expr::Custom {
        index: index as u16,
        name: def.name.clone(),
        test,
    }
}

fn int_fields() -> Vec<Field> {
    FIELDS
        .iter()
        .filter(|f| f.kind != Kind::Address)
        .map(|f| f.field)
        .collect()
}

fn addr_fields() -> Vec<Field> {
    FIELDS
        .iter()
        .filter(|f| f.kind == Kind::Address)
        .map(|f| f.field)
        .collect()
}

pub(crate) fn expr(rng: &mut Rng, depth: u32) -> Expr {
    let ints = int_fields();
    let addrs = addr_fields();
    let pick = if depth == 0 {
        rng.below(7)
    } else {
        rng.below(12)
    };
    match pick {
        0 => {
            let f = *rng.pick(&ints);
            let max = max_of(f);
            // Sometimes a constant above the field's width, to exercise folding.
            let v = if rng.below(8) == 0 && max < u64::MAX {
                max + 1 + rng.below(3)
            } else {
                value(rng, max)
            };
            Expr::cmp(f, *rng.pick(&OPS), v)
        }
        1 => {
            let f = *rng.pick(&ints);
            let max = max_of(f);
            let ranges = (0..rng.below(4))
                .map(|_| {
                    let a = value(rng, max);
                    let b = value(rng, max);
                    (a.min(b), a.max(b))
                })
                .collect();
            Expr::In { field: f, ranges }
        }
        2 => {
            let f = *rng.pick(&addrs);
            let prefixes = (0..rng.below(3) + 1).map(|_| prefix(rng)).collect();
            Expr::Prefix { field: f, prefixes }
        }
        3 => {
            let f = *rng.pick(&ints);
            let max = max_of(f);
            let mask = value(rng, max) | (1 << rng.below(8));
            let value = if rng.below(2) == 0 {
                mask
            } else {
                value(rng, max) & mask
            };
            Expr::Bits {
                field: f,
                mask,
                value,
            }
        }
        4 => Expr::True,
        5 => Expr::False,
        6 | 11 => custom_leaf(rng),
        7 | 8 => Expr::and((0..rng.below(4)).map(|_| expr(rng, depth - 1)).collect()),
        9 => Expr::or((0..rng.below(4)).map(|_| expr(rng, depth - 1)).collect()),
        _ => Expr::not(expr(rng, depth - 1)),
    }
}

#[test]
fn column_wise_equals_row_wise_on_random_predicates() {
    let mut rng = Rng(0x5eed_f10d_d111_0001);
    // 1000 records: 15 full words and a partial one.
    let recs: Vec<FlowRecord> = (0..1000).map(|_| record(&mut rng)).collect();
    let cols = batch(&recs);
    let reg = registry();
    let (mut selected_some, mut selected_custom) = (0, 0);
    for round in 0..3000 {
        let raw = expr(&mut rng, 4);
        let simple = raw.clone().simplify();
        let by_row: Vec<bool> = recs.iter().map(|r| raw.matches(r)).collect();
        let simple_rows: Vec<bool> = recs.iter().map(|r| simple.matches(r)).collect();
        assert_eq!(
            simple_rows, by_row,
            "round {round}: simplify changed {raw:?} into {simple}"
        );
        let by_col = simple.select(&cols).expect("every column present");
        assert_eq!(
            by_col.to_bools(),
            by_row,
            "round {round}: column-wise {simple}"
        );
        let raw_col = raw.select(&cols).expect("every column present");
        assert_eq!(
            raw_col.to_bools(),
            by_row,
            "round {round}: unsimplified column-wise {raw:?}"
        );
        assert_eq!(by_col.count_ones(), by_row.iter().filter(|b| **b).count());
        // Within a random mask (some words empty, some full, some sparse): exactly e & mask.
        let mask_bools: Vec<bool> = (0..recs.len())
            .map(|i| match (i / 64 + round) % 3 {
                0 => false,
                1 => true,
                _ => rng.below(4) == 0,
            })
            .collect();
        let mask = Bitmap::from_bools(&mask_bools);
        let within = simple.select_within(&cols, Some(&mask)).expect("columns");
        let want: Vec<bool> = by_row
            .iter()
            .zip(&mask_bools)
            .map(|(a, b)| *a && *b)
            .collect();
        assert_eq!(
            within.to_bools(),
            want,
            "round {round}: within a mask {simple}"
        );
        // The canonical text and the JSON form read back to the same predicate.
        let text = simple.to_string();
        assert_eq!(
            parse_with(&text, &reg).as_ref(),
            Ok(&simple),
            "round {round}: text {text:?}"
        );
        let json = serde_json::to_string(&simple).expect("serialises");
        let back: Expr = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, simple, "round {round}: JSON {json}");
        // Simplifying twice changes nothing.
        assert_eq!(
            simple.clone().simplify(),
            simple,
            "round {round}: not idempotent"
        );
        if by_col.count_ones() > 0 && by_col.count_ones() < recs.len() {
            selected_some += 1;
            selected_custom += !simple.custom_names().is_empty() as usize;
        }
    }
    // The generator must produce selective predicates, not only constants.
    assert!(
        selected_some > 500 && selected_custom > 200,
        "only {selected_some} selective predicates, {selected_custom} on user-defined elements"
    );
}

#[test]
fn parsed_filters_agree_row_and_column_wise_on_random_records() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let recs: Vec<FlowRecord> = (0..777)
        .map(|_| {
            let mut r = record(&mut rng);
            r.proto = *rng.pick(&[1u8, 6, 17, 47, 58]);
            r
        })
        .collect();
    let cols = batch(&recs);
    let reg = registry();
    let terms = [
        "proto tcp",
        "proto udp",
        "port 80",
        "dst port 443",
        "src port > 1023",
        "port in [22 53 80]",
        "flags S",
        "flags SA",
        "not flags A",
        "flags 2",
        "host 10.0.0.1",
        "net 10.0.0.0/8",
        "src net 192.168.0.0/16",
        "net 2001:db8::/32",
        "inet6",
        "inet",
        "bytes > 1k",
        "packets < 10",
        "tos 0",
        "in if 2",
        "out if 1",
        "if 0",
        "as 53",
        "src as > 1000",
        "next ip ::1",
        "icmp-type 0",
        "icmp-code 1",
        "mask 24",
        "src_as > 100",
        "sampling_rate = 1",
        "any",
        "ip in [10.0.0.0/24 ::1]",
        "exporter = 0.0.0.0",
        "rtt_us > 1k",
        "rtt_us in [0-1023 65535]",
        "rtt_us exists",
        "delta < 0",
        "delta in [-1000--1 5]",
        "loss >= 0.5",
        "loss != 1.5",
        "loss exists",
        r#"app = "dns""#,
        r#"app != "http""#,
        r#"app ~ "s""#,
        "tag = 0x0a0b",
        "tag != 0x",
        "peer 10.0.0.0/8",
        "peer != ::1",
        "peer in [192.168.0.0/16 2001:db8::/32]",
        "vlan < 1000",
    ];
    for _ in 0..1500 {
        let n = rng.below(4) + 1;
        let mut text = String::new();
        for i in 0..n {
            if i > 0 {
                text.push_str(rng.pick::<&str>(&[" and ", " or ", " && ", " || "]));
            }
            if rng.below(3) == 0 {
                text.push_str("not ");
            }
            text.push_str(rng.pick::<&str>(&terms));
        }
        let f = parse_with(&text, &reg).unwrap_or_else(|e| panic!("{text}: {e}"));
        let rows: Vec<bool> = recs.iter().map(|r| f.matches(r)).collect();
        assert_eq!(f.select(&cols).unwrap().to_bools(), rows, "{text}");
    }
}

#[test]
fn any_token_soup_parses_or_fails_with_a_position_inside_the_text() {
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let vocab = [
        "proto",
        "tcp",
        "udp",
        "port",
        "src",
        "dst",
        "and",
        "or",
        "not",
        "!",
        "&&",
        "||",
        "(",
        ")",
        "[",
        "]",
        ",",
        "/",
        "in",
        "net",
        "host",
        "ip",
        "10.0.0.1",
        "10.0",
        "2001:db8::",
        "::",
        "255.255.0.0",
        "24",
        "0",
        "65536",
        "1k",
        "1M",
        "99999999999999999999T",
        "flags",
        "SA",
        "X",
        "Q",
        "bytes",
        "packets",
        ">",
        "<=",
        "!=",
        "=",
        "eq",
        "gt",
        "if",
        "out",
        "as",
        "tos",
        "mask",
        "next",
        "router",
        "icmp-type",
        "icmp-code",
        "any",
        "inet6",
        "src_as",
        "exporter",
        "tcp_flags",
        "&",
        "0x1f",
        "time_start",
        "2024-01-01T00:00:00",
        "#",
        "\n",
        "é",
        "@",
        "80-90",
        "-",
        "vlan",
        "",
        "rtt_us",
        "delta",
        "loss",
        "app",
        "tag",
        "peer",
        "exists",
        "~",
        "\"dns\"",
        "\"",
        "-5",
        "1.5",
        "0x0a0b",
    ];
    let recs: Vec<FlowRecord> = (0..100).map(|_| record(&mut rng)).collect();
    let cols = batch(&recs);
    let reg = registry();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let n = rng.below(8) + 1;
        let text: Vec<&str> = (0..n).map(|_| *rng.pick(&vocab)).collect();
        let text = text.join(if rng.below(4) == 0 { "" } else { " " });
        match parse_with(&text, &reg) {
            Ok(e) => {
                ok += 1;
                assert_eq!(
                    parse_with(&e.to_string(), &reg).as_ref(),
                    Ok(&e),
                    "{text:?}"
                );
                let rows: Vec<bool> = recs.iter().map(|r| e.matches(r)).collect();
                assert_eq!(e.select(&cols).unwrap().to_bools(), rows, "{text:?}");
            }
            Err(x) => {
                err += 1;
                let p = x.position().expect("parse errors have a position");
                assert!(
                    p.offset <= text.len() && text.is_char_boundary(p.offset),
                    "{text:?}"
                );
                assert_eq!(
                    flowdrill_filter::Position::at(&text, p.offset),
                    p,
                    "{text:?}"
                );
                assert!(x.render(&text).ends_with('^'), "{text:?}");
            }
        }
    }
    assert!(ok > 200 && err > 200, "{ok} parsed, {err} rejected");
}
