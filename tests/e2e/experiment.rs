use crate::TestCommand;

#[test]
fn a_micro_experiment_writes_a_report_with_figures() {
    let dir = tempfile::tempdir().unwrap();
    let exp = serde_json::json!({
        "name": "micro",
        "data": {"phantom": {"ct": 2, "mr": 2, "val": 1, "test": 2, "size": 32, "slices": 6, "spacing": [10.0, 10.0, 20.0], "seed": 4}},
        "base": {
            "model": {"generator": {"ngf": 4, "blocks": 1}, "discriminator": {"ndf": 4}, "segmenter": {"kind": "unet", "base": 4, "depth": 2}},
            "loss": {"pool_size": 4},
            "data": {"size": 32, "spacing": 10.0},
            "train": {"epochs": 2, "batch": 2, "max_steps_per_epoch": 2},
            "device": "cpu"
        },
        "modes": ["ct-only", "cmedl"],
        "seeds": [0]
    });
    let cfg = dir.path().join("micro.json");
    std::fs::write(&cfg, exp.to_string()).unwrap();
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
