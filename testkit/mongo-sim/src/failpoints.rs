//! mongod's test fault hooks: `configureFailPoint` with `failCommand` (errorCode, errorLabels,
//! closeConnection, blockConnection/blockTimeMS, writeConcernError, appName, times/skip/alwaysOn/
//! off), `failGetMoreAfterCursorCheckout`, and `onPrimaryTransactionalWrite` (a retryable write
//! that commits and then loses its connection, or fails before it commits:
//! `TransactionParticipant::Participant::onWriteOpCompletedOnPrimary`,
//! `src/mongo/db/transaction/transaction_participant.cpp`).
//!
//! Semantics follow mongod's `src/mongo/db/commands.cpp` (`CommandHelpers::
//! evaluateFailCommandFailPoint`) and `src/mongo/util/fail_point.cpp` (modes).

use std::collections::HashMap;

use bson::{Bson, Document};

use crate::error::{CmdResult, CommandError};

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Off,
    AlwaysOn,
    Times(i64),
    Skip(i64),
}

#[derive(Debug, Clone)]
pub struct FailPoint {
    pub mode: Mode,
    pub data: Document,
}

/// What a triggered failCommand asks for.
#[derive(Debug, Clone, Default)]
pub struct FailAction {
    pub block_ms: Option<u64>,
    pub close_connection: bool,
    pub error: Option<CommandError>,
    pub write_concern_error: Option<Document>,
}

#[derive(Debug, Default)]
pub struct FailPoints {
    points: HashMap<String, FailPoint>,
}

const KNOWN: &[&str] = &[
    "failCommand",
    "failGetMoreAfterCursorCheckout",
    "onPrimaryTransactionalWrite",
];

/// What `onPrimaryTransactionalWrite` does to a retryable write when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionalWriteFault {
    /// `closeConnection` (default true): the connection is closed without a reply.
    pub close_connection: bool,
    /// `failBeforeCommitExceptionCode`: the write fails with this code and is not applied.
    pub fail_before_commit: Option<i32>,
}

impl FailPoints {
    /// `configureFailPoint`. Returns the previous times-count (mongod replies `count`).
    pub fn configure(&mut self, name: &str, mode: &Bson, data: Option<Document>) -> CmdResult<i64> {
        if !KNOWN.contains(&name) {
            return Err(CommandError::bad_value(format!(
                "Cannot find failpoint {name} (mongo-sim implements: {})",
                KNOWN.join(", ")
            )));
        }
        let mode = match mode {
            Bson::String(s) if s == "off" => Mode::Off,
            Bson::String(s) if s == "alwaysOn" => Mode::AlwaysOn,
            Bson::Document(d) => {
                if let Some(n) = d.get("times").and_then(num) {
                    Mode::Times(n)
                } else if let Some(n) = d.get("skip").and_then(num) {
                    Mode::Skip(n)
                } else if d.contains_key("activationProbability") {
                    return Err(CommandError::not_implemented(
                        "the activationProbability fail point mode",
                    ));
                } else {
                    return Err(CommandError::bad_value("invalid failpoint mode"));
                }
            }
            other => {
                return Err(CommandError::type_mismatch(format!(
                    "invalid failpoint mode: {other}"
                )))
            }
        };
        let prev = self.points.get(name).map(|p| match p.mode {
            Mode::Times(n) => n,
            _ => 0,
        });
        if mode == Mode::Off {
            self.points.remove(name);
        } else {
            self.points.insert(
                name.to_string(),
                FailPoint {
                    mode,
                    data: data.unwrap_or_default(),
                },
            );
        }
        Ok(prev.unwrap_or(0))
    }

    /// Whether the named fail point fires now (consuming one activation).
    fn fire(&mut self, name: &str, applies: impl Fn(&Document) -> bool) -> Option<Document> {
        let fp = self.points.get_mut(name)?;
        if !applies(&fp.data) {
            return None;
        }
        let fires = match &mut fp.mode {
            Mode::Off => false,
            Mode::AlwaysOn => true,
            Mode::Times(n) => {
                *n -= 1;
                true
            }
            Mode::Skip(n) => {
                if *n > 0 {
                    *n -= 1;
                    false
                } else {
                    true
                }
            }
        };
        let data = fp.data.clone();
        if matches!(fp.mode, Mode::Times(n) if n <= 0) {
            self.points.remove(name);
        }
        fires.then_some(data)
    }

    /// Evaluates failCommand for a command from a client with `app_name`.
    pub fn fail_command(&mut self, command: &str, app_name: Option<&str>) -> Option<FailAction> {
        if command == "configureFailPoint" {
            return None;
        }
        let data = self.fire("failCommand", |data| {
            let listed = match data.get("failCommands") {
                Some(Bson::Array(a)) => a.iter().any(|c| c.as_str() == Some(command)),
                _ => false,
            };
            let app_ok = match data.get_str("appName") {
                Ok(want) => app_name == Some(want),
                Err(_) => true,
            };
            listed && app_ok
        })?;
        let mut action = FailAction::default();
        if data.get_bool("blockConnection").unwrap_or(false) {
            action.block_ms = Some(data.get("blockTimeMS").and_then(num).unwrap_or(0) as u64);
        }
        action.close_connection = data.get_bool("closeConnection").unwrap_or(false);
        if let Some(code) = data.get("errorCode").and_then(num) {
            let mut e = CommandError::new(
                code as i32,
                format!("Failing command {command} via 'failCommand' failpoint"),
            );
            if let Ok(labels) = data.get_array("errorLabels") {
                e.labels = Some(
                    labels
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect(),
                );
            }
            action.error = Some(e);
        }
        if let Ok(wce) = data.get_document("writeConcernError") {
            let mut wce = wce.clone();
            if let Ok(labels) = data.get_array("errorLabels") {
                wce.insert("__labels", labels.clone());
            }
            action.write_concern_error = Some(wce);
        }
        Some(action)
    }

    /// Evaluates onPrimaryTransactionalWrite for a retryable write.
    pub fn on_primary_transactional_write(&mut self) -> Option<TransactionalWriteFault> {
        let data = self.fire("onPrimaryTransactionalWrite", |_| true)?;
        Some(TransactionalWriteFault {
            close_connection: data.get_bool("closeConnection").unwrap_or(true),
            fail_before_commit: data
                .get("failBeforeCommitExceptionCode")
                .and_then(num)
                .map(|c| c as i32),
        })
    }

    /// Evaluates failGetMoreAfterCursorCheckout.
    pub fn fail_get_more(&mut self) -> Option<CommandError> {
        let data = self.fire("failGetMoreAfterCursorCheckout", |_| true)?;
        let code = data.get("errorCode").and_then(num).unwrap_or(96) as i32;
        Some(CommandError::new(
            code,
            "Failing getMore via 'failGetMoreAfterCursorCheckout' failpoint",
        ))
    }
}

fn num(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    }
}
