//! The MongoDB wire protocol: message framing, OP_MSG (kind-0 body and kind-1 document
//! sequences, flag bits), the legacy OP_QUERY handshake with its OP_REPLY answer, and a small raw
//! BSON writer used to build replies without re-encoding stored documents.
//!
//! Reference: the OP_MSG specification (specifications repository, `message/OP_MSG.md`) and
//! mongod's `src/mongo/rpc/op_msg.cpp`.

use std::collections::HashMap;

use bson::{RawBsonRef, RawDocument, RawDocumentBuf};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_COMPRESSED: i32 = 2012;
pub const OP_MSG: i32 = 2013;

/// OP_MSG flag bits.
pub const FLAG_CHECKSUM_PRESENT: u32 = 1;
pub const FLAG_MORE_TO_COME: u32 = 1 << 1;
pub const FLAG_EXHAUST_ALLOWED: u32 = 1 << 16;

/// The largest message the simulator accepts or sends (mongod's `maxMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// mongod's `maxBsonObjectSize`.
pub const MAX_BSON_OBJECT_SIZE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Which framing a request came in, and so which framing its reply must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Msg,
    /// Legacy OP_QUERY against `<db>.$cmd`.
    Query,
}

/// A decoded command request.
#[derive(Debug, Clone)]
pub struct Request {
    pub request_id: i32,
    pub kind: RequestKind,
    pub flags: u32,
    /// The command document (kind-0 section, or the OP_QUERY query unwrapped from `$query`).
    pub body: RawDocumentBuf,
    /// Kind-1 document sequences by identifier (e.g. `documents` of an insert).
    pub sequences: HashMap<String, Vec<RawDocumentBuf>>,
    /// For OP_QUERY: the database part of `fullCollectionName`.
    pub query_db: Option<String>,
    /// For OP_QUERY: `$readPreference` found beside `$query`.
    pub query_read_preference: Option<RawDocumentBuf>,
}

impl Request {
    /// The command's name: the first key of the body.
    pub fn command_name(&self) -> Option<&str> {
        self.body.iter().next().and_then(|r| r.ok()).map(|(k, _)| k)
    }
}

/// Reads one message. Returns `Closed` on a clean EOF between messages.
pub async fn read_request<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Request, WireError> {
    let mut header = [0u8; 16];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let length = i32::from_le_bytes(le4(&header[0..4]));
    let request_id = i32::from_le_bytes(le4(&header[4..8]));
    let op_code = i32::from_le_bytes(le4(&header[12..16]));
    if length < 16 || length as usize > MAX_MESSAGE_SIZE {
        return Err(WireError::Protocol(format!(
            "invalid message length {length}"
        )));
    }
    let mut payload = vec![0u8; length as usize - 16];
    reader.read_exact(&mut payload).await?;
    match op_code {
        OP_MSG => parse_op_msg(request_id, &payload),
        OP_QUERY => parse_op_query(request_id, &payload),
        OP_COMPRESSED => Err(WireError::Protocol(
            "OP_COMPRESSED received, but no compressor was negotiated".into(),
        )),
        other => Err(WireError::Protocol(format!("unsupported opcode {other}"))),
    }
}

fn le4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

fn read_cstring(buf: &[u8]) -> Result<(&str, usize), WireError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| WireError::Protocol("unterminated cstring".into()))?;
    let s = std::str::from_utf8(&buf[..end])
        .map_err(|_| WireError::Protocol("cstring is not UTF-8".into()))?;
    Ok((s, end + 1))
}

fn read_document(buf: &[u8]) -> Result<(RawDocumentBuf, usize), WireError> {
    if buf.len() < 5 {
        return Err(WireError::Protocol("truncated document".into()));
    }
    let len = i32::from_le_bytes(le4(&buf[0..4]));
    if len < 5 || len as usize > buf.len() {
        return Err(WireError::Protocol(format!(
            "invalid document length {len}"
        )));
    }
    let doc = RawDocumentBuf::from_bytes(buf[..len as usize].to_vec())
        .map_err(|e| WireError::Protocol(format!("invalid BSON document: {e}")))?;
    validate(&doc).map_err(|e| WireError::Protocol(format!("invalid BSON document: {e}")))?;
    Ok((doc, len as usize))
}

/// Walks a whole document so that later code can iterate it without meeting malformed BSON.
pub fn validate(doc: &RawDocument) -> Result<(), bson::raw::Error> {
    for item in doc.iter() {
        let (_, v) = item?;
        validate_value(&v)?;
    }
    Ok(())
}

fn validate_value(v: &RawBsonRef<'_>) -> Result<(), bson::raw::Error> {
    match v {
        RawBsonRef::Document(d) => validate(d),
        RawBsonRef::Array(a) => {
            for item in a.into_iter() {
                validate_value(&item?)?;
            }
            Ok(())
        }
        RawBsonRef::JavaScriptCodeWithScope(c) => validate(c.scope),
        _ => Ok(()),
    }
}

fn parse_op_msg(request_id: i32, payload: &[u8]) -> Result<Request, WireError> {
    if payload.len() < 4 {
        return Err(WireError::Protocol("truncated OP_MSG".into()));
    }
    let flags = u32::from_le_bytes(le4(&payload[0..4]));
    // Bits 0-15 are "required": a receiver must fail on any it does not know (OP_MSG spec).
    if flags & 0xffff & !(FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME) != 0 {
        return Err(WireError::Protocol(format!(
            "Unrecognized flags in OP_MSG: {flags:#x}"
        )));
    }
    let mut end = payload.len();
    if flags & FLAG_CHECKSUM_PRESENT != 0 {
        // The CRC-32C is not verified: loopback traffic from test clients.
        end = end
            .checked_sub(4)
            .ok_or_else(|| WireError::Protocol("truncated checksum".into()))?;
    }
    let mut pos = 4;
    let mut body = None;
    let mut sequences: HashMap<String, Vec<RawDocumentBuf>> = HashMap::new();
    while pos < end {
        let kind = payload[pos];
        pos += 1;
        match kind {
            0 => {
                let (doc, used) = read_document(&payload[pos..end])?;
                if body.is_some() {
                    return Err(WireError::Protocol(
                        "Multiple body sections in OP_MSG".into(),
                    ));
                }
                body = Some(doc);
                pos += used;
            }
            1 => {
                if end - pos < 4 {
                    return Err(WireError::Protocol("truncated document sequence".into()));
                }
                let size = i32::from_le_bytes(le4(&payload[pos..pos + 4]));
                if size < 5 || pos + size as usize > end {
                    return Err(WireError::Protocol("invalid document sequence size".into()));
                }
                let section_end = pos + size as usize;
                let (ident, used) = read_cstring(&payload[pos + 4..section_end])?;
                let ident = ident.to_string();
                let mut p = pos + 4 + used;
                let mut docs = Vec::new();
                while p < section_end {
                    let (doc, used) = read_document(&payload[p..section_end])?;
                    docs.push(doc);
                    p += used;
                }
                if sequences.insert(ident.clone(), docs).is_some() {
                    return Err(WireError::Protocol(format!(
                        "Duplicate document sequence: {ident}"
                    )));
                }
                pos = section_end;
            }
            other => return Err(WireError::Protocol(format!("Unknown section kind {other}"))),
        }
    }
    let body = body.ok_or_else(|| WireError::Protocol("OP_MSG without a body section".into()))?;
    Ok(Request {
        request_id,
        kind: RequestKind::Msg,
        flags,
        body,
        sequences,
        query_db: None,
        query_read_preference: None,
    })
}

fn parse_op_query(request_id: i32, payload: &[u8]) -> Result<Request, WireError> {
    if payload.len() < 4 {
        return Err(WireError::Protocol("truncated OP_QUERY".into()));
    }
    let (coll, used) = read_cstring(&payload[4..])?;
    let pos = 4 + used + 8; // numberToSkip, numberToReturn
    if pos > payload.len() {
        return Err(WireError::Protocol("truncated OP_QUERY".into()));
    }
    let (query, _) = read_document(&payload[pos..])?;
    let db = coll.strip_suffix(".$cmd").map(str::to_string);
    let mut read_pref = None;
    // Drivers may wrap the command: {$query: {...}, $readPreference: {...}}.
    let body = match query.get("$query") {
        Ok(Some(RawBsonRef::Document(inner))) => {
            if let Ok(Some(RawBsonRef::Document(rp))) = query.get("$readPreference") {
                read_pref = Some(rp.to_raw_document_buf());
            }
            inner.to_raw_document_buf()
        }
        _ => query.clone(),
    };
    Ok(Request {
        request_id,
        kind: RequestKind::Query,
        flags: 0,
        body,
        sequences: HashMap::new(),
        query_db: Some(db.unwrap_or_else(|| coll.to_string())),
        query_read_preference: read_pref,
    })
}

/// The 21-byte OP_MSG header (message header, flags, section kind 0) for a body of `body_len`.
pub fn op_msg_header(request_id: i32, response_to: i32, flags: u32, body_len: usize) -> [u8; 21] {
    let mut h = [0u8; 21];
    h[0..4].copy_from_slice(&((21 + body_len) as i32).to_le_bytes());
    h[4..8].copy_from_slice(&request_id.to_le_bytes());
    h[8..12].copy_from_slice(&response_to.to_le_bytes());
    h[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
    h[16..20].copy_from_slice(&flags.to_le_bytes());
    h
}

/// Encodes an OP_MSG reply with a single kind-0 section.
pub fn encode_op_msg(request_id: i32, response_to: i32, flags: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + 1 + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// Encodes an OP_REPLY carrying one document (the answer to an OP_QUERY command).
pub fn encode_op_reply(request_id: i32, response_to: i32, body: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + 8 + 4 + 4 + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_REPLY.to_le_bytes());
    out.extend_from_slice(&8i32.to_le_bytes()); // responseFlags: AwaitCapable
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    out.extend_from_slice(body);
    out
}

/// A writer of raw BSON documents. Nested documents and arrays are opened and closed explicitly;
/// stored documents are copied in as bytes, never re-encoded.
#[derive(Debug, Default)]
pub struct DocWriter {
    buf: Vec<u8>,
    open: Vec<usize>,
}

impl DocWriter {
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut w = DocWriter {
            buf: Vec::with_capacity(cap),
            open: Vec::new(),
        };
        w.open.push(0);
        w.buf.extend_from_slice(&[0, 0, 0, 0]);
        w
    }

    /// Current encoded size (without the closing bytes still to come).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() <= 4
    }

    fn key(&mut self, ty: u8, key: &str) {
        self.buf.push(ty);
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(0);
    }

    pub fn append(&mut self, key: &str, value: RawBsonRef<'_>) {
        // Encode through a one-element document to reuse bson's value encoding.
        match value {
            RawBsonRef::Document(d) => self.raw_document(key, d.as_bytes()),
            RawBsonRef::Array(a) => {
                self.key(0x04, key);
                self.buf.extend_from_slice(a.as_bytes());
            }
            RawBsonRef::String(s) => self.string(key, s),
            RawBsonRef::Int32(i) => self.i32(key, i),
            RawBsonRef::Int64(i) => self.i64(key, i),
            RawBsonRef::Double(d) => {
                self.key(0x01, key);
                self.buf.extend_from_slice(&d.to_le_bytes());
            }
            RawBsonRef::Boolean(b) => self.bool(key, b),
            RawBsonRef::Null => self.key(0x0A, key),
            other => {
                let mut tmp = RawDocumentBuf::new();
                tmp.append_ref(key, other);
                let bytes = tmp.as_bytes();
                self.buf.extend_from_slice(&bytes[4..bytes.len() - 1]);
            }
        }
    }

    pub fn raw_document(&mut self, key: &str, bytes: &[u8]) {
        self.key(0x03, key);
        self.buf.extend_from_slice(bytes);
    }

    pub fn string(&mut self, key: &str, s: &str) {
        self.key(0x02, key);
        self.buf
            .extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub fn i32(&mut self, key: &str, v: i32) {
        self.key(0x10, key);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, key: &str, v: i64) {
        self.key(0x12, key);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, key: &str, v: f64) {
        self.key(0x01, key);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(0x08, key);
        self.buf.push(u8::from(v));
    }

    pub fn timestamp(&mut self, key: &str, ts: bson::Timestamp) {
        self.key(0x11, key);
        self.buf.extend_from_slice(&ts.increment.to_le_bytes());
        self.buf.extend_from_slice(&ts.time.to_le_bytes());
    }

    pub fn datetime(&mut self, key: &str, millis: i64) {
        self.key(0x09, key);
        self.buf.extend_from_slice(&millis.to_le_bytes());
    }

    pub fn begin_document(&mut self, key: &str) {
        self.key(0x03, key);
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
    }

    pub fn begin_array(&mut self, key: &str) {
        self.key(0x04, key);
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
    }

    /// Closes the innermost open document or array.
    pub fn end(&mut self) {
        self.buf.push(0);
        if let Some(start) = self.open.pop() {
            let len = (self.buf.len() - start) as i32;
            self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
    }

    /// Appends every element of `doc` at the current level.
    pub fn append_all(&mut self, doc: &RawDocument) {
        let bytes = doc.as_bytes();
        self.buf.extend_from_slice(&bytes[4..bytes.len() - 1]);
    }

    /// Closes all open levels and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.open.is_empty() {
            self.end();
        }
        self.buf
    }

    pub fn finish_doc(self) -> RawDocumentBuf {
        let bytes = self.finish();
        // The writer only ever produces well-formed documents.
        RawDocumentBuf::from_bytes(bytes).unwrap_or_default()
    }
}

/// Array keys "0".."N" without allocating for the common small indexes.
pub fn index_key(i: usize, buf: &mut String) -> &str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{i}");
    buf.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_writer_builds_valid_nested_documents() {
        let inner = bson::rawdoc! {"x": 1};
        let mut w = DocWriter::new();
        w.begin_document("cursor");
        w.begin_array("firstBatch");
        w.raw_document("0", inner.as_bytes());
        w.raw_document("1", inner.as_bytes());
        w.end();
        w.i64("id", 0);
        w.end();
        w.f64("ok", 1.0);
        let doc = w.finish_doc();
        let d = doc.to_document().expect("valid");
        assert_eq!(
            d,
            bson::doc! {"cursor": {"firstBatch": [{"x": 1}, {"x": 1}], "id": 0i64}, "ok": 1.0}
        );
    }
}
