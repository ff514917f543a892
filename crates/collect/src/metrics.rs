//! The collector's counters, rendered in Prometheus text format (version 0.0.4), and a tiny
//! HTTP/1.0 responder for them on `std::net` (one request per connection; `GET /metrics`).
//!
//! Every metric is prefixed `flowdrill_collect_`; the full list with meanings is in
//! `docs/collect.md`. Receivers publish their socket counters, and the writer thread the
//! counters of the decoders it runs, every [`crate::collector::PUBLISH_MS`]; the kernel's
//! socket drop counters and the process's memory are read when the metrics are rendered.

use crate::procnet;
use flowdrill_model::Addr;
use flowdrill_store::{StoreWriter, WriteSummary};
use flowdrill_wire::DecodeStats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One listener's counters.
#[derive(Debug)]
pub struct ListenerShared {
    pub addr: SocketAddr,
    /// The socket's inode, to find its drop counter in `/proc/net/udp`.
    pub inode: Option<u64>,
    /// SO_RCVBUF as the kernel reports it.
    pub recv_buffer: u64,
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    pub recv_errors: AtomicU64,
    /// The decoder's counters as last published.
    pub decode: Mutex<DecodeStats>,
}

impl ListenerShared {
    pub fn new(addr: SocketAddr, inode: Option<u64>, recv_buffer: u64) -> ListenerShared {
        ListenerShared {
            addr,
            inode,
            recv_buffer,
            received: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            recv_errors: AtomicU64::new(0),
            decode: Mutex::new(DecodeStats::default()),
        }
    }

    /// The receiver thread's counters.
    pub(crate) fn publish_received(&self, datagrams: u64, bytes: u64, errors: u64) {
        self.received.store(datagrams, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.recv_errors.store(errors, Ordering::Relaxed);
    }

    /// The listener's decoder counters (the decoder runs on the writer thread).
    pub(crate) fn publish_decoded(&self, st: &DecodeStats) {
        *self.decode.lock().unwrap_or_else(|e| e.into_inner()) = st.clone();
    }

    /// Datagrams the kernel dropped on this socket (receive buffer full), where it says.
    pub fn socket_drops(&self) -> Option<u64> {
        self.inode.and_then(procnet::socket_drops)
    }
}

/// The writer thread's state as last published.
#[derive(Clone, Debug, Default)]
pub struct WriterShared {
    pub records_in: u64,
    pub late: u64,
    pub dropped_by_rules: u64,
    pub open_sampled_out: u64,
    pub open_records: u64,
    pub open_bins: u64,
    /// Current threshold of the open bins, per link (absent: unsampled).
    pub z: BTreeMap<String, u64>,
}

impl WriterShared {
    pub(crate) fn snapshot(w: &StoreWriter) -> WriterShared {
        let (late, dropped, sampled_out) = w.counts();
        WriterShared {
            records_in: w.records_in(),
            late,
            dropped_by_rules: dropped,
            open_sampled_out: sampled_out,
            open_records: w.buffered_records() as u64,
            open_bins: w.open_bins() as u64,
            z: w.open_z(),
        }
    }
}

#[derive(Debug, Default)]
struct WriterTotals {
    /// What the writers replaced by a reload did (their final counts).
    finished: WriterShared,
    /// Bin files written by finished writers, by (link, level).
    finished_bins: BTreeMap<(String, u8), u64>,
    current: WriterShared,
    current_bins: BTreeMap<(String, u8), u64>,
    reloads: u64,
}

/// Everything the threads share: the stop flag and the counters.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    pub listeners: Vec<ListenerShared>,
    writer: Mutex<WriterTotals>,
    started: Instant,
}

fn bins_by_key(s: &WriteSummary) -> BTreeMap<(String, u8), u64> {
    let mut m = BTreeMap::new();
    for b in &s.bins {
        *m.entry((b.link.clone(), b.level)).or_default() += 1;
    }
    m
}

impl Shared {
    pub(crate) fn new(listeners: Vec<ListenerShared>) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            listeners,
            writer: Mutex::new(WriterTotals::default()),
            started: Instant::now(),
        }
    }

    fn w(&self) -> std::sync::MutexGuard<'_, WriterTotals> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn writer_state(&self, s: &WriterShared) {
        self.w().current = s.clone();
    }

    pub(crate) fn writer_bins(&self, s: &WriteSummary) {
        self.w().current_bins = bins_by_key(s);
    }

    /// A writer finished (on a reload, or at shutdown): its final counts join the totals.
    pub(crate) fn writer_finished(&self, s: &WriteSummary, reload: bool) {
        let mut t = self.w();
        for (k, v) in bins_by_key(s) {
            *t.finished_bins.entry(k).or_default() += v;
        }
        let f = &mut t.finished;
        f.records_in += s.records_in;
        f.late += s.late;
        f.dropped_by_rules += s.dropped.values().sum::<u64>();
        f.open_sampled_out += s.open_sampled_out;
        t.current = WriterShared::default();
        t.current_bins.clear();
        t.reloads += reload as u64;
    }

    /// Records handed to the store writer so far (all writers).
    pub fn records_stored(&self) -> u64 {
        let t = self.w();
        t.finished.records_in + t.current.records_in
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP flowdrill_collect_{name} {help}");
        let _ = writeln!(self.0, "# TYPE flowdrill_collect_{name} {kind}");
    }
    fn val(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str("flowdrill_collect_");
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, l)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(l));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The metrics in Prometheus text format.
pub fn render(s: &Shared) -> String {
    let mut o = Out(String::with_capacity(4096));
    let ls: Vec<(String, DecodeStats, &ListenerShared)> = s
        .listeners
        .iter()
        .map(|l| {
            let st = l.decode.lock().unwrap_or_else(|e| e.into_inner()).clone();
            (l.addr.to_string(), st, l)
        })
        .collect();

    o.head(
        "datagrams_received_total",
        "counter",
        "UDP datagrams received, per listener.",
    );
    for (a, _, l) in &ls {
        o.val(
            "datagrams_received_total",
            &[("listener", a)],
            l.received.load(Ordering::Relaxed),
        );
    }
    o.head(
        "bytes_received_total",
        "counter",
        "UDP payload bytes received, per listener.",
    );
    for (a, _, l) in &ls {
        o.val(
            "bytes_received_total",
            &[("listener", a)],
            l.bytes.load(Ordering::Relaxed),
        );
    }
    o.head(
        "receive_errors_total",
        "counter",
        "Socket receive errors, per listener.",
    );
    for (a, _, l) in &ls {
        o.val(
            "receive_errors_total",
            &[("listener", a)],
            l.recv_errors.load(Ordering::Relaxed),
        );
    }
    o.head(
        "socket_drops_total",
        "counter",
        "Datagrams the kernel dropped because the socket's receive buffer was full (Linux /proc/net/udp).",
    );
    for (a, _, l) in &ls {
        if let Some(d) = l.socket_drops() {
            o.val("socket_drops_total", &[("listener", a)], d);
        }
    }
    o.head(
        "socket_receive_buffer_bytes",
        "gauge",
        "SO_RCVBUF as granted by the kernel.",
    );
    for (a, _, l) in &ls {
        o.val(
            "socket_receive_buffer_bytes",
            &[("listener", a)],
            l.recv_buffer,
        );
    }
    o.head(
        "datagrams_decoded_total",
        "counter",
        "Datagrams recognised, per listener and protocol version.",
    );
    for (a, st, _) in &ls {
        for (v, vs) in [
            ("v5", st.v5),
            ("v9", st.v9),
            ("ipfix", st.ipfix),
            ("sflow", st.sflow),
        ] {
            o.val(
                "datagrams_decoded_total",
                &[("listener", a), ("version", v)],
                vs.datagrams,
            );
        }
    }
    o.head(
        "records_decoded_total",
        "counter",
        "Flow records decoded, per listener and protocol version.",
    );
    for (a, st, _) in &ls {
        for (v, vs) in [
            ("v5", st.v5),
            ("v9", st.v9),
            ("ipfix", st.ipfix),
            ("sflow", st.sflow),
        ] {
            o.val(
                "records_decoded_total",
                &[("listener", a), ("version", v)],
                vs.records,
            );
        }
    }
    o.head(
        "dropped_total",
        "counter",
        "Items the decoders dropped, per listener and reason (the reason's prefix gives the unit: datagram, set, record, template).",
    );
    for (a, st, _) in &ls {
        for (r, n) in &st.drops {
            o.val("dropped_total", &[("listener", a), ("reason", r)], n);
        }
    }
    // Per exporter, summed over listeners.
    let mut ex: BTreeMap<Addr, flowdrill_wire::ExporterStats> = BTreeMap::new();
    let mut untracked = flowdrill_wire::ExporterStats::default();
    for (_, st, _) in &ls {
        for (a, e) in &st.exporters {
            let t = ex.entry(*a).or_default();
            t.datagrams += e.datagrams;
            t.records += e.records;
            t.drops += e.drops;
            t.sequence_gaps += e.sequence_gaps;
        }
        untracked.datagrams += st.exporters_untracked.datagrams;
        untracked.records += st.exporters_untracked.records;
        untracked.drops += st.exporters_untracked.drops;
        untracked.sequence_gaps += st.exporters_untracked.sequence_gaps;
    }
    let mut rows: Vec<(String, flowdrill_wire::ExporterStats)> =
        ex.into_iter().map(|(a, e)| (a.to_string(), e)).collect();
    if untracked.datagrams > 0 {
        rows.push(("other".into(), untracked));
    }
    for (name, help, f) in [
        (
            "exporter_datagrams_total",
            "Datagrams per exporter (\"other\": past the decoder's cap of tracked exporters).",
            (|e: &flowdrill_wire::ExporterStats| e.datagrams) as fn(&_) -> u64,
        ),
        (
            "exporter_records_total",
            "Flow records decoded per exporter.",
            |e| e.records,
        ),
        (
            "exporter_drops_total",
            "Drops of any reason per exporter.",
            |e| e.drops,
        ),
        (
            "exporter_sequence_gaps_total",
            "Sequence numbers that were not the expected next one, per exporter.",
            |e| e.sequence_gaps,
        ),
    ] {
        o.head(name, "counter", help);
        for (a, e) in &rows {
            o.val(name, &[("exporter", a)], f(e));
        }
    }
    let sum = |f: fn(&DecodeStats) -> u64| ls.iter().map(|(_, st, _)| f(st)).sum::<u64>();
    o.head(
        "templates_known",
        "gauge",
        "NetFlow v9 / IPFIX templates in the decoders' caches.",
    );
    o.val("templates_known", &[], sum(|s| s.templates_active));
    o.head(
        "templates_received_total",
        "counter",
        "Template records accepted (new or refreshed).",
    );
    o.val("templates_received_total", &[], sum(|s| s.templates_seen));
    o.head(
        "templates_replaced_total",
        "counter",
        "Templates redefined under the same id (an exporter restart).",
    );
    o.val(
        "templates_replaced_total",
        &[],
        sum(|s| s.templates_replaced),
    );
    o.head(
        "pending_sets_total",
        "counter",
        "Data sets that came before their template and were held.",
    );
    o.val("pending_sets_total", &[], sum(|s| s.pending_sets));
    o.head(
        "pending_sets_resolved_total",
        "counter",
        "Held data sets decoded when their template came.",
    );
    o.val(
        "pending_sets_resolved_total",
        &[],
        sum(|s| s.pending_sets_resolved),
    );

    let t = s.w();
    let (f, c) = (&t.finished, &t.current);
    o.head(
        "records_stored_total",
        "counter",
        "Records handed to the store writer.",
    );
    o.val("records_stored_total", &[], f.records_in + c.records_in);
    o.head(
        "records_dropped_by_rules_total",
        "counter",
        "Records dropped by links-file rules.",
    );
    o.val(
        "records_dropped_by_rules_total",
        &[],
        f.dropped_by_rules + c.dropped_by_rules,
    );
    o.head(
        "records_late_total",
        "counter",
        "Records (bin parts) for bins already written; merged into their files.",
    );
    o.val("records_late_total", &[], f.late + c.late);
    o.head(
        "records_sampled_out_total",
        "counter",
        "Records (bin parts) left out by the adaptive sampling of open bins (counted in the bins' exact statistics).",
    );
    o.val(
        "records_sampled_out_total",
        &[],
        f.open_sampled_out + c.open_sampled_out,
    );
    o.head("open_records", "gauge", "Records held in open bins.");
    o.val("open_records", &[], c.open_records);
    o.head("open_bins", "gauge", "Open level-0 bins.");
    o.val("open_bins", &[], c.open_bins);
    o.head(
        "z",
        "gauge",
        "Current sampling threshold of the open bins, per link (bytes; 0 = unsampled).",
    );
    for (link, z) in &c.z {
        o.val("z", &[("link", link)], z);
    }
    o.head(
        "bins_written_total",
        "counter",
        "Bin files written, per link and level.",
    );
    let mut bins = t.finished_bins.clone();
    for (k, v) in &t.current_bins {
        *bins.entry(k.clone()).or_default() += v;
    }
    for ((link, level), n) in &bins {
        o.val(
            "bins_written_total",
            &[("link", link), ("level", &level.to_string())],
            n,
        );
    }
    o.head(
        "links_reloads_total",
        "counter",
        "Links files loaded after the start (SIGHUP).",
    );
    o.val("links_reloads_total", &[], t.reloads);
    drop(t);
    if let Some(e) = procnet::rcvbuf_errors() {
        o.head(
            "host_udp_rcvbuf_errors_total",
            "counter",
            "UDP receive buffer errors of the whole host (/proc/net/snmp RcvbufErrors).",
        );
        o.val("host_udp_rcvbuf_errors_total", &[], e);
    }
    if let Some(r) = procnet::resident_bytes() {
        o.head(
            "resident_memory_bytes",
            "gauge",
            "Resident memory of the collector process.",
        );
        o.val("resident_memory_bytes", &[], r);
    }
    o.head(
        "uptime_seconds",
        "gauge",
        "Seconds since the collector started.",
    );
    o.val(
        "uptime_seconds",
        &[],
        format!("{:.1}", s.started.elapsed().as_secs_f64()),
    );
    o.0
}

/// Serves [`render`] at `http://ADDR/metrics` on a thread of its own until `shared.stop`.
/// Returns the bound address (port 0 picks a free one).
pub fn serve(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    l.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("flowdrill-metrics".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = answer(c, &shared);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(local)
}

fn answer(mut c: TcpStream, shared: &Shared) -> std::io::Result<()> {
    c.set_nonblocking(false)?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = c.read(&mut buf)?;
        if n == 0 || req.len() > 8192 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(shared),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "flowdrill collect: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    write!(
        c,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    c.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_valid_exposition_lines_with_escaped_labels() {
        let l = ListenerShared::new("127.0.0.1:2055".parse().unwrap(), None, 1 << 20);
        let mut st = DecodeStats::default();
        st.drop("datagram: unknown version", 3);
        st.v5.records = 30;
        l.publish_received(5, 700, 0);
        l.publish_decoded(&st);
        let s = Shared::new(vec![l]);
        s.writer_state(&WriterShared {
            records_in: 30,
            z: [("a\"b".to_string(), 1500)].into(),
            ..WriterShared::default()
        });
        let text = render(&s);
        assert!(text.contains(
            "flowdrill_collect_dropped_total{listener=\"127.0.0.1:2055\",reason=\"datagram: unknown version\"} 3"
        ));
        assert!(text.contains(
            "flowdrill_collect_records_decoded_total{listener=\"127.0.0.1:2055\",version=\"v5\"} 30"
        ));
        assert!(text.contains("flowdrill_collect_z{link=\"a\\\"b\"} 1500"));
        assert!(text.contains("flowdrill_collect_records_stored_total 30"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("flowdrill_collect_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn the_http_responder_serves_metrics_and_404s_the_rest() {
        let s = Arc::new(Shared::new(vec![]));
        let addr = serve("127.0.0.1:0".parse().unwrap(), s.clone()).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut r = String::new();
            c.read_to_string(&mut r).unwrap();
            r
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.0 200 OK"), "{r}");
        assert!(r.contains("flowdrill_collect_uptime_seconds"));
        assert!(get("/nope").starts_with("HTTP/1.0 404"));
        s.stop.store(true, Ordering::SeqCst);
    }
}
