//! `type = "mask"`: hides personal data before it leaves the source side.
//!
//! ```toml
//! [transforms.pii]
//! type = "mask"
//! inputs = ["atlas"]
//! columns = ["email", "phone"]
//! method = "hash"              # hash (default) | redact | null
//! key = "${MASK_KEY}"          # secret key of the hash; required for `hash`
//! ```
//!
//! - `hash`: HMAC-SHA-256 of the value's text under `key`, as 64 hex digits. Equal values give equal
//!   hashes, so joins and distinct counts still work, but without the key a value cannot be
//!   confirmed by hashing guesses. The column becomes a string column, in every batch.
//! - `redact`: the text `***` (the column becomes a string column).
//! - `null`: null, keeping the column's type.
//!
//! Nulls stay null. A key column may only be hashed (the mapping stays one-to-one).

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::TableSelector;
use crate::component::{BuildError, Transform, TransformConfig, TransformContext};
use crate::config::Secret;
use crate::error::ComponentError;
use crate::model::ChangeBatch;

/// How values are masked.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// Keyed hash (HMAC-SHA-256, hex).
    #[default]
    Hash,
    /// The text `***`.
    Redact,
    /// Null.
    Null,
}

/// `[transforms.<name>] type = "mask"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Columns to mask.
    pub columns: Vec<String>,
    /// How.
    #[serde(default)]
    pub method: MaskMethod,
    /// The hash key (use `${ENV}`).
    pub key: Option<Secret>,
    /// Tables to mask; others pass unchanged.
    #[serde(default)]
    pub tables: TableSelector,
}

crate::register_transform!(
    "mask",
    MaskConfig,
    "hash, redact or null personal data columns",
    secrets = ["key"]
);

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

#[async_trait]
impl TransformConfig for MaskConfig {
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.columns.is_empty() {
            return Err(BuildError::new(&cx.name, "`columns` is empty"));
        }
        let mac = match (self.method, &self.key) {
            (MaskMethod::Hash, Some(key)) if !key.is_empty() => Some(
                Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
                    .map_err(|e| BuildError::new(&cx.name, e))?,
            ),
            (MaskMethod::Hash, _) => {
                return Err(BuildError::new(
                    &cx.name,
                    "method `hash` needs a non-empty `key` (e.g. key = \"${MASK_KEY}\"); without a secret key, hashed values can be confirmed by hashing guesses",
                ));
            }
            _ => None,
        };
        Ok(Box::new(Mask {
            config: self.clone(),
            mac,
        }))
    }

    fn describe(&self) -> String {
        format!("{:?} {:?}", self.method, self.columns)
    }
}

struct Mask {
    config: MaskConfig,
    mac: Option<Hmac<Sha256>>,
}

impl Mask {
    fn mask(&self, column: &ArrayRef) -> Result<ArrayRef, ComponentError> {
        match self.config.method {
            MaskMethod::Null => Ok(new_null_array(column.data_type(), column.len())),
            MaskMethod::Redact => Ok(Arc::new(
                (0..column.len())
                    .map(|i| column.is_valid(i).then_some("***"))
                    .collect::<StringArray>(),
            )),
            MaskMethod::Hash => {
                let mac = self.mac.as_ref().expect("hash method always has a key");
                let text = cast(column, &DataType::Utf8).map_err(ComponentError::permanent)?;
                let text = text
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8 gives a StringArray");
                let mut out = StringBuilder::with_capacity(text.len(), text.len() * 64);
                for value in text.iter() {
                    match value {
                        Some(v) => {
                            let mut m = mac.clone();
                            m.update(v.as_bytes());
                            out.append_value(hex::encode(m.finalize().into_bytes()));
                        }
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
        }
    }
}

#[async_trait]
impl Transform for Mask {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        if !self.config.tables.matches(&batch.table().id) {
            return Ok(batch);
        }
        let schema = batch.schema();
        let mut fields = Vec::with_capacity(schema.fields().len());
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (field, column) in schema.fields().iter().zip(batch.rows().columns()) {
            if !self.config.columns.contains(field.name()) {
                fields.push(field.clone());
                columns.push(column.clone());
                continue;
            }
            if batch.table().key_columns.contains(field.name())
                && self.config.method != MaskMethod::Hash
            {
                return Err(ComponentError::permanent(format!(
                    "key column `{}` of {} can only be masked with method `hash`",
                    field.name(),
                    batch.table().id
                )));
            }
            let masked = self.mask(column)?;
            fields.push(Arc::new(Field::new(
                field.name(),
                masked.data_type().clone(),
                field.is_nullable(),
            )));
            columns.push(masked);
        }
        let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(ComponentError::permanent)?;
        batch.with_rows(rows).map_err(ComponentError::permanent)
    }
}
