//! Data-parallel training on c10d (Gloo, CPU): two processes with half the batch each end with
//! the weights of one process with the whole batch; without the gradient averaging they do not;
//! under `torchrun` only rank 0 writes and `--resume` continues.

use std::path::{Path, PathBuf};
use std::process::Output;

use cmedl_trainer::log::LogRecord;
use cmedl_trainer::RunDir;
use tch::Tensor;

use crate::train::tiny_phantom;
use crate::TestCommand;

/// A run that does not depend on how its batch is split: the student alone, instance norm, no
/// dropout, Dice per image, unweighted cross-entropy; 4 slices per step, 3 steps.
fn split_invariant_config(dir: &Path, data: &Path) -> PathBuf {
    let config = serde_json::json!({
        "model": {"segmenter": {"kind": "unet", "base": 4, "depth": 2, "norm": "instance"}},
        "loss": {"segmentation": {"batch_dice": false, "class_weights": null}},
        "data": {"root": data, "size": 32, "spacing": 10.0},
        "train": {"epochs": 1, "batch": 4, "max_steps_per_epoch": 3, "log_every": 1, "checkpoint_every": 1},
        "device": "cpu"
    });
    let path = dir.join("split-invariant.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

/// `cmedl train` as ranks 0 and 1 of a two-process launch on this machine.
fn train_two_ranks(config: &Path, out: &Path, extra: &[&str]) -> Vec<Output> {
    let port = free_port();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let rank = rank.to_string();
            TestCommand::new("train")
                .arg("--quiet")
                .arg("--config")
                .arg(config)
                .arg("--out")
                .arg(out)
                .args(["--mode", "ct-only", "--rendezvous-timeout", "60"])
                .args(extra)
                .env("RANK", &rank)
                .env("LOCAL_RANK", &rank)
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("OMP_NUM_THREADS", "1")
                .spawn()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn assert_all_succeeded(outputs: &[Output]) {
    for (rank, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "rank {rank}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The largest difference between the tensors of two checkpoints, the record aside and the
/// convolution biases in front of instance norm: their gradient is zero but for rounding, and
/// Adam scales that rounding noise up to full-size steps (they differ by up to 2e-4 while every
/// other weight and moment agrees to about 1e-7).
fn largest_difference(a: &Path, b: &Path) -> f64 {
    let read = |p: &Path| {
        let mut t = Tensor::read_safetensors(p).unwrap();
        t.retain(|(n, _)| {
            n != "__meta_json__" && !(n.starts_with("student.") && n.ends_with(".conv.bias"))
        });
        t.sort_by(|x, y| x.0.cmp(&y.0));
        t
    };
    let (a, b) = (read(a), read(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta.to_kind(tch::Kind::Double) - tb.to_kind(tch::Kind::Double))
                .abs()
                .max()
                .double_value(&[])
        })
        .fold(0.0, f64::max)
}

fn steps_logged(run: &Path) -> Vec<usize> {
    RunDir::new(run)
        .read_log()
        .into_iter()
        .filter_map(|r| match r {
            LogRecord::Step(s) => Some(s.step),
            LogRecord::Epoch(_) => None,
        })
        .collect()
}

#[test]
fn two_gloo_ranks_with_half_batches_match_one_process_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = split_invariant_config(dir.path(), &data);
    let one = dir.path().join("one");
    TestCommand::new("train")
        .arg("--quiet")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&one)
        .args(["--mode", "ct-only"])
        .env("OMP_NUM_THREADS", "1")
        .succeeds();
    let two = dir.path().join("two");
    assert_all_succeeded(&train_two_ranks(&config, &two, &[]));
    let final_of = |run: &Path| run.join("checkpoints/final.safetensors");
    let diff = largest_difference(&final_of(&one), &final_of(&two));
    assert!(diff < 1e-5, "weights differ by {diff}");
    // Rank 0 alone wrote the log (each step once) and says how the run was launched.
    assert_eq!(steps_logged(&two), vec![1, 2, 3]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        record["parallel"],
        serde_json::json!({"world_size": 2, "backend": "gloo"})
    );

    // The guard: without averaging the gradients, the ranks' runs are not the single run.
    let alone = dir.path().join("alone");
    assert_all_succeeded(&train_two_ranks(&config, &alone, &["--no-gradient-sync"]));
    let diff = largest_difference(&final_of(&one), &final_of(&alone));
    assert!(
        diff > 1e-4,
        "without the sync the weights still agree ({diff})"
    );

    // A global batch that does not split evenly is refused by every rank.
    let odd = train_two_ranks(&config, &dir.path().join("odd"), &["--batch", "3"]);
    for out in odd {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of the 2 processes"));
    }
}

fn under_torchrun(args: &[&std::ffi::OsStr]) -> Output {
    std::process::Command::new(crate::venv_bin("torchrun"))
        .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_cmedl"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

#[test]
fn torchrun_launches_two_ranks_that_resume_from_rank_0s_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = split_invariant_config(dir.path(), &data);
    let run = dir.path().join("run");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    // Stopped after step 2 (as if interrupted), then resumed to the end.
    let out = under_torchrun(&[
        os("train"),
        os("--quiet"),
        os("--config"),
        config.as_os_str(),
        os("--out"),
        run.as_os_str(),
        os("--mode"),
        os("ct-only"),
        os("--set"),
        os("train.epochs=2"),
        os("--stop-at-step"),
        os("2"),
    ]);
    assert!(
        !out.status.success(),
        "the stop is reported as a failure by torchrun"
    );
    let (_, meta) =
        cmedl_trainer::checkpoint::read(&run.join("checkpoints/latest.safetensors")).unwrap();
    assert_eq!(meta.step, 2);
    assert_eq!(steps_logged(&run), vec![1, 2]);
    let out = under_torchrun(&[os("train"), os("--quiet"), os("--resume"), run.as_os_str()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("checkpoints/final.safetensors").exists());
    // Each step logged once: one writer.
    assert_eq!(steps_logged(&run), (1..=6).collect::<Vec<_>>());
    let files: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")),
        "no temporary files left: {files:?}"
    );
    assert!(!run.join(".lock").exists());
}

#[test]
fn a_rank_whose_peers_never_come_exits_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = TestCommand::new("train")
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--rendezvous-timeout", "1"])
        .env("RANK", "0")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", &free_port())
        .expect_exit(1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the other processes") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "nothing written before the group formed"
    );
    // A launch environment that makes no sense is bad input.
    TestCommand::new("train")
        .arg("--out")
        .arg(dir.path().join("run"))
        .env("RANK", "5")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .fails_with(2, "not below the world size");
}
