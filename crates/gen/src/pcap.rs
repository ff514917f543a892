//! Classic pcap output (libpcap 2.4, Ethernet link type) and the header builders shared by
//! the packet writer and the export writer: Ethernet, IPv4 (with a valid header checksum),
//! IPv6, UDP (checksummed over IPv6, where it is mandatory).
//!
//! A record may be captured short: `caplen` bytes are stored, `orig_len` is the frame's real
//! length (tools count `orig_len`).

use flowdrill_model::Addr;
use std::io::{self, Write};

/// Link type 1: Ethernet.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Shortest Ethernet frame without FCS; shorter frames are padded on the wire.
pub const MIN_FRAME: u32 = 60;
pub const ETH_HEADER: usize = 14;

/// A classic pcap writer. Invariant: the global header is written by [`PcapWriter::new`]
/// before any record.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    nanos: bool,
    written: u64,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header: microsecond or nanosecond timestamps, snaplen 262 144.
    pub fn new(mut w: W, nanos: bool) -> io::Result<PcapWriter<W>> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&262_144u32.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            nanos,
            written: 24,
            frames: 0,
        })
    }

    /// Writes one frame captured at `time_ns` (Unix ns): `data` are the captured bytes,
    /// `orig_len` (≥ `data.len()`) the frame's length on the wire.
    pub fn write(&mut self, time_ns: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = (time_ns / 1_000_000_000) as u32;
        let frac = time_ns % 1_000_000_000;
        let frac = if self.nanos { frac } else { frac / 1000 } as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)?;
        self.written += 16 + data.len() as u64;
        self.frames += 1;
        Ok(())
    }

    /// Bytes written so far (the file size once flushed).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `sum`.
pub fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The partial sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793 / RFC 8200 §8.1) for an
/// upper-layer packet of `len` bytes.
pub fn pseudo_sum(src: Addr, dst: Addr, proto: u8, len: u32) -> u32 {
    let words = |a: Addr| -> u32 {
        match a.v4() {
            Some(v) => (v >> 16) + (v & 0xffff),
            None => {
                a.0.to_be_bytes()
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                    .sum()
            }
        }
    };
    words(src) + words(dst) + proto as u32 + (len >> 16) + (len & 0xffff)
}

/// Appends an Ethernet header; the EtherType follows from the address family.
pub fn push_ethernet(buf: &mut Vec<u8>, dst_mac: [u8; 6], src_mac: [u8; 6], v4: bool) {
    buf.extend_from_slice(&dst_mac);
    buf.extend_from_slice(&src_mac);
    buf.extend_from_slice(if v4 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
}

/// Appends an IPv4 or IPv6 header for a packet of `total_len` layer-3 bytes. The IPv4
/// header checksum is valid; `id` is the IPv4 identification.
#[allow(clippy::too_many_arguments)]
pub fn push_ip(
    buf: &mut Vec<u8>,
    src: Addr,
    dst: Addr,
    proto: u8,
    tos: u8,
    total_len: u16,
    ttl: u8,
    id: u16,
) {
    match (src.v4(), dst.v4()) {
        (Some(s), Some(d)) => {
            let at = buf.len();
            buf.extend_from_slice(&[0x45, tos]);
            buf.extend_from_slice(&total_len.to_be_bytes());
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&[0x40, 0x00, ttl, proto, 0, 0]);
            buf.extend_from_slice(&s.to_be_bytes());
            buf.extend_from_slice(&d.to_be_bytes());
            let c = checksum(&buf[at..at + 20], 0);
            buf[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
        }
        _ => {
            let vtf: u32 = 6 << 28 | (tos as u32) << 20;
            buf.extend_from_slice(&vtf.to_be_bytes());
            buf.extend_from_slice(&(total_len.saturating_sub(40)).to_be_bytes());
            buf.extend_from_slice(&[proto, ttl]);
            buf.extend_from_slice(&src.0.to_be_bytes());
            buf.extend_from_slice(&dst.0.to_be_bytes());
        }
    }
}

/// A complete Ethernet/IP/UDP frame carrying `payload` (used for export datagrams). The UDP
/// checksum is computed over IPv6 and left 0 (allowed) over IPv4.
pub fn udp_frame(src: Addr, dst: Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let v4 = src.is_v4() && dst.is_v4();
    let ip_hdr = if v4 { 20 } else { 40 };
    let udp_len = 8 + payload.len();
    let mut f = Vec::with_capacity(ETH_HEADER + ip_hdr + udp_len);
    push_ethernet(
        &mut f,
        [0x02, 0, 0, 0, 0xc0, 0x11],
        [0x02, 0, 0, 0, 0xe0, 0x01],
        v4,
    );
    push_ip(&mut f, src, dst, 17, 0, (ip_hdr + udp_len) as u16, 64, 0);
    let at = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    if !v4 {
        let c = match checksum(&f[at..], pseudo_sum(src, dst, 17, udp_len as u32)) {
            0 => 0xffff,
            c => c,
        };
        f[at + 6..at + 8].copy_from_slice(&c.to_be_bytes());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_header_checksum_verifies() {
        let mut b = Vec::new();
        push_ip(
            &mut b,
            "10.0.0.1".parse().unwrap(),
            "192.0.2.7".parse().unwrap(),
            6,
            0,
            40,
            64,
            7,
        );
        assert_eq!(b.len(), 20);
        assert_eq!(checksum(&b, 0), 0, "a valid header sums to zero");
        // RFC 1071's example bytes.
        assert_eq!(
            !checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0),
            0xddf2
        );
    }

    #[test]
    fn udp_frames_have_consistent_lengths() {
        let f = udp_frame(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2055,
            &[1, 2, 3],
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 3);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 31);
        let f6 = udp_frame(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1,
            2055,
            &[9; 5],
        );
        assert_eq!(f6.len(), 14 + 40 + 8 + 5);
        assert_eq!(&f6[12..14], &[0x86, 0xdd]);
        assert_eq!(
            u16::from_be_bytes([f6[18], f6[19]]),
            13,
            "IPv6 payload length"
        );
        assert_ne!(
            u16::from_be_bytes([f6[60], f6[61]]),
            0,
            "IPv6 UDP checksum is mandatory"
        );
    }

    #[test]
    fn the_writer_emits_headers_and_records() {
        let mut w = PcapWriter::new(Vec::new(), false).unwrap();
        w.write(1_500_000_123_456, &[0xaa; 54], 60).unwrap();
        assert_eq!(w.bytes_written(), 24 + 16 + 54);
        let out = w.finish().unwrap();
        assert_eq!(&out[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(out[24..28].try_into().unwrap()), 1_500);
        assert_eq!(u32::from_le_bytes(out[28..32].try_into().unwrap()), 123);
        assert_eq!(u32::from_le_bytes(out[32..36].try_into().unwrap()), 54);
        assert_eq!(u32::from_le_bytes(out[36..40].try_into().unwrap()), 60);
    }
}
