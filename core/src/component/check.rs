//! `mirror check --connect`: what a component finds when it connects to the system it reads or
//! writes, one [`Check`] per question (can it be reached, is it the right kind of server, may
//! this identity do what `mirror run` will do), each with what to fix when it fails.
//!
//! Components answer through [`SourceConfig::check`](super::SourceConfig::check) and
//! [`SinkConfig::check`](super::SinkConfig::check); the binary prints the results. A check reads
//! and may probe (a sink writes and removes a file of its own), but never writes to a table.
//!
//! ```
//! use mirror_core::component::check::{Check, CheckStatus};
//! let c = Check::failed("deployment", "a standalone server", "start mongod with --replSet");
//! assert_eq!(c.status, CheckStatus::Failed);
//! assert_eq!(c.to_string(), "deployment: a standalone server; to fix: start mongod with --replSet");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::TableSettings;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckStatus {
    /// As `mirror run` needs it.
    Ok,
    /// Works, with a risk worth knowing (a short oplog window).
    Warning,
    /// `mirror run` would fail: see the fix.
    Failed,
    /// Not checked (not applicable, or an earlier check failed).
    Skipped,
}

impl CheckStatus {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warn",
            CheckStatus::Failed => "FAIL",
            CheckStatus::Skipped => "skip",
        }
    }
}

/// One answer of `mirror check --connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`reachable`, `privileges`, `landing zone`, ...).
    pub name: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: &str,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        // One line per check: a server's multi-line error body is folded.
        let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        Self {
            name: name.to_owned(),
            status,
            detail: one_line(&crate::config::scrub(&detail.into())),
            fix: fix.map(|f| one_line(&f)),
        }
    }

    /// A check that passed.
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Ok, detail, None)
    }

    /// A check that passed with a risk, and what to do about it.
    pub fn warning(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Warning, detail, Some(fix.into()))
    }

    /// A check that failed, and what to fix.
    pub fn failed(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Failed, detail, Some(fix.into()))
    }

    /// A check not made, and why.
    pub fn skipped(name: &str, why: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Skipped, why, None)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "; to fix: {fix}")?;
        }
        Ok(())
    }
}

/// What a component's check is given.
#[derive(Clone, Debug)]
pub struct CheckContext {
    /// The component's name.
    pub name: String,
    /// Per-table settings from `[tables]`.
    pub tables: Arc<BTreeMap<String, TableSettings>>,
    /// How long one connection attempt may take (a check must answer, not wait for a server).
    pub timeout: Duration,
}
