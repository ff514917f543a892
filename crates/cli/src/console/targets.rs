//! What `drill` can narrow to: the rows of the last result that carry a drill clause, numbered
//! as the console shows them.

use flowdrill_query::report::{Cell, Report, Shape};

/// A row of the last result that `drill` can narrow to.
#[derive(Clone, Debug)]
pub struct Target {
    /// The number the console shows (from 1).
    pub number: usize,
    /// The key as printed (`10.0.0.0/8`, `tcp dport 443`; `ROW × COL` for a heatmap cell).
    pub key: String,
    /// For a heatmap cell, its row and column keys.
    pub cell: Option<(String, String)>,
    pub clause: String,
}

/// The key column of a section: `key`, else `host`.
fn key_col(columns: &[String]) -> Option<usize> {
    ["key", "host"]
        .iter()
        .find_map(|k| columns.iter().position(|c| c == k))
}

/// Numbers the drillable rows of `r` and returns the report to print: sections other than
/// heatmaps get a `#` column with the numbers `drill N` takes (a `rank` column serves when
/// it is the only numbered section, as in `top`).
pub fn number(r: &Report) -> (Report, Vec<Target>) {
    let mut out = r.clone();
    let mut targets = Vec::new();
    let listed: Vec<usize> = r
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.drill.is_empty() && s.shape != Shape::Grid)
        .map(|(i, _)| i)
        .collect();
    let rank_serves = listed.len() == 1 && r.sections[listed[0]].col("rank").is_some();
    for &si in &listed {
        let s = &r.sections[si];
        let Some(kc) = key_col(&s.columns) else {
            continue;
        };
        let mut numbers = Vec::new();
        for (i, row) in s.rows.iter().enumerate() {
            let n = match s.drill_clause(i) {
                Some(c) => {
                    let n = targets.len() + 1;
                    targets.push(Target {
                        number: n,
                        key: row[kc].text(),
                        cell: None,
                        clause: c.to_string(),
                    });
                    Cell::from(n)
                }
                None => Cell::Null,
            };
            numbers.push(n);
        }
        if !rank_serves {
            let o = &mut out.sections[si];
            o.columns.insert(0, "#".into());
            for (row, n) in o.rows.iter_mut().zip(numbers) {
                row.insert(0, n);
            }
        }
    }
    // Heatmap cells are named by their two keys (`drill ROW COL`), not numbered.
    for s in r.sections.iter().filter(|s| s.shape == Shape::Grid) {
        let (Some(rc), Some(cc)) = (s.col("row"), s.col("col")) else {
            continue;
        };
        for (i, row) in s.rows.iter().enumerate() {
            if let Some(c) = s.drill_clause(i) {
                let (a, b) = (row[rc].text(), row[cc].text());
                targets.push(Target {
                    number: 0,
                    key: format!("{a} × {b}"),
                    cell: Some((a, b)),
                    clause: c.to_string(),
                });
            }
        }
    }
    (out, targets)
}

/// Finds the target `words` name: a number, a key, or a heatmap cell's two keys.
pub fn find<'a>(targets: &'a [Target], words: &[String]) -> Result<&'a Target, String> {
    match words {
        [] => Err("drill what? give a row number or a key of the last result".into()),
        [one] => {
            if let Ok(n) = one.parse::<usize>()
                && let Some(t) = targets.iter().find(|t| t.number == n && n > 0)
            {
                return Ok(t);
            }
            let by_key: Vec<&Target> = targets
                .iter()
                .filter(|t| t.cell.is_none() && t.key.trim() == one)
                .collect();
            match by_key.as_slice() {
                [t, ..] => Ok(t),
                [] if one.parse::<usize>().is_ok() => Err(format!(
                    "no row {one} in the last result (rows 1..{})",
                    targets.iter().filter(|t| t.number > 0).count()
                )),
                [] => Err(format!("no key '{one}' in the last result")),
            }
        }
        [a, b] => targets
            .iter()
            .find(|t| t.cell.as_ref().is_some_and(|(x, y)| x == a && y == b))
            .ok_or_else(|| format!("no heatmap cell '{a}' × '{b}' in the last result")),
        _ => Err("drill takes a row number, a key, or a heatmap cell's row and column keys (quote keys with spaces)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_query::report::Section;

    fn report() -> Report {
        let mut tree = Section::new("t", Shape::Tree, &["key", "value", "depth"]);
        tree.push_drill(vec!["any".into(), 10u64.into(), 0u64.into()], None);
        tree.push_drill(
            vec!["10.0.0.0/8".into(), 7u64.into(), 1u64.into()],
            Some("src net 10.0.0.0/8".into()),
        );
        let mut grid = Section::new("g", Shape::Grid, &["row", "col", "value"]);
        grid.push_drill(
            vec!["10.0.0.0/8".into(), "tcp".into(), 3u64.into()],
            Some("(src net 10.0.0.0/8) and (proto tcp)".into()),
        );
        Report {
            sections: vec![tree, grid],
            ..Report::default()
        }
    }

    #[test]
    fn rows_are_numbered_and_found_by_number_key_or_cell() {
        let (shown, t) = number(&report());
        assert_eq!(shown.sections[0].columns[0], "#");
        assert_eq!(shown.sections[0].rows[0][0], Cell::Null);
        assert_eq!(shown.sections[0].rows[1][0], Cell::Int(1));
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(find(&t, &w(&["1"])).unwrap().clause, "src net 10.0.0.0/8");
        assert_eq!(
            find(&t, &w(&["10.0.0.0/8"])).unwrap().clause,
            "src net 10.0.0.0/8"
        );
        assert_eq!(
            find(&t, &w(&["10.0.0.0/8", "tcp"])).unwrap().clause,
            "(src net 10.0.0.0/8) and (proto tcp)"
        );
        assert!(find(&t, &w(&["2"])).unwrap_err().contains("no row 2"));
        assert!(find(&t, &w(&["192.0.2.0/24"])).is_err());
    }
}
