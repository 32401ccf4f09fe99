//! Writing a label map as an RTSTRUCT on the series it was computed from: one ROI per label,
//! closed planar contours per slice along the mask's pixel boundaries (holes as contours of
//! their own, which the even-odd rule of planning systems and of cmedl's reader cuts out), in
//! patient coordinates, each referencing its image.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::tags;

use dicom_core::DataElement;
use dicom_object::mem::InMemDicomObject;

use super::derived::{
    check_derivable, equipment_module, frame_of_reference_module, general_study_module, image_ref,
    item, new_uid, now_date_time, patient_module, save_derived, series_module, sop_common_module,
    sq, text, DerivedIds, SegmentSpec, COLOURS,
};
use super::series::SeriesVolume;
use crate::error::Result;
use crate::volume::Mask;

const RT_STRUCTURE_SET: &str = "1.2.840.10008.5.1.4.1.1.481.3";
const STUDY_COMPONENT: &str = "1.2.840.10008.3.1.2.3.1";

type Elements = Vec<DataElement<InMemDicomObject>>;

/// A corner of the pixel grid: corner (i, j) is the low corner of pixel (i, j).
type Corner = (usize, usize);

/// The closed boundaries of the pixels of `plane` (`nx × ny`) equal to `label`, as corner
/// loops with the region on their left; collinear corners are dropped.
pub(crate) fn boundaries(plane: &[u8], nx: usize, ny: usize, label: u8) -> Vec<Vec<Corner>> {
    let on = |i: isize, j: isize| {
        i >= 0
            && j >= 0
            && (i as usize) < nx
            && (j as usize) < ny
            && plane[i as usize + nx * j as usize] == label
    };
    // Directed boundary edges, by start corner.
    let mut edges: BTreeMap<Corner, Vec<Corner>> = BTreeMap::new();
    let mut count = 0usize;
    for j in 0..ny {
        for i in 0..nx {
            if plane[i + nx * j] != label {
                continue;
            }
            let (ii, jj) = (i as isize, j as isize);
            let mut add = |a: Corner, b: Corner| {
                edges.entry(a).or_default().push(b);
                count += 1;
            };
            if !on(ii, jj - 1) {
                add((i, j), (i + 1, j));
            }
            if !on(ii + 1, jj) {
                add((i + 1, j), (i + 1, j + 1));
            }
            if !on(ii, jj + 1) {
                add((i + 1, j + 1), (i, j + 1));
            }
            if !on(ii - 1, jj) {
                add((i, j + 1), (i, j));
            }
        }
    }
    let mut loops = Vec::new();
    while let Some((&start, _)) = edges.iter().find(|(_, ends)| !ends.is_empty()) {
        let mut path = vec![start];
        let mut at = start;
        let mut from: Option<Corner> = None;
        while let Some(ends) = edges.get_mut(&at).filter(|e| !e.is_empty()) {
            // Where two loops touch at a corner (pixels meeting diagonally), turn left: each
            // pixel group keeps a contour of its own instead of a figure of eight.
            let turn = |to: &Corner| match from {
                Some(f) => {
                    let d_in = (at.0 as isize - f.0 as isize, at.1 as isize - f.1 as isize);
                    let d_out = (to.0 as isize - at.0 as isize, to.1 as isize - at.1 as isize);
                    d_in.0 * d_out.1 - d_in.1 * d_out.0
                }
                None => 0,
            };
            let pick = (0..ends.len()).max_by_key(|&n| turn(&ends[n])).unwrap_or(0);
            let next = ends.swap_remove(pick);
            from = Some(at);
            count -= 1;
            if next == start {
                break;
            }
            path.push(next);
            at = next;
        }
        loops.push(simplify(path));
    }
    debug_assert_eq!(count, 0, "every boundary edge belongs to a loop");
    loops
}

/// Drops corners where a loop goes straight on.
fn simplify(path: Vec<Corner>) -> Vec<Corner> {
    let n = path.len();
    (0..n)
        .filter(|&k| {
            let (a, b, c) = (path[(k + n - 1) % n], path[k], path[(k + 1) % n]);
            let d1 = (b.0 as isize - a.0 as isize, b.1 as isize - a.1 as isize);
            let d2 = (c.0 as isize - b.0 as isize, c.1 as isize - b.1 as isize);
            d1.0 * d2.1 - d1.1 * d2.0 != 0
        })
        .map(|k| path[k])
        .collect()
}

/// One ROI's contours: closed planar loops along the mask's pixel boundaries, slice by slice,
/// in LPS millimetres, each referencing its image.
fn roi_contours(series: &SeriesVolume, mask: &Mask, label: u8) -> Vec<InMemDicomObject> {
    let g = &series.volume.geometry;
    let [nx, ny, nz] = g.shape;
    // Corner (ci, cj) of slice k in LPS millimetres.
    let lps = |ci: usize, cj: usize, k: usize| {
        let w = g.world([ci as f64 - 0.5, cj as f64 - 0.5, k as f64]);
        [-w[0], -w[1], w[2]]
    };
    let mut contours = Vec::new();
    for k in 0..nz {
        for corners in boundaries(mask.slice(k), nx, ny, label) {
            let data: Vec<String> = corners
                .iter()
                .flat_map(|&(ci, cj)| lps(ci, cj, k))
                .map(|v| format!("{v:.4}"))
                .collect();
            contours.push(item(vec![
                sq(tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(series, k)]),
                text(tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR"),
                text(
                    tags::NUMBER_OF_CONTOUR_POINTS,
                    VR::IS,
                    &corners.len().to_string(),
                ),
                text(tags::CONTOUR_DATA, VR::DS, &data.join("\\")),
            ]));
        }
    }
    contours
}

/// Structure Set module: label, date and time, the referenced frame of reference (study,
/// series, every image) and one Structure Set ROI item per ROI.
fn structure_set_module(series: &SeriesVolume, ids: &DerivedIds, rois: &[SegmentSpec]) -> Elements {
    let (date, time) = now_date_time();
    let referenced_frame = item(vec![
        text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &ids.frame_of_reference,
        ),
        sq(
            tags::RT_REFERENCED_STUDY_SEQUENCE,
            vec![item(vec![
                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_COMPONENT),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &ids.study),
                sq(
                    tags::RT_REFERENCED_SERIES_SEQUENCE,
                    vec![item(vec![
                        text(tags::SERIES_INSTANCE_UID, VR::UI, &ids.series),
                        sq(
                            tags::CONTOUR_IMAGE_SEQUENCE,
                            (0..series.volume.geometry.shape[2])
                                .map(|k| image_ref(series, k))
                                .collect(),
                        ),
                    ])],
                ),
            ])],
        ),
    ]);
    let roi_items = rois
        .iter()
        .enumerate()
        .map(|(n, roi)| {
            item(vec![
                text(tags::ROI_NUMBER, VR::IS, &(n + 1).to_string()),
                text(
                    tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                    VR::UI,
                    &ids.frame_of_reference,
                ),
                text(tags::ROI_NAME, VR::LO, &roi.name),
                text(tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC"),
            ])
        })
        .collect();
    vec![
        text(tags::STRUCTURE_SET_LABEL, VR::SH, "CMEDL"),
        text(tags::STRUCTURE_SET_DATE, VR::DA, &date),
        text(tags::STRUCTURE_SET_TIME, VR::TM, &time),
        sq(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            vec![referenced_frame],
        ),
        sq(tags::STRUCTURE_SET_ROI_SEQUENCE, roi_items),
    ]
}

/// ROI Contour module: each ROI's colour and contours (an ROI the mask lacks has none: the
/// sequence is left out rather than written empty).
fn roi_contour_module(series: &SeriesVolume, mask: &Mask, rois: &[SegmentSpec]) -> Elements {
    let items = rois
        .iter()
        .enumerate()
        .map(|(n, roi)| {
            let colour = COLOURS[n % COLOURS.len()];
            let mut e = vec![
                text(
                    tags::ROI_DISPLAY_COLOR,
                    VR::IS,
                    &format!("{}\\{}\\{}", colour[0], colour[1], colour[2]),
                ),
                text(tags::REFERENCED_ROI_NUMBER, VR::IS, &(n + 1).to_string()),
            ];
            let contours = roi_contours(series, mask, roi.label);
            if !contours.is_empty() {
                e.push(sq(tags::CONTOUR_SEQUENCE, contours));
            }
            item(e)
        })
        .collect();
    vec![sq(tags::ROI_CONTOUR_SEQUENCE, items)]
}

/// RT ROI Observations module: one observation per ROI.
fn rt_roi_observations_module(rois: &[SegmentSpec]) -> Elements {
    let items = (1..=rois.len())
        .map(|n| {
            item(vec![
                text(tags::OBSERVATION_NUMBER, VR::IS, &n.to_string()),
                text(tags::REFERENCED_ROI_NUMBER, VR::IS, &n.to_string()),
                text(tags::RTROI_INTERPRETED_TYPE, VR::CS, "ORGAN"),
                text(tags::ROI_INTERPRETER, VR::PN, ""),
            ])
        })
        .collect();
    vec![sq(tags::RTROI_OBSERVATIONS_SEQUENCE, items)]
}

/// Writes `mask` (on `series`' grid) as an RTSTRUCT to `path` with one ROI per entry of
/// `rois`, module by module as the RT Structure Set IOD lists them (PS3.3 A.19).
pub fn write_rtstruct(
    path: &Path,
    series: &SeriesVolume,
    mask: &Mask,
    rois: &[SegmentSpec],
) -> Result<()> {
    check_derivable(path, series, mask, "an RTSTRUCT")?;
    let ids = DerivedIds::of(series, path);
    let sop_instance = new_uid(3);
    let mut e = patient_module(series);
    e.extend(general_study_module(series, &ids));
    // RT Series: Operators' Name is Type 2 (no operator: empty).
    e.extend(series_module("RTSTRUCT", "301", "cmedl contours"));
    e.push(text(tags::OPERATORS_NAME, VR::PN, ""));
    e.extend(frame_of_reference_module(series, &ids));
    e.extend(equipment_module());
    e.push(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    e.extend(structure_set_module(series, &ids, rois));
    e.extend(roi_contour_module(series, mask, rois));
    e.extend(rt_roi_observations_module(rois));
    e.extend(sop_common_module(RT_STRUCTURE_SET, &sop_instance));
    save_derived(path, e, RT_STRUCTURE_SET, &sop_instance)
}
