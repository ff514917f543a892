//! sFlow v5 decoding on real agents' datagrams, checked against tshark.
//!
//! Inputs: `exports/akvorado/outlet_flow_decoder_sflow_testdata_*.pcap` (akvorado's sFlow test
//! captures: compact and expanded flow samples, discarded / internal / multiple output
//! interfaces, QinQ, VXLAN, ICMPv4/v6, extended router and gateway records) and
//! `exports/ndpi/*sflow*` (counter samples only). Each capture is read with
//! [`PcapReader`], the UDP payload is found with `packet::parse`, and the datagram is decoded
//! with `sflow::decode_counting`.
//!
//! The expected values come from tshark, run at test time (`-d udp.port==6343,sflow`), one
//! line of fields per datagram: agent, sub-agent, number of samples, and per flow sample
//! the sampling rate and interfaces, plus every IP address, port and IP length tshark
//! found in the frame. Per datagram the test checks
//! - agent address (record `exporter`) and sub-agent id (`domain`);
//! - flow samples = records + skipped flow samples, counter samples = the rest;
//! - when every flow sample gave a record: per sample, in order, the sampling rate, input and
//!   output ifIndex (0 for discarded / multiple / internal output), `packets` = rate;
//! - for datagrams with one flow sample: the sampled packet's addresses, ports and IP length
//!   exactly (bytes = IP length × rate); for several: every record's addresses, ports and IP
//!   length are among the values tshark saw in that frame.
//!
//! Without tshark the test still decodes everything (no datagram may be refused) and says
//! "SKIPPED" for the comparison.

use flowdrill_ingest::pcap::PcapReader;
use flowdrill_model::{Addr, FlowRecord};
use flowdrill_wire::{packet, sflow};
use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOWDRILL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        });
    if dir.join("exports").is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: shared data not found at {}", dir.display());
        None
    }
}

fn sflow_captures(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["exports/akvorado", "exports/ndpi"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.contains("sflow") && name.ends_with(".pcap") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// One decoded datagram.
#[derive(Debug)]
struct Datagram {
    records: Vec<FlowRecord>,
    skips: sflow::Skips,
}

/// Every sFlow datagram (UDP to or from 6343) of a capture, in frame order.
fn decode_capture(path: &Path) -> Vec<Datagram> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = PcapReader::new(std::io::BufReader::new(f)).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        let info = packet::parse(p.linktype, p.data).unwrap();
        if info.proto != 17 || (info.dst_port != 6343 && info.src_port != 6343) {
            continue;
        }
        let mut records = Vec::new();
        let mut skips = sflow::Skips::default();
        let payload = &p.data[info.l4_payload.clone()];
        let n = sflow::decode_counting(
            payload,
            info.src,
            p.ts_ns / 1_000_000,
            None,
            &mut records,
            &mut skips,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(n, records.len());
        for rec in &records {
            assert_eq!(rec.time_start, p.ts_ns / 1_000_000);
        }
        out.push(Datagram { records, skips });
    }
    out
}

const FIELDS: &[&str] = &[
    "sflow_245.agent",
    "sflow_245.agent.v6",
    "sflow_245.sub_agent_id",
    "sflow_245.numsamples",
    "sflow.flow_sample.sampling_rate",
    "sflow.flow_sample.input_interface",
    "sflow.flow_sample.output_interface",
    "sflow.flow_sample.output_interface_format",
    "sflow.flow_sample.input_interface_value",
    "sflow.flow_sample.output_interface_value",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.len",
    "ipv6.plen",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
];

/// tshark's fields for each sFlow frame, or `None` when tshark is missing.
fn tshark(path: &Path) -> Option<Vec<Vec<Vec<String>>>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(path);
    cmd.args(["-d", "udp.port==6343,sflow", "-Y", "sflow", "-T", "fields"]);
    cmd.args([
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=;",
        "-E",
        "separator=/t",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().ok()?;
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .map(|l| {
                let mut cols: Vec<Vec<String>> = l
                    .split('\t')
                    .map(|c| {
                        c.split(';')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .collect();
                cols.resize(FIELDS.len(), Vec::new());
                cols
            })
            .collect(),
    )
}

fn col<'a>(row: &'a [Vec<String>], name: &str) -> &'a [String] {
    &row[FIELDS.iter().position(|f| *f == name).unwrap()]
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn nums(row: &[Vec<String>], name: &str) -> Vec<u64> {
    col(row, name).iter().map(|s| num(s)).collect()
}

fn addrs(row: &[Vec<String>], names: &[&str]) -> Vec<Addr> {
    names
        .iter()
        .flat_map(|n| col(row, n).iter().map(|s| s.parse::<Addr>().unwrap()))
        .collect()
}

/// The expected (input, output) ifIndex of each flow sample, from tshark's fields: compact
/// samples carry the output's format in its top two bits; only format 0 other than
/// 0x3fffffff ("internal") is an interface.
fn interfaces(row: &[Vec<String>]) -> Vec<(u32, u32)> {
    let ifc = |fmt: u64, v: u64| {
        if fmt == 0 && v != 0x3fff_ffff {
            v as u32
        } else {
            0
        }
    };
    let compact_in = nums(row, "sflow.flow_sample.input_interface");
    let compact_out = nums(row, "sflow.flow_sample.output_interface");
    if !compact_out.is_empty() {
        return compact_in
            .iter()
            .zip(&compact_out)
            .map(|(&i, &o)| (ifc(i >> 30, i & 0x3fff_ffff), ifc(o >> 30, o & 0x3fff_ffff)))
            .collect();
    }
    let ins = nums(row, "sflow.flow_sample.input_interface_value");
    let outs = nums(row, "sflow.flow_sample.output_interface_value");
    ins.iter()
        .zip(&outs)
        .map(|(&i, &o)| (ifc(0, i), ifc(0, o)))
        .collect()
}

#[test]
fn sflow_datagrams_decode_as_tshark_reads_them() {
    let Some(dir) = data_dir() else { return };
    let captures = sflow_captures(&dir);
    assert!(
        captures.len() >= 10,
        "expected the akvorado and nDPI sFlow captures, found {captures:?}"
    );
    let mut total_records = 0;
    let mut exact_checked = 0;
    let mut have_tshark = true;
    for path in &captures {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let dgrams = decode_capture(path);
        assert!(!dgrams.is_empty(), "{name}: no sFlow datagram");
        total_records += dgrams.iter().map(|d| d.records.len()).sum::<usize>();
        let Some(rows) = tshark(path) else {
            have_tshark = false;
            continue;
        };
        assert_eq!(rows.len(), dgrams.len(), "{name}: datagrams");
        for (k, (row, d)) in rows.iter().zip(&dgrams).enumerate() {
            let ctx = format!("{name} datagram {k}");
            let agent = addrs(row, &["sflow_245.agent", "sflow_245.agent.v6"]);
            let sub_agent = num(&col(row, "sflow_245.sub_agent_id")[0]) as u32;
            let rates = nums(row, "sflow.flow_sample.sampling_rate");
            let samples = num(&col(row, "sflow_245.numsamples")[0]);
            let skipped_flow = d.skips.non_ip + d.skips.bad_header + d.skips.no_packet_record;
            assert_eq!(
                d.records.len() as u64 + skipped_flow,
                rates.len() as u64,
                "{ctx}: flow samples"
            );
            assert_eq!(
                d.skips.counter_samples + d.skips.unknown_samples,
                samples - rates.len() as u64,
                "{ctx}: other samples"
            );
            for r in &d.records {
                assert_eq!(r.exporter, agent[0], "{ctx}: exporter is the agent");
                assert_eq!(r.domain, sub_agent, "{ctx}");
            }
            if skipped_flow == 0 {
                let ifs = interfaces(row);
                assert_eq!(ifs.len(), d.records.len(), "{ctx}: interfaces");
                for (i, r) in d.records.iter().enumerate() {
                    assert_eq!(r.sampling_rate as u64, rates[i], "{ctx} sample {i}: rate");
                    assert_eq!(r.packets, rates[i], "{ctx} sample {i}: packets");
                    assert_eq!((r.in_if, r.out_if), ifs[i], "{ctx} sample {i}: interfaces");
                }
            }
            // Addresses, ports and lengths tshark saw in the frame (the first IPv4 ones are
            // the datagram's own UDP/IP header).
            let v4_src = addrs(row, &["ip.src"]);
            let v4_dst = addrs(row, &["ip.dst"]);
            let v6_src = addrs(row, &["ipv6.src"]);
            let v6_dst = addrs(row, &["ipv6.dst"]);
            let ip_len = nums(row, "ip.len");
            let v6_len: Vec<u64> = nums(row, "ipv6.plen").iter().map(|p| p + 40).collect();
            let tcp = (nums(row, "tcp.srcport"), nums(row, "tcp.dstport"));
            let udp = (nums(row, "udp.srcport"), nums(row, "udp.dstport"));
            let icmp: Vec<u64> = nums(row, "icmp.type")
                .iter()
                .zip(nums(row, "icmp.code"))
                .chain(
                    nums(row, "icmpv6.type")
                        .iter()
                        .zip(nums(row, "icmpv6.code")),
                )
                .map(|(t, c)| t * 256 + c)
                .collect();
            for (i, r) in d.records.iter().enumerate() {
                let ctx = format!("{ctx} record {i}");
                let ip_bytes = r.bytes / r.packets;
                assert_eq!(r.bytes % r.packets, 0, "{ctx}");
                let (srcs, dsts, lens) = if r.src_addr.is_v4() {
                    (&v4_src[1..], &v4_dst[1..], &ip_len[1..])
                } else {
                    (&v6_src[..], &v6_dst[..], &v6_len[..])
                };
                let (sports, dports): (Vec<u64>, Vec<u64>) = match r.proto {
                    6 => tcp.clone(),
                    // The first UDP header is the datagram's own.
                    17 => (udp.0[1..].to_vec(), udp.1[1..].to_vec()),
                    _ => (vec![0], icmp.clone()),
                };
                if rates.len() == 1 {
                    // One sampled packet: tshark's first inner values are this packet's.
                    assert_eq!(r.src_addr, srcs[0], "{ctx}: src");
                    assert_eq!(r.dst_addr, dsts[0], "{ctx}: dst");
                    assert_eq!(ip_bytes, lens[0], "{ctx}: ip length");
                    assert_eq!(r.src_port as u64, sports[0], "{ctx}: src port");
                    assert_eq!(r.dst_port as u64, dports[0], "{ctx}: dst port");
                    exact_checked += 1;
                } else {
                    assert!(
                        srcs.contains(&r.src_addr),
                        "{ctx}: src {} not in {srcs:?}",
                        r.src_addr
                    );
                    assert!(
                        dsts.contains(&r.dst_addr),
                        "{ctx}: dst {} not in {dsts:?}",
                        r.dst_addr
                    );
                    assert!(
                        lens.contains(&ip_bytes),
                        "{ctx}: ip length {ip_bytes} not in {lens:?}"
                    );
                    assert!(
                        sports.contains(&(r.src_port as u64)),
                        "{ctx}: src port {}",
                        r.src_port
                    );
                    assert!(
                        dports.contains(&(r.dst_port as u64)),
                        "{ctx}: dst port {}",
                        r.dst_port
                    );
                }
            }
        }
    }
    if !have_tshark {
        eprintln!("SKIPPED: tshark not found; decoded {total_records} records without comparing");
        return;
    }
    eprintln!(
        "sflow: {} captures, {total_records} records, {exact_checked} checked field by field",
        captures.len()
    );
    assert!(total_records >= 15, "{total_records}");
    assert!(exact_checked >= 8, "{exact_checked}");
}

#[test]
fn extended_router_and_gateway_records_are_read() {
    // tshark's view of the same extended records: next hop, masks and the AS path's last AS.
    let Some(dir) = data_dir() else { return };
    let path = dir.join(
        "exports/akvorado/outlet_flow_decoder_sflow_testdata_data-sflow-expanded-sample.pcap",
    );
    if !path.exists() {
        eprintln!("SKIPPED: {} not found", path.display());
        return;
    }
    let dgrams = decode_capture(&path);
    let r = &dgrams[0].records[0];
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args(["-d", "udp.port==6343,sflow", "-T", "fields"])
        .args([
            "-e",
            "sflow_245.nexthop",
            "-e",
            "sflow_245.nexthop.src_mask",
            "-e",
            "sflow_245.nexthop.dst_mask",
        ])
        .args([
            "-e",
            "sflow_245.srcAS",
            "-e",
            "sflow_245.dstAS",
            "-e",
            "sflow_245.communityEntries",
        ])
        .args(["-E", "occurrence=a", "-E", "aggregator=;"])
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED: tshark not found");
        return;
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
    let first = |s: &str| s.split(';').next().unwrap().to_string();
    assert_eq!(r.next_hop, first(f[0]).parse::<Addr>().unwrap());
    assert_eq!(r.src_mask as u64, num(&first(f[1])));
    assert_eq!(r.dst_mask as u64, num(&first(f[2])));
    assert_eq!(r.src_as as u64, num(&first(f[3])));
    // tshark lists the AS path and then the communities under one field name: the path's
    // last AS sits just before the communities.
    let dst: Vec<u64> = f[4].split(';').map(num).collect();
    let communities = num(&first(f[5])) as usize;
    assert_eq!(r.dst_as as u64, dst[dst.len() - communities - 1], "{f:?}");
    assert_ne!(r.dst_as, 0);
}
