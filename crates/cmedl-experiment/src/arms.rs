//! Arms compared with `ct-only`: an arm is a (mode, segmenter, translator) trained once per
//! seed; its baseline is `ct-only` with the same segmenter and seeds.
//!
//! For each arm, metric and case, the differences (arm − ct-only) of the seeds both have are
//! averaged; the per-case averages give the mean difference, a bootstrap interval over cases and
//! the Wilcoxon signed-rank p. Lesion Dice is compared per lesion (averaged over seeds), with an
//! interval that resamples cases (the lesions of a case are not independent) and p from the
//! per-case means of the lesion differences. Holm's method adjusts the p values of each metric
//! across the arms.

use std::collections::BTreeMap;

use cmedl_metrics::stats::{
    cluster_bootstrap_mean, detectable_difference, holm, summarize, wilcoxon_signed_rank,
    MeanDifference, Wilcoxon,
};
use cmedl_trainer::config::{I2iKind, Mode};
use serde::Serialize;

use crate::plan::i2i_name;
use crate::{Metric, RunPlan, RunResults};

/// What a comparison measures.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A per-case metric.
    Case(Metric),
    /// Per-lesion Dice, of every lesion or of the lesions of one location class.
    LesionDice(Option<String>),
}

impl Outcome {
    /// The outcomes of these results: Dice, surface Dice and HD95 per case, lesion Dice, and
    /// lesion Dice per location class where lesions have one.
    pub fn all<'a>(results: impl Iterator<Item = &'a RunResults>) -> Vec<Outcome> {
        let mut out = vec![
            Self::Case(Metric::Dice),
            Self::Case(Metric::SurfaceDice),
            Self::Case(Metric::Hd95),
            Self::LesionDice(None),
        ];
        let locations: std::collections::BTreeSet<String> = results
            .flat_map(|r| r.lesions.iter().filter_map(|l| l.location.clone()))
            .collect();
        out.extend(locations.into_iter().map(|l| Self::LesionDice(Some(l))));
        out
    }

    /// Name in tables.
    pub fn name(&self) -> String {
        match self {
            Self::Case(m) => m.name().to_owned(),
            Self::LesionDice(None) => "lesion dice".to_owned(),
            Self::LesionDice(Some(l)) => format!("lesion dice, {l}"),
        }
    }

    /// The unit a value belongs to.
    pub fn unit(&self) -> &'static str {
        match self {
            Self::Case(_) => "case",
            Self::LesionDice(_) => "lesion",
        }
    }
}

/// An arm: the runs of one (mode, segmenter, translator) over the seeds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Arm {
    /// Mode.
    pub mode: Mode,
    /// Segmenter kind.
    pub segmenter: String,
    /// Translator kind.
    pub i2i: Option<I2iKind>,
    /// Distillation variant.
    pub variant: Option<String>,
}

impl Arm {
    fn of(r: &RunPlan) -> Self {
        Self {
            mode: r.mode,
            segmenter: r.segmenter.clone(),
            i2i: r.i2i,
            variant: r.variant.clone(),
        }
    }

    /// `mode[+variant]/segmenter/translator`, e.g. `cmedl/unet/cyclegan`.
    pub fn name(&self) -> String {
        let mode = match &self.variant {
            Some(v) => format!("{}+{v}", self.mode.name()),
            None => self.mode.name().to_owned(),
        };
        match self.i2i {
            Some(k) => format!("{mode}/{}/{}", self.segmenter, i2i_name(k)),
            None => format!("{mode}/{}", self.segmenter),
        }
    }
}

/// One arm against `ct-only` on one outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ArmComparison {
    /// The arm.
    pub arm: Arm,
    /// The outcome.
    pub outcome: Outcome,
    /// Seeds with both runs evaluated.
    pub seeds: usize,
    /// Units (cases or lesions) with a finite difference.
    pub n: usize,
    /// Cases behind them.
    pub cases: usize,
    /// Mean difference (arm − ct-only) with its 95 % bootstrap interval.
    pub difference: Option<MeanDifference>,
    /// Standard deviation of the per-unit differences.
    pub sd: f64,
    /// Wilcoxon signed-rank test over cases (none when no case differs).
    pub wilcoxon: Option<Wilcoxon>,
    /// Holm-adjusted p across the arms compared on this outcome.
    pub p_holm: f64,
    /// The difference a paired test at 5 % finds 80 % of the time with these n and SD.
    pub detectable: f64,
    /// Whether every difference is exactly zero (cmedl-no-distill's set-up check).
    pub identical: bool,
}

/// Per-unit differences averaged over seeds, keyed by (case, lesion) (lesion 0: the case).
type Differences = BTreeMap<(String, usize), Vec<f64>>;

fn differences(a: &RunResults, b: &RunResults, outcome: &Outcome, into: &mut Differences) {
    match outcome {
        Outcome::Case(m) => {
            for ra in a.cases.iter().filter(|c| c.label == 1) {
                if let Some(rb) = b.cases.iter().find(|c| c.label == 1 && c.case == ra.case) {
                    let d = m.of(&ra.metrics) - m.of(&rb.metrics);
                    into.entry((ra.case.clone(), 0)).or_default().push(d);
                }
            }
        }
        Outcome::LesionDice(location) => {
            let wanted = |l: &&crate::lesions::LesionRow| {
                l.label == 1
                    && location
                        .as_ref()
                        .is_none_or(|w| l.location.as_ref() == Some(w))
            };
            for la in a.lesions.iter().filter(wanted) {
                let same = |l: &&crate::lesions::LesionRow| {
                    l.label == 1 && l.case == la.case && l.lesion == la.lesion
                };
                if let Some(lb) = b.lesions.iter().find(same) {
                    let d = la.metrics.dice - lb.metrics.dice;
                    into.entry((la.case.clone(), la.lesion))
                        .or_default()
                        .push(d);
                }
            }
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

/// One arm on one outcome, before the Holm adjustment.
fn compare_arm(
    arm: &Arm,
    pairs: &[(&RunResults, &RunResults)],
    outcome: &Outcome,
    seed: u64,
) -> ArmComparison {
    let mut by_unit = Differences::new();
    for (a, b) in pairs {
        differences(a, b, outcome, &mut by_unit);
    }
    let units: Vec<((String, usize), f64)> = by_unit
        .iter()
        .map(|(k, v)| (k.clone(), mean(v)))
        .filter(|(_, d)| d.is_finite())
        .collect();
    let mut by_case: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for ((case, _), d) in &units {
        by_case.entry(case.clone()).or_default().push(*d);
    }
    let groups: Vec<Vec<f64>> = by_case.values().cloned().collect();
    let case_means: Vec<f64> = groups.iter().map(|g| mean(g)).collect();
    let values: Vec<f64> = units.iter().map(|(_, d)| *d).collect();
    let sd = summarize(&values).sd;
    ArmComparison {
        arm: arm.clone(),
        outcome: outcome.clone(),
        seeds: pairs.len(),
        n: values.len(),
        cases: groups.len(),
        difference: cluster_bootstrap_mean(&groups, 10_000, 0.95, seed),
        sd,
        wilcoxon: wilcoxon_signed_rank(&case_means, &vec![0.0; case_means.len()]),
        p_holm: f64::NAN,
        detectable: detectable_difference(sd, values.len(), 0.05, 0.8),
        identical: !values.is_empty() && values.iter().all(|d| *d == 0.0),
    }
}

/// The runs of each arm paired with their ct-only runs (seed by seed, both evaluated).
fn arm_pairs<'a>(
    runs: &[RunPlan],
    results: &'a BTreeMap<String, RunResults>,
) -> BTreeMap<Arm, Vec<(&'a RunResults, &'a RunResults)>> {
    let mut arms: BTreeMap<Arm, Vec<(&RunResults, &RunResults)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.mode != Mode::CtOnly) {
        let base = r.baseline(runs);
        let pair = base.and_then(|b| Some((results.get(&r.name)?, results.get(&b.name)?)));
        if let Some(pair) = pair {
            arms.entry(Arm::of(r)).or_default().push(pair);
        }
    }
    arms
}

/// Per arm, one point per case: ct-only's Dice and the arm's Dice difference, each averaged
/// over the seeds both have.
pub fn case_differences(
    runs: &[RunPlan],
    results: &BTreeMap<String, RunResults>,
) -> BTreeMap<Arm, Vec<(f64, f64)>> {
    let mut out = BTreeMap::new();
    for (arm, pairs) in arm_pairs(runs, results) {
        let mut by_case: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for (a, b) in &pairs {
            for ra in a.cases.iter().filter(|c| c.label == 1) {
                if let Some(rb) = b.cases.iter().find(|c| c.label == 1 && c.case == ra.case) {
                    let e = by_case.entry(&rb.case).or_default();
                    e.0.push(rb.metrics.dice);
                    e.1.push(ra.metrics.dice - rb.metrics.dice);
                }
            }
        }
        let points = by_case
            .values()
            .map(|(base, d)| (mean(base), mean(d)))
            .collect();
        out.insert(arm, points);
    }
    out
}

/// Every arm but `ct-only` against `ct-only` with the same segmenter, on every outcome, with
/// Holm-adjusted p values per outcome; `seed` drives the bootstraps.
pub fn compare_arms(
    runs: &[RunPlan],
    results: &BTreeMap<String, RunResults>,
    seed: u64,
) -> Vec<ArmComparison> {
    let arms = arm_pairs(runs, results);
    let mut out = Vec::new();
    for outcome in Outcome::all(results.values()) {
        let mut family: Vec<ArmComparison> = arms
            .iter()
            .map(|(arm, pairs)| compare_arm(arm, pairs, &outcome, seed))
            .collect();
        // The set-up check (cmedl-no-distill) is not a hypothesis of the family.
        let tested: Vec<usize> = (0..family.len())
            .filter(|&i| family[i].arm.mode != Mode::CmedlNoDistill)
            .collect();
        let p: Vec<f64> = tested
            .iter()
            .map(|&i| family[i].wilcoxon.as_ref().map_or(f64::NAN, |w| w.p_value))
            .collect();
        for (&i, q) in tested.iter().zip(holm(&p)) {
            family[i].p_holm = q;
        }
        out.extend(family);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lesions::LesionRow;
    use crate::CaseRow;
    use cmedl_metrics::lesion::Lesion;
    use cmedl_metrics::CaseMetrics;
    use cmedl_trainer::TrainConfig;

    fn results(dice: &[f64], lesion_dice: &[(usize, f64)]) -> RunResults {
        let case = |i: usize| format!("c{i}");
        RunResults {
            cases: dice
                .iter()
                .enumerate()
                .map(|(i, &d)| CaseRow {
                    case: case(i),
                    label: 1,
                    metrics: CaseMetrics {
                        dice: d,
                        surface_dice: d,
                        hd95: 1.0,
                        hd: 1.0,
                        asd_ref_to_pred: 1.0,
                        asd_pred_to_ref: 1.0,
                        ref_voxels: 1,
                        pred_voxels: 1,
                    },
                })
                .collect(),
            lesions: lesion_dice
                .iter()
                .enumerate()
                .map(|(n, &(c, d))| LesionRow {
                    case: case(c),
                    label: 1,
                    lesion: n + 1,
                    location: None,
                    metrics: Lesion {
                        voxels: 1,
                        volume_mm3: 1.0,
                        centroid: [0.0; 3],
                        dice: d,
                        covered: 1,
                        detected: true,
                    },
                })
                .collect(),
            case_lesions: Vec::new(),
            ..Default::default()
        }
    }

    fn plan(mode: Mode, seed: u64) -> RunPlan {
        RunPlan {
            name: format!("{}-s{seed}", mode.name()),
            mode,
            segmenter: "unet".into(),
            i2i: mode.uses_translator().then_some(I2iKind::Cyclegan),
            seed,
            variant: None,
            fold: None,
            config: TrainConfig::default(),
        }
    }

    #[test]
    fn differences_average_over_seeds_and_holm_spans_the_arms() {
        let runs: Vec<RunPlan> = [0, 1]
            .into_iter()
            .flat_map(|s| {
                [
                    Mode::CtOnly,
                    Mode::Cmedl,
                    Mode::CmedlNoDistill,
                    Mode::PmriOnly,
                ]
                .map(|m| plan(m, s))
            })
            .collect();
        let base = results(&[0.5, 0.5, 0.5, 0.5], &[(0, 0.5), (0, 0.5), (1, 0.5)]);
        let mut res = BTreeMap::new();
        for s in [0, 1] {
            res.insert(format!("ct-only-s{s}"), base.clone());
            res.insert(format!("cmedl-no-distill-s{s}"), base.clone());
        }
        // cmedl: +0.1 on every case in seed 0, +0.3 in seed 1 → +0.2 per case.
        res.insert(
            "cmedl-s0".into(),
            results(&[0.6; 4], &[(0, 0.6), (0, 0.7), (1, 0.5)]),
        );
        res.insert(
            "cmedl-s1".into(),
            results(&[0.8; 4], &[(0, 0.6), (0, 0.7), (1, 0.5)]),
        );
        // pmri-only: seed 1 not evaluated.
        res.insert("pmri-only-s0".into(), results(&[0.4; 4], &[]));
        let cmp = compare_arms(&runs, &res, 3);
        let get = |mode: Mode, o: Outcome| {
            cmp.iter()
                .find(|c| c.arm.mode == mode && c.outcome == o)
                .unwrap()
        };
        let dice = get(Mode::Cmedl, Outcome::Case(Metric::Dice));
        assert_eq!((dice.seeds, dice.n, dice.cases), (2, 4, 4));
        let d = dice.difference.as_ref().unwrap();
        assert!((d.mean - 0.2).abs() < 1e-12);
        assert!(dice.sd.abs() < 1e-12 && dice.detectable.abs() < 1e-12);
        let w = dice.wilcoxon.as_ref().unwrap();
        assert_eq!(w.n, 4);
        // Two arms tested on dice: Holm doubles the smaller p (or keeps the larger).
        let pmri = get(Mode::PmriOnly, Outcome::Case(Metric::Dice));
        assert_eq!(pmri.seeds, 1);
        let (p1, p2) = (w.p_value, pmri.wilcoxon.as_ref().unwrap().p_value);
        let expected = holm(&[p1, p2]);
        assert_eq!((dice.p_holm, pmri.p_holm), (expected[0], expected[1]));
        // Lesions: differences 0.1, 0.2, 0 in both seeds; cases c0 (two) and c1 (one).
        let lesion = get(Mode::Cmedl, Outcome::LesionDice(None));
        assert_eq!((lesion.n, lesion.cases), (3, 2));
        assert!((lesion.difference.as_ref().unwrap().mean - 0.1).abs() < 1e-12);
        // The set-up check: identical, outside the Holm family.
        let check = get(Mode::CmedlNoDistill, Outcome::Case(Metric::Dice));
        assert!(check.identical && check.wilcoxon.is_none() && check.p_holm.is_nan());
        assert!(!dice.identical);
    }
}
