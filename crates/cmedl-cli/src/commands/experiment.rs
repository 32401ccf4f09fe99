//! `cmedl experiment`: train modes on the same data and seeds, predict and evaluate the test
//! split, compare every mode with `ct-only`, and write the report.

use std::path::PathBuf;

use cmedl_experiment::{run_experiment, ExperimentOptions};

use crate::common::interrupt_flag;
use crate::failure::CmdResult;
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
}

/// Runs `cmedl experiment`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let options = ExperimentOptions {
        interrupt: Some(interrupt_flag(
            "saving the latest checkpoint of the run in training",
        )),
    };
    let report = run_experiment(&args.config, &args.out, &options)?;
    eprintln!("report: {}", report.markdown.display());
    Ok(())
}
