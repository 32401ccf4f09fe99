//! A synthetic thorax cohort for cmedl: CT and MRI of *different* simulated patients (unpaired,
//! as in the CMEDL paper), with lung tumours of known location and shape, multi-organ label
//! maps and per-case metadata, written in cmedl's dataset layout. It reproduces the paper's
//! motivation: a tumour abutting the mediastinum barely differs from the heart on CT and stands
//! out on T2-weighted MRI.
//!
//! ```no_run
//! use cmedl_phantom::{write_cohort, CohortConfig};
//!
//! let config = CohortConfig { ct: 4, mr: 2, val: 1, test: 1, size: 64, slices: 16, ..Default::default() };
//! let summary = write_cohort(&config, std::path::Path::new("phantom"), &|_, _| {})?;
//! assert_eq!(summary.index.modalities["ct"].train.len(), 4);
//! # Ok::<(), cmedl_phantom::PhantomError>(())
//! ```
//!
//! # Anatomy
//! Per patient (deterministic from its seed): an elliptic body with subcutaneous fat and a muscle
//! chest wall, ribs as oblique bands, a vertebra (cortical shell, marrow), two lungs tapering to
//! the apex and cut by the diaphragm, pulmonary vessel trees that branch four times from the
//! hila and thin by 0.7 per generation, the heart, descending and ascending aorta, oesophagus,
//! trachea and mediastinal fat. One to three lobulated tumours (mean radius 5–30 mm, 8–25 mm
//! for mediastinal ones) sit in the lung parenchyma, on the heart's border, or on the chest wall
//! with configurable shares; tumours are clipped to the thoracic cavity, so they never leave the
//! body.
//!
//! # Imaging
//! CT numbers (HU) are typical values of the tissue ranges in Buzug, *Computed Tomography*
//! (Springer, 2008), ch. 1, and Kalender, *Computed Tomography* (3rd ed., 2011): lung −850,
//! fat −100, muscle 50, blood and heart 40, solid tumour 45 (within 5 HU of the heart, as
//! non-enhanced NSCLC is), marrow 300, cortical bone 900, air −1000. Each voxel averages 2×2×2
//! sub-samples (partial volume), is blurred by a Gaussian PSF (σ = 0.5 voxel) and gets Gaussian
//! noise of σ = 10–30 HU; CT is stored as int16.
//!
//! MRI uses the spin-echo signal PD·(1 − e^(−TR/T1))·e^(−TE/T2) with 1.5 T relaxation times of
//! Stanisz et al., MRM 54:507 (2005) (muscle T1 1008 / T2 44 ms, blood 1441 / 290 ms, myocardium
//! 1030 / 40 ms) and de Bazelaire et al., Radiology 230:652 (2004) (subcutaneous fat T1 343 ms),
//! an apparent fat T2 of 130 ms on turbo spin echo (J-coupling, Henkelman et al., JMRI 1992),
//! a tumour T2 of 100 ms (NSCLC is T2-hyperintense to muscle), and flow voids for moving blood.
//! T2w: TR 4000 / TE 90 ms; T1w: TR 500 / TE 15 ms. A smooth multiplicative bias field
//! (exponential of a random low-order polynomial, ±15 %) and Rician noise (σ ≈ 1–2 % of fat's
//! signal) follow; values are arbitrary units (×1000), stored as float32.
//!
//! # Measured contrast
//! [`stats::tumour_cnr`] measures each tumour's CNR against its adjacent tissue; on the default
//! cohort mediastinal tumours have CT CNR < 1 and T2w CNR > 3, parenchymal ones CT CNR > 10
//! (checked by the crate's tests).

pub mod anatomy;
pub mod cohort;
pub mod imaging;
pub mod preview;
pub mod stats;

use std::path::{Path, PathBuf};

pub use anatomy::{LocationShares, Patient, Tissue, TumourKind};
pub use cohort::{
    generate_case, plan, write_cohort, Case, CaseMeta, CohortConfig, CohortSummary, ContrastStat,
    MrContrast, Plan,
};
pub use imaging::{Contrast, CtSettings};

/// Errors of the phantom generator.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    /// An invalid recipe.
    #[error("{0}")]
    Config(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing a volume failed.
    #[error(transparent)]
    Volume(#[from] cmedl_io::IoError),
}

impl PhantomError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
