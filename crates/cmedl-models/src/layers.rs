//! Building blocks shared by the networks: initialisation, normalisation, conv + norm units.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// How weights are initialised.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum InitKind {
    /// Conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0: the CycleGAN default.
    #[default]
    Normal,
    /// Kaiming normal (fan-out, ReLU) conv weights, norm scales 1, biases 0: for segmenters.
    Kaiming,
}

impl InitKind {
    pub(crate) fn conv(self) -> nn::Init {
        match self {
            Self::Normal => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            Self::Kaiming => nn::Init::Kaiming {
                dist: nn::init::NormalOrUniform::Normal,
                fan: nn::init::FanInOut::FanOut,
                non_linearity: nn::init::NonLinearity::ReLU,
            },
        }
    }

    pub(crate) fn norm_scale(self) -> nn::Init {
        match self {
            Self::Normal => nn::Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
            Self::Kaiming => nn::Init::Const(1.0),
        }
    }
}

/// Normalisation layer kind.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// Instance normalisation without affine parameters (CycleGAN's choice).
    #[default]
    Instance,
    /// Batch normalisation with affine parameters.
    Batch,
    /// No normalisation.
    None,
}

impl NormKind {
    /// Whether a conv followed by this norm needs its own bias (CycleGAN's `use_bias`).
    pub(crate) fn conv_bias(self) -> bool {
        !matches!(self, Self::Batch)
    }
}

/// A normalisation layer.
#[derive(Debug)]
pub(crate) enum Norm {
    Instance,
    Batch(nn::BatchNorm),
    None,
}

impl Norm {
    pub(crate) fn new(p: nn::Path<'_>, kind: NormKind, channels: i64, init: InitKind) -> Self {
        match kind {
            NormKind::Instance => Self::Instance,
            NormKind::None => Self::None,
            NormKind::Batch => Self::Batch(nn::batch_norm2d(
                p,
                channels,
                nn::BatchNormConfig {
                    ws_init: init.norm_scale(),
                    bs_init: nn::Init::Const(0.0),
                    ..Default::default()
                },
            )),
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Instance => x.instance_norm(
                None::<Tensor>,
                None::<Tensor>,
                None::<Tensor>,
                None::<Tensor>,
                true,
                0.1,
                1e-5,
                false,
            ),
            Self::Batch(bn) => bn.forward_t(x, train),
            Self::None => x.shallow_clone(),
        }
    }
}

/// Geometry of a 2-D convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvSpec {
    pub k: i64,
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
    pub bias: bool,
}

impl ConvSpec {
    pub(crate) fn new(k: i64) -> Self {
        Self {
            k,
            stride: 1,
            padding: k / 2,
            dilation: 1,
            bias: true,
        }
    }
    pub(crate) fn stride(self, stride: i64) -> Self {
        Self { stride, ..self }
    }
    pub(crate) fn padding(self, padding: i64) -> Self {
        Self { padding, ..self }
    }
    pub(crate) fn dilation(self, dilation: i64) -> Self {
        Self {
            dilation,
            padding: dilation * (self.k / 2),
            ..self
        }
    }
    pub(crate) fn bias(self, bias: bool) -> Self {
        Self { bias, ..self }
    }
}

pub(crate) fn conv(
    p: nn::Path<'_>,
    c_in: i64,
    c_out: i64,
    spec: ConvSpec,
    init: InitKind,
) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        spec.k,
        nn::ConvConfig {
            stride: spec.stride,
            padding: spec.padding,
            dilation: spec.dilation,
            bias: spec.bias,
            ws_init: init.conv(),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// Conv → norm → optional ReLU.
#[derive(Debug)]
pub(crate) struct ConvNormAct {
    conv: nn::Conv2D,
    norm: Norm,
    relu: bool,
}

impl ConvNormAct {
    pub(crate) fn new(
        p: nn::Path<'_>,
        c_in: i64,
        c_out: i64,
        spec: ConvSpec,
        norm: NormKind,
        init: InitKind,
        relu: bool,
    ) -> Self {
        Self {
            conv: conv(&p / "conv", c_in, c_out, spec.bias(norm.conv_bias()), init),
            norm: Norm::new(&p / "norm", norm, c_out, init),
            relu,
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.norm.forward_t(&x.apply(&self.conv), train);
        if self.relu {
            y.relu()
        } else {
            y
        }
    }
}

/// Bilinear resize of the spatial dimensions to `(h, w)`.
pub(crate) fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    let s = x.size();
    if s[2] == h && s[3] == w {
        return x.shallow_clone();
    }
    x.upsample_bilinear2d([h, w], false, None, None)
}
