//! Catalog commands: `listDatabases`, `listCollections` (filter, nameOnly), `listIndexes`,
//! `createIndexes`, `dropIndexes`, `create` (collections, views, time-series), `drop`,
//! `dropDatabase`, `renameCollection`, `collStats`/`dbStats`.

use std::sync::Arc;

use bson::{doc, Bson, Document, RawBsonRef, RawDocumentBuf};

use super::{doc_body, Cmd, Exec};
use crate::error::{codes, CommandError};
use crate::matcher::Expr;
use crate::state::Shared;
use crate::storage::{CollKind, Collection};

fn to_raw(d: &Document) -> Result<RawDocumentBuf, CommandError> {
    RawDocumentBuf::from_document(d).map_err(|e| CommandError::bad_value(e.to_string()))
}

fn parse_filter(cmd: &Cmd<'_>) -> Result<Option<Expr>, CommandError> {
    cmd.doc("filter")?.map(Expr::parse).transpose()
}

/// A cursor reply that returns everything in the first batch.
pub fn single_batch_cursor(ns: &str, docs: Vec<Document>) -> Exec {
    doc_body(doc! {"cursor": {"id": 0i64, "ns": ns, "firstBatch": docs}})
}

/// `listDatabases`; `visible` says which databases the user may see (all of them with the
/// `listDatabases` privilege, else those it has privileges on, as mongod 4.0.5+ lists them).
pub fn list_databases(shared: &Arc<Shared>, cmd: &Cmd<'_>, visible: impl Fn(&str) -> bool) -> Exec {
    if cmd.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "listDatabases may only be run against the admin database.",
        )
        .into());
    }
    let filter = parse_filter(cmd)?;
    let name_only = cmd.bool_opt("nameOnly");
    let st = shared.lock();
    let mut entries: Vec<(String, i64, bool)> = vec![
        ("admin".into(), 40960, false),
        ("config".into(), 61440, false),
        ("local".into(), 73728, false),
    ];
    for (name, db) in &st.catalog.dbs {
        let size: usize = db.collections.values().map(Collection::data_size).sum();
        let size = (size as i64).max(8192);
        entries.push((name.clone(), size, false));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut total = 0i64;
    for (name, size, empty) in entries {
        if !visible(&name) {
            continue;
        }
        let full = doc! {"name": name.clone(), "sizeOnDisk": size, "empty": empty};
        if let Some(f) = &filter {
            if !f.matches(&to_raw(&full)?) {
                continue;
            }
        }
        total += size;
        out.push(if name_only {
            doc! {"name": name}
        } else {
            full
        });
    }
    let mut d = doc! {"databases": out};
    if !name_only {
        d.insert("totalSize", total);
        d.insert("totalSizeMb", total / (1024 * 1024));
    }
    doc_body(d)
}

fn collection_entry(c: &Collection) -> Document {
    let uuid = c.uuid_bson();
    match &c.kind {
        CollKind::View { view_on, pipeline } => doc! {
            "name": c.name.clone(),
            "type": "view",
            "options": {"viewOn": view_on.clone(), "pipeline": pipeline.clone()},
            "info": {"readOnly": true},
        },
        CollKind::Timeseries => doc! {
            "name": c.name.clone(),
            "type": "timeseries",
            "options": c.options.clone(),
            "info": {"readOnly": false},
        },
        CollKind::Collection => doc! {
            "name": c.name.clone(),
            "type": "collection",
            "options": c.options.clone(),
            "info": {"readOnly": false, "uuid": uuid},
            "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        },
    }
}

pub fn list_collections(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    cmd.check_fields(&["filter", "nameOnly", "authorizedCollections", "cursor"])?;
    let filter = parse_filter(cmd)?;
    let name_only = cmd.bool_opt("nameOnly");
    let st = shared.lock();
    let mut out = Vec::new();
    if let Some(db) = st.catalog.dbs.get(&cmd.db) {
        for c in db.collections.values() {
            let full = collection_entry(c);
            if let Some(f) = &filter {
                if !f.matches(&to_raw(&full)?) {
                    continue;
                }
            }
            out.push(if name_only {
                doc! {"name": full.get_str("name").unwrap_or(""), "type": full.get_str("type").unwrap_or("")}
            } else {
                full
            });
        }
    }
    single_batch_cursor(&format!("{}.$cmd.listCollections", cmd.db), out)
}

pub fn list_indexes(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    let st = shared.lock();
    let c = st.catalog.coll(&cmd.db, &coll).ok_or_else(|| {
        CommandError::ns_not_found(format!("ns does not exist: {}.{coll}", cmd.db))
    })?;
    if c.is_view() {
        return Err(CommandError::new(
            codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
            format!("Namespace {}.{coll} is a view, not a collection", cmd.db),
        )
        .into());
    }
    let mut out = vec![doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}];
    out.extend(c.indexes.iter().cloned());
    single_batch_cursor(&format!("{}.{coll}", cmd.db), out)
}

pub fn create_indexes(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    let specs = match cmd.get("indexes") {
        Some(RawBsonRef::Array(a)) => a
            .into_iter()
            .filter_map(|e| e.ok())
            .filter_map(|e| match e {
                RawBsonRef::Document(d) => bson::Document::try_from(d).ok(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        _ => return Err(CommandError::type_mismatch("indexes must be an array").into()),
    };
    let mut st = shared.lock();
    st.check_primary()?;
    let existed = st.catalog.coll(&cmd.db, &coll).is_some();
    st.ensure_collection(&cmd.db, &coll)?;
    let before = st
        .catalog
        .coll(&cmd.db, &coll)
        .map(|c| c.indexes.len() + 1)
        .unwrap_or(1);
    let (c, _) = st.catalog.coll_for_write(&cmd.db, &coll)?;
    let uuid = c.uuid;
    let mut created = Vec::new();
    for spec in specs {
        if spec.get_bool("unique").unwrap_or(false)
            && spec
                .get_document("key")
                .map(|k| k.keys().ne(["_id"].iter().copied()))
                .unwrap_or(true)
        {
            return Err(CommandError::not_implemented("unique secondary indexes").into());
        }
        let name = spec.get_str("name").unwrap_or("").to_string();
        if name == "_id_"
            || c.indexes
                .iter()
                .any(|i| i.get_str("name") == Ok(name.as_str()))
        {
            continue;
        }
        let mut spec = spec.clone();
        spec.insert("v", 2);
        c.indexes.push(spec.clone());
        created.push(spec);
    }
    let after = c.indexes.len() + 1;
    if !created.is_empty() {
        st.log(
            &cmd.db,
            &coll,
            Some(uuid),
            crate::oplog::OpKind::CreateIndexes { indexes: created },
        );
        std::mem::drop(st);
        shared.notify_oplog();
    }
    doc_body(
        doc! {"numIndexesBefore": before as i32, "numIndexesAfter": after as i32, "createdCollectionAutomatically": !existed},
    )
}

pub fn drop_indexes(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    let mut st = shared.lock();
    st.check_primary()?;
    let c = st
        .catalog
        .coll_mut(&cmd.db, &coll)
        .ok_or_else(|| CommandError::ns_not_found(format!("ns not found {}.{coll}", cmd.db)))?;
    let was = c.indexes.len() + 1;
    let uuid = c.uuid;
    let dropped: Vec<Document> = match cmd.get("index") {
        Some(RawBsonRef::String("*")) => std::mem::take(&mut c.indexes),
        Some(RawBsonRef::String(name)) => {
            let (gone, kept): (Vec<Document>, Vec<Document>) = std::mem::take(&mut c.indexes)
                .into_iter()
                .partition(|i| i.get_str("name") == Ok(name));
            c.indexes = kept;
            if gone.is_empty() {
                return Err(CommandError::new(
                    codes::INDEX_NOT_FOUND,
                    format!("index not found with name [{name}]"),
                )
                .into());
            }
            gone
        }
        _ => return Err(CommandError::not_implemented("dropIndexes by key pattern").into()),
    };
    if !dropped.is_empty() {
        st.log(
            &cmd.db,
            &coll,
            Some(uuid),
            crate::oplog::OpKind::DropIndexes { indexes: dropped },
        );
        std::mem::drop(st);
        shared.notify_oplog();
    }
    doc_body(doc! {"nIndexesWas": was as i32})
}

pub fn create(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    let body =
        bson::Document::try_from(cmd.body).map_err(|e| CommandError::bad_value(e.to_string()))?;
    let mut options = Document::new();
    let mut kind = CollKind::Collection;
    for (k, v) in &body {
        match k.as_str() {
            "create"
            | "$db"
            | "lsid"
            | "$clusterTime"
            | "txnNumber"
            | "writeConcern"
            | "$readPreference"
            | "comment"
            | "apiVersion"
            | "apiStrict"
            | "apiDeprecationErrors"
            | "maxTimeMS" => {}
            "viewOn" => {
                let view_on = v
                    .as_str()
                    .ok_or_else(|| CommandError::type_mismatch("viewOn must be a string"))?;
                let pipeline = match body.get("pipeline") {
                    Some(Bson::Array(a)) => {
                        a.iter().filter_map(|s| s.as_document().cloned()).collect()
                    }
                    None => Vec::new(),
                    _ => {
                        return Err(CommandError::type_mismatch("pipeline must be an array").into())
                    }
                };
                kind = CollKind::View {
                    view_on: view_on.to_string(),
                    pipeline,
                };
            }
            "pipeline" => {}
            "timeseries" => {
                kind = CollKind::Timeseries;
                let mut ts = v.as_document().cloned().unwrap_or_default();
                if !ts.contains_key("granularity") {
                    ts.insert("granularity", "seconds");
                }
                ts.insert("bucketMaxSpanSeconds", 3600);
                options.insert("timeseries", ts);
            }
            "changeStreamPreAndPostImages"
            | "expireAfterSeconds"
            | "collation"
            | "storageEngine"
            | "indexOptionDefaults"
            | "clusteredIndex" => {
                if k == "collation" || k == "clusteredIndex" {
                    return Err(CommandError::not_implemented(format!("create with {k}")).into());
                }
                options.insert(k.clone(), v.clone());
            }
            "capped" | "size" | "max" | "validator" | "validationLevel" | "validationAction"
            | "encryptedFields" => {
                if matches!(v, Bson::Boolean(false)) {
                    continue;
                }
                return Err(CommandError::not_implemented(format!("create with {k}")).into());
            }
            other => {
                return Err(CommandError::new(
                    40415,
                    format!("BSON field 'create.{other}' is an unknown field."),
                )
                .into())
            }
        }
    }
    let mut st = shared.lock();
    st.check_primary()?;
    if let CollKind::View { view_on, .. } = &kind {
        if view_on == &coll {
            return Err(CommandError::new(codes::INVALID_NAMESPACE, "View cycle detected").into());
        }
    }
    st.create_collection(&cmd.db, &coll, kind, options)?;
    std::mem::drop(st);
    shared.notify_oplog();
    doc_body(Document::new())
}

/// `collMod`: only `changeStreamPreAndPostImages` is simulated; any other option is refused.
pub fn coll_mod(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    cmd.check_fields(&[
        "changeStreamPreAndPostImages",
        "validator",
        "validationLevel",
        "validationAction",
        "index",
        "expireAfterSeconds",
        "viewOn",
        "pipeline",
        "timeseries",
    ])?;
    let mut changed = Document::new();
    let mut enabled = None;
    for item in cmd.body.iter() {
        let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
        match k {
            "changeStreamPreAndPostImages" => {
                let d = match v {
                    RawBsonRef::Document(d) => d,
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "changeStreamPreAndPostImages must be an object",
                        )
                        .into())
                    }
                };
                enabled = Some(matches!(
                    d.get("enabled"),
                    Ok(Some(RawBsonRef::Boolean(true)))
                ));
                changed.insert(
                    k,
                    bson::Document::try_from(d)
                        .map_err(|e| CommandError::bad_value(e.to_string()))?,
                );
            }
            "validator" | "validationLevel" | "validationAction" | "index"
            | "expireAfterSeconds" | "viewOn" | "pipeline" | "timeseries" => {
                return Err(CommandError::not_implemented(format!("collMod with {k}")).into())
            }
            _ => {}
        }
    }
    let mut st = shared.lock();
    st.check_primary()?;
    let c = st.catalog.coll_mut(&cmd.db, &coll).ok_or_else(|| {
        CommandError::ns_not_found(format!("ns does not exist: {}.{coll}", cmd.db))
    })?;
    if c.is_view() || c.is_timeseries() {
        return Err(
            CommandError::not_implemented("collMod on views and time-series collections").into(),
        );
    }
    if let Some(on) = enabled {
        c.pre_post_images = on;
        c.options
            .insert("changeStreamPreAndPostImages", bson::doc! {"enabled": on});
    }
    let uuid = c.uuid;
    st.log(
        &cmd.db,
        &coll,
        Some(uuid),
        crate::oplog::OpKind::Modify { options: changed },
    );
    std::mem::drop(st);
    shared.notify_oplog();
    doc_body(Document::new())
}

pub fn drop(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let coll = cmd.collection()?;
    let mut st = shared.lock();
    st.check_primary()?;
    let n_idx = st
        .catalog
        .coll(&cmd.db, &coll)
        .map(|c| c.indexes.len() as i32 + 1);
    let dropped = st.drop_collection(&cmd.db, &coll);
    std::mem::drop(st);
    if dropped {
        shared.notify_oplog();
        doc_body(doc! {"nIndexesWas": n_idx.unwrap_or(1), "ns": format!("{}.{coll}", cmd.db)})
    } else {
        // mongod 7.0 reports success when the collection does not exist.
        doc_body(Document::new())
    }
}

pub fn drop_database(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    if matches!(cmd.db.as_str(), "admin" | "config" | "local") {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            format!("Dropping the '{}' database is prohibited.", cmd.db),
        )
        .into());
    }
    let mut st = shared.lock();
    st.check_primary()?;
    let dropped = st.drop_database(&cmd.db);
    std::mem::drop(st);
    shared.notify_oplog();
    if dropped {
        doc_body(doc! {"dropped": cmd.db.clone()})
    } else {
        doc_body(Document::new())
    }
}

fn split_ns(ns: &str) -> Result<(String, String), CommandError> {
    ns.split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| {
            CommandError::new(
                codes::INVALID_NAMESPACE,
                format!("Invalid namespace specified '{ns}'"),
            )
        })
}

pub fn rename_collection(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    if cmd.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "renameCollection may only be run against the admin database.",
        )
        .into());
    }
    let from = match cmd.get("renameCollection") {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => return Err(CommandError::type_mismatch("renameCollection must be a string").into()),
    };
    let to = match cmd.get("to") {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => return Err(CommandError::type_mismatch("'to' must be a string").into()),
    };
    let (fdb, fcoll) = split_ns(&from)?;
    let (tdb, tcoll) = split_ns(&to)?;
    if fdb != tdb {
        return Err(CommandError::not_implemented("renameCollection across databases").into());
    }
    let mut st = shared.lock();
    st.check_primary()?;
    st.rename_collection(&fdb, &fcoll, &tdb, &tcoll, cmd.bool_opt("dropTarget"))?;
    std::mem::drop(st);
    shared.notify_oplog();
    doc_body(Document::new())
}

pub fn stats(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let st = shared.lock();
    if cmd.name == "dbStats" {
        let (n, size, colls) = st
            .catalog
            .dbs
            .get(&cmd.db)
            .map(|d| {
                (
                    d.collections.values().map(|c| c.len() as i64).sum::<i64>(),
                    d.collections
                        .values()
                        .map(|c| c.data_size() as i64)
                        .sum::<i64>(),
                    d.collections.len() as i64,
                )
            })
            .unwrap_or((0, 0, 0));
        return doc_body(
            doc! {"db": cmd.db.clone(), "collections": colls, "objects": n, "dataSize": size as f64, "storageSize": size as f64},
        );
    }
    let coll = cmd.collection()?;
    let c = st.catalog.coll(&cmd.db, &coll).ok_or_else(|| {
        CommandError::ns_not_found(format!("Collection [{}.{coll}] not found.", cmd.db))
    })?;
    let n = c.len() as i64;
    let size = c.data_size() as i64;
    doc_body(
        doc! {"ns": format!("{}.{coll}", cmd.db), "count": n, "size": size, "avgObjSize": if n > 0 { size / n } else { 0 }, "storageSize": size, "nindexes": c.indexes.len() as i32 + 1},
    )
}
