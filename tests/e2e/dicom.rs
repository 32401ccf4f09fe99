use cmedl_io::dicom::synthetic::{contour, write_rtstruct, write_seg, write_series, SegFrame};
use cmedl_io::nifti::{read_mask, read_volume, ReadOptions};

use crate::TestCommand;

#[test]
fn a_dicom_series_with_rtstruct_converts_to_nifti_on_the_same_grid() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.77", &[0.0, 2.5, 5.0, 7.5], 8, 6).unwrap();
    std::fs::write(ct.join("README.txt"), "not DICOM").unwrap();
    // Oblique rows (0.8, 0.6, 0) and columns (−0.6, 0.8, 0), 0.8 × 0.5 mm, origin (10, −20, 5).
    let lps = |i: f64, j: f64| {
        [
            10.0 + 0.8 * 0.8 * i - 0.6 * 0.5 * j,
            -20.0 + 0.6 * 0.8 * i + 0.8 * 0.5 * j,
        ]
    };
    let square = contour(
        &[lps(1.5, 1.5), lps(4.5, 1.5), lps(4.5, 3.5), lps(1.5, 3.5)],
        10.0,
    );
    let rs = dir.path().join("rs.dcm");
    write_rtstruct(&rs, "1.2.840.77", &[(3, "GTV-1", vec![square])]).unwrap();

    let out = TestCommand::new("info")
        .arg(&ct)
        .arg("--json")
        .expect_exit(0);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["shape"], serde_json::json!([8, 6, 4]));
    assert!(info["datatype"].as_str().unwrap().contains("1.2.840.77"));

    // One file of the series: a one-slice volume whose step is SpacingBetweenSlices (9.9 mm).
    let out = TestCommand::new("info")
        .arg(ct.join("003.dcm"))
        .arg("--json")
        .expect_exit(0);
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(one["shape"], serde_json::json!([8, 6, 1]));
    assert_eq!(one["spacing"], serde_json::json!([0.8, 0.5, 9.9]));

    let out = TestCommand::new("convert")
        .args(["--list-rois", "--rtstruct"])
        .arg(&rs)
        .arg(&ct)
        .arg("unused.nii.gz")
        .expect_exit(0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("GTV-1"));

    let image = dir.path().join("ct.nii.gz");
    let mask = dir.path().join("gtv.nii.gz");
    TestCommand::new("convert")
        .arg(&ct)
        .arg(&image)
        .arg("--rtstruct")
        .arg(&rs)
        .args(["--roi", "gtv-1", "--mask-out"])
        .arg(&mask)
        .succeeds();
    let v = read_volume(&image, &ReadOptions::default()).unwrap().volume;
    let m = read_mask(&mask, &ReadOptions::default()).unwrap();
    assert_eq!(m.geometry, v.geometry, "the mask lies exactly on the image");
    assert_eq!(
        v.data[v.geometry.index(7, 5, 3)],
        (300 + 50 + 7) as f32 * 2.0 - 1024.0
    );
    let on: Vec<usize> = (0..m.data.len()).filter(|&n| m.data[n] == 1).collect();
    let want: Vec<usize> = (2..=3)
        .flat_map(|j| (2..=4).map(move |i| i + 8 * (j + 6 * 2)))
        .collect();
    assert_eq!(on, want);

    // An unknown ROI and an RTSTRUCT of another series are clear errors.
    let out = TestCommand::new("convert")
        .arg(&ct)
        .arg(&image)
        .arg("--rtstruct")
        .arg(&rs)
        .args(["--roi", "Heart", "--mask-out"])
        .arg(&mask)
        .expect_exit(2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'GTV-1'"));

    // No output may replace an input or another output: each is refused before anything is
    // written, and the files are left as they were.
    let rs_before = std::fs::read(&rs).unwrap();
    let image_before = std::fs::read(&image).unwrap();
    let convert_to = |out: &std::path::Path, mask_out: &std::path::Path| {
        let mut c = TestCommand::new("convert");
        c.arg(&ct)
            .arg(out)
            .arg("--rtstruct")
            .arg(&rs)
            .args(["--roi", "GTV-1", "--mask-out"])
            .arg(mask_out);
        c
    };
    convert_to(&dir.path().join("new.nii.gz"), &rs)
        .fails_with(2, "refusing to write --mask-out over an input");
    let stderr = convert_to(&image, &image).fails_with(2, "would both be written");
    assert!(stderr.contains("ct.nii.gz"), "{stderr}");
    // The same file by another name.
    let aliased = dir.path().join("ct").join("..").join("ct.nii.gz");
    convert_to(&aliased, &image).fails_with(2, "would both be written");
    assert_eq!(std::fs::read(&rs).unwrap(), rs_before);
    assert_eq!(std::fs::read(&image).unwrap(), image_before);
    // `evaluate` may not write its summaries over a mask it scores.
    for folder in ["pred", "ref"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::copy(&mask, dir.path().join(folder).join("gtv.nii.gz")).unwrap();
    }
    let scored = dir.path().join("ref").join("gtv.nii.gz");
    let evaluate = |option: &str, path: &std::path::Path| {
        TestCommand::new("evaluate")
            .arg("--pred")
            .arg(dir.path().join("pred"))
            .arg("--ref")
            .arg(dir.path().join("ref"))
            .arg(option)
            .arg(path)
            .fails_with(2, "refusing to write")
    };
    evaluate("--csv", &scored);
    evaluate("--out", &dir.path().join("pred").join("gtv.nii.gz"));
    assert_eq!(
        std::fs::read(&scored).unwrap(),
        std::fs::read(&mask).unwrap()
    );

    // A resampling that would not fit the memory budget is refused before it allocates.
    let fine = dir.path().join("fine.nii.gz");
    let stderr = TestCommand::new("convert")
        .arg(&image)
        .arg(&fine)
        .args(["--spacing", "0.001,0.001,0.001", "--max-memory", "64M"])
        .fails_with(2, "memory budget of 64.0 MiB");
    assert!(stderr.contains("--max-memory"), "{stderr}");
    assert!(!fine.exists());
    TestCommand::new("info")
        .arg(&image)
        .args(["--max-memory", "lots"])
        .fails_with(2, "lots");
}

#[test]
fn a_dicom_seg_segment_converts_to_a_mask_on_the_series_grid() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.78", &[0.0, 2.5, 5.0], 8, 6).unwrap();
    let mut pixels = vec![0u8; 48];
    pixels[3 + 8 * 4] = 1;
    let seg = dir.path().join("seg.dcm");
    let frame = SegFrame {
        segment: 4,
        position: [10.0, -20.0, 7.5],
        pixels,
    };
    write_seg(&seg, &[(4, "GTV")], &[frame], 8, 6).unwrap();
    let out = TestCommand::new("convert")
        .args(["--list-rois", "--seg"])
        .arg(&seg)
        .arg(&ct)
        .arg("unused.nii.gz")
        .expect_exit(0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("GTV"));
    let (image, mask) = (dir.path().join("ct.nii"), dir.path().join("gtv.nii.gz"));
    TestCommand::new("convert")
        .arg(&ct)
        .arg(&image)
        .arg("--seg")
        .arg(&seg)
        .args(["--roi", "gtv", "--mask-out"])
        .arg(&mask)
        .succeeds();
    let v = read_volume(&image, &ReadOptions::default()).unwrap().volume;
    let m = read_mask(&mask, &ReadOptions::default()).unwrap();
    assert_eq!(m.geometry, v.geometry, "the mask lies exactly on the image");
    let on: Vec<usize> = (0..m.data.len()).filter(|&n| m.data[n] == 1).collect();
    assert_eq!(on, vec![m.geometry.index(3, 4, 1)]);
    // A file that is not a SEG is named with the reason.
    let out = TestCommand::new("convert")
        .arg(&ct)
        .arg(&image)
        .arg("--seg")
        .arg(ct.join("003.dcm"))
        .args(["--roi", "gtv", "--mask-out"])
        .arg(&mask)
        .expect_exit(2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a DICOM SEG"));
}

#[test]
fn predict_writes_a_dicom_seg_that_reads_back_onto_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::tiny_phantom(dir.path());
    let config = crate::train::tiny_config(dir.path(), &data);
    let run = crate::train::tiny_ct_run(dir.path(), &config, "run", &[]);
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.88", &[0.0, 2.5, 5.0, 7.5, 10.0], 48, 40).unwrap();
    let predict = |kind: &str, out: &std::path::Path| {
        TestCommand::new("predict")
            .arg("--run")
            .arg(&run)
            .args(["--device", "cpu", "--output-type", kind, "-i"])
            .arg(&ct)
            .arg("-o")
            .arg(out)
            .succeeds();
    };
    let nifti = dir.path().join("mask.nii.gz");
    let seg = dir.path().join("mask.dcm");
    predict("nifti", &nifti);
    predict("dicom-seg", &seg);
    let series = cmedl_io::dicom::read_series(&ct, None).unwrap();
    let segments = cmedl_io::dicom::list_segments(&seg).unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].label, "tumour");
    let back =
        cmedl_io::dicom::read_seg_mask(&seg, Some(&series.volume.geometry), "tumour").unwrap();
    let want = read_mask(&nifti, &ReadOptions::default()).unwrap();
    assert_eq!(
        back.data, want.data,
        "the SEG holds the NIfTI prediction exactly"
    );
    // The RTSTRUCT of the same prediction rasterises back to it exactly (pixel-edge contours).
    // Names come from the run's dataset.json ("tumour" above), or from --labels.
    let rs = dir.path().join("contours.dcm");
    TestCommand::new("predict")
        .arg("--run")
        .arg(&run)
        .args([
            "--device",
            "cpu",
            "--output-type",
            "rtstruct",
            "--labels",
            "GTV",
            "-i",
        ])
        .arg(&ct)
        .arg("-o")
        .arg(&rs)
        .succeeds();
    let back = cmedl_io::dicom::read_rtstruct_mask(&rs, &series, "GTV").unwrap();
    assert_eq!(
        back.mask.data, want.data,
        "the RTSTRUCT holds the prediction exactly"
    );
    // Every frame references an image of the series.
    let text = String::from_utf8_lossy(&std::fs::read(&seg).unwrap()).into_owned();
    for uid in &series.source.instance_uids {
        assert!(text.contains(uid.as_str()), "{uid} is referenced");
    }
    // A label file names the segment and codes what it is; a label the run lacks is refused.
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"1": {"name": "GTV-1", "type": {"value": "4147007", "scheme": "SCT", "meaning": "Mass"}}}"#,
    )
    .unwrap();
    let coded = dir.path().join("coded.dcm");
    let with_labels = |out: &std::path::Path| {
        let mut c = TestCommand::new("predict");
        c.arg("--run")
            .arg(&run)
            .args(["--device", "cpu", "--output-type", "dicom-seg", "--labels"])
            .arg(&labels)
            .arg("-i")
            .arg(&ct)
            .arg("-o")
            .arg(out);
        c
    };
    with_labels(&coded).succeeds();
    assert_eq!(
        cmedl_io::dicom::list_segments(&coded).unwrap()[0].label,
        "GTV-1"
    );
    let bytes = String::from_utf8_lossy(&std::fs::read(&coded).unwrap()).into_owned();
    assert!(
        bytes.contains("4147007") && bytes.contains("Mass"),
        "the type code is the file's"
    );
    assert!(bytes.contains("49755003"), "the default category stays");
    std::fs::write(&labels, r#"{"2": {"name": "Node"}}"#).unwrap();
    with_labels(&dir.path().join("bad.dcm"))
        .fails_with(2, "label 2 is not one of the run's 1 foreground classes");
    // A SEG needs a series as input and a .dcm name.
    TestCommand::new("predict")
        .arg("--run")
        .arg(&run)
        .args(["--output-type", "dicom-seg", "-i"])
        .arg(&nifti)
        .arg("-o")
        .arg(dir.path().join("x.dcm"))
        .fails_with(2, "needs a DICOM series folder as input");
    TestCommand::new("predict")
        .arg("--run")
        .arg(&run)
        .args(["--output-type", "dicom-seg", "-i"])
        .arg(&ct)
        .arg("-o")
        .arg(dir.path().join("x.nii.gz"))
        .fails_with(2, "must be a .dcm file");
    TestCommand::new("predict")
        .arg("--run")
        .arg(&run)
        .args(["--output-type", "rtstruct", "-i"])
        .arg(&ct)
        .arg("-o")
        .arg(ct.join("inside.dcm"))
        .fails_with(2, "outside the series folder");
}
