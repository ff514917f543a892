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

impl Acc {
    #[inline]
    fn add(&mut self, weight: f64, variance: f64, records: u64) {
        self.weight += weight;
        self.variance += variance;
        self.records += records;
    }
}

/// Records aggregated directly before [`aggregate_chunk`] decides whether to partition.
const PROBE: usize = 1 << 16;
/// More distinct keys than this in the probe (half of it distinct: a near-uniform key of high
/// cardinality): one map would outgrow the cache, so partition. Skewed keys stay on one map,
/// whose hot entries are cached anyway.
const PROBE_DISTINCT: usize = 1 << 15;
/// Hash partitions of the partitioned path (each partition's map stays cache-resident).
const PARTITION_BITS: u32 = 6;

/// A per-key accumulator. Exact data uses [`ExactAcc`]: without a variance the map entry is
/// smaller, and more of the map stays in cache.
trait Accumulate: Default + Copy {
    fn add_one(&mut self, weight: f64, variance: f64);
    fn into_acc(self) -> Acc;
}

impl Accumulate for Acc {
    #[inline]
    fn add_one(&mut self, weight: f64, variance: f64) {
        self.add(weight, variance, 1);
    }
    fn into_acc(self) -> Acc {
        self
    }
}

#[derive(Clone, Copy, Default)]
struct ExactAcc {
    weight: f64,
    records: u64,
}

impl Accumulate for ExactAcc {
    #[inline]
    fn add_one(&mut self, weight: f64, _variance: f64) {
        self.weight += weight;
        self.records += 1;
    }
    fn into_acc(self) -> Acc {
        Acc {
            weight: self.weight,
            variance: 0.0,
            records: self.records,
        }
    }
}

/// Adds `(key, weight, variance)` items into `m` (a count of 1 each).
fn add_all<K: Copy + Eq + Hash, A: Accumulate>(
    m: &mut FastMap<K, A>,
    items: impl Iterator<Item = (K, f64, f64)>,
) {
    for (k, x, y) in items {
        m.entry(k).or_default().add_one(x, y);
    }
}

/// One worker's groups (unsorted, each key once).
///
/// Aggregates directly into one hash map; but when the first [`PROBE`] records already hold
/// more than [`PROBE_DISTINCT`] keys, the rest is first scattered into 2^[`PARTITION_BITS`]
/// partitions by key hash and each partition aggregated on its own, so that the map being
/// updated fits in cache (one big map would miss on nearly every record).
fn aggregate_chunk<K: Copy + Eq + Hash, A: Accumulate>(
    mut items: impl Iterator<Item = (K, f64, f64)>,
    len: usize,
) -> Vec<(K, Acc)> {
    let mut m: FastMap<K, A> = fast_map(1024.min(len));
    add_all(&mut m, items.by_ref().take(PROBE));
    if len <= PROBE || m.len() <= PROBE_DISTINCT {
        add_all(&mut m, items);
        return m.into_iter().map(|(k, a)| (k, a.into_acc())).collect();
    }
    let hasher = m.hasher().clone();
    let shift = 64 - PARTITION_BITS;
    let mut parts: Vec<Vec<(K, f64, f64)>> = (0..1 << PARTITION_BITS)
        .map(|_| Vec::with_capacity(len >> PARTITION_BITS))
        .collect();
    for (k, x, y) in items {
        parts[(std::hash::BuildHasher::hash_one(&hasher, k) >> shift) as usize].push((k, x, y));
    }
    let mut out: Vec<(K, Acc)> = m.into_iter().map(|(k, a)| (k, a.into_acc())).collect();
    let mut pm: FastMap<K, A> = fast_map(0);
    for p in parts {
        add_all(&mut pm, p.into_iter());
        out.extend(pm.drain().map(|(k, a)| (k, a.into_acc())));
    }
    out
}

/// Runs [`aggregate_chunk`] over `ranges` on scoped threads, then merges by sorting.
fn aggregate_ranges<K, I, F>(
    n: usize,
    items: F,
    w: Weights<'_>,
) -> Result<Vec<Group<K>>, AnalysisError>
where
    K: Copy + Eq + Hash + Ord + Send,
    I: Iterator<Item = (K, f64, f64)>,
    F: Fn(std::ops::Range<usize>) -> I + Sync,
{
    w.check(n)?;
    let ranges = split_ranges(n, workers(n));
    let exact = w.variance.is_none();
    let run = |r: &std::ops::Range<usize>| {
        if exact {
            aggregate_chunk::<K, ExactAcc>(items(r.clone()), r.len())
        } else {
            aggregate_chunk::<K, Acc>(items(r.clone()), r.len())
        }
    };
    let chunks: Vec<Vec<(K, Acc)>> = std::thread::scope(|s| {
        let handles: Vec<_> = ranges.iter().skip(1).map(|r| s.spawn(|| run(r))).collect();
        let mut out: Vec<_> = ranges.first().map(run).into_iter().collect();
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("worker panicked")),
        );
        out
    });
    // Invariant: each chunk holds a key at most once, so after a stable sort by key equal keys
    // are adjacent and in chunk order: sums are added in one fixed order.
    let mut all: Vec<(K, Acc)> = chunks.concat();
    all.sort_by_key(|x| x.0);
    let mut out: Vec<Group<K>> = Vec::with_capacity(all.len());
    for (key, a) in all {
        match out.last_mut() {
            Some(g) if g.key == key => {
                g.weight += a.weight;
                g.variance += a.variance;
                g.records += a.records;
            }
            _ => out.push(Group {
                key,
                weight: a.weight,
                variance: a.variance,
                records: a.records,
            }),
        }
    }
    Ok(out)
}

/// Groups records `0..n` by `key(i)`; returns the groups sorted by key.
pub fn aggregate_by<K, F>(n: usize, key: F, w: Weights<'_>) -> Result<Vec<Group<K>>, AnalysisError>
where
    K: Copy + Eq + Hash + Ord + Send,
    F: Fn(usize) -> K + Sync,
{
    w.check(n)?;
    aggregate_ranges(n, |r| r.map(|i| (key(i), w.weight[i], w.var(i))), w)
}

/// Groups records by `keys[i]`; returns the groups sorted by key.
pub fn aggregate<K>(keys: &[K], w: Weights<'_>) -> Result<Vec<Group<K>>, AnalysisError>
where
    K: Copy + Eq + Hash + Ord + Send + Sync,
{
    w.check(keys.len())?;
    match w.variance {
        None => aggregate_ranges(
            keys.len(),
            |r| {
                keys[r.clone()]
                    .iter()
                    .zip(&w.weight[r])
                    .map(|(&k, &x)| (k, x, 0.0))
            },
            w,
        ),
        Some(v) => aggregate_ranges(
            keys.len(),
            |r| {
                keys[r.clone()]
                    .iter()
                    .zip(&w.weight[r.clone()])
                    .zip(&v[r])
                    .map(|((&k, &x), &y)| (k, x, y))
            },
            w,
        ),
    }
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
            // Sometimes large enough for two threads, sometimes with enough distinct keys for
            // the partitioned path.
            let (n, distinct) = match seed % 10 {
                0 => (250_000, 50),
                5 => (150_000, 1_000_000),
                _ => (r.random_range(0..500), 50),
            };
            let keys: Vec<u32> = (0..n).map(|_| r.random_range(0..distinct)).collect();
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
