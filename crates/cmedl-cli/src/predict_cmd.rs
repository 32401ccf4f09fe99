//! `cmedl predict` and `cmedl translate`.

use std::path::{Path, PathBuf};

use cmedl_io::nifti::{
    is_nifti_path, read_volume, stem, write_mask, write_volume, DataType, ReadOptions, WriteOptions,
};
use cmedl_trainer::checkpoint::Which;
use cmedl_trainer::infer::Predictor;
use cmedl_trainer::DeviceSpec;

use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;
use crate::volume_cmds::check_not_same;

/// Options of `cmedl predict`.
pub struct PredictArgs {
    /// Run directory.
    pub run: PathBuf,
    /// Which checkpoint.
    pub checkpoint: Which,
    /// Input file or folder.
    pub input: PathBuf,
    /// Output file or folder.
    pub output: PathBuf,
    /// Device.
    pub device: DeviceSpec,
    /// Slices per forward pass.
    pub batch: usize,
    /// Average with the flipped input.
    pub tta_flip: bool,
    /// Keep the largest component per label.
    pub largest_component: bool,
    /// Also write foreground probabilities.
    pub probabilities: bool,
    /// `(i, n)`: only every n-th case starting at i.
    pub shard: Option<(usize, usize)>,
    /// No progress output.
    pub quiet: bool,
}

/// Parses `i/n` with 0 ≤ i < n.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' is not i/n"))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| format!("'{s}' is not i/n"))?,
        n.trim().parse().map_err(|_| format!("'{s}' is not i/n"))?,
    );
    if n == 0 || i >= n {
        return Err(format!("shard '{s}': need 0 ≤ i < n"));
    }
    Ok((i, n))
}

/// The NIfTI files of a folder, sorted by name.
pub fn nifti_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Failure::Input(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_nifti_path(p))
        .collect();
    files.sort();
    Ok(files)
}

fn load(run: &Path, which: &Which, device: DeviceSpec) -> Result<Predictor, Failure> {
    let device = device
        .resolve()
        .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(Predictor::load(run, which, device)?)
}

/// Runs `cmedl predict`.
pub fn predict(args: PredictArgs) -> CmdResult {
    let predictor = load(&args.run, &args.checkpoint, args.device)?;
    let files = if args.input.is_dir() {
        nifti_files(&args.input)?
    } else {
        Vec::new()
    };
    let dicom_series = args.input.is_dir() && files.is_empty();
    let jobs: Vec<(PathBuf, PathBuf)> = if dicom_series {
        // A folder without NIfTI files is read as one DICOM series.
        if !is_nifti_path(&args.output) {
            return Err(Failure::Input(format!(
                "{}: the output of a DICOM series must be a .nii or .nii.gz file",
                args.output.display()
            )));
        }
        vec![(args.input.clone(), args.output.clone())]
    } else if args.input.is_dir() {
        std::fs::create_dir_all(&args.output)
            .map_err(|e| Failure::Input(format!("{}: {e}", args.output.display())))?;
        files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| args.shard.is_none_or(|(s, n)| i % n == s))
            .map(|(_, f)| {
                let name = format!("{}.nii.gz", stem(&f));
                (f, args.output.join(name))
            })
            .collect()
    } else {
        if !is_nifti_path(&args.input) {
            return Err(Failure::Input(format!(
                "{}: not a NIfTI file, a folder of them, or a DICOM series folder",
                args.input.display()
            )));
        }
        if !is_nifti_path(&args.output) {
            return Err(Failure::Input(format!(
                "{}: the output of a single input must be a .nii or .nii.gz file",
                args.output.display()
            )));
        }
        vec![(args.input.clone(), args.output.clone())]
    };
    let bar = Progress::new("predict", jobs.len() as u64, args.quiet || jobs.len() == 1);
    for (done, (input, output)) in jobs.iter().enumerate() {
        check_not_same(input, output)?;
        let volume = if dicom_series {
            crate::volume_cmds::load_volume(input, None, None)?.0
        } else {
            read_volume(input, &ReadOptions::default())?.volume
        };
        let mut seg = predictor.segment(&volume, args.batch, args.tta_flip, args.probabilities)?;
        if args.largest_component {
            seg.labels.keep_largest_components();
        }
        write_mask(output, &seg.labels)?;
        if args.probabilities {
            for (c, p) in seg.probabilities.iter().enumerate().skip(1) {
                let name = format!("{}_prob{c}.nii.gz", stem(output));
                let path = output.with_file_name(name);
                write_volume(
                    &path,
                    p,
                    &WriteOptions {
                        datatype: DataType::F32,
                        ..Default::default()
                    },
                )?;
            }
        }
        bar.set(done as u64 + 1);
    }
    bar.finish();
    if !args.quiet {
        eprintln!(
            "wrote {} prediction(s) to {}",
            jobs.len(),
            args.output.display()
        );
    }
    Ok(())
}

/// Runs `cmedl translate`.
pub fn translate(
    run: &Path,
    which: &Which,
    input: &Path,
    output: &Path,
    device: DeviceSpec,
    batch: usize,
) -> CmdResult {
    if !is_nifti_path(input) || !is_nifti_path(output) {
        return Err(Failure::Input(format!(
            "{} → {}: input and output must be .nii or .nii.gz files",
            input.display(),
            output.display()
        )));
    }
    check_not_same(input, output)?;
    let predictor = load(run, which, device)?;
    let window = predictor.teacher_window.ok_or_else(|| {
        Failure::Input(format!(
            "{}: this run has no translator with a recorded teacher intensity range (mode {})",
            run.display(),
            predictor.config.mode.name()
        ))
    })?;
    let volume = read_volume(input, &ReadOptions::default())?.volume;
    let translated = predictor.translate(&volume, batch, window)?;
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
