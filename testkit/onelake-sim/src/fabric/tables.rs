//! `getTablesMirroringStatus` entries computed from the item's replicator, so that processed rows,
//! bytes and sync times are what the landing zone's files really hold.
//!
//! Shape (`TableMirroringStatusResponse`, `mirroredDatabase/definitions.json`):
//! `{sourceSchemaName, sourceTableName, status, metrics: {processedBytes, processedRows,
//! lastSyncDateTime}, error: ErrorResponse}`; `status` is one of Initialized, Snapshotting,
//! Replicating, Reseeding, Stopped, Failed. The specification does not say when Fabric reports
//! which status, nor which error codes; the simulator's rules:
//! - a folder without `_metadata.json` or without an applied file: `Initialized`;
//! - only marker-free files applied (the initial load's direct path): `Snapshotting`;
//! - a file with row markers applied: `Replicating`;
//! - a file Fabric waits on (corrupt, zero-byte): the status it had, with an `error`;
//! - a table stopped for good (a column changed type, keys changed): `Failed`, with an `error`;
//! - mirroring stopped: `Stopped`.
//!
//! `sourceSchemaName` is the folder's schema (`sales` for `sales.schema/orders`) or the item's
//! default schema; `metrics` is present once a file was applied (its three fields are required).

use serde_json::{json, Value};

use crate::replicator::{ReplicatedTable, TableStatus};

/// The entry of one table.
pub(crate) fn table_entry(table: &ReplicatedTable, default_schema: &str, stopped: bool) -> Value {
    let (schema, name) = match table.path.split_once(".schema/") {
        Some((schema, name)) => (schema.to_owned(), name.to_owned()),
        None => (default_schema.to_owned(), table.path.clone()),
    };
    let applied = table.last_applied > 0;
    let running_status = if !applied {
        "Initialized"
    } else if table.incremental {
        "Replicating"
    } else {
        "Snapshotting"
    };
    let (status, error) = match &table.status {
        TableStatus::Failed { reason } => (
            "Failed",
            Some(json!({"errorCode": "TableReplicationFailed", "message": reason})),
        ),
        _ if stopped => ("Stopped", None),
        TableStatus::Stalled { file, reason } => (
            running_status,
            Some(json!({"errorCode": "FileNotProcessed", "message": format!("{file}: {reason}")})),
        ),
        TableStatus::WaitingForMetadata => ("Initialized", None),
        TableStatus::Replicating => (running_status, None),
    };
    let mut entry = json!({
        "sourceSchemaName": schema,
        "sourceTableName": name,
        "status": status,
    });
    if let Some(at) = table.last_applied_at {
        entry["metrics"] = json!({
            "processedBytes": table.processed_bytes,
            "processedRows": table.processed_rows(),
            "lastSyncDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    if let Some(e) = error {
        entry["error"] = e;
    }
    entry
}
