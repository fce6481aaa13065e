//! `aggregate`: change streams (`$changeStream` first), `$collStats`, and pipelines over a
//! collection or view with `$match`, `$sort`, `$limit`, `$skip`, `$project`, `$unset`,
//! `$sample`, `$group`, `$count` and `$bucketAuto` (the split-point source for parallel initial
//! syncs). Any other stage is an explicit error.

use std::collections::BTreeMap;
use std::sync::Arc;

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};

use super::find::{cursor_body, not_primary_read, sort_docs, MAX_BATCH_BYTES};
use super::{Cmd, Exec, Failure};
use crate::changestream::ChangeStream;
use crate::cursors::{Cursor, CursorKind, FindState, Scan};
use crate::error::{codes, CmdResult, CommandError, LabelContext};
use crate::matcher::Expr;
use crate::ordering::{compare, OrderedBson};
use crate::projection::Projection;
use crate::state::State;
use crate::storage::{CollKind, Doc};

/// Aggregation stages of mongod 7.0 (`REGISTER_DOCUMENT_SOURCE`): a name outside this list is
/// "Unrecognized pipeline stage name" (40324, `DocumentSource::parse`); a known one the simulator
/// does not run is NotImplemented.
const KNOWN_STAGES: &[&str] = &[
    "$addFields",
    "$bucket",
    "$bucketAuto",
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$collStats",
    "$count",
    "$currentOp",
    "$densify",
    "$documents",
    "$facet",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$group",
    "$indexStats",
    "$limit",
    "$listCachedAndActiveUsers",
    "$listLocalSessions",
    "$listSampledQueries",
    "$listSearchIndexes",
    "$listSessions",
    "$lookup",
    "$match",
    "$merge",
    "$out",
    "$planCacheStats",
    "$project",
    "$queryStats",
    "$redact",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$search",
    "$searchMeta",
    "$set",
    "$setWindowFields",
    "$shardedDataDistribution",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unionWith",
    "$unset",
    "$unwind",
    "$vectorSearch",
];

/// Whether mongod knows a stage of this name.
pub fn is_known_stage(name: &str) -> bool {
    KNOWN_STAGES.contains(&name)
}

/// mongod's error for a stage name it does not know.
pub fn unknown_stage(name: &str) -> CommandError {
    CommandError::new(40324, format!("Unrecognized pipeline stage name: '{name}'"))
}

pub fn stage_name(st: &RawDocument) -> CmdResult<(&str, RawBsonRef<'_>)> {
    let mut it = st.iter();
    match (it.next(), it.next()) {
        (Some(Ok((k, v))), None) => Ok((k, v)),
        _ => Err(CommandError::new(
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        )),
    }
}

pub fn aggregate(shared: &Arc<crate::state::Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&[
        "pipeline",
        "cursor",
        "explain",
        "allowDiskUse",
        "hint",
        "collation",
        "let",
        "bypassDocumentValidation",
        "fromMongos",
        "needsMerge",
        "exchange",
        "isMapReduceCommand",
    ])?;
    super::check_collation(cmd.get("collation"), "aggregate.collation")?;
    let coll: Option<String> =
        match cmd.get("aggregate") {
            Some(RawBsonRef::String(s)) => Some(s.to_string()),
            Some(v) if crate::matcher::as_i64(&v) == Some(1) => None,
            _ => return Err(CommandError::new(
                codes::FAILED_TO_PARSE,
                "Invalid command format: the 'aggregate' field must specify a collection name or 1",
            )
            .into()),
        };
    let pipeline: Vec<RawDocumentBuf> = match cmd.get("pipeline") {
        Some(RawBsonRef::Array(a)) => a
            .into_iter()
            .map(|e| match e {
                Ok(RawBsonRef::Document(d)) => Ok(d.to_raw_document_buf()),
                _ => Err(CommandError::type_mismatch(
                    "Each element of the 'pipeline' array must be an object",
                )),
            })
            .collect::<CmdResult<_>>()?,
        _ => {
            return Err(CommandError::type_mismatch(
                "'pipeline' option must be specified as an array",
            )
            .into())
        }
    };
    if cmd.bool_opt("explain") {
        return Err(CommandError::not_implemented("explain").into());
    }
    let cursor_opts = cmd.doc("cursor")?.ok_or_else(|| {
        CommandError::failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        )
    })?;
    let batch_size = match cursor_opts.get("batchSize") {
        Ok(Some(v)) => crate::matcher::as_i64(&v).map(|b| b.max(0) as usize),
        _ => None,
    };
    let first_name = pipeline
        .first()
        .map(|s| stage_name(s))
        .transpose()?
        .map(|(n, _)| n.to_string());
    let ns = match &coll {
        Some(c) => format!("{}.{c}", cmd.db),
        None => format!("{}.$cmd.aggregate", cmd.db),
    };
    if first_name.as_deref() == Some("$changeStream") {
        // document_source_change_stream.cpp: uassert(40573, ...) unless a replica set or mongos.
        if shared.lock().topology.standalone() {
            return Err(CommandError::new(
                40573,
                "The $changeStream stage is only supported on replica sets",
            )
            .into());
        }
        let label_ctx = LabelContext {
            command: "aggregate".into(),
            is_retryable_write: false,
            is_change_stream: true,
        };
        return change_stream(shared, cmd, coll.as_deref(), &pipeline, batch_size, &ns)
            .map_err(|e| Failure::Error(e, Some(label_ctx)));
    }
    let mut st = shared.lock();
    not_primary_read(&st, cmd)?;
    let Some(coll) = coll else {
        return Err(CommandError::new(
            codes::INVALID_NAMESPACE,
            "{aggregate: 1} is not valid for '$match'; a collection is required.",
        )
        .into());
    };
    let docs = run_pipeline(&st, &cmd.db, &coll, &pipeline)?;
    let mut fs = FindState {
        db: cmd.db.clone(),
        coll: coll.clone(),
        scan: Scan::Materialized(docs.into()),
        filter: Expr::True,
        projection: None,
        skip: 0,
        remaining: None,
        dead: false,
    };
    let mut out = Vec::new();
    let max = batch_size.unwrap_or(101);
    let exhausted = if max == 0 {
        false
    } else {
        fs.next_batch(&st.catalog, max, MAX_BATCH_BYTES, &mut out)
    };
    let id = if exhausted {
        0
    } else {
        let id = st.cursors.new_id();
        let now = st.cluster_time();
        st.cursors.insert(Cursor {
            id,
            ns: ns.clone(),
            kind: CursorKind::Find(Box::new(fs)),
            originating_command: "aggregate",
            lsid: cmd.lsid(),
            batch_size: None,
            tailable_await: false,
            max_await_ms: 0,
            created_at: now,
        });
        id
    };
    drop(st);
    Ok(cursor_body(id, &ns, true, &out, None))
}

fn change_stream(
    shared: &Arc<crate::state::Shared>,
    cmd: &Cmd<'_>,
    coll: Option<&str>,
    pipeline: &[RawDocumentBuf],
    batch_size: Option<usize>,
    ns: &str,
) -> Result<Vec<u8>, CommandError> {
    let spec = match stage_name(&pipeline[0])? {
        (_, RawBsonRef::Document(d)) => d,
        _ => {
            return Err(CommandError::type_mismatch(
                "the $changeStream stage must be an object",
            ))
        }
    };
    let mut st = shared.lock();
    not_primary_read(&st, cmd)?;
    let now = st.cluster_time();
    let mut cs = ChangeStream::open(&cmd.db, coll, spec, &pipeline[1..], &st)?;
    let batch = cs.next_batch(
        &st.oplog,
        &st.catalog,
        now,
        batch_size.unwrap_or(usize::MAX),
        MAX_BATCH_BYTES,
    )?;
    let id = if batch.finished {
        0
    } else {
        let id = st.cursors.new_id();
        st.cursors.insert(Cursor {
            id,
            ns: ns.to_string(),
            kind: CursorKind::ChangeStream(Box::new(cs)),
            originating_command: "aggregate",
            lsid: cmd.lsid(),
            // The aggregate's batchSize only shapes the first batch (as in mongod).
            batch_size: None,
            tailable_await: true,
            max_await_ms: 1000,
            created_at: now,
        });
        id
    };
    drop(st);
    let docs: Vec<Doc> = batch.events.into_iter().map(Arc::new).collect();
    Ok(cursor_body(
        id,
        ns,
        true,
        &docs,
        Some(&batch.post_batch_token.to_raw_doc()),
    ))
}

/// The documents of a view (its pipeline run over its source).
pub fn run_view(st: &State, db: &str, view_on: &str, pipeline: &[Document]) -> CmdResult<Vec<Doc>> {
    let stages: Vec<RawDocumentBuf> = pipeline
        .iter()
        .map(|d| {
            RawDocumentBuf::from_document(d).map_err(|e| CommandError::bad_value(e.to_string()))
        })
        .collect::<CmdResult<_>>()?;
    run_pipeline(st, db, view_on, &stages)
}

/// Runs a (non-change-stream) pipeline over a collection or view.
pub fn run_pipeline(
    st: &State,
    db: &str,
    coll: &str,
    pipeline: &[RawDocumentBuf],
) -> CmdResult<Vec<Doc>> {
    let mut stages = pipeline;
    let mut docs: Vec<Doc> = match st.catalog.coll(db, coll) {
        None => Vec::new(),
        Some(c) => match &c.kind {
            CollKind::View { view_on, pipeline } => run_view(st, db, view_on, pipeline)?,
            _ => {
                if let Some(first) = stages.first() {
                    if let ("$collStats", RawBsonRef::Document(spec)) = stage_name(first)? {
                        stages = &stages[1..];
                        let d = coll_stats(st, db, coll, spec)?;
                        return run_stages(
                            vec![Arc::new(d)],
                            stages,
                            st.topology.version,
                            st.sample_seed,
                        );
                    }
                    if let ("$match", RawBsonRef::Document(f)) = stage_name(first)? {
                        let e = Expr::parse(f)?;
                        stages = &stages[1..];
                        // Like find: an `_id` predicate is an IXSCAN, so `_id` order.
                        let v: Vec<Doc> = match super::find::id_bounds(Some(f)) {
                            Some((lower, upper)) => c
                                .id_range(lower.as_ref(), upper.as_ref(), true)
                                .filter(|(_, _, d)| e.matches(d))
                                .map(|(_, _, d)| d.clone())
                                .collect(),
                            None => c.all().filter(|d| e.matches(d)).cloned().collect(),
                        };
                        return run_stages(v, stages, st.topology.version, st.sample_seed);
                    }
                }
                c.all().cloned().collect()
            }
        },
    };
    if let Some(first) = stages.first() {
        if stage_name(first)?.0 == "$collStats" {
            if st.catalog.coll(db, coll).is_none() {
                return Err(CommandError::ns_not_found(format!(
                    "Unable to retrieve count in $collStats stage :: caused by :: Collection [{db}.{coll}] not found."
                )));
            }
            return Err(CommandError::new(
                166,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
    }
    docs.shrink_to_fit();
    run_stages(docs, stages, st.topology.version, st.sample_seed)
}

fn coll_stats(st: &State, db: &str, coll: &str, spec: &RawDocument) -> CmdResult<RawDocumentBuf> {
    let c = st.catalog.coll(db, coll).ok_or_else(|| {
        CommandError::ns_not_found(format!("Collection [{db}.{coll}] not found."))
    })?;
    let n = c.len() as i64;
    let size = c.data_size() as i64;
    let mut d = doc! {"ns": format!("{db}.{coll}"), "host": st.topology.host.clone(), "localTime": bson::DateTime::now()};
    for item in spec.iter() {
        let (k, _) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
        match k {
            "count" => {
                d.insert("count", n);
            }
            "storageStats" => {
                d.insert("storageStats", doc! {"size": size, "count": n, "avgObjSize": if n > 0 { size / n } else { 0 }, "storageSize": size, "nindexes": c.indexes.len() as i32 + 1, "totalIndexSize": n * 16});
            }
            "latencyStats" | "queryExecStats" => {
                d.insert(k, Document::new());
            }
            other => {
                return Err(CommandError::new(
                    40415,
                    format!("BSON field '$collStats.{other}' is an unknown field."),
                ))
            }
        }
    }
    RawDocumentBuf::from_document(&d).map_err(|e| CommandError::bad_value(e.to_string()))
}

fn as_usize(v: RawBsonRef<'_>, what: &str) -> CmdResult<usize> {
    match crate::matcher::as_i64(&v) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CommandError::bad_value(format!(
            "{what} must be a non-negative number"
        ))),
    }
}

/// `sample_seed`: see [`crate::SimHandle::set_sample_seed`].
fn run_stages(
    mut docs: Vec<Doc>,
    stages: &[RawDocumentBuf],
    version: crate::version::ServerVersion,
    sample_seed: Option<u64>,
) -> CmdResult<Vec<Doc>> {
    // Pipeline::parse: every stage is parsed (unknown names: 40324) before any runs.
    for st in stages {
        let name = stage_name(st)?.0;
        if !is_known_stage(name)
            || (name == "$changeStreamSplitLargeEvent" && !version.splits_large_events())
        {
            return Err(unknown_stage(name));
        }
    }
    // validateTopLevelPipeline: "$changeStreamSplitLargeEvent can only be used in a $changeStream
    // pipeline" (its constraints require a change stream).
    if stages
        .iter()
        .any(|st| stage_name(st).is_ok_and(|(n, _)| n == "$changeStreamSplitLargeEvent"))
    {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "$changeStreamSplitLargeEvent can only be used in a $changeStream pipeline",
        ));
    }
    for st in stages {
        let (name, arg) = stage_name(st)?;
        docs = match (name, arg) {
            ("$match", RawBsonRef::Document(f)) => {
                let e = Expr::parse(f)?;
                docs.into_iter().filter(|d| e.matches(d)).collect()
            }
            ("$sort", RawBsonRef::Document(s)) => {
                let mut keys = Vec::new();
                for item in s.iter() {
                    let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
                    let asc = match crate::matcher::as_i64(&v) {
                        Some(1) => true,
                        Some(-1) => false,
                        _ => return Err(CommandError::new(15975, "$sort key ordering must be 1 (for ascending) or -1 (for descending)")),
                    };
                    keys.push((k.split('.').map(str::to_string).collect(), asc));
                }
                sort_docs(&mut docs, &keys);
                docs
            }
            ("$limit", v) => {
                let n = as_usize(v, "the limit")?;
                if n == 0 {
                    return Err(CommandError::new(15958, "the limit must be positive"));
                }
                docs.truncate(n);
                docs
            }
            ("$skip", v) => {
                let n = as_usize(v, "$skip")?;
                docs.into_iter().skip(n).collect()
            }
            ("$project", RawBsonRef::Document(p)) => match Projection::parse(p)? {
                Some(p) => docs.iter().map(|d| Arc::new(p.apply(d))).collect(),
                None => return Err(CommandError::new(51272, "Invalid $project :: caused by :: projection specification must have at least one field")),
            },
            ("$unset", v) => {
                let fields: Vec<String> = match v {
                    RawBsonRef::String(s) => vec![s.to_string()],
                    RawBsonRef::Array(a) => a.into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => return Err(CommandError::bad_value("$unset specification must be a string or an array")),
                };
                let mut spec = RawDocumentBuf::new();
                for f in &fields {
                    spec.append(f, 0i32);
                }
                match Projection::parse(&spec)? {
                    Some(p) => docs.iter().map(|d| Arc::new(p.apply(d))).collect(),
                    None => docs,
                }
            }
            ("$sample", RawBsonRef::Document(s)) => {
                let size = match s.get("size") {
                    Ok(Some(v)) => as_usize(v, "size argument to $sample")?,
                    _ => return Err(CommandError::new(28749, "$sample stage must specify a size")),
                };
                let n = docs.len();
                let picked = match sample_seed {
                    Some(seed) => {
                        use rand::SeedableRng;
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                        rand::seq::index::sample(&mut rng, n, size.min(n))
                    }
                    None => rand::seq::index::sample(&mut rand::rng(), n, size.min(n)),
                };
                picked.into_iter().map(|i| docs[i].clone()).collect()
            }
            ("$count", RawBsonRef::String(field)) => {
                let n = docs.len() as i32;
                if n == 0 {
                    Vec::new()
                } else {
                    let mut d = RawDocumentBuf::new();
                    d.append(field, n);
                    vec![Arc::new(d)]
                }
            }
            ("$group", RawBsonRef::Document(g)) => group(&docs, g)?,
            ("$bucketAuto", RawBsonRef::Document(b)) => bucket_auto(&docs, b)?,
            ("$collStats", _) => {
                return Err(CommandError::new(40602, "$collStats is only valid as the first stage in a pipeline"))
            }
            ("$changeStream", _) => {
                return Err(CommandError::new(40602, "$changeStream is only valid as the first stage in a pipeline."))
            }
            (other, _) => return Err(CommandError::not_implemented(format!("the {other} aggregation stage"))),
        };
    }
    Ok(docs)
}

fn to_doc(d: &RawDocument) -> CmdResult<Document> {
    bson::Document::try_from(d).map_err(|e| CommandError::bad_value(e.to_string()))
}

/// Evaluates a `$group` key or accumulator argument: an object of expressions keeps a field for
/// each key (null when missing, as `$group` builds compound `_id`s), anything else is an
/// expression (`crate::expression`).
fn eval(doc: &Document, e: &Bson) -> CmdResult<Option<Bson>> {
    match e {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let mut out = Document::new();
            for (k, v) in d {
                out.insert(k.clone(), eval(doc, v)?.unwrap_or(Bson::Null));
            }
            Ok(Some(Bson::Document(out)))
        }
        other => crate::expression::evaluate(doc, other),
    }
}

fn raw_of(b: &Bson) -> bson::RawBson {
    bson::RawBson::try_from(b.clone()).unwrap_or(bson::RawBson::Null)
}

enum Acc {
    Sum(Bson),
    Min,
    Max,
    First,
    Last,
    Avg,
    Push,
}

/// One group: its key, one value per accumulator, and (sum, count) per `$avg`.
type GroupState = (Bson, Vec<Option<Bson>>, Vec<(f64, i64)>);

fn group(docs: &[Doc], spec: &RawDocument) -> CmdResult<Vec<Doc>> {
    let spec = to_doc(spec)?;
    let id_expr = spec
        .get("_id")
        .cloned()
        .ok_or_else(|| CommandError::new(15955, "a group specification must include an _id"))?;
    let mut accs: Vec<(String, Acc, Bson)> = Vec::new();
    for (k, v) in &spec {
        if k == "_id" {
            continue;
        }
        let d = v.as_document().ok_or_else(|| {
            CommandError::new(
                40234,
                format!("The field '{k}' must be an accumulator object"),
            )
        })?;
        let (op, arg) = d
            .iter()
            .next()
            .ok_or_else(|| CommandError::new(40234, "empty accumulator"))?;
        let acc = match op.as_str() {
            "$sum" => Acc::Sum(arg.clone()),
            "$count" => Acc::Sum(Bson::Int32(1)),
            "$min" => Acc::Min,
            "$max" => Acc::Max,
            "$first" => Acc::First,
            "$last" => Acc::Last,
            "$avg" => Acc::Avg,
            "$push" => Acc::Push,
            other => {
                return Err(CommandError::not_implemented(format!(
                    "the {other} accumulator"
                )))
            }
        };
        accs.push((k.clone(), acc, arg.clone()));
    }
    // Groups keyed by BSON order of their _id; output in first-seen order.
    let mut index: BTreeMap<OrderedBson, usize> = BTreeMap::new();
    let mut groups: Vec<GroupState> = Vec::new();
    for d in docs {
        let doc = to_doc(d)?;
        let key = eval(&doc, &id_expr)?.unwrap_or(Bson::Null);
        let ok = OrderedBson(raw_of(&key));
        let gi = match index.get(&ok) {
            Some(i) => *i,
            None => {
                groups.push((
                    key.clone(),
                    vec![None; accs.len()],
                    vec![(0.0, 0); accs.len()],
                ));
                index.insert(ok, groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        for (ai, (_, acc, arg)) in accs.iter().enumerate() {
            let val = match acc {
                Acc::Sum(a) => eval(&doc, a)?,
                _ => eval(&doc, arg)?,
            };
            let slot = &mut g.1[ai];
            match acc {
                Acc::Sum(_) => {
                    let cur = slot.take().unwrap_or(Bson::Int32(0));
                    *slot = Some(add(&cur, val.as_ref()));
                }
                Acc::Min | Acc::Max => {
                    if let Some(v) = val.filter(|v| !matches!(v, Bson::Null)) {
                        let replace = match slot.as_ref() {
                            None => true,
                            Some(c) => {
                                let o = compare(
                                    &raw_of(&v).as_raw_bson_ref(),
                                    &raw_of(c).as_raw_bson_ref(),
                                );
                                matches!(
                                    (acc, o),
                                    (Acc::Min, std::cmp::Ordering::Less)
                                        | (Acc::Max, std::cmp::Ordering::Greater)
                                )
                            }
                        };
                        if replace {
                            *slot = Some(v);
                        }
                    }
                }
                Acc::First => {
                    if slot.is_none() {
                        *slot = Some(val.unwrap_or(Bson::Null));
                    }
                }
                Acc::Last => *slot = Some(val.unwrap_or(Bson::Null)),
                Acc::Avg => {
                    if let Some(x) = val.as_ref().and_then(num) {
                        g.2[ai].0 += x;
                        g.2[ai].1 += 1;
                    }
                }
                Acc::Push => {
                    let mut arr = match slot.take() {
                        Some(Bson::Array(a)) => a,
                        _ => Vec::new(),
                    };
                    if let Some(v) = val {
                        arr.push(v);
                    }
                    *slot = Some(Bson::Array(arr));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (key, vals, avgs) in groups {
        let mut d = doc! {"_id": key};
        for (ai, (name, acc, _)) in accs.iter().enumerate() {
            let v = match acc {
                Acc::Avg => {
                    let (s, n) = avgs[ai];
                    if n == 0 {
                        Bson::Null
                    } else {
                        Bson::Double(s / n as f64)
                    }
                }
                Acc::Push => vals[ai].clone().unwrap_or(Bson::Array(Vec::new())),
                _ => vals[ai].clone().unwrap_or(Bson::Null),
            };
            d.insert(name.clone(), v);
        }
        out.push(Arc::new(
            RawDocumentBuf::from_document(&d)
                .map_err(|e| CommandError::bad_value(e.to_string()))?,
        ));
    }
    Ok(out)
}

fn num(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// `$sum` arithmetic: int32 widens to int64, then to double; non-numbers are ignored.
fn add(cur: &Bson, v: Option<&Bson>) -> Bson {
    match (cur, v) {
        (c, None) => c.clone(),
        (Bson::Int32(a), Some(Bson::Int32(b))) => a
            .checked_add(*b)
            .map(Bson::Int32)
            .unwrap_or(Bson::Int64(i64::from(*a) + i64::from(*b))),
        (Bson::Int32(a), Some(Bson::Int64(b))) | (Bson::Int64(b), Some(Bson::Int32(a))) => {
            i64::from(*a)
                .checked_add(*b)
                .map(Bson::Int64)
                .unwrap_or(Bson::Double(f64::from(*a) + *b as f64))
        }
        (Bson::Int64(a), Some(Bson::Int64(b))) => a
            .checked_add(*b)
            .map(Bson::Int64)
            .unwrap_or(Bson::Double(*a as f64 + *b as f64)),
        (c, Some(x)) => match (num(c), num(x)) {
            (Some(a), Some(b)) => Bson::Double(a + b),
            _ => c.clone(),
        },
    }
}

/// `$bucketAuto` with mongod's algorithm (`document_source_bucket_auto.cpp`): sort by the
/// groupBy value, fill buckets of `ceil(n / buckets)`-ish size, never split equal values, each
/// bucket's `max` is the next bucket's `min` (the last one's is its own largest value).
fn bucket_auto(docs: &[Doc], spec: &RawDocument) -> CmdResult<Vec<Doc>> {
    let spec = to_doc(spec)?;
    let group_by = spec.get("groupBy").cloned().ok_or_else(|| {
        CommandError::new(
            40246,
            "$bucketAuto requires 'groupBy' and 'buckets' to be specified",
        )
    })?;
    let buckets = spec.get("buckets").and_then(num).ok_or_else(|| {
        CommandError::new(
            40246,
            "$bucketAuto requires 'groupBy' and 'buckets' to be specified",
        )
    })? as usize;
    if buckets == 0 {
        return Err(CommandError::new(
            40243,
            "The $bucketAuto 'buckets' field must be greater than 0",
        ));
    }
    for k in spec.keys() {
        match k.as_str() {
            "groupBy" | "buckets" => {}
            "output" => {
                let out = spec
                    .get_document("output")
                    .map_err(|_| CommandError::bad_value("output must be an object"))?;
                let simple = out.iter().all(|(_, v)| matches!(v, Bson::Document(d) if d.get("$sum").and_then(num) == Some(1.0)));
                if !simple {
                    return Err(CommandError::not_implemented(
                        "$bucketAuto output accumulators other than {$sum: 1}",
                    ));
                }
            }
            "granularity" => return Err(CommandError::not_implemented("$bucketAuto granularity")),
            other => {
                return Err(CommandError::new(
                    40245,
                    format!("Unrecognized option to $bucketAuto: {other}."),
                ))
            }
        }
    }
    let count_fields: Vec<String> = match spec.get_document("output") {
        Ok(o) => o.keys().cloned().collect(),
        Err(_) => vec!["count".to_string()],
    };
    let mut keyed: Vec<bson::RawBson> = Vec::with_capacity(docs.len());
    for d in docs {
        let v = match &group_by {
            Bson::String(s) if s.starts_with('$') && !s.contains('.') => d
                .get(&s[1..])
                .ok()
                .flatten()
                .map(|v| v.to_raw_bson())
                .unwrap_or(bson::RawBson::Null),
            other => raw_of(&eval(&to_doc(d)?, other)?.unwrap_or(Bson::Null)),
        };
        keyed.push(v);
    }
    keyed.sort_by(|a, b| compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref()));
    let n = keyed.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let approx = (n as f64 / buckets as f64).round().max(1.0) as usize;
    let mut bounds: Vec<(usize, usize)> = Vec::new(); // [start, end)
    let mut i = 0;
    while i < n {
        let start = i;
        let mut end = (start + approx).min(n);
        if bounds.len() + 1 == buckets {
            end = n;
        }
        while end < n
            && compare(
                &keyed[end].as_raw_bson_ref(),
                &keyed[end - 1].as_raw_bson_ref(),
            ) == std::cmp::Ordering::Equal
        {
            end += 1;
        }
        bounds.push((start, end));
        i = end;
    }
    let mut out = Vec::new();
    for (bi, (s, e)) in bounds.iter().enumerate() {
        let min = &keyed[*s];
        let max = if bi + 1 < bounds.len() {
            &keyed[bounds[bi + 1].0]
        } else {
            &keyed[e - 1]
        };
        let mut w = crate::wire::DocWriter::new();
        w.begin_document("_id");
        w.append("min", min.as_raw_bson_ref());
        w.append("max", max.as_raw_bson_ref());
        w.end();
        for f in &count_fields {
            w.i32(f, (e - s) as i32);
        }
        out.push(Arc::new(w.finish_doc()));
    }
    Ok(out)
}
