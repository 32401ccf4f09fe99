//! `cmedl bench`: throughput of the training step, prediction and the loader, as JSON lines
//! (driven by `cargo xtask bench`, which also runs the PyTorch reference and compares).

use clap::ValueEnum;
use cmedl_trainer::bench::{bench_loader, bench_predict, bench_train};
use cmedl_trainer::{DeviceSpec, Precision, TrainConfig};

use crate::common::{join_group, DistBackend};
use crate::failure::CmdResult;
use crate::Global;

/// Options of `cmedl bench`.
#[derive(clap::Args)]
pub struct Args {
    /// What to measure (comma-separated).
    #[arg(
        long,
        value_enum,
        default_value = "train,predict,loader",
        value_delimiter = ','
    )]
    what: Vec<Bench>,
    /// Configuration: cpu (64 px, batch 4, small networks) or paper (256 px, batch 8).
    #[arg(long, value_enum, default_value = "cpu")]
    config: BenchConfig,
    /// Timed training steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Device.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Precision of the training step: fp32, or bf16 autocast.
    #[arg(long, value_enum, default_value = "fp32")]
    precision: PrecisionArg,
}

/// The precisions of the training step.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    /// 32-bit floats.
    Fp32,
    /// bf16 autocast (weights and optimiser fp32).
    Bf16,
}

/// The benchmarks.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    /// The full CMEDL training step.
    Train,
    /// Whole-volume prediction and the student alone.
    Predict,
    /// The batch loader.
    Loader,
}

/// The benchmark configurations, as in the PyTorch reference.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchConfig {
    /// `TrainConfig::cpu_bench()`.
    Cpu,
    /// `TrainConfig::paper()`.
    Paper,
}

impl BenchConfig {
    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Paper => "paper",
        }
    }

    fn config(self) -> TrainConfig {
        match self {
            Self::Cpu => TrainConfig::cpu_bench(),
            Self::Paper => TrainConfig::paper(),
        }
    }
}

/// Runs `cmedl bench`: the benchmarks named in `--what`, as JSON lines.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    // Under torchrun the training benchmark is data-parallel; rank 0 reports.
    let group = join_group(DistBackend::Auto, 300)?;
    let device = match (&group, args.device) {
        (Some(g), DeviceSpec::Cuda(_)) => DeviceSpec::Cuda(g.local_rank()),
        (_, d) => d,
    }
    .resolve()?;
    let root = group.as_ref().is_none_or(|g| g.rank() == 0);
    let (name, mut config) = (args.config.name(), args.config.config());
    config.precision = match args.precision {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Bf16 => Precision::Bf16,
    };
    let steps = args.steps.max(1);
    for w in &args.what {
        let lines = match w {
            Bench::Train => vec![bench_train(
                name,
                &config,
                steps,
                args.warmup,
                device,
                group.as_deref(),
            )?],
            Bench::Predict => bench_predict(name, &config, device)?,
            Bench::Loader => vec![bench_loader(name, &config, steps.max(20))?],
        };
        for l in lines.into_iter().filter(|_| root) {
            outln!("{l}");
        }
    }
    Ok(())
}
