//! NetFlow v5, NetFlow v9 and IPFIX (RFC 7011) decoding.
//!
//! This module owns the wire formats of the three Cisco-lineage export protocols and the
//! state they need between datagrams:
//!
//! - [`v5`]: the fixed 48-byte record format, decoded without any state.
//! - [`template`]: template records parsed into a compiled [`template::Plan`] — a list of
//!   fixed-offset operations run once per data record, with no per-record allocation.
//! - [`session`]: the template cache (capped, per exporter address and observation domain /
//!   source id), per-domain state (sampler rates, system init time, sequence numbers) and the
//!   bounded queue of data sets waiting for their template.
//! - [`v9`] and [`ipfix`]: message and set headers of the two template-based versions; both
//!   hand their sets to the session.
//!
//! ```text
//!  datagram ──► v5::decode ───────────────────────────────► FlowRecord
//!           ──► v9 / ipfix: header ─► sets ─► template set ─► session.templates (Plan)
//!                                        └─► data set ─────► Plan::run ─► FlowRecord
//!                                              (no template: session.pending, bounded)
//! ```
//!
//! Conventions, shared with nfdump where it has one:
//!
//! - Times: uptime-relative (v5, v9 and IPFIX FIRST/LAST_SWITCHED 22/21; IPFIX needs
//!   systemInitTimeMilliseconds 160 from options data or the record), absolute seconds / ms /
//!   µs / ns (150-157; µs and ns in NTP format, plain Unix values recognised too), and delta
//!   µs (158/159). A start more than 2^31 ms after the end is a wrapped uptime counter and
//!   moves back 2^32 ms (nfdump). A record without any time gets its message's export time.
//! - ICMP: type*256+code in `dst_port` and `src_port` 0 when an ICMP type/code element is
//!   present (32, 139, 176-179).
//! - Addresses: a template may carry both IPv4 and IPv6 elements; the non-zero one is kept.
//!   An absent next hop falls back to the BGP next hop (18/63).
//! - Counters: octetDeltaCount 1, else octetTotalCount 85, postOctetDeltaCount 23,
//!   initiatorOctets 231, layer2OctetDeltaCount 352 (packets likewise: 2, 86, 24, 298).
//! - Sampling: override for the exporter, else the record's own rate (34, 50, 305/306), else
//!   its sampler / selector id (48, 302) looked up in options data, else the domain's rate
//!   from options data without a sampler id. Counters are multiplied by the rate.
//! - RFC 5103 reverse elements (enterprise 29305) and every enterprise element not in the
//!   user registry are skipped by length.
//! - UDP carries one IPFIX message per datagram (bytes after it are counted and ignored
//!   unless `DecoderConfig::ipfix_multi_message`); v5 PDUs back to back are all decoded
//!   (both as nfcapd does).

#[doc(hidden)]
pub mod build;
pub mod ipfix;
pub mod session;
pub mod template;
pub mod v5;
pub mod v9;

/// Reads a big-endian unsigned integer of 1 to 8 bytes (reduced-size encoding, RFC 7011
/// section 6.2). Longer slices keep their last 8 bytes; an empty slice reads as 0.
#[inline(always)]
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    match b.len() {
        1 => b[0] as u64,
        2 => u16::from_be_bytes([b[0], b[1]]) as u64,
        4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64,
        8 => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => {
            let start = b.len().saturating_sub(8);
            b[start..]
                .iter()
                .fold(0u64, |acc, &x| (acc << 8) | x as u64)
        }
    }
}

/// The big-endian `u16` at `off`; the caller guarantees `off + 2 <= b.len()`.
#[inline(always)]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// The big-endian `u32` at `off`; the caller guarantees `off + 4 <= b.len()`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Which of the two template-based protocols a message came in: they share templates and
/// data records but differ in set ids, options templates, field types and time bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    V9,
    Ipfix,
}

/// What the header of one export message says that records need to be interpreted: the
/// time bases of uptime-relative and delta timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCtx {
    /// Export time of the message, Unix ms.
    pub export_ms: u64,
    /// Exporter uptime at export (v9 `sysUptime`), ms; `None` for IPFIX.
    pub uptime_ms: Option<u32>,
}

impl MessageCtx {
    /// Unix ms at which the exporter booted, per a v9 header.
    pub fn boot_ms(&self) -> Option<u64> {
        self.uptime_ms
            .map(|u| self.export_ms.saturating_sub(u as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_size_integers_read_big_endian() {
        let cases: &[(&[u8], u64)] = &[
            (&[], 0),
            (&[7], 7),
            (&[1, 2], 0x0102),
            (&[1, 2, 3], 0x010203),
            (&[0, 0, 1, 0], 256),
            (&[1, 2, 3, 4, 5, 6], 0x0102_0304_0506),
            (&[1, 2, 3, 4, 5, 6, 7, 8], 0x0102_0304_0506_0708),
            (&[9, 1, 2, 3, 4, 5, 6, 7, 8], 0x0102_0304_0506_0708),
        ];
        for (bytes, want) in cases {
            assert_eq!(be_uint(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn boot_time_is_export_time_minus_uptime() {
        let ctx = MessageCtx {
            export_ms: 10_000,
            uptime_ms: Some(4_000),
        };
        assert_eq!(ctx.boot_ms(), Some(6_000));
        let ipfix = MessageCtx {
            export_ms: 10_000,
            uptime_ms: None,
        };
        assert_eq!(ipfix.boot_ms(), None);
    }
}
