//! A landing zone in OneLake or an ADLS Gen2 account.
//!
//! Blob operations (get, head, list, put with `If-None-Match` / `If-Match`) go through object_store's
//! Azure client. Rename and delete are DFS (ADLS Gen2) calls made here over the same HTTP client
//! and credential provider: object_store's Azure delete is a Blob Batch request, which OneLake
//! rejects, and it has no DFS rename at all.
//!
//! OneLake is addressed as account `onelake`, container = workspace, and every path prefixed with
//! `<item>/Files/LandingZone/` (object_store's URL parser keeps only account and container).
//! `endpoint` replaces both service roots (the simulator serves Blob and DFS on one port);
//! `use_emulator` talks to Azurite (Blob only: `publish = "put"`, deletes through Blob).

mod credential;
mod http;

use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderValue, Method, StatusCode};
use async_trait::async_trait;
use bytes::Bytes;
use object_store::azure::{
    AzureAuthorizer, AzureCredentialProvider, MicrosoftAzure, MicrosoftAzureBuilder,
};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

pub use self::credential::{Invalidate, TokenSource, TokenSourceProvider, STORAGE_SCOPE};
pub use self::http::{retry_after, HttpRetry, RetryObserver};
use super::{LandingStore, Listing, Object, ObjectInfo, PutMode, StoreError, StoreErrorKind};
use crate::auth::AuthConfig;
use crate::error::SinkError;
use crate::location::AzureLocation;

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Connection settings of a remote landing zone.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Replaces the Blob and DFS service roots, e.g. `http://127.0.0.1:10100` for the simulator.
    pub endpoint: Option<String>,
    /// Talk to Azurite (Blob API only, its well-known account unless `auth` says otherwise).
    pub use_emulator: bool,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of throttled or failed requests.
    pub retry: HttpRetry,
    /// A token source to use instead of `auth` (library users, tests).
    pub token_source: Option<Arc<dyn TokenSource>>,
    /// Told of every retry of the HTTP layer (the sink's telemetry counts them).
    pub on_retry: Option<RetryObserver>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            use_emulator: false,
            request_timeout: Duration::from_secs(60),
            retry: HttpRetry::default(),
            token_source: None,
            on_retry: None,
        }
    }
}

/// OneLake or ADLS Gen2 through Blob (object_store) and DFS (our own requests).
pub struct RemoteStore {
    location: AzureLocation,
    blob: MicrosoftAzure,
    http: HttpClient,
    credentials: AzureCredentialProvider,
    invalidate: Option<Arc<dyn Invalidate>>,
    dfs_root: String,
    emulator: bool,
    auth_method: &'static str,
    /// The configured `bearer_token`, which no one refreshes.
    fixed_token: bool,
}

impl std::fmt::Debug for RemoteStore {
    // Only the location: object_store's clients print their credentials in `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("location", &self.location())
            .field("auth", &self.auth_method)
            .finish()
    }
}

impl RemoteStore {
    /// Connects (lazily: no request is made here).
    pub fn new(
        location: AzureLocation,
        auth: &AuthConfig,
        options: &RemoteOptions,
    ) -> Result<Self, SinkError> {
        let client_options = ClientOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(Duration::from_secs(10))
            .with_allow_http(
                options
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http:")),
            );
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&location.account)
            .with_container_name(&location.container)
            .with_client_options(client_options.clone())
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .with_http_connector(http::RetryingConnector {
                retry: options.retry.clone(),
                observer: options.on_retry.clone(),
            });
        if location.onelake {
            builder = builder.with_use_fabric_endpoint(true);
        }
        let mut auth = auth.clone();
        if options.use_emulator {
            // Azurite: path-style URLs with the account first, and its well-known account key
            // unless `auth` says otherwise. (object_store's own emulator mode reads the address
            // from a process-wide environment variable, which concurrent stores cannot share.)
            let root = options
                .endpoint
                .as_deref()
                .unwrap_or("http://127.0.0.1:10000")
                .trim_end_matches('/');
            builder = builder
                .with_account(AZURITE_ACCOUNT)
                .with_endpoint(format!("{root}/{AZURITE_ACCOUNT}"));
            if auth == AuthConfig::default() {
                auth = AuthConfig::AccessKey {
                    account_key: mirror_core::config::Secret::new(AZURITE_KEY),
                };
            }
        } else if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
        }
        let auth = &auth;
        let resolved = credential::resolve(auth, builder, options.token_source.clone())
            .map_err(SinkError::Config)?;
        let (blob, invalidate) = match resolved {
            credential::Resolved::Builtin(b) => (b.build(), None),
            credential::Resolved::Custom(b, provider, invalidate) => {
                (b.with_credentials(provider).build(), invalidate)
            }
        };
        let blob = blob.map_err(|e| SinkError::Config(format!("landing zone: {e}")))?;
        let credentials = blob.credentials().clone();
        let http = http::RetryingConnector {
            retry: options.retry.clone(),
            observer: options.on_retry.clone(),
        };
        let http = object_store::client::HttpConnector::connect(&http, &client_options)
            .map_err(|e| SinkError::Config(format!("landing zone: {e}")))?;
        let dfs_root = match &options.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None if location.onelake => "https://onelake.dfs.fabric.microsoft.com".to_owned(),
            None => format!("https://{}.dfs.core.windows.net", location.account),
        };
        Ok(Self {
            location,
            blob,
            http,
            credentials,
            invalidate,
            dfs_root,
            emulator: options.use_emulator,
            auth_method: auth.method(),
            fixed_token: matches!(auth, AuthConfig::BearerToken { .. })
                && options.token_source.is_none(),
        })
    }

    fn full_path(&self, rel: &str) -> String {
        super::join(&[&self.location.prefix, rel])
    }

    fn object_path(&self, rel: &str) -> Path {
        Path::from(self.full_path(rel))
    }

    fn dfs_url(&self, rel: &str) -> String {
        let mut url = format!(
            "{}/{}",
            self.dfs_root,
            encode_segment(&self.location.container)
        );
        for part in self.full_path(rel).split('/').filter(|p| !p.is_empty()) {
            url.push('/');
            url.push_str(&encode_segment(part));
        }
        url
    }

    /// `x-ms-rename-source` for `rel`.
    ///
    /// On OneLake, the full URL of the source (`https://onelake.dfs.fabric.microsoft.com/<ws>/
    /// <item>/Files/...`, or the configured endpoint): both writers known to work against
    /// OneLake in production send this form — Microsoft's open-mirroring Python SDK
    /// (`OpenMirroringClient.rename_file`, fabric-toolbox `OpenMirroringPythonSDK`, which notes
    /// that the Azure SDK's own rename "doesn't handle rename properly for onelake") and the
    /// MongoDB_Fabric_Mirroring app — while no public source shows the specification's
    /// `/{filesystem}/{path}` form working on OneLake (a third-party report of the SDK's rename
    /// failing there with `SourcePathNotFound` is the only evidence either way). On an ADLS Gen2
    /// account the documented path form (`RenameSource` in the ADLS Gen2 specification,
    /// azure-rest-api-specs `Microsoft.StorageDataLake/.../DataLakeStorage.json`: "The value must
    /// have the following format: \"/{filesystem}/{path}\"").
    fn rename_source(&self, rel: &str) -> String {
        if self.location.onelake {
            return self.dfs_url(rel);
        }
        format!(
            "/{}/{}",
            encode_segment(&self.location.container),
            self.full_path(rel)
                .split('/')
                .map(encode_segment)
                .collect::<Vec<_>>()
                .join("/")
        )
    }

    /// Runs `op`, and once more with a fresh token after a 401.
    async fn with_auth_retry<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        match op().await {
            Err(e) if e.kind == StoreErrorKind::Unauthenticated => {
                if let Some(i) = &self.invalidate {
                    i.invalidate();
                }
                op().await.map_err(|mut e| {
                    if e.kind == StoreErrorKind::Unauthenticated {
                        e.message = if self.fixed_token {
                            format!(
                                "{} — the landing zone rejected the credential (auth method \
                                 `bearer_token`: a fixed token, never refreshed): obtain a new \
                                 token for {STORAGE_SCOPE}",
                                e.message
                            )
                        } else {
                            format!(
                                "{} — the landing zone rejected the credential (auth method \
                                 `{}`) twice, with a fresh token the second time: check the \
                                 tenant, client id and secret, and that the token is for \
                                 {STORAGE_SCOPE}",
                                e.message, self.auth_method
                            )
                        };
                    }
                    e
                })
            }
            other => other,
        }
    }

    fn map_error(&self, op: &'static str, rel: &str, e: object_store::Error) -> StoreError {
        use object_store::Error as E;
        let path = rel.to_owned();
        let message = error_chain(&e);
        let kind = match &e {
            E::NotFound { .. } => StoreErrorKind::NotFound,
            E::AlreadyExists { .. } => StoreErrorKind::AlreadyExists,
            E::Precondition { .. } => StoreErrorKind::Precondition,
            E::Unauthenticated { .. } => StoreErrorKind::Unauthenticated,
            E::PermissionDenied { .. } => StoreErrorKind::Forbidden,
            _ => classify_message(&e, &message),
        };
        let message = self.hint(kind, op, message);
        StoreError::new(kind, op, path, message)
    }

    fn hint(&self, kind: StoreErrorKind, op: &str, message: String) -> String {
        match kind {
            StoreErrorKind::Forbidden => format!(
                "{message} — permission denied on {}: the identity (auth method `{}`) needs \
                 write access to the landing zone: a Contributor (or higher) role on the Fabric \
                 workspace, or `Storage Blob Data Contributor` on an ADLS Gen2 account",
                self.location(),
                self.auth_method
            ),
            StoreErrorKind::NotFound if op == "put" || op == "list" => format!(
                "{message} — {} does not exist: check the workspace and item (mirrored database) \
                 names or the storage account and filesystem in `landing_zone`",
                self.location()
            ),
            _ => message,
        }
    }

    async fn dfs_request(
        &self,
        method: Method,
        rel: &str,
        headers: &[(&'static str, String)],
    ) -> Result<StatusCode, StoreError> {
        self.dfs_request_with_query(method, rel, "", headers)
            .await
            .map(|(status, _)| status)
    }

    /// A DFS request with `query` (`?...` or empty); returns the status and the response headers.
    async fn dfs_request_with_query(
        &self,
        method: Method,
        rel: &str,
        query: &str,
        headers: &[(&'static str, String)],
    ) -> Result<(StatusCode, ::http::HeaderMap), StoreError> {
        let op = if method == Method::DELETE {
            "delete"
        } else {
            "rename"
        };
        let url = format!("{}{query}", self.dfs_url(rel));
        self.dfs_send(method, op, rel, &url, headers).await
    }

    /// Sends a DFS request to `url`, authorized; `op` and `rel` name it in errors.
    async fn dfs_send(
        &self,
        method: Method,
        op: &'static str,
        rel: &str,
        url: &str,
        headers: &[(&'static str, String)],
    ) -> Result<(StatusCode, ::http::HeaderMap), StoreError> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            StoreError::new(StoreErrorKind::Unauthenticated, op, rel, error_chain(&e))
        })?;
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = method;
        *request.uri_mut() = url.parse().map_err(|e| {
            StoreError::new(StoreErrorKind::Permanent, op, rel, format!("bad URL: {e}"))
        })?;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| StoreError::new(StoreErrorKind::Permanent, op, rel, e.to_string()))?;
            request.headers_mut().insert(*name, value);
        }
        request.headers_mut().insert(
            ::http::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        AzureAuthorizer::new(&credential, &self.location.account)
            .try_authorize(&mut request)
            .map_err(|e| StoreError::new(StoreErrorKind::Permanent, op, rel, error_chain(&e)))?;
        let response = self.http.execute(request).await.map_err(|e| {
            StoreError::new(
                StoreErrorKind::Transient,
                op,
                rel,
                format!("request failed, outcome unknown: {e}"),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok((status, response.headers().clone()));
        }
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .into_body()
            .bytes()
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let kind = match status.as_u16() {
            404 => StoreErrorKind::NotFound,
            409 => StoreErrorKind::AlreadyExists,
            412 => StoreErrorKind::Precondition,
            401 => StoreErrorKind::Unauthenticated,
            403 => StoreErrorKind::Forbidden,
            408 | 429 | 500..=599 => StoreErrorKind::Transient,
            _ => StoreErrorKind::Permanent,
        };
        let message = format!(
            "HTTP {status} {code} {}",
            body.chars().take(300).collect::<String>()
        );
        Err(StoreError::new(kind, op, rel, self.hint(kind, op, message)))
    }
}

/// Undoes object_store's percent-encoding of a path part (`a%252Fb` in a key is the name `a%2Fb`).
fn decode_part(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| part.to_owned())
}

fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Classifies an object_store error that is not one of its typed variants.
fn classify_message(e: &object_store::Error, message: &str) -> StoreErrorKind {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return StoreErrorKind::Transient;
        }
        cause = c.source();
    }
    // object_store reports other HTTP failures as "... status code: 503 Service Unavailable ...".
    let status = message
        .split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|digits| digits.parse::<u16>().ok());
    match status {
        Some(408 | 429) | Some(500..=599) => StoreErrorKind::Transient,
        Some(401) => StoreErrorKind::Unauthenticated,
        Some(403) => StoreErrorKind::Forbidden,
        Some(404) => StoreErrorKind::NotFound,
        Some(_) => StoreErrorKind::Permanent,
        None => StoreErrorKind::Transient,
    }
}

#[async_trait]
impl LandingStore for RemoteStore {
    fn location(&self) -> String {
        if self.location.onelake {
            format!(
                "https://onelake.dfs.fabric.microsoft.com/{}/{}",
                self.location.container, self.location.prefix
            )
        } else {
            format!(
                "https://{}.dfs.core.windows.net/{}/{}",
                self.location.account, self.location.container, self.location.prefix
            )
        }
    }

    async fn get(&self, path: &str) -> Result<Option<Object>, StoreError> {
        self.with_auth_retry(|| async {
            let location = self.object_path(path);
            let result = match self.blob.get_opts(&location, GetOptions::default()).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.map_error("get", path, e)),
            };
            let etag = result.meta.e_tag.clone().unwrap_or_default();
            let bytes = result
                .bytes()
                .await
                .map_err(|e| self.map_error("get", path, e))?;
            Ok(Some(Object { bytes, etag }))
        })
        .await
    }

    async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        self.with_auth_retry(|| async {
            if range.is_empty() {
                return Ok(Some(Bytes::new()));
            }
            match self
                .blob
                .get_range(&self.object_path(path), range.clone())
                .await
            {
                Ok(bytes) => Ok(Some(bytes)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.map_error("get_range", path, e)),
            }
        })
        .await
    }

    async fn head(&self, path: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.with_auth_retry(|| async {
            match self.blob.head(&self.object_path(path)).await {
                Ok(meta) => Ok(Some(ObjectInfo {
                    size: meta.size,
                    etag: meta.e_tag.unwrap_or_default(),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.map_error("head", path, e)),
            }
        })
        .await
    }

    async fn list(&self, dir: &str) -> Result<Listing, StoreError> {
        self.with_auth_retry(|| async {
            let prefix = self.object_path(dir);
            let result = self
                .blob
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|e| self.map_error("list", dir, e))?;
            // Names as the other operations take them: object_store percent-encodes some
            // characters of a name (`%`, `[`, `~`, ...) into the object's key, and hands the key
            // back from a listing.
            let mut listing = Listing::default();
            for p in result.common_prefixes {
                if let Some(name) = p.filename() {
                    listing.dirs.push(decode_part(name));
                }
            }
            for o in result.objects {
                if let Some(name) = o.location.filename() {
                    listing.files.push((decode_part(name), o.size));
                }
            }
            listing.files.sort();
            listing.dirs.sort();
            Ok(listing)
        })
        .await
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<String, StoreError> {
        self.with_auth_retry(|| async {
            let mode = match &mode {
                PutMode::Overwrite => object_store::PutMode::Overwrite,
                PutMode::Create => object_store::PutMode::Create,
                PutMode::IfMatch(etag) => object_store::PutMode::Update(UpdateVersion {
                    e_tag: Some(etag.clone()),
                    version: None,
                }),
            };
            let result = self
                .blob
                .put_opts(
                    &self.object_path(path),
                    PutPayload::from(bytes.clone()),
                    PutOptions {
                        mode,
                        ..PutOptions::default()
                    },
                )
                .await
                .map_err(|e| self.map_error("put", path, e))?;
            Ok(result.e_tag.unwrap_or_default())
        })
        .await
    }

    async fn rename_no_replace(&self, from: &str, to: &str) -> Result<(), StoreError> {
        if self.emulator {
            return Err(StoreError::new(
                StoreErrorKind::Permanent,
                "rename",
                to,
                "the Azure Storage emulator has no DFS endpoint: set publish = \"put\"",
            ));
        }
        let source = self.rename_source(from);
        self.with_auth_retry(|| async {
            self.dfs_request(
                Method::PUT,
                to,
                &[
                    ("x-ms-rename-source", source.clone()),
                    ("if-none-match", "*".to_owned()),
                ],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.with_auth_retry(|| async {
            if self.emulator {
                return match self.blob.delete(&self.object_path(path)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.map_error("delete", path, e)),
                };
            }
            match self.dfs_request(Method::DELETE, path, &[]).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind == StoreErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// DFS "Path - List" of the landing zone's folder, one entry at most: it fails with 404 when
    /// the folder (or the filesystem, the workspace) does not exist. Azurite (Blob only) is asked
    /// for its container.
    async fn root_exists(&self) -> Result<bool, StoreError> {
        if self.emulator {
            return match self.list("").await {
                Ok(_) => Ok(true),
                Err(e) if e.kind == StoreErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            };
        }
        let mut url = format!(
            "{}/{}?resource=filesystem&recursive=false&maxResults=1",
            self.dfs_root,
            encode_segment(&self.location.container)
        );
        let prefix = self.location.prefix.trim_matches('/');
        if !prefix.is_empty() {
            url.push_str("&directory=");
            url.push_str(
                &prefix
                    .split('/')
                    .map(encode_segment)
                    .collect::<Vec<_>>()
                    .join("%2F"),
            );
        }
        let probe = self
            .with_auth_retry(|| self.dfs_send(Method::GET, "list", "", &url, &[]))
            .await;
        match probe {
            Ok(_) => Ok(true),
            Err(e) if e.kind == StoreErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn credential(&self) -> Result<Option<String>, StoreError> {
        use object_store::azure::AzureCredential as C;
        let credential = self.credentials.get_credential().await.map_err(|e| {
            StoreError::new(
                StoreErrorKind::Unauthenticated,
                "token",
                "",
                error_chain(&e),
            )
        })?;
        Ok(Some(match &*credential {
            C::BearerToken(_) => format!("a bearer token (auth method `{}`)", self.auth_method),
            C::AccessKey(_) => "an account key".to_owned(),
            C::SASToken(_) => "a shared access signature".to_owned(),
        }))
    }

    async fn delete_dir(&self, dir: &str) -> Result<(), StoreError> {
        if dir.trim_matches('/').is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Permanent,
                "delete",
                dir,
                "refusing to delete the landing zone itself",
            ));
        }
        if self.emulator {
            // Blob only (Azurite): no directories, delete every blob below the prefix.
            use futures::TryStreamExt;
            let prefix = self.object_path(dir);
            let objects: Vec<_> = self
                .blob
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| self.map_error("list", dir, e))?;
            for o in objects {
                match self.blob.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.map_error("delete", dir, e)),
                }
            }
            return Ok(());
        }
        // DFS `Path - Delete` with `recursive=true`: one request on a hierarchical namespace,
        // unless the service pages the deletion (`x-ms-continuation`), which is then repeated.
        let mut continuation: Option<String> = None;
        loop {
            let query = match &continuation {
                None => "?recursive=true".to_owned(),
                Some(c) => format!("?recursive=true&continuation={}", encode_segment(c)),
            };
            let result = self
                .with_auth_retry(|| self.dfs_request_with_query(Method::DELETE, dir, &query, &[]))
                .await;
            match result {
                Ok((_, headers)) => {
                    continuation = headers
                        .get("x-ms-continuation")
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned);
                    if continuation.is_none() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind == StoreErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
