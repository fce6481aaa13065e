//! The Fabric REST client, end-to-end status and the takeover of foreign table folders, against
//! the Fabric simulator (`onelake_sim::fabric`) and the OneLake simulator sharing its storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use mirror_core::config::Secret;
use mirror_core::destination::{destination_lag, Lag};
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::auth::AuthConfig;
use mirror_onelake::fabric::{FabricClient, FabricError, FabricRetry, FabricTarget, Grant};
use mirror_onelake::location::open_store;
use mirror_onelake::store::remote::RemoteOptions;
use mirror_onelake::store::LandingStore;
use mirror_onelake::takeover::{Takeover, TakeoverPolicy};
use mirror_onelake::{LandingZoneWriter, SinkError, WriterOptions};
use onelake_sim::fabric::{FabricSim, Role};
use onelake_sim::OneLakeSim;

const TENANT: &str = "contoso";
const APP: &str = "app-id";
const SECRET: &str = "app-secret-value";

struct World {
    onelake: OneLakeSim,
    fabric: FabricSim,
    ws: String,
    app: String,
}

async fn world() -> World {
    let (onelake, fabric) = FabricSim::start_with_onelake().await.unwrap();
    let ws = fabric.add_workspace("Sales");
    let app = fabric.register_app(TENANT, APP, SECRET);
    fabric.assign(&ws, &app, Role::Contributor);
    World {
        onelake,
        fabric,
        ws,
        app,
    }
}

fn auth(fabric: &FabricSim, secret: &str) -> AuthConfig {
    AuthConfig::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: APP.into(),
        client_secret: Secret::new(secret),
        authority_host: Some(fabric.authority()),
    }
}

fn retry() -> FabricRetry {
    FabricRetry {
        max_throttle_retries: 4,
        max_wait: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(100),
    }
}

fn client_with(fabric: &FabricSim, auth: &AuthConfig) -> FabricClient {
    FabricClient::new(Some(&fabric.api()), auth)
        .unwrap()
        .with_retry(retry())
}

fn client(fabric: &FabricSim) -> FabricClient {
    client_with(fabric, &auth(fabric, SECRET))
}

fn landing_store(w: &World, landing_zone: &str) -> Arc<dyn LandingStore> {
    let auth = AuthConfig::BearerToken {
        token: Secret::new("storage-token"),
    };
    let options = RemoteOptions {
        endpoint: Some(w.onelake.endpoint()),
        ..RemoteOptions::default()
    };
    open_store(landing_zone, &auth, &options).unwrap()
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .unwrap()
}

async fn write(lz: &mut LandingZoneWriter, table: &Arc<Table>, ids: std::ops::Range<i64>) {
    let n = ids.end - ids.start;
    lz.write_rows(table, rows(ids), vec![RowOp::Upsert; n as usize])
        .await
        .unwrap();
    lz.flush().await.unwrap();
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn create_waits_through_the_long_running_operation_and_starts_once_allowed() {
    let w = world().await;
    w.fabric.set_options(|o| {
        o.provisioning_polls = 2;
        o.retry_after_secs = 1;
        o.initializing_for = Duration::from_secs(5);
    });
    let fabric = client(&w.fabric);
    let started = Instant::now();
    let db = fabric
        .create_mirrored_database(&w.ws, "shop", "from MongoDB", "dbo")
        .await
        .unwrap();
    // 202, then Retry-After (1 s) before each of three state polls (Running, Running, Succeeded).
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(db.display_name, "shop");
    assert_eq!(
        db.landing_zone().unwrap(),
        format!(
            "https://onelake.dfs.fabric.microsoft.com/{}/{}/Files/LandingZone",
            w.ws, db.id
        )
    );
    let log = w.fabric.requests();
    let statuses: Vec<(String, u16)> = log
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| (r.path.clone(), r.status))
        .collect();
    let create = statuses
        .iter()
        .find(|(p, _)| p.ends_with("/mirroredDatabases"))
        .unwrap();
    assert_eq!(create.1, 202, "{statuses:?}");
    let polls = statuses
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/operations/") && !p.ends_with("/result"))
        .count();
    assert_eq!(polls, 3, "{statuses:?}");
    assert!(statuses
        .iter()
        .any(|(p, s)| p.ends_with("/result") && *s == 200));

    // Start is refused while Initializing; it succeeds once the status allows it.
    let refused = fabric.start_mirroring(&w.ws, &db.id).await.unwrap_err();
    let text = refused.to_string();
    assert!(
        matches!(refused, FabricError::Api { status: 400, .. }),
        "{text}"
    );
    assert!(text.contains("Initializing"), "{text}");
    fabric
        .wait_for_status(&w.ws, &db.id, &["Initialized"])
        .await
        .unwrap();
    fabric.start_mirroring(&w.ws, &db.id).await.unwrap();
    let status = fabric
        .wait_for_status(&w.ws, &db.id, &["Running"])
        .await
        .unwrap();
    assert_eq!(status.status, "Running");
    fabric.stop_mirroring(&w.ws, &db.id).await.unwrap();
    assert_eq!(
        fabric.mirroring_status(&w.ws, &db.id).await.unwrap().status,
        "Stopped"
    );

    // A bad definition is refused with the specification's error code.
    let again = fabric
        .create_mirrored_database(&w.ws, "shop", "", "dbo")
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("ItemDisplayNameAlreadyInUse"),
        "{again}"
    );
}

#[tokio::test]
async fn paged_lists_are_read_to_the_end() {
    let w = world().await;
    w.fabric.set_options(|o| o.page_size = 2);
    for name in ["Alpha", "Beta", "Gamma", "Delta"] {
        let id = w.fabric.add_workspace(name);
        w.fabric.assign(&id, &w.app, Role::Viewer);
    }
    let fabric = client(&w.fabric);
    assert_eq!(fabric.workspaces().await.unwrap().len(), 5);
    // The last page's workspace is found by name.
    let found = fabric.workspace("Delta").await.unwrap();
    assert_eq!(found.display_name, "Delta");
    for name in ["a", "b", "c"] {
        fabric
            .create_mirrored_database(&w.ws, name, "", "dbo")
            .await
            .unwrap();
    }
    assert_eq!(fabric.mirrored_databases(&w.ws).await.unwrap().len(), 3);
    let db = fabric.mirrored_database(&w.ws, "c").await.unwrap();
    fabric.start_mirroring(&w.ws, &db.id).await.unwrap();

    // Five tables in the landing zone: their statuses come in three pages.
    let store = landing_store(&w, &db.landing_zone().unwrap());
    let mut lz = LandingZoneWriter::open(store, WriterOptions::default())
        .await
        .unwrap();
    for t in 0..5 {
        let table = Arc::new(Table::new(TableId::new(format!("t{t}")), ["id"]));
        write(&mut lz, &table, 0..3).await;
    }
    lz.close().await.unwrap();
    eventually("five replicated tables", || {
        (w.fabric
            .tables(&db.id)
            .values()
            .filter(|t| t.last_applied > 0)
            .count()
            == 5)
            .then_some(())
    })
    .await;
    let tables = fabric.tables_mirroring_status(&w.ws, &db.id).await.unwrap();
    let mut names: Vec<String> = tables
        .iter()
        .filter_map(|t| t.source_table_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["t0", "t1", "t2", "t3", "t4"]);
    let pages = w
        .fabric
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/getTablesMirroringStatus"))
        .count();
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn throttled_calls_wait_as_retry_after_says_then_give_up_clearly() {
    let w = world().await;
    let fabric = client(&w.fabric);
    w.fabric.throttle(2, 1);
    let started = Instant::now();
    assert_eq!(fabric.workspaces().await.unwrap().len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let throttled = w
        .fabric
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(throttled, 2);

    w.fabric.throttle(10, 0);
    let err = fabric.workspaces().await.unwrap_err();
    assert!(
        matches!(err, FabricError::Throttled { attempts: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_bad_credentials_say_so() {
    let w = world().await;
    let fabric = client(&w.fabric);
    fabric.workspace(&w.ws).await.unwrap();
    w.fabric.expire_all_tokens();
    fabric.workspace(&w.ws).await.unwrap();
    let issued = w.fabric.issued_tokens();
    assert_eq!(issued.len(), 2, "one fresh token after the 401");
    let api: Vec<(Option<String>, u16)> = w
        .fabric
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| (r.token.clone(), r.status))
        .collect();
    assert_eq!(
        api,
        [
            (Some(issued[0].clone()), 200),
            (Some(issued[0].clone()), 401),
            (Some(issued[1].clone()), 200)
        ]
    );

    // A wrong secret: Entra's own explanation, never the secret.
    let wrong = client_with(&w.fabric, &auth(&w.fabric, "not-the-secret"));
    let err = wrong.workspaces().await.unwrap_err().to_string();
    assert!(
        err.contains("AADSTS7000215") && err.contains("client_secret"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");

    // A fixed token cannot be refreshed: the 401 is an error naming the method.
    let token = w.fabric.mint_token(&w.app);
    w.fabric.expire_token(&token);
    let fixed = client_with(
        &w.fabric,
        &AuthConfig::BearerToken {
            token: Secret::new(token.clone()),
        },
    );
    let err = fixed.workspace(&w.ws).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FabricError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains("bearer_token") && text.contains("TokenExpired"),
        "{text}"
    );
    assert!(!text.contains(&token), "{text}");

    // Storage keys are no credential for Fabric.
    let key = FabricClient::new(
        None,
        &AuthConfig::AccessKey {
            account_key: Secret::new("k"),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(key.contains("Entra"), "{key}");
}

#[tokio::test]
async fn forbidden_and_not_found_name_the_role_workspace_or_item() {
    let w = world().await;
    let viewer = w.fabric.register_app(TENANT, "viewer-app", "viewer-secret");
    w.fabric.assign(&w.ws, &viewer, Role::Viewer);
    let owner = client(&w.fabric);
    let db = owner
        .create_mirrored_database(&w.ws, "shop", "", "dbo")
        .await
        .unwrap();
    let as_viewer = client_with(
        &w.fabric,
        &AuthConfig::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: "viewer-app".into(),
            client_secret: Secret::new("viewer-secret"),
            authority_host: Some(w.fabric.authority()),
        },
    );
    // A viewer can read the status, not start mirroring.
    as_viewer.mirroring_status(&w.ws, &db.id).await.unwrap();
    let err = as_viewer.start_mirroring(&w.ws, &db.id).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FabricError::Forbidden { .. }), "{text}");
    assert!(
        text.contains("Contributor") && text.contains(&w.ws),
        "{text}"
    );

    let missing_ws = "00000000-0000-0000-0000-00000000abcd";
    let err = owner.workspace(missing_ws).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("workspace {missing_ws} was not found")),
        "{err}"
    );
    let missing_item = "00000000-0000-0000-0000-00000000beef";
    let err = owner
        .mirroring_status(&w.ws, missing_item)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "mirrored database {missing_item} in workspace {}",
            w.ws
        )),
        "{err}"
    );
    let err = owner
        .mirrored_database(&w.ws, "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`nope`") && err.contains("mirror fabric create"),
        "{err}"
    );

    // A workspace the identity has no role in: listed by nobody, refused by id.
    let other = w.fabric.add_workspace("Finance");
    let err = owner.workspace("Finance").await.unwrap_err().to_string();
    assert!(err.contains("has a role in"), "{err}");
    let err = owner.workspace(&other).await.unwrap_err().to_string();
    assert!(err.contains("403") && err.contains("Viewer"), "{err}");
}

#[tokio::test]
async fn grant_adds_a_role_raises_a_lower_one_and_keeps_a_higher_one() {
    let w = world().await;
    w.fabric.assign(&w.ws, &w.app, Role::Member);
    let fabric = client(&w.fabric);
    let newcomer = w.fabric.new_principal();
    assert_eq!(
        fabric
            .grant(&w.ws, &newcomer, "ServicePrincipal", "Contributor")
            .await
            .unwrap(),
        Grant::Added
    );
    assert_eq!(w.fabric.role_of(&w.ws, &newcomer), Some(Role::Contributor));
    assert_eq!(
        fabric
            .grant(&w.ws, &newcomer, "ServicePrincipal", "Viewer")
            .await
            .unwrap(),
        Grant::AlreadyHad("Contributor".into())
    );
    // Raising a role needs an admin; a member is told so.
    let reader = w.fabric.new_principal();
    w.fabric.assign(&w.ws, &reader, Role::Viewer);
    let err = fabric
        .grant(&w.ws, &reader, "ServicePrincipal", "Contributor")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("403") && err.contains("Admin"), "{err}");
    w.fabric.assign(&w.ws, &w.app, Role::Admin);
    assert_eq!(
        fabric
            .grant(&w.ws, &reader, "ServicePrincipal", "Contributor")
            .await
            .unwrap(),
        Grant::Raised("Viewer".into())
    );
    assert_eq!(w.fabric.role_of(&w.ws, &reader), Some(Role::Contributor));
    assert!(fabric
        .grant(&w.ws, &reader, "ServicePrincipal", "Owner")
        .await
        .is_err());
}

#[tokio::test]
async fn table_status_is_what_fabric_applied_from_the_landing_zone() {
    let w = world().await;
    let fabric = client(&w.fabric);
    let db = fabric
        .create_mirrored_database(&w.ws, "shop", "", "dbo")
        .await
        .unwrap();
    fabric.start_mirroring(&w.ws, &db.id).await.unwrap();
    let landing_zone = db.landing_zone().unwrap();
    let store = landing_store(&w, &landing_zone);
    let orders = Arc::new(Table::new(TableId::with_schema("sales", "orders"), ["id"]));
    let users = Arc::new(Table::new(TableId::new("users"), ["id"]));
    let mut lz = LandingZoneWriter::open(store.clone(), WriterOptions::default())
        .await
        .unwrap();
    write(&mut lz, &orders, 0..30).await;
    write(&mut lz, &orders, 20..40).await; // 10 updates, 10 inserts: 50 rows in files
    write(&mut lz, &users, 0..12).await;
    lz.close().await.unwrap();
    eventually("both tables applied", || {
        let tables = w.fabric.tables(&db.id);
        (tables
            .get("sales.schema/orders")
            .is_some_and(|t| t.last_applied == 2)
            && tables.get("users").is_some_and(|t| t.last_applied == 1))
        .then_some(())
    })
    .await;

    let target = FabricTarget::new(client(&w.fabric), "Sales", "shop");
    let report = mirror_onelake::fabric::status::report(&*store, &target)
        .await
        .unwrap();
    assert_eq!(report.state.as_deref(), Some("Running"));
    assert!(report.destination.contains("`shop`") && report.destination.contains("`Sales`"));
    let orders_row = report
        .tables
        .iter()
        .find(|t| t.location == "sales.schema/orders")
        .unwrap();
    assert_eq!(orders_row.table, Some(orders.id.clone()));
    assert_eq!(
        (orders_row.written_rows, orders_row.applied_rows),
        (Some(50), Some(50))
    );
    assert_eq!(orders_row.state.as_deref(), Some("Replicating"));
    assert_eq!(orders_row.caught_up(), Some(true));
    let users_row = report
        .tables
        .iter()
        .find(|t| t.location == "users")
        .unwrap();
    assert_eq!(
        (users_row.written_rows, users_row.applied_rows),
        (Some(12), Some(12))
    );
    let now = chrono::Utc::now();
    let as_of = now - chrono::Duration::seconds(3);
    match destination_lag(users_row, Some(as_of), now) {
        Lag::Known { lag, .. } => assert_eq!(lag, Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }

    // Another writer changes a column's type: Fabric fails the table, and says what to do.
    let folder = format!("{}/{}/Files/LandingZone/users", w.ws, db.id);
    let bad = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![99])) as ArrayRef),
        ("name", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        (
            "__rowMarker__",
            Arc::new(arrow::array::Int32Array::from(vec![4])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, bad.schema(), None).unwrap();
    writer.write(&bad).unwrap();
    writer.close().unwrap();
    w.onelake
        .storage()
        .put_blob(
            &format!("{folder}/00000000000000000002.parquet"),
            bytes.into(),
            &Default::default(),
            Default::default(),
            None,
        )
        .unwrap();
    eventually("the users table to fail", || {
        matches!(
            w.fabric.tables(&db.id).get("users").map(|t| &t.status),
            Some(onelake_sim::TableStatus::Failed { .. })
        )
        .then_some(())
    })
    .await;
    let report = mirror_onelake::fabric::status::report(&*store, &target)
        .await
        .unwrap();
    let users_row = report
        .tables
        .iter()
        .find(|t| t.location == "users")
        .unwrap();
    assert!(users_row.failed);
    assert_eq!(users_row.state.as_deref(), Some("Failed"));
    assert!(
        users_row.error.as_deref().unwrap().contains("changed type"),
        "{users_row:?}"
    );
    let advice = users_row.advice.as_deref().unwrap();
    assert!(
        advice.contains("_mirror_overflow")
            && advice.contains("delete the landing-zone folder `users`"),
        "{advice}"
    );
    assert!(matches!(
        destination_lag(users_row, Some(now), now),
        Lag::Unknown { .. }
    ));
}

/// A table folder laid out as the Python app leaves it.
fn python_app_folder(root: &std::path::Path, name: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in onelake_sim::python_app::table_files(&[1, 2, 3, 4, 5]) {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

#[tokio::test]
async fn a_foreign_folder_is_refused_with_the_reason_then_reset_on_request() {
    let dir = tempfile::tempdir().unwrap();
    python_app_folder(dir.path(), "orders");
    // Another tool's sequence, without the app's state files.
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::fs::write(
        dir.path().join("other/00000000000000000001.parquet"),
        onelake_sim::python_app::pandas_parquet(&[1]),
    )
    .unwrap();
    let store = open_store(
        dir.path().to_str().unwrap(),
        &AuthConfig::default(),
        &RemoteOptions::default(),
    )
    .unwrap();

    let app = mirror_onelake::takeover::inspect(&*store, "orders")
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.writer.contains("Python app") && app.writer.contains("_resume_token.pkl"),
        "{app:?}"
    );
    assert_eq!(app.last_file, Some(3));
    let other = mirror_onelake::takeover::inspect(&*store, "other")
        .await
        .unwrap()
        .unwrap();
    assert!(other.writer.contains("parquet-cpp-arrow"), "{other:?}");

    let orders = Arc::new(Table::new(TableId::new("orders"), ["_id"]));
    let batch = || {
        RecordBatch::try_from_iter([
            (
                "_id",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            ("v", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ])
        .unwrap()
    };
    let mut lz = LandingZoneWriter::open(store.clone(), WriterOptions::default())
        .await
        .unwrap();
    let err = lz
        .write_rows(&orders, batch(), vec![RowOp::Upsert; 2])
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::ForeignTable { .. }), "{err}");
    let text = err.to_string();
    for needle in [
        "`orders`",
        "Python app",
        "NULLs",
        "replace",
        "takeover = \"reset\"",
        "docs/migrating.md",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // Nothing was written, nothing was unpickled or removed.
    assert!(dir.path().join("orders/_resume_token.pkl").exists());
    assert!(!dir.path().join("orders/_mirror_table.json").exists());

    let options = WriterOptions {
        takeover: Takeover {
            policy: TakeoverPolicy::Reset,
            fabric: None,
        },
        ..WriterOptions::default()
    };
    let mut lz = LandingZoneWriter::open(store.clone(), options)
        .await
        .unwrap();
    lz.write_rows(&orders, batch(), vec![RowOp::Upsert; 2])
        .await
        .unwrap();
    lz.close().await.unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path().join("orders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".pkl")), "{names:?}");
    assert!(
        names.contains(&"_mirror_table.json".to_owned()),
        "{names:?}"
    );
    // The app's sequence is not continued: the new table starts at file 1, with its rows only.
    let (n, info) = mirror_onelake::datafile::newest(&*store, "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, info.rows, info.rows_through), (1, 2, Some(2)));
    assert!(info.written_by_mirror());
}

#[tokio::test]
async fn data_files_count_the_rows_published_through_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(
        dir.path().to_str().unwrap(),
        &AuthConfig::default(),
        &RemoteOptions::default(),
    )
    .unwrap();
    let table = Arc::new(Table::new(TableId::new("t"), ["id"]));
    let mut lz = LandingZoneWriter::open(store.clone(), WriterOptions::default())
        .await
        .unwrap();
    write(&mut lz, &table, 0..10).await;
    lz.close().await.unwrap();
    let mut lz = LandingZoneWriter::open(store.clone(), WriterOptions::default())
        .await
        .unwrap();
    write(&mut lz, &table, 5..10).await;
    let (n, info) = mirror_onelake::datafile::newest(&*store, "t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, info.rows, info.rows_through), (2, 5, Some(15)));
    // Emptied, the table counts from zero again.
    lz.truncate(&table).await.unwrap();
    write(&mut lz, &table, 0..4).await;
    lz.close().await.unwrap();
    let (n, info) = mirror_onelake::datafile::newest(&*store, "t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, info.rows_through), (1, Some(4)));
}
