//! The `mirror fabric`, `mirror init` and `mirror status` commands as a user runs them, against
//! the Fabric REST simulator, the OneLake simulator (sharing one storage, so Fabric's table status
//! is computed from what `mirror` really published) and the MongoDB simulator.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongo_sim::{MongoSim, SimOptions, SimThread};
use onelake_sim::fabric::{FabricSim, MirroringStatus, Role};
use onelake_sim::{OneLakeSim, Storage, Value};

const TENANT: &str = "contoso";
const APP: &str = "8f1c2d3e-0000-4000-8000-00000000a11c";
const SECRET: &str = "very-secret-client-value";

struct World {
    dir: tempfile::TempDir,
    mongo: SimThread,
    onelake: OneLakeSim,
    fabric: FabricSim,
    ws: String,
    app: String,
}

async fn world() -> World {
    let (onelake, fabric) = FabricSim::start_with_onelake().await.unwrap();
    fabric.set_options(|o| {
        o.provisioning_polls = 1;
        o.retry_after_secs = 1;
        o.initializing_for = Duration::from_millis(500);
        o.page_size = 2;
    });
    let ws = fabric.add_workspace("Sales");
    let app = fabric.register_app(TENANT, APP, SECRET);
    fabric.assign(&ws, &app, Role::Contributor);
    let mongo = MongoSim::start_on_thread(SimOptions::default()).unwrap();
    World {
        dir: tempfile::tempdir().unwrap(),
        mongo,
        onelake,
        fabric,
        ws,
        app,
    }
}

fn docs(n: i64) -> Vec<Document> {
    (0..n)
        .map(|i| doc! {"_id": i, "v": i * 10, "name": format!("item {i}")})
        .collect()
}

impl World {
    fn mirror(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirror"));
        // Any free port for the HTTP API: tests run in parallel, and 8686 may be taken.
        cmd.env("RUST_LOG", "warn")
            .env_remove("MIRROR_CONFIG")
            .env("MIRROR_API_ADDRESS", "127.0.0.1:0")
            .env("MIRROR_TEST_SECRET", SECRET)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", APP)
            .env("AZURE_CLIENT_SECRET", SECRET)
            .env("AZURE_AUTHORITY_HOST", self.fabric.authority())
            .env("MIRROR_FABRIC_API", self.fabric.api())
            .current_dir(self.dir.path());
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.mirror();
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs a command that must end by itself within `limit` (else it is stopped and the test fails).
    async fn run_to_exit(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = self.mirror();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "mirror {args:?} did not end within {limit:?}: {}",
                    text(&out)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child.wait_with_output().unwrap()
    }

    fn spawn_run(&self, config: &Path, log: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        self.mirror()
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn,mirror_onelake=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// A configuration mirroring `collections` of `shop` into a landing zone still to be created.
    fn config(&self, collections: &str, naming: &str) -> PathBuf {
        let path = self.dir.path().join("mirror.toml");
        std::fs::write(
            &path,
            format!(
                r#"# written by the test
[sources.mongodb]
type = "mongodb"
uri = "{uri}"
databases = ["shop"]
collections = {collections}
naming = "{naming}"
progress = false

[sinks.fabric]
type = "onelake"
inputs = ["mongodb"]
landing_zone = "https://onelake.dfs.fabric.microsoft.com/pending/pending/Files/LandingZone"
endpoint = "{onelake}"
flush_interval = "200ms"
auth = {{ method = "client_secret", tenant_id = "{TENANT}", client_id = "{APP}", client_secret = "${{MIRROR_TEST_SECRET}}", authority_host = "{authority}" }}
fabric = {{ api = "{api}" }}
"#,
                uri = self.mongo.uri(),
                onelake = self.onelake.endpoint(),
                authority = self.fabric.authority(),
                api = self.fabric.api(),
            ),
        )
        .unwrap();
        path
    }

    /// `mirror fabric create` into `config`; returns the item id.
    async fn create(&self, config: &Path, name: &str) -> String {
        let out = self
            .run(&[
                "fabric",
                "create",
                "--workspace",
                "Sales",
                "--name",
                name,
                "--config",
                config.to_str().unwrap(),
            ])
            .await;
        let printed = text(&out);
        assert!(out.status.success(), "{printed}");
        let (_, item, _) = self
            .fabric
            .items()
            .into_iter()
            .find(|(_, _, n)| n == name)
            .expect("created");
        assert!(
            printed.contains(&format!(
            "landing zone: https://onelake.dfs.fabric.microsoft.com/{}/{item}/Files/LandingZone",
            self.ws
        )),
            "{printed}"
        );
        assert!(printed.contains("mirroring: Running"), "{printed}");
        item
    }

    /// Waits until `table` of `item` has processed `rows` rows.
    async fn wait_processed(
        &self,
        item: &str,
        table: &str,
        rows: u64,
        child: &mut Child,
        log: &str,
    ) {
        let started = Instant::now();
        loop {
            if self
                .fabric
                .tables(item)
                .get(table)
                .is_some_and(|t| t.processed_rows() == rows)
            {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mirror exited early ({status}): {}", self.log(log));
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{table}: {:?} processed; log: {}",
                self.fabric
                    .tables(item)
                    .get(table)
                    .map(|t| (t.processed_rows(), t.status.clone())),
                self.log(log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

/// `_id` as the MongoDB source encodes keys.
fn key(id: &bson::Bson) -> String {
    let raw = bson::RawDocumentBuf::from_document(&doc! {"_id": id.clone()}).unwrap();
    let mut out = String::new();
    mirror_mongodb::bson_arrow::encode_key(&mut out, raw.get("_id").unwrap().unwrap()).unwrap();
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "mirror stops cleanly: {status}");
}

fn edit(path: &Path, change: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(path).unwrap().parse().unwrap();
    change(&mut doc);
    std::fs::write(path, doc.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_commands_create_start_stop_status_and_grant() {
    let w = world().await;
    let config = w.config(r#"["orders"]"#, "flat");
    let cfg = config.to_str().unwrap();
    let item = w.create(&config, "shop").await;
    // The configuration now names the item and its landing zone, and is valid.
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("# written by the test"),
        "comments are kept:\n{written}"
    );
    let doc: toml_edit::DocumentMut = written.parse().unwrap();
    assert_eq!(
        doc["sinks"]["fabric"]["landing_zone"].as_str().unwrap(),
        format!(
            "https://onelake.dfs.fabric.microsoft.com/{}/{item}/Files/LandingZone",
            w.ws
        )
    );
    assert_eq!(
        doc["sinks"]["fabric"]["fabric"]["item"].as_str(),
        Some(item.as_str())
    );
    assert_eq!(
        doc["sinks"]["fabric"]["fabric"]["workspace"].as_str(),
        Some(w.ws.as_str())
    );
    let out = w.run(&["check", "--config", cfg]).await;
    assert!(out.status.success(), "{}", text(&out));

    let out = w.run(&["fabric", "stop", "--config", cfg]).await;
    assert!(text(&out).contains(": Stopped"), "{}", text(&out));
    assert_eq!(w.fabric.status(&item), Some(MirroringStatus::Stopped));
    let out = w.run(&["fabric", "start", "--config", cfg]).await;
    assert!(text(&out).contains(": Running"), "{}", text(&out));
    let out = w.run(&["fabric", "status", "--config", cfg]).await;
    let printed = text(&out);
    assert!(
        out.status.success() && printed.contains("`shop`") && printed.contains(": Running"),
        "{printed}"
    );
    assert!(printed.contains("tables: 0"), "{printed}");

    // Without a configuration: names, and credentials from the AZURE_* variables.
    let out = w
        .run(&["fabric", "status", "--workspace", "Sales", "--item", "shop"])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = w
        .run(&["fabric", "status", "--workspace", "Sales", "--item", "nope"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("mirrored database `nope`"),
        "{}",
        text(&out)
    );
    let out = w.run(&["fabric", "status", "--item", "shop"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Granting a role needs Member: the message says so; as Member it works.
    let principal = w.fabric.new_principal();
    let grant = [
        "fabric",
        "grant",
        "--principal",
        principal.as_str(),
        "--config",
        cfg,
    ];
    let out = w.run(&grant).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Member role"), "{}", text(&out));
    w.fabric.assign(&w.ws, &w.app, Role::Member);
    let out = w.run(&grant).await;
    assert!(
        text(&out).contains("now has the Contributor role"),
        "{}",
        text(&out)
    );
    assert_eq!(w.fabric.role_of(&w.ws, &principal), Some(Role::Contributor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_fabric_processed_rows_equal_to_the_collection() {
    let w = world().await;
    w.mongo.seed("shop", "orders", docs(500)).unwrap();
    let config = w.config(r#"["orders"]"#, "schema");
    let item = w.create(&config, "shop").await;
    let mut child = w.spawn_run(&config, "run.log");
    w.wait_processed(&item, "shop.schema/orders", 500, &mut child, "run.log")
        .await;
    stop(child).await;
    assert_eq!(w.mongo.collection_len("shop", "orders"), 500);

    let out = w
        .run(&["status", "--config", config.to_str().unwrap()])
        .await;
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("`shop`") && printed.contains(": Running"),
        "{printed}"
    );
    assert!(printed.contains("shop.schema/orders"), "{printed}");
    assert!(printed.contains("500 rows published"), "{printed}");
    assert!(
        printed.contains("Fabric: Replicating, 500 rows processed"),
        "{printed}"
    );
    assert!(printed.contains("Delta table lag: "), "{printed}");
    assert!(!printed.contains("Delta table lag: unknown"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_from_env_converts_the_python_apps_settings() {
    let w = world().await;
    for (coll, n) in [("orders", 40), ("customers", 25), ("logs", 5)] {
        w.mongo.seed("shop", coll, docs(n)).unwrap();
    }
    // The item exists already (the app's users made it in the portal).
    let item = {
        let config = w.config(r#"["orders"]"#, "flat");
        w.create(&config, "shop").await
    };
    let conn = format!("{}&appName=conn-marker-7f3a", w.mongo.uri());
    let env = format!(
        r#"LOG_LEVEL = "INFO" # optional

MONGO_CONN_STR = "{conn}"
MONGO_DB_NAME = "shop"
MONGO_COLLECTION = ["orders", "customers"]
# MONGO_COLLECTION = "collection_name"

# this url can be obtained in Azure Storage Explorer
LZ_URL = "https://onelake.dfs.fabric.microsoft.com/{ws}/{item}/Files/LandingZone/"

APP_ID = "{APP}"
SECRET = "{SECRET}"
TENANT_ID = "{TENANT}"

INIT_LOAD_BATCH_SIZE = 100000
DELTA_SYNC_BATCH_SIZE = 1
TIME_THRESHOLD_IN_SEC = 600
APP_LOG_LEVEL = "DEBUG"
"#,
        ws = w.ws,
    );
    std::fs::write(w.dir.path().join(".env"), env).unwrap();
    std::fs::remove_file(w.dir.path().join("mirror.toml")).unwrap();
    let out = w.run(&["init", "--from-env", ".env"]).await;
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for note in [
        "DELTA_SYNC_BATCH_SIZE",
        "TIME_THRESHOLD_IN_SEC",
        "APP_LOG_LEVEL",
    ] {
        assert!(printed.contains(note), "{note} is explained: {printed}");
    }
    let config = w.dir.path().join("mirror.toml");
    let written = std::fs::read_to_string(&config).unwrap();
    // No secret value, only references to the variables that hold them.
    for secret in [SECRET, "conn-marker-7f3a", conn.as_str()] {
        assert!(!written.contains(secret), "{secret} leaked:\n{written}");
    }
    assert!(
        written.contains("${SECRET}") && written.contains("${MONGO_CONN_STR}"),
        "{written}"
    );
    assert!(written.contains("naming = \"flat\""), "{written}");
    assert!(written.contains("snapshot_page_size = 100000"), "{written}");
    // Never overwritten without --force.
    let out = w.run(&["init", "--from-env", ".env"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--force"), "{}", text(&out));

    let check = |w: &World| {
        let mut cmd = w.mirror();
        cmd.args(["check", "--config"])
            .arg(&config)
            .env("MONGO_CONN_STR", &conn)
            .env("SECRET", SECRET);
        cmd
    };
    let out = check(&w).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Run it (pointed at the simulators: the only edits a real user does not need).
    edit(&config, |doc| {
        let sink = &mut doc["sinks"]["fabric"];
        sink["endpoint"] = toml_edit::value(w.onelake.endpoint());
        sink["auth"]["authority_host"] = toml_edit::value(w.fabric.authority());
        sink["fabric"]["api"] = toml_edit::value(w.fabric.api());
    });
    let log = std::fs::File::create(w.dir.path().join("init-run.log")).unwrap();
    let mut child = w
        .mirror()
        .args(["run", "--config"])
        .arg(&config)
        .env("MONGO_CONN_STR", &conn)
        .env("SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    w.wait_processed(&item, "orders", 40, &mut child, "init-run.log")
        .await;
    w.wait_processed(&item, "customers", 25, &mut child, "init-run.log")
        .await;
    stop(child).await;
    // The same collections under the same table names as the app: <landing zone>/<collection>/.
    let tables: Vec<String> = w.fabric.tables(&item).keys().cloned().collect();
    assert_eq!(tables, ["customers", "orders"]);
}

/// The Python app's table folder (its pickle state files, pandas-written data files).
fn plant_python_app_table(storage: &Storage, folder: &str, ids: &[i64]) {
    for (name, bytes) in onelake_sim::python_app::table_files(ids) {
        storage
            .put_blob(
                &format!("{folder}/{name}"),
                bytes.into(),
                &Default::default(),
                Default::default(),
                None,
            )
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_app_table_is_refused_then_reset_and_mirrored_afresh() {
    let w = world().await;
    w.mongo.seed("shop", "orders", docs(200)).unwrap();
    let config = w.config(r#"["orders"]"#, "flat");
    let item = w.create(&config, "shop").await;
    let folder = format!("{}/{item}/Files/LandingZone/orders", w.ws);
    plant_python_app_table(w.onelake.storage(), &folder, &[1, 2, 3, 4, 5]);
    let started = Instant::now();
    while w
        .fabric
        .tables(&item)
        .get("orders")
        .is_none_or(|t| t.processed_rows() != 5)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Fabric applies the app's files"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refused, with the reason and the way forward; the app's folder is left as it was.
    let out = w
        .run_to_exit(
            &["run", "--config", config.to_str().unwrap()],
            Duration::from_secs(60),
        )
        .await;
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    for needle in [
        "`orders`",
        "Python app",
        "_resume_token.pkl",
        "NULLs",
        "takeover = \\\"reset\\\"",
        "docs/migrating.md",
    ] {
        assert!(
            printed.contains(needle) || printed.contains(&needle.replace("\\\"", "\"")),
            "{needle}: {printed}"
        );
    }
    assert!(w
        .onelake
        .storage()
        .get(&format!("{folder}/_resume_token.pkl"))
        .is_some());
    assert!(w
        .onelake
        .storage()
        .get(&format!("{folder}/_mirror_table.json"))
        .is_none());

    // With the explicit setting: reset (Fabric drops the table), then copied afresh.
    edit(&config, |doc| {
        doc["sinks"]["fabric"]["takeover"] = toml_edit::value("reset")
    });
    let mut child = w.spawn_run(&config, "reset.log");
    w.wait_processed(&item, "orders", 200, &mut child, "reset.log")
        .await;
    stop(child).await;
    let log = w.log("reset.log");
    assert!(
        log.contains("waiting until Fabric has dropped the table"),
        "{log}"
    );
    let table = w.fabric.tables(&item).get("orders").cloned().unwrap();
    assert!(table.rebuilds >= 1, "Fabric rebuilt the table");
    let mut got: Vec<(String, i64)> = table
        .rows()
        .iter()
        .map(|r| match (r.get("_id"), r.get("v")) {
            (Some(Value::Str(id)), Some(Value::Int(v))) => (id.clone(), *v),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, i64)> = w
        .mongo
        .collection_docs("shop", "orders")
        .iter()
        .map(|d| (key(d.get("_id").unwrap()), d.get_i64("v").unwrap()))
        .collect();
    want.sort();
    assert_eq!(got, want, "the table equals the collection");
    for pickle in ["_resume_token.pkl", "_init_sync_status.pkl", "_max_id.pkl"] {
        assert!(
            w.onelake
                .storage()
                .get(&format!("{folder}/{pickle}"))
                .is_none(),
            "{pickle} is gone"
        );
    }
}

/// While `mirror run` runs, Fabric's side is served with the rest: `/api/status` and `/metrics`
/// (read by the Prometheus project's parser) show what Fabric applied of each table and the
/// Delta table's own lag, and the status page shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_mirror_serves_what_fabric_applied_and_the_delta_lag() {
    let Some(python) = support::python() else {
        return;
    };
    let w = world().await;
    w.mongo.seed("shop", "orders", docs(300)).unwrap();
    let config = w.config(r#"["orders"]"#, "schema");
    edit(&config, |doc| {
        doc["sinks"]["fabric"]["fabric"]["status_interval"] = toml_edit::value("1s");
    });
    let item = w.create(&config, "shop").await;
    let envs: Vec<(String, String)> = {
        let cmd = w.mirror();
        cmd.get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            // `support::Mirror` reads the API's address from the info log.
            .filter(|(k, _)| k != "RUST_LOG")
            .collect()
    };
    let dir = w.dir.path().to_owned();
    let mirror = tokio::task::spawn_blocking(move || {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::Mirror::start(&config, &dir, &["--api-address", "127.0.0.1:0"], &envs)
    })
    .await
    .unwrap();
    let table = "shop.schema/orders";
    let started = Instant::now();
    while w
        .fabric
        .tables(&item)
        .get(table)
        .map(|t| t.processed_rows())
        != Some(300)
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{}",
            mirror.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (mirror, status, metrics, page) = tokio::task::spawn_blocking(move || {
        // The next check after Fabric caught up reports it, with a known lag.
        let status = support::wait_for(
            "Fabric's applied rows in /api/status",
            Duration::from_secs(30),
            || {
                let status = mirror.get("/api/status").json();
                let t = status["tables"]
                    .as_array()?
                    .iter()
                    .find(|t| t["table"] == table)?
                    .clone();
                (t["destination"]["applied_rows"] == 300
                    && t["destination"]["lag_seconds"].is_number())
                .then_some(status)
            },
        );
        let reply = mirror.get("/metrics");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let metrics = support::Metrics::parse(&python, &reply.body, "text");
        let page = mirror.get("/");
        (mirror, status, metrics, page)
    })
    .await
    .unwrap();

    let t = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap();
    let d = &t["destination"];
    assert_eq!(d["state"], "Replicating", "{d}");
    assert_eq!(d["written_rows"], 300, "{d}");
    assert_eq!(d["failed"], false, "{d}");
    let lag = d["lag_seconds"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&lag), "Delta lag {lag} s: {d}");
    let sink = status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fabric")
        .unwrap();
    assert_eq!(sink["destination"]["state"], "Running", "{sink}");
    assert!(sink["destination"]["error"].is_null(), "{sink}");
    assert!(
        sink["destination"]["destination"]
            .as_str()
            .is_some_and(|s| s.contains("shop")),
        "{sink}"
    );

    let labels = [("sink", "fabric"), ("table", table)];
    assert_eq!(
        metrics.value("mirror_destination_applied_rows", &labels),
        Some(300.0)
    );
    assert_eq!(
        metrics.value("mirror_destination_written_rows", &labels),
        Some(300.0)
    );
    assert_eq!(
        metrics.value("mirror_destination_table_failed", &labels),
        Some(0.0)
    );
    let metric_lag = metrics
        .value("mirror_destination_lag_seconds", &labels)
        .expect("the Delta lag is known once Fabric applied every row");
    assert!((0.0..60.0).contains(&metric_lag), "{metric_lag}");
    assert_eq!(
        metrics.value("mirror_destination_up", &[("sink", "fabric")]),
        Some(1.0)
    );

    assert_eq!(page.status, 200);
    assert!(page.body.contains("<dt>in Fabric</dt>"), "{}", page.body);
    assert!(
        page.body.contains("Replicating, 300 rows applied"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<dt>Fabric lag</dt>"), "{}", page.body);
    assert!(!page.body.contains(SECRET), "no secret on the page");
    assert!(
        !status.to_string().contains(SECRET),
        "no secret in the JSON"
    );

    let code = tokio::task::spawn_blocking(move || mirror.stop())
        .await
        .unwrap();
    assert!(code.success(), "{code}");
}
