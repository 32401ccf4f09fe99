//! Where voxels are: shape, spacing and the voxel → world affine.

use serde::{Deserialize, Serialize};

/// A 4×4 matrix, row-major.
pub type Affine = [[f64; 4]; 4];

/// The grid of a volume. World coordinates are RAS+ millimetres, as in NIfTI: +x right,
/// +y anterior, +z superior. DICOM's LPS is converted at the edges (negate x and y).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Voxels along i, j, k; i varies fastest in the data.
    pub shape: [usize; 3],
    /// Voxel size in mm along i, j, k.
    pub spacing: [f64; 3],
    /// Maps voxel indices (i, j, k, 1) to RAS+ mm.
    pub affine: Affine,
}

impl Geometry {
    /// An axis-aligned grid with the given spacing and the first voxel at the origin.
    pub fn axis_aligned(shape: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut affine = identity();
        for a in 0..3 {
            affine[a][a] = spacing[a];
        }
        Self {
            shape,
            spacing,
            affine,
        }
    }

    /// Number of voxels (saturating: a grid too large to count is `usize::MAX`).
    pub fn len(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .unwrap_or(usize::MAX)
    }

    /// Whether the grid holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of voxel (i, j, k).
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.shape[0] * (j + self.shape[1] * k)
    }

    /// World position (RAS+ mm) of a continuous voxel index.
    pub fn world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let m = &self.affine;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3];
        }
        out
    }

    /// Whether two grids coincide (same shape, affines equal within `tol` mm).
    pub fn same_grid(&self, other: &Geometry, tol: f64) -> bool {
        self.shape == other.shape
            && self
                .affine
                .iter()
                .flatten()
                .zip(other.affine.iter().flatten())
                .all(|(a, b)| (a - b).abs() <= tol)
    }

    /// The same grid with another shape and spacing: axis directions and the centre of voxel
    /// (0, 0, 0) are kept, each axis column rescaled to the new spacing.
    pub fn with_spacing(&self, shape: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut affine = self.affine;
        for a in 0..3 {
            let f = spacing[a] / self.spacing[a];
            for row in affine.iter_mut().take(3) {
                row[a] *= f;
            }
        }
        Self {
            shape,
            spacing,
            affine,
        }
    }

    /// The same grid shifted by `offset` voxels (for crops and pads) with another shape.
    pub fn shifted(&self, offset: [i64; 3], shape: [usize; 3]) -> Self {
        let origin = self.world([offset[0] as f64, offset[1] as f64, offset[2] as f64]);
        let mut affine = self.affine;
        for (r, o) in origin.iter().enumerate() {
            affine[r][3] = *o;
        }
        Self {
            shape,
            spacing: self.spacing,
            affine,
        }
    }
}

/// The 4×4 identity.
pub fn identity() -> Affine {
    let mut m = [[0.0; 4]; 4];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    m
}

/// Converts between LPS (DICOM) and RAS (NIfTI) world coordinates; its own inverse.
pub fn flip_lps_ras(affine: &Affine) -> Affine {
    let mut m = *affine;
    for row in m.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    m
}
