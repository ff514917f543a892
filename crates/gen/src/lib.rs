//! # flowdrill-gen
//!
//! Synthetic network traffic with a realistic shape, deterministic from a seed, for demos,
//! tests and benchmarks of flowdrill (and of other collectors).
//!
//! Brief overview:
//!
//! - [`Scenario`]: seed, time span, number of background flows, IPv6 share, diurnal
//!   peak/trough ratio, the local networks, and injected [`Event`]s (SYN scan, spoofed SYN
//!   flood, dragonfly UDP burst, elephant backup). [`Scenario::demo`] is one busy hour.
//! - [`records`]: the scenario's [`FlowRecord`]s in start-time order, streamed with bounded
//!   memory (100 M records are fine); [`truth()`] counts them.
//! - [`write_packets_pcap`]: the packets behind those records (Ethernet + IPv4/IPv6 +
//!   TCP/UDP/ICMP headers) as a classic pcap that a flow meter (softflowd, nfpcapd, flowdrill's
//!   own) turns back into the same flows.
//! - [`write_export_pcap`] and [`export::Exporter`]: NetFlow v5, v9 and IPFIX datagrams of the
//!   records, as a pcap of UDP frames from the exporter to a collector.
//!
//! The traffic model: heavy-tailed host popularity (Zipf) and flow sizes (Pareto: most flows
//! carry 1–10 packets, a few carry millions), client/server ports (443/TCP dominant, 80,
//! 53/UDP, 22, 25/587/993, 123, QUIC on 443/UDP, STUN 3478, high-port P2P; clients on the
//! Linux 32768–60999 or Windows 49152–65535 ephemeral ranges), per-application packet sizes
//! (40/52-byte ACKs, 1500-byte segments, 80–512-byte DNS), ICMP, inbound and outbound traffic
//! of a campus /16 and /48, and a 24-hour sinusoidal rate.
//!
//! ```
//! use flowdrill_gen::{Scenario, records, truth};
//! let s = Scenario { flows: 1_000, ..Scenario::default() };
//! let recs: Vec<_> = records(&s).unwrap().collect();
//! assert_eq!(recs.len(), 1_000);
//! assert!(recs.windows(2).all(|w| w[0].time_start <= w[1].time_start));
//! assert_eq!(truth(&s).unwrap().total.packets, recs.iter().map(|r| r.packets).sum::<u64>());
//! ```

pub mod export;
mod flows;
pub mod packets;
pub mod pcap;
pub mod rng;
pub mod scenario;
pub mod shape;
pub mod truth;

pub use export::{
    ExportError, ExportFormat, ExportOptions, ExportStats, encode_export, write_export_pcap,
};
pub use flows::{Origin, Records};
pub use packets::{PacketOptions, write_packets_pcap, write_packets_pcap_with};
pub use scenario::{Event, Scenario, ScenarioError};
pub use truth::{Counts, Truth};

pub use flowdrill_model::FlowRecord;

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("writing the output failed: {0}")]
    Io(#[from] std::io::Error),
    /// A broken invariant of the generator itself.
    #[error("internal error (please report a bug): {0}")]
    Internal(String),
}

/// The scenario's records in non-decreasing `time_start` order. Counters are the truth: no
/// sampling, no timeouts splitting flows.
pub fn records(s: &Scenario) -> Result<Records, Error> {
    s.validate()?;
    Ok(Records::new(s))
}

/// Generates the scenario once and counts what it contains.
pub fn truth(s: &Scenario) -> Result<Truth, Error> {
    let mut recs = records(s)?;
    let mut t = Truth::new(s.events.len());
    while let Some(g) = recs.next_gen() {
        t.add(g.origin, &g.rec, &g.shape);
    }
    t.finish();
    Ok(t)
}
