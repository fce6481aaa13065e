//! Test components for the engine's tests: a counting source and a recording sink that fail,
//! stall or misbehave on command. They report into a named [`Probe`] shared with the test.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{Int64Array, RecordBatch};
use async_trait::async_trait;
use mirror_core::checkpoint::{
    CheckpointError, CheckpointStore, LocalCheckpointStore, ResumeState,
};
use mirror_core::component::{
    BuildError, Sink, SinkConfig, SinkContext, Source, SourceConfig, SourceContext, SourceItem,
};
use mirror_core::config::Secret;
use mirror_core::engine::Ack;
use mirror_core::model::CheckpointState;
use mirror_core::{ChangeBatch, Checkpoint, ComponentError, RowOp, Table, TableId};
use serde::Deserialize;

/// What the components of one test observed.
#[derive(Default, Debug)]
pub struct Probe {
    /// Batches the source emitted, by `seq` value, in order.
    pub emitted: Mutex<Vec<u64>>,
    /// Rows a sink made durable (acknowledged), per sink name.
    pub durable: Mutex<BTreeMap<String, Vec<u64>>>,
    /// Times the source's `next` was called while a failure was injected.
    pub source_failures: AtomicU64,
    /// Times a sink's flush was called.
    pub flushes: AtomicU64,
    /// Batches a sink made durable, per sink name.
    pub batches: Mutex<BTreeMap<String, Vec<ChangeBatch>>>,
}

impl Probe {
    pub fn emitted(&self) -> Vec<u64> {
        self.emitted.lock().unwrap().clone()
    }

    pub fn batches(&self, sink: &str) -> Vec<ChangeBatch> {
        self.batches
            .lock()
            .unwrap()
            .get(sink)
            .cloned()
            .unwrap_or_default()
    }

    pub fn durable(&self, sink: &str) -> Vec<u64> {
        self.durable
            .lock()
            .unwrap()
            .get(sink)
            .cloned()
            .unwrap_or_default()
    }
}

/// The probe named `name` (created on first use).
pub fn probe(name: &str) -> Arc<Probe> {
    static PROBES: OnceLock<Mutex<HashMap<String, Arc<Probe>>>> = OnceLock::new();
    PROBES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .clone()
}

/// `type = "counting"`: emits batches of one row `seq = 1, 2, 3, ...`; checkpoint = last seq.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountingConfig {
    pub probe: String,
    /// Last seq to emit; none = endless.
    pub count: Option<u64>,
    /// Fail transiently this many times when about to emit `transient_at`.
    #[serde(default)]
    pub transient_at: Option<u64>,
    #[serde(default)]
    pub transient_times: u64,
    /// Fail permanently when about to emit this seq.
    pub permanent_at: Option<u64>,
    /// Emit a checkpoint-only item after every batch.
    #[serde(default)]
    pub checkpoint_items: bool,
    /// Sleep this many ms before each batch.
    #[serde(default)]
    pub interval_ms: u64,
    /// A secret, to check redaction.
    pub password: Option<Secret>,
    /// Before each batch, record the table's "column types" (the seqs so far) in the schema
    /// ledger, as a source records new columns before the first batch that uses them.
    #[serde(default)]
    pub record_schema: bool,
}

mirror_core::register_source!("counting", CountingConfig, "test source");

struct Counting {
    next: u64,
    config: Arc<CountingConfigShared>,
    probe: Arc<Probe>,
    pending_checkpoint: Option<u64>,
    transient_left: u64,
    table: Arc<Table>,
    schemas: Option<mirror_core::checkpoint::SchemaLedger>,
}

#[derive(Debug)]
struct CountingConfigShared {
    count: Option<u64>,
    transient_at: Option<u64>,
    permanent_at: Option<u64>,
    checkpoint_items: bool,
    interval_ms: u64,
}

#[async_trait]
impl SourceConfig for CountingConfig {
    async fn build(&self, cx: SourceContext) -> Result<Box<dyn Source>, BuildError> {
        let last = match cx.resume.source() {
            Some(s) => s
                .to_json::<u64>()
                .map_err(|e| BuildError::new(&cx.name, e))?,
            None => 0,
        };
        Ok(Box::new(Counting {
            next: last + 1,
            config: Arc::new(CountingConfigShared {
                count: self.count,
                transient_at: self.transient_at,
                permanent_at: self.permanent_at,
                checkpoint_items: self.checkpoint_items,
                interval_ms: self.interval_ms,
            }),
            probe: probe(&self.probe),
            pending_checkpoint: None,
            transient_left: self.transient_times,
            table: Arc::new(Table::new(TableId::new("numbers"), ["seq"])),
            schemas: if self.record_schema {
                cx.schemas.clone()
            } else {
                None
            },
        }))
    }
}

pub fn one_row(table: Arc<Table>, seq: u64) -> ChangeBatch {
    let rows =
        RecordBatch::try_from_iter([("seq", Arc::new(Int64Array::from(vec![seq as i64])) as _)])
            .unwrap();
    ChangeBatch::new(
        table,
        rows,
        vec![RowOp::Upsert],
        Checkpoint::source(CheckpointState::from_json(&seq).unwrap()),
    )
    .unwrap()
}

/// The `seq` column's values (none if the batch has no such column).
pub fn rows_of(batch: &ChangeBatch) -> Vec<u64> {
    match batch.rows().column_by_name("seq") {
        Some(col) => col
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .flatten()
            .map(|v| v as u64)
            .collect(),
        None => Vec::new(),
    }
}

#[async_trait]
impl Source for Counting {
    async fn next(&mut self) -> Result<Option<SourceItem>, ComponentError> {
        if let Some(seq) = self.pending_checkpoint.take() {
            return Ok(Some(SourceItem::Checkpoint(Checkpoint::source(
                CheckpointState::from_json(&seq).unwrap(),
            ))));
        }
        if self.config.count.is_some_and(|c| self.next > c) {
            return Ok(None);
        }
        if self.config.interval_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.config.interval_ms)).await;
        }
        if self.config.transient_at == Some(self.next) && self.transient_left > 0 {
            self.transient_left -= 1;
            self.probe.source_failures.fetch_add(1, Ordering::SeqCst);
            return Err(ComponentError::transient(std::io::Error::other(
                "source hiccup",
            )));
        }
        if self.config.permanent_at == Some(self.next) {
            return Err(ComponentError::permanent(std::io::Error::other(
                "source broke for good",
            )));
        }
        let seq = self.next;
        if let Some(ledger) = &self.schemas {
            let state = CheckpointState::from_json(&(1..=seq).collect::<Vec<u64>>()).unwrap();
            ledger
                .record([(self.table.id.clone(), state)])
                .await
                .map_err(ComponentError::transient)?;
        }
        self.next += 1;
        self.probe.emitted.lock().unwrap().push(seq);
        if self.config.checkpoint_items {
            self.pending_checkpoint = Some(seq);
        }
        Ok(Some(SourceItem::Batch(one_row(self.table.clone(), seq))))
    }
}

/// `type = "recording"`: buffers batches and makes them "durable" (records them in the probe, then
/// acknowledges) on flush; misbehaves on command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    pub probe: String,
    /// Flush after this many buffered batches.
    #[serde(default = "one")]
    pub buffer: usize,
    /// Acknowledge a flush's batches newest first.
    #[serde(default)]
    pub reverse_acks: bool,
    /// Never acknowledge (nor record) the batch holding this seq; drop its ack instead.
    pub drop_seq: Option<u64>,
    /// Block forever when writing this seq (or any, with 0).
    pub stall_at: Option<u64>,
    /// Fail `flush` transiently this many times at the first flush.
    #[serde(default)]
    pub transient_flush_failures: u64,
    /// Fail permanently when writing this seq.
    pub permanent_at: Option<u64>,
    /// Panic when writing this seq.
    pub panic_at: Option<u64>,
    /// Block forever in `close` (for shutdown timeouts).
    #[serde(default)]
    pub hang_on_close: bool,
}

fn one() -> usize {
    1
}

mirror_core::register_sink!("recording", RecordingConfig, "test sink");

struct Recording {
    name: String,
    probe: Arc<Probe>,
    buffer: Vec<(ChangeBatch, Ack)>,
    config: RecordingSettings,
    transient_left: u64,
}

struct RecordingSettings {
    buffer: usize,
    reverse_acks: bool,
    drop_seq: Option<u64>,
    stall_at: Option<u64>,
    permanent_at: Option<u64>,
    panic_at: Option<u64>,
    hang_on_close: bool,
}

#[async_trait]
impl SinkConfig for RecordingConfig {
    async fn build(&self, cx: SinkContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Recording {
            name: cx.name,
            probe: probe(&self.probe),
            buffer: Vec::new(),
            config: RecordingSettings {
                buffer: self.buffer,
                reverse_acks: self.reverse_acks,
                drop_seq: self.drop_seq,
                stall_at: self.stall_at,
                permanent_at: self.permanent_at,
                panic_at: self.panic_at,
                hang_on_close: self.hang_on_close,
            },
            transient_left: self.transient_flush_failures,
        }))
    }
}

#[async_trait]
impl Sink for Recording {
    async fn write(&mut self, batch: ChangeBatch, ack: Ack) -> Result<(), ComponentError> {
        let rows = rows_of(&batch);
        if let Some(stall) = self.config.stall_at {
            if stall == 0 || rows.contains(&stall) {
                std::future::pending::<()>().await;
            }
        }
        if self.config.permanent_at.is_some_and(|p| rows.contains(&p)) {
            return Err(ComponentError::permanent(std::io::Error::other(
                "disk on fire",
            )));
        }
        if self.config.panic_at.is_some_and(|p| rows.contains(&p)) {
            panic!("sink bug at {rows:?}");
        }
        self.buffer.push((batch, ack));
        if self.buffer.len() >= self.config.buffer {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ComponentError> {
        self.probe.flushes.fetch_add(1, Ordering::SeqCst);
        if self.transient_left > 0 {
            self.transient_left -= 1;
            return Err(ComponentError::transient(std::io::Error::other(
                "throttled",
            )));
        }
        let mut batches: Vec<(ChangeBatch, Ack)> = std::mem::take(&mut self.buffer);
        if self.config.reverse_acks {
            batches.reverse();
        }
        for (batch, ack) in batches {
            let rows = rows_of(&batch);
            if self.config.drop_seq.is_some_and(|d| rows.contains(&d)) {
                drop(ack);
                continue;
            }
            self.probe
                .batches
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default()
                .push(batch.clone());
            self.probe
                .durable
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default()
                .extend(rows);
            ack.acknowledge();
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), ComponentError> {
        if self.config.hang_on_close {
            std::future::pending::<()>().await;
        }
        self.flush().await
    }
}

/// A checkpoint store that records every commit (and can be shared across runs).
#[derive(Debug)]
pub struct RecordingStore {
    inner: LocalCheckpointStore,
    pub commits: Mutex<Vec<u64>>,
}

impl RecordingStore {
    pub fn new(dir: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalCheckpointStore::new(dir),
            commits: Mutex::new(Vec::new()),
        })
    }

    pub fn commits(&self) -> Vec<u64> {
        self.commits.lock().unwrap().clone()
    }
}

#[async_trait]
impl CheckpointStore for RecordingStore {
    async fn load(&self, source: &str) -> Result<ResumeState, CheckpointError> {
        self.inner.load(source).await
    }

    async fn commit(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.inner.commit(source, checkpoint).await?;
        if let Some(Ok(seq)) = checkpoint
            .get(&mirror_core::Partition::Source)
            .map(|s| s.to_json::<u64>())
        {
            self.commits.lock().unwrap().push(seq);
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// A config with one counting source feeding the given sinks' TOML bodies.
pub fn config(
    source: &str,
    sinks: &[(&str, &str)],
    engine: &str,
) -> mirror_core::config::MirrorConfig {
    let mut text =
        format!("[engine]\n{engine}\n\n[sources.numbers]\ntype = \"counting\"\n{source}\n");
    for (name, body) in sinks {
        text.push_str(&format!(
            "\n[sinks.{name}]\ntype = \"recording\"\ninputs = [\"numbers\"]\n{body}\n"
        ));
    }
    mirror_core::config::MirrorConfig::parse(&text, "test.toml").unwrap()
}
