//! The data model every component speaks: tables, row operations, change batches, checkpoints.
//!
//! A source turns its changes into [`ChangeBatch`]es: whole rows of one table as an Arrow
//! [`RecordBatch`], one [`RowOp`] per row, and the [`Checkpoint`] the source can resume from once the
//! batch is durable. Rows are whole rows keyed by the table's key columns, so re-sending a batch after a
//! crash converges to the same table.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

/// A target table: an optional schema and a name, e.g. `sales.schema/orders` or `orders`.
///
/// The text form is the table's folder path below an Open Mirroring landing zone.
///
/// ```
/// use mirror_core::TableId;
/// let t: TableId = "sales.schema/orders".parse().unwrap();
/// assert_eq!(t.schema(), Some("sales"));
/// assert_eq!(t.name(), "orders");
/// assert_eq!(t.to_string(), "sales.schema/orders");
/// assert_eq!(TableId::new("orders").to_string(), "orders");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    schema: Option<String>,
    name: String,
}

impl TableId {
    /// A table without a schema (Fabric puts it in the default schema).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            schema: None,
            name: name.into(),
        }
    }

    /// A table in a schema.
    pub fn with_schema(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }

    /// The schema, if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.schema/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Why a text is not a table id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableIdError {
    /// Empty name or schema.
    #[error("table name is empty")]
    Empty,
    /// `a/b` where `a` does not end in `.schema`.
    #[error("`{0}` is not `<schema>.schema/<table>` or `<table>`")]
    Malformed(String),
}

impl FromStr for TableId {
    type Err = TableIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None if s.is_empty() => Err(TableIdError::Empty),
            None => Ok(TableId::new(s)),
            Some((schema, name)) => {
                let schema = schema
                    .strip_suffix(".schema")
                    .ok_or_else(|| TableIdError::Malformed(s.to_owned()))?;
                if schema.is_empty() || name.is_empty() {
                    return Err(TableIdError::Empty);
                }
                if name.contains('/') {
                    return Err(TableIdError::Malformed(s.to_owned()));
                }
                Ok(TableId::with_schema(schema, name))
            }
        }
    }
}

/// Stored as `{"schema": ..., "name": ...}`, which stays unambiguous whatever the names contain.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableIdRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    name: String,
}

impl Serialize for TableId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TableIdRepr {
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TableId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = TableIdRepr::deserialize(d)?;
        if repr.name.is_empty() || repr.schema.as_deref() == Some("") {
            return Err(serde::de::Error::custom(TableIdError::Empty));
        }
        Ok(TableId {
            schema: repr.schema,
            name: repr.name,
        })
    }
}

/// A table and the columns that identify a row in it (`_id` for MongoDB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Where the rows go.
    pub id: TableId,
    /// Columns whose values identify a row; updates and deletes need them.
    pub key_columns: Vec<String>,
}

impl Table {
    /// A table keyed by `key_columns`.
    pub fn new(id: TableId, key_columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            id,
            key_columns: key_columns.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a row does to the target table.
///
/// The numeric values are Open Mirroring's `__rowMarker__` values, which every sink may reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum RowOp {
    /// A new row; the source guarantees no row with this key exists.
    Insert = 0,
    /// Replace the whole row with this key (insert it if absent).
    Update = 1,
    /// Remove the row with this key; only key columns are meaningful.
    Delete = 2,
    /// Insert or replace the whole row with this key.
    Upsert = 4,
}

impl RowOp {
    /// The Open Mirroring row marker.
    pub fn marker(self) -> i32 {
        self as i32
    }

    /// The operation for a row marker.
    pub fn from_marker(marker: i32) -> Option<RowOp> {
        match marker {
            0 => Some(RowOp::Insert),
            1 => Some(RowOp::Update),
            2 => Some(RowOp::Delete),
            4 => Some(RowOp::Upsert),
            _ => None,
        }
    }
}

/// Which part of a source's state a checkpoint entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partition {
    /// State of the source as a whole (e.g. a database-wide change-stream position).
    Source,
    /// State of one table (e.g. its initial-sync position or column types).
    Table(TableId),
    /// One table's column types, recorded *ahead* of the data that first uses them, outside the
    /// ordered commits ([`crate::checkpoint::SchemaLedger`]).
    TableSchema(TableId),
}

impl Partition {
    /// The table this partition belongs to, if any.
    pub fn table(&self) -> Option<&TableId> {
        match self {
            Partition::Source => None,
            Partition::Table(t) | Partition::TableSchema(t) => Some(t),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Source => f.write_str("(source)"),
            Partition::Table(t) => t.fmt(f),
            Partition::TableSchema(t) => write!(f, "{t} (column types)"),
        }
    }
}

/// Opaque resume state of a source, as the source serialised it.
///
/// Sources are encouraged to use JSON ([`CheckpointState::from_json`]): stores then keep it
/// human-readable.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckpointState(Arc<[u8]>);

impl CheckpointState {
    /// State from raw bytes.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// State serialised as JSON.
    pub fn from_json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self(serde_json::to_vec(value)?.into()))
    }

    /// State deserialised from JSON.
    pub fn to_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CheckpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "CheckpointState({text})"),
            Err(_) => write!(f, "CheckpointState({} bytes)", self.0.len()),
        }
    }
}

/// The state to commit once a batch (and every batch before it) is durable: zero or more partitions,
/// each with its new state. Later checkpoints of the same partition replace earlier ones.
///
/// ```
/// use mirror_core::{Checkpoint, Partition, TableId};
/// use mirror_core::model::CheckpointState;
/// let cp = Checkpoint::source(CheckpointState::from_json(&42).unwrap())
///     .with(Partition::Table(TableId::new("t")), CheckpointState::from_json(&"x").unwrap());
/// assert_eq!(cp.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    entries: BTreeMap<Partition, CheckpointState>,
}

impl Checkpoint {
    /// Nothing to commit.
    pub fn none() -> Self {
        Self::default()
    }

    /// The source-wide state.
    pub fn source(state: CheckpointState) -> Self {
        Self::none().with(Partition::Source, state)
    }

    /// One table's state.
    pub fn table(table: TableId, state: CheckpointState) -> Self {
        Self::none().with(Partition::Table(table), state)
    }

    /// Adds or replaces one partition's state.
    pub fn with(mut self, partition: Partition, state: CheckpointState) -> Self {
        self.entries.insert(partition, state);
        self
    }

    /// Folds a later checkpoint into this one.
    pub fn merge(&mut self, later: Checkpoint) {
        self.entries.extend(later.entries);
    }

    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The partitions and their states.
    pub fn entries(&self) -> impl Iterator<Item = (&Partition, &CheckpointState)> {
        self.entries.iter()
    }

    /// The state of one partition.
    pub fn get(&self, partition: &Partition) -> Option<&CheckpointState> {
        self.entries.get(partition)
    }
}

/// Why a change batch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// `ops` and the record batch disagree on the row count.
    #[error("batch for {table} has {rows} rows but {ops} row operations")]
    OpCount {
        /// The table.
        table: TableId,
        /// Rows in the record batch.
        rows: usize,
        /// Entries in the ops.
        ops: usize,
    },
    /// A key column is not in the record batch.
    #[error("batch for {table} lacks key column `{column}`")]
    MissingKey {
        /// The table.
        table: TableId,
        /// The missing column.
        column: String,
    },
    /// Filtering failed in Arrow.
    #[error("filtering batch for {table}: {source}")]
    Arrow {
        /// The table.
        table: TableId,
        /// Arrow's error.
        source: arrow::error::ArrowError,
    },
}

/// Whole rows of one table, what to do with each, and where the source is once they are durable.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use mirror_core::{ChangeBatch, Checkpoint, RowOp, Table, TableId};
/// let rows = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
/// let table = Arc::new(Table::new(TableId::new("t"), ["id"]));
/// let batch = ChangeBatch::new(table, rows, vec![RowOp::Upsert, RowOp::Delete], Checkpoint::none()).unwrap();
/// assert_eq!(batch.num_rows(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct ChangeBatch {
    table: Arc<Table>,
    rows: RecordBatch,
    ops: Arc<[RowOp]>,
    checkpoint: Checkpoint,
    truncate: bool,
}

impl ChangeBatch {
    /// A batch; `ops` has one entry per row and `rows` holds every key column.
    pub fn new(
        table: Arc<Table>,
        rows: RecordBatch,
        ops: impl Into<Arc<[RowOp]>>,
        checkpoint: Checkpoint,
    ) -> Result<Self, BatchError> {
        let ops = ops.into();
        if ops.len() != rows.num_rows() {
            return Err(BatchError::OpCount {
                table: table.id.clone(),
                rows: rows.num_rows(),
                ops: ops.len(),
            });
        }
        for key in &table.key_columns {
            if rows.schema().column_with_name(key).is_none() {
                return Err(BatchError::MissingKey {
                    table: table.id.clone(),
                    column: key.clone(),
                });
            }
        }
        Ok(Self {
            table,
            rows,
            ops,
            checkpoint,
            truncate: false,
        })
    }

    /// A batch that empties the table (e.g. its collection was dropped, or must be copied again).
    /// Transforms pass it on untouched; sinks remove every row of the table before anything that
    /// follows it.
    pub fn truncate(table: Arc<Table>, checkpoint: Checkpoint) -> Self {
        Self {
            table,
            rows: RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty())),
            ops: Arc::from(Vec::<RowOp>::new()),
            checkpoint,
            truncate: true,
        }
    }

    /// Whether this batch empties its table (and carries no rows).
    pub fn truncates(&self) -> bool {
        self.truncate
    }

    /// The target table.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// The rows.
    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    /// The rows' schema.
    pub fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }

    /// One operation per row.
    pub fn ops(&self) -> &[RowOp] {
        &self.ops
    }

    /// The state to commit once this batch is durable.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }

    /// Splits into parts, e.g. for a sink that takes the rows and hands the checkpoint on.
    pub fn into_parts(self) -> (Arc<Table>, RecordBatch, Arc<[RowOp]>, Checkpoint) {
        (self.table, self.rows, self.ops, self.checkpoint)
    }

    /// The same rows and operations with columns changed (row count must not change).
    pub fn with_rows(self, rows: RecordBatch) -> Result<Self, BatchError> {
        Self::new(self.table, rows, self.ops, self.checkpoint)
    }

    /// The same batch sent to another table.
    pub fn with_table(self, table: Arc<Table>) -> Result<Self, BatchError> {
        Self::new(table, self.rows, self.ops, self.checkpoint)
    }

    /// Keeps the rows where `keep` is true, with their operations; the checkpoint stays.
    pub fn filter(self, keep: &arrow::array::BooleanArray) -> Result<Self, BatchError> {
        let rows = arrow::compute::filter_record_batch(&self.rows, keep).map_err(|source| {
            BatchError::Arrow {
                table: self.table.id.clone(),
                source,
            }
        })?;
        let ops: Vec<RowOp> = self
            .ops
            .iter()
            .zip(keep.iter())
            .filter(|(_, k)| k.unwrap_or(false))
            .map(|(op, _)| *op)
            .collect();
        Self::new(self.table, rows, ops, self.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Int64Array};

    fn batch() -> ChangeBatch {
        let rows =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
                .unwrap();
        ChangeBatch::new(
            Arc::new(Table::new(TableId::new("t"), ["id"])),
            rows,
            vec![RowOp::Insert, RowOp::Delete, RowOp::Upsert],
            Checkpoint::none(),
        )
        .unwrap()
    }

    #[test]
    fn filter_keeps_ops_aligned_with_rows() {
        let kept = batch()
            .filter(&BooleanArray::from(vec![false, true, true]))
            .unwrap();
        assert_eq!(kept.ops(), &[RowOp::Delete, RowOp::Upsert]);
        let ids = kept
            .rows()
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values(), &[2, 3]);
    }

    #[test]
    fn batch_rejects_wrong_op_count_and_missing_key() {
        let rows =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
        let table = Arc::new(Table::new(TableId::new("t"), ["id"]));
        let err = ChangeBatch::new(table, rows.clone(), vec![], Checkpoint::none()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch for t has 1 rows but 0 row operations"
        );
        let table = Arc::new(Table::new(TableId::new("t"), ["_id"]));
        let err =
            ChangeBatch::new(table, rows, vec![RowOp::Insert], Checkpoint::none()).unwrap_err();
        assert_eq!(err.to_string(), "batch for t lacks key column `_id`");
    }

    #[test]
    fn table_id_round_trips_and_rejects_bad_forms() {
        for text in ["orders", "sales.schema/orders"] {
            assert_eq!(text.parse::<TableId>().unwrap().to_string(), text);
        }
        assert!("sales/orders".parse::<TableId>().is_err());
        assert!("a.schema/b/c".parse::<TableId>().is_err());
        assert!("".parse::<TableId>().is_err());
        assert!(".schema/x".parse::<TableId>().is_err());
    }

    #[test]
    fn later_checkpoints_replace_earlier_ones_per_partition() {
        let s = |v: i32| CheckpointState::from_json(&v).unwrap();
        let mut cp = Checkpoint::source(s(1)).with(Partition::Table(TableId::new("a")), s(1));
        cp.merge(Checkpoint::source(s(2)));
        assert_eq!(cp.get(&Partition::Source), Some(&s(2)));
        assert_eq!(cp.get(&Partition::Table(TableId::new("a"))), Some(&s(1)));
    }
}
