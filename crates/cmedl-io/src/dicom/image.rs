//! The pixel values of one DICOM image file, whatever its transfer syntax.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;

use super::{caught, frame_count, read_object, text, uint};
use crate::error::{IoError, Result};

/// Every frame of one grey-scale DICOM image, rescaled by RescaleSlope/Intercept (HU for CT).
#[derive(Clone, Debug)]
pub struct ImageFile {
    /// Rows of a frame.
    pub rows: usize,
    /// Columns of a frame.
    pub cols: usize,
    /// Frames in the file.
    pub frames: usize,
    /// Modality (CT, MR, …).
    pub modality: String,
    /// Transfer syntax UID of the file.
    pub transfer_syntax: String,
    /// Values frame by frame, row by row (`frames × rows × cols`).
    pub data: Vec<f32>,
}

/// Reads and decodes the grey-scale image in `path` (every frame).
pub fn read_image_file(path: &Path) -> Result<ImageFile> {
    let obj = read_object(path)?
        .ok_or_else(|| IoError::format(path, "not a DICOM file (no DICM signature)"))?;
    decode_image(path, &obj)
}

const RLE: &str = "1.2.840.10008.1.2.5";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Transfer syntaxes whose pixel data the built-in decoders read (deflated files arrive here
/// inflated, as explicit VR little endian).
const DECODABLE: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2", "Implicit VR Little Endian"),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian"),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless SV1"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
];

/// Transfer syntaxes recognised but not decoded, with their names for the error message.
const NOT_DECODABLE: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"),
    ("1.2.840.10008.1.2.4.201", "HTJ2K Lossless"),
    ("1.2.840.10008.1.2.4.202", "HTJ2K Lossless RPCL"),
    ("1.2.840.10008.1.2.4.203", "HTJ2K"),
    ("1.2.840.10008.1.2.4.100", "MPEG-2"),
    ("1.2.840.10008.1.2.4.102", "MPEG-4"),
];

/// Decodes the grey-scale pixel data of a parsed file.
pub(crate) fn decode_image(path: &Path, obj: &DefaultDicomObject) -> Result<ImageFile> {
    let transfer_syntax = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    if let Some((_, name)) = NOT_DECODABLE
        .iter()
        .find(|(uid, _)| *uid == transfer_syntax)
    {
        return Err(IoError::unsupported(
            path,
            format!(
                "pixel data compressed as {name} ({transfer_syntax}); decompress it first, e.g. \
                 with `gdcmconv --raw` or `dcmdjpls`"
            ),
        ));
    }
    let Some((_, syntax)) = DECODABLE.iter().find(|(uid, _)| *uid == transfer_syntax) else {
        return Err(IoError::unsupported(
            path,
            format!("transfer syntax {transfer_syntax}"),
        ));
    };
    let uint = |tag, name: &str| uint(obj, path, tag, name);
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(IoError::format(path, "no pixel data (not an image)"));
    }
    let rows = uint(tags::ROWS, "Rows")?;
    let cols = uint(tags::COLUMNS, "Columns")?;
    let frames = frame_count(obj, path)?;
    // Stored samples (at most 2 bytes) and the rescaled f32 copy.
    crate::memory::reserve(
        format_args!("{}: {frames} frame(s) of {rows}×{cols}", path.display()),
        rows as u128 * cols as u128 * frames as u128 * 6,
    )?;
    // Checked here because the decoder asserts on them (and a 32-bit rescale table would take
    // 16 GB): CT and MR store one sample of at most 16 bits.
    let (allocated, stored, samples) = (
        uint(tags::BITS_ALLOCATED, "BitsAllocated")?,
        uint(tags::BITS_STORED, "BitsStored")?,
        uint(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?,
    );
    if !matches!(allocated, 8 | 16) || stored == 0 || stored > allocated || samples != 1 {
        return Err(IoError::unsupported(
            path,
            format!(
                "pixel format with BitsAllocated {allocated}, BitsStored {stored}, \
                 SamplesPerPixel {samples} (CT/MR images have one sample of 8 or 16 bits)"
            ),
        ));
    }
    // jpeg-decoder reads 8-bit DCT only; 12-bit JPEG Extended (older CT archives) is refused
    // with the reason rather than a generic decoding failure.
    if transfer_syntax == "1.2.840.10008.1.2.4.51" && stored > 8 {
        return Err(IoError::unsupported(
            path,
            format!(
                "{stored}-bit JPEG Extended pixel data (the built-in JPEG decoder reads 8-bit DCT \
                 only); decompress it first, e.g. with `gdcmconv --raw` or `dcmdjpeg`"
            ),
        ));
    }
    if rows == 0 || cols == 0 || frames == 0 {
        return Err(IoError::format(
            path,
            format!("empty image: {rows} rows, {cols} columns, {frames} frames"),
        ));
    }
    // The file holds at most 2 GB (read_object), so more values than that mean a corrupt header.
    let values = rows
        .checked_mul(cols)
        .and_then(|p| p.checked_mul(frames))
        .filter(|v| *v <= 1 << 31)
        .ok_or_else(|| {
            IoError::format(
                path,
                format!("{frames} frame(s) of {rows}×{cols} pixels cannot be in one file"),
            )
        })?;
    let native;
    let obj = if transfer_syntax == RLE {
        native = rle_to_native(path, obj, rows * cols, allocated / 8, frames)?;
        &native
    } else {
        obj
    };
    let data = caught(path, || {
        let decoded = obj.decode_pixel_data().map_err(|e| {
            IoError::format(path, format!("cannot decode the {syntax} pixel data: {e}"))
        })?;
        decoded
            .to_vec::<f32>()
            .map_err(|e| IoError::format(path, format!("cannot convert the pixel data: {e}")))
    })?;
    if data.len() != values {
        return Err(IoError::format(
            path,
            format!(
                "{} decoded values for {frames} frame(s) of {rows}×{cols}",
                data.len()
            ),
        ));
    }
    Ok(ImageFile {
        rows,
        cols,
        frames,
        modality: text(obj, tags::MODALITY),
        transfer_syntax,
        data,
    })
}

/// A copy of `obj` with its RLE frames decoded into native pixel data (explicit VR little
/// endian), so that the pixel decoder applies rescale, sign and bit depth as for any native file.
fn rle_to_native(
    path: &Path,
    obj: &DefaultDicomObject,
    pixels: usize,
    bytes: usize,
    frames: usize,
) -> Result<DefaultDicomObject> {
    let element = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| IoError::format(path, "no pixel data"))?;
    let fragments = element
        .value()
        .fragments()
        .ok_or_else(|| IoError::format(path, "RLE pixel data is not encapsulated"))?;
    if fragments.len() != frames {
        return Err(IoError::format(
            path,
            format!(
                "{} RLE fragments for {frames} frame(s) (one per frame expected)",
                fragments.len()
            ),
        ));
    }
    let mut data = Vec::new();
    for (n, fragment) in fragments.iter().enumerate() {
        let frame = super::rle::decode_frame(fragment, pixels, 1, bytes)
            .map_err(|e| IoError::format(path, format!("frame {}: {e}", n + 1)))?;
        data.extend_from_slice(&frame);
    }
    let mut native = obj.clone();
    let vr = if bytes == 2 { VR::OW } else { VR::OB };
    native.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::U8(data.into()),
    ));
    native.update_meta(|meta| meta.transfer_syntax = EXPLICIT_LE.to_owned());
    Ok(native)
}
