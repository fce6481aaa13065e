//! CRUD, find options and query matching through the driver.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::options::FindOptions;

use crate::{code, start};

#[tokio::test]
async fn handshake_ping_and_build_info() {
    let (sim, client) = start().await;
    let db = client.database("admin");
    let r = db.run_command(doc! {"ping": 1}).await.expect("ping");
    assert_eq!(r.get_f64("ok").ok(), Some(1.0));
    let hello = db.run_command(doc! {"hello": 1}).await.expect("hello");
    assert_eq!(hello.get_bool("isWritablePrimary").ok(), Some(true));
    assert_eq!(hello.get_str("setName").ok(), Some("rs0"));
    assert_eq!(hello.get_i32("maxWireVersion").ok(), Some(21));
    let bi = db
        .run_command(doc! {"buildInfo": 1})
        .await
        .expect("buildInfo");
    assert_eq!(bi.get_str("version").ok(), Some("7.0.0"));
    let e = db
        .run_command(doc! {"noSuchCommand": 1})
        .await
        .expect_err("unknown");
    assert_eq!(code(&e), Some(59));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn insert_find_natural_order_and_duplicate_key() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("c");
    coll.insert_many(vec![
        doc! {"_id": 3, "a": 1},
        doc! {"_id": 1, "a": 2},
        doc! {"_id": 2, "a": 3},
    ])
    .await
    .expect("insert");
    let docs: Vec<Document> = coll
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("collect");
    let ids: Vec<i32> = docs.iter().map(|d| d.get_i32("_id").expect("id")).collect();
    assert_eq!(ids, vec![3, 1, 2], "unsorted find returns natural order");
    let e = coll.insert_one(doc! {"_id": 1.0}).await.expect_err("dup");
    assert_eq!(code(&e), Some(11000), "1.0 duplicates 1 in the _id index");
    // A generated _id is an ObjectId placed first.
    let r = coll.insert_one(doc! {"x": 1}).await.expect("insert");
    assert!(matches!(r.inserted_id, Bson::ObjectId(_)));
    assert_eq!(sim.collection_len("db", "c"), 4);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn find_options_sort_projection_skip_limit_batch() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("c");
    let docs: Vec<Document> = (0..250)
        .map(|i| doc! {"_id": i, "g": i % 3, "s": format!("v{i}")})
        .collect();
    coll.insert_many(docs).await.expect("insert");
    let opts = FindOptions::builder()
        .sort(doc! {"g": -1, "_id": 1})
        .projection(doc! {"s": 0})
        .skip(5)
        .limit(50)
        .batch_size(7)
        .build();
    let got: Vec<Document> = coll
        .find(doc! {"_id": {"$gte": 10}})
        .with_options(opts)
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(got.len(), 50);
    assert!(got
        .iter()
        .all(|d| !d.contains_key("s") && d.get_i32("g") == Ok(2)));
    assert_eq!(
        got[0].get_i32("_id").ok(),
        Some(26),
        "skip 5 of g=2 ids >= 10: 11,14,17,20,23"
    );
    let single: Vec<Document> = coll
        .find(doc! {})
        .batch_size(3)
        .limit(-3)
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(single.len(), 3);
    let n = coll.count_documents(doc! {"g": 1}).await.expect("count");
    assert_eq!(n, 83);
    let est = coll.estimated_document_count().await.expect("estimated");
    assert_eq!(est, 250);
    let distinct = coll.distinct("g", doc! {}).await.expect("distinct");
    assert_eq!(
        distinct,
        vec![Bson::Int32(0), Bson::Int32(1), Bson::Int32(2)]
    );
    assert_eq!(sim.open_cursors(), 0, "exhausted cursors are closed");
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn query_operators_through_the_driver() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("q");
    coll.insert_many(vec![
        doc! {"_id": 1, "n": 1, "tags": ["a", "b"], "sub": {"x": 1}},
        doc! {"_id": 2, "n": 2.5, "tags": ["c"], "sub": {"x": 2}},
        doc! {"_id": 3, "n": "three", "sub": [{"x": 3}, {"x": 4}]},
        doc! {"_id": 4, "n": null},
        doc! {"_id": 5},
    ])
    .await
    .expect("insert");
    let ids = |f: Document| {
        let coll = coll.clone();
        async move {
            let docs: Vec<Document> = coll
                .find(f)
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("c");
            docs.iter()
                .map(|d| d.get_i32("_id").expect("id"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(doc! {"n": {"$gt": 1}}).await,
        vec![2],
        "numbers only: type bracketing"
    );
    assert_eq!(ids(doc! {"n": {"$gte": ""}}).await, vec![3]);
    assert_eq!(
        ids(doc! {"n": null}).await,
        vec![4, 5],
        "null matches missing"
    );
    assert_eq!(ids(doc! {"n": {"$exists": false}}).await, vec![5]);
    assert_eq!(ids(doc! {"tags": "c"}).await, vec![2]);
    assert_eq!(ids(doc! {"tags": {"$in": ["a", "z"]}}).await, vec![1]);
    assert_eq!(ids(doc! {"tags": {"$nin": ["a"]}}).await, vec![2, 3, 4, 5]);
    assert_eq!(
        ids(doc! {"sub.x": {"$gte": 2}}).await,
        vec![2, 3],
        "dotted path through an array"
    );
    assert_eq!(
        ids(doc! {"$or": [{"_id": 1}, {"n": "three"}]}).await,
        vec![1, 3]
    );
    assert_eq!(
        ids(doc! {"$and": [{"_id": {"$lt": 3}}, {"n": {"$type": "double"}}]}).await,
        vec![2]
    );
    let e = coll
        .find(doc! {"n": {"$bogus": 1}})
        .await
        .expect_err("bad operator");
    assert_eq!(code(&e), Some(2));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn updates_upserts_deletes_find_and_modify() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("u");
    coll.insert_many(vec![
        doc! {"_id": 1, "n": 1, "arr": [1, 2]},
        doc! {"_id": 2, "n": 5, "arr": []},
    ])
    .await
    .expect("insert");
    let r = coll
        .update_one(
            doc! {"_id": 1},
            doc! {"$inc": {"n": 2}, "$push": {"arr": 3}, "$set": {"s.t": "x"}},
        )
        .await
        .expect("update");
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    assert_eq!(
        sim.collection_docs("db", "u")[0],
        doc! {"_id": 1, "n": 3, "arr": [1, 2, 3], "s": {"t": "x"}}
    );
    let r = coll
        .update_many(doc! {}, doc! {"$set": {"n": 5}})
        .await
        .expect("many");
    assert_eq!(
        (r.matched_count, r.modified_count),
        (2, 1),
        "no-op updates are not modifications"
    );
    let r = coll
        .update_one(doc! {"_id": 9, "k": "v"}, doc! {"$set": {"z": 1}})
        .upsert(true)
        .await
        .expect("upsert");
    assert_eq!(r.upserted_id, Some(Bson::Int32(9)));
    assert_eq!(
        sim.collection_docs("db", "u")[2],
        doc! {"_id": 9, "k": "v", "z": 1}
    );
    let r = coll
        .replace_one(doc! {"_id": 2}, doc! {"r": true})
        .await
        .expect("replace");
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        sim.collection_docs("db", "u")[1],
        doc! {"_id": 2, "r": true}
    );
    let e = coll
        .update_one(doc! {"_id": 2}, doc! {"$set": {"_id": 3}})
        .await
        .expect_err("immutable");
    assert_eq!(code(&e), Some(66));
    let e = coll
        .update_one(doc! {"_id": 2}, doc! {"$inc": {"r": 1}})
        .await
        .expect_err("type");
    assert_eq!(code(&e), Some(14));
    let before = coll
        .find_one_and_update(doc! {"_id": 1}, doc! {"$pull": {"arr": {"$gte": 2}}})
        .await
        .expect("fam")
        .expect("doc");
    assert_eq!(before.get_array("arr").map(Vec::len).ok(), Some(3));
    let after = coll
        .find_one_and_update(
            doc! {"_id": 1},
            doc! {"$addToSet": {"arr": 7}, "$rename": {"n": "m"}},
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .await
        .expect("fam")
        .expect("doc");
    assert_eq!(
        after,
        doc! {"_id": 1, "arr": [1, 7], "s": {"t": "x"}, "m": 5}
    );
    let removed = coll
        .find_one_and_delete(doc! {"_id": 9})
        .await
        .expect("fad");
    assert_eq!(removed.and_then(|d| d.get_i32("_id").ok()), Some(9));
    let r = coll.delete_many(doc! {}).await.expect("delete");
    assert_eq!(r.deleted_count, 2);
    assert_eq!(sim.collection_len("db", "u"), 0);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn aggregate_stages_and_split_points() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("a");
    let docs: Vec<Document> = (0..100).map(|i| doc! {"_id": i, "g": i % 4}).collect();
    coll.insert_many(docs).await.expect("insert");
    let run = |p: Vec<Document>| {
        let coll = coll.clone();
        async move {
            coll.aggregate(p)
                .await
                .expect("agg")
                .try_collect::<Vec<Document>>()
                .await
                .expect("c")
        }
    };
    let r = run(vec![
        doc! {"$match": {"g": 1}},
        doc! {"$sort": {"_id": -1}},
        doc! {"$skip": 1},
        doc! {"$limit": 2},
        doc! {"$project": {"g": 0}},
    ])
    .await;
    assert_eq!(r, vec![doc! {"_id": 93}, doc! {"_id": 89}]);
    let r = run(vec![
        doc! {"$group": {"_id": "$g", "n": {"$sum": 1}}},
        doc! {"$sort": {"_id": 1}},
    ])
    .await;
    assert_eq!(r.len(), 4);
    assert!(r.iter().all(|d| d.get_i32("n") == Ok(25)));
    let r = run(vec![doc! {"$group": {"_id": null, "count": {"$sum": 1}}}]).await;
    assert_eq!(r, vec![doc! {"_id": null, "count": 100}]);
    let r = run(vec![doc! {"$count": "n"}]).await;
    assert_eq!(r, vec![doc! {"n": 100}]);
    let r = run(vec![doc! {"$sample": {"size": 10}}]).await;
    assert_eq!(r.len(), 10);
    let r = run(vec![
        doc! {"$bucketAuto": {"groupBy": "$_id", "buckets": 4}},
    ])
    .await;
    assert_eq!(r.len(), 4);
    assert_eq!(r[0], doc! {"_id": {"min": 0, "max": 25}, "count": 25});
    assert_eq!(r[3], doc! {"_id": {"min": 75, "max": 99}, "count": 25});
    let r = run(vec![doc! {"$collStats": {"count": {}}}]).await;
    assert_eq!(r[0].get_i64("count").ok(), Some(100));
    let e = coll
        .aggregate(vec![doc! {"$lookup": {}}])
        .await
        .expect_err("unsupported");
    assert_eq!(code(&e), Some(238));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn id_predicates_scan_the_index_and_snapshot_reads_are_refused() {
    let (sim, client) = start().await;
    let db = client.database("db");
    let coll = db.collection::<Document>("ix");
    sim.seed(
        "db",
        "ix",
        vec![
            doc! {"_id": 5},
            doc! {"_id": 1},
            doc! {"_id": "s"},
            doc! {"_id": 3},
        ],
    )
    .expect("seed");
    // mongod answers an `_id` range with an IXSCAN: `_id` order, type-bracketed.
    let got: Vec<Document> = coll
        .find(doc! {"_id": {"$gte": 2}})
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(got, vec![doc! {"_id": 3}, doc! {"_id": 5}]);
    let got: Vec<Document> = coll
        .find(doc! {"_id": {"$in": [5, 1]}})
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(got, vec![doc! {"_id": 1}, doc! {"_id": 5}]);
    let got: Vec<Document> = coll
        .find(doc! {"_id": {"$gt": 9, "$lt": 2}})
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    assert!(got.is_empty());
    let rev: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! {"$natural": -1})
        .batch_size(3)
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    let ids: Vec<Bson> = rev
        .iter()
        .map(|d| d.get("_id").cloned().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![
            Bson::Int32(3),
            Bson::String("s".into()),
            Bson::Int32(1),
            Bson::Int32(5)
        ]
    );
    // Other filters scan in natural order.
    let got: Vec<Document> = coll
        .find(doc! {"x": null})
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    let ids: Vec<Bson> = got
        .iter()
        .map(|d| d.get("_id").cloned().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![
            Bson::Int32(5),
            Bson::Int32(1),
            Bson::String("s".into()),
            Bson::Int32(3)
        ]
    );
    let e = db
        .run_command(doc! {"find": "ix", "readConcern": {"level": "snapshot"}})
        .await
        .expect_err("snapshot reads are not simulated");
    assert_eq!(code(&e), Some(238));
    db.run_command(doc! {"find": "ix", "readConcern": {"level": "majority"}})
        .await
        .expect("majority is fine");
    client
        .database("admin")
        .run_command(doc! {"endSessions": [{"id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 16] }}]})
        .await
        .expect("endSessions");
    drop(client);
    sim.shutdown().await;
}

#[test]
fn simulator_on_its_own_thread() {
    let sim =
        mongo_sim::MongoSim::start_on_thread(mongo_sim::SimOptions::default()).expect("start");
    sim.insert("t", "c", doc! {"_id": 1}).expect("insert");
    let uri = sim.uri();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let n = rt.block_on(async move {
        let client = mongodb::Client::with_uri_str(uri).await.expect("client");
        client
            .database("t")
            .collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .expect("count")
    });
    assert_eq!(n, 1);
    let addr = sim.addr();
    drop(sim);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "dropping the SimThread stops serving"
    );
}

#[tokio::test]
async fn seeding_helpers() {
    let (sim, client) = start().await;
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend(bson::to_vec(&doc! {"_id": i, "v": "x"}).expect("bson"));
    }
    assert_eq!(sim.seed_bson_bytes("s", "dump", &bytes).expect("seed"), 3);
    assert!(sim
        .seed_bson_bytes("s", "bad", &bytes[..bytes.len() - 1])
        .is_err());
    assert_eq!(sim.seed_sample("s", "sample", 50).expect("sample"), 50);
    let n = client
        .database("s")
        .collection::<Document>("sample")
        .count_documents(doc! {"tags": "even"})
        .await
        .expect("count");
    assert_eq!(n, 25);
    let e = sim
        .seed("s", "dump", vec![doc! {"_id": 1}])
        .expect_err("duplicate _id");
    assert!(e.to_string().contains("E11000"), "{e}");
    drop(client);
    sim.shutdown().await;
}
