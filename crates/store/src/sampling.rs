//! Threshold ("smart") sampling of flow records (Duffield, Lund, Thorup; ORACLES §3), the
//! choice of the threshold that makes a bin fit its budget, re-thresholding, the estimators,
//! and the split of a flow that spans bins.
//!
//! Every stored record carries its own threshold `z` (the `sample_z` column; 0 = not sampled).
//! A record of `x` bytes was kept with probability `p(x, z) = min(1, x/z)` and stands for
//! `max(x, z)` bytes and `packets · max(1, z/x)` packets. Because `z` is per record, samples
//! drawn at different thresholds (other bins, merged late data, coarser levels) can be put in
//! one file and still estimate without bias.
//!
//! Re-thresholding a record kept at `z` to `z' ≥ z` keeps it with probability
//! `p(x, z') / p(x, z)`, so that overall it was kept with probability exactly `p(x, z')`.

use flowdrill_model::FlowRecord;

/// A small, fast, seedable generator (SplitMix64). Sampling must be reproducible from a seed
/// (tests, re-runs), and this keeps the store free of a `rand` version dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        flowdrill_model::hll::mix64(self.0)
    }
    /// Uniform in [0, 1), 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Probability that a record of `x` bytes is kept at threshold `z` (z = 0: always).
#[inline]
pub fn keep_probability(x: u64, z: u64) -> f64 {
    if z == 0 || x >= z {
        1.0
    } else {
        x as f64 / z as f64
    }
}

/// Bytes a kept record stands for: `max(x, z)`.
#[inline]
pub fn estimated_bytes(x: u64, z: u64) -> u64 {
    x.max(z)
}

/// Packets a kept record stands for: `packets · max(1, z/x)` (ORACLES §3).
#[inline]
pub fn estimated_packets(packets: u64, x: u64, z: u64) -> f64 {
    packets as f64 / keep_probability(x, z)
}

/// Flows a kept record stands for: `1 / min(1, x/z)` (unbiased but noisy; prefer the exact
/// per-bin flow counts of [`crate::BinStats`]).
#[inline]
pub fn estimated_flows(x: u64, z: u64) -> f64 {
    1.0 / keep_probability(x, z)
}

/// The record's term of the unbiased variance estimate of a byte total: `z(z − x)` if x < z.
#[inline]
pub fn variance_term(x: u64, z: u64) -> f64 {
    if z > x {
        z as f64 * (z - x) as f64
    } else {
        0.0
    }
}

/// Threshold sampling at `z`: true when the record of `x` bytes is kept.
#[inline]
pub fn keep(x: u64, z: u64, rng: &mut Rng) -> bool {
    z == 0 || x >= z || rng.next_f64() * (z as f64) < x as f64
}

/// Re-thresholding: a record of `x` bytes kept at `z_old` survives a new threshold `z_new`
/// (no-op when `z_new ≤ z_old`) so that overall it was kept with probability
/// `min(1, x/max(z_old, z_new))`. Returns whether it is kept; its threshold becomes
/// `max(z_old, z_new)`.
#[inline]
pub fn rethreshold(x: u64, z_old: u64, z_new: u64, rng: &mut Rng) -> bool {
    if z_new <= z_old {
        return true;
    }
    let p = keep_probability(x, z_new) / keep_probability(x, z_old);
    p >= 1.0 || rng.next_f64() < p
}

/// Re-thresholds a stored sample (the `bytes` and `sample_z` columns of a batch) at `z_new`:
/// the mask of the records kept. This is the function the query layer uses to bring bins
/// sampled at different thresholds to one threshold; kept records then count at
/// `max(z_old, z_new)`.
pub fn rethreshold_mask(bytes: &[u64], z: &[u64], z_new: u64, seed: u64) -> Vec<bool> {
    let mut rng = Rng::new(seed);
    bytes
        .iter()
        .zip(z)
        .map(|(&x, &zo)| rethreshold(x, zo, z_new, &mut rng))
        .collect()
}

/// The expected number of records of `(x, z_old)` still kept after re-thresholding at `z`.
fn expected_kept(items: &[(u64, u64)], z: u64) -> f64 {
    items
        .iter()
        .map(|&(x, zo)| {
            if z <= zo {
                1.0
            } else {
                keep_probability(x, z) / keep_probability(x, zo)
            }
        })
        .sum()
}

/// The smallest integer threshold at which the expected number of records kept from `items`
/// (bytes, current threshold) is at most `target`. 0 when no sampling is needed.
///
/// Invariant of the result `z`: the expected number kept at `z` is at most `target`, and at
/// `z − 1` it is more (the threshold is as small, so the sample as accurate, as fits). A
/// `target` below 0.5 gives a huge `z`: only records of enormous size would survive.
pub fn choose_threshold(items: &[(u64, u64)], target: f64) -> u64 {
    if (items.len() as f64) <= target {
        return 0;
    }
    // f(z) = expected kept is non-increasing in z. At z = hi every record has x < z (or was
    // already below it), so f(hi) ≤ Σ x/min(1,x/zo) / hi ≤ target.
    let total: f64 = items
        .iter()
        .map(|&(x, zo)| x as f64 / keep_probability(x, zo))
        .sum();
    let max_x = items.iter().map(|&(x, _)| x).max().unwrap_or(0);
    smallest_threshold(total, max_x, target.max(0.0), |z| expected_kept(items, z))
}

/// The smallest integer `z ≥ 1` with `expected(z) ≤ target`, for a non-increasing `expected`
/// whose items sum to `total` (sizes over keep probabilities) and are at most `max_x` bytes:
/// at `z = max(total / target, max_x + 1)` every item is below `z`, so `expected(z) ≤ target`;
/// the bracket is doubled if rounding says otherwise, then bisected.
fn smallest_threshold(total: f64, max_x: u64, target: f64, expected: impl Fn(u64) -> f64) -> u64 {
    let mut hi: u64 = if target < 0.5 {
        u64::MAX / 2
    } else {
        ((total / target).ceil() as u64)
            .max(max_x.saturating_add(1))
            .max(1)
    };
    while hi < u64::MAX / 2 && expected(hi) > target {
        hi = hi.saturating_mul(2);
    }
    let mut lo: u64 = 1; // f(lo) > target, or lo == hi
    if expected(lo) <= target {
        return lo;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if expected(mid) <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// [`choose_threshold`] (or [`RawThresholds::for_target`] when no item is sampled) on items
/// given once per distinct `(bytes, current threshold)` with their multiplicity, in any order:
/// what an engine that aggregates elsewhere (Spark) hands over instead of the records.
///
/// When no item is sampled the answer is exactly [`RawThresholds::for_target`]'s (its sums are
/// of integers); otherwise it is [`choose_threshold`]'s up to the order of the floating-point
/// additions of the expected counts (the search can differ only where the expected count at
/// some threshold ties the target to the last bits).
pub fn choose_threshold_counted(items: &[(u64, u64, u64)], target: f64) -> u64 {
    let n: u64 = items.iter().map(|i| i.2).sum();
    if (n as f64) <= target {
        return 0;
    }
    let target = target.max(0.0);
    let max_x = items
        .iter()
        .filter(|i| i.2 > 0)
        .map(|i| i.0)
        .max()
        .unwrap_or(0);
    let raw = items.iter().all(|i| i.1 == 0);
    // Unsampled: the sizes ascending, with the count and the byte sum of those below each.
    let mut sorted: Vec<(u64, u64)> = Vec::new();
    let mut below: Vec<(u64, u128)> = Vec::new();
    let total = if raw {
        let mut by_x: Vec<(u64, u64)> = items.iter().map(|i| (i.0, i.2)).collect();
        by_x.sort_unstable();
        for (x, c) in by_x {
            match sorted.last_mut() {
                Some(last) if last.0 == x => last.1 += c,
                _ => sorted.push((x, c)),
            }
        }
        let (mut cn, mut cs) = (0u64, 0u128);
        below.push((0, 0));
        for &(x, c) in &sorted {
            cn += c;
            cs += x as u128 * c as u128;
            below.push((cn, cs));
        }
        cs as f64
    } else {
        items
            .iter()
            .map(|&(x, zo, c)| c as f64 * (x as f64 / keep_probability(x, zo)))
            .sum()
    };
    let expected = |z: u64| -> f64 {
        if raw {
            let i = sorted.partition_point(|&(x, _)| x < z);
            let (cn, cs) = below[i];
            (n - cn) as f64 + cs as f64 / z as f64
        } else {
            items
                .iter()
                .map(|&(x, zo, c)| {
                    if z <= zo {
                        c as f64
                    } else {
                        c as f64 * (keep_probability(x, z) / keep_probability(x, zo))
                    }
                })
                .sum()
        }
    };
    smallest_threshold(total, max_x, target, expected)
}

/// Threshold choice for unsampled records, answered in `O(log² n)` per target after one sort:
/// the writer asks it once per level for every bin it closes.
#[derive(Clone, Debug)]
pub struct RawThresholds {
    /// Sizes, ascending.
    sorted: Vec<u64>,
    /// `prefix[i]` = sum of the `i` smallest sizes.
    prefix: Vec<u128>,
}

impl RawThresholds {
    pub fn new(mut sizes: Vec<u64>) -> RawThresholds {
        sizes.sort_unstable();
        let mut prefix = Vec::with_capacity(sizes.len() + 1);
        let mut acc = 0u128;
        prefix.push(0);
        for &x in &sizes {
            acc += x as u128;
            prefix.push(acc);
        }
        RawThresholds {
            sorted: sizes,
            prefix,
        }
    }

    /// Expected records kept at threshold `z > 0`: `#{x ≥ z} + Σ_{x<z} x/z`.
    fn expected(&self, z: u64) -> f64 {
        let i = self.sorted.partition_point(|&x| x < z);
        (self.sorted.len() - i) as f64 + self.prefix[i] as f64 / z as f64
    }

    /// The same answer as [`choose_threshold`] on `(x, 0)` items.
    pub fn for_target(&self, target: f64) -> u64 {
        let n = self.sorted.len();
        if (n as f64) <= target {
            return 0;
        }
        let target = target.max(0.0);
        let total = self.prefix[n] as f64;
        let max_x = self.sorted.last().copied().unwrap_or(0);
        let mut hi: u64 = if target < 0.5 {
            u64::MAX / 2
        } else {
            ((total / target).ceil() as u64)
                .max(max_x.saturating_add(1))
                .max(1)
        };
        while hi < u64::MAX / 2 && self.expected(hi) > target {
            hi = hi.saturating_mul(2);
        }
        let mut lo: u64 = 1;
        if self.expected(lo) <= target {
            return lo;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.expected(mid) <= target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

/// The threshold to re-sample, to about `target` expected records, a sample whose records
/// (of `sizes` bytes) were all kept at one threshold `z_old` (0 = unsampled): the collector's
/// adaptive sampling of an open bin. The result is above `z_old` whenever there are more
/// records than `target`, so that re-thresholding with [`rethreshold`] makes progress.
///
/// For `z ≥ z_old`, a record of `x` bytes survives re-thresholding with probability
/// `min(1, x/z) / min(1, x/z_old) = min(1, max(x, z_old)/z)`: it behaves as an unsampled
/// record of `max(x, z_old)` bytes, so [`RawThresholds`] answers in `O(n log n)`.
pub fn raise_threshold(sizes: &[u64], z_old: u64, target: f64) -> u64 {
    if (sizes.len() as f64) <= target {
        return z_old;
    }
    let raw = RawThresholds::new(sizes.iter().map(|&x| x.max(z_old)).collect());
    raw.for_target(target).max(z_old.saturating_add(1))
}

/// One part of a flow split among bins.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Start of the bin the part belongs to.
    pub bin_start: u64,
    pub record: FlowRecord,
}

/// Splits a flow among the bins of `bin_ms` it overlaps, in proportion to its time. Packets
/// and bytes are apportioned so that the parts add up exactly to the flow's (the cumulative
/// share is floored, so each part gets the difference of two floors). Each part's times are
/// clipped to its bin. Bins are half-open `[start, start + bin_ms)`; a flow of zero duration
/// (or with `time_end < time_start`) lies wholly in the bin of `time_start`. Parts that get
/// neither packets nor bytes are omitted (except the first: a flow always has a record).
/// Every part after the first carries `continued = 1`, so that a flow counts once.
///
/// A flow spanning more than `max_bins` bins is not split: it goes whole into the bin of its
/// `time_end` (the returned flag is true), so a bogus timestamp cannot explode into
/// thousands of records.
pub fn split(r: &FlowRecord, bin_ms: u64, max_bins: u64) -> (Vec<Part>, bool) {
    let start = r.time_start;
    let end = r.time_end.max(start);
    let first = start - start % bin_ms;
    let last = if end > start {
        let e = end - 1;
        e - e % bin_ms
    } else {
        first
    };
    if first == last {
        return (
            vec![Part {
                bin_start: first,
                record: r.clone(),
            }],
            false,
        );
    }
    let nbins = (last - first) / bin_ms + 1;
    if nbins > max_bins {
        return (
            vec![Part {
                bin_start: end - end % bin_ms,
                record: r.clone(),
            }],
            true,
        );
    }
    let dur = (end - start) as u128;
    let mut parts = Vec::with_capacity(nbins as usize);
    let (mut prev_p, mut prev_b) = (0u64, 0u64);
    let mut cum = 0u128;
    for i in 0..nbins {
        // Counted, so that bins near the end of time cannot wrap around.
        let b = first + i * bin_ms;
        let s = start.max(b);
        let e = end.min(b.saturating_add(bin_ms));
        cum += (e - s) as u128;
        let cp = (r.packets as u128 * cum / dur) as u64;
        let cb = (r.bytes as u128 * cum / dur) as u64;
        let (p, by) = (cp - prev_p, cb - prev_b);
        prev_p = cp;
        prev_b = cb;
        if p > 0 || by > 0 || parts.is_empty() {
            let mut rec = r.clone();
            rec.time_start = s;
            rec.time_end = e;
            rec.packets = p;
            rec.bytes = by;
            rec.continued = (!parts.is_empty()) as u8;
            parts.push(Part {
                bin_start: b,
                record: rec,
            });
        }
    }
    (parts, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_probability_and_estimates_follow_the_oracle() {
        assert_eq!(keep_probability(50, 100), 0.5);
        assert_eq!(keep_probability(150, 100), 1.0);
        assert_eq!(keep_probability(5, 0), 1.0);
        assert_eq!(estimated_bytes(50, 100), 100);
        assert_eq!(estimated_bytes(150, 100), 150);
        assert_eq!(estimated_packets(3, 50, 100), 6.0);
        assert_eq!(variance_term(50, 100), 5000.0);
        assert_eq!(variance_term(150, 100), 0.0);
    }

    #[test]
    fn counted_items_choose_the_threshold_of_the_records() {
        let mut rng = Rng::new(3);
        // Few distinct sizes, many records each, in no order.
        let raw: Vec<u64> = (0..20_000)
            .map(|_| {
                [40, 64, 1500, 9000, 70_000][(rng.next_u64() % 5) as usize] + rng.next_u64() % 3
            })
            .collect();
        let counted = |items: &[(u64, u64)]| {
            let mut m = std::collections::BTreeMap::new();
            for &p in items {
                *m.entry(p).or_insert(0u64) += 1;
            }
            let mut v: Vec<(u64, u64, u64)> = m.into_iter().map(|((x, z), c)| (x, z, c)).collect();
            v.reverse();
            v
        };
        let pairs: Vec<(u64, u64)> = raw.iter().map(|&x| (x, 0)).collect();
        let fast = RawThresholds::new(raw.clone());
        for target in [0.1, 1.0, 10.0, 500.0, 7000.0, 19_999.0, 20_000.0] {
            assert_eq!(
                choose_threshold_counted(&counted(&pairs), target),
                fast.for_target(target),
                "unsampled, target {target}"
            );
        }
        // Sampled at two thresholds: the same answer as on the records (no tie here).
        let sampled: Vec<(u64, u64)> = raw
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, if i % 3 == 0 { 5000 } else { 0 }))
            .collect();
        for target in [10.0, 500.0, 7000.0, 19_999.0] {
            let z = choose_threshold_counted(&counted(&sampled), target);
            assert_eq!(
                z,
                choose_threshold(&sampled, target),
                "sampled, target {target}"
            );
            assert!(expected_kept(&sampled, z) <= target);
            assert!(expected_kept(&sampled, z - 1) > target);
        }
    }

    #[test]
    fn the_chosen_threshold_is_the_smallest_that_fits() {
        let mut rng = Rng::new(1);
        let items: Vec<(u64, u64)> = (0..5000)
            .map(|_| ((rng.next_u64() % 100_000) + 40, 0))
            .collect();
        for target in [10.0, 100.0, 1000.0, 4999.0] {
            let z = choose_threshold(&items, target);
            assert!(expected_kept(&items, z) <= target, "target {target}");
            assert!(expected_kept(&items, z - 1) > target, "target {target}");
        }
        assert_eq!(choose_threshold(&items, 5000.0), 0);
        let fast = RawThresholds::new(items.iter().map(|p| p.0).collect());
        for target in [0.1, 1.0, 10.0, 100.0, 1000.0, 4999.0, 5000.0] {
            // Equal up to the rounding of a floating-point sum taken in another order.
            let (a, b) = (fast.for_target(target), choose_threshold(&items, target));
            assert!(a.abs_diff(b) <= 1, "{target}: {a} vs {b}");
        }
        // Already-sampled records count with their own thresholds.
        let mixed: Vec<(u64, u64)> = items.iter().map(|&(x, _)| (x, 30_000)).collect();
        let z = choose_threshold(&mixed, 1000.0);
        assert!(z > 30_000 && expected_kept(&mixed, z) <= 1000.0);
    }

    #[test]
    fn rethresholding_keeps_with_the_new_probability() {
        // x = 100 kept at z = 200 (p = 1/2); at z' = 800 overall p must be 1/8, so the
        // conditional survival is 1/4.
        let mut rng = Rng::new(9);
        let n = 200_000;
        let kept = (0..n)
            .filter(|_| rethreshold(100, 200, 800, &mut rng))
            .count() as f64;
        let e = n as f64 / 4.0;
        assert!((kept - e).abs() < 4.0 * e.sqrt(), "{kept} vs {e}");
        assert!(rethreshold(100, 800, 200, &mut rng));
        assert!(rethreshold(1000, 0, 800, &mut rng));
    }

    #[test]
    fn raising_the_threshold_of_a_sample_agrees_with_the_general_choice() {
        let mut rng = Rng::new(7);
        let sizes: Vec<u64> = (0..5000).map(|_| 40 + rng.next_u64() % 20_000).collect();
        // Unsampled: the same answer as choose_threshold on (x, 0).
        let items: Vec<(u64, u64)> = sizes.iter().map(|&x| (x, 0)).collect();
        assert_eq!(
            raise_threshold(&sizes, 0, 1000.0),
            choose_threshold(&items, 1000.0)
        );
        // Already sampled at z_old: the same answer as choose_threshold on (x, z_old).
        let z_old = 3000;
        let items: Vec<(u64, u64)> = sizes.iter().map(|&x| (x, z_old)).collect();
        let z = raise_threshold(&sizes, z_old, 1000.0);
        assert!(z > z_old);
        assert_eq!(z, choose_threshold(&items, 1000.0));
        assert!(expected_kept(&items, z) <= 1000.0);
        // Nothing to do when the sample already fits.
        assert_eq!(raise_threshold(&sizes[..10], z_old, 1000.0), z_old);
    }

    /// The collector's adaptive sampling: a stream sampled in rounds at rising thresholds
    /// (each round re-thresholding what is held, later records sampled on arrival) still
    /// estimates the byte total without bias (ORACLES §3).
    #[test]
    fn repeated_adaptive_rethresholding_is_unbiased() {
        let truth: Vec<u64> = {
            let mut g = Rng::new(99);
            (0..20_000)
                .map(|_| {
                    // Heavy-tailed sizes: many small, a few large.
                    let u = g.next_f64().max(1e-9);
                    (60.0 / u.powf(0.8)).min(1e9) as u64
                })
                .collect()
        };
        let total: u64 = truth.iter().sum();
        let runs = 200;
        let cap = 1000usize;
        let mut estimates = Vec::with_capacity(runs);
        for run in 0..runs {
            let mut rng = Rng::new(1000 + run as u64);
            let mut held: Vec<u64> = Vec::new();
            let mut z = 0u64;
            for &x in &truth {
                if !keep(x, z, &mut rng) {
                    continue;
                }
                held.push(x);
                if held.len() > cap {
                    let z_new = raise_threshold(&held, z, cap as f64 / 2.0);
                    held.retain(|&x| rethreshold(x, z, z_new, &mut rng));
                    z = z_new;
                }
            }
            assert!(held.len() <= cap);
            let est: u64 = held.iter().map(|&x| estimated_bytes(x, z)).sum();
            estimates.push(est as f64);
        }
        let mean = estimates.iter().sum::<f64>() / runs as f64;
        let var = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (runs - 1) as f64;
        let sd = var.sqrt();
        let t = total as f64;
        assert!(
            (mean - t).abs() <= 4.0 * sd / (runs as f64).sqrt(),
            "mean {mean} vs truth {t} (sd {sd})"
        );
    }

    fn flow(start: u64, end: u64, packets: u64, bytes: u64) -> FlowRecord {
        FlowRecord {
            time_start: start,
            time_end: end,
            packets,
            bytes,
            ..Default::default()
        }
    }

    #[test]
    fn a_spanning_flow_is_split_exactly_in_proportion_to_time() {
        // 250 s from t=200 s, 5-minute bins: 100 s in bin 0, 150 s in bin 300 s.
        let (parts, long) = split(&flow(200_000, 450_000, 1001, 99_999), 300_000, 100);
        assert!(!long);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].bin_start, 0);
        assert_eq!(parts[1].bin_start, 300_000);
        assert_eq!(parts[0].record.time_end, 300_000);
        assert_eq!(parts[1].record.time_start, 300_000);
        assert_eq!(parts[0].record.bytes, 39_999);
        assert_eq!(parts[1].record.bytes, 60_000);
        assert_eq!(parts[0].record.packets + parts[1].record.packets, 1001);

        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let s = rng.next_u64() % 10_000_000;
            let e = s + rng.next_u64() % 3_000_000;
            let (p, b) = (rng.next_u64() % 10_000, rng.next_u64() % 10_000_000);
            let (parts, _) = split(&flow(s, e, p, b), 300_000, 100);
            assert_eq!(parts.iter().map(|x| x.record.packets).sum::<u64>(), p);
            assert_eq!(parts.iter().map(|x| x.record.bytes).sum::<u64>(), b);
            for x in &parts {
                assert!(x.record.time_start >= x.bin_start);
                assert!(x.record.time_end <= x.bin_start + 300_000);
            }
        }
    }

    #[test]
    fn edge_cases_of_splitting() {
        // Ends exactly on a boundary: one bin.
        let (parts, _) = split(&flow(0, 300_000, 5, 500), 300_000, 100);
        assert_eq!(parts.len(), 1);
        // Zero duration, and end before start.
        assert_eq!(
            split(&flow(300_000, 300_000, 1, 1), 300_000, 100).0[0].bin_start,
            300_000
        );
        assert_eq!(
            split(&flow(300_001, 5, 1, 1), 300_000, 100).0[0].bin_start,
            300_000
        );
        // Overlong: whole, in the bin of its end.
        let (parts, long) = split(&flow(0, 10 * 300_000 + 7, 5, 500), 300_000, 4);
        assert!(long);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].bin_start, 10 * 300_000);
        assert_eq!(parts[0].record.bytes, 500);
    }
}
