//! The figures of an experiment: training curves of each run and a contour montage of each run
//! on the same test slice.

use cmedl_io::dataset::{Dataset, Modality};
use cmedl_io::formats::{read_image, read_label_image};
use cmedl_io::nifti::{read_mask, ReadOptions};
use cmedl_io::{Mask, Volume, Window};
use serde::{Deserialize, Serialize};

use super::render::{montage, training_curves, Panel};
use crate::{ExperimentDir, ExperimentError, RunPlan};

/// `figures/montage.json`: the test case and slice every montage shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MontageSlice {
    /// Case id.
    pub case: String,
    /// 0-based axial slice.
    pub slice: usize,
}

/// The test slice shown: the first test case's slice with the most reference foreground.
struct Shown {
    case: String,
    image: Volume,
    reference: Mask,
    slice: usize,
    window: Window,
}

fn shown_slice(ds: &Dataset, student: &str) -> Result<Option<Shown>, ExperimentError> {
    let modality = ds.modality(student)?;
    let Some(case) = modality.test.first() else {
        return Ok(None);
    };
    let Some(label) = &case.label else {
        return Ok(None);
    };
    let image = read_image(&ds.path(&case.image), &ReadOptions::default())?;
    let reference = read_label_image(&ds.path(label), &ReadOptions::default())?;
    let [nx, ny, nz] = image.geometry.shape;
    let n = nx * ny;
    let slice = (0..nz)
        .max_by_key(|&k| {
            reference.data[k * n..(k + 1) * n]
                .iter()
                .filter(|&&v| v > 0)
                .count()
        })
        .unwrap_or(nz / 2);
    let window = match modality.kind {
        Modality::Ct => Window {
            lo: -1000.0,
            hi: 400.0,
        },
        Modality::Mr => Window::from_percentiles(&image.data, 0.5, 99.5),
    };
    Ok(Some(Shown {
        case: case.id.clone(),
        image,
        reference,
        slice,
        window,
    }))
}

/// The teacher's validation Dice on translations per epoch (NaN where not logged).
pub fn teacher_curve(run: &cmedl_trainer::RunDir) -> Vec<f64> {
    run.epochs()
        .iter()
        .map(|e| e.teacher_dice_pmri.unwrap_or(f64::NAN))
        .collect()
}

/// Draws `figures/curves-<run>.png` and `figures/montage-<run>.png` for every run.
pub fn make_figures(
    ds: &Dataset,
    runs: &[RunPlan],
    dir: &ExperimentDir,
) -> Result<(), ExperimentError> {
    let figs = dir.figures();
    crate::create_dir(&figs)?;
    let Some(first) = runs.first() else {
        return Ok(());
    };
    let Some(shown) = shown_slice(ds, first.config.teacher.modalities().student)? else {
        return Ok(());
    };
    for r in runs {
        run_montage(dir, r, &shown)?;
        let run = dir.run(&r.name);
        let (loss, dice) = run.epoch_curves();
        let teacher = teacher_curve(&run);
        training_curves(
            &figs.join(format!("curves-{}.png", r.name)),
            &loss,
            &dice,
            &teacher,
        )?;
    }
    crate::write_json(
        &figs.join("montage.json"),
        &MontageSlice {
            case: shown.case.clone(),
            slice: shown.slice,
        },
    )
}

/// The montage of one run: the image with reference and predicted contours, and for runs with
/// a translator its translation with the same contours.
fn run_montage(dir: &ExperimentDir, r: &RunPlan, shown: &Shown) -> Result<(), ExperimentError> {
    let [nx, ny, _] = shown.image.geometry.shape;
    let n = nx * ny;
    let k = shown.slice;
    let pred = read_mask(
        &dir.predictions(&r.name)
            .join(format!("{}.nii.gz", shown.case)),
        &ReadOptions::default(),
    )?;
    let contours = || {
        vec![
            (&shown.reference.data[k * n..(k + 1) * n], [0, 220, 0]),
            (&pred.data[k * n..(k + 1) * n], [255, 40, 40]),
        ]
    };
    let mut panels = vec![Panel {
        slice: &shown.image.data[k * n..(k + 1) * n],
        window: shown.window,
        contours: contours(),
    }];
    let translated;
    if r.mode.uses_translator() {
        let predictor = crate::runner::load_best(dir, r)?;
        if let Some(w) = predictor.teacher_window {
            translated = predictor.translate(&shown.image, 16, w)?;
            panels.push(Panel {
                slice: &translated.data[k * n..(k + 1) * n],
                window: Window::from_percentiles(&translated.data, 0.5, 99.5),
                contours: contours(),
            });
        }
    }
    montage(
        &dir.figures().join(format!("montage-{}.png", r.name)),
        &panels,
        nx,
        ny,
        3,
    )
}
