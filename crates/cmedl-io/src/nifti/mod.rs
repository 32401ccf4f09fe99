//! NIfTI-1 and NIfTI-2 files (`.nii`, `.nii.gz`): reading with resource limits, writing that
//! keeps the geometry.
//!
//! cmedl reads NIfTI itself rather than through the `nifti` crate, which reads NIfTI-1 only and
//! allocates whatever a header announces; here sizes are checked against a voxel limit and the
//! file before anything is allocated, and gzip streams are never inflated past the size the
//! header announces.

mod header;
mod read;
mod write;

pub(crate) use read::decode;

pub use header::{
    quaternion_to_rotation, rotation_to_quaternion, DataType, NiftiHeader, NiftiVersion,
};
pub use read::{read_header, read_mask, read_volume, read_volume_bytes, NiftiImage, ReadOptions};
pub use write::{write_mask, write_volume, WriteOptions};

/// Whether a path names a NIfTI file by its extension.
pub fn is_nifti_path(path: &std::path::Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// A file name without its `.nii` / `.nii.gz` extension.
pub fn stem(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".nii.gz", ".nii", ".NII.GZ", ".NII"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_owned();
        }
    }
    name
}
