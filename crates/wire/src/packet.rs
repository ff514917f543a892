//! Packet header parsing: a captured frame in, the flow-relevant header fields out.
//!
//! This module owns the walk from a link-layer header down to the transport ports, and
//! nothing else: no flow state, no I/O, no allocation. It is shared by sFlow's sampled packet
//! headers ([`crate::sflow`]) and ingest's flow meter.
//!
//! ```text
//! link type ──► Ethernet (1) / SLL (113) / SLL2 (276) / NULL (0) / LOOP (108) / raw IP (101, 12, 14, 228, 229)
//!   Ethernet ─► [802.1Q | 802.1ad | 0x9100 tags | FabricPath]* ─► [MPLS labels]* ─► [PPPoE session] ─► IPv4 | IPv6
//!   IPv4 (options skipped) / IPv6 (hop-by-hop, routing, fragment, destination options, AH skipped)
//!   ─► TCP | UDP | SCTP | DCCP | UDP-Lite (ports) / ICMP, ICMPv6 (type*256+code) / anything else
//! ```
//!
//! Only the *outermost* IP header counts: tunnels (GRE, IP-in-IP, 6in4, VXLAN) are reported as
//! the outer packet, which is what flow exporters and tshark's per-layer totals do.
//!
//! Invariants: [`parse`] never panics and never reads outside `frame`. A frame whose IP header
//! is complete parses even when the capture cut it later (the transport fields are then 0 and
//! [`PacketInfo::l4_truncated`] is set), because the IP total length still tells the packet's
//! size. Non-first fragments carry no ports; their bytes still count.

use flowdrill_model::Addr;
use std::ops::Range;

/// Link types ([LINKTYPE_*](https://www.tcpdump.org/linktypes.html)) [`parse`] understands.
pub mod linktype {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW as some systems number it (12 on most BSDs and Linux, 14 on OpenBSD).
    pub const RAW_12: u32 = 12;
    pub const RAW_14: u32 = 14;
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: the address family in network byte order.
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// How many VLAN tags, MPLS labels and other shims one frame may stack before it is refused.
const MAX_SHIMS: usize = 16;
/// How many IPv6 extension headers are followed before giving up.
const MAX_EXT_HEADERS: usize = 16;

/// Why a frame yields no IP header fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame carries no IP packet (ARP, LLDP, STP, IPX...): not an error of the data,
    /// callers count it apart.
    #[error("not an IP frame (ethertype or family {0:#06x})")]
    NotIp(u32),
    #[error("link type {0} is not supported")]
    UnsupportedLinkType(u32),
    #[error("frame cut inside its link-layer header")]
    TruncatedLink,
    #[error("frame cut inside a VLAN, MPLS or PPPoE header")]
    TruncatedShim,
    #[error("more than {MAX_SHIMS} VLAN tags or MPLS labels")]
    TooManyShims,
    #[error("frame cut inside its IPv4 header")]
    TruncatedIpv4,
    #[error("frame cut inside its IPv6 header")]
    TruncatedIpv6,
    #[error("IP version {0} where 4 or 6 was expected")]
    BadIpVersion(u8),
    #[error("IPv4 header length {0} is shorter than 20 bytes")]
    BadIpv4HeaderLength(u8),
}

impl Error {
    /// A short stable name of the cause, for drop counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotIp(_) => "not_ip",
            Error::UnsupportedLinkType(_) => "unsupported_linktype",
            Error::TruncatedLink => "truncated_link",
            Error::TruncatedShim => "truncated_shim",
            Error::TooManyShims => "too_many_shims",
            Error::TruncatedIpv4 => "truncated_ipv4",
            Error::TruncatedIpv6 => "truncated_ipv6",
            Error::BadIpVersion(_) => "bad_ip_version",
            Error::BadIpv4HeaderLength(_) => "bad_ipv4_header_length",
        }
    }
}

/// The header fields of one IP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    pub src: Addr,
    pub dst: Addr,
    /// IPv4 protocol, or the IPv6 next header after the extension headers.
    pub proto: u8,
    /// 0 for protocols without ports, ICMP, and non-first fragments.
    pub src_port: u16,
    /// For ICMP/ICMPv6: type*256+code (nfdump's convention).
    pub dst_port: u16,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN); 0 for other protocols.
    pub tcp_flags: u8,
    /// IPv4 type of service / IPv6 traffic class.
    pub tos: u8,
    /// IP total length from the header: IPv4 total length, IPv6 payload length + 40.
    pub ip_len: u32,
    pub is_v6: bool,
    pub ttl: u8,
    /// Offset of the IP header in the frame.
    pub l3_offset: usize,
    /// Offsets into the frame of the transport payload (UDP/TCP payload; for other protocols,
    /// what follows the IP headers), cut to what was captured and to the IP total length.
    pub l4_payload: Range<usize>,
    /// Outermost VLAN id, when the frame was tagged.
    pub vlan: Option<u16>,
    /// True for any fragment of a fragmented datagram.
    pub is_fragment: bool,
    /// True for fragments other than the first (they carry no transport header).
    pub non_first_fragment: bool,
    /// True when the capture ends before the transport header does (ports are then 0).
    pub l4_truncated: bool,
}

impl Default for PacketInfo {
    fn default() -> Self {
        PacketInfo {
            src: Addr::UNSPECIFIED_V4,
            dst: Addr::UNSPECIFIED_V4,
            proto: 0,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            tos: 0,
            ip_len: 0,
            is_v6: false,
            ttl: 0,
            l3_offset: 0,
            l4_payload: 0..0,
            vlan: None,
            is_fragment: false,
            non_first_fragment: false,
            l4_truncated: false,
        }
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses `frame` captured on a link of type `linktype`.
///
/// This is also the fuzzing entry point: any bytes and any link type give `Ok` or `Err`.
pub fn parse(linktype: u32, frame: &[u8]) -> Result<PacketInfo, Error> {
    let mut info = PacketInfo::default();
    match linktype {
        linktype::ETHERNET => ethernet(frame, 0, 0, &mut info)?,
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 => ip_by_version(frame, 0, &mut info)?,
        linktype::IPV4 => ipv4(frame, 0, &mut info)?,
        linktype::IPV6 => ipv6(frame, 0, &mut info)?,
        linktype::NULL | linktype::LOOP => {
            let raw = frame.get(..4).ok_or(Error::TruncatedLink)?;
            let raw = [raw[0], raw[1], raw[2], raw[3]];
            let fam = if linktype == linktype::LOOP {
                u32::from_be_bytes(raw)
            } else {
                // Host byte order of the capturing machine: families are small numbers, so
                // a value with high bytes set was written in the other order.
                let le = u32::from_le_bytes(raw);
                if le > 0xffff { le.swap_bytes() } else { le }
            };
            match fam {
                2 => ipv4(frame, 4, &mut info)?,
                // AF_INET6: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS.
                10 | 24 | 28 | 30 => ipv6(frame, 4, &mut info)?,
                other => return Err(Error::NotIp(other)),
            }
        }
        linktype::LINUX_SLL => {
            let proto = be16(frame, 14).ok_or(Error::TruncatedLink)?;
            ethertype(frame, 16, proto, 0, &mut info)?
        }
        linktype::LINUX_SLL2 => {
            let proto = be16(frame, 0).ok_or(Error::TruncatedLink)?;
            if frame.len() < 20 {
                return Err(Error::TruncatedLink);
            }
            ethertype(frame, 20, proto, 0, &mut info)?
        }
        other => return Err(Error::UnsupportedLinkType(other)),
    }
    Ok(info)
}

/// Fuzzing entry point (for `cargo fuzz`): the first byte picks a link type among those
/// [`parse`] knows (and one it does not), the rest is the frame. Panics only if an invariant
/// of [`PacketInfo`] is broken, which is what a fuzzer should report.
pub fn fuzz_parse(data: &[u8]) {
    const TYPES: [u32; 12] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 1];
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let lt = TYPES[sel as usize % TYPES.len()];
    if let Ok(p) = parse(lt, frame) {
        assert!(p.l4_payload.start <= p.l4_payload.end, "{p:?}");
        assert!(p.l4_payload.end <= frame.len(), "{p:?}");
        assert!(p.l3_offset < frame.len(), "{p:?}");
        assert!(p.is_fragment || !p.non_first_fragment, "{p:?}");
        if p.non_first_fragment {
            assert_eq!((p.src_port, p.dst_port), (0, 0), "{p:?}");
        }
    }
}

/// An Ethernet II (or 802.3 + LLC/SNAP) header at `at`.
fn ethernet(frame: &[u8], at: usize, depth: usize, info: &mut PacketInfo) -> Result<(), Error> {
    let et = be16(frame, at + 12).ok_or(Error::TruncatedLink)?;
    if et >= 0x0600 {
        return ethertype(frame, at + 14, et, depth, info);
    }
    // 802.3 length field: only LLC/SNAP with a zero OUI carries an ethertype.
    let llc = frame.get(at + 14..at + 22).ok_or(Error::NotIp(et as u32))?;
    if llc[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] {
        let et = u16::from_be_bytes([llc[6], llc[7]]);
        return ethertype(frame, at + 22, et, depth, info);
    }
    Err(Error::NotIp(et as u32))
}

/// Dispatches on an ethertype whose payload starts at `at`; `depth` counts shims so far.
fn ethertype(
    frame: &[u8],
    mut at: usize,
    mut et: u16,
    mut depth: usize,
    info: &mut PacketInfo,
) -> Result<(), Error> {
    loop {
        depth += 1;
        if depth > MAX_SHIMS {
            return Err(Error::TooManyShims);
        }
        match et {
            0x0800 => return ipv4(frame, at, info),
            0x86dd => return ipv6(frame, at, info),
            0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
                let tci = be16(frame, at).ok_or(Error::TruncatedShim)?;
                info.vlan.get_or_insert(tci & 0x0fff);
                et = be16(frame, at + 2).ok_or(Error::TruncatedShim)?;
                at += 4;
            }
            0x8847 | 0x8848 => {
                // Labels until the bottom-of-stack bit.
                loop {
                    let l = be32(frame, at).ok_or(Error::TruncatedShim)?;
                    at += 4;
                    if l & 0x100 != 0 {
                        break;
                    }
                    depth += 1;
                    if depth > MAX_SHIMS {
                        return Err(Error::TooManyShims);
                    }
                }
                // No next-protocol field: guess by the first nibble. 0 is a pseudowire
                // control word followed by an Ethernet frame (RFC 4385).
                let first = *frame.get(at).ok_or(Error::TruncatedShim)?;
                return match first >> 4 {
                    4 => ipv4(frame, at, info),
                    6 => ipv6(frame, at, info),
                    0 => {
                        let inner = at + 4;
                        let et = be16(frame, inner + 12).ok_or(Error::TruncatedShim)?;
                        if et < 0x0600 {
                            return Err(Error::NotIp(et as u32));
                        }
                        ethertype(frame, inner + 14, et, depth, info)
                    }
                    _ => Err(Error::NotIp(0x8847)),
                };
            }
            // Cisco FabricPath: 2 bytes of FTag/TTL, then the whole inner Ethernet frame.
            0x8903 => return ethernet(frame, at + 2, depth, info),
            0x8864 => {
                // PPPoE session: ver/type, code, session id, length, then the PPP protocol.
                let ppp = be16(frame, at + 6).ok_or(Error::TruncatedShim)?;
                return match ppp {
                    0x0021 => ipv4(frame, at + 8, info),
                    0x0057 => ipv6(frame, at + 8, info),
                    other => Err(Error::NotIp(0x8864_0000 | other as u32)),
                };
            }
            other => return Err(Error::NotIp(other as u32)),
        }
    }
}

fn ip_by_version(frame: &[u8], at: usize, info: &mut PacketInfo) -> Result<(), Error> {
    let v = *frame.get(at).ok_or(Error::TruncatedIpv4)? >> 4;
    match v {
        4 => ipv4(frame, at, info),
        6 => ipv6(frame, at, info),
        v => Err(Error::BadIpVersion(v)),
    }
}

fn ipv4(frame: &[u8], at: usize, info: &mut PacketInfo) -> Result<(), Error> {
    let h = frame.get(at..at + 20).ok_or(Error::TruncatedIpv4)?;
    if h[0] >> 4 != 4 {
        return Err(Error::BadIpVersion(h[0] >> 4));
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Err(Error::BadIpv4HeaderLength(ihl as u8));
    }
    info.l3_offset = at;
    info.tos = h[1];
    info.ip_len = u16::from_be_bytes([h[2], h[3]]) as u32;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let more = frag & 0x2000 != 0;
    let offset = frag & 0x1fff;
    info.is_fragment = more || offset != 0;
    info.non_first_fragment = offset != 0;
    info.ttl = h[8];
    info.proto = h[9];
    info.src = Addr::from_v4_octets([h[12], h[13], h[14], h[15]]);
    info.dst = Addr::from_v4_octets([h[16], h[17], h[18], h[19]]);
    info.is_v6 = false;
    // The packet ends at the total length, or at the capture when the length is 0 (TCP
    // segmentation offload) or larger than what was captured.
    let end = packet_end(frame, at, info.ip_len as usize);
    transport(frame, at + ihl, end, info);
    Ok(())
}

/// End of the IP packet in `frame`: `at + len` cut to the capture; the capture end when
/// `len` is 0.
fn packet_end(frame: &[u8], at: usize, len: usize) -> usize {
    if len == 0 {
        frame.len()
    } else {
        (at + len).min(frame.len())
    }
}

fn ipv6(frame: &[u8], at: usize, info: &mut PacketInfo) -> Result<(), Error> {
    let h = frame.get(at..at + 40).ok_or(Error::TruncatedIpv6)?;
    if h[0] >> 4 != 6 {
        return Err(Error::BadIpVersion(h[0] >> 4));
    }
    info.l3_offset = at;
    info.is_v6 = true;
    info.tos = ((u16::from_be_bytes([h[0], h[1]]) >> 4) & 0xff) as u8;
    let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
    info.ip_len = plen as u32 + 40;
    info.ttl = h[7];
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    info.src = Addr::from_v6_octets(src);
    info.dst = Addr::from_v6_octets(dst);
    let end = if plen == 0 {
        frame.len()
    } else {
        (at + 40 + plen).min(frame.len())
    };
    let mut nh = h[6];
    let mut p = at + 40;
    for _ in 0..MAX_EXT_HEADERS {
        match nh {
            // Hop-by-hop, routing, destination options, mobility: (len + 1) * 8 bytes.
            0 | 43 | 60 | 135 => {
                let (Some(&next), Some(&len)) = (frame.get(p), frame.get(p + 1)) else {
                    return ext_cut(info, nh, p, end);
                };
                nh = next;
                p += (len as usize + 1) * 8;
            }
            44 => {
                let Some(fr) = frame.get(p..p + 8) else {
                    return ext_cut(info, nh, p, end);
                };
                let off = u16::from_be_bytes([fr[2], fr[3]]);
                info.is_fragment = true;
                info.non_first_fragment = off >> 3 != 0;
                nh = fr[0];
                p += 8;
            }
            // AH: (len + 2) * 4 bytes.
            51 => {
                let (Some(&next), Some(&len)) = (frame.get(p), frame.get(p + 1)) else {
                    return ext_cut(info, nh, p, end);
                };
                nh = next;
                p += (len as usize + 2) * 4;
            }
            _ => break,
        }
        if info.non_first_fragment {
            break;
        }
    }
    info.proto = nh;
    transport(frame, p, end, info);
    Ok(())
}

/// The capture ends inside the IPv6 extension headers: the packet counts, without ports.
fn ext_cut(info: &mut PacketInfo, nh: u8, p: usize, end: usize) -> Result<(), Error> {
    info.proto = nh;
    info.l4_truncated = true;
    let p = p.min(end);
    info.l4_payload = p..p;
    Ok(())
}

/// Fills ports, flags and the payload range from the transport header at `at`; the IP packet
/// ends at `end` (already cut to the capture).
fn transport(frame: &[u8], at: usize, end: usize, info: &mut PacketInfo) {
    let end = end.min(frame.len());
    if at > end {
        // IPv4 options run past the capture or the total length.
        info.l4_truncated = true;
        info.l4_payload = end..end;
        return;
    }
    let seg = &frame[at..end];
    let mut hdr_len = 0usize;
    if !info.non_first_fragment {
        let need = match info.proto {
            6 => 20,
            17 | 136 => 8,
            132 | 33 => 12,
            1 | 58 => 4,
            _ => 0,
        };
        if seg.len() < need {
            info.l4_truncated = true;
            info.l4_payload = at..at;
            return;
        }
        match info.proto {
            6 | 17 | 136 | 132 | 33 => {
                info.src_port = u16::from_be_bytes([seg[0], seg[1]]);
                info.dst_port = u16::from_be_bytes([seg[2], seg[3]]);
            }
            1 | 58 => info.dst_port = u16::from_be_bytes([seg[0], seg[1]]),
            _ => {}
        }
        hdr_len = match info.proto {
            6 => {
                info.tcp_flags = seg[13];
                ((seg[12] >> 4) as usize * 4).clamp(20, seg.len())
            }
            17 | 136 => 8,
            _ => 0,
        };
    }
    // Invariant: at <= start <= end <= frame.len().
    let start = (at + hdr_len).min(end);
    info.l4_payload = start..end;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builders for test frames, shared with the sFlow tests.
    pub(crate) fn ipv4_udp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut v = vec![0x45, 0x10];
        v.extend_from_slice(&(total as u16).to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn ipv4_tcp(flags: u8, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&(total as u16).to_be_bytes());
        v.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        v.extend_from_slice(&1234u16.to_be_bytes());
        v.extend_from_slice(&80u16.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn ipv6_with(nh_chain: &[(u8, Vec<u8>)], last_nh: u8, l4: &[u8]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (i, (_, body)) in nh_chain.iter().enumerate() {
            let next = nh_chain.get(i + 1).map(|x| x.0).unwrap_or(last_nh);
            let mut b = body.clone();
            b[0] = next;
            ext.extend_from_slice(&b);
        }
        let plen = ext.len() + l4.len();
        let first = nh_chain.first().map(|x| x.0).unwrap_or(last_nh);
        let mut v = vec![0x6a, 0xb0, 0, 0];
        v.extend_from_slice(&(plen as u16).to_be_bytes());
        v.extend_from_slice(&[first, 64]);
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = 1;
        v.extend_from_slice(&a);
        a[15] = 2;
        v.extend_from_slice(&a);
        v.extend_from_slice(&ext);
        v.extend_from_slice(l4);
        v
    }

    fn eth(et: u16, shims: &[u8], l3: &[u8]) -> Vec<u8> {
        let mut v = vec![0xff; 12];
        v.extend_from_slice(&et.to_be_bytes());
        v.extend_from_slice(shims);
        v.extend_from_slice(l3);
        v
    }

    #[test]
    fn link_types_and_shims_reach_the_same_ip_header() {
        let ip = ipv4_udp([192, 0, 2, 1], [198, 51, 100, 7], 5353, 53, b"query");
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&[0; 8]);
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        let mut sll2 = 0x0800u16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(&ip);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip);
        let mut snap = vec![0xff; 12];
        snap.extend_from_slice(&((ip.len() + 8) as u16).to_be_bytes());
        snap.extend_from_slice(&[0xaa, 0xaa, 3, 0, 0, 0, 8, 0]);
        snap.extend_from_slice(&ip);
        // MPLS: two labels, the second with bottom-of-stack.
        let mpls = [0, 0x10, 0x00, 0x40, 0, 0x20, 0x01, 0x40];
        // PPPoE session header + PPP protocol 0x0021.
        let pppoe = [0x11, 0, 0, 1, 0, 30, 0, 0x21];
        // QinQ: 802.1ad outer 100, 802.1Q inner 200.
        let qinq = [0, 100, 0x81, 0, 0, 200, 0x08, 0];
        // FabricPath: FTag/TTL, then an inner Ethernet header tagged with VLAN 7.
        let mut fabricpath = vec![0, 0x3f];
        fabricpath.extend_from_slice(&[0xee; 12]);
        fabricpath.extend_from_slice(&[0x81, 0, 0, 7, 8, 0]);
        // (name, link type, frame, outer VLAN, IP header offset)
        type Case = (&'static str, u32, Vec<u8>, Option<u16>, usize);
        let cases: Vec<Case> = vec![
            ("ethernet", 1, eth(0x0800, &[], &ip), None, 14),
            (
                "802.1Q",
                1,
                eth(0x8100, &[0x20, 10, 8, 0], &ip),
                Some(10),
                18,
            ),
            ("QinQ", 1, eth(0x88a8, &qinq, &ip), Some(100), 22),
            ("MPLS", 1, eth(0x8847, &mpls, &ip), None, 22),
            ("PPPoE", 1, eth(0x8864, &pppoe, &ip), None, 22),
            ("FabricPath", 1, eth(0x8903, &fabricpath, &ip), Some(7), 34),
            ("LLC/SNAP", 1, snap, None, 22),
            ("raw 101", 101, ip.clone(), None, 0),
            ("raw 12", 12, ip.clone(), None, 0),
            ("raw 14", 14, ip.clone(), None, 0),
            ("ipv4 228", 228, ip.clone(), None, 0),
            ("SLL", 113, sll, None, 16),
            ("SLL2", 276, sll2, None, 20),
            ("NULL le", 0, null_le, None, 4),
            ("NULL be", 0, null_be, None, 4),
        ];
        for (name, lt, frame, vlan, l3) in cases {
            let p = parse(lt, &frame).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.src.to_string(), "192.0.2.1", "{name}");
            assert_eq!(p.dst.to_string(), "198.51.100.7", "{name}");
            assert_eq!((p.proto, p.src_port, p.dst_port), (17, 5353, 53), "{name}");
            assert_eq!((p.tos, p.ip_len, p.is_v6), (0x10, 33, false), "{name}");
            assert_eq!(p.vlan, vlan, "{name}");
            assert_eq!(p.l3_offset, l3, "{name}");
            assert_eq!(&frame[p.l4_payload.clone()], b"query", "{name}");
        }
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let udp = [0x13, 0x88, 0x00, 0x35, 0, 12, 0, 0, b'd', b'a', b't', b'a'];
        let hbh = vec![0, 0, 1, 4, 0, 0, 0, 0];
        let dst = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let rt = vec![0, 0, 4, 0, 0, 0, 0, 0];
        let ah = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let frag_first = vec![0, 0, 0, 1, 0, 0, 0, 9];
        let frag_later = vec![0, 0, 0x05, 0xa8, 0, 0, 0, 9];
        // (chain, expect ports, fragment, non-first)
        type Chain = Vec<(u8, Vec<u8>)>;
        let cases: Vec<(Chain, bool, bool, bool)> = vec![
            (vec![], true, false, false),
            (vec![(0, hbh.clone())], true, false, false),
            (
                vec![(0, hbh), (60, dst), (43, rt), (51, ah)],
                true,
                false,
                false,
            ),
            (vec![(44, frag_first)], true, true, false),
            (vec![(44, frag_later)], false, true, true),
        ];
        for (chain, ports, frag, later) in cases {
            let f = ipv6_with(&chain, 17, &udp);
            let p = parse(229, &f).unwrap();
            assert!(p.is_v6);
            assert_eq!(p.proto, 17);
            assert_eq!(p.tos, 0xab);
            assert_eq!(p.ip_len as usize, f.len());
            assert_eq!(p.src.to_string(), "2001::1");
            assert_eq!(p.is_fragment, frag);
            assert_eq!(p.non_first_fragment, later);
            if ports {
                assert_eq!((p.src_port, p.dst_port), (5000, 53));
                assert_eq!(&f[p.l4_payload.clone()], b"data");
            } else {
                assert_eq!((p.src_port, p.dst_port), (0, 0));
            }
        }
    }

    #[test]
    fn tcp_flags_icmp_codes_and_fragments() {
        let t = ipv4_tcp(0x12, b"hello");
        let p = parse(101, &t).unwrap();
        assert_eq!(
            (p.proto, p.src_port, p.dst_port, p.tcp_flags),
            (6, 1234, 80, 0x12)
        );
        assert_eq!(&t[p.l4_payload], b"hello");

        let mut icmp = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 0, 0, &[]);
        icmp[9] = 1;
        icmp[20] = 3; // destination unreachable
        icmp[21] = 13; // administratively prohibited
        let p = parse(101, &icmp).unwrap();
        assert_eq!((p.proto, p.src_port, p.dst_port), (1, 0, 3 * 256 + 13));

        let icmp6 = ipv6_with(&[], 58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        let p = parse(101, &icmp6).unwrap();
        assert_eq!((p.proto, p.src_port, p.dst_port), (58, 0, 128 * 256));

        let mut later = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 7, 9, b"xxxxxxxx");
        later[6] = 0x00;
        later[7] = 0xb9; // offset 185*8, no MF
        let p = parse(101, &later).unwrap();
        assert!(p.is_fragment && p.non_first_fragment);
        assert_eq!((p.src_port, p.dst_port, p.ip_len), (0, 0, 36));
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let base = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"p");
        let mut f = base[..20].to_vec();
        f[0] = 0x46;
        f.extend_from_slice(&[0x94, 4, 0, 0]); // router alert
        f.extend_from_slice(&base[20..]);
        let total = f.len() as u16;
        f[2..4].copy_from_slice(&total.to_be_bytes());
        let p = parse(101, &f).unwrap();
        assert_eq!((p.src_port, p.dst_port, p.ip_len), (1, 2, 33));
        assert_eq!(&f[p.l4_payload], b"p");
    }

    #[test]
    fn a_capture_cut_after_the_ip_header_still_counts() {
        let f = ipv4_tcp(0x02, &[0; 100]);
        let p = parse(101, &f[..30]).unwrap();
        assert_eq!(p.ip_len, 140);
        assert!(p.l4_truncated);
        assert_eq!((p.src_port, p.dst_port), (0, 0));
        // Ethernet padding beyond the IP total length is not payload.
        let mut padded = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"");
        padded.extend_from_slice(&[0; 18]);
        let p = parse(101, &padded).unwrap();
        assert_eq!((p.ip_len, p.l4_payload.len()), (28, 0));
    }

    #[test]
    fn errors_name_their_cause() {
        let ip = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"");
        let mut bad_ihl = ip.clone();
        bad_ihl[0] = 0x44;
        let cases: Vec<(u32, Vec<u8>, Error)> = vec![
            (1, eth(0x0806, &[], &[0; 28]), Error::NotIp(0x0806)),
            (1, vec![0; 10], Error::TruncatedLink),
            (1, eth(0x8100, &[0], &[]), Error::TruncatedShim),
            (1, eth(0x0800, &[], &ip[..19]), Error::TruncatedIpv4),
            (1, eth(0x86dd, &[], &[0x60; 39]), Error::TruncatedIpv6),
            (
                1,
                eth(0x0800, &[], &bad_ihl),
                Error::BadIpv4HeaderLength(16),
            ),
            (101, vec![0x50; 40], Error::BadIpVersion(5)),
            (147, ip.clone(), Error::UnsupportedLinkType(147)),
            (0, vec![7, 0, 0, 0], Error::NotIp(7)),
            (
                1,
                eth(0x8100, &[0, 1, 0x81, 0].repeat(20), &[]),
                Error::TooManyShims,
            ),
        ];
        for (lt, f, want) in cases {
            assert_eq!(parse(lt, &f), Err(want.clone()), "{want}");
            assert!(!want.reason().is_empty());
        }
    }

    #[test]
    fn the_fuzz_entry_accepts_every_prefix() {
        let f = ipv6_with(
            &[(44, vec![0, 0, 0, 1, 0, 0, 0, 9])],
            6,
            &ipv4_tcp(2, b"x")[20..],
        );
        let mut ok = 0;
        for sel in [8u8, 4] {
            for cut in 0..=f.len() {
                let mut d = vec![sel];
                d.extend_from_slice(&f[..cut]);
                fuzz_parse(&d);
                ok += parse(229, &f[..cut]).is_ok() as usize;
            }
        }
        // Every cut from the end of the fixed header on parses.
        assert_eq!(ok, 2 * (f.len() - 40 + 1));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep: every prefix of several frames, every link type.
        let frames = [
            eth(
                0x8847,
                &[0, 0, 1, 0],
                &ipv6_with(&[(0, vec![0; 8])], 6, &[0; 20]),
            ),
            eth(
                0x8100,
                &[0, 5, 0x88, 0x64, 0x11, 0, 0, 1, 0, 9, 0, 0x57],
                &[0x60; 50],
            ),
            ipv4_tcp(0xff, b"x"),
        ];
        let in_bounds = |f: &[u8], r: Result<PacketInfo, Error>| {
            if let Ok(p) = r {
                assert!(p.l4_payload.start <= p.l4_payload.end, "{p:?}");
                assert!(p.l4_payload.end <= f.len(), "{p:?}");
                assert!(p.l3_offset < f.len(), "{p:?}");
            }
        };
        let mut seed = 0x9e37_79b9u32;
        let mut parsed = 0;
        for f in &frames {
            for cut in 0..=f.len() {
                for lt in [0, 1, 12, 101, 108, 113, 228, 229, 276] {
                    let r = parse(lt, &f[..cut]);
                    parsed += r.is_ok() as usize;
                    in_bounds(&f[..cut], r);
                }
                let mut g = f[..cut].to_vec();
                for b in g.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    *b ^= (seed & 0xff) as u8;
                }
                in_bounds(&g, parse(1, &g));
                in_bounds(&g, parse(101, &g));
            }
        }
        // The full frames and their longer prefixes do parse.
        assert!(parsed > 3, "{parsed}");
    }
}
