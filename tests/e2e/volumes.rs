use crate::train::tiny_phantom;
use crate::{cmedl, text};

#[test]
fn phantom_info_and_convert() {
    let dir = tempfile::tempdir().unwrap();
    let root = tiny_phantom(dir.path());
    let image = root.join("ct/imagesTr/ct_train_000.nii.gz");
    let out = cmedl(&["info", image.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["shape"], serde_json::json!([32, 32, 6]));
    assert_eq!(info["spacing"], serde_json::json!([10.0, 10.0, 20.0]));
    assert_eq!(info["datatype"], "int16");
    assert_eq!(info["affine"][0][0], -10.0);
    let label = root.join("ct/labelsTr/ct_train_000.nii.gz");
    let out = cmedl(&["info", label.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(info["labels"]["0"].as_u64().unwrap() > 0);

    let converted = dir.path().join("fine.nii.gz");
    let out = cmedl(&[
        "convert",
        image.to_str().unwrap(),
        converted.to_str().unwrap(),
        "--spacing",
        "5,5,20",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cmedl(&["info", converted.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["shape"], serde_json::json!([64, 64, 6]));
    assert_eq!(info["affine"][0][0], -5.0);

    // A second phantom into the same folder would overwrite a dataset: refused.
    let again = cmedl(&["phantom", "--out", root.to_str().unwrap(), "--quiet"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    // Output over input: refused, input intact.
    let before = std::fs::read(&image).unwrap();
    let out = cmedl(&["convert", image.to_str().unwrap(), image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read(&image).unwrap(), before);
}

#[test]
fn bad_volume_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.nii.gz");
    std::fs::write(&garbage, b"definitely not gzip").unwrap();
    let truncated = dir.path().join("short.nii");
    std::fs::write(&truncated, [92u8, 1, 0, 0, 0, 0]).unwrap();
    let missing = dir.path().join("missing.nii.gz");
    for (args, name) in [
        (vec!["info", garbage.to_str().unwrap()], "garbage.nii.gz"),
        (vec!["info", truncated.to_str().unwrap()], "short.nii"),
        (vec!["info", missing.to_str().unwrap()], "missing.nii.gz"),
        (
            vec!["info", dir.path().to_str().unwrap()],
            dir.path().file_name().unwrap().to_str().unwrap(),
        ),
        (
            vec!["convert", garbage.to_str().unwrap(), "out.nii.gz"],
            "garbage.nii.gz",
        ),
        (
            vec!["phantom", "--out", "x", "--spacing", "1,-1,1"],
            "1,-1,1",
        ),
        (
            vec!["phantom", "--out", "x", "--locations", "0,0,0"],
            "0,0,0",
        ),
    ] {
        let out = cmedl(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
