//! `cmedl export`: a trained run's test-time network as TorchScript, with a JSON sidecar.

use std::path::PathBuf;

use clap::ValueEnum;
use cmedl_trainer::export::{export_torchscript, sidecar_path};

use crate::common::{check_outputs, RunModel};
use crate::failure::CmdResult;
use crate::Global;

/// Options of `cmedl export`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: RunModel,
    /// Export format.
    #[arg(long, value_enum, default_value = "torchscript")]
    format: Format,
    /// Output file (e.g. student.pt); the sidecar is written beside it as student.pt.json.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A traced TorchScript module (`torch.jit.load` in PyTorch, `CModule::load` in tch) that
    /// maps normalised slices `[N, 1, H, W]` to class logits.
    Torchscript,
}

/// Runs `cmedl export`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let Format::Torchscript = args.format;
    let checkpoint = args.model.checkpoint_path()?;
    let sidecar = sidecar_path(&args.out);
    check_outputs(
        &[checkpoint],
        &[
            ("--out", args.out.as_path()),
            ("the sidecar", sidecar.as_path()),
        ],
    )?;
    let predictor = args.model.load()?;
    let record = export_torchscript(&predictor, &args.out, args.model.batch() as i64)?;
    eprintln!(
        "wrote {} (mode {}, input {:?} at {} mm, {} classes) and {}",
        args.out.display(),
        record.mode,
        record.input_shape,
        record.spacing_mm,
        record.classes,
        sidecar.display()
    );
    Ok(())
}
