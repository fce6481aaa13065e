//! Secrets in configuration: values that never reach logs, errors or `Debug` output.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string (a password, a client secret, a URI with credentials).
///
/// `Debug` prints `Secret(***)`; there is no `Display`. Code that needs the value calls
/// [`Secret::expose`], which makes each use visible in review.
///
/// ```
/// use mirror_core::config::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A connection URI whose password is secret: `Debug` and [`SecretUri::redacted`] show
/// `user:***@host`, never the password.
///
/// ```
/// use mirror_core::config::SecretUri;
/// let uri = SecretUri::new("mongodb+srv://app:s3cr%40t@cluster0.example.net/?retryWrites=true");
/// assert_eq!(uri.redacted(), "mongodb+srv://app:***@cluster0.example.net/?retryWrites=true");
/// assert!(!format!("{uri:?}").contains("s3cr"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUri(String);

impl SecretUri {
    /// Wraps a URI.
    pub fn new(uri: impl Into<String>) -> Self {
        Self(uri.into())
    }

    /// The full URI, password included; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URI with the password (and any query parameter that carries a secret) replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_uri(&self.0)
    }
}

impl fmt::Debug for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUri({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUri)
    }
}

/// Query parameters whose values are secrets in the URIs we handle (MongoDB, Azure SAS).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "sig",
    "authmechanismproperties",
    "tlscertificatekeyfilepassword",
    "client_secret",
];

/// Replaces the password of `scheme://user:password@host/...` and secret query parameters with `***`.
pub fn redact_uri(uri: &str) -> String {
    let (head, query) = match uri.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (uri, None),
    };
    let mut out = String::with_capacity(uri.len());
    match head.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            // The userinfo ends at the last '@' before the first '/' of the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(head),
    }
    if let Some(query) = query {
        out.push('?');
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_secret_parameters() {
        let cases = [
            ("mongodb://localhost:27017", "mongodb://localhost:27017"),
            ("mongodb://u:p@h1,h2/db", "mongodb://u:***@h1,h2/db"),
            ("mongodb://user@h/db", "mongodb://user@h/db"),
            ("mongodb://u:p@ss:w@h/", "mongodb://u:***@h/"),
            (
                "https://a.blob.core.windows.net/c?sv=1&sig=abc%3D",
                "https://a.blob.core.windows.net/c?sv=1&sig=***",
            ),
            (
                "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:xyz",
                "mongodb://h/?authMechanismProperties=***",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_uri(input), expected, "{input}");
        }
    }
}
