use cmedl_io::nifti::{read_mask, read_volume, write_volume, DataType, ReadOptions, WriteOptions};
use cmedl_io::{grid_with_spacing, resample_volume, Geometry, Interp};

use crate::train::{tiny_config, tiny_phantom};
use crate::{cmedl, text};

/// Rotates a grid's affine by `angle` about z and changes its spacing: an oblique, resampled copy.
fn oblique_copy(g: &Geometry, angle: f64, spacing: [f64; 3]) -> Geometry {
    let target = grid_with_spacing(g, spacing);
    let (c, s) = (angle.cos(), angle.sin());
    let mut m = target.affine;
    for col in 0..3 {
        let (x, y) = (m[0][col], m[1][col]);
        m[0][col] = c * x - s * y;
        m[1][col] = s * x + c * y;
    }
    Geometry {
        affine: m,
        ..target
    }
}

#[test]
fn predict_keeps_the_input_grid_and_evaluate_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("run");
    let out = cmedl(&[
        "train",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--mode",
        "cmedl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // An oblique test CT with another spacing than training (10 mm in-plane).
    let src = read_volume(
        &data.join("ct/imagesTs/ct_test_000.nii.gz"),
        &ReadOptions::default(),
    )
    .unwrap()
    .volume;
    let grid = oblique_copy(&src.geometry, 0.3, [7.0, 8.0, 20.0]);
    let oblique = resample_volume(&src, &grid, Interp::Linear).unwrap();
    let input = dir.path().join("oblique.nii.gz");
    write_volume(
        &input,
        &oblique,
        &WriteOptions {
            datatype: DataType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    let output = dir.path().join("oblique_mask.nii.gz");
    let out = cmedl(&[
        "predict",
        "--quiet",
        "--run",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--device",
        "cpu",
        "--tta",
        "flip",
        "--probabilities",
        "--largest-component",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mask = read_mask(&output, &ReadOptions::default()).unwrap();
    assert_eq!(mask.geometry.shape, oblique.geometry.shape);
    assert!(
        mask.geometry.same_grid(&oblique.geometry, 1e-4),
        "{:?} vs {:?}",
        mask.geometry.affine,
        oblique.geometry.affine
    );
    let prob = read_volume(
        &dir.path().join("oblique_mask_prob1.nii.gz"),
        &ReadOptions::default(),
    )
    .unwrap()
    .volume;
    assert!(prob.data.iter().all(|p| (0.0..=1.0).contains(p)));

    // Folder prediction in two shards, then evaluation with a paired comparison.
    let preds = dir.path().join("preds");
    for shard in ["0/2", "1/2"] {
        let out = cmedl(&[
            "predict",
            "--quiet",
            "--run",
            run.to_str().unwrap(),
            "--checkpoint",
            "final",
            "--input",
            data.join("ct/imagesTs").to_str().unwrap(),
            "--output",
            preds.to_str().unwrap(),
            "--shard",
            shard,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let results = dir.path().join("results.json");
    let csv = dir.path().join("cases.csv");
    let refs = data.join("ct/labelsTs");
    let out = cmedl(&[
        "evaluate",
        "--pred",
        preds.to_str().unwrap(),
        "--ref",
        refs.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--compare",
        refs.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(json["cases"].as_array().unwrap().len(), 1);
    assert_eq!(json["tolerance_mm"], 2.0);
    assert!(json["summary"]["1"]["dice"]["n"].as_u64().is_some());
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 2);
    // The reference against itself: Dice 1.
    let out = cmedl(&[
        "evaluate",
        "--pred",
        refs.to_str().unwrap(),
        "--ref",
        refs.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(json["summary"]["1"]["dice"]["mean"], 1.0);

    // Translation keeps the grid too.
    let pmri = dir.path().join("pmri.nii.gz");
    let out = cmedl(&[
        "translate",
        "--run",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        pmri.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = read_volume(&pmri, &ReadOptions::default()).unwrap().volume;
    assert!(t.geometry.same_grid(&oblique.geometry, 1e-4));

    // A mismatched grid is refused unless resampling is asked for.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&output, other.join("ct_test_000.nii.gz")).unwrap();
    let out = cmedl(&[
        "evaluate",
        "--pred",
        other.to_str().unwrap(),
        "--ref",
        refs.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resample-pred"));
    let out = cmedl(&[
        "evaluate",
        "--pred",
        other.to_str().unwrap(),
        "--ref",
        refs.to_str().unwrap(),
        "--resample-pred",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
