//! Editing a `mirror.toml` in place: the few keys commands set for the user (`mirror fabric
//! create --config` writes the landing zone it created), with every comment and layout kept.

use std::path::Path;

use toml_edit::{value, DocumentMut, InlineTable, Item, Value};

/// Sets `landing_zone` and `fabric.workspace` / `fabric.item` of the onelake sink `sink` (or the
/// only onelake sink) of the configuration at `path`; returns the sink's name.
pub fn set_landing_zone(
    path: &Path,
    sink: Option<&str>,
    landing_zone: &str,
    workspace: &str,
    item: &str,
) -> Result<String, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("{shown}: not valid TOML: {e}"))?;
    let sinks = doc
        .get_mut("sinks")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| format!("{shown}: no [sinks] to write the landing zone into"))?;
    let onelake: Vec<String> = sinks
        .iter()
        .filter(|(_, s)| s.get("type").and_then(Item::as_str) == Some("onelake"))
        .map(|(name, _)| name.to_owned())
        .collect();
    let name = match (sink, onelake.as_slice()) {
        (Some(wanted), _) if onelake.iter().any(|n| n == wanted) => wanted.to_owned(),
        (Some(wanted), _) => {
            return Err(format!(
                "{shown}: no onelake sink named `{wanted}` (onelake sinks: {})",
                onelake.join(", ")
            ))
        }
        (None, [one]) => one.clone(),
        (None, []) => return Err(format!("{shown}: no sink of type \"onelake\"")),
        (None, many) => {
            return Err(format!(
                "{shown}: several onelake sinks ({}); choose one with --sink",
                many.join(", ")
            ))
        }
    };
    let entry = sinks
        .get_mut(&name)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| format!("{shown}: [sinks.{name}] is not a table"))?;
    entry.insert("landing_zone", value(landing_zone));
    match entry.get_mut("fabric") {
        Some(fabric) if fabric.is_table_like() => {
            let fabric = fabric.as_table_like_mut().expect("table-like");
            fabric.insert("workspace", value(workspace));
            fabric.insert("item", value(item));
        }
        _ => {
            let mut fabric = InlineTable::new();
            fabric.insert("workspace", Value::from(workspace));
            fabric.insert("item", Value::from(item));
            entry.insert("fabric", value(fabric));
        }
    }
    let temp = path.with_extension("toml.mirror-tmp");
    std::fs::write(&temp, doc.to_string()).map_err(|e| format!("{}: {e}", temp.display()))?;
    std::fs::rename(&temp, path).map_err(|e| format!("{shown}: {e}"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_zone_and_item_are_set_and_comments_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.toml");
        std::fs::write(
            &path,
            "# top comment\n[sources.m]\ntype = \"mongodb\"\n\n[sinks.lake]\ntype = \"onelake\" # the sink\ninputs = [\"m\"]\nlanding_zone = \"./lz\"\n",
        )
        .unwrap();
        let name = set_landing_zone(
            &path,
            None,
            "https://onelake.dfs.fabric.microsoft.com/w/i/Files/LandingZone",
            "w",
            "i",
        )
        .unwrap();
        assert_eq!(name, "lake");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# top comment") && text.contains("# the sink"),
            "{text}"
        );
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(
            doc["sinks"]["lake"]["landing_zone"].as_str(),
            Some("https://onelake.dfs.fabric.microsoft.com/w/i/Files/LandingZone")
        );
        assert_eq!(doc["sinks"]["lake"]["fabric"]["item"].as_str(), Some("i"));
        assert!(set_landing_zone(&path, Some("other"), "x", "w", "i").is_err());
    }
}
