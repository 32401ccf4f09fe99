//! Segmentation metrics as the literature defines them: Dice, normalised surface Dice at a
//! tolerance, HD95, Hausdorff distance and average surface distances on 2-D and 3-D masks with
//! anisotropic spacing, plus the summaries and paired tests used to compare two methods.
//!
//! Surfaces follow the surface-element convention of DeepMind's `surface-distance`: border
//! elements sit on voxel corners, carry an area (a length in 2-D) scaled by the spacing, and
//! distances come from an exact Euclidean distance transform computed on the bounding box of
//! both masks only. The element areas equal that package's table for every neighbour code in
//! 2-D and 3-D at any spacing (derived here from two rules, see [`area_table`]), so surface
//! Dice, HD95 and the other distances agree with it. Masks are flat slices with `shape[0]` the
//! fastest-varying axis (the NIfTI order), `spacing` in mm in the same axis order.
//!
//! Empty masks: both empty → every metric is NaN; one empty → Dice 0, surface Dice 0, HD95,
//! HD and ASD +inf.
//!
//! ```
//! use cmedl_metrics::{case_metrics, MetricOptions};
//!
//! // A 1×2 voxel reference and a 1×3 prediction on a 6×6 grid with 2 mm × 1 mm pixels.
//! let mut reference = vec![false; 36];
//! let mut prediction = vec![false; 36];
//! for (x, y) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
//!     reference[x + 6 * y] = true;
//! }
//! for (x, y) in [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)] {
//!     prediction[x + 6 * y] = true;
//! }
//! let m = case_metrics(&prediction, &reference, [6, 6], [2.0, 1.0], &MetricOptions::default())?;
//! assert!((m.dice - 0.8).abs() < 1e-12);
//! assert_eq!(m.hd95, 2.0);
//! # Ok::<(), cmedl_metrics::MetricsError>(())
//! ```

mod distance;
pub mod float_serde;
pub mod lesion;
pub mod similarity;
pub mod stats;
mod surface;
mod surface_element;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use distance::squared_edt;
pub use surface::{surface_distances, SurfaceDistances};
pub use surface_element::area_table;

/// Errors of the metric functions.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// The masks do not have the number of voxels the shape says.
    #[error("masks do not match the grid {shape:?} ({expected} voxels): prediction has {pred}, reference has {reference}")]
    ShapeMismatch {
        /// The grid shape.
        shape: Vec<usize>,
        /// Voxels the shape holds.
        expected: usize,
        /// Voxels of the prediction.
        pred: usize,
        /// Voxels of the reference.
        reference: usize,
    },
    /// A spacing is zero, negative or not finite.
    #[error("voxel spacing must be positive and finite, got {0}")]
    BadSpacing(f64),
    /// Only 2-D and 3-D masks are supported.
    #[error("only 2-D and 3-D masks are supported, got {0} dimensions")]
    Dimension(usize),
}

/// Options shared by the metric functions.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricOptions {
    /// Tolerance of the surface Dice in mm.
    pub tolerance_mm: f64,
    /// Percentile of the robust Hausdorff distance.
    pub hausdorff_percent: f64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self {
            tolerance_mm: 2.0,
            hausdorff_percent: 95.0,
        }
    }
}

/// All metrics of one case and one label.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct CaseMetrics {
    /// Dice similarity coefficient.
    #[serde(with = "float_serde")]
    pub dice: f64,
    /// Normalised surface Dice at the tolerance of the options.
    #[serde(with = "float_serde")]
    pub surface_dice: f64,
    /// Robust Hausdorff distance (percentile of the options) in mm.
    #[serde(with = "float_serde")]
    pub hd95: f64,
    /// Hausdorff distance (maximum) in mm.
    #[serde(with = "float_serde")]
    pub hd: f64,
    /// Area-weighted mean distance from the reference border to the prediction's, in mm.
    #[serde(with = "float_serde")]
    pub asd_ref_to_pred: f64,
    /// Area-weighted mean distance from the prediction border to the reference's, in mm.
    #[serde(with = "float_serde")]
    pub asd_pred_to_ref: f64,
    /// Voxels in the reference.
    pub ref_voxels: usize,
    /// Voxels in the prediction.
    pub pred_voxels: usize,
}

/// Dice coefficient 2|P∩G| / (|P| + |G|); NaN when both masks are empty.
pub fn dice(pred: &[bool], reference: &[bool]) -> f64 {
    let (mut both, mut p, mut r) = (0usize, 0usize, 0usize);
    for (&a, &b) in pred.iter().zip(reference) {
        both += usize::from(a && b);
        p += usize::from(a);
        r += usize::from(b);
    }
    if p + r == 0 {
        f64::NAN
    } else {
        2.0 * both as f64 / (p + r) as f64
    }
}

/// Every metric for one binary prediction against one binary reference.
pub fn case_metrics<const D: usize>(
    pred: &[bool],
    reference: &[bool],
    shape: [usize; D],
    spacing: [f64; D],
    options: &MetricOptions,
) -> Result<CaseMetrics, MetricsError> {
    let sd = surface_distances(pred, reference, shape, spacing)?;
    let pred_voxels = pred.iter().filter(|&&v| v).count();
    let ref_voxels = reference.iter().filter(|&&v| v).count();
    let d = dice(pred, reference);
    if pred_voxels == 0 && ref_voxels == 0 {
        return Ok(CaseMetrics {
            dice: f64::NAN,
            surface_dice: f64::NAN,
            hd95: f64::NAN,
            hd: f64::NAN,
            asd_ref_to_pred: f64::NAN,
            asd_pred_to_ref: f64::NAN,
            ref_voxels,
            pred_voxels,
        });
    }
    let (asd_ref_to_pred, asd_pred_to_ref) = sd.average_surface_distance();
    Ok(CaseMetrics {
        dice: d,
        surface_dice: sd.surface_dice(options.tolerance_mm),
        hd95: sd.hausdorff(options.hausdorff_percent),
        hd: sd.hausdorff(100.0),
        asd_ref_to_pred,
        asd_pred_to_ref,
        ref_voxels,
        pred_voxels,
    })
}

/// Metrics of each label in `labels` for two label maps on one grid, computed in parallel.
pub fn label_metrics<const D: usize>(
    pred: &[u8],
    reference: &[u8],
    shape: [usize; D],
    spacing: [f64; D],
    labels: &[u8],
    options: &MetricOptions,
) -> Result<Vec<(u8, CaseMetrics)>, MetricsError> {
    surface::check_grid(pred.len(), reference.len(), shape, spacing)?;
    labels
        .par_iter()
        .map(|&label| {
            let p: Vec<bool> = pred.iter().map(|&v| v == label).collect();
            let r: Vec<bool> = reference.iter().map(|&v| v == label).collect();
            case_metrics(&p, &r, shape, spacing, options).map(|m| (label, m))
        })
        .collect()
}

#[cfg(test)]
mod tests;
