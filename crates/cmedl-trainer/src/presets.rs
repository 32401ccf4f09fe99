//! The named configurations: the paper's GPU setting, a CPU setting that trains in minutes, and
//! the benchmark's CPU setting. `configs/paper-256.json` and `configs/cpu-small.json` are these
//! presets written out (a test checks that they agree).

use cmedl_models::{SegmenterConfig, UNetConfig};

use crate::config::{Mode, TrainConfig};
use crate::device::DeviceSpec;

impl TrainConfig {
    /// The paper's setting for a GPU: 256 px, batch 8, ResNet-9 CycleGAN (ngf 64), 3-layer
    /// PatchGANs (ndf 64), U-Net base 32 depth 4, 100 epochs.
    pub fn paper() -> Self {
        let mut c = Self {
            mode: Mode::Cmedl,
            device: DeviceSpec::Cuda(0),
            ..Default::default()
        };
        c.data.size = 256;
        c.data.spacing = 1.25;
        c.train.batch = 8;
        c.model.generator.ngf = 64;
        c.model.generator.blocks = 9;
        c.model.discriminator.ndf = 64;
        c.model.segmenter = unet(32, 4);
        c
    }

    /// A setting that trains in minutes on a laptop CPU: 64 px at 5 mm, batch 4, ngf 8 with 3
    /// blocks, ndf 8, U-Net base 8 depth 3, 20 epochs; the segmenters at a 10× learning rate
    /// with Adam's usual β₁ = 0.9 (the GAN's 0.5 slows them down: chosen on a tuning cohort,
    /// BENCHMARKS.md).
    pub fn cpu_small() -> Self {
        let mut c = Self {
            mode: Mode::Cmedl,
            ..Default::default()
        };
        c.data.size = 64;
        c.data.spacing = 5.0;
        c.train.epochs = 20;
        c.train.batch = 4;
        c.train.seg_lr = Some(2e-3);
        c.train.seg_betas = Some([0.9, 0.999]);
        c.train.checkpoint_every = 100;
        c.model.generator.ngf = 8;
        c.model.generator.blocks = 3;
        c.model.discriminator.ndf = 8;
        c.model.segmenter = unet(8, 3);
        c
    }

    /// The training benchmark's CPU setting, the `cpu` configuration of the PyTorch reference
    /// (`benches/reference/cmedl_step.py`): 64 px, batch 4, ngf 16 with 3 blocks, ndf 16,
    /// U-Net base 8 depth 4.
    pub fn cpu_bench() -> Self {
        let mut c = Self {
            mode: Mode::Cmedl,
            ..Default::default()
        };
        c.data.size = 64;
        c.train.batch = 4;
        c.model.generator.ngf = 16;
        c.model.generator.blocks = 3;
        c.model.discriminator.ndf = 16;
        c.model.segmenter = unet(8, 4);
        c
    }
}

fn unet(base: i64, depth: usize) -> SegmenterConfig {
    SegmenterConfig::Unet(UNetConfig {
        base,
        depth,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_files_are_the_presets() {
        for (text, preset) in [
            (
                include_str!("../../../configs/paper-256.json"),
                TrainConfig::paper(),
            ),
            (
                include_str!("../../../configs/cpu-small.json"),
                TrainConfig::cpu_small(),
            ),
        ] {
            assert_eq!(TrainConfig::from_json(text, "preset").unwrap(), preset);
        }
    }

    #[test]
    fn the_benchmark_preset_is_the_references_cpu_setting() {
        let c = TrainConfig::cpu_bench();
        let reference = include_str!("../../../benches/reference/cmedl_step.py");
        let line = format!(
            "\"cpu\": dict(size={}, batch={}, ngf={}, blocks={}, ndf={}, base=8, depth=4)",
            c.data.size,
            c.train.batch,
            c.model.generator.ngf,
            c.model.generator.blocks,
            c.model.discriminator.ndf
        );
        assert!(reference.contains(&line), "{line}");
        assert_eq!(c.model.segmenter, unet(8, 4));
    }
}
