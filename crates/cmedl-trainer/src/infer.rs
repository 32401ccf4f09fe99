//! Applying a trained run to new volumes: segmentation with the input's geometry, translation.

use std::path::Path;

use cmedl_io::orientation::Reorientation;
use cmedl_io::{resample_volume_with, Interp, Mask, Volume};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, Which};
use crate::config::TrainConfig;
use crate::data::{Field, Normalization, Preprocessor};
use crate::networks::Networks;
use crate::validate::probabilities;
use crate::TrainError;

/// A trained run loaded for inference.
pub struct Predictor {
    /// The run's configuration.
    pub config: TrainConfig,
    /// Its networks, in evaluation mode.
    pub nets: Networks,
    /// The device.
    pub device: Device,
    /// Preprocessing of the student modality, exactly as in training.
    pub pre: Preprocessor,
    /// Intensity window of the teacher modality in training, for translations.
    pub teacher_window: Option<cmedl_io::Window>,
}

/// A segmentation on the input's grid.
pub struct Segmentation {
    /// Labels (argmax).
    pub labels: Mask,
    /// Per-class probabilities, when asked for.
    pub probabilities: Vec<Volume>,
}

impl Predictor {
    /// Loads checkpoint `which` of the run in `run_dir` onto `device`.
    pub fn load(run_dir: &Path, which: &Which, device: Device) -> Result<Self, TrainError> {
        let path = crate::RunDir::new(run_dir).checkpoint(which);
        let (tensors, meta) = checkpoint::read(&path)?;
        let mut config = meta.config.clone();
        config.device = crate::DeviceSpec::Cpu;
        let nets = Networks::build(&config, device)?;
        checkpoint::load_weights(&path, &tensors, &nets)?;
        Ok(Self::from_parts(config, nets, device, meta.teacher_window))
    }

    /// A predictor from networks already in memory (e.g. freshly built, for benchmarks).
    pub fn from_parts(
        config: TrainConfig,
        nets: Networks,
        device: Device,
        teacher_window: Option<cmedl_io::Window>,
    ) -> Self {
        let kind = config.teacher.student_kind();
        let pre = Preprocessor {
            size: config.data.size,
            spacing: config.data.spacing,
            normalization: Normalization::for_modality(kind, &config.data),
            field: Field::WholePlane,
        };
        Self {
            config,
            nets,
            device,
            pre,
            teacher_window,
        }
    }

    /// Segments a volume: preprocess as in training, run the mode's test-time path on every
    /// slice, map probabilities back onto the input grid, and take the argmax. The network sees
    /// the volume in the canonical voxel order (LPS, axial slices), whatever its storage order,
    /// and the result is put back into the input's own order.
    pub fn segment(
        &self,
        volume: &Volume,
        batch: usize,
        tta_flip: bool,
        keep_probabilities: bool,
    ) -> Result<Segmentation, TrainError> {
        let r = Reorientation::to_canonical(&volume.geometry);
        let seg = self.segment_canonical(&r.volume(volume), batch, tta_flip, keep_probabilities)?;
        Ok(Segmentation {
            labels: r.mask_back(&seg.labels),
            probabilities: seg.probabilities.iter().map(|p| r.volume_back(p)).collect(),
        })
    }

    /// [`Predictor::segment`] of a volume already in the canonical voxel order.
    fn segment_canonical(
        &self,
        volume: &Volume,
        batch: usize,
        tta_flip: bool,
        keep_probabilities: bool,
    ) -> Result<Segmentation, TrainError> {
        let prepared = self.pre.image(volume)?;
        let probs = probabilities(
            &self.nets,
            &prepared.data,
            prepared.geometry.shape,
            batch,
            self.device,
            tta_flip,
        )?;
        on_input_grid(
            &probs,
            &prepared.geometry,
            &volume.geometry,
            keep_probabilities,
        )
    }

    /// Names of the classes, background first: from the run's dataset (`labels`, or
    /// `organ_labels` for organ runs) where it is readable, else "tumour" for two classes and
    /// "label N" otherwise.
    pub fn class_names(&self) -> Vec<String> {
        class_names(&self.config)
    }

    /// DICOM codes of the tumour labels from the run's `dataset.json` (none for organ maps, or
    /// when the dataset gives none or cannot be read).
    pub fn label_codes(&self) -> std::collections::BTreeMap<u8, cmedl_io::dicom::LabelEntry> {
        if self.config.data.labels != crate::LabelSet::Label {
            return Default::default();
        }
        cmedl_io::dataset::Dataset::open(&self.config.data.root)
            .map(|ds| {
                ds.index
                    .label_codes
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Segments a volume with several runs (seeds or folds of one method): their class
    /// probabilities on the input grid are averaged, then the argmax is taken.
    pub fn segment_ensemble(
        members: &[Predictor],
        volume: &Volume,
        batch: usize,
        tta_flip: bool,
        keep_probabilities: bool,
    ) -> Result<Segmentation, TrainError> {
        let [one] = members else {
            let mut sum: Vec<Volume> = Vec::new();
            for (m, p) in members.iter().enumerate() {
                let seg = p.segment(volume, batch, tta_flip, true)?;
                if m > 0 && seg.probabilities.len() != sum.len() {
                    return Err(TrainError::Config(format!(
                        "ensemble members disagree on the classes ({} and {})",
                        sum.len(),
                        seg.probabilities.len()
                    )));
                }
                if sum.is_empty() {
                    sum = seg.probabilities;
                } else {
                    for (acc, p) in sum.iter_mut().zip(&seg.probabilities) {
                        for (a, v) in acc.data.iter_mut().zip(&p.data) {
                            *a += v;
                        }
                    }
                }
            }
            if sum.is_empty() {
                return Err(TrainError::Config(
                    "an ensemble needs at least one run".into(),
                ));
            }
            let scale = 1.0 / members.len() as f32;
            for p in &mut sum {
                p.data.iter_mut().for_each(|v| *v *= scale);
            }
            let labels = argmax(&sum, &volume.geometry)?;
            return Ok(Segmentation {
                labels,
                probabilities: if keep_probabilities { sum } else { Vec::new() },
            });
        };
        one.segment(volume, batch, tta_flip, keep_probabilities)
    }

    /// Translates a student-modality volume into the teacher modality (e.g. CT → pseudo-MRI),
    /// scaled back from [-1, 1] with the teacher modality's intensity range and on the input grid
    /// (computed in the canonical voxel order, like [`Predictor::segment`]).
    pub fn translate(
        &self,
        volume: &Volume,
        batch: usize,
        out_window: cmedl_io::Window,
    ) -> Result<Volume, TrainError> {
        let r = Reorientation::to_canonical(&volume.geometry);
        let translated = self.translate_canonical(&r.volume(volume), batch, out_window)?;
        Ok(r.volume_back(&translated))
    }

    /// [`Predictor::translate`] of a volume already in the canonical voxel order.
    fn translate_canonical(
        &self,
        volume: &Volume,
        batch: usize,
        out_window: cmedl_io::Window,
    ) -> Result<Volume, TrainError> {
        let g = self.nets.g_s2t.as_ref().ok_or_else(|| {
            TrainError::Config(format!(
                "mode {} has no translator",
                self.config.mode.name()
            ))
        })?;
        let prepared = self.pre.image(volume)?;
        let [nx, ny, nz] = prepared.geometry.shape;
        let n = nx * ny;
        let mut out = Vec::with_capacity(prepared.data.len());
        tch::no_grad(|| -> Result<(), TrainError> {
            for start in (0..nz).step_by(batch.max(1)) {
                let end = (start + batch.max(1)).min(nz);
                let x = Tensor::from_slice(&prepared.data[start * n..end * n])
                    .view([(end - start) as i64, 1, ny as i64, nx as i64])
                    .to_device(self.device);
                let y = g
                    .net
                    .forward_t(&x, false)?
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .flatten(0, -1);
                out.extend(
                    Vec::<f32>::try_from(y)
                        .map_err(TrainError::Torch)?
                        .into_iter()
                        .map(|v| out_window.invert(v)),
                );
            }
            Ok(())
        })?;
        let v = Volume::new(prepared.geometry, out)?;
        Ok(resample_volume_with(
            &v,
            &volume.geometry,
            Interp::Linear,
            Some(out_window.lo),
        )?)
    }
}

/// The label of the most probable class at every voxel of `geometry`.
fn argmax(per_class: &[Volume], geometry: &cmedl_io::Geometry) -> Result<Mask, TrainError> {
    let n = geometry.len();
    let mut labels = vec![0u8; n];
    for (i, l) in labels.iter_mut().enumerate() {
        let mut best = (0usize, f32::NEG_INFINITY);
        for (c, p) in per_class.iter().enumerate() {
            if p.data[i] > best.1 {
                best = (c, p.data[i]);
            }
        }
        *l = best.0 as u8;
    }
    Ok(Mask::new(geometry.clone(), labels)?)
}

/// Class probabilities `[nz, C, H, W]` on a prepared grid, mapped back onto `target` (the
/// input's grid), with their argmax.
pub(crate) fn on_input_grid(
    probs: &Tensor,
    prepared: &cmedl_io::Geometry,
    target: &cmedl_io::Geometry,
    keep_probabilities: bool,
) -> Result<Segmentation, TrainError> {
    let classes = probs.size()[1];
    // Each class's probability map goes back to the input grid. The prepared plane covers the
    // whole input plane; only slices beyond the input (none) would be background.
    let mut per_class = Vec::with_capacity(classes as usize);
    for c in 0..classes {
        let plane = probs
            .select(1, c)
            .contiguous()
            .to_kind(Kind::Float)
            .flatten(0, -1);
        let data = Vec::<f32>::try_from(plane).map_err(TrainError::Torch)?;
        let v = Volume::new(prepared.clone(), data)?;
        let outside = if c == 0 { 1.0 } else { 0.0 };
        per_class.push(resample_volume_with(
            &v,
            target,
            Interp::Linear,
            Some(outside),
        )?);
    }
    Ok(Segmentation {
        labels: argmax(&per_class, target)?,
        probabilities: if keep_probabilities {
            per_class
        } else {
            Vec::new()
        },
    })
}

/// The class names of a run's configuration (see [`Predictor::class_names`]).
pub fn class_names(config: &TrainConfig) -> Vec<String> {
    let classes = config.data.classes;
    let named = cmedl_io::dataset::Dataset::open(&config.data.root)
        .ok()
        .map(|ds| match config.data.labels {
            crate::LabelSet::Organs => ds.index.organ_labels,
            crate::LabelSet::Label => ds.index.labels,
        })
        .unwrap_or_default();
    (0..classes)
        .map(|c| {
            named
                .get(&c.to_string())
                .cloned()
                .unwrap_or_else(|| match c {
                    0 => "background".to_owned(),
                    1 if classes == 2 => "tumour".to_owned(),
                    c => format!("label {c}"),
                })
        })
        .collect()
}
