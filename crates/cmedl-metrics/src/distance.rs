//! Exact Euclidean distance transform with anisotropic spacing (Felzenszwalb & Huttenlocher).

use rayon::prelude::*;

/// Squared distances (mm²) from every grid point to the nearest `feature` point.
///
/// `shape[0]` is the fastest-varying axis. Points with no feature anywhere get `+inf`.
pub fn squared_edt<const D: usize>(
    feature: &[bool],
    shape: [usize; D],
    spacing: [f64; D],
) -> Vec<f64> {
    let mut dist: Vec<f64> = feature
        .iter()
        .map(|&f| if f { 0.0 } else { f64::INFINITY })
        .collect();
    for (axis, &step) in spacing.iter().enumerate() {
        transform_axis(&mut dist, shape, axis, step);
    }
    dist
}

/// Runs the 1-D transform along every line of `axis`.
fn transform_axis<const D: usize>(dist: &mut [f64], shape: [usize; D], axis: usize, spacing: f64) {
    let n = shape[axis];
    let stride: usize = shape[..axis].iter().product();
    let block = stride * n;
    // Lines of one axis interleave with stride `stride` inside blocks of `stride * n` values.
    dist.par_chunks_mut(block.max(1)).for_each(|chunk| {
        let mut line = vec![0.0; n];
        let mut out = vec![0.0; n];
        let mut hull = vec![0usize; n];
        let mut bounds = vec![0.0; n + 1];
        for offset in 0..stride {
            for (i, v) in line.iter_mut().enumerate() {
                *v = chunk[offset + i * stride];
            }
            lower_envelope(&line, spacing, &mut out, &mut hull, &mut bounds);
            for (i, v) in out.iter().enumerate() {
                chunk[offset + i * stride] = *v;
            }
        }
    });
}

/// `out[p] = min_q f[q] + ((p − q)·spacing)²`, in O(n), via the lower envelope of parabolas.
fn lower_envelope(
    f: &[f64],
    spacing: f64,
    out: &mut [f64],
    hull: &mut [usize],
    bounds: &mut [f64],
) {
    let x = |i: usize| i as f64 * spacing;
    let mut k: usize = 0;
    let mut any = false;
    for q in 0..f.len() {
        if !f[q].is_finite() {
            continue;
        }
        if !any {
            hull[0] = q;
            bounds[0] = f64::NEG_INFINITY;
            bounds[1] = f64::INFINITY;
            any = true;
            continue;
        }
        loop {
            let v = hull[k];
            let s = ((f[q] + x(q) * x(q)) - (f[v] + x(v) * x(v))) / (2.0 * (x(q) - x(v)));
            if s <= bounds[k] && k > 0 {
                k -= 1;
                continue;
            }
            if s <= bounds[k] {
                // The new parabola dominates the only one on the hull.
                hull[0] = q;
                bounds[0] = f64::NEG_INFINITY;
                bounds[1] = f64::INFINITY;
                break;
            }
            k += 1;
            hull[k] = q;
            bounds[k] = s;
            bounds[k + 1] = f64::INFINITY;
            break;
        }
    }
    if !any {
        out.iter_mut().for_each(|v| *v = f64::INFINITY);
        return;
    }
    let mut j = 0;
    for (p, o) in out.iter_mut().enumerate() {
        while bounds[j + 1] < x(p) {
            j += 1;
        }
        let d = x(p) - x(hull[j]);
        *o = d * d + f[hull[j]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute<const D: usize>(feature: &[bool], shape: [usize; D], spacing: [f64; D]) -> Vec<f64> {
        let coords = |mut i: usize| {
            let mut c = [0usize; D];
            for a in 0..D {
                c[a] = i % shape[a];
                i /= shape[a];
            }
            c
        };
        (0..feature.len())
            .map(|p| {
                let cp = coords(p);
                (0..feature.len())
                    .filter(|&q| feature[q])
                    .map(|q| {
                        let cq = coords(q);
                        (0..D)
                            .map(|a| ((cp[a] as f64 - cq[a] as f64) * spacing[a]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn matches_brute_force_in_3d(
            bits in proptest::collection::vec(proptest::bool::weighted(0.1), 5 * 4 * 6),
            sx in 0.3f64..3.0, sy in 0.3f64..3.0, sz in 0.3f64..3.0,
        ) {
            let shape = [5, 4, 6];
            let got = squared_edt(&bits, shape, [sx, sy, sz]);
            let want = brute(&bits, shape, [sx, sy, sz]);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g == w) || (g - w).abs() < 1e-9, "{g} vs {w}");
            }
        }

        #[test]
        fn matches_brute_force_in_2d(
            bits in proptest::collection::vec(proptest::bool::weighted(0.15), 9 * 7),
            sx in 0.3f64..3.0, sy in 0.3f64..3.0,
        ) {
            let shape = [9, 7];
            let got = squared_edt(&bits, shape, [sx, sy]);
            let want = brute(&bits, shape, [sx, sy]);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g == w) || (g - w).abs() < 1e-9, "{g} vs {w}");
            }
        }
    }
}
