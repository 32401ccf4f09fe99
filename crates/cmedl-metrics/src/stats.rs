//! Summaries of a metric over cases and paired comparisons of two methods.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Mean ± sd, median and quartiles over the finite values, with NaN and inf counts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Cases with a finite value.
    pub n: usize,
    /// Mean of the finite values.
    pub mean: f64,
    /// Sample standard deviation (n − 1) of the finite values.
    pub sd: f64,
    /// Median of the finite values.
    pub median: f64,
    /// First quartile (linear interpolation).
    pub q1: f64,
    /// Third quartile (linear interpolation).
    pub q3: f64,
    /// Cases whose value is NaN (e.g. both masks empty).
    pub nan: usize,
    /// Cases whose value is ±inf (e.g. one mask empty).
    pub inf: usize,
}

/// Summarises `values`; statistics of an empty finite set are NaN.
pub fn summarize(values: &[f64]) -> Summary {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let n = finite.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / n as f64
    };
    let sd = if n < 2 {
        f64::NAN
    } else {
        (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    };
    Summary {
        n,
        mean,
        sd,
        median: quantile(&finite, 0.5),
        q1: quantile(&finite, 0.25),
        q3: quantile(&finite, 0.75),
        nan: values.iter().filter(|v| v.is_nan()).count(),
        inf: values.iter().filter(|v| v.is_infinite()).count(),
    }
}

/// Quantile of sorted values with linear interpolation (NumPy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let pos = q * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// Result of the two-sided Wilcoxon signed-rank test.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Wilcoxon {
    /// Non-zero differences used (zeros are dropped).
    pub n: usize,
    /// Sum of the ranks of the positive differences.
    pub w_plus: f64,
    /// Sum of the ranks of the negative differences.
    pub w_minus: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the p-value is exact (permutation distribution) or from the normal approximation.
    pub exact: bool,
}

/// Largest number of non-zero differences for which the exact distribution is used.
pub const EXACT_MAX_N: usize = 25;

/// Two-sided Wilcoxon signed-rank test of the paired differences `a[i] − b[i]`.
///
/// Pairs with a non-finite value are skipped; zero differences are dropped (Wilcoxon's
/// convention). Up to [`EXACT_MAX_N`] differences the p-value is exact, from the permutation
/// distribution of the (mid-)ranks, which stays exact under ties; above it the normal
/// approximation with tie and continuity correction is used. `None` when no pair differs.
pub fn wilcoxon_signed_rank(a: &[f64], b: &[f64]) -> Option<Wilcoxon> {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| x - y)
        .filter(|d| *d != 0.0)
        .collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    let ranks = midranks(&d.iter().map(|v| v.abs()).collect::<Vec<_>>());
    let w_plus: f64 = d
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let w_minus = total - w_plus;
    let t = w_plus.min(w_minus);
    let (p_value, exact) = if n <= EXACT_MAX_N {
        (exact_p(&ranks, t), true)
    } else {
        (normal_p(&ranks, t), false)
    };
    Some(Wilcoxon {
        n,
        w_plus,
        w_minus,
        p_value: p_value.min(1.0),
        exact,
    })
}

/// Average ranks (1-based) of `values`, ties sharing the mean of their ranks.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

/// 2·P(W⁺ ≤ t) under random signs; mid-ranks are doubled to stay integers.
fn exact_p(ranks: &[f64], t: f64) -> f64 {
    let doubled: Vec<usize> = ranks.iter().map(|r| (2.0 * r).round() as usize).collect();
    let max: usize = doubled.iter().sum();
    // counts[s] = number of sign assignments whose doubled positive-rank sum is s.
    let mut counts = vec![0f64; max + 1];
    counts[0] = 1.0;
    for &r in &doubled {
        for s in (r..=max).rev() {
            counts[s] += counts[s - r];
        }
    }
    let limit = (2.0 * t).round() as usize;
    let below: f64 = counts[..=limit.min(max)].iter().sum();
    2.0 * below / 2f64.powi(ranks.len() as i32)
}

/// Normal approximation with tie correction and continuity correction.
fn normal_p(ranks: &[f64], t: f64) -> f64 {
    let n = ranks.len() as f64;
    let mean = n * (n + 1.0) / 4.0;
    let mut sorted = ranks.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let size = (j - i + 1) as f64;
        tie_term += size * size * size - size;
        i = j + 1;
    }
    let var = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term / 48.0;
    if var <= 0.0 {
        return 1.0;
    }
    let diff = t - mean;
    let correction = 0.5 * diff.signum();
    let z = (diff - correction) / var.sqrt();
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Mean paired difference `a − b` with a percentile bootstrap confidence interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MeanDifference {
    /// Pairs used (both values finite).
    pub n: usize,
    /// Mean of the differences.
    pub mean: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Coverage of the interval, e.g. 0.95.
    pub level: f64,
}

/// Mean of `a[i] − b[i]` over finite pairs and its bootstrap interval (seeded, reproducible).
pub fn bootstrap_mean_difference(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<MeanDifference> {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| x - y)
        .collect();
    let n = d.len();
    if n == 0 || resamples == 0 {
        return None;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| d[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    Some(percentile_interval(n, mean, means, level))
}

/// The mean with the percentile interval at `level` of its bootstrap replicates `means`.
fn percentile_interval(n: usize, mean: f64, mut means: Vec<f64>, level: f64) -> MeanDifference {
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    MeanDifference {
        n,
        mean,
        low: quantile(&means, alpha),
        high: quantile(&means, 1.0 - alpha),
        level,
    }
}

/// Holm's step-down adjustment of p values for the family `p` (in their order; each adjusted
/// value is at least the one before it in the sorted order, and at most 1). NaN stays NaN.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Mean of every value of every group, with a bootstrap interval that resamples whole groups
/// (e.g. the lesions of a case, which are not independent of each other).
pub fn cluster_bootstrap_mean(
    groups: &[Vec<f64>],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<MeanDifference> {
    let groups: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect::<Vec<f64>>()
        })
        .filter(|g| !g.is_empty())
        .collect();
    let n: usize = groups.iter().map(Vec::len).sum();
    if n == 0 || resamples == 0 {
        return None;
    }
    let pooled = |pick: &mut dyn FnMut() -> usize| {
        let (mut sum, mut count) = (0.0, 0usize);
        for _ in 0..groups.len() {
            let g = &groups[pick()];
            sum += g.iter().sum::<f64>();
            count += g.len();
        }
        sum / count as f64
    };
    let mut next = 0;
    let mean = pooled(&mut || {
        next += 1;
        next - 1
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = groups.len();
    let means: Vec<f64> = (0..resamples)
        .map(|_| pooled(&mut || rng.gen_range(0..k)))
        .collect();
    Some(percentile_interval(n, mean, means, level))
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if !(p > 0.0 && p < 1.0) {
        return if p == 0.0 {
            f64::NEG_INFINITY
        } else if p == 1.0 {
            f64::INFINITY
        } else {
            f64::NAN
        };
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The smallest true mean difference a two-sided paired test at level `alpha` detects with
/// probability `power`, for `n` pairs whose differences have standard deviation `sd` (normal
/// approximation: (z₁₋α/₂ + z_power) · sd / √n).
pub fn detectable_difference(sd: f64, n: usize, alpha: f64, power: f64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    (normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power)) * sd / (n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, f64::NAN, f64::INFINITY]);
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.median, 2.5);
        assert_eq!(s.q1, 1.75);
        assert_eq!(s.q3, 3.25);
        assert_eq!((s.nan, s.inf), (1, 1));
    }

    #[test]
    fn midranks_share_ties() {
        assert_eq!(midranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    // Reference p-values below are from scipy.stats.wilcoxon 1.17.1.

    #[test]
    fn wilcoxon_exact_small_sample() {
        // Ranks 1..10 of distinct |differences|, two negatives with ranks 1 and 2: W⁻ = 3;
        // sign patterns with W⁺ ≤ 3: {}, {1}, {2}, {3}, {1,2} → p = 2·5/1024 (scipy: the same).
        let d = [0.3, 0.6, -0.1, 0.8, 0.35, 0.5, 0.65, -0.2, 0.4, 0.7];
        let w = wilcoxon_signed_rank(&d, &[0.0; 10]).unwrap();
        assert!(w.exact);
        assert_eq!(w.w_minus, 3.0);
        assert!((w.p_value - 0.009765625).abs() < 1e-15, "{w:?}");
    }

    #[test]
    fn wilcoxon_exact_uses_the_tied_distribution() {
        // Two tied negatives share rank 1.5 (W⁻ = 3); patterns with W⁺ ≤ 3 are {}, {1.5},
        // {1.5'}, {1.5, 1.5'} → p = 2·4/1024. scipy's method="exact" ignores ties and gives
        // 0.009765625 for the same data, with a warning.
        let d = [0.03, 0.06, -0.01, 0.06, 0.03, 0.05, 0.06, -0.01, 0.04, 0.07];
        let w = wilcoxon_signed_rank(&d, &[0.0; 10]).unwrap();
        assert_eq!(w.w_minus, 3.0);
        assert!((w.p_value - 0.0078125).abs() < 1e-15, "{w:?}");
    }

    #[test]
    fn wilcoxon_exact_with_ties_and_zeros() {
        // Differences 1..7 and −1 plus one zero (dropped): |1| twice shares rank 1.5; W⁻ = 1.5;
        // sign patterns with W⁺ ≤ 1.5: all negative, or one of the two 1.5s → p = 2·3/256.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 4.0];
        let b = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 4.0];
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!(w.n, 8);
        assert_eq!(w.w_minus, 1.5);
        assert!((w.p_value - 0.0234375).abs() < 1e-15);
        // Cross-check the dynamic programme by enumerating all 2^8 sign patterns.
        let ranks = [1.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.5];
        let hits = (0u32..256)
            .filter(|m| {
                (0..8)
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| ranks[i])
                    .sum::<f64>()
                    <= 1.5
            })
            .count();
        assert_eq!(hits, 3);
    }

    #[test]
    fn wilcoxon_normal_approximation_with_ties() {
        let d = [
            0.6, 1.1, 0.6, -1.0, 1.2, 0.7, -0.2, 0.9, 0.7, 0.6, 0.3, 0.8, -0.4, 0.1, -0.2, 0.9,
            0.3, 0.0, -0.5, 0.0, 0.3, 0.0, 1.6, 1.3, -2.4, -1.6, 0.1, -0.1, 0.5, 0.5,
        ];
        let zeros = [0.0; 30];
        let w = wilcoxon_signed_rank(&d, &zeros).unwrap();
        assert!(!w.exact);
        assert_eq!(w.n, 27);
        assert_eq!(w.w_minus, 104.5);
        assert!(
            (w.p_value - 0.043429301639412075).abs() < 1e-9,
            "{}",
            w.p_value
        );
    }

    #[test]
    fn wilcoxon_normal_approximation_without_ties() {
        let mut d: Vec<f64> = (1..=28).map(f64::from).collect();
        for i in [1, 4, 12, 26] {
            d[i] = -d[i];
        }
        let w = wilcoxon_signed_rank(&d, &[0.0; 28]).unwrap();
        assert_eq!(w.w_minus, 47.0);
        assert!(
            (w.p_value - 0.00039867954604150117).abs() < 1e-12,
            "{}",
            w.p_value
        );
    }

    #[test]
    fn wilcoxon_needs_a_difference() {
        assert!(wilcoxon_signed_rank(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn bootstrap_interval_contains_the_mean_and_is_reproducible() {
        let a: Vec<f64> = (0..40).map(|i| 0.7 + 0.005 * (i % 7) as f64).collect();
        let b: Vec<f64> = (0..40).map(|i| 0.68 + 0.004 * (i % 5) as f64).collect();
        let m = bootstrap_mean_difference(&a, &b, 2000, 0.95, 7).unwrap();
        assert!(m.low <= m.mean && m.mean <= m.high);
        assert!(m.high - m.low > 0.0);
        assert_eq!(
            Some(m.clone()),
            bootstrap_mean_difference(&a, &b, 2000, 0.95, 7)
        );
        let constant = bootstrap_mean_difference(&[1.0, 2.0], &[0.5, 1.5], 100, 0.95, 1).unwrap();
        assert_eq!(
            (constant.mean, constant.low, constant.high),
            (0.5, 0.5, 0.5)
        );
    }

    #[test]
    fn holm_by_hand() {
        // Sorted: 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → kept at 0.06 (monotone).
        assert_eq!(holm(&[0.01, 0.04, 0.03]), vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.6, 0.5]), vec![1.0, 1.0]);
        let with_nan = holm(&[f64::NAN, 0.02]);
        assert!(with_nan[0].is_nan());
        assert_eq!(with_nan[1], 0.02);
    }

    #[test]
    fn normal_quantiles_and_detectable_differences() {
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.8) - 0.841_621_234).abs() < 1e-8);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-8);
        assert_eq!(normal_quantile(0.5), 0.0);
        // 2.8016 · 0.08 / √35 ≈ 0.0379: about 35 pairs detect +0.04 at an SD of 0.08.
        let d = detectable_difference(0.08, 35, 0.05, 0.8);
        assert!(
            (d - 2.801_585_219 * 0.08 / 35f64.sqrt()).abs() < 1e-9,
            "{d}"
        );
        assert!(detectable_difference(0.08, 0, 0.05, 0.8).is_nan());
    }

    #[test]
    fn cluster_bootstrap_pools_values_and_resamples_groups() {
        let groups = vec![vec![1.0, 3.0], vec![5.0], vec![f64::NAN]];
        let m = cluster_bootstrap_mean(&groups, 2000, 0.95, 1).unwrap();
        // Pooled mean of the finite values: (1 + 3 + 5) / 3; the NaN-only group is dropped.
        assert_eq!((m.n, m.mean), (3, 3.0));
        // Resampled means are 2 (group 1 twice), 3 (both), 5 (group 2 twice).
        assert!(m.low >= 2.0 && m.high <= 5.0 && m.low < m.mean && m.mean < m.high);
        assert!(cluster_bootstrap_mean(&[], 10, 0.95, 1).is_none());
    }
}
