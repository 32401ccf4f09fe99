//! Importing an nnU-Net v2 raw dataset or a Medical Segmentation Decathlon task into the cmedl
//! layout: a new folder with `dataset.json` whose images and labels link to the source files
//! (the source is only read). nnU-Net's `_0000` channel suffixes are dropped from case ids;
//! a 4-D image (an MSD multi-modality task) is written out as the chosen channel's volume.
//!
//! ```no_run
//! use cmedl_io::import::{import_dataset, ImportOptions, SourceLayout};
//!
//! let options = ImportOptions::new(SourceLayout::Msd);
//! let summary = import_dataset("Task06_Lung".as_ref(), "lung".as_ref(), &options)?;
//! let cases = summary.train + summary.val + summary.test;
//! assert!(cases > 0, "the source holds no cases");
//! # Ok::<(), cmedl_io::IoError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::dataset::{check_id, CaseEntry, DatasetIndex, Modality, ModalityEntry, DATASET_FORMAT};
use crate::error::{IoError, Result};
use crate::nifti::{read_header, read_volume, write_volume, ReadOptions, WriteOptions};

/// The layout of the source folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceLayout {
    /// nnU-Net v2 raw: `dataset.json` with `channel_names`, `labels` (name → value) and
    /// `file_ending`; `imagesTr/<case>_0000<ending>`, `labelsTr/<case><ending>`, `imagesTs`.
    Nnunet,
    /// Medical Segmentation Decathlon: `dataset.json` with `modality`, `labels` (value → name),
    /// `training` (image, label pairs) and `test` (images).
    Msd,
}

/// Choices of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The source layout.
    pub layout: SourceLayout,
    /// The modality, when the source does not say it in a way cmedl recognises.
    pub modality: Option<Modality>,
    /// The channel (input modality) to import.
    pub channel: usize,
    /// Share of the labelled training cases held out for validation (at least one case).
    pub val_fraction: f64,
}

impl ImportOptions {
    /// Channel 0, modality from the source, a fifth of the training cases for validation.
    pub fn new(layout: SourceLayout) -> Self {
        Self {
            layout,
            modality: None,
            channel: 0,
            val_fraction: 0.2,
        }
    }
}

/// What an import wrote.
#[derive(Clone, Debug)]
pub struct ImportSummary {
    /// The index written to `DST/dataset.json`.
    pub index: DatasetIndex,
    /// Training cases.
    pub train: usize,
    /// Validation cases.
    pub val: usize,
    /// Test cases.
    pub test: usize,
}

/// A source case: id, image file, label file.
struct SourceCase {
    id: String,
    image: PathBuf,
    label: Option<PathBuf>,
}

fn modality_of(name: &str) -> Option<Modality> {
    let n = name.to_ascii_lowercase();
    if n == "ct" || n.contains("ct ") || n.starts_with("ct") {
        Some(Modality::Ct)
    } else if ["mr", "t1", "t2", "flair", "adc", "dwi", "pd", "mri"]
        .iter()
        .any(|k| n.contains(k))
    {
        Some(Modality::Mr)
    } else {
        None
    }
}

fn read_index(src: &Path) -> Result<(PathBuf, Value)> {
    let file = src.join("dataset.json");
    let text = std::fs::read_to_string(&file).map_err(|e| IoError::io(&file, e))?;
    let json = serde_json::from_str(&text)
        .map_err(|e| IoError::format(&file, format!("invalid JSON: {e}")))?;
    Ok((file, json))
}

/// nnU-Net's cases of `images` (channel suffix `_CCCC` and `ending`) with labels in `labels`.
fn nnunet_cases(
    file: &Path,
    images: &Path,
    labels: &Path,
    ending: &str,
    channel: usize,
) -> Result<Vec<SourceCase>> {
    if !images.is_dir() {
        return Ok(Vec::new());
    }
    let suffix = format!("_{channel:04}{ending}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(images).map_err(|e| IoError::io(images, e))? {
        let path = entry.map_err(|e| IoError::io(images, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(id) = name.strip_suffix(&suffix) else {
            continue;
        };
        check_id(file, id)?;
        let label = labels.join(format!("{id}{ending}"));
        out.push(SourceCase {
            id: id.to_owned(),
            image: path.clone(),
            label: label.is_file().then_some(label),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// MSD's cases: `training` pairs and `test` images, paths relative to the source.
fn msd_cases(src: &Path, file: &Path, json: &Value) -> Result<(Vec<SourceCase>, Vec<SourceCase>)> {
    let case = |image: &str, label: Option<&str>| -> Result<SourceCase> {
        let image = src.join(image.trim_start_matches("./"));
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = name
            .strip_suffix(".nii.gz")
            .or(name.strip_suffix(".nii"))
            .unwrap_or(&name);
        check_id(file, id)?;
        Ok(SourceCase {
            id: id.to_owned(),
            image,
            label: label.map(|l| src.join(l.trim_start_matches("./"))),
        })
    };
    let training = json["training"]
        .as_array()
        .ok_or_else(|| IoError::format(file, "no 'training' list (is it an MSD task?)"))?
        .iter()
        .map(|t| match (t["image"].as_str(), t["label"].as_str()) {
            (Some(i), l) => case(i, l),
            _ => Err(IoError::format(file, "a training entry has no 'image'")),
        })
        .collect::<Result<Vec<_>>>()?;
    let test = json["test"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|i| case(i, None))
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))?;
    Ok((training, test))
}

/// Label value → name, from nnU-Net's `labels` (name → value) or MSD's (value → name).
fn label_names(
    file: &Path,
    json: &Value,
    layout: SourceLayout,
) -> Result<BTreeMap<String, String>> {
    let labels = json["labels"]
        .as_object()
        .ok_or_else(|| IoError::format(file, "no 'labels' object"))?;
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        match (layout, v) {
            (SourceLayout::Nnunet, Value::Number(n)) => {
                out.insert(n.to_string(), k.clone());
            }
            (SourceLayout::Msd, Value::String(name)) => {
                out.insert(k.clone(), name.clone());
            }
            _ => {
                return Err(IoError::Unsupported {
                    path: file.to_path_buf(),
                    what: format!("label '{k}': {v} (region-based labels are not supported)"),
                })
            }
        }
    }
    Ok(out)
}

/// Links (or, for a 4-D image, extracts channel `channel` into) `dst/rel`.
fn place(source: &Path, dst: &Path, rel: &str, channel: usize) -> Result<()> {
    let target = dst.join(rel);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| IoError::io(dir, e))?;
    }
    let header = read_header(source)?;
    if header.dim[0] >= 4 && header.dim[4] > 1 {
        let options = ReadOptions {
            volume: Some(channel),
            ..Default::default()
        };
        let v = read_volume(source, &options)?.volume;
        return write_volume(&target, &v, &WriteOptions::default());
    }
    let absolute = source.canonicalize().map_err(|e| IoError::io(source, e))?;
    std::os::unix::fs::symlink(&absolute, &target).map_err(|e| IoError::io(&target, e))
}

/// The cases held out for validation: a fixed share chosen by a hash of their ids.
fn split_val(cases: Vec<SourceCase>, fraction: f64) -> (Vec<SourceCase>, Vec<SourceCase>) {
    let labelled = cases.iter().filter(|c| c.label.is_some()).count();
    let n_val = if labelled > 1 {
        ((labelled as f64 * fraction).round() as usize).clamp(1, labelled - 1)
    } else {
        0
    };
    let hash = |id: &str| {
        id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let mut order: Vec<(u64, String)> = cases
        .iter()
        .filter(|c| c.label.is_some())
        .map(|c| (hash(&c.id), c.id.clone()))
        .collect();
    order.sort();
    let held: std::collections::BTreeSet<String> =
        order.into_iter().take(n_val).map(|(_, id)| id).collect();
    cases.into_iter().partition(|c| !held.contains(&c.id))
}

/// Imports the dataset in `src` into a new folder `dst` (which must not hold a dataset).
pub fn import_dataset(src: &Path, dst: &Path, options: &ImportOptions) -> Result<ImportSummary> {
    let (file, json) = read_index(src)?;
    if dst.join("dataset.json").exists() {
        return Err(IoError::format(
            &dst.join("dataset.json"),
            "the destination already holds a dataset",
        ));
    }
    let channels = match options.layout {
        SourceLayout::Nnunet => &json["channel_names"],
        SourceLayout::Msd => &json["modality"],
    };
    let channel_name = channels[options.channel.to_string()].as_str().unwrap_or("");
    let kind = options
        .modality
        .or(modality_of(channel_name))
        .ok_or_else(|| {
            IoError::format(
                &file,
                format!(
                    "channel {} is '{channel_name}': say which modality it is (ct or mr)",
                    options.channel
                ),
            )
        })?;
    let labels = label_names(&file, &json, options.layout)?;
    let (training, test) = match options.layout {
        SourceLayout::Nnunet => {
            let ending = json["file_ending"].as_str().unwrap_or(".nii.gz");
            let tr = nnunet_cases(
                &file,
                &src.join("imagesTr"),
                &src.join("labelsTr"),
                ending,
                options.channel,
            )?;
            let ts = nnunet_cases(
                &file,
                &src.join("imagesTs"),
                &src.join("labelsTs"),
                ending,
                options.channel,
            )?;
            (tr, ts)
        }
        SourceLayout::Msd => msd_cases(src, &file, &json)?,
    };
    if training.is_empty() {
        return Err(IoError::format(&file, "no training cases found"));
    }
    let (train, val) = split_val(training, options.val_fraction);
    let modality = kind.name();
    let mut entry = ModalityEntry {
        kind,
        ..Default::default()
    };
    for (split, cases, images, labels_dir) in [
        ("train", &train, "imagesTr", "labelsTr"),
        ("val", &val, "imagesVal", "labelsVal"),
        ("test", &test, "imagesTs", "labelsTs"),
    ] {
        for c in cases {
            let image = format!("{modality}/{images}/{}.nii.gz", c.id);
            place(&c.image, dst, &image, options.channel)?;
            let label = match &c.label {
                Some(l) => {
                    let rel = format!("{modality}/{labels_dir}/{}.nii.gz", c.id);
                    place(l, dst, &rel, 0)?;
                    Some(rel)
                }
                None => None,
            };
            let case = CaseEntry {
                id: c.id.clone(),
                image,
                label,
                organs: None,
                meta: None,
                counterpart: None,
            };
            match split {
                "train" => entry.train.push(case),
                "val" => entry.val.push(case),
                _ => entry.test.push(case),
            }
        }
    }
    let index = DatasetIndex {
        label_codes: Default::default(),
        format: DATASET_FORMAT.into(),
        name: json["name"].as_str().unwrap_or("imported").to_owned(),
        description: format!(
            "Imported from {} ({}); images and labels link to the source files.",
            src.display(),
            match options.layout {
                SourceLayout::Nnunet => "nnU-Net v2 raw",
                SourceLayout::Msd => "Medical Segmentation Decathlon",
            }
        ),
        labels,
        organ_labels: BTreeMap::new(),
        modalities: [(modality.to_owned(), entry)].into(),
        generator: Value::Null,
    };
    let text = serde_json::to_string_pretty(&index)
        .map_err(|e| IoError::format(&dst.join("dataset.json"), e.to_string()))?;
    let path = dst.join("dataset.json");
    std::fs::write(&path, text + "\n").map_err(|e| IoError::io(&path, e))?;
    Ok(ImportSummary {
        train: train.len(),
        val: val.len(),
        test: test.len(),
        index,
    })
}
