//! `cmedl doctor`: what libtorch this is, which devices it sees, and whether they compute.

use std::time::Instant;

use serde::Serialize;
use tch::{Cuda, Device, Kind, Tensor};

use cmedl_trainer::DeviceSpec;

use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl doctor`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Check only this device: auto, cpu, cuda or cuda:N [default: every device].
    #[arg(long)]
    device: Option<DeviceSpec>,
}

/// Runs `cmedl doctor`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let only = args.device.map(DeviceSpec::resolve).transpose()?;
    let report = gather(only);
    if args.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.to_string()))?;
        outln!("{text}");
    } else {
        out!("{}", report.human());
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Internal(
            "a device check failed (see above)".to_owned(),
        ))
    }
}

/// Everything `doctor` found out.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Version of this cmedl build.
    pub cmedl_version: &'static str,
    /// PyTorch version the binary was built against.
    pub libtorch_build_version: &'static str,
    /// The libtorch library this process actually loaded.
    pub libtorch_loaded_from: Option<String>,
    /// Intra-op threads libtorch uses on the CPU.
    pub cpu_threads: i32,
    /// Whether a CUDA device is usable.
    pub cuda_available: bool,
    /// Whether cuDNN is usable.
    pub cudnn_available: bool,
    /// The cuDNN version, when cuDNN is usable.
    pub cudnn_version: Option<i64>,
    /// Each CUDA device.
    pub cuda_devices: Vec<GpuInfo>,
    /// One conv forward+backward per checked device.
    pub checks: Vec<Check>,
}

/// One CUDA device.
#[derive(Debug, Serialize)]
pub struct GpuInfo {
    /// CUDA ordinal.
    pub index: usize,
    /// Product name, from `nvidia-smi` when it is installed.
    pub name: Option<String>,
    /// Total memory in MiB, from `nvidia-smi` when it is installed.
    pub memory_mib: Option<u64>,
}

/// The outcome of the compute check on one device.
#[derive(Debug, Serialize)]
pub struct Check {
    /// The device, as `cpu` or `cuda:N`.
    pub device: String,
    /// Whether forward and backward ran and gave the reference values.
    pub passed: bool,
    /// What was compared, or what failed.
    pub detail: String,
    /// Wall time of the check in milliseconds.
    pub millis: f64,
}

/// Gathers the report; `only` restricts the compute check to one device.
pub fn gather(only: Option<Device>) -> Report {
    let cuda_available = Cuda::is_available();
    let cudnn_available = Cuda::cudnn_is_available();
    let count = Cuda::device_count().max(0) as usize;
    let smi = nvidia_smi();
    let cuda_devices = (0..count)
        .map(|index| GpuInfo {
            index,
            name: smi.get(index).map(|g| g.0.clone()),
            memory_mib: smi.get(index).map(|g| g.1),
        })
        .collect();
    let devices: Vec<Device> = match only {
        Some(device) => vec![device],
        None => std::iter::once(Device::Cpu)
            .chain((0..count).map(Device::Cuda))
            .collect(),
    };
    Report {
        cmedl_version: env!("CARGO_PKG_VERSION"),
        libtorch_build_version: option_env!("CMEDL_LIBTORCH_BUILD_VERSION").unwrap_or("unknown"),
        libtorch_loaded_from: loaded_libtorch(),
        cpu_threads: tch::get_num_threads(),
        cuda_available,
        cudnn_available,
        cudnn_version: (cuda_available && cudnn_available).then(tch::utils::version_cudnn),
        cuda_devices,
        checks: devices.into_iter().map(check).collect(),
    }
}

impl Report {
    /// Whether every compute check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The report for a person.
    pub fn human(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut s = format!(
            "cmedl {}\ntorch {} (built against)\nlibtorch loaded from {}\nCPU threads {}\nCUDA available: {}\ncuDNN available: {}{}\n",
            self.cmedl_version,
            self.libtorch_build_version,
            self.libtorch_loaded_from.as_deref().unwrap_or("(unknown)"),
            self.cpu_threads,
            yes(self.cuda_available),
            yes(self.cudnn_available),
            self.cudnn_version.map(|v| format!(" (version {v})")).unwrap_or_default(),
        );
        for gpu in &self.cuda_devices {
            s += &format!(
                "  cuda:{} {} {}\n",
                gpu.index,
                gpu.name
                    .as_deref()
                    .unwrap_or("(name unknown: nvidia-smi not found)"),
                gpu.memory_mib
                    .map(|m| format!("{m} MiB"))
                    .unwrap_or_default()
            );
        }
        for c in &self.checks {
            s += &format!(
                "check {:<7} {} ({:.1} ms): {}\n",
                c.device,
                if c.passed { "passed" } else { "FAILED" },
                c.millis,
                c.detail
            );
        }
        s
    }
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_owned(),
    }
}

/// A 3×3 conv forward and backward whose results are known in closed form.
///
/// With an all-ones 1×1×8×8 input and an all-ones 2×1×3×3 kernel (padding 1), each output is
/// the number of in-image taps: 9 inside, 6 on edges, 4 at corners. The sum over both output
/// channels is 2·(36·9 + 24·6 + 4·4) = 968; the gradient of that sum with respect to the
/// kernel counts, for each tap, the outputs that read an in-image pixel: 7·7 = 49 for the
/// corner taps, 7·8 = 56 for edge taps, 64 for the centre.
fn check(device: Device) -> Check {
    let start = Instant::now();
    let result = std::panic::catch_unwind(|| -> Result<String, tch::TchError> {
        let x = Tensor::f_ones([1, 1, 8, 8], (Kind::Float, device))?;
        let w = Tensor::f_ones([2, 1, 3, 3], (Kind::Float, device))?.set_requires_grad(true);
        let y = x.f_conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1)?;
        let total = y.f_sum(Kind::Float)?;
        total.f_backward()?;
        let sum = total.f_double_value(&[])?;
        let grad = w.grad().f_to_device(Device::Cpu)?;
        let grad: Vec<f32> = Vec::<f32>::try_from(grad.f_flatten(0, -1)?)?;
        let expected_grad = [49., 56., 49., 56., 64., 56., 49., 56., 49.];
        let grad_ok = grad.len() == 18
            && grad
                .iter()
                .zip(expected_grad.iter().cycle())
                .all(|(g, e)| (g - e).abs() < 1e-4);
        if (sum - 968.0).abs() > 1e-3 || !grad_ok {
            return Err(tch::TchError::Kind(format!(
                "wrong values: sum {sum} (expected 968), kernel gradient {grad:?}"
            )));
        }
        if let Device::Cuda(n) = device {
            Cuda::synchronize(n as i64);
        }
        Ok("conv2d forward and backward match the closed-form values".to_owned())
    });
    let (passed, detail) = match result {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(err)) => (false, err.to_string()),
        Err(_) => (
            false,
            "libtorch raised an error during the check".to_owned(),
        ),
    };
    Check {
        device: device_name(device),
        passed,
        detail,
        millis: start.elapsed().as_secs_f64() * 1e3,
    }
}

/// The path of the `libtorch_cpu.so` mapped into this process.
fn loaded_libtorch() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .map(str::to_owned)
}

/// `(name, memory MiB)` per GPU from `nvidia-smi`, empty when it is not installed.
fn nvidia_smi() -> Vec<(String, u64)> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output();
    let Ok(out) = out else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, mem) = line.rsplit_once(',')?;
            Some((name.trim().to_owned(), mem.trim().parse().ok()?))
        })
        .collect()
}
