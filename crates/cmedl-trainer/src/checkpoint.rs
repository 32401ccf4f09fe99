//! Checkpoints: one safetensors file holding every network, the optimiser state, the image
//! pools and a JSON record (as a byte tensor), written atomically. Nothing but tensors and JSON
//! is ever read back: no pickle, no TorchScript.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cmedl_losses::ImagePool;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::TrainConfig;
use crate::networks::Networks;
use crate::step::TrainState;
use crate::TrainError;

/// Format tag of the JSON record.
pub const CHECKPOINT_FORMAT: &str = "cmedl-checkpoint/1";
const META: &str = "__meta_json__";

/// The JSON record inside a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Global steps done.
    pub step: usize,
    /// Epochs fully done.
    pub epochs_done: usize,
    /// Best validation Dice so far (NaN when none).
    pub best_dice: Option<f64>,
    /// Validation Dice of the last finished epoch.
    pub last_dice: Option<f64>,
    /// The run's resolved configuration.
    pub config: TrainConfig,
    /// cmedl version that wrote it.
    pub cmedl_version: String,
    /// RNG of the teacher-modality image pool.
    pub pool_t_rng: ChaCha8Rng,
    /// RNG of the student-modality image pool.
    pub pool_s_rng: ChaCha8Rng,
    /// Mean intensity window of the teacher modality's training images.
    #[serde(default)]
    pub teacher_window: Option<cmedl_io::Window>,
    /// The teacher's validation Dice on translations after the last epoch (the distillation
    /// gate opens when it exceeds the student's).
    #[serde(default)]
    pub last_teacher_dice: Option<f64>,
}

/// Which checkpoint of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// Highest validation Dice.
    Best,
    /// End of training.
    Final,
    /// Most recent.
    Latest,
    /// A file.
    File(PathBuf),
}

impl std::str::FromStr for Which {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "best" => Self::Best,
            "final" => Self::Final,
            "latest" => Self::Latest,
            other => Self::File(PathBuf::from(other)),
        })
    }
}

/// Writes a checkpoint atomically (temporary file, fsync, rename).
pub fn save(
    path: &Path,
    nets: &Networks,
    state: &TrainState,
    meta: &CheckpointMeta,
) -> Result<(), TrainError> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (name, vs) in nets.stores() {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        named.extend(vars.into_iter().map(|(k, t)| (format!("{name}.{k}"), t)));
    }
    named.extend(state.g_opt.state("optim.g"));
    named.extend(state.s_opt.state("optim.s"));
    if let Some(d) = &state.d_opt {
        named.extend(d.state("optim.d"));
    }
    for (tag, pool) in [("t", &state.pool_t), ("s", &state.pool_s)] {
        for (i, img) in pool.images().iter().enumerate() {
            named.push((format!("pool.{tag}.{i:03}"), img.shallow_clone()));
        }
    }
    let json = serde_json::to_vec(meta).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    named.push((META.to_owned(), Tensor::from_slice(&json)));
    let named: Vec<(String, Tensor)> = named
        .into_iter()
        .map(|(k, t)| (k, t.to_device(Device::Cpu).contiguous()))
        .collect();
    // A state that overflowed is never written over the last finite one.
    if let Some((name, _)) = named
        .iter()
        .find(|(_, t)| t.is_floating_point() && t.isfinite().all().int64_value(&[]) == 0)
    {
        return Err(TrainError::NonFinite(format!(
            "'{name}' is not finite after step {}; {} was not written and keeps the last \
             finite state",
            meta.step,
            path.display()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
    // Named by process, so that two processes never write the same temporary file.
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    // A failed write (disk full, permissions) is a failure here, not bad input.
    Tensor::write_safetensors(&named, &tmp)
        .map_err(|e| TrainError::file(&tmp, std::io::Error::other(e.to_string())))?;
    let f = std::fs::File::open(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    f.sync_all().map_err(|e| TrainError::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::file(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a checkpoint's tensors and JSON record, checking its format.
pub fn read(path: &Path) -> Result<(HashMap<String, Tensor>, CheckpointMeta), TrainError> {
    if !path.exists() {
        return Err(TrainError::Checkpoint(format!(
            "{}: no such checkpoint",
            path.display()
        )));
    }
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| {
            TrainError::Checkpoint(format!(
                "{}: not a readable safetensors checkpoint (truncated or corrupt?): {e}",
                path.display()
            ))
        })?
        .into_iter()
        .collect();
    let meta = tensors.get(META).ok_or_else(|| {
        TrainError::Checkpoint(format!(
            "{}: no '{META}' record; not a cmedl checkpoint",
            path.display()
        ))
    })?;
    let bytes = Vec::<u8>::try_from(meta.to_kind(Kind::Uint8))
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| {
        TrainError::Checkpoint(format!(
            "{}: invalid checkpoint record: {e}",
            path.display()
        ))
    })?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(TrainError::Checkpoint(format!(
            "{}: format '{}', expected '{CHECKPOINT_FORMAT}'",
            path.display(),
            meta.format
        )));
    }
    // A stored config is input like any other: a tampered or damaged one must not reach the
    // networks unchecked.
    meta.config.validate().map_err(|e| {
        TrainError::Checkpoint(format!(
            "{}: its stored config is invalid: {e}",
            path.display()
        ))
    })?;
    Ok((tensors, meta))
}

/// Copies a checkpoint's weights into the networks; every variable must be there with its shape.
pub fn load_weights(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    nets: &Networks,
) -> Result<(), TrainError> {
    tch::no_grad(|| {
        for (name, vs) in nets.stores() {
            for (var, mut t) in vs.variables() {
                let key = format!("{name}.{var}");
                let src = tensors.get(&key).ok_or_else(|| {
                    TrainError::Checkpoint(format!("{}: tensor '{key}' is missing", path.display()))
                })?;
                if src.size() != t.size() {
                    return Err(TrainError::Checkpoint(format!(
                        "{}: tensor '{key}' has shape {:?}, the network expects {:?}",
                        path.display(),
                        src.size(),
                        t.size()
                    )));
                }
                t.copy_(&src.to_device(t.device()));
            }
        }
        Ok(())
    })
}

/// Restores optimisers and pools from a checkpoint.
pub fn load_state(
    tensors: &HashMap<String, Tensor>,
    meta: &CheckpointMeta,
    state: &mut TrainState,
    device: Device,
) -> Result<(), TrainError> {
    state.g_opt.load_state(tensors, "optim.g")?;
    state.s_opt.load_state(tensors, "optim.s")?;
    if let Some(d) = state.d_opt.as_mut() {
        d.load_state(tensors, "optim.d")?;
    }
    let pool = |tag: &str| -> Vec<Tensor> {
        let mut keys: Vec<&String> = tensors
            .keys()
            .filter(|k| k.starts_with(&format!("pool.{tag}.")))
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|k| tensors[k].to_device(device))
            .collect()
    };
    let cap = meta.config.loss.pool_size;
    state.pool_t = ImagePool::restore(cap, pool("t"), meta.pool_t_rng.clone());
    state.pool_s = ImagePool::restore(cap, pool("s"), meta.pool_s_rng.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny() -> (TrainConfig, Networks, TrainState) {
        let mut config = TrainConfig {
            mode: crate::Mode::CtOnly,
            ..crate::testing::tiny_config()
        };
        config.data.root = "data".into();
        let nets = crate::testing::build(&config);
        let state = TrainState::new(&nets, &config);
        (config, nets, state)
    }

    fn meta(config: &TrainConfig) -> CheckpointMeta {
        CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            step: 7,
            epochs_done: 0,
            best_dice: None,
            last_dice: None,
            config: config.clone(),
            cmedl_version: "test".into(),
            pool_t_rng: ChaCha8Rng::seed_from_u64(1),
            pool_s_rng: ChaCha8Rng::seed_from_u64(2),
            teacher_window: None,
            last_teacher_dice: None,
        }
    }

    #[test]
    fn a_state_that_overflowed_is_not_written_over_the_last_finite_one() {
        let (config, nets, state) = tiny();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latest.safetensors");
        save(&path, &nets, &state, &meta(&config)).unwrap();
        let written = std::fs::read(&path).unwrap();
        let (tensors, back) = read(&path).unwrap();
        assert_eq!(back.step, 7);
        assert!(tensors.keys().any(|k| k.starts_with("student.")));

        let (name, weight) = crate::testing::store(&nets, "student")
            .variables()
            .into_iter()
            .min_by(|a, b| a.0.cmp(&b.0))
            .unwrap();
        tch::no_grad(|| {
            let _ = weight.shallow_clone().get(0).fill_(f64::INFINITY);
        });
        let err = save(&path, &nets, &state, &meta(&config)).unwrap_err();
        assert!(matches!(err, TrainError::NonFinite(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains(&format!("student.{name}")) && message.contains("step 7"));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            written,
            "the last finite state stays"
        );
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
