//! The Fabric REST API's routes, as Microsoft's published OpenAPI definitions describe them
//! (`github.com/microsoft/fabric-rest-api-specs`: `mirroredDatabase/swagger.json`,
//! `platform/swagger.json` for workspaces, role assignments, items and long-running operations,
//! `common/definitions.json` for `ErrorResponse`, `Item` and `PaginatedResponse`).
//!
//! | request | operation (operationId) | caller's workspace role |
//! |---|---|---|
//! | `GET /v1/workspaces` | Workspaces_ListWorkspaces (paged) | any (lists the ones it has a role in) |
//! | `GET /v1/workspaces/{ws}` | Workspaces_GetWorkspace | viewer |
//! | `GET`, `POST /v1/workspaces/{ws}/roleAssignments` | List / AddWorkspaceRoleAssignment | member |
//! | `PATCH /v1/workspaces/{ws}/roleAssignments/{id}` | UpdateWorkspaceRoleAssignment | admin |
//! | `GET`, `POST /v1/workspaces/{ws}/mirroredDatabases` | Items_ListMirroredDatabases (paged) / Items_CreateMirroredDatabase | viewer / contributor |
//! | `POST /v1/workspaces/{ws}/items` (type `MirroredDatabase`) | Items_CreateItem (long running) | contributor |
//! | `GET`, `DELETE /v1/workspaces/{ws}/mirroredDatabases/{id}` | Items_Get/DeleteMirroredDatabase | viewer / contributor |
//! | `POST .../startMirroring`, `.../stopMirroring` | Mirroring_Start/StopMirroring | contributor |
//! | `POST .../getMirroringStatus` | Mirroring_GetMirroringStatus | viewer |
//! | `POST .../getTablesMirroringStatus` | Mirroring_GetTablesMirroringStatus (paged) | viewer |
//! | `GET /v1/operations/{id}`, `GET /v1/operations/{id}/result` | Get Operation State / Result | |
//!
//! Errors are `ErrorResponse` bodies `{requestId, errorCode, message}` with a `RequestId` header.
//! The specification lists error codes only as examples (`default` responses): `ItemNotFound`,
//! `CorruptedPayload`, `ItemDisplayNameAlreadyInUse`, `InvalidItemType`, `UnknownError` come from
//! it; `WorkspaceNotFound`, `InsufficientPrivileges`, `TokenExpired` and `RequestBlocked` (429,
//! "Request is blocked by the upstream service until: ...") are the codes Fabric is seen to send.
//! Paged lists carry `continuationToken` and `continuationUri` while more remain (the
//! "Pagination" article); throttled requests get 429 with `Retry-After` in seconds ("Throttling"
//! article); long-running operations answer 202 with `Location`, `x-ms-operation-id` and
//! `Retry-After`, and their state moves from `Running` to `Succeeded`, when `Location` points at
//! the result ("Long running operations" article).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::{json, Value};

use super::entra::TokenProblem;
use super::state::{Assignment, Item, MirroringStatus, Operation, Role, Workspace};
use super::tables::table_entry;
use super::Inner;
use crate::replicator::Replicator;

pub(crate) type Reply = Response<Full<Bytes>>;

fn reply(status: u16) -> hyper::http::response::Builder {
    Response::builder()
        .status(status)
        .header("RequestId", uuid::Uuid::new_v4().to_string())
        .header("content-type", "application/json; charset=utf-8")
}

fn json_reply(status: u16, body: &Value) -> Reply {
    finish(reply(status), body.to_string())
}

fn empty(status: u16) -> Reply {
    finish(reply(status), String::new())
}

fn finish(b: hyper::http::response::Builder, body: String) -> Reply {
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// An `ErrorResponse`.
pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = json!({"requestId": request_id, "errorCode": code, "message": message});
    let mut b = Response::builder()
        .status(status)
        .header("RequestId", request_id)
        .header("content-type", "application/json; charset=utf-8");
    if status == 401 {
        b = b.header(
            "WWW-Authenticate",
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\"",
        );
    }
    finish(b, body.to_string())
}

/// 429 with `Retry-After`.
pub(crate) fn throttled(retry_after: u64) -> Reply {
    let until = chrono::Utc::now() + chrono::Duration::seconds(retry_after as i64);
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "requestId": request_id,
        "errorCode": "RequestBlocked",
        "message": format!("Request is blocked by the upstream service until: {} (UTC)", until.format("%-m/%-d/%Y %-I:%M:%S %p")),
    });
    finish(
        Response::builder()
            .status(429)
            .header("RequestId", request_id)
            .header("Retry-After", retry_after.to_string())
            .header("content-type", "application/json; charset=utf-8"),
        body.to_string(),
    )
}

/// One request as the router needs it.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    /// Path segments after `/v1/`.
    pub segments: Vec<&'a str>,
    pub query: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    pub authorization: Option<&'a str>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// A page of `items` under `key` (`value` or `data`), with continuation fields while more remain.
fn page(
    inner: &Inner,
    path: &str,
    query: &BTreeMap<String, String>,
    key: &str,
    items: Vec<Value>,
) -> Reply {
    let size = lock(&inner.options).page_size.max(1);
    let start = query
        .get("continuationtoken")
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix("offset:")
                .and_then(|n| n.parse::<usize>().ok())
        });
    let Some(start) = start.or(query.get("continuationtoken").is_none().then_some(0)) else {
        return error(
            400,
            "InvalidContinuationToken",
            "The continuation token is not valid.",
        );
    };
    let end = (start + size).min(items.len());
    let mut body = json!({ key: items.get(start..end).unwrap_or(&[]).to_vec() });
    if end < items.len() {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("offset:{end}"));
        body["continuationToken"] = json!(token);
        let encoded: String = token
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        body["continuationUri"] = json!(format!(
            "{}/v1/{path}?continuationToken={encoded}",
            inner.base
        ));
    }
    json_reply(200, &body)
}

fn workspace_json(w: &Workspace) -> Value {
    json!({"id": w.id, "displayName": w.name, "description": "", "type": "Workspace", "capacityId": "00000000-0000-0000-0000-000000000001"})
}

fn item_json(item: &Item) -> Value {
    json!({
        "id": item.id,
        "type": "MirroredDatabase",
        "displayName": item.name,
        "description": item.description,
        "workspaceId": item.workspace,
    })
}

fn mirrored_database_json(item: &Item) -> Value {
    let mut v = item_json(item);
    v["properties"] = json!({
        "oneLakeTablesPath": format!("https://onelake.dfs.fabric.microsoft.com/{}/{}/Tables", item.workspace, item.id),
        "sqlEndpointProperties": {
            "connectionString": format!("{}.datawarehouse.fabric.microsoft.com", item.id),
            "id": item.id,
            "provisioningStatus": if item.status == MirroringStatus::Initializing { "InProgress" } else { "Success" },
        },
        "defaultSchema": item.default_schema,
    });
    v
}

fn assignment_json(a: &Assignment) -> Value {
    json!({"id": a.id, "principal": {"id": a.principal, "type": a.principal_type}, "role": a.role.as_str()})
}

/// Routes one authenticated call.
pub(crate) fn route(inner: &Arc<Inner>, call: Call<'_>) -> Reply {
    let principal = match lock(&inner.directory).check(call.authorization) {
        Ok(p) => p,
        Err(TokenProblem::Missing) => {
            return error(401, "TokenNotProvided", "The request has no bearer token.")
        }
        Err(TokenProblem::Unknown) => {
            return error(401, "InvalidToken", "Access token is invalid.")
        }
        Err(TokenProblem::Expired) => {
            return error(
                401,
                "TokenExpired",
                "Access token has expired, resubmit with a new access token",
            )
        }
        Err(TokenProblem::WrongAudience) => {
            return error(
                401,
                "InvalidToken",
                "Access token is not valid for this audience; request it for https://api.fabric.microsoft.com/.default.",
            )
        }
    };
    let s = &call.segments;
    let m = call.method;
    match (m, s.as_slice()) {
        (&Method::GET, ["workspaces"]) => list_workspaces(inner, &principal, &call),
        (_, ["operations", id]) if *m == Method::GET => operation_state(inner, id),
        (_, ["operations", id, "result"]) if *m == Method::GET => operation_result(inner, id),
        (_, ["workspaces", ws, rest @ ..]) => {
            if !is_uuid(ws) {
                return error(
                    400,
                    "InvalidParameter",
                    &format!("The workspace ID '{ws}' is not a valid GUID."),
                );
            }
            workspace_route(inner, &principal, ws, rest, &call)
        }
        _ => error(
            404,
            "EntityNotFound",
            "The requested resource could not be found.",
        ),
    }
}

fn list_workspaces(inner: &Inner, principal: &str, call: &Call<'_>) -> Reply {
    let items: Vec<Value> = lock(&inner.tenant)
        .workspaces
        .values()
        .filter(|w| w.role_of(principal).is_some())
        .map(workspace_json)
        .collect();
    page(inner, "workspaces", call.query, "value", items)
}

/// The refusal, unless `principal` has at least `needed` in the workspace.
fn denied(
    workspaces: &std::collections::BTreeMap<String, Workspace>,
    ws: &str,
    principal: &str,
    needed: Role,
) -> Option<Reply> {
    let Some(w) = workspaces.get(ws) else {
        return Some(error(
            404,
            "WorkspaceNotFound",
            "The requested workspace was not found.",
        ));
    };
    match w.role_of(principal) {
        Some(role) if role >= needed => None,
        _ => Some(error(
            403,
            "InsufficientPrivileges",
            "The caller does not have sufficient privileges to perform this operation.",
        )),
    }
}

fn workspace_route(
    inner: &Arc<Inner>,
    principal: &str,
    ws: &str,
    rest: &[&str],
    call: &Call<'_>,
) -> Reply {
    let m = call.method;
    let needed = match (m, rest) {
        (&Method::GET, []) => Role::Viewer,
        (&Method::GET, ["roleAssignments"]) | (&Method::POST, ["roleAssignments"]) => Role::Member,
        (&Method::PATCH, ["roleAssignments", _]) => Role::Admin,
        (&Method::GET, ["mirroredDatabases"]) | (&Method::GET, ["mirroredDatabases", _]) => {
            Role::Viewer
        }
        (&Method::POST, ["mirroredDatabases"]) | (&Method::POST, ["items"]) => Role::Contributor,
        (&Method::DELETE, ["mirroredDatabases", _]) => Role::Contributor,
        (&Method::POST, ["mirroredDatabases", _, "startMirroring" | "stopMirroring"]) => {
            Role::Contributor
        }
        (
            &Method::POST,
            ["mirroredDatabases", _, "getMirroringStatus" | "getTablesMirroringStatus"],
        ) => Role::Viewer,
        _ => {
            return error(
                404,
                "EntityNotFound",
                "The requested resource could not be found.",
            )
        }
    };
    let mut tenant = lock(&inner.tenant);
    if let Some(refusal) = denied(&tenant.workspaces, ws, principal, needed) {
        return refusal;
    }
    let caller_role = tenant.workspaces.get(ws).and_then(|w| w.role_of(principal));
    match (m, rest) {
        (&Method::GET, []) => match tenant.workspaces.get(ws) {
            Some(w) => json_reply(200, &workspace_json(w)),
            None => error(
                404,
                "WorkspaceNotFound",
                "The requested workspace was not found.",
            ),
        },
        (&Method::GET, ["roleAssignments"]) => {
            let items: Vec<Value> = tenant
                .workspaces
                .get(ws)
                .map(|w| w.assignments.iter().map(assignment_json).collect())
                .unwrap_or_default();
            drop(tenant);
            page(
                inner,
                &format!("workspaces/{ws}/roleAssignments"),
                call.query,
                "value",
                items,
            )
        }
        (&Method::POST, ["roleAssignments"]) => {
            let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
                return error(400, "InvalidRequest", "The request body is not valid JSON.");
            };
            let (Some(id), Some(kind), Some(role)) = (
                body["principal"]["id"].as_str(),
                body["principal"]["type"].as_str(),
                body["role"].as_str().and_then(Role::parse),
            ) else {
                return error(
                    400,
                    "InvalidRequest",
                    "principal.id, principal.type and role (Admin, Member, Contributor, Viewer) are required.",
                );
            };
            if !is_uuid(id) {
                return error(
                    400,
                    "InvalidParameter",
                    &format!("The principal ID '{id}' is not a valid GUID."),
                );
            }
            if ![
                "User",
                "ServicePrincipal",
                "Group",
                "ServicePrincipalProfile",
            ]
            .contains(&kind)
            {
                return error(
                    400,
                    "InvalidParameter",
                    &format!("Unknown principal type '{kind}'."),
                );
            }
            // "Members can add members or others with lower permissions."
            if role == Role::Admin && caller_role != Some(Role::Admin) {
                return error(
                    403,
                    "InsufficientPrivileges",
                    "Only workspace admins can add admins.",
                );
            }
            let Some(w) = tenant.workspaces.get_mut(ws) else {
                return error(
                    404,
                    "WorkspaceNotFound",
                    "The requested workspace was not found.",
                );
            };
            if w.assignments.iter().any(|a| a.principal == id) {
                return error(
                    409,
                    "PrincipalAlreadyHasWorkspaceRolePermissions",
                    "The principal already has a role in this workspace; update its role assignment instead.",
                );
            }
            let a = Assignment {
                id: id.to_owned(),
                principal: id.to_owned(),
                principal_type: kind.to_owned(),
                role,
            };
            let body = assignment_json(&a);
            w.assignments.push(a);
            finish(
                reply(201).header(
                    "Location",
                    format!("{}/v1/workspaces/{ws}/roleAssignments/{id}", inner.base),
                ),
                body.to_string(),
            )
        }
        (&Method::PATCH, ["roleAssignments", id]) => {
            let Some(role) = serde_json::from_slice::<Value>(call.body)
                .ok()
                .and_then(|b| b["role"].as_str().and_then(Role::parse))
            else {
                return error(
                    400,
                    "InvalidRequest",
                    "role (Admin, Member, Contributor, Viewer) is required.",
                );
            };
            let Some(w) = tenant.workspaces.get_mut(ws) else {
                return error(
                    404,
                    "WorkspaceNotFound",
                    "The requested workspace was not found.",
                );
            };
            let Some(a) = w.assignments.iter_mut().find(|a| a.id == *id) else {
                return error(
                    404,
                    "WorkspaceRoleAssignmentNotFound",
                    "The role assignment was not found.",
                );
            };
            a.role = role;
            json_reply(200, &assignment_json(a))
        }
        (&Method::GET, ["mirroredDatabases"]) => {
            let items: Vec<Value> = tenant
                .items
                .values()
                .filter(|i| i.workspace == ws)
                .map(mirrored_database_json)
                .collect();
            drop(tenant);
            page(
                inner,
                &format!("workspaces/{ws}/mirroredDatabases"),
                call.query,
                "value",
                items,
            )
        }
        (&Method::POST, ["mirroredDatabases"]) => create(inner, &mut tenant, ws, call.body, false),
        (&Method::POST, ["items"]) => create(inner, &mut tenant, ws, call.body, true),
        (_, ["mirroredDatabases", id, action @ ..]) => {
            let Some(item) = tenant.items.get_mut(*id).filter(|i| i.workspace == ws) else {
                return error(404, "ItemNotFound", "The requested item was not found.");
            };
            item.advance();
            match (m, action) {
                (&Method::GET, []) => json_reply(200, &mirrored_database_json(item)),
                (&Method::DELETE, []) => {
                    tenant.items.remove(*id);
                    empty(200)
                }
                (&Method::POST, ["startMirroring"]) => start(inner, item),
                (&Method::POST, ["stopMirroring"]) => stop(inner, item),
                (&Method::POST, ["getMirroringStatus"]) => {
                    json_reply(200, &json!({"status": item.status.as_str()}))
                }
                (&Method::POST, ["getTablesMirroringStatus"]) => {
                    let stopped = item.status == MirroringStatus::Stopped;
                    let schema = item.default_schema.clone();
                    let replicator = item.replicator.clone();
                    drop(tenant);
                    let entries: Vec<Value> = lock(&replicator)
                        .tables()
                        .values()
                        .map(|t| table_entry(t, &schema, stopped))
                        .collect();
                    page(
                        inner,
                        &format!("workspaces/{ws}/mirroredDatabases/{id}/getTablesMirroringStatus"),
                        call.query,
                        "data",
                        entries,
                    )
                }
                _ => error(
                    404,
                    "EntityNotFound",
                    "The requested resource could not be found.",
                ),
            }
        }
        _ => error(
            404,
            "EntityNotFound",
            "The requested resource could not be found.",
        ),
    }
}

/// Checks a `mirroring.json` definition part; returns the default schema.
fn check_definition(body: &Value) -> Result<String, String> {
    let parts = body["definition"]["parts"]
        .as_array()
        .ok_or("definition.parts is required")?;
    let part = parts
        .iter()
        .find(|p| p["path"] == "mirroring.json")
        .ok_or("the definition has no mirroring.json part")?;
    if part["payloadType"] != "InlineBase64" {
        return Err("payloadType must be InlineBase64".into());
    }
    let payload = part["payload"].as_str().ok_or("payload is required")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| "the payload is not Base64")?;
    let doc: Value = serde_json::from_slice(&decoded).map_err(|_| "mirroring.json is not JSON")?;
    let source = doc["properties"]["source"]["type"]
        .as_str()
        .ok_or("properties.source.type is required")?;
    let target = &doc["properties"]["target"];
    if target["type"].as_str().is_none() {
        return Err("properties.target.type is required".into());
    }
    if source == "GenericMirror" {
        // Open mirroring ("Open mirroring" docs: mirrored database item definition).
        if target["type"] != "MountedRelationalDatabase" {
            return Err("an open mirroring (GenericMirror) item needs target type MountedRelationalDatabase".into());
        }
        if let Some(format) = target["typeProperties"]["format"].as_str() {
            if format != "Delta" {
                return Err(format!("target format {format} is not supported (Delta)"));
            }
        }
    }
    Ok(target["typeProperties"]["defaultSchema"]
        .as_str()
        .unwrap_or("dbo")
        .to_owned())
}

fn create(
    inner: &Arc<Inner>,
    tenant: &mut super::state::Tenant,
    ws: &str,
    raw: &[u8],
    generic: bool,
) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return error(400, "InvalidRequest", "The request body is not valid JSON.");
    };
    let Some(name) = body["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
    else {
        return error(400, "InvalidRequest", "displayName is required.");
    };
    if generic && body["type"] != "MirroredDatabase" {
        return error(
            400,
            "InvalidItemType",
            "Item type is invalid (the simulator creates MirroredDatabase items).",
        );
    }
    let default_schema = match check_definition(&body) {
        Ok(s) => s,
        Err(why) => {
            return error(
                400,
                "CorruptedPayload",
                &format!("The provided payload is corrupted: {why}."),
            )
        }
    };
    if tenant
        .items
        .values()
        .any(|i| i.workspace == ws && i.name == name)
    {
        return error(
            409,
            "ItemDisplayNameAlreadyInUse",
            "Item display name is already used.",
        );
    }
    let options = lock(&inner.options).clone();
    let id = uuid::Uuid::new_v4().to_string();
    let root = format!("{ws}/{id}/Files/LandingZone");
    let replicator = Replicator::new(Arc::new(inner.storage.landing_zone(&root)));
    let mut item = Item {
        id: id.clone(),
        workspace: ws.to_owned(),
        name: name.to_owned(),
        description: body["description"].as_str().unwrap_or("").to_owned(),
        default_schema,
        status: MirroringStatus::Initializing,
        next: None,
        replicator: Arc::new(Mutex::new(replicator)),
    };
    item.transition(
        MirroringStatus::Initializing,
        MirroringStatus::Initialized,
        options.initializing_for,
    );
    // The landing zone exists as soon as the item does.
    let _ = inner
        .storage
        .create_dir(&root, &crate::storage::Conditions::default());
    let result = if generic {
        item_json(&item)
    } else {
        mirrored_database_json(&item)
    };
    tenant.items.insert(id.clone(), item);
    if options.provisioning_polls == 0 {
        return json_reply(201, &result);
    }
    let op = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    tenant.operations.insert(
        op.clone(),
        Operation {
            id: op.clone(),
            polls_left: options.provisioning_polls,
            created: now,
            updated: now,
            result,
        },
    );
    finish(
        reply(202)
            .header("Location", format!("{}/v1/operations/{op}", inner.base))
            .header("x-ms-operation-id", op.as_str())
            .header("Retry-After", options.retry_after_secs.to_string()),
        String::new(),
    )
}

fn start(inner: &Inner, item: &mut Item) -> Reply {
    match item.status {
        // The specification's common error code for startMirroring.
        MirroringStatus::Initializing => error(
            400,
            "UnknownError",
            "Mirroring cannot start while the mirrored database is Initializing; retry when its status is Initialized.",
        ),
        MirroringStatus::Running | MirroringStatus::Starting => empty(200),
        _ => {
            let after = lock(&inner.options).starting_for;
            item.transition(MirroringStatus::Starting, MirroringStatus::Running, after);
            empty(200)
        }
    }
}

fn stop(inner: &Inner, item: &mut Item) -> Reply {
    match item.status {
        MirroringStatus::Running | MirroringStatus::Starting => {
            let after = lock(&inner.options).stopping_for;
            item.transition(MirroringStatus::Stopping, MirroringStatus::Stopped, after);
            empty(200)
        }
        MirroringStatus::Stopped | MirroringStatus::Stopping => empty(200),
        _ => error(400, "UnknownError", "Mirroring is not running."),
    }
}

fn operation_state(inner: &Inner, id: &str) -> Reply {
    let retry_after = lock(&inner.options).retry_after_secs;
    let mut tenant = lock(&inner.tenant);
    let Some(op) = tenant.operations.get_mut(id) else {
        return error(
            404,
            "OperationNotFound",
            "The requested operation was not found.",
        );
    };
    op.updated = chrono::Utc::now();
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if op.polls_left > 0 {
        op.polls_left -= 1;
        let body = json!({
            "status": "Running",
            "createdTimeUtc": fmt(op.created),
            "lastUpdatedTimeUtc": fmt(op.updated),
            "percentComplete": 50,
        });
        return finish(
            reply(200)
                .header(
                    "Location",
                    format!("{}/v1/operations/{}", inner.base, op.id),
                )
                .header("x-ms-operation-id", op.id.as_str())
                .header("Retry-After", retry_after.to_string()),
            body.to_string(),
        );
    }
    let body = json!({
        "status": "Succeeded",
        "createdTimeUtc": fmt(op.created),
        "lastUpdatedTimeUtc": fmt(op.updated),
        "percentComplete": 100,
    });
    finish(
        reply(200)
            .header(
                "Location",
                format!("{}/v1/operations/{}/result", inner.base, op.id),
            )
            .header("x-ms-operation-id", op.id.as_str()),
        body.to_string(),
    )
}

fn operation_result(inner: &Inner, id: &str) -> Reply {
    let tenant = lock(&inner.tenant);
    match tenant.operations.get(id) {
        Some(op) if op.polls_left == 0 => json_reply(200, &op.result),
        Some(_) => error(
            400,
            "OperationNotCompleted",
            "The operation has not completed yet.",
        ),
        None => error(
            404,
            "OperationNotFound",
            "The requested operation was not found.",
        ),
    }
}
