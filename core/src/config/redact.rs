//! Which values of a configuration are secret, found in its text and in its interpolated values,
//! so that errors can show the offending line without them.
//!
//! A value is secret when its key is (the last part of its dotted key, at any depth):
//! - declared secret by a component's registration (`secrets = ["client_secret"]`) or by the
//!   core (`[api] token`), see [`crate::component::registry::declared_secret_keys`];
//! - or named like a secret: any word of the key (split at `_`, `-` and case changes) is one of
//!   [`SECRET_WORDS`], or its last word is `key` (`account_key`, `api_key`, `key`).
//!
//! And any string value, whatever its key, whose URI carries a password or a secret query
//! parameter (shown with [`redact_uri`]: the host stays readable), or which reads like a
//! connection string with a password (`Password=...;`), is secret too. So a connection URI needs
//! no declaration: only its password is hidden. The text is scanned with `toml_parser`, which
//! recovers from syntax errors, so even a file that does not parse has its secrets found.
//!
//! ```
//! use mirror_core::config::redact::SecretSpans;
//! let text = "auth = { method = \"client_secret\", client_secret = \"hunter2-x\" }\n";
//! let spans = SecretSpans::scan(text);
//! assert_eq!(spans.values(), ["hunter2-x"]);
//! ```

use std::collections::BTreeSet;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;
use toml_parser::decoder::Encoding;
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, Raw, Source, Span};

use super::secret::{redact_uri, remember_secret, uri_secrets};
use crate::component::registry::declared_secret_keys;

/// Words that make a key secret wherever they appear in its name (plurals too).
pub const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
    "credential",
    "apikey",
    "sas",
    "sig",
    "signature",
    "private",
];

/// Markers of a connection string that holds a credential (ADO.NET, ODBC, Azure Storage).
const CONNECTION_STRING_MARKERS: &[&str] = &[
    "password=",
    "pwd=",
    "accountkey=",
    "sharedaccesssignature=",
    "sharedaccesskey=",
];

/// Whether a key named `key` holds a secret.
pub fn is_secret_key(key: &str, declared: &BTreeSet<&'static str>) -> bool {
    if declared.contains(key) {
        return true;
    }
    let words = key_words(key);
    let secret_word = |w: &str| {
        SECRET_WORDS.contains(&w)
            || w.strip_suffix('s')
                .is_some_and(|w| SECRET_WORDS.contains(&w))
    };
    words.iter().any(|w| secret_word(w)) || words.last().is_some_and(|w| w == "key" || w == "keys")
}

/// `clientSecret` and `client-secret` alike: `["client", "secret"]`, lowercase.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// How a string value that is not under a secret key is shown, if it holds a credential.
fn value_redaction(value: &str) -> Option<(String, Vec<String>)> {
    let lower = value.to_ascii_lowercase();
    if CONNECTION_STRING_MARKERS.iter().any(|m| lower.contains(m)) {
        return Some(("***".to_owned(), vec![value.to_owned()]));
    }
    if value.contains("://") {
        let secrets = uri_secrets(value);
        if !secrets.is_empty() {
            return Some((redact_uri(value), secrets));
        }
    }
    None
}

/// A secret value in the text: where it is, how to show it, and the secret strings it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpan {
    /// Its bytes in the text, quotes included.
    pub span: Range<usize>,
    /// What to show instead (`"***"`, or the URI without its password, quoted).
    pub shown: String,
    /// The secret strings (the whole value, or a URI's password and secret parameters).
    pub secrets: Vec<String>,
}

/// The secret values of a configuration text.
#[derive(Clone, Debug, Default)]
pub struct SecretSpans {
    spans: Vec<SecretSpan>,
}

impl SecretSpans {
    /// Finds every secret value in `text` (which need not be valid TOML).
    pub fn scan(text: &str) -> Self {
        let declared = declared_secret_keys();
        let source = Source::new(text);
        let tokens = source.lex().into_vec();
        let mut receiver = Scanner {
            source,
            declared: &declared,
            header: Vec::new(),
            in_header: false,
            pending: Vec::new(),
            value_path: None,
            stack: Vec::new(),
            found: Vec::new(),
        };
        let mut errors = ();
        toml_parser::parser::parse_document(&tokens, &mut receiver, &mut errors);
        let mut spans = receiver.found;
        spans.sort_by_key(|s| s.span.start);
        Self { spans }
    }

    /// The secret values, in file order.
    pub fn spans(&self) -> &[SecretSpan] {
        &self.spans
    }

    /// Every secret string found, in file order.
    pub fn values(&self) -> Vec<String> {
        self.spans
            .iter()
            .flat_map(|s| s.secrets.iter().cloned())
            .collect()
    }

    /// `text` with every secret string found replaced by `***` (longest first), whatever its
    /// length: for messages about this very file.
    pub fn scrub(&self, text: &str) -> String {
        let mut values = self.values();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for value in values.iter().filter(|v| !v.is_empty()) {
            // Values of one or two characters would garble the message; they are still hidden in
            // the snippet, which knows where they are.
            if value.chars().count() >= 3 {
                out = out.replace(value.as_str(), "***");
            }
        }
        super::secret::scrub(&out).into_owned()
    }

    /// Adds every secret found to the process's known secrets ([`remember_secret`]).
    pub fn remember(&self) {
        for value in self.values() {
            remember_secret(&value);
        }
    }
}

/// How many leading parts of a dotted key are names the user chose rather than keys: the section
/// and the component's name in `sources.<name>`, `transforms.<name>`, `sinks.<name>`. A sink
/// named `sas` says nothing about its values. `[tables]` holds no secrets at all: its keys are
/// table and column names (`types = { api_key = "string" }` types a column), so none of them
/// counts.
fn named_parts(path: &[String]) -> usize {
    match path.first().map(String::as_str) {
        Some("sources" | "transforms" | "sinks") => 2,
        Some("tables") => path.len(),
        _ => 0,
    }
}

/// Remembers the secret values of an interpolated document: values that came from the
/// environment are in no text, but may be echoed by errors and logs.
pub(crate) fn remember_values(table: &DeTable<'_>) {
    let declared = declared_secret_keys();
    for (key, value) in table.iter() {
        remember_value(value, &mut vec![key.get_ref().to_string()], &declared);
    }
}

fn remember_value(
    value: &Spanned<DeValue<'_>>,
    path: &mut Vec<String>,
    declared: &BTreeSet<&'static str>,
) {
    let secret = || {
        path.iter()
            .skip(named_parts(path))
            .any(|k| is_secret_key(k, declared))
    };
    match value.get_ref() {
        DeValue::String(s) if secret() => remember_secret(s),
        DeValue::String(s) => {
            if let Some((_, secrets)) = value_redaction(s) {
                secrets.iter().for_each(|s| remember_secret(s));
            }
        }
        DeValue::Array(items) => items
            .iter()
            .for_each(|item| remember_value(item, path, declared)),
        DeValue::Table(table) => {
            for (key, value) in table.iter() {
                path.push(key.get_ref().to_string());
                remember_value(value, path, declared);
                path.pop();
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// Where a value being read belongs.
#[derive(Clone, Debug)]
enum Frame {
    /// Inside an inline table whose key path is this.
    Table(Vec<String>),
    /// Inside an array whose values are under this key path.
    Array(Vec<String>),
}

/// Follows `toml_parser`'s events, keeping the key path of each value.
struct Scanner<'i, 'd> {
    source: Source<'i>,
    declared: &'d BTreeSet<&'static str>,
    /// The `[table]` header's path.
    header: Vec<String>,
    in_header: bool,
    /// Keys read since the last value (a dotted key's parts).
    pending: Vec<String>,
    /// The path of the value about to come (after `=`).
    value_path: Option<Vec<String>>,
    stack: Vec<Frame>,
    found: Vec<SecretSpan>,
}

impl Scanner<'_, '_> {
    fn raw(&self, span: Span, encoding: Option<Encoding>) -> Option<Raw<'_>> {
        let text = self.source.input().get(span.start()..span.end())?;
        Some(Raw::new_unchecked(text, encoding, span))
    }

    fn base(&self) -> Vec<String> {
        match self.stack.last() {
            Some(Frame::Table(path)) => path.clone(),
            Some(Frame::Array(path)) => path.clone(),
            None => self.header.clone(),
        }
    }

    fn is_secret_path(&self, path: &[String]) -> bool {
        path.iter()
            .skip(named_parts(path))
            .any(|k| is_secret_key(k, self.declared))
    }
}

impl EventReceiver for Scanner<'_, '_> {
    fn std_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.header.clear();
        self.stack.clear();
        self.pending.clear();
        self.value_path = None;
        self.in_header = true;
    }

    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.in_header = false;
    }

    fn array_table_open(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.std_table_open(span, error);
    }

    fn array_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.std_table_close(span, error);
    }

    fn inline_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        let path = self.value_path.take().unwrap_or_else(|| self.base());
        self.stack.push(Frame::Table(path));
        true
    }

    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.stack.pop();
        self.pending.clear();
    }

    fn array_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        let path = self.value_path.take().unwrap_or_else(|| self.base());
        self.stack.push(Frame::Array(path));
        true
    }

    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.stack.pop();
    }

    fn simple_key(&mut self, span: Span, kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let mut key = String::new();
        if let Some(raw) = self.raw(span, kind) {
            raw.decode_key(&mut key, &mut ());
        }
        if self.in_header {
            self.header.push(key);
        } else {
            self.pending.push(key);
        }
    }

    fn key_val_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let mut path = self.base();
        path.append(&mut self.pending);
        self.value_path = Some(path);
    }

    fn scalar(&mut self, span: Span, kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let path = match self.value_path.take() {
            Some(path) => path,
            None => match self.stack.last() {
                Some(Frame::Array(path)) => path.clone(),
                _ => return,
            },
        };
        let Some(raw) = self.raw(span, kind) else {
            return;
        };
        let mut value = String::new();
        let _ = raw.decode_scalar(&mut value, &mut ());
        let range = span.start()..span.end();
        if self.is_secret_path(&path) {
            self.found.push(SecretSpan {
                span: range,
                shown: "\"***\"".to_owned(),
                secrets: vec![value],
            });
        } else if kind.is_some() {
            if let Some((shown, secrets)) = value_redaction(&value) {
                self.found.push(SecretSpan {
                    span: range,
                    shown: format!("{shown:?}"),
                    secrets,
                });
            }
        }
    }

    fn newline(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        // Outside inline tables and arrays (which TOML 1.1 lets span lines) a line ends a
        // key-value pair, and recovers from a malformed one.
        if self.stack.is_empty() {
            self.pending.clear();
            self.value_path = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_that_hold_secrets() {
        let declared = BTreeSet::from(["dsn"]);
        for key in [
            "client_secret",
            "clientSecret",
            "password",
            "db-password",
            "token",
            "account_key",
            "key",
            "api_key",
            "sas_token",
            "dsn",
        ] {
            assert!(is_secret_key(key, &declared), "{key}");
        }
        for key in [
            "tenant_id",
            "client_id",
            "landing_zone",
            "key_columns",
            "method",
            "type",
            "uri",
        ] {
            assert!(!is_secret_key(key, &declared), "{key}");
        }
    }

    #[test]
    fn finds_values_under_secret_keys_at_any_depth_and_uri_passwords() {
        let text = r#"
[sources.a]
uri = "mongodb://u:pw1@h/"
other = "https://x.blob.core.windows.net/c?sv=1&sig=sig2"
[sinks.b]
auth = { method = "client_secret", client_secret = "cs3", tenant_id = "t" }
fabric = { auth = { method = "bearer_token", token = 'tok4' } }
conn = "Server=x;Password=pw5;"
[sinks.b.nested]
passwords = ["p6", """p7"""]
[sinks.password]
type = "onelake"
[tables."shop.users"]
types = { password = "string", api_key = "string" }
[api]
token = "api8"
"#;
        let spans = SecretSpans::scan(text);
        assert_eq!(
            spans.values(),
            [
                "pw1",
                "sig2",
                "cs3",
                "tok4",
                "Server=x;Password=pw5;",
                "p6",
                "p7",
                "api8"
            ]
        );
        let uri = &spans.spans()[0];
        assert_eq!(uri.shown, "\"mongodb://u:***@h/\"");
        let sas = &spans.spans()[1];
        assert_eq!(
            sas.shown,
            "\"https://x.blob.core.windows.net/c?sv=1&sig=***\""
        );
    }

    #[test]
    fn a_file_that_does_not_parse_still_has_its_secrets_found() {
        let text = "[sinks.b]\nauth = { client_secret = \"cs-1\", extra = }\n";
        assert_eq!(SecretSpans::scan(text).values(), ["cs-1"]);
    }
}
