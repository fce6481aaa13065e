//! Building a table's Arrow batch row by row from classified values, with the overflow column.
//!
//! A reader starts a row, appends each field's [`Value`] to the field's column and ends the row
//! with its key. A value the column does not accept is refused ([`Misfit`]); the reader then adds the
//! field to the row's overflow object (JSON text of the non-fitting fields, keyed by field path) and
//! the typed column keeps NULL for that row. Columns a row does not mention are NULL. The finished
//! batch has the table's full column set ([`TableSchemaState::arrow_schema`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::error::ArrowError;

use super::json::write_json_string;
use super::state::TableSchemaState;
use super::types::ColumnType;
use super::value::{to_decimal128, Value, DECIMAL_TEXT_MAX};

/// Why a value was not appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    /// The column's type does not hold the value (or not exactly).
    #[error("does not fit the column's type")]
    Type,
    /// The row already has a value for this column (a repeated field name in one document).
    #[error("the row already has a value for this column")]
    Repeated,
}

enum ColumnBuilder {
    Utf8(ColumnType, StringBuilder),
    Int64(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
    Timestamp(TimestampMillisecondBuilder),
    Binary(BinaryBuilder),
    Decimal(u8, i8, Decimal128Builder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType, capacity: usize) -> Result<Self, ArrowError> {
        Self::sized(ty, capacity, capacity * 8)
    }

    /// A builder for `rows` rows and, for text and binary, `bytes` bytes of values.
    fn sized(ty: ColumnType, capacity: usize, bytes: usize) -> Result<Self, ArrowError> {
        Ok(match ty {
            ColumnType::String
            | ColumnType::ObjectId
            | ColumnType::Uuid
            | ColumnType::DecimalText
            | ColumnType::ExtJson
            | ColumnType::Json => {
                ColumnBuilder::Utf8(ty, StringBuilder::with_capacity(capacity, bytes))
            }
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            ColumnType::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, bytes))
            }
            ColumnType::Decimal { precision, scale } => ColumnBuilder::Decimal(
                precision,
                scale,
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)?,
            ),
        })
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Utf8(_, b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Double(b) => b.len(),
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
            ColumnBuilder::Binary(b) => b.len(),
            ColumnBuilder::Decimal(_, _, b) => b.len(),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            ColumnBuilder::Utf8(_, b) => b.append_nulls(n),
            ColumnBuilder::Int64(b) => b.append_nulls(n),
            ColumnBuilder::Double(b) => b.append_nulls(n),
            ColumnBuilder::Bool(b) => b.append_nulls(n),
            ColumnBuilder::Timestamp(b) => b.append_nulls(n),
            ColumnBuilder::Binary(b) => b.append_nulls(n),
            ColumnBuilder::Decimal(_, _, b) => b.append_nulls(n),
        }
    }

    /// Appends `value` if it fits; leaves the builder unchanged otherwise.
    #[inline]
    fn append(&mut self, value: Value<'_>) -> Result<(), Misfit> {
        match (self, value) {
            (b, Value::Null) => b.append_nulls(1),
            (ColumnBuilder::Utf8(ty, b), v) => match (*ty, v) {
                (ColumnType::String, Value::String(s))
                | (ColumnType::ObjectId, Value::ObjectId(s))
                | (ColumnType::Uuid, Value::Uuid(s))
                | (ColumnType::ExtJson, Value::ExtJson(s))
                | (ColumnType::Json, Value::Json(s)) => b.append_value(s),
                (ColumnType::DecimalText, Value::Decimal(d)) => {
                    b.append_value(d.text(&mut [0u8; DECIMAL_TEXT_MAX]))
                }
                _ => return Err(Misfit::Type),
            },
            (ColumnBuilder::Int64(b), Value::Int(v)) => b.append_value(v),
            (ColumnBuilder::Double(b), Value::Double(v)) => b.append_value(v),
            (ColumnBuilder::Double(b), Value::Int(v)) if super::types::int_fits_double(v) => {
                b.append_value(v as f64)
            }
            (ColumnBuilder::Bool(b), Value::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Value::Timestamp(v)) => b.append_value(v),
            (ColumnBuilder::Binary(b), Value::Binary(v)) => b.append_value(v),
            (ColumnBuilder::Decimal(p, s, b), v) => match to_decimal128(&v, *p, *s) {
                Some(unscaled) => b.append_value(unscaled),
                None => return Err(Misfit::Type),
            },
            _ => return Err(Misfit::Type),
        }
        Ok(())
    }

    /// Bytes of text or binary values so far (0 for fixed-width columns).
    fn value_bytes(&self) -> usize {
        match self {
            ColumnBuilder::Utf8(_, b) => b.values_slice().len(),
            ColumnBuilder::Binary(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    fn column_type(&self) -> ColumnType {
        match self {
            ColumnBuilder::Utf8(ty, _) => *ty,
            ColumnBuilder::Int64(_) => ColumnType::Int64,
            ColumnBuilder::Double(_) => ColumnType::Double,
            ColumnBuilder::Bool(_) => ColumnType::Bool,
            ColumnBuilder::Timestamp(_) => ColumnType::Timestamp,
            ColumnBuilder::Binary(_) => ColumnType::Binary,
            ColumnBuilder::Decimal(precision, scale, _) => ColumnType::Decimal {
                precision: *precision,
                scale: *scale,
            },
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(_, b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(_, _, b) => Arc::new(b.finish()),
        }
    }
}

/// The least room a fresh builder is given after a batch.
const MIN_ROWS: usize = 16;

/// Builds one batch of a table. See the module docs.
pub struct BatchBuilder {
    key: StringBuilder,
    columns: Vec<ColumnBuilder>,
    overflow: StringBuilder,
    row_overflow: String,
    rows: usize,
    in_row: bool,
    capacity: usize,
}

impl BatchBuilder {
    /// A builder for the columns of `state`, sized for `capacity` rows.
    pub fn new(state: &TableSchemaState, capacity: usize) -> Result<Self, ArrowError> {
        let mut b = Self {
            key: StringBuilder::with_capacity(capacity, capacity * 24),
            columns: Vec::new(),
            overflow: StringBuilder::new(),
            row_overflow: String::new(),
            rows: 0,
            in_row: false,
            capacity,
        };
        b.sync_columns(state)?;
        Ok(b)
    }

    /// Adds builders for columns added to `state` since the last call.
    pub fn sync_columns(&mut self, state: &TableSchemaState) -> Result<(), ArrowError> {
        for c in &state.columns()[self.columns.len()..] {
            self.columns
                .push(ColumnBuilder::new(c.ty, self.capacity.max(self.rows))?);
        }
        Ok(())
    }

    /// Rows ended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Starts a row.
    pub fn begin_row(&mut self) {
        debug_assert!(!self.in_row, "begin_row inside a row");
        self.in_row = true;
    }

    /// Appends the value of column `column` (an index into the state's columns) to the current row.
    #[inline]
    pub fn append(&mut self, column: usize, value: Value<'_>) -> Result<(), Misfit> {
        let row = self.rows;
        let b = &mut self.columns[column];
        let len = b.len();
        if len > row {
            return Err(Misfit::Repeated);
        }
        if len < row {
            b.append_nulls(row - len);
        }
        b.append(value)
    }

    /// Adds a field that did not fit to the current row's overflow object; `json` is the value as
    /// JSON text.
    pub fn add_overflow(&mut self, field: &str, json: &str) {
        self.row_overflow.push(if self.row_overflow.is_empty() {
            '{'
        } else {
            ','
        });
        write_json_string(&mut self.row_overflow, field);
        self.row_overflow.push(':');
        self.row_overflow.push_str(json);
    }

    /// Ends the current row with its key (readers often find the key while reading the row).
    pub fn end_row(&mut self, key: &str) {
        debug_assert!(self.in_row, "end_row outside a row");
        self.key.append_value(key);
        if self.row_overflow.is_empty() {
            self.overflow.append_null();
        } else {
            self.row_overflow.push('}');
            self.overflow.append_value(&self.row_overflow);
            self.row_overflow.clear();
        }
        self.rows += 1;
        self.in_row = false;
    }

    /// The rows so far as a batch with the full column set of `state`; the builder is then empty.
    pub fn finish(&mut self, state: &TableSchemaState) -> Result<RecordBatch, ArrowError> {
        if self.in_row {
            return Err(ArrowError::InvalidArgumentError(
                "finish called inside a row".into(),
            ));
        }
        self.sync_columns(state)?;
        let rows = self.rows;
        // The next batch is likely the size of this one: size the fresh builders for it, so that
        // appends do not grow (and copy) buffers again and again. Not larger: a batch keeps its
        // builders' buffers, so a change-stream batch of 10 rows built with room for 1,024 would
        // hold ~100 times its data until its file is published (and count as that much in the
        // sink's file-size budget, cutting files early).
        let next_rows = rows.max(MIN_ROWS);
        self.capacity = next_rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
        let key_bytes = self.key.values_slice().len();
        let mut key = StringBuilder::with_capacity(next_rows, key_bytes);
        std::mem::swap(&mut key, &mut self.key);
        arrays.push(Arc::new(key.finish()));
        for c in &mut self.columns {
            let len = c.len();
            if len < rows {
                c.append_nulls(rows - len);
            }
            let mut fresh = ColumnBuilder::sized(c.column_type(), next_rows, c.value_bytes())?;
            std::mem::swap(&mut fresh, c);
            arrays.push(fresh.finish());
        }
        arrays.push(Arc::new(self.overflow.finish()));
        self.rows = 0;
        RecordBatch::try_new(state.arrow_schema(), arrays)
    }
}

/// Values that went to the overflow column, counted per table and field; each field is logged once.
#[derive(Clone, Debug, Default)]
pub struct OverflowStats {
    counts: BTreeMap<String, u64>,
}

impl OverflowStats {
    /// No overflow yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one value of `field` that did not fit `column`; logs a warning the first time.
    pub fn record(&mut self, table: &str, field: &str, column: &str, why: Misfit) {
        let count = self.counts.entry(field.to_owned()).or_insert(0);
        if *count == 0 {
            tracing::warn!(
                table,
                field,
                column,
                reason = %why,
                "a value does not fit its column; it is kept in the overflow column `{}` (logged once per field)",
                super::OVERFLOW_COLUMN
            );
        }
        *count += 1;
    }

    /// Overflowed values per field path since the start.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// All overflowed values since the start.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::value::Decimal;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn rows_fill_missing_columns_with_nulls_and_keep_misfits_out() {
        let mut state = TableSchemaState::new();
        state.add_column(p("n"), "n", ColumnType::Int64);
        state.add_column(p("x"), "x", ColumnType::Double);
        let mut b = BatchBuilder::new(&state, 4).unwrap();
        b.begin_row();
        assert_eq!(b.append(0, Value::Int(5)), Ok(()));
        assert_eq!(b.append(1, Value::Int(2)), Ok(()));
        b.end_row("k1");
        b.begin_row();
        assert_eq!(b.append(1, Value::String("abc")), Err(Misfit::Type));
        b.add_overflow("x", "\"abc\"");
        assert_eq!(b.append(1, Value::Int(i64::MAX)), Err(Misfit::Type));
        b.end_row("k2");
        // A column added mid-batch.
        let d = state.add_column(
            p("d"),
            "d",
            ColumnType::Decimal {
                precision: 5,
                scale: 2,
            },
        );
        b.sync_columns(&state).unwrap();
        b.begin_row();
        let dec = Decimal::Finite {
            negative: false,
            coefficient: 12345,
            exponent: -2,
        };
        assert_eq!(b.append(d, Value::Decimal(dec)), Ok(()));
        assert_eq!(b.append(d, Value::Int(1)), Err(Misfit::Repeated));
        assert_eq!(b.append(0, Value::Null), Ok(()));
        assert_eq!(b.append(0, Value::Int(1)), Err(Misfit::Repeated));
        b.add_overflow("n", "1");
        b.add_overflow("we\"ird", "{\"$oid\":\"00\"}");
        b.end_row("k3");
        let batch = b.finish(&state).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), state.arrow_schema());
        let keys = batch.column(0).as_string::<i32>();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            [Some("k1"), Some("k2"), Some("k3")]
        );
        let n = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some(5), None, None]);
        let x = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!(x.iter().collect::<Vec<_>>(), [Some(2.0), None, None]);
        let d = batch.column(3).as_primitive::<Decimal128Type>();
        assert_eq!(d.iter().collect::<Vec<_>>(), [None, None, Some(12345)]);
        assert_eq!(d.precision(), 5);
        let o = batch.column(4).as_string::<i32>();
        assert!(o.is_null(0));
        assert_eq!(o.value(1), r#"{"x":"abc"}"#);
        assert_eq!(o.value(2), r#"{"n":1,"we\"ird":{"$oid":"00"}}"#);
        // The builder is reusable.
        b.begin_row();
        b.end_row("k4");
        assert_eq!(b.finish(&state).unwrap().num_rows(), 1);
    }

    /// A small batch after a large one holds memory for its own rows, not the large one's.
    #[test]
    fn small_batches_after_large_ones_stay_small() {
        let mut state = TableSchemaState::new();
        for i in 0..20 {
            state.add_column(p(&format!("c{i}")), &format!("c{i}"), ColumnType::Int64);
        }
        let mut b = BatchBuilder::new(&state, 1024).unwrap();
        let fill = |b: &mut BatchBuilder, rows: usize| {
            for r in 0..rows {
                b.begin_row();
                for c in 0..20 {
                    b.append(c, Value::Int(r as i64)).unwrap();
                }
                b.end_row("key");
            }
            b.finish(&state).unwrap()
        };
        let large = fill(&mut b, 5000);
        let per_row = large.get_array_memory_size() / 5000;
        fill(&mut b, 10);
        let small = fill(&mut b, 10);
        assert_eq!(small.num_rows(), 10);
        assert!(
            small.get_array_memory_size() < per_row * 10 * 8,
            "10 rows hold {} bytes; one of 5,000 rows holds {per_row}",
            small.get_array_memory_size()
        );
    }

    #[test]
    fn overflow_stats_count_per_field() {
        let mut s = OverflowStats::new();
        s.record("t", "a", "a", Misfit::Type);
        s.record("t", "a", "a", Misfit::Type);
        s.record("t", "b.c", "b_c", Misfit::Repeated);
        assert_eq!(s.counts().get("a"), Some(&2));
        assert_eq!(s.total(), 3);
    }
}
