//! Every file of `tests/bad_inputs` makes the relevant command exit with code 2, a message naming
//! the file, and no panic.

use std::path::{Path, PathBuf};

use crate::{cmedl, text};

fn corpus(sub: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/bad_inputs")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn check(args: &[&str], name: &str) {
    let out = cmedl(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    assert!(
        stderr.contains(name),
        "{args:?}: message does not name {name}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn malformed_volumes() {
    let files = corpus("nifti");
    assert!(files.len() >= 30);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.nii.gz");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        check(&["info", f.to_str().unwrap()], name);
        check(
            &["convert", f.to_str().unwrap(), out.to_str().unwrap()],
            name,
        );
        assert!(!out.exists(), "nothing is written for a bad input");
    }
}

#[test]
fn malformed_configs() {
    let files = corpus("configs");
    assert!(files.len() >= 12);
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let run = dir.path().join(name);
        check(
            &[
                "train",
                "--config",
                f.to_str().unwrap(),
                "--data",
                "some/data",
                "--out",
                run.to_str().unwrap(),
            ],
            name,
        );
        assert!(!run.exists(), "no run folder for a bad config");
    }
}

#[test]
fn malformed_datasets() {
    let dirs = corpus("datasets");
    assert!(dirs.len() >= 10);
    let tmp = tempfile::tempdir().unwrap();
    for d in &dirs {
        let name = d.file_name().unwrap().to_str().unwrap();
        let run = tmp.path().join(name);
        check(
            &[
                "train",
                "--data",
                d.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
                "--device",
                "cpu",
                "--set",
                "data.size=32",
                "--set",
                "data.spacing=1.0",
            ],
            name,
        );
    }
}

#[test]
fn malformed_dicom_series() {
    let dirs = corpus("dicom");
    assert!(dirs.len() >= 6);
    let tmp = tempfile::tempdir().unwrap();
    for d in &dirs {
        let name = d.file_name().unwrap().to_str().unwrap();
        check(&["info", d.to_str().unwrap()], name);
        check(
            &[
                "convert",
                d.to_str().unwrap(),
                tmp.path().join("out.nii.gz").to_str().unwrap(),
            ],
            name,
        );
    }
}
