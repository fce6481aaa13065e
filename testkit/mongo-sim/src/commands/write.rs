//! Writes: `insert`, `update` (operators, replacement, pipeline-style, upsert, multi),
//! `delete`, `findAndModify`, and retryable-write dedupe on `(lsid, txnNumber)`: a retried
//! statement gets the original reply back and is not applied twice.

use std::sync::Arc;

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};

use super::find::{plan, FindSpec};
use super::{doc_body, Cmd, Exec, Failure};
use crate::error::{codes, CmdResult, CommandError};
use crate::matcher::Expr;
use crate::projection::Projection;
use crate::state::{Shared, State, UpdateOutcome};
use crate::storage::Doc;
use crate::update::{
    apply_operators, apply_pipeline, apply_replacement, diff_documents, upsert_seed, UpdateSpec,
};
use crate::wire::MAX_BSON_OBJECT_SIZE;

/// Runs a write under the lock with retryable-write dedupe.
fn retryable(shared: &Arc<Shared>, cmd: &Cmd<'_>, f: impl FnOnce(&mut State) -> Exec) -> Exec {
    if cmd.get("startTransaction").is_some() || cmd.get("autocommit").is_some() {
        return Err(CommandError::not_implemented("multi-document transactions").into());
    }
    let key = match (cmd.lsid(), cmd.txn_number()) {
        (Some(lsid), Some(txn)) => Some((lsid.into_bytes(), txn)),
        _ => None,
    };
    let result = {
        let mut st = shared.lock();
        st.check_primary()?;
        if let Some((lsid, txn)) = &key {
            let s = st.sessions.entry(lsid.clone()).or_default();
            if *txn < s.txn_number {
                return Err(CommandError::new(
                    codes::TRANSACTION_TOO_OLD,
                    format!(
                        "Retryable write with txnNumber {txn} is prohibited on session because a \
                         newer retryable write with txnNumber {} has already started on this session.",
                        s.txn_number
                    ),
                )
                .into());
            }
            if *txn == s.txn_number {
                if let Some(reply) = &s.reply {
                    return Ok(reply.as_bytes().to_vec());
                }
            }
        }
        let fault = key
            .as_ref()
            .and_then(|_| st.failpoints.on_primary_transactional_write());
        if let Some(code) = fault.as_ref().and_then(|f| f.fail_before_commit) {
            if fault.as_ref().is_some_and(|f| f.close_connection) {
                return Err(Failure::Close);
            }
            let txn = key.as_ref().map(|(_, t)| *t).unwrap_or_default();
            return Err(CommandError::new(
                code,
                format!(
                    "Failing write for {txn} due to failpoint. The write must not be reflected."
                ),
            )
            .into());
        }
        let body = f(&mut st)?;
        if let Some((lsid, txn)) = key {
            let s = st.sessions.entry(lsid).or_default();
            s.txn_number = txn;
            s.reply = RawDocumentBuf::from_bytes(body.clone()).ok();
        }
        if fault.is_some_and(|f| f.close_connection) {
            // Committed and recorded for the retry, then the connection goes.
            drop(st);
            shared.notify_oplog();
            return Err(Failure::Close);
        }
        body
    };
    shared.notify_oplog();
    Ok(result)
}

fn write_error(index: usize, e: &CommandError) -> Document {
    let mut d = doc! {"index": index as i32, "code": e.code, "errmsg": e.errmsg.clone()};
    for (k, v) in e.extra.iter() {
        d.insert(k.clone(), v.clone());
    }
    d
}

fn ordered(cmd: &Cmd<'_>) -> bool {
    !matches!(cmd.get("ordered"), Some(RawBsonRef::Boolean(false)))
}

fn check_target(st: &State, db: &str, coll: &str) -> CmdResult<()> {
    if let Some(c) = st.catalog.coll(db, coll) {
        if c.is_view() {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
    }
    Ok(())
}

pub fn insert(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&["documents", "ordered", "bypassDocumentValidation"])?;
    let coll = cmd.collection()?;
    let docs = cmd.doc_list("documents")?;
    let ordered = ordered(cmd);
    retryable(shared, cmd, |st| {
        check_target(st, &cmd.db, &coll)?;
        let mut n = 0i32;
        let mut errors = Vec::new();
        for (i, d) in docs.into_iter().enumerate() {
            let r = st.insert_one(&cmd.db, &coll, d);
            match r {
                Ok(_) => n += 1,
                Err(e) => {
                    errors.push(write_error(i, &e));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": n};
        if !errors.is_empty() {
            reply.insert("writeErrors", errors);
        }
        doc_body(reply)
    })
}

/// The documents a filter selects, in natural order (`_id` equality uses the index).
pub(crate) fn matching(
    st: &State,
    db: &str,
    coll: &str,
    filter: &Expr,
    raw_filter: &RawDocument,
    multi: bool,
) -> Vec<(u64, Doc)> {
    let Some(c) = st.catalog.coll(db, coll) else {
        return Vec::new();
    };
    if let Ok(Some(id)) = raw_filter.get("_id") {
        let plain = !matches!(id, RawBsonRef::Document(d) if d.iter().next().is_some_and(|r| r.is_ok_and(|(k, _)| k.starts_with('$'))))
            && !matches!(
                id,
                RawBsonRef::RegularExpression(_) | RawBsonRef::Array(_) | RawBsonRef::Null
            );
        if plain {
            return c
                .find_id(&id.to_raw_bson())
                .filter(|(_, d)| filter.matches(d))
                .map(|(rid, d)| vec![(rid, d.clone())])
                .unwrap_or_default();
        }
    }
    let mut out = Vec::new();
    for (rid, d) in c.natural_from(0) {
        if filter.matches(d) {
            out.push((rid, d.clone()));
            if !multi {
                break;
            }
        }
    }
    out
}

/// What an update statement asks for.
pub(crate) enum UpdateKind {
    Spec(UpdateSpec),
    Pipeline(Vec<Document>),
}

pub(crate) fn parse_update(u: RawBsonRef<'_>) -> CmdResult<UpdateKind> {
    match u {
        RawBsonRef::Document(d) => Ok(UpdateKind::Spec(UpdateSpec::parse(
            &bson::Document::try_from(d).map_err(|e| CommandError::bad_value(e.to_string()))?,
        )?)),
        RawBsonRef::Array(a) => {
            let mut stages = Vec::new();
            for s in a.into_iter() {
                match s {
                    Ok(RawBsonRef::Document(d)) => stages.push(
                        bson::Document::try_from(d)
                            .map_err(|e| CommandError::bad_value(e.to_string()))?,
                    ),
                    _ => {
                        return Err(CommandError::failed_to_parse(
                            "Each element of the update pipeline must be an object",
                        ))
                    }
                }
            }
            Ok(UpdateKind::Pipeline(stages))
        }
        _ => Err(CommandError::failed_to_parse(
            "Update argument must be either an object or an array",
        )),
    }
}

fn to_raw(d: &Document) -> CmdResult<RawDocumentBuf> {
    let raw =
        RawDocumentBuf::from_document(d).map_err(|e| CommandError::bad_value(e.to_string()))?;
    if raw.as_bytes().len() > MAX_BSON_OBJECT_SIZE {
        return Err(CommandError::new(
            17419,
            "Resulting document after update is larger than 16777216",
        ));
    }
    // storage_validation::storageValid, for what an update produces.
    crate::storage::check_depth(&raw, |max| {
        format!("Document exceeds maximum nesting depth of {max}")
    })?;
    Ok(raw)
}

/// Applies one update statement. Returns the outcome and the (pre, post) images of the last
/// document touched (for findAndModify).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_statement(
    st: &mut State,
    db: &str,
    coll: &str,
    q: &RawDocument,
    kind: &UpdateKind,
    multi: bool,
    upsert: bool,
    targets: Option<Vec<(u64, Doc)>>,
) -> CmdResult<(UpdateOutcome, Option<(Doc, Doc)>)> {
    let filter = Expr::parse(q)?;
    if multi {
        if let UpdateKind::Spec(UpdateSpec::Replacement(_)) = kind {
            return Err(CommandError::failed_to_parse(
                "multi update is not supported for replacement-style update",
            ));
        }
    }
    check_target(st, db, coll)?;
    let targets = match targets {
        Some(t) => t,
        None => matching(st, db, coll, &filter, q, multi),
    };
    let mut out = UpdateOutcome::default();
    let mut last = None;
    for (rid, old) in targets {
        out.matched += 1;
        let old_doc = old
            .to_document()
            .map_err(|e| CommandError::bad_value(e.to_string()))?;
        let (new_doc, desc) = match kind {
            UpdateKind::Spec(UpdateSpec::Replacement(r)) => (apply_replacement(&old_doc, r)?, None),
            UpdateKind::Spec(UpdateSpec::Operators(ops)) => {
                let a = apply_operators(&old_doc, ops, Some(&filter), false)?;
                if !a.changed {
                    last = Some((old.clone(), old.clone()));
                    continue;
                }
                (a.doc, Some(a.description))
            }
            UpdateKind::Pipeline(p) => {
                let new = apply_pipeline(&old_doc, p)?;
                if new.get("_id") != old_doc.get("_id") {
                    return Err(CommandError::new(codes::IMMUTABLE_FIELD, "Performing an update on the path '_id' would modify the immutable field '_id'"));
                }
                let d = diff_documents(&old_doc, &new);
                (new, Some(d))
            }
        };
        if new_doc == old_doc {
            last = Some((old.clone(), old.clone()));
            continue;
        }
        let raw = to_raw(&new_doc)?;
        let new_arc: Doc = Arc::new(raw.clone());
        st.write_update(db, coll, rid, old.clone(), raw, desc)?;
        out.modified += 1;
        last = Some((old, new_arc));
    }
    if out.matched == 0 && upsert {
        let seed = upsert_seed(q)?;
        let new_doc = match kind {
            UpdateKind::Spec(UpdateSpec::Replacement(r)) => {
                let mut d = Document::new();
                if let Some(id) = r.get("_id").or_else(|| seed.get("_id")) {
                    d.insert("_id", id.clone());
                }
                for (k, v) in r {
                    if k != "_id" {
                        d.insert(k.clone(), v.clone());
                    }
                }
                d
            }
            UpdateKind::Spec(UpdateSpec::Operators(ops)) => {
                apply_operators(&seed, ops, Some(&filter), true)?.doc
            }
            UpdateKind::Pipeline(p) => apply_pipeline(&seed, p)?,
        };
        let mut with_id = Document::new();
        let id = new_doc
            .get("_id")
            .cloned()
            .unwrap_or_else(|| Bson::ObjectId(bson::oid::ObjectId::new()));
        with_id.insert("_id", id.clone());
        for (k, v) in new_doc {
            if k != "_id" {
                with_id.insert(k, v);
            }
        }
        let raw = to_raw(&with_id)?;
        let arc: Doc = Arc::new(raw.clone());
        st.insert_one(db, coll, raw)?;
        out.upserted_id =
            Some(bson::RawBson::try_from(id).map_err(|e| CommandError::bad_value(e.to_string()))?);
        last = Some((arc.clone(), arc));
    }
    Ok((out, last))
}

/// Fields of an update statement (`write_ops.idl`, `UpdateOpEntry`).
const UPDATE_FIELDS: &[&str] = &[
    "q",
    "u",
    "upsert",
    "multi",
    "hint",
    "c",
    "upsertSupplied",
    "arrayFilters",
    "collation",
    "sampleId",
    "allowShardKeyUpdatesWithoutFullShardKeyInQuery",
];
/// Fields of a delete statement (`DeleteOpEntry`).
const DELETE_FIELDS: &[&str] = &["q", "limit", "hint", "collation", "sampleId"];

/// The IDL parse of one statement, which fails the whole command (not a write error): unknown
/// fields (40415), missing required ones (40414), `q` not an object (TypeMismatch); statements
/// the simulator cannot run (`arrayFilters`, collations) are refused the same way.
fn check_statement(
    s: &RawDocument,
    context: &str,
    required: &[&str],
    known: &[&str],
) -> CmdResult<()> {
    for item in s.iter() {
        let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
        if !known.contains(&k) {
            return Err(CommandError::new(
                40415,
                format!("BSON field '{context}.{k}' is an unknown field."),
            ));
        }
        match (k, v) {
            ("q", RawBsonRef::Document(_)) => {}
            ("q", other) => {
                return Err(CommandError::type_mismatch(format!(
                    "BSON field '{context}.q' is the wrong type '{:?}', expected type 'object'",
                    other.element_type()
                )))
            }
            ("arrayFilters", _) => return Err(CommandError::not_implemented("arrayFilters")),
            ("collation", c) => super::check_collation(Some(c), &format!("{context}.collation"))?,
            _ => {}
        }
    }
    for field in required {
        if s.get(field).ok().flatten().is_none() {
            return Err(CommandError::new(
                40414,
                format!("BSON field '{context}.{field}' is missing but a required field"),
            ));
        }
    }
    Ok(())
}

pub fn update(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&["updates", "ordered", "bypassDocumentValidation", "let"])?;
    let coll = cmd.collection()?;
    let stmts = cmd.doc_list("updates")?;
    for s in &stmts {
        check_statement(s, "update.updates", &["q", "u"], UPDATE_FIELDS)?;
    }
    let ordered = ordered(cmd);
    retryable(shared, cmd, |st| {
        let (mut n, mut modified) = (0i64, 0i64);
        let mut upserted = Vec::new();
        let mut errors = Vec::new();
        for (i, s) in stmts.iter().enumerate() {
            let r = (|| -> CmdResult<UpdateOutcome> {
                let (Ok(Some(RawBsonRef::Document(q))), Ok(Some(u))) = (s.get("q"), s.get("u"))
                else {
                    return Err(CommandError::new(
                        codes::INTERNAL_ERROR,
                        "unchecked statement",
                    ));
                };
                let kind = parse_update(u)?;
                let flag = |k: &str| matches!(s.get(k), Ok(Some(RawBsonRef::Boolean(true))));
                Ok(update_statement(
                    st,
                    &cmd.db,
                    &coll,
                    q,
                    &kind,
                    flag("multi"),
                    flag("upsert"),
                    None,
                )?
                .0)
            })();
            match r {
                Ok(o) => {
                    n += o.matched as i64;
                    modified += o.modified as i64;
                    if let Some(id) = o.upserted_id {
                        n += 1;
                        let id = Bson::try_from(id).unwrap_or(Bson::Null);
                        upserted.push(doc! {"index": i as i32, "_id": id});
                    }
                }
                Err(e) => {
                    errors.push(write_error(i, &e));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": n as i32, "nModified": modified as i32};
        if !upserted.is_empty() {
            reply.insert("upserted", upserted);
        }
        if !errors.is_empty() {
            reply.insert("writeErrors", errors);
        }
        doc_body(reply)
    })
}

/// A delete statement's `limit` (0, all matches, when absent).
fn delete_limit(s: &RawDocument) -> i64 {
    s.get("limit")
        .ok()
        .flatten()
        .and_then(|v| crate::matcher::as_i64(&v))
        .unwrap_or(0)
}

pub fn delete(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&["deletes", "ordered", "let"])?;
    let coll = cmd.collection()?;
    let stmts = cmd.doc_list("deletes")?;
    for s in &stmts {
        check_statement(s, "delete.deletes", &["q", "limit"], DELETE_FIELDS)?;
        let limit = delete_limit(s);
        if limit != 0 && limit != 1 {
            return Err(CommandError::failed_to_parse(format!(
                "The limit field in delete objects must be 0 or 1. Got {limit}"
            ))
            .into());
        }
    }
    let ordered = ordered(cmd);
    retryable(shared, cmd, |st| {
        let mut n = 0i32;
        let mut errors = Vec::new();
        for (i, s) in stmts.iter().enumerate() {
            let r = (|| -> CmdResult<i32> {
                let Ok(Some(RawBsonRef::Document(q))) = s.get("q") else {
                    return Err(CommandError::new(
                        codes::INTERNAL_ERROR,
                        "unchecked statement",
                    ));
                };
                let limit = delete_limit(s);
                check_target(st, &cmd.db, &coll)?;
                let filter = Expr::parse(q)?;
                let targets = matching(st, &cmd.db, &coll, &filter, q, limit == 0);
                let mut k = 0;
                for (rid, _) in targets {
                    if st.write_delete(&cmd.db, &coll, rid)?.is_some() {
                        k += 1;
                    }
                }
                Ok(k)
            })();
            match r {
                Ok(k) => n += k,
                Err(e) => {
                    errors.push(write_error(i, &e));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": n};
        if !errors.is_empty() {
            reply.insert("writeErrors", errors);
        }
        doc_body(reply)
    })
}

pub fn find_and_modify(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&[
        "query",
        "sort",
        "remove",
        "update",
        "new",
        "fields",
        "upsert",
        "bypassDocumentValidation",
        "collation",
        "arrayFilters",
        "hint",
        "let",
    ])?;
    let coll = cmd.collection()?;
    let empty = RawDocumentBuf::new();
    let q: RawDocumentBuf = cmd
        .doc("query")?
        .map(|d| d.to_raw_document_buf())
        .unwrap_or(empty);
    let remove = cmd.bool_opt("remove");
    let update = cmd.get("update");
    if remove == update.is_some() {
        return Err(CommandError::failed_to_parse(
            "Either an update or remove=true must be specified",
        )
        .into());
    }
    if cmd.get("arrayFilters").is_some() {
        return Err(CommandError::not_implemented("arrayFilters").into());
    }
    super::check_collation(cmd.get("collation"), "findAndModify.collation")?;
    let return_new = cmd.bool_opt("new");
    let upsert = cmd.bool_opt("upsert");
    if remove && (upsert || return_new) {
        return Err(
            CommandError::failed_to_parse("Cannot specify both an update and remove=true").into(),
        );
    }
    let fields = match cmd.doc("fields")? {
        Some(f) => Projection::parse(f)?,
        None => None,
    };
    let kind = update.map(parse_update).transpose()?;
    let sort = cmd.doc("sort")?.map(RawDocument::to_raw_document_buf);
    let hint = cmd.get("hint").map(|h| h.to_raw_bson());
    retryable(shared, cmd, move |st| {
        check_target(st, &cmd.db, &coll)?;
        let filter = Expr::parse(&q)?;
        let target: Option<(u64, Doc)> = if st.catalog.coll(&cmd.db, &coll).is_some() {
            let mut fs = plan(
                st,
                &cmd.db,
                &coll,
                FindSpec {
                    raw_filter: Some(q.clone()),
                    filter: filter.clone(),
                    sort,
                    projection: None,
                    hint,
                    min: None,
                    max: None,
                    skip: 0,
                    limit: Some(1),
                },
            )?;
            let mut docs = Vec::new();
            fs.next_batch(&st.catalog, 1, usize::MAX, &mut docs);
            match docs.pop() {
                Some(d) => {
                    let id = crate::storage::id_of(&d)?;
                    st.catalog
                        .coll(&cmd.db, &coll)
                        .and_then(|c| c.find_id(&id))
                        .map(|(rid, d)| (rid, d.clone()))
                }
                None => None,
            }
        } else {
            None
        };
        let project = |d: &Doc| -> Bson {
            let raw = match &fields {
                Some(p) => p.apply(d),
                None => (**d).clone(),
            };
            raw.to_document().map(Bson::Document).unwrap_or(Bson::Null)
        };
        if remove {
            let (n, value) = match target {
                Some((rid, d)) => {
                    st.write_delete(&cmd.db, &coll, rid)?;
                    (1, project(&d))
                }
                None => (0, Bson::Null),
            };
            return doc_body(doc! {"lastErrorObject": {"n": n}, "value": value});
        }
        let kind = kind.ok_or_else(|| CommandError::failed_to_parse("missing update"))?;
        let existed = target.is_some();
        let targets = target.map(|t| vec![t]).unwrap_or_default();
        let (outcome, images) =
            update_statement(st, &cmd.db, &coll, &q, &kind, false, upsert, Some(targets))?;
        let value = match (&images, outcome.upserted_id.is_some()) {
            (Some((pre, post)), upserted) => {
                if return_new {
                    project(post)
                } else if upserted {
                    Bson::Null
                } else {
                    project(pre)
                }
            }
            (None, _) => Bson::Null,
        };
        let mut leo = doc! {"n": if existed || outcome.upserted_id.is_some() { 1 } else { 0 }, "updatedExisting": existed};
        if let Some(id) = outcome.upserted_id {
            leo.insert("upserted", Bson::try_from(id).unwrap_or(Bson::Null));
        }
        doc_body(doc! {"lastErrorObject": leo, "value": value})
    })
}
