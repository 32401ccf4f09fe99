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
    let labels = predictor.class_names();
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

/// An exported model loaded for prediction: its TorchScript module and the sidecar that says
/// how to prepare its input.
pub struct ExportedModel {
    module: CModule,
    /// The sidecar read beside the module.
    pub sidecar: ExportSidecar,
    pre: crate::data::Preprocessor,
    device: tch::Device,
}

impl ExportedModel {
    /// Loads `path` (and `path.json`) onto `device`.
    pub fn load(path: &Path, device: tch::Device) -> Result<Self, TrainError> {
        let json_path = sidecar_path(path);
        let text =
            std::fs::read_to_string(&json_path).map_err(|e| TrainError::file(&json_path, e))?;
        let sidecar: ExportSidecar = serde_json::from_str(&text).map_err(|e| {
            TrainError::Checkpoint(format!(
                "{}: not a cmedl export sidecar: {e}",
                json_path.display()
            ))
        })?;
        let [_, channels, h, w] = sidecar.input_shape;
        if channels != 1 || h != w || h <= 0 || sidecar.classes < 2 {
            return Err(TrainError::Checkpoint(format!(
                "{}: input shape {:?} with {} classes is not one cmedl exports",
                json_path.display(),
                sidecar.input_shape,
                sidecar.classes
            )));
        }
        let module = CModule::load_on_device(path, device).map_err(|e| {
            TrainError::Checkpoint(format!("{}: not a TorchScript module: {e}", path.display()))
        })?;
        let normalization = match sidecar.normalization {
            NormalizationRecord::Window { lo, hi } => {
                Normalization::Window(cmedl_io::Window { lo, hi })
            }
            NormalizationRecord::Percentiles { lo, hi } => Normalization::Percentiles([lo, hi]),
        };
        let pre = crate::data::Preprocessor {
            size: h as usize,
            spacing: sidecar.spacing_mm,
            normalization,
            field: crate::data::Field::WholePlane,
        };
        Ok(Self {
            module,
            sidecar,
            pre,
            device,
        })
    }

    /// Segments a volume as [`Predictor::segment`](crate::infer::Predictor::segment) does, with the exported module: the plane
    /// is cut into tiles of the traced size (one tile when the plane is that size).
    pub fn segment(
        &self,
        volume: &cmedl_io::Volume,
        tta_flip: bool,
        keep_probabilities: bool,
    ) -> Result<crate::infer::Segmentation, TrainError> {
        let r = cmedl_io::orientation::Reorientation::to_canonical(&volume.geometry);
        let canonical = r.volume(volume);
        let prepared = self.pre.image(&canonical)?;
        let [nx, ny, nz] = prepared.geometry.shape;
        let x = Tensor::from_slice(&prepared.data).view([nz as i64, 1, ny as i64, nx as i64]);
        let mut probs = self.tiled(&x)?;
        if tta_flip {
            probs = (probs + self.tiled(&x.flip([3]))?.flip([3])) * 0.5;
        }
        let seg = crate::infer::on_input_grid(
            &probs,
            &prepared.geometry,
            &canonical.geometry,
            keep_probabilities,
        )?;
        Ok(crate::infer::Segmentation {
            labels: r.mask_back(&seg.labels),
            probabilities: seg.probabilities.iter().map(|p| r.volume_back(p)).collect(),
        })
    }

    /// Class probabilities `[nz, C, H, W]` of slices `x` (`[nz, 1, H, W]`), run tile by tile
    /// in batches of the traced batch size.
    fn tiled(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let [n, _, size, _] = self.sidecar.input_shape;
        let (nz, h, w) = (x.size()[0], x.size()[2], x.size()[3]);
        let (th, tw) = ((h + size - 1) / size, (w + size - 1) / size);
        // Padded with air (−1) to whole tiles.
        let canvas = Tensor::full(
            [nz, 1, th * size, tw * size],
            -1.0,
            (Kind::Float, tch::Device::Cpu),
        );
        canvas.narrow(2, 0, h).narrow(3, 0, w).copy_(x);
        let tiles: Vec<Tensor> = (0..th)
            .flat_map(|a| (0..tw).map(move |b| (a, b)))
            .map(|(a, b)| canvas.narrow(2, a * size, size).narrow(3, b * size, size))
            .collect();
        let all = Tensor::cat(&tiles, 0); // [tiles·nz, 1, size, size], tile-major
        let total = all.size()[0];
        let mut outputs = Vec::new();
        tch::no_grad(|| -> Result<(), TrainError> {
            for start in (0..total).step_by(n as usize) {
                let count = n.min(total - start);
                let mut batch = all.narrow(0, start, count);
                if count < n {
                    // The traced module takes exactly n slices.
                    let fill = Tensor::full(
                        [n - count, 1, size, size],
                        -1.0,
                        (Kind::Float, tch::Device::Cpu),
                    );
                    batch = Tensor::cat(&[batch, fill], 0);
                }
                let logits = self
                    .module
                    .forward_ts(&[batch.to_device(self.device)])?
                    .to_device(tch::Device::Cpu);
                outputs.push(logits.narrow(0, 0, count).softmax(1, Kind::Float));
            }
            Ok(())
        })?;
        let probs = Tensor::cat(&outputs, 0);
        let classes = probs.size()[1];
        let stitched = Tensor::zeros(
            [nz, classes, th * size, tw * size],
            (Kind::Float, tch::Device::Cpu),
        );
        for (t, (a, b)) in (0..th)
            .flat_map(|a| (0..tw).map(move |b| (a, b)))
            .enumerate()
        {
            let part = probs.narrow(0, t as i64 * nz, nz);
            stitched
                .narrow(2, a * size, size)
                .narrow(3, b * size, size)
                .copy_(&part);
        }
        Ok(stitched.narrow(2, 0, h).narrow(3, 0, w).contiguous())
    }
}
