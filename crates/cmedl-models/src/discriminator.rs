//! The PatchGAN discriminator of pix2pix/CycleGAN.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{conv, ConvNormAct, ConvSpec, InitKind, NormKind};
use crate::{check_input, ModelError};

/// Configuration of a [`PatchGan`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchGanConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Filters of the first layer.
    pub ndf: i64,
    /// Stride-2 layers; 3 gives a 70×70 receptive field.
    pub n_layers: usize,
    /// Normalisation from the second layer on.
    pub norm: NormKind,
    /// Weight initialisation.
    pub init: InitKind,
}

impl Default for PatchGanConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            ndf: 64,
            n_layers: 3,
            norm: NormKind::Instance,
            init: InitKind::Normal,
        }
    }
}

/// Patch discriminator: 4×4 convolutions, LeakyReLU 0.2, a 1-channel map of realness logits.
#[derive(Debug)]
pub struct PatchGan {
    config: PatchGanConfig,
    first: nn::Conv2D,
    body: Vec<ConvNormAct>,
    last: nn::Conv2D,
}

impl PatchGan {
    /// Creates the discriminator's variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: PatchGanConfig) -> Self {
        let (ndf, norm, init) = (config.ndf, config.norm, config.init);
        let k4 = ConvSpec::new(4).padding(1);
        let first = conv(p / "conv0", config.in_channels, ndf, k4.stride(2), init);
        let mut body = Vec::new();
        let mut c_prev = ndf;
        for n in 1..=config.n_layers {
            let c = ndf * (1i64 << n.min(3));
            let stride = if n < config.n_layers { 2 } else { 1 };
            body.push(ConvNormAct::new(
                p / format!("conv{n}"),
                c_prev,
                c,
                k4.stride(stride),
                norm,
                init,
                false,
            ));
            c_prev = c;
        }
        let last = conv(p / "out", c_prev, 1, k4, init);
        Self {
            config,
            first,
            body,
            last,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PatchGanConfig {
        &self.config
    }

    /// Side of the output map for a square input of side `size`, if positive.
    pub fn output_size(&self, size: i64) -> i64 {
        // Stride-2 4×4 convs with padding 1 map s to floor(s/2); stride-1 ones to s − 1.
        let mut s = size / 2;
        for n in 1..=self.config.n_layers {
            s = if n < self.config.n_layers {
                s / 2
            } else {
                s - 1
            };
        }
        s - 1
    }

    /// Realness logits `[N, 1, h, w]` of a batch `[N, C, H, W]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        let min = (1..64).find(|&s| self.output_size(s) >= 1).unwrap_or(64);
        check_input("PatchGan", x, self.config.in_channels, 1, min)?;
        let leaky = |t: Tensor| t.maximum(&(&t * 0.2));
        let mut h = leaky(x.apply(&self.first));
        for layer in &self.body {
            h = leaky(layer.forward_t(&h, train));
        }
        Ok(h.apply(&self.last))
    }
}
