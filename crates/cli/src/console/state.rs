//! The console's state: the current selection, and the history of selections that `drill`,
//! `back` and `forward` walk.
//!
//! The selection is kept as the CLI's own flags ([`SelectArgs`] and the hierarchy threshold),
//! so a console command line is a CLI command line with the state's flags put in front of the
//! user's: flags the user types win, and they stay in the state for the next command (sticky),
//! as Netpy's console kept its settings.

use crate::args::{Command, EngineArg, MetricArg, SelectArgs};
use clap::ValueEnum;

/// The current selection and threshold.
#[derive(Clone, Debug)]
pub struct State {
    pub sel: SelectArgs,
    /// HHH threshold, percent.
    pub threshold: f64,
}

impl State {
    pub fn new() -> State {
        State {
            sel: SelectArgs {
                link: Vec::new(),
                time: "all".into(),
                filter: None,
                acl: None,
                metric: MetricArg::Bytes,
                max_records: None,
                exact: false,
                max_error: None,
                no_cache: false,
                acl_text: None,
                // The environment's choice, as the CLI's flags take it (`set engine` and
                // `set spark-master` change it).
                engine: std::env::var("FLOWDRILL_ENGINE")
                    .ok()
                    .and_then(|e| parse_engine(&e))
                    .unwrap_or_default(),
                spark_master: std::env::var("FLOWDRILL_SPARK_MASTER")
                    .ok()
                    .filter(|m| !m.is_empty()),
            },
            threshold: 5.0,
        }
    }

    /// Whether two states select the same thing (the history records changes only).
    pub fn same(&self, o: &State) -> bool {
        let (a, b) = (&self.sel, &o.sel);
        a.link == b.link
            && a.time == b.time
            && a.filter == b.filter
            && a.acl == b.acl
            && a.metric == b.metric
            && a.max_records == b.max_records
            && a.exact == b.exact
            && a.max_error == b.max_error
            && a.no_cache == b.no_cache
            && a.engine == b.engine
            && a.spark_master == b.spark_master
            && self.threshold == o.threshold
    }

    /// The selection as `name value` lines for `show`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let s = &self.sel;
        let bound = if s.exact {
            "exact (every stored record)".to_string()
        } else if let Some(e) = s.max_error {
            format!("relative error <= {e}")
        } else {
            format!("{} records", s.max_records.as_deref().unwrap_or("100k"))
        };
        vec![
            (
                "links",
                if s.link.is_empty() {
                    "all".into()
                } else {
                    s.link.join(",")
                },
            ),
            ("time", s.time.clone()),
            (
                "filter",
                s.filter.clone().unwrap_or_else(|| "(none)".into()),
            ),
            (
                "acl",
                s.acl
                    .as_ref()
                    .map_or_else(|| "(none)".into(), |p| p.display().to_string()),
            ),
            ("metric", metric_name(s.metric).into()),
            ("threshold", format!("{}%", self.threshold)),
            ("bound", bound),
            (
                "engine",
                match s.engine {
                    EngineArg::Embedded => "embedded".into(),
                    EngineArg::Spark => format!(
                        "spark ({})",
                        s.spark_master.as_deref().unwrap_or("local[*]")
                    ),
                },
            ),
        ]
    }

    /// The state's flags for `cmd`, leaving out those the user's `words` give.
    pub fn flags_for(&self, cmd: &str, words: &[String]) -> Vec<String> {
        let gives = |names: &[&str]| {
            words.iter().any(|w| {
                names.iter().any(|n| {
                    w == n
                        || (n.starts_with("--") && w.starts_with(&format!("{n}=")))
                        || (n.len() == 2 && !n.starts_with("--") && w.starts_with(n))
                })
            })
        };
        let s = &self.sel;
        let mut f: Vec<String> = Vec::new();
        let mut add = |names: &[&str], v: Option<String>| {
            if !gives(names) {
                f.push(names[0].to_string());
                if let Some(v) = v {
                    f.push(v);
                }
            }
        };
        if !s.link.is_empty() {
            add(&["--link", "-l"], Some(s.link.join(",")));
        }
        add(&["--time", "-t"], Some(s.time.clone()));
        if let Some(x) = &s.filter {
            add(&["--filter", "-f"], Some(x.clone()));
        }
        if let Some(x) = &s.acl {
            add(&["--acl"], Some(x.display().to_string()));
        }
        add(&["--metric", "-m"], Some(metric_name(s.metric).into()));
        if let Some(x) = &s.max_records {
            add(&["--max-records"], Some(x.clone()));
        }
        // The state's engine (its start is $FLOWDRILL_ENGINE's), so that `set engine embedded`
        // wins over the environment too.
        add(&["--engine"], Some(engine_name(s.engine).into()));
        if let Some(m) = &s.spark_master {
            add(&["--spark-master"], Some(m.clone()));
        }
        // --exact and --max-error exclude each other: the user's choice replaces both.
        if !gives(&["--exact", "--max-error"]) {
            if s.exact {
                f.push("--exact".into());
            }
            if let Some(e) = s.max_error {
                f.extend(["--max-error".into(), e.to_string()]);
            }
        }
        if s.no_cache && !gives(&["--no-cache"]) {
            f.push("--no-cache".into());
        }
        if matches!(cmd, "hhh" | "hhh2") && !gives(&["--threshold", "-T"]) {
            f.extend(["--threshold".into(), self.threshold.to_string()]);
        }
        f
    }
}

pub fn metric_name(m: MetricArg) -> &'static str {
    match m {
        MetricArg::Bytes => "bytes",
        MetricArg::Packets => "packets",
        MetricArg::Flows => "flows",
    }
}

pub fn engine_name(e: EngineArg) -> &'static str {
    match e {
        EngineArg::Embedded => "embedded",
        EngineArg::Spark => "spark",
    }
}

pub fn parse_engine(s: &str) -> Option<EngineArg> {
    EngineArg::from_str(s.trim(), true).ok()
}

pub fn parse_metric(s: &str) -> Option<MetricArg> {
    MetricArg::from_str(s, true).ok()
}

/// The commands that take a selection, and whether they take a threshold.
pub fn selection_of(cmd: &Command) -> Option<(&SelectArgs, Option<f64>)> {
    Some(match cmd {
        Command::Top(a) => (&a.sel, None),
        Command::Hhh(a) => (&a.sel, Some(a.h.threshold)),
        Command::Hhh2(a) => (&a.sel, Some(a.h.threshold)),
        Command::Series(a) => (&a.sel, None),
        Command::Dist(a) => (&a.sel, None),
        Command::Compare(a) => (&a.sel, None),
        Command::Scans(a) => (&a.sel, None),
        Command::Export(a) => (&a.sel, None),
        _ => return None,
    })
}

/// Puts `state`'s selection into `cmd` (to re-run a command of the history in its state).
pub fn with_state(cmd: &Command, state: &State) -> Command {
    let mut c = cmd.clone();
    let sel = match &mut c {
        Command::Top(a) => &mut a.sel,
        Command::Hhh(a) => {
            a.h.threshold = state.threshold;
            &mut a.sel
        }
        Command::Hhh2(a) => {
            a.h.threshold = state.threshold;
            &mut a.sel
        }
        Command::Series(a) => &mut a.sel,
        Command::Dist(a) => &mut a.sel,
        Command::Compare(a) => &mut a.sel,
        Command::Scans(a) => &mut a.sel,
        Command::Export(a) => &mut a.sel,
        _ => return c,
    };
    *sel = state.sel.clone();
    c
}

/// One step of the history: a selection and the analysis last run in it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub state: State,
    pub cmd: Option<Command>,
}

/// Selections in the order they were made; `back` and `forward` move in it, and a new
/// selection made after `back` drops the steps ahead (as a browser does).
#[derive(Debug)]
pub struct History {
    entries: Vec<Entry>,
    pos: usize,
}

impl History {
    pub fn new(state: State) -> History {
        History {
            entries: vec![Entry { state, cmd: None }],
            pos: 0,
        }
    }
    pub fn current(&self) -> &Entry {
        &self.entries[self.pos]
    }
    pub fn current_mut(&mut self) -> &mut Entry {
        &mut self.entries[self.pos]
    }
    /// Makes `state` current: a new step if it differs from the current one.
    pub fn select(&mut self, state: State, cmd: Option<Command>) {
        if self.current().state.same(&state) {
            let e = self.current_mut();
            e.state = state;
            if cmd.is_some() {
                e.cmd = cmd;
            }
            return;
        }
        self.entries.truncate(self.pos + 1);
        self.entries.push(Entry { state, cmd });
        self.pos += 1;
    }
    /// Moves by `steps` (negative = back); the number of steps actually moved.
    pub fn walk(&mut self, steps: isize) -> isize {
        let to = (self.pos as isize + steps).clamp(0, self.entries.len() as isize - 1);
        let moved = to - self.pos as isize;
        self.pos = to as usize;
        moved
    }
    pub fn entries(&self) -> impl Iterator<Item = (usize, &Entry, bool)> {
        self.entries
            .iter()
            .enumerate()
            .map(move |(i, e)| (i + 1, e, i == self.pos))
    }
    pub fn position(&self) -> (usize, usize) {
        (self.pos + 1, self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_users_flags_win_over_the_state() {
        let mut s = State::new();
        s.sel.time = "-1h".into();
        s.sel.filter = Some("proto tcp".into());
        s.sel.exact = true;
        let f = s.flags_for("top", &words("--by dstport -t -2h"));
        assert!(!f.contains(&"--time".to_string()), "{f:?}");
        assert!(
            f.windows(2)
                .any(|w| w[0] == "--filter" && w[1] == "proto tcp")
        );
        assert!(f.contains(&"--exact".to_string()));
        let f = s.flags_for("top", &words("--max-error 0.01"));
        assert!(!f.contains(&"--exact".to_string()), "{f:?}");
        assert!(!s.flags_for("top", &[]).contains(&"--threshold".to_string()));
        assert!(s.flags_for("hhh", &[]).contains(&"--threshold".to_string()));
        let f = s.flags_for("hhh", &words("-T 2"));
        assert!(!f.contains(&"--threshold".to_string()));
    }

    #[test]
    fn the_engine_is_carried_and_the_users_flag_wins() {
        let mut s = State::new();
        s.sel.engine = EngineArg::Embedded;
        s.sel.spark_master = None;
        let f = s.flags_for("top", &[]);
        assert!(
            f.windows(2)
                .any(|w| w[0] == "--engine" && w[1] == "embedded"),
            "{f:?}"
        );
        assert!(!f.contains(&"--spark-master".to_string()), "{f:?}");
        s.sel.engine = EngineArg::Spark;
        s.sel.spark_master = Some("sc://127.0.0.1:15002".into());
        let f = s.flags_for("hhh", &[]);
        assert!(
            f.windows(2).any(|w| w[0] == "--engine" && w[1] == "spark"),
            "{f:?}"
        );
        assert!(
            f.windows(2)
                .any(|w| w[0] == "--spark-master" && w[1] == "sc://127.0.0.1:15002"),
            "{f:?}"
        );
        let f = s.flags_for("top", &words("--engine=embedded --spark-master local[1]"));
        assert!(
            !f.iter()
                .any(|w| w.starts_with("--engine") || w == "--spark-master"),
            "{f:?}"
        );
    }

    #[test]
    fn history_walks_back_and_forward_and_forgets_the_future_on_a_new_step() {
        let mut h = History::new(State::new());
        for t in ["-1h", "-2h", "-3h"] {
            let mut s = State::new();
            s.sel.time = t.into();
            h.select(s, None);
        }
        assert_eq!(h.position(), (4, 4));
        assert_eq!(h.walk(-2), -2);
        assert_eq!(h.current().state.sel.time, "-1h");
        assert_eq!(h.walk(-5), -1);
        assert_eq!(h.walk(1), 1);
        let mut s = State::new();
        s.sel.time = "-9h".into();
        h.select(s, None);
        assert_eq!(h.position(), (3, 3));
        assert_eq!(h.walk(1), 0);
        // The same selection again is not a new step.
        let mut s = State::new();
        s.sel.time = "-9h".into();
        h.select(s, None);
        assert_eq!(h.position(), (3, 3));
    }
}
