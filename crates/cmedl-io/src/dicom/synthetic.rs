//! Small synthetic DICOM files written in code: CT slices, RTSTRUCTs and SEGs, for tests and
//! examples.

use std::path::Path;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use crate::error::{IoError, Result};

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// A DS (decimal string) value.
fn ds(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::from(
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join("\\"),
    )
}

/// One CT slice: 0.5 mm rows × 0.8 mm columns, rescale slope 2 and intercept −1024.
pub struct SliceSpec<'a> {
    /// SeriesInstanceUID.
    pub series: &'a str,
    /// InstanceNumber.
    pub instance: i32,
    /// ImagePositionPatient (LPS mm).
    pub position: [f64; 3],
    /// ImageOrientationPatient.
    pub orientation: [f64; 6],
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Stored values (HU = 2·value − 1024).
    pub pixels: Vec<i16>,
}

/// Writes one CT slice (explicit VR little endian).
pub fn write_slice(path: &Path, s: &SliceSpec<'_>) -> Result<()> {
    let sop = format!("1.2.3.{}.{}", s.series.len(), s.instance);
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(CT_IMAGE)),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(sop.as_str()),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(s.series),
        ),
        DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(s.instance.to_string()),
        ),
        DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&s.position)),
        DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&s.orientation)),
        DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[0.5, 0.8])),
        DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[9.9])),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME2"),
        ),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(s.rows)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(s.cols)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        ),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[2.0])),
        DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[-1024.0])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::I16(s.pixels.iter().copied().collect()),
        ),
    ]);
    save(path, obj)
}

/// An oblique in-plane orientation (rows along (0.8, 0.6, 0)).
pub const OBLIQUE: [f64; 6] = [0.8, 0.6, 0.0, -0.6, 0.8, 0.0];

/// Writes slices at heights `zs` (mm) with oblique rows, in shuffled file order and with
/// instance numbers running backwards; stored value `100 k + 10 j + i` for slice k = z / 2.5.
pub fn write_series(dir: &Path, series: &str, zs: &[f64], cols: u16, rows: u16) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| IoError::io(dir, e))?;
    let normal = [0.0, 0.0, 1.0];
    for (idx, &z) in zs.iter().enumerate() {
        let k = (z / 2.5).round() as i16;
        let pixels = (0..rows as i16)
            .flat_map(|j| (0..cols as i16).map(move |i| k * 100 + j * 10 + i))
            .collect();
        let position = [10.0 + normal[0] * z, -20.0 + normal[1] * z, 5.0 + z];
        let name = format!("{:03}.dcm", (idx * 7 + 3) % 97);
        write_slice(
            &dir.join(name),
            &SliceSpec {
                series,
                instance: 100 - idx as i32,
                position,
                orientation: OBLIQUE,
                cols,
                rows,
                pixels,
            },
        )?;
    }
    Ok(())
}

/// A closed planar contour through `points` (LPS x, y in mm) at height `z`.
pub fn contour(points: &[[f64; 2]], z: f64) -> InMemDicomObject {
    let data: Vec<f64> = points.iter().flat_map(|p| [p[0], p[1], z]).collect();
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::CONTOUR_GEOMETRIC_TYPE,
            VR::CS,
            PrimitiveValue::from("CLOSED_PLANAR"),
        ),
        DataElement::new(
            tags::NUMBER_OF_CONTOUR_POINTS,
            VR::IS,
            PrimitiveValue::from(points.len().to_string()),
        ),
        DataElement::new(tags::CONTOUR_DATA, VR::DS, ds(&data)),
    ])
}

/// Writes an RTSTRUCT referencing `series` with ROIs (number, name, contours).
pub fn write_rtstruct(
    path: &Path,
    series: &str,
    rois: &[(i32, &str, Vec<InMemDicomObject>)],
) -> Result<()> {
    let roi_items: Vec<InMemDicomObject> = rois
        .iter()
        .map(|(n, name, _)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::ROI_NUMBER,
                    VR::IS,
                    PrimitiveValue::from(n.to_string()),
                ),
                DataElement::new(tags::ROI_NAME, VR::LO, PrimitiveValue::from(*name)),
            ])
        })
        .collect();
    let contour_items: Vec<InMemDicomObject> = rois
        .iter()
        .map(|(n, _, cs)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::REFERENCED_ROI_NUMBER,
                    VR::IS,
                    PrimitiveValue::from(n.to_string()),
                ),
                DataElement::new(
                    tags::CONTOUR_SEQUENCE,
                    VR::SQ,
                    DataSetSequence::from(cs.clone()),
                ),
            ])
        })
        .collect();
    let series_item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(series),
    )]);
    let study_item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![series_item]),
    )]);
    let frame_item = InMemDicomObject::from_element_iter([DataElement::new(
        tags::RT_REFERENCED_STUDY_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![study_item]),
    )]);
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.481.3"),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.99"),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("RTSTRUCT")),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.98"),
        ),
        DataElement::new(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![frame_item]),
        ),
        DataElement::new(
            tags::STRUCTURE_SET_ROI_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(roi_items),
        ),
        DataElement::new(
            tags::ROI_CONTOUR_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(contour_items),
        ),
    ]);
    save(path, obj)
}

/// One frame of a SEG: the segment it belongs to, its plane's ImagePositionPatient (LPS mm) and
/// its pixels (0 or 1, row by row).
pub struct SegFrame {
    /// ReferencedSegmentNumber.
    pub segment: u16,
    /// ImagePositionPatient of the plane.
    pub position: [f64; 3],
    /// Pixel values, `rows × cols`.
    pub pixels: Vec<u8>,
}

/// Writes a BINARY SEG with `segments` (number, label) and `frames` of `cols × rows` pixels in
/// the orientation and spacing of [`write_series`] (oblique rows, 0.5 × 0.8 mm, 2.5 mm planes).
pub fn write_seg(
    path: &Path,
    segments: &[(u16, &str)],
    frames: &[SegFrame],
    cols: u16,
    rows: u16,
) -> Result<()> {
    let item = |elements: Vec<DataElement<InMemDicomObject>>| {
        InMemDicomObject::from_element_iter(elements)
    };
    let sq = |tag, items: Vec<InMemDicomObject>| {
        DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
    };
    let shared = item(vec![
        sq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&OBLIQUE),
            )])],
        ),
        sq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[0.5, 0.8])),
                DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[2.5])),
            ])],
        ),
    ]);
    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .map(|f| {
            item(vec![
                sq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds(&f.position),
                    )])],
                ),
                sq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        PrimitiveValue::from(f.segment),
                    )])],
                ),
            ])
        })
        .collect();
    let segment_items: Vec<InMemDicomObject> = segments
        .iter()
        .map(|(n, label)| {
            item(vec![
                DataElement::new(tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(*n)),
                DataElement::new(tags::SEGMENT_LABEL, VR::LO, PrimitiveValue::from(*label)),
            ])
        })
        .collect();
    // One bit per pixel, least significant bit first, packed across frames.
    let bits: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.pixels.iter().copied())
        .collect();
    let mut packed = vec![0u8; bits.len().div_ceil(8)];
    for (n, b) in bits.iter().enumerate() {
        packed[n / 8] |= (b & 1) << (n % 8);
    }
    if packed.len() % 2 == 1 {
        packed.push(0);
    }
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.66.4"),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.97"),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("SEG")),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.96"),
        ),
        sq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME2"),
        ),
        DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from(frames.len().to_string()),
        ),
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
        sq(tags::SEGMENT_SEQUENCE, segment_items),
        DataElement::new(
            tags::SEGMENTATION_TYPE,
            VR::CS,
            PrimitiveValue::from("BINARY"),
        ),
        sq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(packed)),
    ]);
    save(path, obj)
}

fn save(path: &Path, obj: InMemDicomObject) -> Result<()> {
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_LE))
        .map_err(|e| IoError::format(path, e.to_string()))?
        .write_to_file(path)
        .map_err(|e| IoError::format(path, e.to_string()))
}
