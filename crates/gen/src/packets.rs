//! The raw-packet writer: expands every record into its packets (Ethernet + IPv4/IPv6 +
//! TCP/UDP/ICMP headers) and writes them to a classic pcap in global time order.
//!
//! Each flow's `n` packets are spread evenly over `[time_start, time_end]` (µs resolution;
//! the first at the start, the last at the end), with the sizes and TCP flags of its
//! [`Shape`]: TCP flows open with SYN (or SYN-ACK) and close with FIN
//! (or RST). Packets of all flows are merged through a heap of the active flows' next
//! packets, so memory is bounded by the number of flows active at one instant, not by flow
//! length (a 100 GB elephant costs one heap entry).
//!
//! Files stay small: by default only the headers are captured (`caplen`), while `orig_len`
//! is the full frame, which is what flow meters count. Frames are not padded to Ethernet's
//! 60-byte minimum unless asked ([`PacketOptions::pad_to_min_frame`]); softflowd counts
//! `orig_len - 14`, so unpadded frames give byte counts equal to the records', padded ones
//! give [`Truth::bytes_padded_46`](crate::Truth::bytes_padded_46).

use crate::flows::GenFlow;
use crate::pcap::{
    ETH_HEADER, MIN_FRAME, PcapWriter, checksum, pseudo_sum, push_ethernet, push_ip,
};
use crate::rng::mix64;
use crate::shape::{Shape, SizePlan};
use crate::{Error, Scenario, Truth, records};
use flowdrill_model::{Addr, proto};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

/// How packets are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketOptions {
    /// Nanosecond timestamps (pcap magic 0xa1b23c4d) instead of microseconds.
    pub nanos: bool,
    /// Pad frames shorter than 60 bytes (`orig_len`), as they are on the wire.
    pub pad_to_min_frame: bool,
    /// Capture headers only (`caplen` < `orig_len`); otherwise payloads are written as zeros.
    pub headers_only: bool,
}

impl Default for PacketOptions {
    fn default() -> PacketOptions {
        PacketOptions {
            nanos: false,
            pad_to_min_frame: false,
            headers_only: true,
        }
    }
}

/// One flow being expanded.
#[derive(Debug)]
struct Active {
    rec_src: Addr,
    rec_dst: Addr,
    sport: u16,
    dport: u16,
    proto: u8,
    tos: u8,
    shape: Shape,
    plan: SizePlan,
    start_us: u64,
    dur_us: u64,
    /// Index of the next packet to write.
    idx: u64,
    /// Initial sequence number; `tcp_seq` is the next one to send.
    isn: u32,
    tcp_seq: u32,
    /// TCP option bytes on non-SYN segments: 12 (timestamps) or 0.
    tcp_opt: u8,
    tcp_ack: u32,
    ip_id: u16,
    ttl: u8,
    local_src: bool,
}

impl Active {
    fn time_of(&self, i: u64) -> u64 {
        if self.plan.n <= 1 {
            self.start_us
        } else {
            self.start_us + (self.dur_us as u128 * i as u128 / (self.plan.n - 1) as u128) as u64
        }
    }
}

/// Writes the scenario's packets with default options (µs, unpadded, headers only).
pub fn write_packets_pcap<W: Write>(s: &Scenario, w: W) -> Result<Truth, Error> {
    write_packets_pcap_with(s, &PacketOptions::default(), w)
}

/// Writes the scenario's packets; returns the truth of the records written, with
/// `file_bytes` and `frames` filled in.
pub fn write_packets_pcap_with<W: Write>(
    s: &Scenario,
    opts: &PacketOptions,
    w: W,
) -> Result<Truth, Error> {
    let mut recs = records(s)?;
    let mut truth = Truth::new(s.events.len());
    let mut out = PcapWriter::new(w, opts.nanos)?;
    let local = (s.local_v4, s.local_v6);
    // Slab of active flows + heap of (next packet time, flow id, slot).
    let mut slab: Vec<Option<Active>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
    let mut next_flow = recs.next_gen();
    let mut flow_id = 0u64;
    let mut buf = Vec::with_capacity(1600);
    loop {
        let top = heap.peek().map(|r| r.0.0);
        if let Some(g) = &next_flow
            && top.is_none_or(|t| g.rec.time_start * 1000 <= t)
        {
            let g = next_flow.take().unwrap_or_else(|| unreachable!());
            next_flow = recs.next_gen();
            truth.add(g.origin, &g.rec, &g.shape);
            let a = activate(&g, flow_id, local)?;
            let slot = match free.pop() {
                Some(i) => {
                    slab[i as usize] = Some(a);
                    i
                }
                None => {
                    slab.push(Some(a));
                    (slab.len() - 1) as u32
                }
            };
            heap.push(Reverse((g.rec.time_start * 1000, flow_id, slot)));
            flow_id += 1;
            continue;
        }
        let Some(Reverse((t_us, id, slot))) = heap.pop() else {
            break;
        };
        let a = slab[slot as usize]
            .as_mut()
            .ok_or_else(|| Error::Internal("heap points at an empty flow slot".into()))?;
        let (caplen, orig) = build_frame(&mut buf, a, opts);
        out.write(t_us * 1000, &buf[..caplen], orig)?;
        a.idx += 1;
        if a.idx < a.plan.n {
            heap.push(Reverse((a.time_of(a.idx), id, slot)));
        } else {
            slab[slot as usize] = None;
            free.push(slot);
        }
    }
    truth.finish();
    truth.frames = out.frames();
    truth.file_bytes = out.bytes_written();
    out.finish()?;
    Ok(truth)
}

fn activate(
    g: &GenFlow,
    id: u64,
    (v4net, v6net): (flowdrill_model::Prefix, flowdrill_model::Prefix),
) -> Result<Active, Error> {
    let r = &g.rec;
    let plan = g.shape.plan(r.packets, r.bytes).ok_or_else(|| {
        Error::Internal(format!("record without a packet plan: {r:?} {:?}", g.shape))
    })?;
    let h = mix64(id ^ 0x9ac);
    // Initial sequence numbers from the directional 4-tuple, so that each direction of a
    // connection knows the other's: the SYN-ACK acknowledges the SYN.
    let isn = |a: flowdrill_model::Addr, p: u16, b: flowdrill_model::Addr, q: u16| {
        mix64(
            (a.0 as u64)
                ^ mix64(
                    (b.0 as u64)
                        ^ mix64(
                            ((p as u64) << 16 | q as u64)
                                ^ ((a.0 >> 64) as u64 ^ (b.0 >> 64) as u64),
                        ),
                ),
        ) as u32
    };
    let ip_hdr: u32 = if r.src_addr.is_v4() { 20 } else { 40 };
    let local_src = v4net.contains(r.src_addr) || v6net.contains(r.src_addr);
    Ok(Active {
        rec_src: r.src_addr,
        rec_dst: r.dst_addr,
        sport: r.src_port,
        dport: r.dst_port,
        proto: r.proto,
        tos: r.tos,
        shape: g.shape,
        plan,
        start_us: r.time_start * 1000,
        dur_us: (r.time_end - r.time_start) * 1000,
        idx: 0,
        isn: isn(r.src_addr, r.src_port, r.dst_addr, r.dst_port),
        tcp_seq: isn(r.src_addr, r.src_port, r.dst_addr, r.dst_port),
        tcp_opt: if g.shape.small as u32 == ip_hdr + 32 {
            12
        } else {
            0
        },
        // Invariant kept simple: every ACK acknowledges the peer's SYN only (no data), which
        // analysers read as a receiver that has not caught up, never as a retransmission.
        tcp_ack: isn(r.dst_addr, r.dst_port, r.src_addr, r.src_port).wrapping_add(1),
        ip_id: (h >> 16) as u16,
        ttl: if local_src { 64 } else { 40 + (h % 20) as u8 },
        local_src,
    })
}

/// Appends `n` bytes (a multiple of 4) of TCP options: on a SYN, MSS then SACK-permitted,
/// window scale and timestamps as room allows; otherwise NOP, NOP, timestamps.
fn push_tcp_options(buf: &mut Vec<u8>, n: usize, syn: bool, tsval: u32, v4: bool) {
    let end = buf.len() + n;
    if syn && n >= 4 {
        let mss: u16 = if v4 { 1460 } else { 1440 };
        buf.extend_from_slice(&[2, 4]);
        buf.extend_from_slice(&mss.to_be_bytes());
        if n >= 8 {
            buf.extend_from_slice(&[1, 1, 4, 2]);
        }
        if n >= 20 {
            buf.extend_from_slice(&[8, 10]);
            buf.extend_from_slice(&tsval.to_be_bytes());
            buf.extend_from_slice(&[0, 0, 0, 0]);
        }
        if buf.len() + 4 <= end {
            buf.extend_from_slice(&[1, 3, 3, 7]);
        }
    } else if n >= 12 {
        buf.extend_from_slice(&[1, 1, 8, 10]);
        buf.extend_from_slice(&tsval.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
    }
    buf.resize(end, 1); // NOP padding
}

/// Fills `buf` with packet `a.idx` of flow `a`; returns (captured length, frame length).
fn build_frame(buf: &mut Vec<u8>, a: &mut Active, opts: &PacketOptions) -> (usize, u32) {
    buf.clear();
    let v4 = a.rec_src.is_v4();
    let size = a.plan.size(a.idx);
    let router = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
    let host = [0x02, 0x10, 0x00, 0x00, 0x00, 0x02];
    let (dmac, smac) = if a.local_src {
        (router, host)
    } else {
        (host, router)
    };
    push_ethernet(buf, dmac, smac, v4);
    push_ip(
        buf, a.rec_src, a.rec_dst, a.proto, a.tos, size, a.ttl, a.ip_id,
    );
    a.ip_id = a.ip_id.wrapping_add(1);
    let ip_hdr: u16 = if v4 { 20 } else { 40 };
    let l4 = buf.len();
    match a.proto {
        proto::TCP => {
            let flags = a.shape.flags_of(a.idx, a.plan.n);
            let syn = flags & 0x02 != 0;
            // Bytes beyond the 20-byte header: options first, the rest is (zero) payload.
            // SYNs carry their extra bytes as options (MSS, SACK, window scale, timestamps);
            // other segments carry the timestamps option when the flow uses it.
            let room = size.saturating_sub(ip_hdr + 20);
            let opt = if syn {
                room.min(40) & !3
            } else if room >= a.tcp_opt as u16 {
                a.tcp_opt as u16
            } else {
                0
            };
            let payload = (room - opt) as u32;
            // A SYN (first or retransmitted) always carries the initial sequence number.
            let seq = if syn { a.isn } else { a.tcp_seq };
            buf.extend_from_slice(&a.sport.to_be_bytes());
            buf.extend_from_slice(&a.dport.to_be_bytes());
            buf.extend_from_slice(&seq.to_be_bytes());
            let ack = if flags & 0x10 != 0 { a.tcp_ack } else { 0 };
            buf.extend_from_slice(&ack.to_be_bytes());
            let offset = ((20 + opt) / 4) as u8;
            buf.extend_from_slice(&[offset << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
            push_tcp_options(buf, opt as usize, syn, (a.time_of(a.idx) / 1000) as u32, v4);
            // SYN and FIN each take one sequence number.
            a.tcp_seq = seq.wrapping_add(payload + (flags & 0x03 != 0) as u32);
        }
        proto::UDP => {
            buf.extend_from_slice(&a.sport.to_be_bytes());
            buf.extend_from_slice(&a.dport.to_be_bytes());
            buf.extend_from_slice(&(size - ip_hdr).to_be_bytes());
            buf.extend_from_slice(&[0, 0]);
        }
        _ => {
            // ICMP / ICMPv6: type and code from the destination port field.
            let [ty, code] = a.dport.to_be_bytes();
            buf.extend_from_slice(&[ty, code, 0, 0]);
            // Identifier: the same for a request and its reply (symmetric in the two ISNs).
            let ident = (a.tcp_seq ^ a.tcp_ack.wrapping_sub(1)) as u16;
            buf.extend_from_slice(&ident.to_be_bytes());
            buf.extend_from_slice(&(a.idx as u16).to_be_bytes());
        }
    }
    // Checksums over the header and the (all-zero, hence sum-neutral) payload.
    let l4_len = (size - ip_hdr) as u32;
    let (pseudo, at) = match a.proto {
        proto::TCP => (Some(proto::TCP), 16),
        proto::UDP => (Some(proto::UDP), 6),
        proto::ICMP6 => (Some(proto::ICMP6), 2),
        _ => (None, 2),
    };
    let sum = pseudo.map_or(0, |p| pseudo_sum(a.rec_src, a.rec_dst, p, l4_len));
    let mut c = checksum(&buf[l4..], sum);
    if c == 0 && a.proto == proto::UDP {
        c = 0xffff; // 0 means "no checksum" in UDP
    }
    buf[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    let frame = ETH_HEADER as u32 + size as u32;
    let orig = if opts.pad_to_min_frame {
        frame.max(MIN_FRAME)
    } else {
        frame
    };
    if !opts.headers_only {
        buf.resize(orig as usize, 0);
    }
    (buf.len().min(orig as usize), orig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    /// A minimal reader of our own pcaps: (time ns, caplen, orig_len, frame bytes).
    fn frames(pcap: &[u8]) -> Vec<(u64, u32, u32, Vec<u8>)> {
        let nanos = pcap[0..4] == 0xa1b2_3c4du32.to_le_bytes();
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let u = |o: usize| u32::from_le_bytes(pcap[at + o..at + o + 4].try_into().unwrap());
            let (s, f, cap, orig) = (u(0) as u64, u(4) as u64, u(8), u(12));
            let t = s * 1_000_000_000 + if nanos { f } else { f * 1000 };
            out.push((t, cap, orig, pcap[at + 16..at + 16 + cap as usize].to_vec()));
            at += 16 + cap as usize;
        }
        out
    }

    fn small() -> Scenario {
        let mut s = Scenario {
            flows: 2_000,
            duration_ms: 300_000,
            ..Scenario::default()
        };
        let t0 = s.start_ms;
        s.events.push(Event::Elephant {
            at_ms: t0 + 1_000,
            duration_ms: 60_000,
            src: "10.20.3.9".parse().unwrap(),
            dst: "198.51.100.20".parse().unwrap(),
            port: 22,
            bytes: 3_000_000,
        });
        s
    }

    #[test]
    fn packets_are_in_time_order_and_add_up_to_the_records() {
        let s = small();
        let mut out = Vec::new();
        let truth = write_packets_pcap(&s, &mut out).unwrap();
        let fr = frames(&out);
        assert_eq!(fr.len() as u64, truth.total.packets);
        assert_eq!(truth.frames, truth.total.packets);
        assert_eq!(truth.file_bytes, out.len() as u64);
        assert!(fr.windows(2).all(|w| w[0].0 <= w[1].0), "global time order");
        let l3: u64 = fr.iter().map(|f| f.2 as u64 - 14).sum();
        assert_eq!(
            l3, truth.total.bytes,
            "orig_len - 14 sums to the records' bytes"
        );
        let mut syn = 0;
        for (_, cap, orig, f) in &fr {
            assert!(cap <= orig);
            if f[12..14] == [0x08, 0x00] {
                assert_eq!(
                    crate::pcap::checksum(&f[14..34], 0),
                    0,
                    "IPv4 header checksum"
                );
                let total = u16::from_be_bytes([f[16], f[17]]) as u32;
                assert_eq!(total + 14, *orig, "IP total length matches the frame");
                if f[23] == 6 && f[47] & 0x02 != 0 {
                    syn += 1;
                }
            } else {
                assert_eq!(&f[12..14], &[0x86, 0xdd]);
                let payload = u16::from_be_bytes([f[18], f[19]]) as u32;
                assert_eq!(payload + 40 + 14, *orig);
            }
        }
        assert!(syn > 0);
    }

    #[test]
    fn padding_adds_what_the_truth_predicts() {
        let s = Scenario {
            flows: 500,
            duration_ms: 60_000,
            ..Scenario::default()
        };
        let mut out = Vec::new();
        let opts = PacketOptions {
            pad_to_min_frame: true,
            nanos: true,
            ..PacketOptions::default()
        };
        let truth = write_packets_pcap_with(&s, &opts, &mut out).unwrap();
        let fr = frames(&out);
        assert!(fr.iter().all(|f| f.2 >= 60));
        let l3: u64 = fr.iter().map(|f| f.2 as u64 - 14).sum();
        assert_eq!(l3, truth.bytes_padded_46);
        assert!(truth.bytes_padded_46 > truth.total.bytes);
    }

    #[test]
    fn tcp_flows_open_with_syn_and_close_with_fin_or_rst() {
        let s = Scenario {
            flows: 300,
            duration_ms: 60_000,
            ipv6_share: 0.0,
            ..Scenario::default()
        };
        let mut out = Vec::new();
        write_packets_pcap_with(
            &s,
            &PacketOptions {
                headers_only: false,
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        let fr = frames(&out);
        assert!(fr.iter().all(|f| f.1 == f.2), "full capture");
        // First and last packet flags per TCP 5-tuple.
        let mut seen: std::collections::HashMap<Vec<u8>, (u8, u8)> = Default::default();
        for (_, _, _, f) in fr.iter().filter(|f| f.3[23] == 6) {
            let key = [&f[26..34], &f[34..38]].concat();
            let fl = f[47];
            seen.entry(key).and_modify(|e| e.1 = fl).or_insert((fl, fl));
        }
        assert!(!seen.is_empty());
        for (first, last) in seen.values() {
            assert!(first & 0x02 != 0, "first packet has SYN: {first:#x}");
            assert!(
                last & 0x05 != 0 || *last == 0x02,
                "last packet has FIN or RST (or is an unanswered SYN): {last:#x}"
            );
        }
    }

    #[test]
    fn every_checksum_verifies_over_both_families() {
        let s = Scenario {
            flows: 400,
            duration_ms: 60_000,
            ipv6_share: 0.5,
            ..Scenario::default()
        };
        let mut out = Vec::new();
        write_packets_pcap_with(
            &s,
            &PacketOptions {
                headers_only: false,
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        let (mut v4, mut v6) = (0, 0);
        for (_, _, _, f) in frames(&out) {
            let (src, dst, p, seg) = if f[12..14] == [0x08, 0x00] {
                v4 += 1;
                let a = |o: usize| {
                    Addr::from_v4_u32(u32::from_be_bytes(f[o..o + 4].try_into().unwrap()))
                };
                (a(26), a(30), f[23], &f[34..])
            } else {
                v6 += 1;
                let a = |o: usize| Addr(u128::from_be_bytes(f[o..o + 16].try_into().unwrap()));
                (a(22), a(38), f[20], &f[54..])
            };
            // ICMPv4 has no pseudo-header; TCP, UDP and ICMPv6 do.
            let sum = if p == proto::ICMP {
                0
            } else {
                pseudo_sum(src, dst, p, seg.len() as u32)
            };
            assert_eq!(checksum(seg, sum), 0, "protocol {p}");
        }
        assert!(v4 > 0 && v6 > 0);
    }
}
