use crate::train::tiny_phantom;
use crate::TestCommand;

fn info_json(path: &std::path::Path) -> serde_json::Value {
    let stdout = TestCommand::new("info").arg(path).arg("--json").stdout();
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn phantom_info_and_convert() {
    let dir = tempfile::tempdir().unwrap();
    let root = tiny_phantom(dir.path());
    let image = root.join("ct/imagesTr/ct_train_000.nii.gz");
    let info = info_json(&image);
    assert_eq!(info["shape"], serde_json::json!([32, 32, 6]));
    assert_eq!(info["spacing"], serde_json::json!([10.0, 10.0, 20.0]));
    assert_eq!(info["datatype"], "int16");
    assert_eq!(info["affine"][0][0], -10.0);
    let info = info_json(&root.join("ct/labelsTr/ct_train_000.nii.gz"));
    assert!(info["labels"]["0"].as_u64().unwrap() > 0);

    let converted = dir.path().join("fine.nii.gz");
    TestCommand::new("convert")
        .arg(&image)
        .arg(&converted)
        .args(["--spacing", "5,5,20"])
        .succeeds();
    let info = info_json(&converted);
    assert_eq!(info["shape"], serde_json::json!([64, 64, 6]));
    assert_eq!(info["affine"][0][0], -5.0);

    // A second phantom into the same folder would overwrite a dataset: refused.
    TestCommand::new("phantom")
        .arg("--out")
        .arg(&root)
        .arg("--quiet")
        .fails_with(2, "already holds a dataset");
    // Output over input: refused, input intact.
    let before = std::fs::read(&image).unwrap();
    TestCommand::new("convert")
        .arg(&image)
        .arg(&image)
        .fails_with(2, "over the input");
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
    let folder_name = dir.path().file_name().unwrap().to_str().unwrap();
    TestCommand::new("info")
        .arg(&garbage)
        .fails_with(2, "garbage.nii.gz");
    TestCommand::new("info")
        .arg(&truncated)
        .fails_with(2, "short.nii");
    TestCommand::new("info")
        .arg(&missing)
        .fails_with(2, "missing.nii.gz");
    TestCommand::new("info")
        .arg(dir.path())
        .fails_with(2, folder_name);
    TestCommand::new("convert")
        .arg(&garbage)
        .arg("out.nii.gz")
        .fails_with(2, "garbage.nii.gz");
    TestCommand::new("phantom")
        .args(["--out", "x", "--spacing", "1,-1,1"])
        .fails_with(2, "1,-1,1");
    TestCommand::new("phantom")
        .args(["--out", "x", "--locations", "0,0,0"])
        .fails_with(2, "0,0,0");
}
