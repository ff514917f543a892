//! The analysis commands: build a selection from the flags, run the query layer's analysis,
//! and hand back its report (the CLI prints it; the console keeps it to drill into).

use crate::args::{
    Command, CompareArgs, DistArgs, EngineArg, Global, Hhh2Args, HhhArgs, HierarchyArgs, MetricArg,
    ScansArgs, SelectArgs, SeriesArgs, TopArgs,
};
use crate::{CliError, CliResult, output, units};
use anyhow::Context;
use flowdrill_analysis::hhh::{IpLevels, PrefixMap};
use flowdrill_query::report::Report;
use flowdrill_query::run::{self, Dim, KeySpec, RunError};
use flowdrill_query::{Bound, Engine, Metric, QueryError, Selection, cache};
use flowdrill_store::Store;

/// Bytes of decoded columns the engine keeps between the analyses of one process.
pub const CACHE_BYTES: usize = 512 << 20;

/// A selection resolved against a store, with what the result cache needs to know.
pub struct Resolved {
    pub sel: Selection,
    pub bound: Bound,
    pub use_cache: bool,
}

fn usage(e: impl Into<anyhow::Error>) -> CliError {
    CliError::usage(e)
}

/// Turns query and analysis errors into exit codes: the user's mistakes are 2.
fn run_err(e: RunError) -> CliError {
    match e {
        RunError::Param(p) => usage(p),
        RunError::Query(q) => query_err(q),
        RunError::Analysis(a) => usage(a),
        other => CliError::from(anyhow::Error::from(other)),
    }
}

pub(crate) fn query_err(e: QueryError) -> CliError {
    match e {
        QueryError::Store(s) => CliError::from(anyhow::Error::from(s)),
        QueryError::Spark(s) if !matches!(s, flowdrill_query::SparkError::Sql(_)) => {
            CliError::from(anyhow::Error::from(s))
        }
        other => usage(other),
    }
}

/// Opens the store of `--store` with an engine that caches decoded columns.
pub fn open_engine(g: &Global, cache_bytes: usize) -> Result<Engine, CliError> {
    let dir = super::store_dir(g, "flowdrill-store");
    let store =
        Store::open(&dir).with_context(|| format!("opening the store {}", dir.display()))?;
    Ok(Engine::new(store, cache_bytes))
}

/// Resolves the selection flags against an open engine.
pub fn resolve(engine: &Engine, a: &SelectArgs) -> Result<Resolved, CliError> {
    engine.set_spark(spark_config(a));
    let sel = selection(engine, a)?;
    let bound = if a.exact {
        Bound::Exact
    } else if let Some(e) = a.max_error {
        if !(e.is_finite() && e > 0.0) {
            return Err(usage(anyhow::anyhow!(
                "--max-error {e}: give a relative error above 0, e.g. 0.01"
            )));
        }
        Bound::RelativeError(e)
    } else {
        let n = units::parse_count(a.max_records.as_deref().unwrap_or("100k")).map_err(usage)?;
        if n == 0 {
            return Err(usage(anyhow::anyhow!("--max-records must be at least 1")));
        }
        Bound::Records(n)
    };
    Ok(Resolved {
        sel,
        bound,
        use_cache: !a.no_cache,
    })
}

/// The Spark engine the flags ask for, if any (`$FLOWDRILL_SPARK_STORE` names the store's root
/// as the cluster sees it, e.g. `s3a://bucket/store`).
pub fn spark_config(a: &SelectArgs) -> Option<flowdrill_query::SparkConfig> {
    (a.engine == EngineArg::Spark).then(|| flowdrill_query::SparkConfig {
        master: a
            .spark_master
            .clone()
            .unwrap_or_else(|| "local[*]".to_string()),
        store_url: std::env::var("FLOWDRILL_SPARK_STORE")
            .ok()
            .filter(|s| !s.is_empty()),
        python: None,
    })
}

/// The selection of the flags, against an open engine.
pub fn selection(engine: &Engine, a: &SelectArgs) -> Result<Selection, CliError> {
    let mut sel = Selection {
        links: a.link.clone(),
        metric: match a.metric {
            MetricArg::Bytes => Metric::Bytes,
            MetricArg::Packets => Metric::Packets,
            MetricArg::Flows => Metric::Flows,
        },
        ..Selection::all()
    };
    let links = engine.links(&sel).map_err(query_err)?;
    sel.range = flowdrill_query::parse_range(&a.time, engine.anchor(&links)).map_err(usage)?;
    let mut parts = Vec::new();
    if let Some(f) = &a.filter {
        // The registry is read from the bin files' footers: only when a filter needs it.
        let e = flowdrill_query::parse_filter(f, &engine.custom_fields())
            .map_err(|e| usage(anyhow::anyhow!("bad filter\n{}", e.render(f))))?;
        parts.push(e);
    }
    let acl = match (&a.acl_text, &a.acl) {
        (Some(text), _) => Some(("(inline)".to_string(), text.clone())),
        (None, Some(path)) => Some((
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the ACL {}", path.display()))?,
        )),
        (None, None) => None,
    };
    if let Some((name, text)) = acl {
        let rules = flowdrill_filter::acl::RuleList::parse(&text)
            .map_err(|e| usage(anyhow::anyhow!("bad ACL {name}\n{}", e.render(&text))))?;
        parts.push(rules.permitted());
    }
    sel.filter = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(flowdrill_filter::Expr::and(parts).simplify()),
    };
    Ok(sel)
}

fn levels(h: &HierarchyArgs) -> Result<IpLevels, CliError> {
    let v4: Vec<u8> = if h.levels.is_empty() {
        (0..=32).collect()
    } else {
        h.levels.clone()
    };
    let v6: Vec<u8> = if h.levels6.is_empty() {
        (0..=128).collect()
    } else {
        h.levels6.clone()
    };
    IpLevels::new(&v4, &v6).map_err(usage)
}

fn prefix_map(h: &HierarchyArgs) -> Result<Option<PrefixMap>, CliError> {
    let Some(p) = &h.prefix_map else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the prefix map {}", p.display()))?;
    run::parse_prefix_map(&text).map(Some).map_err(usage)
}

fn share(h: &HierarchyArgs) -> Result<f64, CliError> {
    if h.threshold.is_finite() && h.threshold > 0.0 && h.threshold <= 100.0 {
        Ok(h.threshold / 100.0)
    } else {
        Err(usage(anyhow::anyhow!(
            "--threshold {}: give a percentage above 0 and at most 100",
            h.threshold
        )))
    }
}

/// The report of an analysis command; `None` for a command that is not an analysis.
pub fn report(g: &Global, engine: &Engine, cmd: &Command) -> Option<Result<Report, CliError>> {
    Some(match cmd {
        Command::Top(a) => top(g, engine, a),
        Command::Hhh(a) => hhh(g, engine, a),
        Command::Hhh2(a) => hhh2(g, engine, a),
        Command::Series(a) => series(g, engine, a),
        Command::Dist(a) => dist(g, engine, a),
        Command::Compare(a) => compare(g, engine, a),
        Command::Scans(a) => scans(g, engine, a),
        _ => return None,
    })
}

/// Runs an analysis command of the CLI: opens the store, prints the report.
pub fn run(g: &Global, cmd: &Command) -> CliResult {
    // One analysis reads each bin once: a cache would only keep memory from being reused.
    let engine = open_engine(g, 0)?;
    let spin = output::spinner(g, "reading and analysing");
    let r = report(g, &engine, cmd);
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    match r {
        Some(r) => output::print_report(&r?, g),
        None => unreachable!("analyze::run called with a command that is not an analysis"),
    }
}

/// Runs an analysis through the result cache.
fn finish(
    g: &Global,
    engine: &Engine,
    r: &Resolved,
    key_params: String,
    f: impl FnOnce(&Engine, &Selection, Bound) -> Result<Report, RunError>,
) -> Result<Report, CliError> {
    let cache = r
        .use_cache
        .then(|| cache::ResultCache::for_store(engine.store()));
    let key = cache
        .as_ref()
        .map(|c| c.key(engine, &r.sel, r.bound, &key_params))
        .transpose()
        .map_err(query_err)?;
    if let (Some(c), Some(k)) = (&cache, &key)
        && let Some(mut rep) = c.get(k)
    {
        rep.meta.cached = true;
        return Ok(rep);
    }
    let rep = f(engine, &r.sel, r.bound).map_err(run_err)?;
    if let (Some(c), Some(k)) = (&cache, &key) {
        // A cache that cannot be written is not an error of the analysis.
        if let Err(e) = c.put(k, &rep)
            && !g.quiet
        {
            eprintln!("flowdrill: note: result cache not written: {e}");
        }
    }
    Ok(rep)
}

type Out = Result<Report, CliError>;

fn top(g: &Global, engine: &Engine, a: &TopArgs) -> Out {
    let by = KeySpec::parse(&a.by).map_err(usage)?;
    let r = resolve(engine, &a.sel)?;
    let p = run::TopParams { by, n: a.n };
    finish(g, engine, &r, format!("top {p:?}"), |e, s, b| {
        run::top(e, s, b, &p)
    })
}

fn hhh(g: &Global, engine: &Engine, a: &HhhArgs) -> Out {
    let r = resolve(engine, &a.sel)?;
    let map = prefix_map(&a.h)?;
    let p = run::HhhParams {
        dim: Dim::parse(&a.dim, &levels(&a.h)?, map.as_ref()).map_err(usage)?,
        share: share(&a.h)?,
        labels: map,
    };
    let key = format!("hhh {} {:?} {:?}", a.dim, a.h, file_stamp(&a.h));
    finish(g, engine, &r, key, |e, s, b| run::hhh(e, s, b, &p))
}

fn hhh2(g: &Global, engine: &Engine, a: &Hhh2Args) -> Out {
    let r = resolve(engine, &a.sel)?;
    let map = prefix_map(&a.h)?;
    let lv = levels(&a.h)?;
    let p = run::Hhh2Params {
        rows: Dim::parse(&a.rows, &lv, map.as_ref()).map_err(usage)?,
        cols: Dim::parse(&a.cols, &lv, map.as_ref()).map_err(usage)?,
        share: share(&a.h)?,
    };
    let key = format!(
        "hhh2 {} {} {:?} {:?}",
        a.rows,
        a.cols,
        a.h,
        file_stamp(&a.h)
    );
    finish(g, engine, &r, key, |e, s, b| run::hhh2(e, s, b, &p))
}

/// Size and mtime of a prefix map, so that an edited map misses the cache.
fn file_stamp(h: &HierarchyArgs) -> Option<(u64, u128)> {
    let m = std::fs::metadata(h.prefix_map.as_ref()?).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((m.len(), t.as_nanos()))
}

fn series(g: &Global, engine: &Engine, a: &SeriesArgs) -> Out {
    let r = resolve(engine, &a.sel)?;
    let text = match a.categories.as_str() {
        _ if a.rules_text.is_some() => a.rules_text.clone(),
        "internet2" | "apps" | "brownlee" | "classes" | "proto" | "protocols" => None,
        path => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the category rules {path}"))
                .map_err(usage)?,
        ),
    };
    // Only a rules file can name user-defined elements (the registry costs file reads).
    let custom = match text {
        Some(_) => engine.custom_fields(),
        None => flowdrill_model::CustomFields::default(),
    };
    let categories =
        run::CategorySet::parse(&a.categories, text.as_deref(), &custom).map_err(run_err)?;
    let bin_ms = match &a.bin {
        Some(b) => {
            let ms = units::parse_duration_ms(b).map_err(usage)?;
            if ms < 1000 {
                return Err(usage(anyhow::anyhow!("--bin {b}: bins are at least 1s")));
            }
            Some(ms)
        }
        None => None,
    };
    let local = a
        .local
        .iter()
        .map(|p| {
            p.parse::<flowdrill_model::Prefix>()
                .map_err(|_| usage(anyhow::anyhow!("--local '{p}' is not a prefix")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let p = run::SeriesParams {
        categories,
        bin_ms,
        value: run::SeriesValue::parse(&a.value).map_err(usage)?,
        local: (!local.is_empty()).then_some(local),
    };
    let key = format!(
        "series {} {:?} {:?} {:?}",
        a.categories, text, a.bin, p.value
    ) + &format!(" {:?}", p.local);
    finish(g, engine, &r, key, |e, s, b| run::series(e, s, b, &p))
}

fn dist(g: &Global, engine: &Engine, a: &DistArgs) -> Out {
    let r = resolve(engine, &a.sel)?;
    let p = run::DistParams { ignore: a.ignore };
    finish(g, engine, &r, format!("dist {}", a.ignore), |e, s, b| {
        run::dist(e, s, b, &p)
    })
}

fn compare(g: &Global, engine: &Engine, a: &CompareArgs) -> Out {
    let by = KeySpec::parse(&a.by).map_err(usage)?;
    let r = resolve(engine, &a.sel)?;
    let mut before = r.sel.clone();
    if !a.before_link.is_empty() {
        before.links = a.before_link.clone();
    }
    match &a.before_time {
        Some(t) => {
            let links = engine.links(&before).map_err(query_err)?;
            before.range = flowdrill_query::parse_range(t, engine.anchor(&links)).map_err(usage)?;
        }
        None if a.before_link.is_empty() => {
            let (s, e) = (r.sel.range.start, r.sel.range.end);
            if s == 0 || e == u64::MAX {
                return Err(usage(anyhow::anyhow!(
                    "compare needs a bounded --time (e.g. -1h) to compare with the period before it, or --before-time / --before-link"
                )));
            }
            before.range = s.saturating_sub(e - s)..s;
        }
        None => {}
    }
    let p = run::CompareParams { by, n: a.n, before };
    let key = format!("compare {p:?}");
    finish(g, engine, &r, key, |e, s, b| run::compare(e, s, b, &p))
}

fn scans(g: &Global, engine: &Engine, a: &ScansArgs) -> Out {
    let r = resolve(engine, &a.sel)?;
    let p = run::ScanParams { n: a.n };
    finish(g, engine, &r, format!("scans {}", a.n), |e, s, b| {
        run::scans(e, s, b, &p)
    })
}
