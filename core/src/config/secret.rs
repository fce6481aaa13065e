//! Secrets in configuration: values that never reach logs, errors or `Debug` output.
//!
//! Two lines of defence. The types: [`Secret`] and [`SecretUri`] never print their values. And the
//! process's list of known secret values ([`remember_secret`], filled while the configuration is
//! read and whenever a [`Secret`] or [`SecretUri`] is deserialized): [`scrub`] replaces every one
//! of them, and the password of any URI, in text about to be shown (log lines, error messages,
//! `/api/status`), so a secret echoed by a driver's error or a library's trace line is caught too.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

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
        let value = String::deserialize(d)?;
        remember_secret(&value);
        Ok(Secret(value))
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
        let uri = String::deserialize(d)?;
        for secret in uri_secrets(&uri) {
            remember_secret(&secret);
        }
        Ok(SecretUri(uri))
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

/// The secret parts of a URI: the password of its userinfo and the values of secret query
/// parameters, as written and percent-decoded.
pub fn uri_secrets(uri: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (head, query) = match uri.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (uri, None),
    };
    if let Some((_, rest)) = head.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                out.push(password.to_owned());
            }
        }
    }
    for pair in query.unwrap_or_default().split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) {
                out.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = out
        .iter()
        .map(|s| percent_decode(s))
        .filter(|d| !out.contains(d))
        .collect();
    out.extend(decoded);
    out.retain(|s| !s.is_empty());
    out
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Values shorter than this are not searched for in free text: replacing every `abc` in a log
/// line would garble it, and no credential is that short. (Error snippets hide secret values of
/// any length: they know where the values are.)
pub const MIN_SCRUBBED_LEN: usize = 4;

/// Known secret values, longest first (so a secret containing another is replaced whole).
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `value` to the secrets [`scrub`] removes from text (from now on, in this process).
///
/// ```
/// use mirror_core::config::{remember_secret, scrub};
/// remember_secret("correct-horse-battery");
/// assert_eq!(scrub("login with correct-horse-battery failed"), "login with *** failed");
/// ```
pub fn remember_secret(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_SCRUBBED_LEN {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k == value) {
        known.push(value.to_owned());
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` without any known secret value ([`remember_secret`]) and without the password or
/// secret query parameters of any URI in it.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
        for secret in known.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
    }
    if out.contains("://") {
        out = Cow::Owned(redact_uris(&out));
    }
    out
}

/// Every whitespace-separated word holding `://` with its URI password and secret parameters
/// replaced.
fn redact_uris(message: &str) -> String {
    message
        .split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                let trimmed = word.trim_end();
                let mut out = redact_uri(trimmed);
                out.push_str(&word[trimmed.len()..]);
                out
            } else {
                word.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_secrets_are_found_as_written_and_decoded() {
        assert_eq!(
            uri_secrets("mongodb://app:s3cr%40t@h/?authMechanismProperties=AWS_SESSION_TOKEN:x"),
            vec!["s3cr%40t", "AWS_SESSION_TOKEN:x", "s3cr@t"]
        );
        assert!(uri_secrets("mongodb://h:27017/?replicaSet=rs0").is_empty());
    }

    #[test]
    fn scrub_removes_remembered_values_and_uri_passwords() {
        remember_secret("abc"); // too short to search for
        remember_secret("tok-123456");
        assert_eq!(
            scrub("abc said tok-123456 to mongodb://u:pw@h/x"),
            "abc said *** to mongodb://u:***@h/x"
        );
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
    }

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
