//! Administrative and test commands: `configureFailPoint`, `replSetStepDown`/`replSetStepUp`,
//! `replSetGetStatus`, sessions (`endSessions`, `startSession`), `serverStatus`,
//! `getParameter`, `hostInfo`.

use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document, RawBsonRef};

use super::{doc_body, Cmd, Exec};
use crate::error::{codes, CommandError};
use crate::state::Shared;

fn admin_only(cmd: &Cmd<'_>) -> Result<(), CommandError> {
    if cmd.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("{} may only be run against the admin database.", cmd.name),
        ));
    }
    Ok(())
}

pub fn configure_fail_point(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    admin_only(cmd)?;
    let name = match cmd.get("configureFailPoint") {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => {
            return Err(
                CommandError::type_mismatch("configureFailPoint needs a fail point name").into(),
            )
        }
    };
    let mode = cmd
        .get("mode")
        .map(|m| Bson::try_from(m.to_raw_bson()))
        .transpose()
        .map_err(|e| CommandError::bad_value(e.to_string()))?
        .ok_or_else(|| CommandError::bad_value("missing mode"))?;
    let data = cmd
        .doc("data")?
        .map(bson::Document::try_from)
        .transpose()
        .map_err(|e| CommandError::bad_value(e.to_string()))?;
    let count = shared.lock().failpoints.configure(&name, &mode, data)?;
    doc_body(doc! {"count": count})
}

/// `replSetStepDown: <secs>`: a single member has no electable secondary, so mongod refuses
/// without `force: true` (ExceededTimeLimit); with it, the member steps down and, being the only
/// member, is re-elected after `secs`.
pub fn repl_set_step_down(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    admin_only(cmd)?;
    let secs = cmd.i64_opt("replSetStepDown")?.unwrap_or(60).max(0) as u64;
    if !cmd.bool_opt("force") {
        return Err(CommandError::new(
            codes::EXCEEDED_TIME_LIMIT,
            "No electable secondaries caught up as of stepdown deadline. Please use the \
             replSetStepDown command with the argument {force: true} to force node to step down.",
        )
        .into());
    }
    crate::api::step_down_for(shared, Some(Duration::from_secs(secs)))?;
    doc_body(Document::new())
}

pub fn repl_set_step_up(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    admin_only(cmd)?;
    crate::api::step_up_now(shared);
    doc_body(Document::new())
}

pub fn repl_set_get_status(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    admin_only(cmd)?;
    let st = shared.lock();
    if st.topology.standalone() {
        return Err(CommandError::new(76, "not running with --replSet").into());
    }
    let ts = st.cluster_time();
    let t = &st.topology;
    doc_body(doc! {
        "set": t.set_name.clone(),
        "date": bson::DateTime::now(),
        "myState": if t.primary { 1 } else { 2 },
        "term": t.term,
        "members": [{
            "_id": 0,
            "name": t.host.clone(),
            "health": 1.0,
            "state": if t.primary { 1 } else { 2 },
            "stateStr": if t.primary { "PRIMARY" } else { "SECONDARY" },
            "optime": {"ts": ts, "t": t.term},
            "self": true,
        }],
    })
}

pub fn end_sessions(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    if cmd.name == "endSessions" || cmd.name == "killSessions" {
        if let Some(RawBsonRef::Array(a)) = cmd.get(&cmd.name) {
            let mut st = shared.lock();
            for lsid in a.into_iter().flatten() {
                if let RawBsonRef::Document(d) = lsid {
                    let raw = d.to_raw_document_buf();
                    if cmd.name == "killSessions" {
                        st.cursors.kill_for_session(&raw);
                    }
                    st.sessions.remove(raw.as_bytes());
                }
            }
        }
    }
    doc_body(Document::new())
}

pub fn start_session() -> Exec {
    let id = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: rand::random::<[u8; 16]>().to_vec(),
    };
    doc_body(doc! {"id": {"id": id}, "timeoutMinutes": 30})
}

/// `serverStatus`. Its `oplog` section (`latestOptime`, `earliestOptime`: the oplog's window)
/// is one mongod includes only when asked, `serverStatus({oplog: 1})`, and only on a replica set
/// member (`OplogInfoServerStatus` in mongod's `replication_info.cpp`; jstests
/// `replsets/server_status_repl.js`).
pub fn server_status(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    let st = shared.lock();
    let mut d = doc! {
        "host": st.topology.host.clone(),
        "version": st.topology.version.to_string(),
        "process": "mongod",
        "pid": std::process::id() as i64,
        "uptime": 1.0,
        "localTime": bson::DateTime::now(),
        "metrics": {"cursor": {"open": {"total": st.cursors.len() as i64}}},
    };
    if !st.topology.standalone() {
        d.insert(
            "repl",
            doc! {"setName": st.topology.set_name.clone(), "isWritablePrimary": st.topology.primary},
        );
        if cmd.bool_opt("oplog") {
            let latest = st.oplog.newest().unwrap_or_else(|| st.cluster_time());
            let earliest = st.oplog.oldest().unwrap_or(latest);
            d.insert(
                "oplog",
                doc! {"latestOptime": latest, "earliestOptime": earliest},
            );
        }
    }
    doc_body(d)
}

/// `getParameter`, as mongod's `CmdGet` (`src/mongo/db/commands/parameters.cpp`): admin only;
/// `getParameter: "*"` answers every parameter, `getParameter: 1` (or `{showDetails: true}`)
/// the named ones, and none found is InvalidOptions "no option found to get". The parameters are
/// the mongod 7.0 ones whose values the simulator's behaviour stands for (its defaults), not
/// mongod's hundreds of tuning knobs.
pub fn get_parameter(shared: &Arc<Shared>, cmd: &Cmd<'_>) -> Exec {
    admin_only(cmd)?;
    let fcv = shared.lock().topology.version.fcv();
    let params: Vec<(&str, Bson)> = vec![
        (
            "authenticationMechanisms",
            Bson::Array(vec![
                "MONGODB-X509".into(),
                "SCRAM-SHA-1".into(),
                "SCRAM-SHA-256".into(),
            ]),
        ),
        ("cursorTimeoutMillis", Bson::Int64(600_000)),
        ("enableTestCommands", Bson::Boolean(true)),
        (
            "featureCompatibilityVersion",
            Bson::Document(doc! {"version": fcv}),
        ),
        (
            "internalDocumentSourceGroupMaxMemoryBytes",
            Bson::Int64(104_857_600),
        ),
        (
            "internalQueryMaxBlockingSortMemoryUsageBytes",
            Bson::Int32(104_857_600),
        ),
        ("javascriptProtection", Bson::Boolean(false)),
        ("localLogicalSessionTimeoutMinutes", Bson::Int32(30)),
        ("logLevel", Bson::Int32(0)),
        (
            "maxAcceptableLogicalClockDriftSecs",
            Bson::Int64(31_536_000),
        ),
        ("maxBSONDepth", Bson::Int32(200)),
        ("maxSessions", Bson::Int32(1_000_000)),
        ("maxTransactionLockRequestTimeoutMillis", Bson::Int32(5)),
        ("notablescan", Bson::Boolean(false)),
        ("periodicNoopIntervalSecs", Bson::Int32(10)),
        ("quiet", Bson::Boolean(false)),
        ("syncdelay", Bson::Double(60.0)),
        ("transactionLifetimeLimitSeconds", Bson::Int32(60)),
        ("ttlMonitorEnabled", Bson::Boolean(true)),
    ];
    let (all, details) = match cmd.get("getParameter") {
        Some(RawBsonRef::String("*")) => (true, false),
        Some(RawBsonRef::Document(d)) => (
            matches!(d.get("allParameters"), Ok(Some(RawBsonRef::Boolean(true)))),
            matches!(d.get("showDetails"), Ok(Some(RawBsonRef::Boolean(true)))),
        ),
        _ => (false, false),
    };
    let mut out = Document::new();
    for (name, value) in params {
        if all || cmd.get(name).is_some() {
            let value = if details {
                Bson::Document(doc! {
                    "value": value,
                    "settableAtRuntime": !matches!(name, "featureCompatibilityVersion" | "authenticationMechanisms" | "maxBSONDepth" | "enableTestCommands"),
                    "settableAtStartup": name != "featureCompatibilityVersion",
                })
            } else {
                value
            };
            out.insert(name, value);
        }
    }
    if out.is_empty() {
        return Err(CommandError::new(codes::INVALID_OPTIONS, "no option found to get").into());
    }
    doc_body(out)
}

pub fn host_info() -> Exec {
    doc_body(doc! {
        "system": {"hostname": "mongo-sim", "numCores": std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1)},
        "os": {"type": std::env::consts::OS},
    })
}
