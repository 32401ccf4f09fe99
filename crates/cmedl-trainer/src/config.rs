//! The training configuration: a JSON file with documented defaults, plus `--set` overrides.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use cmedl_io::dataset::Modality;
use cmedl_losses::{DistillSpec, GanMode, PatchNceConfig, SegLossConfig};
use cmedl_models::{PatchGanConfig, ResnetGeneratorConfig, SegmenterConfig};

use crate::device::DeviceSpec;
use crate::TrainError;

/// What is trained and what runs at test time.
#[derive(
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The student alone, on the student modality.
    CtOnly,
    /// Translator, teacher and student trained together with distillation (CMEDL).
    #[default]
    Cmedl,
    /// As `cmedl` with the distillation weight forced to 0.
    CmedlNoDistill,
    /// Translator and teacher; at test time the teacher segments the translated image.
    PmriOnly,
    /// Translator and a two-channel segmenter on [image, translated image].
    #[serde(rename = "ct+pmri")]
    CtPlusPmri,
}

impl Mode {
    /// Name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::CtOnly => "ct-only",
            Self::Cmedl => "cmedl",
            Self::CmedlNoDistill => "cmedl-no-distill",
            Self::PmriOnly => "pmri-only",
            Self::CtPlusPmri => "ct+pmri",
        }
    }

    /// Whether the mode uses the image-to-image translator.
    pub fn uses_translator(self) -> bool {
        !matches!(self, Self::CtOnly)
    }

    /// Whether the mode has a teacher network.
    pub fn uses_teacher(self) -> bool {
        matches!(self, Self::Cmedl | Self::CmedlNoDistill | Self::PmriOnly)
    }

    /// Whether the mode has a student network.
    pub fn uses_student(self) -> bool {
        !matches!(self, Self::PmriOnly)
    }
}

/// Which modality teaches which (the paper's three settings).
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TeacherSetting {
    /// MRI teacher, CT student: modalities `mr` → `ct`.
    #[default]
    Informative,
    /// CT teacher, MRI student: `ct` → `mr`.
    Weak,
    /// MRI teacher of another contrast, MRI student: `mr-t1` → `mr`.
    Equal,
}

/// The dataset modalities of a run: the student learns from the teacher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModalityPair {
    /// The modality the student segments (and the one evaluated).
    pub student: &'static str,
    /// The modality the teacher segments (translated from the student's).
    pub teacher: &'static str,
}

impl TeacherSetting {
    /// The student and teacher modality names in the dataset.
    pub fn modalities(self) -> ModalityPair {
        let (student, teacher) = match self {
            Self::Informative => ("ct", "mr"),
            Self::Weak => ("mr", "ct"),
            Self::Equal => ("mr", "mr-t1"),
        };
        ModalityPair { student, teacher }
    }

    /// The kind of the student modality (which fixes its intensity normalisation).
    pub fn student_kind(self) -> Modality {
        match self {
            Self::Informative => Modality::Ct,
            Self::Weak | Self::Equal => Modality::Mr,
        }
    }
}

/// Arithmetic precision of training.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    Fp32,
    /// bf16 autocast for the training forward passes (weights, gradients and optimiser state
    /// stay fp32; validation and prediction run in fp32).
    Bf16,
}

/// Which label maps of the dataset a run trains on.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LabelSet {
    /// The tumour label maps (`label` of each case).
    #[default]
    Label,
    /// The multi-organ label maps (`organs` of each case).
    Organs,
}

impl LabelSet {
    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Label => "label",
            Self::Organs => "organs",
        }
    }
}

/// The image-to-image translator.
#[derive(
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum I2iKind {
    /// Two generators and two discriminators with cycle consistency.
    #[default]
    Cyclegan,
    /// One generator and one discriminator with PatchNCE (contrastive unpaired translation).
    Cut,
}

/// Networks.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The translator kind.
    pub i2i: I2iKind,
    /// Generators (both directions share this configuration).
    pub generator: ResnetGeneratorConfig,
    /// Discriminators.
    pub discriminator: PatchGanConfig,
    /// Teacher and student segmenter (the student of `ct+pmri` gets two input channels).
    pub segmenter: SegmenterConfig,
    /// Layers of the generator's encoder used by PatchNCE (CUT); empty: the generator's
    /// default taps ([`ResnetGeneratorConfig::default_nce_layers`]).
    pub nce_layers: Vec<String>,
    /// Output size of CUT's projection head.
    pub nce_dim: i64,
}

impl ModelConfig {
    /// The PatchNCE layers in effect: the configured ones, else the generator's default taps.
    pub fn nce_layers(&self) -> Vec<String> {
        if self.nce_layers.is_empty() {
            self.generator.default_nce_layers()
        } else {
            self.nce_layers.clone()
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            i2i: I2iKind::Cyclegan,
            generator: ResnetGeneratorConfig::default(),
            discriminator: PatchGanConfig::default(),
            segmenter: SegmenterConfig::default(),
            nce_layers: Vec::new(),
            nce_dim: 256,
        }
    }
}

/// Loss terms and their weights.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Adversarial objective.
    pub gan: GanMode,
    /// Weight of the adversarial terms.
    pub adversarial: f64,
    /// λ_cyc, per direction.
    pub cycle: f64,
    /// Identity weight as a fraction of λ_cyc (0.5 in CycleGAN).
    pub identity: f64,
    /// Weight of PatchNCE (CUT).
    pub nce: f64,
    /// PatchNCE settings.
    pub patch_nce: PatchNceConfig,
    /// Segmentation loss of teacher and student.
    pub segmentation: SegLossConfig,
    /// Weight of the teacher's segmentation loss.
    pub teacher: f64,
    /// Weight of the student's segmentation loss.
    pub student: f64,
    /// Let the teacher's loss on translated images flow into the translator.
    pub teacher_to_generator: bool,
    /// Train the teacher on real teacher-modality images when they have labels.
    pub teacher_on_real: bool,
    /// Keep the teacher's batch-norm running statistics apart for real teacher-modality images
    /// and for translations (which are what the teacher sees in distillation and at test time).
    pub teacher_domain_bn: bool,
    /// Structure discriminator (PSIGAN's joint image–segmentation matching): the
    /// teacher-modality discriminator sees each image together with the teacher's tumour
    /// probability on it, so a translation that loses or invents tumour is told apart from a
    /// real image. The translator gets the gradient through the teacher (whose weights this
    /// term leaves alone). Modes with a translator and a teacher.
    pub structure: bool,
    /// The distillation term (its weight is λ_d).
    pub distill: DistillSpec,
    /// Images kept by each discriminator's pool (0 disables it).
    pub pool_size: usize,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            gan: GanMode::Lsgan,
            adversarial: 1.0,
            cycle: 10.0,
            identity: 0.5,
            nce: 1.0,
            patch_nce: PatchNceConfig::default(),
            segmentation: SegLossConfig::default(),
            teacher: 1.0,
            student: 1.0,
            teacher_to_generator: true,
            teacher_on_real: true,
            teacher_domain_bn: false,
            structure: false,
            distill: DistillSpec::default(),
            pool_size: 50,
        }
    }
}

/// Augmentation of training slices.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Probability of a left-right flip.
    pub flip: f64,
    /// Maximum rotation in degrees (uniform in ±).
    pub rotate_deg: f64,
    /// Maximum relative scaling (uniform in 1 ± this).
    pub scale: f64,
    /// Maximum intensity scaling and shift in normalised units (uniform in ±).
    pub intensity: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip: 0.5,
            rotate_deg: 10.0,
            scale: 0.1,
            intensity: 0.05,
        }
    }
}

/// Data and preprocessing.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset folder holding `dataset.json`.
    pub root: PathBuf,
    /// Which label maps to train on: `label` (tumour) or `organs`.
    pub labels: LabelSet,
    /// Classes, background included.
    pub classes: i64,
    /// Slice side in pixels after resampling and crop/pad.
    pub size: usize,
    /// In-plane spacing in mm slices are resampled to.
    pub spacing: f64,
    /// CT window [lo, hi] in HU mapped to [-1, 1].
    pub ct_window: [f32; 2],
    /// MRI percentiles [lo, hi] mapped to [-1, 1].
    pub mr_percentiles: [f64; 2],
    /// Share of tumour-free slices kept for training, relative to the slices with foreground.
    pub empty_share: f64,
    /// The same share for labelled teacher-modality images (unlabelled ones keep every slice).
    pub teacher_empty_share: f64,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// Student-modality training cases to use (0: all).
    pub max_cases: usize,
    /// Cross-validation: train on all folds of the training cases but one and validate on that
    /// one (instead of the dataset's validation split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold: Option<Fold>,
}

/// One fold of a k-fold split of the training cases: case n (in the dataset's order) belongs to
/// fold `n % count`.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fold {
    /// Number of folds.
    pub count: usize,
    /// The held-out fold (0-based).
    pub index: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::new(),
            labels: LabelSet::Label,
            classes: 2,
            size: 256,
            spacing: 1.25,
            ct_window: [-1000.0, 500.0],
            mr_percentiles: [0.5, 99.5],
            empty_share: 0.25,
            teacher_empty_share: 1.0,
            augment: AugmentConfig::default(),
            max_cases: 0,
            fold: None,
        }
    }
}

/// Optimisation schedule.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Epochs (an epoch is one pass over the student's training slices).
    pub epochs: usize,
    /// Epochs of linear decay to 0 at the end (none: half of `epochs`).
    pub decay_epochs: Option<usize>,
    /// Slices per batch (each modality).
    pub batch: usize,
    /// Learning rate of the translators and discriminators (and of the segmenters unless
    /// `seg_lr` is set).
    pub lr: f64,
    /// Learning rate of the teacher and student segmenters (none: `lr`).
    pub seg_lr: Option<f64>,
    /// Adam betas (of the translators and discriminators, and of the segmenters unless
    /// `seg_betas` is set).
    pub betas: [f64; 2],
    /// Adam betas of the teacher and student segmenters (none: `betas`).
    pub seg_betas: Option<[f64; 2]>,
    /// Decoupled weight decay (AdamW); 0 is Adam.
    pub weight_decay: f64,
    /// Save `latest` every this many steps (and at each epoch end).
    pub checkpoint_every: usize,
    /// Read losses back and log every this many steps.
    pub log_every: usize,
    /// Cap on steps per epoch (0: one pass over the training slices).
    pub max_steps_per_epoch: usize,
    /// The first epochs of `epochs` in which the translator and its discriminators train
    /// alone: the segmenters (and the distillation warm-up) start after them, in every mode
    /// alike, so that arms with and without a translator train their segmenters on the same
    /// epochs and learning rates.
    pub translator_epochs: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            decay_epochs: None,
            batch: 8,
            lr: 2e-4,
            seg_lr: None,
            betas: [0.5, 0.999],
            seg_betas: None,
            weight_decay: 0.0,
            checkpoint_every: 500,
            log_every: 10,
            max_steps_per_epoch: 0,
            translator_epochs: 0,
        }
    }
}

/// Everything a run needs.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// What is trained.
    pub mode: Mode,
    /// Which modality teaches which.
    pub teacher: TeacherSetting,
    /// Networks.
    pub model: ModelConfig,
    /// Losses.
    pub loss: LossConfig,
    /// Data.
    pub data: DataConfig,
    /// Schedule.
    pub train: ScheduleConfig,
    /// Master seed of initialisation, sampling and augmentation.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
    /// `fp32`, or `bf16` autocast for training.
    pub precision: Precision,
    /// Convolution weights in channels-last (NHWC) layout, which the CPU (oneDNN) and GPU
    /// (cuDNN) kernels run faster; `false` keeps PyTorch's default NCHW layout.
    pub channels_last: bool,
    /// Threads for data preparation (0: all cores).
    pub workers: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Cmedl,
            teacher: TeacherSetting::Informative,
            model: ModelConfig::default(),
            loss: LossConfig::default(),
            data: DataConfig::default(),
            train: ScheduleConfig::default(),
            seed: 0,
            device: DeviceSpec::Auto,
            precision: Precision::Fp32,
            channels_last: true,
            workers: 0,
        }
    }
}

impl TrainConfig {
    /// Parses a config from JSON text (`source` names it in errors); unknown fields are errors.
    pub fn from_json(text: &str, source: &str) -> Result<Self, TrainError> {
        serde_json::from_str(text).map_err(|e| TrainError::Config(format!("{source}: {e}")))
    }

    /// Applies `section.key=value` overrides; values are JSON, or strings when not valid JSON.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self, TrainError> {
        let mut tree = serde_json::to_value(self).map_err(|e| TrainError::Config(e.to_string()))?;
        for o in overrides {
            let (key, value) = o.split_once('=').ok_or_else(|| {
                TrainError::Config(format!("--set '{o}': expected section.key=value"))
            })?;
            let value: serde_json::Value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
            let mut node = &mut tree;
            let parts: Vec<&str> = key.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let obj = node.as_object_mut().ok_or_else(|| {
                    TrainError::Config(format!(
                        "--set '{o}': '{}' is not a section",
                        parts[..i].join(".")
                    ))
                })?;
                if i + 1 == parts.len() {
                    if !obj.contains_key(*part) {
                        return Err(TrainError::Config(format!(
                            "--set '{o}': unknown key '{key}'"
                        )));
                    }
                    obj.insert((*part).to_owned(), value.clone());
                    break;
                }
                node = obj.get_mut(*part).ok_or_else(|| {
                    TrainError::Config(format!(
                        "--set '{o}': unknown section '{}'",
                        parts[..=i].join(".")
                    ))
                })?;
            }
        }
        serde_json::from_value(tree)
            .map_err(|e| TrainError::Config(format!("after --set overrides: {e}")))
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.train.batch == 0 || self.train.epochs == 0 {
            return bad("train.batch and train.epochs must be at least 1".into());
        }
        if self.train.translator_epochs >= self.train.epochs {
            return bad(format!(
                "train.translator_epochs ({}) must be below train.epochs ({}): the segmenters need epochs after them",
                self.train.translator_epochs, self.train.epochs
            ));
        }
        if !(self.train.lr.is_finite() && self.train.lr > 0.0) {
            return bad(format!("train.lr must be positive, got {}", self.train.lr));
        }
        if let Some(s) = self.train.seg_lr.filter(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!("train.seg_lr must be positive, got {s}"));
        }
        if self.data.size < 16 || !(self.data.spacing.is_finite() && self.data.spacing > 0.0) {
            return bad(format!(
                "data.size must be ≥ 16 and data.spacing positive; got {} and {}",
                self.data.size, self.data.spacing
            ));
        }
        if self.data.classes < 2 {
            return bad(format!(
                "data.classes must be at least 2, got {}",
                self.data.classes
            ));
        }
        if self.mode.uses_translator() && !self.data.size.is_multiple_of(4) {
            return bad(format!(
                "data.size {} must be a multiple of 4 for the translator",
                self.data.size
            ));
        }
        self.validate_ranges()?;
        if let Some(f) = self.data.fold.filter(|f| f.count < 2 || f.index >= f.count) {
            return bad(format!(
                "data.fold: fold {} of {} (need at least 2 folds and 0 ≤ index < count)",
                f.index, f.count
            ));
        }
        if self.data.root.as_os_str().is_empty() {
            return bad("data.root is empty: set it in the config or with --data DIR".into());
        }
        Ok(())
    }

    /// Ranges and orderings of values a network, loss or preprocessing step would otherwise
    /// fail on later (inside libtorch, or as a silent NaN).
    fn validate_ranges(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        let [lo, hi] = self.data.ct_window;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return bad(format!(
                "data.ct_window must be [lo, hi] with lo < hi, got [{lo}, {hi}]"
            ));
        }
        let [plo, phi] = self.data.mr_percentiles;
        if !(0.0 <= plo && plo < phi && phi <= 100.0) {
            return bad(format!(
                "data.mr_percentiles must be [lo, hi] with 0 ≤ lo < hi ≤ 100, got [{plo}, {phi}]"
            ));
        }
        for (name, v) in [
            ("data.empty_share", self.data.empty_share),
            ("data.teacher_empty_share", self.data.teacher_empty_share),
            ("loss.adversarial", self.loss.adversarial),
            ("loss.cycle", self.loss.cycle),
            ("loss.identity", self.loss.identity),
            ("loss.nce", self.loss.nce),
            ("loss.teacher", self.loss.teacher),
            ("loss.student", self.loss.student),
            ("loss.distill.weight", self.loss.distill.weight),
            ("train.weight_decay", self.train.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number ≥ 0, got {v}"));
            }
        }
        for (name, v) in [
            ("model.generator.ngf", self.model.generator.ngf),
            ("model.discriminator.ndf", self.model.discriminator.ndf),
            ("model.nce_dim", self.model.nce_dim),
        ] {
            if v < 1 {
                return bad(format!("{name} must be at least 1, got {v}"));
            }
        }
        if let SegmenterConfig::Unet(u) = &self.model.segmenter {
            if u.base < 1 || u.depth < 1 {
                return bad(format!(
                    "model.segmenter: a U-Net needs base ≥ 1 and depth ≥ 1, got base {} and depth {}",
                    u.base, u.depth
                ));
            }
        }
        if let Some(b) = self
            .train
            .seg_betas
            .filter(|b| b.iter().any(|v| !(0.0..1.0).contains(v)))
        {
            return bad(format!("train.seg_betas must lie in [0, 1), got {b:?}"));
        }
        if self.train.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad(format!(
                "train.betas must lie in [0, 1), got {:?}",
                self.train.betas
            ));
        }
        Ok(())
    }

    /// The distillation weight in effect (0 for `cmedl-no-distill`).
    pub fn distill_weight(&self) -> f64 {
        match self.mode {
            Mode::Cmedl => self.loss.distill.weight,
            _ => 0.0,
        }
    }

    /// The distillation spec in effect: weight per mode, and when no features are listed, the
    /// segmenter's default taps ([`SegmenterConfig::default_distill_features`]).
    pub fn distill_spec(&self) -> DistillSpec {
        let mut spec = self.loss.distill.clone();
        spec.weight = self.distill_weight();
        if spec.features.is_empty() {
            spec.features = self.model.segmenter.default_distill_features();
        }
        spec
    }

    /// Whether the segmenters train in (0-based) `epoch` (not during `train.translator_epochs`).
    pub fn segmenters_train_in(&self, epoch: usize) -> bool {
        epoch >= self.train.translator_epochs
    }

    /// Whether the teacher-modality discriminator is a structure discriminator in this mode.
    pub fn structure_discriminator(&self) -> bool {
        self.loss.structure && self.mode.uses_translator() && self.mode.uses_teacher()
    }

    /// Ratio of the segmenters' learning rate to `lr` (both follow the same schedule).
    pub fn seg_lr_factor(&self) -> f64 {
        self.train.seg_lr.map_or(1.0, |s| s / self.train.lr)
    }

    /// Epochs of linear decay.
    pub fn decay_epochs(&self) -> usize {
        self.train
            .decay_epochs
            .unwrap_or(self.train.epochs / 2)
            .min(self.train.epochs)
    }

    /// Learning rate at (0-based) `epoch`: constant, then linear decay to 0.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let decay = self.decay_epochs();
        let start = self.train.epochs - decay;
        if epoch < start || decay == 0 {
            self.train.lr
        } else {
            self.train.lr * (1.0 - (epoch - start + 1) as f64 / (decay + 1) as f64)
        }
    }
}
