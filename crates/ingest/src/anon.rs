//! Anonymisation at import, for data that will be shared.
//!
//! Two schemes, applied to source and destination addresses (and the next hop) before records
//! reach the store:
//!
//! - [`Anonymizer::Mask`]: keep only the first `v4`/`v6` bits (Internet2 zeroes the last 11 bits
//!   of IPv4 addresses: `Mask { v4: 21, v6: 64 }`).
//! - [`Anonymizer::PrefixPreserving`]: a keyed, prefix-preserving permutation (the construction
//!   of Xu, Fan, Ammar and Moon behind Crypto-PAn): bit *i* of the output is bit *i* of the
//!   input XOR a pseudo-random function of the key and the input's first *i* bits. Two addresses
//!   that share a k-bit prefix map to outputs that share exactly a k-bit prefix, so prefix
//!   analyses (HHH) keep their shape. The PRF is SipHash-2-4 with a 128-bit key derived from
//!   the user's passphrase; the same key gives the same mapping in every run.
//!
//! IPv4 stays IPv4 (the mapped prefix is not touched) and IPv6 stays IPv6.

use flowdrill_model::{Addr, FlowRecord};
use std::collections::HashMap;

/// How addresses are anonymised.
#[derive(Clone, Debug)]
pub enum Anonymizer {
    /// Keep the first `v4` bits of IPv4 addresses and the first `v6` bits of IPv6 addresses.
    Mask { v4: u8, v6: u8 },
    /// Keyed prefix-preserving permutation; see the module doc.
    PrefixPreserving(PrefixPreserving),
}

impl Anonymizer {
    /// Anonymises the addresses of one record in place.
    pub fn apply(&mut self, r: &mut FlowRecord) {
        r.src_addr = self.addr(r.src_addr);
        r.dst_addr = self.addr(r.dst_addr);
        if !r.next_hop.is_unspecified() {
            r.next_hop = self.addr(r.next_hop);
        }
    }

    pub fn addr(&mut self, a: Addr) -> Addr {
        match self {
            Anonymizer::Mask { v4, v6 } => a.masked(if a.is_v4() { *v4 } else { *v6 }),
            Anonymizer::PrefixPreserving(p) => p.addr(a),
        }
    }
}

/// The keyed prefix-preserving scheme, with a cache of addresses already mapped.
#[derive(Clone, Debug)]
pub struct PrefixPreserving {
    k0: u64,
    k1: u64,
    cache: HashMap<Addr, Addr>,
}

/// Bounds the cache: a month of a backbone's addresses must not grow without limit.
const CACHE_MAX: usize = 1 << 20;

impl PrefixPreserving {
    /// A scheme keyed by `passphrase` (at least 8 characters make a useful key).
    pub fn new(passphrase: &str) -> PrefixPreserving {
        // Derive two 64-bit keys from the passphrase with SipHash under fixed keys.
        let b = passphrase.as_bytes();
        PrefixPreserving {
            k0: siphash24(0x736f_6d65_7073_6575, 0x646f_7261_6e64_6f6d, b),
            k1: siphash24(0x6c79_6765_6e65_7261, 0x7465_6462_7974_6573, b),
            cache: HashMap::new(),
        }
    }

    pub fn addr(&mut self, a: Addr) -> Addr {
        if let Some(&m) = self.cache.get(&a) {
            return m;
        }
        let out = match a.v4() {
            Some(v) => Addr::from_v4_u32(self.permute(v as u128, 32) as u32),
            None => Addr(self.permute(a.0, 128)),
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(a, out);
        out
    }

    /// Output bit i = input bit i XOR PRF(first i bits of the input), most significant first.
    fn permute(&self, x: u128, bits: u32) -> u128 {
        let mut out = 0u128;
        for i in 0..bits {
            let shift = bits - 1 - i;
            let prefix = if i == 0 { 0 } else { x >> (bits - i) };
            let mut msg = [0u8; 17];
            msg[..16].copy_from_slice(&prefix.to_be_bytes());
            msg[16] = i as u8;
            let flip = siphash24(self.k0, self.k1, &msg) & 1;
            let bit = ((x >> shift) & 1) ^ flip as u128;
            out |= bit << shift;
        }
        out
    }
}

/// SipHash-2-4 (Aumasson and Bernstein), used here as a keyed PRF.
fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v0 = 0x736f_6d65_7073_6575 ^ k0;
    let mut v1 = 0x646f_7261_6e64_6f6d ^ k1;
    let mut v2 = 0x6c79_6765_6e65_7261 ^ k0;
    let mut v3 = 0x7465_6462_7974_6573 ^ k1;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    };
    let chunks = msg.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        let m = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let mut last = (msg.len() as u64 & 0xff) << 56;
    for (i, b) in tail.iter().enumerate() {
        last |= (*b as u64) << (8 * i);
    }
    v3 ^= last;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= last;
    v2 ^= 0xff;
    for _ in 0..4 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_the_reference_vector() {
        // The paper's test vector: key 00..0f, message 00..0e -> a129ca6149be45e5.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn masking_zeroes_the_host_bits() {
        let mut a = Anonymizer::Mask { v4: 21, v6: 64 };
        assert_eq!(
            a.addr("10.1.2.255".parse().unwrap()).to_string(),
            "10.1.0.0"
        );
        assert_eq!(
            a.addr("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
            "2001:db8:1:2::"
        );
    }

    fn common_prefix(a: u128, b: u128, bits: u32) -> u32 {
        let x = (a ^ b) << (128 - bits);
        x.leading_zeros().min(bits)
    }

    #[test]
    fn prefix_preserving_keeps_shared_prefix_lengths_exactly() {
        let mut p = PrefixPreserving::new("a test passphrase");
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let a = next() as u32;
            // b shares a random-length prefix with a.
            let k = (next() % 33) as u32;
            let mask = if k == 0 { 0 } else { u32::MAX << (32 - k) };
            let b = (a & mask) | (next() as u32 & !mask);
            let (pa, pb) = (
                p.addr(Addr::from_v4_u32(a)).v4().unwrap(),
                p.addr(Addr::from_v4_u32(b)).v4().unwrap(),
            );
            assert_eq!(
                common_prefix(a as u128, b as u128, 32),
                common_prefix(pa as u128, pb as u128, 32),
                "{a:08x} {b:08x}"
            );
        }
        let v6: Addr = "2001:db8::1".parse().unwrap();
        let out = p.addr(v6);
        assert!(!out.is_v4());
        assert_ne!(out, v6);
        // Deterministic for a key, different across keys.
        let mut q = PrefixPreserving::new("a test passphrase");
        assert_eq!(q.addr(v6), out);
        let mut r = PrefixPreserving::new("another passphrase");
        assert_ne!(r.addr(v6), out);
    }
}
