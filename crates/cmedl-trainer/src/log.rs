//! The training log `metrics.jsonl`: one JSON record per line, written and read through
//! [`LogRecord`] (a `kind`-tagged enum), so writers and readers cannot drift apart.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::TrainError;

/// One line of the training log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogRecord {
    /// Loss terms of a logged step (every `train.log_every` steps and at epoch ends).
    Step(StepRecord),
    /// The end of an epoch: mean losses and validation.
    Epoch(EpochRecord),
}

impl LogRecord {
    /// The global step (1-based) the record was written after.
    pub fn step(&self) -> usize {
        match self {
            Self::Step(s) => s.step,
            Self::Epoch(e) => e.step,
        }
    }
}

/// Loss terms of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global steps done.
    pub step: usize,
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the step.
    pub lr: f64,
    /// Loss terms by name (`total` included).
    pub losses: BTreeMap<String, f64>,
    /// Training slices per second since the previous step record.
    pub slices_per_s: f64,
}

/// The end of an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Global steps done.
    pub step: usize,
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Validation Dice after the epoch (NaN, written as null, without validation cases).
    #[serde(deserialize_with = "null_as_nan")]
    pub val_dice: f64,
    /// Best validation Dice so far (NaN, written as null, without validation cases).
    #[serde(deserialize_with = "null_as_nan")]
    pub best_dice: f64,
    /// The teacher's validation Dice on translations of the student's validation images
    /// (modes with a teacher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_dice_pmri: Option<f64>,
    /// The teacher's validation Dice on labelled real teacher-modality images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_dice_real: Option<f64>,
    /// Share of λ_d in effect during the epoch (warm-up and teacher gate; modes that distil).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_scale: Option<f64>,
    /// Mean loss terms of the epoch's steps.
    pub losses: BTreeMap<String, f64>,
    /// Seconds since this invocation of training started.
    pub wall_s: f64,
    /// The data-parallel launch that trained the epoch (absent: one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<crate::run_dir::ParallelRecord>,
}

/// How a run's teacher stood against its student, epoch by epoch: CMEDL's premise is a
/// teacher that segments the translations better than the student segments the images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeacherLead {
    /// Epochs with both validation Dice values.
    pub epochs: usize,
    /// Of which the teacher on translations was ahead of the student.
    pub ahead: usize,
    /// The first epoch it was ahead (1-based).
    pub first_ahead: Option<usize>,
    /// The teacher's and the student's Dice at the last epoch with both.
    pub last: (f64, f64),
    /// Epochs trained with the hint at a non-zero weight (none: the mode does not distil).
    pub hint_epochs: Option<usize>,
}

impl TeacherLead {
    /// The lead over a run's epoch records (none when they record no teacher).
    pub fn of(epochs: &[EpochRecord]) -> Option<Self> {
        let both: Vec<(usize, f64, f64)> = epochs
            .iter()
            .filter_map(|e| {
                let t = e.teacher_dice_pmri.filter(|t| t.is_finite())?;
                e.val_dice.is_finite().then_some((e.epoch, t, e.val_dice))
            })
            .collect();
        let &(_, last_teacher, last_student) = both.last()?;
        let ahead: Vec<usize> = both
            .iter()
            .filter(|(_, t, s)| t > s)
            .map(|(e, _, _)| *e)
            .collect();
        let scales: Vec<f64> = epochs.iter().filter_map(|e| e.distill_scale).collect();
        Some(Self {
            epochs: both.len(),
            ahead: ahead.len(),
            first_ahead: ahead.first().copied(),
            last: (last_teacher, last_student),
            hint_epochs: (!scales.is_empty()).then(|| scales.iter().filter(|s| **s > 0.0).count()),
        })
    }

    /// "from epoch N (K of E epochs)" or "never (E epochs)".
    pub fn describe(&self) -> String {
        match self.first_ahead {
            Some(first) => format!(
                "from epoch {first} ({} of {} epochs)",
                self.ahead, self.epochs
            ),
            None => format!("never ({} epochs)", self.epochs),
        }
    }
}

/// JSON has no NaN: serde_json writes it as `null`, and this reads it back.
fn null_as_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Appends records to a log file.
pub struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl LogWriter {
    /// Opens `path` for appending (creating it).
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::file(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record as a line.
    pub fn write(&mut self, record: &LogRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(record)
            .map_err(|e| TrainError::file(&self.path, std::io::Error::other(e)))?;
        writeln!(self.file, "{line}").map_err(|e| TrainError::file(&self.path, e))
    }
}

/// The records of a log file; lines that do not parse (a torn last line) are skipped, and a
/// missing file has none.
pub fn read(path: &Path) -> Vec<LogRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Rewrites a log to the records up to global step `step`: what a resumed run keeps (a crash
/// may have left a torn line or records past the checkpoint it resumes from).
pub fn truncate_after(path: &Path, step: usize) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let mut out = String::new();
    for record in read(path).into_iter().filter(|r| r.step() <= step) {
        let line = serde_json::to_string(&record)
            .map_err(|e| TrainError::file(path, std::io::Error::other(e)))?;
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| TrainError::file(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize) -> LogRecord {
        LogRecord::Step(StepRecord {
            step,
            epoch: 1,
            lr: 2e-4,
            losses: [("total".to_owned(), 1.25), ("seg_student".to_owned(), 0.5)].into(),
            slices_per_s: 10.0,
        })
    }

    #[test]
    fn records_are_kind_tagged_json_lines() {
        let line = serde_json::to_string(&step(3)).unwrap();
        assert_eq!(
            line,
            r#"{"kind":"step","step":3,"epoch":1,"lr":0.0002,"losses":{"seg_student":0.5,"total":1.25},"slices_per_s":10.0}"#
        );
        let epoch: LogRecord = serde_json::from_str(
            r#"{"kind":"epoch","step":4,"epoch":1,"lr":0.1,"val_dice":null,"best_dice":0.5,"losses":{},"wall_s":2.0}"#,
        )
        .unwrap();
        let LogRecord::Epoch(e) = epoch else {
            panic!("not an epoch record")
        };
        assert!(e.val_dice.is_nan());
        assert_eq!(e.best_dice, 0.5);
    }

    #[test]
    fn truncation_drops_torn_lines_and_later_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = LogWriter::open(&path).unwrap();
        for s in [1, 2, 3] {
            log.write(&step(s)).unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"kind":"step","st"#);
        std::fs::write(&path, text).unwrap();
        assert_eq!(read(&path).len(), 3);
        truncate_after(&path, 2).unwrap();
        assert_eq!(read(&path), [step(1), step(2)]);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }
}
