//! The demo's report over a store: totals, top talkers, and hierarchical heavy hitters of
//! sources and applications (Netpy's Figure 1 tree). Goes through the query layer.

use crate::args::Global;
use crate::output::{Cell, Table};
use crate::{CliResult, units};
use anyhow::Context;
use flowdrill_analysis::Weights;
use flowdrill_analysis::hhh::{self, AppHierarchy, IpLevels, PortSide, Threshold};
use flowdrill_analysis::top::{self, Rank};
use flowdrill_model::{Addr, Field};
use flowdrill_query::{Loaded, Selection};
use flowdrill_store::Store;
use std::io::Write;
use std::path::Path;

/// Share of the total above which a key is a heavy hitter in the report.
const PHI: f64 = 0.05;

pub fn print(store_dir: &Path, g: &Global) -> CliResult {
    let store =
        Store::open(store_dir).with_context(|| format!("opening {}", store_dir.display()))?;
    let sel = Selection::all();
    let fields = [
        Field::SrcAddr,
        Field::DstAddr,
        Field::Proto,
        Field::SrcPort,
        Field::DstPort,
    ];
    let loaded = flowdrill_query::load(&store, &sel, &fields).context("reading the store")?;
    let mut out = std::io::stdout().lock();
    for s in &loaded.skipped {
        writeln!(out, "warning: skipped {}: {}", s.path.display(), s.reason)?;
    }
    let bins = store.all_bins();
    let (flows, packets, bytes) = bins
        .iter()
        .filter(|b| b.level == 0)
        .fold((0, 0, 0), |a, b| {
            (a.0 + b.flows, a.1 + b.packets, a.2 + b.bytes)
        });
    let flowdrill_query::Estimate {
        value: est,
        variance: var,
    } = loaded.total();
    writeln!(
        out,
        "\n== Store: {} link(s), {} level-0 bins; exact counters: {} flows, {} packets, {}B",
        store.links().len(),
        bins.iter().filter(|b| b.level == 0).count(),
        flows,
        packets,
        units::si(bytes as f64)
    )?;
    writeln!(
        out,
        "   {} records read, {}; estimated bytes {}",
        loaded.len(),
        exactness(&loaded),
        with_error(est, var)
    )?;

    let w = loaded.all_weights();
    let v = loaded.all_variances();
    let weights = if loaded.exact {
        Weights::exact(&w)
    } else {
        Weights::sampled(&w, &v)
    };

    // Top talkers.
    let src = loaded.concat_u128(Field::SrcAddr);
    let groups = top::aggregate(&src, weights).context("top sources")?;
    let mut t = Table::new(&["source", "bytes", "share %", "records"]);
    for gr in top::top_n(groups, 10, Rank::Weight) {
        t.push(vec![
            Addr(gr.key).to_string().into(),
            Cell::Str(with_error(gr.weight, gr.variance)),
            Cell::Float(100.0 * gr.weight / est.max(1.0), 1),
            gr.records.into(),
        ]);
    }
    writeln!(out, "\n== Top 10 sources by bytes")?;
    t.write(g.format, &mut out)?;

    // Source HHH.
    let rep = hhh::hhh_addrs(&IpLevels::every(), &src, weights, Threshold::Share(PHI))
        .context("source HHH")?;
    writeln!(
        out,
        "\n== Hierarchical heavy hitters: source prefixes above {:.0}% of bytes (T = {}B)",
        PHI * 100.0,
        units::si(rep.threshold)
    )?;
    tree_table("prefix", &rep).write(g.format, &mut out)?;

    // Application HHH (Netpy's source-port form).
    let leaves = flowdrill_query::run::app_leaves(&loaded);
    let h = AppHierarchy {
        side: PortSide::Source,
    };
    let rep = hhh::hhh(&h, &leaves, weights, Threshold::Share(PHI)).context("application HHH")?;
    writeln!(
        out,
        "\n== Hierarchical heavy hitters: applications (protocol, source port) above {:.0}% of bytes",
        PHI * 100.0
    )?;
    tree_table("application", &rep).write(g.format, &mut out)?;
    Ok(())
}

/// Netpy's Figure 1: the reported keys indented by depth, with their totals and shares.
fn tree_table<K: std::fmt::Display>(key: &str, rep: &hhh::HhhReport<K>) -> Table {
    let mut t = Table::new(&[key, "bytes", "share %"]);
    for r in &rep.rows {
        t.push(vec![
            Cell::Str(format!("{}{}", "  ".repeat(r.depth as usize), r.key)),
            Cell::Str(with_error(r.total, r.variance)),
            Cell::Float(100.0 * r.share, 1),
        ]);
    }
    t
}

fn exactness(l: &Loaded) -> String {
    if l.exact {
        "exact (no sampling)".into()
    } else {
        format!(
            "sampled to the disk budget (z up to {}B)",
            units::si(l.z_max as f64)
        )
    }
}

/// `12.3 M` or `12.3 M ± 0.4 M` (95 % interval half-width) for an estimate.
fn with_error(v: f64, var: f64) -> String {
    if var > 0.0 {
        format!("{} ± {}", units::si(v), units::si(1.96 * var.sqrt()))
    } else {
        units::si(v)
    }
}
