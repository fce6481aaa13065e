//! Column types: what a column holds, which values fit it, and how a type is inferred from values.
//!
//! A [`ColumnType`] is a *logical* type: it fixes the Arrow type of the column and also which kind of
//! source value the column holds. Several logical types share the Arrow type `Utf8` (plain strings,
//! object ids, UUIDs, decimal text, JSON, Extended JSON forms) and stay distinct, so that a column
//! never mixes, say, 24-hex object ids with strings that look the same: a value of another kind goes
//! to the table's overflow column instead, where its type is kept.
//!
//! The text form (`"int64"`, `"decimal(18,2)"`, ...) is used both in `mirror.toml` (`types = { ... }`)
//! and in the table's checkpoint state.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::value::{Value, ValueKind};

/// Largest decimal precision Open Mirroring accepts (and Arrow's `Decimal128` holds).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The logical type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `string`: text values (`Utf8`).
    String,
    /// `objectid`: 12-byte object ids as 24 lowercase hex digits (`Utf8`).
    ObjectId,
    /// `uuid`: UUIDs in canonical 8-4-4-4-12 form (`Utf8`).
    Uuid,
    /// `decimal`: decimal numbers as text, exactly as the source wrote them (`Utf8`).
    DecimalText,
    /// `extjson`: values without a column type of their own (timestamps of the source's replication
    /// clock, regular expressions, code, min/max keys, ...) as MongoDB Extended JSON text (`Utf8`).
    ExtJson,
    /// `json`: any value as JSON text (`Utf8`); sub-documents and arrays by default.
    Json,
    /// `int64`.
    Int64,
    /// `double` (`Float64`).
    Double,
    /// `bool`.
    Bool,
    /// `timestamp`: milliseconds since the epoch, UTC.
    Timestamp,
    /// `binary`.
    Binary,
    /// `decimal(p,s)`: only when pinned.
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, 0..=precision.
        scale: i8,
    },
}

impl ColumnType {
    /// The Arrow type of the column.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::String
            | ColumnType::ObjectId
            | ColumnType::Uuid
            | ColumnType::DecimalText
            | ColumnType::ExtJson
            | ColumnType::Json => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Binary => DataType::Binary,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        }
    }

    /// The column type a value of `kind` gets when nothing is pinned; `None` for nulls, which
    /// give no type.
    pub fn natural(kind: ValueKind) -> Option<ColumnType> {
        Some(match kind {
            ValueKind::Null => return None,
            ValueKind::Bool => ColumnType::Bool,
            ValueKind::Int => ColumnType::Int64,
            ValueKind::Double => ColumnType::Double,
            ValueKind::Decimal => ColumnType::DecimalText,
            ValueKind::Timestamp => ColumnType::Timestamp,
            ValueKind::Binary => ColumnType::Binary,
            ValueKind::String => ColumnType::String,
            ValueKind::ObjectId => ColumnType::ObjectId,
            ValueKind::Uuid => ColumnType::Uuid,
            ValueKind::ExtJson => ColumnType::ExtJson,
            ValueKind::Json => ColumnType::Json,
        })
    }

    /// Whether the column stores any value as JSON text (the reader renders values as JSON for it).
    pub fn is_json(&self) -> bool {
        matches!(self, ColumnType::Json)
    }

    /// Whether `value` can be stored in this column without losing anything; values that do not fit
    /// go to the overflow column. Nulls fit every column.
    pub fn accepts(&self, value: &Value<'_>) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (ColumnType::Json, Value::Json(_)) => true,
            (ColumnType::String, Value::String(_))
            | (ColumnType::ObjectId, Value::ObjectId(_))
            | (ColumnType::Uuid, Value::Uuid(_))
            | (ColumnType::DecimalText, Value::Decimal(_))
            | (ColumnType::ExtJson, Value::ExtJson(_))
            | (ColumnType::Int64, Value::Int(_))
            | (ColumnType::Double, Value::Double(_))
            | (ColumnType::Bool, Value::Bool(_))
            | (ColumnType::Timestamp, Value::Timestamp(_))
            | (ColumnType::Binary, Value::Binary(_)) => true,
            (ColumnType::Double, Value::Int(v)) => int_fits_double(*v),
            (ColumnType::Decimal { precision, scale }, v) => {
                super::value::to_decimal128(v, *precision, *scale).is_some()
            }
            _ => false,
        }
    }
}

/// Whether a double holds `v` exactly (every integer up to 2^53 in magnitude, and some beyond).
pub fn int_fits_double(v: i64) -> bool {
    let f = v as f64;
    // i64::MAX rounds up to 2^63, which `as i64` would saturate back to i64::MAX: compare in i128.
    f as i128 == v as i128
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::ObjectId => f.write_str("objectid"),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::DecimalText => f.write_str("decimal"),
            ColumnType::ExtJson => f.write_str("extjson"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Int64 => f.write_str("int64"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

/// Why a text is not a column type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnTypeError {
    /// Not a known type name.
    #[error("unknown column type `{0}` (expected one of: string, int64, double, bool, timestamp, binary, decimal(p,s), json, objectid, uuid, decimal, extjson)")]
    Unknown(String),
    /// `decimal(p,s)` with a precision or scale out of range.
    #[error("`{0}`: decimal precision must be 1..=38 and scale 0..=precision")]
    DecimalRange(String),
}

impl FromStr for ColumnType {
    type Err = ColumnTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let lower = text.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "string" | "utf8" => ColumnType::String,
            "objectid" => ColumnType::ObjectId,
            "uuid" => ColumnType::Uuid,
            "decimal" => ColumnType::DecimalText,
            "extjson" => ColumnType::ExtJson,
            "json" => ColumnType::Json,
            "int64" | "long" => ColumnType::Int64,
            "double" | "float64" => ColumnType::Double,
            "bool" | "boolean" => ColumnType::Bool,
            "timestamp" => ColumnType::Timestamp,
            "binary" => ColumnType::Binary,
            _ => {
                let inner = lower
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| ColumnTypeError::Unknown(text.to_owned()))?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| ColumnTypeError::Unknown(text.to_owned()))?;
                let range = || ColumnTypeError::DecimalRange(text.to_owned());
                let precision: u8 = p.trim().parse().map_err(|_| range())?;
                let scale: i8 = sc.trim().parse().map_err(|_| range())?;
                if precision == 0
                    || precision > MAX_DECIMAL_PRECISION
                    || scale < 0
                    || scale as u8 > precision
                {
                    return Err(range());
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Counts the kinds of values seen for one field and infers its column type.
///
/// Rules: nulls give no type; integers and doubles together give `double`; otherwise the kind seen
/// most often wins, ties going to the kind seen first. Values of other kinds then go to overflow.
#[derive(Clone, Debug, Default)]
pub struct Inference {
    counts: [u64; ValueKind::COUNT],
    first_seen: [u64; ValueKind::COUNT],
    seen: u64,
}

impl Inference {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one value's kind.
    pub fn observe(&mut self, kind: ValueKind) {
        if kind == ValueKind::Null {
            return;
        }
        let i = kind as usize;
        self.seen += 1;
        if self.counts[i] == 0 {
            self.first_seen[i] = self.seen;
        }
        self.counts[i] += 1;
    }

    /// Whether a non-null value was seen.
    pub fn has_values(&self) -> bool {
        self.seen > 0
    }

    /// The inferred type, `None` if only nulls were seen.
    pub fn infer(&self) -> Option<ColumnType> {
        let mut counts = self.counts;
        let mut first = self.first_seen;
        let (int, dbl) = (ValueKind::Int as usize, ValueKind::Double as usize);
        if counts[int] > 0 && counts[dbl] > 0 {
            counts[dbl] += counts[int];
            first[dbl] = first[dbl].min(first[int]);
            counts[int] = 0;
        }
        let mut best: Option<usize> = None;
        for i in 0..ValueKind::COUNT {
            if counts[i] == 0 {
                continue;
            }
            best = match best {
                Some(b)
                    if counts[b] > counts[i] || (counts[b] == counts[i] && first[b] < first[i]) =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        best.and_then(|i| ColumnType::natural(ValueKind::ALL[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for text in [
            "string",
            "objectid",
            "uuid",
            "decimal",
            "extjson",
            "json",
            "int64",
            "double",
            "bool",
            "timestamp",
            "binary",
            "decimal(18,2)",
            "decimal(38,0)",
        ] {
            let t: ColumnType = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "Decimal( 10 , 3 )".parse::<ColumnType>().unwrap(),
            ColumnType::Decimal {
                precision: 10,
                scale: 3
            }
        );
        assert_eq!(
            "decimal(39,2)".parse::<ColumnType>().unwrap_err(),
            ColumnTypeError::DecimalRange("decimal(39,2)".into())
        );
        assert!(matches!(
            "decimal(5,6)".parse::<ColumnType>(),
            Err(ColumnTypeError::DecimalRange(_))
        ));
        assert!(matches!(
            "int32".parse::<ColumnType>(),
            Err(ColumnTypeError::Unknown(_))
        ));
    }

    #[test]
    fn ints_and_doubles_infer_double_and_majority_wins_otherwise() {
        let infer = |kinds: &[ValueKind]| {
            let mut i = Inference::new();
            kinds.iter().for_each(|k| i.observe(*k));
            i.infer()
        };
        use ValueKind::*;
        assert_eq!(infer(&[]), None);
        assert_eq!(infer(&[Null, Null]), None);
        assert_eq!(infer(&[Int, Null, Int]), Some(ColumnType::Int64));
        assert_eq!(infer(&[Int, Int, Double]), Some(ColumnType::Double));
        assert_eq!(infer(&[String, Int, Int]), Some(ColumnType::Int64));
        // A tie goes to the kind seen first.
        assert_eq!(infer(&[String, Bool]), Some(ColumnType::String));
        assert_eq!(infer(&[Bool, String]), Some(ColumnType::Bool));
        // Ints join doubles before the majority vote.
        assert_eq!(
            infer(&[String, String, Int, Double]),
            Some(ColumnType::String)
        );
        assert_eq!(
            infer(&[String, String, Int, Double, Double]),
            Some(ColumnType::Double)
        );
    }

    #[test]
    fn ints_fit_doubles_only_when_exact() {
        assert!(int_fits_double(0));
        assert!(int_fits_double(1 << 53));
        assert!(int_fits_double(-(1 << 53)));
        assert!(!int_fits_double((1 << 53) + 1));
        assert!(int_fits_double(1 << 62));
        assert!(!int_fits_double(i64::MAX));
        assert!(int_fits_double(i64::MIN));
        let col = ColumnType::Double;
        assert!(col.accepts(&Value::Int(3)));
        assert!(!col.accepts(&Value::Int(i64::MAX)));
        assert!(!col.accepts(&Value::String("3")));
        assert!(ColumnType::Json.accepts(&Value::Json("3")));
        assert!(!ColumnType::Json.accepts(&Value::Int(3)));
        assert!(!ColumnType::String.accepts(&Value::ObjectId("00")));
        assert!(ColumnType::Int64.accepts(&Value::Null));
    }
}
