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
//! An [`Expr`] is a tree over the fields of the one schema ([`flowdrill_model::Field`]) and
//! user-defined elements ([`flowdrill_model::CustomField`]):
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
//! | `Custom` | a test on a user-defined element ([`CustomTest`]) | `{"op":"custom","index":0,"name":"rtt_us","test":"cmp","kind":"unsigned","cmp":"gt","value":1000}` |
//!
//! A record without a value for a user-defined element (null) fails every `Custom` test, and
//! `not` of such a test selects it: `not` is always the complement of a selection. So custom
//! tests are never turned around by the simplifier (`not rtt_us < 5` also selects the records
//! without `rtt_us`; `rtt_us >= 5` does not).
//!
//! Invariants of a *simplified* expression (what [`crate::parse`] returns): integer leaves
//! only name integer fields and `Prefix` only address fields; no constant below the root;
//! `And`/`Or` have at least two arguments and no argument of their own kind; `In` ranges are
//! sorted, disjoint, non-adjacent and within the field's width; `Not` never wraps `Cmp`,
//! a constant or another `Not`; `Custom` range and prefix lists are not empty and have no
//! range `lo > hi` (they are otherwise as written).
//!
//! An IPv4 prefix contains only IPv4 addresses and an IPv6 prefix only IPv6 addresses
//! (`0.0.0.0/0` is "any IPv4", `::/0` "any IPv6"), as [`flowdrill_model::Prefix::contains`].

use flowdrill_model::{CustomKind, Field, Kind, Prefix};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};

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
    /// A test on a user-defined element ([`flowdrill_model::CustomField`]).
    Custom {
        /// The element's position in the registry the expression was parsed with: its index
        /// in [`flowdrill_model::FlowRecord::extra`], which [`Expr::matches`] reads.
        index: u16,
        /// The element's name: the column [`Expr::select`] reads
        /// ([`flowdrill_model::ColumnSource::custom`]).
        name: String,
        #[serde(flatten)]
        test: CustomTest,
    },
}

/// What an [`Expr::Custom`] node tests on a user-defined element's value. Each test fits
/// one [`CustomKind`] ([`CustomTest::kind`]); a value of another kind fails it. A record that
/// does not carry the element (null) fails every test, `!=` included.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "CustomTestJson", into = "CustomTestJson")]
pub enum CustomTest {
    /// `NAME exists`: the record carries a value (of the element's kind).
    Exists(CustomKind),
    /// An unsigned element: `NAME <cmp> N`, `NAME in [a b-c]`.
    Unsigned(NumTest<u64>),
    /// A signed element: `NAME <cmp> -N`, `NAME in [-5--1 3]`.
    Signed(NumTest<i64>),
    /// A float element: `NAME <cmp> 1.5`, `NAME in [0.5-1.5]`.
    Float(NumTest<Float>),
    /// A string element: `NAME = "text"` or `NAME != "text"` (`cmp` is `Eq` or `Ne`).
    String { cmp: CmpOp, text: String },
    /// A string element: `NAME ~ "text"`, the value contains `text`.
    Contains { text: String },
    /// A bytes element: `NAME = 0x0a0b` or `NAME != 0x0a0b` (`cmp` is `Eq` or `Ne`).
    Bytes { cmp: CmpOp, value: Vec<u8> },
    /// An address element: `NAME = ADDR[/LEN]` (the value is in the prefix) or `NAME !=
    /// ADDR[/LEN]` (it is not); `cmp` is `Eq` or `Ne`.
    Address { cmp: CmpOp, prefix: Prefix },
    /// An address element: `NAME in [ ... ]`, the value is in one of the prefixes.
    AddressIn { prefixes: Vec<Prefix> },
}

/// A test on a number of type `T`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NumTest<T> {
    /// `value <cmp> constant`.
    Cmp { cmp: CmpOp, value: T },
    /// The value is in one of the closed ranges `[lo, hi]`.
    In { ranges: Vec<(T, T)> },
}

impl<T: Copy> NumTest<T> {
    /// Whether `x` passes (a NaN passes nothing).
    #[inline]
    pub fn test<U: PartialOrd + From<T>>(&self, x: U) -> bool {
        match self {
            NumTest::Cmp { cmp, value } => cmp.apply(x, U::from(*value)),
            NumTest::In { ranges } => ranges
                .iter()
                .any(|&(lo, hi)| U::from(lo) <= x && x <= U::from(hi)),
        }
    }
}

/// A finite float constant: never NaN nor infinite, and `-0.0` is kept as `0.0`, so that
/// expressions compare and hash by value.
#[derive(Clone, Copy, Debug, PartialOrd)]
pub struct Float(f64);

impl Float {
    /// `x` as a constant; `None` for NaN and infinities.
    pub fn new(x: f64) -> Option<Float> {
        x.is_finite()
            .then_some(Float(if x == 0.0 { 0.0 } else { x }))
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Float {
    fn eq(&self, o: &Float) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}

impl Eq for Float {}

impl Hash for Float {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h)
    }
}

impl From<Float> for f64 {
    fn from(x: Float) -> f64 {
        x.0
    }
}

impl fmt::Display for Float {
    /// The shortest decimal that reads back to the same value, never with an exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl CustomTest {
    /// The element kind the test applies to.
    pub fn kind(&self) -> CustomKind {
        match self {
            CustomTest::Exists(k) => *k,
            CustomTest::Unsigned(_) => CustomKind::Unsigned,
            CustomTest::Signed(_) => CustomKind::Signed,
            CustomTest::Float(_) => CustomKind::Float,
            CustomTest::String { .. } | CustomTest::Contains { .. } => CustomKind::String,
            CustomTest::Bytes { .. } => CustomKind::Bytes,
            CustomTest::Address { .. } | CustomTest::AddressIn { .. } => CustomKind::Address,
        }
    }
}

/// `bytes` as the language writes them: `0x` and two lowercase hex digits a byte.
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Reads [`hex_bytes`]' form (`0x`/`0X`, an even number of hex digits, either case).
pub(crate) fn parse_hex_bytes(text: &str) -> Option<Vec<u8>> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// `text` in double quotes, with `"` and `\` escaped by a backslash (the lexer's string form).
pub(crate) fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The flat JSON form of a [`CustomTest`], merged into its `Custom` node:
/// `test` (`exists`, `cmp`, `in`, `contains`), `kind` (the element's kind), `cmp`, and `value`
/// (a number, a string, bytes as `"0x0a0b"`, a prefix as `"10.0.0.0/8"`), `ranges` (numbers)
/// or `prefixes` (addresses).
#[derive(Serialize, Deserialize)]
struct CustomTestJson {
    test: TestName,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmp: Option<CmpOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranges: Option<Vec<(serde_json::Value, serde_json::Value)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefixes: Option<Vec<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TestName {
    Exists,
    Cmp,
    In,
    Contains,
}

impl CustomTestJson {
    fn new(test: TestName, kind: CustomKind) -> CustomTestJson {
        CustomTestJson {
            test,
            kind: kind.name().to_string(),
            cmp: None,
            value: None,
            ranges: None,
            prefixes: None,
        }
    }
    fn num<T: Copy>(t: &NumTest<T>, kind: CustomKind, json: fn(T) -> serde_json::Value) -> Self {
        match t {
            NumTest::Cmp { cmp, value } => CustomTestJson {
                cmp: Some(*cmp),
                value: Some(json(*value)),
                ..CustomTestJson::new(TestName::Cmp, kind)
            },
            NumTest::In { ranges } => CustomTestJson {
                ranges: Some(ranges.iter().map(|&(a, b)| (json(a), json(b))).collect()),
                ..CustomTestJson::new(TestName::In, kind)
            },
        }
    }
}

impl From<CustomTest> for CustomTestJson {
    fn from(t: CustomTest) -> CustomTestJson {
        use serde_json::Value as V;
        let kind = t.kind();
        let cmp_with = |cmp: CmpOp, value: V| CustomTestJson {
            cmp: Some(cmp),
            value: Some(value),
            ..CustomTestJson::new(TestName::Cmp, kind)
        };
        match t {
            CustomTest::Exists(k) => CustomTestJson::new(TestName::Exists, k),
            CustomTest::Unsigned(n) => CustomTestJson::num(&n, CustomKind::Unsigned, V::from),
            CustomTest::Signed(n) => CustomTestJson::num(&n, CustomKind::Signed, V::from),
            CustomTest::Float(n) => CustomTestJson::num(&n, CustomKind::Float, |x| V::from(x.0)),
            CustomTest::String { cmp, text } => cmp_with(cmp, V::String(text)),
            CustomTest::Contains { text } => CustomTestJson {
                value: Some(V::String(text)),
                ..CustomTestJson::new(TestName::Contains, kind)
            },
            CustomTest::Bytes { cmp, value } => cmp_with(cmp, V::String(hex_bytes(&value))),
            CustomTest::Address { cmp, prefix } => cmp_with(cmp, V::String(prefix.to_string())),
            CustomTest::AddressIn { prefixes } => CustomTestJson {
                prefixes: Some(prefixes.iter().map(|p| p.to_string()).collect()),
                ..CustomTestJson::new(TestName::In, kind)
            },
        }
    }
}

impl TryFrom<CustomTestJson> for CustomTest {
    type Error = String;
    fn try_from(j: CustomTestJson) -> Result<CustomTest, String> {
        use serde_json::Value as V;
        let kind = CustomKind::from_name(&j.kind)
            .ok_or_else(|| format!("unknown kind of user-defined element {}", j.kind))?;
        if j.test == TestName::Exists {
            return Ok(CustomTest::Exists(kind));
        }
        let bad = || format!("a {kind} test needs other fields");
        let value = || j.value.clone().ok_or_else(bad);
        let eq_ne = || match j.cmp {
            Some(c @ (CmpOp::Eq | CmpOp::Ne)) => Ok(c),
            _ => Err(format!("a {kind} comparison needs cmp eq or ne")),
        };
        let string = |v: V| match v {
            V::String(s) => Ok(s),
            other => Err(format!("expected a string, found {other}")),
        };
        fn num<T>(
            j: &CustomTestJson,
            from: impl Fn(&V) -> Option<T>,
            kind: CustomKind,
        ) -> Result<NumTest<T>, String> {
            let get = |v: &V| from(v).ok_or_else(|| format!("{v} is not a {kind} value"));
            match (j.test, j.cmp, &j.value, &j.ranges) {
                (TestName::Cmp, Some(cmp), Some(v), _) => Ok(NumTest::Cmp {
                    cmp,
                    value: get(v)?,
                }),
                (TestName::In, _, _, Some(r)) => Ok(NumTest::In {
                    ranges: r
                        .iter()
                        .map(|(a, b)| Ok((get(a)?, get(b)?)))
                        .collect::<Result<_, String>>()?,
                }),
                _ => Err(format!("a {kind} test needs cmp and value, or ranges")),
            }
        }
        let prefix = |s: String| s.parse::<Prefix>().map_err(|e| e.to_string());
        Ok(match (kind, j.test) {
            (CustomKind::Unsigned, _) => CustomTest::Unsigned(num(&j, V::as_u64, kind)?),
            (CustomKind::Signed, _) => CustomTest::Signed(num(&j, V::as_i64, kind)?),
            (CustomKind::Float, _) => {
                CustomTest::Float(num(&j, |v| v.as_f64().and_then(Float::new), kind)?)
            }
            (CustomKind::String, TestName::Contains) => CustomTest::Contains {
                text: string(value()?)?,
            },
            (CustomKind::String, TestName::Cmp) => CustomTest::String {
                cmp: eq_ne()?,
                text: string(value()?)?,
            },
            (CustomKind::Bytes, TestName::Cmp) => CustomTest::Bytes {
                cmp: eq_ne()?,
                value: parse_hex_bytes(&string(value()?)?)
                    .ok_or("bytes are written 0x and an even number of hex digits")?,
            },
            (CustomKind::Address, TestName::Cmp) => CustomTest::Address {
                cmp: eq_ne()?,
                prefix: prefix(string(value()?)?)?,
            },
            (CustomKind::Address, TestName::In) => CustomTest::AddressIn {
                prefixes: j
                    .prefixes
                    .clone()
                    .ok_or_else(bad)?
                    .into_iter()
                    .map(prefix)
                    .collect::<Result<_, _>>()?,
            },
            _ => return Err(bad()),
        })
    }
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

    /// The schema fields the predicate reads, each once, in schema order: the columns a batch
    /// must carry for [`Expr::select`] (with the user-defined ones of [`Expr::custom_names`]).
    pub fn fields(&self) -> Vec<Field> {
        fn walk(e: &Expr, out: &mut Vec<Field>) {
            match e {
                Expr::True | Expr::False | Expr::Custom { .. } => {}
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

    /// The user-defined elements the predicate reads, each once, in registry order: the
    /// extra columns a batch must carry for [`Expr::select`].
    pub fn custom_names(&self) -> Vec<String> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<(u16, &'a str)>) {
            match e {
                Expr::Custom { index, name, .. } => out.push((*index, name)),
                Expr::And { args } | Expr::Or { args } => args.iter().for_each(|a| walk(a, out)),
                Expr::Not { arg } => walk(arg, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort();
        out.dedup();
        out.into_iter().map(|(_, n)| n.to_string()).collect()
    }

    /// Constant-folds and normalises the expression; the result has the invariants listed in
    /// the module documentation and selects exactly the same records.
    pub fn simplify(self) -> Expr {
        match self {
            Expr::True | Expr::False => self,
            Expr::Custom { index, name, test } => simplify_custom(index, name, test),
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

/// Custom tests stay as written (nulls make `not x < 5` differ from `x >= 5`), except that
/// empty ranges are dropped and a test of an empty set is `False`.
fn simplify_custom(index: u16, name: String, mut test: CustomTest) -> Expr {
    fn retain<T: PartialOrd>(t: &mut NumTest<T>) -> bool {
        match t {
            NumTest::In { ranges } => {
                ranges.retain(|(lo, hi)| lo <= hi);
                !ranges.is_empty()
            }
            NumTest::Cmp { .. } => true,
        }
    }
    let some = match &mut test {
        CustomTest::Unsigned(t) => retain(t),
        CustomTest::Signed(t) => retain(t),
        CustomTest::Float(t) => retain(t),
        CustomTest::AddressIn { prefixes } => !prefixes.is_empty(),
        _ => true,
    };
    if some {
        Expr::Custom { index, name, test }
    } else {
        Expr::False
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
        Expr::True | Expr::False | Expr::Prefix { .. } | Expr::Custom { .. } => e.clone(),
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
            Expr::In { field, ranges } => write_ranges(f, field, ranges),
            Expr::Prefix { field, prefixes } => write_prefixes(f, field, prefixes),
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
            Expr::Custom { name, test, .. } => write_custom(f, name, test),
        }
    }
}

/// `NAME in [a b-c]`.
fn write_ranges<T: fmt::Display + PartialEq>(
    f: &mut fmt::Formatter<'_>,
    name: &dyn fmt::Display,
    ranges: &[(T, T)],
) -> fmt::Result {
    write!(f, "{name} in [")?;
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

/// `NAME in [p q]`.
fn write_prefixes(
    f: &mut fmt::Formatter<'_>,
    name: &dyn fmt::Display,
    prefixes: &[Prefix],
) -> fmt::Result {
    write!(f, "{name} in [")?;
    for (i, p) in prefixes.iter().enumerate() {
        write!(f, "{}{p}", if i == 0 { "" } else { " " })?;
    }
    f.write_str("]")
}

/// `NAME <test>` in the language's text form.
fn write_custom(f: &mut fmt::Formatter<'_>, name: &str, test: &CustomTest) -> fmt::Result {
    fn num<T: fmt::Display + PartialEq>(
        f: &mut fmt::Formatter<'_>,
        name: &str,
        t: &NumTest<T>,
    ) -> fmt::Result {
        match t {
            NumTest::Cmp { cmp, value } => write!(f, "{name} {} {value}", cmp.symbol()),
            NumTest::In { ranges } => write_ranges(f, &name, ranges),
        }
    }
    match test {
        CustomTest::Exists(_) => write!(f, "{name} exists"),
        CustomTest::Unsigned(t) => num(f, name, t),
        CustomTest::Signed(t) => num(f, name, t),
        CustomTest::Float(t) => num(f, name, t),
        CustomTest::String { cmp, text } => write!(f, "{name} {} {}", cmp.symbol(), quote(text)),
        CustomTest::Contains { text } => write!(f, "{name} ~ {}", quote(text)),
        CustomTest::Bytes { cmp, value } => {
            write!(f, "{name} {} {}", cmp.symbol(), hex_bytes(value))
        }
        CustomTest::Address { cmp, prefix } => write!(f, "{name} {} {prefix}", cmp.symbol()),
        CustomTest::AddressIn { prefixes } => write_prefixes(f, &name, prefixes),
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

    fn custom(index: u16, name: &str, test: CustomTest) -> Expr {
        Expr::Custom {
            index,
            name: name.into(),
            test,
        }
    }

    fn unsigned(cmp: CmpOp, value: u64) -> CustomTest {
        CustomTest::Unsigned(NumTest::Cmp { cmp, value })
    }

    #[test]
    fn custom_nodes_have_a_flat_json_form_that_round_trips() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        let half = Float::new(0.5).unwrap();
        let cases = [
            (
                custom(0, "rtt_us", unsigned(CmpOp::Gt, 1000)),
                r#"{"op":"custom","index":0,"name":"rtt_us","test":"cmp","kind":"unsigned","cmp":"gt","value":1000}"#,
            ),
            (
                custom(
                    1,
                    "delta",
                    CustomTest::Signed(NumTest::In {
                        ranges: vec![(-5, -1), (3, 3)],
                    }),
                ),
                r#"{"op":"custom","index":1,"name":"delta","test":"in","kind":"signed","ranges":[[-5,-1],[3,3]]}"#,
            ),
            (
                custom(
                    2,
                    "loss",
                    CustomTest::Float(NumTest::Cmp {
                        cmp: CmpOp::Le,
                        value: half,
                    }),
                ),
                r#"{"op":"custom","index":2,"name":"loss","test":"cmp","kind":"float","cmp":"le","value":0.5}"#,
            ),
            (
                custom(
                    3,
                    "app",
                    CustomTest::String {
                        cmp: CmpOp::Ne,
                        text: "it's".into(),
                    },
                ),
                r#"{"op":"custom","index":3,"name":"app","test":"cmp","kind":"string","cmp":"ne","value":"it's"}"#,
            ),
            (
                custom(3, "app", CustomTest::Contains { text: "dn".into() }),
                r#"{"op":"custom","index":3,"name":"app","test":"contains","kind":"string","value":"dn"}"#,
            ),
            (
                custom(
                    4,
                    "tag",
                    CustomTest::Bytes {
                        cmp: CmpOp::Eq,
                        value: vec![10, 255],
                    },
                ),
                r#"{"op":"custom","index":4,"name":"tag","test":"cmp","kind":"bytes","cmp":"eq","value":"0x0aff"}"#,
            ),
            (
                custom(
                    5,
                    "peer",
                    CustomTest::Address {
                        cmp: CmpOp::Eq,
                        prefix: p("10.0.0.0/8"),
                    },
                ),
                r#"{"op":"custom","index":5,"name":"peer","test":"cmp","kind":"address","cmp":"eq","value":"10.0.0.0/8"}"#,
            ),
            (
                custom(
                    5,
                    "peer",
                    CustomTest::AddressIn {
                        prefixes: vec![p("10.0.0.0/8"), p("2001:db8::/32")],
                    },
                ),
                r#"{"op":"custom","index":5,"name":"peer","test":"in","kind":"address","prefixes":["10.0.0.0/8","2001:db8::/32"]}"#,
            ),
            (
                custom(5, "peer", CustomTest::Exists(CustomKind::Address)),
                r#"{"op":"custom","index":5,"name":"peer","test":"exists","kind":"address"}"#,
            ),
        ];
        for (e, want) in cases {
            let j = serde_json::to_string(&e).unwrap();
            assert_eq!(j, want);
            let back: Expr = serde_json::from_str(&j).unwrap();
            assert_eq!(back, e, "{j}");
        }
        // Nested in other nodes.
        let e = Expr::and(vec![
            Expr::not(custom(5, "peer", CustomTest::Exists(CustomKind::Address))),
            Expr::eq(Proto, 6),
        ]);
        let back: Expr = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        // Ill-typed forms are refused.
        for bad in [
            r#"{"op":"custom","index":0,"name":"x","test":"cmp","kind":"unsigned","cmp":"gt","value":-1}"#,
            r#"{"op":"custom","index":0,"name":"x","test":"cmp","kind":"string","cmp":"lt","value":"a"}"#,
            r#"{"op":"custom","index":0,"name":"x","test":"cmp","kind":"bytes","cmp":"eq","value":"0xabc"}"#,
            r#"{"op":"custom","index":0,"name":"x","test":"cmp","kind":"weird","cmp":"eq","value":1}"#,
            r#"{"op":"custom","index":0,"name":"x","test":"contains","kind":"address","value":"a"}"#,
            r#"{"op":"custom","index":0,"name":"x","test":"cmp"}"#,
        ] {
            assert!(serde_json::from_str::<Expr>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_nodes_are_leaves_the_simplifier_keeps() {
        let lt = custom(0, "rtt_us", unsigned(CmpOp::Lt, 5));
        // Not turned around into `>= 5`: that would drop the records without the element.
        assert_eq!(Expr::not(lt.clone()).simplify(), Expr::not(lt.clone()));
        assert_eq!(Expr::and(vec![lt.clone(), lt.clone()]).simplify(), lt);
        let both = Expr::and(vec![lt.clone(), Expr::not(lt.clone())]);
        assert_eq!(both.simplify(), Expr::False);
        let either = Expr::or(vec![lt.clone(), Expr::not(lt.clone())]);
        assert_eq!(either.simplify(), Expr::True);
        let e = Expr::and(vec![Expr::eq(Proto, 6), lt.clone()]);
        assert_eq!(e.fields(), vec![Proto]);
        assert_eq!(e.custom_names(), vec!["rtt_us".to_string()]);
        assert_eq!(e.to_string(), "proto = 6 and rtt_us < 5");
    }
}
