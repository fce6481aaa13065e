#![allow(dead_code)]

//! The fault tests' harness: a mongo-sim, the engine running the `mongodb` source into the `onelake`
//! sink on a temporary local landing zone, a Fabric-like replicator over that landing zone, and the
//! equality check between a collection and its replicated table.
//!
//! Every document of the tests has an integer `v` that writes bump; a table equals its collection
//! when both hold the same `_id` keys (as the source encodes them) with the same `v`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use mirror_core::checkpoint::{CheckpointStore, ResumeState};
use mirror_core::config::MirrorConfig;
use mirror_core::engine::{Engine, EngineError, RunReport};
use mirror_core::TableId;
use mirror_mongodb::bson_arrow::encode_key;
use mirror_mongodb::state::{SourceState, TableState};
use mirror_onelake::store::LocalStore;
use mirror_onelake::LandingZoneCheckpointStore;
use mongo_sim::{MongoSim, SimOptions};
use onelake_sim::{LocalDir, ReplicatedTable, Replicator, TableStatus, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The database every test mirrors.
pub const DB: &str = "shop";
/// The source's name in the config.
pub const SOURCE: &str = "src";

/// `_id` key -> `v`.
pub type Snapshot = BTreeMap<String, Option<i64>>;

struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<RunReport, EngineError>>,
}

/// A simulator, a landing zone, and (while running) the engine between them.
pub struct Harness {
    /// The simulated MongoDB.
    pub sim: MongoSim,
    /// The landing zone.
    pub lz: tempfile::TempDir,
    fabric: Mutex<Replicator>,
    running: Mutex<Option<Running>>,
}

/// Simulator options of the tests: no-op writes every 100 ms keep idle streams moving.
pub fn sim_options() -> SimOptions {
    SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..SimOptions::default()
    }
}

/// `coll` of the default database, or `db/coll` of another: the database and the collection.
fn split(coll: &str) -> (&str, &str) {
    coll.split_once('/').unwrap_or((DB, coll))
}

/// A document of the tests.
pub fn item(id: i64, v: i64) -> Document {
    doc! {"_id": id, "v": v, "name": format!("item {id}")}
}

impl Harness {
    /// A simulator with [`sim_options`] and an empty landing zone.
    pub async fn new() -> Self {
        Self::with_sim(sim_options()).await
    }

    /// A simulator with `options` and an empty landing zone.
    pub async fn with_sim(options: SimOptions) -> Self {
        // `RUST_LOG=mirror_mongodb=debug` shows what the source does.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        mirror_mongodb::link();
        mirror_onelake::link();
        let sim = MongoSim::start(options).await.expect("mongo-sim starts");
        let lz = tempfile::tempdir().unwrap();
        let fabric = Replicator::new(Arc::new(LocalDir::new(lz.path()))).keep_processed_files();
        Self {
            sim,
            lz,
            fabric: Mutex::new(fabric),
            running: Mutex::new(None),
        }
    }

    /// Loads `ids` as documents with `v = 0`, without change events (data older than the oplog).
    pub fn seed(&self, coll: &str, ids: std::ops::Range<i64>) {
        let docs: Vec<RawDocumentBuf> = ids
            .map(|i| RawDocumentBuf::from_document(&item(i, 0)).unwrap())
            .collect();
        self.sim.seed_raw(DB, coll, docs).unwrap();
    }

    /// The configuration: the source with `source_extra` settings (which may replace the default
    /// `databases = ["shop"]`), the sink on the landing zone.
    pub fn config(&self, source_extra: &str) -> MirrorConfig {
        let databases = if source_extra.contains("databases =") {
            String::new()
        } else {
            format!("databases = [\"{DB}\"]")
        };
        let text = format!(
            r#"
[sources.{SOURCE}]
type = "mongodb"
uri = "{uri}"
{databases}
snapshot_page_size = 50
snapshot_readers = 2
max_await = "100ms"
idle_checkpoint_interval = "200ms"
discovery_interval = "300ms"
progress = false
{source_extra}

[sinks.lake]
type = "onelake"
inputs = ["{SOURCE}"]
landing_zone = "{lz}"
flush_interval = "200ms"
lease = {{ ttl = "2s" }}

[engine]
shutdown_timeout = "20s"

[engine.retry]
initial_backoff = "50ms"
max_backoff = "1s"
"#,
            uri = self.sim.uri(),
            lz = self.lz.path().display(),
        );
        MirrorConfig::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the engine in a task.
    pub fn run(&mut self, source_extra: &str) {
        let mut running = self.running.lock().unwrap();
        assert!(running.is_none(), "already running");
        let engine = Engine::new(self.config(source_extra));
        let stop = engine.shutdown_token();
        let task = tokio::spawn(engine.run());
        *running = Some(Running { stop, task });
    }

    /// Whether the engine ended by itself.
    pub fn ended(&self) -> bool {
        self.running
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| r.task.is_finished())
    }

    /// How the engine ended (it must have ended).
    fn end(&self) -> String {
        use futures::FutureExt;
        let running = self.running.lock().unwrap().take().expect("not running");
        match running.task.now_or_never() {
            Some(Ok(Ok(report))) => format!("without an error: {report}"),
            Some(Ok(Err(e))) => format!("with an error: {e}"),
            Some(Err(e)) => format!("in a panic: {e}"),
            None => "not".into(),
        }
    }

    /// Stops the engine cleanly; it must not have failed.
    pub async fn stop(&mut self) -> RunReport {
        match self.stop_result().await {
            Ok(report) => report,
            Err(e) => panic!("the engine failed: {e}"),
        }
    }

    /// Kills the engine: its task is aborted where it is, with no clean shutdown (what a crash
    /// leaves behind, within this process).
    pub async fn kill(&mut self) {
        let running = self.running.lock().unwrap().take().expect("not running");
        running.task.abort();
        let _ = running.task.await;
    }

    /// Stops the engine cleanly and returns how it ended.
    pub async fn stop_result(&mut self) -> Result<RunReport, EngineError> {
        let running = self.running.lock().unwrap().take().expect("not running");
        running.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), running.task)
            .await
            .expect("the engine stops within 30 s")
            .expect("the engine task does not panic")
    }

    /// Waits until the engine ends by itself (e.g. with an error), at most `within`.
    pub async fn outcome(&mut self, within: Duration) -> Result<RunReport, EngineError> {
        let running = self.running.lock().unwrap().take().expect("not running");
        match tokio::time::timeout(within, running.task).await {
            Ok(joined) => joined.expect("the engine task does not panic"),
            Err(_) => panic!("the engine was still running after {within:?}"),
        }
    }

    /// The landing-zone folder of `coll`'s table.
    pub fn folder(coll: &str) -> String {
        let (db, coll) = split(coll);
        format!("{db}.schema/{coll}")
    }

    /// What `coll` holds now.
    pub fn expected(&self, coll: &str) -> Snapshot {
        let mut out = Snapshot::new();
        let mut key = String::new();
        let (db, coll) = split(coll);
        for doc in self.sim.collection_raw(db, coll) {
            let id = doc.get("_id").unwrap().expect("an _id");
            encode_key(&mut key, id).unwrap();
            let v = match doc.get("v").ok().flatten() {
                Some(bson::RawBsonRef::Int32(v)) => Some(i64::from(v)),
                Some(bson::RawBsonRef::Int64(v)) => Some(v),
                _ => None,
            };
            out.insert(key.clone(), v);
        }
        out
    }

    /// Applies the files published so far (as Fabric would) and returns the table of `coll`.
    pub fn table(&self, coll: &str) -> Option<ReplicatedTable> {
        let mut fabric = self.fabric.lock().unwrap();
        fabric.scan().unwrap();
        fabric.table(&Self::folder(coll)).cloned()
    }

    /// What the replicated table of `coll` holds now (`None`: no table).
    pub fn replicated(&self, coll: &str) -> Option<Snapshot> {
        let table = self.table(coll)?;
        assert!(
            !matches!(table.status, TableStatus::Failed { .. }),
            "table {coll}: {:?}",
            table.status
        );
        assert!(
            table.duplicate_keys().is_empty(),
            "table {coll} has duplicate keys"
        );
        let mut out = Snapshot::new();
        for row in table.rows() {
            let key = match row.get("_id") {
                Some(Value::Str(k)) => k.clone(),
                other => panic!("table {coll}: _id is {other:?}"),
            };
            let v = match row.get("v") {
                Some(Value::Int(v)) => Some(*v),
                _ => None,
            };
            out.insert(key, v);
        }
        Some(out)
    }

    /// Waits until the table of `coll` equals the collection, at most `within`; fails with the
    /// difference otherwise, or at once if the engine ended.
    pub async fn wait_equal(&self, coll: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let want = self.expected(coll);
            let got = self.replicated(coll);
            if got.as_ref() == Some(&want) {
                return;
            }
            if self.ended() {
                panic!(
                    "the engine ended {} while {coll} was not replicated yet",
                    self.end()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{coll}: not equal after {within:?}: {}",
                    diff(&want, got.as_ref())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` holds, polling every 50 ms, at most `within`.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&Self) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !check(self) {
            if self.ended() {
                panic!("the engine ended {} while waiting for {what}", self.end());
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{what}: not within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The committed checkpoints of the source (kept in the landing zone).
    pub async fn checkpoints(&self) -> ResumeState {
        let store = Arc::new(LocalStore::new(self.lz.path()));
        LandingZoneCheckpointStore::new(store)
            .load(SOURCE)
            .await
            .unwrap()
    }

    /// The committed state of `coll`'s table.
    pub async fn table_state(&self, coll: &str) -> Option<TableState> {
        let id = TableId::with_schema(DB, coll);
        self.checkpoints()
            .await
            .table(&id)
            .map(|s| TableState::load(s).unwrap())
    }

    /// The committed change-stream position of the database, as a cluster time key.
    pub async fn stream_time(&self) -> Option<u64> {
        let state = self.checkpoints().await;
        let source = SourceState::load(state.source()?).unwrap();
        source
            .databases
            .get(DB)
            .and_then(mirror_mongodb::state::position_key)
    }

    /// Configures `failCommand` for `commands` with `data` (e.g. `closeConnection: true`), `times`.
    pub fn fail_command(&self, commands: &[&str], times: i64, data: Document) {
        let mut d = doc! {"failCommands": commands.iter().map(|c| Bson::String((*c).into())).collect::<Vec<_>>()};
        d.extend(data);
        self.sim
            .configure_fail_point("failCommand", Bson::Document(doc! {"times": times}), d)
            .unwrap();
    }

    /// How many activations of the fail point are left (0: it fired as often as configured), and
    /// turns it off.
    pub async fn fail_point_left(&self, name: &str) -> i64 {
        let client = mongodb::Client::with_uri_str(self.sim.uri()).await.unwrap();
        let reply = client
            .database("admin")
            .run_command(doc! {"configureFailPoint": name, "mode": "off"})
            .await
            .unwrap();
        let left = match reply.get("count") {
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            _ => 0,
        };
        client.shutdown().await;
        left
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let running = self.running.lock().map(|mut r| r.take()).ok().flatten();
        if let Some(r) = running {
            r.stop.cancel();
            r.task.abort();
        }
    }
}

/// The source alone (no engine), built from the harness's config with `source_extra` and
/// resuming from `resume`, and what it emits, in order.
pub struct SourceRun {
    source: Box<dyn mirror_core::Source>,
    stop: CancellationToken,
    /// Everything emitted so far.
    pub items: Vec<mirror_core::SourceItem>,
}

impl Harness {
    /// Builds the source alone (see [`SourceRun`]).
    pub async fn source(&self, source_extra: &str, resume: ResumeState) -> SourceRun {
        self.source_with(source_extra, resume, None).await
    }

    /// [`Harness::source`], recording column types in `ledger` as the engine has it do.
    pub async fn source_with(
        &self,
        source_extra: &str,
        resume: ResumeState,
        ledger: Option<mirror_core::checkpoint::SchemaLedger>,
    ) -> SourceRun {
        let config = self.config(source_extra);
        let spec = config.sources.into_iter().next().unwrap();
        let stop = CancellationToken::new();
        let source = spec
            .config
            .build(mirror_core::component::SourceContext {
                shutdown: stop.clone(),
                schemas: ledger,
                ..mirror_core::component::SourceContext::standalone(SOURCE, resume)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        SourceRun {
            source,
            stop,
            items: Vec::new(),
        }
    }
}

impl SourceRun {
    /// Takes items until `done` holds for the last one, at most `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&mirror_core::SourceItem) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.source.next())
                .await
                .expect("the awaited item came in time")
                .expect("the source does not fail")
                .expect("the source does not end");
            let stop = done(&next);
            self.items.push(next);
            if stop {
                return;
            }
        }
    }

    /// Stops the source.
    pub async fn close(mut self) {
        self.stop.cancel();
        self.source.close().await.unwrap();
    }
}

/// The checkpoint an item carries.
pub fn checkpoint_of(item: &mirror_core::SourceItem) -> &mirror_core::Checkpoint {
    match item {
        mirror_core::SourceItem::Batch(b) => b.checkpoint(),
        mirror_core::SourceItem::Checkpoint(c) => c,
    }
}

/// The stream position of the database in an item's checkpoint, as a cluster time key.
pub fn position_of(item: &mirror_core::SourceItem) -> Option<u64> {
    let state = checkpoint_of(item).get(&mirror_core::Partition::Source)?;
    SourceState::load(state)
        .unwrap()
        .databases
        .get(DB)
        .and_then(mirror_mongodb::state::position_key)
}

/// The table a truncating batch empties.
pub fn truncated(item: &mirror_core::SourceItem) -> Option<String> {
    match item {
        mirror_core::SourceItem::Batch(b) if b.truncates() => Some(b.table().id.to_string()),
        _ => None,
    }
}

/// A short description of how two snapshots differ.
pub fn diff(want: &Snapshot, got: Option<&Snapshot>) -> String {
    let Some(got) = got else {
        return format!("no table yet (want {} rows)", want.len());
    };
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    let stale: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .take(5)
        .collect();
    format!(
        "want {} rows, got {}; missing {missing:?}, extra {extra:?}, stale v {stale:?}",
        want.len(),
        got.len()
    )
}
