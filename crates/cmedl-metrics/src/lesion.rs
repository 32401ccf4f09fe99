//! Lesion-wise evaluation: reference lesions are the 26-connected components of a 3-D mask
//! (voxels touching by a face, an edge or a corner belong together), each scored on its own.
//!
//! For each reference lesion, the predicted components that touch its neighbourhood (the lesion
//! grown by [`LesionOptions::neighbourhood`] voxels, Chebyshev distance) are its prediction, so
//! another lesion's prediction does not count against it:
//! - per-lesion Dice = 2 |lesion ∩ its prediction| / (|lesion| + |its prediction|);
//! - detected when the prediction covers at least one voxel of the lesion and at least
//!   [`LesionOptions::hit_fraction`] of its voxels;
//! - a predicted component that touches no reference lesion's neighbourhood is a false positive.
//!
//! ```
//! use cmedl_metrics::lesion::{lesion_metrics, LesionOptions};
//!
//! // A row of 7 voxels: reference lesions at 0–1 and 5–6, a prediction at 1–2.
//! let reference = [true, true, false, false, false, true, true];
//! let pred = [false, true, true, false, false, false, false];
//! let e = lesion_metrics(&pred, &reference, [7, 1, 1], [1.0; 3], &LesionOptions::default())?;
//! assert_eq!(e.lesions.len(), 2);
//! assert!(e.lesions[0].detected && !e.lesions[1].detected);
//! assert_eq!(e.lesions[0].dice, 0.5); // 2·1 / (2 + 2)
//! # Ok::<(), cmedl_metrics::MetricsError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::{float_serde, MetricsError};

/// 26-connected components of a 3-D mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Components {
    /// Component of each voxel: 0 outside the mask, 1..=n inside, numbered in scan order.
    pub labels: Vec<u32>,
    /// Voxels of each component (index 0 is component 1).
    pub sizes: Vec<usize>,
}

impl Components {
    /// The number of components.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }
}

/// The offsets of the 26 neighbours within `reach` voxels (Chebyshev distance), the centre
/// excluded.
fn offsets(reach: i64) -> Vec<[i64; 3]> {
    let mut out = Vec::new();
    for dk in -reach..=reach {
        for dj in -reach..=reach {
            for di in -reach..=reach {
                if (di, dj, dk) != (0, 0, 0) {
                    out.push([di, dj, dk]);
                }
            }
        }
    }
    out
}

/// The neighbours of voxel `v` at `offsets` that lie inside the grid.
fn neighbours<'a>(
    v: usize,
    shape: [usize; 3],
    offsets: &'a [[i64; 3]],
) -> impl Iterator<Item = usize> + 'a {
    let [nx, ny, nz] = shape;
    let (i, j, k) = (v % nx, (v / nx) % ny, v / (nx * ny));
    offsets.iter().filter_map(move |[di, dj, dk]| {
        let (a, b, c) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
        let inside = a >= 0 && b >= 0 && c >= 0 && a < nx as i64 && b < ny as i64 && c < nz as i64;
        inside.then(|| a as usize + nx * (b as usize + ny * c as usize))
    })
}

/// The 26-connected components of `mask` on a grid of `shape` (x fastest).
pub fn connected_components(mask: &[bool], shape: [usize; 3]) -> Components {
    let near = offsets(1);
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32 + 1;
        labels[start] = id;
        stack.push(start);
        let mut size = 0;
        while let Some(v) = stack.pop() {
            size += 1;
            for n in neighbours(v, shape, &near) {
                if mask[n] && labels[n] == 0 {
                    labels[n] = id;
                    stack.push(n);
                }
            }
        }
        sizes.push(size);
    }
    Components { labels, sizes }
}

/// How lesions are matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LesionOptions {
    /// Voxels a lesion is grown by when looking for the predicted components that are its
    /// prediction (Chebyshev distance; 0: only components overlapping it).
    pub neighbourhood: usize,
    /// Share of a lesion's voxels its prediction must cover for a hit (at least one voxel
    /// always).
    pub hit_fraction: f64,
}

impl Default for LesionOptions {
    fn default() -> Self {
        Self {
            neighbourhood: 1,
            hit_fraction: 0.0,
        }
    }
}

/// One reference lesion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lesion {
    /// Voxels of the lesion.
    pub voxels: usize,
    /// Volume in mm³.
    pub volume_mm3: f64,
    /// Centroid in voxel coordinates (i, j, k).
    pub centroid: [f64; 3],
    /// Dice of the lesion against its prediction (0 when missed).
    #[serde(with = "float_serde")]
    pub dice: f64,
    /// Lesion voxels the prediction covers.
    pub covered: usize,
    /// Whether the lesion counts as detected.
    pub detected: bool,
}

/// Lesion-wise results of one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionEvaluation {
    /// The reference lesions, in scan order of their first voxel.
    pub lesions: Vec<Lesion>,
    /// Predicted components.
    pub predicted_components: usize,
    /// Predicted components that touch no reference lesion's neighbourhood.
    pub false_positives: usize,
}

/// Lesion-wise metrics of a binary prediction against a binary reference.
pub fn lesion_metrics(
    pred: &[bool],
    reference: &[bool],
    shape: [usize; 3],
    spacing: [f64; 3],
    options: &LesionOptions,
) -> Result<LesionEvaluation, MetricsError> {
    let n: usize = shape.iter().product();
    if pred.len() != n || reference.len() != n {
        return Err(MetricsError::ShapeMismatch {
            shape: shape.to_vec(),
            expected: n,
            pred: pred.len(),
            reference: reference.len(),
        });
    }
    if let Some(&s) = spacing.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(MetricsError::BadSpacing(s));
    }
    let refs = connected_components(reference, shape);
    let preds = connected_components(pred, shape);
    let reach = offsets(options.neighbourhood as i64);
    let voxel_mm3 = spacing.iter().product::<f64>();
    // Per reference lesion: its voxels, the predicted components near it.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); refs.count()];
    for (v, &l) in refs.labels.iter().enumerate() {
        if l > 0 {
            members[l as usize - 1].push(v);
        }
    }
    let mut matched = vec![false; preds.count()];
    let mut lesions = Vec::with_capacity(refs.count());
    for voxels in &members {
        let mut near: Vec<u32> = Vec::new();
        let mut covered = 0;
        let mut centroid = [0.0; 3];
        for &v in voxels {
            let (i, j, k) = (
                v % shape[0],
                (v / shape[0]) % shape[1],
                v / (shape[0] * shape[1]),
            );
            centroid[0] += i as f64;
            centroid[1] += j as f64;
            centroid[2] += k as f64;
            if preds.labels[v] > 0 {
                covered += 1;
                near.push(preds.labels[v]);
            }
            near.extend(
                neighbours(v, shape, &reach)
                    .map(|u| preds.labels[u])
                    .filter(|&p| p > 0),
            );
        }
        near.sort_unstable();
        near.dedup();
        let predicted: usize = near.iter().map(|&p| preds.sizes[p as usize - 1]).sum();
        for &p in &near {
            matched[p as usize - 1] = true;
        }
        let size = voxels.len();
        lesions.push(Lesion {
            voxels: size,
            volume_mm3: size as f64 * voxel_mm3,
            centroid: centroid.map(|c| c / size as f64),
            dice: 2.0 * covered as f64 / (size + predicted) as f64,
            covered,
            detected: covered > 0 && covered as f64 >= options.hit_fraction * size as f64,
        });
    }
    Ok(LesionEvaluation {
        lesions,
        predicted_components: preds.count(),
        false_positives: matched.iter().filter(|m| !**m).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6×4×2 grid from a picture of its two slices (rows top to bottom are j = 0..4).
    fn grid(slices: [&str; 2]) -> Vec<bool> {
        let mut out = vec![false; 6 * 4 * 2];
        for (k, s) in slices.iter().enumerate() {
            for (j, row) in s.split('/').enumerate() {
                for (i, c) in row.chars().enumerate() {
                    out[i + 6 * (j + 4 * k)] = c == '#';
                }
            }
        }
        out
    }

    #[test]
    fn components_join_across_edges_and_corners_in_3d() {
        // Slice 0: a 2-voxel bar and a lone voxel; slice 1: a voxel diagonal to the bar's end
        // (corner contact across slices) and one far away.
        let m = grid(["##..../....#./....../......", "....../..#.../....../.....#"]);
        let c = connected_components(&m, [6, 4, 2]);
        assert_eq!(c.sizes, vec![3, 1, 1]);
        assert_eq!(c.labels[0], 1);
        assert_eq!(c.labels[2 + 6 * (1 + 4)], 1, "corner neighbour of (1,0,0)");
        assert_eq!(c.labels[4 + 6], 2);
        assert_eq!(c.labels[5 + 6 * (3 + 4)], 3);
    }

    #[test]
    fn two_lesions_one_missed_and_a_false_positive() {
        // Reference: lesion A (4 voxels, left) and lesion B (2 voxels, right), one slice.
        // Prediction: 3 voxels on A (2 overlap, 1 beside it), and a blob of 2 far from both.
        let reference = grid(["##..../##..../.....#/.....#", "....../....../....../......"]);
        let pred = grid([".##.../#...../....../......", "....../....../...##./......"]);
        let e = lesion_metrics(
            &pred,
            &reference,
            [6, 4, 2],
            [1.0, 2.0, 3.0],
            &LesionOptions::default(),
        )
        .unwrap();
        assert_eq!(e.lesions.len(), 2);
        let (a, b) = (&e.lesions[0], &e.lesions[1]);
        assert_eq!((a.voxels, a.covered, a.detected), (4, 2, true));
        assert_eq!(a.volume_mm3, 24.0);
        assert_eq!(a.centroid, [0.5, 0.5, 0.0]);
        // The prediction of A is its component of 3 voxels: 2·2 / (4 + 3).
        assert!((a.dice - 4.0 / 7.0).abs() < 1e-12);
        // B: the far blob at (3..5, 2, 1) is within one voxel of B's (5, 2, 0): it is B's
        // prediction, but covers none of it.
        assert_eq!(
            (b.voxels, b.covered, b.detected, b.dice),
            (2, 0, false, 0.0)
        );
        assert_eq!(e.predicted_components, 2);
        assert_eq!(e.false_positives, 0);
        // Without the neighbourhood the blob touches nothing: a false positive.
        let strict = LesionOptions {
            neighbourhood: 0,
            hit_fraction: 0.6,
        };
        let e = lesion_metrics(&pred, &reference, [6, 4, 2], [1.0; 3], &strict).unwrap();
        assert_eq!(e.false_positives, 1);
        assert!(!e.lesions[0].detected, "2 of 4 voxels is below 60 %");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let m = vec![false; 8];
        assert!(lesion_metrics(&m, &m, [2, 2, 3], [1.0; 3], &LesionOptions::default()).is_err());
        assert!(lesion_metrics(
            &m,
            &m,
            [2, 2, 2],
            [1.0, 0.0, 1.0],
            &LesionOptions::default()
        )
        .is_err());
        let e = lesion_metrics(&m, &m, [2, 2, 2], [1.0; 3], &LesionOptions::default()).unwrap();
        assert_eq!((e.lesions.len(), e.false_positives), (0, 0));
    }
}
