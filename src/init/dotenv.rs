//! Reading a `.env` file the way python-dotenv does for the MongoDB_Fabric_Mirroring app:
//! `KEY=value` or `KEY = value` lines, an optional `export `, `#` comments (whole lines, or after
//! an unquoted value and a space), values in single quotes (taken as written) or double quotes
//! (with `\"`, `\\`, `\n` escapes).

use std::collections::BTreeMap;

/// A variable, with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvValue {
    /// Its value.
    pub value: String,
    /// Its line (1-based).
    pub line: usize,
}

/// A malformed line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `.env` text; a later assignment of a key wins, as in python-dotenv.
pub fn parse(text: &str) -> Result<BTreeMap<String, EnvValue>, DotenvError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("export ")
            .unwrap_or(trimmed)
            .trim_start();
        let Some((key, rest)) = trimmed.split_once('=') else {
            return Err(DotenvError {
                line,
                message: format!("expected KEY=value, found `{trimmed}`"),
            });
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DotenvError {
                line,
                message: format!("`{key}` is not a variable name"),
            });
        }
        let value = unquote(rest.trim_start(), line)?;
        out.insert(key.to_owned(), EnvValue { value, line });
    }
    Ok(out)
}

fn unquote(rest: &str, line: usize) -> Result<String, DotenvError> {
    let unterminated = |q: char| DotenvError {
        line,
        message: format!("the value's {q} quote is not closed on this line"),
    };
    if let Some(body) = rest.strip_prefix('\'') {
        let end = body.find('\'').ok_or_else(|| unterminated('\''))?;
        return Ok(body[..end].to_owned());
    }
    if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(unterminated('"'));
    }
    // Unquoted: a comment starts at ` #`.
    let value = match rest.find(" #") {
        Some(i) => &rest[..i],
        None if rest.starts_with('#') => "",
        None => rest,
    };
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_example_layout_parses() {
        let env = parse(
            "LOG_LEVEL = \"INFO\" # optional\n\nMONGO_CONN_STR = \"mongodb://u:p@h/\"\n\
             MONGO_COLLECTION = [\"a\", \"b\"]\n# a comment\nexport LZ_URL='https://x/LandingZone/'\n\
             SECRET=s3#cret\nEMPTY=\nESCAPED=\"a\\\"b\"\n",
        )
        .unwrap();
        let v = |k: &str| env[k].value.as_str();
        assert_eq!(v("LOG_LEVEL"), "INFO");
        assert_eq!(v("MONGO_CONN_STR"), "mongodb://u:p@h/");
        assert_eq!(v("MONGO_COLLECTION"), "[\"a\", \"b\"]");
        assert_eq!(v("LZ_URL"), "https://x/LandingZone/");
        assert_eq!(v("SECRET"), "s3#cret");
        assert_eq!(v("EMPTY"), "");
        assert_eq!(v("ESCAPED"), "a\"b");
        assert_eq!(env["MONGO_CONN_STR"].line, 3);
        assert!(parse("NOT A LINE\n").is_err());
        assert!(parse("K=\"open\n").is_err());
    }
}
