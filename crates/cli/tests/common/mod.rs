//! Helpers shared by the binary's test files: run `flowdrill`, temporary directories, the
//! shared data, and generated stores. Each test binary uses a part of them.
#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with `args` (never with the caller's `$FLOWDRILL_STORE`).
pub fn flowdrill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowdrill"))
        .args(args)
        .env_remove("FLOWDRILL_STORE")
        .output()
        .expect("the flowdrill binary runs")
}

/// Runs the binary, which must succeed; its standard output.
pub fn ok(args: &[&str]) -> String {
    let o = flowdrill(args);
    assert!(
        o.status.success(),
        "flowdrill {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A fresh, empty temporary directory for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flowdrill-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `../shared/data` (or `$FLOWDRILL_DATA`); `None`, saying SKIPPED, when it is absent.
pub fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("FLOWDRILL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: shared data not found at {}", p.display());
        None
    }
}

/// A links file whose budget never samples the stores of the tests.
pub const UNSAMPLED: &str = "[defaults]\nbin = \"5m\"\nbudget = \"20GB\"\n";

/// `generate --kind store --flows FLOWS --duration 1h EXTRA...` into `dir/store`, with the links
/// file `links`; the store's path.
pub fn generated(dir: &Path, links: &str, flows: &str, extra: &[&str]) -> PathBuf {
    let file = dir.join("links.toml");
    std::fs::write(&file, links).unwrap();
    let store = dir.join("store");
    let mut args = vec![
        "--quiet",
        "--store",
        store.to_str().unwrap(),
        "generate",
        "--kind",
        "store",
        "--flows",
        flows,
        "--duration",
        "1h",
        "--links",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    store
}
