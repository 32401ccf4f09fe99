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
        let stderr = TestCommand::new("train")
            .arg("--config")
            .arg(f)
            .args(["--data", "some/data", "--out"])
            .arg(&run)
            .fails_with(2, name);
        assert!(!stderr.contains("config: config:"), "{stderr}");
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

#[test]
fn malformed_experiment_configs() {
    let files = corpus("experiments");
    assert!(files.len() >= 7);
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let out = dir.path().join(name);
        let stderr = TestCommand::new("experiment")
            .arg("--config")
            .arg(f)
            .arg("--out")
            .arg(&out)
            .fails_with(2, name);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !out.exists(),
            "{name}: nothing is written for a bad experiment config"
        );
    }
}

/// A series of 4 slices (8 × 6 pixels) and the paths of broken structure sets and SEGs beside it.
fn broken_dicom_objects(dir: &Path) -> (PathBuf, Vec<(PathBuf, &'static str)>) {
    use cmedl_io::dicom::synthetic::{contour, write_rtstruct, write_seg, write_series, SegFrame};
    let ct = dir.join("ct");
    write_series(&ct, "1.2.840.31", &[0.0, 2.5, 5.0, 7.5], 8, 6).unwrap();
    let square = |z: f64| contour(&[[10.0, -20.0], [11.0, -20.0], [11.0, -19.0]], z);
    let mut objects = Vec::new();
    let mut add = |name: &str, what: &'static str| {
        let path = dir.join(name);
        objects.push((path.clone(), what));
        path
    };
    // RTSTRUCTs: NaN and non-finite coordinates, contours on no slice of the series, a cut
    // file, an image given as a structure set.
    write_rtstruct(
        &add("rs_nan.dcm", "--rtstruct"),
        "1.2.840.31",
        &[(
            1,
            "GTV",
            vec![contour(&[[f64::NAN, 0.0], [1.0, 1.0], [2.0, 0.0]], 2.5)],
        )],
    )
    .unwrap();
    write_rtstruct(
        &add("rs_far.dcm", "--rtstruct"),
        "1.2.840.31",
        &[(1, "GTV", vec![square(1e300), square(-400.0)])],
    )
    .unwrap();
    let whole = dir.join("whole.dcm");
    write_rtstruct(&whole, "1.2.840.31", &[(1, "GTV", vec![square(2.5)])]).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(
        add("rs_truncated.dcm", "--rtstruct"),
        &bytes[..bytes.len() * 2 / 3],
    )
    .unwrap();
    let slice = std::fs::read_dir(&ct)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(slice, add("rs_is_an_image.dcm", "--rtstruct")).unwrap();
    // SEGs: no frames at all (NumberOfFrames 0), frames off the series' planes, a cut file.
    write_seg(&add("seg_no_frames.dcm", "--seg"), &[(1, "GTV")], &[], 8, 6).unwrap();
    let frame = |z: f64| SegFrame {
        segment: 1,
        position: [10.0, -20.0, z],
        pixels: vec![1; 48],
    };
    write_seg(
        &add("seg_off_plane.dcm", "--seg"),
        &[(1, "GTV")],
        &[frame(1.3)],
        8,
        6,
    )
    .unwrap();
    let whole = dir.join("whole_seg.dcm");
    write_seg(&whole, &[(1, "GTV")], &[frame(2.5)], 8, 6).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(
        add("seg_truncated.dcm", "--seg"),
        &bytes[..bytes.len() - 20],
    )
    .unwrap();
    (ct, objects)
}

#[test]
fn broken_structure_sets_and_segs() {
    let dir = tempfile::tempdir().unwrap();
    let (ct, objects) = broken_dicom_objects(dir.path());
    let image = dir.path().join("image.nii.gz");
    let mask = dir.path().join("mask.nii.gz");
    for (object, flag) in &objects {
        let name = object.file_name().unwrap().to_str().unwrap();
        let before = std::fs::read(object).unwrap();
        let stderr = TestCommand::new("convert")
            .arg(&ct)
            .arg(&image)
            .arg(flag)
            .arg(object)
            .args(["--roi", "GTV", "--mask-out"])
            .arg(&mask)
            .fails_with(2, name);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!mask.exists(), "{name}: no mask written");
        assert_eq!(std::fs::read(object).unwrap(), before, "{name} unchanged");
    }
}

#[test]
fn corrupt_and_mismatched_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::tiny_phantom(dir.path());
    let config = crate::train::tiny_config(dir.path(), &data);
    let run = crate::train::tiny_ct_run(dir.path(), &config, "run", &[]);
    let good = std::fs::read(run.join("checkpoints/best.safetensors")).unwrap();
    // A checkpoint of wider networks: its weights do not fit the stored config's shapes.
    let wide = crate::train::tiny_ct_run(
        dir.path(),
        &config,
        "wide",
        &["--set", "model.segmenter.base=8"],
    );
    let wide_weights = std::fs::read(wide.join("checkpoints/best.safetensors")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"not a safetensors file at all".to_vec()),
        ("empty", Vec::new()),
        ("header_only", good[..64.min(good.len())].to_vec()),
    ];
    let image = data
        .join("ct/imagesTs")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (what, bytes) in cases {
        let bad = dir.path().join(format!("bad-{what}"));
        std::fs::create_dir_all(bad.join("checkpoints")).unwrap();
        let file = bad.join("checkpoints/best.safetensors");
        std::fs::write(&file, &bytes).unwrap();
        let out = dir.path().join(format!("pred-{what}.nii.gz"));
        let stderr = TestCommand::new("predict")
            .arg("--run")
            .arg(&bad)
            .arg("--input")
            .arg(&image)
            .arg("--output")
            .arg(&out)
            .fails_with(2, "best.safetensors");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!out.exists());
        std::fs::copy(&file, bad.join("checkpoints/latest.safetensors")).unwrap();
        TestCommand::new("train")
            .arg("--resume")
            .arg(&bad)
            .fails_with(2, "latest.safetensors");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "{what}: left as it was"
        );
    }
    // The wide weights under the narrow run's record: a mismatch named, not a libtorch crash.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(mixed.join("checkpoints")).unwrap();
    let (mut tensors, narrow_meta): (Vec<(String, tch::Tensor)>, tch::Tensor) = {
        let wide_t =
            tch::Tensor::read_safetensors(wide.join("checkpoints/best.safetensors")).unwrap();
        let narrow =
            tch::Tensor::read_safetensors(run.join("checkpoints/best.safetensors")).unwrap();
        let meta = narrow
            .into_iter()
            .find(|(n, _)| n == "__meta_json__")
            .unwrap()
            .1;
        (
            wide_t
                .into_iter()
                .filter(|(n, _)| n != "__meta_json__")
                .collect(),
            meta,
        )
    };
    tensors.push(("__meta_json__".into(), narrow_meta));

    let file = mixed.join("checkpoints/best.safetensors");
    tch::Tensor::write_safetensors(&tensors, &file).unwrap();
    assert_ne!(std::fs::read(&file).unwrap(), wide_weights);
    let stderr = TestCommand::new("predict")
        .arg("--run")
        .arg(&mixed)
        .arg("--input")
        .arg(&image)
        .arg("--output")
        .arg(dir.path().join("mixed.nii.gz"))
        .fails_with(2, "best.safetensors");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // An image with NaN voxels: the file is named with the count and what to do.
    let mut v = cmedl_io::nifti::read_volume(&image, &cmedl_io::nifti::ReadOptions::default())
        .unwrap()
        .volume;
    for x in v.data.iter_mut().step_by(97) {
        *x = f32::NAN;
    }
    let nan_count = v.non_finite();
    let nan_image = dir.path().join("nan.nii.gz");
    cmedl_io::nifti::write_volume(&nan_image, &v, &cmedl_io::nifti::WriteOptions::default())
        .unwrap();
    let stderr = TestCommand::new("predict")
        .arg("--run")
        .arg(&run)
        .args(["--device", "cpu", "--input"])
        .arg(&nan_image)
        .arg("--output")
        .arg(dir.path().join("nan-pred.nii.gz"))
        .fails_with(
            2,
            &format!("nan.nii.gz: the image has {nan_count} NaN or infinite voxels"),
        );
    assert!(stderr.contains("replace them"), "{stderr}");
}
