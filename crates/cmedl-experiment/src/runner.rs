//! The experiment loop: generate or open the data, train each planned run (skipping finished
//! ones, resuming interrupted ones), predict and score its test split, draw the figures and
//! write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use cmedl_io::dataset::{CaseEntry, Dataset};
use cmedl_io::formats::{read_image, read_label_image};
use cmedl_io::nifti::{read_mask, write_mask, ReadOptions};
use cmedl_metrics::lesion::LesionOptions;
use cmedl_metrics::similarity::{similarity, SimilarityOptions};
use cmedl_metrics::MetricOptions;
use cmedl_phantom::write_cohort;
use cmedl_trainer::checkpoint::Which;
use cmedl_trainer::infer::Predictor;
use cmedl_trainer::{RunOptions, Silent, Trainer};

use crate::evaluate::FidelityRow;
use crate::lesions::{score_lesions, tumour_positions};
use crate::postprocess::{Choice, Rule, ValidationScores};
use crate::report::{self, ReportFiles};
use crate::{plan, ExperimentConfig, ExperimentDir, ExperimentError, RunPlan, RunResults, Scores};

/// How an experiment is driven.
#[derive(Clone, Default)]
pub struct ExperimentOptions {
    /// Set by a Ctrl-C handler: the run in training saves `latest` and the experiment stops.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Which of the planned runs this process takes on.
    pub runs: RunSelection,
    /// The device of this process's runs instead of the config's (the runs' results and
    /// fingerprints do not depend on it).
    pub device: Option<cmedl_trainer::DeviceSpec>,
}

/// Which of an experiment's planned runs one process takes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunSelection {
    /// Every run: train, evaluate, then write the figures and the report.
    #[default]
    All,
    /// Runs `i`, `i + n`, `i + 2n`, … of the plan (0 ≤ i < n): train and evaluate them; the
    /// report is left to `cmedl report` once every shard has finished.
    Shard {
        /// This shard (0-based).
        index: usize,
        /// Number of shards.
        count: usize,
    },
    /// One run, trained only (evaluation and report are left to the process that started it).
    TrainOnly(String),
}

/// What an experiment process produced.
#[derive(Debug)]
pub enum ExperimentOutcome {
    /// The report of the whole experiment.
    Report(ReportFiles),
    /// Part of the runs, trained (and evaluated, for a shard); no report yet.
    Partial {
        /// The runs this process took on.
        runs: Vec<String>,
    },
}

/// The planned runs of the experiment in `out` (writing `experiment.json` and `plan.json`, and
/// generating phantom data, as the experiment itself would).
pub fn plan_experiment(config_path: &Path, out: &Path) -> Result<Vec<RunPlan>, ExperimentError> {
    Ok(prepare(config_path, out)?.1)
}

/// The experiment, its folder and its checked plan.
fn prepare(
    config_path: &Path,
    out: &Path,
) -> Result<(ExperimentConfig, Vec<RunPlan>, PathBuf), ExperimentError> {
    let exp = ExperimentConfig::load(config_path)?;
    let base = exp.base_config(config_path)?;
    // Checked before any data is generated or any run folder made (the data root is the
    // experiment's to fill in).
    let mut checked = base.clone();
    if checked.data.root.as_os_str().is_empty() {
        checked.data.root = PathBuf::from("experiment-data");
    }
    checked.validate().map_err(|e| {
        ExperimentError::input(config_path, format!("base config: {}", e.message()))
    })?;
    if exp.data.root.is_none() && exp.data.phantom.is_none() {
        return Err(ExperimentError::input(
            config_path,
            "data needs 'root' or 'phantom'",
        ));
    }
    let dir = ExperimentDir::new(out);
    check_same_data(&dir, &exp)?;
    crate::create_dir(dir.path())?;
    // Absolute, so that `cmedl report` finds the data from any working folder.
    let data_root = data_root(&exp, &dir, config_path)?;
    let data_root =
        std::path::absolute(&data_root).map_err(|e| ExperimentError::input(&data_root, e))?;
    let runs = plan(&exp, &base, &data_root)?;
    for r in &runs {
        check_same_config(&dir.run(&r.name), r)?;
    }
    crate::write_json(&dir.experiment_file(), &exp)?;
    crate::write_json(&dir.plan_file(), &runs)?;
    Ok((exp, runs, data_root))
}

/// Runs the experiment of `config_path` in the folder `out` and writes its report (or, for
/// part of the runs, trains and evaluates them).
pub fn run_experiment(
    config_path: &Path,
    out: &Path,
    options: &ExperimentOptions,
) -> Result<ExperimentOutcome, ExperimentError> {
    let start = Instant::now();
    let (exp, mut runs, data_root) = prepare(config_path, out)?;
    let dir = ExperimentDir::new(out);
    if let Some(device) = options.device {
        for r in &mut runs {
            r.config.device = device;
        }
    }
    let mine: Vec<&RunPlan> = match &options.runs {
        RunSelection::All => runs.iter().collect(),
        RunSelection::Shard { index, count } => {
            runs.iter().skip(*index).step_by((*count).max(1)).collect()
        }
        RunSelection::TrainOnly(name) => {
            let r = runs.iter().find(|r| r.name == *name).ok_or_else(|| {
                ExperimentError::input(config_path, format!("no planned run named '{name}'"))
            })?;
            train_run(&dir, r, options)?;
            return Ok(ExperimentOutcome::Partial {
                runs: vec![name.clone()],
            });
        }
    };
    let ds = Dataset::open(&data_root)?;
    let candidates = match runs.first() {
        Some(r) => exp
            .postprocessing
            .candidates(single_component_labels(&ds, &r.config)?),
        None => Vec::new(),
    };
    for r in &mine {
        train_run(&dir, r, options)?;
        evaluate_run(
            &ds,
            r,
            &dir,
            exp.tolerance_mm,
            &candidates,
            exp.data.phantom.as_ref(),
        )?;
    }
    if options.runs != RunSelection::All {
        return Ok(ExperimentOutcome::Partial {
            runs: mine.iter().map(|r| r.name.clone()).collect(),
        });
    }
    apply_postprocessing(&ds, &dir, &runs, &exp)?;
    report::make_figures(&ds, &runs, &dir)?;
    dir.add_wall_time(start.elapsed().as_secs_f64())?;
    Ok(ExperimentOutcome::Report(report::write_experiment_report(
        &dir,
    )?))
}

/// The dataset root: the configured one, or the phantom generated into the experiment folder.
fn data_root(
    exp: &ExperimentConfig,
    dir: &ExperimentDir,
    config_path: &Path,
) -> Result<PathBuf, ExperimentError> {
    match (&exp.data.root, &exp.data.phantom) {
        (Some(root), _) => Ok(root.clone()),
        (None, Some(recipe)) => {
            let root = dir.phantom_data();
            if !root.join("dataset.json").exists() {
                tracing::info!("generating the phantom cohort in {}", root.display());
                write_cohort(recipe, &root, &|_, _| {})?;
            }
            Ok(root)
        }
        (None, None) => Err(ExperimentError::input(
            config_path,
            "data needs 'root' or 'phantom'",
        )),
    }
}

/// Trains a run unless it finished earlier; resumes it when it was interrupted.
fn train_run(
    dir: &ExperimentDir,
    r: &RunPlan,
    options: &ExperimentOptions,
) -> Result<(), ExperimentError> {
    let run = dir.run(&r.name);
    if run.is_finished() {
        tracing::info!("{}: finished earlier, skipped", r.name);
        return Ok(());
    }
    let resume = run.can_resume();
    if !resume && run.path().exists() {
        // A run that never reached its first checkpoint starts over.
        std::fs::remove_dir_all(run.path()).map_err(|e| ExperimentError::write(run.path(), e))?;
    }
    tracing::info!(
        "{} {}",
        if resume { "resuming" } else { "training" },
        r.name
    );
    let trainer = if resume {
        Trainer::resume(run.path())?
    } else {
        Trainer::new(&r.config, run.path())?
    };
    let run_options = RunOptions {
        interrupt: options.interrupt.clone(),
        ..Default::default()
    };
    trainer.run(
        &run_options,
        &mut report::ProgressFigure::new(run.clone(), &mut Silent),
    )?;
    Ok(())
}

/// An experiment folder whose data came from another recipe or root is an error: the runs in
/// it were trained and scored on that data.
fn check_same_data(dir: &ExperimentDir, exp: &ExperimentConfig) -> Result<(), ExperimentError> {
    let path = dir.experiment_file();
    if !path.exists() {
        return Ok(());
    }
    let before: ExperimentConfig = crate::read_json(&path)?;
    if before.data != exp.data {
        return Err(ExperimentError::input(
            &path,
            "this folder's experiment used other data; choose another --out",
        ));
    }
    Ok(())
}

/// A run folder trained under another config than the plan's is an error: its checkpoints,
/// predictions and results would be reported as the plan's.
fn check_same_config(run: &cmedl_trainer::RunDir, r: &RunPlan) -> Result<(), ExperimentError> {
    let path = run.config_file();
    if !path.exists() {
        return Ok(());
    }
    let stored: cmedl_trainer::run_dir::ConfigRecord = crate::read_json(&path)?;
    // The device is where a run trained, not what it is: runs spread over devices match.
    let as_json = |c: &cmedl_trainer::TrainConfig| {
        let mut c = c.clone();
        c.device = cmedl_trainer::DeviceSpec::Auto;
        serde_json::to_value(c).ok()
    };
    if as_json(&stored.config) != as_json(&r.config) {
        return Err(ExperimentError::input(
            &path,
            format!(
                "run '{}' was trained with another config than this experiment plans; choose another --out, or delete {} to train it again",
                r.name,
                run.path().display()
            ),
        ));
    }
    Ok(())
}

/// Predicts the test split with the run's best checkpoint, scores the raw predictions and
/// every candidate post-processing rule on the validation cases, and writes
/// `results/<run>.json`.
fn evaluate_run(
    ds: &Dataset,
    r: &RunPlan,
    dir: &ExperimentDir,
    tolerance: f64,
    candidates: &[Rule],
    phantom: Option<&cmedl_phantom::CohortConfig>,
) -> Result<(), ExperimentError> {
    let pred_dir = dir.predictions(&r.name);
    crate::create_dir(&pred_dir)?;
    let student = r.config.teacher.modalities().student;
    let modality = ds.modality(student)?;
    if modality.test.is_empty() {
        return Err(ExperimentError::input(
            &ds.root,
            format!("the '{student}' modality has no test cases to evaluate"),
        ));
    }
    let predictor = load_best(dir, r)?;
    let labels: Vec<u8> = (1..r.config.data.classes as u8).collect();
    // A rerun keeps the validation scores of the same candidates instead of predicting the
    // validation cases again.
    let validation = match dir
        .read_results(&r.name)?
        .and_then(|res| res.validation)
        .filter(|v| v.candidates == candidates)
    {
        Some(v) => v,
        None => score_validation(ds, &predictor, &r.config, &labels, candidates)?,
    };
    let scoring = Scoring {
        ds,
        metrics: MetricOptions {
            tolerance_mm: tolerance,
            ..Default::default()
        },
        labels,
    };
    let mut results = RunResults {
        validation: Some(validation),
        ..Default::default()
    };
    // The phantom's recipe, listed once: tumour contrast regenerates each test case from it.
    let recipe = phantom.map(|cohort| (cohort, cmedl_phantom::plan(cohort)));
    for case in &modality.test {
        let Some(label) = &case.label else {
            continue;
        };
        let pred_path = pred_dir.join(format!("{}.nii.gz", case.id));
        let mut volume = None;
        if !pred_path.exists() {
            let v = read_image(&ds.path(&case.image), &ReadOptions::default())?;
            let seg = predictor.segment(&v, 16, false, false)?;
            write_mask(&pred_path, &seg.labels)?;
            volume = Some(v);
        }
        let scores = scoring.score_file(case, label, &pred_path)?;
        results.cases.extend(scores.cases);
        results.lesions.extend(scores.lesions);
        results.case_lesions.extend(scores.case_lesions);
        // Translated only where something measures the translation.
        let Some(window) = predictor
            .teacher_window
            .filter(|_| case.counterpart.is_some() || recipe.is_some())
        else {
            continue;
        };
        let v = match volume {
            Some(v) => v,
            None => read_image(&ds.path(&case.image), &ReadOptions::default())?,
        };
        let translated = predictor.translate(&v, 16, window)?;
        if let Some(row) = fidelity(ds, case, label, &translated)? {
            results.fidelity.push(row);
        }
        if let Some((cohort, plans)) = &recipe {
            results
                .contrast
                .extend(tumour_contrast(cohort, plans, &case.id, &translated)?);
        }
    }
    crate::create_dir(&dir.results())?;
    crate::write_json(&dir.results_file(&r.name), &results)
}

/// Whether no labelled training or validation case of the run's student modality has more
/// than one component of a label: only then is largest-component post-processing offered.
fn single_component_labels(
    ds: &Dataset,
    config: &cmedl_trainer::TrainConfig,
) -> Result<bool, ExperimentError> {
    let modality = ds.modality(config.teacher.modalities().student)?;
    for case in modality.train.iter().chain(&modality.val) {
        let Some(label) = &case.label else {
            continue;
        };
        let mask = read_label_image(&ds.path(label), &ReadOptions::default())?;
        if mask.component_counts().values().any(|&n| n > 1) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Predicts the run's validation cases (the dataset's split, or the held-out fold) and scores
/// every candidate rule on them.
fn score_validation(
    ds: &Dataset,
    predictor: &Predictor,
    config: &cmedl_trainer::TrainConfig,
    labels: &[u8],
    candidates: &[Rule],
) -> Result<ValidationScores, ExperimentError> {
    let (_, val) = cmedl_trainer::prepare::student_split(config, ds)?;
    let mut scores = ValidationScores {
        candidates: candidates.to_vec(),
        cases: Vec::new(),
    };
    for case in &val {
        let Some(label_file) = &case.label else {
            continue;
        };
        let image = read_image(&ds.path(&case.image), &ReadOptions::default())?;
        let reference = read_label_image(&ds.path(label_file), &ReadOptions::default())?;
        let seg = predictor.segment(&image, 16, false, false)?;
        scores.add(&case.id, &seg.labels, &reference.data, labels);
    }
    Ok(scores)
}

/// Chooses the experiment's post-processing rule once every run is evaluated (or reuses the
/// choice already made under the same configuration and runs), applies it to every run's
/// test predictions and scores them; the raw numbers stay in each run's results. Returns the
/// choice, or none while some run is not evaluated yet (or was evaluated by an earlier cmedl
/// without validation scores).
pub(crate) fn apply_postprocessing(
    ds: &Dataset,
    dir: &ExperimentDir,
    runs: &[RunPlan],
    exp: &ExperimentConfig,
) -> Result<Option<Choice>, ExperimentError> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for r in runs {
        match dir.read_results(&r.name)? {
            Some(res) => all.push(res),
            None => return Ok(None),
        }
    }
    let path = dir.postprocessing_file();
    let earlier: Option<Choice> = if path.exists() {
        Some(crate::read_json(&path)?)
    } else {
        None
    };
    let choice = match earlier.filter(|c| c.config == exp.postprocessing && c.runs == runs.len()) {
        Some(c) => c,
        None => {
            let scores: Vec<&ValidationScores> =
                all.iter().filter_map(|r| r.validation.as_ref()).collect();
            if scores.len() < all.len() {
                // Runs evaluated by an earlier cmedl: their report stays raw until the
                // experiment is run again and scores them.
                tracing::warn!(
                    "{}: some runs were evaluated without validation scores; their numbers stay raw until `cmedl experiment` evaluates them again",
                    dir.path().display()
                );
                return Ok(None);
            }
            let single = single_component_labels(ds, &first.config)?;
            let c = crate::postprocess::choose(&exp.postprocessing, single, &scores);
            tracing::info!(
                "post-processing for every run: {} ({})",
                c.rule.describe(),
                c.reason
            );
            crate::write_json(&path, &c)?;
            c
        }
    };
    for (r, mut res) in runs.iter().zip(all) {
        if res.rule == Some(choice.rule) {
            continue;
        }
        let raw = res.raw_scores();
        let scores = if choice.rule == Rule::None {
            res.raw = None;
            raw
        } else {
            res.raw = Some(Box::new(raw));
            postprocessed_scores(ds, dir, r, exp.tolerance_mm, choice.rule)?
        };
        res.cases = scores.cases;
        res.lesions = scores.lesions;
        res.case_lesions = scores.case_lesions;
        res.rule = Some(choice.rule);
        crate::write_json(&dir.results_file(&r.name), &res)?;
    }
    Ok(Some(choice))
}

/// Applies `rule` to a run's raw test predictions (kept in their own folder) and scores them.
fn postprocessed_scores(
    ds: &Dataset,
    dir: &ExperimentDir,
    r: &RunPlan,
    tolerance: f64,
    rule: Rule,
) -> Result<Scores, ExperimentError> {
    let out = dir.postprocessed_predictions(&r.name);
    // Predictions of another rule must not be scored as this one's.
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| ExperimentError::write(&out, e))?;
    }
    crate::create_dir(&out)?;
    let scoring = Scoring {
        ds,
        metrics: MetricOptions {
            tolerance_mm: tolerance,
            ..Default::default()
        },
        labels: (1..r.config.data.classes as u8).collect(),
    };
    let modality = ds.modality(r.config.teacher.modalities().student)?;
    let mut all = Scores::default();
    for case in &modality.test {
        let Some(label) = &case.label else {
            continue;
        };
        let name = format!("{}.nii.gz", case.id);
        let mut mask = read_mask(
            &dir.predictions(&r.name).join(&name),
            &ReadOptions::default(),
        )?;
        rule.apply(&mut mask);
        let path = out.join(&name);
        write_mask(&path, &mask)?;
        let s = scoring.score_file(case, label, &path)?;
        all.cases.extend(s.cases);
        all.lesions.extend(s.lesions);
        all.case_lesions.extend(s.case_lesions);
    }
    Ok(all)
}

/// The best checkpoint of a run, on the run's device.
pub(crate) fn load_best(dir: &ExperimentDir, r: &RunPlan) -> Result<Predictor, ExperimentError> {
    let device = r
        .config
        .device
        .resolve()
        .map_err(cmedl_trainer::TrainError::from)?;
    Ok(Predictor::load(
        dir.run(&r.name).path(),
        &Which::Best,
        device,
    )?)
}

/// What scoring a run's test predictions needs.
struct Scoring<'a> {
    ds: &'a Dataset,
    metrics: MetricOptions,
    labels: Vec<u8>,
}

impl Scoring<'_> {
    /// The case, label and lesion rows of the prediction file of one test case.
    fn score_file(
        &self,
        case: &CaseEntry,
        label: &str,
        pred_path: &Path,
    ) -> Result<Scores, ExperimentError> {
        // Scored from the file, not from memory, so a fresh and a resumed run score the same
        // bytes: the ones a user gets.
        let pred = read_mask(pred_path, &ReadOptions::default())?;
        let reference = read_label_image(&self.ds.path(label), &ReadOptions::default())?;
        if !pred.geometry.same_grid(&reference.geometry, 1e-3) {
            return Err(ExperimentError::input(
                pred_path,
                "the prediction is not on its reference's grid",
            ));
        }
        let cases = crate::evaluate_masks(&pred, &reference, &case.id, &self.labels, &self.metrics)
            .map_err(|e| ExperimentError::input(pred_path, e))?;
        let positions = tumour_positions(self.ds, case);
        let (lesions, case_lesions) = score_lesions(
            &pred,
            &reference,
            &case.id,
            &self.labels,
            &positions,
            &LesionOptions::default(),
        )?;
        Ok(Scores {
            cases,
            lesions,
            case_lesions,
        })
    }
}

/// How close the run's translation of a test case is to the same patient's real image in the
/// teacher modality (none without a counterpart image).
fn fidelity(
    ds: &Dataset,
    case: &CaseEntry,
    label: &str,
    translated: &cmedl_io::Volume,
) -> Result<Option<FidelityRow>, ExperimentError> {
    let Some(counterpart) = &case.counterpart else {
        return Ok(None);
    };
    let reference = read_label_image(&ds.path(label), &ReadOptions::default())?;
    let path = ds.path(counterpart);
    let real = read_image(&path, &ReadOptions::default())?;
    let tumour: Vec<bool> = reference.data.iter().map(|&l| l > 0).collect();
    let s = similarity(
        &translated.data,
        &real.data,
        Some(&tumour),
        reference.geometry.shape,
        &SimilarityOptions::default(),
    )
    .map_err(|e| ExperimentError::input(&path, e))?;
    Ok(Some(FidelityRow {
        case: case.id.clone(),
        similarity: s,
    }))
}

/// The contrast of every measurable tumour of a phantom test case on its CT, on the run's
/// translation of that CT (pMRI) and on the same patient's real MRI, measured alike: the
/// phantom's own measure (`cmedl phantom --stats`), on the same core and ring voxels in all
/// three images. The case is generated again from the recipe (its anatomy is not in the files;
/// `plans`: the cohort's [`cmedl_phantom::plan`]).
fn tumour_contrast(
    cohort: &cmedl_phantom::CohortConfig,
    plans: &[cmedl_phantom::Plan],
    id: &str,
    translated: &cmedl_io::Volume,
) -> Result<Vec<crate::evaluate::ContrastRow>, ExperimentError> {
    let Some(plan) = plans.iter().find(|p| p.id == id) else {
        return Ok(Vec::new());
    };
    let case = cmedl_phantom::generate_case(cohort, &plan.id, plan.seed, &plan.contrasts);
    if case.tumour.geometry.shape != translated.geometry.shape {
        return Err(ExperimentError::input(
            Path::new(id),
            "the phantom case generated again is not on its translation's grid",
        ));
    }
    let image = |ct: bool| {
        case.images
            .iter()
            .find(|(c, _)| (*c == cmedl_phantom::Contrast::Ct) == ct)
            .map(|(_, v)| v)
    };
    Ok(cmedl_phantom::stats::tumour_regions(&case)
        .iter()
        .map(|region| crate::evaluate::ContrastRow {
            case: id.to_owned(),
            location: region.kind.name().to_owned(),
            ct: image(true).map_or(f64::NAN, |v| region.cnr(&v.data)),
            pmri: region.cnr(&translated.data),
            mri: image(false).map(|v| region.cnr(&v.data)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumour_contrast_is_measured_alike_on_ct_translation_and_mri() {
        let cohort = cmedl_phantom::CohortConfig {
            ct: 0,
            mr: 0,
            val: 0,
            test: 3,
            seed: 3,
            size: 64,
            slices: 16,
            spacing: [5.0, 5.0, 10.0],
            ..Default::default()
        };
        let plans = cmedl_phantom::plan(&cohort);
        let mut rows = Vec::new();
        for p in plans.iter().filter(|p| p.id.starts_with("ct_test")) {
            let case = cmedl_phantom::generate_case(&cohort, &p.id, p.seed, &p.contrasts);
            let (ct, mri) = (&case.images[0].1, &case.images[1].1);
            // A "translation" that is the CT itself, then one that is the real MRI: the
            // translation's contrast must equal theirs, tumour by tumour (the same voxels).
            let as_ct = tumour_contrast(&cohort, &plans, &p.id, ct).unwrap();
            let as_mri = tumour_contrast(&cohort, &plans, &p.id, mri).unwrap();
            assert_eq!(as_ct.len(), as_mri.len());
            for (a, b) in as_ct.iter().zip(&as_mri) {
                assert_eq!(a.pmri, a.ct);
                assert_eq!(Some(b.pmri), b.mri);
                assert_eq!((a.ct, a.mri), (b.ct, b.mri));
            }
            rows.extend(as_ct);
        }
        assert!(!rows.is_empty(), "the cohort has measurable tumours");
        // The same numbers as the phantom's own statistics.
        let stats: Vec<f64> = plans
            .iter()
            .filter(|p| p.id.starts_with("ct_test"))
            .flat_map(|p| {
                let case = cmedl_phantom::generate_case(&cohort, &p.id, p.seed, &p.contrasts);
                cmedl_phantom::stats::tumour_cnr(&case)
                    .into_iter()
                    .filter(|c| c.contrast == cmedl_phantom::Contrast::Ct)
                    .map(|c| c.cnr)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(rows.iter().map(|r| r.ct).collect::<Vec<_>>(), stats);
        // A case the recipe does not have gives nothing.
        assert!(
            tumour_contrast(&cohort, &plans, "ct_test_999", &rows_volume(&cohort))
                .unwrap()
                .is_empty()
        );
    }

    fn rows_volume(cohort: &cmedl_phantom::CohortConfig) -> cmedl_io::Volume {
        let p = &cmedl_phantom::plan(cohort)[0];
        cmedl_phantom::generate_case(cohort, &p.id, p.seed, &p.contrasts).images[0]
            .1
            .clone()
    }
}
