//! Our filters against nfdump's: for each expression, the records we select from an
//! exporter's flows are exactly (as a multiset) the records `nfdump -R DIR -o csv EXPR`
//! prints, both read by `flowdrill_ingest::nfcsv`.
//!
//! Needs `nfdump` on the PATH and the shared data; prints "SKIPPED: ..." without them.
//! Every expression runs on softflowd v9 (IPv4 and IPv6, TCP flags) and nfpcapd (LZ4 files,
//! split flows, more ICMP); every fourth also on pmacctd IPFIX and softflowd v5.
//! `FLOWDRILL_NFDUMP_ALL=1` runs every expression on all six exporters. When we select more
//! than half of the flows, the complements are compared (`not (EXPR)`), which keeps nfdump's
//! CSV output, and the run time, small.
//!
//! `DIFFERENT` lists where we deliberately differ from nfdump 1.7.1, with the reason; each
//! entry gives a restriction under which both agree (checked), or none (then the test checks
//! that nfdump still disagrees, so that the list stays true).

use crate::util::{Key, data_dir, key, read_nfcsv};
use flowdrill_model::FlowRecord;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Expressions whose selection must equal nfdump's exactly.
const SAME: &[&str] = &[
    // protocols
    "proto tcp",
    "proto udp",
    "proto icmp",
    "proto icmp6",
    "proto 47",
    "proto 41",
    "proto 0",
    "PROTO TCP",
    "not proto tcp",
    "proto tcp or proto udp",
    // ports, comparisons and words
    "port 80",
    "src port 80",
    "dst port 443",
    "proto tcp and dst port 443",
    "proto udp and dst port 53",
    "port > 1023",
    "port < 1024",
    "dst port >= 49152",
    "src port <= 1023",
    "port gt 1023",
    "port lt 1024",
    "port eq 443",
    "port == 443",
    "port = 443",
    "dst port ge 8000 and dst port le 8080",
    "port in [80 443]",
    "port in [ 80, 443, 8080 ]",
    "src port in [53 123]",
    "dst port in [22 23 3389]",
    "src or dst port 53",
    "src and dst port 53",
    "dst or src port 443",
    "dst and src port 137",
    "src port > 1023 and dst port < 1024",
    // ports on protocols without ports: ICMP carries type*256+code in the destination port
    "port 0",
    "dst port 771",
    "proto icmp and dst port 771",
    "port 0 and not proto icmp",
    "icmp-type 3",
    "icmp-type 8",
    "icmp-code 3",
    "icmp-code 0",
    "icmp-type 0 or icmp-type 8",
    "icmp-type 135",
    // hosts
    "host 10.10.10.1",
    "ip 10.10.10.1",
    "src host 10.10.10.1",
    "dst ip 10.10.10.1",
    "src and dst host ::1",
    "host 2a01:cb01:2049:8b07:991d:ec85:28df:f629",
    "dst host 2a00:1450:4007:80a::200a",
    "ip in [10.10.10.1 10.10.10.10]",
    "ip in [10.10.10.0/24]",
    "src ip in [192.168.1.0/24, 10.10.10.1]",
    "dst ip in [2a00:1450:4007:80a::200a 8.8.8.8]",
    "src host 192.168.1.236 or dst host 192.168.1.236",
    // networks
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16",
    "dst net 172.16.0.0/12",
    "net 172.16/12",
    "net 192.168/16",
    "inet and net 10.0.0.0 255.0.0.0",
    "src net 192.168.1.0 255.255.255.0",
    "not net 10.0.0.0/8",
    "net 2a00:1450::/32",
    "src net 2a01:cb01::/32",
    "net fe80::/10",
    "net ff02::/16",
    "net 64:ff9b::/96",
    "net 10.10.10.7/24",
    "src and dst net 192.168.0.0/16",
    "src or dst net 10.0.0.0/8",
    "dst net 224.0.0.0/4",
    "net 147.229.0.0/16 and proto udp",
    // address families
    "inet",
    "inet6",
    "ipv4",
    "ipv6",
    "ipv6 and proto udp",
    "not inet6",
    // TCP flags (imply proto tcp, so "not flags A" selects every non-TCP flow)
    "flags S",
    "flags A",
    "flags SA",
    "flags F",
    "flags R",
    "flags P",
    "flags U",
    "flags X",
    "flags FSRPAU",
    "not flags A",
    "proto tcp and flags S and not flags A",
    "flags RA",
    "flags 2",
    "flags > 2",
    "flags < 16",
    "flags 0",
    "flags S or proto udp",
    // counters and nfdump's x1000 suffixes
    "bytes > 1000",
    "bytes > 1k",
    "bytes > 1K",
    "bytes > 100k",
    "bytes >= 1M",
    "bytes < 100",
    "bytes = 46",
    "bytes 60",
    "packets < 10",
    "packets > 100",
    "packets 1",
    "packets lt 2",
    "in bytes > 1500",
    "in packets > 3",
    "bytes > 1500 and packets < 3",
    "packets > 1k",
    // ToS, interfaces, AS, next hop, masks
    "tos 0",
    "tos > 0",
    "src tos 0",
    "tos 184",
    "in if 0",
    "out if 0",
    "if 0",
    "in if 3",
    "next ip 0.0.0.0",
    "next ip in [0.0.0.0]",
    "router ip 127.0.0.1",
    "router ip 0.0.0.0",
    "mask 0",
    "src mask 0",
    "dst mask 24",
    // constants and boolean structure, nfdump's precedence
    "any",
    "not any",
    "",
    "proto tcp and dst port 443 and not net 10.0.0.0/8",
    "not proto tcp and port 80",
    "proto udp or proto tcp and port 53",
    "(proto udp or proto tcp) and port 53",
    "! proto tcp && port 80 || port 53",
    "not (port 80 or port 443)",
    "not not proto udp",
    "proto tcp and (flags S and not flags A) and dst net 10.10.10.0/24",
    "(host 10.10.10.1 or host 10.10.10.10) and not port 80",
    "proto tcp # a comment\n and port 80",
    "((((proto udp))))",
];

/// Where we deliberately differ from nfdump 1.7.1: (expression, reason, restriction under
/// which both agree).
const DIFFERENT: &[(&str, &str, Option<&str>)] = &[
    (
        "net 0.0.0.0/0",
        "nfdump compares IPv4 nets on its 128-bit form, so IPv4-compatible IPv6 addresses \
         (::, ::1, ::a.b.c.d) match IPv4 nets; an IPv4 prefix never matches IPv6 here",
        Some("inet"),
    ),
    (
        "net 0.0.0.0/1",
        "as above: nfdump's IPv4 nets also match :: and ::1",
        Some("inet"),
    ),
    (
        "host 0.0.0.0",
        "as above: nfdump's 0.0.0.0 also matches the IPv6 address ::",
        Some("inet"),
    ),
    (
        "net ::/0",
        "nfdump selects what net 0.0.0.0/0 selects (all IPv4 plus :: and ::1; its /0 mask \
         for IPv6 is a 64-bit shift by 64); ::/0 here is every IPv6 address",
        None,
    ),
    (
        "net 10.0.0.0 255.0.0.0",
        "nfdump's netmask form ignores the upper 64 bits of an IPv6 address, so IPv6 \
         addresses whose low 32 bits fit the IPv4 net match \
         (2a01:4f8:0:1::add:9898 is in 10.0.0.0 255.0.0.0); here the netmask form is IPv4 only",
        Some("inet"),
    ),
    (
        "as 0",
        "nfdump 1.7.1 refuses every AS filter without a geo location database (\"Can not \
         filter according geo elements\"); here AS filters compare the src_as/dst_as fields",
        None,
    ),
    ("src as > 0 or dst as 0", "as above", None),
];

/// The exporters, whether every expression runs there, and their file folder.
const EXPORTERS: &[(&str, bool)] = &[
    ("softflowd_v9_devmix", true),
    ("nfpcapd_devmix", true),
    ("pmacctd_v10_devmix", false),
    ("softflowd_v5_devmix", false),
];

/// Exporters compared only with `FLOWDRILL_NFDUMP_ALL=1`.
const MORE_EXPORTERS: &[&str] = &["softflowd_v10_devmix", "pmacctd_v9_devmix"];

fn nfdump_available() -> bool {
    Command::new("nfdump")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A folder nfdump can read with `-R`: the exporter's folder itself when its files are not
/// gzipped, else the files gunzipped into `tmp`.
fn readable_dir(src: &Path, tmp: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(src)
        .expect("exporter folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    if !files
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "gz"))
    {
        return src.to_path_buf();
    }
    std::fs::create_dir_all(tmp).expect("temp dir");
    for f in files {
        let name = f
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let Some(stem) = name.strip_suffix(".gz") else {
            continue;
        };
        let mut out = std::fs::File::create(tmp.join(stem)).expect("create");
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&f).expect("open"));
        std::io::copy(&mut gz, &mut out).expect("gunzip");
    }
    tmp.to_path_buf()
}

fn run_nfdump(dir: &Path, expr: &str) -> Result<Vec<FlowRecord>, String> {
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-o", "csv"])
        .arg(expr)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(read_nfcsv(&out.stdout))
}

fn sorted_keys<'a>(rs: impl Iterator<Item = &'a FlowRecord>) -> Vec<Key> {
    let mut k: Vec<Key> = rs.map(key).collect();
    k.sort_unstable();
    k
}

/// Ours vs nfdump's on one expression: `Ok((ours, theirs))` counts when equal as multisets.
fn compare(all: &[FlowRecord], dir: &Path, expr: &str) -> Result<(usize, usize), String> {
    let f = flowdrill_filter::parse(expr).map_err(|e| format!("we reject it: {e}"))?;
    // nfdump writing (and us reading) tens of thousands of CSV lines dominates the run time:
    // when we select more than half of the flows, compare the complements instead, which is
    // equivalent because both sides negate exactly (`not` in nfdump inverts the node).
    let n = all.iter().filter(|r| f.matches(r)).count();
    let negate = n > all.len() / 2;
    let (f, expr) = if negate {
        let text = if expr.trim().is_empty() {
            "not any".to_string()
        } else {
            format!("not ({expr})")
        };
        (flowdrill_filter::Expr::not(f), text)
    } else {
        (f, expr.to_string())
    };
    let ours = sorted_keys(all.iter().filter(|r| f.matches(r)));
    let theirs = sorted_keys(run_nfdump(dir, &expr)?.iter());
    if ours == theirs {
        return Ok((ours.len(), theirs.len()));
    }
    let only_ours = ours.iter().find(|k| theirs.binary_search(k).is_err());
    let only_theirs = theirs.iter().find(|k| ours.binary_search(k).is_err());
    Err(format!(
        "{}we select {}, nfdump {}; first only ours: {:?}; first only nfdump's: {:?}; IR: {f}",
        if negate { "negated: " } else { "" },
        ours.len(),
        theirs.len(),
        only_ours.and_then(|k| all.iter().find(|r| key(r) == *k)),
        only_theirs.and_then(|k| all.iter().find(|r| key(r) == *k)),
    ))
}

#[test]
fn selections_equal_nfdumps_on_the_mix() {
    let Some(data) = data_dir("selections_equal_nfdumps_on_the_mix") else {
        return;
    };
    if !nfdump_available() {
        eprintln!("SKIPPED: selections_equal_nfdumps_on_the_mix: nfdump is not installed");
        return;
    }
    assert!(SAME.len() >= 100, "at least 100 expressions are compared");
    let all_everywhere = std::env::var_os("FLOWDRILL_NFDUMP_ALL").is_some();
    let tmp = std::env::temp_dir().join(format!("flowdrill-filter-nfdump-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut compared = 0;
    let more: Vec<(&str, bool)> = if all_everywhere {
        MORE_EXPORTERS.iter().map(|e| (*e, true)).collect()
    } else {
        Vec::new()
    };
    for &(exporter, full) in EXPORTERS.iter().chain(&more) {
        let src = data.join("generated/nfcapd").join(exporter);
        if !src.is_dir() {
            eprintln!("SKIPPED: {exporter}: no folder {}", src.display());
            continue;
        }
        let dir = readable_dir(&src, &tmp.join(exporter));
        let all = run_nfdump(&dir, "any").expect("nfdump reads the folder");
        let mut n = 0;
        for (i, expr) in SAME.iter().enumerate() {
            if !(full || all_everywhere || i % 4 == 0) {
                continue;
            }
            n += 1;
            if let Err(e) = compare(&all, &dir, expr) {
                failures.push(format!("{exporter}: {expr:?}: {e}"));
            }
        }
        for (expr, reason, restriction) in DIFFERENT {
            if !(full || all_everywhere) {
                continue;
            }
            match restriction {
                Some(r) => {
                    let restricted = format!("{r} and ({expr})");
                    if let Err(e) = compare(&all, &dir, &restricted) {
                        failures.push(format!(
                            "{exporter}: {restricted:?} should agree ({reason}): {e}"
                        ));
                    }
                }
                None => {
                    if let Ok((a, b)) = compare(&all, &dir, expr) {
                        failures.push(format!(
                            "{exporter}: {expr:?} agrees with nfdump ({a} = {b}), but is \
                             documented as different ({reason}): update DIFFERENT and the docs"
                        ));
                    }
                }
            }
        }
        eprintln!("{exporter}: {} flows, {n} expressions compared", all.len());
        compared += n;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        failures.is_empty(),
        "{} of {compared} comparisons differ from nfdump:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
