//! Small charts drawn straight into PNG images, with labelled axes and ticks: a 5×7 pixel font
//! built in (no font files, no system fonts), lines, dots and error bars.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::ExperimentError;

/// Black.
pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
/// Grey of grid lines.
pub const GREY: Rgb<u8> = Rgb([200, 200, 200]);
/// Series colours, in order.
pub const COLOURS: [Rgb<u8>; 6] = [
    Rgb([31, 119, 180]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([255, 127, 14]),
    Rgb([23, 190, 207]),
];

/// Rows of a 5×7 glyph, most significant of the 5 bits on the left.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'a' => [0, 0, 14, 1, 15, 17, 15],
        'b' => [16, 16, 22, 25, 17, 17, 30],
        'c' => [0, 0, 14, 16, 16, 17, 14],
        'd' => [1, 1, 13, 19, 17, 17, 15],
        'e' => [0, 0, 14, 17, 31, 16, 14],
        'f' => [6, 9, 8, 28, 8, 8, 8],
        'g' => [0, 15, 17, 17, 15, 1, 14],
        'h' => [16, 16, 22, 25, 17, 17, 17],
        'i' => [4, 0, 12, 4, 4, 4, 14],
        'j' => [2, 0, 6, 2, 2, 18, 12],
        'k' => [16, 16, 18, 20, 24, 20, 18],
        'l' => [12, 4, 4, 4, 4, 4, 14],
        'm' => [0, 0, 26, 21, 21, 17, 17],
        'n' => [0, 0, 22, 25, 17, 17, 17],
        'o' => [0, 0, 14, 17, 17, 17, 14],
        'p' => [0, 0, 30, 17, 30, 16, 16],
        'q' => [0, 0, 13, 19, 15, 1, 1],
        'r' => [0, 0, 22, 25, 16, 16, 16],
        's' => [0, 0, 14, 16, 14, 1, 30],
        't' => [8, 8, 28, 8, 8, 9, 6],
        'u' => [0, 0, 17, 17, 17, 19, 13],
        'v' => [0, 0, 17, 17, 17, 10, 4],
        'w' => [0, 0, 17, 17, 21, 21, 10],
        'x' => [0, 0, 17, 10, 4, 10, 17],
        'y' => [0, 0, 17, 17, 15, 1, 14],
        'z' => [0, 0, 31, 2, 4, 8, 31],
        'A'..='Z' => glyph(c.to_ascii_lowercase()),
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' | '−' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '[' => [14, 8, 8, 8, 8, 8, 14],
        ']' => [14, 2, 2, 2, 2, 2, 14],
        _ => [0; 7],
    }
}

/// Pixels a text is wide (6 per character, the last column blank).
pub fn text_width(text: &str) -> i32 {
    text.chars().count() as i32 * 6
}

/// An image being drawn on.
pub struct Canvas {
    img: RgbImage,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            img: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])),
        }
    }

    fn put(&mut self, x: i32, y: i32, c: Rgb<u8>) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, c);
        }
    }

    /// Copies `image` onto the canvas with its top-left corner at (x, y).
    pub fn blit(&mut self, image: &RgbImage, x: i32, y: i32) {
        for (i, j, p) in image.enumerate_pixels() {
            self.put(x + i as i32, y + j as i32, *p);
        }
    }

    /// A straight line (Bresenham).
    pub fn line(&mut self, (x0, y0): (i32, i32), (x1, y1): (i32, i32), c: Rgb<u8>) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.put(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled square dot of radius `r`.
    pub fn dot(&mut self, (x, y): (i32, i32), r: i32, c: Rgb<u8>) {
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy <= r * r + r {
                    self.put(x + dx, y + dy, c);
                }
            }
        }
    }

    /// Text with its top-left corner at (x, y).
    pub fn text(&mut self, (x, y): (i32, i32), text: &str, c: Rgb<u8>) {
        for (n, ch) in text.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (16 >> col) != 0 {
                        self.put(x + n as i32 * 6 + col, y + row as i32, c);
                    }
                }
            }
        }
    }

    /// Writes the image as PNG.
    pub fn save(&self, path: &Path) -> Result<(), ExperimentError> {
        self.img
            .save(path)
            .map_err(|e| ExperimentError::Figure(format!("{}: {e}", path.display())))
    }

    /// The image.
    pub fn image(&self) -> &RgbImage {
        &self.img
    }
}

/// A plot area on a canvas with its data ranges.
pub struct Plot {
    /// Left, top, right, bottom of the data area in pixels.
    pub frame: (i32, i32, i32, i32),
    /// Data range of x.
    pub x: (f64, f64),
    /// Data range of y.
    pub y: (f64, f64),
}

/// About five round tick values covering `lo..=hi`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let exp = raw.log10().floor() as i32;
    let mag = 10f64.powi(exp);
    let m = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * mag >= raw)
        .unwrap_or(10.0);
    let step = m * mag;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    // i·m / 10^−exp rather than i·step: 6 · 0.1 is not 0.6 in binary, 6 / 10 is.
    let value = |i: i64| {
        if exp < 0 {
            i as f64 * m / 10f64.powi(-exp)
        } else {
            i as f64 * step
        }
    };
    (first..=last).map(value).collect()
}

/// A tick label with as many decimals as the tick step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with("-0") && s.chars().skip(1).all(|c| c == '0' || c == '.') {
        s[1..].to_owned()
    } else {
        s
    }
}

impl Plot {
    /// Pixel of a data point.
    pub fn at(&self, x: f64, y: f64) -> (i32, i32) {
        let (l, t, r, b) = self.frame;
        let fx = (x - self.x.0) / (self.x.1 - self.x.0).max(1e-300);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0).max(1e-300);
        (
            l + (fx * f64::from(r - l)).round() as i32,
            b - (fy * f64::from(b - t)).round() as i32,
        )
    }

    /// The frame, ticks with labels on both axes, light grid lines, and axis titles (x below,
    /// y above the frame).
    pub fn axes(&self, canvas: &mut Canvas, x_title: &str, y_title: &str) {
        let (l, t, r, b) = self.frame;
        let xt = ticks(self.x.0, self.x.1);
        let yt = ticks(self.y.0, self.y.1);
        let step = |v: &[f64]| if v.len() > 1 { v[1] - v[0] } else { 1.0 };
        for &v in &yt {
            let (_, y) = self.at(self.x.0, v);
            canvas.line((l, y), (r, y), GREY);
            canvas.line((l - 4, y), (l, y), BLACK);
            let label = tick_label(v, step(&yt));
            canvas.text((l - 7 - text_width(&label), y - 3), &label, BLACK);
        }
        for &v in &xt {
            let (x, _) = self.at(v, self.y.0);
            canvas.line((x, b), (x, b + 4), BLACK);
            let label = tick_label(v, step(&xt));
            canvas.text((x - text_width(&label) / 2, b + 8), &label, BLACK);
        }
        for (p, q) in [
            ((l, t), (r, t)),
            ((r, t), (r, b)),
            ((l, b), (r, b)),
            ((l, t), (l, b)),
        ] {
            canvas.line(p, q, BLACK);
        }
        canvas.text(((l + r - text_width(x_title)) / 2, b + 20), x_title, BLACK);
        canvas.text((l - 30, t - 14), y_title, BLACK);
    }

    /// A polyline through the finite points, with dots.
    pub fn line_series(&self, canvas: &mut Canvas, points: &[(f64, f64)], c: Rgb<u8>) {
        let pts: Vec<(i32, i32)> = points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| self.at(x, y))
            .collect();
        for w in pts.windows(2) {
            canvas.line(w[0], w[1], c);
        }
        for p in pts {
            canvas.dot(p, 2, c);
        }
    }

    /// A vertical error bar from `lo` to `hi` at `x`, with caps.
    pub fn error_bar(&self, canvas: &mut Canvas, x: f64, lo: f64, hi: f64, c: Rgb<u8>) {
        let (a, b) = (self.at(x, lo), self.at(x, hi));
        canvas.line(a, b, c);
        canvas.line((a.0 - 3, a.1), (a.0 + 3, a.1), c);
        canvas.line((b.0 - 3, b.1), (b.0 + 3, b.1), c);
    }

    /// A horizontal line at `y` across the frame.
    pub fn hline(&self, canvas: &mut Canvas, y: f64, c: Rgb<u8>) {
        let (l, _, r, _) = self.frame;
        let (_, py) = self.at(self.x.0, y);
        canvas.line((l, py), (r, py), c);
    }

    /// A legend of coloured names at the frame's top-left corner.
    pub fn legend(&self, canvas: &mut Canvas, entries: &[(&str, Rgb<u8>)]) {
        let (l, t, _, _) = self.frame;
        for (i, (name, c)) in entries.iter().enumerate() {
            let y = t + 6 + 11 * i as i32;
            canvas.dot((l + 8, y + 3), 2, *c);
            canvas.text((l + 14, y), name, *c);
        }
    }
}

/// The range of the finite values, padded by 5 % (0..1 when there is none).
pub fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks(1.0, 16.0), vec![5.0, 10.0, 15.0]);
        assert_eq!(ticks(-0.12, 0.07), vec![-0.1, -0.05, 0.0, 0.05]);
        assert_eq!(tick_label(-0.0, 0.05), "0.00");
        assert_eq!(tick_label(0.6, 0.2), "0.6");
    }

    #[test]
    fn text_and_lines_land_where_asked() {
        let mut c = Canvas::new(20, 10);
        c.text((0, 0), "1", BLACK);
        // The glyph of '1': column 2 is set on every row.
        assert!((0..7).all(|y| *c.image().get_pixel(2, y) == BLACK));
        assert_eq!(*c.image().get_pixel(0, 0), Rgb([255, 255, 255]));
        c.line((0, 9), (19, 9), GREY);
        assert!((0..20).all(|x| *c.image().get_pixel(x, 9) == GREY));
        let p = Plot {
            frame: (10, 0, 110, 100),
            x: (0.0, 1.0),
            y: (-1.0, 1.0),
        };
        assert_eq!(p.at(0.0, -1.0), (10, 100));
        assert_eq!(p.at(1.0, 1.0), (110, 0));
        assert_eq!(p.at(0.5, 0.0), (60, 50));
    }
}
