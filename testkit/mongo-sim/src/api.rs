//! The library API: start a simulator (on the caller's runtime or a thread of its own), get its
//! URI, seed data, apply writes that produce change events, read collections back, inject faults
//! (step down, drop connections, pause, truncate the oplog, fail points), and shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, RawDocumentBuf, Timestamp};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{CmdResult, CommandError, SimError};
use crate::matcher::Expr;
use crate::state::{Shared, State, UpdateOutcome};
use crate::storage::CollKind;
use crate::topology::Topology;

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address to bind (default 127.0.0.1).
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Replica set name (default "rs0").
    pub set_name: String,
    /// Oplog size in bytes (default 256 MiB). Older history is dropped beyond it.
    pub oplog_size_bytes: usize,
    /// mongod writes a no-op to an idle replica set's oplog every 10 s, which keeps change
    /// streams' high-water marks advancing. `None` disables it.
    pub noop_interval: Option<Duration>,
    /// Users; with any, authentication is on (as `mongod --auth`): clients must log in with
    /// SCRAM-SHA-256 and hold the privileges of what they run. See [`crate::auth`].
    pub users: Vec<crate::auth::SimUser>,
    /// The mongod version to play (default 7.0.0; 6.0 or later): `buildInfo`, `maxWireVersion`
    /// and the features that came with later versions (see [`crate::version`]).
    pub server_version: crate::version::ServerVersion,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            host: "127.0.0.1".to_string(),
            port: 0,
            set_name: "rs0".to_string(),
            oplog_size_bytes: 256 * 1024 * 1024,
            noop_interval: Some(Duration::from_secs(10)),
            users: Vec::new(),
            server_version: crate::version::ServerVersion::default(),
        }
    }
}

/// A running simulator. Derefs to [`SimHandle`] for the test API.
#[derive(Debug)]
pub struct MongoSim {
    handle: SimHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl MongoSim {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(opts: SimOptions) -> Result<MongoSim, SimError> {
        let listener = TcpListener::bind((opts.host.as_str(), opts.port)).await?;
        let addr = listener.local_addr()?;
        let host = format!("{}:{}", opts.host, addr.port());
        let mut state = State::new(
            Topology::new(&opts.set_name, &host, opts.server_version),
            opts.oplog_size_bytes,
        );
        state.users = crate::auth::Users::new(&opts.users);
        let shared = Shared::new(state);
        let mut tasks = vec![tokio::spawn(crate::server::serve(listener, shared.clone()))];
        if let Some(every) = opts.noop_interval {
            tasks.push(tokio::spawn(noop_writer(shared.clone(), every)));
        }
        Ok(MongoSim {
            handle: SimHandle { shared, addr },
            tasks,
        })
    }

    /// Starts a simulator on a thread with its own runtime (for synchronous callers or to keep
    /// the simulator's work off the caller's runtime).
    pub fn start_on_thread(opts: SimOptions) -> Result<SimThread, SimError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mongo-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(SimError::Io(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match MongoSim::start(opts).await {
                        Ok(sim) => {
                            let mut shutdown = sim.shared.shutdown_tx.subscribe();
                            let _ = tx.send(Ok(sim.handle.clone()));
                            let _ = shutdown.wait_for(|v| *v).await;
                            sim.shutdown().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let handle = rx.recv().map_err(|_| SimError::ShutDown)??;
        Ok(SimThread {
            handle,
            thread: Some(thread),
        })
    }

    /// A cloneable handle to the same simulator.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Stops serving and closes every connection.
    pub async fn shutdown(mut self) {
        self.handle.shared.shutdown_tx.send_replace(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for MongoSim {
    fn drop(&mut self) {
        self.handle.shared.shutdown_tx.send_replace(true);
    }
}

impl std::ops::Deref for MongoSim {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

async fn noop_writer(s: Arc<Shared>, every: Duration) {
    let mut shutdown = s.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let wrote = {
            let mut st = s.lock();
            let last = st.cluster_time().time;
            let idle = u64::from(crate::oplog::now_secs().saturating_sub(last)) >= every.as_secs();
            if idle && st.topology.primary {
                st.noop();
                true
            } else {
                false
            }
        };
        if wrote {
            s.notify_oplog();
        }
    }
}

/// A simulator running on its own thread; dropping it shuts the simulator down.
#[derive(Debug)]
pub struct SimThread {
    handle: SimHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimThread {
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.shared.shutdown_tx.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimThread {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::ops::Deref for SimThread {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

fn raw(d: &Document) -> Result<RawDocumentBuf, SimError> {
    RawDocumentBuf::from_document(d).map_err(|e| SimError::Bson(e.to_string()))
}

/// The test API of a running simulator. Cheap to clone; every method is synchronous and safe
/// to call from any thread.
#[derive(Debug, Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl SimHandle {
    /// `mongodb://HOST:PORT/?directConnection=true&heartbeatFrequencyMS=500`.
    pub fn uri(&self) -> String {
        format!(
            "mongodb://{}/?directConnection=true&heartbeatFrequencyMS=500",
            self.addr
        )
    }

    /// [`SimHandle::uri`] with credentials: `user` of database `auth_source` with `password`
    /// (percent-encoded as a URI needs it).
    pub fn uri_as(&self, user: &str, password: &str, auth_source: &str) -> String {
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        format!(
            "mongodb://{}:{}@{}/?directConnection=true&heartbeatFrequencyMS=500&authSource={auth_source}",
            encode(user),
            encode(password),
            self.addr
        )
    }

    /// A replica-set URI (`replicaSet=<name>`), for clients that discover the topology.
    pub fn replica_set_uri(&self) -> String {
        let name = self.shared.lock().topology.set_name.clone();
        format!(
            "mongodb://{}/?replicaSet={name}&heartbeatFrequencyMS=500",
            self.addr
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bulk-loads raw documents (an `_id` is added where missing). Seeded data produces no
    /// change events: it stands for data older than the retained oplog.
    pub fn seed_raw(
        &self,
        db: &str,
        coll: &str,
        docs: impl IntoIterator<Item = RawDocumentBuf>,
    ) -> Result<usize, SimError> {
        let docs: Vec<RawDocumentBuf> = docs.into_iter().collect();
        Ok(self.shared.lock().seed(db, coll, docs)?)
    }

    /// Bulk-loads concatenated BSON documents (the format of a `mongodump` `.bson` file).
    pub fn seed_bson_bytes(&self, db: &str, coll: &str, bytes: &[u8]) -> Result<usize, SimError> {
        let mut docs = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 5 {
                return Err(SimError::Bson(
                    "truncated document at the end of the input".into(),
                ));
            }
            let len = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            if len < 5 || len as usize > rest.len() {
                return Err(SimError::Bson(format!("invalid document length {len}")));
            }
            let (one, tail) = rest.split_at(len as usize);
            let doc = RawDocumentBuf::from_bytes(one.to_vec())?;
            crate::wire::validate(&doc)?;
            docs.push(doc);
            rest = tail;
        }
        self.seed_raw(db, coll, docs)
    }

    /// Seeds `n` sample documents (`_id` 0..n as int64, a name, a price, tags, a nested
    /// document), for demos.
    pub fn seed_sample(&self, db: &str, coll: &str, n: usize) -> Result<usize, SimError> {
        let docs = (0..n).map(|i| {
            let mut d = RawDocumentBuf::new();
            d.append("_id", i as i64);
            d.append("name", format!("item-{i}"));
            d.append("price", (i % 100) as f64 + 0.5);
            let mut tags = bson::RawArrayBuf::new();
            tags.push(if i % 2 == 0 { "even" } else { "odd" });
            tags.push("sample");
            d.append("tags", tags);
            d.append(
                "stock",
                bson::rawdoc! {"warehouse": (i % 3) as i32, "qty": (i * 7 % 50) as i32},
            );
            d
        });
        self.seed_raw(db, coll, docs)
    }

    /// Bulk-loads documents (see [`SimHandle::seed_raw`]).
    pub fn seed(
        &self,
        db: &str,
        coll: &str,
        docs: impl IntoIterator<Item = Document>,
    ) -> Result<usize, SimError> {
        let raws = docs
            .into_iter()
            .map(|d| raw(&d))
            .collect::<Result<Vec<_>, _>>()?;
        self.seed_raw(db, coll, raws)
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> CmdResult<T>) -> Result<T, SimError> {
        let r = {
            let mut st = self.shared.lock();
            f(&mut st)
        };
        self.shared.notify_oplog();
        Ok(r?)
    }

    /// Inserts a document (an insert event). Returns its cluster time.
    pub fn insert(&self, db: &str, coll: &str, doc: Document) -> Result<Timestamp, SimError> {
        let d = raw(&doc)?;
        self.write(|st| {
            st.check_primary()?;
            st.insert_one(db, coll, d)
        })
    }

    /// Inserts many documents, one insert event each.
    pub fn insert_many(
        &self,
        db: &str,
        coll: &str,
        docs: impl IntoIterator<Item = Document>,
    ) -> Result<usize, SimError> {
        let raws = docs
            .into_iter()
            .map(|d| raw(&d))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|st| {
            st.check_primary()?;
            let n = raws.len();
            for d in raws {
                st.insert_one(db, coll, d)?;
            }
            Ok(n)
        })
    }

    fn update_impl(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        update: Document,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateOutcome, SimError> {
        let q = raw(&filter)?;
        let u = raw(&bson::doc! {"u": update})?;
        self.write(|st| {
            let ub = u
                .get("u")
                .ok()
                .flatten()
                .ok_or_else(|| CommandError::bad_value("missing update"))?;
            let kind = crate::commands::write::parse_update(ub)?;
            st.check_primary()?;
            Ok(crate::commands::write::update_statement(
                st, db, coll, &q, &kind, multi, upsert, None,
            )?
            .0)
        })
    }

    /// Updates the first matching document with operators (an update event) or a replacement
    /// document (a replace event).
    pub fn update_one(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        update: Document,
    ) -> Result<UpdateOutcome, SimError> {
        self.update_impl(db, coll, filter, update, false, false)
    }

    pub fn update_many(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        update: Document,
    ) -> Result<UpdateOutcome, SimError> {
        self.update_impl(db, coll, filter, update, true, false)
    }

    pub fn upsert_one(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        update: Document,
    ) -> Result<UpdateOutcome, SimError> {
        self.update_impl(db, coll, filter, update, false, true)
    }

    /// Replaces the first matching document (a replace event).
    pub fn replace_one(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        replacement: Document,
    ) -> Result<UpdateOutcome, SimError> {
        if replacement.keys().any(|k| k.starts_with('$')) {
            return Err(CommandError::bad_value(
                "replacement document must not contain update operators",
            )
            .into());
        }
        self.update_impl(db, coll, filter, replacement, false, false)
    }

    fn delete_impl(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        multi: bool,
    ) -> Result<u64, SimError> {
        let q = raw(&filter)?;
        self.write(|st| {
            st.check_primary()?;
            let e = Expr::parse(&q)?;
            let targets = crate::commands::write::matching(st, db, coll, &e, &q, multi);
            let mut n = 0;
            for (rid, _) in targets {
                if st.write_delete(db, coll, rid)?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Deletes the first matching document (a delete event). Returns how many were deleted.
    pub fn delete_one(&self, db: &str, coll: &str, filter: Document) -> Result<u64, SimError> {
        self.delete_impl(db, coll, filter, false)
    }

    pub fn delete_many(&self, db: &str, coll: &str, filter: Document) -> Result<u64, SimError> {
        self.delete_impl(db, coll, filter, true)
    }

    /// Creates a collection; `options` as for the `create` command's simple options
    /// (e.g. `changeStreamPreAndPostImages`).
    pub fn create_collection(
        &self,
        db: &str,
        coll: &str,
        options: Document,
    ) -> Result<(), SimError> {
        self.write(|st| st.create_collection(db, coll, CollKind::Collection, options))
    }

    pub fn create_view(
        &self,
        db: &str,
        view: &str,
        view_on: &str,
        pipeline: Vec<Document>,
    ) -> Result<(), SimError> {
        let options = bson::doc! {"viewOn": view_on, "pipeline": pipeline.clone()};
        self.write(|st| {
            st.create_collection(
                db,
                view,
                CollKind::View {
                    view_on: view_on.to_string(),
                    pipeline,
                },
                options,
            )
        })
    }

    pub fn create_timeseries(
        &self,
        db: &str,
        coll: &str,
        time_field: &str,
    ) -> Result<(), SimError> {
        let options = bson::doc! {"timeseries": {"timeField": time_field, "granularity": "seconds", "bucketMaxSpanSeconds": 3600}};
        self.write(|st| st.create_collection(db, coll, CollKind::Timeseries, options))
    }

    /// Drops a collection (a drop event; collection streams are invalidated).
    pub fn drop_collection(&self, db: &str, coll: &str) -> Result<bool, SimError> {
        self.write(|st| Ok(st.drop_collection(db, coll)))
    }

    pub fn drop_database(&self, db: &str) -> Result<bool, SimError> {
        self.write(|st| Ok(st.drop_database(db)))
    }

    pub fn rename_collection(&self, db: &str, from: &str, to: &str) -> Result<(), SimError> {
        self.write(|st| st.rename_collection(db, from, db, to, false))
    }

    /// The collection's documents in natural order.
    pub fn collection_docs(&self, db: &str, coll: &str) -> Vec<Document> {
        self.collection_raw(db, coll)
            .iter()
            .filter_map(|d| d.to_document().ok())
            .collect()
    }

    pub fn collection_raw(&self, db: &str, coll: &str) -> Vec<RawDocumentBuf> {
        let st = self.shared.lock();
        st.catalog
            .coll(db, coll)
            .map(crate::storage::docs_of)
            .unwrap_or_default()
    }

    pub fn collection_len(&self, db: &str, coll: &str) -> usize {
        self.shared
            .lock()
            .catalog
            .coll(db, coll)
            .map(|c| c.len())
            .unwrap_or(0)
    }

    /// The latest cluster time.
    pub fn cluster_time(&self) -> Timestamp {
        self.shared.lock().cluster_time()
    }

    /// Steps the member down until [`SimHandle::step_up`] (writes fail with NotWritablePrimary,
    /// primary reads with NotPrimaryNoSecondaryOk; monitors see a secondary at once).
    pub fn step_down(&self) {
        let _ = step_down_for(&self.shared, None);
    }

    /// Steps down, then is re-elected after `d` (as a single member is).
    pub fn step_down_for(&self, d: Duration) -> Result<(), SimError> {
        Ok(step_down_for(&self.shared, Some(d))?)
    }

    pub fn step_up(&self) {
        step_up_now(&self.shared);
    }

    pub fn is_primary(&self) -> bool {
        self.shared.lock().topology.primary
    }

    /// Drops the whole retained oplog: resuming from any earlier point fails with 286.
    pub fn truncate_oplog(&self) {
        let mut st = self.shared.lock();
        let now = st.cluster_time();
        st.oplog.truncate_through(now);
    }

    /// Drops oplog entries up to and including `ts`.
    pub fn truncate_oplog_through(&self, ts: Timestamp) {
        self.shared.lock().oplog.truncate_through(ts);
    }

    /// Sets the oplog's size bound (dropping the oldest entries beyond it).
    pub fn set_oplog_size(&self, bytes: usize) {
        self.shared.lock().oplog.set_max_bytes(bytes);
    }

    pub fn oplog_len(&self) -> usize {
        self.shared.lock().oplog.len()
    }

    /// Fixes the random draw of `$sample`: with `Some(seed)` every `$sample` of the same
    /// collection content picks the same documents; `None` (the default) draws at random, as
    /// mongod does. Tests use it to make a type-inference sample come out one way or another.
    pub fn set_sample_seed(&self, seed: Option<u64>) {
        self.shared.lock().sample_seed = seed;
    }

    /// Closes every client connection (drivers see network errors).
    pub fn drop_connections(&self) {
        self.shared.drop_tx.send_modify(|v| *v += 1);
    }

    /// Holds every request unanswered until [`SimHandle::resume`].
    pub fn pause(&self) {
        self.shared.paused_tx.send_replace(true);
    }

    pub fn resume(&self) {
        self.shared.paused_tx.send_replace(false);
    }

    /// `configureFailPoint` without a client.
    pub fn configure_fail_point(
        &self,
        name: &str,
        mode: Bson,
        data: Document,
    ) -> Result<(), SimError> {
        self.shared
            .lock()
            .failpoints
            .configure(name, &mode, Some(data))?;
        Ok(())
    }

    /// How many times a command has been run (e.g. `"hello"`, `"getMore"`).
    pub fn command_count(&self, name: &str) -> u64 {
        self.shared
            .lock()
            .command_counts
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Kills every open cursor, including change streams (their next getMore fails with
    /// CursorNotFound, which change streams resume from and find cursors do not). Returns how
    /// many there were.
    pub fn kill_all_cursors(&self) -> usize {
        self.shared.lock().cursors.kill_all()
    }

    /// Number of open cursors (including change streams).
    pub fn open_cursors(&self) -> usize {
        self.shared.lock().cursors.len()
    }

    /// Whether a document with this `_id` exists.
    pub fn contains_id(&self, db: &str, coll: &str, id: Bson) -> bool {
        let Ok(id) = bson::RawBson::try_from(id) else {
            return false;
        };
        let st = self.shared.lock();
        st.catalog
            .coll(db, coll)
            .and_then(|c| c.find_id(&id))
            .is_some()
    }
}

/// Steps down now; with `Some(d)`, steps back up after `d` (needs a tokio runtime).
pub(crate) fn step_down_for(shared: &Arc<Shared>, d: Option<Duration>) -> CmdResult<()> {
    let counter = {
        let mut st = shared.lock();
        if !st.topology.step_down() {
            return Ok(());
        }
        st.topology.counter
    };
    shared.notify_topology(counter);
    if let Some(d) = d {
        let s = shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    tokio::time::sleep(d).await;
                    step_up_now(&s);
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    step_up_now(&s);
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn step_up_now(shared: &Arc<Shared>) {
    let counter = {
        let mut st = shared.lock();
        if !st.topology.step_up() {
            return;
        }
        st.topology.counter
    };
    shared.notify_topology(counter);
}
