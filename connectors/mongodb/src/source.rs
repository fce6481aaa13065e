//! The `mongodb` source: connects, resumes every database's worker from the checkpoint, and merges
//! their output into one ordered stream of items, each carrying the source-wide stream positions.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bson::doc;
use mirror_core::component::{
    BuildError, Source, SourceConfig, SourceContext, SourceItem, SourceSystem,
};
use mirror_core::model::{Checkpoint, CheckpointState, Partition};
use mirror_core::telemetry::{Position, SourceTelemetry, StateFacts, TablePhase};
use mirror_core::ComponentError;
use mongodb::options::ClientOptions;
use mongodb::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::MongoSourceConfig;
use crate::discovery;
use crate::errors::SourceError;
use crate::progress::Progress;
use crate::schemas::Schemas;
use crate::state::{Phase, SourceState, StreamPosition, TableState, STATE_VERSION};
use crate::stream::StartAt;
use crate::worker::{self, DbOutput, Targets, WorkerSetup};

mirror_core::register_source!(
    "mongodb",
    MongoSourceConfig,
    "MongoDB collections: initial sync, then change streams"
);

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

#[async_trait]
impl SourceConfig for MongoSourceConfig {
    async fn build(&self, cx: SourceContext) -> Result<Box<dyn Source>, BuildError> {
        let fail = |m: String| BuildError::new(&cx.name, m);
        self.validate().map_err(&fail)?;
        let saved = match cx.resume.source() {
            Some(s) => SourceState::load(s).map_err(|e| fail(e.to_string()))?,
            None => SourceState {
                version: STATE_VERSION,
                ..Default::default()
            },
        };
        let mut tables: BTreeMap<String, Vec<TableState>> = BTreeMap::new();
        for (id, state) in cx.resume.tables() {
            let t = TableState::load(state).map_err(|e| fail(format!("table {id}: {e}")))?;
            let db = t
                .source
                .split_once('.')
                .map(|(d, _)| d.to_owned())
                .unwrap_or_default();
            tables.entry(db).or_default().push(t);
        }
        let schemas = Arc::new(
            Schemas::load(&cx.resume, cx.schemas.clone()).map_err(|e| fail(e.to_string()))?,
        );
        // Unreachable (network, DNS, a server still starting) is transient: the engine tries
        // again until `engine.start_timeout`. Refused credentials, a standalone server or an
        // invalid URI are not.
        let (client, system) = connect(self)
            .await
            .map_err(|e| BuildError::from_component(&cx.name, &e))?;
        let mut dbs = discovery::databases(&client, self)
            .await
            .map_err(|e| BuildError::from_component(&cx.name, &e))?;
        for db in tables.keys().chain(saved.databases.keys()) {
            if !dbs.contains(db) && self.wants_database(db) {
                dbs.push(db.clone());
            }
        }
        if dbs.is_empty() {
            return Err(fail("no database matches `databases`".into()));
        }
        let system = system.with_detail("databases", dbs.join(","));
        // Each item is a converted page or batch of a few MiB: two queued are enough to keep the
        // engine busy, more only add memory.
        let (tx, rx) = mpsc::channel(2);
        let shutdown = cx.shutdown.child_token();
        let spawner = Spawner {
            source: cx.name.clone(),
            client: client.clone(),
            config: Arc::new(self.clone()),
            tables: cx.tables.clone(),
            out: tx.downgrade(),
            shutdown: shutdown.clone(),
            progress: Progress::new(self.progress),
            targets: Targets::default(),
            telemetry: cx.telemetry.clone(),
            schemas,
        };
        for db in &dbs {
            let start = match saved.databases.get(db) {
                Some(p) => StartAt::ResumeAfter(p.token.clone()),
                None => StartAt::Now,
            };
            spawner.spawn(db, start, tables.remove(db).unwrap_or_default());
        }
        if self.databases.iter().any(|d| d == "*") {
            tokio::spawn(spawner.watch_new_databases(dbs.iter().cloned().collect()));
        }
        Ok(Box::new(MongoSource {
            telemetry: cx.telemetry.clone(),
            system,
            rx,
            state: saved,
            shutdown,
        }))
    }

    async fn check(
        &self,
        cx: mirror_core::component::check::CheckContext,
    ) -> Vec<mirror_core::component::check::Check> {
        crate::check::check(self, &cx).await
    }

    fn describe(&self) -> String {
        format!(
            "{} (databases {:?}, collections {:?})",
            self.uri.redacted(),
            self.databases,
            self.collections
        )
    }

    fn state_facts(&self, state: &CheckpointState) -> StateFacts {
        if let Ok(t) = TableState::load(state) {
            return StateFacts {
                phase: Some(match t.phase {
                    Phase::InitialSync => TablePhase::InitialSync,
                    Phase::Streaming => TablePhase::Streaming,
                }),
                initial_sync: Some((t.copied, t.estimated)),
                events: Some(t.events),
                stream: t.source.split_once('.').map(|(db, _)| db.to_owned()),
                positions: Vec::new(),
            };
        }
        match SourceState::load(state) {
            Ok(s) => StateFacts {
                positions: s
                    .databases
                    .iter()
                    .filter_map(|(db, p)| Some((db.clone(), position(p)?)))
                    .collect(),
                ..StateFacts::default()
            },
            Err(_) => StateFacts::default(),
        }
    }

    fn describe_state(&self, state: &CheckpointState) -> String {
        if let Ok(t) = TableState::load(state) {
            return match t.phase {
                Phase::InitialSync => {
                    let pct = if t.estimated > 0 {
                        (t.copied as f64 / t.estimated as f64 * 100.0).min(100.0)
                    } else {
                        0.0
                    };
                    format!(
                        "{}: initial sync {pct:.0}% ({} of ~{} documents), {} change events",
                        t.source, t.copied, t.estimated, t.events
                    )
                }
                Phase::Streaming => format!(
                    "{}: streaming, {} documents copied, {} change events",
                    t.source, t.copied, t.events
                ),
            };
        }
        match SourceState::load(state) {
            Ok(s) => s
                .databases
                .iter()
                .map(|(db, p)| {
                    format!(
                        "{db}: change stream at cluster time {} ({})",
                        p.cluster_time,
                        lag(p)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => format!("{state:?}"),
        }
    }

    /// A streaming table is current to its database's committed change-stream position (the
    /// cluster time in the resume token); a table still being copied has no such time.
    fn position_time(
        &self,
        resume: &mirror_core::checkpoint::ResumeState,
        table: &mirror_core::TableId,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let t = TableState::load(resume.table(table)?).ok()?;
        if t.phase != Phase::Streaming {
            return None;
        }
        let (db, _) = t.source.split_once('.')?;
        let source = SourceState::load(resume.source()?).ok()?;
        let seconds = source.databases.get(db)?.seconds()?;
        chrono::DateTime::from_timestamp(i64::from(seconds), 0)
    }
}

/// A committed stream position for the telemetry: the cluster time in the token.
fn position(p: &StreamPosition) -> Option<Position> {
    let seconds = p.seconds()?;
    Some(Position {
        time: std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(seconds)),
        text: format!("cluster time {}", p.cluster_time),
    })
}

fn lag(p: &StreamPosition) -> String {
    match p.seconds() {
        Some(s) => {
            let behind = chrono::Utc::now().timestamp() - i64::from(s);
            format!("{}s behind now", behind.max(0))
        }
        None => "unknown lag".into(),
    }
}

/// Starts database workers: those of the start, and (with `databases = ["*"]`) those of databases
/// created later.
struct Spawner {
    source: String,
    client: Client,
    config: Arc<MongoSourceConfig>,
    tables: Arc<BTreeMap<String, mirror_core::config::TableSettings>>,
    /// Weak, so that the source still notices when every worker is gone.
    out: mpsc::WeakSender<Result<DbOutput, ComponentError>>,
    shutdown: CancellationToken,
    progress: Progress,
    targets: Targets,
    telemetry: Arc<SourceTelemetry>,
    schemas: Arc<Schemas>,
}

impl Spawner {
    /// Starts the worker of `db`; `false` if the source is gone.
    fn spawn(&self, db: &str, start: StartAt, saved: Vec<TableState>) -> bool {
        let Some(out) = self.out.upgrade() else {
            return false;
        };
        info!(source = %self.source, db = %db, resume = ?start, "watching database");
        tokio::spawn(worker::run(WorkerSetup {
            client: self.client.clone(),
            db: db.to_owned(),
            config: self.config.clone(),
            tables: self.tables.clone(),
            start,
            saved,
            out,
            shutdown: self.shutdown.clone(),
            progress: self.progress.clone(),
            targets: self.targets.clone(),
            telemetry: self.telemetry.clone(),
            schemas: self.schemas.clone(),
        }));
        true
    }

    /// Lists the databases every `discovery_interval` and starts a worker for each new one that
    /// `databases` selects. Its worker opens the database's stream first and then copies what
    /// the database already holds, as for a database there at the start, so the documents
    /// written before the worker started are not missed.
    async fn watch_new_databases(self, mut known: std::collections::HashSet<String>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.discovery_interval) => {}
            }
            let names = match discovery::databases(&self.client, &self.config).await {
                Ok(names) => names,
                Err(e) => {
                    warn!(source = %self.source, error = %e, "listing databases failed; trying again at the next discovery");
                    continue;
                }
            };
            for db in names {
                if known.contains(&db) {
                    continue;
                }
                if !self.spawn(&db, StartAt::Now, Vec::new()) {
                    return;
                }
                known.insert(db);
            }
        }
    }
}

/// Connects and checks the deployment can serve change streams; returns the client and what the
/// deployment says of itself. Errors are classified: transient when the server cannot be
/// reached (yet), permanent when waiting cannot help.
pub(crate) async fn connect(
    config: &MongoSourceConfig,
) -> Result<(Client, SourceSystem), ComponentError> {
    let redacted = config.uri.redacted();
    let client = client(config, None).await?;
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| hello_error(e, config))?;
    let is_router = hello.get_str("msg") == Ok("isdbgrid");
    if hello.get_str("setName").is_err() && !is_router {
        return Err(ComponentError::permanent(SourceError(format!(
            "{redacted} is a standalone server; change streams need a replica set or a sharded cluster (a single-node replica set works: start mongod with --replSet)"
        ))));
    }
    let deployment = match hello.get_str("setName") {
        Ok(set) => format!("replica set {set}"),
        Err(_) => "sharded cluster".to_owned(),
    };
    let mut system = SourceSystem::default().with_detail("deployment", deployment);
    // Only for the record (`_partnerEvents.json`): a server that refuses `buildInfo` is mirrored
    // all the same, with an unknown version.
    match client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
    {
        Ok(info) => {
            if let Ok(version) = info.get_str("version") {
                system = system.with_version(version);
            }
        }
        Err(e) => {
            debug!(error = %without_uri(&e.to_string(), config), "buildInfo failed; the server version stays unknown")
        }
    }
    Ok((client, system))
}

/// A failed `hello`: the credentials refused (permanent), or the server not reachable.
pub(crate) fn hello_error(e: mongodb::error::Error, config: &MongoSourceConfig) -> ComponentError {
    let redacted = config.uri.redacted();
    let what = if matches!(*e.kind, mongodb::error::ErrorKind::Authentication { .. }) {
        format!("MongoDB at {redacted} refused the credentials")
    } else {
        format!("cannot reach MongoDB at {redacted}")
    };
    crate::errors::classify(e, &format!("{what}: hello"))
}

/// A client for the URI (no request is made); `server_selection_timeout` bounds the URI's when
/// given.
pub(crate) async fn client(
    config: &MongoSourceConfig,
    server_selection_timeout: Option<std::time::Duration>,
) -> Result<Client, ComponentError> {
    let redacted = config.uri.redacted();
    let mut options = ClientOptions::parse(config.uri.expose())
        .await
        .map_err(|e| {
            let message = without_uri(&e.to_string(), config);
            if crate::errors::is_transient(&e)
                || matches!(*e.kind, mongodb::error::ErrorKind::DnsResolve { .. })
            {
                ComponentError::transient(SourceError(format!(
                    "cannot resolve the hosts of the MongoDB URI {redacted}: {message}; check the \
                     host name (mongodb+srv:// needs DNS SRV and TXT records) and that DNS works \
                     from here"
                )))
            } else {
                ComponentError::permanent(SourceError(format!(
                    "cannot use the MongoDB URI {redacted}: {message}"
                )))
            }
        })?;
    options
        .app_name
        .get_or_insert_with(|| format!("mirror/{}", mirror_core::VERSION));
    if let Some(timeout) = server_selection_timeout {
        options.server_selection_timeout = Some(
            options
                .server_selection_timeout
                .map_or(timeout, |t| t.min(timeout)),
        );
    }
    Client::with_options(options).map_err(|e| {
        ComponentError::permanent(SourceError(format!(
            "cannot create a MongoDB client for {redacted}: {}",
            without_uri(&e.to_string(), config)
        )))
    })
}

/// Removes the URI from a driver message, in case it quotes it.
fn without_uri(message: &str, config: &MongoSourceConfig) -> String {
    message.replace(config.uri.expose(), &config.uri.redacted())
}

/// The running source.
struct MongoSource {
    /// Where stream positions are staged with the items that reach them.
    telemetry: Arc<SourceTelemetry>,
    /// The server's version and deployment, as found when connecting.
    system: SourceSystem,
    rx: mpsc::Receiver<Result<DbOutput, ComponentError>>,
    state: SourceState,
    shutdown: CancellationToken,
}

#[async_trait]
impl Source for MongoSource {
    fn system(&self) -> SourceSystem {
        self.system.clone()
    }

    async fn next(&mut self) -> Result<Option<SourceItem>, ComponentError> {
        let Some(output) = self.rx.recv().await else {
            // A change stream source never finishes by itself: every worker gone without a word
            // is a failure, not the end of the data.
            if self.shutdown.is_cancelled() {
                return Ok(None);
            }
            return Err(ComponentError::permanent(SourceError(
                "every database worker stopped unexpectedly".into(),
            )));
        };
        let output = output?;
        if let Some(position) = output.position {
            if let Some(p) = self::position(&position) {
                self.telemetry.stage_position(&output.db, p);
            }
            self.state.databases.insert(output.db, position);
        }
        if output.marker {
            // Nothing to store: the position goes into the next real checkpoint.
            return Ok(Some(SourceItem::Checkpoint(Checkpoint::none())));
        }
        let source = CheckpointState::from_json(&self.state).map_err(ComponentError::permanent)?;
        Ok(Some(match output.item {
            SourceItem::Batch(batch) => {
                let (table, rows, ops, checkpoint) = batch.clone().into_parts();
                let truncates = batch.truncates();
                let mut merged = Checkpoint::none().with(Partition::Source, source);
                merged.merge(checkpoint);
                if truncates {
                    SourceItem::Batch(mirror_core::ChangeBatch::truncate(table, merged))
                } else {
                    SourceItem::Batch(
                        mirror_core::ChangeBatch::new(table, rows, ops, merged)
                            .map_err(ComponentError::permanent)?,
                    )
                }
            }
            SourceItem::Checkpoint(mut checkpoint) => {
                checkpoint.merge(Checkpoint::source(source));
                SourceItem::Checkpoint(checkpoint)
            }
        }))
    }

    async fn close(&mut self) -> Result<(), ComponentError> {
        self.shutdown.cancel();
        Ok(())
    }
}
