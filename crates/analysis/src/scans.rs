//! Scans and floods: per-host evidence of fan-out, fan-in, tiny flows and SYN-only flows, and
//! hosts ranked by it.
//!
//! This module owns the evidence and the ranking. Per **source**: distinct destinations
//! (horizontal scan), distinct destination ports (vertical scan), flows, flows of 1–2 packets,
//! SYN-only TCP flows (SYN set, ACK not: a handshake never completed). Per **destination**:
//! distinct sources (fan-in: DDoS), and the same flow counts (SYN flood).
//!
//! Ranking: a source's score is `max(distinct destinations, distinct ports)`; a destination's is
//! `max(distinct sources, SYN-only flows)`; ties by SYN-only flows, then flows, descending, then
//! by address ascending. Distinct counts are exact (sorted, deduplicated pairs).

use crate::{AnalysisError, FastMap, Weights, check_len, fast_map};
use flowdrill_model::{Addr, proto};

/// Ports below this are a server's; from here on, a client's ephemeral ports.
const FIRST_EPHEMERAL: u16 = 1024;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// True for a TCP flow that sent SYN but never ACK.
pub fn syn_only(protocol: u8, flags: u8) -> bool {
    protocol == proto::TCP && flags & SYN != 0 && flags & ACK == 0
}

/// The columns the scan analysis reads; all of one length.
#[derive(Clone, Copy, Debug)]
pub struct ScanInput<'a> {
    pub src: &'a [u128],
    pub dst: &'a [u128],
    /// Source ports: a flow from a well-known port to an ephemeral one is a server's reply,
    /// which says nothing about the server's own fan-out. Empty: every flow counts.
    pub src_port: &'a [u16],
    pub dst_port: &'a [u16],
    pub proto: &'a [u8],
    pub tcp_flags: &'a [u8],
    /// Packets of each flow (decides "1–2 packet flow").
    pub packets: &'a [u64],
    /// Flow weights (1 per record for unsampled flows).
    pub flows: Weights<'a>,
}

/// The evidence against one host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostEvidence {
    pub host: Addr,
    /// Distinct peers: destinations of a source, sources of a destination.
    pub peers: u64,
    /// Distinct destination ports (of a source's flows, or of the flows to a destination).
    pub ports: u64,
    pub flows: f64,
    /// Flows of 1 or 2 packets.
    pub small_flows: f64,
    pub syn_only_flows: f64,
    /// What the host is ranked by (see the module doc).
    pub score: f64,
}

impl HostEvidence {
    /// Share of the host's flows that have 1–2 packets.
    pub fn small_share(&self) -> f64 {
        if self.flows > 0.0 {
            self.small_flows / self.flows
        } else {
            0.0
        }
    }
}

/// Both ranked lists.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanReport {
    /// Sources by fan-out (scanners).
    pub sources: Vec<HostEvidence>,
    /// Destinations by fan-in and SYN-only flows (flood victims).
    pub destinations: Vec<HostEvidence>,
}

/// Distinct `b` per `a` over sorted, deduplicated pairs.
fn distinct_per<A: Ord + Copy + std::hash::Hash, B: Ord + Copy>(
    mut pairs: Vec<(A, B)>,
) -> FastMap<A, u64> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut m: FastMap<A, u64> = fast_map(pairs.len() / 4);
    for (a, _) in pairs {
        *m.entry(a).or_default() += 1;
    }
    m
}

#[derive(Clone, Copy, Default)]
struct Counts {
    flows: f64,
    small: f64,
    syn: f64,
}

fn ranked(
    counts: FastMap<u128, Counts>,
    peers: &FastMap<u128, u64>,
    ports: &FastMap<u128, u64>,
    score: impl Fn(u64, u64, &Counts) -> f64,
    limit: usize,
) -> Vec<HostEvidence> {
    let mut v: Vec<HostEvidence> = counts
        .into_iter()
        .map(|(h, c)| {
            let (p, q) = (
                peers.get(&h).copied().unwrap_or(0),
                ports.get(&h).copied().unwrap_or(0),
            );
            HostEvidence {
                host: Addr(h),
                peers: p,
                ports: q,
                flows: c.flows,
                small_flows: c.small,
                syn_only_flows: c.syn,
                score: score(p, q, &c),
            }
        })
        .collect();
    v.sort_unstable_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.syn_only_flows.total_cmp(&a.syn_only_flows))
            .then(b.flows.total_cmp(&a.flows))
            .then(a.host.cmp(&b.host))
    });
    v.truncate(limit);
    v
}

/// The `limit` highest-ranked sources and destinations.
pub fn scans(input: ScanInput<'_>, limit: usize) -> Result<ScanReport, AnalysisError> {
    let n = input.src.len();
    check_len("dst", n, input.dst.len())?;
    check_len("dst_port", n, input.dst_port.len())?;
    check_len("proto", n, input.proto.len())?;
    check_len("tcp_flags", n, input.tcp_flags.len())?;
    check_len("packets", n, input.packets.len())?;
    input.flows.check(n)?;
    let mut by_src: FastMap<u128, Counts> = fast_map(1024);
    let mut by_dst: FastMap<u128, Counts> = fast_map(1024);
    for i in 0..n {
        let w = input.flows.weight[i];
        let small = if input.packets[i] <= 2 { w } else { 0.0 };
        let syn = if syn_only(input.proto[i], input.tcp_flags[i]) {
            w
        } else {
            0.0
        };
        for (m, h) in [(&mut by_src, input.src[i]), (&mut by_dst, input.dst[i])] {
            let c = m.entry(h).or_default();
            c.flows += w;
            c.small += small;
            c.syn += syn;
        }
    }
    if !input.src_port.is_empty() {
        check_len("src_port", n, input.src_port.len())?;
    }
    // Fan-out counts what a host initiates: a server answering many clients (from port 80 to
    // their ephemeral ports) is not scanning them.
    let initiated = |i: usize| -> bool {
        let Some(&sp) = input.src_port.get(i) else {
            return true;
        };
        !(proto::has_ports(input.proto[i])
            && sp < FIRST_EPHEMERAL
            && input.dst_port[i] >= FIRST_EPHEMERAL)
    };
    let pairs =
        |a: &[u128], b: &[u128]| a.iter().copied().zip(b.iter().copied()).collect::<Vec<_>>();
    let dsts_of_src = distinct_per(
        (0..n)
            .filter(|&i| initiated(i))
            .map(|i| (input.src[i], input.dst[i]))
            .collect(),
    );
    let srcs_of_dst = distinct_per(pairs(input.dst, input.src));
    let ports_of = |h: &[u128]| {
        distinct_per(
            h.iter()
                .copied()
                .zip(input.dst_port.iter().copied())
                .collect::<Vec<_>>(),
        )
    };
    let src_ports = distinct_per(
        (0..n)
            .filter(|&i| initiated(i))
            .map(|i| (input.src[i], input.dst_port[i]))
            .collect(),
    );
    let sources = ranked(
        by_src,
        &dsts_of_src,
        &src_ports,
        |p, q, _| p.max(q) as f64,
        limit,
    );
    let destinations = ranked(
        by_dst,
        &srcs_of_dst,
        &ports_of(input.dst),
        |p, _, c| (p as f64).max(c.syn),
        limit,
    );
    Ok(ScanReport {
        sources,
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{clustered_addrs, rng, v4};
    use rand::RngExt;

    #[derive(Default)]
    struct Cols {
        src: Vec<u128>,
        dst: Vec<u128>,
        port: Vec<u16>,
        proto: Vec<u8>,
        flags: Vec<u8>,
        packets: Vec<u64>,
    }

    impl Cols {
        fn push(&mut self, s: u128, d: u128, port: u16, p: u8, flags: u8, packets: u64) {
            self.src.push(s);
            self.dst.push(d);
            self.port.push(port);
            self.proto.push(p);
            self.flags.push(flags);
            self.packets.push(packets);
        }
        fn run(&self, limit: usize) -> ScanReport {
            let w = vec![1.0; self.src.len()];
            scans(
                ScanInput {
                    src: &self.src,
                    dst: &self.dst,
                    src_port: &[],
                    dst_port: &self.port,
                    proto: &self.proto,
                    tcp_flags: &self.flags,
                    packets: &self.packets,
                    flows: Weights::exact(&w),
                },
                limit,
            )
            .unwrap()
        }
    }

    /// Background traffic: clustered hosts talking in complete TCP and UDP flows.
    fn background(seed: u64, n: usize) -> Cols {
        let mut r = rng(seed);
        let s = clustered_addrs(&mut r, n, true);
        let d = clustered_addrs(&mut r, n, false);
        let mut c = Cols::default();
        for i in 0..n {
            let p = [6u8, 17][r.random_range(0..2)];
            c.push(
                s[i],
                d[i],
                [80, 443, 53][r.random_range(0..3)],
                p,
                0x1b,
                r.random_range(3..50),
            );
        }
        c
    }

    #[test]
    fn a_server_answering_many_clients_is_not_a_scanner() {
        // 300 clients each open one connection to a web server; the server's replies go from
        // port 80 to 300 ephemeral ports on 300 hosts. A scanner probes 50 ports of one host.
        let (server, scanner, target) = (v4("10.0.0.80"), v4("192.0.2.66"), v4("10.0.0.9"));
        let (mut src, mut dst, mut sport, mut dport) = (vec![], vec![], vec![], vec![]);
        for c in 0..300u32 {
            let client = v4(&format!("172.16.{}.{}", c / 250, c % 250 + 1));
            for (s, d, sp, dp) in [
                (client, server, 40_000 + c as u16, 80),
                (server, client, 80, 40_000 + c as u16),
            ] {
                src.push(s);
                dst.push(d);
                sport.push(sp);
                dport.push(dp);
            }
        }
        for port in 1..=50u16 {
            src.push(scanner);
            dst.push(target);
            sport.push(61_000);
            dport.push(port);
        }
        let n = src.len();
        let (proto, flags, packets) = (vec![6u8; n], vec![2u8; n], vec![1u64; n]);
        let w = vec![1.0; n];
        let input = |src_port: &'static [u16]| ScanInput {
            src: &src,
            dst: &dst,
            src_port,
            dst_port: &dport,
            proto: &proto,
            tcp_flags: &flags,
            packets: &packets,
            flows: Weights::exact(&w),
        };
        let ports: &'static [u16] = Vec::leak(sport.clone());
        let r = scans(input(ports), 3).unwrap();
        assert_eq!(r.sources[0].host, Addr(scanner), "{:?}", r.sources);
        let server_row = r.sources.iter().find(|h| h.host == Addr(server));
        assert!(server_row.is_none_or(|h| h.peers == 0 && h.ports == 0));
        // Without source ports every flow counts, and the server's replies dominate.
        let r = scans(input(&[]), 3).unwrap();
        assert_eq!(r.sources[0].host, Addr(server));
    }

    #[test]
    fn synthetic_scans_and_floods_come_out_on_top() {
        for seed in 0..20 {
            let mut c = background(seed, 2000);
            let mut r = rng(seed + 99);
            // A horizontal scan: one source, SYNs to 300 addresses of a /16, port 22.
            let scanner = v4("198.51.100.66");
            for i in 0..300u32 {
                c.push(
                    scanner,
                    Addr::from_v4_u32(0xc000_0000 | (i * 7)).0,
                    22,
                    6,
                    SYN,
                    1,
                );
            }
            // A vertical scan: one source, 250 ports of one host.
            let prober = v4("203.0.113.5");
            let target = v4("192.0.2.80");
            for port in 1..=250u16 {
                c.push(prober, target, port, 6, SYN, 1);
            }
            // A SYN flood: 400 spoofed sources to one web server.
            let victim = v4("192.0.2.10");
            for _ in 0..400 {
                c.push(Addr::from_v4_u32(r.random()).0, victim, 443, 6, SYN, 1);
            }
            // Shuffle record order: the ranking must not depend on it.
            let order: Vec<usize> = {
                let mut o: Vec<usize> = (0..c.src.len()).collect();
                for i in (1..o.len()).rev() {
                    o.swap(i, r.random_range(0..=i));
                }
                o
            };
            let mut sh = Cols::default();
            for &i in &order {
                sh.push(
                    c.src[i],
                    c.dst[i],
                    c.port[i],
                    c.proto[i],
                    c.flags[i],
                    c.packets[i],
                );
            }
            let rep = sh.run(5);
            assert_eq!(rep, c.run(5), "seed {seed}: order changed the result");
            assert_eq!(rep.sources[0].host, Addr(scanner), "seed {seed}");
            assert_eq!(rep.sources[0].peers, 300);
            assert_eq!(rep.sources[0].syn_only_flows, 300.0);
            assert_eq!(rep.sources[0].small_share(), 1.0);
            assert_eq!(rep.sources[1].host, Addr(prober), "seed {seed}");
            assert_eq!((rep.sources[1].peers, rep.sources[1].ports), (1, 250));
            assert_eq!(rep.destinations[0].host, Addr(victim), "seed {seed}");
            assert!(
                rep.destinations[0].peers >= 399 && rep.destinations[0].syn_only_flows == 400.0
            );
        }
    }

    #[test]
    fn evidence_matches_a_naive_count() {
        for seed in 0..30 {
            let c = background(seed, 300);
            let rep = c.run(usize::MAX);
            for h in &rep.sources {
                let idx: Vec<usize> = (0..c.src.len()).filter(|&i| c.src[i] == h.host.0).collect();
                let mut d: Vec<u128> = idx.iter().map(|&i| c.dst[i]).collect();
                d.sort();
                d.dedup();
                let mut p: Vec<u16> = idx.iter().map(|&i| c.port[i]).collect();
                p.sort();
                p.dedup();
                assert_eq!(
                    (h.peers, h.ports, h.flows),
                    (d.len() as u64, p.len() as u64, idx.len() as f64)
                );
                let small = idx.iter().filter(|&&i| c.packets[i] <= 2).count() as f64;
                assert_eq!(h.small_flows, small);
            }
            let distinct_src = {
                let mut s = c.src.clone();
                s.sort();
                s.dedup();
                s.len()
            };
            assert_eq!(rep.sources.len(), distinct_src);
            for w in rep.sources.windows(2) {
                assert!(w[0].score >= w[1].score, "seed {seed}");
            }
        }
    }

    #[test]
    fn syn_only_needs_tcp_syn_without_ack() {
        assert!(syn_only(6, SYN));
        assert!(syn_only(6, SYN | 0x01));
        assert!(!syn_only(6, SYN | ACK));
        assert!(!syn_only(17, SYN));
        assert!(!syn_only(6, ACK));
    }
}
