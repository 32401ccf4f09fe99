//! Lesion-wise scoring of a case: every reference lesion (a 26-connected component) with its
//! Dice, detection and, where the dataset records tumour positions (the phantom does), its
//! location class; false-positive components per case.

use std::path::Path;

use cmedl_io::dataset::{CaseEntry, Dataset};
use cmedl_io::Mask;
use cmedl_metrics::lesion::{connected_components, lesion_metrics, Lesion, LesionOptions};
use serde::{Deserialize, Serialize};

use crate::ExperimentError;

/// One reference lesion of a case, scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionRow {
    /// Case name.
    pub case: String,
    /// Label value.
    pub label: u8,
    /// 1-based lesion number within the case and label (scan order of its first voxel).
    pub lesion: usize,
    /// Location class of the lesion, where the dataset records tumour positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The lesion's metrics.
    #[serde(flatten)]
    pub metrics: Lesion,
}

/// Lesion counts of one case and label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseLesions {
    /// Case name.
    pub case: String,
    /// Label value.
    pub label: u8,
    /// Reference lesions.
    pub lesions: usize,
    /// Of which detected.
    pub detected: usize,
    /// Predicted components.
    pub predicted_components: usize,
    /// Predicted components touching no reference lesion.
    pub false_positives: usize,
}

/// A tumour position the dataset records for a case: location class and world centre (mm).
pub type TumourPosition = (String, [f64; 3]);

/// The tumour positions in a case's metadata file (the phantom's `tumours` records); none when
/// the case has no metadata or it records none.
pub fn tumour_positions(ds: &Dataset, case: &CaseEntry) -> Vec<TumourPosition> {
    let Some(meta) = &case.meta else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(ds.path(meta)) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let Some(tumours) = value["tumours"].as_array() else {
        return Vec::new();
    };
    tumours
        .iter()
        .filter_map(|t| {
            let kind = t["kind"].as_str()?.to_owned();
            let c = t["centre_mm"].as_array()?;
            let xyz: Vec<f64> = c.iter().filter_map(serde_json::Value::as_f64).collect();
            (xyz.len() == 3).then(|| (kind, [xyz[0], xyz[1], xyz[2]]))
        })
        .collect()
}

/// The location class of the recorded tumour nearest to `world` (none without records).
fn nearest_location(positions: &[TumourPosition], world: [f64; 3]) -> Option<String> {
    let d2 = |c: &[f64; 3]| (0..3).map(|a| (c[a] - world[a]).powi(2)).sum::<f64>();
    positions
        .iter()
        .min_by(|a, b| d2(&a.1).total_cmp(&d2(&b.1)))
        .map(|p| p.0.clone())
}

/// Lesion rows and per-case counts of `pred` against `reference` (same grid) for each label.
pub fn score_lesions(
    pred: &Mask,
    reference: &Mask,
    case: &str,
    labels: &[u8],
    positions: &[TumourPosition],
    options: &LesionOptions,
) -> Result<(Vec<LesionRow>, Vec<CaseLesions>), ExperimentError> {
    let g = &reference.geometry;
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    for &label in labels {
        let p: Vec<bool> = pred.data.iter().map(|&v| v == label).collect();
        let r: Vec<bool> = reference.data.iter().map(|&v| v == label).collect();
        let e = lesion_metrics(&p, &r, g.shape, g.spacing, options)
            .map_err(|e| ExperimentError::Input(format!("{case}: {e}")))?;
        counts.push(CaseLesions {
            case: case.to_owned(),
            label,
            lesions: e.lesions.len(),
            detected: e.lesions.iter().filter(|l| l.detected).count(),
            predicted_components: e.predicted_components,
            false_positives: e.false_positives,
        });
        rows.extend(e.lesions.into_iter().enumerate().map(|(i, l)| LesionRow {
            case: case.to_owned(),
            label,
            lesion: i + 1,
            location: nearest_location(positions, g.world(l.centroid)),
            metrics: l,
        }));
    }
    Ok((rows, counts))
}

/// Reference lesions (26-connected components of label ≥ 1) in a label map file.
pub fn count_lesions(path: &Path) -> Result<usize, ExperimentError> {
    let m = cmedl_io::formats::read_label_image(path, &cmedl_io::nifti::ReadOptions::default())?;
    let fg: Vec<bool> = m.data.iter().map(|&v| v > 0).collect();
    Ok(connected_components(&fg, m.geometry.shape).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmedl_io::Geometry;

    #[test]
    fn lesions_take_the_location_of_the_nearest_recorded_tumour() {
        // Two lesions on a 6×1×1 row with 10 mm voxels; tumour records near each.
        let g = Geometry::axis_aligned([6, 1, 1], [10.0, 10.0, 10.0]);
        let reference = Mask {
            geometry: g.clone(),
            data: vec![1, 1, 0, 0, 0, 1],
        };
        let pred = Mask {
            geometry: g.clone(),
            data: vec![0, 1, 0, 0, 0, 0],
        };
        let left = g.world([0.5, 0.0, 0.0]);
        let right = g.world([5.0, 0.0, 0.0]);
        let positions = vec![
            ("chest-wall".to_owned(), right),
            ("mediastinal".to_owned(), left),
        ];
        let (rows, counts) = score_lesions(
            &pred,
            &reference,
            "c1",
            &[1],
            &positions,
            &LesionOptions::default(),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].location.as_deref(), Some("mediastinal"));
        assert_eq!(rows[1].location.as_deref(), Some("chest-wall"));
        assert!(rows[0].metrics.detected && !rows[1].metrics.detected);
        assert_eq!(
            counts,
            vec![CaseLesions {
                case: "c1".into(),
                label: 1,
                lesions: 2,
                detected: 1,
                predicted_components: 1,
                false_positives: 0,
            }]
        );
        let json = serde_json::to_string(&rows[0]).unwrap();
        let back: LesionRow = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rows[0]);
    }
}
