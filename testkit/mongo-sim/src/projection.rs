//! Projections for `find` and `$project`: inclusion or exclusion of (dotted) fields with mongod's
//! `_id` rule (included unless excluded), and computed fields (field paths, literals,
//! `{$literal: v}`, objects and arrays of those: see [`crate::expression`]), applied to raw
//! documents. Parsing follows mongod's `projection_parser.cpp`: numbers and booleans include or
//! exclude, a one-field object starting with `$` is an expression, another object a
//! sub-projection, anything else a literal or field path; a computed field makes the projection
//! an inclusion (31310 / 31252 in an exclusion projection); computed fields come after the
//! included ones, in the order given.

use bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::error::{CmdResult, CommandError};
use crate::expression::{set_path, Expression};
use crate::wire::DocWriter;

#[derive(Debug, Clone)]
pub struct Projection {
    inclusion: bool,
    include_id: bool,
    /// Field paths split into components (without `_id` when it only toggles `include_id`).
    paths: Vec<Vec<String>>,
    /// Computed fields, in the order given.
    computed: Vec<(Vec<String>, Expression)>,
}

#[derive(Default)]
struct ParseState {
    inclusion: Option<bool>,
    include_id: bool,
    paths: Vec<Vec<String>>,
    computed: Vec<(Vec<String>, Expression)>,
}

impl ParseState {
    fn element(&mut self, path: Vec<String>, v: RawBsonRef<'_>) -> CmdResult<()> {
        let name = path.join(".");
        if path.iter().any(|p| p.starts_with('$')) || name.contains(".$") {
            return Err(CommandError::not_implemented(format!(
                "positional and operator projections ('{name}')"
            )));
        }
        let flag = match v {
            RawBsonRef::Boolean(b) => Some(b),
            RawBsonRef::Int32(i) => Some(i != 0),
            RawBsonRef::Int64(i) => Some(i != 0),
            RawBsonRef::Double(d) => Some(d != 0.0),
            RawBsonRef::Decimal128(d) => {
                Some(d.bytes() != bson::Decimal128::from_bytes([0; 16]).bytes())
            }
            _ => None,
        };
        if let Some(on) = flag {
            if path.len() == 1 && path[0] == "_id" {
                self.include_id = on;
                return Ok(());
            }
            match self.inclusion {
                None => self.inclusion = Some(on),
                Some(true) if !on => {
                    return Err(CommandError::new(
                        31254,
                        format!("Cannot do exclusion on field {name} in inclusion projection"),
                    ))
                }
                Some(false) if on => {
                    return Err(CommandError::new(
                        31253,
                        format!("Cannot do inclusion on field {name} in exclusion projection"),
                    ))
                }
                _ => {}
            }
            self.paths.push(path);
            return Ok(());
        }
        let value =
            Bson::try_from(v.to_raw_bson()).map_err(|e| CommandError::bad_value(e.to_string()))?;
        if let Bson::Document(sub) = &value {
            let is_expression =
                sub.len() == 1 && sub.keys().next().is_some_and(|k| k.starts_with('$'));
            if !is_expression {
                if sub.is_empty() {
                    return Err(CommandError::new(
                        51270,
                        format!(
                            "An empty sub-projection is not a valid value. Found empty object at path {name}"
                        ),
                    ));
                }
                // A sub-projection: `{a: {b: 1}}` is `{"a.b": 1}`.
                if let RawBsonRef::Document(raw) = v {
                    for item in raw.iter() {
                        let (k, x) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
                        let mut p = path.clone();
                        p.extend(k.split('.').map(str::to_owned));
                        self.element(p, x)?;
                    }
                }
                return Ok(());
            }
            if self.inclusion == Some(false) {
                return Err(CommandError::new(
                    31252,
                    "Cannot use expression other than $meta in exclusion projection",
                ));
            }
        } else if self.inclusion == Some(false) {
            return Err(CommandError::new(
                31310,
                format!("Cannot use an expression {name}: {value} in an exclusion projection"),
            ));
        }
        let e = Expression::parse(&value)?;
        self.inclusion = Some(true);
        self.computed.push((path, e));
        Ok(())
    }
}

impl Projection {
    pub fn parse(spec: &RawDocument) -> CmdResult<Option<Projection>> {
        let mut st = ParseState {
            include_id: true,
            ..ParseState::default()
        };
        for item in spec.iter() {
            let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
            st.element(k.split('.').map(str::to_string).collect(), v)?;
        }
        if st.inclusion.is_none() && st.include_id {
            // `{}` or `{_id: 1}`.
            if spec.iter().next().is_none() {
                return Ok(None);
            }
        }
        Ok(Some(Projection {
            inclusion: st.inclusion.unwrap_or(false),
            include_id: st.include_id,
            paths: st.paths,
            computed: st.computed,
        }))
    }

    /// Whether the projection keeps `_id`.
    pub fn keeps_id(&self) -> bool {
        self.include_id
    }

    pub fn apply(&self, doc: &RawDocument) -> RawDocumentBuf {
        let mut w = DocWriter::new();
        if self.inclusion {
            project_include(doc, &self.paths, self.include_id, true, &mut w);
        } else {
            project_exclude(doc, &self.paths, self.include_id, true, &mut w);
        }
        let projected = w.finish_doc();
        if self.computed.is_empty() {
            return projected;
        }
        let (Ok(source), Ok(mut out)) = (bson::Document::try_from(doc), projected.to_document())
        else {
            return projected;
        };
        for (path, e) in &self.computed {
            if let Some(v) = e.evaluate(&source) {
                // A computed field that cannot be placed (through an array) is left out.
                let _ = set_path(&mut out, path, v);
            }
        }
        RawDocumentBuf::from_document(&out).unwrap_or(projected)
    }
}

fn project_include(
    doc: &RawDocument,
    paths: &[Vec<String>],
    include_id: bool,
    top: bool,
    w: &mut DocWriter,
) {
    for (k, v) in doc.iter().flatten() {
        if top && k == "_id" {
            if include_id {
                w.append(k, v);
            }
            continue;
        }
        let matching: Vec<&Vec<String>> = paths.iter().filter(|p| p[0] == k).collect();
        if matching.is_empty() {
            continue;
        }
        if matching.iter().any(|p| p.len() == 1) {
            w.append(k, v);
            continue;
        }
        let rest: Vec<Vec<String>> = matching.iter().map(|p| p[1..].to_vec()).collect();
        match v {
            RawBsonRef::Document(sub) => {
                w.begin_document(k);
                project_include(sub, &rest, false, false, w);
                w.end();
            }
            RawBsonRef::Array(arr) => {
                w.begin_array(k);
                let mut i = 0usize;
                let mut key = String::new();
                for el in arr.into_iter().flatten() {
                    if let RawBsonRef::Document(sub) = el {
                        w.begin_document(crate::wire::index_key(i, &mut key));
                        project_include(sub, &rest, false, false, w);
                        w.end();
                        i += 1;
                    }
                }
                w.end();
            }
            _ => {}
        }
    }
}

fn project_exclude(
    doc: &RawDocument,
    paths: &[Vec<String>],
    include_id: bool,
    top: bool,
    w: &mut DocWriter,
) {
    for (k, v) in doc.iter().flatten() {
        if top && k == "_id" {
            if include_id {
                w.append(k, v);
            }
            continue;
        }
        let matching: Vec<&Vec<String>> = paths.iter().filter(|p| p[0] == k).collect();
        if matching.is_empty() {
            w.append(k, v);
            continue;
        }
        if matching.iter().any(|p| p.len() == 1) {
            continue;
        }
        let rest: Vec<Vec<String>> = matching.iter().map(|p| p[1..].to_vec()).collect();
        match v {
            RawBsonRef::Document(sub) => {
                w.begin_document(k);
                project_exclude(sub, &rest, true, false, w);
                w.end();
            }
            RawBsonRef::Array(arr) => {
                w.begin_array(k);
                let mut key = String::new();
                for (i, el) in arr.into_iter().flatten().enumerate() {
                    match el {
                        RawBsonRef::Document(sub) => {
                            w.begin_document(crate::wire::index_key(i, &mut key));
                            project_exclude(sub, &rest, true, false, w);
                            w.end();
                        }
                        other => w.append(crate::wire::index_key(i, &mut key), other),
                    }
                }
                w.end();
            }
            other => w.append(k, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn p(spec: RawDocumentBuf, doc: RawDocumentBuf) -> bson::Document {
        Projection::parse(&spec)
            .expect("parse")
            .expect("some")
            .apply(&doc)
            .to_document()
            .expect("doc")
    }

    #[test]
    fn inclusion_and_exclusion() {
        let d = rawdoc! {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}, "e": 3};
        assert_eq!(
            p(rawdoc! {"a": 1, "b.c": 1}, d.clone()),
            bson::doc! {"_id": 1, "a": 1, "b": {"c": 1}}
        );
        assert_eq!(
            p(rawdoc! {"a": 1, "_id": 0}, d.clone()),
            bson::doc! {"a": 1}
        );
        assert_eq!(
            p(rawdoc! {"b.d": 0, "e": 0}, d.clone()),
            bson::doc! {"_id": 1, "a": 1, "b": {"c": 1}}
        );
        assert_eq!(
            p(rawdoc! {"_id": 0}, d),
            bson::doc! {"a": 1, "b": {"c": 1, "d": 2}, "e": 3}
        );
        assert!(Projection::parse(&rawdoc! {"a": 1, "b": 0}).is_err());
        assert_eq!(
            Projection::parse(&rawdoc! {"a": 0, "b": 1})
                .unwrap_err()
                .code,
            31253
        );
    }

    #[test]
    fn computed_fields_follow_the_included_ones() {
        let d = rawdoc! {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}, "e": 3};
        assert_eq!(
            p(
                rawdoc! {"x": "$b.d", "a": 1, "k": {"$literal": 5}, "s": "text"},
                d.clone()
            ),
            bson::doc! {"_id": 1, "a": 1, "x": 2, "k": 5, "s": "text"}
        );
        assert_eq!(
            p(rawdoc! {"b": {"c": 1, "z": "$e"}}, d.clone()),
            bson::doc! {"_id": 1, "b": {"c": 1, "z": 3}}
        );
        assert_eq!(p(rawdoc! {"m": "$missing", "_id": 0}, d), bson::doc! {});
        assert_eq!(
            Projection::parse(&rawdoc! {"a": 0, "x": "$b"})
                .unwrap_err()
                .code,
            31310
        );
        assert_eq!(
            Projection::parse(&rawdoc! {"a": 0, "x": {"$literal": 1}})
                .unwrap_err()
                .code,
            31252
        );
    }
}
