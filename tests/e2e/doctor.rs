use crate::{cmedl, text};

#[test]
fn doctor_reports_torch_2_11_and_a_passing_cpu_check() {
    let out = cmedl(&["doctor", "--json", "--device", "cpu"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    assert!(report["libtorch_build_version"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["device"], "cpu");
    assert_eq!(checks[0]["passed"], true, "{}", text(&out));
    assert!(report["libtorch_loaded_from"]
        .as_str()
        .unwrap()
        .ends_with("libtorch_cpu.so"));
}

#[test]
fn doctor_human_output_names_the_torch_version() {
    let out = cmedl(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("torch 2.11.0"), "{stdout}");
    assert!(stdout.contains("check cpu"), "{stdout}");
}

#[test]
fn a_missing_gpu_is_a_usage_error() {
    if tch::Cuda::device_count() > 7 {
        return; // a machine with eight GPUs has cuda:7
    }
    let out = cmedl(&["doctor", "--device", "cuda:7"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cuda:7"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_device_is_a_usage_error() {
    let out = cmedl(&["doctor", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device 'tpu'"));
}
