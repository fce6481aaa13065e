//! The TCP server: accepts connections, reads requests, runs them, writes replies (OP_MSG, or
//! OP_REPLY for legacy OP_QUERY), streams exhaust replies (`moreToCome`) for awaitable hellos and
//! exhaust getMores, honours fire-and-forget requests, and drops connections on demand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bson::{RawBsonRef, RawDocumentBuf};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::commands::{self, ConnCtx, Outcome};
use crate::state::Shared;
use crate::wire::{
    encode_op_reply, op_msg_header, read_request, Request, RequestKind, FLAG_EXHAUST_ALLOWED,
    FLAG_MORE_TO_COME,
};

static CONNECTION_IDS: AtomicI64 = AtomicI64::new(1);

/// Accepts connections until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        let id = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(handle(shared.clone(), stream, id));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn handle(shared: Arc<Shared>, stream: TcpStream, id: i64) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    let mut drop_rx = shared.drop_tx.subscribe();
    drop_rx.borrow_and_update();
    let mut shutdown_rx = shared.shutdown_tx.subscribe();
    let mut paused_rx = shared.paused_tx.subscribe();
    let mut ctx = ConnCtx {
        id,
        ..Default::default()
    };
    let mut next_id = 1i32;
    loop {
        let req = tokio::select! {
            r = read_request(&mut rd) => r,
            _ = drop_rx.changed() => return,
            _ = shutdown_rx.changed() => return,
        };
        let req = match req {
            Ok(r) => r,
            Err(crate::wire::WireError::Closed) => return,
            Err(e) => {
                tracing::debug!("connection {id}: {e}");
                return;
            }
        };
        // A paused server holds requests unanswered.
        while *paused_rx.borrow_and_update() {
            tokio::select! {
                _ = paused_rx.changed() => {}
                _ = drop_rx.changed() => return,
                _ = shutdown_rx.changed() => return,
            }
        }
        let work = process(&shared, &mut ctx, req, &mut wr, &mut next_id);
        let ok = tokio::select! {
            r = work => r,
            _ = drop_rx.changed() => false,
            _ = shutdown_rx.changed() => false,
        };
        if !ok {
            return;
        }
    }
}

/// Writes a reply (OP_MSG, or OP_REPLY to an OP_QUERY). Returns the reply's request id, which
/// the next streamed reply answers (OP_MSG exhaust rules).
async fn write_reply(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    req: &Request,
    response_to: i32,
    next_id: &mut i32,
    body: &[u8],
    more_to_come: bool,
) -> std::io::Result<i32> {
    let rid = *next_id;
    *next_id = next_id.wrapping_add(1);
    match req.kind {
        RequestKind::Msg => {
            let flags = if more_to_come { FLAG_MORE_TO_COME } else { 0 };
            let header = op_msg_header(rid, response_to, flags, body.len());
            if body.len() < 64 * 1024 {
                let mut msg = Vec::with_capacity(header.len() + body.len());
                msg.extend_from_slice(&header);
                msg.extend_from_slice(body);
                wr.write_all(&msg).await?;
            } else {
                // Large cursor batches: no copy into a framed buffer.
                wr.write_all(&header).await?;
                wr.write_all(body).await?;
            }
        }
        RequestKind::Query => {
            wr.write_all(&encode_op_reply(rid, response_to, body))
                .await?
        }
    }
    Ok(rid)
}

/// Whether an exhaust request should keep streaming after this reply, and the request to
/// re-run for the next reply.
fn exhaust_next(req: &Request, reply: &[u8]) -> Option<Request> {
    if req.kind != RequestKind::Msg || req.flags & FLAG_EXHAUST_ALLOWED == 0 {
        return None;
    }
    let reply = bson::RawDocument::from_bytes(reply).ok()?;
    if !matches!(reply.get("ok"), Ok(Some(RawBsonRef::Double(v))) if v == 1.0) {
        return None;
    }
    match req.command_name()? {
        "hello" | "isMaster" | "ismaster" => {
            commands::hello::awaitable(&req.body)?;
            // Await the next change relative to the topologyVersion just sent.
            let tv = match reply.get("topologyVersion") {
                Ok(Some(RawBsonRef::Document(d))) => d.to_raw_document_buf(),
                _ => return None,
            };
            let mut body = req.body.to_document().ok()?;
            body.insert("topologyVersion", tv.to_document().ok()?);
            let mut next = req.clone();
            next.body = RawDocumentBuf::from_document(&body).ok()?;
            Some(next)
        }
        "getMore" => {
            let cursor = match reply.get("cursor") {
                Ok(Some(RawBsonRef::Document(c))) => c,
                _ => return None,
            };
            match cursor.get("id") {
                Ok(Some(RawBsonRef::Int64(0))) | Err(_) | Ok(None) => None,
                _ => Some(req.clone()),
            }
        }
        _ => None,
    }
}

async fn process(
    shared: &Arc<Shared>,
    ctx: &mut ConnCtx,
    mut req: Request,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    next_id: &mut i32,
) -> bool {
    let mut response_to = req.request_id;
    loop {
        let body = match commands::run(shared, ctx, &req).await {
            Outcome::Close => return false,
            Outcome::Reply(body) => body,
        };
        if req.kind == RequestKind::Msg && req.flags & FLAG_MORE_TO_COME != 0 {
            // The client asked for no reply (unacknowledged write).
            return true;
        }
        let next = exhaust_next(&req, &body);
        match write_reply(wr, &req, response_to, next_id, &body, next.is_some()).await {
            Ok(rid) => response_to = rid,
            Err(_) => return false,
        }
        match next {
            Some(n) => req = n,
            None => return true,
        }
        // A paused server also stops streaming (monitors then time out, as with a hung mongod).
        let mut paused = shared.paused_tx.subscribe();
        if paused.wait_for(|p| !*p).await.is_err() {
            return false;
        }
    }
}
