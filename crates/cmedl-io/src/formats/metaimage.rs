//! MetaImage (ITK's MetaIO): `Key = Value` header lines ending with `ElementDataFile`, then the
//! voxels in the same file (`.mha`, `ElementDataFile = LOCAL`) or in the file it names
//! (`.mhd`). Supported: 3-D scalar volumes, `TransformMatrix` (or `Orientation`/`Rotation`)
//! direction cosines in ITK's LPS world, `Offset` (or `Position`/`Origin`), raw or zlib data.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::raw::{read_voxels, Element, Encoding};
use crate::error::{IoError, Result};
use crate::nifti::ReadOptions;
use crate::volume::Volume;

/// Longest header read (bytes).
const MAX_HEADER: usize = 1 << 20;

fn element(path: &Path, t: &str) -> Result<Element> {
    Ok(match t {
        "MET_CHAR" => Element::I8,
        "MET_UCHAR" => Element::U8,
        "MET_SHORT" => Element::I16,
        "MET_USHORT" => Element::U16,
        "MET_INT" | "MET_LONG" => Element::I32,
        "MET_UINT" | "MET_ULONG" => Element::U32,
        "MET_LONG_LONG" => Element::I64,
        "MET_ULONG_LONG" => Element::U64,
        "MET_FLOAT" => Element::F32,
        "MET_DOUBLE" => Element::F64,
        other => {
            return Err(IoError::Unsupported {
                path: path.to_path_buf(),
                what: format!("MetaImage element type '{other}'"),
            })
        }
    })
}

fn truth(path: &Path, key: &str, v: Option<&String>) -> Result<bool> {
    match v.map(|s| s.to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) if s == "true" || s == "1" => Ok(true),
        Some(s) if s == "false" || s == "0" => Ok(false),
        Some(s) => Err(IoError::format(
            path,
            format!("{key} = {s} is not True or False"),
        )),
    }
}

/// Where the voxels start in a detached data file of `len` bytes: after `header_size` bytes, or
/// (−1, raw data only) where the voxels end the file. Checked: an offset near or past the u64
/// limit is an error, never a wrapped-around place.
fn data_start(
    path: &Path,
    header_size: i128,
    len: u64,
    encoding: Encoding,
    voxels: usize,
    element: Element,
) -> Result<u64> {
    let bytes = (voxels as u128)
        .checked_mul(element.size() as u128)
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| IoError::format(path, "the data's size overflows"))?;
    match (header_size, encoding) {
        (-1, Encoding::Raw) => len.checked_sub(bytes).ok_or(IoError::Truncated {
            path: path.to_path_buf(),
            expected: bytes,
            got: len,
        }),
        (-1, _) => Err(IoError::unsupported(
            path,
            "HeaderSize -1 with compressed data",
        )),
        (n, _) => {
            let start = u64::try_from(n).ok().filter(|&s| s <= len).ok_or_else(|| {
                IoError::format(
                    path,
                    format!("HeaderSize {n} lies past the end of the {len}-byte file"),
                )
            })?;
            if encoding == Encoding::Raw && len - start < bytes {
                return Err(IoError::Truncated {
                    path: path.to_path_buf(),
                    expected: bytes,
                    got: len - start,
                });
            }
            Ok(start)
        }
    }
}

/// Reads a MetaImage volume (`.mha`, or `.mhd` with its data file).
pub fn read_metaimage(path: &Path, options: &ReadOptions) -> Result<Volume> {
    let file = crate::regular_file::open_regular(path)?;
    let mut reader = BufReader::new(file);
    let mut f: BTreeMap<String, String> = BTreeMap::new();
    let mut consumed = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| IoError::format(path, format!("the header is not text: {e}")))?;
        consumed += n;
        if n == 0 || consumed > MAX_HEADER {
            return Err(IoError::format(
                path,
                "no ElementDataFile line ends the MetaImage header",
            ));
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let (key, value) = text.split_once('=').ok_or_else(|| {
            IoError::format(path, format!("header line '{text}' is not 'Key = Value'"))
        })?;
        let key = key.trim().to_owned();
        f.insert(key.clone(), value.trim().to_owned());
        if key == "ElementDataFile" {
            break;
        }
    }
    if f.get("ObjectType").is_some_and(|t| t != "Image") {
        return Err(IoError::format(path, "ObjectType is not Image"));
    }
    let need = |k: &str| {
        f.get(k)
            .ok_or_else(|| IoError::format(path, format!("no {k}")))
    };
    if need("NDims")?.trim() != "3" {
        return Err(IoError::Unsupported {
            path: path.to_path_buf(),
            what: format!("NDims {} (3-D volumes only)", need("NDims")?),
        });
    }
    if f.get("ElementNumberOfChannels")
        .is_some_and(|c| c.trim() != "1")
    {
        return Err(IoError::Unsupported {
            path: path.to_path_buf(),
            what: "images with several channels".into(),
        });
    }
    let size = super::three(path, "DimSize", need("DimSize")?)?;
    if size
        .iter()
        .any(|s| s.fract() != 0.0 || *s < 1.0 || *s > 1e9)
    {
        return Err(IoError::format(path, format!("DimSize {size:?}")));
    }
    let shape = size.map(|s| s as usize);
    super::check_size(path, shape, options)?;
    let spacing = match f.get("ElementSpacing").or(f.get("ElementSize")) {
        Some(s) => super::three(path, "ElementSpacing", s)?,
        None => [1.0; 3],
    };
    let cosines: Vec<f64> = match ["TransformMatrix", "Orientation", "Rotation"]
        .iter()
        .find_map(|k| f.get(*k))
    {
        Some(t) => t
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| IoError::format(path, "TransformMatrix is not nine numbers"))?,
        None => vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    };
    if cosines.len() != 9 {
        return Err(IoError::format(path, "TransformMatrix is not nine numbers"));
    }
    // MetaIO lists the direction of axis 0, then of axis 1, then of axis 2.
    let mut dirs = [[0.0; 3]; 3];
    for v in 0..3 {
        for w in 0..3 {
            dirs[v][w] = cosines[3 * v + w] * spacing[v];
        }
    }
    let origin = match ["Offset", "Position", "Origin"]
        .iter()
        .find_map(|k| f.get(*k))
    {
        Some(o) => super::three(path, "Offset", o)?,
        None => [0.0; 3],
    };
    let geometry = super::geometry(path, shape, dirs, origin, true)?;
    let element = element(path, need("ElementType")?)?;
    let big_endian = truth(
        path,
        "BinaryDataByteOrderMSB",
        f.get("BinaryDataByteOrderMSB"),
    )? || truth(path, "ElementByteOrderMSB", f.get("ElementByteOrderMSB"))?;
    let encoding = if truth(path, "CompressedData", f.get("CompressedData"))? {
        Encoding::Zlib
    } else {
        Encoding::Raw
    };
    let voxels = geometry.len();
    // HeaderSize: bytes before the voxels in the data file (-1: the voxels end the file).
    let header_size: i128 = match f.get("HeaderSize") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<i128>()
            .ok()
            .filter(|&n| n >= -1)
            .ok_or_else(|| {
                IoError::format(path, format!("HeaderSize '{v}' is not a byte count"))
            })?,
    };
    let data = match need("ElementDataFile")?.as_str() {
        "LOCAL" if header_size != 0 => {
            return Err(IoError::unsupported(path, "a HeaderSize with LOCAL data"))
        }
        "LOCAL" => read_voxels(path, reader, encoding, element, voxels, big_endian)?,
        name if name.starts_with("LIST") || name.contains('%') => {
            return Err(IoError::Unsupported {
                path: path.to_path_buf(),
                what: "data split over several files".into(),
            })
        }
        name => {
            let (mut r, data_path, len) = crate::regular_file::open_data_file(path, name)?;
            let skip = data_start(&data_path, header_size, len, encoding, voxels, element)?;
            std::io::copy(&mut r.by_ref().take(skip), &mut std::io::sink())
                .map_err(|e| IoError::io(&data_path, e))?;
            read_voxels(&data_path, r, encoding, element, voxels, big_endian)?
        }
    };
    Volume::new(geometry, data)
}
