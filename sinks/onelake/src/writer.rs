//! The landing-zone writer: buffers change batches per table, cuts them into files by rows, bytes
//! and time, and publishes each file under the table's next sequence number.
//!
//! Per table, in this order:
//! 1. **open** (first batch of the table): map the table to its folder (refusing collisions), take
//!    the table's lease, read `_mirror_table.json`, write or check `_metadata.json`, list the folder
//!    (and Fabric's processed-files folders) to find the last published number, and delete temp
//!    files a crash left behind;
//! 2. **buffer**: fit the batch to the table's column types ([`crate::schema`]) — a type change is a
//!    permanent error before anything is written — and cut it into pieces no larger than one file;
//! 3. **cut a file** when the buffer reaches `max_file_rows` or `max_file_bytes`, when the oldest
//!    buffered row has waited `flush_interval` (the engine calls
//!    [`LandingZoneWriter::publish_due`] when [`LandingZoneWriter::flush_deadline`] passes; it
//!    does not wait for the publish, so rows keep arriving meanwhile), or on
//!    [`LandingZoneWriter::flush`] (which waits). Files are encoded in the background, several
//!    at once (`encode_concurrency`, shared by all tables), so rows keep arriving meanwhile and
//!    a large table uses more than one core; each file gets the next number when its turn to
//!    publish comes, in the order the files were cut. The number stays with the file until it
//!    is published: a failed publish is retried under the same number, never skipped;
//! 4. **publish** ([`crate::publish`]): record new columns in `_mirror_table.json` first, renew the
//!    lease if due, then upload and rename (or put create-only); verify when the outcome is unknown;
//! 5. **acknowledge** every batch whose last row is in a published file.
//!
//! After a crash, the engine re-sends what was not acknowledged; those rows go into the next
//! number (whole-row upserts and deletes, so applying them twice changes nothing).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use bytes::Bytes;
use mirror_core::engine::Ack;
use mirror_core::telemetry::{LeaseState, SinkTableTelemetry, SinkTelemetry, Telemetry};
use mirror_core::{ChangeBatch, Checkpoint, RowOp, Table, TableId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::encode::{encode_file, writer_properties, Compression, MarkerMode};
use crate::error::SinkError;
use crate::lease::{Holder, Lease, LeaseError};
use crate::metadata::{ensure_metadata, ensure_partner_events, MetadataOptions, PartnerInfo};
use crate::naming::{
    data_file_name, parse_data_file_name, table_folder, PROCESSED_DIRS, TABLE_STATE_FILE,
    TEMP_PREFIX,
};
use crate::publish::{publish, PublishMode, PublishOutcome};
use crate::schema::{column_type, KnownColumn, TableSchema, ROW_MARKER};
use crate::state::TableState;
use crate::store::{join, LandingStore, PutMode};

/// How often a publish running in the background is checked for completion.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(20);

/// How the writer cuts and publishes files.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The writer's name, shown in leases (the sink's name in `mirror.toml`).
    pub name: String,
    /// How files are published.
    pub publish: PublishMode,
    /// Parquet compression.
    pub compression: Compression,
    /// Most rows in one file.
    pub max_file_rows: usize,
    /// Most bytes of buffered Arrow data in one file (the Parquet file is smaller).
    pub max_file_bytes: usize,
    /// Longest time a row waits in the buffer before its file is published.
    pub flush_interval: Duration,
    /// Write marker-free files for a new table's initial load (all rows inserts, no earlier marker
    /// file, and only while the table had no data file when this writer opened it).
    pub marker_free_initial_load: bool,
    /// Options written into `_metadata.json`.
    pub metadata: MetadataOptions,
    /// `_partnerEvents.json` content.
    pub partner: PartnerInfo,
    /// The single-writer lease's time to live; `None` disables the lease.
    pub lease_ttl: Option<Duration>,
    /// Where the writer keeps the lock file that proves it alive to a successor on the same
    /// machine ([`crate::lease`]); `None`: `mirror-leases` in the temporary directory.
    pub lease_lock_dir: Option<std::path::PathBuf>,
    /// Files encoded at the same time, over all tables (at least 1). Each holds its rows (up to
    /// `max_file_bytes`) while it is encoded, so this trades memory for throughput.
    pub encode_concurrency: usize,
    /// What to do with a table folder another writer made ([`crate::takeover`]).
    pub takeover: crate::takeover::Takeover,
}

/// The default [`WriterOptions::encode_concurrency`]: one per core, at most 4.
pub fn default_encode_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            name: "mirror".into(),
            publish: PublishMode::Rename,
            compression: Compression::Snappy,
            max_file_rows: 1_000_000,
            max_file_bytes: 64 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            marker_free_initial_load: false,
            metadata: MetadataOptions::default(),
            partner: PartnerInfo::default(),
            lease_ttl: Some(Duration::from_secs(60)),
            lease_lock_dir: None,
            encode_concurrency: default_encode_concurrency(),
            takeover: crate::takeover::Takeover::default(),
        }
    }
}

/// Counters of what was published.
#[derive(Clone, Debug, Default)]
pub struct WriterStats {
    /// Data files published.
    pub files: u64,
    /// Rows in them.
    pub rows: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Time from the start of each file's publish to its success (first 100,000 files).
    pub publish_latencies: Vec<Duration>,
    /// Time spent encoding Parquet.
    pub encode_time: Duration,
}

struct Ctx {
    store: Arc<dyn LandingStore>,
    options: WriterOptions,
    holder: Holder,
    stats: WriterStats,
    /// One permit per file being encoded, shared by all tables.
    encoders: Arc<tokio::sync::Semaphore>,
    /// Where publishes and leases are reported.
    telemetry: Arc<SinkTelemetry>,
    /// Cancelled when the writer is asked to stop: ends a standby's wait for a table's lease.
    stop: CancellationToken,
}

/// One buffered piece of a batch.
struct Piece {
    rows: RecordBatch,
    ops: Arc<[RowOp]>,
    bytes: usize,
    ack: Option<Ack>,
}

/// Rows of a file by operation, for the telemetry.
type OpCounts = Vec<(RowOp, u64)>;

fn count_ops(counts: &mut OpCounts, ops: &[RowOp]) {
    for op in ops {
        match counts.iter_mut().find(|(o, _)| o == op) {
            Some((_, n)) => *n += 1,
            None => counts.push((*op, 1)),
        }
    }
}

/// An encoded file waiting for its number.
struct Encoded {
    bytes: Bytes,
    rows: usize,
    ops: OpCounts,
    markers: bool,
    acks: Vec<Ack>,
}

type EncodeTask = tokio::task::JoinHandle<Result<(Bytes, Duration), SinkError>>;

/// A file cut from the buffer and being encoded in the background. Files are numbered and
/// published in the order they were cut, whatever order their encodings end in.
struct Encoding {
    task: EncodeTask,
    rows: usize,
    ops: OpCounts,
    markers: bool,
    acks: Vec<Ack>,
}

impl Drop for Encoding {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type PublishTask = tokio::task::JoinHandle<(Result<PublishOutcome, SinkError>, bool)>;

/// A file with its number, being published (or waiting to be published again after a failure).
struct InFlight {
    seq: u64,
    bytes: Bytes,
    rows: usize,
    ops: OpCounts,
    markers: bool,
    acks: Vec<Ack>,
    temp: String,
    uploaded: bool,
    task: Option<PublishTask>,
    started: std::time::Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // A writer dropped mid-publish stops publishing, like a crashed process: the protocol
        // leaves nothing behind that a restart cannot sort out.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Which buffered rows become files now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Only full files (rows or bytes at their cap).
    FullFiles,
    /// Everything buffered.
    All,
}

struct TableWriter {
    table: Arc<Table>,
    folder: String,
    schema: TableSchema,
    recorded_columns: Vec<KnownColumn>,
    recorded_incremental: bool,
    incremental: bool,
    fresh: bool,
    next_seq: u64,
    buffer: VecDeque<Piece>,
    buffered_rows: usize,
    buffered_bytes: usize,
    oldest: Option<Instant>,
    in_flight: Option<InFlight>,
    encoding: VecDeque<Encoding>,
    lease: Option<Lease>,
    /// Rows in the table's files through the last one cut ([`crate::datafile`]); `None` when the
    /// files before this writer do not say.
    rows_through: Option<u64>,
    tel: Arc<SinkTableTelemetry>,
}

/// Writes change batches into an Open Mirroring landing zone.
///
/// ```no_run
/// # async fn demo() -> Result<(), mirror_onelake::SinkError> {
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use mirror_core::{RowOp, Table, TableId};
/// use mirror_onelake::{LandingZoneWriter, WriterOptions};
///
/// let mut lz = LandingZoneWriter::open_location("./landing-zone", WriterOptions::default()).await?;
/// let people = Arc::new(Table::new(TableId::new("people"), ["id"]));
/// let rows = RecordBatch::try_from_iter([
///     ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
///     ("name", Arc::new(StringArray::from(vec!["Ada", "Alan"])) as _),
/// ]).unwrap();
/// lz.write_rows(&people, rows, vec![RowOp::Upsert, RowOp::Upsert]).await?;
/// lz.flush().await?; // 00000000000000000001.parquet is published
/// lz.close().await?;
/// # Ok(()) }
/// ```
pub struct LandingZoneWriter {
    ctx: Ctx,
    tables: BTreeMap<TableId, TableWriter>,
    folders: BTreeMap<String, TableId>,
    inbox: VecDeque<(ChangeBatch, Ack)>,
}

impl std::fmt::Debug for LandingZoneWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LandingZoneWriter")
            .field("location", &self.ctx.store.location())
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LandingZoneWriter {
    /// A writer over `store`; writes `_partnerEvents.json`.
    pub async fn open(
        store: Arc<dyn LandingStore>,
        options: WriterOptions,
    ) -> Result<Self, SinkError> {
        if options.max_file_rows == 0
            || options.max_file_bytes == 0
            || options.encode_concurrency == 0
        {
            return Err(SinkError::Config(
                "max_file_rows, max_file_bytes and encode_concurrency must be at least 1".into(),
            ));
        }
        store.remove_leftovers().await?;
        ensure_partner_events(&*store, &options.partner).await?;
        let holder = match &options.lease_lock_dir {
            Some(dir) => Holder::with_lock_dir(&options.name, dir),
            None => Holder::new(&options.name),
        };
        crate::truncate::recover(&store, &holder, options.lease_ttl, &options.metadata).await?;
        let encoders = Arc::new(tokio::sync::Semaphore::new(options.encode_concurrency));
        let telemetry = Telemetry::new().sink(&options.name, "onelake");
        Ok(Self {
            ctx: Ctx {
                store,
                options,
                holder,
                stats: WriterStats::default(),
                encoders,
                telemetry,
                stop: CancellationToken::new(),
            },
            tables: BTreeMap::new(),
            folders: BTreeMap::new(),
            inbox: VecDeque::new(),
        })
    }

    /// A writer for a landing-zone location: a local path, `file://...`, or a OneLake / ADLS URL
    /// (credentials then come from the environment; see [`crate::OneLakeSinkConfig`] for more).
    pub async fn open_location(location: &str, options: WriterOptions) -> Result<Self, SinkError> {
        let store = crate::location::open_store(
            location,
            &crate::auth::AuthConfig::default(),
            &Default::default(),
        )?;
        Self::open(store, options).await
    }

    /// Reports publishes and leases into `telemetry` (the engine's, for a sink it runs).
    pub fn with_telemetry(mut self, telemetry: Arc<SinkTelemetry>) -> Self {
        self.ctx.telemetry = telemetry;
        self
    }

    /// Ends waits for tables' leases when `stop` is cancelled (the engine's shutdown, for a sink
    /// it runs): a standby then drops the batches of the tables it waits for, unacknowledged,
    /// and stops cleanly instead of outwaiting the shutdown timeout.
    pub fn stopping_on(mut self, stop: CancellationToken) -> Self {
        self.ctx.stop = stop;
        self
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn LandingStore> {
        &self.ctx.store
    }

    /// What was published so far.
    pub fn stats(&self) -> &WriterStats {
        &self.ctx.stats
    }

    /// Declares a table ahead of its first rows: its folder, lease and `_metadata.json` are set up
    /// now (useful to fail fast on a collision or a held lease).
    pub async fn declare_table(&mut self, table: Arc<Table>) -> Result<(), SinkError> {
        if !self.tables.contains_key(&table.id) {
            self.open_table(table).await?;
        }
        Ok(())
    }

    /// Buffers rows of `table` with their operations (library use: no checkpoint, no ack).
    pub async fn write_rows(
        &mut self,
        table: &Arc<Table>,
        rows: RecordBatch,
        ops: Vec<RowOp>,
    ) -> Result<(), SinkError> {
        let batch = ChangeBatch::new(table.clone(), rows, ops, Checkpoint::none())?;
        self.write(batch, Ack::detached()).await
    }

    /// Empties `table`: publishes what is buffered for it, then deletes its folder (Fabric drops
    /// the table) and creates it again (a new, empty table; files start at 1 again). Rows written
    /// after this call fill the new table. Returns once the table is empty in the landing zone.
    /// See [`crate::truncate`] for the steps and what a crash in between leaves.
    pub async fn truncate(&mut self, table: &Arc<Table>) -> Result<(), SinkError> {
        let batch = ChangeBatch::truncate(table.clone(), Checkpoint::none());
        self.write(batch, Ack::detached()).await
    }

    /// Takes a batch; publishes full files. `ack` is acknowledged once every row is published.
    /// A truncating batch ([`ChangeBatch::truncates`]) is carried out at once, as
    /// [`LandingZoneWriter::truncate`] describes, and acknowledged when the table is empty.
    ///
    /// The writer owns the batch even if this fails: after a transient error it is kept and
    /// [`LandingZoneWriter::flush`] carries on with it.
    pub async fn write(&mut self, batch: ChangeBatch, ack: Ack) -> Result<(), SinkError> {
        self.inbox.push_back((batch, ack));
        self.drain_inbox(true).await
    }

    /// Publishes everything buffered and renews leases that are due.
    ///
    /// Tables publish concurrently: every table's next file is started first, then each is
    /// awaited.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        self.drain_inbox(false).await?;
        for table in self.tables.values_mut() {
            table.publish_ready(&mut self.ctx, Cut::All, false).await?;
        }
        for table in self.tables.values_mut() {
            table.publish_ready(&mut self.ctx, Cut::All, true).await?;
            if let Some(lease) = &mut table.lease {
                lease
                    .renew_if_due(&*self.ctx.store, &self.ctx.holder)
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes what is due without waiting for the last publish it starts: each table whose
    /// oldest buffered row has waited `flush_interval` gets its file cut and its publish started;
    /// finished publishes are collected and their batches acknowledged; failed ones are started
    /// again. Call it when [`LandingZoneWriter::flush_deadline`] passes; batches written
    /// meanwhile are buffered at once instead of waiting for a publish to finish.
    pub async fn publish_due(&mut self) -> Result<(), SinkError> {
        self.drain_inbox(true).await?;
        let now = Instant::now();
        let interval = self.ctx.options.flush_interval;
        for table in self.tables.values_mut() {
            let due = table.oldest.is_some_and(|oldest| oldest + interval <= now);
            let cut = if due { Cut::All } else { Cut::FullFiles };
            table.publish_ready(&mut self.ctx, cut, false).await?;
            if let Some(lease) = &mut table.lease {
                lease
                    .renew_if_due(&*self.ctx.store, &self.ctx.holder)
                    .await?;
            }
        }
        Ok(())
    }

    /// When [`LandingZoneWriter::flush`] should be called even if nothing new arrives.
    pub fn flush_deadline(&self) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut earliest = |t: Instant| {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        };
        if !self.inbox.is_empty() {
            earliest(Instant::now());
        }
        for table in self.tables.values() {
            match &table.in_flight {
                // A failed publish: retry now (the engine backs off between attempts).
                Some(f) if f.task.is_none() => earliest(Instant::now()),
                // A publish running in the background: look again soon, so that its batches are
                // acknowledged (and checkpointed) shortly after it ends.
                Some(_) => earliest(Instant::now() + IN_FLIGHT_POLL),
                None => {}
            }
            // Files being encoded: publish them soon after they are ready.
            if !table.encoding.is_empty() {
                earliest(Instant::now() + IN_FLIGHT_POLL);
            }
            if let Some(oldest) = table.oldest {
                earliest(oldest + self.ctx.options.flush_interval);
            }
            if let Some(lease) = &table.lease {
                earliest(lease.renew_due());
            }
        }
        deadline
    }

    /// Publishes everything and gives up the leases.
    pub async fn close(&mut self) -> Result<(), SinkError> {
        self.flush().await?;
        for table in self.tables.values_mut() {
            if let Some(lease) = table.lease.take() {
                lease.release(&*self.ctx.store).await;
                table.tel.set_lease(LeaseState::NotHeld);
            }
        }
        Ok(())
    }

    async fn drain_inbox(&mut self, publish_full: bool) -> Result<(), SinkError> {
        while let Some((batch, _)) = self.inbox.front() {
            let table = batch.table().clone();
            if batch.truncates() {
                // Stays in the inbox until done: after a failure, the next flush carries on.
                self.truncate_table(&table).await?;
                if let Some((_, ack)) = self.inbox.pop_front() {
                    ack.acknowledge();
                }
                continue;
            }
            match self.tables.get(&table.id) {
                None => match self.open_table(table.clone()).await {
                    Ok(()) => {}
                    Err(SinkError::Lease(e @ LeaseError::Stopped { .. })) => {
                        // Unacknowledged, the batch stays uncommitted at its source: the next
                        // start (or the writer waited for) publishes it.
                        info!(table = %table.id, "{e}");
                        self.inbox
                            .retain(|(queued, _)| queued.table().id != table.id);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                Some(open) if open.table.key_columns != table.key_columns => {
                    return Err(SinkError::KeyChange {
                        path: join(&[&open.folder, crate::naming::METADATA_FILE]),
                        table: table.id.to_string(),
                        existing: open.table.key_columns.clone(),
                        wanted: table.key_columns.clone(),
                    });
                }
                Some(_) => {}
            }
            let Some((batch, ack)) = self.inbox.pop_front() else {
                break;
            };
            let Some(writer) = self.tables.get_mut(&table.id) else {
                return Err(SinkError::Internal("table vanished after opening".into()));
            };
            writer.buffer_batch(batch, ack, &self.ctx.options)?;
            if publish_full {
                writer
                    .publish_ready(&mut self.ctx, Cut::FullFiles, false)
                    .await?;
            }
        }
        Ok(())
    }

    /// Empties a table (see [`crate::truncate`]).
    async fn truncate_table(&mut self, table: &Arc<Table>) -> Result<(), SinkError> {
        let folder = table_folder(&table.id)?;
        let store = self.ctx.store.clone();
        if !self.tables.contains_key(&table.id) {
            let started = store
                .head(&join(&[
                    &crate::truncate::intent_dir(&folder),
                    crate::truncate::INTENT_FILE,
                ]))
                .await?
                .is_some();
            let exists = store
                .head(&join(&[&folder, crate::naming::METADATA_FILE]))
                .await?
                .is_some();
            if !started && !exists {
                // Never written: there is nothing to empty, and no reason to create a table.
                debug!(table = %table.id, "truncation of a table without a folder: nothing to do");
                return Ok(());
            }
            self.open_table(table.clone()).await?;
        }
        let Some(writer) = self.tables.get_mut(&table.id) else {
            return Err(SinkError::Internal("table vanished after opening".into()));
        };
        // What came before the truncation is published (and acknowledged) first.
        writer.publish_ready(&mut self.ctx, Cut::All, true).await?;
        // The lease file goes with the folder; a new one is taken in the rebuilt folder.
        writer.lease = None;
        let tel = writer.tel.clone();
        tel.set_lease(LeaseState::NotHeld);
        let (options, holder) = (&self.ctx.options, &self.ctx.holder);
        let lease = crate::truncate::truncate_folder(&*store, &folder, table, || async {
            let lease = match options.lease_ttl {
                Some(ttl) => Some(Lease::acquire(&*store, &folder, holder, ttl).await?),
                None => None,
            };
            rebuild_table_files(&*store, &folder, table, &options.metadata).await?;
            Ok::<_, SinkError>(lease)
        })
        .await?;
        let mut fresh = open_table_state(&*store, &folder, table, options, tel.clone()).await?;
        if lease.is_some() {
            tel.set_lease(LeaseState::Held);
        }
        fresh.lease = lease;
        self.tables.insert(table.id.clone(), fresh);
        Ok(())
    }

    async fn open_table(&mut self, table: Arc<Table>) -> Result<(), SinkError> {
        let folder = table_folder(&table.id)?;
        if let Some(other) = self.folders.get(&folder) {
            if other != &table.id {
                return Err(crate::naming::NamingError::Collision {
                    first: other.to_string(),
                    second: table.id.to_string(),
                    folder,
                }
                .into());
            }
        }
        let store = self.ctx.store.clone();
        // Before the lease: a foreign folder may be deleted, lease file and all.
        let table_name = table.id.to_string();
        crate::takeover::prepare(&*store, &folder, &table_name, &self.ctx.options.takeover).await?;
        let tel = self.ctx.telemetry.table(&table.id);
        let lease = match self.ctx.options.lease_ttl {
            Some(ttl) => {
                // Acquiring may wait for a writer that may still run: not ready meanwhile.
                let acquired = Lease::acquire_observed(
                    &*store,
                    &folder,
                    &self.ctx.holder,
                    ttl,
                    &self.ctx.stop,
                    |why| tel.set_lease_waiting(why),
                )
                .await;
                tel.set_lease(if acquired.is_ok() {
                    LeaseState::Held
                } else {
                    LeaseState::NotHeld
                });
                Some(acquired?)
            }
            None => None,
        };
        match open_table_state(&*store, &folder, &table, &self.ctx.options, tel.clone()).await {
            Ok(mut writer) => {
                writer.lease = lease;
                info!(
                    table = %table.id, folder = %folder, next_file = writer.next_seq,
                    "landing-zone table opened"
                );
                self.folders.insert(folder, table.id.clone());
                self.tables.insert(table.id.clone(), writer);
                Ok(())
            }
            Err(e) => {
                if let Some(lease) = lease {
                    lease.release(&*store).await;
                    tel.set_lease(LeaseState::NotHeld);
                }
                Err(e)
            }
        }
    }
}

/// The own files of an emptied (just created again) table folder: `_metadata.json` and a fresh
/// `_mirror_table.json` (no columns, nothing published).
pub(crate) async fn rebuild_table_files(
    store: &dyn LandingStore,
    folder: &str,
    table: &Table,
    metadata: &crate::metadata::MetadataOptions,
) -> Result<(), SinkError> {
    ensure_metadata(
        store,
        folder,
        &table.id.to_string(),
        &table.key_columns,
        metadata,
    )
    .await?;
    let record = TableState::new(
        table.id.clone(),
        table.key_columns.clone(),
        Vec::new(),
        false,
        0,
    );
    store
        .put(
            &join(&[folder, TABLE_STATE_FILE]),
            Bytes::from(record.encode()),
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

async fn open_table_state(
    store: &dyn LandingStore,
    folder: &str,
    table: &Arc<Table>,
    options: &WriterOptions,
    tel: Arc<SinkTableTelemetry>,
) -> Result<TableWriter, SinkError> {
    let state_path = join(&[folder, TABLE_STATE_FILE]);
    let state = match store.get(&state_path).await? {
        Some(o) => {
            Some(
                TableState::decode(&o.bytes).map_err(|message| SinkError::BadStateFile {
                    path: state_path.clone(),
                    message,
                })?,
            )
        }
        None => None,
    };
    if let Some(state) = &state {
        if state.table != table.id {
            return Err(crate::naming::NamingError::Collision {
                first: state.table.to_string(),
                second: table.id.to_string(),
                folder: folder.to_owned(),
            }
            .into());
        }
    }
    ensure_metadata(
        store,
        folder,
        &table.id.to_string(),
        &table.key_columns,
        &options.metadata,
    )
    .await?;

    // The last published number: the files present (Fabric keeps the last one), including those
    // Fabric moved aside, and what the state file recorded.
    let listing = store.list(folder).await?;
    let mut last = state.as_ref().map_or(0, |s| s.last_published);
    let mut last_in_folder: Option<u64> = None;
    for (name, _) in &listing.files {
        if name.starts_with(TEMP_PREFIX) {
            // A crash between upload and rename: the rename did not happen, the file is garbage.
            warn!(folder, file = %name, "removing a temp file left by an earlier run");
            store.delete(&join(&[folder, name])).await?;
        } else if let Some(n) = parse_data_file_name(name) {
            last = last.max(n);
            last_in_folder = Some(last_in_folder.map_or(n, |m| m.max(n)));
        }
    }
    let mut any_files = last_in_folder.is_some();
    for dir in PROCESSED_DIRS {
        if listing.dirs.iter().any(|d| d == dir) {
            for (name, _) in store.list(&join(&[folder, dir])).await?.files {
                if let Some(n) = parse_data_file_name(&name) {
                    last = last.max(n);
                    any_files = true;
                }
            }
        }
    }

    let table_name = table.id.to_string();
    let (schema, incremental) = match &state {
        Some(s) => (
            TableSchema::from_known(&table_name, &s.columns).map_err(|message| {
                SinkError::BadStateFile {
                    path: state_path.clone(),
                    message,
                }
            })?,
            s.incremental,
        ),
        None => match last_in_folder {
            // Files but no state (written by another tool, or the state was removed): take the
            // column types of the last file, the best knowledge left.
            Some(n) => {
                warn!(
                    folder,
                    "no {TABLE_STATE_FILE}: taking column types from the last data file"
                );
                seed_from_file(store, folder, n, &table_name).await?
            }
            None => (TableSchema::new(&table_name), any_files),
        },
    };
    if state.is_none() {
        // Record which table this folder holds right away, so that a table that maps to the same
        // folder in a later run is refused even before any data file exists.
        let record = TableState::new(
            table.id.clone(),
            table.key_columns.clone(),
            schema.known(),
            incremental,
            last,
        );
        store
            .put(
                &state_path,
                Bytes::from(record.encode()),
                PutMode::Overwrite,
            )
            .await?;
    }
    let recorded_columns = schema.known();
    let rows_through = match crate::datafile::newest(store, folder).await? {
        Some((_, info)) => info.rows_through,
        None => Some(0),
    };
    debug!(folder, last, ?rows_through, "sequence reconciled");
    Ok(TableWriter {
        table: table.clone(),
        folder: folder.to_owned(),
        schema,
        recorded_columns,
        recorded_incremental: incremental,
        incremental,
        fresh: !any_files && last == 0,
        next_seq: last + 1,
        buffer: VecDeque::new(),
        buffered_rows: 0,
        buffered_bytes: 0,
        oldest: None,
        in_flight: None,
        encoding: VecDeque::new(),
        lease: None,
        rows_through,
        tel,
    })
}

async fn seed_from_file(
    store: &dyn LandingStore,
    folder: &str,
    n: u64,
    table: &str,
) -> Result<(TableSchema, bool), SinkError> {
    let path = join(&[folder, &data_file_name(n)]);
    let Some(file) = store.get(&path).await? else {
        return Ok((TableSchema::new(table), true));
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.bytes).map_err(|e| {
        SinkError::BadStateFile {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    let mut known = Vec::new();
    let mut markers = false;
    for field in builder.schema().fields() {
        if field.name() == ROW_MARKER {
            markers = true;
            continue;
        }
        if let Ok(Some((type_name, _))) = column_type(field.data_type()) {
            known.push(KnownColumn {
                name: field.name().clone(),
                type_name,
            });
        }
    }
    let schema = TableSchema::from_known(table, &known)
        .map_err(|message| SinkError::BadStateFile { path, message })?;
    Ok((schema, markers))
}

impl TableWriter {
    fn is_full(&self, options: &WriterOptions) -> bool {
        self.buffered_rows >= options.max_file_rows || self.buffered_bytes >= options.max_file_bytes
    }

    fn buffer_batch(
        &mut self,
        batch: ChangeBatch,
        ack: Ack,
        options: &WriterOptions,
    ) -> Result<(), SinkError> {
        let (_, rows, ops, _) = batch.into_parts();
        let n = rows.num_rows();
        if n == 0 {
            ack.acknowledge();
            return Ok(());
        }
        if self.table.key_columns.is_empty() {
            if let Some(op) = ops.iter().find(|op| **op != RowOp::Insert) {
                return Err(SinkError::Config(format!(
                    "table `{}` has no key columns, so Fabric cannot apply its {op:?} rows \
                     (updates, upserts and deletes find rows by key); declare its key columns",
                    self.table.id
                )));
            }
        }
        let conformed = self.schema.conform(&rows)?;
        let total_bytes = conformed.rows.get_array_memory_size().max(1);
        let per_row = total_bytes.div_ceil(n).max(1);
        let chunk = options
            .max_file_rows
            .min((options.max_file_bytes / per_row).max(1));
        let mut ack = Some(ack);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let last = start + len == n;
            let (rows, ops) = if start == 0 && last {
                (conformed.rows.clone(), ops.clone())
            } else {
                (
                    conformed.rows.slice(start, len),
                    Arc::from(&ops[start..start + len]),
                )
            };
            let bytes = per_row * len;
            self.buffered_rows += len;
            self.buffered_bytes += bytes;
            self.buffer.push_back(Piece {
                rows,
                ops,
                bytes,
                ack: if last { ack.take() } else { None },
            });
            start += len;
        }
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        Ok(())
    }

    /// Publishes the buffered rows `cut` allows. Files are encoded in the background (up to
    /// `encode_concurrency` at a time) while the one before them publishes; unless `wait_last`,
    /// this returns as soon as the buffer no longer needs a cut that cannot start, leaving
    /// encodings and the last publish running (a later call collects them and acknowledges
    /// their batches).
    async fn publish_ready(
        &mut self,
        ctx: &mut Ctx,
        cut: Cut,
        wait_last: bool,
    ) -> Result<(), SinkError> {
        loop {
            let limit = ctx.options.encode_concurrency;
            while self.needs_cut(&ctx.options, cut) && self.encoding.len() < limit {
                let job = self.start_encode(ctx);
                self.encoding.push_back(job);
            }
            // Rows that must be cut but have no room to: wait for the pipeline to move.
            let blocked = self.needs_cut(&ctx.options, cut);
            let wait = wait_last || blocked;
            if self.in_flight.is_some() {
                if !self.finish_in_flight(ctx, wait).await? {
                    return Ok(());
                }
                continue;
            }
            let Some(front) = self.encoding.front() else {
                return Ok(());
            };
            if !wait && !front.task.is_finished() {
                return Ok(());
            }
            let Some(mut job) = self.encoding.pop_front() else {
                return Ok(());
            };
            let (bytes, took) = (&mut job.task)
                .await
                .map_err(|e| SinkError::Internal(format!("encoding task failed: {e}")))??;
            ctx.stats.encode_time += took;
            debug!(table = %self.table.id, rows = job.rows, bytes = bytes.len(), took = ?took, "encoded");
            let file = Encoded {
                bytes,
                rows: job.rows,
                ops: std::mem::take(&mut job.ops),
                markers: job.markers,
                acks: std::mem::take(&mut job.acks),
            };
            self.start_in_flight(ctx, file).await?;
        }
    }

    /// Whether buffered rows are to be cut into a file now.
    fn needs_cut(&self, options: &WriterOptions, cut: Cut) -> bool {
        !self.buffer.is_empty() && (cut == Cut::All || self.is_full(options))
    }

    /// Takes the next file's rows from the buffer and starts encoding them in the background
    /// (once one of the writer's encoding permits is free).
    fn start_encode(&mut self, ctx: &mut Ctx) -> Encoding {
        let options = &ctx.options;
        let mut parts = Vec::new();
        let mut acks = Vec::new();
        let mut ops = OpCounts::new();
        let (mut rows, mut bytes) = (0usize, 0usize);
        while let Some(piece) = self.buffer.front() {
            let fits = rows + piece.rows.num_rows() <= options.max_file_rows
                && bytes + piece.bytes <= options.max_file_bytes;
            if !parts.is_empty() && !fits {
                break;
            }
            let Some(piece) = self.buffer.pop_front() else {
                break;
            };
            rows += piece.rows.num_rows();
            bytes += piece.bytes;
            self.buffered_rows -= piece.rows.num_rows();
            self.buffered_bytes -= piece.bytes;
            acks.extend(piece.ack);
            count_ops(&mut ops, &piece.ops);
            parts.push((piece.rows, piece.ops));
        }
        self.oldest = if self.buffer.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        let all_inserts = parts
            .iter()
            .all(|(_, ops)| ops.iter().all(|op| *op == RowOp::Insert));
        let marker_free =
            options.marker_free_initial_load && self.fresh && !self.incremental && all_inserts;
        let markers = if marker_free {
            MarkerMode::None
        } else {
            self.incremental = true;
            MarkerMode::Markers {
                keyed: !self.table.key_columns.is_empty(),
            }
        };
        let schema = self.schema.clone();
        self.rows_through = self.rows_through.map(|n| n + rows as u64);
        let mut properties = writer_properties(options.compression);
        if let Some(n) = self.rows_through {
            properties = properties
                .into_builder()
                .set_key_value_metadata(Some(crate::datafile::rows_through_metadata(n)))
                .build();
        }
        let encoders = ctx.encoders.clone();
        let task = tokio::spawn(async move {
            let _permit = encoders
                .acquire_owned()
                .await
                .map_err(|e| SinkError::Internal(format!("encoding permits closed: {e}")))?;
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let bytes = encode_file(&schema, parts, markers, properties)?;
                Ok((bytes, started.elapsed()))
            })
            .await
            .map_err(|e| SinkError::Internal(format!("encoding task failed: {e}")))?
        });
        Encoding {
            task,
            rows,
            ops,
            markers: !marker_free,
            acks,
        }
    }

    /// Gives `file` the next number, records what it needs in the state file, renews the lease and
    /// starts publishing it in the background.
    async fn start_in_flight(&mut self, ctx: &mut Ctx, file: Encoded) -> Result<(), SinkError> {
        let seq = self.next_seq;
        self.in_flight = Some(InFlight {
            seq,
            bytes: file.bytes,
            rows: file.rows,
            ops: file.ops,
            markers: file.markers,
            acks: file.acks,
            temp: join(&[
                &self.folder,
                // With this process's id: a local store removes what a crash left at start.
                &mirror_core::files::temp_name(&format!(
                    "{}_{}.parquet",
                    data_file_name(seq).trim_end_matches(".parquet"),
                    uuid::Uuid::new_v4().simple()
                )),
            ]),
            uploaded: false,
            task: None,
            started: std::time::Instant::now(),
        });
        self.spawn_publish(ctx).await
    }

    /// (Re)starts the background publish of the in-flight file.
    async fn spawn_publish(&mut self, ctx: &mut Ctx) -> Result<(), SinkError> {
        let Some(file) = self.in_flight.as_ref() else {
            return Ok(());
        };
        let store = ctx.store.clone();
        // New columns and the first marker file are recorded before the file that needs them.
        let known = self.schema.known();
        let incremental = self.recorded_incremental || file.markers;
        if known != self.recorded_columns || incremental != self.recorded_incremental {
            let state = TableState::new(
                self.table.id.clone(),
                self.table.key_columns.clone(),
                known.clone(),
                incremental,
                file.seq - 1,
            );
            store
                .put(
                    &join(&[&self.folder, TABLE_STATE_FILE]),
                    Bytes::from(state.encode()),
                    PutMode::Overwrite,
                )
                .await?;
            self.recorded_columns = known;
            self.recorded_incremental = incremental;
        }
        if let Some(lease) = &mut self.lease {
            lease.renew_if_due(&*store, &ctx.holder).await?;
        }
        let Some(file) = self.in_flight.as_mut() else {
            return Ok(());
        };
        let mode = ctx.options.publish;
        let target = join(&[&self.folder, &data_file_name(file.seq)]);
        let temp = file.temp.clone();
        let bytes = file.bytes.clone();
        let mut uploaded = file.uploaded;
        file.started = std::time::Instant::now();
        file.task = Some(tokio::spawn(async move {
            let result = publish(&*store, mode, &target, &temp, &bytes, &mut uploaded).await;
            (result, uploaded)
        }));
        Ok(())
    }

    /// Completes the in-flight publish if it is done (or `wait`s for it); true once published.
    /// After a failure the file stays in flight and the next call publishes it again.
    async fn finish_in_flight(&mut self, ctx: &mut Ctx, wait: bool) -> Result<bool, SinkError> {
        let Some(file) = self.in_flight.as_mut() else {
            return Ok(true);
        };
        let Some(task) = file.task.as_mut() else {
            // A failed attempt: publish again, under the same number.
            self.spawn_publish(ctx).await?;
            return Box::pin(self.finish_in_flight(ctx, wait)).await;
        };
        if !wait && !task.is_finished() {
            return Ok(false);
        }
        let joined = task.await;
        file.task = None;
        let (result, uploaded) =
            joined.map_err(|e| SinkError::Internal(format!("publish task failed: {e}")))?;
        file.uploaded = uploaded;
        let target = join(&[&self.folder, &data_file_name(file.seq)]);
        if result? == PublishOutcome::FoundPublished {
            info!(file = %target, "publish outcome was unknown; verified the file is ours");
        }
        let Some(mut file) = self.in_flight.take() else {
            return Ok(true);
        };
        debug!(file = %target, rows = file.rows, bytes = file.bytes.len(), "published");
        ctx.stats.files += 1;
        ctx.stats.rows += file.rows as u64;
        ctx.stats.bytes += file.bytes.len() as u64;
        let took = file.started.elapsed();
        if ctx.stats.publish_latencies.len() < 100_000 {
            ctx.stats.publish_latencies.push(took);
        }
        self.tel
            .published(file.seq, &file.ops, file.bytes.len() as u64, took);
        self.next_seq = file.seq + 1;
        for ack in std::mem::take(&mut file.acks) {
            ack.acknowledge();
        }
        Ok(true)
    }
}
