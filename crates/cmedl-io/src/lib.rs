//! Medical volumes with their geometry for cmedl: [`Volume`] (f32 image) and [`Mask`] (u8
//! labels) on a [`Geometry`] (shape, spacing, voxel → RAS+ affine); NIfTI-1/2 reading and
//! writing (`.nii`, `.nii.gz`) with resource limits; DICOM series, RTSTRUCT contours and SEG
//! segments ([`dicom`]); resampling between grids; CT windows and MRI percentile normalisation;
//! centred crops and pads that keep world positions; the dataset index ([`dataset`]).
//!
//! ```no_run
//! use std::path::Path;
//! use cmedl_io::nifti::{read_volume, write_mask, ReadOptions};
//! use cmedl_io::Mask;
//!
//! let ct = read_volume(Path::new("case_000.nii.gz"), &ReadOptions::default())?.volume;
//! let mask = Mask::new(ct.geometry.clone(), ct.data.iter().map(|&hu| u8::from(hu > 0.0)).collect())?;
//! write_mask(Path::new("case_000_mask.nii.gz"), &mask)?; // lies exactly on the CT
//! # Ok::<(), cmedl_io::IoError>(())
//! ```

pub mod dataset;
pub mod dicom;
mod error;
pub mod formats;
mod geometry;
pub mod import;
mod intensity;
pub mod memory;
pub mod nifti;
pub mod orientation;
mod regular_file;
mod resample;
mod volume;

pub use error::{IoError, Result};
pub use geometry::{flip_lps_ras, identity, Affine, Geometry};
pub use intensity::Window;
pub use resample::{
    centre_offset, crop_or_pad_grid, crop_or_pad_plane, crop_or_pad_plane_at, grid_with_spacing,
    invert_affine, resample_mask, resample_volume, resample_volume_with, Interp,
};
pub use volume::{Mask, Volume};

#[cfg(test)]
mod tests;
