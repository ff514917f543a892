//! `flowdrill console`: Netpy's console — explore a store interactively or from a script.
//!
//! A line is either a console command (`show`, `set`, `drill`, `back`, `forward`, `history`,
//! ...) or any CLI command (`top --by dstport`, `hhh -d app`, `import FILE`, `expire ...`).
//! CLI commands get the current selection's flags in front of the user's (see [`state`]), and
//! the selection flags they carry stay for the next command. The last result's rows are
//! numbered; `drill N` narrows the filter to row N's key and runs the analysis again.
//!
//! ```text
//!   line ──► console command ──► state / history ──┐
//!        └─► CLI command + state flags ──► Backend (local engine | remote daemon) ──► Report
//!                                                                    numbered rows ◄──┘
//! ```

mod complete;
mod remote;
mod state;
mod targets;

use crate::args::{Cli, Command, ConsoleArgs, EngineArg, Format, Global};
use crate::cmd::analyze;
use crate::{CliError, CliResult, output};
use anyhow::anyhow;
use clap::{CommandFactory, FromArgMatches, ValueEnum};
use flowdrill_query::Engine;
use flowdrill_query::report::Report;
use state::{History, State};
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use targets::Target;

/// Where analyses run: the store opened here, or a daemon.
enum Backend {
    /// The store of `--store`; `None` until it exists (the console may create it by
    /// importing).
    Local(Option<Box<Engine>>),
    Remote(remote::Remote),
}

struct Console {
    g: Global,
    backend: Backend,
    hist: History,
    targets: Vec<Target>,
    completion: Rc<RefCell<complete::Data>>,
}

/// What a line asks the loop to do next.
enum Next {
    Go,
    Quit,
}

fn usage(msg: impl std::fmt::Display) -> CliError {
    CliError::usage(anyhow!("{msg}"))
}

pub fn run(g: &Global, a: &ConsoleArgs) -> CliResult {
    let mut g = g.clone();
    let backend = match &a.remote {
        Some(url) => Backend::Remote(remote::Remote::new(url, a.token.clone())?),
        None => {
            let dir = crate::cmd::store_dir(&g, "flowdrill-store");
            g.store = Some(dir.clone());
            // A store that does not exist yet is fine: `import` creates it.
            let engine = match analyze::open_engine(&g, analyze::CACHE_BYTES) {
                Ok(e) => Some(Box::new(e)),
                Err(e) if !dir.exists() => {
                    if !g.quiet {
                        eprintln!(
                            "flowdrill: note: no store at {} yet; `import FILES` creates it",
                            dir.display()
                        );
                    }
                    drop(e);
                    None
                }
                Err(e) => return Err(e),
            };
            Backend::Local(engine)
        }
    };
    let mut c = Console {
        g,
        backend,
        hist: History::new(State::new()),
        targets: Vec::new(),
        completion: Rc::default(),
    };
    c.refresh_links();
    match &a.file {
        Some(p) if p.as_os_str() == "-" => c.script(std::io::stdin().lock(), a),
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| CliError::from(anyhow!("reading {}: {e}", p.display())))?;
            c.script(std::io::BufReader::new(f), a)
        }
        None if !std::io::stdin().is_terminal() => c.script(std::io::stdin().lock(), a),
        None => c.interactive(a),
    }
}

impl Console {
    /// Runs the lines of a script: stops at the first error unless `--keep-going`, which
    /// goes on and exits with the last error's code.
    fn script(&mut self, input: impl BufRead, a: &ConsoleArgs) -> CliResult {
        let mut last_err = None;
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|e| CliError::from(anyhow!("reading the script: {e}")))?;
            if a.echo && !line.trim().is_empty() {
                println!("flowdrill> {line}");
            }
            match self.line(&line) {
                Ok(Next::Go) => {}
                Ok(Next::Quit) => break,
                Err(e) => {
                    let e = CliError {
                        code: e.code,
                        error: e.error.context(format!("line {}: {}", i + 1, line.trim())),
                    };
                    if !a.keep_going {
                        return Err(e);
                    }
                    eprintln!("flowdrill: error: {:#}", e.error);
                    last_err = Some(e);
                }
            }
        }
        last_err.map_or(Ok(()), Err)
    }

    fn interactive(&mut self, a: &ConsoleArgs) -> CliResult {
        use rustyline::error::ReadlineError;
        let config = rustyline::Config::builder()
            .auto_add_history(true)
            .max_history_size(5000)
            .map_err(|e| CliError::from(anyhow!("line editor: {e}")))?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl: rustyline::Editor<complete::ConsoleHelper, rustyline::history::FileHistory> =
            rustyline::Editor::with_config(config)
                .map_err(|e| CliError::from(anyhow!("line editor: {e}")))?;
        rl.set_helper(Some(complete::ConsoleHelper(self.completion.clone())));
        let hist_file = history_file(a);
        if let Some(h) = &hist_file {
            // A missing history file is the first run, not an error.
            let _ = rl.load_history(h);
        }
        if !self.g.quiet {
            println!(
                "flowdrill console — {}. `help` lists the commands; Tab completes; Ctrl-D quits.",
                self.where_()
            );
        }
        loop {
            match rl.readline("flowdrill> ") {
                Ok(line) => match self.line(&line) {
                    Ok(Next::Go) => {}
                    Ok(Next::Quit) => break,
                    Err(e) => eprintln!("flowdrill: error: {:#}", e.error),
                },
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(anyhow!("reading the terminal: {e}").into()),
            }
        }
        if let Some(h) = &hist_file {
            if let Some(d) = h.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            if let Err(e) = rl.save_history(h) {
                eprintln!(
                    "flowdrill: warning: history not saved to {}: {e}",
                    h.display()
                );
            }
        }
        Ok(())
    }

    fn where_(&self) -> String {
        match &self.backend {
            Backend::Local(_) => format!(
                "store {}",
                self.g.store.as_deref().unwrap_or(Path::new("?")).display()
            ),
            Backend::Remote(r) => format!("daemon {}", r.url()),
        }
    }

    fn line(&mut self, line: &str) -> Result<Next, CliError> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(Next::Go);
        }
        let words = shlex::split(line).ok_or_else(|| usage("unbalanced quotes"))?;
        let Some((first, rest)) = words.split_first() else {
            return Ok(Next::Go);
        };
        match first.as_str() {
            "quit" | "exit" => return Ok(Next::Quit),
            "help" | "?" => self.help(),
            "show" => self.show(),
            "history" => self.history(),
            "set" => self.set(rest)?,
            "unset" => self.unset(rest)?,
            "time" | "filter" | "link" | "metric" | "threshold" | "format" | "acl" => {
                if rest.is_empty() {
                    self.show()
                } else {
                    self.set(&words)?
                }
            }
            "drill" => self.drill(rest)?,
            "back" | "forward" => {
                let n: isize = match rest {
                    [] => 1,
                    [n] => n
                        .parse()
                        .map_err(|_| usage(format!("{first} takes a number of steps")))?,
                    _ => return Err(usage(format!("{first} takes at most a number of steps"))),
                };
                self.walk(if first == "back" { -n } else { n })?;
            }
            "console" => return Err(usage("already in the console")),
            _ => self.cli(&words)?,
        }
        Ok(Next::Go)
    }

    fn help(&self) {
        println!(
            "\
Analyses (the CLI's commands and flags; selection flags stay for the next command):
  top --by FIELD [-n N]      hhh [-d src|dst|app|app-dst]    hhh2 --rows D --cols D
  series [-c SET|RULES]      dist    compare [--before-time T]    scans    export -o FILE
Selection:
  show                       the current selection
  time RANGE                 -1h, -7d, 2024-05-01, START..END, all
  filter EXPR                nfdump syntax; `unset filter` clears it
  link NAME[,NAME]           `unset link` = all links
  metric bytes|packets|flows threshold PCT    format table|csv|json|ndjson
  set exact on|off           set max-error REL    set max-records N    set acl FILE
  set engine embedded|spark [MASTER]    set spark-master URL (local[2], sc://host:15002)
Drill-down:
  drill N | drill KEY        narrow the filter to a row of the last result and run it again
  drill ROWKEY COLKEY        a heatmap cell of hhh2
  back [N] | forward [N]     walk the selections; `history` lists them
Store:  import FILES...   expire ...   links   generate ...
quit or Ctrl-D leaves; Tab completes commands, flags, fields, links and keys."
        );
    }

    fn show(&self) {
        let e = self.hist.current();
        for (k, v) in e.state.describe() {
            println!("{k:<10} {v}");
        }
        println!(
            "{:<10} {}",
            "format",
            self.g
                .format
                .to_possible_value()
                .map_or("table".into(), |v| v.get_name().to_string())
        );
        let (pos, len) = self.hist.position();
        println!("{:<10} step {pos} of {len}", "history");
    }

    fn history(&self) {
        for (i, e, current) in self.hist.entries() {
            let mark = if current { ">" } else { " " };
            let what = e.cmd.as_ref().map_or("-".to_string(), command_name);
            let filter = e.state.sel.filter.as_deref().unwrap_or("(no filter)");
            println!(
                "{mark}{i:>3}  {what:<8} time {}  {filter}",
                e.state.sel.time
            );
        }
    }

    /// `set NAME VALUE...`: changes the selection (a new history step).
    fn set(&mut self, words: &[String]) -> Result<(), CliError> {
        let Some((name, value)) = words.split_first() else {
            return Err(usage(format!(
                "set what? one of {}",
                complete::SETTINGS.join(", ")
            )));
        };
        let v = value.join(" ");
        if v.is_empty() {
            return Err(usage(format!("set {name}: give a value")));
        }
        let mut s = self.hist.current().state.clone();
        match name.as_str() {
            "time" => {
                self.check_time(&v)?;
                s.sel.time = v;
            }
            "filter" => {
                self.check_filter(&v)?;
                s.sel.filter = Some(v);
            }
            "acl" => s.sel.acl = Some(PathBuf::from(v)),
            "link" | "links" => {
                s.sel.link = v
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            }
            "metric" => {
                s.sel.metric = state::parse_metric(&v)
                    .ok_or_else(|| usage(format!("metric '{v}': use bytes, packets or flows")))?
            }
            "threshold" => {
                let t: f64 = v
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| usage(format!("threshold '{v}': give a percentage, e.g. 5")))?;
                if !(t > 0.0 && t <= 100.0) {
                    return Err(usage(format!(
                        "threshold {t}: give a percentage above 0 and at most 100"
                    )));
                }
                s.threshold = t;
            }
            "max-records" => {
                crate::units::parse_count(&v).map_err(CliError::usage)?;
                s.sel.max_records = Some(v);
                s.sel.exact = false;
                s.sel.max_error = None;
            }
            "exact" => {
                s.sel.exact = on_off(&v)?;
                if s.sel.exact {
                    s.sel.max_error = None;
                }
            }
            "max-error" => {
                let e: f64 = v
                    .parse()
                    .map_err(|_| usage(format!("max-error '{v}': give e.g. 0.01")))?;
                s.sel.max_error = Some(e);
                s.sel.exact = false;
            }
            "cache" => s.sel.no_cache = !on_off(&v)?,
            "engine" => {
                // `set engine spark [MASTER]`, `set engine embedded`.
                self.check_local("engine")?;
                let (e, master) = match value {
                    [e] => (e, None),
                    [e, m] => (e, Some(m.clone())),
                    _ => {
                        return Err(usage(
                            "set engine embedded|spark [MASTER]: e.g. set engine spark sc://host:15002",
                        ));
                    }
                };
                s.sel.engine = state::parse_engine(e)
                    .ok_or_else(|| usage(format!("engine '{e}': use embedded or spark")))?;
                if master.is_some() {
                    if s.sel.engine != EngineArg::Spark {
                        return Err(usage("a Spark master goes with `set engine spark MASTER`"));
                    }
                    s.sel.spark_master = master;
                }
            }
            "spark-master" => {
                self.check_local("spark-master")?;
                if value.len() != 1 {
                    return Err(usage(
                        "set spark-master URL: local[2], spark://host:7077, yarn or sc://host:15002",
                    ));
                }
                s.sel.spark_master = Some(v);
            }
            "format" => {
                self.g.format = Format::from_str(&v, true)
                    .map_err(|_| usage(format!("format '{v}': use table, csv, json or ndjson")))?;
                return Ok(());
            }
            other => {
                return Err(usage(format!(
                    "unknown setting '{other}': one of {}",
                    complete::SETTINGS.join(", ")
                )));
            }
        }
        self.hist.select(s, None);
        Ok(())
    }

    fn unset(&mut self, words: &[String]) -> Result<(), CliError> {
        let mut s = self.hist.current().state.clone();
        for w in words {
            match w.as_str() {
                "filter" => s.sel.filter = None,
                "acl" => s.sel.acl = None,
                "link" | "links" => s.sel.link.clear(),
                "time" => s.sel.time = "all".into(),
                "max-records" => s.sel.max_records = None,
                "max-error" => s.sel.max_error = None,
                "exact" => s.sel.exact = false,
                "engine" => s.sel.engine = EngineArg::Embedded,
                // Back to $FLOWDRILL_SPARK_MASTER, or local[*].
                "spark-master" => s.sel.spark_master = None,
                other => return Err(usage(format!("cannot unset '{other}'"))),
            }
        }
        self.hist.select(s, None);
        Ok(())
    }

    /// Settings of the local engine: a remote console runs on the daemon's.
    fn check_local(&self, name: &str) -> Result<(), CliError> {
        if let Backend::Remote(r) = &self.backend {
            return Err(usage(format!(
                "set {name}: the daemon at {} chooses its engine (flowdrill serve --engine, --spark-master)",
                r.url()
            )));
        }
        Ok(())
    }

    fn check_filter(&self, f: &str) -> Result<(), CliError> {
        if let Backend::Local(Some(e)) = &self.backend {
            flowdrill_query::parse_filter(f, &e.custom_fields())
                .map_err(|err| usage(format!("bad filter\n{}", err.render(f))))?;
        }
        Ok(())
    }

    fn check_time(&self, t: &str) -> Result<(), CliError> {
        if let Backend::Local(Some(e)) = &self.backend {
            let sel = flowdrill_query::Selection::all();
            let links = e.links(&sel).map_err(analyze::query_err)?;
            flowdrill_query::parse_range(t, e.anchor(&links)).map_err(CliError::usage)?;
        }
        Ok(())
    }

    /// `drill N`, `drill KEY`, `drill ROW COL`: narrows the filter and runs the analysis again.
    fn drill(&mut self, words: &[String]) -> Result<(), CliError> {
        if self.hist.current().cmd.is_none() || self.targets.is_empty() {
            return Err(usage(
                "nothing to drill into: run an analysis with keys first (top, hhh, hhh2, compare, scans)",
            ));
        }
        let t = targets::find(&self.targets, words).map_err(usage)?.clone();
        let mut s = self.hist.current().state.clone();
        let old = s.sel.filter.clone().unwrap_or_default();
        s.sel.filter = Some(flowdrill_query::drill::narrow(&old, &t.clause));
        let cmd = self.hist.current().cmd.clone();
        self.hist.select(s, cmd);
        if !self.g.quiet {
            eprintln!(
                "drill into {}: filter {}",
                t.key.trim(),
                self.hist
                    .current()
                    .state
                    .sel
                    .filter
                    .as_deref()
                    .unwrap_or("")
            );
        }
        self.run_current()
    }

    fn walk(&mut self, steps: isize) -> Result<(), CliError> {
        if self.hist.walk(steps) == 0 {
            let end = if steps < 0 { "first" } else { "last" };
            return Err(usage(format!("already at the {end} selection")));
        }
        if self.hist.current().cmd.is_some() {
            self.run_current()
        } else {
            self.show();
            Ok(())
        }
    }

    /// A CLI command line, with the selection's flags put in.
    fn cli(&mut self, words: &[String]) -> Result<(), CliError> {
        let (name, rest) = words.split_first().expect("a non-empty line");
        let mut argv: Vec<String> = vec!["flowdrill".into(), name.clone()];
        let takes_selection = matches!(
            name.as_str(),
            "top" | "hhh" | "hhh2" | "series" | "dist" | "compare" | "scans" | "export"
        );
        if takes_selection {
            argv.extend(self.hist.current().state.flags_for(name, rest));
        }
        argv.extend(rest.iter().cloned());
        if !rest
            .iter()
            .any(|w| w == "--format" || w.starts_with("--format="))
        {
            argv.push("--format".into());
            argv.push(
                self.g
                    .format
                    .to_possible_value()
                    .map_or("table".into(), |v| v.get_name().to_string()),
            );
        }
        if let Some(s) = &self.g.store
            && !rest
                .iter()
                .any(|w| w == "--store" || w.starts_with("--store="))
        {
            argv.extend(["--store".into(), s.display().to_string()]);
        }
        if self.g.quiet {
            argv.push("--quiet".into());
        }
        let matches = Cli::command()
            .no_binary_name(false)
            .try_get_matches_from(&argv)
            .map_err(|e| usage(e.render().to_string().trim_end()))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| usage(e.to_string()))?;
        if matches!(cli.command, Command::Console(_)) {
            return Err(usage("already in the console"));
        }
        let g = cli.global.clone();
        if let Some((sel, thr)) = state::selection_of(&cli.command)
            && !matches!(cli.command, Command::Export(_))
        {
            let threshold = thr.unwrap_or(self.hist.current().state.threshold);
            let s = State {
                sel: sel.clone(),
                threshold,
            };
            self.hist.select(s, Some(cli.command.clone()));
            return self.run_with(&g);
        }
        if let Backend::Remote(_) = self.backend {
            return Err(usage(format!(
                "'{name}' works on a local store; a remote console runs analyses only"
            )));
        }
        crate::cmd::run(cli)?;
        // The store may have changed (import, expire, links --set): read it again.
        if let Backend::Local(_) = self.backend {
            let dir = self.g.store.clone().unwrap_or_default();
            self.backend = Backend::Local(if dir.exists() {
                Some(Box::new(analyze::open_engine(
                    &self.g,
                    analyze::CACHE_BYTES,
                )?))
            } else {
                None
            });
            self.refresh_links();
        }
        Ok(())
    }

    fn run_current(&mut self) -> Result<(), CliError> {
        let g = self.g.clone();
        self.run_with(&g)
    }

    /// Runs the current step's analysis in its selection and prints it with numbered rows.
    fn run_with(&mut self, g: &Global) -> Result<(), CliError> {
        let e = self.hist.current();
        let cmd = state::with_state(e.cmd.as_ref().expect("a step with a command"), &e.state);
        let spin = output::spinner(g, "reading and analysing");
        let rep = match &mut self.backend {
            Backend::Local(engine) => {
                if engine.is_none() {
                    *engine = Some(Box::new(analyze::open_engine(g, analyze::CACHE_BYTES)?));
                }
                let engine = engine.as_ref().expect("opened above");
                match analyze::report(g, engine, &cmd) {
                    Some(r) => r,
                    None => unreachable!("selection_of admits analyses only"),
                }
            }
            Backend::Remote(r) => r.report(&cmd),
        };
        if let Some(s) = spin {
            s.finish_and_clear();
        }
        let rep: Report = rep?;
        let (shown, targets) = targets::number(&rep);
        let printed = if g.format == Format::Table {
            &shown
        } else {
            &rep
        };
        output::print_report(printed, g)?;
        {
            let mut d = self.completion.borrow_mut();
            d.keys = targets
                .iter()
                .filter(|t| t.cell.is_none())
                .flat_map(|t| [t.number.to_string(), t.key.trim().to_string()])
                .collect();
        }
        self.targets = targets;
        std::io::stdout().flush()?;
        Ok(())
    }

    fn refresh_links(&mut self) {
        let links = match &self.backend {
            Backend::Local(e) => e.as_ref().map(|e| e.store().links()).unwrap_or_default(),
            Backend::Remote(r) => r.links().unwrap_or_default(),
        };
        self.completion.borrow_mut().links = links;
    }
}

fn on_off(v: &str) -> Result<bool, CliError> {
    match v {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(usage(format!("'{v}': say on or off"))),
    }
}

fn command_name(c: &Command) -> String {
    Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .find(|n| {
            matches!(
                (n.as_str(), c),
                ("top", Command::Top(_))
                    | ("hhh", Command::Hhh(_))
                    | ("hhh2", Command::Hhh2(_))
                    | ("series", Command::Series(_))
                    | ("dist", Command::Dist(_))
                    | ("compare", Command::Compare(_))
                    | ("scans", Command::Scans(_))
            )
        })
        .unwrap_or_else(|| "-".into())
}

/// The history file: `--history`/`$FLOWDRILL_HISTORY`, else `$XDG_STATE_HOME/flowdrill/history`,
/// else `~/.local/state/flowdrill/history`.
fn history_file(a: &ConsoleArgs) -> Option<PathBuf> {
    if let Some(h) = &a.history {
        return Some(h.clone());
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("flowdrill").join("history"))
}
