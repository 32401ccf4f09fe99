//! Cycle-consistency and identity losses.

use tch::{Kind, Tensor};

use crate::to_f32;

/// Cycle-consistency: mean |F(G(x)) − x|.
pub fn cycle_loss(reconstructed: &Tensor, original: &Tensor) -> Tensor {
    l1(reconstructed, original)
}

/// Identity: mean |G(y) − y| for an image `y` already in G's target domain.
pub fn identity_loss(mapped: &Tensor, original: &Tensor) -> Tensor {
    l1(mapped, original)
}

pub(crate) fn l1(a: &Tensor, b: &Tensor) -> Tensor {
    (to_f32(a) - to_f32(b)).abs().mean(None::<Kind>)
}
