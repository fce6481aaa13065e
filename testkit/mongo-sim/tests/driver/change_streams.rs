//! Change streams through the driver: every event type, full-document modes, resume options,
//! postBatchResumeToken, invalidation and the non-resumable errors (260, 280, 286).

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};

use crate::{code, start};

type Stream = ChangeStream<ChangeStreamEvent<Document>>;

/// The next event, failing the test after 5 s.
pub async fn next(s: &mut Stream) -> ChangeStreamEvent<Document> {
    tokio::time::timeout(Duration::from_secs(5), s.next_if_any_blocking())
        .await
        .expect("an event within 5 s")
        .expect("stream ok")
        .expect("stream not closed")
}

trait Blocking {
    async fn next_if_any_blocking(
        &mut self,
    ) -> mongodb::error::Result<Option<ChangeStreamEvent<Document>>>;
}

impl Blocking for Stream {
    async fn next_if_any_blocking(
        &mut self,
    ) -> mongodb::error::Result<Option<ChangeStreamEvent<Document>>> {
        loop {
            if let Some(e) = self.next_if_any().await? {
                return Ok(Some(e));
            }
            if !self.is_alive() {
                return Ok(None);
            }
        }
    }
}

pub fn token_data(t: &ResumeToken) -> String {
    let d = bson::to_document(t).expect("token doc");
    d.get_str("_data").expect("_data").to_string()
}

#[tokio::test]
async fn collection_stream_sees_every_event_type_then_invalidates() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("c");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    coll.insert_one(doc! {"_id": 1, "a": 1, "arr": [1, 2, 3]})
        .await
        .expect("insert");
    coll.update_one(
        doc! {"_id": 1},
        doc! {"$set": {"a": 2, "n.m": 1}, "$unset": {"zz": 1}, "$push": {"arr": 4}},
    )
    .await
    .expect("update");
    coll.update_one(doc! {"_id": 1}, doc! {"$unset": {"a": 1}})
        .await
        .expect("unset");
    coll.update_one(doc! {"_id": 1}, vec![doc! {"$set": {"arr": [1, 9]}}])
        .await
        .expect("pipeline update");
    coll.replace_one(doc! {"_id": 1}, doc! {"b": 1})
        .await
        .expect("replace");
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    coll.drop().await.expect("drop");

    let e = next(&mut s).await;
    assert_eq!(e.operation_type, OperationType::Insert);
    assert_eq!(
        e.full_document,
        Some(doc! {"_id": 1, "a": 1, "arr": [1, 2, 3]})
    );
    assert_eq!(e.document_key, Some(doc! {"_id": 1}));
    assert_eq!(e.ns.as_ref().map(|n| n.db.as_str()), Some("db"));
    assert!(e.cluster_time.is_some() && e.wall_time.is_some());
    let e = next(&mut s).await;
    assert_eq!(e.operation_type, OperationType::Update);
    let ud = e.update_description.expect("updateDescription");
    assert_eq!(ud.updated_fields, doc! {"a": 2, "n": {"m": 1}, "arr.3": 4});
    assert!(ud.removed_fields.is_empty());
    assert!(
        e.full_document.is_none(),
        "default fullDocument omits it on updates"
    );
    let e = next(&mut s).await;
    assert_eq!(
        e.update_description.expect("ud").removed_fields,
        vec!["a".to_string()]
    );
    let e = next(&mut s).await;
    let ud = e.update_description.expect("ud");
    assert_eq!(ud.updated_fields, doc! {"arr.1": 9});
    let truncated = ud.truncated_arrays.expect("truncatedArrays");
    assert_eq!(
        (truncated[0].field.as_str(), truncated[0].new_size),
        ("arr", 2)
    );
    let e = next(&mut s).await;
    assert_eq!(e.operation_type, OperationType::Replace);
    assert_eq!(e.full_document, Some(doc! {"_id": 1, "b": 1}));
    let e = next(&mut s).await;
    assert_eq!(e.operation_type, OperationType::Delete);
    assert_eq!(e.document_key, Some(doc! {"_id": 1}));
    assert!(e.full_document.is_none());
    let e = next(&mut s).await;
    assert_eq!(e.operation_type, OperationType::Drop);
    let inv = next(&mut s).await;
    assert_eq!(inv.operation_type, OperationType::Invalidate);
    assert!(
        token_data(&inv.id) > token_data(&e.id),
        "tokens order as the stream"
    );
    assert!(s.next_if_any().await.expect("closed").is_none());
    assert!(!s.is_alive(), "the cursor is closed after invalidate");

    // resumeAfter an invalidate token: 260. startAfter it: a new stream on the name.
    let e = coll
        .watch()
        .resume_after(inv.id.clone())
        .await
        .expect_err("260");
    assert_eq!(code(&e), Some(260));
    let mut s2 = coll
        .watch()
        .start_after(inv.id.clone())
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("startAfter");
    coll.insert_one(doc! {"_id": 2}).await.expect("insert");
    assert_eq!(next(&mut s2).await.document_key, Some(doc! {"_id": 2}));
    drop(s2);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn full_document_modes_and_pre_images() {
    let (sim, client) = start().await;
    let db = client.database("db");
    db.run_command(doc! {"create": "img", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create");
    let coll = db.collection::<Document>("img");
    let plain = db.collection::<Document>("plain");
    let mut lookup = plain
        .watch()
        .full_document(FullDocumentType::UpdateLookup)
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    let mut images = coll
        .watch()
        .full_document(FullDocumentType::WhenAvailable)
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    plain.insert_one(doc! {"_id": 1, "v": 1}).await.expect("i");
    plain
        .update_one(doc! {"_id": 1}, doc! {"$set": {"v": 2}})
        .await
        .expect("u");
    plain
        .update_one(doc! {"_id": 1}, doc! {"$set": {"v": 3}})
        .await
        .expect("u");
    plain.delete_one(doc! {"_id": 1}).await.expect("d");
    let _ = next(&mut lookup).await;
    // updateLookup reads the document as of lookup time: both updates see the delete.
    let e = next(&mut lookup).await;
    assert_eq!(e.operation_type, OperationType::Update);
    assert_eq!(e.full_document, None, "looked up after the delete: null");
    coll.insert_one(doc! {"_id": 1, "v": 1}).await.expect("i");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"v": 2}})
        .await
        .expect("u");
    let _ = next(&mut images).await;
    let e = next(&mut images).await;
    assert_eq!(e.full_document, Some(doc! {"_id": 1, "v": 2}));
    assert_eq!(e.full_document_before_change, Some(doc! {"_id": 1, "v": 1}));
    // Required pre-images on a collection without them fail the stream.
    // collMod turns images on for an existing collection.
    db.run_command(doc! {"collMod": "plain", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("collMod");
    let e = db
        .run_command(doc! {"collMod": "plain", "validator": {}})
        .await
        .expect_err("unsupported");
    assert_eq!(code(&e), Some(238));
    let mut pre = plain
        .watch()
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    plain.insert_one(doc! {"_id": 7, "v": 1}).await.expect("i");
    plain.delete_one(doc! {"_id": 7}).await.expect("d");
    let _ = next(&mut pre).await;
    assert_eq!(
        next(&mut pre).await.full_document_before_change,
        Some(doc! {"_id": 7, "v": 1})
    );
    drop(pre);
    db.run_command(doc! {"collMod": "plain", "changeStreamPreAndPostImages": {"enabled": false}})
        .await
        .expect("collMod");
    let mut req = plain
        .watch()
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    plain.insert_one(doc! {"_id": 2}).await.expect("i");
    plain.delete_one(doc! {"_id": 2}).await.expect("d");
    // mongod fails the getMore whose batch meets the event (the insert before it is not returned).
    let err = loop {
        match req.next_if_any().await {
            Err(e) => break e,
            Ok(Some(_)) => panic!("delete without pre-image must fail"),
            Ok(None) => {}
        }
    };
    assert_eq!(code(&err), Some(47), "NoMatchingDocument, as mongod");
    drop((lookup, images, req));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn database_and_cluster_streams_rename_drop_database() {
    let (sim, client) = start().await;
    let db = client.database("dbx");
    let mut dbs = db
        .watch()
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("db watch");
    let mut all = client
        .watch()
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("cluster watch");
    db.collection::<Document>("a")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("i");
    client
        .database("other")
        .collection::<Document>("o")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("i");
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "dbx.a", "to": "dbx.b"})
        .await
        .expect("rename");
    db.drop().await.expect("dropDatabase");
    let e = next(&mut dbs).await;
    assert_eq!(e.operation_type, OperationType::Insert);
    let e = next(&mut dbs).await;
    assert_eq!(e.operation_type, OperationType::Rename);
    assert_eq!(
        e.to.as_ref().and_then(|t| t.coll.clone()),
        Some("b".to_string())
    );
    let e = next(&mut dbs).await;
    assert_eq!(e.operation_type, OperationType::Drop);
    let e = next(&mut dbs).await;
    assert_eq!(e.operation_type, OperationType::DropDatabase);
    assert_eq!(
        next(&mut dbs).await.operation_type,
        OperationType::Invalidate
    );
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let e = next(&mut all).await;
        kinds.push((e.operation_type, e.ns.map(|n| n.db)));
    }
    assert_eq!(kinds[1], (OperationType::Insert, Some("other".to_string())));
    assert_eq!(kinds[4].0, OperationType::DropDatabase);
    assert!(
        all.is_alive(),
        "a whole-deployment stream is not invalidated by dropDatabase"
    );
    drop((dbs, all));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn resume_options_and_post_batch_resume_token() {
    let (sim, client) = start().await;
    let db = client.database("db");
    let coll = db.collection::<Document>("r");
    let other = db.collection::<Document>("other");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    let t0 = token_data(&s.resume_token().expect("initial postBatchResumeToken"));
    // Writes elsewhere advance the high-water mark of an idle stream.
    other.insert_one(doc! {"_id": 1}).await.expect("i");
    // The first call hands out the (empty) initial batch; the second runs a getMore.
    assert!(s.next_if_any().await.expect("first batch").is_none());
    assert!(s.next_if_any().await.expect("getMore").is_none());
    let t1 = token_data(&s.resume_token().expect("pbrt"));
    assert!(t1 > t0, "postBatchResumeToken advances on empty batches");
    coll.insert_one(doc! {"_id": 1}).await.expect("i");
    let first = next(&mut s).await;
    coll.insert_many(vec![doc! {"_id": 2}, doc! {"_id": 3}])
        .await
        .expect("i");
    let mut r = coll
        .watch()
        .resume_after(first.id.clone())
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("resume");
    assert_eq!(next(&mut r).await.document_key, Some(doc! {"_id": 2}));
    assert_eq!(next(&mut r).await.document_key, Some(doc! {"_id": 3}));
    // Resuming from the high-water-mark token sees exactly what came after it.
    let hwm: ResumeToken = bson::from_document(doc! {"_data": t1}).expect("token");
    let mut h = coll
        .watch()
        .resume_after(hwm)
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("resume hwm");
    assert_eq!(next(&mut h).await.document_key, Some(doc! {"_id": 1}));
    // startAtOperationTime with the operationTime the server returned.
    let mut session = client.start_session().await.expect("session");
    coll.insert_one(doc! {"_id": 4})
        .session(&mut session)
        .await
        .expect("i");
    let op_time = session.operation_time().expect("operationTime");
    coll.insert_one(doc! {"_id": 5}).await.expect("i");
    let mut at = coll
        .watch()
        .start_at_operation_time(op_time)
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("startAt");
    assert_eq!(next(&mut at).await.document_key, Some(doc! {"_id": 4}));
    assert_eq!(next(&mut at).await.document_key, Some(doc! {"_id": 5}));
    // A token of another collection's event is not in this stream: 280.
    let mut os = other
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("w");
    other.insert_one(doc! {"_id": 2}).await.expect("i");
    let foreign = next(&mut os).await.id;
    coll.insert_one(doc! {"_id": 6}).await.expect("i");
    // The aggregate itself already meets the next event, so it fails (as mongod's does).
    let err = match coll
        .watch()
        .resume_after(foreign)
        .max_await_time(Duration::from_millis(50))
        .await
    {
        Err(e) => e,
        Ok(mut bad) => loop {
            match bad.next_if_any().await {
                Err(e) => break e,
                Ok(Some(e)) => panic!("unexpected event {e:?}"),
                Ok(None) => {}
            }
        },
    };
    assert_eq!(code(&err), Some(280));
    drop((s, r, h, at, os));
    drop(session);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn history_lost_is_286_and_not_resumable() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("h");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    coll.insert_one(doc! {"_id": 1}).await.expect("i");
    let e = next(&mut s).await;
    drop(s);
    sim.truncate_oplog();
    let err = coll
        .watch()
        .resume_after(e.id.clone())
        .await
        .expect_err("286");
    assert_eq!(code(&err), Some(286));
    assert!(err.contains_label("NonResumableChangeStreamError"));
    let err = coll
        .watch()
        .start_at_operation_time(e.cluster_time.expect("ct"))
        .await
        .expect_err("286");
    assert_eq!(code(&err), Some(286));
    // A bounded oplog drops old history by size.
    sim.set_oplog_size(1);
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    coll.insert_one(doc! {"_id": 2}).await.expect("i");
    let first = next(&mut s).await;
    coll.insert_many((3..10).map(|i| doc! {"_id": i}))
        .await
        .expect("i");
    assert!(sim.oplog_len() <= 1);
    let err = coll.watch().resume_after(first.id).await.expect_err("286");
    assert_eq!(code(&err), Some(286));
    drop(s);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn views_and_timeseries_have_no_change_streams() {
    let (sim, client) = start().await;
    let db = client.database("db");
    db.collection::<Document>("base")
        .insert_one(doc! {"_id": 1, "x": 1})
        .await
        .expect("i");
    db.run_command(doc! {"create": "v", "viewOn": "base", "pipeline": [{"$match": {"x": 1}}]})
        .await
        .expect("view");
    db.run_command(doc! {"create": "ts", "timeseries": {"timeField": "t"}})
        .await
        .expect("ts");
    let e = db
        .collection::<Document>("v")
        .watch()
        .await
        .expect_err("view");
    assert_eq!(code(&e), Some(166));
    let e = db
        .collection::<Document>("ts")
        .watch()
        .await
        .expect_err("ts");
    assert_eq!(code(&e), Some(166));
    let v: Vec<Document> = futures::TryStreamExt::try_collect(
        db.collection::<Document>("v")
            .find(doc! {})
            .await
            .expect("find"),
    )
    .await
    .expect("c");
    assert_eq!(
        v,
        vec![doc! {"_id": 1, "x": 1}],
        "a view reads through its pipeline"
    );
    let e = db
        .collection::<Document>("v")
        .insert_one(doc! {"_id": 2})
        .await
        .expect_err("write to view");
    assert_eq!(code(&e), Some(166));
    let _ = Bson::Null;
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_size_zero_and_batch_limits() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("bs");
    let db = client.database("db");
    let r = db
        .run_command(doc! {"aggregate": "bs", "pipeline": [{"$changeStream": {}}], "cursor": {"batchSize": 0}})
        .await
        .expect("aggregate");
    let cursor = r.get_document("cursor").expect("cursor");
    let id = cursor.get_i64("id").expect("id");
    assert!(cursor.get_array("firstBatch").expect("batch").is_empty());
    let pbrt0 = cursor
        .get_document("postBatchResumeToken")
        .expect("pbrt")
        .clone();
    coll.insert_many((0..5).map(|i| doc! {"_id": i}))
        .await
        .expect("insert");
    let r = db
        .run_command(doc! {"getMore": id, "collection": "bs", "batchSize": 2})
        .await
        .expect("getMore");
    let cursor = r.get_document("cursor").expect("cursor");
    let batch = cursor.get_array("nextBatch").expect("batch");
    assert_eq!(batch.len(), 2);
    let last_id = batch[1]
        .as_document()
        .and_then(|d| d.get_document("_id").ok())
        .expect("token")
        .clone();
    let pbrt = cursor.get_document("postBatchResumeToken").expect("pbrt");
    assert_eq!(
        pbrt, &last_id,
        "a full batch's postBatchResumeToken is its last event's token"
    );
    assert!(pbrt.get_str("_data").expect("data") > pbrt0.get_str("_data").expect("data"));
    let r = db
        .run_command(doc! {"getMore": id, "collection": "bs", "maxTimeMS": 50})
        .await
        .expect("getMore");
    assert_eq!(
        r.get_document("cursor")
            .and_then(|c| c.get_array("nextBatch"))
            .map(Vec::len)
            .ok(),
        Some(3)
    );
    let e = db
        .run_command(doc! {"getMore": id, "collection": "other"})
        .await
        .expect_err("ns");
    assert_eq!(code(&e), Some(13));
    let e = db
        .run_command(doc! {"getMore": 5i32, "collection": "bs"})
        .await
        .expect_err("int");
    assert_eq!(code(&e), Some(14));
    let _ = Bson::Null;
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn idle_server_noop_writes_keep_the_high_water_mark_moving() {
    let sim = mongo_sim::MongoSim::start(mongo_sim::SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .await
    .expect("sim");
    let client = mongodb::Client::with_uri_str(sim.uri())
        .await
        .expect("client");
    let coll = client.database("db").collection::<Document>("idle");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    let t0 = token_data(&s.resume_token().expect("token"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.next_if_any().await.expect("first").is_none());
    assert!(s.next_if_any().await.expect("getMore").is_none());
    let t1 = token_data(&s.resume_token().expect("token"));
    assert!(
        t1 > t0,
        "no writes at all, yet the token advances (periodic no-ops)"
    );
    drop(s);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn expanded_events_show_ddl() {
    let (sim, client) = start().await;
    let db = client.database("ddl");
    let mut s = db
        .watch()
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    let mut plain = db
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    db.create_collection("c").await.expect("create");
    let coll = db.collection::<Document>("c");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"a": 1}).build())
        .await
        .expect("index");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    coll.drop_index("a_1").await.expect("drop index");
    let kinds: Vec<OperationType> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(next(&mut s).await.operation_type);
        }
        v
    };
    assert_eq!(
        kinds,
        vec![
            OperationType::Other("create".into()),
            OperationType::Other("createIndexes".into()),
            OperationType::Insert,
            OperationType::Other("dropIndexes".into())
        ]
    );
    assert_eq!(
        next(&mut plain).await.operation_type,
        OperationType::Insert,
        "DDL events only when expanded"
    );
    drop((s, plain));
    drop(client);
    sim.shutdown().await;
}

/// Drivers close `db.watch()` / `client.watch()` with `{killCursors: "$cmd.aggregate"}`; mongod
/// kills the cursor (its next getMore is CursorNotFound) and a dropped stream leaks nothing.
#[tokio::test]
async fn database_and_cluster_stream_cursors_are_killed_on_cmd_aggregate() {
    let (sim, client) = start().await;
    for db_name in ["shop", "admin"] {
        let db = client.database(db_name);
        let pipeline = if db_name == "admin" {
            doc! {"$changeStream": {"allChangesForCluster": true}}
        } else {
            doc! {"$changeStream": {}}
        };
        let r = db
            .run_command(doc! {"aggregate": 1, "pipeline": [pipeline], "cursor": {}})
            .await
            .expect("aggregate");
        let cursor = r.get_document("cursor").expect("cursor");
        assert_eq!(
            cursor.get_str("ns").expect("ns"),
            format!("{db_name}.$cmd.aggregate")
        );
        let id = cursor.get_i64("id").expect("id");
        let r = db
            .run_command(doc! {"killCursors": "$cmd.aggregate", "cursors": [id]})
            .await
            .expect("killCursors on $cmd.aggregate");
        assert_eq!(
            r.get_array("cursorsKilled").expect("killed"),
            &vec![Bson::Int64(id)]
        );
        let e = db
            .run_command(doc! {"getMore": id, "collection": "$cmd.aggregate"})
            .await
            .expect_err("a killed cursor");
        assert_eq!(code(&e), Some(43), "CursorNotFound after killCursors: {e}");
    }
    assert_eq!(sim.open_cursors(), 0);

    // The driver's own close of a database and a deployment stream.
    let dbs = client.database("shop").watch().await.expect("db watch");
    let all = client.watch().await.expect("cluster watch");
    assert_eq!(sim.open_cursors(), 2);
    drop((dbs, all));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.open_cursors() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.open_cursors(),
        0,
        "dropped streams leave no cursor behind"
    );
    let e = client
        .database("shop")
        .run_command(doc! {"killCursors": "", "cursors": [1i64]})
        .await
        .expect_err("an empty namespace");
    assert_eq!(code(&e), Some(73));
    drop(client);
    sim.shutdown().await;
}
