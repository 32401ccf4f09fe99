use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

use crate::{cmedl, text};

/// A tiny phantom with both MRI contrasts and validation/test splits for every modality.
pub fn tiny_phantom(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    let out = cmedl(&[
        "phantom",
        "--out",
        root.to_str().unwrap(),
        "--ct",
        "2",
        "--mr",
        "2",
        "--val",
        "1",
        "--test",
        "1",
        "--size",
        "32",
        "--slices",
        "6",
        "--spacing",
        "10,10,20",
        "--mr-contrast",
        "both",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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

fn train(args: &[&str]) -> std::process::Output {
    let mut all = vec!["train", "--quiet"];
    all.extend_from_slice(args);
    cmedl(&all)
}

fn metrics_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid metrics line {l}: {e}"))
        })
        .collect()
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
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--stop-at-step",
            "3",
        ];
        args.extend(&extra);
        let out = train(&args);
        assert_eq!(out.status.code(), Some(130), "{name}: {}", text(&out));
        assert!(
            run.join("checkpoints/latest.safetensors").exists(),
            "{name}"
        );
        let out = train(&["--resume", run.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        for file in ["best", "final", "latest"] {
            assert!(
                run.join(format!("checkpoints/{file}.safetensors")).exists(),
                "{name}: {file}"
            );
        }
        let lines = metrics_lines(&run);
        let epochs: Vec<&serde_json::Value> =
            lines.iter().filter(|l| l["kind"] == "epoch").collect();
        assert_eq!(epochs.len(), 2, "{name}: {lines:?}");
        let steps: Vec<u64> = lines
            .iter()
            .filter(|l| l["kind"] == "step")
            .map(|l| l["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![1, 2, 3, 4], "{name}");
        assert!(lines
            .iter()
            .filter(|l| l["kind"] == "step")
            .all(|l| l["losses"]["total"].as_f64().unwrap().is_finite()));
    }
}

#[test]
fn resumed_training_is_bit_identical_to_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = train(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = train(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--stop-at-step",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let out = train(&["--resume", b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (ta, tb) = (
        tensors(&a.join("checkpoints/final.safetensors")),
        tensors(&b.join("checkpoints/final.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    for (name, t) in &ta {
        assert!(t.equal(&tb[name]), "{name} differs after resumption");
    }
}

#[test]
fn the_student_overfits_a_few_slices() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let out = cmedl(&[
        "phantom",
        "--out",
        root.to_str().unwrap(),
        "--ct",
        "1",
        "--mr",
        "0",
        "--val",
        "0",
        "--test",
        "0",
        "--size",
        "48",
        "--slices",
        "8",
        "--spacing",
        "6,6,12",
        "--seed",
        "3",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = train(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let best = metrics_lines(&run)
        .iter()
        .filter(|l| l["kind"] == "epoch")
        .map(|l| l["val_dice"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    assert!(best > 0.9, "best Dice {best}");
}

#[test]
fn dry_run_lists_the_paper_networks_with_their_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/paper-256.json");
    let out = train(&[
        "--config",
        config,
        "--data",
        data.to_str().unwrap(),
        "--out",
        "unused",
        "--device",
        "cpu",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
fn a_nan_loss_stops_training_naming_the_term_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("nan");
    let out = train(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--mode",
        "ct-only",
        "--set",
        "train.lr=1e30",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loss term 'seg_student'") && stderr.contains("at step"),
        "{stderr}"
    );
    let run2 = dir.path().join("skip");
    let out = train(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        run2.to_str().unwrap(),
        "--mode",
        "ct-only",
        "--set",
        "train.lr=1e30",
        "--skip-nonfinite",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    for (args, expect) in [
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
            vec!["--resume", dir.path().join("nothing").to_str().unwrap()],
            "no such checkpoint",
        ),
        (
            vec!["--config", c, "--out", "x", "--set", "precision=bf16"],
            "bf16",
        ),
    ] {
        let out = train(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
