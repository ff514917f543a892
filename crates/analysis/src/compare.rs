//! Comparison of the same keyed result on two selections (before/after, this week/last week):
//! which keys appeared, vanished or changed, by how much, largest change first.
//!
//! This module owns the matching of keys and the change order: by the absolute change
//! descending, then by key ascending (deterministic). The variance of a change is the sum of the
//! two variances: the two selections are taken as independent samples.

use crate::Estimate;
use crate::top::Group;
use std::collections::BTreeMap;

/// How a key's value moved between the two selections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Absent (or 0) before, present after.
    Appeared,
    /// Present before, absent (or 0) after.
    Vanished,
    Changed,
    Unchanged,
}

/// One key of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<K> {
    pub key: K,
    pub kind: ChangeKind,
    pub before: Estimate,
    pub after: Estimate,
    /// `after − before`.
    pub delta: f64,
    /// `delta / before`; `None` when `before` is 0.
    pub relative: Option<f64>,
    /// Variance of `delta`: the sum of both variances.
    pub variance: f64,
}

/// Compares two keyed results. Repeated keys within one side are added up.
pub fn compare<K: Ord + Clone>(
    before: impl IntoIterator<Item = (K, Estimate)>,
    after: impl IntoIterator<Item = (K, Estimate)>,
) -> Vec<Change<K>> {
    let mut m: BTreeMap<K, (Estimate, Estimate)> = BTreeMap::new();
    for (k, e) in before {
        let x = &mut m.entry(k).or_default().0;
        x.value += e.value;
        x.variance += e.variance;
    }
    for (k, e) in after {
        let x = &mut m.entry(k).or_default().1;
        x.value += e.value;
        x.variance += e.variance;
    }
    let mut out: Vec<Change<K>> = m
        .into_iter()
        .map(|(key, (b, a))| {
            let delta = a.value - b.value;
            let kind = match (b.value > 0.0, a.value > 0.0) {
                (false, true) => ChangeKind::Appeared,
                (true, false) => ChangeKind::Vanished,
                _ if delta == 0.0 => ChangeKind::Unchanged,
                _ => ChangeKind::Changed,
            };
            Change {
                key,
                kind,
                before: b,
                after: a,
                delta,
                relative: (b.value != 0.0).then(|| delta / b.value),
                variance: b.variance + a.variance,
            }
        })
        .collect();
    // The BTreeMap gave key order; a stable sort by |delta| keeps it among equal changes.
    out.sort_by(|x, y| y.delta.abs().total_cmp(&x.delta.abs()));
    out
}

/// The `(key, weight estimate)` pairs of aggregated groups, for [`compare`].
pub fn estimates<K: Clone>(groups: &[Group<K>]) -> impl Iterator<Item = (K, Estimate)> + '_ {
    groups.iter().map(|g| {
        (
            g.key.clone(),
            Estimate {
                value: g.weight,
                variance: g.variance,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Weights;
    use crate::testutil::rng;
    use crate::top::aggregate;
    use rand::RngExt;

    fn e(v: f64) -> Estimate {
        Estimate {
            value: v,
            variance: v / 10.0,
        }
    }

    #[test]
    fn appeared_vanished_and_changed_by_hand() {
        let before = [
            ("a", e(100.0)),
            ("b", e(50.0)),
            ("c", e(10.0)),
            ("d", e(5.0)),
        ];
        let after = [
            ("a", e(40.0)),
            ("c", e(10.0)),
            ("d", e(6.0)),
            ("z", e(70.0)),
        ];
        let got = compare(before, after);
        let keys: Vec<(&str, ChangeKind, f64)> =
            got.iter().map(|c| (c.key, c.kind, c.delta)).collect();
        assert_eq!(
            keys,
            [
                ("z", ChangeKind::Appeared, 70.0),
                ("a", ChangeKind::Changed, -60.0),
                ("b", ChangeKind::Vanished, -50.0),
                ("d", ChangeKind::Changed, 1.0),
                ("c", ChangeKind::Unchanged, 0.0),
            ]
        );
        assert_eq!(got[1].relative, Some(-0.6));
        assert_eq!(got[0].relative, None);
        assert_eq!(got[1].variance, 14.0);
    }

    #[test]
    fn deltas_sum_to_the_change_of_the_totals_and_order_is_by_magnitude() {
        for seed in 0..50 {
            let mut r = rng(seed);
            let mk = |r: &mut rand::rngs::StdRng| {
                let n = r.random_range(0..200);
                let k: Vec<u16> = (0..n).map(|_| r.random_range(0..40u16)).collect();
                let w: Vec<f64> = (0..n).map(|_| r.random_range(1..100) as f64).collect();
                (k, w)
            };
            let (kb, wb) = mk(&mut r);
            let (ka, wa) = mk(&mut r);
            let gb = aggregate(&kb, Weights::exact(&wb)).unwrap();
            let ga = aggregate(&ka, Weights::exact(&wa)).unwrap();
            let ch = compare(estimates(&gb), estimates(&ga));
            let sum: f64 = ch.iter().map(|c| c.delta).sum();
            assert_eq!(
                sum,
                wa.iter().sum::<f64>() - wb.iter().sum::<f64>(),
                "seed {seed}"
            );
            for w in ch.windows(2) {
                let (x, y) = (w[0].delta.abs(), w[1].delta.abs());
                assert!(x > y || (x == y && w[0].key < w[1].key), "seed {seed}");
            }
            for c in &ch {
                assert_eq!(kb.contains(&c.key), c.kind != ChangeKind::Appeared);
                assert_eq!(ka.contains(&c.key), c.kind != ChangeKind::Vanished);
            }
        }
    }
}
