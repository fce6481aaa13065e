//! Behaviours a driver's own specification tests and hostile documents found to differ from
//! mongod, each as mongod's source has it: expanded rename and update events, the read concern of
//! change streams, expressions after `$changeStream`, collations, statement validation, unknown
//! stages, `getParameter`, time-series `_id`s, the `onPrimaryTransactionalWrite` fail point, and
//! what an insert does to a document (depth, duplicate `_id`, `_id` first, empty timestamps).

use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::change_stream::event::OperationType;
use mongodb::Client;

use crate::change_streams::next;
use crate::{code, start};

fn uuid_of(infos: &[Document], name: &str) -> Bson {
    infos
        .iter()
        .find(|c| c.get_str("name") == Ok(name))
        .and_then(|c| c.get_document("info").ok()?.get("uuid").cloned())
        .expect("a uuid")
}

async fn collection_infos(client: &Client, db: &str) -> Vec<Document> {
    let r = client
        .database(db)
        .run_command(doc! {"listCollections": 1})
        .await
        .expect("listCollections");
    r.get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .filter_map(|c| c.as_document().cloned())
        .collect()
}

/// A rename onto an existing collection is one event carrying `operationDescription.dropTarget`
/// (the replaced collection's UUID), seen by the database's stream and by the target's, which it
/// invalidates (mongod logs one renameCollection entry; "Relevant collection was overwritten").
#[tokio::test]
async fn a_rename_onto_an_existing_collection_names_the_dropped_target() {
    let (sim, client) = start().await;
    let db = client.database("ren");
    db.collection::<Document>("a")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    db.collection::<Document>("b")
        .insert_one(doc! {"_id": 2})
        .await
        .unwrap();
    let target_uuid = uuid_of(&collection_infos(&client, "ren").await, "b");
    let mut dbs = db
        .watch()
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap()
        .with_type::<Document>();
    let mut target = db
        .collection::<Document>("b")
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap();
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "ren.a", "to": "ren.b", "dropTarget": true})
        .await
        .expect("rename");
    let raw = loop {
        if let Some(e) = dbs.next_if_any().await.unwrap() {
            break e;
        }
    };
    assert_eq!(
        raw.get_str("operationType").unwrap(),
        "rename",
        "no drop of b first"
    );
    let desc = raw
        .get_document("operationDescription")
        .expect("description");
    assert_eq!(
        desc.get_document("to").unwrap(),
        &doc! {"db": "ren", "coll": "b"}
    );
    assert_eq!(desc.get("dropTarget"), Some(&target_uuid));
    let e = next(&mut target).await;
    assert_eq!(e.operation_type, OperationType::Rename);
    assert_eq!(
        next(&mut target).await.operation_type,
        OperationType::Invalidate
    );
    drop((dbs, target));
    drop(client);
    sim.shutdown().await;
}

/// Expanded update events list paths whose field names look like array indexes or contain dots
/// in `updateDescription.disambiguatedPaths` (mongod 6.1+); plain events have no such field.
#[tokio::test]
async fn expanded_updates_carry_disambiguated_paths() {
    let (sim, client) = start().await;
    let coll = client.database("dis").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "a": {"0": 0}, "arr": [1, 2]})
        .await
        .unwrap();
    let mut expanded = coll
        .watch()
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap();
    let mut plain = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap();
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"a.0": 5, "arr.1": 7}})
        .await
        .unwrap();
    let e = bson::to_document(&next(&mut expanded).await).unwrap();
    let ud = e.get_document("updateDescription").unwrap();
    assert_eq!(
        ud.get_document("disambiguatedPaths").unwrap(),
        &doc! {"a.0": ["a", "0"]},
        "{ud}"
    );
    let e = bson::to_document(&next(&mut plain).await).unwrap();
    assert!(!e
        .get_document("updateDescription")
        .unwrap()
        .contains_key("disambiguatedPaths"));
    drop((expanded, plain));
    drop(client);
    sim.shutdown().await;
}

/// `$changeStream` runs at read concern majority only (InvalidOptions otherwise).
#[tokio::test]
async fn change_streams_refuse_read_concerns_other_than_majority() {
    let (sim, client) = start().await;
    let db = client.database("rc");
    for level in ["local", "linearizable", "available"] {
        let e = db
            .run_command(doc! {
                "aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {},
                "readConcern": {"level": level},
            })
            .await
            .expect_err("refused");
        assert_eq!(code(&e), Some(72), "{level}: {e}");
        assert!(e
            .to_string()
            .contains("cannot run with a readConcern other than 'majority'"));
    }
    for rc in [doc! {"level": "majority"}, doc! {}] {
        db.run_command(doc! {
            "aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "readConcern": rc,
        })
        .await
        .expect("majority or none");
    }
    drop(client);
    sim.shutdown().await;
}

/// Field paths and literals in `$project` (and `$addFields`, `$replaceRoot`) after
/// `$changeStream`.
#[tokio::test]
async fn expressions_after_change_stream() {
    let (sim, client) = start().await;
    let coll = client.database("expr").collection::<Document>("c");
    let mut s = coll
        .watch()
        .pipeline([
            doc! {"$project": {"operationType": 1, "key": "$documentKey._id", "tag": {"$literal": "$x"}, "n": {"$literal": 7i64}, "when": "$clusterTime"}},
            doc! {"$addFields": {"copy": "$key", "fixed": "text"}},
        ])
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap()
        .with_type::<Document>();
    coll.insert_one(doc! {"_id": 42, "x": 1}).await.unwrap();
    let e = loop {
        if let Some(e) = s.next_if_any().await.unwrap() {
            break e;
        }
    };
    assert_eq!(e.get_str("operationType").unwrap(), "insert");
    assert_eq!(e.get_i32("key").unwrap(), 42);
    assert_eq!(e.get_str("tag").unwrap(), "$x");
    assert_eq!(e.get_i64("n").unwrap(), 7);
    assert!(e.get_timestamp("when").is_ok());
    assert_eq!(e.get_i32("copy").unwrap(), 42);
    assert_eq!(e.get_str("fixed").unwrap(), "text");
    assert!(e.get_document("_id").is_ok(), "the resume token stays");
    assert!(!e.contains_key("fullDocument"));
    drop(s);
    drop(client);
    sim.shutdown().await;
}

/// Collations other than the simple one are refused by every command that takes one, not
/// silently ignored.
#[tokio::test]
async fn collations_are_refused_everywhere() {
    let (sim, client) = start().await;
    let db = client.database("col");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1, "s": "a"})
        .await
        .unwrap();
    let fr = doc! {"locale": "fr", "strength": 1};
    let commands = [
        doc! {"find": "c", "collation": fr.clone()},
        doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"x": 1}}, "collation": fr.clone()}]},
        doc! {"delete": "c", "deletes": [{"q": {"s": "A"}, "limit": 0, "collation": fr.clone()}]},
        doc! {"findAndModify": "c", "query": {}, "remove": true, "collation": fr.clone()},
        doc! {"count": "c", "query": {"s": "A"}, "collation": fr.clone()},
        doc! {"distinct": "c", "key": "s", "collation": fr.clone()},
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "collation": fr.clone()},
    ];
    for cmd in commands {
        let e = db.run_command(cmd.clone()).await.expect_err("refused");
        assert_eq!(code(&e), Some(238), "{cmd}: {e}");
    }
    let simple = doc! {"locale": "simple"};
    let r = db
        .run_command(doc! {"count": "c", "query": {"s": "a"}, "collation": simple.clone()})
        .await
        .expect("simple collation");
    assert_eq!(r.get_i64("n").unwrap(), 1);
    db.run_command(
        doc! {"delete": "c", "deletes": [{"q": {"_id": 9}, "limit": 1, "collation": simple}]},
    )
    .await
    .expect("simple collation");
    assert_eq!(
        sim.collection_len("col", "c"),
        1,
        "nothing deleted by a refused command"
    );
    drop(client);
    sim.shutdown().await;
}

/// Statement and document validation as mongod does it.
#[tokio::test]
async fn statements_stages_and_parameters_are_validated_as_mongod_does() {
    let (sim, client) = start().await;
    let db = client.database("val");
    // `_id` with a `$`-prefixed field: a write error 52.
    let e = db
        .collection::<Document>("c")
        .insert_one(doc! {"_id": {"$a": 1}})
        .await
        .expect_err("refused");
    assert_eq!(code(&e), Some(52), "{e}");
    assert!(
        e.to_string().contains(
            "_id fields may not contain '$'-prefixed fields: $a is not valid for storage."
        ),
        "{e}"
    );
    // An unknown field of an update statement fails the whole command (ok: 0), nothing applied.
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1, "v": 0})
        .await
        .unwrap();
    let r = db
        .run_command(doc! {"update": "c", "updates": [
            {"q": {"_id": 1}, "u": {"$set": {"v": 1}}},
            {"q": {"_id": 1}, "u": {"$set": {"v": 2}}, "bogus": true},
        ]})
        .await;
    let e = r.expect_err("a failed command");
    assert_eq!(code(&e), Some(40415), "{e}");
    assert_eq!(
        sim.collection_docs("val", "c"),
        vec![doc! {"_id": 1, "v": 0}]
    );
    let e = db
        .run_command(doc! {"delete": "c", "deletes": [{"q": {}}]})
        .await
        .expect_err("limit is required");
    assert_eq!(code(&e), Some(40414), "{e}");
    // Unknown stages are 40324; known ones the simulator lacks stay NotImplemented.
    let e = db
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$noSuchStage": {}}], "cursor": {}})
        .await
        .expect_err("unknown");
    assert_eq!(code(&e), Some(40324), "{e}");
    assert!(e
        .to_string()
        .contains("Unrecognized pipeline stage name: '$noSuchStage'"));
    let e = db
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": "x", "localField": "a", "foreignField": "b", "as": "y"}}], "cursor": {}})
        .await
        .expect_err("not simulated");
    assert_eq!(code(&e), Some(238), "{e}");
    // getParameter.
    let admin = client.database("admin");
    let all = admin
        .run_command(doc! {"getParameter": "*"})
        .await
        .expect("all");
    for p in [
        "featureCompatibilityVersion",
        "maxBSONDepth",
        "cursorTimeoutMillis",
        "transactionLifetimeLimitSeconds",
        "authenticationMechanisms",
    ] {
        assert!(all.contains_key(p), "{p} in {all}");
    }
    let one = admin
        .run_command(doc! {"getParameter": 1, "maxBSONDepth": 1})
        .await
        .expect("one");
    assert_eq!(one.get_i32("maxBSONDepth").unwrap(), 200);
    assert!(!one.contains_key("cursorTimeoutMillis"));
    let e = admin
        .run_command(doc! {"getParameter": 1, "noSuchParameter": 1})
        .await
        .expect_err("none");
    assert_eq!(code(&e), Some(72), "{e}");
    drop(client);
    sim.shutdown().await;
}

/// Time-series collections do not enforce unique `_id`s (measurements live in buckets).
#[tokio::test]
async fn time_series_ids_need_not_be_unique() {
    let (sim, client) = start().await;
    let db = client.database("ts");
    db.run_command(doc! {"create": "m", "timeseries": {"timeField": "t"}})
        .await
        .unwrap();
    let coll = db.collection::<Document>("m");
    let now = bson::DateTime::now();
    coll.insert_one(doc! {"_id": 1, "t": now, "v": 1})
        .await
        .unwrap();
    coll.insert_one(doc! {"_id": 1, "t": now, "v": 2})
        .await
        .expect("a second measurement with the same _id");
    assert_eq!(coll.count_documents(doc! {"_id": 1}).await.unwrap(), 2);
    let plain = db.collection::<Document>("plain");
    plain.insert_one(doc! {"_id": 1}).await.unwrap();
    let e = plain.insert_one(doc! {"_id": 1}).await.expect_err("dup");
    assert_eq!(code(&e), Some(11000));
    drop(client);
    sim.shutdown().await;
}

/// `onPrimaryTransactionalWrite`: a retryable write commits, then the connection closes; the
/// driver retries and gets the recorded result, and the write is applied once. With
/// `failBeforeCommitExceptionCode` the write fails and is not applied.
#[tokio::test]
async fn committed_then_the_network_failed() {
    let (sim, client) = start().await;
    let coll = client.database("otw").collection::<Document>("c");
    let admin = client.database("admin");
    admin
        .run_command(
            doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1}},
        )
        .await
        .expect("fail point");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .unwrap();
    coll.insert_one(doc! {"_id": 1})
        .await
        .expect("retried after the lost answer");
    assert_eq!(sim.collection_docs("otw", "c"), vec![doc! {"_id": 1}]);
    assert_eq!(next(&mut s).await.operation_type, OperationType::Insert);
    let more = tokio::time::timeout(Duration::from_millis(300), s.next_if_any()).await;
    assert!(
        !matches!(more, Ok(Ok(Some(_)))),
        "one insert event only: {more:?}"
    );
    admin
        .run_command(
            doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1},
            "data": {"closeConnection": false, "failBeforeCommitExceptionCode": 2}},
        )
        .await
        .expect("fail point");
    let e = coll
        .insert_one(doc! {"_id": 2})
        .await
        .expect_err("failed before commit");
    assert_eq!(code(&e), Some(2), "{e}");
    assert_eq!(sim.collection_len("otw", "c"), 1);
    drop(s);
    drop(client);
    sim.shutdown().await;
}

fn nested(depth: usize) -> RawDocumentBuf {
    let mut d = bson::rawdoc! {"leaf": 1};
    for _ in 1..depth {
        let mut outer = RawDocumentBuf::new();
        outer.append("n", d);
        d = outer;
    }
    d
}

/// What an insert does to hostile documents (mongod's `fixDocumentForInsert`).
#[tokio::test]
async fn inserts_fix_and_refuse_documents_as_mongod_does() {
    let (sim, client) = start().await;
    let coll = client.database("ins").collection::<RawDocumentBuf>("c");
    // 180 levels are stored; 181 are Overflow.
    let mut ok = nested(180);
    ok.append("_id", 1);
    coll.insert_one(ok).await.expect("180 levels");
    let mut deep = nested(181);
    deep.append("_id", 2);
    let e = coll.insert_one(deep).await.expect_err("181 levels");
    assert_eq!(code(&e), Some(15), "{e}");
    assert!(
        e.to_string().contains("exceeds 180 levels of nesting"),
        "{e}"
    );
    // Two `_id` fields: BadValue.
    let mut twice = RawDocumentBuf::new();
    twice.append("_id", 3);
    twice.append("x", 1);
    twice.append("_id", 4);
    let e = coll.insert_one(twice).await.expect_err("two _id");
    assert_eq!(code(&e), Some(2), "{e}");
    assert!(e
        .to_string()
        .contains("can't have multiple _id fields in one document"));
    // `_id` moves to the front; a top-level Timestamp(0, 0) becomes a cluster time.
    let mut late = RawDocumentBuf::new();
    late.append("a", 1);
    late.append(
        "ts",
        bson::Timestamp {
            time: 0,
            increment: 0,
        },
    );
    late.append(
        "nested",
        bson::rawdoc! {"ts": bson::Timestamp { time: 0, increment: 0 }},
    );
    late.append("_id", 5);
    coll.insert_one(late).await.unwrap();
    let stored = sim
        .collection_docs("ins", "c")
        .into_iter()
        .find(|d| d.get("_id") == Some(&Bson::Int32(5)))
        .unwrap();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["_id", "a", "ts", "nested"]
    );
    let ts = stored.get_timestamp("ts").unwrap();
    assert!(ts.time > 0, "{ts:?}");
    assert_eq!(
        stored
            .get_document("nested")
            .unwrap()
            .get_timestamp("ts")
            .unwrap(),
        bson::Timestamp {
            time: 0,
            increment: 0
        },
        "only top-level timestamps are filled"
    );
    // Type names in messages.
    let plain = client.database("ins").collection::<Document>("t");
    plain
        .insert_one(doc! {"_id": 1, "r": bson::Regex { pattern: "a".into(), options: String::new() }, "k": Bson::MinKey})
        .await
        .unwrap();
    let e = plain
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"r": 1}})
        .await
        .expect_err("not a number");
    assert!(e.to_string().contains("type regex"), "{e}");
    let e = plain
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"k": 1}})
        .await
        .expect_err("not a number");
    assert!(e.to_string().contains("type minKey"), "{e}");
    drop(client);
    sim.shutdown().await;
}
