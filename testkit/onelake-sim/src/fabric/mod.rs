//! A Fabric REST API simulator: mirrored databases (open mirroring), their mirroring status and
//! per-table status, workspaces and role assignments, long-running operations, paging,
//! throttling, and the Microsoft Entra token endpoint that hands out its tokens.
//!
//! It serves, on its own local port, what Microsoft's published OpenAPI definitions
//! (`github.com/microsoft/fabric-rest-api-specs`) define for these operations; see
//! `routes.rs` for the table of requests, the roles each needs and the error bodies. Table status is not made up:
//! each mirrored database has a [`Replicator`] over its landing zone
//! (`<workspace id>/<item id>/Files/LandingZone` in the [`Storage`] shared with a
//! [`crate::OneLakeSim`]), scanned while mirroring runs, so processed rows, bytes and sync times
//! are those of the files the writer published.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use onelake_sim::fabric::{FabricSim, Role};
//! use onelake_sim::{OneLakeSim, Storage};
//! let storage = Storage::new();
//! let onelake = OneLakeSim::start_on("127.0.0.1:0".parse().unwrap(), storage.clone()).await?;
//! let fabric = FabricSim::start(storage).await?;
//! let ws = fabric.add_workspace("Sales");
//! let app = fabric.register_app("contoso", "app-id", "app-secret");
//! fabric.assign(&ws, &app, Role::Contributor);
//! // Point a client at `fabric.api()` (the `/v1` root) and `fabric.authority()` (token endpoint
//! // host), and the landing zone's writer at `onelake.endpoint()`.
//! # let _ = onelake; Ok(()) }
//! ```

mod entra;
mod routes;
mod state;
mod tables;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use self::entra::Directory;
pub use self::entra::{FABRIC_AUDIENCE, FABRIC_SCOPE};
use self::state::{Assignment, Tenant, Workspace};
pub use self::state::{MirroringStatus, Role};
use crate::replicator::{ReplicatedTable, Replicator};
use crate::server::{parse_query, percent_decode, serve};
use crate::storage::Storage;

/// What tests can set.
#[derive(Clone, Debug)]
pub struct FabricOptions {
    /// Entries per page of paged lists.
    pub page_size: usize,
    /// `0`: a create answers 201 at once; `n`: it answers 202 and its operation reports `Running`
    /// for `n` state polls before `Succeeded`.
    pub provisioning_polls: usize,
    /// `Retry-After` of long-running operations, in seconds.
    pub retry_after_secs: u64,
    /// How long a new mirrored database stays `Initializing`.
    pub initializing_for: Duration,
    /// How long `Starting` lasts.
    pub starting_for: Duration,
    /// How long `Stopping` lasts.
    pub stopping_for: Duration,
    /// How often running mirrored databases scan their landing zone.
    pub scan_interval: Duration,
}

impl Default for FabricOptions {
    fn default() -> Self {
        Self {
            page_size: 100,
            provisioning_polls: 0,
            retry_after_secs: 1,
            initializing_for: Duration::ZERO,
            starting_for: Duration::ZERO,
            stopping_for: Duration::ZERO,
            scan_interval: Duration::from_millis(100),
        }
    }
}

/// One request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricRequest {
    /// The method.
    pub method: String,
    /// The path, e.g. `/v1/workspaces`.
    pub path: String,
    /// The bearer token sent, if any.
    pub token: Option<String>,
    /// The status answered.
    pub status: u16,
}

struct Throttle {
    path_contains: Option<String>,
    times: usize,
    retry_after: u64,
}

pub(crate) struct Inner {
    storage: Storage,
    base: String,
    tenant: Mutex<Tenant>,
    directory: Mutex<Directory>,
    options: Mutex<FabricOptions>,
    throttles: Mutex<Vec<Throttle>>,
    log: Mutex<Vec<FabricRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running Fabric simulator; stops when dropped.
pub struct FabricSim {
    addr: SocketAddr,
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FabricSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricSim")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FabricSim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FabricSim {
    /// Starts on a free port of 127.0.0.1; mirrored databases keep their landing zones in
    /// `storage`.
    pub async fn start(storage: Storage) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            storage,
        )
        .await
    }

    /// A OneLake simulator and a Fabric simulator over one storage, on free ports: what a writer
    /// publishes through the first is what the second's mirrored databases replicate.
    pub async fn start_with_onelake() -> std::io::Result<(crate::OneLakeSim, FabricSim)> {
        let storage = Storage::new();
        let any = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
        let onelake = crate::OneLakeSim::start_on(any, storage.clone()).await?;
        Ok((onelake, Self::start_on(any, storage).await?))
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, storage: Storage) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            storage,
            base: format!("http://{addr}"),
            tenant: Mutex::new(Tenant::default()),
            directory: Mutex::new(Directory::default()),
            options: Mutex::new(FabricOptions::default()),
            throttles: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let accept = serve(listener, inner.clone(), handle);
        let scanned = inner.clone();
        let scanner = tokio::spawn(async move {
            loop {
                let interval = lock(&scanned.options).scan_interval;
                tokio::time::sleep(interval).await;
                let running: Vec<Arc<Mutex<Replicator>>> = {
                    let mut tenant = lock(&scanned.tenant);
                    tenant
                        .items
                        .values_mut()
                        .filter_map(|item| {
                            item.advance();
                            (item.status == MirroringStatus::Running)
                                .then(|| item.replicator.clone())
                        })
                        .collect()
                };
                let _ = tokio::task::spawn_blocking(move || {
                    for replicator in running {
                        if let Err(e) = lock(&replicator).scan() {
                            tracing::warn!(error = %e, "fabric-sim: landing-zone scan failed");
                        }
                    }
                })
                .await;
            }
        });
        Ok(Self {
            addr,
            inner,
            tasks: vec![accept, scanner],
        })
    }

    /// `http://127.0.0.1:<port>`: the authority host of the token endpoint
    /// (`/<tenant>/oauth2/v2.0/token`).
    pub fn authority(&self) -> String {
        self.inner.base.clone()
    }

    /// `http://127.0.0.1:<port>/v1`: the API root (`https://api.fabric.microsoft.com/v1`).
    pub fn api(&self) -> String {
        format!("{}/v1", self.inner.base)
    }

    /// Changes options.
    pub fn set_options(&self, change: impl FnOnce(&mut FabricOptions)) {
        change(&mut lock(&self.inner.options));
    }

    /// Creates a workspace; returns its id.
    pub fn add_workspace(&self, name: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        lock(&self.inner.tenant).workspaces.insert(
            id.clone(),
            Workspace {
                id: id.clone(),
                name: name.to_owned(),
                assignments: Vec::new(),
            },
        );
        id
    }

    /// Registers an application with a client secret in `tenant`; returns its service principal's
    /// object id.
    pub fn register_app(&self, tenant: &str, client_id: &str, secret: &str) -> String {
        lock(&self.inner.directory).register(tenant, client_id, secret)
    }

    /// A principal with no application registration (a user or group); returns its object id.
    pub fn new_principal(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// Gives `principal` `role` in workspace `ws`.
    pub fn assign(&self, ws: &str, principal: &str, role: Role) {
        if let Some(w) = lock(&self.inner.tenant).workspaces.get_mut(ws) {
            w.assignments.retain(|a| a.principal != principal);
            w.assignments.push(Assignment {
                id: principal.to_owned(),
                principal: principal.to_owned(),
                principal_type: "ServicePrincipal".into(),
                role,
            });
        }
    }

    /// The role `principal` has in `ws`.
    pub fn role_of(&self, ws: &str, principal: &str) -> Option<Role> {
        lock(&self.inner.tenant)
            .workspaces
            .get(ws)
            .and_then(|w| w.role_of(principal))
    }

    /// A Fabric API token for `principal`, as if obtained elsewhere.
    pub fn mint_token(&self, principal: &str) -> String {
        lock(&self.inner.directory).mint(principal, FABRIC_AUDIENCE)
    }

    /// Lets `token` expire now.
    pub fn expire_token(&self, token: &str) {
        lock(&self.inner.directory).expire(token);
    }

    /// Lets every token issued so far expire now.
    pub fn expire_all_tokens(&self) {
        lock(&self.inner.directory).expire_all();
    }

    /// Every token issued, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner.directory).issued.clone()
    }

    /// The next `times` API requests get 429 with `Retry-After: <retry_after_secs>`.
    pub fn throttle(&self, times: usize, retry_after_secs: u64) {
        self.throttle_path(None, times, retry_after_secs);
    }

    /// As [`FabricSim::throttle`], for paths containing `fragment` only.
    pub fn throttle_path(&self, fragment: Option<&str>, times: usize, retry_after_secs: u64) {
        lock(&self.inner.throttles).push(Throttle {
            path_contains: fragment.map(str::to_owned),
            times,
            retry_after: retry_after_secs,
        });
    }

    /// Every API and token request so far.
    pub fn requests(&self) -> Vec<FabricRequest> {
        lock(&self.inner.log).clone()
    }

    /// Mirrored databases: `(workspace id, item id, display name)`.
    pub fn items(&self) -> Vec<(String, String, String)> {
        lock(&self.inner.tenant)
            .items
            .values()
            .map(|i| (i.workspace.clone(), i.id.clone(), i.name.clone()))
            .collect()
    }

    /// The mirroring status of an item.
    pub fn status(&self, item: &str) -> Option<MirroringStatus> {
        let mut tenant = lock(&self.inner.tenant);
        let item = tenant.items.get_mut(item)?;
        item.advance();
        Some(item.status)
    }

    /// The tables of an item as its replicator holds them.
    pub fn tables(&self, item: &str) -> BTreeMap<String, ReplicatedTable> {
        let replicator = lock(&self.inner.tenant)
            .items
            .get(item)
            .map(|i| i.replicator.clone());
        replicator
            .map(|r| lock(&r).tables().clone())
            .unwrap_or_default()
    }
}

fn take_throttle(inner: &Inner, path: &str) -> Option<u64> {
    let mut rules = lock(&inner.throttles);
    let index = rules
        .iter()
        .position(|t| t.times > 0 && t.path_contains.as_deref().is_none_or(|f| path.contains(f)))?;
    rules[index].times -= 1;
    let retry_after = rules[index].retry_after;
    if rules[index].times == 0 {
        rules.remove(index);
    }
    Some(retry_after)
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = percent_decode(req.uri().path());
    let query = parse_query(req.uri().query());
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let response = match segments.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] if method == Method::POST => {
            let form = parse_query(Some(&String::from_utf8_lossy(&body)));
            let (status, body) = lock(&inner.directory).token_request(tenant, &form);
            Response::builder()
                .status(status)
                .header("content-type", "application/json; charset=utf-8")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        }
        ["v1", rest @ ..] => match take_throttle(&inner, &path) {
            Some(retry_after) => routes::throttled(retry_after),
            None => routes::route(
                &inner,
                routes::Call {
                    method: &method,
                    segments: rest.to_vec(),
                    query: &query,
                    body: &body,
                    authorization: authorization.as_deref(),
                },
            ),
        },
        _ => routes::error(
            404,
            "EntityNotFound",
            "The requested resource could not be found.",
        ),
    };
    lock(&inner.log).push(FabricRequest {
        method: method.to_string(),
        path,
        token: authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned),
        status: response.status().as_u16(),
    });
    Ok(response)
}
