//! PatchNCE, the contrastive loss of CUT (Park et al., 2020).

use cmedl_models::ProjectionHead;
use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::LossError;

/// Settings of [`patch_nce`].
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchNceConfig {
    /// Positions sampled per layer and image (all positions when a map has fewer).
    pub patches: usize,
    /// Softmax temperature τ.
    pub temperature: f64,
}

impl Default for PatchNceConfig {
    fn default() -> Self {
        Self {
            patches: 256,
            temperature: 0.07,
        }
    }
}

/// InfoNCE over patches of one layer: `query` and `key` are `[B, P, D]` unit vectors where
/// query patch `p` and key patch `p` come from the same position. For each query the positive
/// is its own key (logit index 0) and the negatives are the other `P − 1` keys of the same
/// image; the loss is the mean cross-entropy of `[q·k⁺, q·k⁻…] / τ`.
pub fn patch_nce_layer(
    query: &Tensor,
    key: &Tensor,
    temperature: f64,
) -> Result<Tensor, LossError> {
    if query.size() != key.size() || query.dim() != 3 {
        return Err(LossError::Shape(format!(
            "PatchNCE needs query and key of equal shape [B, P, D], got {:?} and {:?}",
            query.size(),
            key.size()
        )));
    }
    let (b, p) = (query.size()[0], query.size()[1]);
    let positive = (query * key)
        .sum_dim_intlist(&[2i64][..], false, query.kind())
        .view([b * p, 1]);
    let mut negatives = query.bmm(&key.transpose(1, 2)); // [B, P, P]
                                                         // The diagonal holds the positives; CUT masks them out of the negatives with −10.
    let eye = Tensor::eye(p, (Kind::Bool, query.device())).unsqueeze(0);
    negatives = negatives.masked_fill(&eye, -10.0).view([b * p, p]);
    let logits = Tensor::cat(&[positive, negatives], 1) / temperature;
    let target = Tensor::zeros([b * p], (Kind::Int64, query.device()));
    Ok(logits.cross_entropy_loss::<Tensor>(&target, None, Reduction::Mean, -100, 0.0))
}

/// Picks up to `count` positions out of `h·w`, the same for query and key.
pub fn sample_positions(
    h: i64,
    w: i64,
    count: usize,
    rng: &mut impl Rng,
    device: Device,
) -> Tensor {
    let n = (h * w) as usize;
    let ids: Vec<i64> = if count >= n {
        (0..n as i64).collect()
    } else {
        sample(rng, n, count)
            .into_iter()
            .map(|i| i as i64)
            .collect()
    };
    Tensor::from_slice(&ids).to_device(device)
}

/// Gathers the feature vectors at `positions` of `[B, C, H, W]` as `[B·P, C]`.
fn gather(features: &Tensor, positions: &Tensor) -> Tensor {
    let s = features.size();
    features
        .flatten(2, 3)
        .permute([0, 2, 1])
        .index_select(1, positions)
        .reshape([-1, s[1]])
}

/// PatchNCE averaged over layers: `query_features[l]` are encoder activations of the
/// translated image, `key_features[l]` those of the source image (detached, as in CUT), both for
/// the layers the projection head was built for, in its order.
pub fn patch_nce(
    query_features: &[Tensor],
    key_features: &[Tensor],
    head: &ProjectionHead,
    config: &PatchNceConfig,
    rng: &mut impl Rng,
) -> Result<Tensor, LossError> {
    let layers = head.layer_names();
    if query_features.len() != layers.len() || key_features.len() != layers.len() {
        return Err(LossError::Shape(format!(
            "PatchNCE got {} query and {} key feature maps for the head's {} layers {:?}",
            query_features.len(),
            key_features.len(),
            layers.len(),
            layers
        )));
    }
    let mut total: Option<Tensor> = None;
    for ((q, k), layer) in query_features.iter().zip(key_features).zip(&layers) {
        if q.size() != k.size() || q.dim() != 4 {
            return Err(LossError::Shape(format!(
                "PatchNCE layer '{layer}': query {:?} and key {:?} must be equal [B, C, H, W]",
                q.size(),
                k.size()
            )));
        }
        let s = q.size();
        let positions = sample_positions(s[2], s[3], config.patches, rng, q.device());
        let b = s[0];
        let qk = |t: &Tensor| -> Result<Tensor, LossError> {
            let projected = head.forward(layer, &gather(t, &positions))?;
            Ok(projected.view([b, positions.size()[0], head.dim()]))
        };
        let loss = patch_nce_layer(&qk(q)?, &qk(&k.detach())?, config.temperature)?;
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
    }
    let total =
        total.ok_or_else(|| LossError::Shape("PatchNCE needs at least one layer".into()))?;
    Ok(total / layers.len() as f64)
}
