//! `cmedl experiment`: train modes on the same data and seeds, predict and evaluate the test
//! split, compare every mode with `ct-only`, and write the report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cmedl_experiment::{run_experiment, ExperimentOptions};

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
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // A second Ctrl-C while saving still ends the process.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving the latest checkpoint of the run in training…");
    });
    let options = ExperimentOptions {
        interrupt: Some(interrupt),
    };
    let report = run_experiment(&args.config, &args.out, &options)?;
    eprintln!("report: {}", report.markdown.display());
    Ok(())
}
