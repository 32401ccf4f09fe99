//! Imaging models: CT in Hounsfield units, T2- and T1-weighted spin-echo MRI in arbitrary units.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::anatomy::{Patient, Tissue};

/// Which image a cohort member gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contrast {
    /// CT, Hounsfield units.
    Ct,
    /// T2-weighted turbo spin echo.
    T2,
    /// T1-weighted spin echo.
    T1,
}

impl Contrast {
    /// Name used in folder names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ct => "ct",
            Self::T2 => "t2",
            Self::T1 => "t1",
        }
    }
}

/// Mean CT number of a tissue in HU (see the crate documentation for sources).
pub fn ct_hu(t: Tissue) -> f64 {
    match t {
        Tissue::Air | Tissue::Trachea => -1000.0,
        Tissue::Lung => -850.0,
        Tissue::Fat => -100.0,
        Tissue::Muscle => 50.0,
        Tissue::Vessel | Tissue::Heart | Tissue::Aorta => 40.0,
        Tissue::Oesophagus => 40.0,
        Tissue::Marrow => 300.0,
        Tissue::Bone => 900.0,
        Tissue::Tumour => 45.0,
        Tissue::Necrosis => 15.0,
    }
}

/// (proton density, T1 ms, T2 ms, flow-void factor) at 1.5 T.
fn relaxation(t: Tissue) -> (f64, f64, f64, f64) {
    match t {
        Tissue::Air | Tissue::Trachea => (0.0, 1.0, 1.0, 1.0),
        Tissue::Lung => (0.12, 1200.0, 30.0, 1.0),
        // Apparent T2 of fat on turbo spin echo is lengthened by J-coupling decoupling.
        Tissue::Fat => (0.9, 343.0, 130.0, 1.0),
        Tissue::Muscle | Tissue::Oesophagus => (0.8, 1008.0, 44.0, 1.0),
        Tissue::Vessel | Tissue::Aorta => (0.95, 1441.0, 290.0, 0.1),
        // Half myocardium (T1 1030, T2 40), half blood pool in flow void: an effective mix.
        Tissue::Heart => (0.85, 1100.0, 60.0, 0.45),
        Tissue::Marrow => (0.85, 550.0, 60.0, 1.0),
        Tissue::Bone => (0.05, 1000.0, 1.0, 1.0),
        Tissue::Tumour => (0.85, 1100.0, 100.0, 1.0),
        // Necrotic fluid: long T1 and T2, bright on T2 and dark on T1.
        Tissue::Necrosis => (0.95, 2500.0, 400.0, 1.0),
    }
}

/// Spin-echo signal PD·(1 − e^(−TR/T1))·e^(−TE/T2)·flow for a tissue.
pub fn mr_signal(t: Tissue, contrast: Contrast) -> f64 {
    let (pd, t1, t2, flow) = relaxation(t);
    let (tr, te) = match contrast {
        Contrast::T2 => (4000.0, 90.0),
        Contrast::T1 => (500.0, 15.0),
        Contrast::Ct => return ct_hu(t),
    };
    pd * (1.0 - (-tr / t1).exp()) * (-te / t2).exp() * flow
}

/// Standard normal deviate (Box–Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Per-image acquisition settings drawn for one patient.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Acquisition {
    /// The contrast.
    pub contrast: Contrast,
    /// Noise standard deviation (HU for CT, signal units for MRI).
    pub noise_sigma: f64,
    /// Bias field coefficients (MRI only): linear in u, v, w and quadratic in u, v.
    pub bias: [f64; 5],
    /// CT number of tumour tissue in HU (CT only).
    #[serde(default = "default_tumour_hu")]
    pub tumour_hu: f64,
}

fn default_tumour_hu() -> f64 {
    ct_hu(Tissue::Tumour)
}

/// How CT images are acquired: the knobs that set how visible a tumour is on CT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CtSettings {
    /// Tumour CT number minus the default 45 HU (mediastinal soft tissue is 40–50 HU, so this
    /// sets the tumour's contrast against its surroundings).
    pub tumour_offset_hu: f64,
    /// Range of the per-image Gaussian noise standard deviation in HU (drawn uniformly).
    pub noise_hu: [f64; 2],
}

impl Default for CtSettings {
    fn default() -> Self {
        Self {
            tumour_offset_hu: 0.0,
            noise_hu: [10.0, 30.0],
        }
    }
}

impl Acquisition {
    /// Draws the settings of one image.
    pub fn draw(rng: &mut ChaCha8Rng, contrast: Contrast, ct: &CtSettings) -> Self {
        let noise_sigma = match contrast {
            Contrast::Ct if ct.noise_hu[0] < ct.noise_hu[1] => {
                rng.gen_range(ct.noise_hu[0]..ct.noise_hu[1])
            }
            Contrast::Ct => ct.noise_hu[0],
            _ => rng.gen_range(0.008..0.016),
        };
        let mut bias = [0.0; 5];
        if contrast != Contrast::Ct {
            for b in &mut bias {
                *b = rng.gen_range(-0.15..0.15);
            }
        }
        Self {
            contrast,
            noise_sigma,
            bias,
            tumour_hu: ct_hu(Tissue::Tumour) + ct.tumour_offset_hu,
        }
    }

    fn bias_at(&self, p: [f64; 3]) -> f64 {
        let (u, v, w) = (p[0] / 150.0, p[1] / 100.0, p[2] / 100.0);
        (self.bias[0] * u
            + self.bias[1] * v
            + self.bias[2] * w
            + self.bias[3] * u * u
            + self.bias[4] * v * v)
            .exp()
    }
}

/// Renders a patient on a grid of voxel centres.
///
/// `centre(i, j, k)` gives the patient-frame position of a voxel centre; `step` the voxel size in
/// mm. Each voxel averages 2×2×2 sub-samples (partial volume), the image is blurred by a small
/// in-plane Gaussian PSF (σ = 0.5 voxel), and noise is added: Gaussian for CT, Rician for MRI.
pub fn render(
    patient: &Patient,
    acq: &Acquisition,
    shape: [usize; 3],
    centre: &dyn Fn(usize, usize, usize) -> [f64; 3],
    step: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let [nx, ny, nz] = shape;
    let mut clean = vec![0f64; nx * ny * nz];
    let offsets = [-0.25, 0.25];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let c = centre(i, j, k);
                let mut acc = 0.0;
                for du in offsets {
                    for dv in offsets {
                        for dw in offsets {
                            let p = [
                                c[0] + du * step[0],
                                c[1] + dv * step[1],
                                c[2] + dw * step[2],
                            ];
                            acc += mr_or_ct(patient.tissue(p), acq);
                        }
                    }
                }
                let mut value = acc / 8.0;
                if acq.contrast != Contrast::Ct {
                    value *= acq.bias_at(c);
                }
                clean[i + nx * (j + ny * k)] = value;
            }
        }
    }
    let blurred = blur_plane(&clean, shape);
    blurred
        .iter()
        .map(|&v| {
            let noisy = match acq.contrast {
                Contrast::Ct => v + acq.noise_sigma * normal(rng),
                _ => {
                    let re = v + acq.noise_sigma * normal(rng);
                    let im = acq.noise_sigma * normal(rng);
                    (re * re + im * im).sqrt() * 1000.0
                }
            };
            noisy as f32
        })
        .collect()
}

fn mr_or_ct(t: Tissue, acq: &Acquisition) -> f64 {
    match (acq.contrast, t) {
        (Contrast::Ct, Tissue::Tumour) => acq.tumour_hu,
        (Contrast::Ct, _) => ct_hu(t),
        (c, _) => mr_signal(t, c),
    }
}

/// Separable in-plane Gaussian blur, σ = 0.5 voxel, edges replicated.
fn blur_plane(data: &[f64], shape: [usize; 3]) -> Vec<f64> {
    let w = {
        let e = (-2.0f64).exp();
        let s = 1.0 + 2.0 * e;
        [e / s, 1.0 / s, e / s]
    };
    let [nx, ny, nz] = shape;
    let mut tmp = vec![0.0; data.len()];
    let mut out = vec![0.0; data.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let at = |ii: usize| data[ii + nx * (j + ny * k)];
                let (l, r) = (i.saturating_sub(1), (i + 1).min(nx - 1));
                tmp[i + nx * (j + ny * k)] = w[0] * at(l) + w[1] * at(i) + w[2] * at(r);
            }
        }
        for j in 0..ny {
            for i in 0..nx {
                let at = |jj: usize| tmp[i + nx * (jj + ny * k)];
                let (l, r) = (j.saturating_sub(1), (j + 1).min(ny - 1));
                out[i + nx * (j + ny * k)] = w[0] * at(l) + w[1] * at(j) + w[2] * at(r);
            }
        }
    }
    out
}
