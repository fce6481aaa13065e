//! Change events over 16 MB, as mongod 7.0 (and 6.0.9+) treats them: without
//! `$changeStreamSplitLargeEvent` the getMore fails with BSONObjectTooLarge (10334); with it the
//! event arrives as fragments (`splitEvent: {fragment, of}`, a resume token each) that reassemble
//! to the event, and a stream resumed from a fragment's token continues with the next fragment.
//! The stage's placement rules and a server without the stage (6.0.8) are checked too
//! (mongod's `jstests/change_streams/split_large_event.js`).

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongo_sim::{MongoSim, ServerVersion, SimOptions};
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use mongodb::Client;

use crate::code;

const BIG: usize = 10 * 1024 * 1024;

async fn start_as(version: ServerVersion) -> (MongoSim, Client) {
    let sim = MongoSim::start(SimOptions {
        noop_interval: None,
        server_version: version,
        ..Default::default()
    })
    .await
    .expect("start simulator");
    let client = Client::with_uri_str(sim.uri()).await.expect("client");
    (sim, client)
}

/// A collection with pre- and post-images and one ~10 MB document, and the token before its
/// ~10 MB update (whose event, with both images, is ~30 MB).
async fn big_update(client: &Client) -> ResumeToken {
    let db = client.database("big");
    db.create_collection("docs")
        .change_stream_pre_and_post_images(
            mongodb::options::ChangeStreamPreAndPostImages::builder()
                .enabled(true)
                .build(),
        )
        .await
        .expect("create");
    let coll = db.collection::<Document>("docs");
    coll.insert_one(doc! {"_id": "aaa", "a": "x".repeat(BIG)})
        .await
        .expect("insert");
    let start = coll.watch().await.expect("watch");
    let token = start.resume_token().expect("a token");
    drop(start);
    coll.update_one(doc! {"_id": "aaa"}, doc! {"$set": {"a": "y".repeat(BIG)}})
        .await
        .expect("update");
    token
}

async fn next(s: &mut ChangeStream<Document>) -> mongodb::error::Result<Document> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(d) = s.next_if_any().await? {
            return Ok(d);
        }
        assert!(tokio::time::Instant::now() < deadline, "no event in 20 s");
    }
}

/// The error of a stream that fails on its first events: at the aggregate (which returns the
/// first batch) or at the next getMore.
async fn first_error(
    opened: mongodb::error::Result<ChangeStream<Document>>,
) -> mongodb::error::Error {
    match opened {
        Err(e) => e,
        Ok(mut s) => next(&mut s).await.expect_err("the stream fails"),
    }
}

async fn watch(
    client: &Client,
    split: bool,
    start: ResumeToken,
) -> mongodb::error::Result<ChangeStream<Document>> {
    let pipeline = if split {
        vec![doc! {"$changeStreamSplitLargeEvent": {}}]
    } else {
        Vec::new()
    };
    Ok(client
        .database("big")
        .collection::<Document>("docs")
        .watch()
        .pipeline(pipeline)
        .full_document(FullDocumentType::Required)
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .resume_after(start)
        .max_await_time(Duration::from_millis(100))
        .await?
        .with_type::<Document>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_16_mb_are_split_into_fragments_that_reassemble_and_resume() {
    let (sim, client) = start_as(ServerVersion::V7_0).await;
    let start = big_update(&client).await;

    // Without the stage, the event cannot be sent: BSONObjectTooLarge.
    let e = first_error(watch(&client, false, start.clone()).await).await;
    assert_eq!(code(&e), Some(10334), "an event over 16 MB: {e}");

    // With it: three fragments, each under 16 MB, tokens in order, reassembling to the event.
    let mut split = watch(&client, true, start.clone()).await.expect("watch");
    let mut event = Document::new();
    let mut tokens = Vec::new();
    for n in 1..=3 {
        let fragment = next(&mut split).await.expect("a fragment");
        assert_eq!(
            fragment.get_document("splitEvent").expect("splitEvent"),
            &doc! {"fragment": n, "of": 3},
            "fragment {n}"
        );
        assert!(bson::to_vec(&fragment).unwrap().len() <= 16 * 1024 * 1024 + 8 * 1024);
        tokens.push(fragment.get_document("_id").unwrap().clone());
        for (k, v) in fragment {
            if k != "_id" && k != "splitEvent" {
                assert!(event.insert(k.clone(), v).is_none(), "{k} in two fragments");
            }
        }
    }
    let mut sorted = tokens.clone();
    sorted.sort_by(|a, b| a.get_str("_data").unwrap().cmp(b.get_str("_data").unwrap()));
    assert_eq!(tokens, sorted, "fragment tokens are ordered");
    assert_eq!(event.get_str("operationType").unwrap(), "update");
    assert_eq!(
        event.get_document("documentKey").unwrap(),
        &doc! {"_id": "aaa"}
    );
    assert_eq!(
        event
            .get_document("fullDocument")
            .unwrap()
            .get_str("a")
            .unwrap(),
        "y".repeat(BIG)
    );
    assert_eq!(
        event
            .get_document("fullDocumentBeforeChange")
            .unwrap()
            .get_str("a")
            .unwrap(),
        "x".repeat(BIG)
    );
    assert_eq!(
        event
            .get_document("updateDescription")
            .unwrap()
            .get_document("updatedFields")
            .unwrap()
            .get_str("a")
            .unwrap()
            .len(),
        BIG
    );

    // Resuming from the second fragment's token continues with the third.
    let second: ResumeToken = bson::from_document(tokens[1].clone()).unwrap();
    let mut resumed = watch(&client, true, second.clone()).await.expect("watch");
    let third = next(&mut resumed).await.expect("the last fragment");
    assert_eq!(
        third.get_document("splitEvent").unwrap(),
        &doc! {"fragment": 3, "of": 3}
    );
    assert_eq!(third.get_document("_id").unwrap(), &tokens[2]);

    // A fragment's token needs the stage, and a pipeline that splits the same way.
    let e = watch(&client, false, second.clone())
        .await
        .expect_err("no split stage");
    assert_eq!(code(&e), Some(280), "{e}");
    let smaller = client
        .database("big")
        .collection::<Document>("docs")
        .watch()
        .pipeline([doc! {"$changeStreamSplitLargeEvent": {}}])
        .resume_after(second)
        .max_await_time(Duration::from_millis(100))
        .await
        .map(|s| s.with_type::<Document>());
    let e = first_error(smaller).await;
    assert_eq!(code(&e), Some(280), "no images: not split: {e}");
    drop((split, resumed));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_split_stage_stands_last_once_in_a_change_stream_only() {
    let (sim, client) = start_as(ServerVersion::V7_0).await;
    let db = client.database("big");
    let aggregate = |pipeline: Vec<Document>| {
        let db = db.clone();
        async move {
            db.run_command(doc! {"aggregate": "docs", "pipeline": pipeline, "cursor": {}})
                .await
        }
    };
    let split = doc! {"$changeStreamSplitLargeEvent": {}};
    let cs = doc! {"$changeStream": {}};
    let cases: Vec<(Vec<Document>, i32)> = vec![
        (vec![split.clone()], 20),
        (vec![cs.clone(), split.clone(), split.clone()], 7_182_802),
        (
            vec![
                cs.clone(),
                split.clone(),
                doc! {"$project": {"fullDocument": 0}},
            ],
            7_182_802,
        ),
        (
            vec![cs.clone(), doc! {"$changeStreamSplitLargeEvent": {"x": 1}}],
            7_182_800,
        ),
        (vec![cs.clone(), doc! {"$sort": {"a": 1}}], 20),
        (vec![cs.clone(), doc! {"$noSuchStage": {}}], 40324),
    ];
    for (pipeline, want) in cases {
        let e = aggregate(pipeline.clone()).await.expect_err("refused");
        assert_eq!(code(&e), Some(want), "{pipeline:?}: {e}");
    }
    aggregate(vec![cs.clone(), doc! {"$match": {}}, split.clone()])
        .await
        .expect("last stage after $match");
    drop(client);
    sim.shutdown().await;

    // 6.0.8 has no such stage; 6.0.9 has it.
    let (old, client) = start_as(ServerVersion::new(6, 0, 8)).await;
    let e = client
        .database("big")
        .run_command(
            doc! {"aggregate": "docs", "pipeline": [cs.clone(), split.clone()], "cursor": {}},
        )
        .await
        .expect_err("unknown on 6.0.8");
    assert_eq!(code(&e), Some(40324), "{e}");
    let info = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
        .unwrap();
    assert_eq!(info.get_str("version").unwrap(), "6.0.8");
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap();
    assert_eq!(hello.get("maxWireVersion"), Some(&Bson::Int32(17)));
    drop(client);
    old.shutdown().await;
    let (patched, client) = start_as(ServerVersion::new(6, 0, 9)).await;
    client
        .database("big")
        .run_command(doc! {"aggregate": "docs", "pipeline": [cs, split], "cursor": {}})
        .await
        .expect("6.0.9 splits");
    drop(client);
    patched.shutdown().await;
}
