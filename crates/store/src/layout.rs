//! Where things are on disk, and how they get there safely.
//!
//! ```text
//! DIR/_flowdrill-store.json                     marker: format name and version
//! DIR/_links.toml                               the links file in force (optional)
//! DIR/_catalog.json                             the catalog (a cache; rebuilt when missing)
//! DIR/link=NAME/level=L/date=YYYY-MM-DD/flows-YYYYMMDDhhmm.parquet
//! ```
//!
//! Names sort by time (nfdump's `YYYYMMDDhhmm` of the bin start, UTC) and the `key=value`
//! directories are hive-style partitions, so `read_parquet('DIR/**/*.parquet',
//! hive_partitioning=true)` gives `link`, `level` and `date` columns.
//!
//! Every file is written by [`write_atomic`]: to a temporary name starting with `.tmp.` in the
//! same directory, fsync'd, renamed over the final name, and the directory fsync'd. A reader
//! therefore sees the old file or the new one, never a part; a crash leaves at most a `.tmp.`
//! file, which listings ignore and `remove_stale_temps` deletes once its writer is gone.

use crate::error::{Error, Result};
use flowdrill_model::time::{civil_from_days, stamp_minutes};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

// Names starting with `_` (or `.`) are skipped by pyarrow, pandas and Spark when they read the
// directory as a dataset, so the store's own files do not get in their way.
pub const MARKER: &str = "_flowdrill-store.json";
pub const LINKS_FILE: &str = "_links.toml";
pub const CATALOG: &str = "_catalog.json";
const TMP_PREFIX: &str = ".tmp.";

/// The relative path of a bin file.
pub fn bin_path(link: &str, level: u8, bin_start: u64) -> PathBuf {
    let (y, m, d) = civil_from_days((bin_start / 86_400_000) as i64);
    PathBuf::from(format!("link={link}"))
        .join(format!("level={level}"))
        .join(format!("date={y:04}-{m:02}-{d:02}"))
        .join(format!("flows-{}.parquet", stamp_minutes(bin_start)))
}

/// Parses `link=NAME/level=L/date=…/flows-….parquet` (relative) into (link, level).
pub fn parse_bin_path(rel: &Path) -> Option<(String, u8)> {
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    let [link, level, date, file] = parts.as_slice() else {
        return None;
    };
    let link = link.strip_prefix("link=")?;
    let level: u8 = level.strip_prefix("level=")?.parse().ok()?;
    date.strip_prefix("date=")?;
    (file.starts_with("flows-") && file.ends_with(".parquet")).then(|| (link.to_string(), level))
}

/// fsyncs a directory so that a rename or creation in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates `dir` and its parents, fsyncing each new directory's parent.
pub fn create_dirs(dir: &Path) -> Result<()> {
    // A relative path's last parent is "" (the working directory, which exists).
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    if let Some(parent) = parent {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    if let Some(parent) = parent {
        sync_dir(parent)?;
    }
    Ok(())
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (see the module doc), creating directories as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no directory", path.display())))?;
    create_dirs(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Internal(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}.{}.{name}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let res = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// True for names of temporary files.
pub fn is_temp(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
}

/// The process id in a temporary file's name.
fn temp_pid(name: &str) -> Option<u32> {
    name.strip_prefix(TMP_PREFIX)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Deletes the temporary file `path` if the process that was writing it is gone (Linux:
/// `/proc/PID` is absent). Returns whether it was deleted.
pub fn remove_stale_temp(path: &Path) -> bool {
    let Some(pid) = path.file_name().and_then(|n| n.to_str()).and_then(temp_pid) else {
        return false;
    };
    let proc = Path::new("/proc");
    if !proc.is_dir() || proc.join(pid.to_string()).exists() {
        return false;
    }
    fs::remove_file(path).is_ok()
}

/// Deletes a bin file and the date and level directories it leaves empty.
pub fn remove_bin(root: &Path, rel: &Path) -> Result<()> {
    let path = root.join(rel);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    let mut dir = path.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs::remove_dir(&d).is_err() {
            break; // not empty
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    if let Some(parent) = path.parent().filter(|p| p.exists()) {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_paths_are_hive_partitions_that_sort_by_time() {
        let t = flowdrill_model::time::ms_from_civil(2024, 1, 1, 0, 5, 0);
        let p = bin_path("campus", 0, t);
        assert_eq!(
            p,
            PathBuf::from("link=campus/level=0/date=2024-01-01/flows-202401010005.parquet")
        );
        assert_eq!(parse_bin_path(&p), Some(("campus".to_string(), 0)));
        assert_eq!(
            parse_bin_path(Path::new("link=x/level=0/oops.parquet")),
            None
        );
        let later = bin_path("campus", 0, t + 86_400_000);
        assert!(later > p);
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.bin")]);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        let dead = dir.path().join(".tmp.99999999.0.flows-x.parquet");
        fs::write(&dead, b"partial").unwrap();
        let live = dir
            .path()
            .join(format!(".tmp.{}.0.flows-y.parquet", std::process::id()));
        fs::write(&live, b"partial").unwrap();
        assert!(remove_stale_temp(&dead));
        assert!(!remove_stale_temp(&live));
        assert!(live.exists() && !dead.exists());
    }
}
