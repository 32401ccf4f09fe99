use crate::TestCommand;

#[test]
fn a_micro_experiment_writes_a_report_with_figures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = micro_config(dir.path(), 2);
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let out_dir = dir.path().join("exp");
    TestCommand::new("experiment")
        .args(["--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .succeeds();
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "the HTML inlines its figures"
    );
    let results: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| mode |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(results.len(), 2, "{md}");
    assert!(
        results[0].starts_with("| ct-only |") && results[1].starts_with("| cmedl |"),
        "{results:?}"
    );
    assert!(md.contains("Paired comparison with ct-only") && md.contains("Wilcoxon"));
    // The premise per run: whether the teacher was ahead of the student, and the hint's epochs.
    let premise = md
        .lines()
        .find(|l| l.starts_with("| cmedl-unet-cyclegan-s0 | best"))
        .unwrap_or_else(|| panic!("no teacher row: {md}"));
    assert!(
        md.contains("| teacher ahead | hint |")
            && (premise.contains("from epoch") || premise.contains("never ("))
            && premise.contains("2 of 2 epochs"),
        "{premise}"
    );
    for run in ["ct-only-unet-s0", "cmedl-unet-cyclegan-s0"] {
        let curves = image::open(out_dir.join(format!("figures/curves-{run}.png"))).unwrap();
        assert_eq!((curves.width(), curves.height()), (800, 300));
        let montage = image::open(out_dir.join(format!("figures/montage-{run}.png"))).unwrap();
        let panels = if run.starts_with("cmedl") { 2 } else { 1 };
        assert_eq!(
            (montage.width(), montage.height()),
            (32 * 3 * panels, 32 * 3)
        );
    }
    // A second invocation skips the finished runs; `report` regenerates from disk.
    let again = TestCommand::new("experiment")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .expect_exit(0);
    assert!(String::from_utf8_lossy(&again.stderr).contains("finished earlier, skipped"));
    std::fs::remove_file(out_dir.join("report.md")).unwrap();
    TestCommand::new("report").arg(&out_dir).succeeds();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("report.md"))
            .unwrap()
            .lines()
            .count(),
        md.lines().count()
    );
    // Post-processing: one rule for both arms. One validation patient is too few to choose,
    // and the phantom's multi-lesion labels rule out the largest component.
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out_dir.join(p)).unwrap()).unwrap()
    };
    let mut choice = read("postprocessing.json");
    assert_eq!(choice["rule"]["rule"], "none", "{choice}");
    let runs = ["ct-only-unet-s0", "cmedl-unet-cyclegan-s0"];
    let mut before = Vec::new();
    for run in runs {
        let res = read(&format!("results/{run}.json"));
        before.push(res["cases"].clone());
        assert_eq!(res["rule"]["rule"], "none");
        assert!(res.get("raw").is_none(), "raw numbers are the numbers");
        let candidates = res["validation"]["candidates"].as_array().unwrap();
        assert_eq!(
            candidates,
            choice["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["rule"].clone())
                .collect::<Vec<_>>()
                .as_slice()
        );
    }
    // A rule in postprocessing.json (one that removes everything) is applied to every arm
    // alike by `report`; the raw numbers stay beside the post-processed ones.
    choice["rule"] = serde_json::json!({"rule": "min-component", "min_mm3": 1e12});
    std::fs::write(out_dir.join("postprocessing.json"), choice.to_string()).unwrap();
    TestCommand::new("report").arg(&out_dir).succeeds();
    for (run, before) in runs.iter().zip(&before) {
        let res = read(&format!("results/{run}.json"));
        assert_eq!(res["rule"]["min_mm3"], 1e12);
        assert_eq!(
            &res["raw"]["cases"], before,
            "the raw numbers are kept as they were"
        );
        let post = res["cases"].as_array().unwrap();
        assert_eq!(post.len(), before.as_array().unwrap().len());
        for c in post {
            assert_eq!(c["metrics"]["pred_voxels"], 0, "{c}");
        }
        let folder = out_dir.join(format!("predictions-postprocessed/{run}"));
        assert_eq!(std::fs::read_dir(folder).unwrap().count(), 2);
    }
    let post_md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        post_md.contains("DSC raw") && post_md.contains("DSC post"),
        "{post_md}"
    );
    assert!(
        post_md.contains("components under 1000000000000 mm³ removed"),
        "{post_md}"
    );
    // Results of an earlier cmedl (no validation scores): `report` still works, raw, and says so.
    let path = out_dir.join("results/ct-only-unet-s0.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let raw = old["raw"].clone();
    for key in ["validation", "rule", "raw"] {
        old.as_object_mut().unwrap().remove(key);
    }
    old["cases"] = raw["cases"].clone();
    std::fs::write(&path, old.to_string()).unwrap();
    std::fs::remove_file(out_dir.join("postprocessing.json")).unwrap();
    TestCommand::new("report").arg(&out_dir).succeeds();
    let old_md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(old_md.contains("earlier cmedl"), "{old_md}");
    // The same folder with another training config: refused, nothing reused.
    let mut changed = exp.clone();
    changed["base"]["train"]["epochs"] = serde_json::json!(3);
    let changed_cfg = dir.path().join("changed.json");
    std::fs::write(&changed_cfg, changed.to_string()).unwrap();
    TestCommand::new("experiment")
        .arg("--config")
        .arg(&changed_cfg)
        .arg("--out")
        .arg(&out_dir)
        .fails_with(2, "trained with another config");
    let text = std::fs::read_to_string(out_dir.join("experiment.json")).unwrap();
    assert!(
        !text.contains("\"epochs\": 3"),
        "the folder still describes its runs"
    );
    let mut other_data = exp.clone();
    other_data["data"]["phantom"]["seed"] = serde_json::json!(5);
    std::fs::write(&changed_cfg, other_data.to_string()).unwrap();
    TestCommand::new("experiment")
        .arg("--config")
        .arg(&changed_cfg)
        .arg("--out")
        .arg(&out_dir)
        .fails_with(2, "used other data");
    // A single run folder gets its own report.
    TestCommand::new("report")
        .arg(out_dir.join("runs/ct-only-unet-s0"))
        .succeeds();
    assert!(out_dir.join("runs/ct-only-unet-s0/report.html").exists());
}

/// The micro experiment's config (two modes, one seed, `epochs` epochs) in `dir`.
fn micro_config(dir: &std::path::Path, epochs: usize) -> std::path::PathBuf {
    let exp = serde_json::json!({
        "name": "micro",
        "data": {"phantom": {"ct": 2, "mr": 2, "val": 1, "test": 2, "size": 32, "slices": 6, "spacing": [10.0, 10.0, 20.0], "seed": 4}},
        "base": {
            "model": {"generator": {"ngf": 4, "blocks": 1}, "discriminator": {"ndf": 4}, "segmenter": {"kind": "unet", "base": 4, "depth": 2}},
            "loss": {"pool_size": 4},
            "data": {"size": 32, "spacing": 10.0},
            "train": {"epochs": epochs, "batch": 2, "max_steps_per_epoch": 2},
            "device": "cpu"
        },
        "modes": ["ct-only", "cmedl"],
        "seeds": [0]
    });
    let cfg = dir.join("micro.json");
    std::fs::write(&cfg, exp.to_string()).unwrap();
    cfg
}

fn table_rows(md: &str) -> Vec<String> {
    md.lines()
        .skip_while(|l| !l.starts_with("| mode |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn shards_train_their_runs_and_report_merges_them_and_devices_run_runs_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = micro_config(dir.path(), 1);
    let sharded = dir.path().join("sharded");
    for shard in ["0/2", "1/2"] {
        let out = TestCommand::new("experiment")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&sharded)
            .args(["--shard", shard])
            // The thread count the concurrent workers below get on a 2-core machine, given
            // here so that both ways run the same arithmetic.
            .env("OMP_NUM_THREADS", "1")
            .succeeds();
        assert!(
            crate::stderr(&out).contains("cmedl report"),
            "{}",
            crate::stderr(&out)
        );
        assert!(
            !sharded.join("report.md").exists(),
            "a shard writes no report"
        );
    }
    // Each shard trained and evaluated its own run.
    for run in ["ct-only-unet-s0", "cmedl-unet-cyclegan-s0"] {
        assert!(sharded
            .join(format!("runs/{run}/checkpoints/final.safetensors"))
            .exists());
        assert!(sharded.join(format!("results/{run}.json")).exists());
    }
    TestCommand::new("report").arg(&sharded).succeeds();
    let md = std::fs::read_to_string(sharded.join("report.md")).unwrap();
    assert_eq!(table_rows(&md).len(), 2, "{md}");
    TestCommand::new("experiment")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("x"))
        .args(["--shard", "2/2"])
        .fails_with(2, "below N");

    // Two worker processes on the CPU, then the evaluation and the report.
    let concurrent = dir.path().join("concurrent");
    TestCommand::new("experiment")
        .arg("--quiet")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&concurrent)
        .args(["--devices", "cpu,cpu"])
        .env("OMP_NUM_THREADS", "1")
        .succeeds();
    let md = std::fs::read_to_string(concurrent.join("report.md")).unwrap();
    assert_eq!(table_rows(&md).len(), 2, "{md}");
    // Trained in separate processes from the same seeds and thread counts: the same weights as
    // the shards'. (Other thread counts sum in another order: results differ in the last bits
    // and, through training, by up to about 1e-3.)
    for run in ["ct-only-unet-s0", "cmedl-unet-cyclegan-s0"] {
        let read = |root: &std::path::Path| {
            let mut t = tch::Tensor::read_safetensors(
                root.join(format!("runs/{run}/checkpoints/final.safetensors")),
            )
            .unwrap();
            t.retain(|(n, _)| n != "__meta_json__");
            t.sort_by(|a, b| a.0.cmp(&b.0));
            t
        };
        let (a, b) = (read(&sharded), read(&concurrent));
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            let d = (x.to_kind(tch::Kind::Double) - y.to_kind(tch::Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert!(d < 1e-4, "{run}: {n} differs by {d}");
        }
    }
}

#[test]
fn a_three_fold_experiment_and_its_ensemble_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    // No validation split in the data: each fold's held-out training case validates it.
    let exp = serde_json::json!({
        "name": "folds",
        "data": {"phantom": {"ct": 3, "mr": 2, "val": 0, "test": 1, "size": 32, "slices": 6, "spacing": [10.0, 10.0, 20.0], "seed": 5}},
        "base": {
            "model": {"segmenter": {"kind": "unet", "base": 4, "depth": 2}},
            "data": {"size": 32, "spacing": 10.0},
            "train": {"epochs": 1, "batch": 2, "max_steps_per_epoch": 2},
            "device": "cpu"
        },
        "modes": ["ct-only"],
        "seeds": [0],
        "folds": 3
    });
    let cfg = dir.path().join("folds.json");
    std::fs::write(&cfg, exp.to_string()).unwrap();
    let out = dir.path().join("exp");
    TestCommand::new("experiment")
        .args(["--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .succeeds();
    let runs: Vec<std::path::PathBuf> = (0..3)
        .map(|f| out.join(format!("runs/ct-only-unet-s0-f{f}")))
        .collect();
    for run in &runs {
        let epochs = cmedl_trainer::RunDir::new(run).epochs();
        assert!(
            epochs[0].val_dice.is_finite(),
            "{}: validated on its held-out fold",
            run.display()
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let rows = table_rows(&md);
    assert_eq!(rows.len(), 3, "{md}");
    for (f, row) in rows.iter().enumerate() {
        assert!(row.contains(&format!("0 (fold {f})")), "{row}");
    }
    // One post-processing rule for all folds; three validation patients are too few to
    // choose one, so the predictions stay raw.
    let choice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("postprocessing.json")).unwrap())
            .unwrap();
    assert_eq!(choice["rule"]["rule"], "none", "{choice}");
    assert_eq!(choice["patients"], 3, "{choice}");
    assert!(
        choice["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than the 5"),
        "{choice}"
    );
    for f in 0..3 {
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("results/ct-only-unet-s0-f{f}.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(results["rule"]["rule"], "none");
        assert_eq!(results["validation"]["cases"].as_array().unwrap().len(), 1);
    }
    assert!(md.contains("### Post-processing"), "{md}");
    // The folds' ensemble predicts the test split.
    let preds = dir.path().join("preds");
    let mut predict = TestCommand::new("predict");
    for run in &runs {
        predict.arg("--run").arg(run);
    }
    predict
        .args(["--quiet", "--device", "cpu", "-i"])
        .arg(out.join("data/ct/imagesTs"))
        .arg("-o")
        .arg(&preds)
        .succeeds();
    assert_eq!(std::fs::read_dir(&preds).unwrap().count(), 1);
}
