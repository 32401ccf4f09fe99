//! RLE Lossless (PS3.5 Annex G) decoded to native little-endian bytes.
//!
//! dicom-pixeldata 0.8 places 8-bit single-sample RLE frames one pixel off (pixel n receives the
//! value of pixel n − 1), so cmedl decodes RLE itself and hands the decoder native data.

/// Decodes one RLE frame of `pixels` pixels with `samples` samples of `bytes` bytes each into
/// interleaved little-endian bytes.
pub(crate) fn decode_frame(
    fragment: &[u8],
    pixels: usize,
    samples: usize,
    bytes: usize,
) -> Result<Vec<u8>, String> {
    let word = |at: usize| -> Result<usize, String> {
        fragment
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "the RLE header is truncated".to_owned())
    };
    let segments = word(0)?;
    if segments != samples * bytes {
        return Err(format!(
            "the RLE header declares {segments} segments where {samples} sample(s) of {bytes} \
             byte(s) need {}",
            samples * bytes
        ));
    }
    let mut starts = Vec::with_capacity(segments + 1);
    for s in 0..segments {
        starts.push(word(4 + 4 * s)?);
    }
    starts.push(fragment.len());
    for s in 0..segments {
        let (a, b) = (starts[s], starts[s + 1]);
        if a < 64 || a > b || b > fragment.len() {
            return Err(format!("RLE segment {s} has invalid offsets {a}..{b}"));
        }
        // PackBits expands at most 64-fold (2 bytes → a run of 128): checked before allocating
        // what a corrupt header announces.
        if pixels > 64 * (b - a) {
            return Err(format!(
                "RLE segment {s} of {} bytes cannot hold {pixels} pixels",
                b - a
            ));
        }
    }
    let mut out = vec![0u8; pixels * samples * bytes];
    for s in 0..segments {
        let (a, b) = (starts[s], starts[s + 1]);
        let plane = unpack(&fragment[a..b], pixels)
            .map_err(|got| format!("RLE segment {s} holds {got} of {pixels} bytes"))?;
        // Segments come most significant byte first, sample after sample.
        let (sample, byte) = (s / bytes, s % bytes);
        let shift = sample * bytes + (bytes - 1 - byte);
        for (i, v) in plane.into_iter().enumerate() {
            out[i * samples * bytes + shift] = v;
        }
    }
    Ok(out)
}

/// PackBits: a header byte n ≥ 0 copies n + 1 literal bytes, −127 ≤ n ≤ −1 repeats the next
/// byte 1 − n times, −128 does nothing. Err holds the bytes decoded when the segment ends early.
fn unpack(segment: &[u8], want: usize) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(want);
    let mut at = 0;
    while out.len() < want && at < segment.len() {
        let n = segment[at] as i8;
        at += 1;
        if n >= 0 {
            let len = n as usize + 1;
            let end = (at + len).min(segment.len());
            out.extend_from_slice(&segment[at..end]);
            at = end;
        } else if n != -128 {
            let Some(&v) = segment.get(at) else { break };
            at += 1;
            out.extend(std::iter::repeat_n(v, (1 - isize::from(n)) as usize));
        }
    }
    if out.len() < want {
        return Err(out.len());
    }
    out.truncate(want);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(offsets: &[u32]) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&(offsets.len() as u32).to_le_bytes());
        for (i, o) in offsets.iter().enumerate() {
            h[4 + 4 * i..8 + 4 * i].copy_from_slice(&o.to_le_bytes());
        }
        h
    }

    #[test]
    fn packbits_literals_runs_and_no_ops() {
        // literal 3 bytes, run of 4 × 9, no-op, literal 1 byte.
        let seg = [2, 1, 2, 3, (-3i8) as u8, 9, 0x80, 0, 7];
        assert_eq!(unpack(&seg, 8).unwrap(), vec![1, 2, 3, 9, 9, 9, 9, 7]);
        assert_eq!(unpack(&seg, 5).unwrap(), vec![1, 2, 3, 9, 9]);
        assert_eq!(unpack(&seg[..4], 8), Err(3));
    }

    #[test]
    fn eight_bit_frames_keep_every_pixel_in_place() {
        let mut f = header(&[64]);
        f.extend([3, 10, 20, 30, 40]);
        assert_eq!(decode_frame(&f, 4, 1, 1).unwrap(), vec![10, 20, 30, 40]);
    }

    #[test]
    fn sixteen_bit_frames_interleave_msb_and_lsb_segments_little_endian() {
        // Values 0x0102 and 0xA0B0: MSB segment [01, A0], LSB segment [02, B0].
        let mut f = header(&[64, 67]);
        f.extend([1, 0x01, 0xA0, 1, 0x02, 0xB0]);
        assert_eq!(
            decode_frame(&f, 2, 1, 2).unwrap(),
            vec![0x02, 0x01, 0xB0, 0xA0]
        );
        assert!(decode_frame(&f, 2, 1, 1)
            .unwrap_err()
            .contains("2 segments"));
        assert!(decode_frame(&f, 3, 1, 2)
            .unwrap_err()
            .contains("holds 2 of 3"));
        let mut bad = header(&[64, 9999]);
        bad.extend([0, 1]);
        assert!(decode_frame(&bad, 1, 1, 2)
            .unwrap_err()
            .contains("invalid offsets"));
    }
}
