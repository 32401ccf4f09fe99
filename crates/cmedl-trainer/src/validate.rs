//! Validation and inference on prepared cases: the mode's test-time path, slice by slice.

use tch::{Device, Kind, Tensor};

use crate::data::PreparedCase;
use crate::networks::Networks;
use crate::TrainError;

/// Which network path segments a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegPath {
    /// The mode's test-time path (the student, or the teacher on translations in `pmri-only`).
    TestTime,
    /// The teacher on the translation of a student-modality image (pMRI).
    TeacherOnTranslation,
    /// The teacher on a real teacher-modality image.
    Teacher,
}

/// Class probabilities `[nz, C, H, W]` of a prepared volume by the mode's test-time path, in
/// batches of `batch` slices; `tta_flip` averages with the left-right flipped input.
pub fn probabilities(
    nets: &Networks,
    data: &[f32],
    shape: [usize; 3],
    batch: usize,
    device: Device,
    tta_flip: bool,
) -> Result<Tensor, TrainError> {
    probabilities_by(
        nets,
        SegPath::TestTime,
        data,
        shape,
        batch,
        device,
        tta_flip,
    )
}

/// Class probabilities `[nz, C, H, W]` of a prepared volume by `path`.
fn probabilities_by(
    nets: &Networks,
    path: SegPath,
    data: &[f32],
    shape: [usize; 3],
    batch: usize,
    device: Device,
    tta_flip: bool,
) -> Result<Tensor, TrainError> {
    let segment = |x: &Tensor| match path {
        SegPath::TestTime => nets.segment(x, false),
        SegPath::TeacherOnTranslation => nets.teacher_on_translation(x),
        SegPath::Teacher => nets.teacher_on(x),
    };
    let [nx, ny, nz] = shape;
    let n = nx * ny;
    let mut parts = Vec::new();
    tch::no_grad(|| -> Result<(), TrainError> {
        for start in (0..nz).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(nz);
            let x = Tensor::from_slice(&data[start * n..end * n])
                .view([(end - start) as i64, 1, ny as i64, nx as i64])
                .to_device(device);
            let mut p = segment(&x)?.logits.softmax(1, Kind::Float);
            if tta_flip {
                let flipped = segment(&x.flip([3]))?
                    .logits
                    .softmax(1, Kind::Float)
                    .flip([3]);
                p = (p + flipped) * 0.5;
            }
            parts.push(p.to_device(Device::Cpu));
        }
        Ok(())
    })?;
    Ok(Tensor::cat(&parts, 0))
}

/// Label map (argmax) of probabilities `[nz, C, H, W]`, flattened i fastest.
pub fn argmax_labels(probs: &Tensor) -> Vec<u8> {
    let labels = probs.argmax(1, false).to_kind(Kind::Uint8).flatten(0, -1);
    Vec::<u8>::try_from(labels).unwrap_or_default()
}

/// Mean Dice over foreground classes of one case (NaN when neither mask has foreground).
pub fn case_dice(pred: &[u8], truth: &[u8], classes: i64) -> f64 {
    let mut dices = Vec::new();
    for c in 1..classes as u8 {
        let p: Vec<bool> = pred.iter().map(|&v| v == c).collect();
        let t: Vec<bool> = truth.iter().map(|&v| v == c).collect();
        let d = cmedl_metrics::dice(&p, &t);
        if d.is_finite() {
            dices.push(d);
        }
    }
    if dices.is_empty() {
        f64::NAN
    } else {
        dices.iter().sum::<f64>() / dices.len() as f64
    }
}

/// Mean validation Dice of the mode's test-time path over cases with foreground in truth or
/// prediction (NaN when there is none).
pub fn validate(
    nets: &Networks,
    cases: &[PreparedCase],
    classes: i64,
    batch: usize,
    device: Device,
) -> Result<f64, TrainError> {
    validate_by(nets, SegPath::TestTime, cases, classes, batch, device)
}

/// Mean validation Dice of `path` over cases with foreground in truth or prediction.
pub fn validate_by(
    nets: &Networks,
    path: SegPath,
    cases: &[PreparedCase],
    classes: i64,
    batch: usize,
    device: Device,
) -> Result<f64, TrainError> {
    let mut dices = Vec::new();
    for c in cases {
        let Some(truth) = &c.labels else { continue };
        let shape = c.image.geometry.shape;
        let probs = probabilities_by(nets, path, &c.image.data, shape, batch, device, false)?;
        let d = case_dice(&argmax_labels(&probs), truth, classes);
        if d.is_finite() {
            dices.push(d);
        }
    }
    Ok(if dices.is_empty() {
        f64::NAN
    } else {
        dices.iter().sum::<f64>() / dices.len() as f64
    })
}
