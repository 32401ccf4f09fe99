//! The error type of cmedl-io: every variant names the file it is about.

use std::path::{Path, PathBuf};

/// Errors reading, writing or transforming volumes.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system refused (missing file, permissions, disk full).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid file of its format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before the data its header announces.
    #[error(
        "{path}: truncated: the header announces {expected} bytes of data but only {got} are there"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes announced.
        expected: u64,
        /// Bytes found.
        got: u64,
    },
    /// The header announces more voxels than the configured limit.
    #[error("{path}: the header announces {voxels} voxels, more than the limit of {limit} (raise it with ReadOptions::max_voxels if the file is genuine)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Voxels announced.
        voxels: u64,
        /// The limit.
        limit: u64,
    },
    /// A valid file using a feature cmedl does not support.
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// A buffer would exceed the memory budget ([`crate::memory`]).
    #[error("{what} needs {}, more than the memory budget of {} (raise it with --max-memory if the machine has the memory)", crate::memory::human(*bytes), crate::memory::human(u128::from(*limit)))]
    OverBudget {
        /// The buffer and its file.
        what: String,
        /// Bytes it needs.
        bytes: u128,
        /// The budget.
        limit: u64,
    },
    /// An operation on volumes whose geometry does not fit.
    #[error("{0}")]
    Geometry(String),
}

impl IoError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, what: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Result with [`IoError`].
pub type Result<T> = std::result::Result<T, IoError>;
