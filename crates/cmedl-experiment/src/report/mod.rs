//! Reports of experiment and run folders, written from the files in them (so `cmedl report`
//! can rebuild them): Markdown and self-contained HTML with figures.

mod figures;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cmedl_io::dataset::Dataset;
use cmedl_metrics::stats::summarize;
use cmedl_trainer::config::Mode;
use cmedl_trainer::RunDir;

pub use figures::{make_figures, MontageSlice};
pub use render::{html, markdown, montage, training_curves, write, Block, Panel, ReportFiles};

use crate::plan::i2i_name;
use crate::{
    compare, CaseRow, Comparison, ExperimentConfig, ExperimentDir, ExperimentError, Metric, RunPlan,
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
type Results = BTreeMap<String, Vec<CaseRow>>;

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
    let mut results = Results::new();
    for r in &runs {
        if let Some(rows) = dir.read_results(&r.name)? {
            results.insert(r.name.clone(), rows);
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
    data_section(&mut b, &ds);
    results_section(&mut b, &runs, &results, exp.tolerance_mm);
    location_section(&mut b, &ds, &runs, &results);
    comparison_section(&mut b, &runs, &results);
    teacher_section(&mut b, dir, &runs);
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

fn data_section(b: &mut Vec<Block>, ds: &Dataset) {
    b.push(Block::Heading(2, "Data".into()));
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
        let mine: Vec<&CaseRow> = rs.iter().filter(|c| c.label == 1).collect();
        let col = |m: Metric| mine.iter().map(|c| m.of(&c.metrics)).collect::<Vec<f64>>();
        let (dm, dmed) = fmt_summary(&col(Metric::Dice), 3);
        let (sm, smed) = fmt_summary(&col(Metric::SurfaceDice), 3);
        let hd = col(Metric::Hd95);
        let (hm, hmed) = fmt_summary(&hd, 2);
        rows.push(vec![
            r.mode.name().into(),
            r.segmenter.clone(),
            r.i2i.map_or("–", i2i_name).into(),
            r.seed.to_string(),
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

/// DSC per location of the largest tumour, where the data set records it.
fn location_section(b: &mut Vec<Block>, ds: &Dataset, runs: &[RunPlan], results: &Results) {
    let Some(first) = runs.first() else { return };
    let modality = first.config.teacher.modalities().student;
    let locations: BTreeMap<String, String> = results
        .values()
        .flatten()
        .filter_map(|c| case_location(ds, modality, &c.case).map(|l| (c.case.clone(), l)))
        .collect();
    if locations.is_empty() {
        return;
    }
    b.push(Block::Heading(
        3,
        "DSC by location of the largest tumour".into(),
    ));
    let kinds: BTreeSet<&String> = locations.values().collect();
    let mut rows = Vec::new();
    for r in runs {
        let Some(rs) = results.get(&r.name) else {
            continue;
        };
        let mut row = vec![r.name.clone()];
        for k in &kinds {
            let v: Vec<f64> = rs
                .iter()
                .filter(|c| c.label == 1 && locations.get(&c.case) == Some(*k))
                .map(|c| c.metrics.dice)
                .collect();
            let s = summarize(&v);
            row.push(if s.n > 0 {
                format!("{:.3} (n = {})", s.mean, s.n)
            } else {
                "–".into()
            });
        }
        rows.push(row);
    }
    let mut head = vec!["run".to_owned()];
    head.extend(kinds.iter().map(|k| (*k).clone()));
    b.push(Block::Table(head, rows));
}

fn comparison_section(b: &mut Vec<Block>, runs: &[RunPlan], results: &Results) {
    b.push(Block::Heading(2, "Paired comparison with ct-only".into()));
    b.push(Block::Para("Differences are (mode − ct-only) on the same test cases, with a 95 % bootstrap interval (10 000 resamples); p is the two-sided Wilcoxon signed-rank test (exact up to 25 pairs); r is the matched-pairs rank-biserial correlation. 'significant' means p < 0.05 for that single test, without correction for multiple comparisons.".into()));
    let mut rows = Vec::new();
    for r in runs.iter().filter(|r| r.mode != Mode::CtOnly) {
        let Some(base_run) = r.baseline(runs) else {
            continue;
        };
        let (Some(a), Some(bb)) = (results.get(&r.name), results.get(&base_run.name)) else {
            continue;
        };
        let shown = [Metric::Dice, Metric::SurfaceDice, Metric::Hd95];
        for c in compare(a, bb, r.seed)
            .iter()
            .filter(|c| c.label == 1 && shown.contains(&c.metric))
        {
            rows.push(comparison_row(&r.name, c));
        }
    }
    if rows.is_empty() {
        b.push(Block::Para(
            "No comparison: the experiment has no ct-only run to compare with.".into(),
        ));
    } else {
        b.push(Block::Table(
            header(&[
                "run",
                "metric",
                "n",
                "mean difference [95 % CI]",
                "Wilcoxon p",
                "r",
                "verdict",
            ]),
            rows,
        ));
    }
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
    b.push(Block::Para("Validation Dice per epoch of the student (the mode's test-time path) and of the teacher on the translations of the same validation images (pMRI) and on real labelled teacher-modality images. A student can only gain from a teacher that segments better than it does.".into()));
    let mut rows = Vec::new();
    for r in with_teacher {
        let epochs = dir.run(&r.name).epochs();
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
        ]),
        rows,
    ));
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

fn comparison_row(name: &str, c: &Comparison) -> Vec<String> {
    let (n, p, verdict) = match &c.wilcoxon {
        Some(w) => (
            w.n.to_string(),
            format!(
                "{:.4}{}",
                w.p_value,
                if w.exact { "" } else { " (approx.)" }
            ),
            if w.p_value < 0.05 {
                "significant"
            } else {
                "not significant"
            },
        ),
        None => ("0".into(), "–".into(), "no differing pairs"),
    };
    let diff = c.difference.as_ref().map_or("–".into(), |d| {
        format!("{:+.3} [{:+.3}, {:+.3}]", d.mean, d.low, d.high)
    });
    let r = c.rank_biserial.map_or("–".into(), |r| format!("{r:+.2}"));
    vec![
        name.to_owned(),
        c.metric.name().to_owned(),
        n,
        diff,
        p,
        r,
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

/// Location kind of a case: that of its largest tumour, from the phantom's metadata.
fn case_location(ds: &Dataset, modality: &str, case: &str) -> Option<String> {
    let m = ds.modality(modality).ok()?;
    let entry = m.test.iter().find(|c| c.id == case)?;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ds.path(entry.meta.as_ref()?)).ok()?).ok()?;
    meta["tumours"]
        .as_array()?
        .iter()
        .max_by_key(|t| t["voxels"].as_u64().unwrap_or(0))
        .and_then(|t| t["kind"].as_str().map(str::to_owned))
}

/// Writes `report.md`/`report.html` for a single run folder: curves, epochs, config.
pub fn write_run_report(run: &RunDir) -> Result<ReportFiles, ExperimentError> {
    let config_text = std::fs::read_to_string(run.config_file()).map_err(|e| {
        ExperimentError::input(run.path(), format!("not a run or experiment folder: {e}"))
    })?;
    let (loss, dice) = run.epoch_curves();
    let figs = run.figures();
    crate::create_dir(&figs)?;
    let (lo, hi) = training_curves(&figs.join("curves.png"), &loss, &dice)?;
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
