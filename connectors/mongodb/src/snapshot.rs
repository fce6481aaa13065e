//! The initial sync's readers: split points, and one task per `_id` range paging through it.
//!
//! Paging never uses `{_id: {$gt: last}}`, which brackets by type and would skip every `_id` of a
//! later type class; it walks the `_id` index with `hint` and `min`/`max` bounds instead, which
//! cover every type in BSON order. Each page is one `find` with a limit, in the reader's session,
//! and carries the cluster times before and after it (`low`, `high`) for the watermark check that
//! makes the copy correct while writes go on (see `worker/watermark.rs`). A lost cursor or connection loses
//! at most the page in flight, which is read again from the last `_id`.

use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use mirror_core::ComponentError;
use mongodb::options::{Hint, SelectionCriteria};
use mongodb::{Client, ClientSession, Collection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::errors::{classify, is_transient};
use crate::token::ts_key;

/// About how many bytes of documents a page holds (fewer documents than `snapshot_page_size` when
/// they are large).
pub const PAGE_BYTES: usize = 2 << 20;

/// A page of one range.
#[derive(Debug)]
pub struct Chunk {
    /// The table (index in the worker).
    pub table: usize,
    /// The range (index in the table's state).
    pub range: usize,
    /// The documents, in `_id` order.
    pub docs: Vec<RawDocumentBuf>,
    /// The last `_id` of the page.
    pub last_id: Option<Bson>,
    /// Cluster time before the page was read.
    pub low: u64,
    /// Cluster time after it was read.
    pub high: u64,
    /// Whether the range is complete with this page.
    pub done: bool,
}

/// What readers send.
#[derive(Debug)]
pub enum ReaderMsg {
    /// A reader starts (or restarts) at cluster time `low`: events after it must be watched.
    Started {
        /// The table.
        table: usize,
        /// The range.
        range: usize,
        /// Cluster time before its next page.
        low: u64,
    },
    /// A page.
    Chunk(Chunk),
    /// The reader failed for good.
    Failed(ComponentError),
}

/// Split points for `readers` ranges of a collection of about `estimated` documents: `_id`s of a
/// random sample, sorted by the server (so in BSON order), at even quantiles.
pub async fn split_points(
    coll: &Collection<RawDocumentBuf>,
    readers: usize,
    estimated: u64,
    page: usize,
) -> Result<Vec<Bson>, ComponentError> {
    if readers < 2 || estimated < 2 * page as u64 {
        return Ok(Vec::new());
    }
    let ranges = readers.min((estimated / page as u64) as usize).max(2);
    let size = (ranges * 32).min(10_000) as i64;
    let pipeline = vec![
        doc! {"$sample": {"size": size}},
        doc! {"$project": {"_id": 1}},
        doc! {"$sort": {"_id": 1}},
    ];
    let mut cursor = coll
        .clone_with_type::<Document>()
        .aggregate(pipeline)
        .await
        .map_err(|e| {
            classify(
                e,
                &format!("sampling `{}` for split points", coll.namespace()),
            )
        })?;
    let mut ids = Vec::new();
    while cursor
        .advance()
        .await
        .map_err(|e| classify(e, "sampling for split points"))?
    {
        let d = cursor
            .deserialize_current()
            .map_err(|e| classify(e, "sampling for split points"))?;
        if let Some(id) = d.get("_id") {
            ids.push(id.clone());
        }
    }
    let mut points: Vec<Bson> = Vec::new();
    for i in 1..ranges {
        let id = &ids[i * ids.len() / ranges];
        if points.last() != Some(id) && ids.first() != Some(id) {
            points.push(id.clone());
        }
    }
    Ok(points)
}

/// A range to read.
#[derive(Clone, Debug)]
pub struct RangeJob {
    /// The table index.
    pub table: usize,
    /// The range index.
    pub range: usize,
    /// Inclusive lower bound.
    pub lo: Option<Bson>,
    /// Exclusive upper bound.
    pub hi: Option<Bson>,
    /// Resume after this `_id`.
    pub after: Option<Bson>,
}

/// Reads a range page by page into `tx`.
pub async fn read_range(
    client: Client,
    coll: Collection<RawDocumentBuf>,
    read_preference: Option<SelectionCriteria>,
    mut job: RangeJob,
    page: usize,
    tx: mpsc::Sender<ReaderMsg>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match read_pages(
            &client,
            &coll,
            read_preference.clone(),
            &mut job,
            page,
            &tx,
            &shutdown,
        )
        .await
        {
            Ok(()) => return,
            Err(e) if is_transient(&e) => {
                warn!(collection = %coll.namespace(), error = %e, retry_in = ?backoff, "initial-sync read interrupted; reading again from the last _id");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                let _ = tx
                    .send(ReaderMsg::Failed(classify(
                        e,
                        &format!("reading `{}`", coll.namespace()),
                    )))
                    .await;
                return;
            }
        }
    }
}

async fn cluster_time(
    client: &Client,
    coll: &Collection<RawDocumentBuf>,
    session: &mut ClientSession,
) -> mongodb::error::Result<u64> {
    client
        .database(&coll.namespace().db)
        .run_command(doc! {"ping": 1})
        .session(&mut *session)
        .await?;
    Ok(session.operation_time().map(ts_key).unwrap_or(0))
}

async fn read_pages(
    client: &Client,
    coll: &Collection<RawDocumentBuf>,
    read_preference: Option<SelectionCriteria>,
    job: &mut RangeJob,
    page: usize,
    tx: &mpsc::Sender<ReaderMsg>,
    shutdown: &CancellationToken,
) -> mongodb::error::Result<()> {
    // Pages hold at most `page` documents and about `PAGE_BYTES`: the page size adapts to the
    // average document size seen so far, so memory stays bounded whatever the documents' size.
    let mut page_docs = page;
    let mut session = client.start_session().await?;
    let mut low = cluster_time(client, coll, &mut session).await?;
    if tx
        .send(ReaderMsg::Started {
            table: job.table,
            range: job.range,
            low,
        })
        .await
        .is_err()
    {
        return Ok(());
    }
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // `min` is inclusive: when resuming after an `_id`, ask for one more and drop that `_id`.
        let (min, skip_first) = match (&job.after, &job.lo) {
            (Some(after), _) => (Some(doc! {"_id": after.clone()}), true),
            (None, Some(lo)) => (Some(doc! {"_id": lo.clone()}), false),
            (None, None) => (None, false),
        };
        let want = page_docs + usize::from(skip_first);
        // A positive limit: if the 16 MB reply cap cuts the first batch short, the driver fetches
        // the rest, so "fewer than asked" really means the range is exhausted.
        let mut find = coll
            .find(doc! {})
            .hint(Hint::Keys(doc! {"_id": 1}))
            .limit(want as i64)
            .batch_size(want as u32);
        if let Some(min) = min {
            find = find.min(min);
        }
        if let Some(hi) = &job.hi {
            find = find.max(doc! {"_id": hi.clone()});
        }
        if let Some(rp) = &read_preference {
            find = find.selection_criteria(rp.clone());
        }
        let mut cursor = find.session(&mut session).await?;
        let mut docs = Vec::with_capacity(want);
        while let Some(doc) = cursor.next(&mut session).await {
            docs.push(doc?);
        }
        let fetched = docs.len();
        let bytes: usize = docs.iter().map(|d| d.as_bytes().len()).sum();
        if fetched > 0 {
            page_docs = (PAGE_BYTES / bytes.div_ceil(fetched)).clamp(1, page);
        }
        if skip_first
            && docs
                .first()
                .is_some_and(|d| id_of(d).as_ref() == job.after.as_ref())
        {
            docs.remove(0);
        }
        let high = session.operation_time().map(ts_key).unwrap_or(low).max(low);
        let done = fetched < want;
        let last_id = docs.last().and_then(id_of).or_else(|| job.after.clone());
        job.after = last_id.clone();
        let chunk = Chunk {
            table: job.table,
            range: job.range,
            docs,
            last_id,
            low,
            high,
            done,
        };
        if tx.send(ReaderMsg::Chunk(chunk)).await.is_err() || done {
            return Ok(());
        }
        low = high;
    }
}

fn id_of(doc: &RawDocumentBuf) -> Option<Bson> {
    let raw = doc.get("_id").ok()??;
    Bson::try_from(raw.to_raw_bson()).ok()
}
