//! `cmedl info` and `cmedl convert`.

use std::path::Path;

use cmedl_io::nifti::{
    is_nifti_path, read_volume, write_volume, DataType, ReadOptions, WriteOptions,
};
use cmedl_io::{grid_with_spacing, resample_volume, Interp};
use serde_json::json;

use crate::failure::{CmdResult, Failure};

/// Parses `X,Y,Z` millimetres.
pub fn parse_spacing(s: &str) -> Result<[f64; 3], String> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not X,Y,Z in mm"))?;
    match parts.as_slice() {
        [x, y, z] if [x, y, z].iter().all(|v| v.is_finite() && **v > 0.0) => Ok([*x, *y, *z]),
        _ => Err(format!("'{s}' must be three positive numbers X,Y,Z in mm")),
    }
}

/// A volume from a NIfTI file or a DICOM series folder, with a description of its storage.
pub fn load_volume(
    path: &Path,
    series: Option<&str>,
    volume: Option<usize>,
) -> Result<(cmedl_io::Volume, String), Failure> {
    if path.is_dir() {
        let s = cmedl_io::dicom::read_series(path, series)?;
        if s.spacing_deviation > 0.01 {
            eprintln!(
                "warning: {}: slice gaps vary by up to {:.1} % around the median spacing",
                path.display(),
                s.spacing_deviation * 100.0
            );
        }
        return Ok((s.volume, format!("dicom {} series {}", s.modality, s.uid)));
    }
    if !is_nifti_path(path) && cmedl_io::dicom::is_dicom_file(path) {
        let s = cmedl_io::dicom::read_series_file(path)?;
        return Ok((s.volume, format!("dicom {} image (one file)", s.modality)));
    }
    require_nifti(path)?;
    let img = read_volume(
        path,
        &ReadOptions {
            volume,
            ..Default::default()
        },
    )?;
    Ok((img.volume, img.header.datatype.name().to_owned()))
}

fn require_nifti(path: &Path) -> Result<(), Failure> {
    if !is_nifti_path(path) {
        return Err(Failure::Input(format!(
            "{}: not a NIfTI file name (.nii or .nii.gz)",
            path.display()
        )));
    }
    Ok(())
}

/// `cmedl info FILE|DICOM_FOLDER [--json]`.
pub fn info(path: &Path, as_json: bool, index: Option<usize>) -> CmdResult {
    let (volume, datatype) = match load_volume(path, None, index) {
        // A DICOM image without a placement (no position, multi-frame): its pixels alone.
        Err(e) if path.is_file() && cmedl_io::dicom::is_dicom_file(path) => {
            let Ok(image) = cmedl_io::dicom::read_image_file(path) else {
                return Err(e);
            };
            return dicom_image_info(path, &image, as_json, &e.to_string());
        }
        other => other?,
    };
    let v = &volume;
    let (min, max, mean) = v.stats();
    let integer = v.data.iter().all(|x| x.fract() == 0.0);
    let labels = (integer && min >= 0.0 && max <= 255.0).then(|| {
        let mut counts = std::collections::BTreeMap::new();
        for &x in &v.data {
            *counts.entry(x as u8).or_insert(0usize) += 1;
        }
        counts
    });
    if as_json {
        let mut out = json!({
            "file": path.display().to_string(),
            "shape": v.geometry.shape,
            "spacing": v.geometry.spacing,
            "affine": v.geometry.affine,
            "datatype": datatype,
            "min": min,
            "max": max,
            "mean": mean,
            "non_finite": v.non_finite(),
        });
        if let Some(l) = &labels {
            out["labels"] = json!(l
                .iter()
                .map(|(k, c)| (k.to_string(), *c))
                .collect::<std::collections::BTreeMap<_, _>>());
        }
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Failure::Internal(e.to_string()))?
        );
        return Ok(());
    }
    crate::outln!("file      {}", path.display());
    crate::outln!("shape     {:?}", v.geometry.shape);
    crate::outln!("spacing   {:?} mm", v.geometry.spacing);
    crate::outln!("datatype  {datatype}");
    crate::outln!("affine    (voxel → RAS+ mm)");
    for row in &v.geometry.affine {
        crate::outln!(
            "          {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    crate::outln!("min/max   {min} / {max}");
    crate::outln!("mean      {mean:.4}");
    if v.non_finite() > 0 {
        crate::outln!("non-finite voxels {}", v.non_finite());
    }
    if let Some(l) = labels.filter(|l| l.len() <= 16) {
        crate::outln!(
            "labels    {}",
            l.iter()
                .map(|(k, c)| format!("{k}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `cmedl info` of a DICOM image that is not a volume: shape, modality, transfer syntax and
/// value statistics, with why it has no geometry.
fn dicom_image_info(
    path: &Path,
    image: &cmedl_io::dicom::ImageFile,
    as_json: bool,
    why: &str,
) -> CmdResult {
    let n = image.data.len().max(1) as f64;
    let (min, max) = image
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mean = image.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let shape = [image.cols, image.rows, image.frames];
    if as_json {
        let out = json!({
            "file": path.display().to_string(),
            "shape": shape,
            "datatype": format!("dicom {} image", image.modality),
            "transfer_syntax": image.transfer_syntax,
            "min": min,
            "max": max,
            "mean": mean,
            "geometry": why,
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Failure::Internal(e.to_string()))?
        );
        return Ok(());
    }
    crate::outln!("file      {}", path.display());
    crate::outln!("shape     {shape:?} (columns, rows, frames)");
    crate::outln!(
        "datatype  dicom {} image, transfer syntax {}",
        image.modality,
        image.transfer_syntax
    );
    crate::outln!("min/max   {min} / {max}");
    crate::outln!("mean      {mean:.4}");
    crate::outln!("geometry  none: {why}");
    Ok(())
}

/// Refuses to write `output` over `input`.
pub fn check_not_same(input: &Path, output: &Path) -> Result<(), Failure> {
    let canon = |p: &Path| p.canonicalize().ok();
    if output.exists() && canon(input) == canon(output) {
        return Err(Failure::Input(format!(
            "{}: refusing to write the output over the input",
            output.display()
        )));
    }
    Ok(())
}

/// Options of `cmedl convert`.
pub struct ConvertArgs {
    /// NIfTI file or DICOM series folder.
    pub input: std::path::PathBuf,
    /// Output NIfTI file.
    pub output: std::path::PathBuf,
    /// Resample to this spacing.
    pub spacing: Option<[f64; 3]>,
    /// SeriesInstanceUID to pick in a folder with several series.
    pub series: Option<String>,
    /// Volume of a 4-D NIfTI input.
    pub volume: Option<usize>,
    /// RTSTRUCT file whose ROI becomes a mask.
    pub rtstruct: Option<std::path::PathBuf>,
    /// DICOM SEG file whose segment becomes a mask.
    pub seg: Option<std::path::PathBuf>,
    /// ROI name or segment label.
    pub roi: Option<String>,
    /// Where the ROI mask goes.
    pub mask_out: Option<std::path::PathBuf>,
    /// Only list the ROIs of the RTSTRUCT or the segments of the SEG.
    pub list_rois: bool,
}

/// `cmedl convert IN OUT [--spacing X,Y,Z] [--rtstruct FILE | --seg FILE] [--roi NAME
/// --mask-out MASK]`.
pub fn convert(args: ConvertArgs) -> CmdResult {
    if args.list_rois {
        if let Some(rs) = &args.rtstruct {
            for r in cmedl_io::dicom::list_rois(rs)? {
                crate::outln!("{:>4}  {:<24} {} contour(s)", r.number, r.name, r.contours);
            }
            return Ok(());
        }
        if let Some(seg) = &args.seg {
            for s in cmedl_io::dicom::list_segments(seg)? {
                crate::outln!("{:>4}  {:<24} {} frame(s)", s.number, s.label, s.frames);
            }
            return Ok(());
        }
        return Err(Failure::Input(
            "--list-rois needs --rtstruct FILE or --seg FILE".into(),
        ));
    }
    let (input, output) = (args.input.as_path(), args.output.as_path());
    if !is_nifti_path(output) {
        return Err(Failure::Input(format!(
            "{}: the output must be a .nii or .nii.gz file",
            output.display()
        )));
    }
    check_not_same(input, output)?;
    let (mut volume, datatype) = if input.is_dir() {
        let series = cmedl_io::dicom::read_series(input, args.series.as_deref())?;
        let flag = if args.seg.is_some() {
            "--seg"
        } else {
            "--rtstruct"
        };
        if args.rtstruct.is_some() || args.seg.is_some() {
            let roi = args.roi.as_deref().ok_or_else(|| {
                Failure::Input(format!("{flag} needs --roi NAME (see --list-rois)"))
            })?;
            let mask_out = args
                .mask_out
                .as_deref()
                .ok_or_else(|| Failure::Input(format!("{flag} needs --mask-out FILE")))?;
            let mut mask = if let Some(rs) = &args.rtstruct {
                let roi_mask = cmedl_io::dicom::read_rtstruct_mask(rs, &series, roi)?;
                if roi_mask.outside > 0 {
                    eprintln!(
                        "warning: {} contour(s) of ROI '{roi}' lie beyond the series and were \
                         left out",
                        roi_mask.outside
                    );
                }
                roi_mask.mask
            } else {
                let seg = args.seg.as_deref().unwrap_or(Path::new(""));
                cmedl_io::dicom::read_seg_mask(seg, Some(&series.volume.geometry), roi)?
            };
            if let Some(sp) = args.spacing {
                mask = cmedl_io::resample_mask(&mask, &grid_with_spacing(&mask.geometry, sp))?;
            }
            cmedl_io::nifti::write_mask(mask_out, &mask)?;
            eprintln!("wrote ROI '{roi}' to {}", mask_out.display());
        }
        let dt = if series
            .volume
            .data
            .iter()
            .all(|v| v.fract() == 0.0 && (-32768.0..=32767.0).contains(v))
        {
            DataType::I16
        } else {
            DataType::F32
        };
        (series.volume, dt)
    } else {
        require_nifti(input)?;
        if args.rtstruct.is_some() || args.seg.is_some() {
            return Err(Failure::Input(
                "--rtstruct and --seg need the DICOM series folder as input".into(),
            ));
        }
        let img = read_volume(
            input,
            &ReadOptions {
                volume: args.volume,
                ..Default::default()
            },
        )?;
        let scaled = img.header.scl_slope != 0.0
            && !(img.header.scl_slope == 1.0 && img.header.scl_inter == 0.0);
        // Scaled integers are written as their real values.
        (
            img.volume,
            if scaled {
                DataType::F32
            } else {
                img.header.datatype
            },
        )
    };
    let mut datatype = datatype;
    if let Some(sp) = args.spacing {
        let target = grid_with_spacing(&volume.geometry, sp);
        volume = resample_volume(&volume, &target, Interp::Linear)?;
        if datatype.is_integer() {
            datatype = DataType::F32;
        }
    }
    write_volume(
        output,
        &volume,
        &WriteOptions {
            datatype,
            ..Default::default()
        },
    )?;
    eprintln!(
        "wrote {} ({:?} voxels of {:?} mm, {})",
        output.display(),
        volume.geometry.shape,
        volume.geometry.spacing,
        datatype.name()
    );
    Ok(())
}
