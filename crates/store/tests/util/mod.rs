//! Helpers of the integration tests: synthetic records with a plausible distribution.

use flowdrill_model::{Addr, FlowRecord};
use flowdrill_store::sampling::Rng;

/// 2024-01-01 00:00 UTC.
pub const T0: u64 = 1_704_067_200_000;

/// Heavy-tailed flow sizes (most flows small, a few elephants), Zipf-ish addresses, common
/// ports, a few exporters and interfaces, some IPv6; flows last up to ~2 minutes.
pub fn records(n: usize, seed: u64, t0: u64, span_ms: u64) -> Vec<FlowRecord> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let u = rng.next_f64();
            let start = t0 + (rng.next_u64() % span_ms);
            let dur = if u < 0.5 {
                rng.next_u64() % 1000
            } else {
                rng.next_u64() % 120_000
            };
            let packets = 1 + (1.0 / (1.0 - rng.next_f64() * 0.999)).powf(1.3) as u64;
            let bytes = packets * (40 + rng.next_u64() % 1460);
            let zipf = |rng: &mut Rng, n: u64| ((n as f64).powf(rng.next_f64()) as u64).min(n - 1);
            let v6 = rng.next_u64().is_multiple_of(10);
            let addr = |rng: &mut Rng, base: u32| {
                let host = zipf(rng, 65_536) as u32;
                if v6 {
                    Addr(0x2001_0db8_u128 << 96 | host as u128)
                } else {
                    Addr::from_v4_u32(base + host)
                }
            };
            let proto = [6u8, 6, 6, 17, 17, 1][(rng.next_u64() % 6) as usize];
            let ports = [443u16, 80, 53, 22, 25, 8080, 123];
            let (sp, dp) = if proto == 1 {
                (0, 0x0800)
            } else if rng.next_u64().is_multiple_of(2) {
                (
                    1024 + (rng.next_u64() % 64_000) as u16,
                    ports[zipf(&mut rng, 7) as usize],
                )
            } else {
                (
                    ports[zipf(&mut rng, 7) as usize],
                    1024 + (rng.next_u64() % 64_000) as u16,
                )
            };
            FlowRecord {
                time_start: start,
                time_end: start + dur,
                src_addr: addr(&mut rng, 0x0a00_0000),
                dst_addr: addr(&mut rng, 0xc000_0000),
                src_port: sp,
                dst_port: dp,
                proto,
                tcp_flags: if proto == 6 { 0x1b } else { 0 },
                tos: 0,
                packets,
                bytes,
                in_if: 1 + (rng.next_u64() % 4) as u32,
                out_if: 10 + (rng.next_u64() % 2) as u32,
                src_as: 64_512,
                dst_as: zipf(&mut rng, 1000) as u32,
                src_mask: 16,
                dst_mask: 24,
                next_hop: Addr::from_v4_u32(0xc0a8_0001),
                exporter: Addr::from_v4_u32(0xc000_0201 + (rng.next_u64() % 2) as u32),
                domain: 0,
                sampling_rate: 1,
                continued: 0,
                extra: Vec::new(),
            }
        })
        .collect()
}
