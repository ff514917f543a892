//! # flowdrill-wire
//!
//! Pure decoders: bytes in, [`flowdrill_model::FlowRecord`]s and counters out, no I/O.
//!
//! - `netflow`: NetFlow v5, NetFlow v9 and IPFIX, with template state per exporter.
//! - [`sflow`]: sFlow v5 flow samples (sampled packet headers become flow records).
//! - [`packet`]: Ethernet / VLAN / MPLS / IPv4 / IPv6 / TCP / UDP header parsing, shared by
//!   sFlow's sampled headers and ingest's flow meter.

pub mod packet;
pub mod sflow;
