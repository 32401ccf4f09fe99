//! Errors of the commands and the exit codes they map to.

use std::fmt;

use cmedl_experiment::ExperimentError;
use cmedl_trainer::TrainError;

/// An error and the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or usage: exit code 2.
    Input(String),
    /// Something failed inside cmedl or libtorch: exit code 1.
    Internal(String),
    /// Stopped by the user after saving state: exit code 130.
    Interrupted(String),
}

/// The message and place of the last panic, recorded by the hook.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Records panics (their first line and place) instead of printing them: parsers catch panics of the libraries they call
/// and turn them into errors, and a panic that reaches `main` is reported by
/// [`Failure::from_panic`] in one line.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = cmedl_trainer::panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::debug!("panic: {message}{place}");
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(format!("{message}{place}"));
        }
    }));
}

impl Failure {
    /// The failure of a panic that reached `main`.
    pub fn from_panic() -> Self {
        let message = LAST_PANIC
            .lock()
            .ok()
            .and_then(|mut last| last.take())
            .unwrap_or_else(|| "unknown panic".to_owned());
        if cmedl_trainer::is_out_of_memory(&message) {
            return Self::Internal(format!(
                "out of device memory: lower train.batch, data.size or the network widths ({message})"
            ));
        }
        Self::Internal(format!(
            "internal error: {message} (please report this, with the command that caused it)"
        ))
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::Internal(_) => 1,
            Self::Interrupted(_) => 130,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(m) | Self::Internal(m) => f.write_str(m),
            Self::Interrupted(m) => write!(f, "interrupted: {m}"),
        }
    }
}

impl From<cmedl_io::IoError> for Failure {
    fn from(e: cmedl_io::IoError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<cmedl_trainer::DeviceError> for Failure {
    fn from(e: cmedl_trainer::DeviceError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<cmedl_models::ModelError> for Failure {
    fn from(e: cmedl_models::ModelError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<cmedl_phantom::PhantomError> for Failure {
    fn from(e: cmedl_phantom::PhantomError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Interrupted(m) => Self::Interrupted(m),
            e if e.is_input_error() => Self::Input(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<ExperimentError> for Failure {
    fn from(e: ExperimentError) -> Self {
        match e {
            ExperimentError::Train(t) => t.into(),
            e if e.is_input_error() => Self::Input(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// Result of a command.
pub type CmdResult = Result<(), Failure>;
