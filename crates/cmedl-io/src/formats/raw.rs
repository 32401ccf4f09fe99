//! Raw voxel bytes of NRRD and MetaImage data: element types, byte order, compression.

use std::io::Read;
use std::path::Path;

use crate::error::{IoError, Result};

/// A voxel's storage type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    /// Signed 8-bit.
    I8,
    /// Unsigned 8-bit.
    U8,
    /// Signed 16-bit.
    I16,
    /// Unsigned 16-bit.
    U16,
    /// Signed 32-bit.
    I32,
    /// Unsigned 32-bit.
    U32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 64-bit.
    U64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl Element {
    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// Values of `bytes` (whole elements) as f32.
    pub fn decode(self, bytes: &[u8], big_endian: bool) -> Vec<f32> {
        let n = self.size();
        bytes
            .chunks_exact(n)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(c);
                if big_endian {
                    b[..n].reverse();
                }
                match self {
                    Self::I8 => f32::from(b[0] as i8),
                    Self::U8 => f32::from(b[0]),
                    Self::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
                    Self::U16 => f32::from(u16::from_le_bytes([b[0], b[1]])),
                    Self::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
                    Self::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
                    Self::I64 => i64::from_le_bytes(b) as f32,
                    Self::U64 => u64::from_le_bytes(b) as f32,
                    Self::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    Self::F64 => f64::from_le_bytes(b) as f32,
                }
            })
            .collect()
    }
}

/// How the voxel bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// As they are.
    Raw,
    /// A gzip stream.
    Gzip,
    /// A zlib stream (MetaImage's `CompressedData = True`).
    Zlib,
}

/// Reads `voxels` elements from `reader`, decompressing as `encoding` says; a short stream is
/// an error naming `path`, and at most the bytes needed are read (a decompression bomb stops
/// at the announced size).
pub fn read_voxels<R: Read>(
    path: &Path,
    reader: R,
    encoding: Encoding,
    element: Element,
    voxels: usize,
    big_endian: bool,
) -> Result<Vec<f32>> {
    let expected = voxels
        .checked_mul(element.size())
        .ok_or_else(|| IoError::format(path, "the data size overflows"))?;
    let mut source: Box<dyn Read> = match encoding {
        Encoding::Raw => Box::new(reader),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Encoding::Zlib => Box::new(flate2::read::ZlibDecoder::new(reader)),
    };
    let mut bytes = Vec::with_capacity(expected.min(1 << 28));
    source
        .by_ref()
        .take(expected as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| IoError::format(path, format!("cannot decode the voxel data: {e}")))?;
    if bytes.len() < expected {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            expected: expected as u64,
            got: bytes.len() as u64,
        });
    }
    Ok(element.decode(&bytes, big_endian))
}
