//! Stream fan-out: the database's one change stream, split into its tables.
//!
//! Data events queue per table ([`Pending`]) and leave as one batch per table at the next
//! [`Worker::flush`], the last of them carrying the stream position they reach. Collection events
//! (drop, rename, dropDatabase) end a table's life by the drop policy; a lost history (286)
//! re-copies the database's tables or stops, by the history-lost policy.

use bson::RawDocumentBuf;
use mirror_core::model::{ChangeBatch, RowOp};
use mirror_core::telemetry::EventKind;
use mirror_core::{ComponentError, SourceItem};
use tracing::{debug, info, warn};

use super::tables::{convert, table_checkpoint, Pending};
use super::Worker;
use crate::bson_arrow::{encode_key, RowInput};
use crate::config::{DropPolicy, HistoryLostPolicy};
use crate::errors::SourceError;
use crate::state::Phase;
use crate::stream::{StartAt, StreamMsg};

impl Worker {
    pub(super) async fn on_stream(&mut self, msg: StreamMsg) -> Result<(), ComponentError> {
        match msg {
            StreamMsg::Position { time, token } => {
                if time >= self.stream_time {
                    self.stream_time = time;
                    self.stream_token = Some(token);
                }
            }
            StreamMsg::Event { event, time, token } => {
                // The event's own position is taken once the event is handled: a drop empties its
                // table with the position *before* the drop, so a restart from that checkpoint
                // sees the drop again rather than skipping the truncation.
                self.on_event(event, time).await?;
                self.stream_time = self.stream_time.max(time);
                self.stream_token = Some(token);
            }
            StreamMsg::HistoryLost(message) => self.history_lost(message).await?,
            StreamMsg::Failed(e) => return Err(e),
        }
        Ok(())
    }

    async fn on_event(&mut self, event: RawDocumentBuf, time: u64) -> Result<(), ComponentError> {
        let op = event.get_str("operationType").unwrap_or("");
        let coll = event
            .get_document("ns")
            .ok()
            .and_then(|ns| ns.get_str("coll").ok())
            .map(str::to_owned);
        match op {
            "insert" | "update" | "replace" | "delete" => {
                let Some(coll) = coll else { return Ok(()) };
                let Some(&idx) = self.by_coll.get(&coll) else {
                    if self.config.wants_collection(&self.db, &coll) {
                        self.discover_now = true;
                    }
                    return Ok(());
                };
                let key = event
                    .get_document("documentKey")
                    .ok()
                    .and_then(|k| k.get("_id").ok().flatten())
                    .ok_or_else(|| {
                        ComponentError::permanent(SourceError(format!(
                            "a `{op}` event on `{}.{coll}` has no documentKey._id",
                            self.db
                        )))
                    })?;
                if self.tables[idx].state.phase == Phase::InitialSync {
                    self.key_buf.clear();
                    encode_key(&mut self.key_buf, key)
                        .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
                    self.window.push_back((time, idx, self.key_buf.clone()));
                }
                let kind = match op {
                    "insert" => EventKind::Insert,
                    "update" => EventKind::Update,
                    "replace" => EventKind::Replace,
                    _ => EventKind::Delete,
                };
                let row = match op {
                    "delete" => Pending::Delete(event),
                    _ => match event.get_document("fullDocument") {
                        Ok(doc) => Pending::Doc(doc.to_raw_document_buf()),
                        // `updateLookup` found nothing: the document is gone, and its delete event
                        // follows. `whenAvailable` without a post-image: nothing to apply either.
                        Err(_) => {
                            debug!(collection = %coll, "update without a full document skipped");
                            return Ok(());
                        }
                    },
                };
                let rt = &mut self.tables[idx];
                rt.tel.add_events(kind, 1);
                if rt.pending.is_empty() {
                    self.flush_order.push(idx);
                }
                rt.pending.push(row);
                self.pending_rows += 1;
            }
            "drop" => {
                if let Some(idx) = coll.and_then(|c| self.by_coll.get(&c).copied()) {
                    self.collection_gone(idx, "dropped").await?;
                }
            }
            "rename" => {
                if let Some(idx) = coll.and_then(|c| self.by_coll.get(&c).copied()) {
                    self.collection_gone(idx, "renamed").await?;
                }
                // A rename onto an existing collection replaces it in the same event (mongod logs
                // no separate drop, only the rename's `dropTarget`): the target's table goes too,
                // and discovery copies the renamed collection under the target's name.
                let target = event
                    .get_document("to")
                    .ok()
                    .filter(|to| to.get_str("db") == Ok(self.db.as_str()))
                    .and_then(|to| to.get_str("coll").ok())
                    .and_then(|c| self.by_coll.get(c).copied());
                if let Some(idx) = target {
                    self.collection_gone(idx, "replaced by a rename").await?;
                }
                self.discover_now = true;
            }
            "dropDatabase" => {
                // mongod reports each collection's drop first; whatever is left goes now. Tables of
                // collections already gone are not emptied again (nor their names released: a
                // new collection may have taken the name meanwhile).
                let mut live: Vec<usize> = self.by_coll.values().copied().collect();
                live.sort_unstable();
                for idx in live {
                    self.collection_gone(idx, "dropped with its database")
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A dropped or renamed-away collection: keep or empty its table, and forget it so that a new
    /// collection of that name is copied from scratch.
    pub(super) async fn collection_gone(
        &mut self,
        idx: usize,
        how: &str,
    ) -> Result<(), ComponentError> {
        self.flush().await?;
        let coll = self.tables[idx].coll.clone();
        self.by_coll.remove(&coll);
        self.tables[idx].epoch += 1;
        self.pending_chunks.retain(|p| p.chunk.table != idx);
        self.reader_low.retain(|(t, _), _| *t != idx);
        let table = self.tables[idx].table.clone();
        match self.config.on_drop {
            DropPolicy::Keep => {
                info!(collection = %format!("{}.{coll}", self.db), table = %table.id, "collection {how}; its table keeps its rows (on_drop = \"keep\")")
            }
            DropPolicy::Truncate => {
                info!(collection = %format!("{}.{coll}", self.db), table = %table.id, "collection {how}; emptying its table (on_drop = \"truncate\")");
                let rt = &mut self.tables[idx];
                rt.state.phase = Phase::Streaming;
                rt.state.ranges.clear();
                let checkpoint = table_checkpoint(rt)?;
                let position = self.position();
                self.send(
                    SourceItem::Batch(ChangeBatch::truncate(table.clone(), checkpoint)),
                    position,
                )
                .await?;
            }
        }
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&table.id);
        Ok(())
    }

    pub(super) async fn history_lost(&mut self, message: String) -> Result<(), ComponentError> {
        match self.config.on_history_lost {
            HistoryLostPolicy::Fail => Err(ComponentError::permanent(SourceError(format!(
                "the change stream of `{}` cannot resume: its saved position is older than the oldest oplog entry ({message}). \
                 Changes in between are lost to mirror. Set on_history_lost = \"resync\" to copy the database's tables again, \
                 and give the oplog more room (replSetResizeOplog, or Atlas oplog size) so that it covers mirror's downtime",
                self.db
            )))),
            HistoryLostPolicy::Resync => {
                warn!(db = %self.db, "change stream history lost: emptying and copying this database's tables again (on_history_lost = \"resync\")");
                self.readers_cancel.cancel();
                self.readers_cancel = self.shutdown.child_token();
                self.jobs.clear();
                self.pending_chunks.clear();
                self.reader_low.clear();
                self.window.clear();
                for rt in &mut self.tables {
                    rt.pending.clear();
                }
                self.pending_rows = 0;
                self.flush_order.clear();
                if let Some(again) = self.open_stream(StartAt::Now).await? {
                    return Err(ComponentError::permanent(SourceError(format!("the change stream of `{}` cannot start: {again}", self.db))));
                }
                for idx in 0..self.tables.len() {
                    if !self.by_coll.values().any(|i| *i == idx) {
                        continue;
                    }
                    let mut rt = self.tables.remove(idx);
                    rt.epoch += 1;
                    rt.state.phase = Phase::InitialSync;
                    // The ranges go into the truncation's checkpoint: once it is committed, a
                    // restart must find what is left to copy (not an empty list, which reads as
                    // "copy complete" and would leave the table empty).
                    let planned = self.plan_ranges(idx, &mut rt).await;
                    self.tables.insert(idx, rt);
                    planned?;
                    let checkpoint = table_checkpoint(&self.tables[idx])?;
                    let table = self.tables[idx].table.clone();
                    // Without the new stream position: until every table is emptied, a restart
                    // must resume from the old one, find the history lost again and resync all.
                    self.send(SourceItem::Batch(ChangeBatch::truncate(table, checkpoint)), None)
                        .await?;
                }
                // Now the new position may be committed.
                self.send_checkpoint().await?;
                Ok(())
            }
        }
    }

    /// Publishes every pending change event, one batch per table, after recording the columns
    /// they add (one ledger write for all of them).
    pub(super) async fn flush(&mut self) -> Result<(), ComponentError> {
        let order = std::mem::take(&mut self.flush_order);
        let count = order.len();
        let mut batches = Vec::with_capacity(count);
        for &idx in &order {
            let rt = &mut self.tables[idx];
            let pending = std::mem::take(&mut rt.pending);
            let mut rows = Vec::with_capacity(pending.len());
            let mut ops = Vec::with_capacity(pending.len());
            for p in &pending {
                match p {
                    Pending::Doc(d) => {
                        rows.push(RowInput::Document(d));
                        ops.push(RowOp::Upsert);
                    }
                    Pending::Delete(event) => {
                        let id = event
                            .get_document("documentKey")
                            .ok()
                            .and_then(|k| k.get("_id").ok().flatten());
                        if let Some(id) = id {
                            rows.push(RowInput::Delete(id));
                            ops.push(RowOp::Delete);
                        }
                    }
                }
            }
            rt.state.events += ops.len() as u64;
            batches.push(convert(rt, &rows, ops)?);
        }
        self.record_new_columns(&order).await?;
        for (n, batch) in batches.into_iter().enumerate() {
            if n + 1 == count {
                // Everything the stream reported is in these batches now.
                if let Some(token) = &self.stream_token {
                    self.published = Some((self.stream_time, token.clone()));
                }
            }
            let position = if n + 1 == count {
                self.position()
            } else {
                None
            };
            self.send(SourceItem::Batch(batch), position).await?;
        }
        self.pending_rows = 0;
        if count == 0 {
            if let Some(token) = &self.stream_token {
                self.published = Some((self.stream_time, token.clone()));
            }
        }
        Ok(())
    }
}
