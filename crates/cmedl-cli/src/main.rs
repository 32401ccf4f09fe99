//! `cmedl`: train a CT segmenter that learns from unpaired MRI (CMEDL), apply and evaluate it.
//!
//! Exit codes: 0 success, 1 internal error, 2 bad input or usage, 130 interrupted.
//!
//! Each sub-command is one file in `commands/` with its `Args` and `run`; the work itself lives
//! in the library crates.

#[macro_use]
mod output;
mod commands;
mod common;
mod failure;
mod logging;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::*;
use failure::CmdResult;

#[derive(Parser)]
#[command(
    name = "cmedl",
    version,
    about = "Unpaired cross-modality educed distillation (CMEDL) for CT segmentation"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every command.
#[derive(clap::Args)]
pub struct Global {
    /// No progress bars, progress lines or status messages (warnings and errors still show).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// More diagnostics on stderr: -v debug events, -vv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Largest buffer cmedl may allocate for one volume, series or resampled grid (e.g. 8G,
    /// 512M) [default: half the physical memory].
    #[arg(long, global = true, value_name = "SIZE", value_parser = cmedl_io::memory::parse_size)]
    pub max_memory: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Report the libtorch version, CUDA devices, and check that each device computes.
    Doctor(doctor::Args),
    /// Generate a synthetic, unpaired thorax CT and MRI cohort in the dataset layout.
    Phantom(phantom::Args),
    /// Train CMEDL or one of its baselines.
    Train(train::Args),
    /// Segment CT volumes with a trained run; masks keep the input's shape and affine.
    Predict(predict::Args),
    /// Translate a CT volume into a pseudo-MRI with a run's translator.
    Translate(translate::Args),
    /// Compare predicted masks with references: Dice, surface Dice, HD95, ASD, paired tests.
    Evaluate(evaluate::Args),
    /// Train several modes on the same data and seeds, evaluate the test split, write a report.
    Experiment(experiment::Args),
    /// Regenerate report.md and report.html of an experiment or run folder from its files.
    Report(report::Args),
    /// Summarise experiments that differ in one data setting: a table and a figure per arm.
    Study(study::Args),
    /// Measure training, prediction and loader throughput (JSON lines; see `cargo xtask bench`).
    #[command(hide = true)]
    Bench(bench::Args),
    /// Print a volume's shape, spacing, affine, datatype, intensity range and labels.
    Info(info::Args),
    /// Convert a NIfTI file or a DICOM series (with RTSTRUCT contours or SEG segments) to NIfTI.
    Convert(convert::Args),
    /// Import an nnU-Net v2 or Medical Segmentation Decathlon dataset.
    Dataset(dataset::Args),
    /// Export a trained run's test-time network (TorchScript, with a JSON sidecar).
    Export(export::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the default training config with each field's documentation, or its JSON Schema.
    Config(config::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = cli.global.quiet || matches!(&cli.command, Command::Train(a) if a.machine_log());
    logging::init(&cli.global, quiet);
    if let Some(bytes) = cli.global.max_memory {
        cmedl_io::memory::set_max_memory(bytes);
    }
    // A panic that escapes the work (a bug, or a libtorch error outside a guarded call) ends
    // the process with exit 1 and one line, not a backtrace and exit 101.
    failure::install_panic_hook();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)))
        .unwrap_or_else(|_| Err(failure::Failure::from_panic()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

fn dispatch(cli: Cli) -> CmdResult {
    let g = &cli.global;
    match cli.command {
        Command::Doctor(a) => doctor::run(a, g),
        Command::Phantom(a) => phantom::run(a, g),
        Command::Train(a) => train::run(a, g),
        Command::Predict(a) => predict::run(a, g),
        Command::Translate(a) => translate::run(a, g),
        Command::Evaluate(a) => evaluate::run(a, g),
        Command::Experiment(a) => experiment::run(a, g),
        Command::Report(a) => report::run(a, g),
        Command::Study(a) => study::run(a, g),
        Command::Bench(a) => bench::run(a, g),
        Command::Info(a) => info::run(a, g),
        Command::Convert(a) => convert::run(a, g),
        Command::Dataset(a) => dataset::run(a, g),
        Command::Export(a) => export::run(a, g),
        Command::Completions(a) => completions::run(a, g),
        Command::Config(a) => config::run(a, g),
    }
}
