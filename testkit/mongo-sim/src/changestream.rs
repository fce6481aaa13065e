//! Change streams: resume tokens, `$changeStream` options, scopes (collection, database, whole
//! deployment), turning oplog entries into change events, resuming (`resumeAfter`, `startAfter`,
//! `startAtOperationTime`), `postBatchResumeToken`, invalidation, and the 260/280/286 errors.
//!
//! Resume tokens are opaque `{_data: <hex>}` strings. The hex encodes, big-endian and fixed
//! width, `0x82 | clusterTime | tokenType (0 = high-water mark, 0x80 = event) | index within the
//! clusterTime | fromInvalidate | collection UUID`, so comparing two tokens' `_data` strings
//! orders them as the stream does (mongod's tokens are hex KeyStrings with the same property).
//! A high-water-mark token at T means "everything before T has been seen".

use bson::{RawBsonRef, RawDocument, RawDocumentBuf, Timestamp};

use crate::error::{codes, CmdResult, CommandError};
use crate::matcher::Expr;
use crate::oplog::{next_ts, ts_key, OpKind, Oplog, OplogEntry};
use crate::projection::Projection;
use crate::storage::Catalog;
use crate::wire::DocWriter;

/// A position in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub ts: u64,
    /// 0 for a high-water mark, 0x80 for an event.
    pub kind: u8,
    pub index: u32,
    pub from_invalidate: bool,
}

/// A decoded resume token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub pos: Position,
    pub uuid: [u8; 16],
}

const TOKEN_BYTES: usize = 1 + 8 + 1 + 4 + 1 + 16;

impl Token {
    pub fn high_water_mark(ts: Timestamp) -> Token {
        Token {
            pos: Position {
                ts: ts_key(ts),
                kind: 0,
                index: 0,
                from_invalidate: false,
            },
            uuid: [0; 16],
        }
    }

    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(TOKEN_BYTES);
        b.push(0x82);
        b.extend_from_slice(&self.pos.ts.to_be_bytes());
        b.push(self.pos.kind);
        b.extend_from_slice(&self.pos.index.to_be_bytes());
        b.push(u8::from(self.pos.from_invalidate));
        b.extend_from_slice(&self.uuid);
        hex::encode_upper(b)
    }

    pub fn to_raw_doc(&self) -> RawDocumentBuf {
        let mut w = DocWriter::new();
        w.string("_data", &self.encode());
        w.finish_doc()
    }

    pub fn ts(&self) -> Timestamp {
        crate::oplog::ts_from_key(self.pos.ts)
    }

    /// Parses `{_data: "<hex>"}`. Anything else is error 260 InvalidResumeToken.
    pub fn parse(v: RawBsonRef<'_>) -> CmdResult<Token> {
        let bad = |why: &str| {
            CommandError::new(
                codes::INVALID_RESUME_TOKEN,
                format!("Bad resume token: {why}"),
            )
        };
        let doc = match v {
            RawBsonRef::Document(d) => d,
            _ => return Err(bad("the resume token must be an object")),
        };
        let data = match doc.get("_data") {
            Ok(Some(RawBsonRef::String(s))) => s,
            Ok(Some(_)) => return Err(bad("_data of unexpected type")),
            _ => return Err(bad("_data of missing or of wrong type")),
        };
        let bytes = hex::decode(data).map_err(|_| bad("_data is not a hex string"))?;
        if bytes.len() != TOKEN_BYTES || bytes[0] != 0x82 {
            return Err(bad("_data is not a token issued by this deployment"));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[1..9]);
        let mut idx = [0u8; 4];
        idx.copy_from_slice(&bytes[10..14]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[15..31]);
        if bytes[9] != 0 && bytes[9] != 0x80 {
            return Err(bad("unknown token type"));
        }
        Ok(Token {
            pos: Position {
                ts: u64::from_be_bytes(ts),
                kind: bytes[9],
                index: u32::from_be_bytes(idx),
                from_invalidate: bytes[14] != 0,
            },
            uuid,
        })
    }
}

/// What a stream watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Collection { db: String, coll: String },
    Database { db: String },
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullDocument {
    Default,
    UpdateLookup,
    WhenAvailable,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeChange {
    Off,
    WhenAvailable,
    Required,
}

/// A stage after `$changeStream`.
#[derive(Debug, Clone)]
pub enum Stage {
    Match(Expr),
    Project(Projection),
}

/// The state of one change stream cursor.
#[derive(Debug, Clone)]
pub struct ChangeStream {
    pub scope: Scope,
    pub full_document: FullDocument,
    pub before_change: BeforeChange,
    pub show_expanded: bool,
    pub stages: Vec<Stage>,
    /// Scan oplog entries with `ts >= scan_from`...
    pub scan_from: Timestamp,
    /// ...skipping events at or before this position.
    pub skip_through: Option<Position>,
    /// The collection UUID of the event at `skip_through` (tokens carry it).
    pub skip_uuid: [u8; 16],
    /// `resumeAfter`/`startAfter` an event: the first in-scope event at or after it must be it.
    pub must_find: Option<Position>,
    pub must_find_token: Option<String>,
    /// An invalidate was returned: the cursor is finished.
    pub finished: bool,
}

/// A batch of events and the token to checkpoint after it.
pub struct Batch {
    pub events: Vec<RawDocumentBuf>,
    pub post_batch_token: Token,
    pub finished: bool,
}

impl ChangeStream {
    /// Parses the `$changeStream` stage and the stages after it. `db`/`coll` come from the
    /// aggregate's namespace (`coll` is None for `aggregate: 1`).
    pub fn open(
        db: &str,
        coll: Option<&str>,
        spec: &RawDocument,
        rest: &[RawDocumentBuf],
        catalog: &Catalog,
        oplog: &Oplog,
        now: Timestamp,
    ) -> CmdResult<ChangeStream> {
        let mut full_document = FullDocument::Default;
        let mut before_change = BeforeChange::Off;
        let mut show_expanded = false;
        let mut all_for_cluster = false;
        let mut resume_after = None;
        let mut start_after = None;
        let mut start_at = None;
        for item in spec.iter() {
            let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
            match k {
                "fullDocument" => {
                    full_document = match v {
                        RawBsonRef::String("default") => FullDocument::Default,
                        RawBsonRef::String("updateLookup") => FullDocument::UpdateLookup,
                        RawBsonRef::String("whenAvailable") => FullDocument::WhenAvailable,
                        RawBsonRef::String("required") => FullDocument::Required,
                        other => {
                            return Err(CommandError::bad_value(format!(
                                "'{other:?}' is not a valid value for fullDocument"
                            )))
                        }
                    }
                }
                "fullDocumentBeforeChange" => {
                    before_change = match v {
                        RawBsonRef::String("off") => BeforeChange::Off,
                        RawBsonRef::String("whenAvailable") => BeforeChange::WhenAvailable,
                        RawBsonRef::String("required") => BeforeChange::Required,
                        other => {
                            return Err(CommandError::bad_value(format!(
                                "'{other:?}' is not a valid value for fullDocumentBeforeChange"
                            )))
                        }
                    }
                }
                "showExpandedEvents" => show_expanded = matches!(v, RawBsonRef::Boolean(true)),
                "allChangesForCluster" => all_for_cluster = matches!(v, RawBsonRef::Boolean(true)),
                "resumeAfter" => resume_after = Some(Token::parse(v)?),
                "startAfter" => start_after = Some(Token::parse(v)?),
                "startAtOperationTime" => {
                    match v {
                        RawBsonRef::Timestamp(t) => start_at = Some(t),
                        _ => return Err(CommandError::type_mismatch(
                            "BSON field '$changeStream.startAtOperationTime' is the wrong type, \
                             expected type 'timestamp'",
                        )),
                    }
                }
                other => {
                    return Err(CommandError::new(
                        40415,
                        format!("BSON field '$changeStream.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let n_start = [
            resume_after.is_some(),
            start_after.is_some(),
            start_at.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n_start > 1 {
            return Err(CommandError::new(
                40674,
                "Only one type of resume option is allowed, but multiple were found.",
            ));
        }
        let scope = match (db, coll) {
            ("admin", None) if all_for_cluster => Scope::Cluster,
            (_, None) if all_for_cluster => {
                return Err(CommandError::new(
                    codes::INVALID_NAMESPACE,
                    "$changeStream with 'allChangesForCluster: true' must be run on the 'admin' database",
                ))
            }
            ("admin" | "config" | "local", _) => {
                return Err(CommandError::new(
                    codes::INVALID_NAMESPACE,
                    format!("$changeStream may not be opened on the internal {db} database"),
                ))
            }
            (_, None) => Scope::Database { db: db.to_string() },
            (_, Some(c)) => {
                if c.starts_with("system.") {
                    return Err(CommandError::new(
                        codes::INVALID_NAMESPACE,
                        format!("$changeStream may not be opened on the internal {db}.{c} collection"),
                    ));
                }
                if let Some(existing) = catalog.coll(db, c) {
                    // Time-series collections are views over their bucket collection in mongod
                    // 7.0, so both refuse change streams the same way.
                    if existing.is_view() || existing.is_timeseries() {
                        return Err(CommandError::new(
                            codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                            format!("Namespace {db}.{c} is a view, not a collection"),
                        ));
                    }
                }
                Scope::Collection {
                    db: db.to_string(),
                    coll: c.to_string(),
                }
            }
        };
        let mut stages = Vec::new();
        for st in rest {
            let (name, arg) = match st.iter().next() {
                Some(Ok(x)) => x,
                _ => return Err(CommandError::bad_value("empty pipeline stage")),
            };
            match (name, arg) {
                ("$match", RawBsonRef::Document(d)) => stages.push(Stage::Match(Expr::parse(d)?)),
                ("$project", RawBsonRef::Document(d)) => {
                    if let Some(p) = Projection::parse(d)? {
                        stages.push(Stage::Project(p));
                    }
                }
                ("$changeStream", _) => {
                    return Err(CommandError::new(
                        40602,
                        "$changeStream is only valid as the first stage in a pipeline.",
                    ))
                }
                (other, _) => {
                    return Err(CommandError::not_implemented(format!(
                        "the {other} stage after $changeStream"
                    )))
                }
            }
        }
        let mut cs = ChangeStream {
            scope,
            full_document,
            before_change,
            show_expanded,
            stages,
            scan_from: next_ts(now),
            skip_through: None,
            skip_uuid: [0; 16],
            must_find: None,
            must_find_token: None,
            finished: false,
        };
        let history_lost = || {
            CommandError::new(
                codes::CHANGE_STREAM_HISTORY_LOST,
                "Executor error during aggregate command on namespace: :: caused by :: Resume of \
                 change stream was not possible, as the resume point may no longer be in the oplog.",
            )
        };
        if let Some(t) = resume_after.or(start_after) {
            if resume_after.is_some() && t.pos.from_invalidate {
                return Err(CommandError::new(
                    codes::INVALID_RESUME_TOKEN,
                    "Attempting to resume a change stream using 'resumeAfter' is not allowed from \
                     an invalidate notification.",
                ));
            }
            if oplog.history_lost(t.ts()) {
                return Err(history_lost());
            }
            cs.scan_from = t.ts();
            if t.pos.kind != 0 {
                cs.skip_through = Some(t.pos);
                cs.skip_uuid = t.uuid;
                cs.must_find = Some(Position {
                    from_invalidate: false,
                    ..t.pos
                });
                cs.must_find_token = Some(t.encode());
            }
        } else if let Some(ts) = start_at {
            if oplog.history_lost(ts) {
                return Err(history_lost());
            }
            cs.scan_from = ts;
        }
        Ok(cs)
    }

    /// Whether an oplog entry belongs to this stream. A rename is seen by the stream on its
    /// source namespace. mongod 7.0 may also report a rename *into* a watched namespace (with
    /// `dropTarget`) to that namespace's stream; that case is not simulated: such a stream sees
    /// the target's drop (and is invalidated by it), never a silent change of contents.
    fn in_scope(&self, e: &OplogEntry) -> bool {
        match &self.scope {
            Scope::Collection { db, coll } => match &e.op {
                OpKind::DropDatabase => false,
                _ => &e.db == db && &e.coll == coll,
            },
            Scope::Database { db } => &e.db == db && !e.coll.starts_with("system."),
            Scope::Cluster => {
                !matches!(e.db.as_str(), "admin" | "config" | "local")
                    && !e.coll.starts_with("system.")
            }
        }
    }

    /// Builds the next batch. `max_events` and `max_bytes` bound it.
    pub fn next_batch(
        &mut self,
        oplog: &Oplog,
        catalog: &Catalog,
        now: Timestamp,
        max_events: usize,
        max_bytes: usize,
    ) -> CmdResult<Batch> {
        if self.finished {
            return Ok(Batch {
                events: Vec::new(),
                post_batch_token: Token::high_water_mark(self.scan_from),
                finished: true,
            });
        }
        if max_events == 0 {
            // batchSize 0: no events, and the token stays where the stream is.
            let token = match self.skip_through {
                Some(pos) => Token {
                    pos,
                    uuid: self.skip_uuid,
                },
                None => Token::high_water_mark(self.scan_from),
            };
            return Ok(Batch {
                events: Vec::new(),
                post_batch_token: token,
                finished: false,
            });
        }
        if oplog.history_lost(self.scan_from) {
            return Err(CommandError::new(
                codes::CHANGE_STREAM_HISTORY_LOST,
                "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
            ));
        }
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let start = oplog.position_of(self.scan_from);
        for entry in oplog.iter_from(start) {
            if !self.in_scope(entry) {
                continue;
            }
            for (pos, uuid, raw) in self.events_for(entry, catalog)? {
                if let Some(skip) = self.skip_through {
                    if pos <= skip {
                        if self.must_find == Some(pos) {
                            self.must_find = None;
                        }
                        continue;
                    }
                }
                if let Some(expected) = self.must_find.take() {
                    if pos != expected {
                        return Err(CommandError::new(
                            codes::CHANGE_STREAM_FATAL_ERROR,
                            format!(
                                "cannot resume stream; the resume token was not found. {{_data: \"{}\"}}",
                                self.must_find_token.clone().unwrap_or_default()
                            ),
                        ));
                    }
                }
                let is_invalidate = pos.from_invalidate;
                let mut doc = Some(raw);
                for st in &self.stages {
                    let Some(d) = doc.take() else { break };
                    doc = match st {
                        Stage::Match(m) => m.matches(&d).then_some(d),
                        Stage::Project(p) => Some(p.apply(&d)),
                    };
                }
                self.skip_through = Some(pos);
                self.skip_uuid = uuid;
                self.scan_from = crate::oplog::ts_from_key(pos.ts);
                if let Some(d) = doc {
                    let reshaped = self.stages.iter().any(|s| matches!(s, Stage::Project(_)));
                    let token_ok = !reshaped
                        || matches!(d.get("_id"), Ok(Some(RawBsonRef::Document(t))) if t.get("_data").ok().flatten().is_some()
                        && Token::parse(RawBsonRef::Document(t)).map(|t| t.pos == pos).unwrap_or(false));
                    if !token_ok {
                        return Err(CommandError::new(
                            codes::CHANGE_STREAM_FATAL_ERROR,
                            "Encountered an event whose _id field, which contains the resume \
                             token, was modified by the pipeline. Modifying the _id field of an \
                             event makes it impossible to resume the stream from that point. Only \
                             transformations that retain the unmodified _id field are allowed.",
                        ));
                    }
                    bytes += d.as_bytes().len();
                    events.push(d);
                }
                if is_invalidate {
                    self.finished = true;
                    let token = Token { pos, uuid };
                    return Ok(Batch {
                        events,
                        post_batch_token: token,
                        finished: true,
                    });
                }
                if events.len() >= max_events || bytes >= max_bytes {
                    return Ok(Batch {
                        events,
                        post_batch_token: Token { pos, uuid },
                        finished: false,
                    });
                }
            }
        }
        // Scanned everything: the high-water mark is just after the latest cluster time.
        let hwm = next_ts(now);
        if ts_key(hwm) > ts_key(self.scan_from) {
            self.scan_from = hwm;
            self.skip_through = None;
        }
        Ok(Batch {
            events,
            post_batch_token: Token::high_water_mark(self.scan_from),
            finished: false,
        })
    }

    /// The events one oplog entry produces for this stream, in order.
    fn events_for(
        &self,
        e: &OplogEntry,
        catalog: &Catalog,
    ) -> CmdResult<Vec<(Position, [u8; 16], RawDocumentBuf)>> {
        let uuid = e.uuid.unwrap_or([0; 16]);
        let pos = Position {
            ts: ts_key(e.ts),
            kind: 0x80,
            index: 0,
            from_invalidate: false,
        };
        let token = Token { pos, uuid };
        let mut out = Vec::new();
        let op_type = match &e.op {
            OpKind::Insert { .. } => "insert",
            OpKind::Update { .. } => "update",
            OpKind::Replace { .. } => "replace",
            OpKind::Delete { .. } => "delete",
            OpKind::Drop => "drop",
            OpKind::Rename { .. } => "rename",
            OpKind::DropDatabase => "dropDatabase",
            OpKind::Create { .. }
            | OpKind::CreateIndexes { .. }
            | OpKind::DropIndexes { .. }
            | OpKind::Modify { .. }
                if !self.show_expanded =>
            {
                return Ok(out)
            }
            OpKind::Create { .. } => "create",
            OpKind::CreateIndexes { .. } => "createIndexes",
            OpKind::DropIndexes { .. } => "dropIndexes",
            OpKind::Modify { .. } => "modify",
            OpKind::Noop => return Ok(out),
        };
        let mut w = DocWriter::with_capacity(256);
        w.raw_document("_id", token.to_raw_doc().as_bytes());
        w.string("operationType", op_type);
        w.timestamp("clusterTime", e.ts);
        w.datetime("wallTime", e.wall_ms);
        if self.show_expanded && e.uuid.is_some() && !matches!(e.op, OpKind::DropDatabase) {
            let mut tmp = RawDocumentBuf::new();
            tmp.append(
                "u",
                bson::RawBson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Uuid,
                    bytes: uuid.to_vec(),
                }),
            );
            if let Ok(Some(v)) = tmp.get("u") {
                w.append("collectionUUID", v);
            }
        }
        let write_ns = |w: &mut DocWriter| {
            w.begin_document("ns");
            w.string("db", &e.db);
            if !e.coll.is_empty() {
                w.string("coll", &e.coll);
            }
            w.end();
        };
        let write_key = |w: &mut DocWriter, id: &bson::RawBson| {
            w.begin_document("documentKey");
            w.append("_id", id.as_raw_bson_ref());
            w.end();
        };
        match &e.op {
            OpKind::Insert { id, doc } => {
                w.raw_document("fullDocument", doc.as_bytes());
                write_ns(&mut w);
                write_key(&mut w, id);
            }
            OpKind::Replace { id, doc, pre_image } => {
                w.raw_document("fullDocument", doc.as_bytes());
                write_ns(&mut w);
                write_key(&mut w, id);
                self.write_before(&mut w, pre_image, e)?;
            }
            OpKind::Update {
                id,
                description,
                post_image,
                pre_image,
            } => {
                write_ns(&mut w);
                write_key(&mut w, id);
                let ud = bson::RawDocumentBuf::from_document(&description.to_document())
                    .map_err(|x| CommandError::bad_value(x.to_string()))?;
                w.raw_document("updateDescription", ud.as_bytes());
                match self.full_document {
                    FullDocument::Default => {}
                    FullDocument::UpdateLookup => {
                        match catalog.coll(&e.db, &e.coll).and_then(|c| c.find_id(id)) {
                            Some((_, d)) => w.raw_document("fullDocument", d.as_bytes()),
                            None => w.append("fullDocument", RawBsonRef::Null),
                        }
                    }
                    FullDocument::WhenAvailable | FullDocument::Required => match post_image {
                        Some(d) => w.raw_document("fullDocument", d.as_bytes()),
                        None if self.full_document == FullDocument::Required => {
                            return Err(missing_image("post", e))
                        }
                        None => w.append("fullDocument", RawBsonRef::Null),
                    },
                }
                self.write_before(&mut w, pre_image, e)?;
            }
            OpKind::Delete { id, pre_image } => {
                write_ns(&mut w);
                write_key(&mut w, id);
                self.write_before(&mut w, pre_image, e)?;
            }
            OpKind::Drop | OpKind::DropDatabase => write_ns(&mut w),
            // The `modify` event's operationDescription is given as the changed options; mongod's
            // exact shape (e.g. a `stateBeforeChange`) is not reproduced.
            OpKind::Create { options } | OpKind::Modify { options } => {
                write_ns(&mut w);
                write_description(&mut w, options)?;
            }
            OpKind::CreateIndexes { indexes } | OpKind::DropIndexes { indexes } => {
                write_ns(&mut w);
                write_description(&mut w, &bson::doc! {"indexes": indexes.clone()})?;
            }
            OpKind::Rename { to_db, to_coll } => {
                write_ns(&mut w);
                w.begin_document("to");
                w.string("db", to_db);
                w.string("coll", to_coll);
                w.end();
                if self.show_expanded {
                    write_description(
                        &mut w,
                        &bson::doc! {"to": {"db": to_db.clone(), "coll": to_coll.clone()}},
                    )?;
                }
            }
            OpKind::Noop => {}
        }
        out.push((pos, uuid, w.finish_doc()));
        // Invalidation: a collection stream ends at its collection's drop or rename, a database
        // stream at its database's drop.
        let invalidates = matches!(
            (&self.scope, &e.op),
            (
                Scope::Collection { .. },
                OpKind::Drop | OpKind::Rename { .. }
            ) | (Scope::Database { .. }, OpKind::DropDatabase)
        );
        if invalidates {
            let ipos = Position {
                from_invalidate: true,
                ..pos
            };
            let itoken = Token { pos: ipos, uuid };
            let mut w = DocWriter::with_capacity(128);
            w.raw_document("_id", itoken.to_raw_doc().as_bytes());
            w.string("operationType", "invalidate");
            w.timestamp("clusterTime", e.ts);
            w.datetime("wallTime", e.wall_ms);
            out.push((ipos, uuid, w.finish_doc()));
        }
        Ok(out)
    }

    fn write_before(
        &self,
        w: &mut DocWriter,
        pre_image: &Option<crate::storage::Doc>,
        e: &OplogEntry,
    ) -> CmdResult<()> {
        match (self.before_change, pre_image) {
            (BeforeChange::Off, _) => {}
            (_, Some(d)) => w.raw_document("fullDocumentBeforeChange", d.as_bytes()),
            (BeforeChange::Required, None) => return Err(missing_image("pre", e)),
            (BeforeChange::WhenAvailable, None) => {
                w.append("fullDocumentBeforeChange", RawBsonRef::Null)
            }
        }
        Ok(())
    }
}

fn write_description(w: &mut DocWriter, d: &bson::Document) -> CmdResult<()> {
    let raw =
        RawDocumentBuf::from_document(d).map_err(|e| CommandError::bad_value(e.to_string()))?;
    w.raw_document("operationDescription", raw.as_bytes());
    Ok(())
}

/// mongod's error for a `required` image that is not there: NoMatchingDocument (47), with the
/// messages of `document_source_change_stream_add_post_image.cpp` / `..._add_pre_image.cpp`.
fn missing_image(which: &str, e: &OplogEntry) -> CommandError {
    let events = if which == "post" {
        "update events"
    } else {
        "update, delete and replace events"
    };
    CommandError::new(
        47,
        format!(
            "Change stream was configured to require a {which}-image for all {events}, but the \
             {which}-image was not found for event: {{ns: \"{}.{}\", clusterTime: Timestamp({}, {})}}",
            e.db, e.coll, e.ts.time, e.ts.increment
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_order() {
        let a = Token::high_water_mark(Timestamp {
            time: 5,
            increment: 1,
        });
        let b = Token {
            pos: Position {
                ts: ts_key(Timestamp {
                    time: 5,
                    increment: 1,
                }),
                kind: 0x80,
                index: 0,
                from_invalidate: false,
            },
            uuid: [7; 16],
        };
        let c = Token {
            pos: Position {
                from_invalidate: true,
                ..b.pos
            },
            uuid: [7; 16],
        };
        let d = Token::high_water_mark(Timestamp {
            time: 5,
            increment: 2,
        });
        let enc: Vec<String> = [a, b, c, d].iter().map(Token::encode).collect();
        let mut sorted = enc.clone();
        sorted.sort();
        assert_eq!(enc, sorted);
        for t in [a, b, c, d] {
            let raw = t.to_raw_doc();
            assert_eq!(Token::parse(RawBsonRef::Document(&raw)).expect("parse"), t);
        }
        let bogus = bson::rawdoc! {"_data": "zz"};
        assert_eq!(
            Token::parse(RawBsonRef::Document(&bogus))
                .expect_err("bad")
                .code,
            260
        );
    }
}
