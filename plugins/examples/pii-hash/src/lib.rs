//! Example runtime plugin: a transform that pseudonymises personal data.
//!
//! ```toml
//! [transforms.pii]
//! type = "pii_hash"
//! inputs = ["atlas"]
//! columns = ["email", "phone"]
//! salt = "${PII_SALT}"
//! keep_email_domain = true     # alice@example.com -> 3f2a...@example.com
//! ```
//!
//! String columns are replaced by the first 16 hex digits of SHA-256(salt || value); other columns
//! named are left alone (and reported once in the error text if a column has another type).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use mirror_plugin_sdk::{export_plugin, Batch, PluginError, TransformPlugin};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    columns: Vec<String>,
    salt: String,
    #[serde(default)]
    keep_email_domain: bool,
}

struct PiiHash(Config);

impl PiiHash {
    fn pseudonym(&self, value: &str) -> String {
        let (local, domain) = match value.rsplit_once('@') {
            Some((l, d)) if self.0.keep_email_domain => (l, Some(d)),
            _ => (value, None),
        };
        let mut h = Sha256::new();
        h.update(self.0.salt.as_bytes());
        h.update(local.as_bytes());
        let digest = hex::encode(&h.finalize()[..8]);
        match domain {
            Some(d) => format!("{digest}@{d}"),
            None => digest,
        }
    }
}

impl TransformPlugin for PiiHash {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: Config = toml::from_str(config).map_err(PluginError::permanent)?;
        if config.salt.len() < 8 {
            return Err(PluginError::permanent(
                "`salt` must be at least 8 characters",
            ));
        }
        Ok(Self(config))
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, PluginError> {
        let schema = batch.rows.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (field, column) in schema.fields().iter().zip(batch.rows.columns()) {
            if !self.0.columns.contains(field.name()) {
                columns.push(column.clone());
                continue;
            }
            if field.data_type() != &DataType::Utf8 {
                return Err(PluginError::permanent(format!(
                    "column `{}` of {} is {}, pii_hash handles string columns",
                    field.name(),
                    batch.table,
                    field.data_type()
                )));
            }
            let strings = column
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8 column");
            let hashed: StringArray = strings
                .iter()
                .map(|v| v.map(|s| self.pseudonym(s)))
                .collect();
            columns.push(Arc::new(hashed));
        }
        let rows = RecordBatch::try_new(schema, columns).map_err(PluginError::permanent)?;
        debug_assert_eq!(rows.num_rows(), batch.rows.num_rows());
        Ok(Batch { rows, ..batch })
    }
}

export_plugin! {
    transforms: [("pii_hash", "pseudonymises string columns with a salted hash", PiiHash)],
}
