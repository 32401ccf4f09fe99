//! The anatomy of one simulated patient: a continuous tissue map of the thorax in mm.
//!
//! Patient frame: `u` lateral (+ towards the patient's left), `v` anterior, `w` superior, origin
//! near the centre of the chest. Every structure varies smoothly along `w`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Tissue classes of the model, each with its own imaging properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tissue {
    /// Outside the body.
    Air,
    /// Subcutaneous and mediastinal fat.
    Fat,
    /// Skeletal muscle of the chest wall.
    Muscle,
    /// Lung parenchyma.
    Lung,
    /// Pulmonary vessels (flowing blood).
    Vessel,
    /// Heart (myocardium and blood pool).
    Heart,
    /// Aorta (flowing blood).
    Aorta,
    /// Oesophagus wall.
    Oesophagus,
    /// Trachea lumen (air).
    Trachea,
    /// Vertebral cancellous bone and marrow.
    Marrow,
    /// Cortical bone (vertebral shell, ribs).
    Bone,
    /// Tumour.
    Tumour,
    /// The necrotic core of a tumour (part of the tumour label).
    Necrosis,
}

/// Where a tumour sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TumourKind {
    /// Surrounded by lung parenchyma.
    Parenchymal,
    /// Touching the heart / mediastinum (hard to see on CT).
    Mediastinal,
    /// Attached to the chest wall.
    ChestWall,
}

impl TumourKind {
    /// All kinds.
    pub const ALL: [TumourKind; 3] = [Self::Parenchymal, Self::Mediastinal, Self::ChestWall];

    /// Name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parenchymal => "parenchymal",
            Self::Mediastinal => "mediastinal",
            Self::ChestWall => "chest-wall",
        }
    }
}

/// One lobulated tumour.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tumour {
    /// Location kind.
    pub kind: TumourKind,
    /// Centre (u, v, w) in mm.
    pub centre: [f64; 3],
    /// Mean radius in mm.
    pub radius: f64,
    /// Lobulation terms: (amplitude, frequency in azimuth, frequency in elevation, phase).
    pub lobes: Vec<(f64, f64, f64, f64)>,
    /// Radius of a necrotic core as a share of `radius` (0: none).
    #[serde(default)]
    pub core: f64,
}

impl Tumour {
    /// The tissue at a point inside the tumour: its necrotic core, or tumour.
    pub fn tissue_at(&self, p: [f64; 3]) -> Tissue {
        let d2: f64 = (0..3).map(|a| (p[a] - self.centre[a]).powi(2)).sum();
        if self.core > 0.0 && d2 < (self.core * self.radius).powi(2) {
            Tissue::Necrosis
        } else {
            Tissue::Tumour
        }
    }

    /// Whether a point is inside the tumour surface.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        let d = [
            p[0] - self.centre[0],
            p[1] - self.centre[1],
            p[2] - self.centre[2],
        ];
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let reach = self.radius * 1.5;
        if r2 > reach * reach {
            return false;
        }
        let r = r2.sqrt();
        if r < self.radius * 0.55 {
            return true;
        }
        let az = d[1].atan2(d[0]);
        let el = (d[2] / r.max(1e-9)).asin();
        let mut scale = 1.0;
        for &(a, fa, fe, ph) in &self.lobes {
            scale += a * (fa * az + ph).sin() * (fe * el + 0.7 * ph).cos();
        }
        r <= self.radius * scale
    }
}

/// A vessel segment (a capsule) of the pulmonary tree.
#[derive(Clone, Debug)]
struct Segment {
    a: [f64; 3],
    b: [f64; 3],
    radius: f64,
    lo: [f64; 3],
    hi: [f64; 3],
}

impl Segment {
    fn new(a: [f64; 3], b: [f64; 3], radius: f64) -> Self {
        let mut lo = [0.0; 3];
        let mut hi = [0.0; 3];
        for i in 0..3 {
            lo[i] = a[i].min(b[i]) - radius;
            hi[i] = a[i].max(b[i]) + radius;
        }
        Self {
            a,
            b,
            radius,
            lo,
            hi,
        }
    }

    fn contains(&self, p: [f64; 3]) -> bool {
        if (0..3).any(|i| p[i] < self.lo[i] || p[i] > self.hi[i]) {
            return false;
        }
        let ab = [
            self.b[0] - self.a[0],
            self.b[1] - self.a[1],
            self.b[2] - self.a[2],
        ];
        let ap = [p[0] - self.a[0], p[1] - self.a[1], p[2] - self.a[2]];
        let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        let t = if len2 > 0.0 {
            ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= self.radius * self.radius
    }
}

/// Shares of tumour location kinds (normalised when used).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocationShares {
    /// Share of intra-parenchymal tumours.
    pub parenchymal: f64,
    /// Share of mediastinum-abutting tumours.
    pub mediastinal: f64,
    /// Share of chest-wall tumours.
    pub chest_wall: f64,
}

impl Default for LocationShares {
    fn default() -> Self {
        Self {
            parenchymal: 0.4,
            mediastinal: 0.35,
            chest_wall: 0.25,
        }
    }
}

/// One simulated patient.
#[derive(Clone, Debug)]
pub struct Patient {
    /// Body semi-axes (lateral, AP) in mm at w = 0.
    pub body: [f64; 2],
    /// Subcutaneous fat thickness in mm.
    pub fat: f64,
    /// Chest-wall muscle thickness in mm.
    pub muscle: f64,
    /// Lung centre offset from the midline, semi-axes (lateral, AP), in mm.
    pub lung: [f64; 3],
    /// Diaphragm height (lung base) in mm.
    pub diaphragm: f64,
    /// Heart centre (u, v), semi-axes (u, v) in mm, and its top in w.
    pub heart: [f64; 5],
    /// Tumours.
    pub tumours: Vec<Tumour>,
    vessels: Vec<Segment>,
    rib_phase: f64,
    /// Half the covered extent along w, in mm.
    pub half_height: f64,
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    rng.gen_range(lo..hi)
}

impl Patient {
    /// Draws a patient; `half_height` is half the z extent that will be imaged.
    pub fn generate(rng: &mut ChaCha8Rng, half_height: f64, shares: &LocationShares) -> Self {
        let body = [uniform(rng, 130.0, 152.0), uniform(rng, 92.0, 112.0)];
        let fat = uniform(rng, 6.0, 18.0);
        let muscle = uniform(rng, 8.0, 13.0);
        let inner = [body[0] - fat - muscle, body[1] - fat - muscle];
        let lung = [
            inner[0] * uniform(rng, 0.50, 0.54),
            inner[0] * uniform(rng, 0.44, 0.49),
            inner[1] * uniform(rng, 0.80, 0.92),
        ];
        let heart = [
            uniform(rng, 8.0, 18.0),
            uniform(rng, 5.0, 15.0),
            uniform(rng, 40.0, 52.0),
            uniform(rng, 36.0, 44.0),
            half_height * uniform(rng, 0.1, 0.4),
        ];
        let mut p = Patient {
            body,
            fat,
            muscle,
            lung,
            diaphragm: -half_height * uniform(rng, 1.0, 1.3),
            heart,
            tumours: Vec::new(),
            vessels: Vec::new(),
            rib_phase: uniform(rng, 0.0, 25.0),
            half_height,
        };
        for side in [-1.0, 1.0] {
            let root = [
                side * (p.heart[2] * 0.8 + 5.0),
                p.heart[1] - 5.0,
                uniform(rng, -10.0, 20.0),
            ];
            p.grow_vessels(rng, root, [side, 0.0, 0.0], 5.0, 38.0, 4);
        }
        let n = rng.gen_range(1..=3);
        let total = shares.parenchymal + shares.mediastinal + shares.chest_wall;
        for _ in 0..n {
            let x = uniform(rng, 0.0, total.max(1e-9));
            let kind = if x < shares.parenchymal {
                TumourKind::Parenchymal
            } else if x < shares.parenchymal + shares.mediastinal {
                TumourKind::Mediastinal
            } else {
                TumourKind::ChestWall
            };
            if let Some(t) = p.place_tumour(rng, kind) {
                p.tumours.push(t);
            }
        }
        p
    }

    fn grow_vessels(
        &mut self,
        rng: &mut ChaCha8Rng,
        start: [f64; 3],
        dir: [f64; 3],
        radius: f64,
        length: f64,
        depth: u32,
    ) {
        let jitter = |rng: &mut ChaCha8Rng| {
            [
                uniform(rng, -0.6, 0.6),
                uniform(rng, -0.6, 0.6),
                uniform(rng, -0.8, 0.8),
            ]
        };
        let j = jitter(rng);
        let mut d = [dir[0] + j[0], dir[1] + j[1], dir[2] + j[2]];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-9);
        d = d.map(|v| v / n);
        let end = [
            start[0] + d[0] * length,
            start[1] + d[1] * length,
            start[2] + d[2] * length,
        ];
        self.vessels.push(Segment::new(start, end, radius));
        if depth > 0 {
            for _ in 0..2 {
                self.grow_vessels(rng, end, d, radius * 0.7, length * 0.75, depth - 1);
            }
        }
    }

    /// Scale of the axial cross-section of the lungs at height w (0 outside the lungs).
    fn lung_scale(&self, w: f64) -> f64 {
        let top = self.half_height * 1.6;
        if w <= self.diaphragm || w >= top {
            return 0.0;
        }
        // Apex tapers like a dome; the base is cut by the domed diaphragm.
        let t = (top - w) / (top - self.diaphragm);
        (t * (2.0 - t)).sqrt().clamp(0.0, 1.0) * (1.0 - 0.25 * t)
    }

    fn in_lung_shape(&self, u: f64, v: f64, w: f64) -> bool {
        let s = self.lung_scale(w);
        if s <= 0.0 {
            return false;
        }
        let side = if u < 0.0 { -1.0 } else { 1.0 };
        let du = (u - side * self.lung[0]) / (self.lung[1] * s);
        let dv = (v + 5.0) / (self.lung[2] * s.sqrt());
        du * du + dv * dv <= 1.0
    }

    fn in_heart(&self, u: f64, v: f64, w: f64) -> bool {
        let h = &self.heart;
        if w > h[4] {
            return false;
        }
        // The heart narrows towards its top and rests on the diaphragm.
        let t = ((h[4] - w) / 40.0).clamp(0.0, 1.0).sqrt().max(0.25);
        let du = (u - h[0]) / (h[2] * t);
        let dv = (v - h[1]) / (h[3] * t);
        du * du + dv * dv <= 1.0
    }

    fn cavity(&self, w: f64) -> [f64; 2] {
        let s = 1.0 + 0.04 * (w / 60.0).sin();
        [
            (self.body[0] - self.fat - self.muscle) * s,
            (self.body[1] - self.fat - self.muscle) * s,
        ]
    }

    fn in_cavity(&self, u: f64, v: f64, w: f64) -> bool {
        let c = self.cavity(w);
        (u / c[0]).powi(2) + (v / c[1]).powi(2) <= 1.0
    }

    fn place_tumour(&self, rng: &mut ChaCha8Rng, kind: TumourKind) -> Option<Tumour> {
        let lobes: Vec<(f64, f64, f64, f64)> = (0..3)
            .map(|_| {
                (
                    uniform(rng, 0.06, 0.16),
                    f64::from(rng.gen_range(2..6)),
                    f64::from(rng.gen_range(1..4)),
                    uniform(rng, 0.0, std::f64::consts::TAU),
                )
            })
            .collect();
        for _ in 0..200 {
            let radius = match kind {
                TumourKind::Mediastinal => uniform(rng, 8.0, 25.0),
                _ => uniform(rng, 5.0, 30.0),
            };
            let margin = (radius * 0.6).min(self.half_height * 0.8);
            let w = uniform(rng, -self.half_height + margin, self.half_height - margin);
            let side: f64 = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            let centre = match kind {
                TumourKind::Parenchymal => {
                    let u = side
                        * uniform(
                            rng,
                            self.lung[0] - self.lung[1] * 0.6,
                            self.lung[0] + self.lung[1] * 0.6,
                        );
                    [u, uniform(rng, -self.lung[2] * 0.5, self.lung[2] * 0.5), w]
                }
                TumourKind::Mediastinal => {
                    // On the heart's lateral border, mostly in the lung, overlapping the heart.
                    if w > self.heart[4] - 10.0 {
                        continue;
                    }
                    let ang: f64 = uniform(rng, -0.6, 0.6)
                        + if side > 0.0 {
                            0.0
                        } else {
                            std::f64::consts::PI
                        };
                    let t = ((self.heart[4] - w) / 40.0)
                        .clamp(0.0, 1.0)
                        .sqrt()
                        .max(0.25);
                    let (hu, hv) = (
                        self.heart[0] + self.heart[2] * t * ang.cos(),
                        self.heart[1] + self.heart[3] * t * ang.sin(),
                    );
                    [
                        hu + ang.cos() * radius * 0.35,
                        hv + ang.sin() * radius * 0.35,
                        w,
                    ]
                }
                TumourKind::ChestWall => {
                    let c = self.cavity(w);
                    let ang = uniform(rng, -1.2, 1.2)
                        + if side > 0.0 {
                            0.0
                        } else {
                            std::f64::consts::PI
                        };
                    let rim = [c[0] * ang.cos(), c[1] * ang.sin()];
                    let n = (rim[0] * rim[0] + rim[1] * rim[1]).sqrt();
                    [
                        rim[0] - rim[0] / n * radius * 0.6,
                        rim[1] - rim[1] / n * radius * 0.6,
                        w,
                    ]
                }
            };
            let ok = match kind {
                TumourKind::Parenchymal => {
                    // Lung all around: probe the sphere's extreme points.
                    let r = radius * 1.3 + 4.0;
                    [
                        [r, 0.0, 0.0],
                        [-r, 0.0, 0.0],
                        [0.0, r, 0.0],
                        [0.0, -r, 0.0],
                        [0.0, 0.0, r * 0.5],
                        [0.0, 0.0, -r * 0.5],
                    ]
                    .iter()
                    .all(|o| {
                        let p = [centre[0] + o[0], centre[1] + o[1], centre[2] + o[2]];
                        self.in_lung_shape(p[0], p[1], p[2]) && !self.in_heart(p[0], p[1], p[2])
                    })
                }
                TumourKind::Mediastinal => {
                    self.in_lung_shape(centre[0], centre[1], centre[2])
                        || self.in_heart(centre[0], centre[1], centre[2])
                }
                TumourKind::ChestWall => self.in_lung_shape(centre[0], centre[1], centre[2]),
            };
            if ok {
                return Some(Tumour {
                    core: 0.0,
                    kind,
                    centre,
                    radius,
                    lobes: lobes.clone(),
                });
            }
        }
        None
    }

    /// Index of the tumour at `p` (inside the thoracic cavity), if any.
    pub fn tumour_at(&self, p: [f64; 3]) -> Option<usize> {
        if !self.in_cavity(p[0], p[1], p[2]) {
            return None;
        }
        self.tumours.iter().position(|t| t.contains(p))
    }

    /// The tissue at a point.
    pub fn tissue(&self, p: [f64; 3]) -> Tissue {
        let [u, v, w] = p;
        let s = 1.0 + 0.04 * (w / 60.0).sin();
        let (bu, bv) = (self.body[0] * s, self.body[1] * s);
        let r_body = (u / bu).powi(2) + (v / bv).powi(2);
        if r_body > 1.0 {
            return Tissue::Air;
        }
        if let Some(t) = self.tumour_at(p) {
            return self.tumours[t].tissue_at(p);
        }
        // Spine: vertebral body behind the mediastinum, reaching into the posterior wall.
        let c = self.cavity(w);
        let spine_v = -c[1] + 12.0;
        let ds = (u * u + (v - spine_v).powi(2)).sqrt();
        if ds < 17.0 {
            return if ds > 14.0 {
                Tissue::Bone
            } else {
                Tissue::Marrow
            };
        }
        let r_fat = (u / (bu - self.fat)).powi(2) + (v / (bv - self.fat)).powi(2);
        if r_fat > 1.0 {
            return Tissue::Fat;
        }
        let r_cav = (u / c[0]).powi(2) + (v / c[1]).powi(2);
        if r_cav > 1.0 {
            // Ribs: oblique bands of the chest wall, on its inner half.
            let ang = v.atan2(u);
            let band = (w + self.rib_phase + 8.0 * ang.sin()).rem_euclid(24.0);
            if band < 7.0 && r_cav < 1.18 && ang.sin() > -0.8 {
                return Tissue::Bone;
            }
            return Tissue::Muscle;
        }
        if self.in_heart(u, v, w) {
            return Tissue::Heart;
        }
        // Descending aorta left of the spine; ascending aorta above the heart.
        let dav = ((u - 18.0).powi(2) + (v - (spine_v + 26.0)).powi(2)).sqrt();
        if dav < 12.0 {
            return Tissue::Aorta;
        }
        if w > self.heart[4] && ((u - 5.0).powi(2) + (v - self.heart[1]).powi(2)).sqrt() < 14.0 {
            return Tissue::Aorta;
        }
        let doe = ((u + 4.0).powi(2) + (v - (spine_v + 24.0)).powi(2)).sqrt();
        if doe < 8.0 {
            return if doe < 2.5 {
                Tissue::Trachea
            } else {
                Tissue::Oesophagus
            };
        }
        if w > self.heart[4] - 10.0 {
            let dt = ((u + 2.0).powi(2) + (v - (spine_v + 48.0)).powi(2)).sqrt();
            if dt < 10.0 {
                return if dt < 8.0 {
                    Tissue::Trachea
                } else {
                    Tissue::Muscle
                };
            }
        }
        if self.in_lung_shape(u, v, w) {
            if self.vessels.iter().any(|s| s.contains(p)) {
                return Tissue::Vessel;
            }
            return Tissue::Lung;
        }
        // The rest of the mediastinum: fat below the heart top, soft tissue around the vessels.
        Tissue::Fat
    }
}
