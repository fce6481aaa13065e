//! Change streams: resume tokens, `$changeStream` options, scopes (collection, database, whole
//! deployment), the stages allowed after `$changeStream`, turning oplog entries into change
//! events, splitting events over 16 MB (`$changeStreamSplitLargeEvent`), resuming
//! (`resumeAfter`, `startAfter`, `startAtOperationTime`, also from a fragment of a split event),
//! `postBatchResumeToken`, invalidation, and the 260/280/286 and 10334 errors.
//!
//! Resume tokens are opaque `{_data: <hex>}` strings. The hex encodes, big-endian and fixed
//! width, `0x82 | clusterTime | tokenType (0 = high-water mark, 0x80 = event) | index within the
//! clusterTime | fromInvalidate | fragment flag and number | collection UUID`, so comparing two
//! tokens' `_data` strings orders them as the stream does (mongod's tokens are hex KeyStrings with
//! the same property; a fragment's token, like mongod's `fragmentNum`, sorts after its event's).
//! A high-water-mark token at T means "everything before T has been seen".

use bson::{RawBsonRef, RawDocument, RawDocumentBuf, Timestamp};

use crate::error::{codes, CmdResult, CommandError};
use crate::expression::Expression;
use crate::matcher::Expr;
use crate::oplog::{next_ts, ts_key, OpKind, Oplog, OplogEntry};
use crate::projection::Projection;
use crate::storage::Catalog;
use crate::version::ServerVersion;
use crate::wire::DocWriter;

/// The largest event `$changeStreamSplitLargeEvent` passes whole:
/// `kBSONObjMaxChangeEventSize = BSONObjMaxInternalSize - 8 KB`
/// (`document_source_change_stream_split_large_event.h`).
pub const MAX_CHANGE_EVENT_SIZE: usize = MAX_INTERNAL_SIZE - 8 * 1024;
/// `BSONObjMaxInternalSize` (16 MB + 16 KB): a larger event cannot be serialized, and the
/// aggregate or getMore fails with BSONObjectTooLarge (`PlanExecutorPipeline::_trySerializeToBson`).
pub const MAX_INTERNAL_SIZE: usize = 16 * 1024 * 1024 + 16 * 1024;
/// BSONObjectTooLarge.
const BSON_OBJECT_TOO_LARGE: i32 = 10334;

/// A position in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub ts: u64,
    /// 0 for a high-water mark, 0x80 for an event.
    pub kind: u8,
    pub index: u32,
    pub from_invalidate: bool,
    /// The fragment of a split event (0-based), as mongod's `fragmentNum`.
    pub fragment: Option<u32>,
}

impl Position {
    /// The event this position belongs to (a fragment's whole event).
    pub fn event(&self) -> Position {
        Position {
            fragment: None,
            ..*self
        }
    }
}

/// A decoded resume token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub pos: Position,
    pub uuid: [u8; 16],
}

const TOKEN_BYTES: usize = 1 + 8 + 1 + 4 + 1 + 1 + 4 + 16;

impl Token {
    pub fn high_water_mark(ts: Timestamp) -> Token {
        Token {
            pos: Position {
                ts: ts_key(ts),
                kind: 0,
                index: 0,
                from_invalidate: false,
                fragment: None,
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
        b.push(u8::from(self.pos.fragment.is_some()));
        b.extend_from_slice(&self.pos.fragment.unwrap_or(0).to_be_bytes());
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
        let mut frag = [0u8; 4];
        frag.copy_from_slice(&bytes[16..20]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[20..36]);
        if bytes[9] != 0 && bytes[9] != 0x80 {
            return Err(bad("unknown token type"));
        }
        Ok(Token {
            pos: Position {
                ts: u64::from_be_bytes(ts),
                kind: bytes[9],
                index: u32::from_be_bytes(idx),
                from_invalidate: bytes[14] != 0,
                fragment: (bytes[15] != 0).then(|| u32::from_be_bytes(frag)),
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
    /// `$project` and `$unset`.
    Project(Projection),
    /// `$addFields` / `$set`.
    AddFields(Vec<(Vec<String>, Expression)>),
    /// `$replaceRoot` / `$replaceWith`.
    ReplaceRoot(Expression),
}

/// The stages mongod lets follow `$changeStream` (`StageConstraints::isAllowedInChangeStream`:
/// `$match`, `$project`, `$addFields`/`$set`, `$unset`, `$replaceRoot`/`$replaceWith`, `$redact`,
/// and `$changeStreamSplitLargeEvent`).
const ALLOWED_IN_CHANGE_STREAM: &[&str] = &[
    "$match",
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
    "$redact",
    "$changeStreamSplitLargeEvent",
];

impl Stage {
    fn apply(&self, d: RawDocumentBuf) -> CmdResult<Option<RawDocumentBuf>> {
        let to_doc = |d: &RawDocumentBuf| {
            d.to_document()
                .map_err(|e| CommandError::bad_value(e.to_string()))
        };
        let to_raw = |d: &bson::Document| {
            RawDocumentBuf::from_document(d).map_err(|e| CommandError::bad_value(e.to_string()))
        };
        Ok(match self {
            Stage::Match(m) => m.matches(&d).then_some(d),
            Stage::Project(p) => Some(p.apply(&d)),
            Stage::AddFields(fields) => {
                let source = to_doc(&d)?;
                let mut out = source.clone();
                for (path, e) in fields {
                    match e.evaluate(&source) {
                        Some(v) => crate::expression::set_path(&mut out, path, v)?,
                        None if path.len() == 1 => {
                            out.remove(&path[0]);
                        }
                        None => {}
                    }
                }
                Some(to_raw(&out)?)
            }
            Stage::ReplaceRoot(e) => match e.evaluate(&to_doc(&d)?) {
                Some(bson::Bson::Document(root)) => Some(to_raw(&root)?),
                other => {
                    return Err(CommandError::new(
                        40228,
                        format!(
                            "'replacement document' must evaluate to an object, but resulting \
                             value was: {}. Type of resulting value: '{}'.",
                            other
                                .as_ref()
                                .map(|v| v.to_string())
                                .unwrap_or_else(|| "MISSING".into()),
                            other
                                .as_ref()
                                .map(|v| format!("{:?}", v.element_type()))
                                .unwrap_or_else(|| "missing".into())
                        ),
                    ))
                }
            },
        })
    }
}

fn stage_spec_doc(name: &str, arg: RawBsonRef<'_>) -> CmdResult<bson::Document> {
    match arg {
        RawBsonRef::Document(d) => {
            bson::Document::try_from(d).map_err(|e| CommandError::bad_value(e.to_string()))
        }
        _ => Err(CommandError::failed_to_parse(format!(
            "{name} specification must be an object"
        ))),
    }
}

/// Parses the stages after `$changeStream`: unknown names are 40324, known ones mongod does not
/// allow in a change stream IllegalOperation (20), `$changeStreamSplitLargeEvent` must be an
/// empty object (7182800) and the last stage (7182802), and exists only from 7.0 / 6.0.9 (before,
/// its name is unknown). Returns the stages and whether the split stage is there.
fn parse_stages(rest: &[RawDocumentBuf], version: ServerVersion) -> CmdResult<(Vec<Stage>, bool)> {
    let mut stages = Vec::new();
    let mut names = Vec::new();
    let mut split_at = None;
    for (i, st) in rest.iter().enumerate() {
        let (name, arg) = crate::commands::aggregate::stage_name(st)?;
        names.push(name.to_owned());
        match name {
            "$changeStreamSplitLargeEvent" if !version.splits_large_events() => {
                return Err(crate::commands::aggregate::unknown_stage(name))
            }
            "$changeStreamSplitLargeEvent" => {
                if !matches!(arg, RawBsonRef::Document(d) if d.iter().next().is_none()) {
                    return Err(CommandError::new(
                        7_182_800,
                        "$changeStreamSplitLargeEvent spec should be an empty object",
                    ));
                }
                split_at.get_or_insert(i);
            }
            "$match" => match arg {
                RawBsonRef::Document(d) => stages.push(Stage::Match(Expr::parse(d)?)),
                _ => {
                    return Err(CommandError::new(
                        15959,
                        "the match filter must be an expression in an object",
                    ))
                }
            },
            "$project" => match arg {
                RawBsonRef::Document(d) => match Projection::parse(d)? {
                    Some(p) => stages.push(Stage::Project(p)),
                    None => return Err(CommandError::new(51272, "Invalid $project :: caused by :: projection specification must have at least one field")),
                },
                _ => {
                    return Err(CommandError::new(
                        15969,
                        "$project specification must be an object",
                    ))
                }
            },
            "$addFields" | "$set" => {
                let spec = stage_spec_doc(name, arg)?;
                let mut fields = Vec::new();
                for (k, v) in &spec {
                    fields.push((
                        k.split('.').map(str::to_owned).collect(),
                        Expression::parse(v)?,
                    ));
                }
                stages.push(Stage::AddFields(fields));
            }
            "$unset" => {
                let fields: Vec<String> = match arg {
                    RawBsonRef::String(s) => vec![s.to_owned()],
                    RawBsonRef::Array(a) => a
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                    _ => {
                        return Err(CommandError::new(
                            31002,
                            "$unset specification must be a string or an array",
                        ))
                    }
                };
                let mut spec = RawDocumentBuf::new();
                for f in &fields {
                    spec.append(f, 0i32);
                }
                if let Some(p) = Projection::parse(&spec)? {
                    stages.push(Stage::Project(p));
                }
            }
            "$replaceRoot" => {
                let spec = stage_spec_doc(name, arg)?;
                let root = spec.get("newRoot").ok_or_else(|| {
                    CommandError::new(40231, "no newRoot specified for the $replaceRoot stage")
                })?;
                stages.push(Stage::ReplaceRoot(Expression::parse(root)?));
            }
            "$replaceWith" => {
                let v = bson::Bson::try_from(arg.to_raw_bson())
                    .map_err(|e| CommandError::bad_value(e.to_string()))?;
                stages.push(Stage::ReplaceRoot(Expression::parse(&v)?));
            }
            "$redact" => return Err(CommandError::not_implemented("the $redact stage")),
            "$changeStream" => {
                return Err(CommandError::new(
                    40602,
                    "$changeStream is only valid as the first stage in a pipeline.",
                ))
            }
            other if crate::commands::aggregate::is_known_stage(other) => {}
            other => return Err(crate::commands::aggregate::unknown_stage(other)),
        }
    }
    // Pipeline::validateTopLevelPipeline: every stage must be allowed in a change stream.
    if let Some(bad) = names
        .iter()
        .find(|n| !ALLOWED_IN_CHANGE_STREAM.contains(&n.as_str()))
    {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            format!("{bad} is not permitted in a $changeStream pipeline"),
        ));
    }
    if let Some(i) = split_at {
        if i + 1 != rest.len() {
            return Err(CommandError::new(
                7_182_802,
                "$changeStreamSplitLargeEvent must be the last stage in the pipeline",
            ));
        }
    }
    Ok((stages, split_at.is_some()))
}

/// The state of one change stream cursor.
#[derive(Debug, Clone)]
pub struct ChangeStream {
    pub scope: Scope,
    pub full_document: FullDocument,
    pub before_change: BeforeChange,
    pub show_expanded: bool,
    pub stages: Vec<Stage>,
    /// `$changeStreamSplitLargeEvent` ends the pipeline.
    pub split: bool,
    /// Expanded update events carry `disambiguatedPaths` (6.1+).
    pub disambiguate: bool,
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
        st: &crate::state::State,
    ) -> CmdResult<ChangeStream> {
        let (catalog, oplog, now, version) = (
            &st.catalog,
            &st.oplog,
            st.cluster_time(),
            st.topology.version,
        );
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
        let (stages, split) = parse_stages(rest, version)?;
        // Pipeline::validateTopLevelPipeline: "To resume from a split event, the $changeStream
        // pipeline must include a $changeStreamSplitLargeEvent stage".
        let from_fragment = resume_after
            .or(start_after)
            .is_some_and(|t| t.pos.fragment.is_some());
        if from_fragment && !split {
            return Err(CommandError::new(
                codes::CHANGE_STREAM_FATAL_ERROR,
                "To resume from a split event, the $changeStream pipeline must include a \
                 $changeStreamSplitLargeEvent stage",
            ));
        }
        let mut cs = ChangeStream {
            scope,
            full_document,
            before_change,
            show_expanded,
            stages,
            split,
            disambiguate: version.disambiguates_paths(),
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

    /// Whether an oplog entry belongs to this stream. A rename is seen by the streams of its
    /// source namespace and, when it replaced a collection (`dropTarget`), of its target.
    fn in_scope(&self, e: &OplogEntry) -> bool {
        match &self.scope {
            Scope::Collection { db, coll } => match &e.op {
                OpKind::DropDatabase => false,
                // "Relevant collection was overwritten": mongod's filter also matches a rename
                // whose `o.to` is the watched namespace (`change_stream_filter_helpers.cpp`).
                OpKind::Rename { to_db, to_coll, .. } if to_db == db && to_coll == coll => true,
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
                // Resuming inside a split event: the event is produced and split again, and its
                // fragments up to the resume point are left out.
                let resume_fragment = self
                    .skip_through
                    .filter(|s| s.fragment.is_some() && s.event() == pos)
                    .and_then(|s| s.fragment);
                if let Some(skip) = self.skip_through {
                    if pos <= skip && resume_fragment.is_none() {
                        if self.must_find == Some(pos) {
                            self.must_find = None;
                        }
                        continue;
                    }
                }
                if self
                    .must_find
                    .is_some_and(|expected| expected.event() != pos)
                {
                    return Err(self.token_not_found());
                }
                let is_invalidate = pos.from_invalidate;
                let mut doc = Some(raw);
                for st in &self.stages {
                    let Some(d) = doc.take() else { break };
                    doc = st.apply(d)?;
                }
                let outputs = match doc {
                    Some(d) => {
                        self.check_token_kept(&d, pos)?;
                        self.finish_event(pos, uuid, d, resume_fragment)?
                    }
                    None if self.must_find.is_some() => return Err(self.token_not_found()),
                    None => Vec::new(),
                };
                self.must_find = None;
                if outputs.is_empty() {
                    self.skip_through = Some(pos);
                    self.skip_uuid = uuid;
                    self.scan_from = crate::oplog::ts_from_key(pos.ts);
                }
                for (fpos, fdoc) in outputs {
                    if self.skip_through.is_some_and(|skip| fpos <= skip) {
                        continue;
                    }
                    let size = fdoc.as_bytes().len();
                    // A batch holds at most `max_bytes` (a first document of any size): what
                    // does not fit opens the next batch.
                    if !events.is_empty() && bytes + size > max_bytes {
                        return Ok(Batch {
                            events,
                            post_batch_token: self.current_token(),
                            finished: false,
                        });
                    }
                    bytes += size;
                    events.push(fdoc);
                    self.skip_through = Some(fpos);
                    self.skip_uuid = uuid;
                    self.scan_from = crate::oplog::ts_from_key(fpos.ts);
                    if events.len() >= max_events {
                        return Ok(Batch {
                            events,
                            post_batch_token: Token { pos: fpos, uuid },
                            finished: is_invalidate && self.finish(),
                        });
                    }
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
                if bytes >= max_bytes {
                    return Ok(Batch {
                        events,
                        post_batch_token: self.current_token(),
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

    /// Marks the stream finished (after its invalidate); true.
    fn finish(&mut self) -> bool {
        self.finished = true;
        true
    }

    /// The token of the last event handed out.
    fn current_token(&self) -> Token {
        match self.skip_through {
            Some(pos) => Token {
                pos,
                uuid: self.skip_uuid,
            },
            None => Token::high_water_mark(self.scan_from),
        }
    }

    fn token_not_found(&self) -> CommandError {
        CommandError::new(
            codes::CHANGE_STREAM_FATAL_ERROR,
            format!(
                "cannot resume stream; the resume token was not found. {{_data: \"{}\"}}",
                self.must_find_token.clone().unwrap_or_default()
            ),
        )
    }

    /// mongod checks that a reshaped event still carries its resume token as `_id`
    /// (`PlanExecutorPipeline::_validateChangeStreamsResumeToken`).
    fn check_token_kept(&self, d: &RawDocument, pos: Position) -> CmdResult<()> {
        let reshaped = self.stages.iter().any(|s| !matches!(s, Stage::Match(_)));
        let token_ok = !reshaped
            || matches!(d.get("_id"), Ok(Some(RawBsonRef::Document(t))) if t.get("_data").ok().flatten().is_some()
            && Token::parse(RawBsonRef::Document(t)).map(|t| t.pos == pos).unwrap_or(false));
        if token_ok {
            return Ok(());
        }
        Err(CommandError::new(
            codes::CHANGE_STREAM_FATAL_ERROR,
            "Encountered an event whose _id field, which contains the resume token, was modified \
             by the pipeline. Modifying the _id field of an event makes it impossible to resume \
             the stream from that point. Only transformations that retain the unmodified _id \
             field are allowed.",
        ))
    }

    /// The documents one event becomes: itself, or its fragments when it is over
    /// [`MAX_CHANGE_EVENT_SIZE`] and the stream splits events
    /// (`DocumentSourceChangeStreamSplitLargeEvent::doGetNext`). Without splitting, an event over
    /// [`MAX_INTERNAL_SIZE`] fails the command with BSONObjectTooLarge (10334).
    fn finish_event(
        &self,
        pos: Position,
        uuid: [u8; 16],
        d: RawDocumentBuf,
        resume_fragment: Option<u32>,
    ) -> CmdResult<Vec<(Position, RawDocumentBuf)>> {
        let size = d.as_bytes().len();
        if self.split && size > MAX_CHANGE_EVENT_SIZE {
            let fragments = split_event(&d, pos, uuid)?;
            if resume_fragment.is_some_and(|k| fragments.len() <= k as usize) {
                return Err(CommandError::new(
                    codes::CHANGE_STREAM_FATAL_ERROR,
                    "Attempted to resume from a split event, but the resumed stream produced a \
                     different split. Ensure that the pipeline used to resume is the same as the \
                     original",
                ));
            }
            return Ok(fragments);
        }
        if resume_fragment.is_some() {
            return Err(CommandError::new(
                codes::CHANGE_STREAM_FATAL_ERROR,
                "Attempted to resume from a split event fragment, but the event in the resumed \
                 stream was not large enough to be split",
            ));
        }
        if size > MAX_INTERNAL_SIZE {
            return Err(CommandError::new(
                BSON_OBJECT_TOO_LARGE,
                format!(
                    "BSONObj size: {size} (0x{size:X}) is invalid. Size must be between 0 and \
                     {MAX_INTERNAL_SIZE}(16MB) First element: _id: {{ _data: \"{}\" }}",
                    Token { pos, uuid }.encode()
                ),
            ));
        }
        Ok(vec![(pos, d)])
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
            fragment: None,
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
                let ud = bson::RawDocumentBuf::from_document(
                    &description.to_document(self.show_expanded && self.disambiguate),
                )
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
            OpKind::Rename {
                to_db,
                to_coll,
                drop_target,
            } => {
                write_ns(&mut w);
                w.begin_document("to");
                w.string("db", to_db);
                w.string("coll", to_coll);
                w.end();
                if self.show_expanded {
                    // The oplog entry's `o` without `renameCollection` and `stayTemp`, `to` as a
                    // namespace document (change_stream_event_transform.cpp): `dropTarget` is the
                    // UUID of the collection the rename replaced.
                    let mut desc =
                        bson::doc! {"to": {"db": to_db.clone(), "coll": to_coll.clone()}};
                    if let Some(uuid) = drop_target {
                        desc.insert(
                            "dropTarget",
                            bson::Binary {
                                subtype: bson::spec::BinarySubtype::Uuid,
                                bytes: uuid.to_vec(),
                            },
                        );
                    }
                    write_description(&mut w, &desc)?;
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

/// `change_stream_split_event::splitChangeEvent`: the event's fields except `_id`, ordered by
/// (BSON size, name), fill fragments greedily — each fragment takes at least one field, and more
/// while it stays within `MAX_CHANGE_EVENT_SIZE` minus the size of the resume token — and each
/// fragment starts with its own resume token (the event's, with the fragment's number) and
/// `splitEvent: {fragment: <1-based>, of: <count>}`.
fn split_event(
    event: &RawDocument,
    pos: Position,
    uuid: [u8; 16],
) -> CmdResult<Vec<(Position, RawDocumentBuf)>> {
    let mut fields: Vec<(usize, &str, RawBsonRef<'_>)> = Vec::new();
    for el in event.iter_elements() {
        let el = el.map_err(|e| CommandError::bad_value(e.to_string()))?;
        if el.key() == "_id" {
            continue;
        }
        let value = el
            .value()
            .map_err(|e| CommandError::bad_value(e.to_string()))?;
        fields.push((1 + el.key().len() + 1 + el.len(), el.key(), value));
    }
    if fields.is_empty() {
        return Err(CommandError::new(
            7_182_502,
            "Cannot split an empty event or an event containing solely '_id' field",
        ));
    }
    fields.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let token_size = Token { pos, uuid }.to_raw_doc().as_bytes().len();
    let max = MAX_CHANGE_EVENT_SIZE - token_size;
    let fragment_token = |k: usize| Token {
        pos: Position {
            fragment: Some(k as u32),
            ..pos
        },
        uuid,
    };
    let header_size = |k: usize| {
        let mut w = DocWriter::new();
        w.raw_document("_id", fragment_token(k).to_raw_doc().as_bytes());
        w.begin_document("splitEvent");
        w.i32("fragment", k as i32 + 1);
        w.i32("of", 0);
        w.end();
        w.finish_doc().as_bytes().len()
    };
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut i = 0;
    while i < fields.len() {
        let start = i;
        let mut size = header_size(groups.len()) + fields[i].0;
        i += 1;
        while i < fields.len() && size + fields[i].0 <= max {
            size += fields[i].0;
            i += 1;
        }
        if size > max {
            return Err(CommandError::new(
                7_182_500,
                format!(
                    "Splitting change event failed: fragment size {size} is greater than maximum \
                     allowed fragment size {max}"
                ),
            ));
        }
        groups.push(start..i);
    }
    let total = groups.len();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(k, range)| {
            let token = fragment_token(k);
            let mut w = DocWriter::with_capacity(MAX_CHANGE_EVENT_SIZE.min(1 << 20));
            w.raw_document("_id", token.to_raw_doc().as_bytes());
            w.begin_document("splitEvent");
            w.i32("fragment", k as i32 + 1);
            w.i32("of", total as i32);
            w.end();
            for (_, key, value) in &fields[range] {
                w.append(key, *value);
            }
            (token.pos, w.finish_doc())
        })
        .collect())
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
                fragment: None,
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
        // Fragments of b's event sort after it and before the next position.
        let f0 = Token {
            pos: Position {
                fragment: Some(0),
                ..b.pos
            },
            uuid: [7; 16],
        };
        let f1 = Token {
            pos: Position {
                fragment: Some(1),
                ..b.pos
            },
            uuid: [7; 16],
        };
        let enc: Vec<String> = [a, b, f0, f1, c, d].iter().map(Token::encode).collect();
        let mut sorted = enc.clone();
        sorted.sort();
        assert_eq!(enc, sorted);
        for t in [a, b, f0, f1, c, d] {
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
