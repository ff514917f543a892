//! The flow meter: raw packets in, unidirectional flow records out.
//!
//! This module owns flow state for packet captures: the flow cache, its timeouts and its
//! memory bound. Headers are parsed by `flowdrill_wire::packet`; captures are read by
//! [`crate::pcap`].
//!
//! ```
//! use flowdrill_ingest::meter::{Meter, MeterConfig};
//! let mut m = Meter::new(MeterConfig::default());
//! let mut out = Vec::new();
//! // A raw IPv4 UDP packet (link type 101), 28 bytes.
//! let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
//! ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
//! m.push(1_000_000_000, 101, &ip, &mut out);
//! m.push(2_000_000_000, 101, &ip, &mut out);
//! m.finish(&mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!((out[0].packets, out[0].bytes, out[0].dst_port), (2, 56, 53));
//! assert_eq!((out[0].time_start, out[0].time_end), (1_000, 2_000));
//! ```
//!
//! **Flow key**: source address, destination address, source port, destination port, IP
//! protocol — nothing else (no VLAN, no ToS, no interface, no direction merging). ICMP flows
//! are keyed by type*256+code in the destination port, as nfdump does; non-first fragments
//! have ports 0 and so form their own flow (no reassembly).
//!
//! **Counting**: packets, and bytes = the IP total length from the header (IPv4 total
//! length, IPv6 payload length + 40): Ethernet padding and link headers are not counted.
//! `tcp_flags` is the OR of all packets' flags; `tos` is the first packet's; `exporter` is
//! `0.0.0.0`, `sampling_rate` 1, interfaces 0.
//!
//! **Ending a flow**, checked on every packet against the meter's clock (the largest packet
//! time seen so far, so slightly out-of-order captures never move time backwards):
//! - *fin/rst*: a TCP packet with FIN or RST ends its flow after it is counted (a later
//!   packet of the same 5-tuple, such as the last ACK, starts a new flow); can be turned off
//!   ([`MeterConfig::end_on_fin_rst`]);
//! - *idle*: no packet for more than `idle_timeout_ms` (of the meter's clock);
//! - *active*: a packet arriving `active_timeout_ms` or more after its flow started closes
//!   that flow and starts a new one (a flow that goes quiet first ends as *idle*);
//! - *memory*: when `max_flows` flows are open, the least recently seen one is closed early;
//! - *end*: [`Meter::finish`] closes everything.
//!
//! **Expiry cost**: O(1) per packet, no scan of the cache. Open flows sit in an intrusive
//! recency list; a packet moves its flow to the tail at most once per second of packet time,
//! and idle expiry only looks at the head (a head seen since it was listed is listed again).
//! Because the list is only roughly ordered, an idle flow may be *emitted* up to one more idle
//! timeout late, but never *wrong*: a packet arriving for a flow idle longer than the timeout
//! closes that flow and starts a new one, exactly as timely expiry would have.

use flowdrill_model::{Addr, FlowRecord};
use flowdrill_wire::packet::{self, PacketInfo};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Meter settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterConfig {
    /// A flow is cut when a packet arrives this long after its start. Default 30 min.
    pub active_timeout_ms: u64,
    /// A flow ends after this long without a packet. Default 15 s.
    pub idle_timeout_ms: u64,
    /// Most flows kept open at once; when full, the least recently seen flow is closed early
    /// (counted as `expired_memory`). Default 1 M (about 100 MB of state).
    pub max_flows: usize,
    /// Whether a TCP FIN or RST ends its flow at once (nfpcapd, YAF). Default true. With
    /// false, FIN/RST flows end by the timeouts like any other (softflowd keeps them open
    /// for minutes, so a last ACK joins the flow it closes).
    pub end_on_fin_rst: bool,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            active_timeout_ms: 1_800_000,
            idle_timeout_ms: 15_000,
            max_flows: 1_000_000,
            end_on_fin_rst: true,
        }
    }
}

/// What the meter saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Every frame pushed.
    pub frames: u64,
    /// Frames that carry no IP packet (ARP, LLDP, STP...).
    pub non_ip_frames: u64,
    pub ipv4_packets: u64,
    /// Sum of IPv4 total lengths.
    pub ipv4_bytes: u64,
    pub ipv6_packets: u64,
    /// Sum of IPv6 payload lengths + 40.
    pub ipv6_bytes: u64,
    /// Frames dropped because their headers did not parse, by [`packet::Error::reason`].
    pub parse_errors: Vec<(&'static str, u64)>,
    pub flows_created: u64,
    pub expired_idle: u64,
    pub expired_active: u64,
    pub expired_fin_rst: u64,
    pub expired_memory: u64,
    pub expired_end: u64,
}

impl MeterStats {
    /// Frames dropped for a parse error (all reasons).
    pub fn parse_error_total(&self) -> u64 {
        self.parse_errors.iter().map(|(_, n)| n).sum()
    }
    /// Flows emitted so far, all causes.
    pub fn flows_expired(&self) -> u64 {
        self.expired_idle
            + self.expired_active
            + self.expired_fin_rst
            + self.expired_memory
            + self.expired_end
    }
    fn count_expiry(&mut self, cause: Cause) {
        match cause {
            Cause::Idle => self.expired_idle += 1,
            Cause::Active => self.expired_active += 1,
            Cause::FinRst => self.expired_fin_rst += 1,
            Cause::Memory => self.expired_memory += 1,
            Cause::End => self.expired_end += 1,
        }
    }

    fn count_error(&mut self, reason: &'static str) {
        match self.parse_errors.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.parse_errors.push((reason, 1)),
        }
    }
}

/// Why a flow was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Idle,
    Active,
    FinRst,
    Memory,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    /// Addresses as (low, high) 64-bit halves of [`Addr`]'s u128: 8-byte alignment keeps a
    /// table entry at 48 bytes instead of 64.
    src: [u64; 2],
    dst: [u64; 2],
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

#[inline]
fn split(a: Addr) -> [u64; 2] {
    [a.0 as u64, (a.0 >> 64) as u64]
}

#[inline]
fn join(h: [u64; 2]) -> Addr {
    Addr((h[1] as u128) << 64 | h[0] as u128)
}

impl Hash for Key {
    /// Folds the key into one word; [`KeyHasher`] then mixes it. Equal keys fold equally.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        const K1: u64 = 0x9e37_79b9_7f4a_7c15;
        const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
        let a = self.src[0] ^ self.src[1].rotate_left(17);
        let b = self.dst[0] ^ self.dst[1].rotate_left(41);
        let p = (self.src_port as u64) << 24 | (self.dst_port as u64) << 8 | self.proto as u64;
        state.write_u64(a.wrapping_mul(K1) ^ b.wrapping_mul(K2).rotate_left(29) ^ p);
    }
}

/// The hasher of the flow table: one multiply-xorshift round (murmur3's finaliser) over the
/// word [`Key::hash`] folded. Flow keys come from packets, so an attacker could aim for
/// collisions; a capture file is not a live service, and speed is what a meter needs here.
#[derive(Default, Clone, Copy, Debug)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    /// Only reached if something other than [`Key`] is hashed with it.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 ^= i;
    }
}

const NIL: u32 = u32::MAX;

/// A flow moves to the tail of the recency list at most once per second of packet time: hot
/// flows then cost a table lookup per packet and no list surgery.
const RELINK_NS: u64 = 1_000_000_000;

impl Flow {
    fn new(key: Key, ts_ns: u64, info: &PacketInfo) -> Flow {
        Flow {
            key,
            start_ns: ts_ns,
            last_ns: ts_ns,
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
            tos: info.tos,
            listed_ns: ts_ns,
            prev: NIL,
            next: NIL,
        }
    }

    fn record(&self) -> FlowRecord {
        FlowRecord {
            time_start: self.start_ns / 1_000_000,
            time_end: self.last_ns / 1_000_000,
            src_addr: join(self.key.src),
            dst_addr: join(self.key.dst),
            src_port: self.key.src_port,
            dst_port: self.key.dst_port,
            proto: self.key.proto,
            tcp_flags: self.tcp_flags,
            tos: self.tos,
            packets: self.packets,
            bytes: self.bytes,
            exporter: Addr::UNSPECIFIED_V4,
            sampling_rate: 1,
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug)]
struct Flow {
    key: Key,
    start_ns: u64,
    last_ns: u64,
    packets: u64,
    bytes: u64,
    tcp_flags: u8,
    tos: u8,
    /// When the flow was last put at the tail of the recency list (ns). The list is ordered
    /// by this, not by `last_ns`: a flow is moved at most once per [`RELINK_NS`].
    listed_ns: u64,
    /// Neighbours in the recency list (NIL at the ends).
    prev: u32,
    next: u32,
}

/// The flow meter. See the module doc.
#[derive(Debug)]
pub struct Meter {
    cfg: MeterConfig,
    stats: MeterStats,
    map: HashMap<Key, u32, BuildHasherDefault<KeyHasher>>,
    /// Invariant: every slot in `map` is in the recency list exactly once, and free slots are
    /// in `free`; `head` is the least recently seen flow, `tail` the most recent.
    slots: Vec<Flow>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    /// The meter's clock: the largest packet time seen (ns).
    now_ns: u64,
}

impl Meter {
    /// A meter with no flows. A `max_flows` of 0 is taken as 1.
    pub fn new(mut cfg: MeterConfig) -> Meter {
        cfg.max_flows = cfg.max_flows.clamp(1, NIL as usize - 1);
        Meter {
            cfg,
            stats: MeterStats::default(),
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            now_ns: 0,
        }
    }

    pub fn config(&self) -> &MeterConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MeterStats {
        &self.stats
    }

    /// Flows open right now.
    pub fn open_flows(&self) -> usize {
        self.map.len()
    }

    /// Meters one frame captured at `ts_ns` (Unix ns) on a link of type `linktype`; flows
    /// that end are appended to `out`.
    pub fn push(&mut self, ts_ns: u64, linktype: u32, frame: &[u8], out: &mut Vec<FlowRecord>) {
        self.stats.frames += 1;
        let info = match packet::parse(linktype, frame) {
            Ok(i) => i,
            Err(packet::Error::NotIp(_)) => {
                self.stats.non_ip_frames += 1;
                self.advance(ts_ns, out);
                return;
            }
            Err(e) => {
                self.stats.count_error(e.reason());
                self.advance(ts_ns, out);
                return;
            }
        };
        self.push_parsed(ts_ns, &info, out);
    }

    /// Meters one already parsed packet (for callers that parse for their own reasons).
    pub fn push_parsed(&mut self, ts_ns: u64, info: &PacketInfo, out: &mut Vec<FlowRecord>) {
        if info.is_v6 {
            self.stats.ipv6_packets += 1;
            self.stats.ipv6_bytes += info.ip_len as u64;
        } else {
            self.stats.ipv4_packets += 1;
            self.stats.ipv4_bytes += info.ip_len as u64;
        }
        self.advance(ts_ns, out);
        let key = Key {
            src: split(info.src),
            dst: split(info.dst),
            src_port: info.src_port,
            dst_port: info.dst_port,
            proto: info.proto,
        };
        // FIN (0x01) or RST (0x04) ends a TCP flow once the packet is counted.
        let ends = self.cfg.end_on_fin_rst && info.proto == 6 && info.tcp_flags & 0x05 != 0;
        let active_ns = self.cfg.active_timeout_ms.saturating_mul(1_000_000);
        let idle_ns = self.cfg.idle_timeout_ms.saturating_mul(1_000_000);
        let full = self.map.len() >= self.cfg.max_flows;
        // The slot a new flow would take (materialised below only if used).
        let next_slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
        let slot = match self.map.entry(key) {
            Entry::Occupied(o) => {
                let s = *o.get();
                let f = &mut self.slots[s as usize];
                // The recency list is only approximately ordered, so a flow idle for longer
                // than the timeout may still be open: cut it here, exactly as if it had been
                // expired in time.
                let cause = if self.now_ns.saturating_sub(f.last_ns) > idle_ns {
                    Some(Cause::Idle)
                } else if ts_ns.saturating_sub(f.start_ns) >= active_ns {
                    Some(Cause::Active)
                } else {
                    None
                };
                if let Some(cause) = cause {
                    // Emit the flow and restart it in place (same key, same map entry).
                    out.push(f.record());
                    self.stats.count_expiry(cause);
                    self.stats.flows_created += 1;
                    f.start_ns = ts_ns;
                    f.last_ns = ts_ns;
                    f.packets = 0;
                    f.bytes = 0;
                    f.tcp_flags = 0;
                    f.tos = info.tos;
                }
                if ts_ns >= f.listed_ns.saturating_add(RELINK_NS) {
                    f.listed_ns = ts_ns;
                    self.touch(s);
                }
                s
            }
            Entry::Vacant(_) if ends => {
                // A flow of one FIN/RST packet (scans, resets): no need to store it.
                let f = Flow::new(key, ts_ns, info);
                let mut r = f.record();
                r.packets = 1;
                r.bytes = info.ip_len as u64;
                r.tcp_flags = info.tcp_flags;
                out.push(r);
                self.stats.flows_created += 1;
                self.stats.expired_fin_rst += 1;
                return;
            }
            Entry::Vacant(v) if !full => {
                v.insert(next_slot);
                self.place(next_slot, Flow::new(key, ts_ns, info))
            }
            Entry::Vacant(_) => {
                self.close(self.head, Cause::Memory, out);
                let slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
                self.map.insert(key, slot);
                self.place(slot, Flow::new(key, ts_ns, info))
            }
        };
        let f = &mut self.slots[slot as usize];
        f.packets += 1;
        f.bytes += info.ip_len as u64;
        f.tcp_flags |= info.tcp_flags;
        f.last_ns = f.last_ns.max(ts_ns);
        f.start_ns = f.start_ns.min(ts_ns);
        if ends {
            self.close(slot, Cause::FinRst, out);
        }
    }

    /// Closes every open flow (least recently seen first).
    pub fn finish(&mut self, out: &mut Vec<FlowRecord>) {
        while self.head != NIL {
            self.close(self.head, Cause::End, out);
        }
    }

    /// Moves the clock to `ts_ns` (never backwards) and closes the flows idle since.
    fn advance(&mut self, ts_ns: u64, out: &mut Vec<FlowRecord>) {
        self.now_ns = self.now_ns.max(ts_ns);
        let idle_ns = self.cfg.idle_timeout_ms.saturating_mul(1_000_000);
        while self.head != NIL {
            let head = self.head;
            let h = &mut self.slots[head as usize];
            if self.now_ns.saturating_sub(h.listed_ns) <= idle_ns {
                break;
            }
            if self.now_ns.saturating_sub(h.last_ns) > idle_ns {
                self.close(head, Cause::Idle, out);
            } else {
                // Seen since it was listed: list it again as of its last packet. Invariant
                // that ends the loop: a flow listed here is not idle, so it stops the loop
                // when it comes round to the head again.
                h.listed_ns = h.last_ns;
                self.touch(head);
            }
        }
    }

    /// Stores a new flow in `slot` (the last free slot, or one past the end) and links it as
    /// the most recent.
    fn place(&mut self, slot: u32, flow: Flow) -> u32 {
        if self.free.last() == Some(&slot) {
            self.free.pop();
            self.slots[slot as usize] = flow;
        } else {
            debug_assert_eq!(slot as usize, self.slots.len());
            self.slots.push(flow);
        }
        self.link_tail(slot);
        self.stats.flows_created += 1;
        slot
    }

    fn close(&mut self, slot: u32, cause: Cause, out: &mut Vec<FlowRecord>) {
        self.unlink(slot);
        let f = &self.slots[slot as usize];
        self.map.remove(&f.key);
        self.free.push(slot);
        out.push(f.record());
        self.stats.count_expiry(cause);
    }

    fn touch(&mut self, slot: u32) {
        if self.tail != slot {
            self.unlink(slot);
            self.link_tail(slot);
        }
    }

    fn link_tail(&mut self, slot: u32) {
        let old = self.tail;
        {
            let f = &mut self.slots[slot as usize];
            f.prev = old;
            f.next = NIL;
        }
        if old == NIL {
            self.head = slot;
        } else {
            self.slots[old as usize].next = slot;
        }
        self.tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let f = &self.slots[slot as usize];
            (f.prev, f.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// A raw IPv4 (link type 101) TCP or UDP packet of `total` bytes.
    fn ip4(src: u8, sport: u16, dport: u16, proto: u8, flags: u8, total: u16) -> Vec<u8> {
        let mut v = vec![0x45, 0x08];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, src, 10, 0, 0, 99]);
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        v[33] = flags;
        v.resize(total.max(40) as usize, 0);
        v
    }

    fn cfg(idle_s: u64, active_s: u64, max_flows: usize) -> MeterConfig {
        MeterConfig {
            idle_timeout_ms: idle_s * 1000,
            active_timeout_ms: active_s * 1000,
            max_flows,
            end_on_fin_rst: true,
        }
    }

    /// A flow as the tests compare it: (start ms, end ms, source port, packets, bytes).
    type Summary = (u64, u64, u16, u64, u64);

    /// Naive reference: flows from a list of (time s, packet) by scanning every flow per
    /// packet; the meter must agree on every record, whatever the order of emission.
    fn naive(c: &MeterConfig, pkts: &[(u64, Vec<u8>)]) -> Vec<Summary> {
        struct F {
            key: (u128, u128, u16, u16, u8),
            start: u64,
            last: u64,
            p: u64,
            b: u64,
        }
        let mut open: Vec<F> = Vec::new();
        let mut done = Vec::new();
        let emit = |f: F, d: &mut Vec<_>| {
            d.push((f.start / 1_000_000, f.last / 1_000_000, f.key.2, f.p, f.b))
        };
        for (t, frame) in pkts {
            let t = t * S;
            let i = packet::parse(101, frame).unwrap();
            let mut k = 0;
            while k < open.len() {
                if t - open[k].last > c.idle_timeout_ms * 1_000_000 {
                    emit(open.remove(k), &mut done);
                } else {
                    k += 1;
                }
            }
            let key = (i.src.0, i.dst.0, i.src_port, i.dst_port, i.proto);
            if let Some(k) = open.iter().position(|f| f.key == key)
                && t - open[k].start >= c.active_timeout_ms * 1_000_000
            {
                emit(open.remove(k), &mut done);
            }
            let k = match open.iter().position(|f| f.key == key) {
                Some(k) => k,
                None => {
                    open.push(F {
                        key,
                        start: t,
                        last: t,
                        p: 0,
                        b: 0,
                    });
                    open.len() - 1
                }
            };
            open[k].p += 1;
            open[k].b += i.ip_len as u64;
            open[k].last = t;
            if i.proto == 6 && i.tcp_flags & 5 != 0 {
                emit(open.remove(k), &mut done);
            }
        }
        for f in open {
            emit(f, &mut done);
        }
        done.sort();
        done
    }

    fn run(c: &MeterConfig, pkts: &[(u64, Vec<u8>)]) -> (Vec<Summary>, MeterStats) {
        let mut m = Meter::new(c.clone());
        let mut out = Vec::new();
        for (t, f) in pkts {
            m.push(t * S, 101, f, &mut out);
        }
        m.finish(&mut out);
        let mut got: Vec<_> = out
            .iter()
            .map(|r| (r.time_start, r.time_end, r.src_port, r.packets, r.bytes))
            .collect();
        got.sort();
        (got, m.stats().clone())
    }

    #[test]
    fn timeouts_and_fin_rst_cut_flows() {
        // (name, config, packets (time s, src, sport, flags), expected flows, stats check)
        let udp = |t: u64, sport: u16| (t, ip4(1, sport, 53, 17, 0, 60));
        let tcp = |t: u64, flags: u8| (t, ip4(2, 4000, 80, 6, flags, 40));
        type Case = (
            &'static str,
            MeterConfig,
            Vec<(u64, Vec<u8>)>,
            usize,
            fn(&MeterStats) -> bool,
        );
        let cases: Vec<Case> = vec![
            (
                "one flow",
                cfg(15, 1800, 100),
                vec![udp(0, 1), udp(10, 1), udp(20, 1)],
                1,
                |s| s.expired_end == 1,
            ),
            (
                "idle gap splits",
                cfg(15, 1800, 100),
                vec![udp(0, 1), udp(16, 1)],
                2,
                |s| s.expired_idle == 1,
            ),
            (
                "exactly idle does not",
                cfg(15, 1800, 100),
                vec![udp(0, 1), udp(15, 1)],
                1,
                |s| s.expired_idle == 0,
            ),
            (
                "active cuts",
                cfg(15, 30, 100),
                (0..7).map(|i| udp(i * 10, 1)).collect(),
                3,
                |s| s.expired_active == 2,
            ),
            (
                "fin ends, ack starts anew",
                cfg(15, 1800, 100),
                vec![tcp(0, 0x02), tcp(1, 0x11), tcp(2, 0x10)],
                2,
                |s| s.expired_fin_rst == 1,
            ),
            (
                "rst ends",
                cfg(15, 1800, 100),
                vec![tcp(0, 0x02), tcp(1, 0x04)],
                1,
                |s| s.expired_fin_rst == 1 && s.expired_end == 0,
            ),
            (
                "memory bound",
                cfg(15, 1800, 2),
                (0..5).map(|i| udp(i, i as u16)).collect(),
                5,
                |s| s.expired_memory == 3,
            ),
        ];
        for (name, c, pkts, n, check) in cases {
            let (got, stats) = run(&c, &pkts);
            assert_eq!(got.len(), n, "{name}: {got:?}");
            assert!(check(&stats), "{name}: {stats:?}");
            assert_eq!(stats.flows_created, stats.flows_expired(), "{name}");
            assert_eq!(stats.ipv4_packets, pkts.len() as u64, "{name}");
            if c.max_flows >= 100 {
                assert_eq!(got, naive(&c, &pkts), "{name}");
            }
        }
    }

    #[test]
    fn the_meter_agrees_with_a_naive_reference_on_random_traffic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for c in [
            cfg(5, 20, 1_000_000),
            cfg(30, 60, 1_000_000),
            cfg(1, 3, 1_000_000),
        ] {
            let mut t = 0;
            let mut pkts = Vec::new();
            for _ in 0..3000 {
                t += rnd(3);
                let proto = if rnd(2) == 0 { 6 } else { 17 };
                let flags = if proto == 6 && rnd(20) == 0 {
                    0x01
                } else {
                    0x10
                };
                let total = 40 + rnd(1400) as u16;
                pkts.push((t, ip4(rnd(4) as u8, rnd(6) as u16, 80, proto, flags, total)));
            }
            let (got, stats) = run(&c, &pkts);
            assert_eq!(got, naive(&c, &pkts), "{c:?}");
            let bytes: u64 = got.iter().map(|g| g.4).sum();
            assert_eq!(bytes, stats.ipv4_bytes);
        }
    }

    #[test]
    fn records_carry_the_flow_fields() {
        let mut m = Meter::new(MeterConfig::default());
        let mut out = Vec::new();
        m.push(
            5 * S + 7_000_000,
            101,
            &ip4(3, 1234, 443, 6, 0x02, 60),
            &mut out,
        );
        m.push(6 * S, 101, &ip4(3, 1234, 443, 6, 0x18, 1500), &mut out);
        // ARP on Ethernet, and a frame of an unknown link type.
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[8, 6]);
        arp.extend_from_slice(&[0; 28]);
        m.push(6 * S, 1, &arp, &mut out);
        m.push(6 * S, 147, &[0; 60], &mut out);
        assert!(out.is_empty());
        m.finish(&mut out);
        let r = &out[0];
        assert_eq!(r.src_addr.to_string(), "10.0.0.3");
        assert_eq!(r.dst_addr.to_string(), "10.0.0.99");
        assert_eq!((r.src_port, r.dst_port, r.proto), (1234, 443, 6));
        assert_eq!(
            (r.tcp_flags, r.tos, r.packets, r.bytes),
            (0x1a, 0x08, 2, 1560)
        );
        assert_eq!((r.time_start, r.time_end), (5_007, 6_000));
        assert_eq!((r.exporter, r.sampling_rate), (Addr::UNSPECIFIED_V4, 1));
        let s = m.stats();
        assert_eq!(
            (s.frames, s.non_ip_frames, s.parse_error_total()),
            (4, 1, 1)
        );
        assert_eq!(s.parse_errors, vec![("unsupported_linktype", 1)]);
    }
}
