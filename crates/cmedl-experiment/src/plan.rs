//! Expanding an experiment into runs.

use std::path::Path;

use cmedl_trainer::config::{I2iKind, Mode};
use cmedl_trainer::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::{ExperimentConfig, ExperimentError};

/// One run of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// Folder name, e.g. `cmedl-unet-cyclegan-s0`.
    pub name: String,
    /// Mode.
    pub mode: Mode,
    /// Segmenter kind (`unet`, `deeplabv3plus`, `pspnet`).
    pub segmenter: String,
    /// Translator kind (none for `ct-only`).
    pub i2i: Option<I2iKind>,
    /// Seed.
    pub seed: u64,
    /// The experiment's distillation variant this run trains, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The held-out fold, in a cross-validated experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<usize>,
    /// Resolved training config.
    pub config: TrainConfig,
}

impl RunPlan {
    /// The mode as reports show it: `cmedl`, or `cmedl+<variant>`.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}+{v}", self.mode.name()),
            None => self.mode.name().to_owned(),
        }
    }

    /// The `ct-only` run this run is compared with: same segmenter, seed and fold.
    pub fn baseline<'a>(&self, runs: &'a [RunPlan]) -> Option<&'a RunPlan> {
        runs.iter().find(|x| {
            x.mode == Mode::CtOnly
                && x.segmenter == self.segmenter
                && x.seed == self.seed
                && x.fold == self.fold
        })
    }
}

/// The name of a translator kind in run names and reports.
pub fn i2i_name(k: I2iKind) -> &'static str {
    match k {
        I2iKind::Cyclegan => "cyclegan",
        I2iKind::Cut => "cut",
    }
}

/// Expands the experiment into runs, seed by seed and segmenter by segmenter: every mode once,
/// modes with a translator once per translator. `base` is the experiment's base config and
/// `data_root` the dataset every run trains on.
pub fn plan(
    exp: &ExperimentConfig,
    base: &TrainConfig,
    data_root: &Path,
) -> Result<Vec<RunPlan>, ExperimentError> {
    // The defaults come from the base config with the overrides applied, so that an
    // override of the segmenter or translator is not silently replaced by the base's.
    let with_overrides = base.with_overrides(&exp.overrides)?;
    let segmenters = if exp.segmenters.is_empty() {
        vec![with_overrides.model.segmenter.clone()]
    } else {
        exp.segmenters.clone()
    };
    let i2is = if exp.i2i.is_empty() {
        vec![with_overrides.model.i2i]
    } else {
        exp.i2i.clone()
    };
    let mut runs: Vec<RunPlan> = Vec::new();
    let folds: Vec<Option<usize>> = match exp.folds {
        Some(k) => (0..k).map(Some).collect(),
        None => vec![None],
    };
    for (&seed, fold) in exp
        .seeds
        .iter()
        .flat_map(|s| folds.iter().map(move |f| (s, *f)))
    {
        // The modes, then those trained with their variants only.
        let modes: Vec<Mode> = exp
            .modes
            .iter()
            .chain(exp.variant_modes.iter().filter(|m| !exp.modes.contains(m)))
            .copied()
            .collect();
        for seg in &segmenters {
            for &mode in &modes {
                let kinds: Vec<Option<I2iKind>> = if mode.uses_translator() {
                    i2is.iter().map(|k| Some(*k)).collect()
                } else {
                    vec![None]
                };
                let mut variants: Vec<Option<(&String, &Vec<String>)>> = Vec::new();
                if exp.modes.contains(&mode) {
                    variants.push(None);
                }
                if exp.variant_modes.contains(&mode) {
                    variants.extend(exp.variants.iter().map(Some));
                }
                for (i2i, variant) in kinds
                    .iter()
                    .flat_map(|k| variants.iter().map(move |v| (*k, *v)))
                {
                    let mut config = match variant {
                        Some((_, overrides)) => with_overrides.with_overrides(overrides)?,
                        None => with_overrides.clone(),
                    };
                    // The plan sets these per run below: a variant that changes them would be
                    // trained as something other than its name says.
                    if let Some((v, _)) = variant.filter(|_| {
                        config.model.i2i != with_overrides.model.i2i
                            || config.model.segmenter != with_overrides.model.segmenter
                    }) {
                        return Err(ExperimentError::Input(format!(
                            "variant '{v}' changes the translator or the segmenter; list them in the experiment's 'i2i' or 'segmenters' instead"
                        )));
                    }
                    config.mode = mode;
                    config.seed = seed;
                    config.model.segmenter = seg.clone();
                    if let Some(k) = i2i {
                        config.model.i2i = k;
                    }
                    config.data.root = data_root.to_path_buf();
                    config.data.fold = fold.map(|index| cmedl_trainer::config::Fold {
                        count: exp.folds.unwrap_or(1),
                        index,
                    });
                    let mut mode_name = mode.name().replace('+', "-");
                    if let Some((v, _)) = variant {
                        mode_name = format!("{mode_name}+{v}");
                    }
                    let mut name = match i2i {
                        Some(k) => format!("{mode_name}-{}-{}-s{seed}", seg.kind(), i2i_name(k)),
                        None => format!("{mode_name}-{}-s{seed}", seg.kind()),
                    };
                    if let Some(f) = fold {
                        name = format!("{name}-f{f}");
                    }
                    runs.push(RunPlan {
                        name,
                        mode,
                        segmenter: seg.kind().to_owned(),
                        i2i,
                        seed,
                        variant: variant.map(|(v, _)| v.clone()),
                        fold,
                        config,
                    });
                }
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BaseConfig, ExperimentData};
    use cmedl_models::{PspNetConfig, SegmenterConfig};

    fn experiment(modes: Vec<Mode>) -> ExperimentConfig {
        ExperimentConfig {
            name: "t".into(),
            data: ExperimentData {
                root: None,
                phantom: None,
            },
            base: BaseConfig::Path("base.json".into()),
            modes,
            segmenters: Vec::new(),
            i2i: Vec::new(),
            seeds: vec![0, 7],
            overrides: vec!["train.epochs=3".into()],
            variants: Default::default(),
            variant_modes: vec![Mode::Cmedl],
            tolerance_mm: 2.0,
            folds: None,
            postprocessing: Default::default(),
        }
    }

    #[test]
    fn a_variant_may_not_change_the_translator_or_segmenter() {
        let mut exp = experiment(vec![Mode::Cmedl]);
        for change in ["model.i2i=\"cut\"", "model.segmenter.depth=5"] {
            exp.variants = [("v".to_owned(), vec![change.to_owned()])].into();
            let err = plan(&exp, &TrainConfig::cpu_small(), Path::new("data"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("variant 'v' changes the translator"), "{err}");
        }
        exp.variants = [("v".to_owned(), vec!["loss.teacher=5.0".to_owned()])].into();
        assert_eq!(
            plan(&exp, &TrainConfig::cpu_small(), Path::new("data"))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn overrides_of_the_segmenter_and_translator_reach_the_runs() {
        let mut exp = experiment(vec![Mode::CtOnly, Mode::Cmedl]);
        exp.overrides = vec!["model.segmenter.depth=4".into(), "model.i2i=\"cut\"".into()];
        let runs = plan(&exp, &TrainConfig::cpu_small(), Path::new("data")).unwrap();
        for r in &runs {
            assert_eq!(
                serde_json::to_value(&r.config.model.segmenter).unwrap()["depth"],
                4,
                "{}",
                r.name
            );
        }
        let cmedl = runs.iter().find(|r| r.mode == Mode::Cmedl).unwrap();
        assert_eq!(cmedl.config.model.i2i, I2iKind::Cut);
    }

    #[test]
    fn folds_multiply_the_runs_and_pair_each_with_its_own_baseline() {
        let mut exp = experiment(vec![Mode::CtOnly, Mode::Cmedl]);
        exp.seeds = vec![0];
        exp.folds = Some(3);
        let runs = plan(&exp, &TrainConfig::default(), Path::new("data")).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ct-only-unet-s0-f0",
                "cmedl-unet-cyclegan-s0-f0",
                "ct-only-unet-s0-f1",
                "cmedl-unet-cyclegan-s0-f1",
                "ct-only-unet-s0-f2",
                "cmedl-unet-cyclegan-s0-f2",
            ]
        );
        for r in &runs {
            let fold = r.config.data.fold.unwrap();
            assert_eq!((fold.count, Some(fold.index)), (3, r.fold));
            assert_eq!(r.baseline(&runs).unwrap().fold, r.fold);
            r.config.validate().unwrap();
        }
    }

    #[test]
    fn every_combination_once_and_ct_only_once_per_segmenter_and_seed() {
        let mut exp = experiment(vec![Mode::CtOnly, Mode::Cmedl, Mode::CtPlusPmri]);
        exp.i2i = vec![I2iKind::Cyclegan, I2iKind::Cut];
        exp.segmenters = vec![
            SegmenterConfig::default(),
            SegmenterConfig::Pspnet(PspNetConfig::default()),
        ];
        let runs = plan(&exp, &TrainConfig::default(), Path::new("data")).unwrap();
        // 2 seeds × 2 segmenters × (1 ct-only + 2 translators × 2 modes)
        assert_eq!(runs.len(), 2 * 2 * 5);
        let names: Vec<&str> = runs.iter().take(5).map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ct-only-unet-s0",
                "cmedl-unet-cyclegan-s0",
                "cmedl-unet-cut-s0",
                "ct-pmri-unet-cyclegan-s0",
                "ct-pmri-unet-cut-s0",
            ]
        );
        assert_eq!(runs.last().unwrap().name, "ct-pmri-pspnet-cut-s7");
        let unique: std::collections::BTreeSet<&str> =
            runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(unique.len(), runs.len());
        for r in &runs {
            assert_eq!(r.config.mode, r.mode);
            assert_eq!(r.config.seed, r.seed);
            assert_eq!(r.config.train.epochs, 3, "overrides apply to every run");
            assert_eq!(r.config.data.root, Path::new("data"));
            assert_eq!(r.config.model.segmenter.kind(), r.segmenter);
            assert_eq!(r.i2i.is_some(), r.mode.uses_translator());
            if let Some(k) = r.i2i {
                assert_eq!(r.config.model.i2i, k);
            }
            let baseline = r.baseline(&runs).unwrap();
            assert_eq!(
                (baseline.mode, baseline.seed, &baseline.segmenter),
                (Mode::CtOnly, r.seed, &r.segmenter)
            );
        }
    }

    #[test]
    fn variants_add_cmedl_runs_with_their_overrides() {
        let mut exp = experiment(vec![Mode::CtOnly, Mode::Cmedl]);
        exp.seeds = vec![0];
        exp.variants = [(
            "adaptor".to_owned(),
            vec!["loss.distill.adaptor=true".to_owned()],
        )]
        .into();
        let runs = plan(&exp, &TrainConfig::default(), Path::new("d")).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ct-only-unet-s0",
                "cmedl-unet-cyclegan-s0",
                "cmedl+adaptor-unet-cyclegan-s0"
            ]
        );
        assert!(!runs[1].config.loss.distill.adaptor && runs[2].config.loss.distill.adaptor);
        assert_eq!(runs[2].label(), "cmedl+adaptor");
        assert_eq!(runs[2].baseline(&runs).unwrap().name, "ct-only-unet-s0");
    }

    #[test]
    fn a_mode_only_in_variant_modes_is_trained_with_its_variants_only() {
        let mut exp = experiment(vec![Mode::CtOnly, Mode::Cmedl]);
        exp.seeds = vec![0];
        exp.variant_modes = vec![Mode::Cmedl, Mode::PmriOnly];
        exp.variants = [("chosen".to_owned(), vec!["loss.teacher=5.0".to_owned()])].into();
        let runs = plan(&exp, &TrainConfig::default(), Path::new("d")).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ct-only-unet-s0",
                "cmedl-unet-cyclegan-s0",
                "cmedl+chosen-unet-cyclegan-s0",
                "pmri-only+chosen-unet-cyclegan-s0"
            ]
        );
        assert_eq!(runs[3].config.mode, Mode::PmriOnly);
        assert_eq!(runs[3].config.loss.teacher, 5.0);
        assert_eq!(runs[3].label(), "pmri-only+chosen");
        assert_eq!(runs[3].baseline(&runs).unwrap().name, "ct-only-unet-s0");
    }

    #[test]
    fn every_shipped_experiment_plans_runs_that_validate() {
        fn configs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    configs(&path, out);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.push(path);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/experiments");
        let mut files = Vec::new();
        configs(&root, &mut files);
        assert!(files.len() >= 10, "{files:?}");
        for file in files {
            let exp = ExperimentConfig::load(&file).unwrap();
            let base = exp.base_config(&file).unwrap();
            let runs = plan(&exp, &base, Path::new("data")).unwrap();
            assert!(!runs.is_empty(), "{}", file.display());
            for run in runs {
                run.config
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", file.display(), run.name));
            }
        }
    }

    #[test]
    fn defaults_come_from_the_base_config_and_bad_overrides_are_errors() {
        let exp = experiment(vec![Mode::Cmedl]);
        let mut base = TrainConfig::default();
        base.model.i2i = I2iKind::Cut;
        let runs = plan(&exp, &base, Path::new("d")).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["cmedl-unet-cut-s0", "cmedl-unet-cut-s7"]
        );
        assert!(runs[0].baseline(&runs).is_none());
        let mut bad = exp.clone();
        bad.overrides = vec!["train.nope=1".into()];
        let err = plan(&bad, &base, Path::new("d")).unwrap_err();
        assert!(err.to_string().contains("train.nope"), "{err}");
    }
}
