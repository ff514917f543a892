//! Pruning: what a predicate can say about a whole file from the ranges of its columns.
//!
//! A bin file's footer gives, per column, the smallest and largest value. [`Expr::prune`]
//! answers, from those ranges alone, whether no record of the file can match (the file need not
//! be read), every record matches, or it cannot tell. The answer MUST be sound: `None` only when
//! no value inside the ranges satisfies the predicate, `All` only when every value does; when in
//! doubt, `Some`. Unknown fields (no statistics) and user-defined elements are always `Some`.

use crate::ir::{CmpOp, Expr};
use flowdrill_model::{Field, Kind, Prefix};

/// How much of a file a predicate can match, judged from its column ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// No record can match.
    None,
    /// Some records may match.
    Some,
    /// Every record matches.
    All,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::None => Tri::All,
            Tri::All => Tri::None,
            Tri::Some => Tri::Some,
        }
    }
    /// Combines the answers for the disjoint intervals that together hold a column's values.
    fn over(parts: impl Iterator<Item = Tri>) -> Tri {
        let (mut any, mut none, mut all) = (false, true, true);
        for t in parts {
            any = true;
            none &= t == Tri::None;
            all &= t == Tri::All;
        }
        match (any, none, all) {
            (false, _, _) => Tri::None,
            (_, true, _) => Tri::None,
            (_, _, true) => Tri::All,
            _ => Tri::Some,
        }
    }
}

/// The closed interval of addresses a prefix covers (in the `u128` form of [`flowdrill_model::Addr`]).
fn prefix_interval(p: &Prefix) -> (u128, u128) {
    let lo = p.addr().0;
    let host_bits = u32::from(p.addr().family_bits() - p.len());
    let span = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (lo, lo | span)
}

fn cmp_interval(cmp: CmpOp, v: u128, lo: u128, hi: u128) -> Tri {
    let (all, none) = match cmp {
        CmpOp::Eq => (lo == v && hi == v, v < lo || v > hi),
        CmpOp::Ne => (v < lo || v > hi, lo == v && hi == v),
        CmpOp::Lt => (hi < v, lo >= v),
        CmpOp::Le => (hi <= v, lo > v),
        CmpOp::Gt => (lo > v, hi <= v),
        CmpOp::Ge => (lo >= v, hi < v),
    };
    if none {
        Tri::None
    } else if all {
        Tri::All
    } else {
        Tri::Some
    }
}

impl Expr {
    /// What this predicate can match in a file whose column `f` holds values inside the closed
    /// intervals `ranges(f)` (`None`: the file has no statistics for `f`). An empty interval
    /// list means the file holds no value of that column (no records).
    pub fn prune(&self, ranges: &dyn Fn(Field) -> Option<Vec<(u128, u128)>>) -> Tri {
        match self {
            Expr::True => Tri::All,
            Expr::False => Tri::None,
            Expr::Cmp { field, cmp, value } => match ranges(*field) {
                Some(r) if field.info().kind != Kind::Address => Tri::over(
                    r.iter()
                        .map(|&(lo, hi)| cmp_interval(*cmp, u128::from(*value), lo, hi)),
                ),
                _ => Tri::Some,
            },
            Expr::In { field, ranges: set } => match ranges(*field) {
                Some(r) if field.info().kind != Kind::Address => {
                    Tri::over(r.iter().map(|&(lo, hi)| {
                        let (lo, hi) = (lo as u64, hi as u64);
                        if set.iter().any(|&(a, b)| a <= lo && hi <= b) {
                            Tri::All
                        } else if set.iter().any(|&(a, b)| a <= hi && lo <= b) {
                            Tri::Some
                        } else {
                            Tri::None
                        }
                    }))
                }
                _ => Tri::Some,
            },
            Expr::Prefix { field, prefixes } => match ranges(*field) {
                Some(r) => {
                    let hit = r.iter().any(|&(lo, hi)| {
                        prefixes.iter().any(|p| {
                            let (a, b) = prefix_interval(p);
                            a <= hi && lo <= b
                        })
                    });
                    // Families make "every record" hard to prove from intervals: never All.
                    if hit { Tri::Some } else { Tri::None }
                }
                None => Tri::Some,
            },
            Expr::Bits { field, mask, value } => match ranges(*field) {
                Some(r) if r.iter().all(|&(lo, hi)| lo == hi) && !r.is_empty() => {
                    Tri::over(r.iter().map(|&(lo, _)| {
                        if (lo as u64) & mask == *value {
                            Tri::All
                        } else {
                            Tri::None
                        }
                    }))
                }
                Some(r) if r.is_empty() => Tri::None,
                _ => Tri::Some,
            },
            Expr::And { args } => {
                let mut out = Tri::All;
                for a in args {
                    match a.prune(ranges) {
                        Tri::None => return Tri::None,
                        Tri::Some => out = Tri::Some,
                        Tri::All => {}
                    }
                }
                out
            }
            Expr::Or { args } => {
                let mut out = Tri::None;
                for a in args {
                    match a.prune(ranges) {
                        Tri::All => return Tri::All,
                        Tri::Some => out = Tri::Some,
                        Tri::None => {}
                    }
                }
                out
            }
            Expr::Not { arg } => arg.prune(ranges).not(),
            Expr::Custom { .. } => Tri::Some,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::{Addr, CustomFields, FlowRecord};

    fn parse(s: &str) -> Expr {
        crate::parse_with(s, &CustomFields::default()).unwrap()
    }

    /// A small deterministic generator of records and filters, for the soundness property.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn record(r: &mut Rng) -> FlowRecord {
        let v6 = r.next().is_multiple_of(5);
        let src = if v6 {
            Addr((0x2001_0db8u128 << 96) | u128::from(r.next() % 4096))
        } else {
            Addr::from_v4_u32(0x0a00_0000 + (r.next() % 70_000) as u32)
        };
        FlowRecord {
            src_addr: src,
            dst_addr: Addr::from_v4_u32(0xc000_0200 + (r.next() % 8) as u32),
            src_port: (r.next() % 2000) as u16,
            dst_port: [53, 80, 443, 8080][(r.next() % 4) as usize],
            proto: [6, 17][(r.next() % 2) as usize],
            packets: 1 + r.next() % 20,
            bytes: 40 + r.next() % 5000,
            ..FlowRecord::default()
        }
    }

    const FILTERS: &[&str] = &[
        "proto tcp",
        "proto udp and dst port 53",
        "not proto tcp",
        "dst port 443 or dst port 8080",
        "dst port in [1-52]",
        "src port > 1500",
        "src port < 10",
        "bytes > 4k",
        "packets >= 25",
        "not packets >= 25",
        "src net 10.0.0.0/16",
        "src net 10.1.0.0/16",
        "src net 10.2.0.0/16",
        "src net 2001:db8::/32",
        "src net 2001:db9::/32",
        "not src net 10.0.0.0/8",
        "dst host 192.0.2.3",
        "flags S",
        "dst port != 53",
        "proto tcp and not (dst port 80 or dst port 443)",
    ];

    /// The ranges of a set of records, as a bin footer would give them.
    fn ranges_of(recs: &[FlowRecord]) -> impl Fn(Field) -> Option<Vec<(u128, u128)>> + '_ {
        move |f: Field| {
            let vals: Vec<u128> = recs
                .iter()
                .map(|r| match r.get(f) {
                    flowdrill_model::Value::Addr(a) => a.0,
                    flowdrill_model::Value::U64(v) => u128::from(v),
                })
                .collect();
            let mut out = Vec::new();
            if f.info().kind == Kind::Address {
                for v4 in [true, false] {
                    let fam: Vec<u128> = vals
                        .iter()
                        .copied()
                        .filter(|&a| Addr(a).is_v4() == v4)
                        .collect();
                    if let (Some(lo), Some(hi)) = (fam.iter().min(), fam.iter().max()) {
                        out.push((*lo, *hi));
                    }
                }
            } else if let (Some(lo), Some(hi)) = (vals.iter().min(), vals.iter().max()) {
                out.push((*lo, *hi));
            }
            Some(out)
        }
    }

    #[test]
    fn pruning_is_sound_and_prunes_on_random_files() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        let (mut pruned, mut proved_all) = (0, 0);
        for _ in 0..300 {
            let n = 1 + (r.next() % 40) as usize;
            let mut recs: Vec<FlowRecord> = (0..n).map(|_| record(&mut r)).collect();
            // Narrow some files to one protocol or port, as real bins of one exporter can be.
            if r.next().is_multiple_of(2) {
                let p = recs[0].proto;
                recs.iter_mut().for_each(|x| x.proto = p);
            }
            if r.next().is_multiple_of(3) {
                let p = recs[0].dst_port;
                recs.iter_mut().for_each(|x| x.dst_port = p);
            }
            let ranges = ranges_of(&recs);
            for f in FILTERS {
                let e = parse(f);
                let matched = recs.iter().filter(|x| e.matches(x)).count();
                match e.prune(&ranges) {
                    Tri::None => {
                        assert_eq!(matched, 0, "'{f}' pruned a file with matches");
                        pruned += 1;
                    }
                    Tri::All => {
                        assert_eq!(matched, recs.len(), "'{f}' claimed every record");
                        proved_all += 1;
                    }
                    Tri::Some => {}
                }
            }
        }
        assert!(pruned > 300, "pruning happens: {pruned}");
        assert!(proved_all > 100, "{proved_all}");
    }

    #[test]
    fn no_statistics_means_no_pruning() {
        let none = |_: Field| None;
        assert_eq!(parse("proto tcp").prune(&none), Tri::Some);
        assert_eq!(parse("not proto tcp").prune(&none), Tri::Some);
        assert_eq!(parse("any").prune(&none), Tri::All);
    }
}
