//! `cmedl experiment` and `cmedl report`: train modes on the same data and seeds, predict and
//! evaluate the test split, compare every mode with `ct-only`, and write the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cmedl_io::dataset::Dataset;
use cmedl_io::nifti::{read_mask, read_volume, write_mask, ReadOptions};
use cmedl_io::Window;
use cmedl_metrics::stats::summarize;
use cmedl_metrics::MetricOptions;
use cmedl_models::SegmenterConfig;
use cmedl_phantom::{write_cohort, CohortConfig};
use cmedl_trainer::checkpoint::Which;
use cmedl_trainer::config::{I2iKind, Mode};
use cmedl_trainer::infer::Predictor;
use cmedl_trainer::{train, RunOptions, TrainConfig, TrainError};
use serde::{Deserialize, Serialize};

use crate::evaluation::{compare, evaluate_pair, metric, CaseRow, Comparison};
use crate::failure::{CmdResult, Failure};
use crate::report::{self, Block, Panel};

/// Where an experiment's data come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentData {
    /// An existing dataset folder.
    #[serde(default)]
    pub root: Option<String>,
    /// A phantom recipe, generated into `DIR/data` on the first run.
    #[serde(default)]
    pub phantom: Option<CohortConfig>,
}

/// `EXP.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name shown in the report.
    pub name: String,
    /// The data.
    pub data: ExperimentData,
    /// Training config every run starts from: a path (relative to the experiment file) or inline.
    pub base: serde_json::Value,
    /// Modes to train.
    pub modes: Vec<Mode>,
    /// Segmenters (default: the base config's).
    #[serde(default)]
    pub segmenters: Vec<SegmenterConfig>,
    /// Translators (default: the base config's).
    #[serde(default)]
    pub i2i: Vec<I2iKind>,
    /// Seeds; every combination is trained once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `section.key=value` overrides applied to every run.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Surface Dice tolerance in mm.
    #[serde(default = "default_tolerance")]
    pub tolerance_mm: f64,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_tolerance() -> f64 {
    2.0
}

/// One run of the experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunPlan {
    /// Folder name.
    pub name: String,
    /// Mode.
    pub mode: Mode,
    /// Segmenter kind.
    pub segmenter: String,
    /// Translator kind (none for `ct-only`).
    pub i2i: Option<I2iKind>,
    /// Seed.
    pub seed: u64,
    /// Resolved training config.
    pub config: TrainConfig,
}

fn seg_kind(s: &SegmenterConfig) -> &'static str {
    match s {
        SegmenterConfig::Unet(_) => "unet",
        SegmenterConfig::Deeplabv3plus(_) => "deeplabv3plus",
        SegmenterConfig::Pspnet(_) => "pspnet",
    }
}

fn i2i_name(k: I2iKind) -> &'static str {
    match k {
        I2iKind::Cyclegan => "cyclegan",
        I2iKind::Cut => "cut",
    }
}

/// Expands the experiment into runs (ct-only once per segmenter and seed).
pub fn plan(
    exp: &ExperimentConfig,
    base: &TrainConfig,
    data_root: &Path,
) -> Result<Vec<RunPlan>, Failure> {
    let segmenters = if exp.segmenters.is_empty() {
        vec![base.model.segmenter.clone()]
    } else {
        exp.segmenters.clone()
    };
    let i2is = if exp.i2i.is_empty() {
        vec![base.model.i2i]
    } else {
        exp.i2i.clone()
    };
    let mut runs: Vec<RunPlan> = Vec::new();
    for &seed in &exp.seeds {
        for seg in &segmenters {
            for &mode in &exp.modes {
                let kinds: Vec<Option<I2iKind>> = if mode.uses_translator() {
                    i2is.iter().map(|k| Some(*k)).collect()
                } else {
                    vec![None]
                };
                for i2i in kinds {
                    let mut config = base.with_overrides(&exp.overrides)?;
                    config.mode = mode;
                    config.seed = seed;
                    config.model.segmenter = seg.clone();
                    if let Some(k) = i2i {
                        config.model.i2i = k;
                    }
                    config.data.root = data_root.display().to_string();
                    let name = match i2i {
                        Some(k) => format!(
                            "{}-{}-{}-s{seed}",
                            mode.name().replace('+', "-"),
                            seg_kind(seg),
                            i2i_name(k)
                        ),
                        None => format!(
                            "{}-{}-s{seed}",
                            mode.name().replace('+', "-"),
                            seg_kind(seg)
                        ),
                    };
                    runs.push(RunPlan {
                        name,
                        mode,
                        segmenter: seg_kind(seg).to_owned(),
                        i2i,
                        seed,
                        config,
                    });
                }
            }
        }
    }
    Ok(runs)
}

fn load_base(exp: &ExperimentConfig, exp_path: &Path) -> Result<TrainConfig, Failure> {
    match &exp.base {
        serde_json::Value::String(p) => {
            let path = exp_path.parent().unwrap_or(Path::new(".")).join(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
            Ok(TrainConfig::from_json(&text, &path.display().to_string())?)
        }
        v @ serde_json::Value::Object(_) => Ok(serde_json::from_value(v.clone())
            .map_err(|e| Failure::Input(format!("{}: base: {e}", exp_path.display())))?),
        _ => Err(Failure::Input(format!(
            "{}: 'base' must be a config path or an object",
            exp_path.display()
        ))),
    }
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.to_string()))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// Runs `cmedl experiment`.
pub fn run(config_path: &Path, out: &Path, quiet: bool) -> CmdResult {
    let start = Instant::now();
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| Failure::Input(format!("{}: {e}", config_path.display())))?;
    let exp: ExperimentConfig = serde_json::from_str(&text)
        .map_err(|e| Failure::Input(format!("{}: {e}", config_path.display())))?;
    if exp.modes.is_empty() {
        return Err(Failure::Input(format!(
            "{}: 'modes' is empty",
            config_path.display()
        )));
    }
    let base = load_base(&exp, config_path)?;
    std::fs::create_dir_all(out).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
    write_json(&out.join("experiment.json"), &exp)?;
    let data_root = match (&exp.data.root, &exp.data.phantom) {
        (Some(root), _) => PathBuf::from(root),
        (None, Some(recipe)) => {
            let root = out.join("data");
            if !root.join("dataset.json").exists() {
                if !quiet {
                    eprintln!("generating the phantom cohort in {}", root.display());
                }
                write_cohort(recipe, &root, &|_, _| {})?;
            }
            root
        }
        (None, None) => {
            return Err(Failure::Input(format!(
                "{}: data needs 'root' or 'phantom'",
                config_path.display()
            )))
        }
    };
    let runs = plan(&exp, &base, &data_root)?;
    write_json(&out.join("runs.json"), &runs)?;
    let ds = Dataset::open(&data_root)?;
    for r in &runs {
        let dir = out.join("runs").join(&r.name);
        if !dir.join("checkpoints/final.safetensors").exists() {
            let resume = dir.join("checkpoints/latest.safetensors").exists();
            if !resume && dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Failure::Input(format!("{}: {e}", dir.display())))?;
            }
            if !quiet {
                eprintln!(
                    "{} {}",
                    if resume { "resuming" } else { "training" },
                    r.name
                );
            }
            let options = RunOptions {
                resume,
                quiet,
                ..Default::default()
            };
            match train(&r.config, &dir, &options) {
                Ok(_) => {}
                Err(TrainError::Interrupted(m)) => return Err(Failure::Interrupted(m)),
                Err(e) => return Err(e.into()),
            }
        } else if !quiet {
            eprintln!("{}: finished earlier, skipped", r.name);
        }
        evaluate_run(&ds, r, out, exp.tolerance_mm)?;
    }
    make_figures(&ds, &runs, out)?;
    let wall = start.elapsed().as_secs_f64();
    let previous: f64 = std::fs::read_to_string(out.join("wall_time_s"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0.0);
    std::fs::write(out.join("wall_time_s"), format!("{}\n", previous + wall))
        .map_err(|e| Failure::Input(e.to_string()))?;
    let (md, _) = write_report(out)?;
    eprintln!("report: {}", md.display());
    Ok(())
}

fn student_modality(config: &TrainConfig) -> &'static str {
    config.teacher.modalities().0
}

/// Predicts the test split with the run's best checkpoint and writes `results/<run>.json`.
fn evaluate_run(ds: &Dataset, r: &RunPlan, out: &Path, tolerance: f64) -> Result<(), Failure> {
    let run_dir = out.join("runs").join(&r.name);
    let pred_dir = out.join("predictions").join(&r.name);
    std::fs::create_dir_all(&pred_dir)
        .map_err(|e| Failure::Input(format!("{}: {e}", pred_dir.display())))?;
    let modality = ds.modality(student_modality(&r.config))?;
    if modality.test.is_empty() {
        return Err(Failure::Input(format!(
            "{}: the '{}' modality has no test cases to evaluate",
            ds.root.display(),
            student_modality(&r.config)
        )));
    }
    let device = r
        .config
        .device
        .parse::<cmedl_trainer::DeviceSpec>()?
        .resolve()?;
    let predictor = Predictor::load(&run_dir, &Which::Best, device)?;
    let options = MetricOptions {
        tolerance_mm: tolerance,
        ..Default::default()
    };
    let labels: Vec<u8> = (1..r.config.data.classes as u8).collect();
    let mut rows: Vec<CaseRow> = Vec::new();
    for case in &modality.test {
        let Some(label) = &case.label else { continue };
        let pred_path = pred_dir.join(format!("{}.nii.gz", case.id));
        if !pred_path.exists() {
            let volume = read_volume(&ds.path(&case.image), &ReadOptions::default())?.volume;
            let seg = predictor.segment(&volume, 16, false, false)?;
            write_mask(&pred_path, &seg.labels)?;
        }
        rows.extend(evaluate_pair(
            &pred_path,
            &ds.path(label),
            &case.id,
            &labels,
            &options,
            false,
        )?);
    }
    let results = out.join("results");
    std::fs::create_dir_all(&results)
        .map_err(|e| Failure::Input(format!("{}: {e}", results.display())))?;
    write_json(&results.join(format!("{}.json", r.name)), &rows)
}

/// Training curves per run and a contour montage per run on the same test slice.
fn make_figures(ds: &Dataset, runs: &[RunPlan], out: &Path) -> Result<(), Failure> {
    let figs = out.join("figures");
    std::fs::create_dir_all(&figs)
        .map_err(|e| Failure::Input(format!("{}: {e}", figs.display())))?;
    let Some(first) = runs.first() else {
        return Ok(());
    };
    let modality = ds.modality(student_modality(&first.config))?;
    let Some(case) = modality.test.first() else {
        return Ok(());
    };
    let image = read_volume(&ds.path(&case.image), &ReadOptions::default())?.volume;
    let reference = match &case.label {
        Some(l) => read_mask(&ds.path(l), &ReadOptions::default())?,
        None => return Ok(()),
    };
    let [nx, ny, nz] = image.geometry.shape;
    let n = nx * ny;
    let k = (0..nz)
        .max_by_key(|&k| {
            reference.data[k * n..(k + 1) * n]
                .iter()
                .filter(|&&v| v > 0)
                .count()
        })
        .unwrap_or(nz / 2);
    let ct_window = if modality.kind == "ct" {
        Window {
            lo: -1000.0,
            hi: 400.0,
        }
    } else {
        Window::from_percentiles(&image.data, 0.5, 99.5)
    };
    for r in runs {
        let pred = read_mask(
            &out.join("predictions")
                .join(&r.name)
                .join(format!("{}.nii.gz", case.id)),
            &ReadOptions::default(),
        )?;
        let mut panels = vec![Panel {
            slice: &image.data[k * n..(k + 1) * n],
            window: ct_window,
            contours: vec![
                (&reference.data[k * n..(k + 1) * n], [0, 220, 0]),
                (&pred.data[k * n..(k + 1) * n], [255, 40, 40]),
            ],
        }];
        let translated;
        if r.mode.uses_translator() {
            let device = r
                .config
                .device
                .parse::<cmedl_trainer::DeviceSpec>()?
                .resolve()?;
            let predictor = Predictor::load(&out.join("runs").join(&r.name), &Which::Best, device)?;
            if let Some(w) = predictor.teacher_window {
                translated = predictor.translate(&image, 16, w)?;
                panels.push(Panel {
                    slice: &translated.data[k * n..(k + 1) * n],
                    window: Window::from_percentiles(&translated.data, 0.5, 99.5),
                    contours: vec![
                        (&reference.data[k * n..(k + 1) * n], [0, 220, 0]),
                        (&pred.data[k * n..(k + 1) * n], [255, 40, 40]),
                    ],
                });
            }
        }
        report::montage(
            &figs.join(format!("montage-{}.png", r.name)),
            &panels,
            nx,
            ny,
            3,
        )?;
        let (loss, dice) = epoch_curves(&out.join("runs").join(&r.name));
        report::training_curves(&figs.join(format!("curves-{}.png", r.name)), &loss, &dice)?;
    }
    write_json(
        &figs.join("montage.json"),
        &serde_json::json!({"case": case.id, "slice": k}),
    )
}

/// Mean total loss and validation Dice per epoch from a run's `metrics.jsonl`.
pub fn epoch_curves(run_dir: &Path) -> (Vec<f64>, Vec<f64>) {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
    let mut by_epoch: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["kind"] == "epoch" {
            let e = v["epoch"].as_u64().unwrap_or(0);
            by_epoch.insert(
                e,
                (
                    v["losses"]["total"].as_f64().unwrap_or(f64::NAN),
                    v["val_dice"].as_f64().unwrap_or(f64::NAN),
                ),
            );
        }
    }
    by_epoch.values().map(|&(l, d)| (l, d)).unzip()
}

fn fmt_summary(values: &[f64], digits: usize) -> (String, String) {
    let s = summarize(values);
    let mean = if s.n > 0 {
        format!(
            "{:.*} ± {:.*}",
            digits,
            s.mean,
            digits,
            if s.sd.is_finite() { s.sd } else { 0.0 }
        )
    } else {
        "–".into()
    };
    let median = if s.n > 0 {
        format!("{:.*}", digits, s.median)
    } else {
        "–".into()
    };
    (mean, median)
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

/// Writes `report.md` and `report.html` of an experiment folder from the files in it.
pub fn write_report(out: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let exp_text = std::fs::read_to_string(out.join("experiment.json"))
        .map_err(|e| Failure::Input(format!("{}: not an experiment folder: {e}", out.display())))?;
    let exp: ExperimentConfig = serde_json::from_str(&exp_text)
        .map_err(|e| Failure::Input(format!("{}: {e}", out.join("experiment.json").display())))?;
    let runs: Vec<RunPlan> = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs.json"))
            .map_err(|e| Failure::Input(format!("{}: {e}", out.join("runs.json").display())))?,
    )
    .map_err(|e| Failure::Input(format!("{}: {e}", out.join("runs.json").display())))?;
    let Some(first) = runs.first() else {
        return Err(Failure::Input(format!("{}: no runs", out.display())));
    };
    let ds = Dataset::open(Path::new(&first.config.data.root))?;
    let tol = exp.tolerance_mm;
    let results: BTreeMap<String, Vec<CaseRow>> = runs
        .iter()
        .filter_map(|r| {
            let text =
                std::fs::read_to_string(out.join("results").join(format!("{}.json", r.name)))
                    .ok()?;
            let rows: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
            let rows = rows.into_iter().filter_map(|v| row_from_json(&v)).collect();
            Some((r.name.clone(), rows))
        })
        .collect();
    let wall: f64 = std::fs::read_to_string(out.join("wall_time_s"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let mut b: Vec<Block> = Vec::new();
    b.push(Block::Heading(1, format!("cmedl experiment: {}", exp.name)));
    b.push(Block::Para(format!(
        "Data: {} ({}). Hardware: {} ({} threads), device '{}'. Wall time of the experiment: {:.0} s. Seeds: {:?}. cmedl {}.",
        ds.index.name,
        ds.root.display(),
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        first.config.device,
        wall,
        exp.seeds,
        env!("CARGO_PKG_VERSION")
    )));
    b.push(Block::Heading(2, "Data".into()));
    let mut rows = Vec::new();
    for (name, m) in &ds.index.modalities {
        rows.push(vec![
            name.clone(),
            m.kind.clone(),
            m.train.len().to_string(),
            m.val.len().to_string(),
            m.test.len().to_string(),
        ]);
    }
    b.push(Block::Table(
        vec![
            "modality".into(),
            "kind".into(),
            "train".into(),
            "val".into(),
            "test".into(),
        ],
        rows,
    ));
    b.push(Block::Heading(2, "Results on the test split".into()));
    b.push(Block::Para(format!(
        "Per-case 3-D metrics of label 1 on each test volume, at the input's grid: Dice (DSC), normalised surface Dice at τ = {tol} mm (sDSC), HD95 in mm (surface-element convention). Mean ± sd and median over cases; cases where a mask is empty count in 'inf' and are left out of the HD95 mean."
    )));
    let mut rows = Vec::new();
    for r in &runs {
        let Some(rs) = results.get(&r.name) else {
            continue;
        };
        let mine: Vec<&CaseRow> = rs.iter().filter(|c| c.label == 1).collect();
        let col = |m: &str| {
            mine.iter()
                .map(|c| metric(&c.metrics, m))
                .collect::<Vec<f64>>()
        };
        let (dm, dmed) = fmt_summary(&col("dice"), 3);
        let (sm, smed) = fmt_summary(&col("surface_dice"), 3);
        let hd = col("hd95");
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
        [
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    ));
    // Per location of the largest tumour, where the data set records it.
    let modality = student_modality(&first.config);
    let locations: BTreeMap<String, String> = results
        .values()
        .flatten()
        .filter_map(|c| case_location(&ds, modality, &c.case).map(|l| (c.case.clone(), l)))
        .collect();
    if !locations.is_empty() {
        b.push(Block::Heading(
            3,
            "DSC by location of the largest tumour".into(),
        ));
        let kinds: std::collections::BTreeSet<&String> = locations.values().collect();
        let mut rows = Vec::new();
        for r in &runs {
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
        let mut header = vec!["run".to_owned()];
        header.extend(kinds.iter().map(|k| (*k).clone()));
        b.push(Block::Table(header, rows));
    }
    b.push(Block::Heading(2, "Paired comparison with ct-only".into()));
    b.push(Block::Para("Differences are (mode − ct-only) on the same test cases, with a 95 % bootstrap interval (10 000 resamples); p is the two-sided Wilcoxon signed-rank test (exact up to 25 pairs); r is the matched-pairs rank-biserial correlation. 'significant' means p < 0.05 for that single test, without correction for multiple comparisons.".into()));
    let mut rows = Vec::new();
    for r in runs.iter().filter(|r| r.mode != Mode::CtOnly) {
        let Some(base_run) = runs
            .iter()
            .find(|x| x.mode == Mode::CtOnly && x.segmenter == r.segmenter && x.seed == r.seed)
        else {
            continue;
        };
        let (Some(a), Some(bb)) = (results.get(&r.name), results.get(&base_run.name)) else {
            continue;
        };
        for c in compare(a, bb, r.seed).iter().filter(|c| {
            c.label == 1 && ["dice", "surface_dice", "hd95"].contains(&c.metric.as_str())
        }) {
            rows.push(comparison_row(&r.name, c));
        }
    }
    if rows.is_empty() {
        b.push(Block::Para(
            "No comparison: the experiment has no ct-only run to compare with.".into(),
        ));
    } else {
        b.push(Block::Table(
            [
                "run",
                "metric",
                "n",
                "mean difference [95 % CI]",
                "Wilcoxon p",
                "r",
                "verdict",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows,
        ));
    }
    b.push(Block::Heading(2, "Training curves".into()));
    for r in &runs {
        let path = format!("figures/curves-{}.png", r.name);
        if out.join(&path).exists() {
            let (loss, dice) = epoch_curves(&out.join("runs").join(&r.name));
            let fin: Vec<f64> = loss.iter().copied().filter(|v| v.is_finite()).collect();
            let lo = fin.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = fin.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let best = dice
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            b.push(Block::Image(path, format!("{}: left, mean total training loss per epoch (blue, {} epochs, range {lo:.3}–{hi:.3}); right, validation Dice per epoch (green, axis 0–1, best {best:.3})", r.name, loss.len())));
        }
    }
    b.push(Block::Heading(2, "Test slices".into()));
    let montage: serde_json::Value = std::fs::read_to_string(out.join("figures/montage.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    for r in &runs {
        let path = format!("figures/montage-{}.png", r.name);
        if out.join(&path).exists() {
            let extra = if r.mode.uses_translator() {
                "; right: its translation into the teacher modality (pMRI) with the same contours"
            } else {
                ""
            };
            b.push(Block::Image(path, format!("{}: case {} slice {}; left: CT with the reference (green) and predicted (red) contours{extra}", r.name, montage["case"].as_str().unwrap_or("?"), montage["slice"])));
        }
    }
    b.push(Block::Heading(2, "Configuration".into()));
    b.push(Block::Code(exp_text.trim().to_owned()));
    if let Some(r) = runs.first() {
        b.push(Block::Para(format!("Resolved training config of {} (the other runs differ in mode, segmenter, translator and seed):", r.name)));
        b.push(Block::Code(
            serde_json::to_string_pretty(&r.config).unwrap_or_default(),
        ));
    }
    report::write(out, &format!("cmedl experiment: {}", exp.name), &b)
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
        c.metric.clone(),
        n,
        diff,
        p,
        r,
        verdict.to_owned(),
    ]
}

fn row_from_json(v: &serde_json::Value) -> Option<CaseRow> {
    let m = &v["metrics"];
    let f = |k: &str| {
        m[k].as_f64()
            .unwrap_or(if m[k].is_null() { f64::NAN } else { 0.0 })
    };
    let inf_if_null = |k: &str, both_empty: bool| {
        if m[k].is_null() && !both_empty {
            f64::INFINITY
        } else {
            f(k)
        }
    };
    let (rv, pv) = (
        m["ref_voxels"].as_u64()? as usize,
        m["pred_voxels"].as_u64()? as usize,
    );
    let both_empty = rv == 0 && pv == 0;
    Some(CaseRow {
        case: v["case"].as_str()?.to_owned(),
        label: v["label"].as_u64()? as u8,
        metrics: cmedl_metrics::CaseMetrics {
            dice: f("dice"),
            surface_dice: f("surface_dice"),
            hd95: inf_if_null("hd95", both_empty),
            hd: inf_if_null("hd", both_empty),
            asd_ref_to_pred: inf_if_null("asd_ref_to_pred", both_empty),
            asd_pred_to_ref: inf_if_null("asd_pred_to_ref", both_empty),
            ref_voxels: rv,
            pred_voxels: pv,
        },
    })
}

/// Writes `report.md`/`report.html` for a single run folder: curves, last metrics, config.
pub fn write_run_report(run: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let config_text = std::fs::read_to_string(run.join("config.json")).map_err(|e| {
        Failure::Input(format!(
            "{}: not a run or experiment folder: {e}",
            run.display()
        ))
    })?;
    let (loss, dice) = epoch_curves(run);
    let figs = run.join("figures");
    std::fs::create_dir_all(&figs)
        .map_err(|e| Failure::Input(format!("{}: {e}", figs.display())))?;
    let (lo, hi) = report::training_curves(&figs.join("curves.png"), &loss, &dice)?;
    let best = dice
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max);
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for (i, (l, d)) in loss.iter().zip(&dice).enumerate() {
        rows.push(vec![
            (i + 1).to_string(),
            format!("{l:.4}"),
            format!("{d:.4}"),
        ]);
    }
    let b = vec![
        Block::Heading(1, format!("cmedl run: {name}")),
        Block::Para(format!("{} epochs; best validation Dice {best:.4}. Hardware of this report: {}.", loss.len(), cpu_model())),
        Block::Image("figures/curves.png".into(), format!("left, mean total training loss per epoch (blue, range {lo:.3}–{hi:.3}); right, validation Dice per epoch (green, axis 0–1)")),
        Block::Table(vec!["epoch".into(), "mean total loss".into(), "validation Dice".into()], rows),
        Block::Heading(2, "Configuration".into()),
        Block::Code(config_text.trim().to_owned()),
    ];
    report::write(run, &format!("cmedl run: {name}"), &b)
}

/// Runs `cmedl report DIR`.
pub fn report_cmd(dir: &Path) -> CmdResult {
    let (md, html) = if dir.join("experiment.json").exists() {
        write_report(dir)?
    } else {
        write_run_report(dir)?
    };
    eprintln!("wrote {} and {}", md.display(), html.display());
    Ok(())
}
