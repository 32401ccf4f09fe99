//! Automatic mixed precision (autocast) with a chosen dtype, which tch 0.24 cannot set: inside
//! [`with_autocast`], eligible operations (convolutions, matrix products) run in bf16 or fp16
//! while the weights, their gradients and the optimiser state stay fp32.

use tch::{Device, Kind};

use crate::DistError;

/// The autocast dtypes.
fn dtype_code(kind: Kind) -> Result<i32, DistError> {
    match kind {
        Kind::BFloat16 => Ok(0),
        Kind::Half => Ok(1),
        other => Err(DistError::Env(format!(
            "autocast runs in bfloat16 or float16, not {other:?}"
        ))),
    }
}

/// Restores the autocast state it replaced when dropped (also while unwinding).
struct Restore {
    device: i32,
    enabled: bool,
    dtype: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = crate::ffi::autocast_exit(self.device, self.enabled, self.dtype) {
            tracing::warn!("restoring the autocast state failed: {e}");
        }
    }
}

/// Runs `f` with autocast to `kind` (bfloat16 or float16) on `device`'s type.
pub fn with_autocast<T>(device: Device, kind: Kind, f: impl FnOnce() -> T) -> Result<T, DistError> {
    let code = dtype_code(kind)?;
    let device = if device.is_cuda() { 1 } else { 0 };
    let (enabled, dtype) =
        crate::ffi::autocast_enter(device, code).map_err(|message| DistError::Collective {
            op: "autocast",
            message,
        })?;
    let _restore = Restore {
        device,
        enabled,
        dtype,
    };
    Ok(f())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn matrix_products_run_in_bf16_inside_and_fp32_outside() {
        let a = Tensor::randn([8, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 8], (Kind::Float, Device::Cpu));
        let inside = with_autocast(Device::Cpu, Kind::BFloat16, || a.matmul(&b)).unwrap();
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&b).kind(), Kind::Float, "restored afterwards");
        // Nested regions restore the outer one.
        let kinds = with_autocast(Device::Cpu, Kind::BFloat16, || {
            let inner = with_autocast(Device::Cpu, Kind::BFloat16, || a.matmul(&b).kind()).unwrap();
            (inner, a.matmul(&b).kind())
        })
        .unwrap();
        assert_eq!(kinds, (Kind::BFloat16, Kind::BFloat16));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        let diff = (inside.to_kind(Kind::Float) - a.matmul(&b))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 0.1, "bf16 keeps about 3 significant digits ({diff})");
        assert!(with_autocast(Device::Cpu, Kind::Double, || ()).is_err());
    }
}
