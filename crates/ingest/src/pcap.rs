//! Reading packet captures: classic pcap and pcapng, from any [`std::io::Read`].
//!
//! This module owns the capture file formats and nothing above them: it hands out
//! [`Packet`]s (Unix-ns timestamp, link type, original length, captured bytes) and leaves
//! the headers inside to `flowdrill_wire::packet`.
//!
//! - **pcap**: both byte orders, microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`) magic.
//! - **pcapng**: section header blocks with their own byte order (a file may hold several
//!   sections), interface description blocks with `if_tsresol` (powers of 10 and of 2) and
//!   `if_tsoffset`, enhanced, simple and obsolete packet blocks; several interfaces with
//!   different link types; every other block is skipped.
//!
//! ```
//! use flowdrill_ingest::pcap::{PcapReader, looks_like_pcap};
//! // A classic little-endian µs pcap with one 4-byte Ethernet packet.
//! let mut f = Vec::new();
//! f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
//! f.extend_from_slice(&[2, 0, 4, 0]);
//! f.extend_from_slice(&[0; 8]);
//! f.extend_from_slice(&65535u32.to_le_bytes());
//! f.extend_from_slice(&1u32.to_le_bytes());
//! for v in [10u32, 20, 4, 60] { f.extend_from_slice(&v.to_le_bytes()); }
//! f.extend_from_slice(&[1, 2, 3, 4]);
//! assert!(looks_like_pcap(&f));
//! let mut r = PcapReader::new(&f[..]).unwrap();
//! let p = r.next_packet().unwrap().unwrap();
//! assert_eq!((p.ts_ns, p.linktype, p.orig_len, p.data), (10_000_020_000, 1, 60, &[1u8, 2, 3, 4][..]));
//! assert!(r.next_packet().unwrap().is_none());
//! ```
//!
//! Invariants: the reader keeps one buffer and never allocates per packet; a packet's bytes
//! are lent until the next call. No length read from the file is trusted before it is
//! checked against [`MAX_CAPLEN`] / [`MAX_BLOCK_LEN`], so a corrupt file costs an error, not a
//! huge allocation. A file that ends inside a record gives [`Error::Truncated`] with the
//! record's byte offset; a file that ends between records is a clean end.

use std::io::{self, Read};

/// The largest captured length of one packet the reader accepts (256 KiB).
pub const MAX_CAPLEN: u32 = 256 * 1024;
/// The largest pcapng block the reader buffers (packet blocks: data plus options).
/// Larger non-packet blocks are skipped without buffering them whole.
pub const MAX_BLOCK_LEN: u32 = MAX_CAPLEN + 64 * 1024;
/// Largest number of interfaces a pcapng section may describe (bounds the table).
const MAX_INTERFACES: usize = 65_536;
const READ_CHUNK: usize = 256 * 1024;

const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

const BLOCK_IDB: u32 = 1;
const BLOCK_OPB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;

/// Why a capture cannot be read further.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("reading the capture: {0}")]
    Io(#[from] io::Error),
    #[error(
        "not a pcap or pcapng file (first bytes {0:02x?}); give a capture written by tcpdump, tshark or dumpcap"
    )]
    NotACapture([u8; 4]),
    #[error("the file ends inside its header (at byte {offset})")]
    TruncatedHeader { offset: u64 },
    #[error("truncated packet record at byte {offset}")]
    Truncated { offset: u64 },
    #[error(
        "packet record at byte {offset} claims {caplen} captured bytes (more than {MAX_CAPLEN})"
    )]
    CaplenTooLarge { offset: u64, caplen: u32 },
    #[error("pcapng block at byte {offset} has an impossible length {len}")]
    BadBlockLength { offset: u64, len: u32 },
    #[error("pcapng section header at byte {offset} has an unknown byte-order magic {magic:#010x}")]
    BadByteOrder { offset: u64, magic: u32 },
    #[error("pcapng packet block at byte {offset} names interface {id}, which was not described")]
    UnknownInterface { offset: u64, id: u32 },
    #[error("pcapng section at byte {offset} describes more than {MAX_INTERFACES} interfaces")]
    TooManyInterfaces { offset: u64 },
    #[error("pcapng block at byte {offset} is too short for its type ({len} bytes)")]
    BlockTooShort { offset: u64, len: u32 },
}

/// One captured packet, lent by [`PcapReader::next_packet`] until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch (UTC).
    pub ts_ns: u64,
    /// The interface's link type (`LINKTYPE_*`: 1 Ethernet, 101 raw IP, 113 Linux SLL...).
    pub linktype: u32,
    /// Length of the packet on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// True when `first_bytes` begin with a pcap (either byte order, µs or ns) or pcapng magic.
pub fn looks_like_pcap(first_bytes: &[u8]) -> bool {
    let Some(m) = first_bytes.get(..4) else {
        return false;
    };
    let le = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
    let be = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    le == PCAPNG_SHB || [PCAP_US, PCAP_NS].iter().any(|&x| x == le || x == be)
}

/// Which container the reader is walking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap; `nanos` for the nanosecond-magic variant.
    Pcap { nanos: bool },
    /// pcapng.
    PcapNg,
}

/// Timestamp resolution of one pcapng interface: ticks per second as 10^n or 2^n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsRes {
    Pow10(u8),
    Pow2(u8),
}

impl TsRes {
    /// Ticks to Unix ns (saturating; u128 arithmetic so 2^-n resolutions are exact enough).
    fn to_ns(self, ticks: u64, offset_s: i64) -> u64 {
        let ns: u128 = match self {
            TsRes::Pow10(n) if n <= 9 => ticks as u128 * 10u128.pow(9 - n as u32),
            TsRes::Pow10(n) => ticks as u128 / 10u128.pow((n as u32 - 9).min(38)),
            TsRes::Pow2(n) => (ticks as u128 * 1_000_000_000) >> n.min(127),
        };
        let ns = ns as i128 + offset_s as i128 * 1_000_000_000;
        ns.clamp(0, u64::MAX as i128) as u64
    }
}

/// A located record: (ts ns, link type, orig len, data start in the buffer, captured length).
type RawRecord = (u64, u32, u32, usize, usize);

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    res: TsRes,
    offset_s: i64,
}

/// A streaming pcap / pcapng reader. See the module doc.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    src: R,
    /// Invariant: `buf[pos..end]` are bytes read from `src` and not yet consumed; `pos` is at
    /// file offset `consumed`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[pos]`.
    consumed: u64,
    format: Format,
    /// Classic pcap: byte order and the file's link type. pcapng: the current section's order.
    big_endian: bool,
    linktype: u32,
    interfaces: Vec<Interface>,
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header (pcap) or first section header (pcapng).
    pub fn new(src: R) -> Result<Self, Error> {
        let mut r = PcapReader {
            src,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            consumed: 0,
            format: Format::PcapNg,
            big_endian: false,
            linktype: 0,
            interfaces: Vec::new(),
        };
        if !r.fill(4)? {
            return Err(Error::TruncatedHeader {
                offset: r.end as u64,
            });
        }
        let m: [u8; 4] = r.buf[..4].try_into().expect("4 bytes");
        let le = u32::from_le_bytes(m);
        let be = u32::from_be_bytes(m);
        if le == PCAPNG_SHB {
            // The section header is parsed by the block loop; peek it now so a bad file
            // fails in `new`.
            r.read_shb()?;
        } else {
            let (big_endian, nanos) = match (le, be) {
                (PCAP_US, _) => (false, false),
                (PCAP_NS, _) => (false, true),
                (_, PCAP_US) => (true, false),
                (_, PCAP_NS) => (true, true),
                _ => return Err(Error::NotACapture(m)),
            };
            if !r.fill(24)? {
                return Err(Error::TruncatedHeader {
                    offset: r.end as u64,
                });
            }
            r.big_endian = big_endian;
            r.format = Format::Pcap { nanos };
            // The link type's upper bits may carry FCS information; the type is the low 16.
            r.linktype = r.u32_at(20) & 0xffff;
            r.advance(24);
        }
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Link type of a classic pcap, or of the first interface of a pcapng section seen so far.
    pub fn linktype(&self) -> Option<u32> {
        match self.format {
            Format::Pcap { .. } => Some(self.linktype),
            Format::PcapNg => self.interfaces.first().map(|i| i.linktype),
        }
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// The next packet, or `None` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        let (ts_ns, linktype, orig_len, start, len) = match self.format {
            Format::Pcap { nanos } => match self.next_pcap(nanos)? {
                Some(x) => x,
                None => return Ok(None),
            },
            Format::PcapNg => match self.next_pcapng()? {
                Some(x) => x,
                None => return Ok(None),
            },
        };
        Ok(Some(Packet {
            ts_ns,
            linktype,
            orig_len,
            data: &self.buf[start..start + len],
        }))
    }

    /// One classic record: (ts, linktype, orig_len, data start in buf, caplen).
    fn next_pcap(&mut self, nanos: bool) -> Result<Option<RawRecord>, Error> {
        let offset = self.consumed;
        if !self.fill(16)? {
            return if self.end == self.pos {
                Ok(None)
            } else {
                Err(Error::Truncated { offset })
            };
        }
        let sec = self.u32_at(0) as u64;
        let frac = self.u32_at(4) as u64;
        let caplen = self.u32_at(8);
        let orig_len = self.u32_at(12);
        if caplen > MAX_CAPLEN {
            return Err(Error::CaplenTooLarge { offset, caplen });
        }
        if !self.fill(16 + caplen as usize)? {
            return Err(Error::Truncated { offset });
        }
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        let start = self.pos + 16;
        self.advance(16 + caplen as usize);
        Ok(Some((
            ts_ns,
            self.linktype,
            orig_len,
            start,
            caplen as usize,
        )))
    }

    /// Walks pcapng blocks until a packet block.
    fn next_pcapng(&mut self) -> Result<Option<RawRecord>, Error> {
        loop {
            let offset = self.consumed;
            if !self.fill(8)? {
                return if self.end == self.pos {
                    Ok(None)
                } else {
                    Err(Error::Truncated { offset })
                };
            }
            let btype = self.u32_at(0);
            if btype == PCAPNG_SHB {
                self.read_shb()?;
                continue;
            }
            let blen = self.u32_at(4);
            if blen < 12 || !blen.is_multiple_of(4) {
                return Err(Error::BadBlockLength { offset, len: blen });
            }
            let is_packet = matches!(btype, BLOCK_EPB | BLOCK_SPB | BLOCK_OPB | BLOCK_IDB);
            if !is_packet {
                self.skip(blen as u64, offset)?;
                continue;
            }
            if blen > MAX_BLOCK_LEN {
                return Err(Error::BadBlockLength { offset, len: blen });
            }
            if !self.fill(blen as usize)? {
                return Err(Error::Truncated { offset });
            }
            let body = self.pos + 8;
            let body_len = blen as usize - 12;
            match btype {
                BLOCK_IDB => {
                    self.read_idb(body, body_len, offset)?;
                    self.advance(blen as usize);
                }
                BLOCK_EPB | BLOCK_OPB => {
                    if body_len < 20 {
                        return Err(Error::BlockTooShort { offset, len: blen });
                    }
                    let (id, ts_at) = if btype == BLOCK_EPB {
                        (self.u32_at(8), 12)
                    } else {
                        (self.u16_at(8) as u32, 12)
                    };
                    let hi = self.u32_at(ts_at) as u64;
                    let lo = self.u32_at(ts_at + 4) as u64;
                    let caplen = self.u32_at(ts_at + 8);
                    let orig_len = self.u32_at(ts_at + 12);
                    if caplen > MAX_CAPLEN {
                        return Err(Error::CaplenTooLarge { offset, caplen });
                    }
                    if caplen as usize > body_len - 20 {
                        return Err(Error::BadBlockLength { offset, len: blen });
                    }
                    let ifc = *self
                        .interfaces
                        .get(id as usize)
                        .ok_or(Error::UnknownInterface { offset, id })?;
                    let ts_ns = ifc.res.to_ns(hi << 32 | lo, ifc.offset_s);
                    let start = body + 20;
                    self.advance(blen as usize);
                    return Ok(Some((
                        ts_ns,
                        ifc.linktype,
                        orig_len,
                        start,
                        caplen as usize,
                    )));
                }
                _ => {
                    // BLOCK_SPB: interface 0, no timestamp; caplen is bounded by the snap length
                    // and the block.
                    if body_len < 4 {
                        return Err(Error::BlockTooShort { offset, len: blen });
                    }
                    let ifc = *self
                        .interfaces
                        .first()
                        .ok_or(Error::UnknownInterface { offset, id: 0 })?;
                    let orig_len = self.u32_at(8);
                    let mut caplen = (orig_len as usize).min(body_len - 4);
                    if ifc.snaplen != 0 {
                        caplen = caplen.min(ifc.snaplen as usize);
                    }
                    let start = body + 4;
                    self.advance(blen as usize);
                    return Ok(Some((0, ifc.linktype, orig_len, start, caplen)));
                }
            }
        }
    }

    /// Parses a section header at `pos`: sets the byte order, forgets the interfaces.
    fn read_shb(&mut self) -> Result<(), Error> {
        let offset = self.consumed;
        if !self.fill(12)? {
            return Err(Error::TruncatedHeader { offset });
        }
        let bom_bytes: [u8; 4] = self.buf[self.pos + 8..self.pos + 12]
            .try_into()
            .expect("4 bytes");
        let big_endian = match u32::from_le_bytes(bom_bytes) {
            PCAPNG_BOM => false,
            m if m.swap_bytes() == PCAPNG_BOM => true,
            m => return Err(Error::BadByteOrder { offset, magic: m }),
        };
        self.big_endian = big_endian;
        let blen = self.u32_at(4);
        if blen < 28 || !blen.is_multiple_of(4) {
            return Err(Error::BadBlockLength { offset, len: blen });
        }
        self.format = Format::PcapNg;
        self.interfaces.clear();
        // The SHB's options (hardware, OS, application) are of no use here.
        self.skip(blen as u64, offset)
    }

    /// Parses an interface description block whose body is `buf[body..body + len]`.
    fn read_idb(&mut self, body: usize, len: usize, offset: u64) -> Result<(), Error> {
        if len < 8 {
            return Err(Error::BlockTooShort {
                offset,
                len: len as u32 + 12,
            });
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(Error::TooManyInterfaces { offset });
        }
        let rel = body - self.pos;
        let mut ifc = Interface {
            linktype: self.u16_at(rel) as u32,
            snaplen: self.u32_at(rel + 4),
            res: TsRes::Pow10(6),
            offset_s: 0,
        };
        // Options: code u16, length u16, value padded to 4; opt_endofopt (0) ends them. A
        // malformed option list ends the walk (the defaults stand) rather than the file.
        let mut o = rel + 8;
        let stop = rel + len;
        while o + 4 <= stop {
            let code = self.u16_at(o);
            let olen = self.u16_at(o + 2) as usize;
            let v = o + 4;
            if code == 0 || v + olen > stop {
                break;
            }
            match (code, olen) {
                (9, 1) => {
                    let b = self.buf[self.pos + v];
                    ifc.res = if b & 0x80 != 0 {
                        TsRes::Pow2(b & 0x7f)
                    } else {
                        TsRes::Pow10(b)
                    };
                }
                (14, 8) => {
                    let hi = self.u32_at(v) as u64;
                    let lo = self.u32_at(v + 4) as u64;
                    let raw = if self.big_endian {
                        hi << 32 | lo
                    } else {
                        lo << 32 | hi
                    };
                    ifc.offset_s = raw as i64;
                }
                _ => {}
            }
            o = v + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(ifc);
        Ok(())
    }

    /// A u32 at `rel` bytes past `pos`, in the current byte order. Caller ensured it is buffered.
    #[inline]
    fn u32_at(&self, rel: usize) -> u32 {
        let b: [u8; 4] = self.buf[self.pos + rel..self.pos + rel + 4]
            .try_into()
            .expect("4 bytes");
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    #[inline]
    fn u16_at(&self, rel: usize) -> u16 {
        let b = [self.buf[self.pos + rel], self.buf[self.pos + rel + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.consumed += n as u64;
    }

    /// Makes `n` bytes available at `pos`. `Ok(false)` when the file ends first (whatever
    /// could be read stays buffered, so the caller can tell a clean end from a cut record).
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, Error> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.fill_slow(n)
    }

    #[cold]
    fn fill_slow(&mut self, n: usize) -> Result<bool, Error> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < n {
            // Only ever up to MAX_BLOCK_LEN (callers check lengths first).
            self.buf.resize(n.max(READ_CHUNK), 0);
        }
        while self.end < n && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(self.end >= n)
    }

    /// Consumes `n` bytes (a block starting at `offset`) without needing them buffered at once.
    fn skip(&mut self, mut n: u64, offset: u64) -> Result<(), Error> {
        loop {
            let have = (self.end - self.pos) as u64;
            if have >= n {
                self.advance(n as usize);
                return Ok(());
            }
            self.advance(have as usize);
            n -= have;
            if !self.fill(1)? {
                return Err(Error::Truncated { offset });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap with the given magic, byte order and records (ts_sec, frac, data).
    fn classic(magic: u32, be: bool, linktype: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() })
        };
        let mut v = Vec::new();
        w32(&mut v, magic);
        let (maj, min) = if be {
            ([0, 2], [0, 4])
        } else {
            ([2, 0], [4, 0])
        };
        v.extend_from_slice(&maj);
        v.extend_from_slice(&min);
        v.extend_from_slice(&[0; 8]);
        w32(&mut v, 65535);
        w32(&mut v, linktype);
        for (s, f, d) in recs {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32 + 2);
            v.extend_from_slice(d);
        }
        v
    }

    /// pcapng builder: blocks in the given byte order.
    struct Ng {
        v: Vec<u8>,
        be: bool,
    }
    impl Ng {
        fn w32(&mut self, x: u32) {
            let b = if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            };
            self.v.extend_from_slice(&b);
        }
        fn w16(&mut self, x: u16) {
            let b = if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            };
            self.v.extend_from_slice(&b);
        }
        fn block(&mut self, t: u32, body: impl FnOnce(&mut Ng)) {
            let start = self.v.len();
            self.w32(t);
            self.w32(0);
            body(self);
            while !self.v.len().is_multiple_of(4) {
                self.v.push(0);
            }
            let len = (self.v.len() - start + 4) as u32;
            let lb = if self.be {
                len.to_be_bytes()
            } else {
                len.to_le_bytes()
            };
            self.v[start + 4..start + 8].copy_from_slice(&lb);
            self.w32(len);
        }
        fn shb(&mut self, be: bool) {
            self.be = be;
            self.block(PCAPNG_SHB, |n| {
                n.w32(PCAPNG_BOM);
                n.w16(1);
                n.w16(0);
                n.w32(u32::MAX);
                n.w32(u32::MAX);
            });
        }
        fn idb(&mut self, linktype: u16, tsresol: Option<u8>) {
            self.block(BLOCK_IDB, |n| {
                n.w16(linktype);
                n.w16(0);
                n.w32(0);
                if let Some(r) = tsresol {
                    n.w16(9);
                    n.w16(1);
                    n.v.extend_from_slice(&[r, 0, 0, 0]);
                    n.w16(0);
                    n.w16(0);
                }
            });
        }
        fn epb(&mut self, ifc: u32, ts: u64, data: &[u8]) {
            self.block(BLOCK_EPB, |n| {
                n.w32(ifc);
                n.w32((ts >> 32) as u32);
                n.w32(ts as u32);
                n.w32(data.len() as u32);
                n.w32(data.len() as u32);
                n.v.extend_from_slice(data);
            });
        }
    }

    type Owned = (u64, u32, u32, Vec<u8>);

    fn all(bytes: &[u8]) -> Result<Vec<Owned>, Error> {
        let mut r = PcapReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(p) = r.next_packet()? {
            out.push((p.ts_ns, p.linktype, p.orig_len, p.data.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn classic_pcap_in_every_magic_and_byte_order() {
        let cases = [
            (PCAP_US, false, 1_000_000_007_000u64),
            (PCAP_US, true, 1_000_000_007_000),
            (PCAP_NS, false, 1_000_000_000_007),
            (PCAP_NS, true, 1_000_000_000_007),
        ];
        for (magic, be, want_ts) in cases {
            let f = classic(magic, be, 101, &[(1000, 7, b"abc"), (1001, 0, b"")]);
            assert!(looks_like_pcap(&f));
            let got = all(&f).unwrap();
            assert_eq!(got.len(), 2, "magic {magic:x} be {be}");
            assert_eq!(got[0], (want_ts, 101, 5, b"abc".to_vec()));
            assert_eq!(got[1].0, 1_001_000_000_000);
        }
    }

    #[test]
    fn a_cut_record_names_its_offset() {
        let f = classic(PCAP_US, false, 1, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        // Second record starts at 24 + 16 + 4 = 44.
        for cut in [45, 50, f.len() - 1] {
            let mut r = PcapReader::new(&f[..cut]).unwrap();
            assert!(r.next_packet().unwrap().is_some());
            let e = r.next_packet().unwrap_err();
            assert_eq!(
                e.to_string(),
                "truncated packet record at byte 44",
                "cut {cut}"
            );
        }
        // Cut exactly between records: a clean end.
        assert_eq!(all(&f[..44]).unwrap().len(), 1);
        assert!(matches!(
            PcapReader::new(&f[..10]),
            Err(Error::TruncatedHeader { .. })
        ));
    }

    #[test]
    fn absurd_lengths_are_errors_not_allocations() {
        let mut f = classic(PCAP_US, false, 1, &[(1, 0, b"abcd")]);
        f[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(Error::CaplenTooLarge { offset: 24, .. })
        ));
        let mut ng = Ng {
            v: Vec::new(),
            be: false,
        };
        ng.shb(false);
        ng.idb(1, None);
        let at = ng.v.len();
        ng.epb(0, 0, b"xx");
        ng.v[at + 4..at + 8].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        let mut r = PcapReader::new(&ng.v[..]).unwrap();
        assert!(matches!(r.next_packet(), Err(Error::BadBlockLength { .. })));
    }

    #[test]
    fn not_a_capture() {
        assert!(!looks_like_pcap(b"\x00\x05\x00\x01"));
        assert!(!looks_like_pcap(b"ab"));
        assert!(matches!(
            PcapReader::new(&b"hello world, this is text"[..]),
            Err(Error::NotACapture(_))
        ));
    }

    #[test]
    fn pcapng_sections_interfaces_and_resolutions() {
        // Table: (byte order, if_tsresol, raw ticks, expected ns).
        let cases: &[(bool, Option<u8>, u64, u64)] = &[
            (
                false,
                None,
                1_700_000_000_123_456,
                1_700_000_000_123_456_000,
            ),
            (
                true,
                Some(9),
                1_700_000_000_123_456_789,
                1_700_000_000_123_456_789,
            ),
            (false, Some(3), 1_700_000_000_123, 1_700_000_000_123_000_000),
            // 2^-10 s ticks: 1024 ticks = 1 s, 512 = 0.5 s.
            (true, Some(0x80 | 10), 1536, 1_500_000_000),
            (false, Some(0x80 | 30), 1 << 30, 1_000_000_000),
        ];
        for &(be, res, ticks, want) in cases {
            let mut ng = Ng { v: Vec::new(), be };
            ng.shb(be);
            ng.block(0x0000_0bad, |n| n.w32(7)); // unknown block, skipped
            ng.idb(1, None);
            ng.idb(101, res);
            ng.epb(1, ticks, b"\x45hello");
            ng.epb(0, 0, b"e");
            assert!(looks_like_pcap(&ng.v));
            let got = all(&ng.v).unwrap();
            assert_eq!(got[0], (want, 101, 6, b"\x45hello".to_vec()), "{res:?}");
            assert_eq!(got[1].1, 1);
        }
    }

    #[test]
    fn a_new_section_may_change_byte_order_and_interfaces() {
        let mut ng = Ng {
            v: Vec::new(),
            be: false,
        };
        ng.shb(false);
        ng.idb(1, None);
        ng.epb(0, 5, b"a");
        ng.shb(true);
        ng.idb(113, Some(9));
        ng.epb(0, 5, b"bc");
        // A simple packet block (interface 0, no timestamp).
        ng.block(BLOCK_SPB, |n| {
            n.w32(3);
            n.v.extend_from_slice(b"xyz");
        });
        let got = all(&ng.v).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (5_000, 1, 1, b"a".to_vec()));
        assert_eq!(got[1], (5, 113, 2, b"bc".to_vec()));
        assert_eq!(got[2], (0, 113, 3, b"xyz".to_vec()));
    }

    #[test]
    fn obsolete_packet_blocks_and_tsoffset() {
        for be in [false, true] {
            let mut ng = Ng { v: Vec::new(), be };
            ng.shb(be);
            // IDB with if_tsoffset = 1000 s and the default µs resolution.
            ng.block(BLOCK_IDB, |n| {
                n.w16(1);
                n.w16(0);
                n.w32(96);
                n.w16(14);
                n.w16(8);
                let off = 1000u64;
                let (a, b) = if n.be {
                    ((off >> 32) as u32, off as u32)
                } else {
                    (off as u32, (off >> 32) as u32)
                };
                n.w32(a);
                n.w32(b);
                n.w16(0);
                n.w16(0);
            });
            // OPB: interface id u16, drops u16, ts high, ts low, caplen, len, data.
            ng.block(BLOCK_OPB, |n| {
                n.w16(0);
                n.w16(0);
                n.w32(0);
                n.w32(2_500_000);
                n.w32(3);
                n.w32(64);
                n.v.extend_from_slice(b"opb");
            });
            let got = all(&ng.v).unwrap();
            assert_eq!(
                got,
                vec![(1_002_500_000_000, 1, 64, b"opb".to_vec())],
                "be {be}"
            );
        }
    }

    #[test]
    fn pcapng_errors() {
        let mut ng = Ng {
            v: Vec::new(),
            be: false,
        };
        ng.shb(false);
        ng.epb(3, 0, b"a");
        let mut r = PcapReader::new(&ng.v[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(Error::UnknownInterface { id: 3, .. })
        ));
        // Cut in the middle of the EPB.
        let mut ng = Ng {
            v: Vec::new(),
            be: false,
        };
        ng.shb(false);
        ng.idb(1, None);
        let at = ng.v.len();
        ng.epb(0, 0, b"abcdefgh");
        let mut r = PcapReader::new(&ng.v[..ng.v.len() - 3]).unwrap();
        let e = r.next_packet().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("truncated packet record at byte {at}")
        );
        let mut bad = ng.v.clone();
        bad[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(
            PcapReader::new(&bad[..]),
            Err(Error::BadByteOrder { .. })
        ));
    }

    #[test]
    fn small_reads_give_the_same_packets() {
        /// A reader that returns at most 3 bytes per call.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = b.len().min(3).min(self.0.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let recs: Vec<(u32, u32, Vec<u8>)> = (0..50u32)
            .map(|i| (i, i, vec![i as u8; i as usize]))
            .collect();
        let borrowed: Vec<(u32, u32, &[u8])> =
            recs.iter().map(|(a, b, c)| (*a, *b, &c[..])).collect();
        let f = classic(PCAP_NS, true, 1, &borrowed);
        let want = all(&f).unwrap();
        let mut r = PcapReader::new(Dribble(&f)).unwrap();
        let mut got = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            got.push((p.ts_ns, p.linktype, p.orig_len, p.data.to_vec()));
        }
        assert_eq!(got, want);
        assert_eq!(got.len(), 50);
        assert_eq!(r.offset(), f.len() as u64);
    }
}
