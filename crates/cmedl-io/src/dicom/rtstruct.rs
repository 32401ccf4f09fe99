//! RTSTRUCT: ROI listing and rasterisation of closed planar contours on a series' grid.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use super::series::SeriesVolume;
use super::{read_object, text};
use crate::error::{IoError, Result};
use crate::geometry::flip_lps_ras;
use crate::resample::invert_affine;
use crate::volume::Mask;

/// An ROI of a structure set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoiInfo {
    /// ROINumber.
    pub number: i64,
    /// ROIName.
    pub name: String,
    /// Contours it has.
    pub contours: usize,
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<InMemDicomObject> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items().map(|i| i.to_vec()))
        .unwrap_or_default()
}

struct Structure {
    rois: Vec<RoiInfo>,
    /// (ROI number, contour points in LPS mm).
    contours: Vec<(i64, Vec<[f64; 3]>)>,
    referenced_series: Vec<String>,
}

fn read_structure(path: &Path) -> Result<Structure> {
    let obj = read_object(path)?
        .ok_or_else(|| IoError::format(path, "not a DICOM file (no DICM signature)"))?;
    let modality = obj
        .element_opt(tags::MODALITY)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()))
        .unwrap_or_default();
    if modality != "RTSTRUCT" {
        return Err(IoError::format(
            path,
            format!("not an RTSTRUCT (Modality '{modality}')"),
        ));
    }
    let obj: &InMemDicomObject = &obj;
    let mut contours = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for rc in items(obj, tags::ROI_CONTOUR_SEQUENCE) {
        let number: i64 = rc
            .element(tags::REFERENCED_ROI_NUMBER)
            .ok()
            .and_then(|e| e.to_int().ok())
            .ok_or_else(|| IoError::format(path, "an ROI contour lacks ReferencedROINumber"))?;
        for c in items(&rc, tags::CONTOUR_SEQUENCE) {
            let kind = text(&c, tags::CONTOUR_GEOMETRIC_TYPE);
            if kind != "CLOSED_PLANAR" {
                continue; // points and open curves enclose nothing
            }
            let data = c
                .element(tags::CONTOUR_DATA)
                .ok()
                .and_then(|e| e.to_multi_float64().ok())
                .ok_or_else(|| {
                    IoError::format(path, format!("ROI {number}: a contour lacks ContourData"))
                })?;
            if data.len() % 3 != 0 || data.len() < 9 || data.iter().any(|v| !v.is_finite()) {
                return Err(IoError::format(
                    path,
                    format!("ROI {number}: ContourData must be at least three finite x,y,z points"),
                ));
            }
            contours.push((number, data.chunks(3).map(|p| [p[0], p[1], p[2]]).collect()));
            *counts.entry(number).or_insert(0usize) += 1;
        }
    }
    let rois = items(obj, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .filter_map(|r| {
            let number: i64 = r.element(tags::ROI_NUMBER).ok()?.to_int().ok()?;
            Some(RoiInfo {
                number,
                name: text(r, tags::ROI_NAME),
                contours: counts.get(&number).copied().unwrap_or(0),
            })
        })
        .collect();
    let mut referenced_series = Vec::new();
    for f in items(obj, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE) {
        for st in items(&f, tags::RT_REFERENCED_STUDY_SEQUENCE) {
            for se in items(&st, tags::RT_REFERENCED_SERIES_SEQUENCE) {
                referenced_series.push(text(&se, tags::SERIES_INSTANCE_UID));
            }
        }
    }
    Ok(Structure {
        rois,
        contours,
        referenced_series,
    })
}

/// The ROIs of an RTSTRUCT file.
pub fn list_rois(path: &Path) -> Result<Vec<RoiInfo>> {
    Ok(read_structure(path)?.rois)
}

/// An ROI rasterised onto an image series.
#[derive(Clone, Debug)]
pub struct RoiMask {
    /// The mask (1 inside the ROI) on the series' grid.
    pub mask: Mask,
    /// Contours of the ROI that lie beyond the first or last slice of the series (a series that
    /// covers part of the structure set); they are left out of the mask.
    pub outside: usize,
}

/// Rasterises ROI `roi` (name, case-insensitive) of an RTSTRUCT onto the grid of `series`.
///
/// Each closed planar contour is assigned to the slice within half a slice of its plane; a voxel
/// centre is inside when a ray from it crosses the slice's contours of that ROI an odd number of
/// times (even–odd rule), so rings drawn as two contours keep their hole. Contours beyond the
/// series are counted in [`RoiMask::outside`]; an ROI none of whose contours meets the series is
/// an error.
pub fn read_rtstruct_mask(path: &Path, series: &SeriesVolume, roi: &str) -> Result<RoiMask> {
    let s = read_structure(path)?;
    if !s.referenced_series.is_empty() && !s.referenced_series.contains(&series.uid) {
        return Err(IoError::format(
            path,
            format!(
                "the structure set references series {:?}, not the image series {}",
                s.referenced_series, series.uid
            ),
        ));
    }
    let found = s
        .rois
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(roi))
        .ok_or_else(|| {
            IoError::format(
                path,
                format!(
                    "no ROI named '{roi}'; it has {}",
                    s.rois
                        .iter()
                        .map(|r| format!("'{}'", r.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let g = &series.volume.geometry;
    let to_voxel = invert_affine(&flip_lps_ras(&g.affine))?;
    let [nx, ny, nz] = g.shape;
    // Polygons per slice, in continuous voxel coordinates (i, j).
    let mut per_slice: Vec<Vec<Vec<[f64; 2]>>> = vec![Vec::new(); nz];
    let (mut outside, mut outside_range) = (0usize, (f64::INFINITY, f64::NEG_INFINITY));
    for (_, points) in s.contours.iter().filter(|(n, _)| *n == found.number) {
        let voxel: Vec<[f64; 3]> = points
            .iter()
            .map(|p| {
                let mut v = [0.0; 3];
                for (r, out) in v.iter_mut().enumerate() {
                    *out = to_voxel[r][0] * p[0]
                        + to_voxel[r][1] * p[1]
                        + to_voxel[r][2] * p[2]
                        + to_voxel[r][3];
                }
                v
            })
            .collect();
        let k = voxel.iter().map(|v| v[2]).sum::<f64>() / voxel.len() as f64;
        let kr = k.round();
        if kr < 0.0 || kr >= nz as f64 {
            outside += 1;
            outside_range = (outside_range.0.min(k), outside_range.1.max(k));
            continue;
        }
        per_slice[kr as usize].push(voxel.iter().map(|v| [v[0], v[1]]).collect());
    }
    let mut data = vec![0u8; g.len()];
    for (k, polys) in per_slice.iter().enumerate() {
        fill_polygons(polys, nx, ny, &mut data[nx * ny * k..nx * ny * (k + 1)]);
    }
    if outside > 0 && per_slice.iter().all(Vec::is_empty) {
        return Err(IoError::format(
            path,
            format!(
                "all {outside} contour(s) of ROI '{}' lie outside the image series (slice \
                 positions {:.1} to {:.1} of 0 to {})",
                found.name,
                outside_range.0,
                outside_range.1,
                nz - 1
            ),
        ));
    }
    Ok(RoiMask {
        mask: Mask::new(g.clone(), data)?,
        outside,
    })
}

/// Sets the voxels of an `nx × ny` plane inside `polys` (continuous voxel coordinates) by the
/// even-odd rule over all of them: voxel (i, j) is inside when an odd number of edge crossings
/// of row j lie right of i. By scanlines within the polygons' rows, the cost is rows × edges
/// plus the voxels filled, not voxels × edges.
pub(crate) fn fill_polygons(polys: &[Vec<[f64; 2]>], nx: usize, ny: usize, plane: &mut [u8]) {
    let (lo, hi) = polys
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p[1]), hi.max(p[1]))
        });
    if ny == 0 || !(lo <= (ny - 1) as f64 && hi >= 0.0) {
        return;
    }
    let first = lo.ceil().max(0.0) as usize;
    let last = hi.floor().min((ny - 1) as f64) as usize;
    let mut crossings = Vec::new();
    for j in first..=last {
        let y = j as f64;
        crossings.clear();
        for poly in polys {
            for e in 0..poly.len() {
                let (a, b) = (poly[e], poly[(e + 1) % poly.len()]);
                if (a[1] > y) != (b[1] > y) {
                    crossings.push(a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
                }
            }
        }
        crossings.sort_by(f64::total_cmp);
        // Crossings come in pairs on a row of closed polygons: i with c₀ <= i < c₁ is inside.
        for pair in crossings.chunks_exact(2) {
            let from = pair[0].ceil().max(0.0);
            let to = pair[1].ceil().min(nx as f64);
            if from < to {
                plane[nx * j + from as usize..nx * j + to as usize].fill(1);
            }
        }
    }
}
