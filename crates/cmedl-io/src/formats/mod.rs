//! Other volume formats people have: NRRD (`.nrrd`, `.nhdr` with its data file) and
//! MetaImage (`.mha`, `.mhd` with its data file), read into the same [`Volume`] with exact
//! geometry (RAS+ world), and [`read_image`], which reads any supported file by its name.
//!
//! ```no_run
//! use cmedl_io::formats::read_image;
//! use cmedl_io::nifti::ReadOptions;
//!
//! let ct = read_image("scan.nrrd".as_ref(), &ReadOptions::default())?;
//! assert_eq!(ct.data.len(), ct.geometry.len());
//! # Ok::<(), cmedl_io::IoError>(())
//! ```

mod metaimage;
mod nrrd;
mod raw;

use std::path::Path;

use crate::error::{IoError, Result};
use crate::nifti::{is_nifti_path, ReadOptions};
use crate::volume::{Mask, Volume};

pub use metaimage::read_metaimage;
pub use nrrd::read_nrrd;

/// The formats [`read_image`] reads, by file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.nii`, `.nii.gz`.
    Nifti,
    /// `.nrrd`, `.nhdr`.
    Nrrd,
    /// `.mha`, `.mhd`.
    MetaImage,
}

/// The format of a file name, if it is one cmedl reads.
pub fn format_of(path: &Path) -> Option<Format> {
    if is_nifti_path(path) {
        return Some(Format::Nifti);
    }
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
        Some(Format::Nrrd)
    } else if name.ends_with(".mha") || name.ends_with(".mhd") {
        Some(Format::MetaImage)
    } else {
        None
    }
}

/// Whether cmedl reads files of this name as volumes.
pub fn is_image_path(path: &Path) -> bool {
    format_of(path).is_some()
}

/// The file name without its image extension (`ct.nii.gz` → `ct`, `ct.nrrd` → `ct`).
pub fn image_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"] {
        if lower.ends_with(ext) {
            return name[..name.len() - ext.len()].to_owned();
        }
    }
    name
}

/// Reads a volume from any supported file, chosen by its name.
pub fn read_image(path: &Path, options: &ReadOptions) -> Result<Volume> {
    match format_of(path) {
        Some(Format::Nifti) => Ok(crate::nifti::read_volume(path, options)?.volume),
        Some(Format::Nrrd) => read_nrrd(path, options),
        Some(Format::MetaImage) => read_metaimage(path, options),
        None => Err(IoError::format(
            path,
            "not a volume file name (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)",
        )),
    }
}

/// Reads a label map (integers 0–255) from any supported file.
pub fn read_label_image(path: &Path, options: &ReadOptions) -> Result<Mask> {
    let volume = read_image(path, options)?;
    Mask::from_volume(&volume).map_err(|e| IoError::format(path, e.to_string()))
}

/// Reads a "(x,y,z)" or "x y z" list of three numbers.
pub(crate) fn three(path: &Path, what: &str, text: &str) -> Result<[f64; 3]> {
    let cleaned: String = text
        .chars()
        .map(|c| if matches!(c, '(' | ')' | ',') { ' ' } else { c })
        .collect();
    let v: Vec<f64> = cleaned
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| IoError::format(path, format!("{what}: '{text}' is not three numbers")))?;
    match v.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|x| x.is_finite()) => Ok([*a, *b, *c]),
        _ => Err(IoError::format(
            path,
            format!("{what}: '{text}' is not three finite numbers"),
        )),
    }
}

/// The geometry of voxel axes with the given directions (columns, in LPS or RAS world
/// coordinates, each as long as the spacing) and origin: RAS+ affine, spacing the lengths.
pub(crate) fn geometry(
    path: &Path,
    shape: [usize; 3],
    directions: [[f64; 3]; 3],
    origin: [f64; 3],
    lps: bool,
) -> Result<crate::Geometry> {
    let sign = if lps { [-1.0, -1.0, 1.0] } else { [1.0; 3] };
    let mut affine = crate::identity();
    let mut spacing = [0.0; 3];
    for (v, d) in directions.iter().enumerate() {
        spacing[v] = d.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(spacing[v].is_finite() && spacing[v] > 0.0 && spacing[v] < 1e6) {
            return Err(IoError::format(
                path,
                format!("axis {v} has spacing {} mm", spacing[v]),
            ));
        }
        for w in 0..3 {
            affine[w][v] = sign[w] * d[w];
        }
    }
    for w in 0..3 {
        affine[w][3] = sign[w] * origin[w];
    }
    Ok(crate::Geometry {
        shape,
        spacing,
        affine,
    })
}

/// Checks the voxel count against the limit before anything is allocated.
pub(crate) fn check_size(path: &Path, shape: [usize; 3], options: &ReadOptions) -> Result<()> {
    let voxels = shape
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64))
        .unwrap_or(u64::MAX);
    if shape.contains(&0) {
        return Err(IoError::format(path, format!("empty grid {shape:?}")));
    }
    if voxels > options.max_voxels {
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            voxels,
            limit: options.max_voxels,
        });
    }
    // Raw elements (at most 8 bytes) and the f32 copy.
    crate::memory::reserve(
        format_args!("{}: a volume of {voxels} voxels", path.display()),
        u128::from(voxels) * 12,
    )
}

#[cfg(test)]
mod tests;
