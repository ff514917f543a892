//! nfdump's stored answers (no nfdump needed): for every exporter of the mix, our filters on
//! `reference/<exporter>/flows.csv.gz` select what nfdump selected for the two reference
//! queries, `proto udp and dst port 53` (flow list) and `proto tcp and flags S and not flags
//! A` (flows, packets, bytes of `-s proto`).

use crate::util::{Key, data_dir, key, read_nfcsv_gz};
use flowdrill_filter::parse;

/// `fl`, `ipkt`, `ibyt` of an nfdump `-s proto -o csv` statistics file (one protocol row).
fn stats(path: &std::path::Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(path).expect("stats file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let row: Vec<&str> = lines.next().expect("one row").split(',').collect();
    let col = |name: &str| -> u64 {
        let i = header.iter().position(|h| *h == name).expect("column");
        row[i].trim().parse().expect("number")
    };
    (col("fl"), col("ipkt"), col("ibyt"))
}

#[test]
fn stored_reference_answers_match_on_every_exporter() {
    let Some(data) = data_dir("stored_reference_answers_match_on_every_exporter") else {
        return;
    };
    let dns = parse("proto udp and dst port 53").unwrap();
    let syn = parse("proto tcp and flags S and not flags A").unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(data.join("reference")).expect("reference folder") {
        let dir = entry.expect("entry").path();
        if !dir.join("flows.csv.gz").is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let all = read_nfcsv_gz(&dir.join("flows.csv.gz"));

        let mut ours: Vec<Key> = all.iter().filter(|r| dns.matches(r)).map(key).collect();
        let dns_ref = std::fs::read(dir.join("filter_udp_dst53.csv")).expect("dns reference");
        let mut theirs: Vec<Key> = crate::util::read_nfcsv(&dns_ref).iter().map(key).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert!(!theirs.is_empty(), "{name}: nfdump found DNS flows");
        assert_eq!(ours.len(), theirs.len(), "{name}: DNS flow count");
        assert!(ours == theirs, "{name}: DNS flows differ");

        let (flows, packets, bytes) = stats(&dir.join("filter_tcp_syn_only.stats.csv"));
        let sel: Vec<_> = all.iter().filter(|r| syn.matches(r)).collect();
        assert_eq!(sel.len() as u64, flows, "{name}: SYN-only flows");
        assert_eq!(
            sel.iter().map(|r| r.packets).sum::<u64>(),
            packets,
            "{name}: packets"
        );
        assert_eq!(
            sel.iter().map(|r| r.bytes).sum::<u64>(),
            bytes,
            "{name}: bytes"
        );
        eprintln!(
            "{name}: {} flows; DNS {}, SYN-only {flows}",
            all.len(),
            theirs.len()
        );
        checked += 1;
    }
    assert!(checked >= 6, "all six exporters checked, got {checked}");
}
