//! Faults: stepdown, dropped connections, fail points, pauses, retryable-write dedupe, awaitable
//! hello, and which errors the driver resumes or retries from.

use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::Client;

use crate::change_streams::next;
use crate::{code, start};

#[tokio::test]
async fn awaitable_hello_is_held_not_spun() {
    let (sim, client) = start().await;
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .expect("ping");
    let before = sim.command_count("hello") + sim.command_count("isMaster");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let during = sim.command_count("hello") + sim.command_count("isMaster") - before;
    // heartbeatFrequencyMS=500: a streaming monitor gets ~4 pushed replies and the RTT
    // monitor ~4 polls in 2 s. A server that answered awaitable hellos at once would see hundreds.
    assert!(during <= 30, "{during} hellos in 2 s");
    assert!(during >= 2, "the monitor keeps checking: {during}");
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn stepdown_errors_labels_and_recovery() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("s");
    coll.insert_one(doc! {"_id": 0}).await.expect("insert");
    let tv0 = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .expect("hello");
    sim.step_down();
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .expect("hello");
    assert_eq!(hello.get_bool("isWritablePrimary").ok(), Some(false));
    assert_eq!(hello.get_bool("secondary").ok(), Some(true));
    let c0 = tv0
        .get_document("topologyVersion")
        .and_then(|t| t.get_i64("counter"))
        .expect("counter");
    let c1 = hello
        .get_document("topologyVersion")
        .and_then(|t| t.get_i64("counter"))
        .expect("counter");
    assert!(c1 > c0, "topologyVersion.counter is bumped");
    let e = coll
        .insert_one(doc! {"_id": 1})
        .await
        .expect_err("not primary");
    assert_eq!(code(&e), Some(10107));
    assert!(e.contains_label("RetryableWriteError"));
    // Raw: a primary-only read on a secondary is refused; the error carries topologyVersion.
    let raw = client
        .database("db")
        .run_command(doc! {"find": "s", "$readPreference": {"mode": "primary"}})
        .await;
    let _ = raw; // the driver rewrites read preferences for direct connections; checked below
    sim.step_up();
    coll.insert_one(doc! {"_id": 1})
        .await
        .expect("primary again");
    // With a direct connection the single retry goes straight back to the same member.
    sim.step_down_for(Duration::from_millis(300))
        .expect("stepdown");
    let e = coll
        .insert_one(doc! {"_id": 2})
        .await
        .expect_err("retry meets the same secondary");
    assert_eq!(code(&e), Some(10107));
    // A replica-set client waits for a primary before retrying: the stepdown ends (the
    // awaitable hello returns at once on the topology change) and the retry succeeds.
    let rs = Client::with_uri_str(sim.replica_set_uri())
        .await
        .expect("rs client");
    let rs_coll = rs.database("db").collection::<Document>("s");
    rs_coll.insert_one(doc! {"_id": 2}).await.expect("primary");
    sim.step_down_for(Duration::from_millis(300))
        .expect("stepdown");
    let t = Instant::now();
    rs_coll
        .insert_one(doc! {"_id": 3})
        .await
        .expect("retried after re-election");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "no full heartbeat wait: {:?}",
        t.elapsed()
    );
    assert_eq!(sim.collection_len("db", "s"), 4);
    drop(rs);
    // replSetStepDown: refused on a single member without force, as mongod does.
    let admin = client.database("admin");
    let e = admin
        .run_command(doc! {"replSetStepDown": 1})
        .await
        .expect_err("needs force");
    assert_eq!(code(&e), Some(262));
    admin
        .run_command(doc! {"replSetStepDown": 1, "force": true})
        .await
        .expect("forced");
    assert!(!sim.is_primary());
    let t = Instant::now();
    while !sim.is_primary() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "stepped down for ~1 s"
    );
    assert!(sim.is_primary(), "re-elected after the stepdown period");
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn secondary_refuses_primary_reads_over_the_wire() {
    // A replica-set client (not direct): reads with the default primary preference cannot be
    // served while the only member is secondary.
    let (sim, client) = start().await;
    client
        .database("db")
        .collection::<Document>("r")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("i");
    sim.step_down();
    let uri = format!("{}&serverSelectionTimeoutMS=300", sim.replica_set_uri());
    let rs = Client::with_uri_str(uri).await.expect("client");
    let e = rs
        .database("db")
        .collection::<Document>("r")
        .find_one(doc! {})
        .await
        .expect_err("no primary");
    assert!(
        matches!(*e.kind, mongodb::error::ErrorKind::ServerSelection { .. }),
        "{e}"
    );
    sim.step_up();
    let d = rs
        .database("db")
        .collection::<Document>("r")
        .find_one(doc! {})
        .await
        .expect("found");
    assert_eq!(d, Some(doc! {"_id": 1}));
    drop((client, rs));
    sim.shutdown().await;
}

#[tokio::test]
async fn change_stream_resumes_after_dropped_connections_and_fail_points() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("cs");
    let admin = client.database("admin");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    sim.insert("db", "cs", doc! {"_id": 1}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 1}));
    // 1. The server closes every connection.
    sim.drop_connections();
    sim.insert("db", "cs", doc! {"_id": 2}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 2}));
    // 2. failCommand closeConnection on getMore.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["getMore"], "closeConnection": true}})
        .await
        .expect("fp");
    sim.insert("db", "cs", doc! {"_id": 3}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 3}));
    // 3. A retriable error after cursor checkout: the server labels it resumable.
    admin
        .run_command(doc! {"configureFailPoint": "failGetMoreAfterCursorCheckout", "mode": {"times": 1}, "data": {"errorCode": 6}})
        .await
        .expect("fp");
    sim.insert("db", "cs", doc! {"_id": 4}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 4}));
    // 4. CursorNotFound is always resumable.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["getMore"], "errorCode": 43}})
        .await
        .expect("fp");
    sim.insert("db", "cs", doc! {"_id": 5}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 5}));
    // 5. A stepdown does not end a change stream: getMores keep working on the secondary.
    sim.step_down();
    sim.step_up();
    sim.insert("db", "cs", doc! {"_id": 6}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 6}));
    // 6. Not resumable: ChangeStreamFatalError surfaces.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["getMore"], "errorCode": 280}})
        .await
        .expect("fp");
    let err = loop {
        match s.next_if_any().await {
            Err(e) => break e,
            Ok(Some(e)) => panic!("unexpected {e:?}"),
            Ok(None) => {}
        }
    };
    assert_eq!(code(&err), Some(280));
    // 7. A non-resumable error code with an explicit label is resumed (labels decide).
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(100))
        .await
        .expect("watch");
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["getMore"], "errorCode": 2, "errorLabels": ["ResumableChangeStreamError"]}})
        .await
        .expect("fp");
    sim.insert("db", "cs", doc! {"_id": 7}).expect("insert");
    assert_eq!(next(&mut s).await.document_key, Some(doc! {"_id": 7}));
    drop(s);
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn find_cursor_is_lost_when_its_connection_drops() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("f");
    sim.seed("db", "f", (0..10).map(|i| doc! {"_id": i}))
        .expect("seed");
    let mut cursor = coll.find(doc! {}).batch_size(2).await.expect("find");
    let mut seen = 0;
    while seen < 2 {
        cursor.try_next().await.expect("doc").expect("some");
        seen += 1;
    }
    sim.drop_connections();
    let mut failed = false;
    for _ in 0..10 {
        match cursor.try_next().await {
            Err(e) => {
                assert!(
                    matches!(
                        *e.kind,
                        mongodb::error::ErrorKind::Io(_)
                            | mongodb::error::ErrorKind::ConnectionPoolCleared { .. }
                    ) || code(&e) == Some(43),
                    "{e:?}"
                );
                failed = true;
                break;
            }
            Ok(Some(_)) => seen += 1,
            Ok(None) => break,
        }
    }
    assert!(
        failed,
        "getMore is not retried: the cursor is lost after {seen} docs"
    );
    drop(cursor);
    let e = client
        .database("db")
        .run_command(doc! {"getMore": 12345i64, "collection": "f"})
        .await
        .expect_err("unknown cursor");
    assert_eq!(code(&e), Some(43));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn retryable_writes_are_retried_once_and_deduplicated() {
    let (sim, client) = start().await;
    let db = client.database("db");
    let admin = client.database("admin");
    let coll = db.collection::<Document>("w");
    // A retriable error before the write: the driver retries and the write happens once.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["insert"], "errorCode": 91}})
        .await
        .expect("fp");
    coll.insert_one(doc! {"_id": 1}).await.expect("retried");
    // A writeConcernError after the write: the retry replays the first reply, no duplicate.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["update"], "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"}}})
        .await
        .expect("fp");
    let r = coll
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"n": 1}})
        .await
        .expect("retried");
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        sim.collection_docs("db", "w"),
        vec![doc! {"_id": 1, "n": 1}],
        "applied once"
    );
    // Raw: the same (lsid, txnNumber) twice returns the first reply and writes nothing new.
    let lsid =
        doc! {"id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }};
    let cmd =
        doc! {"insert": "w", "documents": [{"_id": 2}], "lsid": lsid.clone(), "txnNumber": 5i64};
    let a = db.run_command(cmd.clone()).await.expect("first");
    let b = db.run_command(cmd).await.expect("retry");
    assert_eq!(a.get_i32("n").ok(), Some(1));
    assert_eq!(b.get_i32("n").ok(), Some(1));
    assert_eq!(sim.collection_len("db", "w"), 2);
    let old = doc! {"insert": "w", "documents": [{"_id": 3}], "lsid": lsid, "txnNumber": 4i64};
    let e = db.run_command(old).await.expect_err("older txnNumber");
    assert_eq!(code(&e), Some(225));
    // Non-retriable errors surface at once.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["insert"], "errorCode": 2}})
        .await
        .expect("fp");
    let e = coll
        .insert_one(doc! {"_id": 9})
        .await
        .expect_err("surfaces");
    assert_eq!(code(&e), Some(2));
    assert!(!sim.contains_id("db", "w", Bson::Int32(9)));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn block_connection_skip_and_pause() {
    let (sim, client) = start().await;
    let db = client.database("db");
    let admin = client.database("admin");
    sim.seed("db", "b", vec![doc! {"_id": 1}]).expect("seed");
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["find"], "blockConnection": true, "blockTimeMS": 300}})
        .await
        .expect("fp");
    let t = Instant::now();
    db.collection::<Document>("b")
        .find_one(doc! {})
        .await
        .expect("find");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // skip: the first N matching commands pass, then it fires.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"skip": 1}, "data": {"failCommands": ["count"], "errorCode": 8}})
        .await
        .expect("fp");
    db.run_command(doc! {"count": "b"}).await.expect("skipped");
    let e = db
        .run_command(doc! {"count": "b"})
        .await
        .expect_err("fires");
    assert_eq!(code(&e), Some(8));
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .expect("off");
    db.run_command(doc! {"count": "b"})
        .await
        .expect("off again");
    let e = admin
        .run_command(doc! {"configureFailPoint": "noSuchFailPoint", "mode": "alwaysOn"})
        .await
        .expect_err("unknown fail point");
    assert_eq!(code(&e), Some(2));
    // pause: requests wait until resume.
    sim.pause();
    let c2 = db.clone();
    let h = tokio::spawn(async move { c2.run_command(doc! {"ping": 1}).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!h.is_finished(), "paused");
    sim.resume();
    h.await.expect("join").expect("ping after resume");
    drop(client);
    sim.shutdown().await;
}

/// Without users (no `--auth`), credentials name a user that does not exist: mongod answers
/// `AuthenticationFailed` as for a wrong password.
#[tokio::test]
async fn credentials_of_an_unknown_user_fail_authentication() {
    let (sim, _client) = start().await;
    let uri =
        sim.uri().replace("mongodb://", "mongodb://user:pass@") + "&serverSelectionTimeoutMS=2000";
    let client = Client::with_uri_str(uri).await.expect("client");
    let e = client
        .database("db")
        .run_command(doc! {"ping": 1})
        .await
        .expect_err("auth");
    assert!(e.to_string().contains("Authentication failed."), "{e}");
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_and_writes_are_retried_once_after_a_closed_connection() {
    let (sim, client) = start().await;
    let admin = client.database("admin");
    let coll = client.database("db").collection::<Document>("rr");
    sim.seed("db", "rr", vec![doc! {"_id": 1}]).expect("seed");
    let fp = |cmds: Vec<&str>, times: i32| {
        doc! {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": {"failCommands": cmds, "closeConnection": true}}
    };
    admin.run_command(fp(vec!["find"], 1)).await.expect("fp");
    assert_eq!(
        coll.find_one(doc! {}).await.expect("retried read"),
        Some(doc! {"_id": 1})
    );
    admin
        .run_command(fp(vec!["aggregate"], 1))
        .await
        .expect("fp");
    let n: Vec<Document> = coll
        .aggregate(vec![doc! {"$count": "n"}])
        .await
        .expect("retried")
        .try_collect()
        .await
        .expect("c");
    assert_eq!(n, vec![doc! {"n": 1}]);
    admin.run_command(fp(vec!["insert"], 1)).await.expect("fp");
    coll.insert_one(doc! {"_id": 2})
        .await
        .expect("retried write");
    assert_eq!(sim.collection_len("db", "rr"), 2);
    // Twice in a row: the single retry is used up and the error surfaces.
    admin.run_command(fp(vec!["insert"], 2)).await.expect("fp");
    let e = coll
        .insert_one(doc! {"_id": 3})
        .await
        .expect_err("two failures");
    assert!(matches!(*e.kind, mongodb::error::ErrorKind::Io(_)), "{e:?}");
    assert!(!sim.contains_id("db", "rr", Bson::Int32(3)));
    drop(client);
    sim.shutdown().await;
}

#[tokio::test]
async fn killed_cursors_cursor_not_found_and_stream_resume() {
    let (sim, client) = start().await;
    let coll = client.database("db").collection::<Document>("k");
    sim.seed("db", "k", (0..10).map(|i| doc! {"_id": i}))
        .expect("seed");
    let mut cursor = coll.find(doc! {}).batch_size(2).await.expect("find");
    cursor.try_next().await.expect("doc").expect("some");
    let mut s = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    assert_eq!(sim.kill_all_cursors(), 2);
    cursor
        .try_next()
        .await
        .expect("buffered doc")
        .expect("some");
    let e = cursor.try_next().await.expect_err("cursor killed");
    assert_eq!(code(&e), Some(43));
    sim.insert("db", "k", doc! {"_id": 10}).expect("insert");
    assert_eq!(
        next(&mut s).await.document_key,
        Some(doc! {"_id": 10}),
        "a change stream resumes from 43"
    );
    drop((cursor, s));
    drop(client);
    sim.shutdown().await;
}

/// mongod sends `topologyVersion` with shutdown errors only in quiesce mode, so a driver takes a
/// ShutdownInProgress (91) or InterruptedAtShutdown (11600) reply as news: it marks the server
/// Unknown and clears its pool. (With the current `topologyVersion` attached the driver would
/// judge the error stale and ignore it.) A NotWritablePrimary reply still carries it.
#[tokio::test]
async fn shutdown_errors_clear_the_pool_as_on_mongod() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use mongodb::event::cmap::CmapEvent;
    use mongodb::event::EventHandler;
    use mongodb::options::ClientOptions;

    let sim = mongo_sim::MongoSim::start(mongo_sim::SimOptions {
        noop_interval: None,
        ..Default::default()
    })
    .await
    .expect("start simulator");
    let cleared = Arc::new(AtomicUsize::new(0));
    let mut opts = ClientOptions::parse(sim.uri()).await.expect("uri");
    let seen = cleared.clone();
    opts.cmap_event_handler = Some(EventHandler::callback(move |e: CmapEvent| {
        if matches!(e, CmapEvent::PoolCleared(_)) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let client = Client::with_options(opts).expect("client");
    let coll = client.database("db").collection::<Document>("q");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    let admin = client.database("admin");
    for code in [91, 11600] {
        let before = cleared.load(Ordering::SeqCst);
        admin
            .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["find"], "errorCode": code}})
            .await
            .expect("fp");
        let found: Vec<Document> = coll
            .find(doc! {})
            .await
            .expect("retried read")
            .try_collect()
            .await
            .expect("docs");
        assert_eq!(found, vec![doc! {"_id": 1}]);
        assert!(
            cleared.load(Ordering::SeqCst) > before,
            "error {code} without topologyVersion clears the pool"
        );
    }
    sim.step_down();
    let e = coll
        .insert_one(doc! {"_id": 2})
        .await
        .expect_err("stepped down");
    assert_eq!(code(&e), Some(10107));
    sim.step_up();
    drop(client);
    sim.shutdown().await;
}
