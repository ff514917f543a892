//! Result tables and their four output formats: aligned text, CSV, JSON and NDJSON.
//!
//! Every command that prints a result builds one [`Table`] and hands it to [`Table::write`], so
//! `--format` behaves the same everywhere: CSV has a header row, JSON is an array of objects
//! whose keys are the column names, NDJSON is one such object per line.

use crate::args::{Format, Global};
use flowdrill_query::report::{Report, Section, Shape};
use std::io::{self, Write};

pub use flowdrill_query::report::Cell;

/// A result: named columns and rows of cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    pub fn write(&self, format: Format, w: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Table => self.write_text(w),
            Format::Csv => self.write_csv(w),
            Format::Json => {
                let arr: Vec<_> = self.rows.iter().map(|r| self.object(r)).collect();
                serde_json::to_writer_pretty(&mut *w, &arr)?;
                writeln!(w)
            }
            Format::Ndjson => {
                for r in &self.rows {
                    serde_json::to_writer(&mut *w, &self.object(r))?;
                    writeln!(w)?;
                }
                Ok(())
            }
        }
    }

    fn object(&self, row: &[Cell]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (c, v) in self.columns.iter().zip(row) {
            m.insert(c.clone(), v.json());
        }
        serde_json::Value::Object(m)
    }

    fn write_text(&self, w: &mut dyn Write) -> io::Result<()> {
        let texts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::text).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &texts {
            for (i, t) in r.iter().enumerate() {
                widths[i] = widths[i].max(t.chars().count());
            }
        }
        let right: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().any(|r| r[i].is_numeric()))
            .collect();
        let line = |cells: &[String], w: &mut dyn Write| -> io::Result<()> {
            let mut s = String::new();
            for (i, t) in cells.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = widths[i].saturating_sub(t.chars().count());
                if right[i] {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(t);
                } else {
                    s.push_str(t);
                    if i + 1 < cells.len() {
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            writeln!(w, "{}", s.trim_end())
        };
        line(&self.columns, w)?;
        for r in &texts {
            line(r, w)?;
        }
        Ok(())
    }

    fn write_csv(&self, w: &mut dyn Write) -> io::Result<()> {
        let esc = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let header: Vec<String> = self.columns.iter().map(|c| esc(c)).collect();
        writeln!(w, "{}", header.join(","))?;
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| esc(&c.text())).collect();
            writeln!(w, "{}", cells.join(","))?;
        }
        Ok(())
    }
}

/// A progress bar of `len` steps on standard error, only when it is a terminal and `--quiet`
/// is off (scripts and pipes see nothing). `what` is an indicatif template fragment.
pub fn progress(g: &Global, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if g.quiet || !io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{msg}} eta {{eta}}"
        ))
        .ok()?
        .progress_chars("=> "),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(b)
}

/// A spinner on standard error while a long analysis runs (terminal only, not `--quiet`);
/// it shows after half a second so that quick answers print without flicker.
pub fn spinner(g: &Global, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if g.quiet || !io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::hidden();
    b.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").ok()?);
    b.set_message(what.to_string());
    let shown = b.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if !shown.is_finished() {
            shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown.enable_steady_tick(std::time::Duration::from_millis(120));
        }
    });
    Some(b)
}

/// Prints an analysis report in the chosen format: text with a header that says how exact
/// the numbers are, or CSV / JSON / NDJSON for machines.
pub fn print_report(r: &Report, g: &Global) -> crate::CliResult {
    for s in &r.meta.skipped {
        eprintln!("flowdrill: warning: skipped {s}");
    }
    let mut out = io::stdout().lock();
    write_report(r, g.format, &mut out)?;
    out.flush()?;
    Ok(())
}

pub fn write_report(r: &Report, format: Format, w: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => {
            let mut h = r.header();
            if r.meta.cached {
                h.push_str(" | cached");
            }
            writeln!(w, "{h}")?;
            for s in &r.sections {
                writeln!(w, "\n== {}", s.title)?;
                if s.rows.is_empty() {
                    writeln!(w, "(nothing selected)")?;
                    continue;
                }
                match s.shape {
                    Shape::Tree => tree(s).write_text(w)?,
                    Shape::Grid => grid(s, w)?,
                    Shape::Series => sparklines(s).write_text(w)?,
                    Shape::List => plain(s).write_text(w)?,
                }
            }
            Ok(())
        }
        Format::Csv => {
            for (i, s) in r.sections.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                plain(s).write_csv(w)?;
            }
            Ok(())
        }
        Format::Json => {
            let v = serde_json::json!({
                "meta": r.meta,
                "sections": r.sections.iter().map(|s| serde_json::json!({
                    "title": s.title,
                    "shape": s.shape,
                    "columns": s.columns,
                    "rows": rows_json(s, r.meta.exact),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut *w, &v)?;
            writeln!(w)
        }
        Format::Ndjson => {
            for (i, s) in r.sections.iter().enumerate() {
                for mut o in rows_json(s, r.meta.exact) {
                    if let Some(m) = o.as_object_mut() {
                        m.insert("section".into(), i.into());
                    }
                    serde_json::to_writer(&mut *w, &o)?;
                    writeln!(w)?;
                }
            }
            Ok(())
        }
    }
}

/// Row objects, each saying whether its numbers are exact.
fn rows_json(s: &Section, exact: bool) -> Vec<serde_json::Value> {
    s.objects()
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o.as_object_mut() {
                m.insert("exact".into(), exact.into());
            }
            o
        })
        .collect()
}

fn plain(s: &Section) -> Table {
    Table {
        columns: s.columns.clone(),
        rows: s.rows.clone(),
    }
}

/// Netpy's Figure 1: keys indented by their depth in the tree of reported keys.
fn tree(s: &Section) -> Table {
    let (Some(k), Some(d)) = (s.col("key"), s.col("depth")) else {
        return plain(s);
    };
    let mut t = Table {
        columns: s
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != d)
            .map(|(_, c)| c.clone())
            .collect(),
        rows: Vec::new(),
    };
    for r in &s.rows {
        let depth = r[d].as_f64().unwrap_or(0.0) as usize;
        t.rows.push(
            r.iter()
                .enumerate()
                .filter(|(i, _)| *i != d)
                .map(|(i, c)| {
                    if i == k {
                        Cell::Str(format!("{}{}", "  ".repeat(depth), c.text()))
                    } else {
                        c.clone()
                    }
                })
                .collect(),
        );
    }
    t
}

const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// A heatmap as a Unicode shaded grid: rows labelled, columns numbered with a legend.
fn grid(s: &Section, w: &mut dyn Write) -> io::Result<()> {
    let (Some(rc), Some(cc), Some(vc)) = (s.col("row"), s.col("col"), s.col("value")) else {
        return plain(s).write_text(w);
    };
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    let mut cells = std::collections::HashMap::new();
    for r in &s.rows {
        let (a, b) = (r[rc].text(), r[cc].text());
        if !rows.contains(&a) {
            rows.push(a.clone());
        }
        if !cols.contains(&b) {
            cols.push(b.clone());
        }
        cells.insert((a, b), r[vc].as_f64().unwrap_or(0.0));
    }
    let max = cells.values().copied().fold(0.0f64, f64::max);
    let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let mut head = " ".repeat(width + 1);
    for i in 0..cols.len() {
        head.push_str(&format!("{:>3}", i + 1));
    }
    writeln!(w, "{}", head.trim_end())?;
    for r in &rows {
        let mut line = format!("{r:<width$} ");
        for c in &cols {
            let v = cells.get(&(r.clone(), c.clone())).copied().unwrap_or(0.0);
            let shade = if v <= 0.0 || max <= 0.0 {
                '·'
            } else {
                SHADES[((v / max) * 4.0).ceil().clamp(1.0, 4.0) as usize]
            };
            line.push_str(&format!(" {shade}{shade}"));
        }
        writeln!(w, "{line}")?;
    }
    writeln!(w, "columns:")?;
    for (i, c) in cols.iter().enumerate() {
        writeln!(w, "{:>4}  {c}", i + 1)?;
    }
    writeln!(
        w,
        "shade: █ > 75 %, ▓ > 50 %, ▒ > 25 %, ░ > 0 of the largest cell ({max:.0}); · empty"
    )
}

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One line per category (and direction): total, peak, and a sparkline over the bins.
fn sparklines(s: &Section) -> Table {
    let (Some(cat), Some(val)) = (s.col("category"), s.col("value")) else {
        return plain(s);
    };
    let dir = s.col("direction");
    let mut order: Vec<String> = Vec::new();
    let mut series: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for r in &s.rows {
        let mut k = r[cat].text();
        if let Some(d) = dir {
            k = format!("{k} {}", r[d].text());
        }
        if !series.contains_key(&k) {
            order.push(k.clone());
        }
        series
            .entry(k)
            .or_default()
            .push(r[val].as_f64().unwrap_or(0.0));
    }
    let bins = series.values().map(Vec::len).max().unwrap_or(0);
    let mut t = Table::new(&["category", "total", "peak", &format!("{bins} bins")]);
    for k in order {
        let v = &series[&k];
        let total: f64 = v.iter().sum();
        let peak = v.iter().copied().fold(0.0f64, f64::max);
        let line: String = v
            .iter()
            .map(|&x| {
                if peak <= 0.0 || x <= 0.0 {
                    ' '
                } else {
                    SPARKS[(((x / peak) * 7.0).round() as usize).min(7)]
                }
            })
            .collect();
        t.push(vec![
            Cell::Str(k),
            Cell::Float(total, 0),
            Cell::Float(peak, 0),
            Cell::Str(line),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["key", "bytes", "share"]);
        t.push(vec!["10.0.0.1".into(), 300u64.into(), Cell::Float(30.0, 1)]);
        t.push(vec!["a,b".into(), 7u64.into(), Cell::Null]);
        t
    }

    fn render(f: Format) -> String {
        let mut v = Vec::new();
        sample().write(f, &mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn text_aligns_numbers_right() {
        assert_eq!(
            render(Format::Table),
            "key       bytes  share\n10.0.0.1    300   30.0\na,b           7\n"
        );
    }

    #[test]
    fn csv_has_a_header_and_quotes() {
        assert_eq!(
            render(Format::Csv),
            "key,bytes,share\n10.0.0.1,300,30.0\n\"a,b\",7,\n"
        );
    }

    #[test]
    fn json_rows_name_their_fields() {
        let v: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(v[0]["key"], "10.0.0.1");
        assert_eq!(v[0]["bytes"], 300);
        assert_eq!(v[1]["share"], serde_json::Value::Null);
        let nd = render(Format::Ndjson);
        assert_eq!(nd.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
        assert_eq!(first["share"], 30.0);
    }
}
