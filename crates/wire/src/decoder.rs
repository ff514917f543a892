//! The one entry point for export datagrams: version detection, dispatch, per-exporter
//! sampling overrides and counters.
//!
//! [`Decoder`] owns the NetFlow v9 / IPFIX [`Session`] (templates, domains, pending data) and
//! the [`DecodeStats`]. It never panics on input: every rejected datagram, set, template or
//! record is counted in [`DecodeStats::drops`] under its reason.
//!
//! Version detection: NetFlow and IPFIX start with a `u16` version (5, 9, 10); sFlow starts
//! with a `u32` version 5, i.e. bytes `00 00 00 05`, which no NetFlow header can begin with.

use crate::netflow::session::{Limits, Session};
use crate::netflow::{ipfix, v5, v9};
use crate::stats::{DecodeStats, ExporterStats};
use flowdrill_model::{Addr, CustomFields, FlowRecord, Prefix};

/// How a [`Decoder`] behaves; every field has a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// User-defined information elements to decode into `FlowRecord::extra`.
    pub custom: CustomFields,
    /// Per-exporter-prefix sampling rate that wins over what the exporter says; the longest
    /// matching prefix applies.
    pub sampling_overrides: Vec<(Prefix, u32)>,
    /// Cap on the template cache, all exporters together.
    pub max_templates: usize,
    /// Cap on data-set bytes held waiting for their template.
    pub max_pending_bytes: usize,
    /// Cap on remembered (exporter, domain) states (sampler tables, sequence numbers).
    pub max_domains: usize,
    /// Exporters counted individually in [`DecodeStats::exporters`]; more are summed.
    pub max_exporters: usize,
    /// Decode every IPFIX message of a datagram, not just the first (for IPFIX files cut
    /// into chunks; UDP carries one message per datagram and nfcapd reads only the first).
    pub ipfix_multi_message: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            custom: CustomFields::default(),
            sampling_overrides: Vec::new(),
            max_templates: 16_384,
            max_pending_bytes: 4 << 20,
            max_domains: 65_536,
            max_exporters: 4_096,
            ipfix_multi_message: false,
        }
    }
}

/// Why a datagram was not decoded at all (the dispatcher's own causes; the version
/// decoders have theirs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("datagram of {0} bytes is too short to carry a version")]
    TooShort(usize),
    #[error("unknown export version {0:#06x}")]
    UnknownVersion(u16),
}

impl Error {
    /// The drop reason this error is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::TooShort(_) => "datagram: too short",
            Error::UnknownVersion(_) => "datagram: unknown version",
        }
    }
}

/// The protocol a datagram was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V5,
    V9,
    Ipfix,
    Sflow,
}

/// Decodes export datagrams of NetFlow v5, v9, IPFIX and sFlow v5 into flow records.
#[derive(Debug)]
pub struct Decoder {
    overrides: Vec<(Prefix, u32)>,
    max_exporters: usize,
    ipfix_multi_message: bool,
    session: Session,
    stats: DecodeStats,
}

impl Decoder {
    pub fn new(cfg: DecoderConfig) -> Decoder {
        let mut overrides = cfg.sampling_overrides;
        // Longest prefix first, so the first match is the most specific one.
        overrides.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Decoder {
            overrides,
            max_exporters: cfg.max_exporters,
            ipfix_multi_message: cfg.ipfix_multi_message,
            session: Session::new(
                Limits {
                    max_templates: cfg.max_templates,
                    max_pending_bytes: cfg.max_pending_bytes,
                    max_domains: cfg.max_domains,
                },
                cfg.custom,
            ),
            stats: DecodeStats::default(),
        }
    }

    /// The sampling rate configured for `exporter`, if any.
    pub fn rate_override(&self, exporter: Addr) -> Option<u32> {
        self.overrides
            .iter()
            .find(|(p, _)| p.contains(exporter))
            .map(|&(_, r)| r.max(1))
    }

    /// One export datagram (UDP payload) from `exporter`, received at `recv_ms` (Unix ms).
    /// Version detected from content: 5, 9, 10 (IPFIX), or sFlow v5 (delegated to
    /// [`crate::sflow`]). Never panics; bad input is counted in [`Decoder::stats`] by reason.
    pub fn decode(
        &mut self,
        exporter: Addr,
        recv_ms: u64,
        payload: &[u8],
        out: &mut Vec<FlowRecord>,
    ) {
        let before_out = out.len();
        let before_drops = self.stats.total_drops();
        let before_gaps = self.stats.sequence_gaps;
        self.stats.datagrams += 1;
        let rate = self.rate_override(exporter);
        let version = self.dispatch(exporter, recv_ms, payload, rate, out);
        let produced = (out.len() - before_out) as u64;
        self.stats.records += produced;
        if let Some(v) = version {
            let v = match v {
                Version::V5 => &mut self.stats.v5,
                Version::V9 => &mut self.stats.v9,
                Version::Ipfix => &mut self.stats.ipfix,
                Version::Sflow => &mut self.stats.sflow,
            };
            v.datagrams += 1;
            v.records += produced;
        }
        let dropped = self.stats.total_drops() - before_drops;
        let gaps = self.stats.sequence_gaps - before_gaps;
        let limit = self.max_exporters;
        let s = &mut self.stats;
        let e = if s.exporters.len() < limit || s.exporters.contains_key(&exporter) {
            s.exporters.entry(exporter).or_default()
        } else {
            &mut s.exporters_untracked
        };
        add(e, produced, dropped, gaps);
    }

    /// Decodes and returns the version counters to charge (`None`: no version recognised).
    fn dispatch(
        &mut self,
        exporter: Addr,
        recv_ms: u64,
        payload: &[u8],
        rate: Option<u32>,
        out: &mut Vec<FlowRecord>,
    ) -> Option<Version> {
        if payload.len() < 4 {
            self.stats.drop(Error::TooShort(payload.len()).reason(), 1);
            return None;
        }
        let v16 = u16::from_be_bytes([payload[0], payload[1]]);
        let v32 = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let stats = &mut self.stats;
        match v16 {
            5 => {
                // Several v5 PDUs may follow each other in one buffer (captures made with
                // netcat); nfcapd decodes them all, and so do we.
                let mut rest = payload;
                loop {
                    match v5::decode(rest, exporter, rate, out) {
                        Ok(h) => {
                            let next = h.flow_sequence.wrapping_add(h.count as u32);
                            let key = (exporter, h.domain);
                            self.session
                                .sequence(key, h.flow_sequence, Some(next), stats);
                            rest = &rest[v5::HEADER_LEN + h.count as usize * v5::RECORD_LEN..];
                            if rest.len() < v5::HEADER_LEN || rest[..2] != [0, 5] {
                                break;
                            }
                        }
                        Err(e) => {
                            stats.drop(e.reason(), 1);
                            break;
                        }
                    }
                }
                Some(Version::V5)
            }
            9 => {
                if let Err(e) = v9::decode(&mut self.session, exporter, payload, rate, out, stats) {
                    stats.drop(e.reason(), 1);
                }
                Some(Version::V9)
            }
            10 => {
                let multi = self.ipfix_multi_message;
                let session = &mut self.session;
                if let Err(e) = ipfix::decode(session, exporter, payload, rate, multi, out, stats) {
                    stats.drop(e.reason(), 1);
                }
                Some(Version::Ipfix)
            }
            0 if v32 == 5 => {
                if let Err(reason) = sflow_shim(payload, exporter, recv_ms, rate, out) {
                    stats.drop(reason, 1);
                }
                Some(Version::Sflow)
            }
            _ => {
                stats.drop(Error::UnknownVersion(v16).reason(), 1);
                None
            }
        }
    }

    /// End of input: data still waiting for templates is counted as dropped ("no template").
    /// Nothing can be emitted any more, `out` is kept for symmetry with `decode`.
    pub fn finish(&mut self, out: &mut Vec<FlowRecord>) {
        let _ = out;
        self.session.finish(&mut self.stats);
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The v9/IPFIX template state (for inspection and tests).
    pub fn session(&self) -> &Session {
        &self.session
    }
}

fn add(e: &mut ExporterStats, records: u64, drops: u64, gaps: u64) {
    e.datagrams += 1;
    e.records += records;
    e.drops += drops;
    e.sequence_gaps += gaps;
}

/// The bridge to the sFlow decoder (another module's error type); returns the drop reason.
fn sflow_shim(
    payload: &[u8],
    exporter: Addr,
    recv_ms: u64,
    rate: Option<u32>,
    out: &mut Vec<FlowRecord>,
) -> Result<usize, &'static str> {
    crate::sflow::decode(payload, exporter, recv_ms, rate, out).map_err(|e| e.reason())
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
