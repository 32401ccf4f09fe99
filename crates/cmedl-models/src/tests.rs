//! Shapes, exact parameter counts, gradient flow and input errors of every network.

use super::*;
use tch::{nn, Device, Kind, Tensor};

fn zeros(shape: [i64; 4]) -> Tensor {
    Tensor::zeros(shape, (Kind::Float, Device::Cpu))
}

fn randn(shape: [i64; 4]) -> Tensor {
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

#[test]
fn resnet_generator_9_blocks_matches_cyclegan_parameter_count() {
    let vs = nn::VarStore::new(Device::Cpu);
    ResnetGenerator::new(&vs.root(), ResnetGeneratorConfig::default());
    // Instance norm has no parameters and every conv keeps its bias (CycleGAN's use_bias).
    let stem = 64 * 49 + 64; // 7×7, 1 → 64
    let down1 = 128 * 64 * 9 + 128;
    let down2 = 256 * 128 * 9 + 256;
    let block = 2 * (256 * 256 * 9 + 256);
    let up1 = 256 * 128 * 9 + 128; // transposed: weight [256, 128, 3, 3]
    let up2 = 128 * 64 * 9 + 64;
    let head = 64 * 49 + 1;
    let expected = stem + down1 + down2 + 9 * block + up1 + up2 + head;
    assert_eq!(expected, 11_365_633);
    assert_eq!(parameter_count(&vs), expected);
    // With three input/output channels the same arithmetic gives CycleGAN's 11 378 179.
    let vs3 = nn::VarStore::new(Device::Cpu);
    ResnetGenerator::new(
        &vs3.root(),
        ResnetGeneratorConfig {
            in_channels: 3,
            out_channels: 3,
            ..Default::default()
        },
    );
    assert_eq!(parameter_count(&vs3), 11_378_179);
}

#[test]
fn resnet_generator_6_blocks_parameter_count() {
    let vs = nn::VarStore::new(Device::Cpu);
    ResnetGenerator::new(
        &vs.root(),
        ResnetGeneratorConfig {
            blocks: 6,
            ..Default::default()
        },
    );
    assert_eq!(
        parameter_count(&vs),
        11_365_633 - 3 * 2 * (256 * 256 * 9 + 256)
    );
    assert_eq!(parameter_count(&vs), 7_825_153);
}

#[test]
fn patchgan_matches_cyclegan_parameter_count() {
    let vs = nn::VarStore::new(Device::Cpu);
    PatchGan::new(&vs.root(), PatchGanConfig::default());
    let c0 = 64 * 16 + 64; // 4×4, 1 → 64, stride 2
    let c1 = 128 * 64 * 16 + 128;
    let c2 = 256 * 128 * 16 + 256;
    let c3 = 512 * 256 * 16 + 512; // stride 1
    let out = 512 * 16 + 1;
    assert_eq!(c0 + c1 + c2 + c3 + out, 2_762_689);
    assert_eq!(parameter_count(&vs), 2_762_689);
    let vs3 = nn::VarStore::new(Device::Cpu);
    PatchGan::new(
        &vs3.root(),
        PatchGanConfig {
            in_channels: 3,
            ..Default::default()
        },
    );
    assert_eq!(parameter_count(&vs3), 2_764_737); // CycleGAN's D_A for RGB
}

#[test]
fn unet_parameter_count() {
    let vs = nn::VarStore::new(Device::Cpu);
    UNet::new(&vs.root(), UNetConfig::default());
    // Double conv c_in → c: two bias-free 3×3 convs and two batch norms (scale + shift).
    let dc = |ci: i64, c: i64| 9 * ci * c + 9 * c * c + 4 * c;
    let enc = dc(1, 32) + dc(32, 64) + dc(64, 128) + dc(128, 256) + dc(256, 512);
    let up = |ci: i64, c: i64| ci * c * 4 + c; // 2×2 transposed conv with bias
    let dec = up(512, 256)
        + dc(512, 256)
        + up(256, 128)
        + dc(256, 128)
        + up(128, 64)
        + dc(128, 64)
        + up(64, 32)
        + dc(64, 32);
    let head = 32 * 2 + 2;
    assert_eq!(enc + dec + head, 7_762_498);
    assert_eq!(parameter_count(&vs), 7_762_498);
}

#[test]
fn generator_keeps_the_size_and_exposes_encoder_layers() {
    let vs = nn::VarStore::new(Device::Cpu);
    let g = ResnetGenerator::new(
        &vs.root(),
        ResnetGeneratorConfig {
            ngf: 4,
            blocks: 2,
            ..Default::default()
        },
    );
    for (h, w) in [(32, 32), (36, 44), (64, 48)] {
        let y = g.forward_t(&randn([2, 1, h, w]), true).unwrap();
        assert_eq!(y.size(), [2, 1, h, w]);
        assert!(y.abs().max().double_value(&[]) <= 1.0);
    }
    let feats = g
        .encode_t(
            &randn([1, 1, 32, 32]),
            &["input", "stem", "down1", "down2", "res2"],
            false,
        )
        .unwrap();
    let shapes: Vec<Vec<i64>> = feats.iter().map(Tensor::size).collect();
    assert_eq!(
        shapes,
        vec![
            vec![1, 1, 32, 32],
            vec![1, 4, 32, 32],
            vec![1, 8, 16, 16],
            vec![1, 16, 8, 8],
            vec![1, 16, 8, 8]
        ]
    );
    for name in g.encoder_layer_names() {
        let c = g.encoder_layer_channels(&name).unwrap();
        let f = g.encode_t(&zeros([1, 1, 32, 32]), &[&name], false).unwrap();
        assert_eq!(f[0].size()[1], c, "{name}");
    }
    let err = g.forward_t(&zeros([1, 1, 30, 32]), false).unwrap_err();
    assert!(err.to_string().contains("multiples of 4"), "{err}");
    let err = g
        .encode_t(&zeros([1, 1, 32, 32]), &["res9"], false)
        .unwrap_err();
    assert!(matches!(err, ModelError::UnknownFeature { .. }));
    let err = g.forward_t(&zeros([1, 2, 32, 32]), false).unwrap_err();
    assert!(
        err.to_string().contains("expected 1 channel(s), got 2"),
        "{err}"
    );
}

#[test]
fn generator_with_batch_norm_and_dropout_runs() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ResnetGeneratorConfig {
        ngf: 4,
        blocks: 1,
        norm: NormKind::Batch,
        dropout: 0.5,
        ..Default::default()
    };
    let g = ResnetGenerator::new(&vs.root(), cfg);
    assert_eq!(
        g.forward_t(&randn([2, 1, 16, 16]), true).unwrap().size(),
        [2, 1, 16, 16]
    );
}

#[test]
fn patchgan_output_sizes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let d = PatchGan::new(
        &vs.root(),
        PatchGanConfig {
            ndf: 4,
            ..Default::default()
        },
    );
    for (s, o) in [(256, 30), (70, 6), (64, 6), (32, 2)] {
        assert_eq!(d.output_size(s), o);
        assert_eq!(
            d.forward_t(&randn([2, 1, s, s]), true).unwrap().size(),
            [2, 1, o, o]
        );
    }
    let err = d.forward_t(&zeros([1, 1, 16, 16]), false).unwrap_err();
    assert!(err.to_string().contains("at least"), "{err}");
}

#[test]
fn projection_head_gives_unit_vectors() {
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ProjectionHead::new(
        &vs.root(),
        &[("stem".into(), 4), ("down1".into(), 8)],
        16,
        InitKind::Normal,
    );
    let y = head
        .forward("down1", &Tensor::randn([10, 8], (Kind::Float, Device::Cpu)))
        .unwrap();
    assert_eq!(y.size(), [10, 16]);
    let norms =
        Vec::<f32>::try_from(y.square().sum_dim_intlist(&[1i64][..], false, Kind::Float)).unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    assert!(head
        .forward("res1", &zeros([1, 1, 1, 1]).view([1, 1]))
        .is_err());
    assert_eq!(
        parameter_count(&vs),
        (4 * 16 + 16 + 16 * 16 + 16) + (8 * 16 + 16 + 16 * 16 + 16)
    );
}

fn tiny_segmenters(in_channels: i64) -> Vec<SegmenterConfig> {
    let encoder = ResnetEncoderConfig {
        width: 4,
        blocks: [1, 1, 1, 1],
    };
    vec![
        SegmenterConfig::Unet(UNetConfig {
            in_channels,
            base: 4,
            depth: 3,
            ..Default::default()
        }),
        SegmenterConfig::Unet(UNetConfig {
            in_channels,
            base: 4,
            depth: 2,
            up: UpMode::Bilinear,
            classes: 3,
            ..Default::default()
        }),
        SegmenterConfig::Deeplabv3plus(DeepLabV3PlusConfig {
            in_channels,
            encoder: encoder.clone(),
            aspp_channels: 8,
            low_level_channels: 4,
            ..Default::default()
        }),
        SegmenterConfig::Deeplabv3plus(DeepLabV3PlusConfig {
            in_channels,
            encoder: encoder.clone(),
            output_stride: 8,
            aspp_channels: 8,
            low_level_channels: 4,
            ..Default::default()
        }),
        SegmenterConfig::Pspnet(PspNetConfig {
            in_channels,
            encoder,
            head_channels: 8,
            ..Default::default()
        }),
    ]
}

#[test]
fn segmenters_keep_the_input_size_at_even_and_odd_sizes() {
    for in_channels in [1, 2] {
        for cfg in tiny_segmenters(in_channels) {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = cfg.build(&vs.root()).unwrap();
            for (h, w) in [(64, 64), (48, 40), (37, 45)] {
                let out = net.forward_t(&randn([2, in_channels, h, w]), true).unwrap();
                assert_eq!(out.logits.size(), [2, net.classes(), h, w], "{cfg:?}");
                let names: Vec<String> = out.features.keys().cloned().collect();
                let mut expected = net.feature_names();
                expected.sort();
                assert_eq!(names, expected);
            }
        }
    }
}

#[test]
fn unet_features_have_the_documented_shapes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(
        &vs.root(),
        UNetConfig {
            base: 4,
            depth: 3,
            ..Default::default()
        },
    );
    let out = net.forward_t(&zeros([1, 1, 32, 32]), false).unwrap();
    assert_eq!(out.features["bottleneck"].size(), [1, 32, 4, 4]);
    assert_eq!(out.features["dec1"].size(), [1, 16, 8, 8]);
    assert_eq!(out.features["dec2"].size(), [1, 8, 16, 16]);
    assert_eq!(out.features["dec3"].size(), [1, 4, 32, 32]);
}

#[test]
fn segmenters_reject_bad_inputs_with_a_clear_error() {
    for cfg in tiny_segmenters(1) {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = cfg.build(&vs.root()).unwrap();
        let err = net.forward_t(&zeros([1, 3, 32, 32]), false).unwrap_err();
        assert!(
            err.to_string().contains("expected 1 channel(s), got 3"),
            "{err}"
        );
        let err = net.forward_t(&zeros([1, 1, 3, 3]), false).unwrap_err();
        assert!(err.to_string().contains("at least"), "{err}");
        let err = net
            .forward_t(
                &Tensor::zeros([1, 32, 32], (Kind::Float, Device::Cpu)),
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("4 dimensions"), "{err}");
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let bad = DeepLabV3Plus::new(
        &vs.root(),
        DeepLabV3PlusConfig {
            output_stride: 4,
            ..Default::default()
        },
    );
    assert!(matches!(bad, Err(ModelError::Config(_))));
}

/// Checks every trainable variable got a non-zero gradient, except `exempt` ones.
fn assert_gradients(vs: &nn::VarStore, exempt: impl Fn(&str) -> bool) {
    let vars = vs.variables();
    assert!(!vars.is_empty());
    for (name, var) in vars {
        if !var.requires_grad() || exempt(&name) {
            continue;
        }
        let grad = var.grad();
        assert!(grad.defined(), "{name} has no gradient");
        assert!(
            grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{name} has a zero gradient"
        );
    }
}

/// A loss that reaches every output and feature with random weights.
fn probe_loss(outputs: &[&Tensor]) -> Tensor {
    outputs
        .iter()
        .map(|t| (*t * Tensor::randn(t.size(), (Kind::Float, Device::Cpu))).sum(Kind::Float))
        .fold(Tensor::from(0f32), |a, b| a + b)
}

#[test]
fn gradients_reach_every_segmenter_parameter() {
    tch::manual_seed(3);
    for cfg in tiny_segmenters(2) {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = cfg.build(&vs.root()).unwrap();
        let out = net.forward_t(&randn([2, 2, 40, 40]), true).unwrap();
        let mut all: Vec<&Tensor> = vec![&out.logits];
        all.extend(out.features.values());
        probe_loss(&all).backward();
        assert_gradients(&vs, |_| false);
    }
}

/// Biases of convolutions followed by instance norm get exactly zero gradient: the norm removes
/// any per-channel constant. CycleGAN keeps them (its `use_bias`), so do we, for equal counts.
fn before_instance_norm(name: &str) -> bool {
    name.ends_with(".conv.bias")
}

#[test]
fn gradients_reach_every_gan_parameter() {
    tch::manual_seed(4);
    let vs = nn::VarStore::new(Device::Cpu);
    let g = ResnetGenerator::new(
        &vs.root(),
        ResnetGeneratorConfig {
            ngf: 4,
            blocks: 2,
            ..Default::default()
        },
    );
    probe_loss(&[&g.forward_t(&randn([2, 1, 32, 32]), true).unwrap()]).backward();
    assert_gradients(&vs, before_instance_norm);

    let vs = nn::VarStore::new(Device::Cpu);
    let d = PatchGan::new(
        &vs.root(),
        PatchGanConfig {
            ndf: 4,
            ..Default::default()
        },
    );
    probe_loss(&[&d.forward_t(&randn([2, 1, 64, 64]), true).unwrap()]).backward();
    assert_gradients(&vs, before_instance_norm);
}

#[test]
fn describe_lists_parameters_and_shapes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(
        &vs.root(),
        UNetConfig {
            base: 4,
            depth: 2,
            ..Default::default()
        },
    );
    let d = describe("student", &vs, &net, [1, 1, 32, 32]).unwrap();
    assert_eq!(d.parameters, parameter_count(&vs));
    assert_eq!(d.outputs[0], ("logits".to_owned(), vec![1, 2, 32, 32]));
    assert!(d.to_string().starts_with("student: "));
}

#[test]
fn gan_init_is_normal_with_std_0_02() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    ResnetGenerator::new(&vs.root(), ResnetGeneratorConfig::default());
    let w = vs.variables()["res1.a.conv.weight"].shallow_clone();
    let std = w.std(true).double_value(&[]);
    assert!((std - 0.02).abs() < 0.001, "{std}");
    assert_eq!(
        vs.variables()["res1.a.conv.bias"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
}

#[test]
fn kaiming_init_scales_with_fan_out() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    UNet::new(&vs.root(), UNetConfig::default());
    let w = vs.variables()["enc3.a.conv.weight"].shallow_clone(); // 256 outputs × 3×3
    let std = w.std(true).double_value(&[]);
    let expected = (2.0f64 / (256.0 * 9.0)).sqrt();
    assert!(
        (std - expected).abs() < 0.05 * expected,
        "{std} vs {expected}"
    );
}

#[test]
fn segmenter_config_round_trips_through_json() {
    for cfg in tiny_segmenters(1) {
        let text = serde_json::to_string(&cfg).unwrap();
        let back: SegmenterConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }
    let err = serde_json::from_str::<SegmenterConfig>(r#"{"kind":"unet","bse":3}"#).unwrap_err();
    assert!(err.to_string().contains("bse"), "{err}");
}

#[test]
fn default_distillation_taps_are_features_of_each_segmenter() {
    let kinds: Vec<&str> = tiny_segmenters(1).iter().map(|c| c.kind()).collect();
    assert_eq!(
        kinds,
        ["unet", "unet", "deeplabv3plus", "deeplabv3plus", "pspnet"]
    );
    for config in tiny_segmenters(1) {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = config.build(&vs.root()).unwrap();
        let names = net.feature_names();
        let taps = config.default_distill_features();
        assert!(!taps.is_empty());
        for tap in &taps {
            assert!(
                names.contains(tap),
                "{}: {tap} not in {names:?}",
                config.kind()
            );
        }
    }
}

#[test]
fn default_nce_layers_exist_in_shallow_and_deep_generators() {
    for (blocks, last) in [(1, "res1"), (3, "res3"), (4, "res4"), (9, "res4")] {
        let config = ResnetGeneratorConfig {
            ngf: 2,
            blocks,
            ..Default::default()
        };
        let layers = config.default_nce_layers();
        assert_eq!(layers, ["input", "stem", "down1", "down2", last]);
        let vs = nn::VarStore::new(Device::Cpu);
        let g = ResnetGenerator::new(&vs.root(), config);
        let names: Vec<&str> = layers.iter().map(String::as_str).collect();
        assert_eq!(
            g.encode_t(&randn([1, 1, 16, 16]), &names, false)
                .unwrap()
                .len(),
            5
        );
    }
}
