//! Cursors: the registry of open cursors (Int64 ids), find cursors that resume an index or
//! natural-order scan on each `getMore` (seeing later writes as mongod's yielding cursors do),
//! materialized aggregate results, and change stream cursors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;

use bson::{RawDocumentBuf, Timestamp};

use crate::changestream::ChangeStream;
use crate::matcher::Expr;
use crate::ordering::OrderedBson;
use crate::projection::Projection;
use crate::storage::{Catalog, Doc};

/// How a find walks its collection.
#[derive(Debug, Clone)]
pub enum Scan {
    /// Natural (insertion) order from a record id.
    Natural { next: u64, reverse: bool },
    /// The `_id` index between bounds (`min` inclusive, `max` exclusive), resuming after `last`.
    IdIndex {
        lower: Bound<OrderedBson>,
        upper: Bound<OrderedBson>,
        ascending: bool,
    },
    /// Results computed up front (blocking sort, aggregation).
    Materialized(VecDeque<Doc>),
}

#[derive(Debug, Clone)]
pub struct FindState {
    pub db: String,
    pub coll: String,
    pub scan: Scan,
    pub filter: Expr,
    pub projection: Option<Projection>,
    pub skip: u64,
    /// Documents still allowed by `limit` (None = unlimited).
    pub remaining: Option<u64>,
    /// Whether the collection is gone (the cursor returns nothing more).
    pub dead: bool,
}

impl FindState {
    /// Produces up to `max_docs` documents / about `max_bytes` bytes. Returns the raw documents and
    /// whether the cursor is exhausted.
    pub fn next_batch(
        &mut self,
        catalog: &Catalog,
        max_docs: usize,
        max_bytes: usize,
        out: &mut Vec<Doc>,
    ) -> bool {
        if self.remaining == Some(0) || self.dead {
            return true;
        }
        let mut bytes = 0usize;
        let full = |out: &Vec<Doc>, bytes: usize, remaining: Option<u64>| {
            out.len() >= max_docs || bytes >= max_bytes || remaining == Some(0)
        };
        match &mut self.scan {
            Scan::Materialized(q) => {
                while let Some(d) = q.pop_front() {
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    bytes += d.as_bytes().len();
                    out.push(match &self.projection {
                        Some(p) => std::sync::Arc::new(p.apply(&d)),
                        None => d,
                    });
                    if let Some(r) = self.remaining.as_mut() {
                        *r -= 1;
                    }
                    if full(out, bytes, self.remaining) {
                        break;
                    }
                }
                q.is_empty() || self.remaining == Some(0)
            }
            Scan::Natural { next, reverse } => {
                let Some(c) = catalog.coll(&self.db, &self.coll) else {
                    self.dead = true;
                    return true;
                };
                let iter: Box<dyn Iterator<Item = (u64, &Doc)>> = if *reverse {
                    Box::new(c.natural_rev_from(*next))
                } else {
                    Box::new(c.natural_from(*next))
                };
                let mut exhausted = true;
                for (rid, d) in iter {
                    if full(out, bytes, self.remaining) {
                        exhausted = false;
                        break;
                    }
                    *next = if *reverse {
                        rid.saturating_sub(1)
                    } else {
                        rid + 1
                    };
                    if *reverse && rid == 0 {
                        break;
                    }
                    if !self.filter.matches(d) {
                        continue;
                    }
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    bytes += d.as_bytes().len();
                    out.push(match &self.projection {
                        Some(p) => std::sync::Arc::new(p.apply(d)),
                        None => d.clone(),
                    });
                    if let Some(r) = self.remaining.as_mut() {
                        *r -= 1;
                    }
                }
                if *reverse && *next == 0 {
                    exhausted = true;
                }
                exhausted || self.remaining == Some(0)
            }
            Scan::IdIndex {
                lower,
                upper,
                ascending,
            } => {
                let Some(c) = catalog.coll(&self.db, &self.coll) else {
                    self.dead = true;
                    return true;
                };
                let mut exhausted = true;
                let mut last: Option<OrderedBson> = None;
                for (k, _rid, d) in c.id_range(lower.as_ref(), upper.as_ref(), *ascending) {
                    if full(out, bytes, self.remaining) {
                        exhausted = false;
                        break;
                    }
                    last = Some(k.clone());
                    if !self.filter.matches(d) {
                        continue;
                    }
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    bytes += d.as_bytes().len();
                    out.push(match &self.projection {
                        Some(p) => std::sync::Arc::new(p.apply(d)),
                        None => d.clone(),
                    });
                    if let Some(r) = self.remaining.as_mut() {
                        *r -= 1;
                    }
                }
                if let Some(k) = last {
                    if *ascending {
                        *lower = Bound::Excluded(k);
                    } else {
                        *upper = Bound::Excluded(k);
                    }
                }
                exhausted || self.remaining == Some(0)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum CursorKind {
    Find(Box<FindState>),
    ChangeStream(Box<ChangeStream>),
}

#[derive(Debug, Clone)]
pub struct Cursor {
    pub id: i64,
    /// `db.coll` as replies show it.
    pub ns: String,
    pub kind: CursorKind,
    /// The command that created it (for error labels on getMore).
    pub originating_command: &'static str,
    pub lsid: Option<RawDocumentBuf>,
    pub batch_size: Option<usize>,
    pub tailable_await: bool,
    /// mongod's default awaitData wait for change streams: 1 second.
    pub max_await_ms: u64,
    pub created_at: Timestamp,
}

impl Cursor {
    pub fn is_change_stream(&self) -> bool {
        matches!(self.kind, CursorKind::ChangeStream(_))
    }
}

/// Open cursors. A cursor being used by a `getMore` is checked out of `open`.
#[derive(Debug, Default)]
pub struct Cursors {
    open: HashMap<i64, Cursor>,
    checked_out: HashSet<i64>,
    killed_while_out: HashSet<i64>,
}

impl Cursors {
    pub fn new_id(&self) -> i64 {
        loop {
            let id = (rand::random::<u64>() >> 2) as i64;
            if id != 0 && !self.open.contains_key(&id) && !self.checked_out.contains(&id) {
                return id;
            }
        }
    }

    pub fn insert(&mut self, c: Cursor) {
        self.open.insert(c.id, c);
    }

    pub fn check_out(&mut self, id: i64) -> Option<Cursor> {
        let c = self.open.remove(&id)?;
        self.checked_out.insert(id);
        Some(c)
    }

    pub fn is_checked_out(&self, id: i64) -> bool {
        self.checked_out.contains(&id)
    }

    /// Returns a cursor after a getMore; drops it if it was killed meanwhile or is finished.
    pub fn check_in(&mut self, c: Cursor, keep: bool) {
        self.checked_out.remove(&c.id);
        let killed = self.killed_while_out.remove(&c.id);
        if keep && !killed {
            self.open.insert(c.id, c);
        }
    }

    pub fn was_killed(&self, id: i64) -> bool {
        self.killed_while_out.contains(&id)
    }

    /// Kills a cursor. Returns whether it existed.
    pub fn kill(&mut self, id: i64) -> bool {
        if self.open.remove(&id).is_some() {
            return true;
        }
        if self.checked_out.contains(&id) {
            self.killed_while_out.insert(id);
            return true;
        }
        false
    }

    pub fn kill_for_session(&mut self, lsid: &RawDocumentBuf) {
        self.open
            .retain(|_, c| c.lsid.as_ref().map(|l| l.as_bytes()) != Some(lsid.as_bytes()));
    }

    /// Ends find cursors on a dropped or renamed namespace. mongod kills them too; whether its
    /// next getMore then reports CursorNotFound (43) or a QueryPlanKilled-family error is not
    /// pinned down here: the simulator answers 43, an error either way, never more documents.
    pub fn kill_namespace(&mut self, ns: &str) {
        self.open
            .retain(|_, c| !(c.ns == ns && matches!(c.kind, CursorKind::Find(_))));
    }

    /// Kills every cursor (as a cursor timeout or a killCursors from another client would).
    pub fn kill_all(&mut self) -> usize {
        let n = self.open.len() + self.checked_out.len();
        self.open.clear();
        self.killed_while_out
            .extend(self.checked_out.iter().copied());
        n
    }

    pub fn len(&self) -> usize {
        self.open.len() + self.checked_out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
