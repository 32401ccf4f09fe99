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
        .fails_with(2, "refusing to write the output over an input");
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

/// The phantom CT written by hand as NRRD (LPS space) and MetaImage: `info` reports the same
/// grid and orientation as for the NIfTI, and `convert` gives back the same voxels.
#[test]
fn nrrd_and_metaimage_read_like_nifti() {
    use cmedl_io::nifti::{read_volume, ReadOptions};
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let root = tiny_phantom(dir.path());
    let nifti = root.join("ct/imagesTs/ct_test_000.nii.gz");
    let v = read_volume(&nifti, &ReadOptions::default()).unwrap().volume;
    let g = &v.geometry;
    let bytes: Vec<u8> = v
        .data
        .iter()
        .flat_map(|&x| (x as i16).to_le_bytes())
        .collect();
    // LPS = RAS with x and y negated.
    let lps = |r: usize, c: usize| {
        if r < 2 {
            -g.affine[r][c]
        } else {
            g.affine[r][c]
        }
    };
    let vector = |c: usize| format!("({},{},{})", lps(0, c), lps(1, c), lps(2, c));
    let nrrd_header = format!(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: {} {} {}\nspace directions: {} {} {}\nendian: little\nencoding: raw\nspace origin: {}\n\n",
        g.shape[0], g.shape[1], g.shape[2], vector(0), vector(1), vector(2), vector(3)
    );
    let unit = |c: usize| {
        (0..3)
            .map(|r| lps(r, c) / g.spacing[c])
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mha_header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryDataByteOrderMSB = False\nTransformMatrix = {} {} {}\nOffset = {} {} {}\nElementSpacing = {} {} {}\nDimSize = {} {} {}\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        unit(0), unit(1), unit(2), lps(0, 3), lps(1, 3), lps(2, 3),
        g.spacing[0], g.spacing[1], g.spacing[2], g.shape[0], g.shape[1], g.shape[2]
    );
    let reference = info_json(&nifti);
    for (name, header) in [("ct.nrrd", nrrd_header), ("ct.mha", mha_header)] {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(&bytes).unwrap();
        drop(f);
        let info = info_json(&path);
        assert_eq!(info["shape"], reference["shape"], "{name}");
        assert_eq!(info["spacing"], reference["spacing"], "{name}");
        assert_eq!(info["orientation"], "LPS", "{name}");
        for (a, b) in info["affine"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .zip(
                reference["affine"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r.as_array().unwrap()),
            )
        {
            assert!(
                (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9,
                "{name}: {info}"
            );
        }
        let out = dir.path().join(format!("{name}.nii.gz"));
        TestCommand::new("convert").arg(&path).arg(&out).succeeds();
        let back = read_volume(&out, &ReadOptions::default()).unwrap().volume;
        assert_eq!(back.data, v.data, "{name}");
        assert!(back.geometry.same_grid(g, 1e-9), "{name}");
    }
}
