//! `cmedl info`: a volume's shape, spacing, affine, datatype, intensity range and labels.

use std::path::{Path, PathBuf};

use cmedl_io::orientation::{axcodes, is_oblique};
use serde_json::json;

use crate::common::load_volume;
use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl info`.
#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file (.nii, .nii.gz), a DICOM series folder or one DICOM file.
    path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The volume of a 4-D NIfTI image (0-based).
    #[arg(long)]
    volume: Option<usize>,
}

/// Runs `cmedl info`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    info(&args.path, args.json, args.volume)
}

/// `cmedl info FILE|DICOM_FOLDER [--json]`.
fn info(path: &Path, as_json: bool, index: Option<usize>) -> CmdResult {
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
    let summary = Summary::of(&volume, datatype);
    if as_json {
        print_json(path, &volume, &summary)
    } else {
        print_text(path, &volume, &summary);
        Ok(())
    }
}

/// What `info` says of a volume beyond its grid.
struct Summary {
    datatype: String,
    codes: String,
    oblique: bool,
    min: f64,
    max: f64,
    mean: f64,
    /// Voxels per label value, when every value is an integer 0–255.
    labels: Option<std::collections::BTreeMap<u8, usize>>,
}

impl Summary {
    fn of(v: &cmedl_io::Volume, datatype: String) -> Self {
        let (min, max, mean) = v.stats();
        let integer = v.data.iter().all(|x| x.fract() == 0.0);
        let labels = (integer && min >= 0.0 && max <= 255.0).then(|| {
            let mut counts = std::collections::BTreeMap::new();
            for &x in &v.data {
                *counts.entry(x as u8).or_insert(0usize) += 1;
            }
            counts
        });
        Self {
            datatype,
            codes: axcodes(&v.geometry.affine).iter().collect(),
            oblique: is_oblique(&v.geometry.affine),
            min,
            max,
            mean,
            labels,
        }
    }
}

fn print_json(path: &Path, v: &cmedl_io::Volume, s: &Summary) -> CmdResult {
    let mut out = json!({
        "file": path.display().to_string(),
        "shape": v.geometry.shape,
        "spacing": v.geometry.spacing,
        "affine": v.geometry.affine,
        "orientation": s.codes,
        "oblique": s.oblique,
        "datatype": s.datatype,
        "min": s.min,
        "max": s.max,
        "mean": s.mean,
        "non_finite": v.non_finite(),
    });
    if let Some(l) = &s.labels {
        out["labels"] = json!(l
            .iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect::<std::collections::BTreeMap<_, _>>());
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| Failure::Internal(e.to_string()))?
    );
    Ok(())
}

fn print_text(path: &Path, v: &cmedl_io::Volume, s: &Summary) {
    outln!("file      {}", path.display());
    outln!("shape     {:?}", v.geometry.shape);
    outln!("spacing   {:?} mm", v.geometry.spacing);
    outln!("datatype  {}", s.datatype);
    outln!(
        "orientation {}{}",
        s.codes,
        if s.oblique {
            " (oblique: the closest axes; cmedl reorients to LPS by permutations and flips only)"
        } else {
            ""
        }
    );
    outln!("affine    (voxel → RAS+ mm)");
    for row in &v.geometry.affine {
        outln!(
            "          {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    outln!("min/max   {} / {}", s.min, s.max);
    outln!("mean      {:.4}", s.mean);
    if v.non_finite() > 0 {
        outln!("non-finite voxels {}", v.non_finite());
    }
    if let Some(l) = s.labels.as_ref().filter(|l| l.len() <= 16) {
        outln!(
            "labels    {}",
            l.iter()
                .map(|(k, c)| format!("{k}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
        outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Failure::Internal(e.to_string()))?
        );
        return Ok(());
    }
    outln!("file      {}", path.display());
    outln!("shape     {shape:?} (columns, rows, frames)");
    outln!(
        "datatype  dicom {} image, transfer syntax {}",
        image.modality,
        image.transfer_syntax
    );
    outln!("min/max   {min} / {max}");
    outln!("mean      {mean:.4}");
    outln!("geometry  none: {why}");
    Ok(())
}
