//! The handshake and monitoring commands: `hello`/`isMaster` (including awaitable hello, held
//! until `maxAwaitTimeMS` passes or the topology changes) and `buildInfo`.

use std::sync::Arc;
use std::time::Duration;

use bson::{doc, RawBsonRef};

use super::{doc_body, Cmd, ConnCtx, Exec};
use crate::error::CommandError;
use crate::state::Shared;

/// Whether this hello asks to be held (SDAM spec, "awaitable hello").
pub fn awaitable(cmd_body: &bson::RawDocument) -> Option<(bson::oid::ObjectId, i64, u64)> {
    let tv = match cmd_body.get("topologyVersion") {
        Ok(Some(RawBsonRef::Document(d))) => d,
        _ => return None,
    };
    let max = match cmd_body.get("maxAwaitTimeMS") {
        Ok(Some(v)) => crate::matcher::as_i64(&v)?,
        _ => return None,
    };
    let pid = match tv.get("processId") {
        Ok(Some(RawBsonRef::ObjectId(o))) => o,
        _ => return None,
    };
    let counter = match tv.get("counter") {
        Ok(Some(v)) => crate::matcher::as_i64(&v)?,
        _ => return None,
    };
    Some((pid, counter, max.max(0) as u64))
}

pub async fn hello(shared: &Arc<Shared>, conn: &mut ConnCtx, cmd: &Cmd<'_>) -> Exec {
    if let Some(client) = cmd.doc("client")? {
        if conn.handshake_done {
            return Err(CommandError::new(
                186,
                "The client metadata document may only be sent in the first hello",
            )
            .into());
        }
        if let Ok(Some(RawBsonRef::Document(app))) = client.get("application") {
            if let Ok(Some(RawBsonRef::String(name))) = app.get("name") {
                conn.app_name = Some(name.to_string());
            }
        }
    }
    conn.handshake_done = true;
    if let Some((pid, counter, max_ms)) = awaitable(cmd.body) {
        let mut rx = shared.topology_tx.subscribe();
        let same = {
            let st = shared.lock();
            st.topology.process_id == pid && st.topology.counter == counter
        };
        if same {
            let _ = tokio::time::timeout(Duration::from_millis(max_ms), rx.changed()).await;
        }
    }
    let legacy = cmd.name != "hello";
    let st = shared.lock();
    let last = st.cluster_time();
    let mut d = st
        .topology
        .hello(legacy, cmd.bool_opt("helloOk"), conn.id, last);
    let users = st.users.clone();
    drop(st);
    crate::auth::hello_fields(&users, &mut conn.auth, cmd, &mut d);
    doc_body(d)
}

pub fn build_info(shared: &Arc<Shared>) -> Exec {
    let v = shared.lock().topology.version;
    doc_body(doc! {
        "version": v.to_string(),
        "gitVersion": "mongo-sim",
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "versionArray": [v.major as i32, v.minor as i32, v.patch as i32, 0],
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": crate::wire::MAX_BSON_OBJECT_SIZE as i32,
        "storageEngines": ["inMemory"],
    })
}
