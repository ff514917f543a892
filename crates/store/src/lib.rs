//! # flowdrill-store
//!
//! The flow store makes flowdrill interactive: per link and per time bin it keeps only what the
//! analyses need, sampled so that a disk budget holds, in Parquet files that pyarrow, DuckDB,
//! pandas and Spark read as they are.
//!
//! ## Brief overview
//!
//! - [`Store`]: a store directory. [`Store::create`] / [`Store::open`], [`Store::links`],
//!   [`Store::bins`] (a link's bins at a level over a time range), [`Store::read_bin`] (a
//!   [`Batch`], which implements [`flowdrill_model::ColumnSource`]), [`Store::bin_stats`]
//!   (exact counters and HyperLogLog sketches taken before sampling), [`Store::plan`] (which
//!   level to read), retention ([`Store::expire`], [`Store::expire_to_size`],
//!   [`Store::delete_range`]) and [`Store::skipped`] (unreadable files, with reasons).
//! - [`StoreWriter`]: push [`flowdrill_model::FlowRecord`]s in any time order; bins close on
//!   [`StoreWriter::advance`] or [`StoreWriter::finish`], which returns a [`WriteSummary`].
//! - [`LinksConfig`]: the links file (Netpy's `links.conf`, TOML): ordered rules that send
//!   each flow to a link or drop it, and each link's bins, budgets and retention.
//! - [`sampling`]: threshold sampling, re-thresholding ([`sampling::rethreshold_mask`]) and
//!   the estimators (ORACLES §3).
//!
//! ## Layout
//!
//! ```text
//!  FlowRecord ──► StoreWriter ──► links rules ──► link ──► split at bin edges
//!                                       │                        │
//!                                       └─► drop (counted)       ▼
//!                                         level-0 bin: records + exact stats (counters, HLLs)
//!                                                                │ close
//!                          ┌─────────────────────────────────────┼───────────────────────┐
//!                          ▼                                     ▼                       ▼
//!                 sample at z0 (budget)          re-sample z1 ≥ z0 (×10 fewer)   z2 ≥ z1 (×100)
//!                          │                                     │                       │
//! DIR/link=L/level=0/date=D/flows-YYYYMMDDhhmm.parquet   level=1/… (1 h bins)    level=2/… (1 d bins)
//!  │  columns: every schema field (addresses as NAME_v4 + NAME_v6), sample_z, extras
//!  │  metadata: link, level, bin, z, records before/after, counters, HLL sketches
//!  └─ DIR/_catalog.json (cache of the footers, rebuilt from the files when missing or stale)
//! ```
//!
//! ## Example
//!
//! ```
//! use flowdrill_model::{Field, FlowRecord};
//! use flowdrill_store::{Store, StoreWriter, WriterOptions};
//! # fn main() -> Result<(), flowdrill_store::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path())?;
//! let mut w = StoreWriter::new(&store, WriterOptions::default())?;
//! for i in 0..1000u64 {
//!     w.push(FlowRecord { time_start: i * 1000, time_end: i * 1000 + 10, bytes: 1500, packets: 1, ..Default::default() })?;
//! }
//! let summary = w.finish()?;
//! assert_eq!(summary.records_in, 1000);
//! let store = Store::open(dir.path())?;
//! let bins = store.bins("default", 0..u64::MAX, 0)?;
//! let batch = store.read_bin(&bins[0], &[Field::Bytes, Field::SrcAddr])?;
//! assert_eq!(batch.estimated_bytes(), Some(300 * 1500)); // the first 5-minute bin
//! # Ok(()) }
//! ```

pub mod batch;
pub mod config;
pub mod error;
pub mod format;
pub mod layout;
pub mod sampling;
pub mod stats;
pub mod store;
pub mod writer;

pub use batch::{Batch, ExtraColumn, OwnedColumn};
pub use config::{DEFAULT_LINK, LevelConfig, LinkConfig, LinksConfig};
pub use error::{Error, Result};
pub use stats::{BinStats, Counters, Sketch};
pub use store::{BinRef, ExpireSummary, Plan, PlanGoal, ReadResult, Skipped, Store};
pub use writer::{BinSummary, LinkTotals, StoreWriter, WriteSummary, WriterOptions};
