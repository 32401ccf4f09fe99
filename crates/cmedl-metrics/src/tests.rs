//! The test vectors of the project's metric conventions, and invariants.

use super::*;
use proptest::prelude::*;

fn mask<const D: usize>(shape: [usize; D], voxels: &[[usize; D]]) -> Vec<bool> {
    let mut m = vec![false; shape.iter().product()];
    for v in voxels {
        let mut index = 0;
        let mut stride = 1;
        for a in 0..D {
            index += v[a] * stride;
            stride *= shape[a];
        }
        m[index] = true;
    }
    m
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn vector_1_two_single_pixels_in_2d() {
    let shape = [128, 128];
    let g = mask(shape, &[[50, 70]]);
    let p = mask(shape, &[[50, 72]]);
    let sd = surface_distances(&p, &g, shape, [2.0, 1.0]).unwrap();
    let len = 0.5 * 5f64.sqrt();
    for side in [&sd.ref_to_pred, &sd.pred_to_ref] {
        assert_eq!(side.len(), 4);
        assert!(side.iter().all(|e| close(e.1, len, 1e-12)));
        let d: Vec<f64> = side.iter().map(|e| e.0).collect();
        assert_eq!(d, vec![1.0, 1.0, 2.0, 2.0]);
    }
    let m = case_metrics(
        &p,
        &g,
        shape,
        [2.0, 1.0],
        &MetricOptions {
            tolerance_mm: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((m.asd_ref_to_pred, m.asd_pred_to_ref), (1.5, 1.5));
    assert_eq!(m.hd, 2.0);
    assert_eq!(m.hd95, 2.0);
    assert!(close(m.surface_dice, 0.5, 1e-12));
    assert_eq!(m.dice, 0.0);
}

#[test]
fn vector_2_rectangles_in_2d() {
    let shape = [6, 6];
    let g = mask(shape, &[[1, 1], [1, 2], [2, 1], [2, 2]]);
    let p = mask(shape, &[[1, 1], [1, 2], [2, 1], [2, 2], [3, 1], [3, 2]]);
    let opts = MetricOptions {
        tolerance_mm: 1.0,
        ..Default::default()
    };
    let m = case_metrics(&p, &g, shape, [2.0, 1.0], &opts).unwrap();
    assert!(close(m.dice, 0.8, 1e-12));
    assert_eq!(m.hd, 2.0);
    assert_eq!(m.hd95, 2.0);
    assert!(
        close(m.asd_ref_to_pred, 0.09549, 5e-6),
        "{}",
        m.asd_ref_to_pred
    );
    assert!(
        close(m.asd_pred_to_ref, 0.44721, 5e-6),
        "{}",
        m.asd_pred_to_ref
    );
    assert!(close(m.surface_dice, 0.87027, 5e-6), "{}", m.surface_dice);
}

#[test]
fn vector_3_two_single_voxels_in_3d() {
    let shape = [128, 128, 128];
    let g = mask(shape, &[[50, 60, 70]]);
    let p = mask(shape, &[[50, 60, 72]]);
    let opts = MetricOptions {
        tolerance_mm: 1.0,
        ..Default::default()
    };
    let m = case_metrics(&p, &g, shape, [3.0, 2.0, 1.0], &opts).unwrap();
    assert!(close(m.asd_ref_to_pred, 1.5, 1e-12));
    assert!(close(m.asd_pred_to_ref, 1.5, 1e-12));
    assert_eq!(m.hd, 2.0);
    assert_eq!(m.hd95, 2.0);
    assert!(close(m.surface_dice, 0.5, 1e-12));
    assert_eq!(m.dice, 0.0);
}

#[test]
fn vector_4_slabs_touching_the_border_in_3d() {
    let shape = [100, 100, 100];
    let slab = |n: usize| -> Vec<bool> {
        (0..shape.iter().product::<usize>())
            .map(|i| i % 100 < n)
            .collect()
    };
    let (g, p) = (slab(50), slab(51));
    let opts = MetricOptions {
        tolerance_mm: 1.0,
        ..Default::default()
    };
    let m = case_metrics(&p, &g, shape, [2.0, 1.0, 1.0], &opts).unwrap();
    assert!(
        close(m.asd_ref_to_pred, 0.322, 5e-4),
        "{}",
        m.asd_ref_to_pred
    );
    assert!(
        close(m.asd_pred_to_ref, 0.339, 5e-4),
        "{}",
        m.asd_pred_to_ref
    );
    assert_eq!(m.hd, 2.0);
    assert_eq!(m.hd95, 2.0);
    assert!(close(m.surface_dice, 0.836, 5e-4), "{}", m.surface_dice);
    assert!(close(m.dice, 0.990, 5e-4), "{}", m.dice);
}

#[test]
fn empty_mask_rules() {
    let shape = [8, 8, 4];
    let empty = vec![false; 256];
    let one = mask(shape, &[[3, 3, 1]]);
    let opts = MetricOptions::default();
    let both = case_metrics(&empty, &empty, shape, [1.0; 3], &opts).unwrap();
    assert!(both.dice.is_nan() && both.surface_dice.is_nan() && both.hd95.is_nan());
    for (p, g) in [(&empty, &one), (&one, &empty)] {
        let m = case_metrics(p, g, shape, [1.0; 3], &opts).unwrap();
        assert_eq!(m.dice, 0.0);
        assert_eq!(m.surface_dice, 0.0);
        assert_eq!(m.hd95, f64::INFINITY);
        assert_eq!(m.hd, f64::INFINITY);
    }
}

#[test]
fn bad_grids_are_errors() {
    let opts = MetricOptions::default();
    let err = case_metrics(&[false; 10], &[false; 12], [3, 4], [1.0, 1.0], &opts).unwrap_err();
    assert!(matches!(
        err,
        MetricsError::ShapeMismatch {
            expected: 12,
            pred: 10,
            ..
        }
    ));
    let err = case_metrics(&[false; 12], &[false; 12], [3, 4], [1.0, -1.0], &opts).unwrap_err();
    assert_eq!(err, MetricsError::BadSpacing(-1.0));
    let err = case_metrics(&[false; 2], &[false; 2], [2], [1.0], &opts).unwrap_err();
    assert_eq!(err, MetricsError::Dimension(1));
}

#[test]
fn labels_are_scored_separately() {
    let shape = [6, 6];
    let mut pred = vec![0u8; 36];
    let mut reference = vec![0u8; 36];
    pred[7] = 1;
    reference[7] = 1;
    reference[20] = 2;
    let out = label_metrics(
        &pred,
        &reference,
        shape,
        [1.0, 1.0],
        &[1, 2],
        &MetricOptions::default(),
    )
    .unwrap();
    assert_eq!(out[0].0, 1);
    assert_eq!(out[0].1.dice, 1.0);
    assert_eq!(out[1].1.dice, 0.0);
    assert_eq!(out[1].1.hd95, f64::INFINITY);
}

fn blob() -> impl Strategy<Value = Vec<bool>> {
    proptest::collection::vec(proptest::bool::weighted(0.3), 7 * 6 * 5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invariants_in_3d(p in blob(), g in blob(), sx in 0.5f64..3.0, sz in 0.5f64..4.0) {
        let shape = [7, 6, 5];
        let spacing = [sx, 1.0, sz];
        let opts = MetricOptions { tolerance_mm: 1.5, ..Default::default() };
        let m = case_metrics(&p, &g, shape, spacing, &opts).unwrap();
        let swapped = case_metrics(&g, &p, shape, spacing, &opts).unwrap();
        if m.ref_voxels > 0 && m.pred_voxels > 0 {
            prop_assert!((0.0..=1.0).contains(&m.dice));
            prop_assert!((0.0..=1.0).contains(&m.surface_dice));
            prop_assert!(m.hd95 <= m.hd);
            prop_assert!((m.dice - swapped.dice).abs() < 1e-12);
            prop_assert!((m.surface_dice - swapped.surface_dice).abs() < 1e-12);
            prop_assert_eq!(m.hd95, swapped.hd95);
            prop_assert_eq!(m.hd, swapped.hd);
            let sd = surface_distances(&p, &g, shape, spacing).unwrap();
            let mut last = 0.0;
            for tol in [0.0, 0.5, 1.0, 2.0, 4.0, 100.0] {
                let s = sd.surface_dice(tol);
                prop_assert!(s >= last);
                last = s;
            }
            prop_assert!((last - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn identical_masks_are_perfect(g in blob(), sx in 0.5f64..3.0) {
        let shape = [7, 6, 5];
        let m = case_metrics(&g, &g, shape, [sx, 1.0, 2.0], &MetricOptions::default()).unwrap();
        if m.ref_voxels > 0 {
            prop_assert_eq!(m.dice, 1.0);
            prop_assert!((m.surface_dice - 1.0).abs() < 1e-12);
            prop_assert_eq!(m.hd95, 0.0);
            prop_assert_eq!(m.hd, 0.0);
        }
    }
}

#[test]
fn case_metrics_keep_nan_and_infinity_through_json() {
    let m = CaseMetrics {
        dice: 0.0,
        surface_dice: f64::NAN,
        hd95: f64::INFINITY,
        hd: f64::NEG_INFINITY,
        asd_ref_to_pred: 1.5,
        asd_pred_to_ref: 2.0,
        ref_voxels: 10,
        pred_voxels: 0,
    };
    let text = serde_json::to_string(&m).unwrap();
    assert_eq!(
        text,
        r#"{"dice":0.0,"surface_dice":"nan","hd95":"inf","hd":"-inf","asd_ref_to_pred":1.5,"asd_pred_to_ref":2.0,"ref_voxels":10,"pred_voxels":0}"#
    );
    let back: CaseMetrics = serde_json::from_str(&text).unwrap();
    assert!(back.surface_dice.is_nan());
    assert_eq!(
        (back.dice, back.hd95, back.hd, back.asd_ref_to_pred),
        (0.0, f64::INFINITY, f64::NEG_INFINITY, 1.5)
    );
    assert!(serde_json::from_str::<CaseMetrics>(&text.replace("\"inf\"", "\"huge\"")).is_err());
}
