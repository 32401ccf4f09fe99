//! `cmedl translate`: a CT volume into a pseudo-MRI with a run's translator.

use std::path::PathBuf;

use cmedl_io::nifti::{is_nifti_path, write_volume, DataType, ReadOptions, WriteOptions};

use cmedl_io::formats::{is_image_path, read_image};

use crate::common::{check_not_same, RunModel};
use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl translate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: RunModel,
    /// Input NIfTI.
    #[arg(long, short = 'i')]
    input: PathBuf,
    /// Output NIfTI.
    #[arg(long, short = 'o')]
    output: PathBuf,
}

/// Runs `cmedl translate`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let (input, output) = (&args.input, &args.output);
    if !is_image_path(input) || !is_nifti_path(output) {
        return Err(Failure::Input(format!(
            "{} → {}: the input must be a volume file (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd) and the output .nii or .nii.gz",
            input.display(),
            output.display()
        )));
    }
    check_not_same(input, output)?;
    let predictor = args.model.load()?;
    let window = predictor.teacher_window.ok_or_else(|| {
        Failure::Input(format!(
            "{}: this run has no translator with a recorded teacher intensity range (mode {})",
            args.model.run.display(),
            predictor.config.mode.name()
        ))
    })?;
    let volume = read_image(input, &ReadOptions::default())?;
    let translated = predictor.translate(&volume, args.model.batch(), window)?;
    write_volume(
        output,
        &translated,
        &WriteOptions {
            datatype: DataType::F32,
            ..Default::default()
        },
    )?;
    eprintln!("wrote {}", output.display());
    Ok(())
}
