//! Hierarchical heavy hitters in one dimension: Netpy's rule over any [`Hierarchy`].
//!
//! This module owns the HHH rule, the three built-in hierarchies (IP prefixes, applications,
//! a user's prefix map) and the ordering of the result as Netpy's indented tree.
//!
//! ## The rule (ORACLES §1)
//!
//! Bottom-up over the levels. At the most specific level a key's residual is its traffic. A key
//! is **reported when its residual is strictly greater than `T`**, and shown with its **total**
//! traffic. A reported key passes 0 up to its parent; an unreported one passes its residual.
//! `T = φ·N`, N the total of the input in the chosen metric.
//!
//! Invariants the code keeps (and the tests check against a naive reference):
//! - the residuals of the reported keys plus the root's unreported residual sum to N;
//! - a reported key's total is the sum of the input under it, and `total ≥ residual > T`;
//! - the result depends neither on input order nor on how a key's traffic is split in records.
//!
//! ## IP addresses: two families, two roots, one overall root
//!
//! IPv4 and IPv6 prefixes form two separate trees, `0.0.0.0/0` and `::/0` being their roots
//! (prefix lengths count in the family's own bits). Both roots are children of one overall root,
//! [`IpKey::Any`], so a mixed input still has a single root and conservation holds across
//! families. On single-family input with `/0` in the level set the overall root is never
//! reported: the family root either is reported (passing 0) or holds at most T. When `/0` is
//! left out of a family's level set, that family's coarsest level hangs directly from `Any`.
//!
//! [`hhh_addrs`] is the fast path for addresses: the leaves are aggregated on up to 2 threads
//! (partitioned by address range so each hash map stays in cache), sorted, and then only the
//! *heavy* nodes (total > T, at most N/T per level) are visited. [`hhh`] runs any hierarchy
//! through [`Hierarchy::pass`]; for [`IpLevels`] that is the same fast pass, and
//! [`hhh_bottom_up`] is the generic reference both are tested against.
//!
//! Weights are `f64`. For integer weights (bytes, packets, threshold-sampled weights with an
//! integer threshold) below 2^53 every sum is exact, so all passes agree bit for bit; for
//! fractional weights (priority sampling) the fast pass, which takes totals as prefix-sum
//! differences, can differ from the bottom-up pass by rounding, and may then flip a key whose
//! residual is within rounding of T.
//!
//! ## Output order
//!
//! Rows come in the order of Netpy's Figure 1: a depth-first walk of the tree of reported keys
//! (each key hangs from its nearest reported ancestor), parents before children, siblings in the
//! key's natural order ([`Ord`]: by address for prefixes). `depth` is the number of reported
//! ancestors, so a printer indents by `depth`.

use crate::{AnalysisError, FastMap, Weights, fast_map, split_ranges, workers};
use flowdrill_model::{Addr, Prefix, proto};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// A hierarchy of keys: each key has at most one parent, and the root none.
///
/// Implementations MUST keep `rank(parent(k)) < rank(k)`, and every chain of parents MUST end
/// at a key without parent (the root; several roots are allowed but the built-ins have one).
pub trait Hierarchy {
    /// What the input column holds for one record: an address, a `(proto, sport, dport)`...
    type Leaf: Copy + Send + Sync;
    /// A node of the hierarchy, at any level. Its `Display` shows the level (`10.0.0.0/8`).
    type Key: Clone + Eq + Hash + Ord + fmt::Display + fmt::Debug + Send;
    /// The most specific key of a record.
    fn leaf(&self, x: Self::Leaf) -> Self::Key;
    /// The enclosing key one level up, or `None` at the root.
    fn parent(&self, key: &Self::Key) -> Option<Self::Key>;
    /// The key's level: larger is more specific; the root has the smallest.
    fn rank(&self, key: &Self::Key) -> u32;
    /// The largest rank any key can have.
    fn max_rank(&self) -> u32;
    /// The HHH pass over aggregated leaves `(leaf key, (total, variance))`, any order. The
    /// default is the generic [`bottom_up`] pass; an implementation may substitute a faster
    /// pass, which MUST give the same report (the IP hierarchy does: see [`hhh_addrs`]).
    fn pass(
        &self,
        leaves: Vec<(Self::Key, (f64, f64))>,
        n: f64,
        nvar: f64,
        thr: f64,
    ) -> Result<HhhReport<Self::Key>, AnalysisError>
    where
        Self: Sized,
    {
        bottom_up(self, leaves.into_iter(), n, nvar, thr)
    }
    /// The key and all its ancestors, most specific first.
    fn chain(&self, key: &Self::Key) -> Vec<Self::Key> {
        let mut out = vec![key.clone()];
        while let Some(p) = self.parent(out.last().expect("non-empty")) {
            out.push(p);
        }
        out
    }
}

/// The reporting threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// φ: T = φ·N.
    Share(f64),
    /// T itself, in the metric's unit.
    Absolute(f64),
}

impl Threshold {
    /// T for an input of total `n`.
    pub fn resolve(self, n: f64) -> Result<f64, AnalysisError> {
        let (raw, t) = match self {
            Threshold::Share(phi) => (phi, phi * n),
            Threshold::Absolute(t) => (t, t),
        };
        if raw.is_finite() && raw >= 0.0 {
            Ok(t)
        } else {
            Err(AnalysisError::BadThreshold(raw))
        }
    }
}

/// One reported key.
#[derive(Clone, Debug, PartialEq)]
pub struct HhhRow<K> {
    pub key: K,
    /// The key's level in its hierarchy (see [`Hierarchy::rank`]).
    pub rank: u32,
    /// All traffic under the key.
    pub total: f64,
    /// Traffic under the key not under a more specific reported key (what made it reported).
    pub residual: f64,
    /// `total / N` (0 when N is 0).
    pub share: f64,
    /// Variance of `total` (sum of the variance terms under the key).
    pub variance: f64,
    /// Number of reported ancestors: the indentation of Netpy's tree.
    pub depth: u32,
}

/// The result of a one-dimensional HHH run.
#[derive(Clone, Debug, PartialEq)]
pub struct HhhReport<K> {
    /// Reported keys in tree order (parents before children).
    pub rows: Vec<HhhRow<K>>,
    /// N: the total of the input.
    pub total: f64,
    /// Variance of N.
    pub total_variance: f64,
    /// T, resolved.
    pub threshold: f64,
    /// The root's residual when the root is not reported, else 0. With the reported residuals it
    /// sums to N.
    pub unreported_residual: f64,
}

/// Traffic accumulated at one node during the bottom-up pass.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    total: f64,
    var: f64,
    resid: f64,
}

fn aggregate_leaves<H: Hierarchy>(
    h: &H,
    leaves: &[H::Leaf],
    w: Weights<'_>,
) -> Vec<(H::Key, (f64, f64))> {
    let mut agg: FastMap<H::Key, (f64, f64)> = fast_map(1024);
    for (i, &x) in leaves.iter().enumerate() {
        let e = agg.entry(h.leaf(x)).or_insert((0.0, 0.0));
        e.0 += w.weight[i];
        e.1 += w.var(i);
    }
    agg.into_iter().collect()
}

/// Runs the HHH rule over any hierarchy. `leaves[i]` is record i's leaf, weighted by `w`.
/// Uses the hierarchy's [`Hierarchy::pass`] (the fast pass for [`IpLevels`]).
pub fn hhh<H: Hierarchy>(
    h: &H,
    leaves: &[H::Leaf],
    w: Weights<'_>,
    threshold: Threshold,
) -> Result<HhhReport<H::Key>, AnalysisError> {
    let (n, nvar) = w.check(leaves.len())?;
    let thr = threshold.resolve(n)?;
    h.pass(aggregate_leaves(h, leaves, w), n, nvar, thr)
}

/// Records summed by leaf key as they are read, for [`hhh`] without keeping them: each part
/// (a worker's) adds its records ([`LeafSums::add`]), the parts are merged in a fixed order
/// ([`LeafSums::merge`]), and [`LeafSums::hhh`] runs the rule on the sums, as [`hhh`] does
/// on the records.
#[derive(Clone, Debug)]
pub struct LeafSums<K> {
    sums: FastMap<K, (f64, f64)>,
    n: f64,
    nvar: f64,
}

impl<K: Clone + Eq + Hash> Default for LeafSums<K> {
    fn default() -> Self {
        LeafSums {
            sums: fast_map(1024),
            n: 0.0,
            nvar: 0.0,
        }
    }
}

impl<K: Clone + Eq + Hash> LeafSums<K> {
    /// Adds one record: its leaf key (`Hierarchy::leaf`), weight and variance term. A weight
    /// that is negative or not finite is refused, as [`hhh`] refuses it.
    #[inline]
    pub fn add(&mut self, key: K, w: f64, var: f64) -> Result<(), AnalysisError> {
        if !(w.is_finite() && w >= 0.0) {
            return Err(AnalysisError::BadWeight { index: 0, value: w });
        }
        let e = self.sums.entry(key).or_insert((0.0, 0.0));
        e.0 += w;
        e.1 += var;
        self.n += w;
        self.nvar += var;
        Ok(())
    }

    /// Adds the sums of `other`.
    pub fn merge(&mut self, other: LeafSums<K>) {
        for (k, (w, v)) in other.sums {
            let e = self.sums.entry(k).or_insert((0.0, 0.0));
            e.0 += w;
            e.1 += v;
        }
        self.n += other.n;
        self.nvar += other.nvar;
    }

    /// The sum of the weights added and of their variance terms.
    pub fn total(&self) -> (f64, f64) {
        (self.n, self.nvar)
    }

    /// Each key's sums (weight, variance), in no particular order.
    pub fn into_sums(self) -> impl Iterator<Item = (K, (f64, f64))> {
        self.sums.into_iter()
    }

    /// The HHH of the records added, in hierarchy `h` (whose leaf keys these are).
    pub fn hhh<H: Hierarchy<Key = K>>(
        self,
        h: &H,
        threshold: Threshold,
    ) -> Result<HhhReport<K>, AnalysisError> {
        let thr = threshold.resolve(self.n)?;
        h.pass(self.sums.into_iter().collect(), self.n, self.nvar, thr)
    }
}

/// [`hhh`] always with the generic [`bottom_up`] pass: the reference the fast passes are tested
/// against, and a baseline for benchmarks.
pub fn hhh_bottom_up<H: Hierarchy>(
    h: &H,
    leaves: &[H::Leaf],
    w: Weights<'_>,
    threshold: Threshold,
) -> Result<HhhReport<H::Key>, AnalysisError> {
    let (n, nvar) = w.check(leaves.len())?;
    let thr = threshold.resolve(n)?;
    bottom_up(h, aggregate_leaves(h, leaves, w).into_iter(), n, nvar, thr)
}

/// The generic pass over aggregated leaves `(key, (total, variance))`: every node of every level
/// is visited, in rank order from the most specific, passing totals and residuals to parents
/// held in a hash map. O(distinct leaves · levels) hash operations.
pub fn bottom_up<H: Hierarchy>(
    h: &H,
    leaves: impl Iterator<Item = (H::Key, (f64, f64))>,
    n: f64,
    nvar: f64,
    thr: f64,
) -> Result<HhhReport<H::Key>, AnalysisError> {
    let max = h.max_rank() as usize;
    let mut buckets: Vec<Vec<H::Key>> = vec![Vec::new(); max + 1];
    let mut nodes: FastMap<H::Key, Node> = fast_map(1024);
    for (k, (total, var)) in leaves {
        let r = h.rank(&k) as usize;
        if r > max {
            return Err(AnalysisError::Internal("hierarchy rank above max_rank"));
        }
        buckets[r].push(k.clone());
        nodes.insert(
            k,
            Node {
                total,
                var,
                resid: total,
            },
        );
    }
    let mut rows = Vec::new();
    let mut unreported = 0.0;
    for r in (0..=max).rev() {
        let mut keys = std::mem::take(&mut buckets[r]);
        // Sorted so that floating-point sums into parents happen in one fixed order.
        keys.sort_unstable();
        for k in keys {
            let node = nodes[&k];
            let reported = node.resid > thr;
            let pass = if reported { 0.0 } else { node.resid };
            if reported {
                rows.push(row(k.clone(), r as u32, node, n));
            }
            match h.parent(&k) {
                Some(p) => {
                    let pr = h.rank(&p) as usize;
                    if pr >= r {
                        return Err(AnalysisError::Internal("parent rank not below child rank"));
                    }
                    let e = nodes.entry(p).or_insert_with_key(|p| {
                        buckets[pr].push(p.clone());
                        Node::default()
                    });
                    e.total += node.total;
                    e.var += node.var;
                    e.resid += pass;
                }
                None => unreported += pass,
            }
        }
    }
    Ok(HhhReport {
        rows: tree_order(h, rows),
        total: n,
        total_variance: nvar,
        threshold: thr,
        unreported_residual: unreported,
    })
}

fn row<K>(key: K, rank: u32, node: Node, n: f64) -> HhhRow<K> {
    HhhRow {
        key,
        rank,
        total: node.total,
        residual: node.resid,
        share: if n > 0.0 { node.total / n } else { 0.0 },
        variance: node.var,
        depth: 0,
    }
}

/// Orders reported rows as a depth-first walk of the tree of reported keys and sets `depth`.
pub fn tree_order<H: Hierarchy>(h: &H, rows: Vec<HhhRow<H::Key>>) -> Vec<HhhRow<H::Key>> {
    let index: FastMap<H::Key, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key.clone(), i))
        .collect::<FastMap<_, _>>();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut roots = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut p = h.parent(&r.key);
        let mut found = None;
        while let Some(k) = p {
            if let Some(&j) = index.get(&k) {
                found = Some(j);
                break;
            }
            p = h.parent(&k);
        }
        match found {
            Some(j) => children[j].push(i),
            None => roots.push(i),
        }
    }
    let by_key = |a: &usize, b: &usize| rows[*a].key.cmp(&rows[*b].key);
    roots.sort_by(by_key);
    for c in &mut children {
        c.sort_by(by_key);
    }
    let mut order: Vec<(usize, u32)> = Vec::with_capacity(rows.len());
    let mut stack: Vec<(usize, u32)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, d)) = stack.pop() {
        order.push((i, d));
        stack.extend(children[i].iter().rev().map(|&c| (c, d + 1)));
    }
    let mut slots: Vec<Option<HhhRow<H::Key>>> = rows.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|(i, d)| {
            let mut r = slots[i].take().expect("each row visited once");
            r.depth = d;
            r
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// IP prefixes

/// A node of the IP hierarchy: a prefix of either family, or the overall root above both.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpKey {
    /// The overall root, parent of `0.0.0.0/0` and `::/0`.
    Any,
    Net(Prefix),
}

impl IpKey {
    fn sort_key(&self) -> (u8, bool, u128, u8) {
        match self {
            IpKey::Any => (0, false, 0, 0),
            IpKey::Net(p) => (1, !p.is_v4(), p.addr().0, p.len()),
        }
    }
}

/// The overall root first, then IPv4 before IPv6, then by address and length: within a family
/// this is the preorder of the prefix tree.
impl Ord for IpKey {
    fn cmp(&self, other: &IpKey) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}
impl PartialOrd for IpKey {
    fn partial_cmp(&self, other: &IpKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpKey::Any => f.write_str("any"),
            IpKey::Net(p) => fmt::Display::fmt(p, f),
        }
    }
}
impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The prefix lengths of the IP hierarchy, per family. Also the [`Hierarchy`] of addresses.
///
/// Invariant: each family's list is non-empty, sorted from longest to shortest, without
/// duplicates, and within the family's bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpLevels {
    v4: Vec<u8>,
    v6: Vec<u8>,
    /// `next_v4[len]`: the next shorter level of the set (only meaningful for lengths in it).
    next_v4: Vec<Option<u8>>,
    next_v6: Vec<Option<u8>>,
}

impl IpLevels {
    /// Every prefix length: /32 … /0 and /128 … /0 (the default, as in Netpy).
    pub fn every() -> IpLevels {
        let v4: Vec<u8> = (0..=32).collect();
        let v6: Vec<u8> = (0..=128).collect();
        IpLevels::new(&v4, &v6).expect("valid")
    }
    /// The given lengths (any order, duplicates ignored). A family's leaves are its addresses
    /// masked to its longest level.
    pub fn new(v4: &[u8], v6: &[u8]) -> Result<IpLevels, AnalysisError> {
        fn norm(l: &[u8], bits: u8, family: &'static str) -> Result<Vec<u8>, AnalysisError> {
            if l.is_empty() {
                return Err(AnalysisError::EmptyLevels { family });
            }
            if let Some(&len) = l.iter().find(|&&x| x > bits) {
                return Err(AnalysisError::BadLevel { len, bits });
            }
            let mut v = l.to_vec();
            v.sort_unstable_by(|a, b| b.cmp(a));
            v.dedup();
            Ok(v)
        }
        let v4 = norm(v4, 32, "IPv4")?;
        let v6 = norm(v6, 128, "IPv6")?;
        let next = |l: &[u8], bits: u8| {
            let mut t = vec![None; bits as usize + 1];
            for w in l.windows(2) {
                t[w[0] as usize] = Some(w[1]);
            }
            t
        };
        Ok(IpLevels {
            next_v4: next(&v4, 32),
            next_v6: next(&v6, 128),
            v4,
            v6,
        })
    }
    /// IPv4 lengths, longest first.
    pub fn v4(&self) -> &[u8] {
        &self.v4
    }
    /// IPv6 lengths, longest first.
    pub fn v6(&self) -> &[u8] {
        &self.v6
    }
}

impl Default for IpLevels {
    fn default() -> IpLevels {
        IpLevels::every()
    }
}

impl Hierarchy for IpLevels {
    type Leaf = u128;
    type Key = IpKey;
    fn leaf(&self, x: u128) -> IpKey {
        let a = Addr(x);
        let len = if a.is_v4() { self.v4[0] } else { self.v6[0] };
        IpKey::Net(Prefix::new(a, len))
    }
    fn parent(&self, key: &IpKey) -> Option<IpKey> {
        match key {
            IpKey::Any => None,
            IpKey::Net(p) => {
                let next = if p.is_v4() {
                    self.next_v4[p.len() as usize]
                } else {
                    self.next_v6[p.len() as usize]
                };
                Some(match next {
                    Some(l) => IpKey::Net(Prefix::new(p.addr(), l)),
                    None => IpKey::Any,
                })
            }
        }
    }
    fn rank(&self, key: &IpKey) -> u32 {
        match key {
            IpKey::Any => 0,
            IpKey::Net(p) => 1 + p.len() as u32,
        }
    }
    fn max_rank(&self) -> u32 {
        129
    }
    fn pass(
        &self,
        leaves: Vec<(IpKey, (f64, f64))>,
        n: f64,
        nvar: f64,
        thr: f64,
    ) -> Result<HhhReport<IpKey>, AnalysisError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (k, (t, v)) in leaves {
            match k {
                IpKey::Net(p) => match p.addr().v4() {
                    Some(a) => v4.push((a, t, v)),
                    None => v6.push((p.addr().0, t, v)),
                },
                IpKey::Any => return Err(AnalysisError::Internal("the IP root given as a leaf")),
            }
        }
        v4.sort_unstable_by_key(|x| x.0);
        v6.sort_unstable_by_key(|x| x.0);
        Ok(ip_report(v4, v6, self, n, nvar, thr))
    }
}

/// A key type of the fast path: `u32` for IPv4, `u128` for IPv6.
trait Bits: Copy + Ord + Hash + Send + Sync {
    fn mask(self, len: u8) -> Self;
    fn prefix(self, len: u8) -> Prefix;
}
impl Bits for u32 {
    #[inline]
    fn mask(self, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            self & (!0u32 << (32 - len))
        }
    }
    fn prefix(self, len: u8) -> Prefix {
        Prefix::new(Addr::from_v4_u32(self), len)
    }
}
impl Bits for u128 {
    #[inline]
    fn mask(self, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            self & (!0u128 << (128 - len))
        }
    }
    fn prefix(self, len: u8) -> Prefix {
        Prefix::new(Addr(self), len)
    }
}

/// IPv4 leaf aggregation, the hot loop of [`hhh_addrs`], as a partitioned counting sort:
///
/// ```text
///  A. per chunk (thread): histogram of the leaves' top 16 bits; IPv6 leaves hashed aside
///  B. cut the 2^16 top values into contiguous buckets of ~N/64 records (a /16 is never cut)
///  C. per chunk: scatter (key, weight, variance) into bucket order
///  D. per bucket range (thread): aggregate each bucket in a small hash map, sort it, append
/// ```
///
/// Invariant: buckets are contiguous ranges of top-16 values in increasing order, so the
/// concatenation of the sorted buckets is sorted; a bucket holds at most a few /16s' keys, so its
/// hash map stays cache-resident, where one map over all leaves would miss the cache per record.
const TOP_BITS: u32 = 16;

struct Scan {
    hist: Vec<u32>,
    v6: Vec<(u128, f64, f64)>,
}

fn scan_chunk(addrs: &[u128], w: Weights<'_>, off: usize, l4: u8, l6: u8) -> Scan {
    let mut hist = vec![0u32; 1 << TOP_BITS];
    let mut m6: FastMap<u128, (f64, f64)> = fast_map(0);
    for (i, &a) in addrs.iter().enumerate() {
        match Addr(a).v4() {
            Some(v4) => hist[(v4.mask(l4) >> (32 - TOP_BITS)) as usize] += 1,
            None => {
                let e = m6.entry(a.mask(l6)).or_insert((0.0, 0.0));
                e.0 += w.weight[off + i];
                e.1 += w.var(off + i);
            }
        }
    }
    let mut v6: Vec<_> = m6.into_iter().map(|(k, (t, v))| (k, t, v)).collect();
    v6.sort_unstable_by_key(|x| x.0);
    Scan { hist, v6 }
}

/// One chunk's IPv4 records in bucket order; `starts[b]..starts[b + 1]` is bucket `b`.
struct Scattered {
    keys: Vec<u32>,
    weight: Vec<f64>,
    var: Vec<f64>,
    starts: Vec<usize>,
}

fn scatter_chunk(
    addrs: &[u128],
    w: Weights<'_>,
    off: usize,
    l4: u8,
    hist: &[u32],
    bucket_of: &[u32],
    nb: usize,
) -> Scattered {
    let mut starts = vec![0usize; nb + 1];
    for (top, &c) in hist.iter().enumerate() {
        starts[bucket_of[top] as usize + 1] += c as usize;
    }
    for b in 0..nb {
        starts[b + 1] += starts[b];
    }
    let n4 = starts[nb];
    let mut pos = starts.clone();
    let mut keys = vec![0u32; n4];
    let mut weight = vec![0.0f64; n4];
    let mut var = if w.variance.is_some() {
        vec![0.0f64; n4]
    } else {
        Vec::new()
    };
    for (i, &a) in addrs.iter().enumerate() {
        if let Some(v4) = Addr(a).v4() {
            let k = v4.mask(l4);
            let b = bucket_of[(k >> (32 - TOP_BITS)) as usize] as usize;
            let p = pos[b];
            pos[b] += 1;
            keys[p] = k;
            weight[p] = w.weight[off + i];
            if let Some(v) = w.variance {
                var[p] = v[off + i];
            }
        }
    }
    Scattered {
        keys,
        weight,
        var,
        starts,
    }
}

fn aggregate_buckets(parts: &[Scattered], buckets: std::ops::Range<usize>) -> Vec<(u32, f64, f64)> {
    let mut out = Vec::new();
    let exact = parts.iter().all(|p| p.var.is_empty());
    // Exact data: 16-byte entries instead of 24, so more of a bucket's map stays in cache.
    let mut m1: FastMap<u32, f64> = fast_map(1 << 12);
    let mut m2: FastMap<u32, (f64, f64)> = fast_map(if exact { 0 } else { 1 << 12 });
    for b in buckets {
        for p in parts {
            let r = p.starts[b]..p.starts[b + 1];
            if exact {
                for (&k, &x) in p.keys[r.clone()].iter().zip(&p.weight[r]) {
                    *m1.entry(k).or_insert(0.0) += x;
                }
            } else {
                let it = p.keys[r.clone()]
                    .iter()
                    .zip(&p.weight[r.clone()])
                    .zip(&p.var[r]);
                for ((&k, &x), &y) in it {
                    let e = m2.entry(k).or_insert((0.0, 0.0));
                    e.0 += x;
                    e.1 += y;
                }
            }
        }
        let from = out.len();
        out.extend(m1.drain().map(|(k, t)| (k, t, 0.0)));
        out.extend(m2.drain().map(|(k, (t, v))| (k, t, v)));
        out[from..].sort_unstable_by_key(|x| x.0);
    }
    out
}

/// Runs `f` on each item of `items`, one scoped thread per item after the first.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().skip(1).map(|x| s.spawn(|| f(x))).collect();
        let mut out: Vec<R> = items.first().map(&f).into_iter().collect();
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("worker panicked")),
        );
        out
    })
}

/// The leaves of both families, each sorted by key, with equal keys added up.
#[allow(clippy::type_complexity)]
fn leaves_of(
    addrs: &[u128],
    w: Weights<'_>,
    l4: u8,
    l6: u8,
) -> (Vec<(u32, f64, f64)>, Vec<(u128, f64, f64)>) {
    let ranges = split_ranges(addrs.len(), workers(addrs.len()));
    let scans = par_map(&ranges, |r| {
        scan_chunk(&addrs[r.clone()], w, r.start, l4, l6)
    });
    let mut hist = vec![0u64; 1 << TOP_BITS];
    let mut v6 = Vec::new();
    for sc in &scans {
        for (h, &c) in hist.iter_mut().zip(&sc.hist) {
            *h += c as u64;
        }
    }
    let n4: u64 = hist.iter().sum();
    let target = (n4 / 64).max(4096);
    let mut bucket_of = vec![0u32; 1 << TOP_BITS];
    let mut bucket_size = vec![0u64];
    for (top, &c) in hist.iter().enumerate() {
        if *bucket_size.last().expect("non-empty") >= target {
            bucket_size.push(0);
        }
        bucket_of[top] = (bucket_size.len() - 1) as u32;
        *bucket_size.last_mut().expect("non-empty") += c;
    }
    let nb = bucket_size.len();
    let parts = par_map(&ranges, |r| {
        let i = ranges.iter().position(|x| x == r).expect("own range");
        scatter_chunk(
            &addrs[r.clone()],
            w,
            r.start,
            l4,
            &scans[i].hist,
            &bucket_of,
            nb,
        )
    });
    // Bucket ranges of about equal record counts, one per worker, in key order.
    let mut groups = Vec::new();
    let (mut from, mut acc) = (0, 0u64);
    let per = n4.div_ceil(ranges.len().max(1) as u64).max(1);
    for (b, &c) in bucket_size.iter().enumerate() {
        acc += c;
        if acc >= per && groups.len() + 1 < ranges.len() {
            groups.push(from..b + 1);
            from = b + 1;
            acc = 0;
        }
    }
    groups.push(from..nb);
    let runs = par_map(&groups, |g| aggregate_buckets(&parts, g.clone()));
    let v4 = runs.concat();
    for sc in scans {
        v6 = merge_sorted(v6, sc.v6);
    }
    (v4, v6)
}

/// Merges two key-sorted runs, adding up equal keys.
fn merge_sorted<K: Ord + Copy>(a: Vec<(K, f64, f64)>, b: Vec<(K, f64, f64)>) -> Vec<(K, f64, f64)> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1, a[i].2 + b[j].2));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// A node whose total exceeds T: the only kind that can be reported.
#[derive(Clone, Copy, Debug)]
struct Heavy<K> {
    key: K,
    /// The node's leaves are `keys[lo..hi]` of its family.
    lo: usize,
    hi: usize,
    total: f64,
    var: f64,
}

/// The groups of `keys[lo..hi]` (sorted) by their prefix of length `len`, as (prefix, lo, hi).
fn groups<K: Bits>(
    keys: &[K],
    lo: usize,
    hi: usize,
    len: u8,
) -> impl Iterator<Item = (K, usize, usize)> + '_ {
    let mut i = lo;
    std::iter::from_fn(move || {
        if i >= hi {
            return None;
        }
        let k = keys[i].mask(len);
        // Sorted keys: those sharing the prefix come first in keys[i..hi].
        let end = i + keys[i..hi].partition_point(|x| x.mask(len) == k);
        let g = (k, i, end);
        i = end;
        Some(g)
    })
}

/// The HHH pass of one family over its sorted, distinct leaves. Reported prefixes go to `rows`;
/// returns what the family's coarsest level hands to [`IpKey::Any`].
///
/// A node with total ≤ T is never reported and neither is anything below it (a residual never
/// exceeds the total), and it passes its whole total up. So only *heavy* nodes (total > T) need
/// a residual: at most N/T of them per level, found top-down (a heavy node's parent is heavy),
/// with totals from prefix sums over the sorted leaves. Then, bottom-up over heavy nodes only,
/// `residual = total − Σ over heavy children c of (total(c) − pass(c))`: light children pass
/// their totals whole. The work is O(leaves) plus O(heavy nodes · log leaves), instead of
/// O(leaves · levels) for a plain level-by-level pass.
///
/// Totals are prefix-sum differences: exact for integer weights (bytes, packets, sampled
/// weights with an integer threshold) up to 2^53, within rounding otherwise.
fn family_pass<K: Bits>(
    leaves: Vec<(K, f64, f64)>,
    levels: &[u8],
    thr: f64,
    n: f64,
    rows: &mut Vec<HhhRow<IpKey>>,
) -> Node {
    let keys: Vec<K> = leaves.iter().map(|x| x.0).collect();
    let mut sum = Vec::with_capacity(leaves.len() + 1);
    let mut var = Vec::with_capacity(leaves.len() + 1);
    let (mut s, mut v) = (0.0, 0.0);
    sum.push(0.0);
    var.push(0.0);
    for &(_, t, x) in &leaves {
        s += t;
        v += x;
        sum.push(s);
        var.push(v);
    }
    drop(leaves);
    let d = keys.len();
    let node = |key: K, lo: usize, hi: usize| Heavy {
        key,
        lo,
        hi,
        total: sum[hi] - sum[lo],
        var: var[hi] - var[lo],
    };
    let m = levels.len();
    // heavy[j]: heavy nodes at level levels[j] (finest first), sorted by key.
    let mut heavy: Vec<Vec<Heavy<K>>> = vec![Vec::new(); m];
    heavy[m - 1] = groups(&keys, 0, d, levels[m - 1])
        .map(|(k, lo, hi)| node(k, lo, hi))
        .filter(|h| h.total > thr)
        .collect();
    for j in (0..m - 1).rev() {
        let (finer, coarser) = heavy.split_at_mut(j + 1);
        for p in &coarser[0] {
            finer[j].extend(
                groups(&keys, p.lo, p.hi, levels[j])
                    .map(|(k, lo, hi)| node(k, lo, hi))
                    .filter(|h| h.total > thr),
            );
        }
    }
    // Bottom-up: what each heavy node of the level below holds back from its parent.
    let mut held: Vec<(usize, f64)> = Vec::new(); // (hi of the child, total − pass)
    for (j, level) in heavy.iter().enumerate() {
        let mut next = Vec::with_capacity(level.len());
        let mut c = 0;
        for h in level {
            let mut deduct = 0.0;
            while c < held.len() && held[c].0 <= h.hi {
                deduct += held[c].1;
                c += 1;
            }
            let resid = h.total - deduct;
            let reported = resid > thr;
            if reported {
                let nd = Node {
                    total: h.total,
                    var: h.var,
                    resid,
                };
                rows.push(row(
                    IpKey::Net(h.key.prefix(levels[j])),
                    1 + levels[j] as u32,
                    nd,
                    n,
                ));
            }
            next.push((h.hi, if reported { h.total } else { deduct }));
        }
        held = next;
    }
    let deduct: f64 = held.iter().map(|x| x.1).sum();
    Node {
        total: sum[d],
        var: var[d],
        resid: sum[d] - deduct,
    }
}

/// The fast path: HHH of addresses (`u128` form, IPv4 mapped) over `levels`.
///
/// Same result as [`hhh`] with [`IpLevels`] as the hierarchy. Leaves are aggregated in hash
/// maps on up to 2 threads, sorted, merged, then each level is one linear pass.
pub fn hhh_addrs(
    levels: &IpLevels,
    addrs: &[u128],
    w: Weights<'_>,
    threshold: Threshold,
) -> Result<HhhReport<IpKey>, AnalysisError> {
    let (n, nvar) = w.check(addrs.len())?;
    let thr = threshold.resolve(n)?;
    let (l4, l6) = (levels.v4[0], levels.v6[0]);
    let (v4, v6) = leaves_of(addrs, w, l4, l6);
    Ok(ip_report(v4, v6, levels, n, nvar, thr))
}

/// [`hhh_addrs`] from leaves already aggregated (by a streaming group-by over many batches):
/// the IPv4 leaves as `u32` masked to `levels.v4[0]` bits, the IPv6 leaves in `u128` form
/// masked to `levels.v6[0]`, each `(key, Σ weight, Σ variance term)`, in any order and each key
/// once. The result is the one [`hhh_addrs`] gives on the records.
pub fn hhh_addr_leaves(
    levels: &IpLevels,
    mut v4: Vec<(u32, f64, f64)>,
    mut v6: Vec<(u128, f64, f64)>,
    threshold: Threshold,
) -> Result<HhhReport<IpKey>, AnalysisError> {
    let mut n = 0.0;
    let mut nvar = 0.0;
    for (i, &(_, w, v)) in v4.iter().enumerate() {
        if !(w.is_finite() && w >= 0.0) {
            return Err(AnalysisError::BadWeight { index: i, value: w });
        }
        n += w;
        nvar += v;
    }
    for (i, &(_, w, v)) in v6.iter().enumerate() {
        if !(w.is_finite() && w >= 0.0) {
            return Err(AnalysisError::BadWeight { index: i, value: w });
        }
        n += w;
        nvar += v;
    }
    let thr = threshold.resolve(n)?;
    radix_sort_u32(&mut v4);
    v6.sort_unstable_by_key(|x| x.0);
    Ok(ip_report(v4, v6, levels, n, nvar, thr))
}

/// Sorts by key: two stable counting passes of 16 bits (a comparison sort of a million leaves
/// takes several times longer).
fn radix_sort_u32<T: Copy>(v: &mut Vec<(u32, T, T)>) {
    if v.len() < 1 << 12 {
        v.sort_unstable_by_key(|x| x.0);
        return;
    }
    let mut tmp = v.clone();
    for shift in [0u32, 16] {
        let digit = |k: u32| ((k >> shift) & 0xffff) as usize;
        let mut start = vec![0usize; (1 << 16) + 1];
        for x in v.iter() {
            start[digit(x.0) + 1] += 1;
        }
        for d in 0..1 << 16 {
            start[d + 1] += start[d];
        }
        for x in v.iter() {
            let d = digit(x.0);
            tmp[start[d]] = *x;
            start[d] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
}

/// The report from each family's sorted, distinct leaves: both family passes, then the overall
/// root.
fn ip_report(
    v4: Vec<(u32, f64, f64)>,
    v6: Vec<(u128, f64, f64)>,
    levels: &IpLevels,
    n: f64,
    nvar: f64,
    thr: f64,
) -> HhhReport<IpKey> {
    let mut rows = Vec::new();
    let up4 = family_pass(v4, &levels.v4, thr, n, &mut rows);
    let up6 = family_pass(v6, &levels.v6, thr, n, &mut rows);
    let any = Node {
        total: up4.total + up6.total,
        var: up4.var + up6.var,
        resid: up4.resid + up6.resid,
    };
    let mut unreported = any.resid;
    if any.resid > thr {
        rows.push(row(IpKey::Any, 0, any, n));
        unreported = 0.0;
    }
    HhhReport {
        rows: tree_order(levels, rows),
        total: n,
        total_variance: nvar,
        threshold: thr,
        unreported_residual: unreported,
    }
}

// ---------------------------------------------------------------------------------------------
// Applications

/// Which port an application hierarchy groups by below the full `(proto, sport, dport)` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSide {
    /// Netpy's form: (proto, sport, dport) → (proto, sport) → (proto, low|high sport) → proto.
    Source,
    /// The same with the destination port.
    Destination,
}

impl PortSide {
    fn name(self) -> &'static str {
        match self {
            PortSide::Source => "sport",
            PortSide::Destination => "dport",
        }
    }
}

/// Ports below this are "low" (well-known); from it on, "high".
pub const FIRST_HIGH_PORT: u16 = 1024;

/// A node of the application hierarchy (ORACLES §1 Example 2). Ranks: `Root` 0, `Proto` 1,
/// `Class` 2, `Port` 3, `Flow` 4. A protocol without ports keeps `Proto` at every level below
/// the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppKey {
    Root,
    Proto(u8),
    /// Low (0–1023) or high (1024–65535) ports of `side`.
    Class {
        proto: u8,
        side: PortSide,
        high: bool,
    },
    Port {
        proto: u8,
        side: PortSide,
        port: u16,
    },
    Flow {
        proto: u8,
        sport: u16,
        dport: u16,
    },
}

impl fmt::Display for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AppKey::Root => f.write_str("any"),
            AppKey::Proto(p) => write!(f, "{}", proto::name(p)),
            AppKey::Class {
                proto: p,
                side,
                high,
            } => {
                let range = if high { "1024-65535" } else { "0-1023" };
                write!(f, "{} {} {range}", proto::name(p), side.name())
            }
            AppKey::Port {
                proto: p,
                side,
                port,
            } => write!(f, "{} {} {port}", proto::name(p), side.name()),
            AppKey::Flow {
                proto: p,
                sport,
                dport,
            } => write!(f, "{} {sport}->{dport}", proto::name(p)),
        }
    }
}

/// The application hierarchy over `(proto, sport, dport)` leaves, by source or destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppHierarchy {
    pub side: PortSide,
}

impl Hierarchy for AppHierarchy {
    type Leaf = (u8, u16, u16);
    type Key = AppKey;
    fn leaf(&self, (p, sport, dport): (u8, u16, u16)) -> AppKey {
        if proto::has_ports(p) {
            AppKey::Flow {
                proto: p,
                sport,
                dport,
            }
        } else {
            AppKey::Proto(p)
        }
    }
    fn parent(&self, key: &AppKey) -> Option<AppKey> {
        let side = self.side;
        match *key {
            AppKey::Root => None,
            AppKey::Proto(_) => Some(AppKey::Root),
            AppKey::Class { proto: p, .. } => Some(AppKey::Proto(p)),
            AppKey::Port { proto: p, port, .. } => Some(AppKey::Class {
                proto: p,
                side,
                high: port >= FIRST_HIGH_PORT,
            }),
            AppKey::Flow {
                proto: p,
                sport,
                dport,
            } => Some(AppKey::Port {
                proto: p,
                side,
                port: if side == PortSide::Source {
                    sport
                } else {
                    dport
                },
            }),
        }
    }
    fn rank(&self, key: &AppKey) -> u32 {
        match key {
            AppKey::Root => 0,
            AppKey::Proto(_) => 1,
            AppKey::Class { .. } => 2,
            AppKey::Port { .. } => 3,
            AppKey::Flow { .. } => 4,
        }
    }
    fn max_rank(&self) -> u32 {
        4
    }
}

// ---------------------------------------------------------------------------------------------
// A user's prefix map

/// One row of a user's prefix map: a prefix, the AS announcing it, the AS's organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixMapRow {
    pub prefix: Prefix,
    pub asn: u32,
    pub org: String,
}

/// A node of the prefix-map hierarchy: prefix → AS → organisation → root. Addresses no prefix
/// matches are `Unknown` at every level below the root. Ranks: `Root` 0, `Org` 1, `As` 2,
/// `Net` and `Unknown` 3.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKey {
    Root,
    Org(Arc<str>),
    As(u32),
    Net(Prefix),
    Unknown,
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Root => f.write_str("any"),
            MapKey::Org(o) => f.write_str(o),
            MapKey::As(a) => write!(f, "AS{a}"),
            MapKey::Net(p) => write!(f, "{p}"),
            MapKey::Unknown => f.write_str("unknown"),
        }
    }
}

/// A prefix map with longest-prefix match; the [`Hierarchy`] of addresses through it.
#[derive(Clone, Debug)]
pub struct PrefixMap {
    /// Prefix → AS. Invariant: every AS here has an entry in `orgs`.
    nets: FastMap<Prefix, u32>,
    orgs: FastMap<u32, Arc<str>>,
    /// Lengths present per family, longest first: the lookup tries these only.
    lens_v4: Vec<u8>,
    lens_v6: Vec<u8>,
}

impl PrefixMap {
    /// Builds the map; a prefix may appear once, and an AS belongs to one organisation.
    pub fn new(rows: &[PrefixMapRow]) -> Result<PrefixMap, AnalysisError> {
        let mut nets: FastMap<Prefix, u32> = fast_map(rows.len());
        let mut orgs: FastMap<u32, Arc<str>> = fast_map(rows.len());
        for r in rows {
            if let Some(&first) = nets.get(&r.prefix)
                && first != r.asn
            {
                return Err(AnalysisError::DuplicatePrefix {
                    prefix: r.prefix.to_string(),
                    first,
                    second: r.asn,
                });
            }
            nets.insert(r.prefix, r.asn);
            match orgs.get(&r.asn) {
                Some(o) if **o != *r.org => {
                    return Err(AnalysisError::ConflictingOrg {
                        asn: r.asn,
                        first: o.to_string(),
                        second: r.org.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    orgs.insert(r.asn, Arc::from(r.org.as_str()));
                }
            }
        }
        let lens = |v4: bool| {
            let mut l: Vec<u8> = nets
                .keys()
                .filter(|p| p.is_v4() == v4)
                .map(|p| p.len())
                .collect();
            l.sort_unstable_by(|a, b| b.cmp(a));
            l.dedup();
            l
        };
        Ok(PrefixMap {
            lens_v4: lens(true),
            lens_v6: lens(false),
            nets,
            orgs,
        })
    }
    /// Every prefix of the map with its AS and organisation, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (Prefix, u32, Arc<str>)> + '_ {
        self.nets.iter().map(|(p, asn)| {
            let org = self.orgs.get(asn).cloned().unwrap_or_else(|| Arc::from(""));
            (*p, *asn, org)
        })
    }
    /// The longest prefix of the map containing `a`.
    pub fn lookup(&self, a: Addr) -> Option<Prefix> {
        let lens = if a.is_v4() {
            &self.lens_v4
        } else {
            &self.lens_v6
        };
        lens.iter()
            .map(|&l| Prefix::new(a, l))
            .find(|p| self.nets.contains_key(p))
    }
}

impl PrefixMap {
    /// The map's entry for the prefix `p`: the most specific mapped prefix that contains all
    /// of `p`, with its AS and organisation (the Internet2 talk's "where's it coming from").
    pub fn describe(&self, p: Prefix) -> Option<(Prefix, u32, Arc<str>)> {
        let lens = if p.is_v4() {
            &self.lens_v4
        } else {
            &self.lens_v6
        };
        let net = lens
            .iter()
            .filter(|&&l| l <= p.len())
            .map(|&l| Prefix::new(p.addr(), l))
            .find(|q| self.nets.contains_key(q))?;
        let asn = self.nets[&net];
        let org = self
            .orgs
            .get(&asn)
            .cloned()
            .unwrap_or_else(|| Arc::from(""));
        Some((net, asn, org))
    }
}

impl Hierarchy for PrefixMap {
    type Leaf = u128;
    type Key = MapKey;
    fn leaf(&self, x: u128) -> MapKey {
        match self.lookup(Addr(x)) {
            Some(p) => MapKey::Net(p),
            None => MapKey::Unknown,
        }
    }
    fn parent(&self, key: &MapKey) -> Option<MapKey> {
        match key {
            MapKey::Root => None,
            MapKey::Org(_) | MapKey::Unknown => Some(MapKey::Root),
            MapKey::As(a) => Some(match self.orgs.get(a) {
                Some(o) => MapKey::Org(o.clone()),
                None => MapKey::Root,
            }),
            MapKey::Net(p) => Some(match self.nets.get(p) {
                Some(&a) => MapKey::As(a),
                None => MapKey::Root,
            }),
        }
    }
    fn rank(&self, key: &MapKey) -> u32 {
        match key {
            MapKey::Root => 0,
            MapKey::Org(_) => 1,
            MapKey::As(_) => 2,
            MapKey::Net(_) | MapKey::Unknown => 3,
        }
    }
    fn max_rank(&self) -> u32 {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{clustered_addrs, rng, v4, weights};
    use rand::RngExt;

    /// Leaves grouped elsewhere (in any order) give the report of the records themselves.
    #[test]
    fn leaves_aggregated_elsewhere_give_the_same_report() {
        for seed in 0..30 {
            let mut r = rng(seed);
            let n = if seed % 3 == 0 {
                20_000
            } else {
                r.random_range(0..3000)
            };
            let addrs = clustered_addrs(&mut r, n, seed % 2 == 0);
            let w = weights(&mut r, n);
            let var: Vec<f64> = w.iter().map(|x| (x / 3.0).floor()).collect();
            let levels = if seed % 4 == 1 {
                IpLevels::new(&[8, 16, 24], &[32, 48, 64]).unwrap()
            } else {
                IpLevels::every()
            };
            let (l4, l6) = (levels.v4()[0], levels.v6()[0]);
            let mut m4: std::collections::HashMap<u32, (f64, f64)> = Default::default();
            let mut m6: std::collections::HashMap<u128, (f64, f64)> = Default::default();
            for ((&a, &x), &y) in addrs.iter().zip(&w).zip(&var) {
                let e = match Addr(a).v4() {
                    Some(k) => m4.entry(k.mask(l4)).or_default(),
                    None => m6.entry(a.mask(l6)).or_default(),
                };
                e.0 += x;
                e.1 += y;
            }
            let v4s = m4.into_iter().map(|(k, (x, y))| (k, x, y)).collect();
            let v6s = m6.into_iter().map(|(k, (x, y))| (k, x, y)).collect();
            let t = Threshold::Share(0.05);
            let got = hhh_addr_leaves(&levels, v4s, v6s, t).unwrap();
            let want = hhh_addrs(&levels, &addrs, Weights::sampled(&w, &var), t).unwrap();
            assert_eq!(got.rows, want.rows, "seed {seed}");
            assert_eq!(got.total, want.total);
            assert_eq!(got.total_variance, want.total_variance);
        }
    }

    /// The naive reference: for each node (every ancestor of every leaf), from the most specific
    /// rank up, its residual is the traffic of the records under it that no already reported
    /// key below it covers. Quadratic, and shares no code with the pass-up implementation.
    fn naive<H: Hierarchy>(
        h: &H,
        leaves: &[H::Leaf],
        w: &[f64],
        thr: f64,
    ) -> Vec<(H::Key, f64, f64)> {
        let chains: Vec<Vec<H::Key>> = leaves.iter().map(|&x| h.chain(&h.leaf(x))).collect();
        let mut nodes: Vec<H::Key> = chains.iter().flatten().cloned().collect();
        nodes.sort();
        nodes.dedup();
        nodes.sort_by_key(|k| std::cmp::Reverse(h.rank(k)));
        let mut reported: Vec<(H::Key, f64, f64)> = Vec::new();
        for node in nodes {
            let (mut total, mut resid) = (0.0, 0.0);
            for (c, &wt) in chains.iter().zip(w) {
                if let Some(pos) = c.iter().position(|k| *k == node) {
                    total += wt;
                    if !c[..pos].iter().any(|k| reported.iter().any(|r| r.0 == *k)) {
                        resid += wt;
                    }
                }
            }
            if resid > thr {
                reported.push((node, total, resid));
            }
        }
        reported.sort_by(|a, b| a.0.cmp(&b.0));
        reported
    }

    fn triples<K: Clone + Ord>(rep: &HhhReport<K>) -> Vec<(K, f64, f64)> {
        let mut v: Vec<_> = rep
            .rows
            .iter()
            .map(|r| (r.key.clone(), r.total, r.residual))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn shown<K: fmt::Display>(rep: &HhhReport<K>) -> Vec<(String, f64)> {
        let mut v: Vec<_> = rep
            .rows
            .iter()
            .map(|r| (r.key.to_string(), r.total))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn expect(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        let mut v: Vec<_> = list.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn example1() -> (Vec<u128>, Vec<f64>) {
        let rows = [
            ("10.0.0.1", 300.0),
            ("10.0.0.2", 60.0),
            ("10.0.0.3", 50.0),
            ("10.0.1.5", 40.0),
            ("10.0.1.6", 30.0),
            ("10.1.0.1", 90.0),
            ("192.168.1.1", 95.0),
            ("192.168.1.2", 25.0),
            ("172.16.5.5", 80.0),
            ("8.8.8.8", 70.0),
            ("1.2.3.4", 60.0),
            ("203.0.113.9", 100.0),
        ];
        (
            rows.iter().map(|r| v4(r.0)).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }

    #[test]
    fn example_1_matches_oracles_for_every_threshold_and_level_set() {
        let (a, w) = example1();
        let coarse = IpLevels::new(&[32, 24, 16, 8, 0], &[128, 0]).unwrap();
        let every = IpLevels::every();
        type Case<'a> = (&'a IpLevels, f64, Vec<(String, f64)>);
        let cases: [Case; 5] = [
            (
                &every,
                100.0,
                expect(&[
                    ("10.0.0.1/32", 300.0),
                    ("10.0.0.2/31", 110.0),
                    ("192.168.1.0/30", 120.0),
                    ("10.0.0.0/15", 570.0),
                    ("0.0.0.0/4", 700.0),
                    ("128.0.0.0/1", 300.0),
                ]),
            ),
            (
                &every,
                99.0,
                expect(&[
                    ("10.0.0.1/32", 300.0),
                    ("203.0.113.9/32", 100.0),
                    ("10.0.0.2/31", 110.0),
                    ("192.168.1.0/30", 120.0),
                    ("10.0.0.0/15", 570.0),
                    ("0.0.0.0/4", 700.0),
                ]),
            ),
            (
                &every,
                150.0,
                expect(&[
                    ("10.0.0.1/32", 300.0),
                    ("10.0.0.0/23", 480.0),
                    ("8.0.0.0/6", 640.0),
                    ("192.0.0.0/4", 220.0),
                ]),
            ),
            (
                &coarse,
                100.0,
                expect(&[
                    ("10.0.0.1/32", 300.0),
                    ("10.0.0.0/24", 410.0),
                    ("192.168.1.0/24", 120.0),
                    ("10.0.0.0/8", 570.0),
                    ("0.0.0.0/0", 1000.0),
                ]),
            ),
            (
                &coarse,
                150.0,
                expect(&[
                    ("10.0.0.1/32", 300.0),
                    ("10.0.0.0/16", 480.0),
                    ("0.0.0.0/0", 1000.0),
                ]),
            ),
        ];
        for (levels, t, want) in cases {
            let fast = hhh_addrs(levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            let slow =
                hhh_bottom_up(levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            assert_eq!(
                fast,
                hhh(levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap()
            );
            assert_eq!(
                shown(&fast),
                want,
                "fast path, T = {t}, levels {:?}",
                levels.v4()
            );
            assert_eq!(fast, slow, "fast and generic paths differ at T = {t}");
            assert_eq!(fast.total, 1000.0);
        }
    }

    #[test]
    fn example_1_exactly_t_is_not_reported_and_flows_up() {
        let (a, w) = example1();
        let rep = hhh_addrs(
            &IpLevels::every(),
            &a,
            Weights::exact(&w),
            Threshold::Share(0.1),
        )
        .unwrap();
        assert_eq!(rep.threshold, 100.0);
        assert!(
            !rep.rows
                .iter()
                .any(|r| r.key.to_string() == "203.0.113.9/32")
        );
        let top = rep
            .rows
            .iter()
            .find(|r| r.key.to_string() == "128.0.0.0/1")
            .unwrap();
        assert_eq!((top.total, top.residual), (300.0, 180.0));
        assert_eq!(rep.unreported_residual, 0.0);
    }

    #[test]
    fn lowering_t_can_unreport_an_ancestor() {
        // ORACLES §2.7: 10.0.0.0/23 is reported at T = 150 but not at T = 100.
        let (a, w) = example1();
        let has = |t: f64| {
            hhh_addrs(
                &IpLevels::every(),
                &a,
                Weights::exact(&w),
                Threshold::Absolute(t),
            )
            .unwrap()
            .rows
            .iter()
            .any(|r| r.key.to_string() == "10.0.0.0/23")
        };
        assert!(has(150.0));
        assert!(!has(100.0));
    }

    fn example2() -> (Vec<(u8, u16, u16)>, Vec<f64>) {
        let t = proto::TCP;
        let u = proto::UDP;
        let rows = [
            ((t, 80, 51000), 200.0),
            ((t, 80, 51001), 150.0),
            ((t, 443, 52000), 90.0),
            ((t, 443, 52001), 80.0),
            ((t, 22, 40000), 30.0),
            ((t, 51234, 80), 120.0),
            ((t, 60001, 443), 60.0),
            ((u, 53, 33000), 70.0),
            ((u, 53, 33001), 40.0),
            ((u, 33333, 53), 50.0),
            ((proto::ICMP, 0, 0), 110.0),
        ];
        (
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }

    #[test]
    fn example_2_matches_oracles() {
        let (l, w) = example2();
        let h = AppHierarchy {
            side: PortSide::Source,
        };
        let t100 = hhh(&h, &l, Weights::exact(&w), Threshold::Absolute(100.0)).unwrap();
        assert_eq!(
            shown(&t100),
            expect(&[
                ("TCP 80->51000", 200.0),
                ("TCP 80->51001", 150.0),
                ("TCP 51234->80", 120.0),
                ("ICMP", 110.0),
                ("TCP sport 443", 170.0),
                ("UDP sport 53", 110.0),
                ("any", 1000.0),
            ])
        );
        let t150 = hhh(&h, &l, Weights::exact(&w), Threshold::Absolute(150.0)).unwrap();
        assert_eq!(
            shown(&t150),
            expect(&[
                ("TCP 80->51000", 200.0),
                ("TCP sport 443", 170.0),
                ("TCP sport 0-1023", 550.0),
                ("TCP sport 1024-65535", 180.0),
                ("UDP", 160.0),
            ])
        );
        // Tree order: TCP low ports above its children, at depth 0.
        let keys: Vec<String> = t150.rows.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "UDP",
                "TCP sport 0-1023",
                "TCP sport 443",
                "TCP 80->51000",
                "TCP sport 1024-65535"
            ]
        );
        let depth = |k: &str| {
            t150.rows
                .iter()
                .find(|r| r.key.to_string() == k)
                .unwrap()
                .depth
        };
        assert_eq!(depth("TCP sport 0-1023"), 0);
        assert_eq!(depth("TCP sport 443"), 1);
        assert_eq!(depth("TCP 80->51000"), 1);
        assert_eq!(depth("UDP"), 0);
    }

    /// A random input for one seed: addresses (IPv4 clustered, some IPv6), weights, and a level
    /// set (every length, or a random subset).
    fn random_case(seed: u64) -> (Vec<u128>, Vec<f64>, IpLevels, f64) {
        let mut r = rng(seed);
        let n = r.random_range(1..120);
        let a = clustered_addrs(&mut r, n, seed.is_multiple_of(3));
        let w = weights(&mut r, n);
        let levels = if seed.is_multiple_of(2) {
            IpLevels::every()
        } else {
            let v4: Vec<u8> = (0..=32).filter(|_| r.random_bool(0.3)).collect();
            let v6: Vec<u8> = (0..=128).filter(|_| r.random_bool(0.1)).collect();
            IpLevels::new(
                if v4.is_empty() { &[32] } else { &v4 },
                if v6.is_empty() { &[0] } else { &v6 },
            )
            .unwrap()
        };
        let total: f64 = w.iter().sum();
        let t = (total * r.random_range(0.005..0.6)).floor();
        (a, w, levels, t)
    }

    #[test]
    fn fast_generic_and_naive_agree_on_random_inputs() {
        for seed in 0..300 {
            let (a, w, levels, t) = random_case(seed);
            let fast = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            let slow =
                hhh_bottom_up(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            assert_eq!(fast, slow, "seed {seed}");
            let via_trait = hhh(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            assert_eq!(fast, via_trait, "seed {seed}");
            assert_eq!(triples(&fast), naive(&levels, &a, &w, t), "seed {seed}");
        }
    }

    #[test]
    fn the_two_thread_partitioned_path_agrees_with_the_bottom_up_pass() {
        // Large enough for two workers and many buckets (see `workers` and `leaves_of`).
        for seed in 0..2 {
            let mut r = rng(seed);
            let n = 300_000;
            let a = clustered_addrs(&mut r, n, seed == 1);
            let w = weights(&mut r, n);
            let var: Vec<f64> = w.iter().map(|x| (x / 3.0).floor()).collect();
            for t in [Threshold::Share(0.001), Threshold::Share(0.05)] {
                let ws = Weights::sampled(&w, &var);
                let fast = hhh_addrs(&IpLevels::every(), &a, ws, t).unwrap();
                let slow = hhh_bottom_up(&IpLevels::every(), &a, ws, t).unwrap();
                assert!(!fast.rows.is_empty());
                assert_eq!(fast, slow, "seed {seed}");
            }
        }
    }

    #[test]
    fn application_and_prefix_map_hierarchies_agree_with_naive() {
        for seed in 0..200 {
            let mut r = rng(seed);
            let n = r.random_range(1..100);
            let w = weights(&mut r, n);
            let leaves: Vec<(u8, u16, u16)> = (0..n)
                .map(|_| {
                    let p = [proto::TCP, proto::UDP, proto::ICMP, proto::GRE][r.random_range(0..4)];
                    let port = |r: &mut rand::rngs::StdRng| {
                        [22, 53, 80, 443, 1023, 1024, 8080, 51000][r.random_range(0..8)]
                    };
                    (p, port(&mut r), port(&mut r))
                })
                .collect();
            let total: f64 = w.iter().sum();
            let t = (total * r.random_range(0.01..0.5)).floor();
            for side in [PortSide::Source, PortSide::Destination] {
                let h = AppHierarchy { side };
                let rep = hhh(&h, &leaves, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
                assert_eq!(triples(&rep), naive(&h, &leaves, &w, t), "seed {seed}");
                // Summed by leaf in parts (as workers fold them) and merged: the same report.
                let share = Threshold::Share(r.random_range(0.01..0.5));
                let whole = hhh(&h, &leaves, Weights::exact(&w), share).unwrap();
                let mut sums = LeafSums::default();
                let mut at = 0;
                while at < n {
                    let to = (at + r.random_range(1..40)).min(n);
                    let mut part = LeafSums::default();
                    for i in at..to {
                        part.add(h.leaf(leaves[i]), w[i], 0.0).unwrap();
                    }
                    sums.merge(part);
                    at = to;
                }
                assert_eq!(sums.hhh(&h, share).unwrap(), whole, "seed {seed}");
            }
            let a = clustered_addrs(&mut r, n, true);
            let map_rows: Vec<PrefixMapRow> = a
                .iter()
                .take(8)
                .enumerate()
                .map(|(i, &x)| PrefixMapRow {
                    prefix: Prefix::new(Addr(x), [8u8, 16, 24, 28, 48][i % 5]),
                    asn: 64500 + (i as u32 % 4),
                    org: format!("org{}", i % 4 / 2),
                })
                .collect();
            // Equal prefixes may be drawn twice: keep the first AS of each.
            let mut seen = std::collections::HashSet::new();
            let map_rows: Vec<_> = map_rows
                .into_iter()
                .filter(|m| seen.insert(m.prefix))
                .collect();
            let map = PrefixMap::new(&map_rows).unwrap();
            let rep = hhh(&map, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            assert_eq!(triples(&rep), naive(&map, &a, &w, t), "seed {seed}");
        }
    }

    #[test]
    fn extreme_thresholds_report_nothing_or_every_leaf() {
        // ORACLES §2.1.
        for seed in 0..100 {
            let (a, w, levels, _) = random_case(seed);
            let n: f64 = w.iter().sum();
            let none = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(n)).unwrap();
            assert!(none.rows.is_empty(), "seed {seed}");
            assert_eq!(none.unreported_residual, n);
            let all =
                hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(1e-9)).unwrap();
            let mut leaves: Vec<IpKey> = a.iter().map(|&x| levels.leaf(x)).collect();
            leaves.sort();
            leaves.dedup();
            let mut got: Vec<IpKey> = all.rows.iter().map(|r| r.key).collect();
            got.sort();
            assert_eq!(got, leaves, "seed {seed}");
        }
    }

    #[test]
    fn conservation_bounds_and_totals_hold() {
        // ORACLES §2.2, §2.3, §2.6.
        for seed in 0..200 {
            let (a, w, levels, t) = random_case(seed);
            let rep = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            let n: f64 = w.iter().sum();
            let resid: f64 = rep.rows.iter().map(|r| r.residual).sum();
            assert_eq!(resid + rep.unreported_residual, n, "seed {seed}");
            if t > 0.0 {
                assert!(rep.rows.len() as f64 <= (n / t).floor(), "seed {seed}");
            }
            for row in &rep.rows {
                assert!(row.total >= row.residual && row.residual > t, "seed {seed}");
                let under: f64 = a
                    .iter()
                    .zip(&w)
                    .filter(|(x, _)| match row.key {
                        IpKey::Any => true,
                        IpKey::Net(p) => p.contains(Addr(**x)),
                    })
                    .map(|(_, w)| w)
                    .sum();
                assert_eq!(row.total, under, "seed {seed} key {}", row.key);
                assert_eq!(row.share, row.total / n);
                if let IpKey::Net(p) = row.key {
                    let set = if p.is_v4() { levels.v4() } else { levels.v6() };
                    assert!(
                        set.contains(&p.len()),
                        "seed {seed}: {p} outside the level set"
                    );
                }
            }
        }
    }

    #[test]
    fn order_splitting_and_merging_do_not_matter() {
        // ORACLES §2.4.
        for seed in 0..150 {
            let (a, w, levels, t) = random_case(seed);
            let base = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            let mut r = rng(seed ^ 0xabc);
            // Shuffle, and split some records in two (integer parts).
            let mut items: Vec<(u128, f64)> = Vec::new();
            for (&x, &wt) in a.iter().zip(&w) {
                if wt >= 2.0 && r.random_bool(0.3) {
                    let part = (wt / 2.0).floor();
                    items.push((x, part));
                    items.push((x, wt - part));
                } else {
                    items.push((x, wt));
                }
            }
            for i in (1..items.len()).rev() {
                items.swap(i, r.random_range(0..=i));
            }
            let (a2, w2): (Vec<u128>, Vec<f64>) = items.iter().copied().unzip();
            let split =
                hhh_addrs(&levels, &a2, Weights::exact(&w2), Threshold::Absolute(t)).unwrap();
            assert_eq!(base, split, "seed {seed}");
            // Merging duplicates: one record per distinct address.
            let mut merged: std::collections::BTreeMap<u128, f64> = Default::default();
            for (&x, &wt) in a.iter().zip(&w) {
                *merged.entry(x).or_default() += wt;
            }
            let (a3, w3): (Vec<u128>, Vec<f64>) = merged.into_iter().unzip();
            let m = hhh_addrs(&levels, &a3, Weights::exact(&w3), Threshold::Absolute(t)).unwrap();
            assert_eq!(base, m, "seed {seed}");
        }
    }

    #[test]
    fn scaling_weights_and_t_scales_totals_and_keeps_keys() {
        // ORACLES §2.5 (integer factors keep f64 sums exact).
        for seed in 0..100 {
            let (a, w, levels, t) = random_case(seed);
            let base = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            let k = (seed % 7 + 2) as f64;
            let ws: Vec<f64> = w.iter().map(|x| x * k).collect();
            let scaled =
                hhh_addrs(&levels, &a, Weights::exact(&ws), Threshold::Absolute(t * k)).unwrap();
            assert_eq!(base.rows.len(), scaled.rows.len());
            for (b, s) in base.rows.iter().zip(&scaled.rows) {
                assert_eq!((b.key, b.total * k, b.depth), (s.key, s.total, s.depth));
            }
        }
    }

    #[test]
    fn rows_form_a_tree_with_parents_first() {
        for seed in 0..100 {
            let (a, w, levels, t) = random_case(seed);
            let rep = hhh_addrs(&levels, &a, Weights::exact(&w), Threshold::Absolute(t)).unwrap();
            for (i, row) in rep.rows.iter().enumerate() {
                let ancestors: Vec<IpKey> = levels.chain(&row.key)[1..].to_vec();
                let reported_above: Vec<usize> = rep
                    .rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| ancestors.contains(&r.key))
                    .map(|(j, _)| j)
                    .collect();
                assert_eq!(row.depth as usize, reported_above.len(), "seed {seed}");
                assert!(
                    reported_above.iter().all(|&j| j < i),
                    "seed {seed}: parent after child"
                );
            }
        }
    }

    #[test]
    fn variance_of_a_total_is_the_sum_of_its_terms() {
        let (a, w) = example1();
        let var: Vec<f64> = w.iter().map(|x| x / 4.0).collect();
        let rep = hhh_addrs(
            &IpLevels::every(),
            &a,
            Weights::sampled(&w, &var),
            Threshold::Absolute(100.0),
        )
        .unwrap();
        for row in &rep.rows {
            assert_eq!(row.variance, row.total / 4.0, "{}", row.key);
        }
        assert_eq!(rep.total_variance, 250.0);
    }

    #[test]
    fn mixed_families_hang_from_the_overall_root() {
        let a = [v4("10.0.0.1"), "2001:db8::1".parse::<Addr>().unwrap().0];
        let w = [50.0, 60.0];
        let rep = hhh_addrs(
            &IpLevels::every(),
            &a,
            Weights::exact(&w),
            Threshold::Absolute(100.0),
        )
        .unwrap();
        // Neither family reaches T on its own; together they do, at the overall root.
        assert_eq!(shown(&rep), expect(&[("any", 110.0)]));
        assert_eq!(rep.unreported_residual, 0.0);
    }

    #[test]
    fn bad_inputs_are_refused_with_their_cause() {
        let a = [v4("10.0.0.1")];
        let w = [1.0];
        let l = IpLevels::every();
        assert_eq!(
            hhh_addrs(&l, &a, Weights::exact(&w), Threshold::Share(-0.1)),
            Err(AnalysisError::BadThreshold(-0.1))
        );
        assert!(matches!(
            hhh_addrs(&l, &a, Weights::exact(&[1.0, 2.0]), Threshold::Share(0.1)),
            Err(AnalysisError::LengthMismatch { .. })
        ));
        assert_eq!(
            IpLevels::new(&[33], &[0]),
            Err(AnalysisError::BadLevel { len: 33, bits: 32 })
        );
        assert!(matches!(
            IpLevels::new(&[], &[0]),
            Err(AnalysisError::EmptyLevels { .. })
        ));
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        let row = |asn, org: &str| PrefixMapRow {
            prefix: p,
            asn,
            org: org.into(),
        };
        assert!(matches!(
            PrefixMap::new(&[row(1, "a"), row(2, "a")]),
            Err(AnalysisError::DuplicatePrefix { .. })
        ));
        let q = PrefixMapRow {
            prefix: "11.0.0.0/8".parse().unwrap(),
            asn: 1,
            org: "b".into(),
        };
        assert!(matches!(
            PrefixMap::new(&[row(1, "a"), q]),
            Err(AnalysisError::ConflictingOrg { asn: 1, .. })
        ));
    }

    #[test]
    fn prefix_map_uses_the_longest_match_and_unknown() {
        let rows = [
            ("10.0.0.0/8", 100, "Big"),
            ("10.1.0.0/16", 200, "Small"),
            ("2001:db8::/32", 100, "Big"),
        ]
        .map(|(p, asn, org)| PrefixMapRow {
            prefix: p.parse().unwrap(),
            asn,
            org: org.into(),
        });
        let map = PrefixMap::new(&rows).unwrap();
        let addrs = [v4("10.1.2.3"), v4("10.2.0.1"), v4("192.0.2.1")];
        let keys: Vec<String> = addrs.iter().map(|&a| map.leaf(a).to_string()).collect();
        assert_eq!(keys, ["10.1.0.0/16", "10.0.0.0/8", "unknown"]);
        let chain: Vec<String> = map
            .chain(&map.leaf(addrs[0]))
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(chain, ["10.1.0.0/16", "AS200", "Small", "any"]);
        let w = [40.0, 30.0, 30.0];
        let rep = hhh(&map, &addrs, Weights::exact(&w), Threshold::Absolute(35.0)).unwrap();
        // 10.2.0.1 (30, under AS100) and the unknown 192.0.2.1 (30) meet only at the root.
        assert_eq!(
            shown(&rep),
            expect(&[("10.1.0.0/16", 40.0), ("any", 100.0)])
        );
        assert_eq!(
            rep.rows
                .iter()
                .find(|r| r.key == MapKey::Root)
                .unwrap()
                .residual,
            60.0
        );
        let rep = hhh(&map, &addrs, Weights::exact(&w), Threshold::Absolute(100.0)).unwrap();
        assert_eq!(shown(&rep), expect(&[]));
        assert_eq!(rep.unreported_residual, 100.0);
    }
}
