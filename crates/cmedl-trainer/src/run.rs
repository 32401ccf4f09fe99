//! The training loop: data, networks, steps, validation, logs and checkpoints of one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cmedl_losses::ImagePool;
use serde_json::json;
use tch::Device;

use crate::checkpoint::{self, CheckpointMeta, Which, CHECKPOINT_FORMAT};
use crate::config::TrainConfig;
use crate::data::{
    open_dataset, prepare_cases, Normalization, PreparedCase, Preprocessor, SliceSet, Streams,
};
use crate::device::DeviceSpec;
use crate::networks::Networks;
use crate::optim::Adam;
use crate::step::{train_step, TrainState};
use crate::validate::validate;
use crate::TrainError;

/// Called with (step, total steps, one-line status) after each step.
pub type StepCallback = Arc<dyn Fn(usize, usize, &str) + Send + Sync>;

/// How a run is driven.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Continue from `latest` of the run directory.
    pub resume: bool,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Print metrics as JSON lines on stdout.
    pub json_log: bool,
    /// Skip up to this many steps with a non-finite loss before stopping.
    pub skip_nonfinite: usize,
    /// Set by a Ctrl-C handler: save `latest` and stop.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Stop (as if interrupted) after this many global steps: for tests of resumption.
    pub stop_at_step: Option<usize>,
    /// Called with (step, total steps, one-line status) after each step.
    pub on_step: Option<StepCallback>,
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// Best validation Dice (NaN without validation data).
    pub best_dice: f64,
    /// Validation Dice after the last epoch.
    pub final_dice: f64,
    /// Global steps done.
    pub steps: usize,
    /// Seconds of this invocation.
    pub seconds: f64,
}

/// Data, resolved device and counts of a configured run, ready to train (or to describe).
pub struct Prepared {
    /// The device.
    pub device: Device,
    /// Batch streams (shared with the prefetching thread).
    pub streams: Arc<Streams>,
    /// Validation cases of the student modality.
    pub val: Vec<PreparedCase>,
    /// (student modality, teacher modality).
    pub modalities: (String, String),
    /// Training cases per modality.
    pub case_counts: (usize, usize),
    /// Mean intensity window of the teacher modality's training images (to scale translations).
    pub teacher_window: Option<cmedl_io::Window>,
}

/// Loads and prepares the data of a config.
pub fn prepare(config: &TrainConfig) -> Result<Prepared, TrainError> {
    config.validate()?;
    let device = config.device.parse::<DeviceSpec>()?.resolve()?;
    let ds = open_dataset(&config.data)?;
    let (s_name, t_name) = config.teacher.modalities();
    let s_mod = ds.modality(s_name)?;
    let mut s_train = s_mod.train.clone();
    if config.data.max_cases > 0 {
        s_train.truncate(config.data.max_cases);
    }
    if s_train.is_empty() {
        return Err(TrainError::Data(format!(
            "{}: modality '{s_name}' has no training cases",
            ds.root.join("dataset.json").display()
        )));
    }
    let pre = |kind: &str| Preprocessor {
        size: config.data.size,
        spacing: config.data.spacing,
        normalization: Normalization::for_kind(kind, &config.data),
    };
    let (labels, classes) = (config.data.labels.as_str(), config.data.classes);
    let s_cases = prepare_cases(&ds, &s_train, &pre(&s_mod.kind), labels, classes)?;
    if s_cases.iter().any(|c| c.labels.is_none()) {
        return Err(TrainError::Data(format!(
            "every '{s_name}' training case needs a {labels} map"
        )));
    }
    let val = prepare_cases(&ds, &s_mod.val, &pre(&s_mod.kind), labels, classes)?;
    let student = SliceSet::from_cases(
        &s_cases,
        config.data.size,
        config.data.empty_share,
        config.seed,
    );
    let mut teacher_window = None;
    let (teacher, t_count) = if config.mode.uses_translator() {
        let t_mod = ds.modality(t_name)?;
        let t_cases = prepare_cases(&ds, &t_mod.train, &pre(&t_mod.kind), labels, classes)?;
        if t_cases.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: modality '{t_name}' has no training cases",
                ds.root.join("dataset.json").display()
            )));
        }
        let use_labels = config.loss.teacher_on_real && t_cases.iter().all(|c| c.labels.is_some());
        let t_cases: Vec<PreparedCase> = if use_labels {
            t_cases
        } else {
            t_cases
                .into_iter()
                .map(|c| PreparedCase { labels: None, ..c })
                .collect()
        };
        let n = t_cases.len();
        let lo = t_cases
            .iter()
            .map(|c| f64::from(c.image.window.lo))
            .sum::<f64>()
            / n as f64;
        let hi = t_cases
            .iter()
            .map(|c| f64::from(c.image.window.hi))
            .sum::<f64>()
            / n as f64;
        teacher_window = Some(cmedl_io::Window {
            lo: lo as f32,
            hi: hi as f32,
        });
        (
            SliceSet::from_cases(
                &t_cases,
                config.data.size,
                if use_labels { 1.0 } else { 0.0 },
                config.seed ^ 1,
            ),
            n,
        )
    } else {
        (
            SliceSet {
                size: config.data.size,
                ..Default::default()
            },
            0,
        )
    };
    let mut steps_per_epoch = student.len().div_ceil(config.train.batch).max(1);
    if config.train.max_steps_per_epoch > 0 {
        steps_per_epoch = steps_per_epoch.min(config.train.max_steps_per_epoch);
    }
    Ok(Prepared {
        device,
        streams: Arc::new(Streams {
            student,
            teacher,
            batch: config.train.batch,
            steps_per_epoch,
            seed: config.seed,
            augment: config.data.augment.clone(),
            shard: (0, 1),
        }),
        val,
        modalities: (s_name.to_owned(), t_name.to_owned()),
        case_counts: (s_cases.len(), t_count),
        teacher_window,
    })
}

/// Drops a torn last line of `metrics.jsonl` (a crash mid-write) and lines past `step`.
fn repair_metrics(path: &Path, step: usize) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["step"].as_u64().is_some_and(|s| s as usize <= step))
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| TrainError::file(path, e))
}

struct Log {
    file: std::fs::File,
    json: bool,
}

impl Log {
    fn write(&mut self, v: &serde_json::Value) -> Result<(), TrainError> {
        let line = v.to_string();
        writeln!(self.file, "{line}")
            .map_err(|e| TrainError::Checkpoint(format!("metrics.jsonl: {e}")))?;
        if self.json {
            println!("{line}");
        }
        Ok(())
    }
}

/// Trains (or resumes) the run in `dir`.
pub fn train(
    config: &TrainConfig,
    dir: &Path,
    options: &RunOptions,
) -> Result<RunSummary, TrainError> {
    let start = Instant::now();
    let (config, resume_from) = if options.resume {
        let path = Which::Latest.path(dir);
        let (tensors, meta) = checkpoint::read(&path)?;
        (meta.config.clone(), Some((path, tensors, meta)))
    } else {
        if dir.join("checkpoints").exists() {
            return Err(TrainError::Config(format!(
                "{}: already holds a run; use --resume to continue it or choose another --out",
                dir.display()
            )));
        }
        (config.clone(), None)
    };
    let data = prepare(&config)?;
    let device = data.device;
    let mut nets = Networks::build(&config, device)?;
    let mut state = TrainState {
        g_opt: Adam::new(
            nets.translator_side(),
            config.train.betas,
            config.train.weight_decay,
        ),
        s_opt: Adam::new(
            nets.segmenter_side(),
            config.train.betas,
            config.train.weight_decay,
        ),
        d_opt: (!nets.discriminator_side().is_empty()).then(|| {
            Adam::new(
                nets.discriminator_side(),
                config.train.betas,
                config.train.weight_decay,
            )
        }),
        pool_t: ImagePool::new(config.loss.pool_size, config.seed ^ 0x7001),
        pool_s: ImagePool::new(config.loss.pool_size, config.seed ^ 0x7002),
    };
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| TrainError::file(dir, e))?;
    let metrics_path = dir.join("metrics.jsonl");
    let (mut step, mut best, mut last) = (0usize, f64::NAN, f64::NAN);
    if let Some((path, tensors, meta)) = &resume_from {
        checkpoint::load_weights(path, tensors, &nets)?;
        checkpoint::load_state(tensors, meta, &mut state, device)?;
        step = meta.step;
        best = meta.best_dice.unwrap_or(f64::NAN);
        last = meta.last_dice.unwrap_or(f64::NAN);
        repair_metrics(&metrics_path, step)?;
    } else {
        let resolved = json!({ "cmedl_version": env!("CARGO_PKG_VERSION"), "config": config });
        let text = serde_json::to_string_pretty(&resolved)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        std::fs::write(dir.join("config.json"), text + "\n")
            .map_err(|e| TrainError::file(dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| TrainError::file(&metrics_path, e))?;
    let mut log = Log {
        file,
        json: options.json_log,
    };
    let spe = data.streams.steps_per_epoch;
    let total_steps = spe * config.train.epochs;
    let meta_of = |step: usize, best: f64, last: f64, state: &TrainState| CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        step,
        epochs_done: step / spe,
        best_dice: best.is_finite().then_some(best),
        last_dice: last.is_finite().then_some(last),
        config: config.clone(),
        cmedl_version: env!("CARGO_PKG_VERSION").into(),
        pool_t_rng: state.pool_t.rng().clone(),
        pool_s_rng: state.pool_s.rng().clone(),
        teacher_window: data.teacher_window,
    };
    let mut skipped = 0usize;
    let mut sums: std::collections::BTreeMap<&'static str, (f64, usize)> = Default::default();
    let mut window_start = Instant::now();
    let mut window_steps = 0usize;
    // Batches are prepared (read from the slice cache, augmented on the rayon pool) by a
    // background thread a few steps ahead, so the device does not wait for them.
    let (sender, batches) = std::sync::mpsc::sync_channel(4);
    let producer_streams = data.streams.clone();
    let first_step = step;
    std::thread::spawn(move || {
        for s in first_step..total_steps {
            if sender.send((s, producer_streams.batches(s))).is_err() {
                break; // the training loop ended
            }
        }
    });
    while step < total_steps {
        let epoch = step / spe;
        let lr = config.lr_at(epoch);
        let (produced, (sb, tb)) = batches
            .recv()
            .map_err(|_| TrainError::Data("the batch producer stopped".into()))?;
        debug_assert_eq!(produced, step);
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
        tch::manual_seed(crate::data::mix_seed(config.seed, 5, step as u64, 0) as i64);
        let outcome = train_step(
            &mut nets,
            &mut state,
            &config,
            &xs,
            &ys,
            xt.as_ref(),
            yt.as_ref(),
            lr,
            step,
        );
        step += 1;
        window_steps += 1;
        let values = match outcome {
            Err(TrainError::NonFiniteTerm {
                term,
                value,
                step: at,
            }) => {
                skipped += 1;
                let msg = format!(
                    "loss term '{term}' is {value} at step {at} (epoch {})",
                    epoch + 1
                );
                if skipped > options.skip_nonfinite {
                    let latest = Which::Latest.path(dir);
                    let kept = if latest.exists() {
                        format!("the last good checkpoint is {}", latest.display())
                    } else {
                        "no checkpoint had been written yet".to_owned()
                    };
                    return Err(TrainError::NonFinite(format!("{msg}; {kept}")));
                }
                eprintln!(
                    "warning: {msg}; step skipped ({skipped} of at most {} allowed)",
                    options.skip_nonfinite
                );
                continue;
            }
            other => other?,
        };
        for (n, v) in &values {
            let e = sums.entry(n).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
        if step % config.train.log_every.max(1) == 0 || step % spe == 0 {
            let secs = window_start.elapsed().as_secs_f64().max(1e-9);
            let rate = (window_steps * config.train.batch) as f64 / secs;
            let losses: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .map(|(n, v)| ((*n).to_owned(), json!(v)))
                .collect();
            log.write(&json!({"kind": "step", "step": step, "epoch": epoch + 1, "lr": lr, "losses": losses, "slices_per_s": rate}))?;
            window_start = Instant::now();
            window_steps = 0;
        }
        if let Some(cb) = &options.on_step {
            let total = values
                .iter()
                .find(|(n, _)| *n == "total")
                .map_or(f64::NAN, |x| x.1);
            let rate = ((step - first_step) * config.train.batch) as f64
                / start.elapsed().as_secs_f64().max(1e-9);
            cb(
                step,
                total_steps,
                &format!("epoch {} loss {total:.4} {rate:.1} slices/s", epoch + 1),
            );
        }
        let epoch_end = step % spe == 0;
        if epoch_end {
            last = validate(
                &nets,
                &data.val,
                config.data.classes,
                config.train.batch.max(4),
                device,
            )?;
            let improved = last.is_finite() && (best.is_nan() || last > best);
            if improved {
                best = last;
            }
            let means: serde_json::Map<String, serde_json::Value> = sums
                .iter()
                .map(|(n, (s, c))| ((*n).to_owned(), json!(s / *c as f64)))
                .collect();
            log.write(&json!({"kind": "epoch", "step": step, "epoch": epoch + 1, "lr": lr, "val_dice": last, "best_dice": best, "losses": means, "wall_s": start.elapsed().as_secs_f64()}))?;
            if !options.quiet && !options.json_log {
                let total = sums.get("total").map_or(f64::NAN, |(s, c)| s / *c as f64);
                eprintln!("epoch {}/{}: loss {total:.4}, validation Dice {last:.4} (best {best:.4}), {:.0} s", epoch + 1, config.train.epochs, start.elapsed().as_secs_f64());
            }
            sums.clear();
            let meta = meta_of(step, best, last, &state);
            checkpoint::save(&Which::Latest.path(dir), &nets, &state, &meta)?;
            if improved || (data.val.is_empty() && step == total_steps) {
                checkpoint::save(&Which::Best.path(dir), &nets, &state, &meta)?;
            }
        } else if step % config.train.checkpoint_every.max(1) == 0 {
            checkpoint::save(
                &Which::Latest.path(dir),
                &nets,
                &state,
                &meta_of(step, best, last, &state),
            )?;
        }
        let interrupted = options
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst));
        if interrupted || options.stop_at_step == Some(step) {
            if !epoch_end {
                checkpoint::save(
                    &Which::Latest.path(dir),
                    &nets,
                    &state,
                    &meta_of(step, best, last, &state),
                )?;
            }
            return Err(TrainError::Interrupted(format!(
                "stopped at step {step}; resume with `cmedl train --resume {}`",
                dir.display()
            )));
        }
    }
    if !Which::Best.path(dir).exists() {
        checkpoint::save(
            &Which::Best.path(dir),
            &nets,
            &state,
            &meta_of(step, best, last, &state),
        )?;
    }
    checkpoint::save(
        &Which::Final.path(dir),
        &nets,
        &state,
        &meta_of(step, best, last, &state),
    )?;
    Ok(RunSummary {
        dir: dir.to_path_buf(),
        best_dice: best,
        final_dice: last,
        steps: step,
        seconds: start.elapsed().as_secs_f64(),
    })
}
