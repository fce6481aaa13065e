//! Watermark merge: initial-sync pages joined with the change stream into one ordered output.
//!
//! Readers copy ranges of `_id`s page by page while the stream goes on. Each page carries the
//! cluster time before (`low`) and after (`high`) it was read; it is released once the stream has
//! reported everything up to `high`, without the documents that a change event after `low`
//! touched (those events, published first, carry a state at least as new). Pages convert ahead on
//! the blocking pool ([`Ahead`]) while they wait.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use bson::RawDocumentBuf;
use mirror_core::model::{ChangeBatch, RowOp};
use mirror_core::{ComponentError, SourceItem};
use tracing::debug;

use super::tables::{convert, finish_sync, table_checkpoint};
use super::Worker;
use crate::bson_arrow::{encode_key, BsonConverter, RowInput};
use crate::errors::SourceError;
use crate::snapshot::{self, Chunk, RangeJob, ReaderMsg};
use crate::state::{id_to_json, Phase};

/// A page being converted ahead of its turn, on the blocking pool, by a copy of its table's
/// converter, so that one large collection's pages convert on several cores while the worker
/// keeps pages and change events in order. The result is used only if the copy added no
/// column and the table's columns are still those it started from; otherwise (new fields, which
/// need inference over the rows actually published, recorded before the page is sent) the page
/// is converted again in order, exactly as without this.
pub(super) struct Ahead {
    /// Gives the documents back, with the rows and the converter if they are usable.
    pub(super) task: tokio::task::JoinHandle<(Vec<RawDocumentBuf>, Option<ConvertedAhead>)>,
}

/// Rows converted ahead, and the converter copy that made them (returned to the spares).
type ConvertedAhead = (RecordBatch, BsonConverter);

/// A page waiting for the change stream to pass it: its documents, or their conversion ahead.
pub(super) struct PendingChunk {
    pub(super) chunk: Chunk,
    pub(super) epoch: u64,
    pub(super) ahead: Option<Ahead>,
}

impl Worker {
    pub(super) fn start_readers(&mut self) {
        while self.running_readers < self.config.snapshot_readers {
            let Some((job, epoch)) = self.jobs.pop_front() else {
                return;
            };
            let Some(rt) = self.tables.get(job.table) else {
                continue;
            };
            if rt.epoch != epoch {
                continue;
            }
            self.running_readers += 1;
            let coll = self.collection(&rt.coll);
            let (tx, cancel) = (self.chunk_tx.clone(), self.readers_cancel.clone());
            let (client, pref, page) = (
                self.client.clone(),
                self.read_preference(),
                self.config.snapshot_page_size,
            );
            // The reader reports the table index it is given, so it is given the tagged one: its
            // pages go straight into `chunk_tx` (no forwarding task holding one more page each).
            let job = RangeJob {
                table: tag(job.table, epoch),
                ..job
            };
            self.readers.spawn(snapshot::read_range(
                client, coll, pref, job, page, tx, cancel,
            ));
        }
    }

    pub(super) fn on_reader(&mut self, msg: ReaderMsg) -> Result<(), ComponentError> {
        match msg {
            ReaderMsg::Started { table, range, low } => {
                let (table, epoch) = untag(table);
                if self.tables.get(table).is_some_and(|t| t.epoch == epoch) {
                    self.reader_low.insert((table, range), low);
                }
            }
            ReaderMsg::Chunk(mut chunk) => {
                let (table, epoch) = untag(chunk.table);
                chunk.table = table;
                if self.tables.get(table).is_some_and(|t| t.epoch == epoch) {
                    if chunk.done {
                        self.reader_low.remove(&(table, chunk.range));
                    } else {
                        self.reader_low.insert((table, chunk.range), chunk.high);
                    }
                    let ahead = self.convert_ahead(&mut chunk);
                    self.pending_chunks.push(PendingChunk {
                        chunk,
                        epoch,
                        ahead,
                    });
                }
            }
            ReaderMsg::Failed(e) => return Err(e),
        }
        Ok(())
    }

    /// Publishes the pages the stream has caught up with.
    pub(super) async fn release_chunks(&mut self) -> Result<(), ComponentError> {
        let mut i = 0;
        while i < self.pending_chunks.len() {
            if self.pending_chunks[i].chunk.high > self.stream_time {
                i += 1;
                continue;
            }
            let pending = self.pending_chunks.remove(i);
            if self.tables[pending.chunk.table].epoch != pending.epoch {
                continue;
            }
            // Events up to now go first; the page follows without the documents they touched.
            self.flush().await?;
            self.publish_chunk(pending.chunk, pending.ahead).await?;
        }
        // Events older than every page still in flight can no longer touch one.
        let oldest = self
            .pending_chunks
            .iter()
            .map(|p| p.chunk.low)
            .chain(self.reader_low.values().copied())
            .min();
        match oldest {
            Some(low) => {
                while self.window.front().is_some_and(|(t, _, _)| *t <= low) {
                    self.window.pop_front();
                }
            }
            None if self.jobs.is_empty() && self.running_readers == 0 => self.window.clear(),
            None => {}
        }
        Ok(())
    }

    /// Starts converting `chunk`'s documents on the blocking pool (taking them out of the chunk
    /// until the conversion returns them), with a copy of the table's converter.
    pub(super) fn convert_ahead(&mut self, chunk: &mut Chunk) -> Option<Ahead> {
        let rt = self.tables.get_mut(chunk.table)?;
        let converter = loop {
            match rt.spare.pop() {
                Some(c) if c.state() == rt.converter.state() => break c,
                Some(_) => continue,
                None => {
                    break BsonConverter::new(
                        rt.table.id.to_string(),
                        rt.converter.mapping().clone(),
                        rt.converter.state().clone(),
                    )
                    .ok()?
                }
            }
        };
        let docs = std::mem::take(&mut chunk.docs);
        let task = tokio::task::spawn_blocking(move || {
            let mut converter = converter;
            let columns = converter.state().columns().len();
            let rows: Vec<RowInput<'_>> = docs.iter().map(|d| RowInput::Document(d)).collect();
            let converted = converter.convert(&rows).ok();
            drop(rows);
            let usable = converted.filter(|_| converter.state().columns().len() == columns);
            (docs, usable.map(|batch| (batch, converter)))
        });
        Some(Ahead { task })
    }

    pub(super) async fn publish_chunk(
        &mut self,
        mut chunk: Chunk,
        ahead: Option<Ahead>,
    ) -> Result<(), ComponentError> {
        let mut converted = None;
        if let Some(ahead) = ahead {
            let (docs, result) = ahead.task.await.map_err(|e| {
                ComponentError::permanent(SourceError(format!("converting a page failed: {e}")))
            })?;
            chunk.docs = docs;
            converted = result;
        }
        let touched: HashSet<&str> = self
            .window
            .iter()
            .filter(|(t, table, _)| *table == chunk.table && *t > chunk.low)
            .map(|(_, _, k)| k.as_str())
            .collect();
        // Which documents the page keeps: all, unless change events since it was read touched some.
        let mut keep: Vec<bool> = Vec::new();
        if !touched.is_empty() {
            keep.reserve(chunk.docs.len());
            let mut key = String::new();
            for doc in &chunk.docs {
                let id = doc.get("_id").ok().flatten().ok_or_else(|| {
                    ComponentError::permanent(SourceError("a document has no _id".into()))
                })?;
                key.clear();
                encode_key(&mut key, id)
                    .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
                keep.push(!touched.contains(key.as_str()));
            }
        }
        let kept = if keep.is_empty() {
            chunk.docs.len()
        } else {
            keep.iter().filter(|k| **k).count()
        };
        let skipped = chunk.docs.len() - kept;
        let rt = &mut self.tables[chunk.table];
        let ops = vec![RowOp::Upsert; kept];
        let copied = chunk.docs.len() as u64;
        rt.state.copied += copied;
        if let Some(range) = rt.state.ranges.get_mut(chunk.range) {
            range.after = chunk.last_id.as_ref().map(id_to_json);
            if chunk.done {
                range.done = true;
                rt.ranges_left = rt.ranges_left.saturating_sub(1);
            }
        }
        let bytes: usize = chunk.docs.iter().map(|d| d.as_bytes().len()).sum();
        self.progress.advance(&rt.tel, copied, bytes as u64);
        if skipped > 0 {
            debug!(table = %rt.table.id, skipped, "page documents superseded by change events");
        }
        if rt.ranges_left == 0 && rt.state.phase == Phase::InitialSync {
            finish_sync(rt, &self.progress);
        }
        // The conversion ahead stands if the table's columns are still those it was made with
        // (it added none): converting in order now would give the same rows.
        let converted = converted.filter(|(_, c)| c.state() == rt.converter.state());
        let batch = match converted {
            Some((records, converter)) => {
                rt.spare.push(converter);
                let records = if skipped > 0 {
                    arrow::compute::filter_record_batch(
                        &records,
                        &arrow::array::BooleanArray::from(keep),
                    )
                    .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?
                } else {
                    records
                };
                let checkpoint = table_checkpoint(rt)?;
                ChangeBatch::new(rt.table.clone(), records, ops, checkpoint)
                    .map_err(ComponentError::permanent)?
            }
            None => {
                let rows: Vec<RowInput<'_>> = chunk
                    .docs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| keep.is_empty() || keep[*i])
                    .map(|(_, d)| RowInput::Document(d))
                    .collect();
                convert(rt, &rows, ops)?
            }
        };
        self.record_new_columns(&[chunk.table]).await?;
        let position = self.position();
        self.send(SourceItem::Batch(batch), position).await
    }
}

/// Readers report the table index with the epoch in the high bits, so pages of a superseded copy
/// are recognised.
const EPOCH_SHIFT: u32 = 40;

fn tag(table: usize, epoch: u64) -> usize {
    table | ((epoch as usize) << EPOCH_SHIFT)
}

fn untag(table: usize) -> (usize, u64) {
    (
        table & ((1 << EPOCH_SHIFT) - 1),
        (table >> EPOCH_SHIFT) as u64,
    )
}
