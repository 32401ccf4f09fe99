//! `dataset.json` parsing and path checks on arbitrary text.
#![no_main]

use std::path::Path;

use cmedl_io::dataset::Dataset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ds) = Dataset::from_json(Path::new("root"), text) {
            // Every accepted path stays inside the root.
            for m in ds.index.modalities.values() {
                for case in m.train.iter().chain(&m.val).chain(&m.test) {
                    assert!(
                        !case.image.contains("..") || !case.image.split('/').any(|c| c == "..")
                    );
                    assert!(!case.image.starts_with('/'));
                }
            }
        }
    }
});
