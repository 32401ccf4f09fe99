//! Every file of `tests/bad_inputs` makes the relevant command exit with code 2, a message naming
//! the file, and no panic.

use std::path::{Path, PathBuf};

use crate::TestCommand;

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

#[test]
fn malformed_volumes() {
    let files = corpus("nifti");
    assert!(files.len() >= 30);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.nii.gz");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        TestCommand::new("info").arg(f).fails_with(2, name);
        TestCommand::new("convert")
            .arg(f)
            .arg(&out)
            .fails_with(2, name);
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
        TestCommand::new("train")
            .arg("--config")
            .arg(f)
            .args(["--data", "some/data", "--out"])
            .arg(&run)
            .fails_with(2, name);
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
        TestCommand::new("train")
            .arg("--data")
            .arg(d)
            .arg("--out")
            .arg(&run)
            .args(["--device", "cpu", "--set", "data.size=32"])
            .args(["--set", "data.spacing=1.0"])
            .fails_with(2, name);
    }
}

#[test]
fn malformed_dicom_series() {
    let dirs = corpus("dicom");
    assert!(dirs.len() >= 6);
    let tmp = tempfile::tempdir().unwrap();
    for d in &dirs {
        let name = d.file_name().unwrap().to_str().unwrap();
        TestCommand::new("info").arg(d).fails_with(2, name);
        TestCommand::new("convert")
            .arg(d)
            .arg(tmp.path().join("out.nii.gz"))
            .fails_with(2, name);
    }
}
