//! A table's mapping rules, resolved from `[tables."*"]` and `[tables."<table>"]`, and the checks
//! `mirror check` runs on them.
//!
//! Field paths are written dotted (`customer.address.city`) in `mirror.toml` and are lists of field
//! names in code. The rules answer, per path, whether the field is kept, what its column is called,
//! whether its type is pinned and whether a sub-document found there is flattened.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::naming::{NameRule, NameSet};
use super::types::ColumnType;
use super::{KEY_COLUMN, OVERFLOW_COLUMN, ROW_MARKER_COLUMN};
use crate::config::{TableSettings, ALL_TABLES};

/// Default number of documents sampled to infer types.
pub const DEFAULT_SAMPLE_SIZE: usize = 1000;

/// How nested values are written as JSON text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonFlavor {
    /// Plain JSON: object ids as hex strings, dates as ISO-8601 UTC strings, decimals as strings.
    #[default]
    Plain,
    /// MongoDB Extended JSON v2, relaxed mode.
    Relaxed,
    /// MongoDB Extended JSON v2, canonical mode (keeps every type).
    Canonical,
}

/// Which documents the type-inference sample reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleMethod {
    /// A random sample (MongoDB: `$sample`).
    #[default]
    Random,
    /// The first documents in natural order.
    First,
}

/// The mapping of one table, with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMapping {
    /// Pinned types by dotted path.
    pub types: BTreeMap<String, ColumnType>,
    /// Column names by dotted path.
    pub rename: BTreeMap<String, String>,
    /// Excluded dotted paths.
    pub exclude: Vec<String>,
    /// If set, the only dotted paths kept (with their ancestors and descendants).
    pub include: Option<Vec<String>>,
    /// Sub-documents down to this level become columns.
    pub flatten_depth: u32,
    /// JSON flavour of JSON columns.
    pub json: JsonFlavor,
    /// Column naming rule.
    pub column_names: NameRule,
    /// Documents sampled before the first batch.
    pub sample_size: usize,
    /// Which documents are sampled.
    pub sample: SampleMethod,
}

impl Default for TableMapping {
    fn default() -> Self {
        Self::resolve(&BTreeMap::new(), "")
    }
}

/// What happens to the field at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRule {
    /// Not mirrored (excluded, or outside `include`).
    Skip,
    /// Mirrored.
    Keep(FieldPlan),
}

/// How a kept field is mirrored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPlan {
    /// The column name it asks for (collisions are resolved when the column is created).
    pub name: String,
    /// Its pinned type, if any.
    pub pinned: Option<ColumnType>,
    /// Whether a sub-document found at this path is flattened into child columns.
    pub flatten: bool,
    /// Whether a non-document value at this path is mirrored (false for paths that are kept only
    /// because an `include`d path lies below them).
    pub scalar: bool,
}

fn dotted<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::new();
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(p.as_ref());
    }
    out
}

/// Whether dotted `prefix` is `path` or one of its ancestors, component-wise.
fn is_prefix(prefix: &str, path: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'.')
}

impl TableMapping {
    /// The mapping of `source_table`: `[tables."*"]` overlaid with `[tables."<source_table>"]`.
    pub fn resolve(tables: &BTreeMap<String, TableSettings>, source_table: &str) -> Self {
        let layers: Vec<&TableSettings> = [tables.get(ALL_TABLES), tables.get(source_table)]
            .into_iter()
            .flatten()
            .collect();
        let mut m = TableMapping {
            types: BTreeMap::new(),
            rename: BTreeMap::new(),
            exclude: Vec::new(),
            include: None,
            flatten_depth: 0,
            json: JsonFlavor::default(),
            column_names: NameRule::default(),
            sample_size: DEFAULT_SAMPLE_SIZE,
            sample: SampleMethod::default(),
        };
        for s in layers {
            m.types.extend(s.types.iter().map(|(k, v)| (k.clone(), *v)));
            for path in s.json_fields.iter().flatten() {
                m.types.insert(path.clone(), ColumnType::Json);
            }
            m.rename.extend(s.rename.clone());
            m.exclude.extend(s.exclude.iter().flatten().cloned());
            if let Some(include) = &s.include {
                m.include = Some(include.clone());
            }
            if let Some(d) = s.flatten_depth {
                m.flatten_depth = d;
            }
            if let Some(j) = s.json {
                m.json = j;
            }
            if let Some(r) = s.column_names {
                m.column_names = r;
            }
            if let Some(n) = s.sample_size {
                m.sample_size = n;
            }
            if let Some(x) = s.sample {
                m.sample = x;
            }
        }
        m
    }

    /// The rule for the field at `path` (`path[0]` is a top-level field). `_id` at the top level is
    /// the key column and is not asked about.
    pub fn field<S: AsRef<str>>(&self, path: &[S]) -> FieldRule {
        let key = dotted(path);
        if self.exclude.iter().any(|e| is_prefix(e, &key)) {
            return FieldRule::Skip;
        }
        let mut scalar = true;
        let mut force_flatten = false;
        if let Some(include) = &self.include {
            if include.iter().any(|i| is_prefix(i, &key)) {
                // Included, with everything below it.
            } else if include.iter().any(|i| is_prefix(&key, i)) {
                // An ancestor of an included path: descend into it, keep nothing else of it.
                scalar = false;
                force_flatten = true;
            } else {
                return FieldRule::Skip;
            }
        }
        let pinned = self.types.get(&key).copied();
        let flatten =
            force_flatten || (pinned.is_none() && path.len() <= self.flatten_depth as usize);
        FieldRule::Keep(FieldPlan {
            name: self.column_name(path),
            pinned,
            flatten,
            scalar,
        })
    }

    /// The column name `path` asks for: its rename, else its parent's name, `_` and its own
    /// name under the naming rule.
    pub fn column_name<S: AsRef<str>>(&self, path: &[S]) -> String {
        if let Some(name) = self.rename.get(&dotted(path)) {
            return name.clone();
        }
        match path.split_last() {
            None => String::new(),
            Some((last, [])) => self.column_names.column_name(&[last.as_ref()]),
            Some((last, parent)) => {
                let parent = self.column_name(parent);
                self.column_names
                    .column_name(&[parent.as_str(), last.as_ref()])
            }
        }
    }
}

/// A problem in a table's mapping, found by [`check`] or [`check_fields`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingIssue {
    /// The dotted config key, e.g. `tables."shop.orders".rename."a.b"`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn key_of(table: &str, section: &str, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("tables.\"{table}\".{section}.\"{p}\""),
        None => format!("tables.\"{table}\".{section}"),
    }
}

/// Names no mirrored field may take: the key, the overflow column and the row marker.
pub fn reserved_names() -> NameSet {
    let mut names = NameSet::new();
    for n in [KEY_COLUMN, OVERFLOW_COLUMN, ROW_MARKER_COLUMN] {
        names.insert(n);
    }
    names
}

/// Checks every `[tables.*]` mapping for mistakes that need no data to find: `_id` pinned,
/// renamed or excluded; renames that are not valid column names or that collide (with each other,
/// with reserved names or with the name of another declared field); a path both excluded and
/// mapped; `target` in the `"*"` defaults.
pub fn check(tables: &BTreeMap<String, TableSettings>) -> Vec<MappingIssue> {
    let mut issues = Vec::new();
    for (table, s) in tables {
        let mut push = |key: String, message: String| issues.push(MappingIssue { key, message });
        if table == ALL_TABLES && s.target.is_some() {
            push(
                key_of(table, "target", None),
                "the defaults for all tables cannot set a target table".into(),
            );
        }
        let rule = s.column_names.unwrap_or_else(|| {
            tables
                .get(ALL_TABLES)
                .and_then(|d| d.column_names)
                .unwrap_or_default()
        });
        let mentions = s
            .types
            .keys()
            .map(|p| ("types", p))
            .chain(s.rename.keys().map(|p| ("rename", p)))
            .chain(s.exclude.iter().flatten().map(|p| ("exclude", p)))
            .chain(s.json_fields.iter().flatten().map(|p| ("json_fields", p)));
        for (section, path) in mentions {
            if is_prefix(KEY_COLUMN, path) {
                push(
                    key_of(table, section, Some(path)),
                    "`_id` is the key column: it is always mirrored, as a string, under its own name".into(),
                );
            }
        }
        for path in s.exclude.iter().flatten() {
            let mapped = s
                .types
                .keys()
                .chain(s.rename.keys())
                .chain(s.json_fields.iter().flatten())
                .find(|p| is_prefix(path, p));
            if let Some(p) = mapped {
                push(
                    key_of(table, "exclude", Some(path)),
                    format!("`{p}` is excluded here but mapped elsewhere in this table"),
                );
            }
        }
        for path in s.json_fields.iter().flatten() {
            if let Some(t) = s.types.get(path).filter(|t| **t != ColumnType::Json) {
                push(
                    key_of(table, "json_fields", Some(path)),
                    format!("also pinned to `{t}` in `types`"),
                );
            }
        }
        // Renames and the names of declared fields must be valid and distinct.
        let mapping = TableMapping::resolve(tables, table);
        let mut names = reserved_names();
        for (path, name) in &s.rename {
            if !rule.is_valid(name) {
                push(
                    key_of(table, "rename", Some(path)),
                    format!(
                        "`{name}` is not a valid column name under column_names = \"{}\" (it becomes `{}`)",
                        serde_json::to_value(rule).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                        rule.column_name(&[name.as_str()])
                    ),
                );
            }
            if !names.insert(name) {
                push(
                    key_of(table, "rename", Some(path)),
                    format!("`{name}` is already the name of another column (names are compared ignoring case)"),
                );
            }
        }
        let declared: Vec<&String> = s
            .types
            .keys()
            .chain(s.json_fields.iter().flatten())
            .filter(|p| !s.rename.contains_key(*p) && !is_prefix(KEY_COLUMN, p))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for path in declared {
            if !seen.insert(path) {
                continue;
            }
            let parts: Vec<&str> = path.split('.').collect();
            let name = mapping.column_name(&parts);
            if !names.insert(&name) {
                push(
                    key_of(table, "types", Some(path)),
                    format!(
                        "its column `{name}` collides with another column (rename one of them)"
                    ),
                );
            }
        }
    }
    issues
}

/// Checks the column names a set of field paths (e.g. from a sample of documents) would get under
/// `mapping`: each path whose name collides with an earlier one (and would get a `__N` suffix) is an
/// issue. Paths are taken in the order given; skipped paths are ignored.
pub fn check_fields(
    table: &str,
    mapping: &TableMapping,
    paths: &[Vec<String>],
) -> Vec<MappingIssue> {
    let mut names = reserved_names();
    let mut issues = Vec::new();
    for path in paths {
        let FieldRule::Keep(plan) = mapping.field(path) else {
            continue;
        };
        let got = names.claim(&plan.name);
        if got != plan.name {
            issues.push(MappingIssue {
                key: format!("tables.\"{table}\""),
                message: format!(
                    "field `{}` wants column `{}`, which another field already has; it becomes `{got}` (add a rename to choose)",
                    dotted(path),
                    plan.name
                ),
            });
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(toml_text: &str) -> BTreeMap<String, TableSettings> {
        #[derive(Deserialize)]
        struct Root {
            tables: BTreeMap<String, TableSettings>,
        }
        toml::from_str::<Root>(toml_text).unwrap().tables
    }

    #[test]
    fn table_settings_overlay_the_defaults() {
        let t = tables(
            r#"
            [tables."*"]
            flatten_depth = 2
            json = "canonical"
            exclude = ["secret"]
            types = { total = "double", n = "int64" }
            sample_size = 10

            [tables."shop.orders"]
            target = "sales.schema/orders"
            types = { total = "decimal(18,2)" }
            exclude = ["internal"]
            json_fields = ["payload"]
            rename = { "customer.name" = "customer" }
            sample = "first"
            "#,
        );
        let m = TableMapping::resolve(&t, "shop.orders");
        assert_eq!(m.flatten_depth, 2);
        assert_eq!(m.json, JsonFlavor::Canonical);
        assert_eq!(m.exclude, vec!["secret", "internal"]);
        assert_eq!(
            m.types.get("total"),
            Some(&ColumnType::Decimal {
                precision: 18,
                scale: 2
            })
        );
        assert_eq!(m.types.get("n"), Some(&ColumnType::Int64));
        assert_eq!(m.types.get("payload"), Some(&ColumnType::Json));
        assert_eq!(m.sample_size, 10);
        assert_eq!(m.sample, SampleMethod::First);
        let other = TableMapping::resolve(&t, "shop.other");
        assert_eq!(other.exclude, vec!["secret"]);
        assert_eq!(other.sample, SampleMethod::Random);
        let bare = TableMapping::default();
        assert_eq!(bare.flatten_depth, 0);
        assert_eq!(bare.json, JsonFlavor::Plain);
        assert_eq!(bare.sample_size, DEFAULT_SAMPLE_SIZE);
    }

    #[test]
    fn field_rules_apply_exclude_include_flatten_and_renames() {
        let t = tables(
            r#"
            [tables."db.c"]
            flatten_depth = 1
            exclude = ["a.secret"]
            types = { "a.n" = "int64", b = "json" }
            rename = { a = "alpha", "a.x y" = "xy" }
            "#,
        );
        let m = TableMapping::resolve(&t, "db.c");
        assert_eq!(m.field(&["a", "secret"]), FieldRule::Skip);
        assert_eq!(m.field(&["a", "secret", "deep"]), FieldRule::Skip);
        let plan = |name: &str, pinned, flatten| {
            FieldRule::Keep(FieldPlan {
                name: name.into(),
                pinned,
                flatten,
                scalar: true,
            })
        };
        assert_eq!(m.field(&["a"]), plan("alpha", None, true));
        assert_eq!(
            m.field(&["a", "n"]),
            plan("alpha_n", Some(ColumnType::Int64), false)
        );
        assert_eq!(m.field(&["a", "x y"]), plan("xy", None, false));
        assert_eq!(m.field(&["a", "q.r"]), plan("alpha_q_r", None, false));
        assert_eq!(m.field(&["b"]), plan("b", Some(ColumnType::Json), false));
        // A similar name is not a child.
        assert_eq!(
            m.field(&["a", "secrets"]),
            plan("alpha_secrets", None, false)
        );

        let t = tables(
            r#"
            [tables."db.c"]
            include = ["customer.name", "total"]
            "#,
        );
        let m = TableMapping::resolve(&t, "db.c");
        assert_eq!(m.field(&["other"]), FieldRule::Skip);
        assert_eq!(m.field(&["total"]), plan("total", None, false));
        assert_eq!(
            m.field(&["customer"]),
            FieldRule::Keep(FieldPlan {
                name: "customer".into(),
                pinned: None,
                flatten: true,
                scalar: false
            })
        );
        assert_eq!(
            m.field(&["customer", "name"]),
            plan("customer_name", None, false)
        );
        assert_eq!(m.field(&["customer", "email"]), FieldRule::Skip);
    }

    #[test]
    fn check_reports_each_kind_of_mistake() {
        let t = tables(
            r#"
            [tables."*"]
            target = "x"

            [tables."db.c"]
            types = { "_id" = "int64", "a.b" = "int64", c = "json" }
            rename = { x = "a.b", y = "Z", w = "z", v = "_Mirror_Overflow" }
            exclude = ["a"]
            json_fields = ["c", "d"]

            [tables."db.d"]
            types = { "a.b" = "int64" }
            rename = { a_b = "a_b" }
            "#,
        );
        let issues: Vec<String> = check(&t).iter().map(|i| i.to_string()).collect();
        let expected = [
            "tables.\"*\".target: the defaults for all tables cannot set a target table",
            "tables.\"db.c\".types.\"_id\": `_id` is the key column: it is always mirrored, as a string, under its own name",
            "tables.\"db.c\".exclude.\"a\": `a.b` is excluded here but mapped elsewhere in this table",
            "tables.\"db.c\".rename.\"v\": `_Mirror_Overflow` is already the name of another column (names are compared ignoring case)",
            "tables.\"db.c\".rename.\"y\": `Z` is already the name of another column (names are compared ignoring case)",
            "tables.\"db.c\".rename.\"x\": `a.b` is not a valid column name under column_names = \"sanitize\" (it becomes `a_b`)",
            "tables.\"db.d\".types.\"a.b\": its column `a_b` collides with another column (rename one of them)",
        ];
        for e in &expected {
            assert!(
                issues.contains(&e.to_string()),
                "missing {e}\nin {issues:#?}"
            );
        }
        assert_eq!(issues.len(), expected.len(), "{issues:#?}");
    }

    /// A sink that only parses, so that whole `mirror.toml` files can be read in these tests.
    #[derive(Debug, Deserialize)]
    struct ParseOnlySink {}

    #[async_trait::async_trait]
    impl crate::component::SinkConfig for ParseOnlySink {
        async fn build(
            &self,
            cx: crate::component::SinkContext,
        ) -> Result<Box<dyn crate::component::Sink>, crate::component::BuildError> {
            Err(crate::component::BuildError::new(cx.name, "test only"))
        }
    }

    crate::register_sink!("mapping-test-sink", ParseOnlySink, "parses only (tests)");

    const PIPELINE: &str = r#"
[sources.gen]
type = "generator"

[sinks.out]
type = "mapping-test-sink"
inputs = ["gen"]
"#;

    #[test]
    fn mirror_toml_declares_mappings_and_locates_mistakes() {
        let text = format!(
            "{PIPELINE}
[tables.\"*\"]
json = \"canonical\"

[tables.\"shop.orders\"]
target = \"sales.schema/orders\"
types = {{ total = \"decimal(18,2)\" }}
flatten_depth = 1
"
        );
        let config = crate::config::MirrorConfig::parse(&text, "mirror.toml").unwrap();
        let m = TableMapping::resolve(&config.tables, "shop.orders");
        assert_eq!(m.json, JsonFlavor::Canonical);
        assert_eq!(m.flatten_depth, 1);
        assert_eq!(
            m.types.get("total"),
            Some(&ColumnType::Decimal {
                precision: 18,
                scale: 2
            })
        );
        assert!(check(&config.tables).is_empty());

        let text = format!(
            "{PIPELINE}
[tables.\"shop.orders\"]
types = {{ total = \"decimal(50,2)\" }}
"
        );
        let err = crate::config::MirrorConfig::parse(&text, "mirror.toml").unwrap_err();
        let located = err.located().expect("a located error");
        assert_eq!(located.line, 10);
        assert_eq!(located.column, 19);
        assert!(located.key.starts_with("tables"), "{err}");
        assert!(
            located
                .message
                .contains("`decimal(50,2)`: decimal precision must be 1..=38"),
            "{}",
            located.message
        );

        let text = format!("{PIPELINE}\n[tables.\"shop.orders\"]\nflaten_depth = 1\n");
        let err = crate::config::MirrorConfig::parse(&text, "mirror.toml").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `flaten_depth`"),
            "{err}"
        );
        let text = format!("{PIPELINE}\n[tables.\"shop.orders\"]\njson = \"pretty\"\n");
        let err = crate::config::MirrorConfig::parse(&text, "mirror.toml").unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `pretty`"),
            "{err}"
        );
    }

    #[test]
    fn check_fields_reports_collisions_of_derived_names() {
        let m = TableMapping {
            flatten_depth: 1,
            ..TableMapping::default()
        };
        let paths: Vec<Vec<String>> = [
            vec!["a_b"],
            vec!["a", "b"],
            vec!["A.B"],
            vec!["_mirror_overflow"],
            vec!["ok"],
        ]
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect();
        let issues: Vec<String> = check_fields("db.c", &m, &paths)
            .iter()
            .map(|i| i.message.clone())
            .collect();
        assert_eq!(
            issues,
            vec![
                "field `a.b` wants column `a_b`, which another field already has; it becomes `a_b__2` (add a rename to choose)",
                "field `A.B` wants column `A_B`, which another field already has; it becomes `A_B__3` (add a rename to choose)",
                "field `_mirror_overflow` wants column `_mirror_overflow`, which another field already has; it becomes `_mirror_overflow__2` (add a rename to choose)",
            ]
        );
    }
}
