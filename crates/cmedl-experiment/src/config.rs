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
    /// Named sets of `section.key=value` overrides (e.g. a hint adaptor): every run of a mode
    /// in `variant_modes` is trained once more per variant, as `<mode>+<name>`.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<String, Vec<String>>,
    /// Modes trained once per variant (default `cmedl`); one listed here but not in `modes` is
    /// trained with the variants only (e.g. `pmri-only` of a chosen configuration).
    #[serde(default = "default_variant_modes")]
    pub variant_modes: Vec<Mode>,
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

fn default_variant_modes() -> Vec<Mode> {
    vec![Mode::Cmedl]
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
        // A mode listed only here trains its variants only: without variants, nothing (the
        // default list is left alone, so experiments without variants need not mention it).
        let trains_nothing = |m: &Mode| {
            exp.variants.is_empty()
                && exp.variant_modes != default_variant_modes()
                && !exp.modes.contains(m)
        };
        if let Some(m) = exp
            .variant_modes
            .iter()
            .find(|m| **m == Mode::CtOnly || trains_nothing(m))
        {
            return Err(ExperimentError::input(
                path,
                format!(
                    "'variant_modes' lists {}: only modes with a translator take variants, and a mode not in 'modes' needs a variant",
                    m.name()
                ),
            ));
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

    #[test]
    fn variant_modes_default_to_cmedl_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let load = |extra: &str| {
            let path = dir.path().join("e.json");
            let text = format!(
                r#"{{"name":"a","data":{{"root":"d"}},"base":"b.json","modes":["ct-only","cmedl"]{extra}}}"#
            );
            std::fs::write(&path, text).unwrap();
            ExperimentConfig::load(&path).map_err(|e| e.to_string())
        };
        assert_eq!(load("").unwrap().variant_modes, [Mode::Cmedl]);
        // The default needs no variants, nor cmedl among the modes.
        let path = dir.path().join("ct.json");
        std::fs::write(
            &path,
            r#"{"name":"a","data":{"root":"d"},"base":"b.json","modes":["ct-only"]}"#,
        )
        .unwrap();
        assert!(ExperimentConfig::load(&path).is_ok());
        let chosen = r#","variants":{"chosen":["loss.structure=true"]}"#;
        let exp = load(&format!(
            r#"{chosen},"variant_modes":["cmedl","pmri-only"]"#
        ))
        .unwrap();
        assert_eq!(exp.variant_modes, [Mode::Cmedl, Mode::PmriOnly]);
        let err = load(&format!(r#"{chosen},"variant_modes":["ct-only"]"#)).unwrap_err();
        assert!(err.contains("'variant_modes' lists ct-only"), "{err}");
        // Without variants a mode outside 'modes' would train nothing.
        let err = load(r#","variant_modes":["pmri-only"]"#).unwrap_err();
        assert!(err.contains("pmri-only"), "{err}");
    }
}
