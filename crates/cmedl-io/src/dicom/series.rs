//! Finding, sorting and reading an image series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::image::decode_image;
use super::{caught, frame_count, read_object, text, uint};
use crate::error::{IoError, Result};
use crate::geometry::{flip_lps_ras, identity, Geometry};
use crate::volume::Volume;

/// One series found in a folder.
#[derive(Clone, Debug)]
pub struct SeriesInfo {
    /// SeriesInstanceUID.
    pub uid: String,
    /// Modality (CT, MR, RTSTRUCT, …).
    pub modality: String,
    /// SeriesDescription.
    pub description: String,
    /// Files of the series.
    pub files: Vec<PathBuf>,
}

/// A series read as a volume.
#[derive(Clone, Debug)]
pub struct SeriesVolume {
    /// The folder (or file) the series was read from.
    pub path: PathBuf,
    /// Voxels in HU (CT) or stored units (MR) and the RAS+ geometry.
    pub volume: Volume,
    /// SeriesInstanceUID.
    pub uid: String,
    /// Modality.
    pub modality: String,
    /// Largest relative deviation of the slice gaps from their median (0 for even spacing).
    pub spacing_deviation: f64,
    /// What a derived object (SEG, RTSTRUCT) must reference and copy.
    pub source: SeriesSource,
}

/// The identity of a series' images and the patient and study attributes derived objects copy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesSource {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: String,
    /// SOPClassUID of the images.
    pub sop_class_uid: String,
    /// SOPInstanceUID of each slice, in the volume's slice order.
    pub instance_uids: Vec<String>,
    /// Patient and study attributes (tag, value) to copy, where the images have them.
    pub patient_study: Vec<(dicom_core::Tag, String)>,
}

/// Patient, study and frame-of-reference attributes a derived object copies from its images.
pub(crate) const PATIENT_STUDY_TAGS: [dicom_core::Tag; 11] = [
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_DESCRIPTION,
    tags::POSITION_REFERENCE_INDICATOR,
];

fn floats(
    obj: &DefaultDicomObject,
    tag: dicom_core::Tag,
    path: &Path,
    name: &str,
    n: usize,
) -> Result<Vec<f64>> {
    let e = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| IoError::format(path, format!("{name} is missing")))?;
    let v = e
        .to_multi_float64()
        .map_err(|_| IoError::format(path, format!("{name} is not numeric")))?;
    if v.len() != n || v.iter().any(|x| !x.is_finite()) {
        return Err(IoError::format(
            path,
            format!("{name} must hold {n} finite numbers, has {:?}", v),
        ));
    }
    Ok(v)
}

/// Most files scanned under one folder (a whole PACS export is not a series).
const MAX_FOLDER_FILES: usize = 100_000;

/// Every DICOM file under `folder` (recursively), grouped by series; non-DICOM files are skipped.
pub fn scan_folder(folder: &Path) -> Result<Vec<SeriesInfo>> {
    Ok(scan(folder)?.into_iter().map(|(info, _)| info).collect())
}

impl SeriesInfo {
    /// The series `obj` belongs to, with no files listed yet.
    fn of(obj: &DefaultDicomObject) -> Self {
        Self {
            uid: text(obj, tags::SERIES_INSTANCE_UID),
            modality: text(obj, tags::MODALITY),
            description: text(obj, tags::SERIES_DESCRIPTION),
            files: Vec::new(),
        }
    }
}

/// The series of a folder with their parsed files (in the order of `SeriesInfo::files`); each
/// file is read and parsed once.
fn scan(folder: &Path) -> Result<Vec<(SeriesInfo, Vec<DefaultDicomObject>)>> {
    let mut files = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    // Folders by their real path: a symlink back up the tree is followed once, never in a loop.
    let mut seen = std::collections::HashSet::new();
    seen.insert(folder.canonicalize().map_err(|e| IoError::io(folder, e))?);
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| IoError::io(&d, e))?;
        for e in entries {
            let p = e.map_err(|e| IoError::io(&d, e))?.path();
            // Follows symlinks; broken links are skipped like any other non-file.
            let Ok(meta) = std::fs::metadata(&p) else {
                tracing::debug!("{}: skipped (unreadable or a broken link)", p.display());
                continue;
            };
            if meta.is_dir() {
                if p.canonicalize().is_ok_and(|real| seen.insert(real)) {
                    stack.push(p);
                } else {
                    tracing::warn!(
                        "{}: a folder already scanned (symlink loop); not followed again",
                        p.display()
                    );
                }
            } else if meta.is_file() {
                files.push(p);
                if files.len() > MAX_FOLDER_FILES {
                    return Err(IoError::unsupported(
                        folder,
                        format!("more than {MAX_FOLDER_FILES} files under one folder; point cmedl at the series' own folder"),
                    ));
                }
            } else {
                // Devices, FIFOs and sockets: reading them would block or never end.
                tracing::debug!("{}: skipped (not a regular file)", p.display());
            }
        }
    }
    files.sort();
    let mut series: BTreeMap<String, (SeriesInfo, Vec<DefaultDicomObject>)> = BTreeMap::new();
    for f in files {
        // Files without the DICOM signature (notes, thumbnails) are not part of a series; a
        // corrupt DICOM file is an error worth reporting.
        let Some(obj) = read_object(&f)? else {
            continue;
        };
        let uid = text(&obj, tags::SERIES_INSTANCE_UID);
        let entry = series
            .entry(uid)
            .or_insert_with(|| (SeriesInfo::of(&obj), Vec::new()));
        entry.0.files.push(f);
        entry.1.push(obj);
    }
    Ok(series.into_values().collect())
}

/// Reads the image series in `folder`: the one with `uid`, or the only image series there.
pub fn read_series(folder: &Path, uid: Option<&str>) -> Result<SeriesVolume> {
    let scanned = scan(folder)?;
    let all: Vec<SeriesInfo> = scanned.iter().map(|(info, _)| info.clone()).collect();
    let images: Vec<&SeriesInfo> = all
        .iter()
        .filter(|s| {
            s.modality != "RTSTRUCT"
                && s.modality != "SEG"
                && s.modality != "RTPLAN"
                && s.modality != "RTDOSE"
        })
        .collect();
    let chosen = match uid {
        Some(u) => all.iter().find(|s| s.uid == u).ok_or_else(|| {
            IoError::format(
                folder,
                format!("no series {u}; the folder has {}", describe(&all)),
            )
        })?,
        None => match images.as_slice() {
            [] if all.is_empty() => return Err(IoError::format(folder, "no DICOM files")),
            [] => {
                return Err(IoError::format(
                    folder,
                    format!("no image series; the folder has {}", describe(&all)),
                ))
            }
            [one] => one,
            _ => {
                return Err(IoError::format(
                    folder,
                    format!(
                        "several image series; choose one by SeriesInstanceUID: {}",
                        describe(&all)
                    ),
                ))
            }
        },
    };
    let objects = scanned
        .into_iter()
        .find(|(info, _)| info.uid == chosen.uid)
        .map(|(_, o)| o)
        .unwrap_or_default();
    read_files(folder, chosen, objects)
}

/// Reads one image file as a one-slice volume (slice step from SpacingBetweenSlices or
/// SliceThickness).
pub fn read_series_file(path: &Path) -> Result<SeriesVolume> {
    let obj = read_object(path)?
        .ok_or_else(|| IoError::format(path, "not a DICOM file (no DICM signature)"))?;
    let info = SeriesInfo {
        files: vec![path.to_path_buf()],
        ..SeriesInfo::of(&obj)
    };
    read_files(path, &info, vec![obj])
}

fn describe(all: &[SeriesInfo]) -> String {
    all.iter()
        .map(|s| {
            format!(
                "{} ({}, {} file(s), '{}')",
                s.uid,
                s.modality,
                s.files.len(),
                s.description
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct Slice {
    position: [f64; 3],
    /// SpacingBetweenSlices, else SliceThickness: the slice step of a one-slice series.
    thickness: Option<f64>,
    along: f64,
    pixels: Vec<f32>,
    path: PathBuf,
    instance_uid: String,
}

/// What every slice of a series must share: (row, column) directions, (columns, rows) and
/// (column, row) pixel spacing.
#[derive(Clone, Copy, Debug)]
struct Plane {
    orientation: ([f64; 3], [f64; 3]),
    size: (usize, usize),
    spacing: [f64; 2],
}

/// A UID of the data set, or else the same UID in the file meta (the standard makes the two
/// equal; anonymisers sometimes empty the data set's copy).
fn uid_or_meta(obj: &DefaultDicomObject, tag: dicom_core::Tag, meta: &str) -> String {
    let own = text(obj, tag);
    if own.is_empty() {
        meta.trim_end_matches(['\0', ' ']).to_owned()
    } else {
        own
    }
}

/// What a derived object copies and references from the series' first file.
fn source_of(obj: &DefaultDicomObject) -> SeriesSource {
    SeriesSource {
        study_uid: text(obj, tags::STUDY_INSTANCE_UID),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
        sop_class_uid: uid_or_meta(
            obj,
            tags::SOP_CLASS_UID,
            obj.meta().media_storage_sop_class_uid(),
        ),
        instance_uids: Vec::new(),
        patient_study: PATIENT_STUDY_TAGS
            .iter()
            .map(|&tag| (tag, text(obj, tag)))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
    }
}

/// Reads one slice of a series: its position, pixels and plane.
fn read_slice(path: &Path, obj: &DefaultDicomObject) -> Result<(Slice, Plane)> {
    let iop = floats(
        obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        path,
        "ImageOrientationPatient",
        6,
    )?;
    let ipp = floats(
        obj,
        tags::IMAGE_POSITION_PATIENT,
        path,
        "ImagePositionPatient",
        3,
    )?;
    let ps = floats(obj, tags::PIXEL_SPACING, path, "PixelSpacing", 2)?;
    if ps.iter().any(|v| *v <= 0.0) {
        return Err(IoError::format(
            path,
            format!("PixelSpacing {ps:?} must be positive"),
        ));
    }
    // Refused before decoding: an enhanced multi-frame file may be large.
    let frames = frame_count(obj, path)?;
    if frames != 1 {
        return Err(IoError::unsupported(
            path,
            format!(
                "multi-frame image with {frames} frames (enhanced CT/MR); convert it to one \
                 file per slice, e.g. with `emf2sf` (dcm4che)"
            ),
        ));
    }
    let image = decode_image(path, obj)?;
    let thickness = [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS]
        .into_iter()
        .find_map(|tag| {
            floats(obj, tag, path, "", 1)
                .ok()
                .map(|v| v[0])
                .filter(|t| *t > 0.0)
        });
    let slice = Slice {
        position: [ipp[0], ipp[1], ipp[2]],
        thickness,
        along: 0.0,
        pixels: image.data,
        path: path.to_path_buf(),
        instance_uid: uid_or_meta(
            obj,
            tags::SOP_INSTANCE_UID,
            obj.meta().media_storage_sop_instance_uid(),
        ),
    };
    let plane = Plane {
        orientation: ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]),
        size: (image.cols, image.rows),
        spacing: [ps[1], ps[0]],
    };
    Ok((slice, plane))
}

/// Fails unless `plane` (of the slice at `path`) matches the series' `first`.
fn check_same_plane(path: &Path, first: &Plane, plane: &Plane) -> Result<()> {
    let (a, b) = (first.orientation, plane.orientation);
    if (0..3).any(|i| (a.0[i] - b.0[i]).abs() > 1e-4 || (a.1[i] - b.1[i]).abs() > 1e-4) {
        return Err(IoError::format(
            path,
            "ImageOrientationPatient differs from the other slices of the series",
        ));
    }
    if first.size != plane.size {
        let (sz, prev) = (plane.size, first.size);
        return Err(IoError::format(
            path,
            format!(
                "{}×{} pixels, but other slices have {}×{}",
                sz.1, sz.0, prev.1, prev.0
            ),
        ));
    }
    let (p, q) = (first.spacing, plane.spacing);
    if (p[0] - q[0]).abs() > 1e-4 || (p[1] - q[1]).abs() > 1e-4 {
        return Err(IoError::format(
            path,
            "PixelSpacing differs from the other slices of the series",
        ));
    }
    Ok(())
}

fn read_files(
    folder: &Path,
    series: &SeriesInfo,
    objects: Vec<DefaultDicomObject>,
) -> Result<SeriesVolume> {
    let mut source = objects.first().map(source_of).unwrap_or_default();
    // The whole series' voxels are bounded before any pixel data is decoded.
    let mut bytes = 0u128;
    for (path, obj) in series.files.iter().zip(&objects) {
        let dim = |tag| uint(obj, path, tag, "Rows/Columns").unwrap_or(0) as u128;
        let frames = frame_count(obj, path).unwrap_or(1) as u128;
        bytes += dim(tags::ROWS) * dim(tags::COLUMNS) * frames * 4;
    }
    crate::memory::reserve(
        format_args!(
            "{}: series {} ({} files)",
            folder.display(),
            series.uid,
            series.files.len()
        ),
        bytes,
    )?;
    let mut first: Option<Plane> = None;
    let mut slices: Vec<Slice> = Vec::new();
    for (path, obj) in series.files.iter().zip(objects) {
        let (slice, plane) = caught(path, || read_slice(path, &obj))?;
        match &first {
            None => first = Some(plane),
            Some(f) => check_same_plane(&slice.path, f, &plane)?,
        }
        slices.push(slice);
    }
    let plane = first.ok_or_else(|| IoError::format(folder, "the series has no readable image"))?;
    let (geometry, deviation) = stack(folder, &mut slices, &plane)?;
    let mut data = Vec::with_capacity(geometry.len());
    for s in &slices {
        data.extend_from_slice(&s.pixels);
    }
    source.instance_uids = slices.iter().map(|s| s.instance_uid.clone()).collect();
    Ok(SeriesVolume {
        path: folder.to_path_buf(),
        source,
        volume: Volume::new(geometry, data)?,
        uid: series.uid.clone(),
        modality: series.modality.clone(),
        spacing_deviation: deviation,
    })
}

/// Sorts the slices along the plane's normal and checks that they form one evenly stepped
/// stack (no duplicates, no tilt, no missing slice); returns the stack's grid and the largest
/// relative deviation of its gaps from their median.
fn stack(folder: &Path, slices: &mut [Slice], plane: &Plane) -> Result<(Geometry, f64)> {
    let (row, col) = plane.orientation;
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    for s in slices.iter_mut() {
        s.along = (0..3).map(|i| s.position[i] * normal[i]).sum();
    }
    slices.sort_by(|a, b| a.along.total_cmp(&b.along));
    let gaps: Vec<f64> = slices.windows(2).map(|w| w[1].along - w[0].along).collect();
    if let Some(w) = slices
        .windows(2)
        .find(|w| (w[1].along - w[0].along).abs() < 1e-6)
    {
        return Err(IoError::format(
            &w[1].path,
            format!("two slices at the same position as {}", w[0].path.display()),
        ));
    }
    let median = if gaps.is_empty() {
        slices.first().and_then(|s| s.thickness).unwrap_or(1.0)
    } else {
        let mut g = gaps.clone();
        g.sort_by(f64::total_cmp);
        g[g.len() / 2]
    };
    // Gantry tilt: positions that do not follow the slice normal.
    if let (Some(first), Some(last)) = (slices.first(), slices.last()) {
        let d: Vec<f64> = (0..3)
            .map(|i| last.position[i] - first.position[i])
            .collect();
        let along = last.along - first.along;
        let off: f64 = (0..3)
            .map(|i| (d[i] - along * normal[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        if slices.len() > 1 && off > 0.01 * along.abs().max(1.0) {
            return Err(IoError::unsupported(folder, format!("gantry tilt or sheared series: slice positions drift {off:.2} mm off the slice normal")));
        }
    }
    if let Some((i, g)) = gaps.iter().enumerate().find(|(_, g)| **g > 1.5 * median) {
        return Err(IoError::format(
            folder,
            format!("missing slice(s): a gap of {g:.3} mm between {} and {} where the series steps {median:.3} mm", slices[i].path.display(), slices[i + 1].path.display()),
        ));
    }
    let deviation = gaps
        .iter()
        .map(|g| ((g - median) / median).abs())
        .fold(0.0, f64::max);
    let sp = plane.spacing;
    let mut lps = identity();
    for r in 0..3 {
        lps[r][0] = row[r] * sp[0];
        lps[r][1] = col[r] * sp[1];
        lps[r][2] = normal[r] * median;
        lps[r][3] = slices[0].position[r];
    }
    let geometry = Geometry {
        shape: [plane.size.0, plane.size.1, slices.len()],
        spacing: [sp[0], sp[1], median],
        affine: flip_lps_ras(&lps),
    };
    Ok((geometry, deviation))
}
