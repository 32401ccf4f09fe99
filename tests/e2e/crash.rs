//! SIGKILL during training, ten times at varying moments: every resume starts from a complete
//! checkpoint, `metrics.jsonl` stays valid JSON lines, and the final weights equal those of a
//! run that was never interrupted, bit for bit.

use std::time::Duration;

use cmedl_trainer::log::LogRecord;
use cmedl_trainer::RunDir;
use tch::Tensor;

use crate::train::{tiny_config, tiny_phantom};
use crate::TestCommand;

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
        let mut cmd = TestCommand::new("train");
        cmd.arg("--quiet");
        if latest.exists() {
            cmd.arg("--resume").arg(&run);
            resumed += 1;
        } else if run.join("config.json").exists() && i % 2 == 1 {
            // Killed before its first checkpoint: --resume starts it again from step 0 …
            cmd.arg("--resume").arg(&run);
        } else {
            // … and so does --out on the same folder (its stale lock is taken over).
            cmd.arg("--config")
                .arg(&config)
                .arg("--out")
                .arg(&run)
                .args(overrides);
        }
        let mut child = cmd.spawn_silent();
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
            // Every line but a torn last one is a valid record.
            for l in lines.iter().take(lines.len().saturating_sub(1)) {
                serde_json::from_str::<LogRecord>(l)
                    .unwrap_or_else(|e| panic!("kill {i}: bad line {l}: {e}"));
            }
        }
    }
    assert!(
        resumed >= 3,
        "only {resumed} of the kills left a checkpoint to resume from"
    );
    TestCommand::new("train")
        .arg("--quiet")
        .arg("--resume")
        .arg(&run)
        .succeeds();
    assert!(run.join("checkpoints/final.safetensors").exists());
    let log = RunDir::new(&run);
    let records = log.read_log();
    let lines = std::fs::read_to_string(log.log_file()).unwrap();
    assert_eq!(
        records.len(),
        lines.lines().count(),
        "every line is a record"
    );
    let steps: Vec<usize> = records
        .into_iter()
        .filter_map(|r| match r {
            LogRecord::Step(s) => Some(s.step),
            LogRecord::Epoch(_) => None,
        })
        .collect();
    let expected: Vec<usize> = (1..=120).collect();
    assert_eq!(
        steps, expected,
        "each step logged once, in order, after all the resumptions"
    );
    assert!(
        !run.join(".lock").exists(),
        "the lock is released at the end"
    );

    // The same run, never interrupted, ends with the same weights and optimiser state.
    let straight = dir.path().join("straight");
    TestCommand::new("train")
        .arg("--quiet")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&straight)
        .args(overrides)
        .succeeds();
    let read = |p: std::path::PathBuf| {
        let mut t = Tensor::read_safetensors(p).unwrap();
        t.retain(|(n, _)| n != "__meta_json__");
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    let (a, b) = (
        read(run.join("checkpoints/final.safetensors")),
        read(straight.join("checkpoints/final.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after {resumed} resumptions");
    }
}

/// A real SIGINT (Ctrl-C) during training: the run saves `latest`, exits 130, and resumes.
#[cfg(unix)]
#[test]
fn sigint_saves_and_exits_130_then_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("run");
    let mut child = TestCommand::new("train")
        .arg("--quiet")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args([
            "--set",
            "train.epochs=200",
            "--set",
            "train.max_steps_per_epoch=3",
        ])
        .spawn_silent();
    let log = run.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "training never logged"
        );
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(run.join("checkpoints/latest.safetensors").exists());
    assert!(!run.join(".lock").exists(), "the lock is released");
    let (_, meta) =
        cmedl_trainer::checkpoint::read(&run.join("checkpoints/latest.safetensors")).unwrap();
    assert!(meta.step >= 1);
    // Resumed, it goes on from the saved step (stopped again three steps later).
    TestCommand::new("train")
        .arg("--quiet")
        .arg("--resume")
        .arg(&run)
        .args(["--stop-at-step", &(meta.step + 3).to_string()])
        .expect_exit(130);
    let steps: Vec<usize> = RunDir::new(&run)
        .read_log()
        .into_iter()
        .filter_map(|r| match r {
            LogRecord::Step(s) => Some(s.step),
            LogRecord::Epoch(_) => None,
        })
        .collect();
    assert_eq!(steps.last(), Some(&(meta.step + 3)), "{steps:?}");
}
