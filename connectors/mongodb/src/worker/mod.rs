//! One database: its change stream, its tables' initial syncs, and the watermark check that merges
//! the two into one ordered output.
//!
//! The stream is opened first. Initial-sync readers then copy each table page by page while the
//! stream goes on (the DBLog approach, without writing watermarks into the database): every page
//! carries the cluster time before (`low`) and after (`high`) it was read. A page is published only
//! once the stream has reported everything up to `high`, and without the documents that a change
//! event after `low` touched: those events, published in stream order, carry a state at least as new
//! as the page's. So a write during the copy is never lost, and a deleted document never comes back.
//! Nothing is held outside the pipeline: a crash loses only unpublished pages and events, which are
//! read again from the committed checkpoint.
//!
//! The worker is split along its seams: [`fanout`] turns stream events into per-table batches,
//! [`watermark`] merges initial-sync pages with the stream, and [`tables`] owns each table's
//! runtime (converter, state, start and restore). This module runs the loop and owns the output.

mod fanout;
mod tables;
mod watermark;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bson::RawDocumentBuf;
use mirror_core::config::TableSettings;
use mirror_core::model::{Checkpoint, TableId};
use mirror_core::telemetry::SourceTelemetry;
use mirror_core::{ComponentError, SourceItem};
use mongodb::options::{ReadPreference, SelectionCriteria};
use mongodb::{Client, Collection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::{MongoSourceConfig, ReadPreferenceMode};
use crate::errors::SourceError;
use crate::progress::Progress;
use crate::schemas::Schemas;
use crate::snapshot::{RangeJob, ReaderMsg};
use crate::state::{StreamPosition, TableState};
use crate::stream::{self, StartAt, StreamMsg};
use tables::TableRt;
use watermark::PendingChunk;

/// What a worker sends to the source.
#[derive(Debug)]
pub struct DbOutput {
    /// The database.
    pub db: String,
    /// The item (its checkpoint holds table partitions only).
    pub item: SourceItem,
    /// The stream position to commit with it, if it advanced.
    pub position: Option<StreamPosition>,
    /// Only a position for the telemetry (see [`Worker::send_marker`]): nothing to write to
    /// the checkpoint store.
    pub marker: bool,
}

/// How often an idle stream's position is passed on for the lag, without a checkpoint write.
const MARKER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Target tables already taken, across databases: two collections must not feed one table.
pub type Targets = Arc<Mutex<HashMap<TableId, String>>>;

/// Everything a worker starts with.
pub struct WorkerSetup {
    /// The client.
    pub client: Client,
    /// The database.
    pub db: String,
    /// The source's settings.
    pub config: Arc<MongoSourceConfig>,
    /// `[tables]`.
    pub tables: Arc<BTreeMap<String, TableSettings>>,
    /// Where the stream starts.
    pub start: StartAt,
    /// Saved table states of this database.
    pub saved: Vec<TableState>,
    /// Output.
    pub out: mpsc::Sender<Result<DbOutput, ComponentError>>,
    /// Stops the worker.
    pub shutdown: CancellationToken,
    /// Progress display.
    pub progress: Progress,
    /// Targets in use.
    pub targets: Targets,
    /// The source's telemetry.
    pub telemetry: Arc<SourceTelemetry>,
    /// The tables' recorded column types.
    pub schemas: Arc<Schemas>,
}

/// Runs a database until shutdown or an error it cannot get past (which it sends to `out`).
///
/// Transient failures are retried here, where they happen (the stream task, the readers, and
/// [`retrying`] around discovery and planning): nothing restarts a worker that returned, so the
/// engine retrying [`mirror_core::Source::next`] would not bring the database back. An error that
/// still ends the worker is therefore permanent for this run.
pub async fn run(setup: WorkerSetup) {
    let out = setup.out.clone();
    let shutdown = setup.shutdown.clone();
    let db = setup.db.clone();
    let mut worker = Worker::new(setup);
    if let Err(e) = worker.run().await {
        if !shutdown.is_cancelled() {
            let e = if e.is_transient() {
                ComponentError::permanent(SourceError(format!(
                    "database `{db}` stopped being mirrored: {}",
                    e.chain()
                )))
            } else {
                e
            };
            let _ = out.send(Err(e)).await;
        }
    }
    worker.readers.abort_all();
    if let Some(task) = worker.stream_task.take() {
        task.abort();
    }
}

struct Worker {
    client: Client,
    db: String,
    config: Arc<MongoSourceConfig>,
    tables_cfg: Arc<BTreeMap<String, TableSettings>>,
    out: mpsc::Sender<Result<DbOutput, ComponentError>>,
    shutdown: CancellationToken,
    progress: Progress,
    targets: Targets,
    telemetry: Arc<SourceTelemetry>,
    schemas: Arc<Schemas>,
    start: StartAt,
    saved: Vec<TableState>,

    tables: Vec<TableRt>,
    by_coll: HashMap<String, usize>,
    stream_rx: Option<mpsc::Receiver<StreamMsg>>,
    stream_task: Option<tokio::task::JoinHandle<()>>,
    chunk_tx: mpsc::Sender<ReaderMsg>,
    chunk_rx: mpsc::Receiver<ReaderMsg>,
    readers: JoinSet<()>,
    readers_cancel: CancellationToken,
    jobs: VecDeque<(RangeJob, u64)>,
    running_readers: usize,
    pending_chunks: Vec<PendingChunk>,
    /// Events since the oldest page still being read: (cluster time, table, key).
    window: VecDeque<(u64, usize, String)>,
    reader_low: HashMap<(usize, usize), u64>,
    /// The newest position the stream reported.
    stream_time: u64,
    stream_token: Option<String>,
    /// The newest position whose events are all published.
    published: Option<(u64, String)>,
    pending_rows: usize,
    flush_order: Vec<usize>,
    last_checkpoint: Instant,
    last_marker: Instant,
    discover_now: bool,
    key_buf: String,
    stashed: VecDeque<StreamMsg>,
}

impl Worker {
    fn new(s: WorkerSetup) -> Self {
        // Pages are a few MiB each: every reader holds the page it reads (and, when the channel is
        // full, the one it waits to send), so one more in the channel is read-ahead enough.
        let (chunk_tx, chunk_rx) = mpsc::channel(1);
        Self {
            client: s.client,
            db: s.db,
            config: s.config,
            tables_cfg: s.tables,
            out: s.out,
            readers_cancel: s.shutdown.child_token(),
            shutdown: s.shutdown,
            progress: s.progress,
            targets: s.targets,
            telemetry: s.telemetry,
            schemas: s.schemas,
            start: s.start,
            saved: s.saved,
            tables: Vec::new(),
            by_coll: HashMap::new(),
            stream_rx: None,
            stream_task: None,
            chunk_tx,
            chunk_rx,
            readers: JoinSet::new(),
            jobs: VecDeque::new(),
            running_readers: 0,
            pending_chunks: Vec::new(),
            window: VecDeque::new(),
            reader_low: HashMap::new(),
            stream_time: 0,
            stream_token: None,
            published: None,
            pending_rows: 0,
            flush_order: Vec::new(),
            last_checkpoint: Instant::now(),
            last_marker: Instant::now(),
            discover_now: false,
            key_buf: String::new(),
            stashed: VecDeque::new(),
        }
    }

    async fn run(&mut self) -> Result<(), ComponentError> {
        let lost = self.open_stream(self.start.clone()).await?;
        for saved in std::mem::take(&mut self.saved) {
            self.restore_table(saved).await?;
        }
        if let Some(message) = lost {
            self.history_lost(message).await?;
        }
        self.discover().await?;
        // Commit the stream's starting point at once, so a restart never starts later than now.
        self.send_checkpoint().await?;
        let mut discovery = tokio::time::interval(self.config.discovery_interval);
        discovery.tick().await;
        loop {
            self.start_readers();
            let max_pending = self.config.snapshot_readers.max(1);
            let Some(stream_rx) = self.stream_rx.as_mut() else {
                return Ok(());
            };
            let stashed = self.stashed.pop_front();
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(()),
                msg = async { match stashed { Some(m) => Some(m), None => stream_rx.recv().await } } => {
                    let Some(msg) = msg else {
                        return Err(ComponentError::transient(SourceError(format!("the change stream of `{}` ended unexpectedly", self.db))));
                    };
                    self.on_stream(msg).await?;
                    // Take what else comes within the linger, then publish: batches fill up under
                    // load, and a lone event waits no longer than the linger.
                    let linger_until = tokio::time::Instant::now() + self.config.batch_linger;
                    while self.pending_rows < self.config.batch_size {
                        let Some(rx) = self.stream_rx.as_mut() else { break };
                        let msg = match rx.try_recv() {
                            Ok(msg) => msg,
                            Err(mpsc::error::TryRecvError::Empty) if self.pending_rows > 0 => {
                                match tokio::time::timeout_at(linger_until, rx.recv()).await {
                                    Ok(Some(msg)) => msg,
                                    _ => break,
                                }
                            }
                            Err(_) => break,
                        };
                        self.on_stream(msg).await?;
                    }
                    self.flush().await?;
                    self.release_chunks().await?;
                    if self.pending_rows == 0 && self.last_checkpoint.elapsed() >= self.config.idle_checkpoint_interval {
                        self.send_checkpoint().await?;
                    } else if self.last_marker.elapsed() >= MARKER_EVERY.min(self.config.idle_checkpoint_interval) {
                        self.send_marker().await?;
                    }
                }
                msg = self.chunk_rx.recv(), if self.pending_chunks.len() < max_pending => {
                    if let Some(msg) = msg {
                        self.on_reader(msg)?;
                        self.release_chunks().await?;
                    }
                }
                Some(done) = self.readers.join_next(), if !self.readers.is_empty() => {
                    self.running_readers = self.running_readers.saturating_sub(1);
                    if let Err(e) = done {
                        if e.is_panic() {
                            return Err(ComponentError::permanent(SourceError(format!("an initial-sync reader of `{}` panicked", self.db))));
                        }
                    }
                }
                _ = discovery.tick() => self.discover_now = true,
            }
            if std::mem::take(&mut self.discover_now) {
                self.discover().await?;
            }
        }
    }

    /// Opens the stream and waits for its first report. Returns the message of a lost history
    /// (error 286) for the caller to handle.
    async fn open_stream(&mut self, start: StartAt) -> Result<Option<String>, ComponentError> {
        if let Some(t) = self.stream_task.take() {
            t.abort();
        }
        let (tx, mut rx) = mpsc::channel(1024);
        let task = tokio::spawn(stream::run(
            self.client.clone(),
            self.db.clone(),
            self.config.clone(),
            start,
            tx,
            self.shutdown.child_token(),
            self.telemetry.clone(),
        ));
        self.stream_task = Some(task);
        // Readers may start only once the stream has a position: the copy's watermarks are
        // checked against it.
        let first = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(None),
            m = rx.recv() => m,
        };
        self.stream_rx = Some(rx);
        match first {
            Some(StreamMsg::Position { time, token }) => {
                self.stream_time = self.stream_time.max(time);
                self.stream_token = Some(token.clone());
                self.published = Some((time, token));
                Ok(None)
            }
            Some(StreamMsg::HistoryLost(message)) => Ok(Some(message)),
            Some(StreamMsg::Failed(e)) => Err(e),
            Some(event) => {
                self.stashed.push_back(event);
                Ok(None)
            }
            None => Err(ComponentError::transient(SourceError(format!(
                "the change stream of `{}` did not start",
                self.db
            )))),
        }
    }

    fn collection(&self, name: &str) -> Collection<RawDocumentBuf> {
        self.client
            .database(&self.db)
            .collection::<RawDocumentBuf>(name)
    }

    fn read_preference(&self) -> Option<SelectionCriteria> {
        let pref = match self.config.read_preference? {
            ReadPreferenceMode::Primary => ReadPreference::Primary,
            ReadPreferenceMode::PrimaryPreferred => {
                ReadPreference::PrimaryPreferred { options: None }
            }
            ReadPreferenceMode::Secondary => ReadPreference::Secondary { options: None },
            ReadPreferenceMode::SecondaryPreferred => {
                ReadPreference::SecondaryPreferred { options: None }
            }
            ReadPreferenceMode::Nearest => ReadPreference::Nearest { options: None },
        };
        Some(SelectionCriteria::ReadPreference(pref))
    }

    /// The newest position whose events are all published.
    fn position(&self) -> Option<StreamPosition> {
        self.published
            .as_ref()
            .map(|(time, token)| StreamPosition::new(token.clone(), *time))
    }

    /// Passes the stream's position on as an item without a checkpoint of its own: once the
    /// engine has committed every item before it, every change up to that position is durable,
    /// so the replication lag can be measured from it while the stream is idle, between the
    /// (less frequent) idle checkpoints that write to the store.
    async fn send_marker(&mut self) -> Result<(), ComponentError> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        self.last_marker = Instant::now();
        let output = DbOutput {
            db: self.db.clone(),
            item: SourceItem::Checkpoint(Checkpoint::none()),
            position: Some(position),
            marker: true,
        };
        tokio::select! {
            r = self.out.send(Ok(output)) => r.map_err(|_| ComponentError::permanent(SourceError("the source was closed".into()))),
            _ = self.shutdown.cancelled() => Ok(()),
        }
    }

    async fn send_checkpoint(&mut self) -> Result<(), ComponentError> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        self.send(SourceItem::Checkpoint(Checkpoint::none()), Some(position))
            .await
    }

    /// Records the columns of the tables at `indexes` that have columns not recorded yet, and
    /// returns once that is durable: only then may a batch holding those columns be sent (see
    /// [`crate::schemas`]). Transient store failures are retried here (see [`run`]).
    async fn record_new_columns(&mut self, indexes: &[usize]) -> Result<(), ComponentError> {
        let ahead: Vec<_> = indexes
            .iter()
            .filter_map(|&idx| {
                let rt = self.tables.get(idx)?;
                let columns = rt.converter.state();
                self.schemas
                    .is_ahead(&rt.table.id, columns)
                    .then(|| (rt.table.id.clone(), columns.clone()))
            })
            .collect();
        if ahead.is_empty() {
            return Ok(());
        }
        let schemas = self.schemas.clone();
        retrying(&self.shutdown, "recording new column types", || {
            let (schemas, ahead) = (schemas.clone(), ahead.clone());
            async move {
                schemas
                    .record(ahead)
                    .await
                    .map_err(ComponentError::transient)
            }
        })
        .await
    }

    async fn send(
        &mut self,
        item: SourceItem,
        position: Option<StreamPosition>,
    ) -> Result<(), ComponentError> {
        self.last_checkpoint = Instant::now();
        self.last_marker = self.last_checkpoint;
        let output = DbOutput {
            db: self.db.clone(),
            item,
            position,
            marker: false,
        };
        tokio::select! {
            r = self.out.send(Ok(output)) => r.map_err(|_| ComponentError::permanent(SourceError("the source was closed".into()))),
            _ = self.shutdown.cancelled() => Ok(()),
        }
    }
}

/// Runs `op` until it succeeds, fails for good, or the worker stops, waiting between transient
/// failures (100 ms doubling to 5 s). See [`run`] for why the worker retries by itself.
async fn retrying<T, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut op: F,
) -> Result<T, ComponentError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ComponentError>>,
{
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() => {
                warn!(error = %e.chain(), retry_in = ?backoff, "{what} failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(e),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
