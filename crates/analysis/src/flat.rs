//! Groups of integer keys (addresses, prefixes, numbers) in one flat open-addressing table:
//! [`Flat`]; [`merge_into`] combines the tables of several worker threads, or the workers share
//! the keys out among themselves as they add records ([`Shard`]) and [`visit_disjoint`] visits
//! their tables without merging.
//!
//! **Why not partitions.** The group-by this replaced scattered records into per-partition
//! buffers and then added them to small hash tables, so that each table was in cache while it
//! was updated. For integer keys one table with linear probing does better: a slot is the key
//! and its accumulator side by side (one cache line per record, no control bytes, no second
//! hashing), a probe is a compare and a step, and the slot of the record `AHEAD` places on is
//! prefetched, so that the cache misses of that many records overlap. No scatter buffers: over
//! the 10 M records of the benchmark store, `top srcip` went from 0.30–0.34 s and 280 MB to
//! 0.19–0.21 s and 195 MB. Sized ahead from an estimate of the distinct keys (the bins'
//! HyperLogLog sketches), a table is allocated once: every table that grows leaves its old
//! memory behind, and fresh pages are much of what a large group-by costs on a VM.
//!
//! **Determinism.** Each key's records are added in the order given, and [`merge_into`]
//! combines a key's accumulators in the order of the tables: sums are added in one fixed
//! order whatever the table sizes. (Not so with [`Shard`]s, whose records arrive in an order
//! that depends on timing: only for sums whose additions commute exactly.) Key 0 marks an
//! empty slot; its group is kept aside.

use std::hash::{BuildHasher, Hash};

/// What a key of a [`Flat`] table must be: an integer whose zero (`Default`) marks an empty
/// slot.
pub trait Key: Copy + Eq + Hash + Default {}
impl Key for u32 {}
impl Key for u64 {}
impl Key for u128 {}

/// Smallest table, in slots.
const MIN_SLOTS: usize = 1 << 10;
/// A table doubles when it holds more than this share of its slots (numerator, denominator):
/// past that, linear probing's probes lengthen quickly.
const MAX_LOAD: (usize, usize) = (4, 5);
/// Share of slots filled by the expected keys when a table is sized ahead.
const SIZED_LOAD: (usize, usize) = (7, 10);
/// How many records ahead [`Flat::add_run`] asks for a slot to be loaded.
const AHEAD: usize = 24;
/// Records gathered before they are added (see [`Flat::add_run`]).
pub const RUN: usize = 1024;

/// Asks the processor to bring the cache line at `p` into its caches, so that a later access
/// does not wait for memory: while a run of records is added, the first slot of the record
/// `AHEAD` places on is prefetched, and the misses of about that many records overlap (`top
/// srcip` over 10 M records: 15 % less CPU than touching each run's slots first with loads,
/// which the processor cannot retire until they arrive).
///
/// The crate's one `unsafe`: the intrinsic is a safe function behind `#[target_feature]`, and
/// Rust asks for `unsafe` to call such a function from code not compiled for the feature.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    // SAFETY: `_mm_prefetch` needs SSE, part of every x86_64 processor (the target's baseline
    // features). A prefetch is a hint that never faults and reads nothing the program sees,
    // whatever the address (callers compute it with `wrapping_add` and never dereference it).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline]
fn hash<K: Key>(k: K) -> u64 {
    foldhash::fast::FixedState::default().hash_one(k)
}

/// Groups of keys `K`, each an accumulator `A` (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Flat<K, A> {
    slots: Vec<(K, A)>,
    /// Key 0's group (0 marks an empty slot).
    zero: Option<A>,
    /// Keys in `slots`.
    len: usize,
    /// Keys past which the table doubles.
    limit: usize,
}

impl<K: Key, A: Copy + Default> Default for Flat<K, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key, A: Copy + Default> Flat<K, A> {
    /// A small table that grows as keys come.
    pub fn new() -> Self {
        Self::with_slots(MIN_SLOTS)
    }

    /// A table with room for about `keys` keys before it grows.
    pub fn with_expected(keys: usize) -> Self {
        Self::with_slots((keys.saturating_mul(SIZED_LOAD.1) / SIZED_LOAD.0).max(MIN_SLOTS))
    }

    fn with_slots(n: usize) -> Self {
        Flat {
            slots: vec![(K::default(), A::default()); n],
            zero: None,
            len: 0,
            limit: n / MAX_LOAD.1 * MAX_LOAD.0,
        }
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots of the table (its memory is this times the size of a slot).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// `k`'s first slot: its hash scaled to the table's size.
    #[inline]
    fn home(&self, k: K) -> usize {
        ((u128::from(hash(k)) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot that holds `k`, or the empty slot where it would go, probing from `home`.
    #[inline]
    fn find_from(&self, k: K, home: usize) -> usize {
        let mut s = home;
        loop {
            let key = self.slots[s].0;
            if key == k || key == K::default() {
                return s;
            }
            s += 1;
            if s == self.slots.len() {
                s = 0;
            }
        }
    }

    #[inline]
    fn find(&self, k: K) -> usize {
        self.find_from(k, self.home(k))
    }

    /// The accumulator of `k`, if it has a group.
    pub fn get(&self, k: K) -> Option<&A> {
        if k == K::default() {
            return self.zero.as_ref();
        }
        let e = &self.slots[self.find(k)];
        (e.0 == k).then_some(&e.1)
    }

    /// Adds records: `items` yields each record's key and value, and `add` folds a value into
    /// its group's accumulator. Records are gathered [`RUN`] at a time for [`Flat::add_run`].
    pub fn add<V: Copy>(
        &mut self,
        items: impl Iterator<Item = (K, V)>,
        mut add: impl FnMut(&mut A, V),
    ) {
        let mut run: Vec<(K, V)> = Vec::with_capacity(RUN);
        let mut items = items.peekable();
        while items.peek().is_some() {
            run.clear();
            run.extend(items.by_ref().take(RUN));
            self.add_run(&run, &mut add);
        }
    }

    /// Adds gathered records (best at most [`RUN`] at a time): their first slots are computed
    /// first, then each record is added while the slot of the record `AHEAD` places on is
    /// prefetched, so that the processor has the slots of many records in flight at once
    /// (nearly every slot is a cache miss).
    pub fn add_run<V: Copy>(&mut self, run: &[(K, V)], mut add: impl FnMut(&mut A, V)) {
        let mut homes: Vec<usize> = run.iter().map(|&(k, _)| self.home(k)).collect();
        for (j, &(k, v)) in run.iter().enumerate() {
            if let Some(&h) = homes.get(j + AHEAD) {
                let slot = self.slots.as_ptr().wrapping_add(h);
                prefetch(slot);
                // A slot that crosses into the next cache line (a quarter of 24-byte slots).
                prefetch(slot.cast::<u8>().wrapping_add(size_of::<(K, A)>() - 1));
            }
            if k == K::default() {
                add(self.zero.get_or_insert_default(), v);
                continue;
            }
            let s = self.find_from(k, homes[j]);
            let e = &mut self.slots[s];
            if e.0 == k {
                add(&mut e.1, v);
                continue;
            }
            *e = (k, A::default());
            add(&mut e.1, v);
            self.len += 1;
            if self.len > self.limit {
                self.grow();
                // The first slots of the rest of the run changed with the size.
                for (h, &(k, _)) in homes[j + 1..].iter_mut().zip(&run[j + 1..]) {
                    *h = self.home(k);
                }
            }
        }
    }

    /// Makes room for about `keys` keys before the table grows again (as
    /// [`Flat::with_expected`] sizes a table); a table that large already is left as it is.
    /// For a table whose size shows only after its first keys: one move instead of a
    /// doubling after another, each leaving fresh memory behind.
    pub fn reserve(&mut self, keys: usize) {
        let slots = (keys.saturating_mul(SIZED_LOAD.1) / SIZED_LOAD.0).max(MIN_SLOTS);
        if slots > self.slots.len() {
            self.rehash(slots);
        }
    }

    /// Doubles the table.
    fn grow(&mut self) {
        self.rehash(self.slots.len() * 2);
    }

    /// Moves the groups into a table of `slots` slots.
    fn rehash(&mut self, slots: usize) {
        let mut next = Self::with_slots(slots);
        for &(k, a) in self.slots.iter().filter(|e| e.0 != K::default()) {
            let s = next.find(k);
            next.slots[s] = (k, a);
        }
        next.len = self.len;
        next.zero = self.zero.take();
        *self = next;
    }

    /// Every slot of the table, in table order: the groups, and empty slots (key 0, the
    /// accumulator's default) between them; key 0's own group is [`Flat::zero`]. A pass over
    /// them that needs no branch on whether a slot is empty is faster than [`Flat::iter`].
    pub fn slots(&self) -> &[(K, A)] {
        &self.slots
    }

    /// Key 0's group.
    pub fn zero(&self) -> Option<A> {
        self.zero
    }

    /// The groups, in table order (key 0 first when it has one).
    pub fn iter(&self) -> impl Iterator<Item = (K, A)> + '_ {
        self.zero
            .map(|a| (K::default(), a))
            .into_iter()
            .chain(self.slots.iter().copied().filter(|e| e.0 != K::default()))
    }
}

/// [`merge_into`], collecting the groups (in a fixed order: the first half of the keys by
/// hash, then the second, each in table order).
pub fn merge<K, A>(tables: Vec<Flat<K, A>>, combine: impl Fn(&mut A, A) + Sync) -> Vec<(K, A)>
where
    K: Key + Send + Sync,
    A: Copy + Default + Send + Sync,
{
    merge_into(tables, combine, Vec::new, |out, k, a| out.push((k, a)))
        .into_iter()
        .flatten()
        .collect()
}

/// Merges the tables of several workers: every key once, its accumulators combined in the
/// order of `tables` (`combine(into, from)`), handed to `visit` on up to two threads (keys
/// split by their hash's top bit), each folding into a state of `init`. Nothing is inserted:
/// a key is visited from the first table that holds it, which looks it up in the later ones.
pub fn merge_into<K, A, S>(
    tables: Vec<Flat<K, A>>,
    combine: impl Fn(&mut A, A) + Sync,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, K, A) + Sync,
) -> Vec<S>
where
    K: Key + Send + Sync,
    A: Copy + Default + Send + Sync,
    S: Send,
{
    let tables = &tables;
    // The keys whose hash's top bit is `half` (all keys when `half` is None).
    let run = |half: Option<u64>| {
        let mut state = init();
        for (j, t) in tables.iter().enumerate() {
            for (k, mut a) in t.iter() {
                if half.is_some_and(|h| hash(k) >> 63 != h) {
                    continue;
                }
                if tables[..j].iter().any(|e| e.get(k).is_some()) {
                    continue;
                }
                for later in &tables[j + 1..] {
                    if let Some(&b) = later.get(k) {
                        combine(&mut a, b);
                    }
                }
                visit(&mut state, k, a);
            }
        }
        state
    };
    let total: usize = tables.iter().map(Flat::len).sum();
    let two = total > 200_000 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if !two {
        return vec![run(None)];
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| run(Some(1)));
        let first = run(Some(0));
        vec![first, h.join().expect("merge worker panicked")]
    })
}

/// Records queued for another shard before they are sent (24 bytes each for an IPv4 key and
/// an exact `top` value: 192 KiB, within a core's L2 cache).
const SEND: usize = 8192;

/// Emptied queues a shard keeps to reuse (see [`Shard`]).
const SPARES: usize = 4;

/// One worker's share of a set of groups split among the workers by key: each worker keeps
/// the keys it owns (by hash) in its own table and sends the others' records to them, so that
/// the tables hold disjoint keys and need no merging (see [`visit_disjoint`]); each is a
/// fraction of the size of one worker's table for every key, and the tables of all workers
/// together stay in the last-level cache longer. Made by [`shards`], one per worker; all of them
/// must run at once (a shard's [`Shard::finish`] waits for the others).
///
/// The records of a key reach its table in an order that depends on timing: for accumulators
/// whose additions commute exactly (integer sums), not for floating-point sums, which must be
/// added in one fixed order.
#[derive(Debug)]
pub struct Shard<K, V> {
    index: usize,
    count: usize,
    /// Records queued for each shard, and how many a queue holds before it is added or sent.
    out: Vec<Vec<(K, V)>>,
    limit: Vec<usize>,
    /// Emptied queues the others sent, to queue records in again: fresh memory for every
    /// queue sent would cost a page fault per 4 KiB.
    spare: Vec<Vec<(K, V)>>,
    /// Senders to the other shards (none to itself; all dropped by `finish`).
    to: Vec<Option<Sender<K, V>>>,
    from: std::sync::mpsc::Receiver<Vec<(K, V)>>,
}

/// Where a shard sends the records of another's keys.
type Sender<K, V> = std::sync::mpsc::Sender<Vec<(K, V)>>;

/// `count` shards connected to each other, for [`Shard`].
pub fn shards<K: Key, V: Copy>(count: usize) -> Vec<Shard<K, V>> {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..count).map(|_| std::sync::mpsc::channel()).unzip();
    receivers
        .into_iter()
        .enumerate()
        .map(|(index, from)| Shard {
            index,
            count,
            out: (0..count)
                .map(|j| Vec::with_capacity(if j == index { RUN } else { SEND }))
                .collect(),
            limit: (0..count)
                .map(|j| if j == index { RUN } else { SEND })
                .collect(),
            to: senders
                .iter()
                .enumerate()
                .map(|(j, s)| (j != index).then(|| s.clone()))
                .collect(),
            from,
            spare: Vec::new(),
        })
        .collect()
}

impl<K: Key, V: Copy> Shard<K, V> {
    /// This shard's index among the shards.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The shard that owns `k`: from the low half of its hash (a table's slot comes from the
    /// high half, so each shard's keys still spread over its whole table).
    #[inline(always)]
    fn owner(&self, k: K) -> usize {
        (((hash(k) & 0xffff_ffff) * self.count as u64) >> 32) as usize
    }

    /// Adds one record: it is queued for its owner (this shard's own records too: no branch
    /// on the owner, which is as good as random); this shard's are added to `table`
    /// [`RUN`] at a time (as [`Flat::add_run`] adds them), the others' sent `SEND` at a time.
    /// [`Shard::flush`] adds what is still queued here.
    #[inline(always)]
    pub fn push<A: Copy + Default>(
        &mut self,
        table: &mut Flat<K, A>,
        k: K,
        v: V,
        add: &mut impl FnMut(&mut A, V),
    ) {
        let o = self.owner(k);
        let q = &mut self.out[o];
        q.push((k, v));
        if q.len() >= self.limit[o] {
            if o == self.index {
                self.flush(table, add);
            } else {
                self.send(o);
            }
        }
    }

    /// Adds this shard's queued records to `table`, then what the others have sent so far.
    pub fn flush<A: Copy + Default>(
        &mut self,
        table: &mut Flat<K, A>,
        add: &mut impl FnMut(&mut A, V),
    ) {
        let mut mine = std::mem::take(&mut self.out[self.index]);
        table.add_run(&mine, &mut *add);
        mine.clear();
        self.out[self.index] = mine;
        while let Ok(got) = self.from.try_recv() {
            self.add_received(table, got, add);
        }
    }

    fn send(&mut self, o: usize) {
        let queue = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(SEND));
        let batch = std::mem::replace(&mut self.out[o], queue);
        if let Some(to) = &self.to[o] {
            // The other shard is gone only when its worker failed: so does the whole fold.
            let _ = to.send(batch);
        }
    }

    /// Sends what is queued, closes this shard's side, and adds what the others send until
    /// every one of them has closed its side.
    pub fn finish<A: Copy + Default>(
        &mut self,
        table: &mut Flat<K, A>,
        mut add: impl FnMut(&mut A, V),
    ) {
        self.flush(table, &mut add);
        for o in 0..self.count {
            if o != self.index && !self.out[o].is_empty() {
                self.send(o);
            }
        }
        self.to.iter_mut().for_each(|t| *t = None);
        while let Ok(got) = self.from.recv() {
            self.add_received(table, got, &mut add);
        }
    }

    fn add_received<A: Copy + Default>(
        &mut self,
        table: &mut Flat<K, A>,
        mut got: Vec<(K, V)>,
        add: &mut impl FnMut(&mut A, V),
    ) {
        for run in got.chunks(RUN) {
            table.add_run(run, &mut *add);
        }
        // A few spares cover the queues in flight; more would only hold memory.
        if self.spare.len() < SPARES {
            got.clear();
            self.spare.push(got);
        }
    }
}

/// Visits tables that hold disjoint keys (the shards' tables), each table on its own thread
/// (at most the cores), folding into a state of `init` per thread: `visit` takes a whole table
/// (see [`Flat::iter`] and [`Flat::slots`]).
pub fn visit_disjoint<K, A, S>(
    tables: Vec<Flat<K, A>>,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, &Flat<K, A>) + Sync,
) -> Vec<S>
where
    K: Key + Send + Sync,
    A: Copy + Default + Send + Sync,
    S: Send,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tables.len())
        .max(1);
    let run = |part: usize| {
        let mut state = init();
        for t in tables.iter().skip(part).step_by(threads) {
            visit(&mut state, t);
        }
        state
    };
    if threads == 1 {
        return vec![run(0)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|p| s.spawn(move || run(p))).collect();
        let mut out = vec![run(0)];
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("visit worker panicked")),
        );
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;
    use rand::RngExt;
    use std::collections::BTreeMap;

    /// Sums, counts and the order of float additions per key, against a naive reference, over
    /// one to three workers, tables sized ahead (well or badly) or grown, keys dense, sparse
    /// and including 0, as `u32` and as `u128` (IPv6-like, high bits set).
    #[test]
    fn flat_tables_agree_with_a_naive_reference() {
        for seed in 0..40 {
            if seed % 2 == 0 {
                check(seed, |k| k);
            } else {
                check(seed, |k| {
                    if k == 0 {
                        0
                    } else {
                        (0x2001_0db8u128 << 96) | u128::from(k) << 16
                    }
                });
            }
        }
    }

    fn check<K: Key + Ord + Send + Sync + std::fmt::Debug>(seed: u64, key: impl Fn(u32) -> K) {
        let mut r = rng(seed);
        let n: usize = match seed % 4 {
            0 => 300_000,
            1 => 50_000,
            2 => r.random_range(0..3000),
            _ => 120_000,
        };
        let distinct: u32 = match seed % 3 {
            0 => 20,
            1 => 60_000,
            _ => u32::MAX,
        };
        let keys: Vec<K> = (0..n).map(|_| key(r.random_range(0..distinct))).collect();
        let w: Vec<f64> = (0..n).map(|_| r.random_range(0.0..1e6)).collect();
        let workers = 1 + seed as usize % 3;
        let per = n.div_ceil(workers).max(1);
        // Each worker's sums in record order, added up in worker order: the merged float
        // sums must be exactly these.
        let mut naive: BTreeMap<K, (f64, u64)> = BTreeMap::new();
        for wk in 0..workers {
            let (lo, hi) = ((wk * per).min(n), ((wk + 1) * per).min(n));
            let mut part: BTreeMap<K, (f64, u64)> = BTreeMap::new();
            for i in lo..hi {
                let e = part.entry(keys[i]).or_default();
                e.0 += w[i];
                e.1 += 1;
            }
            for (k, (x, c)) in part {
                let e = naive.entry(k).or_insert((-0.0, 0));
                e.0 += x;
                e.1 += c;
            }
        }
        let mut tables = Vec::new();
        for wk in 0..workers {
            let (lo, hi) = ((wk * per).min(n), ((wk + 1) * per).min(n));
            let mut t: Flat<K, (f64, u64)> = match seed % 5 {
                0 => Flat::new(),
                1 => Flat::with_expected(10),
                _ => Flat::with_expected(hi - lo),
            };
            let add = |a: &mut (f64, u64), x: f64| {
                a.0 += x;
                a.1 += 1;
            };
            let mut start = lo;
            let batch = r.random_range(1..70_000);
            while start < hi {
                let end = (start + batch).min(hi);
                t.add((start..end).map(|i| (keys[i], w[i])), add);
                start = end;
            }
            tables.push(t);
        }
        let states = merge_into(
            tables,
            |a, b| {
                a.0 += b.0;
                a.1 += b.1;
            },
            Vec::new,
            |s: &mut Vec<(K, (f64, u64))>, k, a| s.push((k, a)),
        );
        let mut got: Vec<(K, (f64, u64))> = states.into_iter().flatten().collect();
        got.sort_by_key(|x| x.0);
        let want: Vec<(K, (f64, u64))> = naive.into_iter().collect();
        assert_eq!(got.len(), want.len(), "seed {seed}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "seed {seed}");
            assert_eq!(g.1.1, w.1.1, "seed {seed} key {:?}", g.0);
            assert_eq!(
                g.1.0.to_bits(),
                w.1.0.to_bits(),
                "seed {seed} key {:?}",
                g.0
            );
        }
    }

    /// Shards on threads at once: every key in exactly one shard's table, with the sums and
    /// counts of a naive reference, whatever the record order and the batches the records
    /// come in (some pushed one by one, some flushed after runs), over one to four shards.
    #[test]
    fn shards_hold_disjoint_keys_with_the_naive_sums() {
        for seed in 0..12u64 {
            let mut r = rng(seed);
            let count = 1 + seed as usize % 4;
            let n: usize = [0, 1, 5000, 60_000][seed as usize % 4] + r.random_range(0..100);
            let distinct: u32 = [3, 1000, u32::MAX][seed as usize % 3];
            let recs: Vec<(u32, u64)> = (0..n)
                .map(|_| (r.random_range(0..distinct), r.random_range(1..1_000_000)))
                .collect();
            let mut naive: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for &(k, v) in &recs {
                let e = naive.entry(k).or_default();
                e.0 += v;
                e.1 += 1;
            }
            let add = |a: &mut (u64, u64), v: u64| {
                a.0 += v;
                a.1 += 1;
            };
            let per = n.div_ceil(count).max(1);
            let recs = &recs;
            let tables: Vec<Flat<u32, (u64, u64)>> = std::thread::scope(|s| {
                let hs: Vec<_> = shards::<u32, u64>(count)
                    .into_iter()
                    .enumerate()
                    .map(|(w, mut shard)| {
                        s.spawn(move || {
                            let mut t = Flat::with_expected(per / 2);
                            let mine = &recs[(w * per).min(n)..((w + 1) * per).min(n)];
                            let (a, b) = mine.split_at(mine.len() / 3);
                            let mut addf = add;
                            for &(k, v) in a {
                                shard.push(&mut t, k, v, &mut addf);
                            }
                            for run in b.chunks(700) {
                                for &(k, v) in run {
                                    shard.push(&mut t, k, v, &mut addf);
                                }
                                shard.flush(&mut t, &mut addf);
                            }
                            shard.finish(&mut t, add);
                            assert_eq!(shard.index(), w);
                            t
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, t) in tables.iter().enumerate() {
                for (k, _) in t.iter() {
                    assert_eq!(
                        seen.insert(k, i),
                        None,
                        "seed {seed}: key {k} in two shards"
                    );
                }
            }
            // Every group once: through the groups, or through the slots (empty ones
            // skipped) and key 0's group.
            let by_slots = seed % 2 == 0;
            let states = visit_disjoint(tables, Vec::new, |s: &mut Vec<(u32, (u64, u64))>, t| {
                if by_slots {
                    s.extend(t.zero().map(|a| (0, a)));
                    s.extend(t.slots().iter().filter(|e| e.0 != 0));
                } else {
                    s.extend(t.iter());
                }
            });
            let mut got: Vec<(u32, (u64, u64))> = states.into_iter().flatten().collect();
            got.sort_by_key(|x| x.0);
            let want: Vec<(u32, (u64, u64))> = naive.into_iter().collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn a_table_sized_ahead_does_not_grow_and_a_small_one_does() {
        let mut t: Flat<u32, u64> = Flat::with_expected(100_000);
        let slots = t.capacity();
        t.add(
            (1..=100_000u32).map(|k| (k.wrapping_mul(2_654_435_761), 1)),
            |a, x| *a += x,
        );
        assert_eq!((t.len(), t.capacity()), (100_000, slots));
        let mut g: Flat<u32, u64> = Flat::new();
        g.add((0..100_000u32).map(|k| (k, 1)), |a, x| *a += x);
        assert_eq!(g.len(), 100_000);
        assert!(g.capacity() >= 100_000 * 5 / 4, "{}", g.capacity());
        assert_eq!(g.get(0), Some(&1));
        assert_eq!(g.get(99_999), Some(&1));
        assert_eq!(g.get(100_000), None);
        // Reserved after its first keys: they stay, with their sums, and it does not grow.
        let mut r: Flat<u32, u64> = Flat::new();
        r.add((0..500u32).map(|k| (k, 2)), |a, x| *a += x);
        r.reserve(100_000);
        let slots = r.capacity();
        assert!(slots >= 100_000 * 10 / 7, "{slots}");
        r.add((0..100_000u32).map(|k| (k, 1)), |a, x| *a += x);
        assert_eq!((r.len(), r.capacity()), (100_000, slots));
        assert_eq!(
            (r.get(0), r.get(499), r.get(500)),
            (Some(&3), Some(&3), Some(&1))
        );
        r.reserve(10);
        assert_eq!(r.capacity(), slots);
    }
}
