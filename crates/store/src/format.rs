//! The bin file: one Parquet file (zstd) per link, level and bin, readable as-is by pyarrow,
//! DuckDB, pandas and Spark.
//!
//! This module owns the mapping between [`Batch`]es of flow records and Parquet columns, derived from the
//! one schema ([`FIELDS`]) so that no field is listed twice:
//!
//! | schema kind       | Parquet column(s)                                                  |
//! |-------------------|--------------------------------------------------------------------|
//! | `TimeMs`          | `NAME`: INT64 TIMESTAMP(MILLIS, UTC)                               |
//! | `Unsigned(64)`    | `NAME`: INT64 (signed: Spark reads UINT64 as a decimal)            |
//! | `Unsigned(8..32)` | `NAME`: INT32 annotated UINT_8 / UINT_16 / UINT_32                 |
//! | `Address`         | `NAME_v4`: UINT_32, null for IPv6; `NAME_v6`: FIXED_LEN_BYTE_ARRAY(16), null for IPv4 |
//!
//! then `sample_z` (INT64, the record's sampling threshold, 0 = not sampled) and one nullable
//! column per user-defined element (named by the registry). Splitting addresses by family keeps
//! IPv4 (most traffic) in a dictionary-friendly 4-byte column, and an all-IPv4 file pays
//! nothing for the IPv6 columns but their (run-length encoded) nulls.
//!
//! Key-value metadata (`flowdrill.*`): `schema_version`, `link`, `level`, `bin_start`,
//! `bin_end` (Unix ms), `bin_start_utc`, `records_before` (records of the bin before sampling),
//! `records_after` (rows), `z_max` (the largest `sample_z`), `bytes_variance` (`Σ z(z − x)`
//! over the rows, the variance estimate of the byte total), `custom` (the user-defined
//! elements as JSON), and the statistics of [`crate::stats`].

use crate::batch::{Batch, ExtraColumn, OwnedColumn};
use crate::error::{Error, Result};
use crate::stats::BinStats;
use arrow_array::builder::{
    BinaryBuilder, FixedSizeBinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
    UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch, TimestampMillisecondArray,
    UInt8Array, UInt16Array, UInt32Array,
};
use arrow_schema::{DataType, Field as AField, Schema, TimeUnit};
use flowdrill_model::hll::Hll;
use flowdrill_model::{Addr, CustomField, CustomFields, CustomKind, FIELDS, Field, Kind};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, arrow_writer::ArrowWriterOptions};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Version of the bin file layout. Readers refuse files with a larger version.
pub const SCHEMA_VERSION: u32 = 2;
/// zstd level of the bin files.
pub const ZSTD_LEVEL: i32 = 1;
/// The per-record threshold column.
pub const Z_COLUMN: &str = "sample_z";

/// What a bin file says about itself (besides the statistics).
#[derive(Clone, Debug, PartialEq)]
pub struct FileMeta {
    pub link: String,
    pub level: u8,
    pub bin_start: u64,
    pub bin_end: u64,
    /// Records of the bin before sampling (after splitting flows at bin boundaries).
    pub records_before: u64,
    /// Rows in the file.
    pub records_after: u64,
    /// The largest per-record threshold (0: nothing was sampled away).
    pub z_max: u64,
    /// Unbiased estimate of the variance of the estimated byte total, `Σ z(z − x)`.
    pub bytes_variance: f64,
    pub custom: CustomFields,
}

#[derive(Serialize, Deserialize)]
struct CustomJson {
    name: String,
    enterprise: u32,
    id: u16,
    kind: String,
}

fn kind_name(k: CustomKind) -> &'static str {
    match k {
        CustomKind::Unsigned => "unsigned",
        CustomKind::Signed => "signed",
        CustomKind::Float => "float",
        CustomKind::String => "string",
        CustomKind::Bytes => "bytes",
        CustomKind::Address => "address",
    }
}

/// The Parquet column names of a schema field (two for addresses).
pub fn column_names(f: Field) -> Vec<String> {
    let info = f.info();
    match info.kind {
        Kind::Address => vec![format!("{}_v4", info.name), format!("{}_v6", info.name)],
        _ => vec![info.name.to_string()],
    }
}

/// Checks that user-defined names do not collide with the schema's columns.
pub fn check_custom(custom: &CustomFields) -> Result<()> {
    let mut taken: Vec<String> = FIELDS.iter().flat_map(|i| column_names(i.field)).collect();
    taken.push(Z_COLUMN.to_string());
    for f in &custom.fields {
        if taken.contains(&f.name) {
            return Err(Error::InvalidArgument(format!(
                "user-defined element '{}' has the name of a stored column; rename it in the registry",
                f.name
            )));
        }
        taken.push(f.name.clone());
    }
    Ok(())
}

/// The Arrow schema of a bin file with these user-defined elements.
pub fn arrow_schema(custom: &CustomFields) -> Schema {
    let mut fields: Vec<AField> = FIELDS.iter().flat_map(schema_fields).collect();
    fields.push(AField::new(Z_COLUMN, DataType::Int64, false));
    fields.extend(custom.fields.iter().map(extra_field));
    Schema::new(fields)
}

/// The Arrow field(s) of one schema field: two for an address (see the module doc).
fn schema_fields(info: &flowdrill_model::FieldInfo) -> Vec<AField> {
    let dt = match info.kind {
        Kind::TimeMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Kind::Unsigned(64) => DataType::Int64,
        Kind::Unsigned(8) => DataType::UInt8,
        Kind::Unsigned(16) => DataType::UInt16,
        Kind::Unsigned(_) => DataType::UInt32,
        Kind::Address => {
            let n = column_names(info.field);
            return vec![
                AField::new(&n[0], DataType::UInt32, true),
                AField::new(&n[1], DataType::FixedSizeBinary(16), true),
            ];
        }
    };
    vec![AField::new(info.name, dt, false)]
}

/// The Arrow field of a user-defined element (nullable: a record may not carry it).
fn extra_field(c: &CustomField) -> AField {
    let dt = match c.kind {
        CustomKind::Unsigned => DataType::UInt64,
        CustomKind::Signed => DataType::Int64,
        CustomKind::Float => DataType::Float64,
        CustomKind::String => DataType::Utf8,
        CustomKind::Bytes => DataType::Binary,
        CustomKind::Address => DataType::FixedSizeBinary(16),
    };
    AField::new(&c.name, dt, true)
}

/// How a schema column is encoded before zstd. Measured on the demo scenario (bytes/record
/// with zstd 3): dictionaries pay off only for low-cardinality columns (protocol, flags, masks,
/// interfaces, exporter metadata: ~0.1 each instead of ~0.35 plain); for addresses, ports, AS
/// numbers and counters, plain values compress 10–30 % better than dictionary indices; times
/// are delta-encoded (time_start 0.4 instead of 2.9).
///
/// The columns that nearly every analysis reads are delta-encoded too, for decoding speed:
/// zstd has to inflate a plain INT64 counter to 8 bytes a row, while the delta encoding
/// bit-packs it before zstd sees it. Measured with arrow-rs on bins of the generated store
/// (bytes/record with zstd 1 and decode ns/row, plain → delta): packets 0.51 → 0.97 and
/// 8.8 → 2.6 ns; bytes 1.69 → 2.03 and 10.5 → 2.6 ns; IPv4 source 2.62 → 2.68 and 4.3 → 3.2 ns;
/// IPv4 destination 1.67 → 1.67 and 5.5 → 3.7 ns; destination port (sorted within a bin)
/// 0.27 → 0.08 and 2.4 → 1.9 ns; source AS 1.13 → 1.08 and 2.6 → 1.8 ns. Source ports and
/// destination AS stay plain (delta is larger there). Byte-stream-split would be denser
/// still, but Spark's vectorized reader does not read it for integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColumnEncoding {
    Dictionary,
    Delta,
    Plain,
}

fn column_encoding(info: &flowdrill_model::FieldInfo) -> ColumnEncoding {
    use flowdrill_model::Role;
    match (info.kind, info.role, info.field) {
        (Kind::TimeMs, _, _) => ColumnEncoding::Delta,
        (Kind::Unsigned(8), _, _) | (_, Role::Meta, _) => ColumnEncoding::Dictionary,
        (_, _, Field::InIf | Field::OutIf | Field::NextHop) => ColumnEncoding::Dictionary,
        (
            _,
            _,
            Field::Packets
            | Field::Bytes
            | Field::SrcAddr
            | Field::DstAddr
            | Field::DstPort
            | Field::SrcAs,
        ) => ColumnEncoding::Delta,
        _ => ColumnEncoding::Plain,
    }
}

fn to_i64(x: u64) -> i64 {
    // Counters and times above i64::MAX do not occur in flow data; clamp rather than wrap so
    // a bogus value can never turn negative.
    x.min(i64::MAX as u64) as i64
}

fn arrow_err(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("encoding {path}: {e}"))
}

/// Encodes a batch (every schema field loaded, and one extra column per element of
/// `meta.custom`, in registry order) as a complete Parquet file in memory: compressed with
/// zstd, except the delta-encoded columns that zstd would shrink by less than [`RAW_BELOW`]
/// (found on a sample of the rows first: [`raw_columns`]).
pub fn encode(batch: &Batch, meta: &FileMeta, stats: &BinStats) -> Result<Vec<u8>> {
    if batch.len <= PROBE_ROWS {
        // The file is its own sample.
        let first = encode_with(batch, meta, stats, &[])?;
        if first.incompressible.is_empty() {
            return Ok(first.bytes);
        }
        return Ok(encode_with(batch, meta, stats, &first.incompressible)?.bytes);
    }
    let raw = raw_columns(batch, meta, stats)?;
    Ok(encode_with(batch, meta, stats, &raw)?.bytes)
}

/// Delta-encoded columns (addresses, counters, times, ports, AS numbers) are often as dense as
/// zstd can make them: on the benchmark mix, zstd shrinks the times, IPv4 sources, byte counts
/// and source AS numbers of a bin by 0–2 %, and a reader still pays for it (a decompression
/// context per column chunk, a fresh buffer per page, a copy): stored raw, `top srcip` over
/// 5 M records is about 4 ms (6 %) faster, for 0.4 % more bytes. On other traffic (few
/// distinct values) the same columns shrink by two thirds, and stay compressed. Column chunks
/// that zstd shrinks by less than this share are stored raw.
pub const RAW_BELOW: f64 = 0.05;

/// Rows of the sample that decides which columns are stored raw ([`raw_columns`]).
const PROBE_ROWS: usize = 16 << 10;

/// The delta-encoded columns that zstd shrinks by less than [`RAW_BELOW`] on a sample of
/// `batch`'s rows: four runs of 4 Ki consecutive rows spread over the bin (deltas between
/// neighbours, as in the file), encoded as a file of their own (an import takes 2 % more CPU).
/// The sample depends on the rows alone: the same records make the same file.
fn raw_columns(batch: &Batch, meta: &FileMeta, stats: &BinStats) -> Result<Vec<String>> {
    let runs = 4;
    let per = PROBE_ROWS / runs;
    let rows: Vec<usize> = (0..runs)
        .flat_map(|r| {
            let start = (batch.len - per) * r / (runs - 1);
            start..start + per
        })
        .collect();
    Ok(encode_with(&batch.take(&rows), meta, stats, &[])?.incompressible)
}

/// A bin file encoded by [`encode_with`].
#[derive(Debug)]
struct Encoded {
    bytes: Vec<u8>,
    /// The delta-encoded columns stored compressed that zstd shrank by less than
    /// [`RAW_BELOW`].
    incompressible: Vec<String>,
}

/// [`encode`], with the delta-encoded columns named in `raw` stored without compression
/// (other names are ignored).
fn encode_with(
    batch: &Batch,
    meta: &FileMeta,
    stats: &BinStats,
    raw: &[String],
) -> Result<Encoded> {
    let custom = &meta.custom;
    let schema = Arc::new(arrow_schema(custom));
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let missing = |n: &str| Error::Internal(format!("encoding a batch without column {n}"));
    for info in FIELDS {
        let c = batch.cols[info.field as usize]
            .as_ref()
            .ok_or_else(|| missing(info.name))?;
        cols.extend(schema_arrays(info, c)?);
    }
    cols.push(Arc::new(Int64Array::from_iter_values(
        batch.z.iter().map(|&z| to_i64(z)),
    )));
    for c in &custom.fields {
        let col = batch.extra(&c.name).ok_or_else(|| missing(&c.name))?;
        cols.push(extra_array(c, col)?);
    }
    let rb =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| arrow_err("record batch", e))?;

    let mut kv = vec![
        (
            "flowdrill.schema_version".to_string(),
            SCHEMA_VERSION.to_string(),
        ),
        ("flowdrill.link".into(), meta.link.clone()),
        ("flowdrill.level".into(), meta.level.to_string()),
        ("flowdrill.bin_start".into(), meta.bin_start.to_string()),
        ("flowdrill.bin_end".into(), meta.bin_end.to_string()),
        (
            "flowdrill.bin_start_utc".into(),
            flowdrill_model::time::format_ms(meta.bin_start),
        ),
        (
            "flowdrill.records_before".into(),
            meta.records_before.to_string(),
        ),
        ("flowdrill.records_after".into(), batch.len.to_string()),
        ("flowdrill.z_max".into(), meta.z_max.to_string()),
        (
            "flowdrill.bytes_variance".into(),
            meta.bytes_variance.to_string(),
        ),
        (
            "flowdrill.custom".into(),
            serde_json::to_string(
                &custom
                    .fields
                    .iter()
                    .map(|c| CustomJson {
                        name: c.name.clone(),
                        enterprise: c.enterprise,
                        id: c.id,
                        kind: kind_name(c.kind).into(),
                    })
                    .collect::<Vec<_>>(),
            )
            .expect("custom fields serialise"),
        ),
    ];
    kv.extend(stats.to_metadata());
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| arrow_err("zstd level", e))?,
        ))
        .set_dictionary_enabled(false);
    props = column_props(props, FIELDS, custom);
    let delta = delta_columns();
    for name in raw.iter().filter(|n| delta.contains(n)) {
        props =
            props.set_column_compression(ColumnPath::from(name.clone()), Compression::UNCOMPRESSED);
    }
    let props = props
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_created_by(format!("flowdrill-store {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(
            kv.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect(),
        ))
        .build();
    let opts = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(Vec::new(), schema, opts)
        .map_err(|e| arrow_err("writer", e))?;
    w.write(&rb).map_err(|e| arrow_err("write", e))?;
    w.flush().map_err(|e| arrow_err("row group", e))?;
    w.sync().map_err(|e| arrow_err("row group", e))?;
    let sums = chunk_checksums(w.inner(), w.flushed_row_groups())?;
    let incompressible = incompressible(w.flushed_row_groups(), &delta);
    w.append_key_value_metadata(KeyValue::new(CHECKSUMS_KEY.into(), sums));
    let bytes = w.into_inner().map_err(|e| arrow_err("close", e))?;
    Ok(Encoded {
        bytes,
        incompressible,
    })
}

/// The names of the delta-encoded schema columns (the candidates for storing raw).
fn delta_columns() -> Vec<String> {
    let mut out = Vec::new();
    for info in FIELDS {
        if column_encoding(info) != ColumnEncoding::Delta {
            continue;
        }
        // The IPv6 half of an address is plain (see `column_props`).
        out.extend(column_names(info.field).into_iter().take(1));
    }
    out
}

/// The columns of `candidates` stored compressed in the row groups `groups` that zstd shrank
/// by less than [`RAW_BELOW`] (chunks under 4 KiB are too small to tell).
fn incompressible(
    groups: &[parquet::file::metadata::RowGroupMetaData],
    candidates: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in groups.iter().flat_map(|g| g.columns()) {
        let name = c.column_path().string();
        let (raw_size, size) = (c.uncompressed_size(), c.compressed_size());
        if candidates.contains(&name)
            && !out.contains(&name)
            && c.compression() != Compression::UNCOMPRESSED
            && raw_size >= 4096
            && 1.0 - size as f64 / (raw_size as f64) < RAW_BELOW
        {
            out.push(name);
        }
    }
    out
}

/// Rows per data page at most: a read that keeps few rows of a bin ([`read_chunks_where`])
/// skips the pages that hold none of them. Measured on the generated store, 32 Ki-row pages
/// are as dense as 1 MB ones (−0.3 %; 8 Ki rows: +1 %).
pub const PAGE_ROWS: usize = 1 << 15;

/// Key of the file metadata entry that holds the CRC-32 of every column chunk (row group by
/// row group, columns in file order; 8 hex digits each, comma-separated). Parquet's own page
/// checksums are optional and the Parquet writer used here does not write them; without a
/// checksum, damage inside a page whose bytes still decode (bit-packed or literal data) would
/// be read as valid values.
pub const CHECKSUMS_KEY: &str = "flowdrill.chunk_crc32";

/// The [`CHECKSUMS_KEY`] value for the row groups `groups` written to `file`.
fn chunk_checksums(
    file: &[u8],
    groups: &[parquet::file::metadata::RowGroupMetaData],
) -> Result<String> {
    let mut out = String::new();
    for c in groups.iter().flat_map(|g| g.columns()) {
        let (start, len) = c.byte_range();
        let bytes = usize::try_from(start)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(s, l)| file.get(s..s.checked_add(l)?))
            .ok_or_else(|| Error::Internal("a column chunk outside the file written".into()))?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&format!("{:08x}", crc32fast::hash(bytes)));
    }
    Ok(out)
}

/// A bin file to decode, with the column chunks that will be read loaded and checked against
/// the checksums its writer stored ([`CHECKSUMS_KEY`]): a damaged chunk is an error naming
/// the file and the column, never values. Reads outside the loaded chunks (none, for a file
/// with checksums) and every read of a file without them go to the file.
struct CheckedFile {
    file: std::fs::File,
    len: u64,
    /// Loaded chunks by file offset.
    chunks: Vec<(u64, bytes::Bytes)>,
}

impl CheckedFile {
    /// Loads and checks the chunks of the leaf columns `mask` includes.
    fn open(
        path: &Path,
        file: std::fs::File,
        md: &parquet::file::metadata::ParquetMetaData,
        mask: &ProjectionMask,
    ) -> Result<CheckedFile> {
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut out = CheckedFile {
            file,
            len,
            chunks: Vec::new(),
        };
        let Some(sums) = md
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == CHECKSUMS_KEY))
            .and_then(|k| k.value.as_deref())
        else {
            // Written before checksums were stored: read as it is.
            return Ok(out);
        };
        let sums: Vec<Option<u32>> = sums
            .split(',')
            .map(|x| u32::from_str_radix(x, 16).ok())
            .collect();
        let columns = md.file_metadata().schema_descr().num_columns();
        if sums.len() != columns * md.num_row_groups() || sums.iter().any(Option::is_none) {
            return Err(Error::corrupt(
                path,
                "its column checksums do not match its columns",
            ));
        }
        let map = map_file(&out.file, len);
        for (g, group) in md.row_groups().iter().enumerate() {
            for (i, c) in group.columns().iter().enumerate() {
                if !mask.leaf_included(i) {
                    continue;
                }
                let (start, n) = c.byte_range();
                if start.checked_add(n).is_none_or(|end| end > len) {
                    return Err(Error::corrupt(
                        path,
                        format!("column {} lies outside the file", c.column_path()),
                    ));
                }
                let buf = match &map {
                    Some(m) => m.slice(start as usize..(start + n) as usize),
                    None => read_range(&out.file, start, n)
                        .map_err(|e| Error::io(path, e))?
                        .into(),
                };
                if Some(crc32fast::hash(&buf)) != sums[g * columns + i] {
                    return Err(Error::corrupt(
                        path,
                        format!(
                            "column {} (row group {g}) fails its checksum: the file is damaged",
                            c.column_path()
                        ),
                    ));
                }
                out.chunks.push((start, buf));
            }
        }
        out.chunks.sort_unstable_by_key(|c| c.0);
        Ok(out)
    }

    /// The loaded chunk holding the bytes `start..start + len`, from `start` on.
    fn loaded(&self, start: u64, len: u64) -> Option<bytes::Bytes> {
        let i = self
            .chunks
            .partition_point(|c| c.0 <= start)
            .checked_sub(1)?;
        let (at, b) = &self.chunks[i];
        let from = (start - at) as usize;
        (from as u64 + len <= b.len() as u64).then(|| b.slice(from..))
    }
}

/// The whole of `file` (`len` bytes) mapped into memory, if it can be: its column chunks are
/// then read where the page cache holds them, without copying them into fresh memory (which
/// costs a page fault per 4 KiB), and shared as [`bytes::Bytes`] until the reader is done.
/// `None` for an empty file or where mapping fails (the chunks are then read).
#[allow(unsafe_code)]
fn map_file(file: &std::fs::File, len: u64) -> Option<bytes::Bytes> {
    if len == 0 {
        return None;
    }
    // SAFETY: a mapping is undefined behaviour only if the file changes while it is mapped.
    // The store never changes a bin file in place: the writer writes a new file and renames
    // it over the old one, and expiry deletes files (the mapping keeps the old file's pages,
    // as an open descriptor would). A file truncated by hand under a running query would
    // fault on access (SIGBUS), as with any program that maps files.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }.ok()?;
    Some(bytes::Bytes::from_owner(map))
}

/// The `n` bytes of `file` from `start`, read into memory that is not zeroed first (a query
/// reads tens of megabytes of column chunks; zeroing them was 2 % of a `top`'s CPU).
fn read_range(file: &std::fs::File, start: u64, n: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(n as usize);
    // A `File` reads into the vector's spare capacity as it is (`Read::read_buf`).
    f.take(n).read_to_end(&mut buf)?;
    if buf.len() as u64 != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{n} bytes at offset {start} asked, the file ends after {}",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

impl parquet::file::reader::Length for CheckedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for CheckedFile {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        match self.loaded(start, 0) {
            Some(b) => Ok(Box::new(b.reader())),
            None => Ok(Box::new(self.file.get_read(start)?)),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self.loaded(start, length as u64) {
            Some(b) => Ok(b.slice(..length)),
            None => self.file.get_bytes(start, length),
        }
    }
}

/// The Arrow array(s) of one loaded schema column, as [`schema_fields`] types them.
fn schema_arrays(info: &flowdrill_model::FieldInfo, c: &OwnedColumn) -> Result<Vec<ArrayRef>> {
    Ok(match (info.kind, c) {
        (Kind::TimeMs, OwnedColumn::U64(v)) => vec![Arc::new(
            TimestampMillisecondArray::from_iter_values(v.iter().map(|&x| to_i64(x)))
                .with_timezone("UTC"),
        )],
        (Kind::Unsigned(64), OwnedColumn::U64(v)) => vec![Arc::new(Int64Array::from_iter_values(
            v.iter().map(|&x| to_i64(x)),
        ))],
        (Kind::Unsigned(8), OwnedColumn::U8(v)) => vec![Arc::new(UInt8Array::from(v.clone()))],
        (Kind::Unsigned(16), OwnedColumn::U16(v)) => vec![Arc::new(UInt16Array::from(v.clone()))],
        (Kind::Unsigned(32), OwnedColumn::U32(v)) => vec![Arc::new(UInt32Array::from(v.clone()))],
        (Kind::Address, OwnedColumn::AddrV4(v, _)) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(v.len(), 16);
            b.append_nulls(v.len());
            vec![Arc::new(UInt32Array::from(v.clone())), Arc::new(b.finish())]
        }
        (Kind::Address, OwnedColumn::Addr(v)) => {
            let v4 = UInt32Array::from_iter(v.iter().map(|&a| Addr(a).v4()));
            let mut b = FixedSizeBinaryBuilder::with_capacity(v.len(), 16);
            for &a in v {
                if Addr(a).is_v4() {
                    b.append_null();
                } else {
                    b.append_value(a.to_be_bytes())
                        .map_err(|e| arrow_err("address", e))?;
                }
            }
            vec![Arc::new(v4), Arc::new(b.finish())]
        }
        _ => {
            return Err(Error::Internal(format!(
                "column {} does not have its schema type",
                info.name
            )));
        }
    })
}

/// The Arrow array of a user-defined column, as [`extra_field`] types it.
fn extra_array(c: &CustomField, col: &ExtraColumn) -> Result<ArrayRef> {
    Ok(match col {
        ExtraColumn::Unsigned(v) => Arc::new(UInt64Builder::new().tap(|b| {
            v.iter().for_each(|x| b.append_option(*x));
        })),
        ExtraColumn::Signed(v) => Arc::new(Int64Builder::new().tap(|b| {
            v.iter().for_each(|x| b.append_option(*x));
        })),
        ExtraColumn::Float(v) => Arc::new(Float64Builder::new().tap(|b| {
            v.iter().for_each(|x| b.append_option(*x));
        })),
        ExtraColumn::String(v) => Arc::new(StringBuilder::new().tap(|b| {
            v.iter().for_each(|x| b.append_option(x.as_deref()));
        })),
        ExtraColumn::Bytes(v) => Arc::new(BinaryBuilder::new().tap(|b| {
            v.iter().for_each(|x| b.append_option(x.as_deref()));
        })),
        ExtraColumn::Address(v) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(v.len(), 16);
            for x in v {
                match x {
                    Some(a) => b
                        .append_value(a.0.to_be_bytes())
                        .map_err(|e| arrow_err(&c.name, e))?,
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// The encodings of the schema columns of `infos` ([`column_encoding`]), `sample_z` and the
/// user-defined columns (dictionaries), on top of `props`.
fn column_props(
    mut props: parquet::file::properties::WriterPropertiesBuilder,
    infos: &[flowdrill_model::FieldInfo],
    custom: &CustomFields,
) -> parquet::file::properties::WriterPropertiesBuilder {
    for info in infos {
        for (i, name) in column_names(info.field).into_iter().enumerate() {
            let path = ColumnPath::from(name);
            let mut encoding = column_encoding(info);
            if info.kind == Kind::Address && i > 0 && encoding == ColumnEncoding::Delta {
                // The IPv6 half of an address (16-byte values) has no delta encoding.
                encoding = ColumnEncoding::Plain;
            }
            props = match encoding {
                ColumnEncoding::Dictionary => props.set_column_dictionary_enabled(path, true),
                ColumnEncoding::Delta => {
                    props.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED)
                }
                ColumnEncoding::Plain => props,
            };
        }
    }
    props = props.set_column_dictionary_enabled(ColumnPath::from(Z_COLUMN), true);
    for c in &custom.fields {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c.name.clone()), true);
    }
    props
}

/// Reads the footer of a bin file: its metadata and statistics.
pub fn read_meta(path: &Path) -> Result<(FileMeta, BinStats)> {
    guard(path, || read_meta_inner(path))
}

/// Runs a decoder on a file, turning a panic inside the Parquet decoder (malformed input it
/// did not anticipate) into [`Error::Corrupt`] naming the file: a bad file never crashes a read.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(Error::corrupt(
            path,
            format!("the Parquet decoder failed: {why}"),
        ))
    })
}

/// Some of a bin file's sketches, read from its footer without decoding the others (see
/// [`read_meta`] for all of them): `None` for one the file does not have (the IPv6-only
/// sketches of older files).
pub fn read_sketches(path: &Path, which: &[crate::stats::Sketch]) -> Result<Vec<Option<Hll>>> {
    guard(path, || {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| Error::corrupt(path, e))?;
        let kv = reader.metadata().file_metadata().key_value_metadata();
        let get = |k: &str| {
            kv.and_then(|v| v.iter().find(|e| e.key == k))
                .and_then(|e| e.value.as_deref())
        };
        which
            .iter()
            .map(|&w| crate::stats::sketch_if_any(get, w).map_err(|e| Error::corrupt(path, e)))
            .collect()
    })
}

fn read_meta_inner(path: &Path) -> Result<(FileMeta, BinStats)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| Error::corrupt(path, e))?;
    let (meta, stats) = meta_of(path, reader.metadata().file_metadata(), true)?;
    Ok((meta, stats.expect("asked for")))
}

/// The closed intervals holding the values of each schema column of a bin file, from the
/// footer's column-chunk statistics (min and max over every row group). A field is missing when
/// some row group has no statistics for it; an address field has up to two intervals (IPv4
/// mapped, IPv6), none when every value is absent. Filters use them to skip files
/// (the query crate prunes with them).
pub type ColumnRanges = Vec<(Field, Vec<(u128, u128)>)>;

/// Reads the column ranges of a bin file from its footer (no column data is read).
pub fn column_ranges(path: &Path) -> Result<ColumnRanges> {
    guard(path, || {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| Error::corrupt(path, e))?;
        Ok(ranges_of(reader.metadata()))
    })
}

/// One column's interval over all row groups, as plain-encoded statistics give it; `Ok(None)`
/// when every value is null, `Err(())` when a row group has no usable statistics.
fn column_interval(
    md: &parquet::file::metadata::ParquetMetaData,
    name: &str,
    decode: impl Fn(&[u8]) -> Option<u128>,
) -> std::result::Result<Option<(u128, u128)>, ()> {
    let mut out: Option<(u128, u128)> = None;
    for rg in md.row_groups() {
        let col = rg
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .ok_or(())?;
        let st = col.statistics().ok_or(())?;
        let rows = u64::try_from(rg.num_rows()).map_err(|_| ())?;
        if st.null_count_opt() == Some(rows) {
            continue;
        }
        let lo = st.min_bytes_opt().and_then(&decode).ok_or(())?;
        let hi = st.max_bytes_opt().and_then(&decode).ok_or(())?;
        out = Some(match out {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
    Ok(out)
}

fn ranges_of(md: &parquet::file::metadata::ParquetMetaData) -> ColumnRanges {
    // Plain encoding: INT32 / INT64 little-endian (unsigned logical types compare unsigned and
    // store their bits), FIXED_LEN_BYTE_ARRAY as is (addresses big-endian).
    let le = |b: &[u8]| -> Option<u128> {
        match b.len() {
            4 => Some(u128::from(u32::from_le_bytes(b.try_into().ok()?))),
            8 => {
                let v = i64::from_le_bytes(b.try_into().ok()?);
                u64::try_from(v).ok().map(u128::from)
            }
            _ => None,
        }
    };
    let v4 = |b: &[u8]| -> Option<u128> {
        let v = u32::from_le_bytes(b.try_into().ok()?);
        Some(Addr::from_v4_u32(v).0)
    };
    let v6 = |b: &[u8]| -> Option<u128> { Some(u128::from_be_bytes(b.try_into().ok()?)) };
    let mut out = Vec::new();
    for info in FIELDS {
        let names = column_names(info.field);
        let parts = if info.kind == Kind::Address {
            match (
                column_interval(md, &names[0], v4),
                column_interval(md, &names[1], v6),
            ) {
                (Ok(a), Ok(b)) => a.into_iter().chain(b).collect(),
                _ => continue,
            }
        } else {
            match column_interval(md, &names[0], le) {
                Ok(a) => a.into_iter().collect(),
                Err(()) => continue,
            }
        };
        out.push((info.field, parts));
    }
    out
}

/// Decodes our key-value metadata (and the statistics, if `with_stats`) from a footer.
fn meta_of(
    path: &Path,
    fm: &parquet::file::metadata::FileMetaData,
    with_stats: bool,
) -> Result<(FileMeta, Option<BinStats>)> {
    let kv: Vec<(String, String)> = fm
        .key_value_metadata()
        .map(|v| {
            v.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    let num = |k: &str| -> Result<u64> {
        get(k)
            .ok_or_else(|| Error::corrupt(path, format!("no {k} in the file metadata")))?
            .parse::<u64>()
            .map_err(|e| Error::corrupt(path, format!("{k}: {e}")))
    };
    let version = num("flowdrill.schema_version")?;
    if version > SCHEMA_VERSION as u64 {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found: version as u32,
            supported: SCHEMA_VERSION,
        });
    }
    let custom_json: Vec<CustomJson> =
        serde_json::from_str(get("flowdrill.custom").unwrap_or("[]"))
            .map_err(|e| Error::corrupt(path, format!("flowdrill.custom: {e}")))?;
    let mut custom = CustomFields::default();
    for c in custom_json {
        custom.fields.push(CustomField {
            kind: CustomKind::from_name(&c.kind)
                .ok_or_else(|| Error::corrupt(path, format!("unknown kind {}", c.kind)))?,
            name: c.name,
            enterprise: c.enterprise,
            id: c.id,
        });
    }
    let meta = FileMeta {
        link: get("flowdrill.link")
            .ok_or_else(|| Error::corrupt(path, "no flowdrill.link"))?
            .to_string(),
        level: num("flowdrill.level")? as u8,
        bin_start: num("flowdrill.bin_start")?,
        bin_end: num("flowdrill.bin_end")?,
        records_before: num("flowdrill.records_before")?,
        records_after: num("flowdrill.records_after")?,
        z_max: num("flowdrill.z_max")?,
        bytes_variance: get("flowdrill.bytes_variance")
            .unwrap_or("0")
            .parse()
            .map_err(|e| Error::corrupt(path, format!("flowdrill.bytes_variance: {e}")))?,
        custom,
    };
    if meta.records_after != fm.num_rows() as u64 {
        return Err(Error::corrupt(
            path,
            format!(
                "metadata says {} rows, the file has {}",
                meta.records_after,
                fm.num_rows()
            ),
        ));
    }
    let stats = if with_stats {
        Some(BinStats::from_metadata(get).map_err(|e| Error::corrupt(path, e))?)
    } else {
        None
    };
    Ok((meta, stats))
}

/// Reads the given schema fields, the thresholds and the named user-defined columns
/// (`extras`; unknown names are ignored) of a bin file.
pub fn read(path: &Path, fields: &[Field], extras: &[&str]) -> Result<Batch> {
    guard(path, || read_inner(path, fields, extras))
}

/// Reads a bin file as [`read`] does, in batches of at most `chunk` rows handed to `f` in row
/// order, so that memory holds one chunk's columns instead of the whole file's. `f` returns
/// `false` to stop early. A file that turns out to be corrupt after some chunks were handed
/// over gives an error: the caller must then drop what it took from this file.
pub fn read_chunks(
    path: &Path,
    fields: &[Field],
    extras: &[&str],
    chunk: usize,
    f: &mut dyn FnMut(Batch) -> bool,
) -> Result<()> {
    guard(path, || {
        let (reader, extra_defs, rows) = open_reader(path, fields, extras, chunk.max(1), None)?;
        let (seen, whole) = hand_over(path, reader, fields, &extra_defs, f)?;
        if whole && seen != rows {
            return Err(Error::corrupt(
                path,
                "columns differ in length from the row count",
            ));
        }
        Ok(())
    })
}

/// Hands each record batch of `reader` (on `fields` and `extra_defs`) to `f` as a [`Batch`]
/// until `f` returns `false`; the rows handed over, and whether the reader was read to its end.
fn hand_over(
    path: &Path,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    fields: &[Field],
    extra_defs: &[CustomField],
    f: &mut dyn FnMut(Batch) -> bool,
) -> Result<(usize, bool)> {
    let mut handed = 0;
    for b in reader {
        let b = b.map_err(|e| Error::corrupt(path, e))?;
        let n = b.num_rows();
        handed += n;
        if !f(convert(path, &[b], n, fields, extra_defs)?) {
            return Ok((handed, false));
        }
    }
    Ok((handed, true))
}

/// Reads a bin file as [`read_chunks`] does, but decodes `fields` only for the rows `select`
/// keeps, skipping the pages that hold none of them: it first reads the columns of
/// `pre_fields` and `pre_extras` (a filter's), and `select` says which rows to keep (`None`:
/// all). The batches handed to `f` hold every kept row and may hold others (when the kept rows
/// are most rows or scattered, every row is decoded): the caller still filters them. Returns
/// the file's rows and the rows handed over.
#[allow(clippy::too_many_arguments)]
pub fn read_chunks_where(
    path: &Path,
    fields: &[Field],
    extras: &[&str],
    pre_fields: &[Field],
    pre_extras: &[&str],
    chunk: usize,
    select: &mut dyn FnMut(&Batch) -> Option<Vec<bool>>,
    f: &mut dyn FnMut(Batch) -> bool,
) -> Result<(usize, usize)> {
    guard(path, || {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // One footer for both readers, with the offset index that locates the pages a
        // selection skips.
        let footer = Footer::read(path, &file, true)?;
        let again = file.try_clone().map_err(|e| Error::io(path, e))?;
        // The filter's columns, the whole bin at once.
        let (reader, extra_defs, rows) = reader_on(
            path,
            file,
            &footer,
            pre_fields,
            pre_extras,
            usize::MAX,
            None,
        )?;
        let mut batches = Vec::new();
        for b in reader {
            batches.push(b.map_err(|e| Error::corrupt(path, e))?);
        }
        let pre = convert(path, &batches, rows, pre_fields, &extra_defs)?;
        drop(batches);
        let keep = select(&pre);
        drop(pre);
        if keep
            .as_ref()
            .is_some_and(|k| k.len() == rows && !k.contains(&true))
        {
            return Ok((rows, 0));
        }
        let selection = keep.and_then(|k| row_selection(&k, rows));
        let (reader, extra_defs, _) = reader_on(
            path,
            again,
            &footer,
            fields,
            extras,
            chunk.max(1),
            selection,
        )?;
        let (handed, _) = hand_over(path, reader, fields, &extra_defs, f)?;
        Ok((rows, handed))
    })
}

/// The selection of the rows `keep` marks, when it is worth one (`None`: read every row):
/// skipping pays when the kept rows are a minority and come in runs (rows are sorted by
/// exporter, interface, protocol, port, ...); scattered rows make a selection of many short
/// runs, slower to apply than decoding everything.
fn row_selection(keep: &[bool], rows: usize) -> Option<parquet::arrow::arrow_reader::RowSelection> {
    use parquet::arrow::arrow_reader::RowSelector;
    if keep.len() != rows || keep.iter().filter(|&&k| k).count() * 2 > rows {
        return None;
    }
    let mut runs: Vec<RowSelector> = Vec::new();
    let mut i = 0;
    while i < keep.len() {
        let v = keep[i];
        let start = i;
        while i < keep.len() && keep[i] == v {
            i += 1;
        }
        let n = i - start;
        runs.push(if v {
            RowSelector::select(n)
        } else {
            RowSelector::skip(n)
        });
        // Scattered: more than one run per 256 rows.
        if runs.len() > rows / 256 + 2 {
            return None;
        }
    }
    Some(runs.into())
}

fn read_inner(path: &Path, fields: &[Field], extras: &[&str]) -> Result<Batch> {
    let (reader, extra_defs, rows) = open_reader(path, fields, extras, 1 << 20, None)?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| Error::corrupt(path, e))?);
    }
    convert(path, &batches, rows, fields, &extra_defs)
}

/// A bin file's footer, read once for the readers opened on the file.
struct Footer {
    arrow: ArrowReaderMetadata,
    meta: FileMeta,
}

impl Footer {
    /// Reads it, with the offset index (which locates pages) when `offset_index` (a file
    /// written without one then reads every page).
    fn read(path: &Path, file: &std::fs::File, offset_index: bool) -> Result<Footer> {
        use parquet::file::metadata::PageIndexPolicy;
        let policy = if offset_index {
            PageIndexPolicy::Optional
        } else {
            PageIndexPolicy::Skip
        };
        let options = ArrowReaderOptions::new().with_offset_index_policy(policy);
        let arrow =
            ArrowReaderMetadata::load(file, options).map_err(|e| Error::corrupt(path, e))?;
        let (meta, _) = meta_of(path, arrow.metadata().file_metadata(), false)?;
        Ok(Footer { arrow, meta })
    }
}

/// A bin file's reader, the definitions of the user-defined columns it reads, and the file's
/// row count.
type Opened = (
    parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    Vec<CustomField>,
    usize,
);

/// Opens a bin file's reader on the columns of `fields`, the thresholds and the named
/// user-defined columns (the rows of `selection`, or all); also returns the definitions of
/// those and the file's row count.
fn open_reader(
    path: &Path,
    fields: &[Field],
    extras: &[&str],
    batch_size: usize,
    selection: Option<parquet::arrow::arrow_reader::RowSelection>,
) -> Result<Opened> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let footer = Footer::read(path, &file, selection.is_some())?;
    reader_on(path, file, &footer, fields, extras, batch_size, selection)
}

/// Whether the statistics of column `i` (a root column of one leaf) say it is null in every
/// row of every row group (`false` when a row group has no null count).
fn all_null(meta: &parquet::file::metadata::ParquetMetaData, i: usize) -> bool {
    meta.row_groups().iter().all(|rg| {
        i < rg.num_columns()
            && rg
                .column(i)
                .statistics()
                .and_then(|st| st.null_count_opt())
                .is_some_and(|n| n == rg.num_rows() as u64)
    })
}

/// [`open_reader`] on a file already open, whose footer was read.
fn reader_on(
    path: &Path,
    file: std::fs::File,
    footer: &Footer,
    fields: &[Field],
    extras: &[&str],
    batch_size: usize,
    selection: Option<parquet::arrow::arrow_reader::RowSelection>,
) -> Result<Opened> {
    let meta = &footer.meta;
    let arrow = footer.arrow.schema().clone();
    let index = |name: &str| -> Result<usize> {
        arrow
            .index_of(name)
            .map_err(|_| Error::corrupt(path, format!("no column {name}")))
    };
    // Root column indices to load; Parquet returns them in file order. Two columns whose
    // values the footer already gives are not read (`convert` fills them in): the thresholds
    // of an unsampled file (all 0), and the IPv6 half of an address column that its
    // statistics say is null in every row (a file of IPv4 traffic).
    let z = index(Z_COLUMN)?;
    let mut want: Vec<usize> = Vec::new();
    if meta.z_max > 0 {
        want.push(z);
    }
    for f in fields {
        for n in column_names(*f) {
            let i = index(&n)?;
            if n.ends_with("_v6") && all_null(footer.arrow.metadata(), i) {
                continue;
            }
            want.push(i);
        }
    }
    let extra_defs: Vec<CustomField> = meta
        .custom
        .fields
        .iter()
        .filter(|c| extras.contains(&c.name.as_str()))
        .cloned()
        .collect();
    for c in &extra_defs {
        want.push(index(&c.name)?);
    }
    want.sort_unstable();
    want.dedup();
    let mask = ProjectionMask::roots(footer.arrow.parquet_schema(), want.iter().copied());
    let input = CheckedFile::open(path, file, footer.arrow.metadata(), &mask)?;
    let rows = meta.records_after as usize;
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(input, footer.arrow.clone());
    if let Some(s) = selection {
        builder = builder.with_row_selection(s);
    }
    let reader = builder
        .with_projection(mask)
        .with_batch_size(rows.min(batch_size).max(1))
        .build()
        .map_err(|e| Error::corrupt(path, e))?;
    Ok((reader, extra_defs, rows))
}

/// Turns the record batches of a bin file (`rows` rows in all) into a [`Batch`] of `fields`,
/// the thresholds and the user-defined columns `extra_defs`.
fn convert(
    path: &Path,
    batches: &[arrow_array::RecordBatch],
    rows: usize,
    fields: &[Field],
    extra_defs: &[CustomField],
) -> Result<Batch> {
    let col = |name: &str| -> Result<Vec<ArrayRef>> {
        batches
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| Error::corrupt(path, format!("no column {name}")))
            })
            .collect()
    };
    // A column the reader left out because the footer gives its values (see `reader_on`).
    let left_out = |name: &str| {
        batches
            .first()
            .is_some_and(|b| b.column_by_name(name).is_none())
    };
    let bad = |name: &str| Error::corrupt(path, format!("column {name} has an unexpected type"));

    let mut out = Batch {
        len: rows,
        cols: vec![None; FIELDS.len()],
        z: Default::default(),
        extras: Vec::new(),
        unsampled: Default::default(),
    };
    if left_out(Z_COLUMN) {
        // An unsampled file.
        out.z = crate::batch::Thresholds::zeros(rows);
    } else {
        let mut z = Vec::with_capacity(rows);
        for a in col(Z_COLUMN)? {
            let a = a
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(Z_COLUMN))?;
            z.extend(a.values().iter().map(|&v| v.max(0) as u64));
        }
        out.z = z.into();
    }
    for &f in fields {
        let info = f.info();
        let c = match info.kind {
            Kind::TimeMs => {
                let mut v = Vec::with_capacity(rows);
                for a in col(info.name)? {
                    let a = a
                        .as_primitive_opt::<TimestampMillisecondType>()
                        .ok_or_else(|| bad(info.name))?;
                    v.extend(a.values().iter().map(|&x| x.max(0) as u64));
                }
                OwnedColumn::U64(v)
            }
            Kind::Unsigned(64) => {
                let mut v = Vec::with_capacity(rows);
                for a in col(info.name)? {
                    let a = a
                        .as_primitive_opt::<Int64Type>()
                        .ok_or_else(|| bad(info.name))?;
                    v.extend(a.values().iter().map(|&x| x.max(0) as u64));
                }
                OwnedColumn::U64(v)
            }
            Kind::Unsigned(8) => {
                let mut v = Vec::with_capacity(rows);
                for a in col(info.name)? {
                    let a = a
                        .as_primitive_opt::<UInt8Type>()
                        .ok_or_else(|| bad(info.name))?;
                    v.extend_from_slice(a.values());
                }
                OwnedColumn::U8(v)
            }
            Kind::Unsigned(16) => {
                let mut v = Vec::with_capacity(rows);
                for a in col(info.name)? {
                    let a = a
                        .as_primitive_opt::<UInt16Type>()
                        .ok_or_else(|| bad(info.name))?;
                    v.extend_from_slice(a.values());
                }
                OwnedColumn::U16(v)
            }
            Kind::Unsigned(_) => {
                let mut v = Vec::with_capacity(rows);
                for a in col(info.name)? {
                    let a = a
                        .as_primitive_opt::<UInt32Type>()
                        .ok_or_else(|| bad(info.name))?;
                    v.extend_from_slice(a.values());
                }
                OwnedColumn::U32(v)
            }
            Kind::Address => {
                let names = column_names(f);
                let a4s = col(&names[0])?;
                let v4_only = a4s.iter().all(|a| a.null_count() == 0);
                if v4_only {
                    // Every row IPv4 (whatever the IPv6 column says: a row with both is
                    // IPv4): kept as 4-byte integers.
                    let mut v = Vec::with_capacity(rows);
                    for a4 in &a4s {
                        let a4 = a4
                            .as_primitive_opt::<UInt32Type>()
                            .ok_or_else(|| bad(&names[0]))?;
                        v.extend_from_slice(a4.values());
                    }
                    out.cols[f as usize] = Some(OwnedColumn::AddrV4(v, Default::default()));
                    continue;
                }
                // Some row is not IPv4, yet the file's statistics say the IPv6 column is null
                // in every row (so it was not read).
                if left_out(&names[1]) {
                    return Err(Error::corrupt(
                        path,
                        format!("{} is null in both families", info.name),
                    ));
                }
                let mut v = Vec::with_capacity(rows);
                for (a4, a6) in a4s.into_iter().zip(col(&names[1])?) {
                    let a4 = a4
                        .as_primitive_opt::<UInt32Type>()
                        .ok_or_else(|| bad(&names[0]))?;
                    let a6 = a6
                        .as_any()
                        .downcast_ref::<FixedSizeBinaryArray>()
                        .ok_or_else(|| bad(&names[1]))?;
                    // Every row as IPv4 first (a null's slot holds some value), then the
                    // rows without one from the IPv6 column: IPv6 rows are a minority, and a
                    // row-by-row choice cost more than both passes.
                    let base = v.len();
                    v.extend(a4.values().iter().map(|&x| Addr::from_v4_u32(x).0));
                    if a4.null_count() > 0 {
                        let mut filled = 0;
                        let mut fill = |i: usize| -> Result<()> {
                            if a4.is_null(i) {
                                let b: [u8; 16] =
                                    a6.value(i).try_into().map_err(|_| bad(&names[1]))?;
                                v[base + i] = u128::from_be_bytes(b);
                                filled += 1;
                            }
                            Ok(())
                        };
                        match a6.nulls() {
                            Some(n) => n.valid_indices().try_for_each(&mut fill)?,
                            None => (0..a6.len()).try_for_each(&mut fill)?,
                        }
                        if filled != a4.null_count() {
                            let i = (0..a4.len())
                                .find(|&i| a4.is_null(i) && a6.is_null(i))
                                .unwrap_or(0);
                            return Err(Error::corrupt(
                                path,
                                format!("{} is null in both families at row {i}", info.name),
                            ));
                        }
                    }
                }
                OwnedColumn::Addr(v)
            }
        };
        out.cols[f as usize] = Some(c);
    }
    for c in extra_defs.iter().cloned() {
        let arrays = col(&c.name)?;
        let e = match c.kind {
            CustomKind::Unsigned => ExtraColumn::Unsigned(
                collect_prim::<UInt64Type>(&arrays).ok_or_else(|| bad(&c.name))?,
            ),
            CustomKind::Signed => {
                ExtraColumn::Signed(collect_prim::<Int64Type>(&arrays).ok_or_else(|| bad(&c.name))?)
            }
            CustomKind::Float => ExtraColumn::Float(
                collect_prim::<Float64Type>(&arrays).ok_or_else(|| bad(&c.name))?,
            ),
            CustomKind::String => {
                let mut v = Vec::new();
                for a in &arrays {
                    let a = a.as_string_opt::<i32>().ok_or_else(|| bad(&c.name))?;
                    v.extend(a.iter().map(|s| s.map(str::to_string)));
                }
                ExtraColumn::String(v)
            }
            CustomKind::Bytes => {
                let mut v = Vec::new();
                for a in &arrays {
                    let a = a.as_binary_opt::<i32>().ok_or_else(|| bad(&c.name))?;
                    v.extend(a.iter().map(|s| s.map(<[u8]>::to_vec)));
                }
                ExtraColumn::Bytes(v)
            }
            CustomKind::Address => {
                let mut v = Vec::new();
                for a in &arrays {
                    let a = a
                        .as_any()
                        .downcast_ref::<FixedSizeBinaryArray>()
                        .ok_or_else(|| bad(&c.name))?;
                    for i in 0..a.len() {
                        v.push(if a.is_valid(i) {
                            let b: [u8; 16] = a.value(i).try_into().map_err(|_| bad(&c.name))?;
                            Some(Addr(u128::from_be_bytes(b)))
                        } else {
                            None
                        });
                    }
                }
                ExtraColumn::Address(v)
            }
        };
        out.extras.push((c, e));
    }
    let lens_ok = out.z.len() == rows
        && out.cols.iter().flatten().all(|c| c.len() == rows)
        && out.extras.iter().all(|(_, e)| e.len() == rows);
    if !lens_ok {
        return Err(Error::corrupt(
            path,
            "columns differ in length from the row count",
        ));
    }
    Ok(out)
}

fn collect_prim<T: arrow_array::types::ArrowPrimitiveType>(
    arrays: &[ArrayRef],
) -> Option<Vec<Option<T::Native>>> {
    let mut v = Vec::new();
    for a in arrays {
        v.extend(a.as_primitive_opt::<T>()?.iter());
    }
    Some(v)
}

/// Reads a whole bin file: every schema field and every user-defined column (used to merge
/// late records into a bin already on disk).
pub fn read_all(path: &Path) -> Result<(Batch, FileMeta, BinStats)> {
    let (meta, stats) = read_meta(path)?;
    let fields: Vec<Field> = FIELDS.iter().map(|i| i.field).collect();
    let names: Vec<&str> = meta.custom.fields.iter().map(|c| c.name.as_str()).collect();
    let b = read(path, &fields, &names)?;
    Ok((b, meta, stats))
}

/// Writes records to one Parquet file in the bin files' column mapping, batch by batch (for
/// exports): `link` (string), the chosen schema fields, the chosen user-defined elements,
/// `sample_z`, then DOUBLE columns the caller computes per record (e.g. estimated weights).
///
/// Memory holds one row group (up to 2^20 rows), not the file. The file carries no
/// `flowdrill.*` metadata: it is not a bin file and a store does not read it as one.
pub struct ExportWriter<W: std::io::Write + Send> {
    inner: ArrowWriter<W>,
    schema: Arc<Schema>,
    fields: Vec<Field>,
    custom: Vec<CustomField>,
    doubles: usize,
    target: std::path::PathBuf,
}

impl<W: std::io::Write + Send> std::fmt::Debug for ExportWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportWriter")
            .field("target", &self.target)
            .field("columns", &self.schema.fields().len())
            .finish()
    }
}

/// The column of an export that names each record's link.
pub const LINK_COLUMN: &str = "link";

impl<W: std::io::Write + Send> ExportWriter<W> {
    /// A writer of `fields` (each loaded in every batch written), the user-defined elements of
    /// `custom` (null where a batch lacks one) and the DOUBLE columns `doubles` into `w`;
    /// `target` names the output in error messages.
    pub fn new(
        w: W,
        target: &Path,
        fields: &[Field],
        custom: &CustomFields,
        doubles: &[&str],
    ) -> Result<ExportWriter<W>> {
        check_custom(custom)?;
        let mut columns = vec![AField::new(LINK_COLUMN, DataType::Utf8, false)];
        columns.extend(fields.iter().flat_map(|f| schema_fields(f.info())));
        columns.extend(custom.fields.iter().map(extra_field));
        columns.push(AField::new(Z_COLUMN, DataType::Int64, false));
        columns.extend(
            doubles
                .iter()
                .map(|d| AField::new(*d, DataType::Float64, false)),
        );
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|o| o.name() == c.name()) {
                return Err(Error::InvalidArgument(format!(
                    "column {} is chosen twice",
                    c.name()
                )));
            }
        }
        let schema = Arc::new(Schema::new(columns));
        let infos: Vec<flowdrill_model::FieldInfo> = fields.iter().map(|f| *f.info()).collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| arrow_err("zstd level", e))?,
            ))
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from(LINK_COLUMN), true);
        let props = column_props(props, &infos, custom)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_max_row_group_row_count(Some(1 << 20))
            .set_created_by(format!("flowdrill-store {}", env!("CARGO_PKG_VERSION")))
            .build();
        let opts = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        let inner = ArrowWriter::try_new_with_options(w, schema.clone(), opts)
            .map_err(|e| write_err(target, e))?;
        Ok(ExportWriter {
            inner,
            schema,
            fields: fields.to_vec(),
            custom: custom.fields.clone(),
            doubles: doubles.len(),
            target: target.to_path_buf(),
        })
    }

    /// Appends the records of `batch`, all of `link`, with one slice per DOUBLE column.
    pub fn write(&mut self, link: &str, batch: &Batch, doubles: &[&[f64]]) -> Result<()> {
        let n = batch.len;
        if doubles.len() != self.doubles || doubles.iter().any(|d| d.len() != n) {
            return Err(Error::Internal(
                "export: one value per record of every DOUBLE column".into(),
            ));
        }
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        cols.push(Arc::new(arrow_array::StringArray::from_iter_values(
            std::iter::repeat_n(link, n),
        )));
        for &f in &self.fields {
            let c = batch.cols[f as usize].as_ref().ok_or_else(|| {
                Error::Internal(format!("export: column {} was not read", f.name()))
            })?;
            cols.extend(schema_arrays(f.info(), c)?);
        }
        for c in &self.custom {
            cols.push(match batch.extra(&c.name) {
                Some(col) if col.view().kind() == c.kind => extra_array(c, col)?,
                Some(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "user-defined element '{}' changed its type between files; export it from one period at a time",
                        c.name
                    )));
                }
                None => arrow_array::new_null_array(extra_field(c).data_type(), n),
            });
        }
        cols.push(Arc::new(Int64Array::from_iter_values(
            batch.z.iter().map(|&z| to_i64(z)),
        )));
        for d in doubles {
            cols.push(Arc::new(arrow_array::Float64Array::from(d.to_vec())));
        }
        let rb = RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| arrow_err("record batch", e))?;
        self.inner
            .write(&rb)
            .map_err(|e| write_err(&self.target, e))
    }

    /// Writes the footer; returns the output.
    pub fn finish(self) -> Result<W> {
        let target = self.target;
        self.inner.into_inner().map_err(|e| write_err(&target, e))
    }
}

/// An I/O failure of the output as [`Error::Io`] (so that callers see, e.g., a broken pipe);
/// anything else the encoder reports is a bug.
fn write_err(target: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(x) => match x.downcast::<std::io::Error>() {
            Ok(io) => Error::io(target, *io),
            Err(x) => arrow_err(&target.display().to_string(), x),
        },
        other => arrow_err(&target.display().to_string(), other),
    }
}

/// Builders finished after being filled by a closure.
trait Tap: Sized {
    type Out;
    fn tap(self, fill: impl FnOnce(&mut Self)) -> Self::Out;
}
macro_rules! tap_builder {
    ($($b:ty => $a:ty),*) => {$(
        impl Tap for $b {
            type Out = $a;
            fn tap(mut self, fill: impl FnOnce(&mut Self)) -> $a {
                fill(&mut self);
                self.finish()
            }
        }
    )*};
}
tap_builder!(
    UInt64Builder => arrow_array::UInt64Array,
    Int64Builder => Int64Array,
    Float64Builder => arrow_array::Float64Array,
    StringBuilder => arrow_array::StringArray,
    BinaryBuilder => arrow_array::BinaryArray
);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{FixedSizeBinaryArray, Int64Array, RecordBatch, UInt32Array};
    use flowdrill_model::{ColumnSource, FlowRecord};

    /// `recs` with thresholds `z` as a batch, and encoded as the file of a 5-minute bin.
    fn encode_records(recs: &[FlowRecord], z: Vec<u64>) -> (Batch, Vec<u8>) {
        let batch = Batch::from_records(recs, z, &CustomFields::default());
        let mut stats = BinStats::default();
        recs.iter().for_each(|r| stats.add(r, true));
        let meta = FileMeta {
            link: "l".into(),
            level: 0,
            bin_start: 0,
            bin_end: 300_000,
            records_before: recs.len() as u64,
            records_after: recs.len() as u64,
            z_max: batch.sample_z().iter().copied().max().unwrap_or(0),
            bytes_variance: 0.0,
            custom: CustomFields::default(),
        };
        let bytes = encode(&batch, &meta, &stats).unwrap();
        (batch, bytes)
    }

    /// Delta-encoded columns that zstd cannot shrink (random times, sources and byte counts)
    /// are stored raw, the others compressed, in large files (decided on a sample) and small
    /// ones (on the file itself) alike; the same rows make the same file, and read back whole.
    #[test]
    fn incompressible_delta_columns_are_stored_raw() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [40_000u64, 9_000] {
            let recs: Vec<FlowRecord> = (0..n)
                .map(|i| {
                    let r = next();
                    FlowRecord {
                        time_start: 1_704_067_200_000 + r % 300_000,
                        time_end: 1_704_067_200_000 + (r >> 20) % 300_000,
                        src_addr: Addr::from_v4_u32((r >> 32) as u32 | 1),
                        dst_addr: Addr::from_v4_u32(0x0a00_0001),
                        bytes: 40 + (r >> 7) % 1_000_000_000,
                        packets: 1 + i % 3,
                        ..Default::default()
                    }
                })
                .collect();
            let (batch, bytes) = encode_records(&recs, vec![0; recs.len()]);
            assert_eq!(
                bytes,
                encode_records(&recs, vec![0; recs.len()]).1,
                "{n}: deterministic"
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.parquet");
            std::fs::write(&path, &bytes).unwrap();
            let footer = Footer::read(&path, &std::fs::File::open(&path).unwrap(), false).unwrap();
            let raw: Vec<String> = footer
                .arrow
                .metadata()
                .row_group(0)
                .columns()
                .iter()
                .filter(|c| c.compression() == Compression::UNCOMPRESSED)
                .map(|c| c.column_path().string())
                .collect();
            assert_eq!(
                raw,
                ["time_start", "time_end", "src_addr_v4", "bytes"],
                "{n}: raw columns"
            );
            let fields = [
                Field::TimeStart,
                Field::SrcAddr,
                Field::Bytes,
                Field::Packets,
            ];
            let back = read(&path, &fields, &[]).unwrap();
            let rows = |b: &Batch| {
                let mut v: Vec<(u64, u64, u64)> = (0..b.len())
                    .map(|i| {
                        (
                            b.u64s(Field::TimeStart).unwrap()[i],
                            b.u64s(Field::Bytes).unwrap()[i],
                            b.u64s(Field::Packets).unwrap()[i],
                        )
                    })
                    .collect();
                v.sort_unstable();
                v
            };
            assert_eq!(rows(&back), rows(&batch), "{n}: read back");
            let mut src: Vec<u32> = back.addrs_v4(Field::SrcAddr).unwrap().to_vec();
            let mut want: Vec<u32> = recs.iter().map(|r| r.src_addr.v4().unwrap()).collect();
            src.sort_unstable();
            want.sort_unstable();
            assert_eq!(src, want, "{n}: sources");
        }
    }

    /// A column chunk is the same bytes mapped or read; a read past the end of the file is an
    /// error, and an empty file is not mapped.
    #[test]
    fn mapped_and_read_ranges_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = map_file(&file, data.len() as u64).expect("a file maps");
        for (start, n) in [(0, 1), (4095, 2), (5000, 15_000), (19_999, 1), (7, 0)] {
            let read = read_range(&file, start, n).unwrap();
            assert_eq!(&read[..], &data[start as usize..(start + n) as usize]);
            assert_eq!(&map[start as usize..(start + n) as usize], &read[..]);
        }
        let err = read_range(&file, 19_990, 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        std::fs::write(&path, b"").unwrap();
        let empty = std::fs::File::open(&path).unwrap();
        assert!(map_file(&empty, 0).is_none());
    }

    /// A record batch of source addresses in the store's two columns.
    fn addrs(v4: Vec<Option<u32>>, v6: Vec<Option<u128>>) -> RecordBatch {
        let n = v4.len();
        let v6: Vec<Option<[u8; 16]>> = v6.into_iter().map(|a| a.map(u128::to_be_bytes)).collect();
        let v6 = FixedSizeBinaryArray::try_from_sparse_iter_with_size(v6.into_iter(), 16).unwrap();
        RecordBatch::try_from_iter([
            (
                Z_COLUMN,
                Arc::new(Int64Array::from(vec![0i64; n])) as ArrayRef,
            ),
            ("src_addr_v4", Arc::new(UInt32Array::from(v4)) as ArrayRef),
            ("src_addr_v6", Arc::new(v6) as ArrayRef),
        ])
        .unwrap()
    }

    /// Each row's address comes from its family's column (IPv4 when both are set), across
    /// batches; a row in neither family is reported as corrupt, naming the row.
    #[test]
    fn addresses_come_from_their_family_and_a_row_in_neither_is_corrupt() {
        let x = 0x2001_0db8_u128 << 96 | 7;
        let y = 0x2001_0db8_u128 << 96 | 9;
        let good = [
            addrs(vec![Some(1), None, Some(3)], vec![None, Some(x), Some(y)]),
            addrs(vec![None, Some(5)], vec![Some(y), None]),
            addrs(vec![Some(6)], vec![None]),
        ];
        let p = Path::new("t.parquet");
        let b = convert(p, &good, 6, &[Field::SrcAddr], &[]).unwrap();
        let v4 = |a: u32| Addr::from_v4_u32(a).0;
        assert_eq!(
            b.column(Field::SrcAddr).and_then(|c| match c {
                flowdrill_model::ColumnRef::Addr(a) => Some(a.to_vec()),
                _ => None,
            }),
            Some(vec![v4(1), x, v4(3), y, v4(5), v4(6)])
        );
        let bad = [addrs(vec![Some(1), None, None], vec![None, Some(x), None])];
        let e = convert(p, &bad, 3, &[Field::SrcAddr], &[]).unwrap_err();
        assert!(e.to_string().contains("at row 2"), "{e}");
    }

    /// Files whose footer gives some columns' values (no thresholds when unsampled, no IPv6
    /// half when every address is IPv4) read back the same as the others: written, then read
    /// whole and in chunks, with and without IPv6 rows and thresholds.
    #[test]
    fn columns_the_footer_gives_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("fd-format-footer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let x = 0x2001_0db8_u128 << 96 | 7;
        for (i, (v6, sampled)) in [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            let recs: Vec<FlowRecord> = (0..5000u32)
                .map(|j| FlowRecord {
                    src_addr: if v6 && j % 7 == 0 {
                        Addr(x + u128::from(j))
                    } else {
                        Addr::from_v4_u32(0x0a00_0000 + j % 300)
                    },
                    bytes: 40 + u64::from(j % 1000),
                    packets: 1 + u64::from(j % 9),
                    ..Default::default()
                })
                .collect();
            let z: Vec<u64> = (0..5000u64)
                .map(|j| if sampled && j % 3 == 0 { 2000 } else { 0 })
                .collect();
            let path = dir.join(format!("{i}.parquet"));
            std::fs::write(&path, encode_records(&recs, z.clone()).1).unwrap();
            let footer = Footer::read(&path, &std::fs::File::open(&path).unwrap(), false).unwrap();
            let v6_col = footer.arrow.schema().index_of("src_addr_v6").unwrap();
            assert_eq!(all_null(footer.arrow.metadata(), v6_col), !v6, "file {i}");
            let fields = [Field::SrcAddr, Field::Bytes, Field::Packets];
            let whole = read(&path, &fields, &[]).unwrap();
            // An all-IPv4 read keeps the addresses as 4-byte integers.
            assert_eq!(whole.addrs_v4(Field::SrcAddr).is_some(), !v6, "file {i}");
            let mut chunks: Vec<Batch> = Vec::new();
            read_chunks(&path, &fields, &[], 1024, &mut |b| {
                chunks.push(b);
                true
            })
            .unwrap();
            let addrs_of = |b: &Batch| match b.column(Field::SrcAddr) {
                Some(flowdrill_model::ColumnRef::Addr(a)) => a.to_vec(),
                other => panic!("file {i}: {other:?}"),
            };
            let want: Vec<u128> = recs.iter().map(|r| r.src_addr.0).collect();
            let mut got = addrs_of(&whole);
            let mut got_z = whole.sample_z().to_vec();
            // Rows are sorted on write: compare as multisets of (address, threshold).
            let mut w: Vec<(u128, u64)> = want.into_iter().zip(z.iter().copied()).collect();
            let mut g: Vec<(u128, u64)> = got.drain(..).zip(got_z.drain(..)).collect();
            w.sort_unstable();
            g.sort_unstable();
            assert_eq!(g, w, "file {i}: whole");
            let mut c: Vec<(u128, u64)> = chunks
                .iter()
                .flat_map(|b| addrs_of(b).into_iter().zip(b.sample_z().to_vec()))
                .collect();
            c.sort_unstable();
            assert_eq!(c, w, "file {i}: chunks");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
