//! A process-wide memory budget: the largest buffers (decoded volumes, whole series, resampled
//! grids) are checked against it before they are allocated, so that a hostile header or a
//! mistyped spacing is an error naming the file instead of an abort.
//!
//! ```
//! cmedl_io::memory::set_max_memory(64 << 20);
//! assert!(cmedl_io::memory::reserve("a test grid", 1 << 20).is_ok());
//! assert!(cmedl_io::memory::reserve("a test grid", 1 << 30).is_err());
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{IoError, Result};

/// 0: not set, the default applies.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Sets the budget in bytes (0 restores the default).
pub fn set_max_memory(bytes: u64) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The budget in bytes: the value set, else [`default_max_memory`].
pub fn max_memory() -> u64 {
    match LIMIT.load(Ordering::Relaxed) {
        0 => default_max_memory(),
        set => set,
    }
}

/// Half the physical memory (Linux `/proc/meminfo`), at least 1 GiB; 16 GiB where it is unknown.
pub fn default_max_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    match total {
        Some(bytes) => (bytes / 2).max(1 << 30),
        None => 16 << 30,
    }
}

/// Fails unless `bytes` fit in the budget; `what` names the buffer (and its file).
pub fn reserve(what: impl std::fmt::Display, bytes: u128) -> Result<()> {
    let limit = max_memory();
    if bytes > u128::from(limit) {
        return Err(IoError::OverBudget {
            what: what.to_string(),
            bytes,
            limit,
        });
    }
    Ok(())
}

/// Bytes of `voxels` elements of `each` bytes, without overflow.
pub fn bytes_of(shape: &[usize], each: usize) -> u128 {
    shape
        .iter()
        .fold(each as u128, |acc, &n| acc.saturating_mul(n as u128))
}

/// Reads a size such as `8G`, `512M`, `1.5GiB` or `1000000` (bytes; K, M, G, T are powers of
/// 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let unit = unit.trim();
    let scale: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{t:?}: unknown unit (use K, M, G or T)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{t:?} is not a size such as 8G or 512M"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{t:?}: a size must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// Bytes as a short human-readable text (binary units).
pub fn human(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2 kb"), Ok(2048));
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("8X").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn byte_counts_saturate_instead_of_overflowing() {
        assert_eq!(bytes_of(&[2, 3, 4], 4), 96);
        assert_eq!(
            bytes_of(&[usize::MAX, usize::MAX, usize::MAX], 4),
            u128::MAX
        );
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 B");
    }

    #[test]
    fn the_default_budget_is_at_least_a_gibibyte() {
        assert!(default_max_memory() >= 1 << 30);
    }
}
