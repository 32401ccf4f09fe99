//! DICOM: CT/MR series → [`Volume`](crate::Volume); RTSTRUCT contours and SEG segments →
//! [`Mask`](crate::Mask).
//!
//! Slices are sorted along the slice normal by ImagePositionPatient (never InstanceNumber), the
//! slice spacing comes from the positions, directions from ImageOrientationPatient, values are
//! rescaled to HU by RescaleSlope/Intercept, and compressed transfer syntaxes are decoded by
//! `dicom-pixeldata` (JPEG baseline, extended 8-bit and lossless, JPEG 2000 through the pure-Rust
//! OpenJPEG port) or here (RLE, deflated data sets). JPEG-LS and 12-bit JPEG are refused with the
//! reason. Standard attributes stored with VR UN are read with their dictionary VR. DICOM patient
//! coordinates (LPS) become RAS+ in the returned geometry.

mod derived;
mod image;
mod precheck;
mod rle;
mod rtstruct;
mod rtstruct_write;
mod seg;
mod seg_write;
mod series;
pub mod synthetic;

pub use derived::{new_uid, read_label_file, Code, LabelEntry, SegmentSpec};
pub use image::{read_image_file, ImageFile};
pub use rtstruct::{list_rois, read_rtstruct_mask, RoiInfo, RoiMask};
pub use rtstruct_write::write_rtstruct;
pub use seg::{list_segments, read_seg_mask, SegmentInfo};
pub use seg_write::write_seg;
pub use series::{
    read_series, read_series_file, scan_folder, SeriesInfo, SeriesSource, SeriesVolume,
};

use std::path::Path;

use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::header::Header;
use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

use crate::error::IoError;

/// Largest DICOM file read (a single CT or MR image is a few MB).
const MAX_FILE_BYTES: u64 = 2 << 30;

/// Whether `path` starts like a DICOM Part-10 file (the DICM signature after the preamble).
pub fn is_dicom_file(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| precheck::signature_offset(&head).is_some())
}

/// Reads and parses one file: `Ok(None)` when it lacks the DICM signature (not DICOM), an error
/// naming the file when it is corrupt. The file is read once; its declared lengths are checked
/// before the parser sees the bytes, so corrupt lengths cannot make it allocate far more than
/// the file holds, and a panic inside the DICOM libraries becomes an error.
pub(crate) fn read_object(path: &Path) -> Result<Option<DefaultDicomObject>, IoError> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
        return Err(IoError::unsupported(
            path,
            format!("a DICOM file over {} MB", MAX_FILE_BYTES >> 20),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    let Some(start) = precheck::signature_offset(&bytes) else {
        return Ok(None);
    };
    // The length walk runs once on a plain file; a deflated one is walked again once inflated.
    let (bytes, end) = match precheck::check_lengths(path, &bytes)? {
        precheck::DataSet::Checked { end } => (bytes, end),
        precheck::DataSet::Deflated { start: data } => {
            let inflated = inflated(path, &bytes, start, data)?;
            match precheck::check_lengths(path, &inflated)? {
                precheck::DataSet::Checked { end } => (inflated, end),
                precheck::DataSet::Deflated { .. } => {
                    return Err(IoError::format(
                        path,
                        "a deflated data set inside a deflated one",
                    ))
                }
            }
        }
    };
    let start = precheck::signature_offset(&bytes).unwrap_or(start);
    let mut obj = caught(path, || {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[start - 4..end]) // from the DICM signature on, without padding
            .map_err(|e| IoError::format(path, e.to_string()))
    })?;
    // Every transfer syntax but explicit big endian stores the data set in little endian.
    if obj.meta().transfer_syntax().trim_end_matches('\0') != "1.2.840.10008.1.2.2" {
        resolve_unknown_vrs(&mut obj);
    }
    Ok(Some(obj))
}

/// Largest inflated data set of a deflated file.
const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// A deflated file rewritten as explicit VR little endian: its meta group with the transfer
/// syntax replaced, then the inflated data set, so that the length checks walk the real
/// elements. Inflation stops at [`MAX_INFLATED_BYTES`].
fn inflated(path: &Path, bytes: &[u8], start: usize, data: usize) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let meta_bytes = bytes
        .get(start - 4..data)
        .ok_or_else(|| IoError::format(path, "the file meta group length points past the file"))?;
    let mut meta = caught(path, || {
        dicom_object::FileMetaTable::from_reader(meta_bytes)
            .map_err(|e| IoError::format(path, format!("cannot read the file meta group: {e}")))
    })?;
    meta.transfer_syntax = "1.2.840.10008.1.2.1".to_owned();
    meta.update_information_group_length();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out)
        .map_err(|e| IoError::format(path, format!("cannot rewrite the file meta group: {e}")))?;
    let before = out.len();
    flate2::read::DeflateDecoder::new(&bytes[data.min(bytes.len())..])
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| IoError::format(path, format!("the deflated data set is corrupt: {e}")))?;
    if (out.len() - before) as u64 > MAX_INFLATED_BYTES {
        return Err(IoError::unsupported(
            path,
            format!(
                "a deflated data set larger than {} MB",
                MAX_INFLATED_BYTES >> 20
            ),
        ));
    }
    Ok(out)
}

/// Gives elements stored with VR UN (written by software that did not know them, e.g. some
/// anonymisers) the VR of the standard dictionary, so that a RescaleSlope reads as a number and
/// not as the character codes of its text. UN values are little endian, as the file.
fn resolve_unknown_vrs(obj: &mut InMemDicomObject) {
    let resolved: Vec<InMemElement> = obj
        .iter()
        .filter(|e| e.vr() == VR::UN)
        .filter_map(|e| {
            let tag = e.tag();
            let VirtualVr::Exact(vr) = StandardDataDictionary.by_tag(tag)?.vr else {
                return None;
            };
            let bytes = e.value().to_bytes().ok()?;
            let value = match vr {
                VR::AE
                | VR::AS
                | VR::CS
                | VR::DA
                | VR::DS
                | VR::DT
                | VR::IS
                | VR::LO
                | VR::PN
                | VR::SH
                | VR::TM
                | VR::UC
                | VR::UI => {
                    let text = String::from_utf8_lossy(&bytes);
                    let text = text.trim_end_matches(['\0', ' ']);
                    PrimitiveValue::Strs(text.split('\\').map(|p| p.trim().to_owned()).collect())
                }
                VR::LT | VR::ST | VR::UT | VR::UR => {
                    PrimitiveValue::Str(String::from_utf8_lossy(&bytes).trim_end().to_owned())
                }
                VR::US => PrimitiveValue::U16(
                    bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                ),
                VR::SS => PrimitiveValue::I16(
                    bytes
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                ),
                VR::UL => PrimitiveValue::U32(
                    bytes
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                VR::FD => PrimitiveValue::F64(
                    bytes
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect(),
                ),
                _ => return None,
            };
            Some(InMemElement::new(tag, vr, value))
        })
        .collect();
    for element in resolved {
        obj.put(element);
    }
}

/// The trimmed text of an element, empty when it is missing or not text.
pub(crate) fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()))
        .unwrap_or_default()
}

/// A required unsigned integer attribute, or an error naming it.
pub(crate) fn uint(
    obj: &InMemDicomObject,
    path: &Path,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<usize, IoError> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_int::<u32>().ok())
        .map(|v| v as usize)
        .ok_or_else(|| IoError::format(path, format!("{name} is missing or not a number")))
}

/// NumberOfFrames, 1 when absent.
pub(crate) fn frame_count(obj: &InMemDicomObject, path: &Path) -> Result<usize, IoError> {
    match obj.element_opt(dicom_dictionary_std::tags::NUMBER_OF_FRAMES) {
        Ok(Some(e)) => e
            .to_int::<u32>()
            .map(|v| v as usize)
            .map_err(|_| IoError::format(path, "NumberOfFrames is not a number")),
        _ => Ok(1),
    }
}

/// Runs work on the DICOM file `path` (parsing, pixel decoding), turning a panic inside the
/// DICOM libraries into an error naming the file: malformed files must never bring the process
/// down.
pub(crate) fn caught<T>(path: &Path, f: impl FnOnce() -> Result<T, IoError>) -> Result<T, IoError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(IoError::format(
            path,
            "the DICOM parser failed on this file (malformed data)",
        )),
    }
}

#[cfg(test)]
mod tests;
