//! A ResNet-style encoder (basic blocks) with dilation, trained from scratch; the backbone of
//! DeepLabV3+ and PSPNet.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{ConvNormAct, ConvSpec, InitKind, NormKind};

/// Configuration of a [`ResnetEncoder`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResnetEncoderConfig {
    /// Channels of the stem and the first stage (doubled at each later stage).
    pub width: i64,
    /// Basic blocks in each of the four stages ([2, 2, 2, 2]: ResNet-18's layout).
    pub blocks: [usize; 4],
}

impl Default for ResnetEncoderConfig {
    fn default() -> Self {
        Self {
            width: 64,
            blocks: [2, 2, 2, 2],
        }
    }
}

#[derive(Debug)]
struct BasicBlock {
    a: ConvNormAct,
    b: ConvNormAct,
    shortcut: Option<ConvNormAct>,
}

impl BasicBlock {
    fn new(
        p: nn::Path<'_>,
        c_in: i64,
        c_out: i64,
        stride: i64,
        dilation: i64,
        init: InitKind,
    ) -> Self {
        let bn = NormKind::Batch;
        let spec = ConvSpec::new(3).dilation(dilation);
        Self {
            a: ConvNormAct::new(&p / "a", c_in, c_out, spec.stride(stride), bn, init, true),
            b: ConvNormAct::new(&p / "b", c_out, c_out, spec, bn, init, false),
            shortcut: (stride != 1 || c_in != c_out).then(|| {
                let s = ConvSpec::new(1).stride(stride);
                ConvNormAct::new(&p / "shortcut", c_in, c_out, s, bn, init, false)
            }),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.b.forward_t(&self.a.forward_t(x, train), train);
        let s = match &self.shortcut {
            Some(sc) => sc.forward_t(x, train),
            None => x.shallow_clone(),
        };
        (y + s).relu()
    }
}

/// Stem (two 3×3 convs, the first with stride 2, then a 3×3 max-pool) and four stages.
/// Stage 1 runs at 1/4 of the input size; each later stage halves it, unless replaced by
/// dilation to reach the requested output stride (8 or 16).
#[derive(Debug)]
pub struct ResnetEncoder {
    stem: Vec<ConvNormAct>,
    stages: Vec<Vec<BasicBlock>>,
    width: i64,
}

/// Outputs of the encoder used by the segmentation heads.
pub struct EncoderOutput {
    /// Stage-1 features (1/4 resolution, `width` channels).
    pub low_level: Tensor,
    /// Last-stage features (`8 × width` channels).
    pub out: Tensor,
}

impl ResnetEncoder {
    /// Creates the encoder under `p` for `in_channels` inputs and an output stride of 8 or 16.
    pub fn new(
        p: &nn::Path<'_>,
        in_channels: i64,
        config: &ResnetEncoderConfig,
        output_stride: u32,
        init: InitKind,
    ) -> Self {
        let w = config.width;
        let bn = NormKind::Batch;
        let stem = vec![
            ConvNormAct::new(
                p / "stem1",
                in_channels,
                w,
                ConvSpec::new(3).stride(2),
                bn,
                init,
                true,
            ),
            ConvNormAct::new(p / "stem2", w, w, ConvSpec::new(3), bn, init, true),
        ];
        // (stride, dilation) of stages 2..4.
        let plan: [(i64, i64); 4] = if output_stride == 8 {
            [(1, 1), (2, 1), (1, 2), (1, 4)]
        } else {
            [(1, 1), (2, 1), (2, 1), (1, 2)]
        };
        let mut c_in = w;
        let stages = plan
            .iter()
            .enumerate()
            .map(|(s, &(stride, dilation))| {
                let c_out = w << s;
                let q = p / format!("stage{}", s + 1);
                let blocks = (0..config.blocks[s].max(1))
                    .map(|b| {
                        let (ci, st) = if b == 0 { (c_in, stride) } else { (c_out, 1) };
                        BasicBlock::new(&q / format!("block{b}"), ci, c_out, st, dilation, init)
                    })
                    .collect();
                c_in = c_out;
                blocks
            })
            .collect();
        Self {
            stem,
            stages,
            width: w,
        }
    }

    /// Channels of the last stage.
    pub fn out_channels(&self) -> i64 {
        self.width * 8
    }

    /// Channels of the stage-1 features.
    pub fn low_level_channels(&self) -> i64 {
        self.width
    }

    /// Runs the encoder.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> EncoderOutput {
        let mut h = x.shallow_clone();
        for s in &self.stem {
            h = s.forward_t(&h, train);
        }
        h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut low_level = None;
        for (i, stage) in self.stages.iter().enumerate() {
            for b in stage {
                h = b.forward_t(&h, train);
            }
            if i == 0 {
                low_level = Some(h.shallow_clone());
            }
        }
        EncoderOutput {
            low_level: low_level.unwrap_or_else(|| h.shallow_clone()),
            out: h,
        }
    }
}
