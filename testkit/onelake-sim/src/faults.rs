//! Injectable faults: what a test asks the simulator to do to the next matching requests.
//!
//! ```
//! use onelake_sim::faults::{Fault, Faults, Operation};
//! let faults = Faults::default();
//! faults.inject(Fault::throttle(Operation::PutBlob, 2, 1)); // two 429s with Retry-After: 1
//! faults.inject(Fault::lose_response(Operation::Rename, 1).on_path("00000000000000000003"));
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a request does, as the simulator classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Blob `Put Blob`.
    PutBlob,
    /// Blob `Put Block`.
    PutBlock,
    /// Blob `Put Block List`.
    PutBlockList,
    /// Blob `Get Blob` (also DFS read).
    GetBlob,
    /// `HEAD` (Blob `Get Blob Properties`, DFS `Get Properties`).
    HeadBlob,
    /// Blob `List Blobs`.
    ListBlobs,
    /// DFS `Path - List`.
    ListPaths,
    /// DFS `Path - Create` of a file.
    CreateFile,
    /// DFS `Path - Create` of a directory.
    CreateDirectory,
    /// DFS `Path - Update` `append`.
    Append,
    /// DFS `Path - Update` `flush`.
    Flush,
    /// DFS rename (`Path - Create` with `x-ms-rename-source`).
    Rename,
    /// Blob `Delete Blob` or DFS `Path - Delete`.
    Delete,
    /// DFS `Path - Lease` or Blob `Lease Blob`.
    Lease,
    /// DFS `Path - Update` `setProperties`, Blob `Set Blob Metadata` / `Set Blob Properties`.
    SetProperties,
    /// Blob Batch (OneLake rejects it).
    Batch,
    /// Container / filesystem operations.
    Container,
    /// Anything else.
    Other,
}

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and error code without applying the request; `retry_after` is sent
    /// as `Retry-After`.
    Status {
        /// HTTP status.
        status: u16,
        /// `x-ms-error-code`.
        code: &'static str,
        /// `Retry-After` value.
        retry_after: Option<String>,
    },
    /// Wait this long, then handle the request normally (a client with a shorter timeout gives up
    /// first, and the request is applied anyway: an unknown outcome).
    Delay(Duration),
    /// Answer 401 as for an expired token, without applying the request.
    ExpiredToken,
    /// Apply the request, then drop the connection without an answer.
    LoseResponse,
    /// Never answer: the request hangs, applied first if `applied`. A test kills the writer
    /// meanwhile, to crash it exactly before (or after) this request took effect.
    Hang {
        /// Whether the request takes effect before the hang.
        applied: bool,
    },
}

/// A fault rule: the first `times` requests matching `operation` (and `path_contains`) get
/// `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The operation to match (`None`: any).
    pub operation: Option<Operation>,
    /// A substring of the path to match.
    pub path_contains: Option<String>,
    /// What to do.
    pub action: FaultAction,
    /// How many requests it applies to.
    pub times: usize,
    /// How many matching requests pass untouched before it applies.
    pub skip: usize,
}

impl Fault {
    /// A fault for `operation`.
    pub fn new(operation: Operation, action: FaultAction, times: usize) -> Self {
        Self {
            operation: Some(operation),
            path_contains: None,
            action,
            times,
            skip: 0,
        }
    }

    /// The `n`-th request (from 1) of any operation hangs, applied first or not (see
    /// [`FaultAction::Hang`]); combine with [`Fault::on_path`] to count only some.
    pub fn hang_at(n: usize, applied: bool) -> Self {
        Self {
            operation: None,
            path_contains: None,
            action: FaultAction::Hang { applied },
            times: 1,
            skip: n.saturating_sub(1),
        }
    }

    /// 429 `ServerBusy` with `Retry-After: <secs>`.
    pub fn throttle(operation: Operation, times: usize, retry_after_secs: u64) -> Self {
        Self::new(
            operation,
            FaultAction::Status {
                status: 429,
                code: "ServerBusy",
                retry_after: Some(retry_after_secs.to_string()),
            },
            times,
        )
    }

    /// 503 `ServerBusy` without `Retry-After`.
    pub fn unavailable(operation: Operation, times: usize) -> Self {
        Self::new(
            operation,
            FaultAction::Status {
                status: 503,
                code: "ServerBusy",
                retry_after: None,
            },
            times,
        )
    }

    /// 500 `InternalError` (the request was not applied).
    pub fn internal_error(operation: Operation, times: usize) -> Self {
        Self::new(
            operation,
            FaultAction::Status {
                status: 500,
                code: "InternalError",
                retry_after: None,
            },
            times,
        )
    }

    /// A slow answer: handled after `delay`.
    pub fn delay(operation: Operation, times: usize, delay: Duration) -> Self {
        Self::new(operation, FaultAction::Delay(delay), times)
    }

    /// 401 for an expired token.
    pub fn expired_token(operation: Operation, times: usize) -> Self {
        Self::new(operation, FaultAction::ExpiredToken, times)
    }

    /// Applied, but the answer is lost.
    pub fn lose_response(operation: Operation, times: usize) -> Self {
        Self::new(operation, FaultAction::LoseResponse, times)
    }

    /// Only for paths containing `fragment`.
    pub fn on_path(mut self, fragment: impl Into<String>) -> Self {
        self.path_contains = Some(fragment.into());
        self
    }
}

/// The fault rules of one simulator, shared with the tests.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Fault>>>,
    fired: Arc<Mutex<Vec<(Operation, String, FaultAction)>>>,
}

impl Faults {
    /// Adds a rule (rules are tried in the order added).
    pub fn inject(&self, fault: Fault) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Rules not used up yet.
    pub fn pending(&self) -> usize {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| f.times)
            .sum()
    }

    /// Faults that fired: operation, path, action.
    pub fn fired(&self) -> Vec<(Operation, String, FaultAction)> {
        self.fired.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The action for a request, consuming one use of the first matching rule.
    pub fn take(&self, operation: Operation, path: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let index = rules.iter().position(|f| {
            f.times > 0
                && f.operation.is_none_or(|o| o == operation)
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        if rules[index].skip > 0 {
            rules[index].skip -= 1;
            return None;
        }
        rules[index].times -= 1;
        let action = rules[index].action.clone();
        if rules[index].times == 0 {
            rules.remove(index);
        }
        self.fired.lock().unwrap_or_else(|e| e.into_inner()).push((
            operation,
            path.to_owned(),
            action.clone(),
        ));
        Some(action)
    }
}
