//! Intensity normalisation to [-1, 1]: a fixed window for CT, percentiles for MRI.

use serde::{Deserialize, Serialize};

/// A linear map of `[lo, hi]` onto `[-1, 1]`, clipping outside.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Value mapped to −1.
    pub lo: f32,
    /// Value mapped to +1.
    pub hi: f32,
}

impl Window {
    /// The CT window of the method's defaults: [−1000, 500] HU.
    pub const CT: Window = Window {
        lo: -1000.0,
        hi: 500.0,
    };

    /// Maps one value (NaN maps to −1, the window's floor).
    pub fn apply(&self, v: f32) -> f32 {
        if v.is_nan() {
            return -1.0;
        }
        let x = (v.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo);
        2.0 * x - 1.0
    }

    /// Maps back from [-1, 1].
    pub fn invert(&self, x: f32) -> f32 {
        self.lo + (x.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.hi - self.lo)
    }

    /// The window between the `p_lo` and `p_hi` percentiles (0–100) of the finite values.
    pub fn from_percentiles(values: &[f32], p_lo: f64, p_hi: f64) -> Window {
        let mut v: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return Window { lo: 0.0, hi: 1.0 };
        }
        let pick = |v: &mut Vec<f32>, p: f64| {
            let last = v.len() - 1;
            let idx = (((p / 100.0) * last as f64).round() as usize).min(last);
            let (_, x, _) = v.select_nth_unstable_by(idx, f32::total_cmp);
            *x
        };
        let lo = pick(&mut v, p_lo);
        let hi = pick(&mut v, p_hi);
        if hi > lo {
            Window { lo, hi }
        } else {
            Window { lo, hi: lo + 1.0 }
        }
    }

    /// Maps every value.
    pub fn apply_all(&self, values: &[f32]) -> Vec<f32> {
        values.iter().map(|&v| self.apply(v)).collect()
    }
}
