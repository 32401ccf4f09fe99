//! NRRD (teem's "nearly raw raster data"): a text header and raw or gzipped voxels, in the
//! same file (`.nrrd`) or in a data file the header names (`.nhdr`). Supported: 3-D scalar
//! volumes, `space` LPS, RAS or LAS with `space directions` and `space origin` (or `spacings`
//! alone, read as LPS axes like ITK does), encodings raw and gzip, either byte order.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::raw::{read_voxels, Element, Encoding};
use crate::error::{IoError, Result};
use crate::nifti::ReadOptions;
use crate::volume::Volume;

/// Longest header read (bytes): a header is a few hundred bytes of text.
const MAX_HEADER: usize = 1 << 20;

fn element(path: &Path, t: &str) -> Result<Element> {
    Ok(match t.trim() {
        "signed char" | "int8" | "int8_t" => Element::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => Element::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
            Element::I16
        }
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => Element::U16,
        "int" | "signed int" | "int32" | "int32_t" => Element::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => Element::U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => Element::I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => {
            Element::U64
        }
        "float" => Element::F32,
        "double" => Element::F64,
        other => {
            return Err(IoError::Unsupported {
                path: path.to_path_buf(),
                what: format!("NRRD type '{other}'"),
            })
        }
    })
}

/// The header's fields (lower-case names) and the number of header bytes, read from the start
/// of `reader` up to the blank line.
fn header<R: BufRead>(path: &Path, reader: &mut R) -> Result<(BTreeMap<String, String>, usize)> {
    let mut fields = BTreeMap::new();
    let mut consumed = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| IoError::format(path, format!("the header is not text: {e}")))?;
        consumed += n;
        if consumed > MAX_HEADER {
            return Err(IoError::format(
                path,
                "no end of the NRRD header in the first 1 MiB",
            ));
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if first {
            if !text.starts_with("NRRD000") {
                return Err(IoError::format(path, "not a NRRD file (no NRRD000X magic)"));
            }
            first = false;
            continue;
        }
        if n == 0 || text.is_empty() {
            break; // end of file (detached header) or the blank line before the data
        }
        if text.starts_with('#') || text.contains(":=") {
            continue; // comments and key/value pairs
        }
        let (key, value) = text.split_once(": ").ok_or_else(|| {
            IoError::format(path, format!("header line '{text}' is not 'field: value'"))
        })?;
        fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Ok((fields, consumed))
}

/// `(x,y,z) (x,y,z) (x,y,z)` as three vectors.
fn directions(path: &Path, text: &str) -> Result<[[f64; 3]; 3]> {
    let parts: Vec<&str> = text
        .split(')')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() != 3 || parts.iter().any(|p| p.contains("none")) {
        return Err(IoError::Unsupported {
            path: path.to_path_buf(),
            what: format!("space directions '{text}' (three spatial axes are needed)"),
        });
    }
    let mut out = [[0.0; 3]; 3];
    for (v, p) in parts.iter().enumerate() {
        out[v] = super::three(path, "space directions", p)?;
    }
    Ok(out)
}

/// Reads a NRRD volume (`.nrrd`, or `.nhdr` with its data file).
pub fn read_nrrd(path: &Path, options: &ReadOptions) -> Result<Volume> {
    let file = crate::regular_file::open_regular(path)?;
    let mut reader = BufReader::new(file);
    let (f, _) = header(path, &mut reader)?;
    let get = |k: &str| f.get(k).map(String::as_str);
    let need = |k: &str| get(k).ok_or_else(|| IoError::format(path, format!("no '{k}' field")));
    if need("dimension")?.trim() != "3" {
        return Err(IoError::Unsupported {
            path: path.to_path_buf(),
            what: format!("dimension {} (3-D scalar volumes only)", need("dimension")?),
        });
    }
    let sizes: Vec<usize> = need("sizes")?
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| IoError::format(path, "sizes are not whole numbers"))?;
    let shape: [usize; 3] = sizes
        .try_into()
        .map_err(|_| IoError::format(path, "sizes must list three numbers"))?;
    super::check_size(path, shape, options)?;
    let element = element(path, need("type")?)?;
    let big_endian = match get("endian") {
        Some("big") => true,
        Some("little") | None => false,
        Some(other) => return Err(IoError::format(path, format!("endian '{other}'"))),
    };
    let encoding = match need("encoding")? {
        "raw" => Encoding::Raw,
        "gzip" | "gz" => Encoding::Gzip,
        other => {
            return Err(IoError::Unsupported {
                path: path.to_path_buf(),
                what: format!("NRRD encoding '{other}' (raw and gzip are read)"),
            })
        }
    };
    let (lps, dirs, origin) = spatial(path, &f)?;
    let geometry = super::geometry(path, shape, dirs, origin, lps)?;
    let skip = get("byte skip").unwrap_or("0");
    let data_file = get("data file").or(get("datafile"));
    let voxels = geometry.len();
    let data = match data_file {
        None => {
            if skip != "0" {
                return Err(unsupported(path, "a byte skip in an attached NRRD"));
            }
            read_voxels(path, reader, encoding, element, voxels, big_endian)?
        }
        Some(name) if name.starts_with("LIST") || name.contains('%') => {
            return Err(unsupported(path, "data split over several files"))
        }
        Some(name) => {
            let (mut r, data_path, len) = crate::regular_file::open_data_file(path, name)?;
            match (skip, encoding) {
                ("0", _) => {}
                ("-1", Encoding::Raw) => {
                    let bytes = (voxels as u64)
                        .checked_mul(element.size() as u64)
                        .ok_or_else(|| unsupported(path, "a data size past the u64 limit"))?;
                    let start = len.checked_sub(bytes).ok_or(IoError::Truncated {
                        path: data_path.clone(),
                        expected: bytes,
                        got: len,
                    })?;
                    std::io::copy(&mut r.by_ref().take(start), &mut std::io::sink())
                        .map_err(|e| IoError::io(&data_path, e))?;
                }
                _ => return Err(unsupported(path, &format!("byte skip {skip}"))),
            }
            read_voxels(&data_path, r, encoding, element, voxels, big_endian)?
        }
    };
    Volume::new(geometry, data)
}

fn unsupported(path: &Path, what: &str) -> IoError {
    IoError::Unsupported {
        path: path.to_path_buf(),
        what: what.to_owned(),
    }
}

/// Whether the world space is LPS (else RAS), the axis vectors and the origin.
fn spatial(path: &Path, f: &BTreeMap<String, String>) -> Result<(bool, [[f64; 3]; 3], [f64; 3])> {
    let space = f.get("space").map(|s| s.to_ascii_lowercase());
    let Some(dirs) = f.get("space directions") else {
        // No world frame: axis-aligned with `spacings`, read as LPS axes (ITK's choice).
        let spacing = match f.get("spacings") {
            Some(s) => super::three(path, "spacings", s)?,
            None => [1.0; 3],
        };
        let mut d = [[0.0; 3]; 3];
        for a in 0..3 {
            d[a][a] = spacing[a];
        }
        return Ok((true, d, [0.0; 3]));
    };
    let mut dirs = directions(path, dirs)?;
    let mut origin = match f.get("space origin") {
        Some(o) => super::three(path, "space origin", o)?,
        None => [0.0; 3],
    };
    let lps = match space.as_deref() {
        Some("left-posterior-superior" | "lps") => true,
        Some("right-anterior-superior" | "ras") => false,
        Some("left-anterior-superior" | "las") => {
            // LAS → RAS: negate x.
            for d in &mut dirs {
                d[0] = -d[0];
            }
            origin[0] = -origin[0];
            false
        }
        other => {
            return Err(unsupported(
                path,
                &format!("space {other:?} (LPS, RAS and LAS are read)"),
            ))
        }
    };
    Ok((lps, dirs, origin))
}
