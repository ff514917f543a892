//! The flow-size distribution: how bytes and packets are spread over flows of each size in
//! packets, and what ignoring the flows of at most K packets would drop.
//!
//! This module owns the size bins: one per size from 1 to [`LINEAR_SIZES`] packets, then
//! powers of two (`17–32`, `33–64`, …). Flows of 0 packets (exporters sometimes send them) get a
//! bin of their own. Cumulative shares run from the smallest flows up, so the row of size s says
//! what share of the bytes (packets, flows) is in flows of at most s packets.

use crate::{AnalysisError, Estimate, FastMap, Weights, fast_map};

/// Sizes up to this many packets get a bin each; larger sizes are binned by powers of two.
pub const LINEAR_SIZES: u64 = 16;

/// Totals of the flows of one size or size range.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SizeTotals {
    pub flows: Estimate,
    pub bytes: Estimate,
    pub packets: Estimate,
}

impl SizeTotals {
    fn add(&mut self, o: &SizeTotals) {
        for (a, b) in [
            (&mut self.flows, &o.flows),
            (&mut self.bytes, &o.bytes),
            (&mut self.packets, &o.packets),
        ] {
            a.value += b.value;
            a.variance += b.variance;
        }
    }
}

/// One bin of the distribution: sizes `lo..=hi` packets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeRow {
    pub lo: u64,
    pub hi: u64,
    pub totals: SizeTotals,
    /// Shares of all flows, bytes and packets in flows of at most `hi` packets.
    pub cum_flows: f64,
    pub cum_bytes: f64,
    pub cum_packets: f64,
}

/// The distribution. Invariant: `sizes` is sorted by size, without duplicates.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeDistribution {
    pub rows: Vec<SizeRow>,
    pub total: SizeTotals,
    sizes: Vec<(u64, SizeTotals)>,
}

/// The bin (lo, hi) of a size.
pub fn bin_of(size: u64) -> (u64, u64) {
    if size <= LINEAR_SIZES {
        (size, size)
    } else {
        let hi = size.next_power_of_two();
        (hi / 2 + 1, hi)
    }
}

fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// The distribution of records whose flow size (packets) is `size[i]`: [`SizeCounts`] of
/// one part.
pub fn size_distribution(
    size: &[u64],
    flows: Weights<'_>,
    bytes: Weights<'_>,
    packets: Weights<'_>,
) -> Result<SizeDistribution, AnalysisError> {
    let mut c = SizeCounts::default();
    c.add(size, flows, bytes, packets)?;
    Ok(c.distribution())
}

/// Flows counted by size as they are read: records are added in parts ([`SizeCounts::add`]),
/// counts made apart (one per worker or per time bin) are merged ([`SizeCounts::merge`]), and
/// [`SizeCounts::distribution`] gives the distribution. Memory holds one entry per distinct
/// size.
#[derive(Clone, Debug)]
pub struct SizeCounts {
    by_size: FastMap<u64, SizeTotals>,
}

impl Default for SizeCounts {
    fn default() -> Self {
        SizeCounts {
            by_size: fast_map(256),
        }
    }
}

impl SizeCounts {
    /// Adds records whose flow size (packets) is `size[i]`.
    pub fn add(
        &mut self,
        size: &[u64],
        flows: Weights<'_>,
        bytes: Weights<'_>,
        packets: Weights<'_>,
    ) -> Result<(), AnalysisError> {
        let n = size.len();
        flows.check(n)?;
        bytes.check(n)?;
        packets.check(n)?;
        for (i, &s) in size.iter().enumerate() {
            let e = self.by_size.entry(s).or_default();
            e.flows.value += flows.weight[i];
            e.flows.variance += flows.var(i);
            e.bytes.value += bytes.weight[i];
            e.bytes.variance += bytes.var(i);
            e.packets.value += packets.weight[i];
            e.packets.variance += packets.var(i);
        }
        Ok(())
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &SizeCounts) {
        for (&s, t) in &other.by_size {
            self.by_size.entry(s).or_default().add(t);
        }
    }

    /// The distribution of the records added.
    pub fn distribution(&self) -> SizeDistribution {
        let mut sizes: Vec<(u64, SizeTotals)> =
            self.by_size.iter().map(|(&s, &t)| (s, t)).collect();
        sizes.sort_unstable_by_key(|x| x.0);
        let mut total = SizeTotals::default();
        for (_, t) in &sizes {
            total.add(t);
        }
        let mut rows: Vec<SizeRow> = Vec::new();
        let mut cum = SizeTotals::default();
        for &(s, t) in &sizes {
            let (lo, hi) = bin_of(s);
            cum.add(&t);
            let row = SizeRow {
                lo,
                hi,
                totals: t,
                cum_flows: share(cum.flows.value, total.flows.value),
                cum_bytes: share(cum.bytes.value, total.bytes.value),
                cum_packets: share(cum.packets.value, total.packets.value),
            };
            match rows.last_mut() {
                Some(last) if last.lo == lo => {
                    let mut t2 = last.totals;
                    t2.add(&t);
                    *last = SizeRow { totals: t2, ..row };
                }
                _ => rows.push(row),
            }
        }
        SizeDistribution { rows, total, sizes }
    }
}

/// What ignoring the flows of at most K packets drops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropped {
    pub totals: SizeTotals,
    pub flows_share: f64,
    pub bytes_share: f64,
    pub packets_share: f64,
}

impl SizeDistribution {
    /// The flows of at most `k` packets, and their shares of the whole.
    pub fn ignoring_up_to(&self, k: u64) -> Dropped {
        let end = self.sizes.partition_point(|x| x.0 <= k);
        let mut t = SizeTotals::default();
        for (_, x) in &self.sizes[..end] {
            t.add(x);
        }
        Dropped {
            totals: t,
            flows_share: share(t.flows.value, self.total.flows.value),
            bytes_share: share(t.bytes.value, self.total.bytes.value),
            packets_share: share(t.packets.value, self.total.packets.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;
    use rand::RngExt;

    #[test]
    fn bins_are_linear_then_powers_of_two() {
        assert_eq!(bin_of(0), (0, 0));
        assert_eq!(bin_of(16), (16, 16));
        assert_eq!(bin_of(17), (17, 32));
        assert_eq!(bin_of(32), (17, 32));
        assert_eq!(bin_of(33), (33, 64));
        assert_eq!(bin_of(1000), (513, 1024));
    }

    #[test]
    fn a_small_distribution_by_hand() {
        // Three 1-packet flows of 40 bytes, one 2-packet flow of 100, one 100-packet flow of 9760.
        let size = [1, 1, 1, 2, 100];
        let bytes = [40.0, 40.0, 40.0, 100.0, 9760.0];
        let pk: Vec<f64> = size.iter().map(|&s| s as f64).collect();
        let d = size_distribution(
            &size,
            Weights::exact(&[1.0; 5]),
            Weights::exact(&bytes),
            Weights::exact(&pk),
        )
        .unwrap();
        let shape: Vec<(u64, u64, f64)> = d
            .rows
            .iter()
            .map(|r| (r.lo, r.hi, r.totals.flows.value))
            .collect();
        assert_eq!(shape, [(1, 1, 3.0), (2, 2, 1.0), (65, 128, 1.0)]);
        assert_eq!(d.rows[1].cum_bytes, 220.0 / 9980.0);
        assert_eq!(d.rows[2].cum_packets, 1.0);
        let drop = d.ignoring_up_to(2);
        assert_eq!(drop.flows_share, 0.8);
        assert_eq!(drop.packets_share, 5.0 / 105.0);
        assert_eq!(drop.totals.bytes.value, 220.0);
    }

    #[test]
    fn cumulative_shares_and_drops_match_a_naive_count() {
        for seed in 0..100 {
            let mut r = rng(seed);
            let n = r.random_range(1..300);
            let size: Vec<u64> = (0..n)
                .map(|_| {
                    if r.random_bool(0.6) {
                        r.random_range(1..4)
                    } else {
                        r.random_range(0..5000)
                    }
                })
                .collect();
            let bytes: Vec<f64> = size
                .iter()
                .map(|&s| (s * r.random_range(40..1500)) as f64)
                .collect();
            let pk: Vec<f64> = size.iter().map(|&s| s as f64).collect();
            let fl = vec![1.0; n];
            let d = size_distribution(
                &size,
                Weights::exact(&fl),
                Weights::exact(&bytes),
                Weights::exact(&pk),
            )
            .unwrap();
            let tb: f64 = bytes.iter().sum();
            for row in &d.rows {
                let flows = size.iter().filter(|&&s| s >= row.lo && s <= row.hi).count() as f64;
                assert_eq!(row.totals.flows.value, flows, "seed {seed}");
                let cum: f64 = (0..n)
                    .filter(|&i| size[i] <= row.hi)
                    .map(|i| bytes[i])
                    .sum();
                assert_eq!(
                    row.cum_bytes,
                    if tb > 0.0 { cum / tb } else { 0.0 },
                    "seed {seed}"
                );
            }
            assert_eq!(
                d.rows.iter().map(|r| r.totals.flows.value).sum::<f64>(),
                n as f64
            );
            let k = r.random_range(0..20);
            let dropped: f64 = (0..n).filter(|&i| size[i] <= k).map(|i| pk[i]).sum();
            assert_eq!(
                d.ignoring_up_to(k).totals.packets.value,
                dropped,
                "seed {seed}"
            );
            // Counted in parts (as workers and time bins count them) and merged: the same.
            let var: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
            let whole = size_distribution(
                &size,
                Weights::exact(&fl),
                Weights::sampled(&bytes, &var),
                Weights::exact(&pk),
            )
            .unwrap();
            let mut merged = SizeCounts::default();
            let mut at = 0;
            while at < n {
                let to = (at + r.random_range(1..60)).min(n);
                let mut part = SizeCounts::default();
                part.add(
                    &size[at..to],
                    Weights::exact(&fl[at..to]),
                    Weights::sampled(&bytes[at..to], &var[at..to]),
                    Weights::exact(&pk[at..to]),
                )
                .unwrap();
                merged.merge(&part);
                at = to;
            }
            assert_eq!(merged.distribution(), whole, "seed {seed}");
        }
    }
}
