//! A client of the Fabric REST API (`https://api.fabric.microsoft.com/v1`) for what `mirror`
//! needs: workspaces and role assignments, mirrored databases, mirroring and table status.
//!
//! Every call goes through [`FabricClient::send`], which handles what the API documents for all
//! calls: throttling (429 with `Retry-After` in seconds: waited, up to
//! [`FabricRetry::max_throttle_retries`] times), a rejected token (401: one fresh token, then an
//! error naming the credential method), and error bodies (`ErrorResponse`) turned into
//! [`FabricError`]s that say which workspace, item or role is wrong. Reads are also retried after
//! a 5xx or a lost connection; changes are not (the call may have been applied). Paged lists
//! follow `continuationUri` (or `continuationToken`); long-running operations (202) are polled at
//! `Location` every `Retry-After` seconds until they succeed, then their result is read.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::error::FabricError;
use super::model::{
    open_mirroring_definition, ErrorResponse, MirroredDatabase, MirroringStatus, OperationState,
    Page, RoleAssignment, TableMirroringStatus, Workspace,
};
use super::token::FabricCredential;
use crate::auth::AuthConfig;
use crate::store::remote::retry_after;

/// The public Fabric REST API root.
pub const FABRIC_API: &str = "https://api.fabric.microsoft.com/v1";

/// Waiting limits.
#[derive(Clone, Debug)]
pub struct FabricRetry {
    /// Throttled (429) attempts retried before giving up.
    pub max_throttle_retries: usize,
    /// Longest single wait, even if `Retry-After` asks for more.
    pub max_wait: Duration,
    /// Longest wait for a long-running operation or a mirroring status.
    pub operation_timeout: Duration,
    /// Polling interval when the API names none.
    pub poll_interval: Duration,
}

impl Default for FabricRetry {
    fn default() -> Self {
        Self {
            max_throttle_retries: 8,
            max_wait: Duration::from_secs(120),
            operation_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// What a call is, for retries and messages.
#[derive(Clone, Debug)]
struct Call {
    what: String,
    workspace: Option<String>,
    item: Option<String>,
    /// The workspace role the call needs (from the API reference of each operation).
    role: &'static str,
    /// Whether repeating it is harmless.
    idempotent: bool,
}

impl Call {
    fn new(what: impl Into<String>, role: &'static str, idempotent: bool) -> Self {
        Self {
            what: what.into(),
            workspace: None,
            item: None,
            role,
            idempotent,
        }
    }

    fn on(mut self, workspace: &str, item: Option<&str>) -> Self {
        self.workspace = Some(workspace.to_owned());
        self.item = item.map(str::to_owned);
        self
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

/// The result of [`FabricClient::grant`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// A role assignment was added.
    Added,
    /// The principal's role was raised from this one.
    Raised(String),
    /// The principal already had this role, which is enough.
    AlreadyHad(String),
}

fn role_rank(role: &str) -> u8 {
    match role {
        "Viewer" => 1,
        "Contributor" => 2,
        "Member" => 3,
        "Admin" => 4,
        _ => 0,
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A name looked up in a list.
struct Named<'a> {
    what: String,
    name: &'a str,
    kind: &'static str,
    resource: String,
    missing: &'static str,
    hint: &'static str,
}

/// The one entry of `all` named `n.name` (`key` gives an entry's name and id).
fn one_named<T>(
    all: Vec<T>,
    key: impl Fn(&T) -> (&String, &String),
    n: Named<'_>,
) -> Result<T, FabricError> {
    let mut matching: Vec<T> = all.into_iter().filter(|t| key(t).0 == n.name).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(FabricError::NotFound {
            what: n.what,
            resource: n.resource,
            code: "NoSuchName".into(),
            message: n.missing.into(),
            hint: n.hint.into(),
        }),
        count => Err(FabricError::Ambiguous {
            what: n.what,
            name: n.name.to_owned(),
            kind: n.kind,
            count,
            ids: matching
                .iter()
                .map(|t| key(t).1.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A Fabric REST API client.
///
/// ```no_run
/// # async fn demo() -> Result<(), mirror_onelake::fabric::FabricError> {
/// use mirror_onelake::auth::AuthConfig;
/// use mirror_onelake::fabric::FabricClient;
/// let fabric = FabricClient::new(None, &AuthConfig::AzureCli {})?;
/// let ws = fabric.workspace("Sales").await?;
/// let db = fabric.create_mirrored_database(&ws.id, "shop", "MongoDB shop", "dbo").await?;
/// fabric.start_mirroring(&ws.id, &db.id).await?;
/// for table in fabric.tables_mirroring_status(&ws.id, &db.id).await? {
///     println!("{:?}.{:?}: {}", table.source_schema_name, table.source_table_name, table.status);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FabricClient {
    http: reqwest::Client,
    api: String,
    credential: FabricCredential,
    retry: FabricRetry,
}

impl FabricClient {
    /// A client of `api` (default [`FABRIC_API`]) authenticating with `auth`.
    pub fn new(api: Option<&str>, auth: &AuthConfig) -> Result<Self, FabricError> {
        let http = reqwest::Client::builder()
            .user_agent(format!("mirror/{}", mirror_core::VERSION))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| FabricError::Config(format!("Fabric API client: {e}")))?;
        let credential = FabricCredential::new(auth, &http)?;
        Ok(Self {
            http,
            api: api.unwrap_or(FABRIC_API).trim_end_matches('/').to_owned(),
            credential,
            retry: FabricRetry::default(),
        })
    }

    /// Replaces the waiting limits.
    pub fn with_retry(mut self, retry: FabricRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The API root.
    pub fn api(&self) -> &str {
        &self.api
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.api, path)
    }

    fn ws_url(&self, ws: &str, rest: &str) -> String {
        if rest.is_empty() {
            self.url(&format!("workspaces/{}", segment(ws)))
        } else {
            self.url(&format!("workspaces/{}/{rest}", segment(ws)))
        }
    }

    fn item_url(&self, ws: &str, item: &str, action: &str) -> String {
        let base = self.ws_url(ws, &format!("mirroredDatabases/{}", segment(item)));
        if action.is_empty() {
            base
        } else {
            format!("{base}/{action}")
        }
    }

    async fn send(
        &self,
        call: &Call,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, FabricError> {
        let mut attempts = 0usize;
        let mut failures = 0usize;
        let mut waited = Duration::ZERO;
        let mut refreshed = false;
        loop {
            attempts += 1;
            let token = self.credential.token().await?;
            let mut request = self.http.request(method.clone(), url).bearer_auth(&token);
            request = match body {
                Some(b) => request
                    .header("content-type", "application/json")
                    .body(b.to_string()),
                None if method == Method::POST => request.body(""),
                None => request,
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    if (call.idempotent || e.is_connect()) && failures < 3 {
                        failures += 1;
                        let delay = Duration::from_millis(500 << failures);
                        warn!(call = %call.what, error = %e.without_url(), retry_in = ?delay, "Fabric API unreachable; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(FabricError::Http {
                        what: call.what.clone(),
                        url: url.to_owned(),
                        message: e.without_url().to_string(),
                    });
                }
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body_bytes = response.bytes().await.map_err(|e| FabricError::Http {
                what: call.what.clone(),
                url: url.to_owned(),
                message: e.without_url().to_string(),
            })?;
            debug!(call = %call.what, %method, url, status, "Fabric API");
            match status {
                200..=299 => {
                    return Ok(Answer {
                        status,
                        headers,
                        body: body_bytes,
                    })
                }
                429 if attempts <= self.retry.max_throttle_retries => {
                    let delay = retry_after(&headers)
                        .unwrap_or(Duration::from_secs(1 << attempts.min(6)))
                        .min(self.retry.max_wait);
                    warn!(call = %call.what, retry_in = ?delay, "Fabric API throttled the request (429); waiting as asked");
                    tokio::time::sleep(delay).await;
                    waited += delay;
                }
                429 => {
                    return Err(FabricError::Throttled {
                        what: call.what.clone(),
                        attempts,
                        waited,
                    })
                }
                401 if !refreshed && self.credential.refreshable() => {
                    info!(call = %call.what, "Fabric API refused the token (401); getting a fresh one");
                    self.credential.invalidate();
                    refreshed = true;
                }
                500 | 502 | 503 | 504 if call.idempotent && failures < 3 => {
                    failures += 1;
                    let delay = retry_after(&headers)
                        .unwrap_or(Duration::from_millis(500 << failures))
                        .min(self.retry.max_wait);
                    warn!(call = %call.what, status, retry_in = ?delay, "Fabric API failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(self.error(call, status, &body_bytes)),
            }
        }
    }

    fn error(&self, call: &Call, status: u16, body: &[u8]) -> FabricError {
        let e: ErrorResponse = serde_json::from_slice(body).unwrap_or_else(|_| ErrorResponse {
            error_code: String::new(),
            message: String::from_utf8_lossy(body).chars().take(300).collect(),
            request_id: None,
        });
        let what = call.what.clone();
        let workspace = call.workspace.clone().unwrap_or_else(|| "(none)".into());
        match status {
            401 => FabricError::Unauthorized {
                what,
                method: self.credential.method(),
                code: e.error_code,
                message: e.message,
            },
            403 => FabricError::Forbidden {
                what,
                workspace,
                role: call.role,
                code: e.error_code,
                message: e.message,
            },
            404 => {
                let (resource, hint) = match &call.item {
                    Some(item) => (
                        format!("mirrored database {item} in workspace {workspace}"),
                        "check the item and workspace ids (`mirror fabric status --workspace <ws> \
                         --item <name or id>` resolves names); the identity must have a role in \
                         the workspace"
                            .to_owned(),
                    ),
                    None => (
                        format!("workspace {workspace}"),
                        "check the workspace id; a workspace is visible only to identities that \
                         have a role in it"
                            .to_owned(),
                    ),
                };
                FabricError::NotFound {
                    what,
                    resource,
                    code: e.error_code,
                    message: e.message,
                    hint,
                }
            }
            _ => FabricError::Api {
                what,
                status,
                code: e.error_code,
                message: e.message,
                request_id: e.request_id,
            },
        }
    }

    fn parse<T: DeserializeOwned>(call: &Call, answer: &Answer) -> Result<T, FabricError> {
        serde_json::from_slice(&answer.body).map_err(|e| FabricError::Unexpected {
            what: call.what.clone(),
            message: format!("{} answer: {e}", answer.status),
        })
    }

    async fn pages<T: DeserializeOwned>(
        &self,
        call: &Call,
        method: Method,
        first: String,
    ) -> Result<Vec<T>, FabricError> {
        let mut out = Vec::new();
        let mut url = first.clone();
        for _ in 0..100_000 {
            let answer = self.send(call, method.clone(), &url, None).await?;
            let page: Page<T> = Self::parse(call, &answer)?;
            out.extend(page.value);
            url = match (page.continuation_uri, page.continuation_token) {
                (Some(uri), _) if !uri.is_empty() => uri,
                (_, Some(token)) if !token.is_empty() => {
                    let mut next =
                        reqwest::Url::parse(&first).map_err(|e| FabricError::Unexpected {
                            what: call.what.clone(),
                            message: e.to_string(),
                        })?;
                    next.query_pairs_mut()
                        .append_pair("continuationToken", &token);
                    next.to_string()
                }
                _ => return Ok(out),
            };
        }
        Err(FabricError::Unexpected {
            what: call.what.clone(),
            message: "more than 100,000 pages".into(),
        })
    }

    /// Every workspace this identity has a role in.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>, FabricError> {
        let call = Call::new("list workspaces", "Viewer", true);
        self.pages(&call, Method::GET, self.url("workspaces")).await
    }

    /// A workspace by id or by name.
    pub async fn workspace(&self, id_or_name: &str) -> Result<Workspace, FabricError> {
        if is_guid(id_or_name) {
            let call = Call::new(format!("get workspace {id_or_name}"), "Viewer", true)
                .on(id_or_name, None);
            let answer = self
                .send(&call, Method::GET, &self.ws_url(id_or_name, ""), None)
                .await?;
            return Self::parse(&call, &answer);
        }
        let all = self.workspaces().await?;
        one_named(
            all,
            |w| (&w.display_name, &w.id),
            Named {
                what: format!("find workspace `{id_or_name}`"),
                name: id_or_name,
                kind: "workspace",
                resource: format!("workspace `{id_or_name}`"),
                missing: "no workspace of that name is listed for this identity",
                hint: "check the name (it is case-sensitive) and that the identity has a role in \
                       the workspace (an admin adds it under Manage access)",
            },
        )
    }

    /// Every mirrored database of a workspace (by id).
    pub async fn mirrored_databases(&self, ws: &str) -> Result<Vec<MirroredDatabase>, FabricError> {
        let call = Call::new(
            format!("list mirrored databases of workspace {ws}"),
            "Viewer",
            true,
        )
        .on(ws, None);
        self.pages(&call, Method::GET, self.ws_url(ws, "mirroredDatabases"))
            .await
    }

    /// A mirrored database of a workspace (by id), by id or by name.
    pub async fn mirrored_database(
        &self,
        ws: &str,
        id_or_name: &str,
    ) -> Result<MirroredDatabase, FabricError> {
        if is_guid(id_or_name) {
            let call = Call::new(
                format!("get mirrored database {id_or_name}"),
                "Viewer",
                true,
            )
            .on(ws, Some(id_or_name));
            let answer = self
                .send(&call, Method::GET, &self.item_url(ws, id_or_name, ""), None)
                .await?;
            return Self::parse(&call, &answer);
        }
        let all = self.mirrored_databases(ws).await?;
        one_named(
            all,
            |d| (&d.display_name, &d.id),
            Named {
                what: format!("find mirrored database `{id_or_name}` in workspace {ws}"),
                name: id_or_name,
                kind: "mirrored database",
                resource: format!("mirrored database `{id_or_name}` in workspace {ws}"),
                missing: "no mirrored database of that name is in the workspace",
                hint: "check the name (case-sensitive), or create it with `mirror fabric create`",
            },
        )
    }

    /// Creates an open mirroring database (the definition of [`open_mirroring_definition`]),
    /// waiting through the long-running operation when Fabric answers 202; returns it with its
    /// properties (the landing zone).
    pub async fn create_mirrored_database(
        &self,
        ws: &str,
        name: &str,
        description: &str,
        default_schema: &str,
    ) -> Result<MirroredDatabase, FabricError> {
        let call = Call::new(
            format!("create mirrored database `{name}` in workspace {ws}"),
            "Contributor",
            false,
        )
        .on(ws, None);
        let body = json!({
            "displayName": name,
            "description": description,
            "definition": open_mirroring_definition(default_schema),
        });
        let answer = self
            .send(
                &call,
                Method::POST,
                &self.ws_url(ws, "mirroredDatabases"),
                Some(&body),
            )
            .await?;
        let created: MirroredDatabase = if answer.status == 202 {
            let result = self.wait_operation(&call, &answer).await?;
            serde_json::from_value(result).map_err(|e| FabricError::Unexpected {
                what: call.what.clone(),
                message: format!("operation result: {e}"),
            })?
        } else {
            Self::parse(&call, &answer)?
        };
        if created.landing_zone().is_some() {
            return Ok(created);
        }
        // A long-running create's result is the bare item: read its properties.
        self.mirrored_database(ws, &created.id).await
    }

    async fn wait_operation(&self, call: &Call, accepted: &Answer) -> Result<Value, FabricError> {
        let header = |a: &Answer, name: &str| {
            a.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let state_url = match (
            header(accepted, "location"),
            header(accepted, "x-ms-operation-id"),
        ) {
            (Some(location), _) => location,
            (None, Some(id)) => self.url(&format!("operations/{}", segment(&id))),
            (None, None) => {
                return Err(FabricError::Unexpected {
                    what: call.what.clone(),
                    message: "202 without Location or x-ms-operation-id".into(),
                })
            }
        };
        let poll = Call::new(format!("{} (operation state)", call.what), call.role, true);
        let started = Instant::now();
        let mut wait = retry_after(&accepted.headers).unwrap_or(self.retry.poll_interval);
        loop {
            tokio::time::sleep(wait.min(self.retry.max_wait)).await;
            let answer = self.send(&poll, Method::GET, &state_url, None).await?;
            let state: OperationState = Self::parse(&poll, &answer)?;
            info!(call = %call.what, status = %state.status, percent = ?state.percent_complete, "long-running operation");
            match state.status.as_str() {
                "Succeeded" => {
                    let result_url = header(&answer, "location")
                        .filter(|l| l.trim_end_matches('/').ends_with("/result"))
                        .unwrap_or_else(|| format!("{}/result", state_url.trim_end_matches('/')));
                    let result_call =
                        Call::new(format!("{} (operation result)", call.what), call.role, true);
                    let answer = self
                        .send(&result_call, Method::GET, &result_url, None)
                        .await?;
                    return Self::parse(&result_call, &answer);
                }
                "Failed" | "Undefined" => {
                    return Err(FabricError::OperationFailed {
                        what: call.what.clone(),
                        status: state.status,
                        message: state
                            .error
                            .map(|e| format!("{}: {}", e.error_code, e.message))
                            .unwrap_or_default(),
                    })
                }
                other => {
                    if started.elapsed() >= self.retry.operation_timeout {
                        return Err(FabricError::Timeout {
                            what: call.what.clone(),
                            waited: started.elapsed(),
                            state: other.to_owned(),
                        });
                    }
                    wait = retry_after(&answer.headers).unwrap_or(self.retry.poll_interval);
                }
            }
        }
    }

    /// `startMirroring`.
    pub async fn start_mirroring(&self, ws: &str, item: &str) -> Result<(), FabricError> {
        let call = Call::new(format!("start mirroring of {item}"), "Contributor", false)
            .on(ws, Some(item));
        self.send(
            &call,
            Method::POST,
            &self.item_url(ws, item, "startMirroring"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `stopMirroring`.
    pub async fn stop_mirroring(&self, ws: &str, item: &str) -> Result<(), FabricError> {
        let call =
            Call::new(format!("stop mirroring of {item}"), "Contributor", false).on(ws, Some(item));
        self.send(
            &call,
            Method::POST,
            &self.item_url(ws, item, "stopMirroring"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `getMirroringStatus`.
    pub async fn mirroring_status(
        &self,
        ws: &str,
        item: &str,
    ) -> Result<MirroringStatus, FabricError> {
        let call = Call::new(
            format!("get the mirroring status of {item}"),
            "Viewer",
            true,
        )
        .on(ws, Some(item));
        let answer = self
            .send(
                &call,
                Method::POST,
                &self.item_url(ws, item, "getMirroringStatus"),
                None,
            )
            .await?;
        Self::parse(&call, &answer)
    }

    /// `getTablesMirroringStatus`, every page.
    pub async fn tables_mirroring_status(
        &self,
        ws: &str,
        item: &str,
    ) -> Result<Vec<TableMirroringStatus>, FabricError> {
        let call = Call::new(
            format!("get the tables' mirroring status of {item}"),
            "Viewer",
            true,
        )
        .on(ws, Some(item));
        self.pages(
            &call,
            Method::POST,
            self.item_url(ws, item, "getTablesMirroringStatus"),
        )
        .await
    }

    /// Polls `getMirroringStatus` until it is one of `wanted`.
    pub async fn wait_for_status(
        &self,
        ws: &str,
        item: &str,
        wanted: &[&str],
    ) -> Result<MirroringStatus, FabricError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let status = self.mirroring_status(ws, item).await?;
            if wanted.contains(&status.status.as_str()) {
                return Ok(status);
            }
            if started.elapsed() >= self.retry.operation_timeout {
                return Err(FabricError::Timeout {
                    what: format!("wait for mirroring of {item} to be {}", wanted.join(" or ")),
                    waited: started.elapsed(),
                    state: status.status,
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry.poll_interval);
        }
    }

    /// Role assignments of a workspace.
    pub async fn role_assignments(&self, ws: &str) -> Result<Vec<RoleAssignment>, FabricError> {
        let call = Call::new(
            format!("list role assignments of workspace {ws}"),
            "Member",
            true,
        )
        .on(ws, None);
        self.pages(&call, Method::GET, self.ws_url(ws, "roleAssignments"))
            .await
    }

    /// Gives `principal` (an object id of `kind`: ServicePrincipal, User, Group) at least `role` in
    /// the workspace: adds a role assignment, or raises a lower one.
    pub async fn grant(
        &self,
        ws: &str,
        principal: &str,
        kind: &str,
        role: &str,
    ) -> Result<Grant, FabricError> {
        if role_rank(role) == 0 {
            return Err(FabricError::Config(format!(
                "unknown workspace role `{role}` (Admin, Member, Contributor, Viewer)"
            )));
        }
        let existing = self
            .role_assignments(ws)
            .await?
            .into_iter()
            .find(|a| a.principal.id.eq_ignore_ascii_case(principal));
        match existing {
            Some(a) if role_rank(&a.role) >= role_rank(role) => Ok(Grant::AlreadyHad(a.role)),
            Some(a) => {
                let call = Call::new(
                    format!("raise the role of {principal} in workspace {ws} to {role}"),
                    "Admin",
                    true,
                )
                .on(ws, None);
                let url = self.ws_url(ws, &format!("roleAssignments/{}", segment(&a.id)));
                self.send(&call, Method::PATCH, &url, Some(&json!({"role": role})))
                    .await?;
                Ok(Grant::Raised(a.role))
            }
            None => {
                let call = Call::new(
                    format!("give {principal} the {role} role in workspace {ws}"),
                    if role == "Admin" { "Admin" } else { "Member" },
                    false,
                )
                .on(ws, None);
                let body = json!({"principal": {"id": principal, "type": kind}, "role": role});
                self.send(
                    &call,
                    Method::POST,
                    &self.ws_url(ws, "roleAssignments"),
                    Some(&body),
                )
                .await?;
                Ok(Grant::Added)
            }
        }
    }
}
