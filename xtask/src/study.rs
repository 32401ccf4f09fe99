//! `cargo xtask phantom-study`: the phantom study of `configs/experiments/phantom-study/`.
//! Runs each experiment (finished runs are kept, so it can be resumed), measures the cohort's
//! tumour CNR, and writes `summary.md`: every arm against ct-only at each CT contrast level.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Options of `cargo xtask phantom-study`.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// Folder of the study's experiments.
    #[arg(long, default_value = "runs/phantom-study")]
    out: PathBuf,
    /// Run only the configs whose file name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Summarise what is there without running anything.
    #[arg(long)]
    summary_only: bool,
}

fn configs(root: &Path, only: Option<&str>) -> Result<Vec<PathBuf>> {
    let dir = root.join("configs/experiments/phantom-study");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| only.is_none_or(|o| p.to_string_lossy().contains(o)))
        .collect();
    out.sort();
    Ok(out)
}

/// The mean CT CNR per location of the cohort a recipe generates (`cmedl phantom --stats`).
fn measured_cnr(cmedl: &Path, recipe: &Value, out: &Path) -> Result<Vec<(String, f64)>> {
    let n = |k: &str| recipe[k].as_u64().unwrap_or(0).to_string();
    let spacing: Vec<String> = recipe["spacing"]
        .as_array()
        .context("recipe without spacing")?
        .iter()
        .map(|v| v.to_string())
        .collect();
    let ct = &recipe["ct_imaging"];
    let noise: Vec<String> = ct["noise_hu"]
        .as_array()
        .map(|a| a.iter().map(|v| v.to_string()).collect())
        .unwrap_or_else(|| vec!["10".into(), "30".into()]);
    let _ = std::fs::remove_dir_all(out);
    let result = Command::new(cmedl)
        .args([
            "phantom", "--quiet", "--stats", "--mr", "0", "--val", "0", "--test", "0",
        ])
        .arg("--out")
        .arg(out)
        .args([
            "--ct",
            &n("test"),
            "--size",
            &n("size"),
            "--slices",
            &n("slices"),
        ])
        .args(["--spacing", &spacing.join(","), "--seed", &n("seed")])
        .args([
            "--ct-tumour-offset",
            &ct["tumour_offset_hu"].as_f64().unwrap_or(0.0).to_string(),
        ])
        .args(["--ct-noise", &noise.join(",")])
        .output()
        .context("cannot run cmedl phantom")?;
    let _ = std::fs::remove_dir_all(out);
    if !result.status.success() {
        bail!(
            "cmedl phantom failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&result.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[0] == "ct").then(|| Some((f[1].to_owned(), f[3].parse().ok()?)))?
        })
        .collect())
}

/// One table row per arm and outcome of an experiment's `comparisons.json`.
fn rows(level: &str, cnr: &[(String, f64)], comparisons: &Value) -> Vec<String> {
    let med = cnr
        .iter()
        .find(|(k, _)| k == "mediastinal")
        .map_or("?".into(), |(_, v)| format!("{v:.2}"));
    let num = |v: &Value, k: &str| v[k].as_f64();
    comparisons
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["arm"]["mode"] != "cmedl-no-distill")
        .map(|c| {
            let arm = &c["arm"];
            let name = match arm["variant"].as_str() {
                Some(v) => format!("{}+{v}", arm["mode"].as_str().unwrap_or("?")),
                None => arm["mode"].as_str().unwrap_or("?").to_owned(),
            };
            let outcome = match &c["outcome"] {
                Value::Object(o) if o.contains_key("case") => o["case"].as_str().unwrap_or("?").to_owned(),
                Value::Object(o) => match o["lesion_dice"].as_str() {
                    Some(l) => format!("lesion dice, {l}"),
                    None => "lesion dice".to_owned(),
                },
                other => other.to_string(),
            };
            let d = &c["difference"];
            let diff = match (num(d, "mean"), num(d, "low"), num(d, "high")) {
                (Some(m), Some(l), Some(h)) => format!("{m:+.3} [{l:+.3}, {h:+.3}]"),
                _ => "–".into(),
            };
            let p = num(&c["wilcoxon"], "p_value").map_or("–".into(), |p| format!("{p:.4}"));
            let holm = num(c, "p_holm").map_or("–".into(), |p| format!("{p:.4}"));
            let verdict = match num(c, "p_holm") {
                Some(q) if q < 0.05 => "significant",
                Some(_) => "not significant",
                None => "no test",
            };
            format!(
                "| {level} | {med} | {name} | {outcome} | {} | {} | {diff} | {p} | {holm} | ±{:.3} | {verdict} |",
                c["seeds"], c["n"], num(c, "detectable").unwrap_or(f64::NAN)
            )
        })
        .collect()
}

/// Runs the study and writes `OUT/summary.md`.
pub fn run(root: &Path, args: &StudyArgs) -> Result<()> {
    if !args.summary_only {
        crate::libtorch::fetch(root, &crate::libtorch::FetchArgs::default())?;
        crate::cargo(root, &["build", "--release", "--package", "cmedl-cli"])?;
    }
    let cmedl = root.join("target/release/cmedl");
    let out = root.join(&args.out);
    let mut table = vec![
        "| level | mediastinal CT CNR | arm | outcome | seeds | n | mean difference vs ct-only [95 % CI] | Wilcoxon p | Holm p | detectable (80 %) | verdict |".to_owned(),
        "|---|---|---|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    for config in configs(root, args.only.as_deref())? {
        let stem = config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exp = out.join(&stem);
        if !args.summary_only {
            eprintln!(
                "$ cmedl experiment --config {} --out {}",
                config.display(),
                exp.display()
            );
            let status = Command::new(&cmedl)
                .args(["experiment", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&exp)
                .status()
                .context("cannot run cmedl experiment")?;
            if !status.success() {
                bail!("the experiment {} failed ({status})", config.display());
            }
        }
        let recipe: Value = serde_json::from_str(&std::fs::read_to_string(&config)?)?;
        let cnr = measured_cnr(
            &cmedl,
            &recipe["data"]["phantom"],
            &out.join(format!("{stem}-cnr")),
        )?;
        let cmp_file = exp.join("comparisons.json");
        let Ok(text) = std::fs::read_to_string(&cmp_file) else {
            eprintln!("{}: not run yet", cmp_file.display());
            continue;
        };
        table.extend(rows(&stem, &cnr, &serde_json::from_str(&text)?));
    }
    std::fs::create_dir_all(&out)?;
    let summary = out.join("summary.md");
    std::fs::write(&summary, table.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", summary.display()))?;
    eprintln!("summary: {}", summary.display());
    Ok(())
}
