//! Serde encoding of `f64` that keeps NaN and infinities: finite values are JSON numbers,
//! the others the strings `"nan"`, `"inf"` and `"-inf"` (JSON has no such numbers, and
//! serde_json would write `null` for all three). Use with `#[serde(with = "float_serde")]`.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Row {
//!     #[serde(with = "cmedl_metrics::float_serde")]
//!     hd95: f64,
//! }
//! let text = serde_json::to_string(&Row { hd95: f64::INFINITY }).unwrap();
//! assert_eq!(text, r#"{"hd95":"inf"}"#);
//! assert!(serde_json::from_str::<Row>(&text).unwrap().hd95.is_infinite());
//! ```

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// Writes a finite value as a number, NaN as `"nan"`, ±∞ as `"inf"`/`"-inf"`.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("nan")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Reads a number or one of `"nan"`, `"inf"`, `"-inf"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, \"nan\", \"inf\" or \"-inf\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}
