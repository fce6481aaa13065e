//! One change stream per database, read in its own task and forwarded as [`StreamMsg`]s.
//!
//! The driver resumes by itself after network errors and resumable server errors. This task adds
//! what the driver leaves to us: reopening after other transient failures from the last position
//! it reported, reopening after an `invalidate` (with `startAfter`), and reporting the high-water
//! mark (`postBatchResumeToken`) after every empty batch so idle databases keep a fresh position.
//!
//! Events over 16 MB (a large document updated with its post-image, say) are split by the server
//! when it can: on MongoDB 7.0+ and 6.0.9+ the stream ends with `$changeStreamSplitLargeEvent`,
//! and the fragments (`splitEvent: {fragment, of}`) are put back together here, in order, before
//! the event is reported with the last fragment's token. Positions are only ever reported at
//! whole events, so a restart never lands inside one; a stream that does start inside one (an
//! older checkpoint) restarts at the event's cluster time and skips what was already reported.
//! A reassembled event keeps only the fields the source reads, so it is no larger than its
//! document (at most 16 MB) plus its metadata. Servers that cannot split stop with a clear error.

use std::time::Duration;

use bson::{doc, RawDocumentBuf, Timestamp};
use mirror_core::telemetry::{RetryReason, SourceTelemetry};
use mirror_core::{ComponentError, ErrorKind};
use mongodb::change_stream::ChangeStream;
use mongodb::options::ReadConcern;
use mongodb::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::MongoSourceConfig;
use crate::errors::{
    classify, code, is_transient, SourceError, BSON_OBJECT_TOO_LARGE, HISTORY_LOST,
};
use crate::token::{token_data, token_from_data, token_time};

/// What the stream task reports.
#[derive(Debug)]
pub enum StreamMsg {
    /// A change event, with its position.
    Event {
        /// The raw event.
        event: RawDocumentBuf,
        /// Its cluster time ([`crate::token::ts_key`]).
        time: u64,
        /// Its resume token's `_data`.
        token: String,
    },
    /// Everything up to this position has been reported.
    Position {
        /// The cluster time.
        time: u64,
        /// The resume token's `_data`.
        token: String,
    },
    /// The position to resume from is older than the oplog (error 286).
    HistoryLost(String),
    /// The stream failed for good.
    Failed(ComponentError),
}

/// Where to start.
#[derive(Clone, Debug)]
pub enum StartAt {
    /// Now.
    Now,
    /// After this token (`resumeAfter`).
    ResumeAfter(String),
    /// After this invalidate token (`startAfter`).
    StartAfter(String),
}

/// Reads `db`'s change stream until `shutdown` or a permanent failure. Whether the server can
/// be reached is reported to `telemetry` as the stream fails and reopens (readiness).
pub async fn run(
    client: Client,
    db: String,
    config: std::sync::Arc<MongoSourceConfig>,
    mut start: StartAt,
    tx: mpsc::Sender<StreamMsg>,
    shutdown: CancellationToken,
    telemetry: std::sync::Arc<SourceTelemetry>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failed = false;
    let mut splits: Option<bool> = None;
    // Set when the stream must restart at an event's beginning: (its cluster time, the token
    // reported last, after which events count).
    let mut restart: Option<(Timestamp, String)> = None;
    loop {
        let split = match splits {
            Some(s) => s,
            None => match server_splits_large_events(&client).await {
                Ok(s) => *splits.insert(s),
                Err(e) => {
                    failed = true;
                    if !handle_error(e, &db, &tx, &shutdown, &mut backoff, &telemetry).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut pieces = Reassembly::default();
        let skip_through = restart.as_ref().map(|(_, t)| t.clone());
        let opened = open(&client, &db, &config, &start, split, restart.take()).await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                failed = true;
                if !handle_error(e, &db, &tx, &shutdown, &mut backoff, &telemetry).await {
                    return;
                }
                continue;
            }
        };
        if std::mem::take(&mut failed) {
            telemetry.set_reachable();
        }
        debug!(db = %db, ?start, split, "change stream open");
        let resumed = skip_through.is_some();
        if let Some(pos) = stream
            .resume_token()
            .and_then(|t| Some((token_time(&t)?, token_data(&t)?)))
            .filter(|_| !resumed)
        {
            if tx
                .send(StreamMsg::Position {
                    time: pos.0,
                    token: pos.1,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = stream.next_if_any() => n,
            };
            match next {
                Ok(Some(event)) => {
                    backoff = Duration::from_millis(100);
                    let event = match pieces.add(event) {
                        Ok(Piece::Whole(event)) => event,
                        Ok(Piece::Partial) => continue,
                        Ok(Piece::StartedInside { cluster_time }) => {
                            // The stream starts inside a split event: restart at its
                            // beginning, counting only what follows the position reported last.
                            let after = match &start {
                                StartAt::ResumeAfter(t) | StartAt::StartAfter(t) => t.clone(),
                                StartAt::Now => String::new(),
                            };
                            warn!(db = %db, "the change stream resumed inside a split event; restarting at its first fragment");
                            restart = Some((cluster_time, after));
                            break;
                        }
                        Err(message) => {
                            let _ = tx
                                .send(StreamMsg::Failed(ComponentError::permanent(SourceError(
                                    format!("a split change event of `{db}`: {message}"),
                                ))))
                                .await;
                            return;
                        }
                    };
                    let (Some(token), Some(time)) = (event_token(&event), event_time(&event))
                    else {
                        let _ = tx
                            .send(StreamMsg::Failed(ComponentError::permanent(
                                crate::errors::SourceError(format!(
                                    "a change event of `{db}` has no resume token or cluster time"
                                )),
                            )))
                            .await;
                        return;
                    };
                    if skip_through
                        .as_deref()
                        .is_some_and(|after| token.as_str() <= after)
                    {
                        // Reported before the restart at the split event's beginning.
                        continue;
                    }
                    let invalidate = matches!(event.get_str("operationType"), Ok("invalidate"));
                    start = StartAt::ResumeAfter(token.clone());
                    if tx
                        .send(StreamMsg::Event {
                            event,
                            time,
                            token: token.clone(),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if invalidate {
                        // The cursor is closed after an invalidate; only `startAfter` may pass it.
                        start = StartAt::StartAfter(token);
                        break;
                    }
                }
                Ok(None) => {
                    // Inside a split event the position stays at the last whole event.
                    if let Some(t) = stream.resume_token().filter(|_| !pieces.in_progress()) {
                        if let (Some(time), Some(token)) = (token_time(&t), token_data(&t)) {
                            start = StartAt::ResumeAfter(token.clone());
                            if tx.send(StreamMsg::Position { time, token }).await.is_err() {
                                return;
                            }
                        }
                    }
                    if !stream.is_alive() {
                        break;
                    }
                }
                Err(e) => {
                    failed = true;
                    if !handle_error(e, &db, &tx, &shutdown, &mut backoff, &telemetry).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

async fn open(
    client: &Client,
    db: &str,
    config: &MongoSourceConfig,
    start: &StartAt,
    split: bool,
    restart: Option<(Timestamp, String)>,
) -> mongodb::error::Result<ChangeStream<RawDocumentBuf>> {
    let database = client.database(db);
    // Change streams read at majority only (mongod refuses another level with InvalidOptions):
    // explicit, so that a `readConcernLevel` in the URI cannot break them.
    let mut watch = database
        .watch()
        .full_document(config.full_document.as_option())
        .read_concern(ReadConcern::majority())
        .max_await_time(config.max_await)
        .batch_size(config.batch_size.min(u32::MAX as usize) as u32);
    if split {
        watch = watch.pipeline([doc! {"$changeStreamSplitLargeEvent": {}}]);
    }
    match (restart, start) {
        (Some((time, _)), _) => watch = watch.start_at_operation_time(time),
        (None, StartAt::Now) => {}
        (None, StartAt::ResumeAfter(t)) => watch = watch.resume_after(token_from_data(t)),
        (None, StartAt::StartAfter(t)) => {
            if let Some(token) = token_from_data(t) {
                watch = watch.start_after(token);
            }
        }
    }
    Ok(watch.await?.with_type::<RawDocumentBuf>())
}

/// Whether the server splits events over 16 MB with `$changeStreamSplitLargeEvent`: MongoDB 7.0
/// and later, and 6.0 from 6.0.9 (the stage was backported there, SERVER-74301), by `buildInfo`'s
/// version. A server that refuses `buildInfo` is judged by its wire version (21 is 7.0).
async fn server_splits_large_events(client: &Client) -> mongodb::error::Result<bool> {
    let admin = client.database("admin");
    match admin.run_command(doc! {"buildInfo": 1}).await {
        Ok(info) => Ok(info.get_str("version").is_ok_and(splits_large_events)),
        Err(e) if code(&e).is_some() => {
            let hello = admin.run_command(doc! {"hello": 1}).await?;
            let wire = match hello.get("maxWireVersion") {
                Some(bson::Bson::Int32(v)) => i64::from(*v),
                Some(bson::Bson::Int64(v)) => *v,
                _ => 0,
            };
            Ok(wire >= 21)
        }
        Err(e) => Err(e),
    }
}

/// Whether a MongoDB version (`"7.0.2"`, `"6.0.9-ent"`) has `$changeStreamSplitLargeEvent`.
pub fn splits_large_events(version: &str) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (major, minor, patch) = (
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    );
    major >= 7 || (major == 6 && minor == 0 && patch >= 9)
}

/// What a received document is, once split events are put back together.
enum Piece {
    /// A whole event (never split, or reassembled).
    Whole(RawDocumentBuf),
    /// A fragment that is not the last one: more are coming.
    Partial,
    /// A fragment other than the first one with no event in progress: the stream started inside
    /// a split event (at this cluster time).
    StartedInside { cluster_time: Timestamp },
}

/// The fields of a reassembled event the source reads (the fan-out reads `operationType`, `ns`,
/// `to`, `documentKey` and `fullDocument`; the rest identifies the event). A split event's other
/// large parts — `updateDescription` and `fullDocumentBeforeChange` — are left out, which keeps a
/// reassembled event within its document's size.
const KEPT_FIELDS: &[&str] = &[
    "operationType",
    "clusterTime",
    "wallTime",
    "ns",
    "to",
    "documentKey",
    "fullDocument",
    "collectionUUID",
    "txnNumber",
    "lsid",
];

/// The fragments of one split event received so far.
#[derive(Default)]
struct Reassembly {
    /// The next fragment expected (1-based) and the count, while an event is in progress.
    progress: Option<(i32, i32)>,
    fields: Vec<(String, bson::RawBson)>,
}

impl Reassembly {
    fn in_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Takes one document of the stream.
    fn add(&mut self, doc: RawDocumentBuf) -> Result<Piece, String> {
        let Ok(split) = doc.get_document("splitEvent") else {
            if self.progress.is_some() {
                return Err("a whole event arrived before the last fragment of a split one".into());
            }
            return Ok(Piece::Whole(doc));
        };
        let (Ok(n), Ok(of)) = (split.get_i32("fragment"), split.get_i32("of")) else {
            return Err(format!("malformed splitEvent {split:?}"));
        };
        match self.progress {
            None if n > 1 => {
                let cluster_time = doc
                    .get_timestamp("clusterTime")
                    .ok()
                    .or_else(|| {
                        let data = doc.get_document("_id").ok()?.get_str("_data").ok()?;
                        let key = u64::from_str_radix(data.get(2..18)?, 16).ok()?;
                        Some(crate::token::ts_from_key(key))
                    })
                    .ok_or("a fragment without a cluster time")?;
                return Ok(Piece::StartedInside { cluster_time });
            }
            None if n == 1 => {}
            Some((expected, count)) if n == expected && of == count => {}
            _ => {
                return Err(format!(
                    "fragment {n} of {of} arrived out of order (expected {:?})",
                    self.progress
                ))
            }
        }
        for item in doc.iter() {
            let (k, v) = item.map_err(|e| e.to_string())?;
            if KEPT_FIELDS.contains(&k) {
                self.fields.push((k.to_owned(), v.to_raw_bson()));
            }
        }
        if n < of {
            self.progress = Some((n + 1, of));
            return Ok(Piece::Partial);
        }
        // The last fragment: its token stands for the whole event.
        let mut event = RawDocumentBuf::new();
        if let Ok(id) = doc.get_document("_id") {
            event.append("_id", id.to_raw_document_buf());
        }
        for (k, v) in std::mem::take(&mut self.fields) {
            event.append(k, v);
        }
        self.progress = None;
        Ok(Piece::Whole(event))
    }
}

/// Reports or waits out an error; false when the task should end.
async fn handle_error(
    e: mongodb::error::Error,
    db: &str,
    tx: &mpsc::Sender<StreamMsg>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
    telemetry: &SourceTelemetry,
) -> bool {
    if code(&e) == Some(HISTORY_LOST) {
        let _ = tx.send(StreamMsg::HistoryLost(e.to_string())).await;
        return false;
    }
    if code(&e) == Some(BSON_OBJECT_TOO_LARGE) {
        // Only a server that cannot split events gets here (mirror splits them on MongoDB 7.0+
        // and 6.0.9+): stopping with a clear error beats skipping the event and losing rows.
        let _ = tx
            .send(StreamMsg::Failed(ComponentError::permanent(SourceError(
                format!(
                    "a change event of `{db}` is larger than MongoDB's 16 MB limit (error 10334 \
                 BSONObjectTooLarge), so the change stream cannot deliver it and mirror cannot \
                 continue without losing it. MongoDB 7.0 and later, and 6.0.9 and later, split \
                 such events ($changeStreamSplitLargeEvent), which mirror reassembles; this server \
                 cannot. An update event carries the changed fields and the whole document, so a \
                 document over about 8 MB whose large fields change cannot be streamed here: \
                 upgrade MongoDB, keep documents smaller, or exclude the collection. ({e})"
                ),
            ))))
            .await;
        return false;
    }
    if !is_transient(&e) {
        let _ = tx
            .send(StreamMsg::Failed(classify(
                e,
                &format!("reading the change stream of `{db}`"),
            )))
            .await;
        return false;
    }
    warn!(db = %db, error = %e, retry_in = ?backoff, "change stream interrupted; reopening");
    let message = format!("the change stream of `{db}`: {e}");
    telemetry.set_unreachable(message.clone());
    telemetry.stats.error(ErrorKind::Transient, &message);
    telemetry.stats.retry(match *e.kind {
        mongodb::error::ErrorKind::Io(_)
        | mongodb::error::ErrorKind::ConnectionPoolCleared { .. }
        | mongodb::error::ErrorKind::ServerSelection { .. } => RetryReason::Network,
        _ => RetryReason::Transient,
    });
    tokio::select! {
        _ = shutdown.cancelled() => return false,
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(30));
    true
}

fn event_token(event: &RawDocumentBuf) -> Option<String> {
    event
        .get_document("_id")
        .ok()?
        .get_str("_data")
        .ok()
        .map(str::to_owned)
}

fn event_time(event: &RawDocumentBuf) -> Option<u64> {
    event
        .get_timestamp("clusterTime")
        .ok()
        .map(crate::token::ts_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_split_large_events() {
        for v in ["7.0.0", "7.0.2", "8.0.4", "6.0.9", "6.0.14-ent"] {
            assert!(splits_large_events(v), "{v}");
        }
        for v in ["6.0.8", "6.0.0", "6.1.0", "6.3.2", "5.0.20", "4.4.1", ""] {
            assert!(!splits_large_events(v), "{v}");
        }
    }

    fn fragment(n: i32, of: i32, fields: bson::Document) -> RawDocumentBuf {
        let mut d = doc! {
            "_id": {"_data": format!("82000000010000000{n}")},
            "splitEvent": {"fragment": n, "of": of},
            "clusterTime": Timestamp { time: 1, increment: 0 },
        };
        d.extend(fields);
        RawDocumentBuf::from_document(&d).unwrap()
    }

    #[test]
    fn fragments_are_put_back_together_in_order_keeping_what_the_source_reads() {
        let mut r = Reassembly::default();
        let whole = RawDocumentBuf::from_document(&doc! {"_id": {"_data": "8201"}}).unwrap();
        assert!(matches!(r.add(whole), Ok(Piece::Whole(_))));
        let first = fragment(
            1,
            2,
            doc! {"operationType": "update", "updateDescription": {"updatedFields": {"a": "big"}}},
        );
        assert!(matches!(r.add(first.clone()), Ok(Piece::Partial)));
        assert!(r.in_progress());
        let Ok(Piece::Whole(event)) = r.add(fragment(
            2,
            2,
            doc! {"fullDocument": {"_id": 1, "a": "big"}, "fullDocumentBeforeChange": {"_id": 1}},
        )) else {
            panic!("the whole event")
        };
        let event = event.to_document().unwrap();
        assert_eq!(
            event.get_document("_id").unwrap(),
            &doc! {"_data": "820000000100000002"}
        );
        assert_eq!(event.get_str("operationType").unwrap(), "update");
        assert_eq!(
            event.get_document("fullDocument").unwrap(),
            &doc! {"_id": 1, "a": "big"}
        );
        assert!(!event.contains_key("updateDescription"));
        assert!(!event.contains_key("fullDocumentBeforeChange"));
        assert!(!event.contains_key("splitEvent"));
        assert!(!r.in_progress());

        // A stream that starts inside a split event, and fragments out of order.
        assert!(matches!(
            r.add(fragment(2, 3, doc! {})),
            Ok(Piece::StartedInside { .. })
        ));
        assert!(matches!(r.add(fragment(1, 3, doc! {})), Ok(Piece::Partial)));
        assert!(r.add(fragment(3, 3, doc! {})).is_err());
    }
}
