//! The checkpoint record: one JSON file per source partition, format version 1.
//!
//! ```json
//! {
//!   "format": "mirror-checkpoint",
//!   "version": 1,
//!   "source": "atlas",
//!   "partition": { "table": { "schema": "shop", "name": "orders" } },
//!   "committed_at": "2026-11-24T05:00:00.000Z",
//!   "written_by": "mirror 0.1.0",
//!   "state": { "...": "as the source wrote it" }
//! }
//! ```
//!
//! `partition` is `"source"` for source-wide state. A state that is not JSON is kept as
//! `"state_base64"` instead of `"state"`. Readers refuse a `version` above [`FORMAT_VERSION`].

use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CheckpointError, StoredState};
use crate::model::{CheckpointState, Partition};

/// The `format` tag of every record.
pub const FORMAT: &str = "mirror-checkpoint";
/// The newest record version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
struct Record {
    format: String,
    version: u64,
    source: String,
    partition: Partition,
    committed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    written_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_base64: Option<String>,
}

/// Encodes one partition's state as a pretty-printed record.
pub fn encode(
    source: &str,
    partition: &Partition,
    state: &CheckpointState,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let (json, b64) = match serde_json::from_slice::<Value>(state.as_bytes()) {
        Ok(v) => (Some(v), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(state.as_bytes())),
        ),
    };
    let record = Record {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        source: source.to_owned(),
        partition: partition.clone(),
        committed_at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        written_by: Some(format!("mirror {}", crate::VERSION)),
        state: json,
        state_base64: b64,
    };
    let mut out = serde_json::to_vec_pretty(&record).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Decodes a record read from `path`, checking format and version.
pub fn decode(
    path: &Path,
    bytes: &[u8],
) -> Result<(String, Partition, StoredState), CheckpointError> {
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(corrupt(format!("missing \"format\": \"{FORMAT}\"")));
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(v) if v > FORMAT_VERSION => {
            return Err(CheckpointError::FutureVersion {
                path: path.to_owned(),
                found: v,
                supported: FORMAT_VERSION,
                ours: crate::VERSION,
            });
        }
        Some(_) => {}
        None => return Err(corrupt("missing \"version\"".to_owned())),
    }
    let record: Record = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    let committed_at = DateTime::parse_from_rfc3339(&record.committed_at)
        .map_err(|e| corrupt(format!("bad committed_at: {e}")))?
        .with_timezone(&Utc);
    let state = match (record.state, record.state_base64) {
        (Some(v), None) => {
            CheckpointState::from_bytes(serde_json::to_vec(&v).map_err(|e| corrupt(e.to_string()))?)
        }
        (None, Some(b)) => CheckpointState::from_bytes(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| corrupt(format!("bad state_base64: {e}")))?,
        ),
        _ => {
            return Err(corrupt(
                "needs exactly one of \"state\" and \"state_base64\"".to_owned(),
            ))
        }
    };
    Ok((
        record.source,
        record.partition,
        StoredState {
            state,
            committed_at,
        },
    ))
}
