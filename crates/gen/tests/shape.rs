//! Statistical shape of the generated traffic: heavy tails, IPv6 share, diurnal rate, ports,
//! events, order and determinism. Each check states the model's expectation it tests.

use flowdrill_gen::{Event, FlowRecord, Origin, Scenario, records, truth};
use flowdrill_model::{Addr, Prefix, proto};
use std::collections::{HashMap, HashSet};

fn background(s: &Scenario) -> Vec<FlowRecord> {
    let mut r = records(s).unwrap();
    let mut out = Vec::new();
    while let Some((o, rec)) = r.next_tagged() {
        if o == Origin::Background {
            out.push(rec);
        }
    }
    out
}

fn hour() -> Scenario {
    Scenario {
        flows: 200_000,
        ..Scenario::default()
    }
}

#[test]
fn the_top_one_percent_of_flows_carries_most_bytes_and_most_flows_are_small() {
    let recs = background(&hour());
    let mut bytes: Vec<u64> = recs.iter().map(|r| r.bytes).collect();
    bytes.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = bytes.iter().sum();
    let top: u64 = bytes[..bytes.len() / 100].iter().sum();
    let share = top as f64 / total as f64;
    println!("top 1% of flows carry {:.1}% of bytes", share * 100.0);
    assert!(share > 0.5, "top 1% share {share}");
    let small = recs
        .iter()
        .filter(|r| (1..=10).contains(&r.packets))
        .count() as f64
        / recs.len() as f64;
    println!("{:.1}% of flows have 1-10 packets", small * 100.0);
    assert!(small > 0.75, "{small}");
    let max = recs.iter().map(|r| r.packets).max().unwrap();
    assert!(max > 100_000, "a few flows are huge: max {max} packets");
}

#[test]
fn host_activity_is_heavy_tailed() {
    let s = hour();
    let recs = background(&s);
    let mut per_host: HashMap<Addr, u64> = HashMap::new();
    for r in &recs {
        for a in [r.src_addr, r.dst_addr] {
            if s.local_v4.contains(a) || s.local_v6.contains(a) {
                *per_host.entry(a).or_default() += 1;
            }
        }
    }
    let mut counts: Vec<u64> = per_host.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = counts.iter().sum();
    let top: u64 = counts[..counts.len().div_ceil(100)].iter().sum();
    let share = top as f64 / total as f64;
    println!(
        "{} local hosts; top 1% take part in {:.1}% of flows",
        counts.len(),
        share * 100.0
    );
    assert!(share > 0.3, "{share}");
}

#[test]
fn the_ipv6_share_follows_the_scenario() {
    for share in [0.1, 0.3] {
        let s = Scenario {
            flows: 100_000,
            ipv6_share: share,
            ..Scenario::default()
        };
        let recs = background(&s);
        let v6 = recs.iter().filter(|r| !r.src_addr.is_v4()).count() as f64 / recs.len() as f64;
        println!("ipv6_share {share}: {v6:.4}");
        assert!((v6 - share).abs() < 0.01, "{v6} vs {share}");
        assert!(
            recs.iter()
                .all(|r| r.src_addr.is_v4() == r.dst_addr.is_v4())
        );
    }
}

#[test]
fn the_peak_hour_rate_over_the_trough_hour_rate_is_the_configured_ratio() {
    let ratio = 4.0;
    // Peak at 14:30 so the hour bin [14:00, 15:00) is centred on it and [02:00, 03:00) on
    // the trough; averaging a cosine over ±30 min scales its amplitude by sinc(π/24).
    let s = Scenario {
        flows: 480_000,
        duration_ms: 86_400_000,
        diurnal_ratio: ratio,
        peak_hour: 14.5,
        ..Scenario::default()
    };
    let mut per_hour = [0u64; 24];
    for r in background(&s) {
        per_hour[((r.time_start - s.start_ms) / 3_600_000) as usize] += 1;
    }
    let a = (ratio - 1.0) / (ratio + 1.0);
    let x = std::f64::consts::PI / 24.0;
    let k = x.sin() / x;
    let expected = (1.0 + a * k) / (1.0 - a * k);
    let measured = per_hour[14] as f64 / per_hour[2] as f64;
    println!("per hour: {per_hour:?}; peak/trough {measured:.3}, expected {expected:.3}");
    assert!(
        (measured / expected - 1.0).abs() < 0.06,
        "{measured} vs {expected}"
    );
    let busiest = (0..24).max_by_key(|&h| per_hour[h]).unwrap();
    let quietest = (0..24).min_by_key(|&h| per_hour[h]).unwrap();
    assert!(
        (13..=15).contains(&busiest) && (1..=3).contains(&quietest),
        "{busiest} {quietest}"
    );
    // A flat rate has no peak.
    let flat = Scenario {
        diurnal_ratio: 1.0,
        flows: 48_000,
        ..s
    };
    let mut per_hour = [0u64; 24];
    for r in background(&flat) {
        per_hour[((r.time_start - flat.start_ms) / 3_600_000) as usize] += 1;
    }
    let (mx, mn) = (
        *per_hour.iter().max().unwrap() as f64,
        *per_hour.iter().min().unwrap() as f64,
    );
    assert!(mx / mn < 1.25, "{per_hour:?}");
}

#[test]
fn servers_use_well_known_ports_and_clients_ephemeral_ones() {
    let recs = background(&hour());
    let mut by_port: HashMap<(u8, u16), u64> = HashMap::new();
    let mut requests = 0;
    for r in &recs {
        // Requests: the lower port is the service (P2P aside).
        if r.src_port > r.dst_port && r.dst_port != 0 {
            *by_port.entry((r.proto, r.dst_port)).or_default() += 1;
            requests += 1;
            if r.dst_port < 1024 || r.dst_port == 3478 {
                assert!(r.src_port >= 32_768, "ephemeral client port {}", r.src_port);
            }
        }
    }
    let mut top: Vec<_> = by_port.into_iter().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    println!("top services of {requests} requests: {:?}", &top[..8]);
    assert_eq!(top[0].0, (proto::TCP, 443), "443/TCP dominates");
    let present: HashSet<(u8, u16)> = top.iter().map(|t| t.0).collect();
    for want in [
        (6, 80),
        (17, 53),
        (6, 22),
        (6, 25),
        (6, 587),
        (6, 993),
        (17, 123),
        (17, 443),
        (17, 3478),
    ] {
        assert!(present.contains(&want), "{want:?} missing");
    }
    assert!(
        recs.iter().any(|r| r.proto == proto::ICMP) && recs.iter().any(|r| r.proto == proto::ICMP6)
    );
    // DNS sizes: queries and answers in 45..1260 bytes, single packets mostly.
    let dns: Vec<_> = recs
        .iter()
        .filter(|r| r.proto == proto::UDP && r.src_port == 53)
        .collect();
    assert!(
        dns.iter()
            .all(|r| r.bytes / r.packets >= 78 && r.bytes / r.packets <= 1280)
    );
    // TCP packets stay within 40..=1500 bytes on average.
    assert!(
        recs.iter()
            .filter(|r| r.proto == proto::TCP)
            .all(|r| (40..=1500).contains(&(r.bytes / r.packets)))
    );
}

fn with_events() -> Scenario {
    let mut s = Scenario::demo();
    s.flows = 20_000;
    s
}

#[test]
fn every_event_is_present_with_its_counts() {
    let s = with_events();
    let t = truth(&s).unwrap();
    for (i, e) in s.events.iter().enumerate() {
        assert_eq!(t.per_event[i].flows, e.flow_count(), "{}", e.kind());
    }
    assert_eq!(t.total.flows, s.total_flows());
    assert_eq!(t.background.flows, s.flows);
    let mut recs = records(&s).unwrap();
    let mut by_event: Vec<Vec<FlowRecord>> = vec![Vec::new(); s.events.len()];
    while let Some((o, r)) = recs.next_tagged() {
        if let Origin::Event(i) = o {
            by_event[i].push(r);
        }
    }
    for (e, recs) in s.events.iter().zip(&by_event) {
        match e {
            Event::SynScan {
                source,
                targets,
                ports,
                ..
            } => {
                let pairs: HashSet<(Addr, u16)> =
                    recs.iter().map(|r| (r.dst_addr, r.dst_port)).collect();
                assert_eq!(pairs.len(), recs.len(), "every probe is a distinct pair");
                assert!(recs.iter().all(|r| r.src_addr == *source
                    && targets.contains(r.dst_addr)
                    && ports.contains(&r.dst_port)
                    && r.packets == 1
                    && (40..=44).contains(&r.bytes)
                    && r.tcp_flags == 0x02));
            }
            Event::SpoofedFlood {
                victim,
                port,
                flows,
                ..
            } => {
                let sources: HashSet<Addr> = recs.iter().map(|r| r.src_addr).collect();
                assert_eq!(sources.len() as u64, *flows, "distinct spoofed sources");
                assert!(
                    recs.iter().all(|r| r.dst_addr == *victim
                        && r.dst_port == *port
                        && r.tcp_flags == 0x02)
                );
            }
            Event::Dragonfly { targets, .. } => {
                assert!(recs.iter().all(|r| r.proto == proto::UDP
                    && (1..=2).contains(&r.packets)
                    && targets.contains(r.dst_addr)));
            }
            Event::Elephant {
                src,
                dst,
                port,
                bytes,
                ..
            } => {
                let data = recs.iter().find(|r| r.src_addr == *src).unwrap();
                assert_eq!(
                    (data.dst_addr, data.dst_port, data.bytes),
                    (*dst, *port, *bytes)
                );
                assert!(data.packets > bytes / 1500);
                let acks = recs.iter().find(|r| r.src_addr == *dst).unwrap();
                assert!(acks.bytes < data.bytes / 20);
            }
        }
    }
}

#[test]
fn records_come_in_start_order_and_the_same_seed_gives_the_same_records() {
    let s = with_events();
    let a: Vec<FlowRecord> = records(&s).unwrap().collect();
    assert!(a.windows(2).all(|w| w[0].time_start <= w[1].time_start));
    assert!(
        a.iter()
            .all(|r| r.time_end >= r.time_start && r.packets >= 1 && r.bytes >= 28 * r.packets)
    );
    let b: Vec<FlowRecord> = records(&s).unwrap().collect();
    assert_eq!(a, b);
    let c: Vec<FlowRecord> = records(&Scenario {
        seed: 2,
        ..s.clone()
    })
    .unwrap()
    .collect();
    assert_ne!(a, c);
    // Adding an event leaves the background unchanged.
    let bare = Scenario {
        events: Vec::new(),
        ..s.clone()
    };
    assert_eq!(background(&bare), background(&s));
}

#[test]
fn local_and_remote_sides_are_where_the_scenario_puts_them() {
    let s = hour();
    let local = |a: Addr| s.local_v4.contains(a) || s.local_v6.contains(a);
    let recs = background(&s);
    let inbound = recs
        .iter()
        .filter(|r| !local(r.src_addr) && local(r.dst_addr))
        .count();
    let outbound = recs
        .iter()
        .filter(|r| local(r.src_addr) && !local(r.dst_addr))
        .count();
    assert_eq!(
        inbound + outbound,
        recs.len(),
        "every flow crosses the border"
    );
    let ratio = inbound as f64 / recs.len() as f64;
    assert!((0.3..0.7).contains(&ratio), "{ratio}");
    let private: Prefix = "192.168.0.0/16".parse().unwrap();
    assert!(
        recs.iter()
            .all(|r| !private.contains(r.src_addr) && !private.contains(r.dst_addr))
    );
}

#[test]
fn events_work_over_ipv6_too() {
    let base = Scenario {
        flows: 1_000,
        duration_ms: 120_000,
        ..Scenario::default()
    };
    let t0 = base.start_ms;
    let a = |x: &str| -> Addr { x.parse().unwrap() };
    let s = Scenario {
        events: vec![
            Event::SynScan {
                at_ms: t0,
                source: a("2001:db8:bad::1"),
                targets: "2001:db8:20:7::/120".parse().unwrap(),
                ports: 20..=30,
                flows: 500,
                rate_per_s: 1000,
            },
            Event::SpoofedFlood {
                at_ms: t0 + 1_000,
                duration_ms: 5_000,
                victim: a("2001:db8:20::80"),
                port: 443,
                flows: 800,
            },
            Event::Dragonfly {
                at_ms: t0 + 2_000,
                duration_ms: 5_000,
                targets: base.local_v6,
                flows: 300,
            },
            Event::Elephant {
                at_ms: t0 + 3_000,
                duration_ms: 60_000,
                src: a("2001:db8:20::9"),
                dst: a("2001:db8:99::20"),
                port: 22,
                bytes: 5_000_000,
            },
        ],
        ..base
    };
    // The packet writer checks every record's shape (an impossible one is an internal error).
    let t = flowdrill_gen::write_packets_pcap(&s, std::io::sink()).unwrap();
    for (i, e) in s.events.iter().enumerate() {
        assert_eq!(t.per_event[i].flows, e.flow_count(), "{}", e.kind());
    }
    let event_flows: u64 = t.per_event.iter().map(|c| c.flows).sum();
    assert!(t.ipv6.flows >= event_flows, "every event record is IPv6");
    assert_eq!(t.frames, t.total.packets);
    let scan = t.per_event[0];
    assert_eq!(
        scan.bytes,
        scan.flows * (scan.bytes / scan.flows),
        "one SYN size per scan"
    );
    assert!(
        (60..=64).contains(&(scan.bytes / scan.flows)),
        "IPv6 SYNs are 60-64 bytes"
    );
}

#[test]
fn no_five_tuple_repeats_in_the_demo_so_meters_cannot_merge_flows() {
    // softflowd -r never expires a flow before the end of the file: any repeated 5-tuple
    // would be merged and the flow count would fall short of the truth.
    let s = Scenario::demo();
    let mut seen = HashSet::new();
    let mut n = 0;
    for r in records(&s).unwrap() {
        n += 1;
        assert!(
            seen.insert((r.src_addr, r.src_port, r.dst_addr, r.dst_port, r.proto)),
            "repeated 5-tuple {r:?}"
        );
    }
    assert_eq!(n, s.total_flows());
}
