use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

use cmedl_trainer::log::{EpochRecord, LogRecord, StepRecord};
use cmedl_trainer::RunDir;

use crate::TestCommand;

/// A tiny phantom with both MRI contrasts and validation/test splits for every modality.
pub fn tiny_phantom(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    TestCommand::new("phantom")
        .arg("--out")
        .arg(&root)
        .args(["--ct", "2", "--mr", "2", "--val", "1", "--test", "1"])
        .args(["--size", "32", "--slices", "6", "--spacing", "10,10,20"])
        .args(["--mr-contrast", "both", "--quiet"])
        .succeeds();
    root
}

/// Tiny networks that train in a second on a CPU.
pub fn tiny_config(dir: &Path, data: &Path) -> PathBuf {
    let config = serde_json::json!({
        "model": {
            "generator": {"ngf": 4, "blocks": 1},
            "discriminator": {"ndf": 4},
            "segmenter": {"kind": "unet", "base": 4, "depth": 2},
            "nce_layers": ["input", "stem", "down1"],
            "nce_dim": 8
        },
        "loss": {"patch_nce": {"patches": 16, "temperature": 0.07}, "pool_size": 4},
        "data": {"root": data, "size": 32, "spacing": 10.0},
        "train": {"epochs": 2, "batch": 2, "max_steps_per_epoch": 2, "log_every": 1, "checkpoint_every": 1},
        "device": "cpu"
    });
    let path = dir.join("tiny.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// A one-epoch `ct-only` run of `config` trained into `dir/name` (`extra`: more options).
pub fn tiny_ct_run(dir: &Path, config: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let run = dir.join(name);
    train()
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(&run)
        .args(["--mode", "ct-only", "--set", "train.epochs=1"])
        .args(extra)
        .succeeds();
    run
}

/// `cmedl train --quiet`.
fn train() -> TestCommand {
    let mut cmd = TestCommand::new("train");
    cmd.arg("--quiet");
    cmd
}

/// The step and epoch records of a run's log; every line must parse.
fn log_records(run: &Path) -> (Vec<StepRecord>, Vec<EpochRecord>) {
    let dir = RunDir::new(run);
    let text = std::fs::read_to_string(dir.log_file()).unwrap();
    let records = dir.read_log();
    assert_eq!(records.len(), text.lines().count(), "{text}");
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    for r in records {
        match r {
            LogRecord::Step(s) => steps.push(s),
            LogRecord::Epoch(e) => epochs.push(e),
        }
    }
    (steps, epochs)
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn every_mode_and_teacher_setting_trains_checkpoints_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("ct-only", vec!["--mode", "ct-only"]),
        ("cmedl", vec!["--mode", "cmedl"]),
        ("no-distill", vec!["--mode", "cmedl-no-distill"]),
        ("pmri-only", vec!["--mode", "pmri-only"]),
        ("ct-pmri", vec!["--mode", "ct+pmri"]),
        ("weak", vec!["--set", "teacher=weak"]),
        ("equal", vec!["--set", "teacher=equal"]),
        ("cut", vec!["--set", "model.i2i=cut"]),
    ];
    for (name, extra) in cases {
        let run = dir.path().join(name);
        train()
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&run)
            .args(["--stop-at-step", "3"])
            .args(&extra)
            .expect_exit(130);
        assert!(
            run.join("checkpoints/latest.safetensors").exists(),
            "{name}"
        );
        train().arg("--resume").arg(&run).succeeds();
        for file in ["best", "final", "latest"] {
            assert!(
                run.join(format!("checkpoints/{file}.safetensors")).exists(),
                "{name}: {file}"
            );
        }
        let (steps, epochs) = log_records(&run);
        assert_eq!(epochs.len(), 2, "{name}: {epochs:?}");
        let numbers: Vec<usize> = steps.iter().map(|s| s.step).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4], "{name}");
        assert!(steps.iter().all(|s| s.losses["total"].is_finite()));
    }
}

#[test]
fn resumed_training_is_bit_identical_to_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // -v shows the library's debug events: logged steps and checkpoint writes.
    let out = train()
        .arg("-v")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&a)
        .succeeds();
    let events = crate::stderr(&out);
    assert!(
        events.contains("debug cmedl_trainer::trainer: step")
            && events.contains("latest.safetensors"),
        "{events}"
    );
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&b)
        .args(["--stop-at-step", "3"])
        .expect_exit(130);
    train().arg("--resume").arg(&b).succeeds();
    assert_resumed_equals_uninterrupted(&a, &b);
}

/// The final checkpoint of a resumed run holds the uninterrupted run's tensors, bit for bit.
fn assert_resumed_equals_uninterrupted(uninterrupted: &Path, resumed: &Path) {
    let (ta, tb) = (
        tensors(&uninterrupted.join("checkpoints/final.safetensors")),
        tensors(&resumed.join("checkpoints/final.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    for (name, t) in &ta {
        assert!(t.equal(&tb[name]), "{name} differs after resumption");
    }
}

#[test]
fn without_distillation_the_student_is_the_ct_only_student() {
    // Equal starts and the same batches: nothing but the hint term reaches the student, so
    // cmedl-no-distill's student must be ct-only's, bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let runs = ["ct-only", "cmedl-no-distill", "cmedl"].map(|mode| {
        let run = dir.path().join(mode);
        train()
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&run)
            .args(["--mode", mode])
            .succeeds();
        tensors(&run.join("checkpoints/final.safetensors"))
    });
    let student = |t: &HashMap<String, Tensor>| {
        let mut s: Vec<(String, Tensor)> = t
            .iter()
            .filter(|(k, _)| k.starts_with("student."))
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    };
    let (a, b, c) = (student(&runs[0]), student(&runs[1]), student(&runs[2]));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x.equal(y),
            "{name} differs between ct-only and cmedl-no-distill"
        );
    }
    // The hint term does reach cmedl's student.
    assert!(a.iter().zip(&c).any(|((_, x), (_, y))| !x.equal(y)));
}

#[test]
fn distillation_options_train_and_the_teacher_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("options");
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args(["--set", "loss.distill.adaptor=true"])
        .args(["--set", "loss.distill.gate_on_teacher=true"])
        .args(["--set", "loss.distill.warmup_epochs=1"])
        .args(["--set", "loss.distill.normalize=channel"])
        .args(["--set", "loss.teacher_domain_bn=true"])
        .succeeds();
    let (_, epochs) = log_records(&run);
    assert_eq!(epochs.len(), 2);
    for e in &epochs {
        assert!(e.teacher_dice_pmri.is_some(), "{e:?}");
        assert!(
            e.teacher_dice_real.is_some(),
            "the phantom's MR validation cases are labelled"
        );
    }
    // The gate is closed in the first epoch (no validation yet): no hint term at all.
    assert_eq!(epochs[0].distill_scale, Some(0.0));
    assert!(!epochs[0].losses.contains_key("distill"));
    // Then it follows the teacher: open (warm-up over) exactly when the teacher was ahead.
    let ahead = epochs[0].teacher_dice_pmri.unwrap() > epochs[0].val_dice;
    assert_eq!(epochs[1].distill_scale, Some(if ahead { 1.0 } else { 0.0 }));
    let weights = tensors(&run.join("checkpoints/final.safetensors"));
    assert!(weights.keys().any(|k| k.starts_with("adaptor.")));
    assert!(weights.keys().any(|k| k.starts_with("teacher_real_bn.")));
    // ct-only has no teacher to watch.
    let plain = dir.path().join("plain");
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&plain)
        .args(["--mode", "ct-only"])
        .succeeds();
    assert!(log_records(&plain)
        .1
        .iter()
        .all(|e| e.teacher_dice_pmri.is_none()));
}

#[test]
fn the_student_overfits_a_few_slices() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    TestCommand::new("phantom")
        .arg("--out")
        .arg(&root)
        .args(["--ct", "1", "--mr", "0", "--val", "0", "--test", "0"])
        .args(["--size", "48", "--slices", "8", "--spacing", "6,6,12"])
        .args(["--seed", "3", "--quiet"])
        .succeeds();
    // Validate on the training case itself.
    let index_path = root.join("dataset.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    let mut again = index["modalities"]["ct"]["train"][0].clone();
    again["id"] = serde_json::json!("again");
    index["modalities"]["ct"]["val"] = serde_json::json!([again]);
    std::fs::write(&index_path, index.to_string()).unwrap();
    let config = serde_json::json!({
        "mode": "ct-only",
        "model": {"segmenter": {"kind": "unet", "base": 8, "depth": 3}},
        "data": {"root": root, "size": 48, "spacing": 6.0, "empty_share": 0.0,
                 "augment": {"flip": 0.0, "rotate_deg": 0.0, "scale": 0.0, "intensity": 0.0}},
        "train": {"epochs": 60, "decay_epochs": 0, "batch": 4, "lr": 0.003, "betas": [0.9, 0.999], "log_every": 50, "checkpoint_every": 1000},
        "device": "cpu"
    });
    let cfg = dir.path().join("overfit.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let run = dir.path().join("run");
    train()
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .succeeds();
    let best = log_records(&run)
        .1
        .iter()
        .map(|e| e.val_dice)
        .filter(|d| d.is_finite())
        .fold(0.0, f64::max);
    assert!(best > 0.9, "best Dice {best}");
}

#[test]
fn dry_run_lists_the_paper_networks_with_their_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/paper-256.json");
    let out = train()
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(&data)
        .args(["--out", "unused", "--device", "cpu", "--dry-run"])
        .expect_exit(0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (net, count) in [
        ("g_s2t", 11_365_633),
        ("g_t2s", 11_365_633),
        ("d_t", 2_762_689),
        ("d_s", 2_762_689),
        ("teacher", 7_762_498),
        ("student", 7_762_498),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(net))
            .unwrap_or_else(|| panic!("{net} missing:\n{stdout}"));
        assert!(line.contains(&count.to_string()), "{line}");
    }
    assert!(stdout.contains("steps per epoch"), "{stdout}");
    assert!(!Path::new("unused").exists());
}

#[test]
fn cut_on_the_cpu_preset_takes_patchnce_layers_its_generator_has() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/cpu-small.json");
    // The CPU preset's generator has 3 residual blocks: the default taps end at res3, not res4.
    let stdout = train()
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(&data)
        .args([
            "--out",
            "unused",
            "--device",
            "cpu",
            "--set",
            "model.i2i=cut",
        ])
        .arg("--dry-run")
        .stdout();
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("head")),
        "{stdout}"
    );
}

#[test]
fn a_nan_loss_stops_training_naming_the_term_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("nan");
    let out = train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args(["--mode", "ct-only", "--set", "train.lr=1e30"])
        .expect_exit(1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loss term 'seg_student'") && stderr.contains("at step"),
        "{stderr}"
    );
    // The exploded update was finite and saved; the checkpoint is not called good.
    assert!(!stderr.contains("last good checkpoint"), "{stderr}");
    assert!(
        stderr.contains("holds the weights that led here"),
        "{stderr}"
    );
    let run2 = dir.path().join("skip");
    let out = train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run2)
        .args([
            "--mode",
            "ct-only",
            "--set",
            "train.lr=1e30",
            "--skip-nonfinite",
            "100",
        ])
        .expect_exit(0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("step skipped"));
}

#[test]
fn bad_training_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let c = config.to_str().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"train": {"epochz": 3}}"#).unwrap();
    let nothing = dir.path().join("nothing");
    let cases: [(Vec<&str>, &str); 8] = [
        (
            vec!["--config", c, "--out", "x", "--set", "train.nope=1"],
            "unknown key 'train.nope'",
        ),
        (
            vec!["--config", bad_json.to_str().unwrap(), "--out", "x"],
            "epochz",
        ),
        (
            vec!["--config", c, "--out", "x", "--mode", "magic"],
            "magic",
        ),
        (
            vec!["--config", c, "--out", "x", "--data", "/nonexistent/data"],
            "/nonexistent/data",
        ),
        (
            vec!["--config", c, "--out", "x", "--device", "cuda:5"],
            "cuda:5",
        ),
        (
            vec!["--resume", nothing.to_str().unwrap()],
            "no such checkpoint",
        ),
        (
            vec!["--config", c, "--out", "x", "--set", "precision=fp8"],
            "fp8",
        ),
        (
            vec!["--resume", "x", "--set", "train.epochs=9"],
            "cannot be used with",
        ),
    ];
    for (args, expect) in cases {
        train().args(&args).fails_with(2, expect);
    }
}

#[test]
fn a_run_draws_progress_png_after_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("run");
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args(["--mode", "ct-only", "--stop-at-step", "2"])
        .expect_exit(130);
    // After the first epoch (2 steps), before the run ends.
    let first = image::open(run.join("progress.png")).unwrap();
    assert_eq!((first.width(), first.height()), (800, 300));
    // One panel of 32 px at 8× and the legend underneath.
    let sample = image::open(run.join("samples/epoch_001.png")).unwrap();
    assert_eq!((sample.width(), sample.height()), (320, 256 + 34));
    train().arg("--resume").arg(&run).succeeds();
    assert!(run.join("samples/epoch_002.png").exists());
    let last = image::open(run.join("progress.png")).unwrap();
    assert_ne!(
        first.to_rgb8().into_raw(),
        last.to_rgb8().into_raw(),
        "redrawn with the second epoch"
    );
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    TestCommand::new("report").arg(&run).succeeds();
    assert!(run.join("report.md").exists());
}

#[test]
fn without_a_dataset_a_run_trains_on_a_phantom_generated_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("first");
    let out = train().arg("--out").arg(&run).arg("--dry-run").succeeds();
    assert!(crate::stderr(&out).contains("generating the synthetic phantom cohort"));
    assert!(run.join("data/dataset.json").exists());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("24 ct training cases"), "{stdout}");
    // Without a config the preset follows the device: the small networks on a CPU.
    if !tch::Cuda::is_available() {
        assert!(
            crate::stderr(&out).contains("no --config: using the cpu-small preset"),
            "{}",
            crate::stderr(&out)
        );
        assert!(stdout.contains("\"ngf\": 8"), "{stdout}");
    }
    let cpu = train()
        .arg("--out")
        .arg(&run)
        .args(["--device", "cpu", "--dry-run"])
        .succeeds();
    assert!(String::from_utf8_lossy(&cpu.stdout).contains("\"ngf\": 8"));
}

#[test]
fn a_dry_run_inspects_a_cuda_config_on_a_machine_without_cuda() {
    if tch::Cuda::is_available() {
        return; // the question does not arise on a GPU machine
    }
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let stdout = train()
        .arg("--config")
        .arg(&config)
        .args(["--out", "unused", "--device", "cuda", "--dry-run"])
        .stdout();
    assert!(stdout.contains("inspected on the CPU"), "{stdout}");
    assert!(stdout.contains("steps per epoch"), "{stdout}");
    // Training itself still refuses the missing device.
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--device", "cuda"])
        .fails_with(2, "CUDA is not available");
}

#[test]
fn a_translator_trained_alone_first_leaves_the_segmenters_on_the_same_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = |name: &str, extra: &[&str]| {
        let run = dir.path().join(name);
        train()
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&run)
            .args(["--set", "train.translator_epochs=1"])
            .args(extra)
            .succeeds();
        run
    };
    let structure = ["--set", "loss.structure=true"];
    let no_distill = run(
        "no-distill",
        &[&["--mode", "cmedl-no-distill"][..], &structure].concat(),
    );
    let ct_only = run("ct-only", &["--mode", "ct-only"]);
    // Epoch 1 trains the translator alone: its segmenters are not validated yet.
    let (steps, epochs) = log_records(&no_distill);
    assert_eq!(epochs.len(), 2);
    assert!(epochs[0].val_dice.is_nan() && epochs[0].teacher_dice_pmri.is_none());
    assert!(epochs[1].val_dice.is_finite() && epochs[1].teacher_dice_pmri.is_some());
    assert!(steps[0].losses.contains_key("adv_t") && !steps[0].losses.contains_key("seg_student"));
    assert!(steps[3].losses.contains_key("seg_student"));
    // The structure discriminator sees two channels.
    let weights = tensors(&no_distill.join("checkpoints/final.safetensors"));
    assert!(weights
        .iter()
        .any(|(k, t)| k.starts_with("d_t.") && t.dim() == 4 && t.size()[1] == 2));
    // ct-only passes over the translator's epoch: both students meet the same batches at the
    // same steps and learning rates, and end bit for bit alike.
    let other = tensors(&ct_only.join("checkpoints/final.safetensors"));
    let students: Vec<&String> = weights
        .keys()
        .filter(|k| k.starts_with("student."))
        .collect();
    assert!(!students.is_empty());
    for k in students {
        assert!(weights[k].equal(&other[k]), "{k} differs from ct-only's");
    }
    // Interrupted inside the translator's epoch and resumed: the same weights.
    let cmedl = run("cmedl", &structure);
    let resumed = dir.path().join("resumed");
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&resumed)
        .args(["--set", "train.translator_epochs=1"])
        .args(structure)
        .args(["--stop-at-step", "1"])
        .expect_exit(130);
    train().arg("--resume").arg(&resumed).succeeds();
    assert_resumed_equals_uninterrupted(&cmedl, &resumed);
    // The segmenters need epochs after the translator's.
    train()
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("refused"))
        .args(["--set", "train.translator_epochs=2"])
        .expect_exit(2);
}
