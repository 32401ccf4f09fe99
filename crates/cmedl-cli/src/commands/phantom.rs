//! `cmedl phantom`: generate the synthetic cohort.

use std::path::Path;
use std::time::Instant;

use std::path::PathBuf;

use clap::ValueEnum;
use cmedl_io::{nifti, Window};
use cmedl_phantom::{
    generate_case, plan, preview, stats, write_cohort, CohortConfig, Contrast, CtSettings,
    LocationShares, MrContrast,
};

use crate::common::parse_spacing;
use crate::failure::{CmdResult, Failure};
use crate::progress::Progress;
use crate::Global;

/// Options of `cmedl phantom`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created; must not hold a dataset yet).
    #[arg(long)]
    out: PathBuf,
    /// CT training patients.
    #[arg(long, default_value_t = 24)]
    ct: usize,
    /// MR training patients (different people from the CT ones).
    #[arg(long, default_value_t = 12)]
    mr: usize,
    /// MRI contrasts.
    #[arg(long, value_enum, default_value = "t2")]
    mr_contrast: MrContrastArg,
    /// In-plane voxels per side.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Axial slices.
    #[arg(long, default_value_t = 32)]
    slices: usize,
    /// Voxel size X,Y,Z in mm.
    #[arg(long, default_value = "2.5,2.5,5", value_parser = parse_spacing)]
    spacing: [f64; 3],
    /// Validation patients of each modality.
    #[arg(long, default_value_t = 4)]
    val: usize,
    /// Test patients of each modality.
    #[arg(long, default_value_t = 8)]
    test: usize,
    /// Master seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Shares of tumour locations: parenchymal,mediastinal,chest-wall.
    #[arg(long, default_value = "0.4,0.35,0.25", value_parser = parse_shares)]
    locations: LocationShares,
    /// Tumour CT number minus the default 45 HU: its contrast against mediastinal soft tissue.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    ct_tumour_offset: f64,
    /// Range LO,HI of the CT noise standard deviation in HU.
    #[arg(long, default_value = "10,30", value_parser = parse_range)]
    ct_noise: [f64; 2],
    /// Share of tumours with a necrotic core (bright on T2, darker than tumour on CT).
    #[arg(long, default_value_t = 0.0)]
    tumour_necrosis: f64,
    /// Range LO,HI of a per-patient scale of the whole anatomy (0.5 to 2).
    #[arg(long, default_value = "1,1", value_parser = parse_range)]
    body_scale: [f64; 2],
    /// Print the measured tumour contrast-to-noise ratios.
    #[arg(long)]
    stats: bool,
    /// Write preview.png: a slice of a CT and an MR case with tumour outlines and organs.
    #[arg(long)]
    preview: bool,
}

/// The MRI contrasts of `--mr-contrast`.
#[derive(Clone, Copy, ValueEnum)]
enum MrContrastArg {
    T2,
    T1,
    Both,
}

fn parse_range(s: &str) -> Result<[f64; 2], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not LO,HI"))?;
    match v.as_slice() {
        [lo, hi] if lo.is_finite() && hi.is_finite() && 0.0 <= *lo && lo <= hi => Ok([*lo, *hi]),
        _ => Err(format!("'{s}' must be two numbers 0 ≤ LO ≤ HI")),
    }
}

fn parse_shares(s: &str) -> Result<LocationShares, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not three numbers"))?;
    match v.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|x| x.is_finite() && **x >= 0.0) && a + b + c > 0.0 => {
            Ok(LocationShares {
                parenchymal: *a,
                mediastinal: *b,
                chest_wall: *c,
            })
        }
        _ => Err(format!(
            "'{s}' must be three non-negative shares with a positive sum"
        )),
    }
}

/// Runs `cmedl phantom`: writes the cohort, then optionally prints contrast statistics and
/// writes a preview montage.
pub fn run(args: Args, global: &Global) -> CmdResult {
    let config = CohortConfig {
        ct: args.ct,
        mr: args.mr,
        mr_contrast: match args.mr_contrast {
            MrContrastArg::T2 => MrContrast::T2,
            MrContrastArg::T1 => MrContrast::T1,
            MrContrastArg::Both => MrContrast::Both,
        },
        val: args.val,
        test: args.test,
        size: args.size,
        slices: args.slices,
        spacing: args.spacing,
        seed: args.seed,
        locations: args.locations,
        ct_imaging: CtSettings {
            tumour_offset_hu: args.ct_tumour_offset,
            noise_hu: args.ct_noise,
        },
        tumour_necrosis: args.tumour_necrosis,
        body_scale: args.body_scale,
    };
    write(&config, &args.out, args.stats, args.preview, global.quiet)
}

fn write(
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
        outln!(
            "{:<8} {:<12} {:>8} {:>10}",
            "image",
            "location",
            "tumours",
            "mean CNR"
        );
        for (contrast, kind, n, cnr) in stats::summarize(&summary.cnr) {
            outln!(
                "{:<8} {:<12} {:>8} {:>10.2}",
                contrast.name(),
                kind.name(),
                n,
                cnr
            );
        }
    }
    if write_preview {
        preview_montage(config, out)?;
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

/// `preview.png`: the first CT and MR training case with tumour outlines and organs.
fn preview_montage(config: &CohortConfig, out: &Path) -> CmdResult {
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
    Ok(())
}
