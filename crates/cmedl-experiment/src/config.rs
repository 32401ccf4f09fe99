//! `EXP.json`: what an experiment trains and on which data.

use std::path::{Path, PathBuf};

use cmedl_models::SegmenterConfig;
use cmedl_phantom::CohortConfig;
use cmedl_trainer::config::{I2iKind, Mode};
use cmedl_trainer::TrainConfig;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ExperimentError;

/// Where an experiment's data come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentData {
    /// An existing dataset folder.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// A phantom recipe, generated into `DIR/data` on the first run.
    #[serde(default)]
    pub phantom: Option<CohortConfig>,
}

/// The training config every run starts from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BaseConfig {
    /// A config file, relative to the experiment file.
    Path(PathBuf),
    /// The config itself.
    Inline(Box<TrainConfig>),
}

impl<'de> Deserialize<'de> for BaseConfig {
    // By hand rather than derived `untagged`, so that a bad inline config reports its own
    // error (an unknown field, say) instead of "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(p) => Ok(Self::Path(p.into())),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(|c| Self::Inline(Box::new(c)))
                .map_err(|e| D::Error::custom(format!("base: {e}"))),
            _ => Err(D::Error::custom(
                "'base' must be a config path or an object",
            )),
        }
    }
}

/// An experiment: modes × segmenters × translators × seeds on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name shown in the report.
    pub name: String,
    /// The data.
    pub data: ExperimentData,
    /// Training config every run starts from: a path (relative to the experiment file) or inline.
    pub base: BaseConfig,
    /// Modes to train.
    pub modes: Vec<Mode>,
    /// Segmenters (default: the base config's).
    #[serde(default)]
    pub segmenters: Vec<SegmenterConfig>,
    /// Translators (default: the base config's).
    #[serde(default)]
    pub i2i: Vec<I2iKind>,
    /// Seeds; every combination is trained once per seed (default 0 and 1).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `section.key=value` overrides applied to every run.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Named sets of `section.key=value` overrides of the distillation (e.g. a hint adaptor):
    /// every `cmedl` run is trained once more per variant, as `cmedl+<name>`.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<String, Vec<String>>,
    /// Surface Dice tolerance in mm.
    #[serde(default = "default_tolerance")]
    pub tolerance_mm: f64,
    /// k-fold cross-validation: every run is trained k times, each holding out one fold of the
    /// training cases as its validation set (`-f0` … in run names); predict with the folds'
    /// ensemble by passing their run folders to `cmedl predict --run … --run …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
    /// Post-processing: one rule for every run, chosen on their validation cases.
    #[serde(default)]
    pub postprocessing: crate::postprocess::PostprocessingConfig,
}

/// Two seeds at least: one seed measures one initialisation as much as the method.
fn default_seeds() -> Vec<u64> {
    vec![0, 1]
}

fn default_tolerance() -> f64 {
    2.0
}

impl ExperimentConfig {
    /// Reads and checks an experiment file.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let exp: Self = crate::read_json(path)?;
        if exp.folds.is_some_and(|k| k < 2) {
            return Err(ExperimentError::input(path, "'folds' must be at least 2"));
        }
        if exp.modes.is_empty() {
            return Err(ExperimentError::input(path, "'modes' is empty"));
        }
        if let Some(bad) = exp.variants.keys().find(|k| {
            k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }) {
            return Err(ExperimentError::input(
                path,
                format!("variant name '{bad}': use lowercase letters, digits and '-'"),
            ));
        }
        exp.postprocessing
            .validate()
            .map_err(|e| ExperimentError::input(path, e))?;
        if !(exp.tolerance_mm.is_finite() && exp.tolerance_mm >= 0.0) {
            return Err(ExperimentError::input(
                path,
                format!(
                    "'tolerance_mm' must be non-negative, got {}",
                    exp.tolerance_mm
                ),
            ));
        }
        Ok(exp)
    }

    /// The base training config; a path is read relative to the experiment file `exp_path`.
    pub fn base_config(&self, exp_path: &Path) -> Result<TrainConfig, ExperimentError> {
        match &self.base {
            BaseConfig::Inline(c) => Ok((**c).clone()),
            BaseConfig::Path(p) => {
                let path = exp_path.parent().unwrap_or(Path::new(".")).join(p);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ExperimentError::input(exp_path, format!("base {}: {e}", path.display()))
                })?;
                Ok(TrainConfig::from_json(&text, &path.display().to_string())?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_a_path_or_an_inline_config() {
        let exp: ExperimentConfig = serde_json::from_str(
            r#"{"name":"a","data":{"root":"d"},"base":"../cpu-small.json","modes":["cmedl"]}"#,
        )
        .unwrap();
        assert_eq!(exp.base, BaseConfig::Path("../cpu-small.json".into()));
        assert_eq!(
            (exp.seeds.as_slice(), exp.tolerance_mm),
            ([0, 1].as_slice(), 2.0)
        );
        let exp: ExperimentConfig = serde_json::from_str(
            r#"{"name":"a","data":{"root":"d"},"base":{"seed":3},"modes":["ct-only"]}"#,
        )
        .unwrap();
        let BaseConfig::Inline(c) = &exp.base else {
            panic!("not inline")
        };
        assert_eq!(c.seed, 3);
        let err = serde_json::from_str::<ExperimentConfig>(
            r#"{"name":"a","data":{},"base":{"sede":3},"modes":["ct-only"]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sede"), "{err}");
        let err = serde_json::from_str::<ExperimentConfig>(
            r#"{"name":"a","data":{},"base":3,"modes":["ct-only"]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("config path or an object"),
            "{err}"
        );
    }
}
