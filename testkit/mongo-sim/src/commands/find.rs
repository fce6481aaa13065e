//! Reads: `find` (filter, sort, projection, skip, limit, batchSize, singleBatch, hint, min, max),
//! `getMore` (including awaitData for change streams), `killCursors`, `count`, `distinct`, and
//! the cursor reply builder that copies stored raw BSON into the reply without re-encoding.

use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};

use super::{doc_body, Cmd, Exec, Failure};
use crate::cursors::{Cursor, CursorKind, FindState, Scan};
use crate::error::{codes, CmdResult, CommandError, LabelContext};
use crate::matcher::{sort_key, Expr};
use crate::ordering::{compare, OrderedBson};
use crate::projection::Projection;
use crate::state::{Shared, State};
use crate::storage::Doc;
use crate::wire::{index_key, DocWriter, MAX_BSON_OBJECT_SIZE};

/// Replies stop adding documents once a batch reaches this many bytes (mongod: 16 MiB).
pub const MAX_BATCH_BYTES: usize = MAX_BSON_OBJECT_SIZE;

/// Builds `{cursor: {firstBatch|nextBatch: [...], postBatchResumeToken?, id, ns}}`.
pub fn cursor_body(
    id: i64,
    ns: &str,
    first: bool,
    docs: &[Doc],
    pbrt: Option<&RawDocumentBuf>,
) -> Vec<u8> {
    let total: usize = docs.iter().map(|d| d.as_bytes().len() + 8).sum();
    let mut w = DocWriter::with_capacity(total + 256);
    w.begin_document("cursor");
    w.begin_array(if first { "firstBatch" } else { "nextBatch" });
    let mut key = String::new();
    for (i, d) in docs.iter().enumerate() {
        w.raw_document(index_key(i, &mut key), d.as_bytes());
    }
    w.end();
    if let Some(t) = pbrt {
        w.raw_document("postBatchResumeToken", t.as_bytes());
    }
    w.i64("id", id);
    w.string("ns", ns);
    w.end();
    w.finish()
}

pub fn not_primary_read(st: &State, cmd: &Cmd<'_>) -> CmdResult<()> {
    if !st.topology.primary && !cmd.secondary_ok() {
        return Err(CommandError::new(
            codes::NOT_PRIMARY_NO_SECONDARY_OK,
            "not primary and secondaryOk=false",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
enum Order {
    None,
    Id(bool),
    Natural(bool),
    Keys(Vec<(Vec<String>, bool)>),
}

fn parse_sort(sort: Option<&RawDocument>) -> CmdResult<Order> {
    let Some(sort) = sort else {
        return Ok(Order::None);
    };
    let mut keys = Vec::new();
    for item in sort.iter() {
        let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
        let dir = match crate::matcher::as_i64(&v) {
            Some(1) => true,
            Some(-1) => false,
            _ => {
                if let RawBsonRef::Document(_) = v {
                    return Err(CommandError::not_implemented("$meta sort keys"));
                }
                return Err(CommandError::new(
                    15975,
                    "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                ));
            }
        };
        keys.push((k.to_string(), dir));
    }
    Ok(match keys.as_slice() {
        [] => Order::None,
        [(k, d)] if k == "_id" => Order::Id(*d),
        [(k, d)] if k == "$natural" => Order::Natural(*d),
        _ => {
            if keys.iter().any(|(k, _)| k == "$natural") {
                return Err(CommandError::bad_value(
                    "$natural sort cannot be combined with other keys",
                ));
            }
            Order::Keys(
                keys.into_iter()
                    .map(|(k, d)| (k.split('.').map(str::to_string).collect(), d))
                    .collect(),
            )
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Hint {
    None,
    Id,
    Natural(bool),
}

fn parse_hint(h: Option<RawBsonRef<'_>>) -> CmdResult<Hint> {
    let bad = || {
        CommandError::bad_value(
            "error processing query: planner returned error :: caused by :: hint provided does \
             not correspond to an existing index",
        )
    };
    match h {
        None | Some(RawBsonRef::Null) => Ok(Hint::None),
        Some(RawBsonRef::String("_id_")) => Ok(Hint::Id),
        Some(RawBsonRef::String(_)) => Err(bad()),
        Some(RawBsonRef::Document(d)) => {
            let keys: Vec<(String, Option<i64>)> = d
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), crate::matcher::as_i64(&v)))
                .collect();
            match keys.as_slice() {
                [] => Ok(Hint::None),
                [(k, Some(1 | -1))] if k == "_id" => Ok(Hint::Id),
                [(k, Some(d))] if k == "$natural" => Ok(Hint::Natural(*d >= 0)),
                _ => Err(bad()),
            }
        }
        Some(_) => Err(CommandError::failed_to_parse(
            "hint must be a string or an object",
        )),
    }
}

/// The `_id` bound of `min`/`max` (which must match the hinted `_id` index key pattern).
fn id_bound(d: Option<&RawDocument>, which: &str) -> CmdResult<Option<OrderedBson>> {
    let Some(d) = d else { return Ok(None) };
    let mut it = d.iter().flatten();
    match (it.next(), it.next()) {
        (Some(("_id", v)), None) => Ok(Some(OrderedBson(v.to_raw_bson()))),
        _ => Err(CommandError::new(
            51174,
            format!("The index chosen is not equal to the {which} key pattern"),
        )),
    }
}

/// Index bounds for a top-level `_id` predicate (equality, `$in`, or comparisons), or None
/// when the filter does not constrain `_id` in a way an index scan can use. Bounds only narrow
/// the scan: the filter still decides (type bracketing included).
pub fn id_bounds(filter: Option<&RawDocument>) -> Option<(Bound<OrderedBson>, Bound<OrderedBson>)> {
    let v = filter?.get("_id").ok().flatten()?;
    let ob = |v: RawBsonRef<'_>| OrderedBson(v.to_raw_bson());
    match v {
        RawBsonRef::Document(d)
            if d.iter()
                .next()
                .is_some_and(|r| r.is_ok_and(|(k, _)| k.starts_with('$'))) =>
        {
            let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
            for (op, x) in d.iter().flatten() {
                match op {
                    "$eq" => {
                        lower = Bound::Included(ob(x));
                        upper = Bound::Included(ob(x));
                    }
                    "$gt" => lower = Bound::Excluded(ob(x)),
                    "$gte" => lower = Bound::Included(ob(x)),
                    "$lt" => upper = Bound::Excluded(ob(x)),
                    "$lte" => upper = Bound::Included(ob(x)),
                    "$in" => {}
                    _ => return None,
                }
            }
            // Inverted bounds would panic in a BTreeMap range: nothing can match anyway.
            let inverted = match (&lower, &upper) {
                (
                    Bound::Included(a) | Bound::Excluded(a),
                    Bound::Included(b) | Bound::Excluded(b),
                ) => {
                    a > b
                        || (a == b
                            && !matches!(
                                (&lower, &upper),
                                (Bound::Included(_), Bound::Included(_))
                            ))
                }
                _ => false,
            };
            if inverted {
                return Some((Bound::Excluded(ob(RawBsonRef::MaxKey)), Bound::Unbounded));
            }
            Some((lower, upper))
        }
        RawBsonRef::Document(_)
        | RawBsonRef::Array(_)
        | RawBsonRef::RegularExpression(_)
        | RawBsonRef::Null => None,
        other => Some((Bound::Included(ob(other)), Bound::Included(ob(other)))),
    }
}

/// Options shared by find-like plans.
pub struct FindSpec {
    /// The filter document (for index bounds); `filter` is its compiled form.
    pub raw_filter: Option<RawDocumentBuf>,
    pub filter: Expr,
    pub sort: Option<RawDocumentBuf>,
    pub projection: Option<Projection>,
    pub hint: Option<RawBson>,
    pub min: Option<RawDocumentBuf>,
    pub max: Option<RawDocumentBuf>,
    pub skip: u64,
    pub limit: Option<u64>,
}

/// Plans a find over a collection (which must exist and not be a view).
pub fn plan(st: &State, db: &str, coll: &str, spec: FindSpec) -> CmdResult<FindState> {
    let order = parse_sort(spec.sort.as_deref())?;
    let hint = parse_hint(spec.hint.as_ref().map(|h| h.as_raw_bson_ref()))?;
    let min = id_bound(spec.min.as_deref(), "min")?;
    let max = id_bound(spec.max.as_deref(), "max")?;
    if (min.is_some() || max.is_some()) && hint != Hint::Id {
        return Err(CommandError::new(
            51173,
            "When using min()/max() a hint of which index to use must be provided",
        ));
    }
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo >= hi {
            return Err(CommandError::bad_value(
                "error processing query: planner returned error :: caused by :: max() must be \
                 greater than min()",
            ));
        }
    }
    let id_scan = |ascending: bool| Scan::IdIndex {
        lower: min.clone().map(Bound::Included).unwrap_or(Bound::Unbounded),
        upper: max.clone().map(Bound::Excluded).unwrap_or(Bound::Unbounded),
        ascending,
    };
    let natural = |asc: bool| Scan::Natural {
        next: if asc { 0 } else { u64::MAX },
        reverse: !asc,
    };
    let base = match (&order, hint) {
        (Order::Id(asc), Hint::Id | Hint::None) => id_scan(*asc),
        (Order::Natural(asc), Hint::None | Hint::Natural(_)) => natural(*asc),
        (_, Hint::Id) => id_scan(true),
        (_, Hint::Natural(asc)) => natural(asc),
        // mongod's planner answers an `_id` predicate with an IXSCAN of the `_id` index, so
        // the results come in `_id` order, not natural order.
        (Order::None | Order::Keys(_), Hint::None) => match id_bounds(spec.raw_filter.as_deref()) {
            Some((lower, upper)) => Scan::IdIndex {
                lower,
                upper,
                ascending: true,
            },
            None => natural(true),
        },
    };
    let mut fs = FindState {
        db: db.to_string(),
        coll: coll.to_string(),
        scan: base,
        filter: spec.filter,
        projection: spec.projection,
        skip: spec.skip,
        remaining: spec.limit,
        dead: false,
    };
    if let Order::Keys(keys) = &order {
        // A blocking sort: gather every match, sort (stable), then serve from memory.
        let mut all = Vec::new();
        let (skip, remaining, proj) = (fs.skip, fs.remaining, fs.projection.take());
        fs.skip = 0;
        fs.remaining = None;
        fs.next_batch(&st.catalog, usize::MAX, usize::MAX, &mut all);
        sort_docs(&mut all, keys);
        fs.scan = Scan::Materialized(all.into());
        fs.filter = Expr::True;
        fs.skip = skip;
        fs.remaining = remaining;
        fs.projection = proj;
    }
    Ok(fs)
}

pub fn sort_docs(docs: &mut [Doc], keys: &[(Vec<String>, bool)]) {
    docs.sort_by(|a, b| {
        for (path, asc) in keys {
            let ka = sort_key(a, path, *asc);
            let kb = sort_key(b, path, *asc);
            let o = compare(&ka, &kb);
            let o = if *asc { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
}

const FIND_FIELDS: &[&str] = &[
    "filter",
    "sort",
    "projection",
    "hint",
    "skip",
    "limit",
    "batchSize",
    "singleBatch",
    "min",
    "max",
    "returnKey",
    "showRecordId",
    "tailable",
    "oplogReplay",
    "noCursorTimeout",
    "awaitData",
    "allowPartialResults",
    "collation",
    "allowDiskUse",
    "let",
    "readOnce",
    "term",
];

pub fn find(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(FIND_FIELDS)?;
    let coll = cmd.collection()?;
    let filter = match cmd.doc("filter")? {
        Some(f) => Expr::parse(f)?,
        None => Expr::True,
    };
    let projection = match cmd.doc("projection")? {
        Some(p) => Projection::parse(p)?,
        None => None,
    };
    if cmd.bool_opt("tailable") {
        return Err(CommandError::bad_value(
            "error processing query: tailable cursor requested on non capped collection",
        )
        .into());
    }
    if cmd.bool_opt("returnKey") || cmd.bool_opt("showRecordId") {
        return Err(CommandError::not_implemented("returnKey/showRecordId").into());
    }
    super::check_collation(cmd.get("collation"), "find.collation")?;
    let skip = cmd.i64_opt("skip")?.unwrap_or(0);
    if skip < 0 {
        return Err(CommandError::bad_value(
            "BSON field 'skip' value must be >= 0, actual value '-1'",
        )
        .into());
    }
    let limit = cmd.i64_opt("limit")?;
    if limit.is_some_and(|l| l < 0) {
        return Err(CommandError::bad_value("BSON field 'limit' value must be >= 0").into());
    }
    let batch_size = cmd.i64_opt("batchSize")?;
    if batch_size.is_some_and(|b| b < 0) {
        return Err(CommandError::bad_value("BSON field 'batchSize' value must be >= 0").into());
    }
    let single_batch = cmd.bool_opt("singleBatch");
    let spec = FindSpec {
        raw_filter: cmd.doc("filter")?.map(RawDocument::to_raw_document_buf),
        filter,
        sort: cmd.doc("sort")?.map(RawDocument::to_raw_document_buf),
        projection,
        hint: cmd.get("hint").map(|h| h.to_raw_bson()),
        min: cmd.doc("min")?.map(RawDocument::to_raw_document_buf),
        max: cmd.doc("max")?.map(RawDocument::to_raw_document_buf),
        skip: skip as u64,
        limit: limit.filter(|l| *l > 0).map(|l| l as u64),
    };
    let ns = format!("{}.{coll}", cmd.db);
    let mut st = shared.lock();
    not_primary_read(&st, cmd)?;
    let view = st.catalog.coll(&cmd.db, &coll).and_then(|c| match &c.kind {
        crate::storage::CollKind::View { view_on, pipeline } => {
            Some((view_on.clone(), pipeline.clone()))
        }
        _ => None,
    });
    let mut fs = match view {
        Some((view_on, pipeline)) => {
            let docs = super::aggregate::run_view(&st, &cmd.db, &view_on, &pipeline)?;
            let sort = spec.sort.clone();
            let mut fs = plan(&st, &cmd.db, &coll, spec)?;
            let mut filtered: Vec<Doc> =
                docs.into_iter().filter(|d| fs.filter.matches(d)).collect();
            match parse_sort(sort.as_deref())? {
                Order::Keys(k) => sort_docs(&mut filtered, &k),
                Order::Id(asc) => sort_docs(&mut filtered, &[(vec!["_id".to_string()], asc)]),
                _ => {}
            }
            fs.scan = Scan::Materialized(filtered.into());
            fs.filter = Expr::True;
            fs
        }
        None => plan(&st, &cmd.db, &coll, spec)?,
    };
    let max_docs = batch_size.map(|b| b as usize).unwrap_or(101);
    let mut docs = Vec::new();
    let exhausted = if max_docs == 0 && !single_batch {
        false
    } else {
        fs.next_batch(
            &st.catalog,
            if single_batch && batch_size.is_none() {
                usize::MAX
            } else {
                max_docs.max(1)
            },
            MAX_BATCH_BYTES,
            &mut docs,
        )
    };
    let id = if exhausted || single_batch {
        0
    } else {
        let id = st.cursors.new_id();
        let now = st.cluster_time();
        st.cursors.insert(Cursor {
            id,
            ns: ns.clone(),
            kind: CursorKind::Find(Box::new(fs)),
            originating_command: "find",
            lsid: cmd.lsid(),
            batch_size: None,
            tailable_await: false,
            max_await_ms: 0,
            created_at: now,
        });
        id
    };
    drop(st);
    Ok(cursor_body(id, &ns, true, &docs, None))
}

/// Returns a checked-out cursor to the registry when dropped (killing it unless `keep`).
struct Checkout<'a> {
    shared: &'a Shared,
    cursor: Option<Cursor>,
    keep: bool,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cursor.take() {
            self.shared.lock().cursors.check_in(c, self.keep);
        }
    }
}

pub async fn get_more(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&[
        "collection",
        "batchSize",
        "maxTimeMS",
        "term",
        "lastKnownCommittedOpTime",
        "includeQueryStatsMetrics",
    ])?;
    let id = match cmd.get("getMore") {
        Some(RawBsonRef::Int64(id)) => id,
        Some(other) => {
            return Err(CommandError::type_mismatch(format!(
                "BSON field 'getMore.getMore' is the wrong type '{:?}', expected type 'long'",
                other.element_type()
            ))
            .into())
        }
        None => return Err(CommandError::failed_to_parse("getMore needs a cursor id").into()),
    };
    let coll = match cmd.get("collection") {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => {
            return Err(CommandError::new(
                40414,
                "BSON field 'getMore.collection' is missing but a required field",
            )
            .into())
        }
    };
    let batch_size = cmd
        .i64_opt("batchSize")?
        .filter(|b| *b > 0)
        .map(|b| b as usize);
    let max_time = cmd.i64_opt("maxTimeMS")?;
    let ns = format!("{}.{coll}", cmd.db);
    let (cursor, fail) = {
        let mut st = shared.lock();
        if st.cursors.is_checked_out(id) {
            return Err(CommandError::new(143, format!("cursor id {id} is already in use")).into());
        }
        let Some(c) = st.cursors.check_out(id) else {
            return Err(CommandError::new(
                codes::CURSOR_NOT_FOUND,
                format!("cursor id {id} not found"),
            )
            .into());
        };
        let fail = st.failpoints.fail_get_more();
        (c, fail)
    };
    let is_cs = cursor.is_change_stream();
    let label_ctx = LabelContext {
        command: "getMore".into(),
        is_retryable_write: false,
        is_change_stream: is_cs,
    };
    let mut guard = Checkout {
        shared,
        cursor: Some(cursor),
        keep: false,
    };
    if guard.cursor.as_ref().map(|c| c.ns.as_str()) != Some(ns.as_str()) {
        guard.keep = true;
        let owner = guard
            .cursor
            .as_ref()
            .map(|c| c.ns.clone())
            .unwrap_or_default();
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {owner}"),
        )
        .into());
    }
    if let Some(e) = fail {
        // mongod kills the cursor when a getMore fails.
        return Err(Failure::Error(e, Some(label_ctx)));
    }
    let Some(cursor) = guard.cursor.as_mut() else {
        return Err(CommandError::new(codes::INTERNAL_ERROR, "cursor vanished").into());
    };
    match &mut cursor.kind {
        CursorKind::Find(fs) => {
            let mut docs = Vec::new();
            let exhausted = {
                let st = shared.lock();
                fs.next_batch(
                    &st.catalog,
                    batch_size.unwrap_or(usize::MAX),
                    MAX_BATCH_BYTES,
                    &mut docs,
                )
            };
            guard.keep = !exhausted;
            let out_id = if exhausted { 0 } else { id };
            Ok(cursor_body(out_id, &ns, false, &docs, None))
        }
        CursorKind::ChangeStream(cs) => {
            let wait =
                Duration::from_millis(max_time.unwrap_or(cursor.max_await_ms as i64).max(0) as u64);
            let deadline = Instant::now() + wait;
            let mut rx = shared.oplog_tx.subscribe();
            let max_events = batch_size.or(cursor.batch_size).unwrap_or(usize::MAX);
            loop {
                rx.borrow_and_update();
                let batch = {
                    let st = shared.lock();
                    let now = st.cluster_time();
                    cs.next_batch(&st.oplog, &st.catalog, now, max_events, MAX_BATCH_BYTES)
                };
                let batch = batch.map_err(|e| Failure::Error(e, Some(label_ctx.clone())))?;
                let now = Instant::now();
                if !batch.events.is_empty() || batch.finished || now >= deadline {
                    guard.keep = !batch.finished;
                    let out_id = if batch.finished { 0 } else { id };
                    let docs: Vec<Doc> = batch.events.into_iter().map(Arc::new).collect();
                    let token = batch.post_batch_token.to_raw_doc();
                    return Ok(cursor_body(out_id, &ns, false, &docs, Some(&token)));
                }
                if tokio::time::timeout(deadline - now, rx.changed())
                    .await
                    .is_err()
                {
                    continue; // deadline: one last scan, then reply
                }
            }
        }
    }
}

pub fn kill_cursors(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    // mongod parses killCursors' namespace with `NamespaceString::isValid()`, which accepts the
    // reserved internal namespaces (namespace_string.h: "Special namespaces for internal use are
    // considered as valid"): `$cmd.aggregate` is what `{aggregate: 1}` cursors belong to
    // (`makeCollectionlessAggregateNSS`), and drivers close `db.watch()` / `client.watch()`
    // with `{killCursors: "$cmd.aggregate"}`. Only an empty name (or a NUL) is invalid.
    match cmd.get("killCursors") {
        Some(RawBsonRef::String(s)) if !s.is_empty() && !s.contains('\0') => {}
        _ => {
            cmd.collection()?;
            return Err(CommandError::new(
                codes::INVALID_NAMESPACE,
                format!("Invalid namespace specified '{}.'", cmd.db),
            )
            .into());
        }
    }
    let ids: Vec<i64> = match cmd.get("cursors") {
        Some(RawBsonRef::Array(a)) => a
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                RawBsonRef::Int64(i) => Some(i),
                _ => None,
            })
            .collect(),
        _ => {
            return Err(CommandError::new(
                40414,
                "BSON field 'killCursors.cursors' is missing but a required field",
            )
            .into())
        }
    };
    let mut st = shared.lock();
    let (mut killed, mut not_found) = (Vec::new(), Vec::new());
    for id in ids {
        if st.cursors.kill(id) {
            killed.push(id);
        } else {
            not_found.push(id);
        }
    }
    doc_body(doc! {
        "cursorsKilled": killed,
        "cursorsNotFound": not_found,
        "cursorsAlive": Vec::<i64>::new(),
        "cursorsUnknown": Vec::<i64>::new(),
    })
}

pub fn count(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&["query", "limit", "skip", "hint", "collation", "fields"])?;
    super::check_collation(cmd.get("collation"), "count.collation")?;
    let coll = cmd.collection()?;
    let filter = match cmd.doc("query")? {
        Some(f) => Expr::parse(f)?,
        None => Expr::True,
    };
    let skip = cmd.i64_opt("skip")?.unwrap_or(0).max(0) as u64;
    let limit = cmd
        .i64_opt("limit")?
        .map(|l| l.unsigned_abs())
        .filter(|l| *l > 0);
    let st = shared.lock();
    not_primary_read(&st, cmd)?;
    let n = match st.catalog.coll(&cmd.db, &coll) {
        None => 0,
        Some(c) if c.is_view() => {
            let (view_on, pipeline) = match &c.kind {
                crate::storage::CollKind::View { view_on, pipeline } => {
                    (view_on.clone(), pipeline.clone())
                }
                _ => unreachable_kind()?,
            };
            let docs = super::aggregate::run_view(&st, &cmd.db, &view_on, &pipeline)?;
            let n = docs.iter().filter(|d| filter.matches(d)).count() as u64;
            apply_skip_limit(n, skip, limit)
        }
        Some(c) => {
            let n = if filter.is_true() {
                c.len() as u64
            } else {
                c.all().filter(|d| filter.matches(d)).count() as u64
            };
            apply_skip_limit(n, skip, limit)
        }
    };
    doc_body(doc! {"n": n as i64})
}

fn unreachable_kind<T>() -> CmdResult<T> {
    Err(CommandError::new(
        codes::INTERNAL_ERROR,
        "unexpected collection kind",
    ))
}

fn apply_skip_limit(n: u64, skip: u64, limit: Option<u64>) -> u64 {
    let n = n.saturating_sub(skip);
    match limit {
        Some(l) => n.min(l),
        None => n,
    }
}

pub fn distinct(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    super::check_collation(cmd.get("collation"), "distinct.collation")?;
    let coll = cmd.collection()?;
    let key = match cmd.get("key") {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => {
            return Err(CommandError::type_mismatch(
                "BSON field 'distinct.key' is missing or not a string",
            )
            .into())
        }
    };
    let filter = match cmd.doc("query")? {
        Some(f) => Expr::parse(f)?,
        None => Expr::True,
    };
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    let st = shared.lock();
    not_primary_read(&st, cmd)?;
    let mut values: Vec<RawBson> = Vec::new();
    if let Some(c) = st.catalog.coll(&cmd.db, &coll) {
        for d in c.all() {
            if !filter.matches(d) {
                continue;
            }
            crate::matcher::visit_path(d, &path, &mut |cand| {
                if let crate::matcher::Cand::Value(v, elem) = cand {
                    let is_array = matches!(v, RawBsonRef::Array(_));
                    if elem || !is_array {
                        values.push(v.to_raw_bson());
                    }
                }
                false
            });
        }
    }
    values.sort_by(|a, b| compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref()));
    values.dedup_by(|a, b| {
        compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref()) == std::cmp::Ordering::Equal
    });
    let values: Vec<Bson> = values
        .into_iter()
        .filter_map(|v| Bson::try_from(v).ok())
        .collect();
    doc_body(doc! {"values": values})
}
