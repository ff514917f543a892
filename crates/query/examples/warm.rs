//! Times analyses in one long-lived engine, as the console and the daemon run them: the first
//! run reads the bins (cold), the following ones find the decoded columns in the engine's
//! cache (warm). Prints one JSON object per analysis.
//!
//! `cargo run --release -p flowdrill-query --example warm -- STORE [RUNS]`

use flowdrill_analysis::hhh::IpLevels;
use flowdrill_query::run::{self, Dim, KeySpec};
use flowdrill_query::{Bound, Engine, Metric, Selection};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: warm STORE [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let engine = Engine::new(flowdrill_store::Store::open(dir)?, 4 << 30);
    let all = Selection::all();
    let tcp443 = Selection {
        filter: Some(flowdrill_filter::parse("proto tcp and dst port 443")?),
        ..Selection::all()
    };
    let flows = Selection {
        metric: Metric::Flows,
        ..Selection::all()
    };
    type Job<'a> = (&'a str, Box<dyn Fn() -> Result<usize, run::RunError> + 'a>);
    let e = &engine;
    let jobs: Vec<Job> = vec![
        (
            "top srcip bytes",
            Box::new(|| {
                let p = run::TopParams {
                    by: KeySpec::parse("srcip")?,
                    n: 20,
                };
                Ok(run::top(e, &all, Bound::Exact, &p)?.sections[0].rows.len())
            }),
        ),
        (
            "top dstport flows",
            Box::new(|| {
                let p = run::TopParams {
                    by: KeySpec::parse("dstport")?,
                    n: 20,
                };
                Ok(run::top(e, &flows, Bound::Exact, &p)?.sections[0]
                    .rows
                    .len())
            }),
        ),
        (
            "top srcip/24 bytes",
            Box::new(|| {
                let p = run::TopParams {
                    by: KeySpec::parse("srcip/24")?,
                    n: 20,
                };
                Ok(run::top(e, &all, Bound::Exact, &p)?.sections[0].rows.len())
            }),
        ),
        (
            "filter tcp/443 + top dstip",
            Box::new(|| {
                let p = run::TopParams {
                    by: KeySpec::parse("dstip")?,
                    n: 20,
                };
                Ok(run::top(e, &tcp443, Bound::Exact, &p)?.sections[0]
                    .rows
                    .len())
            }),
        ),
        (
            "hhh src 5%",
            Box::new(|| {
                let p = run::HhhParams {
                    dim: Dim::parse("src", &IpLevels::every(), None)?,
                    share: 0.05,
                    labels: None,
                };
                Ok(run::hhh(e, &all, Bound::Exact, &p)?.sections[0].rows.len())
            }),
        ),
        (
            "hhh src 5%, 100k-record sample",
            Box::new(|| {
                let p = run::HhhParams {
                    dim: Dim::parse("src", &IpLevels::every(), None)?,
                    share: 0.05,
                    labels: None,
                };
                Ok(run::hhh(e, &all, Bound::Records(100_000), &p)?.sections[0]
                    .rows
                    .len())
            }),
        ),
    ];
    let records = engine.load(&all, &[], Bound::Exact)?.len();
    // `WARM_ONLY=substring` runs only the matching analyses (for profiling one of them).
    let only = std::env::var("WARM_ONLY").unwrap_or_default();
    for (name, job) in jobs.iter().filter(|(n, _)| n.contains(only.as_str())) {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs.max(2) {
            let t = Instant::now();
            rows = job()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let cold = times[0];
        let mut warm = times[1..].to_vec();
        warm.sort_by(f64::total_cmp);
        println!(
            "{{\"analysis\":\"{name}\",\"records\":{records},\"rows\":{rows},\"first_s\":{cold:.4},\"warm_median_s\":{:.4},\"warm_min_s\":{:.4},\"warm_max_s\":{:.4}}}",
            warm[warm.len() / 2],
            warm[0],
            warm[warm.len() - 1]
        );
    }
    Ok(())
}
