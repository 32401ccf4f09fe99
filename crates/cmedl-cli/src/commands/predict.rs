//! `cmedl predict`: segment a NIfTI file, a folder of them or a DICOM series with a trained
//! run; masks keep the input's shape and affine.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use cmedl_io::nifti::{
    is_nifti_path, stem, write_mask, write_volume, DataType, ReadOptions, WriteOptions,
};
use cmedl_trainer::checkpoint::Which;
use cmedl_trainer::export::ExportedModel;
use cmedl_trainer::infer::{Predictor, Segmentation};
use cmedl_trainer::DeviceSpec;

use cmedl_io::dicom::SegmentSpec;
use cmedl_io::formats::{image_stem, is_image_path, read_image};

use crate::common::{check_not_same, image_files, load_volume, parse_shard};
use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;
use crate::Global;

/// Options of `cmedl predict`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory; repeat it (`--run A --run B …`) to average the runs' probabilities (an
    /// ensemble of seeds or folds).
    #[arg(
        long = "run",
        required_unless_present = "model",
        conflicts_with = "model"
    )]
    runs: Vec<PathBuf>,
    /// A model exported by `cmedl export` (its `.json` sidecar beside it) instead of runs.
    #[arg(long)]
    model: Option<PathBuf>,
    /// best, final, latest or a checkpoint file (of every run).
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// A NIfTI file, a folder of them, or a DICOM series folder.
    #[arg(long, short = 'i')]
    input: PathBuf,
    /// Output .nii.gz file (for a file or a series) or folder (for a folder).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// What to write: a NIfTI label map, or (for a DICOM series input) a DICOM SEG or an
    /// RTSTRUCT that references the series (one segment or ROI per foreground label).
    #[arg(long, value_enum, default_value = "nifti")]
    output_type: OutputType,
    /// Names of the foreground labels in a SEG or RTSTRUCT, comma-separated [default: the names
    /// in the run's dataset.json, else tumour for two classes and "label N"]; or a JSON label
    /// file mapping label values to a name and SNOMED codes, e.g.
    /// {"1": {"name": "GTV", "type": {"value": "108369006", "scheme": "SCT", "meaning":
    /// "Neoplasm"}}} (codes default to Morphologically Abnormal Structure / Neoplasm).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Test-time augmentation.
    #[arg(long, value_enum)]
    tta: Option<Tta>,
    /// Keep only the largest connected component of each label.
    #[arg(long)]
    largest_component: bool,
    /// Also write each foreground class C's probability map as NAME_probC.nii.gz.
    #[arg(long)]
    probabilities: bool,
    /// Skip cases whose output exists and reads back completely (a rerun after an interruption).
    #[arg(long = "continue")]
    keep_done: bool,
    /// Process only cases i, i+n, i+2n, … of a folder (0 ≤ i < n), for job arrays.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

/// Output types of `--output-type`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputType {
    /// A NIfTI label map on the input's grid.
    Nifti,
    /// A DICOM SEG (BINARY) on the planes of the input series.
    DicomSeg,
    /// An RTSTRUCT with one ROI per foreground label, contoured on the input series.
    Rtstruct,
}

impl OutputType {
    /// Whether the output is a DICOM object derived from a series.
    fn is_dicom(self) -> bool {
        self != Self::Nifti
    }
}

/// Test-time augmentations of `--tta`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tta {
    /// Average with the left-right flipped input.
    Flip,
}

/// The case a file holds: its name without the extension and without nnU-Net's `_0000`
/// channel suffix, so that predictions match reference labels named by case.
fn case_name(path: &std::path::Path) -> String {
    let stem = image_stem(path);
    match stem.strip_suffix("_0000") {
        Some(case) if !case.is_empty() => case.to_owned(),
        _ => stem,
    }
}

/// One input and where its mask goes.
struct Job {
    input: PathBuf,
    output: PathBuf,
    dicom_series: bool,
}

fn need_nifti_output(output: &Path, what: &str) -> Result<(), Failure> {
    if is_nifti_path(output) {
        Ok(())
    } else {
        Err(Failure::Input(format!(
            "{}: the output of {what} must be a .nii or .nii.gz file",
            output.display()
        )))
    }
}

/// The inputs of `args` and their outputs (creating an output folder for an input folder).
fn jobs(args: &Args) -> Result<Vec<Job>, Failure> {
    let single = |dicom_series| Job {
        input: args.input.clone(),
        output: args.output.clone(),
        dicom_series,
    };
    if !args.input.is_dir() {
        if args.output_type.is_dicom() {
            return Err(Failure::Input(format!(
                "{}: a DICOM output (--output-type) needs a DICOM series folder as input",
                args.input.display()
            )));
        }
        if !is_image_path(&args.input) {
            return Err(Failure::Input(format!(
                "{}: not a NIfTI file, a folder of them, or a DICOM series folder",
                args.input.display()
            )));
        }
        need_nifti_output(&args.output, "a single input")?;
        return Ok(vec![single(false)]);
    }
    let files = image_files(&args.input)?;
    if !files.is_empty() && args.output_type.is_dicom() {
        return Err(Failure::Input(format!(
            "{}: a DICOM output (--output-type) needs a DICOM series folder as input",
            args.input.display()
        )));
    }
    if files.is_empty() {
        // A folder without NIfTI files is read as one DICOM series.
        if args.output_type.is_dicom() {
            if !args
                .output
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(".dcm")
            {
                return Err(Failure::Input(format!(
                    "{}: a DICOM output must be a .dcm file",
                    args.output.display()
                )));
            }
        } else {
            need_nifti_output(&args.output, "a DICOM series")?;
        }
        return Ok(vec![single(true)]);
    }
    let jobs: Vec<Job> = files
        .into_iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|(s, n)| i % n == s))
        .map(|(_, f)| Job {
            output: args.output.join(format!("{}.nii.gz", case_name(&f))),
            input: f,
            dicom_series: false,
        })
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for job in &jobs {
        if let Some(other) = seen.insert(job.output.clone(), &job.input) {
            return Err(Failure::Input(format!(
                "{} and {} would both be written to {}",
                other.display(),
                job.input.display(),
                job.output.display()
            )));
        }
    }
    std::fs::create_dir_all(&args.output)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.output.display())))?;
    Ok(jobs)
}

/// What segments: trained runs (one, or an ensemble) or an exported model.
enum Segmenter {
    Runs(Vec<Predictor>),
    Exported(ExportedModel),
}

impl Segmenter {
    fn segment(
        &self,
        volume: &cmedl_io::Volume,
        batch: usize,
        tta_flip: bool,
        keep_probabilities: bool,
    ) -> Result<Segmentation, Failure> {
        Ok(match self {
            Self::Runs(members) => {
                Predictor::segment_ensemble(members, volume, batch, tta_flip, keep_probabilities)?
            }
            Self::Exported(model) => model.segment(volume, tta_flip, keep_probabilities)?,
        })
    }

    /// DICOM codes of the labels from the first run's dataset (none for an exported model).
    fn label_codes(&self) -> std::collections::BTreeMap<u8, cmedl_io::dicom::LabelEntry> {
        match self {
            Self::Runs(members) => members[0].label_codes(),
            Self::Exported(_) => Default::default(),
        }
    }

    /// Class names, background first (the run's dataset, or the export's sidecar).
    fn class_names(&self) -> Vec<String> {
        match self {
            Self::Runs(members) => members[0].class_names(),
            Self::Exported(model) => model.sidecar.labels.clone(),
        }
    }
}

/// Fails, naming the input and saying what to do, when the volume holds NaN or infinite voxels
/// (no network output on them would mean anything).
fn check_finite(input: &std::path::Path, volume: &cmedl_io::Volume) -> CmdResult {
    match volume.non_finite() {
        0 => Ok(()),
        n => Err(Failure::Input(format!(
            "{}: the image has {n} NaN or infinite voxels, which cannot be segmented; replace them with a finite value (for CT the air value, -1000 HU, outside the body) and predict again",
            input.display()
        ))),
    }
}

/// Segments one input and writes its mask (and probabilities when asked).
fn segment(args: &Args, members: &Segmenter, job: &Job) -> CmdResult {
    check_not_same(&job.input, &job.output)?;
    if args.output_type.is_dicom() {
        return segment_to_dicom(args, members, job);
    }
    let volume = if job.dicom_series {
        load_volume(&job.input, None, None)?.0
    } else {
        read_image(&job.input, &ReadOptions::default())?
    };
    check_finite(&job.input, &volume)?;
    let tta_flip = args.tta == Some(Tta::Flip);
    let mut seg = members.segment(&volume, args.batch.max(1), tta_flip, args.probabilities)?;
    if args.largest_component {
        seg.labels.keep_largest_components();
    }
    write_mask(&job.output, &seg.labels)?;
    if args.probabilities {
        for (c, p) in seg.probabilities.iter().enumerate().skip(1) {
            let name = format!("{}_prob{c}.nii.gz", stem(&job.output));
            let options = WriteOptions {
                datatype: DataType::F32,
                ..Default::default()
            };
            write_volume(&job.output.with_file_name(name), p, &options)?;
        }
    }
    Ok(())
}

/// Segments a DICOM series and writes the result as a SEG or RTSTRUCT that references it.
fn segment_to_dicom(args: &Args, members: &Segmenter, job: &Job) -> CmdResult {
    let series = cmedl_io::dicom::read_series(&job.input, None)?;
    // Writing into the series' folder would add the SEG to the next read of that folder.
    if job.output.starts_with(&job.input) {
        return Err(Failure::Input(format!(
            "{}: write the DICOM output outside the series folder {}",
            job.output.display(),
            job.input.display()
        )));
    }
    check_finite(&job.input, &series.volume)?;
    let tta_flip = args.tta == Some(Tta::Flip);
    let mut seg = members.segment(&series.volume, args.batch.max(1), tta_flip, false)?;
    if args.largest_component {
        seg.labels.keep_largest_components();
    }
    let specs = segment_specs(&args.labels, &members.class_names(), &members.label_codes())?;
    if args.output_type == OutputType::Rtstruct {
        cmedl_io::dicom::write_rtstruct(&job.output, &series, &seg.labels, &specs)?;
    } else {
        cmedl_io::dicom::write_seg(&job.output, &series, &seg.labels, &specs)?;
    }
    Ok(())
}

/// The segments (or ROIs) of a SEG or RTSTRUCT: one per foreground class, named and coded by
/// the run's dataset (`labels`, `label_codes`), then by `labels` here (names, or one JSON
/// label file with names and codes), which wins.
fn segment_specs(
    labels: &[String],
    names: &[String],
    dataset_codes: &std::collections::BTreeMap<u8, cmedl_io::dicom::LabelEntry>,
) -> Result<Vec<SegmentSpec>, Failure> {
    let file = match labels {
        [one] if one.ends_with(".json") => {
            let path = std::path::Path::new(one);
            let entries = cmedl_io::dicom::read_label_file(path)?;
            if let Some(bad) = entries.keys().find(|&&l| usize::from(l) >= names.len()) {
                return Err(Failure::Input(format!(
                    "{one}: label {bad} is not one of the run's {} foreground classes",
                    names.len().saturating_sub(1)
                )));
            }
            Some(entries)
        }
        _ => None,
    };
    Ok((1..names.len())
        .map(|c| {
            let label = c as u8;
            let mut spec = SegmentSpec::new(label, &names[c]);
            if let Some(entry) = dataset_codes.get(&label) {
                spec = spec.with_entry(entry);
            }
            match &file {
                Some(f) => {
                    if let Some(entry) = f.get(&label) {
                        spec = spec.with_entry(entry);
                    }
                }
                None => {
                    if let Some(name) = labels.get(c - 1) {
                        spec.name = name.clone();
                    }
                }
            }
            spec
        })
        .collect())
}

/// Runs `cmedl predict`.
pub fn run(args: Args, global: &Global) -> CmdResult {
    let which: Which = args.checkpoint.parse().map_err(Failure::Input)?;
    let device = args.device.resolve()?;
    let members = match &args.model {
        Some(model) => Segmenter::Exported(ExportedModel::load(model, device)?),
        None => Segmenter::Runs(
            args.runs
                .iter()
                .map(|run| Predictor::load(run, &which, device))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let jobs = jobs(&args)?;
    let bar = Progress::new(
        "predict",
        jobs.len() as u64,
        global.quiet || jobs.len() == 1,
    );
    let mut skipped = 0;
    for (done, job) in jobs.iter().enumerate() {
        // Outputs are written whole or not at all, so one that reads is complete.
        let finished = args.keep_done
            && cmedl_io::nifti::read_mask(&job.output, &ReadOptions::default()).is_ok();
        if finished {
            skipped += 1;
        } else {
            segment(&args, &members, job)?;
        }
        bar.set(done as u64 + 1);
    }
    bar.finish();
    if !global.quiet {
        eprintln!(
            "wrote {} prediction(s) to {}{}",
            jobs.len() - skipped,
            args.output.display(),
            if skipped > 0 {
                format!(" ({skipped} already there, skipped)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmedl_io::dicom::{Code, LabelEntry};

    #[test]
    fn segment_names_and_codes_come_from_the_dataset_then_the_command_line() {
        let names = vec![
            "background".to_owned(),
            "tumour".to_owned(),
            "node".to_owned(),
        ];
        let mass = Code::new("4147007", "SCT", "Mass");
        let dataset: std::collections::BTreeMap<u8, LabelEntry> = [(
            1,
            LabelEntry {
                name: Some("GTV".into()),
                kind: Some(mass.clone()),
                ..Default::default()
            },
        )]
        .into();
        let specs = segment_specs(&[], &names, &dataset).unwrap();
        assert_eq!((specs[0].name.as_str(), &specs[0].kind), ("GTV", &mass));
        assert_eq!(
            (specs[1].name.as_str(), &specs[1].kind),
            ("node", &Code::neoplasm())
        );
        // Names given on the command line win over the dataset's; its codes stay.
        let specs = segment_specs(&["GTV-1".into()], &names, &dataset).unwrap();
        assert_eq!((specs[0].name.as_str(), &specs[0].kind), ("GTV-1", &mass));
        assert_eq!(specs[1].name, "node");
    }
}
