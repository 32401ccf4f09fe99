//! DeepLabV3+ (Chen et al., 2018): ASPP on a ResNet-style encoder and a decoder with a
//! low-level skip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{conv, resize, ConvNormAct, ConvSpec, InitKind, NormKind};
use crate::resnet::{ResnetEncoder, ResnetEncoderConfig};
use crate::{check_input, ModelError, SegNet, SegOutput};

/// Configuration of a [`DeepLabV3Plus`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepLabV3PlusConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Output classes, background included.
    pub classes: i64,
    /// The encoder.
    pub encoder: ResnetEncoderConfig,
    /// Output stride of the encoder: 16 (ASPP rates 6/12/18) or 8 (rates 12/24/36).
    pub output_stride: u32,
    /// Channels of the ASPP branches and of the decoder.
    pub aspp_channels: i64,
    /// Channels the low-level skip is reduced to.
    pub low_level_channels: i64,
    /// Dropout after the ASPP projection.
    pub dropout: f64,
    /// Weight initialisation.
    pub init: InitKind,
}

impl Default for DeepLabV3PlusConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            classes: 2,
            encoder: ResnetEncoderConfig::default(),
            output_stride: 16,
            aspp_channels: 256,
            low_level_channels: 48,
            dropout: 0.5,
            init: InitKind::Kaiming,
        }
    }
}

/// DeepLabV3+. Features: `aspp` (1/OS resolution) and `decoder` (1/4 resolution).
///
/// The image-pooling branch of ASPP has a bias and no batch norm, so batches of one image train.
#[derive(Debug)]
pub struct DeepLabV3Plus {
    config: DeepLabV3PlusConfig,
    encoder: ResnetEncoder,
    branches: Vec<ConvNormAct>,
    pool: nn::Conv2D,
    project: ConvNormAct,
    low: ConvNormAct,
    decoder: Vec<ConvNormAct>,
    classifier: nn::Conv2D,
}

impl DeepLabV3Plus {
    /// Creates the network's variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: DeepLabV3PlusConfig) -> Result<Self, ModelError> {
        if !matches!(config.output_stride, 8 | 16) {
            return Err(ModelError::Config(format!(
                "DeepLabV3+ output_stride must be 8 or 16, got {}",
                config.output_stride
            )));
        }
        let init = config.init;
        let bn = NormKind::Batch;
        let encoder = ResnetEncoder::new(
            &(p / "encoder"),
            config.in_channels,
            &config.encoder,
            config.output_stride,
            init,
        );
        let (c_enc, a) = (encoder.out_channels(), config.aspp_channels);
        let scale = if config.output_stride == 8 { 2 } else { 1 };
        let mut branches = vec![ConvNormAct::new(
            p / "aspp0",
            c_enc,
            a,
            ConvSpec::new(1),
            bn,
            init,
            true,
        )];
        for (i, rate) in [6, 12, 18].iter().enumerate() {
            let spec = ConvSpec::new(3).dilation(rate * scale);
            branches.push(ConvNormAct::new(
                p / format!("aspp{}", i + 1),
                c_enc,
                a,
                spec,
                bn,
                init,
                true,
            ));
        }
        let pool = conv(p / "aspp_pool", c_enc, a, ConvSpec::new(1), init);
        let project = ConvNormAct::new(
            p / "aspp_project",
            5 * a,
            a,
            ConvSpec::new(1),
            bn,
            init,
            true,
        );
        let c_low = config.low_level_channels;
        let low = ConvNormAct::new(
            p / "low",
            encoder.low_level_channels(),
            c_low,
            ConvSpec::new(1),
            bn,
            init,
            true,
        );
        let decoder = vec![
            ConvNormAct::new(
                p / "decoder1",
                a + c_low,
                a,
                ConvSpec::new(3),
                bn,
                init,
                true,
            ),
            ConvNormAct::new(p / "decoder2", a, a, ConvSpec::new(3), bn, init, true),
        ];
        let classifier = conv(p / "classifier", a, config.classes, ConvSpec::new(1), init);
        Ok(Self {
            config,
            encoder,
            branches,
            pool,
            project,
            low,
            decoder,
            classifier,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &DeepLabV3PlusConfig {
        &self.config
    }
}

impl SegNet for DeepLabV3Plus {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<SegOutput, ModelError> {
        let os = i64::from(self.config.output_stride);
        check_input("DeepLabV3+", x, self.config.in_channels, 1, os)?;
        let size = x.size();
        let enc = self.encoder.forward_t(x, train);
        let s = enc.out.size();
        let mut parts: Vec<Tensor> = self
            .branches
            .iter()
            .map(|b| b.forward_t(&enc.out, train))
            .collect();
        let pooled = enc.out.adaptive_avg_pool2d([1, 1]).apply(&self.pool).relu();
        parts.push(pooled.expand([s[0], pooled.size()[1], s[2], s[3]], false));
        let aspp = self
            .project
            .forward_t(&Tensor::cat(&parts, 1), train)
            .dropout(self.config.dropout, train);
        let low = self.low.forward_t(&enc.low_level, train);
        let l = low.size();
        let mut h = Tensor::cat(&[resize(&aspp, l[2], l[3]), low], 1);
        for d in &self.decoder {
            h = d.forward_t(&h, train);
        }
        let logits = resize(&h.apply(&self.classifier), size[2], size[3]);
        let features = BTreeMap::from([("aspp".to_owned(), aspp), ("decoder".to_owned(), h)]);
        Ok(SegOutput { logits, features })
    }

    fn feature_names(&self) -> Vec<String> {
        vec!["aspp".into(), "decoder".into()]
    }

    fn in_channels(&self) -> i64 {
        self.config.in_channels
    }

    fn classes(&self) -> i64 {
        self.config.classes
    }
}
