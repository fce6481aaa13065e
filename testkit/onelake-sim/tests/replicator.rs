//! The replicator against hand-made landing zones: each Fabric rule, checked on its own.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray};
use onelake_sim::{LocalDir, Replicator, TableStatus, Value};
use parquet::arrow::ArrowWriter;

fn parquet(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.into_inner().unwrap()
}

fn ids(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn names(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn markers(v: &[i32]) -> ArrayRef {
    Arc::new(Int32Array::from(v.to_vec()))
}

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn metadata(root: &Path, table: &str, keys: &[&str]) {
    put(
        root,
        &format!("{table}/_metadata.json"),
        serde_json::json!({ "keyColumns": keys })
            .to_string()
            .as_bytes(),
    );
}

fn file(n: u64) -> String {
    format!("{n:020}.parquet")
}

fn replicator(root: &Path) -> Replicator {
    Replicator::new(Arc::new(LocalDir::new(root)))
}

fn key(i: i64) -> Vec<Value> {
    vec![Value::Int(i)]
}

#[test]
fn files_apply_in_order_with_the_row_marker_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    // An initial load without markers: inserts.
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![
            ("id", ids(&[1, 2, 3])),
            ("name", names(&[Some("a"), Some("b"), Some("c")])),
        ]),
    );
    // update 2, upsert 4 (absent: insert), delete 1, insert 3 again (no duplicate check),
    // delete 99 (absent: no-op), update 5 (absent: insert).
    put(
        root,
        &format!("t/{}", file(2)),
        &parquet(vec![
            ("id", ids(&[2, 4, 1, 3, 99, 5])),
            (
                "name",
                names(&[Some("B"), Some("d"), None, Some("c2"), None, Some("e")]),
            ),
            ("__rowMarker__", markers(&[1, 4, 2, 0, 2, 1])),
        ]),
    );
    // A file without `name`: NULL in its rows; a new column `extra` is added.
    put(
        root,
        &format!("t/{}", file(3)),
        &parquet(vec![
            ("id", ids(&[4])),
            ("extra", names(&[Some("x")])),
            ("__rowMarker__", markers(&[4])),
        ]),
    );
    let mut r = replicator(root);
    let report = r.scan().unwrap();
    assert_eq!(report.applied.len(), 3);
    let t = r.table("t").unwrap();
    assert_eq!(t.status, TableStatus::Replicating);
    assert!(t.incremental);
    assert_eq!(t.rows_with_key(&key(1)), vec![]);
    assert_eq!(t.rows_with_key(&key(2))[0]["name"], Value::Str("B".into()));
    assert_eq!(
        t.rows_with_key(&key(3)).len(),
        2,
        "insert marker does not dedupe"
    );
    assert_eq!(t.duplicate_keys(), vec![key(3)]);
    let four = &t.rows_with_key(&key(4))[0];
    assert_eq!(four.get("name"), None, "replaced by a row without name");
    assert_eq!(four["extra"], Value::Str("x".into()));
    assert_eq!(t.rows_with_key(&key(5)).len(), 1);
    assert!(t.rows_with_key(&key(99)).is_empty());
    assert_eq!(t.len(), 5);
    let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["id", "name", "extra"]);
    // Every row has every column, NULL where a file lacked it.
    assert!(t.rows().iter().all(|row| row.len() == 3));
}

#[test]
fn a_gap_stalls_the_table_until_the_missing_file_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    let one = parquet(vec![("id", ids(&[1])), ("__rowMarker__", markers(&[4]))]);
    put(root, &format!("t/{}", file(1)), &one);
    put(
        root,
        &format!("t/{}", file(3)),
        &parquet(vec![("id", ids(&[3])), ("__rowMarker__", markers(&[4]))]),
    );
    let mut r = replicator(root);
    r.scan().unwrap();
    let t = r.table("t").unwrap();
    assert!(
        matches!(&t.status, TableStatus::Stalled { file, .. } if *file == self::file(2)),
        "{:?}",
        t.status
    );
    assert_eq!(t.len(), 1);
    put(
        root,
        &format!("t/{}", file(2)),
        &parquet(vec![("id", ids(&[2])), ("__rowMarker__", markers(&[4]))]),
    );
    r.scan().unwrap();
    let t = r.table("t").unwrap();
    assert_eq!(t.status, TableStatus::Replicating);
    assert_eq!((t.len(), t.last_applied), (3, 3));
}

#[test]
fn zero_byte_and_corrupt_files_stall_until_a_valid_file_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    put(root, &format!("t/{}", file(1)), b"");
    let mut r = replicator(root);
    r.scan().unwrap();
    assert!(
        matches!(&r.table("t").unwrap().status, TableStatus::Stalled { reason, .. } if reason.contains("zero-byte"))
    );
    put(root, &format!("t/{}", file(1)), b"PAR1 not really");
    r.scan().unwrap();
    assert!(
        matches!(&r.table("t").unwrap().status, TableStatus::Stalled { reason, .. } if reason.contains("not a valid Parquet"))
    );
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("id", ids(&[1]))]),
    );
    r.scan().unwrap();
    assert_eq!(r.table("t").unwrap().status, TableStatus::Replicating);
    assert_eq!(r.table("t").unwrap().len(), 1);
}

#[test]
fn a_column_type_change_fails_the_table_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("id", ids(&[1])), ("v", names(&[Some("a")]))]),
    );
    // Utf8 and LargeUtf8 are one type (string) to Fabric.
    put(
        root,
        &format!("t/{}", file(2)),
        &parquet(vec![
            ("id", ids(&[2])),
            ("v", Arc::new(LargeStringArray::from(vec!["b"])) as ArrayRef),
            ("__rowMarker__", markers(&[4])),
        ]),
    );
    put(
        root,
        &format!("t/{}", file(3)),
        &parquet(vec![
            ("id", ids(&[3])),
            ("v", ids(&[3])),
            ("__rowMarker__", markers(&[4])),
        ]),
    );
    let mut r = replicator(root);
    r.scan().unwrap();
    let t = r.table("t").unwrap();
    assert!(
        matches!(&t.status, TableStatus::Failed { reason } if reason.contains("column v changed type from string to long")),
        "{:?}",
        t.status
    );
    assert_eq!(t.len(), 2, "the refused file applied nothing");
    put(
        root,
        &format!("t/{}", file(4)),
        &parquet(vec![("id", ids(&[4])), ("__rowMarker__", markers(&[4]))]),
    );
    r.scan().unwrap();
    assert_eq!(
        r.table("t").unwrap().last_applied,
        2,
        "a failed table stays failed"
    );
}

#[test]
fn the_marker_must_be_the_last_column_and_a_known_value() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("__rowMarker__", markers(&[4])), ("id", ids(&[1]))]),
    );
    metadata(root, "u", &["id"]);
    put(
        root,
        &format!("u/{}", file(1)),
        &parquet(vec![("id", ids(&[1])), ("__rowMarker__", markers(&[3]))]),
    );
    let mut r = replicator(root);
    r.scan().unwrap();
    assert!(
        matches!(&r.table("t").unwrap().status, TableStatus::Stalled { reason, .. } if reason.contains("must be the last column"))
    );
    assert!(
        matches!(&r.table("u").unwrap().status, TableStatus::Stalled { reason, .. } if reason.contains("not 0, 1, 2 or 4"))
    );
}

#[test]
fn processed_files_move_aside_and_the_last_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "s.schema/t", &["id"]);
    for n in 1..=3 {
        put(
            root,
            &format!("s.schema/t/{}", file(n)),
            &parquet(vec![
                ("id", ids(&[n as i64])),
                ("__rowMarker__", markers(&[4])),
            ]),
        );
    }
    let mut r = replicator(root);
    r.scan().unwrap();
    assert_eq!(r.table("s.schema/t").unwrap().len(), 3);
    let left: Vec<String> = std::fs::read_dir(root.join("s.schema/t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(left, vec![file(3)]);
    assert!(root
        .join("s.schema/t/_ProcessedFiles")
        .join(file(1))
        .exists());
}

#[test]
fn discovery_ignores_underscore_names_and_waits_for_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        &format!("_scratchPad/{}", file(1)),
        &parquet(vec![("id", ids(&[1]))]),
    );
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("id", ids(&[1]))]),
    );
    put(root, &format!("t/_mirror_tmp_{}", file(2)), b"garbage");
    let mut r = replicator(root);
    r.scan().unwrap();
    assert_eq!(r.tables().keys().collect::<Vec<_>>(), vec!["t"]);
    assert_eq!(
        r.table("t").unwrap().status,
        TableStatus::WaitingForMetadata
    );
    metadata(root, "t", &["id"]);
    r.scan().unwrap();
    assert_eq!(r.table("t").unwrap().status, TableStatus::Replicating);
    // Keys can be added but never changed.
    metadata(root, "t", &["other"]);
    r.scan().unwrap();
    assert!(
        matches!(&r.table("t").unwrap().status, TableStatus::Failed { reason } if reason.contains("keyColumns changed"))
    );
}

#[test]
fn rewriting_an_applied_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    metadata(root, "t", &["id"]);
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("id", ids(&[1]))]),
    );
    let mut r = Replicator::new(Arc::new(LocalDir::new(root))).keep_processed_files();
    r.scan().unwrap();
    put(
        root,
        &format!("t/{}", file(1)),
        &parquet(vec![("id", ids(&[2]))]),
    );
    r.scan().unwrap();
    assert!(
        matches!(&r.table("t").unwrap().status, TableStatus::Failed { reason } if reason.contains("overwritten"))
    );
}
