//! `cmedl study`: experiments that differ in one data setting, summarised together.

use std::path::PathBuf;

use cmedl_experiment::study::{study_figures, study_point, study_table};

use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl study`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment folders (e.g. one per CT tumour contrast).
    #[arg(required = true)]
    experiments: Vec<PathBuf>,
    /// Folder for summary.md and the figures (created).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cmedl study`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let mut points = Vec::new();
    for e in &args.experiments {
        points.push(study_point(e)?);
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.out.display())))?;
    let summary = args.out.join("summary.md");
    std::fs::write(&summary, study_table(&points))
        .map_err(|e| Failure::Internal(format!("{}: {e}", summary.display())))?;
    let figures = study_figures(&points, &args.out)?;
    eprintln!(
        "wrote {} and {} figure(s) in {}",
        summary.display(),
        figures.len(),
        args.out.display()
    );
    Ok(())
}
