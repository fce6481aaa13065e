//! Cell values of a replicated table, comparable and printable, independent of Arrow's types.
//!
//! Tests compare replicated rows with what they wrote; [`Value`] makes a cell of any supported Arrow
//! type an ordinary Rust value with `Eq` and `Ord` (floats compare by their bits, so `NaN == NaN`).

use std::collections::BTreeMap;
use std::fmt;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array,
    Decimal128Array, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
    UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow::datatypes::{DataType, TimeUnit};

/// One cell.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// SQL NULL (also: the column was missing from the file that wrote the row).
    Null,
    /// A boolean.
    Bool(bool),
    /// Any signed integer.
    Int(i64),
    /// Any unsigned integer.
    UInt(u64),
    /// A float, by its IEEE bits (so it has `Eq`); see [`Value::float`].
    Float(u64),
    /// Text.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A decimal: unscaled value and scale.
    Decimal(i128, i8),
    /// Days since 1970-01-01.
    Date(i64),
    /// A timestamp in microseconds since the epoch (any unit is converted).
    TimestampMicros(i64),
}

impl Value {
    /// A float value.
    pub fn float(f: f64) -> Value {
        Value::Float(f.to_bits())
    }

    /// The float, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(bits) => Some(f64::from_bits(*bits)),
            _ => None,
        }
    }

    /// The value of row `row` of `array`; `None` for an unsupported Arrow type.
    pub fn from_array(array: &ArrayRef, row: usize) -> Option<Value> {
        if array.is_null(row) {
            return Some(Value::Null);
        }
        let any = array.as_any();
        macro_rules! get {
            ($t:ty) => {
                any.downcast_ref::<$t>()?.value(row)
            };
        }
        Some(match array.data_type() {
            DataType::Null => Value::Null,
            DataType::Boolean => Value::Bool(get!(BooleanArray)),
            DataType::Int8 => Value::Int(get!(Int8Array).into()),
            DataType::Int16 => Value::Int(get!(Int16Array).into()),
            DataType::Int32 => Value::Int(get!(Int32Array).into()),
            DataType::Int64 => Value::Int(get!(Int64Array)),
            DataType::UInt8 => Value::UInt(get!(UInt8Array).into()),
            DataType::UInt16 => Value::UInt(get!(UInt16Array).into()),
            DataType::UInt32 => Value::UInt(get!(UInt32Array).into()),
            DataType::UInt64 => Value::UInt(get!(UInt64Array)),
            DataType::Float32 => Value::float(get!(Float32Array).into()),
            DataType::Float64 => Value::float(get!(Float64Array)),
            DataType::Utf8 => Value::Str(get!(StringArray).to_owned()),
            DataType::LargeUtf8 => Value::Str(get!(LargeStringArray).to_owned()),
            DataType::Utf8View => Value::Str(get!(StringViewArray).to_owned()),
            DataType::Binary => Value::Bytes(get!(BinaryArray).to_vec()),
            DataType::LargeBinary => Value::Bytes(get!(LargeBinaryArray).to_vec()),
            DataType::BinaryView => Value::Bytes(get!(BinaryViewArray).to_vec()),
            DataType::FixedSizeBinary(_) => Value::Bytes(get!(FixedSizeBinaryArray).to_vec()),
            DataType::Date32 => Value::Date(get!(Date32Array).into()),
            DataType::Date64 => Value::Date(get!(Date64Array) / 86_400_000),
            DataType::Decimal128(_, scale) => Value::Decimal(get!(Decimal128Array), *scale),
            DataType::Timestamp(unit, _) => {
                let raw = match unit {
                    TimeUnit::Second => {
                        { array.as_primitive::<arrow::datatypes::TimestampSecondType>() }.value(row)
                            * 1_000_000
                    }
                    TimeUnit::Millisecond => {
                        array
                            .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                            .value(row)
                            * 1_000
                    }
                    TimeUnit::Microsecond => array
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .value(row),
                    TimeUnit::Nanosecond => {
                        array
                            .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                            .value(row)
                            / 1_000
                    }
                };
                Value::TimestampMicros(raw)
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(
                f,
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            Value::Decimal(v, s) => write!(f, "{v}e-{s}"),
            Value::Date(d) => write!(f, "date({d})"),
            Value::TimestampMicros(t) => write!(f, "ts({t}us)"),
        }
    }
}

/// One row: column name to value. Columns absent from the map are NULL.
pub type Row = BTreeMap<String, Value>;

/// The Delta/Fabric type a Parquet column of this Arrow type becomes; two Arrow types with the same
/// name here are the same column type to Fabric (e.g. `Utf8` and `LargeUtf8` are both `string`).
pub fn delta_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "byte".into(),
        DataType::Int16 => "short".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "long".into(),
        DataType::UInt8 => "short".into(),
        DataType::UInt16 => "integer".into(),
        DataType::UInt32 => "long".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        other => format!("unsupported({other})"),
    }
}
