//! Source values as a reader reports them: a small, borrowed, source-independent vocabulary.
//!
//! A reader (e.g. the MongoDB connector's BSON reader) classifies each field value into a [`Value`]
//! without copying; the mapping rules then decide the column type and whether the value fits.
//! Decimal numbers travel as IEEE 754 decimal parts ([`Decimal`]), so that pinned `decimal(p,s)`
//! columns get exact values and text columns get the standard text form.

use std::fmt;

/// One field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Null, or a deprecated "undefined".
    Null,
    /// A boolean.
    Bool(bool),
    /// A 32- or 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A decimal floating-point number.
    Decimal(Decimal),
    /// A date: milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Bytes.
    Binary(&'a [u8]),
    /// A text value.
    String(&'a str),
    /// An object id as 24 lowercase hex digits.
    ObjectId(&'a str),
    /// A UUID in canonical 8-4-4-4-12 form.
    Uuid(&'a str),
    /// A value without a column type of its own, as Extended JSON text.
    ExtJson(&'a str),
    /// JSON text (a sub-document or an array, or any value bound for a JSON column).
    Json(&'a str),
}

impl Value<'_> {
    /// The value's kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Double(_) => ValueKind::Double,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::Binary(_) => ValueKind::Binary,
            Value::String(_) => ValueKind::String,
            Value::ObjectId(_) => ValueKind::ObjectId,
            Value::Uuid(_) => ValueKind::Uuid,
            Value::ExtJson(_) => ValueKind::ExtJson,
            Value::Json(_) => ValueKind::Json,
        }
    }
}

/// The kind of a [`Value`], for type inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// Null or missing.
    Null,
    /// Boolean.
    Bool,
    /// Integer.
    Int,
    /// Double.
    Double,
    /// Decimal.
    Decimal,
    /// Date.
    Timestamp,
    /// Bytes.
    Binary,
    /// Text.
    String,
    /// Object id.
    ObjectId,
    /// UUID.
    Uuid,
    /// Extended JSON form of an otherwise untyped value.
    ExtJson,
    /// Sub-document or array.
    Json,
}

impl ValueKind {
    /// Number of kinds.
    pub const COUNT: usize = 12;
    /// Every kind, indexed by its discriminant.
    pub const ALL: [ValueKind; Self::COUNT] = [
        ValueKind::Null,
        ValueKind::Bool,
        ValueKind::Int,
        ValueKind::Double,
        ValueKind::Decimal,
        ValueKind::Timestamp,
        ValueKind::Binary,
        ValueKind::String,
        ValueKind::ObjectId,
        ValueKind::Uuid,
        ValueKind::ExtJson,
        ValueKind::Json,
    ];
}

/// An IEEE 754 decimal floating-point number (e.g. a BSON Decimal128): sign, coefficient and exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decimal {
    /// `(-1)^negative * coefficient * 10^exponent`.
    Finite {
        /// Sign (also for zero: `-0` exists).
        negative: bool,
        /// Up to 34 decimal digits for Decimal128.
        coefficient: u128,
        /// Power of ten.
        exponent: i32,
    },
    /// Positive or negative infinity.
    Infinity {
        /// Sign.
        negative: bool,
    },
    /// Not a number.
    NaN,
}

impl fmt::Display for Decimal {
    /// The IEEE 754 "to-scientific-string" form (what MongoDB prints): `1.5`, `-0.00`, `1.05E+3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0u8; DECIMAL_TEXT_MAX]))
    }
}

/// Room for the longest text of a [`Decimal`]: a sign, 39 digits and a point, or a sign, 39 digits,
/// a point, `E` and a signed 11-digit exponent.
pub const DECIMAL_TEXT_MAX: usize = 64;

/// Appends `bytes` at `buf[*len..]`.
#[inline(always)]
fn put(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    buf[*len..*len + bytes.len()].copy_from_slice(bytes);
    *len += bytes.len();
}

/// Writes the decimal digits of `v` at the end of `buf`; returns where they start.
#[inline]
fn digits_u128(mut v: u128, buf: &mut [u8; 40]) -> usize {
    let mut i = buf.len();
    // Most coefficients fit a u64, whose division is much cheaper than u128's.
    while v > u64::MAX as u128 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    super::json::digits_before(v as u64, buf, i)
}

impl Decimal {
    /// The text [`Display`](fmt::Display) writes, written into `buf` (without allocating or going
    /// through `fmt`, which costs more than the digits on hot paths).
    pub fn text<'b>(&self, buf: &'b mut [u8; DECIMAL_TEXT_MAX]) -> &'b str {
        let (negative, coefficient, exponent) = match *self {
            Decimal::NaN => return "NaN",
            Decimal::Infinity { negative: true } => return "-Infinity",
            Decimal::Infinity { negative: false } => return "Infinity",
            Decimal::Finite {
                negative,
                coefficient,
                exponent,
            } => (negative, coefficient, exponent),
        };
        let mut digits = [0u8; 40];
        let start = digits_u128(coefficient, &mut digits);
        let digits = &digits[start..];
        let n = digits.len() as i64;
        let exponent = exponent as i64;
        let adjusted = exponent + n - 1;
        let mut len = 0;
        if negative {
            put(buf, &mut len, b"-");
        }
        if exponent <= 0 && adjusted >= -6 {
            let point = n + exponent; // digits before the point
            if exponent == 0 {
                put(buf, &mut len, digits);
            } else if point > 0 {
                let (int, frac) = digits.split_at(point as usize);
                put(buf, &mut len, int);
                put(buf, &mut len, b".");
                put(buf, &mut len, frac);
            } else {
                put(buf, &mut len, b"0.");
                for _ in 0..-point {
                    put(buf, &mut len, b"0");
                }
                put(buf, &mut len, digits);
            }
        } else {
            put(buf, &mut len, &digits[..1]);
            if n > 1 {
                put(buf, &mut len, b".");
                put(buf, &mut len, &digits[1..]);
            }
            put(buf, &mut len, if adjusted >= 0 { b"E+" } else { b"E-" });
            let mut exp = [0u8; 40];
            let start = digits_u128(adjusted.unsigned_abs() as u128, &mut exp);
            put(buf, &mut len, &exp[start..]);
        }
        super::json::ascii_str(&buf[..len])
    }

    /// The shortest decimal that reads back as `v` (what a person typed), `None` for NaN/infinity.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        // `{:e}` prints the shortest round-trip digits: `1.999e1`, `-5e-324`, `0e0`.
        let text = format!("{v:e}");
        let (mantissa, exp) = text.split_once('e')?;
        let negative = mantissa.starts_with('-');
        let mantissa = mantissa.trim_start_matches('-');
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let coefficient: u128 = format!("{int}{frac}").parse().ok()?;
        let exponent: i32 = exp.parse::<i32>().ok()? - frac.len() as i32;
        Some(Decimal::Finite {
            negative,
            coefficient,
            exponent,
        })
    }
}

/// The unscaled `i128` of `value` in a `decimal(precision, scale)` column, if it holds it exactly.
///
/// Integers, decimals and doubles (by their shortest decimal form) convert; anything needing
/// rounding or more digits than `precision` does not.
pub fn to_decimal128(value: &Value<'_>, precision: u8, scale: i8) -> Option<i128> {
    let (negative, coefficient, exponent) = match *value {
        Value::Int(v) => (v < 0, v.unsigned_abs() as u128, 0),
        Value::Decimal(Decimal::Finite {
            negative,
            coefficient,
            exponent,
        }) => (negative, coefficient, exponent),
        Value::Double(v) => match Decimal::from_f64(v)? {
            Decimal::Finite {
                negative,
                coefficient,
                exponent,
            } => (negative, coefficient, exponent),
            _ => return None,
        },
        _ => return None,
    };
    let shift = exponent as i64 + scale as i64;
    let unscaled: u128 = if coefficient == 0 {
        0
    } else if shift >= 0 {
        coefficient.checked_mul(10u128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let div = 10u128.checked_pow(u32::try_from(-shift).ok()?)?;
        if coefficient % div != 0 {
            return None;
        }
        coefficient / div
    };
    let limit = 10u128.pow(precision as u32);
    if unscaled >= limit {
        return None;
    }
    let unscaled = unscaled as i128;
    Some(if negative { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(negative: bool, coefficient: u128, exponent: i32) -> Decimal {
        Decimal::Finite {
            negative,
            coefficient,
            exponent,
        }
    }

    /// The `Display` this module had before [`Decimal::text`], written with `fmt`.
    struct Reference(Decimal);

    impl fmt::Display for Reference {
        /// The IEEE 754 "to-scientific-string" form (what MongoDB prints): `1.5`, `-0.00`, `1.05E+3`.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Decimal::NaN => f.write_str("NaN"),
                Decimal::Infinity { negative } => {
                    f.write_str(if negative { "-Infinity" } else { "Infinity" })
                }
                Decimal::Finite {
                    negative,
                    coefficient,
                    exponent,
                } => {
                    if negative {
                        f.write_str("-")?;
                    }
                    // Up to 39 digits, written without allocating (most coefficients fit a u64,
                    // whose division is much cheaper than u128's).
                    let mut buf = [0u8; 40];
                    let mut i = buf.len();
                    let mut c = coefficient;
                    while c > u64::MAX as u128 {
                        i -= 1;
                        buf[i] = b'0' + (c % 10) as u8;
                        c /= 10;
                    }
                    let mut c = c as u64;
                    loop {
                        i -= 1;
                        buf[i] = b'0' + (c % 10) as u8;
                        c /= 10;
                        if c == 0 {
                            break;
                        }
                    }
                    // Only ASCII digits were written.
                    let digits = std::str::from_utf8(&buf[i..]).unwrap_or("0");
                    let n = digits.len() as i64;
                    let exponent = exponent as i64;
                    let adjusted = exponent + n - 1;
                    if exponent <= 0 && adjusted >= -6 {
                        if exponent == 0 {
                            return f.write_str(digits);
                        }
                        let point = n + exponent; // digits before the point
                        if point > 0 {
                            let (int, frac) = digits.split_at(point as usize);
                            write!(f, "{int}.{frac}")
                        } else {
                            f.write_str("0.")?;
                            for _ in 0..-point {
                                f.write_str("0")?;
                            }
                            f.write_str(digits)
                        }
                    } else {
                        let (first, rest) = digits.split_at(1);
                        f.write_str(first)?;
                        if !rest.is_empty() {
                            write!(f, ".{rest}")?;
                        }
                        write!(f, "E{}{adjusted}", if adjusted >= 0 { "+" } else { "" })
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn decimal_text_is_as_before(
            negative in proptest::prelude::any::<bool>(),
            small in 0u128..100_000,
            large in proptest::prelude::any::<u128>(),
            exponent in -40i32..40,
            any_exponent in proptest::prelude::any::<i32>(),
        ) {
            for coefficient in [small, large, large % 10u128.pow(34)] {
                for exponent in [exponent, any_exponent] {
                    let v = d(negative, coefficient, exponent);
                    let mut buf = [0u8; DECIMAL_TEXT_MAX];
                    proptest::prop_assert_eq!(v.text(&mut buf), Reference(v).to_string());
                    proptest::prop_assert_eq!(v.to_string(), Reference(v).to_string());
                }
            }
        }
    }

    #[test]
    fn decimal_text_follows_to_scientific_string() {
        // Examples from the BSON Decimal128 specification.
        let cases = [
            (d(false, 0, 0), "0"),
            (d(true, 0, 0), "-0"),
            (d(false, 1, 0), "1"),
            (d(true, 1, 0), "-1"),
            (d(false, 15, -1), "1.5"),
            (d(false, 123456789, -9), "0.123456789"),
            (d(false, 1, -6), "0.000001"),
            (d(false, 1, -7), "1E-7"),
            (d(false, 105, 1), "1.05E+3"),
            (d(false, 1, 3), "1E+3"),
            (d(false, 0, -2), "0.00"),
            (d(false, 0, 3), "0E+3"),
            (d(false, 12345, -8), "0.00012345"),
            (d(false, 12345, -12), "1.2345E-8"),
            (Decimal::NaN, "NaN"),
            (Decimal::Infinity { negative: true }, "-Infinity"),
        ];
        for (value, text) in cases {
            assert_eq!(value.to_string(), text, "{value:?}");
        }
    }

    #[test]
    fn decimals_fit_pinned_precision_exactly_or_not_at_all() {
        let v = |x: Decimal| Value::Decimal(x);
        assert_eq!(to_decimal128(&v(d(false, 1999, -2)), 18, 2), Some(1999));
        assert_eq!(to_decimal128(&v(d(true, 15, -1)), 18, 2), Some(-150));
        assert_eq!(to_decimal128(&v(d(false, 12, 3)), 18, 2), Some(1_200_000));
        // Needs rounding.
        assert_eq!(to_decimal128(&v(d(false, 1999, -3)), 18, 2), None);
        // Trailing zeros beyond the scale are fine.
        assert_eq!(to_decimal128(&v(d(false, 19990, -3)), 18, 2), Some(1999));
        // Too many digits.
        assert_eq!(to_decimal128(&v(d(false, 100, 0)), 4, 2), None);
        assert_eq!(to_decimal128(&v(d(false, 9999, -2)), 4, 2), Some(9999));
        assert_eq!(to_decimal128(&v(d(false, 1, 6000)), 38, 0), None);
        assert_eq!(to_decimal128(&v(d(false, 0, 6000)), 38, 0), Some(0));
        assert_eq!(to_decimal128(&v(Decimal::NaN), 38, 0), None);
        assert_eq!(to_decimal128(&Value::Int(-7), 5, 2), Some(-700));
        assert_eq!(
            to_decimal128(&Value::Int(i64::MIN), 38, 0),
            Some(i64::MIN as i128)
        );
        assert_eq!(to_decimal128(&Value::Double(19.99), 18, 2), Some(1999));
        assert_eq!(to_decimal128(&Value::Double(0.1), 18, 2), Some(10));
        assert_eq!(to_decimal128(&Value::Double(0.125), 18, 2), None);
        assert_eq!(to_decimal128(&Value::Double(f64::NAN), 18, 2), None);
        assert_eq!(to_decimal128(&Value::String("1"), 18, 2), None);
    }

    #[test]
    fn shortest_decimal_of_a_double() {
        assert_eq!(Decimal::from_f64(19.99), Some(d(false, 1999, -2)));
        assert_eq!(Decimal::from_f64(-0.0), Some(d(true, 0, 0)));
        assert_eq!(Decimal::from_f64(1e300), Some(d(false, 1, 300)));
        assert_eq!(Decimal::from_f64(f64::INFINITY), None);
    }
}
