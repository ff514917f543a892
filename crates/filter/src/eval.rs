//! Evaluation of the predicate IR: one record at a time ([`Expr::matches`]) and column by
//! column over a batch ([`Expr::select`]) into a selection [`Bitmap`].
//!
//! The column-wise evaluator computes each leaf over a whole column into 64-bit words (one
//! bit per record; the inner loop over 64 values is branch-free so that it vectorises) and
//! combines the words with `&`, `|` and `!`. Both evaluators must select exactly the same
//! records for every expression; `tests/tests.rs` checks that on random records and
//! expressions.
//!
//! Tests on user-defined elements read `FlowRecord::extra` by the element's index row-wise
//! and the element's nullable column by name column-wise; both go through the same
//! per-value test ([`CustomTest::accepts`]), and a missing value (null) fails it.

use crate::error::FilterError;
use crate::ir::{CmpOp, CustomTest, Expr};
use flowdrill_model::{
    Addr, ColumnRef, ColumnSource, CustomColumnRef, CustomKind, CustomValue, Field, FlowRecord,
    Prefix, Value,
};

/// A selection over a batch of `len` records: bit `i` is set when record `i` matches.
/// Invariant: the bits past `len` in the last word are zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// No record selected.
    pub fn zeros(len: usize) -> Bitmap {
        Bitmap {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }
    /// Every record selected.
    pub fn ones(len: usize) -> Bitmap {
        let mut b = Bitmap {
            words: vec![!0; len.div_ceil(64)],
            len,
        };
        b.clear_tail();
        b
    }
    /// A bitmap from one boolean per record.
    pub fn from_bools(bools: &[bool]) -> Bitmap {
        let mut b = Bitmap::zeros(bools.len());
        for (i, _) in bools.iter().enumerate().filter(|(_, b)| **b) {
            b.words[i / 64] |= 1 << (i % 64);
        }
        b
    }
    fn clear_tail(&mut self) {
        if !self.len.is_multiple_of(64)
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << (self.len % 64)) - 1;
        }
    }
    /// Number of records the bitmap is over.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether record `i` is selected. Panics when `i >= len()`.
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "index {i} out of a bitmap of {}", self.len);
        self.words[i / 64] >> (i % 64) & 1 == 1
    }
    /// Number of selected records.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The 64-bit words, record `i` at bit `i % 64` of word `i / 64`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }
    /// Indices of the selected records, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    wi * 64 + b
                })
            })
        })
    }
    /// One boolean per record.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }
    /// Keeps only the bits also set in `o` (same length).
    pub fn and_with(&mut self, o: &Bitmap) {
        self.and_assign(o);
    }
    /// Clears the bits set in `o` (same length).
    pub fn and_not_with(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= !b);
    }
    fn and_assign(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= b);
    }
    fn or_assign(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a |= b);
    }
    /// Complements the selection (bits past `len` stay clear).
    pub fn invert(&mut self) {
        self.words.iter_mut().for_each(|w| *w = !*w);
        self.clear_tail();
    }
    fn all_zero(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
}

/// The mask/value pair that tests membership of a `u128` address in `p` with one `&` and
/// one `==`, plus whether IPv4 addresses must be excluded separately (IPv6 prefixes short
/// enough to cover `::ffff:0:0/96`).
#[derive(Clone, Copy)]
struct PrefixTest {
    mask: u128,
    net: u128,
    exclude_v4: bool,
}

impl PrefixTest {
    fn new(p: Prefix) -> PrefixTest {
        // IPv4 prefixes are tested on the mapped form: the 96 high bits must be ::ffff.
        let bits = if p.is_v4() {
            96 + p.len() as u32
        } else {
            p.len() as u32
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        PrefixTest {
            mask,
            net: p.addr().0 & mask,
            exclude_v4: !p.is_v4(),
        }
    }
    #[inline(always)]
    fn test(self, a: u128) -> bool {
        (a & self.mask == self.net) & !(self.exclude_v4 & Addr(a).is_v4())
    }
}

impl Expr {
    /// Whether one record satisfies the predicate.
    pub fn matches(&self, r: &FlowRecord) -> bool {
        match self {
            Expr::True => true,
            Expr::False => false,
            Expr::Cmp { field, cmp, value } => match r.get(*field) {
                Value::U64(x) => cmp.apply(x, *value),
                Value::Addr(_) => false,
            },
            Expr::In { field, ranges } => match r.get(*field) {
                Value::U64(x) => ranges.iter().any(|&(lo, hi)| lo <= x && x <= hi),
                Value::Addr(_) => false,
            },
            Expr::Prefix { field, prefixes } => match r.get(*field) {
                Value::Addr(a) => prefixes.iter().any(|p| p.contains(a)),
                Value::U64(_) => false,
            },
            Expr::Bits { field, mask, value } => match r.get(*field) {
                Value::U64(x) => x & mask == *value,
                Value::Addr(_) => false,
            },
            Expr::And { args } => args.iter().all(|a| a.matches(r)),
            Expr::Or { args } => args.iter().any(|a| a.matches(r)),
            Expr::Not { arg } => !arg.matches(r),
            Expr::Custom { index, test, .. } => r
                .extra
                .iter()
                .find(|(i, _)| i == index)
                .is_some_and(|(_, v)| test.accepts(v)),
        }
    }

    /// The records of a batch that satisfy the predicate. Fails when the batch lacks a
    /// column the predicate reads ([`Expr::fields`] lists them).
    pub fn select<S: ColumnSource + ?Sized>(&self, src: &S) -> Result<Bitmap, FilterError> {
        self.select_within(src, None)
    }

    /// The records of a batch that satisfy the predicate *and* are set in `mask` (all records
    /// when `None`). Leaves skip the 64-record words where the mask is empty, so an `and`
    /// evaluates each term only where the terms before it held, an `or` only where they did
    /// not, and a rule list only on the records no earlier rule took.
    ///
    /// Invariant: the result is a subset of `mask`.
    pub fn select_within<S: ColumnSource + ?Sized>(
        &self,
        src: &S,
        mask: Option<&Bitmap>,
    ) -> Result<Bitmap, FilterError> {
        let len = src.len();
        if let Some(m) = mask {
            assert_eq!(m.len(), len, "the mask covers the batch");
        }
        let all = || mask.cloned().unwrap_or_else(|| Bitmap::ones(len));
        match self {
            Expr::True => Ok(all()),
            Expr::False => Ok(Bitmap::zeros(len)),
            Expr::And { args } => {
                let mut acc = all();
                for a in by_cost(args) {
                    if acc.all_zero() {
                        break;
                    }
                    // a ⊆ acc by the invariant, so it is the new conjunction.
                    acc = a.select_within(src, Some(&acc))?;
                }
                Ok(acc)
            }
            Expr::Or { args } => {
                let mut acc = Bitmap::zeros(len);
                let mut rest = all();
                for a in by_cost(args) {
                    if rest.all_zero() {
                        break;
                    }
                    let b = a.select_within(src, Some(&rest))?;
                    acc.or_assign(&b);
                    rest.and_not_with(&b);
                }
                Ok(acc)
            }
            Expr::Not { arg } => {
                let inner = arg.select_within(src, mask)?;
                let mut out = all();
                out.and_not_with(&inner);
                Ok(out)
            }
            Expr::Cmp { field, .. }
            | Expr::In { field, .. }
            | Expr::Prefix { field, .. }
            | Expr::Bits { field, .. } => {
                let col = column(src, *field)?;
                let mut out = leaf(self, col, len, mask.map(|m| m.words.as_slice()));
                if let Some(m) = mask {
                    out.and_assign(m);
                }
                Ok(out)
            }
            Expr::Custom { name, test, .. } => {
                let col = custom_column(src, name)?;
                let mut out = custom_leaf(test, col, mask.map(|m| m.words.as_slice()));
                if let Some(m) = mask {
                    out.and_assign(m);
                }
                Ok(out)
            }
        }
    }

    /// A rough relative cost of evaluating the expression column-wise: bytes read per record,
    /// more for address prefixes and long range lists.
    fn cost(&self) -> u32 {
        let width = |f: &Field| match f.info().kind {
            flowdrill_model::Kind::Unsigned(bits) => bits as u32 / 8,
            flowdrill_model::Kind::TimeMs => 8,
            flowdrill_model::Kind::Address => 16,
        };
        match self {
            Expr::True | Expr::False => 0,
            Expr::Cmp { field, .. } | Expr::Bits { field, .. } => width(field),
            Expr::In { field, ranges } => width(field) + ranges.len().min(8) as u32,
            Expr::Prefix { field, prefixes } => width(field) * prefixes.len() as u32,
            Expr::And { args } | Expr::Or { args } => args.iter().map(Expr::cost).sum(),
            Expr::Not { arg } => arg.cost(),
            // Nullable columns: a tag and a value per record; strings and bytes behind a
            // pointer.
            Expr::Custom { test, .. } => match test {
                CustomTest::Exists(_) => 8,
                CustomTest::Unsigned(_) | CustomTest::Signed(_) | CustomTest::Float(_) => 16,
                CustomTest::Address { .. } => 32,
                CustomTest::AddressIn { prefixes } => 32 * prefixes.len() as u32,
                CustomTest::String { .. }
                | CustomTest::Contains { .. }
                | CustomTest::Bytes { .. } => 48,
            },
        }
    }
}

impl CustomTest {
    /// Whether a value passes the test; a value of another kind than the test's fails it
    /// (`exists` included: the store keeps such a value as null).
    pub fn accepts(&self, v: &CustomValue) -> bool {
        match v {
            CustomValue::Unsigned(x) => self.on_u64(*x),
            CustomValue::Signed(x) => self.on_i64(*x),
            CustomValue::Float(x) => self.on_f64(*x),
            CustomValue::String(x) => self.on_str(x),
            CustomValue::Bytes(x) => self.on_bytes(x),
            CustomValue::Address(x) => self.on_addr(*x),
        }
    }
    #[inline]
    fn on_u64(&self, x: u64) -> bool {
        match self {
            CustomTest::Exists(CustomKind::Unsigned) => true,
            CustomTest::Unsigned(t) => t.test(x),
            _ => false,
        }
    }
    #[inline]
    fn on_i64(&self, x: i64) -> bool {
        match self {
            CustomTest::Exists(CustomKind::Signed) => true,
            CustomTest::Signed(t) => t.test(x),
            _ => false,
        }
    }
    #[inline]
    fn on_f64(&self, x: f64) -> bool {
        match self {
            CustomTest::Exists(CustomKind::Float) => true,
            CustomTest::Float(t) => t.test(x),
            _ => false,
        }
    }
    #[inline]
    fn on_str(&self, x: &str) -> bool {
        match self {
            CustomTest::Exists(CustomKind::String) => true,
            CustomTest::String { cmp, text } => cmp.apply(x, text.as_str()),
            CustomTest::Contains { text } => x.contains(text.as_str()),
            _ => false,
        }
    }
    #[inline]
    fn on_bytes(&self, x: &[u8]) -> bool {
        match self {
            CustomTest::Exists(CustomKind::Bytes) => true,
            CustomTest::Bytes { cmp, value } => cmp.apply(x, value.as_slice()),
            _ => false,
        }
    }
    #[inline]
    fn on_addr(&self, x: Addr) -> bool {
        match self {
            CustomTest::Exists(CustomKind::Address) => true,
            CustomTest::Address { cmp, prefix } => match cmp {
                CmpOp::Eq => prefix.contains(x),
                CmpOp::Ne => !prefix.contains(x),
                _ => false,
            },
            CustomTest::AddressIn { prefixes } => prefixes.iter().any(|p| p.contains(x)),
            _ => false,
        }
    }
}

/// The terms of a junction, cheapest first (the selection is the same in any order).
fn by_cost(args: &[Expr]) -> Vec<&Expr> {
    let mut v: Vec<&Expr> = args.iter().collect();
    v.sort_by_key(|e| e.cost());
    v
}

fn column<S: ColumnSource + ?Sized>(src: &S, field: Field) -> Result<ColumnRef<'_>, FilterError> {
    let col = src
        .column(field)
        .ok_or_else(|| FilterError::ColumnMissing {
            field: field.name().to_string(),
        })?;
    check_len(field.name(), col.len(), src.len())?;
    Ok(col)
}

fn custom_column<'s, S: ColumnSource + ?Sized>(
    src: &'s S,
    name: &str,
) -> Result<CustomColumnRef<'s>, FilterError> {
    let col = src.custom(name).ok_or_else(|| FilterError::ColumnMissing {
        field: name.to_string(),
    })?;
    check_len(name, col.len(), src.len())?;
    Ok(col)
}

fn check_len(name: &str, got: usize, want: usize) -> Result<(), FilterError> {
    if got != want {
        return Err(FilterError::ColumnLength {
            field: name.to_string(),
            got,
            want,
        });
    }
    Ok(())
}

/// A user-defined element's test over its column; nulls are never selected.
fn custom_leaf(test: &CustomTest, col: CustomColumnRef<'_>, sel: Option<&[u64]>) -> Bitmap {
    match col {
        CustomColumnRef::Unsigned(c) => fill(c, sel, |x| x.is_some_and(|x| test.on_u64(x))),
        CustomColumnRef::Signed(c) => fill(c, sel, |x| x.is_some_and(|x| test.on_i64(x))),
        CustomColumnRef::Float(c) => fill(c, sel, |x| x.is_some_and(|x| test.on_f64(x))),
        CustomColumnRef::String(c) => {
            fill(c, sel, |x| x.as_deref().is_some_and(|x| test.on_str(x)))
        }
        CustomColumnRef::Bytes(c) => {
            fill(c, sel, |x| x.as_deref().is_some_and(|x| test.on_bytes(x)))
        }
        CustomColumnRef::Address(c) => fill(c, sel, |x| x.is_some_and(|x| test.on_addr(x))),
    }
}

/// Sets bit `i` of the result to `f(col[i])`, for the words where `mask` has a bit (all
/// words when `None`; other words stay zero). The 64-value inner loop has no branch.
#[inline(always)]
fn fill<T>(col: &[T], mask: Option<&[u64]>, f: impl Fn(&T) -> bool) -> Bitmap {
    let mut out = Bitmap::zeros(col.len());
    let word = |c: &[T]| {
        let mut x = 0u64;
        for (j, v) in c.iter().enumerate() {
            x |= (f(v) as u64) << j;
        }
        x
    };
    let chunks = col.chunks_exact(64);
    let rem = chunks.remainder();
    match mask {
        None => {
            for (w, c) in out.words.iter_mut().zip(chunks) {
                let c: &[T; 64] = c.try_into().expect("chunks_exact(64)");
                *w = word(c);
            }
        }
        Some(m) => {
            for ((w, c), &mw) in out.words.iter_mut().zip(chunks).zip(m) {
                if mw != 0 {
                    let c: &[T; 64] = c.try_into().expect("chunks_exact(64)");
                    *w = word(c);
                }
            }
        }
    }
    if !rem.is_empty() && mask.is_none_or(|m| m.last() != Some(&0)) {
        *out.words.last_mut().expect("a remainder has a word") = word(rem);
    }
    out
}

/// A comparison over an integer column of type `T`, with the constant converted to `T`.
#[inline(always)]
fn fill_cmp<T>(col: &[T], sel: Option<&[u64]>, cmp: CmpOp, value: u64) -> Bitmap
where
    T: Copy + PartialOrd + TryFrom<u64>,
{
    let Ok(v) = T::try_from(value) else {
        // The constant is above every value of the column.
        let all = matches!(cmp, CmpOp::Ne | CmpOp::Lt | CmpOp::Le);
        return if all {
            Bitmap::ones(col.len())
        } else {
            Bitmap::zeros(col.len())
        };
    };
    match cmp {
        CmpOp::Eq => fill(col, sel, |&x| x == v),
        CmpOp::Ne => fill(col, sel, |&x| x != v),
        CmpOp::Lt => fill(col, sel, |&x| x < v),
        CmpOp::Le => fill(col, sel, |&x| x <= v),
        CmpOp::Gt => fill(col, sel, |&x| x > v),
        CmpOp::Ge => fill(col, sel, |&x| x >= v),
    }
}

/// Range membership: a lookup table for 8- and 16-bit columns, binary search otherwise.
fn fill_in<T>(col: &[T], sel: Option<&[u64]>, ranges: &[(u64, u64)], small: bool) -> Bitmap
where
    T: Copy + Into<u64>,
{
    if let [(lo, hi)] = ranges {
        let (lo, hi) = (*lo, *hi);
        return fill(col, sel, |&x| {
            let x: u64 = x.into();
            (x >= lo) & (x <= hi)
        });
    }
    if small {
        let mut table = vec![false; 1 << 16];
        for &(lo, hi) in ranges {
            let hi = hi.min(0xffff);
            if lo <= hi {
                table[lo as usize..=hi as usize].fill(true);
            }
        }
        return fill(col, sel, |&x| table[(x.into() as usize) & 0xffff]);
    }
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    fill(col, sel, |&x| {
        let x: u64 = x.into();
        // The last range starting at or below x is the only candidate when ranges are
        // disjoint; overlapping (unsimplified) ranges fall back to a scan.
        let i = sorted.partition_point(|&(lo, _)| lo <= x);
        i > 0 && (sorted[i - 1].1 >= x || sorted[..i - 1].iter().any(|&(_, hi)| hi >= x))
    })
}

fn leaf(e: &Expr, col: ColumnRef<'_>, len: usize, sel: Option<&[u64]>) -> Bitmap {
    match (e, col) {
        (Expr::Cmp { cmp, value, .. }, ColumnRef::U8(c)) => fill_cmp(c, sel, *cmp, *value),
        (Expr::Cmp { cmp, value, .. }, ColumnRef::U16(c)) => fill_cmp(c, sel, *cmp, *value),
        (Expr::Cmp { cmp, value, .. }, ColumnRef::U32(c)) => fill_cmp(c, sel, *cmp, *value),
        (Expr::Cmp { cmp, value, .. }, ColumnRef::U64(c)) => fill_cmp(c, sel, *cmp, *value),
        (Expr::In { ranges, .. }, ColumnRef::U8(c)) => fill_in(c, sel, ranges, true),
        (Expr::In { ranges, .. }, ColumnRef::U16(c)) => fill_in(c, sel, ranges, true),
        (Expr::In { ranges, .. }, ColumnRef::U32(c)) => fill_in(c, sel, ranges, false),
        (Expr::In { ranges, .. }, ColumnRef::U64(c)) => fill_in(c, sel, ranges, false),
        (Expr::Bits { mask, value, .. }, ColumnRef::U8(c)) => {
            let (m, v) = (*mask, *value);
            fill(c, sel, |&x| x as u64 & m == v)
        }
        (Expr::Bits { mask, value, .. }, ColumnRef::U16(c)) => {
            let (m, v) = (*mask, *value);
            fill(c, sel, |&x| x as u64 & m == v)
        }
        (Expr::Bits { mask, value, .. }, ColumnRef::U32(c)) => {
            let (m, v) = (*mask, *value);
            fill(c, sel, |&x| x as u64 & m == v)
        }
        (Expr::Bits { mask, value, .. }, ColumnRef::U64(c)) => {
            let (m, v) = (*mask, *value);
            fill(c, sel, |&x| x & m == v)
        }
        (Expr::Prefix { prefixes, .. }, ColumnRef::Addr(c)) => {
            let tests: Vec<PrefixTest> = prefixes.iter().map(|p| PrefixTest::new(*p)).collect();
            match tests.as_slice() {
                // An IPv4 prefix excludes IPv6 through its mask already: one `&` and `==`.
                [t] if !t.exclude_v4 => {
                    let (m, n) = (t.mask, t.net);
                    fill(c, sel, |&a| a & m == n)
                }
                [t] => {
                    let t = *t;
                    fill(c, sel, |&a| t.test(a))
                }
                _ => fill(c, sel, |&a| tests.iter().any(|t| t.test(a))),
            }
        }
        // A leaf whose kind does not fit the column's (integer test on an address column or
        // the reverse) selects nothing, as in the row evaluator.
        _ => Bitmap::zeros(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::RecordColumns;

    fn rec(proto: u8, dport: u16, src: &str) -> FlowRecord {
        FlowRecord {
            proto,
            dst_port: dport,
            src_addr: src.parse().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn bitmaps_keep_the_tail_clear() {
        let b = Bitmap::ones(70);
        assert_eq!(b.count_ones(), 70);
        let mut n = b.clone();
        n.invert();
        assert_eq!(n.count_ones(), 0);
        let f = Bitmap::from_bools(&[true, false, true]);
        assert_eq!(f.iter_ones().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(f.to_bools(), vec![true, false, true]);
    }

    #[test]
    fn column_and_row_evaluation_agree_on_a_small_batch() {
        let recs: Vec<FlowRecord> = (0..200u16)
            .map(|i| {
                rec(
                    if i % 3 == 0 { 6 } else { 17 },
                    400 + i % 50,
                    if i % 2 == 0 {
                        "10.0.0.1"
                    } else {
                        "2001:db8::1"
                    },
                )
            })
            .collect();
        let cols = RecordColumns::from_records(&recs);
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        let exprs = [
            Expr::and(vec![
                Expr::eq(Field::Proto, 6),
                Expr::eq(Field::DstPort, 443),
            ]),
            Expr::In {
                field: Field::DstPort,
                ranges: vec![(400, 410), (440, 445)],
            },
            Expr::Prefix {
                field: Field::SrcAddr,
                prefixes: vec![Prefix::root_v6()],
            },
            Expr::not(Expr::Prefix {
                field: Field::SrcAddr,
                prefixes: vec![p("10.0.0.0/8"), p("2001:db8::/32")],
            }),
            Expr::cmp(Field::Proto, CmpOp::Lt, 1000),
        ];
        for e in exprs {
            let b = e.select(&cols).unwrap();
            let want: Vec<bool> = recs.iter().map(|r| e.matches(r)).collect();
            assert_eq!(b.to_bools(), want, "{e}");
        }
    }

    #[test]
    fn a_missing_column_is_an_error() {
        struct Empty;
        impl ColumnSource for Empty {
            fn len(&self) -> usize {
                3
            }
            fn column(&self, _: Field) -> Option<ColumnRef<'_>> {
                None
            }
        }
        let e = Expr::eq(Field::Proto, 6);
        assert_eq!(
            e.select(&Empty),
            Err(FilterError::ColumnMissing {
                field: "proto".into()
            })
        );
        assert_eq!(Expr::True.select(&Empty).unwrap().count_ones(), 3);
    }
}
