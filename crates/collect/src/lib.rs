//! # flowdrill-collect
//!
//! The live collector (`flowdrill collect`) and its load generator (`flowdrill replay`).
//!
//! ## Brief overview
//!
//! - [`Collector`]: binds UDP sockets, one receiver thread each that only drains its socket
//!   (`recvmmsg`) into blocks of raw datagrams ([`ring`]); the blocks go over a bounded
//!   channel to one writer thread that decodes NetFlow v5/v9, IPFIX and sFlow with a
//!   [`flowdrill_wire::Decoder`] per listener (template state per exporter and domain), pushes
//!   the records into the [`flowdrill_store::StoreWriter`] and closes bins as its event clock
//!   passes them.
//!   [`Collector::reload`] switches to new link rules, [`Collector::shutdown`] writes the open
//!   bins. Its configuration is a [`CollectConfig`].
//! - [`metrics`]: the counters of every stage in Prometheus text format, and a tiny HTTP
//!   responder for them ([`metrics::serve`]).
//! - [`procnet`]: the kernel's drop counter of a UDP socket (`/proc/net/udp`).
//! - [`replay`]: reads the export datagrams of a pcap/pcapng and sends them at a given rate.
//!
//! ```text
//!  udp :2055 ─► receiver thread: recvmmsg ─► block of datagrams ─┐ blocks (bounded channel;
//!  udp :4739 ─► receiver thread: recvmmsg ─► block ──────────────┤  emptied blocks return
//!  udp :6343 ─► receiver thread: recvmmsg ─► block ──────────────┘  to the ring's free list)
//!                                                                ▼
//!        writer thread: Decoder of the block's listener (templates per exporter) ─►
//!        StoreWriter::push (links rules, exact bin stats, adaptive sampling of open bins past
//!        their cap) ─ event clock − lag ─► advance ─► bin files (atomic)
//! ```
//!
//! Memory is bounded and flat: the ring holds at most [`CollectConfig::channel_blocks`] +
//! listeners + 1 blocks of [`CollectConfig::block_bytes`] each, allocated once; each
//! decoder caps its templates and pending data; and every open bin holds at most
//! [`flowdrill_store::WriterOptions::max_open_records`] records, or twice what its disk
//! budget keeps when that is fewer (past it the bin is sampled adaptively, its exact counters
//! and sketches untouched).

pub mod collector;
pub mod metrics;
pub mod procnet;
pub mod replay;
pub mod ring;

pub use collector::{CollectConfig, CollectSummary, Collector};

use std::net::SocketAddr;

/// What can go wrong in the collector or the replayer. Bad datagrams are not errors: they are
/// counted and dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on udp {addr}: {source} (is another collector on that port?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the store: {0}")]
    Store(#[from] flowdrill_store::Error),
    #[error("{path}: {message}")]
    Capture { path: String, message: String },
    #[error("internal error (please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
