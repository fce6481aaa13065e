//! The simulator's shared state behind one lock (catalog, oplog, clock, cursors, sessions, fail
//! points, topology), the notifications tasks wait on, and the writes that change data and
//! record oplog entries (so every write path, wire or test API, produces the same events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bson::{Document, RawBson, RawDocumentBuf, Timestamp};
use tokio::sync::watch;

use crate::cursors::Cursors;
use crate::error::{codes, CmdResult, CommandError};
use crate::failpoints::FailPoints;
use crate::oplog::{now_millis, Clock, OpKind, Oplog, OplogEntry};
use crate::storage::{id_of, Catalog, CollKind, Doc};
use crate::topology::Topology;
use crate::update::UpdateDescription;

/// Retryable-write bookkeeping for one logical session.
#[derive(Debug, Default)]
pub struct SessionTxn {
    pub txn_number: i64,
    /// The reply sent for `txn_number`, replayed on a retry.
    pub reply: Option<RawDocumentBuf>,
}

#[derive(Debug)]
pub struct State {
    pub catalog: Catalog,
    pub oplog: Oplog,
    pub clock: Clock,
    pub cursors: Cursors,
    /// Keyed by the raw bytes of `lsid`.
    pub sessions: HashMap<Vec<u8>, SessionTxn>,
    pub failpoints: FailPoints,
    pub topology: Topology,
    /// How many times each command was run (hello streaming replies included).
    pub command_counts: HashMap<String, u64>,
    /// The users; authentication is on when there is one.
    pub users: crate::auth::Users,
    /// Fixes `$sample`'s draw (see [`crate::SimHandle::set_sample_seed`]).
    pub sample_seed: Option<u64>,
}

/// Everything the server tasks and the handle share.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Bumped after every oplog write (wakes awaiting change-stream getMores).
    pub oplog_tx: watch::Sender<u64>,
    /// Bumped on every topology change (wakes awaitable hellos).
    pub topology_tx: watch::Sender<i64>,
    /// Bumped to drop every connection.
    pub drop_tx: watch::Sender<u64>,
    /// While true, connections hold requests unanswered.
    pub paused_tx: watch::Sender<bool>,
    /// Bumped to stop the server.
    pub shutdown_tx: watch::Sender<bool>,
}

impl Shared {
    pub fn new(state: State) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
            oplog_tx: watch::channel(0).0,
            topology_tx: watch::channel(0).0,
            drop_tx: watch::channel(0).0,
            paused_tx: watch::channel(false).0,
            shutdown_tx: watch::channel(false).0,
        })
    }

    /// Locks the state. A panic while holding the lock is a simulator bug; the state is still
    /// usable for tests, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn notify_oplog(&self) {
        self.oplog_tx.send_modify(|v| *v += 1);
    }

    pub fn notify_topology(&self, counter: i64) {
        self.topology_tx.send_replace(counter);
    }
}

/// The result of one update statement.
#[derive(Debug, Clone, Default)]
pub struct UpdateOutcome {
    pub matched: u64,
    pub modified: u64,
    pub upserted_id: Option<RawBson>,
}

impl State {
    pub fn new(topology: Topology, oplog_bytes: usize) -> State {
        State {
            catalog: Catalog::default(),
            oplog: Oplog::new(oplog_bytes),
            clock: Clock::default(),
            cursors: Cursors::default(),
            sessions: HashMap::new(),
            failpoints: FailPoints::default(),
            topology,
            command_counts: HashMap::new(),
            users: crate::auth::Users::default(),
            sample_seed: None,
        }
    }

    /// The latest cluster time (what replies send as `$clusterTime`/`operationTime`).
    pub fn cluster_time(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn log(
        &mut self,
        db: &str,
        coll: &str,
        uuid: Option<[u8; 16]>,
        op: OpKind,
    ) -> Timestamp {
        let ts = self.clock.tick();
        let size = OplogEntry::approx_size(&op, db, coll);
        self.oplog.push(OplogEntry {
            ts,
            wall_ms: now_millis(),
            db: db.to_string(),
            coll: coll.to_string(),
            uuid,
            op,
            size,
        });
        ts
    }

    pub fn check_primary(&self) -> CmdResult<()> {
        if self.topology.primary {
            Ok(())
        } else {
            Err(CommandError::new(
                codes::NOT_WRITABLE_PRIMARY,
                "not primary",
            ))
        }
    }

    /// Creates a collection (explicitly), logging a `create` entry.
    pub fn create_collection(
        &mut self,
        db: &str,
        coll: &str,
        kind: CollKind,
        options: Document,
    ) -> CmdResult<()> {
        let description = match &kind {
            CollKind::Collection => {
                let mut d = options.clone();
                d.insert("idIndex", id_index_spec());
                d
            }
            CollKind::View { view_on, pipeline } => {
                bson::doc! {"viewOn": view_on.clone(), "pipeline": pipeline.clone()}
            }
            CollKind::Timeseries => options.clone(),
        };
        let c = self.catalog.create(db, coll, kind, options)?;
        let uuid = c.uuid;
        self.log(
            db,
            coll,
            Some(uuid),
            OpKind::Create {
                options: description,
            },
        );
        Ok(())
    }

    pub(crate) fn ensure_collection(&mut self, db: &str, coll: &str) -> CmdResult<[u8; 16]> {
        let (c, created) = self.catalog.coll_for_write(db, coll)?;
        let uuid = c.uuid;
        if created {
            self.log(
                db,
                coll,
                Some(uuid),
                OpKind::Create {
                    options: bson::doc! {"idIndex": id_index_spec()},
                },
            );
        }
        Ok(uuid)
    }

    /// Inserts one document (adding an `_id` when it has none), logging an insert.
    pub fn insert_one(
        &mut self,
        db: &str,
        coll: &str,
        doc: RawDocumentBuf,
    ) -> CmdResult<Timestamp> {
        let clock = &mut self.clock;
        let doc = fix_document_for_insert(doc, || clock.tick())?;
        let uuid = self.ensure_collection(db, coll)?;
        let doc: Doc = Arc::new(doc);
        let c = self
            .catalog
            .coll_mut(db, coll)
            .ok_or_else(|| CommandError::ns_not_found("collection vanished"))?;
        if c.is_timeseries() {
            // Stored as-is: time-series bucketing is not simulated; reads still see documents.
        }
        c.insert(db, doc.clone())?;
        let id = id_of(&doc)?;
        Ok(self.log(db, coll, Some(uuid), OpKind::Insert { id, doc }))
    }

    /// Loads documents without oplog entries (data that predates the retained history).
    pub fn seed(&mut self, db: &str, coll: &str, docs: Vec<RawDocumentBuf>) -> CmdResult<usize> {
        let (c, _) = self.catalog.coll_for_write(db, coll)?;
        let n = docs.len();
        let clock = &mut self.clock;
        for d in docs {
            let d = fix_document_for_insert(d, || clock.tick())?;
            c.insert(db, Arc::new(d))?;
        }
        Ok(n)
    }

    /// Replaces or updates the document with record id `rid` with `new`, logging the event.
    pub fn write_update(
        &mut self,
        db: &str,
        coll: &str,
        rid: u64,
        old: Doc,
        new: RawDocumentBuf,
        description: Option<UpdateDescription>,
    ) -> CmdResult<Timestamp> {
        let c = self
            .catalog
            .coll_mut(db, coll)
            .ok_or_else(|| CommandError::ns_not_found("collection vanished"))?;
        let uuid = c.uuid;
        let images = c.pre_post_images;
        let new: Doc = Arc::new(new);
        c.replace_at(rid, new.clone());
        let id = id_of(&new)?;
        let pre_image = images.then(|| old.clone());
        let op = match description {
            Some(mut description) => {
                if let (Ok(o), Ok(n)) = (old.to_document(), new.to_document()) {
                    crate::disambiguate::fill(&mut description, &o, &n);
                }
                OpKind::Update {
                    id,
                    description: Box::new(description),
                    post_image: images.then(|| new.clone()),
                    pre_image,
                }
            }
            None => OpKind::Replace {
                id,
                doc: new,
                pre_image,
            },
        };
        Ok(self.log(db, coll, Some(uuid), op))
    }

    /// Deletes the document with record id `rid`, logging the event.
    pub fn write_delete(&mut self, db: &str, coll: &str, rid: u64) -> CmdResult<Option<Timestamp>> {
        let c = self
            .catalog
            .coll_mut(db, coll)
            .ok_or_else(|| CommandError::ns_not_found("collection vanished"))?;
        let uuid = c.uuid;
        let images = c.pre_post_images;
        let Some(old) = c.remove_at(rid) else {
            return Ok(None);
        };
        let id = id_of(&old)?;
        let pre_image = images.then_some(old);
        Ok(Some(self.log(
            db,
            coll,
            Some(uuid),
            OpKind::Delete { id, pre_image },
        )))
    }

    /// Drops a collection (or view). Returns false when it did not exist.
    pub fn drop_collection(&mut self, db: &str, coll: &str) -> bool {
        let Some(database) = self.catalog.dbs.get_mut(db) else {
            return false;
        };
        let Some(c) = database.collections.remove(coll) else {
            return false;
        };
        if c.is_timeseries() {
            database
                .collections
                .remove(&format!("system.buckets.{coll}"));
        }
        if database.collections.is_empty() {
            self.catalog.dbs.remove(db);
        }
        self.cursors.kill_namespace(&format!("{db}.{coll}"));
        self.log(db, coll, Some(c.uuid), OpKind::Drop);
        true
    }

    /// Drops a database: a drop entry per collection, then dropDatabase (as mongod logs it).
    pub fn drop_database(&mut self, db: &str) -> bool {
        let Some(database) = self.catalog.dbs.remove(db) else {
            return false;
        };
        for (name, c) in &database.collections {
            self.cursors.kill_namespace(&format!("{db}.{name}"));
            if !name.starts_with("system.") {
                self.log(db, name, Some(c.uuid), OpKind::Drop);
            }
        }
        self.log(db, "", None, OpKind::DropDatabase);
        true
    }

    pub fn rename_collection(
        &mut self,
        from_db: &str,
        from: &str,
        to_db: &str,
        to: &str,
        drop_target: bool,
    ) -> CmdResult<()> {
        let src = self.catalog.coll(from_db, from).ok_or_else(|| {
            CommandError::ns_not_found(format!("Source collection {from_db}.{from} does not exist"))
        })?;
        if src.is_view() {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("cannot rename view: {from_db}.{from}"),
            ));
        }
        crate::storage::check_coll_name(to_db, to)?;
        // The replaced target goes with the rename itself: mongod logs one renameCollection entry
        // carrying `dropTarget: <uuid>`, no drop (`OpObserverImpl::onRenameCollection`).
        let mut dropped = None;
        if let Some(target) = self.catalog.coll(to_db, to) {
            if !drop_target {
                return Err(CommandError::new(
                    codes::NAMESPACE_EXISTS,
                    "target namespace exists",
                ));
            }
            dropped = Some(target.uuid);
            let buckets = target
                .is_timeseries()
                .then(|| format!("system.buckets.{to}"));
            if let Some(database) = self.catalog.dbs.get_mut(to_db) {
                database.collections.remove(to);
                if let Some(b) = buckets {
                    database.collections.remove(&b);
                }
            }
            self.cursors.kill_namespace(&format!("{to_db}.{to}"));
        }
        let Some(mut c) = self
            .catalog
            .dbs
            .get_mut(from_db)
            .and_then(|d| d.collections.remove(from))
        else {
            return Err(CommandError::ns_not_found("source vanished"));
        };
        if self
            .catalog
            .dbs
            .get(from_db)
            .is_some_and(|d| d.collections.is_empty())
        {
            self.catalog.dbs.remove(from_db);
        }
        let uuid = c.uuid;
        c.name = to.to_string();
        self.catalog
            .dbs
            .entry(to_db.to_string())
            .or_default()
            .collections
            .insert(to.to_string(), c);
        self.cursors.kill_namespace(&format!("{from_db}.{from}"));
        self.log(
            from_db,
            from,
            Some(uuid),
            OpKind::Rename {
                to_db: to_db.to_string(),
                to_coll: to.to_string(),
                drop_target: dropped,
            },
        );
        Ok(())
    }

    /// Writes a no-op oplog entry (mongod's periodic no-op writer on idle replica sets).
    pub fn noop(&mut self) -> Timestamp {
        self.log("admin", "", None, OpKind::Noop)
    }
}

/// The `_id` index every collection has.
pub fn id_index_spec() -> Document {
    bson::doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}
}

/// mongod's `fixDocumentForInsert` (`src/mongo/db/ops/insert.cpp`): refuses documents over 16 MB
/// (BadValue), nested deeper than 180 levels (Overflow 15), with a bad `_id` (InvalidIdField 53,
/// DollarPrefixedFieldName 52) or two `_id` fields (BadValue); then moves `_id` to the front
/// (adding an ObjectId when there is none) and replaces each top-level `Timestamp(0, 0)` with a
/// new cluster time (`tick`).
pub fn fix_document_for_insert(
    doc: RawDocumentBuf,
    mut tick: impl FnMut() -> bson::Timestamp,
) -> CmdResult<RawDocumentBuf> {
    let size = doc.as_bytes().len();
    if size > crate::wire::MAX_BSON_OBJECT_SIZE {
        return Err(CommandError::bad_value(format!(
            "object to insert too large. size in bytes: {size}, max size: {}",
            crate::wire::MAX_BSON_OBJECT_SIZE
        )));
    }
    crate::storage::check_depth(&doc, |max| {
        format!("cannot insert document because it exceeds {max} levels of nesting")
    })?;
    let mut id: Option<bson::RawBsonRef<'_>> = None;
    let mut first_is_id = false;
    let mut empty_timestamp = false;
    for (i, item) in doc.iter().enumerate() {
        let (k, v) = item.map_err(|e| CommandError::new(22, format!("invalid BSON: {e}")))?;
        if matches!(v, bson::RawBsonRef::Timestamp(t) if t.time == 0 && t.increment == 0) {
            empty_timestamp = true;
        }
        if k == "_id" {
            crate::storage::check_id_value(&v)?;
            if id.is_some() {
                return Err(CommandError::bad_value(
                    "can't have multiple _id fields in one document",
                ));
            }
            id = Some(v);
            first_is_id = i == 0;
        }
    }
    if first_is_id && !empty_timestamp {
        return Ok(doc);
    }
    let mut w = crate::wire::DocWriter::with_capacity(doc.as_bytes().len() + 20);
    match id {
        Some(v) => w.append("_id", v),
        None => w.append(
            "_id",
            bson::RawBsonRef::ObjectId(bson::oid::ObjectId::new()),
        ),
    }
    for (k, v) in doc.iter().flatten() {
        match v {
            _ if k == "_id" => {}
            bson::RawBsonRef::Timestamp(t) if t.time == 0 && t.increment == 0 => {
                w.timestamp(k, tick())
            }
            other => w.append(k, other),
        }
    }
    Ok(w.finish_doc())
}
