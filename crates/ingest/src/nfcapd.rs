//! nfdump's nfcapd files (the nfdump 1.7 file layout, `LAYOUT_VERSION_2`, and the 1.6 layout,
//! `LAYOUT_VERSION_1`), read into [`FlowRecord`]s.
//!
//! This module owns the binary file format nfcapd, nfpcapd, sfcapd and `nfdump -w` write:
//! the file header, the data blocks and their compression, the V3 flow records with their
//! extension elements, the exporter and sampler records, and the appendix (ident and the
//! stat record with the file's totals). It reads from any [`Read`]; [`read_file`] adds the
//! file handling (and transparently unwraps a gzip'd file).
//!
//! # Layout (all integers little-endian, as nfdump writes them on x86 and ARM)
//!
//! ```text
//!  file:   +------------+---------+---------+-----+---------+-------------------+
//!          | fileHeader | block 0 | block 1 | ... | block n | appendix block(s) |
//!          +------------+---------+---------+-----+---------+-------------------+
//!           40 bytes      NumBlocks data blocks      at offAppendix, appendixBlocks of them
//!
//!  fileHeaderV2 (40 bytes)
//!    0 u16 magic 0xA50C   2 u16 layout (2)   4 u32 nfdump version   8 i64 created (unix s)
//!   16 u8 compression (0 none, 1 LZO, 2 BZ2, 3 LZ4, 4 ZSTD)   17 u8 encryption (0)
//!   18 u16 appendixBlocks   20 u32 creator   24 u64 offAppendix   32 u32 BlockSize   36 u32 NumBlocks
//!
//!  block:  +------------------------------------------+---------------------------------+
//!          | NumRecords u32 | size u32 | type u16 | flags u16 | payload: `size` bytes    |
//!          +------------------------------------------+---------------------------------+
//!           type 3 = records, each with its own header; flags bit 0 = this block is stored
//!           uncompressed even in a compressed file. The payload is compressed whole (an LZ4
//!           block, a ZSTD frame, an LZO1X stream) and holds NumRecords records:
//!
//!  record:  | type u16 | size u16 | ...size-4 bytes... |      (size includes this header)
//!    11  V3 flow record:
//!        | type | size | numElements u16 | engineType u8 | engineID u8 | exporterID u16 | flags u8 | nfversion u8 |
//!        then numElements elements, each | elemType u16 | length u16 | data |  (length includes its header)
//!         1 EXgenericFlow  msecFirst, msecLast, msecReceived, inPackets, inBytes (u64 each),
//!                          srcPort u16, dstPort u16, proto, tcpFlags, fwdStatus, srcTos (u8)
//!         2 EXipv4Flow     src u32, dst u32          3 EXipv6Flow   src, dst (2 x u64 each)
//!         4 EXflowMisc     input u32, output u32, srcMask, dstMask, dir, dstTos, ...
//!         5 EXcntFlow      flows, outPackets, outBytes (u64)
//!         7 EXasRouting    srcAS u32, dstAS u32      10/11 EXipNextHopV4/V6    12/13 EXipReceivedV4/V6
//!        18 EXsamplerInfo  selectorID u64, exporter sysid u16          others: skipped by length
//!     7  exporter info:  version u32, ip (2 x u64), sa_family u16, sysid u16, id u32
//!    15  sampler:        exporter sysid u16, algorithm u16, id i64, packetInterval u32, spaceInterval u32
//!    0x8001 ident:       NUL-terminated string          (appendix)
//!    0x8002 stat:        18 x u64: flows, bytes, packets, flows tcp/udp/icmp/other, bytes ...,
//!                        packets ..., first ms, last ms, sequence failures      (appendix)
//! ```
//!
//! An IPv6 address is two u64 in host order, the first holding the high 64 bits; an IPv4
//! address in a 16-byte exporter slot is the u32 at byte 8.
//!
//! # Mapping to [`FlowRecord`]
//!
//! Times are nfdump's msecFirst/msecLast. Counters are `inPackets`/`inBytes` as stored:
//! nfcapd multiplies them by the exporter's sampling rate when it collects a sampled flow and
//! marks the record `V3_FLAG_SAMPLED`, so they are already renormalised and are **not**
//! multiplied again here. `sampling_rate` is the rate from the file's sampler record when the
//! flow names one (EXsamplerInfo), else 1. `exporter` is the EXipReceived address, else the
//! address of the exporter info record the flow's exporterID names, else `0.0.0.0` (what nfdump
//! prints). `domain` is `engineType << 8 | engineID` from the record header. Aggregated records
//! (EXcntFlow with flows > 1, from `nfdump -a -w`) stay one record each and are counted in
//! [`ReadStats::aggregated`]; their `outPackets`/`outBytes` have no field in the model.
//!
//! # The nfdump 1.6 layout (`LAYOUT_VERSION_1`)
//!
//! ```text
//!  file:   | file_header (140) | stat record (136) | block 0 | block 1 | ... |
//!  file_header: 0 u16 magic   2 u16 layout (1)   4 u32 flags (0x1 LZO, 0x8 BZ2, 0x10 LZ4,
//!               0x20 ZSTD)   8 u32 NumBlocks   12 char ident[128]
//!  stat record: 15 x u64 (flows, bytes, packets, then per protocol as above),
//!               u32 first s, u32 last s, u16 first ms, u16 last ms, u32 sequence failures
//!  blocks:      the same 12-byte header, type 2; records:
//!    2  extension map:  | map id u16 | extensions size u16 | ext id u16 ... 0 |  (optional
//!                       extensions of the records that name this map, in order)
//!   10  common record:  flags u16, map id u16, msec first u16, msec last u16, first u32,
//!                       last u32, fwd, tcp flags, proto, tos, src port u16, dst port u16,
//!                       exporter sysid u16, u16; then the addresses (v4: 2 x u32, v6 with
//!                       flag 0x1: 2 x 16), packets (u32, u64 with flag 0x2), bytes (u32, u64
//!                       with flag 0x4), then each extension of the map
//!    1  common record of early 1.6 files: skipped (and counted), as nfdump 1.7 skips it
//!    7  exporter info, as in layout 2
//! ```
//!
//! The extensions mapped: 4/5 interfaces, 6/7 AS, 8 masks, 9/10 next hop, 18/19 aggregated
//! flows, 23/24 router (exporter) address, 25 engine type/id. Every other extension of nfdump
//! 1.6's table (ids 4..48) is skipped by its size; a map naming an extension outside that table
//! makes its records fail with [`Error::UnknownExtension`].
//!
//! Not supported: BZ2 and encrypted files; each gives an error that says how to convert the
//! file with nfdump.

use flowdrill_model::{Addr, FlowRecord};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

mod lzo;

/// The magic number at the start of every nfdump file, 0xA50C little-endian.
pub const MAGIC: u16 = 0xA50C;
/// nfdump 1.6's layout.
pub const LAYOUT_VERSION_1: u16 = 1;
/// nfdump 1.7's layout, the one this module reads.
pub const LAYOUT_VERSION_2: u16 = 2;

const FILE_HEADER_LEN: usize = 40;
const BLOCK_HEADER_LEN: usize = 12;
/// Largest block payload (compressed or not) accepted: nfdump writes at most a few MiB per
/// block; anything larger is a corrupt length and must not drive an allocation.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;
/// First guess for a decompressed block; grown (doubling, up to [`MAX_BLOCK_BYTES`]) when a
/// block does not fit.
const INITIAL_BLOCK_BUF: usize = 2 << 20;

const DATA_BLOCK_TYPE_2: u16 = 2;
const DATA_BLOCK_TYPE_3: u16 = 3;

// Layout 1 (nfdump 1.6): a 140-byte header, then the 136-byte stat record, then blocks.
const V1_HEADER_LEN: usize = 140;
const V1_STAT_LEN: usize = 136;
const V1_FLAG_LZO: u32 = 0x1;
const V1_FLAG_BZ2: u32 = 0x8;
const V1_FLAG_LZ4: u32 = 0x10;
/// Not seen in a real file (nfdump 1.7.1, our oracle, reads only LZO, BZ2 and LZ4 in layout 1).
const V1_FLAG_ZSTD: u32 = 0x20;
/// Early 1.6 common record (u8 flags and exporter): nfdump 1.7 ignores it, and so do we.
const REC_V1_COMMON_V0: u16 = 1;
const REC_V1_EXTENSION_MAP: u16 = 2;
const REC_V1_COMMON: u16 = 10;
const V1_FLAG_IPV6_ADDR: u16 = 1;
const V1_FLAG_PKG_64: u16 = 2;
const V1_FLAG_BYTES_64: u16 = 4;
const V1_FLAG_SAMPLED: u16 = 128;
const FLAG_BLOCK_UNCOMPRESSED: u16 = 0x1;

const REC_EXPORTER_INFO: u16 = 7;
/// Per-exporter packet/flow/sequence counters: nothing the model keeps (skipped, counted).
const REC_EXPORTER_STAT: u16 = 8;
const REC_V3: u16 = 11;
const REC_SAMPLER: u16 = 15;
const REC_IDENT: u16 = 0x8001;
const REC_STAT: u16 = 0x8002;

const V3_HEADER_LEN: usize = 12;
const V3_FLAG_SAMPLED: u8 = 2;

const EX_GENERIC_FLOW: u16 = 1;
const EX_IPV4_FLOW: u16 = 2;
const EX_IPV6_FLOW: u16 = 3;
const EX_FLOW_MISC: u16 = 4;
const EX_CNT_FLOW: u16 = 5;
const EX_AS_ROUTING: u16 = 7;
const EX_IP_NEXT_HOP_V4: u16 = 10;
const EX_IP_NEXT_HOP_V6: u16 = 11;
const EX_IP_RECEIVED_V4: u16 = 12;
const EX_IP_RECEIVED_V6: u16 = 13;
const EX_SAMPLER_INFO: u16 = 18;

/// Why an nfcapd file could not be read. Offsets are byte offsets in the file; positions
/// inside a block are byte offsets in its (decompressed) payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying reader failed.
    #[error("reading nfcapd file: {0}")]
    Io(#[from] io::Error),
    /// [`read_file`] could not read the file (or unwrap its gzip layer).
    #[error("cannot read {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: io::Error,
    },
    /// The file is shorter than its 40-byte header.
    #[error("not an nfcapd file: only {len} bytes, the file header alone has 40")]
    TruncatedHeader { len: usize },
    /// The magic number is wrong.
    #[error("not an nfcapd file: magic 0x{magic:04x} at offset 0 (expected 0xa50c)")]
    BadMagic { magic: u16 },
    /// A layout this reader does not know (it reads 1 = nfdump 1.6 and 2 = nfdump 1.7).
    #[error(
        "nfcapd layout version {version} is not supported (this reader reads layouts 1 and 2, \
         nfdump 1.6 and 1.7); convert with `nfdump -r FILE -w NEWFILE` using nfdump 1.7"
    )]
    UnsupportedLayout { version: u16 },
    /// A compression this reader does not implement.
    #[error(
        "unsupported compression: {name}; convert with `nfdump -r FILE -z=lz4 -w NEWFILE` \
         (nfdump 1.7.1: `nfdump -r FILE -y -w NEWFILE`)"
    )]
    UnsupportedCompression { name: &'static str },
    /// The file is encrypted.
    #[error("encrypted nfcapd files (encryption {code}) are not supported")]
    Encrypted { code: u8 },
    /// The file ends inside a block header or payload.
    #[error(
        "truncated nfcapd file: block {block} at offset {offset} needs {needed} bytes, only {got} left"
    )]
    TruncatedBlock {
        block: u64,
        offset: u64,
        needed: u64,
        got: u64,
    },
    /// The file ends before all the data blocks its header announces.
    #[error(
        "truncated nfcapd file: the header announces {expected} data blocks, the file ends after {read}"
    )]
    MissingBlocks { read: u64, expected: u64 },
    /// A layout-1 record uses an extension this reader does not know the size of.
    #[error(
        "nfcapd file: block {block} at offset {offset}, record {record}: extension map {map} \
         uses extension {extension}, unknown to this reader; convert the file with nfdump 1.7 \
         (`nfdump -r FILE -w NEWFILE`)"
    )]
    UnknownExtension {
        block: u64,
        offset: u64,
        record: u32,
        map: u16,
        extension: u16,
    },
    /// The file ends before the appendix its header announces.
    #[error(
        "truncated nfcapd file: the header announces {expected} appendix blocks at offset {offset}, the file ends after {read}"
    )]
    MissingAppendix {
        read: u64,
        expected: u64,
        offset: u64,
    },
    /// A block header gives an impossible length.
    #[error(
        "corrupt nfcapd file: block {block} at offset {offset} claims {size} bytes (limit {MAX_BLOCK_BYTES})"
    )]
    BlockTooLarge { block: u64, offset: u64, size: u64 },
    /// A block's payload does not decompress.
    #[error(
        "corrupt nfcapd file: block {block} at offset {offset} does not decompress ({codec}): {message}"
    )]
    Decompress {
        block: u64,
        offset: u64,
        codec: &'static str,
        message: String,
    },
    /// A record header inside a block is impossible.
    #[error(
        "corrupt nfcapd file: block {block} at offset {offset}, record {record} at byte {pos} of the block: {reason}"
    )]
    CorruptRecord {
        block: u64,
        offset: u64,
        record: u32,
        pos: usize,
        reason: &'static str,
    },
}

/// The compression of a file's data blocks (header byte 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Lzo,
    Bz2,
    Lz4,
    Zstd,
    /// A code nfdump does not define.
    Unknown(u8),
}

impl Compression {
    pub fn from_code(c: u8) -> Compression {
        match c {
            0 => Compression::None,
            1 => Compression::Lzo,
            2 => Compression::Bz2,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            c => Compression::Unknown(c),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lzo => "LZO",
            Compression::Bz2 => "BZ2",
            Compression::Lz4 => "LZ4",
            Compression::Zstd => "ZSTD",
            Compression::Unknown(_) => "unknown",
        }
    }
}

/// The totals nfcapd writes in the appendix's stat record (what `nfdump -I` prints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    /// Flows per protocol class: TCP, UDP, ICMP (v4 and v6), other.
    pub flows_tcp: u64,
    pub flows_udp: u64,
    pub flows_icmp: u64,
    pub flows_other: u64,
    pub bytes_tcp: u64,
    pub bytes_udp: u64,
    pub bytes_icmp: u64,
    pub bytes_other: u64,
    pub packets_tcp: u64,
    pub packets_udp: u64,
    pub packets_icmp: u64,
    pub packets_other: u64,
    /// First flow start and last flow end, Unix ms.
    pub first_ms: u64,
    pub last_ms: u64,
    pub sequence_failures: u64,
}

/// What the file says about itself: the header, and, once the appendix has been read, the
/// ident and the stat record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfcapdHeader {
    /// Layout version (2).
    pub layout: u16,
    /// Version of the nfdump that wrote the file (`0x01070100` = 1.7.1; 0 in layout 1, which
    /// does not record it).
    pub nfdump_version: u32,
    /// Creation time, Unix seconds (0 in layout 1).
    pub created: i64,
    pub compression: Compression,
    /// Program that wrote the file (nfdump's CREATOR_*: 1 nfcapd, 2 nfpcapd, 3 sfcapd, 4 nfdump...;
    /// 0 = unknown, as nfdump 1.7.1 and layout 1 write).
    pub creator: u32,
    /// Data blocks the header announces (0 in a file still being written).
    pub num_blocks: u32,
    /// Offset of the appendix and its block count.
    pub appendix_offset: u64,
    pub appendix_blocks: u16,
    /// The ident string from the appendix (`none` when nfcapd was given none).
    pub ident: Option<String>,
    /// The stat record from the appendix: `None` until the appendix is read, or when the file
    /// has none (a file nfcapd did not close).
    pub stats: Option<FileStats>,
}

/// What the reader did with the records it met.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Blocks read (data and appendix).
    pub blocks: u64,
    /// Records of every type met.
    pub records: u64,
    /// Flow records returned.
    pub flows: u64,
    /// Flows with V3_FLAG_SAMPLED (counts already renormalised by nfcapd).
    pub sampled: u64,
    /// Flows aggregated from several (EXcntFlow.flows > 1).
    pub aggregated: u64,
    /// Flows without an EXipv4Flow/EXipv6Flow element (addresses left 0.0.0.0).
    pub without_addresses: u64,
    /// V3 records without an EXgenericFlow element (no times, no counters) skipped, as nfdump
    /// skips them in its statistics and output.
    pub without_counters: u64,
    /// Exporter info and sampler records read.
    pub exporters: u64,
    pub samplers: u64,
    /// Records skipped: types with no flow content (exporter stats, nbar, ifname, vrf names,
    /// legacy 1.6 records) or unknown types.
    pub skipped_records: u64,
    /// Blocks skipped: types that hold no flow records (layout 2: type 4 array blocks of
    /// lookup tables; layout 1: anything but type 2).
    pub skipped_blocks: u64,
    /// Extension elements this reader does not map (skipped by their length).
    pub skipped_elements: u64,
    /// Known elements shorter than their structure (skipped, the flow kept).
    pub short_elements: u64,
}

/// An exporter the file describes (exporter info record): nfcapd's internal `sysid`, which
/// flow records name, and what the exporter told about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exporter {
    pub sysid: u16,
    pub addr: Addr,
    /// NetFlow version it exported (5, 9, 10; 9999 for sFlow).
    pub version: u32,
    /// Engine/source id (v5), source id (v9) or observation domain (IPFIX).
    pub id: u32,
}

/// Reads an nfcapd file block by block.
///
/// ```no_run
/// # fn main() -> Result<(), flowdrill_ingest::nfcapd::Error> {
/// let f = std::fs::File::open("nfcapd.202401010000")?;
/// let mut rd = flowdrill_ingest::nfcapd::NfcapdReader::new(std::io::BufReader::new(f))?;
/// while let Some(r) = rd.next_record()? {
///     println!("{} -> {} {} bytes", r.src_addr, r.dst_addr, r.bytes);
/// }
/// println!("{:?}", rd.header().stats);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NfcapdReader<R> {
    input: R,
    header: NfcapdHeader,
    /// File offset of the next block header.
    pos: u64,
    /// Blocks read so far (index of the next block).
    block: u64,
    data_blocks: u64,
    appendix_blocks: u64,
    raw: Vec<u8>,
    unpacked: Vec<u8>,
    exporters: HashMap<u16, Exporter>,
    /// (exporter sysid, sampler id) → sampling rate.
    samplers: HashMap<(u16, i64), u32>,
    stats: ReadStats,
    /// Layout 1: extension map id → the optional extensions of its records, with their
    /// sizes; `Err(id)` when the map names an extension of unknown size.
    maps: HashMap<u16, Result<Vec<(u16, usize)>, u16>>,
    pending: Vec<FlowRecord>,
    next_pending: usize,
    done: bool,
}

impl<R: Read> NfcapdReader<R> {
    /// Reads and checks the file header (and, for layout 1, the stat record after it). Fails
    /// on a file that is not an nfcapd file, on an unknown layout, on encryption and on
    /// compressions this reader does not implement (BZ2).
    pub fn new(mut input: R) -> Result<Self, Error> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut input, &mut h)?;
        if got >= 2 && le16(&h, 0) != MAGIC {
            return Err(Error::BadMagic { magic: le16(&h, 0) });
        }
        if got >= 4 && !matches!(le16(&h, 2), LAYOUT_VERSION_1 | LAYOUT_VERSION_2) {
            return Err(Error::UnsupportedLayout {
                version: le16(&h, 2),
            });
        }
        if got < FILE_HEADER_LEN {
            return Err(Error::TruncatedHeader { len: got });
        }
        if le16(&h, 2) == LAYOUT_VERSION_1 {
            return Self::new_v1(input, h);
        }
        let header = NfcapdHeader {
            layout: le16(&h, 2),
            nfdump_version: le32(&h, 4),
            created: le64(&h, 8) as i64,
            compression: Compression::from_code(h[16]),
            creator: le32(&h, 20),
            num_blocks: le32(&h, 36),
            appendix_offset: le64(&h, 24),
            appendix_blocks: le16(&h, 18),
            ident: None,
            stats: None,
        };
        if h[17] != 0 {
            return Err(Error::Encrypted { code: h[17] });
        }
        match header.compression {
            Compression::None | Compression::Lzo | Compression::Lz4 | Compression::Zstd => {}
            c => return Err(Error::UnsupportedCompression { name: c.name() }),
        }
        Ok(Self::with_header(input, header, FILE_HEADER_LEN as u64))
    }

    fn with_header(input: R, header: NfcapdHeader, pos: u64) -> Self {
        NfcapdReader {
            input,
            header,
            pos,
            block: 0,
            data_blocks: 0,
            appendix_blocks: 0,
            raw: Vec::new(),
            unpacked: Vec::new(),
            exporters: HashMap::new(),
            samplers: HashMap::new(),
            stats: ReadStats::default(),
            pending: Vec::new(),
            next_pending: 0,
            done: false,
            maps: HashMap::new(),
        }
    }

    /// The rest of a layout-1 header (`first40` holds its first 40 bytes) and the stat record
    /// that follows it.
    fn new_v1(mut input: R, first40: [u8; FILE_HEADER_LEN]) -> Result<Self, Error> {
        let mut h = [0u8; V1_HEADER_LEN + V1_STAT_LEN];
        h[..FILE_HEADER_LEN].copy_from_slice(&first40);
        let got = FILE_HEADER_LEN + read_full(&mut input, &mut h[FILE_HEADER_LEN..])?;
        if got < h.len() {
            return Err(Error::TruncatedHeader { len: got });
        }
        let flags = le32(&h, 4);
        let compression = if flags & V1_FLAG_LZO != 0 {
            Compression::Lzo
        } else if flags & V1_FLAG_BZ2 != 0 {
            Compression::Bz2
        } else if flags & V1_FLAG_LZ4 != 0 {
            Compression::Lz4
        } else if flags & V1_FLAG_ZSTD != 0 {
            Compression::Zstd
        } else {
            Compression::None
        };
        if compression == Compression::Bz2 {
            return Err(Error::UnsupportedCompression { name: "BZ2" });
        }
        let ident = &h[12..V1_HEADER_LEN];
        let end = ident.iter().position(|&b| b == 0).unwrap_or(ident.len());
        let st = &h[V1_HEADER_LEN..];
        let v = |k: usize| le64(st, 8 * k);
        let stats = FileStats {
            flows: v(0),
            bytes: v(1),
            packets: v(2),
            flows_tcp: v(3),
            flows_udp: v(4),
            flows_icmp: v(5),
            flows_other: v(6),
            bytes_tcp: v(7),
            bytes_udp: v(8),
            bytes_icmp: v(9),
            bytes_other: v(10),
            packets_tcp: v(11),
            packets_udp: v(12),
            packets_icmp: v(13),
            packets_other: v(14),
            first_ms: le32(st, 120) as u64 * 1000 + le16(st, 128) as u64,
            last_ms: le32(st, 124) as u64 * 1000 + le16(st, 130) as u64,
            sequence_failures: le32(st, 132) as u64,
        };
        let header = NfcapdHeader {
            layout: LAYOUT_VERSION_1,
            nfdump_version: 0,
            created: 0,
            compression,
            creator: 0,
            num_blocks: le32(&h, 8),
            appendix_offset: 0,
            appendix_blocks: 0,
            ident: Some(String::from_utf8_lossy(&ident[..end]).into_owned()),
            stats: Some(stats),
        };
        Ok(Self::with_header(input, header, h.len() as u64))
    }

    /// The file header. Layout 2: `ident` and `stats` are filled once the appendix has been
    /// read (at the end of the file for a stream; [`read_file`] returns the header after
    /// reading all). Layout 1: both are known from the start.
    pub fn header(&self) -> &NfcapdHeader {
        &self.header
    }

    /// Counts of what was read and skipped so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// The exporters met so far (nfcapd writes their records before their flows), by sysid.
    pub fn exporters(&self) -> Vec<Exporter> {
        let mut v: Vec<Exporter> = self.exporters.values().copied().collect();
        v.sort_by_key(|e| e.sysid);
        v
    }

    /// The sampling rate of sampler `id` of exporter `sysid`, when the file has described it.
    pub fn sampling_rate(&self, sysid: u16, id: i64) -> Option<u32> {
        self.samplers.get(&(sysid, id)).copied()
    }

    /// The next flow record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<FlowRecord>, Error> {
        loop {
            if self.next_pending < self.pending.len() {
                let r = std::mem::take(&mut self.pending[self.next_pending]);
                self.next_pending += 1;
                return Ok(Some(r));
            }
            self.pending.clear();
            self.next_pending = 0;
            let mut buf = std::mem::take(&mut self.pending);
            let more = self.read_block(&mut buf);
            self.pending = buf;
            if !more? && self.pending.is_empty() {
                return Ok(None);
            }
        }
    }

    /// Appends the flows of the next block to `out`. Returns `false` when the file has no
    /// more blocks (nothing was appended then). A block may hold no flows (the appendix).
    pub fn read_block(&mut self, out: &mut Vec<FlowRecord>) -> Result<bool, Error> {
        if self.done {
            return Ok(false);
        }
        let block = self.block;
        let offset = self.pos;
        let mut bh = [0u8; BLOCK_HEADER_LEN];
        let got = read_full(&mut self.input, &mut bh)?;
        if got == 0 {
            self.done = true;
            if self.data_blocks < self.header.num_blocks as u64 {
                return Err(Error::MissingBlocks {
                    read: self.data_blocks,
                    expected: self.header.num_blocks as u64,
                });
            }
            if self.header.appendix_offset != 0
                && self.appendix_blocks < self.header.appendix_blocks as u64
            {
                return Err(Error::MissingAppendix {
                    read: self.appendix_blocks,
                    expected: self.header.appendix_blocks as u64,
                    offset: self.header.appendix_offset,
                });
            }
            return Ok(false);
        }
        if got < BLOCK_HEADER_LEN {
            self.done = true;
            return Err(Error::TruncatedBlock {
                block,
                offset,
                needed: BLOCK_HEADER_LEN as u64,
                got: got as u64,
            });
        }
        let num_records = le32(&bh, 0);
        let size = le32(&bh, 4) as u64;
        let btype = le16(&bh, 8);
        let flags = le16(&bh, 10);
        if size > MAX_BLOCK_BYTES as u64 {
            self.done = true;
            return Err(Error::BlockTooLarge {
                block,
                offset,
                size,
            });
        }
        // `take` + `read_to_end` grows the buffer only as bytes arrive: a lying size in a
        // truncated file cannot allocate more than the file holds (and never > MAX_BLOCK_BYTES).
        self.raw.clear();
        let got = (&mut self.input).take(size).read_to_end(&mut self.raw)? as u64;
        if got < size {
            self.done = true;
            return Err(Error::TruncatedBlock {
                block,
                offset,
                needed: BLOCK_HEADER_LEN as u64 + size,
                got: BLOCK_HEADER_LEN as u64 + got,
            });
        }
        self.block += 1;
        self.pos += BLOCK_HEADER_LEN as u64 + size;
        self.stats.blocks += 1;
        let in_appendix = self.header.appendix_offset != 0 && offset >= self.header.appendix_offset;
        if in_appendix {
            self.appendix_blocks += 1;
        } else {
            self.data_blocks += 1;
        }
        // Layout 2 keeps records in type-3 blocks, layout 1 in type-2 blocks (its type 3 is a
        // histogram block with 8-byte record headers: skipped).
        let record_block = if self.header.layout == LAYOUT_VERSION_1 {
            DATA_BLOCK_TYPE_2
        } else {
            DATA_BLOCK_TYPE_3
        };
        if btype != record_block {
            self.stats.skipped_blocks += 1;
            return Ok(true);
        }
        // Flags bit 0: this block is stored uncompressed (layout 1 writes 1 for uncompressed,
        // 0 or 2 for "as the file says").
        let compressed =
            flags & FLAG_BLOCK_UNCOMPRESSED == 0 && self.header.compression != Compression::None;
        if compressed {
            self.decompress(block, offset)?;
        }
        let payload = if compressed {
            std::mem::take(&mut self.unpacked)
        } else {
            std::mem::take(&mut self.raw)
        };
        let res = self.parse_records(&payload, num_records, block, offset, out);
        if compressed {
            self.unpacked = payload;
        } else {
            self.raw = payload;
        }
        if res.is_err() {
            self.done = true;
        }
        res.map(|()| true)
    }

    /// Decompresses `self.raw` into `self.unpacked`.
    fn decompress(&mut self, block: u64, offset: u64) -> Result<(), Error> {
        let err = |codec: &'static str, message: String| Error::Decompress {
            block,
            offset,
            codec,
            message,
        };
        match self.header.compression {
            Compression::Lz4 => {
                let mut cap = self.unpacked.len().max(INITIAL_BLOCK_BUF);
                loop {
                    self.unpacked.resize(cap, 0);
                    match lz4_flex::block::decompress_into(&self.raw, &mut self.unpacked) {
                        Ok(n) => {
                            self.unpacked.truncate(n);
                            return Ok(());
                        }
                        Err(lz4_flex::block::DecompressError::OutputTooSmall { .. })
                            if cap < MAX_BLOCK_BYTES =>
                        {
                            cap = (cap * 2).min(MAX_BLOCK_BYTES);
                        }
                        Err(e) => return Err(err("LZ4", e.to_string())),
                    }
                }
            }
            Compression::Zstd => {
                // A ZSTD frame states its content size; refuse one beyond the block limit
                // before allocating for it.
                let n = match zstd::zstd_safe::get_frame_content_size(&self.raw) {
                    Ok(Some(n)) if n <= MAX_BLOCK_BYTES as u64 => n as usize,
                    Ok(Some(n)) => {
                        return Err(err("ZSTD", format!("frame claims {n} bytes")));
                    }
                    _ => MAX_BLOCK_BYTES,
                };
                self.unpacked = zstd::bulk::decompress(&self.raw, n.max(1))
                    .map_err(|e| err("ZSTD", e.to_string()))?;
                Ok(())
            }
            Compression::Lzo => lzo::decompress(&self.raw, &mut self.unpacked, MAX_BLOCK_BYTES)
                .map_err(|e| err("LZO", e.to_string())),
            // `new` refuses every other compression.
            c => Err(Error::UnsupportedCompression { name: c.name() }),
        }
    }

    fn parse_records(
        &mut self,
        p: &[u8],
        num_records: u32,
        block: u64,
        offset: u64,
        out: &mut Vec<FlowRecord>,
    ) -> Result<(), Error> {
        let corrupt = |record: u32, pos: usize, reason: &'static str| Error::CorruptRecord {
            block,
            offset,
            record,
            pos,
            reason,
        };
        let mut at = 0usize;
        out.reserve((num_records as usize).min(p.len() / 64));
        for i in 0..num_records {
            if p.len() - at < 4 {
                return Err(corrupt(i, at, "the block ends before its records do"));
            }
            let rtype = le16(p, at);
            let rsize = le16(p, at + 2) as usize;
            if rsize < 4 {
                return Err(corrupt(i, at, "record size below its 4-byte header"));
            }
            if rsize > p.len() - at {
                return Err(corrupt(i, at, "record runs past the end of its block"));
            }
            let rec = &p[at..at + rsize];
            self.stats.records += 1;
            match rtype {
                REC_V1_COMMON => {
                    let r = self.v1_record(rec).map_err(|e| match e {
                        V1Problem::Corrupt(reason) => corrupt(i, at, reason),
                        V1Problem::UnknownExtension { map, extension } => Error::UnknownExtension {
                            block,
                            offset,
                            record: i,
                            map,
                            extension,
                        },
                    })?;
                    out.push(r);
                }
                REC_V1_EXTENSION_MAP => {
                    if rsize < 8 {
                        return Err(corrupt(i, at, "extension map shorter than 8 bytes"));
                    }
                    let id = le16(rec, 4);
                    let mut exts = Ok(Vec::new());
                    for k in (8..rsize - 1).step_by(2) {
                        let e = le16(rec, k);
                        if e == 0 {
                            break;
                        }
                        match (&mut exts, v1_extension_size(e)) {
                            (Ok(v), Some(n)) => v.push((e, n)),
                            (Ok(_), None) => exts = Err(e),
                            (Err(_), _) => {}
                        }
                    }
                    self.maps.insert(id, exts);
                }
                REC_V3 => {
                    if rsize < V3_HEADER_LEN {
                        return Err(corrupt(i, at, "V3 record shorter than its 12-byte header"));
                    }
                    let r = self
                        .v3_record(rec)
                        .map_err(|reason| corrupt(i, at, reason))?;
                    out.extend(r);
                }
                REC_EXPORTER_INFO => {
                    if rsize < 32 {
                        return Err(corrupt(i, at, "exporter record shorter than 32 bytes"));
                    }
                    let family = le16(rec, 24);
                    let sysid = le16(rec, 26);
                    let addr = if family == 10 {
                        v6(rec, 8)
                    } else {
                        Addr::from_v4_u32(le32(rec, 16))
                    };
                    let version = le32(rec, 4);
                    let id = le32(rec, 28);
                    self.exporters.insert(
                        sysid,
                        Exporter {
                            sysid,
                            addr,
                            version,
                            id,
                        },
                    );
                    self.stats.exporters += 1;
                }
                REC_SAMPLER => {
                    if rsize < 24 {
                        return Err(corrupt(i, at, "sampler record shorter than 24 bytes"));
                    }
                    let sysid = le16(rec, 4);
                    let id = le64(rec, 8) as i64;
                    let packet_interval = le32(rec, 16);
                    let space_interval = le32(rec, 20);
                    let rate = if packet_interval == 0 {
                        1
                    } else {
                        ((packet_interval as u64 + space_interval as u64) / packet_interval as u64)
                            .clamp(1, u32::MAX as u64) as u32
                    };
                    self.samplers.insert((sysid, id), rate);
                    self.stats.samplers += 1;
                }
                REC_IDENT => {
                    let s = &rec[4..];
                    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                    self.header.ident = Some(String::from_utf8_lossy(&s[..end]).into_owned());
                }
                REC_STAT => {
                    if rsize < 4 + 18 * 8 {
                        return Err(corrupt(i, at, "stat record shorter than 148 bytes"));
                    }
                    let v = |k: usize| le64(rec, 4 + 8 * k);
                    self.header.stats = Some(FileStats {
                        flows: v(0),
                        bytes: v(1),
                        packets: v(2),
                        flows_tcp: v(3),
                        flows_udp: v(4),
                        flows_icmp: v(5),
                        flows_other: v(6),
                        bytes_tcp: v(7),
                        bytes_udp: v(8),
                        bytes_icmp: v(9),
                        bytes_other: v(10),
                        packets_tcp: v(11),
                        packets_udp: v(12),
                        packets_icmp: v(13),
                        packets_other: v(14),
                        first_ms: v(15),
                        last_ms: v(16),
                        sequence_failures: v(17),
                    });
                }
                REC_EXPORTER_STAT | REC_V1_COMMON_V0 => self.stats.skipped_records += 1,
                _ => self.stats.skipped_records += 1,
            }
            at += rsize;
        }
        Ok(())
    }

    /// One V3 record (`rec` holds exactly its `size` bytes, at least the 12-byte header);
    /// `None` for a record without EXgenericFlow.
    fn v3_record(&mut self, rec: &[u8]) -> Result<Option<FlowRecord>, &'static str> {
        let num_elements = le16(rec, 4);
        let engine_type = rec[6];
        let engine_id = rec[7];
        let exporter_id = le16(rec, 8);
        let flags = rec[10];
        let mut r = FlowRecord {
            src_addr: Addr::UNSPECIFIED_V4,
            dst_addr: Addr::UNSPECIFIED_V4,
            next_hop: Addr::UNSPECIFIED_V4,
            exporter: Addr::UNSPECIFIED_V4,
            domain: (engine_type as u32) << 8 | engine_id as u32,
            sampling_rate: 1,
            ..Default::default()
        };
        let mut have_addr = false;
        let mut have_generic = false;
        let mut have_exporter = false;
        let mut at = V3_HEADER_LEN;
        for _ in 0..num_elements {
            if rec.len() - at < 4 {
                return Err("V3 record ends before its elements do");
            }
            let etype = le16(rec, at);
            let elen = le16(rec, at + 2) as usize;
            if elen < 4 {
                return Err("element length below its 4-byte header");
            }
            if elen > rec.len() - at {
                return Err("element runs past the end of its record");
            }
            let e = &rec[at + 4..at + elen];
            at += elen;
            // Minimum data length of each mapped element; a shorter one is skipped whole.
            let need = match etype {
                EX_GENERIC_FLOW => 48,
                EX_IPV4_FLOW => 8,
                EX_IPV6_FLOW => 32,
                EX_FLOW_MISC => 10,
                EX_CNT_FLOW => 8,
                EX_AS_ROUTING => 8,
                EX_IP_NEXT_HOP_V4 | EX_IP_RECEIVED_V4 => 4,
                EX_IP_NEXT_HOP_V6 | EX_IP_RECEIVED_V6 => 16,
                EX_SAMPLER_INFO => 10,
                _ => {
                    self.stats.skipped_elements += 1;
                    continue;
                }
            };
            if e.len() < need {
                self.stats.short_elements += 1;
                continue;
            }
            match etype {
                EX_GENERIC_FLOW => {
                    have_generic = true;
                    r.time_start = le64(e, 0);
                    r.time_end = le64(e, 8);
                    r.packets = le64(e, 24);
                    r.bytes = le64(e, 32);
                    r.src_port = le16(e, 40);
                    r.dst_port = le16(e, 42);
                    r.proto = e[44];
                    r.tcp_flags = e[45];
                    r.tos = e[47];
                }
                EX_IPV4_FLOW => {
                    r.src_addr = Addr::from_v4_u32(le32(e, 0));
                    r.dst_addr = Addr::from_v4_u32(le32(e, 4));
                    have_addr = true;
                }
                EX_IPV6_FLOW => {
                    r.src_addr = v6(e, 0);
                    r.dst_addr = v6(e, 16);
                    have_addr = true;
                }
                EX_FLOW_MISC => {
                    r.in_if = le32(e, 0);
                    r.out_if = le32(e, 4);
                    r.src_mask = e[8];
                    r.dst_mask = e[9];
                }
                EX_CNT_FLOW if le64(e, 0) > 1 => self.stats.aggregated += 1,
                EX_AS_ROUTING => {
                    r.src_as = le32(e, 0);
                    r.dst_as = le32(e, 4);
                }
                EX_IP_NEXT_HOP_V4 => r.next_hop = Addr::from_v4_u32(le32(e, 0)),
                EX_IP_NEXT_HOP_V6 => r.next_hop = v6(e, 0),
                EX_IP_RECEIVED_V4 => {
                    r.exporter = Addr::from_v4_u32(le32(e, 0));
                    have_exporter = true;
                }
                EX_IP_RECEIVED_V6 => {
                    r.exporter = v6(e, 0);
                    have_exporter = true;
                }
                EX_SAMPLER_INFO => {
                    let id = le64(e, 0) as i64;
                    let sysid = le16(e, 8);
                    if let Some(&rate) = self.samplers.get(&(sysid, id)) {
                        r.sampling_rate = rate;
                    }
                }
                _ => {}
            }
        }
        if !have_generic {
            self.stats.without_counters += 1;
            return Ok(None);
        }
        if !have_exporter && let Some(x) = self.exporters.get(&exporter_id) {
            r.exporter = x.addr;
        }
        if !have_addr {
            self.stats.without_addresses += 1;
        }
        if flags & V3_FLAG_SAMPLED != 0 {
            self.stats.sampled += 1;
        }
        self.stats.flows += 1;
        Ok(Some(r))
    }
}

/// Why a layout-1 record could not be read.
enum V1Problem {
    Corrupt(&'static str),
    UnknownExtension { map: u16, extension: u16 },
}

/// Data bytes of each optional layout-1 extension (nfdump 1.6's extension table, ids 4..48;
/// 28..36, 44 and 49+ are reserved or unknown: `None`).
fn v1_extension_size(id: u16) -> Option<usize> {
    Some(match id {
        4 | 6 | 8 | 9 | 11 | 13 | 14 | 16 | 18 | 23 | 25 | 38 => 4,
        5 | 7 | 15 | 17 | 19 | 26 | 27 | 39 | 47 | 48 => 8,
        46 => 12,
        10 | 12 | 20 | 21 | 24 => 16,
        37 => 20,
        41 | 42 | 45 => 24,
        40 => 32,
        22 => 40,
        43 => 72,
        _ => return None,
    })
}

impl<R: Read> NfcapdReader<R> {
    /// One layout-1 common record (type 10): the fixed part, addresses, packet and byte
    /// counters, then the optional extensions its map lists.
    fn v1_record(&mut self, rec: &[u8]) -> Result<FlowRecord, V1Problem> {
        let fixed = 32;
        if rec.len() < fixed {
            return Err(V1Problem::Corrupt(
                "common record shorter than its fixed part",
            ));
        }
        let (flags, exporter_id) = (le16(rec, 4), le16(rec, 28));
        let map_id = le16(rec, 6);
        let mut r = FlowRecord {
            time_start: le32(rec, 12) as u64 * 1000 + le16(rec, 8) as u64,
            time_end: le32(rec, 16) as u64 * 1000 + le16(rec, 10) as u64,
            tcp_flags: rec[21],
            proto: rec[22],
            tos: rec[23],
            src_port: le16(rec, 24),
            dst_port: le16(rec, 26),
            next_hop: Addr::UNSPECIFIED_V4,
            exporter: Addr::UNSPECIFIED_V4,
            sampling_rate: 1,
            ..Default::default()
        };
        let mut at = fixed;
        let mut take = |n: usize| -> Result<usize, V1Problem> {
            if rec.len() - at < n {
                return Err(V1Problem::Corrupt(
                    "common record shorter than its extensions",
                ));
            }
            at += n;
            Ok(at - n)
        };
        if flags & V1_FLAG_IPV6_ADDR != 0 {
            let p = take(32)?;
            r.src_addr = v6(rec, p);
            r.dst_addr = v6(rec, p + 16);
        } else {
            let p = take(8)?;
            r.src_addr = Addr::from_v4_u32(le32(rec, p));
            r.dst_addr = Addr::from_v4_u32(le32(rec, p + 4));
        }
        r.packets = if flags & V1_FLAG_PKG_64 != 0 {
            le64(rec, take(8)?)
        } else {
            le32(rec, take(4)?) as u64
        };
        r.bytes = if flags & V1_FLAG_BYTES_64 != 0 {
            le64(rec, take(8)?)
        } else {
            le32(rec, take(4)?) as u64
        };
        let exts = match self.maps.get(&map_id) {
            None => {
                return Err(V1Problem::Corrupt(
                    "record refers to an undefined extension map",
                ));
            }
            Some(Err(e)) => {
                return Err(V1Problem::UnknownExtension {
                    map: map_id,
                    extension: *e,
                });
            }
            Some(Ok(v)) => v,
        };
        let mut have_exporter = false;
        for &(id, n) in exts {
            let p = take(n)?;
            match id {
                4 => {
                    r.in_if = le16(rec, p) as u32;
                    r.out_if = le16(rec, p + 2) as u32;
                }
                5 => {
                    r.in_if = le32(rec, p);
                    r.out_if = le32(rec, p + 4);
                }
                6 => {
                    r.src_as = le16(rec, p) as u32;
                    r.dst_as = le16(rec, p + 2) as u32;
                }
                7 => {
                    r.src_as = le32(rec, p);
                    r.dst_as = le32(rec, p + 4);
                }
                8 => {
                    r.src_mask = rec[p + 2];
                    r.dst_mask = rec[p + 3];
                }
                9 => r.next_hop = Addr::from_v4_u32(le32(rec, p)),
                10 => r.next_hop = v6(rec, p),
                18 if le32(rec, p) > 1 => self.stats.aggregated += 1,
                19 if le64(rec, p) > 1 => self.stats.aggregated += 1,
                23 => {
                    r.exporter = Addr::from_v4_u32(le32(rec, p));
                    have_exporter = true;
                }
                24 => {
                    r.exporter = v6(rec, p);
                    have_exporter = true;
                }
                25 => r.domain = (rec[p + 2] as u32) << 8 | rec[p + 3] as u32,
                _ => {}
            }
        }
        if !have_exporter && let Some(x) = self.exporters.get(&exporter_id) {
            r.exporter = x.addr;
        }
        if flags & V1_FLAG_SAMPLED != 0 {
            self.stats.sampled += 1;
        }
        self.stats.flows += 1;
        Ok(r)
    }
}

/// Reads a whole nfcapd file (gzip'd or not: a `1f 8b` start is unwrapped first) and returns
/// its flows and its header, with the appendix's ident and totals.
pub fn read_file(path: &Path) -> Result<(Vec<FlowRecord>, NfcapdHeader), Error> {
    let file_err = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    let data = std::fs::read(path).map_err(file_err)?;
    let data = if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(file_err)?;
        out
    } else {
        data
    };
    read_bytes(&data)
}

/// Reads an nfcapd file held in memory.
pub fn read_bytes(data: &[u8]) -> Result<(Vec<FlowRecord>, NfcapdHeader), Error> {
    let mut rd = NfcapdReader::new(data)?;
    let mut out = Vec::with_capacity(data.len() / 100);
    while rd.read_block(&mut out)? {}
    Ok((out, rd.header))
}

/// True when `first_bytes` start like an nfdump file: magic 0xA50C and layout 1 or 2.
pub fn looks_like_nfcapd(first_bytes: &[u8]) -> bool {
    first_bytes.len() >= 4
        && le16(first_bytes, 0) == MAGIC
        && matches!(le16(first_bytes, 2), LAYOUT_VERSION_1 | LAYOUT_VERSION_2)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

// Little-endian readers. Callers check lengths first: each is only called with
// `at + width <= b.len()`.
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
/// An IPv6 address stored as two host-order u64, high half first.
fn v6(b: &[u8], at: usize) -> Addr {
    Addr(((le64(b, at) as u128) << 64) | le64(b, at + 8) as u128)
}

#[cfg(test)]
mod tests;
