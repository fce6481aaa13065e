//! The table runtime: each collection's table, its converter and saved state, how a table starts
//! (sampled, split into ranges) or is restored from its checkpoint, and how rows become batches.
//!
//! A table's [`TableState`] travels in every batch's checkpoint: the initial-sync ranges left, the
//! column types. [`convert`] attaches the state after a batch's rows; when the rows added columns,
//! the caller records them ([`Worker::record_new_columns`]) before it sends the batch.

use std::sync::Arc;

use bson::{Bson, RawDocumentBuf};
use mirror_core::mapping::{SampleMethod, TableMapping, TableSchemaState, KEY_COLUMN};
use mirror_core::model::{ChangeBatch, Checkpoint, CheckpointState, RowOp, Table};
use mirror_core::telemetry::{SourceTableTelemetry, TablePhase};
use mirror_core::ComponentError;
use mongodb::Collection;
use tracing::info;

use super::{retrying, Worker};
use crate::bson_arrow::{BsonConverter, RowInput};
use crate::discovery;
use crate::errors::{classify, SourceError};
use crate::progress::Progress;
use crate::snapshot::{self, RangeJob};
use crate::state::{id_from_json, id_to_json, Phase, RangeState, TableState, STATE_VERSION};

/// A change event waiting for its table's next batch.
pub(super) enum Pending {
    Doc(RawDocumentBuf),
    Delete(RawDocumentBuf),
}

pub(super) struct TableRt {
    pub(super) coll: String,
    pub(super) table: Arc<Table>,
    pub(super) state: TableState,
    pub(super) converter: BsonConverter,
    /// Initial-sync generation: pages of an older one (before a resync) are ignored.
    pub(super) epoch: u64,
    pub(super) pending: Vec<Pending>,
    pub(super) ranges_left: usize,
    /// Copies of `converter` for converting pages ahead (see
    /// [`Ahead`](super::watermark::Ahead)), kept warm between pages.
    pub(super) spare: Vec<BsonConverter>,
    /// What the table reports (phase, progress, events).
    pub(super) tel: Arc<SourceTableTelemetry>,
}

impl Worker {
    pub(super) fn claim_target(&self, coll: &str) -> Result<Arc<Table>, ComponentError> {
        let id = discovery::target(&self.config, &self.tables_cfg, &self.db, coll)
            .map_err(|m| ComponentError::permanent(SourceError(m)))?;
        let source = format!("{}.{coll}", self.db);
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        match targets.get(&id) {
            Some(other) if *other != source => {
                return Err(ComponentError::permanent(SourceError(format!(
                    "`{other}` and `{source}` would both be mirrored into table {id}; set `naming = \"schema\"` or a `target` in [tables.\"{source}\"]"
                ))));
            }
            _ => {
                targets.insert(id.clone(), source);
            }
        }
        Ok(Arc::new(Table::new(id, [KEY_COLUMN])))
    }

    /// The table's telemetry, following this database's stream.
    fn table_telemetry(&self, table: &Table) -> Arc<SourceTableTelemetry> {
        let tel = self.telemetry.table(&table.id);
        tel.set_stream(&self.db);
        tel
    }

    pub(super) async fn restore_table(&mut self, state: TableState) -> Result<(), ComponentError> {
        let Some((db, coll)) = state.source.split_once('.') else {
            return Err(ComponentError::permanent(SourceError(format!(
                "a saved table state names `{}`, not `<db>.<collection>`",
                state.source
            ))));
        };
        if db != self.db {
            return Ok(());
        }
        let coll = coll.to_owned();
        let table = self.claim_target(&coll)?;
        let saved = TableSchemaState::from_json(state.schema.clone()).map_err(|e| {
            ComponentError::permanent(SourceError(format!("table {}: {e}", table.id)))
        })?;
        let schema = self
            .schemas
            .adopt(&table.id, Some(saved))
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
        let mapping = TableMapping::resolve(&self.tables_cfg, &state.source);
        let converter = BsonConverter::new(table.id.to_string(), mapping, schema)
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
        let idx = self.tables.len();
        let ranges_left = state.ranges.iter().filter(|r| !r.done).count();
        let tel = self.table_telemetry(&table);
        let mut rt = TableRt {
            coll: coll.clone(),
            table,
            state,
            converter,
            epoch: 0,
            pending: Vec::new(),
            ranges_left,
            spare: Vec::new(),
            tel,
        };
        if rt.state.phase == Phase::Streaming {
            rt.tel.set_phase(TablePhase::Streaming);
        }
        if rt.state.phase == Phase::InitialSync {
            self.progress
                .add(&rt.tel, rt.state.estimated, rt.state.copied);
            for (r, range) in rt.state.ranges.iter().enumerate() {
                if !range.done {
                    self.jobs.push_back((range_job(idx, r, range)?, rt.epoch));
                }
            }
            if ranges_left == 0 {
                finish_sync(&mut rt, &self.progress);
            }
        }
        self.tables.push(rt);
        self.by_coll.insert(coll, idx);
        Ok(())
    }

    pub(super) async fn discover(&mut self) -> Result<(), ComponentError> {
        let (client, config, db) = (&self.client, &self.config, &self.db);
        let found = retrying(&self.shutdown, "listing collections", || {
            discovery::collections(client, config, db)
        })
        .await?;
        for d in found {
            if !self.by_coll.contains_key(&d.name) {
                self.add_table(&d.name).await?;
            }
        }
        Ok(())
    }

    /// Starts mirroring a collection: sample its types, split it into ranges, queue the readers.
    pub(super) async fn add_table(&mut self, coll: &str) -> Result<(), ComponentError> {
        let table = self.claim_target(coll)?;
        let source = format!("{}.{coll}", self.db);
        let mapping = TableMapping::resolve(&self.tables_cfg, &source);
        // Columns the table already has (recorded before a crash, or by a collection of the same
        // name before it was dropped) keep their types; the sample only adds columns.
        let known = self
            .schemas
            .adopt(&table.id, None)
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
        let mut converter = BsonConverter::new(table.id.to_string(), mapping.clone(), known)
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
        let collection = self.collection(coll);
        if mapping.sample_size > 0 {
            let sample = retrying(&self.shutdown, "sampling a new collection", || {
                self.sample(&collection, &mapping)
            })
            .await?;
            converter
                .observe_sample(sample.iter().map(|d| d.as_ref()))
                .map_err(|e| ComponentError::permanent(SourceError(format!("{source}: {e}"))))?;
        }
        let idx = self.tables.len();
        let tel = self.table_telemetry(&table);
        let mut rt = TableRt {
            tel,
            coll: coll.to_owned(),
            table,
            state: TableState {
                version: STATE_VERSION,
                source: source.clone(),
                phase: Phase::InitialSync,
                ranges: Vec::new(),
                schema: converter.state().to_json(),
                copied: 0,
                estimated: 0,
                events: 0,
            },
            converter,
            epoch: 0,
            pending: Vec::new(),
            ranges_left: 0,
            spare: Vec::new(),
        };
        self.plan_ranges(idx, &mut rt).await?;
        info!(collection = %source, table = %rt.table.id, estimated = rt.state.estimated, ranges = rt.state.ranges.len(), "initial sync starts");
        self.tables.push(rt);
        self.by_coll.insert(coll.to_owned(), idx);
        // The inferred types are facts from the first file on: durable before any page is sent.
        self.record_new_columns(&[idx]).await
    }

    async fn sample(
        &self,
        coll: &Collection<RawDocumentBuf>,
        mapping: &TableMapping,
    ) -> Result<Vec<RawDocumentBuf>, ComponentError> {
        let what = format!("sampling `{}`", coll.namespace());
        let mut docs = Vec::new();
        match mapping.sample {
            SampleMethod::Random => {
                let mut cursor = coll
                    .aggregate(vec![
                        bson::doc! {"$sample": {"size": mapping.sample_size as i64}},
                    ])
                    .await
                    .map_err(|e| classify(e, &what))?
                    .with_type::<RawDocumentBuf>();
                while cursor.advance().await.map_err(|e| classify(e, &what))? {
                    docs.push(cursor.current().to_raw_document_buf());
                }
            }
            SampleMethod::First => {
                let mut cursor = coll
                    .find(bson::doc! {})
                    .limit(mapping.sample_size as i64)
                    .await
                    .map_err(|e| classify(e, &what))?;
                while cursor.advance().await.map_err(|e| classify(e, &what))? {
                    docs.push(cursor.current().to_raw_document_buf());
                }
            }
        }
        Ok(docs)
    }

    pub(super) async fn plan_ranges(
        &mut self,
        idx: usize,
        rt: &mut TableRt,
    ) -> Result<(), ComponentError> {
        let collection = self.collection(&rt.coll);
        let (readers, page) = (self.config.snapshot_readers, self.config.snapshot_page_size);
        let (estimated, points) = retrying(&self.shutdown, "planning an initial sync", || async {
            let estimated = collection
                .estimated_document_count()
                .await
                .map_err(|e| classify(e, &format!("counting `{}`", collection.namespace())))?;
            let points = snapshot::split_points(&collection, readers, estimated, page).await?;
            Ok((estimated, points))
        })
        .await?;
        let mut bounds: Vec<Option<Bson>> = vec![None];
        bounds.extend(points.into_iter().map(Some));
        bounds.push(None);
        rt.state.ranges = bounds
            .windows(2)
            .map(|w| RangeState {
                lo: w[0].as_ref().map(id_to_json),
                hi: w[1].as_ref().map(id_to_json),
                after: None,
                done: false,
            })
            .collect();
        rt.state.estimated = estimated;
        rt.state.copied = 0;
        rt.ranges_left = rt.state.ranges.len();
        self.progress.add(&rt.tel, estimated, 0);
        for (r, range) in rt.state.ranges.iter().enumerate() {
            self.jobs.push_back((range_job(idx, r, range)?, rt.epoch));
        }
        Ok(())
    }
}

pub(super) fn finish_sync(rt: &mut TableRt, progress: &Progress) {
    rt.state.phase = Phase::Streaming;
    rt.state.ranges.clear();
    progress.finish(&rt.tel);
    info!(table = %rt.table.id, copied = rt.state.copied, "initial sync complete; streaming changes");
}

/// Converts rows and attaches the table's state after them. Columns the rows added must be
/// recorded ([`Worker::record_new_columns`]) before the batch is sent.
pub(super) fn convert(
    rt: &mut TableRt,
    rows: &[RowInput<'_>],
    ops: Vec<RowOp>,
) -> Result<ChangeBatch, ComponentError> {
    let records = rt.converter.convert(rows).map_err(|e| {
        ComponentError::permanent(SourceError(format!(
            "converting `{}` to table {}: {e}",
            rt.state.source, rt.table.id
        )))
    })?;
    rt.state.schema = rt.converter.state().to_json();
    let checkpoint = table_checkpoint(rt)?;
    ChangeBatch::new(rt.table.clone(), records, ops, checkpoint).map_err(ComponentError::permanent)
}

pub(super) fn table_checkpoint(rt: &TableRt) -> Result<Checkpoint, ComponentError> {
    let state = CheckpointState::from_json(&rt.state).map_err(ComponentError::permanent)?;
    Ok(Checkpoint::table(rt.table.id.clone(), state))
}

pub(super) fn range_job(
    table: usize,
    range: usize,
    state: &RangeState,
) -> Result<RangeJob, ComponentError> {
    let id = |v: &Option<serde_json::Value>| -> Result<Option<Bson>, ComponentError> {
        v.as_ref()
            .map(id_from_json)
            .transpose()
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))
    };
    Ok(RangeJob {
        table,
        range,
        lo: id(&state.lo)?,
        hi: id(&state.hi)?,
        after: id(&state.after)?,
    })
}
