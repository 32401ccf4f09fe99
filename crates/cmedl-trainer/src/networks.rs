//! The networks of a mode, each in its own variable store, and the path used at test time.

use std::collections::HashSet;

use cmedl_models::{PatchGan, PatchGanConfig, ProjectionHead, ResnetGenerator, SegNet, SegOutput};
use tch::{nn, Device, Tensor};

use crate::config::{I2iKind, Mode, TrainConfig};
use crate::TrainError;

/// A network with its own variable store.
pub struct Net<T> {
    /// Its variables.
    pub vs: nn::VarStore,
    /// The module.
    pub net: T,
}

/// All networks a mode trains. Names follow the student → teacher direction: `g_s2t` is
/// `G_ct2mr` in the informative setting.
pub struct Networks {
    /// Translator student modality → teacher modality.
    pub g_s2t: Option<Net<ResnetGenerator>>,
    /// Translator teacher modality → student modality (CycleGAN).
    pub g_t2s: Option<Net<ResnetGenerator>>,
    /// Discriminator of teacher-modality images.
    pub d_t: Option<Net<PatchGan>>,
    /// Discriminator of student-modality images (CycleGAN).
    pub d_s: Option<Net<PatchGan>>,
    /// PatchNCE projection head (CUT).
    pub head: Option<Net<ProjectionHead>>,
    /// Teacher segmenter.
    pub teacher: Option<Net<Box<dyn SegNet>>>,
    /// Student segmenter (two input channels in `ct+pmri`).
    pub student: Option<Net<Box<dyn SegNet>>>,
    /// 1×1 convolutions on the student's distilled maps (`loss.distill.adaptor`).
    pub adaptor: Option<Net<HintAdaptor>>,
    /// The teacher's batch-norm running statistics for real teacher-modality images
    /// (`loss.teacher_domain_bn`); the teacher's own store keeps those of translations.
    pub teacher_real_bn: Option<nn::VarStore>,
    /// The mode they serve.
    pub mode: Mode,
    /// The variables no optimiser updates (batch-norm running statistics), found once.
    buffers: Vec<Tensor>,
}

/// FitNets' regressor: a 1×1 convolution per distilled student map, started as the identity so
/// that it changes nothing until it learns.
#[derive(Debug)]
pub struct HintAdaptor {
    convs: Vec<(String, nn::Conv2D)>,
}

impl HintAdaptor {
    /// One identity-initialised 1×1 convolution per (feature name, channels).
    pub fn new(p: &nn::Path<'_>, taps: &[(String, i64)]) -> Self {
        let convs = taps
            .iter()
            .map(|(name, c)| {
                let conv = nn::conv2d(p / name.as_str(), *c, *c, 1, Default::default());
                tch::no_grad(|| {
                    let eye = Tensor::eye(*c, (tch::Kind::Float, p.device())).view([*c, *c, 1, 1]);
                    conv.ws.shallow_clone().copy_(&eye);
                    if let Some(b) = &conv.bs {
                        let _ = b.shallow_clone().zero_();
                    }
                });
                (name.clone(), conv)
            })
            .collect();
        Self { convs }
    }

    /// The student's output with its distilled maps passed through their convolutions.
    pub fn apply(&self, out: &SegOutput) -> SegOutput {
        let mut features: std::collections::BTreeMap<String, Tensor> = out
            .features
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        for (name, conv) in &self.convs {
            if let Some(f) = out.features.get(name) {
                features.insert(name.clone(), f.apply(conv));
            }
        }
        SegOutput {
            logits: out.logits.shallow_clone(),
            features,
        }
    }
}

/// The adaptor of the student's distilled maps, their channels read off one forward pass.
fn hint_adaptor(
    config: &TrainConfig,
    student: &Net<Box<dyn SegNet>>,
    device: Device,
) -> Result<Net<HintAdaptor>, TrainError> {
    let side = config.data.size as i64;
    let x = Tensor::zeros(
        [1, student.net.in_channels(), side, side],
        (tch::Kind::Float, device),
    );
    let out = tch::no_grad(|| student.net.forward_t(&x, false))?;
    let taps = config
        .distill_spec()
        .features
        .iter()
        .filter(|name| *name != "logits")
        .map(|name| {
            let f = out.features.get(name).ok_or_else(|| {
                TrainError::Config(format!(
                    "loss.distill.features: the student has no '{name}'"
                ))
            })?;
            Ok((name.clone(), f.size()[1]))
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    let vs = nn::VarStore::new(device);
    let net = HintAdaptor::new(&vs.root(), &taps);
    Ok(Net { vs, net })
}

/// The seed of network `name`'s initial weights: its own stream of the master seed, so that a
/// network starts from the same weights in every mode, whatever else the mode builds.
pub fn init_seed(seed: u64, name: &str) -> i64 {
    // FNV-1a of the name: stable across platforms and releases (unlike std's hasher).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    crate::data::mix_seed(seed, 7, hash, 0) as i64
}

/// Seeds libtorch's generator with network `name`'s stream, then builds it.
fn seeded<T>(seed: u64, name: &str, build: impl FnOnce() -> T) -> T {
    tch::manual_seed(init_seed(seed, name));
    build()
}

/// The optional parts: the teacher's real-image statistics and the student's hint adaptor.
fn extras(
    config: &TrainConfig,
    teacher: &Option<Net<Box<dyn SegNet>>>,
    student: &Option<Net<Box<dyn SegNet>>>,
    device: Device,
) -> Result<(Option<nn::VarStore>, Option<Net<HintAdaptor>>), TrainError> {
    let real_bn = match teacher {
        Some(t) if config.loss.teacher_domain_bn => Some(bn_copy(&t.vs, device)),
        _ => None,
    };
    let adaptor = match (student, config.distill_weight() > 0.0) {
        (Some(s), true) if config.loss.distill.adaptor => Some(hint_adaptor(config, s, device)?),
        _ => None,
    };
    Ok((real_bn, adaptor))
}

/// Whether a variable is a batch-norm running statistic.
fn is_bn_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// A store holding a copy of `teacher`'s batch-norm running statistics, under the same names.
fn bn_copy(teacher: &nn::VarStore, device: Device) -> nn::VarStore {
    let vs = nn::VarStore::new(device);
    let mut stats: Vec<(String, Tensor)> = teacher
        .variables()
        .into_iter()
        .filter(|(n, _)| is_bn_stat(n))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in stats {
        let parts: Vec<&str> = name.split('.').collect();
        let (last, dirs) = parts.split_last().unwrap_or((&"", &[]));
        let path = dirs.iter().fold(vs.root(), |p, d| p / *d);
        let mut copy = path.zeros_no_train(last, &t.size());
        tch::no_grad(|| copy.copy_(&t));
    }
    vs
}

/// Exchanges the values of the teacher's batch-norm statistics with those in `other`.
fn swap_bn(teacher: &nn::VarStore, other: &nn::VarStore) {
    let theirs = other.variables();
    tch::no_grad(|| {
        for (name, mut mine) in teacher
            .variables()
            .into_iter()
            .filter(|(n, _)| is_bn_stat(n))
        {
            if let Some(t) = theirs.get(&name) {
                let held = mine.copy();
                mine.copy_(t);
                t.shallow_clone().copy_(&held);
            }
        }
    });
}

/// CUT's projection head over the generator's PatchNCE layers.
fn projection_head(
    config: &TrainConfig,
    g: &ResnetGenerator,
    device: Device,
) -> Result<Net<ProjectionHead>, TrainError> {
    let layers = config
        .model
        .nce_layers()
        .iter()
        .map(|l| g.encoder_layer_channels(l).map(|c| (l.clone(), c)))
        .collect::<Result<Vec<_>, _>>()?;
    let vs = nn::VarStore::new(device);
    let init = config.model.generator.init;
    let net = ProjectionHead::new(&vs.root(), &layers, config.model.nce_dim, init);
    Ok(Net { vs, net })
}

impl Networks {
    /// Builds the networks of `config.mode` on `device`, each initialised from its own stream
    /// of `config.seed` ([`init_seed`]): the same network starts equal in every mode.
    pub fn build(config: &TrainConfig, device: Device) -> Result<Self, TrainError> {
        let seed = config.seed;
        if device.is_cuda() {
            // Training and tiled prediction run fixed shapes: cuDNN's per-shape autotuning pays
            // after the first step (the PyTorch reference of the benchmark enables it too).
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let mode = config.mode;
        let classes = config.data.classes;
        let gen_cfg = config.model.generator.clone();
        let translator = mode.uses_translator();
        let cyclegan = translator && config.model.i2i == I2iKind::Cyclegan;
        let cut = translator && config.model.i2i == I2iKind::Cut;
        let gen = |on: bool, name: &str| -> Option<Net<ResnetGenerator>> {
            on.then(|| {
                seeded(seed, name, || {
                    let vs = nn::VarStore::new(device);
                    let net = ResnetGenerator::new(&vs.root(), gen_cfg.clone());
                    Net { vs, net }
                })
            })
        };
        let disc = |on: bool, name: &str, in_channels: i64| -> Option<Net<PatchGan>> {
            on.then(|| {
                seeded(seed, name, || {
                    let vs = nn::VarStore::new(device);
                    let net = PatchGan::new(
                        &vs.root(),
                        PatchGanConfig {
                            in_channels,
                            ..config.model.discriminator.clone()
                        },
                    );
                    Net { vs, net }
                })
            })
        };
        let g_s2t = gen(translator, "g_s2t");
        let g_t2s = gen(cyclegan, "g_t2s");
        // A structure discriminator sees the image and the teacher's tumour probability.
        let d_t_channels = if config.structure_discriminator() {
            2
        } else {
            1
        };
        let d_t = disc(translator, "d_t", d_t_channels);
        let d_s = disc(cyclegan, "d_s", 1);
        let head = match (&g_s2t, cut) {
            (Some(g), true) => Some(seeded(seed, "head", || {
                projection_head(config, &g.net, device)
            })?),
            _ => None,
        };
        let seg = |channels: i64, name: &str| -> Result<Net<Box<dyn SegNet>>, TrainError> {
            seeded(seed, name, || {
                let vs = nn::VarStore::new(device);
                let cfg = config
                    .model
                    .segmenter
                    .with_in_channels(channels)
                    .with_classes(classes);
                let net = cfg.build(&vs.root())?;
                Ok(Net { vs, net })
            })
        };
        let teacher = if mode.uses_teacher() {
            Some(seg(1, "teacher")?)
        } else {
            None
        };
        let student = match mode {
            Mode::PmriOnly => None,
            Mode::CtPlusPmri => Some(seg(2, "student")?),
            _ => Some(seg(1, "student")?),
        };
        let (teacher_real_bn, adaptor) = extras(config, &teacher, &student, device)?;
        let mut nets = Self {
            g_s2t,
            g_t2s,
            d_t,
            d_s,
            head,
            teacher,
            student,
            adaptor,
            teacher_real_bn,
            mode,
            buffers: Vec::new(),
        };
        if config.channels_last {
            for (_, vs) in nets.stores() {
                to_channels_last(vs);
            }
        }
        // After the layout change, which may give variables new storage; loading and
        // broadcasting copy into them in place, so these handles stay the networks' own.
        nets.buffers = nets
            .stores()
            .into_iter()
            .flat_map(|(_, vs)| {
                let trainable: HashSet<usize> = vs
                    .trainable_variables()
                    .iter()
                    .map(|t| t.data_ptr() as usize)
                    .collect();
                vs.variables()
                    .into_values()
                    .filter(move |t| !trainable.contains(&(t.data_ptr() as usize)))
            })
            .collect();
        Ok(nets)
    }

    /// Copies of the variables no optimiser updates (batch-norm running statistics).
    pub fn buffers_snapshot(&self) -> Vec<Tensor> {
        self.buffers.iter().map(|t| t.detach().copy()).collect()
    }

    /// Puts back the values of a [`Networks::buffers_snapshot`].
    pub fn restore_buffers(&self, snapshot: &[Tensor]) {
        tch::no_grad(|| {
            for (target, saved) in self.buffers.iter().zip(snapshot) {
                target.shallow_clone().copy_(saved);
            }
        });
    }

    /// Every network with its checkpoint name.
    pub fn stores(&self) -> Vec<(&'static str, &nn::VarStore)> {
        let mut out: Vec<(&'static str, &nn::VarStore)> = Vec::new();
        if let Some(n) = &self.g_s2t {
            out.push(("g_s2t", &n.vs));
        }
        if let Some(n) = &self.g_t2s {
            out.push(("g_t2s", &n.vs));
        }
        if let Some(n) = &self.d_t {
            out.push(("d_t", &n.vs));
        }
        if let Some(n) = &self.d_s {
            out.push(("d_s", &n.vs));
        }
        if let Some(n) = &self.head {
            out.push(("head", &n.vs));
        }
        if let Some(n) = &self.teacher {
            out.push(("teacher", &n.vs));
        }
        if let Some(n) = &self.student {
            out.push(("student", &n.vs));
        }
        if let Some(n) = &self.adaptor {
            out.push(("adaptor", &n.vs));
        }
        if let Some(vs) = &self.teacher_real_bn {
            out.push(("teacher_real_bn", vs));
        }
        out
    }

    /// Named trainable parameters of the translators and the projection head.
    pub fn translator_side(&self) -> Vec<(String, Tensor)> {
        self.named_params(&["g_s2t", "g_t2s", "head"])
    }

    /// Named trainable parameters of the segmenters.
    pub fn segmenter_side(&self) -> Vec<(String, Tensor)> {
        self.named_params(&["teacher", "student", "adaptor"])
    }

    /// Named trainable parameters of the discriminators.
    pub fn discriminator_side(&self) -> Vec<(String, Tensor)> {
        self.named_params(&["d_t", "d_s"])
    }

    fn named_params(&self, names: &[&str]) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, vs) in self.stores() {
            if !names.contains(&name) {
                continue;
            }
            let mut vars: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(vars.into_iter().map(|(k, t)| (format!("{name}.{k}"), t)));
        }
        out
    }

    /// The segmentation the mode runs at test time, on a batch `[B, 1, H, W]` in [-1, 1].
    pub fn segment(&self, x: &Tensor, train: bool) -> Result<SegOutput, TrainError> {
        let missing = |what: &str| {
            TrainError::Checkpoint(format!("mode {} needs a {what} network", self.mode.name()))
        };
        Ok(match self.mode {
            Mode::PmriOnly => {
                let g = self.g_s2t.as_ref().ok_or_else(|| missing("translator"))?;
                let t = self.teacher.as_ref().ok_or_else(|| missing("teacher"))?;
                t.net.forward_t(&g.net.forward_t(x, train)?, train)?
            }
            Mode::CtPlusPmri => {
                let g = self.g_s2t.as_ref().ok_or_else(|| missing("translator"))?;
                let s = self.student.as_ref().ok_or_else(|| missing("student"))?;
                let both = Tensor::cat(&[x.shallow_clone(), g.net.forward_t(x, train)?], 1);
                s.net.forward_t(&both, train)?
            }
            _ => self
                .student
                .as_ref()
                .ok_or_else(|| missing("student"))?
                .net
                .forward_t(x, train)?,
        })
    }

    /// The teacher on the translation of student-modality images `x` (evaluation mode, with
    /// the statistics of translations: its own, also when `loss.teacher_domain_bn` keeps the
    /// real images' apart).
    pub fn teacher_on_translation(&self, x: &Tensor) -> Result<SegOutput, TrainError> {
        let g = self
            .g_s2t
            .as_ref()
            .ok_or_else(|| self.missing("translator"))?;
        let t = self
            .teacher
            .as_ref()
            .ok_or_else(|| self.missing("teacher"))?;
        Ok(t.net.forward_t(&g.net.forward_t(x, false)?, false)?)
    }

    /// The teacher on teacher-modality images `x` (evaluation mode, with the statistics of
    /// real images when they are kept apart).
    pub fn teacher_on(&self, x: &Tensor) -> Result<SegOutput, TrainError> {
        self.teacher_on_real(x, false)
    }

    /// The teacher on real teacher-modality images `x`. With `loss.teacher_domain_bn` its
    /// batch-norm statistics are those of real images: in evaluation mode they are swapped in
    /// for the call only; in training mode they stay swapped in until
    /// [`Networks::end_real_teacher_pass`], after the backward pass (the graph holds them).
    pub fn teacher_on_real(&self, x: &Tensor, train: bool) -> Result<SegOutput, TrainError> {
        let t = self
            .teacher
            .as_ref()
            .ok_or_else(|| self.missing("teacher"))?;
        let Some(real) = &self.teacher_real_bn else {
            return Ok(t.net.forward_t(x, train)?);
        };
        swap_bn(&t.vs, real);
        let out = t.net.forward_t(x, train);
        if !train || out.is_err() {
            swap_bn(&t.vs, real);
        }
        Ok(out?)
    }

    /// Puts the teacher's own statistics back after a training pass on real images (a no-op
    /// without `loss.teacher_domain_bn`).
    pub fn end_real_teacher_pass(&self) {
        if let (Some(t), Some(real)) = (&self.teacher, &self.teacher_real_bn) {
            swap_bn(&t.vs, real);
        }
    }

    fn missing(&self, what: &str) -> TrainError {
        TrainError::Checkpoint(format!("mode {} needs a {what} network", self.mode.name()))
    }

    /// Parameter counts per network.
    pub fn parameter_counts(&self) -> Vec<(&'static str, i64)> {
        self.stores()
            .into_iter()
            .map(|(n, vs)| (n, cmedl_models::parameter_count(vs)))
            .collect()
    }
}

/// `t` (a 4-D tensor) copied into channels-last (NHWC) strides; other tensors as they are.
pub fn channels_last(t: &Tensor) -> Tensor {
    let size = t.size();
    let [n, c, h, w] = size[..] else {
        return t.shallow_clone();
    };
    let out = Tensor::empty_strided(
        [n, c, h, w],
        [h * w * c, 1, w * c, c],
        (t.kind(), t.device()),
    );
    tch::no_grad(|| out.shallow_clone().copy_(t));
    out
}

/// Moves every 4-D variable (convolution weight) of `vs` to channels-last layout in place: the
/// modules holding it see the new layout, values and gradients are unchanged.
pub fn to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                let cl = channels_last(&var);
                var.set_data(&cl);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::testing::{store, tiny_config};
    use tch::Kind;

    fn tiny(channels_last: bool) -> TrainConfig {
        TrainConfig {
            channels_last,
            ..tiny_config()
        }
    }

    #[test]
    fn channels_last_changes_the_layout_not_the_values() {
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let t = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).reshape([2, 3, 4, 5]);
        let cl = channels_last(&t);
        assert_eq!(cl.stride(), vec![60, 1, 15, 3]);
        assert!(cl.equal(&t));
        let a = Networks::build(&tiny(false), Device::Cpu).unwrap();
        let b = Networks::build(&tiny(true), Device::Cpu).unwrap();
        // Same weights (the global seed is shared with tests running in parallel).
        for name in ["student", "g_s2t"] {
            let from = store(&a, name).variables();
            tch::no_grad(|| {
                for (k, mut to) in store(&b, name).variables() {
                    to.copy_(&from[&k]);
                }
            });
        }
        let weights = b.stores()[0].1.variables();
        let conv = weights.values().find(|w| w.dim() == 4).unwrap();
        let s = conv.size();
        assert_eq!(
            conv.stride(),
            vec![s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]]
        );
        let x = Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu));
        let (sa, sb) = (a.student.as_ref().unwrap(), b.student.as_ref().unwrap());
        let ya = sa.net.forward_t(&x, false).unwrap().logits;
        let yb = sb.net.forward_t(&x, false).unwrap().logits;
        let diff = (ya - yb).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "outputs differ by {diff}");
        let ga = a.g_s2t.as_ref().unwrap().net.forward_t(&x, false).unwrap();
        let gb = b.g_s2t.as_ref().unwrap().net.forward_t(&x, false).unwrap();
        assert!((ga - gb).abs().max().double_value(&[]) < 1e-5);
    }

    fn same_weights(a: &Networks, b: &Networks, name: &str) -> bool {
        let (va, vb) = (store(a, name).variables(), store(b, name).variables());
        va.len() == vb.len()
            && va
                .iter()
                .all(|(k, t)| vb.get(k).is_some_and(|u| t.equal(u)))
    }

    #[test]
    fn every_mode_starts_a_network_from_the_same_weights() {
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let build = |mode: Mode, i2i: I2iKind| {
            let mut c = tiny(false);
            c.mode = mode;
            c.model.i2i = i2i;
            Networks::build(&c, Device::Cpu).unwrap()
        };
        let ct_only = build(Mode::CtOnly, I2iKind::Cyclegan);
        let cmedl = build(Mode::Cmedl, I2iKind::Cyclegan);
        let no_distill = build(Mode::CmedlNoDistill, I2iKind::Cyclegan);
        let pmri_only = build(Mode::PmriOnly, I2iKind::Cyclegan);
        let cut = build(Mode::Cmedl, I2iKind::Cut);
        // The student at step 0 is the same in every mode with one input channel.
        assert!(same_weights(&ct_only, &cmedl, "student"));
        assert!(same_weights(&ct_only, &no_distill, "student"));
        assert!(same_weights(&ct_only, &cut, "student"));
        // A mode's extra networks do not shift another network's draws.
        assert!(same_weights(&cmedl, &pmri_only, "teacher"));
        assert!(same_weights(&cmedl, &cut, "g_s2t"));
        assert!(same_weights(&cmedl, &pmri_only, "d_t"));
        // Different networks and seeds draw differently.
        let (t, s) = (
            store(&cmedl, "teacher").variables(),
            store(&cmedl, "student").variables(),
        );
        assert!(t.iter().any(|(k, w)| w.dim() == 4 && !w.equal(&s[k])));
        let mut other = tiny(false);
        other.seed = 1;
        let seed1 = Networks::build(&other, Device::Cpu).unwrap();
        assert!(!same_weights(&cmedl, &seed1, "student"));
        assert_ne!(init_seed(0, "student"), init_seed(0, "teacher"));
    }

    #[test]
    fn the_hint_adaptor_starts_as_the_identity() {
        // Building a convolution draws its initial weights from the global generator.
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let vs = nn::VarStore::new(Device::Cpu);
        let adaptor = HintAdaptor::new(&vs.root(), &[("dec2".to_owned(), 3)]);
        let f = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, Device::Cpu)).view([2, 3, 2, 2]);
        let out = SegOutput {
            logits: f.shallow_clone(),
            features: [
                ("dec2".to_owned(), f.shallow_clone()),
                ("dec1".to_owned(), f.shallow_clone()),
            ]
            .into(),
        };
        let adapted = adaptor.apply(&out);
        assert!(adapted.features["dec2"].allclose(&f, 1e-6, 1e-6, false));
        assert!(adapted.features["dec1"].equal(&f));
        assert_eq!(
            vs.variables().len(),
            2,
            "weight and bias of one 1×1 convolution"
        );
    }

    #[test]
    fn the_teachers_real_image_statistics_are_kept_apart() {
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = tiny(false);
        c.mode = Mode::Cmedl;
        c.loss.teacher_domain_bn = true;
        let nets = Networks::build(&c, Device::Cpu).unwrap();
        let stats = |vs: &nn::VarStore| -> Vec<(String, Tensor)> {
            let mut v: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(n, _)| is_bn_stat(n))
                .map(|(n, t)| (n, t.copy()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let teacher = &nets.teacher.as_ref().unwrap().vs;
        let real = nets.teacher_real_bn.as_ref().unwrap();
        let (t0, r0) = (stats(teacher), stats(real));
        assert!(!t0.is_empty());
        let names = |v: &[(String, Tensor)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&t0), names(&r0));
        // A training pass on real images moves only the real-image statistics.
        let x = Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        nets.teacher_on_real(&x, true).unwrap();
        nets.end_real_teacher_pass();
        let (t1, r1) = (stats(teacher), stats(real));
        assert!(t0.iter().zip(&t1).all(|(a, b)| a.1.equal(&b.1)));
        assert!(r0.iter().zip(&r1).any(|(a, b)| !a.1.equal(&b.1)));
        // A pass of the teacher itself (translations) moves only its own.
        nets.teacher
            .as_ref()
            .unwrap()
            .net
            .forward_t(&x, true)
            .unwrap();
        let (t2, r2) = (stats(teacher), stats(real));
        assert!(t1.iter().zip(&t2).any(|(a, b)| !a.1.equal(&b.1)));
        assert!(r1.iter().zip(&r2).all(|(a, b)| a.1.equal(&b.1)));
        assert!(nets.stores().iter().any(|(n, _)| *n == "teacher_real_bn"));
    }

    #[test]
    fn the_teacher_on_translations_uses_the_statistics_of_translations() {
        let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = tiny(false);
        c.mode = Mode::Cmedl;
        c.loss.teacher_domain_bn = true;
        let nets = Networks::build(&c, Device::Cpu).unwrap();
        // Real images far from the translations: their statistics move far from the teacher's.
        let real = Tensor::rand([4, 1, 16, 16], (Kind::Float, Device::Cpu)) * 50.0 + 20.0;
        for _ in 0..5 {
            nets.teacher_on_real(&real, true).unwrap();
            nets.end_real_teacher_pass();
        }
        let x = Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let translated = nets
            .g_s2t
            .as_ref()
            .unwrap()
            .net
            .forward_t(&x, false)
            .unwrap();
        let own = nets
            .teacher
            .as_ref()
            .unwrap()
            .net
            .forward_t(&translated, false)
            .unwrap()
            .logits;
        let with_real = nets.teacher_on(&translated).unwrap().logits;
        assert!(
            !own.allclose(&with_real, 1e-4, 1e-4, false),
            "the two sets of statistics differ"
        );
        let got = nets.teacher_on_translation(&x).unwrap().logits;
        assert!(
            got.equal(&own),
            "translations are segmented with their own statistics"
        );
    }
}
