//! Test helpers shared by the modules' tests: seeded random inputs with realistic clustering.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub(crate) fn v4(s: &str) -> u128 {
    s.parse::<flowdrill_model::Addr>().expect("test address").0
}

/// `n` addresses drawn from a few clustered IPv4 blocks (so that prefixes share traffic), with
/// an IPv6 address now and then when `with_v6`.
pub(crate) fn clustered_addrs(r: &mut StdRng, n: usize, with_v6: bool) -> Vec<u128> {
    let blocks: Vec<u32> = (0..r.random_range(1..6))
        .map(|_| r.random::<u32>() & 0xffff_ff00)
        .collect();
    (0..n)
        .map(|_| {
            if with_v6 && r.random_bool(0.15) {
                let hi: u128 = 0x2001_0db8 << 96;
                hi | (r.random_range(0..4u128) << 64) | r.random_range(0..8u128)
            } else {
                let b = blocks[r.random_range(0..blocks.len())];
                let spread = [4u32, 64, 1024, 1 << 20][r.random_range(0..4)];
                flowdrill_model::Addr::from_v4_u32(b.wrapping_add(r.random_range(0..spread))).0
            }
        })
        .collect()
}

/// Integer-valued weights (exact in `f64` whatever the summation order), heavy-tailed.
pub(crate) fn weights(r: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            if r.random_bool(0.1) {
                r.random_range(100..2000) as f64
            } else {
                r.random_range(1..60) as f64
            }
        })
        .collect()
}
