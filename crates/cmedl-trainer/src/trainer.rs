//! The [`Trainer`]: one run's networks, optimisers, data and run folder, advanced step by step.
//! [`Trainer::run`] is the whole loop; an [`Observer`] sees its progress and log records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{self, CheckpointMeta, Which, CHECKPOINT_FORMAT};
use crate::config::TrainConfig;
use crate::data::Batch;
use crate::device::DeviceSpec;
use crate::log::{self, EpochRecord, LogRecord, LogWriter, StepRecord};
use crate::networks::Networks;
use crate::prepare::{prepare_data, PreparedData};
use crate::run_dir::{ParallelRecord, RunDir, RunLock};
use crate::step::{train_step, Losses, StepInputs, TrainState};
use crate::validate::{validate, validate_by, SegPath};
use crate::TrainError;
use cmedl_dist::ProcessGroup;

/// How [`Trainer::run`] is driven.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Skip up to this many steps with a non-finite loss before stopping.
    pub skip_nonfinite: usize,
    /// Set by a Ctrl-C handler: save `latest` and stop.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Stop (as if interrupted) after this many global steps: for tests of resumption.
    pub stop_at_step: Option<usize>,
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run folder.
    pub dir: RunDir,
    /// Best validation Dice (NaN without validation data).
    pub best_dice: f64,
    /// Validation Dice after the last epoch.
    pub final_dice: f64,
    /// Global steps done.
    pub steps: usize,
    /// Seconds of this invocation.
    pub seconds: f64,
}

/// Where training stands after a step, for progress displays.
#[derive(Clone, Debug)]
pub struct StepProgress {
    /// Global steps done.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// 1-based epoch of the step.
    pub epoch: usize,
    /// The step's total loss.
    pub total_loss: f64,
    /// Training slices per second in this invocation.
    pub slices_per_s: f64,
}

/// Sees a run's progress: the CLI draws bars and prints JSON lines from it.
pub trait Observer {
    /// Training is about to run steps `first_step..total_steps`.
    fn started(&mut self, _first_step: usize, _total_steps: usize) {}
    /// A step finished (skipped steps are not reported).
    fn step(&mut self, _progress: &StepProgress) {}
    /// A record was written to the training log.
    fn record(&mut self, _record: &LogRecord) {}
    /// An epoch ended: a fixed validation slice as the networks now see it.
    fn samples(&mut self, _samples: &EpochSamples) {}
}

/// A fixed validation slice at the end of an epoch: the image, its reference, the student's
/// prediction and, for modes with a translator, the translation and the teacher's prediction on
/// it (all `size × size`, row by row; images normalised to [-1, 1]).
#[derive(Clone, Debug)]
pub struct EpochSamples {
    /// 1-based epoch.
    pub epoch: usize,
    /// Side of the slice in pixels.
    pub size: usize,
    /// The student-modality image.
    pub image: Vec<f32>,
    /// Its reference labels.
    pub reference: Vec<u8>,
    /// The mode's test-time prediction.
    pub prediction: Vec<u8>,
    /// The translation into the teacher modality.
    pub translation: Option<Vec<f32>>,
    /// The teacher's prediction on the translation.
    pub teacher: Option<Vec<u8>>,
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// The result of [`Trainer::step`].
#[derive(Debug)]
pub enum StepOutcome {
    /// Every network was updated.
    Trained {
        /// The loss terms, `total` last.
        losses: Losses,
        /// The record written to the log, when this step was logged.
        record: Option<StepRecord>,
    },
    /// A loss term was NaN or infinite: nothing was updated.
    Skipped {
        /// The term.
        term: String,
        /// Its value.
        value: f64,
    },
}

type BatchPair = (Batch, Option<Batch>);

/// One run in training: networks, optimiser state, data streams, log and checkpoints.
pub struct Trainer {
    config: TrainConfig,
    dir: RunDir,
    data: PreparedData,
    nets: Networks,
    state: TrainState,
    /// The training log (rank 0 of a data-parallel run writes it; the others none).
    log: Option<LogWriter>,
    batches: Receiver<(usize, BatchPair)>,
    step: usize,
    first_step: usize,
    best: f64,
    last: f64,
    last_teacher: f64,
    sums: BTreeMap<&'static str, (f64, usize)>,
    log_window: (Instant, usize),
    started: Instant,
    /// Held while training: no other process writes into the run folder (rank 0 only).
    _lock: Option<RunLock>,
    /// The data-parallel group, when launched with several processes.
    group: Option<Arc<ProcessGroup>>,
    /// Whether `best` was written (kept in memory: every rank must take the same branches).
    best_saved: bool,
    /// Whether ranks average their gradients (off only to show that it matters).
    sync_gradients: bool,
    /// The step at which `latest` was written, while no step has trained finitely from its
    /// weights since: such a checkpoint is not called good when training diverges.
    latest_untested: Option<usize>,
}

impl Trainer {
    /// Starts a new run of `config` in `dir`, which must not hold a run yet (a run stopped
    /// before its first checkpoint is started again).
    pub fn new(config: &TrainConfig, dir: &Path) -> Result<Self, TrainError> {
        Self::new_in(config, dir, None)
    }

    /// [`Trainer::new`] as one process of a data-parallel group (none: a single process).
    /// Every rank builds the same networks, rank 0's weights are broadcast, each rank trains on
    /// its share of `train.batch` and gradients are averaged; only rank 0 writes files.
    pub fn new_in(
        config: &TrainConfig,
        dir: &Path,
        group: Option<Arc<ProcessGroup>>,
    ) -> Result<Self, TrainError> {
        let run = RunDir::new(dir);
        let root = group.as_ref().is_none_or(|g| g.rank() == 0);
        if run.holds_run() && run.can_resume() {
            return Err(TrainError::Config(format!(
                "{}: already holds a run; use --resume to continue it or choose another --out",
                dir.display()
            )));
        }
        let lock = if root { Some(run.lock()?) } else { None };
        if root && run.holds_run() {
            tracing::warn!(
                "{}: the run there stopped before its first checkpoint; starting it again",
                dir.display()
            );
        }
        let trainer = Self::build(config.clone(), run, 0, lock, group)?;
        if root {
            trainer
                .dir
                .write_config_of(&trainer.config, trainer.parallel_record())?;
        }
        Ok(trainer)
    }

    /// Continues the run in `dir` from its latest checkpoint, with the config stored in it; a
    /// run stopped before its first checkpoint starts again from step 0 with that config.
    pub fn resume(dir: &Path) -> Result<Self, TrainError> {
        Self::resume_in(dir, None)
    }

    /// [`Trainer::resume`] as one process of a data-parallel group (none: a single process).
    pub fn resume_in(dir: &Path, group: Option<Arc<ProcessGroup>>) -> Result<Self, TrainError> {
        let run = RunDir::new(dir);
        let root = group.as_ref().is_none_or(|g| g.rank() == 0);
        let path = run.checkpoint(&Which::Latest);
        if !path.exists() && run.config_file().exists() {
            let record = run.read_config()?;
            let lock = if root { Some(run.lock()?) } else { None };
            tracing::warn!(
                "{}: the run stopped before its first checkpoint; starting it again from step 0",
                dir.display()
            );
            return Self::build(record.config, run, 0, lock, group);
        }
        let (tensors, meta) = checkpoint::read(&path)?;
        let lock = if root { Some(run.lock()?) } else { None };
        let mut trainer = Self::build(meta.config.clone(), run, meta.step, lock, group)?;
        checkpoint::load_weights(&path, &tensors, &trainer.nets)?;
        let device = trainer.data.device;
        checkpoint::load_state(&tensors, &meta, &mut trainer.state, device)?;
        trainer.best = meta.best_dice.unwrap_or(f64::NAN);
        trainer.last = meta.last_dice.unwrap_or(f64::NAN);
        trainer.last_teacher = meta.last_teacher_dice.unwrap_or(f64::NAN);
        trainer.best_saved = trainer.dir.checkpoint(&Which::Best).exists();
        // Every rank read the same file; rank 0's copy is the truth all the same.
        trainer.broadcast_weights()?;
        Ok(trainer)
    }

    /// The networks, optimisers and data of `config`, about to run global step `step`.
    fn build(
        mut config: TrainConfig,
        dir: RunDir,
        step: usize,
        lock: Option<RunLock>,
        group: Option<Arc<ProcessGroup>>,
    ) -> Result<Self, TrainError> {
        if let Some(g) = &group {
            // One GPU per process: the launcher's LOCAL_RANK picks it.
            let gpus = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
            config.device = match config.device {
                DeviceSpec::Cuda(_) => DeviceSpec::Cuda(g.local_rank()),
                DeviceSpec::Auto if gpus > 0 => DeviceSpec::Cuda(g.local_rank()),
                other => other,
            };
        }
        let mut data = prepare_data(&config)?;
        if let Some(g) = &group {
            let world = g.world_size();
            if !config.train.batch.is_multiple_of(world) {
                return Err(TrainError::Config(format!(
                    "train.batch {} is the global batch and must be a multiple of the {world} processes",
                    config.train.batch
                )));
            }
            let streams = Arc::get_mut(&mut data.streams)
                .ok_or_else(|| TrainError::Data("the batch streams are already shared".into()))?;
            streams.batch = config.train.batch / world;
            streams.shard = (g.rank(), world);
        }
        let nets = Networks::build(&config, data.device)?;
        let state = TrainState::new(&nets, &config);
        let root = group.as_ref().is_none_or(|g| g.rank() == 0);
        let log = if root {
            dir.create()?;
            // Records past the step training continues from (all of them when it starts
            // again) belong to steps that will be run again.
            log::truncate_after(&dir.log_file(), step)?;
            Some(LogWriter::open(&dir.log_file())?)
        } else {
            None
        };
        let total = data.streams.steps_per_epoch * config.train.epochs;
        let batches = spawn_producer(&data, step, total);
        let trainer = Self {
            config,
            dir,
            data,
            nets,
            state,
            log,
            batches,
            step,
            first_step: step,
            best: f64::NAN,
            last: f64::NAN,
            last_teacher: f64::NAN,
            sums: BTreeMap::new(),
            log_window: (Instant::now(), 0),
            started: Instant::now(),
            _lock: lock,
            group,
            best_saved: false,
            sync_gradients: true,
            // A resumed run starts from `latest`: its weights are tested by the first step.
            latest_untested: Some(step),
        };
        trainer.broadcast_weights()?;
        Ok(trainer)
    }

    /// Turns the averaging of gradients across ranks off (or on): each rank then trains on its
    /// own shard alone — only for showing that the averaging is what makes ranks agree.
    pub fn set_gradient_sync(&mut self, on: bool) {
        self.sync_gradients = on;
    }

    /// Whether this process writes the run's files (rank 0, or the only process).
    pub fn is_root(&self) -> bool {
        self.group.as_ref().is_none_or(|g| g.rank() == 0)
    }

    /// The world size and backend of a data-parallel run.
    fn parallel_record(&self) -> Option<ParallelRecord> {
        self.group.as_ref().map(|g| ParallelRecord {
            world_size: g.world_size(),
            backend: g.backend().to_owned(),
        })
    }

    /// Copies rank 0's parameters and buffers (batch-norm statistics) to every rank.
    fn broadcast_weights(&self) -> Result<(), TrainError> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        for (_, vs) in self.nets.stores() {
            let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            let tensors: Vec<tch::Tensor> = vars.into_iter().map(|(_, t)| t).collect();
            crate::parallel::broadcast(g, &tensors)?;
        }
        Ok(())
    }

    /// Whether any rank says yes (this rank's answer alone without a group).
    fn any_rank(&self, yes: bool) -> Result<bool, TrainError> {
        match &self.group {
            Some(g) => crate::parallel::any(g, yes),
            None => Ok(yes),
        }
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// Global steps done.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.data.streams.steps_per_epoch * self.config.train.epochs
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.step >= self.total_steps()
    }

    /// Whether the last step ended an epoch.
    pub fn at_epoch_end(&self) -> bool {
        self.step > 0 && self.step.is_multiple_of(self.data.streams.steps_per_epoch)
    }

    /// Trains one step on the next batches; logs it when `train.log_every` says so.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let spe = self.data.streams.steps_per_epoch;
        let epoch = self.step / spe;
        let lr = self.config.lr_at(epoch);
        let (produced, (sb, tb)) = self
            .batches
            .recv()
            .map_err(|_| TrainError::Data("the batch producer stopped".into()))?;
        debug_assert_eq!(produced, self.step);
        let segmenters = self.config.segmenters_train_in(epoch);
        if !segmenters && !self.config.mode.uses_translator() {
            // Nothing trains while a translator would train alone: the batch is passed over,
            // so the segmenters meet the same batches at the same steps as in the other modes.
            self.step += 1;
            self.log_window.1 += 1;
            return Ok(StepOutcome::Trained {
                losses: Vec::new(),
                record: None,
            });
        }
        let device = self.data.device;
        let to = |t: &tch::Tensor| t.to_device(device);
        let xs = to(&sb.images);
        let ys = sb
            .labels
            .as_ref()
            .map(to)
            .ok_or_else(|| TrainError::Data("student batch without labels".into()))?;
        let xt = tb.as_ref().map(|b| to(&b.images));
        let yt = tb.as_ref().and_then(|b| b.labels.as_ref().map(to));
        // Re-seeding per step makes dropout and any sampling a function of the step: exact resume.
        tch::manual_seed(crate::data::mix_seed(self.config.seed, 5, self.step as u64, 0) as i64);
        let inputs = StepInputs {
            student: &xs,
            student_labels: &ys,
            teacher: xt.as_ref(),
            teacher_labels: yt.as_ref(),
            lr,
            step: self.step,
            distill_scale: self.distill_scale(epoch),
            segmenters,
            sync: self.group.as_deref().filter(|_| self.sync_gradients),
        };
        let outcome = train_step(&mut self.nets, &mut self.state, &self.config, &inputs);
        self.step += 1;
        self.log_window.1 += 1;
        let losses = match outcome {
            Err(TrainError::NonFiniteTerm { term, value, .. }) => {
                return Ok(StepOutcome::Skipped { term, value })
            }
            other => other?,
        };
        for (n, v) in &losses {
            let e = self.sums.entry(n).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
        let record = if self.step.is_multiple_of(self.config.train.log_every.max(1))
            || self.step.is_multiple_of(spe)
        {
            Some(self.log_step(&losses, epoch + 1, lr)?)
        } else {
            None
        };
        Ok(StepOutcome::Trained { losses, record })
    }

    /// The share of λ_d at (0-based) `epoch`: the warm-up ramp, times 0 while the teacher gate
    /// is closed (the teacher's last validation Dice on translations not above the student's).
    pub fn distill_scale(&self, epoch: usize) -> f64 {
        let spec = &self.config.loss.distill;
        let gate_open = !spec.gate_on_teacher || self.last_teacher > self.last;
        if !self.config.segmenters_train_in(epoch) {
            0.0
        } else if gate_open {
            // The warm-up counts from the segmenters' first epoch.
            spec.warmup_factor(epoch - self.config.train.translator_epochs)
        } else {
            0.0
        }
    }

    fn log_step(
        &mut self,
        losses: &Losses,
        epoch: usize,
        lr: f64,
    ) -> Result<StepRecord, TrainError> {
        let (since, steps) = self.log_window;
        let secs = since.elapsed().as_secs_f64().max(1e-9);
        let record = StepRecord {
            step: self.step,
            epoch,
            lr,
            losses: losses.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
            slices_per_s: (steps * self.config.train.batch) as f64 / secs,
        };
        if let Some(log) = &mut self.log {
            log.write(&LogRecord::Step(record.clone()))?;
        }
        tracing::debug!(step = record.step, losses = ?record.losses, "step");
        self.log_window = (Instant::now(), 0);
        Ok(record)
    }

    /// Ends an epoch: validation, the epoch record, `latest`, and `best` when it improved.
    pub fn end_epoch(&mut self) -> Result<EpochRecord, TrainError> {
        let epoch = self.step / self.data.streams.steps_per_epoch;
        // The scale the epoch trained with, before validation may open the gate.
        let distill_scale = (self.config.distill_weight() > 0.0)
            .then(|| self.distill_scale(epoch.saturating_sub(1)));
        // Batch-norm statistics differ between ranks (each saw its own shard): rank 0's are
        // validated and saved by all, so every rank takes the same decisions.
        self.broadcast_weights()?;
        // Segmenters that have not trained yet are not validated (their Dice would be noise
        // that the teacher could lead by).
        let trained = self.config.segmenters_train_in(epoch.saturating_sub(1));
        let (teacher_pmri, teacher_real) = if trained {
            self.validate_teacher()?
        } else {
            (None, None)
        };
        let (config, data) = (&self.config, &self.data);
        self.last = if trained {
            validate(
                &self.nets,
                &data.val,
                config.data.classes,
                config.train.batch.max(4),
                data.device,
            )?
        } else {
            f64::NAN
        };
        self.last_teacher = teacher_pmri.unwrap_or(f64::NAN);
        let improved = self.last.is_finite() && (self.best.is_nan() || self.last > self.best);
        if improved {
            self.best = self.last;
        }
        let record = EpochRecord {
            step: self.step,
            epoch,
            lr: config.lr_at(epoch.saturating_sub(1)),
            val_dice: self.last,
            best_dice: self.best,
            teacher_dice_pmri: teacher_pmri,
            teacher_dice_real: teacher_real,
            distill_scale,
            losses: self
                .sums
                .iter()
                .map(|(n, (s, c))| ((*n).to_owned(), s / *c as f64))
                .collect(),
            wall_s: self.started.elapsed().as_secs_f64(),
            parallel: self.parallel_record(),
        };
        if let Some(log) = &mut self.log {
            log.write(&LogRecord::Epoch(record.clone()))?;
        }
        let total = record.losses.get("total").copied().unwrap_or(f64::NAN);
        let teacher = teacher_pmri.map_or(String::new(), |t| format!(", teacher on pMRI {t:.4}"));
        if trained {
            tracing::info!(
                "epoch {epoch}/{}: loss {total:.4}, validation Dice {:.4} (best {:.4}){teacher}, {:.0} s",
                config.train.epochs,
                self.last,
                self.best,
                record.wall_s
            );
        } else {
            tracing::info!(
                "epoch {epoch}/{}: the translator alone (train.translator_epochs {}), loss {total:.4}, {:.0} s",
                config.train.epochs,
                config.train.translator_epochs,
                record.wall_s
            );
        }
        self.sums.clear();
        self.save(&Which::Latest)?;
        if improved || (self.data.val.is_empty() && self.is_done()) {
            self.save(&Which::Best)?;
        }
        Ok(record)
    }

    /// The samples of the first labelled validation case, at its slice with the most reference
    /// foreground (none without such a case).
    fn samples(&self, epoch: usize) -> Result<Option<EpochSamples>, TrainError> {
        let Some((case, labels)) = self
            .data
            .val
            .iter()
            .find_map(|c| c.labels.as_ref().map(|l| (c, l)))
        else {
            return Ok(None);
        };
        let [nx, ny, nz] = case.image.geometry.shape;
        let n = nx * ny;
        let k = (0..nz)
            .max_by_key(|&k| {
                labels[k * n..(k + 1) * n]
                    .iter()
                    .filter(|&&v| v > 0)
                    .count()
            })
            .unwrap_or(0);
        let image = case.image.data[k * n..(k + 1) * n].to_vec();
        let x = tch::Tensor::from_slice(&image)
            .view([1, 1, ny as i64, nx as i64])
            .to_device(self.data.device);
        let labels_of = |t: &tch::Tensor| -> Result<Vec<u8>, TrainError> {
            let l = t.argmax(1, false).to_kind(tch::Kind::Uint8).flatten(0, -1);
            Ok(Vec::<u8>::try_from(l.to_device(tch::Device::Cpu))?)
        };
        let nets = &self.nets;
        let (prediction, translation, teacher) = tch::no_grad(|| -> Result<_, TrainError> {
            let prediction = labels_of(&nets.segment(&x, false)?.logits)?;
            let (translation, teacher) = match (&nets.g_s2t, &nets.teacher) {
                (Some(g), Some(_)) => {
                    let t = g.net.forward_t(&x, false)?;
                    let values = t.to_kind(tch::Kind::Float).flatten(0, -1);
                    let values = Vec::<f32>::try_from(values.to_device(tch::Device::Cpu))?;
                    let teacher = labels_of(&nets.teacher_on_translation(&x)?.logits)?;
                    (Some(values), Some(teacher))
                }
                _ => (None, None),
            };
            Ok((prediction, translation, teacher))
        })?;
        Ok(Some(EpochSamples {
            epoch,
            size: nx,
            image,
            reference: labels[k * n..(k + 1) * n].to_vec(),
            prediction,
            translation,
            teacher,
        }))
    }

    /// The teacher's validation Dice on translated student-modality images and on labelled real
    /// teacher-modality images (none for modes without a teacher or without such cases).
    fn validate_teacher(&self) -> Result<(Option<f64>, Option<f64>), TrainError> {
        if !self.config.mode.uses_teacher() {
            return Ok((None, None));
        }
        let (config, data) = (&self.config, &self.data);
        let dice = |path, cases: &[crate::data::PreparedCase]| -> Result<Option<f64>, TrainError> {
            if cases.is_empty() {
                return Ok(None);
            }
            let batch = config.train.batch.max(4);
            let d = validate_by(
                &self.nets,
                path,
                cases,
                config.data.classes,
                batch,
                data.device,
            )?;
            Ok(Some(d))
        };
        Ok((
            dice(SegPath::TeacherOnTranslation, &data.val)?,
            dice(SegPath::Teacher, &data.teacher_val)?,
        ))
    }

    /// Writes checkpoint `which` (atomically) with the current state; in a data-parallel run
    /// rank 0 writes and every rank waits for it.
    pub fn save(&mut self, which: &Which) -> Result<(), TrainError> {
        if self.is_root() {
            let path = self.dir.checkpoint(which);
            checkpoint::save(&path, &self.nets, &self.state, &self.meta())?;
            tracing::debug!(step = self.step, "saved {}", path.display());
        }
        match which {
            Which::Best => self.best_saved = true,
            Which::Latest => self.latest_untested = Some(self.step),
            _ => {}
        }
        if let Some(g) = &self.group {
            g.barrier().map_err(crate::parallel::error)?;
        }
        Ok(())
    }

    fn meta(&self) -> CheckpointMeta {
        let finite = |v: f64| v.is_finite().then_some(v);
        CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            step: self.step,
            epochs_done: self.step / self.data.streams.steps_per_epoch,
            best_dice: finite(self.best),
            last_dice: finite(self.last),
            config: self.config.clone(),
            cmedl_version: env!("CARGO_PKG_VERSION").into(),
            pool_t_rng: self.state.pool_t.rng().clone(),
            pool_s_rng: self.state.pool_s.rng().clone(),
            teacher_window: self.data.teacher_window,
            last_teacher_dice: finite(self.last_teacher),
        }
    }

    /// Ends training: `best` (when no epoch wrote one) and `final`.
    pub fn finish(mut self) -> Result<RunSummary, TrainError> {
        if !self.best_saved {
            self.save(&Which::Best)?;
        }
        self.save(&Which::Final)?;
        let gated = self.config.loss.distill.gate_on_teacher && self.config.distill_weight() > 0.0;
        if gated && self.is_root() {
            let lead = crate::log::TeacherLead::of(&self.dir.epochs());
            if lead.is_some_and(|l| l.hint_epochs == Some(0)) {
                tracing::warn!(
                    "{}: the hint was never applied: the teacher's validation Dice on translations never exceeded the student's (loss.distill.gate_on_teacher), so this run trained as cmedl-no-distill",
                    self.dir.path().display()
                );
            }
        }
        Ok(RunSummary {
            dir: self.dir.clone(),
            best_dice: self.best,
            final_dice: self.last,
            steps: self.step,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// Trains to the end (or to an interrupt), saving as the config says.
    pub fn run(
        mut self,
        options: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<RunSummary, TrainError> {
        observer.started(self.step, self.total_steps());
        let mut skipped = 0usize;
        while !self.is_done() {
            // tch raises libtorch errors (a CUDA out-of-memory among them) as panics: caught
            // here they become errors naming the step, and the checkpoints written so far stay
            // the run's state (the interrupted step may have updated some networks only).
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
            let outcome = match attempt {
                Ok(outcome) => outcome?,
                Err(payload) => {
                    let message = crate::panic_message(payload.as_ref());
                    let step = self.step + 1;
                    return Err(if crate::is_out_of_memory(&message) {
                        TrainError::OutOfMemory {
                            step,
                            batch: self.config.train.batch,
                            message,
                        }
                    } else {
                        TrainError::StepFailed { step, message }
                    });
                }
            };
            match outcome {
                StepOutcome::Trained { losses, record } => {
                    self.latest_untested = None;
                    if let Some(r) = record {
                        observer.record(&LogRecord::Step(r));
                    }
                    observer.step(&self.progress(&losses));
                }
                StepOutcome::Skipped { term, value } => {
                    skipped += 1;
                    self.on_skipped(&term, value, skipped, options.skip_nonfinite)?;
                }
            }
            let epoch_end = self.at_epoch_end();
            if epoch_end {
                let record = self.end_epoch()?;
                let epoch = record.epoch;
                observer.record(&LogRecord::Epoch(record));
                if self.is_root() {
                    if let Some(samples) = self.samples(epoch)? {
                        observer.samples(&samples);
                    }
                }
            } else if self
                .step
                .is_multiple_of(self.config.train.checkpoint_every.max(1))
            {
                self.save(&Which::Latest)?;
            }
            // Ranks agree on stopping (a Ctrl-C reaches them at different steps).
            let interrupted = self.any_rank(
                options
                    .interrupt
                    .as_ref()
                    .is_some_and(|f| f.load(Ordering::SeqCst)),
            )?;
            if interrupted || options.stop_at_step == Some(self.step) {
                if !epoch_end {
                    self.save(&Which::Latest)?;
                }
                return Err(TrainError::Interrupted(format!(
                    "stopped at step {}; resume with `cmedl train --resume {}`",
                    self.step,
                    self.dir.path().display()
                )));
            }
        }
        self.finish()
    }

    fn progress(&self, losses: &Losses) -> StepProgress {
        let total_loss = losses
            .iter()
            .find(|(n, _)| *n == "total")
            .map_or(f64::NAN, |x| x.1);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        StepProgress {
            step: self.step,
            total_steps: self.total_steps(),
            epoch: (self.step - 1) / self.data.streams.steps_per_epoch + 1,
            total_loss,
            slices_per_s: ((self.step - self.first_step) * self.config.train.batch) as f64
                / seconds,
        }
    }

    /// A skipped step: a warning, or the end of training past the allowed number.
    fn on_skipped(
        &self,
        term: &str,
        value: f64,
        skipped: usize,
        allowed: usize,
    ) -> Result<(), TrainError> {
        let epoch = (self.step - 1) / self.data.streams.steps_per_epoch + 1;
        let msg = format!(
            "loss term '{term}' is {value} at step {} (epoch {epoch})",
            self.step
        );
        if skipped > allowed {
            let latest = self.dir.checkpoint(&Which::Latest);
            let kept = match (latest.exists(), self.latest_untested) {
                (false, _) => "no checkpoint had been written yet".to_owned(),
                (true, None) => format!("the last good checkpoint is {}", latest.display()),
                (true, Some(at)) => format!(
                    "{} (step {at}) holds the weights that led here (no step trained \
                     finitely from them), so resuming from it diverges again",
                    latest.display()
                ),
            };
            return Err(TrainError::NonFinite(format!("{msg}; {kept}")));
        }
        tracing::warn!("{msg}; step skipped ({skipped} of at most {allowed} allowed)");
        Ok(())
    }
}

/// Prepares the batches of steps `first..total` on a background thread, a few steps ahead
/// (read from the slice cache, augmented on the rayon pool), so the device does not wait.
fn spawn_producer(data: &PreparedData, first: usize, total: usize) -> Receiver<(usize, BatchPair)> {
    let (sender, batches) = std::sync::mpsc::sync_channel(4);
    let streams = data.streams.clone();
    std::thread::spawn(move || {
        for s in first..total {
            if sender.send((s, streams.batches(s))).is_err() {
                break; // the training loop ended
            }
        }
    });
    batches
}
