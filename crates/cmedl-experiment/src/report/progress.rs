//! `RUN/progress.png`, redrawn after every epoch while a run trains (as nnU-Net's
//! `progress.png`): mean training loss and validation Dice per epoch, with axes and a legend.

use cmedl_trainer::log::LogRecord;
use cmedl_trainer::{Observer, RunDir, StepProgress};

use crate::ExperimentError;

/// An [`Observer`] that passes everything on to `inner` and redraws the run's
/// `progress.png` at the end of every epoch.
pub struct ProgressFigure<'a> {
    run: RunDir,
    inner: &'a mut dyn Observer,
}

impl<'a> ProgressFigure<'a> {
    /// Watches the run in `run`, passing events on to `inner`.
    pub fn new(run: RunDir, inner: &'a mut dyn Observer) -> Self {
        Self { run, inner }
    }

    /// The figure's file.
    pub fn path(run: &RunDir) -> std::path::PathBuf {
        run.path().join("progress.png")
    }

    /// Draws the figure from the run's log now (written beside it and renamed over it).
    pub fn draw(run: &RunDir) -> Result<(), ExperimentError> {
        let (loss, dice) = run.epoch_curves();
        let teacher = super::figures::teacher_curve(run);
        let path = Self::path(run);
        let tmp = run
            .path()
            .join(format!(".progress.png.{}.tmp.png", std::process::id()));
        super::render::training_curves(&tmp, &loss, &dice, &teacher)?;
        std::fs::rename(&tmp, &path).map_err(|e| ExperimentError::write(&path, e))
    }
}

impl Observer for ProgressFigure<'_> {
    fn started(&mut self, first_step: usize, total_steps: usize) {
        self.inner.started(first_step, total_steps);
    }

    fn step(&mut self, progress: &StepProgress) {
        self.inner.step(progress);
    }

    fn record(&mut self, record: &LogRecord) {
        self.inner.record(record);
        if matches!(record, LogRecord::Epoch(_)) {
            // A figure that cannot be drawn (a full disk) must not stop training.
            if let Err(e) = Self::draw(&self.run) {
                tracing::warn!("progress.png not updated: {e}");
            }
        }
    }
}
