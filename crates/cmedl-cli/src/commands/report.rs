//! `cmedl report`: regenerate the report of an experiment or run folder from its files.

use std::path::PathBuf;

use crate::failure::CmdResult;
use crate::Global;

/// Options of `cmedl report`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment folder or run folder.
    dir: PathBuf,
}

/// Runs `cmedl report`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let files = cmedl_experiment::report::write_report(&args.dir)?;
    eprintln!(
        "wrote {} and {}",
        files.markdown.display(),
        files.html.display()
    );
    Ok(())
}
