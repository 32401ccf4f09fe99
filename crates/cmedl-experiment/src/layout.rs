//! The layout of an experiment folder, in one place:
//!
//! ```text
//! EXP/
//!   experiment.json              the experiment as given
//!   runs.json                    the planned runs with their resolved configs
//!   data/                        the phantom cohort, when the experiment generates one
//!   runs/<run>/                  each run's folder (see cmedl_trainer::RunDir)
//!   predictions/<run>/<case>.nii.gz   test-split predictions of each run (raw)
//!   predictions-postprocessed/<run>/<case>.nii.gz   the same under the experiment's rule
//!   postprocessing.json          the one post-processing rule of every run (Choice)
//!   results/<run>.json           per-case and per-lesion metrics of each run (RunResults)
//!   comparisons.json             every arm against ct-only (ArmComparison list)
//!   figures/                     curves-<run>.png, montage-<run>.png, montage.json
//!   wall_time_s                  seconds spent in `cmedl experiment`, summed over invocations
//!   report.md, report.html
//! ```

use std::path::{Path, PathBuf};

use cmedl_trainer::RunDir;

use crate::{ExperimentError, RunResults};

/// An experiment folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExperimentDir {
    root: PathBuf,
}

impl ExperimentDir {
    /// The experiment folder at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Whether this is an experiment folder (it holds `experiment.json`).
    pub fn exists(&self) -> bool {
        self.experiment_file().exists()
    }

    /// `experiment.json`.
    pub fn experiment_file(&self) -> PathBuf {
        self.root.join("experiment.json")
    }

    /// `runs.json`.
    pub fn plan_file(&self) -> PathBuf {
        self.root.join("runs.json")
    }

    /// `data/`: where a phantom recipe is generated.
    pub fn phantom_data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The folder of run `name`.
    pub fn run(&self, name: &str) -> RunDir {
        RunDir::new(self.root.join("runs").join(name))
    }

    /// The prediction folder of run `name`.
    pub fn predictions(&self, name: &str) -> PathBuf {
        self.root.join("predictions").join(name)
    }

    /// The folder of run `name`'s predictions under the experiment's post-processing rule.
    pub fn postprocessed_predictions(&self, name: &str) -> PathBuf {
        self.root.join("predictions-postprocessed").join(name)
    }

    /// `postprocessing.json`: the rule chosen for every run.
    pub fn postprocessing_file(&self) -> PathBuf {
        self.root.join("postprocessing.json")
    }

    /// `results/`.
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }

    /// The per-case metrics file of run `name`.
    pub fn results_file(&self, name: &str) -> PathBuf {
        self.results().join(format!("{name}.json"))
    }

    /// `comparisons.json`: every arm against ct-only (written with the report).
    pub fn comparisons_file(&self) -> PathBuf {
        self.root.join("comparisons.json")
    }

    /// `figures/`.
    pub fn figures(&self) -> PathBuf {
        self.root.join("figures")
    }

    /// The file of the accumulated wall time.
    pub fn wall_time_file(&self) -> PathBuf {
        self.root.join("wall_time_s")
    }

    /// Seconds spent in the experiment so far (NaN when not recorded).
    pub fn wall_time(&self) -> f64 {
        std::fs::read_to_string(self.wall_time_file())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Adds `seconds` to the recorded wall time.
    pub fn add_wall_time(&self, seconds: f64) -> Result<(), ExperimentError> {
        let previous = self.wall_time();
        let total = if previous.is_finite() {
            previous + seconds
        } else {
            seconds
        };
        let path = self.wall_time_file();
        crate::write_atomic(&path, format!("{total}\n").as_bytes())
    }

    /// The results of run `name`, when it has been evaluated.
    pub fn read_results(&self, name: &str) -> Result<Option<RunResults>, ExperimentError> {
        let path = self.results_file(name);
        if !path.exists() {
            return Ok(None);
        }
        crate::read_json(&path).map(Some)
    }
}
