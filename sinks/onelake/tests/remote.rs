//! The sink against the OneLake simulator over HTTP: both publish modes, OneLake paths, bearer
//! tokens, and every injected fault; assertions are on the replicated table.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::*;
use mirror_core::config::MirrorConfig;
use mirror_core::engine::Engine;
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::location::parse_location;
use mirror_onelake::location::Location;
use mirror_onelake::store::remote::{HttpRetry, RemoteOptions, RemoteStore, TokenSource};
use mirror_onelake::store::{LandingStore, StoreErrorKind};
use mirror_onelake::{LandingZoneWriter, PublishMode, SinkError, WriterOptions};
use onelake_sim::{Fault, OneLakeSim, Operation};

const LZ: &str = "ws/lake.MountedRelationalDatabase/Files/LandingZone";

fn lz_url() -> String {
    format!("https://onelake.dfs.fabric.microsoft.com/{LZ}")
}

fn remote_options(sim: &OneLakeSim) -> RemoteOptions {
    RemoteOptions {
        endpoint: Some(sim.endpoint()),
        request_timeout: Duration::from_millis(800),
        retry: HttpRetry {
            max_retries: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        },
        ..RemoteOptions::default()
    }
}

fn store(options: RemoteOptions) -> Arc<dyn LandingStore> {
    let Location::Azure(location) = parse_location(&lz_url()).unwrap() else {
        panic!("not remote")
    };
    let auth = mirror_onelake::auth::AuthConfig::BearerToken {
        token: mirror_core::config::Secret::new("token-1"),
    };
    Arc::new(RemoteStore::new(location, &auth, &options).unwrap())
}

fn table() -> Arc<Table> {
    Arc::new(Table::new(TableId::with_schema("sales", "orders"), ["id"]))
}

fn batch(ids: std::ops::Range<i64>, tag: &str) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let names: Vec<String> = ids.iter().map(|i| format!("{tag}-{i}")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .unwrap()
}

fn writer_options(publish: PublishMode) -> WriterOptions {
    WriterOptions {
        publish,
        flush_interval: Duration::from_millis(20),
        ..WriterOptions::default()
    }
}

fn replicate_sim(sim: &OneLakeSim) -> onelake_sim::Replicator {
    replicate(Arc::new(sim.storage().landing_zone(LZ)), true)
}

/// Writes three files (inserts, updates, deletes) and returns the model of what was written.
async fn write_some(lz: &mut LandingZoneWriter) -> Result<Model, SinkError> {
    let t = table();
    let mut model = Model::default();
    let steps: [(RecordBatch, Vec<RowOp>); 3] = [
        (batch(0..20, "a"), vec![RowOp::Insert; 20]),
        (batch(5..10, "b"), vec![RowOp::Update; 5]),
        (batch(0..3, "c"), vec![RowOp::Delete; 3]),
    ];
    for (rows, ops) in steps {
        model.apply_rows("sales.schema/orders", &t.key_columns, &rows, &ops);
        lz.write_rows(&t, rows, ops).await?;
        lz.flush().await?;
    }
    Ok(model)
}

/// Flushes until success, like the engine does after transient errors.
async fn flush_until_ok(lz: &mut LandingZoneWriter) {
    for _ in 0..50 {
        match lz.flush().await {
            Ok(()) => return,
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("permanent error: {e}"),
        }
    }
    panic!("flush never succeeded");
}

#[tokio::test]
async fn both_publish_modes_replicate_exactly_on_onelake_paths() {
    for mode in [PublishMode::Rename, PublishMode::Put] {
        let sim = OneLakeSim::start().await.unwrap();
        let mut lz = LandingZoneWriter::open(store(remote_options(&sim)), writer_options(mode))
            .await
            .unwrap();
        let model = write_some(&mut lz).await.unwrap();
        lz.close().await.unwrap();
        let r = replicate_sim(&sim);
        assert_replicated(&r, &model);
        assert_eq!(r.table("sales.schema/orders").unwrap().last_applied, 3);
        let requests = sim.requests();
        let renames: Vec<_> = requests
            .iter()
            .filter(|r| r.operation == Operation::Rename)
            .collect();
        match mode {
            PublishMode::Rename => {
                assert_eq!(renames.len(), 3, "{mode:?}");
                for r in renames {
                    assert_eq!(
                        r.headers.get("if-none-match").map(String::as_str),
                        Some("*")
                    );
                    // The full-URL form, as OneLake's production writers send it.
                    let source = &r.headers["x-ms-rename-source"];
                    assert!(
                        source.starts_with(&format!(
                            "{}/ws/lake.MountedRelationalDatabase/Files/LandingZone/sales.schema/orders/_mirror_tmp_",
                            sim.endpoint()
                        )),
                        "{source}"
                    );
                }
            }
            PublishMode::Put => {
                assert!(renames.is_empty());
                let puts = requests
                    .iter()
                    .filter(|r| r.operation == Operation::PutBlob && r.path.ends_with(".parquet"))
                    .collect::<Vec<_>>();
                assert_eq!(puts.len(), 3);
                assert!(puts
                    .iter()
                    .all(|r| r.headers.get("if-none-match").map(String::as_str) == Some("*")));
            }
        }
        assert!(
            requests.iter().all(|r| r.operation != Operation::Batch),
            "no Blob Batch calls"
        );
        assert!(sim
            .storage()
            .get(&format!("{LZ}/_partnerEvents.json"))
            .is_some());
        // The temp files are gone, the lease released.
        let (files, _) = sim.storage().list_dir(&format!("{LZ}/sales.schema/orders"));
        assert!(
            files
                .iter()
                .all(|(n, _)| !n.starts_with("_mirror_tmp_") && n != "_mirror_lease.json"),
            "{files:?}"
        );
    }
}

#[tokio::test]
async fn throttling_5xx_and_timeouts_are_retried_and_nothing_is_lost() {
    for mode in [PublishMode::Rename, PublishMode::Put] {
        let sim = OneLakeSim::start().await.unwrap();
        let f = sim.faults();
        f.inject(Fault::throttle(Operation::PutBlob, 2, 1).on_path(".parquet"));
        f.inject(Fault::unavailable(Operation::Rename, 1));
        f.inject(Fault::unavailable(Operation::PutBlob, 1).on_path(".parquet"));
        f.inject(Fault::internal_error(Operation::GetBlob, 2));
        // An expired token: the sink fetches the credential again and retries once.
        f.inject(Fault::expired_token(Operation::PutBlob, 1).on_path("_mirror_table.json"));
        f.inject(Fault::delay(
            Operation::ListBlobs,
            1,
            Duration::from_millis(1200),
        ));
        // A slow write: the client times out, the server applies it anyway.
        f.inject(
            Fault::delay(Operation::PutBlob, 1, Duration::from_millis(1200))
                .on_path("00000000000000000002"),
        );
        f.inject(
            Fault::delay(Operation::Rename, 1, Duration::from_millis(1200))
                .on_path("00000000000000000002"),
        );
        let mut lz = LandingZoneWriter::open(store(remote_options(&sim)), writer_options(mode))
            .await
            .unwrap();
        let t = table();
        let mut model = Model::default();
        for (i, (rows, ops)) in [
            (batch(0..20, "a"), vec![RowOp::Insert; 20]),
            (batch(5..10, "b"), vec![RowOp::Update; 5]),
            (batch(0..3, "c"), vec![RowOp::Delete; 3]),
        ]
        .into_iter()
        .enumerate()
        {
            model.apply_rows("sales.schema/orders", &t.key_columns, &rows, &ops);
            match lz.write_rows(&t, rows, ops).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => panic!("step {i}: {e}"),
            }
            flush_until_ok(&mut lz).await;
        }
        lz.close().await.unwrap();
        let r = replicate_sim(&sim);
        assert_replicated(&r, &model);
        assert_eq!(
            r.table("sales.schema/orders").unwrap().last_applied,
            3,
            "{mode:?}"
        );
        let expected_left = if mode == PublishMode::Rename { 0 } else { 2 };
        assert_eq!(
            f.pending(),
            expected_left,
            "{mode:?}: every fault fired: {:?}",
            f.fired()
        );
        let fired = f.fired();
        assert!(fired
            .iter()
            .any(|(_, _, a)| matches!(a, onelake_sim::FaultAction::Status { status: 429, .. })));
        let throttled_then: Vec<_> = sim.requests();
        assert!(throttled_then.iter().any(|r| r.status == 429));
    }
}

#[tokio::test]
async fn a_rename_whose_response_is_lost_is_verified_not_repeated() {
    let sim = OneLakeSim::start().await.unwrap();
    sim.faults()
        .inject(Fault::lose_response(Operation::Rename, 1).on_path("00000000000000000002"));
    sim.faults().inject(
        Fault::lose_response(Operation::PutBlob, 1).on_path("00000000000000000003.parquet"),
    );
    let mut lz = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Rename),
    )
    .await
    .unwrap();
    let t = table();
    let mut model = Model::default();
    for (rows, ops) in [
        (batch(0..10, "a"), vec![RowOp::Insert; 10]),
        (batch(3..6, "b"), vec![RowOp::Upsert; 3]),
        (batch(0..1, "c"), vec![RowOp::Delete]),
    ] {
        model.apply_rows("sales.schema/orders", &t.key_columns, &rows, &ops);
        let _ = lz.write_rows(&t, rows, ops).await;
        flush_until_ok(&mut lz).await;
    }
    lz.close().await.unwrap();
    assert_eq!(
        sim.faults().pending(),
        1,
        "the put-mode fault does not apply to rename mode"
    );
    let r = replicate_sim(&sim);
    assert_replicated(&r, &model);
    assert_eq!(r.table("sales.schema/orders").unwrap().last_applied, 3);

    // Put mode: the lost response of the create-only put is verified too.
    let sim = OneLakeSim::start().await.unwrap();
    sim.faults().inject(
        Fault::lose_response(Operation::PutBlob, 1).on_path("00000000000000000002.parquet"),
    );
    let mut lz = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Put),
    )
    .await
    .unwrap();
    let t = table();
    for (rows, ops) in [
        (batch(0..10, "a"), vec![RowOp::Insert; 10]),
        (batch(3..6, "b"), vec![RowOp::Upsert; 3]),
        (batch(0..1, "c"), vec![RowOp::Delete]),
    ] {
        let _ = lz.write_rows(&t, rows, ops).await;
        flush_until_ok(&mut lz).await;
    }
    lz.close().await.unwrap();
    assert_eq!(sim.faults().pending(), 0);
    let r = replicate_sim(&sim);
    assert_replicated(&r, &model);
    assert_eq!(r.table("sales.schema/orders").unwrap().last_applied, 3);
}

#[derive(Debug, Default)]
struct CountingTokens {
    issued: AtomicUsize,
}

#[async_trait]
impl TokenSource for CountingTokens {
    async fn token(&self, refresh: bool) -> Result<(String, Option<DateTime<Utc>>), String> {
        let n = if refresh || self.issued.load(Ordering::SeqCst) == 0 {
            self.issued.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.issued.load(Ordering::SeqCst)
        };
        Ok((
            format!("tok-{n}"),
            Some(Utc::now() + chrono::Duration::hours(1)),
        ))
    }
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_a_bad_credential_is_a_clear_error() {
    let sim = OneLakeSim::start().await.unwrap();
    sim.tokens().only(["tok-1"]);
    let tokens = Arc::new(CountingTokens::default());
    let options = RemoteOptions {
        token_source: Some(tokens.clone()),
        ..remote_options(&sim)
    };
    let mut lz = LandingZoneWriter::open(store(options), writer_options(PublishMode::Rename))
        .await
        .unwrap();
    let t = table();
    lz.write_rows(&t, batch(0..5, "a"), vec![RowOp::Insert; 5])
        .await
        .unwrap();
    lz.flush().await.unwrap();
    // The token expires; the next one is valid.
    sim.tokens().expire("tok-1");
    sim.tokens().allow("tok-2");
    lz.write_rows(&t, batch(5..10, "a"), vec![RowOp::Insert; 5])
        .await
        .unwrap();
    lz.flush().await.unwrap();
    assert_eq!(sim.tokens().seen_tokens(), ["tok-1", "tok-2"]);
    // Now every token is refused: a permanent error that says what to check, never the token.
    sim.tokens().only(["nobody"]);
    lz.write_rows(&t, batch(10..12, "a"), vec![RowOp::Insert; 2])
        .await
        .unwrap();
    let err = lz.flush().await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let text = err.to_string();
    assert!(text.contains("rejected the credential"), "{text}");
    assert!(!text.contains("tok-"), "{text}");

    let r = replicate_sim(&sim);
    assert_eq!(r.table("sales.schema/orders").unwrap().len(), 10);
}

#[tokio::test]
async fn forbidden_and_missing_landing_zones_are_permanent_with_a_hint() {
    let sim = OneLakeSim::start().await.unwrap();
    sim.tokens().deny_writes_under("ws/");
    let err = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Rename),
    )
    .await
    .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("permission denied"), "{text}");
    assert!(text.contains("Contributor"), "{text}");

    // A workspace that does not exist: the message says to check the names.
    let sim = OneLakeSim::start().await.unwrap();
    sim.only_workspaces(["another-workspace"]);
    let err = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Rename),
    )
    .await
    .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("does not exist: check the workspace and item"),
        "{text}"
    );

    let sim = OneLakeSim::start().await.unwrap();
    sim.tokens().deny_all_under("ws");
    let s = store(remote_options(&sim));
    let err = s.list("").await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Forbidden);
}

#[tokio::test]
async fn the_engine_runs_the_generator_into_the_simulator() {
    let sim = OneLakeSim::start().await.unwrap();
    sim.faults()
        .inject(Fault::throttle(Operation::PutBlob, 3, 0));
    let settings =
        "count = 1500\nbatch_size = 250\ntables = [\"orders\", \"customers\"]\nschema = \"demo\"\n\
                    update_ratio = 0.3\ndelete_ratio = 0.1\nnew_column_after = 700\nseed = 5\n";
    let text = format!(
        "[sources.gen]\ntype = \"generator\"\n{settings}\n[sinks.fabric]\ntype = \"onelake\"\ninputs = [\"gen\"]\n\
         landing_zone = \"{}\"\nendpoint = \"{}\"\nauth = {{ method = \"bearer_token\", token = \"t\" }}\n\
         max_file_rows = 300\nflush_interval = \"50ms\"\nrequest_timeout = \"5s\"\n\
         [engine.retry]\ninitial_backoff = \"10ms\"\nmax_backoff = \"100ms\"\n",
        lz_url(),
        sim.endpoint()
    );
    let config = MirrorConfig::parse(&text, "test.toml").unwrap();
    Engine::new(config).run().await.unwrap();
    let r = replicate_sim(&sim);
    assert_replicated(&r, &generator_model(settings).await);
    // Checkpoints are in the landing zone: a second run resumes and emits nothing more.
    let config = MirrorConfig::parse(&text, "test.toml").unwrap();
    let report = Engine::new(config).run().await.unwrap();
    assert_eq!(report.sources["gen"].rows, 0);
    assert!(sim
        .storage()
        .get(&format!("{LZ}/_mirror_state/gen/source.json"))
        .is_some());
}

#[tokio::test]
async fn a_second_writer_through_the_simulator_is_refused() {
    let sim = OneLakeSim::start().await.unwrap();
    let mut first = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Rename),
    )
    .await
    .unwrap();
    first.declare_table(table()).await.unwrap();
    let mut second = LandingZoneWriter::open(
        store(remote_options(&sim)),
        WriterOptions {
            name: "intruder".into(),
            ..writer_options(PublishMode::Rename)
        },
    )
    .await
    .unwrap();
    let err = second.declare_table(table()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is being written by another mirror"),
        "{err}"
    );
    first.close().await.unwrap();
}

#[test]
fn secrets_never_reach_debug_output() {
    let text = format!(
        "[sources.gen]\ntype = \"generator\"\ncount = 1\n[sinks.fabric]\ntype = \"onelake\"\ninputs = [\"gen\"]\n\
         landing_zone = \"{}\"\nauth = {{ method = \"client_secret\", tenant_id = \"t\", client_id = \"c\", client_secret = \"s3cr3t-value\" }}\n\
         [sinks.other]\ntype = \"onelake\"\ninputs = [\"gen\"]\nlanding_zone = \"{}\"\n\
         auth = {{ method = \"bearer_token\", token = \"tok3n-value\" }}\n",
        lz_url(),
        lz_url().replace("/ws/", "/ws2/")
    );
    let config = MirrorConfig::parse(&text, "test.toml").unwrap();
    for sink in &config.sinks {
        // Build the store (and its credential provider), then print everything.
        let store = sink.config.checkpoint_store().unwrap().unwrap();
        let shown = format!("{config:?} {store:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(!shown.contains("tok3n-value"), "{shown}");
    }
}

#[tokio::test]
async fn an_adls_gen2_account_with_a_shared_key_works_too() {
    let sim = OneLakeSim::start().await.unwrap();
    let Location::Azure(location) =
        parse_location("abfss://fs@acct.dfs.core.windows.net/mirror/lz").unwrap()
    else {
        panic!()
    };
    let auth = mirror_onelake::auth::AuthConfig::AccessKey {
        account_key: mirror_core::config::Secret::new(
            "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleQ==",
        ),
    };
    let store: Arc<dyn LandingStore> =
        Arc::new(RemoteStore::new(location, &auth, &remote_options(&sim)).unwrap());
    let mut lz = LandingZoneWriter::open(store, writer_options(PublishMode::Rename))
        .await
        .unwrap();
    let model = write_some(&mut lz).await.unwrap();
    lz.close().await.unwrap();
    let r = replicate(Arc::new(sim.storage().landing_zone("fs/mirror/lz")), true);
    assert_replicated(&r, &model);
    let renames: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::Rename)
        .collect();
    assert_eq!(renames.len(), 3);
    assert!(renames[0].headers["x-ms-rename-source"]
        .starts_with("/fs/mirror/lz/sales.schema/orders/_mirror_tmp_"));
}

#[tokio::test]
async fn a_truncation_drops_and_rebuilds_the_table_through_dfs() {
    let sim = OneLakeSim::start().await.unwrap();
    let mut lz = LandingZoneWriter::open(
        store(remote_options(&sim)),
        writer_options(PublishMode::Rename),
    )
    .await
    .unwrap();
    write_some(&mut lz).await.unwrap();
    let mut fabric = onelake_sim::Replicator::new(Arc::new(sim.storage().landing_zone(LZ)));
    fabric.scan().unwrap();
    assert_eq!(fabric.table("sales.schema/orders").unwrap().len(), 17);

    let t = table();
    // Buffered rows go out before the table is emptied; the truncation waits for nothing else.
    lz.write_rows(&t, batch(100..105, "x"), vec![RowOp::Upsert; 5])
        .await
        .unwrap();
    lz.truncate(&t).await.unwrap();
    // One recursive DFS delete of the folder (the simulator refuses a non-recursive one).
    let deletes = sim
        .requests()
        .iter()
        .filter(|r| {
            r.operation == Operation::Delete && r.path == format!("{LZ}/sales.schema/orders")
        })
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(deletes, [200], "{deletes:?}");
    fabric.scan().unwrap();
    let emptied = fabric.table("sales.schema/orders").unwrap();
    assert!(emptied.is_empty(), "{} rows left", emptied.len());
    assert_eq!(emptied.rebuilds, 1);
    assert_eq!(emptied.status, onelake_sim::TableStatus::Replicating);

    let mut model = Model::default();
    let rows = batch(7..12, "after");
    model.apply_rows(
        "sales.schema/orders",
        &t.key_columns,
        &rows,
        &[RowOp::Upsert; 5],
    );
    lz.write_rows(&t, rows, vec![RowOp::Upsert; 5])
        .await
        .unwrap();
    lz.close().await.unwrap();
    fabric.scan().unwrap();
    assert_replicated(&fabric, &model);
    let table = fabric.table("sales.schema/orders").unwrap();
    assert_eq!(table.last_applied, 1, "the new table starts at file 1");
    let left = sim.storage().list_prefix(&format!("{LZ}/_mirror_truncate"));
    assert!(
        left.0.is_empty(),
        "{:?} {:?}",
        left.0.iter().map(|f| &f.0).collect::<Vec<_>>(),
        left.1
    );
}

#[tokio::test]
async fn checkpoints_of_tables_without_a_folder_are_found_again() {
    use mirror_core::checkpoint::CheckpointStore;
    use mirror_core::model::{Checkpoint, CheckpointState, Partition};
    use mirror_onelake::LandingZoneCheckpointStore;
    let sim = OneLakeSim::start().await.unwrap();
    // A table in a schema, committed before its folder exists: the record's name holds `%2F`,
    // which object_store keeps percent-encoded in the object's key.
    let t = TableId::with_schema("shop", "empty");
    let state = CheckpointState::from_json(&serde_json::json!({"done": true})).unwrap();
    LandingZoneCheckpointStore::new(store(remote_options(&sim)))
        .commit(
            "src",
            &Checkpoint::none().with(Partition::Table(t.clone()), state.clone()),
        )
        .await
        .unwrap();
    let resume = LandingZoneCheckpointStore::new(store(remote_options(&sim)))
        .load("src")
        .await
        .unwrap();
    assert_eq!(resume.table(&t), Some(&state));
}
