//! U-Net (Ronneberger et al.) with batch norm (or another normalisation), configurable width and
//! depth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{conv, ConvNormAct, ConvSpec, InitKind, NormKind};
use crate::{check_input, ModelError, SegNet, SegOutput};

/// How the decoder up-samples.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum UpMode {
    /// 2×2 transposed convolution with stride 2.
    #[default]
    Transposed,
    /// Bilinear interpolation followed by a 1×1 convolution.
    Bilinear,
}

/// Configuration of a [`UNet`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    /// Input channels (1 for CT, 2 for CT + pseudo-MRI).
    pub in_channels: i64,
    /// Output classes, background included.
    pub classes: i64,
    /// Channels of the first level (doubled at each level).
    pub base: i64,
    /// Number of 2× downsamplings.
    pub depth: usize,
    /// Decoder up-sampling.
    pub up: UpMode,
    /// Weight initialisation.
    pub init: InitKind,
    /// Normalisation after each convolution (batch norm as in the paper; instance norm makes a
    /// step independent of how the batch is split across data-parallel processes).
    pub norm: NormKind,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            classes: 2,
            base: 32,
            depth: 4,
            up: UpMode::Transposed,
            init: InitKind::Kaiming,
            norm: NormKind::Batch,
        }
    }
}

#[derive(Debug)]
struct DoubleConv {
    a: ConvNormAct,
    b: ConvNormAct,
}

impl DoubleConv {
    fn new(p: nn::Path<'_>, c_in: i64, c_out: i64, init: InitKind, norm: NormKind) -> Self {
        let spec = ConvSpec::new(3);
        Self {
            a: ConvNormAct::new(&p / "a", c_in, c_out, spec, norm, init, true),
            b: ConvNormAct::new(&p / "b", c_out, c_out, spec, norm, init, true),
        }
    }
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.b.forward_t(&self.a.forward_t(x, train), train)
    }
}

#[derive(Debug)]
enum Up {
    Transposed(nn::ConvTranspose2D),
    Bilinear(nn::Conv2D),
}

/// U-Net. Features: `bottleneck` and `dec1`..`decN` (dec1 at the coarsest decoder level, decN at
/// full resolution). Any input of at least 2^depth pixels per side works: up-sampled maps are
/// padded to their skip's size.
#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    enc: Vec<DoubleConv>,
    up: Vec<Up>,
    dec: Vec<DoubleConv>,
    head: nn::Conv2D,
}

impl UNet {
    /// Creates the network's variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: UNetConfig) -> Self {
        let (b, init) = (config.base, config.init);
        let enc = (0..=config.depth)
            .map(|i| {
                let c_in = if i == 0 {
                    config.in_channels
                } else {
                    b << (i - 1)
                };
                DoubleConv::new(p / format!("enc{i}"), c_in, b << i, init, config.norm)
            })
            .collect();
        let mut up = Vec::new();
        let mut dec = Vec::new();
        for level in (0..config.depth).rev() {
            let (c_low, c) = (b << (level + 1), b << level);
            let name = format!("dec{}", config.depth - level);
            let q = p / name.as_str();
            up.push(match config.up {
                UpMode::Transposed => Up::Transposed(nn::conv_transpose2d(
                    &q / "up",
                    c_low,
                    c,
                    2,
                    nn::ConvTransposeConfig {
                        stride: 2,
                        ws_init: init.conv(),
                        bs_init: nn::Init::Const(0.0),
                        ..Default::default()
                    },
                )),
                UpMode::Bilinear => Up::Bilinear(conv(&q / "up", c_low, c, ConvSpec::new(1), init)),
            });
            dec.push(DoubleConv::new(&q / "conv", 2 * c, c, init, config.norm));
        }
        let head = conv(p / "head", b, config.classes, ConvSpec::new(1), init);
        Self {
            config,
            enc,
            up,
            dec,
            head,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }
}

impl SegNet for UNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<SegOutput, ModelError> {
        check_input(
            "UNet",
            x,
            self.config.in_channels,
            1,
            1 << self.config.depth,
        )?;
        let mut skips = Vec::with_capacity(self.enc.len());
        let mut h = self.enc[0].forward_t(x, train);
        for e in &self.enc[1..] {
            skips.push(h.shallow_clone());
            h = e.forward_t(&h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false), train);
        }
        let mut features = BTreeMap::new();
        features.insert("bottleneck".to_owned(), h.shallow_clone());
        for (i, (up, dec)) in self.up.iter().zip(&self.dec).enumerate() {
            let skip = &skips[skips.len() - 1 - i];
            let u = match up {
                Up::Transposed(t) => h.apply(t),
                Up::Bilinear(c) => {
                    let s = h.size();
                    h.upsample_bilinear2d([s[2] * 2, s[3] * 2], false, None, None)
                        .apply(c)
                }
            };
            let (su, ss) = (u.size(), skip.size());
            let (dh, dw) = (ss[2] - su[2], ss[3] - su[3]);
            let u = if dh != 0 || dw != 0 {
                u.constant_pad_nd([dw / 2, dw - dw / 2, dh / 2, dh - dh / 2])
            } else {
                u
            };
            h = dec.forward_t(&Tensor::cat(&[skip, &u], 1), train);
            features.insert(format!("dec{}", i + 1), h.shallow_clone());
        }
        Ok(SegOutput {
            logits: h.apply(&self.head),
            features,
        })
    }

    fn feature_names(&self) -> Vec<String> {
        let mut names = vec!["bottleneck".to_owned()];
        names.extend((1..=self.config.depth).map(|i| format!("dec{i}")));
        names
    }

    fn in_channels(&self) -> i64 {
        self.config.in_channels
    }

    fn classes(&self) -> i64 {
        self.config.classes
    }
}
