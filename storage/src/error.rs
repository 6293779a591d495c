//! The storage layer's errors. Every message is one line that names what failed and,
//! for anything read from disk, the file and the byte offset, so an operator can act on
//! it (see docs/storage.md, "When a node refuses to start").

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong. Cloneable, because one failed write or fdatasync is reported to
/// every caller whose records were in that batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The data dir is missing, not a directory, or not writable.
    #[error("data dir {}: {reason}", dir.display())]
    DataDir { dir: PathBuf, reason: String },

    /// A file of the data dir is damaged where a crash cannot explain it.
    #[error("{}: byte {offset}: {reason}; refusing to start (see docs/storage.md)", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The data dir was written by another node.
    #[error("{}: byte {offset}: this data dir belongs to node {found}, not {expected}", file.display())]
    WrongNode {
        file: PathBuf,
        offset: u64,
        found: String,
        expected: String,
    },

    /// The data dir was written by a node of another cluster.
    #[error("{}: byte {offset}: this data dir belongs to cluster {found}, not {expected}", file.display())]
    WrongCluster {
        file: PathBuf,
        offset: u64,
        found: String,
        expected: String,
    },

    /// A file written by another version of the on-disk format.
    #[error("{}: byte {offset}: unknown format version {found} (this build reads version {supported})", file.display())]
    UnknownVersion {
        file: PathBuf,
        offset: u64,
        found: u32,
        supported: u32,
    },

    /// A write failed (a full disk, an I/O error). Nothing of it is acknowledged and the
    /// file was cut back to its last good length.
    #[error("{}: byte {offset}: write failed, nothing acknowledged: {message}", file.display())]
    Write {
        file: PathBuf,
        offset: u64,
        kind: io::ErrorKind,
        message: String,
    },

    /// An fsync/fdatasync failed. The kernel may have dropped the dirty pages, so
    /// nothing written since the last good sync can be trusted: the log is poisoned.
    #[error("{}: fsync failed, the log takes no more writes: {message}", file.display())]
    Sync {
        file: PathBuf,
        kind: io::ErrorKind,
        message: String,
    },

    /// An earlier fsync (or a failed clean-up after a failed write) poisoned the log.
    #[error("the log is poisoned by an earlier failure, restart the node: {0}")]
    Poisoned(Box<Error>),

    /// Any other I/O failure, with what was being done.
    #[error("{context}: {message}")]
    Io {
        context: String,
        kind: io::ErrorKind,
        message: String,
    },

    /// A record larger than the configured maximum.
    #[error("record of {size} bytes is larger than the maximum of {max} bytes")]
    RecordTooLarge { size: usize, max: u32 },

    /// A snapshot position outside what the log holds.
    #[error(
        "snapshot position {position} is outside the log (snapshot at {current}, next index {next})"
    )]
    BadSnapshotPosition {
        position: u64,
        current: u64,
        next: u64,
    },

    /// Serialising or deserialising a payload failed.
    #[error("payload {0}")]
    Payload(String),

    /// The group-commit thread has stopped (the log was closed or its thread panicked).
    #[error("the storage thread has stopped")]
    Stopped,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error with what was being done and on which path.
    pub(crate) fn io(doing: &str, path: &Path, err: &io::Error) -> Error {
        Error::Io {
            context: format!("{} {}", doing, path.display()),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// True if this error means the log must not be used any more.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned(_) | Error::Sync { .. })
    }
}

/// Shows bytes from disk (a node or cluster name) as a quoted string, escaping anything
/// that is not printable UTF-8, so a hostile or damaged name cannot break the one-line
/// message.
pub(crate) fn show_name(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}
