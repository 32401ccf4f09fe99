//! `RUN/progress.png`, redrawn after every epoch while a run trains (as nnU-Net's
//! `progress.png`): mean training loss and validation Dice per epoch, with axes and a legend;
//! and `RUN/samples/epoch_NNN.png`: a fixed validation slice with the reference and the
//! predictions (and the translation with the teacher's prediction) of that epoch.

use cmedl_trainer::log::LogRecord;
use cmedl_trainer::{EpochSamples, Observer, RunDir, StepProgress};
use image::Rgb;

use super::chart::{text_width, Canvas};
use super::render::{montage_image, Panel};
use crate::ExperimentError;

/// Contour colours of the samples.
const REFERENCE: [u8; 3] = [0, 200, 0];
const PREDICTION: [u8; 3] = [230, 30, 30];
const TEACHER: [u8; 3] = [40, 120, 255];

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

/// Draws `RUN/samples/epoch_NNN.png`: the image with the reference (green) and the
/// prediction (red), and, when there is one, the translation with the reference and the
/// teacher's prediction (blue); a legend underneath.
pub fn draw_samples(run: &RunDir, s: &EpochSamples) -> Result<std::path::PathBuf, ExperimentError> {
    let dir = run.path().join("samples");
    crate::create_dir(&dir)?;
    let window = cmedl_io::Window { lo: -1.0, hi: 1.0 };
    let mut panels = vec![Panel {
        slice: &s.image,
        window,
        contours: vec![(&s.reference, REFERENCE), (&s.prediction, PREDICTION)],
    }];
    let mut legend = vec![("reference", REFERENCE), ("prediction", PREDICTION)];
    if let (Some(t), Some(teacher)) = (&s.translation, &s.teacher) {
        panels.push(Panel {
            slice: t,
            window,
            contours: vec![(&s.reference, REFERENCE), (teacher, TEACHER)],
        });
        legend.push(("teacher on the translation (right)", TEACHER));
    }
    let scale = (256 / s.size.max(1)).clamp(1, 8) as u32;
    let montage = montage_image(&panels, s.size, s.size, scale);
    let mut canvas = Canvas::new(montage.width().max(320), montage.height() + 34);
    canvas.blit(&montage, 0, 0);
    let mut x = 4;
    let y = montage.height() as i32 + 6;
    for (label, colour) in &legend {
        for d in 0..8 {
            canvas.line((x, y + d), (x + 8, y + d), Rgb(*colour));
        }
        canvas.text((x + 12, y), label, Rgb([0, 0, 0]));
        x += 24 + text_width(label);
    }
    canvas.text((4, y + 14), &format!("epoch {}", s.epoch), Rgb([0, 0, 0]));
    let path = dir.join(format!("epoch_{:03}.png", s.epoch));
    canvas.save(&path)?;
    Ok(path)
}

impl Observer for ProgressFigure<'_> {
    fn started(&mut self, first_step: usize, total_steps: usize) {
        self.inner.started(first_step, total_steps);
    }

    fn step(&mut self, progress: &StepProgress) {
        self.inner.step(progress);
    }

    fn samples(&mut self, samples: &EpochSamples) {
        self.inner.samples(samples);
        if let Err(e) = draw_samples(&self.run, samples) {
            tracing::warn!("samples of epoch {} not drawn: {e}", samples.epoch);
        }
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
