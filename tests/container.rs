//! The container image, run by a real Docker Engine: it mirrors mongo-sim on the host into a
//! mounted landing zone and into onelake-sim with a bearer token, as a non-root PID 1 on a
//! read-only root file system; `docker stop` drains and commits and exits 0; a restarted
//! container resumes without copying again; an invalid configuration exits 2 with the error in
//! `docker logs`; the configurations the Azure and Kubernetes deployments give it pass
//! `mirror check`. Tables are checked the way Fabric would build them (onelake-sim's replicator)
//! against the collection.
//!
//! `deploy/test-image.sh` builds the image and runs these tests with `MIRROR_TEST_IMAGE` set
//! (`.ci/run` calls it). They are `#[ignore]`d so that `cargo test --workspace` reports them as
//! ignored rather than running without an image; run with `--ignored` and no image, they fail.
//! Every container uses the host's network (traffic stays on loopback) and is removed afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use mongo_sim::{MongoSim, SimHandle, SimOptions};
use onelake_sim::{LandingFiles, LocalDir, Replicator, Value};
use support::*;

const TABLE: &str = "shop.schema/orders";
/// The uid:gid the Dockerfile runs as.
const USER: &str = "10001:10001";
/// A URI as Atlas gives it, for `mirror check` (nothing connects to it).
const ATLAS_URI: &str = "MONGODB_URI=mongodb+srv://user:pw@cluster0.example.mongodb.net/";
/// Marks every container these tests start (deploy/test-image.sh removes leftovers by it).
const LABEL: &str = "io.mirror.test=container";

/// The image under test; a failure, not a skip, when it is not given.
fn image() -> String {
    std::env::var("MIRROR_TEST_IMAGE").unwrap_or_else(|_| {
        panic!(
            "MIRROR_TEST_IMAGE is not set: these tests run against a built image; \
             run deploy/test-image.sh (as root: it installs and starts Docker)"
        )
    })
}

fn docker_bin() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "docker".into())
}

/// `docker args...`, which must succeed.
fn docker(args: &[&str]) -> Output {
    let out = Command::new(docker_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", docker_bin()));
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `docker run --rm --network host args...`, which must succeed.
fn run_rm(args: &[&str]) -> Output {
    docker(&[&["run", "--rm", "--network", "host"], args].concat())
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A container started by a test; removed (with `docker rm -f`) when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d` with the label and the host's network, then `args` (options, the image,
    /// and the command if any).
    fn run(name: &str, args: &[&str]) -> Container {
        let name = format!("mirror-test-{name}-{}", std::process::id());
        let _ = Command::new(docker_bin())
            .args(["rm", "-f", &name])
            .output();
        let mut full = vec!["run", "-d", "--name", &name, "--label", LABEL];
        full.extend(["--network", "host"]);
        full.extend(args);
        docker(&full);
        Container { name }
    }

    /// `mirror run` in the image with `config` mounted where the image expects it, the API on
    /// `api`, `RUST_LOG=info`, and `options` before the image.
    fn mirror_run(name: &str, options: &[&str], config: &Path, api: &str) -> Container {
        let image = image();
        let mount = volume(config, "/etc/mirror/mirror.toml", "ro");
        let mut args = options.to_vec();
        args.extend(["-e", "RUST_LOG=info", "-v", &mount, &image]);
        args.extend([
            "run",
            "--config",
            "/etc/mirror/mirror.toml",
            "--api-address",
            api,
        ]);
        Container::run(name, &args)
    }

    fn inspect(&self, format: &str) -> String {
        text(&docker(&["inspect", "-f", format, &self.name]))
    }

    fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits for the container to exit by itself and returns its exit code.
    fn wait_exit(&self, timeout: Duration) -> i64 {
        wait_for("the container to exit", timeout, || {
            (!self.running()).then_some(())
        });
        self.exit_code()
    }

    fn exit_code(&self) -> i64 {
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("an exit code")
    }

    /// `docker stop` with more time than `engine.shutdown_timeout`, then the exit code.
    fn stop(&self) -> i64 {
        docker(&["stop", "-t", "60", &self.name]);
        self.exit_code()
    }

    fn start(&self) {
        docker(&["start", &self.name]);
    }

    /// The main process as the host sees it: `/proc/<pid>/status`.
    fn process_status(&self) -> String {
        let pid = self.inspect("{{.State.Pid}}");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = Command::new(docker_bin())
                .args(["logs", &self.name])
                .output()
            {
                eprintln!(
                    "--- docker logs {}:\n{}{}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = Command::new(docker_bin())
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn mongo() -> mongo_sim::SimThread {
    let sim = MongoSim::start_on_thread(SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..SimOptions::default()
    })
    .expect("mongo-sim starts");
    let docs: Vec<RawDocumentBuf> = (0..3000i64)
        .map(|i| {
            RawDocumentBuf::from_document(&doc! {"_id": i, "v": i, "name": format!("order {i}")})
                .unwrap()
        })
        .collect();
    sim.seed_raw("shop", "orders", docs).unwrap();
    sim
}

/// Changes while mirroring: `n` inserts of new `_id`s from `new`, then updates of 100 and deletes
/// of 25 seeded documents from `old` on (`_id`s below 3000). Returns the change events made.
fn change(sim: &SimHandle, new: i64, n: i64, old: i64) -> u64 {
    for i in new..new + n {
        sim.insert("shop", "orders", doc! {"_id": i, "v": i, "name": "new"})
            .unwrap();
    }
    let mut events = n as u64;
    for i in (old..old + 200).step_by(2) {
        let updated = sim
            .update_one(
                "shop",
                "orders",
                doc! {"_id": i},
                doc! {"$set": {"v": -i, "name": "updated"}},
            )
            .unwrap();
        assert_eq!(updated.modified, 1, "_id {i} is not in the collection");
        events += 1;
    }
    for i in (old + 200..old + 300).step_by(4) {
        assert_eq!(
            sim.delete_one("shop", "orders", doc! {"_id": i}).unwrap(),
            1
        );
        events += 1;
    }
    events
}

/// The rows the table must hold: one per document.
fn expected(sim: &SimHandle) -> Rows {
    sim.collection_docs("shop", "orders")
        .iter()
        .map(|d: &Document| {
            let id = key(d.get("_id").unwrap());
            let mut row = std::collections::BTreeMap::new();
            row.insert("_id".to_owned(), Value::Str(id.clone()));
            row.insert("v".to_owned(), Value::Int(d.get_i64("v").unwrap()));
            row.insert(
                "name".to_owned(),
                Value::Str(d.get_str("name").unwrap().to_owned()),
            );
            row.insert("_mirror_overflow".to_owned(), Value::Null);
            (id, row)
        })
        .collect()
}

/// Waits until the replicated table equals the collection.
fn wait_equal(replicator: &mut Replicator, sim: &SimHandle, container: &Container) {
    let want = expected(sim);
    let mut last = None;
    let equal = (0..1200).any(|_| {
        assert!(
            container.running(),
            "the container exited:\n{}",
            container.logs()
        );
        match replicated_rows(replicator, TABLE) {
            Some(rows) if rows == want => true,
            other => {
                last = other.map(|r| r.len());
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        }
    });
    assert!(
        equal,
        "the table never equalled the collection ({} documents; last seen {last:?} rows)",
        want.len()
    );
}

/// Rows Fabric has applied from every file so far.
fn applied_rows(replicator: &mut Replicator) -> u64 {
    replicator.scan().expect("the landing zone can be listed");
    replicator.table(TABLE).map_or(0, |t| t.processed_rows())
}

fn wait_ready(api: &str) {
    let addr = api.parse().unwrap();
    wait_for("/ready to answer 200", Duration::from_secs(120), || {
        let up = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
        (up && get(addr, "/ready", &[]).status == 200).then_some(())
    });
}

/// A directory the container's user may write (it is not the host's user).
fn shared_dir(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    path.to_owned()
}

fn write_config(dir: &Path, sink: &str) -> PathBuf {
    let config = dir.join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_timeout = "30s"

[sources.m]
type = "mongodb"
uri = "${{MONGODB_URI}}"
databases = ["shop"]
snapshot_page_size = 500
idle_checkpoint_interval = "1s"
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
flush_interval = "200ms"
{sink}
"#
        ),
    )
    .unwrap();
    config
}

fn volume(host: &Path, container: &str, mode: &str) -> String {
    format!("{}:{container}:{mode}", host.display())
}

#[test]
#[ignore = "needs the image: deploy/test-image.sh"]
fn the_image_runs_the_production_binary_as_configured() {
    let image = image();
    let config = text(&docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}} {{json .Config.ExposedPorts}} {{json .Config.Healthcheck.Test}}",
        &image,
    ]));
    assert_eq!(
        config,
        format!(
            r#"["mirror"] ["run","--config","/etc/mirror/mirror.toml","--api-address","0.0.0.0:8080"] {USER} {{"8080/tcp":{{}}}} ["CMD","mirror","health"]"#
        )
    );
    // The binary runs on the base image's libc, and is the production build: no `demo`.
    let version = run_rm(&[&image, "--version"]);
    assert!(text(&version).starts_with("mirror "), "{}", text(&version));
    let demo = Command::new(docker_bin())
        .args(["run", "--rm", "--network", "host", &image, "demo"])
        .output()
        .unwrap();
    assert_eq!(demo.status.code(), Some(2), "`mirror demo` in the image");
    // OneLake, Entra ID and Fabric are reached over TLS with the system's roots.
    let certs = Command::new(docker_bin())
        .args(["run", "--rm", "--network", "host", "--entrypoint", "test"])
        .args([&image, "-s", "/etc/ssl/certs/ca-certificates.crt"])
        .status()
        .unwrap();
    assert!(certs.success(), "the image has no CA bundle");
    // The configuration the Azure deployments run, filled from the environment as they fill it.
    let check = run_rm(&[
        "-e",
        ATLAS_URI,
        "-e",
        "MONGODB_DATABASE=shop",
        "-e",
        "MONGODB_COLLECTION=*",
        "-e",
        "FABRIC_LANDING_ZONE_URL=https://onelake.dfs.fabric.microsoft.com/ws/item/Files/LandingZone",
        "-e",
        "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000",
        &image,
        "check",
        "--config",
        "/etc/mirror/from-env.toml",
    ]);
    let routes = text(&check);
    assert!(
        routes.contains("mongodb -> fabric") && !routes.contains("pw@"),
        "{routes}"
    );

    // The Kubernetes ConfigMap's mirror.toml, with what the workload identity webhook and the
    // Secret put into the environment.
    let manifest =
        std::fs::read_to_string(repo().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let (_, body) = manifest
        .split_once("  mirror.toml: |\n")
        .expect("configmap.yaml has a mirror.toml");
    let toml: String = body
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(&config, toml).unwrap();
    run_rm(&[
        "-e",
        ATLAS_URI,
        "-e",
        "AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000",
        "-e",
        "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000",
        "-e",
        "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token",
        "-v",
        &volume(&config, "/etc/mirror/mirror.toml", "ro"),
        &image,
        "check",
    ]);
}

#[test]
#[ignore = "needs the image: deploy/test-image.sh"]
fn mirrors_into_a_mounted_landing_zone_stops_cleanly_and_resumes_without_copying_again() {
    let image = image();
    let sim = mongo();
    let handle: SimHandle = (*sim).clone();
    let dir = tempfile::tempdir().unwrap();
    let lz = shared_dir(&dir.path().join("lz"));
    let config = write_config(dir.path(), "landing_zone = \"/data\"\n");
    let api = format!("127.0.0.1:{}", free_port());
    let uri = format!("MONGODB_URI={}", sim.uri());
    let health = format!("MIRROR_HEALTH_URL=http://{api}/health");
    let lz_mount = volume(&lz, "/data", "rw");
    let container = Container::mirror_run(
        "local",
        &[
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--health-interval",
            "1s",
            "--health-start-period",
            "0s",
            "-e",
            &uri,
            "-e",
            &health,
            "-v",
            &lz_mount,
        ],
        &config,
        &api,
    );

    // A non-root PID 1: the kernel delivers SIGTERM to it only because mirror handles it.
    let status = container.process_status();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    assert_eq!(field("Uid:")[0], "10001", "{status}");
    assert_eq!(field("NSpid:").last(), Some(&"1"), "{status}");

    wait_ready(&api);
    wait_for(
        "docker to call the container healthy",
        Duration::from_secs(60),
        || (container.inspect("{{.State.Health.Status}}") == "healthy").then_some(()),
    );

    // Fabric applies files as they come and keeps them, so every row published is counted.
    let mut replicator = Replicator::new(Arc::new(LocalDir::new(&lz))).keep_processed_files();
    wait_equal(&mut replicator, &handle, &container);
    change(&handle, 10_000, 200, 1000);
    wait_equal(&mut replicator, &handle, &container);

    assert_eq!(container.stop(), 0, "{}", container.logs());
    let applied = applied_rows(&mut replicator);

    // The committed positions, as `mirror status` in the same image reads them from the
    // landing zone: the table is streaming, with a committed position.
    let report = run_rm(&[
        "--read-only",
        "-e",
        &uri,
        "-v",
        &volume(&config, "/etc/mirror/mirror.toml", "ro"),
        "-v",
        &volume(&lz, "/data", "ro"),
        &image,
        "status",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
    let table = report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == TABLE))
        .unwrap_or_else(|| panic!("{TABLE} not in {report:#}"));
    assert_eq!(table["phase"], "streaming", "{report:#}");
    assert!(table["position"]["text"].is_string(), "{report:#}");

    // Changes made while it is stopped, then the same container again.
    let made = change(&handle, 20_000, 50, 2000);
    container.start();
    wait_ready(&api);
    wait_equal(&mut replicator, &handle, &container);
    assert_eq!(container.stop(), 0, "{}", container.logs());
    // Only the changes were published: nothing copied again, nothing re-sent (the clean stop
    // committed every checkpoint).
    assert_eq!(applied_rows(&mut replicator) - applied, made);
    let logs = container.logs();
    assert_eq!(
        logs.matches("initial sync starts").count(),
        1,
        "the restart began another initial sync:\n{logs}"
    );
}

#[test]
#[ignore = "needs the image: deploy/test-image.sh"]
fn mirrors_into_onelake_with_a_token_from_the_environment_on_a_read_only_root() {
    let sim = mongo();
    let handle: SimHandle = (*sim).clone();
    let lake = Lake::start();
    lake.sim.tokens().only(["tok-container"]);
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "landing_zone = \"https://onelake.dfs.fabric.microsoft.com/{LZ_PATH}\"\n\
         endpoint = \"{}\"\n\
         auth = {{ method = \"bearer_token\", token = \"${{ONELAKE_TOKEN}}\" }}\n",
        lake.sim.endpoint()
    );
    let config = write_config(dir.path(), &sink);
    let api = format!("127.0.0.1:{}", free_port());
    let uri = format!("MONGODB_URI={}", sim.uri());
    // Nothing writable at all: no volume, no tmpfs. State lives in the landing zone.
    let container = Container::mirror_run(
        "onelake",
        &[
            "--read-only",
            "-e",
            &uri,
            "-e",
            "ONELAKE_TOKEN=tok-container",
        ],
        &config,
        &api,
    );
    wait_ready(&api);
    let files: Arc<dyn LandingFiles> = Arc::new(lake.sim.storage().landing_zone(LZ_PATH));
    let mut replicator = Replicator::new(files);
    wait_equal(&mut replicator, &handle, &container);
    change(&handle, 10_000, 100, 1000);
    wait_equal(&mut replicator, &handle, &container);
    assert_eq!(container.stop(), 0, "{}", container.logs());
    let logs = container.logs();
    assert!(
        !logs.contains("tok-container"),
        "the token reached the logs:\n{logs}"
    );
    // The simulator refused nothing: every request carried the token.
    let refused: Vec<_> = lake
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 401 || r.status == 403)
        .collect();
    assert!(refused.is_empty(), "refused requests: {refused:?}");
}

#[test]
#[ignore = "needs the image: deploy/test-image.sh"]
fn an_invalid_configuration_exits_2_with_the_error_in_docker_logs() {
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        "[sources.m]\ntype = \"mongodb\"\nuri = \"mongodb://127.0.0.1:1\"\ndatabases = [\"shop\"]\n\n\
         [sinks.lake]\ntype = \"onelake\"\ninputs = [\"m\"]\nlanding_zone = \"/tmp/lz\"\n\
         flush_intervall = \"1s\"\n",
    )
    .unwrap();
    let container = Container::run(
        "invalid",
        &[
            "--read-only",
            "-v",
            &volume(&config, "/etc/mirror/mirror.toml", "ro"),
            &image,
        ],
    );
    assert_eq!(container.wait_exit(Duration::from_secs(60)), 2);
    let logs = container.logs();
    assert!(
        logs.contains("/etc/mirror/mirror.toml")
            && logs.contains("mirror.toml:10:1")
            && logs.contains("flush_intervall"),
        "the error does not name the file, line and key:\n{logs}"
    );
}
