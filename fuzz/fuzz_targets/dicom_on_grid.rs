//! RTSTRUCT rasterisation and SEG reading onto a fixed series grid: contours and frames built
//! from the input (any coordinates, NaN and huge values included), or the input as a whole
//! file whose ROIs and segments are put on the grid.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cmedl_io::dicom::synthetic::{contour, write_rtstruct, write_seg, write_series, SegFrame};
use cmedl_io::dicom::{
    list_rois, list_segments, read_rtstruct_mask, read_seg_mask, read_series, SeriesVolume,
};
use libfuzzer_sys::fuzz_target;

const UID: &str = "1.2.840.99";

struct Fixture {
    dir: PathBuf,
    series: SeriesVolume,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cmedl-fuzz-grid-{}", std::process::id()));
        let ct = dir.join("ct");
        write_series(&ct, UID, &[0.0, 2.5, 5.0, 7.5], 8, 6).expect("series");
        let series = read_series(&ct, None).expect("series reads");
        Fixture { dir, series }
    })
}

fn numbers(data: &[u8]) -> Vec<f64> {
    data.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn check_on_grid(fx: &Fixture, mask_len: usize) {
    assert_eq!(mask_len, fx.series.volume.geometry.len());
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = fx.dir.join("object.dcm");
    match mode % 3 {
        // Polygons of 3–8 points: z, then x, y of each point.
        0 => {
            let values = numbers(rest);
            let points = 3 + usize::from(mode / 3) % 6;
            let contours: Vec<_> = values
                .chunks_exact(1 + 2 * points)
                .take(16)
                .map(|c| {
                    let pts: Vec<[f64; 2]> = c[1..].chunks_exact(2).map(|p| [p[0], p[1]]).collect();
                    contour(&pts, c[0])
                })
                .collect();
            if write_rtstruct(&file, UID, &[(1, "GTV", contours)]).is_ok() {
                if let Ok(roi) = read_rtstruct_mask(&file, &fx.series, "GTV") {
                    check_on_grid(fx, roi.mask.data.len());
                }
            }
        }
        // Frames of 8 × 6 pixels at positions from the input.
        1 => {
            let (head, pixels) = rest.split_at(rest.len().min(24 * 4));
            let positions = numbers(head);
            let frames: Vec<SegFrame> = positions
                .chunks_exact(3)
                .enumerate()
                .map(|(n, p)| SegFrame {
                    segment: 1 + (n % 2) as u16,
                    position: [p[0], p[1], p[2]],
                    pixels: (0..48)
                        .map(|i| pixels.get(n * 48 + i).copied().unwrap_or(0) & 1)
                        .collect(),
                })
                .collect();
            if write_seg(&file, &[(1, "gtv"), (2, "lung")], &frames, 8, 6).is_ok() {
                for label in ["gtv", "lung"] {
                    if let Ok(mask) = read_seg_mask(&file, Some(&fx.series.volume.geometry), label)
                    {
                        check_on_grid(fx, mask.data.len());
                    }
                }
            }
        }
        // The input as a file.
        _ => {
            std::fs::write(&file, rest).expect("write");
            if let Ok(rois) = list_rois(&file) {
                for r in rois {
                    if let Ok(roi) = read_rtstruct_mask(&file, &fx.series, &r.name) {
                        check_on_grid(fx, roi.mask.data.len());
                    }
                }
            }
            if let Ok(segments) = list_segments(&file) {
                for s in segments {
                    if let Ok(mask) =
                        read_seg_mask(&file, Some(&fx.series.volume.geometry), &s.label)
                    {
                        check_on_grid(fx, mask.data.len());
                    }
                }
            }
        }
    }
});
