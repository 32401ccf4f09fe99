//! What the writers of derived objects (SEG, RTSTRUCT) share: new UIDs, element helpers,
//! display colours, the checks that a mask can be referenced to its series, the patient and
//! study attributes they copy, and the atomic write.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::series::SeriesVolume;
use crate::error::{IoError, Result};
use crate::volume::Mask;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// One segment of a SEG (or ROI of an RTSTRUCT): the label value it holds in the mask and its
/// name.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSpec {
    /// The label in the mask.
    pub label: u8,
    /// SegmentLabel, e.g. "GTV".
    pub name: String,
}

/// A new UID under the `2.25` root (a 128-bit number made of the time, the process, a counter
/// and `salt`).
pub fn new_uid(salt: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = |mut x: u64| {
        // SplitMix64 finaliser: spreads the inputs over all bits.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = mix(nanos as u64 ^ u64::from(std::process::id()).rotate_left(32));
    let lo = mix((nanos >> 64) as u64 ^ count.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt);
    format!("2.25.{}", (u128::from(hi) << 64 | u128::from(lo)))
}

pub(crate) fn sq(
    tag: dicom_core::Tag,
    items: Vec<InMemDicomObject>,
) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

pub(crate) fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

pub(crate) fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// Display colours of segments and ROIs, in turn (sRGB).
pub(crate) const COLOURS: [[u8; 3]; 6] = [
    [255, 0, 0],
    [0, 200, 0],
    [0, 100, 255],
    [255, 200, 0],
    [200, 0, 200],
    [0, 200, 200],
];

/// An sRGB colour as DICOM's RecommendedDisplayCIELabValue: CIELab (D65) scaled to 0–65535
/// (L* over 0–100, a* and b* over −128–127).
pub(crate) fn dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (linear(rgb[0]), linear(rgb[1]), linear(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let (l, a, bb) = (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz));
    let scale = |v: f64, lo: f64, hi: f64| {
        ((v - lo) / (hi - lo) * 65535.0).round().clamp(0.0, 65535.0) as u16
    };
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 127.0),
        scale(bb, -128.0, 127.0),
    ]
}

/// The VR of the patient and study attributes a derived object copies.
fn vr_of(tag: dicom_core::Tag) -> VR {
    match tag {
        t if t == tags::PATIENT_NAME || t == tags::REFERRING_PHYSICIAN_NAME => VR::PN,
        t if t == tags::PATIENT_BIRTH_DATE || t == tags::STUDY_DATE => VR::DA,
        t if t == tags::STUDY_TIME => VR::TM,
        t if t == tags::PATIENT_SEX => VR::CS,
        t if t == tags::STUDY_ID || t == tags::ACCESSION_NUMBER => VR::SH,
        _ => VR::LO,
    }
}

/// Fails unless `mask` lies on `series`' grid and the series' images have the SOP instance UIDs
/// `what` ("a SEG", "an RTSTRUCT") must reference.
pub(crate) fn check_derivable(
    path: &Path,
    series: &SeriesVolume,
    mask: &Mask,
    what: &str,
) -> Result<()> {
    let g = &series.volume.geometry;
    if !mask.geometry.same_grid(g, 1e-3) {
        return Err(IoError::Geometry(format!(
            "{}: the mask (shape {:?}) does not lie on the series' grid (shape {:?})",
            path.display(),
            mask.geometry.shape,
            g.shape
        )));
    }
    let uids = &series.source.instance_uids;
    if uids.len() != g.shape[2] || uids.iter().any(String::is_empty) {
        return Err(IoError::format(
            path,
            format!("the series' images lack SOPInstanceUIDs, which {what} must reference"),
        ));
    }
    Ok(())
}

/// Writes the data set `elements` (plus the series' patient and study attributes) as a Part-10
/// file of class `sop_class`: beside the target and renamed, so that no torn file is left.
pub(crate) fn save_derived(
    path: &Path,
    series: &SeriesVolume,
    mut elements: Vec<DataElement<InMemDicomObject>>,
    sop_class: &str,
    sop_instance: &str,
) -> Result<()> {
    for (tag, value) in &series.source.patient_study {
        elements.push(text(*tag, vr_of(*tag), value));
    }
    let obj = InMemDicomObject::from_element_iter(elements);
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_instance),
        )
        .map_err(|e| IoError::format(path, e.to_string()))?
        .write_to_file(&tmp)
        .map_err(|e| IoError::format(path, e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| IoError::io(path, e))
}
