use std::path::Path;

use cmedl_io::nifti::{read_mask, read_volume, write_volume, DataType, ReadOptions, WriteOptions};
use cmedl_io::orientation::{axcodes, Reorientation};
use cmedl_io::{grid_with_spacing, resample_volume, Geometry, Interp, Volume};

use crate::train::{tiny_config, tiny_phantom};
use crate::TestCommand;

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

/// The same voxels stored in another order: target axis t is source axis `perm[t]`, reversed
/// when `flip[t]`; every voxel keeps its world position.
fn restored(v: &Volume, perm: [usize; 3], flip: [bool; 3]) -> Volume {
    let g = &v.geometry;
    let shape = perm.map(|s| g.shape[s]);
    let mut affine = g.affine;
    let mut first = [0.0; 3];
    for t in 0..3 {
        let sign = if flip[t] { -1.0 } else { 1.0 };
        for r in 0..3 {
            affine[r][t] = sign * g.affine[r][perm[t]];
        }
        if flip[t] {
            first[perm[t]] = (g.shape[perm[t]] - 1) as f64;
        }
    }
    let origin = g.world(first);
    for r in 0..3 {
        affine[r][3] = origin[r];
    }
    let mut data = Vec::with_capacity(v.data.len());
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let mut src = [0; 3];
                for (t, c) in [i, j, k].into_iter().enumerate() {
                    src[perm[t]] = if flip[t] { shape[t] - 1 - c } else { c };
                }
                data.push(v.data[g.index(src[0], src[1], src[2])]);
            }
        }
    }
    Volume {
        geometry: Geometry {
            shape,
            spacing: perm.map(|s| g.spacing[s]),
            affine,
        },
        data,
    }
}

/// A trained run predicts the same mask whatever the voxel order the scan is stored in.
fn predictions_do_not_depend_on_storage_order(dir: &Path, run: &Path, src: &Volume) {
    let predict = |v: &Volume, name: &str| {
        let input = dir.join(format!("{name}.nii.gz"));
        let options = WriteOptions {
            datatype: DataType::F32,
            ..Default::default()
        };
        write_volume(&input, v, &options).unwrap();
        let output = dir.join(format!("{name}_mask.nii.gz"));
        TestCommand::new("predict")
            .args(["--quiet", "--device", "cpu", "--run"])
            .arg(run)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .succeeds();
        let mask = read_mask(&output, &ReadOptions::default()).unwrap();
        assert!(
            mask.geometry.same_grid(&v.geometry, 1e-6),
            "{name}: the input's grid"
        );
        mask
    };
    let original = predict(src, "stored_lps");
    assert_eq!(axcodes(&src.geometry.affine), ['L', 'P', 'S']);
    for (name, perm, flip, codes) in [
        (
            "stored_ras",
            [0, 1, 2],
            [true, true, false],
            ['R', 'A', 'S'],
        ),
        ("stored_xy_swapped", [1, 0, 2], [false; 3], ['P', 'L', 'S']),
        (
            "stored_slices_first",
            [2, 0, 1],
            [false; 3],
            ['S', 'L', 'P'],
        ),
    ] {
        let copy = restored(src, perm, flip);
        assert_eq!(axcodes(&copy.geometry.affine), codes);
        let mask = predict(&copy, name);
        let back = Reorientation::to_canonical(&mask.geometry).mask(&mask);
        assert!(back.geometry.same_grid(&original.geometry, 1e-6), "{name}");
        assert_eq!(back.data, original.data, "{name}: another prediction");
    }
    assert!(
        original.data.iter().any(|&l| l > 0),
        "the check needs some foreground"
    );
}

#[test]
fn predict_keeps_the_input_grid_and_evaluate_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let run = dir.path().join("run");
    TestCommand::new("train")
        .args(["--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args(["--mode", "cmedl"])
        .succeeds();

    // An oblique test CT with another spacing than training (10 mm in-plane).
    let src = read_volume(
        &data.join("ct/imagesTs/ct_test_000.nii.gz"),
        &ReadOptions::default(),
    )
    .unwrap()
    .volume;
    predictions_do_not_depend_on_storage_order(dir.path(), &run, &src);
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
    TestCommand::new("predict")
        .args(["--quiet", "--run"])
        .arg(&run)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args([
            "--device",
            "cpu",
            "--tta",
            "flip",
            "--probabilities",
            "--largest-component",
        ])
        .succeeds();
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
        TestCommand::new("predict")
            .args(["--quiet", "--run"])
            .arg(&run)
            .args(["--checkpoint", "final", "--input"])
            .arg(data.join("ct/imagesTs"))
            .arg("--output")
            .arg(&preds)
            .arg("--shard")
            .arg(shard)
            .succeeds();
    }
    let results = dir.path().join("results.json");
    let csv = dir.path().join("cases.csv");
    let refs = data.join("ct/labelsTs");
    TestCommand::new("evaluate")
        .arg("--pred")
        .arg(&preds)
        .arg("--ref")
        .arg(&refs)
        .arg("--out")
        .arg(&results)
        .arg("--csv")
        .arg(&csv)
        .arg("--compare")
        .arg(&refs)
        .succeeds();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(json["cases"].as_array().unwrap().len(), 1);
    assert_eq!(json["tolerance_mm"], 2.0);
    assert!(json["summary"]["1"]["dice"]["n"].as_u64().is_some());
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 2);
    // The reference against itself: Dice 1.
    TestCommand::new("evaluate")
        .arg("--pred")
        .arg(&refs)
        .arg("--ref")
        .arg(&refs)
        .arg("--out")
        .arg(&results)
        .succeeds();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(json["summary"]["1"]["dice"]["mean"], 1.0);

    // Translation keeps the grid too.
    let pmri = dir.path().join("pmri.nii.gz");
    TestCommand::new("translate")
        .arg("--run")
        .arg(&run)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&pmri)
        .args(["--device", "cpu"])
        .succeeds();
    let t = read_volume(&pmri, &ReadOptions::default()).unwrap().volume;
    assert!(t.geometry.same_grid(&oblique.geometry, 1e-4));

    // A mismatched grid is refused unless resampling is asked for.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&output, other.join("ct_test_000.nii.gz")).unwrap();
    let out = TestCommand::new("evaluate")
        .arg("--pred")
        .arg(&other)
        .arg("--ref")
        .arg(&refs)
        .expect_exit(2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resample-pred"));
    TestCommand::new("evaluate")
        .arg("--pred")
        .arg(&other)
        .arg("--ref")
        .arg(&refs)
        .arg("--resample-pred")
        .succeeds();
}
