//! The store's one error type.
//!
//! Variants are named by cause. A user's mistake (a bad links file, a directory that is not a
//! store, an unknown link) says what to do next; a broken invariant is [`Error::Internal`] and
//! asks for a bug report. A file that cannot be read is [`Error::Corrupt`] and names the file.

use std::path::PathBuf;

/// Result alias of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The links (rules) file is not valid: position (1-based line and column, 0 when unknown)
    /// and what was expected.
    #[error("{file}:{line}:{column}: {message}")]
    Rules {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// The directory has no store marker.
    #[error(
        "{0} is not a flowdrill store (no _flowdrill-store.json): point --store at a store, or \
         create one with `flowdrill import --store DIR FILES` or `flowdrill generate --kind store \
         --store DIR`"
    )]
    NotAStore(PathBuf),

    /// `Store::create` on a directory that already holds something else.
    #[error("{0} exists and is not empty; choose a new or empty directory for a new store")]
    NotEmpty(PathBuf),

    /// The store or one of its files was written by a newer flowdrill.
    #[error(
        "{path} has store format version {found}, this flowdrill reads up to {supported}; upgrade flowdrill"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// A link name that neither the links file nor the store knows.
    #[error("unknown link '{name}'; known links: {known}")]
    UnknownLink { name: String, known: String },

    /// A caller's argument is out of range (bad time range, bad level...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A bin's budget cannot hold even an empty file.
    #[error(
        "link '{link}' level {level}: the budget of {budget} bytes per bin cannot hold a bin \
         file ({needed} bytes without records); raise the budget or the bin size in the links file"
    )]
    BudgetTooSmall {
        link: String,
        level: u8,
        budget: u64,
        needed: u64,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A bin file is truncated, corrupt or not one of ours. Reads skip it and report it.
    #[error("{path} is unreadable and was skipped: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    /// A broken invariant of the store.
    #[error("internal error in flowdrill-store: {0}; this is a bug, please report it")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl ToString) -> Error {
        Error::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
