//! `cargo xtask bench`: cmedl's benchmarks next to the plain-PyTorch reference, in one run on
//! one machine, as JSON lines and a table with the ratio cmedl / PyTorch.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::libtorch;

fn json_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// Extracts `"key":number` from a JSON line (the lines are flat where it matters).
fn number(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let rest = line
        .split(&pat)
        .nth(1)
        .or_else(|| line.split(&format!("\"{key}\": ")).nth(1))?;
    rest.trim_start()
        .split([',', '}'])
        .next()?
        .trim()
        .parse()
        .ok()
}

fn text(line: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    line.split(&pat)
        .nth(1)
        .or_else(|| line.split(&format!("\"{key}\": ")).nth(1))
        .and_then(|r| r.trim_start().strip_prefix('"'))
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned()
}

/// Runs the benchmarks and prints JSON lines and a table.
pub fn run(root: &Path, quick: bool, device: &str, paper: bool, steps: usize) -> Result<()> {
    let torch = libtorch::fetch(root, &libtorch::FetchArgs::default())?;
    crate::cargo(root, &["build", "--release", "--package", "cmedl-cli"])?;
    let cmedl = root.join("target/release/cmedl");
    let python = torch
        .ancestors()
        .nth(4)
        .map(|venv| venv.join("bin/python"))
        .filter(|p| p.exists())
        .context("the libtorch virtual environment has no bin/python")?;
    let steps = if quick { 3 } else { steps };
    let mut configs = vec!["cpu"];
    if paper && !quick {
        configs.push("paper");
    }
    let mut lines = Vec::new();
    for config in configs {
        let what = if quick {
            "train,loader"
        } else {
            "train,predict,loader"
        };
        let out = Command::new(&cmedl)
            .args([
                "bench",
                "--what",
                what,
                "--config",
                config,
                "--device",
                device,
                "--steps",
                &steps.to_string(),
            ])
            .output()
            .context("cannot run cmedl bench")?;
        if !out.status.success() {
            bail!(
                "cmedl bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lines.extend(json_lines(&out.stdout));
        let reference = root.join("benches/reference/cmedl_step.py");
        let out = Command::new(&python)
            .arg(&reference)
            .args([
                "--config",
                config,
                "--device",
                device,
                "--steps",
                &steps.to_string(),
            ])
            .output()
            .context("cannot run the PyTorch reference")?;
        if !out.status.success() {
            bail!(
                "the PyTorch reference failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lines.extend(json_lines(&out.stdout));
    }
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let mut log = std::fs::read_to_string(dir.join("results.jsonl")).unwrap_or_default();
    for l in &lines {
        println!("{l}");
        log.push_str(l);
        log.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), log)?;
    println!();
    println!(
        "{:<18} {:<7} {:<8} {:>14} {:>14} {:>8}",
        "benchmark", "config", "device", "cmedl", "PyTorch", "ratio"
    );
    for l in lines.iter().filter(|l| text(l, "impl") == "cmedl") {
        let (bench, config) = (text(l, "bench"), text(l, "config"));
        let (value, unit) = match number(l, "slices_per_s") {
            Some(v) => (v, "slices/s"),
            None => (number(l, "seconds").unwrap_or(f64::NAN), "s"),
        };
        let reference = lines
            .iter()
            .find(|r| {
                text(r, "impl") == "pytorch"
                    && text(r, "bench") == bench
                    && text(r, "config") == config
            })
            .and_then(|r| number(r, "slices_per_s"));
        let (r_text, ratio) = match reference {
            Some(r) => (format!("{r:.2} {unit}"), format!("{:.2}", value / r)),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!(
            "{:<18} {:<7} {:<8} {:>14} {:>14} {:>8}",
            bench,
            config,
            text(l, "device"),
            format!("{value:.2} {unit}"),
            r_text,
            ratio
        );
    }
    Ok(())
}
