//! Determinism, labels that agree with the images, and the measured contrasts.

use super::*;
use crate::stats::{summarize, tumour_cnr};

fn small() -> CohortConfig {
    CohortConfig {
        ct: 3,
        mr: 2,
        val: 1,
        test: 1,
        size: 64,
        slices: 12,
        spacing: [5.0, 5.0, 8.0],
        seed: 7,
        ..Default::default()
    }
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_gives_identical_files_and_a_valid_dataset() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = small();
    let summary = write_cohort(&cfg, a.path(), &|_, _| {}).unwrap();
    let (index, metas) = (summary.index, summary.metas);
    write_cohort(&cfg, b.path(), &|_, _| {}).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs", x.0);
    }
    let ds = cmedl_io::dataset::Dataset::open(a.path()).unwrap();
    assert_eq!(ds.index, index);
    let ct = ds.modality("ct").unwrap();
    assert_eq!((ct.train.len(), ct.val.len(), ct.test.len()), (3, 1, 1));
    let mr = ds.modality("mr").unwrap();
    assert_eq!((mr.train.len(), mr.val.len(), mr.test.len()), (2, 1, 1));
    assert_eq!(metas.len(), 9);
    for case in ct.train.iter().chain(&ct.test) {
        let img = cmedl_io::nifti::read_volume(&ds.path(&case.image), &Default::default()).unwrap();
        assert_eq!(img.header.datatype, cmedl_io::nifti::DataType::I16);
        let lab =
            cmedl_io::nifti::read_mask(&ds.path(case.label.as_ref().unwrap()), &Default::default())
                .unwrap();
        assert_eq!(lab.geometry, img.volume.geometry);
    }
}

#[test]
fn seeds_give_different_patients_and_ct_never_shares_mr_seeds() {
    let cfg = small();
    let plans = plan(&cfg);
    let ct: Vec<u64> = plans
        .iter()
        .filter(|p| p.id.starts_with("ct"))
        .map(|p| p.seed)
        .collect();
    let mr: Vec<u64> = plans
        .iter()
        .filter(|p| p.id.starts_with("mr"))
        .map(|p| p.seed)
        .collect();
    assert!(ct.iter().all(|s| !mr.contains(s)));
    let a = generate_case(&cfg, "a", ct[0], &[Contrast::Ct]);
    let b = generate_case(&cfg, "b", ct[1], &[Contrast::Ct]);
    assert_ne!(a.organs.data, b.organs.data);
}

#[test]
fn labels_agree_with_the_images_and_tumours_stay_in_the_body() {
    let cfg = CohortConfig {
        size: 96,
        slices: 16,
        spacing: [3.3, 3.3, 6.0],
        ..Default::default()
    };
    for seed in 0..6u64 {
        let case = generate_case(&cfg, "x", 100 + seed, &[Contrast::Ct, Contrast::T2]);
        for t in &case.meta.tumours {
            assert!(t.voxels > 0, "{:?} tumour is empty", t.kind);
        }
        let [nx, ny, nz] = case.tumour.geometry.shape;
        let (ct, t2) = (&case.images[0].1, &case.images[1].1);
        let mean = |img: &cmedl_io::Volume, tissue: Tissue| {
            let v: Vec<f64> = case
                .tissue
                .iter()
                .zip(&img.data)
                .filter(|(t, _)| **t == tissue)
                .map(|(_, v)| f64::from(*v))
                .collect();
            (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
        };
        let (lung, n) = mean(ct, Tissue::Lung);
        assert!(n > 0 && lung < -600.0, "lung {lung}");
        let (heart, _) = mean(ct, Tissue::Heart);
        assert!((0.0..80.0).contains(&heart), "heart {heart}");
        let (fat, _) = mean(ct, Tissue::Fat);
        assert!(fat < -30.0, "fat {fat}");
        assert!(mean(t2, Tissue::Fat).0 > 2.0 * mean(t2, Tissue::Muscle).0);
        assert!(mean(t2, Tissue::Lung).0 < mean(t2, Tissue::Muscle).0);
        if case.meta.tumours.iter().any(|t| t.voxels > 20) {
            assert!(mean(t2, Tissue::Tumour).0 > 2.0 * mean(t2, Tissue::Heart).0);
        }
        // No tumour voxel touches the outside air: tumours never leave the body.
        for k in 0..nz {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    if case.tumour.data[i + nx * (j + ny * k)] > 0 {
                        for (di, dj) in [(1, 0), (0, 1), (2, 1), (1, 2)] {
                            assert_ne!(
                                case.tissue[i + di - 1 + nx * (j + dj - 1 + ny * k)],
                                Tissue::Air
                            );
                        }
                    }
                }
            }
        }
        // The organ map marks every tumour voxel as tumour.
        assert!(case
            .tumour
            .data
            .iter()
            .zip(&case.organs.data)
            .all(|(t, o)| (*t == 1) == (*o == 6)));
    }
}

#[test]
fn mediastinal_tumours_hide_on_ct_and_show_on_t2() {
    let cfg = CohortConfig {
        locations: LocationShares {
            parenchymal: 0.5,
            mediastinal: 0.5,
            chest_wall: 0.0,
        },
        ..Default::default()
    };
    let mut all = Vec::new();
    for i in 0..14u64 {
        let case = generate_case(
            &cfg,
            &format!("c{i}"),
            cohort::patient_seed(42, 1, i),
            &[Contrast::Ct, Contrast::T2],
        );
        all.extend(tumour_cnr(&case));
    }
    let table = summarize(&all);
    let get = |c: Contrast, k: TumourKind| {
        table
            .iter()
            .find(|r| r.0 == c && r.1 == k)
            .map(|r| (r.2, r.3))
            .unwrap()
    };
    let (n_med, ct_med) = get(Contrast::Ct, TumourKind::Mediastinal);
    let (_, t2_med) = get(Contrast::T2, TumourKind::Mediastinal);
    let (n_par, ct_par) = get(Contrast::Ct, TumourKind::Parenchymal);
    assert!(n_med >= 3 && n_par >= 3, "{table:?}");
    assert!(ct_med < 1.0, "CT CNR of mediastinal tumours {ct_med}");
    assert!(t2_med > 3.0, "T2 CNR of mediastinal tumours {t2_med}");
    assert!(ct_par > 10.0, "CT CNR of parenchymal tumours {ct_par}");
}

#[test]
fn the_ct_tumour_contrast_knob_sets_the_mediastinal_cnr() {
    let cnr = |offset: f64, noise: f64| {
        let cfg = CohortConfig {
            locations: LocationShares {
                parenchymal: 0.0,
                mediastinal: 1.0,
                chest_wall: 0.0,
            },
            size: 96,
            slices: 24,
            spacing: [3.5, 3.5, 7.0],
            ct_imaging: CtSettings {
                tumour_offset_hu: offset,
                noise_hu: [noise, noise],
            },
            ..Default::default()
        };
        let mut all = Vec::new();
        for i in 0..6u64 {
            let seed = cohort::patient_seed(42, 1, i);
            all.extend(tumour_cnr(&generate_case(&cfg, "c", seed, &[Contrast::Ct])));
        }
        let table = summarize(&all);
        let row = table
            .iter()
            .find(|r| r.1 == TumourKind::Mediastinal)
            .unwrap();
        assert!(row.2 >= 3, "{table:?}");
        row.3
    };
    let (plain, visible, loud) = (cnr(0.0, 20.0), cnr(40.0, 20.0), cnr(40.0, 10.0));
    assert!(plain < 1.0, "default contrast stays hidden: {plain}");
    assert!(visible > plain + 0.5, "+40 HU shows: {plain} → {visible}");
    assert!(loud > visible, "less noise, more CNR: {visible} → {loud}");
}

#[test]
fn necrotic_cores_are_tumour_inside_and_change_nothing_else() {
    let base = CohortConfig {
        size: 96,
        slices: 16,
        spacing: [3.3, 3.3, 6.0],
        ..Default::default()
    };
    let necrotic = CohortConfig {
        tumour_necrosis: 1.0,
        ..base.clone()
    };
    let mut cores = 0;
    for seed in 0..4u64 {
        let contrasts = [Contrast::Ct, Contrast::T2];
        let plain = generate_case(&base, "x", 200 + seed, &contrasts);
        let case = generate_case(&necrotic, "x", 200 + seed, &contrasts);
        // The same patient, the same tumour label, the same tissue outside the tumours.
        assert_eq!(plain.tumour.data, case.tumour.data);
        assert_eq!(plain.organs.data, case.organs.data);
        for (a, b) in plain.tissue.iter().zip(&case.tissue) {
            if *a != Tissue::Tumour {
                assert_eq!(a, b);
            }
        }
        let n = case
            .tissue
            .iter()
            .filter(|t| **t == Tissue::Necrosis)
            .count();
        cores += n;
        if n > 10 {
            // The same voxels with and without the core (same noise draws): darker on CT,
            // brighter on T2.
            let mean = |img: &cmedl_io::Volume| {
                let v: Vec<f64> = case
                    .tissue
                    .iter()
                    .zip(&img.data)
                    .filter(|(t, _)| **t == Tissue::Necrosis)
                    .map(|(_, v)| f64::from(*v))
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            };
            assert!(mean(&case.images[0].1) < mean(&plain.images[0].1) - 10.0);
            assert!(mean(&case.images[1].1) > mean(&plain.images[1].1));
        }
    }
    assert!(cores > 0, "every tumour gets a core at share 1");
}

#[test]
fn body_scale_grows_the_whole_patient() {
    let base = CohortConfig {
        size: 96,
        slices: 8,
        spacing: [4.0, 4.0, 8.0],
        ..Default::default()
    };
    let bigger = CohortConfig {
        body_scale: [1.2, 1.2],
        ..base.clone()
    };
    let body = |c: &Case| c.tissue.iter().filter(|t| **t != Tissue::Air).count() as f64;
    for seed in 0..3u64 {
        let a = generate_case(&base, "x", 300 + seed, &[Contrast::Ct]);
        let b = generate_case(&bigger, "x", 300 + seed, &[Contrast::Ct]);
        // In-plane area grows by 1.2² = 1.44 (a slab of the same height is imaged).
        let ratio = body(&b) / body(&a);
        assert!((1.3..1.6).contains(&ratio), "body grows by {ratio}");
        for (ta, tb) in a.meta.tumours.iter().zip(&b.meta.tumours) {
            assert!((tb.radius_mm / ta.radius_mm - 1.2).abs() < 1e-12);
            assert!((tb.centre_mm[0] / ta.centre_mm[0] - 1.2).abs() < 1e-9);
        }
    }
}
