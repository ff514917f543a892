//! One module per subcommand; [`run`] dispatches.

pub mod analyze;
mod collect;
mod demo;
mod expire;
mod export;
mod generate;
mod import;
mod links;
mod report;
pub mod serve;

use crate::CliResult;
use crate::args::{Cli, Command, Global, ScenarioArgs};
use crate::units;
use anyhow::Context;
use std::path::PathBuf;

pub fn run(cli: Cli) -> CliResult {
    let g = &cli.global;
    match &cli.command {
        Command::Demo(a) => demo::run(g, a),
        Command::Generate(a) => generate::run(g, a),
        Command::Import(a) => import::run(g, a),
        Command::Top(_)
        | Command::Hhh(_)
        | Command::Hhh2(_)
        | Command::Series(_)
        | Command::Dist(_)
        | Command::Compare(_)
        | Command::Scans(_) => analyze::run(g, &cli.command),
        Command::Export(a) => export::run(g, a),
        Command::Expire(a) => expire::run(g, a),
        Command::Links(a) => links::run(g, a),
        Command::Console(a) => crate::console::run(g, a),
        Command::Collect(a) => collect::run(g, a),
        Command::Serve(a) => serve::run(g, a),
        Command::Replay(a) => collect::replay(g, a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "flowdrill", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// The store directory: `--store`, else `$FLOWDRILL_STORE` (clap reads both), else `default`.
pub fn store_dir(g: &Global, default: &str) -> PathBuf {
    g.store.clone().unwrap_or_else(|| PathBuf::from(default))
}

/// The generator scenario: the demo scenario with the command line's changes.
pub fn scenario(a: &ScenarioArgs) -> Result<flowdrill_gen::Scenario, crate::CliError> {
    let mut s = flowdrill_gen::Scenario::demo();
    if let Some(f) = &a.flows {
        s.flows = units::parse_count(f).map_err(crate::CliError::usage)?;
    }
    if let Some(d) = &a.duration {
        s.duration_ms = units::parse_duration_ms(d).map_err(crate::CliError::usage)?;
    }
    if let Some(t) = a.start {
        let new_start = t.saturating_mul(1000);
        // Events keep their place relative to the start.
        for e in &mut s.events {
            use flowdrill_gen::Event;
            let at = match e {
                Event::SynScan { at_ms, .. }
                | Event::SpoofedFlood { at_ms, .. }
                | Event::Dragonfly { at_ms, .. }
                | Event::Elephant { at_ms, .. } => at_ms,
            };
            *at = *at - s.start_ms + new_start;
        }
        s.start_ms = new_start;
    }
    s.seed = a.seed;
    if let Some(v) = a.ipv6_share {
        s.ipv6_share = v;
    }
    if a.no_events {
        s.events.clear();
    }
    s.validate()
        .context("invalid generator settings")
        .map_err(crate::CliError::usage)?;
    Ok(s)
}
