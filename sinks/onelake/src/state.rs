//! `_mirror_table.json`: what the sink must remember about a table across restarts and hosts.
//!
//! ```json
//! {
//!   "format": "mirror-onelake-table",
//!   "version": 1,
//!   "table": { "schema": "sales", "name": "orders" },
//!   "key_columns": ["id"],
//!   "columns": [ { "name": "id", "type": "int64" }, { "name": "total", "type": "decimal(18,2)" } ],
//!   "incremental": true,
//!   "last_published": 41,
//!   "updated_at": "2026-11-24T05:00:00.000Z",
//!   "written_by": "mirror 0.1.0"
//! }
//! ```
//!
//! It is rewritten *before* a data file that adds a column or carries the first row marker is
//! published, so a crash can leave it ahead of the files (harmless: a stricter type guard) but never
//! behind them. `last_published` is informative: the next sequence number comes from the files
//! present (Fabric always keeps the last one), never from this file alone.

use chrono::{SecondsFormat, Utc};
use mirror_core::TableId;
use serde::{Deserialize, Serialize};

use crate::schema::KnownColumn;

/// The `format` tag.
pub const FORMAT: &str = "mirror-onelake-table";
/// The newest version this build reads and writes.
pub const VERSION: u64 = 1;

/// The content of `_mirror_table.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// Always [`FORMAT`].
    pub format: String,
    /// The record version.
    pub version: u64,
    /// The table this folder holds.
    pub table: TableId,
    /// Its key columns.
    pub key_columns: Vec<String>,
    /// Every column ever written, with its type.
    pub columns: Vec<KnownColumn>,
    /// Whether a file with row markers was published (no marker-free files after that).
    pub incremental: bool,
    /// The last data file number known published when this was written.
    pub last_published: u64,
    /// When it was written.
    pub updated_at: String,
    /// Which build wrote it.
    pub written_by: String,
}

impl TableState {
    /// A record of the current state.
    pub fn new(
        table: TableId,
        key_columns: Vec<String>,
        columns: Vec<KnownColumn>,
        incremental: bool,
        last_published: u64,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            table,
            key_columns,
            columns,
            incremental,
            last_published,
            updated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            written_by: format!("mirror {}", mirror_core::VERSION),
        }
    }

    /// Pretty JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a record, refusing other formats and newer versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(format!("missing \"format\": \"{FORMAT}\""));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > VERSION => {
                return Err(format!(
                    "format version {v} is newer than this mirror ({}) reads; run the newer mirror",
                    mirror_core::VERSION
                ))
            }
            Some(_) => {}
            None => return Err("missing \"version\"".into()),
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}
