//! Experiments with CMEDL: train several modes, segmenters and translators on the same data and
//! seeds, predict and score the test split, compare every mode with `ct-only` on the same
//! cases, and write a report with figures.
//!
//! An experiment is an [`ExperimentConfig`] (`configs/experiments/*.json`); [`plan`] expands it
//! into [`RunPlan`]s, [`run_experiment`] trains what is not finished (resuming what was
//! interrupted), evaluates each run into [`CaseRow`]s and writes the report. The folder layout
//! is [`ExperimentDir`]'s.
//!
//! ```no_run
//! use cmedl_experiment::{run_experiment, ExperimentOptions, ExperimentOutcome};
//! use std::path::Path;
//!
//! let outcome = run_experiment(
//!     Path::new("configs/experiments/demo.json"),
//!     Path::new("runs/demo"),
//!     &ExperimentOptions::default(),
//! )?;
//! if let ExperimentOutcome::Report(report) = outcome {
//!     assert!(report.markdown.exists());
//! }
//! # Ok::<(), cmedl_experiment::ExperimentError>(())
//! ```

pub mod arms;
mod config;
mod evaluate;
mod layout;
pub mod lesions;
mod plan;
pub mod postprocess;
pub mod report;
mod runner;
pub mod study;

use std::path::{Path, PathBuf};

pub use config::{BaseConfig, ExperimentConfig, ExperimentData};
pub use evaluate::{
    compare, evaluate_dirs, evaluate_masks, evaluate_pair, image_files, summaries, write_csv,
    CaseRow, Comparison, Metric, RunResults, Scores, Summaries,
};
pub use layout::ExperimentDir;
pub use plan::{plan, RunPlan};
pub use runner::{
    plan_experiment, run_experiment, ExperimentOptions, ExperimentOutcome, RunSelection,
};

/// Errors of experiments, evaluation and reports.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// An invalid experiment, bad input files or options.
    #[error("{0}")]
    Input(String),
    /// A volume or dataset could not be read.
    #[error(transparent)]
    Io(#[from] cmedl_io::IoError),
    /// Training or inference failed.
    #[error(transparent)]
    Train(#[from] cmedl_trainer::TrainError),
    /// The phantom cohort could not be generated.
    #[error(transparent)]
    Phantom(#[from] cmedl_phantom::PhantomError),
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A figure could not be drawn.
    #[error("{0}")]
    Figure(String),
}

impl ExperimentError {
    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn input(path: &Path, what: impl std::fmt::Display) -> Self {
        Self::Input(format!("{}: {what}", path.display()))
    }

    /// Whether the error comes from the user's input (exit code 2) rather than a failure inside.
    pub fn is_input_error(&self) -> bool {
        match self {
            Self::Input(_) | Self::Io(_) | Self::Phantom(_) => true,
            Self::Train(e) => e.is_input_error(),
            Self::Write { .. } | Self::Figure(_) => false,
        }
    }

    /// The message of an interrupted training, when that is what this is.
    pub fn interrupted(&self) -> Option<&str> {
        match self {
            Self::Train(cmedl_trainer::TrainError::Interrupted(m)) => Some(m),
            _ => None,
        }
    }
}

/// Writes `value` as pretty JSON with a final newline.
pub(crate) fn write_json(
    path: &Path,
    value: &impl serde::Serialize,
) -> Result<(), ExperimentError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        ExperimentError::write(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    write_atomic(path, (text + "\n").as_bytes())
}

/// Writes a file whole or not at all: a unique temporary file beside it, flushed, renamed over
/// it (a crash leaves the old file or the new one, never a torn one).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExperimentError> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| ExperimentError::write(path, e))
}

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExperimentError::input(path, e))?;
    serde_json::from_str(&text).map_err(|e| ExperimentError::input(path, e))
}

/// Creates a folder (and its parents).
pub(crate) fn create_dir(path: &Path) -> Result<(), ExperimentError> {
    std::fs::create_dir_all(path).map_err(|e| ExperimentError::write(path, e))
}
