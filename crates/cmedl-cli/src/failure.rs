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

impl Failure {
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
