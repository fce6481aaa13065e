//! One change stream per database, read in its own task and forwarded as [`StreamMsg`]s.
//!
//! The driver resumes by itself after network errors and resumable server errors. This task adds
//! what the driver leaves to us: reopening after other transient failures from the last position
//! it reported, reopening after an `invalidate` (with `startAfter`), and reporting the high-water
//! mark (`postBatchResumeToken`) after every empty batch so idle databases keep a fresh position.

use std::time::Duration;

use bson::RawDocumentBuf;
use mirror_core::telemetry::{RetryReason, SourceTelemetry};
use mirror_core::{ComponentError, ErrorKind};
use mongodb::change_stream::ChangeStream;
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
    loop {
        let opened = open(&client, &db, &config, &start).await;
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
        debug!(db = %db, ?start, "change stream open");
        if let Some(pos) = stream
            .resume_token()
            .and_then(|t| Some((token_time(&t)?, token_data(&t)?)))
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
                    if let Some(t) = stream.resume_token() {
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
) -> mongodb::error::Result<ChangeStream<RawDocumentBuf>> {
    let database = client.database(db);
    let mut watch = database
        .watch()
        .full_document(config.full_document.as_option())
        .max_await_time(config.max_await)
        .batch_size(config.batch_size.min(u32::MAX as usize) as u32);
    match start {
        StartAt::Now => {}
        StartAt::ResumeAfter(t) => watch = watch.resume_after(token_from_data(t)),
        StartAt::StartAfter(t) => {
            if let Some(token) = token_from_data(t) {
                watch = watch.start_after(token);
            }
        }
    }
    Ok(watch.await?.with_type::<RawDocumentBuf>())
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
        // mongod cannot send an event over 16 MB (e.g. an update of a 10 MB document carries the
        // document twice). Splitting with $changeStreamSplitLargeEvent (MongoDB 7.0+) is not
        // supported yet; stopping with a clear error beats skipping the event and losing rows.
        let _ = tx
            .send(StreamMsg::Failed(ComponentError::permanent(SourceError(
                format!(
                    "a change event of `{db}` is larger than MongoDB's 16 MB limit (error 10334 \
                 BSONObjectTooLarge), so the change stream cannot deliver it and mirror cannot \
                 continue without losing it. An update event carries the changed fields and the \
                 whole document, so a document over about 8 MB whose large fields change cannot \
                 be streamed: keep documents smaller, or exclude the collection. ({e})"
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
