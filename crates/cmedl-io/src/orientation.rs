//! Voxel storage order: the anatomical direction of each voxel axis (axis codes, as nibabel's
//! `aff2axcodes`), and the exact reorientation (axis permutation and flips, no interpolation)
//! that brings a grid to the canonical order cmedl computes in, and back.
//!
//! The canonical order is LPS, DICOM's: i runs to the patient's left, j to posterior, k to
//! superior, so that slices along k are axial. Oblique grids go to their closest axes.
//!
//! ```
//! use cmedl_io::orientation::{axcodes, Reorientation};
//! use cmedl_io::Geometry;
//!
//! // RAS storage: i to the right, j to anterior.
//! let g = Geometry::axis_aligned([4, 3, 2], [1.0, 2.0, 3.0]);
//! assert_eq!(axcodes(&g.affine), ['R', 'A', 'S']);
//! let r = Reorientation::to_canonical(&g);
//! assert_eq!(axcodes(&r.target().affine), ['L', 'P', 'S']);
//! let data: Vec<u8> = (0..24).collect();
//! assert_eq!(r.undo(&r.apply(&data)), data);
//! ```

use crate::geometry::Geometry;
use crate::volume::{Mask, Volume};

/// Letters of the positive and negative direction of each world axis (RAS+).
const CODES: [[char; 2]; 3] = [['R', 'L'], ['A', 'P'], ['S', 'I']];

/// The canonical direction of each world axis: x to the left, y to posterior, z to superior.
const CANONICAL_SIGN: [f64; 3] = [-1.0, -1.0, 1.0];

/// For each voxel axis, the world axis it runs closest to and the sign: a greedy assignment by
/// the largest direction cosine, so that the three voxel axes take three different world axes.
fn closest_axes(affine: &crate::geometry::Affine) -> [(usize, f64); 3] {
    let mut cos = [[0.0f64; 3]; 3]; // cos[world][voxel]
    for v in 0..3 {
        let norm = (0..3)
            .map(|w| affine[w][v].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        for w in 0..3 {
            cos[w][v] = affine[w][v] / norm;
        }
    }
    let mut out = [(usize::MAX, 1.0); 3];
    let (mut used_w, mut used_v) = ([false; 3], [false; 3]);
    for _ in 0..3 {
        let mut best = (0, 0, -1.0);
        for w in (0..3).filter(|&w| !used_w[w]) {
            for v in (0..3).filter(|&v| !used_v[v]) {
                if cos[w][v].abs() > best.2 {
                    best = (w, v, cos[w][v].abs());
                }
            }
        }
        let (w, v, _) = best;
        used_w[w] = true;
        used_v[v] = true;
        out[v] = (w, cos[w][v].signum());
    }
    out
}

/// The anatomical direction each voxel axis points to (RAS+ letters: R/L, A/P, S/I), by the
/// closest world axis.
pub fn axcodes(affine: &crate::geometry::Affine) -> [char; 3] {
    closest_axes(affine).map(|(w, s)| CODES[w][usize::from(s < 0.0)])
}

/// Whether some voxel axis is not parallel to a world axis (beyond 1e-4 in direction cosine).
pub fn is_oblique(affine: &crate::geometry::Affine) -> bool {
    (0..3).any(|v| {
        let norm = (0..3)
            .map(|w| affine[w][v].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        (0..3)
            .map(|w| (affine[w][v] / norm).abs())
            .fold(0.0, f64::max)
            < 1.0 - 1e-4
    })
}

/// An exact change of voxel order: target axis `t` is source axis `perm[t]`, reversed when
/// `flip[t]`. Voxel centres stay where they are in the world.
#[derive(Clone, Debug, PartialEq)]
pub struct Reorientation {
    perm: [usize; 3],
    flip: [bool; 3],
    source: Geometry,
    target: Geometry,
}

impl Reorientation {
    /// The reorientation of `source` to the canonical LPS order.
    pub fn to_canonical(source: &Geometry) -> Self {
        let axes = closest_axes(&source.affine);
        let mut perm = [0; 3];
        let mut flip = [false; 3];
        for (v, &(w, sign)) in axes.iter().enumerate() {
            perm[w] = v;
            flip[w] = sign != CANONICAL_SIGN[w];
        }
        let mut shape = [0; 3];
        let mut spacing = [0.0; 3];
        let mut affine = source.affine;
        let mut first = [0.0; 3]; // source index of the target's voxel (0, 0, 0)
        for t in 0..3 {
            let s = perm[t];
            shape[t] = source.shape[s];
            spacing[t] = source.spacing[s];
            let sign = if flip[t] { -1.0 } else { 1.0 };
            for row in affine.iter_mut().take(3) {
                row[t] = 0.0;
            }
            for (r, row) in affine.iter_mut().take(3).enumerate() {
                row[t] = sign * source.affine[r][s];
            }
            if flip[t] {
                first[s] = source.shape[s].saturating_sub(1) as f64;
            }
        }
        let origin = source.world(first);
        for (r, o) in origin.iter().enumerate() {
            affine[r][3] = *o;
        }
        Self {
            perm,
            flip,
            target: Geometry {
                shape,
                spacing,
                affine,
            },
            source: source.clone(),
        }
    }

    /// The grid before.
    pub fn source(&self) -> &Geometry {
        &self.source
    }

    /// The grid after.
    pub fn target(&self) -> &Geometry {
        &self.target
    }

    /// Whether the voxel order does not change.
    pub fn is_identity(&self) -> bool {
        self.perm == [0, 1, 2] && self.flip == [false; 3]
    }

    /// For each target voxel (in storage order), the index of the source voxel it takes.
    fn source_indices(&self) -> Vec<usize> {
        let [tx, ty, tz] = self.target.shape;
        let src = self.source.shape;
        let mut stride = [0usize; 3];
        stride[0] = 1;
        stride[1] = src[0];
        stride[2] = src[0] * src[1];
        let mut out = Vec::with_capacity(tx * ty * tz);
        for k in 0..tz {
            for j in 0..ty {
                for i in 0..tx {
                    let mut index = 0;
                    for (t, c) in [i, j, k].into_iter().enumerate() {
                        let s = self.perm[t];
                        let c = if self.flip[t] { src[s] - 1 - c } else { c };
                        index += c * stride[s];
                    }
                    out.push(index);
                }
            }
        }
        out
    }

    /// Voxel values in source order → target order.
    pub fn apply<T: Copy>(&self, data: &[T]) -> Vec<T> {
        if self.is_identity() {
            return data.to_vec();
        }
        self.source_indices().into_iter().map(|s| data[s]).collect()
    }

    /// Voxel values in target order → source order.
    pub fn undo<T: Copy + Default>(&self, data: &[T]) -> Vec<T> {
        if self.is_identity() {
            return data.to_vec();
        }
        let mut out = vec![T::default(); data.len()];
        for (t, s) in self.source_indices().into_iter().enumerate() {
            out[s] = data[t];
        }
        out
    }

    /// A volume on the source grid, in target order.
    pub fn volume(&self, v: &Volume) -> Volume {
        Volume {
            geometry: self.target.clone(),
            data: self.apply(&v.data),
        }
    }

    /// A label map on the source grid, in target order.
    pub fn mask(&self, m: &Mask) -> Mask {
        Mask {
            geometry: self.target.clone(),
            data: self.apply(&m.data),
        }
    }

    /// A volume on the target grid, back in source order on the source grid.
    pub fn volume_back(&self, v: &Volume) -> Volume {
        Volume {
            geometry: self.source.clone(),
            data: self.undo(&v.data),
        }
    }

    /// A label map on the target grid, back in source order on the source grid.
    pub fn mask_back(&self, m: &Mask) -> Mask {
        Mask {
            geometry: self.source.clone(),
            data: self.undo(&m.data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A grid whose voxel axis v runs along world axis `axes[v].0` with sign `axes[v].1`.
    fn grid(shape: [usize; 3], axes: [(usize, f64); 3], origin: [f64; 3]) -> Geometry {
        let mut g = Geometry::axis_aligned(shape, [1.5, 2.0, 3.0]);
        for v in 0..3 {
            for w in 0..3 {
                g.affine[w][v] = if axes[v].0 == w {
                    axes[v].1 * g.spacing[v]
                } else {
                    0.0
                };
            }
        }
        for w in 0..3 {
            g.affine[w][3] = origin[w];
        }
        g
    }

    #[test]
    fn axis_codes_like_nibabel() {
        let lps = grid([2, 2, 2], [(0, -1.0), (1, -1.0), (2, 1.0)], [0.0; 3]);
        assert_eq!(axcodes(&lps.affine), ['L', 'P', 'S']);
        let sagittal = grid([2, 2, 2], [(1, 1.0), (2, -1.0), (0, 1.0)], [0.0; 3]);
        assert_eq!(axcodes(&sagittal.affine), ['A', 'I', 'R']);
        assert!(!is_oblique(&sagittal.affine));
        // 10° about z: still closest to x and y, but oblique.
        let (c, s) = (10f64.to_radians().cos(), 10f64.to_radians().sin());
        let mut tilted = Geometry::axis_aligned([2, 2, 2], [1.0; 3]);
        tilted.affine[0][0] = c;
        tilted.affine[1][0] = s;
        tilted.affine[0][1] = -s;
        tilted.affine[1][1] = c;
        assert_eq!(axcodes(&tilted.affine), ['R', 'A', 'S']);
        assert!(is_oblique(&tilted.affine));
    }

    #[test]
    fn canonical_grids_stay_and_others_keep_every_voxel_in_place() {
        let lps = grid([3, 4, 5], [(0, -1.0), (1, -1.0), (2, 1.0)], [1.0, 2.0, 3.0]);
        assert!(Reorientation::to_canonical(&lps).is_identity());
        // Slice axis first, stored R→L reversed: k-major sagittal-like order.
        let odd = grid(
            [5, 3, 4],
            [(2, -1.0), (0, 1.0), (1, -1.0)],
            [7.0, -2.0, 30.0],
        );
        let r = Reorientation::to_canonical(&odd);
        let t = r.target();
        assert_eq!(axcodes(&t.affine), ['L', 'P', 'S']);
        assert_eq!(t.shape, [3, 4, 5]);
        assert_eq!(t.spacing, [2.0, 3.0, 1.5]);
        // Each target voxel holds the value of the source voxel at the same world position.
        let data: Vec<u32> = (0..60).collect();
        let moved = r.apply(&data);
        for k in 0..5 {
            for j in 0..4 {
                for i in 0..3 {
                    let w = t.world([i as f64, j as f64, k as f64]);
                    let v = moved[t.index(i, j, k)] as usize;
                    let (si, sj, sk) = (v % 5, (v / 5) % 3, v / 15);
                    let ws = odd.world([si as f64, sj as f64, sk as f64]);
                    for a in 0..3 {
                        assert!((w[a] - ws[a]).abs() < 1e-9, "{w:?} vs {ws:?}");
                    }
                }
            }
        }
        assert_eq!(r.undo(&moved), data);
    }

    proptest! {
        #[test]
        fn every_axis_order_round_trips(perm in 0usize..6, signs in 0usize..8, nx in 1usize..5, ny in 1usize..5, nz in 1usize..5) {
            let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
            let o = orders[perm];
            let sign = |b: usize| if signs & (1 << b) != 0 { -1.0 } else { 1.0 };
            let g = grid([nx, ny, nz], [(o[0], sign(0)), (o[1], sign(1)), (o[2], sign(2))], [3.0, -4.0, 5.0]);
            let r = Reorientation::to_canonical(&g);
            prop_assert_eq!(axcodes(&r.target().affine), ['L', 'P', 'S']);
            let data: Vec<u16> = (0..(nx * ny * nz) as u16).collect();
            prop_assert_eq!(r.undo(&r.apply(&data)), data.clone());
            // The canonical grid of the canonical grid is itself.
            prop_assert!(Reorientation::to_canonical(r.target()).is_identity());
            // The world position of every voxel centre is kept.
            let moved = r.apply(&data);
            let t = r.target();
            for (n, &v) in moved.iter().enumerate() {
                let (i, j, k) = (n % t.shape[0], (n / t.shape[0]) % t.shape[1], n / (t.shape[0] * t.shape[1]));
                let v = v as usize;
                let (si, sj, sk) = (v % nx, (v / nx) % ny, v / (nx * ny));
                let (a, b) = (t.world([i as f64, j as f64, k as f64]), g.world([si as f64, sj as f64, sk as f64]));
                for d in 0..3 {
                    prop_assert!((a[d] - b[d]).abs() < 1e-9);
                }
            }
        }
    }
}
