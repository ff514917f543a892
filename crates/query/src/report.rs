//! The result of an analysis, as every interface shows it: a header that says what was asked
//! and how exact the answer is, and a table of named columns.
//!
//! The same [`Report`] is printed by the CLI (aligned text, CSV, JSON, NDJSON), replayed by
//! the console, served as JSON by the daemon, and kept in the result cache.

use serde::{Deserialize, Serialize};

/// One value of a result table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    Int(i128),
    /// A float, with the number of decimals text and CSV print.
    Float(f64, usize),
    Str(String),
    Null,
}

impl Cell {
    /// The value as text and CSV print it.
    pub fn text(&self) -> String {
        match self {
            Cell::Str(s) => s.clone(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v, d) => format!("{v:.d$}", d = *d),
            Cell::Null => String::new(),
        }
    }
    /// The value as JSON carries it.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Cell::Str(s) => serde_json::Value::String(s.clone()),
            Cell::Int(v) => match i64::try_from(*v) {
                Ok(x) => x.into(),
                Err(_) => serde_json::Value::String(v.to_string()),
            },
            Cell::Float(v, _) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Cell::Null => serde_json::Value::Null,
        }
    }
    pub fn is_numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Float(..))
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v, _) => Some(*v),
            _ => None,
        }
    }
    /// A metric value: an integer when exact, else the estimate with one decimal.
    pub fn amount(v: f64, exact: bool) -> Cell {
        if exact {
            Cell::Int(v.round() as i128)
        } else {
            Cell::Float(v, 1)
        }
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

/// How a human rendering should lay the rows out (machine formats ignore it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// Rows as they are.
    #[default]
    List,
    /// Netpy's tree: the `key` column indented by the `depth` column.
    Tree,
    /// A heatmap: one cell per row of the table, placed by its `row` and `col` columns,
    /// shaded by `value`.
    Grid,
    /// A time series per category: `time`, `category`, `value` columns.
    Series,
}

/// What the numbers of a report are: the selection, and how exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The analysis (`top`, `hhh`, ...).
    pub analysis: String,
    /// The parameters as the user gave them, e.g. `by=srcip n=20`.
    pub params: String,
    pub links: Vec<String>,
    /// `[start, end)`, Unix ms, as resolved (open ends clipped to the data read).
    pub start_ms: u64,
    pub end_ms: u64,
    /// The filter, in canonical form ("" = none).
    pub filter: String,
    pub metric: String,
    /// Store level read.
    pub level: u8,
    /// No record handed to the analysis was sampled.
    pub exact: bool,
    /// Largest sampling threshold among the records.
    pub z_max: u64,
    /// Records the analysis ran on.
    pub records: u64,
    /// Records matching the selection before re-thresholding to the bound.
    pub matched: u64,
    /// The re-thresholding z, if the bound required one.
    pub rethreshold_z: Option<u64>,
    /// Total of the metric over the selection, its standard error (0 when exact).
    pub total: f64,
    pub total_stderr: f64,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<String>,
    /// Whether this report came from the result cache.
    #[serde(default)]
    pub cached: bool,
}

/// A titled table of one analysis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub shape: Shape,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Per row, the filter clause that narrows the selection to the row's key (see
    /// [`crate::drill`]); empty when the section's rows cannot be drilled into, and `None`
    /// for a row that does not narrow (the root of a hierarchy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drill: Vec<Option<String>>,
}

impl Section {
    pub fn new(title: impl Into<String>, shape: Shape, columns: &[&str]) -> Section {
        Section {
            title: title.into(),
            shape,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            drill: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{}", self.title);
        debug_assert!(
            self.drill.is_empty(),
            "{}: rows without drill clauses",
            self.title
        );
        self.rows.push(row);
    }
    /// Adds a row with the filter clause that narrows to its key.
    pub fn push_drill(&mut self, row: Vec<Cell>, clause: Option<String>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{}", self.title);
        debug_assert_eq!(self.drill.len(), self.rows.len(), "{}", self.title);
        self.rows.push(row);
        self.drill.push(clause);
    }
    /// The clause of row `i`, if the section can be drilled into.
    pub fn drill_clause(&self, i: usize) -> Option<&str> {
        self.drill.get(i).and_then(|c| c.as_deref())
    }
    /// The index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    /// Rows as JSON objects keyed by column name.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut m = serde_json::Map::new();
                for (c, v) in self.columns.iter().zip(r) {
                    m.insert(c.clone(), v.json());
                }
                if let Some(Some(d)) = self.drill.get(i) {
                    m.insert("drill".into(), serde_json::Value::String(d.clone()));
                }
                serde_json::Value::Object(m)
            })
            .collect()
    }
}

/// An analysis result: what it is about, and one or more tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub meta: Meta,
    pub sections: Vec<Section>,
}

impl Report {
    /// The header line printed above a human rendering.
    pub fn header(&self) -> String {
        let m = &self.meta;
        let links = if m.links.is_empty() {
            "no links".to_string()
        } else {
            m.links.join(",")
        };
        let range = format!(
            "{} .. {}",
            flowdrill_model::time::format_ms(m.start_ms),
            flowdrill_model::time::format_ms(m.end_ms)
        );
        let filter = if m.filter.is_empty() {
            String::new()
        } else {
            format!(", filter '{}'", m.filter)
        };
        let how = if m.exact {
            format!("exact ({} records, level {})", m.records, m.level)
        } else {
            let mut s = format!(
                "estimated at z <= {} ({} records, level {}",
                m.z_max, m.records, m.level
            );
            if let Some(z) = m.rethreshold_z {
                s.push_str(&format!(
                    ", re-sampled at z {z} from {} matching",
                    m.matched
                ));
            }
            s.push(')');
            s
        };
        format!(
            "# {} {} | {links} | {range} UTC{filter} | {} | {how}",
            m.analysis, m.params, m.metric
        )
    }
}
