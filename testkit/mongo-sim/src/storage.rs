//! The catalog and the documents: databases, collections (with UUIDs, options, kind), views and
//! time-series collections, documents in insertion (natural) order, and the unique `_id` index
//! kept in BSON comparison order.
//!
//! Storage knows nothing of the oplog: `ops` wraps these mutations with change events.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bson::{Document, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::error::{codes, CmdResult, CommandError};
use crate::ordering::OrderedBson;

/// A stored document, shared with cursors and oplog entries without copying.
pub type Doc = Arc<RawDocumentBuf>;

/// What a namespace is.
#[derive(Debug, Clone)]
pub enum CollKind {
    Collection,
    /// A view: `viewOn` and its pipeline.
    View {
        view_on: String,
        pipeline: Vec<Document>,
    },
    /// A time-series collection (the view-like namespace users see).
    Timeseries,
}

#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    pub uuid: [u8; 16],
    pub kind: CollKind,
    /// The options given to `create` (as listCollections shows them).
    pub options: Document,
    /// `changeStreamPreAndPostImages: {enabled: true}`.
    pub pre_post_images: bool,
    /// Secondary index specifications (metadata only: queries never need them).
    pub indexes: Vec<Document>,
    docs: BTreeMap<u64, Doc>,
    /// `(_id, record id)`: unique on `_id` for collections, not for time-series collections,
    /// which mongod stores in buckets without a unique `_id` index.
    id_index: std::collections::BTreeSet<(OrderedBson, u64)>,
    next_record: u64,
    data_size: usize,
}

impl Collection {
    pub fn new(name: &str, kind: CollKind, options: Document) -> Self {
        let pre_post_images = options
            .get_document("changeStreamPreAndPostImages")
            .ok()
            .and_then(|d| d.get_bool("enabled").ok())
            .unwrap_or(false);
        Collection {
            name: name.to_string(),
            uuid: rand::random(),
            kind,
            options,
            pre_post_images,
            indexes: Vec::new(),
            docs: BTreeMap::new(),
            id_index: std::collections::BTreeSet::new(),
            next_record: 1,
            data_size: 0,
        }
    }

    pub fn is_view(&self) -> bool {
        matches!(self.kind, CollKind::View { .. })
    }

    pub fn is_timeseries(&self) -> bool {
        matches!(self.kind, CollKind::Timeseries)
    }

    pub fn uuid_bson(&self) -> bson::Binary {
        bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: self.uuid.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    fn id_entries(&self, key: &OrderedBson) -> impl Iterator<Item = u64> + '_ {
        self.id_index
            .range((key.clone(), 0)..=(key.clone(), u64::MAX))
            .map(|(_, rid)| *rid)
    }

    /// Inserts a document that already has an `_id`. Fails with DuplicateKey (11000), except in
    /// a time-series collection (its `_id`s need not be unique).
    pub fn insert(&mut self, db: &str, doc: Doc) -> CmdResult<()> {
        let id = id_of(&doc)?;
        let key = OrderedBson(id);
        if !self.is_timeseries() && self.id_entries(&key).next().is_some() {
            return Err(duplicate_key(db, &self.name, &key.0));
        }
        let rid = self.next_record;
        self.next_record += 1;
        self.data_size += doc.as_bytes().len();
        self.id_index.insert((key, rid));
        self.docs.insert(rid, doc);
        Ok(())
    }

    /// Replaces the document stored under `rid` (its `_id` must not change).
    pub fn replace_at(&mut self, rid: u64, doc: Doc) {
        if let Some(old) = self.docs.insert(rid, doc.clone()) {
            self.data_size -= old.as_bytes().len();
        }
        self.data_size += doc.as_bytes().len();
    }

    pub fn remove_at(&mut self, rid: u64) -> Option<Doc> {
        let doc = self.docs.remove(&rid)?;
        self.data_size -= doc.as_bytes().len();
        if let Ok(id) = id_of(&doc) {
            self.id_index.remove(&(OrderedBson(id), rid));
        }
        Some(doc)
    }

    pub fn get(&self, rid: u64) -> Option<&Doc> {
        self.docs.get(&rid)
    }

    pub fn find_id(&self, id: &RawBson) -> Option<(u64, &Doc)> {
        let rid = self.id_entries(&OrderedBson(id.clone())).next()?;
        self.docs.get(&rid).map(|d| (rid, d))
    }

    /// Documents in natural order starting at record id `from`.
    pub fn natural_from(&self, from: u64) -> impl Iterator<Item = (u64, &Doc)> {
        self.docs.range(from..).map(|(k, v)| (*k, v))
    }

    /// Documents in natural order, newest first, starting at record id `from` (inclusive).
    pub fn natural_rev_from(&self, from: u64) -> impl Iterator<Item = (u64, &Doc)> {
        self.docs.range(..=from).rev().map(|(k, v)| (*k, v))
    }

    /// `_id` index entries in `[lower, upper)` order (ascending) or descending.
    pub fn id_range<'a>(
        &'a self,
        lower: Bound<&OrderedBson>,
        upper: Bound<&OrderedBson>,
        ascending: bool,
    ) -> Box<dyn Iterator<Item = (&'a OrderedBson, u64, &'a Doc)> + 'a> {
        // BTreeMap::range panics on inverted bounds: they select nothing.
        let empty = match (lower, upper) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a > b
                    || (a == b
                        && !matches!((lower, upper), (Bound::Included(_), Bound::Included(_))))
            }
            _ => false,
        };
        if empty {
            return Box::new(std::iter::empty());
        }
        let lower = match lower {
            Bound::Included(k) => Bound::Included((k.clone(), 0)),
            Bound::Excluded(k) => Bound::Excluded((k.clone(), u64::MAX)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper = match upper {
            Bound::Included(k) => Bound::Included((k.clone(), u64::MAX)),
            Bound::Excluded(k) => Bound::Excluded((k.clone(), 0)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let range = self.id_index.range((lower, upper));
        let map = move |(k, rid): &'a (OrderedBson, u64)| self.docs.get(rid).map(|d| (k, *rid, d));
        if ascending {
            Box::new(range.filter_map(map))
        } else {
            Box::new(range.rev().filter_map(map))
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Doc> {
        self.docs.values()
    }

    pub fn clear(&mut self) {
        self.docs.clear();
        self.id_index.clear();
        self.data_size = 0;
    }
}

pub fn id_of(doc: &RawDocument) -> CmdResult<RawBson> {
    match doc.get("_id") {
        Ok(Some(v)) => Ok(v.to_raw_bson()),
        _ => Err(CommandError::new(
            codes::INTERNAL_ERROR,
            "document has no _id",
        )),
    }
}

pub fn duplicate_key(db: &str, coll: &str, id: &RawBson) -> CommandError {
    let shown = bson::Bson::try_from(id.clone())
        .map(|b| b.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut e = CommandError::new(
        codes::DUPLICATE_KEY,
        format!(
            "E11000 duplicate key error collection: {db}.{coll} index: _id_ dup key: {{ _id: {shown} }}"
        ),
    );
    let id_bson = bson::Bson::try_from(id.clone()).unwrap_or(bson::Bson::Null);
    e.extra.insert("keyPattern", bson::doc! {"_id": 1});
    e.extra.insert("keyValue", bson::doc! {"_id": id_bson});
    e
}

#[derive(Debug, Clone, Default)]
pub struct Database {
    pub collections: BTreeMap<String, Collection>,
}

/// All databases.
#[derive(Debug, Default)]
pub struct Catalog {
    pub dbs: BTreeMap<String, Database>,
}

/// Checks a database name as mongod does (`DatabaseName::validDBName`).
pub fn check_db_name(db: &str) -> CmdResult<()> {
    if db.is_empty() || db.len() >= 64 || db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
        return Err(CommandError::new(
            codes::INVALID_NAMESPACE,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

/// Checks a collection name as mongod does (`NamespaceString::validCollectionName`).
pub fn check_coll_name(db: &str, coll: &str) -> CmdResult<()> {
    if coll.is_empty() || coll.contains('\0') || coll.starts_with('.') || coll.contains('$') {
        return Err(CommandError::new(
            codes::INVALID_NAMESPACE,
            format!("Invalid collection name: {db}.{coll}"),
        ));
    }
    Ok(())
}

impl Catalog {
    pub fn coll(&self, db: &str, coll: &str) -> Option<&Collection> {
        self.dbs.get(db)?.collections.get(coll)
    }

    pub fn coll_mut(&mut self, db: &str, coll: &str) -> Option<&mut Collection> {
        self.dbs.get_mut(db)?.collections.get_mut(coll)
    }

    /// Creates a collection (or view / time-series). Fails with NamespaceExists (48).
    pub fn create(
        &mut self,
        db: &str,
        coll: &str,
        kind: CollKind,
        options: Document,
    ) -> CmdResult<&mut Collection> {
        check_db_name(db)?;
        check_coll_name(db, coll)?;
        let database = self.dbs.entry(db.to_string()).or_default();
        if let Some(existing) = database.collections.get(coll) {
            let what = if existing.is_view() {
                "view"
            } else {
                "collection"
            };
            return Err(CommandError::new(
                codes::NAMESPACE_EXISTS,
                format!("{what} {db}.{coll} already exists"),
            ));
        }
        if let CollKind::View { view_on, pipeline } = &kind {
            // mongod keeps view definitions in `<db>.system.views`.
            let views = database
                .collections
                .entry("system.views".to_string())
                .or_insert_with(|| {
                    Collection::new("system.views", CollKind::Collection, Document::new())
                });
            let def = bson::doc! {"_id": format!("{db}.{coll}"), "viewOn": view_on.clone(), "pipeline": pipeline.clone()};
            if let Ok(raw) = RawDocumentBuf::from_document(&def) {
                views.insert(db, Arc::new(raw))?;
            }
        }
        if matches!(kind, CollKind::Timeseries) {
            // mongod stores a time-series collection's data in a bucket collection.
            let buckets = format!("system.buckets.{coll}");
            database
                .collections
                .entry(buckets.clone())
                .or_insert_with(|| {
                    Collection::new(&buckets, CollKind::Collection, Document::new())
                });
        }
        Ok(database
            .collections
            .entry(coll.to_string())
            .or_insert_with(|| Collection::new(coll, kind, options)))
    }

    /// The collection to write into, created implicitly as mongod does on first insert.
    pub fn coll_for_write(&mut self, db: &str, coll: &str) -> CmdResult<(&mut Collection, bool)> {
        let exists = self.coll(db, coll).is_some();
        if !exists {
            self.create(db, coll, CollKind::Collection, Document::new())?;
        }
        let c = self
            .coll_mut(db, coll)
            .ok_or_else(|| CommandError::new(codes::INTERNAL_ERROR, "collection vanished"))?;
        if c.is_view() {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
        Ok((c, !exists))
    }
}

/// Reads `_id`-free helpers for the test API: raw documents in natural order.
pub fn docs_of(c: &Collection) -> Vec<RawDocumentBuf> {
    c.all().map(|d| (**d).clone()).collect()
}

/// The deepest nesting of a document, as mongod counts it for storage: top-level fields are at
/// depth 1, and each non-empty object or array one level more (empty ones do not count:
/// `validateDepth` in `src/mongo/db/ops/insert.cpp`, `storage_validation.cpp`).
pub fn nesting_depth(doc: &RawDocument) -> usize {
    // Iterative: a hostile document can nest far deeper than the stack would take.
    let mut max = 0;
    let mut stack: Vec<(Vec<RawBsonRef<'_>>, usize)> = vec![(
        doc.iter().filter_map(|r| r.ok().map(|(_, v)| v)).collect(),
        1,
    )];
    while let Some((items, depth)) = stack.pop() {
        if !items.is_empty() {
            max = max.max(depth);
        }
        for v in items {
            match v {
                RawBsonRef::Document(d) => stack.push((
                    d.iter().filter_map(|r| r.ok().map(|(_, v)| v)).collect(),
                    depth + 1,
                )),
                RawBsonRef::Array(a) => {
                    stack.push((a.into_iter().filter_map(Result::ok).collect(), depth + 1))
                }
                _ => {}
            }
        }
    }
    max
}

/// The deepest nesting mongod stores: `BSONDepth::getMaxDepthForUserStorage()`, the default
/// `maxBSONDepth` (200) less the 20 levels kept for the system.
pub const MAX_USER_DEPTH: usize = 180;

/// `Overflow` (15) when `doc` nests deeper than [`MAX_USER_DEPTH`]; `message` is mongod's text
/// for the operation, given the limit.
pub fn check_depth(doc: &RawDocument, message: impl FnOnce(usize) -> String) -> CmdResult<()> {
    if nesting_depth(doc) > MAX_USER_DEPTH {
        return Err(CommandError::new(codes::OVERFLOW, message(MAX_USER_DEPTH)));
    }
    Ok(())
}

/// mongod's `storageValidIdField` (`storage_validation.cpp`): no regex, array or undefined `_id`,
/// and no `$`-prefixed field anywhere inside an object `_id` (except a DBRef's `$ref`, `$id` and
/// `$db`).
pub fn check_id_value(v: &RawBsonRef<'_>) -> CmdResult<()> {
    fn dollar_field(d: &RawDocument) -> Option<String> {
        for (k, v) in d.iter().flatten() {
            if k.starts_with('$') && !matches!(k, "$ref" | "$id" | "$db") {
                return Some(k.to_owned());
            }
            let inner = match v {
                RawBsonRef::Document(sub) => dollar_field(sub),
                RawBsonRef::Array(a) => a.into_iter().flatten().find_map(|e| match e {
                    RawBsonRef::Document(sub) => dollar_field(sub),
                    _ => None,
                }),
                _ => None,
            };
            if inner.is_some() {
                return inner;
            }
        }
        None
    }
    if let RawBsonRef::Document(d) = v {
        if let Some(k) = dollar_field(d) {
            return Err(CommandError::new(
                codes::DOLLAR_PREFIXED_FIELD_NAME,
                format!(
                    "_id fields may not contain '$'-prefixed fields: {k} is not valid for storage."
                ),
            ));
        }
    }
    check_id_type(v)
}

fn check_id_type(v: &RawBsonRef<'_>) -> CmdResult<()> {
    match v {
        RawBsonRef::Array(_) => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "The '_id' value cannot be of type array",
        )),
        RawBsonRef::RegularExpression(_) => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "The '_id' value cannot be of type regex",
        )),
        RawBsonRef::Undefined => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "The '_id' value cannot be of type undefined",
        )),
        _ => Ok(()),
    }
}
