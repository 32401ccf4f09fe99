//! One post-processing rule per experiment, chosen on the validation cases of every run alike
//! and applied to every arm's test predictions.
//!
//! Each run scores every candidate rule on its validation cases when it is evaluated
//! ([`ValidationScores`]); once every run is evaluated, [`choose`] pools those scores over the
//! runs and picks one rule for all of them ([`Choice`], `postprocessing.json`). A rule chosen
//! per run would be a difference between the arms that is not the method. Largest-component
//! post-processing is offered only when no labelled case of the student modality has more than
//! one component of a label: on multi-lesion labels it deletes true tumours.

use std::collections::BTreeSet;

use cmedl_io::Mask;
use serde::{Deserialize, Serialize};

/// A post-processing rule for a predicted label map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Rule {
    /// The prediction as the network made it.
    None,
    /// Only the largest 26-connected component of each label.
    LargestComponent,
    /// 26-connected components smaller than `min_mm3` removed.
    MinComponent {
        /// The smallest component kept, in mm³.
        min_mm3: f64,
    },
}

impl Rule {
    /// Applies the rule to `mask` in place.
    pub fn apply(&self, mask: &mut Mask) {
        match *self {
            Self::None => {}
            Self::LargestComponent => mask.keep_largest_components(),
            Self::MinComponent { min_mm3 } => {
                mask.remove_components_below(min_mm3);
            }
        }
    }

    /// How the rule reads in a report.
    pub fn describe(&self) -> String {
        match self {
            Self::None => "none (raw predictions)".into(),
            Self::LargestComponent => "largest component of each label".into(),
            Self::MinComponent { min_mm3 } => format!("components under {min_mm3} mm³ removed"),
        }
    }
}

/// How an experiment post-processes its predictions (`postprocessing` in the experiment file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostprocessingConfig {
    /// Choose a rule on the validation cases of every run (false: raw predictions only).
    pub choose: bool,
    /// Thresholds of the small-component filter tried, in mm³.
    pub min_component_mm3: Vec<f64>,
    /// Fewest labelled validation patients a rule is chosen on (with fewer, none is applied).
    pub min_patients: usize,
}

impl Default for PostprocessingConfig {
    fn default() -> Self {
        Self {
            choose: true,
            min_component_mm3: vec![250.0, 500.0, 1000.0],
            min_patients: 5,
        }
    }
}

impl PostprocessingConfig {
    /// Checks the thresholds and the patient count.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self
            .min_component_mm3
            .iter()
            .find(|v| !(v.is_finite() && **v > 0.0))
        {
            return Err(format!(
                "postprocessing.min_component_mm3: {bad} is not a positive volume"
            ));
        }
        if self.min_patients < 5 {
            return Err(format!(
                "postprocessing.min_patients must be at least 5 (a rule chosen on a handful of patients is noise), got {}",
                self.min_patients
            ));
        }
        Ok(())
    }

    /// The candidate rules, raw first; largest-component only when `single_component`.
    pub fn candidates(&self, single_component: bool) -> Vec<Rule> {
        let mut rules = vec![Rule::None];
        if single_component {
            rules.push(Rule::LargestComponent);
        }
        let mut sizes = self.min_component_mm3.clone();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        rules.extend(
            sizes
                .into_iter()
                .map(|min_mm3| Rule::MinComponent { min_mm3 }),
        );
        rules
    }
}

/// The Dice of every candidate rule on one validation case and label of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationCase {
    /// Case name.
    pub case: String,
    /// Label value.
    pub label: u8,
    /// Dice under each candidate, in the order of [`ValidationScores::candidates`].
    pub dice: Vec<f64>,
    /// Reference lesions (26-connected components) the prediction touches, under each
    /// candidate.
    #[serde(default)]
    pub detected: Vec<usize>,
}

/// A run's validation cases scored under every candidate rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationScores {
    /// The candidate rules.
    pub candidates: Vec<Rule>,
    /// One row per labelled validation case and label present in reference or prediction.
    pub cases: Vec<ValidationCase>,
}

impl ValidationScores {
    /// Scores `prediction` (raw) against `reference` under every candidate and adds the rows.
    pub fn add(&mut self, case: &str, prediction: &Mask, reference: &[u8], labels: &[u8]) {
        let lesions = Mask {
            geometry: prediction.geometry.clone(),
            data: reference.to_vec(),
        }
        .components();
        let processed: Vec<Vec<u8>> = self
            .candidates
            .iter()
            .map(|rule| {
                let mut m = prediction.clone();
                rule.apply(&mut m);
                m.data
            })
            .collect();
        for &label in labels {
            let dice: Vec<Option<f64>> = processed
                .iter()
                .map(|p| label_dice(p, reference, label))
                .collect();
            // A label that neither the reference nor any candidate's prediction holds says
            // nothing about the rules.
            if dice.iter().all(Option::is_none) {
                continue;
            }
            let detected = processed
                .iter()
                .map(|p| {
                    lesions
                        .iter()
                        .filter(|(l, voxels)| *l == label && voxels.iter().any(|&v| p[v] == label))
                        .count()
                })
                .collect();
            self.cases.push(ValidationCase {
                case: case.to_owned(),
                label,
                dice: dice.into_iter().map(|d| d.unwrap_or(1.0)).collect(),
                detected,
            });
        }
    }
}

/// Dice of `label` between two label maps (none when both lack it).
pub(crate) fn label_dice(pred: &[u8], reference: &[u8], label: u8) -> Option<f64> {
    let (mut both, mut p, mut r) = (0usize, 0usize, 0usize);
    for (&a, &b) in pred.iter().zip(reference) {
        let (x, y) = (a == label, b == label);
        both += usize::from(x && y);
        p += usize::from(x);
        r += usize::from(y);
    }
    (p + r > 0).then(|| 2.0 * both as f64 / (p + r) as f64)
}

/// A candidate rule with its validation Dice pooled over every run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// The rule.
    pub rule: Rule,
    /// Mean validation Dice over every run's (case, label) rows.
    #[serde(with = "cmedl_metrics::float_serde")]
    pub mean_dice: f64,
    /// Validation lesions detected, summed over the runs.
    #[serde(default)]
    pub lesions_detected: usize,
}

/// The experiment's post-processing: one rule for every run (`postprocessing.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The rule applied to every run's test predictions.
    pub rule: Rule,
    /// Every candidate with its pooled validation Dice.
    pub candidates: Vec<CandidateScore>,
    /// Distinct labelled validation patients.
    pub patients: usize,
    /// Runs pooled.
    pub runs: usize,
    /// Whether largest-component post-processing was a candidate.
    pub largest_component_offered: bool,
    /// Why the rule is what it is.
    pub reason: String,
    /// The configuration it was chosen under.
    pub config: PostprocessingConfig,
}

/// Picks one rule for every run from their validation scores: of the candidates that detect
/// as many validation lesions as the raw predictions, the one of the highest pooled mean Dice
/// (raw predictions unless another is strictly better). With
/// `config.choose` off, or fewer than `config.min_patients` validation patients, or runs
/// scored under different candidates, no rule is applied and the reason says why.
pub fn choose(
    config: &PostprocessingConfig,
    single_component: bool,
    runs: &[&ValidationScores],
) -> Choice {
    let candidates = config.candidates(single_component);
    let patients: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.cases.iter().map(|c| c.case.as_str()))
        .collect();
    let mut choice = Choice {
        rule: Rule::None,
        candidates: Vec::new(),
        patients: patients.len(),
        runs: runs.len(),
        largest_component_offered: single_component,
        reason: String::new(),
        config: config.clone(),
    };
    if !config.choose {
        choice.reason = "post-processing is off in the experiment config".into();
        return choice;
    }
    if runs.iter().any(|r| r.candidates != candidates) {
        choice.reason = "the runs were scored under other candidate rules than the config's; evaluate them again".into();
        return choice;
    }
    let mut sums = vec![0.0; candidates.len()];
    let mut n = 0usize;
    for r in runs {
        for c in &r.cases {
            for (s, d) in sums.iter_mut().zip(&c.dice) {
                *s += d;
            }
            n += 1;
        }
    }
    choice.candidates = candidates
        .iter()
        .zip(&sums)
        .map(|(&rule, &s)| CandidateScore {
            rule,
            mean_dice: if n > 0 { s / n as f64 } else { f64::NAN },
            lesions_detected: 0,
        })
        .collect();
    if patients.len() < config.min_patients {
        choice.reason = format!(
            "{} labelled validation patients, fewer than the {} a rule is chosen on",
            patients.len(),
            config.min_patients
        );
        return choice;
    }
    // A rule that deletes a validation lesion the raw prediction found is never chosen,
    // however much Dice it gains by removing false positives elsewhere.
    let mut found = vec![0usize; candidates.len()];
    for c in runs.iter().flat_map(|r| &r.cases) {
        for (f, d) in found.iter_mut().zip(&c.detected) {
            *f += d;
        }
    }
    let mut best = 0;
    for (i, c) in choice.candidates.iter().enumerate() {
        if found[i] >= found[0] && c.mean_dice > choice.candidates[best].mean_dice {
            best = i;
        }
    }
    for (c, &f) in choice.candidates.iter_mut().zip(&found) {
        c.lesions_detected = f;
    }
    choice.rule = candidates[best];
    choice.reason = format!(
        "highest mean validation Dice over {} runs and {} patients{}",
        runs.len(),
        patients.len(),
        if single_component {
            ""
        } else {
            "; largest component not offered: some reference has several components of a label"
        }
    );
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmedl_io::Geometry;

    fn scores(candidates: &[Rule], rows: &[(&str, &[f64])]) -> ValidationScores {
        ValidationScores {
            candidates: candidates.to_vec(),
            cases: rows
                .iter()
                .map(|(case, dice)| ValidationCase {
                    case: (*case).to_owned(),
                    label: 1,
                    dice: dice.to_vec(),
                    detected: vec![1; dice.len()],
                })
                .collect(),
        }
    }

    fn config() -> PostprocessingConfig {
        PostprocessingConfig {
            choose: true,
            min_component_mm3: vec![500.0, 100.0],
            min_patients: 5,
        }
    }

    #[test]
    fn largest_component_is_a_candidate_only_for_single_component_labels() {
        let c = config();
        assert_eq!(
            c.candidates(false),
            vec![
                Rule::None,
                Rule::MinComponent { min_mm3: 100.0 },
                Rule::MinComponent { min_mm3: 500.0 }
            ]
        );
        assert_eq!(c.candidates(true)[1], Rule::LargestComponent);
    }

    #[test]
    fn one_rule_is_chosen_from_the_runs_pooled() {
        let c = config();
        let cand = c.candidates(false);
        let patients = ["a", "b", "c", "d", "e"];
        // Run 1 gains 0.1 from the 100 mm³ filter on every case, run 2 loses 0.3 on one case:
        // pooled over the ten rows, the filter gains (5·0.1 − 0.3)/10 = 0.02.
        let r1 = scores(&cand, &patients.map(|p| (p, &[0.5, 0.6, 0.2][..])));
        let mut rows2: Vec<(&str, &[f64])> = patients
            .iter()
            .map(|p| (*p, &[0.5, 0.5, 0.2][..]))
            .collect();
        rows2[0].1 = &[0.5, 0.2, 0.2];
        let r2 = scores(&cand, &rows2);
        let choice = choose(&c, false, &[&r1, &r2]);
        assert_eq!(choice.rule, Rule::MinComponent { min_mm3: 100.0 });
        assert!((choice.candidates[0].mean_dice - 0.5).abs() < 1e-12);
        assert!((choice.candidates[1].mean_dice - 0.52).abs() < 1e-12);
        assert_eq!((choice.patients, choice.runs), (5, 2));
        assert!(!choice.largest_component_offered);
        assert!(choice.reason.contains("largest component not offered"));
    }

    #[test]
    fn a_rule_that_deletes_a_validation_lesion_is_never_chosen() {
        let c = config();
        let cand = c.candidates(false);
        let mut s = scores(
            &cand,
            &["a", "b", "c", "d", "e"].map(|p| (p, &[0.5, 0.6, 0.9][..])),
        );
        // The 500 mm³ filter gains the most Dice but loses a lesion of case a.
        s.cases[0].detected = vec![2, 2, 1];
        let choice = choose(&c, false, &[&s]);
        assert_eq!(choice.rule, Rule::MinComponent { min_mm3: 100.0 });
        assert_eq!(choice.candidates[2].lesions_detected, 4 + 1);
        assert_eq!(choice.candidates[0].lesions_detected, 4 + 2);
    }

    #[test]
    fn raw_predictions_win_ties_and_small_validation_sets() {
        let c = config();
        let cand = c.candidates(true);
        let tie = scores(
            &cand,
            &["a", "b", "c", "d", "e"].map(|p| (p, &[0.5, 0.5, 0.5, 0.4][..])),
        );
        assert_eq!(choose(&c, true, &[&tie]).rule, Rule::None);
        let better = scores(
            &cand,
            &["a", "b", "c", "d"].map(|p| (p, &[0.5, 0.9, 0.5, 0.4][..])),
        );
        let choice = choose(&c, true, &[&better]);
        assert_eq!(choice.rule, Rule::None, "four patients are too few");
        assert!(
            choice.reason.contains("fewer than the 5"),
            "{}",
            choice.reason
        );
        let off = PostprocessingConfig {
            choose: false,
            ..c.clone()
        };
        assert_eq!(choose(&off, true, &[&better]).rule, Rule::None);
        // Scores under other candidates than the config's are not pooled.
        let stale = scores(
            &[Rule::None],
            &["a", "b", "c", "d", "e"].map(|p| (p, &[0.5][..])),
        );
        assert_eq!(choose(&c, true, &[&stale]).rule, Rule::None);
    }

    #[test]
    fn validation_rows_score_every_candidate_on_the_same_prediction() {
        // 1 × 1 × 1 mm voxels: a 3-voxel true lesion and a 1-voxel false positive.
        let g = Geometry::axis_aligned([6, 1, 1], [1.0; 3]);
        let pred = Mask::new(g, vec![1, 1, 1, 0, 0, 1]).unwrap();
        let reference = [1, 1, 1, 0, 0, 0];
        let mut s = ValidationScores {
            candidates: vec![
                Rule::None,
                Rule::MinComponent { min_mm3: 2.0 },
                Rule::MinComponent { min_mm3: 4.0 },
            ],
            cases: Vec::new(),
        };
        s.add("a", &pred, &reference, &[1, 2]);
        assert_eq!(s.cases.len(), 1, "label 2 is in neither mask");
        let d = &s.cases[0].dice;
        assert!((d[0] - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(d[1], 1.0);
        assert_eq!(d[2], 0.0);
        assert_eq!(s.cases[0].detected, vec![1, 1, 0]);
        assert!(config().validate().is_ok());
        let few = PostprocessingConfig {
            min_patients: 4,
            ..config()
        };
        assert!(few.validate().is_err());
    }
}
