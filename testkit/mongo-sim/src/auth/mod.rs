//! Authentication and authorization, as mongod started with `--auth` does them: users with
//! SCRAM-SHA-256 credentials, built-in roles and privileges, `saslStart` / `saslContinue` (also
//! speculative, inside `hello`), `saslSupportedMechs`, `connectionStatus` with
//! `showPrivileges`, and the check every command passes before it runs.
//!
//! Without users (the default) authentication is off, as on a mongod without `--auth`: every
//! command runs, and `connectionStatus` lists no user.
//!
//! Sources (mongodb/mongo): `src/mongo/db/auth/README.md` (the handshake, speculative
//! authentication: "If the authentication sub-command fails, the error is swallowed by the
//! server, and no reply is included in the `hello` command response"; `saslSupportedMechs`),
//! `src/mongo/db/auth/sasl_commands.cpp` (every failed step answers `AuthenticationFailed`,
//! "Authentication failed."; replies `{conversationId: 1, done, payload}`), the built-in roles
//! of the MongoDB manual ("Built-In Roles": `read`, `readWrite`, `readAnyDatabase`,
//! `clusterMonitor`, `root`), and the errors drivers see: `Unauthorized` (13) "command find
//! requires authentication" before login, and "not authorized on shop to execute command {...}"
//! without the privilege.

pub mod scram;

use std::collections::BTreeSet;

use bson::{doc, Bson, Document, RawBsonRef};

use crate::commands::Cmd;
use crate::error::{codes, CmdResult, CommandError};

/// The mechanism the simulator implements (users are created with it only, as mongod does with
/// `mechanisms: ["SCRAM-SHA-256"]`).
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// What a privilege applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `{db, collection}`; an empty `db` is every database, an empty `collection` every
    /// collection (but `system.*` ones) of the database.
    Namespace {
        /// The database, or `""` for all.
        db: String,
        /// The collection, or `""` for all.
        collection: String,
    },
    /// `{cluster: true}`.
    Cluster,
    /// `{anyResource: true}`.
    Any,
}

impl Resource {
    fn to_doc(&self) -> Document {
        match self {
            Resource::Namespace { db, collection } => doc! {"db": db, "collection": collection},
            Resource::Cluster => doc! {"cluster": true},
            Resource::Any => doc! {"anyResource": true},
        }
    }

    fn covers(&self, target: &Resource) -> bool {
        match (self, target) {
            (Resource::Any, _) => true,
            (Resource::Cluster, Resource::Cluster) => true,
            (
                Resource::Namespace { db, collection },
                Resource::Namespace {
                    db: tdb,
                    collection: tcoll,
                },
            ) => {
                let db_ok = if db.is_empty() {
                    !matches!(tdb.as_str(), "local" | "config")
                } else {
                    db == tdb
                };
                let coll_ok = if collection.is_empty() {
                    !tcoll.starts_with("system.")
                } else {
                    collection == tcoll
                };
                db_ok && coll_ok
            }
            _ => false,
        }
    }
}

/// Actions on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privilege {
    /// Where.
    pub resource: Resource,
    /// What (`find`, `changeStream`, `listCollections`, ..., or `anyAction`).
    pub actions: Vec<String>,
}

/// The `read` role's actions (MongoDB manual, "Built-In Roles").
const READ_ACTIONS: &[&str] = &[
    "changeStream",
    "collStats",
    "dbHash",
    "dbStats",
    "find",
    "killCursors",
    "listCollections",
    "listIndexes",
    "listSearchIndexes",
];

/// What `readWrite` adds to `read`.
const WRITE_ACTIONS: &[&str] = &[
    "convertToCapped",
    "createCollection",
    "createIndex",
    "dropCollection",
    "dropIndex",
    "insert",
    "remove",
    "renameCollectionSameDB",
    "update",
    "collMod",
];

/// `clusterMonitor`'s actions on the cluster.
const CLUSTER_MONITOR_ACTIONS: &[&str] = &[
    "connPoolStats",
    "getCmdLineOpts",
    "getLog",
    "getParameter",
    "hostInfo",
    "inprog",
    "listDatabases",
    "listSessions",
    "replSetGetConfig",
    "replSetGetStatus",
    "serverStatus",
    "top",
];

fn strings(actions: &[&str]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

/// The privileges of built-in role `role` on database `db`, or `None` for a role the simulator
/// does not know.
fn role_privileges(role: &str, db: &str) -> Option<Vec<Privilege>> {
    let ns = |db: &str| Resource::Namespace {
        db: db.to_owned(),
        collection: String::new(),
    };
    let read_write = || {
        let mut actions = strings(READ_ACTIONS);
        actions.extend(strings(WRITE_ACTIONS));
        actions
    };
    Some(match (role, db) {
        ("read", db) => vec![Privilege {
            resource: ns(db),
            actions: strings(READ_ACTIONS),
        }],
        ("readWrite", db) => vec![Privilege {
            resource: ns(db),
            actions: read_write(),
        }],
        ("readAnyDatabase", "admin") => vec![
            Privilege {
                resource: ns(""),
                actions: strings(READ_ACTIONS),
            },
            Privilege {
                resource: Resource::Cluster,
                actions: strings(&["listDatabases"]),
            },
        ],
        ("readWriteAnyDatabase", "admin") => vec![
            Privilege {
                resource: ns(""),
                actions: read_write(),
            },
            Privilege {
                resource: Resource::Cluster,
                actions: strings(&["listDatabases"]),
            },
        ],
        ("clusterMonitor", "admin") => vec![Privilege {
            resource: Resource::Cluster,
            actions: strings(CLUSTER_MONITOR_ACTIONS),
        }],
        ("root", "admin") => vec![Privilege {
            resource: Resource::Any,
            actions: strings(&["anyAction"]),
        }],
        _ => return None,
    })
}

/// A user of the simulated deployment.
///
/// ```
/// use mongo_sim::auth::{Resource, SimUser};
/// let reader = SimUser::new("admin", "mirror", "s3cret").role("read", "shop");
/// let narrow = SimUser::new("admin", "narrow", "pw").privilege(
///     Resource::Namespace { db: "shop".into(), collection: String::new() },
///     &["find", "listCollections"],
/// );
/// # let _ = (reader, narrow);
/// ```
#[derive(Clone, Debug)]
pub struct SimUser {
    /// Its authentication database (`authSource`).
    pub db: String,
    /// Its name.
    pub name: String,
    /// Its password.
    pub password: String,
    /// Built-in roles, `(role, db)`.
    pub roles: Vec<(String, String)>,
    /// Privileges of its own (as a custom role would grant).
    pub privileges: Vec<Privilege>,
}

impl SimUser {
    /// A user `name` of `db` with `password` and no role yet.
    pub fn new(db: &str, name: &str, password: &str) -> Self {
        Self {
            db: db.to_owned(),
            name: name.to_owned(),
            password: password.to_owned(),
            roles: Vec::new(),
            privileges: Vec::new(),
        }
    }

    /// Grants built-in role `role` on `db` (`read`, `readWrite` on any database;
    /// `readAnyDatabase`, `readWriteAnyDatabase`, `clusterMonitor`, `root` on `admin`).
    pub fn role(mut self, role: &str, db: &str) -> Self {
        self.roles.push((role.to_owned(), db.to_owned()));
        self
    }

    /// Grants `actions` on `resource`.
    pub fn privilege(mut self, resource: Resource, actions: &[&str]) -> Self {
        self.privileges.push(Privilege {
            resource,
            actions: strings(actions),
        });
        self
    }
}

/// A user as the server keeps it.
#[derive(Clone, Debug)]
struct StoredUser {
    db: String,
    name: String,
    credentials: scram::Credentials,
    roles: Vec<(String, String)>,
    privileges: Vec<Privilege>,
}

/// The deployment's users; authentication is on when there is one. Cheap to clone (every
/// command reads them).
#[derive(Clone, Debug, Default)]
pub struct Users {
    users: std::sync::Arc<[StoredUser]>,
}

impl Users {
    /// Stores `users` (credentials are derived now, as `createUser` does).
    pub fn new(users: &[SimUser]) -> Users {
        let users = users
            .iter()
            .map(|u| {
                let mut privileges = u.privileges.clone();
                for (role, db) in &u.roles {
                    match role_privileges(role, db) {
                        Some(p) => privileges.extend(p),
                        None => panic!("mongo-sim knows no built-in role {role}@{db}"),
                    }
                }
                StoredUser {
                    db: u.db.clone(),
                    name: u.name.clone(),
                    credentials: scram::Credentials::new(&u.password),
                    roles: u.roles.clone(),
                    privileges,
                }
            })
            .collect::<Vec<_>>();
        Users {
            users: users.into(),
        }
    }

    /// Whether clients must authenticate.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    fn find(&self, db: &str, name: &str) -> Option<&StoredUser> {
        self.users.iter().find(|u| u.db == db && u.name == name)
    }
}

/// A connection's authentication: who it is, and a conversation under way.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// `(db, user)` once authenticated.
    user: Option<(String, String)>,
    conversation: Option<(String, scram::Conversation)>,
}

fn auth_failed() -> CommandError {
    CommandError::new(codes::AUTHENTICATION_FAILED, "Authentication failed.")
}

fn payload_of(body: &bson::RawDocument) -> CmdResult<Vec<u8>> {
    match body.get("payload") {
        Ok(Some(RawBsonRef::Binary(b))) => Ok(b.bytes.to_vec()),
        // Some drivers send the payload as a base64 string.
        Ok(Some(RawBsonRef::String(s))) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| CommandError::bad_value("payload is not base64"))
        }
        _ => Err(CommandError::new(
            40414,
            "BSON field 'saslStart.payload' is missing but a required field",
        )),
    }
}

fn sasl_reply(payload: Vec<u8>, done: bool) -> Document {
    doc! {
        "conversationId": 1,
        "done": done,
        "payload": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: payload },
    }
}

/// `saslStart` on `db` (the user's authentication database).
pub fn sasl_start(
    users: &Users,
    session: &mut Session,
    db: &str,
    body: &bson::RawDocument,
) -> CmdResult<Document> {
    session.conversation = None;
    let mechanism = match body.get("mechanism") {
        Ok(Some(RawBsonRef::String(m))) => m.to_owned(),
        _ => return Err(auth_failed()),
    };
    let payload = payload_of(body)?;
    if mechanism != MECHANISM || !users.enabled() {
        return Err(auth_failed());
    }
    let name = scram::client_first_user(&payload).map_err(|_| auth_failed())?;
    let user = users.find(db, &name).ok_or_else(auth_failed)?;
    let skip = matches!(
        body.get("options"),
        Ok(Some(RawBsonRef::Document(o))) if matches!(o.get("skipEmptyExchange"), Ok(Some(RawBsonRef::Boolean(true))))
    );
    let (conversation, reply) =
        scram::start(&payload, &user.credentials, skip).map_err(|_| auth_failed())?;
    session.conversation = Some((db.to_owned(), conversation));
    Ok(sasl_reply(reply, false))
}

/// `saslContinue`.
pub fn sasl_continue(
    users: &Users,
    session: &mut Session,
    body: &bson::RawDocument,
) -> CmdResult<Document> {
    match body.get("conversationId") {
        Ok(Some(v)) if crate::matcher::as_i64(&v) == Some(1) => {}
        _ => {
            return Err(CommandError::new(
                17, // ProtocolError
                "sasl: Mismatched conversation id",
            ));
        }
    }
    let payload = payload_of(body)?;
    let Some((db, mut conversation)) = session.conversation.take() else {
        return Err(CommandError::new(17, "No SASL session state found"));
    };
    let user = users
        .find(&db, &conversation.user)
        .ok_or_else(auth_failed)?;
    let (reply, done) =
        scram::step(&mut conversation, &payload, &user.credentials).map_err(|_| auth_failed())?;
    if done {
        session.user = Some((db, conversation.user.clone()));
    } else {
        session.conversation = Some((db, conversation));
    }
    Ok(sasl_reply(reply, done))
}

/// What `hello` adds for authentication: `saslSupportedMechs` for the user it names, and the
/// reply to a speculative `saslStart` (nothing when that fails).
pub fn hello_fields(users: &Users, session: &mut Session, cmd: &Cmd<'_>, reply: &mut Document) {
    if !users.enabled() {
        return;
    }
    if let Some(RawBsonRef::String(user)) = cmd.get("saslSupportedMechs") {
        if let Some((db, name)) = user.split_once('.') {
            if users.find(db, name).is_some() {
                reply.insert("saslSupportedMechs", vec![MECHANISM]);
            }
        }
    }
    if let Some(RawBsonRef::Document(speculative)) = cmd.get("speculativeAuthenticate") {
        let db = match speculative.get("db") {
            Ok(Some(RawBsonRef::String(db))) => db.to_owned(),
            _ => return,
        };
        if speculative.get("saslStart").ok().flatten().is_none() {
            return;
        }
        if let Ok(answer) = sasl_start(users, session, &db, speculative) {
            reply.insert("speculativeAuthenticate", answer);
        }
    }
}

/// The user authenticated on the connection, if any.
fn session_user<'u>(users: &'u Users, session: &Session) -> Option<&'u StoredUser> {
    session
        .user
        .as_ref()
        .and_then(|(db, name)| users.find(db, name))
}

/// `connectionStatus` (`showPrivileges` adds the privileges).
pub fn connection_status(users: &Users, session: &Session, cmd: &Cmd<'_>) -> Document {
    let user = session_user(users, session);
    let mut auth_info = doc! {
        "authenticatedUsers": user
            .map(|u| vec![Bson::Document(doc! {"user": u.name.clone(), "db": u.db.clone()})])
            .unwrap_or_default(),
        "authenticatedUserRoles": user
            .map(|u| {
                u.roles
                    .iter()
                    .map(|(role, db)| Bson::Document(doc! {"role": role, "db": db}))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    };
    if cmd.bool_opt("showPrivileges") {
        let privileges: Vec<Bson> = user
            .map(|u| {
                u.privileges
                    .iter()
                    .map(|p| {
                        Bson::Document(
                            doc! {"resource": p.resource.to_doc(), "actions": p.actions.clone()},
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        auth_info.insert("authenticatedUserPrivileges", privileges);
    }
    doc! {"authInfo": auth_info}
}

/// Commands a client may run before it authenticates (mongod's `requiresAuth() == false`).
const WITHOUT_AUTH: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "saslStart",
    "saslContinue",
    "authenticate",
    "logout",
    "connectionStatus",
    "whatsmyuri",
    "endSessions",
    "getnonce",
];

/// Checks that the connection may run `cmd`: `Unauthorized` (13) before authentication, or
/// without the privileges the command needs.
pub fn authorize(users: &Users, session: &Session, cmd: &Cmd<'_>) -> CmdResult<()> {
    if !users.enabled() || WITHOUT_AUTH.contains(&cmd.name.as_str()) {
        return Ok(());
    }
    let Some(user) = session_user(users, session) else {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("command {} requires authentication", cmd.name),
        ));
    };
    let needed = required_privileges(cmd);
    let granted = |resource: &Resource, action: &str| {
        user.privileges.iter().any(|p| {
            p.resource.covers(resource) && p.actions.iter().any(|a| a == action || a == "anyAction")
        })
    };
    let missing = needed
        .iter()
        .any(|(resource, actions)| !actions.iter().all(|a| granted(resource, a)));
    if missing {
        let shown = bson::Document::from_reader(cmd.body.as_bytes())
            .map(|d| d.to_string())
            .unwrap_or_default();
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("not authorized on {} to execute command {shown}", cmd.db),
        ));
    }
    Ok(())
}

/// Whether the authenticated user may run something on database `db` at all (for
/// `listDatabases` without its privilege, which then lists only those).
pub fn may_use_database(users: &Users, session: &Session, db: &str) -> bool {
    if !users.enabled() {
        return true;
    }
    let Some(user) = session_user(users, session) else {
        return false;
    };
    user.privileges.iter().any(|p| match &p.resource {
        Resource::Any => true,
        Resource::Cluster => false,
        Resource::Namespace { db: pdb, .. } => pdb.is_empty() || pdb == db,
    })
}

/// Whether the user holds `listDatabases` on the cluster (else the list is filtered).
pub fn lists_all_databases(users: &Users, session: &Session) -> bool {
    if !users.enabled() {
        return true;
    }
    let Some(user) = session_user(users, session) else {
        return false;
    };
    user.privileges.iter().any(|p| {
        p.resource.covers(&Resource::Cluster)
            && p.actions
                .iter()
                .any(|a| a == "listDatabases" || a == "anyAction")
    })
}

fn ns(db: &str, collection: &str) -> Resource {
    Resource::Namespace {
        db: db.to_owned(),
        collection: collection.to_owned(),
    }
}

/// The privileges `cmd` needs, as mongod's commands declare them (simplified to the action on
/// the namespace the command names).
fn required_privileges(cmd: &Cmd<'_>) -> Vec<(Resource, BTreeSet<&'static str>)> {
    let coll = match cmd.get(&cmd.name) {
        Some(RawBsonRef::String(c)) => c.to_owned(),
        _ => String::new(),
    };
    let on_coll =
        |actions: &[&'static str]| vec![(ns(&cmd.db, &coll), actions.iter().copied().collect())];
    let on_db =
        |actions: &[&'static str]| vec![(ns(&cmd.db, ""), actions.iter().copied().collect())];
    let on_cluster =
        |actions: &[&'static str]| vec![(Resource::Cluster, actions.iter().copied().collect())];
    match cmd.name.as_str() {
        "find" | "count" | "distinct" => on_coll(&["find"]),
        "aggregate" => {
            let change_stream = match cmd.get("pipeline") {
                Some(RawBsonRef::Array(stages)) => stages.into_iter().flatten().any(|s| {
                    matches!(s, RawBsonRef::Document(d) if d.get("$changeStream").ok().flatten().is_some())
                }),
                _ => false,
            };
            // `aggregate: 1` on a database (or on admin for the whole deployment).
            let resource = if coll.is_empty() {
                if cmd.db == "admin" && change_stream {
                    ns("", "")
                } else {
                    ns(&cmd.db, "")
                }
            } else {
                ns(&cmd.db, &coll)
            };
            let actions: BTreeSet<&'static str> = if change_stream {
                ["find", "changeStream"].into_iter().collect()
            } else {
                ["find"].into_iter().collect()
            };
            vec![(resource, actions)]
        }
        // A cursor belongs to who opened it; opening it was checked.
        "getMore" | "killCursors" => Vec::new(),
        "listCollections" => on_db(&["listCollections"]),
        "listIndexes" => on_coll(&["listIndexes"]),
        // Without the privilege, only the databases the user may use are listed.
        "listDatabases" => Vec::new(),
        "collStats" => on_coll(&["collStats"]),
        "dbStats" => on_db(&["dbStats"]),
        "insert" => on_coll(&["insert"]),
        "update" => on_coll(&["update"]),
        "delete" => on_coll(&["remove"]),
        "findAndModify" | "findandmodify" => on_coll(&["find", "update", "remove"]),
        "create" => on_coll(&["createCollection"]),
        "drop" => on_coll(&["dropCollection"]),
        "createIndexes" => on_coll(&["createIndex"]),
        "dropIndexes" => on_coll(&["dropIndex"]),
        "collMod" => on_coll(&["collMod"]),
        "serverStatus" => on_cluster(&["serverStatus"]),
        "replSetGetStatus" => on_cluster(&["replSetGetStatus"]),
        "getParameter" => on_cluster(&["getParameter"]),
        "hostInfo" => on_cluster(&["hostInfo"]),
        "getCmdLineOpts" => on_cluster(&["getCmdLineOpts"]),
        "startSession" | "refreshSessions" | "killSessions" => Vec::new(),
        // Anything else (fail points, stepdowns, dropDatabase, renames) is for administrators.
        _ => vec![(Resource::Any, ["anyAction"].into_iter().collect())],
    }
}
