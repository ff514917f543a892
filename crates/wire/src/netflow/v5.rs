//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records, IPv4 only.
//!
//! Decoding needs no state. Times are uptime-relative: the header carries the exporter's
//! uptime and wall clock at export, so `boot = unix_secs*1000 + unix_nsecs/1e6 - sysUptime`
//! and a record's start is `boot + First` (nfdump's computation, no wrap-around guessing).
//! The sampling interval is the low 14 bits of the header's last field; counters are
//! multiplied by it when it is above 1, unless an override rate is given.

use super::{be16, be32};
use flowdrill_model::{Addr, FlowRecord};

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco's limit; also what makes a lying count detectable.
pub const MAX_RECORDS: usize = 30;

/// Why a v5 datagram was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("v5 datagram of {0} bytes is shorter than its 24-byte header")]
    ShortHeader(usize),
    #[error("v5 header counts {0} records (allowed: 1 to 30)")]
    BadCount(u16),
    #[error("v5 header counts {count} records but the datagram holds {len} bytes")]
    Truncated { count: u16, len: usize },
}

impl Error {
    /// The drop reason this error is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ShortHeader(_) => "datagram: v5 shorter than header",
            Error::BadCount(_) => "datagram: v5 record count out of range",
            Error::Truncated { .. } => "datagram: v5 truncated",
        }
    }
}

/// The fields of a v5 header that matter after decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub count: u16,
    pub flow_sequence: u32,
    /// `engine_type << 8 | engine_id`.
    pub domain: u32,
    /// The sampling rate the records were multiplied by (1 = none).
    pub sampling_rate: u32,
    pub export_ms: u64,
}

/// Decodes one v5 datagram, appending its records to `out`.
///
/// `rate_override`, when set, replaces the header's sampling interval. Trailing bytes after
/// the counted records are ignored (some exporters pad datagrams).
pub fn decode(
    payload: &[u8],
    exporter: Addr,
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
) -> Result<Header, Error> {
    if payload.len() < HEADER_LEN {
        return Err(Error::ShortHeader(payload.len()));
    }
    let count = be16(payload, 2);
    if count == 0 || count as usize > MAX_RECORDS {
        return Err(Error::BadCount(count));
    }
    if payload.len() < HEADER_LEN + count as usize * RECORD_LEN {
        return Err(Error::Truncated {
            count,
            len: payload.len(),
        });
    }
    let uptime = be32(payload, 4) as u64;
    let export_ms = be32(payload, 8) as u64 * 1000 + be32(payload, 12) as u64 / 1_000_000;
    let boot = export_ms.wrapping_sub(uptime);
    let domain = (payload[20] as u32) << 8 | payload[21] as u32;
    let interval = (be16(payload, 22) & 0x3fff) as u32;
    let rate = rate_override.unwrap_or(interval).max(1);
    let mult = rate as u64;
    let header = Header {
        count,
        flow_sequence: be32(payload, 16),
        domain,
        sampling_rate: rate,
        export_ms,
    };

    let body = &payload[HEADER_LEN..HEADER_LEN + count as usize * RECORD_LEN];
    // Fixed-size arrays: every offset below is checked at compile time.
    let (records, _) = body.as_chunks::<RECORD_LEN>();
    // `extend` over a slice iterator writes each record straight into the vector's buffer.
    out.extend(records.iter().map(|r| {
        let (first, last) = (be32(r, 24), be32(r, 28));
        FlowRecord {
            time_start: boot
                .wrapping_add(first as u64)
                .wrapping_sub(uptime_wrap(first, last)),
            time_end: boot.wrapping_add(last as u64),
            src_addr: Addr::from_v4_u32(be32(r, 0)),
            dst_addr: Addr::from_v4_u32(be32(r, 4)),
            src_port: be16(r, 32),
            dst_port: be16(r, 34),
            proto: r[38],
            tcp_flags: r[37],
            tos: r[39],
            packets: (be32(r, 16) as u64).saturating_mul(mult),
            bytes: (be32(r, 20) as u64).saturating_mul(mult),
            in_if: be16(r, 12) as u32,
            out_if: be16(r, 14) as u32,
            src_as: be16(r, 40) as u32,
            dst_as: be16(r, 42) as u32,
            src_mask: r[44],
            dst_mask: r[45],
            next_hop: Addr::from_v4_u32(be32(r, 8)),
            exporter,
            domain,
            sampling_rate: rate,
            continued: 0,
            extra: Vec::new(),
        }
    }));
    Ok(header)
}

/// What to subtract from a start time when the 32-bit uptime counter wrapped between the
/// flow's first and last packet (`first > last`, more than 2^31 apart): 2^32 ms, as nfdump.
#[inline(always)]
pub(crate) fn uptime_wrap(first: u32, last: u32) -> u64 {
    if first > last && first - last > 1 << 31 {
        1 << 32
    } else {
        0
    }
}

/// A record for [`build`]: `(src, dst, sport, dport, proto, packets, bytes, first, last)`.
pub type BuildRecord = (u32, u32, u16, u16, u8, u32, u32, u32, u32);

/// Builds a v5 datagram (for tests, fuzz seeds and benchmarks) with a fixed header.
#[doc(hidden)]
pub fn build(uptime: u32, unix_secs: u32, sampling: u16, records: &[BuildRecord]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len() * RECORD_LEN);
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&(records.len() as u16).to_be_bytes());
    b.extend_from_slice(&uptime.to_be_bytes());
    b.extend_from_slice(&unix_secs.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&sampling.to_be_bytes());
    for &(s, d, sp, dp, p, pk, by, first, last) in records {
        b.extend_from_slice(&s.to_be_bytes());
        b.extend_from_slice(&d.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // next hop
        b.extend_from_slice(&1u16.to_be_bytes()); // input
        b.extend_from_slice(&2u16.to_be_bytes()); // output
        b.extend_from_slice(&pk.to_be_bytes());
        b.extend_from_slice(&by.to_be_bytes());
        b.extend_from_slice(&first.to_be_bytes());
        b.extend_from_slice(&last.to_be_bytes());
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&[0, 0x12, p, 0]); // pad, flags, proto, tos
        b.extend_from_slice(&[0, 64, 0, 65, 24, 16, 0, 0]); // AS, masks, pad
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> Vec<u8> {
        build(
            10_000,
            1_700_000_000,
            0,
            &[(0x0a000001, 0x0a000002, 1234, 80, 6, 3, 180, 4_000, 9_000)],
        )
    }

    #[test]
    fn a_record_decodes_with_uptime_relative_times() {
        let mut out = Vec::new();
        let exp = Addr::from_v4_u32(0xc0000201);
        let h = decode(&one(), exp, None, &mut out).unwrap();
        assert_eq!(h.count, 1);
        let r = &out[0];
        let boot = 1_700_000_000_000 - 10_000;
        assert_eq!(r.time_start, boot + 4_000);
        assert_eq!(r.time_end, boot + 9_000);
        assert_eq!(r.src_addr.to_string(), "10.0.0.1");
        assert_eq!(r.dst_addr.to_string(), "10.0.0.2");
        assert_eq!((r.src_port, r.dst_port, r.proto), (1234, 80, 6));
        assert_eq!((r.packets, r.bytes, r.sampling_rate), (3, 180, 1));
        assert_eq!((r.in_if, r.out_if, r.src_as, r.dst_as), (1, 2, 64, 65));
        assert_eq!((r.src_mask, r.dst_mask, r.tcp_flags), (24, 16, 0x12));
        assert_eq!(r.exporter, exp);
    }

    #[test]
    fn a_start_before_an_uptime_wrap_is_moved_back_by_2_pow_32_ms() {
        let b = build(3_381, 1_000, 0, &[(1, 2, 3, 4, 6, 1, 40, u32::MAX, 2_577)]);
        let mut out = Vec::new();
        decode(&b, Addr::UNSPECIFIED_V4, None, &mut out).unwrap();
        let boot = 1_000_000 - 3_381;
        assert_eq!(out[0].time_start, boot - 1);
        assert_eq!(out[0].time_end, boot + 2_577);
    }

    #[test]
    fn sampling_interval_and_override_renormalise_counters() {
        let mut b = one();
        b[22..24].copy_from_slice(&(0x4000u16 | 100).to_be_bytes());
        let mut out = Vec::new();
        decode(&b, Addr::UNSPECIFIED_V4, None, &mut out).unwrap();
        assert_eq!(
            (out[0].packets, out[0].bytes, out[0].sampling_rate),
            (300, 18_000, 100)
        );
        out.clear();
        decode(&b, Addr::UNSPECIFIED_V4, Some(10), &mut out).unwrap();
        assert_eq!((out[0].packets, out[0].sampling_rate), (30, 10));
    }

    #[test]
    fn malformed_headers_are_rejected_by_cause() {
        let good = one();
        let mut zero = good.clone();
        zero[2..4].copy_from_slice(&0u16.to_be_bytes());
        let mut lying = good.clone();
        lying[2..4].copy_from_slice(&2u16.to_be_bytes());
        let mut huge = good.clone();
        huge[2..4].copy_from_slice(&0xd91eu16.to_be_bytes());
        let cases: &[(&[u8], &str)] = &[
            (&good[..10], "datagram: v5 shorter than header"),
            (&zero, "datagram: v5 record count out of range"),
            (&huge, "datagram: v5 record count out of range"),
            (&lying, "datagram: v5 truncated"),
            (&good[..good.len() - 1], "datagram: v5 truncated"),
        ];
        for (bytes, reason) in cases {
            let mut out = Vec::new();
            let err = decode(bytes, Addr::UNSPECIFIED_V4, None, &mut out).unwrap_err();
            assert_eq!(err.reason(), *reason);
            assert!(out.is_empty());
        }
    }
}
