//! Measures the store: bytes per stored record at the default compression, write records/s,
//! and read-back records/s for the columns an analysis needs.
//!
//! Records come from flowdrill-gen's demo scenario (heavy-tailed sizes, Zipf hosts, realistic
//! ports, IPv4 and IPv6, four attack/elephant events), scaled to N background flows.
//!
//! ```text
//! cargo run --release -p flowdrill-store --example store_bench -- [N=2000000]
//! ```

use flowdrill_gen::Scenario;
use flowdrill_model::{ColumnSource, Field, FlowRecord};
use flowdrill_store::{Store, StoreWriter, WriterOptions};
use std::time::Instant;

// As the `flowdrill` binary does (see crates/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) of this process, from /proc (Linux; 0 elsewhere): on a shared
/// machine wall time mostly measures the other tenants.
fn cpu_secs() -> f64 {
    stat_cpu_secs("/proc/self/stat")
}

/// CPU seconds of the calling thread: the writer's serial part (routing, splitting, statistics)
/// runs on it, and it bounds the write rate once the encoder threads keep up.
fn thread_cpu_secs() -> f64 {
    stat_cpu_secs("/proc/thread-self/stat")
}

fn stat_cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11] + f[12]) / 100.0 // USER_HZ is 100 on Linux
}

fn write(dir: &std::path::Path, links: &str, recs: &[FlowRecord]) -> (f64, u64, u64, u64) {
    let mut store = Store::create(dir).expect("create store");
    store.set_links(links).expect("links");
    let t = Instant::now();
    let c0 = cpu_secs();
    let m0 = thread_cpu_secs();
    // As a live source would: the records come in start-time order, so a bin closes once
    // records start a minute past its end, and encoding (on the writer's encoder thread)
    // overlaps with pushing.
    let opts = WriterOptions {
        auto_close_after_ms: Some(60_000),
        ..WriterOptions::default()
    };
    let mut w = StoreWriter::new(&store, opts).expect("writer");
    w.push_all(recs.iter().cloned()).expect("push");
    let pushed = t.elapsed().as_secs_f64();
    let c1 = cpu_secs();
    let s = w.finish().expect("finish");
    let secs = t.elapsed().as_secs_f64();
    let c2 = cpu_secs();
    let m2 = thread_cpu_secs();
    println!(
        "  push {pushed:.2} s wall / {:.2} s CPU (route, split, stats, closing bins as time \
         advances); finish {:.2} s wall / {:.2} s CPU; CPU-time rate {:.2} M records/s; \
         pushing thread {:.2} s CPU = {:.2} M records/s",
        c1 - c0,
        secs - pushed,
        c2 - c1,
        recs.len() as f64 / (c2 - c0).max(0.01) / 1e6,
        m2 - m0,
        recs.len() as f64 / (m2 - m0).max(0.01) / 1e6
    );
    // A bin merged with late records appears twice in the summary: count its last write.
    let mut last = std::collections::BTreeMap::new();
    for b in s.bins.iter().filter(|b| b.level == 0) {
        last.insert(b.start, b);
    }
    let l0: Vec<_> = last.into_values().collect();
    let rows: u64 = l0.iter().map(|b| b.records_after).sum();
    let bytes: u64 = l0.iter().map(|b| b.file_bytes).sum();
    let zmax = l0.iter().map(|b| b.z_max).max().unwrap_or(0);
    (secs, rows, bytes, zmax)
}

/// The best of three runs (the machine is shared); each bin in chunks of `chunk` rows when
/// given (as a one-shot query reads).
fn read(
    dir: &std::path::Path,
    fields: &[Field],
    threads: usize,
    chunk: Option<usize>,
) -> (f64, u64) {
    (0..3)
        .map(|_| read_once(dir, fields, threads, chunk))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("three runs")
}

fn read_once(
    dir: &std::path::Path,
    fields: &[Field],
    threads: usize,
    chunk: Option<usize>,
) -> (f64, u64) {
    let store = Store::open(dir).expect("open");
    let bins = store.bins("default", 0..u64::MAX, 0).expect("bins");
    let t = Instant::now();
    let c0 = cpu_secs();
    let chunks: Vec<_> = bins.chunks(bins.len().div_ceil(threads).max(1)).collect();
    let rows: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                let store = &store;
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut check = 0u64;
                    for b in c.iter() {
                        let mut take = |batch: flowdrill_store::Batch| {
                            n += batch.len() as u64;
                            check = check.wrapping_add(batch.estimated_bytes().unwrap_or(0));
                            true
                        };
                        match chunk {
                            None => {
                                take(store.read_bin(b, fields).expect("read"));
                            }
                            Some(rows) => store
                                .read_bin_chunks(b, fields, &[], rows, &mut take)
                                .expect("read"),
                        }
                    }
                    std::hint::black_box(check);
                    n
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("reader thread"))
            .sum()
    });
    let wall = t.elapsed().as_secs_f64();
    if threads == 1 {
        println!(
            "  (1 thread: {wall:.3} s wall, {:.2} s CPU)",
            cpu_secs() - c0
        );
    }
    (wall, rows)
}

fn main() {
    // `store_bench read DIR`: only the read measurement, on an existing store (for profiling).
    if std::env::args().nth(1).as_deref() == Some("read") {
        let dir = std::path::PathBuf::from(std::env::args().nth(2).expect("read DIR"));
        let fields = [Field::SrcAddr, Field::DstAddr, Field::Bytes, Field::Packets];
        let (secs, rows) = read(&dir, &fields, 1, None);
        println!(
            "{rows} records in {secs:.3} s = {:.1} M records/s",
            rows as f64 / secs / 1e6
        );
        return;
    }
    // `store_bench write N`: only the unsampled write (for profiling).
    let write_only = std::env::args().nth(1).as_deref() == Some("write");
    let n: u64 = std::env::args()
        .nth(if write_only { 2 } else { 1 })
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(2_000_000);
    let scenario = Scenario {
        flows: n,
        ..Scenario::demo()
    };
    let t = Instant::now();
    let recs: Vec<FlowRecord> = flowdrill_gen::records(&scenario)
        .expect("scenario")
        .collect();
    println!(
        "generated {} records (demo scenario, 1 h) in {:.2} s",
        recs.len(),
        t.elapsed().as_secs_f64()
    );
    let tmp = std::env::temp_dir().join(format!("flowdrill-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);

    // 1. Everything kept: density of the format itself.
    let full = tmp.join("full");
    let (secs, rows, bytes, _) = write(
        &full,
        "[defaults]\nbudget = \"100GB\"\nlevels = []\n",
        &recs,
    );
    println!(
        "unsampled: wrote {rows} records ({} files) in {secs:.2} s = {:.2} M records/s; \
         {:.2} bytes/record (nfdump+zstd: ~29)",
        std::fs::read_dir(&full).map(|_| "level-0").unwrap_or("?"),
        recs.len() as f64 / secs / 1e6,
        bytes as f64 / rows as f64
    );
    if write_only {
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    // 2. The default budget (10 MB/h, with levels 1 and 2).
    let def = tmp.join("default");
    let (secs, rows, bytes, zmax) = write(&def, "", &recs);
    println!(
        "default budget 10 MB/h: {:.2} M records/s pushed; kept {rows} records at level 0 \
         (z up to {zmax}), {:.2} MB, {:.2} bytes/record",
        recs.len() as f64 / secs / 1e6,
        bytes as f64 / 1e6,
        bytes as f64 / rows as f64
    );

    // 3. Read back what a top-N / HHH analysis needs.
    let fields = [Field::SrcAddr, Field::DstAddr, Field::Bytes, Field::Packets];
    for threads in [1, 2] {
        let (secs, rows) = read(&full, &fields, threads, None);
        println!(
            "read src_addr,dst_addr,bytes,packets(+sample_z), {threads} thread(s): {rows} records \
             in {secs:.3} s = {:.1} M records/s",
            rows as f64 / secs / 1e6
        );
    }
    let (secs, rows) = read(&full, &[Field::SrcAddr, Field::Bytes], 2, None);
    println!(
        "read src_addr,bytes(+sample_z), 2 threads: {:.1} M records/s ({rows} records)",
        rows as f64 / secs / 1e6
    );
    // As one-shot queries read (`Engine::fold` without a cache): 64 Ki rows at a time.
    for fields in [
        &[Field::SrcAddr, Field::Bytes][..],
        &[Field::SrcAddr, Field::DstAddr, Field::Bytes, Field::Packets][..],
    ] {
        let (secs, rows) = read(&full, fields, 2, Some(1 << 16));
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        println!(
            "read {}(+sample_z) in 64 Ki-row chunks, 2 threads: {:.1} M records/s",
            names.join(","),
            rows as f64 / secs / 1e6
        );
    }
    if std::env::var_os("FLOWDRILL_BENCH_KEEP").is_some() {
        println!("kept the stores in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
