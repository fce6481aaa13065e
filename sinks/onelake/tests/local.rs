//! The sink against a local landing zone, through the engine and through the library API; every
//! test asserts on the table the replicator (Fabric's rules) builds from the files.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use common::*;
use mirror_core::config::MirrorConfig;
use mirror_core::engine::Engine;
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::store::{LandingStore, LocalStore};
use mirror_onelake::{LandingZoneWriter, SinkError, WriterOptions};
use onelake_sim::TableStatus;

fn generator_settings(count: u64) -> String {
    format!(
        "count = {count}\nbatch_size = 250\ntables = [\"orders\", \"customers\"]\nschema = \"demo\"\n\
         update_ratio = 0.3\ndelete_ratio = 0.1\nnew_column_after = 1200\nseed = 3\n"
    )
}

fn pipeline(count: u64, lz: &std::path::Path, sink_extra: &str) -> MirrorConfig {
    let text = format!(
        "[sources.gen]\ntype = \"generator\"\n{}\n[sinks.lake]\ntype = \"onelake\"\ninputs = [\"gen\"]\n\
         landing_zone = \"{}\"\nmax_file_rows = 400\nflush_interval = \"50ms\"\n{sink_extra}\n",
        generator_settings(count),
        lz.display()
    );
    MirrorConfig::parse(&text, "test.toml").unwrap()
}

#[tokio::test]
async fn generator_through_the_engine_replicates_exactly_and_obeys_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let report = Engine::new(pipeline(2000, dir.path(), ""))
        .run()
        .await
        .unwrap();
    assert_eq!(report.sinks["lake"].rows, 2000);

    let files = assert_contract(dir.path());
    assert!(files.values().all(|n| n.len() >= 2), "{files:?}");
    let replicated = replicate_dir(dir.path());
    assert_replicated(
        &replicated,
        &generator_model(&generator_settings(2000)).await,
    );

    let orders = replicated.table("demo.schema/orders").unwrap();
    let types: Vec<(&str, &str)> = orders
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.delta_type.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("id", "long"),
            ("seq", "long"),
            ("name", "string"),
            ("quantity", "integer"),
            ("price", "double"),
            ("active", "boolean"),
            ("created_at", "timestamp"),
            ("day", "date"),
            ("amount", "decimal(18,2)"),
            ("payload", "binary"),
            ("note", "string"),
            ("extra", "string"),
        ]
    );
    assert!(orders.incremental);
    assert_eq!(orders.key_columns, ["id"]);
    let partner: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("_partnerEvents.json")).unwrap())
            .unwrap();
    assert_eq!(partner["partnerName"], "mirror");
    assert_eq!(partner["sourceInfo"]["sourceType"], "generator");
    // State lives in the landing zone: the engine used it as its checkpoint store.
    assert!(dir.path().join("_mirror_state/gen/source.json").exists());
    assert!(dir
        .path()
        .join("demo.schema/orders/_mirror_table.json")
        .exists());
}

#[tokio::test]
async fn a_second_run_resumes_and_continues_the_file_sequence() {
    let dir = tempfile::tempdir().unwrap();
    Engine::new(pipeline(1000, dir.path(), ""))
        .run()
        .await
        .unwrap();
    let first = assert_contract(dir.path());
    // Fabric moves processed files aside between the runs, keeping the last one.
    let mut fabric = onelake_sim::Replicator::new(Arc::new(onelake_sim::LocalDir::new(dir.path())));
    fabric.scan().unwrap();
    let report = Engine::new(pipeline(2500, dir.path(), ""))
        .run()
        .await
        .unwrap();
    assert_eq!(
        report.sources["gen"].rows, 1500,
        "resumed from the checkpoint"
    );
    let second = assert_contract(dir.path());
    for (folder, numbers) in &first {
        assert!(second[folder].len() > numbers.len(), "{folder} continued");
    }
    fabric.scan().unwrap();
    assert_replicated(&fabric, &generator_model(&generator_settings(2500)).await);
}

fn table(name: &str) -> Arc<Table> {
    Arc::new(Table::new(TableId::new(name), ["id"]))
}

fn rows(ids: &[i64], values: ArrayRef) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("v", values),
    ])
    .unwrap()
}

fn options() -> WriterOptions {
    WriterOptions {
        flush_interval: Duration::from_millis(20),
        ..WriterOptions::default()
    }
}

async fn open(dir: &std::path::Path, options: WriterOptions) -> LandingZoneWriter {
    let store: Arc<dyn LandingStore> = Arc::new(LocalStore::new(dir));
    LandingZoneWriter::open(store, options).await.unwrap()
}

#[tokio::test]
async fn a_column_type_change_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let mut lz = open(dir.path(), options()).await;
    lz.write_rows(
        &t,
        rows(&[1, 2], Arc::new(Int64Array::from(vec![10, 20]))),
        vec![RowOp::Insert; 2],
    )
    .await
    .unwrap();
    lz.flush().await.unwrap();
    // Narrower integers are widened to the recorded type.
    lz.write_rows(
        &t,
        rows(&[3], Arc::new(Int32Array::from(vec![30]))),
        vec![RowOp::Upsert],
    )
    .await
    .unwrap();
    lz.flush().await.unwrap();
    let err = lz
        .write_rows(
            &t,
            rows(&[4], Arc::new(StringArray::from(vec!["x"]))),
            vec![RowOp::Upsert],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Schema(_)), "{err}");
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("column `v` of table `t` was written as int64"),
        "{err}"
    );
    lz.close().await.unwrap();

    // The guard survives a restart: it is recorded in _mirror_table.json.
    let mut again = open(dir.path(), options()).await;
    let err = again
        .write_rows(
            &t,
            rows(&[5], Arc::new(StringArray::from(vec!["y"]))),
            vec![RowOp::Upsert],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Schema(_)), "{err}");
    again.close().await.unwrap();

    let r = replicate_dir(dir.path());
    let t = r.table("t").unwrap();
    assert_eq!(t.status, TableStatus::Replicating);
    assert_eq!(t.len(), 3);
    assert_eq!(t.column("v").unwrap().delta_type, "long");
}

#[tokio::test]
async fn files_are_cut_by_rows_bytes_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let mut lz = open(
        dir.path(),
        WriterOptions {
            max_file_rows: 100,
            flush_interval: Duration::from_millis(200),
            ..WriterOptions::default()
        },
    )
    .await;
    let ids: Vec<i64> = (0..250).collect();
    let values: ArrayRef = Arc::new(Int64Array::from(ids.clone()));
    lz.write_rows(&t, rows(&ids, values), vec![RowOp::Insert; 250])
        .await
        .unwrap();
    // Full files are cut on write and encoded in the background; the writer asks to be called
    // again soon (well before the partial file's 200 ms) to publish them, as the engine does.
    let deadline = lz.flush_deadline().expect("full files are being encoded");
    assert!(deadline <= tokio::time::Instant::now() + Duration::from_millis(100));
    while lz.stats().files < 2 {
        if let Some(deadline) = lz.flush_deadline() {
            tokio::time::sleep_until(deadline).await;
        }
        lz.publish_due().await.unwrap();
    }
    assert!(
        std::fs::read_dir(dir.path().join("t"))
            .unwrap()
            .any(|e| e.unwrap().file_name() == "00000000000000000002.parquet"),
        "full files are in the folder before any flush"
    );
    lz.flush().await.unwrap();
    assert_eq!(lz.stats().files, 3);
    assert_eq!(lz.stats().rows, 250);

    // A byte cap smaller than a batch splits it.
    let mut small = open(
        dir.path(),
        WriterOptions {
            max_file_bytes: 1024,
            ..WriterOptions::default()
        },
    )
    .await;
    let u = table("u");
    let ids: Vec<i64> = (0..1000).collect();
    small
        .write_rows(
            &u,
            rows(&ids, Arc::new(Int64Array::from(ids.clone()))),
            vec![RowOp::Upsert; 1000],
        )
        .await
        .unwrap();
    small.flush().await.unwrap();
    assert!(small.stats().files >= 10, "{:?}", small.stats().files);
    small.close().await.unwrap();
    lz.close().await.unwrap();

    let r = replicate_dir(dir.path());
    assert_eq!(r.table("t").unwrap().len(), 250);
    assert_eq!(r.table("u").unwrap().len(), 1000);
    assert_contract(dir.path());
}

/// What the engine does between batches: call `publish_due` when `flush_deadline` passes. A
/// partial file is published once its oldest row has waited `flush_interval`, not before, and
/// without a blocking `flush`.
#[tokio::test]
async fn due_files_are_published_at_their_deadline_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let interval = Duration::from_millis(300);
    let mut lz = open(
        dir.path(),
        WriterOptions {
            flush_interval: interval,
            ..WriterOptions::default()
        },
    )
    .await;
    let published = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("t"))
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let written = tokio::time::Instant::now();
    let ids: Vec<i64> = (0..10).collect();
    lz.write_rows(
        &t,
        rows(&ids, Arc::new(Int64Array::from(ids.clone()))),
        vec![RowOp::Insert; 10],
    )
    .await
    .unwrap();
    // Called early, it publishes nothing: the rows have not waited their interval.
    lz.publish_due().await.unwrap();
    assert_eq!(published(dir.path()), 0);
    // The engine's loop: wait for the deadline, then publish what is due.
    while lz.stats().files == 0 {
        let deadline = lz.flush_deadline().expect("rows are waiting");
        tokio::time::sleep_until(deadline).await;
        lz.publish_due().await.unwrap();
        assert!(written.elapsed() < interval * 10, "never published");
    }
    assert!(written.elapsed() >= interval);
    assert_eq!(published(dir.path()), 1);
    // Nothing is buffered or publishing: the next deadline is the lease's renewal, not a poll.
    assert!(lz
        .flush_deadline()
        .is_none_or(|d| d > tokio::time::Instant::now() + Duration::from_secs(5)));
    lz.close().await.unwrap();
    let r = replicate_dir(dir.path());
    assert_eq!(r.table("t").unwrap().len(), 10);
    assert_contract(dir.path());
}

#[tokio::test]
async fn marker_free_files_only_for_a_fresh_tables_initial_load() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let opts = WriterOptions {
        marker_free_initial_load: true,
        ..options()
    };
    let mut lz = open(dir.path(), opts.clone()).await;
    let ids: Vec<i64> = (0..10).collect();
    lz.write_rows(
        &t,
        rows(&ids, Arc::new(Int64Array::from(ids.clone()))),
        vec![RowOp::Insert; 10],
    )
    .await
    .unwrap();
    lz.flush().await.unwrap();
    lz.write_rows(
        &t,
        rows(&[3], Arc::new(Int64Array::from(vec![33]))),
        vec![RowOp::Update],
    )
    .await
    .unwrap();
    lz.flush().await.unwrap();
    lz.write_rows(
        &t,
        rows(&[11], Arc::new(Int64Array::from(vec![11]))),
        vec![RowOp::Insert],
    )
    .await
    .unwrap();
    lz.close().await.unwrap();
    // After a restart the table has files: even inserts carry markers (upserts: re-sent rows must
    // not duplicate).
    let mut again = open(dir.path(), opts).await;
    again
        .write_rows(
            &t,
            rows(&[0, 1], Arc::new(Int64Array::from(vec![0, 1]))),
            vec![RowOp::Insert; 2],
        )
        .await
        .unwrap();
    again.close().await.unwrap();

    let r = replicate_dir(dir.path());
    let t = r.table("t").unwrap();
    assert_eq!(t.status, TableStatus::Replicating);
    assert_eq!(
        t.rows_by_marker.get(&-1),
        Some(&10),
        "{:?}",
        t.rows_by_marker
    );
    assert_eq!(t.rows_by_marker.get(&1), Some(&1));
    assert_eq!(
        t.rows_by_marker.get(&4),
        Some(&3),
        "later inserts are written as upserts"
    );
    assert_eq!(t.len(), 11);
    assert!(t.duplicate_keys().is_empty());
}

#[tokio::test]
async fn a_crash_after_publish_continues_with_the_next_number_and_cleans_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let mut lz = open(dir.path(), options()).await;
    let ids: Vec<i64> = (0..5).collect();
    let batch = rows(&ids, Arc::new(Int64Array::from(ids.clone())));
    lz.write_rows(&t, batch.clone(), vec![RowOp::Insert; 5])
        .await
        .unwrap();
    lz.flush().await.unwrap();
    drop(lz); // crash: no close, no lease release, checkpoint never committed
    std::fs::write(
        dir.path()
            .join("t/_mirror_tmp_00000000000000000002_dead.parquet"),
        b"half",
    )
    .unwrap();

    let mut again = open(dir.path(), options()).await;
    // The engine re-sends the unacknowledged batch: it goes into file 2.
    again
        .write_rows(&t, batch, vec![RowOp::Insert; 5])
        .await
        .unwrap();
    again.close().await.unwrap();
    let numbers = assert_contract(dir.path());
    assert_eq!(numbers["t"], vec![1, 2]);
    let r = replicate_dir(dir.path());
    let table = r.table("t").unwrap();
    assert_eq!(table.len(), 5);
    assert!(table.duplicate_keys().is_empty());
}

#[tokio::test]
async fn a_second_writer_on_the_same_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let mut first = open(dir.path(), options()).await;
    first.declare_table(t.clone()).await.unwrap();
    let mut second = open(
        dir.path(),
        WriterOptions {
            name: "other".into(),
            ..options()
        },
    )
    .await;
    let err = second.declare_table(t.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is being written by another mirror"),
        "{text}"
    );
    assert!(text.contains("writer `mirror`"), "{text}");
    assert!(!err.is_transient());
    first.close().await.unwrap();
    // Released on close: now the second one may write.
    second.declare_table(t).await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test]
async fn two_tables_mapping_to_one_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut lz = open(dir.path(), options()).await;
    lz.declare_table(Arc::new(Table::new(TableId::new("a/b"), ["id"])))
        .await
        .unwrap();
    let err = lz
        .declare_table(Arc::new(Table::new(TableId::new("a:b"), ["id"])))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("would both be written to the landing-zone folder `a_b`"),
        "{err}"
    );
    lz.close().await.unwrap();
    // Also across runs: the folder remembers its table.
    let mut again = open(dir.path(), options()).await;
    let err = again
        .declare_table(Arc::new(Table::new(TableId::new("a?b"), ["id"])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`a/b` and `a?b`"), "{err}");
    again.close().await.unwrap();
}

#[tokio::test]
async fn key_columns_never_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut lz = open(dir.path(), options()).await;
    lz.declare_table(table("t")).await.unwrap();
    lz.close().await.unwrap();
    let mut again = open(dir.path(), options()).await;
    let err = again
        .declare_table(Arc::new(Table::new(TableId::new("t"), ["other"])))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::KeyChange { .. }), "{err}");
}

#[tokio::test]
async fn the_example_generator_config_obeys_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/configs/generator-local.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("landing_zone = \"./landing-zone\""));
    let text = text.replace(
        "landing_zone = \"./landing-zone\"",
        &format!("landing_zone = \"{}\"", dir.path().display()),
    );
    let config = MirrorConfig::parse(&text, "generator-local.toml").unwrap();
    let report = Engine::new(config).run().await.unwrap();
    assert_eq!(report.sinks["lake"].rows, 20000);
    let files = assert_contract(dir.path());
    assert_eq!(files.len(), 3);
    assert!(files.values().all(|n| n.len() >= 2), "{files:?}");
    // The generator settings of the example, as the model sees them.
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut gen = table["sources"]["gen"].as_table().unwrap().clone();
    gen.remove("type");
    let model = generator_model(&toml::to_string(&gen).unwrap()).await;
    let replicated = replicate_dir(dir.path());
    assert_replicated(&replicated, &model);
    for t in replicated.tables().values() {
        assert!(
            t.rows_by_marker.contains_key(&2),
            "{}: deletes included",
            t.path
        );
        assert!(
            t.column("extra").is_some(),
            "{}: schema growth included",
            t.path
        );
    }
}

#[tokio::test]
async fn a_keyless_table_takes_inserts_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Table::new(TableId::new("log"), Vec::<String>::new()));
    let mut lz = open(dir.path(), options()).await;
    let batch = || rows(&[1, 1], Arc::new(Int64Array::from(vec![1, 2])));
    lz.write_rows(&log, batch(), vec![RowOp::Insert; 2])
        .await
        .unwrap();
    lz.flush().await.unwrap();
    let err = lz
        .write_rows(&log, batch(), vec![RowOp::Insert, RowOp::Delete])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no key columns"), "{err}");
    assert!(!err.is_transient());
    lz.close().await.unwrap();
    let r = replicate_dir(dir.path());
    let t = r.table("log").unwrap();
    assert_eq!(
        t.len(),
        2,
        "both rows, same id: a keyless table keeps duplicates"
    );
    assert_eq!(
        t.rows_by_marker.get(&0),
        Some(&2),
        "inserts are written as 0 without keys"
    );
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_truncation_empties_the_table_and_later_rows_fill_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let mut lz = open(dir.path(), options()).await;
    // Fabric moves processed files aside as it goes, so there is a `_ProcessedFiles` to delete too.
    let mut fabric = onelake_sim::Replicator::new(Arc::new(onelake_sim::LocalDir::new(dir.path())));
    for part in 0..3i64 {
        let ids: Vec<i64> = (part * 10..part * 10 + 10).collect();
        lz.write_rows(
            &t,
            rows(&ids, Arc::new(Int64Array::from(ids.clone()))),
            vec![RowOp::Upsert; 10],
        )
        .await
        .unwrap();
        lz.flush().await.unwrap();
        fabric.scan().unwrap();
    }
    assert_eq!(fabric.table("t").unwrap().len(), 30);
    // Rows buffered before the truncation are published first (their batches acknowledged),
    // then the table is emptied.
    let ids = [100i64, 101];
    lz.write_rows(
        &t,
        rows(&ids, Arc::new(Int64Array::from(vec![1, 2]))),
        vec![RowOp::Upsert; 2],
    )
    .await
    .unwrap();
    lz.truncate(&t).await.unwrap();
    assert_eq!(lz.stats().files, 4);
    assert_eq!(
        files_in(&dir.path().join("t")),
        ["_metadata.json", "_mirror_lease.json", "_mirror_table.json"]
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("t/_mirror_table.json")).unwrap())
            .unwrap();
    assert_eq!(state["last_published"], 0);
    assert_eq!(state["columns"], serde_json::json!([]));
    fabric.scan().unwrap();
    let emptied = fabric.table("t").unwrap();
    assert!(emptied.is_empty(), "{} rows left", emptied.len());
    assert_eq!(
        (emptied.rebuilds, &emptied.status),
        (1, &TableStatus::Replicating)
    );

    // Truncating again is harmless (a re-sent truncation after a restart); so is truncating a
    // table that was never written, which creates nothing.
    lz.truncate(&t).await.unwrap();
    lz.truncate(&table("never")).await.unwrap();
    assert!(!dir.path().join("never").exists());

    // A new table: numbers start at 1, and a column may even take another type now.
    let ids = [5i64, 6, 7];
    let after = rows(&ids, Arc::new(StringArray::from(vec!["a", "b", "c"])));
    lz.write_rows(&t, after.clone(), vec![RowOp::Upsert; 3])
        .await
        .unwrap();
    lz.close().await.unwrap();
    fabric.scan().unwrap();
    let mut model = Model::default();
    model.apply_rows("t", &t.key_columns, &after, &[RowOp::Upsert; 3]);
    assert_replicated(&fabric, &model);
    assert_eq!(fabric.table("t").unwrap().last_applied, 1);
    assert!(
        !dir.path().join("_mirror_truncate").exists()
            || files_in(&dir.path().join("_mirror_truncate")).is_empty()
    );
    assert!(!dir.path().join("_mirror_trash").exists());
}

#[tokio::test]
async fn a_truncated_tables_checkpoint_is_kept_and_a_half_done_truncation_is_finished() {
    use mirror_core::checkpoint::CheckpointStore;
    use mirror_core::model::{Checkpoint, CheckpointState, Partition};
    use mirror_onelake::LandingZoneCheckpointStore;

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LandingStore> = Arc::new(LocalStore::new(dir.path()));
    let checkpoints = LandingZoneCheckpointStore::new(store.clone());
    let t = table("t");
    let state = CheckpointState::from_json(&serde_json::json!({"at": 7})).unwrap();
    let mut lz = open(dir.path(), options()).await;
    let ids = [1i64, 2];
    lz.write_rows(
        &t,
        rows(&ids, Arc::new(Int64Array::from(vec![1, 2]))),
        vec![RowOp::Upsert; 2],
    )
    .await
    .unwrap();
    lz.flush().await.unwrap();
    checkpoints
        .commit(
            "src",
            &Checkpoint::none().with(Partition::Table(t.id.clone()), state.clone()),
        )
        .await
        .unwrap();
    assert!(dir.path().join("t/_mirror_checkpoint.src.json").exists());

    // The folder is deleted and created again; the committed record stays.
    lz.truncate(&t).await.unwrap();
    assert_eq!(
        checkpoints.load("src").await.unwrap().table(&t.id),
        Some(&state)
    );
    lz.close().await.unwrap();

    // A crash right after the delete leaves the intent with its copy of the record, and no folder.
    let intent = dir.path().join("_mirror_truncate/t");
    std::fs::create_dir_all(&intent).unwrap();
    std::fs::copy(
        dir.path().join("t/_mirror_checkpoint.src.json"),
        intent.join("_mirror_checkpoint.src.json"),
    )
    .unwrap();
    std::fs::write(
        intent.join("intent.json"),
        serde_json::json!({
            "format": "mirror-truncate", "version": 1, "table": t.id, "folder": "t",
            "key_columns": ["id"], "started_at": "2026-01-01T00:00:00.000Z"
        })
        .to_string(),
    )
    .unwrap();
    std::fs::remove_dir_all(dir.path().join("t")).unwrap();
    // The engine loads checkpoints before the sink opens: the copy is found.
    let fresh = LandingZoneCheckpointStore::new(store.clone());
    assert_eq!(fresh.load("src").await.unwrap().table(&t.id), Some(&state));
    // Opening the landing zone finishes the truncation: an empty table with its record.
    let mut lz = open(dir.path(), options()).await;
    assert_eq!(
        files_in(&dir.path().join("t")),
        [
            "_metadata.json",
            "_mirror_checkpoint.src.json",
            "_mirror_table.json"
        ]
    );
    assert!(!intent.exists());
    assert_eq!(fresh.load("src").await.unwrap().table(&t.id), Some(&state));
    lz.truncate(&t).await.unwrap();
    lz.close().await.unwrap();
    let r = replicate_dir(dir.path());
    assert!(r.table("t").unwrap().is_empty());
}

/// With several files encoded at once, a slow file (wide rows) and the quick files cut after it
/// (rewriting the same keys) are published in the order they were cut, so the last write wins
/// in the replicated table, and every file's rows are in the file of its number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_encoded_at_once_publish_in_the_order_they_were_cut() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t");
    let n = 2_000usize;
    let mut lz = open(
        dir.path(),
        WriterOptions {
            max_file_rows: n,
            encode_concurrency: 4,
            ..WriterOptions::default()
        },
    )
    .await;
    let ids: Vec<i64> = (0..n as i64).collect();
    let mut model = Model::default();
    for round in 0..6 {
        // Round 0 is ~20 MB of text, the later rounds a few bytes per row.
        let width = if round == 0 { 10_000 } else { 1 };
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(
            ids.iter()
                .map(|i| format!("{round}:{i}:{}", "x".repeat(width))),
        ));
        let batch = rows(&ids, values);
        let ops = if round == 4 {
            vec![RowOp::Delete; n]
        } else {
            vec![RowOp::Upsert; n]
        };
        model.apply_rows("t", &["id".to_owned()], &batch, &ops);
        lz.write_rows(&t, batch, ops).await.unwrap();
    }
    lz.close().await.unwrap();
    assert_eq!(lz.stats().files, 6);

    let files = assert_contract(dir.path());
    assert_eq!(files["t"], (1..=6).collect::<Vec<u64>>());
    for seq in 1..=6u64 {
        let path = dir.path().join("t").join(format!("{seq:020}.parquet"));
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let v = batch
                .column_by_name("v")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for r in 0..batch.num_rows() {
                if v.is_valid(r) {
                    assert!(
                        v.value(r).starts_with(&format!("{}:", seq - 1)),
                        "file {seq} holds a row of another round"
                    );
                }
            }
        }
    }
    assert_replicated(&replicate_dir(dir.path()), &model);
}
