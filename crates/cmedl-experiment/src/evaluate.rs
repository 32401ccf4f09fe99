//! Scoring predictions against references, per case and label, and paired comparisons of two
//! methods on the same cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cmedl_io::formats::{image_stem, is_image_path, read_label_image};
use cmedl_io::nifti::ReadOptions;
use cmedl_io::{resample_mask, Mask};
use cmedl_metrics::stats::{
    bootstrap_mean_difference, summarize, wilcoxon_signed_rank, MeanDifference, Summary, Wilcoxon,
};
use cmedl_metrics::{label_metrics, CaseMetrics, MetricOptions};
use serde::{Deserialize, Serialize};

use crate::ExperimentError;

/// Metrics of one case and label. NaN and infinities are kept in JSON as `"nan"`, `"inf"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRow {
    /// Case name (file name without extension).
    pub case: String,
    /// Label value.
    pub label: u8,
    /// The metrics.
    pub metrics: CaseMetrics,
}

/// A per-case metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Dice similarity coefficient.
    Dice,
    /// Normalised surface Dice.
    SurfaceDice,
    /// Robust (95th percentile) Hausdorff distance in mm.
    Hd95,
    /// Hausdorff distance in mm.
    Hd,
    /// Mean distance from the reference border to the prediction's, in mm.
    AsdRefToPred,
    /// Mean distance from the prediction border to the reference's, in mm.
    AsdPredToRef,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 6] = [
        Self::Dice,
        Self::SurfaceDice,
        Self::Hd95,
        Self::Hd,
        Self::AsdRefToPred,
        Self::AsdPredToRef,
    ];

    /// The metrics compared between methods.
    pub const COMPARED: [Metric; 5] = [
        Self::Dice,
        Self::SurfaceDice,
        Self::Hd95,
        Self::AsdRefToPred,
        Self::AsdPredToRef,
    ];

    /// The name in files and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dice => "dice",
            Self::SurfaceDice => "surface_dice",
            Self::Hd95 => "hd95",
            Self::Hd => "hd",
            Self::AsdRefToPred => "asd_ref_to_pred",
            Self::AsdPredToRef => "asd_pred_to_ref",
        }
    }

    /// The value of this metric in `m`.
    pub fn of(self, m: &CaseMetrics) -> f64 {
        match self {
            Self::Dice => m.dice,
            Self::SurfaceDice => m.surface_dice,
            Self::Hd95 => m.hd95,
            Self::Hd => m.hd,
            Self::AsdRefToPred => m.asd_ref_to_pred,
            Self::AsdPredToRef => m.asd_pred_to_ref,
        }
    }
}

/// Paired comparison of one metric between two methods on the same cases.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Label value.
    pub label: u8,
    /// The metric.
    pub metric: Metric,
    /// Wilcoxon signed-rank test of A − B (none when no pair differs).
    pub wilcoxon: Option<Wilcoxon>,
    /// Matched-pairs rank-biserial correlation (W⁺ − W⁻)/(W⁺ + W⁻).
    pub rank_biserial: Option<f64>,
    /// Mean difference A − B with a 95 % bootstrap interval.
    pub difference: Option<MeanDifference>,
}

/// What the evaluation of a run wrote: per-case metrics, per-lesion metrics and per-case lesion
/// counts (`results/<run>.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Per-case (and label) metrics.
    pub cases: Vec<CaseRow>,
    /// Per-lesion metrics.
    #[serde(default)]
    pub lesions: Vec<crate::lesions::LesionRow>,
    /// Lesion counts per case (and label).
    #[serde(default)]
    pub case_lesions: Vec<crate::lesions::CaseLesions>,
    /// The translation of each case against the same patient's image in the teacher
    /// modality, where the dataset has it (runs with a translator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fidelity: Vec<FidelityRow>,
    /// Tumour contrast on the CT, its translation and the real MRI, measured alike (phantom
    /// data, runs with a translator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contrast: Vec<ContrastRow>,
    /// Every candidate post-processing rule scored on this run's validation cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::postprocess::ValidationScores>,
    /// The experiment's post-processing rule, when the numbers above are post-processed by it
    /// (none: raw predictions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<crate::postprocess::Rule>,
    /// The raw predictions' numbers, when a rule changed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Box<Scores>>,
}

/// The test-split numbers of one set of predictions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Per-case (and label) metrics.
    pub cases: Vec<CaseRow>,
    /// Per-lesion metrics.
    pub lesions: Vec<crate::lesions::LesionRow>,
    /// Lesion counts per case (and label).
    pub case_lesions: Vec<crate::lesions::CaseLesions>,
}

impl RunResults {
    /// The numbers of the raw predictions (these results' own when no rule changed them).
    pub fn raw_scores(&self) -> Scores {
        match &self.raw {
            Some(raw) => (**raw).clone(),
            None => Scores {
                cases: self.cases.clone(),
                lesions: self.lesions.clone(),
                case_lesions: self.case_lesions.clone(),
            },
        }
    }
}

/// One tumour's contrast-to-noise ratio on the CT, on the run's translation of it (pMRI) and on
/// the same patient's real MRI, on the same core and ring voxels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContrastRow {
    /// Case name.
    pub case: String,
    /// Location class of the tumour.
    pub location: String,
    /// CNR on the CT.
    #[serde(with = "cmedl_metrics::float_serde")]
    pub ct: f64,
    /// CNR on the translation.
    #[serde(with = "cmedl_metrics::float_serde")]
    pub pmri: f64,
    /// CNR on the real MRI, where the patient has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mri: Option<f64>,
}

/// How close a case's translation is to the same patient's real teacher-modality image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelityRow {
    /// Case name.
    pub case: String,
    /// The comparison.
    #[serde(flatten)]
    pub similarity: cmedl_metrics::similarity::Similarity,
}

/// Summaries by label, then by metric name.
pub type Summaries = BTreeMap<u8, BTreeMap<String, Summary>>;

/// The volume files of a folder (NIfTI, NRRD, MetaImage), sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ExperimentError::input(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Evaluates every reference file of `reference` against the file of the same name in `pred`.
pub fn evaluate_dirs(
    pred: &Path,
    reference: &Path,
    labels: &[u8],
    options: &MetricOptions,
    resample_pred: bool,
) -> Result<Vec<CaseRow>, ExperimentError> {
    let refs = image_files(reference)?;
    if refs.is_empty() {
        return Err(ExperimentError::input(
            reference,
            "no reference label files (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)",
        ));
    }
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for r in &refs {
        let name = image_stem(r);
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
        return Err(ExperimentError::input(
            pred,
            format!(
                "no prediction for {} reference case(s): {}",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    Ok(rows)
}

/// Metrics of one prediction file against one reference file, for each of `labels`.
pub fn evaluate_pair(
    pred: &Path,
    reference: &Path,
    name: &str,
    labels: &[u8],
    options: &MetricOptions,
    resample_pred: bool,
) -> Result<Vec<CaseRow>, ExperimentError> {
    let opts = ReadOptions::default();
    let r = read_label_image(reference, &opts)?;
    let mut p = read_label_image(pred, &opts)?;
    if !p.geometry.same_grid(&r.geometry, 1e-3) {
        if !resample_pred {
            return Err(ExperimentError::input(
                pred,
                format!(
                    "grid {:?} with affine {:?} differs from the reference {} ({:?}, {:?}); pass --resample-pred to resample it",
                    p.geometry.shape,
                    p.geometry.affine,
                    reference.display(),
                    r.geometry.shape,
                    r.geometry.affine
                ),
            ));
        }
        p = resample_mask(&p, &r.geometry)?;
    }
    evaluate_masks(&p, &r, name, labels, options).map_err(|e| ExperimentError::input(pred, e))
}

/// Metrics of a prediction against a reference on the same grid, for each of `labels`.
pub fn evaluate_masks(
    pred: &Mask,
    reference: &Mask,
    name: &str,
    labels: &[u8],
    options: &MetricOptions,
) -> Result<Vec<CaseRow>, cmedl_metrics::MetricsError> {
    let g = &reference.geometry;
    let out = label_metrics(
        &pred.data,
        &reference.data,
        g.shape,
        g.spacing,
        labels,
        options,
    )?;
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
pub fn summaries(rows: &[CaseRow]) -> Summaries {
    let mut out = Summaries::new();
    let labels: BTreeSet<u8> = rows.iter().map(|r| r.label).collect();
    for label in labels {
        let mine: Vec<&CaseRow> = rows.iter().filter(|r| r.label == label).collect();
        let entry = out.entry(label).or_default();
        for m in Metric::ALL {
            let values: Vec<f64> = mine.iter().map(|r| m.of(&r.metrics)).collect();
            entry.insert(m.name().to_owned(), summarize(&values));
        }
    }
    out
}

/// Paired comparisons of A against B over the cases both have; `seed` drives the bootstrap.
pub fn compare(a: &[CaseRow], b: &[CaseRow], seed: u64) -> Vec<Comparison> {
    let mut out = Vec::new();
    let labels: BTreeSet<u8> = a.iter().map(|r| r.label).collect();
    for label in labels {
        for metric in Metric::COMPARED {
            let mut xa = Vec::new();
            let mut xb = Vec::new();
            for ra in a.iter().filter(|r| r.label == label) {
                if let Some(rb) = b.iter().find(|r| r.label == label && r.case == ra.case) {
                    xa.push(metric.of(&ra.metrics));
                    xb.push(metric.of(&rb.metrics));
                }
            }
            let w = wilcoxon_signed_rank(&xa, &xb);
            let rank_biserial = w
                .as_ref()
                .map(|w| (w.w_plus - w.w_minus) / (w.w_plus + w.w_minus));
            out.push(Comparison {
                label,
                metric,
                wilcoxon: w,
                rank_biserial,
                difference: bootstrap_mean_difference(&xa, &xb, 10_000, 0.95, seed),
            });
        }
    }
    out
}

/// Writes the per-case rows as CSV (fields quoted where needed).
pub fn write_csv(path: &Path, rows: &[CaseRow]) -> Result<(), ExperimentError> {
    let write = || -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record([
            "case",
            "label",
            "dice",
            "surface_dice",
            "hd95",
            "hd",
            "asd_ref_to_pred",
            "asd_pred_to_ref",
            "ref_voxels",
            "pred_voxels",
        ])?;
        for r in rows {
            let m = &r.metrics;
            let mut record = vec![r.case.clone(), r.label.to_string()];
            record.extend(Metric::ALL.iter().map(|x| x.of(m).to_string()));
            record.extend([m.ref_voxels.to_string(), m.pred_voxels.to_string()]);
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    };
    write().map_err(|e| ExperimentError::write(path, std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, dice: f64, hd95: f64) -> CaseRow {
        CaseRow {
            case: case.into(),
            label: 1,
            metrics: CaseMetrics {
                dice,
                surface_dice: dice,
                hd95,
                hd: hd95,
                asd_ref_to_pred: 1.0,
                asd_pred_to_ref: 1.0,
                ref_voxels: 10,
                pred_voxels: 10,
            },
        }
    }

    #[test]
    fn rows_round_trip_through_json_with_infinite_distances() {
        let rows = vec![row("a", 0.5, 3.0), row("b, the second", 0.0, f64::INFINITY)];
        let text = serde_json::to_string(&rows).unwrap();
        assert!(text.contains(r#""hd95":"inf""#), "{text}");
        let back: Vec<CaseRow> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn comparisons_pair_cases_by_name() {
        let a = vec![row("a", 0.9, 1.0), row("b", 0.8, 2.0), row("c", 0.7, 3.0)];
        // B lists the cases in another order and has one A lacks.
        let b = vec![
            row("c", 0.6, 3.0),
            row("x", 0.0, 9.0),
            row("a", 0.8, 1.0),
            row("b", 0.7, 2.0),
        ];
        let cmp = compare(&a, &b, 0);
        assert_eq!(cmp.len(), Metric::COMPARED.len());
        let dice = cmp.iter().find(|c| c.metric == Metric::Dice).unwrap();
        let w = dice.wilcoxon.as_ref().unwrap();
        assert_eq!(w.n, 3);
        assert_eq!(dice.rank_biserial, Some(1.0));
        assert!((dice.difference.as_ref().unwrap().mean - 0.1).abs() < 1e-12);
        let hd = cmp.iter().find(|c| c.metric == Metric::Hd95).unwrap();
        assert!(hd.wilcoxon.is_none(), "no pair differs");
        assert_eq!(
            serde_json::to_value(dice).unwrap()["metric"],
            serde_json::json!("dice")
        );
    }

    #[test]
    fn summaries_and_csv() {
        let rows = vec![row("a", 0.5, 3.0), row("b, c", 1.0, f64::INFINITY)];
        let s = summaries(&rows);
        assert_eq!(s[&1]["dice"].mean, 0.75);
        assert_eq!(s[&1]["hd95"].inf, 1);
        assert_eq!(s[&1].len(), Metric::ALL.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.csv");
        write_csv(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "a,1,0.5,0.5,3,3,1,1,10,10");
        assert!(
            lines[2].starts_with("\"b, c\",1,1,1,inf,inf"),
            "{}",
            lines[2]
        );
    }
}
