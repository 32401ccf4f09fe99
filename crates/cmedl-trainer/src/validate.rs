//! Validation and inference on prepared cases: the mode's test-time path, slice by slice.

use tch::{Device, Kind, Tensor};

use crate::data::PreparedCase;
use crate::networks::Networks;
use crate::TrainError;

/// Class probabilities `[nz, C, H, W]` of a prepared volume, in batches of `batch` slices;
/// `tta_flip` averages with the left-right flipped input.
pub fn probabilities(
    nets: &Networks,
    data: &[f32],
    shape: [usize; 3],
    batch: usize,
    device: Device,
    tta_flip: bool,
) -> Result<Tensor, TrainError> {
    let [nx, ny, nz] = shape;
    let n = nx * ny;
    let mut parts = Vec::new();
    tch::no_grad(|| -> Result<(), TrainError> {
        for start in (0..nz).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(nz);
            let x = Tensor::from_slice(&data[start * n..end * n])
                .view([(end - start) as i64, 1, ny as i64, nx as i64])
                .to_device(device);
            let mut p = nets.segment(&x, false)?.logits.softmax(1, Kind::Float);
            if tta_flip {
                let flipped = nets
                    .segment(&x.flip([3]), false)?
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

/// Mean validation Dice over cases with foreground in truth or prediction.
pub fn validate(
    nets: &Networks,
    cases: &[PreparedCase],
    classes: i64,
    batch: usize,
    device: Device,
) -> Result<f64, TrainError> {
    let mut dices = Vec::new();
    for c in cases {
        let Some(truth) = &c.labels else { continue };
        let probs = probabilities(
            nets,
            &c.image.data,
            c.image.geometry.shape,
            batch,
            device,
            false,
        )?;
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
