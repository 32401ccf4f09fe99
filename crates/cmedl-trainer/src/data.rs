//! Data: preprocessing of volumes into normalised axial slices, the unpaired batch streams with
//! augmentation, and the prepared validation cases.

use cmedl_io::dataset::{CaseEntry, Dataset, Modality};
use cmedl_io::formats::{read_image, read_label_image};
use cmedl_io::nifti::ReadOptions;
use cmedl_io::orientation::Reorientation;
use cmedl_io::{
    centre_offset, crop_or_pad_plane_at, grid_with_spacing, resample_mask, resample_volume,
    Geometry, Interp, Mask, Volume, Window,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use crate::config::{AugmentConfig, DataConfig, LabelSet};
use crate::TrainError;

/// How a modality's intensities become [-1, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// A fixed window (CT).
    Window(Window),
    /// Per-volume percentiles (MRI).
    Percentiles([f64; 2]),
}

impl Normalization {
    /// The normalisation of a modality under `config`: CT's fixed window, MRI's percentiles.
    pub fn for_modality(modality: Modality, config: &DataConfig) -> Self {
        match modality {
            Modality::Ct => Normalization::Window(Window {
                lo: config.ct_window[0],
                hi: config.ct_window[1],
            }),
            Modality::Mr => Normalization::Percentiles(config.mr_percentiles),
        }
    }

    /// The window this normalisation uses for one volume's values.
    pub fn window(&self, values: &[f32]) -> Window {
        match self {
            Self::Window(w) => *w,
            Self::Percentiles([lo, hi]) => Window::from_percentiles(values, *lo, *hi),
        }
    }
}

/// Which part of the axial plane the network sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Field {
    /// Training: a `size × size` window centred on the body (or padding, for smaller planes).
    #[default]
    BodyCrop,
    /// Prediction: the whole plane, padded to at least `size` and to a multiple of 32, so
    /// nothing outside the training field is left out.
    WholePlane,
}

/// Normalised values above this are body (CT: above −625 HU with the default window).
const BODY_LEVEL: f32 = -0.5;

/// Resampling and cropping that turn a volume into slices of the network's size.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    /// Slice side in pixels.
    pub size: usize,
    /// In-plane spacing in mm.
    pub spacing: f64,
    /// Intensity normalisation.
    pub normalization: Normalization,
    /// Which part of the plane is kept.
    pub field: Field,
}

/// A volume in network space: normalised, resampled in-plane, cropped/padded to `size`.
#[derive(Clone, Debug)]
pub struct PreparedImage {
    /// The grid of the prepared data (a shifted, rescaled copy of the source grid).
    pub geometry: Geometry,
    /// Normalised voxels, `size × size × nz`.
    pub data: Vec<f32>,
    /// The intensity window applied (to map translated images back to units).
    pub window: Window,
    /// In-plane voxel of the resampled plane where the prepared plane starts (negative:
    /// padding), so that labels are cut the same way.
    pub offset: [i64; 2],
}

/// An in-plane box of voxels, ([i_lo, j_lo], [i_hi, j_hi]), bounds included.
type PlaneBox = ([usize; 2], [usize; 2]);

/// The in-plane bounding box of the voxels above `level` over all slices, as
/// ([i_lo, j_lo], [i_hi, j_hi]); none when no voxel is.
fn plane_box<T: Copy + PartialOrd>(data: &[T], shape: [usize; 3], level: T) -> Option<PlaneBox> {
    let [nx, ny, _] = shape;
    let mut lo = [usize::MAX; 2];
    let mut hi = [0usize; 2];
    for (n, _) in data.iter().enumerate().filter(|(_, v)| **v > level) {
        let (i, j) = (n % nx, (n / nx) % ny);
        lo = [lo[0].min(i), lo[1].min(j)];
        hi = [hi[0].max(i), hi[1].max(j)];
    }
    (lo[0] != usize::MAX).then_some((lo, hi))
}

impl Preprocessor {
    /// The source grid resampled to the in-plane spacing, z kept.
    pub fn resampled_grid(&self, source: &Geometry) -> Geometry {
        grid_with_spacing(source, [self.spacing, self.spacing, source.spacing[2]])
    }

    /// The prepared plane's size and offset for a resampled plane of `shape` whose body (the
    /// normalised voxels) is `data`; a training window also keeps the in-plane box `keep`
    /// (labelled voxels) whenever it fits.
    fn window_of(
        &self,
        shape: [usize; 3],
        data: &[f32],
        keep: Option<PlaneBox>,
    ) -> ([usize; 2], [i64; 2]) {
        let n = [shape[0], shape[1]];
        match self.field {
            Field::WholePlane => {
                let side = |a: usize| n[a].next_multiple_of(32).max(self.size);
                let size = [side(0), side(1)];
                (
                    size,
                    [centre_offset(n[0], size[0]), centre_offset(n[1], size[1])],
                )
            }
            Field::BodyCrop => {
                let size = [self.size, self.size];
                let centred = [centre_offset(n[0], size[0]), centre_offset(n[1], size[1])];
                let body = plane_box(data, shape, BODY_LEVEL);
                // Larger planes: the window centred on the body, moved as little as needed to
                // hold the labelled voxels (centred on them when they are wider than the
                // window), inside the plane.
                let at = |a: usize| {
                    if n[a] <= size[a] {
                        return centred[a];
                    }
                    let side = size[a] as i64;
                    let mut start = match body {
                        Some((lo, hi)) => (lo[a] + hi[a]) as i64 / 2 - side / 2,
                        None => centred[a],
                    };
                    if let Some((lo, hi)) = keep {
                        let (lo, hi) = (lo[a] as i64, hi[a] as i64);
                        start = if hi - lo < side {
                            start.clamp(hi + 1 - side, lo)
                        } else {
                            (lo + hi) / 2 - side / 2
                        };
                    }
                    start.clamp(0, (n[a] - size[a]) as i64)
                };
                (size, [at(0), at(1)])
            }
        }
    }

    /// Prepares an image.
    pub fn image(&self, v: &Volume) -> Result<PreparedImage, TrainError> {
        self.image_keeping(v, None)
    }

    /// Prepares an image whose training window also holds the labelled voxels of `labels`
    /// (a mask on the image's grid) whenever they fit in it.
    pub fn image_keeping(
        &self,
        v: &Volume,
        labels: Option<&Mask>,
    ) -> Result<PreparedImage, TrainError> {
        if v.non_finite() > 0 {
            return Err(TrainError::Data(format!(
                "the image has {} NaN or infinite voxels",
                v.non_finite()
            )));
        }
        let window = self.normalization.window(&v.data);
        let resampled = self.resampled_grid(&v.geometry);
        let r = resample_volume(v, &resampled, Interp::Linear)?;
        let normalised = window.apply_all(&r.data);
        let keep = match labels {
            Some(m) if self.field == Field::BodyCrop => {
                let m = resample_mask(m, &self.resampled_grid(&m.geometry))?;
                plane_box(&m.data, m.geometry.shape, 0)
            }
            _ => None,
        };
        let (size, offset) = self.window_of(resampled.shape, &normalised, keep);
        let (geometry, data) = crop_or_pad_plane_at(&resampled, &normalised, size, offset, -1.0);
        Ok(PreparedImage {
            geometry,
            data,
            window,
            offset,
        })
    }

    /// Prepares a label map onto the grid of its prepared image; also returns the labelled
    /// voxels the window leaves out.
    pub fn labels(&self, m: &Mask, image: &PreparedImage) -> Result<(Vec<u8>, usize), TrainError> {
        let resampled = self.resampled_grid(&m.geometry);
        let r = resample_mask(m, &resampled)?;
        let size = [image.geometry.shape[0], image.geometry.shape[1]];
        let (_, cut) = crop_or_pad_plane_at(&resampled, &r.data, size, image.offset, 0);
        let total = r.data.iter().filter(|&&l| l > 0).count();
        let kept = cut.iter().filter(|&&l| l > 0).count();
        Ok((cut, total - kept))
    }
}

/// A prepared case: every slice, with labels when the case has them.
#[derive(Clone, Debug)]
pub struct PreparedCase {
    /// Case id.
    pub id: String,
    /// The image.
    pub image: PreparedImage,
    /// Labels on the image's prepared grid.
    pub labels: Option<Vec<u8>>,
}

impl PreparedCase {
    /// Axial slices.
    pub fn slices(&self) -> usize {
        self.image.geometry.shape[2]
    }
}

/// Reads and prepares one case of the dataset.
pub fn prepare_case(
    ds: &Dataset,
    case: &CaseEntry,
    pre: &Preprocessor,
    labels: LabelSet,
    classes: i64,
) -> Result<PreparedCase, TrainError> {
    let opts = ReadOptions::default();
    let image_path = ds.path(&case.image);
    let img = read_image(&image_path, &opts).map_err(TrainError::from)?;
    // Slices are axial and in-plane axes in a fixed anatomical order, whatever the storage.
    let orientation = Reorientation::to_canonical(&img.geometry);
    let img = orientation.volume(&img);
    let label_file = match labels {
        LabelSet::Organs => case.organs.as_ref(),
        LabelSet::Label => case.label.as_ref(),
    };
    let mask = match label_file {
        Some(rel) => {
            let path = ds.path(rel);
            let m = read_label_image(&path, &opts)?;
            if !m.geometry.same_grid(orientation.source(), 1e-3) {
                return Err(TrainError::Data(format!(
                    "{}: label grid (shape {:?}, affine {:?}) differs from its image's ({:?}, {:?})",
                    path.display(),
                    m.geometry.shape,
                    m.geometry.affine,
                    orientation.source().shape,
                    orientation.source().affine
                )));
            }
            let m = orientation.mask(&m);
            if m.geometry.shape != img.geometry.shape {
                return Err(TrainError::Data(format!(
                    "{}: label shape {:?} differs from its image's {:?}",
                    path.display(),
                    m.geometry.shape,
                    img.geometry.shape
                )));
            }
            if let Some(&bad) = m.data.iter().find(|&&v| i64::from(v) >= classes) {
                return Err(TrainError::Data(format!(
                    "{}: label {bad} is outside the {classes} classes of data.classes",
                    path.display()
                )));
            }
            Some((path, m))
        }
        None => None,
    };
    let image = pre
        .image_keeping(&img, mask.as_ref().map(|(_, m)| m))
        .map_err(|e| e.in_file(&image_path))?;
    let labels = match mask {
        Some((path, m)) => {
            let (labels, dropped) = pre.labels(&m, &image).map_err(|e| e.in_file(&path))?;
            if dropped > 0 {
                tracing::warn!(
                    "{}: {dropped} labelled voxels lie outside the {size}×{size} training field at {spacing} mm and are left out; raise data.size or data.spacing",
                    path.display(),
                    size = pre.size,
                    spacing = pre.spacing
                );
            }
            Some(labels)
        }
        None => None,
    };
    Ok(PreparedCase {
        id: case.id.clone(),
        image,
        labels,
    })
}

/// Prepares many cases in parallel, in order.
pub fn prepare_cases(
    ds: &Dataset,
    cases: &[CaseEntry],
    pre: &Preprocessor,
    labels: LabelSet,
    classes: i64,
) -> Result<Vec<PreparedCase>, TrainError> {
    cases
        .par_iter()
        .map(|c| prepare_case(ds, c, pre, labels, classes))
        .collect()
}

/// Training slices of one modality, flattened.
#[derive(Clone, Debug, Default)]
pub struct SliceSet {
    /// Slice side.
    pub size: usize,
    /// `n × size²` normalised pixels.
    pub images: Vec<f32>,
    /// `n × size²` labels (empty when the modality has none).
    pub labels: Vec<u8>,
}

impl SliceSet {
    /// Number of slices.
    pub fn len(&self) -> usize {
        self.images.len() / (self.size * self.size).max(1)
    }

    /// Whether there is no slice.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether slices carry labels.
    pub fn labelled(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Slices with foreground, plus `empty_share` times as many of the others (seeded); every
    /// slice of unlabelled cases.
    pub fn from_cases(cases: &[PreparedCase], size: usize, empty_share: f64, seed: u64) -> Self {
        let labelled = cases.iter().all(|c| c.labels.is_some());
        let n = size * size;
        let mut set = SliceSet {
            size,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for c in cases {
            let mut keep: Vec<usize> = Vec::new();
            match (&c.labels, labelled) {
                (Some(l), true) => {
                    let (fg, bg): (Vec<usize>, Vec<usize>) = (0..c.slices())
                        .partition(|&k| l[k * n..(k + 1) * n].iter().any(|&v| v > 0));
                    let extra = ((fg.len() as f64 * empty_share).round() as usize).min(bg.len());
                    keep.extend(&fg);
                    keep.extend(bg.choose_multiple(&mut rng, extra));
                    if keep.is_empty() {
                        keep.push(c.slices() / 2);
                    }
                    keep.sort_unstable();
                }
                _ => keep.extend(0..c.slices()),
            }
            for k in keep {
                set.images
                    .extend_from_slice(&c.image.data[k * n..(k + 1) * n]);
                if labelled {
                    if let Some(l) = &c.labels {
                        set.labels.extend_from_slice(&l[k * n..(k + 1) * n]);
                    }
                }
            }
        }
        set
    }
}

/// One batch of one modality on the CPU.
pub struct Batch {
    /// Images `[B, 1, H, W]`.
    pub images: Tensor,
    /// Labels `[B, H, W]` (int64) when the modality has labels.
    pub labels: Option<Tensor>,
}

/// Seed for (master, stream, a, b): SplitMix64 of a mix, so streams never collide.
pub fn mix_seed(master: u64, stream: u64, a: u64, b: u64) -> u64 {
    let mut z = master
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ a.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ b.wrapping_mul(0x1656_67B1_9E37_79F9);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Augments one slice (flip, rotation + scaling about the centre, intensity) in place.
fn augment(
    image: &mut [f32],
    label: Option<&mut [u8]>,
    size: usize,
    cfg: &AugmentConfig,
    rng: &mut ChaCha8Rng,
) {
    let flip = rng.gen_bool(cfg.flip.clamp(0.0, 1.0));
    let angle = if cfg.rotate_deg > 0.0 {
        rng.gen_range(-cfg.rotate_deg..cfg.rotate_deg).to_radians()
    } else {
        0.0
    };
    let scale = if cfg.scale > 0.0 {
        1.0 + rng.gen_range(-cfg.scale..cfg.scale)
    } else {
        1.0
    };
    let (gain, shift) = if cfg.intensity > 0.0 {
        (
            1.0 + rng.gen_range(-cfg.intensity..cfg.intensity),
            rng.gen_range(-cfg.intensity..cfg.intensity),
        )
    } else {
        (1.0, 0.0)
    };
    if flip || angle != 0.0 || scale != 1.0 {
        let c = (size as f64 - 1.0) / 2.0;
        let (cs, sn) = (angle.cos() / scale, angle.sin() / scale);
        // Sources are copies; the warped slice is written in place.
        let src_img = image.to_vec();
        let src_lab = label.as_deref().map(<[u8]>::to_vec);
        let mut label = label;
        for j in 0..size {
            for i in 0..size {
                let (x, y) = (i as f64 - c, j as f64 - c);
                let mut sx = cs * x + sn * y + c;
                let sy = -sn * x + cs * y + c;
                if flip {
                    sx = size as f64 - 1.0 - sx;
                }
                image[i + size * j] = bilinear(&src_img, size, sx, sy, -1.0);
                if let (Some(src), Some(out)) = (&src_lab, label.as_deref_mut()) {
                    let (ni, nj) = (sx.round(), sy.round());
                    out[i + size * j] =
                        if ni >= 0.0 && nj >= 0.0 && (ni as usize) < size && (nj as usize) < size {
                            src[ni as usize + size * nj as usize]
                        } else {
                            0
                        };
                }
            }
        }
    }
    if gain != 1.0 || shift != 0.0 {
        for v in image.iter_mut() {
            *v = (*v * gain as f32 + shift as f32).clamp(-1.0, 1.0);
        }
    }
}

fn bilinear(src: &[f32], size: usize, x: f64, y: f64, fill: f32) -> f32 {
    if x < 0.0 || y < 0.0 || x > (size - 1) as f64 || y > (size - 1) as f64 {
        return fill;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let at = |i: usize, j: usize| src[i + size * j];
    (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x1, y0))
        + fy * ((1.0 - fx) * at(x0, y1) + fx * at(x1, y1))
}

/// Builds the batch of slice indices `picks`, augmenting each with its own seeded RNG.
pub fn make_batch(
    set: &SliceSet,
    picks: &[usize],
    augment_cfg: Option<&AugmentConfig>,
    seeds: &[u64],
) -> Batch {
    let n = set.size * set.size;
    let samples: Vec<(Vec<f32>, Option<Vec<u8>>)> = picks
        .par_iter()
        .zip(seeds)
        .map(|(&p, &seed)| {
            let mut img = set.images[p * n..(p + 1) * n].to_vec();
            let mut lab = set
                .labelled()
                .then(|| set.labels[p * n..(p + 1) * n].to_vec());
            if let Some(cfg) = augment_cfg {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                augment(&mut img, lab.as_deref_mut(), set.size, cfg, &mut rng);
            }
            (img, lab)
        })
        .collect();
    let b = picks.len() as i64;
    let s = set.size as i64;
    let flat: Vec<f32> = samples
        .iter()
        .flat_map(|(i, _)| i.iter().copied())
        .collect();
    let images = Tensor::from_slice(&flat).view([b, 1, s, s]);
    let labels = set.labelled().then(|| {
        let l: Vec<i64> = samples
            .iter()
            .flat_map(|(_, l)| l.iter().flatten().map(|&v| i64::from(v)))
            .collect();
        Tensor::from_slice(&l).view([b, s, s]).to_kind(Kind::Int64)
    });
    Batch { images, labels }
}

/// The unpaired batch streams: the student modality walks seeded epoch permutations, the
/// teacher modality is drawn independently; every batch is a pure function of (seed, step), so
/// a resumed run sees exactly the batches an uninterrupted one would.
pub struct Streams {
    /// Student-modality training slices.
    pub student: SliceSet,
    /// Teacher-modality training slices (empty for modes without a translator).
    pub teacher: SliceSet,
    /// Batch size.
    pub batch: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Master seed.
    pub seed: u64,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// This process's rank and the number of data-parallel processes: with `batch` slices per
    /// process, rank r takes slices `r·batch .. (r+1)·batch` of the step's global batch of
    /// `world · batch`, augmented and drawn as one process with the global batch would (1
    /// process: rank 0 of 1).
    pub shard: (usize, usize),
}

impl Streams {
    /// Student-slice indices of `step` for this rank.
    pub fn student_picks(&self, step: usize) -> Vec<usize> {
        let epoch = step / self.steps_per_epoch;
        let within = step % self.steps_per_epoch;
        let (rank, world) = (self.shard.0, self.shard.1.max(1));
        let mut order: Vec<usize> = (0..self.student.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(
            self.seed,
            1,
            epoch as u64,
            0,
        )));
        let first = (within * world + rank) * self.batch;
        (0..self.batch)
            .map(|i| order[(first + i) % order.len()])
            .collect()
    }

    /// The batches of global step `step`: (student, teacher if any).
    pub fn batches(&self, step: usize) -> (Batch, Option<Batch>) {
        let picks = self.student_picks(step);
        // Positions in the global batch: seeds do not depend on how the batch is split.
        let offset = self.shard.0 * self.batch;
        let global = |i: usize| (offset + i) as u64;
        let seeds: Vec<u64> = (0..self.batch)
            .map(|i| mix_seed(self.seed, 2, step as u64, global(i)))
            .collect();
        let student = make_batch(&self.student, &picks, Some(&self.augment), &seeds);
        let teacher = (!self.teacher.is_empty()).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(self.seed, 3, step as u64, 0));
            let picks: Vec<usize> = (0..self.batch * self.shard.1.max(1))
                .map(|_| rng.gen_range(0..self.teacher.len()))
                .skip(offset)
                .take(self.batch)
                .collect();
            let seeds: Vec<u64> = (0..self.batch)
                .map(|i| mix_seed(self.seed, 4, step as u64, global(i)))
                .collect();
            make_batch(&self.teacher, &picks, Some(&self.augment), &seeds)
        });
        (student, teacher)
    }
}

/// The dataset of a config, opened.
pub fn open_dataset(config: &DataConfig) -> Result<Dataset, TrainError> {
    Dataset::open(&config.root).map_err(TrainError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 80×80×2 CT at 2 mm: air, a 20×20 body block near the right edge (x 56..76) with a
    /// 2×2 tumour at its outer border.
    fn off_centre_case() -> (Volume, Mask) {
        let g = Geometry::axis_aligned([80, 80, 2], [2.0, 2.0, 5.0]);
        let mut data = vec![-1000.0f32; g.len()];
        let mut labels = vec![0u8; g.len()];
        for k in 0..2 {
            for j in 30..50 {
                for i in 56..76 {
                    data[g.index(i, j, k)] = 40.0;
                }
            }
            for (i, j) in [(74, 40), (75, 40), (74, 41), (75, 41)] {
                labels[g.index(i, j, k)] = 1;
            }
        }
        (
            Volume::new(g.clone(), data).unwrap(),
            Mask::new(g, labels).unwrap(),
        )
    }

    fn pre(size: usize, field: Field) -> Preprocessor {
        Preprocessor {
            size,
            spacing: 2.0,
            normalization: Normalization::Window(Window {
                lo: -1000.0,
                hi: 500.0,
            }),
            field,
        }
    }

    #[test]
    fn training_crops_follow_the_body_and_count_what_they_leave_out() {
        let (v, m) = off_centre_case();
        // A centred 48-px window (x 16..64) would cut the body and drop the tumour.
        let p = pre(48, Field::BodyCrop);
        let image = p.image(&v).unwrap();
        assert_eq!(image.geometry.shape, [48, 48, 2]);
        // Body x 56..=75 and y 30..=49, centres 65 and 39: the window starts at 65 − 24 = 41,
        // kept inside the plane (at most 80 − 48 = 32), and at 39 − 24 = 15.
        assert_eq!(image.offset, [32, 15]);
        let (labels, dropped) = p.labels(&m, &image).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(labels.iter().filter(|&&l| l > 0).count(), 8);
        // The voxels keep their world positions.
        assert_eq!(
            image.geometry.world([0.0, 0.0, 0.0]),
            v.geometry.world([32.0, 15.0, 0.0])
        );
        // A field too small for the body: what is left out is counted.
        let small = pre(16, Field::BodyCrop);
        let image = small.image(&v).unwrap();
        let (_, dropped) = small.labels(&m, &image).unwrap();
        // x 65 − 8 = 57, y 39 − 8 = 31: the window x 57..=72 leaves the tumour (x 74–75, 4
        // voxels on each of 2 slices) out.
        assert_eq!(image.offset, [57, 31]);
        assert_eq!(dropped, 8);
    }

    #[test]
    fn a_tumour_in_the_outer_part_of_a_500_mm_field_is_kept() {
        // 250 × 250 px at 2 mm (500 mm): a large patient whose body fills x 0..250 and y
        // 40..210, and a tumour at x 220..=227 (inside the outer 15 %, x ≥ 212.5) on one slice.
        let g = Geometry::axis_aligned([250, 250, 2], [2.0, 2.0, 5.0]);
        let mut data = vec![-1000.0f32; g.len()];
        let mut labels = vec![0u8; g.len()];
        for k in 0..2 {
            for j in 40..210 {
                for i in 0..250 {
                    data[g.index(i, j, k)] = 40.0;
                }
            }
        }
        for j in 120..126 {
            for i in 220..228 {
                labels[g.index(i, j, 1)] = 1;
            }
        }
        let v = Volume::new(g.clone(), data).unwrap();
        let m = Mask::new(g, labels).unwrap();
        // The shipped configurations' training field: 160 px at 2 mm (320 mm).
        let p = pre(160, Field::BodyCrop);
        // Centred on the body alone (body centres (0 + 249) / 2 = 124 and (40 + 209) / 2 = 124,
        // window x 44..204), the window would leave the tumour out.
        let body_only = p.image(&v).unwrap();
        assert_eq!(body_only.offset, [44, 44]);
        assert_eq!(p.labels(&m, &body_only).unwrap().1, 48);
        // Training windows move to hold it: x 228 − 160 = 68..228, y stays on the body.
        let image = p.image_keeping(&v, Some(&m)).unwrap();
        assert_eq!(image.offset, [68, 44]);
        let (cut, dropped) = p.labels(&m, &image).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(cut.iter().filter(|&&l| l > 0).count(), 48);
        // Prediction sees the whole 500-mm plane, tumour and all (256 px, 3 px of padding).
        let whole = pre(160, Field::WholePlane).image(&v).unwrap();
        assert_eq!(whole.geometry.shape, [256, 256, 2]);
        assert_eq!(whole.offset, [-3, -3]);
        assert!(whole.data[(227 + 3) + 256 * (123 + 3) + 256 * 256] > -0.5);
    }

    #[test]
    fn prediction_sees_the_whole_plane() {
        let (v, _) = off_centre_case();
        let image = pre(48, Field::WholePlane).image(&v).unwrap();
        // 80 → the next multiple of 32, centred: 8 voxels of padding on each side.
        assert_eq!(image.geometry.shape, [96, 96, 2]);
        assert_eq!(image.offset, [-8, -8]);
        let inside = |i: usize, j: usize| image.data[i + 96 * j];
        assert!(
            inside(75 + 8, 40 + 8) > -0.5,
            "the body at the edge is kept"
        );
        assert_eq!(inside(0, 0), -1.0, "padding is air");
        // Smaller planes are padded to the training size, as before.
        let small = Volume::new(
            Geometry::axis_aligned([20, 20, 1], [2.0, 2.0, 5.0]),
            vec![0.0; 400],
        )
        .unwrap();
        assert_eq!(
            pre(48, Field::WholePlane)
                .image(&small)
                .unwrap()
                .geometry
                .shape,
            [48, 48, 1]
        );
    }

    fn streams(n: usize, batch: usize, shard: (usize, usize)) -> Streams {
        let set = SliceSet {
            size: 4,
            images: (0..n * 16).map(|v| v as f32).collect(),
            labels: vec![0; n * 16],
        };
        let steps_per_epoch = n.div_ceil(batch * shard.1);
        Streams {
            student: set,
            teacher: SliceSet {
                size: 4,
                ..Default::default()
            },
            batch,
            steps_per_epoch,
            seed: 5,
            augment: AugmentConfig::default(),
            shard,
        }
    }

    #[test]
    fn one_epoch_visits_every_slice_once() {
        let s = streams(24, 4, (0, 1));
        let mut seen: Vec<usize> = (0..s.steps_per_epoch)
            .flat_map(|t| s.student_picks(t))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..24).collect::<Vec<_>>());
        // The next epoch is another permutation of the same slices.
        assert_ne!(s.student_picks(0), s.student_picks(s.steps_per_epoch));
    }

    #[test]
    fn two_shards_of_a_step_are_the_single_process_batch_split_in_two() {
        let mut one = streams(24, 4, (0, 1));
        let mut halves: Vec<Streams> = (0..2).map(|r| streams(24, 2, (r, 2))).collect();
        // Teacher slices too (drawn at random per step).
        let teacher = SliceSet {
            size: 4,
            images: (0..10 * 16).map(|v| -(v as f32)).collect(),
            labels: vec![0; 10 * 16],
        };
        one.teacher = teacher.clone();
        for h in &mut halves {
            h.teacher = teacher.clone();
        }
        assert_eq!(one.steps_per_epoch, halves[0].steps_per_epoch);
        for step in [0, 3, 7] {
            let (s, t) = one.batches(step);
            let parts: Vec<(Batch, Option<Batch>)> =
                halves.iter().map(|h| h.batches(step)).collect();
            let joined = Tensor::cat(&[&parts[0].0.images, &parts[1].0.images], 0);
            assert!(joined.equal(&s.images), "student images of step {step}");
            let joined = Tensor::cat(
                &[
                    &parts[0].1.as_ref().unwrap().images,
                    &parts[1].1.as_ref().unwrap().images,
                ],
                0,
            );
            assert!(
                joined.equal(&t.unwrap().images),
                "teacher images of step {step}"
            );
        }
    }

    #[test]
    fn data_parallel_shards_are_disjoint_and_cover_the_epoch() {
        let ranks: Vec<Streams> = (0..3).map(|r| streams(24, 2, (r, 3))).collect();
        assert_eq!(ranks[0].steps_per_epoch, 4);
        let mut all = Vec::new();
        for step in 0..4 {
            for r in &ranks {
                all.extend(r.student_picks(step));
            }
        }
        all.sort_unstable();
        assert_eq!(all, (0..24).collect::<Vec<_>>());
    }

    #[test]
    fn batches_are_a_function_of_the_step() {
        let s = streams(10, 3, (0, 1));
        let (a, _) = s.batches(7);
        let (b, _) = s.batches(7);
        assert!(a.images.equal(&b.images));
        assert!(a.labels.unwrap().equal(&b.labels.unwrap()));
    }
}
