//! Throughput of the filter evaluators, single thread.
//!
//! ```text
//! cargo run --release -p flowdrill-filter --example filter_bench [RECORDS] [BATCH]
//! ```
//!
//! Builds RECORDS synthetic flows (default 16 Mi) as columns, split in batches of BATCH
//! records (default 65536, a store-sized batch), and reports records per second for
//! column-wise evaluation of several filters, and for row-wise evaluation on 1 Mi records.

use flowdrill_filter::parse;
use flowdrill_model::{ColumnRef, ColumnSource, Field, FlowRecord};
use std::time::Instant;

/// The columns the benchmark filters read; others are "not loaded".
struct Batch {
    proto: Vec<u8>,
    flags: Vec<u8>,
    src_port: Vec<u16>,
    dst_port: Vec<u16>,
    src_addr: Vec<u128>,
    dst_addr: Vec<u128>,
    bytes: Vec<u64>,
}

impl ColumnSource for Batch {
    fn len(&self) -> usize {
        self.proto.len()
    }
    fn column(&self, field: Field) -> Option<ColumnRef<'_>> {
        Some(match field {
            Field::Proto => ColumnRef::U8(&self.proto),
            Field::TcpFlags => ColumnRef::U8(&self.flags),
            Field::SrcPort => ColumnRef::U16(&self.src_port),
            Field::DstPort => ColumnRef::U16(&self.dst_port),
            Field::SrcAddr => ColumnRef::Addr(&self.src_addr),
            Field::DstAddr => ColumnRef::Addr(&self.dst_addr),
            Field::Bytes => ColumnRef::U64(&self.bytes),
            _ => return None,
        })
    }
}

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A record drawn from a rough traffic mix: 75 % TCP, 20 % UDP; a fifth of TCP to 443.
fn draw(rng: &mut Rng) -> FlowRecord {
    let x = rng.next();
    let proto = match x % 100 {
        0..75 => 6,
        75..95 => 17,
        _ => 1,
    };
    let dst_port = match (x >> 8) % 10 {
        0 | 1 => 443,
        2 => 80,
        3 => 53,
        _ => (x >> 16) as u16,
    };
    let v4 = |r: u64| flowdrill_model::Addr::from_v4_u32(r as u32);
    FlowRecord {
        proto,
        dst_port,
        src_port: (x >> 32) as u16,
        tcp_flags: (x >> 48) as u8,
        src_addr: v4(rng.next() & 0x0aff_ffff | ((x & 1) << 31)),
        dst_addr: v4(rng.next()),
        bytes: (x >> 40) % 100_000,
        ..Default::default()
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(16 << 20, |s| s.parse().expect("RECORDS"));
    let batch: usize = args.next().map_or(65_536, |s| s.parse().expect("BATCH"));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut batches = Vec::new();
    let mut left = n;
    while left > 0 {
        let m = left.min(batch);
        let recs: Vec<FlowRecord> = (0..m).map(|_| draw(&mut rng)).collect();
        batches.push(Batch {
            proto: recs.iter().map(|r| r.proto).collect(),
            flags: recs.iter().map(|r| r.tcp_flags).collect(),
            src_port: recs.iter().map(|r| r.src_port).collect(),
            dst_port: recs.iter().map(|r| r.dst_port).collect(),
            src_addr: recs.iter().map(|r| r.src_addr.0).collect(),
            dst_addr: recs.iter().map(|r| r.dst_addr.0).collect(),
            bytes: recs.iter().map(|r| r.bytes).collect(),
        });
        left -= m;
    }
    let row_sample: Vec<FlowRecord> = (0..(1 << 20).min(n)).map(|_| draw(&mut rng)).collect();
    println!("{n} records in batches of {batch}, single thread, best of 5 runs");
    println!(
        "{:<55} {:>14} {:>10} {:>14}",
        "filter", "column rec/s", "selected", "row rec/s"
    );
    for text in [
        "proto tcp and dst port 443",
        "proto tcp and flags S and not flags A",
        "port in [80 443 8080]",
        "net 10.0.0.0/8",
        "bytes > 1k and not src net 192.168.0.0/16",
        "proto udp and dst port 53 or proto icmp",
    ] {
        let f = parse(text).expect("valid filter");
        let mut best = f64::MAX;
        let mut selected = 0;
        for _ in 0..5 {
            let t = Instant::now();
            selected = batches
                .iter()
                .map(|b| f.select(b).expect("columns loaded").count_ones())
                .sum::<usize>();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let mut best_row = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let c = row_sample.iter().filter(|r| f.matches(r)).count();
            std::hint::black_box(c);
            best_row = best_row.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{text:<55} {:>12.1} M {:>10} {:>12.1} M",
            n as f64 / best / 1e6,
            selected,
            row_sample.len() as f64 / best_row / 1e6
        );
    }
}
