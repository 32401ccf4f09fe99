//! Series and structure sets written in code: sorting, geometry, rescale, errors, rasterisation.

use super::synthetic::*;
// The synthetic writers (the product's own are `super::seg_write::write_seg` and
// `super::rtstruct_write::write_rtstruct`).
use super::synthetic::{write_rtstruct, write_seg};
use super::*;

#[test]
fn a_shuffled_oblique_series_reads_sorted_rescaled_and_placed() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "1.2.840.1", &[7.5, 0.0, 5.0, 2.5], 8, 6).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not DICOM").unwrap();
    let s = read_series(dir.path(), None).unwrap();
    let g = &s.volume.geometry;
    assert_eq!(g.shape, [8, 6, 4]);
    assert_eq!(
        g.spacing,
        [0.8, 0.5, 2.5],
        "column spacing, row spacing, spacing from positions"
    );
    for (k, j, i) in [(0, 0, 0), (3, 5, 7), (2, 1, 4)] {
        let raw = (k * 100 + j * 10 + i) as f32;
        assert_eq!(s.volume.data[g.index(i, j, k)], raw * 2.0 - 1024.0);
    }
    // RAS = LPS with x and y negated; row direction (0.8, 0.6, 0) times the column spacing.
    let a = g.affine;
    assert!((a[0][0] + 0.8 * 0.8).abs() < 1e-9 && (a[1][0] + 0.6 * 0.8).abs() < 1e-9);
    assert!((a[0][1] - 0.6 * 0.5).abs() < 1e-9 && (a[1][1] + 0.8 * 0.5).abs() < 1e-9);
    assert!((a[2][2] - 2.5).abs() < 1e-9);
    assert_eq!([a[0][3], a[1][3], a[2][3]], [-10.0, 20.0, 5.0]);
    assert_eq!(s.spacing_deviation, 0.0);
}

#[test]
fn series_problems_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let gap = dir.path().join("gap");
    write_series(&gap, "1.2.840.2", &[0.0, 2.5, 7.5, 10.0], 4, 4).unwrap();
    let err = read_series(&gap, None).unwrap_err().to_string();
    assert!(err.contains("missing slice"), "{err}");
    let two = dir.path().join("two");
    write_series(&two.join("a"), "1.2.840.3", &[0.0, 2.5], 4, 4).unwrap();
    write_series(&two.join("b"), "1.2.840.4", &[0.0, 2.5], 4, 4).unwrap();
    let err = read_series(&two, None).unwrap_err().to_string();
    assert!(
        err.contains("1.2.840.3") && err.contains("1.2.840.4"),
        "{err}"
    );
    assert_eq!(
        read_series(&two, Some("1.2.840.4")).unwrap().uid,
        "1.2.840.4"
    );
    let mixed = dir.path().join("mixed");
    write_series(&mixed, "1.2.840.5", &[0.0, 2.5], 4, 4).unwrap();
    write_series(&mixed.join("more"), "1.2.840.5", &[5.0], 5, 4).unwrap();
    let err = read_series(&mixed, None).unwrap_err().to_string();
    assert!(err.contains("pixels, but other slices"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("x.txt"), "text").unwrap();
    assert!(read_series(&empty, None)
        .unwrap_err()
        .to_string()
        .contains("no DICOM files"));
    std::fs::write(empty.join("broken.dcm"), b"DICM but not really").unwrap();
    assert!(read_series(&empty, None).is_err());
}

#[test]
fn rtstruct_square_and_ring_rasterise_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    std::fs::create_dir_all(&ct).unwrap();
    // Axial 10×10 slices, 1 mm pixels (PixelSpacing 0.5/0.8 replaced below by axial writer).
    for k in 0..3 {
        let position = [0.0, 0.0, 2.0 * k as f64];
        write_slice(
            &ct.join(format!("{k}.dcm")),
            &SliceSpec {
                series: "1.2.9",
                instance: k,
                position,
                orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                cols: 10,
                rows: 10,
                pixels: vec![0; 100],
            },
        )
        .unwrap();
    }
    let series = read_series(&ct, None).unwrap();
    // Voxel (i, j) sits at LPS (0.8 i, 0.5 j): column spacing 0.8, row spacing 0.5.
    let mm = |i: f64, j: f64| [0.8 * i, 0.5 * j];
    let square = contour(
        &[mm(0.5, 0.5), mm(3.5, 0.5), mm(3.5, 3.5), mm(0.5, 3.5)],
        0.0,
    );
    let outer = contour(
        &[mm(0.5, 0.5), mm(6.5, 0.5), mm(6.5, 6.5), mm(0.5, 6.5)],
        2.2,
    );
    let inner = contour(
        &[mm(2.5, 2.5), mm(4.5, 2.5), mm(4.5, 4.5), mm(2.5, 4.5)],
        1.9,
    );
    let rs = dir.path().join("rs.dcm");
    write_rtstruct(
        &rs,
        "1.2.9",
        &[(1, "GTV", vec![square]), (2, "Ring", vec![outer, inner])],
    )
    .unwrap();
    let rois = list_rois(&rs).unwrap();
    assert_eq!(
        rois.iter()
            .map(|r| (r.name.as_str(), r.contours))
            .collect::<Vec<_>>(),
        vec![("GTV", 1), ("Ring", 2)]
    );
    let gtv = read_rtstruct_mask(&rs, &series, "gtv").unwrap().mask;
    let g = &gtv.geometry;
    let on: Vec<(usize, usize, usize)> = (0..g.len())
        .filter(|&n| gtv.data[n] == 1)
        .map(|n| (n % 10, (n / 10) % 10, n / 100))
        .collect();
    let want: Vec<(usize, usize, usize)> = (1..=3)
        .flat_map(|j| (1..=3).map(move |i| (i, j, 0)))
        .collect();
    assert_eq!(on, want);
    let ring = read_rtstruct_mask(&rs, &series, "RING").unwrap().mask;
    let on: Vec<(usize, usize)> = (0..g.len())
        .filter(|&n| ring.data[n] == 1)
        .map(|n| {
            assert_eq!(n / 100, 1);
            (n % 10, (n / 10) % 10)
        })
        .collect();
    let want: Vec<(usize, usize)> = (1..=6)
        .flat_map(|j| (1..=6).map(move |i| (i, j)))
        .filter(|&(i, j)| !((3..=4).contains(&i) && (3..=4).contains(&j)))
        .collect();
    assert_eq!(on, want, "the hole stays a hole");
    let err = read_rtstruct_mask(&rs, &series, "Heart")
        .unwrap_err()
        .to_string();
    assert!(err.contains("'GTV'") && err.contains("'Ring'"), "{err}");
    let other = dir.path().join("other.dcm");
    write_rtstruct(
        &other,
        "9.9.9",
        &[(
            1,
            "GTV",
            vec![contour(&[mm(0.5, 0.5), mm(3.5, 0.5), mm(3.5, 3.5)], 0.0)],
        )],
    )
    .unwrap();
    let err = read_rtstruct_mask(&other, &series, "GTV")
        .unwrap_err()
        .to_string();
    assert!(err.contains("9.9.9") && err.contains("other.dcm"), "{err}");
    assert!(read_rtstruct_mask(&ct.join("0.dcm"), &series, "GTV")
        .unwrap_err()
        .to_string()
        .contains("not an RTSTRUCT"));
}

#[test]
fn declared_lengths_beyond_the_file_are_rejected_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "1.2.5", &[0.0], 4, 3).unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&file).unwrap();
    assert!(read_series(dir.path(), None).is_ok());
    // Pixel data (7FE0,0010) OW: tag, VR, 2 reserved bytes, then the 32-bit length.
    let at = good
        .windows(4)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    let mut bad = good.clone();
    bad[at + 8..at + 12].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    std::fs::write(&file, &bad).unwrap();
    let err = read_series(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("(7FE0,0010) declares 2147483632 bytes"),
        "{err}"
    );
    // A garbled value representation is reported, not guessed at.
    let mut bad = good.clone();
    bad[at + 4..at + 6].copy_from_slice(&[0, 0]);
    std::fs::write(&file, &bad).unwrap();
    let err = read_series(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("no valid value representation"), "{err}");
}

#[test]
fn seg_frames_land_on_the_planes_of_their_series() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.8", &[0.0, 2.5, 5.0, 7.5], 8, 6).unwrap();
    let series = read_series(&ct, None).unwrap();
    let plane = |k: f64| [10.0, -20.0, 5.0 + 2.5 * k];
    let pixels = |on: &[(usize, usize)]| {
        let mut p = vec![0u8; 48];
        for &(i, j) in on {
            p[i + 8 * j] = 1;
        }
        p
    };
    let seg = dir.path().join("seg.dcm");
    write_seg(
        &seg,
        &[(1, "Tumour"), (2, "Lung")],
        &[
            SegFrame {
                segment: 1,
                position: plane(3.0),
                pixels: pixels(&[(7, 5), (0, 0)]),
            },
            SegFrame {
                segment: 2,
                position: plane(0.0),
                pixels: pixels(&[(1, 1)]),
            },
            SegFrame {
                segment: 1,
                position: plane(1.0),
                pixels: pixels(&[(2, 3)]),
            },
        ],
        8,
        6,
    )
    .unwrap();
    let segments = list_segments(&seg).unwrap();
    assert_eq!(
        segments,
        vec![
            SegmentInfo {
                number: 1,
                label: "Tumour".into(),
                frames: 2
            },
            SegmentInfo {
                number: 2,
                label: "Lung".into(),
                frames: 1
            },
        ]
    );
    let g = &series.volume.geometry;
    let mask = read_seg_mask(&seg, Some(g), "tumour").unwrap();
    assert_eq!(&mask.geometry, g);
    let on: Vec<usize> = (0..g.len()).filter(|&n| mask.data[n] == 1).collect();
    assert_eq!(
        on,
        vec![g.index(2, 3, 1), g.index(0, 0, 3), g.index(7, 5, 3)]
    );
    // Without a series: the grid spanned by the segment's frames (planes 1..3 of the series).
    let own = read_seg_mask(&seg, None, "Tumour").unwrap();
    assert_eq!(own.geometry.shape, [8, 6, 3]);
    assert_eq!(own.geometry.spacing, [0.8, 0.5, 2.5]);
    assert_eq!(own.data.iter().filter(|&&v| v == 1).count(), 3);
    assert_eq!(own.data[own.geometry.index(2, 3, 0)], 1);
    // A frame between two pixels of the grid is refused, as is an unknown label.
    let shifted = dir.path().join("shifted.dcm");
    write_seg(
        &shifted,
        &[(1, "Tumour")],
        &[SegFrame {
            segment: 1,
            position: [10.3, -20.0, 5.0],
            pixels: pixels(&[]),
        }],
        8,
        6,
    )
    .unwrap();
    let err = read_seg_mask(&shifted, Some(g), "Tumour")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not lie on a plane"), "{err}");
    let err = read_seg_mask(&seg, Some(g), "Heart")
        .unwrap_err()
        .to_string();
    assert!(err.contains("'Tumour', 'Lung'"), "{err}");
    let err = read_seg_mask(&ct.join("003.dcm"), Some(g), "Tumour")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a DICOM SEG"), "{err}");
}

#[test]
fn deflated_files_read_like_their_plain_twin_and_corrupt_ones_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "1.2.840.9", &[0.0], 8, 6).unwrap();
    let plain = dir.path().join("003.dcm");
    // The meta group with the deflated transfer syntax, then the raw-deflated data set.
    let bytes = std::fs::read(&plain).unwrap();
    let meta_end = 144 + u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let mut meta = dicom_object::open_file(&plain).unwrap().meta().clone();
    meta.transfer_syntax = "1.2.840.10008.1.2.1.99".to_owned();
    meta.update_information_group_length();
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    meta.write(&mut file).unwrap();
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &bytes[meta_end..]).unwrap();
    file.extend(encoder.finish().unwrap());
    let deflated = dir.path().join("deflated.dcm");
    std::fs::write(&deflated, &file).unwrap();
    let (a, b) = (
        read_image_file(&plain).unwrap(),
        read_image_file(&deflated).unwrap(),
    );
    assert_eq!(a.data, b.data);
    assert_eq!(a.data[8 * 6 - 1], (50 + 7) as f32 * 2.0 - 1024.0);
    // Cut inside the compressed data set: a clear error, not a panic.
    let bytes = std::fs::read(&deflated).unwrap();
    let cut = dir.path().join("cut.dcm");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let err = read_image_file(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.dcm"), "{err}");
}

#[cfg(unix)]
#[test]
fn folder_scans_skip_devices_and_fifos_and_follow_a_symlink_loop_once() {
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("series");
    write_series(&series, "1.2.840.9", &[0.0, 2.5, 5.0], 4, 4).unwrap();
    // A FIFO would block a reader for ever; a link back to the top would loop.
    let fifo = series.join("pipe.dcm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(dir.path(), series.join("loop")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", series.join("zero.dcm")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), series.join("broken.dcm")).unwrap();
    let found = scan_folder(dir.path()).unwrap();
    assert_eq!(found.len(), 1);
    // Each slice once, although the loop makes the tree reachable twice.
    assert_eq!(found[0].files.len(), 3, "{:?}", found[0].files);
    assert_eq!(
        read_series(dir.path(), None).unwrap().volume.geometry.shape,
        [4, 4, 3]
    );
}

/// The even-odd rule voxel by voxel: the definition the scanline fill must equal.
fn brute_force(polys: &[Vec<[f64; 2]>], nx: usize, ny: usize) -> Vec<u8> {
    let mut out = vec![0u8; nx * ny];
    for j in 0..ny {
        for i in 0..nx {
            let (x, y) = (i as f64, j as f64);
            let mut inside = false;
            for poly in polys {
                for e in 0..poly.len() {
                    let (a, b) = (poly[e], poly[(e + 1) % poly.len()]);
                    if (a[1] > y) != (b[1] > y)
                        && x < a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0])
                    {
                        inside = !inside;
                    }
                }
            }
            out[i + nx * j] = u8::from(inside);
        }
    }
    out
}

proptest::proptest! {
    #[test]
    fn scanline_fill_equals_the_even_odd_rule_voxel_by_voxel(
        polys in proptest::collection::vec(
            proptest::collection::vec((-4.0f64..20.0, -4.0f64..20.0), 3..9),
            1..4,
        ),
        integral in proptest::bool::ANY,
    ) {
        // Integer vertices put edges and crossings exactly on voxel centres.
        let polys: Vec<Vec<[f64; 2]>> = polys
            .into_iter()
            .map(|p| p.into_iter().map(|(x, y)| if integral { [x.round(), y.round()] } else { [x, y] }).collect())
            .collect();
        let (nx, ny) = (16, 13);
        let mut plane = vec![0u8; nx * ny];
        super::rtstruct::fill_polygons(&polys, nx, ny, &mut plane);
        proptest::prop_assert_eq!(plane, brute_force(&polys, nx, ny));
    }
}

#[test]
fn a_written_seg_reads_back_onto_its_series_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.55", &[7.5, 0.0, 5.0, 2.5], 8, 6).unwrap();
    let series = read_series(&ct, None).unwrap();
    assert_eq!(series.source.instance_uids.len(), 4);
    let g = series.volume.geometry.clone();
    let mut labels = vec![0u8; g.len()];
    for (i, j, k, l) in [
        (1, 1, 1, 1),
        (2, 1, 1, 1),
        (7, 5, 2, 1),
        (0, 0, 3, 2),
        (4, 3, 1, 2),
    ] {
        labels[g.index(i, j, k)] = l;
    }
    let mask = crate::Mask::new(g.clone(), labels.clone()).unwrap();
    let out = dir.path().join("seg.dcm");
    let specs = [SegmentSpec::new(1, "GTV"), SegmentSpec::new(2, "Lung")];
    super::seg_write::write_seg(&out, &series, &mask, &specs).unwrap();
    let segments = list_segments(&out).unwrap();
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.label.as_str(), s.frames))
            .collect::<Vec<_>>(),
        vec![("GTV", 2), ("Lung", 2)],
        "frames only where a label occurs"
    );
    for spec in &specs {
        let back = read_seg_mask(&out, Some(&g), &spec.name).unwrap();
        assert_eq!(back.geometry, g);
        let want: Vec<u8> = labels.iter().map(|&l| u8::from(l == spec.label)).collect();
        assert_eq!(back.data, want, "{}", spec.name);
        // Read on its own grid, it is the same planes.
        let own = read_seg_mask(&out, None, &spec.name).unwrap();
        assert_eq!(own.geometry.shape[..2], g.shape[..2]);
    }
    // The SEG sits in the series' folder without becoming part of the image series.
    std::fs::copy(&out, ct.join("seg.dcm")).unwrap();
    assert_eq!(
        read_series(&ct, None).unwrap().volume.data,
        series.volume.data
    );
    // A mask on another grid is refused.
    let other = crate::Mask::new(
        crate::Geometry::axis_aligned([8, 6, 4], [1.0; 3]),
        vec![0; 192],
    )
    .unwrap();
    assert!(
        super::seg_write::write_seg(&dir.path().join("x.dcm"), &series, &other, &specs).is_err()
    );
    assert!(!dir.path().join("x.dcm").exists());
}

proptest::proptest! {
    #[test]
    fn pixel_boundaries_rasterise_back_to_their_pixels(
        cells in proptest::collection::vec(0u8..3, 9 * 7),
    ) {
        let (nx, ny) = (9, 7);
        for label in [1u8, 2] {
            let loops = super::rtstruct_write::boundaries(&cells, nx, ny, label);
            let polys: Vec<Vec<[f64; 2]>> = loops
                .iter()
                .map(|l| l.iter().map(|&(i, j)| [i as f64 - 0.5, j as f64 - 0.5]).collect())
                .collect();
            let mut plane = vec![0u8; nx * ny];
            super::rtstruct::fill_polygons(&polys, nx, ny, &mut plane);
            let want: Vec<u8> = cells.iter().map(|&c| u8::from(c == label)).collect();
            proptest::prop_assert_eq!(plane, want);
        }
    }
}

#[test]
fn a_written_rtstruct_reads_back_onto_its_series_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct");
    write_series(&ct, "1.2.840.56", &[0.0, 2.5, 5.0], 10, 8).unwrap();
    let series = read_series(&ct, None).unwrap();
    let g = series.volume.geometry.clone();
    let mut labels = vec![0u8; g.len()];
    // A ring with a hole on slice 1, a diagonal pair on slice 2, a second label.
    for j in 2..7 {
        for i in 2..8 {
            labels[g.index(i, j, 1)] = 1;
        }
    }
    labels[g.index(4, 4, 1)] = 0;
    labels[g.index(0, 0, 2)] = 1;
    labels[g.index(1, 1, 2)] = 1;
    labels[g.index(9, 7, 0)] = 2;
    let mask = crate::Mask::new(g.clone(), labels.clone()).unwrap();
    let out = dir.path().join("rs.dcm");
    let rois = [SegmentSpec::new(1, "GTV"), SegmentSpec::new(2, "Node")];
    super::rtstruct_write::write_rtstruct(&out, &series, &mask, &rois).unwrap();
    let listed = list_rois(&out).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.name.as_str(), r.contours))
            .collect::<Vec<_>>(),
        vec![("GTV", 4), ("Node", 1)],
        "outer ring, hole, and the two diagonal pixels; one pixel"
    );
    for roi in &rois {
        let back = read_rtstruct_mask(&out, &series, &roi.name).unwrap();
        assert_eq!(back.outside, 0);
        let want: Vec<u8> = labels.iter().map(|&l| u8::from(l == roi.label)).collect();
        assert_eq!(back.mask.data, want, "{}", roi.name);
    }
}

#[test]
fn segment_colours_are_cielab_scaled_as_dicom_wants() {
    let lab = super::derived::dicom_lab;
    // White: L* 100, a* = b* = 0 (0 sits at 128/255 of the range; the 4-digit sRGB matrix
    // leaves a few units).
    let white = lab([255, 255, 255]);
    assert_eq!(white[0], 65535);
    assert!(
        white[1].abs_diff(32896) < 8 && white[2].abs_diff(32896) < 8,
        "{white:?}"
    );
    // sRGB red: L* 53.24, a* 80.09, b* 67.20 (the textbook values), within a unit or two.
    let red = lab([255, 0, 0]);
    let want = [34891.0, 53480.0, 50167.0];
    for (got, want) in red.iter().zip(want) {
        assert!((f64::from(*got) - want).abs() < 40.0, "{red:?}");
    }
}

#[test]
fn content_dates_and_times_follow_the_civil_calendar() {
    // Reference values from Python's datetime (UTC).
    for (secs, date, time) in [
        (0, "19700101", "000000"),
        (951_782_400, "20000229", "000000"),
        (1_796_518_923, "20261206", "010203"),
        (4_102_444_799, "20991231", "235959"),
    ] {
        assert_eq!(
            super::derived::date_time(secs),
            (date.to_owned(), time.to_owned())
        );
    }
}

#[test]
fn label_files_give_names_and_codes_and_refuse_what_is_not_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.json");
    std::fs::write(
        &path,
        r#"{"1": {"name": "GTV"}, "2": {"type": {"value": "59441001", "scheme": "SCT", "meaning": "Lymph node"}}}"#,
    )
    .unwrap();
    let entries = read_label_file(&path).unwrap();
    let gtv = SegmentSpec::new(1, "tumour").with_entry(&entries[&1]);
    assert_eq!(gtv.name, "GTV");
    assert_eq!(gtv.kind, Code::neoplasm());
    let node = SegmentSpec::new(2, "node").with_entry(&entries[&2]);
    assert_eq!(
        (node.name.as_str(), node.kind.meaning.as_str()),
        ("node", "Lymph node")
    );
    assert_eq!(node.category, Code::morphologically_abnormal_structure());
    for bad in [
        r#"{"0": {"name": "background"}}"#,
        r#"{"x": {"name": "GTV"}}"#,
        r#"{"1": {"colour": "red"}}"#,
        r#"{"1": {"type": {"value": "", "scheme": "SCT", "meaning": "Neoplasm"}}}"#,
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = read_label_file(&path).unwrap_err().to_string();
        assert!(err.contains("labels.json"), "{bad}: {err}");
    }
}
