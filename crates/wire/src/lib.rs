//! # flowdrill-wire
//!
//! Pure decoders: bytes in, [`flowdrill_model::FlowRecord`]s and counters out, no I/O.
//!
//! - [`Decoder`]: the entry point for export datagrams of any version, with its
//!   [`DecoderConfig`] and [`DecodeStats`].
//! - [`netflow`]: NetFlow v5, NetFlow v9 and IPFIX, with template state per exporter.
//! - [`sflow`]: sFlow v5 flow samples (sampled packet headers become flow records).
//! - [`packet`]: Ethernet / VLAN / MPLS / IPv4 / IPv6 / TCP / UDP header parsing, shared by
//!   sFlow's sampled headers and ingest's flow meter.
//!
//! ```
//! use flowdrill_wire::{Decoder, DecoderConfig};
//! let mut dec = Decoder::new(DecoderConfig::default());
//! let datagram = flowdrill_wire::netflow::v5::build(
//!     60_000, 1_700_000_000, 0, &[(0x0a000001, 0x0a000002, 5353, 53, 17, 2, 120, 1_000, 2_000)],
//! );
//! let mut out = Vec::new();
//! dec.decode("192.0.2.1".parse().unwrap(), 0, &datagram, &mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].dst_port, 53);
//! assert_eq!(dec.stats().v5.records, 1);
//! ```

pub mod decoder;
pub mod netflow;
pub mod packet;
pub mod sflow;
pub mod stats;

pub use decoder::{Decoder, DecoderConfig};
pub use stats::{DecodeStats, ExporterStats, VersionStats};
