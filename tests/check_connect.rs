//! `mirror check --connect` as a user runs it, against the MongoDB simulator (with users and
//! privileges, and a standalone server), the OneLake simulator and the Fabric simulator: every
//! check passes on a good setup, and each failure it names (unreachable, not a replica set, no
//! permission, refused credentials, no pre-images, missing landing zone, expired token, no write
//! permission) is reported on its component's line with what to fix. Nothing is written to any
//! table.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use bson::doc;
use mongo_sim::auth::{Resource, SimUser};
use mongo_sim::{MongoSim, SimOptions, SimThread};
use onelake_sim::fabric::{FabricSim, Role};
use onelake_sim::OneLakeSim;
use support::free_port;

const TENANT: &str = "contoso";
const APP: &str = "8f1c2d3e-0000-4000-8000-00000000c4ec";
const SECRET: &str = "check-connect-client-secret";
const EXPIRED: &str = "an-expired-storage-token";

struct World {
    dir: tempfile::TempDir,
    mongo: SimThread,
    standalone: SimThread,
    onelake: OneLakeSim,
    fabric: FabricSim,
    /// The mirrored database's landing zone.
    landing_zone: String,
    _runtime: tokio::runtime::Runtime,
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (onelake, fabric) = runtime.block_on(FabricSim::start_with_onelake()).unwrap();
    fabric.set_options(|o| {
        o.provisioning_polls = 1;
        o.retry_after_secs = 1;
        o.initializing_for = Duration::from_millis(100);
    });
    let ws = fabric.add_workspace("Sales");
    let app = fabric.register_app(TENANT, APP, SECRET);
    fabric.assign(&ws, &app, Role::Contributor);
    onelake.tokens().expire(EXPIRED);

    let mongo = MongoSim::start_on_thread(SimOptions {
        users: vec![
            SimUser::new("admin", "mirror", "pw")
                .role("read", "shop")
                .role("read", "plain")
                .role("clusterMonitor", "admin"),
            SimUser::new("admin", "narrow", "pw").privilege(
                Resource::Namespace {
                    db: "shop".into(),
                    collection: String::new(),
                },
                &["find", "listCollections"],
            ),
        ],
        ..SimOptions::default()
    })
    .unwrap();
    let images = doc! {"changeStreamPreAndPostImages": {"enabled": true}};
    for coll in ["orders", "customers"] {
        mongo
            .create_collection("shop", coll, images.clone())
            .unwrap();
        mongo.insert("shop", coll, doc! {"_id": 1}).unwrap();
    }
    mongo.insert("plain", "notes", doc! {"_id": 1}).unwrap();
    let standalone = MongoSim::start_on_thread(SimOptions {
        set_name: String::new(),
        ..SimOptions::default()
    })
    .unwrap();

    let mut world = World {
        dir: tempfile::tempdir().unwrap(),
        mongo,
        standalone,
        onelake,
        fabric,
        landing_zone: String::new(),
        _runtime: runtime,
    };
    // The mirrored database, created as a user would (which also makes its landing zone).
    let config = world.write(&world.good_source(), &world.good_sink("pending/pending"));
    let out = world.mirror(&[
        "fabric",
        "create",
        "--workspace",
        "Sales",
        "--name",
        "shop",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let (ws, item, _) = world.fabric.items().into_iter().next().expect("created");
    world.landing_zone = format!("{ws}/{item}");
    world
}

impl World {
    fn uri(&self, user: &str, password: &str) -> String {
        format!(
            "{}&serverSelectionTimeoutMS=3000",
            self.mongo.uri_as(user, password, "admin")
        )
    }

    fn good_source(&self) -> String {
        format!(
            "[sources.good]\ntype = \"mongodb\"\nuri = \"{}\"\ndatabases = [\"shop\"]\nfull_document = \"required\"\n",
            self.uri("mirror", "pw")
        )
    }

    /// The `onelake` sink `name` writing to `<ws>/<item>` with `auth`.
    fn sink(&self, name: &str, path: &str, auth: &str, extra: &str) -> String {
        format!(
            "[sinks.{name}]\ntype = \"onelake\"\ninputs = [\"good\"]\n\
             landing_zone = \"https://onelake.dfs.fabric.microsoft.com/{path}/Files/LandingZone\"\n\
             endpoint = \"{}\"\nauth = {auth}\n{extra}",
            self.onelake.endpoint()
        )
    }

    fn client_secret(&self) -> String {
        format!(
            "{{ method = \"client_secret\", tenant_id = \"{TENANT}\", client_id = \"{APP}\", client_secret = \"{SECRET}\", authority_host = \"{}\" }}",
            self.fabric.authority()
        )
    }

    fn good_sink(&self, path: &str) -> String {
        self.sink(
            "good_lake",
            path,
            &self.client_secret(),
            &format!("fabric = {{ api = \"{}\" }}\n", self.fabric.api()),
        )
    }

    fn write(&self, sources: &str, sinks: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("mirror.toml");
        std::fs::write(&path, format!("{sources}\n{sinks}")).unwrap();
        path
    }

    fn mirror(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mirror"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("MIRROR_CONFIG")
            .output()
            .unwrap()
    }

    fn check(
        &self,
        config: &std::path::Path,
    ) -> (Option<i32>, BTreeMap<String, Vec<String>>, String) {
        let out = self.mirror(&[
            "check",
            "--connect",
            "--timeout",
            "3s",
            "--config",
            config.to_str().unwrap(),
        ]);
        let printed = text(&out);
        (out.status.code(), sections(&printed), printed)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The check lines of each component (`source good`, `sink lake`, ...).
fn sections(printed: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in printed.lines() {
        if let Some(rest) = line
            .strip_prefix("source ")
            .or_else(|| line.strip_prefix("sink "))
        {
            let kind = if line.starts_with("source") {
                "source"
            } else {
                "sink"
            };
            let name = rest.split_whitespace().next().unwrap_or_default();
            current = Some(format!("{kind} {name}"));
            continue;
        }
        if line.trim().is_empty() {
            current = None;
            continue;
        }
        if let Some(c) = &current {
            out.entry(c.clone())
                .or_default()
                .push(line.trim().to_owned());
        }
    }
    out
}

/// The line of check `name` in `lines`.
fn line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find(|l| {
            l.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(name)
        })
        .unwrap_or_else(|| panic!("no `{name}` check in {lines:#?}"))
}

#[test]
fn every_check_passes_on_a_good_setup_and_nothing_is_written() {
    let w = world();
    let config = w.write(&w.good_source(), &w.good_sink(&w.landing_zone));
    let before = w.onelake.requests().len();
    let (code, sections, printed) = w.check(&config);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("every check passed"), "{printed}");
    let source = &sections["source good"];
    for name in [
        "connection",
        "server version",
        "deployment",
        "privileges",
        "collections",
        "pre-images",
    ] {
        assert!(line(source, name).starts_with("ok"), "{name}: {printed}");
    }
    assert!(
        line(source, "connection").contains("logged in as `mirror@admin`"),
        "{printed}"
    );
    assert!(
        line(source, "server version").contains("MongoDB 7.0"),
        "{printed}"
    );
    assert!(
        line(source, "deployment").contains("replica set `rs0`"),
        "{printed}"
    );
    assert!(
        line(source, "collections").contains("shop.customers, shop.orders"),
        "{printed}"
    );
    // A fresh simulator keeps seconds of oplog: reported, with what to do.
    let oplog = line(source, "oplog window");
    assert!(
        oplog.starts_with("warn") && oplog.contains("hours of changes are kept"),
        "{printed}"
    );
    let sink = &sections["sink good_lake"];
    for name in ["token", "landing zone", "write permission", "Fabric item"] {
        assert!(line(sink, name).starts_with("ok"), "{name}: {printed}");
    }
    assert!(
        line(sink, "token").contains("a bearer token (auth method `client_secret`)"),
        "{printed}"
    );
    assert!(
        line(sink, "Fabric item").contains("mirrored database `shop`"),
        "{printed}"
    );
    assert!(
        line(sink, "Fabric item").contains("mirroring Running"),
        "{printed}"
    );
    assert!(
        !printed.contains("pw@") && !printed.contains(SECRET),
        "{printed}"
    );

    // Nothing is written but the probe, which is removed again: no table, no leftover file.
    let writes: Vec<_> = w.onelake.requests()[before..]
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|(_, p)| p.contains("/Files/LandingZone/_mirror_check_")),
        "{writes:?}"
    );
    let files = w
        .onelake
        .storage()
        .landing_zone(&format!("{}/Files/LandingZone", w.landing_zone));
    use onelake_sim::LandingFiles;
    assert!(
        files.list("").unwrap().is_empty(),
        "the landing zone is not empty after the check"
    );
}

#[test]
fn each_failure_is_named_with_what_to_fix() {
    let w = world();
    let unreachable_port = free_port();
    let sources = format!(
        "{good}\n\
         [sources.unreachable]\ntype = \"mongodb\"\nuri = \"mongodb://127.0.0.1:{unreachable_port}/?directConnection=true\"\ndatabases = [\"shop\"]\n\n\
         [sources.standalone]\ntype = \"mongodb\"\nuri = \"{standalone}&serverSelectionTimeoutMS=3000\"\ndatabases = [\"shop\"]\n\n\
         [sources.narrow]\ntype = \"mongodb\"\nuri = \"{narrow}\"\ndatabases = [\"shop\"]\n\n\
         [sources.wrong_password]\ntype = \"mongodb\"\nuri = \"{wrong}\"\ndatabases = [\"shop\"]\n\n\
         [sources.no_images]\ntype = \"mongodb\"\nuri = \"{good_uri}\"\ndatabases = [\"plain\"]\nfull_document = \"required\"\n",
        good = w.good_source(),
        standalone = w.standalone.uri(),
        narrow = w.uri("narrow", "pw"),
        wrong = w.uri("mirror", "not-the-password"),
        good_uri = w.uri("mirror", "pw"),
    );
    let inputs = "[\"good\", \"unreachable\", \"standalone\", \"narrow\", \"wrong_password\", \"no_images\"]";
    let sinks = [
        w.good_sink(&w.landing_zone),
        w.sink(
            "missing",
            &format!("{}/no-such-item", w.landing_zone.split('/').next().unwrap()),
            &w.client_secret(),
            "",
        ),
        w.sink(
            "expired",
            &w.landing_zone,
            &format!("{{ method = \"bearer_token\", token = \"{EXPIRED}\" }}"),
            "",
        ),
        w.sink(
            "read_only",
            "ReadOnly/archive",
            "{ method = \"bearer_token\", token = \"a-reader\" }",
            "",
        ),
    ]
    .join("\n")
    .replace("inputs = [\"good\"]", &format!("inputs = {inputs}"));
    // A landing zone this identity may read but not write.
    w.onelake
        .storage()
        .create_dir(
            "ReadOnly/archive/Files/LandingZone",
            &onelake_sim::storage::Conditions::default(),
        )
        .unwrap();
    w.onelake.tokens().deny_writes_under("ReadOnly/");
    let config = w.write(&sources, &sinks);
    let (code, sections, printed) = w.check(&config);
    assert_eq!(code, Some(3), "{printed}");
    assert!(printed.contains("some checks failed"), "{printed}");

    let first_failure = |component: &str, name: &str| -> String {
        let lines = sections
            .get(component)
            .unwrap_or_else(|| panic!("no {component} in {printed}"));
        let l = line(lines, name);
        assert!(l.starts_with("FAIL"), "{component} {name}: {printed}");
        assert!(
            l.contains("-- to fix: "),
            "{component} {name} says what to fix: {l}"
        );
        l.to_owned()
    };
    let l = first_failure("source unreachable", "connection");
    assert!(
        l.contains(&format!(
            "cannot reach MongoDB at mongodb://127.0.0.1:{unreachable_port}/"
        )) && l.contains("firewall"),
        "{l}"
    );
    assert!(
        line(&sections["source standalone"], "connection").contains("(no user in the URI)"),
        "{printed}"
    );
    let l = first_failure("source standalone", "deployment");
    assert!(l.contains("standalone") && l.contains("--replSet"), "{l}");
    let l = first_failure("source narrow", "privileges");
    assert!(
        l.contains("`narrow@admin` lacks changeStream on `shop`"),
        "{l}"
    );
    assert!(l.contains("grantRolesToUser"), "{l}");
    let l = first_failure("source wrong_password", "connection");
    assert!(
        l.contains("refused the credentials") && l.contains("Authentication failed."),
        "{l}"
    );
    assert!(
        l.contains("check the user name, password and authSource"),
        "{l}"
    );
    let l = first_failure("source no_images", "pre-images");
    assert!(
        l.contains("plain.notes") && l.contains("changeStreamPreAndPostImages"),
        "{l}"
    );
    let l = first_failure("sink missing", "landing zone");
    assert!(
        l.contains("does not exist") && l.contains("mirror fabric create"),
        "{l}"
    );
    let l = first_failure("sink expired", "landing zone");
    assert!(
        l.contains("The token is expired") && l.contains("obtain a new token"),
        "{l}"
    );
    let l = first_failure("sink read_only", "write permission");
    assert!(l.contains("Contributor"), "{l}");
    assert!(
        !printed.contains(SECRET) && !printed.contains("not-the-password"),
        "{printed}"
    );
}
