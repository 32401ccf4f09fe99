//! Writing NIfTI files, atomically.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::header::{DataType, NiftiHeader, NiftiVersion};
use crate::error::{IoError, Result};
use crate::geometry::Geometry;
use crate::volume::{Mask, Volume};

/// Choices of the writer.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// On-disk voxel type; values are rounded and must fit integer types.
    pub datatype: DataType,
    /// NIfTI-2 even when NIfTI-1 could hold the image (which it cannot past 32 767 voxels a side).
    pub nifti2: bool,
    /// gzip level 0–9 for `.nii.gz` files.
    pub compression: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            datatype: DataType::F32,
            nifti2: false,
            compression: 6,
        }
    }
}

fn range(t: DataType) -> (f64, f64) {
    match t {
        DataType::U8 => (0.0, 255.0),
        DataType::I8 => (-128.0, 127.0),
        DataType::I16 => (-32768.0, 32767.0),
        DataType::U16 => (0.0, 65535.0),
        DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DataType::U32 => (0.0, f64::from(u32::MAX)),
        DataType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DataType::U64 => (0.0, u64::MAX as f64),
        DataType::F32 | DataType::F64 => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

fn encode(data: &[f32], t: DataType, out: &mut Vec<u8>) {
    out.reserve(data.len() * t.size());
    for &v in data {
        let r = f64::from(v).round();
        match t {
            DataType::U8 => out.push(r as u8),
            DataType::I8 => out.push(r as i8 as u8),
            DataType::I16 => out.extend_from_slice(&(r as i16).to_le_bytes()),
            DataType::U16 => out.extend_from_slice(&(r as u16).to_le_bytes()),
            DataType::I32 => out.extend_from_slice(&(r as i32).to_le_bytes()),
            DataType::U32 => out.extend_from_slice(&(r as u32).to_le_bytes()),
            DataType::I64 => out.extend_from_slice(&(r as i64).to_le_bytes()),
            DataType::U64 => out.extend_from_slice(&(r as u64).to_le_bytes()),
            DataType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DataType::F64 => out.extend_from_slice(&f64::from(v).to_le_bytes()),
        }
    }
}

/// Writes a volume; `.gz` paths are compressed. Integer types reject values they cannot hold.
pub fn write_volume(path: &Path, volume: &Volume, options: &WriteOptions) -> Result<()> {
    let t = options.datatype;
    if t.is_integer() {
        let (lo, hi) = range(t);
        if let Some(v) = volume
            .data
            .iter()
            .find(|v| !v.is_finite() || f64::from(**v) < lo || f64::from(**v) > hi)
        {
            return Err(IoError::format(
                path,
                format!("value {v} does not fit the {} datatype", t.name()),
            ));
        }
    }
    let mut bytes = header_bytes(&volume.geometry, t, options.nifti2);
    encode(&volume.data, t, &mut bytes);
    write_atomic(path, &bytes, options.compression)
}

/// Writes a label map as uint8 on the mask's grid.
pub fn write_mask(path: &Path, mask: &Mask) -> Result<()> {
    let mut bytes = header_bytes(&mask.geometry, DataType::U8, false);
    bytes.extend_from_slice(&mask.data);
    write_atomic(path, &bytes, 6)
}

fn header_bytes(g: &Geometry, t: DataType, nifti2: bool) -> Vec<u8> {
    let big = g.shape.iter().any(|&s| s > i16::MAX as usize);
    let version = if nifti2 || big {
        NiftiVersion::Two
    } else {
        NiftiVersion::One
    };
    NiftiHeader::for_volume(version, g.shape, g.spacing, &g.affine, t).to_bytes()
}

/// Writes `bytes` (gzip-compressed for `.gz` paths) to a temporary file next to `path`,
/// syncs it and renames it over `path`, so readers never see a partial file.
fn write_atomic(path: &Path, bytes: &[u8], level: u32) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| IoError::io(dir, e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let gz = name.to_lowercase().ends_with(".gz");
        let file = if gz {
            let mut enc = GzEncoder::new(BufWriter::new(file), Compression::new(level.min(9)));
            enc.write_all(bytes)?;
            enc.finish()?.into_inner().map_err(|e| e.into_error())?
        } else {
            let mut w = BufWriter::new(file);
            w.write_all(bytes)?;
            w.into_inner().map_err(|e| e.into_error())?
        };
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IoError::io(path, e)
    })
}
