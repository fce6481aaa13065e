//! DFS (ADLS Gen2) operations over the storage, as the ADLS Gen2 REST specification defines them
//! (azure-rest-api-specs, `specification/storage/data-plane/Microsoft.StorageDataLake/*/DataLakeStorage.json`,
//! operations `Path_Create`, `Path_Update`, `Path_Lease`, `Path_Read`, `Path_GetProperties`,
//! `Path_Delete`, `FileSystem_ListPaths`), with OneLake's differences ("OneLake and ADLS Gen2 API
//! parity", learn.microsoft.com/fabric/onelake/onelake-api-parity): access control cannot be set
//! (`action=setAccessControl` / `setAccessControlRecursive` are rejected), owner and permission
//! headers are ignored and named in `x-ms-rejected-headers`.
//!
//! | request | operation, answer |
//! |---|---|
//! | `PUT ?resource=file\|directory` | Path - Create: 201, `ETag`; `x-ms-properties`, `x-ms-content-*` stored |
//! | `PUT` + `x-ms-rename-source` (`?mode=legacy\|posix`) | rename: 201; source as `/{fs}/{path}` or a full OneLake URL |
//! | `PATCH ?action=append&position=N` (`&flush=true`) | Path - Update append: 202 (also when flushed) |
//! | `PATCH ?action=flush&position=N` (`retainUncommittedData`, `close`) | Path - Update flush: 200 |
//! | `PATCH ?action=setProperties` | 200 |
//! | `POST` + `x-ms-lease-action` | Path - Lease: 201 acquire, 200 renew/change/release, 202 break |
//! | `GET ?resource=filesystem&recursive=` (`directory`, `maxResults`, `continuation`) | List Paths |
//! | `DELETE` (`recursive`, `continuation`, `paginated`) | Path - Delete: 200 |

use base64::Engine;
use bytes::Bytes;

use super::request::{missing_query, rename_source, Req};
use super::response::{http_date, Answer, Ctx};
use crate::faults::Operation;
use crate::storage::{SimError, Storage, WriteProps};

pub(crate) fn handle(
    storage: &Storage,
    req: &Req,
    ctx: &Ctx,
    own_host: Option<&str>,
) -> Result<Answer, SimError> {
    match req.op {
        Operation::CreateFile => {
            let props = req.write_props(req.properties()?);
            let f = storage.create_file_with(&req.path, &req.conditions()?, props)?;
            Ok(ctx.written(201, &f))
        }
        Operation::CreateDirectory => {
            let etag = storage.create_dir_with(&req.path, &req.conditions()?, req.properties()?)?;
            Ok(ctx.changed(201, etag))
        }
        Operation::Rename => rename(storage, req, ctx, own_host),
        Operation::Append => append(storage, req, ctx),
        Operation::Flush => flush(storage, req, ctx),
        Operation::ListPaths => list_paths(storage, req, ctx),
        Operation::Delete => delete(storage, req, ctx),
        _ => Err(SimError::new(
            405,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb.",
        )),
    }
}

fn rename(
    storage: &Storage,
    req: &Req,
    ctx: &Ctx,
    own_host: Option<&str>,
) -> Result<Answer, SimError> {
    if let Some(mode) = req.q("mode") {
        if mode != "legacy" && mode != "posix" {
            return Err(super::request::invalid_query("mode"));
        }
    }
    let raw = req.header("x-ms-rename-source").unwrap_or_default();
    let source = rename_source(&raw, own_host)?;
    storage.rename_with(
        &source,
        &req.path,
        &req.conditions()?,
        &req.source_conditions()?,
    )?;
    let mut b = ctx.base(201).header("content-length", "0");
    if let Some(f) = storage.get(&req.path) {
        b = b
            .header("etag", f.etag.as_str())
            .header("last-modified", http_date(f.last_modified));
    } else if let Some(d) = storage.dir_meta(&req.path) {
        b = b
            .header("etag", d.etag.as_str())
            .header("last-modified", http_date(d.created));
    }
    Ok(ctx.ok(b, Bytes::new()))
}

/// "position ... is required when uploading data to be appended to the file and when flushing"
/// (`Position` parameter of the specification).
fn position(req: &Req) -> Result<u64, SimError> {
    req.u64_param("position")?
        .ok_or_else(|| missing_query("position"))
}

fn append(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let position = position(req)?;
    let conditions = req.conditions()?;
    // `flush=true` ("If file should be flushed after the append", Path - Update since
    // x-ms-version 2020-06-12): the appended data and everything before it is committed at once.
    // The answer stays the append's 202, which is what the Azure SDKs expect of `append_data(...,
    // flush=True)`.
    if req.bool_param("flush")? == Some(true) {
        let f = storage.append_and_flush(&req.path, position, &req.body, &conditions)?;
        return Ok(ctx.written(202, &f));
    }
    storage.append_with(&req.path, position, &req.body, &conditions)?;
    Ok(ctx.ok(
        ctx.base(202)
            .header("x-ms-request-server-encrypted", "true")
            .header("content-length", "0"),
        Bytes::new(),
    ))
}

fn flush(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let position = position(req)?;
    // "To flush, ... there must not be a request entity body included with the request."
    if !req.body.is_empty() {
        return Err(SimError::new(
            400,
            "ContentLengthMustBeZero",
            "The Content-Length request header must be zero.",
        ));
    }
    let retain = req.bool_param("retainuncommitteddata")?.unwrap_or(false);
    req.bool_param("close")?;
    let props: WriteProps = req.write_props(None);
    let f = storage.flush_with(&req.path, position, retain, &req.conditions()?, props)?;
    Ok(ctx.written(200, &f))
}

/// DFS `Path - Update ?action=setProperties` (`x-ms-properties`, `x-ms-content-*`).
pub(crate) fn set_properties(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let props = req.write_props(req.properties()?);
    let etag = storage.set_properties(&req.path, &req.conditions()?, props)?;
    Ok(ctx.changed(200, etag))
}

/// `Path - Lease` (DFS `POST`) and `Lease Blob` (`PUT ?comp=lease`).
pub(crate) fn lease(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let request = req.lease_request()?;
    let (answer, f) = storage
        .lease_request(&req.path, &request, &req.conditions()?)
        .map_err(|e| match (e.status, req.api) {
            (404, super::request::Api::Blob) => {
                SimError::new(404, "BlobNotFound", "The specified blob does not exist.")
            }
            _ => e,
        })?;
    let mut b = ctx
        .base(answer.status)
        .header("etag", f.etag.as_str())
        .header("last-modified", http_date(f.last_modified))
        .header("content-length", "0");
    if let Some(id) = &answer.lease_id {
        b = b.header("x-ms-lease-id", id.as_str());
    }
    if let Some(t) = answer.lease_time {
        b = b.header("x-ms-lease-time", t.to_string());
    }
    Ok(ctx.ok(b, Bytes::new()))
}

fn delete(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let recursive = req.bool_param("recursive")?.unwrap_or(false);
    req.bool_param("paginated")?;
    storage.delete(&req.path, recursive, &req.conditions()?)?;
    Ok(ctx.empty(200))
}

/// `FileSystem_ListPaths`: `recursive` is required; `directory` must exist (404
/// `PathNotFound`); at most `maxResults` (default and cap 5000) paths per page, the rest behind
/// an opaque `x-ms-continuation` token.
fn list_paths(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let filesystem = req.path.split('/').next().unwrap_or(&req.path).to_owned();
    let recursive = req
        .bool_param("recursive")?
        .ok_or_else(|| missing_query("recursive"))?;
    req.bool_param("upn")?;
    let max = match req.u64_param("maxresults")? {
        Some(0) => return Err(super::request::invalid_query("maxResults")),
        Some(n) => n.min(5000) as usize,
        None => 5000,
    };
    let after = match req.q("continuation") {
        None | Some("") => None,
        Some(token) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| super::request::invalid_query("continuation"))?,
        ),
    };
    // The filesystem is the workspace. OneLake also lists below a deeper request path — what
    // Microsoft's open-mirroring SDK does with `DataLakeServiceClient(account_url=".../<ws>/<item>/Files")`
    // and `get_file_system_client("LandingZone/<table>").get_paths()` — with `directory`
    // relative to it; names stay relative to the workspace.
    let directory = req.q("directory").unwrap_or_default().trim_matches('/');
    let mut base_path = req.path.clone();
    if !directory.is_empty() {
        base_path = format!("{base_path}/{directory}");
    }
    if base_path != filesystem && !storage.is_dir(&base_path) {
        return Err(SimError::new(
            404,
            "PathNotFound",
            "The specified path does not exist.",
        ));
    }
    let rel = |full: &str| full[filesystem.len() + 1..].to_owned();
    let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
    let dir_json = |name: String, storage: &Storage, full: &str| {
        let meta = storage.dir_meta(full);
        serde_json::json!({
            "name": name,
            "isDirectory": "true",
            "contentLength": "0",
            "etag": meta.as_ref().map(|m| m.etag.trim_matches('"').to_owned()).unwrap_or_default(),
            "lastModified": meta.as_ref().map(|m| http_date(m.created)).unwrap_or_default(),
            "owner": "$superuser",
            "group": "$superuser",
            "permissions": "rwxr-x---",
        })
    };
    let file_json = |name: String, f: &crate::storage::StoredFile| {
        serde_json::json!({
            "name": name,
            "contentLength": f.data.len().to_string(),
            "etag": f.etag.trim_matches('"'),
            "lastModified": http_date(f.last_modified),
            "creationTime": ((f.created.timestamp_millis() as u128 + 11_644_473_600_000) * 10_000).to_string(),
            "owner": "$superuser",
            "group": "$superuser",
            "permissions": "rw-r-----",
        })
    };
    if recursive {
        let (files, dirs) = storage.list_prefix(&format!("{base_path}/"));
        for d in dirs {
            entries.push((rel(&d), dir_json(rel(&d), storage, &d)));
        }
        for (p, f) in files {
            entries.push((rel(&p), file_json(rel(&p), &f)));
        }
    } else {
        let (files, dirs) = storage.list_dir(&base_path);
        let name = |n: &str| rel(&format!("{base_path}/{n}"));
        for d in dirs {
            let full = format!("{base_path}/{d}");
            entries.push((name(&d), dir_json(name(&d), storage, &full)));
        }
        for (n, f) in files {
            entries.push((name(&n), file_json(name(&n), &f)));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut page: Vec<serde_json::Value> = Vec::new();
    let mut rest = entries
        .into_iter()
        .filter(|(n, _)| after.as_deref().is_none_or(|a| n.as_str() > a))
        .peekable();
    let mut last = None;
    while page.len() < max {
        let Some((n, v)) = rest.next() else { break };
        page.push(v);
        last = Some(n);
    }
    let mut b = ctx
        .base(200)
        .header("content-type", "application/json;charset=utf-8");
    if rest.peek().is_some() {
        if let Some(last) = last {
            b = b.header(
                "x-ms-continuation",
                base64::engine::general_purpose::STANDARD.encode(last.as_bytes()),
            );
        }
    }
    let body = serde_json::json!({ "paths": page }).to_string();
    Ok(ctx.ok(b, Bytes::from(body)))
}
