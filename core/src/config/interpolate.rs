//! `${VAR}` interpolation of environment variables in configuration strings.
//!
//! Rules: `${NAME}` is replaced by the variable's value, and is an error if it is not set;
//! `${NAME:-fallback}` uses `fallback` when it is unset or empty; `$$` is a literal `$`; any other
//! `$` is kept as is. Only string values are interpolated, never keys, and a value that came from
//! the environment is not interpolated again.

use std::borrow::Cow;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A failed substitution, at a span of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError {
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

/// Looks up an environment variable.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Interpolates every string below `table`; `path` is the dotted key of `table`.
pub(crate) fn interpolate_table(
    table: &mut DeTable<'_>,
    path: &str,
    env: Lookup<'_>,
) -> Result<(), InterpolationError> {
    for (key, value) in table.iter_mut() {
        let key_path = join(path, key.get_ref());
        interpolate_value(value, &key_path, env)?;
    }
    Ok(())
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    env: Lookup<'_>,
) -> Result<(), InterpolationError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(text) => {
            if text.contains('$') {
                let replaced = substitute(text, env).map_err(|message| InterpolationError {
                    span,
                    key: path.to_owned(),
                    message,
                })?;
                *text = Cow::Owned(replaced);
            }
            Ok(())
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env)?;
            }
            Ok(())
        }
        DeValue::Table(table) => interpolate_table(table, path, env),
        _ => Ok(()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Substitutes variables in one string.
pub(crate) fn substitute(text: &str, env: Lookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$$` for a literal `$`)".to_owned())?;
            let reference = &body[..close];
            let (name, fallback) = match reference.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (reference, None),
            };
            if !is_variable_name(name) {
                return Err(format!(
                    "`${{{reference}}}` is not a valid variable reference (names are letters, digits and `_`)"
                ));
            }
            match (env(name), fallback) {
                (Some(value), Some(fallback)) if value.is_empty() => out.push_str(fallback),
                (Some(value), _) => out.push_str(&value),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => {
                    return Err(format!("environment variable `{name}` is not set"));
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER_NAME" => Some("ada".into()),
            "EMPTY" => Some(String::new()),
            "DOLLARS" => Some("${USER_NAME}".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        let cases = [
            ("plain", "plain"),
            ("${USER_NAME}", "ada"),
            ("a-${USER_NAME}-b", "a-ada-b"),
            ("${MISSING:-x}", "x"),
            ("${EMPTY:-x}", "x"),
            ("${EMPTY}", ""),
            ("cost $5", "cost $5"),
            ("$${USER_NAME}", "${USER_NAME}"),
            ("${DOLLARS}", "${USER_NAME}"),
        ];
        for (input, expected) in cases {
            assert_eq!(substitute(input, &env).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn reports_missing_and_malformed_references() {
        assert_eq!(
            substitute("${NOPE}", &env).unwrap_err(),
            "environment variable `NOPE` is not set"
        );
        assert!(substitute("${A B}", &env)
            .unwrap_err()
            .contains("not a valid variable"));
        assert!(substitute("${OPEN", &env)
            .unwrap_err()
            .contains("unterminated"));
    }
}
