//! The HTTP front end: OneLake's Blob and DFS REST APIs over [`Storage`], on one local port.
//!
//! URLs are OneLake-style, `http://127.0.0.1:<port>/<workspace>/<item>/Files/...` (the first
//! segment is the container / filesystem, as on ADLS Gen2). Supported requests (as documented in
//! Microsoft's Blob service and Data Lake Storage Gen2 REST references):
//!
//! | request | operation |
//! |---|---|
//! | `PUT` (no `comp`/`resource`) | Put Blob, with `If-Match` / `If-None-Match`, `x-ms-meta-*` |
//! | `PUT ?comp=block&blockid=` / `PUT ?comp=blocklist` | Put Block / Put Block List |
//! | `GET` / `HEAD` | Get Blob (with `Range`) / Get Properties |
//! | `GET /<container>?restype=container&comp=list` | List Blobs (`prefix`, `delimiter`), XML |
//! | `GET /<filesystem>?resource=filesystem` | Path - List (`directory`, `recursive`), JSON |
//! | `PUT ?resource=file` / `PUT ?resource=directory` | Path - Create |
//! | `PUT` with `x-ms-rename-source` | rename (conditions apply to the destination) |
//! | `PATCH ?action=append&position=` / `PATCH ?action=flush&position=` | Path - Update |
//! | `DELETE` (`?recursive=`) | Delete Blob / Path - Delete |
//! | `POST ?comp=batch` | refused with 400, as OneLake refuses Blob Batch |
//!
//! Every request needs an `Authorization` header ([`TokenPolicy`]); [`Faults`] can intercept any of
//! them. Responses carry `ETag`, `Last-Modified`, `x-ms-request-id`, `x-ms-version`, and errors an
//! `x-ms-error-code` with an XML (Blob) or JSON (DFS) body.

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
use crate::storage::{Conditions, SimError, Storage, StoredFile};

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

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(k).to_ascii_lowercase(),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn header(req: &hyper::HeaderMap, name: &str) -> Option<String> {
    req.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn classify(
    method: &Method,
    query: &BTreeMap<String, String>,
    headers: &hyper::HeaderMap,
    path: &str,
) -> Operation {
    let q = |k: &str| query.get(k).map(String::as_str);
    let container_only = !path.contains('/');
    match *method {
        Method::GET if q("comp") == Some("list") => Operation::ListBlobs,
        Method::GET if q("resource") == Some("filesystem") => Operation::ListPaths,
        Method::GET | Method::HEAD if q("restype") == Some("container") || container_only => {
            Operation::Container
        }
        Method::GET => Operation::GetBlob,
        Method::HEAD => Operation::HeadBlob,
        Method::PUT if headers.contains_key("x-ms-rename-source") => Operation::Rename,
        Method::PUT if q("restype") == Some("container") || q("resource") == Some("filesystem") => {
            Operation::Container
        }
        Method::PUT if q("comp") == Some("block") => Operation::PutBlock,
        Method::PUT if q("comp") == Some("blocklist") => Operation::PutBlockList,
        Method::PUT if q("resource") == Some("file") => Operation::CreateFile,
        Method::PUT if q("resource") == Some("directory") => Operation::CreateDirectory,
        Method::PUT if q("comp").is_none() => Operation::PutBlob,
        Method::PATCH if q("action") == Some("append") => Operation::Append,
        Method::PATCH if q("action") == Some("flush") => Operation::Flush,
        Method::DELETE => Operation::Delete,
        Method::POST if q("comp") == Some("batch") => Operation::Batch,
        _ => Operation::Other,
    }
}

fn is_dfs(op: Operation) -> bool {
    matches!(
        op,
        Operation::CreateFile
            | Operation::CreateDirectory
            | Operation::Append
            | Operation::Flush
            | Operation::Rename
            | Operation::ListPaths
    )
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn base(status: u16) -> hyper::http::response::Builder {
    Response::builder()
        .status(status)
        .header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
        .header("x-ms-version", "2023-11-03")
        .header("server", "onelake-sim")
}

fn error_response(
    op: Operation,
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = if is_dfs(op) {
        serde_json::json!({"error": {"code": code, "message": message}}).to_string()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
            xml_escape(message)
        )
    };
    let mut b = base(status).header("x-ms-error-code", code).header(
        "content-type",
        if is_dfs(op) {
            "application/json"
        } else {
            "application/xml"
        },
    );
    if status == 401 {
        b = b.header("www-authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com");
    }
    if let Some(r) = retry_after {
        b = b.header("retry-after", r);
    }
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn sim_error(op: Operation, e: SimError) -> Response<Full<Bytes>> {
    error_response(op, e.status, e.code, &e.message, None)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn file_headers(
    b: hyper::http::response::Builder,
    f: &StoredFile,
) -> hyper::http::response::Builder {
    let mut b = b
        .header("etag", f.etag.as_str())
        .header("last-modified", http_date(f.last_modified))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-resource-type", "file")
        .header("accept-ranges", "bytes")
        .header("content-type", f.content_type.as_str());
    for (k, v) in &f.metadata {
        b = b.header(format!("x-ms-meta-{k}"), v.as_str());
    }
    b
}

fn conditions(headers: &hyper::HeaderMap) -> Conditions {
    Conditions {
        if_match: header(headers, "if-match"),
        if_none_match: header(headers, "if-none-match"),
    }
}

fn metadata(headers: &hyper::HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-ms-meta-")?;
            Some((name.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .collect()
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().clone();
    let path = percent_decode(
        req.uri()
            .path()
            .trim_start_matches('/')
            .trim_end_matches('/'),
    );
    let query = parse_query(req.uri().query());
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let op = classify(&method, &query, &headers, &path);
    let mut logged: BTreeMap<String, String> = BTreeMap::new();
    for name in ["if-match", "if-none-match", "x-ms-rename-source", "range"] {
        if let Some(v) = header(&headers, name) {
            logged.insert(name.to_owned(), v);
        }
    }
    let write = !matches!(method, Method::GET | Method::HEAD);
    let container = path.split('/').next().unwrap_or_default().to_owned();
    let known = inner
        .workspaces
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_none_or(|w| w.contains(&container));
    let response = match inner.tokens.check(header(&headers, "authorization").as_deref(), write, &path) {
        Err(f) => error_response(op, f.status, f.code, f.message, None),
        Ok(()) if !known => {
            let (code, message) = if is_dfs(op) {
                ("FilesystemNotFound", "The specified filesystem does not exist.")
            } else {
                ("ContainerNotFound", "The specified container does not exist.")
            };
            error_response(op, 404, code, message, None)
        }
        Ok(()) => match inner.faults.take(op, &path) {
            Some(FaultAction::Status { status, code, retry_after }) => {
                error_response(op, status, code, "Injected fault.", retry_after.as_deref())
            }
            Some(FaultAction::ExpiredToken) => error_response(
                op,
                401,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Lifetime validation failed. The token is expired.",
                None,
            ),
            Some(FaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                apply(&inner.storage, op, &method, &path, &query, &headers, body)
            }
            Some(FaultAction::LoseResponse) => {
                let r = apply(&inner.storage, op, &method, &path, &query, &headers, body);
                inner.log.lock().unwrap_or_else(|e| e.into_inner()).push(LoggedRequest {
                    method: method.to_string(),
                    operation: op,
                    path,
                    status: 0,
                    headers: logged,
                });
                drop(r);
                return Err(Dropped);
            }
            None => apply(&inner.storage, op, &method, &path, &query, &headers, body),
        },
    };
    inner
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(LoggedRequest {
            method: method.to_string(),
            operation: op,
            path,
            status: response.status().as_u16(),
            headers: logged,
        });
    Ok(response)
}

fn ok(b: hyper::http::response::Builder, body: Bytes) -> Response<Full<Bytes>> {
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn apply(
    storage: &Storage,
    op: Operation,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    headers: &hyper::HeaderMap,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let q = |k: &str| query.get(k).cloned();
    match op {
        Operation::Container => ok(
            base(if *method == Method::PUT { 201 } else { 200 }),
            Bytes::new(),
        ),
        Operation::Batch => error_response(
            op,
            400,
            "UnsupportedOperation",
            "Blob Batch is not supported by OneLake; use DFS Path - Delete.",
            None,
        ),
        Operation::Other => error_response(
            op,
            400,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb.",
            None,
        ),
        Operation::PutBlob => {
            let content_type = header(headers, "x-ms-blob-content-type")
                .or_else(|| header(headers, "content-type"));
            match storage.put_blob(
                path,
                body,
                &conditions(headers),
                metadata(headers),
                content_type,
            ) {
                Ok(f) => ok(
                    base(201)
                        .header("etag", f.etag.as_str())
                        .header("last-modified", http_date(f.last_modified)),
                    Bytes::new(),
                ),
                Err(e) => sim_error(op, e),
            }
        }
        Operation::PutBlock => {
            let id = q("blockid").unwrap_or_default();
            storage.put_block(path, &id, body);
            ok(base(201), Bytes::new())
        }
        Operation::PutBlockList => {
            let text = String::from_utf8_lossy(&body);
            let mut ids = Vec::new();
            // Ids in document order, whatever the tag.
            let mut rest: &str = &text;
            while let Some(start) = rest.find('<') {
                let after = &rest[start + 1..];
                let Some(end) = after.find('>') else { break };
                let tag = &after[..end];
                let content = &after[end + 1..];
                if ["Latest", "Uncommitted", "Committed"].contains(&tag) {
                    if let Some(close) = content.find('<') {
                        ids.push(content[..close].trim().to_owned());
                    }
                }
                rest = content;
            }
            let content_type = header(headers, "x-ms-blob-content-type");
            match storage.put_block_list(
                path,
                &ids,
                &conditions(headers),
                metadata(headers),
                content_type,
            ) {
                Ok(f) => ok(
                    base(201)
                        .header("etag", f.etag.as_str())
                        .header("last-modified", http_date(f.last_modified)),
                    Bytes::new(),
                ),
                Err(e) => sim_error(op, e),
            }
        }
        Operation::GetBlob | Operation::HeadBlob => {
            let Some(f) = storage.get(path) else {
                if storage.is_dir(path) {
                    return ok(
                        base(200)
                            .header("x-ms-resource-type", "directory")
                            .header("content-length", "0"),
                        Bytes::new(),
                    );
                }
                return if op == Operation::HeadBlob {
                    ok(
                        base(404).header("x-ms-error-code", "BlobNotFound"),
                        Bytes::new(),
                    )
                } else {
                    error_response(
                        op,
                        404,
                        "BlobNotFound",
                        "The specified blob does not exist.",
                        None,
                    )
                };
            };
            let c = conditions(headers);
            if let Some(m) = &c.if_match {
                if m != "*" && m.trim_matches('"') != f.etag.trim_matches('"') {
                    return error_response(
                        op,
                        412,
                        "ConditionNotMet",
                        "The condition specified using HTTP conditional header(s) is not met.",
                        None,
                    );
                }
            }
            if let Some(m) = &c.if_none_match {
                if m == "*" || m.trim_matches('"') == f.etag.trim_matches('"') {
                    return ok(base(304).header("etag", f.etag.as_str()), Bytes::new());
                }
            }
            let len = f.data.len() as u64;
            let range = header(headers, "range")
                .or_else(|| header(headers, "x-ms-range"))
                .and_then(|r| parse_range(&r, len));
            let (status, data, content_range) = match range {
                Some((start, end)) => (
                    206,
                    f.data.slice(start as usize..end as usize + 1),
                    Some(format!("bytes {start}-{end}/{len}")),
                ),
                None => (200, f.data.clone(), None),
            };
            let mut b =
                file_headers(base(status), &f).header("content-length", data.len().to_string());
            if let Some(cr) = content_range {
                b = b.header("content-range", cr);
            }
            if op == Operation::HeadBlob {
                ok(b, Bytes::new())
            } else {
                ok(b, data)
            }
        }
        Operation::ListBlobs => list_blobs(storage, path, query),
        Operation::ListPaths => list_paths(storage, path, query),
        Operation::CreateFile => match storage.create_file(path, &conditions(headers)) {
            Ok(f) => ok(
                base(201)
                    .header("etag", f.etag.as_str())
                    .header("last-modified", http_date(f.last_modified))
                    .header("content-length", "0"),
                Bytes::new(),
            ),
            Err(e) => sim_error(op, e),
        },
        Operation::CreateDirectory => match storage.create_dir(path, &conditions(headers)) {
            Ok(()) => ok(base(201).header("content-length", "0"), Bytes::new()),
            Err(e) => sim_error(op, e),
        },
        Operation::Append => {
            let position = q("position").and_then(|p| p.parse().ok()).unwrap_or(0);
            match storage.append(path, position, &body) {
                Ok(()) => ok(base(202).header("content-length", "0"), Bytes::new()),
                Err(e) => sim_error(op, e),
            }
        }
        Operation::Flush => {
            let position = q("position").and_then(|p| p.parse().ok()).unwrap_or(0);
            match storage.flush(path, position, &conditions(headers)) {
                Ok(f) => ok(
                    base(200)
                        .header("etag", f.etag.as_str())
                        .header("last-modified", http_date(f.last_modified))
                        .header("content-length", "0"),
                    Bytes::new(),
                ),
                Err(e) => sim_error(op, e),
            }
        }
        Operation::Rename => {
            // "x-ms-rename-source: /{filesystem}/{path}[?sas]", percent-encoded.
            let raw = header(headers, "x-ms-rename-source").unwrap_or_default();
            let raw = raw.split('?').next().unwrap_or("");
            let source = percent_decode(raw.trim_start_matches('/'));
            match storage.rename(&source, path, &conditions(headers)) {
                Ok(()) => {
                    let b = base(201).header("content-length", "0");
                    let b = match storage.get(path) {
                        Some(f) => b
                            .header("etag", f.etag.as_str())
                            .header("last-modified", http_date(f.last_modified)),
                        None => b,
                    };
                    ok(b, Bytes::new())
                }
                Err(e) => sim_error(op, e),
            }
        }
        Operation::Delete => {
            let dfs = query.contains_key("recursive");
            let recursive = q("recursive").as_deref() == Some("true");
            match storage.delete(path, recursive, &conditions(headers)) {
                Ok(()) => ok(
                    base(if dfs { 200 } else { 202 }).header("content-length", "0"),
                    Bytes::new(),
                ),
                Err(e) if !dfs && e.status == 404 => error_response(
                    op,
                    404,
                    "BlobNotFound",
                    "The specified blob does not exist.",
                    None,
                ),
                Err(e) => sim_error(op, e),
            }
        }
    }
}

fn parse_range(range: &str, len: u64) -> Option<(u64, u64)> {
    let spec = range.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if len == 0 {
        return None;
    }
    if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        return Some((len.saturating_sub(suffix), len - 1));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len - 1
    } else {
        b.parse::<u64>().ok()?.min(len - 1)
    };
    (start <= end).then_some((start, end))
}

fn list_blobs(
    storage: &Storage,
    container: &str,
    query: &BTreeMap<String, String>,
) -> Response<Full<Bytes>> {
    let container = container.split('/').next().unwrap_or(container);
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let delimiter = query.get("delimiter").cloned().unwrap_or_default();
    let full_prefix = format!("{container}/{prefix}");
    let (files, dirs) = storage.list_prefix(&full_prefix);
    let mut blobs = String::new();
    let mut prefixes = std::collections::BTreeSet::new();
    for (path, f) in &files {
        let name = &path[container.len() + 1..];
        let rest = &name[prefix.len()..];
        if !delimiter.is_empty() {
            if let Some(i) = rest.find(delimiter.as_str()) {
                prefixes.insert(format!("{prefix}{}{delimiter}", &rest[..i]));
                continue;
            }
        }
        blobs.push_str(&format!(
            "<Blob><Name>{}</Name><Properties><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>{}</Content-Type><BlobType>BlockBlob</BlobType><ResourceType>file</ResourceType></Properties></Blob>",
            xml_escape(name),
            http_date(f.last_modified),
            xml_escape(&f.etag),
            f.data.len(),
            xml_escape(&f.content_type)
        ));
    }
    if !delimiter.is_empty() {
        for d in &dirs {
            let name = &d[container.len() + 1..];
            let rest = &name[prefix.len()..];
            let first = rest.split(delimiter.as_str()).next().unwrap_or(rest);
            if !first.is_empty() {
                prefixes.insert(format!("{prefix}{first}{delimiter}"));
            }
        }
    }
    let mut prefix_xml = String::new();
    for p in prefixes {
        prefix_xml.push_str(&format!(
            "<BlobPrefix><Name>{}</Name></BlobPrefix>",
            xml_escape(&p)
        ));
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://onelake-sim/\" ContainerName=\"{}\"><Prefix>{}</Prefix><Delimiter>{}</Delimiter><Blobs>{blobs}{prefix_xml}</Blobs><NextMarker /></EnumerationResults>",
        xml_escape(container),
        xml_escape(&prefix),
        xml_escape(&delimiter)
    );
    ok(
        base(200).header("content-type", "application/xml"),
        Bytes::from(body),
    )
}

fn list_paths(
    storage: &Storage,
    filesystem: &str,
    query: &BTreeMap<String, String>,
) -> Response<Full<Bytes>> {
    let filesystem = filesystem.split('/').next().unwrap_or(filesystem);
    let directory = query.get("directory").cloned().unwrap_or_default();
    let directory = directory.trim_matches('/');
    let recursive = query.get("recursive").map(String::as_str) == Some("true");
    let base_path = if directory.is_empty() {
        filesystem.to_owned()
    } else {
        format!("{filesystem}/{directory}")
    };
    // "Path - List" (learn.microsoft.com/rest/api/storageservices/datalakestoragegen2/path/list):
    // `directory` "filters results to paths within the specified directory. An error occurs if
    // the directory does not exist": 404 PathNotFound.
    if !directory.is_empty() && !storage.is_dir(&base_path) {
        return error_response(
            Operation::ListPaths,
            404,
            "PathNotFound",
            "The specified path does not exist.",
            None,
        );
    }
    let mut paths = Vec::new();
    if recursive {
        let (files, dirs) = storage.list_prefix(&format!("{base_path}/"));
        for d in dirs {
            paths.push(serde_json::json!({"name": &d[filesystem.len() + 1..], "isDirectory": "true", "contentLength": "0"}));
        }
        for (p, f) in files {
            paths.push(serde_json::json!({"name": &p[filesystem.len() + 1..], "contentLength": f.data.len().to_string(), "etag": f.etag, "lastModified": http_date(f.last_modified)}));
        }
    } else {
        let (files, dirs) = storage.list_dir(&base_path);
        let rel = |n: &str| {
            if directory.is_empty() {
                n.to_owned()
            } else {
                format!("{directory}/{n}")
            }
        };
        for d in dirs {
            paths.push(
                serde_json::json!({"name": rel(&d), "isDirectory": "true", "contentLength": "0"}),
            );
        }
        for (n, f) in files {
            paths.push(serde_json::json!({"name": rel(&n), "contentLength": f.data.len().to_string(), "etag": f.etag, "lastModified": http_date(f.last_modified)}));
        }
    }
    let body = serde_json::json!({ "paths": paths }).to_string();
    ok(
        base(200).header("content-type", "application/json"),
        Bytes::from(body),
    )
}
