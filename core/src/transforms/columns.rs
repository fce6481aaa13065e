//! `type = "columns"`: drops and renames columns.
//!
//! ```toml
//! [transforms.tidy]
//! type = "columns"
//! inputs = ["atlas"]
//! drop = ["internal_notes", "__v"]
//! rename = { createdAt = "created_at" }
//! ```
//!
//! Key columns cannot be dropped (updates and deletes need them); renaming one renames the table's
//! key too.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use async_trait::async_trait;
use serde::Deserialize;

use super::TableSelector;
use crate::component::{BuildError, Transform, TransformConfig, TransformContext};
use crate::error::ComponentError;
use crate::model::{ChangeBatch, Table};

/// `[transforms.<name>] type = "columns"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsConfig {
    /// Columns to remove.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Old name to new name.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Tables to change; others pass unchanged.
    #[serde(default)]
    pub tables: TableSelector,
}

crate::register_transform!("columns", ColumnsConfig, "drop and rename columns");

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

#[async_trait]
impl TransformConfig for ColumnsConfig {
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.drop.is_empty() && self.rename.is_empty() {
            return Err(BuildError::new(
                &cx.name,
                "neither `drop` nor `rename` is set",
            ));
        }
        let mut targets = std::collections::BTreeSet::new();
        for new in self.rename.values() {
            if !targets.insert(new) {
                return Err(BuildError::new(
                    &cx.name,
                    format!("`rename` maps two columns to `{new}`"),
                ));
            }
        }
        Ok(Box::new(Columns {
            config: self.clone(),
            tables: BTreeMap::new(),
        }))
    }

    fn describe(&self) -> String {
        format!("drop {:?}, rename {:?}", self.drop, self.rename)
    }
}

struct Columns {
    config: ColumnsConfig,
    /// Renamed table definitions, reused so downstream sees one `Arc<Table>` per table.
    tables: BTreeMap<crate::model::TableId, (Arc<Table>, Arc<Table>)>,
}

#[async_trait]
impl Transform for Columns {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        if !self.config.tables.matches(&batch.table().id) {
            return Ok(batch);
        }
        let table = batch.table().clone();
        for key in &table.key_columns {
            if self.config.drop.contains(key) {
                return Err(ComponentError::permanent(format!(
                    "cannot drop key column `{key}` of {}: updates and deletes need it",
                    table.id
                )));
            }
        }
        let schema = batch.schema();
        let mut fields: Vec<Arc<Field>> = Vec::new();
        let mut columns = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.rows().columns()) {
            if self.config.drop.contains(field.name()) {
                continue;
            }
            let field = match self.config.rename.get(field.name()) {
                Some(new) => Arc::new(field.as_ref().clone().with_name(new)),
                None => field.clone(),
            };
            fields.push(field);
            columns.push(column.clone());
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &fields {
            if !seen.insert(f.name()) {
                return Err(ComponentError::permanent(format!(
                    "renaming gives {} two columns named `{}`",
                    table.id,
                    f.name()
                )));
            }
        }
        let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(ComponentError::permanent)?;
        let renamed = match self.tables.get(&table.id) {
            Some((original, renamed)) if Arc::ptr_eq(original, &table) || **original == *table => {
                renamed.clone()
            }
            _ => {
                let keys = table
                    .key_columns
                    .iter()
                    .map(|k| self.config.rename.get(k).unwrap_or(k).clone());
                let renamed = Arc::new(Table::new(table.id.clone(), keys));
                self.tables
                    .insert(table.id.clone(), (table.clone(), renamed.clone()));
                renamed
            }
        };
        let (_, _, ops, checkpoint) = batch.into_parts();
        ChangeBatch::new(renamed, rows, ops, checkpoint).map_err(ComponentError::permanent)
    }
}
