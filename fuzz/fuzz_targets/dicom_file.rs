//! The DICOM series, image, RTSTRUCT and SEG readers on an arbitrary file in a folder.
#![no_main]

use std::sync::OnceLock;

use cmedl_io::dicom::{list_rois, list_segments, read_image_file, read_seg_mask, read_series};
use libfuzzer_sys::fuzz_target;

fn folder() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cmedl-fuzz-dicom-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let file = folder().join("slice.dcm");
    std::fs::write(&file, data).expect("write");
    if let Ok(s) = read_series(folder(), None) {
        assert_eq!(s.volume.data.len(), s.volume.geometry.len());
    }
    if let Ok(image) = read_image_file(&file) {
        assert_eq!(image.data.len(), image.frames * image.rows * image.cols);
    }
    let _ = list_rois(&file);
    if let Ok(segments) = list_segments(&file) {
        for s in segments {
            if let Ok(mask) = read_seg_mask(&file, None, &s.label) {
                assert_eq!(mask.data.len(), mask.geometry.len());
            }
        }
    }
});
