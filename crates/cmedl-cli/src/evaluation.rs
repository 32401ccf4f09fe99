//! `cmedl evaluate`: metrics of predicted label maps against references, and paired comparisons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmedl_io::nifti::{read_mask, stem, ReadOptions};
use cmedl_io::resample_mask;
use cmedl_metrics::stats::{
    bootstrap_mean_difference, summarize, wilcoxon_signed_rank, MeanDifference, Summary, Wilcoxon,
};
use cmedl_metrics::{label_metrics, CaseMetrics, MetricOptions};
use serde::Serialize;

use crate::failure::Failure;
use crate::predict_cmd::nifti_files;

/// Metrics of one case and label.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    /// Case name (file name without extension).
    pub case: String,
    /// Label value.
    pub label: u8,
    /// The metrics.
    pub metrics: CaseMetrics,
}

/// The metrics compared between methods.
pub const METRICS: [&str; 5] = [
    "dice",
    "surface_dice",
    "hd95",
    "asd_ref_to_pred",
    "asd_pred_to_ref",
];

/// A metric's value by name.
pub fn metric(m: &CaseMetrics, name: &str) -> f64 {
    match name {
        "dice" => m.dice,
        "surface_dice" => m.surface_dice,
        "hd95" => m.hd95,
        "hd" => m.hd,
        "asd_ref_to_pred" => m.asd_ref_to_pred,
        "asd_pred_to_ref" => m.asd_pred_to_ref,
        _ => f64::NAN,
    }
}

/// Paired comparison of one metric between two methods on the same cases.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Label value.
    pub label: u8,
    /// Metric name.
    pub metric: String,
    /// Wilcoxon signed-rank test of A − B (none when no pair differs).
    pub wilcoxon: Option<Wilcoxon>,
    /// Matched-pairs rank-biserial correlation (W⁺ − W⁻)/(W⁺ + W⁻).
    pub rank_biserial: Option<f64>,
    /// Mean difference A − B with a 95 % bootstrap interval.
    pub difference: Option<MeanDifference>,
}

/// Evaluates every reference file of `reference` against the file of the same name in `pred`.
pub fn evaluate_dirs(
    pred: &Path,
    reference: &Path,
    labels: &[u8],
    options: &MetricOptions,
    resample_pred: bool,
) -> Result<Vec<CaseRow>, Failure> {
    let refs = nifti_files(reference)?;
    if refs.is_empty() {
        return Err(Failure::Input(format!(
            "{}: no .nii or .nii.gz reference files",
            reference.display()
        )));
    }
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for r in &refs {
        let name = stem(r);
        let candidates = [
            pred.join(format!("{name}.nii.gz")),
            pred.join(format!("{name}.nii")),
        ];
        let Some(p) = candidates.iter().find(|p| p.exists()) else {
            missing.push(name);
            continue;
        };
        rows.extend(evaluate_pair(p, r, &name, labels, options, resample_pred)?);
    }
    if !missing.is_empty() {
        return Err(Failure::Input(format!(
            "{}: no prediction for {} reference case(s): {}",
            pred.display(),
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(rows)
}

/// Metrics of one prediction file against one reference file.
pub fn evaluate_pair(
    pred: &Path,
    reference: &Path,
    name: &str,
    labels: &[u8],
    options: &MetricOptions,
    resample_pred: bool,
) -> Result<Vec<CaseRow>, Failure> {
    let opts = ReadOptions::default();
    let r = read_mask(reference, &opts)?;
    let mut p = read_mask(pred, &opts)?;
    if !p.geometry.same_grid(&r.geometry, 1e-3) {
        if !resample_pred {
            return Err(Failure::Input(format!(
                "{}: grid {:?} with affine {:?} differs from the reference {} ({:?}, {:?}); pass --resample-pred to resample it",
                pred.display(),
                p.geometry.shape,
                p.geometry.affine,
                reference.display(),
                r.geometry.shape,
                r.geometry.affine
            )));
        }
        p = resample_mask(&p, &r.geometry)?;
    }
    let out = label_metrics(
        &p.data,
        &r.data,
        r.geometry.shape,
        r.geometry.spacing,
        labels,
        options,
    )
    .map_err(|e| Failure::Input(format!("{}: {e}", pred.display())))?;
    Ok(out
        .into_iter()
        .map(|(label, metrics)| CaseRow {
            case: name.to_owned(),
            label,
            metrics,
        })
        .collect())
}

/// Summaries per label and metric.
pub fn summaries(rows: &[CaseRow]) -> BTreeMap<u8, BTreeMap<String, Summary>> {
    let mut out: BTreeMap<u8, BTreeMap<String, Summary>> = BTreeMap::new();
    let labels: std::collections::BTreeSet<u8> = rows.iter().map(|r| r.label).collect();
    for label in labels {
        let mine: Vec<&CaseRow> = rows.iter().filter(|r| r.label == label).collect();
        let entry = out.entry(label).or_default();
        for m in METRICS.iter().chain(&["hd"]) {
            let values: Vec<f64> = mine.iter().map(|r| metric(&r.metrics, m)).collect();
            entry.insert((*m).to_owned(), summarize(&values));
        }
    }
    out
}

/// Paired comparisons of A against B over the cases both have.
pub fn compare(a: &[CaseRow], b: &[CaseRow], seed: u64) -> Vec<Comparison> {
    let mut out = Vec::new();
    let labels: std::collections::BTreeSet<u8> = a.iter().map(|r| r.label).collect();
    for label in labels {
        for m in METRICS {
            let mut xa = Vec::new();
            let mut xb = Vec::new();
            for ra in a.iter().filter(|r| r.label == label) {
                if let Some(rb) = b.iter().find(|r| r.label == label && r.case == ra.case) {
                    xa.push(metric(&ra.metrics, m));
                    xb.push(metric(&rb.metrics, m));
                }
            }
            let w = wilcoxon_signed_rank(&xa, &xb);
            let rank_biserial = w
                .as_ref()
                .map(|w| (w.w_plus - w.w_minus) / (w.w_plus + w.w_minus));
            out.push(Comparison {
                label,
                metric: m.to_owned(),
                wilcoxon: w,
                rank_biserial,
                difference: bootstrap_mean_difference(&xa, &xb, 10_000, 0.95, seed),
            });
        }
    }
    out
}

/// A fixed-width table of the summaries.
pub fn table(summaries: &BTreeMap<u8, BTreeMap<String, Summary>>, tolerance: f64) -> String {
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

/// Writes the per-case rows as CSV.
pub fn write_csv(path: &Path, rows: &[CaseRow]) -> Result<(), Failure> {
    let mut s = String::from("case,label,dice,surface_dice,hd95,hd,asd_ref_to_pred,asd_pred_to_ref,ref_voxels,pred_voxels\n");
    for r in rows {
        let m = &r.metrics;
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.case,
            r.label,
            m.dice,
            m.surface_dice,
            m.hd95,
            m.hd,
            m.asd_ref_to_pred,
            m.asd_pred_to_ref,
            m.ref_voxels,
            m.pred_voxels
        );
    }
    std::fs::write(path, s).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// Options of `cmedl evaluate`.
pub struct EvaluateArgs {
    /// Predictions.
    pub pred: PathBuf,
    /// References.
    pub reference: PathBuf,
    /// Surface Dice tolerance.
    pub tolerance_mm: f64,
    /// Labels.
    pub labels: Vec<u8>,
    /// JSON summary file.
    pub out: Option<PathBuf>,
    /// Per-case CSV.
    pub csv: Option<PathBuf>,
    /// Second method for paired tests.
    pub compare: Option<PathBuf>,
    /// Resample predictions on mismatched grids.
    pub resample_pred: bool,
}

/// Runs `cmedl evaluate`.
pub fn run(args: EvaluateArgs) -> Result<(), Failure> {
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
    let rows = evaluate_dirs(
        &args.pred,
        &args.reference,
        &args.labels,
        &options,
        args.resample_pred,
    )?;
    let sums = summaries(&rows);
    crate::out!("{}", table(&sums, args.tolerance_mm));
    let comparison = match &args.compare {
        Some(other) => {
            let b = evaluate_dirs(
                other,
                &args.reference,
                &args.labels,
                &options,
                args.resample_pred,
            )?;
            let cmp = compare(&rows, &b, 0);
            crate::outln!(
                "\npaired comparison: {} − {}",
                args.pred.display(),
                other.display()
            );
            for c in &cmp {
                if let (Some(w), Some(d)) = (&c.wilcoxon, &c.difference) {
                    crate::outln!("label {} {:<16} mean diff {:+.4} [{:+.4}, {:+.4}]  Wilcoxon p = {:.4} ({}, n = {})", c.label, c.metric, d.mean, d.low, d.high, w.p_value, if w.exact { "exact" } else { "normal approx." }, w.n);
                }
            }
            Some(cmp)
        }
        None => None,
    };
    if let Some(csv) = &args.csv {
        write_csv(csv, &rows)?;
    }
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "tolerance_mm": args.tolerance_mm,
            "labels": args.labels,
            "conventions": "surface elements on voxel corners (DeepMind surface-distance); HD95 = larger of the two directed 95th percentiles",
            "cases": rows,
            "summary": sums,
            "comparison": comparison,
        });
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| Failure::Internal(e.to_string()))?;
        std::fs::write(out, text).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
    }
    Ok(())
}
