//! A replicator that does what Fabric does with an Open Mirroring landing zone, so tests can assert
//! on the resulting table rather than only on files.
//!
//! Rules implemented (from Microsoft's "Open mirroring landing zone format" page, summarised in the
//! project's `open-mirroring.md`):
//! - every non-`_` folder of the landing zone is a table; `<schema>.schema/<table>` puts it in a
//!   schema; anything whose name starts with `_` is ignored;
//! - a table needs `_metadata.json`; `keyColumns` may be added later but never changed;
//! - data files are named with exactly 20 digits and `.parquet`, applied in number order starting at
//!   1; a missing number stalls the table until it appears; a zero-byte or corrupt file stalls it until
//!   a valid file is uploaded under the same name;
//! - `__rowMarker__`, when present, must be the last column: 0 insert (no duplicate check), 1 update,
//!   2 delete, 4 upsert (update and upsert insert an absent key); a file without it holds inserts (or
//!   upserts with `isUpsertDefaultRowMarker`);
//! - a column missing from a file is NULL in that file's rows; a new column is added to the table;
//!   a column whose type changes stops the table for good ([`TableStatus::Failed`]);
//! - processed files are moved to `_ProcessedFiles/`, keeping the last one in the folder;
//! - a deleted folder drops the table; a folder deleted and created again (a new identity, Fabric's
//!   new ETag) is dropped and rebuilt from its own files, even if no scan saw it missing.
//!
//! The replicator also checks what Fabric cannot see but tests care about: a file that is rewritten
//! after it was applied (an overwrite) fails the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::files::LandingFiles;
use crate::value::{delta_type, Row, Value};

/// The name of the row-marker column.
pub const ROW_MARKER: &str = "__rowMarker__";

/// Where processed files are moved.
pub const PROCESSED_DIR: &str = "_ProcessedFiles";

/// A table's replication state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableStatus {
    /// The folder has no `_metadata.json` yet.
    WaitingForMetadata,
    /// Every file present was applied.
    Replicating,
    /// A file cannot be applied yet (gap, zero-byte, corrupt); later scans retry.
    Stalled {
        /// The file waited for or refused.
        file: String,
        /// Why.
        reason: String,
    },
    /// Replication of the table stopped for good (column type change, key change, overwrite).
    Failed {
        /// Why.
        reason: String,
    },
}

/// A column of a replicated table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its Fabric/Delta type, e.g. `long`, `string`, `decimal(18,2)`.
    pub delta_type: String,
    /// The Arrow type of the first file that had it.
    pub arrow_type: DataType,
}

/// The table Fabric would show for one landing-zone folder.
#[derive(Clone, Debug)]
pub struct ReplicatedTable {
    /// The folder, relative to the landing zone (`orders`, `sales.schema/orders`).
    pub path: String,
    /// `keyColumns` from `_metadata.json`.
    pub key_columns: Vec<String>,
    /// `isUpsertDefaultRowMarker` from `_metadata.json`.
    pub upsert_default: bool,
    /// Columns in the order they appeared.
    pub columns: Vec<Column>,
    /// The replication status.
    pub status: TableStatus,
    /// The number of the last applied file (0: none).
    pub last_applied: u64,
    /// Whether a file with row markers was applied.
    pub incremental: bool,
    /// Rows applied, in total, per marker value (`-1` for rows of marker-less files).
    pub rows_by_marker: BTreeMap<i32, u64>,
    /// How many times the table was dropped and built anew: its folder was found deleted (and
    /// later created again) or deleted and created again between two scans.
    pub rebuilds: u64,
    /// Bytes of the files applied.
    pub processed_bytes: u64,
    /// When a file was last applied.
    pub last_applied_at: Option<chrono::DateTime<chrono::Utc>>,
    rows: BTreeMap<Vec<Value>, Vec<Row>>,
    insert_seq: u64,
    applied_hashes: BTreeMap<u64, u64>,
    folder_id: Option<String>,
}

impl ReplicatedTable {
    fn new(path: String) -> Self {
        Self {
            path,
            key_columns: Vec::new(),
            upsert_default: false,
            columns: Vec::new(),
            status: TableStatus::WaitingForMetadata,
            last_applied: 0,
            incremental: false,
            rows_by_marker: BTreeMap::new(),
            rebuilds: 0,
            processed_bytes: 0,
            last_applied_at: None,
            rows: BTreeMap::new(),
            insert_seq: 0,
            applied_hashes: BTreeMap::new(),
            folder_id: None,
        }
    }

    /// Every row, ordered by key, with every column of the table (NULL where a file lacked it).
    pub fn rows(&self) -> Vec<Row> {
        self.rows
            .values()
            .flatten()
            .map(|row| {
                self.columns
                    .iter()
                    .map(|c| {
                        (
                            c.name.clone(),
                            row.get(&c.name).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// Rows of every applied file, whatever their marker (what Fabric reports as processed rows).
    pub fn processed_rows(&self) -> u64 {
        self.rows_by_marker.values().sum()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows with this key (more than one only after re-inserts, which Fabric does not dedupe).
    pub fn rows_with_key(&self, key: &[Value]) -> Vec<Row> {
        self.rows.get(key).cloned().unwrap_or_default()
    }

    /// Keys held by more than one row.
    pub fn duplicate_keys(&self) -> Vec<Vec<Value>> {
        if self.key_columns.is_empty() {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|(_, rows)| rows.len() > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn key_of(&mut self, row: &Row) -> Vec<Value> {
        if self.key_columns.is_empty() {
            self.insert_seq += 1;
            return vec![Value::UInt(self.insert_seq)];
        }
        self.key_columns
            .iter()
            .map(|k| row.get(k).cloned().unwrap_or(Value::Null))
            .collect()
    }
}

/// What one scan did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files applied, as `<table>/<file>`.
    pub applied: Vec<String>,
}

/// Applies landing-zone files to in-memory tables, as Fabric does.
pub struct Replicator {
    files: Arc<dyn LandingFiles>,
    tables: BTreeMap<String, ReplicatedTable>,
    /// Tables dropped because their folder vanished, with their rebuild count so far.
    dropped: BTreeMap<String, u64>,
    move_processed: bool,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses `00000000000000000001.parquet` into 1.
pub fn sequence_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".parquet")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name of sequence number `n`.
pub fn file_name(n: u64) -> String {
    format!("{n:020}.parquet")
}

impl Replicator {
    /// A replicator over `files`; it moves processed files to `_ProcessedFiles/` like Fabric.
    pub fn new(files: Arc<dyn LandingFiles>) -> Self {
        Self {
            files,
            tables: BTreeMap::new(),
            dropped: BTreeMap::new(),
            move_processed: true,
        }
    }

    /// Leaves processed files in place instead of moving them aside.
    pub fn keep_processed_files(mut self) -> Self {
        self.move_processed = false;
        self
    }

    /// Every table discovered so far.
    pub fn tables(&self) -> &BTreeMap<String, ReplicatedTable> {
        &self.tables
    }

    /// One table by folder path (`orders`, `sales.schema/orders`).
    pub fn table(&self, path: &str) -> Option<&ReplicatedTable> {
        self.tables.get(path)
    }

    /// Discovers tables and applies every file that can be applied now.
    pub fn scan(&mut self) -> std::io::Result<ScanReport> {
        let mut report = ScanReport::default();
        let mut folders = Vec::new();
        for entry in self.files.list("")? {
            if !entry.is_dir || entry.name.starts_with('_') {
                continue;
            }
            if entry.name.ends_with(".schema") {
                for sub in self.files.list(&entry.name)? {
                    if sub.is_dir && !sub.name.starts_with('_') {
                        folders.push(format!("{}/{}", entry.name, sub.name));
                    }
                }
            } else {
                folders.push(entry.name);
            }
        }
        let present: BTreeSet<&String> = folders.iter().collect();
        // A deleted folder drops the table.
        let gone: Vec<String> = self
            .tables
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(t) = self.tables.remove(&path) {
                self.dropped.insert(path, t.rebuilds);
            }
        }
        for path in &folders {
            self.scan_table(path, &mut report)?;
        }
        Ok(report)
    }

    fn scan_table(&mut self, path: &str, report: &mut ScanReport) -> std::io::Result<()> {
        let files = self.files.clone();
        let dropped = &mut self.dropped;
        let table = self.tables.entry(path.to_owned()).or_insert_with(|| {
            let mut t = ReplicatedTable::new(path.to_owned());
            if let Some(rebuilds) = dropped.remove(path) {
                t.rebuilds = rebuilds + 1;
            }
            t
        });
        let folder_id = files.folder_id(path)?;
        if table.folder_id.is_some() && folder_id.is_some() && table.folder_id != folder_id {
            // The folder was deleted and created again: Fabric drops the table and rebuilds it.
            let rebuilds = table.rebuilds + 1;
            *table = ReplicatedTable::new(path.to_owned());
            table.rebuilds = rebuilds;
        }
        table.folder_id = folder_id;
        if matches!(table.status, TableStatus::Failed { .. }) {
            return Ok(());
        }
        let Some(metadata) = files.read(&format!("{path}/_metadata.json"))? else {
            table.status = TableStatus::WaitingForMetadata;
            return Ok(());
        };
        match parse_metadata(&metadata) {
            Ok(meta) => {
                if !table.key_columns.is_empty() && meta.key_columns != table.key_columns {
                    table.status = TableStatus::Failed {
                        reason: format!(
                            "keyColumns changed from {:?} to {:?}",
                            table.key_columns, meta.key_columns
                        ),
                    };
                    return Ok(());
                }
                table.key_columns = meta.key_columns;
                table.upsert_default = meta.upsert_default;
            }
            Err(reason) => {
                table.status = TableStatus::Stalled {
                    file: "_metadata.json".into(),
                    reason,
                };
                return Ok(());
            }
        }

        let listing = files.list(path)?;
        let numbers: BTreeMap<u64, String> = listing
            .iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| sequence_number(&e.name).map(|n| (n, e.name.clone())))
            .collect();
        // Files already applied must never change.
        for (n, name) in numbers.range(..=table.last_applied) {
            if let (Some(bytes), Some(expected)) = (
                files.read(&format!("{path}/{name}"))?,
                table.applied_hashes.get(n),
            ) {
                if hash(&bytes) != *expected {
                    table.status = TableStatus::Failed {
                        reason: format!("{name} was overwritten after it was applied"),
                    };
                    return Ok(());
                }
            }
        }
        table.status = TableStatus::Replicating;
        loop {
            let next = table.last_applied + 1;
            let Some(name) = numbers.get(&next) else {
                if let Some((later, _)) = numbers.range(next..).next() {
                    table.status = TableStatus::Stalled {
                        file: file_name(next),
                        reason: format!(
                            "gap: {} is missing but {} exists",
                            file_name(next),
                            file_name(*later)
                        ),
                    };
                }
                break;
            };
            let file_path = format!("{path}/{name}");
            let Some(bytes) = files.read(&file_path)? else {
                break;
            };
            match apply_file(table, &bytes) {
                Ok(()) => {
                    table.last_applied = next;
                    table.processed_bytes += bytes.len() as u64;
                    table.last_applied_at = Some(chrono::Utc::now());
                    table.applied_hashes.insert(next, hash(&bytes));
                    report.applied.push(file_path);
                }
                Err(FileError::Stall(reason)) => {
                    table.status = TableStatus::Stalled {
                        file: name.clone(),
                        reason,
                    };
                    break;
                }
                Err(FileError::Fail(reason)) => {
                    table.status = TableStatus::Failed {
                        reason: format!("{name}: {reason}"),
                    };
                    break;
                }
            }
        }
        if self.move_processed {
            let last = table.last_applied;
            for (n, name) in numbers.range(..last) {
                match files.rename(
                    &format!("{path}/{name}"),
                    &format!("{path}/{PROCESSED_DIR}/{name}"),
                ) {
                    // The folder was deleted meanwhile (the next scan drops the table).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
                let _ = n;
            }
        }
        Ok(())
    }
}

struct Metadata {
    key_columns: Vec<String>,
    upsert_default: bool,
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("_metadata.json is not JSON: {e}"))?;
    let key_columns = match value.get("keyColumns") {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "keyColumns must be an array of strings".to_owned())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("keyColumns must be an array of strings".into()),
    };
    match value.get("fileDetectionStrategy").and_then(|v| v.as_str()) {
        None | Some("SequentialFileName") => {}
        Some(other) => {
            return Err(format!(
                "fileDetectionStrategy {other:?} is not simulated (only SequentialFileName)"
            ))
        }
    }
    let upsert_default = value
        .get("isUpsertDefaultRowMarker")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok(Metadata {
        key_columns,
        upsert_default,
    })
}

enum FileError {
    /// The table waits until a valid file replaces this one.
    Stall(String),
    /// The table stops for good.
    Fail(String),
}

fn apply_file(table: &mut ReplicatedTable, bytes: &[u8]) -> Result<(), FileError> {
    if bytes.is_empty() {
        return Err(FileError::Stall("zero-byte file".into()));
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(bytes))
        .map_err(|e| FileError::Stall(format!("not a valid Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let fields = schema.fields();
    let marker_index = fields.iter().position(|f| f.name() == ROW_MARKER);
    if let Some(i) = marker_index {
        if i != fields.len() - 1 {
            return Err(FileError::Stall(format!(
                "{ROW_MARKER} is column {} of {}; it must be the last column",
                i + 1,
                fields.len()
            )));
        }
        if !fields[i].data_type().is_integer() {
            return Err(FileError::Stall(format!(
                "{ROW_MARKER} has type {}; it must be an integer",
                fields[i].data_type()
            )));
        }
    }
    // Column types first: a file is applied whole or not at all.
    let mut new_columns = Vec::new();
    for field in fields.iter().filter(|f| f.name() != ROW_MARKER) {
        let dt = delta_type(field.data_type());
        if dt.starts_with("unsupported") {
            return Err(FileError::Stall(format!(
                "column {} has a type Fabric does not take: {}",
                field.name(),
                field.data_type()
            )));
        }
        match table.column(field.name()) {
            Some(c) if c.delta_type != dt => {
                return Err(FileError::Fail(format!(
                    "column {} changed type from {} to {}",
                    field.name(),
                    c.delta_type,
                    dt
                )))
            }
            Some(_) => {}
            None => new_columns.push(Column {
                name: field.name().clone(),
                delta_type: dt,
                arrow_type: field.data_type().clone(),
            }),
        }
    }
    for key in &table.key_columns {
        if !fields.iter().any(|f| f.name() == key) {
            return Err(FileError::Stall(format!("key column {key} is missing")));
        }
    }
    let reader = builder
        .build()
        .map_err(|e| FileError::Stall(format!("not a valid Parquet file: {e}")))?;
    let mut pending: Vec<(i32, Row)> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| FileError::Stall(format!("corrupt Parquet data: {e}")))?;
        for row in 0..batch.num_rows() {
            let mut values = Row::new();
            let mut marker = -1;
            for (i, field) in batch.schema().fields().iter().enumerate() {
                let value = Value::from_array(batch.column(i), row).ok_or_else(|| {
                    FileError::Stall(format!("unsupported type in {}", field.name()))
                })?;
                if field.name() == ROW_MARKER {
                    marker = match value {
                        Value::Int(m) if [0, 1, 2, 4].contains(&m) => m as i32,
                        other => {
                            return Err(FileError::Stall(format!(
                                "row {row}: {ROW_MARKER} is {other}, not 0, 1, 2 or 4"
                            )))
                        }
                    };
                } else {
                    values.insert(field.name().clone(), value);
                }
            }
            pending.push((marker, values));
        }
    }
    table.columns.extend(new_columns);
    if marker_index.is_some() {
        table.incremental = true;
    }
    for (marker, row) in pending {
        *table.rows_by_marker.entry(marker).or_default() += 1;
        let effective = match marker {
            -1 if table.upsert_default => 4,
            -1 => 0,
            m => m,
        };
        let key = table.key_of(&row);
        match effective {
            0 => table.rows.entry(key).or_default().push(row),
            1 | 4 => {
                table.rows.insert(key, vec![row]);
            }
            _ => {
                table.rows.remove(&key);
            }
        }
    }
    Ok(())
}

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a: enough to notice a rewritten file.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
