//! What the writers of derived objects (SEG, RTSTRUCT) share: new UIDs, element helpers,
//! display colours, the checks that a mask can be referenced to its series, the patient and
//! study attributes they copy, and the atomic write.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::series::SeriesVolume;
use crate::error::{IoError, Result};
use crate::volume::Mask;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// A coded concept (DICOM's code sequence item): value, coding scheme and meaning.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// CodeValue, e.g. "108369006".
    pub value: String,
    /// CodingSchemeDesignator, e.g. "SCT" (SNOMED CT).
    pub scheme: String,
    /// CodeMeaning, e.g. "Neoplasm".
    pub meaning: String,
}

impl Code {
    /// A code from its three parts.
    pub fn new(value: &str, scheme: &str, meaning: &str) -> Self {
        Self {
            value: value.into(),
            scheme: scheme.into(),
            meaning: meaning.into(),
        }
    }

    /// SNOMED CT 49755003 "Morphologically Abnormal Structure": the default segment category.
    pub fn morphologically_abnormal_structure() -> Self {
        Self::new("49755003", "SCT", "Morphologically Abnormal Structure")
    }

    /// SNOMED CT 108369006 "Neoplasm": the default segment type.
    pub fn neoplasm() -> Self {
        Self::new("108369006", "SCT", "Neoplasm")
    }

    /// The code as a sequence item.
    pub(crate) fn item(&self) -> InMemDicomObject {
        item(vec![
            text(tags::CODE_VALUE, VR::SH, &self.value),
            text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, &self.scheme),
            text(tags::CODE_MEANING, VR::LO, &self.meaning),
        ])
    }
}

/// One segment of a SEG (or ROI of an RTSTRUCT): the label value it holds in the mask, its
/// name and what it is (coded).
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSpec {
    /// The label in the mask.
    pub label: u8,
    /// SegmentLabel, e.g. "GTV".
    pub name: String,
    /// Segmented Property Category, e.g. SNOMED CT "Morphologically Abnormal Structure".
    pub category: Code,
    /// Segmented Property Type, e.g. SNOMED CT "Neoplasm".
    pub kind: Code,
}

impl SegmentSpec {
    /// A segment of `label` named `name`, coded as a neoplasm (the tumour of cmedl's task).
    pub fn new(label: u8, name: &str) -> Self {
        Self {
            label,
            name: name.into(),
            category: Code::morphologically_abnormal_structure(),
            kind: Code::neoplasm(),
        }
    }

    /// This segment with the name and codes `entry` gives (the others kept).
    pub fn with_entry(mut self, entry: &LabelEntry) -> Self {
        if let Some(name) = &entry.name {
            self.name = name.clone();
        }
        if let Some(c) = &entry.category {
            self.category = c.clone();
        }
        if let Some(c) = &entry.kind {
            self.kind = c.clone();
        }
        self
    }
}

/// One label of a label file (`predict --labels FILE.json`): its name and, optionally, the
/// codes of what it is.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelEntry {
    /// SegmentLabel / ROIName (none: the run's name for the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Segmented Property Category (none: "Morphologically Abnormal Structure").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Code>,
    /// Segmented Property Type (none: "Neoplasm").
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Code>,
}

impl LabelEntry {
    /// Fails unless every code has a value, a scheme and a meaning.
    pub fn check(&self) -> std::result::Result<(), String> {
        for code in self.category.iter().chain(&self.kind) {
            if code.value.is_empty() || code.scheme.is_empty() || code.meaning.is_empty() {
                return Err("a code needs a value, a scheme and a meaning".into());
            }
        }
        Ok(())
    }
}

/// Reads a label file: a JSON object from label values ("1", "2", …) to [`LabelEntry`]s.
pub fn read_label_file(path: &Path) -> Result<std::collections::BTreeMap<u8, LabelEntry>> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut crate::regular_file::open_regular(path)?, &mut text)
        .map_err(|e| IoError::io(path, e))?;
    let raw: std::collections::BTreeMap<String, LabelEntry> = serde_json::from_str(&text)
        .map_err(|e| IoError::format(path, format!("not a label file: {e}")))?;
    let mut out = std::collections::BTreeMap::new();
    for (key, entry) in raw {
        let label: u8 = key.parse().ok().filter(|&l| l > 0).ok_or_else(|| {
            IoError::format(
                path,
                format!("'{key}' is not a foreground label value (1–255)"),
            )
        })?;
        entry
            .check()
            .map_err(|e| IoError::format(path, format!("label {label}: {e}")))?;
        out.insert(label, entry);
    }
    Ok(out)
}

/// A new UID under the `2.25` root (a 128-bit number made of the time, the process, a counter
/// and `salt`).
pub fn new_uid(salt: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = |mut x: u64| {
        // SplitMix64 finaliser: spreads the inputs over all bits.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = mix(nanos as u64 ^ u64::from(std::process::id()).rotate_left(32));
    let lo = mix((nanos >> 64) as u64 ^ count.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt);
    format!("2.25.{}", (u128::from(hi) << 64 | u128::from(lo)))
}

pub(crate) fn sq(
    tag: dicom_core::Tag,
    items: Vec<InMemDicomObject>,
) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

pub(crate) fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

pub(crate) fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// Display colours of segments and ROIs, in turn (sRGB).
pub(crate) const COLOURS: [[u8; 3]; 6] = [
    [255, 0, 0],
    [0, 200, 0],
    [0, 100, 255],
    [255, 200, 0],
    [200, 0, 200],
    [0, 200, 200],
];

/// An sRGB colour as DICOM's RecommendedDisplayCIELabValue: CIELab (D65) scaled to 0–65535
/// (L* over 0–100, a* and b* over −128–127).
pub(crate) fn dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (linear(rgb[0]), linear(rgb[1]), linear(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let (l, a, bb) = (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz));
    let scale = |v: f64, lo: f64, hi: f64| {
        ((v - lo) / (hi - lo) * 65535.0).round().clamp(0.0, 65535.0) as u16
    };
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 127.0),
        scale(bb, -128.0, 127.0),
    ]
}

/// The VR of the patient and study attributes a derived object copies.
fn vr_of(tag: dicom_core::Tag) -> VR {
    match tag {
        t if t == tags::PATIENT_NAME
            || t == tags::REFERRING_PHYSICIAN_NAME
            || t == tags::OPERATORS_NAME =>
        {
            VR::PN
        }
        t if t == tags::PATIENT_BIRTH_DATE || t == tags::STUDY_DATE => VR::DA,
        t if t == tags::STUDY_TIME => VR::TM,
        t if t == tags::PATIENT_SEX => VR::CS,
        t if t == tags::STUDY_ID || t == tags::ACCESSION_NUMBER => VR::SH,
        _ => VR::LO,
    }
}

/// The source's value of a copied attribute, empty when it has none.
fn copied(series: &SeriesVolume, tag: dicom_core::Tag) -> &str {
    series
        .source
        .patient_study
        .iter()
        .find(|(t, _)| *t == tag)
        .map_or("", |(_, v)| v.as_str())
}

/// Copied attributes, present (empty where the source has none: Type 2 must be present).
fn copy_all(series: &SeriesVolume, tags: &[dicom_core::Tag]) -> Vec<DataElement<InMemDicomObject>> {
    tags.iter()
        .map(|&tag| text(tag, vr_of(tag), copied(series, tag)))
        .collect()
}

/// The identifiers a derived object references and shares with its series, with new UIDs
/// where the source's are empty (anonymised exports): an empty Type 1 value is never written.
pub(crate) struct DerivedIds {
    /// StudyInstanceUID (the source's, or new).
    pub study: String,
    /// The source's SeriesInstanceUID (or new).
    pub series: String,
    /// FrameOfReferenceUID (the source's, or new).
    pub frame_of_reference: String,
}

impl DerivedIds {
    /// The source's identifiers; empty ones replaced by new UIDs, with a warning naming the
    /// series and the output.
    pub fn of(series: &SeriesVolume, output: &Path) -> Self {
        let or_new = |uid: &str, what: &str, salt: u64| {
            if uid.is_empty() {
                let fresh = new_uid(salt);
                tracing::warn!(
                    "{}: the {} series in {} has no {what} (an anonymised export?); {} gets a new one, {fresh}, which no other object shares",
                    output.display(),
                    series.modality,
                    series.path.display(),
                    output.display(),
                );
                fresh
            } else {
                uid.to_owned()
            }
        };
        Self {
            study: or_new(&series.source.study_uid, "StudyInstanceUID", 11),
            series: or_new(&series.uid, "SeriesInstanceUID", 12),
            frame_of_reference: or_new(
                &series.source.frame_of_reference_uid,
                "FrameOfReferenceUID",
                13,
            ),
        }
    }
}

/// A reference to image `k` of the series: its SOP class and instance.
pub(crate) fn image_ref(series: &SeriesVolume, k: usize) -> InMemDicomObject {
    let src = &series.source;
    item(vec![
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid),
        text(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &src.instance_uids[k],
        ),
    ])
}

/// Patient module: name, ID, birth date and sex (Type 2: present, empty where unknown).
pub(crate) fn patient_module(series: &SeriesVolume) -> Vec<DataElement<InMemDicomObject>> {
    copy_all(
        series,
        &[
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
            tags::PATIENT_SEX,
        ],
    )
}

/// General Study module: the source's study.
pub(crate) fn general_study_module(
    series: &SeriesVolume,
    ids: &DerivedIds,
) -> Vec<DataElement<InMemDicomObject>> {
    let mut e = vec![text(tags::STUDY_INSTANCE_UID, VR::UI, &ids.study)];
    e.extend(copy_all(
        series,
        &[
            tags::STUDY_DATE,
            tags::STUDY_TIME,
            tags::REFERRING_PHYSICIAN_NAME,
            tags::STUDY_ID,
            tags::ACCESSION_NUMBER,
        ],
    ));
    let description = copied(series, tags::STUDY_DESCRIPTION);
    if !description.is_empty() {
        e.push(text(tags::STUDY_DESCRIPTION, VR::LO, description));
    }
    e
}

/// General (or RT, or Segmentation) Series module: a new series of `modality`.
pub(crate) fn series_module(
    modality: &str,
    number: &str,
    description: &str,
) -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(tags::MODALITY, VR::CS, modality),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid(2)),
        text(tags::SERIES_NUMBER, VR::IS, number),
        text(tags::SERIES_DESCRIPTION, VR::LO, description),
    ]
}

/// Frame of Reference module: the source's frame.
pub(crate) fn frame_of_reference_module(
    series: &SeriesVolume,
    ids: &DerivedIds,
) -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &ids.frame_of_reference,
        ),
        text(
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            copied(series, tags::POSITION_REFERENCE_INDICATOR),
        ),
    ]
}

/// (Enhanced) General Equipment module: cmedl, by name and version.
pub(crate) fn equipment_module() -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(tags::MANUFACTURER, VR::LO, "cmedl"),
        text(tags::MANUFACTURER_MODEL_NAME, VR::LO, "cmedl"),
        text(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
    ]
}

/// SOP Common module: class and instance.
pub(crate) fn sop_common_module(
    sop_class: &str,
    sop_instance: &str,
) -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(tags::SOP_CLASS_UID, VR::UI, sop_class),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
    ]
}

/// The current UTC date and time as DICOM DA (YYYYMMDD) and TM (HHMMSS) values.
pub(crate) fn now_date_time() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    date_time(secs)
}

/// A Unix time as DICOM DA and TM values (the civil calendar from days since 1970).
pub(crate) fn date_time(secs: u64) -> (String, String) {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rest / 3600, (rest / 60) % 60, rest % 60),
    )
}

/// Fails unless `mask` lies on `series`' grid and the series' images have the SOP instance UIDs
/// `what` ("a SEG", "an RTSTRUCT") must reference.
pub(crate) fn check_derivable(
    path: &Path,
    series: &SeriesVolume,
    mask: &Mask,
    what: &str,
) -> Result<()> {
    let g = &series.volume.geometry;
    if !mask.geometry.same_grid(g, 1e-3) {
        return Err(IoError::Geometry(format!(
            "{}: the mask (shape {:?}) does not lie on the series' grid (shape {:?})",
            path.display(),
            mask.geometry.shape,
            g.shape
        )));
    }
    let uids = &series.source.instance_uids;
    if uids.len() != g.shape[2] || uids.iter().any(String::is_empty) {
        return Err(IoError::format(
            path,
            format!("the series' images lack SOPInstanceUIDs (in the data set and in the file meta), which {what} must reference"),
        ));
    }
    if series.source.sop_class_uid.is_empty() {
        return Err(IoError::format(
            path,
            format!("the series' images lack a SOPClassUID (in the data set and in the file meta), which {what} must reference"),
        ));
    }
    Ok(())
}

/// Writes the data set `elements` as a Part-10 file of class `sop_class`: beside the target
/// and renamed, so that no torn file is left.
pub(crate) fn save_derived(
    path: &Path,
    elements: Vec<DataElement<InMemDicomObject>>,
    sop_class: &str,
    sop_instance: &str,
) -> Result<()> {
    let obj = InMemDicomObject::from_element_iter(elements);
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_instance),
        )
        .map_err(|e| IoError::format(path, e.to_string()))?
        .write_to_file(&tmp)
        .map_err(|e| IoError::format(path, e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| IoError::io(path, e))
}
