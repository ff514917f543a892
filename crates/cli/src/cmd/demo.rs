//! `flowdrill demo`: the main job on an embedded default. Generates the demo scenario as an
//! IPFIX export capture, imports it through the real decoder into a fresh store, and prints a
//! report; then serves the web UI on the demo store until interrupted (`--no-serve` stops
//! after the report).

use crate::CliResult;
use crate::args::{DemoArgs, Global};
use anyhow::Context;
use flowdrill_gen::{ExportFormat, ExportOptions};
use flowdrill_ingest::import::ImportConfig;
use std::io::Write;

pub fn run(g: &Global, a: &DemoArgs) -> CliResult {
    if g.format != crate::args::Format::Table {
        return Err(crate::CliError::usage(anyhow::anyhow!(
            "demo prints a report for people; for machine-readable output run `flowdrill import` \
             (and the analysis commands) with --format"
        )));
    }
    let s = super::scenario(&a.scenario)?;
    let dir = super::store_dir(g, "flowdrill-demo");
    let store_dir = dir.join("store");
    if store_dir.join(flowdrill_store::layout::MARKER).exists() {
        // A previous demo: start again from an empty store so the numbers are the scenario's.
        std::fs::remove_dir_all(&store_dir)
            .with_context(|| format!("clearing {}", store_dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let input_dir = tempdir_in(&dir)?;
    let input = input_dir.join("demo-ipfix.pcap");
    let mut out = std::io::stdout().lock();
    if !g.quiet {
        writeln!(
            out,
            "flowdrill demo: {} background flows over {} h from {} UTC, seed {}, {} events",
            s.flows,
            s.duration_ms as f64 / 3.6e6,
            flowdrill_model::time::format_ms(s.start_ms),
            s.seed,
            s.events.len()
        )?;
    }
    let st = flowdrill_gen::write_export_pcap(
        &s,
        ExportFormat::Ipfix,
        &ExportOptions::default(),
        std::io::BufWriter::new(std::fs::File::create(&input)?),
    )
    .context("generating the demo export capture")?;
    if !g.quiet {
        writeln!(
            out,
            "generated {} IPFIX datagrams with {} flow records into {}",
            st.datagrams,
            st.records,
            input.display()
        )?;
    }
    drop(out);
    let mut store = super::import::open_store(&store_dir, None)?;
    let mut sink = super::import::StoreSink::new(&mut store)?;
    let mut report = super::import::import_files(
        std::slice::from_ref(&input),
        ImportConfig::default(),
        Some(&mut sink),
        g.quiet,
    )?;
    report.store = Some(sink.finish()?);
    super::import::print_report(&report, g.format, true)?;
    std::fs::remove_dir_all(&input_dir).ok();
    super::report::print(&store_dir, g)?;
    if a.no_serve {
        return Ok(());
    }
    let serve = crate::args::ServeArgs {
        listen: a.listen.clone(),
        token: None,
        allow_host: Vec::new(),
        slots: None,
        timeout: "60s".into(),
        max_rows: 5000,
        prefix_map: None,
        address_file: None,
        engine: crate::args::EngineArg::Embedded,
        spark_master: None,
    };
    let engine = flowdrill_query::Engine::new(
        flowdrill_store::Store::open(&store_dir)
            .with_context(|| format!("opening the store {}", store_dir.display()))?,
        super::analyze::CACHE_BYTES,
    );
    let server = match super::serve::bind(&serve, engine, g.quiet) {
        Ok(s) => s,
        Err(e) => {
            // Most likely the port is taken: any free loopback port will do for a demo.
            eprintln!(
                "flowdrill demo: {:#}; serving on a free port instead",
                e.error
            );
            let engine = flowdrill_query::Engine::new(
                flowdrill_store::Store::open(&store_dir)?,
                super::analyze::CACHE_BYTES,
            );
            let any = crate::args::ServeArgs {
                listen: "127.0.0.1:0".into(),
                ..serve
            };
            super::serve::bind(&any, engine, g.quiet)?
        }
    };
    println!(
        "\nThe web UI on this store: http://{}/  (Ctrl-C to stop; `flowdrill demo --no-serve` only prints the report)",
        server.local_addr()
    );
    std::io::stdout().flush()?;
    server.run();
    Ok(())
}

fn tempdir_in(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let d = dir.join("input");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
