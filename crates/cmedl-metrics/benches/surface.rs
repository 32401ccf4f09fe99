//! HD95 + surface Dice on two 512×512×200 masks with a 3-cm tumour at CT spacing.

use cmedl_metrics::{case_metrics, MetricOptions};
use criterion::{criterion_main, Criterion};

/// A lobulated ball of radius `r` mm centred in the volume, shifted by `shift` voxels along x.
fn tumour(shape: [usize; 3], spacing: [f64; 3], r: f64, shift: f64) -> Vec<bool> {
    let c = [
        shape[0] as f64 / 2.0 + shift,
        shape[1] as f64 / 2.0,
        shape[2] as f64 / 2.0,
    ];
    let mut m = vec![false; shape.iter().product()];
    for z in 0..shape[2] {
        for y in 0..shape[1] {
            for x in 0..shape[0] {
                let d = [
                    (x as f64 - c[0]) * spacing[0],
                    (y as f64 - c[1]) * spacing[1],
                    (z as f64 - c[2]) * spacing[2],
                ];
                let rho = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                let lobes = 1.0 + 0.15 * (3.0 * d[1].atan2(d[0])).cos();
                m[x + shape[0] * (y + shape[1] * z)] = rho <= r * lobes;
            }
        }
    }
    m
}

fn bench(c: &mut Criterion) {
    let shape = [512, 512, 200];
    let spacing = [0.98, 0.98, 2.5];
    let reference = tumour(shape, spacing, 15.0, 0.0);
    let prediction = tumour(shape, spacing, 14.0, 2.0);
    let opts = MetricOptions::default();
    let mut group = c.benchmark_group("surface");
    group.sample_size(10);
    group.bench_function("hd95_sdsc_512x512x200_3cm", |b| {
        b.iter(|| case_metrics(&prediction, &reference, shape, spacing, &opts))
    });
    group.finish();
}

#[allow(missing_docs)] // the macro defines an undocumented function
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
