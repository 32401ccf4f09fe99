//! Reading NIfTI files.

use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::header::{header_size, DataType, NiftiHeader};
use crate::error::{IoError, Result};
use crate::geometry::Geometry;
use crate::volume::{Mask, Volume};

/// Limits and choices of the reader.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Refuse headers announcing more voxels than this (default 2^30).
    pub max_voxels: u64,
    /// The volume to read from a 4-D image (time points, echoes, the modalities of a Medical
    /// Segmentation Decathlon task); a 4-D image without it is an error naming the count.
    pub volume: Option<usize>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_voxels: 1 << 30,
            volume: None,
        }
    }
}

/// A volume read from NIfTI, with the header it came from.
#[derive(Clone, Debug)]
pub struct NiftiImage {
    /// Voxels (scaled by `scl_slope`/`scl_inter`) and geometry.
    pub volume: Volume,
    /// The parsed header.
    pub header: NiftiHeader,
}

fn open(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    let file = crate::regular_file::open_regular(path)?;
    let len = file.metadata().map_err(|e| IoError::io(path, e))?.len();
    sniff(path, BufReader::new(file), len)
}

/// Wraps a byte source of `len` bytes, inflating it when it starts with the gzip magic.
fn sniff<'a, R: Read + 'a>(
    path: &Path,
    mut reader: R,
    len: u64,
) -> Result<(Box<dyn Read + 'a>, Option<u64>)> {
    let mut magic = [0u8; 2];
    let n = read_full(&mut reader, &mut magic).map_err(|e| IoError::io(path, e))?;
    // Re-chain the sniffed bytes in front of the rest of the file.
    let chained = std::io::Cursor::new(magic[..n].to_vec()).chain(reader);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((Box::new(MultiGzDecoder::new(chained)), None))
    } else {
        Ok((Box::new(chained), Some(len)))
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn stream_error(path: &Path, e: std::io::Error) -> IoError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => {
            IoError::format(path, format!("corrupt or truncated gzip stream: {e}"))
        }
        _ => IoError::io(path, e),
    }
}

fn parse_header(path: &Path, r: &mut dyn Read) -> Result<NiftiHeader> {
    let mut start = [0u8; 4];
    let n = read_full(r, &mut start).map_err(|e| stream_error(path, e))?;
    let (size, be) = header_size(path, &start[..n])?;
    let mut buf = vec![0u8; size];
    buf[..4].copy_from_slice(&start);
    let got = read_full(r, &mut buf[4..]).map_err(|e| stream_error(path, e))?;
    if got + 4 < size {
        return Err(IoError::format(
            path,
            format!("file ends inside the {size}-byte header"),
        ));
    }
    NiftiHeader::parse(path, &buf, be)
}

/// Reads only the header of a NIfTI file.
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let (mut r, _) = open(path)?;
    parse_header(path, r.as_mut())
}

/// Reads a NIfTI file as a volume (voxels scaled to f32).
pub fn read_volume(path: &Path, options: &ReadOptions) -> Result<NiftiImage> {
    let (r, file_len) = open(path)?;
    read_from(path, r, file_len, options)
}

/// Reads a NIfTI image held in memory (`.nii` or gzip-compressed); `name` is used in errors.
pub fn read_volume_bytes(name: &Path, bytes: &[u8], options: &ReadOptions) -> Result<NiftiImage> {
    let (r, len) = sniff(name, bytes, bytes.len() as u64)?;
    read_from(name, r, len, options)
}

fn read_from(
    path: &Path,
    mut r: Box<dyn Read + '_>,
    file_len: Option<u64>,
    options: &ReadOptions,
) -> Result<NiftiImage> {
    let header = parse_header(path, r.as_mut())?;
    let shape = header.shape();
    let voxels = shape
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64))
        .unwrap_or(u64::MAX);
    if voxels > options.max_voxels {
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            voxels,
            limit: options.max_voxels,
        });
    }
    // The raw bytes of one volume and its f32 copy live at the same time.
    crate::memory::reserve(
        format_args!("{}: a volume of {voxels} voxels", path.display()),
        u128::from(voxels) * (4 + header.datatype.size() as u128),
    )?;
    let volumes = header.volumes();
    let index = match (options.volume, volumes) {
        (None, 1) => 0,
        (None, n) => {
            return Err(IoError::unsupported(
                path,
                format!(
                    "4-D image with {n} volumes along dimension 4; cmedl needs one 3-D volume: \
                     choose one with --volume 0..{}",
                    n - 1
                ),
            ))
        }
        (Some(v), n) if v >= n => {
            return Err(IoError::format(
                path,
                format!(
                    "volume {v} was asked for, but the image has {n} (0..{})",
                    n - 1
                ),
            ))
        }
        (Some(v), _) => v as u64,
    };
    // Checked: a vox_offset or a volume index near the u64 limit must not wrap around to a
    // place inside the file.
    let past_any_file = || {
        IoError::format(
            path,
            format!(
                "vox_offset {} with volume {index} lies past any file",
                header.vox_offset
            ),
        )
    };
    let data_bytes = voxels
        .checked_mul(header.datatype.size() as u64)
        .ok_or_else(past_any_file)?;
    let before = index.checked_mul(data_bytes).ok_or_else(past_any_file)?;
    let wanted = before.checked_add(data_bytes).ok_or_else(past_any_file)?;
    let header_len = match header.version {
        super::NiftiVersion::One => super::header::NIFTI1_SIZE as u64,
        super::NiftiVersion::Two => super::header::NIFTI2_SIZE as u64,
    };
    if let Some(len) = file_len {
        let available = len.saturating_sub(header.vox_offset);
        if available < wanted {
            return Err(IoError::Truncated {
                path: path.to_path_buf(),
                expected: wanted,
                got: available,
            });
        }
    }
    // Skip extensions up to vox_offset (and the volumes before the one asked for), then read
    // exactly the announced data: a gzip stream is never inflated further, and memory grows only
    // as real bytes arrive.
    let skip = header
        .vox_offset
        .checked_sub(header_len)
        .and_then(|s| s.checked_add(before))
        .ok_or_else(past_any_file)?;
    let skipped = std::io::copy(&mut r.as_mut().take(skip), &mut std::io::sink())
        .map_err(|e| stream_error(path, e))?;
    if skipped < skip {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            expected: skip.saturating_add(data_bytes),
            got: skipped,
        });
    }
    let mut raw = Vec::new();
    r.take(data_bytes)
        .read_to_end(&mut raw)
        .map_err(|e| stream_error(path, e))?;
    if (raw.len() as u64) < data_bytes {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            expected: data_bytes,
            got: raw.len() as u64,
        });
    }
    let mut data = decode(&raw, header.datatype, header.big_endian);
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    if slope != 0.0 && slope.is_finite() && inter.is_finite() && !(slope == 1.0 && inter == 0.0) {
        for v in &mut data {
            *v = (f64::from(*v) * slope + inter) as f32;
        }
    }
    let geometry = Geometry {
        shape,
        spacing: header.spacing(),
        affine: header.affine(),
    };
    Ok(NiftiImage {
        volume: Volume { geometry, data },
        header,
    })
}

/// Reads a NIfTI label map; values must be integers in 0..=255.
pub fn read_mask(path: &Path, options: &ReadOptions) -> Result<Mask> {
    let image = read_volume(path, options)?;
    Mask::from_volume(&image.volume).map_err(|e| IoError::format(path, e.to_string()))
}

/// Voxel values of `raw` (whole elements of type `t`, big-endian when `be`) as f32.
pub(crate) fn decode(raw: &[u8], t: DataType, be: bool) -> Vec<f32> {
    macro_rules! conv {
        ($ty:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                    (if be {
                        <$ty>::from_be_bytes(a)
                    } else {
                        <$ty>::from_le_bytes(a)
                    }) as f32
                })
                .collect()
        };
    }
    match t {
        DataType::U8 => raw.iter().map(|&v| f32::from(v)).collect(),
        DataType::I8 => raw.iter().map(|&v| f32::from(v as i8)).collect(),
        DataType::I16 => conv!(i16, 2),
        DataType::U16 => conv!(u16, 2),
        DataType::I32 => conv!(i32, 4),
        DataType::U32 => conv!(u32, 4),
        DataType::I64 => conv!(i64, 8),
        DataType::U64 => conv!(u64, 8),
        DataType::F32 => conv!(f32, 4),
        DataType::F64 => conv!(f64, 8),
    }
}
