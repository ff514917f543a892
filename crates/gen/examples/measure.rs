//! Measures the generator: records/s of `records()`, packets/s of the packet writer, export
//! datagrams/s, and the sizes of the demo scenario's files.
//!
//! `cargo run --release -p flowdrill-gen --example measure -- [RECORDS] [OUT_DIR | -]`
//! (`-`: measure `records()` only; `sink`: also the packet writer on the same scenario into
//! `io::sink()`, to see its memory bound with `/usr/bin/time -v`).

use flowdrill_gen::{
    ExportFormat, ExportOptions, Scenario, records, write_export_pcap, write_packets_pcap,
};
use std::io::BufWriter;
use std::time::Instant;

/// CPU seconds used by this thread (utime + stime from /proc, 10 ms resolution): the machine
/// is shared, so wall time overstates the cost.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields after ')': state ppid ... ; utime and stime are numeric fields 10 and 11 (from 0, ppid first).
    f.get(10)
        .zip(f.get(11))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/flowdrill-gen-demo".into());

    let s = Scenario {
        flows: n,
        duration_ms: 86_400_000,
        ..Scenario::default()
    };
    let (t, c) = (Instant::now(), cpu_secs());
    let (mut count, mut packets, mut bytes) = (0u64, 0u64, 0u64);
    for r in records(&s)? {
        count += 1;
        packets += r.packets;
        bytes += r.bytes;
    }
    let (wall, secs) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
    println!(
        "records(): {count} records in {secs:.2} s CPU ({wall:.2} s wall) = {:.2} M records/s ({packets} packets, {bytes} bytes)",
        count as f64 / secs / 1e6
    );

    if dir == "-" {
        return Ok(());
    }
    if dir == "sink" {
        let (t, c) = (Instant::now(), cpu_secs());
        let truth = write_packets_pcap(&s, std::io::sink())?;
        let (wall, secs) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
        println!(
            "packets of {n} flows: {} frames ({} file bytes) in {secs:.2} s CPU ({wall:.2} s wall) = {:.2} M packets/s",
            truth.frames,
            truth.file_bytes,
            truth.frames as f64 / secs / 1e6
        );
        return Ok(());
    }
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let demo = Scenario::demo();
    let path = dir.join("demo_packets.pcap");
    let (t, c) = (Instant::now(), cpu_secs());
    let truth = write_packets_pcap(
        &demo,
        BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?),
    )?;
    let (wall, secs) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
    println!(
        "demo packets pcap: {} frames, {} records, {} bytes of file in {secs:.2} s CPU ({wall:.2} s wall) = {:.2} M packets/s",
        truth.frames,
        truth.total.flows,
        truth.file_bytes,
        truth.frames as f64 / secs / 1e6
    );
    println!("demo truth: {:?}", truth.total);
    for (name, f) in [
        ("v5", ExportFormat::V5),
        ("v9", ExportFormat::V9),
        ("ipfix", ExportFormat::Ipfix),
    ] {
        let path = dir.join(format!("demo_{name}.pcap"));
        let (t, c) = (Instant::now(), cpu_secs());
        let st = write_export_pcap(
            &demo,
            f,
            &ExportOptions::default(),
            BufWriter::new(std::fs::File::create(&path)?),
        )?;
        let (wall, secs) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
        println!(
            "demo {name} export pcap: {} datagrams, {} records, {} bytes of file in {secs:.2} s CPU ({wall:.2} s wall) ({:.2} M records/s)",
            st.datagrams,
            st.records,
            st.file_bytes,
            st.records as f64 / secs / 1e6
        );
    }
    Ok(())
}
