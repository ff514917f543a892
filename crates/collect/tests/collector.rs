//! The collector through its library API, on 127.0.0.1: the batched receive path (recvmmsg
//! into the ring's blocks, decoded on the writer thread) stores exactly what the one-datagram
//! path stores, garbage included (counted, dropped), and a bounded ring blocks nothing when the
//! writer keeps up.

use flowdrill_collect::{CollectConfig, CollectSummary, Collector};
use flowdrill_model::{Addr, ColumnRef, ColumnSource, Field};
use flowdrill_store::Store;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const T0: u64 = 1_704_067_200_000;

/// A v5 datagram of `n` records (sources numbered from `first`), starting at T0 + `offset_s`.
fn v5(first: u32, n: usize, offset_s: u32) -> Vec<u8> {
    let unix = (T0 / 1000) as u32 + offset_s + 120;
    let recs: Vec<_> = (0..n as u32)
        .map(|i| {
            (
                0x0a00_0000 + first + i,
                0xc000_0201,
                1000 + (i % 5000) as u16,
                443,
                6,
                3,
                100 + first + i,
                10_000,
                20_000,
            )
        })
        .collect();
    flowdrill_wire::netflow::v5::build(130_000, unix, 0, &recs)
}

/// What a run stored: (source, bytes, start) of every record, sorted.
type Stored = Vec<(u128, u64, u64)>;

fn run(recv_batch: usize, datagrams: &[Vec<u8>], want: u64) -> (CollectSummary, Stored) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path()).unwrap();
    // Unsampled: every record is stored.
    store
        .set_links("[defaults]\nbin = \"5m\"\nbudget = \"1GB\"\n")
        .unwrap();
    let mut cfg = CollectConfig::new(vec!["127.0.0.1:0".parse().unwrap()]);
    cfg.recv_batch = recv_batch;
    cfg.close_after_ms = 3_600_000;
    // Small blocks and a short channel: many hand-overs between the threads.
    cfg.block_bytes = 64 << 10;
    cfg.channel_blocks = 2;
    let c = Collector::start(&store, cfg).unwrap();
    let to = c.local_addrs()[0];
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, d) in datagrams.iter().enumerate() {
        tx.send_to(d, to).unwrap();
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let t = Instant::now();
    let decoded = |m: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("flowdrill_collect_records_decoded_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    while decoded(&c.metrics()) < want && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = c.shutdown().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut out = Vec::new();
    for b in store.bins("default", 0..u64::MAX, 0).unwrap() {
        let batch = store
            .read_bin(&b, &[Field::SrcAddr, Field::Bytes, Field::TimeStart])
            .unwrap();
        let (Some(ColumnRef::Addr(src)), Some(ColumnRef::U64(bytes)), Some(ColumnRef::U64(ts))) = (
            batch.column(Field::SrcAddr),
            batch.column(Field::Bytes),
            batch.column(Field::TimeStart),
        ) else {
            panic!("columns missing");
        };
        for i in 0..src.len() {
            out.push((src[i], bytes[i], ts[i]));
        }
    }
    out.sort_unstable();
    (s, out)
}

#[test]
fn the_batched_receive_path_stores_what_the_single_datagram_path_stores() {
    let mut datagrams = Vec::new();
    let mut want = 0u64;
    for i in 0..600u32 {
        let n = 1 + (i as usize * 7) % 30;
        datagrams.push(v5(i * 30, n, i % 240));
        want += n as u64;
        if i % 50 == 7 {
            datagrams.push(vec![0xde, 0xad, 0xbe, 0xef, i as u8]); // unknown version
            datagrams.push(vec![0, 5]); // too short
        }
    }
    let (s64, r64) = run(64, &datagrams, want);
    let (s1, r1) = run(1, &datagrams, want);
    assert_eq!(s64.datagrams, datagrams.len() as u64, "{s64:?}");
    assert_eq!(s64.records_decoded, want, "{s64:?}");
    assert_eq!(s64.socket_drops, 0);
    let garbage: u64 = s64.drops.values().sum();
    assert_eq!(garbage, 24, "{:?}", s64.drops);
    assert_eq!(r64.len() as u64, want);
    assert_eq!(
        (s1.datagrams, s1.records_decoded, &s1.drops),
        (s64.datagrams, s64.records_decoded, &s64.drops)
    );
    assert_eq!(r1, r64, "the two paths stored different records");
    // Spot check one record against what was sent.
    let a: Addr = "10.0.0.30".parse().unwrap();
    assert!(
        r64.iter()
            .any(|&(src, bytes, _)| src == a.0 && bytes == 130)
    );
}
