//! Command-line arguments: one definition per flag, from which clap derives the help text
//! and shell completions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Debug, Parser)]
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

#[derive(Clone, Debug, Args)]
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

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Generate a demo data set, import it into a store and print a report.
    Demo(DemoArgs),
    /// Generate synthetic traffic: raw packets, export captures, or records into the store.
    Generate(GenerateArgs),
    /// Import flow data into the store (pcap/pcapng of exports or raw traffic, IPFIX files,
    /// nfcapd files, nfdump CSV; gzip'd or not; the kind is detected from the content).
    Import(ImportArgs),
    /// Top N groups by a field or prefix (as `nfdump -s` / `-A`).
    Top(TopArgs),
    /// Hierarchical heavy hitters of sources, destinations or applications (Netpy's tree).
    Hhh(HhhArgs),
    /// Two-dimensional heavy hitters: the traffic of every cell of two hierarchies' keys.
    Hhh2(Hhh2Args),
    /// Traffic over time split into categories (built-in sets or your own rules).
    Series(SeriesArgs),
    /// Flow-size distribution and what ignoring the smallest flows would drop.
    Dist(DistArgs),
    /// What appeared, vanished and changed between two selections.
    Compare(CompareArgs),
    /// Scans and floods: fan-out, fan-in, small and SYN-only flows.
    Scans(ScansArgs),
    /// Write the records of a selection to CSV, JSON, NDJSON or Parquet, with their
    /// estimated weights.
    Export(ExportArgs),
    /// Delete old bins: the links file's retention, or by age, time or size.
    Expire(ExpireArgs),
    /// The store's links: levels, budgets, retention and what each holds; check or install a
    /// links file.
    Links(LinksArgs),
    /// Explore interactively (line editing, history, completion, drill-down, back/forward),
    /// or run a script of console commands.
    Console(ConsoleArgs),
    /// Receive NetFlow v5/v9, IPFIX and sFlow over UDP into the store (see docs/collect.md).
    Collect(CollectArgs),
    /// Serve the store's analyses over HTTP: a JSON API and the web UI (see docs/api.md).
    Serve(ServeArgs),
    /// Send the export datagrams of a capture to a collector at a given rate (load tests).
    Replay(ReplayArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Debug, Args)]
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

#[derive(Clone, Debug, Args)]
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

#[derive(Clone, Debug, Args)]
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

#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print the report and exit instead of then serving the web UI on the demo store.
    #[arg(long)]
    pub no_serve: bool,
    /// Where the demo serves the web UI (loopback).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// `flowdrill serve`: the daemon's address, access and bounds.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs an access token (one is generated
    /// and printed when --token is not given). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Access token that API requests must send as `Authorization: Bearer TOKEN` (16 or more
    /// letters, digits, '-' or '_').
    #[arg(long, env = "FLOWDRILL_TOKEN")]
    pub token: Option<String>,
    /// Another host name that requests may carry in their Host header (e.g. a reverse
    /// proxy's); localhost and the listen address always may. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Analyses running at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub slots: Option<usize>,
    /// Longest time an analysis may take before the request is answered 503.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// Most rows of any table of an answer (and the largest --top a request may ask).
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub max_rows: usize,
    /// Prefix map CSV (prefix,asn,organisation) for the src-map/dst-map dimensions and the
    /// labels of hhh and hhh2 (requests cannot name a file).
    #[arg(long, value_name = "CSV")]
    pub prefix_map: Option<PathBuf>,
    /// Write the address listened on (http://ADDR:PORT) to this file once listening.
    #[arg(long, value_name = "FILE")]
    pub address_file: Option<PathBuf>,
    /// Where every request's records are read and aggregated (docs/scale-out.md): the web UI
    /// and remote consoles then run on a Spark cluster too.
    #[arg(long, value_enum, default_value_t = EngineArg::Embedded, env = "FLOWDRILL_ENGINE")]
    pub engine: EngineArg,
    /// Spark master URL or Spark Connect address for --engine spark [default: local[*]].
    #[arg(long, value_name = "URL", env = "FLOWDRILL_SPARK_MASTER")]
    pub spark_master: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    Bytes,
    Packets,
    Flows,
}

/// Where an analysis reads and aggregates the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// In this process (the default).
    #[default]
    Embedded,
    /// Pushed down to Apache Spark (see --spark-master and docs/scale-out.md).
    Spark,
}

/// What every analysis reads: links, time range, filter, metric, and the bound on records.
#[derive(Clone, Debug, Args)]
pub struct SelectArgs {
    /// Links to read, comma-separated or repeated [default: all links].
    #[arg(long, short = 'l', value_delimiter = ',')]
    pub link: Vec<String>,
    /// Time range: -1h, -7d, 2024-05-01, START..END, START+DURATION, or all. Relative times
    /// count back from the end of the newest stored bin.
    #[arg(long, short = 't', default_value = "all", allow_hyphen_values = true)]
    pub time: String,
    /// Filter expression in nfdump's syntax, e.g. 'proto tcp and dst port 443'.
    #[arg(long, short = 'f', allow_hyphen_values = true)]
    pub filter: Option<String>,
    /// Netpy ACL rule list file: keep the records whose first matching rule is `permit`.
    #[arg(long, value_name = "FILE")]
    pub acl: Option<PathBuf>,
    /// What to count.
    #[arg(long, short = 'm', value_enum, default_value_t = MetricArg::Bytes)]
    pub metric: MetricArg,
    /// Most records handed to the analysis; beyond it the sample is re-thresholded
    /// (unbiased) and the answer carries error bars [default: 100k; export: every record].
    #[arg(long, value_name = "N")]
    pub max_records: Option<String>,
    /// Every stored record of the finest level, without re-sampling.
    #[arg(long, conflicts_with = "max_error")]
    pub exact: bool,
    /// Read the coarsest store level whose byte total has at most this relative standard
    /// error (e.g. 0.01 for 1 %), instead of bounding the records.
    #[arg(long, value_name = "REL")]
    pub max_error: Option<f64>,
    /// Do not use or fill the result cache.
    #[arg(long)]
    pub no_cache: bool,
    /// The ACL's text, when it comes inline (the daemon's `acl` parameter) rather than from
    /// the file of --acl.
    #[arg(skip)]
    pub acl_text: Option<String>,
    /// Where the records are read and aggregated: here, or on Apache Spark (the hierarchy
    /// logic stays here either way; docs/scale-out.md).
    #[arg(long, value_enum, default_value_t = EngineArg::Embedded, env = "FLOWDRILL_ENGINE")]
    pub engine: EngineArg,
    /// Spark master URL (local[2], spark://host:7077, yarn) or Spark Connect address
    /// (sc://host:15002) for --engine spark [default: local[*]].
    #[arg(long, value_name = "URL", env = "FLOWDRILL_SPARK_MASTER")]
    pub spark_master: Option<String>,
}

#[derive(Clone, Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Group by: srcip, dstip, srcport, dstport, proto, srcas, dstas, inif, outif, exporter,
    /// nexthop, tos, flags or any field; addresses take a prefix length (srcip/24,
    /// srcip6/48, srcip/24,48).
    #[arg(long, short = 'b', default_value = "srcip")]
    pub by: String,
    /// Number of groups.
    #[arg(short = 'n', long = "top", default_value_t = 20)]
    pub n: usize,
}

#[derive(Clone, Debug, Args)]
pub struct HierarchyArgs {
    /// Threshold: a percentage of the selection's total.
    #[arg(long, short = 'T', default_value_t = 5.0)]
    pub threshold: f64,
    /// IPv4 prefix lengths of the address hierarchy, e.g. 8,16,24,32 [default: every length].
    #[arg(long, value_delimiter = ',')]
    pub levels: Vec<u8>,
    /// IPv6 prefix lengths of the address hierarchy [default: every length].
    #[arg(long, value_delimiter = ',')]
    pub levels6: Vec<u8>,
    /// Prefix map CSV (prefix,asn,organisation): enables the src-map/dst-map dimensions and
    /// labels addresses with their AS and organisation.
    #[arg(long, value_name = "CSV")]
    pub prefix_map: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct HhhArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Dimension: src, dst, app (Netpy's source-port form), app-dst, src-map, dst-map.
    #[arg(long, short = 'd', default_value = "src")]
    pub dim: String,
    #[command(flatten)]
    pub h: HierarchyArgs,
}

#[derive(Clone, Debug, Args)]
pub struct Hhh2Args {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Dimension of the rows.
    #[arg(long, default_value = "src")]
    pub rows: String,
    /// Dimension of the columns.
    #[arg(long, default_value = "dst")]
    pub cols: String,
    #[command(flatten)]
    pub h: HierarchyArgs,
}

#[derive(Clone, Debug, Args)]
pub struct SeriesArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Category set: internet2, brownlee, proto; or a rules file (lines `NAME: FILTER`, or a
    /// Netpy ACL list whose labels are the categories).
    #[arg(long, short = 'c', default_value = "internet2")]
    pub categories: String,
    /// Bin width, e.g. 1s, 1m, 5m, 1h, 1d [default: at most 120 bins].
    #[arg(long)]
    pub bin: Option<String>,
    /// What each bin counts: metric (the --metric), active (flows active in the bin),
    /// sources or destinations (distinct addresses).
    #[arg(long, default_value = "metric")]
    pub value: String,
    /// Split inbound/outbound relative to these local prefixes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub local: Vec<String>,
    /// The rules' text, when it comes inline (the daemon's `rules` parameter) rather than
    /// from the file named by --categories.
    #[arg(skip)]
    pub rules_text: Option<String>,
}

#[derive(Clone, Debug, Args)]
pub struct DistArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Show what ignoring flows of at most K packets would drop, per bin.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub ignore: u64,
}

#[derive(Clone, Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Time range of the selection to compare against [default: the same length just before].
    #[arg(long, allow_hyphen_values = true)]
    pub before_time: Option<String>,
    /// Links of the selection to compare against [default: the same links].
    #[arg(long, value_delimiter = ',')]
    pub before_link: Vec<String>,
    /// Group by (as for top).
    #[arg(long, short = 'b', default_value = "srcip")]
    pub by: String,
    /// Number of changes to show.
    #[arg(short = 'n', long = "top", default_value_t = 20)]
    pub n: usize,
}

#[derive(Clone, Debug, Args)]
pub struct ScansArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Hosts to list per table.
    #[arg(short = 'n', long = "top", default_value_t = 10)]
    pub n: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Parquet in the store's column layout (zstd).
    Parquet,
}

#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Columns to write, comma-separated: schema fields and user-defined elements by name
    /// [default: every field and every user-defined element].
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Output file, or - for standard output.
    #[arg(long, short = 'o', value_name = "FILE|-")]
    pub output: PathBuf,
    /// Output format [default: from the file's extension].
    #[arg(long = "as", value_enum, value_name = "FORMAT")]
    pub as_format: Option<ExportFormat>,
}

#[derive(Clone, Debug, Args)]
pub struct ExpireArgs {
    /// Only this link [default: every link].
    #[arg(long, short = 'l')]
    pub link: Option<String>,
    /// Only this level (0 = finest) [default: every level].
    #[arg(long)]
    pub level: Option<u8>,
    /// Delete bins that ended longer ago than this, e.g. 30d, 12h.
    #[arg(long, value_name = "AGE", conflicts_with = "before")]
    pub older_than: Option<String>,
    /// Delete bins that ended at or before this time (2024-05-01, 2024-05-01T10:00, @UNIX,
    /// or -7d: seven days before now).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub before: Option<String>,
    /// Delete the oldest bins until each selected link and level takes at most this much
    /// disk, e.g. 5GB.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Clone, Debug, Args)]
pub struct LinksArgs {
    /// Install this links file in the store (checked first).
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub set: Option<PathBuf>,
    /// Check a links file and print its links; errors give line:column (exit code 2).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct ConsoleArgs {
    /// Run the console commands of FILE ('-' for standard input) instead of reading the
    /// terminal; a non-terminal standard input is read as a script too.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// In a script, go on after a failing command; the exit code is then the last failure's.
    #[arg(long)]
    pub keep_going: bool,
    /// In a script, print each command before its output.
    #[arg(long)]
    pub echo: bool,
    /// The history file [default: $XDG_STATE_HOME/flowdrill/history, else
    /// ~/.local/state/flowdrill/history].
    #[arg(long, value_name = "FILE", env = "FLOWDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// Run the analyses on a daemon (`flowdrill serve`) instead of opening a store.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Access token of the daemon.
    #[arg(long, env = "FLOWDRILL_TOKEN", requires = "remote")]
    pub token: Option<String>,
}

// ---- collect / replay (issue #8) ----

#[derive(Clone, Debug, Args)]
pub struct CollectArgs {
    /// UDP address to listen on (repeatable; port 0 picks a free one). Every listener takes
    /// NetFlow v5/v9, IPFIX and sFlow alike.
    #[arg(long, short, value_name = "ADDR:PORT", default_value = "0.0.0.0:2055")]
    pub listen: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Links file to install in the store before starting (SIGHUP re-reads this file, or the
    /// store's own links file without it).
    #[arg(long)]
    pub links: Option<PathBuf>,
    /// Registry of user-defined information elements (TOML; see docs/import.md).
    #[arg(long)]
    pub fields: Option<PathBuf>,
    /// Sampling rate that overrides what an exporter says: PREFIX=RATE (repeatable).
    #[arg(long = "sampling-rate", value_name = "PREFIX=RATE")]
    pub sampling_rate: Vec<String>,
    /// Close a bin once flows starting this long after its end have been seen; set it to at
    /// least the exporters' active timeout (later records are merged into the bin's file).
    #[arg(long, default_value = "5m")]
    pub close_after: String,
    /// Records an open bin may hold before it is sampled adaptively (k, M suffixes); it is
    /// also never more than twice what the bin's disk budget keeps.
    #[arg(long, default_value = "1M")]
    pub max_bin_records: String,
    /// Socket receive buffer to ask for (bytes; k, M suffixes); the kernel caps it at
    /// net.core.rmem_max.
    #[arg(long, default_value = "8M")]
    pub recv_buffer: String,
    /// Stop by itself after this long (as SIGTERM would), e.g. 30s.
    #[arg(long = "for", value_name = "DURATION")]
    pub run_for: Option<String>,
}

#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    /// pcap/pcapng of export datagrams (gzip'd or not).
    pub file: PathBuf,
    /// Destination (repeatable: every datagram goes to each).
    #[arg(long, required = true, value_name = "ADDR:PORT")]
    pub to: Vec<String>,
    /// Flow records per second (k, M suffixes).
    #[arg(long, conflicts_with = "pps")]
    pub rate: Option<String>,
    /// Datagrams per second (k, M suffixes).
    #[arg(long)]
    pub pps: Option<String>,
    /// Passes over the capture (0: until --duration).
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u64,
    /// Stop after this long, e.g. 10s.
    #[arg(long)]
    pub duration: Option<String>,
}
