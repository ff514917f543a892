//! `flowdrill collect` as it runs: the binary on 127.0.0.1 ephemeral ports, fed by
//! `flowdrill replay` or by datagrams built here, stopped with SIGTERM, SIGKILL or by itself.
//! Each test finishes in seconds.

mod common;

use common::*;
use flowdrill_model::ColumnSource;
use flowdrill_store::Store;
use flowdrill_wire::netflow::build::{MessageBuilder, V4_TEMPLATE, record, v4_record};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 2024-01-01 00:00 UTC, ms.
const T0: u64 = 1_704_067_200_000;

/// A collector process.
struct Running {
    child: Child,
    udp: SocketAddr,
    metrics: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

fn start(store: &Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowdrill"))
        .args(["--store", store.to_str().unwrap(), "collect"])
        .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(extra)
        .env_remove("FLOWDRILL_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flowdrill binary runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut udp, mut metrics) = (None, None);
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(a) = line.strip_prefix("flowdrill collect: listening on udp ") {
            udp = Some(a.parse().unwrap());
        } else if let Some(a) = line.strip_prefix("flowdrill collect: metrics on http://") {
            metrics = Some(a.trim_end_matches("/metrics").parse().unwrap());
        } else if line.contains("ready") {
            break;
        }
    }
    let stderr = Arc::new(Mutex::new(seen));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    let (udp, metrics) = match (udp, metrics) {
        (Some(u), Some(m)) => (u, m),
        _ => panic!("collector did not start: {}", stderr.lock().unwrap()),
    };
    Running {
        child,
        udp,
        metrics,
        stderr,
    }
}

impl Running {
    fn metrics_text(&self) -> String {
        let mut c = TcpStream::connect(self.metrics).unwrap();
        write!(c, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r).unwrap();
        assert!(r.starts_with("HTTP/1.0 200"), "{r}");
        r
    }

    /// The sum of a metric over its label sets whose labels contain `filter`.
    fn metric(&self, name: &str, filter: &str) -> f64 {
        metric_in(&self.metrics_text(), name, filter)
    }

    /// Waits until `metric(name) >= want` (panics after 20 s).
    fn wait_for(&self, name: &str, filter: &str, want: f64) {
        let t = Instant::now();
        loop {
            let v = self.metric(name, filter);
            if v >= want {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{name} stayed at {v}, want {want}\n{}",
                self.metrics_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM, and the exit status and everything the collector said.
    fn term(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let err = self.stderr.lock().unwrap().clone();
        (st, err)
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

fn metric_in(text: &str, name: &str, filter: &str) -> f64 {
    let full = format!("flowdrill_collect_{name}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            let base = k.split('{').next()?;
            (base == full && k.contains(filter)).then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

fn links_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("links.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Level-0 bins of a link: start → (flows, packets, bytes, records stored).
fn bins(store: &Path, link: &str) -> BTreeMap<u64, (u64, u64, u64, u64)> {
    let s = Store::open(store).unwrap();
    assert!(
        s.skipped().is_empty(),
        "unreadable files: {:?}",
        s.skipped()
    );
    let mut m = BTreeMap::new();
    for b in s.bins(link, 0..u64::MAX, 0).unwrap() {
        // Every file reads back, records and statistics.
        let batch = s.read_bin(&b, &[flowdrill_model::Field::Bytes]).unwrap();
        assert_eq!(batch.len() as u64, b.records_after);
        let st = s.bin_stats(&b).unwrap();
        assert_eq!(st.total.flows, b.flows);
        m.insert(b.start, (b.flows, b.packets, b.bytes, b.records_after));
    }
    m
}

fn totals(b: &BTreeMap<u64, (u64, u64, u64, u64)>) -> (u64, u64, u64) {
    b.values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2))
}

/// `generate --kind ipfix --no-events` into `out`.
fn capture(out: &Path, flows: &str, duration: &str) {
    ok(&[
        "generate",
        "--kind",
        "ipfix",
        "--flows",
        flows,
        "--duration",
        duration,
        "--no-events",
        "--out",
        out.to_str().unwrap(),
    ]);
}

/// `import` of `cap` into a fresh store with `links`.
fn imported(dir: &Path, cap: &Path, links: &Path) -> PathBuf {
    let store = dir.join("imported");
    ok(&[
        "--quiet",
        "--store",
        store.to_str().unwrap(),
        "import",
        "--links",
        links.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    store
}

/// `replay CAP --to ADDR --rate RATE`; the records sent.
fn replay(cap: &Path, to: SocketAddr, rate: &str) -> u64 {
    let out = ok(&[
        "replay",
        cap.to_str().unwrap(),
        "--to",
        &to.to_string(),
        "--rate",
        rate,
    ]);
    out.split_whitespace()
        .skip_while(|w| *w != "datagrams,")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {out}"))
}

/// Sends datagrams with a short pause now and then (loopback loses nothing that way).
fn send_all(to: SocketAddr, datagrams: &[Vec<u8>]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, d) in datagrams.iter().enumerate() {
        s.send_to(d, to).unwrap();
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A v5 datagram of `n` records starting at T0 + `offset_s`, `bytes` each.
fn v5(n: usize, offset_s: u32, bytes: u32) -> Vec<u8> {
    let unix = (T0 / 1000) as u32 + offset_s + 120;
    let recs: Vec<_> = (0..n as u32)
        .map(|i| {
            (
                0x0a00_0001 + i,
                0xc000_0201,
                1000 + i as u16,
                443,
                6,
                3,
                bytes,
                10_000,
                20_000,
            )
        })
        .collect();
    flowdrill_wire::netflow::v5::build(130_000, unix, 0, &recs)
}

#[test]
fn sigterm_writes_the_open_bins_and_the_store_equals_an_import_of_the_same_capture() {
    let d = tmp("collect-term");
    let cap = d.join("x.pcap");
    capture(&cap, "20000", "20m");
    let links = links_file(&d, UNSAMPLED);
    let reference = imported(&d, &cap, &links);
    let store = d.join("live");
    let c = start(&store, &["--links", links.to_str().unwrap()]);
    let sent = replay(&cap, c.udp, "200k");
    c.wait_for("records_stored_total", "", sent as f64);
    assert_eq!(c.metric("socket_drops_total", ""), 0.0);
    assert_eq!(c.metric("dropped_total", ""), 0.0);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    assert!(err.contains("writing the open bins"), "{err}");
    let (live, want) = (bins(&store, "default"), bins(&reference, "default"));
    assert_eq!(live, want, "bins differ from the import's");
    assert_eq!(totals(&live).0, 20000);
    // Record for record (the exporter column differs: 127.0.0.1 here, the capture's source
    // address in the import).
    let export = |s: &Path| {
        let out = ok(&[
            "--store",
            s.to_str().unwrap(),
            "export",
            "--fields",
            "time_start,time_end,src_addr,dst_addr,src_port,dst_port,proto,tcp_flags,packets,bytes",
            "-o",
            "-",
            "--as",
            "csv",
        ]);
        let mut lines: Vec<String> = out.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let (a, b) = (export(&store), export(&reference));
    assert!(a.len() > 20000);
    assert_eq!(a, b);
}

#[test]
fn garbage_mixed_into_a_valid_stream_is_counted_and_every_valid_record_stored() {
    let d = tmp("collect-garbage");
    let links = links_file(&d, UNSAMPLED);
    let store = d.join("live");
    let c = start(&store, &["--links", links.to_str().unwrap()]);
    let mut dg = Vec::new();
    let mut garbage = 0;
    for i in 0..200u32 {
        dg.push(v5(30, i, 1000 + i));
        match i % 5 {
            0 => dg.push(vec![
                0x12, 0x34, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
            ]),
            1 => dg.push(vec![0, 5]),
            2 => {
                let mut t = v5(30, i, 1);
                t.truncate(24 + 48 * 7 + 5); // header says 30 records
                dg.push(t);
            }
            3 => dg.push(vec![0, 10, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            _ => dg.push((0..200u32).map(|k| (k * 7 + i) as u8).collect()),
        }
        garbage += 1;
    }
    send_all(c.udp, &dg);
    c.wait_for("datagrams_received_total", "", (200 + garbage) as f64);
    c.wait_for("records_stored_total", "", 6000.0);
    let m = c.metrics_text();
    assert!(metric_in(&m, "dropped_total", "") >= garbage as f64, "{m}");
    assert!(
        metric_in(&m, "dropped_total", "unknown version") >= 40.0,
        "{m}"
    );
    assert_eq!(
        metric_in(&m, "records_decoded_total", "version=\"v5\""),
        6000.0
    );
    assert!(metric_in(&m, "exporter_drops_total", "127.0.0.1") >= garbage as f64);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    let (flows, _, bytes) = totals(&bins(&store, "default"));
    assert_eq!(flows, 6000);
    assert_eq!(bytes, (0..200u64).map(|i| 30 * (1000 + i)).sum::<u64>());
}

/// An IPFIX message: optional template 256 (`layout`), then data records.
fn ipfix(seq: u32, layout: Option<&[(u16, u16)]>, id: u16, data: &[Vec<u8>]) -> Vec<u8> {
    let mut m = MessageBuilder::ipfix((T0 / 1000) as u32 + 600, seq, 7);
    if let Some(l) = layout {
        m = m.template(id, l);
    }
    if !data.is_empty() {
        m = m.data(id, data, 0);
    }
    m.finish()
}

#[test]
fn an_exporter_restart_reusing_a_template_id_with_another_layout_decodes_both() {
    let d = tmp("collect-restart-tpl");
    let links = links_file(&d, UNSAMPLED);
    let store = d.join("live");
    let c = start(&store, &["--links", links.to_str().unwrap()]);
    let before: Vec<Vec<u8>> = (0..10u32)
        .map(|i| v4_record(0x0a00_0100 + i, 0x0a00_0200, 5000, 80, 2, 1000, T0 + 1000))
        .collect();
    // After the restart: template 256 again, counters first and 4-byte counters.
    let layout2: &[(u16, u16)] = &[(1, 4), (2, 4), (8, 4), (12, 4), (4, 1), (152, 8), (153, 8)];
    let after: Vec<Vec<u8>> = (0..10u32)
        .map(|i| {
            record(&[
                (2000, 4),
                (3, 4),
                (0x0a00_0300 + i as u128, 4),
                (0x0a00_0400, 4),
                (17, 1),
                (T0 as u128 + 2000, 8),
                (T0 as u128 + 2500, 8),
            ])
        })
        .collect();
    send_all(
        c.udp,
        &[
            ipfix(0, Some(V4_TEMPLATE), 256, &before),
            ipfix(0, Some(layout2), 256, &after),
        ],
    );
    c.wait_for("records_stored_total", "", 20.0);
    assert!(c.metric("templates_replaced_total", "") >= 1.0);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    let (flows, packets, bytes) = totals(&bins(&store, "default"));
    assert_eq!(
        (flows, packets, bytes),
        (20, 10 * 2 + 10 * 3, 10 * 1000 + 10 * 2000)
    );
}

/// Data sets that come before their template are held (the decoder's pending data, 4 MiB at
/// most) and decoded when the template arrives, as in an import.
#[test]
fn data_before_its_template_is_held_and_decoded_when_the_template_comes() {
    let d = tmp("collect-early-data");
    let links = links_file(&d, UNSAMPLED);
    let store = d.join("live");
    let c = start(&store, &["--links", links.to_str().unwrap()]);
    let data: Vec<Vec<u8>> = (0..25u32)
        .map(|i| v4_record(0x0a00_0100 + i, 0x0a00_0200, 5000, 80, 1, 100, T0 + 1000))
        .collect();
    send_all(c.udp, &[ipfix(0, None, 300, &data)]);
    c.wait_for("pending_sets_total", "", 1.0);
    assert_eq!(c.metric("records_stored_total", ""), 0.0);
    send_all(c.udp, &[ipfix(1, Some(V4_TEMPLATE), 300, &[])]);
    c.wait_for("records_stored_total", "", 25.0);
    assert_eq!(c.metric("pending_sets_resolved_total", ""), 1.0);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    assert_eq!(totals(&bins(&store, "default")), (25, 25, 2500));
}

#[test]
fn kill_9_keeps_every_written_bin_and_a_restart_merges_into_them() {
    let d = tmp("collect-kill9");
    let cap = d.join("x.pcap");
    capture(&cap, "20000", "30m");
    let links = links_file(&d, UNSAMPLED);
    let reference = bins(&imported(&d, &cap, &links), "default");
    let store = d.join("live");
    let args = ["--links", links.to_str().unwrap(), "--close-after", "1m"];
    let c = start(&store, &args);
    let sent = replay(&cap, c.udp, "200k");
    c.wait_for("records_stored_total", "", sent as f64);
    // At least two bins closed (how many depends on how far the event clock has run).
    c.wait_for("bins_written_total", "level=\"0\"", 2.0);
    assert_eq!(c.metric("records_late_total", ""), 0.0);
    c.kill9();
    // What was written is intact: every file readable, and every bin equal to the import's.
    let written = bins(&store, "default");
    assert!(
        written.len() >= 2 && written.len() < reference.len(),
        "{written:?}"
    );
    for (start, v) in &written {
        assert_eq!(Some(v), reference.get(start), "bin {start}");
    }
    // A restart goes on: the same capture again is merged into the bins on disk.
    let c = start(&store, &args);
    let sent2 = replay(&cap, c.udp, "200k");
    assert_eq!(sent2, sent);
    c.wait_for("records_stored_total", "", sent as f64);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    let after = bins(&store, "default");
    assert_eq!(after.len(), reference.len());
    for (start, r) in &reference {
        let got = after[start];
        let k = if written.contains_key(start) { 2 } else { 1 };
        assert_eq!(
            (got.0, got.1, got.2, got.3),
            (k * r.0, k * r.1, k * r.2, k * r.3),
            "bin {start}"
        );
    }
}

#[test]
fn sighup_reloads_the_links_rules() {
    let d = tmp("collect-hup");
    let links = links_file(&d, UNSAMPLED);
    let store = d.join("live");
    let c = start(&store, &["--links", links.to_str().unwrap()]);
    send_all(c.udp, &[v5(10, 0, 500)]);
    c.wait_for("records_stored_total", "", 10.0);
    std::fs::write(
        &links,
        format!(
            "{UNSAMPLED}\n[[link]]\nname = \"lab\"\n\n[[rule]]\nexporter = \"127.0.0.1\"\nlink = \"lab\"\n"
        ),
    )
    .unwrap();
    c.signal("-HUP");
    c.wait_for("links_reloads_total", "", 1.0);
    send_all(c.udp, &[v5(7, 0, 700)]);
    c.wait_for("records_stored_total", "", 17.0);
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    assert!(err.contains("links reloaded"), "{err}");
    assert_eq!(totals(&bins(&store, "default")), (10, 30, 5000));
    assert_eq!(totals(&bins(&store, "lab")), (7, 21, 4900));
}

/// Memory stays bounded in a flood of distinct flows: past the cap an open bin is sampled
/// adaptively, while its exact counters count every flow.
#[test]
fn a_flood_past_the_open_bin_cap_is_sampled_in_memory_and_counted_exactly() {
    let d = tmp("collect-flood");
    let cap = d.join("x.pcap");
    capture(&cap, "30000", "5m");
    let links = links_file(&d, UNSAMPLED);
    let store = d.join("live");
    let c = start(
        &store,
        &[
            "--links",
            links.to_str().unwrap(),
            "--max-bin-records",
            "2000",
        ],
    );
    let sent = replay(&cap, c.udp, "150k");
    c.wait_for("records_stored_total", "", sent as f64);
    let m = c.metrics_text();
    assert!(metric_in(&m, "open_records", "") <= 4000.0, "{m}");
    assert!(
        metric_in(&m, "records_sampled_out_total", "") > 20_000.0,
        "{m}"
    );
    assert!(metric_in(&m, "z", "default") > 0.0, "{m}");
    let (st, err) = c.term();
    assert!(st.success(), "{err}");
    let b = bins(&store, "default");
    assert_eq!(totals(&b).0, 30000);
    let kept: u64 = b.values().map(|v| v.3).sum();
    assert!(kept <= 2 * 2 * 2000, "{kept} records kept");
}
