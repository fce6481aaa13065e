//! The column-type guard: one type per column of a table, for the table's whole life.
//!
//! Fabric stops replicating a table whose column changes type, so the sink decides each column's
//! type the first time it sees it, records it (in the table's `_mirror_table.json`, before the first
//! file that holds the column is published) and from then on:
//! - casts a batch's column to the recorded type when that loses nothing (wider integers,
//!   `float32` to `float64`, a wider decimal of the same scale, a finer timestamp unit, any string or
//!   binary flavour to the plain one);
//! - refuses anything else with [`SchemaError::TypeChange`], a permanent error, before any file is
//!   written: a stopped route is visible and recoverable; a stalled Fabric table is neither.
//!
//! Column types written (the Parquet logical type follows from the Arrow type):
//!
//! | Arrow types accepted | written as | recorded as |
//! |---|---|---|
//! | Boolean | Boolean | `boolean` |
//! | Int8, Int16, Int32, Int64 | same | `int8` ... `int64` |
//! | Float32, Float64 | same | `float32`, `float64` |
//! | Utf8, LargeUtf8, Utf8View, Dictionary(_, Utf8) | Utf8 | `string` |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | Binary | `binary` |
//! | Date32, Date64 | Date32 | `date` |
//! | Timestamp(s/ms, tz) | Timestamp(ms, tz) | `timestamp(ms)` or `timestamp(ms,utc)` |
//! | Timestamp(us/ns, tz) | Timestamp(us, tz) (ns truncated) | `timestamp(us)` or `timestamp(us,utc)` |
//! | Decimal32/64/128/256 with precision <= 38 | Decimal128 | `decimal(p,s)` |
//! | Null (a column with no type yet) | left out of the file | nothing (NULL in Fabric) |
//!
//! Unsigned integers, times of day, durations, intervals and nested types are refused: Open
//! Mirroring takes simple types only, and nested values must reach the sink as JSON strings. Every
//! column is written nullable (delete rows carry only their key).

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

/// The row-marker column's name.
pub const ROW_MARKER: &str = "__rowMarker__";

/// Why a batch does not fit its table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A column would change type.
    #[error(
        "column `{column}` of table `{table}` was written as {existing} and now arrives as {found}; \
         Fabric stops a table whose column changes type, so nothing was written. Pin the column's \
         type in the source mapping, or write it under a new name"
    )]
    TypeChange {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The recorded type.
        existing: String,
        /// The incoming Arrow type.
        found: String,
    },
    /// A type Open Mirroring cannot take.
    #[error("column `{column}` of table `{table}` has type {found}, which the sink cannot write: {hint}")]
    Unsupported {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The Arrow type.
        found: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// The column name is reserved or repeated.
    #[error("table `{table}`: {message}")]
    BadColumn {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// Arrow could not cast a column (a bug: only lossless casts are attempted).
    #[error("table `{table}`: casting column `{column}`: {message}")]
    Cast {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Arrow's message.
        message: String,
    },
}

/// A column's recorded type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownColumn {
    /// The column name.
    pub name: String,
    /// The recorded type, e.g. `int64`, `decimal(18,2)`, `timestamp(ms,utc)`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// The recorded type of an Arrow type and the Arrow type it is written as; `Ok(None)` for Null.
pub fn column_type(dt: &DataType) -> Result<Option<(String, DataType)>, &'static str> {
    const NESTED: &str = "nested values must be converted to JSON strings before the sink";
    Ok(Some(match dt {
        DataType::Null => return Ok(None),
        DataType::Boolean => ("boolean".into(), DataType::Boolean),
        DataType::Int8 => ("int8".into(), DataType::Int8),
        DataType::Int16 => ("int16".into(), DataType::Int16),
        DataType::Int32 => ("int32".into(), DataType::Int32),
        DataType::Int64 => ("int64".into(), DataType::Int64),
        DataType::Float32 => ("float32".into(), DataType::Float32),
        DataType::Float64 => ("float64".into(), DataType::Float64),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ("string".into(), DataType::Utf8)
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("binary".into(), DataType::Binary),
        DataType::Date32 | DataType::Date64 => ("date".into(), DataType::Date32),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second | TimeUnit::Millisecond => TimeUnit::Millisecond,
                TimeUnit::Microsecond | TimeUnit::Nanosecond => TimeUnit::Microsecond,
            };
            let u = if unit == TimeUnit::Millisecond {
                "ms"
            } else {
                "us"
            };
            match tz {
                Some(_) => (
                    format!("timestamp({u},utc)"),
                    DataType::Timestamp(unit, Some("UTC".into())),
                ),
                None => (format!("timestamp({u})"), DataType::Timestamp(unit, None)),
            }
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *p > 38 {
                return Err("decimals wider than 38 digits do not fit Fabric; use a string");
            }
            (format!("decimal({p},{s})"), DataType::Decimal128(*p, *s))
        }
        DataType::Dictionary(_, value) => return column_type(value),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(
                "Fabric has no unsigned integers; cast to a wider signed integer or decimal",
            )
        }
        DataType::Float16 => return Err("half floats are not supported; cast to float32"),
        DataType::Time32(_) | DataType::Time64(_) => {
            return Err("times of day are not supported by Open Mirroring; use a string")
        }
        DataType::Duration(_) | DataType::Interval(_) => {
            return Err("durations and intervals are not supported; use an integer")
        }
        _ => return Err(NESTED),
    }))
}

/// The Arrow type a recorded type is written as.
pub fn storage_type(type_name: &str) -> Option<DataType> {
    let simple = match type_name {
        "boolean" => Some(DataType::Boolean),
        "int8" => Some(DataType::Int8),
        "int16" => Some(DataType::Int16),
        "int32" => Some(DataType::Int32),
        "int64" => Some(DataType::Int64),
        "float32" => Some(DataType::Float32),
        "float64" => Some(DataType::Float64),
        "string" => Some(DataType::Utf8),
        "binary" => Some(DataType::Binary),
        "date" => Some(DataType::Date32),
        "timestamp(ms)" => Some(DataType::Timestamp(TimeUnit::Millisecond, None)),
        "timestamp(us)" => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
        "timestamp(ms,utc)" => Some(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        )),
        "timestamp(us,utc)" => Some(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        _ => None,
    };
    if simple.is_some() {
        return simple;
    }
    let inner = type_name.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some(DataType::Decimal128(
        p.trim().parse().ok()?,
        s.trim().parse().ok()?,
    ))
}

/// Whether a value of recorded type `from` always fits recorded type `to` unchanged.
fn widens_to(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_width = |d: &DataType| match d {
        Int8 => Some(8),
        Int16 => Some(16),
        Int32 => Some(32),
        Int64 => Some(64),
        _ => None,
    };
    match (from, to) {
        (a, b) if a == b => true,
        (a, b) if int_width(a).is_some() && int_width(b).is_some() => int_width(a) <= int_width(b),
        (Float32, Float64) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s1 == s2 && p1 <= p2,
        (Timestamp(TimeUnit::Millisecond, t1), Timestamp(TimeUnit::Microsecond, t2)) => {
            t1.is_some() == t2.is_some()
        }
        _ => false,
    }
}

/// The columns of one table and their recorded types, in the order they first appeared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSchema {
    table: String,
    columns: Vec<(KnownColumn, DataType)>,
}

/// A batch made to fit its table: columns cast to the recorded types, Null columns left out.
#[derive(Clone, Debug)]
pub struct ConformedBatch {
    /// The rows.
    pub rows: RecordBatch,
    /// Columns this batch adds to the table.
    pub new_columns: Vec<KnownColumn>,
}

impl TableSchema {
    /// A table with no columns yet.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            columns: Vec::new(),
        }
    }

    /// A table with recorded columns (from its state file); unknown type names are an error.
    pub fn from_known(table: impl Into<String>, known: &[KnownColumn]) -> Result<Self, String> {
        let mut schema = Self::new(table);
        for k in known {
            let dt = storage_type(&k.type_name)
                .ok_or_else(|| format!("unknown column type `{}` for `{}`", k.type_name, k.name))?;
            schema.columns.push((k.clone(), dt));
        }
        Ok(schema)
    }

    /// The recorded columns.
    pub fn known(&self) -> Vec<KnownColumn> {
        self.columns.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The Arrow type column `name` is written as.
    pub fn storage(&self, name: &str) -> Option<&DataType> {
        self.columns
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, d)| d)
    }

    /// Column names in table order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(k, _)| k.name.as_str())
    }

    /// Fits `rows` to the table, recording new columns; nothing changes if it fails.
    pub fn conform(&mut self, rows: &RecordBatch) -> Result<ConformedBatch, SchemaError> {
        let schema = rows.schema();
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut new_columns: Vec<(KnownColumn, DataType)> = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let name = field.name();
            if name == ROW_MARKER {
                return Err(SchemaError::BadColumn {
                    table: self.table.clone(),
                    message: format!("`{ROW_MARKER}` is reserved for the row marker"),
                });
            }
            if schema.fields()[..i].iter().any(|f| f.name() == name) {
                return Err(SchemaError::BadColumn {
                    table: self.table.clone(),
                    message: format!("column `{name}` appears twice"),
                });
            }
            let Some((type_name, storage)) =
                column_type(field.data_type()).map_err(|hint| SchemaError::Unsupported {
                    table: self.table.clone(),
                    column: name.clone(),
                    found: field.data_type().to_string(),
                    hint,
                })?
            else {
                continue; // A Null column: nothing to write, nothing to record.
            };
            let target = match self.storage(name) {
                Some(existing) => {
                    if !widens_to(&storage, existing) {
                        let existing_name = self
                            .columns
                            .iter()
                            .find(|(k, _)| &k.name == name)
                            .map(|(k, _)| k.type_name.clone())
                            .unwrap_or_default();
                        return Err(SchemaError::TypeChange {
                            table: self.table.clone(),
                            column: name.clone(),
                            existing: existing_name,
                            found: field.data_type().to_string(),
                        });
                    }
                    existing.clone()
                }
                None => {
                    new_columns.push((
                        KnownColumn {
                            name: name.clone(),
                            type_name,
                        },
                        storage.clone(),
                    ));
                    storage
                }
            };
            let column = rows.column(i);
            let array = if column.data_type() == &target {
                column.clone()
            } else {
                cast(column, &target).map_err(|e| SchemaError::Cast {
                    table: self.table.clone(),
                    column: name.clone(),
                    message: e.to_string(),
                })?
            };
            fields.push(Field::new(name, target, true));
            arrays.push(array);
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        let rows =
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
                .map_err(|e| SchemaError::Cast {
                    table: self.table.clone(),
                    column: String::new(),
                    message: e.to_string(),
                })?;
        let added = new_columns.iter().map(|(k, _)| k.clone()).collect();
        self.columns.extend(new_columns);
        Ok(ConformedBatch {
            rows,
            new_columns: added,
        })
    }

    /// `rows` (already conformed) with exactly `columns`, in that order; missing ones are NULL.
    pub fn project(
        &self,
        rows: &RecordBatch,
        columns: &[&str],
    ) -> Result<RecordBatch, SchemaError> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays = Vec::with_capacity(columns.len());
        for name in columns {
            let dt = self.storage(name).cloned().unwrap_or(DataType::Null);
            let array = match rows.column_by_name(name) {
                Some(a) => a.clone(),
                None => new_null_array(&dt, rows.num_rows()),
            };
            fields.push(Field::new(*name, dt, true));
            arrays.push(array);
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options).map_err(
            |e| SchemaError::Cast {
                table: self.table.clone(),
                column: String::new(),
                message: e.to_string(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, LargeStringArray, NullArray, StringArray};

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn widening_is_cast_and_narrowing_or_changing_is_refused() {
        let mut s = TableSchema::new("t");
        let b = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("n", Arc::new(NullArray::new(1))),
        ]);
        let c = s.conform(&b).unwrap();
        assert_eq!(
            c.new_columns,
            vec![KnownColumn {
                name: "id".into(),
                type_name: "int64".into()
            }]
        );
        assert_eq!(c.rows.num_columns(), 1, "Null columns are left out");

        let narrower = batch(vec![(
            "id",
            Arc::new(Int32Array::from(vec![2])) as ArrayRef,
        )]);
        let c = s.conform(&narrower).unwrap();
        assert_eq!(c.rows.column(0).data_type(), &DataType::Int64);

        let text = batch(vec![(
            "id",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        )]);
        let err = s.conform(&text).unwrap_err();
        assert!(
            matches!(err, SchemaError::TypeChange { ref existing, .. } if existing == "int64"),
            "{err}"
        );

        let mut s = TableSchema::new("t");
        s.conform(&batch(vec![(
            "v",
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )]))
        .unwrap();
        let wider = batch(vec![("v", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
        assert!(matches!(
            s.conform(&wider),
            Err(SchemaError::TypeChange { .. })
        ));
    }

    #[test]
    fn string_flavours_are_one_type_and_round_trip_through_the_state() {
        let mut s = TableSchema::new("t");
        s.conform(&batch(vec![(
            "s",
            Arc::new(LargeStringArray::from(vec!["a"])) as ArrayRef,
        )]))
        .unwrap();
        let c = s
            .conform(&batch(vec![(
                "s",
                Arc::new(StringArray::from(vec!["b"])) as ArrayRef,
            )]))
            .unwrap();
        assert!(c.new_columns.is_empty());
        assert_eq!(c.rows.column(0).data_type(), &DataType::Utf8);
        let restored = TableSchema::from_known("t", &s.known()).unwrap();
        assert_eq!(restored, s);
        for name in [
            "decimal(18,2)",
            "timestamp(ms,utc)",
            "date",
            "binary",
            "int16",
        ] {
            let dt = storage_type(name).unwrap();
            assert_eq!(column_type(&dt).unwrap().unwrap().0, name);
        }
    }

    #[test]
    fn unsupported_and_reserved_columns_are_refused() {
        let mut s = TableSchema::new("t");
        let u = batch(vec![(
            "u",
            Arc::new(arrow::array::UInt32Array::from(vec![1])) as ArrayRef,
        )]);
        assert!(matches!(
            s.conform(&u),
            Err(SchemaError::Unsupported { .. })
        ));
        let m = batch(vec![(
            ROW_MARKER,
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )]);
        assert!(matches!(s.conform(&m), Err(SchemaError::BadColumn { .. })));
        assert!(s.known().is_empty());
    }
}
