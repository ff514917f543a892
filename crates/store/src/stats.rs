//! Exact per-bin statistics, taken before sampling: counters per protocol and HyperLogLog
//! sketches of distinct source and destination addresses and ports.
//!
//! Sampling keeps bytes unbiased but makes flow counts and fan-out noisy; these statistics keep
//! them exact (counters) or within 1.6 % (sketches, p = 12). They travel in each bin file's
//! key-value metadata (`flowdrill.stats` as JSON, `flowdrill.hll.*` as base64 of the zstd'd
//! sketch), so a bin file is self-contained, and they merge: counters add, sketches take the
//! register-wise maximum (a coarser level's bin holds the merge of its sub-bins).

use crate::error::{Error, Result};
use flowdrill_model::FlowRecord;
use flowdrill_model::hll::{Hll, hash_u64, hash_u128};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Exact counters of one class of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records (parts of flows, after splitting at bin boundaries).
    pub records: u64,
    /// Flows that start in the bin (a flow split over bins counts once, where it starts).
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.records += o.records;
        self.flows += o.flows;
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// The statistics of one bin before sampling.
#[derive(Clone, Debug, PartialEq)]
pub struct BinStats {
    pub total: Counters,
    /// Counters by IP protocol number.
    pub by_proto: BTreeMap<u8, Counters>,
    pub src_addrs: Hll,
    pub dst_addrs: Hll,
    pub src_ports: Hll,
    pub dst_ports: Hll,
    /// The IPv6 addresses alone (`src_addrs` and `dst_addrs` count both families), so that a
    /// query can size its tables for each family; `None` in files written before they were.
    pub src_addrs_v6: Option<Hll>,
    pub dst_addrs_v6: Option<Hll>,
}

impl Default for BinStats {
    fn default() -> BinStats {
        BinStats {
            total: Counters::default(),
            by_proto: BTreeMap::new(),
            src_addrs: Hll::new(),
            dst_addrs: Hll::new(),
            src_ports: Hll::new(),
            dst_ports: Hll::new(),
            src_addrs_v6: Some(Hll::new()),
            dst_addrs_v6: Some(Hll::new()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StatsJson {
    total: Counters,
    /// (protocol, counters)
    by_proto: Vec<(u8, Counters)>,
}

/// The metadata keys of the sketches, in a fixed order.
pub(crate) const HLL_KEYS: [&str; 4] = [
    "flowdrill.hll.src_addr",
    "flowdrill.hll.dst_addr",
    "flowdrill.hll.src_port",
    "flowdrill.hll.dst_port",
];
/// The metadata keys of the IPv6-only sketches, for `BinStats::src_addrs_v6` and
/// `dst_addrs_v6` (absent from older files).
pub(crate) const HLL_V6_KEYS: [&str; 2] =
    ["flowdrill.hll.src_addr_v6", "flowdrill.hll.dst_addr_v6"];
pub(crate) const STATS_KEY: &str = "flowdrill.stats";

/// One of a bin's sketches (see [`BinStats`]), in the order of its metadata keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sketch {
    SrcAddrs,
    DstAddrs,
    SrcPorts,
    DstPorts,
    /// The IPv6 source or destination addresses alone (files written before these sketches
    /// have none).
    SrcAddrsV6,
    DstAddrsV6,
}

impl Sketch {
    fn key(self) -> &'static str {
        match self {
            Sketch::SrcAddrsV6 => HLL_V6_KEYS[0],
            Sketch::DstAddrsV6 => HLL_V6_KEYS[1],
            other => HLL_KEYS[other as usize],
        }
    }
}

/// Decodes the sketch stored under metadata key `k` (base64 of the zstd'd registers).
fn decode_sketch(k: &str, b64: &str) -> std::result::Result<Hll, String> {
    let z = base64_decode(b64).ok_or_else(|| format!("{k}: bad base64"))?;
    let raw = zstd::bulk::decompress(&z, 1 << 20).map_err(|e| format!("{k}: {e}"))?;
    Hll::from_bytes(&raw).map_err(|e| format!("{k}: {e}"))
}

/// Reads one sketch back from metadata (`get` looks a key up) without decoding the others:
/// `None` when the file has no such sketch (the IPv6-only ones of older files).
pub(crate) fn sketch_if_any<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    which: Sketch,
) -> std::result::Result<Option<Hll>, String> {
    let k = which.key();
    get(k).map(|b64| decode_sketch(k, b64)).transpose()
}

impl BinStats {
    /// Counts one record; `starts_flow` is false for the second and later parts of a split
    /// flow.
    #[inline]
    pub fn add(&mut self, r: &FlowRecord, starts_flow: bool) {
        let c = Counters {
            records: 1,
            flows: starts_flow as u64,
            packets: r.packets,
            bytes: r.bytes,
        };
        self.total.add(&c);
        self.by_proto.entry(r.proto).or_default().add(&c);
        let (hs, hd) = (hash_u128(r.src_addr.0), hash_u128(r.dst_addr.0));
        self.src_addrs.insert_hash(hs);
        self.dst_addrs.insert_hash(hd);
        if let (false, Some(h)) = (r.src_addr.is_v4(), self.src_addrs_v6.as_mut()) {
            h.insert_hash(hs);
        }
        if let (false, Some(h)) = (r.dst_addr.is_v4(), self.dst_addrs_v6.as_mut()) {
            h.insert_hash(hd);
        }
        self.src_ports.insert_hash(hash_u64(r.src_port as u64));
        self.dst_ports.insert_hash(hash_u64(r.dst_port as u64));
    }

    /// Adds another bin's statistics (counters add, sketches merge).
    pub fn merge(&mut self, o: &BinStats) -> Result<()> {
        self.total.add(&o.total);
        for (p, c) in &o.by_proto {
            self.by_proto.entry(*p).or_default().add(c);
        }
        let m = |a: &mut Hll, b: &Hll| a.merge(b).map_err(|e| Error::Internal(e.to_string()));
        m(&mut self.src_addrs, &o.src_addrs)?;
        m(&mut self.dst_addrs, &o.dst_addrs)?;
        m(&mut self.src_ports, &o.src_ports)?;
        m(&mut self.dst_ports, &o.dst_ports)?;
        // Known for the merge only when known for both.
        for (a, b) in [
            (&mut self.src_addrs_v6, &o.src_addrs_v6),
            (&mut self.dst_addrs_v6, &o.dst_addrs_v6),
        ] {
            match (a.as_mut(), b) {
                (Some(x), Some(y)) => m(x, y)?,
                _ => *a = None,
            }
        }
        Ok(())
    }

    fn sketches(&self) -> [&Hll; 4] {
        [
            &self.src_addrs,
            &self.dst_addrs,
            &self.src_ports,
            &self.dst_ports,
        ]
    }

    /// The metadata entries that carry these statistics.
    pub(crate) fn to_metadata(&self) -> Vec<(String, String)> {
        let json = StatsJson {
            total: self.total,
            by_proto: self.by_proto.iter().map(|(p, c)| (*p, *c)).collect(),
        };
        let mut out = vec![(
            STATS_KEY.to_string(),
            serde_json::to_string(&json).expect("counters serialise"),
        )];
        let v6 = [&self.src_addrs_v6, &self.dst_addrs_v6];
        let known = HLL_V6_KEYS
            .iter()
            .zip(v6)
            .filter_map(|(k, h)| Some((k, h.as_ref()?)));
        for (k, h) in HLL_KEYS.iter().zip(self.sketches()).chain(known) {
            let z = zstd::bulk::compress(&h.to_bytes(), 3).expect("in-memory zstd");
            out.push((k.to_string(), base64_encode(&z)));
        }
        out
    }

    /// Reads statistics back from metadata; `get` looks a key up.
    pub(crate) fn from_metadata<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> std::result::Result<BinStats, String> {
        let json: StatsJson = serde_json::from_str(get(STATS_KEY).ok_or("no statistics")?)
            .map_err(|e| format!("statistics: {e}"))?;
        let mut hlls = Vec::with_capacity(4);
        for k in HLL_KEYS {
            hlls.push(decode_sketch(k, get(k).ok_or_else(|| format!("no {k}"))?)?);
        }
        let mut it = hlls.into_iter();
        let mut next = || it.next().expect("four sketches");
        Ok(BinStats {
            total: json.total,
            by_proto: json.by_proto.into_iter().collect(),
            src_addrs: next(),
            dst_addrs: next(),
            src_ports: next(),
            dst_ports: next(),
            src_addrs_v6: sketch_if_any(&get, Sketch::SrcAddrsV6)?,
            dst_addrs_v6: sketch_if_any(&get, Sketch::DstAddrsV6)?,
        })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), so any tool can decode the sketches.
pub(crate) fn base64_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..20usize {
            let b: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&b)).unwrap(), b);
        }
        assert_eq!(base64_encode(b"flow"), "Zmxvdw==");
        assert!(base64_decode("a$b").is_none());
    }

    #[test]
    fn stats_count_exactly_and_survive_metadata() {
        let mut s = BinStats::default();
        for i in 0..1000u32 {
            let r = FlowRecord {
                proto: if i % 4 == 0 { 17 } else { 6 },
                src_addr: flowdrill_model::Addr::from_v4_u32(i % 100),
                dst_port: (i % 10) as u16,
                packets: 2,
                bytes: 100,
                ..Default::default()
            };
            s.add(&r, i % 2 == 0);
        }
        assert_eq!(s.total.records, 1000);
        assert_eq!(s.total.flows, 500);
        assert_eq!(s.by_proto[&17].bytes, 25_000);
        assert_eq!(s.by_proto[&6].packets, 1500);
        assert!((s.src_addrs.estimate() - 100.0).abs() < 3.0);
        assert!((s.dst_ports.estimate() - 10.0).abs() < 1.0);
        let md = s.to_metadata();
        let back =
            BinStats::from_metadata(|k| md.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str()))
                .unwrap();
        assert_eq!(back, s);
        let mut twice = s.clone();
        twice.merge(&s).unwrap();
        assert_eq!(twice.total.bytes, 200_000);
        assert_eq!(twice.src_addrs, s.src_addrs);
    }

    /// The IPv6-only sketches count the IPv6 addresses of each side and nothing else; a file
    /// written before them reads as `None`, and a merge with such a file is `None` too.
    #[test]
    fn ipv6_sketches_count_one_family_and_old_files_have_none() {
        let mut s = BinStats::default();
        for i in 0..3000u32 {
            let v6 = flowdrill_model::Addr((0x2001_0db8u128 << 96) | u128::from(i / 3 % 300));
            let v4 = flowdrill_model::Addr::from_v4_u32(i % 1000);
            let r = FlowRecord {
                src_addr: if i % 3 == 0 { v6 } else { v4 },
                dst_addr: v4,
                ..Default::default()
            };
            s.add(&r, true);
        }
        let est = |h: &Option<Hll>| h.as_ref().unwrap().estimate();
        assert!(
            (est(&s.src_addrs_v6) - 300.0).abs() < 10.0,
            "{}",
            est(&s.src_addrs_v6)
        );
        assert_eq!(est(&s.dst_addrs_v6), 0.0);
        assert!((s.src_addrs.estimate() - 1300.0).abs() < 40.0);
        let md = s.to_metadata();
        let get = |k: &str| md.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(BinStats::from_metadata(get).unwrap(), s);
        assert!(sketch_if_any(get, Sketch::SrcAddrsV6).unwrap() == s.src_addrs_v6);
        // An older file: no IPv6 sketches.
        let old = |k: &str| {
            if HLL_V6_KEYS.contains(&k) {
                None
            } else {
                get(k)
            }
        };
        let back = BinStats::from_metadata(old).unwrap();
        assert_eq!(
            (back.src_addrs_v6.is_none(), back.dst_addrs_v6.is_none()),
            (true, true)
        );
        assert!(sketch_if_any(old, Sketch::SrcAddrsV6).unwrap().is_none());
        assert!(sketch_if_any(old, Sketch::SrcAddrs).unwrap().is_some());
        let mut merged = s.clone();
        merged.merge(&back).unwrap();
        assert!(merged.src_addrs_v6.is_none());
        let mut both = s.clone();
        both.merge(&s).unwrap();
        assert_eq!(both.src_addrs_v6, s.src_addrs_v6);
    }
}
