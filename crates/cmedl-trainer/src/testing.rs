//! Helpers shared by the unit tests: networks small enough to train in milliseconds on a CPU.

use tch::{nn, Device};

use crate::config::TrainConfig;
use crate::networks::Networks;
use cmedl_models::{SegmenterConfig, UNetConfig};

/// The default config with 4-channel translators, discriminators and a two-level U-Net.
pub fn tiny_config() -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.generator.ngf = 4;
    c.model.generator.blocks = 1;
    c.model.discriminator.ndf = 4;
    c.model.segmenter = SegmenterConfig::Unet(UNetConfig {
        base: 4,
        depth: 2,
        ..Default::default()
    });
    c.loss.pool_size = 4;
    c
}

/// The networks of `config` on the CPU, built while no other test draws from libtorch's
/// global generator.
pub fn build(config: &TrainConfig) -> Networks {
    let _turn = crate::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    Networks::build(config, Device::Cpu).unwrap()
}

/// The variable store a network is saved under (`"student"`, `"g_s2t"`, …).
pub fn store<'a>(nets: &'a Networks, name: &str) -> &'a nn::VarStore {
    nets.stores()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, vs)| vs)
        .unwrap_or_else(|| panic!("no network '{name}'"))
}
