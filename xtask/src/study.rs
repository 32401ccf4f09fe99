//! `cargo xtask phantom-study`: the phantom study of `configs/experiments/phantom-study/` (or
//! of another folder of experiment configs, `--configs`).
//! Runs each experiment (finished runs are kept, so an interrupted study resumes), then
//! `cmedl study` writes `summary.md` and a figure per arm into the study folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask phantom-study`.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// Folder of the study's experiment configs (every `*.json` in it).
    #[arg(long, default_value = "configs/experiments/phantom-study")]
    configs: PathBuf,
    /// Folder of the study's experiments.
    #[arg(long, default_value = "runs/phantom-study")]
    out: PathBuf,
    /// Run only the configs whose file name contains this (the summary covers every
    /// experiment already in the folder).
    #[arg(long)]
    only: Option<String>,
}

fn configs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    Ok(out)
}

fn cmedl(binary: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("$ cmedl {}", shown.join(" "));
    let status = Command::new(binary)
        .args(args)
        .status()
        .context("cannot run cmedl")?;
    if !status.success() {
        bail!("`cmedl {}` failed ({status})", shown.join(" "));
    }
    Ok(())
}

/// Runs the study and summarises it.
pub fn run(root: &Path, args: &StudyArgs) -> Result<()> {
    crate::libtorch::fetch(root, &crate::libtorch::FetchArgs::default())?;
    crate::cargo(root, &["build", "--release", "--package", "cmedl-cli"])?;
    let binary = root.join("target/release/cmedl");
    let out = root.join(&args.out);
    let mut done = Vec::new();
    for config in configs(&root.join(&args.configs))? {
        let stem = config.file_stem().unwrap_or_default().to_owned();
        let exp = out.join(&stem);
        if args
            .only
            .as_deref()
            .is_none_or(|o| stem.to_string_lossy().contains(o))
        {
            // Two runs side by side, a core each, as the demo does.
            let flags = [
                "experiment".as_ref(),
                "--devices".as_ref(),
                "cpu,cpu".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ];
            cmedl(
                &binary,
                &[&flags[..], &["--out".as_ref(), exp.as_os_str()]].concat(),
            )?;
        }
        if exp.join("runs.json").exists() {
            done.push(exp);
        }
    }
    let mut study: Vec<&std::ffi::OsStr> =
        vec!["study".as_ref(), "--out".as_ref(), out.as_os_str()];
    study.extend(done.iter().map(|p| p.as_os_str()));
    cmedl(&binary, &study)
}
