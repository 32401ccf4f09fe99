//! `cargo xtask bench`: cmedl's benchmarks next to the plain-PyTorch reference, in one run on
//! one machine, as JSON lines and a table with the ratio cmedl / PyTorch.

use std::path::Path;
use std::process::Command;

use std::io::Write;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::libtorch;

/// The JSON objects a benchmark printed, one per line (other lines are progress text).
fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn number(line: &Value, key: &str) -> Option<f64> {
    line.get(key).and_then(Value::as_f64)
}

fn text(line: &Value, key: &str) -> String {
    line.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The median of `values` (NaN when empty).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs a benchmark command and returns its JSON lines.
fn run_json(mut cmd: Command, what: &str) -> Result<Vec<Value>> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(json_lines(&out.stdout))
}

/// Prints the JSON lines and appends them to `target/bench/results.jsonl`.
fn record(root: &Path, lines: &[Value]) -> Result<()> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("results.jsonl"))?;
    for l in lines {
        println!("{l}");
        writeln!(log, "{l}")?;
    }
    Ok(())
}

/// Runs the benchmarks and prints JSON lines and a table.
pub fn run(
    root: &Path,
    quick: bool,
    device: &str,
    paper: bool,
    steps: usize,
    rounds: usize,
) -> Result<()> {
    let torch = libtorch::fetch(root, &libtorch::FetchArgs::default())?;
    crate::cargo(root, &["build", "--release", "--package", "cmedl-cli"])?;
    let cmedl = root.join("target/release/cmedl");
    let python = torch
        .ancestors()
        .nth(4)
        .map(|venv| venv.join("bin/python"))
        .filter(|p| p.exists())
        .context("the libtorch virtual environment has no bin/python")?;
    let (steps, rounds) = if quick { (3, 1) } else { (steps, rounds) };
    let mut configs = vec!["cpu"];
    if paper && !quick {
        configs.push("paper");
    }
    let mut lines = Vec::new();
    for config in configs {
        // The training step alternates between cmedl and the reference `rounds` times; the table
        // takes the median, so a slow phase of a shared machine cannot favour either side.
        for round in 0..rounds.max(1) {
            let what = match (round, quick) {
                (0, true) => "train,loader",
                (0, false) => "train,predict,loader",
                _ => "train",
            };
            let mut cmd = Command::new(&cmedl);
            cmd.args([
                "bench", "--what", what, "--config", config, "--device", device,
            ])
            .args(["--steps", &steps.to_string()]);
            lines.extend(run_json(cmd, "cmedl bench")?);
            let mut cmd = Command::new(&python);
            cmd.arg(root.join("benches/reference/cmedl_step.py"))
                .args(["--config", config, "--device", device])
                .args(["--steps", &steps.to_string()]);
            lines.extend(run_json(cmd, "the PyTorch reference")?);
        }
    }
    record(root, &lines)?;
    println!();
    println!(
        "{:<18} {:<7} {:<8} {:>14} {:>14} {:>8}",
        "benchmark", "config", "device", "cmedl", "PyTorch", "ratio"
    );
    let mut shown: Vec<(String, String)> = Vec::new();
    for l in lines.iter().filter(|l| text(l, "impl") == "cmedl") {
        let (bench, config) = (text(l, "bench"), text(l, "config"));
        if shown.contains(&(bench.clone(), config.clone())) {
            continue;
        }
        shown.push((bench.clone(), config.clone()));
        let values = |implementation: &str, key: &str| -> Vec<f64> {
            lines
                .iter()
                .filter(|r| {
                    text(r, "impl") == implementation
                        && text(r, "bench") == bench
                        && text(r, "config") == config
                })
                .filter_map(|r| number(r, key))
                .collect()
        };
        // Throughput: the median step (when reported) over rounds; else seconds.
        let (key, unit) = if number(l, "slices_per_s_median").is_some() {
            ("slices_per_s_median", "slices/s")
        } else if number(l, "slices_per_s").is_some() {
            ("slices_per_s", "slices/s")
        } else {
            ("seconds", "s")
        };
        let mut rows = vec![(bench.clone(), key, unit, false)];
        if number(l, "optimizer_ms").is_some() {
            rows.push(("optimizer".to_owned(), "optimizer_ms", "ms", true));
        }
        if bench == "train" && number(l, "peak_rss_mib").is_some() {
            rows.push(("peak RSS".to_owned(), "peak_rss_mib", "MiB", true));
        }
        for (name, key, unit, lower_is_better) in rows {
            let (ours, theirs) = (values("cmedl", key), values("pytorch", key));
            // Round by round (the two ran back to back), then the median of those ratios.
            let ratio = median(
                ours.iter()
                    .zip(&theirs)
                    .map(|(o, t)| if lower_is_better { t / o } else { o / t })
                    .collect(),
            );
            let (value, reference) = (median(ours), median(theirs));
            let (r_text, ratio) = if reference.is_finite() {
                (format!("{reference:.2} {unit}"), format!("{ratio:.2}"))
            } else {
                ("–".to_owned(), "–".to_owned())
            };
            println!(
                "{:<18} {:<7} {:<8} {:>14} {:>14} {:>8}",
                name,
                config,
                text(l, "device"),
                format!("{value:.2} {unit}"),
                r_text,
                ratio
            );
        }
    }
    if rounds > 1 {
        println!(
            "(medians over {rounds} alternating rounds; ratio: median of the per-round ratios, \
             > 1 when cmedl is faster or smaller; optimizer: the three Adam steps alone)"
        );
    }
    Ok(())
}

/// Data-parallel scaling of the training step: `nproc` processes under torchrun against one,
/// for cmedl and for the PyTorch reference (DistributedDataParallel), `rounds` times
/// alternating; prints JSON lines, the throughputs and the scaling efficiency (throughput with
/// N processes / (N × throughput with one)).
pub fn scaling(
    root: &Path,
    nproc: usize,
    device: &str,
    paper: bool,
    steps: usize,
    rounds: usize,
) -> Result<()> {
    if nproc < 2 {
        bail!("--nproc needs at least 2 processes");
    }
    let torch = libtorch::fetch(root, &libtorch::FetchArgs::default())?;
    crate::cargo(root, &["build", "--release", "--package", "cmedl-cli"])?;
    let cmedl = root.join("target/release/cmedl");
    let venv = torch
        .ancestors()
        .nth(4)
        .context("torch sits in a virtual environment")?
        .to_path_buf();
    let (python, torchrun) = (venv.join("bin/python"), venv.join("bin/torchrun"));
    if !torchrun.exists() {
        bail!("{} is missing", torchrun.display());
    }
    let reference = root.join("benches/reference/cmedl_step.py");
    let config = if paper { "paper" } else { "cpu" };
    let step_args = [
        "--config".to_owned(),
        config.to_owned(),
        "--device".to_owned(),
        device.to_owned(),
        "--steps".to_owned(),
        steps.to_string(),
    ];
    // Each process gets its share of the cores, as PyTorch's launcher does by default.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = |procs: usize| (cores / procs).max(1).to_string();
    let mut lines = Vec::new();
    for _ in 0..rounds.max(1) {
        let mut one = Command::new(&cmedl);
        one.args(["bench", "--what", "train"])
            .args(step_args.iter())
            .env("OMP_NUM_THREADS", threads(1));
        lines.extend(run_json(one, "cmedl bench (1 process)")?);
        let mut many = Command::new(&torchrun);
        many.args([
            "--standalone",
            "--nproc-per-node",
            &nproc.to_string(),
            "--no-python",
        ])
        .arg(&cmedl)
        .args(["bench", "--what", "train"])
        .args(step_args.iter())
        .env("OMP_NUM_THREADS", threads(nproc));
        lines.extend(run_json(many, "cmedl bench under torchrun")?);
        let mut one = Command::new(&python);
        one.arg(&reference)
            .args(step_args.iter())
            .env("OMP_NUM_THREADS", threads(1));
        lines.extend(run_json(one, "the PyTorch reference (1 process)")?);
        let mut many = Command::new(&torchrun);
        many.args(["--standalone", "--nproc-per-node", &nproc.to_string()])
            .arg(&reference)
            .args(step_args.iter())
            .env("OMP_NUM_THREADS", threads(nproc));
        lines.extend(run_json(
            many,
            "the PyTorch reference under torchrun (DDP)",
        )?);
    }
    record(root, &lines)?;
    let throughput = |implementation: &str, world: usize| {
        median(
            lines
                .iter()
                .filter(|l| text(l, "impl") == implementation)
                .filter(|l| number(l, "world_size").unwrap_or(1.0) == world as f64)
                .filter_map(|l| number(l, "slices_per_s"))
                .collect(),
        )
    };
    println!();
    println!(
        "{:<8} {:>16} {:>16} {:>9} {:>11}",
        "impl",
        "1 process",
        format!("{nproc} processes"),
        "speed-up",
        "efficiency"
    );
    for implementation in ["cmedl", "pytorch"] {
        let (t1, tn) = (
            throughput(implementation, 1),
            throughput(implementation, nproc),
        );
        println!(
            "{:<8} {:>16} {:>16} {:>9.2} {:>10.0} %",
            implementation,
            format!("{t1:.2} slices/s"),
            format!("{tn:.2} slices/s"),
            tn / t1,
            100.0 * tn / (nproc as f64 * t1)
        );
    }
    println!(
        "(training step, config {config}, {device}; medians of {} rounds; global batch fixed)",
        rounds.max(1)
    );
    Ok(())
}
