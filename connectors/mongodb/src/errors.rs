//! Driver errors, classified for the engine and worded for the user.
//!
//! Transient: network errors, server selection timeouts, DNS resolution, a pool cleared by a
//! failover, and the server's "not primary / shutting down / cursor lost" codes (the driver's own
//! retryable set, see the retryable reads and writes specifications). Permanent: authentication, bad arguments, and
//! anything else the server refuses. The URI's password never appears: the driver's messages do not
//! contain it and ours use the redacted URI.

use mongodb::error::{Error, ErrorKind};

use mirror_core::ComponentError;

/// `ChangeStreamHistoryLost`: the resume point is older than the oldest oplog entry.
pub const HISTORY_LOST: i32 = 286;
/// `BSONObjectTooLarge`: a change event over the 16 MB BSON limit (a large document, updated).
pub const BSON_OBJECT_TOO_LARGE: i32 = 10334;
/// `ChangeStreamFatalError`: the stream cannot continue (e.g. a resume token from another stream).
pub const CHANGE_STREAM_FATAL: i32 = 280;
/// `InvalidResumeToken`.
pub const INVALID_RESUME_TOKEN: i32 = 260;
/// `CursorNotFound`.
pub const CURSOR_NOT_FOUND: i32 = 43;

/// Server codes after which retrying can succeed (retryable reads specification, plus
/// CursorNotFound for our own restarts of snapshot reads).
const RETRYABLE_CODES: &[i32] = &[
    6,
    7,
    89,
    91,
    134,
    189,
    262,
    9001,
    10107,
    11600,
    11602,
    13388,
    13435,
    13436,
    63,
    150,
    CURSOR_NOT_FOUND,
];

/// The server error code, if the server refused the command.
pub fn code(err: &Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// Whether retrying (or reconnecting) can help.
pub fn is_transient(err: &Error) -> bool {
    if err.contains_label("RetryableWriteError")
        || err.contains_label("ResumableChangeStreamError")
        || err.contains_label("TransientTransactionError")
    {
        return true;
    }
    match err.kind.as_ref() {
        // DNS too: at start, in a container, name resolution may come up after the process.
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        _ => false,
    }
}

/// The error as the engine sees it, with a hint of what to check.
pub fn classify(err: Error, doing: &str) -> ComponentError {
    let hint = match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => "; check the user name, password and authSource in the URI",
        ErrorKind::ServerSelection { .. } => {
            "; check that the host in the URI is reachable from here (network, firewall, Atlas IP access list) and that TLS settings match"
        }
        ErrorKind::DnsResolve { .. } => "; check the host name in the URI (mongodb+srv:// needs DNS SRV records)",
        ErrorKind::Command(c) if c.code == 13 => "; the user lacks a privilege (mirror needs find, listCollections, listDatabases and changeStream)",
        _ => "",
    };
    let message = format!("{doing}: {err}{hint}");
    if is_transient(&err) {
        ComponentError::transient(SourceError(message))
    } else {
        ComponentError::permanent(SourceError(message))
    }
}

/// A MongoDB source error with its context.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);
