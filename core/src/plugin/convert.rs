//! Change batches to and from the ABI's batch parts.

use std::collections::HashMap;
use std::sync::Arc;

use mirror_plugin_api::BatchParts;

use crate::model::{BatchError, ChangeBatch, Checkpoint, CheckpointState, RowOp, Table, TableId};

/// The parts of `batch` for a plugin (the checkpoint stays on the host side).
pub(crate) fn to_parts(batch: &ChangeBatch) -> BatchParts {
    BatchParts {
        rows: batch.rows().clone(),
        ops: batch.ops().iter().map(|op| *op as u8).collect(),
        table: batch.table().id.to_string(),
        key_columns: batch.table().key_columns.clone(),
        checkpoint: None,
    }
}

/// Why parts from a plugin are not a valid change batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FromPartsError {
    #[error("bad table `{0}`: {1}")]
    Table(String, crate::model::TableIdError),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// Reuses one `Arc<Table>` per table and key set, so downstream sees stable table handles.
#[derive(Default)]
pub(crate) struct TableCache(HashMap<(String, Vec<String>), Arc<Table>>);

impl TableCache {
    /// A change batch from a plugin's parts; `checkpoint` is what the host commits for it.
    pub fn batch_from(
        &mut self,
        parts: BatchParts,
        checkpoint: Checkpoint,
    ) -> Result<ChangeBatch, FromPartsError> {
        let key = (parts.table, parts.key_columns);
        let table = match self.0.get(&key) {
            Some(t) => t.clone(),
            None => {
                let id: TableId = key
                    .0
                    .parse()
                    .map_err(|e| FromPartsError::Table(key.0.clone(), e))?;
                let table = Arc::new(Table::new(id, key.1.clone()));
                self.0.insert(key, table.clone());
                table
            }
        };
        let ops: Vec<RowOp> = parts
            .ops
            .iter()
            .map(|op| RowOp::from_marker(*op as i32).unwrap_or(RowOp::Upsert))
            .collect();
        Ok(ChangeBatch::new(table, parts.rows, ops, checkpoint)?)
    }
}

/// A source checkpoint from a plugin's bytes.
pub(crate) fn source_checkpoint(bytes: Option<Vec<u8>>) -> Checkpoint {
    bytes.map_or_else(Checkpoint::none, |b| {
        Checkpoint::source(CheckpointState::from_bytes(b))
    })
}
