//! Command-line arguments: one definition per flag, from which clap derives the help text
//! and shell completions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "flowdrill",
    version,
    about = "Interactive analysis of network flow data (NetFlow v5/v9, IPFIX, sFlow, packet captures)",
    long_about = None,
    after_help = "Start with `flowdrill demo`: it generates an hour of realistic traffic as an IPFIX export, imports it and prints a report."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The flow store directory [default: $FLOWDRILL_STORE, else ./flowdrill-store; for
    /// `demo`, ./flowdrill-demo].
    #[arg(long, global = true, env = "FLOWDRILL_STORE")]
    pub store: Option<PathBuf>,
    /// Output format of results.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// No progress bars or informational messages.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a demo data set, import it into a store and print a report.
    Demo(DemoArgs),
    /// Generate synthetic traffic: raw packets, export captures, or records into the store.
    Generate(GenerateArgs),
    /// Import flow data into the store (pcap/pcapng of exports or raw traffic, IPFIX files,
    /// nfcapd files, nfdump CSV; gzip'd or not; the kind is detected from the content).
    Import(ImportArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Number of background flows to generate (k, M, G suffixes) [default: 200k].
    #[arg(long)]
    pub flows: Option<String>,
    /// Length of the generated period, e.g. 1h, 24h, 7d [default: 1h].
    #[arg(long)]
    pub duration: Option<String>,
    /// Start time, Unix seconds [default: 2024-01-01 00:00 UTC].
    #[arg(long)]
    pub start: Option<u64>,
    /// Seed of the generator: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of IPv6 flows, 0 to 1.
    #[arg(long)]
    pub ipv6_share: Option<f64>,
    /// Leave out the injected events (scan, flood, dragonfly burst, elephant).
    #[arg(long)]
    pub no_events: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenerateKind {
    /// Raw packets (Ethernet pcap), for the flow meter or real exporters such as softflowd.
    Packets,
    /// NetFlow v5 export datagrams in a pcap.
    V5,
    /// NetFlow v9 export datagrams in a pcap.
    V9,
    /// IPFIX export datagrams in a pcap.
    Ipfix,
    /// Flow records straight into the store.
    Store,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// What to write.
    #[arg(long, value_enum, default_value_t = GenerateKind::Packets)]
    pub kind: GenerateKind,
    /// Output file (not with --kind store).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Packet sampling rate announced by the export (1 = unsampled).
    #[arg(long, default_value_t = 1)]
    pub sampling_rate: u32,
    /// Links file for --kind store.
    #[arg(long)]
    pub links: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import (directories are read recursively).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Links file: rules mapping flows to links (see docs/store-format.md).
    #[arg(long)]
    pub links: Option<PathBuf>,
    /// Registry of user-defined information elements (TOML; see docs/import.md).
    #[arg(long)]
    pub fields: Option<PathBuf>,
    /// Sampling rate that overrides what an exporter says: PREFIX=RATE (repeatable),
    /// e.g. 192.0.2.1=1000 or 10.0.0.0/8=100.
    #[arg(long = "sampling-rate", value_name = "PREFIX=RATE")]
    pub sampling_rate: Vec<String>,
    /// Treat pcaps as this kind instead of detecting it.
    #[arg(long = "as", value_enum)]
    pub as_kind: Option<PcapKind>,
    /// Flow meter: active timeout (raw packet captures).
    #[arg(long, default_value = "1800s")]
    pub active_timeout: String,
    /// Flow meter: idle timeout (raw packet captures).
    #[arg(long, default_value = "15s")]
    pub idle_timeout: String,
    /// Anonymise addresses by masking: V4BITS[,V6BITS], e.g. 21,64 (Internet2 zeroes 11 bits).
    #[arg(long, value_name = "V4BITS[,V6BITS]", conflicts_with = "anonymize_key")]
    pub anonymize_mask: Option<String>,
    /// Anonymise addresses with a keyed prefix-preserving permutation (key from this file).
    #[arg(long, value_name = "KEYFILE")]
    pub anonymize_key: Option<PathBuf>,
    /// Read and report, but write nothing to the store.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PcapKind {
    /// Export datagrams (NetFlow, IPFIX, sFlow).
    Export,
    /// Raw traffic for the flow meter.
    Packets,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}
