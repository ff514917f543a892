//! The predicate IR: what every filter form (nfdump expressions, ACL rule lists) compiles to,
//! what both evaluators run, and what other engines translate (the JSON form, [`Expr::to_sql`]).
//!
//! ```text
//!  nfdump text ──parse──┐
//!                        ├──> Expr ──simplify──> Expr ──┬── matches(&FlowRecord)   row-wise
//!  ACL rule list ───────┘                               ├── select(&ColumnSource)  column-wise
//!                                                       ├── Display / JSON (serde)
//!                                                       └── to_sql()
//! ```
//!
//! An [`Expr`] is a tree over the fields of the one schema ([`flowdrill_model::Field`]):
//!
//! | node | meaning | JSON |
//! |---|---|---|
//! | `True` / `False` | constant | `{"op":"true"}` |
//! | `Cmp` | `field <cmp> value` (unsigned) | `{"op":"cmp","field":"dst_port","cmp":"eq","value":443}` |
//! | `In` | field in one of the closed ranges | `{"op":"in","field":"dst_port","ranges":[[80,80],[8000,8080]]}` |
//! | `Prefix` | address field in one of the prefixes | `{"op":"prefix","field":"src_addr","prefixes":["10.0.0.0/8"]}` |
//! | `Bits` | `(field & mask) == value` | `{"op":"bits","field":"tcp_flags","mask":18,"value":18}` |
//! | `And` / `Or` | all / any of `args` | `{"op":"and","args":[...]}` |
//! | `Not` | negation | `{"op":"not","arg":{...}}` |
//!
//! Invariants of a *simplified* expression (what [`crate::parse`] returns): integer leaves
//! only name integer fields and `Prefix` only address fields; no constant below the root;
//! `And`/`Or` have at least two arguments and no argument of their own kind; `In` ranges are
//! sorted, disjoint, non-adjacent and within the field's width; `Not` never wraps `Cmp`,
//! a constant or another `Not`.
//!
//! An IPv4 prefix contains only IPv4 addresses and an IPv6 prefix only IPv6 addresses
//! (`0.0.0.0/0` is "any IPv4", `::/0` "any IPv6"), as [`flowdrill_model::Prefix::contains`].

use flowdrill_model::{Field, Kind, Prefix};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator that is true exactly when this one is false.
    pub fn negate(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Ge => CmpOp::Lt,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
        }
    }
    /// Applies the operator.
    #[inline(always)]
    pub fn apply<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
    /// The symbol used in the text and SQL forms.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A predicate over one flow record. See the module documentation for the meaning of each
/// node and the invariants of simplified expressions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Expr {
    True,
    False,
    Cmp {
        #[serde(with = "field_name")]
        field: Field,
        cmp: CmpOp,
        value: u64,
    },
    In {
        #[serde(with = "field_name")]
        field: Field,
        /// Closed ranges `[lo, hi]`.
        ranges: Vec<(u64, u64)>,
    },
    Prefix {
        #[serde(with = "field_name")]
        field: Field,
        #[serde(with = "prefix_strings")]
        prefixes: Vec<Prefix>,
    },
    Bits {
        #[serde(with = "field_name")]
        field: Field,
        mask: u64,
        value: u64,
    },
    And {
        args: Vec<Expr>,
    },
    Or {
        args: Vec<Expr>,
    },
    Not {
        arg: Box<Expr>,
    },
}

mod field_name {
    use super::*;
    pub fn serialize<S: Serializer>(f: &Field, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        let name = String::deserialize(d)?;
        Field::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown field {name}")))
    }
}

mod prefix_strings {
    use super::*;
    pub fn serialize<S: Serializer>(p: &[Prefix], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(p.iter().map(|p| p.to_string()))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Prefix>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The largest value an integer field can hold (its width), `None` for address fields.
pub fn field_max(field: Field) -> Option<u64> {
    match field.info().kind {
        Kind::Unsigned(bits) if bits < 64 => Some((1u64 << bits) - 1),
        Kind::Unsigned(_) | Kind::TimeMs => Some(u64::MAX),
        Kind::Address => None,
    }
}

impl Expr {
    /// `args` joined by `and` (not simplified).
    pub fn and(args: Vec<Expr>) -> Expr {
        Expr::And { args }
    }
    /// `args` joined by `or` (not simplified).
    pub fn or(args: Vec<Expr>) -> Expr {
        Expr::Or { args }
    }
    /// The negation of `e` (not simplified).
    #[allow(clippy::should_implement_trait)]
    pub fn not(e: Expr) -> Expr {
        Expr::Not { arg: Box::new(e) }
    }
    pub fn cmp(field: Field, cmp: CmpOp, value: u64) -> Expr {
        Expr::Cmp { field, cmp, value }
    }
    pub fn eq(field: Field, value: u64) -> Expr {
        Expr::cmp(field, CmpOp::Eq, value)
    }

    /// The fields the predicate reads, each once, in schema order: the columns a batch must
    /// carry for [`Expr::select`].
    pub fn fields(&self) -> Vec<Field> {
        fn walk(e: &Expr, out: &mut Vec<Field>) {
            match e {
                Expr::True | Expr::False => {}
                Expr::Cmp { field, .. }
                | Expr::In { field, .. }
                | Expr::Prefix { field, .. }
                | Expr::Bits { field, .. } => out.push(*field),
                Expr::And { args } | Expr::Or { args } => args.iter().for_each(|a| walk(a, out)),
                Expr::Not { arg } => walk(arg, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Constant-folds and normalises the expression; the result has the invariants listed in
    /// the module documentation and selects exactly the same records.
    pub fn simplify(self) -> Expr {
        match self {
            Expr::True | Expr::False => self,
            Expr::Cmp { field, cmp, value } => simplify_cmp(field, cmp, value),
            Expr::In { field, ranges } => simplify_in(field, ranges),
            Expr::Prefix { field, prefixes } => simplify_prefix(field, prefixes),
            Expr::Bits { field, mask, value } => {
                let max = field_max(field).unwrap_or(u64::MAX);
                if value & !mask != 0 || value & !max != 0 {
                    Expr::False
                } else if mask & max == 0 {
                    Expr::True
                } else {
                    Expr::Bits {
                        field,
                        mask: mask & max,
                        value,
                    }
                }
            }
            Expr::Not { arg } => match arg.simplify() {
                Expr::True => Expr::False,
                Expr::False => Expr::True,
                Expr::Not { arg } => *arg,
                Expr::Cmp { field, cmp, value } => simplify_cmp(field, cmp.negate(), value),
                other => Expr::not(other),
            },
            Expr::And { args } => simplify_junction(args, true),
            Expr::Or { args } => simplify_junction(args, false),
        }
    }
}

fn simplify_cmp(field: Field, cmp: CmpOp, value: u64) -> Expr {
    let Some(max) = field_max(field) else {
        return Expr::Cmp { field, cmp, value };
    };
    let v = value;
    match cmp {
        CmpOp::Eq if v > max => Expr::False,
        CmpOp::Ne if v > max => Expr::True,
        CmpOp::Lt if v == 0 => Expr::False,
        CmpOp::Lt if v > max => Expr::True,
        CmpOp::Lt if v == max => Expr::cmp(field, CmpOp::Ne, max),
        CmpOp::Le if v >= max => Expr::True,
        CmpOp::Gt if v >= max => Expr::False,
        CmpOp::Ge if v == 0 => Expr::True,
        CmpOp::Ge if v > max => Expr::False,
        _ => Expr::Cmp { field, cmp, value },
    }
    .normalise_edge(field, max)
}

impl Expr {
    /// `<= 0` is `= 0` and `>= max` is `= max`: one spelling for one set.
    fn normalise_edge(self, field: Field, max: u64) -> Expr {
        match self {
            Expr::Cmp {
                cmp: CmpOp::Le,
                value: 0,
                ..
            } => Expr::eq(field, 0),
            Expr::Cmp {
                cmp: CmpOp::Ge,
                value,
                ..
            } if value == max => Expr::eq(field, max),
            Expr::Cmp {
                cmp: CmpOp::Gt,
                value,
                ..
            } if value == max - 1 => Expr::eq(field, max),
            Expr::Cmp {
                cmp: CmpOp::Lt,
                value: 1,
                ..
            } => Expr::eq(field, 0),
            other => other,
        }
    }
}

/// Sorted, merged, clamped ranges; `None` when the ranges cover the whole field.
fn normalise_ranges(mut ranges: Vec<(u64, u64)>, max: u64) -> Vec<(u64, u64)> {
    ranges.retain(|&(lo, hi)| lo <= hi && lo <= max);
    for r in ranges.iter_mut() {
        r.1 = r.1.min(max);
    }
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn simplify_in(field: Field, ranges: Vec<(u64, u64)>) -> Expr {
    let max = field_max(field).unwrap_or(u64::MAX);
    let ranges = normalise_ranges(ranges, max);
    match ranges.as_slice() {
        [] => Expr::False,
        [(0, hi)] if *hi == max => Expr::True,
        [(lo, hi)] if lo == hi => Expr::eq(field, *lo),
        [(0, hi)] => Expr::cmp(field, CmpOp::Le, *hi).normalise_edge(field, max),
        [(lo, hi)] if *hi == max => Expr::cmp(field, CmpOp::Ge, *lo).normalise_edge(field, max),
        _ => Expr::In { field, ranges },
    }
}

fn simplify_prefix(field: Field, mut prefixes: Vec<Prefix>) -> Expr {
    prefixes.sort();
    prefixes.dedup();
    // Drop prefixes inside another one of the list: the shorter one decides.
    let all = prefixes.clone();
    prefixes.retain(|p| !all.iter().any(|q| q != p && q.contains_prefix(*p)));
    let has_v4_root = prefixes.contains(&Prefix::root_v4());
    let has_v6_root = prefixes.contains(&Prefix::root_v6());
    if prefixes.is_empty() {
        Expr::False
    } else if has_v4_root && has_v6_root {
        Expr::True
    } else {
        Expr::Prefix { field, prefixes }
    }
}

/// Simplifies `and` (`is_and`) or `or`: flattens, folds constants, drops duplicates, merges
/// set leaves on one field (for `or`), and detects `x = a and x = b` contradictions.
fn simplify_junction(args: Vec<Expr>, is_and: bool) -> Expr {
    let (absorbing, neutral) = if is_and {
        (Expr::False, Expr::True)
    } else {
        (Expr::True, Expr::False)
    };
    let mut flat: Vec<Expr> = Vec::with_capacity(args.len());
    for a in args {
        let a = a.simplify();
        if a == absorbing {
            return absorbing;
        }
        if a == neutral {
            continue;
        }
        match a {
            Expr::And { args } if is_and => flat.extend(args),
            Expr::Or { args } if !is_and => flat.extend(args),
            other => flat.push(other),
        }
    }
    let mut out: Vec<Expr> = Vec::with_capacity(flat.len());
    for a in flat {
        if out.contains(&a) {
            continue;
        }
        if is_and {
            // Two set leaves on one field: their intersection.
            let mut merged = None;
            for o in out.iter_mut() {
                match intersect(o, &a) {
                    Some(Expr::False) => return Expr::False,
                    Some(e) => {
                        merged = Some(());
                        *o = e;
                        break;
                    }
                    None => {}
                }
            }
            if merged.is_some() {
                continue;
            }
            // x = a and x = b with a != b can never hold.
            if let Expr::Cmp {
                field,
                cmp: CmpOp::Eq,
                value,
            } = a
                && out.iter().any(|o| {
                    matches!(o, Expr::Cmp { field: f, cmp: CmpOp::Eq, value: v }
                        if *f == field && *v != value)
                })
            {
                return Expr::False;
            }
            // x and not x
            if out.iter().any(|o| complements(o, &a)) {
                return Expr::False;
            }
        } else if out.iter_mut().any(|o| merge_or(o, &a)) {
            continue;
        }
        out.push(a);
    }
    if is_and {
        // Equalities of the conjunction decide other leaves on the same fields:
        // `proto = 17 and not (proto = 6 and ...)` drops the second term.
        let eqs: Vec<(Field, u64)> = out
            .iter()
            .filter_map(|e| match e {
                Expr::Cmp {
                    field,
                    cmp: CmpOp::Eq,
                    value,
                } => Some((*field, *value)),
                _ => None,
            })
            .collect();
        if !eqs.is_empty() {
            let mut changed = false;
            let mut kept = Vec::with_capacity(out.len());
            for a in out {
                if matches!(a, Expr::Cmp { cmp: CmpOp::Eq, .. }) {
                    kept.push(a);
                    continue;
                }
                let r = substitute(&a, &eqs);
                if r == a {
                    kept.push(a);
                    continue;
                }
                changed = true;
                match r.simplify() {
                    Expr::False => return Expr::False,
                    Expr::True => {}
                    r => kept.push(r),
                }
            }
            if changed {
                // The reduced terms may flatten or fold further.
                return Expr::And { args: kept }.simplify();
            }
            out = kept;
        }
    }
    if !is_and {
        // Merging may have produced leaves that fold to constants or duplicates.
        let again: Vec<Expr> = out.into_iter().map(Expr::simplify).collect();
        if again.contains(&Expr::True) {
            return Expr::True;
        }
        out = Vec::with_capacity(again.len());
        for a in again {
            if a != Expr::False && !out.contains(&a) {
                out.push(a);
            }
        }
        if out
            .iter()
            .enumerate()
            .any(|(i, o)| out[i + 1..].iter().any(|p| complements(o, p)))
        {
            return Expr::True;
        }
    }
    match out.len() {
        0 => neutral,
        1 => out.pop().expect("one element"),
        _ if is_and => Expr::And { args: out },
        _ => Expr::Or { args: out },
    }
}

/// `e` with the leaves on the fields of `eqs` (known to hold those values) replaced by their
/// truth value; unchanged when no leaf reads such a field.
fn substitute(e: &Expr, eqs: &[(Field, u64)]) -> Expr {
    let known = |f: &Field| eqs.iter().find(|(g, _)| g == f).map(|(_, v)| *v);
    let c = |b: bool| if b { Expr::True } else { Expr::False };
    match e {
        Expr::Cmp { field, cmp, value } => match known(field) {
            Some(v) => c(cmp.apply(v, *value)),
            None => e.clone(),
        },
        Expr::In { field, ranges } => match known(field) {
            Some(v) => c(ranges.iter().any(|&(lo, hi)| lo <= v && v <= hi)),
            None => e.clone(),
        },
        Expr::Bits { field, mask, value } => match known(field) {
            Some(v) => c(v & mask == *value),
            None => e.clone(),
        },
        Expr::True | Expr::False | Expr::Prefix { .. } => e.clone(),
        Expr::Not { arg } => Expr::not(substitute(arg, eqs)),
        Expr::And { args } => Expr::And {
            args: args.iter().map(|a| substitute(a, eqs)).collect(),
        },
        Expr::Or { args } => Expr::Or {
            args: args.iter().map(|a| substitute(a, eqs)).collect(),
        },
    }
}

/// True when `a` is exactly the negation of `b` (syntactically).
fn complements(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Not { arg }, x) | (x, Expr::Not { arg }) if **arg == *x => true,
        (
            Expr::Cmp {
                field: f1,
                cmp: c1,
                value: v1,
            },
            Expr::Cmp {
                field: f2,
                cmp: c2,
                value: v2,
            },
        ) => f1 == f2 && v1 == v2 && c1.negate() == *c2,
        _ => false,
    }
}

/// The integer set a leaf selects, as ranges, when it is one (`=`, `in`, `<`...; not `!=`
/// or bit masks).
fn as_ranges(e: &Expr) -> Option<(Field, Vec<(u64, u64)>)> {
    match e {
        Expr::In { field, ranges } => Some((*field, ranges.clone())),
        Expr::Cmp { field, cmp, value } => {
            let max = field_max(*field)?;
            let v = *value;
            let r = match cmp {
                CmpOp::Eq => (v, v),
                CmpOp::Lt if v > 0 => (0, v - 1),
                CmpOp::Le => (0, v),
                CmpOp::Gt if v < max => (v + 1, max),
                CmpOp::Ge => (v, max),
                _ => return None,
            };
            Some((*field, vec![r]))
        }
        _ => None,
    }
}

/// The intersection of two set leaves on the same field (simplified), or `None` when they
/// are not both set leaves of one field.
fn intersect(a: &Expr, b: &Expr) -> Option<Expr> {
    if let (
        Expr::Prefix {
            field: fa,
            prefixes: pa,
        },
        Expr::Prefix {
            field: fb,
            prefixes: pb,
        },
    ) = (a, b)
    {
        if fa != fb {
            return None;
        }
        // Two prefixes overlap only when one contains the other; the longer is the overlap.
        let mut out = Vec::new();
        for p in pa {
            for q in pb {
                if p.contains_prefix(*q) {
                    out.push(*q);
                } else if q.contains_prefix(*p) {
                    out.push(*p);
                }
            }
        }
        return Some(simplify_prefix(*fa, out));
    }
    let (fa, ra) = as_ranges(a)?;
    let (fb, rb) = as_ranges(b)?;
    if fa != fb {
        return None;
    }
    let mut out = Vec::new();
    for &(l1, h1) in &ra {
        for &(l2, h2) in &rb {
            let (lo, hi) = (l1.max(l2), h1.min(h2));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    Some(simplify_in(fa, out))
}

/// Merges `b` into `into` when both are set leaves on the same field (`or` of the sets).
/// Returns true when merged.
fn merge_or(into: &mut Expr, b: &Expr) -> bool {
    merge_sets(into, b).is_some()
}

fn merge_sets(into: &mut Expr, b: &Expr) -> Option<()> {
    if let (
        Expr::Prefix {
            field: fa,
            prefixes: pa,
        },
        Expr::Prefix {
            field: fb,
            prefixes: pb,
        },
    ) = (&mut *into, b)
        && fa == fb
    {
        pa.extend(pb.iter().copied());
        return Some(());
    }
    let (fa, mut ra) = as_ranges(into)?;
    let (fb, rb) = as_ranges(b)?;
    if fa != fb {
        return None;
    }
    ra.extend(rb);
    *into = Expr::In {
        field: fa,
        ranges: ra,
    };
    Some(())
}

/// Binding strength of a node in the text form: `or` < `and` < `not` < leaf.
fn strength(e: &Expr) -> u8 {
    match e {
        Expr::Or { .. } => 0,
        Expr::And { .. } => 1,
        Expr::Not { .. } => 2,
        _ => 3,
    }
}

impl fmt::Display for Expr {
    /// The canonical text form: this crate's filter language with schema field names, which
    /// [`crate::parse`] reads back to the same expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
            if strength(e) < min {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        }
        match self {
            Expr::True => f.write_str("any"),
            Expr::False => f.write_str("not any"),
            Expr::Cmp { field, cmp, value } => write!(f, "{field} {} {value}", cmp.symbol()),
            Expr::In { field, ranges } => {
                write!(f, "{field} in [")?;
                for (i, (lo, hi)) in ranges.iter().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    if lo == hi {
                        write!(f, "{sep}{lo}")?;
                    } else {
                        write!(f, "{sep}{lo}-{hi}")?;
                    }
                }
                f.write_str("]")
            }
            Expr::Prefix { field, prefixes } => {
                write!(f, "{field} in [")?;
                for (i, p) in prefixes.iter().enumerate() {
                    write!(f, "{}{p}", if i == 0 { "" } else { " " })?;
                }
                f.write_str("]")
            }
            Expr::Bits { field, mask, value } => {
                write!(f, "{field} & {mask:#x} = {value:#x}")
            }
            Expr::And { args } | Expr::Or { args } => {
                let (word, min) = if matches!(self, Expr::And { .. }) {
                    (" and ", 2)
                } else {
                    (" or ", 1)
                };
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(word)?;
                    }
                    child(f, a, min)?;
                }
                Ok(())
            }
            Expr::Not { arg } => {
                f.write_str("not ")?;
                child(f, arg, 2)
            }
        }
    }
}

/// How [`Expr::to_sql`] writes address predicates: the store keeps an address column as two
/// unsigned 64-bit halves, `<name>_hi` and `<name>_lo`, of the `u128` form (IPv4 mapped
/// into `::ffff:0:0/96`). Standard SQL has no 128-bit integer, so each prefix becomes range
/// conditions on the halves.
impl Expr {
    /// The predicate as a standard SQL boolean expression over the store's column names
    /// (schema field names; addresses as `<name>_hi`/`<name>_lo` halves, see above). Bit
    /// tests use `&`, which Spark SQL, PostgreSQL, DuckDB and ClickHouse accept.
    pub fn to_sql(&self) -> String {
        match self {
            Expr::True => "TRUE".into(),
            Expr::False => "FALSE".into(),
            Expr::Cmp { field, cmp, value } => {
                let op = if *cmp == CmpOp::Ne {
                    "<>"
                } else {
                    cmp.symbol()
                };
                format!("{field} {op} {value}")
            }
            Expr::In { field, ranges } => {
                let singles: Vec<String> = ranges
                    .iter()
                    .filter(|(l, h)| l == h)
                    .map(|(l, _)| l.to_string())
                    .collect();
                let mut parts: Vec<String> = ranges
                    .iter()
                    .filter(|(l, h)| l != h)
                    .map(|(l, h)| format!("{field} BETWEEN {l} AND {h}"))
                    .collect();
                if !singles.is_empty() {
                    parts.insert(0, format!("{field} IN ({})", singles.join(", ")));
                }
                paren_join(parts, " OR ")
            }
            Expr::Prefix { field, prefixes } => paren_join(
                prefixes.iter().map(|p| prefix_sql(*field, *p)).collect(),
                " OR ",
            ),
            Expr::Bits { field, mask, value } => format!("({field} & {mask}) = {value}"),
            Expr::And { args } => paren_join(
                args.iter().map(|a| format!("({})", a.to_sql())).collect(),
                " AND ",
            ),
            Expr::Or { args } => paren_join(
                args.iter().map(|a| format!("({})", a.to_sql())).collect(),
                " OR ",
            ),
            Expr::Not { arg } => format!("NOT ({})", arg.to_sql()),
        }
    }
}

fn paren_join(parts: Vec<String>, sep: &str) -> String {
    if parts.len() == 1 {
        parts.into_iter().next().expect("one part")
    } else {
        format!("({})", parts.join(sep))
    }
}

/// SQL for "address field in prefix", over the `_hi`/`_lo` halves. The range of a prefix is
/// `[net, net | host_bits]` on the u128 form, i.e. a range on the pair (hi, lo).
fn prefix_sql(field: Field, p: Prefix) -> String {
    let bits = if p.is_v4() {
        96 + p.len() as u32
    } else {
        p.len() as u32
    };
    let (lo_addr, hi_addr) = if p.is_v4() || !p.is_empty() {
        let host = if bits >= 128 { 0 } else { u128::MAX >> bits };
        (p.addr().0, p.addr().0 | host)
    } else {
        // ::/0 is "any IPv6": every address outside ::ffff:0:0/96.
        return format!(
            "NOT ({field}_hi = 0 AND {field}_lo BETWEEN {} AND {})",
            0xffff_0000_0000u64, 0xffff_ffff_ffffu64
        );
    };
    let (h1, l1) = ((lo_addr >> 64) as u64, lo_addr as u64);
    let (h2, l2) = ((hi_addr >> 64) as u64, hi_addr as u64);
    let range = if h1 == h2 {
        if l1 == l2 {
            format!("{field}_hi = {h1} AND {field}_lo = {l1}")
        } else {
            format!("{field}_hi = {h1} AND {field}_lo BETWEEN {l1} AND {l2}")
        }
    } else {
        // A prefix of length <= 64: the low half is free.
        format!("{field}_hi BETWEEN {h1} AND {h2}")
    };
    if !p.is_v4() && bits <= 96 && p.addr().0 >> 96 == 0 {
        // An IPv6 prefix that covers ::ffff:0:0/96 must not select IPv4 addresses.
        format!(
            "({range} AND NOT ({field}_hi = 0 AND {field}_lo BETWEEN {} AND {}))",
            0xffff_0000_0000u64, 0xffff_ffff_ffffu64
        )
    } else {
        format!("({range})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Field::*;

    #[test]
    fn comparisons_fold_against_the_field_width() {
        assert_eq!(Expr::cmp(Proto, CmpOp::Eq, 300).simplify(), Expr::False);
        assert_eq!(Expr::cmp(Proto, CmpOp::Ne, 300).simplify(), Expr::True);
        assert_eq!(Expr::cmp(DstPort, CmpOp::Lt, 0).simplify(), Expr::False);
        assert_eq!(Expr::cmp(Bytes, CmpOp::Ge, 0).simplify(), Expr::True);
        assert_eq!(Expr::cmp(DstPort, CmpOp::Le, 65535).simplify(), Expr::True);
        assert_eq!(Expr::cmp(DstPort, CmpOp::Gt, 65535).simplify(), Expr::False);
        assert_eq!(
            Expr::cmp(DstPort, CmpOp::Ge, 65535).simplify(),
            Expr::eq(DstPort, 65535)
        );
        assert_eq!(
            Expr::cmp(DstPort, CmpOp::Lt, 1).simplify(),
            Expr::eq(DstPort, 0)
        );
        assert_eq!(
            Expr::cmp(DstPort, CmpOp::Gt, 1023).simplify(),
            Expr::cmp(DstPort, CmpOp::Gt, 1023)
        );
    }

    #[test]
    fn junctions_flatten_fold_and_merge() {
        let e = Expr::or(vec![
            Expr::eq(DstPort, 80),
            Expr::False,
            Expr::or(vec![Expr::eq(DstPort, 443), Expr::eq(DstPort, 81)]),
        ]);
        assert_eq!(
            e.simplify(),
            Expr::In {
                field: DstPort,
                ranges: vec![(80, 81), (443, 443)]
            }
        );
        let e = Expr::and(vec![Expr::eq(Proto, 6), Expr::True, Expr::eq(Proto, 17)]);
        assert_eq!(e.simplify(), Expr::False);
        let e = Expr::and(vec![Expr::eq(Proto, 6), Expr::eq(Proto, 6)]);
        assert_eq!(e.simplify(), Expr::eq(Proto, 6));
        let e = Expr::or(vec![Expr::eq(Proto, 6), Expr::not(Expr::eq(Proto, 6))]);
        assert_eq!(e.simplify(), Expr::True);
        let e = Expr::not(Expr::not(Expr::eq(Proto, 6)));
        assert_eq!(e.simplify(), Expr::eq(Proto, 6));
        let e = Expr::or(vec![
            Expr::cmp(DstPort, CmpOp::Lt, 1000),
            Expr::cmp(DstPort, CmpOp::Ge, 1000),
        ]);
        assert_eq!(e.simplify(), Expr::True);
    }

    #[test]
    fn equalities_decide_other_terms_of_a_conjunction() {
        let p = |s: &str| crate::parse(s).unwrap().to_string();
        assert_eq!(
            p("flags S and not flags A"),
            "proto = 6 and tcp_flags & 0x2 = 0x2 and not tcp_flags & 0x10 = 0x10"
        );
        assert_eq!(p("proto udp and not (proto tcp and port 80)"), "proto = 17");
        assert_eq!(p("proto udp and flags S"), "not any");
        assert_eq!(p("dst port 53 and port in [53 80]"), "dst_port = 53");
    }

    #[test]
    fn fields_lists_the_columns_to_load_once_in_schema_order() {
        let e = crate::parse("port 80 and proto tcp and not src port 22").unwrap();
        assert_eq!(e.fields(), vec![SrcPort, DstPort, Proto]);
        assert_eq!(Expr::True.fields(), vec![]);
    }

    #[test]
    fn prefixes_drop_covered_entries_and_fold_both_roots() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        let e = Expr::Prefix {
            field: SrcAddr,
            prefixes: vec![p("10.1.0.0/16"), p("10.0.0.0/8"), p("10.0.0.0/8")],
        };
        assert_eq!(
            e.simplify(),
            Expr::Prefix {
                field: SrcAddr,
                prefixes: vec![p("10.0.0.0/8")]
            }
        );
        let both = Expr::Prefix {
            field: SrcAddr,
            prefixes: vec![Prefix::root_v4(), Prefix::root_v6()],
        };
        assert_eq!(both.simplify(), Expr::True);
    }

    #[test]
    fn json_names_fields_and_round_trips() {
        let e = Expr::and(vec![
            Expr::eq(Proto, 6),
            Expr::Prefix {
                field: DstAddr,
                prefixes: vec!["10.0.0.0/8".parse().unwrap()],
            },
            Expr::not(Expr::Bits {
                field: TcpFlags,
                mask: 16,
                value: 16,
            }),
        ]);
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"op":"and","args":[{"op":"cmp","field":"proto","cmp":"eq","value":6},{"op":"prefix","field":"dst_addr","prefixes":["10.0.0.0/8"]},{"op":"not","arg":{"op":"bits","field":"tcp_flags","mask":16,"value":16}}]}"#
        );
        let back: Expr = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn sql_is_standard_and_names_columns() {
        let e = Expr::and(vec![
            Expr::eq(Proto, 6),
            Expr::In {
                field: DstPort,
                ranges: vec![(80, 80), (443, 443), (8000, 8080)],
            },
        ]);
        assert_eq!(
            e.to_sql(),
            "((proto = 6) AND ((dst_port IN (80, 443) OR dst_port BETWEEN 8000 AND 8080)))"
        );
        let p = Expr::Prefix {
            field: SrcAddr,
            prefixes: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(
            p.to_sql(),
            format!(
                "(src_addr_hi = 0 AND src_addr_lo BETWEEN {} AND {})",
                0xffff_0a00_0000u64, 0xffff_0aff_ffffu64
            )
        );
        assert_eq!(
            Expr::not(Expr::cmp(Bytes, CmpOp::Ne, 5)).to_sql(),
            "NOT (bytes <> 5)"
        );
    }
}
