//! `mirror check --connect` for the `mongodb` source: can `mirror run` read what it is told to?
//!
//! One check per question, in the order a failure makes the next ones moot:
//! 1. `connection`: the server answers `hello`, and accepts the URI's credentials;
//! 2. `server version` (`buildInfo`): database change streams need MongoDB 4.0, post-images 6.0;
//! 3. `deployment` (`hello`): a replica set or a sharded cluster, not a standalone server;
//! 4. `privileges` (`connectionStatus` with `showPrivileges`): `find` and `changeStream` (and
//!    `listCollections`) on every database to mirror, `listDatabases` for `databases = ["*"]`;
//! 5. `collections` (`listCollections`): what will be mirrored, and none that cannot be (a
//!    time-series collection named explicitly);
//! 6. `pre-images`: with `full_document = "required"` or `"when_available"`, every collection
//!    records them (`changeStreamPreAndPostImages`);
//! 7. `oplog window` (`serverStatus({oplog: 1})`: `earliestOptime` to `latestOptime`): how long
//!    `mirror` may be stopped before its change streams cannot resume.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mirror_core::component::check::{Check, CheckContext};
use mongodb::error::ErrorKind;
use mongodb::results::CollectionType;
use mongodb::Client;

use crate::config::{FullDocument, MongoSourceConfig};

/// Below this window a stop of a night or a weekend outlives the oplog.
const SHORT_WINDOW_HOURS: f64 = 24.0;

const FIX_UNREACHABLE: &str = "check that the host and port in the URI are reachable from here \
    (network, firewall, private endpoint, Atlas IP access list) and that the TLS settings match";
const FIX_CREDENTIALS: &str = "check the user name, password and authSource in the URI";

/// Every check, for a source configured as `config`.
pub(crate) async fn check(config: &MongoSourceConfig, cx: &CheckContext) -> Vec<Check> {
    let mut out = Vec::new();
    if let Err(e) = config.validate() {
        out.push(Check::failed(
            "settings",
            e,
            "fix the source's settings in mirror.toml",
        ));
        return out;
    }
    let redacted = config.uri.redacted();
    let client = match crate::source::client(config, Some(cx.timeout)).await {
        Ok(client) => client,
        Err(e) => {
            let fix = if e.is_transient() {
                FIX_UNREACHABLE
            } else {
                "write a valid MongoDB connection string (mongodb:// or mongodb+srv://)"
            };
            out.push(Check::failed("connection", e.chain(), fix));
            return out;
        }
    };
    let admin = client.database("admin");
    let hello = match admin.run_command(doc! {"hello": 1}).await {
        Ok(hello) => hello,
        Err(e) => {
            let fix = match *e.kind {
                ErrorKind::Authentication { .. } => FIX_CREDENTIALS,
                _ => FIX_UNREACHABLE,
            };
            let error = crate::source::hello_error(e, config);
            out.push(Check::failed("connection", error.chain(), fix));
            return out;
        }
    };
    let user = credentials_user(config);
    out.push(Check::ok(
        "connection",
        match &user {
            Some(u) => format!("{redacted} answers, logged in as `{u}`"),
            None => format!("{redacted} answers (no user in the URI)"),
        },
    ));

    out.push(server_version(&admin, config).await);
    let is_router = hello.get_str("msg") == Ok("isdbgrid");
    match hello.get_str("setName") {
        Ok(set) => out.push(Check::ok("deployment", format!("replica set `{set}`"))),
        Err(_) if is_router => out.push(Check::ok(
            "deployment",
            "a sharded cluster (mongos): change streams read every shard",
        )),
        Err(_) => {
            out.push(Check::failed(
                "deployment",
                "a standalone server: it has no oplog, so no change streams",
                "run mongod as a replica set (`--replSet rs0`, then `rs.initiate()`; a \
                 single-node replica set works) or connect to a sharded cluster's mongos",
            ));
            return out;
        }
    }

    let databases = match crate::discovery::databases(&client, config).await {
        Ok(dbs) => dbs,
        Err(e) => {
            out.push(Check::failed(
                "privileges",
                format!("cannot list the databases: {}", e.chain()),
                "grant the user `listDatabases` on the cluster (the readAnyDatabase role), or \
                 name the databases in `databases`",
            ));
            return out;
        }
    };
    out.push(privileges(&client, config, &databases).await);
    let collections = collections(&client, config, &databases).await;
    let found: Vec<(String, bool)> = match collections {
        Ok((check, found)) => {
            out.push(check);
            found
        }
        Err(check) => {
            out.push(check);
            Vec::new()
        }
    };
    out.push(pre_images(config, &found));
    out.push(oplog_window(&admin, is_router).await);
    out
}

/// The user the URI logs in as, `user@authSource`.
fn credentials_user(config: &MongoSourceConfig) -> Option<String> {
    let uri = config.uri.expose();
    let rest = uri.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let source = uri
        .split_once('?')
        .and_then(|(_, q)| {
            q.split('&')
                .find_map(|p| p.strip_prefix("authSource="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "admin".into());
    Some(format!("{user}@{source}"))
}

async fn server_version(admin: &mongodb::Database, config: &MongoSourceConfig) -> Check {
    let info = match admin.run_command(doc! {"buildInfo": 1}).await {
        Ok(info) => info,
        Err(e) => return Check::skipped("server version", format!("buildInfo failed: {e}")),
    };
    let version = info.get_str("version").unwrap_or("unknown").to_owned();
    let major_minor: Vec<u32> = version
        .split('.')
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    let at_least = |major: u32, minor: u32| major_minor.as_slice() >= [major, minor].as_slice();
    if !at_least(4, 0) {
        return Check::failed(
            "server version",
            format!("MongoDB {version}: database change streams need 4.0 or later"),
            "upgrade the server",
        );
    }
    if config.full_document != FullDocument::UpdateLookup && !at_least(6, 0) {
        return Check::failed(
            "server version",
            format!(
                "MongoDB {version}: full_document = {:?} needs post-images, from 6.0 on",
                config.full_document
            ),
            "upgrade the server, or use full_document = \"update_lookup\"",
        );
    }
    Check::ok("server version", format!("MongoDB {version}"))
}

/// A privilege of `connectionStatus`: a resource and its actions.
struct Granted {
    db: Option<String>,
    collection: Option<String>,
    cluster: bool,
    any: bool,
    actions: Vec<String>,
}

impl Granted {
    fn parse(d: &Document) -> Option<Granted> {
        let resource = d.get_document("resource").ok()?;
        Some(Granted {
            db: resource.get_str("db").ok().map(str::to_owned),
            collection: resource.get_str("collection").ok().map(str::to_owned),
            cluster: resource.get_bool("cluster").unwrap_or(false),
            any: resource.get_bool("anyResource").unwrap_or(false),
            actions: d
                .get_array("actions")
                .map(|a| {
                    a.iter()
                        .filter_map(Bson::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "anyAction")
    }

    /// Whether it covers every collection of `db`.
    fn covers_db(&self, db: &str) -> bool {
        self.any
            || (!self.cluster
                && self.db.as_deref().is_some_and(|d| {
                    d == db || (d.is_empty() && !matches!(db, "local" | "config"))
                })
                && self.collection.as_deref() == Some(""))
    }
}

async fn privileges(client: &Client, config: &MongoSourceConfig, databases: &[String]) -> Check {
    const NAME: &str = "privileges";
    let status = match client
        .database("admin")
        .run_command(doc! {"connectionStatus": 1, "showPrivileges": true})
        .await
    {
        Ok(s) => s,
        Err(e) => return Check::skipped(NAME, format!("connectionStatus failed: {e}")),
    };
    let info = status.get_document("authInfo").cloned().unwrap_or_default();
    let users = info
        .get_array("authenticatedUsers")
        .cloned()
        .unwrap_or_default();
    if users.is_empty() {
        // Authentication is off, or required but no user logged in: a read tells which.
        let probe_db = databases.first().map_or("admin", String::as_str);
        return match client.database(probe_db).list_collection_names().await {
            Ok(_) => Check::ok(NAME, "no user logged in, and the server lets anyone read"),
            Err(e) if crate::errors::code(&e) == Some(13) => Check::failed(
                NAME,
                format!("the server requires a login: {e}"),
                "put a user in the URI (mongodb://user:password@host/?authSource=admin)",
            ),
            Err(e) => Check::failed(NAME, e.to_string(), FIX_CREDENTIALS),
        };
    }
    let granted: Vec<Granted> = info
        .get_array("authenticatedUserPrivileges")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .filter_map(Granted::parse)
                .collect()
        })
        .unwrap_or_default();
    let mut missing = Vec::new();
    for db in databases {
        let lacks: Vec<&str> = ["find", "changeStream", "listCollections"]
            .into_iter()
            .filter(|action| !granted.iter().any(|g| g.covers_db(db) && g.allows(action)))
            .collect();
        if !lacks.is_empty() {
            missing.push(format!("{} on `{db}`", lacks.join(", ")));
        }
    }
    if config.databases.iter().any(|d| d == "*")
        && !granted
            .iter()
            .any(|g| (g.cluster || g.any) && g.allows("listDatabases"))
    {
        missing.push("listDatabases on the cluster (databases = [\"*\"])".into());
    }
    let who = users
        .first()
        .and_then(Bson::as_document)
        .map(|u| {
            format!(
                "`{}@{}`",
                u.get_str("user").unwrap_or("?"),
                u.get_str("db").unwrap_or("?")
            )
        })
        .unwrap_or_default();
    if missing.is_empty() {
        Check::ok(
            NAME,
            format!(
                "{who} may find, watch (changeStream) and list collections on {}",
                databases.join(", ")
            ),
        )
    } else {
        Check::failed(
            NAME,
            format!("{who} lacks {}", missing.join("; ")),
            format!(
                "grant the read role on each database (db.grantRolesToUser(\"{}\", [{{role: \
                 \"read\", db: \"<db>\"}}])), or readAnyDatabase on admin",
                who.trim_matches('`').split('@').next().unwrap_or("user")
            ),
        )
    }
}

/// Every collection to mirror, as `(db.name, whether it records pre- and post-images)`.
async fn collections(
    client: &Client,
    config: &MongoSourceConfig,
    databases: &[String],
) -> Result<(Check, Vec<(String, bool)>), Check> {
    const NAME: &str = "collections";
    let mut found = Vec::new();
    let mut empty = Vec::new();
    for db in databases {
        let specs: Vec<_> = match client.database(db).list_collections().await {
            Ok(cursor) => match cursor.try_collect().await {
                Ok(specs) => specs,
                Err(e) => return Err(Check::skipped(NAME, format!("listCollections: {e}"))),
            },
            Err(e) => return Err(Check::skipped(NAME, format!("listCollections: {e}"))),
        };
        let mut here = 0;
        for spec in specs {
            if !config.wants_collection(db, &spec.name) {
                continue;
            }
            match spec.collection_type {
                CollectionType::Timeseries if config.names_collection(db, &spec.name) => {
                    return Err(Check::failed(
                        NAME,
                        format!(
                            "`{db}.{}` is a time-series collection, which has no change stream",
                            spec.name
                        ),
                        "remove it from `collections`",
                    ));
                }
                CollectionType::Collection => {
                    let images = spec
                        .options
                        .change_stream_pre_and_post_images
                        .is_some_and(|c| c.enabled);
                    found.push((format!("{db}.{}", spec.name), images));
                    here += 1;
                }
                _ => {}
            }
        }
        if here == 0 {
            empty.push(db.clone());
        }
    }
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    let shown = if names.len() > 8 {
        format!("{} and {} more", names[..8].join(", "), names.len() - 8)
    } else {
        names.join(", ")
    };
    let check = if empty.is_empty() {
        Check::ok(NAME, format!("{} to mirror: {shown}", names.len()))
    } else {
        Check::warning(
            NAME,
            format!(
                "{} to mirror ({shown}); none in {} yet",
                names.len(),
                empty.join(", ")
            ),
            "check `databases` and `collections` (collections created later are picked up \
             while running)",
        )
    };
    Ok((check, found))
}

fn pre_images(config: &MongoSourceConfig, collections: &[(String, bool)]) -> Check {
    const NAME: &str = "pre-images";
    if config.full_document == FullDocument::UpdateLookup {
        return Check::skipped(
            NAME,
            "full_document = \"update_lookup\" reads the current document; no images needed",
        );
    }
    let without: Vec<&str> = collections
        .iter()
        .filter(|(_, images)| !images)
        .map(|(name, _)| name.as_str())
        .collect();
    if without.is_empty() {
        return Check::ok(
            NAME,
            format!(
                "every collection records pre- and post-images ({} collections)",
                collections.len()
            ),
        );
    }
    let detail = format!(
        "{} do not record pre- and post-images: {}",
        without.len(),
        without.join(", ")
    );
    let fix = format!(
        "run db.runCommand({{collMod: \"<collection>\", changeStreamPreAndPostImages: {{enabled: \
         true}}}}) on each, e.g. `{}`, or use full_document = \"update_lookup\"",
        without[0]
    );
    match config.full_document {
        FullDocument::Required => Check::failed(NAME, detail, fix),
        _ => Check::warning(
            NAME,
            format!("{detail}; their updates fall back to no document"),
            fix,
        ),
    }
}

async fn oplog_window(admin: &mongodb::Database, is_router: bool) -> Check {
    const NAME: &str = "oplog window";
    if is_router {
        return Check::skipped(
            NAME,
            "a mongos has no oplog: check each shard's (serverStatus({oplog: 1}) on its primary)",
        );
    }
    let status =
        match admin
            .run_command(doc! {"serverStatus": 1, "oplog": 1})
            .await
        {
            Ok(status) => status,
            Err(e) if crate::errors::code(&e) == Some(13) => return Check::skipped(
                NAME,
                "the user may not run serverStatus (the clusterMonitor role allows it), so the \
                 window is unknown",
            ),
            Err(e) => return Check::skipped(NAME, format!("serverStatus failed: {e}")),
        };
    let oplog = status.get_document("oplog").ok();
    let (Some(earliest), Some(latest)) = (
        oplog.and_then(|o| o.get_timestamp("earliestOptime").ok()),
        oplog.and_then(|o| o.get_timestamp("latestOptime").ok()),
    ) else {
        return Check::skipped(
            NAME,
            "the server did not report its oplog's first and last entries",
        );
    };
    let hours = f64::from(latest.time.saturating_sub(earliest.time)) / 3600.0;
    let detail = format!("{hours:.1} hours of changes are kept");
    if hours < SHORT_WINDOW_HOURS {
        Check::warning(
            NAME,
            format!(
                "{detail}: a stop longer than that makes the next start copy the tables again \
                 (on_history_lost = \"resync\")"
            ),
            "keep more oplog: a larger oplog (replSetResizeOplog) or a minimum retention \
             (oplogMinRetentionHours, in Atlas: the oplog window setting)",
        )
    } else {
        Check::ok(NAME, detail)
    }
}
