//! DICOM: CT/MR series → [`Volume`](crate::Volume) and RTSTRUCT contours → [`Mask`](crate::Mask).
//!
//! Slices are sorted along the slice normal by ImagePositionPatient (never InstanceNumber), the
//! slice spacing comes from the positions, directions from ImageOrientationPatient, values are
//! rescaled to HU by RescaleSlope/Intercept, and compressed transfer syntaxes are decoded by
//! `dicom-pixeldata` (RLE, JPEG baseline and lossless, JPEG 2000 through the pure-Rust OpenJPEG
//! port). DICOM patient coordinates (LPS) become RAS+ in the returned geometry.

mod precheck;
mod rtstruct;
mod series;
pub mod synthetic;

pub use rtstruct::{list_rois, read_rtstruct_mask, RoiInfo};
pub use series::{read_series, scan_folder, SeriesInfo, SeriesVolume};

use std::path::Path;

use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use crate::error::IoError;

/// Largest DICOM file read (a single CT or MR image is a few MB).
const MAX_FILE_BYTES: u64 = 2 << 30;

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
    precheck::check_lengths(path, &bytes)?;
    caught(path, || {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[start - 4..]) // from the DICM signature on
            .map(Some)
            .map_err(|e| IoError::format(path, e.to_string()))
    })
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
