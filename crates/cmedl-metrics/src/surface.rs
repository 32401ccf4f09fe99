//! Surface distances between two masks, in the surface-element convention.

use crate::distance::squared_edt;
use crate::surface_element::area_table;
use crate::MetricsError;

/// Border elements of both masks with their areas and distances to the other mask's border.
#[derive(Clone, Debug, Default)]
pub struct SurfaceDistances {
    /// For each border element of the reference: (distance in mm to the prediction's border, area).
    pub ref_to_pred: Vec<(f64, f64)>,
    /// For each border element of the prediction: (distance in mm to the reference's border, area).
    pub pred_to_ref: Vec<(f64, f64)>,
}

/// Checks that the masks and spacing describe one grid.
pub(crate) fn check_grid<const D: usize>(
    pred_len: usize,
    ref_len: usize,
    shape: [usize; D],
    spacing: [f64; D],
) -> Result<(), MetricsError> {
    let n: usize = shape.iter().product();
    if pred_len != n || ref_len != n {
        return Err(MetricsError::ShapeMismatch {
            shape: shape.to_vec(),
            expected: n,
            pred: pred_len,
            reference: ref_len,
        });
    }
    if let Some(s) = spacing.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(MetricsError::BadSpacing(*s));
    }
    if !(D == 2 || D == 3) {
        return Err(MetricsError::Dimension(D));
    }
    Ok(())
}

/// Computes border elements, their areas and their distances for two masks on one grid.
///
/// `shape[0]` is the fastest-varying axis of `pred` and `reference`; `spacing` is in mm per
/// axis in the same order. Work is confined to the bounding box of both masks.
pub fn surface_distances<const D: usize>(
    pred: &[bool],
    reference: &[bool],
    shape: [usize; D],
    spacing: [f64; D],
) -> Result<SurfaceDistances, MetricsError> {
    check_grid(pred.len(), reference.len(), shape, spacing)?;
    let Some((lo, hi)) = bounding_box(pred, reference, shape) else {
        return Ok(SurfaceDistances::default());
    };
    // Corner grid: one corner per voxel of the box plus one on the high side of each axis.
    let mut corners = [0usize; D];
    for a in 0..D {
        corners[a] = hi[a] - lo[a] + 2;
    }
    let table = area_table(spacing);
    let code_p = neighbour_codes(pred, shape, lo, corners);
    let code_r = neighbour_codes(reference, shape, lo, corners);
    let full = (1usize << (1 << D)) - 1;
    let border = |codes: &[u16]| -> Vec<bool> {
        codes
            .iter()
            .map(|&c| c != 0 && c as usize != full)
            .collect()
    };
    let (border_p, border_r) = (border(&code_p), border(&code_r));
    let dist_to_p = squared_edt(&border_p, corners, spacing);
    let dist_to_r = squared_edt(&border_r, corners, spacing);
    let collect = |own: &[bool], codes: &[u16], dist: &[f64]| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = own
            .iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(i, _)| (dist[i].sqrt(), table[codes[i] as usize]))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        v
    };
    Ok(SurfaceDistances {
        ref_to_pred: collect(&border_r, &code_r, &dist_to_p),
        pred_to_ref: collect(&border_p, &code_p, &dist_to_r),
    })
}

/// Inclusive bounding box of the union of both masks, or `None` when both are empty.
fn bounding_box<const D: usize>(
    a: &[bool],
    b: &[bool],
    shape: [usize; D],
) -> Option<([usize; D], [usize; D])> {
    let mut lo = shape;
    let mut hi = [0usize; D];
    let mut any = false;
    for (i, _) in a.iter().zip(b).enumerate().filter(|(_, (x, y))| **x || **y) {
        any = true;
        let mut rest = i;
        for axis in 0..D {
            let c = rest % shape[axis];
            rest /= shape[axis];
            lo[axis] = lo[axis].min(c);
            hi[axis] = hi[axis].max(c);
        }
    }
    any.then_some((lo, hi))
}

/// Neighbour code of every corner of the box starting at voxel `lo`.
fn neighbour_codes<const D: usize>(
    mask: &[bool],
    shape: [usize; D],
    lo: [usize; D],
    corners: [usize; D],
) -> Vec<u16> {
    let n: usize = corners.iter().product();
    let mut codes = vec![0u16; n];
    // Each set voxel of the box contributes its bit to the 2^D corners around it.
    let mut box_shape = corners;
    for s in box_shape.iter_mut() {
        *s -= 1;
    }
    let box_len: usize = box_shape.iter().product();
    for local in 0..box_len {
        let mut rest = local;
        let mut v = [0usize; D];
        let mut global = 0;
        let mut stride = 1;
        for axis in 0..D {
            v[axis] = rest % box_shape[axis];
            rest /= box_shape[axis];
            global += (v[axis] + lo[axis]) * stride;
            stride *= shape[axis];
        }
        if !mask[global] {
            continue;
        }
        // Voxel v sits at offset o of corner c = v + 1 - o.
        for o in 0..(1usize << D) {
            let mut index = 0;
            let mut cstride = 1;
            for axis in 0..D {
                let c = v[axis] + 1 - ((o >> axis) & 1);
                index += c * cstride;
                cstride *= corners[axis];
            }
            codes[index] |= 1 << o;
        }
    }
    codes
}

impl SurfaceDistances {
    /// Whether the reference has no border (an empty reference mask).
    pub fn reference_empty(&self) -> bool {
        self.ref_to_pred.is_empty()
    }

    /// Whether the prediction has no border (an empty predicted mask).
    pub fn prediction_empty(&self) -> bool {
        self.pred_to_ref.is_empty()
    }

    /// Area-weighted mean distances: (reference → prediction, prediction → reference).
    pub fn average_surface_distance(&self) -> (f64, f64) {
        (
            weighted_mean(&self.ref_to_pred),
            weighted_mean(&self.pred_to_ref),
        )
    }

    /// Hausdorff distance at `percent` (100: the maximum), the larger of both directions.
    pub fn hausdorff(&self, percent: f64) -> f64 {
        percentile(&self.ref_to_pred, percent).max(percentile(&self.pred_to_ref, percent))
    }

    /// Share of each border's area within `tolerance` mm of the other: (reference, prediction).
    pub fn surface_overlap(&self, tolerance: f64) -> (f64, f64) {
        let share = |v: &[(f64, f64)]| within(v, tolerance) / total(v);
        (share(&self.ref_to_pred), share(&self.pred_to_ref))
    }

    /// Normalised surface Dice at `tolerance` mm.
    pub fn surface_dice(&self, tolerance: f64) -> f64 {
        let num = within(&self.ref_to_pred, tolerance) + within(&self.pred_to_ref, tolerance);
        num / (total(&self.ref_to_pred) + total(&self.pred_to_ref))
    }
}

fn total(v: &[(f64, f64)]) -> f64 {
    v.iter().map(|e| e.1).sum()
}

fn within(v: &[(f64, f64)], tolerance: f64) -> f64 {
    v.iter().filter(|e| e.0 <= tolerance).map(|e| e.1).sum()
}

fn weighted_mean(v: &[(f64, f64)]) -> f64 {
    if v.is_empty() {
        return f64::INFINITY;
    }
    v.iter().map(|e| e.0 * e.1).sum::<f64>() / total(v)
}

/// First distance (of the sorted list) whose cumulative area share reaches `percent`.
fn percentile(v: &[(f64, f64)], percent: f64) -> f64 {
    let Some(last) = v.last() else {
        return f64::INFINITY;
    };
    let sum = total(v);
    let target = percent / 100.0;
    let mut cum = 0.0;
    for e in v {
        cum += e.1;
        if cum / sum >= target {
            return e.0;
        }
    }
    last.0
}
