//! Resampling between grids, and centred crops/pads of the axial plane.

use crate::error::{IoError, Result};
use crate::geometry::{Affine, Geometry};
use crate::volume::{Mask, Volume};

/// Interpolation of a resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// Trilinear: for images.
    Linear,
    /// Nearest neighbour: for label maps.
    Nearest,
}

/// Inverse of an affine transform (4×4 with last row 0 0 0 1).
pub fn invert_affine(m: &Affine) -> Result<Affine> {
    let a = |r: usize, c: usize| m[r][c];
    let det = a(0, 0) * (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1))
        - a(0, 1) * (a(1, 0) * a(2, 2) - a(1, 2) * a(2, 0))
        + a(0, 2) * (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0));
    if !det.is_finite() || det.abs() < 1e-12 {
        return Err(IoError::Geometry(format!(
            "the affine is singular (determinant {det})"
        )));
    }
    let mut inv = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            // Cofactor (c, r) / det.
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            inv[r][c] = (a(r1, c1) * a(r2, c2) - a(r1, c2) * a(r2, c1)) / det;
        }
    }
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|c| inv[r][c] * m[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    Ok(inv)
}

/// The grid covering the same field of view as `g` with voxels of `spacing` mm.
pub fn grid_with_spacing(g: &Geometry, spacing: [f64; 3]) -> Geometry {
    let mut shape = [1usize; 3];
    for a in 0..3 {
        shape[a] = ((g.shape[a] as f64 * g.spacing[a] / spacing[a]).round() as usize).max(1);
    }
    g.with_spacing(shape, spacing)
}

/// For each target voxel, its continuous index in the source grid (via world coordinates).
fn source_coords(
    source: &Geometry,
    target: &Geometry,
) -> Result<impl Fn(usize, usize, usize) -> [f64; 3]> {
    let inv = invert_affine(&source.affine)?;
    let t = target.affine;
    // Compose source⁻¹ ∘ target once: voxel → voxel.
    let mut m = [[0.0; 4]; 3];
    for (r, row) in m.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| inv[r][k] * t[k][c]).sum();
        }
    }
    Ok(move |i: usize, j: usize, k: usize| {
        let (x, y, z) = (i as f64, j as f64, k as f64);
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * x + m[r][1] * y + m[r][2] * z + m[r][3];
        }
        out
    })
}

/// Resamples an image onto `target` (edges replicated beyond the source).
pub fn resample_volume(v: &Volume, target: &Geometry, interp: Interp) -> Result<Volume> {
    resample_volume_with(v, target, interp, None)
}

/// Resamples an image onto `target`; target voxels more than half a voxel outside the source
/// get `outside` when given (else the nearest edge value).
pub fn resample_volume_with(
    v: &Volume,
    target: &Geometry,
    interp: Interp,
    outside: Option<f32>,
) -> Result<Volume> {
    crate::memory::reserve(
        format_args!("resampling to {:?} voxels", target.shape),
        crate::memory::bytes_of(&target.shape, std::mem::size_of::<f32>()),
    )?;
    let map = source_coords(&v.geometry, target)?;
    let s = v.geometry.shape;
    let at = |i: usize, j: usize, k: usize| v.data[i + s[0] * (j + s[1] * k)];
    let mut data = Vec::with_capacity(target.len());
    for k in 0..target.shape[2] {
        for j in 0..target.shape[1] {
            for i in 0..target.shape[0] {
                let p = map(i, j, k);
                if let Some(fill) = outside {
                    if (0..3).any(|a| p[a] < -0.5 || p[a] > s[a] as f64 - 0.5) {
                        data.push(fill);
                        continue;
                    }
                }
                let value = match interp {
                    Interp::Nearest => {
                        let n = |a: usize| (p[a].round().max(0.0) as usize).min(s[a] - 1);
                        at(n(0), n(1), n(2))
                    }
                    Interp::Linear => {
                        let mut idx = [(0usize, 0usize, 0f32); 3];
                        for a in 0..3 {
                            let x = p[a].clamp(0.0, (s[a] - 1) as f64);
                            let lo = x.floor() as usize;
                            let hi = (lo + 1).min(s[a] - 1);
                            idx[a] = (lo, hi, (x - lo as f64) as f32);
                        }
                        let mut acc = 0.0f32;
                        for corner in 0..8 {
                            let pick = |a: usize| {
                                if corner >> a & 1 == 1 {
                                    (idx[a].1, idx[a].2)
                                } else {
                                    (idx[a].0, 1.0 - idx[a].2)
                                }
                            };
                            let ((i0, w0), (j0, w1), (k0, w2)) = (pick(0), pick(1), pick(2));
                            let w = w0 * w1 * w2;
                            if w != 0.0 {
                                acc += w * at(i0, j0, k0);
                            }
                        }
                        acc
                    }
                };
                data.push(value);
            }
        }
    }
    Volume::new(target.clone(), data)
}

/// Resamples a label map onto `target` by nearest neighbour.
pub fn resample_mask(m: &Mask, target: &Geometry) -> Result<Mask> {
    let as_volume = Volume::new(
        m.geometry.clone(),
        m.data.iter().map(|&v| f32::from(v)).collect(),
    )?;
    let r = resample_volume(&as_volume, target, Interp::Nearest)?;
    Mask::new(target.clone(), r.data.iter().map(|&v| v as u8).collect())
}

/// Offset (in voxels, may be negative) of a centred crop/pad of `from` voxels to `to` voxels.
pub fn centre_offset(from: usize, to: usize) -> i64 {
    (from as i64 - to as i64).div_euclid(2)
}

/// The grid of a centred crop/pad of the axial plane to `size`: shifted so every kept voxel stays
/// where it was in the world.
pub fn crop_or_pad_grid(geometry: &Geometry, size: [usize; 2]) -> Geometry {
    let s = geometry.shape;
    let off = [centre_offset(s[0], size[0]), centre_offset(s[1], size[1])];
    geometry.shifted([off[0], off[1], 0], [size[0], size[1], s[2]])
}

/// Crops or pads the axial plane to `size` (centred), filling new voxels with `fill`; the
/// geometry is that of [`crop_or_pad_grid`].
pub fn crop_or_pad_plane<T: Copy>(
    geometry: &Geometry,
    data: &[T],
    size: [usize; 2],
    fill: T,
) -> (Geometry, Vec<T>) {
    let s = geometry.shape;
    let off = [centre_offset(s[0], size[0]), centre_offset(s[1], size[1])];
    crop_or_pad_plane_at(geometry, data, size, off, fill)
}

/// Crops or pads the axial plane to `size` starting at in-plane voxel `off` of the source
/// (negative: padding before it), filling new voxels with `fill`; voxels keep their world
/// position.
pub fn crop_or_pad_plane_at<T: Copy>(
    geometry: &Geometry,
    data: &[T],
    size: [usize; 2],
    off: [i64; 2],
    fill: T,
) -> (Geometry, Vec<T>) {
    let s = geometry.shape;
    let shape = [size[0], size[1], s[2]];
    let mut out = Vec::with_capacity(shape.iter().product());
    for k in 0..s[2] {
        for j in 0..size[1] {
            let sj = j as i64 + off[1];
            for i in 0..size[0] {
                let si = i as i64 + off[0];
                if si >= 0 && sj >= 0 && (si as usize) < s[0] && (sj as usize) < s[1] {
                    out.push(data[si as usize + s[0] * (sj as usize + s[1] * k)]);
                } else {
                    out.push(fill);
                }
            }
        }
    }
    (geometry.shifted([off[0], off[1], 0], shape), out)
}
