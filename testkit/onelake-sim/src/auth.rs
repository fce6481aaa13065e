//! Bearer-token checks, the way OneLake answers them.
//!
//! OneLake accepts Microsoft Entra ID bearer tokens only ("OneLake security": shared keys and SAS
//! are not accepted). The simulator does not validate JWTs; a test decides which opaque tokens are
//! valid, which are expired, and which paths an identity may not write:
//! - no `Authorization` header: 401 `NoAuthenticationInformation`;
//! - an unknown token: 401 `InvalidAuthenticationInfo`;
//! - an expired token: 401 `InvalidAuthenticationInfo` ("Lifetime validation failed. The token is
//!   expired."), with `WWW-Authenticate: Bearer`;
//! - a write under a denied prefix: 403 `AuthorizationPermissionMismatch`.
//!
//! By default any bearer token is accepted (and `SharedKey` too, for Azure SDK samples pointed at
//! the simulator); [`TokenPolicy::only`] restricts it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    /// 401 or 403.
    pub status: u16,
    /// `x-ms-error-code`.
    pub code: &'static str,
    /// Message.
    pub message: &'static str,
}

#[derive(Debug, Default)]
struct Policy {
    only: Option<HashSet<String>>,
    expired: HashSet<String>,
    denied_write_prefixes: Vec<String>,
    denied_all_prefixes: Vec<String>,
    seen: Vec<String>,
}

/// Which tokens the simulator accepts. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct TokenPolicy {
    policy: Arc<Mutex<Policy>>,
}

impl TokenPolicy {
    fn with<T>(&self, f: impl FnOnce(&mut Policy) -> T) -> T {
        f(&mut self.policy.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Accepts only these bearer tokens from now on.
    pub fn only(&self, tokens: impl IntoIterator<Item = impl Into<String>>) {
        self.with(|p| p.only = Some(tokens.into_iter().map(Into::into).collect()));
    }

    /// Adds a valid token (after [`TokenPolicy::only`]).
    pub fn allow(&self, token: impl Into<String>) {
        let token = token.into();
        self.with(|p| {
            p.expired.remove(&token);
            p.only.get_or_insert_with(HashSet::new).insert(token);
        });
    }

    /// Treats `token` as expired from now on.
    pub fn expire(&self, token: impl Into<String>) {
        let token = token.into();
        self.with(|p| {
            p.expired.insert(token);
        });
    }

    /// Refuses writes (PUT, PATCH, DELETE) to paths starting with `prefix` with 403.
    pub fn deny_writes_under(&self, prefix: impl Into<String>) {
        let prefix = prefix.into();
        self.with(|p| p.denied_write_prefixes.push(prefix));
    }

    /// Refuses every request to paths starting with `prefix` with 403.
    pub fn deny_all_under(&self, prefix: impl Into<String>) {
        let prefix = prefix.into();
        self.with(|p| p.denied_all_prefixes.push(prefix));
    }

    /// Bearer tokens seen, in order (tests check refreshes).
    pub fn seen_tokens(&self) -> Vec<String> {
        self.with(|p| p.seen.clone())
    }

    /// Checks one request.
    pub fn check(
        &self,
        authorization: Option<&str>,
        write: bool,
        path: &str,
    ) -> Result<(), AuthFailure> {
        self.with(|p| {
            let Some(auth) = authorization else {
                return Err(AuthFailure {
                    status: 401,
                    code: "NoAuthenticationInformation",
                    message: "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                });
            };
            if let Some(token) = auth.strip_prefix("Bearer ") {
                let token = token.trim().to_owned();
                if p.seen.last() != Some(&token) {
                    p.seen.push(token.clone());
                }
                if p.expired.contains(&token) {
                    return Err(AuthFailure {
                        status: 401,
                        code: "InvalidAuthenticationInfo",
                        message: "Server failed to authenticate the request. Lifetime validation failed. The token is expired.",
                    });
                }
                if let Some(only) = &p.only {
                    if !only.contains(&token) {
                        return Err(AuthFailure {
                            status: 401,
                            code: "InvalidAuthenticationInfo",
                            message: "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                        });
                    }
                }
            } else if p.only.is_some() || !auth.starts_with("SharedKey ") {
                return Err(AuthFailure {
                    status: 401,
                    code: "InvalidAuthenticationInfo",
                    message: "Server failed to authenticate the request. Bearer tokens only.",
                });
            }
            let denied = p.denied_all_prefixes.iter().any(|d| path.starts_with(d.as_str()))
                || (write && p.denied_write_prefixes.iter().any(|d| path.starts_with(d.as_str())));
            if denied {
                return Err(AuthFailure {
                    status: 403,
                    code: "AuthorizationPermissionMismatch",
                    message: "This request is not authorized to perform this operation using this permission.",
                });
            }
            Ok(())
        })
    }
}
