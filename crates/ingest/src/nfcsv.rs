//! nfdump's `-o csv` output, read back into [`FlowRecord`]s.
//!
//! This module owns the text form nfdump prints with `nfdump -r FILE -o csv`. It does no
//! file handling of its own: it reads any [`BufRead`].
//!
//! ```text
//!   ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,...,ra,eng,exid[,tr]   <- header (line 1)
//!   2024-01-01 00:00:03,2024-01-01 00:00:04,1.055,88.14.137.195,...                               <- one line per flow
//!   ...
//!   Summary                                                                                        <- optional trailer
//!   flows,bytes,packets,avg_bps,avg_pps,avg_bpp                                                    <- (nfdump 1.6 and 1.7
//!   80348,32391195,157363,49368,29,205                                                              <-  both print it)
//! ```
//!
//! Columns are found by their header name, so the 1.7.x header (with the trailing `tr`
//! receive-time column), the reference files whose `tr` column was removed, and any other
//! order or subset of nfdump's column names all read the same way. Unknown columns are ignored.
//! The columns `ts`, `te`, `sa`, `da` are required; the others default to zero. The header of
//! `-o csv-fast` (nfdump ≥ 1.7.5: `cnt,af,firstSeen,lastSeen,proto,srcAddr,...`, times in Unix
//! ms) is read through the same table of names.
//!
//! Mapping to [`FlowRecord`]:
//!
//! | column | field | notes |
//! |---|---|---|
//! | `ts`, `te` | `time_start`, `time_end` | `YYYY-MM-DD hh:mm:ss[.mmm]`, UTC; nfdump 1.7.1 prints whole seconds (truncated), so the ms are 0 |
//! | `sa`, `da`, `nh`, `ra` | `src_addr`, `dst_addr`, `next_hop`, `exporter` | IPv4 or IPv6 |
//! | `sp`, `dp` | `src_port`, `dst_port` | for ICMP nfdump prints `dp` as type*256+code, as the model keeps it |
//! | `pr` | `proto` | nfdump's protocol name (`TCP`, `ICMP6`, `IPIP`...) or a number |
//! | `flg` | `tcp_flags` | `CEUAPRSF` with `.` for unset bits, or a number (`0x1b`, `27`) |
//! | `stos` | `tos` | |
//! | `ipkt`, `ibyt` | `packets`, `bytes` | the input counters; `opkt`/`obyt` (NSEL, bidirectional) are not in the model |
//! | `in`, `out`, `sas`, `das`, `smk`, `dmk` | `in_if`, `out_if`, `src_as`, `dst_as`, `src_mask`, `dst_mask` | |
//! | `eng` | `domain` | `type/id` → `type << 8 | id`, as the nfcapd reader maps the record's engine fields |
//!
//! nfdump 1.7.1 prints a record that carries tunnel information (nfpcapd's EXtunIPv4/IPv6) as
//! two lines: first a line for the tunnel (its protocol, IPv6 tunnel addresses printed as `::`,
//! ports and all counters 0), then the flow itself. Such tunnel lines describe no flow of their
//! own and are skipped (see [`Reader::tunnel_lines`]): a line is one when its protocol is a
//! tunnel protocol (IPIP, IPv6, GRE), both ports are 0 and every counter (`ipkt`, `ibyt`,
//! `opkt`, `obyt`) is 0.
//!
//! `sampling_rate` is set to 1: nfdump's CSV does not say, and nfdump prints counters as it
//! stored them. The BGP next hop (`nhb`), VLANs, MACs, MPLS labels, latencies and `exid` have no
//! field in the model and are skipped.

use flowdrill_model::time::ms_from_civil;
use flowdrill_model::{Addr, FlowRecord};
use std::io::BufRead;

/// Why nfdump CSV text could not be read. Positions are 1-based line numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying reader failed.
    #[error("reading nfdump CSV: {0}")]
    Io(#[from] std::io::Error),
    /// The input is empty.
    #[error(
        "empty input: expected nfdump CSV starting with a header line like `ts,te,td,sa,da,...`"
    )]
    Empty,
    /// The first line is not an nfdump CSV header.
    #[error(
        "line 1: not an nfdump CSV header (got {got:?}); produce the file with `nfdump -r FILE -o csv`"
    )]
    NotAHeader { got: String },
    /// A required column is missing from the header.
    #[error("line 1: the header has no `{column}` column; nfdump's `-o csv` output always has it")]
    MissingColumn { column: &'static str },
    /// A line has fewer fields than the header needs.
    #[error("line {line}: {found} fields, but column `{column}` is field {needed} of the header")]
    ShortLine {
        line: u64,
        found: usize,
        needed: usize,
        column: &'static str,
    },
    /// A field's text is not a value of its column.
    #[error("line {line}, column `{column}`: {value:?} is not {expected}")]
    BadValue {
        line: u64,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8 text")]
    NotUtf8 { line: u64 },
}

/// The `Summary` trailer nfdump prints after the flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
}

/// The columns this module understands, by nfdump's header name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Ts,
    Te,
    Sa,
    Da,
    Sp,
    Dp,
    Pr,
    Flg,
    Stos,
    Ipkt,
    Ibyt,
    In,
    Out,
    Sas,
    Das,
    Smk,
    Dmk,
    Nh,
    Ra,
    Eng,
    Opkt,
    Obyt,
}

/// Header name → column. Every name nfdump 1.6/1.7 prints that the model has a field for.
const COLUMNS: &[(&str, Col)] = &[
    ("ts", Col::Ts),
    ("te", Col::Te),
    ("sa", Col::Sa),
    ("da", Col::Da),
    ("sp", Col::Sp),
    ("dp", Col::Dp),
    ("pr", Col::Pr),
    ("flg", Col::Flg),
    ("stos", Col::Stos),
    ("ipkt", Col::Ipkt),
    ("ibyt", Col::Ibyt),
    ("in", Col::In),
    ("out", Col::Out),
    ("sas", Col::Sas),
    ("das", Col::Das),
    ("smk", Col::Smk),
    ("dmk", Col::Dmk),
    ("nh", Col::Nh),
    ("ra", Col::Ra),
    ("eng", Col::Eng),
    ("opkt", Col::Opkt),
    ("obyt", Col::Obyt),
    // `-o csv-fast` (nfdump ≥ 1.7.5): times as Unix ms, protocol as a number.
    ("firstSeen", Col::Ts),
    ("lastSeen", Col::Te),
    ("srcAddr", Col::Sa),
    ("dstAddr", Col::Da),
    ("srcPort", Col::Sp),
    ("dstPort", Col::Dp),
    ("proto", Col::Pr),
    ("flags", Col::Flg),
    ("srcTos", Col::Stos),
    ("packets", Col::Ipkt),
    ("bytes", Col::Ibyt),
    ("input", Col::In),
    ("output", Col::Out),
    ("srcAS", Col::Sas),
    ("dstAS", Col::Das),
];

/// Columns every input must have: the flow's times and addresses.
const REQUIRED: [(Col, &str); 4] = [
    (Col::Ts, "ts"),
    (Col::Te, "te"),
    (Col::Sa, "sa"),
    (Col::Da, "da"),
];

/// A streaming reader of nfdump CSV: the header is read by [`Reader::new`], then one record
/// per [`Reader::next_record`] call. Stops at the `Summary` trailer (see [`Reader::summary`]).
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    /// (field index in a line, column, its name in the header), in field order.
    /// Invariant: indexes strictly increase.
    cols: Vec<(usize, Col, &'static str)>,
    /// Fields a line must have: one past the largest index in `cols`.
    needed: usize,
    line: u64,
    buf: String,
    done: bool,
    summary: Option<Summary>,
    tunnel_lines: u64,
}

impl<R: BufRead> Reader<R> {
    /// Reads the header line and prepares the column mapping.
    pub fn new(mut input: R) -> Result<Self, Error> {
        let mut buf = String::new();
        if read_line(&mut input, &mut buf, 1)? == 0 {
            return Err(Error::Empty);
        }
        let head = buf
            .trim_end_matches(['\r', '\n'])
            .trim_start_matches('\u{feff}');
        if !header_like(head) {
            return Err(Error::NotAHeader {
                got: head.chars().take(80).collect(),
            });
        }
        let cols = columns(head);
        for (req, name) in REQUIRED {
            if !cols.iter().any(|(_, c, _)| *c == req) {
                return Err(Error::MissingColumn { column: name });
            }
        }
        let needed = cols.iter().map(|(i, _, _)| i + 1).max().unwrap_or(0);
        Ok(Reader {
            input,
            cols,
            needed,
            line: 1,
            buf,
            done: false,
            summary: None,
            tunnel_lines: 0,
        })
    }

    /// The next flow, or `None` after the last one (end of input or the `Summary` trailer).
    pub fn next_record(&mut self) -> Result<Option<FlowRecord>, Error> {
        while !self.done {
            self.buf.clear();
            if read_line(&mut self.input, &mut self.buf, self.line + 1)? == 0 {
                self.done = true;
                break;
            }
            self.line += 1;
            let text = self.buf.trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() || text.starts_with("No matching flows") {
                continue;
            }
            if text.starts_with("Summary") {
                self.done = true;
                self.read_summary()?;
                break;
            }
            let line = self.line;
            let (r, out_counters) = parse_line(text, &self.cols, self.needed, line)?;
            if is_tunnel_line(&r, out_counters) {
                self.tunnel_lines += 1;
                continue;
            }
            return Ok(Some(r));
        }
        Ok(None)
    }

    /// Tunnel lines skipped so far (see the module doc).
    pub fn tunnel_lines(&self) -> u64 {
        self.tunnel_lines
    }

    /// The trailer's totals, once [`Reader::next_record`] has returned `None` (absent when the
    /// input had no trailer, as in `nfdump -q` output).
    pub fn summary(&self) -> Option<Summary> {
        self.summary
    }

    /// Reads `flows,bytes,packets,...` and its value line after `Summary`. A malformed trailer
    /// is not an error: the flows were all read; the summary is then `None`.
    fn read_summary(&mut self) -> Result<(), Error> {
        let mut names = String::new();
        let mut values = String::new();
        if self.input.read_line(&mut names)? == 0 || self.input.read_line(&mut values)? == 0 {
            return Ok(());
        }
        let mut s = Summary::default();
        let mut seen = 0;
        for (n, v) in names.trim().split(',').zip(values.trim().split(',')) {
            let Ok(v) = v.trim().parse::<u64>() else {
                continue;
            };
            match n.trim() {
                "flows" => s.flows = v,
                "bytes" => s.bytes = v,
                "packets" => s.packets = v,
                _ => continue,
            }
            seen += 1;
        }
        if seen == 3 {
            self.summary = Some(s);
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<FlowRecord, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                // One error ends the stream: a broken line leaves no sensible place to resume.
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// `read_line`, with invalid UTF-8 reported as [`Error::NotUtf8`] at `line`.
fn read_line(input: &mut impl BufRead, buf: &mut String, line: u64) -> Result<usize, Error> {
    input.read_line(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::NotUtf8 { line }
        } else {
            Error::Io(e)
        }
    })
}

/// Reads all flows of nfdump CSV text.
pub fn parse<R: BufRead>(r: R) -> Result<Vec<FlowRecord>, Error> {
    Reader::new(r)?.collect()
}

/// True when `first_bytes` start with an nfdump CSV header (`ts,te,...,sa,da,...`).
pub fn looks_like_nfcsv(first_bytes: &[u8]) -> bool {
    let end = first_bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(first_bytes.len());
    let Ok(line) = std::str::from_utf8(&first_bytes[..end]) else {
        return false;
    };
    let line = line.trim_end_matches('\r').trim_start_matches('\u{feff}');
    header_like(line) && {
        let cols = columns(line);
        REQUIRED
            .iter()
            .all(|(req, _)| cols.iter().any(|(_, c, _)| c == req))
    }
}

/// The known columns of a header line: (field index, column, name), the first occurrence of
/// each column (nfdump never repeats one).
fn columns(head: &str) -> Vec<(usize, Col, &'static str)> {
    let mut cols: Vec<(usize, Col, &'static str)> = Vec::new();
    for (i, name) in head.split(',').enumerate() {
        if let Some((n, c)) = COLUMNS.iter().find(|(n, _)| *n == name.trim())
            && !cols.iter().any(|(_, d, _)| d == c)
        {
            cols.push((i, *c, n));
        }
    }
    cols
}

/// A header line: comma-separated names without spaces (nfdump's are short identifiers;
/// files that went through other tools may add longer ones, which are ignored).
fn header_like(line: &str) -> bool {
    line.contains(',')
        && line.split(',').all(|n| {
            let n = n.trim();
            !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_graphic())
        })
}

fn bad(line: u64, name: &'static str, value: &str, expected: &'static str) -> Error {
    Error::BadValue {
        line,
        column: name,
        value: value.chars().take(64).collect(),
        expected,
    }
}

/// The tunnel line nfdump 1.7.1 prints before a flow with tunnel information.
fn is_tunnel_line(r: &FlowRecord, out_counters: u64) -> bool {
    matches!(r.proto, 4 | 41 | 47)
        && r.src_port == 0
        && r.dst_port == 0
        && r.packets == 0
        && r.bytes == 0
        && out_counters == 0
}

/// One flow line, and the sum of its `opkt` and `obyt` (not in the model; needed to tell
/// tunnel lines).
fn parse_line(
    text: &str,
    cols: &[(usize, Col, &'static str)],
    needed: usize,
    line: u64,
) -> Result<(FlowRecord, u64), Error> {
    let mut r = FlowRecord {
        src_addr: Addr::UNSPECIFIED_V4,
        dst_addr: Addr::UNSPECIFIED_V4,
        next_hop: Addr::UNSPECIFIED_V4,
        exporter: Addr::UNSPECIFIED_V4,
        sampling_rate: 1,
        ..Default::default()
    };
    let mut out_counters = 0u64;
    let mut fields = text.split(',');
    let mut at = 0usize;
    for &(idx, col, name) in cols {
        // `cols` is sorted by index, so one forward pass over the fields suffices.
        let Some(raw) = fields.nth(idx - at) else {
            return Err(Error::ShortLine {
                line,
                found: text.split(',').count(),
                needed,
                column: name,
            });
        };
        at = idx + 1;
        let v = raw.trim();
        match col {
            Col::Ts => r.time_start = parse_time(v).ok_or_else(|| bad(line, name, v, TIME))?,
            Col::Te => r.time_end = parse_time(v).ok_or_else(|| bad(line, name, v, TIME))?,
            Col::Sa => r.src_addr = addr(v).ok_or_else(|| bad(line, name, v, ADDR))?,
            Col::Da => r.dst_addr = addr(v).ok_or_else(|| bad(line, name, v, ADDR))?,
            Col::Nh => r.next_hop = addr(v).ok_or_else(|| bad(line, name, v, ADDR))?,
            Col::Ra => r.exporter = addr(v).ok_or_else(|| bad(line, name, v, ADDR))?,
            Col::Sp => r.src_port = num(v).ok_or_else(|| bad(line, name, v, U16))?,
            Col::Dp => r.dst_port = num(v).ok_or_else(|| bad(line, name, v, U16))?,
            Col::Pr => r.proto = proto(v).ok_or_else(|| bad(line, name, v, PROTO))?,
            Col::Flg => r.tcp_flags = flags(v).ok_or_else(|| bad(line, name, v, FLAGS))?,
            Col::Stos => r.tos = num(v).ok_or_else(|| bad(line, name, v, U8))?,
            Col::Ipkt => r.packets = num(v).ok_or_else(|| bad(line, name, v, U64))?,
            Col::Ibyt => r.bytes = num(v).ok_or_else(|| bad(line, name, v, U64))?,
            Col::In => r.in_if = num(v).ok_or_else(|| bad(line, name, v, U32))?,
            Col::Out => r.out_if = num(v).ok_or_else(|| bad(line, name, v, U32))?,
            Col::Sas => r.src_as = num(v).ok_or_else(|| bad(line, name, v, U32))?,
            Col::Das => r.dst_as = num(v).ok_or_else(|| bad(line, name, v, U32))?,
            Col::Smk => r.src_mask = num(v).ok_or_else(|| bad(line, name, v, U8))?,
            Col::Dmk => r.dst_mask = num(v).ok_or_else(|| bad(line, name, v, U8))?,
            Col::Eng => r.domain = engine(v).ok_or_else(|| bad(line, name, v, ENG))?,
            Col::Opkt | Col::Obyt => {
                let n: u64 = num(v).ok_or_else(|| bad(line, name, v, U64))?;
                out_counters = out_counters.saturating_add(n);
            }
        }
    }
    Ok((r, out_counters))
}

const TIME: &str = "a time `YYYY-MM-DD hh:mm:ss[.mmm]`";
const ADDR: &str = "an IPv4 or IPv6 address";
const U8: &str = "a number 0..255";
const U16: &str = "a number 0..65535";
const U32: &str = "a 32-bit unsigned number";
const U64: &str = "an unsigned number";
const PROTO: &str = "an nfdump protocol name or a number 0..255";
const FLAGS: &str = "TCP flags (`...AP.S.` or a number)";
const ENG: &str = "an engine `type/id` (two numbers 0..255)";

fn num<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.parse().ok()
}

fn addr(v: &str) -> Option<Addr> {
    v.parse().ok()
}

/// `YYYY-MM-DD hh:mm:ss` with an optional `.m`, `.mm` or `.mmm` fraction, as UTC ms; or a
/// plain integer, Unix ms (`csv-fast`).
fn parse_time(v: &str) -> Option<u64> {
    if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok();
    }
    let b = v.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let d = |s: &str| -> Option<u32> {
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, day) = (d(&v[0..4])?, d(&v[5..7])?, d(&v[8..10])?);
    let (h, mi, s) = (d(&v[11..13])?, d(&v[14..16])?, d(&v[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac = match &v[19..] {
        "" => 0,
        f if f.len() >= 2 && f.len() <= 4 && f.starts_with('.') => {
            let digits = &f[1..];
            let n = d(digits)?;
            n * 10u32.pow(3 - digits.len() as u32)
        }
        _ => return None,
    };
    if y < 1970 {
        return None;
    }
    Some(ms_from_civil(y as i64, mo, day, h, mi, s) + frac as u64)
}

/// nfdump's protocol names, by number (the table its output code prints; numbers above 137
/// and those with no name here print as digits). Where nfdump gives two numbers the same name
/// (IPIP 4 and 94, IDPR 35 and 38), reading the name back yields the first.
const PROTO_NAMES: &[(u8, &str)] = &[
    (1, "ICMP"),
    (2, "IGMP"),
    (3, "GGP"),
    (4, "IPIP"),
    (5, "ST"),
    (6, "TCP"),
    (7, "CBT"),
    (8, "EGP"),
    (9, "IGP"),
    (10, "BBN"),
    (11, "NVPII"),
    (12, "PUP"),
    (13, "ARGUS"),
    (14, "ENCOM"),
    (15, "XNET"),
    (16, "CHAOS"),
    (17, "UDP"),
    (18, "MUX"),
    (19, "DCN"),
    (20, "HMP"),
    (21, "PRM"),
    (22, "XNS"),
    (23, "Trnk1"),
    (24, "Trnk2"),
    (25, "Leaf1"),
    (26, "Leaf2"),
    (27, "RDP"),
    (28, "IRTP"),
    (29, "ISO-4"),
    (30, "NETBK"),
    (31, "MFESP"),
    (32, "MEINP"),
    (33, "DCCP"),
    (34, "3PC"),
    (35, "IDPR"),
    (36, "XTP"),
    (37, "DDP"),
    (39, "TP++"),
    (40, "IL"),
    (41, "IPv6"),
    (42, "SDRP"),
    (43, "Rte6"),
    (44, "Frag6"),
    (45, "IDRP"),
    (46, "RSVP"),
    (47, "GRE"),
    (48, "MHRP"),
    (49, "BNA"),
    (50, "ESP"),
    (51, "AH"),
    (52, "INLSP"),
    (53, "SWIPE"),
    (54, "NARP"),
    (55, "MOBIL"),
    (56, "TLSP"),
    (57, "SKIP"),
    (58, "ICMP6"),
    (59, "NOHE6"),
    (60, "OPTS6"),
    (61, "HOST"),
    (62, "CFTP"),
    (64, "SATNT"),
    (65, "KLAN"),
    (66, "RVD"),
    (67, "IPPC"),
    (68, "FS"),
    (69, "SATM"),
    (70, "VISA"),
    (71, "IPCV"),
    (72, "CPNX"),
    (73, "CPHB"),
    (74, "WSN"),
    (75, "PVP"),
    (76, "BSATM"),
    (77, "SUNND"),
    (78, "WBMON"),
    (79, "WBEXP"),
    (80, "ISOIP"),
    (81, "VMTP"),
    (82, "SVMTP"),
    (83, "VINES"),
    (84, "TTP"),
    (85, "NSIGP"),
    (86, "DGP"),
    (87, "TCF"),
    (88, "EIGRP"),
    (89, "OSPF"),
    (90, "S-RPC"),
    (91, "LARP"),
    (92, "MTP"),
    (93, "AX.25"),
    (95, "MICP"),
    (96, "SCCSP"),
    (97, "ETHIP"),
    (98, "ENCAP"),
    (100, "GMTP"),
    (101, "IFMP"),
    (102, "PNNI"),
    (103, "PIM"),
    (104, "ARIS"),
    (105, "SCPS"),
    (106, "QNX"),
    (107, "A/N"),
    (108, "IPcmp"),
    (109, "SNP"),
    (110, "CpqPP"),
    (111, "IPXIP"),
    (112, "VRRP"),
    (113, "PGM"),
    (114, "0hop"),
    (115, "L2TP"),
    (116, "DDX"),
    (117, "IATP"),
    (118, "STP"),
    (119, "SRP"),
    (120, "UTI"),
    (121, "SMP"),
    (122, "SM"),
    (123, "PTP"),
    (124, "ISIS4"),
    (125, "FIRE"),
    (126, "CRTP"),
    (127, "CRUDP"),
    (129, "IPLT"),
    (130, "SPS"),
    (131, "PIPE"),
    (132, "SCTP"),
    (133, "FC"),
    (135, "MHEAD"),
    (136, "UDP-L"),
    (137, "MPLS"),
];

/// A protocol as nfdump prints it: a number, or a name from its table (case-sensitive first,
/// then ignoring case, so `icmp6` from a hand-edited file still reads).
fn proto(v: &str) -> Option<u8> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok();
    }
    PROTO_NAMES
        .iter()
        .find(|(_, n)| *n == v)
        .or_else(|| PROTO_NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(v)))
        .map(|(p, _)| *p)
}

/// TCP flags: nfdump's 8-character `CEUAPRSF` string with `.` for clear bits (letters are
/// accepted in any position), a decimal number, or a `0x` hex number.
fn flags(v: &str) -> Option<u8> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return u8::from_str_radix(h, 16).ok();
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok();
    }
    let mut f = 0u8;
    for c in v.bytes() {
        f |= match c {
            b'C' => 0x80,
            b'E' => 0x40,
            b'U' => 0x20,
            b'A' => 0x10,
            b'P' => 0x08,
            b'R' => 0x04,
            b'S' => 0x02,
            b'F' => 0x01,
            b'.' => 0,
            _ => return None,
        };
    }
    Some(f)
}

/// `type/id` → `type << 8 | id`.
fn engine(v: &str) -> Option<u32> {
    let (t, i) = v.split_once('/')?;
    let t: u8 = t.trim().parse().ok()?;
    let i: u8 = i.trim().parse().ok()?;
    Some((t as u32) << 8 | i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_171: &str = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr";
    const LINE_171: &str = "2024-01-01 00:03:10,2024-01-01 00:03:10,0.204,10.8.0.1,173.194.119.48,53497,80,TCP,...APRS.,0,0,5,320,0,0,0,0,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,    0.000,    0.000,    0.000,127.0.0.1,0/0,1,2026-11-22 11:40:27.621";

    #[test]
    fn reads_a_171_line_with_its_summary() {
        let text = format!(
            "{HEADER_171}\n{LINE_171}\nSummary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n1,320,5,12549,24,64\n"
        );
        let mut rd = Reader::new(text.as_bytes()).unwrap();
        let r = rd.next_record().unwrap().unwrap();
        assert_eq!(r.time_start, 1_704_067_390_000);
        assert_eq!(r.time_end, 1_704_067_390_000);
        assert_eq!(r.src_addr.to_string(), "10.8.0.1");
        assert_eq!(r.dst_addr.to_string(), "173.194.119.48");
        assert_eq!((r.src_port, r.dst_port, r.proto), (53497, 80, 6));
        assert_eq!(r.tcp_flags, 0x10 | 0x08 | 0x04 | 0x02);
        assert_eq!((r.packets, r.bytes), (5, 320));
        assert_eq!(r.exporter.to_string(), "127.0.0.1");
        assert_eq!(r.sampling_rate, 1);
        assert!(rd.next_record().unwrap().is_none());
        assert_eq!(
            rd.summary(),
            Some(Summary {
                flows: 1,
                bytes: 320,
                packets: 5
            })
        );
    }

    #[test]
    fn the_reference_variant_without_tr_reads_the_same() {
        let head = HEADER_171.strip_suffix(",tr").unwrap();
        let line = LINE_171.rsplit_once(',').unwrap().0;
        let a = parse(format!("{HEADER_171}\n{LINE_171}\n").as_bytes()).unwrap();
        let b = parse(format!("{head}\n{line}\n").as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let text = "pr,da,sa,te,ts,ibyt,ipkt,eng\nUDP,::1,2001:db8::7,2024-01-01 00:00:01.250,2024-01-01 00:00:00.5,99,3,1/2\n";
        let r = &parse(text.as_bytes()).unwrap()[0];
        assert_eq!(r.proto, 17);
        assert_eq!(r.src_addr.to_string(), "2001:db8::7");
        assert_eq!(r.time_start, 1_704_067_200_500);
        assert_eq!(r.time_end, 1_704_067_201_250);
        assert_eq!((r.packets, r.bytes, r.domain), (3, 99, 0x102));
    }

    #[test]
    fn field_parsers_table() {
        // (parser, input, expected)
        let cases: &[(&str, &str, Option<u64>)] = &[
            ("flags", "........", Some(0)),
            ("flags", "CEUAPRSF", Some(0xff)),
            ("flags", "...A..S.", Some(0x12)),
            ("flags", "0x12", Some(0x12)),
            ("flags", "18", Some(18)),
            ("flags", "..X.....", None),
            ("proto", "TCP", Some(6)),
            ("proto", "ICMP6", Some(58)),
            ("proto", "icmp6", Some(58)),
            ("proto", "IPv6", Some(41)),
            ("proto", "0", Some(0)),
            ("proto", "250", Some(250)),
            ("proto", "256", None),
            ("proto", "NOPE", None),
            ("time", "1970-01-01 00:00:00", Some(0)),
            ("time", "2024-01-01 00:00:00.123", Some(1_704_067_200_123)),
            ("time", "2024-01-01 00:00:00.1", Some(1_704_067_200_100)),
            ("time", "2024-13-01 00:00:00", None),
            ("time", "2024-01-01T00:00:00", None),
            ("time", "2024-01-01 00:00:00.12345", None),
            ("time", "", None),
            ("time", "1704067200123", Some(1_704_067_200_123)),
            ("eng", "0/0", Some(0)),
            ("eng", "17/1", Some(17 * 256 + 1)),
            ("eng", "300/1", None),
            ("eng", "5", None),
        ];
        for (p, input, want) in cases {
            let got = match *p {
                "flags" => flags(input).map(u64::from),
                "proto" => proto(input).map(u64::from),
                "time" => parse_time(input),
                "eng" => engine(input).map(u64::from),
                _ => unreachable!(),
            };
            assert_eq!(got, *want, "{p}({input:?})");
        }
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let text = "ts,te,sa,da,pr\n2024-01-01 00:00:00,2024-01-01 00:00:00,1.2.3.4,5.6.7.8,TCP\n2024-01-01 00:00:00,2024-01-01 00:00:00,1.2.3.999,5.6.7.8,TCP\n";
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadValue {
                    line: 3,
                    column: "sa",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse("ts,te,sa,da,pr\n2024-01-01 00:00:00,x\n".as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadValue {
                    line: 2,
                    column: "te",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse("ts,te,sa,da,pr\n2024-01-01 00:00:00,2024-01-01 00:00:00\n".as_bytes())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ShortLine {
                    line: 2,
                    column: "sa",
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            parse("ts,te,sa\n".as_bytes()).unwrap_err(),
            Error::MissingColumn { column: "da" }
        ));
        assert!(matches!(parse("".as_bytes()).unwrap_err(), Error::Empty));
        let e = parse(&b"ts,te,sa,da\n\xff\xfe\n"[..]).unwrap_err();
        assert!(matches!(e, Error::NotUtf8 { line: 2 }), "{e}");
        assert!(matches!(
            parse("Date first seen  Duration Proto\n".as_bytes()).unwrap_err(),
            Error::NotAHeader { .. }
        ));
    }

    #[test]
    fn reads_csv_fast_output() {
        let text = "cnt,af,firstSeen,lastSeen,proto,srcAddr,srcPort,dstAddr,dstPort,srcAS,dstAS,input,output,flags,srcTos,packets,bytes\n\
                    1,2,1704067200123,1704067201456,6,10.0.0.1,1234,10.0.0.2,443,65001,15169,3,4,...A..S.,32,7,900\n";
        assert!(looks_like_nfcsv(text.as_bytes()));
        let r = &parse(text.as_bytes()).unwrap()[0];
        assert_eq!(
            (r.time_start, r.time_end),
            (1_704_067_200_123, 1_704_067_201_456)
        );
        assert_eq!(
            (r.proto, r.src_port, r.dst_port, r.tcp_flags, r.tos),
            (6, 1234, 443, 0x12, 32)
        );
        assert_eq!(
            (r.src_as, r.dst_as, r.in_if, r.out_if),
            (65001, 15169, 3, 4)
        );
        assert_eq!((r.packets, r.bytes), (7, 900));
        assert_eq!(r.dst_addr.to_string(), "10.0.0.2");
    }

    #[test]
    fn tunnel_lines_of_nfdump_171_are_skipped() {
        let head = "ts,te,td,sa,da,sp,dp,pr,flg,ipkt,ibyt,opkt,obyt";
        let lines = [
            // (line, kept)
            (
                "2024-01-01 00:33:41,2024-01-01 00:33:41,0.002,::,::,0,0,IPIP,........,0,0,0,0",
                false,
            ),
            (
                "2024-01-01 00:33:41,2024-01-01 00:33:41,0.002,dead::beef,cafe::babe,30000,13000,UDP,........,2,104,0,0",
                true,
            ),
            (
                "2024-01-01 00:33:41,2024-01-01 00:33:41,0.0,1.1.1.1,2.2.2.2,0,0,GRE,........,0,0,0,0",
                false,
            ),
            // Zero counters but not a tunnel protocol, or with out counters: kept.
            (
                "2024-01-01 00:33:41,2024-01-01 00:33:41,0.0,1.1.1.1,2.2.2.2,0,0,UDP,........,0,0,0,0",
                true,
            ),
            (
                "2024-01-01 00:33:41,2024-01-01 00:33:41,0.0,1.1.1.1,2.2.2.2,0,0,GRE,........,0,0,1,60",
                true,
            ),
        ];
        for (line, kept) in lines {
            let text = format!("{head}\n{line}\n");
            let mut rd = Reader::new(text.as_bytes()).unwrap();
            let got = rd.next_record().unwrap();
            assert_eq!(got.is_some(), kept, "{line}");
            assert_eq!(rd.tunnel_lines(), u64::from(!kept));
        }
    }

    #[test]
    fn no_matching_flows_reads_as_empty() {
        let text = format!(
            "{HEADER_171}\nNo matching flows\nSummary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n0,0,0,0,0,0\n"
        );
        let mut rd = Reader::new(text.as_bytes()).unwrap();
        assert!(rd.next_record().unwrap().is_none());
        assert_eq!(rd.summary(), Some(Summary::default()));
    }

    #[test]
    fn detection_table() {
        let cases: &[(&[u8], bool)] = &[
            (HEADER_171.as_bytes(), true),
            (b"ts,te,td,sa,da,sp,dp,pr\n2024", true),
            (b"ts,te,sa,da", true),
            (b"ts,te,td,sp,dp\n", false),
            (b"ts,te,sa,da,zeek_extra_field_with_a_long_name,$\n", true),
            (b"Date first seen,Duration\n", false),
            (b"\x0c\xa5\x02\x00", false),
            (b"", false),
        ];
        for (input, want) in cases {
            assert_eq!(
                looks_like_nfcsv(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
