//! The dataset layout cmedl trains on: a root folder with `dataset.json` listing cases per
//! modality and split. Paths in it are relative to the root and may not leave it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoError, Result};

/// The format tag of `dataset.json`.
pub const DATASET_FORMAT: &str = "cmedl-dataset/1";

/// One case: an image, its tumour label map and optional extras.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseEntry {
    /// Case identifier, unique in its modality.
    pub id: String,
    /// Image file, relative to the root.
    pub image: String,
    /// Label map (0 background, 1.. classes), relative to the root; absent for unlabelled cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Multi-organ label map, relative to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organs: Option<String>,
    /// Per-case metadata JSON (e.g. tumour locations), relative to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// The same patient imaged in another modality, on the same grid, relative to the root:
    /// for evaluation only (e.g. of a translation); training never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<String>,
}

/// The imaging modality of a dataset entry, which decides its intensity normalisation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Computed tomography: intensities in Hounsfield units.
    #[default]
    Ct,
    /// Magnetic resonance: intensities in arbitrary units.
    Mr,
}

impl Modality {
    /// The name as written in `dataset.json` (`ct`, `mr`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ct => "ct",
            Self::Mr => "mr",
        }
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The cases of one modality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalityEntry {
    /// `ct` or `mr`.
    pub kind: Modality,
    /// MRI contrast (`t2`, `t1`), when `kind` is `mr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast: Option<String>,
    /// Training cases.
    #[serde(default)]
    pub train: Vec<CaseEntry>,
    /// Validation cases.
    #[serde(default)]
    pub val: Vec<CaseEntry>,
    /// Test cases.
    #[serde(default)]
    pub test: Vec<CaseEntry>,
}

/// `dataset.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetIndex {
    /// Always [`DATASET_FORMAT`].
    pub format: String,
    /// Dataset name.
    pub name: String,
    /// Free text: origin, licence, how it was made.
    #[serde(default)]
    pub description: String,
    /// Names of the tumour label values, by value.
    pub labels: std::collections::BTreeMap<String, String>,
    /// What each tumour label value is, as DICOM codes (category and type; a name too) for the
    /// SEG and RTSTRUCT written from predictions; labels not listed get the defaults.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub label_codes: std::collections::BTreeMap<String, crate::dicom::LabelEntry>,
    /// Names of the organ label values, by value, when organ maps exist.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub organ_labels: std::collections::BTreeMap<String, String>,
    /// Modalities by name (e.g. `ct`, `mr`).
    pub modalities: std::collections::BTreeMap<String, ModalityEntry>,
    /// How the data were made (e.g. the phantom recipe), free-form.
    #[serde(default, skip_serializing_if = "serde_json_value_is_null")]
    pub generator: serde_json::Value,
}

fn serde_json_value_is_null(v: &serde_json::Value) -> bool {
    v.is_null()
}

/// A loaded dataset index and the folder it lives in.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder holding `dataset.json`.
    pub root: PathBuf,
    /// Its content.
    pub index: DatasetIndex,
}

impl Dataset {
    /// Reads and checks `ROOT/dataset.json`: format tag, unique ids, paths inside the root.
    pub fn open(root: &Path) -> Result<Self> {
        let file = root.join("dataset.json");
        let text = std::fs::read_to_string(&file).map_err(|e| IoError::io(&file, e))?;
        Self::from_json(root, &text)
    }

    /// Parses and checks the text of `ROOT/dataset.json`.
    pub fn from_json(root: &Path, text: &str) -> Result<Self> {
        let file = root.join("dataset.json");
        let index: DatasetIndex = serde_json::from_str(text)
            .map_err(|e| IoError::format(&file, format!("invalid dataset.json: {e}")))?;
        if index.format != DATASET_FORMAT {
            return Err(IoError::format(
                &file,
                format!("format is '{}', expected '{DATASET_FORMAT}'", index.format),
            ));
        }
        for (label, entry) in &index.label_codes {
            if !index.labels.contains_key(label) || label == "0" {
                return Err(IoError::format(
                    &file,
                    format!("label_codes: '{label}' is not a foreground value of 'labels'"),
                ));
            }
            entry
                .check()
                .map_err(|e| IoError::format(&file, format!("label_codes '{label}': {e}")))?;
        }
        for (name, m) in &index.modalities {
            let mut seen = std::collections::BTreeSet::new();
            for case in m.train.iter().chain(&m.val).chain(&m.test) {
                check_id(&file, &case.id)?;
                if !seen.insert(&case.id) {
                    return Err(IoError::format(
                        &file,
                        format!("modality '{name}' lists case '{}' twice", case.id),
                    ));
                }
                for p in [
                    Some(&case.image),
                    case.label.as_ref(),
                    case.organs.as_ref(),
                    case.meta.as_ref(),
                    case.counterpart.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    check_relative(&file, p)?;
                }
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            index,
        })
    }

    /// The modality `name`, or an error listing the ones there are.
    pub fn modality(&self, name: &str) -> Result<&ModalityEntry> {
        self.index.modalities.get(name).ok_or_else(|| {
            IoError::format(
                &self.root.join("dataset.json"),
                format!(
                    "no modality '{name}'; the dataset has {:?}",
                    self.index.modalities.keys().collect::<Vec<_>>()
                ),
            )
        })
    }

    /// The absolute path of a file named in the index.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

/// Case ids name output files (predictions, results): letters, digits, `.`, `_` and `-`, not
/// starting with a dot, so that no id can choose where a file goes.
pub fn check_id(file: &Path, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IoError::format(
            file,
            format!("case id '{id}' is not a safe file name ([A-Za-z0-9._-], no leading dot)"),
        ))
    }
}

/// Rejects absolute paths and `..` components: dataset files stay inside the root.
pub fn check_relative(file: &Path, p: &str) -> Result<()> {
    let path = Path::new(p);
    let bad = path.is_absolute()
        || path.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        })
        || p.is_empty();
    if bad {
        return Err(IoError::format(
            file,
            format!("path '{p}' must be relative and stay inside the dataset folder"),
        ));
    }
    Ok(())
}
