//! The HTTP front end: OneLake's Blob and DFS REST APIs over [`Storage`], on one local port.
//!
//! URLs are OneLake-style, `http://127.0.0.1:<port>/<workspace>/<item>/Files/...` (the first
//! segment is the container / filesystem, as on ADLS Gen2). [`request`] decides which API a
//! request speaks and which operation it is; [`blob`] and [`dfs`] carry them out:
//!
//! | request | operation |
//! |---|---|
//! | `PUT` (no `comp`/`resource`) | Put Blob, with conditions, `x-ms-meta-*`, `x-ms-blob-*` |
//! | `PUT ?comp=block&blockid=` / `PUT ?comp=blocklist` | Put Block / Put Block List |
//! | `PUT ?comp=metadata` / `?comp=properties` / `PATCH ?action=setProperties` | metadata and content headers |
//! | `PUT ?comp=lease` / `POST` + `x-ms-lease-action` | Lease Blob / Path - Lease |
//! | `GET` / `HEAD` | Get Blob, Path - Read (with `Range`) / Get Properties (`action=getStatus\|getAccessControl`) |
//! | `GET /<container>?restype=container&comp=list` | List Blobs (`prefix`, `delimiter`, `maxresults`, `marker`), XML |
//! | `GET /<filesystem>?resource=filesystem` | Path - List (`directory`, `recursive`, `maxResults`, `continuation`), JSON |
//! | `PUT ?resource=file` / `PUT ?resource=directory` | Path - Create |
//! | `PUT` with `x-ms-rename-source` | rename (path or full-URL source; conditions on both ends) |
//! | `PATCH ?action=append&position=` (`&flush=true`) / `PATCH ?action=flush&position=` | Path - Update |
//! | `DELETE` (`?recursive=`) | Delete Blob / Path - Delete |
//! | `POST ?comp=batch` | refused with 400, as OneLake refuses Blob Batch |
//! | `PATCH ?action=setAccessControl(Recursive)` | refused, as OneLake refuses setting access control |
//!
//! Every request needs an `Authorization` header ([`TokenPolicy`]) and an `x-ms-version` the
//! service knows, if any; [`Faults`] can intercept any of them. Responses carry `ETag`,
//! `Last-Modified`, `x-ms-request-id`, `x-ms-version` (the request's), and errors an
//! `x-ms-error-code` with an XML (Blob) or JSON (DFS) body.

mod blob;
mod dfs;
pub(crate) mod request;
mod response;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::TokenPolicy;
use crate::faults::{FaultAction, Faults, Operation};
use crate::storage::{SimError, Storage};

pub(crate) use self::request::{parse_query, percent_decode};
use self::request::{Api, Req};
use self::response::{error_response, Answer, Ctx};

/// One request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The HTTP method.
    pub method: String,
    /// The operation.
    pub operation: Operation,
    /// The full path (`ws/item/Files/...`).
    pub path: String,
    /// The status answered (0 when the connection was dropped).
    pub status: u16,
    /// Request headers that matter for conditions and renames.
    pub headers: BTreeMap<String, String>,
}

struct Inner {
    storage: Storage,
    faults: Faults,
    tokens: TokenPolicy,
    log: Mutex<Vec<LoggedRequest>>,
    workspaces: Mutex<Option<Vec<String>>>,
}

/// A running simulator; stops when dropped.
pub struct OneLakeSim {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for OneLakeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneLakeSim")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for OneLakeSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The connection was dropped on purpose ([`FaultAction::LoseResponse`]).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

impl OneLakeSim {
    /// Starts on a free port of 127.0.0.1 with empty storage.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            Storage::new(),
        )
        .await
    }

    /// Starts on `addr` over `storage`.
    pub async fn start_on(addr: SocketAddr, storage: Storage) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            storage,
            faults: Faults::default(),
            tokens: TokenPolicy::default(),
            log: Mutex::new(Vec::new()),
            workspaces: Mutex::new(None),
        });
        let task = serve(listener, inner.clone(), handle);
        Ok(Self { addr, inner, task })
    }

    /// `http://127.0.0.1:<port>`: the Blob and DFS endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The fault rules.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The token policy.
    pub fn tokens(&self) -> &TokenPolicy {
        &self.inner.tokens
    }

    /// Only these workspaces (containers) exist from now on; requests to others get 404
    /// `ContainerNotFound` (Blob) or `FilesystemNotFound` (DFS). By default every one exists.
    pub fn only_workspaces(&self, names: impl IntoIterator<Item = impl Into<String>>) {
        *self
            .inner
            .workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(names.into_iter().map(Into::into).collect());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Serves every connection `listener` accepts with `handle`, one task per connection.
pub(crate) fn serve<S, F, E>(
    listener: TcpListener,
    state: Arc<S>,
    handle: fn(Arc<S>, Request<Incoming>) -> F,
) -> JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Answer, Dropped> {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_owned();
    let raw_query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let req = Req::new(method, &raw_path, raw_query.as_deref(), headers, body);
    let mut logged: BTreeMap<String, String> = BTreeMap::new();
    for name in [
        "if-match",
        "if-none-match",
        "x-ms-rename-source",
        "range",
        "x-ms-version",
        "x-ms-lease-id",
    ] {
        if let Some(v) = req.header(name) {
            logged.insert(name.to_owned(), v);
        }
    }
    let op = req.op;
    let path = req.path.clone();
    let log = |status: u16| {
        inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(LoggedRequest {
                method: req.method.to_string(),
                operation: op,
                path: path.clone(),
                status,
                headers: logged.clone(),
            });
    };
    let head = req.method == Method::HEAD;
    let write = !matches!(req.method, Method::GET | Method::HEAD);
    let container = req.path.split('/').next().unwrap_or_default().to_owned();
    let known = inner
        .workspaces
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_none_or(|w| w.contains(&container));
    let fail = |status: u16, code: &str, message: &str, retry: Option<&str>| {
        let version = req
            .version()
            .unwrap_or_else(|_| request::LATEST_VERSION.to_owned());
        error_response(req.api, head, &version, status, code, message, retry)
    };
    let response = match inner
        .tokens
        .check(req.header("authorization").as_deref(), write, &req.path)
    {
        Err(f) => fail(f.status, f.code, f.message, None),
        Ok(()) if !known => {
            let (code, message) = match req.api {
                Api::Dfs => ("FilesystemNotFound", "The specified filesystem does not exist."),
                Api::Blob => ("ContainerNotFound", "The specified container does not exist."),
            };
            fail(404, code, message, None)
        }
        Ok(()) => match inner.faults.take(op, &req.path) {
            Some(FaultAction::Status {
                status,
                code,
                retry_after,
            }) => fail(status, code, "Injected fault.", retry_after.as_deref()),
            Some(FaultAction::ExpiredToken) => fail(
                401,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Lifetime validation failed. The token is expired.",
                None,
            ),
            Some(FaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                apply(&inner.storage, &req)
            }
            Some(FaultAction::LoseResponse) => {
                drop(apply(&inner.storage, &req));
                log(0);
                return Err(Dropped);
            }
            Some(FaultAction::Hang { applied }) => {
                if applied {
                    drop(apply(&inner.storage, &req));
                }
                log(0);
                // The writer is meant to die while it waits (a test kills it).
                std::future::pending::<()>().await;
                return Err(Dropped);
            }
            None => apply(&inner.storage, &req),
        },
    };
    log(response.status().as_u16());
    Ok(response)
}

/// Carries out one authorized request.
fn apply(storage: &Storage, req: &Req) -> Answer {
    let version = match req.version() {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                req.api,
                req.method == Method::HEAD,
                request::LATEST_VERSION,
                e.status,
                e.code,
                &e.message,
                None,
            )
        }
    };
    let ctx = Ctx::of(req, version);
    let own_host = req.header("host");
    let result = match req.op {
        Operation::Container => Ok(ctx.ok(
            ctx.base(if req.method == Method::PUT { 201 } else { 200 })
                .header("x-ms-namespace-enabled", "true")
                .header("content-length", "0"),
            Bytes::new(),
        )),
        Operation::Batch => Err(SimError::new(
            400,
            "UnsupportedOperation",
            "Blob Batch is not supported by OneLake; use DFS Path - Delete.",
        )),
        Operation::Lease => dfs::lease(storage, req, &ctx),
        Operation::SetProperties if req.api == Api::Dfs => dfs::set_properties(storage, req, &ctx),
        Operation::SetProperties => blob::set_properties(storage, req, &ctx),
        Operation::Other => Err(other(req)),
        Operation::CreateFile
        | Operation::CreateDirectory
        | Operation::Rename
        | Operation::Append
        | Operation::Flush
        | Operation::ListPaths => dfs::handle(storage, req, &ctx, own_host.as_deref()),
        Operation::Delete if req.api == Api::Dfs => {
            dfs::handle(storage, req, &ctx, own_host.as_deref())
        }
        Operation::PutBlob
        | Operation::PutBlock
        | Operation::PutBlockList
        | Operation::GetBlob
        | Operation::HeadBlob
        | Operation::ListBlobs
        | Operation::Delete => blob::handle(storage, req, &ctx),
    };
    result.unwrap_or_else(|e| ctx.error(&e))
}

/// Why a request that is no known operation is refused.
fn other(req: &Req) -> SimError {
    match (req.method.as_str(), req.q("action")) {
        // "OneLake rejects requests that contain disallowed query parameters ... an UPDATE call
        // with the 'setAccessControl' parameter is blocked" (OneLake API parity). The page names
        // no error code; the simulator answers Azure's code for a parameter it does not support.
        ("PATCH", Some("setAccessControl" | "setAccessControlRecursive")) => SimError::new(
            400,
            "UnsupportedQueryParameter",
            "One of the query parameters specified in the request URI is not supported. OneLake does not support setting access control through the ADLS APIs.",
        ),
        ("PATCH", None) => request::missing_query("action"),
        ("PATCH", Some(_)) => request::invalid_query("action"),
        ("PUT", _) if req.q("resource").is_some() => request::invalid_query("resource"),
        ("PUT", _) if req.q("comp").is_some() => SimError::new(
            400,
            "UnsupportedQueryParameter",
            "One of the query parameters specified in the request URI is not supported.",
        ),
        _ => SimError::new(
            405,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb.",
        ),
    }
}
