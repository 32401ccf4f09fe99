//! Read and write a 512×512×200 int16 `.nii.gz` (a typical CT), reporting MB/s of voxel data.

use std::path::Path;

use cmedl_io::nifti::{read_volume, write_volume, DataType, ReadOptions, WriteOptions};
use cmedl_io::{Geometry, Volume};
use criterion::{criterion_main, Criterion, Throughput};

fn ct_like() -> Volume {
    let shape = [512, 512, 200];
    let g = Geometry::axis_aligned(shape, [0.8, 0.8, 2.5]);
    let mut data = Vec::with_capacity(g.len());
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                // A smooth body with noise-like texture, so compression is realistic.
                let r = ((i as f32 - 256.0).powi(2) + (j as f32 - 256.0).powi(2)).sqrt();
                let body = if r < 200.0 { 40.0 } else { -1000.0 };
                let tex = ((i * 7 + j * 13 + k * 31) % 23) as f32 - 11.0;
                data.push(body + tex);
            }
        }
    }
    Volume::new(g, data).expect("valid volume")
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("cmedl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ct.nii.gz");
    let v = ct_like();
    let opts = WriteOptions {
        datatype: DataType::I16,
        ..Default::default()
    };
    let mut group = c.benchmark_group("nifti_512x512x200_int16_gz");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((v.data.len() * 2) as u64));
    group.bench_function("write", |b| {
        b.iter(|| write_volume(&path, &v, &opts).expect("write"))
    });
    group.bench_function("read", |b| {
        b.iter(|| read_volume(Path::new(&path), &ReadOptions::default()).expect("read"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

#[allow(missing_docs)] // the macro defines an undocumented function
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
