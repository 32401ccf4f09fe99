//! A walk over the element headers of a DICOM file before `dicom-rs` parses it: a declared
//! value length larger than the rest of the file is rejected here, so a few corrupt bytes cannot
//! make the parser allocate gigabytes.

use std::path::Path;

use crate::error::{IoError, Result};

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// The value representations of the standard (PS3.5 6.2).
const KNOWN_VRS: [&str; 34] = [
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
    "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
    "UT", "UV",
];

/// VRs whose explicit-VR header has two reserved bytes and a 32-bit length, as the parser
/// (dicom-encoding 0.8) reads them: OV, SV and UV, long in the current standard, are read short.
fn long_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB" | b"OD" | b"OF" | b"OL" | b"OW" | b"SQ" | b"UC" | b"UN" | b"UR" | b"UT"
    )
}

/// Where the data after the DICM signature starts: 132 with the 128-byte preamble, 4 without
/// it (the parser takes both); `None` for bytes that are not DICOM.
pub(crate) fn signature_offset(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(132)
    } else if bytes.starts_with(b"DICM") {
        Some(4)
    } else {
        None
    }
}

/// What the walk found after the file meta group.
#[derive(Debug, PartialEq, Eq)]
pub enum DataSet {
    /// A data set the walk checked, ending at `end`: the file's length, or the start of the zero
    /// bytes some writers pad files with after the last element.
    Checked {
        /// End of the data set.
        end: usize,
    },
    /// A deflated data set (raw deflate from `start` on), to inflate and check on its own.
    Deflated {
        /// Where the compressed data set starts (the end of the meta group).
        start: usize,
    },
}

/// Checks that no element of `bytes` (a Part-10 file) declares more bytes than the file has.
///
/// The walk reads element headers in order, descending into sequences and items and skipping
/// other values; it understands explicit and implicit VR little endian (the main data set's
/// transfer syntax comes from the file meta group). Anything it cannot follow is left to the
/// parser; only a definite over-long length is an error.
pub fn check_lengths(path: &Path, bytes: &[u8]) -> Result<DataSet> {
    let Some(start) = signature_offset(bytes) else {
        return Err(IoError::format(
            path,
            "not a DICOM file (no DICM signature)",
        ));
    };
    let rd16 = |at: usize, be: bool| {
        bytes.get(at..at + 2).map(|b| {
            if be {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
    };
    let rd32 = |at: usize, be: bool| {
        bytes.get(at..at + 4).map(|b| {
            if be {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
        })
    };
    let mut pos = start;
    let mut implicit = false;
    let mut big_endian = false;
    let mut meta_end: Option<usize> = None;
    let mut in_encapsulated = false;
    let mut deflated = false;
    // Ends of the sequences and items of defined length around `pos`, innermost last: the
    // parser bounds their contents by them, so nothing inside may reach past one.
    let mut ends: Vec<usize> = Vec::new();
    let crossing = |group: u16, elem: u16, at: usize, end: usize| {
        IoError::format(
            path,
            format!("element ({group:04X},{elem:04X}) at byte {at} reaches past the end of its sequence or item at byte {end}: corrupt DICOM"),
        )
    };
    while pos + 8 <= bytes.len() {
        while let Some(&end) = ends.last() {
            match pos.cmp(&end) {
                std::cmp::Ordering::Equal => {
                    ends.pop();
                }
                std::cmp::Ordering::Greater => {
                    return Err(IoError::format(path, format!("the elements of a sequence or item run past its declared end at byte {end} (to byte {pos}): corrupt DICOM")));
                }
                std::cmp::Ordering::Less => break,
            }
        }
        if let Some(end) = meta_end.filter(|end| deflated && pos >= *end) {
            return Ok(DataSet::Deflated { start: end });
        }
        let (Some(g_le), Some(e_le)) = (rd16(pos, false), rd16(pos + 2, false)) else {
            break;
        };
        // The meta group is always little endian; the data set follows its transfer syntax.
        let be = big_endian && g_le != 0x0002;
        let (group, elem) = if be {
            (
                rd16(pos, true).unwrap_or(0),
                rd16(pos + 2, true).unwrap_or(0),
            )
        } else {
            (g_le, e_le)
        };
        if (group, elem) == (0, 0) && bytes[pos..].iter().all(|b| *b == 0) {
            return Ok(DataSet::Checked { end: pos });
        }
        let in_meta = group == 0x0002;
        // The parser starts the data set where the meta group's length says it ends: the walk
        // must arrive exactly there, or the two would read different elements.
        if let Some(end) = meta_end.filter(|_| !in_meta) {
            if pos != end {
                return Err(IoError::format(path, format!("the file meta group should end at byte {end}, but its elements end at byte {pos}: corrupt DICOM")));
            }
            meta_end = None;
        }
        if group == 0xFFFE {
            // Item, item delimiter or sequence delimiter: tag + 32-bit length, no VR.
            let Some(len) = rd32(pos + 4, be) else { break };
            let delimiter = matches!(elem, 0xE00D | 0xE0DD);
            if !(elem == 0xE000 || delimiter) || (delimiter && len != 0) {
                return Err(IoError::format(path, format!("invalid item tag (FFFE,{elem:04X}) with length {len} at byte {pos}: corrupt DICOM")));
            }
            pos += 8;
            if elem == 0xE0DD {
                in_encapsulated = false;
            }
            if elem == 0xE000 && len != UNDEFINED {
                if len as usize > bytes.len() - pos {
                    return Err(too_long(path, group, elem, len, bytes.len() - pos));
                }
                if let Some(&end) = ends.last().filter(|&&end| pos + len as usize > end) {
                    return Err(crossing(group, elem, pos - 8, end));
                }
                if in_encapsulated {
                    pos += len as usize; // a compressed fragment: raw bytes
                } else {
                    ends.push(pos + len as usize);
                }
            }
            continue;
        }
        let explicit = in_meta || !implicit;
        let (len, header, is_sq) = if explicit {
            let vr = &bytes[pos + 4..pos + 6];
            if !KNOWN_VRS.iter().any(|k| k.as_bytes() == vr) {
                return Err(IoError::format(path, format!("element ({group:04X},{elem:04X}) at byte {pos} has no valid value representation: corrupt DICOM")));
            }
            let (len, header, is_sq) = if long_vr(vr) {
                let Some(len) = rd32(pos + 8, be) else { break };
                (len, 12, vr == b"SQ")
            } else {
                let Some(len) = rd16(pos + 6, be) else { break };
                (u32::from(len), 8, false)
            };
            // Values of fixed-size types come in whole units; the parser misbehaves otherwise.
            if let Some(unit) = unit_size(vr).filter(|u| len != UNDEFINED && len % u != 0) {
                return Err(IoError::format(
                    path,
                    format!("element ({group:04X},{elem:04X}) of VR {} has {len} bytes, not a multiple of {unit}: corrupt DICOM", String::from_utf8_lossy(vr)),
                ));
            }
            (len, header, is_sq)
        } else {
            let Some(len) = rd32(pos + 4, be) else { break };
            (len, 8, len == UNDEFINED)
        };
        pos += header;
        if (group, elem) == (0x7FE0, 0x0010) && len == UNDEFINED {
            in_encapsulated = true;
            continue;
        }
        if len != UNDEFINED {
            if len as usize > bytes.len() - pos {
                return Err(too_long(path, group, elem, len, bytes.len() - pos));
            }
            if let Some(&end) = ends.last().filter(|&&end| pos + len as usize > end) {
                return Err(crossing(group, elem, pos - header, end));
            }
        }
        if len == UNDEFINED || is_sq {
            if is_sq && len != UNDEFINED {
                ends.push(pos + len as usize);
            }
            continue; // descend into the sequence's items
        }
        if (group, elem) == (0x0002, 0x0000) {
            meta_end = rd32(pos, false).map(|l| pos + 4 + l as usize);
        }
        if (group, elem) == (0x0002, 0x0010) {
            let ts = String::from_utf8_lossy(&bytes[pos..pos + len as usize])
                .trim_end_matches(['\0', ' '])
                .to_owned();
            match ts.as_str() {
                "1.2.840.10008.1.2" => implicit = true,
                "1.2.840.10008.1.2.2" => big_endian = true,
                "1.2.840.10008.1.2.1.99" if meta_end.is_some() => deflated = true,
                "1.2.840.10008.1.2.1.99" => {
                    return Err(IoError::format(
                        path,
                        "a deflated file without the meta group length: corrupt DICOM",
                    ))
                }
                _ => {}
            }
        }
        pos += len as usize;
    }
    match meta_end {
        Some(end) if deflated => Ok(DataSet::Deflated { start: end }),
        _ => Ok(DataSet::Checked { end: bytes.len() }),
    }
}

/// Size of one value of the fixed-size VRs.
fn unit_size(vr: &[u8]) -> Option<u32> {
    Some(match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"UL" | b"SL" | b"FL" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => return None,
    })
}

fn too_long(path: &Path, group: u16, elem: u16, len: u32, left: usize) -> IoError {
    IoError::format(path, format!("element ({group:04X},{elem:04X}) declares {len} bytes but only {left} remain in the file: corrupt or truncated DICOM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_finds_are_rejected() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad_inputs/dicom");
        for case in [
            "oom_length",
            "odd_at_length",
            "unknown_meta_vr",
            "meta_length_mismatch",
            "meta_overrun_sh",
            "sequence_length_past_end",
        ] {
            let path = dir.join(case).join("slice.dcm");
            let bytes = std::fs::read(&path).unwrap();
            let err = check_lengths(&path, &bytes).expect_err(case).to_string();
            assert!(
                err.contains("corrupt DICOM")
                    || err.contains("corrupt or truncated DICOM")
                    || err.contains("not a DICOM file"),
                "{case}: {err}"
            );
        }
    }
}
