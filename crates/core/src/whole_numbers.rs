//! Exact whole numbers from JSON. JSON Schema counts `381.0` as an integer and Dart clients send
//! doubles that way, so request fields accept an integral float as well as an integer; money and
//! counts still come out exact, and `381.5` or an out-of-range value is refused.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A whole number read from a JSON integer or an integral JSON float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WholeNumber(pub i64);

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = WholeNumber;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeNumber, E> {
        i64::try_from(v)
            .map(WholeNumber)
            .map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeNumber, E> {
        // i64::MIN is exactly representable; i64::MAX + 1 is the first float out of range.
        const MIN: f64 = -9_223_372_036_854_775_808.0;
        if v.is_finite() && v.fract() == 0.0 && (MIN..-MIN).contains(&v) {
            Ok(WholeNumber(v as i64))
        } else {
            Err(E::custom(format!("{v} is not a whole number")))
        }
    }
}

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WholeVisitor)
    }
}

/// `deserialize_with` for an `i64` field.
pub fn i64_whole<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    WholeNumber::deserialize(d).map(|w| w.0)
}

/// `deserialize_with` for an `Option<i64>` field (pair it with `#[serde(default)]`).
pub fn opt_i64_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<WholeNumber>::deserialize(d)?.map(|w| w.0))
}

/// `deserialize_with` for an `Option<i32>` field (pair it with `#[serde(default)]`).
pub fn opt_i32_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    match Option::<WholeNumber>::deserialize(d)? {
        None => Ok(None),
        Some(WholeNumber(v)) => i32::try_from(v)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{v} is out of range"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "i64_whole")]
        a: i64,
        #[serde(default, deserialize_with = "opt_i32_whole")]
        b: Option<i32>,
    }

    #[test]
    fn integral_floats_pass_and_fractions_fail() {
        let t: T = serde_json::from_str(r#"{"a": 450000000.0, "b": 3}"#).unwrap();
        assert_eq!((t.a, t.b), (450_000_000, Some(3)));
        let t: T = serde_json::from_str(r#"{"a": -5}"#).unwrap();
        assert_eq!((t.a, t.b), (-5, None));
        let t: T = serde_json::from_str(r#"{"a": 1, "b": null}"#).unwrap();
        assert_eq!(t.b, None);
        for bad in [
            r#"{"a": 1.5}"#,
            r#"{"a": "1"}"#,
            r#"{"a": 1e300}"#,
            r#"{"a": 1, "b": 3000000000}"#,
            r#"{"a": 18446744073709551615}"#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
