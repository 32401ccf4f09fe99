//! PSPNet (Zhao et al., 2017): pyramid pooling on a dilated ResNet-style encoder.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{conv, resize, ConvNormAct, ConvSpec, InitKind, NormKind};
use crate::resnet::{ResnetEncoder, ResnetEncoderConfig};
use crate::{check_input, ModelError, SegNet, SegOutput};

/// Configuration of a [`PspNet`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PspNetConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Output classes, background included.
    pub classes: i64,
    /// The dilated encoder (output stride 8).
    pub encoder: ResnetEncoderConfig,
    /// Pyramid bin sizes.
    pub bins: Vec<i64>,
    /// Channels of the head's 3×3 conv.
    pub head_channels: i64,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Weight initialisation.
    pub init: InitKind,
}

impl Default for PspNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            classes: 2,
            encoder: ResnetEncoderConfig::default(),
            bins: vec![1, 2, 3, 6],
            head_channels: 512,
            dropout: 0.1,
            init: InitKind::Kaiming,
        }
    }
}

/// PSPNet. Features: `ppm` (encoder features concatenated with the pooled pyramid) and `head`,
/// both at 1/8 resolution. Pyramid branches use a biased 1×1 conv without batch norm, so
/// batches of one image train.
#[derive(Debug)]
pub struct PspNet {
    config: PspNetConfig,
    encoder: ResnetEncoder,
    pyramid: Vec<(i64, nn::Conv2D)>,
    head: ConvNormAct,
    classifier: nn::Conv2D,
}

impl PspNet {
    /// Creates the network's variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: PspNetConfig) -> Result<Self, ModelError> {
        if config.bins.is_empty() || config.bins.iter().any(|&b| b < 1) {
            return Err(ModelError::Config(format!(
                "PSPNet bins must be positive and non-empty, got {:?}",
                config.bins
            )));
        }
        let init = config.init;
        let encoder = ResnetEncoder::new(
            &(p / "encoder"),
            config.in_channels,
            &config.encoder,
            8,
            init,
        );
        let c = encoder.out_channels();
        let c_bin = (c / config.bins.len() as i64).max(1);
        let pyramid = config
            .bins
            .iter()
            .map(|&b| {
                (
                    b,
                    conv(p / format!("ppm{b}"), c, c_bin, ConvSpec::new(1), init),
                )
            })
            .collect();
        let c_ppm = c + c_bin * config.bins.len() as i64;
        let head = ConvNormAct::new(
            p / "head",
            c_ppm,
            config.head_channels,
            ConvSpec::new(3),
            NormKind::Batch,
            init,
            true,
        );
        let classifier = conv(
            p / "classifier",
            config.head_channels,
            config.classes,
            ConvSpec::new(1),
            init,
        );
        Ok(Self {
            config,
            encoder,
            pyramid,
            head,
            classifier,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PspNetConfig {
        &self.config
    }
}

impl SegNet for PspNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<SegOutput, ModelError> {
        check_input("PSPNet", x, self.config.in_channels, 1, 8)?;
        let size = x.size();
        let f = self.encoder.forward_t(x, train).out;
        let s = f.size();
        let mut parts = vec![f.shallow_clone()];
        for (bin, c) in &self.pyramid {
            let pooled = f.adaptive_avg_pool2d([*bin, *bin]).apply(c).relu();
            parts.push(resize(&pooled, s[2], s[3]));
        }
        let ppm = Tensor::cat(&parts, 1);
        let head = self.head.forward_t(&ppm, train);
        let logits = head
            .dropout(self.config.dropout, train)
            .apply(&self.classifier);
        let logits = resize(&logits, size[2], size[3]);
        let features = BTreeMap::from([("ppm".to_owned(), ppm), ("head".to_owned(), head)]);
        Ok(SegOutput { logits, features })
    }

    fn feature_names(&self) -> Vec<String> {
        vec!["ppm".into(), "head".into()]
    }

    fn in_channels(&self) -> i64 {
        self.config.in_channels
    }

    fn classes(&self) -> i64 {
        self.config.classes
    }
}
