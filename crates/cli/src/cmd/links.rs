//! `flowdrill links`: the store's links with their levels (bin, budget, retention) and what
//! each level holds (bins, records, bytes on disk, time span); `--check` validates a links
//! file, `--set` installs one.

use crate::args::{Format, Global, LinksArgs};
use crate::output::{Cell, Table};
use crate::{CliError, CliResult, units};
use anyhow::Context;
use flowdrill_store::{LevelConfig, LinksConfig, Store};
use std::io::Write;
use std::path::Path;

pub fn run(g: &Global, a: &LinksArgs) -> CliResult {
    if let Some(p) = &a.check {
        let config = read_links(p)?;
        if !g.quiet {
            eprintln!(
                "{}: ok: {} links, {} rules",
                p.display(),
                config.links.len(),
                config.rules.len()
            );
        }
        return print(g, &table(&config, None, g.format));
    }
    let dir = super::store_dir(g, "flowdrill-store");
    let mut store =
        Store::open(&dir).with_context(|| format!("opening the store {}", dir.display()))?;
    if let Some(p) = &a.set {
        read_links(p)?;
        let text = std::fs::read_to_string(p)?;
        store
            .set_links(&text)
            .with_context(|| format!("installing {}", p.display()))?;
        if !g.quiet {
            eprintln!(
                "installed {} as the links file of {}",
                p.display(),
                dir.display()
            );
        }
    }
    for s in store.skipped() {
        eprintln!(
            "flowdrill: warning: skipped {}: {}",
            s.path.display(),
            s.reason
        );
    }
    print(g, &table(store.config(), Some(&store), g.format))
}

/// Reads and validates a links file; its mistakes (with line:column) are usage errors.
fn read_links(p: &Path) -> Result<LinksConfig, CliError> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the links file {}", p.display()))
        .map_err(CliError::usage)?;
    LinksConfig::parse(&text, &p.display().to_string()).map_err(CliError::usage)
}

fn print(g: &Global, t: &Table) -> CliResult {
    let mut out = std::io::stdout().lock();
    t.write(g.format, &mut out)?;
    out.flush()?;
    Ok(())
}

/// One row per link and level: the configuration, and with a store what is on disk (links
/// and levels found only on disk too).
fn table(config: &LinksConfig, store: Option<&Store>, format: Format) -> Table {
    let mut cols = vec![
        "link",
        "level",
        "bin",
        "budget_per_hour",
        "max_age",
        "max_size",
    ];
    if store.is_some() {
        cols.extend(["bins", "records", "bytes", "start", "end"]);
    }
    let mut t = Table::new(&cols);
    let mut links: Vec<String> = config.links.iter().map(|l| l.name.clone()).collect();
    if let Some(s) = store {
        for l in s.links() {
            if !links.contains(&l) {
                links.push(l);
            }
        }
    }
    for link in links {
        let levels: &[LevelConfig] = config.link(&link).map_or(&[], |l| &l.levels);
        let on_disk = store.map(|s| s.levels(&link)).unwrap_or_default();
        let n = (levels.len() as u8).max(on_disk.iter().max().map_or(0, |m| m + 1));
        for level in 0..n {
            let mut row = vec![Cell::Str(link.clone()), Cell::Int(level as i128)];
            match levels.get(level as usize) {
                Some(c) => row.extend([
                    Cell::Str(duration(c.bin_ms)),
                    size_cell(c.budget_per_hour, format),
                    c.max_age_ms.map_or(Cell::Null, |d| Cell::Str(duration(d))),
                    c.max_size.map_or(Cell::Null, |s| size_cell(s, format)),
                ]),
                None => row.extend([Cell::Null, Cell::Null, Cell::Null, Cell::Null]),
            }
            if let Some(s) = store {
                let bins: Vec<_> = s
                    .all_bins()
                    .iter()
                    .filter(|b| b.link == link && b.level == level)
                    .collect();
                row.extend([
                    Cell::Int(bins.len() as i128),
                    Cell::Int(bins.iter().map(|b| b.records_after as i128).sum()),
                    size_cell(bins.iter().map(|b| b.size).sum(), format),
                    bins.iter()
                        .map(|b| b.start)
                        .min()
                        .map_or(Cell::Null, time_cell),
                    bins.iter()
                        .map(|b| b.end)
                        .max()
                        .map_or(Cell::Null, time_cell),
                ]);
            }
            t.push(row);
        }
    }
    t
}

/// A size: readable in a table (`1.2 MB`), bytes in machine formats.
pub(crate) fn size_cell(bytes: u64, format: Format) -> Cell {
    if format == Format::Table {
        // si() gives "20.0 G" or "512".
        let n = units::si(bytes as f64);
        let sep = if n.contains(' ') { "" } else { " " };
        Cell::Str(format!("{n}{sep}B"))
    } else {
        Cell::Int(bytes as i128)
    }
}

/// A bin edge, UTC to the minute: `2024-01-01T00:05Z`.
pub(crate) fn time_cell(ms: u64) -> Cell {
    let s = flowdrill_model::time::format_ms(ms);
    Cell::Str(format!("{}T{}Z", &s[..10], &s[11..16]))
}

/// A duration in the links file's units: `5m`, `1h`, `30d`.
pub(crate) fn duration(ms: u64) -> String {
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= len && ms.is_multiple_of(len) {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_like_the_links_file() {
        assert_eq!(duration(300_000), "5m");
        assert_eq!(duration(30 * 86_400_000), "30d");
        assert_eq!(duration(90_000), "90s");
        assert_eq!(duration(1500), "1500ms");
        assert_eq!(size_cell(20_000_000_000, Format::Table).text(), "20.0 GB");
        assert_eq!(size_cell(512, Format::Table).text(), "512 B");
        assert_eq!(size_cell(512, Format::Json).text(), "512");
        assert_eq!(time_cell(1_704_067_500_000).text(), "2024-01-01T00:05Z");
    }
}
