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

use crate::error::IoError;

/// Largest DICOM file read (a single CT or MR image is a few MB).
const MAX_FILE_BYTES: u64 = 2 << 30;

/// Runs a closure that parses the DICOM file `path`, after checking its declared lengths, and
/// turns a panic inside the DICOM libraries into an error naming the file: malformed files must
/// never bring the process down.
pub(crate) fn guarded<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, IoError>,
) -> Result<T, IoError> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
        return Err(IoError::unsupported(
            path,
            format!("a DICOM file over {} MB", MAX_FILE_BYTES >> 20),
        ));
    }
    // The declared lengths are checked against the file first, so that corrupt lengths cannot
    // make the parser allocate far more than the file holds.
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    precheck::check_lengths(path, &bytes)?;
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
