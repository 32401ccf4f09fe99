//! CycleGAN's ResNet generator, with its encoder layers exposed for PatchNCE (CUT).

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{conv, ConvNormAct, ConvSpec, InitKind, Norm, NormKind};
use crate::{check_input, ModelError};

/// Configuration of a [`ResnetGenerator`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResnetGeneratorConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Output channels.
    pub out_channels: i64,
    /// Filters of the first layer (doubled at each of the two downsamplings).
    pub ngf: i64,
    /// Residual blocks: 9 for 256-px images, 6 for 128 px or smaller.
    pub blocks: usize,
    /// Normalisation after each convolution.
    pub norm: NormKind,
    /// Dropout probability inside residual blocks (0 disables it).
    pub dropout: f64,
    /// Weight initialisation.
    pub init: InitKind,
}

impl Default for ResnetGeneratorConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            out_channels: 1,
            ngf: 64,
            blocks: 9,
            norm: NormKind::Instance,
            dropout: 0.0,
            init: InitKind::Normal,
        }
    }
}

impl ResnetGeneratorConfig {
    /// The encoder taps PatchNCE (CUT) uses when a config lists none: the input, the stem, both
    /// downsamplings and residual block 4, or the last block of a shallower generator.
    pub fn default_nce_layers(&self) -> Vec<String> {
        let mut layers: Vec<String> = ["input", "stem", "down1", "down2"].map(String::from).into();
        if self.blocks > 0 {
            layers.push(format!("res{}", self.blocks.min(4)));
        }
        layers
    }
}

#[derive(Debug)]
struct ResBlock {
    a: ConvNormAct,
    b: ConvNormAct,
    dropout: f64,
}

impl ResBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.a.forward_t(&x.reflection_pad2d([1, 1, 1, 1]), train);
        if self.dropout > 0.0 {
            y = y.dropout(self.dropout, train);
        }
        x + self.b.forward_t(&y.reflection_pad2d([1, 1, 1, 1]), train)
    }
}

#[derive(Debug)]
struct UpBlock {
    conv: nn::ConvTranspose2D,
    norm: Norm,
}

/// ResNet image-to-image generator (Johnson et al.; CycleGAN's `resnet_Nblocks`).
///
/// Reflection-padded 7×7 stem, two stride-2 downsamplings, N residual blocks, two transposed-conv
/// upsamplings and a 7×7 head with tanh. Height and width must be multiples of 4 so the output
/// has the input's size. Encoder taps: `input`, `stem`, `down1`, `down2`, `res1`..`resN`.
#[derive(Debug)]
pub struct ResnetGenerator {
    config: ResnetGeneratorConfig,
    stem: ConvNormAct,
    down: Vec<ConvNormAct>,
    blocks: Vec<ResBlock>,
    up: Vec<UpBlock>,
    head: nn::Conv2D,
}

impl ResnetGenerator {
    /// Creates the generator's variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: ResnetGeneratorConfig) -> Self {
        let (norm, init, ngf) = (config.norm, config.init, config.ngf);
        let stem = ConvNormAct::new(
            p / "stem",
            config.in_channels,
            ngf,
            ConvSpec::new(7).padding(0),
            norm,
            init,
            true,
        );
        let down = (0..2)
            .map(|i| {
                let c = ngf << i;
                ConvNormAct::new(
                    p / format!("down{}", i + 1),
                    c,
                    c * 2,
                    ConvSpec::new(3).stride(2),
                    norm,
                    init,
                    true,
                )
            })
            .collect();
        let width = ngf * 4;
        let blocks = (0..config.blocks)
            .map(|i| {
                let q = p / format!("res{}", i + 1);
                let spec = ConvSpec::new(3).padding(0);
                ResBlock {
                    a: ConvNormAct::new(&q / "a", width, width, spec, norm, init, true),
                    b: ConvNormAct::new(&q / "b", width, width, spec, norm, init, false),
                    dropout: config.dropout,
                }
            })
            .collect();
        let up = (0..2)
            .map(|i| {
                let c = width >> i;
                let q = p / format!("up{}", i + 1);
                UpBlock {
                    conv: nn::conv_transpose2d(
                        &q / "conv",
                        c,
                        c / 2,
                        3,
                        nn::ConvTransposeConfig {
                            stride: 2,
                            padding: 1,
                            output_padding: 1,
                            bias: norm.conv_bias(),
                            ws_init: init.conv(),
                            bs_init: nn::Init::Const(0.0),
                            ..Default::default()
                        },
                    ),
                    norm: Norm::new(&q / "norm", norm, c / 2, init),
                }
            })
            .collect();
        let head = conv(
            p / "head",
            ngf,
            config.out_channels,
            ConvSpec::new(7).padding(0),
            init,
        );
        Self {
            config,
            stem,
            down,
            blocks,
            up,
            head,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ResnetGeneratorConfig {
        &self.config
    }

    /// Names of the encoder taps, in order.
    pub fn encoder_layer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["input", "stem", "down1", "down2"].map(String::from).into();
        names.extend((1..=self.blocks.len()).map(|i| format!("res{i}")));
        names
    }

    /// Channels of an encoder tap.
    pub fn encoder_layer_channels(&self, name: &str) -> Result<i64, ModelError> {
        let ngf = self.config.ngf;
        match name {
            "input" => Ok(self.config.in_channels),
            "stem" => Ok(ngf),
            "down1" => Ok(ngf * 2),
            _ if self.encoder_layer_names().iter().any(|n| n == name) => Ok(ngf * 4),
            _ => Err(ModelError::UnknownFeature {
                name: name.to_owned(),
                network: "ResnetGenerator".into(),
                available: self.encoder_layer_names(),
            }),
        }
    }

    fn check(&self, x: &Tensor) -> Result<(), ModelError> {
        check_input("ResnetGenerator", x, self.config.in_channels, 4, 8)
    }

    /// Translates a batch `[N, C, H, W]` (H, W multiples of 4) into `[N, out, H, W]` in [-1, 1].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        self.check(x)?;
        let mut h = self
            .stem
            .forward_t(&x.reflection_pad2d([3, 3, 3, 3]), train);
        for d in &self.down {
            h = d.forward_t(&h, train);
        }
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        for u in &self.up {
            h = u.norm.forward_t(&h.apply(&u.conv), train).relu();
        }
        Ok(h.reflection_pad2d([3, 3, 3, 3]).apply(&self.head).tanh())
    }

    /// Encoder activations at `layers` (names from [`Self::encoder_layer_names`]), in that order.
    pub fn encode_t(
        &self,
        x: &Tensor,
        layers: &[&str],
        train: bool,
    ) -> Result<Vec<Tensor>, ModelError> {
        self.check(x)?;
        let names = self.encoder_layer_names();
        let mut wanted = Vec::with_capacity(layers.len());
        for l in layers {
            let idx =
                names
                    .iter()
                    .position(|n| n == l)
                    .ok_or_else(|| ModelError::UnknownFeature {
                        name: (*l).to_owned(),
                        network: "ResnetGenerator".into(),
                        available: names.clone(),
                    })?;
            wanted.push(idx);
        }
        let last = wanted.iter().copied().max().unwrap_or(0);
        let mut acts: Vec<Tensor> = Vec::with_capacity(last + 1);
        acts.push(x.shallow_clone());
        if last >= 1 {
            acts.push(
                self.stem
                    .forward_t(&x.reflection_pad2d([3, 3, 3, 3]), train),
            );
        }
        for (i, d) in self.down.iter().enumerate() {
            if last >= 2 + i {
                let h = d.forward_t(&acts[1 + i], train);
                acts.push(h);
            }
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if last >= 4 + i {
                let h = b.forward_t(&acts[3 + i], train);
                acts.push(h);
            }
        }
        Ok(wanted
            .into_iter()
            .map(|i| acts[i].shallow_clone())
            .collect())
    }
}
