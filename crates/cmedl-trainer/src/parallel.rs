//! Data-parallel training over a c10d process group: weights broadcast from rank 0, gradients
//! (and the step's loss terms) averaged in one bucket per step, agreement on stopping.
//!
//! Collectives take their tensors on the group's device (the CPU for Gloo, the process's GPU
//! for NCCL); buckets are built there and copied back.

use cmedl_dist::{DistError, ProcessGroup};
use tch::{Device, Kind, Tensor};

use crate::TrainError;

/// A collective's error as a training error (a failure of the launch, not bad input).
pub(crate) fn error(e: DistError) -> TrainError {
    TrainError::Parallel(e.to_string())
}

/// Copies rank 0's `tensors` into every rank's, in place: one bucket per element kind (a
/// collective takes one tensor per process), on the group's device.
pub(crate) fn broadcast(group: &ProcessGroup, tensors: &[Tensor]) -> Result<(), TrainError> {
    tch::no_grad(|| {
        let mut kinds: Vec<Kind> = Vec::new();
        for t in tensors {
            if !kinds.contains(&t.kind()) {
                kinds.push(t.kind());
            }
        }
        for kind in kinds {
            let members: Vec<&Tensor> = tensors.iter().filter(|t| t.kind() == kind).collect();
            let pieces: Vec<Tensor> = members
                .iter()
                .map(|t| t.detach().to_device(group.device()).reshape([-1]))
                .collect();
            let bucket = Tensor::cat(&pieces, 0).contiguous();
            group.broadcast(&[&bucket], 0).map_err(error)?;
            let mut at = 0i64;
            for t in members {
                let n = t.numel() as i64;
                let part = bucket.narrow(0, at, n).view_as(t).to_device(t.device());
                t.shallow_clone().copy_(&part);
                at += n;
            }
        }
        Ok(())
    })
}

/// Whether `yes` holds on any rank.
pub(crate) fn any(group: &ProcessGroup, yes: bool) -> Result<bool, TrainError> {
    let flag = Tensor::from_slice(&[f32::from(u8::from(yes))]).to_device(group.device());
    group.allreduce_sum(&[&flag]).map_err(error)?;
    Ok(flag.double_value(&[0]) > 0.0)
}

/// Averages, over the ranks, the gradients of `params` (a parameter without a gradient sends
/// zeros, so that every rank builds the same bucket) and the scalar `terms`, in one allreduce.
pub(crate) fn average(
    group: &ProcessGroup,
    params: &[&Tensor],
    terms: &mut [Tensor],
) -> Result<(), TrainError> {
    let world = group.world_size() as f64;
    tch::no_grad(|| {
        let mut pieces: Vec<Tensor> = Vec::with_capacity(params.len() + terms.len());
        let mut device = Device::Cpu;
        for p in params {
            let g = p.grad();
            device = p.device();
            pieces.push(if g.defined() {
                g.to_kind(Kind::Float).reshape([-1])
            } else {
                Tensor::zeros([p.numel() as i64], (Kind::Float, p.device()))
            });
        }
        for t in terms.iter() {
            pieces.push(t.to_kind(Kind::Float).to_device(device).reshape([-1]));
        }
        let bucket = Tensor::cat(&pieces, 0)
            .to_device(group.device())
            .contiguous();
        group.allreduce_sum(&[&bucket]).map_err(error)?;
        let bucket = (bucket / world).to_device(device);
        let mut at = 0i64;
        for p in params {
            let n = p.numel() as i64;
            let mut g = p.grad();
            if g.defined() {
                let part = bucket.narrow(0, at, n).view_as(&g).to_kind(g.kind());
                g.copy_(&part);
            }
            at += n;
        }
        for t in terms.iter_mut() {
            let part = bucket.narrow(0, at, 1).reshape(t.size()).to_kind(t.kind());
            *t = part.to_device(t.device());
            at += 1;
        }
        Ok(())
    })
}
