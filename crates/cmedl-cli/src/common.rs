//! What the commands share: the options naming a trained model, reading a volume from any
//! supported input, checks on input and output paths, and value parsers of options.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cmedl_dist::{Backend, LaunchEnv, ProcessGroup};

use cmedl_io::formats::{format_of, is_image_path, read_image, Format};
use cmedl_io::nifti::{read_volume, ReadOptions};
use cmedl_trainer::checkpoint::Which;
use cmedl_trainer::infer::Predictor;
use cmedl_trainer::DeviceSpec;

pub use cmedl_experiment::image_files;

use crate::failure::Failure;

/// A trained run, the checkpoint to use and where to run it.
#[derive(clap::Args)]
pub struct RunModel {
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// best, final, latest or a checkpoint file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
}

impl RunModel {
    /// Loads the chosen checkpoint onto the chosen device.
    pub fn load(&self) -> Result<Predictor, Failure> {
        let which: Which = self.checkpoint.parse().map_err(Failure::Input)?;
        let device = self.device.resolve()?;
        Ok(Predictor::load(&self.run, &which, device)?)
    }

    /// The checkpoint file this model loads.
    pub fn checkpoint_path(&self) -> Result<PathBuf, Failure> {
        let which: Which = self.checkpoint.parse().map_err(Failure::Input)?;
        Ok(cmedl_trainer::RunDir::new(&self.run).checkpoint(&which))
    }

    /// Slices per forward pass (at least one).
    pub fn batch(&self) -> usize {
        self.batch.max(1)
    }
}

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

/// A volume from a NIfTI file, a DICOM series folder or one DICOM file, with a description of
/// its storage.
pub fn load_volume(
    path: &Path,
    series: Option<&str>,
    volume: Option<usize>,
) -> Result<(cmedl_io::Volume, String), Failure> {
    if path.is_dir() {
        let s = cmedl_io::dicom::read_series(path, series)?;
        if s.spacing_deviation > 0.01 {
            tracing::warn!(
                "{}: slice gaps vary by up to {:.1} % around the median spacing",
                path.display(),
                s.spacing_deviation * 100.0
            );
        }
        return Ok((s.volume, format!("dicom {} series {}", s.modality, s.uid)));
    }
    if !is_image_path(path) && cmedl_io::dicom::is_dicom_file(path) {
        let s = cmedl_io::dicom::read_series_file(path)?;
        return Ok((s.volume, format!("dicom {} image (one file)", s.modality)));
    }
    require_image(path)?;
    let options = ReadOptions {
        volume,
        ..Default::default()
    };
    match format_of(path) {
        Some(Format::Nifti) => {
            let img = read_volume(path, &options)?;
            Ok((img.volume, img.header.datatype.name().to_owned()))
        }
        Some(Format::Nrrd) => Ok((read_image(path, &options)?, "nrrd".to_owned())),
        _ => Ok((read_image(path, &options)?, "metaimage".to_owned())),
    }
}

/// Fails unless `path` has the name of a volume file cmedl reads.
pub fn require_image(path: &Path) -> Result<(), Failure> {
    if !is_image_path(path) {
        return Err(Failure::Input(format!(
            "{}: not a volume file name (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses to write `output` over `input`.
pub fn check_not_same(input: &Path, output: &Path) -> Result<(), Failure> {
    check_outputs(&[input], &[("the output", output)])
}

/// The file a path names, for comparing paths: resolved through links and `..` when it (or
/// its folder) exists.
fn identity(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// The one check of every command's outputs, before anything is written: no output may be one
/// of the files the command reads, and no two outputs may be the same file. `outputs` are
/// (option name, path).
pub fn check_outputs<P: AsRef<Path>>(
    inputs: &[P],
    outputs: &[(&str, &Path)],
) -> Result<(), Failure> {
    let read: Vec<PathBuf> = inputs.iter().map(|p| identity(p.as_ref())).collect();
    let mut written: Vec<(&str, PathBuf)> = Vec::new();
    for &(option, path) in outputs {
        let id = identity(path);
        if let Some(n) = read.iter().position(|r| *r == id) {
            return Err(Failure::Input(format!(
                "{}: refusing to write {option} over an input ({})",
                path.display(),
                inputs[n].as_ref().display()
            )));
        }
        if let Some((other, _)) = written.iter().find(|(_, w)| *w == id) {
            return Err(Failure::Input(format!(
                "{}: {other} and {option} would both be written to this file",
                path.display()
            )));
        }
        written.push((option, id));
    }
    Ok(())
}

/// Reads a shard `I/N` (0 ≤ I < N) of `--shard`.
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let not_shard = || format!("{text:?} is not I/N (e.g. 0/4)");
    let (i, n) = text.split_once('/').ok_or_else(not_shard)?;
    let number = |s: &str| s.trim().parse::<usize>().map_err(|_| not_shard());
    let (i, n) = (number(i)?, number(n)?);
    if n == 0 || i >= n {
        return Err(format!(
            "shard {i}/{n}: I must be below N (shards 0 to N-1)"
        ));
    }
    Ok((i, n))
}

/// A Ctrl-C flag: the first interrupt asks the work to save and stop (saying `saving`), a
/// second ends the process at once with 130.
pub fn interrupt_flag(saving: &'static str) -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: {saving}…");
    });
    interrupt
}

/// The c10d backend to join.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DistBackend {
    /// NCCL when this build has it and a GPU is present, else Gloo.
    Auto,
    /// Gloo (CPU tensors).
    Gloo,
    /// NCCL (GPUs).
    Nccl,
}

/// The data-parallel group when torchrun or srun launched this process (none: one process).
pub fn join_group(
    backend: DistBackend,
    rendezvous_timeout_s: u64,
) -> Result<Option<Arc<ProcessGroup>>, Failure> {
    let Some(env) = LaunchEnv::from_env().map_err(|e| Failure::Input(e.to_string()))? else {
        return Ok(None);
    };
    let timeout = std::time::Duration::from_secs(rendezvous_timeout_s);
    let backend = match backend {
        DistBackend::Gloo => Backend::Gloo,
        DistBackend::Nccl if !Backend::Nccl.is_available() => return Err(Failure::Input(
            "--dist-backend nccl: this cmedl was built without NCCL (build with --features nccl)"
                .into(),
        )),
        DistBackend::Nccl => Backend::Nccl,
        DistBackend::Auto if Backend::Nccl.is_available() && tch::Cuda::device_count() > 0 => {
            Backend::Nccl
        }
        DistBackend::Auto => Backend::Gloo,
    };
    let group = ProcessGroup::init_with(&env, backend, timeout)
        .map_err(|e| Failure::Internal(e.to_string()))?;
    tracing::info!(
        "data-parallel: rank {} of {} ({})",
        group.rank(),
        group.world_size(),
        group.backend()
    );
    Ok(Some(Arc::new(group)))
}

#[cfg(test)]
mod tests {
    use super::parse_shard;

    #[test]
    fn shards_are_i_of_n() {
        assert_eq!(parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(parse_shard("3/4"), Ok((3, 4)));
        for bad in ["4/4", "1/0", "x/2", "2", "-1/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
