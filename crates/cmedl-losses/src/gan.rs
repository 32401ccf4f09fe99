//! Adversarial losses (LSGAN, vanilla, hinge) and the image pool of CycleGAN.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::to_f32;

/// Which adversarial objective.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum GanMode {
    /// Least squares (Mao et al.), CycleGAN's default.
    #[default]
    Lsgan,
    /// Binary cross-entropy on logits (Goodfellow et al.).
    Vanilla,
    /// Hinge loss (Lim & Ye; Miyato et al.).
    Hinge,
}

impl GanMode {
    /// Generator side: pushes `D(fake)` towards "real".
    ///
    /// LSGAN: mean (D(G(x)) − 1)²; vanilla: BCE(D(G(x)), 1); hinge: −mean D(G(x)).
    pub fn generator_loss(self, fake_logits: &Tensor) -> Tensor {
        let f = to_f32(fake_logits);
        match self {
            Self::Lsgan => (f - 1.0).square().mean(None::<Kind>),
            Self::Vanilla => bce(&f, 1.0),
            Self::Hinge => -f.mean(None::<Kind>),
        }
    }

    /// Discriminator side, from its outputs on real and on (pooled, detached) fake images.
    ///
    /// LSGAN: ½[mean (D(real) − 1)² + mean D(fake)²]; vanilla: ½[BCE(real, 1) + BCE(fake, 0)];
    /// hinge: mean relu(1 − D(real)) + mean relu(1 + D(fake)).
    pub fn discriminator_loss(self, real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
        let (r, f) = (to_f32(real_logits), to_f32(fake_logits));
        match self {
            Self::Lsgan => {
                ((r - 1.0).square().mean(None::<Kind>) + f.square().mean(None::<Kind>)) * 0.5
            }
            Self::Vanilla => (bce(&r, 1.0) + bce(&f, 0.0)) * 0.5,
            Self::Hinge => {
                (-r + 1.0).relu().mean(None::<Kind>) + (f + 1.0).relu().mean(None::<Kind>)
            }
        }
    }
}

fn bce(logits: &Tensor, target: f64) -> Tensor {
    let t = logits.full_like(target);
    logits.binary_cross_entropy_with_logits::<Tensor>(&t, None, None, Reduction::Mean)
}

/// CycleGAN's history of generated images: the discriminator sees a mix of current and past
/// fakes, which stabilises training.
#[derive(Debug)]
pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor>,
    rng: ChaCha8Rng,
}

impl ImagePool {
    /// A pool of `capacity` images (50 in CycleGAN; 0 disables it) with a seeded RNG.
    pub fn new(capacity: usize, seed: u64) -> Self {
        Self {
            capacity,
            images: Vec::with_capacity(capacity),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Images stored.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Returns a batch of the same size: while the pool fills, the new images; then, for each
    /// image, with probability ½ a stored one (replaced by the new image), else the new image.
    pub fn query(&mut self, batch: &Tensor) -> Tensor {
        let batch = batch.detach();
        if self.capacity == 0 {
            return batch;
        }
        let n = batch.size()[0];
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let image = batch.narrow(0, i, 1).copy();
            if self.images.len() < self.capacity {
                self.images.push(image.shallow_clone());
                out.push(image);
            } else if self.rng.gen_bool(0.5) {
                let j = self.rng.gen_range(0..self.capacity);
                out.push(std::mem::replace(&mut self.images[j], image));
            } else {
                out.push(image);
            }
        }
        Tensor::cat(&out, 0)
    }

    /// A copy of the pool's state (images shared, never written in place: `query` swaps whole
    /// slots), to put back when a step is undone.
    pub fn snapshot(&self) -> Self {
        Self {
            capacity: self.capacity,
            images: self.images.iter().map(Tensor::shallow_clone).collect(),
            rng: self.rng.clone(),
        }
    }

    /// The stored images, oldest slot first, for checkpoints.
    pub fn images(&self) -> &[Tensor] {
        &self.images
    }

    /// The RNG state, for checkpoints.
    pub fn rng(&self) -> &ChaCha8Rng {
        &self.rng
    }

    /// Restores a pool from checkpointed images and RNG.
    pub fn restore(capacity: usize, images: Vec<Tensor>, rng: ChaCha8Rng) -> Self {
        Self {
            capacity,
            images,
            rng,
        }
    }
}
