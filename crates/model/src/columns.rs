//! Columnar access to flow records.
//!
//! The store hands the engine batches of columns, and the filter evaluates predicates column
//! by column. [`ColumnSource`] is the contract between them: a batch of `len()` records that can
//! lend any schema field as a typed slice, and, when it carries them, the columns of
//! user-defined elements ([`CustomColumnRef`], nullable). Every slice a source lends has
//! exactly `len()` elements.

use crate::Addr;
use crate::custom::CustomKind;
use crate::schema::{Field, FlowRecord, Kind};

/// One column of a batch, typed by the field's [`Kind`].
#[derive(Clone, Copy, Debug)]
pub enum ColumnRef<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    /// Addresses in [`crate::Addr`]'s `u128` form.
    Addr(&'a [u128]),
}

impl ColumnRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            ColumnRef::U8(s) => s.len(),
            ColumnRef::U16(s) => s.len(),
            ColumnRef::U32(s) => s.len(),
            ColumnRef::U64(s) => s.len(),
            ColumnRef::Addr(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value at `i` widened to u64 (addresses: `None`).
    pub fn u64_at(&self, i: usize) -> Option<u64> {
        Some(match self {
            ColumnRef::U8(s) => s[i] as u64,
            ColumnRef::U16(s) => s[i] as u64,
            ColumnRef::U32(s) => s[i] as u64,
            ColumnRef::U64(s) => s[i],
            ColumnRef::Addr(_) => return None,
        })
    }
}

/// One column of a user-defined element ([`crate::CustomField`]), typed by its
/// [`CustomKind`]: the value of each record, or `None` where the record did not carry the
/// element (null).
#[derive(Clone, Copy, Debug)]
pub enum CustomColumnRef<'a> {
    Unsigned(&'a [Option<u64>]),
    Signed(&'a [Option<i64>]),
    Float(&'a [Option<f64>]),
    String(&'a [Option<String>]),
    Bytes(&'a [Option<Vec<u8>>]),
    Address(&'a [Option<Addr>]),
}

impl CustomColumnRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            CustomColumnRef::Unsigned(s) => s.len(),
            CustomColumnRef::Signed(s) => s.len(),
            CustomColumnRef::Float(s) => s.len(),
            CustomColumnRef::String(s) => s.len(),
            CustomColumnRef::Bytes(s) => s.len(),
            CustomColumnRef::Address(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The kind of the element's values.
    pub fn kind(&self) -> CustomKind {
        match self {
            CustomColumnRef::Unsigned(_) => CustomKind::Unsigned,
            CustomColumnRef::Signed(_) => CustomKind::Signed,
            CustomColumnRef::Float(_) => CustomKind::Float,
            CustomColumnRef::String(_) => CustomKind::String,
            CustomColumnRef::Bytes(_) => CustomKind::Bytes,
            CustomColumnRef::Address(_) => CustomKind::Address,
        }
    }
}

/// A batch of records readable column by column.
pub trait ColumnSource {
    /// Number of records in the batch.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The column of `field`, or `None` when the batch does not carry it (not loaded).
    fn column(&self, field: Field) -> Option<ColumnRef<'_>>;
    /// The column of the user-defined element `name`, or `None` when the batch does not carry
    /// it (not loaded, or a source without user-defined elements: the default).
    fn custom(&self, name: &str) -> Option<CustomColumnRef<'_>> {
        let _ = name;
        None
    }
}

/// Owned columns built from records: the simple [`ColumnSource`] for tests and small inputs.
#[derive(Clone, Debug, Default)]
pub struct RecordColumns {
    len: usize,
    cols: Vec<OwnedColumn>,
}

#[derive(Clone, Debug)]
enum OwnedColumn {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Addr(Vec<u128>),
}

impl RecordColumns {
    /// Every schema field of `records`, as columns.
    pub fn from_records(records: &[FlowRecord]) -> RecordColumns {
        let cols = crate::FIELDS
            .iter()
            .map(|info| {
                let f = info.field;
                match info.kind {
                    Kind::Address => OwnedColumn::Addr(
                        records
                            .iter()
                            .map(|r| match r.get(f) {
                                crate::Value::Addr(a) => a.0,
                                crate::Value::U64(_) => unreachable!("address field"),
                            })
                            .collect(),
                    ),
                    kind => {
                        let vals = records.iter().map(|r| match r.get(f) {
                            crate::Value::U64(v) => v,
                            crate::Value::Addr(_) => unreachable!("integer field"),
                        });
                        match kind {
                            Kind::Unsigned(8) => OwnedColumn::U8(vals.map(|v| v as u8).collect()),
                            Kind::Unsigned(16) => {
                                OwnedColumn::U16(vals.map(|v| v as u16).collect())
                            }
                            Kind::Unsigned(32) => {
                                OwnedColumn::U32(vals.map(|v| v as u32).collect())
                            }
                            _ => OwnedColumn::U64(vals.collect()),
                        }
                    }
                }
            })
            .collect();
        RecordColumns {
            len: records.len(),
            cols,
        }
    }
}

impl ColumnSource for RecordColumns {
    fn len(&self) -> usize {
        self.len
    }
    fn column(&self, field: Field) -> Option<ColumnRef<'_>> {
        Some(match &self.cols[field as usize] {
            OwnedColumn::U8(v) => ColumnRef::U8(v),
            OwnedColumn::U16(v) => ColumnRef::U16(v),
            OwnedColumn::U32(v) => ColumnRef::U32(v),
            OwnedColumn::U64(v) => ColumnRef::U64(v),
            OwnedColumn::Addr(v) => ColumnRef::Addr(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn record_columns_have_the_schema_types() {
        let recs = vec![
            FlowRecord {
                src_port: 80,
                bytes: 10,
                ..Default::default()
            },
            FlowRecord {
                src_port: 443,
                bytes: 20,
                ..Default::default()
            },
        ];
        let c = RecordColumns::from_records(&recs);
        assert_eq!(c.len(), 2);
        match c.column(Field::SrcPort).unwrap() {
            ColumnRef::U16(s) => assert_eq!(s, &[80, 443]),
            other => panic!("wrong type {other:?}"),
        }
        assert_eq!(c.column(Field::Bytes).unwrap().u64_at(1), Some(20));
        assert!(matches!(c.column(Field::Proto), Some(ColumnRef::U8(_))));
        assert!(matches!(c.column(Field::DstAddr), Some(ColumnRef::Addr(_))));
    }
}
