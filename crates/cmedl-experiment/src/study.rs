//! A study: experiments that differ in one setting of the data, summarised together. Each
//! experiment's arms are compared with ct-only as in its report; the summary tabulates them
//! against the measured mediastinal CT tumour CNR of the experiment's phantom (its
//! `contrast.json`) and draws, per arm, the lesion Dice difference by location against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmedl_phantom::ContrastStat;
use cmedl_trainer::config::{Mode, TeacherSetting};

use crate::arms::{compare_arms, Arm, ArmComparison, Outcome};
use crate::evaluate::ContrastRow;
use crate::report::chart::{padded_range, Canvas, Plot, COLOURS};
use crate::{ExperimentDir, ExperimentError, RunPlan, RunResults};

/// One experiment of a study, compared.
pub struct StudyPoint {
    /// The experiment folder's name.
    pub name: String,
    /// Mean CT CNR of the mediastinal tumours of its cohort, when recorded.
    pub mediastinal_cnr: Option<f64>,
    /// Which modality teaches which in its runs.
    pub teacher: TeacherSetting,
    /// Its arms against ct-only.
    pub comparisons: Vec<ArmComparison>,
    /// Tumour contrast on CT, translation and MRI per arm and location (phantom data).
    pub premise: Vec<PremiseRow>,
    /// The teacher on translations against its student, per arm with both.
    pub teachers: Vec<TeacherRow>,
}

/// The teacher on translations against its student in validation Dice, over an arm's runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherRow {
    /// The arm (mode, with its variant).
    pub arm: String,
    /// Runs with both validation Dice values.
    pub runs: usize,
    /// Mean of the teacher's last-epoch validation Dice on translations.
    pub teacher_last: f64,
    /// Mean of the student's last-epoch validation Dice.
    pub student_last: f64,
    /// Runs whose teacher was ahead at the last epoch.
    pub ahead_at_last: usize,
    /// Runs whose teacher was ahead in some epoch.
    pub ever_ahead: usize,
}

/// The teacher rows of an experiment: per arm that has a teacher and a student, the last
/// epoch of each run with both validation values (`epochs`: each run's epoch records).
pub fn teacher_rows(
    runs: &[RunPlan],
    epochs: &BTreeMap<String, Vec<cmedl_trainer::log::EpochRecord>>,
) -> Vec<TeacherRow> {
    let mut pooled: BTreeMap<String, Vec<cmedl_trainer::log::TeacherLead>> = BTreeMap::new();
    for r in runs
        .iter()
        .filter(|r| r.mode.uses_teacher() && r.mode.uses_student())
    {
        let lead = epochs
            .get(&r.name)
            .and_then(|e| cmedl_trainer::log::TeacherLead::of(e));
        if let Some(lead) = lead {
            pooled.entry(r.label()).or_default().push(lead);
        }
    }
    let mean = |v: Vec<f64>| cmedl_metrics::stats::summarize(&v).mean;
    pooled
        .into_iter()
        .map(|(arm, runs)| TeacherRow {
            arm,
            runs: runs.len(),
            teacher_last: mean(runs.iter().map(|l| l.last.0).collect()),
            student_last: mean(runs.iter().map(|l| l.last.1).collect()),
            ahead_at_last: runs.iter().filter(|l| l.last.0 > l.last.1).count(),
            ever_ahead: runs.iter().filter(|l| l.first_ahead.is_some()).count(),
        })
        .collect()
}

/// Tumour contrast of one arm (its seeds pooled) and location class: the premise, like for
/// like.
#[derive(Clone, Debug, PartialEq)]
pub struct PremiseRow {
    /// The arm (mode, with its variant).
    pub arm: String,
    /// Location class.
    pub location: String,
    /// Tumours measured (over the arm's runs).
    pub tumours: usize,
    /// Mean CNR on the CT.
    pub ct: f64,
    /// Mean CNR on the translations.
    pub pmri: f64,
    /// Mean CNR on the real MRI.
    pub mri: f64,
    /// Tumours whose translation shows more contrast than their CT.
    pub pmri_above_ct: usize,
}

/// The premise rows of an experiment's runs: per arm and location, their contrast rows pooled.
pub fn premise_rows(runs: &[RunPlan], results: &BTreeMap<String, RunResults>) -> Vec<PremiseRow> {
    let mut arms: BTreeMap<String, Vec<&ContrastRow>> = BTreeMap::new();
    for r in runs {
        if let Some(res) = results.get(&r.name) {
            arms.entry(r.label()).or_default().extend(&res.contrast);
        }
    }
    arms.into_iter()
        .flat_map(|(arm, rows)| contrast_by_location(&arm, rows))
        .collect()
}

/// Contrast rows pooled per location class under the name `arm` (an arm, or one run).
pub fn contrast_by_location<'a>(
    arm: &str,
    rows: impl IntoIterator<Item = &'a ContrastRow>,
) -> Vec<PremiseRow> {
    let mut pooled: BTreeMap<&str, Vec<&ContrastRow>> = BTreeMap::new();
    for c in rows {
        pooled.entry(c.location.as_str()).or_default().push(c);
    }
    let mean = |v: Vec<f64>| cmedl_metrics::stats::summarize(&v).mean;
    pooled
        .into_iter()
        .map(|(location, rows)| PremiseRow {
            arm: arm.to_owned(),
            location: location.to_owned(),
            tumours: rows.len(),
            ct: mean(rows.iter().map(|c| c.ct).collect()),
            pmri: mean(rows.iter().map(|c| c.pmri).collect()),
            mri: mean(rows.iter().filter_map(|c| c.mri).collect()),
            pmri_above_ct: rows.iter().filter(|c| c.pmri > c.ct).count(),
        })
        .collect()
}

/// Reads and compares one experiment folder.
pub fn study_point(dir: &Path) -> Result<StudyPoint, ExperimentError> {
    let exp = ExperimentDir::new(dir);
    let runs: Vec<RunPlan> = crate::read_json(&exp.plan_file())?;
    let mut results: BTreeMap<String, RunResults> = BTreeMap::new();
    let mut epochs = BTreeMap::new();
    for r in &runs {
        if let Some(res) = exp.read_results(&r.name)? {
            results.insert(r.name.clone(), res);
        }
        epochs.insert(r.name.clone(), exp.run(&r.name).epochs());
    }
    let mediastinal_cnr = runs.first().and_then(|r| {
        let path = r.config.data.root.join("contrast.json");
        let stats: Vec<ContrastStat> = crate::read_json(&path).ok()?;
        stats
            .iter()
            .find(|s| {
                s.contrast == cmedl_phantom::Contrast::Ct
                    && s.location == cmedl_phantom::TumourKind::Mediastinal
            })
            .map(|s| s.mean_cnr)
    });
    Ok(StudyPoint {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        mediastinal_cnr,
        teacher: runs.first().map(|r| r.config.teacher).unwrap_or_default(),
        comparisons: compare_arms(&runs, &results, 0),
        premise: premise_rows(&runs, &results),
        teachers: teacher_rows(&runs, &epochs),
    })
}

fn table_row(p: &StudyPoint, c: &ArmComparison) -> String {
    let cnr = p.mediastinal_cnr.map_or("?".into(), |v| format!("{v:.2}"));
    let diff = c.difference.as_ref().map_or("–".into(), |d| {
        format!("{:+.3} [{:+.3}, {:+.3}]", d.mean, d.low, d.high)
    });
    let p_value = c
        .wilcoxon
        .as_ref()
        .map_or("–".into(), |w| format!("{:.4}", w.p_value));
    let (holm, verdict) = if c.p_holm.is_finite() {
        let v = if c.p_holm < 0.05 {
            "significant"
        } else {
            "not significant"
        };
        (format!("{:.4}", c.p_holm), v)
    } else {
        ("–".into(), "no test")
    };
    let pair = p.teacher.modalities();
    format!(
        "| {} | {} → {} | {cnr} | {} | {} | {} | {} {}s | {diff} | {p_value} | {holm} | ±{:.3} | {verdict} |",
        p.name,
        pair.teacher,
        pair.student,
        c.arm.name(),
        c.outcome.name(),
        c.seeds,
        c.n,
        c.outcome.unit(),
        c.detectable
    )
}

/// The markdown table of every arm and outcome of every experiment (cmedl-no-distill, the
/// set-up check, left out).
pub fn study_table(points: &[StudyPoint]) -> String {
    let mut lines = vec![
        "| experiment | teacher → student | mediastinal CT CNR | arm | outcome | seeds | n | mean difference vs student alone [95 % CI] | Wilcoxon p | Holm p | detectable (80 %) | verdict |".to_owned(),
        "|---|---|---|---|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    for p in points {
        for c in p
            .comparisons
            .iter()
            .filter(|c| c.arm.mode != Mode::CmedlNoDistill)
        {
            lines.push(table_row(p, c));
        }
    }
    let contrast: Vec<String> = points
        .iter()
        .flat_map(|p| {
            p.premise.iter().map(move |r| {
                format!(
                    "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {}/{} |",
                    p.name,
                    r.arm,
                    r.location,
                    r.tumours,
                    r.ct,
                    r.pmri,
                    r.mri,
                    r.pmri_above_ct,
                    r.tumours
                )
            })
        })
        .collect();
    push_table(
        &mut lines,
        "Tumour contrast on the CT, on each arm's translations (pMRI) and on the real MRI, measured alike on the same voxels (the phantom's measure), seeds pooled:",
        "| experiment | arm | location | tumours | CNR CT | CNR pMRI | CNR MRI | pMRI > CT |",
        contrast,
    );
    let teachers: Vec<String> = points
        .iter()
        .flat_map(|p| {
            p.teachers.iter().map(move |r| {
                format!(
                    "| {} | {} | {} | {:.3} | {:.3} | {:+.3} | {} of {} | {} of {} |",
                    p.name,
                    r.arm,
                    r.runs,
                    r.teacher_last,
                    r.student_last,
                    r.teacher_last - r.student_last,
                    r.ahead_at_last,
                    r.runs,
                    r.ever_ahead,
                    r.runs
                )
            })
        })
        .collect();
    push_table(
        &mut lines,
        "The teacher on the translations of the validation CT against its student on the CT (validation Dice, last epoch, mean over the arm's runs):",
        "| experiment | arm | runs | teacher on pMRI | student | teacher − student | teacher ahead at the last epoch | teacher ever ahead |",
        teachers,
    );
    lines.join("\n") + "\n"
}

/// Appends a captioned Markdown table (nothing when it has no rows).
fn push_table(lines: &mut Vec<String>, caption: &str, header: &str, rows: Vec<String>) {
    if rows.is_empty() {
        return;
    }
    let columns = header.matches('|').count() - 1;
    lines.extend([String::new(), caption.to_owned(), String::new()]);
    lines.push(header.to_owned());
    lines.push(format!("|{}", "---|".repeat(columns)));
    lines.extend(rows);
}

/// Per arm, `study-<arm>.png`: the lesion Dice difference (with its 95 % interval) against the
/// mediastinal CT CNR, one series per lesion location and one for all lesions, over the
/// experiments of the informative setting (MRI teaching CT). Returns the files written.
pub fn study_figures(points: &[StudyPoint], out: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut by_arm: BTreeMap<Arm, Vec<(f64, &ArmComparison)>> = BTreeMap::new();
    for p in points {
        let Some(cnr) = p.mediastinal_cnr else {
            continue;
        };
        for c in &p.comparisons {
            if c.arm.mode != Mode::CmedlNoDistill && matches!(c.outcome, Outcome::LesionDice(_)) {
                by_arm.entry(c.arm.clone()).or_default().push((cnr, c));
            }
        }
    }
    let mut files = Vec::new();
    for (arm, entries) in by_arm {
        let path = out.join(format!("study-{}.png", arm.name().replace('/', "-")));
        draw_arm(&path, &arm, &entries)?;
        files.push(path);
    }
    Ok(files)
}

fn draw_arm(
    path: &Path,
    arm: &Arm,
    entries: &[(f64, &ArmComparison)],
) -> Result<(), ExperimentError> {
    let mut series: BTreeMap<String, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for (cnr, c) in entries {
        if let Some(d) = &c.difference {
            series
                .entry(c.outcome.name())
                .or_default()
                .push((*cnr, d.mean, d.low, d.high));
        }
    }
    let (xlo, xhi) = padded_range(entries.iter().map(|e| e.0));
    let (ylo, yhi) = padded_range(
        series
            .values()
            .flatten()
            .flat_map(|p| [p.2, p.3])
            .chain([0.0]),
    );
    let mut canvas = Canvas::new(640, 380);
    let plot = Plot {
        frame: (70, 30, 620, 320),
        x: (xlo, xhi),
        y: (ylo, yhi),
    };
    plot.axes(
        &mut canvas,
        "mean mediastinal ct tumour cnr of the cohort",
        &format!("lesion dice difference: {} - ct-only (95 % ci)", arm.name()),
    );
    plot.hline(&mut canvas, 0.0, crate::report::chart::BLACK);
    let mut legend = Vec::new();
    // Series side by side around each CNR, so their bars do not hide each other.
    let width = (xhi - xlo) * 0.012;
    let count = series.len() as f64;
    for (i, (name, mut pts)) in series.into_iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let shift = (i as f64 - (count - 1.0) / 2.0) * width;
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(x, _, lo, hi) in &pts {
            plot.error_bar(&mut canvas, x + shift, lo, hi, colour);
        }
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0 + shift, p.1)).collect();
        plot.line_series(&mut canvas, &line, colour);
        legend.push((name, colour));
    }
    let entries: Vec<(&str, image::Rgb<u8>)> =
        legend.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    plot.legend(&mut canvas, &entries);
    canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmedl_trainer::TrainConfig;

    #[test]
    fn the_summary_tabulates_contrast_and_teachers_only_when_it_has_them() {
        let mut point = StudyPoint {
            name: "cnr-1".into(),
            mediastinal_cnr: Some(0.8),
            teacher: TeacherSetting::default(),
            comparisons: Vec::new(),
            premise: Vec::new(),
            teachers: vec![TeacherRow {
                arm: "cmedl+chosen".into(),
                runs: 3,
                teacher_last: 0.646,
                student_last: 0.688,
                ahead_at_last: 0,
                ever_ahead: 3,
            }],
        };
        let table = study_table(std::slice::from_ref(&point));
        assert!(!table.contains("Tumour contrast"), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("| experiment | arm | runs |"))
            .unwrap();
        assert_eq!(lines[at + 1], "|---|---|---|---|---|---|---|---|");
        assert_eq!(
            lines[at + 2],
            "| cnr-1 | cmedl+chosen | 3 | 0.646 | 0.688 | -0.042 | 0 of 3 | 3 of 3 |"
        );
        point.premise = vec![PremiseRow {
            arm: "cmedl".into(),
            location: "mediastinal".into(),
            tumours: 4,
            ct: 0.5,
            pmri: 2.0,
            mri: 20.0,
            pmri_above_ct: 3,
        }];
        let table = study_table(&[point]);
        assert!(table.contains("| cnr-1 | cmedl | mediastinal | 4 | 0.50 | 2.00 | 20.00 | 3/4 |"));
    }

    #[test]
    fn teacher_rows_take_each_runs_last_epoch_with_both_values() {
        let run = |mode: Mode, seed: u64| RunPlan {
            name: format!("{}-s{seed}", mode.name()),
            mode,
            segmenter: "unet".into(),
            i2i: None,
            seed,
            variant: None,
            fold: None,
            config: TrainConfig::default(),
        };
        let record =
            |epoch: usize, student: f64, teacher: Option<f64>| cmedl_trainer::log::EpochRecord {
                step: epoch,
                epoch,
                lr: 1e-3,
                val_dice: student,
                best_dice: student,
                teacher_dice_pmri: teacher,
                teacher_dice_real: None,
                distill_scale: None,
                losses: BTreeMap::new(),
                wall_s: 0.0,
                parallel: None,
            };
        let runs = [
            run(Mode::CtOnly, 0),
            run(Mode::Cmedl, 0),
            run(Mode::Cmedl, 1),
            run(Mode::PmriOnly, 0),
        ];
        let epochs: BTreeMap<String, Vec<_>> = [
            ("ct-only-s0", vec![record(1, 0.5, None)]),
            // Ahead in epoch 2 only; the last epoch (NaN student: not validated) is passed over.
            (
                "cmedl-s0",
                vec![
                    record(1, 0.2, Some(0.1)),
                    record(2, 0.3, Some(0.4)),
                    record(3, 0.5, Some(0.2)),
                    record(4, f64::NAN, Some(0.9)),
                ],
            ),
            ("cmedl-s1", vec![record(1, 0.3, Some(0.6))]),
            ("pmri-only-s0", vec![record(1, 0.3, Some(0.3))]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let rows = teacher_rows(&runs, &epochs);
        assert_eq!(
            rows,
            [TeacherRow {
                arm: "cmedl".into(),
                runs: 2,
                teacher_last: 0.4,
                student_last: 0.4,
                ahead_at_last: 1,
                ever_ahead: 2,
            }]
        );
    }

    #[test]
    fn premise_rows_pool_an_arms_seeds_per_location() {
        let run = |seed: u64| RunPlan {
            name: format!("cmedl-s{seed}"),
            mode: Mode::Cmedl,
            segmenter: "unet".into(),
            i2i: None,
            seed,
            variant: None,
            fold: None,
            config: TrainConfig::default(),
        };
        let row = |location: &str, ct: f64, pmri: f64| ContrastRow {
            case: "c".into(),
            location: location.into(),
            ct,
            pmri,
            mri: Some(10.0),
        };
        let results: BTreeMap<String, RunResults> = [
            (
                "cmedl-s0".to_owned(),
                RunResults {
                    contrast: vec![row("mediastinal", 1.0, 2.0), row("parenchymal", 30.0, 10.0)],
                    ..Default::default()
                },
            ),
            (
                "cmedl-s1".to_owned(),
                RunResults {
                    contrast: vec![row("mediastinal", 1.0, 0.5)],
                    ..Default::default()
                },
            ),
        ]
        .into();
        let rows = premise_rows(&[run(0), run(1)], &results);
        assert_eq!(
            rows[0],
            PremiseRow {
                arm: "cmedl".into(),
                location: "mediastinal".into(),
                tumours: 2,
                ct: 1.0,
                pmri: 1.25,
                mri: 10.0,
                pmri_above_ct: 1,
            }
        );
        assert_eq!(
            (rows[1].location.as_str(), rows[1].pmri_above_ct),
            ("parenchymal", 0)
        );
        assert_eq!(rows.len(), 2);
    }
}
