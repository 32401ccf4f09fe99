//! Writing a label map as an RTSTRUCT on the series it was computed from: one ROI per label,
//! closed planar contours per slice along the mask's pixel boundaries (holes as contours of
//! their own, which the even-odd rule of planning systems and of cmedl's reader cuts out), in
//! patient coordinates, each referencing its image.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::derived::{
    check_derivable, item, new_uid, save_derived, sq, text, SegmentSpec, COLOURS,
};
use super::series::SeriesVolume;
use crate::error::Result;
use crate::volume::Mask;

const RT_STRUCTURE_SET: &str = "1.2.840.10008.5.1.4.1.1.481.3";
const STUDY_COMPONENT: &str = "1.2.840.10008.3.1.2.3.1";

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

/// Writes `mask` (on `series`' grid) as an RTSTRUCT to `path` with one ROI per entry of `rois`.
pub fn write_rtstruct(
    path: &Path,
    series: &SeriesVolume,
    mask: &Mask,
    rois: &[SegmentSpec],
) -> Result<()> {
    check_derivable(path, series, mask, "an RTSTRUCT")?;
    let g = &series.volume.geometry;
    let src = &series.source;
    let [nx, ny, nz] = g.shape;
    let image_ref = |k: usize| {
        item(vec![
            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid),
            text(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                &src.instance_uids[k],
            ),
        ])
    };
    // Corner (ci, cj) of slice k in LPS millimetres.
    let lps = |ci: usize, cj: usize, k: usize| {
        let w = g.world([ci as f64 - 0.5, cj as f64 - 0.5, k as f64]);
        [-w[0], -w[1], w[2]]
    };
    let mut roi_items = Vec::new();
    let mut contour_items = Vec::new();
    let mut observations = Vec::new();
    for (n, roi) in rois.iter().enumerate() {
        let number = (n + 1).to_string();
        let mut contours = Vec::new();
        for k in 0..nz {
            for corners in boundaries(mask.slice(k), nx, ny, roi.label) {
                let data: Vec<String> = corners
                    .iter()
                    .flat_map(|&(ci, cj)| lps(ci, cj, k))
                    .map(|v| format!("{v:.4}"))
                    .collect();
                contours.push(item(vec![
                    sq(tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(k)]),
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
        roi_items.push(item(vec![
            text(tags::ROI_NUMBER, VR::IS, &number),
            text(
                tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                VR::UI,
                &src.frame_of_reference_uid,
            ),
            text(tags::ROI_NAME, VR::LO, &roi.name),
            text(tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC"),
        ]));
        let colour = COLOURS[n % COLOURS.len()];
        let colour = format!("{}\\{}\\{}", colour[0], colour[1], colour[2]);
        contour_items.push(item(vec![
            text(tags::ROI_DISPLAY_COLOR, VR::IS, &colour),
            sq(tags::CONTOUR_SEQUENCE, contours),
            text(tags::REFERENCED_ROI_NUMBER, VR::IS, &number),
        ]));
        observations.push(item(vec![
            text(tags::OBSERVATION_NUMBER, VR::IS, &number),
            text(tags::REFERENCED_ROI_NUMBER, VR::IS, &number),
            text(tags::RTROI_INTERPRETED_TYPE, VR::CS, "ORGAN"),
            text(tags::ROI_INTERPRETER, VR::PN, ""),
        ]));
    }
    let referenced_frame = item(vec![
        text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &src.frame_of_reference_uid,
        ),
        sq(
            tags::RT_REFERENCED_STUDY_SEQUENCE,
            vec![item(vec![
                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_COMPONENT),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &src.study_uid),
                sq(
                    tags::RT_REFERENCED_SERIES_SEQUENCE,
                    vec![item(vec![
                        text(tags::SERIES_INSTANCE_UID, VR::UI, &series.uid),
                        sq(
                            tags::CONTOUR_IMAGE_SEQUENCE,
                            (0..nz).map(image_ref).collect(),
                        ),
                    ])],
                ),
            ])],
        ),
    ]);
    let sop_instance = new_uid(3);
    let elements = vec![
        text(tags::SOP_CLASS_UID, VR::UI, RT_STRUCTURE_SET),
        text(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance),
        text(tags::MODALITY, VR::CS, "RTSTRUCT"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &src.study_uid),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid(4)),
        text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &src.frame_of_reference_uid,
        ),
        text(tags::SERIES_NUMBER, VR::IS, "301"),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(tags::MANUFACTURER, VR::LO, "cmedl"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        text(tags::SERIES_DESCRIPTION, VR::LO, "cmedl contours"),
        text(tags::STRUCTURE_SET_LABEL, VR::SH, "CMEDL"),
        sq(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            vec![referenced_frame],
        ),
        sq(tags::STRUCTURE_SET_ROI_SEQUENCE, roi_items),
        sq(tags::ROI_CONTOUR_SEQUENCE, contour_items),
        sq(tags::RTROI_OBSERVATIONS_SEQUENCE, observations),
    ];
    save_derived(path, series, elements, RT_STRUCTURE_SET, &sop_instance)
}
