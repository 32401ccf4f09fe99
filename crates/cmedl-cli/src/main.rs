//! `cmedl`: train a CT segmenter that learns from unpaired MRI (CMEDL), apply and evaluate it.
//!
//! Exit codes: 0 success, 1 internal error, 2 bad input or usage, 130 interrupted.

mod bench_cmd;
mod doctor;
mod evaluation;
mod experiment;
mod failure;
mod phantom_cmd;
mod predict_cmd;
mod progress;
mod report;
mod train_cmd;
mod volume_cmds;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cmedl_phantom::{CohortConfig, LocationShares, MrContrast};

use cmedl_trainer::DeviceSpec;
use failure::{CmdResult, Failure};

/// `println!` that ends the process quietly when stdout is closed (e.g. piped into `head`).
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// `print!` that ends the process quietly when stdout is closed.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "cmedl",
    version,
    about = "Unpaired cross-modality educed distillation (CMEDL) for CT segmentation"
)]
struct Cli {
    /// No progress bars or progress lines.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// A trained run, the checkpoint to use and where to run it.
#[derive(clap::Args)]
struct RunModel {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// best, final, latest or a checkpoint file.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum MrContrastArg {
    T2,
    T1,
    Both,
}

#[derive(Subcommand)]
enum Command {
    /// Report the libtorch version, CUDA devices, and check that each device computes.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check only this device: auto, cpu, cuda or cuda:N [default: every device].
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Generate a synthetic, unpaired thorax CT and MRI cohort in the dataset layout.
    Phantom {
        /// Output folder (created; must not hold a dataset yet).
        #[arg(long)]
        out: PathBuf,
        /// CT training patients.
        #[arg(long, default_value_t = 24)]
        ct: usize,
        /// MR training patients (different people from the CT ones).
        #[arg(long, default_value_t = 12)]
        mr: usize,
        /// MRI contrasts.
        #[arg(long, value_enum, default_value = "t2")]
        mr_contrast: MrContrastArg,
        /// In-plane voxels per side.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Axial slices.
        #[arg(long, default_value_t = 32)]
        slices: usize,
        /// Voxel size X,Y,Z in mm.
        #[arg(long, default_value = "2.5,2.5,5", value_parser = volume_cmds::parse_spacing)]
        spacing: [f64; 3],
        /// Validation patients of each modality.
        #[arg(long, default_value_t = 4)]
        val: usize,
        /// Test patients of each modality.
        #[arg(long, default_value_t = 8)]
        test: usize,
        /// Master seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Shares of tumour locations: parenchymal,mediastinal,chest-wall.
        #[arg(long, default_value = "0.4,0.35,0.25", value_parser = parse_shares)]
        locations: LocationShares,
        /// Print the measured tumour contrast-to-noise ratios.
        #[arg(long)]
        stats: bool,
        /// Write preview.png: a slice of a CT and an MR case with tumour outlines and organs.
        #[arg(long)]
        preview: bool,
    },
    /// Train CMEDL or one of its baselines.
    Train {
        /// JSON config file [default: the built-in defaults].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run directory for a new run.
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its latest checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Dataset folder (data.root).
        #[arg(long)]
        data: Option<String>,
        /// Mode: ct-only, cmedl, cmedl-no-distill, pmri-only, ct+pmri.
        #[arg(long)]
        mode: Option<String>,
        /// Epochs (train.epochs).
        #[arg(long)]
        epochs: Option<usize>,
        /// Slices per batch (train.batch).
        #[arg(long)]
        batch: Option<usize>,
        /// Device: auto, cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<DeviceSpec>,
        /// Master seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override any config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the resolved config, networks, parameter counts and data counts, then exit.
        #[arg(long)]
        dry_run: bool,
        /// Log format: text (a summary line per epoch) or json (JSON lines on stdout).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
        /// Skip up to N steps whose loss is NaN or infinite (and say so) before stopping.
        #[arg(long, default_value_t = 0)]
        skip_nonfinite: usize,
        /// Stop after this global step as if interrupted (for testing resumption).
        #[arg(long, hide = true)]
        stop_at_step: Option<usize>,
    },
    /// Segment CT volumes with a trained run; masks keep the input's shape and affine.
    Predict {
        #[command(flatten)]
        model: RunModel,
        /// A NIfTI file or a folder of them.
        #[arg(long)]
        input: PathBuf,
        /// Output .nii.gz file (for a file) or folder (for a folder).
        #[arg(long)]
        output: PathBuf,
        /// Test-time augmentation: flip (average with the left-right flipped input).
        #[arg(long, value_parser = ["flip"])]
        tta: Option<String>,
        /// Keep only the largest connected component of each label.
        #[arg(long)]
        largest_component: bool,
        /// Also write each foreground class's probability map (<name>_prob<c>.nii.gz).
        #[arg(long)]
        probabilities: bool,
        /// Process only cases i, i+n, i+2n, … of a folder (0 ≤ i < n), for job arrays.
        #[arg(long, value_parser = predict_cmd::parse_shard)]
        shard: Option<(usize, usize)>,
    },
    /// Translate a CT volume into a pseudo-MRI with a run's translator.
    Translate {
        #[command(flatten)]
        model: RunModel,
        /// Input NIfTI.
        #[arg(long)]
        input: PathBuf,
        /// Output NIfTI.
        #[arg(long)]
        output: PathBuf,
    },
    /// Compare predicted masks with references: Dice, surface Dice, HD95, ASD, paired tests.
    Evaluate {
        /// Folder of predicted masks.
        #[arg(long)]
        pred: PathBuf,
        /// Folder of reference masks (matched by file name).
        #[arg(long = "ref")]
        reference: PathBuf,
        /// Surface Dice tolerance in mm.
        #[arg(long, default_value_t = 2.0)]
        tolerance_mm: f64,
        /// Labels to score, comma-separated.
        #[arg(long, default_value = "1", value_delimiter = ',')]
        labels: Vec<u8>,
        /// JSON summary file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Per-case CSV file.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// A second prediction folder: paired Wilcoxon tests and bootstrap intervals (pred − other).
        #[arg(long)]
        compare: Option<PathBuf>,
        /// Resample predictions whose grid differs from the reference (nearest neighbour).
        #[arg(long)]
        resample_pred: bool,
    },
    /// Train several modes on the same data and seeds, evaluate the test split, write a report.
    Experiment {
        /// Experiment JSON (e.g. configs/experiments/demo.json).
        #[arg(long)]
        config: PathBuf,
        /// Experiment folder; finished runs in it are skipped, unfinished ones resumed.
        #[arg(long)]
        out: PathBuf,
    },
    /// Regenerate report.md and report.html of an experiment or run folder from its files.
    Report {
        /// Experiment folder or run folder.
        dir: PathBuf,
    },
    /// Measure training, prediction and loader throughput (JSON lines; see `cargo xtask bench`).
    #[command(hide = true)]
    Bench {
        /// What to measure: train, predict, loader (comma-separated).
        #[arg(long, default_value = "train,predict,loader", value_delimiter = ',')]
        what: Vec<String>,
        /// Configuration: cpu (64 px, batch 4, small networks) or paper (256 px, batch 8).
        #[arg(long, default_value = "cpu")]
        config: String,
        /// Timed training steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Device.
        #[arg(long, default_value = "auto")]
        device: DeviceSpec,
    },
    /// Print a volume's shape, spacing, affine, datatype, intensity range and labels.
    Info {
        /// A NIfTI file (.nii, .nii.gz), a DICOM series folder or one DICOM file.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The volume of a 4-D NIfTI image (0-based).
        #[arg(long)]
        volume: Option<usize>,
    },
    /// Convert a NIfTI file or a DICOM series (with RTSTRUCT contours or SEG segments) to NIfTI.
    Convert {
        /// Input NIfTI file or DICOM series folder.
        input: PathBuf,
        /// Output .nii or .nii.gz file.
        output: PathBuf,
        /// Resample to X,Y,Z mm (trilinear for images, nearest for masks).
        #[arg(long, value_parser = volume_cmds::parse_spacing)]
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
    },
}

fn parse_shares(s: &str) -> Result<LocationShares, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not three numbers"))?;
    match v.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|x| x.is_finite() && **x >= 0.0) && a + b + c > 0.0 => {
            Ok(LocationShares {
                parenchymal: *a,
                mediastinal: *b,
                chest_wall: *c,
            })
        }
        _ => Err(format!(
            "'{s}' must be three non-negative shares with a positive sum"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Doctor { json, device } => {
            let only = doctor::devices(device).map_err(|e| Failure::Input(e.to_string()))?;
            let report = doctor::run(only);
            if json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Failure::Internal(e.to_string()))?;
                crate::outln!("{text}");
            } else {
                crate::out!("{}", report.human());
            }
            if report.passed() {
                Ok(())
            } else {
                Err(Failure::Internal(
                    "a device check failed (see above)".to_owned(),
                ))
            }
        }
        Command::Phantom {
            out,
            ct,
            mr,
            mr_contrast,
            size,
            slices,
            spacing,
            val,
            test,
            seed,
            locations,
            stats,
            preview,
        } => {
            let config = CohortConfig {
                ct,
                mr,
                mr_contrast: match mr_contrast {
                    MrContrastArg::T2 => MrContrast::T2,
                    MrContrastArg::T1 => MrContrast::T1,
                    MrContrastArg::Both => MrContrast::Both,
                },
                val,
                test,
                size,
                slices,
                spacing,
                seed,
                locations,
            };
            phantom_cmd::run(&config, &out, stats, preview, cli.quiet)
        }
        Command::Train {
            config,
            out,
            resume,
            data,
            mode,
            epochs,
            batch,
            device,
            seed,
            set,
            dry_run,
            log_format,
            skip_nonfinite,
            stop_at_step,
        } => {
            let mut overrides = Vec::new();
            if let Some(d) = data {
                overrides.push(format!("data.root={}", serde_json::Value::String(d)));
            }
            if let Some(m) = mode {
                overrides.push(format!("mode={}", serde_json::Value::String(m)));
            }
            if let Some(e) = epochs {
                overrides.push(format!("train.epochs={e}"));
            }
            if let Some(b) = batch {
                overrides.push(format!("train.batch={b}"));
            }
            if let Some(d) = device {
                overrides.push(format!(
                    "device={}",
                    serde_json::Value::String(d.to_string())
                ));
            }
            if let Some(s) = seed {
                overrides.push(format!("seed={s}"));
            }
            overrides.extend(set);
            train_cmd::run(train_cmd::TrainArgs {
                config,
                out,
                resume,
                overrides,
                dry_run,
                json_log: log_format == "json",
                skip_nonfinite,
                stop_at_step,
                quiet: cli.quiet,
            })
        }
        Command::Predict {
            model,
            input,
            output,
            tta,
            largest_component,
            probabilities,
            shard,
        } => predict_cmd::predict(predict_cmd::PredictArgs {
            run: model.run,
            checkpoint: model.checkpoint.parse().map_err(Failure::Input)?,
            input,
            output,
            device: model.device,
            batch: model.batch.max(1),
            tta_flip: tta.is_some(),
            largest_component,
            probabilities,
            shard,
            quiet: cli.quiet,
        }),
        Command::Translate {
            model,
            input,
            output,
        } => predict_cmd::translate(
            &model.run,
            &model.checkpoint.parse().map_err(Failure::Input)?,
            &input,
            &output,
            model.device,
            model.batch.max(1),
        ),
        Command::Evaluate {
            pred,
            reference,
            tolerance_mm,
            labels,
            out,
            csv,
            compare,
            resample_pred,
        } => evaluation::run(evaluation::EvaluateArgs {
            pred,
            reference,
            tolerance_mm,
            labels,
            out,
            csv,
            compare,
            resample_pred,
        }),
        Command::Experiment { config, out } => experiment::run(&config, &out, cli.quiet),
        Command::Report { dir } => experiment::report_cmd(&dir),
        Command::Bench {
            what,
            config,
            steps,
            warmup,
            device,
        } => bench_cmd::run(&what, &config, steps.max(1), warmup, device.resolve()?),
        Command::Info { path, json, volume } => volume_cmds::info(&path, json, volume),
        Command::Convert {
            input,
            output,
            spacing,
            series,
            volume,
            rtstruct,
            seg,
            roi,
            mask_out,
            list_rois,
        } => volume_cmds::convert(volume_cmds::ConvertArgs {
            input,
            output,
            spacing,
            series,
            volume,
            rtstruct,
            seg,
            roi,
            mask_out,
            list_rois,
        }),
    }
}
