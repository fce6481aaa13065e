//! Property tests through the driver: over a collection with `_id`s of every type class,
//! `find` paged with `hint: {_id: 1}` + `min: {_id: last}` returns every document exactly once
//! in `_id` order, while `{_id: {$gt: x}}` brackets by type as mongod does.

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document, RawBson};
use futures::TryStreamExt;
use mongo_sim::ordering::{compare, type_class};
use mongo_sim::{MongoSim, SimOptions};
use proptest::prelude::*;

fn id_strategy() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        (-1.0e20f64..1.0e20).prop_map(Bson::Double),
        (any::<i32>(), -5i32..5)
            .prop_map(|(m, e)| Bson::Decimal128(format!("{m}E{e}").parse().expect("decimal"))),
        "[a-c]{0,3}".prop_map(Bson::String),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
        any::<bool>().prop_map(Bson::Boolean),
        any::<i64>().prop_map(|m| Bson::DateTime(bson::DateTime::from_millis(m))),
        (0u32..3, 0u32..3).prop_map(|(t, i)| Bson::Timestamp(bson::Timestamp {
            time: t,
            increment: i
        })),
        proptest::collection::vec(any::<u8>(), 0..3).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        (0i32..3).prop_map(|x| Bson::Document(doc! {"k": x})),
        Just(Bson::Null),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
    ]
}

fn raw(b: &Bson) -> RawBson {
    RawBson::try_from(b.clone()).expect("raw")
}

fn cmp(a: &Bson, b: &Bson) -> std::cmp::Ordering {
    compare(&raw(a).as_raw_bson_ref(), &raw(b).as_raw_bson_ref())
}

/// Distinct `_id`s (by BSON equality, as the unique index sees them) in BSON order.
fn unique_sorted(mut ids: Vec<Bson>) -> Vec<Bson> {
    ids.sort_by(cmp);
    ids.dedup_by(|a, b| cmp(a, b) == std::cmp::Ordering::Equal);
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn min_hint_paging_covers_every_type_exactly_once(
        ids in proptest::collection::vec(id_strategy(), 1..40),
        page in 1i64..6,
        probe in id_strategy(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async move {
            let sim = MongoSim::start(SimOptions { noop_interval: None, ..Default::default() }).await.expect("sim");
            let client = mongodb::Client::with_uri_str(sim.uri()).await.expect("client");
            let expected = unique_sorted(ids.clone());
            // Insert in a shuffled (reverse) order so natural order differs from _id order.
            let docs: Vec<Document> = expected.iter().rev().map(|id| doc! {"_id": id.clone()}).collect();
            sim.seed("p", "c", docs).expect("seed");
            let db = client.database("p");
            let mut got: Vec<Bson> = Vec::new();
            loop {
                let mut cmd = doc! {"find": "c", "sort": {"_id": 1}, "hint": {"_id": 1}, "limit": page + 1, "batchSize": page + 1};
                if let Some(last) = got.last() {
                    cmd.insert("min", doc! {"_id": last.clone()});
                }
                let r = db.run_command(cmd).await.expect("find");
                let batch = r.get_document("cursor").and_then(|c| c.get_array("firstBatch")).expect("batch").clone();
                let mut fresh: Vec<Bson> = batch.iter().map(|d| d.as_document().expect("doc").get("_id").expect("_id").clone()).collect();
                if let (Some(last), Some(first)) = (got.last(), fresh.first()) {
                    // `min` is inclusive: the first document is the previous page's last.
                    assert_eq!(cmp(last, first), std::cmp::Ordering::Equal);
                    fresh.remove(0);
                }
                if fresh.is_empty() {
                    break;
                }
                got.extend(fresh);
            }
            assert_eq!(got.len(), expected.len(), "every document exactly once");
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(cmp(g, e), std::cmp::Ordering::Equal, "{g} vs {e}");
            }
            // $gt brackets by type: only the probe's type class, and only greater values.
            let probe_raw = raw(&probe);
            let class = type_class(&probe_raw.as_raw_bson_ref());
            if !matches!(probe, Bson::MinKey | Bson::MaxKey | Bson::Null) {
                let found: Vec<Document> = db.collection::<Document>("c")
                    .find(doc! {"_id": {"$gt": probe.clone()}})
                    .await.expect("find").try_collect().await.expect("collect");
                let want: Vec<&Bson> = expected.iter().filter(|id| {
                    let r = raw(id);
                    type_class(&r.as_raw_bson_ref()) == class && cmp(id, &probe) == std::cmp::Ordering::Greater
                }).collect();
                assert_eq!(found.len(), want.len(), "$gt {probe} matched {found:?}");
                for d in &found {
                    let id = d.get("_id").expect("_id");
                    assert_eq!(type_class(&raw(id).as_raw_bson_ref()), class, "bracketed to the probe's type");
                }
            }
            drop(client);
            sim.shutdown().await;
        });
    }
}

#[tokio::test]
async fn gt_paging_skips_later_type_classes_but_min_does_not() {
    let sim = MongoSim::start(SimOptions {
        noop_interval: None,
        ..Default::default()
    })
    .await
    .expect("sim");
    let client = mongodb::Client::with_uri_str(sim.uri())
        .await
        .expect("client");
    sim.seed(
        "p",
        "m",
        vec![
            doc! {"_id": 1},
            doc! {"_id": 2.5},
            doc! {"_id": "a"},
            doc! {"_id": bson::oid::ObjectId::new()},
            doc! {"_id": true},
        ],
    )
    .expect("seed");
    let coll = client.database("p").collection::<Document>("m");
    let gt: Vec<Document> = coll
        .find(doc! {"_id": {"$gt": 1}})
        .await
        .expect("f")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(
        gt.len(),
        1,
        "only 2.5: the string, ObjectId and bool are other type classes"
    );
    let r = client
        .database("p")
        .run_command(doc! {"find": "m", "hint": {"_id": 1}, "min": {"_id": 1}, "skip": 1})
        .await
        .expect("find");
    let batch = r
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("b");
    assert_eq!(batch.len(), 4, "index bounds are not bracketed");
    let r = client
        .database("p")
        .run_command(doc! {"find": "m", "hint": {"_id": 1}, "min": {"_id": 2}, "max": {"_id": "b"}})
        .await
        .expect("find");
    let batch = r
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("b");
    assert_eq!(batch.len(), 2, "max is exclusive: 2.5 and \"a\"");
    drop(client);
    sim.shutdown().await;
}
