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

fn require_nifti(path: &Path) -> Result<(), Failure> {
    if path.is_dir() {
        return Err(Failure::Input(format!("{}: DICOM folders are not supported yet; convert the series to NIfTI with another tool first", path.display())));
    }
    if !is_nifti_path(path) {
        return Err(Failure::Input(format!(
            "{}: not a NIfTI file name (.nii or .nii.gz)",
            path.display()
        )));
    }
    Ok(())
}

/// `cmedl info FILE [--json]`.
pub fn info(path: &Path, as_json: bool) -> CmdResult {
    require_nifti(path)?;
    let img = read_volume(path, &ReadOptions::default())?;
    let v = &img.volume;
    let (min, max, mean) = v.stats();
    let integer = img.header.datatype.is_integer() || v.data.iter().all(|x| x.fract() == 0.0);
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
            "datatype": img.header.datatype.name(),
            "nifti_version": match img.header.version { cmedl_io::nifti::NiftiVersion::One => 1, cmedl_io::nifti::NiftiVersion::Two => 2 },
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
    crate::outln!(
        "datatype  {} (NIfTI-{})",
        img.header.datatype.name(),
        if img.header.version == cmedl_io::nifti::NiftiVersion::One {
            1
        } else {
            2
        }
    );
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

/// `cmedl convert IN OUT [--spacing X,Y,Z]`.
pub fn convert(input: &Path, output: &Path, spacing: Option<[f64; 3]>) -> CmdResult {
    require_nifti(input)?;
    if !is_nifti_path(output) {
        return Err(Failure::Input(format!(
            "{}: the output must be a .nii or .nii.gz file",
            output.display()
        )));
    }
    check_not_same(input, output)?;
    let img = read_volume(input, &ReadOptions::default())?;
    let mut volume = img.volume;
    let mut datatype = img.header.datatype;
    if let Some(sp) = spacing {
        let target = grid_with_spacing(&volume.geometry, sp);
        volume = resample_volume(&volume, &target, Interp::Linear)?;
        if datatype.is_integer() {
            datatype = DataType::F32;
        }
    }
    if img.header.scl_slope != 0.0 && !(img.header.scl_slope == 1.0 && img.header.scl_inter == 0.0)
    {
        datatype = DataType::F32; // scaled integers are written as their real values
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
