//! NetFlow v9 (RFC 3954) messages: a 20-byte header, then flowsets.
//!
//! Flowset id 0 holds templates, 1 options templates, 256 and above data records; 2 to 255
//! are reserved and skipped. Times in data records are uptime-relative: the header's
//! `sysUptime` and `unix_secs` give the exporter's boot time. The sequence number counts
//! export packets per source id.

use super::session::Session;
use super::{Flavor, MessageCtx, be16, be32};
use crate::stats::DecodeStats;
use flowdrill_model::{Addr, FlowRecord};

pub const HEADER_LEN: usize = 20;

/// Why (part of) a v9 message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("v9 datagram of {0} bytes is shorter than its 20-byte header")]
    ShortHeader(usize),
    #[error("flowset length {0} is below the 4-byte flowset header")]
    SetTooShort(u16),
    #[error("flowset length {len} runs past the {left} bytes left in the datagram")]
    SetOverrun { len: u16, left: usize },
}

impl Error {
    /// The drop reason this error is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ShortHeader(_) => "datagram: v9 shorter than header",
            Error::SetTooShort(_) => "set: v9 flowset length too short",
            Error::SetOverrun { .. } => "set: v9 flowset runs past datagram",
        }
    }
}

/// The fields of a v9 header that matter after decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub count: u16,
    pub uptime_ms: u32,
    pub unix_secs: u32,
    pub sequence: u32,
    pub source_id: u32,
}

/// Parses the header.
pub fn header(payload: &[u8]) -> Result<Header, Error> {
    if payload.len() < HEADER_LEN {
        return Err(Error::ShortHeader(payload.len()));
    }
    Ok(Header {
        count: be16(payload, 2),
        uptime_ms: be32(payload, 4),
        unix_secs: be32(payload, 8),
        sequence: be32(payload, 12),
        source_id: be32(payload, 16),
    })
}

/// Decodes one v9 datagram with the template state of `session`. Returns the header, or the
/// error that rejected the whole datagram; errors in later flowsets are counted in `stats`
/// and end the datagram (flowsets after a bad length cannot be delimited).
pub fn decode(
    session: &mut Session,
    exporter: Addr,
    payload: &[u8],
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) -> Result<Header, Error> {
    let h = header(payload)?;
    let ctx = MessageCtx {
        export_ms: h.unix_secs as u64 * 1000,
        uptime_ms: Some(h.uptime_ms),
    };
    let mut pos = HEADER_LEN;
    while payload.len() - pos >= 4 {
        let id = be16(payload, pos);
        let len = be16(payload, pos + 2);
        if len < 4 {
            // Some exporters zero-fill datagrams after the last flowset (Palo Alto).
            if payload[pos..].iter().all(|&b| b == 0) {
                break;
            }
            stats.drop(Error::SetTooShort(len).reason(), 1);
            break;
        }
        let left = payload.len() - pos;
        if len as usize > left {
            stats.drop(Error::SetOverrun { len, left }.reason(), 1);
            break;
        }
        let body = &payload[pos + 4..pos + len as usize];
        pos += len as usize;
        match id {
            0 | 1 => {
                session.template_set(Flavor::V9, exporter, h.source_id, id == 1, body, out, stats)
            }
            2..=255 => stats.drop("set: reserved set id", 1),
            _ => {
                session.data_set(
                    Flavor::V9,
                    (exporter, h.source_id, id),
                    body,
                    ctx,
                    rate_override,
                    out,
                    stats,
                );
            }
        }
    }
    session.sequence(
        (exporter, h.source_id),
        h.sequence,
        Some(h.sequence.wrapping_add(1)),
        stats,
    );
    Ok(h)
}
