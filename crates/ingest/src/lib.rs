//! # flowdrill-ingest
//!
//! Reading what users bring and turning it into [`flowdrill_model::FlowRecord`]s:
//!
//! - [`pcap`]: pcap and pcapng readers (packets with timestamps).
//! - [`meter`]: the flow meter, raw packets to flows (5-tuple, active/idle timeouts, FIN/RST).
//! - [`nfcapd`]: nfdump's nfcapd files (1.7 layout; uncompressed, LZ4, ZSTD).
//! - [`nfcsv`]: nfdump's `-o csv` output.

pub mod meter;
pub mod nfcapd;
pub mod nfcsv;
pub mod pcap;
