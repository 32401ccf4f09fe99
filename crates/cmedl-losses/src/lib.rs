//! The losses of CMEDL and its ablations on tch: adversarial (LSGAN, vanilla, hinge) with
//! CycleGAN's image pool, cycle and identity L1, CUT's PatchNCE, cross-entropy + soft Dice, and
//! feature distillation (MSE hint, L1, cosine, attention transfer, logit KD).
//!
//! Every loss returns a differentiable scalar `f32` tensor on the inputs' device; `bf16` inputs
//! are computed in `f32`.
//!
//! ```no_run
//! use cmedl_losses::{dice_ce, GanMode, SegLossConfig};
//! use tch::{Device, Kind, Tensor};
//!
//! let logits = Tensor::randn([2, 2, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
//! let labels = Tensor::zeros([2, 8, 8], (Kind::Int64, Device::Cpu));
//! let seg = dice_ce(&logits, &labels, &SegLossConfig::default())?;
//! let adv = GanMode::Lsgan.generator_loss(&Tensor::zeros([2, 1, 6, 6], (Kind::Float, Device::Cpu)));
//! (seg + adv).backward();
//! # Ok::<(), cmedl_losses::LossError>(())
//! ```

mod distill;
mod gan;
mod patchnce;
mod reconstruction;
mod segmentation;

use tch::{Kind, Tensor};

pub use distill::{attention_map, distill, distill_pair, DistillKind, DistillSpec, FeatureNorm};
pub use gan::{GanMode, ImagePool};
pub use patchnce::{patch_nce, patch_nce_layer, sample_positions, PatchNceConfig};
pub use reconstruction::{cycle_loss, identity_loss};
pub use segmentation::{check_labels, cross_entropy, dice_ce, soft_dice, SegLossConfig};

/// Errors of the losses.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Tensors whose shapes do not fit the loss.
    #[error("{0}")]
    Shape(String),
    /// Labels outside the class range.
    #[error("{0}")]
    Labels(String),
    /// A feature one side of the distillation does not have.
    #[error("distillation feature '{name}' is missing from the {side}, which has {available:?}")]
    UnknownFeature {
        /// The name asked for.
        name: String,
        /// `student` or `teacher`.
        side: String,
        /// The names that side has.
        available: Vec<String>,
    },
    /// Student and teacher maps of different shapes.
    #[error("distillation feature '{name}' has shape {student:?} in the student but {teacher:?} in the teacher")]
    FeatureShape {
        /// The feature.
        name: String,
        /// Its shape in the student.
        student: Vec<i64>,
        /// Its shape in the teacher.
        teacher: Vec<i64>,
    },
    /// An error of a network used by a loss (the PatchNCE projection head).
    #[error(transparent)]
    Model(#[from] cmedl_models::ModelError),
}

/// Upcasts half-precision inputs; keeps f32 and f64 (f64 for gradient checks).
pub(crate) fn to_f32(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::BFloat16 | Kind::Half => t.to_kind(Kind::Float),
        _ => t.shallow_clone(),
    }
}

#[cfg(test)]
mod tests;
