//! Benchmark of the exact IPv4 HHH fast path: 10 million records, about one million distinct
//! source addresses, every prefix length.
//!
//! `cargo run --release -p flowdrill-analysis --example hhh_bench [records] [distinct] [--generic]`
//!
//! Addresses: `distinct` hosts in random /16 blocks (256 per block). Half the records pick a host
//! uniformly (so nearly every host appears), half from a log-uniform rank (a few heavy hitters),
//! as on a real link. Bytes per record are heavy-tailed. Only `hhh_addrs` is timed.

use flowdrill_analysis::Weights;
use flowdrill_analysis::hhh::{IpLevels, Threshold, hhh_addrs, hhh_bottom_up};
use flowdrill_model::Addr;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
/// On a shared machine wall time includes waiting for a core; CPU time does not.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (in parentheses), from the state on: utime is the 12th and
    // stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (tick(11) + tick(12)) / 100.0
}

/// The system part of [`cpu_seconds`].
fn sys_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    rest.split_whitespace()
        .nth(12)
        .and_then(|x| x.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("records"));
    let distinct: usize = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("distinct"));
    let mut r = StdRng::seed_from_u64(7);

    let mut blocks: Vec<u32> = (0..65536u32).collect();
    for i in (1..blocks.len()).rev() {
        blocks.swap(i, r.random_range(0..=i));
    }
    let pool: Vec<u128> = (0..distinct)
        .map(|i| {
            let host = ((i % 256) as u32 * 251) & 0xffff;
            Addr::from_v4_u32((blocks[i / 256 % 65536] << 16) | host).0
        })
        .collect();
    let ln = (distinct as f64).ln();
    let addrs: Vec<u128> = (0..n)
        .map(|_| {
            let i = if r.random_bool(0.5) {
                r.random_range(0..distinct)
            } else {
                ((r.random::<f64>() * ln).exp() as usize - 1).min(distinct - 1)
            };
            pool[i]
        })
        .collect();
    let bytes: Vec<f64> = (0..n)
        .map(|_| {
            let pk = if r.random_bool(0.05) {
                r.random_range(10..2000)
            } else {
                r.random_range(1..4)
            };
            (pk * r.random_range(40..1500)) as f64
        })
        .collect();
    let mut seen = addrs.clone();
    seen.sort_unstable();
    seen.dedup();
    println!("{n} records, {} distinct sources", seen.len());

    let levels = IpLevels::every();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut sys = Vec::new();
    let mut rows = 0;
    for _ in 0..5 {
        let (t, c, s) = (Instant::now(), cpu_seconds(), sys_seconds());
        let rep = hhh_addrs(
            &levels,
            &addrs,
            Weights::exact(&bytes),
            Threshold::Share(0.01),
        )
        .expect("valid input");
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
        sys.push(sys_seconds() - s);
        rows = rep.rows.len();
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    sys.sort_by(f64::total_cmp);
    println!(
        "hhh_addrs (every length, phi = 0.01, {rows} rows): wall min {:.3} s, median {:.3} s; \
         CPU (both threads) min {:.3} s, median {:.3} s, of which system (page faults) median {:.3} s",
        times[0], times[2], cpu[0], cpu[2], sys[2]
    );
    if args.next().as_deref() != Some("--generic") {
        return;
    }
    let t = Instant::now();
    let slow = hhh_bottom_up(
        &levels,
        &addrs,
        Weights::exact(&bytes),
        Threshold::Share(0.01),
    )
    .expect("valid");
    println!(
        "generic bottom-up pass (same input, {} rows): {:.3} s",
        slow.rows.len(),
        t.elapsed().as_secs_f64()
    );
}
