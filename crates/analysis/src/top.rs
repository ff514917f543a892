//! Group-by aggregation and top-N: nfdump's `-A` and `-s key/metric -n N`.
//!
//! This module owns summing weights, variances and record counts per key, and choosing the N
//! largest groups. A key is anything `Copy + Eq + Hash + Ord`: a `u32` AS number, a `u16` port,
//! a `u128` address (masked to a prefix with [`mask_addrs`] first), or a tuple of these for a
//! composite key.
//!
//! **Tie order.** [`top_n`] sorts by the chosen metric descending, as nfdump does, and breaks
//! ties by the key ascending, so the result is the same on every run and for every input order.
//!
//! Fast path: hash aggregation (hashbrown with foldhash's fixed-seed hasher) over contiguous
//! slices, one map per worker thread (at most 2), merged at the end.

use crate::{AnalysisError, FastMap, Weights, fast_map, split_ranges, workers};
use flowdrill_model::Addr;
use std::hash::Hash;

/// One group: its key and what its records add up to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Group<K> {
    pub key: K,
    /// Σ weights of the group's records.
    pub weight: f64,
    /// Σ variance terms (0 for exact data).
    pub variance: f64,
    /// Number of input records (flows, for unsampled flow records).
    pub records: u64,
}

/// What [`top_n`] ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    Weight,
    Records,
}

#[derive(Clone, Copy, Default)]
struct Acc {
    weight: f64,
    variance: f64,
    records: u64,
}

fn aggregate_chunk<K: Copy + Eq + Hash>(
    n: usize,
    key: &impl Fn(usize) -> K,
    w: Weights<'_>,
    range: std::ops::Range<usize>,
) -> FastMap<K, Acc> {
    let cap = 1024.min(n);
    let keys = range.clone().map(key);
    match w.variance {
        // Exact data: a smaller entry (no variance) keeps more of the map in cache.
        None => {
            let mut m: FastMap<K, (f64, u64)> = fast_map(cap);
            for (k, &x) in keys.zip(&w.weight[range]) {
                let e = m.entry(k).or_insert((0.0, 0));
                e.0 += x;
                e.1 += 1;
            }
            m.into_iter()
                .map(|(k, (weight, records))| {
                    (
                        k,
                        Acc {
                            weight,
                            variance: 0.0,
                            records,
                        },
                    )
                })
                .collect()
        }
        Some(v) => {
            let mut m: FastMap<K, Acc> = fast_map(cap);
            for ((k, &x), &y) in keys.zip(&w.weight[range.clone()]).zip(&v[range]) {
                let e = m.entry(k).or_default();
                e.weight += x;
                e.variance += y;
                e.records += 1;
            }
            m
        }
    }
}

/// Groups records `0..n` by `key(i)`; returns the groups sorted by key.
pub fn aggregate_by<K, F>(n: usize, key: F, w: Weights<'_>) -> Result<Vec<Group<K>>, AnalysisError>
where
    K: Copy + Eq + Hash + Ord + Send,
    F: Fn(usize) -> K + Sync,
{
    w.check(n)?;
    let ranges = split_ranges(n, workers(n));
    let maps: Vec<FastMap<K, Acc>> = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .skip(1)
            .map(|r| {
                let (r, key) = (r.clone(), &key);
                s.spawn(move || aggregate_chunk(n, key, w, r))
            })
            .collect();
        let mut maps: Vec<_> = ranges
            .first()
            .map(|r| aggregate_chunk(n, &key, w, r.clone()))
            .into_iter()
            .collect();
        maps.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("worker panicked")),
        );
        maps
    });
    let mut maps = maps.into_iter();
    let mut all = maps.next().unwrap_or_else(|| fast_map(0));
    for m in maps {
        for (k, a) in m {
            let e = all.entry(k).or_default();
            e.weight += a.weight;
            e.variance += a.variance;
            e.records += a.records;
        }
    }
    let mut out: Vec<Group<K>> = all
        .into_iter()
        .map(|(key, a)| Group {
            key,
            weight: a.weight,
            variance: a.variance,
            records: a.records,
        })
        .collect();
    out.sort_unstable_by_key(|g| g.key);
    Ok(out)
}

/// Groups records by `keys[i]`; returns the groups sorted by key.
pub fn aggregate<K>(keys: &[K], w: Weights<'_>) -> Result<Vec<Group<K>>, AnalysisError>
where
    K: Copy + Eq + Hash + Ord + Send + Sync,
{
    aggregate_by(keys.len(), |i| keys[i], w)
}

/// Addresses masked to their prefix: IPv4 to `v4_len` bits, IPv6 to `v6_len` (nfdump's
/// `-A srcip4/24,srcip6/64`). The result is a key column for [`aggregate`].
pub fn mask_addrs(addrs: &[u128], v4_len: u8, v6_len: u8) -> Vec<u128> {
    addrs
        .iter()
        .map(|&a| {
            let a = Addr(a);
            a.masked(if a.is_v4() { v4_len } else { v6_len }).0
        })
        .collect()
}

/// The `n` largest groups by `rank`, largest first; ties by key ascending.
pub fn top_n<K: Ord>(mut groups: Vec<Group<K>>, n: usize, rank: Rank) -> Vec<Group<K>> {
    let cmp = |a: &Group<K>, b: &Group<K>| {
        let by = match rank {
            Rank::Weight => b.weight.total_cmp(&a.weight),
            Rank::Records => b.records.cmp(&a.records),
        };
        by.then_with(|| a.key.cmp(&b.key))
    };
    if n < groups.len() {
        if n > 0 {
            groups.select_nth_unstable_by(n - 1, cmp);
        }
        groups.truncate(n);
    }
    groups.sort_unstable_by(cmp);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{clustered_addrs, rng, weights};
    use rand::RngExt;
    use std::collections::BTreeMap;

    /// Naive reference: a BTreeMap and a full sort.
    fn naive<K: Ord + Copy>(keys: &[K], w: &[f64], var: &[f64]) -> Vec<Group<K>> {
        let mut m: BTreeMap<K, (f64, f64, u64)> = BTreeMap::new();
        for i in 0..keys.len() {
            let e = m.entry(keys[i]).or_default();
            e.0 += w[i];
            e.1 += var[i];
            e.2 += 1;
        }
        m.into_iter()
            .map(|(key, (weight, variance, records))| Group {
                key,
                weight,
                variance,
                records,
            })
            .collect()
    }

    #[test]
    fn aggregation_matches_the_naive_reference() {
        for seed in 0..100 {
            let mut r = rng(seed);
            // Large enough sometimes to take the two-thread path.
            let n = if seed.is_multiple_of(10) {
                250_000
            } else {
                r.random_range(0..500)
            };
            let keys: Vec<u32> = (0..n).map(|_| r.random_range(0..50u32)).collect();
            let w = weights(&mut r, n);
            let var: Vec<f64> = w.iter().map(|x| (x / 2.0).floor()).collect();
            let got = aggregate(&keys, Weights::sampled(&w, &var)).unwrap();
            assert_eq!(got, naive(&keys, &w, &var), "seed {seed}");
            let exact = aggregate(&keys, Weights::exact(&w)).unwrap();
            let zero = vec![0.0; n];
            assert_eq!(exact, naive(&keys, &w, &zero), "seed {seed}");
        }
    }

    #[test]
    fn top_n_is_the_head_of_a_full_sort_with_ties_by_key() {
        for seed in 0..100 {
            let mut r = rng(seed);
            let n = r.random_range(0..300);
            // Few distinct weights: many ties.
            let keys: Vec<u16> = (0..n).map(|_| r.random_range(0..100u16)).collect();
            let w: Vec<f64> = (0..n).map(|_| r.random_range(1..4) as f64).collect();
            let groups = aggregate(&keys, Weights::exact(&w)).unwrap();
            for rank in [Rank::Weight, Rank::Records] {
                let mut full = groups.clone();
                full.sort_by(|a, b| {
                    let m = match rank {
                        Rank::Weight => b.weight.partial_cmp(&a.weight).unwrap(),
                        Rank::Records => b.records.cmp(&a.records),
                    };
                    m.then(a.key.cmp(&b.key))
                });
                let k = r.random_range(0..20);
                full.truncate(k);
                assert_eq!(top_n(groups.clone(), k, rank), full, "seed {seed}");
            }
        }
    }

    #[test]
    fn composite_and_prefix_keys_group_as_expected() {
        let mut r = rng(5);
        let a = clustered_addrs(&mut r, 400, true);
        let w = weights(&mut r, 400);
        let masked = mask_addrs(&a, 24, 48);
        for (&x, &m) in a.iter().zip(&masked) {
            let len = if Addr(x).is_v4() { 24 } else { 48 };
            assert_eq!(Addr(m), Addr(x).masked(len));
        }
        let by_prefix = aggregate(&masked, Weights::exact(&w)).unwrap();
        let total: f64 = by_prefix.iter().map(|g| g.weight).sum();
        assert_eq!(total, w.iter().sum::<f64>());
        let ports: Vec<u16> = (0..400).map(|i| [80u16, 443][i % 2]).collect();
        let composite = aggregate_by(400, |i| (masked[i], ports[i]), Weights::exact(&w)).unwrap();
        let pairs: Vec<(u128, u16)> = masked.iter().copied().zip(ports.iter().copied()).collect();
        assert_eq!(composite, naive(&pairs, &w, &vec![0.0; 400]));
    }

    #[test]
    fn mismatched_columns_are_refused() {
        assert!(matches!(
            aggregate(&[1u32, 2], Weights::exact(&[1.0])),
            Err(AnalysisError::LengthMismatch { .. })
        ));
    }
}
