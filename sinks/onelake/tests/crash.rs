//! Crash tests: the writer dies at each step of the publish protocol (and of a truncation) and a new
//! from the last committed batch (as the engine does), finishes the job. The replicated table must
//! equal what was written, with no gap, no number published twice and no stall.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::store::{
    LandingStore, Listing, LocalStore, Object, ObjectInfo, PutMode, StoreError, StoreErrorKind,
};
use mirror_onelake::{LandingZoneWriter, PublishMode, WriterOptions};
use onelake_sim::{LocalDir, Replicator, TableStatus};

/// Which store call the crash hits, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Half of a temp upload reaches the disk.
    DuringTempUpload,
    /// The temp file is uploaded; the rename never happens.
    AfterTempUpload,
    /// The rename happened; the process dies before it learns so.
    AfterRename,
    /// `_mirror_table.json` was rewritten; nothing else.
    AfterStateWrite,
    /// Put mode: the create-only put happened; the process dies before it learns so.
    AfterPut,
    /// Put mode: the process dies before the put.
    BeforePut,
    /// Truncation: the intent is recorded; the folder is untouched.
    AfterIntent,
    /// Truncation: the table folder is deleted; nothing is rebuilt.
    AfterFolderDelete,
    /// Truncation: the folder is rebuilt and the intent removed; the truncation is not acknowledged.
    AfterIntentRemoved,
}

#[derive(Debug)]
struct CrashingStore {
    inner: LocalStore,
    step: Option<(Step, usize)>,
    seen: Mutex<BTreeMap<&'static str, usize>>,
    dead: Mutex<bool>,
    published: Arc<Mutex<Vec<String>>>,
}

fn crash(path: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Permanent, "crash", path, "simulated crash")
}

impl CrashingStore {
    /// Counts a call of `kind`; true if the crash is due at this call for `step`.
    fn due(&self, kind: &'static str, step: Step) -> bool {
        let mut seen = self.seen.lock().unwrap();
        let n = seen.entry(kind).or_default();
        *n += 1;
        matches!(self.step, Some((s, nth)) if s == step && nth == *n)
    }

    fn check_alive(&self, path: &str) -> Result<(), StoreError> {
        if *self.dead.lock().unwrap() {
            return Err(crash(path));
        }
        Ok(())
    }

    fn die(&self, path: &str) -> StoreError {
        *self.dead.lock().unwrap() = true;
        crash(path)
    }
}

#[async_trait]
impl LandingStore for CrashingStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn get(&self, path: &str) -> Result<Option<Object>, StoreError> {
        self.check_alive(path)?;
        self.inner.get(path).await
    }
    async fn head(&self, path: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.check_alive(path)?;
        self.inner.head(path).await
    }
    async fn list(&self, dir: &str) -> Result<Listing, StoreError> {
        self.check_alive(dir)?;
        self.inner.list(dir).await
    }
    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<String, StoreError> {
        self.check_alive(path)?;
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with("_mirror_tmp_") {
            if self.due("temp", Step::DuringTempUpload) {
                // A torn write: the local store never leaves one, but a crash of the machine can.
                let half = bytes.slice(..bytes.len() / 2);
                self.inner.put(path, half, PutMode::Overwrite).await?;
                return Err(self.die(path));
            }
            self.inner.put(path, bytes, mode).await?;
            if matches!(self.step, Some((Step::AfterTempUpload, n)) if n == self.seen.lock().unwrap()["temp"])
            {
                return Err(self.die(path));
            }
            return Ok(String::new());
        }
        if name == "intent.json" && self.due("intent", Step::AfterIntent) {
            self.inner.put(path, bytes, mode).await?;
            return Err(self.die(path));
        }
        if name == "_mirror_table.json" && self.due("state", Step::AfterStateWrite) {
            self.inner.put(path, bytes, mode).await?;
            return Err(self.die(path));
        }
        if mirror_onelake::naming::parse_data_file_name(name).is_some() {
            if self.due("put", Step::BeforePut) {
                return Err(self.die(path));
            }
            let etag = self.inner.put(path, bytes, mode).await?;
            self.published.lock().unwrap().push(path.to_owned());
            if matches!(self.step, Some((Step::AfterPut, n)) if n == self.seen.lock().unwrap()["put"])
            {
                return Err(self.die(path));
            }
            return Ok(etag);
        }
        self.inner.put(path, bytes, mode).await
    }
    async fn rename_no_replace(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.check_alive(to)?;
        let due = self.due("rename", Step::AfterRename);
        self.inner.rename_no_replace(from, to).await?;
        self.published.lock().unwrap().push(to.to_owned());
        if due {
            return Err(self.die(to));
        }
        Ok(())
    }
    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.check_alive(path)?;
        self.inner.delete(path).await
    }
    async fn delete_dir(&self, dir: &str) -> Result<(), StoreError> {
        self.check_alive(dir)?;
        let intent = dir.starts_with("_mirror_truncate/");
        let due = if intent {
            self.due("intent_removed", Step::AfterIntentRemoved)
        } else {
            self.due("folder_delete", Step::AfterFolderDelete)
        };
        self.inner.delete_dir(dir).await?;
        if !intent {
            // File numbers start again at 1 in the rebuilt folder.
            self.published
                .lock()
                .unwrap()
                .push(format!("truncated {dir}"));
        }
        if due {
            return Err(self.die(dir));
        }
        Ok(())
    }
}

/// A batch of rows, or a truncation (`ops` empty).
type Item = (Arc<Table>, Option<RecordBatch>, Vec<RowOp>);

/// The rows of [`rows_batches`] with truncations in between.
fn batches() -> Vec<Item> {
    let rows = rows_batches();
    let orders = rows[0].0.clone();
    let people = rows[1].0.clone();
    let mut out: Vec<Item> = Vec::new();
    for (i, (table, batch, ops)) in rows.into_iter().enumerate() {
        out.push((table, Some(batch), ops));
        if i == 3 {
            // `orders` emptied with rows of both tables before it, refilled after it.
            out.push((orders.clone(), None, Vec::new()));
        }
    }
    // `people` emptied last: an empty table remains.
    out.push((people, None, Vec::new()));
    out
}

fn rows_batches() -> Vec<(Arc<Table>, RecordBatch, Vec<RowOp>)> {
    let orders = Arc::new(Table::new(TableId::with_schema("s", "orders"), ["id"]));
    let people = Arc::new(Table::new(TableId::new("people"), ["id"]));
    let rows = |ids: Vec<i64>, tag: &str, extra: bool| {
        let names: Vec<String> = ids.iter().map(|i| format!("{tag}{i}")).collect();
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(ids.clone()))),
            ("name", Arc::new(StringArray::from(names))),
        ];
        if extra {
            cols.push(("extra", Arc::new(Int64Array::from(ids))));
        }
        RecordBatch::try_from_iter(cols).unwrap()
    };
    vec![
        (
            orders.clone(),
            rows((0..30).collect(), "a", false),
            vec![RowOp::Insert; 30],
        ),
        (
            people.clone(),
            rows((0..10).collect(), "p", false),
            vec![RowOp::Insert; 10],
        ),
        (
            orders.clone(),
            rows((10..20).collect(), "b", false),
            vec![RowOp::Update; 10],
        ),
        (
            orders.clone(),
            rows((25..35).collect(), "c", true),
            vec![RowOp::Upsert; 10],
        ),
        (
            people.clone(),
            rows((0..5).collect(), "", false),
            vec![RowOp::Delete; 5],
        ),
        (
            orders.clone(),
            rows((0..3).collect(), "", false),
            vec![RowOp::Delete; 3],
        ),
        (
            orders,
            rows((40..45).collect(), "d", true),
            vec![RowOp::Insert; 5],
        ),
    ]
}

/// Feeds batches from `start` like the engine: write, flush, then "commit the checkpoint".
/// Returns the number of batches committed when the writer died (or all of them).
async fn run(
    dir: &std::path::Path,
    mode: PublishMode,
    start: usize,
    step: Option<(Step, usize)>,
    published: Arc<Mutex<Vec<String>>>,
) -> usize {
    let store = Arc::new(CrashingStore {
        inner: LocalStore::new(dir),
        step,
        seen: Mutex::new(BTreeMap::new()),
        dead: Mutex::new(false),
        published,
    });
    let options = WriterOptions {
        publish: mode,
        flush_interval: Duration::from_millis(10),
        marker_free_initial_load: true,
        ..WriterOptions::default()
    };
    let Ok(mut lz) = LandingZoneWriter::open(store, options).await else {
        return start;
    };
    let all = batches();
    for (i, (table, rows, ops)) in all.iter().enumerate().skip(start) {
        let written = match rows {
            Some(rows) => lz.write_rows(table, rows.clone(), ops.clone()).await,
            None => lz.truncate(table).await,
        };
        if written.is_err() {
            return i;
        }
        if lz.flush().await.is_err() {
            return i;
        }
    }
    lz.close().await.expect("close");
    all.len()
}

async fn crash_and_recover(mode: PublishMode, step: Step, nth: usize) {
    let dir = tempfile::tempdir().unwrap();
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut fabric = Replicator::new(Arc::new(LocalDir::new(dir.path())));
    let committed = run(dir.path(), mode, 0, Some((step, nth)), published.clone()).await;
    assert!(
        committed < batches().len(),
        "{step:?}#{nth}: the crash must happen"
    );
    // Fabric keeps working while the writer is down.
    fabric.scan().unwrap();
    let done = run(dir.path(), mode, committed, None, published.clone()).await;
    assert_eq!(
        done,
        batches().len(),
        "{step:?}#{nth}: the restart finishes"
    );
    fabric.scan().unwrap();

    let mut model = Model::default();
    for (table, rows, ops) in batches() {
        let folder = mirror_onelake::naming::table_folder(&table.id).unwrap();
        match rows {
            Some(rows) => model.apply_rows(&folder, &table.key_columns, &rows, &ops),
            None => model.tables.entry(folder).or_default().clear(),
        }
    }
    assert_replicated(&fabric, &model);
    for t in fabric.tables().values() {
        assert_eq!(
            t.status,
            TableStatus::Replicating,
            "{step:?}#{nth}: {}",
            t.path
        );
    }
    assert_contract(dir.path());
    // No number published twice into one incarnation of a folder.
    let published = published.lock().unwrap().clone();
    let mut seen = std::collections::BTreeSet::new();
    for path in &published {
        if let Some(folder) = path.strip_prefix("truncated ") {
            seen.retain(|p: &String| !p.starts_with(&format!("{folder}/")));
            continue;
        }
        assert!(
            seen.insert(path.clone()),
            "{step:?}#{nth}: {path} published twice: {published:?}"
        );
    }
    assert!(
        !dir.path().join("_mirror_truncate").exists()
            || std::fs::read_dir(dir.path().join("_mirror_truncate"))
                .unwrap()
                .next()
                .is_none(),
        "{step:?}#{nth}: a truncation intent was left behind"
    );
    assert!(
        fabric.table("people").unwrap().is_empty(),
        "{step:?}#{nth}: people emptied"
    );
}

#[tokio::test]
async fn rename_mode_survives_a_crash_at_every_step() {
    for nth in 1..=4 {
        crash_and_recover(PublishMode::Rename, Step::DuringTempUpload, nth).await;
        crash_and_recover(PublishMode::Rename, Step::AfterTempUpload, nth).await;
        crash_and_recover(PublishMode::Rename, Step::AfterRename, nth).await;
    }
    for nth in 1..=3 {
        crash_and_recover(PublishMode::Rename, Step::AfterStateWrite, nth).await;
    }
}

#[tokio::test]
async fn a_truncation_survives_a_crash_at_every_step() {
    for nth in 1..=2 {
        for step in [
            Step::AfterIntent,
            Step::AfterFolderDelete,
            Step::AfterIntentRemoved,
        ] {
            crash_and_recover(PublishMode::Rename, step, nth).await;
        }
    }
    crash_and_recover(PublishMode::Put, Step::AfterFolderDelete, 1).await;
}

#[tokio::test]
async fn put_mode_survives_a_crash_at_every_step() {
    for nth in 1..=4 {
        crash_and_recover(PublishMode::Put, Step::BeforePut, nth).await;
        crash_and_recover(PublishMode::Put, Step::AfterPut, nth).await;
    }
    crash_and_recover(PublishMode::Put, Step::AfterStateWrite, 2).await;
}
