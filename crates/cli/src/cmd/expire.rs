//! `flowdrill expire`: deletes bins, by the links file's retention (each level's `max_age`,
//! then its `max_size`) or by the age, time or size given, and prints what it removed, or
//! with `--dry-run` what it would remove, per link and level.

use super::links::{size_cell, time_cell};
use crate::args::{ExpireArgs, Format, Global};
use crate::output::{Cell, Table};
use crate::{CliError, CliResult};
use anyhow::{Context, anyhow};
use flowdrill_store::{BinRef, ExpireSummary, Store};
use std::collections::BTreeMap;
use std::io::Write;

pub fn run(g: &Global, a: &ExpireArgs) -> CliResult {
    let dir = super::store_dir(g, "flowdrill-store");
    let mut store =
        Store::open(&dir).with_context(|| format!("opening the store {}", dir.display()))?;
    if let Some(l) = &a.link
        && !store.links().contains(l)
    {
        return Err(CliError::usage(anyhow!(
            "unknown link '{l}'; the store has: {}",
            store.links().join(", ")
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let cutoff = match (&a.older_than, &a.before) {
        (Some(age), _) => Some(
            now.saturating_sub(
                flowdrill_query::time::duration(age)
                    .map_err(|e| CliError::usage(anyhow!("--older-than: {e}")))?,
            ),
        ),
        // A point in time is the start of the open range it begins.
        (None, Some(t)) => Some(
            flowdrill_query::parse_range(&format!("{t}.."), now)
                .map_err(|e| CliError::usage(anyhow!("--before: {e}")))?
                .start,
        ),
        (None, None) => None,
    };
    let max_size = match &a.max_size {
        Some(s) => Some(flowdrill_store::config::parse_size(s).ok_or_else(|| {
            CliError::usage(anyhow!(
                "--max-size '{s}' is not a size (try 500MB, 5GB, 2GiB)"
            ))
        })?),
        None => None,
    };
    store.set_dry_run(a.dry_run);
    let (link, level) = (a.link.as_deref(), a.level);
    let mut removed = ExpireSummary::default();
    if cutoff.is_none() && max_size.is_none() {
        removed = store.expire_configured(now, link, level)?;
    }
    if let Some(c) = cutoff {
        add(&mut removed, store.expire_older_than(link, level, c)?);
    }
    if let Some(max) = max_size {
        let mut pairs: Vec<(String, u8)> = store
            .all_bins()
            .iter()
            .filter(|b| link.is_none_or(|l| b.link == l) && level.is_none_or(|v| b.level == v))
            .map(|b| (b.link.clone(), b.level))
            .collect();
        pairs.dedup();
        for (l, v) in pairs {
            add(&mut removed, store.expire_to_size(&l, v, max)?);
        }
    }
    let mut out = std::io::stdout().lock();
    if g.format == Format::Table {
        let verb = if a.dry_run {
            "dry run: would remove"
        } else {
            "removed"
        };
        writeln!(
            out,
            "# {verb} {} bins, {} from {}",
            removed.removed.len(),
            size_cell(removed.bytes_freed, Format::Table).text(),
            dir.display()
        )?;
    }
    if !removed.removed.is_empty() || g.format != Format::Table {
        table(&removed.removed, g.format).write(g.format, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

fn add(total: &mut ExpireSummary, s: ExpireSummary) {
    total.bytes_freed += s.bytes_freed;
    total.removed.extend(s.removed);
}

/// Per link and level: bins removed, bytes freed, and the time they spanned.
fn table(removed: &[BinRef], format: Format) -> Table {
    let mut per: BTreeMap<(&str, u8), (u64, u64, u64, u64)> = BTreeMap::new();
    for b in removed {
        let e = per
            .entry((b.link.as_str(), b.level))
            .or_insert((0, 0, u64::MAX, 0));
        e.0 += 1;
        e.1 += b.size;
        e.2 = e.2.min(b.start);
        e.3 = e.3.max(b.end);
    }
    let mut t = Table::new(&["link", "level", "bins", "bytes", "start", "end"]);
    for ((link, level), (bins, bytes, start, end)) in per {
        t.push(vec![
            Cell::Str(link.to_string()),
            Cell::Int(level as i128),
            Cell::Int(bins as i128),
            size_cell(bytes, format),
            time_cell(start),
            time_cell(end),
        ]);
    }
    t
}
