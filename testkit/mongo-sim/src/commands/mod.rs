//! Command dispatch: reads the command name and generic arguments, applies the fail points and
//! primary/secondary rules, runs the command, and shapes the reply (`ok`, `$clusterTime`,
//! `operationTime`, error fields and labels) the way mongod does.

pub mod admin;
pub mod aggregate;
pub mod catalog;
pub mod find;
pub mod hello;
pub mod write;

use std::sync::Arc;

use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::error::{carries_topology_version, codes, CmdResult, CommandError, LabelContext};
use crate::state::Shared;
use crate::topology::cluster_time_doc;
use crate::wire::{DocWriter, Request};

/// Per-connection facts commands need.
#[derive(Debug, Default, Clone)]
pub struct ConnCtx {
    pub id: i64,
    pub app_name: Option<String>,
    pub handshake_done: bool,
    /// Who is authenticated on this connection, and a SASL conversation under way.
    pub auth: crate::auth::Session,
}

/// A parsed command.
pub struct Cmd<'a> {
    pub name: String,
    pub db: String,
    pub body: &'a RawDocument,
    pub req: &'a Request,
}

impl<'a> Cmd<'a> {
    pub fn get(&self, key: &str) -> Option<RawBsonRef<'a>> {
        self.body.get(key).ok().flatten()
    }

    /// The command's first value as a collection name.
    pub fn collection(&self) -> CmdResult<String> {
        match self.get(&self.name) {
            Some(RawBsonRef::String(s)) => {
                crate::storage::check_coll_name(&self.db, s)?;
                Ok(s.to_string())
            }
            _ => Err(CommandError::new(
                codes::INVALID_NAMESPACE,
                format!(
                    "collection name has invalid type {}",
                    self.get(&self.name)
                        .map(|v| format!("{:?}", v.element_type()))
                        .unwrap_or_else(|| "missing".into())
                ),
            )),
        }
    }

    pub fn doc(&self, key: &str) -> CmdResult<Option<&'a RawDocument>> {
        match self.get(key) {
            None | Some(RawBsonRef::Null) => Ok(None),
            Some(RawBsonRef::Document(d)) => Ok(Some(d)),
            Some(other) => Err(CommandError::type_mismatch(format!(
                "BSON field '{}.{key}' is the wrong type '{:?}', expected type 'object'",
                self.name,
                other.element_type()
            ))),
        }
    }

    pub fn i64_opt(&self, key: &str) -> CmdResult<Option<i64>> {
        match self.get(key) {
            None | Some(RawBsonRef::Null) => Ok(None),
            Some(v) => match crate::matcher::as_i64(&v) {
                Some(n) => Ok(Some(n)),
                None => Err(CommandError::type_mismatch(format!(
                    "BSON field '{}.{key}' is the wrong type '{:?}', expected types '[long, int, decimal, double]'",
                    self.name,
                    v.element_type()
                ))),
            },
        }
    }

    pub fn bool_opt(&self, key: &str) -> bool {
        match self.get(key) {
            Some(RawBsonRef::Boolean(b)) => b,
            Some(RawBsonRef::Int32(i)) => i != 0,
            Some(RawBsonRef::Int64(i)) => i != 0,
            Some(RawBsonRef::Double(d)) => d != 0.0,
            _ => false,
        }
    }

    /// Documents given either in the body (`key: [...]`) or as a kind-1 sequence.
    pub fn doc_list(&self, key: &str) -> CmdResult<Vec<RawDocumentBuf>> {
        if let Some(seq) = self.req.sequences.get(key) {
            if self.get(key).is_some() {
                return Err(CommandError::bad_value(format!(
                    "Duplicate field {key} in both body and document sequence"
                )));
            }
            return Ok(seq.clone());
        }
        match self.get(key) {
            Some(RawBsonRef::Array(a)) => a
                .into_iter()
                .map(|e| match e {
                    Ok(RawBsonRef::Document(d)) => Ok(d.to_raw_document_buf()),
                    _ => Err(CommandError::type_mismatch(format!(
                        "BSON field '{}.{key}' items must be objects",
                        self.name
                    ))),
                })
                .collect(),
            None => Err(CommandError::new(
                40414,
                format!(
                    "BSON field '{}.{key}' is missing but a required field",
                    self.name
                ),
            )),
            Some(_) => Err(CommandError::type_mismatch(format!(
                "BSON field '{}.{key}' is the wrong type, expected type 'array'",
                self.name
            ))),
        }
    }

    /// Whether the read preference lets a secondary serve this read.
    pub fn secondary_ok(&self) -> bool {
        let rp = match self.get("$readPreference") {
            Some(RawBsonRef::Document(d)) => Some(d.to_raw_document_buf()),
            _ => self.req.query_read_preference.clone(),
        };
        match rp {
            Some(d) => !matches!(d.get("mode"), Ok(Some(RawBsonRef::String("primary")))),
            None => false,
        }
    }

    pub fn lsid(&self) -> Option<RawDocumentBuf> {
        match self.get("lsid") {
            Some(RawBsonRef::Document(d)) => Some(d.to_raw_document_buf()),
            _ => None,
        }
    }

    pub fn txn_number(&self) -> Option<i64> {
        match self.get("txnNumber") {
            Some(RawBsonRef::Int64(n)) => Some(n),
            Some(RawBsonRef::Int32(n)) => Some(i64::from(n)),
            _ => None,
        }
    }

    /// Rejects fields outside `known` and the generic arguments (mongod's IDL: 40415).
    pub fn check_fields(&self, known: &[&str]) -> CmdResult<()> {
        for item in self.body.iter() {
            let (k, _) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
            if k == self.name || known.contains(&k) || GENERIC_ARGS.contains(&k) {
                continue;
            }
            return Err(CommandError::new(
                40415,
                format!("BSON field '{}.{k}' is an unknown field.", self.name),
            ));
        }
        Ok(())
    }
}

/// Generic command arguments every command accepts (mongod's `generic_argument.idl`).
const GENERIC_ARGS: &[&str] = &[
    "$db",
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "$clusterTime",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "maxTimeMS",
    "comment",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "$audit",
    "$client",
    "$configServerState",
    "mayBypassWriteBlocking",
    "maxTimeMSOpOnly",
    "readOnly",
];

/// What the connection does after a command.
pub enum Outcome {
    /// Send this body (already including `ok`, `$clusterTime`, `operationTime`).
    Reply(Vec<u8>),
    /// Close the connection without replying (failCommand `closeConnection`).
    Close,
}

/// Commands that mongod 6.0+ accepts over legacy OP_QUERY.
pub fn allowed_over_op_query(name: &str) -> bool {
    matches!(name, "hello" | "isMaster" | "ismaster")
}

/// Runs one request to completion.
pub async fn run(shared: &Arc<Shared>, conn: &mut ConnCtx, req: &Request) -> Outcome {
    let name = req.command_name().unwrap_or("").to_string();
    let db = match req.query_db.clone() {
        Some(db) => db,
        None => match req.body.get("$db") {
            Ok(Some(RawBsonRef::String(s))) => s.to_string(),
            _ => {
                return Outcome::Reply(error_reply(
                    shared,
                    &CommandError::new(40571, "OP_MSG requests require a $db argument"),
                    &LabelContext::default(),
                ))
            }
        },
    };
    let cmd = Cmd {
        name: name.clone(),
        db,
        body: &req.body,
        req,
    };
    let label_ctx = LabelContext {
        command: name.clone(),
        is_retryable_write: cmd.txn_number().is_some() && cmd.get("autocommit").is_none(),
        is_change_stream: false,
    };
    // Fail points first, as mongod evaluates failCommand before running the command.
    let action = {
        let mut st = shared.lock();
        *st.command_counts.entry(name.clone()).or_default() += 1;
        st.failpoints.fail_command(&name, conn.app_name.as_deref())
    };
    let mut wce = None;
    if let Some(action) = action {
        if let Some(ms) = action.block_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if action.close_connection {
            return Outcome::Close;
        }
        if let Some(e) = action.error {
            return Outcome::Reply(error_reply(shared, &e, &label_ctx));
        }
        wce = action.write_concern_error;
    }
    if wce.is_none() {
        wce = unsatisfiable_write_concern(&cmd);
    }
    let result = match check_read_concern(&cmd) {
        Ok(()) => execute(shared, conn, &cmd).await,
        Err(e) => Err(e.into()),
    };
    tracing::debug!(command = %name, db = %cmd.db, ok = result.is_ok(), "command");
    match result {
        Ok(mut body) => {
            if let Some(mut wce) = wce {
                let labels = wce.remove("__labels");
                let mut w = DocWriter::with_capacity(body.len() + 256);
                let raw = RawDocumentBuf::from_bytes(std::mem::take(&mut body)).unwrap_or_default();
                w.append_all(&raw);
                let code = wce.get_i32("code").unwrap_or(0);
                if let Ok(r) = RawDocumentBuf::from_document(&wce) {
                    w.raw_document("writeConcernError", r.as_bytes());
                }
                let labels: Vec<Bson> = match labels {
                    Some(Bson::Array(a)) => a,
                    _ if label_ctx.is_retryable_write && crate::error::is_retriable_error(code) => {
                        vec![Bson::String("RetryableWriteError".into())]
                    }
                    _ => Vec::new(),
                };
                if !labels.is_empty() {
                    if let Ok(r) = RawDocumentBuf::from_document(&bson::doc! {"l": labels}) {
                        if let Ok(Some(v)) = r.get("l") {
                            w.append("errorLabels", v);
                        }
                    }
                }
                body = w.finish();
            }
            Outcome::Reply(finish_ok(shared, body))
        }
        Err(Failure::Close) => Outcome::Close,
        Err(Failure::Error(e, ctx)) => {
            let ctx = ctx.unwrap_or(label_ctx);
            Outcome::Reply(error_reply(shared, &e, &ctx))
        }
    }
}

/// Every read here sees the latest data, which satisfies local, majority, linearizable and
/// `afterClusterTime` read concerns. Reads at a point in time (`snapshot`, `atClusterTime`) are
/// refused: answering them with current data would hide a client's reliance on them.
fn check_read_concern(cmd: &Cmd<'_>) -> CmdResult<()> {
    let Some(rc) = cmd.doc("readConcern")? else {
        return Ok(());
    };
    // `$changeStream` supports only "majority" (its LiteParsed `supportsReadConcern` calls
    // `onlySingleReadConcernSupported(kMajorityReadConcern)`, document_source_change_stream.h);
    // without a level it is upgraded to majority. Checked before the command runs, like every
    // read concern check in `service_entry_point_common.cpp`.
    if cmd.name == "aggregate" && is_change_stream(cmd) {
        if let Ok(Some(RawBsonRef::String(level))) = rc.get("level") {
            if level != "majority" {
                return Err(CommandError::new(
                    codes::INVALID_OPTIONS,
                    format!(
                        "Aggregation stage $changeStream cannot run with a readConcern other than \
                         'majority'. Current readConcern: {level}"
                    ),
                ));
            }
        }
    }
    if matches!(rc.get("level"), Ok(Some(RawBsonRef::String("snapshot"))))
        || rc.get("atClusterTime").ok().flatten().is_some()
    {
        return Err(CommandError::not_implemented(
            "point-in-time reads (readConcern snapshot / atClusterTime)",
        ));
    }
    Ok(())
}

/// Collations are not simulated: a command or statement naming one other than the simple
/// collation (binary comparison, mongod's default: `{locale: "simple"}`) is refused everywhere
/// with NotImplemented rather than answered with binary comparison.
pub fn check_collation(value: Option<RawBsonRef<'_>>, field: &str) -> CmdResult<()> {
    match value {
        None => Ok(()),
        Some(RawBsonRef::Document(c)) => {
            let simple = c.iter().next().is_none()
                || (c.get("locale").ok().flatten() == Some(RawBsonRef::String("simple"))
                    && c.iter().count() == 1);
            if simple {
                Ok(())
            } else {
                Err(CommandError::not_implemented("collations"))
            }
        }
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{field}' is the wrong type '{:?}', expected type 'object'",
            other.element_type()
        ))),
    }
}

fn is_change_stream(cmd: &Cmd<'_>) -> bool {
    let Some(RawBsonRef::Array(stages)) = cmd.get("pipeline") else {
        return false;
    };
    matches!(
        stages.into_iter().next(),
        Some(Ok(RawBsonRef::Document(first))) if first.get("$changeStream").ok().flatten().is_some()
    )
}

/// A single member cannot acknowledge `w: N > 1` or a tag set: mongod applies the write and
/// reports a writeConcernError (UnsatisfiableWriteConcern, 100 / UnknownReplWriteConcern, 79).
fn unsatisfiable_write_concern(cmd: &Cmd<'_>) -> Option<Document> {
    const WRITES: &[&str] = &[
        "insert",
        "update",
        "delete",
        "findAndModify",
        "findandmodify",
        "create",
        "drop",
        "dropDatabase",
        "renameCollection",
        "createIndexes",
        "dropIndexes",
        "collMod",
    ];
    if !WRITES.contains(&cmd.name.as_str()) {
        return None;
    }
    let wc = cmd.doc("writeConcern").ok()??;
    match wc.get("w").ok()? {
        Some(v) if crate::matcher::as_i64(&v).is_some_and(|n| n > 1) => Some(bson::doc! {
            "code": 100,
            "codeName": "UnsatisfiableWriteConcern",
            "errmsg": "Not enough data-bearing nodes",
        }),
        Some(RawBsonRef::String(tag)) if tag != "majority" => Some(bson::doc! {
            "code": 79,
            "codeName": "UnknownReplWriteConcern",
            "errmsg": format!("No write concern mode named '{tag}' found in replica set configuration"),
        }),
        _ => None,
    }
}

/// Why a command did not produce a normal reply.
pub enum Failure {
    Error(CommandError, Option<LabelContext>),
    Close,
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        Failure::Error(e, None)
    }
}

pub type Exec = Result<Vec<u8>, Failure>;

/// A body under construction: the command's fields; `finish_ok` adds the rest.
pub fn doc_body(d: Document) -> Exec {
    RawDocumentBuf::from_document(&d)
        .map(|r| r.into_bytes())
        .map_err(|e| Failure::from(CommandError::new(codes::INTERNAL_ERROR, e.to_string())))
}

async fn execute(shared: &Arc<Shared>, conn: &mut ConnCtx, cmd: &Cmd<'_>) -> Exec {
    if cmd.req.kind == crate::wire::RequestKind::Query && !allowed_over_op_query(&cmd.name) {
        return Err(CommandError::new(
            352,
            format!(
                "Unsupported OP_QUERY command: {}. The client driver may require an upgrade. For \
                 more details see https://dochub.mongodb.org/core/legacy-opcode-removal",
                cmd.name
            ),
        )
        .into());
    }
    let users = shared.lock().users.clone();
    crate::auth::authorize(&users, &conn.auth, cmd)?;
    match cmd.name.as_str() {
        "hello" | "isMaster" | "ismaster" => hello::hello(shared, conn, cmd).await,
        "ping" => doc_body(Document::new()),
        "buildInfo" | "buildinfo" => hello::build_info(shared),
        "saslStart" => doc_body(crate::auth::sasl_start(
            &users,
            &mut conn.auth,
            &cmd.db,
            cmd.body,
        )?),
        "saslContinue" => doc_body(crate::auth::sasl_continue(
            &users,
            &mut conn.auth,
            cmd.body,
        )?),
        // MONGODB-X509 and the long-removed MONGODB-CR are not offered.
        "authenticate" => {
            Err(CommandError::new(codes::AUTHENTICATION_FAILED, "Authentication failed.").into())
        }
        "endSessions" | "killSessions" | "killAllSessions" | "refreshSessions" => {
            admin::end_sessions(shared, cmd)
        }
        "startSession" => admin::start_session(),
        "configureFailPoint" => admin::configure_fail_point(shared, cmd),
        "replSetStepDown" => admin::repl_set_step_down(shared, cmd),
        "replSetStepUp" => admin::repl_set_step_up(shared, cmd),
        "replSetGetStatus" => admin::repl_set_get_status(shared, cmd),
        "serverStatus" => admin::server_status(shared, cmd),
        "getParameter" => admin::get_parameter(shared, cmd),
        "connectionStatus" => doc_body(crate::auth::connection_status(&users, &conn.auth, cmd)),
        "whatsmyuri" => doc_body(bson::doc! {"you": "127.0.0.1:0"}),
        "hostInfo" => admin::host_info(),
        "getCmdLineOpts" => doc_body(bson::doc! {"argv": ["mongo-sim"], "parsed": {}}),
        "listDatabases" => catalog::list_databases(shared, cmd, |db| {
            crate::auth::lists_all_databases(&users, &conn.auth)
                || crate::auth::may_use_database(&users, &conn.auth, db)
        }),
        "listCollections" => catalog::list_collections(shared, cmd),
        "listIndexes" => catalog::list_indexes(shared, cmd),
        "createIndexes" => catalog::create_indexes(shared, cmd),
        "dropIndexes" => catalog::drop_indexes(shared, cmd),
        "create" => catalog::create(shared, cmd),
        "collMod" => catalog::coll_mod(shared, cmd),
        "drop" => catalog::drop(shared, cmd),
        "dropDatabase" => catalog::drop_database(shared, cmd),
        "renameCollection" => catalog::rename_collection(shared, cmd),
        "collStats" | "dbStats" => catalog::stats(shared, cmd),
        "find" => find::find(shared, cmd),
        "getMore" => find::get_more(shared, cmd).await,
        "killCursors" => find::kill_cursors(shared, cmd),
        "count" => find::count(shared, cmd),
        "distinct" => find::distinct(shared, cmd),
        "aggregate" => aggregate::aggregate(shared, cmd),
        "insert" => write::insert(shared, cmd),
        "update" => write::update(shared, cmd),
        "delete" => write::delete(shared, cmd),
        "findAndModify" | "findandmodify" => write::find_and_modify(shared, cmd),
        "commitTransaction" | "abortTransaction" => {
            Err(CommandError::not_implemented("multi-document transactions").into())
        }
        "" => Err(CommandError::failed_to_parse("empty command document").into()),
        other => Err(CommandError::new(
            codes::COMMAND_NOT_FOUND,
            format!("no such command: '{other}'"),
        )
        .into()),
    }
}

/// Appends `ok: 1`, `$clusterTime` and `operationTime` to a command's body, in place (a cursor
/// batch of 16 MiB is not copied again).
pub fn finish_ok(shared: &Shared, body: Vec<u8>) -> Vec<u8> {
    let (ts, standalone) = {
        let st = shared.lock();
        (st.cluster_time(), st.topology.standalone())
    };
    let mut tail = DocWriter::with_capacity(160);
    tail.f64("ok", 1.0);
    // A standalone mongod keeps no logical clock: no `$clusterTime` or `operationTime`.
    if !standalone {
        append_cluster_time(&mut tail, ts);
    }
    extend_document(body, &tail.finish())
}

/// Appends the elements of the complete document `extra` to the complete document `body`.
pub fn extend_document(mut body: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    if body.len() < 5 || extra.len() < 5 {
        return body;
    }
    body.pop(); // the terminating NUL
    body.extend_from_slice(&extra[4..extra.len() - 1]);
    body.push(0);
    let len = body.len() as i32;
    body[0..4].copy_from_slice(&len.to_le_bytes());
    body
}

pub fn append_cluster_time(w: &mut DocWriter, ts: bson::Timestamp) {
    if let Ok(ct) = RawDocumentBuf::from_document(&cluster_time_doc(ts)) {
        w.raw_document("$clusterTime", ct.as_bytes());
    }
    w.timestamp("operationTime", ts);
}

/// An `ok: 0` reply.
pub fn error_reply(shared: &Shared, e: &CommandError, ctx: &LabelContext) -> Vec<u8> {
    let (ts, tv, standalone) = {
        let st = shared.lock();
        (
            st.cluster_time(),
            st.topology.topology_version(),
            st.topology.standalone(),
        )
    };
    let mut d = bson::doc! {
        "ok": 0.0,
        "errmsg": e.errmsg.clone(),
        "code": e.code,
        "codeName": e.code_name.clone(),
    };
    for (k, v) in e.extra.iter() {
        d.insert(k.clone(), v.clone());
    }
    if carries_topology_version(e.code) && !d.contains_key("topologyVersion") {
        d.insert("topologyVersion", tv);
    }
    let labels = e.labels_for(ctx);
    if !labels.is_empty() {
        d.insert("errorLabels", labels);
    }
    let mut w = DocWriter::new();
    if let Ok(raw) = RawDocumentBuf::from_document(&d) {
        w.append_all(&raw);
    }
    if !standalone {
        append_cluster_time(&mut w, ts);
    }
    w.finish()
}
