//! Schema mapping: from schemaless source documents to typed, stable table columns.
//!
//! Fabric tables are typed and stop replicating when a column changes type; document databases are
//! schemaless. This module holds the generic rules (no source format in here): a reader classifies
//! each field value into a [`Value`] and the rules decide the rest.
//!
//! - [`TableMapping`] — a table's declared mapping from `mirror.toml` (`[tables."*"]` defaults
//!   overlaid with `[tables."<db>.<coll>"]`): pinned types, renames, excludes, include-only, flatten
//!   depth, JSON flavour, column-name rule, inference sample. [`check`] finds mistakes for
//!   `mirror check`; [`check_fields`] reports column-name collisions among sampled fields.
//! - [`ColumnType`] — logical column types and which values fit them; [`Inference`] infers a type
//!   from the kinds of values seen (integers and doubles together give `double`).
//! - [`NameRule`] / [`NameSet`] — column names Fabric and SQL users do not trip on, and
//!   deterministic, case-insensitive collision handling.
//! - [`TableSchemaState`] — the table's columns and types in a stable order; saved in the table's
//!   checkpoint so that a column's type never changes, across restarts and hosts.
//! - [`BatchBuilder`] — appends values into Arrow builders; values that do not fit their column go to
//!   the overflow column ([`OVERFLOW_COLUMN`]) as JSON, so nothing is lost; [`OverflowStats`] counts
//!   them and logs each field once.
//!
//! The default type table and all rules are documented in `docs/type-mapping.md`.

mod builder;
pub mod json;
mod naming;
mod rules;
mod state;
mod types;
mod value;

pub use builder::{BatchBuilder, Misfit, OverflowStats};
pub use naming::{shorten, NameRule, NameSet, MAX_NAME_CHARS};
pub use rules::{
    check, check_fields, reserved_names, FieldPlan, FieldRule, JsonFlavor, MappingIssue,
    SampleMethod, TableMapping, DEFAULT_SAMPLE_SIZE,
};
pub use state::{
    ColumnState, NameCollision, SchemaStateError, TableSchemaState, SCHEMA_STATE_VERSION,
};
pub use types::{int_fits_double, ColumnType, ColumnTypeError, Inference, MAX_DECIMAL_PRECISION};
pub use value::{to_decimal128, Decimal, Value, ValueKind, DECIMAL_TEXT_MAX};

/// The key column of every mirrored table.
pub const KEY_COLUMN: &str = "_id";

/// The per-table overflow column: JSON text of the fields of a row that did not fit their columns.
/// Reserved: no source field can take this name.
pub const OVERFLOW_COLUMN: &str = "_mirror_overflow";

/// Open Mirroring's row-marker column, which the sink appends; reserved as well.
pub const ROW_MARKER_COLUMN: &str = "__rowMarker__";
