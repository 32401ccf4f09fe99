//! Training and inference of CMEDL and its baselines.
//!
//! A run trains, from scratch and together, what its [`config::Mode`] needs: the unpaired
//! translator (CycleGAN or CUT), the teacher on translated images (and on real labelled
//! teacher-modality images), and the student on the student modality, with the distillation
//! term between their feature maps. Everything a run needs is in its [`TrainConfig`]; batches,
//! dropout and pools are functions of (seed, step), and checkpoints carry the optimiser state,
//! so `--resume` continues exactly.
//!
//! A run lives in a [`RunDir`] (config, log, checkpoints); a [`Trainer`] advances it step by
//! step and writes [`log::LogRecord`]s; an [`Observer`] sees the progress. The library reports
//! through `tracing` events and never prints.
//!
//! ```no_run
//! use cmedl_trainer::{RunOptions, Silent, TrainConfig, Trainer};
//!
//! let mut config = TrainConfig::cpu_small();
//! config.data.root = "phantom".into();
//! let trainer = Trainer::new(&config, std::path::Path::new("runs/cmedl"))?;
//! let summary = trainer.run(&RunOptions::default(), &mut Silent)?;
//! assert!(summary.dir.is_finished());
//! # Ok::<(), cmedl_trainer::TrainError>(())
//! ```

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod export;
pub mod infer;
pub mod log;
pub mod networks;
pub mod optim;
mod parallel;
pub mod prepare;
mod presets;
pub mod run_dir;
pub mod step;
#[cfg(test)]
mod testing;
pub mod trainer;
pub mod validate;

use std::path::{Path, PathBuf};

pub use config::{LabelSet, Mode, Precision, TrainConfig};
pub use device::{DeviceError, DeviceSpec};
pub use run_dir::RunDir;
pub use trainer::{EpochSamples, Observer, RunOptions, RunSummary, Silent, StepProgress, Trainer};

/// libtorch's random generator is global: unit tests that draw from it take turns.
#[cfg(test)]
pub(crate) static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Errors of training and inference.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An invalid configuration.
    #[error("config: {0}")]
    Config(String),
    /// Data that cannot be used.
    #[error("{0}")]
    Data(String),
    /// A volume or dataset file could not be read.
    #[error(transparent)]
    Io(#[from] cmedl_io::IoError),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A network rejected its input or configuration.
    #[error(transparent)]
    Model(#[from] cmedl_models::ModelError),
    /// A loss rejected its input.
    #[error(transparent)]
    Loss(#[from] cmedl_losses::LossError),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The requested device is not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A checkpoint is missing, truncated or does not fit.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A loss term became NaN or infinite in a step (nothing was updated).
    #[error("loss term '{term}' is {value} at step {step}")]
    NonFiniteTerm {
        /// The term.
        term: String,
        /// Its value.
        value: f64,
        /// The 1-based step.
        step: usize,
    },
    /// Training stopped on non-finite losses.
    #[error("{0}")]
    NonFinite(String),
    /// Training was interrupted after saving `latest`.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// The device ran out of memory in a training step.
    #[error("out of device memory at step {step} (batch {batch}): lower train.batch, data.size or the network widths ({message})")]
    OutOfMemory {
        /// The 1-based step.
        step: usize,
        /// The global batch.
        batch: usize,
        /// libtorch's message (first line).
        message: String,
    },
    /// A collective of data-parallel training failed (a process died, a timeout).
    #[error("data-parallel training: {0}")]
    Parallel(String),
    /// libtorch failed inside a training step (an error it raises as a panic in tch).
    #[error("libtorch failed at step {step}: {message}")]
    StepFailed {
        /// The 1-based step.
        step: usize,
        /// libtorch's message (first line).
        message: String,
    },
}

/// Whether a libtorch error message reports exhausted (device or host) memory.
pub fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("can't allocate memory")
}

/// The text of a panic's payload, first line only (libtorch appends a C++ backtrace).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    // libtorch appends a C++ backtrace: with real line breaks, or escaped ones when the error
    // was formatted with `Debug` (`unwrap` of a `TchError`).
    let end = [text.find('\n'), text.find("\\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    text[..end].trim().to_owned()
}

impl TrainError {
    pub(crate) fn file(path: &Path, source: std::io::Error) -> Self {
        Self::File {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The message without the variant's prefix (`config: `), for wrapping in another error.
    pub fn message(&self) -> String {
        match self {
            Self::Config(m) | Self::Data(m) | Self::Checkpoint(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// Prefixes data errors with the file they concern.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Data(m) => Self::Data(format!("{}: {m}", path.display())),
            other => other,
        }
    }

    /// Whether the error comes from the user's input (exit code 2) rather than a failure inside.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Data(_)
                | Self::Io(_)
                | Self::Device(_)
                | Self::Checkpoint(_)
                | Self::Model(_)
        )
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    #[test]
    fn libtorch_panics_become_one_line_messages_and_oom_is_recognised() {
        let payload = std::panic::catch_unwind(|| {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            let b = tch::Tensor::zeros([4, 5], (tch::Kind::Float, tch::Device::Cpu));
            let _ = a.matmul(&b); // shapes do not fit: tch panics with libtorch's error
        })
        .unwrap_err();
        let message = panic_message(payload.as_ref());
        assert!(!message.contains('\n'));
        assert!(message.contains("cannot be multiplied"), "{message}");
        assert!(!message.contains("frame #"), "no C++ backtrace: {message}");
        assert!(!is_out_of_memory(&message));
        assert!(is_out_of_memory(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)"
        ));
        assert!(is_out_of_memory(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ));
    }
}
