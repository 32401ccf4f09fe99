//! Measured contrast-to-noise ratios of tumours against their surroundings.

use serde::{Deserialize, Serialize};

use crate::anatomy::{Tissue, TumourKind};
use crate::cohort::Case;
use crate::imaging::Contrast;

/// The CNR of one tumour in one image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TumourCnr {
    /// Case id.
    pub case: String,
    /// Image contrast.
    pub contrast: Contrast,
    /// Location kind.
    pub kind: TumourKind,
    /// |mean(tumour) − mean(background)| / sd(background).
    pub cnr: f64,
    /// Tumour core voxels used.
    pub tumour_voxels: usize,
    /// Background voxels used.
    pub background_voxels: usize,
}

/// The tissues a tumour of `kind` is compared with: its "adjacent" tissue.
fn background_tissues(kind: TumourKind) -> &'static [Tissue] {
    match kind {
        TumourKind::Parenchymal => &[Tissue::Lung],
        TumourKind::Mediastinal => &[Tissue::Heart, Tissue::Aorta, Tissue::Oesophagus],
        TumourKind::ChestWall => &[Tissue::Muscle],
    }
}

/// The voxels a tumour's contrast is measured on: its core and the ring of adjacent tissue
/// around it, on the case's grid. The same voxels serve every image of the patient (CT, MRI,
/// and a translation of the CT), so their contrasts compare like for like.
#[derive(Clone, Debug)]
pub struct TumourRegion {
    /// Location kind.
    pub kind: TumourKind,
    /// Tumour core voxels (indices, i fastest).
    pub core: Vec<usize>,
    /// Background voxels.
    pub ring: Vec<usize>,
}

impl TumourRegion {
    /// |mean(core) − mean(ring)| / sd(ring) of `data` (the case's grid).
    pub fn cnr(&self, data: &[f32]) -> f64 {
        let mean =
            |v: &[usize]| v.iter().map(|&i| f64::from(data[i])).sum::<f64>() / v.len() as f64;
        let (mt, mb) = (mean(&self.core), mean(&self.ring));
        let sd = (self
            .ring
            .iter()
            .map(|&i| (f64::from(data[i]) - mb).powi(2))
            .sum::<f64>()
            / (self.ring.len() - 1) as f64)
            .sqrt();
        (mt - mb).abs() / sd.max(1e-12)
    }
}

/// The measurable tumours of a case with their core and ring voxels.
///
/// Tumour core: voxels of that tumour whose 3×3 in-plane neighbourhood is the same tumour.
/// Background: voxels within 4 voxels (in-plane) of the tumour whose 3×3 neighbourhood is all
/// the adjacent tissue (lung; heart/aorta/oesophagus for mediastinal; muscle for chest wall),
/// so partial-volume edges do not count. Tumours with fewer than 3 of either are left out.
pub fn tumour_regions(case: &Case) -> Vec<TumourRegion> {
    let [nx, ny, nz] = case.tumour.geometry.shape;
    let at = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    let mut out = Vec::new();
    for (t, record) in case.meta.tumours.iter().enumerate() {
        let label = t as u8 + 1;
        let allowed = background_tissues(record.kind);
        let mut core = Vec::new();
        let mut ring = Vec::new();
        for k in 0..nz {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let hood = |f: &dyn Fn(usize) -> bool| {
                        (0..3).all(|dj| (0..3).all(|di| f(at(i + di - 1, j + dj - 1, k))))
                    };
                    let idx = at(i, j, k);
                    if case.tumour_index[idx] == label {
                        if hood(&|n| case.tumour_index[n] == label) {
                            core.push(idx);
                        }
                        continue;
                    }
                    if !hood(&|n| allowed.contains(&case.tissue[n])) {
                        continue;
                    }
                    let near = (i.saturating_sub(4)..(i + 5).min(nx)).any(|ii| {
                        (j.saturating_sub(4)..(j + 5).min(ny))
                            .any(|jj| case.tumour_index[at(ii, jj, k)] == label)
                    });
                    if near {
                        ring.push(idx);
                    }
                }
            }
        }
        if core.len() >= 3 && ring.len() >= 3 {
            out.push(TumourRegion {
                kind: record.kind,
                core,
                ring,
            });
        }
    }
    out
}

/// CNR of every measurable tumour of a case in each of its images ([`tumour_regions`]).
pub fn tumour_cnr(case: &Case) -> Vec<TumourCnr> {
    let mut out = Vec::new();
    for region in tumour_regions(case) {
        for (contrast, image) in &case.images {
            out.push(TumourCnr {
                case: case.id.clone(),
                contrast: *contrast,
                kind: region.kind,
                cnr: region.cnr(&image.data),
                tumour_voxels: region.core.len(),
                background_voxels: region.ring.len(),
            });
        }
    }
    out
}

/// Mean CNR per (contrast, kind) with the number of tumours.
pub fn summarize(cnrs: &[TumourCnr]) -> Vec<(Contrast, TumourKind, usize, f64)> {
    let mut out = Vec::new();
    for contrast in [Contrast::Ct, Contrast::T2, Contrast::T1] {
        for kind in TumourKind::ALL {
            let v: Vec<f64> = cnrs
                .iter()
                .filter(|c| c.contrast == contrast && c.kind == kind)
                .map(|c| c.cnr)
                .collect();
            if !v.is_empty() {
                out.push((
                    contrast,
                    kind,
                    v.len(),
                    v.iter().sum::<f64>() / v.len() as f64,
                ));
            }
        }
    }
    out
}
