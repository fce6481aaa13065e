//! What can go wrong talking to Fabric, and what the user should check.

use std::time::Duration;

/// A failed Fabric REST call or credential.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    /// No token could be obtained for the Fabric API.
    #[error(
        "cannot get a Microsoft Entra token for the Fabric API ({method}): {message}; check the \
         tenant, client id and credential of the identity"
    )]
    Token {
        /// The credential method.
        method: &'static str,
        /// What the credential said (never a secret).
        message: String,
    },
    /// The API refused the token (401), after one fresh token where the credential can refresh.
    #[error(
        "{what}: Fabric refused the credential ({method}) with 401 {code}: {message}; check that \
         the token is for https://api.fabric.microsoft.com/.default, that it has not expired, and \
         that the tenant setting \"Service principals can use Fabric APIs\" allows this identity"
    )]
    Unauthorized {
        /// The call.
        what: String,
        /// The credential method.
        method: &'static str,
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
    },
    /// The identity lacks a permission (403).
    #[error(
        "{what}: 403 {code}: {message}; this needs the {role} role (or higher) in workspace \
         {workspace}: an admin adds it under the workspace's Manage access (or runs `mirror fabric \
         grant --principal <object id> --role {role}`)"
    )]
    Forbidden {
        /// The call.
        what: String,
        /// The workspace.
        workspace: String,
        /// The role the call needs.
        role: &'static str,
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
    },
    /// The workspace or the item does not exist, or this identity cannot see it (404).
    #[error("{what}: {resource} was not found ({code}: {message}); {hint}")]
    NotFound {
        /// The call.
        what: String,
        /// `workspace <id>` or `mirrored database <id> in workspace <id>`.
        resource: String,
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
        /// What to check.
        hint: String,
    },
    /// Still throttled (429) after the retries allowed.
    #[error(
        "{what}: Fabric kept throttling the requests (429) for {waited:?} over {attempts} attempts; \
         wait a few minutes, or make fewer calls with this identity"
    )]
    Throttled {
        /// The call.
        what: String,
        /// Attempts made.
        attempts: usize,
        /// Time spent waiting as asked by `Retry-After`.
        waited: Duration,
    },
    /// Any other error answer.
    #[error("{what}: Fabric answered {status} {code}: {message}{}", request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Api {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
        /// `requestId`.
        request_id: Option<String>,
    },
    /// The request did not get an answer.
    #[error("{what}: cannot reach the Fabric API at {url}: {message}; check the network path to it (proxy, firewall, private endpoint)")]
    Http {
        /// The call.
        what: String,
        /// The URL.
        url: String,
        /// The transport error.
        message: String,
    },
    /// An answer this client cannot read.
    #[error("{what}: unexpected answer from Fabric: {message}")]
    Unexpected {
        /// The call.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A long-running operation failed.
    #[error("{what}: the operation ended {status}: {message}")]
    OperationFailed {
        /// The call.
        what: String,
        /// Its final status.
        status: String,
        /// Fabric's error message.
        message: String,
    },
    /// Waited too long for a state.
    #[error("{what}: still not done after {waited:?}: {state}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
        /// The last state seen.
        state: String,
    },
    /// A name matches several workspaces or items.
    #[error("{what}: the name `{name}` matches {count} {kind}s; use the id instead ({ids})")]
    Ambiguous {
        /// The call.
        what: String,
        /// The name.
        name: String,
        /// `workspace` or `mirrored database`.
        kind: &'static str,
        /// How many.
        count: usize,
        /// Their ids.
        ids: String,
    },
    /// The Fabric settings are wrong.
    #[error("{0}")]
    Config(String),
}

impl FabricError {
    /// Whether a later attempt may succeed (throttling, an unreachable API, a timeout).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FabricError::Throttled { .. } | FabricError::Http { .. } | FabricError::Timeout { .. }
        ) || matches!(self, FabricError::Api { status, .. } if *status >= 500)
    }
}
