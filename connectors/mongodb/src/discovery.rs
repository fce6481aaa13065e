//! Which collections to mirror, and under which table names.
//!
//! Views and `system.*` collections are skipped with a note (views have no change streams and no
//! data of their own). Time-series collections have no change streams either: one named explicitly
//! is an error, one matched by a pattern is skipped with a warning.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use mirror_core::config::TableSettings;
use mirror_core::{ComponentError, TableId};
use mongodb::results::CollectionType;
use mongodb::Client;
use tracing::{info, warn};

use crate::config::{MongoSourceConfig, TableNaming};
use crate::errors::{classify, SourceError};

/// A collection to mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// Its database.
    pub db: String,
    /// Its name.
    pub name: String,
}

/// The databases to mirror.
pub async fn databases(
    client: &Client,
    config: &MongoSourceConfig,
) -> Result<Vec<String>, ComponentError> {
    if !config.databases.iter().any(|d| d == "*") {
        return Ok(config.databases.clone());
    }
    let names = client
        .list_database_names()
        .await
        .map_err(|e| classify(e, "listing databases"))?;
    Ok(names
        .into_iter()
        .filter(|d| config.wants_database(d))
        .collect())
}

/// The collections of `db` to mirror, in name order.
pub async fn collections(
    client: &Client,
    config: &MongoSourceConfig,
    db: &str,
) -> Result<Vec<Discovered>, ComponentError> {
    let specs: Vec<_> = client
        .database(db)
        .list_collections()
        .await
        .map_err(|e| classify(e, &format!("listing the collections of `{db}`")))?
        .try_collect()
        .await
        .map_err(|e| classify(e, &format!("listing the collections of `{db}`")))?;
    let mut out = Vec::new();
    for spec in specs {
        let name = spec.name;
        if !config.wants_collection(db, &name) {
            continue;
        }
        match spec.collection_type {
            CollectionType::Collection => out.push(Discovered {
                db: db.to_owned(),
                name,
            }),
            CollectionType::View => {
                info!(collection = %format!("{db}.{name}"), "skipping a view (views have no data or change stream of their own)")
            }
            CollectionType::Timeseries if config.names_collection(db, &name) => {
                return Err(ComponentError::permanent(SourceError(format!(
                    "`{db}.{name}` is a time-series collection, which has no change stream, so it cannot be mirrored; remove it from `collections`"
                ))));
            }
            CollectionType::Timeseries => {
                warn!(collection = %format!("{db}.{name}"), "skipping a time-series collection: it has no change stream");
            }
            _ => {
                info!(collection = %format!("{db}.{name}"), "skipping a collection of an unknown kind")
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The target table of `db.name`: `[tables."db.name"] target`, else the naming rule.
pub fn target(
    config: &MongoSourceConfig,
    tables: &BTreeMap<String, TableSettings>,
    db: &str,
    name: &str,
) -> Result<TableId, String> {
    if let Some(target) = tables
        .get(&format!("{db}.{name}"))
        .and_then(|t| t.target.as_ref())
    {
        return target
            .parse()
            .map_err(|e| format!("[tables.\"{db}.{name}\"] target: {e}"));
    }
    Ok(match config.naming {
        TableNaming::Schema => TableId::with_schema(db, name),
        TableNaming::Flat => TableId::new(name),
        TableNaming::Prefixed => TableId::new(format!("{db}_{name}")),
    })
}
