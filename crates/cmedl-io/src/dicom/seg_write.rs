//! Writing a label map as a DICOM SEG (BINARY) on the planes of the series it was computed
//! from: one segment per label, frames only where a label is present, every frame referencing
//! its source image, patient and study attributes copied from the series.
//!
//! The data set is built as the Segmentation IOD lists its modules (PS3.3 A.51), one function
//! each, as highdicom builds it: patient, general study, segmentation series, frame of
//! reference, enhanced general equipment, segmentation image (with the segment descriptions),
//! multi-frame functional groups (shared and per frame), multi-frame dimension, common instance
//! reference and SOP common.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use super::derived::{
    check_derivable, dicom_lab, equipment_module, frame_of_reference_module, general_study_module,
    image_ref, item, new_uid, now_date_time, patient_module, save_derived, series_module,
    sop_common_module, sq, text, Code, DerivedIds, SegmentSpec, COLOURS,
};
use super::series::SeriesVolume;
use crate::error::{IoError, Result};
use crate::geometry::flip_lps_ras;
use crate::volume::Mask;

const SEG_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

type Elements = Vec<DataElement<InMemDicomObject>>;

fn ds(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::from(
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join("\\"),
    )
}

fn us(tag: Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// The frames of a SEG: (segment number, slice) for every slice holding the segment's label
/// (one empty frame of segment 1 when no label occurs anywhere).
fn frames(mask: &Mask, segments: &[SegmentSpec]) -> Vec<(u16, usize)> {
    let nz = mask.geometry.shape[2];
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
    frames
}

/// The frames' bits, packed 8 pixels a byte (first pixel in the lowest bit), padded to an even
/// length.
fn packed_bits(mask: &Mask, segments: &[SegmentSpec], frames: &[(u16, usize)]) -> Vec<u8> {
    let plane = mask.geometry.shape[0] * mask.geometry.shape[1];
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
    packed
}

/// One Segment Sequence item: number, label, coded category and type, the algorithm that
/// made it, and its display colour.
fn segment_description(n: usize, s: &SegmentSpec) -> InMemDicomObject {
    item(vec![
        us(tags::SEGMENT_NUMBER, n as u16 + 1),
        text(tags::SEGMENT_LABEL, VR::LO, &s.name),
        sq(
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![s.category.item()],
        ),
        sq(
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![s.kind.item()],
        ),
        text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "cmedl"),
        sq(
            tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
            vec![item(vec![
                sq(
                    tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                    vec![Code::new("123110", "DCM", "Artificial Intelligence").item()],
                ),
                text(tags::ALGORITHM_NAME, VR::LO, "cmedl"),
                text(tags::ALGORITHM_VERSION, VR::LO, env!("CARGO_PKG_VERSION")),
            ])],
        ),
        DataElement::new(
            tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
            VR::US,
            PrimitiveValue::U16(dicom_lab(COLOURS[n % COLOURS.len()]).into_iter().collect()),
        ),
    ])
}

/// Segmentation Image module (with General Image, Image Pixel and Content Identification):
/// a BINARY segmentation of `rows × cols` frames and its segments.
fn segmentation_image_module(segments: &[SegmentSpec], rows: u16, cols: u16) -> Elements {
    vec![
        text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        text(tags::CONTENT_LABEL, VR::CS, "CMEDL"),
        text(
            tags::CONTENT_DESCRIPTION,
            VR::LO,
            "segmentation by a cmedl network",
        ),
        text(tags::CONTENT_CREATOR_NAME, VR::PN, ""),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 1),
        us(tags::BITS_STORED, 1),
        us(tags::HIGH_BIT, 0),
        us(tags::PIXEL_REPRESENTATION, 0),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        text(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        sq(
            tags::SEGMENT_SEQUENCE,
            segments
                .iter()
                .enumerate()
                .map(|(n, s)| segment_description(n, s))
                .collect(),
        ),
    ]
}

/// Multi-frame Functional Groups module (its own attributes): frame count, instance number,
/// content date and time.
fn multi_frame_module(frames: usize) -> Elements {
    let (date, time) = now_date_time();
    vec![
        text(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string()),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(tags::CONTENT_DATE, VR::DA, &date),
        text(tags::CONTENT_TIME, VR::TM, &time),
    ]
}

/// Multi-frame Dimension module: frames are indexed by segment number, then by the position
/// of their plane (as highdicom indexes a segmentation in the patient coordinate system).
fn dimension_module() -> Elements {
    let organization = new_uid(5);
    let index = |pointer: Tag, group: Tag, label: &str| {
        item(vec![
            text(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &organization),
            DataElement::new(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(std::iter::once(pointer).collect()),
            ),
            DataElement::new(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(std::iter::once(group).collect()),
            ),
            text(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    vec![
        sq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![item(vec![text(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                &organization,
            )])],
        ),
        text(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D"),
        sq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                index(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    "Segment Number",
                ),
                index(
                    tags::IMAGE_POSITION_PATIENT,
                    tags::PLANE_POSITION_SEQUENCE,
                    "Image Position Patient",
                ),
            ],
        ),
    ]
}

/// The series' planes in LPS, as its images state them.
struct Planes {
    lps: crate::geometry::Affine,
    spacing: [f64; 3],
}

impl Planes {
    fn of(series: &SeriesVolume) -> Self {
        let g = &series.volume.geometry;
        Self {
            lps: flip_lps_ras(&g.affine),
            spacing: g.spacing,
        }
    }

    fn direction(&self, c: usize) -> [f64; 3] {
        let v = [self.lps[0][c], self.lps[1][c], self.lps[2][c]];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        [v[0] / n, v[1] / n, v[2] / n]
    }

    fn position(&self, k: usize) -> [f64; 3] {
        let l = &self.lps;
        [
            l[0][2] * k as f64 + l[0][3],
            l[1][2] * k as f64 + l[1][3],
            l[2][2] * k as f64 + l[2][3],
        ]
    }
}

/// Shared Functional Groups: the plane orientation and pixel measures every frame shares.
fn shared_functional_groups(planes: &Planes) -> DataElement<InMemDicomObject> {
    let (row, col) = (planes.direction(0), planes.direction(1));
    let s = planes.spacing;
    sq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![item(vec![
            sq(
                tags::PLANE_ORIENTATION_SEQUENCE,
                vec![item(vec![DataElement::new(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    VR::DS,
                    ds(&[row[0], row[1], row[2], col[0], col[1], col[2]]),
                )])],
            ),
            sq(
                tags::PIXEL_MEASURES_SEQUENCE,
                vec![item(vec![
                    // Row spacing (between rows, along j), then column spacing.
                    DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[s[1], s[0]])),
                    DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[s[2]])),
                    DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[s[2]])),
                ])],
            ),
        ])],
    )
}

/// Per-frame Functional Groups: each frame's source image (with derivation and purpose
/// codes), dimension index values, plane position and segment.
fn per_frame_functional_groups(
    series: &SeriesVolume,
    planes: &Planes,
    frames: &[(u16, usize)],
) -> DataElement<InMemDicomObject> {
    let src = &series.source;
    let frame = |&(segment, k): &(u16, usize)| {
        item(vec![
            sq(
                tags::DERIVATION_IMAGE_SEQUENCE,
                vec![item(vec![
                    sq(
                        tags::DERIVATION_CODE_SEQUENCE,
                        vec![Code::new("113076", "DCM", "Segmentation").item()],
                    ),
                    sq(
                        tags::SOURCE_IMAGE_SEQUENCE,
                        vec![item(vec![
                            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid),
                            text(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                &src.instance_uids[k],
                            ),
                            sq(
                                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                                vec![Code::new(
                                    "121322",
                                    "DCM",
                                    "Source image for image processing operation",
                                )
                                .item()],
                            ),
                        ])],
                    ),
                ])],
            ),
            sq(
                tags::FRAME_CONTENT_SEQUENCE,
                vec![item(vec![DataElement::new(
                    tags::DIMENSION_INDEX_VALUES,
                    VR::UL,
                    PrimitiveValue::U32([u32::from(segment), k as u32 + 1].into()),
                )])],
            ),
            sq(
                tags::PLANE_POSITION_SEQUENCE,
                vec![item(vec![DataElement::new(
                    tags::IMAGE_POSITION_PATIENT,
                    VR::DS,
                    ds(&planes.position(k)),
                )])],
            ),
            sq(
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                vec![item(vec![us(tags::REFERENCED_SEGMENT_NUMBER, segment)])],
            ),
        ])
    };
    sq(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        frames.iter().map(frame).collect(),
    )
}

/// Common Instance Reference module: every image of the source series.
fn common_instance_reference_module(series: &SeriesVolume, ids: &DerivedIds) -> Elements {
    let src = &series.source;
    vec![sq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![item(vec![
            text(tags::SERIES_INSTANCE_UID, VR::UI, &ids.series),
            sq(
                tags::REFERENCED_INSTANCE_SEQUENCE,
                (0..src.instance_uids.len())
                    .map(|k| image_ref(series, k))
                    .collect(),
            ),
        ])],
    )]
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
    if segments.is_empty() {
        return Err(IoError::format(path, "a SEG needs at least one segment"));
    }
    let [nx, ny, _] = series.volume.geometry.shape;
    let (rows, cols) = (
        u16::try_from(ny).map_err(|_| IoError::format(path, "more than 65535 rows"))?,
        u16::try_from(nx).map_err(|_| IoError::format(path, "more than 65535 columns"))?,
    );
    let ids = DerivedIds::of(series, path);
    let frames = frames(mask, segments);
    let planes = Planes::of(series);
    let sop_instance = new_uid(1);
    let mut e = patient_module(series);
    e.extend(general_study_module(series, &ids));
    e.extend(series_module("SEG", "300", "cmedl segmentation"));
    e.extend(frame_of_reference_module(series, &ids));
    e.extend(equipment_module());
    e.extend(segmentation_image_module(segments, rows, cols));
    e.extend(multi_frame_module(frames.len()));
    e.push(shared_functional_groups(&planes));
    e.push(per_frame_functional_groups(series, &planes, &frames));
    e.extend(dimension_module());
    e.extend(common_instance_reference_module(series, &ids));
    e.extend(sop_common_module(SEG_STORAGE, &sop_instance));
    e.push(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(packed_bits(mask, segments, &frames)),
    ));
    save_derived(path, e, SEG_STORAGE, &sop_instance)
}
