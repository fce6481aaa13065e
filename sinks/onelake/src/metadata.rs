//! Fabric's own files: `_metadata.json` per table and `_partnerEvents.json` at the root.
//!
//! `_metadata.json` is written before a table's first data file:
//! `{"keyColumns": [...], "fileDetectionStrategy": "SequentialFileName"}` plus
//! `"isUpsertDefaultRowMarker": true` when configured. An existing file is kept if it declares the
//! same keys; keys may be added to a file that has none; different keys are an error (Fabric never
//! lets them change).
//!
//! `_partnerEvents.json` names the writer and its sources:
//! `{"partnerName": "mirror", "sourceInfo": {"sourceType": "mongodb", "sourceVersion": "...",
//! "additionalInformation": {"mirrorVersion": "0.1.0", "sources": [...]}}}`.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::error::SinkError;
use crate::naming::{METADATA_FILE, PARTNER_EVENTS_FILE};
use crate::store::{join, LandingStore, PutMode};

/// Table options written into `_metadata.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataOptions {
    /// `isUpsertDefaultRowMarker`: rows of marker-free files count as upserts.
    pub upsert_default_row_marker: bool,
}

/// The `_metadata.json` document.
pub fn metadata_document(key_columns: &[String], options: &MetadataOptions) -> Value {
    let mut doc = json!({
        "keyColumns": key_columns,
        "fileDetectionStrategy": "SequentialFileName",
    });
    if options.upsert_default_row_marker {
        doc["isUpsertDefaultRowMarker"] = json!(true);
    }
    doc
}

/// Writes or checks `<folder>/_metadata.json`.
pub async fn ensure_metadata(
    store: &dyn LandingStore,
    folder: &str,
    table: &str,
    key_columns: &[String],
    options: &MetadataOptions,
) -> Result<(), SinkError> {
    let path = join(&[folder, METADATA_FILE]);
    let wanted = metadata_document(key_columns, options);
    let body = Bytes::from(serde_json::to_vec_pretty(&wanted).unwrap_or_default());
    match store.get(&path).await? {
        None => {
            match store.put(&path, body, PutMode::Create).await {
                Ok(_) => Ok(()),
                // Someone wrote it meanwhile: check what they wrote.
                Err(e) if e.kind == crate::store::StoreErrorKind::AlreadyExists => {
                    Box::pin(ensure_metadata(store, folder, table, key_columns, options)).await
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(existing) => {
            let doc: Value =
                serde_json::from_slice(&existing.bytes).map_err(|e| SinkError::BadStateFile {
                    path: path.clone(),
                    message: format!("not JSON: {e}"),
                })?;
            let existing_keys: Vec<String> = doc
                .get("keyColumns")
                .and_then(|k| serde_json::from_value(k.clone()).ok())
                .unwrap_or_default();
            if !existing_keys.is_empty() && existing_keys != key_columns {
                return Err(SinkError::KeyChange {
                    path,
                    table: table.to_owned(),
                    existing: existing_keys,
                    wanted: key_columns.to_vec(),
                });
            }
            if doc != wanted {
                store
                    .put(&path, body, PutMode::IfMatch(existing.etag))
                    .await?;
            }
            Ok(())
        }
    }
}

/// Who writes the landing zone, for `_partnerEvents.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerInfo {
    /// `partnerName`.
    pub partner_name: String,
    /// `sourceType`, e.g. `mongodb` (several sources: their types joined with `,`).
    pub source_type: String,
    /// `sourceVersion`: the source system's version if known.
    pub source_version: String,
    /// Extra `additionalInformation` entries.
    pub additional: serde_json::Map<String, Value>,
}

impl Default for PartnerInfo {
    fn default() -> Self {
        Self {
            partner_name: "mirror".into(),
            source_type: "unknown".into(),
            source_version: "unknown".into(),
            additional: serde_json::Map::new(),
        }
    }
}

/// The `_partnerEvents.json` document.
pub fn partner_document(info: &PartnerInfo) -> Value {
    let mut additional = info.additional.clone();
    additional.insert("mirrorVersion".into(), json!(mirror_core::VERSION));
    json!({
        "partnerName": info.partner_name,
        "sourceInfo": {
            "sourceType": info.source_type,
            "sourceVersion": info.source_version,
            "additionalInformation": additional,
        }
    })
}

/// Writes `_partnerEvents.json` at the root unless it already says the same.
pub async fn ensure_partner_events(
    store: &dyn LandingStore,
    info: &PartnerInfo,
) -> Result<(), SinkError> {
    let wanted = partner_document(info);
    if let Some(existing) = store.get(PARTNER_EVENTS_FILE).await? {
        if serde_json::from_slice::<Value>(&existing.bytes)
            .ok()
            .as_ref()
            == Some(&wanted)
        {
            return Ok(());
        }
    }
    let body = Bytes::from(serde_json::to_vec_pretty(&wanted).unwrap_or_default());
    store
        .put(PARTNER_EVENTS_FILE, body, PutMode::Overwrite)
        .await?;
    Ok(())
}
