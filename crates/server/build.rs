//! Builds the web UI (`web/` at the workspace root) with npm and esbuild into `OUT_DIR`, where
//! `assets.rs` embeds it. `npm ci` runs when `web/node_modules` is missing or older than the
//! lock file. Without node/npm the build still succeeds with a page that says how to get the
//! UI, unless FLOWDRILL_REQUIRE_UI or CI is set, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for p in [
        "src",
        "index.html",
        "app.css",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=FLOWDRILL_REQUIRE_UI");
    println!("cargo:rerun-if-env-changed=CI");
    copy(&web.join("index.html"), &out.join("index.html"));
    copy(&web.join("app.css"), &out.join("app.css"));
    if let Err(e) = bundle(&web, &out) {
        if std::env::var_os("FLOWDRILL_REQUIRE_UI").is_some() || std::env::var_os("CI").is_some() {
            panic!("building the web UI: {e}");
        }
        println!(
            "cargo:warning=the web UI was not built ({e}); the daemon serves a page saying so. Install nodejs and npm (scripts/setup-deps) and build again."
        );
        let msg = format!(
            "document.body.textContent = {:?};",
            format!(
                "The flowdrill web UI was not built into this binary: {e}. Install nodejs and npm (scripts/setup-deps) and rebuild; the API at /api/v1/ works."
            )
        );
        std::fs::write(out.join("app.js"), msg).unwrap();
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn bundle(web: &Path, out: &Path) -> Result<(), String> {
    let modules = web.join("node_modules");
    let stamp = modules.join(".package-lock.json");
    if mtime(&stamp).is_none() || mtime(&stamp) < mtime(&web.join("package-lock.json")) {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(web))?;
    }
    let esbuild = modules.join(".bin/esbuild");
    run(Command::new(&esbuild)
        .arg("src/main.ts")
        .args(["--bundle", "--minify", "--format=iife", "--target=es2020"])
        .arg(format!("--outfile={}", out.join("app.js").display()))
        .current_dir(web))
}
