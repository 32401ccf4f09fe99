//! A run's data, loaded and prepared: the batch streams of both modalities, the validation
//! cases and the teacher modality's intensity window.

use std::sync::Arc;

use cmedl_io::dataset::{CaseEntry, Dataset, ModalityEntry};
use tch::Device;

use crate::config::{ModalityPair, TrainConfig};
use crate::data::{
    open_dataset, prepare_cases, Field, Normalization, PreparedCase, Preprocessor, SliceSet,
    Streams,
};
use crate::TrainError;

/// Data, resolved device and counts of a configured run, ready to train (or to describe).
pub struct PreparedData {
    /// The device.
    pub device: Device,
    /// Batch streams (shared with the prefetching thread).
    pub streams: Arc<Streams>,
    /// Validation cases of the student modality.
    pub val: Vec<PreparedCase>,
    /// Labelled validation cases of the teacher modality (modes with a teacher), to watch the
    /// teacher on real images.
    pub teacher_val: Vec<PreparedCase>,
    /// The student and teacher modality names.
    pub modalities: ModalityPair,
    /// Training cases of the student modality.
    pub student_cases: usize,
    /// Training cases of the teacher modality (0 without a translator).
    pub teacher_cases: usize,
    /// Mean intensity window of the teacher modality's training images (to scale translations).
    pub teacher_window: Option<cmedl_io::Window>,
}

fn preprocessor(config: &TrainConfig, modality: &ModalityEntry) -> Preprocessor {
    Preprocessor {
        size: config.data.size,
        spacing: config.data.spacing,
        normalization: Normalization::for_modality(modality.kind, &config.data),
        field: Field::BodyCrop,
    }
}

fn no_training_cases(ds: &Dataset, name: &str) -> TrainError {
    TrainError::Data(format!(
        "{}: modality '{name}' has no training cases",
        ds.root.join("dataset.json").display()
    ))
}

/// The student modality's training and validation cases of a config: `data.max_cases` of the
/// training cases, and the dataset's validation split — or, with `data.fold`, the training
/// cases of the other folds and the held-out fold.
pub fn student_split(
    config: &TrainConfig,
    ds: &Dataset,
) -> Result<(Vec<CaseEntry>, Vec<CaseEntry>), TrainError> {
    let modalities = config.teacher.modalities();
    let s_mod = ds.modality(modalities.student)?;
    let mut s_train: Vec<CaseEntry> = s_mod.train.clone();
    if config.data.max_cases > 0 {
        s_train.truncate(config.data.max_cases);
    }
    // Cross-validation: the held-out fold of the training cases is the validation set.
    let mut s_val: Vec<CaseEntry> = s_mod.val.clone();
    if let Some(fold) = config.data.fold {
        let (mut held, mut kept) = (Vec::new(), Vec::new());
        for (n, case) in s_train.into_iter().enumerate() {
            if n % fold.count == fold.index {
                held.push(case);
            } else {
                kept.push(case);
            }
        }
        if held.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: fold {} of {} holds none of the {} training cases of '{}'",
                ds.root.join("dataset.json").display(),
                fold.index,
                fold.count,
                kept.len(),
                modalities.student
            )));
        }
        s_val = held;
        s_train = kept;
    }
    Ok((s_train, s_val))
}

/// Loads and prepares the data of a config.
pub fn prepare_data(config: &TrainConfig) -> Result<PreparedData, TrainError> {
    config.validate()?;
    let device = config.device.resolve()?;
    let ds = open_dataset(&config.data)?;
    let modalities = config.teacher.modalities();
    let s_mod = ds.modality(modalities.student)?;
    let (s_train, s_val) = student_split(config, &ds)?;
    if s_train.is_empty() {
        return Err(no_training_cases(&ds, modalities.student));
    }
    let (labels, classes) = (config.data.labels, config.data.classes);
    let pre = preprocessor(config, s_mod);
    let s_cases = prepare_cases(&ds, &s_train, &pre, labels, classes)?;
    if s_cases.iter().any(|c| c.labels.is_none()) {
        return Err(TrainError::Data(format!(
            "every '{}' training case needs a {} map",
            modalities.student,
            labels.name()
        )));
    }
    let val = prepare_cases(&ds, &s_val, &pre, labels, classes)?;
    let student = SliceSet::from_cases(
        &s_cases,
        config.data.size,
        config.data.empty_share,
        config.seed,
    );
    let teacher = if config.mode.uses_translator() {
        Some(prepare_teacher(config, &ds, modalities.teacher)?)
    } else {
        None
    };
    let teacher_val = if config.mode.uses_teacher() {
        let t_mod = ds.modality(modalities.teacher)?;
        let pre = preprocessor(config, t_mod);
        let cases = prepare_cases(&ds, &t_mod.val, &pre, labels, classes)?;
        cases.into_iter().filter(|c| c.labels.is_some()).collect()
    } else {
        Vec::new()
    };
    let mut steps_per_epoch = student.len().div_ceil(config.train.batch).max(1);
    if config.train.max_steps_per_epoch > 0 {
        steps_per_epoch = steps_per_epoch.min(config.train.max_steps_per_epoch);
    }
    let teacher_cases = teacher.as_ref().map_or(0, |t| t.cases);
    let teacher_window = teacher.as_ref().map(|t| t.window);
    let teacher_slices = teacher.map_or_else(
        || SliceSet {
            size: config.data.size,
            ..Default::default()
        },
        |t| t.slices,
    );
    Ok(PreparedData {
        device,
        streams: Arc::new(Streams {
            student,
            teacher: teacher_slices,
            batch: config.train.batch,
            steps_per_epoch,
            seed: config.seed,
            augment: config.data.augment.clone(),
            shard: (0, 1),
        }),
        val,
        teacher_val,
        modalities,
        student_cases: s_cases.len(),
        teacher_cases,
        teacher_window,
    })
}

/// The teacher modality's training slices, case count and mean intensity window.
struct TeacherData {
    slices: SliceSet,
    cases: usize,
    window: cmedl_io::Window,
}

fn prepare_teacher(
    config: &TrainConfig,
    ds: &Dataset,
    name: &str,
) -> Result<TeacherData, TrainError> {
    let t_mod = ds.modality(name)?;
    let pre = preprocessor(config, t_mod);
    let t_cases = prepare_cases(
        ds,
        &t_mod.train,
        &pre,
        config.data.labels,
        config.data.classes,
    )?;
    if t_cases.is_empty() {
        return Err(no_training_cases(ds, name));
    }
    let use_labels = config.loss.teacher_on_real && t_cases.iter().all(|c| c.labels.is_some());
    let t_cases: Vec<PreparedCase> = if use_labels {
        t_cases
    } else {
        t_cases
            .into_iter()
            .map(|c| PreparedCase { labels: None, ..c })
            .collect()
    };
    let n = t_cases.len() as f64;
    let mean =
        |f: fn(&PreparedCase) -> f32| t_cases.iter().map(|c| f64::from(f(c))).sum::<f64>() / n;
    let window = cmedl_io::Window {
        lo: mean(|c| c.image.window.lo) as f32,
        hi: mean(|c| c.image.window.hi) as f32,
    };
    let empty_share = if use_labels {
        config.data.teacher_empty_share
    } else {
        0.0
    };
    let slices = SliceSet::from_cases(&t_cases, config.data.size, empty_share, config.seed ^ 1);
    Ok(TeacherData {
        slices,
        cases: t_cases.len(),
        window,
    })
}
