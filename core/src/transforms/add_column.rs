//! `type = "add_column"`: adds a constant or computed column.
//!
//! ```toml
//! [transforms.tag]
//! type = "add_column"
//! inputs = ["atlas"]
//! name = "source_db"
//! value = "{schema}"           # text; {table} and {schema} are replaced per table
//!
//! [transforms.stamp]
//! type = "add_column"
//! inputs = ["tag"]
//! name = "ingested_at"
//! computed = "ingest_time"     # table | schema | ingest_time
//! ```
//!
//! `value` may also be an integer, a float or a boolean. An existing column of that name is replaced.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{Field, Schema};
use async_trait::async_trait;
use serde::Deserialize;

use super::TableSelector;
use crate::component::{BuildError, Transform, TransformConfig, TransformContext};
use crate::error::ComponentError;
use crate::model::ChangeBatch;

/// A constant value.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ConstantValue {
    /// Text, with `{table}` and `{schema}` placeholders.
    Text(String),
    /// An integer (int64 column).
    Int(i64),
    /// A float (float64 column).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// A value computed per batch.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Computed {
    /// The target table's name.
    Table,
    /// The target table's schema (null without one).
    Schema,
    /// When the batch passed this transform (timestamp, ms, UTC).
    IngestTime,
}

/// `[transforms.<name>] type = "add_column"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumnConfig {
    /// The column's name.
    pub name: String,
    /// A constant.
    pub value: Option<ConstantValue>,
    /// A computed value.
    pub computed: Option<Computed>,
    /// Tables to change; others pass unchanged.
    #[serde(default)]
    pub tables: TableSelector,
}

crate::register_transform!(
    "add_column",
    AddColumnConfig,
    "add a constant or computed column"
);

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

#[async_trait]
impl TransformConfig for AddColumnConfig {
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.value.is_some() == self.computed.is_some() {
            return Err(BuildError::new(
                &cx.name,
                "set exactly one of `value` and `computed`",
            ));
        }
        if self.name.is_empty() {
            return Err(BuildError::new(&cx.name, "`name` is empty"));
        }
        Ok(Box::new(AddColumn(self.clone())))
    }

    fn describe(&self) -> String {
        format!("{} = {:?}{:?}", self.name, self.value, self.computed)
    }
}

struct AddColumn(AddColumnConfig);

#[async_trait]
impl Transform for AddColumn {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        let config = &self.0;
        if !config.tables.matches(&batch.table().id) {
            return Ok(batch);
        }
        let n = batch.num_rows();
        let id = &batch.table().id;
        let column: ArrayRef = match (&config.value, config.computed) {
            (Some(ConstantValue::Text(t)), _) => {
                let text = t
                    .replace("{table}", id.name())
                    .replace("{schema}", id.schema().unwrap_or(""));
                Arc::new(StringArray::from(vec![text.as_str(); n]))
            }
            (Some(ConstantValue::Int(v)), _) => Arc::new(Int64Array::from(vec![*v; n])),
            (Some(ConstantValue::Float(v)), _) => Arc::new(Float64Array::from(vec![*v; n])),
            (Some(ConstantValue::Bool(v)), _) => Arc::new(BooleanArray::from(vec![*v; n])),
            (None, Some(Computed::Table)) => Arc::new(StringArray::from(vec![id.name(); n])),
            (None, Some(Computed::Schema)) => Arc::new(StringArray::from(vec![id.schema(); n])),
            (None, Some(Computed::IngestTime)) => {
                let now = chrono::Utc::now().timestamp_millis();
                Arc::new(TimestampMillisecondArray::from(vec![now; n]).with_timezone("UTC"))
            }
            (None, None) => unreachable!("checked at build"),
        };
        if batch.table().key_columns.contains(&config.name) {
            return Err(ComponentError::permanent(format!(
                "add_column would replace key column `{}` of {id}",
                config.name
            )));
        }
        let schema = batch.schema();
        let mut fields: Vec<Arc<Field>> = Vec::new();
        let mut columns = Vec::new();
        for (field, col) in schema.fields().iter().zip(batch.rows().columns()) {
            if field.name() != &config.name {
                fields.push(field.clone());
                columns.push(col.clone());
            }
        }
        fields.push(Arc::new(Field::new(
            &config.name,
            column.data_type().clone(),
            true,
        )));
        columns.push(column);
        let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(ComponentError::permanent)?;
        batch.with_rows(rows).map_err(ComponentError::permanent)
    }
}
