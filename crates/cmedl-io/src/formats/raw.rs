//! Raw voxel bytes of NRRD and MetaImage data: element types, byte order, compression.

use std::io::Read;
use std::path::Path;

use crate::error::{IoError, Result};

/// A voxel's storage type: NIfTI's data types cover every scalar type NRRD and MetaImage use.
pub use crate::nifti::DataType as Element;

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
    Ok(crate::nifti::decode(&bytes, element, big_endian))
}
