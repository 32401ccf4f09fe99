//! Export of a trained run's test-time network (the student, or the translator and teacher of
//! `pmri-only`) as a TorchScript module, with a JSON sidecar that says how to feed it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{CModule, Kind, Tensor};

use crate::data::Normalization;
use crate::infer::Predictor;
use crate::TrainError;

/// What a consumer of an exported model needs to prepare its input and read its output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportSidecar {
    /// The cmedl version that exported the model.
    pub cmedl_version: String,
    /// The run's mode (which networks the module holds).
    pub mode: String,
    /// The traced input shape `[N, 1, H, W]`: axial slices in LPS voxel order (rows along
    /// anterior→posterior, columns along right→left, as cmedl slices volumes).
    pub input_shape: [i64; 4],
    /// In-plane spacing in mm the slices must be resampled to.
    pub spacing_mm: f64,
    /// Intensity normalisation to [-1, 1]: a fixed window (CT, HU) or per-volume percentiles.
    pub normalization: NormalizationRecord,
    /// Output classes (`[N, classes, H, W]` logits; softmax over dimension 1).
    pub classes: i64,
    /// Class names, background first.
    pub labels: Vec<String>,
}

/// The intensity normalisation of an exported model's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NormalizationRecord {
    /// Clip to `[lo, hi]` and map linearly to [-1, 1].
    Window {
        /// Lower bound (→ −1).
        lo: f32,
        /// Upper bound (→ +1).
        hi: f32,
    },
    /// The window between these percentiles of each volume, mapped to [-1, 1].
    Percentiles {
        /// Lower percentile.
        lo: f64,
        /// Upper percentile.
        hi: f64,
    },
}

/// Traces the predictor's test-time path on a `[batch, 1, size, size]` input and writes the
/// TorchScript module to `out` and the sidecar to `out` + `.json`; returns the sidecar.
pub fn export_torchscript(
    predictor: &Predictor,
    out: &Path,
    batch: i64,
) -> Result<ExportSidecar, TrainError> {
    let size = predictor.config.data.size as i64;
    let example = Tensor::zeros([batch, 1, size, size], (Kind::Float, predictor.device));
    let nets = &predictor.nets;
    // The tracer records weights as constants, which it refuses while they require gradients.
    for (_, vs) in nets.stores() {
        for (_, t) in vs.variables() {
            let _ = t.set_requires_grad(false);
        }
    }
    let mut failure = None;
    let module =
        tch::no_grad(|| {
            CModule::create_by_tracing("cmedl_model", "forward", &[example], &mut |inputs| {
                match nets.segment(&inputs[0], false) {
                    Ok(out) => vec![out.logits],
                    Err(e) => {
                        failure = Some(e);
                        vec![inputs[0].shallow_clone()]
                    }
                }
            })
        })?;
    if let Some(e) = failure {
        return Err(e);
    }
    module
        .save(out)
        .map_err(|e| TrainError::file(out, std::io::Error::other(e.to_string())))?;
    let config = &predictor.config;
    let normalization = match predictor.pre.normalization {
        Normalization::Window(w) => NormalizationRecord::Window { lo: w.lo, hi: w.hi },
        Normalization::Percentiles([lo, hi]) => NormalizationRecord::Percentiles { lo, hi },
    };
    let classes = config.data.classes;
    let labels = (0..classes)
        .map(|c| match c {
            0 => "background".to_owned(),
            1 if classes == 2 => "tumour".to_owned(),
            c => format!("label {c}"),
        })
        .collect();
    let sidecar = ExportSidecar {
        cmedl_version: env!("CARGO_PKG_VERSION").into(),
        mode: config.mode.name().to_owned(),
        input_shape: [batch, 1, size, size],
        spacing_mm: config.data.spacing,
        normalization,
        classes,
        labels,
    };
    let json_path = sidecar_path(out);
    let text =
        serde_json::to_string_pretty(&sidecar).map_err(|e| TrainError::Config(e.to_string()))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| TrainError::file(&json_path, e))?;
    Ok(sidecar)
}

/// The sidecar of an exported module: `student.pt` → `student.pt.json`.
pub fn sidecar_path(module: &Path) -> std::path::PathBuf {
    let mut name = module.as_os_str().to_owned();
    name.push(".json");
    std::path::PathBuf::from(name)
}
