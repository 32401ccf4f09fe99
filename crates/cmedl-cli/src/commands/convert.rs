//! `cmedl convert`: a NIfTI file or a DICOM series (with RTSTRUCT contours or SEG segments) to
//! NIfTI, optionally resampled.

use std::path::{Path, PathBuf};

use cmedl_io::nifti::{
    is_nifti_path, read_volume, write_volume, DataType, ReadOptions, WriteOptions,
};
use cmedl_io::{grid_with_spacing, resample_volume, Interp, Volume};

use crate::common::{check_outputs, load_volume, parse_spacing, require_image};
use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl convert`.
#[derive(clap::Args)]
pub struct Args {
    /// Input NIfTI file or DICOM series folder.
    input: PathBuf,
    /// Output .nii or .nii.gz file.
    output: PathBuf,
    /// Resample to X,Y,Z mm (trilinear for images, nearest for masks).
    #[arg(long, value_parser = parse_spacing)]
    spacing: Option<[f64; 3]>,
    /// SeriesInstanceUID, when the folder holds several series.
    #[arg(long)]
    series: Option<String>,
    /// The volume of a 4-D NIfTI input (0-based).
    #[arg(long)]
    volume: Option<usize>,
    /// RTSTRUCT file with contours on the series.
    #[arg(long)]
    rtstruct: Option<PathBuf>,
    /// DICOM SEG file with segments on the series' planes.
    #[arg(long, conflicts_with = "rtstruct")]
    seg: Option<PathBuf>,
    /// ROI (RTSTRUCT) or segment label (SEG) to turn into a mask (case-insensitive).
    #[arg(long)]
    roi: Option<String>,
    /// Output file of the ROI mask.
    #[arg(long)]
    mask_out: Option<PathBuf>,
    /// List the ROIs of the RTSTRUCT or the segments of the SEG and exit.
    #[arg(long)]
    list_rois: bool,
}

/// Runs `cmedl convert IN OUT [--spacing X,Y,Z] [--rtstruct FILE | --seg FILE] [--roi NAME
/// --mask-out MASK]`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    if args.list_rois {
        return list_rois(&args);
    }
    let (input, output) = (args.input.as_path(), args.output.as_path());
    if !is_nifti_path(output) {
        return Err(Failure::Input(format!(
            "{}: the output must be a .nii or .nii.gz file",
            output.display()
        )));
    }
    // The image, the structure set or SEG, and the ROI mask are all checked before any write.
    let inputs: Vec<&Path> = [Some(input), args.rtstruct.as_deref(), args.seg.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let mut outputs = vec![("the output", output)];
    if let Some(mask_out) = args.mask_out.as_deref() {
        outputs.push(("--mask-out", mask_out));
    }
    check_outputs(&inputs, &outputs)?;
    let (mut volume, mut datatype) = if input.is_dir() {
        read_series(&args)?
    } else if is_nifti_path(input) {
        read_nifti(&args)?
    } else {
        read_other(&args)?
    };
    if let Some(sp) = args.spacing {
        let target = grid_with_spacing(&volume.geometry, sp);
        volume = resample_volume(&volume, &target, Interp::Linear)
            .map_err(|e| Failure::Input(format!("{}: {e}", input.display())))?;
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

/// `--list-rois`: the ROIs of the RTSTRUCT or the segments of the SEG.
fn list_rois(args: &Args) -> CmdResult {
    if let Some(rs) = &args.rtstruct {
        for r in cmedl_io::dicom::list_rois(rs)? {
            outln!("{:>4}  {:<24} {} contour(s)", r.number, r.name, r.contours);
        }
        return Ok(());
    }
    if let Some(seg) = &args.seg {
        for s in cmedl_io::dicom::list_segments(seg)? {
            outln!("{:>4}  {:<24} {} frame(s)", s.number, s.label, s.frames);
        }
        return Ok(());
    }
    Err(Failure::Input(
        "--list-rois needs --rtstruct FILE or --seg FILE".into(),
    ))
}

/// A DICOM series (writing its ROI mask first when one is asked for) and the datatype it is
/// written with: int16 when every value fits, else float32.
fn read_series(args: &Args) -> Result<(Volume, DataType), Failure> {
    let series = cmedl_io::dicom::read_series(&args.input, args.series.as_deref())?;
    if args.rtstruct.is_some() || args.seg.is_some() {
        write_roi_mask(args, &series)?;
    }
    let dt = integer_type(&series.volume);
    Ok((series.volume, dt))
}

/// Writes the `--roi` mask of the RTSTRUCT or SEG on the series' grid to `--mask-out`.
fn write_roi_mask(args: &Args, series: &cmedl_io::dicom::SeriesVolume) -> CmdResult {
    let flag = if args.seg.is_some() {
        "--seg"
    } else {
        "--rtstruct"
    };
    let roi = args
        .roi
        .as_deref()
        .ok_or_else(|| Failure::Input(format!("{flag} needs --roi NAME (see --list-rois)")))?;
    let mask_out = args
        .mask_out
        .as_deref()
        .ok_or_else(|| Failure::Input(format!("{flag} needs --mask-out FILE")))?;
    let mut mask = if let Some(rs) = &args.rtstruct {
        let roi_mask = cmedl_io::dicom::read_rtstruct_mask(rs, series, roi)?;
        if roi_mask.outside > 0 {
            tracing::warn!(
                "{} contour(s) of ROI '{roi}' lie beyond the series and were left out",
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
    Ok(())
}

/// A NRRD or MetaImage volume (or one DICOM file) and the datatype it is written with: int16
/// when every value fits, else float32.
fn read_other(args: &Args) -> Result<(Volume, DataType), Failure> {
    if args.rtstruct.is_some() || args.seg.is_some() {
        return Err(Failure::Input(
            "--rtstruct and --seg need the DICOM series folder as input".into(),
        ));
    }
    let (volume, _) = load_volume(&args.input, None, args.volume)?;
    let dt = integer_type(&volume);
    Ok((volume, dt))
}

/// int16 when every value is an integer that fits, else float32.
fn integer_type(v: &Volume) -> DataType {
    let fits = v
        .data
        .iter()
        .all(|x| x.fract() == 0.0 && (-32768.0..=32767.0).contains(x));
    if fits {
        DataType::I16
    } else {
        DataType::F32
    }
}

/// A NIfTI volume and the datatype it is written with (scaled integers as their real values).
fn read_nifti(args: &Args) -> Result<(Volume, DataType), Failure> {
    require_image(&args.input)?;
    if args.rtstruct.is_some() || args.seg.is_some() {
        return Err(Failure::Input(
            "--rtstruct and --seg need the DICOM series folder as input".into(),
        ));
    }
    let img = read_volume(
        &args.input,
        &ReadOptions {
            volume: args.volume,
            ..Default::default()
        },
    )?;
    let scaled = img.header.scl_slope != 0.0
        && !(img.header.scl_slope == 1.0 && img.header.scl_inter == 0.0);
    let dt = if scaled {
        DataType::F32
    } else {
        img.header.datatype
    };
    Ok((img.volume, dt))
}
