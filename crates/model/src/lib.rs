//! # flowdrill-model
//!
//! The vocabulary every other crate of flowdrill speaks, and nothing else: it imports no crate
//! of ours.
//!
//! - [`FlowRecord`]: one flow, with the fields of the one schema ([`FIELDS`], [`Field`]).
//! - [`Addr`] and [`Prefix`]: IPv4 and IPv6 in one `u128` representation.
//! - [`CustomFields`]: user-defined information elements.
//! - [`ColumnSource`]: the columnar contract between the store and the filter (schema columns,
//!   and nullable [`CustomColumnRef`] columns of user-defined elements).
//! - [`proto`] and [`time`]: protocol names, Unix-ms time helpers.
//!
//! ```
//! use flowdrill_model::{Field, FlowRecord, Prefix};
//! let r = FlowRecord { src_addr: "10.0.0.1".parse().unwrap(), bytes: 300, ..Default::default() };
//! let p: Prefix = "10.0.0.0/15".parse().unwrap();
//! assert!(p.contains(r.src_addr));
//! assert_eq!(r.get(Field::Bytes).to_string(), "300");
//! ```

pub mod addr;
pub mod columns;
pub mod custom;
pub mod hll;
pub mod proto;
pub mod schema;
pub mod time;

pub use addr::{Addr, AddrParseError, Prefix};
pub use columns::{ColumnRef, ColumnSource, CustomColumnRef, RecordColumns};
pub use custom::{CustomField, CustomFields, CustomKind, CustomValue};
pub use schema::{FIELDS, Field, FieldInfo, FlowRecord, Kind, Role, Value};
