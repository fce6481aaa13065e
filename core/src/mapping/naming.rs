//! Column names: turning source field paths into names Fabric and SQL users do not trip on, and
//! resolving collisions deterministically.
//!
//! Rules (`column_names` in `mirror.toml`):
//! - `sanitize` (default): `.`, `$`, whitespace, control characters and `, ; { } ( ) = [ ] " ' `` ` ``
//!   become `_`; other characters (letters of any script, digits, `-`, ...) stay.
//! - `strict`: everything but ASCII letters, digits and `_` becomes `_`, and a name starting with a
//!   digit gets a leading `_`.
//!
//! Under both rules an empty field name becomes `_`, the parts of a flattened path are joined with
//! `_`, and a name longer than [`MAX_NAME_CHARS`] characters is cut to 119 characters followed by `_`
//! and 8 hex digits of a hash of the whole name, so different long names stay different.
//!
//! Names are compared case-insensitively (Fabric's SQL endpoint and Delta are case-insensitive). When
//! a name is taken, the next column that wants it gets `__2`, then `__3`, ...: the column that came
//! first keeps its name, and the order is the table's column order, which is part of its checkpoint
//! state, so the outcome is the same on every run and host.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Longest column name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// How field names become column names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameRule {
    /// Replace only characters that break SQL tools or Fabric.
    #[default]
    Sanitize,
    /// ASCII letters, digits and `_` only.
    Strict,
}

impl NameRule {
    /// One field name (one part of a path) under this rule.
    pub fn part<'a>(&self, field: &'a str) -> Cow<'a, str> {
        if field.is_empty() {
            return Cow::Borrowed("_");
        }
        let bad = |c: char| match self {
            NameRule::Sanitize => {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(
                        c,
                        '.' | '$'
                            | ','
                            | ';'
                            | '{'
                            | '}'
                            | '('
                            | ')'
                            | '='
                            | '['
                            | ']'
                            | '"'
                            | '\''
                            | '`'
                    )
            }
            NameRule::Strict => !(c.is_ascii_alphanumeric() || c == '_'),
        };
        if !field.chars().any(bad) {
            return Cow::Borrowed(field);
        }
        Cow::Owned(
            field
                .chars()
                .map(|c| if bad(c) { '_' } else { c })
                .collect(),
        )
    }

    /// The column name for a field path (flattened parts joined with `_`), cut to length.
    pub fn column_name<S: AsRef<str>>(&self, path: &[S]) -> String {
        let mut name = String::new();
        for (i, part) in path.iter().enumerate() {
            if i > 0 {
                name.push('_');
            }
            name.push_str(&self.part(part.as_ref()));
        }
        if *self == NameRule::Strict && name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert(0, '_');
        }
        shorten(name)
    }

    /// Whether `name` is already a valid column name under this rule (used to check renames).
    pub fn is_valid(&self, name: &str) -> bool {
        !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && self.part(name) == name
            && !(*self == NameRule::Strict && name.starts_with(|c: char| c.is_ascii_digit()))
    }
}

/// `name` cut to [`MAX_NAME_CHARS`] characters, keeping it unique with a hash of the whole name.
pub fn shorten(name: String) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name;
    }
    let keep: String = name.chars().take(MAX_NAME_CHARS - 9).collect();
    format!("{keep}_{:08x}", fnv1a32(name.as_bytes()))
}

/// FNV-1a, 32 bits: a stable hash (the same on every platform and release).
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The set of names taken in one table, compared case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct NameSet {
    taken: HashSet<String>,
}

impl NameSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn fold(name: &str) -> String {
        name.to_lowercase()
    }

    /// Whether `name` (in any case) is taken.
    pub fn contains(&self, name: &str) -> bool {
        self.taken.contains(&Self::fold(name))
    }

    /// Takes `name`; false if it was taken.
    pub fn insert(&mut self, name: &str) -> bool {
        self.taken.insert(Self::fold(name))
    }

    /// Takes `wanted`, or the first free `wanted__2`, `wanted__3`, ... and returns the name taken.
    pub fn claim(&mut self, wanted: &str) -> String {
        if self.insert(wanted) {
            return wanted.to_owned();
        }
        for n in 2u64.. {
            let suffix = format!("__{n}");
            let room = MAX_NAME_CHARS - suffix.len();
            let base: String = if wanted.chars().count() > room {
                wanted.chars().take(room).collect()
            } else {
                wanted.to_owned()
            };
            let candidate = format!("{base}{suffix}");
            if self.insert(&candidate) {
                return candidate;
            }
        }
        unreachable!("an unbounded counter always finds a free name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_troublesome_characters_only() {
        let r = NameRule::Sanitize;
        assert_eq!(r.column_name(&["a.b"]), "a_b");
        assert_eq!(r.column_name(&["$price"]), "_price");
        assert_eq!(r.column_name(&["first name"]), "first_name");
        assert_eq!(r.column_name(&["tab\there"]), "tab_here");
        assert_eq!(r.column_name(&[""]), "_");
        assert_eq!(r.column_name(&["addr", "zip code"]), "addr_zip_code");
        assert_eq!(r.column_name(&["prix-été", "€"]), "prix-été_€");
        assert_eq!(r.column_name(&["f(x)=[1]"]), "f_x___1_");
        assert_eq!(r.column_name(&["9lives"]), "9lives");
    }

    #[test]
    fn strict_keeps_ascii_word_characters() {
        let r = NameRule::Strict;
        assert_eq!(r.column_name(&["prix-été"]), "prix__t_");
        assert_eq!(r.column_name(&["9lives"]), "_9lives");
        assert!(r.is_valid("_9lives"));
        assert!(!r.is_valid("9lives"));
        assert!(NameRule::Sanitize.is_valid("9lives"));
        assert!(!NameRule::Sanitize.is_valid("a.b"));
        assert!(!NameRule::Sanitize.is_valid(""));
    }

    #[test]
    fn long_names_are_cut_with_a_hash_that_keeps_them_apart() {
        let a = "x".repeat(200);
        let b = format!("{}y", "x".repeat(199));
        let na = NameRule::Sanitize.column_name(&[a.as_str()]);
        let nb = NameRule::Sanitize.column_name(&[b.as_str()]);
        assert_eq!(na.chars().count(), MAX_NAME_CHARS);
        assert_eq!(nb.chars().count(), MAX_NAME_CHARS);
        assert_ne!(na, nb);
        assert!(na.starts_with(&"x".repeat(119)));
        assert_eq!(&na[119..120], "_");
        // Stable across runs: the hash is FNV-1a of the full name.
        assert_eq!(na, NameRule::Sanitize.column_name(&[a.as_str()]));
        let exact = "z".repeat(128);
        assert_eq!(NameRule::Sanitize.column_name(&[exact.as_str()]), exact);
    }

    #[test]
    fn claims_resolve_case_insensitive_collisions_in_order() {
        let mut names = NameSet::new();
        assert_eq!(names.claim("a_b"), "a_b");
        assert_eq!(names.claim("A_B"), "A_B__2");
        assert_eq!(names.claim("a_b"), "a_b__3");
        assert!(names.contains("a_B__2"));
        let long = "q".repeat(128);
        assert_eq!(names.claim(&long), long);
        let second = names.claim(&long);
        assert_eq!(second.chars().count(), 128);
        assert!(second.ends_with("__2"));
    }
}
