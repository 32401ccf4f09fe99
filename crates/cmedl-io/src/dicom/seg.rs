//! DICOM Segmentation objects (SEG): segments listed, one segment → [`Mask`].
//!
//! A SEG stores one frame per (segment, plane); each frame carries its ImagePositionPatient in
//! the per-frame functional groups, orientation and pixel spacing come from the shared (or
//! per-frame) groups. BINARY segmentations pack one bit per pixel, FRACTIONAL ones store 8-bit
//! values (inside at half the maximum or more). Only uncompressed pixel data is read.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use super::{frame_count, read_object, text, uint};
use crate::error::{IoError, Result};
use crate::geometry::{flip_lps_ras, identity, Geometry};
use crate::resample::invert_affine;
use crate::volume::Mask;

/// One segment of a SEG object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// SegmentNumber.
    pub number: u16,
    /// SegmentLabel.
    pub label: String,
    /// Frames (planes) stored for it.
    pub frames: usize,
}

/// A parsed segmentation: frames with their planes.
struct Segmentation {
    segments: Vec<SegmentInfo>,
    rows: usize,
    cols: usize,
    /// Row and column direction cosines (LPS).
    orientation: [f64; 6],
    /// Row spacing, column spacing (mm), as PixelSpacing stores them.
    pixel_spacing: [f64; 2],
    /// Spacing between planes from the shared groups, when given.
    plane_step: Option<f64>,
    /// Per frame: segment number and ImagePositionPatient (LPS).
    frames: Vec<(u16, [f64; 3])>,
    /// Frame pixels, 0/1 per pixel, frame after frame.
    pixels: Vec<u8>,
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<InMemDicomObject> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items().map(<[_]>::to_vec))
        .unwrap_or_default()
}

/// The first value of `tag` found in `group`'s functional group sequence `seq`.
fn in_group(
    group: &InMemDicomObject,
    seq: dicom_core::Tag,
    tag: dicom_core::Tag,
) -> Option<Vec<f64>> {
    items(group, seq).first().and_then(|item| {
        item.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_float64().ok())
    })
}

fn read_segmentation(path: &Path) -> Result<Segmentation> {
    let obj = read_object(path)?
        .ok_or_else(|| IoError::format(path, "not a DICOM file (no DICM signature)"))?;
    let modality = text(&obj, tags::MODALITY);
    if modality != "SEG" {
        return Err(IoError::format(
            path,
            format!("not a DICOM SEG (Modality is '{modality}')"),
        ));
    }
    let rows = uint(&obj, path, tags::ROWS, "Rows")?;
    let cols = uint(&obj, path, tags::COLUMNS, "Columns")?;
    let n_frames = frame_count(&obj, path)?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    if !matches!(
        ts.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2"
    ) {
        return Err(IoError::unsupported(
            path,
            format!("a SEG with compressed pixel data (transfer syntax {ts})"),
        ));
    }
    let pixels = frame_pixels(path, &obj, rows, cols, n_frames)?;
    let per_frame = per_frame_groups(path, &obj, n_frames)?;
    let planes = plane_geometry(path, &obj, &per_frame)?;
    let frames = frame_positions(path, &per_frame, n_frames)?;
    let segments = items(&obj, tags::SEGMENT_SEQUENCE)
        .iter()
        .filter_map(|s| {
            let number = s
                .element_opt(tags::SEGMENT_NUMBER)
                .ok()
                .flatten()
                .and_then(|e| e.to_int::<u16>().ok())?;
            Some(SegmentInfo {
                number,
                label: text(s, tags::SEGMENT_LABEL),
                frames: frames.iter().filter(|(n, _)| *n == number).count(),
            })
        })
        .collect();
    Ok(Segmentation {
        segments,
        rows,
        cols,
        orientation: planes.orientation,
        pixel_spacing: planes.pixel_spacing,
        plane_step: planes.plane_step,
        frames,
        pixels,
    })
}

/// The frames' pixels, one byte (0 or 1) each: BINARY bits unpacked, FRACTIONAL values
/// thresholded at half their maximum. Only uncompressed transfer syntaxes are read.
fn frame_pixels(
    path: &Path,
    obj: &InMemDicomObject,
    rows: usize,
    cols: usize,
    n_frames: usize,
) -> Result<Vec<u8>> {
    let bits = uint(obj, path, tags::BITS_ALLOCATED, "BitsAllocated")?;
    let kind = text(obj, tags::SEGMENTATION_TYPE);
    let plane = rows
        .checked_mul(cols)
        .filter(|p| *p > 0)
        .ok_or_else(|| IoError::format(path, format!("empty frames: {rows}×{cols}")))?;
    let total = plane
        .checked_mul(n_frames)
        .ok_or_else(|| IoError::format(path, "frame count overflows"))?;
    let raw = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| IoError::format(path, "no pixel data"))?
        .to_bytes()
        .map_err(|e| IoError::format(path, format!("cannot read the pixel data: {e}")))?;
    let truncated = |expected: usize| IoError::Truncated {
        path: path.to_path_buf(),
        expected: expected as u64,
        got: raw.len() as u64,
    };
    match (kind.as_str(), bits) {
        ("BINARY", 1) => {
            if raw.len() * 8 < total {
                return Err(truncated(total.div_ceil(8)));
            }
            // Bits are packed across frame boundaries, least significant bit first.
            Ok((0..total).map(|n| (raw[n / 8] >> (n % 8)) & 1).collect())
        }
        ("FRACTIONAL", 8) => {
            if raw.len() < total {
                return Err(truncated(total));
            }
            let max = obj
                .element_opt(tags::MAXIMUM_FRACTIONAL_VALUE)
                .ok()
                .flatten()
                .and_then(|e| e.to_int::<u32>().ok())
                .unwrap_or(255)
                .max(1);
            Ok(raw[..total]
                .iter()
                .map(|&v| u8::from(2 * u32::from(v) >= max))
                .collect())
        }
        _ => Err(IoError::unsupported(
            path,
            format!("SegmentationType '{kind}' with BitsAllocated {bits}"),
        )),
    }
}

/// What every frame's plane shares: orientation, pixel spacing, and the step between planes
/// when the SEG states one.
struct PlaneGeometry {
    orientation: [f64; 6],
    pixel_spacing: [f64; 2],
    plane_step: Option<f64>,
}

/// The per-frame functional groups, at least one per frame (extra groups beyond
/// NumberOfFrames, seen in files cut down to fewer frames, describe no stored frame).
fn per_frame_groups(
    path: &Path,
    obj: &InMemDicomObject,
    n_frames: usize,
) -> Result<Vec<InMemDicomObject>> {
    let per_frame = items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.len() < n_frames {
        return Err(IoError::format(
            path,
            format!(
                "{} per-frame functional groups for {n_frames} frames",
                per_frame.len()
            ),
        ));
    }
    if n_frames == 0 {
        return Err(IoError::format(
            path,
            "a SEG without frames (NumberOfFrames 0)",
        ));
    }
    Ok(per_frame)
}

/// The planes' geometry, from the first frame's groups or else the shared ones.
fn plane_geometry(
    path: &Path,
    obj: &InMemDicomObject,
    per_frame: &[InMemDicomObject],
) -> Result<PlaneGeometry> {
    let shared = items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let first = &per_frame[0];
    // A value from the frame's own groups, else from the shared groups.
    let lookup = |seq, tag| {
        in_group(first, seq, tag).or_else(|| shared.first().and_then(|s| in_group(s, seq, tag)))
    };
    let orientation: [f64; 6] = lookup(
        tags::PLANE_ORIENTATION_SEQUENCE,
        tags::IMAGE_ORIENTATION_PATIENT,
    )
    .and_then(|v| v.try_into().ok())
    .ok_or_else(|| {
        IoError::format(
            path,
            "ImageOrientationPatient is missing from the functional groups",
        )
    })?;
    let pixel_spacing: [f64; 2] = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
        .and_then(|v| v.try_into().ok())
        .filter(|s: &[f64; 2]| s.iter().all(|v| *v > 0.0 && v.is_finite()))
        .ok_or_else(|| {
            IoError::format(path, "PixelSpacing is missing from the functional groups")
        })?;
    let plane_step = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::SPACING_BETWEEN_SLICES)
        .and_then(|v| v.first().copied())
        .filter(|v| *v > 0.0);
    Ok(PlaneGeometry {
        orientation,
        pixel_spacing,
        plane_step,
    })
}

/// Each frame's segment number and plane position.
fn frame_positions(
    path: &Path,
    per_frame: &[InMemDicomObject],
    n_frames: usize,
) -> Result<Vec<(u16, [f64; 3])>> {
    let mut frames = Vec::with_capacity(n_frames);
    for (n, frame) in per_frame.iter().take(n_frames).enumerate() {
        let position: [f64; 3] = in_group(
            frame,
            tags::PLANE_POSITION_SEQUENCE,
            tags::IMAGE_POSITION_PATIENT,
        )
        .and_then(|v| v.try_into().ok())
        .filter(|p: &[f64; 3]| p.iter().all(|v| v.is_finite()))
        .ok_or_else(|| {
            IoError::format(
                path,
                format!("frame {}: ImagePositionPatient is missing", n + 1),
            )
        })?;
        let segment = items(frame, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .first()
            .and_then(|i| {
                i.element_opt(tags::REFERENCED_SEGMENT_NUMBER)
                    .ok()
                    .flatten()
            })
            .and_then(|e| e.to_int::<u16>().ok())
            .ok_or_else(|| {
                IoError::format(
                    path,
                    format!("frame {}: ReferencedSegmentNumber is missing", n + 1),
                )
            })?;
        frames.push((segment, position));
    }
    Ok(frames)
}

/// The segments of a SEG file.
pub fn list_segments(path: &Path) -> Result<Vec<SegmentInfo>> {
    Ok(read_segmentation(path)?.segments)
}

/// The mask of segment `label` (case-insensitive) of a SEG file, on `grid` (e.g. the geometry of
/// the referenced CT series) or, without one, on the grid the segment's own frames span.
///
/// Frames must lie on the grid's planes (same orientation and pixel spacing, in-plane offset a
/// whole number of pixels, plane within half a slice); a SEG drawn on another grid is an error,
/// not a silent resampling.
pub fn read_seg_mask(path: &Path, grid: Option<&Geometry>, label: &str) -> Result<Mask> {
    let seg = read_segmentation(path)?;
    let segment = seg
        .segments
        .iter()
        .find(|s| s.label.eq_ignore_ascii_case(label))
        .ok_or_else(|| {
            let names: Vec<String> = seg
                .segments
                .iter()
                .map(|s| format!("'{}'", s.label))
                .collect();
            IoError::format(
                path,
                format!("no segment labelled '{label}'; it has {}", names.join(", ")),
            )
        })?;
    let frames: Vec<(usize, [f64; 3])> = seg
        .frames
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n == segment.number)
        .map(|(i, (_, p))| (i, *p))
        .collect();
    if frames.is_empty() {
        return Err(IoError::format(
            path,
            format!("segment '{}' has no frames", segment.label),
        ));
    }
    let geometry = match grid {
        Some(g) => g.clone(),
        None => own_grid(path, &seg, &frames)?,
    };
    let to_voxel = invert_affine(&flip_lps_ras(&geometry.affine))?;
    let [nx, ny, nz] = geometry.shape;
    if (seg.cols, seg.rows) != (nx, ny) {
        return Err(IoError::format(
            path,
            format!(
                "frames of {}×{} pixels do not fit the {nx}×{ny} grid of the image",
                seg.rows, seg.cols
            ),
        ));
    }
    let plane = seg.rows * seg.cols;
    let mut data = vec![0u8; geometry.len()];
    for (frame, p) in frames {
        let mut v = [0.0; 3];
        for (r, out) in v.iter_mut().enumerate() {
            *out = (0..3).map(|c| to_voxel[r][c] * p[c]).sum::<f64>() + to_voxel[r][3];
        }
        let k = v[2].round();
        if v[0].abs() > 0.01 || v[1].abs() > 0.01 || k < 0.0 || k >= nz as f64 {
            return Err(IoError::format(
                path,
                format!(
                    "frame {} at {p:?} does not lie on a plane of the image grid (voxel position \
                     {:.2}, {:.2}, {:.2})",
                    frame + 1,
                    v[0],
                    v[1],
                    v[2]
                ),
            ));
        }
        let k = k as usize;
        let src = &seg.pixels[frame * plane..(frame + 1) * plane];
        let dst = &mut data[k * plane..(k + 1) * plane];
        for (d, s) in dst.iter_mut().zip(src) {
            *d |= s;
        }
    }
    Mask::new(geometry, data)
}

/// The grid spanned by `frames`: from the lowest to the highest plane along the normal.
fn own_grid(path: &Path, seg: &Segmentation, frames: &[(usize, [f64; 3])]) -> Result<Geometry> {
    let o = seg.orientation;
    let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let along = |p: &[f64; 3]| (0..3).map(|i| p[i] * normal[i]).sum::<f64>();
    let mut positions: Vec<[f64; 3]> = frames.iter().map(|(_, p)| *p).collect();
    positions.sort_by(|a, b| along(a).total_cmp(&along(b)));
    positions.dedup_by(|a, b| (along(a) - along(b)).abs() < 1e-6);
    // SpacingBetweenSlices when given (a segment may skip planes); else the smallest gap.
    let step = seg
        .plane_step
        .or_else(|| {
            positions
                .windows(2)
                .map(|w| along(&w[1]) - along(&w[0]))
                .min_by(f64::total_cmp)
        })
        .unwrap_or(1.0);
    let first = positions[0];
    let span = along(&positions[positions.len() - 1]) - along(&first);
    let planes = (span / step).round() as usize + 1;
    if planes > 10_000 {
        return Err(IoError::format(
            path,
            format!("frames span {planes} planes"),
        ));
    }
    let [sr, sc] = seg.pixel_spacing; // PixelSpacing: between rows, between columns
    let mut lps = identity();
    for r in 0..3 {
        lps[r][0] = row[r] * sc;
        lps[r][1] = col[r] * sr;
        lps[r][2] = normal[r] * step;
        lps[r][3] = first[r];
    }
    Ok(Geometry {
        shape: [seg.cols, seg.rows, planes],
        spacing: [sc, sr, step],
        affine: flip_lps_ras(&lps),
    })
}
