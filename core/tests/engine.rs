//! The engine's guarantees, with test components that fail on command: ordered commits only of
//! acknowledged batches, resume after an abrupt stop, backpressure, retries and bounded shutdown.

mod support;

use std::time::{Duration, Instant};

use mirror_core::engine::{Engine, EngineError};
use support::{config, probe, RecordingStore};

const FAST_RETRY: &str = "channel_capacity = 2\nshutdown_timeout = \"2s\"\nretry = { initial_backoff = \"5ms\", max_backoff = \"20ms\" }";

fn is_sorted(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn commits_follow_source_order_even_when_acks_arrive_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"ooo\"\ncount = 40\ncheckpoint_items = true",
        &[("lake", "probe = \"ooo\"\nbuffer = 6\nreverse_acks = true")],
        FAST_RETRY,
    );
    let report = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    assert!(!report.interrupted);
    let commits = store.commits();
    assert!(is_sorted(&commits), "commits out of order: {commits:?}");
    assert_eq!(commits.last(), Some(&40));
    let mut durable = probe("ooo").durable("lake");
    durable.sort();
    assert_eq!(durable, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_dropped_batch_blocks_every_later_commit_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"drop\"\ncount = 30",
        &[("lake", "probe = \"drop\"\nbuffer = 3\ndrop_seq = 11")],
        FAST_RETRY,
    );
    let err = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Undelivered { seq: 11, .. }),
        "unexpected error: {err}"
    );
    let commits = store.commits();
    assert!(is_sorted(&commits));
    assert!(
        commits.iter().all(|c| *c < 11),
        "committed past the dropped batch: {commits:?}"
    );
    // Everything committed was durable.
    let durable = probe("drop").durable("lake");
    assert!(commits.iter().all(|c| durable.contains(c)));
}

#[tokio::test]
async fn a_batch_is_committed_only_once_every_sink_acknowledged_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"fan\"\ncount = 20",
        &[
            ("a", "probe = \"fan\""),
            ("b", "probe = \"fan\"\ndrop_seq = 7"),
        ],
        FAST_RETRY,
    );
    let err = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Undelivered { seq: 7, .. }),
        "{err}"
    );
    assert!(probe("fan").durable("a").contains(&7), "sink a did write 7");
    assert!(
        store.commits().iter().all(|c| *c < 7),
        "{:?}",
        store.commits()
    );
}

#[tokio::test]
async fn after_an_abrupt_stop_the_source_resumes_from_the_last_commit_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    // Run 1: a slow endless source; the process "dies" (the engine future is dropped mid-flight).
    let cfg = config(
        "probe = \"crash1\"\ncount = 200\ninterval_ms = 2",
        &[("lake", "probe = \"crash1\"\nbuffer = 4")],
        FAST_RETRY,
    );
    let run = tokio::spawn(Engine::new(cfg).with_checkpoint_store(store.clone()).run());
    tokio::time::sleep(Duration::from_millis(150)).await;
    run.abort();
    let _ = run.await;
    // A commit already handed to a blocking thread finishes even though its task was aborted (as a
    // write the OS already accepted would); let it land, then read what is on disk.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = probe("crash1");
    let on_disk = mirror_core::checkpoint::CheckpointStore::load(&*store, "numbers")
        .await
        .unwrap();
    let committed: u64 = on_disk
        .source()
        .expect("something was committed before the crash")
        .to_json()
        .unwrap();
    assert!(committed < 200);
    assert!(first.durable("lake").contains(&committed));

    // Run 2 with the same state: resumes right after the committed checkpoint.
    let cfg = config(
        "probe = \"crash2\"\ncount = 200",
        &[("lake", "probe = \"crash2\"\nbuffer = 4")],
        FAST_RETRY,
    );
    Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    let second = probe("crash2");
    assert_eq!(
        second.emitted().first(),
        Some(&(committed + 1)),
        "did not resume after the commit"
    );
    let mut all: Vec<u64> = first.durable("lake");
    all.extend(second.durable("lake"));
    all.sort();
    all.dedup();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<_>>(),
        "some rows never reached the sink"
    );
    assert_eq!(store.commits().last(), Some(&200));
}

#[tokio::test]
async fn a_finished_source_leaves_nothing_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"fin1\"\ncount = 5",
        &[("lake", "probe = \"fin1\"")],
        FAST_RETRY,
    );
    let report = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(report.sources["numbers"].rows, 5);
    assert_eq!(report.sources["numbers"].committed_items, 5);
    let cfg = config(
        "probe = \"fin2\"\ncount = 5",
        &[("lake", "probe = \"fin2\"")],
        FAST_RETRY,
    );
    let report = Engine::new(cfg)
        .with_checkpoint_store(store)
        .run()
        .await
        .unwrap();
    assert_eq!(report.sources["numbers"].rows, 0);
    assert!(probe("fin2").emitted().is_empty());
}

#[tokio::test]
async fn a_stalled_sink_stalls_the_source_within_the_channel_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"stall\"",
        &[("lake", "probe = \"stall\"\nstall_at = 3")],
        "channel_capacity = 4\nshutdown_timeout = \"300ms\"",
    );
    let engine = Engine::new(cfg).with_checkpoint_store(store.clone());
    let stop = engine.shutdown_token();
    let run = tokio::spawn(engine.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emitted_early = probe("stall").emitted().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emitted = probe("stall").emitted().len();
    // Two batches written, the stalled one held by the sink, `channel_capacity` queued, and one
    // in the source's hands waiting for room.
    assert!(
        emitted <= 3 + 4 + 1,
        "source ran ahead of a stalled sink: {emitted} batches"
    );
    assert_eq!(
        emitted, emitted_early,
        "source kept producing while the sink was stalled"
    );

    let started = Instant::now();
    stop.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, EngineError::ShutdownTimeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        store.commits().iter().all(|c| *c <= 2),
        "{:?}",
        store.commits()
    );
}

#[tokio::test]
async fn shutdown_drains_commits_and_returns_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"sig\"\ninterval_ms = 1",
        &[("lake", "probe = \"sig\"\nbuffer = 3")],
        FAST_RETRY,
    );
    let engine = Engine::new(cfg).with_checkpoint_store(store.clone());
    let stop = engine.shutdown_token();
    let run = tokio::spawn(engine.run());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stop.cancel();
    let report = run.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.interrupted);
    // The buffered tail was flushed on close, so everything emitted is durable and committed.
    let p = probe("sig");
    let mut durable = p.durable("lake");
    durable.sort();
    assert_eq!(durable, p.emitted());
    assert_eq!(store.commits().last(), p.emitted().last());
}

#[tokio::test]
async fn shutdown_gives_up_after_its_timeout_when_a_sink_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        "probe = \"hang\"\ninterval_ms = 1",
        &[("lake", "probe = \"hang\"\nhang_on_close = true")],
        "shutdown_timeout = \"250ms\"",
    );
    let engine = Engine::new(cfg).with_checkpoint_store(RecordingStore::new(dir.path()));
    let stop = engine.shutdown_token();
    let run = tokio::spawn(engine.run());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    stop.cancel();
    let err = run.await.unwrap().unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, EngineError::ShutdownTimeout { .. }), "{err}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_until_they_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"retry\"\ncount = 10\ntransient_at = 4\ntransient_times = 3",
        &[(
            "lake",
            "probe = \"retry\"\nbuffer = 2\ntransient_flush_failures = 2",
        )],
        FAST_RETRY,
    );
    Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    let p = probe("retry");
    assert_eq!(
        p.source_failures.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let mut durable = p.durable("lake");
    durable.sort();
    assert_eq!(durable, (1..=10).collect::<Vec<_>>());
    assert_eq!(store.commits().last(), Some(&10));
}

#[tokio::test]
async fn a_retry_budget_turns_a_persistent_transient_error_into_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        "probe = \"budget\"\ncount = 10\ntransient_at = 2\ntransient_times = 1000",
        &[("lake", "probe = \"budget\"")],
        "retry = { initial_backoff = \"5ms\", max_backoff = \"10ms\", give_up_after = \"100ms\" }",
    );
    let err = Engine::new(cfg)
        .with_checkpoint_store(RecordingStore::new(dir.path()))
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::GaveUp { kind: "source", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("source hiccup"), "{err}");
}

#[tokio::test]
async fn a_permanent_sink_error_stops_the_run_without_committing_unwritten_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let cfg = config(
        "probe = \"perm\"\ncount = 50",
        &[("lake", "probe = \"perm\"\nbuffer = 2\npermanent_at = 9")],
        FAST_RETRY,
    );
    let err = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "sink `lake` failed: disk on fire");
    let durable = probe("perm").durable("lake");
    assert!(
        store
            .commits()
            .iter()
            .all(|c| durable.contains(c) && *c < 9),
        "{:?}",
        store.commits()
    );
}

#[tokio::test]
async fn a_permanent_source_error_is_reported_with_the_component_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        "probe = \"psrc\"\ncount = 50\npermanent_at = 5",
        &[("lake", "probe = \"psrc\"")],
        FAST_RETRY,
    );
    let store = RecordingStore::new(dir.path());
    let err = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source `numbers` failed: source broke for good"
    );
    // What was written before the failure is still committed.
    assert_eq!(store.commits().last(), Some(&4));
}

#[tokio::test]
async fn a_panicking_sink_fails_the_run_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        "probe = \"panic\"\ncount = 50",
        &[("lake", "probe = \"panic\"\npanic_at = 3")],
        FAST_RETRY,
    );
    let err = Engine::new(cfg)
        .with_checkpoint_store(RecordingStore::new(dir.path()))
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Panicked { kind: "sink", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("sink bug at [3]"), "{err}");
}

#[tokio::test]
async fn schema_records_are_durable_before_their_batches_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    // The sink never acknowledges seq 3 (nor anything after it): ordered commits stop at 2.
    let cfg = config(
        "probe = \"ledger\"\ncount = 5\nrecord_schema = true",
        &[("lake", "probe = \"ledger\"\ndrop_seq = 3")],
        FAST_RETRY,
    );
    let _ = Engine::new(cfg)
        .with_checkpoint_store(store.clone())
        .run()
        .await;
    let resume = mirror_core::checkpoint::CheckpointStore::load(&*store, "numbers")
        .await
        .unwrap();
    assert_eq!(resume.source().unwrap().to_json::<u64>().unwrap(), 2);
    // The column types were recorded before each batch was handed on, whatever became of it.
    let table = mirror_core::TableId::new("numbers");
    let recorded: Vec<u64> = resume.table_schema(&table).unwrap().to_json().unwrap();
    assert!(recorded.len() >= 3, "{recorded:?}");
    assert_eq!(recorded[..3], [1, 2, 3]);
    // Schema records are not positions: the table has no ordered state of its own.
    assert!(resume.table(&table).is_none());
}
