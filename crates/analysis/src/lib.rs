//! # flowdrill-analysis
//!
//! The pure analysis algorithms of flowdrill. This crate knows only `flowdrill-model`: no store,
//! no I/O. The query layer reads columns from the store and hands them here as slices.
//!
//! ## Brief overview
//!
//! Every analysis takes its input column-wise: one slice of keys (addresses, ports, categories
//! ...) and a [`Weights`] value holding, for each record, its **weight** (its estimated
//! contribution in the chosen metric: bytes, packets or flows) and optionally its **variance
//! term** (its contribution to the estimator's variance; absent, or 0, for exact data). Every
//! total an analysis reports carries the sum of the variance terms under it, from which the
//! caller derives a standard error `√var` and a 95 % interval `total ± 1.96·√var`.
//!
//! | module | what it computes |
//! |---|---|
//! | [`hhh`] | hierarchical heavy hitters in one dimension (IP prefixes, applications, prefix maps) |
//! | [`hhh2`] | two-dimensional HHH: relevant keys per axis and their cross-product cells |
//! | [`top`] | group-by aggregation and top-N with a deterministic tie order |
//! | [`flat`] | flat tables of integer keys: streaming group-by for selections too large to hold, shared out among workers |
//! | [`series`] | categories over time bins, active flows, distinct hosts, direction split |
//! | [`dist`] | flow-size distribution and what ignoring small flows drops |
//! | [`compare`] | the same keyed result on two selections: appeared, vanished, changed |
//! | [`scans`] | fan-out, fan-in, small and SYN-only flows per host: scans and floods |
//! | [`records`] | adapters from `&[FlowRecord]` to columns, for tests and small inputs |
//!
//! ```
//! use flowdrill_analysis::hhh::{hhh_addrs, IpLevels, Threshold};
//! use flowdrill_analysis::Weights;
//! let addrs: Vec<u128> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
//!     .iter().map(|s| s.parse::<flowdrill_model::Addr>().unwrap().0).collect();
//! let bytes = [300.0, 60.0, 50.0];
//! let rep = hhh_addrs(&IpLevels::every(), &addrs, Weights::exact(&bytes),
//!     Threshold::Absolute(100.0)).unwrap();
//! let keys: Vec<String> = rep.rows.iter().map(|r| r.key.to_string()).collect();
//! assert_eq!(keys, ["10.0.0.1/32", "10.0.0.2/31"]);
//! ```

pub mod compare;
pub mod dist;
pub mod flat;
pub mod hhh;
pub mod hhh2;
pub mod records;
pub mod scans;
pub mod series;
pub mod top;

#[cfg(test)]
pub(crate) mod testutil;

/// A hash map with a fixed (unseeded) fast hasher: results and iteration order are the same on
/// every run, which keeps the analyses deterministic.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;
/// The set counterpart of [`FastMap`].
pub(crate) type FastSet<K> = hashbrown::HashSet<K, foldhash::fast::FixedState>;

pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}
pub(crate) fn fast_set<K>(capacity: usize) -> FastSet<K> {
    FastSet::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}

/// Why an analysis cannot run on its input. Every variant is a caller's mistake that the message
/// says how to fix, except [`AnalysisError::Internal`], a broken invariant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    #[error(
        "column '{column}' has {got} values but the keys have {expected}: pass columns of one batch"
    )]
    LengthMismatch {
        column: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "weight {value} of record {index} is negative or not finite: weights must be finite and >= 0"
    )]
    BadWeight { index: usize, value: f64 },
    #[error(
        "threshold {0} is negative or not finite: give a share in [0, 1] or a traffic amount >= 0"
    )]
    BadThreshold(f64),
    #[error("prefix length {len} is longer than the {bits} bits of the family")]
    BadLevel { len: u8, bits: u8 },
    #[error("the {family} level set is empty: give at least one prefix length")]
    EmptyLevels { family: &'static str },
    #[error("prefix {prefix} appears twice in the prefix map, with AS {first} and AS {second}")]
    DuplicatePrefix {
        prefix: String,
        first: u32,
        second: u32,
    },
    #[error("AS {asn} is mapped to two organisations, '{first}' and '{second}': an AS needs one")]
    ConflictingOrg {
        asn: u32,
        first: String,
        second: String,
    },
    #[error("bin width {0} ms is below the 1 s minimum")]
    BinTooNarrow(u64),
    #[error("time range [{start}, {end}) ms is empty: the end must be after the start")]
    EmptyRange { start: u64, end: u64 },
    #[error("{bins} time bins is more than the {max} allowed: widen the bins or shorten the range")]
    TooManyBins { bins: u64, max: u64 },
    #[error(
        "category index {index} of record {record} is out of range: there are {count} categories"
    )]
    BadCategory {
        record: usize,
        index: u16,
        count: usize,
    },
    #[error("column {0} is needed but was not given")]
    MissingColumn(&'static str),
    #[error("internal error (please report a bug): {0}")]
    Internal(&'static str),
}

/// The weight column of an input and, for sampled data, its variance column.
///
/// Invariant (checked by every analysis): `weight` and `variance` (when present) have the length
/// of the key column, and every weight is finite and `>= 0`.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// Each record's estimated contribution in the chosen metric.
    pub weight: &'a [f64],
    /// Each record's contribution to the estimator's variance; `None` means exact data (all 0).
    pub variance: Option<&'a [f64]>,
}

impl<'a> Weights<'a> {
    /// Exact data: no variance.
    pub fn exact(weight: &'a [f64]) -> Weights<'a> {
        Weights {
            weight,
            variance: None,
        }
    }
    /// Sampled data: weights and their variance terms.
    pub fn sampled(weight: &'a [f64], variance: &'a [f64]) -> Weights<'a> {
        Weights {
            weight,
            variance: Some(variance),
        }
    }
    pub fn len(&self) -> usize {
        self.weight.len()
    }
    pub fn is_empty(&self) -> bool {
        self.weight.is_empty()
    }
    /// The variance term of record `i` (0 for exact data).
    #[inline]
    pub fn var(&self, i: usize) -> f64 {
        match self.variance {
            Some(v) => v[i],
            None => 0.0,
        }
    }
    /// Checks the lengths against `n` keys and every weight; returns (Σ weight, Σ variance).
    pub fn check(&self, n: usize) -> Result<(f64, f64), AnalysisError> {
        check_len("weight", n, self.weight.len())?;
        if let Some(v) = self.variance {
            check_len("variance", n, v.len())?;
        }
        // Branch-free accumulation: one flag for the whole column, the culprit found only on
        // failure.
        let mut ok = true;
        let mut sum = 0.0;
        for &w in self.weight {
            ok &= w.is_finite() & (w >= 0.0);
            sum += w;
        }
        if !ok {
            let (index, &value) = self
                .weight
                .iter()
                .enumerate()
                .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
                .ok_or(AnalysisError::Internal("bad weight flagged but not found"))?;
            return Err(AnalysisError::BadWeight { index, value });
        }
        let var = self.variance.map_or(0.0, |v| v.iter().sum());
        Ok((sum, var))
    }
}

pub(crate) fn check_len(
    column: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), AnalysisError> {
    if expected == got {
        Ok(())
    } else {
        Err(AnalysisError::LengthMismatch {
            column,
            expected,
            got,
        })
    }
}

/// A weighted total: the estimate and its variance. `√variance` is the standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub variance: f64,
}

impl Estimate {
    /// The standard error, `√variance`.
    pub fn std_error(&self) -> f64 {
        self.variance.sqrt()
    }
    /// The normal-approximation 95 % interval, `value ± 1.96·√variance`, clipped at 0.
    pub fn interval95(&self) -> (f64, f64) {
        let h = 1.96 * self.std_error();
        ((self.value - h).max(0.0), self.value + h)
    }
}

/// Splits `0..n` into at most `parts` contiguous ranges of nearly equal length.
pub(crate) fn split_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    let step = n.div_ceil(parts).max(1);
    (0..n).step_by(step).map(|s| s..(s + step).min(n)).collect()
}

/// Worker threads for the parallel fast paths: the cores available, at most 2 (the deployment
/// target), and 1 for inputs too small to pay for a thread.
pub(crate) fn workers(n: usize) -> usize {
    if n < 200_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_check_finds_the_bad_record() {
        let w = [1.0, 2.0, -3.0];
        assert_eq!(
            Weights::exact(&w).check(3),
            Err(AnalysisError::BadWeight {
                index: 2,
                value: -3.0
            })
        );
        let w = [1.0, 2.0];
        let v = [0.5, 0.25];
        assert_eq!(Weights::sampled(&w, &v).check(2), Ok((3.0, 0.75)));
        assert!(matches!(
            Weights::exact(&w).check(3),
            Err(AnalysisError::LengthMismatch {
                column: "weight",
                ..
            })
        ));
        let nan = [f64::NAN];
        assert!(Weights::exact(&nan).check(1).is_err());
    }

    #[test]
    fn split_ranges_cover_everything_once() {
        for n in [0, 1, 2, 7, 100] {
            for parts in 1..4 {
                let r = split_ranges(n, parts);
                assert!(r.len() <= parts);
                let covered: Vec<usize> = r.into_iter().flatten().collect();
                assert_eq!(covered, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn estimate_interval_is_symmetric_and_clipped() {
        let e = Estimate {
            value: 100.0,
            variance: 25.0,
        };
        assert_eq!(e.std_error(), 5.0);
        assert_eq!(e.interval95(), (100.0 - 9.8, 100.0 + 9.8));
        let small = Estimate {
            value: 1.0,
            variance: 100.0,
        };
        assert_eq!(small.interval95().0, 0.0);
    }
}
