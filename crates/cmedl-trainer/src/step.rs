//! One training step of every mode: the generator/segmenter side, then the discriminators.

use cmedl_losses::{cycle_loss, dice_ce, distill, identity_loss, patch_nce, ImagePool};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::config::{I2iKind, Mode, TrainConfig};
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

fn record(terms: &mut Terms, total: &mut Option<Tensor>, name: &'static str, t: Tensor) {
    terms.push((name, t.detach()));
    add(total, t);
}

fn add(acc: &mut Option<Tensor>, t: Tensor) {
    *acc = Some(match acc.take() {
        Some(a) => a + t,
        None => t,
    });
}

/// Runs one step on a student-modality batch (`xs`, labels `ys`) and a teacher-modality batch
/// (`xt`, labels `yt` when it has them), updating every network with learning rate `lr`; returns
/// the loss terms read back to the host.
///
/// The terms are read twice per step (generator side, discriminator side), each time after the
/// backward pass is queued and before the update that a non-finite term must prevent: on a GPU
/// the host waits only while the backward pass finishes.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    nets: &mut Networks,
    state: &mut TrainState,
    config: &TrainConfig,
    xs: &Tensor,
    ys: &Tensor,
    xt: Option<&Tensor>,
    yt: Option<&Tensor>,
    lr: f64,
    step: usize,
) -> Result<Losses, TrainError> {
    let loss = &config.loss;
    let seg = &loss.segmentation;
    let mode = config.mode;
    let mut terms: Terms = Vec::new();
    let mut total: Option<Tensor> = None;

    // Discriminators do not learn from the generator side's loss.
    for d in [&mut nets.d_t, &mut nets.d_s].into_iter().flatten() {
        d.vs.freeze();
    }
    let mut fake_t: Option<Tensor> = None;
    let mut fake_s: Option<Tensor> = None;
    if mode.uses_translator() {
        let xt =
            xt.ok_or_else(|| TrainError::Data("this mode needs teacher-modality images".into()))?;
        let g = need(&nets.g_s2t, "translator")?;
        let d_t = need(&nets.d_t, "discriminator")?;
        let ft = g.forward_t(xs, true)?;
        record(
            &mut terms,
            &mut total,
            "adv_t",
            loss.gan.generator_loss(&d_t.forward_t(&ft, true)?) * loss.adversarial,
        );
        match config.model.i2i {
            I2iKind::Cyclegan => {
                let f = need(&nets.g_t2s, "translator")?;
                let d_s = need(&nets.d_s, "discriminator")?;
                let fs = f.forward_t(xt, true)?;
                record(
                    &mut terms,
                    &mut total,
                    "adv_s",
                    loss.gan.generator_loss(&d_s.forward_t(&fs, true)?) * loss.adversarial,
                );
                let cyc = cycle_loss(&f.forward_t(&ft, true)?, xs)
                    + cycle_loss(&g.forward_t(&fs, true)?, xt);
                record(&mut terms, &mut total, "cycle", cyc * loss.cycle);
                if loss.identity > 0.0 {
                    let idt = identity_loss(&g.forward_t(xt, true)?, xt)
                        + identity_loss(&f.forward_t(xs, true)?, xs);
                    record(
                        &mut terms,
                        &mut total,
                        "identity",
                        idt * (loss.identity * loss.cycle),
                    );
                }
                fake_s = Some(fs);
            }
            I2iKind::Cut => {
                let head = need(&nets.head, "projection head")?;
                let layers: Vec<&str> =
                    config.model.nce_layers.iter().map(String::as_str).collect();
                let mut rng = ChaCha8Rng::seed_from_u64(crate::data::mix_seed(
                    config.seed,
                    6,
                    step as u64,
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
                record(&mut terms, &mut total, "nce", nce * loss.nce);
            }
        }
        fake_t = Some(ft);
    }

    let mut student_out = None;
    let mut teacher_out = None;
    if mode.uses_teacher() {
        let t = need(&nets.teacher, "teacher")?;
        let ft = fake_t
            .as_ref()
            .ok_or_else(|| TrainError::Config("missing translation".into()))?;
        let input = if loss.teacher_to_generator {
            ft.shallow_clone()
        } else {
            ft.detach()
        };
        let out = t.forward_t(&input, true)?;
        let on_translated = dice_ce(&out.logits, ys, seg)?;
        let l = match (loss.teacher_on_real, xt, yt) {
            (true, Some(xt), Some(yt)) => {
                on_translated + dice_ce(&t.forward_t(xt, true)?.logits, yt, seg)?
            }
            _ => on_translated,
        };
        record(&mut terms, &mut total, "seg_teacher", l * loss.teacher);
        teacher_out = Some(out);
    }
    if mode.uses_student() {
        let s = need(&nets.student, "student")?;
        let input = match mode {
            Mode::CtPlusPmri => Tensor::cat(
                &[
                    xs.shallow_clone(),
                    fake_t
                        .as_ref()
                        .ok_or_else(|| TrainError::Config("missing translation".into()))?
                        .shallow_clone(),
                ],
                1,
            ),
            _ => xs.shallow_clone(),
        };
        let out = s.forward_t(&input, true)?;
        record(
            &mut terms,
            &mut total,
            "seg_student",
            dice_ce(&out.logits, ys, seg)? * loss.student,
        );
        student_out = Some(out);
    }
    let lambda_d = config.distill_weight();
    if let (true, Some(s), Some(t)) = (lambda_d > 0.0, &student_out, &teacher_out) {
        let spec = config.distill_spec();
        record(&mut terms, &mut total, "distill", distill(&spec, s, t)?);
    }
    let total = total.ok_or_else(|| TrainError::Config("the mode has no loss term".into()))?;
    state.g_opt.zero_grad();
    state.s_opt.zero_grad();
    total.backward();
    // Checked before any update, so a skipped step leaves every weight untouched (the gradients
    // it left are cleared by the next step).
    let mut losses = check_finite(&terms, step)?;
    let total_value = losses.iter().map(|(_, v)| v).sum::<f64>();
    state.g_opt.step(lr);
    state.s_opt.step(lr * config.seg_lr_factor());
    for d in [&mut nets.d_t, &mut nets.d_s].into_iter().flatten() {
        d.vs.unfreeze();
    }

    // Discriminator side, on pooled translations.
    if let (Some(d_opt), Some(ft), Some(xt)) = (state.d_opt.as_mut(), &fake_t, xt) {
        let d_t = need(&nets.d_t, "discriminator")?;
        let pooled = state.pool_t.query(ft);
        let loss_t = loss
            .gan
            .discriminator_loss(&d_t.forward_t(xt, true)?, &d_t.forward_t(&pooled, true)?);
        let d_loss = match (&fake_s, &nets.d_s) {
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
        let disc: Terms = vec![("disc", d_loss.detach())];
        d_opt.zero_grad();
        d_loss.backward();
        losses.extend(check_finite(&disc, step)?);
        d_opt.step(lr);
    }
    losses.push(("total", total_value));
    Ok(losses)
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
