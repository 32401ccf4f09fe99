//! `cmedl train`: a new run from a config, or `--resume` of a run folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use cmedl_dist::ProcessGroup;
use cmedl_trainer::checkpoint::{self, Which};
use cmedl_trainer::log::LogRecord;
use cmedl_trainer::networks::Networks;
use cmedl_trainer::prepare::prepare_data;
use cmedl_trainer::{
    DeviceSpec, Mode, Observer, RunDir, RunOptions, StepProgress, TrainConfig, Trainer,
};

use crate::common::{interrupt_flag, join_group, DistBackend};
use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;
use crate::Global;

/// Options of `cmedl train`.
#[derive(clap::Args)]
pub struct Args {
    /// JSON config file [default: the built-in defaults].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory for a new run.
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint, with the config stored
    /// in it (options that would change the config are refused with it).
    #[arg(long, conflicts_with_all = ["config", "data", "mode", "epochs", "batch", "device", "seed", "set"])]
    resume: Option<PathBuf>,
    /// Dataset folder (data.root).
    #[arg(long)]
    data: Option<PathBuf>,
    /// What is trained (mode).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Epochs (train.epochs).
    #[arg(long)]
    epochs: Option<usize>,
    /// Slices per batch (train.batch).
    #[arg(long)]
    batch: Option<usize>,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Master seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override any config value: section.key=value (repeatable; applied after the flags above).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved config, networks, parameter counts and data counts, then exit.
    #[arg(long)]
    dry_run: bool,
    /// Log format: text (a summary line per epoch) or json (the log records as JSON lines on
    /// stdout).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Skip up to N steps whose loss is NaN or infinite (and say so) before stopping.
    #[arg(long, default_value_t = 0)]
    skip_nonfinite: usize,
    /// Stop after this global step as if interrupted (for testing resumption).
    #[arg(long, hide = true)]
    stop_at_step: Option<usize>,
    /// Seconds to wait for the other processes of a data-parallel launch (torchrun, srun).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    rendezvous_timeout: u64,
    /// c10d backend of a data-parallel launch: nccl (GPUs; builds with the `nccl` feature),
    /// gloo (CPU tensors; works everywhere) or auto (nccl when built and a GPU is present).
    #[arg(long, value_enum, default_value = "auto")]
    dist_backend: DistBackend,
    /// Data-parallel ranks train on their shards without averaging gradients (for testing that
    /// the averaging matters).
    #[arg(long, hide = true)]
    no_gradient_sync: bool,
}

impl Args {
    /// Whether stdout carries machine-readable records (status lines are then kept off stderr).
    pub fn machine_log(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}

/// The modes of `--mode`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// The student alone.
    CtOnly,
    /// Translator, teacher and student with distillation.
    Cmedl,
    /// As cmedl without the distillation term.
    CmedlNoDistill,
    /// Translator and teacher; the teacher segments translations.
    PmriOnly,
    /// A two-channel student on [image, translation].
    #[value(name = "ct+pmri")]
    CtPlusPmri,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::CtOnly => Mode::CtOnly,
            ModeArg::Cmedl => Mode::Cmedl,
            ModeArg::CmedlNoDistill => Mode::CmedlNoDistill,
            ModeArg::PmriOnly => Mode::PmriOnly,
            ModeArg::CtPlusPmri => Mode::CtPlusPmri,
        }
    }
}

/// The formats of `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// A summary line per epoch on stderr.
    Text,
    /// Every log record as a JSON line on stdout.
    Json,
}

/// Loads the config file (or the defaults), applies the flags, then the `--set` overrides.
fn load_config(args: &Args) -> Result<TrainConfig, Failure> {
    let path = args.config.as_deref();
    let mut base = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::Input(format!("{}: {e}", p.display())))?;
            TrainConfig::from_json(&text, &p.display().to_string())?
        }
        None => {
            let (preset, name, reason) = preset_for(args.device.unwrap_or_default());
            eprintln!("no --config: using the {name} preset ({reason})");
            preset
        }
    };
    if let Some(d) = &args.data {
        base.data.root = d.clone();
    }
    if let Some(m) = args.mode {
        base.mode = m.into();
    }
    if let Some(e) = args.epochs {
        base.train.epochs = e;
    }
    if let Some(b) = args.batch {
        base.train.batch = b;
    }
    if let Some(d) = args.device {
        base.device = d;
    }
    if let Some(s) = args.seed {
        base.seed = s;
    }
    let mut config = base.with_overrides(&args.set)?;
    if config.data.root.as_os_str().is_empty() {
        if let Some(out) = &args.out {
            config.data.root = phantom_in_run(out)?;
        }
    }
    // Problems of the values themselves are reported against the file they came from.
    if let Err(e) = config.validate() {
        let source = path.map_or("config".to_owned(), |p| p.display().to_string());
        return Err(Failure::Input(format!("{source}: {}", e.message())));
    }
    Ok(config)
}

/// The preset a run without a config starts from, its name and why: the paper's networks where
/// the device is a GPU, the small CPU networks otherwise (the paper's take minutes a step on a
/// laptop CPU).
fn preset_for(device: DeviceSpec) -> (TrainConfig, &'static str, &'static str) {
    let gpu = match device {
        DeviceSpec::Cuda(_) => true,
        DeviceSpec::Cpu => false,
        DeviceSpec::Auto => device.resolve().is_ok_and(|d| d.is_cuda()),
    };
    let (mut preset, name, reason) = if gpu {
        (
            TrainConfig::paper(),
            "paper",
            "for a CUDA device; --config configs/cpu-small.json for small networks",
        )
    } else {
        (
            TrainConfig::cpu_small(),
            "cpu-small",
            "no CUDA device; the paper's networks need a GPU: --config configs/paper-256.json",
        )
    };
    preset.device = device;
    (preset, name, reason)
}

/// Without a dataset, a run trains on the synthetic cohort (`cmedl phantom`'s defaults)
/// generated into `RUN/data` once, so that `cmedl train --out runs/first` works on its own.
fn phantom_in_run(out: &Path) -> Result<PathBuf, Failure> {
    let root = out.join("data");
    if !root.join("dataset.json").exists() {
        if cmedl_trainer::RunDir::new(out).can_resume() {
            return Err(Failure::Input(format!(
                "{}: already holds a run; use --resume to continue it or choose another --out",
                out.display()
            )));
        }
        eprintln!(
            "no dataset given (--data or data.root): generating the synthetic phantom cohort in {}",
            root.display()
        );
        cmedl_phantom::write_cohort(&cmedl_phantom::CohortConfig::default(), &root, &|_, _| {})?;
    }
    Ok(root)
}

fn dry_run(config: &TrainConfig) -> CmdResult {
    outln!(
        "{}",
        serde_json::to_string_pretty(config).map_err(|e| Failure::Internal(e.to_string()))?
    );
    // A dry run inspects: a config for a device this machine lacks is inspected on the CPU.
    let mut inspected = config.clone();
    let missing = config.device.resolve().err();
    if missing.is_some() {
        inspected.device = DeviceSpec::Cpu;
    }
    let data = prepare_data(&inspected)?;
    let nets = Networks::build(&inspected, data.device)?;
    match missing {
        Some(e) => outln!(
            "device: {} (not here: {e}; inspected on the CPU)",
            config.device
        ),
        None => outln!("device: {:?}", data.device),
    }
    outln!(
        "networks ({} mode, {} → {} teaching):",
        config.mode.name(),
        data.modalities.teacher,
        data.modalities.student
    );
    for (name, count) in nets.parameter_counts() {
        outln!("  {name:<8} {count:>12} parameters");
    }
    let size = config.data.size as i64;
    for (name, net) in [("teacher", &nets.teacher), ("student", &nets.student)] {
        if let Some(n) = net {
            let shape = [1, n.net.in_channels(), size, size];
            out!(
                "{}",
                cmedl_models::describe(name, &n.vs, n.net.as_ref(), shape)?
            );
        }
    }
    outln!(
        "data: {} {} training cases → {} slices; {} {} training cases → {} slices; {} validation cases; {} steps per epoch",
        data.student_cases,
        data.modalities.student,
        data.streams.student.len(),
        data.teacher_cases,
        data.modalities.teacher,
        data.streams.teacher.len(),
        data.val.len(),
        data.streams.steps_per_epoch
    );
    Ok(())
}

/// Shows training: a progress bar (or progress lines), and the log records as JSON lines.
struct Display {
    bar: Option<Progress>,
    quiet: bool,
    json: bool,
}

impl Observer for Display {
    fn started(&mut self, _first_step: usize, total_steps: usize) {
        self.bar = Some(Progress::new("train", total_steps as u64, self.quiet));
    }

    fn step(&mut self, p: &StepProgress) {
        if let Some(bar) = &self.bar {
            bar.message(&format!(
                "epoch {} loss {:.4} {:.1} slices/s",
                p.epoch, p.total_loss, p.slices_per_s
            ));
            bar.set(p.step as u64);
        }
    }

    fn record(&mut self, record: &LogRecord) {
        if self.json {
            if let Ok(line) = serde_json::to_string(record) {
                outln!("{line}");
            }
        }
    }
}

fn start(args: &Args, group: Option<Arc<ProcessGroup>>) -> Result<Trainer, Failure> {
    let mut trainer = match (&args.resume, &args.out) {
        (Some(dir), _) => Trainer::resume_in(dir, group)?,
        (None, Some(out)) => {
            // Rank 0 alone may generate a phantom cohort into the run folder; the others read
            // the config after it has.
            let config = match &group {
                Some(g) if g.rank() == 0 => {
                    let config = load_config(args);
                    g.barrier().map_err(|e| Failure::Internal(e.to_string()))?;
                    config?
                }
                Some(g) => {
                    g.barrier().map_err(|e| Failure::Internal(e.to_string()))?;
                    load_config(args)?
                }
                None => load_config(args)?,
            };
            Trainer::new_in(&config, out, group)?
        }
        (None, None) => {
            return Err(Failure::Input(
                "give --out RUN_DIR for a new run or --resume RUN_DIR".into(),
            ))
        }
    };
    if args.no_gradient_sync {
        trainer.set_gradient_sync(false);
    }
    Ok(trainer)
}

/// Runs `cmedl train`.
pub fn run(args: Args, global: &Global) -> CmdResult {
    if args.dry_run {
        let config = match &args.resume {
            Some(dir) => {
                let latest = RunDir::new(dir).checkpoint(&Which::Latest);
                checkpoint::read(&latest)?.1.config
            }
            None => load_config(&args)?,
        };
        return dry_run(&config);
    }
    let group = join_group(args.dist_backend, args.rendezvous_timeout)?;
    let trainer = start(&args, group)?;
    // Only rank 0 of a data-parallel run reports; the others train quietly.
    let root = trainer.is_root();
    let options = RunOptions {
        skip_nonfinite: args.skip_nonfinite,
        interrupt: Some(interrupt_flag("saving the latest checkpoint")),
        stop_at_step: args.stop_at_step,
    };
    let json = args.machine_log() && root;
    let mut display = Display {
        bar: None,
        quiet: global.quiet || json || !root,
        json,
    };
    let run_dir = trainer.run_dir().clone();
    // Rank 0 (or the only process) redraws RUN/progress.png after every epoch.
    let result = if root {
        trainer.run(
            &options,
            &mut cmedl_experiment::report::ProgressFigure::new(run_dir, &mut display),
        )
    } else {
        trainer.run(&options, &mut display)
    };
    if let Some(bar) = display.bar.take() {
        bar.finish();
    }
    let summary = result?;
    if !root {
        return Ok(());
    }
    let dir: &Path = summary.dir.path();
    eprintln!(
        "finished {} steps in {:.0} s: best validation Dice {:.4}, final {:.4}",
        summary.steps, summary.seconds, summary.best_dice, summary.final_dice
    );
    eprintln!("run directory: {}", dir.display());
    eprintln!("metrics: {}", summary.dir.log_file().display());
    eprintln!("checkpoints: {}", summary.dir.checkpoints().display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_config_the_preset_follows_the_device() {
        let (gpu, name, _) = preset_for(DeviceSpec::Cuda(1));
        assert_eq!((name, gpu.model.generator.ngf), ("paper", 64));
        assert_eq!(
            gpu.device,
            DeviceSpec::Cuda(1),
            "the device asked for stays"
        );
        let (cpu, name, _) = preset_for(DeviceSpec::Cpu);
        assert_eq!((name, cpu.model.generator.ngf), ("cpu-small", 8));
        assert_eq!(
            cpu,
            TrainConfig {
                device: DeviceSpec::Cpu,
                ..TrainConfig::cpu_small()
            }
        );
    }
}
