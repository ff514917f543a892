//! The web UI in a real browser: `flowdrill serve` on a generated store, driven by
//! `web/tests/e2e.mjs` (playwright-core and Debian's chromium). It loads the page, brushes a
//! time range, drills into a prefix, goes back, hovers and clicks a heatmap cell, changes the
//! filter (a bad one shows its error), and saves a screenshot of each view under
//! `target/screenshots/`.
//!
//! Without node, chromium or playwright-core the test fails in CI (`CI` set) and is skipped
//! with a note otherwise. (It lives with the binary because the daemon's analyses are the
//! CLI's.)

mod common;

use common::daemon::Daemon;
use common::{generated, tmp};
use std::path::{Path, PathBuf};
use std::process::Command;

fn missing(what: &str) {
    let msg = format!(
        "the browser test needs {what}; scripts/setup-deps installs it (apt: nodejs npm chromium; npm ci in web/)"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    p.exists().then_some(p)
}

#[test]
fn the_web_ui_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let web = root.join("web");
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node");
    }
    let Some(chrome) = chromium() else {
        return missing("chromium (/usr/bin/chromium)");
    };
    if !web.join("node_modules/playwright-core").is_dir() {
        return missing("playwright-core in web/node_modules");
    }
    // A day's store would be slow in a debug build; an hour with the default (sampled)
    // budget shows estimates with their error.
    let store = generated(
        &tmp("ui"),
        "[defaults]\nbin = \"5m\"\nbudget = \"2MB\"\n",
        "40000",
        &["--seed", "5"],
    );
    let d = Daemon::start(&store, &[]);
    let shots = root.join("target/screenshots");
    let out = Command::new("node")
        .arg("tests/e2e.mjs")
        .arg(format!("{}/", d.url()))
        .arg(&shots)
        .env("CHROMIUM", &chrome)
        .current_dir(&web)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    for view in [
        "series",
        "series-brushed",
        "hhh",
        "hhh-drilled",
        "hhh2-hover",
        "filter-error",
        "top",
        "dist",
        "compare",
        "scans",
    ] {
        let p = shots.join(format!("{view}.png"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "screenshot {} missing or empty", p.display());
    }
    assert!(
        stdout.contains("ok: hovering a cell shows its numbers"),
        "{stdout}"
    );
}
