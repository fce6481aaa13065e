//! The per-table converter: raw BSON documents straight into Arrow builders.
//!
//! Each field path gets a *slot* once (its mapping rule, its column, its child node when flattened);
//! documents are then walked element by element with the crate's raw BSON reader. Each slot
//! remembers which slot followed it in the last document (and each node which slot came first), so
//! documents with the usual field order resolve each field with one byte comparison instead of a
//! UTF-8 check and a hash lookup, and a missing or extra field costs one lookup, not the rest of the
//! document. Values go straight into the Arrow builders; only JSON columns and overflowing values
//! are rendered as text.
//!
//! A field without a column gets one the first time a non-null value shows up: its pinned type, or
//! the type inferred from the values at that path in this and the following documents of the batch
//! (up to the mapping's `sample_size`). [`BsonConverter::observe_sample`] does the same over a sample
//! before the first batch.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bson::raw::{RawBsonRef, RawDocument};
use mirror_core::mapping::{
    BatchBuilder, ColumnType, FieldPlan, FieldRule, Inference, JsonFlavor, Misfit, OverflowStats,
    TableMapping, TableSchemaState, Value,
};

use super::json::{with_bv, write_bv};
use super::key::encode_key_bv;
use super::reader::{check_document, key_str, Bv, Elements};
use super::values::{classify, kind_of};
use super::ConvertError;

/// One row to convert.
#[derive(Clone, Copy, Debug)]
pub enum RowInput<'a> {
    /// A whole document (insert, update, replace, upsert): every column is set.
    Document(&'a RawDocument),
    /// A deleted document's `_id`: the key is set, every other column is null.
    Delete(RawBsonRef<'a>),
}

const ROOT: usize = 0;

struct Node {
    /// The path of the sub-document this node reads (empty for the root).
    path: Vec<String>,
    by_key: HashMap<Box<str>, usize>,
    /// The slot of the first element of the last document seen here.
    first: Option<usize>,
}

impl Node {
    fn new(path: Vec<String>) -> Self {
        Self {
            path,
            by_key: HashMap::new(),
            first: None,
        }
    }
}

struct Slot {
    key: Box<str>,
    path: Vec<String>,
    dotted: Box<str>,
    plan: Option<FieldPlan>,
    column: Option<usize>,
    child: Option<usize>,
    /// The slot that followed this one in the last document.
    next: Option<usize>,
}

/// Converts one table's documents into Arrow batches with the table's full, stable column set.
pub struct BsonConverter {
    table: String,
    mapping: TableMapping,
    state: TableSchemaState,
    nodes: Vec<Node>,
    slots: Vec<Slot>,
    builder: BatchBuilder,
    stats: OverflowStats,
    key: String,
    has_key: bool,
    scratch: String,
    overflow_json: String,
    /// Fields the slot cache did not predict (resolved by a hash lookup).
    cache_misses: u64,
    /// Index of the row being converted in the current batch.
    row: usize,
    /// Kinds of values per slot in the rows `..window_end` of the current batch, counted once for
    /// all new fields (see `infer`).
    window: HashMap<usize, Inference>,
    window_end: usize,
}

impl BsonConverter {
    /// A converter for `table` (named in logs) with its mapping and its saved schema state
    /// ([`TableSchemaState::new`] for a new table).
    pub fn new(
        table: impl Into<String>,
        mapping: TableMapping,
        state: TableSchemaState,
    ) -> Result<Self, ConvertError> {
        let builder = BatchBuilder::new(&state, 1024)?;
        Ok(Self {
            table: table.into(),
            mapping,
            state,
            nodes: vec![Node::new(Vec::new())],
            slots: Vec::new(),
            builder,
            stats: OverflowStats::new(),
            key: String::new(),
            has_key: false,
            cache_misses: 0,
            row: 0,
            window: HashMap::new(),
            window_end: 0,
            scratch: String::new(),
            overflow_json: String::new(),
        })
    }

    /// The table's schema state: save it (as JSON) in the table's checkpoint with each batch.
    pub fn state(&self) -> &TableSchemaState {
        &self.state
    }

    /// The mapping in use.
    pub fn mapping(&self) -> &TableMapping {
        &self.mapping
    }

    /// The schema of the next batch (the table's current full column set).
    pub fn schema(&self) -> SchemaRef {
        self.state.arrow_schema()
    }

    /// Values sent to the overflow column so far, per field.
    pub fn overflow_stats(&self) -> &OverflowStats {
        &self.stats
    }

    /// Infers column types from a sample of documents (e.g. `$sample` or the first N) and adds the
    /// columns, in the order their fields first appear. Fields that already have a column keep it.
    pub fn observe_sample<'d>(
        &mut self,
        docs: impl IntoIterator<Item = &'d RawDocument>,
    ) -> Result<(), ConvertError> {
        let mut seen: HashMap<usize, Inference> = HashMap::new();
        let mut order = Vec::new();
        for doc in docs {
            check_document(doc.as_bytes())?;
            self.sample_walk(ROOT, doc.as_bytes(), &mut seen, &mut order)?;
        }
        for slot in order {
            if self.slots[slot].column.is_some() {
                continue;
            }
            let pinned = self.slots[slot].plan.as_ref().and_then(|p| p.pinned);
            if let Some(ty) = pinned.or_else(|| seen.get(&slot).and_then(Inference::infer)) {
                self.add_column(slot, ty)?;
            }
        }
        Ok(())
    }

    fn sample_walk(
        &mut self,
        node: usize,
        doc: &[u8],
        seen: &mut HashMap<usize, Inference>,
        order: &mut Vec<usize>,
    ) -> Result<(), ConvertError> {
        let mut prev = None;
        for item in Elements::new(doc) {
            let (key, value) = item?;
            if node == ROOT && key == b"_id" {
                continue;
            }
            let slot = self.lookup(node, prev, key)?;
            prev = Some(slot);
            let Some(plan) = &self.slots[slot].plan else {
                continue;
            };
            let (flatten, scalar) = (plan.flatten, plan.scalar);
            if let (Bv::Document(sub), true) = (value, flatten) {
                let child = self.child(slot);
                self.sample_walk(child, sub, seen, order)?;
                continue;
            }
            if !scalar {
                continue;
            }
            if let Some(kind) = kind_of(&value, flatten) {
                let inference = seen.entry(slot).or_insert_with(|| {
                    order.push(slot);
                    Inference::new()
                });
                inference.observe(kind);
            }
        }
        Ok(())
    }

    /// Converts whole documents (inserts, updates, replacements) into a batch.
    pub fn convert_documents(
        &mut self,
        docs: &[&RawDocument],
    ) -> Result<RecordBatch, ConvertError> {
        let rows: Vec<RowInput<'_>> = docs.iter().map(|d| RowInput::Document(d)).collect();
        self.convert(&rows)
    }

    /// Converts rows into a batch whose schema is the table's full column set after these rows
    /// (new fields add nullable columns to the state). On error the partial batch is dropped.
    pub fn convert(&mut self, rows: &[RowInput<'_>]) -> Result<RecordBatch, ConvertError> {
        match self.convert_rows(rows) {
            Ok(batch) => Ok(batch),
            Err(e) => {
                self.builder = BatchBuilder::new(&self.state, 1024)?;
                Err(e)
            }
        }
    }

    fn convert_rows(&mut self, rows: &[RowInput<'_>]) -> Result<RecordBatch, ConvertError> {
        self.window.clear();
        self.window_end = 0;
        for (i, row) in rows.iter().enumerate() {
            self.row = i;
            match row {
                RowInput::Delete(id) => {
                    with_bv(*id, |bv| encode_key_bv(&mut self.key, bv))?;
                    self.builder.begin_row();
                    self.builder.end_row(&self.key);
                }
                RowInput::Document(doc) => {
                    let bytes = doc.as_bytes();
                    check_document(bytes)?;
                    self.builder.begin_row();
                    self.has_key = false;
                    let end = rows.len().min(i + self.mapping.sample_size.max(1));
                    self.walk(ROOT, bytes, &rows[i..end])?;
                    if !self.has_key {
                        return Err(ConvertError::MissingId);
                    }
                    self.builder.end_row(&self.key);
                }
            }
        }
        Ok(self.builder.finish(&self.state)?)
    }

    fn walk(
        &mut self,
        node: usize,
        doc: &[u8],
        ahead: &[RowInput<'_>],
    ) -> Result<(), ConvertError> {
        let mut prev = None;
        for item in Elements::new(doc) {
            let (key, value) = item?;
            if node == ROOT && key == b"_id" {
                if self.has_key {
                    // A repeated `_id` (never stored by MongoDB): keep it rather than lose it.
                    self.overflow_json.clear();
                    write_bv(&mut self.overflow_json, value, JsonFlavor::Relaxed)?;
                    self.builder.add_overflow("_id", &self.overflow_json);
                } else {
                    encode_key_bv(&mut self.key, value)?;
                    self.has_key = true;
                }
                continue;
            }
            let slot = self.lookup(node, prev, key)?;
            prev = Some(slot);
            let Some(plan) = &self.slots[slot].plan else {
                continue;
            };
            let (flatten, scalar) = (plan.flatten, plan.scalar);
            if let (Bv::Document(sub), true) = (value, flatten) {
                if sub.len() == 5 {
                    // Flattening an empty document would leave no trace of it.
                    self.builder.add_overflow(&self.slots[slot].dotted, "{}");
                    continue;
                }
                let child = self.child(slot);
                self.walk(child, sub, ahead)?;
                continue;
            }
            if scalar {
                self.put(slot, value, ahead)?;
            }
        }
        Ok(())
    }

    #[inline]
    fn put(
        &mut self,
        slot: usize,
        value: Bv<'_>,
        ahead: &[RowInput<'_>],
    ) -> Result<(), ConvertError> {
        let is_null = matches!(value, Bv::Null | Bv::Undefined);
        let column = match self.slots[slot].column {
            Some(c) => c,
            None => {
                let pinned = self.slots[slot].plan.as_ref().and_then(|p| p.pinned);
                if is_null && pinned.is_none() {
                    // Null needs no column: missing and null read the same.
                    return Ok(());
                }
                match self.infer(slot, &value, ahead)? {
                    Some(ty) => self.add_column(slot, ty)?,
                    None => return Ok(()),
                }
            }
        };
        let ty = self.state.columns()[column].ty;
        let mut buf = [0u8; 36];
        let appended = if is_null {
            self.builder.append(column, Value::Null)
        } else if ty.is_json() {
            self.scratch.clear();
            write_bv(&mut self.scratch, value, self.mapping.json)?;
            self.builder.append(column, Value::Json(&self.scratch))
        } else {
            let v = classify(value, self.mapping.json, &mut buf, &mut self.scratch)?;
            self.builder.append(column, v)
        };
        if let Err(misfit) = appended {
            self.overflow(slot, column, value, misfit)?;
        }
        Ok(())
    }

    fn overflow(
        &mut self,
        slot: usize,
        column: usize,
        value: Bv<'_>,
        misfit: Misfit,
    ) -> Result<(), ConvertError> {
        self.overflow_json.clear();
        write_bv(&mut self.overflow_json, value, JsonFlavor::Relaxed)?;
        let dotted = &self.slots[slot].dotted;
        self.builder.add_overflow(dotted, &self.overflow_json);
        self.stats.record(
            &self.table,
            dotted,
            &self.state.columns()[column].name,
            misfit,
        );
        Ok(())
    }

    /// The type of a new column: pinned, or inferred from the values at its path in this and the
    /// following rows of the batch (`ahead`, up to `sample_size` rows).
    ///
    /// The rows ahead are walked once for every field without a column (not once per new field),
    /// so documents that keep bringing new fields cost one extra walk per row at most.
    fn infer(
        &mut self,
        slot: usize,
        current: &Bv<'_>,
        ahead: &[RowInput<'_>],
    ) -> Result<Option<ColumnType>, ConvertError> {
        let Some(plan) = self.slots[slot].plan.as_ref() else {
            return Ok(None);
        };
        if let Some(pinned) = plan.pinned {
            return Ok(Some(pinned));
        }
        let flatten = plan.flatten;
        if self.row >= self.window_end {
            let mut window = std::mem::take(&mut self.window);
            window.clear();
            let mut order = Vec::new();
            for row in ahead {
                if let RowInput::Document(doc) = row {
                    self.sample_walk(ROOT, doc.as_bytes(), &mut window, &mut order)?;
                }
            }
            self.window = window;
            self.window_end = self.row + ahead.len();
        }
        Ok(match self.window.get(&slot) {
            Some(inference) if inference.has_values() => inference.infer(),
            _ => {
                let mut inference = Inference::new();
                if let Some(kind) = kind_of(current, flatten) {
                    inference.observe(kind);
                }
                inference.infer()
            }
        })
    }

    fn add_column(&mut self, slot: usize, ty: ColumnType) -> Result<usize, ConvertError> {
        let s = &self.slots[slot];
        let name = s.plan.as_ref().map(|p| p.name.as_str()).unwrap_or_default();
        let column = self.state.add_column(s.path.clone(), name, ty);
        self.builder.sync_columns(&self.state)?;
        self.slots[slot].column = Some(column);
        Ok(column)
    }

    /// The slot of field `key` of `node`, coming after slot `prev` in the current document.
    #[inline(always)]
    fn lookup(
        &mut self,
        node: usize,
        prev: Option<usize>,
        key: &[u8],
    ) -> Result<usize, ConvertError> {
        let predicted = match prev {
            Some(p) => self.slots[p].next,
            None => self.nodes[node].first,
        };
        if let Some(s) = predicted {
            if same_key(self.slots[s].key.as_bytes(), key) {
                return Ok(s);
            }
        }
        self.lookup_miss(node, prev, key)
    }

    /// [`lookup`](Self::lookup) when the cache did not predict `key`: kept out of line so that
    /// the predicted case, once per field, is inlined without this one's stack frame.
    #[inline(never)]
    fn lookup_miss(
        &mut self,
        node: usize,
        prev: Option<usize>,
        key: &[u8],
    ) -> Result<usize, ConvertError> {
        self.cache_misses += 1;
        let key = key_str(key)?;
        let slot = match self.nodes[node].by_key.get(key) {
            Some(&s) => s,
            None => self.new_slot(node, key),
        };
        match prev {
            Some(p) => self.slots[p].next = Some(slot),
            None => self.nodes[node].first = Some(slot),
        }
        Ok(slot)
    }

    fn new_slot(&mut self, node: usize, key: &str) -> usize {
        let mut path = self.nodes[node].path.clone();
        path.push(key.to_owned());
        let plan = match self.mapping.field(&path) {
            FieldRule::Skip => None,
            FieldRule::Keep(plan) => Some(plan),
        };
        let slot = self.slots.len();
        self.slots.push(Slot {
            key: key.into(),
            dotted: path.join(".").into(),
            column: self.state.column_for(&path),
            path,
            plan,
            child: None,
            next: None,
        });
        self.nodes[node].by_key.insert(key.into(), slot);
        slot
    }

    fn child(&mut self, slot: usize) -> usize {
        if let Some(c) = self.slots[slot].child {
            return c;
        }
        let c = self.nodes.len();
        self.nodes.push(Node::new(self.slots[slot].path.clone()));
        self.slots[slot].child = Some(c);
        c
    }
}

/// `a == b` for field names, which are short: comparing (overlapping) words in line beats the call
/// to `memcmp` that `==` on slices becomes, and the byte loop that a plain loop becomes.
#[inline(always)]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    #[inline(always)]
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    }
    #[inline(always)]
    fn half(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_ne_bytes(w)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// The aggregation pipeline that reads a table's type-inference sample, following its mapping:
/// `[{$sample: {size: n}}]` for `sample = "random"`, `[{$limit: n}]` for `sample = "first"`; `None`
/// when `sample_size = 0`. Feed the documents to [`BsonConverter::observe_sample`].
pub fn sample_pipeline(mapping: &TableMapping) -> Option<Vec<bson::Document>> {
    let size = i64::try_from(mapping.sample_size).unwrap_or(i64::MAX);
    match (size, mapping.sample) {
        (0, _) => None,
        (n, mirror_core::mapping::SampleMethod::Random) => {
            Some(vec![bson::doc! { "$sample": { "size": n } }])
        }
        (n, mirror_core::mapping::SampleMethod::First) => Some(vec![bson::doc! { "$limit": n }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_core::mapping::SampleMethod;

    #[test]
    fn the_slot_cache_resolves_usual_documents_without_lookups() {
        let mut conv = BsonConverter::new(
            "t",
            TableMapping {
                flatten_depth: 1,
                ..TableMapping::default()
            },
            TableSchemaState::new(),
        )
        .unwrap();
        let full = bson::rawdoc! { "_id": 1, "a": 1, "b": { "x": 1, "y": 2 }, "c": "s" };
        let short = bson::rawdoc! { "_id": 2, "a": 1, "c": "s" };
        conv.convert_documents(&[&full]).unwrap();
        // First sight: a, b, b.x, b.y, c.
        assert_eq!(conv.cache_misses, 5);
        conv.convert_documents(&[&full, &full, &full]).unwrap();
        assert_eq!(conv.cache_misses, 5);
        // A missing field costs one lookup where the chain breaks, and one where it resumes.
        conv.convert_documents(&[&short]).unwrap();
        assert_eq!(conv.cache_misses, 6);
        conv.convert_documents(&[&full]).unwrap();
        assert_eq!(conv.cache_misses, 7);
    }

    #[test]
    fn keys_compare_like_slices() {
        let keys: Vec<Vec<u8>> = (0..20)
            .flat_map(|len| {
                let base: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
                let mut variants = vec![base.clone()];
                for at in 0..len {
                    let mut v = base.clone();
                    v[at] = b'Z';
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(same_key(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn a_converter_can_move_to_another_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<BsonConverter>();
    }

    #[test]
    fn sample_pipelines_follow_the_mapping() {
        let mut m = TableMapping::default();
        assert_eq!(
            sample_pipeline(&m),
            Some(vec![bson::doc! { "$sample": { "size": 1000i64 } }])
        );
        m.sample = SampleMethod::First;
        m.sample_size = 5;
        assert_eq!(
            sample_pipeline(&m),
            Some(vec![bson::doc! { "$limit": 5i64 }])
        );
        m.sample_size = 0;
        assert_eq!(sample_pipeline(&m), None);
    }
}
