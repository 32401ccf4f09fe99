//! `cmedl dataset import`: an nnU-Net v2 raw folder or an MSD task into the cmedl layout.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use cmedl_io::dataset::Modality;
use cmedl_io::import::{import_dataset, ImportOptions, SourceLayout};

use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl dataset`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Make a cmedl dataset folder whose files link to an nnU-Net or MSD dataset.
    Import {
        /// Layout of the source.
        #[arg(long = "from", value_enum)]
        layout: Layout,
        /// The source folder (holding its dataset.json).
        src: PathBuf,
        /// The new dataset folder.
        #[arg(long)]
        out: PathBuf,
        /// The modality, when the source's channel name does not say it.
        #[arg(long, value_enum)]
        modality: Option<ModalityArg>,
        /// The channel (input modality) to import.
        #[arg(long, default_value_t = 0)]
        channel: usize,
        /// Share of the labelled training cases held out for validation.
        #[arg(long, default_value_t = 0.2)]
        val_fraction: f64,
    },
}

/// Source layouts of `--from`.
#[derive(Clone, Copy, ValueEnum)]
enum Layout {
    /// nnU-Net v2 raw (imagesTr/CASE_0000, labelsTr, dataset.json with channel_names).
    Nnunet,
    /// Medical Segmentation Decathlon (dataset.json with training and test lists).
    Msd,
}

/// Modalities of `--modality`.
#[derive(Clone, Copy, ValueEnum)]
enum ModalityArg {
    /// CT (Hounsfield units).
    Ct,
    /// MRI.
    Mr,
}

/// Runs `cmedl dataset`.
pub fn run(args: Args, global: &Global) -> CmdResult {
    let Action::Import {
        layout,
        src,
        out,
        modality,
        channel,
        val_fraction,
    } = args.action;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Failure::Input(format!(
            "--val-fraction must lie in [0, 1), got {val_fraction}"
        )));
    }
    let options = ImportOptions {
        layout: match layout {
            Layout::Nnunet => SourceLayout::Nnunet,
            Layout::Msd => SourceLayout::Msd,
        },
        modality: modality.map(|m| match m {
            ModalityArg::Ct => Modality::Ct,
            ModalityArg::Mr => Modality::Mr,
        }),
        channel,
        val_fraction,
    };
    let summary = import_dataset(&src, &out, &options)?;
    if !global.quiet {
        eprintln!(
            "wrote {}: {} training, {} validation and {} test cases",
            out.join("dataset.json").display(),
            summary.train,
            summary.val,
            summary.test
        );
    }
    Ok(())
}
