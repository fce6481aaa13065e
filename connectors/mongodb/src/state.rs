//! What the MongoDB source checkpoints, as versioned JSON inside the core's checkpoint records.
//!
//! Source partition ([`SourceState`]): per database, the change stream's resume token and its cluster
//! time. Table partitions ([`TableState`]): the phase (initial sync or streaming), the progress of
//! every `_id` range of the initial sync, the table's column types, and counters for `mirror status`.
//! `_id` values are stored as canonical Extended JSON, so every BSON type round-trips exactly.

use std::collections::BTreeMap;

use bson::Bson;
use mirror_core::model::CheckpointState;
use serde::{Deserialize, Serialize};

use crate::token::{ts_from_key, ts_key};

/// Version of both state documents.
pub const STATE_VERSION: u32 = 1;

/// Where each database's change stream is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// By database name.
    pub databases: BTreeMap<String, StreamPosition>,
}

/// A change stream position.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamPosition {
    /// The resume token's `_data`.
    pub token: String,
    /// The cluster time in the token, `seconds.increment` (for people and `mirror status`).
    pub cluster_time: String,
}

impl StreamPosition {
    /// A position from a token and its time key.
    pub fn new(token: String, time: u64) -> Self {
        let ts = ts_from_key(time);
        Self {
            token,
            cluster_time: format!("{}.{}", ts.time, ts.increment),
        }
    }

    /// The cluster time's seconds.
    pub fn seconds(&self) -> Option<u32> {
        self.cluster_time.split('.').next()?.parse().ok()
    }
}

/// Initial sync or streaming.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Copying the collection (change events are applied alongside).
    InitialSync,
    /// The copy is complete; only change events remain.
    Streaming,
}

/// One `_id` range of the initial sync: `[lo, hi)`, done up to `after` (inclusive).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RangeState {
    /// Inclusive lower bound; `None`: from the lowest `_id`.
    pub lo: Option<serde_json::Value>,
    /// Exclusive upper bound; `None`: to the end.
    pub hi: Option<serde_json::Value>,
    /// The last `_id` copied and published; `None`: nothing yet.
    pub after: Option<serde_json::Value>,
    /// Whether the range is complete.
    pub done: bool,
}

/// A table's state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// `<database>.<collection>`.
    pub source: String,
    /// The phase.
    pub phase: Phase,
    /// Initial-sync ranges (empty once streaming).
    #[serde(default)]
    pub ranges: Vec<RangeState>,
    /// The table's columns and types (`mirror_core::mapping::TableSchemaState` as JSON).
    pub schema: serde_json::Value,
    /// Documents copied by the initial sync so far.
    #[serde(default)]
    pub copied: u64,
    /// The collection's estimated size when the initial sync started.
    #[serde(default)]
    pub estimated: u64,
    /// Change events applied so far.
    #[serde(default)]
    pub events: u64,
}

/// Why saved state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not JSON of the expected shape.
    #[error("the MongoDB source's checkpoint is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer version.
    #[error("the MongoDB source's checkpoint has version {0}; this mirror reads version {STATE_VERSION}")]
    Version(u32),
    /// An `_id` bound is not Extended JSON.
    #[error("an `_id` in the checkpoint is not valid Extended JSON: {0}")]
    Id(String),
}

impl SourceState {
    /// Decodes a saved state.
    pub fn load(state: &CheckpointState) -> Result<Self, StateError> {
        let s: SourceState = state.to_json()?;
        if s.version > STATE_VERSION {
            return Err(StateError::Version(s.version));
        }
        Ok(s)
    }
}

impl TableState {
    /// Decodes a saved state.
    pub fn load(state: &CheckpointState) -> Result<Self, StateError> {
        let s: TableState = state.to_json()?;
        if s.version > STATE_VERSION {
            return Err(StateError::Version(s.version));
        }
        Ok(s)
    }
}

/// An `_id` as canonical Extended JSON (exact type and value).
pub fn id_to_json(id: &Bson) -> serde_json::Value {
    id.clone().into_canonical_extjson()
}

/// An `_id` from canonical Extended JSON.
pub fn id_from_json(value: &serde_json::Value) -> Result<Bson, StateError> {
    Bson::try_from(value.clone()).map_err(|e| StateError::Id(e.to_string()))
}

/// Orders time keys for `mirror status`: the cluster time of a position.
pub fn position_key(p: &StreamPosition) -> Option<u64> {
    let (s, i) = p.cluster_time.split_once('.')?;
    Some(ts_key(bson::Timestamp {
        time: s.parse().ok()?,
        increment: i.parse().ok()?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    #[test]
    fn ids_of_every_kind_round_trip() {
        let ids = [
            Bson::Int32(1),
            Bson::Int64(1),
            Bson::Double(1.0),
            Bson::String("1".into()),
            Bson::ObjectId(ObjectId::from_bytes([7; 12])),
            Bson::Document(bson::doc! {"a": 1, "b": "x"}),
            Bson::Decimal128("1.10".parse().unwrap()),
            Bson::DateTime(bson::DateTime::from_millis(5)),
            Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: vec![1; 16],
            }),
            Bson::MinKey,
            Bson::MaxKey,
        ];
        for id in ids {
            assert_eq!(id_from_json(&id_to_json(&id)).unwrap(), id);
        }
    }
}
