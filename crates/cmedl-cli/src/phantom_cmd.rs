//! `cmedl phantom`: generate the synthetic cohort.

use std::path::Path;
use std::time::Instant;

use cmedl_io::{nifti, Window};
use cmedl_phantom::{generate_case, plan, preview, stats, write_cohort, CohortConfig, Contrast};

use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;

/// Writes the cohort, then optionally prints contrast statistics and writes a preview montage.
pub fn run(
    config: &CohortConfig,
    out: &Path,
    show_stats: bool,
    write_preview: bool,
    quiet: bool,
) -> CmdResult {
    if out.join("dataset.json").exists() {
        return Err(Failure::Input(format!(
            "{}: already holds a dataset (dataset.json); choose another --out or delete it",
            out.display()
        )));
    }
    let start = Instant::now();
    let total = plan(config).len() as u64;
    let bar = Progress::new("phantom", total, quiet);
    let summary = write_cohort(config, out, &|done, _| bar.set(done as u64))?;
    bar.finish();
    let tumours: usize = summary.metas.iter().map(|m| m.tumours.len()).sum();
    eprintln!(
        "wrote {} cases ({} tumours) to {} in {:.1} s",
        summary.metas.len(),
        tumours,
        out.display(),
        start.elapsed().as_secs_f64()
    );
    if show_stats {
        crate::outln!(
            "{:<8} {:<12} {:>8} {:>10}",
            "image",
            "location",
            "tumours",
            "mean CNR"
        );
        for (contrast, kind, n, cnr) in stats::summarize(&summary.cnr) {
            crate::outln!(
                "{:<8} {:<12} {:>8} {:>10.2}",
                contrast.name(),
                kind.name(),
                n,
                cnr
            );
        }
    }
    if write_preview {
        let plans = plan(config);
        let ct = plans.iter().find(|p| p.id.starts_with("ct_train"));
        let mr = plans.iter().find(|p| p.id.starts_with("mr_train"));
        let mut cases = Vec::new();
        for p in [ct, mr].into_iter().flatten() {
            cases.push(generate_case(config, &p.id, p.seed, &p.contrasts));
        }
        let rows: Vec<_> = cases
            .iter()
            .map(|c| {
                let (contrast, image) = &c.images[0];
                let window = if *contrast == Contrast::Ct {
                    Window {
                        lo: -1000.0,
                        hi: 400.0,
                    }
                } else {
                    Window::from_percentiles(&image.data, 0.5, 99.5)
                };
                (image, window, &c.tumour, &c.organs)
            })
            .collect();
        let path = out.join("preview.png");
        preview::write_montage(&path, &rows, 3)?;
        eprintln!("preview: {}", path.display());
    }
    // A read-back check of the first case keeps a broken writer from going unnoticed.
    if let Some(first) = summary
        .index
        .modalities
        .get("ct")
        .and_then(|m| m.train.first())
    {
        nifti::read_header(&out.join(&first.image))?;
    }
    Ok(())
}
