//! Two-dimensional hierarchical heavy hitters: the relevant keys of each axis and the traffic of
//! every cell of their cross product (Netpy's bidimensional report).
//!
//! This module owns the attribution of records to cells. Each axis is any [`Hierarchy`]; its
//! relevant keys are its one-dimensional HHH (the rule of [`crate::hhh`], with its own
//! threshold). Then (ORACLES §2.8):
//!
//! - every record is attributed, on each axis, to its **most specific reported key** (the key
//!   itself or its nearest reported ancestor), or to that axis's **root** when none is reported;
//! - the cells hold the attributed traffic, so they sum to N, and a row (column) sums to its
//!   key's attributed traffic, which is its one-dimensional residual (for the root: the root's
//!   unreported residual).
//!
//! Records are first aggregated by their pair of leaves, so the work after one pass over the
//! input is proportional to the distinct leaf pairs.

use crate::hhh::{HhhReport, HhhRow, Hierarchy, Threshold};
use crate::{AnalysisError, FastMap, Weights, fast_map};

/// One cell of the cross product: indexes into [`Hhh2Report::row_keys`] and
/// [`Hhh2Report::col_keys`], and the attributed traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub row: usize,
    pub col: usize,
    pub total: f64,
    pub variance: f64,
}

/// The result of a two-dimensional run. Cells with no traffic are absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Hhh2Report<A, B> {
    /// The one-dimensional report of the first axis (rows).
    pub rows: HhhReport<A>,
    /// The one-dimensional report of the second axis (columns).
    pub cols: HhhReport<B>,
    /// The row keys: the reported keys of the first axis in tree order, then its root when the
    /// root is not reported (it holds what no reported key covers).
    pub row_keys: Vec<A>,
    /// The column keys, likewise.
    pub col_keys: Vec<B>,
    /// Non-empty cells, sorted by (row, col).
    pub cells: Vec<Cell>,
}

impl<A, B> Hhh2Report<A, B> {
    /// The traffic attributed to each row key (sums of the row's cells).
    pub fn row_sums(&self) -> Vec<f64> {
        let mut s = vec![0.0; self.row_keys.len()];
        for c in &self.cells {
            s[c.row] += c.total;
        }
        s
    }
    /// The traffic attributed to each column key.
    pub fn col_sums(&self) -> Vec<f64> {
        let mut s = vec![0.0; self.col_keys.len()];
        for c in &self.cells {
            s[c.col] += c.total;
        }
        s
    }
}

/// The keys records are attributed to on one axis, and a memo of each leaf's attribution.
struct Axis<'h, H: Hierarchy> {
    h: &'h H,
    index: FastMap<H::Key, usize>,
    keys: Vec<H::Key>,
    memo: FastMap<H::Key, usize>,
}

impl<'h, H: Hierarchy> Axis<'h, H> {
    fn new(h: &'h H, rows: &[HhhRow<H::Key>]) -> Axis<'h, H> {
        let keys: Vec<H::Key> = rows.iter().map(|r| r.key.clone()).collect();
        let index = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        Axis {
            h,
            index,
            keys,
            memo: fast_map(0),
        }
    }
    /// The index of the most specific reported key at or above `leaf`, or of its root (added to
    /// the keys on first use).
    fn attribute(&mut self, leaf: &H::Key) -> usize {
        if let Some(&i) = self.memo.get(leaf) {
            return i;
        }
        let mut k = leaf.clone();
        let i = loop {
            if let Some(&i) = self.index.get(&k) {
                break i;
            }
            match self.h.parent(&k) {
                Some(p) => k = p,
                None => {
                    let i = self.keys.len();
                    self.keys.push(k.clone());
                    self.index.insert(k, i);
                    break i;
                }
            }
        };
        self.memo.insert(leaf.clone(), i);
        i
    }
}

/// The two-dimensional report of records with leaves `a[i]` on `ha` and `b[i]` on `hb`.
#[allow(clippy::too_many_arguments)]
pub fn hhh2<HA: Hierarchy, HB: Hierarchy>(
    ha: &HA,
    a: &[HA::Leaf],
    ta: Threshold,
    hb: &HB,
    b: &[HB::Leaf],
    tb: Threshold,
    w: Weights<'_>,
) -> Result<Hhh2Report<HA::Key, HB::Key>, AnalysisError> {
    crate::check_len("second axis", a.len(), b.len())?;
    let (n, nvar) = w.check(a.len())?;
    let (thr_a, thr_b) = (ta.resolve(n)?, tb.resolve(n)?);
    let mut pairs: FastMap<(HA::Key, HB::Key), (f64, f64)> = fast_map(1024);
    for i in 0..a.len() {
        let e = pairs
            .entry((ha.leaf(a[i]), hb.leaf(b[i])))
            .or_insert((0.0, 0.0));
        e.0 += w.weight[i];
        e.1 += w.var(i);
    }
    let mut la: FastMap<HA::Key, (f64, f64)> = fast_map(pairs.len());
    let mut lb: FastMap<HB::Key, (f64, f64)> = fast_map(pairs.len());
    for ((ka, kb), (t, v)) in &pairs {
        let e = la.entry(ka.clone()).or_insert((0.0, 0.0));
        e.0 += t;
        e.1 += v;
        let e = lb.entry(kb.clone()).or_insert((0.0, 0.0));
        e.0 += t;
        e.1 += v;
    }
    let rows = ha.pass(la.into_iter().collect(), n, nvar, thr_a)?;
    let cols = hb.pass(lb.into_iter().collect(), n, nvar, thr_b)?;
    let mut ax = Axis::new(ha, &rows.rows);
    let mut bx = Axis::new(hb, &cols.rows);
    // Sorted pair order: cell sums are added in one fixed order whatever the input order.
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_unstable_by(|x, y| x.0.cmp(&y.0));
    let mut cells: FastMap<(usize, usize), (f64, f64)> = fast_map(64);
    for ((ka, kb), (t, v)) in &pairs {
        let e = cells
            .entry((ax.attribute(ka), bx.attribute(kb)))
            .or_insert((0.0, 0.0));
        e.0 += t;
        e.1 += v;
    }
    let mut cells: Vec<Cell> = cells
        .into_iter()
        .map(|((row, col), (total, variance))| Cell {
            row,
            col,
            total,
            variance,
        })
        .collect();
    cells.sort_unstable_by_key(|c| (c.row, c.col));
    Ok(Hhh2Report {
        rows,
        cols,
        row_keys: ax.keys,
        col_keys: bx.keys,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hhh::{AppHierarchy, IpLevels, PortSide, hhh};
    use crate::testutil::{clustered_addrs, rng, v4, weights};
    use rand::RngExt;

    type Case = (Vec<u128>, Vec<(u8, u16, u16)>, Vec<f64>);

    fn random_case(seed: u64) -> Case {
        let mut r = rng(seed);
        let n = r.random_range(1..150);
        let a = clustered_addrs(&mut r, n, seed.is_multiple_of(4));
        let apps = (0..n)
            .map(|_| {
                let p = [6u8, 17, 1][r.random_range(0..3)];
                let port = [53u16, 80, 443, 2000, 50000][r.random_range(0..5)];
                (p, port, [80u16, 40000][r.random_range(0..2)])
            })
            .collect();
        (a, apps, weights(&mut r, n))
    }

    #[test]
    fn cells_attribute_every_record_to_its_most_specific_reported_keys() {
        // ORACLES §2.8, checked record by record against a naive attribution.
        for seed in 0..150 {
            let (a, apps, w) = random_case(seed);
            let ip = IpLevels::every();
            let app = AppHierarchy {
                side: PortSide::Source,
            };
            let mut r = rng(seed + 1000);
            let (ta, tb) = (
                Threshold::Share(r.random_range(0.02..0.4)),
                Threshold::Share(r.random_range(0.02..0.4)),
            );
            let rep = hhh2(&ip, &a, ta, &app, &apps, tb, Weights::exact(&w)).unwrap();
            // The axes are the 1-D reports.
            assert_eq!(rep.rows, hhh(&ip, &a, Weights::exact(&w), ta).unwrap());
            assert_eq!(rep.cols, hhh(&app, &apps, Weights::exact(&w), tb).unwrap());
            // Naive attribution: first reported key along the chain, else the chain's root.
            let attr = |chain: Vec<String>, reported: &[String]| {
                chain
                    .iter()
                    .find(|k| reported.contains(k))
                    .unwrap_or(chain.last().unwrap())
                    .clone()
            };
            let rs: Vec<String> = rep.rows.rows.iter().map(|r| r.key.to_string()).collect();
            let cs: Vec<String> = rep.cols.rows.iter().map(|r| r.key.to_string()).collect();
            let mut want: std::collections::BTreeMap<(String, String), f64> = Default::default();
            for i in 0..a.len() {
                let ca = ip
                    .chain(&ip.leaf(a[i]))
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                let cb = app
                    .chain(&app.leaf(apps[i]))
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                *want.entry((attr(ca, &rs), attr(cb, &cs))).or_default() += w[i];
            }
            let got: std::collections::BTreeMap<(String, String), f64> = rep
                .cells
                .iter()
                .map(|c| {
                    (
                        (
                            rep.row_keys[c.row].to_string(),
                            rep.col_keys[c.col].to_string(),
                        ),
                        c.total,
                    )
                })
                .collect();
            assert_eq!(got, want, "seed {seed}");
            // Cells sum to N; rows and columns sum to the 1-D residuals.
            let n: f64 = w.iter().sum();
            assert_eq!(rep.cells.iter().map(|c| c.total).sum::<f64>(), n);
            fn resid<K>(rows: &[HhhRow<K>], unrep: f64, keys_len: usize) -> Vec<f64> {
                let mut v: Vec<f64> = rows.iter().map(|r| r.residual).collect();
                if keys_len > rows.len() {
                    v.push(unrep);
                }
                v
            }
            assert_eq!(
                rep.row_sums(),
                resid(
                    &rep.rows.rows,
                    rep.rows.unreported_residual,
                    rep.row_keys.len()
                ),
                "seed {seed}"
            );
            assert_eq!(
                rep.col_sums(),
                resid(
                    &rep.cols.rows,
                    rep.cols.unreported_residual,
                    rep.col_keys.len()
                ),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_small_report_by_hand() {
        let a = [
            v4("10.0.0.1"),
            v4("10.0.0.1"),
            v4("10.0.0.2"),
            v4("192.0.2.7"),
        ];
        let apps = [(6, 80, 5000), (17, 53, 6000), (6, 80, 5001), (6, 80, 5002)];
        let w = [500.0, 100.0, 50.0, 350.0];
        let ip = IpLevels::new(&[32, 24, 0], &[0]).unwrap();
        let app = AppHierarchy {
            side: PortSide::Source,
        };
        let rep = hhh2(
            &ip,
            &a,
            Threshold::Absolute(300.0),
            &app,
            &apps,
            Threshold::Absolute(300.0),
            Weights::exact(&w),
        )
        .unwrap();
        let rows: Vec<String> = rep.row_keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(rows, ["10.0.0.1/32", "192.0.2.7/32", "any"]);
        let cols: Vec<String> = rep.col_keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(cols, ["TCP 80->5000", "TCP 80->5002", "any"]);
        let cell = |r: &str, c: &str| {
            rep.cells
                .iter()
                .find(|x| {
                    rep.row_keys[x.row].to_string() == r && rep.col_keys[x.col].to_string() == c
                })
                .map(|x| x.total)
        };
        assert_eq!(cell("10.0.0.1/32", "TCP 80->5000"), Some(500.0));
        assert_eq!(cell("10.0.0.1/32", "any"), Some(100.0));
        assert_eq!(cell("192.0.2.7/32", "TCP 80->5002"), Some(350.0));
        assert_eq!(cell("any", "any"), Some(50.0));
        assert_eq!(rep.cells.len(), 4);
    }

    #[test]
    fn axes_of_different_lengths_are_refused() {
        let r = hhh2(
            &IpLevels::every(),
            &[1u128],
            Threshold::Share(0.1),
            &IpLevels::every(),
            &[],
            Threshold::Share(0.1),
            Weights::exact(&[1.0]),
        );
        assert!(matches!(r, Err(AnalysisError::LengthMismatch { .. })));
    }
}
