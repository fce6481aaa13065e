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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use bson::{Bson, RawDocumentBuf};
use mirror_core::config::TableSettings;
use mirror_core::mapping::{SampleMethod, TableMapping, TableSchemaState, KEY_COLUMN};
use mirror_core::model::{ChangeBatch, Checkpoint, CheckpointState, RowOp, Table, TableId};
use mirror_core::{ComponentError, SourceItem};
use mongodb::options::{ReadPreference, SelectionCriteria};
use mongodb::{Client, Collection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::bson_arrow::{encode_key, BsonConverter, RowInput};
use crate::config::{DropPolicy, HistoryLostPolicy, MongoSourceConfig, ReadPreferenceMode};
use crate::discovery;
use crate::errors::{classify, SourceError};
use crate::progress::Progress;
use crate::snapshot::{self, Chunk, RangeJob, ReaderMsg};
use crate::state::{
    id_from_json, id_to_json, Phase, RangeState, StreamPosition, TableState, STATE_VERSION,
};
use crate::stream::{self, StartAt, StreamMsg};

/// What a worker sends to the source.
#[derive(Debug)]
pub struct DbOutput {
    /// The database.
    pub db: String,
    /// The item (its checkpoint holds table partitions only).
    pub item: SourceItem,
    /// The stream position to commit with it, if it advanced.
    pub position: Option<StreamPosition>,
    /// Fired once this item is committed; the worker waits for it (see [`Worker::send_barrier`]).
    pub barrier: Option<tokio::sync::oneshot::Sender<()>>,
}

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
}

enum Pending {
    Doc(RawDocumentBuf),
    Delete(RawDocumentBuf),
}

struct TableRt {
    coll: String,
    table: Arc<Table>,
    state: TableState,
    converter: BsonConverter,
    /// Initial-sync generation: pages of an older one (before a resync) are ignored.
    epoch: u64,
    pending: Vec<Pending>,
    ranges_left: usize,
    /// Copies of `converter` for converting pages ahead (see [`Ahead`]), kept warm between pages.
    spare: Vec<BsonConverter>,
}

/// A page being converted ahead of its turn, on the blocking pool, by a copy of its table's
/// converter, so that one large collection's pages convert on several cores while the worker
/// keeps pages and change events in order. The result is used only if the copy added no
/// column and the table's columns are still those it started from; otherwise (new fields, which
/// need inference over the rows actually published and a checkpoint barrier) the page is
/// converted again in order, exactly as without this.
struct Ahead {
    /// Gives the documents back, with the rows and the converter if they are usable.
    task: tokio::task::JoinHandle<(Vec<RawDocumentBuf>, Option<ConvertedAhead>)>,
}

/// Rows converted ahead, and the converter copy that made them (returned to the spares).
type ConvertedAhead = (RecordBatch, BsonConverter);

/// A page waiting for the change stream to pass it: its documents, or their conversion ahead.
struct PendingChunk {
    chunk: Chunk,
    epoch: u64,
    ahead: Option<Ahead>,
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

    fn claim_target(&self, coll: &str) -> Result<Arc<Table>, ComponentError> {
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

    async fn restore_table(&mut self, state: TableState) -> Result<(), ComponentError> {
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
        let schema = TableSchemaState::from_json(state.schema.clone()).map_err(|e| {
            ComponentError::permanent(SourceError(format!("table {}: {e}", table.id)))
        })?;
        let mapping = TableMapping::resolve(&self.tables_cfg, &state.source);
        let converter = BsonConverter::new(table.id.to_string(), mapping, schema)
            .map_err(|e| ComponentError::permanent(SourceError(e.to_string())))?;
        let idx = self.tables.len();
        let ranges_left = state.ranges.iter().filter(|r| !r.done).count();
        let mut rt = TableRt {
            coll: coll.clone(),
            table,
            state,
            converter,
            epoch: 0,
            pending: Vec::new(),
            ranges_left,
            spare: Vec::new(),
        };
        if rt.state.phase == Phase::InitialSync {
            self.progress.add(
                &rt.table.id.to_string(),
                rt.state.estimated,
                rt.state.copied,
            );
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

    async fn discover(&mut self) -> Result<(), ComponentError> {
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
    async fn add_table(&mut self, coll: &str) -> Result<(), ComponentError> {
        let table = self.claim_target(coll)?;
        let source = format!("{}.{coll}", self.db);
        let mapping = TableMapping::resolve(&self.tables_cfg, &source);
        let mut converter = BsonConverter::new(
            table.id.to_string(),
            mapping.clone(),
            TableSchemaState::new(),
        )
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
        let mut rt = TableRt {
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
        Ok(())
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

    async fn plan_ranges(&mut self, idx: usize, rt: &mut TableRt) -> Result<(), ComponentError> {
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
        self.progress.add(&rt.table.id.to_string(), estimated, 0);
        for (r, range) in rt.state.ranges.iter().enumerate() {
            self.jobs.push_back((range_job(idx, r, range)?, rt.epoch));
        }
        Ok(())
    }

    fn start_readers(&mut self) {
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

    fn on_reader(&mut self, msg: ReaderMsg) -> Result<(), ComponentError> {
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

    async fn on_stream(&mut self, msg: StreamMsg) -> Result<(), ComponentError> {
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
    async fn collection_gone(&mut self, idx: usize, how: &str) -> Result<(), ComponentError> {
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

    async fn history_lost(&mut self, message: String) -> Result<(), ComponentError> {
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

    /// The newest position whose events are all published.
    fn position(&self) -> Option<StreamPosition> {
        self.published
            .as_ref()
            .map(|(time, token)| StreamPosition::new(token.clone(), *time))
    }

    /// Publishes every pending change event, one batch per table.
    async fn flush(&mut self) -> Result<(), ComponentError> {
        let order = std::mem::take(&mut self.flush_order);
        let count = order.len();
        for (n, idx) in order.into_iter().enumerate() {
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
            let before = rt.state.clone();
            rt.state.events += ops.len() as u64;
            let (batch, barrier) = convert(rt, &rows, ops, before)?;
            if let Some(checkpoint) = barrier {
                self.send_barrier(checkpoint).await?;
            }
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

    /// Publishes the pages the stream has caught up with.
    async fn release_chunks(&mut self) -> Result<(), ComponentError> {
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
    fn convert_ahead(&mut self, chunk: &mut Chunk) -> Option<Ahead> {
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

    async fn publish_chunk(
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
        let before = rt.state.clone();
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
        self.progress
            .advance(&rt.table.id.to_string(), copied, bytes as u64);
        if skipped > 0 {
            debug!(table = %rt.table.id, skipped, "page documents superseded by change events");
        }
        if rt.ranges_left == 0 && rt.state.phase == Phase::InitialSync {
            finish_sync(rt, &self.progress);
        }
        // The conversion ahead stands if the table's columns are still those it was made with
        // (it added none): converting in order now would give the same rows.
        let converted = converted.filter(|(_, c)| c.state() == rt.converter.state());
        let (batch, barrier) = match converted {
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
                let batch = ChangeBatch::new(rt.table.clone(), records, ops, checkpoint)
                    .map_err(ComponentError::permanent)?;
                (batch, None)
            }
            None => {
                let rows: Vec<RowInput<'_>> = chunk
                    .docs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| keep.is_empty() || keep[*i])
                    .map(|(_, d)| RowInput::Document(d))
                    .collect();
                convert(rt, &rows, ops, before)?
            }
        };
        if let Some(checkpoint) = barrier {
            self.send_barrier(checkpoint).await?;
        }
        let position = self.position();
        self.send(SourceItem::Batch(batch), position).await
    }

    async fn send_checkpoint(&mut self) -> Result<(), ComponentError> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        self.send(SourceItem::Checkpoint(Checkpoint::none()), Some(position))
            .await
    }

    /// Commits `checkpoint` (a table's new column types) and waits until it is durable, before the
    /// first file holding those columns can be published. Otherwise a crash between publishing that
    /// file and committing could let the restarted source infer other types for the same columns
    /// from differently batched data, and Fabric stops a table whose column changes type.
    async fn send_barrier(&mut self, checkpoint: Checkpoint) -> Result<(), ComponentError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_with(SourceItem::Checkpoint(checkpoint), None, Some(tx))
            .await?;
        tokio::select! {
            r = rx => r.map_err(|_| ComponentError::permanent(SourceError("the source was closed".into()))),
            _ = self.shutdown.cancelled() => Ok(()),
        }
    }

    async fn send(
        &mut self,
        item: SourceItem,
        position: Option<StreamPosition>,
    ) -> Result<(), ComponentError> {
        self.send_with(item, position, None).await
    }

    async fn send_with(
        &mut self,
        item: SourceItem,
        position: Option<StreamPosition>,
        barrier: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), ComponentError> {
        self.last_checkpoint = Instant::now();
        let output = DbOutput {
            db: self.db.clone(),
            item,
            position,
            barrier,
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

fn finish_sync(rt: &mut TableRt, progress: &Progress) {
    rt.state.phase = Phase::Streaming;
    rt.state.ranges.clear();
    progress.finish(&rt.table.id.to_string());
    info!(table = %rt.table.id, copied = rt.state.copied, "initial sync complete; streaming changes");
}

/// Converts rows and attaches the table's state after them. If the rows added columns, also
/// returns the checkpoint to commit first: `before` (the state without these rows) with the new
/// column types.
fn convert(
    rt: &mut TableRt,
    rows: &[RowInput<'_>],
    ops: Vec<RowOp>,
    mut before: TableState,
) -> Result<(ChangeBatch, Option<Checkpoint>), ComponentError> {
    let columns_before = rt.converter.state().columns().len();
    let records = rt.converter.convert(rows).map_err(|e| {
        ComponentError::permanent(SourceError(format!(
            "converting `{}` to table {}: {e}",
            rt.state.source, rt.table.id
        )))
    })?;
    rt.state.schema = rt.converter.state().to_json();
    let barrier = if rt.converter.state().columns().len() > columns_before {
        before.schema = rt.state.schema.clone();
        let state = CheckpointState::from_json(&before).map_err(ComponentError::permanent)?;
        Some(Checkpoint::table(rt.table.id.clone(), state))
    } else {
        None
    };
    let checkpoint = table_checkpoint(rt)?;
    let batch = ChangeBatch::new(rt.table.clone(), records, ops, checkpoint)
        .map_err(ComponentError::permanent)?;
    Ok((batch, barrier))
}

fn table_checkpoint(rt: &TableRt) -> Result<Checkpoint, ComponentError> {
    let state = CheckpointState::from_json(&rt.state).map_err(ComponentError::permanent)?;
    Ok(Checkpoint::table(rt.table.id.clone(), state))
}

fn range_job(table: usize, range: usize, state: &RangeState) -> Result<RangeJob, ComponentError> {
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
