//! Import: find out what a file is from its content, and turn it into flow records.
//!
//! ```text
//!  file ──► gzip? ──► detect ──┬─ export capture (pcap/pcapng of UDP datagrams) ─► wire::Decoder ─┐
//!                              ├─ packet capture (raw traffic) ──────────────────► meter::Meter ──┤
//!                              ├─ IPFIX file (RFC 5655: IPFIX messages back to back) ► Decoder ───┼─► anonymise ─► sink
//!                              ├─ nfcapd file (nfdump 1.7 layout) ───────────────► nfcapd ───────┤
//!                              └─ nfdump CSV (`nfdump -o csv`) ──────────────────► nfcsv ────────┘
//! ```
//!
//! The kind of input is decided from the bytes, never from the file name. A pcap is an export
//! capture when most of its first packets are UDP datagrams that parse as NetFlow, IPFIX or
//! sFlow headers; otherwise its packets are raw traffic for the flow meter. Every record, drop
//! and reason is counted in the [`ImportSummary`]; bad input never panics.

use crate::anon::Anonymizer;
use crate::meter::{Meter, MeterConfig};
use crate::{nfcapd, nfcsv, pcap};
use flowdrill_model::{Addr, FlowRecord};
use flowdrill_wire::{Decoder, DecoderConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// pcap/pcapng of NetFlow/IPFIX/sFlow export datagrams.
    ExportCapture,
    /// pcap/pcapng of raw traffic, metered into flows.
    PacketCapture,
    /// RFC 5655 IPFIX file.
    IpfixFile,
    /// nfdump's nfcapd file.
    Nfcapd,
    /// nfdump's CSV output.
    NfdumpCsv,
}

impl InputKind {
    pub fn name(self) -> &'static str {
        match self {
            InputKind::ExportCapture => "export capture",
            InputKind::PacketCapture => "packet capture",
            InputKind::IpfixFile => "IPFIX file",
            InputKind::Nfcapd => "nfcapd file",
            InputKind::NfdumpCsv => "nfdump CSV",
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to import.
#[derive(Debug, Default)]
pub struct ImportConfig {
    pub decoder: DecoderConfig,
    pub meter: MeterConfig,
    /// Skip detection: treat a pcap as export datagrams or as raw packets.
    pub force_pcap_as: Option<InputKind>,
    pub anonymize: Option<Anonymizer>,
}

/// Why an import stopped. Drops of single records or packets are not errors: they are counted
/// in the summary.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "{path}: not a format flowdrill reads (expected pcap/pcapng, IPFIX file, nfcapd file or nfdump CSV; first bytes {head})"
    )]
    UnknownFormat { path: String, head: String },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("writing records: {0}")]
    Sink(String),
}

/// What an import read, made and dropped.
#[derive(Clone, Debug, Default)]
pub struct ImportSummary {
    pub kind: Option<InputKind>,
    /// Bytes of input read (as stored: compressed bytes for a gzip'd file).
    pub input_bytes: u64,
    pub compressed: bool,
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
    pub exporters: BTreeSet<Addr>,
    /// Export datagrams (or IPFIX messages) decoded, for export inputs.
    pub datagrams: u64,
    /// Templates the decoder learnt.
    pub templates: u64,
    /// Packets read from a capture.
    pub capture_packets: u64,
    /// Dropped items by "stage: reason".
    pub drops: BTreeMap<String, u64>,
    /// A problem that ended reading early (a truncated file): the records before it are kept.
    pub stopped_early: Option<String>,
}

impl ImportSummary {
    fn add_records(&mut self, recs: &[FlowRecord]) {
        for r in recs {
            self.records += 1;
            self.packets += r.packets;
            self.bytes += r.bytes;
            self.first_ms = Some(self.first_ms.map_or(r.time_start, |t| t.min(r.time_start)));
            self.last_ms = Some(self.last_ms.map_or(r.time_end, |t| t.max(r.time_end)));
            if !r.exporter.is_unspecified() {
                self.exporters.insert(r.exporter);
            }
        }
    }
    fn drop(&mut self, what: impl Into<String>, n: u64) {
        if n > 0 {
            *self.drops.entry(what.into()).or_default() += n;
        }
    }
    /// Adds another file's summary (for multi-file imports).
    pub fn merge(&mut self, o: &ImportSummary) {
        self.input_bytes += o.input_bytes;
        self.records += o.records;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.first_ms = match (self.first_ms, o.first_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ms = match (self.last_ms, o.last_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.exporters.extend(o.exporters.iter().copied());
        self.datagrams += o.datagrams;
        self.templates += o.templates;
        self.capture_packets += o.capture_packets;
        for (k, v) in &o.drops {
            *self.drops.entry(k.clone()).or_default() += v;
        }
    }
}

/// Where imported records go (the store writer, a counter in tests...).
pub trait RecordSink {
    /// Takes a batch of records; the batch is cleared by the caller afterwards.
    fn accept(&mut self, batch: &[FlowRecord]) -> Result<(), String>;
}

impl<F: FnMut(&[FlowRecord]) -> Result<(), String>> RecordSink for F {
    fn accept(&mut self, batch: &[FlowRecord]) -> Result<(), String> {
        self(batch)
    }
}

/// Progress: bytes of the (decompressed) input read so far, readable from another thread.
#[derive(Clone, Debug, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn bytes_read(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

const BATCH: usize = 8192;
const HEAD: usize = 4096;
/// Packets examined to tell an export capture from raw traffic.
const PROBE_PACKETS: usize = 64;

/// Imports files one after another with shared state: NetFlow v9/IPFIX templates learnt in one
/// file decode data in the next, and the flow meter carries flows across consecutive captures
/// (as `tcpdump -C` splits them). Call [`Importer::finish`] at the end: it decodes or drops
/// what still waits for a template and expires the meter's open flows.
#[derive(Debug)]
pub struct Importer {
    cfg: ImportConfig,
    decoder: Decoder,
    meter: Option<Meter>,
    progress: Progress,
    /// Decoder and meter counters already handed out in a summary, so each summary gets only
    /// what its own file (or the final flush) added.
    reported: BTreeMap<String, u64>,
    reported_templates: u64,
}

impl Importer {
    pub fn new(cfg: ImportConfig) -> Importer {
        Importer {
            decoder: Decoder::new(cfg.decoder.clone()),
            meter: None,
            cfg,
            progress: Progress::default(),
            reported: BTreeMap::new(),
            reported_templates: 0,
        }
    }

    /// A handle to read the progress from another thread.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Imports one file.
    pub fn import_file(
        &mut self,
        path: &Path,
        sink: &mut dyn RecordSink,
    ) -> Result<ImportSummary, ImportError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        self.import_reader(&p, BufReader::with_capacity(1 << 20, file), sink)
    }

    /// Imports from any reader; `name` is used in messages.
    pub fn import_reader(
        &mut self,
        name: &str,
        r: impl Read,
        sink: &mut dyn RecordSink,
    ) -> Result<ImportSummary, ImportError> {
        let io_err = |source| ImportError::Io {
            path: name.to_string(),
            source,
        };
        let mut summary = ImportSummary::default();
        let start_bytes = self.progress.bytes_read();
        // Progress counts the bytes of the file as stored (compressed or not), so that it can
        // be compared with file sizes.
        let mut r = Counting {
            inner: r,
            progress: self.progress.clone(),
        };
        let head = read_head(&mut r, 2).map_err(io_err)?;
        let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            summary.compressed = true;
            Box::new(flate2::read::MultiGzDecoder::new(
                io::Cursor::new(head).chain(r),
            ))
        } else {
            Box::new(io::Cursor::new(head).chain(r))
        };
        let mut reader = reader;
        let head = read_head(&mut reader, HEAD).map_err(io_err)?;
        let kind = detect(&head).ok_or_else(|| ImportError::UnknownFormat {
            path: name.to_string(),
            head: head
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        let input = io::Cursor::new(head).chain(reader);
        let mut out = Vec::with_capacity(BATCH);
        let mut emit = Emitter {
            anonymize: self.cfg.anonymize.as_mut(),
            sink,
        };
        let format_err = |e: &dyn fmt::Display| ImportError::Format {
            path: name.to_string(),
            message: e.to_string(),
        };
        match kind {
            InputKind::Nfcapd => {
                summary.kind = Some(kind);
                let mut rd = nfcapd::NfcapdReader::new(input).map_err(|e| format_err(&e))?;
                loop {
                    match rd.read_block(&mut out) {
                        Ok(more) => {
                            if out.len() >= BATCH || !more {
                                emit.emit(&mut out, &mut summary)?;
                            }
                            if !more {
                                break;
                            }
                        }
                        Err(e) => {
                            emit.emit(&mut out, &mut summary)?;
                            summary.stopped_early = Some(e.to_string());
                            summary.drop("nfcapd: unreadable rest of file", 1);
                            break;
                        }
                    }
                }
            }
            InputKind::NfdumpCsv => {
                summary.kind = Some(kind);
                let mut rd =
                    nfcsv::Reader::new(BufReader::new(input)).map_err(|e| format_err(&e))?;
                loop {
                    match rd.next_record() {
                        Ok(Some(r)) => {
                            out.push(r);
                            if out.len() >= BATCH {
                                emit.emit(&mut out, &mut summary)?;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            emit.emit(&mut out, &mut summary)?;
                            return Err(format_err(&e));
                        }
                    }
                }
                emit.emit(&mut out, &mut summary)?;
            }
            InputKind::IpfixFile => {
                summary.kind = Some(kind);
                ipfix_file(input, &mut self.decoder, &mut out, &mut summary, &mut emit)?;
                emit.emit(&mut out, &mut summary)?;
            }
            InputKind::ExportCapture | InputKind::PacketCapture => {
                let mut rd = pcap::PcapReader::new(input).map_err(|e| format_err(&e))?;
                let force = self.cfg.force_pcap_as;
                let meter_cfg = &self.cfg.meter;
                let meter = &mut self.meter;
                let mut engines = Engines {
                    decoder: &mut self.decoder,
                    meter_cfg,
                    meter,
                };
                capture(
                    &mut rd,
                    force,
                    &mut engines,
                    &mut out,
                    &mut summary,
                    &mut emit,
                )?;
            }
        }
        summary.input_bytes = self.progress.bytes_read() - start_bytes;
        self.take_new_counts(&mut summary);
        Ok(summary)
    }

    /// Adds to `summary` the decoder's and meter's drops and templates not reported before.
    fn take_new_counts(&mut self, summary: &mut ImportSummary) {
        let st = self.decoder.stats();
        let mut now: Vec<(String, u64)> = st
            .drops
            .iter()
            .map(|(reason, n)| (format!("decode: {reason}"), *n))
            .collect();
        if let Some(m) = self.meter.as_ref() {
            let ms = m.stats();
            now.push(("meter: not an IP packet".to_string(), ms.non_ip_frames));
            now.extend(
                ms.parse_errors
                    .iter()
                    .map(|(reason, n)| (format!("meter: {reason}"), *n)),
            );
        }
        for (k, n) in now {
            let seen = self.reported.entry(k.clone()).or_default();
            summary.drop(k, n - *seen);
            *seen = n;
        }
        summary.templates += st.templates_seen - self.reported_templates;
        self.reported_templates = st.templates_seen;
    }

    /// Ends the import: data still waiting for templates is decoded or counted as dropped, the
    /// meter's open flows are expired, and the decoder's and meter's counters are reported.
    pub fn finish(&mut self, sink: &mut dyn RecordSink) -> Result<ImportSummary, ImportError> {
        let mut summary = ImportSummary::default();
        let mut out = Vec::new();
        let mut emit = Emitter {
            anonymize: self.cfg.anonymize.as_mut(),
            sink,
        };
        self.decoder.finish(&mut out);
        if let Some(m) = self.meter.as_mut() {
            m.finish(&mut out);
        }
        emit.emit(&mut out, &mut summary)?;
        self.take_new_counts(&mut summary);
        Ok(summary)
    }

    /// The decoder's counters so far.
    pub fn decode_stats(&self) -> &flowdrill_wire::DecodeStats {
        self.decoder.stats()
    }

    /// The flow meter's counters, when a packet capture was read.
    pub fn meter_stats(&self) -> Option<&crate::meter::MeterStats> {
        self.meter.as_ref().map(|m| m.stats())
    }
}

struct Emitter<'a> {
    anonymize: Option<&'a mut Anonymizer>,
    sink: &'a mut dyn RecordSink,
}

impl Emitter<'_> {
    /// Anonymises, counts and hands a batch to the sink, then clears it.
    fn emit(
        &mut self,
        out: &mut Vec<FlowRecord>,
        summary: &mut ImportSummary,
    ) -> Result<(), ImportError> {
        if out.is_empty() {
            return Ok(());
        }
        if let Some(a) = self.anonymize.as_mut() {
            out.iter_mut().for_each(|r| a.apply(r));
        }
        summary.add_records(out);
        let res = self.sink.accept(out).map_err(ImportError::Sink);
        out.clear();
        res
    }
}

struct Engines<'a> {
    decoder: &'a mut Decoder,
    meter_cfg: &'a MeterConfig,
    meter: &'a mut Option<Meter>,
}

/// Reads up to `n` bytes (fewer only at end of input).
fn read_head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.by_ref().take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Decides the kind of input from its first bytes (decompressed). A pcap is reported as
/// [`InputKind::PacketCapture`] here; `capture` looks at its packets to tell export captures.
pub fn detect(head: &[u8]) -> Option<InputKind> {
    if pcap::looks_like_pcap(head) {
        return Some(InputKind::PacketCapture);
    }
    if nfcapd::looks_like_nfcapd(head) {
        return Some(InputKind::Nfcapd);
    }
    if head.len() >= 16 && head[0] == 0 && head[1] == 10 {
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        if len >= 16 {
            return Some(InputKind::IpfixFile);
        }
    }
    if nfcsv::looks_like_nfcsv(head) {
        return Some(InputKind::NfdumpCsv);
    }
    None
}

/// True when a UDP payload looks like the start of a NetFlow v5/v9, IPFIX or sFlow v5 datagram.
pub fn looks_like_export(p: &[u8]) -> bool {
    if p.len() < 16 {
        return false;
    }
    let v16 = u16::from_be_bytes([p[0], p[1]]);
    let count = u16::from_be_bytes([p[2], p[3]]) as usize;
    match v16 {
        5 => (1..=30).contains(&count) && p.len() == 24 + 48 * count,
        9 => p.len() >= 20 && count <= 1000,
        10 => count == p.len(),
        0 => {
            // sFlow v5: version (u32) 5, agent address type 1 (IPv4) or 2 (IPv6).
            let v = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let at = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            v == 5 && (at == 1 || at == 2) && p.len() >= 28
        }
        _ => false,
    }
}

fn ipfix_file(
    mut input: impl Read,
    dec: &mut Decoder,
    out: &mut Vec<FlowRecord>,
    summary: &mut ImportSummary,
    emit: &mut Emitter<'_>,
) -> Result<(), ImportError> {
    let io_err = |source| ImportError::Io {
        path: "IPFIX file".into(),
        source,
    };
    let mut msg = Vec::with_capacity(65_536);
    loop {
        let mut hdr = [0u8; 16];
        match read_exact_or_eof(&mut input, &mut hdr).map_err(io_err)? {
            0 => return Ok(()),
            16 => {}
            n => {
                summary.stopped_early = Some(format!("truncated IPFIX message header ({n} bytes)"));
                summary.drop("ipfix file: truncated message", 1);
                return Ok(());
            }
        }
        let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
        if hdr[0] != 0 || hdr[1] != 10 || len < 16 {
            summary.stopped_early = Some(format!(
                "not an IPFIX message header after {} messages",
                summary.datagrams
            ));
            summary.drop("ipfix file: bad message header", 1);
            return Ok(());
        }
        msg.clear();
        msg.extend_from_slice(&hdr);
        msg.resize(len, 0);
        let got = read_exact_or_eof(&mut input, &mut msg[16..]).map_err(io_err)?;
        if got < len - 16 {
            summary.stopped_early = Some("truncated IPFIX message at end of file".into());
            summary.drop("ipfix file: truncated message", 1);
            return Ok(());
        }
        let export_s = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as u64;
        summary.datagrams += 1;
        // An IPFIX file does not say which exporter wrote it; its messages share one template
        // space keyed by the unspecified address and each message's observation domain.
        dec.decode(Addr::UNSPECIFIED_V4, export_s * 1000, &msg, out);
        if out.len() >= BATCH {
            emit.emit(out, summary)?;
        }
    }
}

fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Buffered {
    ts_ns: u64,
    linktype: u32,
    data: Vec<u8>,
}

/// Reads a pcap/pcapng: decides from its first packets whether it holds export datagrams or
/// raw traffic (unless `force` says), then feeds the decoder or the meter.
fn capture<R: Read>(
    rd: &mut pcap::PcapReader<R>,
    force: Option<InputKind>,
    engines: &mut Engines<'_>,
    out: &mut Vec<FlowRecord>,
    summary: &mut ImportSummary,
    emit: &mut Emitter<'_>,
) -> Result<(), ImportError> {
    let mut probe = Vec::new();
    let mut early_error = None;
    while probe.len() < PROBE_PACKETS {
        match rd.next_packet() {
            Ok(Some(p)) => probe.push(Buffered {
                ts_ns: p.ts_ns,
                linktype: p.linktype,
                data: p.data.to_vec(),
            }),
            Ok(None) => break,
            Err(e) => {
                early_error = Some(e.to_string());
                break;
            }
        }
    }
    let export_votes = probe
        .iter()
        .filter(|b| {
            flowdrill_wire::packet::parse(b.linktype, &b.data)
                .map(|pi| pi.proto == 17 && looks_like_export(&b.data[pi.l4_payload.clone()]))
                .unwrap_or(false)
        })
        .count();
    let kind = force.unwrap_or(if !probe.is_empty() && export_votes * 2 >= probe.len() {
        InputKind::ExportCapture
    } else {
        InputKind::PacketCapture
    });
    summary.kind = Some(kind);
    let export = kind == InputKind::ExportCapture;
    if !export && engines.meter.is_none() {
        *engines.meter = Some(Meter::new(engines.meter_cfg.clone()));
    }
    let mut handle = |ts_ns: u64,
                      linktype: u32,
                      data: &[u8],
                      out: &mut Vec<FlowRecord>,
                      summary: &mut ImportSummary| {
        summary.capture_packets += 1;
        if export {
            match flowdrill_wire::packet::parse(linktype, data) {
                Ok(pi) if pi.proto == 17 && !pi.non_first_fragment => {
                    summary.datagrams += 1;
                    let payload = &data[pi.l4_payload.clone()];
                    engines
                        .decoder
                        .decode(pi.src, ts_ns / 1_000_000, payload, out);
                }
                Ok(_) => summary.drop("capture: not a UDP datagram", 1),
                Err(_) => summary.drop("capture: not an IP packet", 1),
            }
        } else if let Some(m) = engines.meter.as_mut() {
            m.push(ts_ns, linktype, data, out);
        }
    };
    for b in &probe {
        handle(b.ts_ns, b.linktype, &b.data, out, summary);
    }
    drop(probe);
    if early_error.is_none() {
        loop {
            match rd.next_packet() {
                Ok(Some(p)) => {
                    let (ts, lt) = (p.ts_ns, p.linktype);
                    handle(ts, lt, p.data, out, summary);
                    if out.len() >= BATCH {
                        emit.emit(out, summary)?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    early_error = Some(e.to_string());
                    break;
                }
            }
        }
    }
    if let Some(e) = early_error {
        summary.drop("capture: unreadable rest of file", 1);
        summary.stopped_early = Some(e);
    }
    emit.emit(out, summary)
}
