//! The NIfTI reader on arbitrary bytes (plain and gzip): errors are fine, panics and huge
//! allocations are not.
#![no_main]

use std::path::Path;

use cmedl_io::nifti::{read_volume_bytes, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last byte picks a volume of 4-D images now and then, so the volume skip is fuzzed too.
    let volume = data.last().map(|b| usize::from(b % 4)).filter(|v| *v < 3);
    let options = ReadOptions {
        max_voxels: 1 << 22,
        volume,
    };
    if let Ok(image) = read_volume_bytes(Path::new("fuzz.nii"), data, &options) {
        assert_eq!(image.volume.data.len(), image.volume.geometry.len());
    }
});
