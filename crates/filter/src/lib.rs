//! # flowdrill-filter
//!
//! The filter language of flowdrill: nfdump's expressions and Netpy's ACL rule lists, both
//! compiled to one predicate IR that evaluates on one record or column-wise on a batch.
//!
//! ## Brief overview
//!
//! - [`parse`]: nfdump expression text (`proto tcp and dst port 443 and not net 10.0.0.0/8`,
//!   plus schema field names such as `src_as > 100`) to a simplified [`Expr`]; [`parse_with`]
//!   also takes the names of user-defined elements (`rtt_us > 50k`, `app ~ "http"`).
//! - [`Expr`] ([`ir`]): the predicate IR over schema fields (comparisons, ranges, prefixes,
//!   bit masks, `and`/`or`/`not`) and user-defined elements ([`CustomTest`]). It prints back
//!   as text (`Display`), serialises to JSON (serde) and to SQL over the store's Parquet
//!   columns for Spark and DuckDB ([`Expr::to_sql`], [`sql`]);
//!   [`Expr::fields`] and [`Expr::custom_names`] name the columns it reads.
//! - [`Expr::matches`] evaluates on one [`flowdrill_model::FlowRecord`];
//!   [`Expr::select`] evaluates column-wise over a [`flowdrill_model::ColumnSource`] into a
//!   [`Bitmap`] ([`eval`]).
//! - [`acl::RuleList`]: first-match-wins rule lists (`permit|deny|LABEL SRC DST PROTO SPORTS
//!   DPORTS`), each rule an [`Expr`].
//! - [`FilterError`] ([`error`]): every error names its position, what was found and what was
//!   expected; [`FilterError::render`] draws a caret, [`FilterError::to_json`] feeds the UI.
//!
//! ```
//! use flowdrill_filter::parse;
//! use flowdrill_model::{FlowRecord, RecordColumns};
//!
//! let f = parse("proto tcp and dst port 443 and not net 10.0.0.0/8").unwrap();
//! assert_eq!(f.to_string(), "proto = 6 and dst_port = 443 and not (src_addr in [10.0.0.0/8] or dst_addr in [10.0.0.0/8])");
//! let r = FlowRecord { proto: 6, dst_port: 443, src_addr: "192.0.2.1".parse().unwrap(),
//!                      dst_addr: "198.51.100.7".parse().unwrap(), ..Default::default() };
//! assert!(f.matches(&r));
//! let batch = RecordColumns::from_records(&[r.clone(), FlowRecord::default()]);
//! assert_eq!(f.select(&batch).unwrap().to_bools(), vec![true, false]);
//!
//! let err = parse("proto tcp and port x").unwrap_err();
//! assert_eq!(err.position().unwrap().column, 20);
//! assert_eq!(err.to_json()["expected"][0], "a port 0..65535");
//! ```
//!
//! User-defined elements, by the registry the records were decoded with; a record without the
//! element matches no comparison, and `not` selects it:
//!
//! ```
//! use flowdrill_filter::parse_with;
//! use flowdrill_model::{CustomField, CustomFields, CustomKind, CustomValue, FlowRecord};
//!
//! let field = |name: &str, kind| CustomField { enterprise: 6871, id: 1, name: name.into(), kind };
//! let registry = CustomFields {
//!     fields: vec![field("rtt_us", CustomKind::Unsigned), field("app", CustomKind::String)],
//! };
//! let f = parse_with(r#"rtt_us > 50k and not app = "dns""#, &registry).unwrap();
//! assert_eq!(f.custom_names(), vec!["rtt_us", "app"]);
//! assert_eq!(f.to_string(), r#"rtt_us > 50000 and not app = "dns""#);
//! assert_eq!(
//!     f.to_sql().unwrap(),
//!     "(((rtt_us IS NOT NULL AND rtt_us > 50000)) AND (NOT ((app IS NOT NULL AND app = 'dns'))))"
//! );
//! let slow = FlowRecord { extra: vec![(0, CustomValue::Unsigned(80_000))], ..Default::default() };
//! assert!(f.matches(&slow));
//! assert!(!f.matches(&FlowRecord::default()));
//! assert!(parse_with("not rtt_us > 50k", &registry).unwrap().matches(&FlowRecord::default()));
//! ```
//!
//! See `docs/filter-language.md` for the language, and where it deliberately differs from
//! nfdump.

pub mod acl;
pub mod error;
pub mod eval;
pub mod ir;
mod lexer;
mod parser;
pub mod prune;
pub mod sql;

pub use error::{FilterError, Position};
pub use eval::Bitmap;
pub use ir::{CmpOp, CustomTest, Expr, Float, NumTest};
pub use prune::Tri;
pub use sql::SqlError;

use flowdrill_model::CustomFields;

/// Parses a filter expression into its simplified predicate. An empty filter (blanks and
/// comments only) selects every record, as in nfdump.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    Ok(parse_unsimplified(src)?.simplify())
}

/// [`parse`], where the names of the user-defined elements of `custom` are fields too
/// (`rtt_us > 100`, `app = "dns"`, `peer 10.0.0.0/8`). The expression's [`Expr::Custom`]
/// nodes keep each element's index in `custom` (for [`Expr::matches`]) and its name (for
/// [`Expr::select`]); [`Expr::custom_names`] lists the columns to load. With an empty
/// registry this is [`parse`].
pub fn parse_with(src: &str, custom: &CustomFields) -> Result<Expr, FilterError> {
    Ok(parser::Parser::with_custom(src, custom)?
        .parse_filter()?
        .simplify())
}

/// Parses a filter expression without simplifying it: the tree mirrors the text (useful to
/// test the simplifier, and to show users what they wrote).
pub fn parse_unsimplified(src: &str) -> Result<Expr, FilterError> {
    parser::Parser::new(src)?.parse_filter()
}
