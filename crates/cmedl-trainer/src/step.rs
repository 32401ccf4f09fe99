//! One training step of every mode: the generator/segmenter side, then the discriminators.

use cmedl_losses::{cycle_loss, dice_ce, distill, identity_loss, patch_nce, ImagePool};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::config::{I2iKind, Mode, Precision, TrainConfig};
use crate::networks::{Net, Networks};
use crate::optim::Adam;
use crate::TrainError;

/// The optimisers and image pools a run carries from step to step.
pub struct TrainState {
    /// Translators and projection head.
    pub g_opt: Adam,
    /// Teacher and student segmenters.
    pub s_opt: Adam,
    /// Discriminators.
    pub d_opt: Option<Adam>,
    /// Pool of translated teacher-modality images for `d_t`.
    pub pool_t: ImagePool,
    /// Pool of translated student-modality images for `d_s`.
    pub pool_s: ImagePool,
}

impl TrainState {
    /// Fresh Adam optimisers for the networks' sides (discriminators only where the mode has
    /// them) and empty image pools, as `config` sets them.
    pub fn new(nets: &Networks, config: &TrainConfig) -> Self {
        let adam = |vars| Adam::new(vars, config.train.betas, config.train.weight_decay);
        let seg_betas = config.train.seg_betas.unwrap_or(config.train.betas);
        let discriminators = nets.discriminator_side();
        Self {
            g_opt: adam(nets.translator_side()),
            s_opt: Adam::new(nets.segmenter_side(), seg_betas, config.train.weight_decay),
            d_opt: (!discriminators.is_empty()).then(|| adam(discriminators)),
            pool_t: ImagePool::new(config.loss.pool_size, config.seed ^ 0x7001),
            pool_s: ImagePool::new(config.loss.pool_size, config.seed ^ 0x7002),
        }
    }
}

/// Named loss terms of a step (detached scalars on the device).
pub type Terms = Vec<(&'static str, Tensor)>;

/// Named loss values of a step, read back to the host.
pub type Losses = Vec<(&'static str, f64)>;

/// The module of a network the mode needs, or an error naming what is missing.
fn need<'a, T>(net: &'a Option<Net<T>>, what: &str) -> Result<&'a T, TrainError> {
    net.as_ref()
        .map(|n| &n.net)
        .ok_or_else(|| TrainError::Config(format!("missing {what}")))
}

/// The batches and schedule of one training step.
pub struct StepInputs<'a> {
    /// Student-modality images `[B, 1, H, W]`.
    pub student: &'a Tensor,
    /// Their labels `[B, H, W]`.
    pub student_labels: &'a Tensor,
    /// Teacher-modality images (modes with a translator).
    pub teacher: Option<&'a Tensor>,
    /// Their labels, when the teacher trains on real labelled images.
    pub teacher_labels: Option<&'a Tensor>,
    /// Learning rate of the step.
    pub lr: f64,
    /// 0-based global step (seeds the step's sampling).
    pub step: usize,
    /// Share of λ_d in effect (warm-up ramp and teacher gate; 1: the configured weight).
    pub distill_scale: f64,
    /// Whether the segmenters train in this step (not in `train.translator_epochs`).
    pub segmenters: bool,
    /// The data-parallel group whose ranks average gradients and loss terms (none: alone).
    pub sync: Option<&'a cmedl_dist::ProcessGroup>,
}

impl StepInputs<'_> {
    fn teacher(&self) -> Result<&Tensor, TrainError> {
        self.teacher
            .ok_or_else(|| TrainError::Data("this mode needs teacher-modality images".into()))
    }
}

/// The loss terms of the generator/segmenter side as they are built, and their sum.
#[derive(Default)]
struct Objective {
    terms: Terms,
    total: Option<Tensor>,
}

impl Objective {
    fn add(&mut self, name: &'static str, t: Tensor) {
        self.terms.push((name, t.detach()));
        self.total = Some(match self.total.take() {
            Some(a) => a + t,
            None => t,
        });
    }

    /// A term whose part `done` was already backpropagated: logged whole, only `graph` joins
    /// the total.
    fn add_partly_done(&mut self, name: &'static str, graph: Tensor, done: Tensor) {
        self.terms.push((name, graph.detach() + done));
        self.total = Some(match self.total.take() {
            Some(a) => a + graph,
            None => graph,
        });
    }
}

/// Translations of the step's batches: teacher-modality from student (always), and
/// student-modality from teacher (CycleGAN).
struct Translations {
    to_teacher: Tensor,
    to_student: Option<Tensor>,
}

/// Runs one step of the configured mode, updating every network; returns the loss terms read
/// back to the host.
///
/// The terms and gradient sums are read once per step, after both backward passes are queued
/// and before any update: on a GPU the host waits only while the backward passes finish.
pub fn train_step(
    nets: &mut Networks,
    state: &mut TrainState,
    config: &TrainConfig,
    inputs: &StepInputs<'_>,
) -> Result<Losses, TrainError> {
    let mut objective = Objective::default();
    // Batch-norm statistics move in every training forward pass; kept to be put back if the
    // step is skipped.
    let buffers = nets.buffers_snapshot();
    // Cleared first: a term may be backpropagated before the total (teacher_domain_bn).
    state.g_opt.zero_grad();
    state.s_opt.zero_grad();
    // Discriminators do not learn from the generator side's loss.
    for d in [&mut nets.d_t, &mut nets.d_s].into_iter().flatten() {
        d.vs.freeze();
    }
    // The structure term reaches the translator through the teacher, not the teacher itself.
    let structure = config.structure_discriminator();
    if let Some(t) = nets.teacher.as_mut().filter(|_| structure) {
        t.vs.freeze();
    }
    let translations = if config.mode.uses_translator() {
        Some(
            mixed(config, inputs, || {
                translator_terms(nets, config, inputs, &mut objective)
            })
            .and_then(|r| r),
        )
    } else {
        None
    };
    if let Some(t) = nets.teacher.as_mut().filter(|_| structure) {
        t.vs.unfreeze();
    }
    let translations = translations.transpose()?;
    if inputs.segmenters {
        mixed(config, inputs, || {
            segmentation_terms(
                nets,
                config,
                inputs,
                translations.as_ref().map(|t| &t.to_teacher),
                &mut objective,
            )
        })??;
    }
    let total = objective
        .total
        .ok_or_else(|| TrainError::Config("the mode has no loss term".into()))?;
    total.backward();
    for d in [&mut nets.d_t, &mut nets.d_s].into_iter().flatten() {
        d.vs.unfreeze();
    }
    // The discriminators' pass needs only this step's translations (detached), so it runs
    // before any update; the pools it draws from are put back if the step is skipped.
    let pools = (state.pool_t.snapshot(), state.pool_s.snapshot());
    let disc = match &translations {
        Some(t) => mixed(config, inputs, || {
            discriminator_pass(nets, state, config, inputs, t)
        })??,
        None => Vec::new(),
    };
    let (n_gen, n_disc) = (objective.terms.len(), disc.len());
    let mut checked: Terms = objective
        .terms
        .iter()
        .chain(&disc)
        .map(|(n, t)| (*n, t.shallow_clone()))
        .collect();
    // Data-parallel: every rank's gradients and loss terms become their mean over the ranks
    // (one allreduce), so all ranks update alike and agree on skipping.
    if let Some(group) = inputs.sync {
        let params: Vec<&Tensor> = [Some(&state.g_opt), Some(&state.s_opt), state.d_opt.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(Adam::params)
            .collect();
        let mut terms: Vec<Tensor> = checked.iter().map(|(_, t)| t.shallow_clone()).collect();
        crate::parallel::average(group, &params, &mut terms)?;
        for ((_, t), averaged) in checked.iter_mut().zip(terms) {
            *t = averaged;
        }
    }
    // Losses and gradients are checked (in one read-back) before any update, so a skipped step
    // leaves every weight, optimiser moment and pool as it was.
    let optimisers = [
        ("gradient of the translators", Some(&state.g_opt)),
        ("gradient of the segmenters", Some(&state.s_opt)),
        ("gradient of the discriminators", state.d_opt.as_ref()),
    ];
    for (name, opt) in optimisers {
        if let Some(sum) = opt.and_then(Adam::gradient_sum) {
            checked.push((name, sum));
        }
    }
    let mut losses = match check_finite(&checked, inputs.step) {
        Ok(values) => values,
        Err(e) => {
            (state.pool_t, state.pool_s) = pools;
            nets.restore_buffers(&buffers);
            return Err(e);
        }
    };
    losses.truncate(n_gen + n_disc);
    let total_value = losses[..n_gen].iter().map(|(_, v)| v).sum::<f64>();
    state.g_opt.step(inputs.lr);
    // Not stepped while the translator trains alone: its first step is the segmenters' first.
    if inputs.segmenters {
        state.s_opt.step(inputs.lr * config.seg_lr_factor());
    }
    if let Some(d_opt) = state.d_opt.as_mut().filter(|_| n_disc > 0) {
        d_opt.step(inputs.lr);
    }
    losses.push(("total", total_value));
    Ok(losses)
}

/// Runs `f` under bf16 autocast when the config asks for it (forward passes in bf16 where
/// autocast allows; weights, gradients and optimiser state stay fp32), else as it is.
fn mixed<T>(
    config: &TrainConfig,
    inputs: &StepInputs<'_>,
    f: impl FnOnce() -> T,
) -> Result<T, TrainError> {
    match config.precision {
        Precision::Fp32 => Ok(f()),
        Precision::Bf16 => cmedl_dist::with_autocast(inputs.student.device(), Kind::BFloat16, f)
            .map_err(|e| TrainError::Config(e.to_string())),
    }
}

/// The translator's terms (adversarial, then cycle and identity or PatchNCE).
fn translator_terms(
    nets: &Networks,
    config: &TrainConfig,
    inputs: &StepInputs<'_>,
    objective: &mut Objective,
) -> Result<Translations, TrainError> {
    let loss = &config.loss;
    let (xs, xt) = (inputs.student, inputs.teacher()?);
    let g = need(&nets.g_s2t, "translator")?;
    let d_t = need(&nets.d_t, "discriminator")?;
    let ft = g.forward_t(xs, true)?;
    let judged = if config.structure_discriminator() {
        let t = need(&nets.teacher, "teacher")?;
        with_structure(&ft, &t.forward_t(&ft, false)?.logits)
    } else {
        ft.shallow_clone()
    };
    let adv = loss.gan.generator_loss(&d_t.forward_t(&judged, true)?) * loss.adversarial;
    objective.add("adv_t", adv);
    let mut to_student = None;
    match config.model.i2i {
        I2iKind::Cyclegan => {
            let f = need(&nets.g_t2s, "translator")?;
            let d_s = need(&nets.d_s, "discriminator")?;
            let fs = f.forward_t(xt, true)?;
            let adv = loss.gan.generator_loss(&d_s.forward_t(&fs, true)?) * loss.adversarial;
            objective.add("adv_s", adv);
            let cyc =
                cycle_loss(&f.forward_t(&ft, true)?, xs) + cycle_loss(&g.forward_t(&fs, true)?, xt);
            objective.add("cycle", cyc * loss.cycle);
            if loss.identity > 0.0 {
                let idt = identity_loss(&g.forward_t(xt, true)?, xt)
                    + identity_loss(&f.forward_t(xs, true)?, xs);
                objective.add("identity", idt * (loss.identity * loss.cycle));
            }
            to_student = Some(fs);
        }
        I2iKind::Cut => {
            let head = need(&nets.head, "projection head")?;
            let layers = config.model.nce_layers();
            let layers: Vec<&str> = layers.iter().map(String::as_str).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(crate::data::mix_seed(
                config.seed,
                6,
                inputs.step as u64,
                0,
            ));
            let q = g.encode_t(&ft, &layers, true)?;
            let k = g.encode_t(xs, &layers, true)?;
            let mut nce = patch_nce(&q, &k, head, &loss.patch_nce, &mut rng)?;
            // CUT's identity NCE on real teacher-modality images.
            let idt = g.forward_t(xt, true)?;
            let qi = g.encode_t(&idt, &layers, true)?;
            let ki = g.encode_t(xt, &layers, true)?;
            nce = (nce + patch_nce(&qi, &ki, head, &loss.patch_nce, &mut rng)?) * 0.5;
            objective.add("nce", nce * loss.nce);
        }
    }
    Ok(Translations {
        to_teacher: ft,
        to_student,
    })
}

/// The teacher's and student's segmentation terms and the distillation term between them.
fn segmentation_terms(
    nets: &Networks,
    config: &TrainConfig,
    inputs: &StepInputs<'_>,
    translated: Option<&Tensor>,
    objective: &mut Objective,
) -> Result<(), TrainError> {
    let loss = &config.loss;
    let seg = &loss.segmentation;
    let (xs, ys) = (inputs.student, inputs.student_labels);
    let translated = || translated.ok_or_else(|| TrainError::Config("missing translation".into()));
    let mut teacher_out = None;
    if config.mode.uses_teacher() {
        let t = need(&nets.teacher, "teacher")?;
        let real = match (loss.teacher_on_real, inputs.teacher, inputs.teacher_labels) {
            (true, Some(xt), Some(yt)) => Some((xt, yt)),
            _ => None,
        };
        // With statistics kept apart, the real images go first and are backpropagated at once:
        // swapping the statistics in place must not touch a graph that still needs them.
        let real_done = match real {
            Some((xt, yt)) if nets.teacher_real_bn.is_some() => {
                let l = dice_ce(&nets.teacher_on_real(xt, true)?.logits, yt, seg)? * loss.teacher;
                l.backward();
                nets.end_real_teacher_pass();
                Some(l.detach())
            }
            _ => None,
        };
        let ft = translated()?;
        let input = if loss.teacher_to_generator {
            ft.shallow_clone()
        } else {
            ft.detach()
        };
        let out = t.forward_t(&input, true)?;
        let on_translated = dice_ce(&out.logits, ys, seg)?;
        match (real, real_done) {
            (_, Some(done)) => {
                objective.add_partly_done("seg_teacher", on_translated * loss.teacher, done)
            }
            (Some((xt, yt)), None) => {
                let l = on_translated + dice_ce(&t.forward_t(xt, true)?.logits, yt, seg)?;
                objective.add("seg_teacher", l * loss.teacher);
            }
            (None, None) => objective.add("seg_teacher", on_translated * loss.teacher),
        }
        teacher_out = Some(out);
    }
    let mut student_out = None;
    if config.mode.uses_student() {
        let s = need(&nets.student, "student")?;
        let input = match config.mode {
            Mode::CtPlusPmri => {
                Tensor::cat(&[xs.shallow_clone(), translated()?.shallow_clone()], 1)
            }
            _ => xs.shallow_clone(),
        };
        let out = s.forward_t(&input, true)?;
        objective.add("seg_student", dice_ce(&out.logits, ys, seg)? * loss.student);
        student_out = Some(out);
    }
    let scale = inputs.distill_scale;
    if let (true, Some(s), Some(t)) = (
        config.distill_weight() * scale > 0.0,
        &student_out,
        &teacher_out,
    ) {
        let mut spec = config.distill_spec();
        spec.weight *= scale;
        let adapted = nets.adaptor.as_ref().map(|a| a.net.apply(s));
        objective.add("distill", distill(&spec, adapted.as_ref().unwrap_or(s), t)?);
    }
    Ok(())
}

/// The discriminators' loss on pooled translations, backpropagated into their gradients (not
/// yet applied); none when the mode has no discriminator.
fn discriminator_pass(
    nets: &Networks,
    state: &mut TrainState,
    config: &TrainConfig,
    inputs: &StepInputs<'_>,
    translations: &Translations,
) -> Result<Terms, TrainError> {
    let loss = &config.loss;
    let Some(d_opt) = state.d_opt.as_mut() else {
        return Ok(Vec::new());
    };
    let (xs, xt) = (inputs.student, inputs.teacher()?);
    let d_t = need(&nets.d_t, "discriminator")?;
    let pooled = state.pool_t.query(&translations.to_teacher);
    let (real, fake) = if config.structure_discriminator() {
        // Each image with the teacher's probability as the teacher sees its domain: real
        // images with their own statistics when `loss.teacher_domain_bn` keeps them apart.
        let t = need(&nets.teacher, "teacher")?;
        tch::no_grad(|| -> Result<_, TrainError> {
            Ok((
                with_structure(xt, &nets.teacher_on(xt)?.logits),
                with_structure(&pooled, &t.forward_t(&pooled, false)?.logits),
            ))
        })?
    } else {
        (xt.shallow_clone(), pooled)
    };
    let loss_t = loss
        .gan
        .discriminator_loss(&d_t.forward_t(&real, true)?, &d_t.forward_t(&fake, true)?);
    let d_loss = match (&translations.to_student, &nets.d_s) {
        (Some(fs), Some(d_s)) => {
            let pooled = state.pool_s.query(fs);
            loss_t
                + loss.gan.discriminator_loss(
                    &d_s.net.forward_t(xs, true)?,
                    &d_s.net.forward_t(&pooled, true)?,
                )
        }
        _ => loss_t,
    };
    d_opt.zero_grad();
    d_loss.backward();
    Ok(vec![("disc", d_loss.detach())])
}

/// An image `[B, 1, H, W]` with the tumour probability of segmentation `logits` `[B, K, H, W]`
/// (every class but background) as a second channel: what a structure discriminator sees.
pub fn with_structure(image: &Tensor, logits: &Tensor) -> Tensor {
    let background = logits.softmax(1, Kind::Float).narrow(1, 0, 1);
    let tumour = (background.neg() + 1.0).to_kind(image.kind());
    Tensor::cat(&[image.shallow_clone(), tumour], 1)
}

/// The terms read back to the host; fails with [`TrainError::NonFiniteTerm`] naming the first
/// NaN or infinite one.
fn check_finite(terms: &Terms, step: usize) -> Result<Losses, TrainError> {
    let values = read_terms(terms);
    if let Some((name, value)) = values.iter().find(|(_, v)| !v.is_finite()) {
        return Err(TrainError::NonFiniteTerm {
            term: (*name).to_owned(),
            value: *value,
            step: step + 1,
        });
    }
    Ok(values)
}

/// Reads the terms back to the host, all in one transfer (one synchronisation on a GPU).
pub fn read_terms(terms: &Terms) -> Losses {
    if terms.is_empty() {
        return Vec::new();
    }
    let scalars: Vec<Tensor> = terms
        .iter()
        .map(|(_, t)| t.to_kind(Kind::Double).reshape([1]))
        .collect();
    let host = Tensor::cat(&scalars, 0).to_device(tch::Device::Cpu);
    let values = Vec::<f64>::try_from(&host).unwrap_or_else(|_| vec![f64::NAN; terms.len()]);
    terms.iter().map(|(n, _)| *n).zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::I2iKind;
    use crate::testing::{build, tiny_config};
    use cmedl_models::{SegmenterConfig, UNetConfig};

    /// Every variable of every network, trainable or not (running statistics included).
    fn weights(nets: &Networks) -> Vec<Tensor> {
        nets.stores()
            .into_iter()
            .flat_map(|(_, vs)| {
                let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                vars
            })
            .map(|(_, t)| t.detach().copy())
            .collect()
    }

    /// Random student and teacher images in [-1, 1) `[2, 1, 32, 32]`, and labels where the
    /// student image is above 0.3.
    fn random_batch() -> (Tensor, Tensor, Tensor) {
        let images = Tensor::rand([2, 1, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let teacher = Tensor::rand([2, 1, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let labels = images.gt(0.3).to_kind(Kind::Int64).squeeze_dim(1);
        (images, teacher, labels)
    }

    #[test]
    fn a_non_finite_step_leaves_weights_statistics_moments_and_pools_untouched() {
        let mut config = tiny_config();
        // Batch norm in the segmenters: running statistics that every forward pass moves.
        config.model.segmenter = SegmenterConfig::Unet(UNetConfig {
            base: 4,
            depth: 2,
            norm: cmedl_models::NormKind::Batch,
            ..Default::default()
        });
        let mut nets = build(&config);
        let mut state = TrainState::new(&nets, &config);
        let images = Tensor::rand([2, 1, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let labels = Tensor::zeros([2, 32, 32], (Kind::Int64, tch::Device::Cpu));
        let teacher = Tensor::rand([2, 1, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let inputs = |teacher| StepInputs {
            student: &images,
            student_labels: &labels,
            teacher: Some(teacher),
            teacher_labels: None,
            lr: 1e-3,
            step: 0,
            distill_scale: 1.0,
            segmenters: true,
            sync: None,
        };
        let losses = train_step(&mut nets, &mut state, &config, &inputs(&teacher)).unwrap();
        assert!(losses.iter().all(|(_, v)| v.is_finite()), "{losses:?}");
        assert_eq!(state.pool_t.len(), 2);
        let before = weights(&nets);
        let pool_before: Vec<Tensor> = state.pool_t.images().iter().map(Tensor::copy).collect();
        let moments_before = state.g_opt.state("g");
        let moments_before: Vec<Tensor> = moments_before.iter().map(|(_, t)| t.copy()).collect();
        // A NaN in a teacher-modality image makes terms of both sides NaN; the check comes
        // after the discriminators' pass drew from (and refilled) the pools: nothing may change.
        let _ = teacher.get(0).get(0).get(3).get(3).fill_(f64::NAN);
        let err = train_step(&mut nets, &mut state, &config, &inputs(&teacher)).unwrap_err();
        assert!(matches!(&err, TrainError::NonFiniteTerm { .. }), "{err}");
        let after = weights(&nets);
        assert_eq!(before.len(), after.len());
        for (a, b) in before.iter().zip(&after) {
            assert!(
                a.equal(b),
                "a weight or running statistic changed on a skipped step"
            );
        }
        assert_eq!(state.pool_t.len(), 2);
        for (a, b) in pool_before.iter().zip(state.pool_t.images()) {
            assert!(a.equal(b), "the pool changed on a skipped step");
        }
        assert_eq!(state.g_opt.steps(), 1);
        for (a, (_, b)) in moments_before.iter().zip(state.g_opt.state("g")) {
            assert!(a.equal(&b), "an optimiser moment changed on a skipped step");
        }
    }

    #[test]
    fn a_bf16_step_is_close_to_fp32_and_keeps_fp32_weights() {
        let mut fp32 = tiny_config();
        fp32.model.i2i = I2iKind::Cyclegan;
        let mut bf16 = fp32.clone();
        bf16.precision = Precision::Bf16;
        let seeded_build = |c: &TrainConfig| {
            let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(11);
            Networks::build(c, tch::Device::Cpu).unwrap()
        };
        let (images, teacher, labels) = random_batch();
        let run = |c: &TrainConfig| {
            let mut nets = seeded_build(c);
            let mut state = TrainState::new(&nets, c);
            let inputs = StepInputs {
                student: &images,
                student_labels: &labels,
                teacher: Some(&teacher),
                teacher_labels: None,
                lr: 1e-3,
                step: 0,
                distill_scale: 1.0,
                segmenters: true,
                sync: None,
            };
            let losses = train_step(&mut nets, &mut state, c, &inputs).unwrap();
            (losses, weights(&nets))
        };
        let (full, _) = run(&fp32);
        let (mixed, after) = run(&bf16);
        assert_eq!(full.len(), mixed.len());
        // bf16 keeps 8 significant bits: each term within 5 % (or 0.02 when it is small).
        for ((name, a), (_, b)) in full.iter().zip(&mixed) {
            assert!(
                (a - b).abs() <= 0.05 * a.abs().max(0.4),
                "{name}: fp32 {a}, bf16 {b}"
            );
        }
        assert!(
            after.iter().all(|w| w.kind() == Kind::Float),
            "weights stay fp32 for checkpoints"
        );
    }

    #[test]
    fn a_structure_discriminator_sees_the_image_and_the_tumour_probability() {
        let image = Tensor::from_slice(&[0.5f32, -0.25]).reshape([1, 1, 1, 2]);
        // Background, tumour and a second label: softmax of (0, ln 2, ln 1) is (1/4, 1/2, 1/4),
        // of (ln 3, 0, 0) is (3/5, 1/5, 1/5); the tumour probability is 1 − background.
        let logits = Tensor::from_slice(&[0.0f32, 3f32.ln(), 2f32.ln(), 0.0, 0.0, 0.0])
            .reshape([1, 3, 1, 2]);
        let seen = with_structure(&image, &logits);
        assert_eq!(seen.size(), [1, 2, 1, 2]);
        let values = Vec::<f32>::try_from(seen.flatten(0, -1)).unwrap();
        let expected = [0.5, -0.25, 0.75, 0.4];
        for (v, e) in values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-6, "{values:?} against {expected:?}");
        }
    }

    #[test]
    fn a_translator_only_step_with_a_structure_discriminator_leaves_the_segmenters_alone() {
        let mut config = tiny_config();
        config.loss.structure = true;
        let mut nets = build(&config);
        let first_conv = |nets: &Networks| {
            crate::testing::store(nets, "d_t")
                .variables()
                .into_values()
                .filter(|t| t.dim() == 4)
                .map(|t| t.size()[1])
                .collect::<Vec<i64>>()
        };
        assert!(
            first_conv(&nets).contains(&2),
            "image ⊕ tumour probability: {:?}",
            first_conv(&nets)
        );
        let mut state = TrainState::new(&nets, &config);
        let (images, teacher, labels) = random_batch();
        let before = weights(&nets);
        let inputs = StepInputs {
            student: &images,
            student_labels: &labels,
            teacher: Some(&teacher),
            teacher_labels: None,
            lr: 1e-3,
            step: 0,
            distill_scale: 1.0,
            segmenters: false,
            sync: None,
        };
        let losses = train_step(&mut nets, &mut state, &config, &inputs).unwrap();
        let names: Vec<&str> = losses.iter().map(|(n, _)| *n).collect();
        assert!(
            names.contains(&"adv_t") && names.contains(&"disc"),
            "{names:?}"
        );
        assert!(!names.contains(&"seg_teacher") && !names.contains(&"seg_student"));
        // The adversarial term passed through the teacher without leaving a gradient in it.
        let teacher_vs = crate::testing::store(&nets, "teacher");
        for (name, t) in teacher_vs.trainable_variables().iter().enumerate() {
            let g = t.grad();
            assert!(
                !g.defined() || g.abs().sum(Kind::Float).double_value(&[]) == 0.0,
                "teacher variable {name} has a gradient"
            );
        }
        assert_eq!(
            state.s_opt.steps(),
            0,
            "the segmenters' optimiser did not step"
        );
        assert_eq!(state.g_opt.steps(), 1);
        let after = weights(&nets);
        let count = |name: &str| crate::testing::store(&nets, name).variables().len();
        // Stores in order: every teacher and student variable (running statistics too) as
        // before; some translator variable moved.
        let mut offset = 0;
        let mut moved = Vec::new();
        for (name, _) in nets.stores() {
            let n = count(name);
            let same = (offset..offset + n).all(|i| before[i].equal(&after[i]));
            offset += n;
            moved.push((name, !same));
        }
        for (name, changed) in &moved {
            match *name {
                "teacher" | "student" => assert!(!changed, "{name} changed"),
                "g_s2t" | "d_t" => assert!(changed, "{name} did not train"),
                _ => {}
            }
        }
    }

    #[test]
    fn gradient_sums_reveal_a_non_finite_gradient() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let adam = Adam::new(vec![("p".into(), p.shallow_clone())], [0.9, 0.999], 0.0);
        assert!(adam.gradient_sum().is_none(), "no gradient yet");
        (&p * &p).sum(Kind::Float).backward();
        let sum = adam.gradient_sum().unwrap().double_value(&[]);
        assert_eq!(sum, 6.0, "d/dp Σp² = 2p = (2, 4)");
        (&p * f64::INFINITY).sum(Kind::Float).backward();
        assert!(!adam.gradient_sum().unwrap().double_value(&[]).is_finite());
    }
}
