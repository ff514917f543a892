//! sFlow v5 decoding: one datagram in, one [`FlowRecord`] per sampled packet out.
//!
//! This module owns the sFlow v5 datagram layout (sflow.org, "sFlow Version 5", 2004) and the
//! mapping of flow samples to records; the sampled headers themselves are parsed by
//! [`crate::packet`].
//!
//! ```text
//! datagram: version=5 | agent address (type, 4/16 B) | sub-agent id | sequence | uptime | n | sample*
//! sample:   format (enterprise<<12 | type) | length | body
//!   1 flow sample          seq | source id | rate | pool | drops | input | output | n | record*
//!   3 expanded flow sample seq | src type | src index | rate | pool | drops | in fmt | in | out fmt | out | n | record*
//!   2, 4 counter samples   skipped
//! record:   format | length | body
//!   1 raw packet header (protocol 1 Ethernet, 11 IPv4, 12 IPv6)   3 sampled IPv4   4 sampled IPv6
//!   1001 extended switch   1002 extended router (next hop, masks)   1003 extended gateway (AS)
//! ```
//!
//! Mapping, per flow sample: `packets` = rate, `bytes` = IP length × rate (the IP total length
//! from the sampled header when it has one, else the frame length minus the link header and
//! the stripped bytes), `sampling_rate` = rate (a caller's override wins), both times =
//! `recv_ms`, `exporter` = the agent address inside the datagram (the caller's `exporter`, the
//! UDP source, only when the agent address is unspecified), `domain` = sub-agent id,
//! `in_if`/`out_if` = the sample's interfaces when they are plain ifIndexes (0 for discarded,
//! multiple or internal), `src_as`/`dst_as` from the extended gateway (destination AS = last
//! AS of the path), `next_hop` and masks from the extended router.
//! The extended switch record's VLANs are read and checked but have no field in the schema.
//!
//! Invariants: [`decode`] never panics and never reads outside `payload`; on `Err`, `out` is
//! left as it was (a datagram is taken whole or not at all). Samples that cannot give a record
//! for a benign reason (counter samples, non-IP sampled frames, unknown formats) are skipped
//! and counted in [`Skips`].

use crate::packet;
use flowdrill_model::{Addr, FlowRecord};

/// Upper bound on samples and records walked per datagram (a 64 KiB datagram cannot hold
/// more than this many 8-byte headers).
const MAX_ITEMS: u32 = 8192;

/// Why a datagram was dropped whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("sFlow version {0} (only version 5 is decoded)")]
    BadVersion(u32),
    #[error("sFlow datagram cut inside its header")]
    TruncatedHeader,
    #[error("agent address type {0} is neither IPv4 (1) nor IPv6 (2)")]
    BadAddressType(u32),
    #[error("sFlow sample {index} runs past the datagram end")]
    TruncatedSample { index: u32 },
    #[error("sFlow flow record runs past its sample (in sample {index})")]
    TruncatedRecord { index: u32 },
    #[error("sFlow datagram announces {0} samples or records, more than could fit")]
    TooManyItems(u32),
}

impl Error {
    /// A short stable name of the cause, for drop counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::BadVersion(_) => "bad_version",
            Error::TruncatedHeader => "truncated_header",
            Error::BadAddressType(_) => "bad_address_type",
            Error::TruncatedSample { .. } => "truncated_sample",
            Error::TruncatedRecord { .. } => "truncated_record",
            Error::TooManyItems(_) => "too_many_items",
        }
    }
}

/// Samples of a datagram that gave no record, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skips {
    /// Counter samples (formats 2 and 4): nothing to turn into flows.
    pub counter_samples: u64,
    /// Sample formats this decoder does not know (including other enterprises').
    pub unknown_samples: u64,
    /// Flow samples whose sampled packet is not IP (ARP, LLDP...), or whose header protocol
    /// is not Ethernet, IPv4 or IPv6.
    pub non_ip: u64,
    /// Flow samples whose sampled header is IP but malformed.
    pub bad_header: u64,
    /// Flow samples with neither a raw header nor a sampled IPv4/IPv6 record.
    pub no_packet_record: u64,
}

/// Big-endian cursor over a byte slice; every read is bounds-checked.
#[derive(Clone, Copy)]
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
    /// An sFlow `address`: type, then 4 or 16 bytes. `Some(None)` for type 0 (unknown).
    fn address(&mut self) -> Option<Result<Option<Addr>, u32>> {
        match self.u32()? {
            0 => Some(Ok(None)),
            1 => {
                let b = self.bytes(4)?;
                Some(Ok(Some(Addr::from_v4_octets([b[0], b[1], b[2], b[3]]))))
            }
            2 => {
                let b: [u8; 16] = self.bytes(16)?.try_into().ok()?;
                Some(Ok(Some(Addr::from_v6_octets(b))))
            }
            t => Some(Err(t)),
        }
    }
}

/// Decodes one sFlow v5 datagram; returns how many records were appended to `out`.
///
/// See [`decode_counting`] for the skipped-sample counts. This function is also the fuzzing
/// entry point: any bytes give `Ok` or `Err`.
pub fn decode(
    payload: &[u8],
    exporter: Addr,
    recv_ms: u64,
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
) -> Result<usize, Error> {
    let mut skips = Skips::default();
    decode_counting(payload, exporter, recv_ms, rate_override, out, &mut skips)
}

/// [`decode`], adding the samples that gave no record to `skips`.
pub fn decode_counting(
    payload: &[u8],
    exporter: Addr,
    recv_ms: u64,
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
    skips: &mut Skips,
) -> Result<usize, Error> {
    let before = out.len();
    let mut local = Skips::default();
    match decode_inner(payload, exporter, recv_ms, rate_override, out, &mut local) {
        Ok(()) => {
            skips.counter_samples += local.counter_samples;
            skips.unknown_samples += local.unknown_samples;
            skips.non_ip += local.non_ip;
            skips.bad_header += local.bad_header;
            skips.no_packet_record += local.no_packet_record;
            Ok(out.len() - before)
        }
        Err(e) => {
            out.truncate(before);
            Err(e)
        }
    }
}

fn decode_inner(
    payload: &[u8],
    exporter: Addr,
    recv_ms: u64,
    rate_override: Option<u32>,
    out: &mut Vec<FlowRecord>,
    skips: &mut Skips,
) -> Result<(), Error> {
    let mut c = Cur { b: payload, at: 0 };
    let version = c.u32().ok_or(Error::TruncatedHeader)?;
    if version != 5 {
        return Err(Error::BadVersion(version));
    }
    let agent = c
        .address()
        .ok_or(Error::TruncatedHeader)?
        .map_err(Error::BadAddressType)?;
    let exporter = agent.filter(|a| !a.is_unspecified()).unwrap_or(exporter);
    let sub_agent = c.u32().ok_or(Error::TruncatedHeader)?;
    let _sequence = c.u32().ok_or(Error::TruncatedHeader)?;
    let _uptime = c.u32().ok_or(Error::TruncatedHeader)?;
    let n = c.u32().ok_or(Error::TruncatedHeader)?;
    if n > MAX_ITEMS {
        return Err(Error::TooManyItems(n));
    }
    let base = FlowRecord {
        time_start: recv_ms,
        time_end: recv_ms,
        exporter,
        domain: sub_agent,
        ..Default::default()
    };
    for index in 0..n {
        let format = c.u32().ok_or(Error::TruncatedSample { index })?;
        let len = c.u32().ok_or(Error::TruncatedSample { index })? as usize;
        let body = c.bytes(len).ok_or(Error::TruncatedSample { index })?;
        let mut s = Cur { b: body, at: 0 };
        let trunc = Error::TruncatedSample { index };
        let (rate, in_if, out_if) = match format {
            1 => {
                let _seq = s.u32().ok_or(trunc.clone())?;
                let _source = s.u32().ok_or(trunc.clone())?;
                let rate = s.u32().ok_or(trunc.clone())?;
                let _pool = s.u32().ok_or(trunc.clone())?;
                let _drops = s.u32().ok_or(trunc.clone())?;
                let input = s.u32().ok_or(trunc.clone())?;
                let output = s.u32().ok_or(trunc.clone())?;
                (rate, compact_if(input), compact_if(output))
            }
            3 => {
                let _seq = s.u32().ok_or(trunc.clone())?;
                let _source_type = s.u32().ok_or(trunc.clone())?;
                let _source_index = s.u32().ok_or(trunc.clone())?;
                let rate = s.u32().ok_or(trunc.clone())?;
                let _pool = s.u32().ok_or(trunc.clone())?;
                let _drops = s.u32().ok_or(trunc.clone())?;
                let in_fmt = s.u32().ok_or(trunc.clone())?;
                let in_val = s.u32().ok_or(trunc.clone())?;
                let out_fmt = s.u32().ok_or(trunc.clone())?;
                let out_val = s.u32().ok_or(trunc.clone())?;
                (
                    rate,
                    expanded_if(in_fmt, in_val),
                    expanded_if(out_fmt, out_val),
                )
            }
            2 | 4 => {
                skips.counter_samples += 1;
                continue;
            }
            _ => {
                skips.unknown_samples += 1;
                continue;
            }
        };
        // A rate of 0 is meaningless; count the sampled packet once rather than zero times.
        let rate = rate_override.unwrap_or(rate).max(1);
        let mut rec = FlowRecord {
            in_if,
            out_if,
            sampling_rate: rate,
            ..base.clone()
        };
        match flow_records(&mut s, index, &mut rec)? {
            Sampled::Packet(ip_len) => {
                rec.packets = rate as u64;
                rec.bytes = ip_len as u64 * rate as u64;
                out.push(rec);
            }
            Sampled::NonIp => skips.non_ip += 1,
            Sampled::BadHeader => skips.bad_header += 1,
            Sampled::Nothing => skips.no_packet_record += 1,
        }
    }
    Ok(())
}

/// Fuzzing entry point (for `cargo fuzz`): decodes `data` as one datagram (the first byte,
/// when odd, also asks for a rate override) and panics only if an invariant of [`decode`]
/// is broken: records appended = the count returned, nothing appended on error, packets =
/// the sampling rate and bytes a multiple of it.
pub fn fuzz_decode(data: &[u8]) {
    let rate_override = match data.first() {
        Some(&b) if b & 1 == 1 => Some(b as u32),
        _ => None,
    };
    let mut out = Vec::new();
    let mut skips = Skips::default();
    match decode_counting(
        data,
        Addr::UNSPECIFIED_V4,
        0,
        rate_override,
        &mut out,
        &mut skips,
    ) {
        Ok(n) => {
            assert_eq!(n, out.len());
            for r in &out {
                assert!(r.sampling_rate >= 1, "{r:?}");
                assert_eq!(r.packets, r.sampling_rate as u64, "{r:?}");
                assert_eq!(r.bytes % r.packets, 0, "{r:?}");
            }
        }
        Err(e) => {
            assert!(out.is_empty(), "{e}");
            assert!(!e.reason().is_empty());
        }
    }
}

/// What the records of one flow sample described.
enum Sampled {
    /// An IP packet of this IP length; the record's key fields are filled.
    Packet(u32),
    NonIp,
    BadHeader,
    Nothing,
}

/// Compact (flow sample) interface: 2-bit format, 30-bit value. Only format 0 is an ifIndex;
/// 0x3fffffff there means "internal" (the packet went to or came from the agent itself).
fn compact_if(v: u32) -> u32 {
    expanded_if(v >> 30, v & 0x3fff_ffff)
}

fn expanded_if(format: u32, value: u32) -> u32 {
    if format == 0 && value != 0x3fff_ffff {
        value
    } else {
        0
    }
}

/// Walks the flow records of one sample into `rec`.
fn flow_records(s: &mut Cur<'_>, index: u32, rec: &mut FlowRecord) -> Result<Sampled, Error> {
    let trunc = Error::TruncatedRecord { index };
    let n = s.u32().ok_or(trunc.clone())?;
    if n > MAX_ITEMS {
        return Err(Error::TooManyItems(n));
    }
    let mut result = Sampled::Nothing;
    // A raw header wins over sampled IPv4/IPv6 records when a sample carries both.
    let mut have_header = false;
    for _ in 0..n {
        let format = s.u32().ok_or(trunc.clone())?;
        let len = s.u32().ok_or(trunc.clone())? as usize;
        // Records are padded to 4 bytes; the length given excludes nothing but is the
        // XDR-encoded size, already a multiple of 4 for well-formed agents.
        let body = s.bytes(len).ok_or(trunc.clone())?;
        let mut r = Cur { b: body, at: 0 };
        match format {
            1 => {
                let proto = r.u32().ok_or(trunc.clone())?;
                let frame_len = r.u32().ok_or(trunc.clone())?;
                let stripped = r.u32().ok_or(trunc.clone())?;
                let hlen = r.u32().ok_or(trunc.clone())? as usize;
                let header = r.bytes(hlen).ok_or(trunc.clone())?;
                let linktype = match proto {
                    1 => packet::linktype::ETHERNET,
                    11 => packet::linktype::IPV4,
                    12 => packet::linktype::IPV6,
                    _ => {
                        result = Sampled::NonIp;
                        have_header = true;
                        continue;
                    }
                };
                have_header = true;
                result = match packet::parse(linktype, header) {
                    Ok(p) => {
                        rec.src_addr = p.src;
                        rec.dst_addr = p.dst;
                        rec.proto = p.proto;
                        rec.src_port = p.src_port;
                        rec.dst_port = p.dst_port;
                        rec.tcp_flags = p.tcp_flags;
                        rec.tos = p.tos;
                        let ip_len = if p.ip_len != 0 {
                            p.ip_len
                        } else {
                            // The original frame minus its link header and what the agent
                            // stripped (typically the 4-byte FCS).
                            frame_len
                                .saturating_sub(stripped)
                                .saturating_sub(p.l3_offset as u32)
                        };
                        Sampled::Packet(ip_len)
                    }
                    Err(packet::Error::NotIp(_)) => Sampled::NonIp,
                    Err(_) => Sampled::BadHeader,
                };
            }
            3 | 4 if !have_header => {
                let ip_len = r.u32().ok_or(trunc.clone())?;
                let proto = r.u32().ok_or(trunc.clone())?;
                let (src, dst) = if format == 3 {
                    let a = r.bytes(8).ok_or(trunc.clone())?;
                    (
                        Addr::from_v4_octets([a[0], a[1], a[2], a[3]]),
                        Addr::from_v4_octets([a[4], a[5], a[6], a[7]]),
                    )
                } else {
                    let a = r.bytes(32).ok_or(trunc.clone())?;
                    let mut s6 = [0u8; 16];
                    let mut d6 = [0u8; 16];
                    s6.copy_from_slice(&a[..16]);
                    d6.copy_from_slice(&a[16..]);
                    (Addr::from_v6_octets(s6), Addr::from_v6_octets(d6))
                };
                let sport = r.u32().ok_or(trunc.clone())?;
                let dport = r.u32().ok_or(trunc.clone())?;
                let flags = r.u32().ok_or(trunc.clone())?;
                let tos = r.u32().ok_or(trunc.clone())?;
                rec.src_addr = src;
                rec.dst_addr = dst;
                rec.proto = proto as u8;
                rec.src_port = sport as u16;
                rec.dst_port = dport as u16;
                rec.tcp_flags = flags as u8;
                rec.tos = tos as u8;
                result = Sampled::Packet(ip_len);
            }
            1001 => {
                // src vlan, src priority, dst vlan, dst priority: checked, not stored.
                for _ in 0..4 {
                    r.u32().ok_or(trunc.clone())?;
                }
            }
            1002 => {
                let nh = r.address().ok_or(trunc.clone())?;
                rec.next_hop = nh.ok().flatten().unwrap_or_default();
                rec.src_mask = r.u32().ok_or(trunc.clone())?.min(128) as u8;
                rec.dst_mask = r.u32().ok_or(trunc.clone())?.min(128) as u8;
            }
            1003 => {
                let _nh = r.address().ok_or(trunc.clone())?;
                let _router_as = r.u32().ok_or(trunc.clone())?;
                rec.src_as = r.u32().ok_or(trunc.clone())?;
                let _src_peer_as = r.u32().ok_or(trunc.clone())?;
                let segments = r.u32().ok_or(trunc.clone())?;
                if segments > MAX_ITEMS {
                    return Err(Error::TooManyItems(segments));
                }
                let mut last = None;
                for _ in 0..segments {
                    let _seg_type = r.u32().ok_or(trunc.clone())?;
                    let count = r.u32().ok_or(trunc.clone())? as usize;
                    let ases = r
                        .bytes(count.checked_mul(4).ok_or(trunc.clone())?)
                        .ok_or(trunc.clone())?;
                    if let Some(a) = ases.chunks_exact(4).last() {
                        last = Some(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
                    }
                }
                if let Some(a) = last {
                    rec.dst_as = a;
                }
            }
            _ => {}
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{ipv4_tcp, ipv4_udp, ipv6_with};

    /// XDR writer for test datagrams.
    #[derive(Default)]
    struct W(Vec<u8>);
    impl W {
        fn u(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn b(&mut self, v: &[u8]) -> &mut Self {
            self.0.extend_from_slice(v);
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
            self
        }
        /// format, length, body.
        fn item(&mut self, format: u32, body: &[u8]) -> &mut Self {
            self.u(format).u(body.len() as u32).b(body)
        }
    }

    fn datagram(agent: [u8; 4], sub_agent: u32, samples: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut w = W::default();
        w.u(5)
            .u(1)
            .b(&agent)
            .u(sub_agent)
            .u(77)
            .u(123_456)
            .u(samples.len() as u32);
        for (f, body) in samples {
            w.item(*f, body);
        }
        w.0
    }

    fn raw_header(proto: u32, frame_len: u32, stripped: u32, header: &[u8]) -> Vec<u8> {
        let mut w = W::default();
        w.u(proto)
            .u(frame_len)
            .u(stripped)
            .u(header.len() as u32)
            .b(header);
        w.0
    }

    fn flow_sample(rate: u32, input: u32, output: u32, records: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut w = W::default();
        w.u(1)
            .u(3)
            .u(rate)
            .u(1000)
            .u(0)
            .u(input)
            .u(output)
            .u(records.len() as u32);
        for (f, body) in records {
            w.item(*f, body);
        }
        w.0
    }

    fn eth(l3: &[u8]) -> Vec<u8> {
        let mut v = vec![2; 12];
        v.extend_from_slice(&[8, 0]);
        v.extend_from_slice(l3);
        v
    }

    #[test]
    fn a_flow_sample_with_a_raw_header_becomes_one_record() {
        let ip = ipv4_tcp(0x18, &[0; 100]);
        let mut gw = W::default();
        gw.u(1).b(&[10, 0, 0, 254]).u(65000).u(64501).u(64502);
        gw.u(2).u(2).u(2).u(64510).u(64511).u(1).u(1).u(64999);
        gw.u(0).u(100);
        let mut router = W::default();
        router.u(1).b(&[10, 0, 0, 1]).u(24).u(16);
        let switch = W::default().u(10).u(0).u(20).u(0).0.clone();
        let samples = vec![(
            1,
            flow_sample(
                512,
                7,
                9,
                &[
                    (1, raw_header(1, 158, 4, &eth(&ip[..60]))),
                    (1001, switch),
                    (1002, router.0),
                    (1003, gw.0),
                ],
            ),
        )];
        let d = datagram([192, 0, 2, 9], 3, &samples);
        let mut out = Vec::new();
        let n = decode(&d, Addr::UNSPECIFIED_V4, 1_000, None, &mut out).unwrap();
        assert_eq!(n, 1);
        let r = &out[0];
        assert_eq!(r.exporter.to_string(), "192.0.2.9");
        assert_eq!(
            (r.domain, r.sampling_rate, r.in_if, r.out_if),
            (3, 512, 7, 9)
        );
        assert_eq!(
            (r.src_addr.to_string(), r.dst_addr.to_string()),
            ("10.0.0.1".into(), "10.0.0.2".into())
        );
        assert_eq!(
            (r.proto, r.src_port, r.dst_port, r.tcp_flags),
            (6, 1234, 80, 0x18)
        );
        assert_eq!((r.packets, r.bytes), (512, 140 * 512));
        assert_eq!((r.time_start, r.time_end), (1_000, 1_000));
        assert_eq!((r.src_as, r.dst_as), (64501, 64999));
        assert_eq!(
            (r.next_hop.to_string(), r.src_mask, r.dst_mask),
            ("10.0.0.1".into(), 24, 16)
        );
    }

    #[test]
    fn expanded_samples_sampled_ip_records_and_overrides() {
        let mut exp = W::default();
        exp.u(1).u(0).u(17).u(100).u(5000).u(0);
        exp.u(0).u(0x0100_0000).u(1).u(4); // input ifIndex 16 M (expanded), output discarded
        let mut v6 = W::default();
        v6.u(1200).u(17);
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = 5;
        v6.b(&a);
        a[15] = 6;
        v6.b(&a);
        v6.u(53).u(33000).u(0).u(0x20);
        exp.u(1).item(4, &v6.0);
        let d = datagram([0, 0, 0, 0], 0, &[(3, exp.0.clone())]);
        let mut out = Vec::new();
        let udp_src: Addr = "198.51.100.1".parse().unwrap();
        decode(&d, udp_src, 5, Some(1000), &mut out).unwrap();
        let r = &out[0];
        // Unspecified agent: the caller's address stands in.
        assert_eq!(r.exporter, udp_src);
        assert_eq!((r.in_if, r.out_if), (0x0100_0000, 0));
        assert_eq!(
            (r.sampling_rate, r.packets, r.bytes),
            (1000, 1000, 1_200_000)
        );
        assert_eq!(r.src_addr.to_string(), "2001::5");
        assert_eq!(
            (r.proto, r.src_port, r.dst_port, r.tos),
            (17, 53, 33000, 0x20)
        );
    }

    #[test]
    fn compact_interface_formats() {
        let cases = [
            (5u32, 5u32),
            (0x3fff_ffff, 0), // internal
            (0x4000_0001, 0), // discarded, reason 1
            (0x8000_0003, 0), // multiple (3 interfaces)
        ];
        for (raw, want) in cases {
            assert_eq!(compact_if(raw), want, "{raw:#x}");
        }
    }

    #[test]
    fn skipped_samples_are_counted() {
        let arp = {
            let mut v = vec![0xff; 12];
            v.extend_from_slice(&[8, 6]);
            v.extend_from_slice(&[0; 28]);
            v
        };
        let ip6 = ipv6_with(&[], 17, &[0, 1, 0, 2, 0, 8, 0, 0]);
        let samples = vec![
            (2, vec![0; 12]), // counters
            (7, vec![0; 4]),  // unknown
            (1, flow_sample(10, 1, 2, &[(1, raw_header(1, 64, 4, &arp))])),
            (1, flow_sample(10, 1, 2, &[(1001, vec![0; 16])])), // no packet record
            (
                1,
                flow_sample(10, 1, 2, &[(1, raw_header(12, 48, 0, &ip6))]),
            ),
            (
                1,
                flow_sample(10, 1, 2, &[(1, raw_header(11, 9, 0, &[0x45; 9]))]),
            ),
        ];
        let d = datagram([10, 1, 1, 1], 0, &samples);
        let mut out = Vec::new();
        let mut skips = Skips::default();
        let n = decode_counting(&d, Addr::UNSPECIFIED_V4, 0, None, &mut out, &mut skips).unwrap();
        assert_eq!(n, 1);
        assert_eq!(out[0].bytes, 48 * 10);
        assert!(!out[0].src_addr.is_v4());
        let want = Skips {
            counter_samples: 1,
            unknown_samples: 1,
            non_ip: 1,
            bad_header: 1,
            no_packet_record: 1,
        };
        assert_eq!(skips, want);
    }

    #[test]
    fn broken_datagrams_are_refused_whole() {
        let ok = datagram(
            [10, 0, 0, 1],
            0,
            &[(
                1,
                flow_sample(
                    1,
                    1,
                    2,
                    &[(
                        1,
                        raw_header(11, 40, 0, &ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"")),
                    )],
                ),
            )],
        );
        let mut v4 = ok.clone();
        v4[3] = 4;
        let mut addr = ok.clone();
        addr[7] = 9;
        let mut many = ok.clone();
        many[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut rec_len = ok.clone();
        // The record count inside the sample claims two records.
        rec_len[28 + 8 + 28..28 + 8 + 32].copy_from_slice(&2u32.to_be_bytes());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (ok[..10].to_vec(), "truncated_header"),
            (v4, "bad_version"),
            (addr, "bad_address_type"),
            (many, "too_many_items"),
            (ok[..ok.len() - 4].to_vec(), "truncated_sample"),
            (rec_len, "truncated_record"),
        ];
        for (d, reason) in cases {
            let mut out = vec![FlowRecord::default()];
            let e = decode(&d, Addr::UNSPECIFIED_V4, 0, None, &mut out).unwrap_err();
            assert_eq!(e.reason(), reason, "{e}");
            assert_eq!(out.len(), 1, "out untouched on error");
        }
        let mut out = Vec::new();
        assert_eq!(decode(&ok, Addr::UNSPECIFIED_V4, 0, None, &mut out), Ok(1));
    }

    #[test]
    fn an_ipv6_agent_and_the_fuzz_entry() {
        let mut w = W::default();
        let mut agent = [0u8; 16];
        agent[0] = 0x20;
        agent[1] = 0x01;
        agent[2] = 0x0d;
        agent[3] = 0xb8;
        agent[15] = 7;
        let ip = ipv4_udp([10, 9, 8, 7], [10, 9, 8, 6], 4000, 4001, b"abcd");
        let sample = flow_sample(64, 3, 4, &[(1, raw_header(11, 32, 0, &ip))]);
        w.u(5).u(2).b(&agent).u(9).u(1).u(2).u(1).item(1, &sample);
        let mut out = Vec::new();
        assert_eq!(decode(&w.0, Addr::UNSPECIFIED_V4, 0, None, &mut out), Ok(1));
        assert_eq!(out[0].exporter.to_string(), "2001:db8::7");
        assert_eq!(
            (out[0].domain, out[0].bytes, out[0].src_port),
            (9, 32 * 64, 4000)
        );
        // The fuzz entry on every prefix and with flipped bytes.
        for cut in 0..=w.0.len() {
            fuzz_decode(&w.0[..cut]);
            let mut g = w.0[..cut].to_vec();
            if let Some(b) = g.get_mut(cut / 2) {
                *b ^= 0x5a;
            }
            fuzz_decode(&g);
        }
    }

    #[test]
    fn every_prefix_of_a_datagram_is_safe() {
        let ip = ipv4_tcp(2, b"");
        let d = datagram(
            [10, 0, 0, 1],
            1,
            &[(
                1,
                flow_sample(4, 1, 2, &[(1, raw_header(1, 64, 4, &eth(&ip)))]),
            )],
        );
        let mut ok = 0;
        for cut in 0..=d.len() {
            let mut out = Vec::new();
            if let Ok(n) = decode(&d[..cut], Addr::UNSPECIFIED_V4, 0, None, &mut out) {
                assert_eq!(n, out.len());
                ok += 1;
            }
        }
        // Only the whole datagram decodes (a cut always lands inside a sample).
        assert_eq!(ok, 1);
    }
}
