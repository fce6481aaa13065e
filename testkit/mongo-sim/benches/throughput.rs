//! Throughput of the simulator as the real driver sees it over loopback:
//! 1. one client draining a collection of ~1 KB documents (default 1,000,000) with `find`;
//! 2. one change stream draining insert events (default 200,000).
//!
//! The simulator runs on its own thread and runtime (one worker), the client on the main
//! thread, so on a 2-core machine each gets a core. Documents are read as `RawDocumentBuf` so
//! the client does not spend its time building `Document`s.
//!
//! Run: `cargo bench -p mongo-sim --bench throughput` (env: BENCH_DOCS, BENCH_EVENTS).

use std::time::{Duration, Instant};

use bson::{doc, RawDocumentBuf};
use futures::TryStreamExt;
use mongo_sim::{MongoSim, SimOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A ~1 KB document: an int64 `_id`, a few scalar fields and a 900-byte string.
fn doc_1k(i: usize) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    d.append("_id", i as i64);
    d.append("name", format!("customer-{i:08}"));
    d.append("score", (i % 1000) as f64 / 7.0);
    d.append("active", i.is_multiple_of(3));
    d.append("payload", "x".repeat(900));
    d
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n_docs = env_usize("BENCH_DOCS", 1_000_000);
    let n_events = env_usize("BENCH_EVENTS", 200_000);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sim = MongoSim::start_on_thread(SimOptions {
        noop_interval: None,
        oplog_size_bytes: 1 << 30,
        ..Default::default()
    })?;
    let t = Instant::now();
    sim.seed_raw("bench", "docs", (0..n_docs).map(doc_1k))?;
    let seed_time = t.elapsed();
    let bytes = doc_1k(0).as_bytes().len();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (find_time, found) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(sim.uri()).await?;
        let coll = client
            .database("bench")
            .collection::<RawDocumentBuf>("docs");
        // Warm up the connection.
        coll.find_one(doc! {}).await?;
        let t = Instant::now();
        let mut cursor = coll.find(doc! {}).await?;
        let mut n = 0usize;
        while let Some(d) = cursor.try_next().await? {
            n += usize::from(!d.as_bytes().is_empty());
        }
        Ok::<_, mongodb::error::Error>((t.elapsed(), n))
    })?;
    assert_eq!(found, n_docs, "every document drained");

    // Change events: write them through the handle, then drain from the start.
    let start_at = sim.cluster_time();
    let t = Instant::now();
    sim.insert_many(
        "bench",
        "events",
        (0..n_events).map(|i| doc! {"_id": i as i64, "kind": "insert", "n": i as i64, "note": "change event payload"}),
    )?;
    let write_time = t.elapsed();
    let (cs_time, events) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(sim.uri()).await?;
        let coll = client
            .database("bench")
            .collection::<RawDocumentBuf>("events");
        let t = Instant::now();
        let mut stream = coll
            .watch()
            .start_at_operation_time(start_at)
            .max_await_time(Duration::from_millis(200))
            .await?
            .with_type::<RawDocumentBuf>();
        let mut n = 0usize;
        while n < n_events {
            match stream.next_if_any().await? {
                Some(_) => n += 1,
                None if !stream.is_alive() => break,
                None => {}
            }
        }
        Ok::<_, mongodb::error::Error>((t.elapsed(), n))
    })?;
    assert_eq!(events, n_events, "every event drained");

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!("mongo-sim bench ({cores} cores; simulator on 1 runtime thread, client on 1)");
    println!(
        "  seed_raw          {n_docs} docs of {bytes} B in {:.2?}: {:.0} docs/s",
        seed_time,
        rate(n_docs, seed_time)
    );
    println!(
        "  find drain        {n_docs} docs in {:.2?}: {:.0} docs/s, {:.0} MB/s",
        find_time,
        rate(n_docs, find_time),
        rate(n_docs * bytes, find_time) / 1e6
    );
    println!(
        "  writes (handle)   {n_events} inserts in {:.2?}: {:.0} events/s",
        write_time,
        rate(n_events, write_time)
    );
    println!(
        "  change stream     {n_events} events in {:.2?}: {:.0} events/s",
        cs_time,
        rate(n_events, cs_time)
    );
    sim.shutdown();
    Ok(())
}
