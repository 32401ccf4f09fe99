//! Cohorts: many patients, CT and MRI from different ones, written in the dataset layout.

use std::collections::BTreeMap;
use std::path::Path;

use cmedl_io::dataset::{CaseEntry, DatasetIndex, Modality, ModalityEntry, DATASET_FORMAT};
use cmedl_io::nifti::{write_mask, write_volume, DataType, WriteOptions};
use cmedl_io::{Geometry, Mask, Volume};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::anatomy::{LocationShares, Patient, Tissue, TumourKind};
use crate::imaging::{render, Acquisition, Contrast, CtSettings};
use crate::stats::{tumour_cnr, TumourCnr};
use crate::PhantomError;

/// Which MRI contrasts the MR patients get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MrContrast {
    /// T2-weighted only (modality `mr`).
    T2,
    /// T1-weighted only (modality `mr`).
    T1,
    /// Both, from the same MR patients: `mr` (T2w) and `mr-t1`.
    Both,
}

/// The recipe of a cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohortConfig {
    /// CT training patients.
    pub ct: usize,
    /// MR training patients (never the same people as the CT ones).
    pub mr: usize,
    /// MRI contrasts.
    pub mr_contrast: MrContrast,
    /// Validation patients of each modality.
    pub val: usize,
    /// Test patients of each modality.
    pub test: usize,
    /// In-plane voxels per side.
    pub size: usize,
    /// Axial slices.
    pub slices: usize,
    /// Voxel size in mm (x, y, z).
    pub spacing: [f64; 3],
    /// Master seed.
    pub seed: u64,
    /// Shares of tumour locations.
    pub locations: LocationShares,
    /// CT acquisition: tumour contrast and noise.
    pub ct_imaging: CtSettings,
    /// Share of tumours with a necrotic core (15 HU on CT, bright on T2, dark on T1; labelled
    /// as tumour). Drawn from a stream of its own, so 0 leaves every other draw unchanged.
    pub tumour_necrosis: f64,
    /// Range of a per-patient scale of the whole anatomy (tumours included), drawn uniformly
    /// from its own stream; [1, 1] keeps the model's own size variation only.
    pub body_scale: [f64; 2],
}

impl Default for CohortConfig {
    fn default() -> Self {
        Self {
            ct: 24,
            mr: 12,
            mr_contrast: MrContrast::T2,
            val: 4,
            test: 8,
            size: 128,
            slices: 32,
            spacing: [2.5, 2.5, 5.0],
            seed: 0,
            locations: LocationShares::default(),
            ct_imaging: CtSettings::default(),
            tumour_necrosis: 0.0,
            body_scale: [1.0, 1.0],
        }
    }
}

/// Organ label values of the multi-organ maps.
pub const ORGAN_LABELS: [(u8, &str); 7] = [
    (0, "background"),
    (1, "lung"),
    (2, "heart"),
    (3, "aorta"),
    (4, "oesophagus"),
    (5, "spine"),
    (6, "tumour"),
];

/// One tumour as it came out in the images.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TumourRecord {
    /// Location kind.
    pub kind: TumourKind,
    /// Centre in world RAS+ mm.
    pub centre_mm: [f64; 3],
    /// Mean radius in mm.
    pub radius_mm: f64,
    /// Voxels labelled with this tumour.
    pub voxels: usize,
    /// Labelled volume in ml.
    pub volume_ml: f64,
}

/// Per-case metadata written to `meta/<id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseMeta {
    /// Case id.
    pub id: String,
    /// Image contrast(s).
    pub contrasts: Vec<Contrast>,
    /// Seed of this patient.
    pub seed: u64,
    /// Tumours.
    pub tumours: Vec<TumourRecord>,
    /// Acquisition settings per contrast.
    pub acquisitions: Vec<Acquisition>,
}

/// A generated case in memory.
#[derive(Clone, Debug)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// One image per contrast.
    pub images: Vec<(Contrast, Volume)>,
    /// Tumour mask (0/1).
    pub tumour: Mask,
    /// Index of the tumour at each voxel centre (0 none, t + 1 tumour t).
    pub tumour_index: Vec<u8>,
    /// Multi-organ labels.
    pub organs: Mask,
    /// Tissue at each voxel centre.
    pub tissue: Vec<Tissue>,
    /// Metadata.
    pub meta: CaseMeta,
}

/// Mixes the master seed, a group and an index into a patient seed (SplitMix64).
pub fn patient_seed(master: u64, group: u64, index: u64) -> u64 {
    let mut z = master
        ^ group.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates one patient imaged with `contrasts`.
pub fn generate_case(config: &CohortConfig, id: &str, seed: u64, contrasts: &[Contrast]) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = [config.size, config.size, config.slices];
    let s = config.spacing;
    let half_height = 0.5 * config.slices as f64 * s[2];
    let mut patient = Patient::generate(&mut rng, half_height, &config.locations);
    if config.tumour_necrosis > 0.0 {
        let mut cores = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6372_6f73_6973);
        for t in &mut patient.tumours {
            if rand::Rng::gen_bool(&mut cores, config.tumour_necrosis.min(1.0)) {
                t.core = rand::Rng::gen_range(&mut cores, 0.35..0.6);
            }
        }
    }
    let shift = [
        rand::Rng::gen_range(&mut rng, -8.0..8.0),
        rand::Rng::gen_range(&mut rng, -8.0..8.0),
    ];
    let c = [
        (shape[0] as f64 - 1.0) / 2.0,
        (shape[1] as f64 - 1.0) / 2.0,
        (shape[2] as f64 - 1.0) / 2.0,
    ];
    let [lo, hi] = config.body_scale;
    let scale = if lo < hi {
        let mut sizes = ChaCha8Rng::seed_from_u64(seed ^ 0x7363_616c_6520_7369);
        rand::Rng::gen_range(&mut sizes, lo..hi)
    } else {
        lo
    };
    // Patient frame (u left, v anterior, w superior) of a voxel centre; world RAS = (−u, v, w)
    // times the patient's scale.
    let centre = move |i: usize, j: usize, k: usize| {
        [
            ((i as f64 - c[0]) * s[0] - shift[0]) / scale,
            (-(j as f64 - c[1]) * s[1] + shift[1]) / scale,
            (k as f64 - c[2]) * s[2] / scale,
        ]
    };
    let step = s.map(|x| x / scale);
    let mut affine = cmedl_io::identity();
    affine[0] = [-s[0], 0.0, 0.0, s[0] * c[0] + shift[0]];
    affine[1] = [0.0, -s[1], 0.0, s[1] * c[1] + shift[1]];
    affine[2] = [0.0, 0.0, s[2], -s[2] * c[2]];
    let geometry = Geometry {
        shape,
        spacing: s,
        affine,
    };

    let n = geometry.len();
    let mut tissue = Vec::with_capacity(n);
    let mut tumour_index = Vec::with_capacity(n);
    let mut organs = Vec::with_capacity(n);
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let p = centre(i, j, k);
                let t = patient.tissue(p);
                let ti = if matches!(t, Tissue::Tumour | Tissue::Necrosis) {
                    patient.tumour_at(p).map_or(0, |x| x as u8 + 1)
                } else {
                    0
                };
                organs.push(match t {
                    Tissue::Lung | Tissue::Vessel => 1,
                    Tissue::Heart => 2,
                    Tissue::Aorta => 3,
                    Tissue::Oesophagus => 4,
                    Tissue::Marrow => 5,
                    Tissue::Bone if (p[0] * p[0]).sqrt() < 20.0 && p[1] < 0.0 => 5,
                    Tissue::Tumour | Tissue::Necrosis => 6,
                    _ => 0,
                });
                tissue.push(t);
                tumour_index.push(ti);
            }
        }
    }
    let mut acquisitions = Vec::new();
    let images = contrasts
        .iter()
        .map(|&contrast| {
            let acq = Acquisition::draw(&mut rng, contrast, &config.ct_imaging);
            let data = render(&patient, &acq, shape, &centre, step, &mut rng);
            acquisitions.push(acq);
            let data = if contrast == Contrast::Ct {
                data.into_iter()
                    .map(|v| v.round().clamp(-1024.0, 3071.0))
                    .collect()
            } else {
                data
            };
            (
                contrast,
                Volume {
                    geometry: geometry.clone(),
                    data,
                },
            )
        })
        .collect();
    let voxel_ml = s[0] * s[1] * s[2] / 1000.0;
    let tumours = patient
        .tumours
        .iter()
        .enumerate()
        .map(|(t, tu)| {
            let voxels = tumour_index
                .iter()
                .filter(|&&x| x as usize == t + 1)
                .count();
            TumourRecord {
                kind: tu.kind,
                centre_mm: [
                    -tu.centre[0] * scale,
                    tu.centre[1] * scale,
                    tu.centre[2] * scale,
                ],
                radius_mm: tu.radius * scale,
                voxels,
                volume_ml: voxels as f64 * voxel_ml,
            }
        })
        .collect();
    Case {
        id: id.to_owned(),
        images,
        tumour: Mask {
            geometry: geometry.clone(),
            data: tumour_index.iter().map(|&t| u8::from(t > 0)).collect(),
        },
        tumour_index,
        organs: Mask {
            geometry,
            data: organs,
        },
        tissue,
        meta: CaseMeta {
            id: id.to_owned(),
            contrasts: contrasts.to_vec(),
            seed,
            tumours,
            acquisitions,
        },
    }
}

/// What a cohort member is: its id, seed, contrasts and where it is listed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Case id.
    pub id: String,
    /// Patient seed.
    pub seed: u64,
    /// Contrasts to render.
    pub contrasts: Vec<Contrast>,
    /// Split: `train`, `val` or `test`.
    pub split: &'static str,
    /// The MRI contrast also rendered of a CT validation or test patient, for evaluating
    /// translations against the same patient (never listed for training).
    pub counterpart: Option<Contrast>,
}

/// The cases of a cohort; CT and MR patients draw from disjoint seed streams.
pub fn plan(config: &CohortConfig) -> Vec<Plan> {
    let mut out = Vec::new();
    let counterpart = match config.mr_contrast {
        MrContrast::T1 => Contrast::T1,
        MrContrast::T2 | MrContrast::Both => Contrast::T2,
    };
    for (split, count, group) in [
        ("train", config.ct, 1u64),
        ("val", config.val, 2),
        ("test", config.test, 3),
    ] {
        for i in 0..count {
            let counterpart = (split != "train").then_some(counterpart);
            out.push(Plan {
                id: format!("ct_{split}_{i:03}"),
                seed: patient_seed(config.seed, group, i as u64),
                // The CT is rendered first, so the counterpart leaves it unchanged.
                contrasts: std::iter::once(Contrast::Ct).chain(counterpart).collect(),
                split,
                counterpart,
            });
        }
    }
    let mr = match config.mr_contrast {
        MrContrast::T2 => vec![Contrast::T2],
        MrContrast::T1 => vec![Contrast::T1],
        MrContrast::Both => vec![Contrast::T2, Contrast::T1],
    };
    for (split, count, group) in [
        ("train", config.mr, 10u64),
        ("val", config.val, 11),
        ("test", config.test, 12),
    ] {
        for i in 0..count {
            out.push(Plan {
                id: format!("mr_{split}_{i:03}"),
                seed: patient_seed(config.seed, group, i as u64),
                contrasts: mr.clone(),
                split,
                counterpart: None,
            });
        }
    }
    out
}

fn folder(split: &str) -> (&'static str, &'static str, &'static str) {
    match split {
        "val" => ("imagesVal", "labelsVal", "organsVal"),
        "test" => ("imagesTs", "labelsTs", "organsTs"),
        _ => ("imagesTr", "labelsTr", "organsTr"),
    }
}

/// A written case: its plan, metadata, `(modality, entry)` rows for the index, tumour CNRs.
type Written = (Plan, CaseMeta, Vec<(String, CaseEntry)>, Vec<TumourCnr>);

/// What [`write_cohort`] made.
#[derive(Clone, Debug)]
pub struct CohortSummary {
    /// The `dataset.json` written.
    pub index: DatasetIndex,
    /// Metadata of every case.
    pub metas: Vec<CaseMeta>,
    /// Measured CNR of every tumour in every image.
    pub cnr: Vec<TumourCnr>,
}

/// The measured tumour contrast of one image kind and location, as `contrast.json` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContrastStat {
    /// Image contrast (`ct`, `t2`, `t1`).
    pub contrast: Contrast,
    /// Tumour location class.
    pub location: TumourKind,
    /// Tumours measured.
    pub tumours: usize,
    /// Mean contrast-to-noise ratio against the tumour's surroundings.
    pub mean_cnr: f64,
}

/// Writes `contrast.json`: the mean tumour CNR per image contrast and location of the cohort.
fn write_contrast_stats(out: &Path, cnrs: &[TumourCnr]) -> Result<(), PhantomError> {
    let stats: Vec<ContrastStat> = crate::stats::summarize(cnrs)
        .into_iter()
        .map(|(contrast, location, tumours, mean_cnr)| ContrastStat {
            contrast,
            location,
            tumours,
            mean_cnr,
        })
        .collect();
    let path = out.join("contrast.json");
    let text =
        serde_json::to_string_pretty(&stats).map_err(|e| PhantomError::Config(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| PhantomError::io(&path, e))
}

/// Generates the cohort on all cores and writes it under `out` with its `dataset.json` (and
/// `contrast.json`, the measured tumour CNR per image contrast and location).
///
/// `progress(done, total)` is called after each case.
pub fn write_cohort(
    config: &CohortConfig,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CohortSummary, PhantomError> {
    if config.size < 16
        || config.slices < 2
        || config.spacing.iter().any(|s| !(s.is_finite() && *s > 0.0))
    {
        return Err(PhantomError::Config(format!("size must be ≥ 16, slices ≥ 2 and spacing positive; got size {}, slices {}, spacing {:?}", config.size, config.slices, config.spacing)));
    }
    if config.ct == 0 {
        return Err(PhantomError::Config(
            "a cohort needs at least one CT training patient".into(),
        ));
    }
    let ct = &config.ct_imaging;
    let [lo, hi] = ct.noise_hu;
    if !(ct.tumour_offset_hu.is_finite()
        && lo.is_finite()
        && hi.is_finite()
        && 0.0 <= lo
        && lo <= hi)
    {
        return Err(PhantomError::Config(format!(
            "ct_imaging: tumour_offset_hu must be finite and noise_hu a range 0 ≤ lo ≤ hi; got {} and {:?}",
            ct.tumour_offset_hu, ct.noise_hu
        )));
    }
    let [lo, hi] = config.body_scale;
    if !(0.5 <= lo && lo <= hi && hi <= 2.0) {
        return Err(PhantomError::Config(format!(
            "body_scale is a range 0.5 ≤ lo ≤ hi ≤ 2, got {:?}",
            config.body_scale
        )));
    }
    if !(0.0..=1.0).contains(&config.tumour_necrosis) {
        return Err(PhantomError::Config(format!(
            "tumour_necrosis is a share in [0, 1], got {}",
            config.tumour_necrosis
        )));
    }
    let plans = plan(config);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Written, PhantomError>> = plans
        .par_iter()
        .map(|p| {
            let mut case = generate_case(config, &p.id, p.seed, &p.contrasts);
            let (img_dir, lab_dir, org_dir) = folder(p.split);
            let counterpart = match p.counterpart {
                Some(_) => case.images.pop(),
                None => None,
            };
            let counterpart_path = match &counterpart {
                Some((_, volume)) => {
                    let rel = format!("ct/{img_dir}Counterpart/{}.nii.gz", p.id);
                    let options = WriteOptions {
                        datatype: DataType::F32,
                        ..Default::default()
                    };
                    write_volume(&out.join(&rel), volume, &options)?;
                    Some(rel)
                }
                None => None,
            };
            let mut entries = Vec::new();
            for (contrast, volume) in &case.images {
                let modality = match (contrast, config.mr_contrast) {
                    (Contrast::Ct, _) => "ct",
                    (Contrast::T1, MrContrast::Both) => "mr-t1",
                    _ => "mr",
                };
                let rel = |dir: &str| format!("{modality}/{dir}/{}.nii.gz", p.id);
                let dt = if *contrast == Contrast::Ct {
                    DataType::I16
                } else {
                    DataType::F32
                };
                write_volume(
                    &out.join(rel(img_dir)),
                    volume,
                    &WriteOptions {
                        datatype: dt,
                        ..Default::default()
                    },
                )?;
                write_mask(&out.join(rel(lab_dir)), &case.tumour)?;
                write_mask(&out.join(rel(org_dir)), &case.organs)?;
                entries.push((
                    modality.to_owned(),
                    CaseEntry {
                        id: p.id.clone(),
                        image: rel(img_dir),
                        label: Some(rel(lab_dir)),
                        organs: Some(rel(org_dir)),
                        meta: Some(format!("meta/{}.json", p.id)),
                        counterpart: counterpart_path.clone(),
                    },
                ));
            }
            let meta_path = out.join("meta").join(format!("{}.json", p.id));
            std::fs::create_dir_all(out.join("meta"))
                .map_err(|e| PhantomError::io(&meta_path, e))?;
            let text = serde_json::to_string_pretty(&case.meta)
                .map_err(|e| PhantomError::Config(e.to_string()))?;
            std::fs::write(&meta_path, text).map_err(|e| PhantomError::io(&meta_path, e))?;
            let cnr = tumour_cnr(&case);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(n, plans.len());
            Ok((p.clone(), case.meta, entries, cnr))
        })
        .collect();
    let mut modalities: BTreeMap<String, ModalityEntry> = BTreeMap::new();
    let mut metas = Vec::new();
    let mut cnrs = Vec::new();
    for r in results {
        let (p, meta, entries, cnr) = r?;
        cnrs.extend(cnr);
        for (modality, entry) in entries {
            let m = modalities
                .entry(modality.clone())
                .or_insert_with(|| ModalityEntry {
                    kind: if modality == "ct" {
                        Modality::Ct
                    } else {
                        Modality::Mr
                    },
                    contrast: match modality.as_str() {
                        "ct" => None,
                        "mr-t1" => Some("t1".into()),
                        _ => Some(if config.mr_contrast == MrContrast::T1 {
                            "t1".into()
                        } else {
                            "t2".into()
                        }),
                    },
                    ..Default::default()
                });
            match p.split {
                "val" => m.val.push(entry),
                "test" => m.test.push(entry),
                _ => m.train.push(entry),
            }
        }
        metas.push(meta);
    }
    let index = DatasetIndex {
        label_codes: Default::default(),
        format: DATASET_FORMAT.into(),
        name: "cmedl thorax phantom".into(),
        description: "Synthetic thorax CT and MRI from different simulated patients (unpaired), with lung tumour masks and organ maps, generated by cmedl-phantom.".into(),
        labels: BTreeMap::from([("0".into(), "background".into()), ("1".into(), "tumour".into())]),
        organ_labels: ORGAN_LABELS.iter().map(|(v, n)| (v.to_string(), (*n).to_owned())).collect(),
        modalities,
        generator: serde_json::to_value(config).map_err(|e| PhantomError::Config(e.to_string()))?,
    };
    write_contrast_stats(out, &cnrs)?;
    let path = out.join("dataset.json");
    let text =
        serde_json::to_string_pretty(&index).map_err(|e| PhantomError::Config(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| PhantomError::io(&path, e))?;
    Ok(CohortSummary {
        index,
        metas,
        cnr: cnrs,
    })
}
