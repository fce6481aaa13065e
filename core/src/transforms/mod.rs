//! First-party transforms, declared per route in `mirror.toml`.
//!
//! | type | does |
//! |---|---|
//! | `filter` | keeps the rows matching a predicate (`where = "status != 'archived'"`) |
//! | `columns` | drops and renames columns |
//! | `mask` | replaces columns by a keyed hash, a fixed text, or null (PII) |
//! | `add_column` | adds a constant or computed column (table name, schema, ingest time) |
//!
//! Every transform maps one batch to one batch: row operations stay aligned with rows and the
//! checkpoint passes through. Each accepts `tables = ["pattern", ...]` (`*` matches any run of
//! characters) to act on some tables only; other tables pass unchanged.

mod add_column;
mod columns;
mod filter;
mod mask;
pub mod predicate;

pub use add_column::AddColumnConfig;
pub use columns::ColumnsConfig;
pub use filter::FilterConfig;
pub use mask::MaskConfig;

use crate::model::TableId;

/// Refers to every registering module (see [`crate::link`]).
pub(crate) fn link() {
    filter::link();
    columns::link();
    mask::link();
    add_column::link();
}

/// Which tables a transform acts on: all when empty, else those matching a pattern.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct TableSelector(Vec<String>);

impl TableSelector {
    /// Whether `table` is selected.
    pub fn matches(&self, table: &TableId) -> bool {
        let name = table.to_string();
        self.0.is_empty() || self.0.iter().any(|p| wildcard_match(p, &name))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("shop.schema/*", "shop.schema/orders"));
        assert!(wildcard_match("*orders", "shop.schema/orders"));
        assert!(wildcard_match("*.schema/*s", "shop.schema/orders"));
        assert!(!wildcard_match("*.schema/*x", "shop.schema/orders"));
        assert!(wildcard_match("orders", "orders"));
        assert!(!wildcard_match("orders", "orders2"));
        assert!(wildcard_match("a*a", "aa"));
        assert!(!wildcard_match("a*a", "a"));
    }
}
