//! Decoding real exporter data with `flowdrill_wire::Decoder`, checked against independent
//! decoders: logstash-codec-netflow's spec (values parsed from the `.rb` at test time),
//! python-netflow's tests (hex packets and expectations parsed from the `.py` sources), nfdump's
//! flow counts on every real-device export capture, and nfcapd's records for the exports
//! softflowd and pmacctd made of the developer mix.
//!
//! The data is never copied into the repository: it is located through `FLOWDRILL_DATA` or
//! `../../../shared/data`, and every test prints `SKIPPED: ...` and passes when it is absent.

use flowdrill_model::{Addr, FlowRecord};
use flowdrill_wire::{DecodeStats, Decoder, DecoderConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

fn localhost() -> Addr {
    "127.0.0.1".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// logstash-codec-netflow: the spec's contexts, parsed from the .rb
// ---------------------------------------------------------------------------------------------

/// One `context "..."` of the logstash spec.
#[derive(Debug, Default)]
struct SpecCase {
    name: String,
    files: Vec<String>,
    size: Option<usize>,
    /// (event index, logstash field name, expected value as written in Ruby)
    checks: Vec<(usize, String, String)>,
    /// A repeated context name (see `parse_spec`): not checked.
    repeated: bool,
}

fn parse_spec(text: &str) -> Vec<SpecCase> {
    let mut cases: Vec<SpecCase> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("context \"") {
            let name = rest.split('"').next().unwrap_or("").to_string();
            // A later context of the same name replays cached templates across several
            // examples (logstash's cache_save_path); its data lines do not form one sequence.
            if cases.iter().any(|c| c.name == name) {
                cases.push(SpecCase {
                    name,
                    repeated: true,
                    ..Default::default()
                });
                continue;
            }
            cases.push(SpecCase {
                name,
                ..Default::default()
            });
            continue;
        }
        let Some(case) = cases.last_mut() else {
            continue;
        };
        if t.contains("IO.read(") && t.contains(".dat\"") {
            if let Some(f) = t.split('"').find(|s| s.ends_with(".dat")) {
                case.files.push(f.to_string());
            }
        } else if let Some(rest) = t.strip_prefix("expect(decode.size).to eq(") {
            case.size = rest.trim_end_matches(')').parse().ok();
        } else if let Some(rest) = t.strip_prefix("expect(decode[") {
            // expect(decode[0].get("[netflow][ipv4_src_addr]")).to eq("10.0.2.2")
            let Some((idx, rest)) = rest.split_once(']') else {
                continue;
            };
            let Some(field) = rest.split("[netflow][").nth(1).and_then(|r| r.split(']').next())
            else {
                continue;
            };
            let Some(val) = rest.split(".to eq(").nth(1) else {
                continue;
            };
            let val = val.strip_suffix(')').unwrap_or(val).trim_matches(|c| c == '"' || c == '\'').to_string();
            if let Ok(i) = idx.parse() {
                case.checks.push((i, field.to_string(), val));
            }
        }
    }
    cases
}

/// The FlowRecord value of a logstash field, as a string comparable with the spec's;
/// `None` for fields flowdrill does not keep.
fn logstash_field(r: &FlowRecord, field: &str) -> Option<String> {
    Some(match field {
        "ipv4_src_addr" | "sourceIPv4Address" | "sourceIPv6Address" | "ipv6_src_addr" => {
            r.src_addr.to_string()
        }
        "ipv4_dst_addr" | "destinationIPv4Address" | "destinationIPv6Address"
        | "ipv6_dst_addr" => r.dst_addr.to_string(),
        "l4_src_port" | "sourceTransportPort" => r.src_port.to_string(),
        "l4_dst_port" | "destinationTransportPort" => r.dst_port.to_string(),
        "protocol" | "protocolIdentifier" => r.proto.to_string(),
        "tcp_flags" | "tcpControlBits" => r.tcp_flags.to_string(),
        "in_bytes" | "octetDeltaCount" => r.bytes.to_string(),
        "in_pkts" | "packetDeltaCount" => r.packets.to_string(),
        "src_tos" | "ipClassOfService" => r.tos.to_string(),
        "src_as" | "bgpSourceAsNumber" => r.src_as.to_string(),
        "dst_as" | "bgpDestinationAsNumber" => r.dst_as.to_string(),
        "ipNextHopIPv6Address" | "ipv6_next_hop" | "ipv4_next_hop" => r.next_hop.to_string(),
        "flowEndMicroseconds" | "flowEndMilliseconds" | "last_switched" => iso_ms(r.time_end),
        "flowStartMicroseconds" | "flowStartMilliseconds" | "first_switched" => {
            iso_ms(r.time_start)
        }
        _ => return None,
    })
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` (what both sides are cut to before comparing).
fn iso_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

fn decode_files(dir: &Path, files: &[String]) -> (Vec<FlowRecord>, DecodeStats) {
    let mut dec = Decoder::new(DecoderConfig::default());
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(dir.join(format!("spec_codecs_{f}"))).unwrap();
        dec.decode(localhost(), 0, &bytes, &mut out);
    }
    dec.finish(&mut out);
    (out, dec.stats().clone())
}

#[test]
fn logstash_spec_values_are_decoded() {
    let Some(data) = data_dir() else { return };
    let dir = data.join("exports/logstash-codec-netflow");
    let spec = std::fs::read_to_string(dir.join("spec_codecs_netflow_spec.rb")).unwrap();
    let cases = parse_spec(&spec);
    assert!(cases.len() > 40, "spec parsed into {} contexts", cases.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for case in &cases {
        if case.files.is_empty() || case.repeated {
            continue;
        }
        let (recs, stats) = decode_files(&dir, &case.files);
        let events = recs.len() as u64 + stats.options_records;
        report.push(format!(
            "{:60} logstash {:>3?} flowdrill {:>3} flows + {:>2} options  drops {:?}",
            case.name, case.size, recs.len(), stats.options_records, stats.drops
        ));
        // logstash emits options records as events too.
        if let Some(want) = case.size {
            if events as usize != want {
                failures.push(format!("{}: {} events, spec says {want}", case.name, events));
            }
        }
        // Options events are interleaved with flows, so event indexes only map onto
        // flowdrill's records when there are none.
        if stats.options_records > 0 {
            continue;
        }
        for (i, field, want) in &case.checks {
            let Some(r) = recs.get(*i) else {
                failures.push(format!("{}: no record {i}", case.name));
                continue;
            };
            let Some(got) = logstash_field(r, field) else {
                continue;
            };
            let want = if got.contains('T') {
                want.get(..23).unwrap_or(want).to_string()
            } else {
                want.clone()
            };
            checked += 1;
            if got != want {
                failures.push(format!("{}: [{i}] {field} = {got}, spec says {want}", case.name));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 60, "only {checked} values checked");
}
