//! `cmedl experiment`: train modes on the same data and seeds, predict and evaluate the test
//! split, compare every mode with `ct-only`, and write the report.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use cmedl_experiment::{
    plan_experiment, run_experiment, ExperimentDir, ExperimentOptions, ExperimentOutcome,
    RunSelection,
};
use cmedl_trainer::DeviceSpec;

use crate::common::{interrupt_flag, parse_shard};
use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl experiment`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment JSON (e.g. configs/experiments/demo.json).
    #[arg(long)]
    config: PathBuf,
    /// Experiment folder; finished runs in it are skipped, unfinished ones resumed.
    #[arg(long)]
    out: PathBuf,
    /// Train independent runs concurrently, one per device (e.g. cuda:0,cuda:1; a device may
    /// be listed twice to run two runs on it), then evaluate and report.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "DEVICES",
        conflicts_with = "shard"
    )]
    devices: Vec<DeviceSpec>,
    /// Train and evaluate only runs i, i+n, i+2n, … of the plan (0 ≤ i < n), e.g. one Slurm
    /// array task each: `--shard $SLURM_ARRAY_TASK_ID/4`; `cmedl report OUT` merges them.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Train only this planned run (used by `--devices` for its worker processes).
    #[arg(long, hide = true, requires = "run_device")]
    train_run: Option<String>,
    /// The device of `--train-run`.
    #[arg(long, hide = true)]
    run_device: Option<DeviceSpec>,
}

/// Runs `cmedl experiment`.
pub fn run(args: Args, global: &Global) -> CmdResult {
    let interrupt = interrupt_flag("saving the latest checkpoint of the run in training");
    let runs = match (&args.train_run, args.shard) {
        (Some(name), _) => RunSelection::TrainOnly(name.clone()),
        (None, Some((index, count))) => RunSelection::Shard { index, count },
        (None, None) => RunSelection::All,
    };
    if args.devices.len() > 1 && runs == RunSelection::All {
        let start = std::time::Instant::now();
        let trained = train_on_devices(&args, global);
        // The workers' training time is part of the experiment's wall time (they record none).
        ExperimentDir::new(&args.out).add_wall_time(start.elapsed().as_secs_f64())?;
        if interrupt.load(Ordering::SeqCst) {
            return Err(Failure::Interrupted(
                "the runs in training saved their latest checkpoints; run the same command again to continue".into(),
            ));
        }
        trained?;
    }
    let options = ExperimentOptions {
        interrupt: Some(interrupt),
        runs,
        device: args.run_device.or(args.devices.first().copied()),
    };
    match run_experiment(&args.config, &args.out, &options)? {
        ExperimentOutcome::Report(report) => {
            eprintln!("report: {}", report.markdown.display());
        }
        ExperimentOutcome::Partial { runs } => {
            if args.train_run.is_none() {
                eprintln!(
                    "done: {} run(s) of this shard; when every shard has finished, `cmedl report {}` writes the report",
                    runs.len(),
                    args.out.display()
                );
            }
        }
    }
    Ok(())
}

/// Trains the unfinished runs of the plan in worker processes, one per listed device at a
/// time (separate processes: libtorch's random generator is per process, so runs stay
/// reproducible).
fn train_on_devices(args: &Args, global: &Global) -> CmdResult {
    let plan = plan_experiment(&args.config, &args.out)?;
    let dir = ExperimentDir::new(&args.out);
    let queue = Mutex::new(
        plan.into_iter()
            .filter(|r| !dir.run(&r.name).is_finished())
            .map(|r| r.name)
            .collect::<Vec<_>>(),
    );
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Internal(format!("cannot find the cmedl binary: {e}")))?;
    let failures = Mutex::new(Vec::new());
    // Workers that share the CPU share its cores: k CPU workers take cores/k threads each
    // (unless OMP_NUM_THREADS says otherwise), so they run side by side instead of
    // oversubscribing the cores; small networks gain more from this than from threads.
    let cpu_workers = args
        .devices
        .iter()
        .filter(|d| matches!(d, DeviceSpec::Cpu))
        .count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu_threads = (cores / cpu_workers.max(1)).max(1);
    let user_threads = std::env::var_os("OMP_NUM_THREADS").is_some();
    std::thread::scope(|scope| {
        for device in &args.devices {
            let (queue, failures, exe) = (&queue, &failures, &exe);
            // The lock is taken and released inside `next`, never held while a run trains.
            let next = move || queue.lock().ok().and_then(|mut q| q.pop());
            scope.spawn(move || {
                while let Some(name) = next() {
                    if !global.quiet {
                        eprintln!("training {name} on {device}");
                    }
                    let mut command = std::process::Command::new(exe);
                    if matches!(device, DeviceSpec::Cpu) && cpu_workers > 1 && !user_threads {
                        command.env("OMP_NUM_THREADS", cpu_threads.to_string());
                    }
                    let status = command
                        .arg("experiment")
                        .arg("--config")
                        .arg(&args.config)
                        .arg("--out")
                        .arg(&args.out)
                        .args(["--train-run", &name, "--run-device", &device.to_string()])
                        .arg("--quiet")
                        .status();
                    let failed = match status {
                        Ok(s) if s.success() => None,
                        Ok(s) => Some(format!("{name} on {device}: {s}")),
                        Err(e) => Some(format!("{name} on {device}: cannot start: {e}")),
                    };
                    if let (Some(f), Ok(mut all)) = (failed, failures.lock()) {
                        all.push(f);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::Internal(format!(
            "runs failed (see their messages above): {}",
            failures.join("; ")
        )))
    }
}
