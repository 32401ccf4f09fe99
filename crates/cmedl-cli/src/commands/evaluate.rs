//! `cmedl evaluate`: metrics of predicted label maps against references, and paired
//! comparisons with a second prediction folder.

use std::path::{Path, PathBuf};

use cmedl_experiment::{compare, evaluate_dirs, summaries, write_csv, Comparison, Summaries};
use cmedl_metrics::MetricOptions;
use serde::Serialize;

use crate::common::{check_outputs, image_files};
use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl evaluate`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of predicted masks.
    #[arg(long)]
    pred: PathBuf,
    /// Folder of reference masks (matched by file name).
    #[arg(long = "ref")]
    reference: PathBuf,
    /// Surface Dice tolerance in mm.
    #[arg(long, default_value_t = 2.0)]
    tolerance_mm: f64,
    /// Labels to score, comma-separated.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    labels: Vec<u8>,
    /// JSON summary file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Per-case CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// A second prediction folder: paired Wilcoxon tests and bootstrap intervals (pred − other).
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Resample predictions whose grid differs from the reference (nearest neighbour).
    #[arg(long)]
    resample_pred: bool,
}

/// The `--out` file.
#[derive(Serialize)]
struct EvaluationFile<'a> {
    tolerance_mm: f64,
    labels: &'a [u8],
    conventions: &'static str,
    cases: &'a [cmedl_experiment::CaseRow],
    summary: &'a Summaries,
    comparison: Option<&'a [Comparison]>,
}

/// A fixed-width table of the summaries.
fn table(summaries: &Summaries, tolerance: f64) -> String {
    let mut s = format!(
        "{:<6} {:<16} {:>5} {:>18} {:>9} {:>17} {:>5} {:>5}\n",
        "label", "metric", "n", "mean ± sd", "median", "IQR", "NaN", "inf"
    );
    for (label, metrics) in summaries {
        for (name, sm) in metrics {
            let shown = if name == "surface_dice" {
                format!("sDSC@{tolerance}mm")
            } else {
                name.clone()
            };
            s += &format!(
                "{:<6} {:<16} {:>5} {:>18} {:>9.4} {:>17} {:>5} {:>5}\n",
                label,
                shown,
                sm.n,
                format!("{:.4} ± {:.4}", sm.mean, sm.sd),
                sm.median,
                format!("[{:.3}, {:.3}]", sm.q1, sm.q3),
                sm.nan,
                sm.inf
            );
        }
    }
    s
}

fn print_comparison(args: &Args, other: &std::path::Path, cmp: &[Comparison]) {
    outln!(
        "\npaired comparison: {} − {}",
        args.pred.display(),
        other.display()
    );
    for c in cmp {
        if let (Some(w), Some(d)) = (&c.wilcoxon, &c.difference) {
            outln!(
                "label {} {:<16} mean diff {:+.4} [{:+.4}, {:+.4}]  Wilcoxon p = {:.4} ({}, n = {})",
                c.label,
                c.metric.name(),
                d.mean,
                d.low,
                d.high,
                w.p_value,
                if w.exact { "exact" } else { "normal approx." },
                w.n
            );
        }
    }
}

/// Runs `cmedl evaluate`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    if !(args.tolerance_mm.is_finite() && args.tolerance_mm >= 0.0) {
        return Err(Failure::Input(format!(
            "--tolerance-mm must be a non-negative number, got {}",
            args.tolerance_mm
        )));
    }
    let options = MetricOptions {
        tolerance_mm: args.tolerance_mm,
        ..Default::default()
    };
    let evaluate = |pred| {
        evaluate_dirs(
            pred,
            &args.reference,
            &args.labels,
            &options,
            args.resample_pred,
        )
    };
    // Neither summary may replace a mask the evaluation reads, nor the other summary.
    let mut inputs = Vec::new();
    for dir in [
        Some(&args.pred),
        Some(&args.reference),
        args.compare.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        inputs.extend(image_files(dir).unwrap_or_default());
    }
    let outputs: Vec<(&str, &Path)> = [("--out", &args.out), ("--csv", &args.csv)]
        .into_iter()
        .filter_map(|(o, p)| p.as_deref().map(|p| (o, p)))
        .collect();
    check_outputs(&inputs, &outputs)?;
    let rows = evaluate(&args.pred)?;
    let sums = summaries(&rows);
    out!("{}", table(&sums, args.tolerance_mm));
    let comparison = match &args.compare {
        Some(other) => {
            let cmp = compare(&rows, &evaluate(other)?, 0);
            print_comparison(&args, other, &cmp);
            Some(cmp)
        }
        None => None,
    };
    if let Some(csv) = &args.csv {
        write_csv(csv, &rows)?;
    }
    if let Some(out) = &args.out {
        let file = EvaluationFile {
            tolerance_mm: args.tolerance_mm,
            labels: &args.labels,
            conventions: "surface elements on voxel corners with DeepMind surface-distance's element areas; HD95 = larger of the two directed 95th percentiles",
            cases: &rows,
            summary: &sums,
            comparison: comparison.as_deref(),
        };
        let text =
            serde_json::to_string_pretty(&file).map_err(|e| Failure::Internal(e.to_string()))?;
        std::fs::write(out, text).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
    }
    Ok(())
}
