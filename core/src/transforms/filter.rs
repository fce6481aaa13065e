//! `type = "filter"`: keeps the rows for which a predicate is true.
//!
//! ```toml
//! [transforms.live_orders]
//! type = "filter"
//! inputs = ["atlas"]
//! where = "status != 'archived' and total >= 10"
//! tables = ["shop.schema/orders"]   # optional
//! ```
//!
//! Delete rows always pass: they carry only the key, so the predicate cannot be judged on them, and
//! deleting a row that was filtered out is harmless. An update that makes a row stop matching is
//! turned into a delete of that key, so the mirror never keeps a stale copy of a row that left the
//! filter.

use arrow::array::Array;
use async_trait::async_trait;
use serde::Deserialize;

use super::predicate::Predicate;
use super::TableSelector;
use crate::component::{BuildError, Transform, TransformConfig, TransformContext};
use crate::error::ComponentError;
use crate::model::{ChangeBatch, RowOp};

/// `[transforms.<name>] type = "filter"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The predicate (see [`super::predicate`]).
    #[serde(rename = "where")]
    pub predicate: String,
    /// Tables to filter; others pass unchanged.
    #[serde(default)]
    pub tables: TableSelector,
}

crate::register_transform!("filter", FilterConfig, "keep rows matching a predicate");

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

#[async_trait]
impl TransformConfig for FilterConfig {
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        let predicate: Predicate = self
            .predicate
            .parse()
            .map_err(|e| BuildError::new(&cx.name, format!("`where`: {e}")))?;
        Ok(Box::new(Filter {
            predicate,
            tables: self.tables.clone(),
        }))
    }

    fn describe(&self) -> String {
        format!("where {}", self.predicate)
    }
}

struct Filter {
    predicate: Predicate,
    tables: TableSelector,
}

#[async_trait]
impl Transform for Filter {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        if !self.tables.matches(&batch.table().id) {
            return Ok(batch);
        }
        let verdict = self.predicate.evaluate(batch.rows()).map_err(|e| {
            ComponentError::permanent(format!("filter on {}: {e}", batch.table().id))
        })?;
        // Keep matching rows and every delete; a non-matching update/upsert becomes a delete (the
        // row may have matched before), a non-matching insert is dropped.
        let mut ops: Vec<RowOp> = batch.ops().to_vec();
        let mut keep = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter_mut().enumerate() {
            let matched = verdict.is_valid(i) && verdict.value(i);
            keep.push(match op {
                RowOp::Delete => true,
                _ if matched => true,
                RowOp::Insert => false,
                RowOp::Update | RowOp::Upsert => {
                    *op = RowOp::Delete;
                    true
                }
            });
        }
        let (table, rows, _, checkpoint) = batch.into_parts();
        let batch =
            ChangeBatch::new(table, rows, ops, checkpoint).map_err(ComponentError::permanent)?;
        batch
            .filter(&arrow::array::BooleanArray::from(keep))
            .map_err(ComponentError::permanent)
    }
}
