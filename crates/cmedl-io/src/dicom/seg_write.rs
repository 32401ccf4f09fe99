//! Writing a label map as a DICOM SEG (BINARY) on the planes of the series it was computed
//! from: one segment per label, frames only where a label is present, every frame referencing
//! its source image, patient and study attributes copied from the series.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use super::derived::{
    check_derivable, dicom_lab, item, new_uid, save_derived, sq, text, SegmentSpec, COLOURS,
};
use super::series::SeriesVolume;
use crate::error::{IoError, Result};
use crate::geometry::flip_lps_ras;
use crate::volume::Mask;

const SEG_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

fn ds(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::from(
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join("\\"),
    )
}

/// Writes `mask` (on `series`' grid) as a BINARY SEG to `path`: segments `segments`, frames
/// for the slices where each segment's label occurs (one empty frame when none does).
pub fn write_seg(
    path: &Path,
    series: &SeriesVolume,
    mask: &Mask,
    segments: &[SegmentSpec],
) -> Result<()> {
    check_derivable(path, series, mask, "a SEG")?;
    let g = &series.volume.geometry;
    let src = &series.source;
    if segments.is_empty() {
        return Err(IoError::format(path, "a SEG needs at least one segment"));
    }
    let [nx, ny, nz] = g.shape;
    let (rows, cols) = (
        u16::try_from(ny).map_err(|_| IoError::format(path, "more than 65535 rows"))?,
        u16::try_from(nx).map_err(|_| IoError::format(path, "more than 65535 columns"))?,
    );
    // LPS geometry: directions and positions as the images state them.
    let lps = flip_lps_ras(&g.affine);
    let unit = |c: usize| {
        let v = [lps[0][c], lps[1][c], lps[2][c]];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        [v[0] / n, v[1] / n, v[2] / n]
    };
    let (row_dir, col_dir) = (unit(0), unit(1));
    let position = |k: usize| {
        [
            lps[0][2] * k as f64 + lps[0][3],
            lps[1][2] * k as f64 + lps[1][3],
            lps[2][2] * k as f64 + lps[2][3],
        ]
    };
    // Frames: (segment number, slice) for every slice holding the segment's label.
    let mut frames: Vec<(u16, usize)> = Vec::new();
    for (n, s) in segments.iter().enumerate() {
        for k in 0..nz {
            if mask.slice(k).contains(&s.label) {
                frames.push((n as u16 + 1, k));
            }
        }
    }
    if frames.is_empty() {
        frames.push((1, 0));
    }
    let plane = nx * ny;
    let mut packed = vec![0u8; (frames.len() * plane).div_ceil(8)];
    for (f, &(segment, k)) in frames.iter().enumerate() {
        let label = segments[usize::from(segment) - 1].label;
        for (p, &v) in mask.slice(k).iter().enumerate() {
            if v == label {
                let bit = f * plane + p;
                packed[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    if packed.len() % 2 == 1 {
        packed.push(0);
    }
    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .map(|&(segment, k)| {
            item(vec![
                sq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![item(vec![sq(
                        tags::SOURCE_IMAGE_SEQUENCE,
                        vec![item(vec![
                            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid),
                            text(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                &src.instance_uids[k],
                            ),
                        ])],
                    )])],
                ),
                sq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32(dicom_core::smallvec::smallvec![
                            u32::from(segment),
                            k as u32 + 1
                        ]),
                    )])],
                ),
                sq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds(&position(k)),
                    )])],
                ),
                sq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        PrimitiveValue::from(segment),
                    )])],
                ),
            ])
        })
        .collect();
    let shared = item(vec![
        sq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&[
                    row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
                ]),
            )])],
        ),
        sq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                // Row spacing (between rows, along j), then column spacing.
                DataElement::new(
                    tags::PIXEL_SPACING,
                    VR::DS,
                    ds(&[g.spacing[1], g.spacing[0]]),
                ),
                DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[g.spacing[2]])),
                DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[g.spacing[2]])),
            ])],
        ),
    ]);
    let segment_items: Vec<InMemDicomObject> = segments
        .iter()
        .enumerate()
        .map(|(n, s)| {
            item(vec![
                DataElement::new(
                    tags::SEGMENT_NUMBER,
                    VR::US,
                    PrimitiveValue::from(n as u16 + 1),
                ),
                text(tags::SEGMENT_LABEL, VR::LO, &s.name),
                text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
                text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "cmedl"),
                DataElement::new(
                    tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
                    VR::US,
                    PrimitiveValue::U16(
                        dicom_lab(COLOURS[n % COLOURS.len()])
                            .iter()
                            .copied()
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    let referenced = item(vec![
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series.uid),
        sq(
            tags::REFERENCED_INSTANCE_SEQUENCE,
            src.instance_uids
                .iter()
                .map(|uid| {
                    item(vec![
                        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid),
                        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid),
                    ])
                })
                .collect(),
        ),
    ]);
    let sop_instance = new_uid(1);
    let elements = vec![
        text(tags::SOP_CLASS_UID, VR::UI, SEG_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance),
        text(tags::MODALITY, VR::CS, "SEG"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &src.study_uid),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid(2)),
        text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &src.frame_of_reference_uid,
        ),
        text(tags::SERIES_NUMBER, VR::IS, "300"),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(tags::MANUFACTURER, VR::LO, "cmedl"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        text(tags::SERIES_DESCRIPTION, VR::LO, "cmedl segmentation"),
        text(tags::CONTENT_LABEL, VR::CS, "CMEDL"),
        text(tags::CONTENT_CREATOR_NAME, VR::PN, "cmedl"),
        text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        sq(tags::REFERENCED_SERIES_SEQUENCE, vec![referenced]),
        sq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        text(tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string()),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(cols)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        text(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        sq(tags::SEGMENT_SEQUENCE, segment_items),
        sq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(packed)),
    ];
    save_derived(path, series, elements, SEG_STORAGE, &sop_instance)
}
