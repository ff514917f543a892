//! # flowdrill-ingest
//!
//! Reading what users bring and turning it into [`flowdrill_model::FlowRecord`]s.
//!
//! Brief overview:
//!
//! - [`import`]: the entry point. [`import::Importer`] detects what a file holds from its
//!   content (gzip'd or not) and drives the right reader, keeping template state and the flow
//!   meter across files; every drop is counted by reason in an [`import::ImportSummary`].
//! - [`pcap`]: pcap and pcapng readers (packets with timestamps).
//! - [`meter`]: the flow meter, raw packets to flows (5-tuple, active/idle timeouts, FIN/RST).
//! - [`nfcapd`]: nfdump's nfcapd files (1.7 layout; uncompressed, LZ4, ZSTD, LZO).
//! - [`nfcsv`]: nfdump's `-o csv` output.
//! - [`anon`]: anonymisation at import (masking, keyed prefix-preserving).
//! - [`registry`]: the registry file of user-defined information elements.
//!
//! ```no_run
//! use flowdrill_ingest::import::{ImportConfig, Importer};
//! let mut imp = Importer::new(ImportConfig::default());
//! let mut n = 0u64;
//! let mut sink = |batch: &[flowdrill_model::FlowRecord]| -> Result<(), String> {
//!     n += batch.len() as u64;
//!     Ok(())
//! };
//! let summary = imp.import_file("exports.pcap".as_ref(), &mut sink).unwrap();
//! let end = imp.finish(&mut sink).unwrap();
//! println!("{:?}: {} records, drops {:?}", summary.kind, summary.records + end.records, end.drops);
//! ```

pub mod anon;
pub mod import;
pub mod meter;
pub mod nfcapd;
pub mod nfcsv;
pub mod pcap;
pub mod registry;
