//! A montage PNG of generated cases for a person to look at.

use std::path::Path;

use cmedl_io::{Mask, Volume, Window};
use image::{Rgb, RgbImage};

use crate::PhantomError;

const ORGAN_COLOURS: [[u8; 3]; 7] = [
    [0, 0, 0],
    [70, 130, 180],
    [200, 60, 60],
    [230, 150, 40],
    [120, 200, 90],
    [220, 220, 220],
    [255, 235, 0],
];

/// The axial slice with the most tumour voxels (the middle one when there is none).
pub fn best_slice(mask: &Mask) -> usize {
    let nz = mask.geometry.shape[2];
    (0..nz)
        .max_by_key(|&k| {
            (
                mask.slice(k).iter().filter(|&&v| v > 0).count(),
                usize::MAX - k.abs_diff(nz / 2),
            )
        })
        .unwrap_or(0)
}

/// One panel per row entry: the image in grey with the tumour outline in red, then the organ map.
pub fn write_montage(
    path: &Path,
    rows: &[(&Volume, Window, &Mask, &Mask)],
    scale: u32,
) -> Result<(), PhantomError> {
    let Some((first, ..)) = rows.first() else {
        return Err(PhantomError::Config("nothing to preview".into()));
    };
    let [nx, ny, _] = first.geometry.shape;
    let (w, h) = (nx as u32 * scale, ny as u32 * scale);
    let mut img = RgbImage::new(2 * w, h * rows.len() as u32);
    for (r, (volume, window, tumour, organs)) in rows.iter().enumerate() {
        let k = best_slice(tumour);
        let slice = volume.slice(k);
        let t = tumour.slice(k);
        let o = organs.slice(k);
        let edge = |i: usize, j: usize| {
            t[i + nx * j] > 0
                && [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .any(|(di, dj)| {
                        let (a, b) = (i as i64 + di, j as i64 + dj);
                        a < 0
                            || b < 0
                            || a >= nx as i64
                            || b >= ny as i64
                            || t[a as usize + nx * b as usize] == 0
                    })
        };
        for j in 0..ny {
            for i in 0..nx {
                let g = ((window.apply(slice[i + nx * j]) + 1.0) * 127.5) as u8;
                let grey = if edge(i, j) {
                    Rgb([255, 0, 0])
                } else {
                    Rgb([g, g, g])
                };
                let organ = Rgb(ORGAN_COLOURS[(o[i + nx * j] as usize).min(6)]);
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (x, y) = (i as u32 * scale + dx, r as u32 * h + j as u32 * scale + dy);
                        img.put_pixel(x, y, grey);
                        img.put_pixel(w + x, y, organ);
                    }
                }
            }
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| PhantomError::io(dir, e))?;
    }
    img.save(path)
        .map_err(|e| PhantomError::Config(format!("{}: cannot write PNG: {e}", path.display())))
}
