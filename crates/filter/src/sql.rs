//! [`Expr::to_sql`]: the predicate IR as a SQL boolean expression over the store's Parquet
//! columns (`docs/store-format.md`), for engines that read the bin files themselves: Apache
//! Spark (the `spark` engine of `flowdrill-query`) and DuckDB (the tests' reference).
//!
//! The SQL is written from the same [`Expr`] the embedded evaluators run, node by node, so the
//! two cannot drift apart; `tests/sql.rs` checks that the rows it selects in DuckDB and Spark
//! are the rows [`Expr::matches`] selects, on generated filters.
//!
//! How the store's columns map:
//!
//! | field kind | columns | SQL |
//! |---|---|---|
//! | unsigned | `NAME` (INT64 for 64-bit counters, UINT_8/16/32 otherwise) | `NAME op value` |
//! | time (ms) | `NAME`: TIMESTAMP(MILLIS, UTC) | `NAME op TIMESTAMP 'YYYY-MM-DD hh:mm:ss.mmm'` (the session time zone must be UTC) |
//! | address | `NAME_v4` UINT_32 (null for IPv6), `NAME_v6` 16 bytes (null for IPv4) | IPv4 prefixes on `NAME_v4`, IPv6 prefixes on `NAME_v6` with `unhex('…')` bounds |
//!
//! Invariant: every leaf is TRUE or FALSE, never NULL, on every row (an address test is
//! guarded by `IS NOT NULL`, a user-defined element's too), so `NOT` is the complement of a
//! selection as it is in the evaluators.

use crate::ir::{CmpOp, CustomTest, Expr, NumTest};
use flowdrill_model::{Field, Kind, Prefix};
use std::fmt;

/// Why an expression has no SQL form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A user-defined element whose name is not a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`):
    /// Spark and DuckDB quote identifiers differently, so such a column cannot be named in
    /// both.
    #[error("the element '{0}' cannot be named in SQL; only names of letters, digits and '_' can")]
    Identifier(String),
    /// A bit mask or value beyond the signed 64-bit range of the store's counters.
    #[error("the bit test on {0} uses a mask beyond 2^63, which SQL engines cannot apply")]
    WideMask(String),
    /// A bit test on a time: SQL engines have no common way to take a timestamp's bits.
    #[error("a bit test on the time {0} has no SQL form")]
    TimeBits(String),
}

/// The last millisecond SQL timestamp literals can write (9999-12-31 23:59:59.999 UTC).
const MAX_TIME_MS: u64 = 253_402_300_799_999;

impl Expr {
    /// The predicate as a SQL boolean expression over the store's column names, valid in Spark
    /// SQL and DuckDB (see the module documentation for the column mapping). Time comparisons
    /// use `TIMESTAMP` literals: run the query with the session time zone set to UTC.
    pub fn to_sql(&self) -> Result<String, SqlError> {
        Ok(match self {
            Expr::True => "TRUE".into(),
            Expr::False => "FALSE".into(),
            Expr::Cmp { field, cmp, value } => match field.info().kind {
                Kind::Address => "FALSE".into(),
                Kind::TimeMs => time_cmp(*field, *cmp, *value),
                Kind::Unsigned(_) => format!("{field} {} {value}", sql_op(*cmp)),
            },
            Expr::In { field, ranges } => match field.info().kind {
                Kind::Address => "FALSE".into(),
                Kind::TimeMs => {
                    let parts: Vec<String> = ranges
                        .iter()
                        .filter(|(lo, _)| *lo <= MAX_TIME_MS)
                        .map(|&(lo, hi)| {
                            format!(
                                "{field} BETWEEN {} AND {}",
                                timestamp(lo),
                                timestamp(hi.min(MAX_TIME_MS))
                            )
                        })
                        .collect();
                    if parts.is_empty() {
                        "FALSE".into()
                    } else {
                        paren_join(parts, " OR ")
                    }
                }
                Kind::Unsigned(_) => ranges_sql(field, ranges),
            },
            Expr::Prefix { field, prefixes } => {
                if field.info().kind != Kind::Address {
                    return Ok("FALSE".into());
                }
                paren_join(
                    prefixes.iter().map(|p| prefix_sql(*field, *p)).collect(),
                    " OR ",
                )
            }
            Expr::Bits { field, mask, value } => match field.info().kind {
                Kind::TimeMs => return Err(SqlError::TimeBits(field.to_string())),
                Kind::Unsigned(_) => {
                    if *mask > i64::MAX as u64 || *value > i64::MAX as u64 {
                        return Err(SqlError::WideMask(field.to_string()));
                    }
                    format!("({field} & {mask}) = {value}")
                }
                _ => "FALSE".into(),
            },
            Expr::And { args } => join(args, " AND ")?,
            Expr::Or { args } => join(args, " OR ")?,
            Expr::Not { arg } => format!("NOT ({})", arg.to_sql()?),
            Expr::Custom { name, test, .. } => custom_sql(name, test)?,
        })
    }
}

fn join(args: &[Expr], sep: &str) -> Result<String, SqlError> {
    if args.is_empty() {
        // The empty conjunction holds, the empty disjunction does not.
        return Ok(if sep == " AND " { "TRUE" } else { "FALSE" }.into());
    }
    let parts = args
        .iter()
        .map(|a| Ok(format!("({})", a.to_sql()?)))
        .collect::<Result<Vec<_>, SqlError>>()?;
    Ok(paren_join(parts, sep))
}

fn sql_op(cmp: CmpOp) -> &'static str {
    if cmp == CmpOp::Ne { "<>" } else { cmp.symbol() }
}

/// `TIMESTAMP 'YYYY-MM-DD hh:mm:ss.mmm'` of Unix ms (UTC).
fn timestamp(ms: u64) -> String {
    format!(
        "TIMESTAMP '{}'",
        flowdrill_model::time::format_ms(ms.min(MAX_TIME_MS))
    )
}

/// A time comparison; a value past the last writable timestamp is past every stored time.
fn time_cmp(field: Field, cmp: CmpOp, value: u64) -> String {
    if value > MAX_TIME_MS {
        let below = matches!(cmp, CmpOp::Lt | CmpOp::Le | CmpOp::Ne);
        return if below { "TRUE" } else { "FALSE" }.into();
    }
    format!("{field} {} {}", sql_op(cmp), timestamp(value))
}

/// `col IN (a, b) OR col BETWEEN c AND d`.
fn ranges_sql<T: fmt::Display + PartialEq>(col: &dyn fmt::Display, ranges: &[(T, T)]) -> String {
    let singles: Vec<String> = ranges
        .iter()
        .filter(|(l, h)| l == h)
        .map(|(l, _)| l.to_string())
        .collect();
    let mut parts: Vec<String> = ranges
        .iter()
        .filter(|(l, h)| l != h)
        .map(|(l, h)| format!("{col} BETWEEN {l} AND {h}"))
        .collect();
    if !singles.is_empty() {
        parts.insert(0, format!("{col} IN ({})", singles.join(", ")));
    }
    if parts.is_empty() {
        return "FALSE".into();
    }
    paren_join(parts, " OR ")
}

/// `parts` joined by `sep` in parentheses; used for disjunctions, so no part is `FALSE`.
fn paren_join(parts: Vec<String>, sep: &str) -> String {
    if parts.is_empty() {
        return "FALSE".into();
    }
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(sep))
    }
}

/// The range `[net, net | host bits]` of `p` on the u128 address form (IPv4 mapped).
fn bounds(p: Prefix) -> (u128, u128) {
    let bits = if p.is_v4() {
        96 + p.len() as u32
    } else {
        p.len() as u32
    };
    let host = if bits >= 128 { 0 } else { u128::MAX >> bits };
    (p.addr().0, p.addr().0 | host)
}

/// A 16-byte binary literal of the u128 form (big-endian, so binary order is address order).
fn binary(a: u128) -> String {
    format!("unhex('{a:032x}')")
}

/// "address field in prefix" on the family's column. The store keeps IPv4 addresses (the
/// u128 form's `::ffff:0:0/96`) only in `NAME_v4` and every other address in `NAME_v6`, so a
/// prefix of one family never selects the other, as [`Prefix::contains`] decides.
fn prefix_sql(field: Field, p: Prefix) -> String {
    let (lo, hi) = bounds(p);
    if p.is_v4() {
        let (lo, hi) = (lo as u32, hi as u32);
        let col = format!("{field}_v4");
        if lo == hi {
            format!("({col} IS NOT NULL AND {col} = {lo})")
        } else {
            format!("({col} IS NOT NULL AND {col} BETWEEN {lo} AND {hi})")
        }
    } else {
        let col = format!("{field}_v6");
        if p.is_empty() {
            format!("({col} IS NOT NULL)")
        } else if lo == hi {
            format!("({col} IS NOT NULL AND {col} = {})", binary(lo))
        } else {
            format!(
                "({col} IS NOT NULL AND {col} BETWEEN {} AND {})",
                binary(lo),
                binary(hi)
            )
        }
    }
}

/// The IPv4-mapped addresses `::ffff:0:0/96` as a range of the u128 form.
const V4_MAPPED: (u128, u128) = (0xffff_0000_0000, 0xffff_ffff_ffff);

/// A user-defined element's test, false (not NULL) where the value is missing.
fn custom_sql(name: &str, test: &CustomTest) -> Result<String, SqlError> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(SqlError::Identifier(name.to_string()));
    }
    fn num<T: fmt::Display + PartialEq>(name: &str, t: &NumTest<T>) -> String {
        match t {
            NumTest::Cmp { cmp, value } => format!("{name} {} {value}", sql_op(*cmp)),
            NumTest::In { ranges } => ranges_sql(&name, ranges),
        }
    }
    // Doubles as `CAST('1e300' AS DOUBLE)`: a long decimal literal would be a DECIMAL beyond
    // its precision.
    let double = |x: &crate::Float| format!("CAST('{:e}' AS DOUBLE)", x.get());
    let string = |s: &str| {
        // Spark reads a backslash in a literal as an escape, DuckDB as itself: write it as
        // chr(92), which both read alike.
        let parts: Vec<String> = s
            .split('\\')
            .map(|p| format!("'{}'", p.replace('\'', "''")))
            .collect();
        if parts.len() == 1 {
            parts.concat()
        } else {
            format!("concat({})", parts.join(", chr(92), "))
        }
    };
    // A user-defined address column holds 16 bytes in the IPv4-mapped form (one column for
    // both families), so an IPv6 prefix that covers ::ffff:0:0/96 must leave IPv4 out.
    let address = |p: Prefix| {
        let (lo, hi) = bounds(p);
        let range = if lo == hi {
            format!("{name} = {}", binary(lo))
        } else {
            format!("{name} BETWEEN {} AND {}", binary(lo), binary(hi))
        };
        if !p.is_v4() && lo <= V4_MAPPED.0 && hi >= V4_MAPPED.1 {
            format!(
                "({range} AND NOT ({name} BETWEEN {} AND {}))",
                binary(V4_MAPPED.0),
                binary(V4_MAPPED.1)
            )
        } else {
            format!("({range})")
        }
    };
    let test = match test {
        CustomTest::Exists(_) => return Ok(format!("{name} IS NOT NULL")),
        CustomTest::Unsigned(t) => num(name, t),
        CustomTest::Signed(t) => num(name, t),
        CustomTest::Float(NumTest::Cmp { cmp, value }) => {
            format!("{name} {} {}", sql_op(*cmp), double(value))
        }
        CustomTest::Float(NumTest::In { ranges }) => {
            let parts: Vec<String> = ranges
                .iter()
                .map(|(lo, hi)| format!("{name} BETWEEN {} AND {}", double(lo), double(hi)))
                .collect();
            if parts.is_empty() {
                "FALSE".into()
            } else {
                paren_join(parts, " OR ")
            }
        }
        CustomTest::String { cmp, text } => format!("{name} {} {}", sql_op(*cmp), string(text)),
        // Every text contains the empty one (engines disagree on POSITION('' IN '')).
        CustomTest::Contains { text } if text.is_empty() => "TRUE".into(),
        CustomTest::Contains { text } => format!("POSITION({} IN {name}) > 0", string(text)),
        CustomTest::Bytes { cmp, value } => {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            format!("{name} {} unhex('{hex}')", sql_op(*cmp))
        }
        CustomTest::Address { cmp, prefix } => {
            let p = address(*prefix);
            if *cmp == CmpOp::Eq {
                p
            } else {
                format!("NOT {p}")
            }
        }
        CustomTest::AddressIn { prefixes } => {
            paren_join(prefixes.iter().map(|p| address(*p)).collect(), " OR ")
        }
    };
    Ok(format!("({name} IS NOT NULL AND {test})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Field::*;

    #[test]
    fn ports_and_protocols_are_plain_comparisons() {
        let e = Expr::and(vec![
            Expr::eq(Proto, 6),
            Expr::In {
                field: DstPort,
                ranges: vec![(80, 80), (443, 443), (8000, 8080)],
            },
        ]);
        assert_eq!(
            e.to_sql().unwrap(),
            "((proto = 6) AND ((dst_port IN (80, 443) OR dst_port BETWEEN 8000 AND 8080)))"
        );
        assert_eq!(
            Expr::not(Expr::cmp(Bytes, CmpOp::Ne, 5)).to_sql().unwrap(),
            "NOT (bytes <> 5)"
        );
    }

    #[test]
    fn prefixes_read_the_column_of_their_family() {
        let p = Expr::Prefix {
            field: SrcAddr,
            prefixes: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        };
        assert_eq!(
            p.to_sql().unwrap(),
            "((src_addr_v4 IS NOT NULL AND src_addr_v4 BETWEEN 167772160 AND 184549375) OR \
             (src_addr_v6 IS NOT NULL AND src_addr_v6 BETWEEN \
             unhex('20010db8000000000000000000000000') AND unhex('20010db8ffffffffffffffffffffffff')))"
        );
        let any6 = Expr::Prefix {
            field: DstAddr,
            prefixes: vec![Prefix::root_v6()],
        };
        assert_eq!(any6.to_sql().unwrap(), "(dst_addr_v6 IS NOT NULL)");
    }

    #[test]
    fn times_are_utc_timestamp_literals() {
        assert_eq!(
            Expr::cmp(TimeStart, CmpOp::Ge, 1_704_067_200_123)
                .to_sql()
                .unwrap(),
            "time_start >= TIMESTAMP '2024-01-01 00:00:00.123'"
        );
        assert_eq!(
            Expr::cmp(TimeEnd, CmpOp::Lt, u64::MAX).to_sql().unwrap(),
            "TRUE"
        );
    }

    #[test]
    fn custom_tests_are_false_on_nulls_and_odd_names_are_refused() {
        let e = Expr::Custom {
            index: 0,
            name: "rtt_us".into(),
            test: CustomTest::Unsigned(NumTest::Cmp {
                cmp: CmpOp::Ne,
                value: 5,
            }),
        };
        assert_eq!(e.to_sql().unwrap(), "(rtt_us IS NOT NULL AND rtt_us <> 5)");
        let odd = Expr::Custom {
            index: 0,
            name: "rtt us".into(),
            test: CustomTest::Exists(flowdrill_model::CustomKind::Unsigned),
        };
        assert_eq!(odd.to_sql(), Err(SqlError::Identifier("rtt us".into())));
    }
}
