//! Streaming group-by for large selections: [`Grouper`] takes records batch by batch, as the
//! query layer reads bins, and keeps one accumulator per key; [`merge`] combines the groupers
//! of several worker threads.
//!
//! The aggregation of [`crate::top`] wants every key column and weight column in memory at
//! once; a grouper needs only one batch at a time, so a query over ten million records keeps
//! the groups and one bin per worker, not the whole selection.
//!
//! **Why partitions.** With millions of distinct keys (source addresses), one hash table does
//! not fit the cache and nearly every record misses. Once a grouper holds more than
//! [`SINGLE_MAX`] keys, it splits its table into 2^bits tables by key hash, and each batch is
//! first scattered (hash, key, row) into one buffer per partition, then each buffer is added to
//! its table while that table is in cache. Skewed keys (ports, protocols) stay on one table,
//! whose hot entries are cached anyway.
//!
//! **Determinism.** A key's rows are added in the order they were given (the scatter keeps
//! order within a partition), and [`merge`] adds the groupers in the order given: with a fixed
//! assignment of bins to workers, sums are added in one fixed order and results are the same
//! on every run.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// A grouper keeps one table while it holds at most this many keys.
pub const SINGLE_MAX: usize = 1 << 17;
/// Keys per partition aimed at once partitioned (a table of about 300 KB stays in L2).
const PART_TARGET: usize = 1 << 13;
/// Partition bits of a grouper's first split (256 tables): enough for about 2 M keys at
/// [`PART_TARGET`], so that a grouper of a few million keys (addresses) splits once and its
/// tables then grow one at a time. Splitting at 64 and again at 256 tables held both sets of
/// tables at once, fresh memory whose first-touch page faults were a large share of a
/// `top srcip` profile.
const FIRST_BITS: u32 = 8;
/// The most partition bits (hashbrown takes the top 7 hash bits for its control bytes and the
/// low bits for the bucket; partitions take bits 40 and up).
const MAX_BITS: u32 = 16;
/// Records added to the single table between two checks of its size.
const CHECK_EVERY: usize = 1 << 16;

fn hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::default()
}

/// Groups records by a key `K`: each record comes as its key and a value `V` (what it adds),
/// and `add` folds a value into its group's accumulator `A`.
#[derive(Debug)]
pub struct Grouper<K, V, A> {
    bits: u32,
    parts: Vec<HashTable<(K, A)>>,
    /// Per partition, records scattered and not yet added.
    scratch: Vec<Vec<(K, V)>>,
    buffered: usize,
    len: usize,
}

impl<K: Copy + Eq + Hash, V: Copy, A: Default> Default for Grouper<K, V, A> {
    fn default() -> Self {
        Self::new()
    }
}

/// Records scattered before they are added to the partitions' tables: at least this many,
/// and at least as many as there are groups, so that every table is brought into the cache
/// for about as many records as it has entries.
const MIN_FLUSH: usize = 1 << 18;

impl<K: Copy + Eq + Hash, V: Copy, A: Default> Grouper<K, V, A> {
    pub fn new() -> Self {
        Grouper {
            bits: 0,
            parts: vec![HashTable::new()],
            scratch: Vec::new(),
            buffered: 0,
            len: 0,
        }
    }

    /// Distinct keys so far (of the records added; call [`Grouper::flush`] first to count
    /// the scattered ones too).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.buffered == 0
    }

    #[inline]
    fn part_of(bits: u32, h: u64) -> usize {
        ((h >> 40) as usize) & ((1 << bits) - 1)
    }

    #[inline]
    fn upsert(table: &mut HashTable<(K, A)>, k: K, v: V, add: &mut impl FnMut(&mut A, V)) {
        let hs = hasher();
        let h = hs.hash_one(k);
        let e = table
            .entry(h, |e| e.0 == k, |e| hs.hash_one(e.0))
            .or_insert_with(|| (k, A::default()));
        add(&mut e.into_mut().1, v);
    }

    /// Adds records: `items` yields each record's key and value, and `add` folds a value into
    /// its group's accumulator. Once partitioned, records wait in per-partition buffers until
    /// enough have come ([`Grouper::flush`] adds them); `add` must then be the same function
    /// on every call.
    pub fn add(&mut self, items: impl Iterator<Item = (K, V)>, mut add: impl FnMut(&mut A, V)) {
        let mut items = items.peekable();
        while self.bits == 0 {
            let mut any = false;
            let table = &mut self.parts[0];
            for (k, v) in items.by_ref().take(CHECK_EVERY) {
                any = true;
                Self::upsert(table, k, v, &mut add);
            }
            self.len = self.parts[0].len();
            if !any {
                return;
            }
            self.grow();
            if items.peek().is_none() {
                return;
            }
        }
        let hs = hasher();
        let bits = self.bits;
        for (k, v) in items {
            let p = Self::part_of(bits, hs.hash_one(k));
            self.scratch[p].push((k, v));
            self.buffered += 1;
        }
        if self.buffered >= self.len.max(MIN_FLUSH) {
            self.flush(add);
        }
    }

    /// Adds the buffered records to their tables.
    pub fn flush(&mut self, mut add: impl FnMut(&mut A, V)) {
        if self.buffered == 0 {
            return;
        }
        let mut len = 0;
        for (table, s) in self.parts.iter_mut().zip(&mut self.scratch) {
            for (k, v) in s.drain(..) {
                Self::upsert(table, k, v, &mut add);
            }
            len += table.len();
        }
        self.buffered = 0;
        self.len = len;
        self.grow();
    }

    /// Splits into more partitions when the tables have outgrown their target size.
    fn grow(&mut self) {
        let want = if self.bits == 0 && self.len <= SINGLE_MAX {
            0
        } else {
            let mut b = self.bits.max(FIRST_BITS);
            while b < MAX_BITS && self.len > PART_TARGET << b {
                b += 2;
            }
            b
        };
        if want > self.bits {
            self.split(want);
        }
    }

    /// Redistributes the groups into 2^bits tables (the buffers must be empty).
    fn split(&mut self, bits: u32) {
        debug_assert_eq!(self.buffered, 0);
        let hs = hasher();
        let old = std::mem::take(&mut self.parts);
        self.bits = bits;
        let per = (self.len >> bits).max(16) * 2;
        self.parts = (0..1usize << bits)
            .map(|_| HashTable::with_capacity(per))
            .collect();
        for mut t in old {
            for (k, a) in t.drain() {
                let h = hs.hash_one(k);
                let p = Self::part_of(bits, h);
                self.parts[p].insert_unique(h, (k, a), |e| hs.hash_one(e.0));
            }
        }
        self.scratch = (0..1usize << bits).map(|_| Vec::new()).collect();
    }
}

/// Merges the groupers of several workers: every key once, with the accumulators of each key
/// combined in the order of `groupers` (`combine(into, from)`). Partitions are merged on up to
/// two threads; the output is in a fixed order (by partition, then table order).
///
/// Each grouper must have been flushed ([`Grouper::flush`]).
pub fn merge<K, V, A>(
    groupers: Vec<Grouper<K, V, A>>,
    combine: impl Fn(&mut A, A) + Sync,
) -> Vec<(K, A)>
where
    K: Copy + Eq + Hash + Send,
    V: Copy + Send,
    A: Default + Send,
{
    merge_into(groupers, combine, Vec::new, |out, k, a| out.push((k, a)))
        .into_iter()
        .flatten()
        .collect()
}

/// [`merge`], handing each group to `visit` instead of collecting them: up to two threads
/// each fold the groups of their partitions into a state of `init`, and the states come back
/// in partition order. A caller that wants a few groups (the top N) keeps only those.
pub fn merge_into<K, V, A, S>(
    mut groupers: Vec<Grouper<K, V, A>>,
    combine: impl Fn(&mut A, A) + Sync,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, K, A) + Sync,
) -> Vec<S>
where
    K: Copy + Eq + Hash + Send,
    V: Copy + Send,
    A: Default + Send,
    S: Send,
{
    let bits = groupers.iter().map(|g| g.bits).max().unwrap_or(0);
    for g in &mut groupers {
        assert_eq!(g.buffered, 0, "merge of a grouper with buffered records");
        if g.bits < bits {
            g.split(bits);
        }
        g.scratch = Vec::new();
    }
    let total: usize = groupers.iter().map(|g| g.len).sum();
    // Per partition, the tables of every grouper, in grouper order.
    let mut columns: Vec<Vec<HashTable<(K, A)>>> =
        (0..1usize << bits).map(|_| Vec::new()).collect();
    for g in groupers {
        for (p, t) in g.parts.into_iter().enumerate() {
            columns[p].push(t);
        }
    }
    let merge_one = |state: &mut S, tables: Vec<HashTable<(K, A)>>| {
        let hs = hasher();
        let mut it = tables.into_iter();
        let Some(mut base) = it.next() else {
            return;
        };
        for mut t in it {
            for (k, a) in t.drain() {
                let h = hs.hash_one(k);
                match base.entry(h, |e| e.0 == k, |e| hs.hash_one(e.0)) {
                    hashbrown::hash_table::Entry::Occupied(mut o) => combine(&mut o.get_mut().1, a),
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert((k, a));
                    }
                }
            }
        }
        for (k, a) in base {
            visit(state, k, a);
        }
    };
    let run = |cols: Vec<Vec<HashTable<(K, A)>>>| {
        let mut state = init();
        for c in cols {
            merge_one(&mut state, c);
        }
        state
    };
    let threads = if total > 200_000 && columns.len() > 1 {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(2)
    } else {
        1
    };
    if threads == 1 {
        return vec![run(columns)];
    }
    let second = columns.split_off(columns.len() / 2);
    std::thread::scope(|s| {
        let h = s.spawn(|| run(second));
        let first = run(columns);
        vec![first, h.join().expect("merge worker panicked")]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;
    use rand::RngExt;
    use std::collections::BTreeMap;

    /// Sums and counts per key, by a naive reference and by groupers fed in batches over
    /// several workers, for inputs that stay on one table and inputs that split.
    #[test]
    fn groupers_agree_with_a_naive_reference() {
        for seed in 0..40 {
            let mut r = rng(seed);
            let (n, distinct) = match seed % 4 {
                0 => (300_000usize, 2_000_000u64),
                1 => (200_000, 50),
                2 => (100_000, 60_000),
                _ => (r.random_range(0..3000), 1000),
            };
            let keys: Vec<u64> = (0..n).map(|_| r.random_range(0..distinct)).collect();
            let w: Vec<u64> = (0..n).map(|_| r.random_range(1..5000)).collect();
            let mut naive: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            for (k, x) in keys.iter().zip(&w) {
                let e = naive.entry(*k).or_default();
                e.0 += x;
                e.1 += 1;
            }
            let workers = 1 + seed as usize % 3;
            let batch = 1 + r.random_range(1..100_000);
            let per = n.div_ceil(workers).max(1);
            let mut gs = Vec::new();
            for wk in 0..workers {
                let lo = (wk * per).min(n);
                let hi = ((wk + 1) * per).min(n);
                let mut g: Grouper<u64, u64, (u64, u64)> = Grouper::new();
                let add = |a: &mut (u64, u64), x: u64| {
                    a.0 += x;
                    a.1 += 1;
                };
                let mut start = lo;
                while start < hi {
                    let end = (start + batch).min(hi);
                    let ks = &keys[start..end];
                    let ws = &w[start..end];
                    g.add(ks.iter().copied().zip(ws.iter().copied()), add);
                    start = end;
                }
                g.flush(add);
                gs.push(g);
            }
            let mut got = merge(gs, |a, b| {
                a.0 += b.0;
                a.1 += b.1;
            });
            got.sort_by_key(|x| x.0);
            let want: Vec<(u64, (u64, u64))> = naive.into_iter().collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn a_grouper_splits_only_past_its_single_table() {
        let mut g: Grouper<u32, u64, u64> = Grouper::new();
        let add = |a: &mut u64, x: u64| *a += x;
        g.add((0..SINGLE_MAX as u32).map(|i| (i % 100, 1)), add);
        assert_eq!((g.bits, g.len()), (0, 100));
        g.add((0..200_000u32).map(|i| (i, 1)), add);
        g.flush(add);
        assert!(g.bits >= 6, "bits {}", g.bits);
        assert_eq!(g.len(), 200_000);
        let out = merge(vec![g], |a, b| *a += b);
        let ones = out.iter().filter(|(k, _)| *k < 100).all(|&(k, a)| {
            a == 1 + (SINGLE_MAX as u64 / 100) + u64::from(k < (SINGLE_MAX as u32 % 100))
        });
        assert!(ones);
    }
}
