//! Projections for `find` and `$project`: inclusion or exclusion of (dotted) fields with mongod's
//! `_id` rule (included unless excluded), applied to raw documents.

use bson::{RawBsonRef, RawDocument, RawDocumentBuf};

use crate::error::{CmdResult, CommandError};
use crate::wire::DocWriter;

#[derive(Debug, Clone)]
pub struct Projection {
    inclusion: bool,
    include_id: bool,
    /// Field paths split into components (without `_id` when it only toggles `include_id`).
    paths: Vec<Vec<String>>,
}

impl Projection {
    pub fn parse(spec: &RawDocument) -> CmdResult<Option<Projection>> {
        let mut inclusion: Option<bool> = None;
        let mut include_id = true;
        let mut paths = Vec::new();
        for item in spec.iter() {
            let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
            let on = match v {
                RawBsonRef::Boolean(b) => b,
                RawBsonRef::Int32(i) => i != 0,
                RawBsonRef::Int64(i) => i != 0,
                RawBsonRef::Double(d) => d != 0.0,
                _ => {
                    return Err(CommandError::not_implemented(format!(
                        "projection expressions (field '{k}')"
                    )))
                }
            };
            if k.starts_with('$') || k.contains(".$") {
                return Err(CommandError::not_implemented(format!(
                    "positional and operator projections ('{k}')"
                )));
            }
            if k == "_id" {
                include_id = on;
                continue;
            }
            match inclusion {
                None => inclusion = Some(on),
                Some(prev) if prev != on => {
                    let msg = if prev {
                        format!("Cannot do exclusion on field {k} in inclusion projection")
                    } else {
                        format!("Cannot do inclusion on field {k} in exclusion projection")
                    };
                    return Err(CommandError::new(31254, msg));
                }
                _ => {}
            }
            paths.push(k.split('.').map(str::to_string).collect());
        }
        if inclusion.is_none() && include_id {
            // `{}` or `{_id: 1}`.
            if spec.iter().next().is_none() {
                return Ok(None);
            }
        }
        Ok(Some(Projection {
            inclusion: inclusion.unwrap_or(false),
            include_id,
            paths,
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
        w.finish_doc()
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
    }
}
