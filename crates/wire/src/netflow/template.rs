//! Template records and their compiled decode plans.
//!
//! A template (v9 or IPFIX, options or not) is a list of `(element, enterprise, length)`
//! specifiers. [`Plan::compile`] turns it once into the work to do per data record:
//!
//! - every specifier whose element flowdrill knows becomes a [`Step`] `(offset, length, op)`;
//!   where a record carries several elements for one schema field (octetDeltaCount and
//!   octetTotalCount, flowStartMilliseconds and flowStartSysUpTime...) only the preferred one
//!   is kept, so the record loop never arbitrates;
//! - when every field has a fixed length the record length is fixed and steps carry absolute
//!   offsets: decoding a record is a straight walk over `steps` with no length parsing and no
//!   allocation (the fast path);
//! - otherwise (a variable-length field, RFC 7011 section 7) the record is walked field by field.
//!
//! Invariants the record loops rely on: in a fixed plan `step.off + step.len <= record_len`
//! for every step; an op's length was checked at compile time for the op's type (addresses 4
//! or 16 bytes, integers 1 to 8), so applying it cannot fail; variable-length fields only feed
//! user-defined elements, which check their length at run time.

use super::{Flavor, be_uint, be16, be32};
use flowdrill_model::{Addr, CustomFields, CustomKind, CustomValue, FlowRecord};

/// The field length that announces a variable-length field (IPFIX; tolerated in v9).
pub const VARLEN: u16 = 0xffff;
/// Fields per template above which a template is refused (no real exporter comes close;
/// bounds plan size and compile time).
pub const MAX_FIELDS: usize = 512;
/// The enterprise number of RFC 5103 reverse elements.
pub const REVERSE_PEN: u32 = 29305;

/// Why a template record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("template record runs past the end of its set")]
    Truncated,
    #[error("template {0} has more than {MAX_FIELDS} fields")]
    TooManyFields(u16),
    #[error("template id {0} is reserved (data set ids start at 256)")]
    ReservedId(u16),
    #[error("options template declares {scope} scope fields out of {total}")]
    BadScopeCount { scope: u16, total: u16 },
    #[error("template {0} describes records of zero length")]
    ZeroLength(u16),
}

impl Error {
    /// The drop reason this error is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Truncated => "template: truncated",
            Error::TooManyFields(_) => "template: too many fields",
            Error::ReservedId(_) => "template: reserved id",
            Error::BadScopeCount { .. } => "template: bad scope field count",
            Error::ZeroLength(_) => "template: zero-length records",
        }
    }
}

/// One field specifier of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Element id without the enterprise bit (v9: the field type as sent).
    pub id: u16,
    /// Private enterprise number, 0 for IANA elements and for all v9 fields.
    pub enterprise: u32,
    /// Length on the wire, or [`VARLEN`].
    pub len: u16,
    /// A scope field of an options template.
    pub scope: bool,
}

/// A template record as sent: what a set defines before compilation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateDef {
    pub id: u16,
    pub options: bool,
    pub fields: Vec<FieldSpec>,
}

/// What one record of a template set says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateRecord {
    Define(TemplateDef),
    /// IPFIX withdrawal of one template (field count 0).
    Withdraw(u16),
    /// IPFIX withdrawal of all templates (id 2) or all options templates (id 3) of the domain.
    WithdrawAll {
        options: bool,
    },
}

/// Parses the template record at `pos` of a template or options template set `body` (set
/// header excluded). Returns the record and the position after it, or `None` at the end of
/// the set (fewer than 4 bytes left are padding).
pub fn parse_record(
    flavor: Flavor,
    options: bool,
    body: &[u8],
    pos: usize,
) -> Option<Result<(TemplateRecord, usize), Error>> {
    if body.len().saturating_sub(pos) < 4 {
        return None;
    }
    let id = be16(body, pos);
    let count = be16(body, pos + 2);
    if id == 0 && count == 0 {
        // All-zero bytes: padding to the end of the set.
        return None;
    }
    Some(match (flavor, options) {
        (Flavor::V9, false) => parse_fields(flavor, id, count, 0, body, pos + 4),
        (Flavor::V9, true) => {
            // v9 options: id, scope length (bytes), option length (bytes), then specifiers.
            if body.len() < pos + 6 {
                return Some(Err(Error::Truncated));
            }
            let scope_bytes = count;
            let option_bytes = be16(body, pos + 4);
            let total = (scope_bytes as usize + option_bytes as usize) / 4;
            let scope = scope_bytes as usize / 4;
            if total > MAX_FIELDS {
                return Some(Err(Error::TooManyFields(id)));
            }
            parse_fields(flavor, id, total as u16, scope as u16, body, pos + 6).map(
                |(mut rec, end)| {
                    if let TemplateRecord::Define(def) = &mut rec {
                        def.options = true;
                    }
                    // Option lengths not a multiple of 4 are padding inside the record.
                    let declared = pos + 6 + scope_bytes as usize + option_bytes as usize;
                    (rec, end.max(declared.min(body.len())))
                },
            )
        }
        (Flavor::Ipfix, false) => {
            if count == 0 {
                return Some(Ok((
                    if id == 2 {
                        TemplateRecord::WithdrawAll { options: false }
                    } else {
                        TemplateRecord::Withdraw(id)
                    },
                    pos + 4,
                )));
            }
            parse_fields(flavor, id, count, 0, body, pos + 4)
        }
        (Flavor::Ipfix, true) => {
            if count == 0 {
                return Some(Ok((
                    if id == 3 {
                        TemplateRecord::WithdrawAll { options: true }
                    } else {
                        TemplateRecord::Withdraw(id)
                    },
                    pos + 4,
                )));
            }
            if body.len() < pos + 6 {
                return Some(Err(Error::Truncated));
            }
            let scope = be16(body, pos + 4);
            if scope == 0 || scope > count {
                return Some(Err(Error::BadScopeCount {
                    scope,
                    total: count,
                }));
            }
            parse_fields(flavor, id, count, scope, body, pos + 6).map(|(mut rec, end)| {
                if let TemplateRecord::Define(def) = &mut rec {
                    def.options = true;
                }
                (rec, end)
            })
        }
    })
}

fn parse_fields(
    flavor: Flavor,
    id: u16,
    count: u16,
    scope: u16,
    body: &[u8],
    mut pos: usize,
) -> Result<(TemplateRecord, usize), Error> {
    if id < 256 {
        return Err(Error::ReservedId(id));
    }
    if count as usize > MAX_FIELDS {
        return Err(Error::TooManyFields(id));
    }
    let mut fields = Vec::with_capacity(count as usize);
    for i in 0..count {
        if body.len() < pos + 4 {
            return Err(Error::Truncated);
        }
        let raw = be16(body, pos);
        let len = be16(body, pos + 2);
        pos += 4;
        let (id, enterprise) = if flavor == Flavor::Ipfix && raw & 0x8000 != 0 {
            if body.len() < pos + 4 {
                return Err(Error::Truncated);
            }
            let pen = be32(body, pos);
            pos += 4;
            (raw & 0x7fff, pen)
        } else {
            (raw, 0)
        };
        fields.push(FieldSpec {
            id,
            enterprise,
            len,
            scope: i < scope,
        });
    }
    Ok((
        TemplateRecord::Define(TemplateDef {
            id,
            options: false,
            fields,
        }),
        pos,
    ))
}

/// How a timestamp element is to be turned into Unix ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeForm {
    /// Not in the template.
    #[default]
    Absent,
    /// ms since exporter boot (v9 FIRST/LAST_SWITCHED, IPFIX flowStart/EndSysUpTime).
    Uptime,
    Seconds,
    Millis,
    /// dateTimeMicroseconds: NTP format per RFC 7011; plain Unix µs are recognised too.
    Micros,
    /// dateTimeNanoseconds: NTP format; plain Unix ns are recognised too.
    Nanos,
    /// µs before the message's export time (flowStart/EndDeltaMicroseconds).
    DeltaMicros,
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl TimeForm {
    /// Converts a raw value; `boot_ms` is the exporter's boot time when known.
    pub fn to_ms(self, raw: u64, export_ms: u64, boot_ms: Option<u64>) -> Option<u64> {
        match self {
            TimeForm::Absent => None,
            TimeForm::Uptime => boot_ms.map(|b| b.wrapping_add(raw)),
            TimeForm::Seconds => Some(raw.saturating_mul(1000)),
            TimeForm::Millis => Some(raw),
            TimeForm::Micros | TimeForm::Nanos => {
                let secs = raw >> 32;
                if secs >= NTP_UNIX_OFFSET {
                    let frac_ms = ((raw & 0xffff_ffff) * 1000) >> 32;
                    Some((secs - NTP_UNIX_OFFSET) * 1000 + frac_ms)
                } else if self == TimeForm::Micros {
                    Some(raw / 1000)
                } else {
                    Some(raw / 1_000_000)
                }
            }
            TimeForm::DeltaMicros => Some(export_ms.saturating_sub(raw / 1000)),
        }
    }
}

/// What a step does with its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    SrcAddr,
    DstAddr,
    NextHop,
    BgpNextHop,
    SrcPort,
    DstPort,
    Proto,
    TcpFlags,
    Tos,
    Bytes,
    Packets,
    InIf,
    OutIf,
    SrcAs,
    DstAs,
    SrcMask,
    DstMask,
    Start,
    End,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    SamplerId,
    SamplingInterval,
    PacketInterval,
    PacketSpace,
    SysInitMs,
    Custom(u16, CustomKind),
}

/// Per-record values that are not fields of [`FlowRecord`] but decide some (times, ICMP,
/// sampling). Zero means absent for every member; reset before each record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scratch {
    pub start: u64,
    pub end: u64,
    pub bgp_next_hop: u128,
    /// `0x1_0000 | type<<8 | code` when an ICMP type/code element was present.
    pub icmp: u32,
    /// `1 + sampler id` when present.
    pub sampler: u64,
    pub interval: u64,
    pub pkt_interval: u64,
    pub pkt_space: u64,
    pub sys_init_ms: u64,
}

impl Scratch {
    /// The sampling rate the record itself states, if any.
    pub fn own_rate(&self) -> Option<u32> {
        if self.interval > 0 {
            return Some(self.interval.min(u32::MAX as u64) as u32);
        }
        // samplingPacketInterval packets taken, samplingPacketSpace skipped.
        (self.pkt_interval.saturating_add(self.pkt_space))
            .checked_div(self.pkt_interval)
            .map(|r| r.clamp(1, u32::MAX as u64) as u32)
    }
}

/// One unit of work of a plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Offset in the record (meaningful in fixed plans only).
    pub off: u16,
    pub len: u16,
    pub op: Op,
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub id: u16,
    pub options: bool,
    /// The specifiers as received, to tell a refresh from a replacement.
    pub fields: Vec<FieldSpec>,
    /// Steps in field order, one per kept field.
    pub steps: Vec<Step>,
    /// Record length when every field has a fixed length (the fast path).
    pub fixed_len: Option<usize>,
    /// For the variable path: per field, its length and its step index (`u16::MAX`: skip).
    var_fields: Vec<(u16, u16)>,
    /// Smallest possible record (variable fields count one byte).
    pub min_len: usize,
    pub start_form: TimeForm,
    pub end_form: TimeForm,
    /// Addresses of the template are IPv6 (so an absent next hop is `::`, not `0.0.0.0`).
    pub v6: bool,
    /// Where each op reads in a fixed record, when every op occurs at most once and no
    /// user-defined element is decoded: the record is then decoded by straight-line code
    /// (one well-predicted test per op) instead of a loop over steps.
    layout: Option<Layout>,
}

/// Ops a [`Layout`] can place, in the order its slots are indexed.
const LAYOUT_OPS: [Op; 27] = [
    Op::SrcAddr,
    Op::DstAddr,
    Op::NextHop,
    Op::BgpNextHop,
    Op::SrcPort,
    Op::DstPort,
    Op::Proto,
    Op::TcpFlags,
    Op::Tos,
    Op::Bytes,
    Op::Packets,
    Op::InIf,
    Op::OutIf,
    Op::SrcAs,
    Op::DstAs,
    Op::SrcMask,
    Op::DstMask,
    Op::Start,
    Op::End,
    Op::IcmpTypeCode,
    Op::IcmpType,
    Op::IcmpCode,
    Op::SamplerId,
    Op::SamplingInterval,
    Op::PacketInterval,
    Op::PacketSpace,
    Op::SysInitMs,
];

/// Offset and length of one op in a fixed record; length 0 = absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct At {
    off: u16,
    len: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    at: [At; LAYOUT_OPS.len()],
}

impl Layout {
    /// `None` when a step is a user-defined element, an op occurs twice, or a field has
    /// length 0 (those plans keep the step loop).
    fn of(steps: &[Step]) -> Option<Layout> {
        let mut at = [At::default(); LAYOUT_OPS.len()];
        for st in steps {
            let i = LAYOUT_OPS.iter().position(|o| *o == st.op)?;
            if at[i].len != 0 || st.len == 0 {
                return None;
            }
            at[i] = At {
                off: st.off,
                len: st.len,
            };
        }
        Some(Layout { at })
    }

    /// Decodes one record. Invariant (from [`Plan::compile`]): `off + len <= rec_bytes.len()`
    /// for every present slot.
    #[inline(always)]
    fn decode(&self, r: &[u8], rec: &mut FlowRecord, s: &mut Scratch) {
        macro_rules! slots {
            ($($i:literal),*) => {$(
                let a = self.at[$i];
                if a.len != 0 {
                    let b = &r[a.off as usize..a.off as usize + a.len as usize];
                    apply(LAYOUT_OPS[$i], b, rec, s);
                }
            )*};
        }
        slots!(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 26
        );
    }
}

/// Slots where several elements compete; the lower rank wins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Bytes,
    Packets,
    SrcPort,
    DstPort,
    InIf,
    OutIf,
    Start,
    End,
    None,
}

/// The op an IANA element maps to, its slot and rank, and the length rule it needs.
fn classify(id: u16, len: u16) -> Option<(Op, Slot, u8, TimeForm)> {
    use Op::*;
    let int = (1..=8).contains(&len);
    let addr = len == 4 || len == 16;
    let t = TimeForm::Absent;
    let r = match id {
        8 | 27 if addr => (SrcAddr, Slot::None, 0, t),
        12 | 28 if addr => (DstAddr, Slot::None, 0, t),
        15 | 62 if addr => (NextHop, Slot::None, 0, t),
        18 | 63 if addr => (BgpNextHop, Slot::None, 0, t),
        7 if int => (SrcPort, Slot::SrcPort, 0, t),
        180 | 182 if int => (SrcPort, Slot::SrcPort, 1, t),
        11 if int => (DstPort, Slot::DstPort, 0, t),
        181 | 183 if int => (DstPort, Slot::DstPort, 1, t),
        4 if int => (Proto, Slot::None, 0, t),
        6 if int => (TcpFlags, Slot::None, 0, t),
        5 if int => (Tos, Slot::None, 0, t),
        1 if int => (Bytes, Slot::Bytes, 0, t),
        85 if int => (Bytes, Slot::Bytes, 1, t),
        23 if int => (Bytes, Slot::Bytes, 2, t),
        231 if int => (Bytes, Slot::Bytes, 3, t),
        352 if int => (Bytes, Slot::Bytes, 4, t),
        2 if int => (Packets, Slot::Packets, 0, t),
        86 if int => (Packets, Slot::Packets, 1, t),
        24 if int => (Packets, Slot::Packets, 2, t),
        298 if int => (Packets, Slot::Packets, 3, t),
        10 if int => (InIf, Slot::InIf, 0, t),
        252 if int => (InIf, Slot::InIf, 1, t),
        14 if int => (OutIf, Slot::OutIf, 0, t),
        253 if int => (OutIf, Slot::OutIf, 1, t),
        16 if int => (SrcAs, Slot::None, 0, t),
        17 if int => (DstAs, Slot::None, 0, t),
        9 | 29 if int => (SrcMask, Slot::None, 0, t),
        13 | 30 if int => (DstMask, Slot::None, 0, t),
        152 if int => (Start, Slot::Start, 0, TimeForm::Millis),
        150 if int => (Start, Slot::Start, 1, TimeForm::Seconds),
        154 if len == 8 => (Start, Slot::Start, 2, TimeForm::Micros),
        156 if len == 8 => (Start, Slot::Start, 3, TimeForm::Nanos),
        22 if int => (Start, Slot::Start, 4, TimeForm::Uptime),
        158 if int => (Start, Slot::Start, 5, TimeForm::DeltaMicros),
        153 if int => (End, Slot::End, 0, TimeForm::Millis),
        151 if int => (End, Slot::End, 1, TimeForm::Seconds),
        155 if len == 8 => (End, Slot::End, 2, TimeForm::Micros),
        157 if len == 8 => (End, Slot::End, 3, TimeForm::Nanos),
        21 if int => (End, Slot::End, 4, TimeForm::Uptime),
        159 if int => (End, Slot::End, 5, TimeForm::DeltaMicros),
        32 | 139 if int => (IcmpTypeCode, Slot::None, 0, t),
        176 | 178 if int => (IcmpType, Slot::None, 0, t),
        177 | 179 if int => (IcmpCode, Slot::None, 0, t),
        48 | 302 if int => (SamplerId, Slot::None, 0, t),
        34 | 50 if int => (SamplingInterval, Slot::None, 0, t),
        305 if int => (PacketInterval, Slot::None, 0, t),
        306 if int => (PacketSpace, Slot::None, 0, t),
        160 if int => (SysInitMs, Slot::None, 0, t),
        _ => return None,
    };
    Some(r)
}

impl Plan {
    /// Compiles a template definition. Elements neither known nor in `custom` are skipped by
    /// length; v9 scope fields (whose types are scope kinds, not elements) are skipped too.
    pub fn compile(
        flavor: Flavor,
        def: &TemplateDef,
        custom: &CustomFields,
    ) -> Result<Plan, Error> {
        let fixed = def.fields.iter().all(|f| f.len != VARLEN);
        // (field index, op, slot, rank, form)
        let mut cands: Vec<(usize, Op, Slot, u8, TimeForm)> = Vec::new();
        let mut v6 = false;
        for (i, f) in def.fields.iter().enumerate() {
            if flavor == Flavor::V9 && f.scope {
                continue;
            }
            if let Some(idx) = custom.lookup(f.enterprise, f.id) {
                let kind = custom.fields[idx as usize].kind;
                cands.push((i, Op::Custom(idx, kind), Slot::None, 0, TimeForm::Absent));
            }
            if f.enterprise != 0 || f.len == VARLEN {
                continue;
            }
            if let Some((op, slot, rank, form)) = classify(f.id, f.len) {
                if matches!(op, Op::SrcAddr | Op::DstAddr) && f.len == 16 {
                    v6 = true;
                }
                cands.push((i, op, slot, rank, form));
            }
        }
        // Keep the best-ranked candidate of each competing slot.
        let best = |slot: Slot| {
            cands
                .iter()
                .filter(|c| c.2 == slot)
                .map(|c| c.3)
                .min()
                .unwrap_or(0)
        };
        let best_rank: Vec<u8> = cands.iter().map(|c| best(c.2)).collect();
        let mut start_form = TimeForm::Absent;
        let mut end_form = TimeForm::Absent;
        let mut kept = Vec::with_capacity(cands.len());
        let mut seen_slot: Vec<Slot> = Vec::new();
        for (c, br) in cands.iter().zip(best_rank) {
            if c.2 != Slot::None {
                if c.3 != br || seen_slot.contains(&c.2) {
                    continue;
                }
                seen_slot.push(c.2);
            }
            match c.1 {
                Op::Start => start_form = c.4,
                Op::End => end_form = c.4,
                _ => {}
            }
            kept.push((c.0, c.1));
        }

        let mut offsets = Vec::with_capacity(def.fields.len());
        let mut off = 0usize;
        let mut min_len = 0usize;
        for f in &def.fields {
            offsets.push(off);
            let l = if f.len == VARLEN { 1 } else { f.len as usize };
            off += l;
            min_len += l;
        }
        let steps: Vec<Step> = kept
            .iter()
            .map(|&(i, op)| Step {
                off: offsets[i].min(u16::MAX as usize) as u16,
                len: def.fields[i].len,
                op,
            })
            .collect();
        let mut var_fields: Vec<(u16, u16)> =
            def.fields.iter().map(|f| (f.len, u16::MAX)).collect();
        for (si, &(i, _)) in kept.iter().enumerate() {
            var_fields[i].1 = si as u16;
        }
        let fixed_len = if fixed { Some(min_len) } else { None };
        if fixed_len == Some(0) {
            return Err(Error::ZeroLength(def.id));
        }
        // A fixed record longer than a u16 offset can address is impossible in a datagram.
        if fixed && min_len > u16::MAX as usize {
            return Err(Error::Truncated);
        }
        let layout = if fixed { Layout::of(&steps) } else { None };
        Ok(Plan {
            layout,
            id: def.id,
            options: def.options,
            fields: def.fields.clone(),
            steps,
            fixed_len,
            var_fields,
            min_len: min_len.max(1),
            start_form,
            end_form,
            v6,
        })
    }

    /// Decodes the records of one data set body into `emit(record, scratch)` calls and
    /// returns how many records it found. Trailing bytes shorter than a record are padding.
    /// A variable-length record that runs past the set ends the set; it is counted in the
    /// returned `Err` as the number of records decoded before it.
    #[inline]
    pub fn for_each_record(
        &self,
        body: &[u8],
        template_rec: &FlowRecord,
        mut emit: impl FnMut(&mut FlowRecord, &Scratch),
    ) -> Result<usize, usize> {
        let mut n = 0;
        if let Some(len) = self.fixed_len {
            for rec_bytes in body.chunks_exact(len) {
                let mut rec = template_rec.clone();
                let mut s = Scratch::default();
                for st in &self.steps {
                    let b = &rec_bytes[st.off as usize..st.off as usize + st.len as usize];
                    apply(st.op, b, &mut rec, &mut s);
                }
                emit(&mut rec, &s);
                n += 1;
            }
            return Ok(n);
        }
        self.walk_records(body, template_rec, emit)
    }

    /// [`Plan::for_each_record`] appending the records to `out` directly (the hot path of
    /// flow data sets): each record is cloned from `template_rec` into its final place,
    /// filled there, then handed to `finish`. Returns the number of records appended.
    #[inline]
    pub fn decode_into(
        &self,
        body: &[u8],
        template_rec: &FlowRecord,
        out: &mut Vec<FlowRecord>,
        mut finish: impl FnMut(&mut FlowRecord, &Scratch),
    ) -> Result<usize, usize> {
        let Some(len) = self.fixed_len else {
            return self.walk_records(body, template_rec, |r, s| {
                finish(r, s);
                out.push(std::mem::take(r));
            });
        };
        let n = body.len() / len;
        // `extend` over an exact-size iterator builds each record in the vector's buffer.
        out.extend(body.chunks_exact(len).map(|rec_bytes| {
            let mut rec = template_rec.clone();
            let mut s = Scratch::default();
            match &self.layout {
                Some(l) => l.decode(rec_bytes, &mut rec, &mut s),
                None => {
                    for st in &self.steps {
                        let b = &rec_bytes[st.off as usize..st.off as usize + st.len as usize];
                        apply(st.op, b, &mut rec, &mut s);
                    }
                }
            }
            finish(&mut rec, &s);
            rec
        }));
        Ok(n)
    }

    /// True when a record can carry its own sampling information (rate or sampler id), so
    /// the rate must be found per record rather than once per set.
    pub fn per_record_sampling(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.op,
                Op::SamplerId | Op::SamplingInterval | Op::PacketInterval | Op::PacketSpace
            )
        })
    }

    /// The general record loop: walks every field, reading variable-length prefixes. Used
    /// for templates with variable-length fields, and by tests as the naive reference the
    /// fixed-offset loop must agree with.
    pub(crate) fn walk_records(
        &self,
        body: &[u8],
        template_rec: &FlowRecord,
        mut emit: impl FnMut(&mut FlowRecord, &Scratch),
    ) -> Result<usize, usize> {
        let mut n = 0;
        let mut pos = 0usize;
        while body.len().saturating_sub(pos) >= self.min_len {
            let mut rec = template_rec.clone();
            let mut s = Scratch::default();
            for &(flen, step) in &self.var_fields {
                let len = if flen == VARLEN {
                    let Some(&l0) = body.get(pos) else {
                        return Err(n);
                    };
                    pos += 1;
                    if l0 == 255 {
                        let Some(l) = body.get(pos..pos + 2) else {
                            return Err(n);
                        };
                        pos += 2;
                        be16(l, 0) as usize
                    } else {
                        l0 as usize
                    }
                } else {
                    flen as usize
                };
                let Some(b) = body.get(pos..pos + len) else {
                    return Err(n);
                };
                pos += len;
                if let Some(st) = self.steps.get(step as usize) {
                    apply(st.op, b, &mut rec, &mut s);
                }
            }
            emit(&mut rec, &s);
            n += 1;
        }
        Ok(n)
    }
}

/// Applies one op. For fixed fields the length was validated at compile time; custom
/// elements (the only ops variable-length fields feed) check it here.
#[inline(always)]
fn apply(op: Op, b: &[u8], rec: &mut FlowRecord, s: &mut Scratch) {
    match op {
        // A template may carry both an IPv4 and an IPv6 address element, one of them zero
        // per record: a zero address never overwrites a set one.
        Op::SrcAddr => {
            let a = addr(b);
            if !a.is_unspecified() || rec.src_addr.is_unspecified() {
                rec.src_addr = a;
            }
        }
        Op::DstAddr => {
            let a = addr(b);
            if !a.is_unspecified() || rec.dst_addr.is_unspecified() {
                rec.dst_addr = a;
            }
        }
        Op::NextHop => {
            let a = addr(b);
            if !a.is_unspecified() || rec.next_hop.is_unspecified() {
                rec.next_hop = a;
            }
        }
        Op::BgpNextHop => s.bgp_next_hop = addr(b).0,
        Op::SrcPort => rec.src_port = be_uint(b) as u16,
        Op::DstPort => rec.dst_port = be_uint(b) as u16,
        Op::Proto => rec.proto = be_uint(b) as u8,
        Op::TcpFlags => rec.tcp_flags = be_uint(b) as u8,
        Op::Tos => rec.tos = be_uint(b) as u8,
        Op::Bytes => rec.bytes = be_uint(b),
        Op::Packets => rec.packets = be_uint(b),
        Op::InIf => rec.in_if = be_uint(b) as u32,
        Op::OutIf => rec.out_if = be_uint(b) as u32,
        Op::SrcAs => rec.src_as = be_uint(b) as u32,
        Op::DstAs => rec.dst_as = be_uint(b) as u32,
        Op::SrcMask => rec.src_mask = be_uint(b) as u8,
        Op::DstMask => rec.dst_mask = be_uint(b) as u8,
        Op::Start => s.start = be_uint(b),
        Op::End => s.end = be_uint(b),
        Op::IcmpTypeCode => s.icmp = 0x1_0000 | (be_uint(b) as u32 & 0xffff),
        Op::IcmpType => s.icmp = 0x1_0000 | (s.icmp & 0xff) | (be_uint(b) as u32 & 0xff) << 8,
        Op::IcmpCode => s.icmp = 0x1_0000 | (s.icmp & 0xff00) | (be_uint(b) as u32 & 0xff),
        Op::SamplerId => s.sampler = be_uint(b).saturating_add(1),
        Op::SamplingInterval => s.interval = be_uint(b),
        Op::PacketInterval => s.pkt_interval = be_uint(b),
        Op::PacketSpace => s.pkt_space = be_uint(b),
        Op::SysInitMs => s.sys_init_ms = be_uint(b),
        Op::Custom(idx, kind) => {
            if let Some(v) = custom_value(kind, b) {
                rec.extra.push((idx, v));
            }
        }
    }
}

#[inline(always)]
fn addr(b: &[u8]) -> Addr {
    match b.len() {
        4 => Addr::from_v4_u32(be32(b, 0)),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Addr::from_v6_octets(o)
        }
        _ => Addr::default(),
    }
}

/// Decodes a user-defined element's value; `None` when the length does not fit the type.
fn custom_value(kind: CustomKind, b: &[u8]) -> Option<CustomValue> {
    Some(match kind {
        CustomKind::Unsigned if (1..=8).contains(&b.len()) => CustomValue::Unsigned(be_uint(b)),
        CustomKind::Signed if (1..=8).contains(&b.len()) => {
            let shift = 64 - 8 * b.len() as u32;
            CustomValue::Signed(((be_uint(b) << shift) as i64) >> shift)
        }
        CustomKind::Float if b.len() == 4 => CustomValue::Float(f32::from_bits(be32(b, 0)) as f64),
        CustomKind::Float if b.len() == 8 => CustomValue::Float(f64::from_bits(be_uint(b))),
        CustomKind::String => {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            CustomValue::String(String::from_utf8_lossy(&b[..end]).into())
        }
        CustomKind::Bytes => CustomValue::Bytes(b.into()),
        CustomKind::Address if b.len() == 4 || b.len() == 16 => CustomValue::Address(addr(b)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::CustomField;

    fn spec(id: u16, len: u16) -> FieldSpec {
        FieldSpec {
            id,
            enterprise: 0,
            len,
            scope: false,
        }
    }

    fn def(fields: Vec<FieldSpec>) -> TemplateDef {
        TemplateDef {
            id: 256,
            options: false,
            fields,
        }
    }

    #[test]
    fn preferred_elements_win_their_slot_whatever_the_order() {
        let d = def(vec![
            spec(85, 8),
            spec(1, 4),
            spec(22, 4),
            spec(152, 8),
            spec(2, 4),
        ]);
        let p = Plan::compile(Flavor::Ipfix, &d, &CustomFields::default()).unwrap();
        let ops: Vec<Op> = p.steps.iter().map(|s| s.op).collect();
        assert_eq!(ops, vec![Op::Bytes, Op::Start, Op::Packets]);
        assert_eq!(p.steps[0].off, 8);
        assert_eq!(p.start_form, TimeForm::Millis);
        assert_eq!(p.fixed_len, Some(28));
    }

    #[test]
    fn unknown_and_enterprise_fields_are_skipped_by_length_unless_registered() {
        let mut custom = CustomFields::default();
        custom.fields.push(CustomField {
            enterprise: 6871,
            id: 5,
            name: "yaf_thing".into(),
            kind: CustomKind::Unsigned,
        });
        let mut rev = spec(1, 8);
        rev.enterprise = REVERSE_PEN;
        let mut yaf = spec(5, 2);
        yaf.enterprise = 6871;
        let d = def(vec![spec(8, 4), rev, yaf, spec(9999, 3), spec(1, 8)]);
        let p = Plan::compile(Flavor::Ipfix, &d, &custom).unwrap();
        let mut body = vec![10, 0, 0, 1];
        body.extend_from_slice(&999u64.to_be_bytes()); // reverse octets: must not be bytes
        body.extend_from_slice(&[0, 42]);
        body.extend_from_slice(&[1, 2, 3]);
        body.extend_from_slice(&77u64.to_be_bytes());
        let mut got = Vec::new();
        let n = p
            .for_each_record(&body, &FlowRecord::default(), |r, _| got.push(r.clone()))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(got[0].bytes, 77);
        assert_eq!(got[0].src_addr.to_string(), "10.0.0.1");
        assert_eq!(got[0].extra, vec![(0, CustomValue::Unsigned(42))]);
    }

    #[test]
    fn variable_length_fields_are_walked_in_both_length_encodings() {
        let d = def(vec![spec(7, 2), spec(96, VARLEN), spec(11, 2)]);
        let p = Plan::compile(Flavor::Ipfix, &d, &CustomFields::default()).unwrap();
        assert_eq!(p.fixed_len, None);
        let mut body = vec![0, 80, 3, b'a', b'b', b'c', 0, 53];
        body.extend_from_slice(&[0, 81, 255, 0x01, 0x2a]); // long form: 298 bytes
        body.extend_from_slice(&[b'x'; 298]);
        body.extend_from_slice(&[0, 54]);
        let mut ports = Vec::new();
        let n = p
            .for_each_record(&body, &FlowRecord::default(), |r, _| {
                ports.push((r.src_port, r.dst_port))
            })
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(ports, vec![(80, 53), (81, 54)]);
        // A length prefix that lies ends the set, keeping the records before it.
        let mut bad = body[..8].to_vec();
        bad.extend_from_slice(&[0, 81, 200, 1, 2]);
        assert_eq!(
            p.for_each_record(&bad, &FlowRecord::default(), |_, _| {}),
            Err(1)
        );
    }

    #[test]
    fn time_forms_convert_to_unix_ms() {
        let ntp = ((1_700_000_000u64 + NTP_UNIX_OFFSET) << 32) | (1u64 << 31);
        let cases = [
            (TimeForm::Millis, 1_700_000_000_123, 1_700_000_000_123),
            (TimeForm::Seconds, 1_700_000_000, 1_700_000_000_000),
            (TimeForm::Micros, ntp, 1_700_000_000_500),
            (TimeForm::Nanos, ntp, 1_700_000_000_500),
            (TimeForm::Micros, 1_700_000_000_123_456, 1_700_000_000_123),
            (
                TimeForm::Nanos,
                1_700_000_000_123_456_789,
                1_700_000_000_123,
            ),
            (TimeForm::Uptime, 500, 1_000_500),
            (TimeForm::DeltaMicros, 2_000_000, 8_000),
        ];
        for (form, raw, want) in cases {
            assert_eq!(
                form.to_ms(raw, 10_000, Some(1_000_000)),
                Some(want),
                "{form:?}"
            );
        }
        assert_eq!(TimeForm::Uptime.to_ms(5, 0, None), None);
    }

    #[test]
    fn template_records_parse_and_refuse_by_cause() {
        let ipfix_tpl = [1u8, 0, 0, 2, 0, 8, 0, 4, 0x80, 1, 0, 8, 0, 0, 0x72, 0x79];
        let (rec, end) = parse_record(Flavor::Ipfix, false, &ipfix_tpl, 0)
            .unwrap()
            .unwrap();
        assert_eq!(end, ipfix_tpl.len());
        let TemplateRecord::Define(d) = rec else {
            panic!("not a definition")
        };
        assert_eq!(d.fields[1].enterprise, REVERSE_PEN);
        assert_eq!(d.fields[1].id, 1);
        type Case<'a> = (Flavor, bool, &'a [u8], Result<TemplateRecord, &'a str>);
        let cases: &[Case] = &[
            (
                Flavor::Ipfix,
                false,
                &[1, 0, 0, 0],
                Ok(TemplateRecord::Withdraw(256)),
            ),
            (
                Flavor::Ipfix,
                false,
                &[0, 2, 0, 0],
                Ok(TemplateRecord::WithdrawAll { options: false }),
            ),
            (
                Flavor::Ipfix,
                false,
                &[1, 0, 0, 3, 0, 8, 0, 4],
                Err("template: truncated"),
            ),
            (
                Flavor::V9,
                false,
                &[0, 9, 0, 1, 0, 8, 0, 4],
                Err("template: reserved id"),
            ),
            (
                Flavor::Ipfix,
                true,
                &[1, 0, 0, 1, 0, 2, 0, 8, 0, 4],
                Err("template: bad scope field count"),
            ),
        ];
        for (flavor, options, bytes, want) in cases {
            let got = parse_record(*flavor, *options, bytes, 0).unwrap();
            match want {
                Ok(w) => assert_eq!(&got.unwrap().0, w),
                Err(reason) => assert_eq!(got.unwrap_err().reason(), *reason),
            }
        }
        assert!(parse_record(Flavor::V9, false, &[0, 0, 0, 0, 0, 0], 0).is_none());
    }

    #[test]
    fn zero_length_templates_are_refused_but_zero_length_fields_are_fine() {
        let zero = def(vec![spec(8, 0), spec(12, 0)]);
        assert_eq!(
            Plan::compile(Flavor::V9, &zero, &CustomFields::default()).unwrap_err(),
            Error::ZeroLength(256)
        );
        let some = def(vec![spec(8, 0), spec(7, 2)]);
        let p = Plan::compile(Flavor::V9, &some, &CustomFields::default()).unwrap();
        assert_eq!(p.fixed_len, Some(2));
    }
}
