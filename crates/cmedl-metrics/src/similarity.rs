//! How close an image is to a reference image of the same patient on the same grid (e.g. a
//! pseudo-MRI against the real MRI): both are first scaled to [0, 1] by their own 0.5 and 99.5
//! percentiles (clipped), since MRI has no absolute unit; then MAE, PSNR and SSIM are taken on
//! the scaled images, and the tumour's contrast-to-noise ratio in each.
//!
//! SSIM follows Wang et al. (2004): 7×7 uniform windows inside each axial slice, K₁ = 0.01,
//! K₂ = 0.03, dynamic range 1, averaged over all window positions of all slices.
//!
//! ```
//! use cmedl_metrics::similarity::{similarity, SimilarityOptions};
//!
//! let shape = [8, 8, 1];
//! let image: Vec<f32> = (0..64).map(|v| v as f32).collect();
//! let s = similarity(&image, &image, None, shape, &SimilarityOptions::default()).unwrap();
//! assert_eq!((s.mae, s.ssim), (0.0, 1.0));
//! assert!(s.psnr.is_infinite());
//! ```

use serde::{Deserialize, Serialize};

use crate::{float_serde, MetricsError};

/// Settings of [`similarity`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimilarityOptions {
    /// Percentiles mapped to 0 and 1 before comparing.
    pub percentiles: [f64; 2],
    /// Voxels (in-plane and through-plane, Chebyshev) of the ring around the tumour that is its
    /// background for the CNR.
    pub ring: usize,
}

impl Default for SimilarityOptions {
    fn default() -> Self {
        Self {
            percentiles: [0.5, 99.5],
            ring: 2,
        }
    }
}

/// Similarity of an image to its reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Mean absolute difference of the scaled images.
    #[serde(with = "float_serde")]
    pub mae: f64,
    /// Peak signal-to-noise ratio in dB (peak 1; infinite when identical).
    #[serde(with = "float_serde")]
    pub psnr: f64,
    /// Mean structural similarity.
    #[serde(with = "float_serde")]
    pub ssim: f64,
    /// Tumour CNR in the image: |mean(tumour) − mean(ring)| / sd(ring) (NaN without a tumour).
    #[serde(with = "float_serde")]
    pub tumour_cnr: f64,
    /// The same in the reference.
    #[serde(with = "float_serde")]
    pub reference_tumour_cnr: f64,
}

/// Values scaled to [0, 1] by two percentiles of their own, clipped.
fn scaled(values: &[f32], percentiles: [f64; 2]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let lo = crate::stats::quantile(&sorted, percentiles[0] / 100.0);
    let hi = crate::stats::quantile(&sorted, percentiles[1] / 100.0);
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .map(|&v| ((f64::from(v) - lo) / span).clamp(0.0, 1.0))
        .collect()
}

/// Mean SSIM over 7×7 windows of each slice (slices smaller than 7×7: one window each).
fn ssim(a: &[f64], b: &[f64], shape: [usize; 3]) -> f64 {
    let [nx, ny, nz] = shape;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (wx, wy) = (7.min(nx), 7.min(ny));
    let (mut total, mut count) = (0.0, 0usize);
    for k in 0..nz {
        for j0 in 0..=ny - wy {
            for i0 in 0..=nx - wx {
                let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for j in j0..j0 + wy {
                    for i in i0..i0 + wx {
                        let n = i + nx * (j + ny * k);
                        let (x, y) = (a[n], b[n]);
                        sa += x;
                        sb += y;
                        saa += x * x;
                        sbb += y * y;
                        sab += x * y;
                    }
                }
                let m = (wx * wy) as f64;
                let (ma, mb) = (sa / m, sb / m);
                let va = saa / m - ma * ma;
                let vb = sbb / m - mb * mb;
                let cov = sab / m - ma * mb;
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                count += 1;
            }
        }
    }
    total / count.max(1) as f64
}

/// |mean(inside) − mean(ring)| / sd(ring), the ring being the voxels within `ring` voxels of the
/// mask but outside it.
fn tumour_cnr(values: &[f64], mask: &[bool], shape: [usize; 3], ring: usize) -> f64 {
    let [nx, ny, nz] = shape;
    let r = ring as i64;
    let mut near = vec![false; mask.len()];
    for (v, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (i, j, k) = (
            (v % nx) as i64,
            ((v / nx) % ny) as i64,
            (v / (nx * ny)) as i64,
        );
        for dk in -r..=r {
            for dj in -r..=r {
                for di in -r..=r {
                    let (a, b, c) = (i + di, j + dj, k + dk);
                    if a >= 0 && b >= 0 && c >= 0 && a < nx as i64 && b < ny as i64 && c < nz as i64
                    {
                        near[a as usize + nx * (b as usize + ny * c as usize)] = true;
                    }
                }
            }
        }
    }
    let inside: Vec<f64> = (0..mask.len())
        .filter(|&v| mask[v])
        .map(|v| values[v])
        .collect();
    let around: Vec<f64> = (0..mask.len())
        .filter(|&v| near[v] && !mask[v])
        .map(|v| values[v])
        .collect();
    if inside.is_empty() || around.len() < 2 {
        return f64::NAN;
    }
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let mb = mean(&around);
    let sd =
        (around.iter().map(|v| (v - mb).powi(2)).sum::<f64>() / (around.len() - 1) as f64).sqrt();
    (mean(&inside) - mb).abs() / sd.max(1e-12)
}

/// Similarity of `image` to `reference` on a grid of `shape`; `tumour` (same grid) gives the
/// tumour for the CNRs.
pub fn similarity(
    image: &[f32],
    reference: &[f32],
    tumour: Option<&[bool]>,
    shape: [usize; 3],
    options: &SimilarityOptions,
) -> Result<Similarity, MetricsError> {
    let n: usize = shape.iter().product();
    if image.len() != n || reference.len() != n || tumour.is_some_and(|t| t.len() != n) {
        return Err(MetricsError::ShapeMismatch {
            shape: shape.to_vec(),
            expected: n,
            pred: image.len(),
            reference: reference.len(),
        });
    }
    let (a, b) = (
        scaled(image, options.percentiles),
        scaled(reference, options.percentiles),
    );
    let mae = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / n.max(1) as f64;
    let mse = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n.max(1) as f64;
    let (cnr, reference_cnr) = match tumour {
        Some(t) => (
            tumour_cnr(&a, t, shape, options.ring),
            tumour_cnr(&b, t, shape, options.ring),
        ),
        None => (f64::NAN, f64::NAN),
    };
    Ok(Similarity {
        mae,
        psnr: -10.0 * mse.log10(),
        ssim: ssim(&a, &b, shape),
        tumour_cnr: cnr,
        reference_tumour_cnr: reference_cnr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_maps_percentiles_to_the_unit_interval() {
        let v: Vec<f32> = (0..=100).map(|x| x as f32).collect();
        let s = scaled(&v, [0.0, 100.0]);
        assert_eq!((s[0], s[50], s[100]), (0.0, 0.5, 1.0));
        // A brighter copy scales to the same values: intensity units do not matter.
        let brighter: Vec<f32> = v.iter().map(|x| 3.0 * x + 7.0).collect();
        assert_eq!(scaled(&brighter, [0.0, 100.0]), s);
    }

    #[test]
    fn known_differences_by_hand() {
        // Reference 0..=100 along x (one row); half of it scales to the same [0, 1] ramp.
        let shape = [101, 1, 1];
        let reference: Vec<f32> = (0..=100).map(|x| x as f32).collect();
        let half: Vec<f32> = reference.iter().map(|x| x / 2.0).collect();
        let opts = SimilarityOptions {
            percentiles: [0.0, 100.0],
            ring: 1,
        };
        let s = similarity(&half, &reference, None, shape, &opts).unwrap();
        assert!(s.mae.abs() < 1e-12 && s.psnr.is_infinite());
        let inverted: Vec<f32> = reference.iter().map(|x| 100.0 - x).collect();
        let s = similarity(&inverted, &reference, None, shape, &opts).unwrap();
        // |1 − 2x| averaged over x = i/100: (Σ|100 − 2i|)/100/101 = 5100/10100.
        assert!((s.mae - 5100.0 / 10100.0).abs() < 1e-12, "{}", s.mae);
        // Each 7-voxel window is anti-correlated, but its variance (≈ 4e-4) is below C₂
        // (9e-4), which keeps SSIM just above 0 rather than at −1.
        assert!(
            s.ssim < 0.1,
            "an inverted ramp is far from its reference: {}",
            s.ssim
        );
        assert!(s.tumour_cnr.is_nan());
    }

    #[test]
    fn tumour_cnr_by_hand() {
        // A 5×5 slice: tumour voxel in the centre at 10, ring (8 neighbours) alternating 0 and
        // 2 around mean 1, the rest 1.
        let shape = [5, 5, 1];
        let mut v = vec![1.0; 25];
        v[12] = 10.0;
        for (n, &i) in [6, 7, 8, 11, 13, 16, 17, 18].iter().enumerate() {
            v[i] = if n % 2 == 0 { 0.0 } else { 2.0 };
        }
        let mask: Vec<bool> = (0..25).map(|i| i == 12).collect();
        // Ring mean 1, sample sd sqrt(8/7): CNR = 9 / sqrt(8/7).
        let cnr = tumour_cnr(&v, &mask, shape, 1);
        assert!((cnr - 9.0 / (8.0f64 / 7.0).sqrt()).abs() < 1e-12, "{cnr}");
        let image: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        let s = similarity(
            &image,
            &image,
            Some(&mask),
            shape,
            &SimilarityOptions::default(),
        )
        .unwrap();
        assert_eq!(s.tumour_cnr, s.reference_tumour_cnr);
        assert!(similarity(
            &image,
            &image[..24],
            None,
            shape,
            &SimilarityOptions::default()
        )
        .is_err());
    }
}
