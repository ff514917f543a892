//! IPFIX (RFC 7011) messages: a 16-byte header, then sets.
//!
//! Set id 2 holds templates, 3 options templates, 256 and above data records; 4 to 255 are
//! reserved and skipped. The header's length must fit the datagram; a datagram may carry
//! several messages back to back (as IPFIX files do), each decoded in turn. The sequence
//! number counts data records sent before the message, per observation domain; it is only
//! checked when every data set of the message could be decoded (held sets have no known
//! record count).

use super::session::Session;
use super::{Flavor, MessageCtx, be16, be32};
use crate::stats::DecodeStats;
use flowdrill_model::{Addr, FlowRecord};

pub const HEADER_LEN: usize = 16;

/// Why (part of) an IPFIX message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("IPFIX datagram of {0} bytes is shorter than its 16-byte header")]
    ShortHeader(usize),
    #[error("IPFIX message length {len} is outside 16..={left} bytes left in the datagram")]
    BadLength { len: u16, left: usize },
    #[error("set length {0} is below the 4-byte set header")]
    SetTooShort(u16),
    #[error("set length {len} runs past the {left} bytes left in the message")]
    SetOverrun { len: u16, left: usize },
}

impl Error {
    /// The drop reason this error is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ShortHeader(_) => "datagram: ipfix shorter than header",
            Error::BadLength { .. } => "datagram: ipfix message length lies",
            Error::SetTooShort(_) => "set: ipfix set length too short",
            Error::SetOverrun { .. } => "set: ipfix set runs past message",
        }
    }
}

/// The fields of an IPFIX message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub length: u16,
    pub export_secs: u32,
    pub sequence: u32,
    pub domain: u32,
}

/// Parses the header at the start of `payload`.
pub fn header(payload: &[u8]) -> Result<Header, Error> {
    if payload.len() < HEADER_LEN {
        return Err(Error::ShortHeader(payload.len()));
    }
    let h = Header {
        length: be16(payload, 2),
        export_secs: be32(payload, 4),
        sequence: be32(payload, 8),
        domain: be32(payload, 12),
    };
    if (h.length as usize) < HEADER_LEN || h.length as usize > payload.len() {
        return Err(Error::BadLength {
            len: h.length,
            left: payload.len(),
        });
    }
    Ok(h)
}

/// Decodes the IPFIX message at the start of a datagram, and the ones after it when
/// `multi_message` is set (IPFIX files, RFC 5655). Without it, bytes after the first message
/// are counted and ignored, as nfcapd and logstash do. Returns the first message's header,
/// or the error that rejected it; a bad later message is counted and ends the datagram.
pub fn decode(
    session: &mut Session,
    exporter: Addr,
    payload: &[u8],
    rate_override: Option<u32>,
    multi_message: bool,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) -> Result<Header, Error> {
    let first = header(payload)?;
    let mut rest = payload;
    let mut h = first;
    loop {
        let msg = &rest[..h.length as usize];
        message(session, exporter, h, msg, rate_override, out, stats);
        rest = &rest[h.length as usize..];
        if !multi_message {
            if !rest.is_empty() && rest.iter().any(|&b| b != 0) {
                stats.drop("datagram: ipfix bytes after message ignored", 1);
            }
            break;
        }
        if rest.len() < HEADER_LEN || be16(rest, 0) != 10 {
            break;
        }
        match header(rest) {
            Ok(next) => h = next,
            Err(e) => {
                stats.drop(e.reason(), 1);
                break;
            }
        }
    }
    Ok(first)
}

fn message(
    session: &mut Session,
    exporter: Addr,
    h: Header,
    msg: &[u8],
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) {
    let ctx = MessageCtx {
        export_ms: h.export_secs as u64 * 1000,
        uptime_ms: None,
    };
    let mut pos = HEADER_LEN;
    let mut records: Option<u32> = Some(0);
    while msg.len() - pos >= 4 {
        let id = be16(msg, pos);
        let len = be16(msg, pos + 2);
        if len < 4 {
            if msg[pos..].iter().all(|&b| b == 0) {
                break;
            }
            stats.drop(Error::SetTooShort(len).reason(), 1);
            records = None;
            break;
        }
        let left = msg.len() - pos;
        if len as usize > left {
            stats.drop(Error::SetOverrun { len, left }.reason(), 1);
            records = None;
            break;
        }
        let body = &msg[pos + 4..pos + len as usize];
        pos += len as usize;
        match id {
            2 | 3 => {
                session.template_set(Flavor::Ipfix, exporter, h.domain, id == 3, body, out, stats)
            }
            4..=255 | 0 | 1 => stats.drop("set: reserved set id", 1),
            _ => {
                let n = session.data_set(
                    Flavor::Ipfix,
                    (exporter, h.domain, id),
                    body,
                    ctx,
                    rate_override,
                    out,
                    stats,
                );
                records = match (records, n) {
                    (Some(a), Some(b)) => Some(a.wrapping_add(b as u32)),
                    _ => None,
                };
            }
        }
    }
    session.sequence(
        (exporter, h.domain),
        h.sequence,
        records.map(|n| h.sequence.wrapping_add(n)),
        stats,
    );
}
