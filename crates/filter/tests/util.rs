//! Helpers shared by the integration tests: where the real data is, reading nfdump CSV, and
//! a comparable key for flow records.

use flowdrill_model::FlowRecord;
use std::path::PathBuf;

/// The shared data folder: `$FLOWDRILL_DATA`, else `../../../shared/data` from this crate.
/// `None` (after printing "SKIPPED: ...") when it is absent.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("FLOWDRILL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        });
    if dir.join("reference").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {test}: no test data at {} (set FLOWDRILL_DATA)",
            dir.display()
        );
        None
    }
}

/// Reads nfdump CSV text with the ingest crate's reader.
pub fn read_nfcsv(bytes: &[u8]) -> Vec<FlowRecord> {
    flowdrill_ingest::nfcsv::parse(bytes).expect("nfdump CSV parses")
}

/// Reads a gzip-compressed nfdump CSV file.
pub fn read_nfcsv_gz(path: &std::path::Path) -> Vec<FlowRecord> {
    let f = std::fs::File::open(path).expect("open reference file");
    flowdrill_ingest::nfcsv::parse(std::io::BufReader::new(flate2::read::GzDecoder::new(f)))
        .expect("reference CSV parses")
}

/// Every schema field of a record, as a totally ordered key (records compare as multisets).
pub type Key = [u128; 21];

pub fn key(r: &FlowRecord) -> Key {
    [
        r.time_start as u128,
        r.time_end as u128,
        r.src_addr.0,
        r.dst_addr.0,
        r.src_port as u128,
        r.dst_port as u128,
        r.proto as u128,
        r.tcp_flags as u128,
        r.tos as u128,
        r.packets as u128,
        r.bytes as u128,
        r.in_if as u128,
        r.out_if as u128,
        r.src_as as u128,
        r.dst_as as u128,
        r.src_mask as u128,
        r.dst_mask as u128,
        r.next_hop.0,
        r.exporter.0,
        r.domain as u128,
        r.sampling_rate as u128,
    ]
}

/// A tiny deterministic generator (xorshift64*), so that randomized tests are reproducible
/// without a dependency.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The registry of user-defined elements the tests use: one element of each kind, and one
/// named like an nfdump keyword the schema lacks (`vlan`).
pub fn registry() -> flowdrill_model::CustomFields {
    use flowdrill_model::{CustomField, CustomFields, CustomKind};
    let kinds = [
        ("rtt_us", CustomKind::Unsigned),
        ("delta", CustomKind::Signed),
        ("loss", CustomKind::Float),
        ("app", CustomKind::String),
        ("tag", CustomKind::Bytes),
        ("peer", CustomKind::Address),
        ("vlan", CustomKind::Unsigned),
    ];
    CustomFields {
        fields: kinds
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| CustomField {
                enterprise: 6871,
                id: 100 + i as u16,
                name: name.to_string(),
                kind: *kind,
            })
            .collect(),
    }
}
