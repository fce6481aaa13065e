//! Blob service operations over the storage: Put Blob, Put Block, Put Block List, Get Blob and
//! Get Blob Properties (with `Range` / `x-ms-range` and conditional reads), Set Blob Metadata /
//! Set Blob Properties, Lease Blob, Delete Blob and List Blobs (`prefix`, `delimiter`,
//! `maxresults`, `marker`), as the Blob service REST reference (learn.microsoft.com/rest/api/storageservices/blob-service-rest-api)
//! describes them for block blobs. Blob Batch is refused, as OneLake refuses it.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::request::{invalid_header, invalid_query, missing_header, Api, Req};
use super::response::{file_headers, http_date, xml_escape, Answer, Ctx};
use crate::faults::Operation;
use crate::storage::{SimError, Storage};

pub(crate) fn handle(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    match req.op {
        Operation::PutBlob => put_blob(storage, req, ctx),
        Operation::PutBlock => {
            let id = req
                .q("blockid")
                .ok_or_else(|| super::request::missing_query("blockid"))?;
            storage.put_block(&req.path, id, req.body.clone());
            Ok(ctx.empty(201))
        }
        Operation::PutBlockList => put_block_list(storage, req, ctx),
        Operation::GetBlob | Operation::HeadBlob => read(storage, req, ctx),
        Operation::ListBlobs => list_blobs(storage, req, ctx),
        Operation::Delete => delete(storage, req, ctx),
        _ => Err(SimError::new(
            400,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb.",
        )),
    }
}

fn put_blob(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    // "x-ms-blob-type: Required. Specifies the type of blob to create" (Put Blob). OneLake is a
    // hierarchical namespace, where page blobs are not available; append blobs are not simulated.
    match req.header("x-ms-blob-type").as_deref() {
        None => return Err(missing_header("x-ms-blob-type")),
        Some("BlockBlob") => {}
        Some("PageBlob" | "AppendBlob") => {
            return Err(SimError::new(
                409,
                "FeatureNotYetSupportedForHierarchicalNamespaceAccounts",
                "This operation is not permitted on a Hierarchical Namespace enabled account.",
            ))
        }
        Some(_) => return Err(invalid_header("x-ms-blob-type")),
    }
    let mut props = req.write_props(Some(req.meta_headers()));
    if props.content_type.is_none() {
        props.content_type = req.header("content-type");
    }
    let f = storage.write_blob(&req.path, req.body.clone(), &req.conditions()?, props)?;
    Ok(ctx.written(201, &f))
}

fn put_block_list(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let text = String::from_utf8_lossy(&req.body);
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
    let props = req.write_props(Some(req.meta_headers()));
    let f = storage.commit_blocks(&req.path, &ids, &req.conditions()?, props)?;
    Ok(ctx.written(201, &f))
}

/// Get Blob / Get Blob Properties / Path - Read / Path - Get Properties: the content or the
/// properties of a file, or of a directory (hierarchical namespace: `x-ms-resource-type:
/// directory`, and on the Blob API the `hdi_isfolder` metadata HNS accounts give folders).
pub(crate) fn read(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let conditions = req.conditions()?;
    let Some(f) = storage.get(&req.path) else {
        if let Some(dir) = storage.dir_meta(&req.path) {
            let mut b = ctx
                .base(200)
                .header("etag", dir.etag.as_str())
                .header("last-modified", http_date(dir.created))
                .header("x-ms-creation-time", http_date(dir.created))
                .header("x-ms-resource-type", "directory")
                .header("content-length", "0");
            match req.api {
                Api::Blob => {
                    b = b.header("x-ms-meta-hdi_isfolder", "true");
                    for (k, v) in &dir.metadata {
                        b = b.header(format!("x-ms-meta-{k}"), v.as_str());
                    }
                }
                Api::Dfs => {
                    if let Some(p) = super::response::encode_properties(&dir.metadata) {
                        b = b.header("x-ms-properties", p);
                    }
                }
            }
            return Ok(ctx.ok(b, Bytes::new()));
        }
        return Err(match req.api {
            Api::Blob => SimError::new(404, "BlobNotFound", "The specified blob does not exist."),
            Api::Dfs => SimError::new(404, "PathNotFound", "The specified path does not exist."),
        });
    };
    conditions.check_read(&f)?;
    if conditions.not_modified(&f) {
        return Ok(ctx.ok(
            ctx.base(304)
                .header("etag", f.etag.as_str())
                .header("last-modified", http_date(f.last_modified)),
            Bytes::new(),
        ));
    }
    let len = f.data.len() as u64;
    let range = req.header("x-ms-range").or_else(|| req.header("range"));
    let (status, data, content_range) = match range {
        Some(r) if req.op == Operation::GetBlob => match parse_range(&r, len)? {
            Some((start, end)) => (
                206,
                f.data.slice(start as usize..end as usize + 1),
                Some(format!("bytes {start}-{end}/{len}")),
            ),
            None => (200, f.data.clone(), None),
        },
        _ => (200, f.data.clone(), None),
    };
    let mut b = file_headers(ctx.base(status), &f, req.api)
        .header("content-length", data.len().to_string());
    if let Some(cr) = content_range {
        b = b.header("content-range", cr);
    }
    if let Some(l) = storage.lease(&req.path) {
        let state = l.state(chrono::Utc::now());
        let (status, state_name) = match state {
            crate::lease::LeaseState::Leased => ("locked", "leased"),
            crate::lease::LeaseState::Breaking => ("locked", "breaking"),
            crate::lease::LeaseState::Expired => ("unlocked", "expired"),
            crate::lease::LeaseState::Broken => ("unlocked", "broken"),
        };
        b = b
            .header("x-ms-lease-status", status)
            .header("x-ms-lease-state", state_name);
        if state == crate::lease::LeaseState::Leased {
            b = b.header(
                "x-ms-lease-duration",
                if l.duration < 0 { "infinite" } else { "fixed" },
            );
        }
    } else {
        b = b
            .header("x-ms-lease-status", "unlocked")
            .header("x-ms-lease-state", "available");
    }
    if req.api == Api::Dfs && req.q("action") == Some("getAccessControl") {
        // OneLake has no POSIX owners: Fabric permissions apply (OneLake API parity).
        b = b
            .header("x-ms-owner", "$superuser")
            .header("x-ms-group", "$superuser")
            .header("x-ms-permissions", "rwxr-x---")
            .header("x-ms-acl", "user::rwx,group::r-x,other::---");
    }
    Ok(ctx.ok(b, data))
}

/// A `bytes=a-b` / `bytes=a-` / `bytes=-n` range of a `len`-byte blob: `None` for the whole
/// blob; 416 `InvalidRange` when it starts past the end ("Specifying the range header for Blob
/// service operations").
fn parse_range(range: &str, len: u64) -> Result<Option<(u64, u64)>, SimError> {
    let unsatisfiable = || {
        SimError::new(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        )
    };
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    if a.is_empty() {
        let Ok(suffix) = b.trim().parse::<u64>() else {
            return Ok(None);
        };
        if len == 0 || suffix == 0 {
            return Err(unsatisfiable());
        }
        return Ok(Some((len.saturating_sub(suffix), len - 1)));
    }
    let Ok(start) = a.trim().parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.trim().is_empty() {
        None
    } else {
        match b.trim().parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return Ok(None),
        }
    };
    if start >= len {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end.unwrap_or(len - 1).min(len - 1))))
}

fn delete(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    match storage.delete(&req.path, false, &req.conditions()?) {
        Ok(()) => Ok(ctx.empty(202)),
        Err(e) if e.status == 404 => Err(SimError::new(
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
        )),
        Err(e) => Err(e),
    }
}

/// Set Blob Metadata (`comp=metadata`: `x-ms-meta-*` replace the metadata) and Set Blob
/// Properties (`comp=properties`: `x-ms-blob-content-*`).
pub(crate) fn set_properties(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let metadata = (req.q("comp") == Some("metadata")).then(|| req.meta_headers());
    let props = req.write_props(metadata);
    let etag = storage
        .set_properties(&req.path, &req.conditions()?, props)
        .map_err(|e| {
            if e.status == 404 {
                SimError::new(404, "BlobNotFound", "The specified blob does not exist.")
            } else {
                e
            }
        })?;
    Ok(ctx.changed(200, etag))
}

fn list_blobs(storage: &Storage, req: &Req, ctx: &Ctx) -> Result<Answer, SimError> {
    let container = req.path.split('/').next().unwrap_or(&req.path).to_owned();
    let prefix = req.q("prefix").unwrap_or_default().to_owned();
    let delimiter = req.q("delimiter").unwrap_or_default().to_owned();
    let max = match req.u64_param("maxresults")? {
        Some(0) => return Err(invalid_query("maxresults")),
        Some(n) => n.min(5000) as usize,
        None => 5000,
    };
    let marker = req.q("marker").unwrap_or_default().to_owned();
    let full_prefix = format!("{container}/{prefix}");
    let (files, dirs) = storage.list_prefix(&full_prefix);
    // Every entry of the listing by name (a blob, or a prefix when a delimiter rolls it up).
    let mut entries: BTreeMap<String, Option<crate::storage::StoredFile>> = BTreeMap::new();
    for (path, f) in files {
        let name = path[container.len() + 1..].to_owned();
        let rest = &name[prefix.len()..];
        if !delimiter.is_empty() {
            if let Some(i) = rest.find(delimiter.as_str()) {
                entries.insert(format!("{prefix}{}{delimiter}", &rest[..i]), None);
                continue;
            }
        }
        entries.insert(name, Some(f));
    }
    if !delimiter.is_empty() {
        for d in &dirs {
            let name = &d[container.len() + 1..];
            let rest = &name[prefix.len()..];
            let first = rest.split(delimiter.as_str()).next().unwrap_or(rest);
            if !first.is_empty() {
                entries.insert(format!("{prefix}{first}{delimiter}"), None);
            }
        }
    }
    let mut page = entries
        .into_iter()
        .filter(|(name, _)| marker.is_empty() || name.as_str() > marker.as_str())
        .peekable();
    let mut blobs = String::new();
    let mut last = String::new();
    let mut n = 0;
    while n < max {
        let Some((name, file)) = page.next() else {
            break;
        };
        match file {
            Some(f) => blobs.push_str(&format!(
                "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>{}</Content-Type><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted><ResourceType>file</ResourceType></Properties></Blob>",
                xml_escape(&name),
                http_date(f.created),
                http_date(f.last_modified),
                xml_escape(&f.etag),
                f.data.len(),
                xml_escape(&f.content_type)
            )),
            None => blobs.push_str(&format!(
                "<BlobPrefix><Name>{}</Name></BlobPrefix>",
                xml_escape(&name)
            )),
        }
        last = name;
        n += 1;
    }
    let next_marker = if page.peek().is_some() {
        format!("<NextMarker>{}</NextMarker>", xml_escape(&last))
    } else {
        "<NextMarker />".to_owned()
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://onelake-sim/\" ContainerName=\"{}\"><Prefix>{}</Prefix><Marker>{}</Marker><MaxResults>{max}</MaxResults><Delimiter>{}</Delimiter><Blobs>{blobs}</Blobs>{next_marker}</EnumerationResults>",
        xml_escape(&container),
        xml_escape(&prefix),
        xml_escape(&marker),
        xml_escape(&delimiter)
    );
    Ok(ctx.ok(
        ctx.base(200).header("content-type", "application/xml"),
        Bytes::from(body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_past_the_end_are_416_others_are_clamped() {
        assert_eq!(parse_range("bytes=0-3", 10).unwrap(), Some((0, 3)));
        assert_eq!(parse_range("bytes=5-", 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range("bytes=5-100", 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range("bytes=-4", 10).unwrap(), Some((6, 9)));
        assert_eq!(parse_range("bytes=10-", 10).unwrap_err().status, 416);
        assert_eq!(parse_range("bytes=0-", 0).unwrap_err().status, 416);
        assert_eq!(parse_range("items=0-1", 10).unwrap(), None);
    }
}
