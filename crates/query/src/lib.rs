//! # flowdrill-query
//!
//! Every analysis runs on a [`Selection`]: links, a time range and a metric (the filter
//! language joins here next). [`load`] reads the selected bins from the store, column by
//! column, and turns each stored record into a **weight** (what it stands for in the metric)
//! and a **variance term** (its share of the estimator's variance), following the threshold
//! sampling estimators of `shared/ORACLES.md` §3. For a record of `x` bytes kept at threshold
//! `z` (so with probability `p = min(1, x/z)`):
//!
//! | metric  | weight          | variance term                   |
//! |---------|-----------------|---------------------------------|
//! | bytes   | `max(x, z)`     | `z(z − x)` if `x < z`           |
//! | packets | `packets / p`   | `packets² (1 − p) / p²`         |
//! | flows   | `1 / p`         | `(1 − p) / p²`                  |
//!
//! Unsampled records (`z = 0` or `x ≥ z`) weigh exactly their value with variance 0, so exact
//! data gives exact answers and every output can say whether it is exact.
//!
//! Known limitation (to fix with the query issue): the store splits a flow that spans several
//! bins into one record per bin, and the `flows` metric here counts each piece. Counting a flow
//! once needs the store to mark the piece that holds the flow's start.

use flowdrill_model::{ColumnSource, Field};
use flowdrill_store::{Batch, BinRef, Skipped, Store, sampling};
use std::ops::Range;

/// What the analyses count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Bytes,
    Packets,
    Flows,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bytes => "bytes",
            Metric::Packets => "packets",
            Metric::Flows => "flows",
        }
    }
    pub fn from_name(s: &str) -> Option<Metric> {
        match s {
            "bytes" | "b" => Some(Metric::Bytes),
            "packets" | "pkts" | "p" => Some(Metric::Packets),
            "flows" | "f" => Some(Metric::Flows),
            _ => None,
        }
    }
}

/// Links, time range and metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Links to read; empty means every link of the store.
    pub links: Vec<String>,
    /// `[start, end)` in Unix ms; bins overlapping it are read.
    pub range: Range<u64>,
    pub metric: Metric,
}

impl Selection {
    /// Everything in the store, by bytes.
    pub fn all() -> Selection {
        Selection {
            links: Vec::new(),
            range: 0..u64::MAX,
            metric: Metric::Bytes,
        }
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] flowdrill_store::Error),
    #[error("unknown link '{name}'; the store has: {known}")]
    UnknownLink { name: String, known: String },
}

/// The selected records, with their weights and variance terms in the selection's metric.
#[derive(Debug, Default)]
pub struct Loaded {
    pub batches: Vec<(BinRef, Batch)>,
    /// Per batch, one weight per record.
    pub weights: Vec<Vec<f64>>,
    /// Per batch, one variance term per record.
    pub variances: Vec<Vec<f64>>,
    /// Files that could not be read, with the reason (never silently hidden).
    pub skipped: Vec<Skipped>,
    /// True when no record read was sampled: every number is exact.
    pub exact: bool,
    /// The largest sampling threshold among the bins read (0 when exact).
    pub z_max: u64,
}

impl Loaded {
    /// Records read.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Estimated total and its variance.
    pub fn total(&self) -> (f64, f64) {
        let t = self.weights.iter().flatten().sum();
        let v = self.variances.iter().flatten().sum();
        (t, v)
    }
    /// All weights, concatenated across batches (the order of [`Loaded::concat_u128`] etc.).
    pub fn all_weights(&self) -> Vec<f64> {
        self.weights.concat()
    }
    pub fn all_variances(&self) -> Vec<f64> {
        self.variances.concat()
    }
    /// An address column, concatenated across batches.
    pub fn concat_u128(&self, f: Field) -> Vec<u128> {
        let mut out = Vec::with_capacity(self.len());
        for (_, b) in &self.batches {
            if let Some(flowdrill_model::ColumnRef::Addr(s)) = b.column(f) {
                out.extend_from_slice(s);
            }
        }
        out
    }
    /// An integer column widened to u64, concatenated across batches.
    pub fn concat_u64(&self, f: Field) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.len());
        for (_, b) in &self.batches {
            if let Some(c) = b.column(f) {
                out.extend((0..c.len()).filter_map(|i| c.u64_at(i)));
            }
        }
        out
    }
}

/// Reads the selection's bins (finest level) with the `fields` an analysis needs, plus what
/// the weights need.
pub fn load(store: &Store, sel: &Selection, fields: &[Field]) -> Result<Loaded, QueryError> {
    let known = store.links();
    let links: Vec<String> = if sel.links.is_empty() {
        known.clone()
    } else {
        for l in &sel.links {
            if !known.contains(l) {
                return Err(QueryError::UnknownLink {
                    name: l.clone(),
                    known: known.join(", "),
                });
            }
        }
        sel.links.clone()
    };
    let mut need: Vec<Field> = fields.to_vec();
    for f in [Field::Bytes, Field::Packets] {
        if !need.contains(&f) {
            need.push(f);
        }
    }
    let mut out = Loaded {
        exact: true,
        ..Loaded::default()
    };
    for l in &links {
        let r = store.read_range(l, sel.range.clone(), 0, &need)?;
        out.skipped.extend(r.skipped);
        for (bin, batch) in r.batches {
            let (w, v) = weights(&batch, sel.metric);
            out.z_max = out.z_max.max(bin.z_max);
            if v.iter().any(|&x| x > 0.0) || bin.z_max > 0 {
                out.exact = false;
            }
            out.weights.push(w);
            out.variances.push(v);
            out.batches.push((bin, batch));
        }
    }
    Ok(out)
}

/// Per-record weight and variance term of `batch` in `metric` (see the crate doc).
pub fn weights(batch: &Batch, metric: Metric) -> (Vec<f64>, Vec<f64>) {
    let n = batch.len();
    let bytes = batch.u64s(Field::Bytes).unwrap_or(&[]);
    let packets = batch.u64s(Field::Packets).unwrap_or(&[]);
    let z = batch.sample_z();
    let mut w = Vec::with_capacity(n);
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let x = bytes.get(i).copied().unwrap_or(0);
        let zi = z.get(i).copied().unwrap_or(0);
        // The store's estimators (ORACLES §3); packets and flows get their Horvitz–Thompson
        // variance term (1 − p)/p² scaled by the record's value squared.
        let p = sampling::keep_probability(x, zi);
        let q = (1.0 - p) / (p * p);
        match metric {
            Metric::Bytes => {
                w.push(sampling::estimated_bytes(x, zi) as f64);
                v.push(sampling::variance_term(x, zi));
            }
            Metric::Packets => {
                let pk = packets.get(i).copied().unwrap_or(0);
                w.push(sampling::estimated_packets(pk, x, zi));
                v.push((pk as f64).powi(2) * q);
            }
            Metric::Flows => {
                w.push(sampling::estimated_flows(x, zi));
                v.push(q);
            }
        }
    }
    (w, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::{CustomFields, FlowRecord};

    fn batch(recs: &[(u64, u64)], z: u64) -> Batch {
        let rs: Vec<FlowRecord> = recs
            .iter()
            .map(|&(bytes, packets)| FlowRecord {
                bytes,
                packets,
                ..Default::default()
            })
            .collect();
        Batch::from_records(&rs, vec![z; rs.len()], &CustomFields::default())
    }

    #[test]
    fn exact_records_weigh_their_value() {
        let b = batch(&[(100, 2), (1500, 1)], 0);
        assert_eq!(
            weights(&b, Metric::Bytes),
            (vec![100.0, 1500.0], vec![0.0, 0.0])
        );
        assert_eq!(
            weights(&b, Metric::Packets),
            (vec![2.0, 1.0], vec![0.0, 0.0])
        );
        assert_eq!(weights(&b, Metric::Flows), (vec![1.0, 1.0], vec![0.0, 0.0]));
    }

    #[test]
    fn sampled_records_follow_the_threshold_estimators() {
        // z = 1000: a 250-byte record was kept with p = 1/4.
        let b = batch(&[(250, 5), (4000, 3)], 1000);
        let (w, v) = weights(&b, Metric::Bytes);
        assert_eq!(w, vec![1000.0, 4000.0]);
        assert_eq!(v, vec![1000.0 * 750.0, 0.0]);
        let (w, v) = weights(&b, Metric::Packets);
        assert_eq!(w, vec![20.0, 3.0]);
        assert_eq!(v, vec![25.0 * 0.75 * 16.0, 0.0]);
        let (w, v) = weights(&b, Metric::Flows);
        assert_eq!(w, vec![4.0, 1.0]);
        assert_eq!(v, vec![0.75 * 16.0, 0.0]);
    }
}
