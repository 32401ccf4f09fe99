//! `cmedl train`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cmedl_trainer::networks::Networks;
use cmedl_trainer::run::prepare;
use cmedl_trainer::{train, RunOptions, TrainConfig, TrainError};

use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;

/// Options of `cmedl train` beyond the config.
pub struct TrainArgs {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Run directory.
    pub out: Option<PathBuf>,
    /// Run directory to resume.
    pub resume: Option<PathBuf>,
    /// `section.key=value` overrides, dedicated flags included.
    pub overrides: Vec<String>,
    /// Print the plan and exit.
    pub dry_run: bool,
    /// JSON lines on stdout.
    pub json_log: bool,
    /// Non-finite steps tolerated.
    pub skip_nonfinite: usize,
    /// Stop after this global step (tests of resumption).
    pub stop_at_step: Option<usize>,
    /// No progress output.
    pub quiet: bool,
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        if e.is_input_error() {
            Failure::Input(e.to_string())
        } else {
            Failure::Internal(e.to_string())
        }
    }
}

/// Loads the config file (or the defaults) and applies overrides.
pub fn load_config(path: Option<&Path>, overrides: &[String]) -> Result<TrainConfig, Failure> {
    let base = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::Input(format!("{}: {e}", p.display())))?;
            TrainConfig::from_json(&text, &p.display().to_string())?
        }
        None => TrainConfig::default(),
    };
    let config = base.with_overrides(overrides)?;
    // Problems of the values themselves are reported against the file they came from.
    let checked = config.validate().and_then(|()| {
        config
            .device
            .parse::<cmedl_trainer::DeviceSpec>()
            .map(|_| ())
            .map_err(Into::into)
    });
    if let Err(e) = checked {
        let source = path.map_or("config".to_owned(), |p| p.display().to_string());
        return Err(Failure::Input(format!("{source}: {e}")));
    }
    Ok(config)
}

fn dry_run(config: &TrainConfig) -> CmdResult {
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(config).map_err(|e| Failure::Internal(e.to_string()))?
    );
    let data = prepare(config)?;
    let nets = Networks::build(config, data.device)?;
    crate::outln!("device: {:?}", data.device);
    crate::outln!(
        "networks ({} mode, {} → {} teaching):",
        config.mode.name(),
        data.modalities.1,
        data.modalities.0
    );
    for (name, count) in nets.parameter_counts() {
        crate::outln!("  {name:<8} {count:>12} parameters");
    }
    let size = config.data.size as i64;
    for (name, net) in [("teacher", &nets.teacher), ("student", &nets.student)] {
        if let Some(n) = net {
            let d = cmedl_models::describe(
                name,
                &n.vs,
                n.net.as_ref(),
                [1, n.net.in_channels(), size, size],
            )?;
            crate::out!("{d}");
        }
    }
    crate::outln!(
        "data: {} {} training cases → {} slices; {} {} training cases → {} slices; {} validation cases; {} steps per epoch",
        data.case_counts.0,
        data.modalities.0,
        data.streams.student.len(),
        data.case_counts.1,
        data.modalities.1,
        data.streams.teacher.len(),
        data.val.len(),
        data.streams.steps_per_epoch
    );
    Ok(())
}

/// Runs `cmedl train`.
pub fn run(args: TrainArgs) -> CmdResult {
    let (dir, config) = match (&args.resume, &args.out) {
        (Some(dir), _) => (dir.clone(), TrainConfig::default()),
        (None, Some(out)) => (
            out.clone(),
            load_config(args.config.as_deref(), &args.overrides)?,
        ),
        (None, None) => {
            return Err(Failure::Input(
                "give --out RUN_DIR for a new run or --resume RUN_DIR".into(),
            ))
        }
    };
    if args.dry_run {
        return dry_run(&config);
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // A second Ctrl-C while saving still ends the process.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving the latest checkpoint…");
    });
    let bar = Arc::new(std::sync::Mutex::new(None::<Progress>));
    let bar_cb = bar.clone();
    let quiet = args.quiet || args.json_log;
    let options = RunOptions {
        resume: args.resume.is_some(),
        quiet,
        json_log: args.json_log,
        skip_nonfinite: args.skip_nonfinite,
        interrupt: Some(interrupt),
        stop_at_step: args.stop_at_step,
        on_step: Some(Arc::new(move |step, total, status: &str| {
            if let Ok(mut b) = bar_cb.lock() {
                let bar = b.get_or_insert_with(|| Progress::new("train", total as u64, quiet));
                bar.message(status);
                bar.set(step as u64);
            }
        })),
    };
    let result = train(&config, &dir, &options);
    if let Ok(Some(b)) = bar.lock().map(|mut b| b.take()) {
        b.finish();
    }
    match result {
        Ok(summary) => {
            eprintln!(
                "finished {} steps in {:.0} s: best validation Dice {:.4}, final {:.4}",
                summary.steps, summary.seconds, summary.best_dice, summary.final_dice
            );
            eprintln!("run directory: {}", summary.dir.display());
            eprintln!("metrics: {}", summary.dir.join("metrics.jsonl").display());
            eprintln!("checkpoints: {}", summary.dir.join("checkpoints").display());
            Ok(())
        }
        Err(TrainError::Interrupted(msg)) => Err(Failure::Interrupted(msg)),
        Err(e) => Err(e.into()),
    }
}
