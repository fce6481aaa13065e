//! Error types: `SimError` for the library API and `CommandError`, the `{ok: 0, code, codeName,
//! errmsg, errorLabels}` failure a command sends back to a client.
//!
//! Codes and names follow mongod's `src/mongo/base/error_codes.yml`; the label rules follow
//! `src/mongo/db/error_labels.cpp` (see `CommandError::with_server_labels`).

use bson::{Bson, Document};

/// Errors of the library API (starting, seeding, helpers).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid BSON: {0}")]
    Bson(String),
    #[error("{0}")]
    Command(#[from] CommandError),
    #[error("the simulator has shut down")]
    ShutDown,
}

impl From<bson::raw::Error> for SimError {
    fn from(e: bson::raw::Error) -> Self {
        SimError::Bson(e.to_string())
    }
}

/// A command failure, sent to the client as an `ok: 0` reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code_name} ({code}): {errmsg}")]
pub struct CommandError {
    pub code: i32,
    pub code_name: String,
    pub errmsg: String,
    /// Labels set explicitly (by a fail point). `None` lets the server rules decide.
    pub labels: Option<Vec<String>>,
    /// Extra fields appended to the error reply (e.g. `topologyVersion`).
    pub extra: Box<Document>,
}

pub type CmdResult<T> = Result<T, CommandError>;

impl CommandError {
    pub fn new(code: i32, errmsg: impl Into<String>) -> Self {
        CommandError {
            code,
            code_name: match code_name(code) {
                "" => format!("Location{code}"),
                name => name.to_string(),
            },
            errmsg: errmsg.into(),
            labels: None,
            extra: Box::default(),
        }
    }

    pub fn with_extra(mut self, key: &str, value: impl Into<Bson>) -> Self {
        self.extra.insert(key, value.into());
        self
    }

    pub fn bad_value(msg: impl Into<String>) -> Self {
        Self::new(codes::BAD_VALUE, msg)
    }

    pub fn type_mismatch(msg: impl Into<String>) -> Self {
        Self::new(codes::TYPE_MISMATCH, msg)
    }

    pub fn failed_to_parse(msg: impl Into<String>) -> Self {
        Self::new(codes::FAILED_TO_PARSE, msg)
    }

    /// Something mongod does but this simulator does not: an explicit error, never a silent
    /// approximation.
    pub fn not_implemented(what: impl std::fmt::Display) -> Self {
        Self::new(
            codes::NOT_IMPLEMENTED,
            format!("mongo-sim does not implement {what}"),
        )
    }

    pub fn ns_not_found(msg: impl Into<String>) -> Self {
        Self::new(codes::NAMESPACE_NOT_FOUND, msg)
    }

    /// The labels mongod computes (`error_labels.cpp`): `RetryableWriteError` for retriable codes
    /// on retryable writes (`txnNumber` without `autocommit`), `ResumableChangeStreamError` for
    /// retriable/network codes on `aggregate`/`getMore` of a change stream, and
    /// `NonResumableChangeStreamError` for codes of that category. Labels set by a fail point
    /// replace these entirely (`errorLabelsOverride`).
    pub fn labels_for(&self, ctx: &LabelContext) -> Vec<String> {
        if let Some(labels) = &self.labels {
            return labels.clone();
        }
        let mut out = Vec::new();
        let mut retryable_write = false;
        if ctx.is_retryable_write && is_retriable_error(self.code) {
            out.push("RetryableWriteError".to_string());
            retryable_write = true;
        }
        let resumable = (ctx.command == "aggregate" || ctx.command == "getMore")
            && ctx.is_change_stream
            && (is_retriable_error(self.code)
                || is_network_error(self.code)
                || is_need_retargetting_error(self.code)
                || self.code == codes::RETRY_CHANGE_STREAM
                || self.code == codes::FAILED_TO_SATISFY_READ_PREFERENCE);
        if !retryable_write && resumable {
            out.push("ResumableChangeStreamError".to_string());
        } else if is_non_resumable_change_stream_error(self.code) {
            out.push("NonResumableChangeStreamError".to_string());
        }
        out
    }
}

/// What the label rules need to know about the failed command.
#[derive(Debug, Clone, Default)]
pub struct LabelContext {
    pub command: String,
    pub is_retryable_write: bool,
    pub is_change_stream: bool,
}

/// Error codes used by the simulator (mongod's numbers).
pub mod codes {
    pub const INTERNAL_ERROR: i32 = 1;
    pub const BAD_VALUE: i32 = 2;
    pub const NO_SUCH_KEY: i32 = 4;
    pub const HOST_UNREACHABLE: i32 = 6;
    pub const HOST_NOT_FOUND: i32 = 7;
    pub const FAILED_TO_PARSE: i32 = 9;
    pub const UNAUTHORIZED: i32 = 13;
    pub const TYPE_MISMATCH: i32 = 14;
    pub const OVERFLOW: i32 = 15;
    pub const AUTHENTICATION_FAILED: i32 = 18;
    pub const ILLEGAL_OPERATION: i32 = 20;
    pub const NAMESPACE_NOT_FOUND: i32 = 26;
    pub const INDEX_NOT_FOUND: i32 = 27;
    pub const PATH_NOT_VIABLE: i32 = 28;
    pub const CONFLICTING_UPDATE_OPERATORS: i32 = 40;
    pub const CURSOR_NOT_FOUND: i32 = 43;
    pub const NAMESPACE_EXISTS: i32 = 48;
    pub const MAX_TIME_MS_EXPIRED: i32 = 50;
    pub const DOLLAR_PREFIXED_FIELD_NAME: i32 = 52;
    pub const INVALID_ID_FIELD: i32 = 53;
    pub const EMPTY_FIELD_NAME: i32 = 56;
    pub const COMMAND_NOT_FOUND: i32 = 59;
    pub const IMMUTABLE_FIELD: i32 = 66;
    pub const INVALID_OPTIONS: i32 = 72;
    pub const INVALID_NAMESPACE: i32 = 73;
    pub const NETWORK_TIMEOUT: i32 = 89;
    pub const SHUTDOWN_IN_PROGRESS: i32 = 91;
    pub const OPERATION_FAILED: i32 = 96;
    pub const COMMAND_NOT_SUPPORTED: i32 = 115;
    pub const CONFLICTING_OPERATION_IN_PROGRESS: i32 = 117;
    pub const COMMAND_NOT_SUPPORTED_ON_VIEW: i32 = 166;
    pub const OPTION_NOT_SUPPORTED_ON_VIEW: i32 = 167;
    pub const INVALID_PIPELINE_OPERATOR: i32 = 168;
    pub const PRIMARY_STEPPED_DOWN: i32 = 189;
    pub const FAIL_POINT_ENABLED: i32 = 192;
    pub const NO_SUCH_SESSION: i32 = 206;
    pub const TRANSACTION_TOO_OLD: i32 = 225;
    pub const RETRY_CHANGE_STREAM: i32 = 234;
    pub const NOT_IMPLEMENTED: i32 = 238;
    pub const INVALID_RESUME_TOKEN: i32 = 260;
    pub const EXCEEDED_TIME_LIMIT: i32 = 262;
    pub const CHANGE_STREAM_FATAL_ERROR: i32 = 280;
    pub const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
    pub const FAILED_TO_SATISFY_READ_PREFERENCE: i32 = 133;
    pub const QUERY_FEATURE_NOT_ALLOWED: i32 = 224;
    pub const SOCKET_EXCEPTION: i32 = 9001;
    pub const NOT_WRITABLE_PRIMARY: i32 = 10107;
    pub const DUPLICATE_KEY: i32 = 11000;
    pub const INTERRUPTED_AT_SHUTDOWN: i32 = 11600;
    pub const INTERRUPTED_DUE_TO_REPL_STATE_CHANGE: i32 = 11602;
    pub const NOT_PRIMARY_NO_SECONDARY_OK: i32 = 13435;
    pub const NOT_PRIMARY_OR_SECONDARY: i32 = 13436;
}

/// `RetriableError` category of `error_codes.yml`.
pub fn is_retriable_error(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 89
            | 91
            | 134
            | 189
            | 262
            | 317
            | 358
            | 384
            | 402
            | 406
            | 407
            | 412
            | 453
            | 462
            | 9001
            | 10107
            | 11600
            | 11602
            | 13435
            | 13436
            | 50915
            | 91331
            | 10045600
    )
}

/// `NetworkError` category of `error_codes.yml`.
pub fn is_network_error(code: i32) -> bool {
    matches!(code, 6 | 7 | 89 | 317 | 384 | 9001)
}

/// `NeedRetargettingError` category (StaleEpoch, StaleConfig).
pub fn is_need_retargetting_error(code: i32) -> bool {
    matches!(code, 150 | 13388)
}

/// `NonResumableChangeStreamError` category (ChangeStreamFatalError, ChangeStreamHistoryLost).
pub fn is_non_resumable_change_stream_error(code: i32) -> bool {
    matches!(code, 280 | 286)
}

/// Whether an error reply carries the server's `topologyVersion`. mongod's
/// `appendErrorLabelsAndTopologyVersion` (service_entry_point_common.cpp) appends it to
/// `NotPrimaryError` codes on a replica set always, but to `ShutdownError` codes
/// (ShutdownInProgress 91, InterruptedAtShutdown 11600) only in quiesce mode: "we only increment
/// the topologyVersion at shutdown and alert waiting isMaster/hello commands if the server enters
/// quiesce mode". The simulator has no quiesce mode, so shutdown errors go without it, and drivers
/// then mark the server Unknown and clear the pool as they do against mongod.
pub fn carries_topology_version(code: i32) -> bool {
    matches!(code, 189 | 10107 | 11602 | 13435 | 13436)
}

/// The `codeName` mongod sends for a code.
pub fn code_name(code: i32) -> &'static str {
    match code {
        1 => "InternalError",
        2 => "BadValue",
        4 => "NoSuchKey",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        8 => "UnknownError",
        9 => "FailedToParse",
        11 => "UserNotFound",
        13 => "Unauthorized",
        14 => "TypeMismatch",
        15 => "Overflow",
        17 => "ProtocolError",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        47 => "NoMatchingDocument",
        48 => "NamespaceExists",
        50 => "MaxTimeMSExpired",
        52 => "DollarPrefixedFieldName",
        53 => "InvalidIdField",
        56 => "EmptyFieldName",
        59 => "CommandNotFound",
        66 => "ImmutableField",
        72 => "InvalidOptions",
        73 => "InvalidNamespace",
        76 => "NoReplicationEnabled",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        96 => "OperationFailed",
        112 => "WriteConflict",
        115 => "CommandNotSupported",
        117 => "ConflictingOperationInProgress",
        133 => "FailedToSatisfyReadPreference",
        134 => "ReadConcernMajorityNotAvailableYet",
        166 => "CommandNotSupportedOnView",
        167 => "OptionNotSupportedOnView",
        168 => "InvalidPipelineOperator",
        189 => "PrimarySteppedDown",
        192 => "FailPointEnabled",
        206 => "NoSuchSession",
        224 => "QueryFeatureNotAllowed",
        225 => "TransactionTooOld",
        234 => "RetryChangeStream",
        237 => "CursorKilled",
        238 => "NotImplemented",
        251 => "NoSuchTransaction",
        260 => "InvalidResumeToken",
        262 => "ExceededTimeLimit",
        280 => "ChangeStreamFatalError",
        286 => "ChangeStreamHistoryLost",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        11000 => "DuplicateKey",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        // Codes without a name of their own (mongod's "Location<N>" assertions).
        _ => "",
    }
}
