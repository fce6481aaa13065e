//! The MongoDB source under faults (issue 6): each test starts mongo-sim, runs the engine (the
//! `mongodb` source into the `onelake` sink on a local landing zone), injects faults while writes go
//! on, and waits until the table Fabric would build equals the collection, row for row (`_id` keys
//! and the `v` every write bumps).

#[path = "common/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, RawDocumentBuf};
use harness::*;
use mirror_core::TableId;
use mirror_mongodb::state::Phase;
use mirror_mongodb::token::{ts_from_key, ts_key};
use mirror_onelake::store::LocalStore;
use mirror_onelake::LandingZoneCheckpointStore;

/// Longest wait for a table to catch up.
const T: Duration = Duration::from_secs(30);

fn bump(h: &Harness, coll: &str, ids: impl IntoIterator<Item = i64>) {
    for id in ids {
        h.sim
            .update_one(DB, coll, doc! {"_id": id}, doc! {"$inc": {"v": 1}})
            .unwrap();
    }
}

/// A round of writes: updates, a delete, an insert.
fn churn(h: &Harness, coll: &str, round: i64) {
    bump(h, coll, round * 7..round * 7 + 20);
    h.sim
        .delete_one(DB, coll, doc! {"_id": round * 13 + 3})
        .unwrap();
    h.sim
        .insert(DB, coll, item(100_000 + round, round))
        .unwrap();
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Waits until the table of `coll` has some rows (the copy is under way).
async fn copy_started(h: &Harness, coll: &str) {
    h.wait_for("the copy to start", T, |h| {
        h.replicated(coll).is_some_and(|t| !t.is_empty())
    })
    .await;
}

async fn wait_primary(h: &Harness) {
    h.wait_for("a primary again", T, |h| h.sim.is_primary())
        .await;
}

/// Waits until the committed stream position is at or past cluster time `at`.
async fn committed_past(h: &Harness, at: u64) {
    let deadline = tokio::time::Instant::now() + T;
    while h.stream_time().await.is_none_or(|t| t < at) {
        assert!(!h.ended(), "the engine ended");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream position never passed {at}"
        );
        sleep_ms(50).await;
    }
}

async fn empty(h: &Harness, coll: &str) {
    h.wait_for(&format!("{coll} emptied"), T, |h| {
        h.replicated(coll).is_some_and(|t| t.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_sync_survives_connections_closed_during_find() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..1500);
    // The first six finds lose their connection. The driver retries a find once, so readers see
    // the failures too and read again from their last `_id`.
    h.fail_command(&["find"], 6, doc! {"closeConnection": true});
    h.run("");
    for round in 0..5 {
        churn(&h, "orders", round);
        sleep_ms(100).await;
    }
    h.wait_equal("orders", T).await;
    assert_eq!(
        h.fail_point_left("failCommand").await,
        0,
        "every fault fired"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_survives_connections_closed_during_get_more() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..200);
    h.run("");
    h.wait_equal("orders", T).await;
    h.fail_command(&["getMore"], 3, doc! {"closeConnection": true});
    for round in 0..6 {
        churn(&h, "orders", round);
        sleep_ms(100).await;
    }
    h.sim.drop_connections();
    for round in 6..9 {
        churn(&h, "orders", round);
    }
    h.wait_equal("orders", T).await;
    assert_eq!(
        h.fail_point_left("failCommand").await,
        0,
        "every fault fired"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_survives_connections_closed_during_list_collections() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..100);
    // At start: the first discovery fails twice in a row (the driver retries a read once).
    h.fail_command(&["listCollections"], 2, doc! {"closeConnection": true});
    h.run("");
    h.wait_equal("orders", T).await;
    // While running: periodic discovery, and the sampling and counting of a new collection.
    h.fail_command(
        &["listCollections", "aggregate", "count"],
        6,
        doc! {"closeConnection": true},
    );
    h.seed("customers", 0..60);
    churn(&h, "orders", 0);
    h.wait_equal("customers", T).await;
    h.wait_equal("orders", T).await;
    assert_eq!(
        h.fail_point_left("failCommand").await,
        0,
        "every fault fired"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_stepdown_during_the_initial_sync_and_during_streaming() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..3000);
    h.run("");
    copy_started(&h, "orders").await;
    h.sim.step_down_for(Duration::from_millis(800)).unwrap();
    wait_primary(&h).await;
    churn(&h, "orders", 0);
    h.wait_equal("orders", T).await;

    // A failover while streaming: the primary steps down and its connections drop.
    churn(&h, "orders", 1);
    h.sim.step_down_for(Duration::from_millis(800)).unwrap();
    h.sim.drop_connections();
    sleep_ms(300).await;
    wait_primary(&h).await;
    churn(&h, "orders", 2);
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_lost_during_the_initial_sync_and_during_streaming() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..2000);
    h.run("");
    copy_started(&h, "orders").await;
    for round in 0..3 {
        h.sim.kill_all_cursors();
        churn(&h, "orders", round);
        sleep_ms(150).await;
    }
    h.wait_equal("orders", T).await;
    h.sim
        .configure_fail_point(
            "failGetMoreAfterCursorCheckout",
            Bson::Document(doc! {"times": 2}),
            doc! {"errorCode": 43},
        )
        .unwrap();
    churn(&h, "orders", 3);
    sleep_ms(300).await;
    h.sim.kill_all_cursors();
    churn(&h, "orders", 4);
    h.wait_equal("orders", T).await;
    assert_eq!(
        h.fail_point_left("failGetMoreAfterCursorCheckout").await,
        0,
        "every fault fired"
    );
    h.stop().await;
}

/// A reader whose page spans several batches (16 MB replies) loses its cursor at each `getMore`,
/// or its connection: it reads the page again from its last `_id`, and hands over every document
/// once, in `_id` order. (In the engine tests the change stream's `getMore`s take most faults.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_sync_reader_loses_its_cursor_between_batches() {
    use mirror_mongodb::snapshot::{read_range, RangeJob, ReaderMsg};
    let h = Harness::new().await;
    let docs: Vec<RawDocumentBuf> = (0..60)
        .map(|id| {
            let mut d = item(id, 0);
            d.insert("payload", "y".repeat(1024 * 1024));
            RawDocumentBuf::from_document(&d).unwrap()
        })
        .collect();
    h.sim.seed_raw(DB, "big", docs).unwrap();
    let client = mongodb::Client::with_uri_str(h.sim.uri()).await.unwrap();
    let coll = client.database(DB).collection::<RawDocumentBuf>("big");
    h.sim
        .configure_fail_point(
            "failGetMoreAfterCursorCheckout",
            Bson::Document(doc! {"times": 2}),
            doc! {"errorCode": 43},
        )
        .unwrap();
    let job = RangeJob {
        table: 0,
        range: 0,
        lo: None,
        hi: None,
        after: None,
    };
    // Pages adapt to about `PAGE_BYTES` once the documents' size is known, so only the first page
    // (30 documents of 1 MB) spans several replies: it takes every fault, the lost connection
    // after the lost cursors.
    h.fail_command(&["getMore"], 1, doc! {"closeConnection": true});
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(read_range(
        client.clone(),
        coll,
        None,
        job,
        30,
        tx,
        Default::default(),
    ));
    let mut ids = Vec::new();
    let mut page_sizes = Vec::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            ReaderMsg::Chunk(chunk) => {
                page_sizes.push(chunk.docs.len());
                for d in &chunk.docs {
                    ids.push(d.get_i64("_id").unwrap());
                }
                if chunk.done {
                    break;
                }
            }
            ReaderMsg::Started { .. } => {}
            ReaderMsg::Failed(e) => panic!("the reader failed: {e}"),
        }
    }
    reader.await.unwrap();
    assert_eq!(ids, (0..60).collect::<Vec<_>>());
    // Memory stays bounded whatever the documents' size: after the first page, pages hold about
    // `PAGE_BYTES` (2 MiB), not 30 MB.
    let per_page = mirror_mongodb::snapshot::PAGE_BYTES / (1024 * 1024);
    assert!(
        page_sizes[1..].iter().all(|&n| n <= per_page),
        "{page_sizes:?}"
    );
    assert_eq!(h.fail_point_left("failGetMoreAfterCursorCheckout").await, 0);
    assert_eq!(h.fail_point_left("failCommand").await, 0);
    assert!(h.sim.command_count("getMore") >= 4);
    client.shutdown().await;
}

/// Writes while mirror is down, then the oplog loses them.
fn lose_history(h: &Harness) {
    for id in 0..40 {
        h.sim.delete_one(DB, "orders", doc! {"_id": id}).unwrap();
    }
    bump(h, "orders", 100..150);
    for id in 1000..1010 {
        h.sim.insert(DB, "orders", item(id, 1)).unwrap();
    }
    bump(h, "customers", 0..5);
    h.sim.truncate_oplog();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_history_with_resync_copies_again_without_the_rows_deleted_meanwhile() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..300);
    h.seed("customers", 0..50);
    h.run("");
    h.wait_equal("orders", T).await;
    h.wait_equal("customers", T).await;
    h.stop().await;
    lose_history(&h);
    h.run(""); // on_history_lost = "resync" is the default
    h.wait_equal("orders", T).await;
    h.wait_equal("customers", T).await;
    // Fabric saw the tables dropped and rebuilt (the folders were deleted and created again).
    assert_eq!(h.table("orders").unwrap().rebuilds, 1);
    assert_eq!(h.table("customers").unwrap().rebuilds, 1);
    churn(&h, "orders", 1);
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lost_while_running_resyncs_in_place() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..300);
    h.seed("customers", 0..50);
    h.run("");
    h.wait_equal("orders", T).await;
    h.wait_equal("customers", T).await;
    // The connection drops, and before the stream can resume, the oplog has moved past it.
    h.sim.pause();
    h.sim.drop_connections();
    lose_history(&h);
    h.sim.resume();
    h.wait_equal("orders", T).await;
    h.wait_equal("customers", T).await;
    assert_eq!(h.table("orders").unwrap().rebuilds, 1);
    churn(&h, "orders", 2);
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_right_after_a_resync_began_copies_again_on_restart() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..300);
    h.run("");
    h.wait_equal("orders", T).await;
    h.stop().await;
    lose_history(&h);
    // The copy's reads are slow, so the run stops after the tables were emptied and before the
    // first page of the new copy is committed.
    h.fail_command(
        &["find"],
        1000,
        doc! {"blockConnection": true, "blockTimeMS": 400},
    );
    h.run("");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        // Emptied and about to copy: nothing of the new copy committed yet.
        if let Some(s) = h.table_state("orders").await {
            if s.phase == Phase::InitialSync && s.ranges.iter().all(|r| r.after.is_none()) {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no resync began");
        sleep_ms(20).await;
    }
    h.stop().await;
    h.fail_point_left("failCommand").await;
    let state = h.table_state("orders").await.unwrap();
    assert_eq!(state.phase, Phase::InitialSync);
    assert!(
        !state.ranges.is_empty(),
        "the committed state must say what is left to copy: {state:?}"
    );
    h.run("");
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_history_with_the_fail_policy_stops_with_an_actionable_error() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..100);
    h.seed("customers", 0..10);
    let fail = "on_history_lost = \"fail\"";
    h.run(fail);
    h.wait_equal("orders", T).await;
    h.stop().await;
    lose_history(&h);
    h.run(fail);
    let err = h.outcome(T).await.expect_err("the run must fail");
    let text = err.to_string();
    for needle in [
        "`shop`",
        "older than the oldest oplog entry",
        "on_history_lost = \"resync\"",
        "oplog",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    // Nothing was emptied or copied again.
    assert_eq!(h.table("orders").unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_rename_and_drop_database_keep_tables_with_on_drop_keep() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..100);
    h.seed("customers", 0..40);
    h.run("");
    h.wait_equal("orders", T).await;
    h.wait_equal("customers", T).await;
    let orders = h.expected("orders");
    let customers = h.expected("customers");

    h.sim.drop_collection(DB, "orders").unwrap();
    committed_past(&h, ts_key(h.sim.cluster_time())).await;
    assert_eq!(h.replicated("orders").as_ref(), Some(&orders));
    // A new collection of that name is copied into the same table, over the old rows.
    for id in 95..105 {
        h.sim.insert(DB, "orders", item(id, 7)).unwrap();
    }
    let mut want = orders.clone();
    want.extend(h.expected("orders"));
    h.wait_for("the new orders", T, |h| {
        h.replicated("orders").as_ref() == Some(&want)
    })
    .await;

    // Renamed: the old table keeps its rows, the new name is a new table.
    h.sim.rename_collection(DB, "customers", "clients").unwrap();
    h.wait_equal("clients", T).await;
    assert_eq!(h.replicated("customers").as_ref(), Some(&customers));

    // dropDatabase invalidates the database's stream; the tables keep their rows and the stream
    // goes on (reopened after the invalidate).
    let clients = h.expected("clients");
    h.sim.drop_database(DB).unwrap();
    h.sim.insert(DB, "later", item(1, 1)).unwrap();
    h.wait_equal("later", T).await;
    assert_eq!(h.replicated("orders").as_ref(), Some(&want));
    assert_eq!(h.replicated("clients").as_ref(), Some(&clients));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_rename_and_drop_database_empty_tables_with_on_drop_truncate() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..100);
    h.seed("customers", 0..40);
    h.seed("items", 0..30);
    let truncate = "on_drop = \"truncate\"";
    h.run(truncate);
    for coll in ["orders", "customers", "items"] {
        h.wait_equal(coll, T).await;
    }

    h.sim.drop_collection(DB, "orders").unwrap();
    empty(&h, "orders").await;
    // A new collection of that name fills the emptied table.
    for id in 500..505 {
        h.sim.insert(DB, "orders", item(id, 1)).unwrap();
    }
    h.wait_equal("orders", T).await;

    h.sim.rename_collection(DB, "customers", "clients").unwrap();
    empty(&h, "customers").await;
    h.wait_equal("clients", T).await;

    // dropDatabase: every table emptied, then the stream goes on after its invalidate.
    h.sim.drop_database(DB).unwrap();
    for coll in ["orders", "clients", "items"] {
        empty(&h, coll).await;
    }
    for id in 0..3 {
        h.sim.insert(DB, "items", item(id, 9)).unwrap();
    }
    h.wait_equal("items", T).await;
    // The emptied tables stay empty across a restart (the drops are not replayed into rows).
    h.stop().await;
    h.run(truncate);
    h.sim.insert(DB, "items", item(3, 9)).unwrap();
    h.wait_equal("items", T).await;
    assert_eq!(h.replicated("orders").map(|t| t.len()), Some(0));
    assert_eq!(h.replicated("clients").map(|t| t.len()), Some(0));
    h.stop().await;
}

/// The batches before a drop's truncation must not carry the drop's stream position: committed,
/// it would let a restart resume after the drop and never empty the table.
/// A rename onto a mirrored collection (`dropTarget`) replaces it in one event — mongod logs no
/// separate drop — so the target's table is emptied and refilled with the renamed collection,
/// and the source's table is emptied (`on_drop = "truncate"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_onto_a_mirrored_collection_replaces_its_table() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..50);
    h.seed("archive", 100..130);
    let truncate = "on_drop = \"truncate\"";
    h.run(truncate);
    h.wait_equal("orders", T).await;
    h.wait_equal("archive", T).await;
    let client = mongodb::Client::with_uri_str(h.sim.uri()).await.unwrap();
    client
        .database("admin")
        .run_command(
            doc! {"renameCollection": "shop.archive", "to": "shop.orders", "dropTarget": true},
        )
        .await
        .unwrap();
    client.shutdown().await;
    assert_eq!(h.expected("orders").len(), 30);
    h.wait_equal("orders", T).await;
    empty(&h, "archive").await;
    bump(&h, "orders", [100, 101]);
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_passes_a_drop_before_its_truncation() {
    let h = Harness::with_sim(mongo_sim::SimOptions {
        noop_interval: None,
        ..sim_options()
    })
    .await;
    h.seed("orders", 0..10);
    h.seed("customers", 0..10);
    let mut run = h.source("on_drop = \"truncate\"", Default::default()).await;
    // Both copies done (their tables streaming).
    let mut copied = std::collections::BTreeSet::new();
    run.until(T, |item| {
        if let mirror_core::SourceItem::Batch(b) = item {
            if b.num_rows() > 0 {
                copied.insert(b.table().id.to_string());
            }
        }
        copied.len() == 2
    })
    .await;
    // Writes of both tables and the drop reach the stream in one batch.
    h.sim.pause();
    bump(&h, "customers", 0..3);
    bump(&h, "orders", 0..3);
    h.sim.drop_collection(DB, "orders").unwrap();
    let dropped_at = ts_key(h.sim.cluster_time());
    h.sim.resume();
    let seen = run.items.len();
    run.until(T, |item| truncated(item).is_some()).await;
    for item in &run.items[seen..] {
        let at = position_of(item).unwrap();
        assert!(
            at < dropped_at,
            "an item before the truncation of orders is at the drop's position ({at} >= {dropped_at}): {item:?}"
        );
    }
    run.until(T, |item| position_of(item).is_some_and(|t| t >= dropped_at))
        .await;
    run.close().await;
}

/// With the history lost, every table is emptied before the new stream position is emitted; the
/// truncations carry the old one (a restart between them resyncs every table again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_moves_the_stream_position_only_after_every_table_is_emptied() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..100);
    h.seed("customers", 0..20);
    h.seed("items", 0..20);
    h.run("");
    for coll in ["orders", "customers", "items"] {
        h.wait_equal(coll, T).await;
    }
    h.stop().await;
    let resume = h.checkpoints().await;
    let old = h.stream_time().await.unwrap();
    lose_history(&h);
    let mut run = h.source("", resume).await;
    let mut emptied = std::collections::BTreeSet::new();
    run.until(T, |item| {
        emptied.extend(truncated(item));
        emptied.len() == 3
    })
    .await;
    for item in &run.items {
        assert_eq!(
            position_of(item),
            Some(old),
            "an item up to the last truncation moved the stream position: {item:?}"
        );
    }
    for table in ["orders", "customers", "items"] {
        let state = run
            .items
            .iter()
            .filter(|i| truncated(i).is_some_and(|t| t == format!("{DB}.schema/{table}")))
            .map(|i| {
                let id = mirror_core::TableId::with_schema(DB, table);
                let state = checkpoint_of(i)
                    .get(&mirror_core::Partition::Table(id))
                    .unwrap();
                mirror_mongodb::state::TableState::load(state).unwrap()
            })
            .next()
            .unwrap();
        assert_eq!(state.phase, Phase::InitialSync, "{table}");
        assert!(!state.ranges.is_empty(), "{table}: {state:?}");
        assert_eq!(state.copied, 0, "{table}");
    }
    run.until(T, |item| position_of(item).is_some_and(|t| t > old))
        .await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_created_while_running_are_mirrored() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..50);
    h.run("");
    h.wait_equal("orders", T).await;
    // Created by an insert: its change event reveals it.
    for id in 0..20 {
        h.sim.insert(DB, "customers", item(id, 0)).unwrap();
    }
    bump(&h, "customers", 0..5);
    h.wait_equal("customers", T).await;
    // Created without any change event (a restore): periodic discovery finds it.
    h.seed("imported", 0..120);
    h.wait_equal("imported", T).await;
    bump(&h, "imported", 10..20);
    h.wait_equal("imported", T).await;
    h.stop().await;
}

/// With `databases = ["*"]`, a database created while mirror runs is mirrored too: what it held
/// before its worker started, and what is written after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_created_while_running_are_mirrored_with_databases_star() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..30);
    h.run(r#"databases = ["*"]"#);
    h.wait_equal("orders", T).await;
    // A database that did not exist at the start: documents written at once, before any worker
    // can watch it, then more while it is mirrored.
    for id in 0..40 {
        h.sim.insert("crm", "contacts", item(id, 0)).unwrap();
    }
    h.wait_equal("crm/contacts", T).await;
    for id in 0..10 {
        h.sim
            .update_one("crm", "contacts", doc! {"_id": id}, doc! {"$inc": {"v": 1}})
            .unwrap();
    }
    h.sim
        .delete_one("crm", "contacts", doc! {"_id": 39})
        .unwrap();
    h.sim.insert("crm", "contacts", item(500, 7)).unwrap();
    h.wait_equal("crm/contacts", T).await;
    // The first database goes on as before.
    bump(&h, "orders", 0..5);
    h.wait_equal("orders", T).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_streams_committed_position_keeps_advancing() {
    let mut h = Harness::new().await;
    h.seed("orders", 0..50);
    h.run("");
    bump(&h, "orders", 0..3);
    h.wait_equal("orders", T).await;
    let last_write = h.sim.cluster_time();
    committed_past(&h, ts_key(last_write)).await;
    let before = h.stream_time().await.unwrap();
    // Nothing is written; only the server's periodic no-op writes move the oplog.
    sleep_ms(2_200).await;
    let after = h.stream_time().await.unwrap();
    assert!(
        ts_from_key(after).time > ts_from_key(before).time,
        "the committed position did not advance while idle: {:?} -> {:?}",
        ts_from_key(before),
        ts_from_key(after)
    );
    // So the oplog may forget everything up to the last write and mirror still resumes.
    h.stop().await;
    h.sim.truncate_oplog_through(last_write);
    h.run("on_history_lost = \"fail\"");
    churn(&h, "orders", 0);
    h.wait_equal("orders", T).await;
    assert_eq!(h.table("orders").unwrap().rebuilds, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_near_16_mb_is_copied_and_streamed() {
    let mut h = Harness::new().await;
    let big = |id: i64, v: i64| {
        let mut d = item(id, v);
        d.insert("payload", "x".repeat(15 * 1024 * 1024));
        d
    };
    h.seed("orders", 0..20);
    h.sim
        .seed_raw(
            DB,
            "orders",
            vec![RawDocumentBuf::from_document(&big(100, 0)).unwrap()],
        )
        .unwrap();
    h.run("");
    h.wait_equal("orders", T).await;
    bump(&h, "orders", [100]);
    h.sim.insert(DB, "orders", big(101, 0)).unwrap();
    h.wait_equal("orders", T).await;
    let table = h.table("orders").unwrap();
    let sizes: Vec<usize> = table
        .rows()
        .iter()
        .filter_map(|r| match r.get("payload") {
            Some(onelake_sim::Value::Str(s)) => Some(s.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [15 * 1024 * 1024; 2]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_initial_sync_resumes_from_the_ranges() {
    const DOCS: i64 = 4000;
    const PAGE: u64 = 50;
    let mut h = Harness::new().await;
    h.seed("orders", 0..DOCS);
    // Slow reads, so that the copy is far from done when it is stopped.
    h.fail_command(
        &["find"],
        100_000,
        doc! {"blockConnection": true, "blockTimeMS": 40},
    );
    h.run("");
    let deadline = tokio::time::Instant::now() + T;
    while h
        .table_state("orders")
        .await
        .is_none_or(|s| s.copied < 1000)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy does not progress"
        );
        sleep_ms(20).await;
    }
    h.stop().await;
    let state = h.table_state("orders").await.unwrap();
    assert_eq!(
        state.phase,
        Phase::InitialSync,
        "the copy finished before the stop; the test needs a larger collection"
    );
    let copied = state.copied;
    let finds_before = h.sim.command_count("find");
    h.run("");
    h.wait_equal("orders", T).await;
    let report = h.stop().await;
    let finds = h.sim.command_count("find") - finds_before;
    let left_pages = (DOCS as u64 - copied).div_ceil(PAGE);
    assert!(
        finds <= left_pages + 4,
        "{finds} finds after the restart; {left_pages} pages were left to copy (of {})",
        DOCS as u64 / PAGE
    );
    let rows = report.sinks["lake"].rows;
    assert!(
        rows <= DOCS as u64 - copied + 2 * PAGE,
        "{rows} rows published after the restart; {} were left to copy",
        DOCS as u64 - copied
    );
}

/// Column types are recorded in the schema ledger before the first batch that holds them leaves
/// the source: the sampled types before the first page, a new field's type before its batch. No
/// ordered commit is needed (nothing commits here), so a new column costs no sink flush, and a
/// crash after a file is published can never let a restart infer other types for its columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_column_types_are_recorded_before_the_batch_that_adds_them() {
    use mirror_core::checkpoint::{CheckpointStore, SchemaLedger};
    let h = Harness::new().await;
    h.seed("orders", 0..10);
    let store: Arc<dyn CheckpointStore> = Arc::new(LandingZoneCheckpointStore::new(Arc::new(
        LocalStore::new(h.lz.path()),
    )));
    let ledger = SchemaLedger::new(store.clone(), SOURCE);
    let recorded = || async {
        let resume = store.load(SOURCE).await.unwrap();
        resume
            .table_schema(&TableId::with_schema(DB, "orders"))
            .map(|s| s.to_json::<serde_json::Value>().unwrap().to_string())
            .unwrap_or_default()
    };
    let mut run = h.source_with("", Default::default(), Some(ledger)).await;
    run.until(
        T,
        |item| matches!(item, mirror_core::SourceItem::Batch(b) if b.num_rows() > 0),
    )
    .await;
    let first = recorded().await;
    assert!(
        first.contains("\"v\"") && first.contains("\"name\""),
        "{first}"
    );
    assert!(!first.contains("fresh"), "{first}");
    h.sim
        .insert(DB, "orders", doc! {"_id": 100i64, "v": 1i64, "fresh": 7i64})
        .unwrap();
    run.until(T, |item| {
        matches!(item, mirror_core::SourceItem::Batch(b) if b.schema().column_with_name("fresh").is_some())
    })
    .await;
    let then = recorded().await;
    assert!(then.contains("fresh"), "{then}");
    assert!(
        !run.items
            .iter()
            .any(|i| matches!(i, mirror_core::SourceItem::Checkpoint(c) if c.entries().any(|(p, _)| matches!(p, mirror_core::Partition::Table(_))))),
        "no checkpoint item stands in for the record any more"
    );
    run.close().await;
}

/// Half of a document just under 16 MB.
const HALF: usize = 7_900_000;

/// A document of ~15.8 MB: two ~7.9 MB strings.
fn near_16_mb(id: i64, v: i64, fill: &str) -> bson::Document {
    let mut d = item(id, v);
    d.insert("a", fill.repeat(HALF));
    d.insert("b", "b".repeat(HALF));
    d
}

/// An update of one ~7.9 MB field of a ~15.8 MB document: its event (the changed field and the
/// whole document) is ~23.7 MB.
fn rewrite(h: &Harness, coll: &str, id: i64, fill: &str) {
    h.sim
        .update_one(
            DB,
            coll,
            doc! {"_id": id},
            doc! {"$set": {"a": fill.repeat(HALF)}, "$inc": {"v": 1}},
        )
        .unwrap();
}

/// The first characters of each row's `a` column, by `v`.
fn payloads(h: &Harness, coll: &str) -> Vec<(i64, String, usize)> {
    let table = h.table(coll).expect("a table");
    let mut out: Vec<(i64, String, usize)> = table
        .rows()
        .iter()
        .filter_map(|r| match (r.get("v"), r.get("a")) {
            (Some(onelake_sim::Value::Int(v)), Some(onelake_sim::Value::Str(a))) => {
                Some((*v, a.chars().take(1).collect(), a.len()))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Events over 16 MB — updates of documents just under 16 MB in a collection with pre- and
/// post-images, read with post-images (`full_document = "required"`) — are split by the server
/// (MongoDB 7.0) and put back together by the source, also when the source is killed while it
/// holds only the first fragment (it restarts from the event's first fragment) and when the
/// cursor is lost between the fragments (the driver resumes from the first fragment's token).
/// The table equals the collection every time, large fields included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_16_mb_are_split_and_reassembled_through_a_kill() {
    let mut h = Harness::new().await;
    let images = doc! {"changeStreamPreAndPostImages": {"enabled": true}};
    h.sim.create_collection(DB, "big", images).unwrap();
    h.sim
        .seed_raw(
            DB,
            "big",
            [1, 2].map(|id| RawDocumentBuf::from_document(&near_16_mb(id, 0, "x")).unwrap()),
        )
        .unwrap();
    let source = "full_document = \"required\"";
    h.run(source);
    h.wait_equal("big", T).await;

    // Split and reassembled while running.
    rewrite(&h, "big", 1, "y");
    h.wait_equal("big", T).await;
    assert_eq!(
        payloads(&h, "big"),
        [(0, "x".into(), HALF), (1, "y".into(), HALF)]
    );

    // Killed while holding the first fragment: the aggregate of the restarted stream brings the
    // first fragment, its next getMore (for the second) is held back, and the engine dies.
    h.stop().await;
    rewrite(&h, "big", 2, "z");
    let get_mores = h.sim.command_count("getMore");
    h.fail_command(
        &["getMore"],
        1,
        doc! {"blockConnection": true, "blockTimeMS": 3000},
    );
    h.run(source);
    h.wait_for("the getMore after the first fragment", T, |h| {
        h.sim.command_count("getMore") > get_mores
    })
    .await;
    h.kill().await;
    h.run(source);
    h.wait_equal("big", T).await;
    assert_eq!(
        payloads(&h, "big"),
        [(1, "y".into(), HALF), (1, "z".into(), HALF)]
    );

    // The cursor lost between the fragments: the driver resumes from the first fragment's token
    // and the server continues with the second.
    h.stop().await;
    rewrite(&h, "big", 1, "w");
    h.fail_command(&["getMore"], 1, doc! {"errorCode": 43});
    h.run(source);
    h.wait_equal("big", T).await;
    assert_eq!(
        h.fail_point_left("failCommand").await,
        0,
        "the cursor was lost"
    );
    assert_eq!(
        payloads(&h, "big"),
        [(1, "z".into(), HALF), (2, "w".into(), HALF)]
    );
    h.stop().await;
}

/// A server that cannot split events (MongoDB 6.0.8) fails a change stream whose event is over
/// 16 MB with BSONObjectTooLarge (10334): the route stops with an explanation instead of skipping
/// the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_16_mb_stops_with_a_clear_error() {
    let mut h = Harness::with_sim(mongo_sim::SimOptions {
        server_version: mongo_sim::ServerVersion::new(6, 0, 8),
        ..sim_options()
    })
    .await;
    h.seed("orders", 0..20);
    h.sim
        .seed_raw(
            DB,
            "orders",
            [RawDocumentBuf::from_document(&near_16_mb(100, 0, "x")).unwrap()],
        )
        .unwrap();
    h.run("");
    h.wait_equal("orders", T).await;
    rewrite(&h, "orders", 100, "y");
    let err = h.outcome(T).await.expect_err("the run must fail");
    let text = err.to_string();
    assert!(
        text.contains("larger than MongoDB's 16 MB limit (error 10334"),
        "{text}"
    );
    assert!(text.contains("`shop`"), "{text}");
    assert!(text.contains("6.0.9"), "{text}");
}
