//! `flowdrill generate`: synthetic traffic as raw packets, export captures, or store records.

use crate::args::{GenerateArgs, GenerateKind, Global};
use crate::{CliError, CliResult, units};
use anyhow::Context;
use flowdrill_gen::{ExportFormat, ExportOptions};
use std::fs::File;
use std::io::BufWriter;

pub fn run(g: &Global, a: &GenerateArgs) -> CliResult {
    let s = super::scenario(&a.scenario)?;
    let started = std::time::Instant::now();
    if a.kind == GenerateKind::Store {
        if a.out.is_some() {
            return Err(CliError::usage(anyhow::anyhow!(
                "--out is for files; --kind store writes into --store"
            )));
        }
        let dir = super::store_dir(g, "flowdrill-store");
        let mut store = super::import::open_store(&dir, a.links.as_deref())?;
        let mut writer = super::import::StoreSink::new(&mut store)?;
        let mut batch = Vec::with_capacity(8192);
        let bar = crate::output::progress(g, s.flows, "generating {pos}/{len} flows");
        for r in flowdrill_gen::records(&s).context("generating")? {
            batch.push(r);
            if batch.len() == batch.capacity() {
                writer.push(&batch)?;
                batch.clear();
                if let Some(b) = &bar {
                    // Events add flows beyond --flows: the total grows with them.
                    b.inc(batch.capacity() as u64);
                    if b.position() > b.length().unwrap_or(0) {
                        b.set_length(b.position());
                    }
                }
            }
        }
        writer.push(&batch)?;
        if let Some(b) = &bar {
            b.set_message("closing bins");
        }
        let ws = writer.finish()?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if !g.quiet {
            eprintln!(
                "generated {} records into {} in {:.1}s",
                ws.records_in,
                dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let out = a.out.as_ref().ok_or_else(|| {
        CliError::usage(anyhow::anyhow!(
            "--out FILE is required for --kind {:?}",
            a.kind
        ))
    })?;
    let w = BufWriter::with_capacity(
        1 << 20,
        File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    let msg = match a.kind {
        GenerateKind::Packets => {
            let t = flowdrill_gen::write_packets_pcap(&s, w).context("writing packets")?;
            format!(
                "{} flows, {} packets, {} bytes as raw packets",
                t.total.flows, t.total.packets, t.total.bytes
            )
        }
        kind => {
            let format = match kind {
                GenerateKind::V5 => ExportFormat::V5,
                GenerateKind::V9 => ExportFormat::V9,
                _ => ExportFormat::Ipfix,
            };
            let opts = ExportOptions {
                sampling_rate: a.sampling_rate.max(1),
                ..ExportOptions::default()
            };
            let st = flowdrill_gen::write_export_pcap(&s, format, &opts, w)
                .context("writing the export capture")?;
            format!(
                "{} flow records in {} datagrams ({:?})",
                st.records, st.datagrams, format
            )
        }
    };
    if !g.quiet {
        let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "wrote {}: {msg}, {}B, in {:.1}s",
            out.display(),
            units::si(size as f64),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
