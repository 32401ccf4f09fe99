//! Segmentation losses: cross-entropy, soft Dice over foreground classes, and their sum.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::{to_f32, LossError};

/// Settings of [`dice_ce`] and its parts.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegLossConfig {
    /// Weight of the cross-entropy term.
    pub ce_weight: f64,
    /// Weight of the soft Dice term.
    pub dice_weight: f64,
    /// Per-class weights of the cross-entropy (none: equal).
    pub class_weights: Option<Vec<f64>>,
    /// Label ignored by both terms.
    pub ignore_index: Option<i64>,
    /// Smoothing added to the numerator and denominator of Dice.
    pub smooth: f64,
    /// Dice over the whole batch (true) or per image, then averaged.
    pub batch_dice: bool,
}

impl Default for SegLossConfig {
    fn default() -> Self {
        Self {
            ce_weight: 1.0,
            dice_weight: 1.0,
            class_weights: None,
            ignore_index: None,
            smooth: 1e-5,
            batch_dice: true,
        }
    }
}

fn check(logits: &Tensor, target: &Tensor) -> Result<(), LossError> {
    let (l, t) = (logits.size(), target.size());
    if l.len() != 4 || t.len() != 3 || l[0] != t[0] || l[2..] != t[1..] {
        return Err(LossError::Shape(format!(
            "segmentation loss needs logits [N, C, H, W] and labels [N, H, W] of the same N, H, W; got {l:?} and {t:?}"
        )));
    }
    if l[1] < 2 {
        return Err(LossError::Shape(format!(
            "segmentation loss needs at least 2 classes (background included), got {}",
            l[1]
        )));
    }
    if target.kind() != Kind::Int64 {
        return Err(LossError::Shape(format!(
            "labels must be int64, got {:?}",
            target.kind()
        )));
    }
    Ok(())
}

/// Checks that every label is a class of `classes` or the ignore index (reads the tensor back).
pub fn check_labels(
    target: &Tensor,
    classes: i64,
    ignore_index: Option<i64>,
) -> Result<(), LossError> {
    let valid = match ignore_index {
        Some(i) => target.ne(i),
        None => target.ones_like().to_kind(Kind::Bool),
    };
    let bad = target
        .ge(classes)
        .logical_or(&target.lt(0))
        .logical_and(&valid);
    let count = bad.sum(Kind::Int64).int64_value(&[]);
    if count > 0 {
        let example = target.masked_select(&bad).int64_value(&[0]);
        return Err(LossError::Labels(format!(
            "{count} label(s) outside 0..{classes} (e.g. {example})"
        )));
    }
    Ok(())
}

/// Multi-class cross-entropy, mean over the non-ignored pixels.
pub fn cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    config: &SegLossConfig,
) -> Result<Tensor, LossError> {
    check(logits, target)?;
    let weight = match &config.class_weights {
        Some(w) if w.len() as i64 != logits.size()[1] => {
            return Err(LossError::Shape(format!(
                "{} class weights for {} classes",
                w.len(),
                logits.size()[1]
            )))
        }
        Some(w) => Some(
            Tensor::from_slice(w)
                .to_kind(logits_kind(logits))
                .to_device(logits.device()),
        ),
        None => None,
    };
    Ok(to_f32(logits).cross_entropy_loss(
        target,
        weight,
        Reduction::Mean,
        config.ignore_index.unwrap_or(-100),
        0.0,
    ))
}

/// Soft Dice loss 1 − mean over foreground classes of (2Σpg + s) / (Σp + Σg + s).
///
/// `p` are softmax probabilities, `g` one-hot labels; ignored pixels count in neither. With
/// s > 0 an image or batch without foreground gives a finite value (→ 0 when nothing is
/// predicted there).
pub fn soft_dice(
    logits: &Tensor,
    target: &Tensor,
    config: &SegLossConfig,
) -> Result<Tensor, LossError> {
    check(logits, target)?;
    let classes = logits.size()[1];
    let probs = to_f32(logits).softmax(1, None::<Kind>);
    let (labels, valid) = match config.ignore_index {
        Some(i) => {
            let valid = target.ne(i);
            (
                target.where_scalarother(&valid, 0),
                Some(valid.unsqueeze(1).to_kind(probs.kind())),
            )
        }
        None => (target.shallow_clone(), None),
    };
    let onehot = labels
        .clamp(0, classes - 1)
        .one_hot(classes)
        .permute([0, 3, 1, 2])
        .to_kind(probs.kind());
    // Out of place: softmax's backward needs its own output unchanged.
    let (onehot, probs) = match &valid {
        Some(v) => (onehot * v, probs * v),
        None => (onehot, probs),
    };
    let dims: &[i64] = if config.batch_dice {
        &[0, 2, 3]
    } else {
        &[2, 3]
    };
    let inter = (&probs * &onehot).sum_dim_intlist(dims, false, None::<Kind>);
    let p = probs.sum_dim_intlist(dims, false, None::<Kind>);
    let g = onehot.sum_dim_intlist(dims, false, None::<Kind>);
    let dice = (inter * 2.0 + config.smooth) / (p + g + config.smooth);
    let foreground = dice.narrow(-1, 1, classes - 1);
    Ok(1.0 - foreground.mean(None::<Kind>))
}

/// `ce_weight · CE + dice_weight · soft Dice`.
pub fn dice_ce(
    logits: &Tensor,
    target: &Tensor,
    config: &SegLossConfig,
) -> Result<Tensor, LossError> {
    let ce = cross_entropy(logits, target, config)?;
    let dice = soft_dice(logits, target, config)?;
    Ok(ce * config.ce_weight + dice * config.dice_weight)
}

/// The floating kind the losses compute in for these logits.
fn logits_kind(logits: &Tensor) -> Kind {
    to_f32(logits).kind()
}
