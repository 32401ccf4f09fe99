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
    // --continue leaves finished outputs alone and redoes a broken one.
    let done: Vec<_> = std::fs::read_dir(&preds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let first = done[0].clone();
    let before = std::fs::read(&first).unwrap();
    let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
    let rerun = |expect: &str| {
        let out = TestCommand::new("predict")
            .args(["--run"])
            .arg(&run)
            .args(["--checkpoint", "final", "--continue", "--input"])
            .arg(data.join("ct/imagesTs"))
            .arg("--output")
            .arg(&preds)
            .succeeds();
        assert!(
            crate::stderr(&out).contains(expect),
            "{}",
            crate::stderr(&out)
        );
    };
    rerun("wrote 0 prediction(s)");
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        modified
    );
    std::fs::write(&first, b"cut short").unwrap();
    rerun("wrote 1 prediction(s)");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "redone, the same mask"
    );
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

/// An nnU-Net v2 raw folder (channel suffixes, name → value labels) imported, trained on,
/// predicted and evaluated without renaming a file.
#[test]
fn an_nnunet_folder_is_imported_trained_predicted_and_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let src = dir.path().join("Dataset001_Tiny");
    for sub in ["imagesTr", "labelsTr", "imagesTs", "labelsTs"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    let copy = |from: &str, to: std::path::PathBuf| std::fs::copy(data.join(from), to).unwrap();
    for (split, images, labels) in [
        ("train", "imagesTr", "labelsTr"),
        ("val", "imagesTr", "labelsTr"),
        ("test", "imagesTs", "labelsTs"),
    ] {
        let folder = match split {
            "train" => "Tr",
            "val" => "Val",
            _ => "Ts",
        };
        let case = format!("ct_{split}_000");
        copy(
            &format!("ct/images{folder}/{case}.nii.gz"),
            src.join(images).join(format!("{case}_0000.nii.gz")),
        );
        copy(
            &format!("ct/labels{folder}/{case}.nii.gz"),
            src.join(labels).join(format!("{case}.nii.gz")),
        );
    }
    copy(
        "ct/imagesTr/ct_train_001.nii.gz",
        src.join("imagesTr/ct_train_001_0000.nii.gz"),
    );
    copy(
        "ct/labelsTr/ct_train_001.nii.gz",
        src.join("labelsTr/ct_train_001.nii.gz"),
    );
    let index = serde_json::json!({
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "tumour": 1},
        "numTraining": 3,
        "file_ending": ".nii.gz"
    });
    std::fs::write(src.join("dataset.json"), index.to_string()).unwrap();
    let dst = dir.path().join("imported");
    TestCommand::new("dataset")
        .args(["import", "--from", "nnunet"])
        .arg(&src)
        .arg("--out")
        .arg(&dst)
        .succeeds();
    let ds = cmedl_io::dataset::Dataset::open(&dst).unwrap();
    let ct = ds.modality("ct").unwrap();
    assert_eq!((ct.train.len(), ct.val.len(), ct.test.len()), (2, 1, 1));
    assert_eq!(ds.index.labels["1"], "tumour");
    assert!(ct.train.iter().all(|c| !c.id.ends_with("_0000")));
    // The source is only read; a second import into the same folder is refused.
    TestCommand::new("dataset")
        .args(["import", "--from", "nnunet"])
        .arg(&src)
        .arg("--out")
        .arg(&dst)
        .fails_with(2, "already holds a dataset");
    let config = tiny_config(dir.path(), &dst);
    let run = dir.path().join("run");
    TestCommand::new("train")
        .args(["--quiet", "--mode", "ct-only", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .succeeds();
    let preds = dir.path().join("preds");
    TestCommand::new("predict")
        .args(["--quiet", "--device", "cpu", "--run"])
        .arg(&run)
        .arg("--input")
        .arg(src.join("imagesTs"))
        .arg("--output")
        .arg(&preds)
        .succeeds();
    assert!(
        preds.join("ct_test_000.nii.gz").exists(),
        "the channel suffix is dropped"
    );
    TestCommand::new("evaluate")
        .arg("--pred")
        .arg(&preds)
        .arg("--ref")
        .arg(src.join("labelsTs"))
        .succeeds();
}

#[test]
fn an_exported_model_gives_pytorch_the_logits_cmedl_computes() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::tiny_phantom(dir.path());
    let config = crate::train::tiny_config(dir.path(), &data);
    let run = crate::train::tiny_ct_run(dir.path(), &config, "run", &[]);
    let model = dir.path().join("student.pt");
    TestCommand::new("export")
        .arg("--run")
        .arg(&run)
        .args(["--device", "cpu", "--batch", "3", "--out"])
        .arg(&model)
        .succeeds();
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("student.pt.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["input_shape"], serde_json::json!([3, 1, 32, 32]));
    assert_eq!(sidecar["mode"], "ct-only");
    assert_eq!(sidecar["classes"], 2);

    // cmedl's logits for a fixed input …
    let predictor = cmedl_trainer::infer::Predictor::load(
        &run,
        &cmedl_trainer::checkpoint::Which::Best,
        tch::Device::Cpu,
    )
    .unwrap();
    let x = tch::Tensor::linspace(-1.0, 1.0, 3 * 32 * 32, (tch::Kind::Float, tch::Device::Cpu))
        .view([3, 1, 32, 32])
        .sin();
    let ours = tch::no_grad(|| predictor.nets.segment(&x, false).unwrap().logits);
    // … and PyTorch's, from the exported file.
    let input = dir.path().join("x.f32");
    let output = dir.path().join("y.f32");
    let raw = |t: &tch::Tensor| -> Vec<u8> {
        Vec::<f32>::try_from(t.flatten(0, -1))
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    std::fs::write(&input, raw(&x)).unwrap();
    let script = r#"
import sys, torch
model, inp, out = sys.argv[1:4]
m = torch.jit.load(model)
x = torch.frombuffer(bytearray(open(inp, "rb").read()), dtype=torch.float32).view(3, 1, 32, 32)
with torch.no_grad():
    y = m(x)
open(out, "wb").write(bytes(y.contiguous().view(torch.uint8).flatten().tolist()))
print(list(y.shape))
"#;
    let out = std::process::Command::new(crate::venv_bin("python"))
        .arg("-c")
        .arg(script)
        .arg(&model)
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[3, 2, 32, 32]"
    );
    let theirs: Vec<f32> = std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let ours = Vec::<f32>::try_from(ours.flatten(0, -1)).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff <= 1e-5,
        "PyTorch's logits differ from cmedl's by {diff}"
    );
    // `predict --model` runs the exported file: the same probabilities as the run itself.
    let image = std::fs::read_dir(data.join("ct/imagesTs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let probabilities = |source: &[&str], name: &str| {
        let out = dir.path().join(format!("{name}.nii.gz"));
        TestCommand::new("predict")
            .args(source)
            .args(["--device", "cpu", "--probabilities", "-i"])
            .arg(&image)
            .arg("-o")
            .arg(&out)
            .succeeds();
        let prob = dir.path().join(format!("{name}_prob1.nii.gz"));
        read_volume(&prob, &ReadOptions::default()).unwrap().volume
    };
    let model_arg = model.to_str().unwrap().to_owned();
    let run_arg = run.to_str().unwrap().to_owned();
    let from_model = probabilities(&["--model", &model_arg], "by_model");
    let from_run = probabilities(&["--run", &run_arg], "by_run");
    assert_eq!(from_model.geometry, from_run.geometry);
    let largest = from_model
        .data
        .iter()
        .zip(&from_run.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        largest < 1e-5,
        "the exported model's probabilities differ by {largest}"
    );
    // A plane wider than the traced size is cut into tiles (here 2 × 2).
    let v = read_volume(&image, &ReadOptions::default()).unwrap().volume;
    let [nx, ny, nz] = v.geometry.shape;
    let mut wide_geometry = v.geometry.clone();
    wide_geometry.shape = [2 * nx, 2 * ny, nz];
    let mut wide = vec![-1000.0f32; wide_geometry.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                wide[wide_geometry.index(i, j, k)] = v.data[v.geometry.index(i, j, k)];
            }
        }
    }
    let wide_path = dir.path().join("wide.nii.gz");
    write_volume(
        &wide_path,
        &Volume::new(wide_geometry.clone(), wide).unwrap(),
        &WriteOptions {
            datatype: DataType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    let wide_mask = dir.path().join("wide_mask.nii.gz");
    TestCommand::new("predict")
        .args(["--model", &model_arg, "--device", "cpu", "-i"])
        .arg(&wide_path)
        .arg("-o")
        .arg(&wide_mask)
        .succeeds();
    let mask = read_mask(&wide_mask, &ReadOptions::default()).unwrap();
    assert_eq!(mask.geometry, wide_geometry);
    TestCommand::new("predict")
        .args(["--model", &model_arg, "--run", &run_arg, "-i"])
        .arg(&wide_path)
        .arg("-o")
        .arg(&wide_mask)
        .fails_with(2, "cannot be used with");
    // The output may not replace the checkpoint it reads.
    TestCommand::new("export")
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(run.join("checkpoints/best.safetensors"))
        .fails_with(2, "refusing to write --out over an input");
}

#[test]
fn an_ensemble_averages_the_runs_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_phantom(dir.path());
    let config = tiny_config(dir.path(), &data);
    let runs: Vec<_> = ["0", "1"]
        .iter()
        .map(|seed| {
            crate::train::tiny_ct_run(
                dir.path(),
                &config,
                &format!("seed{seed}"),
                &["--seed", seed],
            )
        })
        .collect();
    let image = std::fs::read_dir(data.join("ct/imagesTs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let predict = |name: &str, members: &[&std::path::PathBuf]| {
        let out = dir.path().join(format!("{name}.nii.gz"));
        let mut cmd = TestCommand::new("predict");
        for run in members {
            cmd.arg("--run").arg(run);
        }
        // nnU-Net's -i/-o.
        cmd.args(["--device", "cpu", "--probabilities", "-i"])
            .arg(&image)
            .arg("-o")
            .arg(&out)
            .succeeds();
        let prob = dir.path().join(format!("{name}_prob1.nii.gz"));
        read_volume(&prob, &ReadOptions::default()).unwrap().volume
    };
    let (a, b) = (predict("a", &[&runs[0]]), predict("b", &[&runs[1]]));
    let both = predict("both", &[&runs[0], &runs[1]]);
    let largest = a
        .data
        .iter()
        .zip(&b.data)
        .zip(&both.data)
        .map(|((x, y), m)| (0.5 * (x + y) - m).abs())
        .fold(0.0f32, f32::max);
    assert!(largest < 1e-6, "the ensemble is not the mean ({largest})");
    assert_ne!(a.data, b.data, "two seeds, two different runs");
    let mask = read_mask(&dir.path().join("both.nii.gz"), &ReadOptions::default()).unwrap();
    for (label, p) in mask.data.iter().zip(&both.data) {
        // Two classes: foreground exactly where its mean probability wins.
        assert_eq!(*label == 1, *p > 0.5, "p = {p}");
    }
}
