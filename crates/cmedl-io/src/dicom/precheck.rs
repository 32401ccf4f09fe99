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
    let mut w = Walk {
        path,
        bytes,
        pos: start,
        implicit: false,
        big_endian: false,
        meta_end: None,
        in_encapsulated: false,
        deflated: false,
        ends: Vec::new(),
    };
    while w.pos + 8 <= bytes.len() {
        w.leave_finished_items()?;
        if let Some(end) = w.meta_end.filter(|end| w.deflated && w.pos >= *end) {
            return Ok(DataSet::Deflated { start: end });
        }
        let Some((group, elem, be)) = w.tag() else {
            break;
        };
        if (group, elem) == (0, 0) && bytes[w.pos..].iter().all(|b| *b == 0) {
            return Ok(DataSet::Checked { end: w.pos });
        }
        w.check_meta_end(group)?;
        let stepped = if group == 0xFFFE {
            w.item_tag(elem, be)?
        } else {
            w.element(group, elem, be)?
        };
        if stepped.is_none() {
            break;
        }
    }
    match w.meta_end {
        Some(end) if w.deflated => Ok(DataSet::Deflated { start: end }),
        _ => Ok(DataSet::Checked { end: bytes.len() }),
    }
}

/// The state of the walk over a file's element headers.
struct Walk<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
    implicit: bool,
    big_endian: bool,
    /// Where the file meta group ends, by its group length (until the walk gets there).
    meta_end: Option<usize>,
    in_encapsulated: bool,
    deflated: bool,
    /// Ends of the sequences and items of defined length around `pos`, innermost last: the
    /// parser bounds their contents by them, so nothing inside may reach past one.
    ends: Vec<usize>,
}

impl Walk<'_> {
    fn rd16(&self, at: usize, be: bool) -> Option<u16> {
        self.bytes.get(at..at + 2).map(|b| {
            if be {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
    }

    fn rd32(&self, at: usize, be: bool) -> Option<u32> {
        self.bytes.get(at..at + 4).map(|b| {
            if be {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
        })
    }

    /// The tag at `pos` and whether its element is big endian (none where the file ends): the
    /// meta group is always little endian; the data set follows its transfer syntax.
    fn tag(&self) -> Option<(u16, u16, bool)> {
        let (g_le, e_le) = (self.rd16(self.pos, false)?, self.rd16(self.pos + 2, false)?);
        let be = self.big_endian && g_le != 0x0002;
        Some(if be {
            (
                self.rd16(self.pos, true).unwrap_or(0),
                self.rd16(self.pos + 2, true).unwrap_or(0),
                be,
            )
        } else {
            (g_le, e_le, be)
        })
    }

    fn crossing(&self, group: u16, elem: u16, at: usize, end: usize) -> IoError {
        IoError::format(
            self.path,
            format!("element ({group:04X},{elem:04X}) at byte {at} reaches past the end of its sequence or item at byte {end}: corrupt DICOM"),
        )
    }

    /// Leaves the sequences and items that end at `pos`; an element that ran past an end is an
    /// error.
    fn leave_finished_items(&mut self) -> Result<()> {
        while let Some(&end) = self.ends.last() {
            match self.pos.cmp(&end) {
                std::cmp::Ordering::Equal => {
                    self.ends.pop();
                }
                std::cmp::Ordering::Greater => {
                    return Err(IoError::format(self.path, format!("the elements of a sequence or item run past its declared end at byte {end} (to byte {}): corrupt DICOM", self.pos)));
                }
                std::cmp::Ordering::Less => break,
            }
        }
        Ok(())
    }

    /// The parser starts the data set where the meta group's length says it ends: the walk
    /// must arrive exactly there, or the two would read different elements.
    fn check_meta_end(&mut self, group: u16) -> Result<()> {
        if let Some(end) = self.meta_end.filter(|_| group != 0x0002) {
            if self.pos != end {
                return Err(IoError::format(self.path, format!("the file meta group should end at byte {end}, but its elements end at byte {}: corrupt DICOM", self.pos)));
            }
            self.meta_end = None;
        }
        Ok(())
    }

    /// An item, item delimiter or sequence delimiter: tag + 32-bit length, no VR. None where
    /// the file ends.
    fn item_tag(&mut self, elem: u16, be: bool) -> Result<Option<()>> {
        let (group, at) = (0xFFFE, self.pos);
        let Some(len) = self.rd32(at + 4, be) else {
            return Ok(None);
        };
        let delimiter = matches!(elem, 0xE00D | 0xE0DD);
        if !(elem == 0xE000 || delimiter) || (delimiter && len != 0) {
            return Err(IoError::format(self.path, format!("invalid item tag (FFFE,{elem:04X}) with length {len} at byte {at}: corrupt DICOM")));
        }
        self.pos += 8;
        if elem == 0xE0DD {
            self.in_encapsulated = false;
        }
        if elem == 0xE000 && len != UNDEFINED {
            if len as usize > self.bytes.len() - self.pos {
                return Err(too_long(
                    self.path,
                    group,
                    elem,
                    len,
                    self.bytes.len() - self.pos,
                ));
            }
            if let Some(&end) = self
                .ends
                .last()
                .filter(|&&end| self.pos + len as usize > end)
            {
                return Err(self.crossing(group, elem, at, end));
            }
            if self.in_encapsulated {
                self.pos += len as usize; // a compressed fragment: raw bytes
            } else {
                self.ends.push(self.pos + len as usize);
            }
        }
        Ok(Some(()))
    }

    /// The value length, header size and whether it opens a sequence, of the element at `pos`
    /// (none where the file ends).
    fn element_header(
        &self,
        group: u16,
        elem: u16,
        be: bool,
    ) -> Result<Option<(u32, usize, bool)>> {
        let pos = self.pos;
        // Implicit VR outside the meta group: tag and a 32-bit length.
        if group != 0x0002 && self.implicit {
            return Ok(self.rd32(pos + 4, be).map(|len| (len, 8, len == UNDEFINED)));
        }
        let vr = &self.bytes[pos + 4..pos + 6];
        if !KNOWN_VRS.iter().any(|k| k.as_bytes() == vr) {
            return Err(IoError::format(self.path, format!("element ({group:04X},{elem:04X}) at byte {pos} has no valid value representation: corrupt DICOM")));
        }
        let (len, header, is_sq) = if long_vr(vr) {
            let Some(len) = self.rd32(pos + 8, be) else {
                return Ok(None);
            };
            (len, 12, vr == b"SQ")
        } else {
            let Some(len) = self.rd16(pos + 6, be) else {
                return Ok(None);
            };
            (u32::from(len), 8, false)
        };
        // Values of fixed-size types come in whole units; the parser misbehaves otherwise.
        if let Some(unit) = unit_size(vr).filter(|u| len != UNDEFINED && len % u != 0) {
            return Err(IoError::format(
                self.path,
                format!("element ({group:04X},{elem:04X}) of VR {} has {len} bytes, not a multiple of {unit}: corrupt DICOM", String::from_utf8_lossy(vr)),
            ));
        }
        Ok(Some((len, header, is_sq)))
    }

    /// An element: its header, then its value skipped, entered (a sequence) or read (the meta
    /// group's length and the transfer syntax). None where the file ends.
    fn element(&mut self, group: u16, elem: u16, be: bool) -> Result<Option<()>> {
        let Some((len, header, is_sq)) = self.element_header(group, elem, be)? else {
            return Ok(None);
        };
        self.pos += header;
        let pos = self.pos;
        if (group, elem) == (0x7FE0, 0x0010) && len == UNDEFINED {
            self.in_encapsulated = true;
            return Ok(Some(()));
        }
        if len != UNDEFINED {
            if len as usize > self.bytes.len() - pos {
                return Err(too_long(
                    self.path,
                    group,
                    elem,
                    len,
                    self.bytes.len() - pos,
                ));
            }
            if let Some(&end) = self.ends.last().filter(|&&end| pos + len as usize > end) {
                return Err(self.crossing(group, elem, pos - header, end));
            }
        }
        if len == UNDEFINED || is_sq {
            if is_sq && len != UNDEFINED {
                self.ends.push(pos + len as usize);
            }
            return Ok(Some(())); // descend into the sequence's items
        }
        if (group, elem) == (0x0002, 0x0000) {
            self.meta_end = self.rd32(pos, false).map(|l| pos + 4 + l as usize);
        }
        if (group, elem) == (0x0002, 0x0010) {
            self.transfer_syntax(&self.bytes[pos..pos + len as usize])?;
        }
        self.pos += len as usize;
        Ok(Some(()))
    }

    /// Reads the transfer syntax: implicit VR, big endian or deflated from here on.
    fn transfer_syntax(&mut self, value: &[u8]) -> Result<()> {
        let ts = String::from_utf8_lossy(value)
            .trim_end_matches(['\0', ' '])
            .to_owned();
        match ts.as_str() {
            "1.2.840.10008.1.2" => self.implicit = true,
            "1.2.840.10008.1.2.2" => self.big_endian = true,
            "1.2.840.10008.1.2.1.99" if self.meta_end.is_some() => self.deflated = true,
            "1.2.840.10008.1.2.1.99" => {
                return Err(IoError::format(
                    self.path,
                    "a deflated file without the meta group length: corrupt DICOM",
                ))
            }
            _ => {}
        }
        Ok(())
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
