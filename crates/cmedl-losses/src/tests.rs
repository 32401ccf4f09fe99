//! Hand-computed values, invariants, finite-difference gradients and edge cases.

use std::collections::BTreeMap;

use super::*;
use cmedl_models::{InitKind, ProjectionHead, SegOutput};
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn t(values: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values).to_kind(Kind::Float).view(shape)
}

fn v(x: &Tensor) -> f64 {
    x.double_value(&[])
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn lsgan_by_hand() {
    let fake = t(&[0.5, -1.0], &[2, 1, 1, 1]);
    let real = t(&[1.0, 0.0], &[2, 1, 1, 1]);
    // G: mean((0.5−1)², (−1−1)²) = (0.25 + 4)/2.
    close(v(&GanMode::Lsgan.generator_loss(&fake)), 2.125);
    // D: ½[mean(0², (−1)²) + mean(0.5², (−1)²)] = ½[0.5 + 0.625].
    close(v(&GanMode::Lsgan.discriminator_loss(&real, &fake)), 0.5625);
}

#[test]
fn vanilla_and_hinge_by_hand() {
    let zero = t(&[0.0], &[1, 1, 1, 1]);
    // BCE of logit 0 against 1 or 0 is ln 2.
    close(
        v(&GanMode::Vanilla.generator_loss(&zero)),
        std::f64::consts::LN_2,
    );
    close(
        v(&GanMode::Vanilla.discriminator_loss(&zero, &zero)),
        std::f64::consts::LN_2,
    );
    let real = t(&[2.0, 0.5], &[2, 1, 1, 1]);
    let fake = t(&[-2.0, 0.5], &[2, 1, 1, 1]);
    // D: mean relu(1 − (2, 0.5)) + mean relu(1 + (−2, 0.5)) = 0.25 + 0.75.
    close(v(&GanMode::Hinge.discriminator_loss(&real, &fake)), 1.0);
    // G: −mean(−2, 0.5) = 0.75.
    close(v(&GanMode::Hinge.generator_loss(&fake)), 0.75);
    // Saturated logits stay finite.
    let big = t(&[50.0, -50.0], &[2, 1, 1, 1]);
    for mode in [GanMode::Lsgan, GanMode::Vanilla, GanMode::Hinge] {
        assert!(v(&mode.discriminator_loss(&big, &big)).is_finite());
        assert!(v(&mode.generator_loss(&big)).is_finite());
    }
}

#[test]
fn cycle_and_identity_by_hand() {
    let a = t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    let b = t(&[1.0, 1.0, 1.0, 1.0], &[1, 1, 2, 2]);
    close(v(&cycle_loss(&a, &b)), 1.5); // (0 + 1 + 2 + 3)/4
    close(v(&identity_loss(&b, &a)), 1.5);
    assert_eq!(v(&cycle_loss(&a, &a)), 0.0);
}

#[test]
fn image_pool_fills_then_mixes_reproducibly() {
    let batch = |k: f64| t(&[k, k + 1.0, k + 2.0], &[3, 1, 1, 1]);
    let mut a = ImagePool::new(2, 9);
    let mut b = ImagePool::new(2, 9);
    let first = a.query(&batch(0.0));
    let _ = b.query(&batch(0.0));
    assert_eq!(first.size(), [3, 1, 1, 1]);
    // While filling, the pool returns its inputs; the third image is returned or swapped.
    assert_eq!(
        Vec::<f32>::try_from(first.narrow(0, 0, 2).flatten(0, -1)).unwrap(),
        vec![0.0, 1.0]
    );
    assert_eq!(a.len(), 2);
    for round in 1..6 {
        let x = batch(10.0 * round as f64);
        let (ya, yb) = (a.query(&x), b.query(&x));
        assert_eq!(ya.size(), [3, 1, 1, 1]);
        assert!(ya.equal(&yb), "same seed, same choices");
    }
    let mut off = ImagePool::new(0, 1);
    assert!(off.query(&batch(5.0)).equal(&batch(5.0)));
}

/// Two pixels: logits (0, 0) with label 1 and (ln 3, 0) with label 0.
fn two_pixels() -> (Tensor, Tensor) {
    let logits = t(&[0.0, 3f64.ln(), 0.0, 0.0], &[1, 2, 1, 2]);
    let labels = Tensor::from_slice(&[1i64, 0]).view([1, 1, 2]);
    (logits, labels)
}

#[test]
fn cross_entropy_by_hand() {
    let (logits, labels) = two_pixels();
    let cfg = SegLossConfig::default();
    // −ln ½ = ln 2 and −ln ¾ = ln 4/3, averaged.
    let expected = (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0;
    close(v(&cross_entropy(&logits, &labels, &cfg).unwrap()), expected);
    let weighted = SegLossConfig {
        class_weights: Some(vec![1.0, 3.0]),
        ..cfg.clone()
    };
    let expected = (3.0 * 2f64.ln() + (4.0f64 / 3.0).ln()) / 4.0;
    close(
        v(&cross_entropy(&logits, &labels, &weighted).unwrap()),
        expected,
    );
    let ignore = SegLossConfig {
        ignore_index: Some(0),
        ..cfg
    };
    close(
        v(&cross_entropy(&logits, &labels, &ignore).unwrap()),
        2f64.ln(),
    );
}

#[test]
fn soft_dice_by_hand() {
    let (logits, labels) = two_pixels();
    // Foreground probabilities 0.5 and 0.25, labels 1 and 0: I = 0.5, ΣP = 0.75, ΣG = 1.
    let no_smooth = SegLossConfig {
        smooth: 0.0,
        ..Default::default()
    };
    close(
        v(&soft_dice(&logits, &labels, &no_smooth).unwrap()),
        1.0 - 1.0 / 1.75,
    );
    let smooth = SegLossConfig {
        smooth: 1.0,
        ..Default::default()
    };
    close(
        v(&soft_dice(&logits, &labels, &smooth).unwrap()),
        1.0 - 2.0 / 2.75,
    );
    // dice_ce adds both with their weights.
    let both = SegLossConfig {
        ce_weight: 2.0,
        dice_weight: 0.5,
        smooth: 0.0,
        ..Default::default()
    };
    let ce = (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0;
    close(
        v(&dice_ce(&logits, &labels, &both).unwrap()),
        2.0 * ce + 0.5 * (1.0 - 1.0 / 1.75),
    );
    // Ignoring the foreground pixel leaves no foreground: (0 + 1)/(0.25 + 0 + 1) with smooth 1.
    let ignore = SegLossConfig {
        smooth: 1.0,
        ignore_index: Some(1),
        ..Default::default()
    };
    close(
        v(&soft_dice(&logits, &labels, &ignore).unwrap()),
        1.0 - 1.0 / 1.25,
    );
}

#[test]
fn soft_dice_per_image_averages_images() {
    // Image 1 is the two-pixel case; image 2 predicts its one foreground pixel perfectly-ish.
    let logits = t(
        &[0.0, 3f64.ln(), 0.0, 0.0, -50.0, 50.0, 50.0, -50.0],
        &[2, 2, 1, 2],
    );
    let labels = Tensor::from_slice(&[1i64, 0, 1, 0]).view([2, 1, 2]);
    let cfg = SegLossConfig {
        smooth: 0.0,
        batch_dice: false,
        ..Default::default()
    };
    let expected = ((1.0 - 1.0 / 1.75) + 0.0) / 2.0;
    close(v(&soft_dice(&logits, &labels, &cfg).unwrap()), expected);
}

#[test]
fn segmentation_losses_are_finite_on_empty_masks_and_saturated_logits() {
    let labels = Tensor::zeros([2, 4, 4], (Kind::Int64, CPU));
    let cfg = SegLossConfig::default();
    for logit in [50.0, -50.0, 0.0] {
        let logits = Tensor::full([2, 3, 4, 4], logit, (Kind::Float, CPU)).set_requires_grad(true);
        let loss = dice_ce(&logits, &labels, &cfg).unwrap();
        assert!(v(&loss).is_finite());
        loss.backward();
        assert!(v(&logits.grad().abs().sum(Kind::Float)).is_finite());
    }
    // Confident background on an empty mask costs (almost) nothing.
    let bg = Tensor::cat(
        &[
            Tensor::full([1, 1, 4, 4], 50.0, (Kind::Float, CPU)),
            Tensor::full([1, 1, 4, 4], -50.0, (Kind::Float, CPU)),
        ],
        1,
    );
    assert!(v(&soft_dice(&bg, &labels.narrow(0, 0, 1), &cfg).unwrap()) < 1e-6);
}

#[test]
fn dice_loss_stays_in_unit_interval() {
    tch::manual_seed(1);
    for batch_dice in [true, false] {
        for _ in 0..20 {
            let logits = Tensor::randn([3, 3, 5, 5], (Kind::Float, CPU)) * 5.0;
            let labels = Tensor::randint(3, [3, 5, 5], (Kind::Int64, CPU));
            let cfg = SegLossConfig {
                batch_dice,
                ..Default::default()
            };
            let d = v(&soft_dice(&logits, &labels, &cfg).unwrap());
            assert!((0.0..=1.0).contains(&d), "{d}");
        }
    }
}

#[test]
fn bad_segmentation_inputs_are_errors() {
    let (logits, labels) = two_pixels();
    let cfg = SegLossConfig::default();
    assert!(cross_entropy(&logits, &labels.view([1, 2]), &cfg).is_err());
    assert!(soft_dice(&logits.narrow(1, 0, 1), &labels, &cfg).is_err());
    let err = check_labels(&Tensor::from_slice(&[0i64, 1, 7]), 2, None).unwrap_err();
    assert!(err.to_string().contains("e.g. 7"), "{err}");
    assert!(check_labels(&Tensor::from_slice(&[0i64, 1, 255]), 2, Some(255)).is_ok());
    let bad_weights = SegLossConfig {
        class_weights: Some(vec![1.0]),
        ..cfg
    };
    assert!(cross_entropy(&logits, &labels, &bad_weights).is_err());
}

#[test]
fn distillation_pairs_by_hand() {
    let s = t(&[1.0, 2.0], &[1, 2, 1, 1]);
    let z = t(&[0.0, 0.0], &[1, 2, 1, 1]);
    close(v(&distill_pair(DistillKind::Mse, &s, &z)), 2.5); // (1 + 4)/2
    close(v(&distill_pair(DistillKind::L1, &s, &z)), 1.5);
    // Orthogonal channel vectors: cosine 0; parallel ones: 1.
    let e0 = t(&[1.0, 0.0], &[1, 2, 1, 1]);
    let e1 = t(&[0.0, 1.0], &[1, 2, 1, 1]);
    close(v(&distill_pair(DistillKind::Cosine, &e0, &e1)), 1.0);
    close(v(&distill_pair(DistillKind::Cosine, &s, &(&s * 2.0))), 0.0);
    // Attention: student energy only at position 1 → map (1, 0); teacher only at 2 → (0, 1).
    let st = t(&[3.0, 0.0, 4.0, 0.0], &[1, 2, 1, 2]);
    let te = t(&[0.0, 1.0, 0.0, 1.0], &[1, 2, 1, 2]);
    close(v(&distill_pair(DistillKind::Attention, &st, &te)), 1.0); // ((1−0)² + (0−1)²)/2
                                                                    // KD: teacher (0, 0) → (½, ½); student (ln 3, 0) → (¾, ¼); KL = ½ ln(⅔) + ½ ln 2 = ½ ln(4/3).
    let teacher = t(&[0.0, 0.0], &[1, 2, 1, 1]);
    let student = t(&[3f64.ln(), 0.0], &[1, 2, 1, 1]);
    close(
        v(&distill_pair(
            DistillKind::LogitKd { temperature: 1.0 },
            &student,
            &teacher,
        )),
        0.5 * (4.0f64 / 3.0).ln(),
    );
    // At T = 2 the student logits (2 ln 3, 0) give the same softmax; the loss is scaled by T².
    let student2 = &student * 2.0;
    close(
        v(&distill_pair(
            DistillKind::LogitKd { temperature: 2.0 },
            &student2,
            &teacher,
        )),
        2.0 * (4.0f64 / 3.0).ln(),
    );
}

#[test]
fn distillation_invariants() {
    tch::manual_seed(2);
    for _ in 0..10 {
        let a = Tensor::randn([2, 3, 4, 4], (Kind::Float, CPU));
        let b = Tensor::randn([2, 3, 4, 4], (Kind::Float, CPU));
        for kind in [
            DistillKind::Mse,
            DistillKind::L1,
            DistillKind::Cosine,
            DistillKind::Attention,
        ] {
            assert!(v(&distill_pair(kind, &a, &a)).abs() < 1e-6, "{kind:?}");
            close(
                v(&distill_pair(kind, &a, &b)),
                v(&distill_pair(kind, &b, &a)),
            );
        }
        assert!(
            v(&distill_pair(
                DistillKind::LogitKd { temperature: 3.0 },
                &a,
                &b
            )) >= 0.0
        );
        assert!(
            v(&distill_pair(
                DistillKind::LogitKd { temperature: 3.0 },
                &a,
                &a
            ))
            .abs()
                < 1e-6
        );
    }
    let zeros = Tensor::zeros([1, 4, 3, 3], (Kind::Float, CPU));
    for kind in [
        DistillKind::Cosine,
        DistillKind::Attention,
        DistillKind::LogitKd { temperature: 2.0 },
    ] {
        assert!(
            v(&distill_pair(kind, &zeros, &zeros)).is_finite(),
            "{kind:?}"
        );
    }
}

fn seg_output(features: &[(&str, Tensor)]) -> SegOutput {
    SegOutput {
        logits: Tensor::zeros([1, 2, 4, 4], (Kind::Float, CPU)),
        features: features
            .iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[test]
fn distill_sums_features_and_names_problems() {
    let ones = Tensor::ones([1, 2, 4, 4], (Kind::Float, CPU));
    let student = seg_output(&[("dec1", &ones * 2.0), ("dec2", ones.shallow_clone())]);
    let teacher = seg_output(&[("dec1", ones.shallow_clone()), ("dec2", ones.zeros_like())]);
    let spec = DistillSpec {
        features: vec!["dec1".into(), "dec2".into()],
        weight: 0.5,
        ..Default::default()
    };
    close(
        v(&distill(&spec, &student, &teacher).unwrap()),
        0.5 * (1.0 + 1.0),
    );
    let missing = DistillSpec {
        features: vec!["aspp".into()],
        ..Default::default()
    };
    let err = distill(&missing, &student, &teacher)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'aspp'") && err.contains("student") && err.contains("dec1"),
        "{err}"
    );
    let small = seg_output(&[("dec1", Tensor::ones([1, 2, 2, 2], (Kind::Float, CPU)))]);
    let one = DistillSpec {
        features: vec!["dec1".into()],
        ..Default::default()
    };
    let err = distill(&one, &student, &small).unwrap_err().to_string();
    assert!(
        err.contains("[1, 2, 4, 4]") && err.contains("[1, 2, 2, 2]"),
        "{err}"
    );
    // Attention transfer only needs equal batch and spatial size.
    let wide = seg_output(&[("dec1", Tensor::ones([1, 5, 4, 4], (Kind::Float, CPU)))]);
    let at = DistillSpec {
        features: vec!["dec1".into()],
        kind: DistillKind::Attention,
        ..Default::default()
    };
    assert!(distill(&at, &student, &wide).is_ok());
    // Logits can be distilled by name.
    let kd = DistillSpec {
        features: vec!["logits".into()],
        kind: DistillKind::LogitKd { temperature: 2.0 },
        ..Default::default()
    };
    close(v(&distill(&kd, &student, &teacher).unwrap()), 0.0);
}

#[test]
fn detached_teacher_gets_no_gradient() {
    for (detach, expect_grad) in [(true, false), (false, true)] {
        let s = Tensor::randn([1, 2, 3, 3], (Kind::Float, CPU)).set_requires_grad(true);
        let te = Tensor::randn([1, 2, 3, 3], (Kind::Float, CPU)).set_requires_grad(true);
        let spec = DistillSpec {
            features: vec!["f".into()],
            detach_teacher: detach,
            ..Default::default()
        };
        distill(
            &spec,
            &seg_output(&[("f", s.shallow_clone())]),
            &seg_output(&[("f", te.shallow_clone())]),
        )
        .unwrap()
        .backward();
        assert!(s.grad().defined());
        assert_eq!(te.grad().defined(), expect_grad);
    }
}

#[test]
fn bf16_inputs_give_f32_losses() {
    let a = Tensor::randn([1, 2, 4, 4], (Kind::BFloat16, CPU));
    let b = Tensor::randn([1, 2, 4, 4], (Kind::BFloat16, CPU));
    assert_eq!(distill_pair(DistillKind::Mse, &a, &b).kind(), Kind::Float);
    assert_eq!(cycle_loss(&a, &b).kind(), Kind::Float);
    assert_eq!(GanMode::Lsgan.generator_loss(&a).kind(), Kind::Float);
    let labels = Tensor::zeros([1, 4, 4], (Kind::Int64, CPU));
    assert_eq!(
        dice_ce(&a, &labels, &SegLossConfig::default())
            .unwrap()
            .kind(),
        Kind::Float
    );
}

#[test]
fn patch_nce_layer_by_hand() {
    // Two orthogonal patches: positives q·k = 1, the only negative 0, the diagonal masked to −10.
    let q = t(&[1.0, 0.0, 0.0, 1.0], &[1, 2, 2]);
    let loss = v(&patch_nce_layer(&q, &q, 1.0).unwrap());
    let expected = (1f64.exp() + (-10f64).exp() + 1.0).ln() - 1.0;
    close(loss, expected);
    assert!(patch_nce_layer(&q, &q.view([2, 1, 2]), 1.0).is_err());
}

#[test]
fn patch_nce_over_layers_runs_and_is_finite() {
    let vs = nn::VarStore::new(CPU);
    let head = ProjectionHead::new(
        &vs.root(),
        &[("stem".into(), 4), ("down1".into(), 8)],
        16,
        InitKind::Normal,
    );
    let feats = |seed: i64| {
        tch::manual_seed(seed);
        vec![
            Tensor::randn([2, 4, 8, 8], (Kind::Float, CPU)).set_requires_grad(true),
            Tensor::randn([2, 8, 4, 4], (Kind::Float, CPU)),
        ]
    };
    let (q, k) = (feats(1), feats(2));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let cfg = PatchNceConfig {
        patches: 10,
        ..Default::default()
    };
    let loss = patch_nce(&q, &k, &head, &cfg, &mut rng).unwrap();
    assert!(v(&loss).is_finite() && v(&loss) > 0.0);
    loss.backward();
    assert!(q[0].grad().defined());
    assert!(patch_nce(&q[..1], &k, &head, &cfg, &mut rng).is_err());
    let positions = sample_positions(4, 4, 100, &mut rng, CPU);
    assert_eq!(positions.size(), [16]);
    assert_eq!(sample_positions(8, 8, 5, &mut rng, CPU).size(), [5]);
}

/// Compares autograd with central differences, in f64.
fn gradcheck(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) {
    let x = x.to_kind(Kind::Double).detach().set_requires_grad(true);
    let y = f(&x);
    y.backward();
    let analytic = Vec::<f64>::try_from(x.grad().flatten(0, -1)).unwrap();
    let base = Vec::<f64>::try_from(x.detach().flatten(0, -1)).unwrap();
    let eps = 1e-6;
    for i in 0..base.len() {
        let eval = |delta: f64| {
            let mut p = base.clone();
            p[i] += delta;
            let xp = Tensor::from_slice(&p).view(x.size().as_slice());
            tch::no_grad(|| f(&xp)).double_value(&[])
        };
        let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
        assert!(
            (numeric - analytic[i]).abs() < 1e-6 * (1.0 + numeric.abs()),
            "element {i}: numeric {numeric}, autograd {}",
            analytic[i]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    tch::manual_seed(5);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 1, 0, 0, 2, 1]).view([2, 2, 2]);
    for batch_dice in [true, false] {
        let cfg = SegLossConfig {
            batch_dice,
            smooth: 1e-3,
            ..Default::default()
        };
        gradcheck(
            |x| soft_dice(x, &labels, &cfg).unwrap(),
            &Tensor::randn([2, 3, 2, 2], (Kind::Double, CPU)),
        );
    }
    let teacher = Tensor::randn([2, 3, 2, 2], (Kind::Double, CPU));
    gradcheck(
        |x| distill_pair(DistillKind::Mse, x, &teacher),
        &Tensor::randn([2, 3, 2, 2], (Kind::Double, CPU)),
    );
    gradcheck(
        |x| distill_pair(DistillKind::Attention, x, &teacher),
        &Tensor::randn([2, 3, 2, 2], (Kind::Double, CPU)),
    );
    let key = Tensor::randn([2, 3, 4], (Kind::Double, CPU));
    let unit = |x: &Tensor| x / x.norm_scalaropt_dim(2, [2], true);
    let key = unit(&key);
    gradcheck(
        |x| patch_nce_layer(&unit(x), &key, 0.07).unwrap(),
        &Tensor::randn([2, 3, 4], (Kind::Double, CPU)),
    );
}

#[test]
fn spec_and_configs_round_trip_json() {
    let spec = DistillSpec {
        kind: DistillKind::LogitKd { temperature: 4.0 },
        ..Default::default()
    };
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DistillSpec>(&text).unwrap(), spec);
    assert!(serde_json::from_str::<DistillSpec>(r#"{"wieght": 1}"#)
        .unwrap_err()
        .to_string()
        .contains("wieght"));
    let cfg: SegLossConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg, SegLossConfig::default());
    // By default the features are left to the trainer (the segmenter's last decoder maps).
    assert!(DistillSpec::default().features.is_empty());
}

#[test]
fn feature_normalisations_by_hand() {
    // One image, two channels, 1×2 positions: channel 0 = [1, 3], channel 1 = [0, 4].
    let x = Tensor::from_slice(&[1f32, 3.0, 0.0, 4.0]).view([1, 2, 1, 2]);
    let ch = Vec::<f32>::try_from(FeatureNorm::Channel.apply(&x).flatten(0, -1)).unwrap();
    // (v − mean) / sqrt(var + 1e-5), var the population variance: 1 and 4.
    let (one, two) = ((1.0f32 + 1e-5).sqrt(), (4.0f32 + 1e-5).sqrt());
    for (got, w) in ch
        .iter()
        .zip([-1.0 / one, 1.0 / one, -2.0 / two, 2.0 / two])
    {
        assert!((got - w).abs() < 1e-6, "{ch:?}");
    }
    let l2 = Vec::<f32>::try_from(FeatureNorm::L2.apply(&x).flatten(0, -1)).unwrap();
    // Position 0: (1, 0) → (1, 0); position 1: (3, 4) → (0.6, 0.8).
    for (got, w) in l2.iter().zip([1.0f32, 0.6, 0.0, 0.8]) {
        assert!((got - w).abs() < 1e-6, "{l2:?}");
    }
    assert!(FeatureNorm::None.apply(&x).equal(&x));
}

#[test]
fn warmup_ramps_the_distillation_weight() {
    let spec = DistillSpec {
        warmup_epochs: 3,
        ..Default::default()
    };
    let f: Vec<f64> = (0..5).map(|e| spec.warmup_factor(e)).collect();
    assert_eq!(f, [0.25, 0.5, 0.75, 1.0, 1.0]);
    assert_eq!(DistillSpec::default().warmup_factor(0), 1.0);
}
