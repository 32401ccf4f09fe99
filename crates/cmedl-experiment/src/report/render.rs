//! Rendering: a structured document as Markdown and as self-contained HTML, training curves
//! and contour montages as PNG.

use std::path::{Path, PathBuf};

use base64::Engine;
use image::{Rgb, RgbImage};

use super::chart::{padded_range, Canvas, Plot, BLACK, COLOURS};

use crate::ExperimentError;

/// A block of a report.
pub enum Block {
    /// A heading of level 1–3.
    Heading(u8, String),
    /// A paragraph of plain text.
    Para(String),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// Preformatted text.
    Code(String),
    /// An image file (relative to the report) with a caption.
    Image(String, String),
}

/// Renders Markdown.
pub fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("{} {t}\n\n", "#".repeat(*l as usize)),
            Block::Para(t) => s += &format!("{t}\n\n"),
            Block::Table(h, rows) => {
                s += &format!("| {} |\n", h.join(" | "));
                s += &format!(
                    "|{}|\n",
                    h.iter().map(|_| "---").collect::<Vec<_>>().join("|")
                );
                for r in rows {
                    s += &format!("| {} |\n", r.join(" | "));
                }
                s += "\n";
            }
            Block::Code(t) => s += &format!("```\n{t}\n```\n\n"),
            Block::Image(path, caption) => s += &format!("![{caption}]({path})\n\n*{caption}*\n\n"),
        }
    }
    s
}

/// Escapes text for HTML content and double-quoted attributes.
fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders one self-contained HTML page (images inlined as data URIs).
pub fn html(title: &str, blocks: &[Block], base: &Path) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}}table{{border-collapse:collapse;}}td,th{{border:1px solid #aaa;padding:3px 8px;text-align:right;}}pre{{background:#f4f4f4;padding:8px;overflow-x:auto;}}img{{max-width:100%;}}</style></head><body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("<h{l}>{}</h{l}>\n", escape(t)),
            Block::Para(t) => s += &format!("<p>{}</p>\n", escape(t)),
            Block::Table(h, rows) => {
                s += "<table><tr>";
                for c in h {
                    s += &format!("<th>{}</th>", escape(c));
                }
                s += "</tr>\n";
                for r in rows {
                    s += "<tr>";
                    for c in r {
                        s += &format!("<td>{}</td>", escape(c));
                    }
                    s += "</tr>\n";
                }
                s += "</table>\n";
            }
            Block::Code(t) => s += &format!("<pre>{}</pre>\n", escape(t)),
            Block::Image(path, caption) => {
                let data = std::fs::read(base.join(path))
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                    .unwrap_or_default();
                s += &format!("<figure><img src=\"data:image/png;base64,{data}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n", escape(caption), escape(caption));
            }
        }
    }
    s + "</body></html>\n"
}

/// The two files of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`, with its figures inlined.
    pub html: PathBuf,
}

/// Writes `report.md` and `report.html` into `dir`.
pub fn write(dir: &Path, title: &str, blocks: &[Block]) -> Result<ReportFiles, ExperimentError> {
    let md = dir.join("report.md");
    let ht = dir.join("report.html");
    crate::write_atomic(&md, markdown(blocks).as_bytes())?;
    crate::write_atomic(&ht, html(title, blocks, dir).as_bytes())?;
    Ok(ReportFiles {
        markdown: md,
        html: ht,
    })
}

/// Size of the training-curve figures.
pub const CURVE_SIZE: (u32, u32) = (800, 300);

/// Two panels with labelled axes: mean total loss per epoch (left, blue) and validation Dice
/// per epoch (right, green, axis 0–1; the teacher's on translations in orange when given).
/// Returns the loss range drawn, for the caption.
pub fn training_curves(
    path: &Path,
    loss: &[f64],
    dice: &[f64],
    teacher: &[f64],
) -> Result<(f64, f64), ExperimentError> {
    let mut canvas = Canvas::new(CURVE_SIZE.0, CURVE_SIZE.1);
    let n = loss.len().max(dice.len()).max(2) as f64;
    let finite: Vec<f64> = loss.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = (hi - lo) * 0.05;
    let epochs = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, y)| (i as f64 + 1.0, *y))
            .collect()
    };
    let left = Plot {
        frame: (60, 30, 380, 255),
        x: (1.0, n),
        y: (lo - pad, hi + pad),
    };
    left.axes(&mut canvas, "epoch", "mean total training loss");
    left.line_series(&mut canvas, &epochs(loss), COLOURS[0]);
    let right = Plot {
        frame: (460, 30, 780, 255),
        x: (1.0, n),
        y: (0.0, 1.0),
    };
    right.axes(&mut canvas, "epoch", "validation dice");
    right.line_series(&mut canvas, &epochs(dice), COLOURS[1]);
    let mut legend = vec![("student", COLOURS[1])];
    if teacher.iter().any(|v| v.is_finite()) {
        right.line_series(&mut canvas, &epochs(teacher), COLOURS[4]);
        legend.push(("teacher on pmri", COLOURS[4]));
    }
    right.legend(&mut canvas, &legend);
    canvas.save(path)?;
    Ok((lo, hi))
}

/// One dot per case: the baseline's Dice (x) against the arm's paired difference (y), with
/// the zero line.
pub fn paired_differences(
    path: &Path,
    points: &[(f64, f64)],
    arm: &str,
) -> Result<(), ExperimentError> {
    let mut canvas = Canvas::new(480, 320);
    let (ylo, yhi) = padded_range(points.iter().map(|p| p.1).chain([0.0]));
    let plot = Plot {
        frame: (60, 30, 460, 270),
        x: (0.0, 1.0),
        y: (ylo, yhi),
    };
    plot.axes(
        &mut canvas,
        "ct-only dice of the case (mean over seeds)",
        &format!("dice difference: {arm} - ct-only"),
    );
    plot.hline(&mut canvas, 0.0, BLACK);
    for &(x, y) in points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
    {
        canvas.dot(plot.at(x, y), 2, COLOURS[2]);
    }
    canvas.save(path)
}

/// One montage panel: a grey slice with contours of masks in colours.
pub struct Panel<'a> {
    /// Slice values mapped to grey by `window`.
    pub slice: &'a [f32],
    /// Grey window.
    pub window: cmedl_io::Window,
    /// Contours: (mask slice, colour).
    pub contours: Vec<(&'a [u8], [u8; 3])>,
}

/// Draws panels side by side, each `nx × ny` pixels scaled by `scale`.
pub fn montage(
    path: &Path,
    panels: &[Panel<'_>],
    nx: usize,
    ny: usize,
    scale: u32,
) -> Result<(), ExperimentError> {
    montage_image(panels, nx, ny, scale)
        .save(path)
        .map_err(|e| ExperimentError::Figure(format!("{}: {e}", path.display())))
}

/// The image of [`montage`].
pub fn montage_image(panels: &[Panel<'_>], nx: usize, ny: usize, scale: u32) -> RgbImage {
    let (w, h) = (nx as u32 * scale, ny as u32 * scale);
    let mut img = RgbImage::new(w * panels.len() as u32, h);
    for (p, panel) in panels.iter().enumerate() {
        for j in 0..ny {
            for i in 0..nx {
                let g = ((panel.window.apply(panel.slice[i + nx * j]) + 1.0) * 127.5) as u8;
                let mut colour = Rgb([g, g, g]);
                for (mask, c) in &panel.contours {
                    let inside = |a: i64, b: i64| {
                        a >= 0
                            && b >= 0
                            && (a as usize) < nx
                            && (b as usize) < ny
                            && mask[a as usize + nx * b as usize] > 0
                    };
                    let (a, b) = (i as i64, j as i64);
                    if inside(a, b)
                        && !(inside(a + 1, b)
                            && inside(a - 1, b)
                            && inside(a, b + 1)
                            && inside(a, b - 1))
                    {
                        colour = Rgb(*c);
                    }
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(
                            p as u32 * w + i as u32 * scale + dx,
                            j as u32 * scale + dy,
                            colour,
                        );
                    }
                }
            }
        }
    }
    img
}
