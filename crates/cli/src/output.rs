//! Result tables and their four output formats: aligned text, CSV, JSON and NDJSON.
//!
//! Every command that prints a result builds one [`Table`] and hands it to [`Table::write`], so
//! `--format` behaves the same everywhere: CSV has a header row, JSON is an array of objects
//! whose keys are the column names, NDJSON is one such object per line.

use crate::args::Format;
use std::io::{self, Write};

/// One value of a result table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Str(String),
    Int(i128),
    /// A float printed with the given number of decimals in text and CSV.
    Float(f64, usize),
    Null,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Str(s) => s.clone(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v, d) => format!("{v:.d$}", d = *d),
            Cell::Null => String::new(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Str(s) => serde_json::Value::String(s.clone()),
            Cell::Int(v) => {
                if let Ok(x) = i64::try_from(*v) {
                    x.into()
                } else {
                    serde_json::Value::String(v.to_string())
                }
            }
            Cell::Float(v, _) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Cell::Null => serde_json::Value::Null,
        }
    }
    fn numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Float(..))
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Str(s.to_string())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Str(s)
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Int(v as i128)
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        Cell::Int(v as i128)
    }
}

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
            .map(|i| self.rows.iter().any(|r| r[i].numeric()))
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
