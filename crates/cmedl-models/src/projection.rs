//! CUT's projection head: a two-layer MLP per encoder layer, L2-normalised outputs.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::layers::InitKind;
use crate::ModelError;

/// One MLP (C → dim → dim) per chosen encoder layer.
#[derive(Debug)]
pub struct ProjectionHead {
    layers: Vec<(String, nn::Sequential)>,
    dim: i64,
}

impl ProjectionHead {
    /// Creates an MLP for each `(layer name, channels)` under `p`, projecting to `dim` (CUT: 256).
    pub fn new(p: &nn::Path<'_>, layers: &[(String, i64)], dim: i64, init: InitKind) -> Self {
        let cfg = || nn::LinearConfig {
            ws_init: match init {
                InitKind::Normal => nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
                InitKind::Kaiming => nn::init::DEFAULT_KAIMING_NORMAL,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let layers = layers
            .iter()
            .map(|(name, c)| {
                let q = p / name.as_str();
                let mlp = nn::seq()
                    .add(nn::linear(&q / "fc1", *c, dim, cfg()))
                    .add_fn(|x| x.relu())
                    .add(nn::linear(&q / "fc2", dim, dim, cfg()));
                (name.clone(), mlp)
            })
            .collect();
        Self { layers, dim }
    }

    /// Output dimension.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// Names of the layers it projects, in order.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Projects patch features `[P, C]` of `layer` to unit vectors `[P, dim]`.
    pub fn forward(&self, layer: &str, features: &Tensor) -> Result<Tensor, ModelError> {
        let (_, mlp) = self
            .layers
            .iter()
            .find(|(n, _)| n == layer)
            .ok_or_else(|| ModelError::UnknownFeature {
                name: layer.to_owned(),
                network: "ProjectionHead".into(),
                available: self.layer_names(),
            })?;
        let y = mlp.forward(features);
        let norm = y.norm_scalaropt_dim(2, [1], true).clamp_min(1e-7);
        Ok(y / norm)
    }
}
