//! What a request asks for: which API it speaks (Blob or DFS), which operation, and the
//! request headers and query parameters the operations share (conditions, leases, properties,
//! the version header, the rename source).
//!
//! On the service the two APIs have their own hosts (`onelake.blob...` and `onelake.dfs...`);
//! the simulator serves both on one port, so a request is taken as DFS when it carries anything
//! only the DFS API defines (`resource`, `action`, `recursive`, `mode`, `upn`, `paginated`,
//! `x-ms-rename-source`, `PATCH`, a `POST` lease) or asks for JSON (`Accept: application/json`,
//! what the Azure SDKs' DFS clients send), else as Blob. The API decides the error body (JSON for
//! DFS, XML for Blob) and the status codes that differ (Delete: 200 vs 202).

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::{HeaderMap, Method};

use crate::faults::Operation;
use crate::lease::LeaseRequest;
use crate::storage::{Conditions, SimError, WriteProps};

/// The REST API a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// Blob service (XML errors).
    Blob,
    /// Data Lake Storage Gen2 (JSON errors).
    Dfs,
}

/// One request, parsed.
pub(crate) struct Req {
    pub method: Method,
    /// `<container>/<path>`, percent-decoded, without surrounding slashes.
    pub path: String,
    /// Query parameters, names lower-cased, values decoded.
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub api: Api,
    pub op: Operation,
}

/// Service versions a client may send in `x-ms-version`: the Blob service versions since
/// 2009-09-19 and every version the Azure SDKs for Python list as supported
/// (`azure-storage-file-datalake` / `azure-storage-blob` `_serialize._SUPPORTED_API_VERSIONS`);
/// "Versioning for Azure Storage" (learn.microsoft.com/rest/api/storageservices/versioning-for-the-azure-storage-services).
/// A request without the header is served at the latest version, as the MongoDB_Fabric_Mirroring
/// app's requests (which send none) are by OneLake.
const VERSIONS: &[&str] = &[
    "2009-09-19",
    "2011-08-18",
    "2012-02-12",
    "2013-08-15",
    "2014-02-14",
    "2015-02-21",
    "2015-04-05",
    "2015-07-08",
    "2015-12-11",
    "2016-05-31",
    "2017-04-17",
    "2017-07-29",
    "2017-11-09",
    "2018-03-28",
    "2018-06-17",
    "2018-11-09",
    "2019-02-02",
    "2019-07-07",
    "2019-10-10",
    "2019-12-12",
    "2020-02-10",
    "2020-04-08",
    "2020-06-12",
    "2020-08-04",
    "2020-10-02",
    "2020-12-06",
    "2021-02-12",
    "2021-04-10",
    "2021-06-08",
    "2021-08-06",
    "2021-10-04",
    "2021-12-02",
    "2022-11-02",
    "2023-01-03",
    "2023-05-03",
    "2023-08-03",
    "2023-11-03",
    "2024-02-04",
    "2024-05-04",
    "2024-08-04",
    "2024-11-04",
    "2025-01-05",
    "2025-05-05",
    "2025-07-05",
    "2025-11-05",
    "2026-02-06",
    "2026-04-06",
    "2026-06-06",
    "2026-10-06",
];

/// The version answered when a request names none.
pub(crate) const LATEST_VERSION: &str = "2026-10-06";

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

/// A request header's value; an empty one counts as absent (the Azure SDKs send e.g.
/// `x-ms-source-lease-id:` with no value when no lease is given, which the service ignores).
pub(crate) fn header(req: &HeaderMap, name: &str) -> Option<String> {
    req.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
}

fn api_of(method: &Method, query: &BTreeMap<String, String>, headers: &HeaderMap) -> Api {
    const DFS_QUERY: &[&str] = &[
        "resource",
        "action",
        "recursive",
        "mode",
        "upn",
        "paginated",
    ];
    let dfs = DFS_QUERY.iter().any(|k| query.contains_key(*k))
        || headers.contains_key("x-ms-rename-source")
        || *method == Method::PATCH
        || (*method == Method::POST && headers.contains_key("x-ms-lease-action"))
        || header(headers, "accept").is_some_and(|a| a.contains("application/json"));
    if dfs {
        Api::Dfs
    } else {
        Api::Blob
    }
}

fn classify(
    method: &Method,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
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
        // Get Blob Metadata answers headers only, as Get Blob Properties does.
        Method::GET if q("comp") == Some("metadata") => Operation::HeadBlob,
        Method::GET => Operation::GetBlob,
        Method::HEAD => Operation::HeadBlob,
        Method::PUT if headers.contains_key("x-ms-rename-source") => Operation::Rename,
        Method::PUT if q("restype") == Some("container") || q("resource") == Some("filesystem") => {
            Operation::Container
        }
        Method::PUT if q("comp") == Some("block") => Operation::PutBlock,
        Method::PUT if q("comp") == Some("blocklist") => Operation::PutBlockList,
        Method::PUT if q("comp") == Some("lease") => Operation::Lease,
        Method::PUT if matches!(q("comp"), Some("metadata" | "properties")) => {
            Operation::SetProperties
        }
        Method::PUT if q("resource") == Some("file") => Operation::CreateFile,
        Method::PUT if q("resource") == Some("directory") => Operation::CreateDirectory,
        Method::PUT if q("comp").is_none() && q("resource").is_none() => Operation::PutBlob,
        Method::PATCH if q("action") == Some("append") => Operation::Append,
        Method::PATCH if q("action") == Some("flush") => Operation::Flush,
        Method::PATCH if q("action") == Some("setProperties") => Operation::SetProperties,
        Method::DELETE => Operation::Delete,
        Method::POST if q("comp") == Some("batch") => Operation::Batch,
        Method::POST if headers.contains_key("x-ms-lease-action") => Operation::Lease,
        _ => Operation::Other,
    }
}

impl Req {
    pub fn new(
        method: Method,
        raw_path: &str,
        raw_query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let path = percent_decode(raw_path.trim_start_matches('/').trim_end_matches('/'));
        let query = parse_query(raw_query);
        let api = api_of(&method, &query, &headers);
        let op = classify(&method, &query, &headers, &path);
        Self {
            method,
            path,
            query,
            headers,
            body,
            api,
            op,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter (`true`/`false`, any case); 400 `InvalidQueryParameterValue`
    /// for anything else.
    pub fn bool_param(&self, name: &str) -> Result<Option<bool>, SimError> {
        match self.q(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(invalid_query(name)),
        }
    }

    /// A non-negative integer query parameter.
    pub fn u64_param(&self, name: &str) -> Result<Option<u64>, SimError> {
        self.q(name)
            .map(|v| v.trim().parse::<u64>().map_err(|_| invalid_query(name)))
            .transpose()
    }

    /// The `x-ms-version` the request asks for (400 `InvalidHeaderValue` for one the service
    /// does not know); the latest when absent.
    pub fn version(&self) -> Result<String, SimError> {
        match self.header("x-ms-version") {
            None => Ok(LATEST_VERSION.to_owned()),
            Some(v) if VERSIONS.contains(&v.trim()) => Ok(v.trim().to_owned()),
            Some(_) => Err(invalid_header("x-ms-version")),
        }
    }

    fn date_header(&self, name: &str) -> Result<Option<DateTime<Utc>>, SimError> {
        self.header(name)
            .map(|v| {
                DateTime::parse_from_rfc2822(v.trim())
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| invalid_header(name))
            })
            .transpose()
    }

    /// `If-Match`, `If-None-Match`, `If-(Un)Modified-Since` and `x-ms-lease-id`.
    pub fn conditions(&self) -> Result<Conditions, SimError> {
        self.conditions_named("", "x-ms-lease-id")
    }

    /// The rename source's conditions: `x-ms-source-if-*` and `x-ms-source-lease-id`.
    pub fn source_conditions(&self) -> Result<Conditions, SimError> {
        self.conditions_named("x-ms-source-", "x-ms-source-lease-id")
    }

    fn conditions_named(&self, prefix: &str, lease: &str) -> Result<Conditions, SimError> {
        Ok(Conditions {
            if_match: self.header(&format!("{prefix}if-match")),
            if_none_match: self.header(&format!("{prefix}if-none-match")),
            if_modified_since: self.date_header(&format!("{prefix}if-modified-since"))?,
            if_unmodified_since: self.date_header(&format!("{prefix}if-unmodified-since"))?,
            lease_id: self.header(lease),
        })
    }

    /// `x-ms-meta-*` headers (Blob metadata).
    pub fn meta_headers(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((name.to_owned(), v.to_str().ok()?.to_owned()))
            })
            .collect()
    }

    /// `x-ms-properties`: "n1=v1, n2=v2, ..., where each value is a base64 encoded string"
    /// (Path - Create / Path - Update); 400 `InvalidHeaderValue` when malformed,
    /// `InvalidPropertyName` for an empty name.
    pub fn properties(&self) -> Result<Option<BTreeMap<String, String>>, SimError> {
        let Some(raw) = self.header("x-ms-properties") else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid_header("x-ms-properties"))?;
            if name.trim().is_empty() {
                return Err(SimError::new(
                    400,
                    "InvalidPropertyName",
                    "A property name cannot be empty.",
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| invalid_header("x-ms-properties"))?;
            let value = String::from_utf8(bytes).map_err(|_| invalid_header("x-ms-properties"))?;
            out.insert(name.trim().to_owned(), value);
        }
        Ok(Some(out))
    }

    /// Content type and headers of a write, from `x-ms-content-*` / `x-ms-cache-control` (DFS
    /// and `Put Block List`) or `x-ms-blob-*` (Blob), and the metadata.
    pub fn write_props(&self, metadata: Option<BTreeMap<String, String>>) -> WriteProps {
        let mut http_headers = BTreeMap::new();
        for name in [
            "cache-control",
            "content-encoding",
            "content-language",
            "content-disposition",
        ] {
            let v = self
                .header(&format!("x-ms-{name}"))
                .or_else(|| self.header(&format!("x-ms-blob-{name}")));
            if let Some(v) = v {
                http_headers.insert(name.to_owned(), v);
            }
        }
        WriteProps {
            metadata,
            content_type: self
                .header("x-ms-content-type")
                .or_else(|| self.header("x-ms-blob-content-type")),
            http_headers,
        }
    }

    /// A lease request from `x-ms-lease-*` headers.
    pub fn lease_request(&self) -> Result<LeaseRequest, SimError> {
        let action = self
            .header("x-ms-lease-action")
            .ok_or_else(|| missing_header("x-ms-lease-action"))?;
        Ok(LeaseRequest {
            action: action.trim().to_ascii_lowercase(),
            lease_id: self.header("x-ms-lease-id"),
            proposed_id: self.header("x-ms-proposed-lease-id"),
            duration: self.header("x-ms-lease-duration"),
            break_period: self.header("x-ms-lease-break-period"),
        })
    }

    /// Headers OneLake ignores and reports in `x-ms-rejected-headers` ("OneLake and ADLS Gen2
    /// API parity", learn.microsoft.com/fabric/onelake/onelake-api-parity: ownership and
    /// permissions, encryption scopes and keys, access tiers).
    pub fn rejected_headers(&self) -> Vec<&'static str> {
        const IGNORED: &[&str] = &[
            "x-ms-owner",
            "x-ms-group",
            "x-ms-permissions",
            "x-ms-acl",
            "x-ms-umask",
            "x-ms-encryption-key",
            "x-ms-encryption-key-sha256",
            "x-ms-encryption-algorithm",
            "x-ms-encryption-scope",
            "x-ms-encryption-context",
            "x-ms-access-tier",
        ];
        IGNORED
            .iter()
            .copied()
            .filter(|h| self.headers.contains_key(*h))
            .collect()
    }
}

pub(crate) fn invalid_query(name: &str) -> SimError {
    SimError::new(
        400,
        "InvalidQueryParameterValue",
        format!("Value for one of the query parameters specified in the request URI is invalid. ({name})"),
    )
}

pub(crate) fn missing_query(name: &str) -> SimError {
    SimError::new(
        400,
        "MissingRequiredQueryParameter",
        format!("A query parameter that's mandatory for this request is not specified. ({name})"),
    )
}

pub(crate) fn invalid_header(name: &str) -> SimError {
    SimError::new(
        400,
        "InvalidHeaderValue",
        format!("The value for one of the HTTP headers is not in the correct format. ({name})"),
    )
}

pub(crate) fn missing_header(name: &str) -> SimError {
    SimError::new(
        400,
        "MissingRequiredHeader",
        format!("An HTTP header that's mandatory for this request is not specified. ({name})"),
    )
}

/// Hosts a rename source may name besides the simulator's own: OneLake's DFS and Blob
/// endpoints, global (`onelake.dfs.fabric.microsoft.com`) and regional
/// (`<region>-onelake.dfs.fabric.microsoft.com`).
fn is_onelake_host(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    ["dfs", "blob"].iter().any(|api| {
        let global = format!("onelake.{api}.fabric.microsoft.com");
        host == global || host.ends_with(&format!("-{global}"))
    })
}

/// The source path (`<container>/<path>`) of `x-ms-rename-source`.
///
/// The ADLS Gen2 specification (`RenameSource` in `DataLakeStorage.json`) gives the form
/// "/{filesystem}/{path}", percent-encoded, optionally followed by a SAS query. OneLake also
/// takes the source as a full URL of its own endpoint — what Microsoft's open-mirroring Python
/// SDK (`OpenMirroringClient.rename_file`: `source_path = f"{self.host}/{folder_path}/{old}"`)
/// and the MongoDB_Fabric_Mirroring app send in production — so both forms are accepted, the URL
/// with a OneLake host or the host the simulator was reached on (`own_host`). Any other URL is
/// 400 `InvalidSourceUri` ("The source URI is invalid.", ADLS Gen2 error codes).
pub(crate) fn rename_source(raw: &str, own_host: Option<&str>) -> Result<String, SimError> {
    let raw = raw.trim();
    let invalid = || SimError::new(400, "InvalidSourceUri", "The source URI is invalid.");
    let path = match raw.split_once("://") {
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
                return Err(invalid());
            }
            let (host, path) = rest.split_once('/').ok_or_else(invalid)?;
            let own = own_host.is_some_and(|h| h.eq_ignore_ascii_case(host));
            if !own && !is_onelake_host(host) {
                return Err(invalid());
            }
            path
        }
        None => raw,
    };
    let path = path.split('?').next().unwrap_or("");
    let path = percent_decode(path.trim_start_matches('/'));
    if path.is_empty() || !path.contains('/') {
        return Err(invalid());
    }
    Ok(path.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_sources_in_every_form_onelake_takes() {
        let own = Some("127.0.0.1:4000");
        for raw in [
            "/ws/item/Files/a%20b.parquet",
            "https://onelake.dfs.fabric.microsoft.com/ws/item/Files/a%20b.parquet",
            "https://westeurope-onelake.dfs.fabric.microsoft.com/ws/item/Files/a%20b.parquet",
            "https://onelake.blob.fabric.microsoft.com/ws/item/Files/a%20b.parquet?sv=x",
            "http://127.0.0.1:4000/ws/item/Files/a%20b.parquet",
        ] {
            assert_eq!(
                rename_source(raw, own).unwrap(),
                "ws/item/Files/a b.parquet",
                "{raw}"
            );
        }
        for raw in [
            "https://example.com/ws/item/Files/a",
            "ftp://onelake.dfs.fabric.microsoft.com/ws/a",
            "https://onelake.dfs.fabric.microsoft.com",
            "/",
        ] {
            assert_eq!(
                rename_source(raw, own).unwrap_err().code,
                "InvalidSourceUri",
                "{raw}"
            );
        }
    }
}
