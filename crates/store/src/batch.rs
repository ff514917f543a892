//! [`Batch`]: the columns of one bin as read back, lent to the filter and query engine through
//! [`flowdrill_model::ColumnSource`], with the sampling threshold per record and the
//! user-defined extra columns (lent as [`flowdrill_model::CustomColumnRef`]).
//!
//! Invariant: every loaded column, `sample_z` and every extra column has exactly `len()`
//! elements.

use crate::error::{Error, Result};
use crate::sampling;
use flowdrill_model::{
    Addr, ColumnRef, ColumnSource, CustomColumnRef, CustomField, CustomFields, CustomKind,
    CustomValue, FIELDS, Field, FieldInfo, FlowRecord, Kind, Value,
};

/// One loaded schema column.
#[derive(Clone, Debug)]
pub enum OwnedColumn {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Addr(Vec<u128>),
    /// Addresses that are all IPv4, as their 4-byte integers: what a read of an IPv4-only
    /// file makes, a quarter of [`OwnedColumn::Addr`]'s memory. Widened to [`Addr`]'s `u128`
    /// form the first time it is lent as a [`ColumnRef`] (kept in the second field); the
    /// analyses that group by address read the integers as they are ([`Batch::addrs_v4`]).
    AddrV4(Vec<u32>, std::sync::OnceLock<Vec<u128>>),
}

/// Columns are equal when their values are, whatever their form.
impl PartialEq for OwnedColumn {
    fn eq(&self, other: &Self) -> bool {
        use OwnedColumn as C;
        let same = |a: &[u128], b: &[u32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x == Addr::from_v4_u32(y).0)
        };
        match (self, other) {
            (C::U8(a), C::U8(b)) => a == b,
            (C::U16(a), C::U16(b)) => a == b,
            (C::U32(a), C::U32(b)) => a == b,
            (C::U64(a), C::U64(b)) => a == b,
            (C::Addr(a), C::Addr(b)) => a == b,
            (C::AddrV4(a, _), C::AddrV4(b, _)) => a == b,
            (C::Addr(a), C::AddrV4(b, _)) | (C::AddrV4(b, _), C::Addr(a)) => same(a, b),
            _ => false,
        }
    }
}

/// IPv4 addresses in [`Addr`]'s `u128` form.
fn widen(v: &[u32]) -> Vec<u128> {
    v.iter().map(|&x| Addr::from_v4_u32(x).0).collect()
}

impl OwnedColumn {
    /// An empty column of a schema field's type (by its [`Kind`], the same mapping as
    /// [`flowdrill_model::RecordColumns`]) with room for `n` values.
    fn with_capacity(info: &FieldInfo, n: usize) -> OwnedColumn {
        match info.kind {
            Kind::Address => OwnedColumn::Addr(Vec::with_capacity(n)),
            Kind::Unsigned(8) => OwnedColumn::U8(Vec::with_capacity(n)),
            Kind::Unsigned(16) => OwnedColumn::U16(Vec::with_capacity(n)),
            Kind::Unsigned(32) => OwnedColumn::U32(Vec::with_capacity(n)),
            _ => OwnedColumn::U64(Vec::with_capacity(n)),
        }
    }

    /// Appends the values of field `f` of `records` (a column made by
    /// [`OwnedColumn::with_capacity`] for `f`).
    fn extend_from_records(&mut self, records: &[FlowRecord], f: Field) {
        let num = |r: &FlowRecord| match r.get(f) {
            Value::U64(v) => v,
            Value::Addr(a) => a.0 as u64,
        };
        if let OwnedColumn::AddrV4(v, _) = self {
            // Records may hold IPv6 addresses: the column takes the wide form first.
            *self = OwnedColumn::Addr(widen(v));
        }
        match self {
            OwnedColumn::AddrV4(..) => {}
            OwnedColumn::Addr(v) => v.extend(records.iter().map(|r| match r.get(f) {
                Value::Addr(a) => a.0,
                Value::U64(x) => x as u128,
            })),
            OwnedColumn::U8(v) => v.extend(records.iter().map(|r| num(r) as u8)),
            OwnedColumn::U16(v) => v.extend(records.iter().map(|r| num(r) as u16)),
            OwnedColumn::U32(v) => v.extend(records.iter().map(|r| num(r) as u32)),
            OwnedColumn::U64(v) => v.extend(records.iter().map(num)),
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            OwnedColumn::AddrV4(v, _) => v.len(),
            other => other.as_ref().len(),
        }
    }
    fn append(&mut self, o: &OwnedColumn) -> bool {
        match (&mut *self, o) {
            (OwnedColumn::U8(a), OwnedColumn::U8(b)) => a.extend_from_slice(b),
            (OwnedColumn::U16(a), OwnedColumn::U16(b)) => a.extend_from_slice(b),
            (OwnedColumn::U32(a), OwnedColumn::U32(b)) => a.extend_from_slice(b),
            (OwnedColumn::U64(a), OwnedColumn::U64(b)) => a.extend_from_slice(b),
            (OwnedColumn::Addr(a), OwnedColumn::Addr(b)) => a.extend_from_slice(b),
            (OwnedColumn::Addr(a), OwnedColumn::AddrV4(b, _)) => a.extend(widen(b)),
            (OwnedColumn::AddrV4(a, wide), OwnedColumn::AddrV4(b, _)) => {
                a.extend_from_slice(b);
                // The widened form, if made, no longer covers every row.
                *wide = std::sync::OnceLock::new();
            }
            (OwnedColumn::AddrV4(a, _), OwnedColumn::Addr(b)) => {
                let mut all = widen(a);
                all.extend_from_slice(b);
                *self = OwnedColumn::Addr(all);
            }
            _ => return false,
        }
        true
    }
    /// The rows at `order`, in that order.
    fn take(&self, order: &[usize]) -> OwnedColumn {
        fn t<T: Copy>(v: &[T], order: &[usize]) -> Vec<T> {
            order.iter().map(|&i| v[i]).collect()
        }
        match self {
            OwnedColumn::U8(v) => OwnedColumn::U8(t(v, order)),
            OwnedColumn::U16(v) => OwnedColumn::U16(t(v, order)),
            OwnedColumn::U32(v) => OwnedColumn::U32(t(v, order)),
            OwnedColumn::U64(v) => OwnedColumn::U64(t(v, order)),
            OwnedColumn::Addr(v) => OwnedColumn::Addr(t(v, order)),
            OwnedColumn::AddrV4(v, _) => OwnedColumn::AddrV4(t(v, order), Default::default()),
        }
    }
    fn as_ref(&self) -> ColumnRef<'_> {
        match self {
            OwnedColumn::U8(v) => ColumnRef::U8(v),
            OwnedColumn::U16(v) => ColumnRef::U16(v),
            OwnedColumn::U32(v) => ColumnRef::U32(v),
            OwnedColumn::U64(v) => ColumnRef::U64(v),
            OwnedColumn::Addr(v) => ColumnRef::Addr(v),
            OwnedColumn::AddrV4(v, wide) => ColumnRef::Addr(wide.get_or_init(|| widen(v))),
        }
    }
    fn filter(&self, keep: &[bool]) -> OwnedColumn {
        fn f<T: Copy>(v: &[T], keep: &[bool]) -> Vec<T> {
            v.iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect()
        }
        match self {
            OwnedColumn::U8(v) => OwnedColumn::U8(f(v, keep)),
            OwnedColumn::U16(v) => OwnedColumn::U16(f(v, keep)),
            OwnedColumn::U32(v) => OwnedColumn::U32(f(v, keep)),
            OwnedColumn::U64(v) => OwnedColumn::U64(f(v, keep)),
            OwnedColumn::Addr(v) => OwnedColumn::Addr(f(v, keep)),
            OwnedColumn::AddrV4(v, _) => OwnedColumn::AddrV4(f(v, keep), Default::default()),
        }
    }
}

/// The values of one user-defined element; `None` where a record did not carry it.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtraColumn {
    Unsigned(Vec<Option<u64>>),
    Signed(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    String(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Address(Vec<Option<Addr>>),
}

impl ExtraColumn {
    pub fn len(&self) -> usize {
        match self {
            ExtraColumn::Unsigned(v) => v.len(),
            ExtraColumn::Signed(v) => v.len(),
            ExtraColumn::Float(v) => v.len(),
            ExtraColumn::String(v) => v.len(),
            ExtraColumn::Bytes(v) => v.len(),
            ExtraColumn::Address(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The column as the borrowed view the filter reads ([`ColumnSource::custom`]).
    pub fn view(&self) -> CustomColumnRef<'_> {
        match self {
            ExtraColumn::Unsigned(v) => CustomColumnRef::Unsigned(v),
            ExtraColumn::Signed(v) => CustomColumnRef::Signed(v),
            ExtraColumn::Float(v) => CustomColumnRef::Float(v),
            ExtraColumn::String(v) => CustomColumnRef::String(v),
            ExtraColumn::Bytes(v) => CustomColumnRef::Bytes(v),
            ExtraColumn::Address(v) => CustomColumnRef::Address(v),
        }
    }
    fn nulls(kind: CustomKind, n: usize) -> ExtraColumn {
        match kind {
            CustomKind::Unsigned => ExtraColumn::Unsigned(vec![None; n]),
            CustomKind::Signed => ExtraColumn::Signed(vec![None; n]),
            CustomKind::Float => ExtraColumn::Float(vec![None; n]),
            CustomKind::String => ExtraColumn::String(vec![None; n]),
            CustomKind::Bytes => ExtraColumn::Bytes(vec![None; n]),
            CustomKind::Address => ExtraColumn::Address(vec![None; n]),
        }
    }
    fn append(&mut self, o: &ExtraColumn) -> bool {
        match (self, o) {
            (ExtraColumn::Unsigned(a), ExtraColumn::Unsigned(b)) => a.extend_from_slice(b),
            (ExtraColumn::Signed(a), ExtraColumn::Signed(b)) => a.extend_from_slice(b),
            (ExtraColumn::Float(a), ExtraColumn::Float(b)) => a.extend_from_slice(b),
            (ExtraColumn::String(a), ExtraColumn::String(b)) => a.extend_from_slice(b),
            (ExtraColumn::Bytes(a), ExtraColumn::Bytes(b)) => a.extend_from_slice(b),
            (ExtraColumn::Address(a), ExtraColumn::Address(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }
    fn take(&self, order: &[usize]) -> ExtraColumn {
        fn t<T: Clone>(v: &[T], order: &[usize]) -> Vec<T> {
            order.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            ExtraColumn::Unsigned(v) => ExtraColumn::Unsigned(t(v, order)),
            ExtraColumn::Signed(v) => ExtraColumn::Signed(t(v, order)),
            ExtraColumn::Float(v) => ExtraColumn::Float(t(v, order)),
            ExtraColumn::String(v) => ExtraColumn::String(t(v, order)),
            ExtraColumn::Bytes(v) => ExtraColumn::Bytes(t(v, order)),
            ExtraColumn::Address(v) => ExtraColumn::Address(t(v, order)),
        }
    }
    fn filter(&self, keep: &[bool]) -> ExtraColumn {
        fn f<T: Clone>(v: &[T], keep: &[bool]) -> Vec<T> {
            v.iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| x.clone())
                .collect()
        }
        match self {
            ExtraColumn::Unsigned(v) => ExtraColumn::Unsigned(f(v, keep)),
            ExtraColumn::Signed(v) => ExtraColumn::Signed(f(v, keep)),
            ExtraColumn::Float(v) => ExtraColumn::Float(f(v, keep)),
            ExtraColumn::String(v) => ExtraColumn::String(f(v, keep)),
            ExtraColumn::Bytes(v) => ExtraColumn::Bytes(f(v, keep)),
            ExtraColumn::Address(v) => ExtraColumn::Address(f(v, keep)),
        }
    }
}

/// Records [`Batch::from_records`] turns into columns at a time (about 80 KB).
const RECORDS_PER_PASS: usize = 512;

/// The records of one bin (or a part of them), column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub(crate) len: usize,
    /// Indexed by `Field as usize`; `None` when not loaded.
    pub(crate) cols: Vec<Option<OwnedColumn>>,
    pub(crate) z: Thresholds,
    pub(crate) extras: Vec<(CustomField, ExtraColumn)>,
    pub(crate) unsampled: Unsampled,
}

/// The sampling thresholds of a batch's records: their values, or 0 for each of `n` records
/// (a read of an unsampled file), a vector made only when someone asks for the values (most
/// folds ask [`Batch::unsampled`] instead; zeroing 8 bytes per record read was 1 % of a
/// `top`).
#[derive(Clone, Debug)]
pub(crate) enum Thresholds {
    Values(Vec<u64>),
    Zeros(usize, std::sync::OnceLock<Vec<u64>>),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::Values(Vec::new())
    }
}

impl From<Vec<u64>> for Thresholds {
    fn from(v: Vec<u64>) -> Self {
        Thresholds::Values(v)
    }
}

impl std::ops::Deref for Thresholds {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        match self {
            Thresholds::Values(v) => v,
            Thresholds::Zeros(n, v) => v.get_or_init(|| vec![0; *n]),
        }
    }
}

impl<'a> IntoIterator for &'a Thresholds {
    type Item = &'a u64;
    type IntoIter = std::slice::Iter<'a, u64>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Equal when their values are, whatever their form.
impl PartialEq for Thresholds {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Thresholds::Zeros(a, _), Thresholds::Zeros(b, _)) => a == b,
            (Thresholds::Zeros(n, _), Thresholds::Values(v))
            | (Thresholds::Values(v), Thresholds::Zeros(n, _)) => {
                v.len() == *n && v.iter().all(|&z| z == 0)
            }
            (Thresholds::Values(a), Thresholds::Values(b)) => a == b,
        }
    }
}

impl Thresholds {
    /// 0 for each of `n` records.
    pub(crate) fn zeros(n: usize) -> Thresholds {
        Thresholds::Zeros(n, std::sync::OnceLock::new())
    }

    /// The number of records (without making the values of zeros).
    pub(crate) fn len(&self) -> usize {
        match self {
            Thresholds::Values(v) => v.len(),
            Thresholds::Zeros(n, _) => *n,
        }
    }

    /// Whether they are zeros by construction (no value looked at).
    fn all_zero_by_form(&self) -> bool {
        matches!(self, Thresholds::Zeros(..))
    }

    /// `other`'s appended.
    fn append(&mut self, other: &Thresholds) {
        match (&mut *self, other) {
            (Thresholds::Zeros(a, _), Thresholds::Zeros(b, _)) => {
                *self = Thresholds::zeros(*a + *b);
            }
            (Thresholds::Values(v), o) => v.extend_from_slice(o),
            (Thresholds::Zeros(n, _), o) => {
                let mut v = vec![0; *n];
                v.extend_from_slice(o);
                *self = Thresholds::Values(v);
            }
        }
    }

    /// The thresholds at `order`, in that order.
    fn take(&self, order: &[usize]) -> Thresholds {
        match self {
            Thresholds::Zeros(..) => Thresholds::zeros(order.len()),
            Thresholds::Values(v) => Thresholds::Values(order.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// Whether every threshold of a batch is 0, found once (see [`Batch::unsampled`]): a read of
/// an unsampled file knows it without looking ([`Thresholds::Zeros`]). Not part of a batch's value: two equal batches
/// may have been asked or not.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unsampled(std::sync::OnceLock<bool>);

impl Unsampled {
    /// Known to be unsampled.
    pub(crate) fn yes() -> Unsampled {
        Unsampled(std::sync::OnceLock::from(true))
    }

    /// For some of the rows: unsampled if all of them were, else to be looked at.
    fn of_subset(&self) -> Unsampled {
        match self.0.get() {
            Some(true) => Unsampled::yes(),
            _ => Unsampled::default(),
        }
    }
}

impl PartialEq for Unsampled {
    fn eq(&self, _: &Unsampled) -> bool {
        true
    }
}

impl Batch {
    /// Every schema field of `records` (derived from the schema through
    /// [`flowdrill_model::RecordColumns`]), one extra column per element of `custom`, and the thresholds `z`.
    ///
    /// `z.len()` must equal `records.len()`.
    pub fn from_records(records: &[FlowRecord], z: Vec<u64>, custom: &CustomFields) -> Batch {
        assert_eq!(z.len(), records.len(), "one threshold per record");
        let mut cols: Vec<OwnedColumn> = FIELDS
            .iter()
            .map(|i| OwnedColumn::with_capacity(i, records.len()))
            .collect();
        // Column by column over a few records at a time, which stay in the cache: a pass over
        // all the records per column would read each record from memory once per column.
        for chunk in records.chunks(RECORDS_PER_PASS) {
            for (col, info) in cols.iter_mut().zip(FIELDS) {
                col.extend_from_records(chunk, info.field);
            }
        }
        let cols = cols.into_iter().map(Some).collect();
        let extras = custom
            .fields
            .iter()
            .enumerate()
            .map(|(idx, def)| {
                let idx = idx as u16;
                let vals = records
                    .iter()
                    .map(|r| r.extra.iter().find(|(i, _)| *i == idx).map(|(_, v)| v));
                let col = match def.kind {
                    CustomKind::Unsigned => ExtraColumn::Unsigned(
                        vals.map(|v| match v {
                            Some(CustomValue::Unsigned(x)) => Some(*x),
                            _ => None,
                        })
                        .collect(),
                    ),
                    CustomKind::Signed => ExtraColumn::Signed(
                        vals.map(|v| match v {
                            Some(CustomValue::Signed(x)) => Some(*x),
                            _ => None,
                        })
                        .collect(),
                    ),
                    CustomKind::Float => ExtraColumn::Float(
                        vals.map(|v| match v {
                            Some(CustomValue::Float(x)) => Some(*x),
                            _ => None,
                        })
                        .collect(),
                    ),
                    CustomKind::String => ExtraColumn::String(
                        vals.map(|v| match v {
                            Some(CustomValue::String(x)) => Some(x.to_string()),
                            _ => None,
                        })
                        .collect(),
                    ),
                    CustomKind::Bytes => ExtraColumn::Bytes(
                        vals.map(|v| match v {
                            Some(CustomValue::Bytes(x)) => Some(x.to_vec()),
                            _ => None,
                        })
                        .collect(),
                    ),
                    CustomKind::Address => ExtraColumn::Address(
                        vals.map(|v| match v {
                            Some(CustomValue::Address(x)) => Some(*x),
                            _ => None,
                        })
                        .collect(),
                    ),
                };
                (def.clone(), col)
            })
            .collect();
        Batch {
            len: records.len(),
            cols,
            z: z.into(),
            extras,
            unsampled: Unsampled::default(),
        }
    }

    /// A batch of the given schema columns (the others not loaded) with the thresholds `z`:
    /// rows made elsewhere, e.g. the groups an external engine aggregated. Fails when a
    /// column does not have its field's type or another length than `z`.
    pub fn from_columns(columns: Vec<(Field, OwnedColumn)>, z: Vec<u64>) -> Result<Batch> {
        let mut cols = vec![None; FIELDS.len()];
        for (f, c) in columns {
            let fits = matches!(
                (f.info().kind, &c),
                (Kind::Unsigned(8), OwnedColumn::U8(_))
                    | (Kind::Unsigned(16), OwnedColumn::U16(_))
                    | (Kind::Unsigned(32), OwnedColumn::U32(_))
                    | (Kind::Unsigned(64) | Kind::TimeMs, OwnedColumn::U64(_))
                    | (
                        Kind::Address,
                        OwnedColumn::Addr(_) | OwnedColumn::AddrV4(..)
                    )
            );
            if !fits || c.len() != z.len() {
                return Err(Error::Internal(format!(
                    "column {} does not fit a batch of {} rows of its type",
                    f.name(),
                    z.len()
                )));
            }
            cols[f as usize] = Some(c);
        }
        Ok(Batch {
            len: z.len(),
            cols,
            z: z.into(),
            extras: Vec::new(),
            unsampled: Unsampled::default(),
        })
    }

    /// Appends `other`'s rows. Both must have the same schema columns loaded; extra columns
    /// are matched by name (a column one side lacks is null there).
    pub fn append(&mut self, other: &Batch) -> Result<()> {
        if self.cols.is_empty() {
            self.cols = vec![None; FIELDS.len()];
        }
        let (n0, n1) = (self.len, other.len);
        for (a, b) in self.cols.iter_mut().zip(&other.cols) {
            match (a, b) {
                (Some(a), Some(b)) => {
                    if !a.append(b) {
                        return Err(Error::Internal(
                            "appending columns of different types".into(),
                        ));
                    }
                }
                (None, None) => {}
                (a, _) if n0 == 0 => *a = b.clone(),
                _ => {
                    return Err(Error::Internal(
                        "appending batches with different columns".into(),
                    ));
                }
            }
        }
        for (def, col) in &mut self.extras {
            if !other.extras.iter().any(|(d, _)| d.name == def.name) {
                col.append(&ExtraColumn::nulls(def.kind, n1));
            }
        }
        for (def, col) in &other.extras {
            match self.extras.iter_mut().find(|(d, _)| d.name == def.name) {
                Some((_, mine)) => {
                    if !mine.append(col) {
                        return Err(Error::InvalidArgument(format!(
                            "user-defined element '{}' changed its type; give it a new name",
                            def.name
                        )));
                    }
                }
                None => {
                    let mut c = ExtraColumn::nulls(def.kind, n0);
                    c.append(col);
                    self.extras.push((def.clone(), c));
                }
            }
        }
        self.z.append(&other.z);
        self.unsampled = Unsampled::default();
        self.len += n1;
        Ok(())
    }

    /// The rows at `order`, in that order, like [`Batch::take`] but consuming the batch one
    /// column at a time: at most one column is held twice (a sort of a bin of millions of
    /// records would otherwise need twice the bin's memory).
    pub fn into_take(mut self, order: &[usize]) -> Batch {
        let cols = std::mem::take(&mut self.cols)
            .into_iter()
            .map(|c| c.map(|c| c.take(order)))
            .collect();
        let z = self.z.take(order);
        drop(std::mem::take(&mut self.z));
        let extras = std::mem::take(&mut self.extras)
            .into_iter()
            .map(|(d, c)| (d, c.take(order)))
            .collect();
        Batch {
            len: order.len(),
            cols,
            z,
            extras,
            unsampled: self.unsampled.of_subset(),
        }
    }

    /// The rows at `order`, in that order (a sort or a selection).
    pub fn take(&self, order: &[usize]) -> Batch {
        Batch {
            len: order.len(),
            cols: self
                .cols
                .iter()
                .map(|c| c.as_ref().map(|c| c.take(order)))
                .collect(),
            z: self.z.take(order),
            extras: self
                .extras
                .iter()
                .map(|(d, c)| (d.clone(), c.take(order)))
                .collect(),
            unsampled: self.unsampled.of_subset(),
        }
    }

    /// The registry of the extra columns loaded, in order.
    pub fn custom_fields(&self) -> CustomFields {
        CustomFields {
            fields: self.extras.iter().map(|(d, _)| d.clone()).collect(),
        }
    }

    /// The values of a `U64` schema column (times, packets, bytes), if loaded.
    pub fn u64s(&self, f: Field) -> Option<&[u64]> {
        match self.cols.get(f as usize)?.as_ref()? {
            OwnedColumn::U64(v) => Some(v),
            _ => None,
        }
    }

    /// The IPv4 addresses of an address column, as 4-byte integers, when every row holds one
    /// and the column was read in that form ([`OwnedColumn::AddrV4`]); `None` otherwise (the
    /// column is then read through [`ColumnSource::column`]).
    pub fn addrs_v4(&self, f: Field) -> Option<&[u32]> {
        match self.cols.get(f as usize)?.as_ref()? {
            OwnedColumn::AddrV4(v, _) => Some(v),
            _ => None,
        }
    }

    /// The sampling threshold of each record (0 = not sampled): a record of `x` bytes stands
    /// for `max(x, z)` bytes.
    pub fn sample_z(&self) -> &[u64] {
        &self.z
    }

    /// Whether no record was sampled (every threshold 0): looked at once, or known from the
    /// file a read came from.
    pub fn unsampled(&self) -> bool {
        *self
            .unsampled
            .0
            .get_or_init(|| self.z.all_zero_by_form() || self.z.iter().all(|&z| z == 0))
    }

    /// The user-defined columns loaded, with their definitions.
    pub fn extras(&self) -> &[(CustomField, ExtraColumn)] {
        &self.extras
    }

    /// The user-defined column `name`, if loaded.
    pub fn extra(&self, name: &str) -> Option<&ExtraColumn> {
        self.extras
            .iter()
            .find(|(f, _)| f.name == name)
            .map(|(_, c)| c)
    }

    /// Estimated total bytes, `Σ max(x, z)`; `None` unless `bytes` was loaded.
    pub fn estimated_bytes(&self) -> Option<u64> {
        let b = self.u64s(Field::Bytes)?;
        Some(
            b.iter()
                .zip(&self.z)
                .map(|(&x, &z)| sampling::estimated_bytes(x, z))
                .sum(),
        )
    }

    /// Estimated total packets, `Σ packets · max(1, z/x)`; needs `bytes` and `packets`.
    pub fn estimated_packets(&self) -> Option<f64> {
        let b = self.u64s(Field::Bytes)?;
        let p = self.u64s(Field::Packets)?;
        Some(
            p.iter()
                .zip(b)
                .zip(&self.z)
                .map(|((&p, &x), &z)| sampling::estimated_packets(p, x, z))
                .sum(),
        )
    }

    /// Unbiased estimate of the variance of [`Batch::estimated_bytes`]:
    /// `Σ z(z − x)` over records with `x < z`; needs `bytes`.
    pub fn bytes_variance(&self) -> Option<f64> {
        let b = self.u64s(Field::Bytes)?;
        Some(
            b.iter()
                .zip(&self.z)
                .map(|(&x, &z)| sampling::variance_term(x, z))
                .sum(),
        )
    }

    /// The records that survive re-thresholding at `z_new` (see
    /// [`sampling::rethreshold_mask`]), with their thresholds raised to `z_new`. Needs `bytes`.
    pub fn rethreshold(&self, z_new: u64, seed: u64) -> Option<Batch> {
        let keep = sampling::rethreshold_mask(self.u64s(Field::Bytes)?, &self.z, z_new, seed);
        Some(self.filter(&keep, Some(z_new)))
    }

    /// The records where `keep` is true; thresholds raised to `raise_z` if given.
    pub fn filter(&self, keep: &[bool], raise_z: Option<u64>) -> Batch {
        assert_eq!(
            keep.len(),
            self.len,
            "mask length must equal the batch length"
        );
        let z = match (&self.z, raise_z) {
            (Thresholds::Zeros(..), None | Some(0)) => {
                Thresholds::zeros(keep.iter().filter(|&&k| k).count())
            }
            _ => Thresholds::Values(
                self.z
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(z, _)| raise_z.map_or(*z, |r| r.max(*z)))
                    .collect(),
            ),
        };
        Batch {
            len: z.len(),
            cols: self
                .cols
                .iter()
                .map(|c| c.as_ref().map(|c| c.filter(keep)))
                .collect(),
            z,
            extras: self
                .extras
                .iter()
                .map(|(f, c)| (f.clone(), c.filter(keep)))
                .collect(),
            unsampled: if raise_z.is_some_and(|r| r > 0) {
                Unsampled::default()
            } else {
                self.unsampled.of_subset()
            },
        }
    }
}

impl ColumnSource for Batch {
    fn len(&self) -> usize {
        self.len
    }
    fn column(&self, field: Field) -> Option<ColumnRef<'_>> {
        self.cols.get(field as usize)?.as_ref().map(|c| c.as_ref())
    }
    fn custom(&self, name: &str) -> Option<CustomColumnRef<'_>> {
        self.extra(name).map(ExtraColumn::view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unsampled` is every threshold 0, remembered once asked, and asked again after an
    /// append or a filter that raises thresholds; it is no part of a batch's equality.
    #[test]
    fn unsampled_is_every_threshold_zero_and_follows_changes() {
        let zero = batch(vec![1, 2, 3], vec![1, 1, 1], vec![0, 0, 0]);
        let sampled = batch(vec![1, 2], vec![1, 1], vec![0, 9]);
        assert!(zero.unsampled());
        assert!(!sampled.unsampled());
        assert_eq!(zero, batch(vec![1, 2, 3], vec![1, 1, 1], vec![0, 0, 0]));
        assert!(zero.take(&[2, 0]).unsampled());
        assert!(zero.filter(&[true, false, true], None).unsampled());
        assert!(!zero.filter(&[true, false, true], Some(5)).unsampled());
        assert!(sampled.filter(&[true, false], None).unsampled());
        let mut joined = zero.clone();
        joined.append(&sampled).unwrap();
        assert!(!joined.unsampled());
        assert!(zero.clone().into_take(&[1]).unsampled());
    }

    /// Thresholds made as zeros (a read of an unsampled file) read, compare, append, take
    /// and filter as the vector of zeros they stand for, and make it only when asked.
    #[test]
    fn zero_thresholds_act_as_their_values() {
        let mut zero = batch(vec![1, 2, 3], vec![1, 1, 1], vec![1, 1, 1]);
        zero.z = Thresholds::zeros(3);
        let values = batch(vec![1, 2, 3], vec![1, 1, 1], vec![0, 0, 0]);
        assert!(matches!(&zero.z, Thresholds::Zeros(_, v) if v.get().is_none()));
        assert!(zero.unsampled());
        assert_eq!(zero, values);
        assert_eq!(values, zero);
        assert_ne!(zero, batch(vec![1, 2, 3], vec![1, 1, 1], vec![0, 5, 0]));
        assert_eq!(zero.estimated_bytes(), Some(6));
        assert!(matches!(zero.take(&[2, 0]).z, Thresholds::Zeros(2, _)));
        assert!(matches!(
            zero.filter(&[true, false, true], None).z,
            Thresholds::Zeros(2, _)
        ));
        let raised = zero.filter(&[true, false, true], Some(5));
        assert_eq!(raised.sample_z(), &[5, 5]);
        assert!(!raised.unsampled());
        let mut joined = zero.clone();
        joined.append(&zero).unwrap();
        assert!(matches!(joined.z, Thresholds::Zeros(6, _)));
        joined.append(&batch(vec![7], vec![1], vec![9])).unwrap();
        assert_eq!(joined.sample_z(), &[0, 0, 0, 0, 0, 0, 9]);
        assert!(!joined.unsampled());
        assert_eq!(zero.sample_z(), &[0, 0, 0]);
        assert_eq!(zero.z.len(), 3);
    }

    fn batch(bytes: Vec<u64>, packets: Vec<u64>, z: Vec<u64>) -> Batch {
        let mut cols = vec![None; flowdrill_model::FIELDS.len()];
        cols[Field::Bytes as usize] = Some(OwnedColumn::U64(bytes));
        cols[Field::Packets as usize] = Some(OwnedColumn::U64(packets));
        Batch {
            len: z.len(),
            cols,
            z: z.into(),
            extras: vec![],
            unsampled: Unsampled::default(),
        }
    }

    #[test]
    fn estimates_use_each_records_threshold() {
        let b = batch(vec![50, 300, 10], vec![1, 3, 2], vec![100, 100, 0]);
        assert_eq!(b.estimated_bytes(), Some(100 + 300 + 10));
        assert_eq!(b.estimated_packets(), Some(2.0 + 3.0 + 2.0));
        assert_eq!(b.bytes_variance(), Some(100.0 * 50.0));
        assert!(b.column(Field::SrcAddr).is_none());
        assert_eq!(b.column(Field::Bytes).unwrap().u64_at(1), Some(300));
    }

    #[test]
    fn extra_columns_are_lent_as_nullable_custom_columns() {
        let custom = CustomFields {
            fields: vec![CustomField {
                enterprise: 9,
                id: 1,
                name: "app".into(),
                kind: CustomKind::String,
            }],
        };
        let recs = vec![
            FlowRecord {
                extra: vec![(0, CustomValue::String("dns".into()))],
                ..Default::default()
            },
            FlowRecord::default(),
        ];
        let b = Batch::from_records(&recs, vec![0, 0], &custom);
        match b.custom("app") {
            Some(CustomColumnRef::String(v)) => assert_eq!(v, &[Some("dns".to_string()), None]),
            other => panic!("wrong column {other:?}"),
        }
        assert_eq!(b.custom("app").map(|c| c.kind()), Some(CustomKind::String));
        assert!(b.custom("rtt").is_none());
        // A source without extras lends none.
        assert!(batch(vec![1], vec![1], vec![0]).custom("app").is_none());
    }

    #[test]
    fn filtering_keeps_columns_aligned() {
        let b = batch(vec![50, 300, 10], vec![1, 3, 2], vec![100, 100, 0]);
        let f = b.filter(&[true, false, true], Some(200));
        assert_eq!(f.len(), 2);
        assert_eq!(f.sample_z(), &[200, 200]);
        assert_eq!(f.column(Field::Packets).unwrap().u64_at(1), Some(2));
        // Re-thresholding records far above z_new keeps them all.
        let big = batch(vec![10_000; 5], vec![1; 5], vec![0; 5]);
        assert_eq!(big.rethreshold(100, 1).unwrap().len(), 5);
    }

    /// An all-IPv4 address column kept as 4-byte integers lends the same addresses as the
    /// wide form, equals it, and stays right through append (either form on either side),
    /// take and filter; the wide form made for a lend is not kept past an append.
    #[test]
    fn ipv4_address_columns_behave_as_wide_ones() {
        let v4 = |xs: &[u32]| OwnedColumn::AddrV4(xs.to_vec(), Default::default());
        let wide = |xs: &[u32]| OwnedColumn::Addr(widen(xs));
        let x6 = 0x2001_0db8_u128 << 96 | 5;
        let lend = |c: &OwnedColumn| match c.as_ref() {
            ColumnRef::Addr(a) => a.to_vec(),
            other => panic!("{other:?}"),
        };
        let a = v4(&[1, 2, 3]);
        assert_eq!(lend(&a), widen(&[1, 2, 3]));
        assert_eq!(a, wide(&[1, 2, 3]));
        assert_eq!(wide(&[1, 2, 3]), a);
        assert_ne!(a, wide(&[1, 2, 4]));
        assert_ne!(a, v4(&[1, 2]));
        // Lent (widened), then appended to: the next lend covers the new rows.
        let mut b = v4(&[1, 2]);
        let _ = lend(&b);
        assert!(b.append(&v4(&[7])));
        assert_eq!(lend(&b), widen(&[1, 2, 7]));
        assert!(matches!(b, OwnedColumn::AddrV4(..)));
        // IPv6 rows make the column wide.
        assert!(b.append(&OwnedColumn::Addr(vec![x6])));
        let mut want = widen(&[1, 2, 7]);
        want.push(x6);
        assert_eq!(lend(&b), want);
        let mut c = OwnedColumn::Addr(vec![x6]);
        assert!(c.append(&v4(&[9])));
        assert_eq!(lend(&c), vec![x6, Addr::from_v4_u32(9).0]);
        assert!(!v4(&[1]).append(&OwnedColumn::U64(vec![1])));
        assert_eq!(v4(&[4, 5, 6]).take(&[2, 0]), v4(&[6, 4]));
        assert_eq!(v4(&[4, 5, 6]).filter(&[true, false, true]), v4(&[4, 6]));
        assert_eq!(v4(&[4, 5, 6]).len(), 3);
        // From records (which may hold IPv6 addresses), a column is always wide.
        let mut r = v4(&[1]);
        r.extend_from_records(
            &[FlowRecord {
                src_addr: Addr(x6),
                ..Default::default()
            }],
            Field::SrcAddr,
        );
        assert_eq!(lend(&r), vec![Addr::from_v4_u32(1).0, x6]);
        // A batch lends the integers only when the column has that form.
        let b = Batch::from_columns(vec![(Field::SrcAddr, v4(&[3, 4]))], vec![0, 0]).unwrap();
        assert_eq!(b.addrs_v4(Field::SrcAddr), Some(&[3u32, 4][..]));
        let w = Batch::from_columns(vec![(Field::SrcAddr, wide(&[3, 4]))], vec![0, 0]).unwrap();
        assert_eq!(w.addrs_v4(Field::SrcAddr), None);
        assert_eq!(b.addrs_v4(Field::DstAddr), None);
    }
}
