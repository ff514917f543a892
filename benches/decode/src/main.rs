//! Decoding speed of flowdrill-wire against netflow_parser and netgauze-flow-pkt, on the same
//! synthetic datagrams, in one run, one thread.
//!
//! Each format gets 64 distinct data datagrams (v5: 30 records each; v9 and IPFIX: 24
//! records of a 13-field IPv4 template: addresses, ports, protocol, flags, ToS, interfaces,
//! 64-bit counters and millisecond times). Templates are sent once before timing, so the
//! template-based decoders run with cached templates. Every decoder is asked for the same
//! thing: all records of every datagram, counted from its own output.
//!
//! Each cell is the fastest of many rounds over the 64 datagrams (the machine is shared;
//! the fastest round is the unpreempted speed).
//!
//! Run: `cargo run --release` in this folder (`-- SECONDS` to change the time per cell, 1.0 s
//! by default; `-- 1.0 v5` runs one format).

use flowdrill_model::{Addr, FlowRecord};
use flowdrill_wire::netflow::build::{MessageBuilder, V4_TEMPLATE, v4_record};
use flowdrill_wire::{Decoder, DecoderConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

const DATAGRAMS: usize = 64;
const V5_RECORDS: usize = 30;
const TPL_RECORDS: usize = 24;

struct Workload {
    name: &'static str,
    templates: Vec<Vec<u8>>,
    data: Vec<Vec<u8>>,
    records_per_round: usize,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn workloads() -> Vec<Workload> {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let v5: Vec<Vec<u8>> = (0..DATAGRAMS)
        .map(|_| {
            let recs: Vec<_> = (0..V5_RECORDS)
                .map(|_| {
                    let r = xorshift(&mut seed);
                    (
                        r as u32,
                        (r >> 32) as u32,
                        r as u16,
                        443,
                        6,
                        (r % 100) as u32 + 1,
                        (r % 100_000) as u32 + 40,
                        1_000,
                        2_000,
                    )
                })
                .collect();
            flowdrill_wire::netflow::v5::build(60_000, 1_700_000_000, 0, &recs)
        })
        .collect();
    let records = |seed: &mut u64| -> Vec<Vec<u8>> {
        (0..TPL_RECORDS)
            .map(|_| {
                let r = xorshift(seed);
                v4_record(
                    r as u32,
                    (r >> 32) as u32,
                    r as u16,
                    443,
                    r % 100 + 1,
                    r % 100_000 + 40,
                    1_700_000_000_000 + r % 1_000_000,
                )
            })
            .collect()
    };
    let v9_tpl = MessageBuilder::v9(60_000, 1_700_000_000, 0, 1)
        .template(256, V4_TEMPLATE)
        .finish();
    let v9: Vec<Vec<u8>> = (0..DATAGRAMS)
        .map(|i| {
            MessageBuilder::v9(60_000, 1_700_000_000, 1 + i as u32, 1)
                .data(256, &records(&mut seed), 0)
                .finish()
        })
        .collect();
    let ipfix_tpl = MessageBuilder::ipfix(1_700_000_000, 0, 1)
        .template(256, V4_TEMPLATE)
        .finish();
    let ipfix: Vec<Vec<u8>> = (0..DATAGRAMS)
        .map(|i| {
            MessageBuilder::ipfix(1_700_000_000, (i * TPL_RECORDS) as u32, 1)
                .data(256, &records(&mut seed), 0)
                .finish()
        })
        .collect();
    vec![
        Workload {
            name: "NetFlow v5",
            templates: vec![],
            data: v5,
            records_per_round: DATAGRAMS * V5_RECORDS,
        },
        Workload {
            name: "NetFlow v9",
            templates: vec![v9_tpl],
            data: v9,
            records_per_round: DATAGRAMS * TPL_RECORDS,
        },
        Workload {
            name: "IPFIX",
            templates: vec![ipfix_tpl],
            data: ipfix,
            records_per_round: DATAGRAMS * TPL_RECORDS,
        },
    ]
}

/// A decoder under test: primed with templates, then asked to decode one datagram and
/// say how many records it produced.
trait Contender {
    fn name(&self) -> &'static str;
    fn supports(&self, workload: &str) -> bool;
    fn decode(&mut self, datagram: &[u8]) -> usize;
}

struct Flowdrill {
    dec: Decoder,
    out: Vec<FlowRecord>,
}
impl Contender for Flowdrill {
    fn name(&self) -> &'static str {
        "flowdrill-wire"
    }
    fn supports(&self, _: &str) -> bool {
        true
    }
    fn decode(&mut self, d: &[u8]) -> usize {
        self.out.clear();
        self.dec
            .decode(Addr::from_v4_u32(0xc000_0201), 0, d, &mut self.out);
        black_box(&self.out);
        self.out.len()
    }
}

struct NetflowParser(netflow_parser::NetflowParser);
impl Contender for NetflowParser {
    fn name(&self) -> &'static str {
        "netflow_parser 1.0.6"
    }
    fn supports(&self, _: &str) -> bool {
        true
    }
    fn decode(&mut self, d: &[u8]) -> usize {
        use netflow_parser::NetflowPacket;
        use netflow_parser::variable_versions::{ipfix, v9};
        let res = self.0.parse_bytes(d);
        let n = res
            .packets
            .iter()
            .map(|p| match p {
                NetflowPacket::V5(v) => v.flowsets.len(),
                NetflowPacket::V9(v) => v
                    .flowsets
                    .iter()
                    .map(|f| match &f.body {
                        v9::FlowSetBody::Data(d) => d.fields.len(),
                        _ => 0,
                    })
                    .sum(),
                NetflowPacket::IPFix(v) => v
                    .flowsets
                    .iter()
                    .map(|f| match &f.body {
                        ipfix::FlowSetBody::Data(d) => d.fields.len(),
                        _ => 0,
                    })
                    .sum(),
                _ => 0,
            })
            .sum();
        let _ = black_box(res);
        n
    }
}

struct Netgauze(netgauze_flow_pkt::codec::FlowInfoCodec);
impl Contender for Netgauze {
    fn name(&self) -> &'static str {
        "netgauze-flow-pkt 0.13"
    }
    fn supports(&self, w: &str) -> bool {
        w != "NetFlow v5" // netgauze has no v5 decoder
    }
    fn decode(&mut self, d: &[u8]) -> usize {
        use netgauze_flow_pkt::FlowInfo;
        use tokio_util::codec::Decoder as _;
        let mut buf = bytes::BytesMut::from(d);
        let n = match self.0.decode(&mut buf) {
            Ok(Some(FlowInfo::IPFIX(p))) => p
                .sets()
                .iter()
                .map(|s| match s {
                    netgauze_flow_pkt::ipfix::Set::Data { records, .. } => records.len(),
                    _ => 0,
                })
                .sum(),
            Ok(Some(FlowInfo::NetFlowV9(p))) => p
                .sets()
                .iter()
                .map(|s| match s {
                    netgauze_flow_pkt::netflow::Set::Data { records, .. } => records.len(),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        n
    }
}

fn contenders() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(Flowdrill {
            dec: Decoder::new(DecoderConfig::default()),
            out: Vec::with_capacity(64),
        }),
        Box::new(NetflowParser(netflow_parser::NetflowParser::default())),
        Box::new(Netgauze(netgauze_flow_pkt::codec::FlowInfoCodec::new())),
    ]
}

/// Records per second of `c` on `w`, or `None` when it does not decode every record.
fn measure(c: &mut dyn Contender, w: &Workload, budget: Duration) -> Result<f64, String> {
    for t in &w.templates {
        c.decode(t);
    }
    // One checked round: every record must come out.
    let got: usize = w.data.iter().map(|d| c.decode(d)).sum();
    if got != w.records_per_round {
        return Err(format!("decoded {got} of {} records", w.records_per_round));
    }
    // The machine is shared: time many short rounds and keep the fastest, which is the
    // speed the decoder has when it is not preempted.
    let start = Instant::now();
    let mut best = Duration::MAX;
    while start.elapsed() < budget {
        let t = Instant::now();
        let mut records = 0usize;
        for d in &w.data {
            records += c.decode(d);
        }
        black_box(records);
        best = best.min(t.elapsed());
    }
    Ok(w.records_per_round as f64 / best.as_secs_f64())
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    // Optional second argument: only formats whose name contains it (e.g. `v5`).
    let only = std::env::args().nth(2).unwrap_or_default();
    println!("| format | decoder | records/s | flowdrill ÷ decoder |");
    println!("|---|---|---:|---:|");
    for w in workloads().into_iter().filter(|w| w.name.contains(&only)) {
        let mut ours = None;
        for mut c in contenders() {
            if !c.supports(w.name) {
                println!("| {} | {} | (not supported) | |", w.name, c.name());
                continue;
            }
            match measure(c.as_mut(), &w, budget) {
                Ok(rate) => {
                    let base = *ours.get_or_insert(rate);
                    println!(
                        "| {} | {} | {:.1} M | {:.1}× |",
                        w.name,
                        c.name(),
                        rate / 1e6,
                        base / rate
                    );
                }
                Err(e) => println!("| {} | {} | failed: {e} | |", w.name, c.name()),
            }
        }
    }
}
