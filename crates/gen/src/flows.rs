//! The record generator: background traffic with a diurnal rate plus the injected events,
//! merged into one stream of [`FlowRecord`]s in start-time order.
//!
//! ```text
//!  order statistics of N uniforms ──► Λ⁻¹ (diurnal) ──► slot times ──► sessions ──┐
//!                                                                  (1–2 records)  │ reorder heap
//!  event 0 stream ───────────────────────────────────────────────────────────────┤ (responses
//!  event 1 stream ───────────────────────────────────────────────────────────────┤  start one
//!  ...                                                                            ▼  RTT later)
//!                                                  k-way merge by (time_start, stream) ──► records
//! ```
//!
//! Invariants: records come out with non-decreasing `time_start`; memory is bounded by the
//! records started within one RTT (≤ 0.2 s) plus one head per event; the background yields
//! exactly `Scenario::flows` records and each event exactly [`Event::flow_count`].

use crate::rng::{Permutation, Rng, Zipf, mix64};
use crate::scenario::{Event, Scenario, prefix_hosts};
use crate::shape::Shape;
use flowdrill_model::{Addr, FlowRecord, Prefix, proto};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::f64::consts::PI;

/// Where a record comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Background,
    /// Index into `Scenario::events`.
    Event(usize),
}

/// A record together with the packet shape that produced it.
#[derive(Clone, Debug)]
pub(crate) struct GenFlow {
    pub rec: FlowRecord,
    pub origin: Origin,
    pub shape: Shape,
}

const DAY_MS: f64 = 86_400_000.0;
const TCP_SYN: u8 = 0x02;
const TCP_PSH_ACK: u8 = 0x18;
const TCP_FIN_ACK: u8 = 0x11;
const TCP_SYN_ACK: u8 = 0x12;
const TCP_RST_ACK: u8 = 0x14;
const TCP_ACK: u8 = 0x10;
/// Interface indexes: 1 faces the Internet, 2 the campus.
const IF_UPLINK: u32 = 1;
const IF_CAMPUS: u32 = 2;
/// Ephemeral port step: coprime with both ephemeral range sizes (28 232 and 16 384).
const PORT_STEP: u64 = 40_503;
/// Slots of the ephemeral-port counter table (128 KB of counters, whatever the scenario).
const PORT_SLOTS: usize = 1 << 15;
/// Longest gap between two packets of one flow (exporters' idle timeouts are 15–300 s).
const MAX_GAP_MS: u64 = 25_000;

/// The application mix: (application, share of background sessions, share that is inbound).
const APPS: &[(App, f64, f64)] = &[
    (App::Https, 40.0, 0.10),
    (App::Http, 7.0, 0.15),
    (App::Ssh, 2.0, 0.40),
    (App::Smtp, 1.5, 0.70),
    (App::Submission, 0.5, 0.50),
    (App::Imaps, 1.5, 0.30),
    (App::P2pTcp, 4.0, 0.50),
    (App::Dns, 20.0, 0.15),
    (App::Quic, 12.0, 0.05),
    (App::Ntp, 2.0, 0.10),
    (App::Stun, 1.5, 0.10),
    (App::P2pUdp, 5.0, 0.50),
    (App::Icmp, 3.0, 0.40),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum App {
    Https,
    Http,
    Ssh,
    Smtp,
    Submission,
    Imaps,
    P2pTcp,
    Dns,
    Quic,
    Ntp,
    Stun,
    P2pUdp,
    Icmp,
}

/// Which popularity law a local host is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Any campus host (Zipf s = 1).
    Host,
    /// A campus server taking inbound sessions (s = 1.3: a few popular ones).
    Server,
    /// A campus DNS resolver (s = 2: a handful).
    Resolver,
}

/// The stream of records of a scenario, in start-time order. Built by [`crate::records`].
#[derive(Debug)]
pub struct Records {
    background: Background,
    events: Vec<EventStream>,
    /// Next record of each source: index 0 is the background, 1.. the events.
    heads: Vec<Option<GenFlow>>,
}

impl Records {
    pub(crate) fn new(s: &Scenario) -> Records {
        let mut background = Background::new(s);
        let mut events: Vec<EventStream> = s
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| EventStream::new(s, i, e.clone()))
            .collect();
        let mut heads = vec![background.next()];
        heads.extend(events.iter_mut().map(EventStream::next));
        Records {
            background,
            events,
            heads,
        }
    }

    /// The next record with its packet shape.
    pub(crate) fn next_gen(&mut self) -> Option<GenFlow> {
        let mut best: Option<(usize, u64)> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some(g) = h
                && best.is_none_or(|(_, t)| g.rec.time_start < t)
            {
                best = Some((i, g.rec.time_start));
            }
        }
        let (i, _) = best?;
        let next = if i == 0 {
            self.background.next()
        } else {
            self.events[i - 1].next()
        };
        std::mem::replace(&mut self.heads[i], next)
    }

    /// The next record and where it comes from.
    pub fn next_tagged(&mut self) -> Option<(Origin, FlowRecord)> {
        self.next_gen().map(|g| (g.origin, g.rec))
    }
}

impl Iterator for Records {
    type Item = FlowRecord;
    fn next(&mut self) -> Option<FlowRecord> {
        self.next_gen().map(|g| g.rec)
    }
}

/// Record fields every generated record shares.
#[derive(Clone, Copy, Debug)]
struct Common {
    local_v4: Prefix,
    local_v6: Prefix,
    /// The local prefixes as (network, mask) words, for a branch-light membership test.
    v4_net: (u32, u32),
    v6_net: (u128, u128),
    local_as: u32,
    exporter: Addr,
    domain: u32,
}

impl Common {
    fn of(s: &Scenario) -> Common {
        let m4 = if s.local_v4.is_empty() {
            0
        } else {
            u32::MAX << (32 - s.local_v4.len() as u32)
        };
        let m6 = if s.local_v6.is_empty() {
            0
        } else {
            u128::MAX << (128 - s.local_v6.len() as u32)
        };
        Common {
            local_v4: s.local_v4,
            local_v6: s.local_v6,
            v4_net: (s.local_v4.addr().0 as u32 & m4, m4),
            v6_net: (s.local_v6.addr().0 & m6, m6),
            local_as: s.local_as,
            exporter: s.exporter,
            domain: s.domain,
        }
    }

    #[inline]
    fn is_local(&self, a: Addr) -> bool {
        match a.v4() {
            Some(v) => v & self.v4_net.1 == self.v4_net.0,
            None => a.0 & self.v6_net.1 == self.v6_net.0,
        }
    }

    /// A record from `src` to `dst`; interfaces, AS numbers and masks follow from which side
    /// is local.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        (start, end): (u64, u64),
        (src, dst): (Addr, Addr),
        (sport, dport): (u16, u16),
        proto: u8,
        tos: u8,
        packets: u64,
        bytes: u64,
        shape: Shape,
        origin: Origin,
    ) -> GenFlow {
        let src_local = self.is_local(src);
        let dst_local = self.is_local(dst);
        let side = |a: Addr, local: bool| -> (u32, u8) {
            if local {
                let p = if a.is_v4() {
                    self.local_v4
                } else {
                    self.local_v6
                };
                (self.local_as, p.len())
            } else {
                (remote_as(a), if a.is_v4() { 24 } else { 48 })
            }
        };
        let (src_as, src_mask) = side(src, src_local);
        let (dst_as, dst_mask) = side(dst, dst_local);
        let tcp_flags = if proto == proto::TCP {
            shape.flags_union(packets)
        } else {
            0
        };
        debug_assert!(
            shape.plan(packets, bytes).is_some(),
            "{shape:?} {packets} {bytes}"
        );
        GenFlow {
            rec: FlowRecord {
                time_start: start,
                time_end: end,
                src_addr: src,
                dst_addr: dst,
                src_port: sport,
                dst_port: dport,
                proto,
                tcp_flags,
                tos,
                packets,
                bytes,
                in_if: if src_local { IF_CAMPUS } else { IF_UPLINK },
                out_if: if dst_local { IF_CAMPUS } else { IF_UPLINK },
                src_as,
                dst_as,
                src_mask,
                dst_mask,
                next_hop: if src.is_v4() {
                    Addr::UNSPECIFIED_V4
                } else {
                    Addr(0)
                },
                exporter: self.exporter,
                domain: self.domain,
                sampling_rate: 1,
                continued: 0,
                extra: Vec::new(),
            },
            origin,
            shape,
        }
    }
}

/// A plausible origin AS for a remote address: stable per /16 (IPv4) or /32 (IPv6).
fn remote_as(a: Addr) -> u32 {
    let key = match a.v4() {
        Some(v) => (v >> 16) as u64,
        None => (a.0 >> 96) as u64,
    };
    // Private-use ASNs are the local side's; remote ones come from 1..=63_999.
    1 + (mix64(key ^ 0xa5) % 63_999) as u32
}

/// True for IPv4 space that does not appear as a public Internet host.
fn reserved_v4(v: u32) -> bool {
    let o = v >> 24;
    o == 0
        || o == 10
        || o == 127
        || o >= 224
        || (v & 0xffc0_0000) == 0x6440_0000 // 100.64/10
        || (v & 0xffff_0000) == 0xa9fe_0000 // 169.254/16
        || (v & 0xfff0_0000) == 0xac10_0000 // 172.16/12
        || (v & 0xffff_0000) == 0xc0a8_0000 // 192.168/16
}

/// Address of a host of a prefix by its index (index < prefix_hosts).
fn host_in(p: Prefix, index: u64) -> Addr {
    match p.addr().v4() {
        Some(v) => Addr::from_v4_u32(v.wrapping_add(index as u32)),
        None => Addr(p.addr().0.wrapping_add(index as u128)),
    }
}

/// The background session source: slot times from the diurnal rate, 1–2 records per session.
#[derive(Debug)]
struct Background {
    rng: Rng,
    c: Common,
    ipv6_share: f64,
    /// Slots (records) not yet handed to a session.
    slots_left: u64,
    /// 1 - (the last order statistic drawn), in (0, 1].
    one_minus: f64,
    clock: DiurnalClock,
    /// Time of the next slot, if any.
    next_slot: Option<u64>,
    /// Records waiting for their start time.
    pending: PendingQueue,
    app_cdf: Vec<(f64, App, f64)>,
    local_hosts_v4: u64,
    local_perm: Permutation,
    z: Pools,
    /// Ephemeral-port counters, one per slot of a client-address hash (see
    /// [`Background::ephemeral`]).
    port_counters: Vec<u32>,
}

/// The Zipf laws of the host pools (see [`Background::session`]).
#[derive(Debug)]
struct Pools {
    local_v4: Zipf,
    local_v4_servers: Zipf,
    local_v4_resolvers: Zipf,
    local_v6: Zipf,
    local_v6_servers: Zipf,
    local_v6_resolvers: Zipf,
    remote_clients: Zipf,
    ntp: Zipf,
    dns: Zipf,
    mail: Zipf,
    web: Zipf,
}

/// Records waiting for their start time: a heap of small keys over a slab, so that sifting
/// moves 24 bytes instead of a whole record. Invariant: every key's slot holds a record.
#[derive(Debug, Default)]
struct PendingQueue {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Vec<Option<GenFlow>>,
    free: Vec<u32>,
    seq: u64,
}

impl PendingQueue {
    fn push(&mut self, g: GenFlow) {
        let key = g.rec.time_start;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(g);
                i
            }
            None => {
                self.slab.push(Some(g));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((key, self.seq, slot)));
    }

    fn peek_start(&self) -> Option<u64> {
        self.heap.peek().map(|r| r.0.0)
    }

    fn pop(&mut self) -> Option<GenFlow> {
        let Reverse((_, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        self.slab[slot as usize].take()
    }
}

/// Maps a uniform order statistic x ∈ [0, 1] to a time whose density follows the diurnal
/// rate λ(t) ∝ 1 + a·cos(2π(t − peak)/24 h), by walking the normalised cumulative rate
/// Λ(t)/Λ(T) in one-minute segments. Invariant: successive `x` must not decrease.
#[derive(Debug)]
struct DiurnalClock {
    start_ms: u64,
    duration_ms: u64,
    a: f64,
    phase0: f64,
    total: f64,
    step: u64,
    seg: u64,
    lo: f64,
    hi: f64,
}

impl DiurnalClock {
    fn new(s: &Scenario) -> DiurnalClock {
        let a = (s.diurnal_ratio - 1.0) / (s.diurnal_ratio + 1.0);
        let peak_ms = s.peak_hour * 3_600_000.0;
        let phase0 = (s.start_ms as f64 - peak_ms).rem_euclid(DAY_MS);
        let mut c = DiurnalClock {
            start_ms: s.start_ms,
            duration_ms: s.duration_ms,
            a,
            phase0,
            total: 1.0,
            step: 60_000.min(s.duration_ms).max(1),
            seg: 0,
            lo: 0.0,
            hi: 0.0,
        };
        c.total = c.cumulative(s.duration_ms);
        c.hi = c.cumulative(c.step.min(c.duration_ms)) / c.total;
        c
    }

    /// ∫₀ᵗ (1 + a·cos(ω(phase0 + u))) du.
    fn cumulative(&self, t: u64) -> f64 {
        let w = 2.0 * PI / DAY_MS;
        let t = t as f64;
        t + self.a / w * ((w * (self.phase0 + t)).sin() - (w * self.phase0).sin())
    }

    fn time_of(&mut self, x: f64) -> u64 {
        loop {
            let seg_end = ((self.seg + 1) * self.step).min(self.duration_ms);
            if x <= self.hi || seg_end >= self.duration_ms {
                let seg_start = self.seg * self.step;
                let f = if self.hi > self.lo {
                    ((x - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let t = seg_start + (f * (seg_end - seg_start) as f64) as u64;
                return self.start_ms + t.min(self.duration_ms - 1);
            }
            self.seg += 1;
            self.lo = self.hi;
            let next_end = ((self.seg + 1) * self.step).min(self.duration_ms);
            self.hi = self.cumulative(next_end) / self.total;
        }
    }
}

impl Background {
    fn new(s: &Scenario) -> Background {
        let total: f64 = APPS.iter().map(|a| a.1).sum();
        let mut acc = 0.0;
        let app_cdf = APPS
            .iter()
            .map(|&(app, w, inbound)| {
                acc += w / total;
                (acc, app, inbound)
            })
            .collect();
        let local_hosts_v4 = prefix_hosts(s.local_v4) - 2;
        let mut b = Background {
            rng: Rng::new(s.seed, 0),
            c: Common::of(s),
            ipv6_share: s.ipv6_share,
            slots_left: s.flows,
            one_minus: 1.0,
            clock: DiurnalClock::new(s),
            next_slot: None,
            pending: PendingQueue::default(),
            app_cdf,
            local_hosts_v4,
            local_perm: Permutation::new(local_hosts_v4, s.seed ^ 0x10ca1),
            port_counters: vec![0; PORT_SLOTS],
            z: Pools {
                local_v4: Zipf::new(local_hosts_v4, 1.0),
                local_v4_servers: Zipf::new(local_hosts_v4, 1.3),
                local_v4_resolvers: Zipf::new(local_hosts_v4, 2.0),
                local_v6: Zipf::new(1 << 16, 1.0),
                local_v6_servers: Zipf::new(1 << 16, 1.3),
                local_v6_resolvers: Zipf::new(1 << 16, 2.0),
                remote_clients: Zipf::new(1 << 24, 0.9),
                ntp: Zipf::new(64, 1.05),
                dns: Zipf::new(1 << 18, 1.05),
                mail: Zipf::new(1 << 14, 1.05),
                web: Zipf::new(1 << 20, 1.05),
            },
        };
        b.next_slot = b.draw_slot();
        b
    }

    /// Draws the next order statistic of the `slots_left` remaining uniforms and maps it to
    /// a time (one `ln` and one `exp`).
    fn draw_slot(&mut self) -> Option<u64> {
        if self.slots_left == 0 {
            return None;
        }
        let x = self.rng.f64_open0().ln() / self.slots_left as f64;
        // exp(x) for x ≤ 0; the cubic series is exact to 1e-17 where |x| < 1e-5.
        let f = if x > -1e-5 {
            1.0 + x * (1.0 + x * (0.5 + x / 6.0))
        } else {
            x.exp()
        };
        self.one_minus *= f;
        self.slots_left -= 1;
        Some(self.clock.time_of(1.0 - self.one_minus))
    }

    fn push(&mut self, g: GenFlow) {
        self.pending.push(g);
    }

    fn next(&mut self) -> Option<GenFlow> {
        loop {
            match (self.pending.peek_start(), self.next_slot) {
                (Some(p), Some(t)) if p <= t => return self.pending.pop(),
                (Some(_), None) => return self.pending.pop(),
                (None, None) => return None,
                (_, Some(t)) => {
                    // A session may use this slot and the next one (request + response).
                    let two = self.slots_left >= 1;
                    let used = self.session(t, two);
                    self.next_slot = self.draw_slot();
                    if used == 2 {
                        self.next_slot = self.draw_slot();
                    }
                }
            }
        }
    }

    fn pick_app(&mut self) -> (App, f64) {
        let u = self.rng.f64();
        for &(c, app, inbound) in &self.app_cdf {
            if u < c {
                return (app, inbound);
            }
        }
        let last = self.app_cdf[self.app_cdf.len() - 1];
        (last.1, last.2)
    }

    /// A local host, Zipf-popular (rank 0 the busiest), scattered over the prefix.
    fn local_host(&mut self, v6: bool, role: Role, salt: u64) -> Addr {
        let z = match (v6, role) {
            (false, Role::Host) => self.z.local_v4,
            (false, Role::Server) => self.z.local_v4_servers,
            (false, Role::Resolver) => self.z.local_v4_resolvers,
            (true, Role::Host) => self.z.local_v6,
            (true, Role::Server) => self.z.local_v6_servers,
            (true, Role::Resolver) => self.z.local_v6_resolvers,
        };
        let rank = z.sample(&mut self.rng);
        if v6 {
            let p = self.c.local_v6;
            let sub_bits = 64 - p.len() as u32;
            let h = mix64(rank ^ salt);
            let subnet = if sub_bits == 0 {
                0
            } else {
                (h as u128 & ((1u128 << sub_bits) - 1)) << 64
            };
            let iid = mix64(h) as u128;
            Addr(p.addr().0 | subnet | iid)
        } else {
            let idx = self
                .local_perm
                .apply(mix64(rank ^ salt) % self.local_hosts_v4);
            host_in(self.c.local_v4, idx + 1)
        }
    }

    /// A remote host from a Zipf-popular pool of `pool` hosts named by `salt`.
    fn remote_host(&mut self, v6: bool, z: Zipf, salt: u64) -> Addr {
        let rank = z.sample(&mut self.rng);
        self.remote_by_key(v6, rank ^ salt.rotate_left(17))
    }

    /// A remote host from a hash key: public-looking, never in the local networks.
    fn remote_by_key(&self, v6: bool, key: u64) -> Addr {
        let mut h = mix64(key);
        if v6 {
            loop {
                let hi = (0x2000u128 | (h as u128 & 0x1fff)) << 112 | ((mix64(h) as u128) << 48);
                let a = Addr(hi | (mix64(h ^ 1) as u128 & 0xffff_ffff_ffff));
                if !self.c.is_local(a) {
                    return a;
                }
                h = mix64(h);
            }
        }
        loop {
            let v = h as u32;
            let a = Addr::from_v4_u32(v);
            if !reserved_v4(v) && !self.c.is_local(a) {
                return a;
            }
            h = mix64(h);
        }
    }

    /// The client's ephemeral port for this session: Linux or Windows range by host, stepped
    /// through by a counter of the client's hash slot. Invariant: a client reuses a port only
    /// after its slot has handed out a whole range (≥ 16 384 sessions of it and the few
    /// clients sharing its slot), so flow meters that never expire flows (softflowd `-r`)
    /// do not merge distinct sessions.
    fn ephemeral(&mut self, client: Addr) -> u16 {
        let h = mix64(client.0 as u64 ^ (client.0 >> 64) as u64);
        let (lo, size) = if h & 1 == 0 {
            (32_768u64, 28_232u64)
        } else {
            (49_152, 16_384)
        };
        let slot = (h >> 40) as usize % PORT_SLOTS;
        let c = self.port_counters[slot] as u64;
        self.port_counters[slot] = self.port_counters[slot].wrapping_add(1);
        (lo + (c.wrapping_mul(PORT_STEP).wrapping_add(h >> 8)) % size) as u16
    }

    /// One session at time `t`: pushes its records and returns how many (1 or 2; 2 only
    /// when `two`).
    fn session(&mut self, t: u64, two: bool) -> u64 {
        let (app, inbound_share) = self.pick_app();
        let v6 = self.rng.chance(self.ipv6_share);
        let inbound = self.rng.chance(inbound_share);
        let (server_port, pool_salt) = match app {
            App::Https | App::Quic => (443, 1),
            App::Http => (80, 2),
            App::Ssh => (22, 3),
            App::Smtp => (25, 4),
            App::Submission => (587, 5),
            App::Imaps => (993, 6),
            App::Dns => (53, 7),
            App::Ntp => (123, 8),
            App::Stun => (3478, 9),
            App::P2pTcp | App::P2pUdp => (self.rng.range(1024, 65_535) as u16, 10),
            App::Icmp => (0, 11),
        };
        // Who talks to whom.
        let (client, server) = if app == App::Icmp {
            // Pings and unreachables reach all over the address space: uniform remote side.
            let local = self.local_host(v6, Role::Host, 0);
            let key = self.rng.next_u64();
            let remote = self.remote_by_key(v6, key);
            if inbound {
                (remote, local)
            } else {
                (local, remote)
            }
        } else if inbound {
            let client = self.remote_host(v6, self.z.remote_clients, 100 + pool_salt);
            // A few popular local servers per application.
            let server = self.local_host(v6, Role::Server, 0x5e7 + pool_salt);
            (client, server)
        } else {
            let client = match app {
                // Outbound DNS comes from the campus resolvers.
                App::Dns => self.local_host(v6, Role::Resolver, 0xd25),
                _ => self.local_host(v6, Role::Host, 0),
            };
            let pool = match app {
                App::Ntp => self.z.ntp,
                App::Dns => self.z.dns,
                App::Smtp | App::Submission | App::Imaps => self.z.mail,
                _ => self.z.web,
            };
            (client, self.remote_host(v6, pool, pool_salt))
        };
        let cport = if matches!(app, App::Icmp) {
            0
        } else {
            self.ephemeral(client)
        };
        let ip = if v6 { 40u16 } else { 20 };
        let ends = (client, server);
        match app {
            App::Https
            | App::Http
            | App::Ssh
            | App::Smtp
            | App::Submission
            | App::Imaps
            | App::P2pTcp => {
                let (alpha, cap, req) = match app {
                    App::Https => (1.05, 2e6, (300, 2_500)),
                    App::Http => (1.1, 1e6, (200, 900)),
                    App::Ssh => (1.2, 1e6, (500, 20_000)),
                    App::Smtp | App::Submission => (1.3, 1e4, (2_000, 60_000)),
                    App::Imaps => (1.2, 1e5, (300, 3_000)),
                    _ => (1.1, 1e6, (200, 50_000)),
                };
                self.tcp(t, two, ip, ends, (cport, server_port), alpha, cap, req)
            }
            App::Dns => {
                let n = if self.rng.chance(0.1) { 2 } else { 1 };
                let q = ip + 8 + self.rng.range(17, 60) as u16;
                let r = if self.rng.chance(0.05) {
                    ip + 8 + self.rng.range(500, 1232) as u16
                } else {
                    ip + 8 + self.rng.range(50, 480) as u16
                };
                let rtt = self.rng.log_uniform(1.0, 150.0) as u64 + 1;
                let spread = if n == 2 { self.rng.range(0, 5) } else { 0 };
                self.udp_pair(
                    t,
                    two,
                    ends,
                    (cport, 53),
                    n,
                    (q, q),
                    n,
                    (r, r),
                    rtt,
                    spread,
                    0,
                )
            }
            App::Ntp => {
                let sz = ip + 8 + 48;
                let rtt = self.rng.log_uniform(1.0, 150.0) as u64 + 1;
                self.udp_pair(
                    t,
                    two,
                    ends,
                    (cport, 123),
                    1,
                    (sz, sz),
                    1,
                    (sz, sz),
                    rtt,
                    0,
                    0,
                )
            }
            App::Stun => {
                let rtt = self.rng.log_uniform(5.0, 200.0) as u64 + 1;
                if self.rng.chance(0.2) {
                    // A relayed media stream: tens of packets per second for up to minutes.
                    let n = self.rng.range(50, 3_000);
                    let sz = ip + 8 + self.rng.range(100, 1_100) as u16;
                    let m = (n as f64 * self.rng.f64()) as u64 + 1;
                    let sz2 = ip + 8 + self.rng.range(100, 1_100) as u16;
                    let dur = n * self.rng.range(20, 40);
                    self.udp_pair(
                        t,
                        two,
                        ends,
                        (cport, 3478),
                        n,
                        (sz, sz),
                        m,
                        (sz2, sz2),
                        rtt,
                        dur,
                        0xb8,
                    )
                } else {
                    let n = self.rng.range(1, 4);
                    let a = ip + 8 + self.rng.range(20, 120) as u16;
                    let b = ip + 8 + self.rng.range(20, 120) as u16;
                    self.udp_pair(
                        t,
                        two,
                        ends,
                        (cport, 3478),
                        n,
                        (a, a),
                        n,
                        (b, b),
                        rtt,
                        n * 50,
                        0,
                    )
                }
            }
            App::Quic => self.quic(t, two, ip, ends, cport),
            App::P2pUdp => {
                let n = self.rng.pareto(1.3, 1e4) as u64;
                let small = ip + 8 + self.rng.range(40, 200) as u16;
                let m = if self.rng.chance(0.5) && two {
                    (n as f64 * self.rng.f64()) as u64 + 1
                } else {
                    0
                };
                let rtt = self.rng.log_uniform(10.0, 300.0) as u64 + 1;
                let gap = self.rng.log_uniform(1.0, 2_000.0);
                let dur = ((n.max(m) - 1) as f64 * gap) as u64;
                let max = 1400 + ip + 8;
                let req = self.udp_flow(t, ends, (cport, server_port), n, small, max, dur);
                self.push(req);
                if m > 0 {
                    let resp = self.udp_flow(
                        t + rtt,
                        (server, client),
                        (server_port, cport),
                        m,
                        small,
                        max,
                        dur,
                    );
                    self.push(resp);
                    2
                } else {
                    1
                }
            }
            App::Icmp => self.icmp(t, two, ip, ends, v6),
        }
    }

    /// A UDP flow of `n` packets of random payload sizes between `small` and `max`.
    #[allow(clippy::too_many_arguments)]
    fn udp_flow(
        &mut self,
        t: u64,
        (src, dst): (Addr, Addr),
        ports: (u16, u16),
        n: u64,
        small: u16,
        max: u16,
        dur: u64,
    ) -> GenFlow {
        let shape = Shape {
            first: small,
            small,
            max,
            ..Shape::default()
        };
        let room = (n - 1) * (max - small) as u64;
        let bytes = small as u64 * n + (room as f64 * self.rng.f64() * 0.5) as u64;
        let dur = dur.min((n - 1) * MAX_GAP_MS);
        self.c.record(
            (t, t + dur),
            (src, dst),
            ports,
            proto::UDP,
            0,
            n,
            bytes,
            shape,
            Origin::Background,
        )
    }

    /// A request/response UDP exchange with fixed packet sizes per direction.
    #[allow(clippy::too_many_arguments)]
    fn udp_pair(
        &mut self,
        t: u64,
        two: bool,
        (client, server): (Addr, Addr),
        (cport, sport): (u16, u16),
        n: u64,
        (q1, q): (u16, u16),
        m: u64,
        (r1, r): (u16, u16),
        rtt: u64,
        dur: u64,
        tos: u8,
    ) -> u64 {
        let dur_n = dur.min(n.saturating_sub(1) * MAX_GAP_MS);
        let shape = Shape {
            first: q1,
            small: q,
            max: q.max(q1),
            ..Shape::default()
        };
        let bytes = q1 as u64 + (n - 1) * q as u64;
        let req = self.c.record(
            (t, t + dur_n),
            (client, server),
            (cport, sport),
            proto::UDP,
            tos,
            n,
            bytes,
            shape,
            Origin::Background,
        );
        self.push(req);
        if !two || self.rng.chance(0.02) {
            return 1; // unanswered
        }
        let dur_m = dur.min(m.saturating_sub(1) * MAX_GAP_MS);
        let shape = Shape {
            first: r1,
            small: r,
            max: r.max(r1),
            ..Shape::default()
        };
        let bytes = r1 as u64 + (m - 1) * r as u64;
        let resp = self.c.record(
            (t + rtt, t + rtt + dur_m),
            (server, client),
            (sport, cport),
            proto::UDP,
            tos,
            m,
            bytes,
            shape,
            Origin::Background,
        );
        self.push(resp);
        2
    }

    /// A TCP connection: the client's SYN/ACK stream and the server's SYN-ACK/data stream.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: u64,
        two: bool,
        ip: u16,
        (client, server): (Addr, Addr),
        (cport, sport): (u16, u16),
        alpha: f64,
        cap: f64,
        (req_lo, req_hi): (u64, u64),
    ) -> u64 {
        let hdr = ip + 20;
        let syn = hdr + if self.rng.chance(0.8) { 20 } else { 12 };
        if !two || self.rng.chance(0.03) {
            // Nobody answers: the SYN and its retransmissions 1 s and 3 s later.
            let n = self.rng.range(1, 3);
            let end = t + [0, 1_000, 3_000][n as usize - 1];
            let shape = Shape {
                first: syn,
                small: syn,
                max: syn,
                first_flags: TCP_SYN,
                mid_flags: TCP_SYN,
                last_flags: TCP_SYN,
            };
            let g = self.c.record(
                (t, end),
                (client, server),
                (cport, sport),
                proto::TCP,
                0,
                n,
                n * syn as u64,
                shape,
                Origin::Background,
            );
            self.push(g);
            return 1;
        }
        let small = hdr + if self.rng.chance(0.7) { 12 } else { 0 };
        let room = (1500 - small) as u64;
        let n_s = 1 + self.rng.pareto(alpha, cap) as u64;
        let data = if n_s == 2 {
            self.rng.range(0, 300)
        } else {
            ((n_s - 1) as f64 * room as f64 * (0.55 + 0.43 * self.rng.f64())) as u64
        };
        let bytes_s = syn as u64 + (n_s - 1) * small as u64 + data;
        let n_c = 2 + n_s / 2 + self.rng.below(2);
        let req = self.rng.range(req_lo, req_hi).min((n_c - 1) * room);
        let bytes_c = syn as u64 + (n_c - 1) * small as u64 + req;
        let rtt = self.rng.log_uniform(0.5, 200.0) as u64 + 1;
        let gap = self.rng.log_uniform(0.02, 5.0);
        let think = if self.rng.chance(0.3) {
            self.rng.log_uniform(100.0, 20_000.0)
        } else {
            0.0
        };
        let dur_s = (((n_s - 1) as f64 * gap + think) as u64).min((n_s - 1) * MAX_GAP_MS);
        let s_start = t + rtt;
        let s_end = s_start + dur_s;
        let c_end = (s_end + rtt / 2 + 1).min(t + (n_c - 1) * MAX_GAP_MS);
        let c_last = if self.rng.chance(0.05) {
            TCP_RST_ACK
        } else {
            TCP_FIN_ACK
        };
        let cshape = Shape {
            first: syn,
            small,
            max: 1500,
            first_flags: TCP_SYN,
            mid_flags: TCP_PSH_ACK,
            last_flags: c_last,
        };
        let sshape = Shape {
            first: syn,
            small,
            max: 1500,
            first_flags: TCP_SYN_ACK,
            mid_flags: TCP_PSH_ACK,
            last_flags: TCP_FIN_ACK,
        };
        let c = self.c.record(
            (t, c_end),
            (client, server),
            (cport, sport),
            proto::TCP,
            0,
            n_c,
            bytes_c,
            cshape,
            Origin::Background,
        );
        let s = self.c.record(
            (s_start, s_end),
            (server, client),
            (sport, cport),
            proto::TCP,
            0,
            n_s,
            bytes_s,
            sshape,
            Origin::Background,
        );
        self.push(c);
        self.push(s);
        2
    }

    /// QUIC over UDP 443: padded Initial packets, then ACK-sized client packets and
    /// ~1280-byte server packets.
    fn quic(
        &mut self,
        t: u64,
        two: bool,
        ip: u16,
        (client, server): (Addr, Addr),
        cport: u16,
    ) -> u64 {
        let initial = ip + 8 + self.rng.range(1200, 1252) as u16;
        let small = ip + 8 + self.rng.range(25, 45) as u16;
        let max = ip + 8 + 1252;
        let n_s = 1 + self.rng.pareto(1.1, 5e5) as u64;
        let n_c = 1 + n_s / 4 + self.rng.below(2);
        let c_extra = self
            .rng
            .range(0, 2_000)
            .min((n_c - 1) * (max - small) as u64);
        let rtt = self.rng.log_uniform(1.0, 200.0) as u64 + 1;
        let gap = self.rng.log_uniform(0.02, 5.0);
        let dur = (((n_s - 1) as f64 * gap) as u64).min((n_s - 1) * MAX_GAP_MS);
        let cshape = Shape {
            first: initial,
            small,
            max,
            ..Shape::default()
        };
        let c_dur = (dur + rtt).min((n_c - 1) * MAX_GAP_MS);
        let c = self.c.record(
            (t, t + c_dur),
            (client, server),
            (cport, 443),
            proto::UDP,
            0,
            n_c,
            initial as u64 + (n_c - 1) * small as u64 + c_extra,
            cshape,
            Origin::Background,
        );
        self.push(c);
        if !two {
            return 1;
        }
        let data = ((n_s - 1) as f64 * (max - small) as f64 * (0.6 + 0.38 * self.rng.f64())) as u64;
        let sshape = Shape {
            first: initial,
            small,
            max,
            ..Shape::default()
        };
        let s = self.c.record(
            (t + rtt, t + rtt + dur),
            (server, client),
            (443, cport),
            proto::UDP,
            0,
            n_s,
            initial as u64 + (n_s - 1) * small as u64 + data,
            sshape,
            Origin::Background,
        );
        self.push(s);
        2
    }

    /// ICMP: echo request/reply trains (1 s apart) or a single destination unreachable.
    fn icmp(&mut self, t: u64, two: bool, ip: u16, (a, b): (Addr, Addr), v6: bool) -> u64 {
        let p = if v6 { proto::ICMP6 } else { proto::ICMP };
        let (echo, reply, unreach) = if v6 {
            (128u16, 129u16, (1u16, 4u16))
        } else {
            (8, 0, (3, 3))
        };
        if self.rng.chance(0.7) {
            let n = self.rng.range(1, 10);
            let sz = ip + 8 + 56;
            let shape = Shape {
                first: sz,
                small: sz,
                max: sz,
                ..Shape::default()
            };
            let dur = (n - 1) * 1_000;
            let g = self.c.record(
                (t, t + dur),
                (a, b),
                (0, echo << 8),
                p,
                0,
                n,
                n * sz as u64,
                shape,
                Origin::Background,
            );
            self.push(g);
            if two && self.rng.chance(0.8) {
                let rtt = self.rng.log_uniform(1.0, 200.0) as u64 + 1;
                let g = self.c.record(
                    (t + rtt, t + rtt + dur),
                    (b, a),
                    (0, reply << 8),
                    p,
                    0,
                    n,
                    n * sz as u64,
                    shape,
                    Origin::Background,
                );
                self.push(g);
                return 2;
            }
            1
        } else {
            let sz = ip + 8 + self.rng.range(28, 548) as u16;
            let shape = Shape {
                first: sz,
                small: sz,
                max: sz,
                ..Shape::default()
            };
            let g = self.c.record(
                (t, t),
                (a, b),
                (0, unreach.0 << 8 | unreach.1),
                p,
                0,
                1,
                sz as u64,
                shape,
                Origin::Background,
            );
            self.push(g);
            1
        }
    }
}

/// The records of one event, generated lazily in start order.
#[derive(Debug)]
struct EventStream {
    rng: Rng,
    c: Common,
    origin: Origin,
    event: Event,
    /// Records produced so far.
    i: u64,
    perm: Permutation,
    /// Per-event constants: scanner source port, SYN size.
    port: u16,
    syn: u16,
}

impl EventStream {
    fn new(s: &Scenario, index: usize, event: Event) -> EventStream {
        let mut rng = Rng::new(s.seed, 1 + index as u64);
        let domain = match &event {
            Event::SynScan { targets, ports, .. } => {
                prefix_hosts(*targets) * ports.clone().count() as u64
            }
            _ => 1u64 << 32,
        };
        let perm = Permutation::new(domain, rng.next_u64());
        let port = rng.range(1024, 65_535) as u16;
        let syn = if rng.chance(0.5) { 40 } else { 44 };
        EventStream {
            rng,
            c: Common::of(s),
            origin: Origin::Event(index),
            event,
            i: 0,
            perm,
            port,
            syn,
        }
    }

    fn next(&mut self) -> Option<GenFlow> {
        let i = self.i;
        if i >= self.event.flow_count() {
            return None;
        }
        self.i += 1;
        let origin = self.origin;
        let syn_shape = |sz: u16| Shape {
            first: sz,
            small: sz,
            max: sz,
            first_flags: TCP_SYN,
            mid_flags: TCP_SYN,
            last_flags: TCP_SYN,
        };
        Some(match self.event.clone() {
            Event::SynScan {
                at_ms,
                source,
                targets,
                ports,
                flows: _,
                rate_per_s,
            } => {
                let t = at_ms + i * 1000 / rate_per_s;
                let nports = ports.clone().count() as u64;
                let pair = self.perm.apply(i);
                let dst = host_in(targets, pair / nports);
                let dport = *ports.start() + (pair % nports) as u16;
                let sz = self.syn + if source.is_v4() { 0 } else { 20 };
                self.c.record(
                    (t, t),
                    (source, dst),
                    (self.port, dport),
                    proto::TCP,
                    0,
                    1,
                    sz as u64,
                    syn_shape(sz),
                    origin,
                )
            }
            Event::SpoofedFlood {
                at_ms,
                duration_ms,
                victim,
                port,
                flows,
            } => {
                let t = at_ms + i * duration_ms / flows;
                let p = self.perm.apply(i);
                let src = spoofed(victim.is_v4(), p, self.rng.next_u64());
                let sport = self.rng.range(1024, 65_535) as u16;
                let sz = self.syn + if victim.is_v4() { 0 } else { 20 };
                self.c.record(
                    (t, t),
                    (src, victim),
                    (sport, port),
                    proto::TCP,
                    0,
                    1,
                    sz as u64,
                    syn_shape(sz),
                    origin,
                )
            }
            Event::Dragonfly {
                at_ms,
                duration_ms,
                targets,
                flows,
            } => {
                let t = at_ms + i * duration_ms / flows;
                let p = self.perm.apply(i);
                let v4 = targets.is_v4();
                let src = spoofed(v4, p, self.rng.next_u64());
                let dst = host_in(targets, self.rng.below(prefix_hosts(targets)));
                let sport = self.rng.range(1024, 65_535) as u16;
                let dport = self.rng.range(1024, 65_535) as u16;
                let ip = if v4 { 20 } else { 40 };
                let n = self.rng.range(1, 2);
                let a = ip + 8 + self.rng.range(20, 1400) as u16;
                let b = if n == 2 {
                    ip + 8 + self.rng.range(20, 1400) as u16
                } else {
                    a
                };
                let end = if n == 2 {
                    t + self.rng.range(0, 2_000)
                } else {
                    t
                };
                let shape = Shape {
                    first: a,
                    small: b,
                    max: a.max(b),
                    ..Shape::default()
                };
                let bytes = a as u64 + if n == 2 { b as u64 } else { 0 };
                self.c.record(
                    (t, end),
                    (src, dst),
                    (sport, dport),
                    proto::UDP,
                    0,
                    n,
                    bytes,
                    shape,
                    origin,
                )
            }
            Event::Elephant {
                at_ms,
                duration_ms,
                src,
                dst,
                port,
                bytes,
            } => {
                let hdr: u16 = if src.is_v4() { 40 } else { 60 };
                let syn = hdr + 20;
                let small = hdr + 12;
                // Fewest packets that can carry `bytes` in full-size segments.
                let n = 1 + (bytes - syn as u64).div_ceil(1500);
                let data = Shape {
                    first: syn,
                    small,
                    max: 1500,
                    first_flags: TCP_SYN,
                    mid_flags: TCP_PSH_ACK,
                    last_flags: TCP_FIN_ACK,
                };
                if i == 0 {
                    self.c.record(
                        (at_ms, at_ms + duration_ms),
                        (src, dst),
                        (self.port, port),
                        proto::TCP,
                        0x08,
                        n,
                        bytes,
                        data,
                        origin,
                    )
                } else {
                    let m = 2 + (n - 1) / 2;
                    let acks = Shape {
                        first: syn,
                        small,
                        max: small,
                        first_flags: TCP_SYN_ACK,
                        mid_flags: TCP_ACK,
                        last_flags: TCP_FIN_ACK,
                    };
                    let b = syn as u64 + (m - 1) * small as u64;
                    self.c.record(
                        (at_ms + 1, at_ms + duration_ms + 1),
                        (dst, src),
                        (port, self.port),
                        proto::TCP,
                        0x08,
                        m,
                        b,
                        acks,
                        origin,
                    )
                }
            }
        })
    }
}

/// A distinct spoofed source for permuted index `p` (< 2^32): the index itself for IPv4
/// (any address, as flooders send), inside 2000::/3 for IPv6 with the index in the low bits.
fn spoofed(v4: bool, p: u64, noise: u64) -> Addr {
    if v4 {
        Addr::from_v4_u32(p as u32)
    } else {
        Addr((0x2000u128 << 112) | ((noise as u128 & 0x1fff_ffff_ffff) << 64) | p as u128)
    }
}
