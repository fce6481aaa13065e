//! Parquet encoding of one landing-zone file from buffered Arrow rows.
//!
//! A file holds the table's columns that appear in any of its rows (in the table's column order;
//! rows of a batch that lacks one get NULL) and, last, `__rowMarker__` as a non-null **int32**:
//!
//! | row operation | marker written |
//! |---|---|
//! | insert, in a table with key columns | 4 (upsert): a batch re-sent after a crash must not duplicate rows |
//! | insert, in a table without key columns | 0 (insert) |
//! | update | 1 |
//! | delete | 2 (other columns may be NULL) |
//! | upsert | 4 |
//!
//! A marker-free file (every row an insert, see [`MarkerMode::None`]) is Fabric's faster initial-load
//! path; the sink decides when it is allowed.

use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use mirror_core::RowOp;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::schema::{SchemaError, TableSchema, ROW_MARKER};

/// Parquet compression of data files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Snappy (the default; fast, what Fabric's samples use).
    #[default]
    Snappy,
    /// Zstandard, level 1 (smaller files).
    Zstd,
    /// GZIP, default level.
    Gzip,
    /// Uncompressed.
    None,
}

impl Compression {
    fn parquet(self) -> ParquetCompression {
        match self {
            Compression::Snappy => ParquetCompression::SNAPPY,
            Compression::Zstd => ParquetCompression::ZSTD(ZstdLevel::default()),
            Compression::Gzip => ParquetCompression::GZIP(GzipLevel::default()),
            Compression::None => ParquetCompression::UNCOMPRESSED,
        }
    }
}

/// Whether a file carries `__rowMarker__`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerMode {
    /// No marker column: every row is an insert (initial load only).
    None,
    /// A marker per row; `keyed` tables write inserts as upserts.
    Markers {
        /// The table has key columns.
        keyed: bool,
    },
}

/// Why a file could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The rows do not fit the table (a bug: they were conformed when buffered).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Arrow or Parquet failed.
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("building the row-marker column: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The marker of one row.
pub fn marker(op: RowOp, keyed: bool) -> i32 {
    match op {
        RowOp::Insert if keyed => RowOp::Upsert.marker(),
        op => op.marker(),
    }
}

/// Encoded bytes after which a row group is closed and written out. A file's column chunks stay
/// in memory until their row group closes, so this bounds what encoding holds besides the rows;
/// one row group per file would hold the whole encoded file twice at the end (chunks and output).
pub const ROW_GROUP_BYTES: usize = 16 << 20;

/// Rows gathered before a write to the Parquet writer.
const WRITE_ROWS: usize = 8192;

/// Parts with at least this many rows are written as they are: joining them would copy every
/// value once more (2% of an initial sync's CPU) to save a per-part cost that is already small.
const JOIN_BELOW_ROWS: usize = 512;

/// Writer properties for data files.
///
/// Statistics are kept per column chunk only (Fabric reads whole files; page-level statistics and
/// the page index cost ~10% of encoding time for nothing), and dictionary pages are capped at
/// 128 KiB so that high-cardinality columns fall back to plain encoding early instead of hashing
/// every value, while low-cardinality columns still get dictionaries (see `docs/benchmarks.md`).
pub fn writer_properties(compression: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression.parquet())
        .set_created_by(format!("mirror {}", mirror_core::VERSION))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .set_dictionary_page_size_limit(128 * 1024)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build()
}

/// Encodes `parts` (conformed rows and their operations) as one Parquet file.
///
/// Each part is dropped as soon as it is encoded, so the rows' memory is given back while the file
/// grows: the peak is about the rows plus a part, not the rows plus the whole file.
pub fn encode_file(
    schema: &TableSchema,
    parts: Vec<(RecordBatch, Arc<[RowOp]>)>,
    markers: MarkerMode,
    properties: WriterProperties,
) -> Result<Bytes, EncodeError> {
    // Streamed files are made of many tiny parts (often one change each), mostly of the same
    // few shapes: the column set is found from the distinct shapes, and consecutive parts of
    // one shape are joined before they are projected and written, since each step costs a
    // fixed amount per part and column (a 1 s file of 5,600 changes in 4,500 parts took 75 ms of
    // CPU part by part).
    let mut shapes: Vec<SchemaRef> = Vec::new();
    for (rows, _) in &parts {
        let shape = rows.schema();
        if !shapes
            .iter()
            .any(|s| Arc::ptr_eq(s, &shape) || **s == *shape)
        {
            shapes.push(shape);
        }
    }
    let present: Vec<&str> = schema
        .names()
        .filter(|name| shapes.iter().any(|s| s.index_of(name).is_ok()))
        .collect();
    let mut fields: Vec<Field> = present
        .iter()
        .map(|name| {
            let dt = schema.storage(name).cloned().unwrap_or(DataType::Null);
            Field::new(*name, dt, true)
        })
        .collect();
    if matches!(markers, MarkerMode::Markers { .. }) {
        fields.push(Field::new(ROW_MARKER, DataType::Int32, false));
    }
    let file_schema = Arc::new(Schema::new(fields));
    let estimated: usize = parts.iter().map(|(r, _)| r.get_array_memory_size()).sum();
    let mut writer = ArrowWriter::try_new(
        Vec::with_capacity(estimated / 2 + 1024),
        file_schema.clone(),
        Some(properties),
    )?;
    let write_run = |writer: &mut ArrowWriter<Vec<u8>>,
                     run: &mut Vec<RecordBatch>,
                     ops: &mut Vec<RowOp>|
     -> Result<(), EncodeError> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        let rows = if run.len() == 1 {
            first.clone()
        } else {
            concat_batches(&first.schema(), run.iter())?
        };
        let projected = schema.project(&rows, &present)?;
        let mut columns = projected.columns().to_vec();
        if let MarkerMode::Markers { keyed } = markers {
            let values: Int32Array = ops.iter().map(|op| Some(marker(*op, keyed))).collect();
            columns.push(Arc::new(values));
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        let batch = RecordBatch::try_new_with_options(file_schema.clone(), columns, &options)?;
        writer.write(&batch)?;
        run.clear();
        ops.clear();
        Ok(())
    };
    let mut run: Vec<RecordBatch> = Vec::new();
    let mut run_ops: Vec<RowOp> = Vec::new();
    for (rows, ops) in parts {
        let same_shape = run.first().is_none_or(|first| {
            Arc::ptr_eq(&first.schema(), &rows.schema()) || first.schema() == rows.schema()
        });
        let large = rows.num_rows() >= JOIN_BELOW_ROWS;
        if !same_shape || large || run_ops.len() + rows.num_rows() > WRITE_ROWS {
            write_run(&mut writer, &mut run, &mut run_ops)?;
        }
        run_ops.extend_from_slice(&ops);
        run.push(rows);
        if large {
            write_run(&mut writer, &mut run, &mut run_ops)?;
        }
    }
    write_run(&mut writer, &mut run, &mut run_ops)?;
    Ok(Bytes::from(writer.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Encodes `parts` with keyed markers and reads the file back as one batch.
    fn encode_and_read(
        schema: &TableSchema,
        parts: Vec<(RecordBatch, Arc<[RowOp]>)>,
        compression: Compression,
    ) -> RecordBatch {
        let bytes = encode_file(
            schema,
            parts,
            MarkerMode::Markers { keyed: true },
            writer_properties(compression),
        )
        .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[test]
    fn marker_is_the_last_int32_column_and_missing_columns_are_null() {
        let mut schema = TableSchema::new("t");
        let a = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["a", "b"]))),
        ])
        .unwrap();
        let b =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
                .unwrap();
        let a = schema.conform(&a).unwrap().rows;
        let b = schema.conform(&b).unwrap().rows;
        let parts = vec![
            (a, Arc::from(vec![RowOp::Insert, RowOp::Update])),
            (b, Arc::from(vec![RowOp::Delete])),
        ];
        let all = encode_and_read(&schema, parts, Compression::Zstd);
        let schema = all.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "name", ROW_MARKER]);
        assert_eq!(all.schema().field(2).data_type(), &DataType::Int32);
        let markers = all.column(2).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(markers.values(), &[4, 1, 2]);
        assert!(all.column(1).is_null(2));
    }

    /// Large parts (written alone) between small ones (joined) keep the rows' order and markers.
    #[test]
    fn large_and_small_parts_keep_their_order() {
        let mut schema = TableSchema::new("t");
        let sizes = [1usize, 3, JOIN_BELOW_ROWS, 2, JOIN_BELOW_ROWS * 3, 1, 1];
        let mut parts = Vec::new();
        let mut next = 0i64;
        for (p, n) in sizes.iter().enumerate() {
            let ids: Vec<i64> = (next..next + *n as i64).collect();
            next += *n as i64;
            let rows =
                RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(ids)) as ArrayRef)])
                    .unwrap();
            let op = if p % 2 == 0 {
                RowOp::Upsert
            } else {
                RowOp::Delete
            };
            parts.push((schema.conform(&rows).unwrap().rows, Arc::from(vec![op; *n])));
        }
        let all = encode_and_read(&schema, parts, Compression::Snappy);
        assert_eq!(all.num_rows() as i64, next);
        let ids = all.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let markers = all.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        let mut row = 0;
        for (p, n) in sizes.iter().enumerate() {
            for _ in 0..*n {
                assert_eq!(ids.value(row), row as i64);
                assert_eq!(
                    markers.value(row),
                    if p % 2 == 0 { 4 } else { 2 },
                    "row {row}"
                );
                row += 1;
            }
        }
    }

    /// Many one-row parts of changing shapes (as streamed) come out in order, each row with its
    /// own values and marker, across the runs they are joined into.
    #[test]
    fn many_small_parts_of_changing_shapes_keep_their_order() {
        let mut schema = TableSchema::new("t");
        let mut parts = Vec::new();
        let n = 3 * WRITE_ROWS as i64 / 2;
        for i in 0..n {
            let rows = if (i / 100) % 2 == 0 {
                RecordBatch::try_from_iter([(
                    "id",
                    Arc::new(Int64Array::from(vec![i])) as ArrayRef,
                )])
            } else {
                RecordBatch::try_from_iter([
                    ("id", Arc::new(Int64Array::from(vec![i])) as ArrayRef),
                    ("name", Arc::new(StringArray::from(vec![format!("n{i}")]))),
                ])
            }
            .unwrap();
            let op = if i % 3 == 0 {
                RowOp::Delete
            } else {
                RowOp::Upsert
            };
            parts.push((schema.conform(&rows).unwrap().rows, Arc::from(vec![op])));
        }
        let all = encode_and_read(&schema, parts, Compression::Snappy);
        assert_eq!(all.num_rows() as i64, n);
        let ids = all.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let names = all
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let markers = all.column(2).as_any().downcast_ref::<Int32Array>().unwrap();
        for i in 0..n {
            let r = i as usize;
            assert_eq!(ids.value(r), i);
            if (i / 100) % 2 == 0 {
                assert!(names.is_null(r), "row {i}");
            } else {
                assert_eq!(names.value(r), format!("n{i}"));
            }
            let want = if i % 3 == 0 { 2 } else { 4 };
            assert_eq!(markers.value(r), want, "row {i}");
        }
    }
}
