//! The export encoders: NetFlow v5, NetFlow v9 and IPFIX datagrams of flow records, and the
//! export pcap (Ethernet/IP/UDP frames from the exporter to a collector, one per datagram,
//! stamped with its export time).
//!
//! ```text
//! records (start order) ─► heap by time_end ─► Exporter::push(record, export time)
//!                          (released once no later-starting      │ fills one datagram:
//!                           record can end earlier)              │ header, [templates],
//!                                                                ▼ sets of data records
//!                                                  Datagram { export_ms, payload } ─► pcap
//! ```
//!
//! Layout decisions, all as real exporters do and as collectors expect:
//! - v5: 24-byte header + up to 30 × 48-byte IPv4 records; `flow_sequence` counts records
//!   sent before the datagram; engine type/id = `domain >> 8` / `domain & 0xff`; counters
//!   wider than 32 bits are split over several records (counted in
//!   [`ExportStats::split_records`]); IPv6 records are skipped ([`ExportStats::skipped_ipv6`]).
//! - v9: template 256 (IPv4) and 257 (IPv6), times as sysUptime ms (`FIRST/LAST_SWITCHED`);
//!   the header sequence counts datagrams; `count` counts every record of the datagram,
//!   template records included.
//! - IPFIX: the same templates with absolute `flowStart/EndMilliseconds` (152/153); the
//!   sequence counts data records (options data records included) sent before the message
//!   (RFC 7011 §3.1).
//! - Templates open the first datagram and every `template_every`-th after it; with
//!   `sampling_rate > 1` an options template (258) and an options data record carrying
//!   samplingInterval (34) and samplingAlgorithm (35) follow them, and each record's counters
//!   are those of deterministic 1-in-N packet sampling (records left with no packet are not
//!   exported).
//!
//! Invariant: times decode exactly — `unix_secs`, `unix_nsecs` and `sysUptime` of a header
//! are all derived from one export instant and one boot time, so `boot + First` is the
//! record's `time_start` to the millisecond.

use crate::pcap::{PcapWriter, udp_frame};
use crate::rng::mix64;
use crate::truth::Counts;
use crate::{Error, Scenario, records};
use flowdrill_model::{Addr, FlowRecord, proto};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

/// The export protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    V5,
    V9,
    Ipfix,
}

/// Why an export setting is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("unknown export format '{0}': use v5, v9 or ipfix")]
    UnknownFormat(String),
}

impl std::str::FromStr for ExportFormat {
    type Err = ExportError;
    /// `v5`, `v9`, `ipfix` (also `v10`, `netflow5`, `netflow9`), any case.
    fn from_str(s: &str) -> Result<ExportFormat, ExportError> {
        match s.to_ascii_lowercase().as_str() {
            "v5" | "5" | "netflow5" => Ok(ExportFormat::V5),
            "v9" | "9" | "netflow9" => Ok(ExportFormat::V9),
            "ipfix" | "v10" | "10" => Ok(ExportFormat::Ipfix),
            _ => Err(ExportError::UnknownFormat(s.to_string())),
        }
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExportFormat::V5 => "v5",
            ExportFormat::V9 => "v9",
            ExportFormat::Ipfix => "ipfix",
        })
    }
}

/// How records are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Destination of the datagrams in the export pcap.
    pub collector: Addr,
    pub collector_port: u16,
    /// Source port of the datagrams.
    pub exporter_port: u16,
    /// 1-in-N packet sampling applied before export (1 = unsampled).
    pub sampling_rate: u32,
    /// Templates (and sampling options) are re-sent every this many datagrams (≥ 1).
    pub template_every: u32,
    /// A record is exported this long after its last packet (the cache's idle timeout).
    pub export_delay_ms: u64,
    /// A partly filled datagram is sent at most this long after its first record.
    pub flush_ms: u64,
    /// Largest v9/IPFIX payload in bytes (v5 always holds at most 30 records).
    pub max_datagram: usize,
    /// Exporter boot time (sysUptime 0), Unix ms; `None`: one hour before the first flow.
    pub boot_ms: Option<u64>,
    /// Nanosecond pcap timestamps.
    pub nanos: bool,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            collector: Addr::from_v4_octets([127, 0, 0, 1]),
            collector_port: 2055,
            exporter_port: 40_000,
            sampling_rate: 1,
            template_every: 20,
            export_delay_ms: 1_000,
            flush_ms: 1_000,
            max_datagram: 1_400,
            boot_ms: None,
            nanos: false,
        }
    }
}

/// What an export produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub datagrams: u64,
    /// Flow data records written (after splitting, skipping and sampling).
    pub records: u64,
    /// Flow records, packets and bytes as written into the datagrams (sampled counters when
    /// sampling; a collector multiplies them by the rate).
    pub exported: Counts,
    pub template_records: u64,
    pub option_records: u64,
    /// v5 cannot carry IPv6.
    pub skipped_ipv6: u64,
    /// Extra records made by splitting counters wider than v5's 32 bits.
    pub split_records: u64,
    /// Records that kept no packet under sampling.
    pub sampled_out: u64,
    /// Size of the export pcap, when one was written.
    pub file_bytes: u64,
}

/// One finished datagram (the UDP payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub export_ms: u64,
    pub payload: Vec<u8>,
}

/// Templates: (information element, length). 256 = IPv4, 257 = IPv6.
const V9_V4: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (15, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (9, 1),
    (13, 1),
    (10, 4),
    (14, 4),
    (16, 4),
    (17, 4),
    (2, 8),
    (1, 8),
    (22, 4),
    (21, 4),
    (32, 2),
];
const V9_V6: &[(u16, u16)] = &[
    (27, 16),
    (28, 16),
    (62, 16),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (29, 1),
    (30, 1),
    (10, 4),
    (14, 4),
    (16, 4),
    (17, 4),
    (2, 8),
    (1, 8),
    (22, 4),
    (21, 4),
    (139, 2),
];
const IPFIX_V4: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (15, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (9, 1),
    (13, 1),
    (10, 4),
    (14, 4),
    (16, 4),
    (17, 4),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
    (32, 2),
];
const IPFIX_V6: &[(u16, u16)] = &[
    (27, 16),
    (28, 16),
    (62, 16),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (29, 1),
    (30, 1),
    (10, 4),
    (14, 4),
    (16, 4),
    (17, 4),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
    (139, 2),
];
pub const TEMPLATE_V4: u16 = 256;
pub const TEMPLATE_V6: u16 = 257;
pub const TEMPLATE_OPTIONS: u16 = 258;

fn rec_len(t: &[(u16, u16)]) -> usize {
    t.iter().map(|f| f.1 as usize).sum()
}

/// A stateful exporter: sequence numbers, template refresh and the datagram being filled.
#[derive(Debug)]
pub struct Exporter {
    format: ExportFormat,
    opts: ExportOptions,
    domain: u32,
    boot_ms: u64,
    buf: Vec<u8>,
    /// Records in the current datagram (v5: flows; v9: all records for `count`).
    count: u16,
    /// Data records (flow and options) in the current datagram: the IPFIX sequence step.
    data_records: u32,
    /// Offset of the open set's header and its id.
    open_set: Option<(usize, u16)>,
    /// Export time of the current datagram's first record.
    first_ms: Option<u64>,
    last_ms: u64,
    seq: u32,
    stats: ExportStats,
}

impl Exporter {
    /// An exporter for records of observation domain `domain`, booted at `boot_ms`.
    pub fn new(format: ExportFormat, domain: u32, boot_ms: u64, opts: &ExportOptions) -> Exporter {
        Exporter {
            format,
            opts: ExportOptions {
                template_every: opts.template_every.max(1),
                sampling_rate: opts.sampling_rate.max(1),
                ..opts.clone()
            },
            domain,
            boot_ms,
            buf: Vec::with_capacity(1500),
            count: 0,
            data_records: 0,
            open_set: None,
            first_ms: None,
            last_ms: 0,
            seq: 0,
            stats: ExportStats::default(),
        }
    }

    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Exports one record at `now_ms` (≥ the previous call's); finished datagrams are
    /// appended to `out`.
    pub fn push(&mut self, r: &FlowRecord, now_ms: u64, out: &mut Vec<Datagram>) {
        if let Some(first) = self.first_ms
            && now_ms > first + self.opts.flush_ms
        {
            self.finish(first + self.opts.flush_ms, out);
        }
        self.last_ms = self.last_ms.max(now_ms);
        let rate = self.opts.sampling_rate as u64;
        let mut r = r.clone();
        if rate > 1 {
            let offset =
                mix64(r.time_start ^ (r.src_addr.0 as u64) ^ ((r.src_port as u64) << 48) ^ r.bytes)
                    % rate;
            let kept = (r.packets + offset) / rate;
            if kept == 0 {
                self.stats.sampled_out += 1;
                return;
            }
            r.bytes = (r.bytes as u128 * kept as u128 / r.packets as u128) as u64;
            r.packets = kept;
        }
        match self.format {
            ExportFormat::V5 => self.push_v5(r, now_ms, out),
            _ => self.push_template(&r, now_ms, out),
        }
    }

    /// Sends the partly filled datagram, if any.
    pub fn flush(&mut self, out: &mut Vec<Datagram>) {
        if self.first_ms.is_some() {
            self.finish(self.last_ms, out);
        }
    }

    fn push_v5(&mut self, r: FlowRecord, now_ms: u64, out: &mut Vec<Datagram>) {
        if !r.src_addr.is_v4() || !r.dst_addr.is_v4() {
            self.stats.skipped_ipv6 += 1;
            return;
        }
        // Counters wider than 32 bits: k records, counters and duration shared out.
        let k = (r.packets.div_ceil(u32::MAX as u64))
            .max(r.bytes.div_ceil(u32::MAX as u64))
            .max(1);
        self.stats.split_records += k - 1;
        let dur = r.time_end - r.time_start;
        for j in 0..k {
            let share = |v: u64| v / k + if j < v % k { 1 } else { 0 };
            let mut part = r.clone();
            part.packets = share(r.packets);
            part.bytes = share(r.bytes);
            part.time_start = r.time_start + dur * j / k;
            part.time_end = r.time_start + dur * (j + 1) / k;
            if self.first_ms.is_none() {
                self.begin(now_ms);
            }
            self.write_v5_record(&part);
            self.count_record(&part);
            if self.count == 30 {
                self.finish(now_ms, out);
            }
        }
    }

    fn uptime(&self, ms: u64) -> u32 {
        ms.saturating_sub(self.boot_ms) as u32
    }

    fn write_v5_record(&mut self, r: &FlowRecord) {
        let b = &mut self.buf;
        b.extend_from_slice(&r.src_addr.v4().unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&r.dst_addr.v4().unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&r.next_hop.v4().unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&(r.in_if as u16).to_be_bytes());
        b.extend_from_slice(&(r.out_if as u16).to_be_bytes());
        b.extend_from_slice(&(r.packets as u32).to_be_bytes());
        b.extend_from_slice(&(r.bytes as u32).to_be_bytes());
        let (first, last) = (self.uptime(r.time_start), self.uptime(r.time_end));
        let b = &mut self.buf;
        b.extend_from_slice(&first.to_be_bytes());
        b.extend_from_slice(&last.to_be_bytes());
        b.extend_from_slice(&r.src_port.to_be_bytes());
        b.extend_from_slice(&r.dst_port.to_be_bytes());
        b.extend_from_slice(&[0, r.tcp_flags, r.proto, r.tos]);
        b.extend_from_slice(&(r.src_as as u16).to_be_bytes());
        b.extend_from_slice(&(r.dst_as as u16).to_be_bytes());
        b.extend_from_slice(&[r.src_mask, r.dst_mask, 0, 0]);
    }

    fn count_record(&mut self, r: &FlowRecord) {
        self.count += 1;
        self.data_records += 1;
        self.stats.records += 1;
        self.stats.exported.add(r);
    }

    fn templates(&self, v6: bool) -> (&'static [(u16, u16)], u16) {
        match (self.format, v6) {
            (ExportFormat::Ipfix, false) => (IPFIX_V4, TEMPLATE_V4),
            (ExportFormat::Ipfix, true) => (IPFIX_V6, TEMPLATE_V6),
            (_, false) => (V9_V4, TEMPLATE_V4),
            (_, true) => (V9_V6, TEMPLATE_V6),
        }
    }

    fn push_template(&mut self, r: &FlowRecord, now_ms: u64, out: &mut Vec<Datagram>) {
        let v6 = !(r.src_addr.is_v4() && r.dst_addr.is_v4());
        let (fields, id) = self.templates(v6);
        let len = rec_len(fields);
        if self.first_ms.is_none() {
            self.begin(now_ms);
        }
        let need =
            len + if self.open_set.map(|s| s.1) == Some(id) {
                0
            } else {
                4
            } + 3;
        if self.buf.len() + need > self.opts.max_datagram && self.count > 0 {
            self.finish(now_ms, out);
            self.begin(now_ms);
        }
        if self.open_set.map(|s| s.1) != Some(id) {
            self.close_set();
            self.open_set = Some((self.buf.len(), id));
            self.buf.extend_from_slice(&id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        for &(ie, l) in fields {
            self.put_field(ie, l, r);
        }
        self.count_record(r);
    }

    fn put_field(&mut self, ie: u16, len: u16, r: &FlowRecord) {
        let int = |v: u64| v;
        let v: Result<u64, Addr> = match ie {
            1 => Ok(int(r.bytes)),
            2 => Ok(r.packets),
            4 => Ok(r.proto as u64),
            5 => Ok(r.tos as u64),
            6 => Ok(r.tcp_flags as u64),
            7 => Ok(r.src_port as u64),
            11 => Ok(r.dst_port as u64),
            8 | 27 => Err(r.src_addr),
            12 | 28 => Err(r.dst_addr),
            15 | 62 => Err(r.next_hop),
            9 | 29 => Ok(r.src_mask as u64),
            13 | 30 => Ok(r.dst_mask as u64),
            10 => Ok(r.in_if as u64),
            14 => Ok(r.out_if as u64),
            16 => Ok(r.src_as as u64),
            17 => Ok(r.dst_as as u64),
            21 => Ok(self.uptime(r.time_end) as u64),
            22 => Ok(self.uptime(r.time_start) as u64),
            152 => Ok(r.time_start),
            153 => Ok(r.time_end),
            32 | 139 => Ok(if matches!(r.proto, proto::ICMP | proto::ICMP6) {
                r.dst_port as u64
            } else {
                0
            }),
            _ => Ok(0),
        };
        match v {
            Ok(x) => self
                .buf
                .extend_from_slice(&x.to_be_bytes()[8 - len as usize..]),
            Err(a) if len == 4 => self
                .buf
                .extend_from_slice(&a.v4().unwrap_or(0).to_be_bytes()),
            Err(a) => self
                .buf
                .extend_from_slice(&(if a.is_v4() { 0 } else { a.0 }).to_be_bytes()),
        }
    }

    /// Closes the open set: pads it to a 4-byte boundary and writes its length.
    fn close_set(&mut self) {
        if let Some((at, _)) = self.open_set.take() {
            while !(self.buf.len() - at).is_multiple_of(4) {
                self.buf.push(0);
            }
            let len = (self.buf.len() - at) as u16;
            self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Starts a datagram: header space, then templates when due.
    fn begin(&mut self, now_ms: u64) {
        self.buf.clear();
        self.count = 0;
        self.data_records = 0;
        self.first_ms = Some(now_ms);
        let header = match self.format {
            ExportFormat::V5 => 24,
            ExportFormat::V9 => 20,
            ExportFormat::Ipfix => 16,
        };
        self.buf.resize(header, 0);
        if self.format == ExportFormat::V5
            || !self
                .stats
                .datagrams
                .is_multiple_of(self.opts.template_every as u64)
        {
            return;
        }
        let ipfix = self.format == ExportFormat::Ipfix;
        // Template set: id 0 (v9) / 2 (IPFIX).
        let at = self.buf.len();
        self.buf
            .extend_from_slice(&(if ipfix { 2u16 } else { 0 }).to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        for v6 in [false, true] {
            let (fields, id) = self.templates(v6);
            self.buf.extend_from_slice(&id.to_be_bytes());
            self.buf
                .extend_from_slice(&(fields.len() as u16).to_be_bytes());
            for &(ie, l) in fields {
                self.buf.extend_from_slice(&ie.to_be_bytes());
                self.buf.extend_from_slice(&l.to_be_bytes());
            }
            self.count += 1;
            self.stats.template_records += 1;
        }
        self.open_set = Some((at, 0));
        self.close_set();
        if self.opts.sampling_rate <= 1 {
            return;
        }
        // Options template: scope = the system (v9) / observation domain (IPFIX).
        let at = self.buf.len();
        self.buf
            .extend_from_slice(&(if ipfix { 3u16 } else { 1 }).to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&TEMPLATE_OPTIONS.to_be_bytes());
        if ipfix {
            self.buf.extend_from_slice(&3u16.to_be_bytes()); // field count
            self.buf.extend_from_slice(&1u16.to_be_bytes()); // scope field count
            for (ie, l) in [(149u16, 4u16), (34, 4), (35, 1)] {
                self.buf.extend_from_slice(&ie.to_be_bytes());
                self.buf.extend_from_slice(&l.to_be_bytes());
            }
        } else {
            self.buf.extend_from_slice(&4u16.to_be_bytes()); // scope bytes
            self.buf.extend_from_slice(&8u16.to_be_bytes()); // option bytes
            for (ie, l) in [(1u16, 4u16), (34, 4), (35, 1)] {
                self.buf.extend_from_slice(&ie.to_be_bytes());
                self.buf.extend_from_slice(&l.to_be_bytes());
            }
        }
        self.count += 1;
        self.stats.template_records += 1;
        self.open_set = Some((at, 1));
        self.close_set();
        // Options data: domain, interval, algorithm 1 (deterministic 1-in-N).
        self.open_set = Some((self.buf.len(), TEMPLATE_OPTIONS));
        self.buf.extend_from_slice(&TEMPLATE_OPTIONS.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&self.domain.to_be_bytes());
        self.buf
            .extend_from_slice(&self.opts.sampling_rate.to_be_bytes());
        self.buf.push(1);
        self.close_set();
        self.count += 1;
        self.data_records += 1;
        self.stats.option_records += 1;
    }

    /// Completes the header and hands the datagram out, stamped `export_ms`.
    fn finish(&mut self, export_ms: u64, out: &mut Vec<Datagram>) {
        self.close_set();
        // v9 headers carry whole seconds only: send on a second boundary so that
        // `unix_secs * 1000 - sysUptime` is the boot time to the millisecond.
        let export_ms = if self.format == ExportFormat::V9 {
            export_ms.div_ceil(1000) * 1000
        } else {
            export_ms
        };
        let secs = (export_ms / 1000) as u32;
        let nsecs = ((export_ms % 1000) * 1_000_000) as u32;
        let uptime = self.uptime(export_ms);
        let mut h = Vec::with_capacity(24);
        match self.format {
            ExportFormat::V5 => {
                h.extend_from_slice(&5u16.to_be_bytes());
                h.extend_from_slice(&self.count.to_be_bytes());
                h.extend_from_slice(&uptime.to_be_bytes());
                h.extend_from_slice(&secs.to_be_bytes());
                h.extend_from_slice(&nsecs.to_be_bytes());
                h.extend_from_slice(&self.seq.to_be_bytes());
                h.extend_from_slice(&[(self.domain >> 8) as u8, self.domain as u8]);
                let rate = self.opts.sampling_rate;
                let sampling: u16 = if rate > 1 {
                    0x4000 | (rate.min(0x3fff) as u16)
                } else {
                    0
                };
                h.extend_from_slice(&sampling.to_be_bytes());
                self.seq = self.seq.wrapping_add(self.count as u32);
            }
            ExportFormat::V9 => {
                h.extend_from_slice(&9u16.to_be_bytes());
                h.extend_from_slice(&self.count.to_be_bytes());
                h.extend_from_slice(&uptime.to_be_bytes());
                h.extend_from_slice(&secs.to_be_bytes());
                h.extend_from_slice(&self.seq.to_be_bytes());
                h.extend_from_slice(&self.domain.to_be_bytes());
                self.seq = self.seq.wrapping_add(1);
            }
            ExportFormat::Ipfix => {
                h.extend_from_slice(&10u16.to_be_bytes());
                h.extend_from_slice(&(self.buf.len() as u16).to_be_bytes());
                h.extend_from_slice(&secs.to_be_bytes());
                h.extend_from_slice(&self.seq.to_be_bytes());
                h.extend_from_slice(&self.domain.to_be_bytes());
                self.seq = self.seq.wrapping_add(self.data_records);
            }
        }
        self.buf[..h.len()].copy_from_slice(&h);
        out.push(Datagram {
            export_ms,
            payload: std::mem::take(&mut self.buf),
        });
        self.stats.datagrams += 1;
        self.first_ms = None;
        self.count = 0;
        self.data_records = 0;
    }
}

/// Encodes `records` (any order) as export datagrams, templates first. The exporter's
/// domain is the first record's; each record is exported `export_delay_ms` after its end.
pub fn encode_export(
    format: ExportFormat,
    records: &[FlowRecord],
    opts: &ExportOptions,
) -> Vec<Vec<u8>> {
    let boot = opts.boot_ms.unwrap_or_else(|| {
        records
            .iter()
            .map(|r| r.time_start)
            .min()
            .unwrap_or(3_600_000)
            .saturating_sub(3_600_000)
    });
    let domain = records.first().map_or(0, |r| r.domain);
    let mut ex = Exporter::new(format, domain, boot, opts);
    let mut out = Vec::new();
    let mut now = 0;
    for r in records {
        now = (r.time_end + opts.export_delay_ms).max(now);
        ex.push(r, now, &mut out);
    }
    ex.flush(&mut out);
    out.into_iter().map(|d| d.payload).collect()
}

/// Writes the scenario's records as export datagrams in a pcap of UDP frames from
/// `s.exporter` to `opts.collector`, each frame stamped with its export time.
pub fn write_export_pcap<W: Write>(
    s: &Scenario,
    format: ExportFormat,
    opts: &ExportOptions,
    w: W,
) -> Result<ExportStats, Error> {
    let mut recs = records(s)?;
    let boot = opts.boot_ms.unwrap_or(s.start_ms.saturating_sub(3_600_000));
    let mut ex = Exporter::new(format, s.domain, boot, opts);
    let mut pcap = PcapWriter::new(w, opts.nanos)?;
    // Records waiting for expiry, by (time_end, arrival): released once the next record to
    // come starts after their end, since no later record can end before that.
    let mut cache: BinaryHeap<Reverse<Cached>> = BinaryHeap::new();
    let mut out = Vec::new();
    let mut next = recs.next();
    let mut n = 0u64;
    loop {
        let horizon = next.as_ref().map(|r| r.time_start);
        while let Some(Reverse(c)) = cache.peek() {
            if horizon.is_some_and(|h| c.0 > h) {
                break;
            }
            let Some(Reverse(Cached(end, _, r))) = cache.pop() else {
                break;
            };
            ex.push(&r, end + opts.export_delay_ms, &mut out);
            for d in out.drain(..) {
                let frame = udp_frame(
                    s.exporter,
                    opts.collector,
                    opts.exporter_port,
                    opts.collector_port,
                    &d.payload,
                );
                pcap.write(d.export_ms * 1_000_000, &frame, frame.len() as u32)?;
            }
        }
        let Some(r) = next.take() else { break };
        cache.push(Reverse(Cached(r.time_end, n, r)));
        n += 1;
        next = recs.next();
    }
    ex.flush(&mut out);
    for d in out.drain(..) {
        let frame = udp_frame(
            s.exporter,
            opts.collector,
            opts.exporter_port,
            opts.collector_port,
            &d.payload,
        );
        pcap.write(d.export_ms * 1_000_000, &frame, frame.len() as u32)?;
    }
    let mut stats = ex.stats().clone();
    stats.file_bytes = pcap.bytes_written();
    pcap.finish()?;
    Ok(stats)
}

/// A record waiting in the export cache, ordered by (time_end, arrival) only.
#[derive(Debug)]
struct Cached(u64, u64, FlowRecord);

impl PartialEq for Cached {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Cached {}
impl PartialOrd for Cached {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cached {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, truth};
    use std::collections::HashMap;

    fn be(b: &[u8]) -> u64 {
        b.iter().fold(0, |a, &x| a << 8 | x as u64)
    }

    /// What the tiny reader below found in one datagram.
    #[derive(Debug, Default)]
    struct Msg {
        version: u16,
        count: u16,
        uptime: u32,
        secs: u32,
        seq: u32,
        domain: u32,
        length: u16,
        templates: Vec<u16>,
        sampling: Vec<u32>,
        records: Vec<FlowRecord>,
    }

    /// An independent reader of v5 / v9 / IPFIX written from the RFCs (3954, 7011) and
    /// Cisco's v5 layout, enough to check our own bytes.
    fn read(d: &[u8], tpl: &mut HashMap<u16, Vec<(u16, u16)>>) -> Msg {
        let mut m = Msg {
            version: be(&d[0..2]) as u16,
            ..Msg::default()
        };
        if m.version == 5 {
            m.count = be(&d[2..4]) as u16;
            m.uptime = be(&d[4..8]) as u32;
            m.secs = be(&d[8..12]) as u32;
            let export_ms = m.secs as u64 * 1000 + be(&d[12..16]) / 1_000_000;
            m.seq = be(&d[16..20]) as u32;
            m.domain = be(&d[20..22]) as u32;
            m.sampling.push(be(&d[22..24]) as u32 & 0x3fff);
            let boot = export_ms - m.uptime as u64;
            assert_eq!(d.len(), 24 + 48 * m.count as usize);
            for r in d[24..].chunks_exact(48) {
                m.records.push(FlowRecord {
                    src_addr: Addr::from_v4_u32(be(&r[0..4]) as u32),
                    dst_addr: Addr::from_v4_u32(be(&r[4..8]) as u32),
                    next_hop: Addr::from_v4_u32(be(&r[8..12]) as u32),
                    in_if: be(&r[12..14]) as u32,
                    out_if: be(&r[14..16]) as u32,
                    packets: be(&r[16..20]),
                    bytes: be(&r[20..24]),
                    time_start: boot + be(&r[24..28]),
                    time_end: boot + be(&r[28..32]),
                    src_port: be(&r[32..34]) as u16,
                    dst_port: be(&r[34..36]) as u16,
                    tcp_flags: r[37],
                    proto: r[38],
                    tos: r[39],
                    src_as: be(&r[40..42]) as u32,
                    dst_as: be(&r[42..44]) as u32,
                    src_mask: r[44],
                    dst_mask: r[45],
                    domain: m.domain,
                    sampling_rate: 1,
                    ..FlowRecord::default()
                });
            }
            return m;
        }
        let ipfix = m.version == 10;
        let (hdr, export_ms);
        if ipfix {
            m.length = be(&d[2..4]) as u16;
            m.secs = be(&d[4..8]) as u32;
            m.seq = be(&d[8..12]) as u32;
            m.domain = be(&d[12..16]) as u32;
            hdr = 16;
            export_ms = m.secs as u64 * 1000;
        } else {
            assert_eq!(m.version, 9);
            m.count = be(&d[2..4]) as u16;
            m.uptime = be(&d[4..8]) as u32;
            m.secs = be(&d[8..12]) as u32;
            m.seq = be(&d[12..16]) as u32;
            m.domain = be(&d[16..20]) as u32;
            hdr = 20;
            export_ms = m.secs as u64 * 1000;
        }
        let boot = export_ms.wrapping_sub(m.uptime as u64);
        let mut at = hdr;
        while at + 4 <= d.len() {
            let (id, len) = (be(&d[at..at + 2]) as u16, be(&d[at + 2..at + 4]) as usize);
            assert!(
                len >= 4 && at + len <= d.len() && len % 4 == 0,
                "set {id} len {len}"
            );
            let body = &d[at + 4..at + len];
            match id {
                0 | 2 => {
                    let mut p = 0;
                    while p + 4 <= body.len() {
                        let (tid, n) =
                            (be(&body[p..p + 2]) as u16, be(&body[p + 2..p + 4]) as usize);
                        let f = (0..n)
                            .map(|i| {
                                (
                                    be(&body[p + 4 + 4 * i..p + 6 + 4 * i]) as u16,
                                    be(&body[p + 6 + 4 * i..p + 8 + 4 * i]) as u16,
                                )
                            })
                            .collect();
                        tpl.insert(tid, f);
                        m.templates.push(tid);
                        p += 4 + 4 * n;
                    }
                }
                1 => {
                    let tid = be(&body[0..2]) as u16;
                    let n = (be(&body[2..4]) + be(&body[4..6])) as usize / 4;
                    let f = (0..n)
                        .map(|i| {
                            (
                                be(&body[6 + 4 * i..8 + 4 * i]) as u16,
                                be(&body[8 + 4 * i..10 + 4 * i]) as u16,
                            )
                        })
                        .collect();
                    tpl.insert(tid, f);
                    m.templates.push(tid);
                }
                3 => {
                    let tid = be(&body[0..2]) as u16;
                    let n = be(&body[2..4]) as usize;
                    let f = (0..n)
                        .map(|i| {
                            (
                                be(&body[6 + 4 * i..8 + 4 * i]) as u16,
                                be(&body[8 + 4 * i..10 + 4 * i]) as u16,
                            )
                        })
                        .collect();
                    tpl.insert(tid, f);
                    m.templates.push(tid);
                }
                _ => {
                    let f = tpl.get(&id).expect("template before data");
                    let rl: usize = f.iter().map(|x| x.1 as usize).sum();
                    let mut p = 0;
                    while p + rl <= body.len() {
                        let mut r = FlowRecord {
                            domain: m.domain,
                            sampling_rate: 1,
                            ..FlowRecord::default()
                        };
                        let mut sampling = None;
                        for &(ie, l) in f {
                            let v = &body[p..p + l as usize];
                            p += l as usize;
                            let n = if l <= 8 { be(v) } else { 0 };
                            let a = |v: &[u8]| {
                                if v.len() == 4 {
                                    Addr::from_v4_u32(be(v) as u32)
                                } else {
                                    Addr(u128::from_be_bytes(v.try_into().unwrap()))
                                }
                            };
                            match ie {
                                1 => r.bytes = n,
                                2 => r.packets = n,
                                4 => r.proto = n as u8,
                                5 => r.tos = n as u8,
                                6 => r.tcp_flags = n as u8,
                                7 => r.src_port = n as u16,
                                11 => r.dst_port = n as u16,
                                8 | 27 => r.src_addr = a(v),
                                12 | 28 => r.dst_addr = a(v),
                                15 | 62 => r.next_hop = a(v),
                                9 | 29 => r.src_mask = n as u8,
                                13 | 30 => r.dst_mask = n as u8,
                                10 => r.in_if = n as u32,
                                14 => r.out_if = n as u32,
                                16 => r.src_as = n as u32,
                                17 => r.dst_as = n as u32,
                                21 => r.time_end = boot + n,
                                22 => r.time_start = boot + n,
                                152 => r.time_start = n,
                                153 => r.time_end = n,
                                32 | 139 => assert!(n == 0 || n == r.dst_port as u64),
                                34 => sampling = Some(n as u32),
                                _ => {}
                            }
                        }
                        match sampling {
                            Some(rate) => m.sampling.push(rate),
                            None => m.records.push(r),
                        }
                    }
                    assert!(body.len() - p < 4, "only padding after the records");
                }
            }
            at += len;
        }
        assert_eq!(at, d.len());
        m
    }

    fn sample_records() -> Vec<FlowRecord> {
        let s = Scenario {
            flows: 3_000,
            duration_ms: 600_000,
            ipv6_share: 0.3,
            ..Scenario::default()
        };
        records(&s).unwrap().collect()
    }

    /// The record as the wire carries it (the exporter address travels outside the payload).
    fn on_wire(r: &FlowRecord) -> FlowRecord {
        FlowRecord {
            exporter: Addr::default(),
            ..r.clone()
        }
    }

    #[test]
    fn v5_round_trips_ipv4_records_with_exact_times_and_counting_sequences() {
        let recs = sample_records();
        let opts = ExportOptions::default();
        let dgrams = encode_export(ExportFormat::V5, &recs, &opts);
        let mut tpl = HashMap::new();
        let mut got = Vec::new();
        let mut expected_seq = 0;
        for d in &dgrams {
            let m = read(d, &mut tpl);
            assert!(m.count <= 30 && m.count > 0);
            assert_eq!(
                m.seq, expected_seq,
                "flow_sequence counts records sent before"
            );
            assert_eq!(m.domain, 1, "engine type 0, engine id 1");
            expected_seq += m.count as u32;
            got.extend(m.records);
        }
        let want: Vec<FlowRecord> = recs
            .iter()
            .filter(|r| r.src_addr.is_v4())
            .map(on_wire)
            .collect();
        assert!(want.len() < recs.len(), "some IPv6 records were skipped");
        let mut got: Vec<FlowRecord> = got.iter().map(on_wire).collect();
        let key = |r: &FlowRecord| {
            (
                r.time_end,
                r.time_start,
                r.src_addr,
                r.src_port,
                r.dst_addr,
                r.dst_port,
                r.proto,
            )
        };
        got.sort_by_key(key);
        let mut want = want;
        want.sort_by_key(key);
        assert_eq!(got, want);
    }

    fn round_trip(format: ExportFormat, version: u16) {
        let recs = sample_records();
        let opts = ExportOptions {
            template_every: 5,
            ..ExportOptions::default()
        };
        let dgrams = encode_export(format, &recs, &opts);
        let mut tpl = HashMap::new();
        let mut got = Vec::new();
        let mut data_before = 0u32;
        for (i, d) in dgrams.iter().enumerate() {
            assert!(d.len() <= opts.max_datagram);
            let m = read(d, &mut tpl);
            assert_eq!(m.version, version);
            assert_eq!(m.domain, 1);
            if i % 5 == 0 {
                assert_eq!(
                    m.templates,
                    [TEMPLATE_V4, TEMPLATE_V6],
                    "datagram {i} refreshes templates"
                );
            } else {
                assert!(m.templates.is_empty());
            }
            if format == ExportFormat::Ipfix {
                assert_eq!(m.length as usize, d.len());
                assert_eq!(
                    m.seq, data_before,
                    "RFC 7011: data records sent before this message"
                );
            } else {
                assert_eq!(m.seq, i as u32, "v9 counts export packets");
                assert_eq!(m.count as usize, m.templates.len() + m.records.len());
            }
            data_before += m.records.len() as u32;
            got.extend(m.records);
        }
        let got: Vec<FlowRecord> = got.iter().map(on_wire).collect();
        let mut want: Vec<FlowRecord> = recs.iter().map(on_wire).collect();
        let mut got = got;
        let key = |r: &FlowRecord| {
            (
                r.time_end,
                r.time_start,
                r.src_addr,
                r.src_port,
                r.dst_addr,
                r.dst_port,
                r.proto,
            )
        };
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got.len(), want.len());
        assert_eq!(
            got, want,
            "every field round-trips, times to the millisecond"
        );
    }

    #[test]
    fn v9_round_trips_every_field_with_templates_first_and_packet_sequences() {
        round_trip(ExportFormat::V9, 9);
    }

    #[test]
    fn ipfix_round_trips_every_field_with_record_counting_sequences() {
        round_trip(ExportFormat::Ipfix, 10);
    }

    #[test]
    fn sampling_sends_an_options_record_and_thins_the_counters() {
        let recs = sample_records();
        let total: u64 = recs.iter().map(|r| r.packets).sum();
        for (format, version) in [
            (ExportFormat::V9, 9),
            (ExportFormat::Ipfix, 10),
            (ExportFormat::V5, 5),
        ] {
            let opts = ExportOptions {
                sampling_rate: 10,
                ..ExportOptions::default()
            };
            let mut tpl = HashMap::new();
            let msgs: Vec<Msg> = encode_export(format, &recs, &opts)
                .iter()
                .map(|d| read(d, &mut tpl))
                .collect();
            assert_eq!(msgs[0].version, version);
            assert_eq!(msgs[0].sampling, [10], "{format:?}");
            if format == ExportFormat::Ipfix {
                // The options data record counts as a data record.
                assert_eq!(msgs[1].seq as usize, msgs[0].records.len() + 1);
            }
            let sampled: u64 = msgs
                .iter()
                .flat_map(|m| &m.records)
                .map(|r| r.packets)
                .sum();
            let base = if format == ExportFormat::V5 {
                recs.iter()
                    .filter(|r| r.src_addr.is_v4())
                    .map(|r| r.packets)
                    .sum()
            } else {
                total
            };
            let est = sampled as f64 * 10.0 / base as f64;
            assert!((est - 1.0).abs() < 0.05, "{format:?}: renormalised {est}");
        }
    }

    #[test]
    fn formats_parse_from_their_names() {
        for f in [ExportFormat::V5, ExportFormat::V9, ExportFormat::Ipfix] {
            assert_eq!(f.to_string().parse::<ExportFormat>(), Ok(f));
        }
        assert_eq!("IPFIX".parse::<ExportFormat>(), Ok(ExportFormat::Ipfix));
        let e = "sflow".parse::<ExportFormat>().unwrap_err();
        assert!(e.to_string().contains("use v5, v9 or ipfix"), "{e}");
    }

    #[test]
    fn v5_splits_counters_wider_than_32_bits() {
        let r = FlowRecord {
            src_addr: Addr::from_v4_u32(1),
            dst_addr: Addr::from_v4_u32(2),
            time_start: 10_000_000,
            time_end: 10_600_000,
            packets: 7_000_000,
            bytes: 10_000_000_000,
            ..FlowRecord::default()
        };
        let d = encode_export(
            ExportFormat::V5,
            std::slice::from_ref(&r),
            &ExportOptions::default(),
        );
        let m = read(&d[0], &mut HashMap::new());
        assert_eq!(m.records.len(), 3);
        assert_eq!(m.records.iter().map(|x| x.bytes).sum::<u64>(), r.bytes);
        assert_eq!(m.records.iter().map(|x| x.packets).sum::<u64>(), r.packets);
        assert_eq!(m.records[0].time_start, r.time_start);
        assert_eq!(m.records[2].time_end, r.time_end);
    }

    #[test]
    fn the_export_pcap_carries_every_record_in_time_order() {
        let mut s = Scenario {
            flows: 4_000,
            duration_ms: 600_000,
            ..Scenario::default()
        };
        s.events.push(Event::SpoofedFlood {
            at_ms: s.start_ms + 60_000,
            duration_ms: 10_000,
            victim: "10.20.1.80".parse().unwrap(),
            port: 80,
            flows: 2_000,
        });
        let t = truth(&s).unwrap();
        let mut out = Vec::new();
        let stats = write_export_pcap(&s, ExportFormat::Ipfix, &ExportOptions::default(), &mut out)
            .unwrap();
        assert_eq!(stats.exported, t.total);
        assert_eq!(stats.file_bytes, out.len() as u64);
        let (mut at, mut last, mut frames, mut tpl, mut recs) = (24, 0u64, 0u64, HashMap::new(), 0);
        while at < out.len() {
            let u =
                |o: usize| u32::from_le_bytes(out[at + o..at + o + 4].try_into().unwrap()) as u64;
            let (ts, cap) = (u(0) * 1_000_000 + u(4), u(8) as usize);
            assert!(ts >= last, "frames in time order");
            last = ts;
            let f = &out[at + 16..at + 16 + cap];
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            assert_eq!(be(&f[36..38]), 2055, "to the collector port");
            let m = read(&f[42..], &mut tpl);
            assert!(
                m.records.iter().all(|r| r.time_end <= ts / 1000),
                "exported after the flow ended"
            );
            recs += m.records.len();
            frames += 1;
            at += 16 + cap;
        }
        assert_eq!(frames, stats.datagrams);
        assert_eq!(recs as u64, t.total.flows);
    }

    #[test]
    fn an_ipv6_exporter_sends_checksummed_ipv6_frames() {
        let s = Scenario {
            flows: 200,
            duration_ms: 60_000,
            exporter: "2001:db8:20::1".parse().unwrap(),
            ..Scenario::default()
        };
        let opts = ExportOptions {
            collector: "2001:db8:20::2".parse().unwrap(),
            ..ExportOptions::default()
        };
        let mut out = Vec::new();
        let stats = write_export_pcap(&s, ExportFormat::V9, &opts, &mut out).unwrap();
        assert_eq!(stats.records, 200);
        let cap = u32::from_le_bytes(out[32..36].try_into().unwrap()) as usize;
        let f = &out[40..40 + cap];
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let udp = &f[54..];
        let sum = crate::pcap::pseudo_sum(s.exporter, opts.collector, 17, udp.len() as u32);
        assert_eq!(crate::pcap::checksum(udp, sum), 0, "UDP checksum over IPv6");
        assert_eq!(be(&udp[2..4]), 2055);
        assert_eq!(be(&udp[8..10]), 9, "a v9 header follows");
    }
}
