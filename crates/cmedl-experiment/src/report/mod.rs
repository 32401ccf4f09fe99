//! Reports of experiment and run folders, written from the files in them (so `cmedl report`
//! can rebuild them): Markdown and self-contained HTML with figures.

pub mod chart;
mod figures;
mod progress;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cmedl_io::dataset::Dataset;
use cmedl_metrics::stats::summarize;
use cmedl_trainer::config::Mode;
use cmedl_trainer::RunDir;

pub use figures::{make_figures, MontageSlice};
pub use progress::ProgressFigure;
pub use render::{
    html, markdown, montage, paired_differences, training_curves, write, Block, Panel, ReportFiles,
};

use crate::arms::{case_differences, compare_arms, ArmComparison};
use crate::lesions::count_lesions;
use crate::plan::i2i_name;
use crate::postprocess::Choice;
use crate::{
    CaseRow, ExperimentConfig, ExperimentDir, ExperimentError, Metric, RunPlan, RunResults, Scores,
};

/// Writes the report of `dir`: an experiment folder's, or else a run folder's.
pub fn write_report(dir: &Path) -> Result<ReportFiles, ExperimentError> {
    let exp = ExperimentDir::new(dir);
    if exp.exists() {
        write_experiment_report(&exp)
    } else {
        write_run_report(&RunDir::new(dir))
    }
}

/// Results of every evaluated run, by run name.
type Results = BTreeMap<String, RunResults>;

/// Writes `report.md` and `report.html` of an experiment folder from the files in it.
pub fn write_experiment_report(dir: &ExperimentDir) -> Result<ReportFiles, ExperimentError> {
    let exp_file = dir.experiment_file();
    let exp_text = std::fs::read_to_string(&exp_file).map_err(|e| {
        ExperimentError::input(dir.path(), format!("not an experiment folder: {e}"))
    })?;
    let exp: ExperimentConfig =
        serde_json::from_str(&exp_text).map_err(|e| ExperimentError::input(&exp_file, e))?;
    let runs: Vec<RunPlan> = crate::read_json(&dir.plan_file())?;
    let Some(first) = runs.first() else {
        return Err(ExperimentError::input(dir.path(), "no runs"));
    };
    let ds = Dataset::open(&first.config.data.root)?;
    // Shards evaluate their runs raw; the one rule for all is applied once all are evaluated.
    let postprocessing = crate::runner::apply_postprocessing(&ds, dir, &runs, &exp)?;
    let mut results = Results::new();
    for r in &runs {
        if let Some(res) = dir.read_results(&r.name)? {
            results.insert(r.name.clone(), res);
        }
    }
    let mut b: Vec<Block> = Vec::new();
    b.push(Block::Heading(1, format!("cmedl experiment: {}", exp.name)));
    b.push(Block::Para(format!(
        "Data: {} ({}). Hardware: {} ({} threads), device '{}'. Wall time of the experiment: {:.0} s. Seeds: {:?}. cmedl {}.",
        ds.index.name,
        ds.root.display(),
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        first.config.device,
        dir.wall_time(),
        exp.seeds,
        env!("CARGO_PKG_VERSION")
    )));
    data_section(&mut b, &ds, first.config.teacher.modalities().student);
    results_section(&mut b, &runs, &results, exp.tolerance_mm);
    lesion_section(&mut b, &runs, &results);
    postprocessing_section(&mut b, &runs, &results, postprocessing.as_ref());
    let comparisons = compare_arms(&runs, &results, 0);
    crate::write_json(&dir.comparisons_file(), &comparisons)?;
    comparison_section(&mut b, &comparisons);
    paired_figures(&mut b, dir, &runs, &results)?;
    teacher_section(&mut b, dir, &runs);
    contrast_section(&mut b, &runs, &results);
    fidelity_section(&mut b, &runs, &results);
    figure_sections(&mut b, dir, &runs);
    b.push(Block::Heading(2, "Configuration".into()));
    b.push(Block::Code(exp_text.trim().to_owned()));
    b.push(Block::Para(format!("Resolved training config of {} (the other runs differ in mode, segmenter, translator and seed):", first.name)));
    b.push(Block::Code(
        serde_json::to_string_pretty(&first.config).unwrap_or_default(),
    ));
    write(dir.path(), &format!("cmedl experiment: {}", exp.name), &b)
}

fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Reference lesions in the label maps of some cases ("?" when one cannot be read).
fn lesions_in(ds: &Dataset, cases: &[cmedl_io::dataset::CaseEntry]) -> String {
    let mut total = 0;
    for c in cases {
        let Some(label) = &c.label else { continue };
        match count_lesions(&ds.path(label)) {
            Ok(n) => total += n,
            Err(_) => return "?".into(),
        }
    }
    total.to_string()
}

fn data_section(b: &mut Vec<Block>, ds: &Dataset, student: &str) {
    b.push(Block::Heading(2, "Data".into()));
    if let Ok(m) = ds.modality(student) {
        b.push(Block::Para(format!(
            "Reference lesions (26-connected components) of the '{student}' label maps: {} in train, {} in val, {} in test.",
            lesions_in(ds, &m.train),
            lesions_in(ds, &m.val),
            lesions_in(ds, &m.test)
        )));
    }
    let rows = ds
        .index
        .modalities
        .iter()
        .map(|(name, m)| {
            vec![
                name.clone(),
                m.kind.to_string(),
                m.train.len().to_string(),
                m.val.len().to_string(),
                m.test.len().to_string(),
            ]
        })
        .collect();
    b.push(Block::Table(
        header(&["modality", "kind", "train", "val", "test"]),
        rows,
    ));
}

fn results_section(b: &mut Vec<Block>, runs: &[RunPlan], results: &Results, tol: f64) {
    b.push(Block::Heading(2, "Results on the test split".into()));
    b.push(Block::Para(format!(
        "Per-case 3-D metrics of label 1 on each test volume, at the input's grid: Dice (DSC), normalised surface Dice at τ = {tol} mm (sDSC), HD95 in mm (surface-element convention). Mean ± sd and median over cases; cases where a mask is empty count in 'inf' and are left out of the HD95 mean."
    )));
    let mut rows = Vec::new();
    for r in runs {
        let Some(rs) = results.get(&r.name) else {
            continue;
        };
        let mine: Vec<&CaseRow> = rs.cases.iter().filter(|c| c.label == 1).collect();
        let col = |m: Metric| mine.iter().map(|c| m.of(&c.metrics)).collect::<Vec<f64>>();
        let (dm, dmed) = fmt_summary(&col(Metric::Dice), 3);
        let (sm, smed) = fmt_summary(&col(Metric::SurfaceDice), 3);
        let hd = col(Metric::Hd95);
        let (hm, hmed) = fmt_summary(&hd, 2);
        rows.push(vec![
            r.label(),
            r.segmenter.clone(),
            r.i2i.map_or("–", i2i_name).into(),
            // A cross-validated run says which fold it held out.
            match r.fold {
                Some(f) => format!("{} (fold {f})", r.seed),
                None => r.seed.to_string(),
            },
            mine.len().to_string(),
            dm,
            dmed,
            sm,
            smed,
            hm,
            hmed,
            hd.iter().filter(|v| v.is_infinite()).count().to_string(),
        ]);
    }
    b.push(Block::Table(
        header(&[
            "mode",
            "segmenter",
            "I2I",
            "seed",
            "n",
            "DSC mean ± sd",
            "DSC median",
            &format!("sDSC@{tol}mm mean ± sd"),
            "sDSC median",
            "HD95 mean ± sd",
            "HD95 median",
            "HD95 inf",
        ]),
        rows,
    ));
}

/// The experiment's one post-processing rule, its candidates, and every run's numbers raw and
/// post-processed.
fn postprocessing_section(
    b: &mut Vec<Block>,
    runs: &[RunPlan],
    results: &Results,
    choice: Option<&Choice>,
) {
    b.push(Block::Heading(3, "Post-processing".into()));
    let Some(choice) = choice else {
        b.push(Block::Para("The numbers above are raw predictions: the post-processing rule is chosen once every run is evaluated with validation scores (runs evaluated by an earlier cmedl are scored again by `cmedl experiment`).".into()));
        return;
    };
    b.push(Block::Para(format!(
        "One rule for every run, chosen on the validation cases of all runs pooled ({} runs, {} patients): **{}** ({}). A rule that loses a validation lesion the raw predictions found is not chosen. The test numbers above follow it.",
        choice.runs,
        choice.patients,
        choice.rule.describe(),
        choice.reason
    )));
    if !choice.candidates.is_empty() {
        let rows = choice
            .candidates
            .iter()
            .map(|c| {
                vec![
                    c.rule.describe(),
                    format!("{:.4}", c.mean_dice),
                    c.lesions_detected.to_string(),
                ]
            })
            .collect();
        b.push(Block::Table(
            header(&[
                "candidate rule",
                "validation DSC (mean over runs and cases)",
                "validation lesions detected (summed over runs)",
            ]),
            rows,
        ));
    }
    let mut rows = Vec::new();
    for r in runs {
        let Some(rs) = results.get(&r.name) else {
            continue;
        };
        let raw = Headline::of(&rs.raw_scores());
        let post = Headline::of(&Scores {
            cases: rs.cases.clone(),
            lesions: rs.lesions.clone(),
            case_lesions: rs.case_lesions.clone(),
        });
        rows.push(vec![
            r.name.clone(),
            format!("{:.3}", raw.dice),
            format!("{:.3}", post.dice),
            format!("{:.1}", raw.hd95_median),
            format!("{:.1}", post.hd95_median),
            format!("{}/{}", raw.detected, raw.lesions),
            format!("{}/{}", post.detected, post.lesions),
            format!("{:.3}", raw.lesion_dice),
            format!("{:.3}", post.lesion_dice),
        ]);
    }
    b.push(Block::Table(
        header(&[
            "run",
            "DSC raw",
            "DSC post",
            "HD95 median raw",
            "HD95 median post",
            "lesions detected raw",
            "lesions detected post",
            "lesion DSC raw",
            "lesion DSC post",
        ]),
        rows,
    ));
}

/// The headline numbers of one set of test predictions (label 1).
struct Headline {
    dice: f64,
    hd95_median: f64,
    lesions: usize,
    detected: usize,
    lesion_dice: f64,
}

impl Headline {
    fn of(s: &Scores) -> Self {
        let cases: Vec<&CaseRow> = s.cases.iter().filter(|c| c.label == 1).collect();
        let dice: Vec<f64> = cases.iter().map(|c| c.metrics.dice).collect();
        let hd: Vec<f64> = cases.iter().map(|c| c.metrics.hd95).collect();
        let lesions: Vec<_> = s.lesions.iter().filter(|l| l.label == 1).collect();
        let lesion_dice: Vec<f64> = lesions.iter().map(|l| l.metrics.dice).collect();
        Self {
            dice: summarize(&dice).mean,
            hd95_median: median_with_infinities(&hd),
            lesions: lesions.len(),
            detected: lesions.iter().filter(|l| l.metrics.detected).count(),
            lesion_dice: summarize(&lesion_dice).mean,
        }
    }
}

/// The median of the non-NaN values, an infinite distance (an empty mask) counting as the
/// largest (NaN when there is none).
fn median_with_infinities(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Lesion-wise results per run, and by the location class of each lesion where the dataset
/// records one.
fn lesion_section(b: &mut Vec<Block>, runs: &[RunPlan], results: &Results) {
    if results.values().all(|r| r.case_lesions.is_empty()) {
        return;
    }
    b.push(Block::Heading(3, "Lesions".into()));
    b.push(Block::Para("Reference lesions are the 26-connected components of label 1. A lesion's prediction is every predicted component within one voxel of it; its Dice is taken against that prediction only, and it is detected when the prediction covers at least one of its voxels. A predicted component near no lesion is a false positive.".into()));
    let mut rows = Vec::new();
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for r in runs {
        let Some(rs) = results.get(&r.name) else {
            continue;
        };
        let counts: Vec<_> = rs.case_lesions.iter().filter(|c| c.label == 1).collect();
        let lesions: usize = counts.iter().map(|c| c.lesions).sum();
        let detected: usize = counts.iter().map(|c| c.detected).sum();
        let fp: usize = counts.iter().map(|c| c.false_positives).sum();
        let dice: Vec<f64> = rs
            .lesions
            .iter()
            .filter(|l| l.label == 1)
            .map(|l| l.metrics.dice)
            .collect();
        let (dm, _) = fmt_summary(&dice, 3);
        kinds.extend(rs.lesions.iter().filter_map(|l| l.location.clone()));
        rows.push(vec![
            r.name.clone(),
            lesions.to_string(),
            format!(
                "{detected} ({:.0} %)",
                100.0 * detected as f64 / lesions.max(1) as f64
            ),
            dm,
            format!("{:.2}", fp as f64 / counts.len().max(1) as f64),
        ]);
    }
    b.push(Block::Table(
        header(&[
            "run",
            "lesions",
            "detected",
            "lesion DSC mean ± sd",
            "false-positive components per case",
        ]),
        rows,
    ));
    if kinds.is_empty() {
        return;
    }
    // Lesions of a few voxels are at the grid's resolution: reported apart, so that they
    // neither hide nor inflate how the tumours a reader would look for are found.
    let big = |l: &&crate::lesions::LesionRow| l.metrics.volume_mm3 >= LARGE_LESION_MM3;
    let small = |l: &&crate::lesions::LesionRow| l.metrics.volume_mm3 < LARGE_LESION_MM3;
    for (title, keep) in [
        (
            "lesions ≥ 2 cm³: DSC by location",
            &big as &dyn Fn(&&crate::lesions::LesionRow) -> bool,
        ),
        ("lesions < 2 cm³: DSC by location", &small),
    ] {
        let mut rows = Vec::new();
        for r in runs {
            let Some(rs) = results.get(&r.name) else {
                continue;
            };
            let mut row = vec![r.name.clone()];
            for k in &kinds {
                let mine: Vec<_> = rs
                    .lesions
                    .iter()
                    .filter(|l| l.label == 1 && l.location.as_ref() == Some(k))
                    .filter(keep)
                    .collect();
                let dice: Vec<f64> = mine.iter().map(|l| l.metrics.dice).collect();
                let hit = mine.iter().filter(|l| l.metrics.detected).count();
                let s = summarize(&dice);
                row.push(if s.n > 0 {
                    format!("{:.3} ({hit}/{} detected)", s.mean, mine.len())
                } else {
                    "–".into()
                });
            }
            rows.push(row);
        }
        let mut head = vec![title.to_owned()];
        head.extend(kinds.iter().cloned());
        b.push(Block::Table(head, rows));
    }
}

/// Lesions at least this large (mm³) are reported apart from smaller ones.
const LARGE_LESION_MM3: f64 = 2000.0;

fn comparison_section(b: &mut Vec<Block>, cmp: &[ArmComparison]) {
    b.push(Block::Heading(2, "Paired comparison with ct-only".into()));
    b.push(Block::Para("Each arm (mode, segmenter, translator) against ct-only with the same segmenter: differences (arm − ct-only) per case, or per lesion for lesion Dice, averaged over the seeds both have. The interval is a 95 % bootstrap over cases (10 000 resamples; the lesions of a case are resampled together); p is the two-sided Wilcoxon signed-rank test over cases (per-case means for lesions; exact up to 25 pairs), and Holm's method adjusts it across the arms compared on the same outcome. The verdict follows the Holm-adjusted p at 0.05. 'detectable' is the difference a paired test at 5 % would find 80 % of the time with these n and standard deviation (normal approximation). cmedl-no-distill is a check of the set-up, not an arm: with equal starts and the same batches its student must be ct-only's.".into()));
    if cmp.is_empty() {
        b.push(Block::Para(
            "No comparison: the experiment has no ct-only run to compare with.".into(),
        ));
        return;
    }
    let rows = cmp.iter().map(comparison_row).collect();
    b.push(Block::Table(
        header(&[
            "arm",
            "outcome",
            "seeds",
            "n",
            "mean difference [95 % CI]",
            "Wilcoxon p",
            "Holm p",
            "detectable (80 %)",
            "verdict",
        ]),
        rows,
    ));
}

/// One figure per arm: every case's Dice difference against ct-only's Dice.
fn paired_figures(
    b: &mut Vec<Block>,
    dir: &ExperimentDir,
    runs: &[RunPlan],
    results: &Results,
) -> Result<(), ExperimentError> {
    crate::create_dir(&dir.figures())?;
    for (arm, points) in case_differences(runs, results) {
        if arm.mode == Mode::CmedlNoDistill || points.is_empty() {
            continue;
        }
        let name = arm.name();
        let file = format!("figures/paired-{}.png", name.replace('/', "-"));
        paired_differences(&dir.path().join(&file), &points, &name)?;
        b.push(Block::Image(file, format!("{name}: one dot per test case, its Dice difference against ct-only (y; above 0 the arm is better) over ct-only's Dice (x), each averaged over the seeds; {} cases", points.len())));
    }
    Ok(())
}

/// The translations of the test cases against the same patients' real images in the teacher
/// modality, where the dataset has them (the phantom does).
fn fidelity_section(b: &mut Vec<Block>, runs: &[RunPlan], results: &Results) {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .filter_map(|r| {
            let f = &results.get(&r.name)?.fidelity;
            if f.is_empty() {
                return None;
            }
            let col = |g: fn(&cmedl_metrics::similarity::Similarity) -> f64| -> Vec<f64> {
                f.iter().map(|x| g(&x.similarity)).collect()
            };
            let mean = |v: Vec<f64>, d: usize| fmt_summary(&v, d).0;
            Some(vec![
                r.name.clone(),
                f.len().to_string(),
                mean(col(|s| s.mae), 3),
                mean(col(|s| s.psnr), 1),
                mean(col(|s| s.ssim), 3),
                mean(col(|s| s.tumour_cnr), 2),
                mean(col(|s| s.reference_tumour_cnr), 2),
            ])
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    b.push(Block::Heading(2, "Translation fidelity".into()));
    b.push(Block::Para("Each test image translated by the run's best checkpoint, against the real image of the same simulated patient in the teacher modality (written by the phantom for evaluation only; never trained on). Both are scaled to [0, 1] by their own 0.5 and 99.5 percentiles; MAE and PSNR (peak 1) over the volume, SSIM over 7×7 windows of each slice; tumour CNR against a 2-voxel ring around the tumour, in the translation and in the real image. Mean ± sd over cases.".into()));
    b.push(Block::Table(
        header(&[
            "run",
            "cases",
            "MAE",
            "PSNR dB",
            "SSIM",
            "tumour CNR in pMRI",
            "tumour CNR in real MRI",
        ]),
        rows,
    ));
}

/// "–" for a missing or NaN value, else the value with 3 decimals.
fn fmt_dice(v: Option<f64>) -> String {
    match v {
        Some(d) if d.is_finite() => format!("{d:.3}"),
        _ => "–".into(),
    }
}

/// The student's and the teacher's validation Dice at the student's best epoch and at the last.
fn teacher_section(b: &mut Vec<Block>, dir: &ExperimentDir, runs: &[RunPlan]) {
    let with_teacher: Vec<&RunPlan> = runs.iter().filter(|r| r.mode.uses_teacher()).collect();
    if with_teacher.is_empty() {
        return;
    }
    b.push(Block::Heading(
        2,
        "Student and teacher on the validation split".into(),
    ));
    b.push(Block::Para("Validation Dice of the student (the mode's test-time path) and of the teacher on the translations of the same validation images (pMRI) and on real labelled teacher-modality images, at the student's best and last epochs. A student can only gain from a teacher that segments better than it does: 'teacher ahead' says whether, and from which epoch, the teacher on pMRI beat the student; 'hint' counts the epochs trained with the distillation term on (with loss.distill.gate_on_teacher, only those after an epoch the teacher was ahead).".into()));
    let mut rows = Vec::new();
    for r in with_teacher {
        let epochs = dir.run(&r.name).epochs();
        let (ahead, hint) = premise_cells(r.mode, r.config.loss.distill.gate_on_teacher, &epochs);
        let best = epochs
            .iter()
            .filter(|e| e.val_dice.is_finite())
            .max_by(|a, b| a.val_dice.total_cmp(&b.val_dice));
        for (which, e) in [("best", best), ("last", epochs.last())] {
            let Some(e) = e else { continue };
            rows.push(vec![
                r.name.clone(),
                format!("{which} ({})", e.epoch),
                fmt_dice(Some(e.val_dice)),
                fmt_dice(e.teacher_dice_pmri),
                fmt_dice(e.teacher_dice_real),
                ahead.clone(),
                hint.clone(),
            ]);
        }
    }
    b.push(Block::Table(
        header(&[
            "run",
            "epoch",
            "student",
            "teacher on pMRI",
            "teacher on real images",
            "teacher ahead",
            "hint",
        ]),
        rows,
    ));
}

/// Tumour contrast on the CT, on each run's translation and on the real MRI, measured alike
/// (phantom data): the premise that a pseudo-MRI shows a tumour better than the CT it came from.
fn contrast_section(b: &mut Vec<Block>, runs: &[RunPlan], results: &Results) {
    if results.values().all(|r| r.contrast.is_empty()) {
        return;
    }
    b.push(Block::Heading(3, "Tumour contrast, like for like".into()));
    b.push(Block::Para("Contrast-to-noise ratio of each test tumour, |mean(core) − mean(ring)| / sd(ring), on the CT, on the run's translation of that CT (pMRI) and on the same patient's real MRI, all on the same core and ring voxels (the phantom's own measure, as `cmedl phantom --stats` prints it: the tumour's core against the adjacent tissue within 4 voxels — lung, heart/aorta/oesophagus, muscle — partial-volume edges left out). Means over the tumours of each location class; 'pMRI > CT' counts the tumours whose translation shows them with more contrast than their CT.".into()));
    let rows = runs
        .iter()
        .flat_map(|r| {
            let rows = results.get(&r.name).map(|res| &res.contrast);
            crate::study::contrast_by_location(&r.name, rows.into_iter().flatten())
                .into_iter()
                .map(|p| {
                    vec![
                        p.arm,
                        p.location,
                        p.tumours.to_string(),
                        format!("{:.2}", p.ct),
                        format!("{:.2}", p.pmri),
                        format!("{:.2}", p.mri),
                        format!("{}/{}", p.pmri_above_ct, p.tumours),
                    ]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    b.push(Block::Table(
        header(&[
            "run",
            "location",
            "tumours",
            "CNR CT",
            "CNR pMRI",
            "CNR MRI",
            "pMRI > CT",
        ]),
        rows,
    ));
}

/// Whether and from which epoch the teacher was ahead of the student, and how many epochs
/// trained with the hint ("never applied" for a gated run whose gate never opened).
fn premise_cells(
    mode: cmedl_trainer::Mode,
    gated: bool,
    epochs: &[cmedl_trainer::log::EpochRecord],
) -> (String, String) {
    let lead = cmedl_trainer::log::TeacherLead::of(epochs);
    let ahead = match (mode, lead) {
        // The student column of pmri-only is the teacher itself.
        (cmedl_trainer::Mode::PmriOnly, _) | (_, None) => "–".to_owned(),
        (_, Some(l)) => l.describe(),
    };
    let hint = match lead.and_then(|l| l.hint_epochs) {
        Some(0) if gated => "never applied".to_owned(),
        Some(n) => format!("{n} of {} epochs", epochs.len()),
        None => "–".to_owned(),
    };
    (ahead, hint)
}

fn figure_sections(b: &mut Vec<Block>, dir: &ExperimentDir, runs: &[RunPlan]) {
    b.push(Block::Heading(2, "Training curves".into()));
    for r in runs {
        let path = format!("figures/curves-{}.png", r.name);
        if dir.path().join(&path).exists() {
            let (loss, dice) = dir.run(&r.name).epoch_curves();
            let (lo, hi) = finite_range(&loss);
            let best = finite_max(&dice);
            b.push(Block::Image(path, format!("{}: left, mean total training loss per epoch (blue, {} epochs, range {lo:.3}–{hi:.3}); right, validation Dice per epoch (green, axis 0–1, best {best:.3})", r.name, loss.len())));
        }
    }
    b.push(Block::Heading(2, "Test slices".into()));
    let shown: Option<MontageSlice> = crate::read_json(&dir.figures().join("montage.json")).ok();
    let (case, slice) = shown.map_or(("?".to_owned(), "null".to_owned()), |m| {
        (m.case, m.slice.to_string())
    });
    for r in runs {
        let path = format!("figures/montage-{}.png", r.name);
        if dir.path().join(&path).exists() {
            let extra = if r.mode.uses_translator() {
                "; right: its translation into the teacher modality (pMRI) with the same contours"
            } else {
                ""
            };
            b.push(Block::Image(path, format!("{}: case {case} slice {slice}; left: CT with the reference (green) and predicted (red) contours{extra}", r.name)));
        }
    }
}

/// The smallest and largest finite value (±∞ when there is none).
fn finite_range(values: &[f64]) -> (f64, f64) {
    let fin = values.iter().copied().filter(|v| v.is_finite());
    (
        fin.clone().fold(f64::INFINITY, f64::min),
        fin.fold(f64::NEG_INFINITY, f64::max),
    )
}

/// The largest finite value (NaN when there is none).
fn finite_max(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max)
}

fn comparison_row(c: &ArmComparison) -> Vec<String> {
    let p = c.wilcoxon.as_ref().map_or("–".into(), |w| {
        format!(
            "{:.4}{}",
            w.p_value,
            if w.exact { "" } else { " (approx.)" }
        )
    });
    let verdict = if c.arm.mode == Mode::CmedlNoDistill {
        if c.identical {
            "set-up check: identical to ct-only"
        } else {
            "set-up check FAILED: differs from ct-only"
        }
    } else if c.wilcoxon.is_none() {
        "no differing cases"
    } else if c.p_holm < 0.05 {
        "significant"
    } else {
        "not significant"
    };
    let diff = c.difference.as_ref().map_or("–".into(), |d| {
        format!("{:+.3} [{:+.3}, {:+.3}]", d.mean, d.low, d.high)
    });
    let holm = if c.p_holm.is_finite() {
        format!("{:.4}", c.p_holm)
    } else {
        "–".into()
    };
    let detectable = if c.detectable.is_finite() {
        format!("±{:.3}", c.detectable)
    } else {
        "–".into()
    };
    vec![
        c.arm.name(),
        c.outcome.name().to_owned(),
        c.seeds.to_string(),
        format!("{} {}s", c.n, c.outcome.unit()),
        diff,
        p,
        holm,
        detectable,
        verdict.to_owned(),
    ]
}

/// Mean ± sd and median with `digits` decimals ("–" without values).
fn fmt_summary(values: &[f64], digits: usize) -> (String, String) {
    let s = summarize(values);
    if s.n == 0 {
        return ("–".into(), "–".into());
    }
    let sd = if s.sd.is_finite() { s.sd } else { 0.0 };
    (
        format!("{:.*} ± {:.*}", digits, s.mean, digits, sd),
        format!("{:.*}", digits, s.median),
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Writes `report.md`/`report.html` for a single run folder: curves, epochs, config.
pub fn write_run_report(run: &RunDir) -> Result<ReportFiles, ExperimentError> {
    let config_text = std::fs::read_to_string(run.config_file()).map_err(|e| {
        ExperimentError::input(run.path(), format!("not a run or experiment folder: {e}"))
    })?;
    let (loss, dice) = run.epoch_curves();
    let figs = run.figures();
    crate::create_dir(&figs)?;
    let teacher = figures::teacher_curve(run);
    let (lo, hi) = training_curves(&figs.join("curves.png"), &loss, &dice, &teacher)?;
    let best = finite_max(&dice);
    let name = run
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rows = loss
        .iter()
        .zip(&dice)
        .enumerate()
        .map(|(i, (l, d))| vec![(i + 1).to_string(), format!("{l:.4}"), format!("{d:.4}")])
        .collect();
    let b = vec![
        Block::Heading(1, format!("cmedl run: {name}")),
        Block::Para(format!("{} epochs; best validation Dice {best:.4}. Hardware of this report: {}.", loss.len(), cpu_model())),
        Block::Image("figures/curves.png".into(), format!("left, mean total training loss per epoch (blue, range {lo:.3}–{hi:.3}); right, validation Dice per epoch (green, axis 0–1)")),
        Block::Table(header(&["epoch", "mean total loss", "validation Dice"]), rows),
        Block::Heading(2, "Configuration".into()),
        Block::Code(config_text.trim().to_owned()),
    ];
    write(run.path(), &format!("cmedl run: {name}"), &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmedl_trainer::log::EpochRecord;
    use cmedl_trainer::Mode;

    fn epoch(epoch: usize, student: f64, teacher: f64, scale: Option<f64>) -> EpochRecord {
        EpochRecord {
            step: epoch * 10,
            epoch,
            lr: 1e-3,
            val_dice: student,
            best_dice: student,
            teacher_dice_pmri: Some(teacher),
            teacher_dice_real: None,
            distill_scale: scale,
            losses: Default::default(),
            wall_s: 1.0,
            parallel: None,
        }
    }

    #[test]
    fn a_gated_run_whose_teacher_is_never_ahead_says_the_hint_was_never_applied() {
        let never = [
            epoch(1, 0.2, 0.1, Some(0.0)),
            epoch(2, 0.3, 0.3, Some(0.0)),
            epoch(3, 0.4, 0.35, Some(0.0)),
        ];
        assert_eq!(
            premise_cells(Mode::Cmedl, true, &never),
            ("never (3 epochs)".to_owned(), "never applied".to_owned())
        );
        // The gate opens the epoch after the teacher is first ahead.
        let opens = [
            epoch(1, 0.2, 0.1, Some(0.0)),
            epoch(2, 0.3, 0.4, Some(0.0)),
            epoch(3, 0.4, 0.5, Some(1.0)),
        ];
        assert_eq!(
            premise_cells(Mode::Cmedl, true, &opens),
            (
                "from epoch 2 (2 of 3 epochs)".to_owned(),
                "1 of 3 epochs".to_owned()
            )
        );
        // Without distillation, and for pmri-only (the student column is the teacher), no claim.
        let plain = [epoch(1, 0.2, 0.3, None)];
        assert_eq!(
            premise_cells(Mode::CmedlNoDistill, false, &plain),
            ("from epoch 1 (1 of 1 epochs)".to_owned(), "–".to_owned())
        );
        assert_eq!(premise_cells(Mode::PmriOnly, false, &plain).0, "–");
    }
}
