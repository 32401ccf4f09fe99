//! Throughput measurements of training, prediction and the loader, as JSON records (driven by
//! `cmedl bench` and `cargo xtask bench`, which compares them with the PyTorch reference).

use std::time::Instant;

use cmedl_io::nifti::{read_volume, write_mask, write_volume, DataType, ReadOptions, WriteOptions};
use cmedl_io::{Geometry, Volume};
use cmedl_losses::ImagePool;
use serde_json::json;
use tch::{Device, Kind, Tensor};

use crate::config::{Mode, TrainConfig};
use crate::data::{SliceSet, Streams};
use crate::infer::Predictor;
use crate::networks::Networks;
use crate::optim::Adam;
use crate::step::{train_step, StepInputs, TrainState};
use crate::TrainError;

/// Peak resident memory of this process in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn sync(device: Device) {
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

/// Slices per second of the full training step of `config` on synthetic batches (`name` labels
/// the record). In a data-parallel group each rank takes its share of `train.batch` and the
/// step includes the gradient allreduce; the throughput is the global one.
pub fn bench_train(
    name: &str,
    config: &TrainConfig,
    steps: usize,
    warmup: usize,
    device: Device,
    group: Option<&cmedl_dist::ProcessGroup>,
) -> Result<serde_json::Value, TrainError> {
    let config = config.clone();
    let world = group.map_or(1, cmedl_dist::ProcessGroup::world_size);
    if !config.train.batch.is_multiple_of(world) {
        return Err(TrainError::Config(format!(
            "train.batch {} must be a multiple of the {world} processes",
            config.train.batch
        )));
    }
    let mut nets = Networks::build(&config, device)?;
    let mut state = TrainState {
        g_opt: Adam::new(nets.translator_side(), config.train.betas, 0.0),
        s_opt: Adam::new(nets.segmenter_side(), config.train.betas, 0.0),
        d_opt: Some(Adam::new(
            nets.discriminator_side(),
            config.train.betas,
            0.0,
        )),
        pool_t: ImagePool::new(config.loss.pool_size, 1),
        pool_s: ImagePool::new(config.loss.pool_size, 2),
    };
    let (b, s) = ((config.train.batch / world) as i64, config.data.size as i64);
    let image = || Tensor::rand([b, 1, s, s], (Kind::Float, device)) * 2.0 - 1.0;
    let labels = || {
        Tensor::rand([b, s, s], (Kind::Float, device))
            .gt(0.9)
            .to_kind(Kind::Int64)
    };
    let (xs, ys, xt, yt) = (image(), labels(), image(), labels());
    // Step times are taken one by one on the CPU (their median resists a busy machine); on a
    // GPU only the whole loop is timed, so that no step waits for the host.
    let per_step = device == Device::Cpu;
    let mut step_s = Vec::with_capacity(steps);
    let mut start = Instant::now();
    for step in 0..warmup + steps {
        if step == warmup {
            sync(device);
            start = Instant::now();
        }
        let began = Instant::now();
        let inputs = StepInputs {
            student: &xs,
            student_labels: &ys,
            teacher: Some(&xt),
            teacher_labels: Some(&yt),
            lr: 2e-4,
            step,
            distill_scale: 1.0,
            segmenters: true,
            sync: group,
        };
        train_step(&mut nets, &mut state, &config, &inputs)?;
        if per_step && step >= warmup {
            step_s.push(began.elapsed().as_secs_f64());
        }
    }
    sync(device);
    let timed = start.elapsed().as_secs_f64();
    let median_s = if step_s.is_empty() {
        timed / steps as f64
    } else {
        step_s.sort_by(f64::total_cmp);
        step_s[step_s.len() / 2]
    };
    let optimizer_ms = optimizer_ms(&mut state, device);
    let params: serde_json::Map<String, serde_json::Value> = nets
        .parameter_counts()
        .into_iter()
        .map(|(n, c)| (n.to_owned(), json!(c)))
        .collect();
    let precision = match config.precision {
        crate::Precision::Fp32 => "fp32",
        crate::Precision::Bf16 => "bf16",
    };
    // The global batch: every rank's share is processed in the same step.
    let global = b as f64 * world as f64;
    Ok(json!({
        "bench": "train", "impl": "cmedl", "config": name, "device": device_name(device), "precision": precision,
        "world_size": world, "backend": group.map_or("none", cmedl_dist::ProcessGroup::backend),
        "batch": b * world as i64, "size": s, "steps": steps, "slices_per_s": (steps as f64 * global) / timed,
        "step_ms": timed * 1e3 / steps as f64, "slices_per_s_median": global / median_s,
        "step_ms_median": median_s * 1e3, "optimizer_ms": optimizer_ms,
        "peak_rss_mib": peak_rss_mib(), "params": params,
    }))
}

/// Milliseconds of the three optimisers alone, on the gradients of the last step.
fn optimizer_ms(state: &mut TrainState, device: Device) -> f64 {
    let rounds = 20;
    sync(device);
    let began = Instant::now();
    for _ in 0..rounds {
        state.g_opt.step(2e-4);
        state.s_opt.step(2e-4);
        if let Some(d) = state.d_opt.as_mut() {
            d.step(2e-4);
        }
    }
    sync(device);
    began.elapsed().as_secs_f64() * 1e3 / rounds as f64
}

/// A CT-like 512×512×200 int16 volume: body, lungs and noise.
fn ct_volume() -> Volume {
    let shape = [512, 512, 200];
    let g = Geometry::axis_aligned(shape, [0.8, 0.8, 2.5]);
    let mut data = Vec::with_capacity(g.len());
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let (x, y) = (i as f32 - 256.0, j as f32 - 256.0);
                let body = (x / 200.0).powi(2) + (y / 150.0).powi(2) < 1.0;
                let lung = ((x.abs() - 90.0) / 60.0).powi(2) + (y / 100.0).powi(2) < 1.0;
                let tex = ((i * 7 + j * 13 + k * 31) % 41) as f32 - 20.0;
                data.push(if !body {
                    -1000.0
                } else if lung {
                    -850.0 + tex
                } else {
                    40.0 + tex
                });
            }
        }
    }
    Volume { geometry: g, data }
}

/// Whole-volume prediction (read, preprocess, student, write) and the student alone, with the
/// networks of `config` (`name` labels the records).
pub fn bench_predict(
    name: &str,
    config: &TrainConfig,
    device: Device,
) -> Result<Vec<serde_json::Value>, TrainError> {
    let mut config = config.clone();
    config.mode = Mode::CtOnly;
    config.data.spacing = 0.8 * 512.0 / config.data.size as f64; // the whole field of view
    let nets = Networks::build(&config, device)?;
    let predictor = Predictor::from_parts(config.clone(), nets, device, None);
    let dir = std::env::temp_dir().join(format!("cmedl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::file(&dir, e))?;
    let input = dir.join("ct.nii.gz");
    write_volume(
        &input,
        &ct_volume(),
        &WriteOptions {
            datatype: DataType::I16,
            compression: 1,
            ..Default::default()
        },
    )?;
    let start = Instant::now();
    let volume = read_volume(&input, &ReadOptions::default())?.volume;
    let read_s = start.elapsed().as_secs_f64();
    let seg = predictor.segment(&volume, 16, false, false)?;
    let segment_s = start.elapsed().as_secs_f64() - read_s;
    write_mask(&dir.join("mask.nii.gz"), &seg.labels)?;
    let total = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    // The student alone, on batches of 16 slices.
    let s = config.data.size as i64;
    let x = Tensor::zeros([16, 1, s, s], (Kind::Float, device));
    let reps = if device == Device::Cpu { 5 } else { 50 };
    let t0 = Instant::now();
    tch::no_grad(|| -> Result<(), TrainError> {
        for _ in 0..reps {
            predictor.nets.segment(&x, false)?;
        }
        Ok(())
    })?;
    sync(device);
    let alone = (reps * 16) as f64 / t0.elapsed().as_secs_f64();
    Ok(vec![
        json!({"bench": "predict_volume", "impl": "cmedl", "config": name, "device": device_name(device), "volume": [512, 512, 200],
               "seconds": total, "read_s": read_s, "segment_s": segment_s, "write_s": total - read_s - segment_s, "peak_rss_mib": peak_rss_mib()}),
        json!({"bench": "predict_student", "impl": "cmedl", "config": name, "device": device_name(device), "size": s, "slices_per_s": alone}),
    ])
}

/// Slices per second the loader delivers (both modalities, with the augmentation of `config`).
pub fn bench_loader(
    name: &str,
    config: &TrainConfig,
    steps: usize,
) -> Result<serde_json::Value, TrainError> {
    let s = config.data.size;
    let n = 256;
    let set = || SliceSet {
        size: s,
        images: (0..n * s * s)
            .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
            .collect(),
        labels: (0..n * s * s).map(|i| u8::from(i % 11 == 0)).collect(),
    };
    let streams = Streams {
        student: set(),
        teacher: set(),
        batch: config.train.batch,
        steps_per_epoch: n / config.train.batch,
        seed: 0,
        augment: config.data.augment.clone(),
        shard: (0, 1),
    };
    let start = Instant::now();
    for step in 0..steps {
        let _ = streams.batches(step);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(
        json!({"bench": "loader", "impl": "cmedl", "config": name, "size": s, "batch": config.train.batch, "slices_per_s": (2 * steps * config.train.batch) as f64 / secs}),
    )
}
