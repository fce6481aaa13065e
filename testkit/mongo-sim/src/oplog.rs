//! The cluster clock and the oplog: every write gets a unique, increasing `Timestamp`
//! (`clusterTime`/`operationTime`); the oplog keeps the recent writes as change-event sources,
//! bounded in bytes like mongod's capped `local.oplog.rs`, and remembers the newest timestamp it
//! has dropped so that resuming from before it fails with ChangeStreamHistoryLost (286).

use std::collections::VecDeque;

use bson::{Document, RawBson, Timestamp};

use crate::storage::Doc;
use crate::update::UpdateDescription;

/// Hands out cluster times: seconds since the epoch plus an increment within the second.
#[derive(Debug, Clone)]
pub struct Clock {
    last: Timestamp,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            last: Timestamp {
                time: now_secs(),
                increment: 0,
            },
        }
    }
}

pub fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// The latest cluster time handed out.
    pub fn now(&self) -> Timestamp {
        self.last
    }

    /// A new cluster time, strictly greater than every previous one.
    pub fn tick(&mut self) -> Timestamp {
        let secs = now_secs();
        self.last = if secs > self.last.time {
            Timestamp {
                time: secs,
                increment: 1,
            }
        } else {
            Timestamp {
                time: self.last.time,
                increment: self.last.increment + 1,
            }
        };
        self.last
    }
}

/// The timestamp immediately after `ts`.
pub fn next_ts(ts: Timestamp) -> Timestamp {
    if ts.increment == u32::MAX {
        Timestamp {
            time: ts.time + 1,
            increment: 0,
        }
    } else {
        Timestamp {
            time: ts.time,
            increment: ts.increment + 1,
        }
    }
}

pub fn ts_key(ts: Timestamp) -> u64 {
    (u64::from(ts.time) << 32) | u64::from(ts.increment)
}

pub fn ts_from_key(k: u64) -> Timestamp {
    Timestamp {
        time: (k >> 32) as u32,
        increment: k as u32,
    }
}

/// What an oplog entry records.
#[derive(Debug, Clone)]
pub enum OpKind {
    Insert {
        id: RawBson,
        doc: Doc,
    },
    Update {
        id: RawBson,
        description: Box<UpdateDescription>,
        /// Stored only when the collection has `changeStreamPreAndPostImages` enabled.
        post_image: Option<Doc>,
        pre_image: Option<Doc>,
    },
    Replace {
        id: RawBson,
        doc: Doc,
        pre_image: Option<Doc>,
    },
    Delete {
        id: RawBson,
        pre_image: Option<Doc>,
    },
    /// `options` is the event's `operationDescription` (what mongod's oplog `o` holds besides
    /// the `create` field: `idIndex`, or `viewOn`/`pipeline`, or `timeseries`).
    Create {
        options: Document,
    },
    CreateIndexes {
        indexes: Vec<Document>,
    },
    DropIndexes {
        indexes: Vec<Document>,
    },
    /// `collMod`; `options` is what was changed.
    Modify {
        options: Document,
    },
    Drop,
    /// A rename; `drop_target` is the UUID of the collection the rename replaced (mongod logs
    /// one `renameCollection` entry with `dropTarget`, no separate drop).
    Rename {
        to_db: String,
        to_coll: String,
        drop_target: Option<[u8; 16]>,
    },
    DropDatabase,
    /// Periodic no-op write (mongod's `writePeriodicNoops`): advances time, no event.
    Noop,
}

#[derive(Debug, Clone)]
pub struct OplogEntry {
    pub ts: Timestamp,
    pub wall_ms: i64,
    pub db: String,
    /// Empty for database-level entries.
    pub coll: String,
    pub uuid: Option<[u8; 16]>,
    pub op: OpKind,
    pub size: usize,
}

impl OplogEntry {
    pub fn approx_size(op: &OpKind, db: &str, coll: &str) -> usize {
        let body = match op {
            OpKind::Insert { doc, .. } | OpKind::Replace { doc, .. } => doc.as_bytes().len(),
            OpKind::Update { description, .. } => {
                bson::to_vec(&description.updated_fields)
                    .map(|v| v.len())
                    .unwrap_or(64)
                    + description
                        .removed_fields
                        .iter()
                        .map(String::len)
                        .sum::<usize>()
            }
            _ => 32,
        };
        body + db.len() + coll.len() + 64
    }
}

/// The bounded oplog.
#[derive(Debug)]
pub struct Oplog {
    entries: VecDeque<OplogEntry>,
    bytes: usize,
    max_bytes: usize,
    /// The newest timestamp no longer retained (zero when nothing was dropped).
    pub dropped_through: Timestamp,
}

impl Oplog {
    pub fn new(max_bytes: usize) -> Self {
        Oplog {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped_through: Timestamp {
                time: 0,
                increment: 0,
            },
        }
    }

    pub fn push(&mut self, entry: OplogEntry) {
        self.bytes += entry.size;
        self.entries.push_back(entry);
        self.enforce();
    }

    fn enforce(&mut self) {
        // Always keep the newest entry, as mongod's capped oplog does.
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.size;
            self.dropped_through = e.ts;
        }
    }

    pub fn set_max_bytes(&mut self, max: usize) {
        self.max_bytes = max;
        self.enforce();
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry with a timestamp `<= through`.
    pub fn truncate_through(&mut self, through: Timestamp) {
        while self
            .entries
            .front()
            .is_some_and(|e| ts_key(e.ts) <= ts_key(through))
        {
            self.pop_front();
        }
        if ts_key(through) > ts_key(self.dropped_through) {
            self.dropped_through = through;
        }
    }

    pub fn oldest(&self) -> Option<Timestamp> {
        self.entries.front().map(|e| e.ts)
    }

    pub fn newest(&self) -> Option<Timestamp> {
        self.entries.back().map(|e| e.ts)
    }

    /// Whether resuming at `ts` (events at or after `ts` are needed) has lost history.
    pub fn history_lost(&self, ts: Timestamp) -> bool {
        ts_key(ts) <= ts_key(self.dropped_through)
    }

    /// Index of the first entry with `ts >= from`.
    pub fn position_of(&self, from: Timestamp) -> usize {
        let key = ts_key(from);
        self.entries.partition_point(|e| ts_key(e.ts) < key)
    }

    pub fn get(&self, i: usize) -> Option<&OplogEntry> {
        self.entries.get(i)
    }

    pub fn iter_from(&self, i: usize) -> impl Iterator<Item = &OplogEntry> {
        self.entries.range(i.min(self.entries.len())..)
    }
}
