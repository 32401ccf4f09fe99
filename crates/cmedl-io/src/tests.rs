//! Round trips, header precedence, malformed files, resampling and normalisation.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::nifti::{
    read_header, read_mask, read_volume, rotation_to_quaternion, write_mask, write_volume,
    DataType, NiftiHeader, NiftiVersion, ReadOptions, WriteOptions,
};
use crate::*;

/// A rotation from a unit quaternion, scaled by spacing, with an offset: an oblique affine.
fn oblique(q: [f64; 4], spacing: [f64; 3], offset: [f64; 3], flip: bool) -> Affine {
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    let [a, b, c, d] = q.map(|v| v / n);
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let mut m = identity();
    for row in 0..3 {
        for col in 0..3 {
            let s = if col == 2 && flip {
                -spacing[col]
            } else {
                spacing[col]
            };
            m[row][col] = r[row][col] * s;
        }
        m[row][3] = offset[row];
    }
    m
}

/// The same affine with every entry rounded to f32, as NIfTI-1 stores it.
fn f32_exact(m: Affine) -> Affine {
    m.map(|row| row.map(|v| f64::from(v as f32)))
}

fn values_for(t: DataType, n: usize, seed: u64) -> Vec<f32> {
    // Deterministic spread across the type's exactly representable range in f32.
    let (lo, hi): (f64, f64) = match t {
        DataType::U8 => (0.0, 255.0),
        DataType::I8 => (-128.0, 127.0),
        DataType::I16 => (-32768.0, 32767.0),
        DataType::U16 => (0.0, 65535.0),
        DataType::I32 | DataType::I64 => (-16_777_216.0, 16_777_216.0),
        DataType::U32 | DataType::U64 => (0.0, 16_777_216.0),
        DataType::F32 | DataType::F64 => (-3.0e4, 3.0e4),
    };
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = lo + u * (hi - lo);
            if t.is_integer() {
                v.round() as f32
            } else {
                v as f32
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn write_then_read_gives_identical_voxels_and_geometry(
        t in 0usize..10,
        shape in (1usize..6, 1usize..5, 1usize..4),
        q in (0.1f64..1.0, -1.0f64..1.0, -1.0f64..1.0, -1.0f64..1.0),
        spacing in (0.3f64..3.0, 0.3f64..3.0, 0.5f64..6.0),
        offset in (-200.0f64..200.0, -200.0f64..200.0, -200.0f64..200.0),
        flip in any::<bool>(),
        gz in any::<bool>(),
        nifti2 in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let t = DataType::ALL[t];
        let shape = [shape.0, shape.1, shape.2];
        let spacing = [spacing.0, spacing.1, spacing.2].map(|s| f64::from(s as f32));
        let affine = f32_exact(oblique([q.0, q.1, q.2, q.3], spacing, [offset.0, offset.1, offset.2], flip));
        let geometry = Geometry { shape, spacing, affine };
        let volume = Volume::new(geometry.clone(), values_for(t, shape.iter().product(), seed)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gz { "v.nii.gz" } else { "v.nii" });
        write_volume(&path, &volume, &WriteOptions { datatype: t, nifti2, ..Default::default() }).unwrap();
        let back = read_volume(&path, &ReadOptions::default()).unwrap();
        prop_assert_eq!(back.header.datatype, t);
        prop_assert_eq!(back.header.version, if nifti2 { NiftiVersion::Two } else { NiftiVersion::One });
        prop_assert_eq!(&back.volume.geometry, &geometry);
        prop_assert_eq!(&back.volume.data, &volume.data);
        // The qform written next to the sform describes the same grid.
        let mut h = back.header.clone();
        h.sform_code = 0;
        let from_q = h.affine();
        for r in 0..3 {
            for c in 0..4 {
                prop_assert!((from_q[r][c] - affine[r][c]).abs() < 1e-3, "qform {:?} vs {:?}", from_q, affine);
            }
        }
    }
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn small_volume() -> Volume {
    let g = Geometry::axis_aligned([3, 2, 2], [1.0, 2.0, 3.0]);
    Volume::new(g, (0..12).map(|v| v as f32).collect()).unwrap()
}

fn header_of(volume: &Volume, t: DataType) -> NiftiHeader {
    let g = &volume.geometry;
    NiftiHeader::for_volume(NiftiVersion::One, g.shape, g.spacing, &g.affine, t)
}

fn write_raw(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn masks_round_trip_on_the_image_grid() {
    let dir = temp();
    let v = small_volume();
    let mask = Mask::new(v.geometry.clone(), (0..12).map(|i| (i % 3) as u8).collect()).unwrap();
    let p = dir.path().join("m.nii.gz");
    write_mask(&p, &mask).unwrap();
    let back = read_mask(&p, &ReadOptions::default()).unwrap();
    assert_eq!(back, mask);
    assert_eq!(back.label_counts(), vec![(0, 4), (1, 4), (2, 4)]);
    assert_eq!(read_header(&p).unwrap().datatype, DataType::U8);
}

#[test]
fn scaling_is_applied_on_read() {
    let dir = temp();
    let v = small_volume();
    let mut h = header_of(&v, DataType::I16);
    h.scl_slope = 2.0;
    h.scl_inter = -1024.0;
    let mut bytes = h.to_bytes();
    for x in &v.data {
        bytes.extend_from_slice(&(*x as i16).to_le_bytes());
    }
    let p = write_raw(dir.path(), "s.nii", &bytes);
    let back = read_volume(&p, &ReadOptions::default()).unwrap();
    let want: Vec<f32> = v.data.iter().map(|x| x * 2.0 - 1024.0).collect();
    assert_eq!(back.volume.data, want);
}

#[test]
fn sform_beats_qform_beats_pixdim() {
    let v = small_volume();
    let mut h = header_of(&v, DataType::F32);
    let sform = oblique(
        [0.9, 0.1, -0.2, 0.3],
        [1.0, 2.0, 3.0],
        [10.0, -20.0, 5.0],
        false,
    );
    h.srow.copy_from_slice(&sform[..3]);
    let (quat, qoff, qfac) = rotation_to_quaternion(&oblique(
        [0.7, 0.0, 0.5, 0.0],
        [1.0, 2.0, 3.0],
        [1.0, 2.0, 3.0],
        true,
    ));
    h.quatern = quat;
    h.qoffset = qoff;
    h.pixdim[0] = qfac;
    assert_eq!(h.affine(), sform);
    h.sform_code = 0;
    let q = h.affine();
    let want = oblique([0.7, 0.0, 0.5, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], true);
    for r in 0..3 {
        for c in 0..4 {
            assert!((q[r][c] - want[r][c]).abs() < 1e-9, "{q:?} vs {want:?}");
        }
    }
    h.qform_code = 0;
    assert_eq!(
        h.affine(),
        Geometry::axis_aligned([3, 2, 2], [1.0, 2.0, 3.0]).affine
    );
}

#[test]
fn big_endian_files_read() {
    // A NIfTI-1 header written big-endian by hand: 2×2×1 int16, pixdim 0.5.
    let mut b = vec![0u8; 352];
    b[0..4].copy_from_slice(&348i32.to_be_bytes());
    for (i, d) in [3i16, 2, 2, 1, 1, 1, 1, 1].iter().enumerate() {
        b[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_be_bytes());
    }
    b[70..72].copy_from_slice(&4i16.to_be_bytes());
    b[72..74].copy_from_slice(&16i16.to_be_bytes());
    for (i, p) in [1f32, 0.5, 0.5, 0.5].iter().enumerate() {
        b[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_be_bytes());
    }
    b[108..112].copy_from_slice(&352f32.to_be_bytes());
    b[344..348].copy_from_slice(b"n+1\0");
    for v in [1i16, -2, 300, -32768] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    let dir = temp();
    let p = write_raw(dir.path(), "be.nii", &b);
    let img = read_volume(&p, &ReadOptions::default()).unwrap();
    assert!(img.header.big_endian);
    assert_eq!(img.volume.data, vec![1.0, -2.0, 300.0, -32768.0]);
    assert_eq!(img.volume.geometry.spacing, [0.5, 0.5, 0.5]);
}

/// Malformed files: each must fail with an error naming the file, never panic or allocate the
/// announced size.
#[test]
fn malformed_files_are_rejected_with_the_file_name() {
    let dir = temp();
    let v = small_volume();
    let good = {
        let mut b = header_of(&v, DataType::F32).to_bytes();
        for x in &v.data {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    };
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let gz = |b: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.nii", vec![], "too short"),
        (
            "short.nii",
            good[..100].to_vec(),
            "inside the 348-byte header",
        ),
        (
            "magic.nii",
            with(&|b| b[344..348].copy_from_slice(b"xyz\0")),
            "wrong magic",
        ),
        (
            "pair.nii",
            with(&|b| b[344..348].copy_from_slice(b"ni1\0")),
            ".hdr/.img",
        ),
        (
            "sizeof.nii",
            with(&|b| b[0..4].copy_from_slice(&1234i32.to_le_bytes())),
            "header size field is 1234",
        ),
        (
            "truncated.nii",
            good[..good.len() - 5].to_vec(),
            "truncated",
        ),
        (
            "huge.nii",
            with(&|b| {
                for i in 0..3 {
                    b[42 + 2 * i..44 + 2 * i].copy_from_slice(&32767i16.to_le_bytes())
                }
            }),
            "limit",
        ),
        (
            "negdim.nii",
            with(&|b| b[42..44].copy_from_slice(&(-3i16).to_le_bytes())),
            "sizes must be positive",
        ),
        (
            "ndim.nii",
            with(&|b| b[40..42].copy_from_slice(&9i16.to_le_bytes())),
            "dim[0] = 9",
        ),
        (
            "pixdim.nii",
            with(&|b| b[80..84].copy_from_slice(&(-1f32).to_le_bytes())),
            "pixdim[1] = -1",
        ),
        (
            "nanpix.nii",
            with(&|b| b[84..88].copy_from_slice(&f32::NAN.to_le_bytes())),
            "pixdim[2] = NaN",
        ),
        (
            "4d.nii",
            with(&|b| {
                b[40..42].copy_from_slice(&4i16.to_le_bytes());
                b[48..50].copy_from_slice(&5i16.to_le_bytes())
            }),
            "5 volumes",
        ),
        (
            "complex.nii",
            with(&|b| b[70..72].copy_from_slice(&32i16.to_le_bytes())),
            "datatype code 32",
        ),
        (
            "offset.nii",
            with(&|b| b[108..112].copy_from_slice(&100f32.to_le_bytes())),
            "inside the header",
        ),
        (
            "nanoffset.nii",
            with(&|b| b[108..112].copy_from_slice(&f32::NAN.to_le_bytes())),
            "vox_offset",
        ),
        (
            "sform.nii",
            with(&|b| b[280..284].copy_from_slice(&f32::INFINITY.to_le_bytes())),
            "non-finite",
        ),
        (
            "garbage.nii.gz",
            vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "gzip",
        ),
        (
            "gztrunc.nii.gz",
            {
                let z = gz(&good);
                z[..z.len() / 2].to_vec()
            },
            "truncated gzip",
        ),
        ("gzshort.nii.gz", gz(&good[..good.len() - 8]), "truncated"),
        (
            "gzhuge.nii.gz",
            gz(&with(&|b| {
                for i in 0..3 {
                    b[42 + 2 * i..44 + 2 * i].copy_from_slice(&32767i16.to_le_bytes())
                }
            })),
            "limit",
        ),
        (
            "text.nii",
            b"this is not an image at all, just some text that is long enough".repeat(8),
            "not a NIfTI file",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = write_raw(dir.path(), name, &bytes);
        let err = read_volume(&p, &ReadOptions::default())
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "{name}: {err}");
        assert!(
            err.contains(expect),
            "{name}: expected '{expect}' in: {err}"
        );
    }
    let missing = dir.path().join("missing.nii");
    let err = read_volume(&missing, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.nii"), "{err}");
    // A label file with non-label values.
    let p = write_raw(
        dir.path(),
        "frac.nii",
        &with(&|b| b[352..356].copy_from_slice(&0.5f32.to_le_bytes())),
    );
    let err = read_mask(&p, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frac.nii") && err.contains("not a label"),
        "{err}"
    );
    // A lower voxel limit applies before reading data.
    let p = write_raw(dir.path(), "ok.nii", &good);
    let err = read_volume(
        &p,
        &ReadOptions {
            max_voxels: 5,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("12 voxels"), "{err}");
}

#[test]
fn integer_writes_reject_values_that_do_not_fit() {
    let dir = temp();
    let mut v = small_volume();
    v.data[3] = 300.0;
    let err = write_volume(
        &dir.path().join("x.nii"),
        &v,
        &WriteOptions {
            datatype: DataType::U8,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("300"), "{err}");
    assert!(!dir.path().join("x.nii").exists());
}

#[test]
fn affine_inverse() {
    let m = oblique(
        [0.8, 0.3, -0.1, 0.4],
        [0.7, 0.9, 2.5],
        [12.0, -3.0, 40.0],
        true,
    );
    let inv = invert_affine(&m).unwrap();
    for r in 0..4 {
        for c in 0..4 {
            let v: f64 = (0..4).map(|k| inv[r][k] * m[k][c]).sum();
            assert!((v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
        }
    }
    let mut singular = identity();
    singular[2][2] = 0.0;
    assert!(invert_affine(&singular).is_err());
}

#[test]
fn resampling_a_ramp_is_exact_and_keeps_world_positions() {
    // f(world) = world x; on an oblique grid, trilinear resampling must reproduce it exactly
    // wherever the target lies inside the source.
    let affine = oblique(
        [0.9, 0.0, 0.0, 0.2],
        [1.0, 1.0, 2.0],
        [5.0, 6.0, 7.0],
        false,
    );
    let g = Geometry {
        shape: [8, 8, 4],
        spacing: [1.0, 1.0, 2.0],
        affine,
    };
    let mut data = Vec::new();
    for k in 0..4 {
        for j in 0..8 {
            for i in 0..8 {
                data.push(g.world([i as f64, j as f64, k as f64])[0] as f32);
            }
        }
    }
    let v = Volume::new(g.clone(), data).unwrap();
    let target = grid_with_spacing(&g, [0.5, 0.5, 2.0]);
    assert_eq!(target.shape, [16, 16, 4]);
    let r = resample_volume(&v, &target, Interp::Linear).unwrap();
    for k in 0..4 {
        for j in 0..15 {
            for i in 0..15 {
                let want = target.world([i as f64, j as f64, k as f64])[0] as f32;
                let got = r.data[target.index(i, j, k)];
                assert!((got - want).abs() < 1e-3, "({i},{j},{k}): {got} vs {want}");
            }
        }
    }
    // Identity resampling is exact.
    assert_eq!(
        resample_volume(&v, &g, Interp::Linear).unwrap().data,
        v.data
    );
}

#[test]
fn nearest_mask_resampling_round_trips_on_a_refined_grid() {
    let g = Geometry::axis_aligned([4, 3, 2], [2.0, 2.0, 3.0]);
    let m = Mask::new(g.clone(), (0..24).map(|i| (i % 4) as u8).collect()).unwrap();
    let fine = g.with_spacing([8, 6, 2], [1.0, 1.0, 3.0]);
    let up = resample_mask(&m, &fine).unwrap();
    let back = resample_mask(&up, &g).unwrap();
    assert_eq!(back, m);
}

#[test]
fn crop_and_pad_keep_world_positions() {
    let g = Geometry {
        shape: [5, 4, 2],
        spacing: [1.0, 1.0, 1.0],
        affine: oblique(
            [1.0, 0.2, 0.0, 0.1],
            [1.0, 1.0, 1.0],
            [3.0, 4.0, 5.0],
            false,
        ),
    };
    let data: Vec<u16> = (0..40).collect();
    for size in [[3usize, 2usize], [8, 7], [5, 4]] {
        let (g2, d2) = crop_or_pad_plane(&g, &data, size, u16::MAX);
        assert_eq!(g2.shape, [size[0], size[1], 2]);
        for k in 0..2 {
            for j in 0..size[1] {
                for i in 0..size[0] {
                    let v = d2[g2.index(i, j, k)];
                    if v == u16::MAX {
                        continue;
                    }
                    let src = v as usize;
                    let (si, sj, sk) = (src % 5, (src / 5) % 4, src / 20);
                    let a = g2.world([i as f64, j as f64, k as f64]);
                    let b = g.world([si as f64, sj as f64, sk as f64]);
                    assert!((0..3).all(|x| (a[x] - b[x]).abs() < 1e-9));
                }
            }
        }
    }
}

#[test]
fn windows_map_to_unit_range() {
    let w = Window::CT;
    assert_eq!(w.apply(-1000.0), -1.0);
    assert_eq!(w.apply(500.0), 1.0);
    assert_eq!(w.apply(-250.0), 0.0);
    assert_eq!(w.apply(-3000.0), -1.0);
    assert_eq!(w.apply(f32::NAN), -1.0);
    assert_eq!(w.invert(0.0), -250.0);
    let values: Vec<f32> = (0..=1000).map(|v| v as f32).collect();
    let p = Window::from_percentiles(&values, 0.5, 99.5);
    assert_eq!((p.lo, p.hi), (5.0, 995.0));
    let flat = Window::from_percentiles(&[3.0; 10], 0.5, 99.5);
    assert!(flat.hi > flat.lo);
}

#[test]
fn dataset_index_is_checked() {
    use crate::dataset::Dataset;
    let dir = temp();
    let write = |text: &str| std::fs::write(dir.path().join("dataset.json"), text).unwrap();
    let ok = r#"{"format":"cmedl-dataset/1","name":"x","labels":{"0":"background","1":"tumour"},
        "modalities":{"ct":{"kind":"ct","train":[{"id":"a","image":"ct/a.nii.gz","label":"ct/a_l.nii.gz"}]}}}"#;
    write(ok);
    let d = Dataset::open(dir.path()).unwrap();
    assert_eq!(d.modality("ct").unwrap().train[0].id, "a");
    assert!(d.modality("mr").unwrap_err().to_string().contains("\"ct\""));
    for (text, expect) in [
        (ok.replace("ct/a.nii.gz", "../a.nii.gz"), "stay inside"),
        (ok.replace("ct/a.nii.gz", "/etc/passwd"), "stay inside"),
        (ok.replace("cmedl-dataset/1", "other"), "format is 'other'"),
        (ok.replace("\"kind\"", "\"knd\""), "unknown field `knd`"),
        (
            ok.replace("}]}}}", "},{\"id\":\"a\",\"image\":\"b.nii\"}]}}}"),
            "twice",
        ),
        ("{".to_owned(), "invalid dataset.json"),
    ] {
        write(&text);
        let err = Dataset::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("dataset.json") && err.contains(expect),
            "{err}"
        );
    }
}

#[test]
fn largest_component_per_label_is_kept() {
    let g = Geometry::axis_aligned([5, 5, 1], [1.0; 3]);
    #[rustfmt::skip]
    let data = vec![
        1, 1, 0, 0, 1,
        1, 0, 0, 0, 0,
        0, 0, 2, 0, 0,
        0, 0, 0, 0, 2,
        0, 0, 0, 2, 2,
    ];
    let mut m = Mask::new(g, data).unwrap();
    m.keep_largest_components();
    #[rustfmt::skip]
    let want = vec![
        1, 1, 0, 0, 0,
        1, 0, 0, 0, 0,
        0, 0, 0, 0, 0,
        0, 0, 0, 0, 2,
        0, 0, 0, 2, 2,
    ];
    assert_eq!(m.data, want);
}

#[test]
fn components_are_26_connected_and_counted_per_label() {
    // Two voxels touching only at a corner (across slices) are one component; a label-2
    // voxel next to label 1 is its own.
    let g = Geometry::axis_aligned([3, 3, 2], [1.0; 3]);
    #[rustfmt::skip]
    let data = vec![
        1, 0, 0,
        0, 0, 0,
        0, 0, 1,
        // k = 1
        0, 0, 0,
        0, 1, 2,
        0, 0, 0,
    ];
    let m = Mask::new(g, data).unwrap();
    let counts = m.component_counts();
    assert_eq!(counts.get(&1), Some(&1));
    assert_eq!(counts.get(&2), Some(&1));
    assert_eq!(m.components().len(), 2);
}

#[test]
fn components_below_a_volume_in_mm3_are_removed() {
    // Voxels of 2 × 2 × 5 = 20 mm³: a 3-voxel component (60 mm³) and a 1-voxel one (20 mm³).
    let g = Geometry::axis_aligned([5, 1, 1], [2.0, 2.0, 5.0]);
    let mut m = Mask::new(g.clone(), vec![1, 1, 1, 0, 1]).unwrap();
    assert_eq!(
        m.remove_components_below(20.0),
        0,
        "20 mm³ is not below 20 mm³"
    );
    assert_eq!(m.remove_components_below(20.5), 1);
    assert_eq!(m.data, vec![1, 1, 1, 0, 0]);
    assert_eq!(m.remove_components_below(61.0), 1);
    assert_eq!(m.data, vec![0; 5]);
}

proptest! {
    #[test]
    fn filters_only_remove_voxels_and_keep_labels(
        data in proptest::collection::vec(0u8..3, 4 * 3 * 2),
        min in 0.0f64..200.0,
    ) {
        let g = Geometry::axis_aligned([4, 3, 2], [2.0, 3.0, 5.0]);
        let m = Mask::new(g, data).unwrap();
        let mut largest = m.clone();
        largest.keep_largest_components();
        let mut filtered = m.clone();
        filtered.remove_components_below(min);
        for out in [&largest, &filtered] {
            for (&a, &b) in out.data.iter().zip(&m.data) {
                prop_assert!(a == 0 || a == b);
            }
        }
        // At most one component per label remains after keeping the largest.
        prop_assert!(largest.component_counts().values().all(|&c| c == 1));
        // Every remaining component is at least the threshold.
        for (_, c) in filtered.components() {
            prop_assert!(c.len() as f64 * 30.0 >= min);
        }
    }
}

#[test]
fn spatial_units_in_metres_and_micrometres_are_read_as_millimetres() {
    let dir = temp();
    // The small volume's grid written in metres (1, 2, 3 mm voxels; origin 10, 20, 30 mm).
    let mut g = small_volume().geometry;
    for (r, o) in [10.0, 20.0, 30.0].iter().enumerate() {
        g.affine[r][3] = *o;
    }
    for (units, scale, name) in [(1 | 8, 1e-3, "m.nii"), (3 | 8, 1e3, "um.nii")] {
        let mut affine = g.affine;
        for row in affine.iter_mut().take(3) {
            for v in row.iter_mut() {
                *v *= scale;
            }
        }
        let spacing = g.spacing.map(|s| s * scale);
        let mut h =
            NiftiHeader::for_volume(NiftiVersion::One, g.shape, spacing, &affine, DataType::F32);
        h.xyzt_units = units;
        let mut bytes = h.to_bytes();
        for x in 0..12 {
            bytes.extend_from_slice(&(x as f32).to_le_bytes());
        }
        let p = write_raw(dir.path(), name, &bytes);
        let back = read_volume(&p, &ReadOptions::default()).unwrap().volume;
        for d in 0..3 {
            assert!(
                (back.geometry.spacing[d] - g.spacing[d]).abs() < 1e-6,
                "{name}"
            );
        }
        assert!(
            back.geometry.same_grid(&g, 1e-4),
            "{name}: {:?}",
            back.geometry.affine
        );
    }
}

#[test]
fn resampling_beyond_the_memory_budget_is_an_error_not_an_abort() {
    let v = Volume::new(Geometry::axis_aligned([4, 4, 4], [1.0; 3]), vec![0.0; 64]).unwrap();
    // 1 mm → 1 µm: 4000³ voxels, 256 GB of f32, over any default budget (at most half the RAM).
    let target = crate::grid_with_spacing(&v.geometry, [0.001; 3]);
    assert_eq!(target.shape, [4000; 3]);
    if crate::memory::max_memory() < 256_000_000_000 {
        let err = crate::resample_volume(&v, &target, crate::Interp::Linear).unwrap_err();
        assert!(matches!(err, IoError::OverBudget { .. }), "{err}");
        assert!(err.to_string().contains("--max-memory"), "{err}");
    }
    // A grid too large to count saturates instead of overflowing.
    let huge = Geometry::axis_aligned([usize::MAX / 2, 4, 4], [1.0; 3]);
    assert_eq!(huge.len(), usize::MAX);
}

/// Offsets at and past the u64 limit: a gzipped 4-D NIfTI-1 whose vox_offset saturates the
/// cast (1e20, 1e30), and a NIfTI-2 whose 64-bit vox_offset is the largest i64, asked for its
/// second volume. Each must be refused, never read from a wrapped-around place.
#[test]
fn vox_offsets_near_the_u64_limit_are_refused() {
    let dir = temp();
    // 400 bytes a volume: more than the 348-byte header, so that a wrapped-around skip would
    // land inside the file.
    let g = Geometry::axis_aligned([5, 5, 4], [1.0, 2.0, 3.0]);
    let v = Volume::new(g, (0..100).map(|v| v as f32).collect()).unwrap();
    let four_d = |version: NiftiVersion, offset: Option<f64>| {
        let g = &v.geometry;
        let mut h = NiftiHeader::for_volume(version, g.shape, g.spacing, &g.affine, DataType::F32);
        h.dim[0] = 4;
        h.dim[4] = 2;
        if let Some(o) = offset {
            h.vox_offset = o as u64;
        }
        let mut b = h.to_bytes();
        if let Some(o) = offset {
            // Written as the format stores it: f32 in NIfTI-1, i64 in NIfTI-2.
            match version {
                NiftiVersion::One => b[108..112].copy_from_slice(&(o as f32).to_le_bytes()),
                NiftiVersion::Two => b[168..176].copy_from_slice(&(o as i64).to_le_bytes()),
            }
        }
        for x in v.data.iter().chain(&v.data) {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    };
    let gz = |b: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let second = ReadOptions {
        volume: Some(1),
        ..Default::default()
    };
    // The well-formed file reads its second volume.
    let ok = write_raw(
        dir.path(),
        "ok4d.nii.gz",
        &gz(&four_d(NiftiVersion::One, None)),
    );
    assert_eq!(read_volume(&ok, &second).unwrap().volume.data, v.data);
    for (name, version, offset) in [
        ("1e20.nii.gz", NiftiVersion::One, 1e20),
        ("1e30.nii.gz", NiftiVersion::One, 1e30),
        ("u64max.nii.gz", NiftiVersion::One, u64::MAX as f64),
        ("i64max.nii.gz", NiftiVersion::Two, i64::MAX as f64),
        ("i64max.nii", NiftiVersion::Two, i64::MAX as f64),
    ] {
        let bytes = four_d(version, Some(offset));
        let bytes = if name.ends_with(".gz") {
            gz(&bytes)
        } else {
            bytes
        };
        let p = write_raw(dir.path(), name, &bytes);
        let err = read_volume(&p, &second).expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn dataset_label_codes_name_foreground_labels_with_whole_codes() {
    let root = Path::new("/data");
    let with = |codes: &str| {
        format!(
            r#"{{"format": "cmedl-dataset/1", "name": "x", "labels": {{"0": "background", "1": "tumour"}}, "modalities": {{}}, "label_codes": {codes}}}"#
        )
    };
    let ok = crate::dataset::Dataset::from_json(
        root,
        &with(r#"{"1": {"type": {"value": "4147007", "scheme": "SCT", "meaning": "Mass"}}}"#),
    )
    .unwrap();
    assert_eq!(
        ok.index.label_codes["1"].kind.as_ref().unwrap().meaning,
        "Mass"
    );
    for (codes, expect) in [
        (
            r#"{"2": {"name": "node"}}"#,
            "'2' is not a foreground value",
        ),
        (r#"{"0": {"name": "air"}}"#, "'0' is not a foreground value"),
        (
            r#"{"1": {"type": {"value": "4147007", "scheme": "", "meaning": "Mass"}}}"#,
            "a code needs",
        ),
    ] {
        let err = crate::dataset::Dataset::from_json(root, &with(codes))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dataset.json") && err.contains(expect),
            "{err}"
        );
    }
}
