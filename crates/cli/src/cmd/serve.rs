//! `flowdrill serve`: the daemon. The HTTP side lives in `flowdrill-server`; this module gives
//! it the analyses, parsed by the CLI's own argument definitions: a request
//! `/api/v1/top?by=dstport&time=-1h` runs exactly `flowdrill top --by=dstport --time=-1h`, so
//! the CLI, the console (`--remote`) and the daemon take the same parameters by construction.

use crate::args::{Cli, Command, Format, Global, ServeArgs};
use crate::{CliError, CliResult, units};
use anyhow::{Context, anyhow};
use clap::{CommandFactory, Parser};
use flowdrill_query::Engine;
use flowdrill_query::report::Report;
use flowdrill_server::{Analyses, ApiError, Config, Limits, Server};
use std::net::SocketAddr;
use std::sync::Arc;

/// The analyses the daemon serves.
const NAMES: [&str; 7] = ["top", "hhh", "hhh2", "series", "dist", "compare", "scans"];

/// Flags that exist in the CLI but not in the daemon: global flags (the daemon has one store
/// and answers JSON), flags that name a file (no request may read a file), and the engine
/// (the daemon's own configuration: `serve --engine`, `--spark-master`).
const NOT_SERVED: [&str; 7] = [
    "store",
    "format",
    "quiet",
    "prefix-map",
    "help",
    "engine",
    "spark-master",
];

/// Category sets built in (any other `categories` would be a file path).
const BUILTIN_SETS: [&str; 6] = [
    "internet2",
    "apps",
    "brownlee",
    "classes",
    "proto",
    "protocols",
];

/// [`Analyses`] over the CLI's parser.
#[derive(Debug, Default)]
pub struct CliAnalyses {
    /// The daemon's own prefix map (`serve --prefix-map`), for hhh and hhh2.
    prefix_map: Option<std::path::PathBuf>,
    /// The daemon's engine flags (`serve --engine`, `--spark-master`), added to every request.
    engine_flags: Vec<String>,
}

impl CliAnalyses {
    fn flags(name: &str) -> Vec<(String, bool)> {
        let cmd = Cli::command();
        let Some(sub) = cmd.find_subcommand(name) else {
            return Vec::new();
        };
        sub.get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?;
                if NOT_SERVED.contains(&long) {
                    return None;
                }
                Some((long.to_string(), !a.get_action().takes_values()))
            })
            .collect()
    }
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

impl Analyses for CliAnalyses {
    fn names(&self) -> Vec<&'static str> {
        NAMES.to_vec()
    }

    fn params(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = Self::flags(name).into_iter().map(|(f, _)| f).collect();
        if name == "series" {
            v.push("rules".into());
        }
        v
    }

    fn run(
        &self,
        engine: &Engine,
        name: &str,
        params: &[(String, String)],
        limits: &Limits,
    ) -> Result<Report, ApiError> {
        let flags = Self::flags(name);
        let mut argv = vec!["flowdrill".to_string(), name.to_string()];
        let (mut acl, mut rules) = (None, None);
        for (k, v) in params {
            match k.as_str() {
                "acl" => acl = Some(v.clone()),
                "rules" => rules = Some(v.clone()),
                "categories" if !BUILTIN_SETS.contains(&v.as_str()) => {
                    return Err(bad(format!(
                        "categories '{v}': use {}, or send your rules' text as 'rules'",
                        BUILTIN_SETS.join(", ")
                    )));
                }
                _ => match flags.iter().find(|(f, _)| f == k) {
                    Some((_, true)) => match v.as_str() {
                        "" | "true" | "1" | "yes" => argv.push(format!("--{k}")),
                        "false" | "0" | "no" => {}
                        _ => return Err(bad(format!("'{k}' is true or false, not '{v}'"))),
                    },
                    Some((_, false)) => argv.push(format!("--{k}={v}")),
                    None => return Err(bad(format!("unknown parameter '{k}' for {name}"))),
                },
            }
        }
        argv.extend(self.engine_flags.iter().cloned());
        let mut cli = Cli::try_parse_from(&argv).map_err(|e| {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad parameters").to_string();
            bad(first.trim_start_matches("error: ").replace("--", ""))
        })?;
        let sel = match &mut cli.command {
            Command::Top(a) => {
                check_rows("top", a.n, limits)?;
                &mut a.sel
            }
            Command::Compare(a) => {
                check_rows("top", a.n, limits)?;
                &mut a.sel
            }
            Command::Scans(a) => {
                check_rows("top", a.n, limits)?;
                &mut a.sel
            }
            Command::Series(a) => {
                if let Some(r) = rules.take() {
                    a.categories = "rules".into();
                    a.rules_text = Some(r);
                }
                &mut a.sel
            }
            Command::Hhh(a) => {
                a.h.prefix_map = self.prefix_map.clone();
                &mut a.sel
            }
            Command::Hhh2(a) => {
                a.h.prefix_map = self.prefix_map.clone();
                &mut a.sel
            }
            Command::Dist(a) => &mut a.sel,
            _ => return Err(bad(format!("{name} is not an analysis"))),
        };
        sel.acl_text = acl;
        if let Some(m) = &sel.max_records {
            let n = units::parse_count(m).map_err(|e| bad(format!("max-records: {e}")))?;
            if n > limits.max_records {
                return Err(bad(format!(
                    "max-records {m} is above this daemon's limit of {}",
                    limits.max_records
                )));
            }
        }
        let g = Global {
            store: None,
            format: Format::Json,
            quiet: true,
        };
        match super::analyze::report(&g, engine, &cli.command) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(ApiError {
                status: if e.code == 2 { 400 } else { 500 },
                message: format!("{:#}", e.error),
                detail: None,
            }),
            None => Err(bad(format!("{name} is not an analysis"))),
        }
    }
}

fn check_rows(flag: &str, n: usize, limits: &Limits) -> Result<(), ApiError> {
    if n == 0 || n > limits.max_rows {
        return Err(bad(format!(
            "{flag} {n}: give 1 to {} (this daemon's --max-rows)",
            limits.max_rows
        )));
    }
    Ok(())
}

/// Parses ADDR:PORT (also `localhost:PORT`).
pub fn listen_addr(s: &str) -> Result<SocketAddr, CliError> {
    let s2 = s.replace("localhost:", "127.0.0.1:");
    s2.parse()
        .map_err(|_| CliError::usage(anyhow!("--listen {s}: give ADDR:PORT, e.g. 127.0.0.1:8080")))
}

/// Binds the daemon on an open engine (also used by `demo`).
pub fn bind(a: &ServeArgs, engine: Engine, quiet: bool) -> Result<Server, CliError> {
    let listen = listen_addr(&a.listen)?;
    let mut token = a.token.clone();
    if token.is_none() && !listen.ip().is_loopback() {
        let t = flowdrill_server::generate_token().context("generating an access token")?;
        // Printed on stderr so a script reading the address from stdout is not confused.
        eprintln!("flowdrill serve: access token (send as 'Authorization: Bearer ...'): {t}");
        token = Some(t);
    }
    let timeout = units::parse_duration_ms(&a.timeout).map_err(CliError::usage)?;
    let mut limits = Limits {
        timeout: std::time::Duration::from_millis(timeout.max(1)),
        max_rows: a.max_rows.max(1),
        ..Limits::default()
    };
    if let Some(n) = a.slots {
        limits.slots = n.max(1);
    }
    let config = Config {
        listen,
        token,
        allowed_hosts: a.allow_host.clone(),
        limits,
    };
    if let Some(p) = &a.prefix_map {
        // Checked now, so that a bad map is a start-up error rather than every request's.
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading the prefix map {}", p.display()))?;
        flowdrill_query::run::parse_prefix_map(&text).map_err(CliError::usage)?;
    }
    let mut engine_flags = vec![format!(
        "--engine={}",
        clap::ValueEnum::to_possible_value(&a.engine)
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "embedded".into())
    )];
    if let Some(m) = &a.spark_master {
        engine_flags.push(format!("--spark-master={m}"));
    }
    let analyses = CliAnalyses {
        prefix_map: a.prefix_map.clone(),
        engine_flags,
    };
    let server = Server::bind(config, engine, Arc::new(analyses)).map_err(|e| match e {
        flowdrill_server::ServeError::Bind { .. } => CliError::from(e),
        other => CliError::usage(other),
    })?;
    if !quiet && !listen.ip().is_loopback() {
        eprintln!(
            "flowdrill serve: warning: listening on {} (not loopback): put a TLS proxy in front of it; the token travels in clear otherwise",
            server.local_addr()
        );
    }
    Ok(server)
}

pub fn run(g: &Global, a: &ServeArgs) -> CliResult {
    let engine = super::analyze::open_engine(g, super::analyze::CACHE_BYTES)?;
    let server = bind(a, engine, g.quiet)?;
    let url = format!("http://{}", server.local_addr());
    if let Some(p) = &a.address_file {
        std::fs::write(p, format!("{url}\n"))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!("flowdrill serve: the web UI and the API (/api/v1/) at {url}/");
    use std::io::Write;
    std::io::stdout().flush()?;
    server.run();
    Ok(())
}
