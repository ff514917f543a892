//! The result cache: finished reports on disk, shared by the CLI, the console and the daemon.
//!
//! A report is keyed by a hash of everything that determines it: the analysis and its
//! parameters, the selection (links, range, filter, metric), the bound, and the identity
//! (path, size, modification time) of every bin file the selection's time range touches on
//! its links. A bin rewritten by a late import or removed by expiry changes the key, so a stale
//! report is never served; old entries are simply never asked for again and are pruned by age.
//!
//! Entries live in `STORE/.cache/results/KEY.json`, written atomically (temporary file,
//! rename). A corrupt or unreadable entry is a miss.

use crate::report::Report;
use crate::{Bound, Engine, QueryError, Selection};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Entries older than this are deleted when a new one is written.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Bumped when the report layout changes, so that old entries miss.
const VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// The cache of a store (`STORE/.cache/results`).
    pub fn for_store(store: &flowdrill_store::Store) -> ResultCache {
        ResultCache::at(store.root().join(".cache").join("results"))
    }
    pub fn at(dir: impl AsRef<Path>) -> ResultCache {
        ResultCache {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// The key of an analysis on a selection.
    pub fn key(
        &self,
        engine: &Engine,
        sel: &Selection,
        bound: Bound,
        params: &str,
    ) -> Result<String, QueryError> {
        let mut h = Fnv128::default();
        VERSION.hash(&mut h);
        params.hash(&mut h);
        let links = engine.links(sel)?;
        links.hash(&mut h);
        sel.range.hash(&mut h);
        sel.filter
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_default()
            .hash(&mut h);
        sel.metric.hash(&mut h);
        format!("{bound:?}").hash(&mut h);
        engine.seed.hash(&mut h);
        // Spark answers equal the embedded engine's only up to the order of floating-point
        // additions: they are cached apart.
        if let Some(spark) = engine.spark() {
            "spark".hash(&mut h);
            spark.master.hash(&mut h);
            spark.store_url.hash(&mut h);
        }
        for b in engine.store().all_bins() {
            if links.contains(&b.link) && b.start < sel.range.end && b.end > sel.range.start {
                b.path.hash(&mut h);
                b.size.hash(&mut h);
                b.mtime_ns.hash(&mut h);
            }
        }
        Ok(format!("{:016x}{:016x}", h.a, h.b))
    }

    /// The cached report, if any.
    pub fn get(&self, key: &str) -> Option<Report> {
        let text = std::fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Stores a report.
    pub fn put(&self, key: &str, report: &Report) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".tmp.{}.{key}.json", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(report)?)?;
        std::fs::rename(&tmp, self.dir.join(format!("{key}.json")))?;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > MAX_AGE);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Two independent 64-bit FNV-1a lanes: a stable hash (std's SipHash keys are per process).
#[derive(Debug)]
struct Fnv128 {
    a: u64,
    b: u64,
}

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128 {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
    }
}

impl Hasher for Fnv128 {
    fn write(&mut self, bytes: &[u8]) {
        for &x in bytes {
            self.a = (self.a ^ x as u64).wrapping_mul(0x100_0000_01b3);
            self.b = (self.b ^ x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn finish(&self) -> u64 {
        self.a
    }
}
