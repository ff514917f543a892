//! Benchmark of the top-N aggregation fast path: a `u32` key (an AS number, say) over in-memory
//! slices.
//!
//! `cargo run --release -p flowdrill-analysis --example top_bench [records] [distinct keys]`

use flowdrill_analysis::Weights;
use flowdrill_analysis::top::{Rank, aggregate, top_n};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(20_000_000, |s| s.parse().expect("records"));
    let distinct: u32 = args.next().map_or(50_000, |s| s.parse().expect("distinct"));
    let mut r = StdRng::seed_from_u64(11);
    let ln = (distinct as f64).ln();
    // Log-uniform ranks: a few keys carry most records, as AS numbers or ports do.
    let keys: Vec<u32> = (0..n)
        .map(|_| {
            ((r.random::<f64>() * ln).exp() as u32).min(distinct) * 2_654_435_761 % 4_000_000_000
        })
        .collect();
    let w: Vec<f64> = (0..n).map(|_| r.random_range(40..1500) as f64).collect();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..5 {
        let (t, c) = (Instant::now(), cpu_seconds());
        let groups = aggregate(&keys, Weights::exact(&w)).expect("valid");
        let top = top_n(groups, 20, Rank::Weight);
        assert_eq!(top.len(), 20);
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    println!(
        "aggregate + top 20 of {n} records, u32 keys: wall median {:.3} s ({:.0} M records/s); \
         CPU (both threads) median {:.3} s ({:.0} M records/s per core)",
        times[2],
        n as f64 / times[2] / 1e6,
        cpu[2],
        n as f64 / cpu[2] / 1e6
    );
}
