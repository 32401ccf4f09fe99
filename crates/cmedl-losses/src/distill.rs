//! Distillation between the student's and the teacher's feature maps: the CMEDL term.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use cmedl_models::SegOutput;

use crate::{to_f32, LossError};

/// How a pair of feature maps is compared.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DistillKind {
    /// Mean squared error, the "hint" loss of CMEDL.
    #[default]
    Mse,
    /// Mean absolute error.
    L1,
    /// 1 − cosine similarity along channels, averaged over positions.
    Cosine,
    /// Attention transfer (Zagoruyko & Komodakis): mean squared difference of L2-normalised
    /// channel-pooled squared activations; channel counts may differ.
    Attention,
    /// KL(teacher ‖ student) of class softmaxes at temperature T, scaled by T² (Hinton et al.).
    LogitKd {
        /// Temperature T.
        temperature: f64,
    },
}

/// How feature maps are normalised before they are compared.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureNorm {
    /// The raw maps (CMEDL's hint loss).
    #[default]
    None,
    /// Each channel of each map standardised over its positions (zero mean, unit variance).
    Channel,
    /// Each position's channel vector scaled to unit L2 norm.
    L2,
}

impl FeatureNorm {
    /// The normalised map of `[N, C, H, W]` features.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::None => x.shallow_clone(),
            Self::Channel => {
                let mean = x.mean_dim(&[2i64, 3][..], true, None::<Kind>);
                let var = (x - &mean)
                    .square()
                    .mean_dim(&[2i64, 3][..], true, None::<Kind>);
                (x - mean) / (var + 1e-5).sqrt()
            }
            Self::L2 => x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12),
        }
    }
}

/// Which feature maps to distil, how, and with what weight.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillSpec {
    /// Feature names of the segmenters (`logits` names the logits); empty: the segmenter's
    /// last two decoder-side maps, chosen by the trainer.
    pub features: Vec<String>,
    /// The comparison.
    pub kind: DistillKind,
    /// λ_d.
    pub weight: f64,
    /// Stop gradients into the teacher.
    pub detach_teacher: bool,
    /// Normalisation of both maps before they are compared (not for `logit-kd`).
    pub normalize: FeatureNorm,
    /// Epochs over which λ_d ramps linearly from 0 to its value (0: full weight from the start).
    pub warmup_epochs: usize,
    /// Hold the term back (λ_d = 0) until the teacher's validation Dice on translated images
    /// exceeds the student's, checked at each epoch end.
    pub gate_on_teacher: bool,
    /// A 1×1 convolution on each distilled student map, trained with the student (FitNets'
    /// regressor), so the student's own features need not equal the teacher's.
    pub adaptor: bool,
}

impl Default for DistillSpec {
    fn default() -> Self {
        Self {
            features: Vec::new(),
            kind: DistillKind::Mse,
            weight: 1.0,
            detach_teacher: true,
            normalize: FeatureNorm::None,
            warmup_epochs: 0,
            gate_on_teacher: false,
            adaptor: false,
        }
    }
}

impl DistillSpec {
    /// The share of λ_d in effect at (0-based) `epoch` under the warm-up ramp: epoch e of a
    /// ramp of W epochs uses (e + 1) / (W + 1), then 1.
    pub fn warmup_factor(&self, epoch: usize) -> f64 {
        if epoch >= self.warmup_epochs {
            1.0
        } else {
            (epoch + 1) as f64 / (self.warmup_epochs + 1) as f64
        }
    }
}

/// One pair of maps compared by `kind`.
pub fn distill_pair(kind: DistillKind, student: &Tensor, teacher: &Tensor) -> Tensor {
    let (s, t) = (to_f32(student), to_f32(teacher));
    match kind {
        DistillKind::Mse => (s - t).square().mean(None::<Kind>),
        DistillKind::L1 => (s - t).abs().mean(None::<Kind>),
        DistillKind::Cosine => 1.0 - Tensor::cosine_similarity(&s, &t, 1, 1e-8).mean(None::<Kind>),
        DistillKind::Attention => (attention_map(&s) - attention_map(&t))
            .square()
            .mean(None::<Kind>),
        DistillKind::LogitKd { temperature } => {
            let log_s = (s / temperature).log_softmax(1, None::<Kind>);
            let log_t = (t / temperature).log_softmax(1, None::<Kind>);
            let kl =
                (log_t.exp() * (&log_t - log_s)).sum_dim_intlist(&[1i64][..], false, None::<Kind>);
            kl.mean(None::<Kind>) * (temperature * temperature)
        }
    }
}

/// Channel-pooled squared activations `[N, H·W]`, L2-normalised per image.
pub fn attention_map(features: &Tensor) -> Tensor {
    let a = features
        .square()
        .mean_dim(&[1i64][..], false, None::<Kind>)
        .flatten(1, -1);
    let norm = a.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    a / norm
}

fn lookup<'a>(out: &'a SegOutput, name: &str, side: &str) -> Result<&'a Tensor, LossError> {
    if name == "logits" {
        return Ok(&out.logits);
    }
    out.features
        .get(name)
        .ok_or_else(|| LossError::UnknownFeature {
            name: name.to_owned(),
            side: side.to_owned(),
            available: std::iter::once("logits".to_owned())
                .chain(out.features.keys().cloned())
                .collect(),
        })
}

/// λ_d · Σ over the spec's features of the pair loss between student and teacher.
pub fn distill(
    spec: &DistillSpec,
    student: &SegOutput,
    teacher: &SegOutput,
) -> Result<Tensor, LossError> {
    if spec.features.is_empty() {
        return Err(LossError::Shape(
            "the distillation spec lists no features".into(),
        ));
    }
    let mut total: Option<Tensor> = None;
    for name in &spec.features {
        let s = lookup(student, name, "student")?;
        let t = lookup(teacher, name, "teacher")?;
        let (ss, ts) = (s.size(), t.size());
        let compatible = match spec.kind {
            // Attention maps pool channels away: only batch and spatial sizes must agree.
            DistillKind::Attention => {
                ss.len() == 4 && ts.len() == 4 && ss[0] == ts[0] && ss[2..] == ts[2..]
            }
            _ => ss == ts,
        };
        if !compatible {
            return Err(LossError::FeatureShape {
                name: name.clone(),
                student: ss,
                teacher: ts,
            });
        }
        let t = if spec.detach_teacher {
            t.detach()
        } else {
            t.shallow_clone()
        };
        let loss = match spec.kind {
            DistillKind::LogitKd { .. } => distill_pair(spec.kind, s, &t),
            kind => distill_pair(kind, &spec.normalize.apply(s), &spec.normalize.apply(&t)),
        };
        total = Some(match total {
            Some(acc) => acc + loss,
            None => loss,
        });
    }
    Ok(total
        .map(|t| t * spec.weight)
        .unwrap_or_else(|| Tensor::from(0f32)))
}
