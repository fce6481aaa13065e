//! A table's schema state: its columns, their names and types, in a stable order.
//!
//! The state grows (new fields add nullable columns at the end) but never changes a column once it
//! exists: no type change, no rename, no removal. It is saved as JSON in the table's checkpoint
//! partition (`Partition::Table`), so the same columns and types hold after a restart or on another
//! host, and every file of the table carries the full column set.
//!
//! ```json
//! {"version":1,"key":"_id","overflow":"_mirror_overflow",
//!  "columns":[{"name":"total","path":["total"],"type":"double"},
//!             {"name":"customer_name","path":["customer","name"],"type":"string"}]}
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::naming::NameSet;
use super::rules::reserved_names;
use super::types::ColumnType;
use super::{KEY_COLUMN, OVERFLOW_COLUMN};

/// The format version written into the state.
pub const SCHEMA_STATE_VERSION: u32 = 1;

/// One column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnState {
    /// The column name.
    pub name: String,
    /// The source field path it holds.
    pub path: Vec<String>,
    /// Its type, fixed for the life of the table.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// A column whose wanted name was taken, so it got a `__N` suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameCollision {
    /// The field path.
    pub path: Vec<String>,
    /// The name it wanted.
    pub wanted: String,
    /// The name it got.
    pub got: String,
}

/// The columns of one table. See the module docs.
#[derive(Clone, Debug)]
pub struct TableSchemaState {
    columns: Vec<ColumnState>,
    by_path: HashMap<Vec<String>, usize>,
    names: NameSet,
    collisions: Vec<NameCollision>,
}

impl Default for TableSchemaState {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for TableSchemaState {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
    }
}

/// Why a saved state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaStateError {
    /// Not JSON of the expected shape.
    #[error("table schema state is not readable: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer `mirror`.
    #[error(
        "table schema state has format version {0}, newer than this build's {SCHEMA_STATE_VERSION}"
    )]
    Version(u32),
    /// Inconsistent content (hand-edited or corrupt).
    #[error("table schema state is inconsistent: {0}")]
    Invalid(String),
}

impl TableSchemaState {
    /// A table with no columns yet (besides the key and the overflow column).
    pub fn new() -> Self {
        Self {
            columns: Vec::new(),
            by_path: HashMap::new(),
            names: reserved_names(),
            collisions: Vec::new(),
        }
    }

    /// The mirrored columns, in table order (without the key and overflow columns).
    pub fn columns(&self) -> &[ColumnState] {
        &self.columns
    }

    /// The column holding the field at `path`, by index into [`columns`](Self::columns).
    pub fn column_for<S: AsRef<str>>(&self, path: &[S]) -> Option<usize> {
        let key: Vec<String> = path.iter().map(|s| s.as_ref().to_owned()).collect();
        self.by_path.get(&key).copied()
    }

    /// Adds a column for the field at `path` with type `ty`, named `wanted` or, if that name is
    /// taken, `wanted__N`. Returns its index. A path that already has a column keeps it (and its
    /// type): that index is returned.
    pub fn add_column(&mut self, path: Vec<String>, wanted: &str, ty: ColumnType) -> usize {
        if let Some(i) = self.by_path.get(&path) {
            return *i;
        }
        let name = self.names.claim(wanted);
        if name != wanted {
            tracing::warn!(field = %path.join("."), wanted, got = %name, "column name collision; the field gets a suffixed column name (add a rename to choose)");
            self.collisions.push(NameCollision {
                path: path.clone(),
                wanted: wanted.to_owned(),
                got: name.clone(),
            });
        }
        let i = self.columns.len();
        self.by_path.insert(path.clone(), i);
        self.columns.push(ColumnState { name, path, ty });
        i
    }

    /// Columns created in this process whose wanted name was taken.
    pub fn collisions(&self) -> &[NameCollision] {
        &self.collisions
    }

    /// The Arrow schema of the table's files: `_id` (utf8, not null), the columns in order, then the
    /// overflow column (utf8, nullable).
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields = Vec::with_capacity(self.columns.len() + 2);
        fields.push(Field::new(KEY_COLUMN, DataType::Utf8, false));
        fields.extend(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow_type(), true)),
        );
        fields.push(Field::new(OVERFLOW_COLUMN, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    /// The state as JSON, for the table's checkpoint.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising plain strings, numbers and lists cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A state saved with [`to_json`](Self::to_json) (or as part of a larger checkpoint).
    pub fn from_json(value: serde_json::Value) -> Result<Self, SchemaStateError> {
        let repr: Repr = serde_json::from_value(value)?;
        Self::from_repr(repr)
    }

    fn from_repr(repr: Repr) -> Result<Self, SchemaStateError> {
        if repr.version > SCHEMA_STATE_VERSION {
            return Err(SchemaStateError::Version(repr.version));
        }
        if repr.key != KEY_COLUMN || repr.overflow != OVERFLOW_COLUMN {
            return Err(SchemaStateError::Invalid(format!(
                "key/overflow columns are `{}`/`{}`, expected `{KEY_COLUMN}`/`{OVERFLOW_COLUMN}`",
                repr.key, repr.overflow
            )));
        }
        let mut state = Self::new();
        for c in repr.columns {
            if !state.names.insert(&c.name) {
                return Err(SchemaStateError::Invalid(format!(
                    "column name `{}` appears twice (names are compared ignoring case)",
                    c.name
                )));
            }
            if c.path.is_empty() || state.by_path.contains_key(&c.path) {
                return Err(SchemaStateError::Invalid(format!(
                    "column `{}` has an empty or repeated field path",
                    c.name
                )));
            }
            state.by_path.insert(c.path.clone(), state.columns.len());
            state.columns.push(c);
        }
        Ok(state)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    version: u32,
    key: String,
    overflow: String,
    columns: Vec<ColumnState>,
}

impl Serialize for TableSchemaState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Repr {
            version: SCHEMA_STATE_VERSION,
            key: KEY_COLUMN.to_owned(),
            overflow: OVERFLOW_COLUMN.to_owned(),
            columns: self.columns.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TableSchemaState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = Repr::deserialize(d)?;
        Self::from_repr(repr).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_keep_their_type_and_order_across_a_save() {
        let mut s = TableSchemaState::new();
        assert_eq!(
            s.add_column(path(&["total"]), "total", ColumnType::Double),
            0
        );
        assert_eq!(
            s.add_column(path(&["a", "b"]), "a_b", ColumnType::String),
            1
        );
        assert_eq!(s.add_column(path(&["a_b"]), "a_b", ColumnType::Int64), 2);
        // A path keeps its column and type.
        assert_eq!(
            s.add_column(path(&["total"]), "total", ColumnType::String),
            0
        );
        assert_eq!(s.columns()[0].ty, ColumnType::Double);
        assert_eq!(s.columns()[2].name, "a_b__2");
        assert_eq!(
            s.collisions(),
            &[NameCollision {
                path: path(&["a_b"]),
                wanted: "a_b".into(),
                got: "a_b__2".into()
            }]
        );
        // The key and overflow names are reserved.
        assert_eq!(s.add_column(path(&["_ID"]), "_ID", ColumnType::Int64), 3);
        assert_eq!(s.columns()[3].name, "_ID__2");

        let json = s.to_json();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"version":1,"key":"_id","overflow":"_mirror_overflow","columns":[{"name":"total","path":["total"],"type":"double"},{"name":"a_b","path":["a","b"],"type":"string"},{"name":"a_b__2","path":["a_b"],"type":"int64"},{"name":"_ID__2","path":["_ID"],"type":"int64"}]}"#
        );
        let back = TableSchemaState::from_json(json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.column_for(&["a", "b"]), Some(1));
        let mut back = back;
        // After a restart, a new column still cannot take a used name.
        assert_eq!(back.add_column(path(&["x"]), "A_B", ColumnType::Bool), 4);
        assert_eq!(back.columns()[4].name, "A_B__3");

        let schema = s.arrow_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "_id",
                "total",
                "a_b",
                "a_b__2",
                "_ID__2",
                "_mirror_overflow"
            ]
        );
        assert!(!schema.field(0).is_nullable());
        assert!(schema.field(1).is_nullable());
    }

    #[test]
    fn bad_states_are_refused() {
        let err = TableSchemaState::from_json(serde_json::json!({
            "version": 2, "key": "_id", "overflow": "_mirror_overflow", "columns": []
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "table schema state has format version 2, newer than this build's 1"
        );
        let err = TableSchemaState::from_json(serde_json::json!({
            "version": 1, "key": "_id", "overflow": "_mirror_overflow", "columns": [
                {"name": "a", "path": ["a"], "type": "int64"},
                {"name": "A", "path": ["b"], "type": "int64"}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("`A` appears twice"), "{err}");
        let err = TableSchemaState::from_json(serde_json::json!({
            "version": 1, "key": "_id", "overflow": "_mirror_overflow", "columns": [
                {"name": "a", "path": ["a"], "type": "int32"}]
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown column type `int32`"),
            "{err}"
        );
    }
}
