use crate::TestCommand;

#[test]
fn doctor_reports_torch_2_11_and_a_passing_cpu_check() {
    let stdout = TestCommand::new("doctor")
        .args(["--json", "--device", "cpu"])
        .stdout();
    let report: serde_json::Value =
        serde_json::from_str(&stdout).expect("doctor --json prints JSON");
    assert!(report["libtorch_build_version"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["device"], "cpu");
    assert_eq!(checks[0]["passed"], true, "{stdout}");
    assert!(report["libtorch_loaded_from"]
        .as_str()
        .unwrap()
        .ends_with("libtorch_cpu.so"));
}

#[test]
fn doctor_human_output_names_the_torch_version() {
    let stdout = TestCommand::new("doctor").stdout();
    assert!(stdout.contains("torch 2.11.0"), "{stdout}");
    assert!(stdout.contains("check cpu"), "{stdout}");
}

#[test]
fn a_missing_gpu_is_a_usage_error() {
    if tch::Cuda::device_count() > 7 {
        return; // a machine with eight GPUs has cuda:7
    }
    TestCommand::new("doctor")
        .args(["--device", "cuda:7"])
        .fails_with(2, "cuda:7");
}

#[test]
fn an_unknown_device_is_a_usage_error() {
    TestCommand::new("doctor")
        .args(["--device", "tpu"])
        .fails_with(2, "unknown device 'tpu'");
}

#[test]
fn completion_scripts_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = TestCommand::new("completions").arg(shell).stdout();
        for command in ["train", "predict", "export", "experiment"] {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
    TestCommand::new("completions")
        .arg("tcsh")
        .fails_with(2, "tcsh");
}

#[test]
fn config_defaults_are_documented_and_the_schema_describes_them() {
    for (preset, want) in [
        ("default", cmedl_trainer::TrainConfig::default()),
        ("paper", cmedl_trainer::TrainConfig::paper()),
    ] {
        let text = TestCommand::new("config")
            .args(["--defaults", "--preset", preset])
            .stdout();
        let lines: Vec<&str> = text.lines().collect();
        // Every field is documented on the line above it.
        for (n, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with('"') {
                assert!(
                    lines[n - 1].trim_start().starts_with("//"),
                    "{preset}: no documentation above {line}"
                );
            }
        }
        // Without the comments it is the preset's config.
        let json: String = lines
            .iter()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: cmedl_trainer::TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, want, "{preset}");
    }
    let schema: serde_json::Value =
        serde_json::from_str(&TestCommand::new("config").arg("--schema").stdout()).unwrap();
    assert!(schema["properties"]["train"].is_object(), "{schema}");
    assert!(schema["definitions"]["SegmenterConfig"]["oneOf"][0]["properties"]["norm"].is_object());
    TestCommand::new("config").fails_with(2, "--defaults");
}
