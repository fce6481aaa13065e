//! `updateDescription.disambiguatedPaths` of expanded update events (mongod 6.1+,
//! `change_stream_document_diff_parser.cpp`): a dotted path in `updatedFields`, `removedFields`
//! or `truncatedArrays` is ambiguous when one of its field names contains a dot, or is numeric
//! (strictly: digits without a leading zero) anywhere but first, since a reader cannot tell such a
//! name from a path step or an array index. Each ambiguous path is listed with its components,
//! array indexes as integers and field names as strings; the rest of the path after the first
//! ambiguous component counts as ambiguous too.
//!
//! The simulator logs paths as dotted strings, so their components are recovered from the
//! documents: the new document for updated fields and truncated arrays, the old one for removed
//! fields.

use bson::{Bson, Document};

use crate::update::UpdateDescription;

/// One component of a path.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Field(String),
    Index(usize),
}

/// `FieldRef::isNumericPathComponentStrict`.
fn numeric_strict(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0'))
}

/// The components of the dotted `parts` inside `value`, preferring single field names and
/// trying dotted ones where the plain reading does not exist.
fn resolve(value: &Bson, parts: &[&str]) -> Option<Vec<Part>> {
    if parts.is_empty() {
        return Some(Vec::new());
    }
    match value {
        Bson::Document(d) => (1..=parts.len()).find_map(|n| {
            let name = parts[..n].join(".");
            let child = d.get(&name)?;
            let mut out = vec![Part::Field(name)];
            out.extend(resolve(child, &parts[n..])?);
            Some(out)
        }),
        Bson::Array(a) => {
            let i: usize = parts[0].parse().ok()?;
            let mut out = vec![Part::Index(i)];
            out.extend(resolve(a.get(i)?, &parts[1..])?);
            Some(out)
        }
        _ => None,
    }
}

fn add(out: &mut Document, path: &str, doc: &Bson) {
    let split: Vec<&str> = path.split('.').collect();
    let parts = resolve(doc, &split)
        .unwrap_or_else(|| split.iter().map(|p| Part::Field((*p).to_owned())).collect());
    let ambiguous = parts.iter().enumerate().any(|(i, p)| match p {
        Part::Field(name) => name.contains('.') || (i > 0 && numeric_strict(name)),
        Part::Index(_) => false,
    });
    if ambiguous {
        let components: Vec<Bson> = parts
            .into_iter()
            .map(|p| match p {
                Part::Field(name) => Bson::String(name),
                Part::Index(i) => Bson::Int32(i as i32),
            })
            .collect();
        out.insert(path, components);
    }
}

/// Fills `desc.disambiguated_paths` from the documents before and after the update.
pub fn fill(desc: &mut UpdateDescription, old: &Document, new: &Document) {
    let dotted = desc.updated_fields.keys().any(|k| k.contains('.'))
        || desc.removed_fields.iter().any(|k| k.contains('.'))
        || desc.truncated_arrays.iter().any(|(k, _)| k.contains('.'));
    if !dotted {
        return;
    }
    let (old, new) = (Bson::Document(old.clone()), Bson::Document(new.clone()));
    let mut out = Document::new();
    for path in desc.updated_fields.keys() {
        add(&mut out, path, &new);
    }
    for path in &desc.removed_fields {
        add(&mut out, path, &old);
    }
    for (path, _) in &desc.truncated_arrays {
        add(&mut out, path, &new);
    }
    desc.disambiguated_paths = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn numeric_and_dotted_field_names_are_disambiguated() {
        let old = doc! {"a": {"0": 1, "x.y": 2}, "arr": [{"b": 1}], "gone": {"1": true}};
        let new = doc! {"a": {"0": 5, "x.y": 3}, "arr": [{"b": 2}], "gone": {}};
        let mut desc = UpdateDescription {
            updated_fields: doc! {"a.0": 5, "a.x.y": 3, "arr.0.b": 2},
            removed_fields: vec!["gone.1".into()],
            ..UpdateDescription::default()
        };
        fill(&mut desc, &old, &new);
        assert_eq!(
            desc.disambiguated_paths,
            doc! {
                "a.0": ["a", "0"],
                "a.x.y": ["a", "x.y"],
                "gone.1": ["gone", "1"],
            }
        );
    }
}
