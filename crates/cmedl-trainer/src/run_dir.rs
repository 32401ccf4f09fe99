//! The layout of a run folder, in one place:
//!
//! ```text
//! RUN/
//!   config.json                  resolved config and the cmedl version that wrote it
//!   metrics.jsonl                the training log, one LogRecord per line
//!   checkpoints/latest.safetensors   most recent state (resume continues from it)
//!   checkpoints/best.safetensors     highest validation Dice
//!   checkpoints/final.safetensors    end of training (its presence means "finished")
//!   .lock                        the pid of the process training here (removed at its end)
//!   figures/                     curves of `cmedl report RUN`
//!   report.md, report.html       written by `cmedl report RUN`
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Which;
use crate::config::TrainConfig;
use crate::log::{EpochRecord, LogRecord};
use crate::TrainError;

/// A run folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

/// The claim of one process on a run folder; released (the lock file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` runs (Linux: `/proc/PID`; elsewhere assumed to run).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// What `config.json` of a run holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The cmedl version that started the run.
    pub cmedl_version: String,
    /// The run's resolved configuration.
    pub config: TrainConfig,
    /// The data-parallel launch that started it (absent: one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<ParallelRecord>,
}

/// The data-parallel launch of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelRecord {
    /// Number of processes.
    pub world_size: usize,
    /// The c10d backend.
    pub backend: String,
}

impl RunDir {
    /// The run folder at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `config.json`: the resolved configuration.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `metrics.jsonl`: the training log.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The file of checkpoint `which`.
    pub fn checkpoint(&self, which: &Which) -> PathBuf {
        match which {
            Which::Best => self.checkpoints().join("best.safetensors"),
            Which::Final => self.checkpoints().join("final.safetensors"),
            Which::Latest => self.checkpoints().join("latest.safetensors"),
            Which::File(p) => p.clone(),
        }
    }

    /// `figures/`: images of the run's report.
    pub fn figures(&self) -> PathBuf {
        self.root.join("figures")
    }

    /// Whether a run was started here (its checkpoint folder exists).
    pub fn holds_run(&self) -> bool {
        self.checkpoints().exists()
    }

    /// Whether the run here finished (it wrote its final checkpoint).
    pub fn is_finished(&self) -> bool {
        self.checkpoint(&Which::Final).exists()
    }

    /// Whether the run here can be resumed (it wrote a latest checkpoint).
    pub fn can_resume(&self) -> bool {
        self.checkpoint(&Which::Latest).exists()
    }

    /// `.lock`: the claim of the process that trains here.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Claims the folder for this process (creating it); fails while another live process
    /// holds it. A claim left by a killed process is taken over.
    pub fn lock(&self) -> Result<RunLock, TrainError> {
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::file(&self.root, e))?;
        let path = self.lock_file();
        let me = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write as _;
                    writeln!(file, "{me}").map_err(|e| TrainError::file(&path, e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    if let Some(pid) = owner.filter(|&pid| pid != me && process_alive(pid)) {
                        return Err(TrainError::Config(format!(
                            "{}: in use by another cmedl process (pid {pid}); if it is gone, delete {}",
                            self.root.display(),
                            path.display()
                        )));
                    }
                    tracing::warn!(
                        "{}: taking over the claim of a process that is gone",
                        path.display()
                    );
                    std::fs::remove_file(&path).map_err(|e| TrainError::file(&path, e))?;
                }
                Err(e) => return Err(TrainError::file(&path, e)),
            }
        }
        Err(TrainError::Config(format!(
            "{}: another process claimed the folder at the same moment",
            self.root.display()
        )))
    }

    /// Creates the folder and its checkpoint folder.
    pub fn create(&self) -> Result<(), TrainError> {
        let dir = self.checkpoints();
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::file(&dir, e))
    }

    /// Writes `config.json`.
    pub fn write_config(&self, config: &TrainConfig) -> Result<(), TrainError> {
        self.write_config_of(config, None)
    }

    /// Writes `config.json` with the data-parallel launch that runs it.
    pub fn write_config_of(
        &self,
        config: &TrainConfig,
        parallel: Option<ParallelRecord>,
    ) -> Result<(), TrainError> {
        let record = ConfigRecord {
            cmedl_version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            parallel,
        };
        let text =
            serde_json::to_string_pretty(&record).map_err(|e| TrainError::Config(e.to_string()))?;
        let path = self.config_file();
        // Whole or not at all: a temporary file named by process, renamed over the old one.
        let tmp = self
            .root
            .join(format!(".config.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                TrainError::file(&path, e)
            })
    }

    /// Reads `config.json` and validates the config in it.
    pub fn read_config(&self) -> Result<ConfigRecord, TrainError> {
        let path = self.config_file();
        let record: ConfigRecord = serde_json::from_str(&self.read_config_text()?)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        record
            .config
            .validate()
            .map_err(|e| TrainError::Config(format!("{}: {}", path.display(), e.message())))?;
        Ok(record)
    }

    /// The text of `config.json`.
    pub fn read_config_text(&self) -> Result<String, TrainError> {
        let path = self.config_file();
        std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))
    }

    /// The records of the training log (none when there is no log yet); a torn line is skipped.
    pub fn read_log(&self) -> Vec<LogRecord> {
        crate::log::read(&self.log_file())
    }

    /// The epoch records of the training log, one per epoch (the last written wins).
    pub fn epochs(&self) -> Vec<EpochRecord> {
        let mut by_epoch = std::collections::BTreeMap::new();
        for record in self.read_log() {
            if let LogRecord::Epoch(e) = record {
                by_epoch.insert(e.epoch, e);
            }
        }
        by_epoch.into_values().collect()
    }

    /// Mean total training loss and validation Dice per epoch.
    pub fn epoch_curves(&self) -> (Vec<f64>, Vec<f64>) {
        self.epochs()
            .iter()
            .map(|e| {
                (
                    e.losses.get("total").copied().unwrap_or(f64::NAN),
                    e.val_dice,
                )
            })
            .unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_is_claimed_by_one_live_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        let lock = run.lock().unwrap();
        assert_eq!(
            std::fs::read_to_string(run.lock_file()).unwrap().trim(),
            std::process::id().to_string()
        );
        // A live process (pid 1, always there on Linux) holds it: refused, naming the pid.
        drop(lock);
        assert!(!run.lock_file().exists(), "released when dropped");
        std::fs::write(run.lock_file(), "1\n").unwrap();
        if Path::new("/proc/1").exists() {
            let err = run.lock().unwrap_err().to_string();
            assert!(err.contains("pid 1"), "{err}");
        }
        // A claim of a process that is gone (pid beyond the kernel's maximum) is taken over.
        std::fs::write(run.lock_file(), "4294967295\n").unwrap();
        let _lock = run.lock().unwrap();
    }
    use crate::log::{LogWriter, StepRecord};

    #[test]
    fn the_layout_is_fixed() {
        let run = RunDir::new("runs/a");
        assert_eq!(run.config_file(), Path::new("runs/a/config.json"));
        assert_eq!(run.log_file(), Path::new("runs/a/metrics.jsonl"));
        assert_eq!(
            run.checkpoint(&Which::Best),
            Path::new("runs/a/checkpoints/best.safetensors")
        );
        assert_eq!(
            run.checkpoint(&Which::File("x.safetensors".into())),
            Path::new("x.safetensors")
        );
        assert!(!run.holds_run() && !run.is_finished() && !run.can_resume());
    }

    #[test]
    fn epoch_curves_come_from_the_epoch_records() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let mut log = LogWriter::open(&run.log_file()).unwrap();
        let epoch = |epoch, total, val_dice| {
            LogRecord::Epoch(EpochRecord {
                step: epoch * 2,
                epoch,
                lr: 1e-3,
                val_dice,
                best_dice: val_dice,
                teacher_dice_pmri: None,
                teacher_dice_real: None,
                distill_scale: None,
                losses: [("total".to_owned(), total)].into(),
                wall_s: 1.0,
                parallel: None,
            })
        };
        log.write(&LogRecord::Step(StepRecord {
            step: 1,
            epoch: 1,
            lr: 1e-3,
            losses: [("total".to_owned(), 9.0)].into(),
            slices_per_s: 3.0,
        }))
        .unwrap();
        log.write(&epoch(1, 2.0, 0.5)).unwrap();
        log.write(&epoch(2, 1.5, f64::NAN)).unwrap();
        let (loss, dice) = run.epoch_curves();
        assert_eq!(loss, [2.0, 1.5]);
        assert_eq!(dice[0], 0.5);
        assert!(dice[1].is_nan());
    }
}
