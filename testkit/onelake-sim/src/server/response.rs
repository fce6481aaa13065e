//! Building answers: the headers every response carries (`x-ms-request-id`, `x-ms-version`,
//! `Date`), error responses in each API's format — `StorageError` JSON
//! `{"error": {"code", "message"}}` for DFS (the `StorageError` definition of the ADLS Gen2
//! specification) and `<Error><Code/><Message/></Error>` XML for Blob — with `x-ms-error-code`,
//! and no body for `HEAD`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};

use super::request::{Api, Req};
use crate::storage::{SimError, StoredFile};

pub(crate) type Answer = Response<Full<Bytes>>;

pub(crate) fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// What every answer to `req` carries.
pub(crate) struct Ctx {
    pub api: Api,
    pub version: String,
    pub head: bool,
    pub client_request_id: Option<String>,
    pub rejected: Vec<&'static str>,
}

impl Ctx {
    pub fn of(req: &Req, version: String) -> Self {
        Self {
            api: req.api,
            version,
            head: req.method == Method::HEAD,
            client_request_id: req.header("x-ms-client-request-id"),
            rejected: req.rejected_headers(),
        }
    }

    pub fn base(&self, status: u16) -> hyper::http::response::Builder {
        let mut b = Response::builder()
            .status(status)
            .header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
            .header("x-ms-version", self.version.as_str())
            .header("date", http_date(chrono::Utc::now()))
            .header("server", "onelake-sim");
        if let Some(id) = &self.client_request_id {
            b = b.header("x-ms-client-request-id", id.as_str());
        }
        if !self.rejected.is_empty() {
            b = b.header("x-ms-rejected-headers", self.rejected.join(","));
        }
        b
    }

    pub fn ok(&self, b: hyper::http::response::Builder, body: Bytes) -> Answer {
        let body = if self.head { Bytes::new() } else { body };
        b.body(Full::new(body))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }

    pub fn empty(&self, status: u16) -> Answer {
        self.ok(
            self.base(status).header("content-length", "0"),
            Bytes::new(),
        )
    }

    /// The answer to a write that stored `f` (Put Blob, Put Block List, Path - Create of a file,
    /// Path - Update append with flush and flush): its ETag and Last-Modified, no body.
    pub fn written(&self, status: u16, f: &StoredFile) -> Answer {
        self.ok(
            self.base(status)
                .header("etag", f.etag.as_str())
                .header("last-modified", http_date(f.last_modified))
                .header("x-ms-request-server-encrypted", "true")
                .header("content-length", "0"),
            Bytes::new(),
        )
    }

    /// The answer to a write that changed a path's properties or created a directory: the new
    /// ETag, no body.
    pub fn changed(&self, status: u16, etag: String) -> Answer {
        self.ok(
            self.base(status)
                .header("etag", etag)
                .header("last-modified", http_date(chrono::Utc::now()))
                .header("content-length", "0"),
            Bytes::new(),
        )
    }

    pub fn error(&self, e: &SimError) -> Answer {
        error_response(
            self.api,
            self.head,
            &self.version,
            e.status,
            e.code,
            &e.message,
            None,
        )
    }
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An error answer. `version` is the one the request asked for.
pub(crate) fn error_response(
    api: Api,
    head: bool,
    version: &str,
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<&str>,
) -> Answer {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = match api {
        Api::Dfs => serde_json::json!({"error": {"code": code, "message": format!("{message}\nRequestId:{request_id}\nTime:{}", chrono::Utc::now().to_rfc3339())}}).to_string(),
        Api::Blob => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{request_id}\nTime:{}</Message></Error>",
            xml_escape(message),
            chrono::Utc::now().to_rfc3339()
        ),
    };
    let mut b = Response::builder()
        .status(status)
        .header("x-ms-request-id", request_id)
        .header("x-ms-version", version)
        .header("date", http_date(chrono::Utc::now()))
        .header("server", "onelake-sim")
        .header("x-ms-error-code", code)
        .header(
            "content-type",
            match api {
                Api::Dfs => "application/json;charset=utf-8",
                Api::Blob => "application/xml",
            },
        );
    if status == 401 {
        b = b.header("www-authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com");
    }
    if let Some(r) = retry_after {
        b = b.header("retry-after", r);
    }
    // A HEAD answer has no body (RFC 9110): the error is in x-ms-error-code.
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The properties a read of a file answers with (Get Blob / Get Blob Properties / Path - Read /
/// Path - Get Properties).
pub(crate) fn file_headers(
    b: hyper::http::response::Builder,
    f: &StoredFile,
    api: Api,
) -> hyper::http::response::Builder {
    let mut b = b
        .header("etag", f.etag.as_str())
        .header("last-modified", http_date(f.last_modified))
        .header("x-ms-creation-time", http_date(f.created))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-resource-type", "file")
        .header("x-ms-server-encrypted", "true")
        .header("accept-ranges", "bytes")
        .header("content-type", f.content_type.as_str());
    for (k, v) in &f.http_headers {
        b = b.header(k.as_str(), v.as_str());
    }
    match api {
        Api::Blob => {
            for (k, v) in &f.metadata {
                b = b.header(format!("x-ms-meta-{k}"), v.as_str());
            }
        }
        Api::Dfs => {
            if let Some(p) = encode_properties(&f.metadata) {
                b = b.header("x-ms-properties", p);
            }
        }
    }
    b
}

/// Metadata as `x-ms-properties` ("n1=base64(v1),n2=base64(v2)").
pub(crate) fn encode_properties(
    metadata: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    use base64::Engine;
    if metadata.is_empty() {
        return None;
    }
    Some(
        metadata
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}
