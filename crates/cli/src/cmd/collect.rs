//! `flowdrill collect` (the live collector: listeners, metrics endpoint, signals) and
//! `flowdrill replay` (a capture's export datagrams sent again at a rate).
//!
//! Signals: SIGTERM and SIGINT stop the collector, which writes its open bins first; SIGHUP
//! reloads the links file. The handlers only set flags (signal-hook); the main thread polls
//! them every 100 ms.

use crate::args::{CollectArgs, Global, ReplayArgs};
use crate::cmd::import::{decoder_config, open_store};
use crate::{CliError, CliResult, units};
use anyhow::{Context, anyhow};
use flowdrill_collect::replay::{self, Rate, ReplayConfig};
use flowdrill_collect::{CollectConfig, Collector};
use flowdrill_store::Store;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn addr(s: &str, what: &str) -> Result<SocketAddr, CliError> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::usage(anyhow!("{what} {s}: expected ADDR:PORT, e.g. 0.0.0.0:2055"))
        })
}

fn count(s: &str, what: &str) -> Result<u64, CliError> {
    units::parse_count(s)
        .with_context(|| what.to_string())
        .map_err(CliError::usage)
}

/// SIGTERM/SIGINT and SIGHUP flags.
struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        };
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register(sig, s.stop.clone())
                .context("installing signal handlers")?;
        }
        signal_hook::flag::register(SIGHUP, s.hup.clone()).context("installing signal handlers")?;
        Ok(s)
    }
}

pub fn run(g: &Global, a: &CollectArgs) -> CliResult {
    let dir = crate::cmd::store_dir(g, "flowdrill-store");
    let store = open_store(&dir, a.links.as_deref())?;
    let listen = a
        .listen
        .iter()
        .map(|l| addr(l, "--listen"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cfg = CollectConfig::new(listen);
    cfg.decoder = decoder_config(a.fields.as_deref(), &a.sampling_rate)?;
    cfg.writer.custom = cfg.decoder.custom.clone();
    cfg.writer.max_open_records =
        Some(count(&a.max_bin_records, "--max-bin-records")?.max(1) as usize);
    cfg.close_after_ms = units::parse_duration_ms(&a.close_after).map_err(CliError::usage)?;
    cfg.recv_buffer = count(&a.recv_buffer, "--recv-buffer")? as usize;
    let run_for = a
        .run_for
        .as_deref()
        .map(units::parse_duration_ms)
        .transpose()
        .map_err(CliError::usage)?;
    let signals = Signals::install()?;
    let collector = Collector::start(&store, cfg).context("starting the collector")?;
    for l in collector.local_addrs() {
        eprintln!("flowdrill collect: listening on udp {l}");
    }
    if let Some(m) = &a.metrics {
        let m = addr(m, "--metrics")?;
        let bound = flowdrill_collect::metrics::serve(m, collector.shared())
            .with_context(|| format!("serving metrics on {m}"))?;
        eprintln!("flowdrill collect: metrics on http://{bound}/metrics");
    }
    eprintln!("flowdrill collect: ready, store {}", dir.display());
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if signals.stop.load(Ordering::SeqCst)
            || !collector.is_running()
            || run_for.is_some_and(|ms| started.elapsed() >= Duration::from_millis(ms))
        {
            break;
        }
        if signals.hup.swap(false, Ordering::SeqCst) {
            match reload(&dir, a) {
                Ok(s) => {
                    collector.reload(s).context("reloading the links")?;
                    eprintln!("flowdrill collect: links reloaded");
                }
                // A bad links file keeps the rules in force: say so, do not stop.
                Err(e) => eprintln!(
                    "flowdrill collect: links not reloaded, the rules in force stay: {:#}",
                    e.error
                ),
            }
        }
    }
    eprintln!("flowdrill collect: stopping, writing the open bins");
    let s = collector.shutdown().context("stopping the collector")?;
    let stored: u64 = s.writes.iter().map(|w| w.records_in).sum();
    let bins: usize = s.writes.iter().map(|w| w.bins.len()).sum();
    let dropped: u64 = s.drops.values().sum();
    eprintln!(
        "flowdrill collect: {} datagrams, {} records decoded, {} stored, {} bin files written; dropped: {}; socket drops: {}",
        s.datagrams,
        s.records_decoded,
        stored,
        bins,
        if dropped == 0 {
            "nothing".to_string()
        } else {
            s.drops
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        s.socket_drops
    );
    Ok(())
}

/// Re-reads the links: the `--links` file (installed into the store) or the store's own.
fn reload(dir: &std::path::Path, a: &CollectArgs) -> Result<Store, CliError> {
    match &a.links {
        Some(_) => open_store(dir, a.links.as_deref()),
        None => Ok(Store::open(dir).with_context(|| format!("opening store {}", dir.display()))?),
    }
}

pub fn replay(g: &Global, a: &ReplayArgs) -> CliResult {
    let to =
        a.to.iter()
            .map(|t| addr(t, "--to"))
            .collect::<Result<Vec<_>, _>>()?;
    let rate = match (&a.rate, &a.pps) {
        (Some(r), _) => Rate::Records(count(r, "--rate")? as f64),
        (None, Some(p)) => Rate::Datagrams(count(p, "--pps")? as f64),
        (None, None) => Rate::Unlimited,
    };
    let duration = a
        .duration
        .as_deref()
        .map(units::parse_duration_ms)
        .transpose()
        .map_err(CliError::usage)?
        .map(Duration::from_millis);
    if a.loops == 0 && duration.is_none() {
        return Err(CliError::usage(anyhow!(
            "--loop 0 repeats until --duration ends; give a --duration"
        )));
    }
    let datagrams = replay::load(&a.file)?;
    let per_pass: u64 = datagrams.iter().map(|d| d.records as u64).sum();
    if !g.quiet {
        eprintln!(
            "replaying {} datagrams ({} records) per pass to {}",
            datagrams.len(),
            per_pass,
            a.to.join(", ")
        );
    }
    let signals = Signals::install()?;
    let cfg = ReplayConfig {
        to,
        rate,
        loops: a.loops,
        duration,
    };
    let s = replay::replay(&datagrams, &cfg, &signals.stop)?;
    let rate = s.records as f64 / s.seconds.max(1e-9);
    println!(
        "sent {} datagrams, {} records, {} bytes in {:.3} s ({:.0} records/s, {:.0} datagrams/s); send errors: {}",
        s.datagrams,
        s.records,
        s.bytes,
        s.seconds,
        rate,
        s.datagrams as f64 / s.seconds.max(1e-9),
        s.send_errors
    );
    Ok(())
}
