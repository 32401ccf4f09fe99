//! Voxel data on a [`Geometry`]: images ([`Volume`], f32) and label maps ([`Mask`], u8).

use crate::error::{IoError, Result};
use crate::geometry::Geometry;

/// An image: f32 voxels, i fastest, on a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// Where the voxels are.
    pub geometry: Geometry,
    /// Voxel values, `geometry.len()` of them, index `i + nx·(j + ny·k)`.
    pub data: Vec<f32>,
}

/// A label map: u8 labels (0 background) on a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    /// Where the voxels are.
    pub geometry: Geometry,
    /// Labels, `geometry.len()` of them, index `i + nx·(j + ny·k)`.
    pub data: Vec<u8>,
}

fn check_len(geometry: &Geometry, len: usize) -> Result<()> {
    if geometry.len() != len {
        return Err(IoError::Geometry(format!(
            "{} values for a grid of {:?} ({} voxels)",
            len,
            geometry.shape,
            geometry.len()
        )));
    }
    Ok(())
}

impl Volume {
    /// A volume from its grid and data; the lengths must agree.
    pub fn new(geometry: Geometry, data: Vec<f32>) -> Result<Self> {
        check_len(&geometry, data.len())?;
        Ok(Self { geometry, data })
    }

    /// Minimum, maximum and mean of the finite voxels (NaN when there is none).
    pub fn stats(&self) -> (f64, f64, f64) {
        let (mut lo, mut hi, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for &v in self.data.iter().filter(|v| v.is_finite()) {
            let v = f64::from(v);
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
            n += 1;
        }
        if n == 0 {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (lo, hi, sum / n as f64)
        }
    }

    /// Number of NaN or infinite voxels.
    pub fn non_finite(&self) -> usize {
        self.data.iter().filter(|v| !v.is_finite()).count()
    }

    /// The axial slice `k` (i fastest), `nx·ny` values.
    pub fn slice(&self, k: usize) -> &[f32] {
        let n = self.geometry.shape[0] * self.geometry.shape[1];
        &self.data[k * n..(k + 1) * n]
    }
}

impl Mask {
    /// A mask from its grid and labels; the lengths must agree.
    pub fn new(geometry: Geometry, data: Vec<u8>) -> Result<Self> {
        check_len(&geometry, data.len())?;
        Ok(Self { geometry, data })
    }

    /// `(label, voxel count)` for every label present, ascending.
    pub fn label_counts(&self) -> Vec<(u8, usize)> {
        let mut counts = [0usize; 256];
        for &v in &self.data {
            counts[v as usize] += 1;
        }
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(l, &c)| (l as u8, c))
            .collect()
    }

    /// The axial slice `k` (i fastest), `nx·ny` labels.
    pub fn slice(&self, k: usize) -> &[u8] {
        let n = self.geometry.shape[0] * self.geometry.shape[1];
        &self.data[k * n..(k + 1) * n]
    }

    /// Labels from an image of integer values (rounded); errors name values outside 0..=255.
    pub fn from_volume(volume: &Volume) -> Result<Self> {
        let mut data = Vec::with_capacity(volume.data.len());
        for &v in &volume.data {
            let r = v.round();
            if !(0.0..=255.0).contains(&r) || (v - r).abs() > 1e-3 {
                return Err(IoError::Geometry(format!(
                    "value {v} is not a label (a label map holds integers 0–255)"
                )));
            }
            data.push(r as u8);
        }
        Mask::new(volume.geometry.clone(), data)
    }
}

impl Mask {
    /// The 26-connected components of each foreground label: (label, voxel indices), in the
    /// order of their first voxel.
    pub fn components(&self) -> Vec<(u8, Vec<usize>)> {
        let [nx, ny, nz] = self.geometry.shape;
        let mut seen = vec![false; self.data.len()];
        let mut found = Vec::new();
        let mut stack = Vec::new();
        for start in 0..self.data.len() {
            let label = self.data[start];
            if label == 0 || seen[start] {
                continue;
            }
            let mut component = Vec::new();
            seen[start] = true;
            stack.push(start);
            while let Some(v) = stack.pop() {
                component.push(v);
                let (i, j, k) = (v % nx, (v / nx) % ny, v / (nx * ny));
                for c in k.saturating_sub(1)..=(k + 1).min(nz - 1) {
                    for b in j.saturating_sub(1)..=(j + 1).min(ny - 1) {
                        for a in i.saturating_sub(1)..=(i + 1).min(nx - 1) {
                            let n = a + nx * (b + ny * c);
                            if !seen[n] && self.data[n] == label {
                                seen[n] = true;
                                stack.push(n);
                            }
                        }
                    }
                }
            }
            found.push((label, component));
        }
        found
    }

    /// Number of 26-connected components of each foreground label present.
    pub fn component_counts(&self) -> std::collections::BTreeMap<u8, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (label, _) in self.components() {
            *counts.entry(label).or_insert(0) += 1;
        }
        counts
    }

    /// Keeps, for each foreground label, only its largest 26-connected component (the first
    /// of equal ones).
    pub fn keep_largest_components(&mut self) {
        let mut best: std::collections::BTreeMap<u8, Vec<usize>> = Default::default();
        for (label, component) in self.components() {
            let entry = best.entry(label).or_default();
            if component.len() > entry.len() {
                *entry = component;
            }
        }
        self.data.iter_mut().for_each(|v| *v = 0);
        for (label, voxels) in best {
            for v in voxels {
                self.data[v] = label;
            }
        }
    }

    /// Removes every 26-connected component smaller than `min_mm3` (voxel volume from the
    /// spacing); returns how many were removed.
    pub fn remove_components_below(&mut self, min_mm3: f64) -> usize {
        let voxel_mm3: f64 = self.geometry.spacing.iter().product();
        let mut removed = 0;
        for (_, component) in self.components() {
            if (component.len() as f64) * voxel_mm3 < min_mm3 {
                removed += 1;
                for v in component {
                    self.data[v] = 0;
                }
            }
        }
        removed
    }
}
