//! Adam and AdamW over tch tensors, with state that can be saved (tch cannot save its own).

use std::collections::HashMap;

use tch::Tensor;

use crate::TrainError;

/// Adam (decoupled weight decay when `weight_decay > 0`: AdamW).
pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: i64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
}

impl Adam {
    /// Optimises the named parameters.
    pub fn new(params: Vec<(String, Tensor)>, betas: [f64; 2], weight_decay: f64) -> Self {
        let exp_avg = params
            .iter()
            .map(|(_, p)| p.zeros_like().detach())
            .collect();
        let exp_avg_sq = params
            .iter()
            .map(|(_, p)| p.zeros_like().detach())
            .collect();
        let (names, params) = params.into_iter().unzip();
        Self {
            names,
            params,
            exp_avg,
            exp_avg_sq,
            steps: 0,
            betas: (betas[0], betas[1]),
            eps: 1e-8,
            weight_decay,
        }
    }

    /// Clears the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// The parameters this optimiser updates.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The sum of every gradient element as a scalar tensor on the device (none without
    /// gradients): NaN or infinite exactly when some gradient is (or their sum overflows).
    pub fn gradient_sum(&self) -> Option<Tensor> {
        let sums: Vec<Tensor> = self
            .params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .map(|g| g.sum(tch::Kind::Float))
            .collect();
        (!sums.is_empty()).then(|| Tensor::stack(&sums, 0).sum(tch::Kind::Float))
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone.
    ///
    /// Written as in-place kernels (lerp, addcdiv) with two temporaries per parameter, the
    /// sequence of PyTorch's single-tensor Adam: each tensor op has a fixed dispatch cost, and
    /// the small networks of a CPU run have hundreds of parameter tensors.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.steps as i32);
        let bc2 = 1.0 - b2.powi(self.steps as i32);
        let step_size = lr / bc1;
        // p −= step_size · m / (√v / √bc2 + ε), with the scale folded into the denominator so
        // that one addcdiv_ (value 1) applies it: p += m / d, d = −(√v / √bc2 + ε) / step_size.
        let d_scale = -1.0 / (step_size * bc2.sqrt());
        let d_shift = -self.eps / step_size;
        tch::no_grad(|| {
            for ((p, m), v) in self
                .params
                .iter_mut()
                .zip(&mut self.exp_avg)
                .zip(&mut self.exp_avg_sq)
            {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = m.lerp_(&g, 1.0 - b1);
                let _ = v.lerp_(&g.square(), 1.0 - b2);
                let mut d = v.sqrt();
                let _ = d.g_mul_scalar_(d_scale);
                let _ = d.g_add_scalar_(d_shift);
                let _ = p.addcdiv_(m, &d);
            }
        });
    }

    /// Updates done so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// The moment buffers and step count as named tensors under `prefix`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.steps"), Tensor::from(self.steps))];
        for ((n, m), v) in self.names.iter().zip(&self.exp_avg).zip(&self.exp_avg_sq) {
            out.push((format!("{prefix}.exp_avg.{n}"), m.shallow_clone()));
            out.push((format!("{prefix}.exp_avg_sq.{n}"), v.shallow_clone()));
        }
        out
    }

    /// Restores the state saved by [`Adam::state`].
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
    ) -> Result<(), TrainError> {
        let get = |name: String, like: &Tensor| -> Result<Tensor, TrainError> {
            let t = tensors.get(&name).ok_or_else(|| {
                TrainError::Checkpoint(format!("optimizer tensor '{name}' is missing"))
            })?;
            if t.size() != like.size() {
                return Err(TrainError::Checkpoint(format!(
                    "optimizer tensor '{name}' has shape {:?}, expected {:?}",
                    t.size(),
                    like.size()
                )));
            }
            Ok(t.shallow_clone())
        };
        let steps = tensors.get(&format!("{prefix}.steps")).ok_or_else(|| {
            TrainError::Checkpoint(format!("optimizer tensor '{prefix}.steps' is missing"))
        })?;
        self.steps = steps.int64_value(&[]);
        tch::no_grad(|| -> Result<(), TrainError> {
            for i in 0..self.names.len() {
                let n = self.names[i].clone();
                let m = get(format!("{prefix}.exp_avg.{n}"), &self.exp_avg[i])?;
                let v = get(format!("{prefix}.exp_avg_sq.{n}"), &self.exp_avg_sq[i])?;
                let device = self.exp_avg[i].device();
                self.exp_avg[i].copy_(&m.to_device(device));
                self.exp_avg_sq[i].copy_(&v.to_device(device));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn adam_matches_the_textbook_update() {
        // One parameter, gradient g = 2p at p = 1: after one step with bias correction the
        // update is lr · m̂/(√v̂ + ε) = lr · g/(|g| + ε) ≈ lr.
        let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut adam = Adam::new(vec![("p".into(), p.shallow_clone())], [0.9, 0.999], 0.0);
        (&p * &p).sum(Kind::Float).backward();
        adam.step(0.1);
        assert!((p.double_value(&[0]) - 0.9).abs() < 1e-6);
        // Second step: g = 1.8; m = 0.9·0.2·… computed by hand.
        adam.zero_grad();
        (&p * &p).sum(Kind::Float).backward();
        adam.step(0.1);
        let (g1, g2): (f64, f64) = (2.0, 1.8);
        let m = 0.9 * (0.1 * g1) + 0.1 * g2;
        let v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2;
        let upd = 0.1 * (m / (1.0 - 0.81)) / ((v / (1.0 - 0.999f64.powi(2))).sqrt() + 1e-8);
        assert!(
            (p.double_value(&[0]) - (0.9 - upd)).abs() < 1e-6,
            "{}",
            p.double_value(&[0])
        );
    }

    #[test]
    fn state_round_trips() {
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let p = Tensor::randn([3, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut a = Adam::new(vec![("w".into(), p.shallow_clone())], [0.5, 0.999], 0.01);
        p.square().sum(Kind::Float).backward();
        a.step(0.01);
        let saved: HashMap<String, Tensor> = a
            .state("g")
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let q = p.detach().copy().set_requires_grad(true);
        let mut b = Adam::new(vec![("w".into(), q.shallow_clone())], [0.5, 0.999], 0.01);
        b.load_state(&saved, "g").unwrap();
        assert_eq!(b.steps(), 1);
        a.zero_grad();
        p.square().sum(Kind::Float).backward();
        q.square().sum(Kind::Float).backward();
        a.step(0.01);
        b.step(0.01);
        assert!(p.equal(&q));
        let mut missing: HashMap<String, Tensor> = saved
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        missing.remove("g.exp_avg.w");
        let err = b.load_state(&missing, "g").err().unwrap().to_string();
        assert!(err.contains("g.exp_avg.w"), "{err}");
    }
}
