//! Tab completion in the console: commands, flags of the command being typed, fields, hierarchy
//! dimensions, metrics, links of the store, and the keys of the last result after `drill`.

use crate::args::Cli;
use clap::CommandFactory;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use std::cell::RefCell;
use std::rc::Rc;

/// What completion knows beyond the grammar: it changes as the session goes.
#[derive(Debug, Default)]
pub struct Data {
    pub links: Vec<String>,
    /// Keys and row numbers of the last result.
    pub keys: Vec<String>,
}

/// The console's own commands (the CLI's subcommands are added from clap).
pub const CONSOLE_COMMANDS: &[&str] = &[
    "help",
    "show",
    "set",
    "unset",
    "drill",
    "back",
    "forward",
    "history",
    "time",
    "filter",
    "link",
    "metric",
    "threshold",
    "format",
    "quit",
    "exit",
];

/// Names `set` and `unset` take.
pub const SETTINGS: &[&str] = &[
    "time",
    "filter",
    "acl",
    "link",
    "metric",
    "threshold",
    "max-records",
    "exact",
    "max-error",
    "cache",
    "format",
    "engine",
    "spark-master",
];

const KEYS: &[&str] = &[
    "srcip",
    "dstip",
    "srcport",
    "dstport",
    "proto",
    "srcas",
    "dstas",
    "inif",
    "outif",
    "exporter",
    "nexthop",
    "tos",
    "flags",
    "srcip/8",
    "srcip/16",
    "srcip/24",
    "dstip/8",
    "dstip/16",
    "dstip/24",
    "srcip6/48",
    "dstip6/48",
];
const DIMS: &[&str] = &["src", "dst", "app", "app-dst", "src-map", "dst-map"];
const METRICS: &[&str] = &["bytes", "packets", "flows"];
const FORMATS: &[&str] = &["table", "csv", "json", "ndjson"];
const CATEGORIES: &[&str] = &["internet2", "brownlee", "proto"];
const TIMES: &[&str] = &["all", "-5m", "-15m", "-1h", "-6h", "-1d", "-7d"];

/// The candidates for the word under the cursor: where it starts, and the completions.
pub fn candidates(line: &str, pos: usize, data: &Data) -> (usize, Vec<String>) {
    let head = &line[..pos];
    let start = head.rfind(|c: char| c.is_whitespace()).map_or(0, |i| i + 1);
    let word = &head[start..];
    let before: Vec<&str> = head[..start].split_whitespace().collect();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let pool: Vec<String> = match (before.first(), before.last()) {
        (None, _) => {
            let mut v = owned(CONSOLE_COMMANDS);
            v.extend(
                Cli::command()
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .filter(|n| n != "console" && n != "completions"),
            );
            v
        }
        (Some(&"drill"), _) => data.keys.clone(),
        (Some(&("set" | "unset")), Some(&("set" | "unset"))) => owned(SETTINGS),
        (_, Some(&("--by" | "-b"))) => owned(KEYS),
        (_, Some(&("--dim" | "-d" | "--rows" | "--cols"))) => owned(DIMS),
        (_, Some(&("--metric" | "-m" | "metric"))) => owned(METRICS),
        (_, Some(&("--format" | "format"))) => owned(FORMATS),
        (_, Some(&("--engine" | "engine"))) => owned(&["embedded", "spark"]),
        (_, Some(&("--categories" | "-c"))) => owned(CATEGORIES),
        (_, Some(&("--time" | "-t" | "time"))) => owned(TIMES),
        (_, Some(&("--link" | "-l" | "link" | "--before-link"))) => data.links.clone(),
        (Some(cmd), _) if word.starts_with('-') => flags(cmd),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = pool.into_iter().filter(|c| c.starts_with(word)).collect();
    out.sort();
    out.dedup();
    (start, out)
}

/// The long flags of a CLI subcommand, and the global ones.
fn flags(cmd: &str) -> Vec<String> {
    let root = Cli::command();
    let mut v: Vec<String> = root
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    if let Some(sub) = root.find_subcommand(cmd) {
        v.extend(
            sub.get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}"))),
        );
    }
    v
}

/// The rustyline helper: completion from [`candidates`], nothing else.
#[derive(Debug)]
pub struct ConsoleHelper(pub Rc<RefCell<Data>>);

impl Completer for ConsoleHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, c) = candidates(line, pos, &self.0.borrow());
        Ok((
            start,
            c.into_iter()
                .map(|s| Pair {
                    display: s.clone(),
                    replacement: if s.contains(' ') { format!("'{s}'") } else { s },
                })
                .collect(),
        ))
    }
}

impl Hinter for ConsoleHelper {
    type Hint = String;
}
impl Highlighter for ConsoleHelper {}
impl Validator for ConsoleHelper {}
impl Helper for ConsoleHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(line: &str) -> Vec<String> {
        let data = Data {
            links: vec!["default".into(), "uplink".into()],
            keys: vec!["1".into(), "10.0.0.0/8".into()],
        };
        candidates(line, line.len(), &data).1
    }

    #[test]
    fn completes_commands_flags_fields_links_and_keys() {
        assert!(c("hh").contains(&"hhh".to_string()));
        assert!(c("hh").contains(&"hhh2".to_string()));
        assert!(c("dri").contains(&"drill".to_string()));
        assert!(c("top --b").contains(&"--by".to_string()));
        assert!(c("top --b").iter().all(|f| f.starts_with("--b")));
        assert_eq!(c("top --by dstp"), vec!["dstport"]);
        assert_eq!(c("hhh --dim app-"), vec!["app-dst"]);
        assert_eq!(c("link up"), vec!["uplink"]);
        assert_eq!(c("drill 10."), vec!["10.0.0.0/8"]);
        assert_eq!(c("set thr"), vec!["threshold"]);
        assert_eq!(c("metric p"), vec!["packets"]);
        assert_eq!(candidates("top --by dstp", 13, &Data::default()).0, 9);
    }
}
