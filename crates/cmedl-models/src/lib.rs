//! The networks of CMEDL on tch: two image-to-image translators' parts (CycleGAN's ResNet
//! generator, the PatchGAN discriminator, CUT's projection head) and three segmenters (U-Net,
//! DeepLabV3+, PSPNet) behind one [`SegNet`] trait that returns logits plus named feature maps
//! for distillation.
//!
//! Each network is built from an [`nn::Path`] and a `…Config` with a `Default`, like tch's own
//! modules. Give each network its own [`nn::VarStore`] so that it can be saved, loaded and
//! frozen on its own.
//!
//! ```no_run
//! use cmedl_models::{SegNet, UNet, UNetConfig};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let unet = UNet::new(&vs.root(), UNetConfig { base: 8, depth: 3, ..Default::default() });
//! let x = Tensor::zeros([2, 1, 64, 64], (Kind::Float, Device::Cpu));
//! let out = unet.forward_t(&x, false)?;
//! assert_eq!(out.logits.size(), [2, 2, 64, 64]);
//! assert_eq!(out.features["dec3"].size(), [2, 8, 64, 64]);
//! # Ok::<(), cmedl_models::ModelError>(())
//! ```
//!
//! Parameter counts of the standard configurations (1-channel images, checked by tests):
//!
//! | network | configuration | parameters |
//! |---|---|---|
//! | ResNet generator | ngf 64, 9 blocks, instance norm | 11 365 633 |
//! | ResNet generator | ngf 64, 6 blocks, instance norm | 7 825 153 |
//! | PatchGAN | ndf 64, 3 layers, instance norm | 2 762 689 |
//! | U-Net | base 32, depth 4, transposed up-sampling, 2 classes | 7 763 042 |

mod deeplab;
mod describe;
mod discriminator;
mod generator;
mod layers;
mod projection;
mod pspnet;
mod resnet;
mod unet;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

pub use deeplab::{DeepLabV3Plus, DeepLabV3PlusConfig};
pub use describe::{describe, parameter_count, Description};
pub use discriminator::{PatchGan, PatchGanConfig};
pub use generator::{ResnetGenerator, ResnetGeneratorConfig};
pub use layers::{InitKind, NormKind};
pub use projection::ProjectionHead;
pub use pspnet::{PspNet, PspNetConfig};
pub use resnet::{ResnetEncoder, ResnetEncoderConfig};
pub use unet::{UNet, UNetConfig, UpMode};

/// Errors of the networks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// The input tensor cannot go through the network.
    #[error("{network}: input of shape {shape:?} is not valid: {reason}")]
    BadInput {
        /// The network.
        network: String,
        /// The input's shape.
        shape: Vec<i64>,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature name the network does not produce.
    #[error("{network} has no feature '{name}'; it has {available:?}")]
    UnknownFeature {
        /// The name asked for.
        name: String,
        /// The network.
        network: String,
        /// The names it has.
        available: Vec<String>,
    },
    /// An invalid configuration value.
    #[error("{0}")]
    Config(String),
}

/// Checks that `x` is `[N, channels, H, W]` with H and W multiples of `multiple` and ≥ `min`.
pub(crate) fn check_input(
    network: &str,
    x: &Tensor,
    channels: i64,
    multiple: i64,
    min: i64,
) -> Result<(), ModelError> {
    let shape = x.size();
    let bad = |reason: String| ModelError::BadInput {
        network: network.to_owned(),
        shape: shape.clone(),
        reason,
    };
    if shape.len() != 4 {
        return Err(bad(
            "expected 4 dimensions [batch, channels, height, width]".into(),
        ));
    }
    if shape[1] != channels {
        return Err(bad(format!(
            "expected {channels} channel(s), got {}",
            shape[1]
        )));
    }
    if shape[0] < 1 {
        return Err(bad("the batch is empty".into()));
    }
    for &side in &shape[2..] {
        if side < min {
            return Err(bad(format!("height and width must be at least {min}")));
        }
        if side % multiple != 0 {
            return Err(bad(format!(
                "height and width must be multiples of {multiple}"
            )));
        }
    }
    Ok(())
}

/// Logits and named feature maps of a segmentation network.
#[derive(Debug)]
pub struct SegOutput {
    /// Class logits `[N, classes, H, W]` at the input's size.
    pub logits: Tensor,
    /// Intermediate feature maps by name, for distillation.
    pub features: BTreeMap<String, Tensor>,
}

/// A segmentation network with named feature taps.
pub trait SegNet: std::fmt::Debug + Send {
    /// Runs the network on `[N, C, H, W]`; `train` selects batch-norm statistics and dropout.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<SegOutput, ModelError>;
    /// Names of the feature maps [`SegOutput::features`] holds.
    fn feature_names(&self) -> Vec<String>;
    /// Input channels.
    fn in_channels(&self) -> i64;
    /// Output classes.
    fn classes(&self) -> i64;
}

/// Which segmentation network to build, with its configuration.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SegmenterConfig {
    /// U-Net.
    Unet(UNetConfig),
    /// DeepLabV3+.
    Deeplabv3plus(DeepLabV3PlusConfig),
    /// PSPNet.
    Pspnet(PspNetConfig),
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self::Unet(UNetConfig::default())
    }
}

impl SegmenterConfig {
    /// The `kind` tag of the network as written in configs (`unet`, `deeplabv3plus`, `pspnet`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unet(_) => "unet",
            Self::Deeplabv3plus(_) => "deeplabv3plus",
            Self::Pspnet(_) => "pspnet",
        }
    }

    /// The feature maps distilled when a config lists none: the last two decoder-side maps
    /// (U-Net `dec{N-1}`, `decN`; DeepLabV3+ `aspp`, `decoder`; PSPNet `ppm`, `head`).
    pub fn default_distill_features(&self) -> Vec<String> {
        match self {
            Self::Unet(u) => {
                let d = u.depth.max(1);
                if d >= 2 {
                    vec![format!("dec{}", d - 1), format!("dec{d}")]
                } else {
                    vec![format!("dec{d}")]
                }
            }
            Self::Deeplabv3plus(_) => vec!["aspp".into(), "decoder".into()],
            Self::Pspnet(_) => vec!["ppm".into(), "head".into()],
        }
    }

    /// Builds the network under `p`.
    pub fn build(&self, p: &nn::Path<'_>) -> Result<Box<dyn SegNet>, ModelError> {
        Ok(match self {
            Self::Unet(c) => Box::new(UNet::new(p, c.clone())),
            Self::Deeplabv3plus(c) => Box::new(DeepLabV3Plus::new(p, c.clone())?),
            Self::Pspnet(c) => Box::new(PspNet::new(p, c.clone())?),
        })
    }

    /// The same network with another number of output classes.
    pub fn with_classes(&self, classes: i64) -> Self {
        let mut c = self.clone();
        match &mut c {
            Self::Unet(u) => u.classes = classes,
            Self::Deeplabv3plus(d) => d.classes = classes,
            Self::Pspnet(s) => s.classes = classes,
        }
        c
    }

    /// The same network with another number of input channels.
    pub fn with_in_channels(&self, in_channels: i64) -> Self {
        let mut c = self.clone();
        match &mut c {
            Self::Unet(u) => u.in_channels = in_channels,
            Self::Deeplabv3plus(d) => d.in_channels = in_channels,
            Self::Pspnet(s) => s.in_channels = in_channels,
        }
        c
    }
}

#[cfg(test)]
mod tests;
