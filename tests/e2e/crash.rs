//! SIGKILL during training, ten times at varying moments: every resume starts from a complete
//! checkpoint and `metrics.jsonl` stays valid JSON lines.

use std::process::{Command, Stdio};
use std::time::Duration;

use tch::Tensor;

use crate::train::{tiny_config, tiny_phantom};
use crate::{cmedl, text};

#[test]
fn killed_training_resumes_from_a_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("run");
    let latest = run.join("checkpoints/latest.safetensors");
    let overrides = [
        "--set",
        "train.epochs=40",
        "--set",
        "train.max_steps_per_epoch=3",
    ];
    let mut resumed = 0;
    for i in 0..10u64 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmedl"));
        cmd.args(["train", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if latest.exists() {
            cmd.args(["--resume", run.to_str().unwrap()]);
            resumed += 1;
        } else {
            if run.exists() {
                std::fs::remove_dir_all(&run).unwrap(); // killed before its first checkpoint
            }
            cmd.args([
                "--config",
                config.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
            ])
            .args(overrides);
        }
        let mut child = cmd.spawn().unwrap();
        // Wait until this process has logged a new step (or finished), then kill it a varying
        // moment later: during steps, log writes and checkpoint writes.
        let lines = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let before = lines(&run.join("metrics.jsonl"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while lines(&run.join("metrics.jsonl")) <= before && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis((i * 97) % 450));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if latest.exists() {
            let tensors = Tensor::read_safetensors(&latest)
                .unwrap_or_else(|e| panic!("kill {i}: torn checkpoint: {e}"));
            assert!(tensors.iter().any(|(n, _)| n == "__meta_json__"));
        }
        if let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) {
            let lines: Vec<&str> = text.lines().collect();
            // Every line but a torn last one is valid JSON.
            for l in lines.iter().take(lines.len().saturating_sub(1)) {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("kill {i}: bad line {l}: {e}"));
            }
        }
    }
    assert!(
        resumed >= 3,
        "only {resumed} of the kills left a checkpoint to resume from"
    );
    let out = cmedl(&["train", "--quiet", "--resume", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(run.join("checkpoints/final.safetensors").exists());
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=120).collect();
    assert_eq!(
        steps, expected,
        "each step logged once, in order, after all the resumptions"
    );
}
