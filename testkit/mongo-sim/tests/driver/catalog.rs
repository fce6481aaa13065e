//! Catalog commands through the driver.

use bson::{doc, Document};
use futures::TryStreamExt;

use crate::{code, start};

#[tokio::test]
async fn databases_collections_views_timeseries_indexes() {
    let (sim, client) = start().await;
    let db = client.database("shop");
    db.collection::<Document>("orders")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("i");
    db.create_collection("customers").await.expect("create");
    let e = db.create_collection("customers").await.expect_err("exists");
    assert_eq!(code(&e), Some(48));
    db.run_command(doc! {"create": "big", "viewOn": "orders", "pipeline": []})
        .await
        .expect("view");
    db.run_command(doc! {"create": "metrics", "timeseries": {"timeField": "t", "metaField": "m"}})
        .await
        .expect("ts");
    let e = db
        .run_command(doc! {"create": "capped", "capped": true, "size": 100})
        .await
        .expect_err("capped");
    assert_eq!(
        code(&e),
        Some(238),
        "unsupported options are refused, not ignored"
    );

    let names = client.list_database_names().await.expect("dbs");
    for n in ["admin", "config", "local", "shop"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let specs: Vec<_> = db
        .list_collections()
        .await
        .expect("lc")
        .try_collect()
        .await
        .expect("c");
    let kinds: Vec<(String, String)> = specs
        .iter()
        .map(|s| (s.name.clone(), format!("{:?}", s.collection_type)))
        .collect();
    assert!(kinds.contains(&("big".into(), "View".into())), "{kinds:?}");
    assert!(
        kinds.contains(&("metrics".into(), "Timeseries".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("system.buckets.metrics".into(), "Collection".into())),
        "{kinds:?}"
    );
    let orders = specs.iter().find(|s| s.name == "orders").expect("orders");
    assert!(orders.info.uuid.is_some(), "collections have UUIDs");
    let only: Vec<String> = db
        .list_collection_names()
        .filter(doc! {"type": "collection", "name": {"$in": ["orders", "big"]}})
        .await
        .expect("names");
    assert_eq!(only, vec!["orders".to_string()]);

    let coll = db.collection::<Document>("orders");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"a": 1}).build())
        .await
        .expect("index");
    let idx = coll.list_index_names().await.expect("indexes");
    assert_eq!(idx, vec!["_id_".to_string(), "a_1".to_string()]);
    let unique = mongodb::IndexModel::builder()
        .keys(doc! {"b": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .unique(true)
                .build(),
        )
        .build();
    let e = coll
        .create_index(unique)
        .await
        .expect_err("unique secondary");
    assert_eq!(code(&e), Some(238));

    let admin = client.database("admin");
    let e = admin
        .run_command(doc! {"renameCollection": "shop.nope", "to": "shop.x"})
        .await
        .expect_err("missing");
    assert_eq!(code(&e), Some(26));
    let e = admin
        .run_command(doc! {"renameCollection": "shop.orders", "to": "shop.customers"})
        .await
        .expect_err("exists");
    assert_eq!(code(&e), Some(48));
    admin
        .run_command(doc! {"renameCollection": "shop.orders", "to": "shop.orders2"})
        .await
        .expect("rename");
    assert_eq!(sim.collection_len("shop", "orders2"), 1);
    db.collection::<Document>("nope")
        .drop()
        .await
        .expect("dropping a missing collection is ok in 7.0");
    db.drop().await.expect("dropDatabase");
    let names = client.list_database_names().await.expect("dbs");
    assert!(!names.contains(&"shop".to_string()));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_command_replies_are_shaped_like_mongod() {
    let (sim, client) = start().await;
    let db = client.database("db");
    let r = db.run_command(doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 1}, {"_id": 2}], "ordered": false}).await.expect("insert");
    assert_eq!(r.get_i32("n").ok(), Some(2));
    let we = r.get_array("writeErrors").expect("writeErrors");
    let we = we[0].as_document().expect("doc");
    assert_eq!(we.get_i32("index").ok(), Some(1));
    assert_eq!(we.get_i32("code").ok(), Some(11000));
    assert!(r
        .get_document("$clusterTime")
        .and_then(|c| c.get_document("signature"))
        .is_ok());
    assert!(r.get_timestamp("operationTime").is_ok());
    let r = db
        .run_command(doc! {"find": "c", "filter": {}, "batchSize": 1})
        .await
        .expect("find");
    let cursor = r.get_document("cursor").expect("cursor");
    assert!(cursor.get_i64("id").expect("Int64 cursor id") != 0);
    assert_eq!(cursor.get_str("ns").ok(), Some("db.c"));
    let id = cursor.get_i64("id").expect("id");
    let r = db
        .run_command(doc! {"killCursors": "c", "cursors": [id, 99i64]})
        .await
        .expect("kill");
    assert_eq!(r.get_array("cursorsKilled").map(Vec::len).ok(), Some(1));
    assert_eq!(r.get_array("cursorsNotFound").map(Vec::len).ok(), Some(1));
    let e = db
        .run_command(doc! {"find": "c", "bogusOption": 1})
        .await
        .expect_err("unknown field");
    assert_eq!(code(&e), Some(40415));
    let e = db
        .run_command(doc! {"find": "c", "min": {"_id": 1}})
        .await
        .expect_err("min needs hint");
    assert_eq!(code(&e), Some(51173));
    let e = db
        .run_command(doc! {"find": "c", "hint": {"_id": 1}, "min": {"_id": 5}, "max": {"_id": 1}})
        .await
        .expect_err("inverted bounds");
    assert_eq!(code(&e), Some(2));
    let r = db
        .run_command(doc! {"find": "c", "filter": {"_id": {"$gte": 2, "$lt": 2}}})
        .await
        .expect("empty range");
    assert!(r
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("batch")
        .is_empty());
    let e = db
        .run_command(doc! {"find": "c", "hint": {"x": 1}})
        .await
        .expect_err("no such index");
    assert_eq!(code(&e), Some(2));
    let r = db
        .run_command(doc! {"insert": "c", "documents": [{"_id": 10}], "writeConcern": {"w": 2}})
        .await
        .expect("applied, with a writeConcernError");
    assert_eq!(
        r.get_document("writeConcernError")
            .and_then(|w| w.get_i32("code"))
            .ok(),
        Some(100)
    );
    assert!(sim.contains_id("db", "c", bson::Bson::Int32(10)));
    let r = db
        .run_command(doc! {"count": "c", "query": {"_id": {"$gt": 1}}})
        .await
        .expect("count");
    assert_eq!(
        r.get_i64("n").ok().or(r.get_i32("n").ok().map(i64::from)),
        Some(2)
    );
    drop(client);
    sim.shutdown().await;
}
