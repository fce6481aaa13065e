//! Shared test helpers: the expected table (a model fed with the same batches), the replicated
//! table (the simulator's replicator over the landing zone), and a landing-zone contract check.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use mirror_core::component::{SourceConfig, SourceContext, SourceItem};
use mirror_core::sources::generator::GeneratorConfig;
use mirror_core::{ChangeBatch, RowOp};
use onelake_sim::{LandingFiles, LocalDir, Replicator, Row, TableStatus, Value};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Expected tables: folder -> key -> row (NULL cells left out).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Model {
    pub tables: BTreeMap<String, BTreeMap<Vec<Value>, Row>>,
}

pub fn row_values(rows: &RecordBatch, i: usize) -> Row {
    let mut row = Row::new();
    for (c, field) in rows.schema().fields().iter().enumerate() {
        let v = Value::from_array(rows.column(c), i).expect("supported type");
        if v != Value::Null {
            row.insert(field.name().clone(), v);
        }
    }
    row
}

impl Model {
    /// Applies rows with whole-row semantics: deletes remove the key, everything else replaces it.
    pub fn apply_rows(&mut self, folder: &str, keys: &[String], rows: &RecordBatch, ops: &[RowOp]) {
        let table = self.tables.entry(folder.to_owned()).or_default();
        for (i, op) in ops.iter().enumerate() {
            let row = row_values(rows, i);
            let key: Vec<Value> = keys
                .iter()
                .map(|k| row.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            match op {
                RowOp::Delete => {
                    table.remove(&key);
                }
                _ => {
                    table.insert(key, row);
                }
            }
        }
    }

    pub fn apply(&mut self, batch: &ChangeBatch) {
        let folder = mirror_onelake::naming::table_folder(&batch.table().id).unwrap();
        self.apply_rows(
            &folder,
            &batch.table().key_columns,
            batch.rows(),
            batch.ops(),
        );
    }
}

/// Every batch the generator emits for `toml` settings.
pub async fn generator_batches(toml_text: &str) -> Vec<ChangeBatch> {
    let config: GeneratorConfig = toml::from_str(toml_text).unwrap();
    let mut source = config
        .build(SourceContext::standalone("gen", Default::default()))
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(item) = source.next().await.unwrap() {
        if let SourceItem::Batch(b) = item {
            out.push(b);
        }
    }
    out
}

pub async fn generator_model(toml_text: &str) -> Model {
    let mut model = Model::default();
    for b in generator_batches(toml_text).await {
        model.apply(&b);
    }
    model
}

/// Replicates `files` once (keeping processed files in place unless `move_aside`).
pub fn replicate(files: Arc<dyn LandingFiles>, move_aside: bool) -> Replicator {
    let mut r = Replicator::new(files);
    if !move_aside {
        r = r.keep_processed_files();
    }
    r.scan().unwrap();
    r
}

pub fn replicate_dir(dir: &Path) -> Replicator {
    replicate(Arc::new(LocalDir::new(dir)), false)
}

/// Asserts every replicated table equals the model, is healthy and has no duplicate key.
pub fn assert_replicated(replicator: &Replicator, model: &Model) {
    let got: BTreeSet<&String> = replicator.tables().keys().collect();
    let want: BTreeSet<&String> = model.tables.keys().collect();
    assert_eq!(got, want, "replicated tables");
    for (folder, expected) in &model.tables {
        let table = replicator.table(folder).unwrap();
        assert_eq!(table.status, TableStatus::Replicating, "{folder}");
        assert!(
            table.duplicate_keys().is_empty(),
            "{folder}: duplicate keys"
        );
        let actual: BTreeMap<Vec<Value>, Row> = table
            .rows()
            .into_iter()
            .map(|row| {
                let row: Row = row.into_iter().filter(|(_, v)| *v != Value::Null).collect();
                let key = table
                    .key_columns
                    .iter()
                    .map(|k| row.get(k).cloned().unwrap_or(Value::Null))
                    .collect();
                (key, row)
            })
            .collect();
        assert_eq!(actual.len(), expected.len(), "{folder}: row count");
        for (key, row) in expected {
            assert_eq!(actual.get(key), Some(row), "{folder}: row {key:?}");
        }
    }
}

/// Checks the landing-zone contract on a local landing zone; returns data files per table.
pub fn assert_contract(root: &Path) -> BTreeMap<String, Vec<u64>> {
    let partner: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("_partnerEvents.json")).unwrap()).unwrap();
    assert!(partner["partnerName"].is_string(), "{partner}");
    assert!(partner["sourceInfo"]["sourceType"].is_string(), "{partner}");
    assert!(
        partner["sourceInfo"]["sourceVersion"].is_string(),
        "{partner}"
    );
    let files = LocalDir::new(root);
    let mut folders = Vec::new();
    for e in files.list("").unwrap() {
        if !e.is_dir || e.name.starts_with('_') {
            continue;
        }
        if e.name.ends_with(".schema") {
            for t in files.list(&e.name).unwrap() {
                if t.is_dir && !t.name.starts_with('_') {
                    folders.push(format!("{}/{}", e.name, t.name));
                }
            }
        } else {
            folders.push(e.name);
        }
    }
    let mut out = BTreeMap::new();
    for folder in folders {
        let meta: serde_json::Value = serde_json::from_slice(
            &files
                .read(&format!("{folder}/_metadata.json"))
                .unwrap()
                .expect("_metadata.json"),
        )
        .unwrap();
        assert!(meta["keyColumns"].is_array(), "{folder}: {meta}");
        let mut numbers = Vec::new();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut paths = Vec::new();
        for e in files.list(&folder).unwrap() {
            if e.is_dir {
                if e.name == "_ProcessedFiles" {
                    for p in files.list(&format!("{folder}/_ProcessedFiles")).unwrap() {
                        paths.push(format!("{folder}/_ProcessedFiles/{}", p.name));
                    }
                }
                continue;
            }
            assert!(
                !e.name.starts_with("_mirror_tmp_"),
                "{folder}: temp file left: {}",
                e.name
            );
            if e.name.starts_with('_') {
                continue;
            }
            paths.push(format!("{folder}/{}", e.name));
        }
        for path in paths {
            let name = path.rsplit('/').next().unwrap().to_owned();
            let n = onelake_sim::replicator::sequence_number(&name)
                .unwrap_or_else(|| panic!("{path}: not a 20-digit data file name"));
            numbers.push(n);
            let bytes = files.read(&path).unwrap().unwrap();
            assert!(!bytes.is_empty(), "{path}: zero bytes");
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
            let schema = builder.schema().clone();
            for (i, f) in schema.fields().iter().enumerate() {
                if f.name() == "__rowMarker__" {
                    assert_eq!(i, schema.fields().len() - 1, "{path}: marker not last");
                    assert_eq!(f.data_type(), &arrow::datatypes::DataType::Int32, "{path}");
                    continue;
                }
                let t = onelake_sim::value::delta_type(f.data_type());
                let previous = types.entry(f.name().clone()).or_insert(t.clone());
                assert_eq!(previous, &t, "{path}: column {} changed type", f.name());
            }
        }
        numbers.sort_unstable();
        let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(
            numbers, expected,
            "{folder}: file numbers must be 1..=n without gaps"
        );
        out.insert(folder, numbers);
    }
    out
}
