//! Update operators (`$set`, `$unset`, `$inc`, `$mul`, `$min`, `$max`, `$push`, `$pull`,
//! `$pullAll`, `$addToSet`, `$pop`, `$rename`, `$setOnInsert`, `$currentDate`, the positional `$`
//! and `$[]`), replacement documents, upsert seeds, and the change-event `updateDescription`
//! each update produces.
//!
//! What gets logged follows mongod's update nodes and `V2LogBuilder`: only paths whose value
//! changed; a path created through missing parents is logged at its first new component; `$push`
//! that appends to a non-empty array logs `arr.<i>` per new element, every other array change
//! logs the whole array (`src/mongo/db/update/push_node.cpp`, `PushNode::logUpdate`); `$unset`
//! logs a removed field.

use bson::{Bson, Document, RawDocument};

use crate::error::{codes, CmdResult, CommandError};
use crate::matcher::Expr;

/// The `updateDescription` of an update event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateDescription {
    pub updated_fields: Document,
    pub removed_fields: Vec<String>,
    pub truncated_arrays: Vec<(String, i32)>,
    /// `disambiguatedPaths` of expanded events ([`crate::disambiguate`]), filled when the update
    /// is logged.
    pub disambiguated_paths: Document,
}

impl UpdateDescription {
    /// The event's `updateDescription`; with `disambiguated`, also `disambiguatedPaths` (expanded
    /// events of mongod 6.1+).
    pub fn to_document(&self, disambiguated: bool) -> Document {
        let mut d = bson::doc! {
            "updatedFields": self.updated_fields.clone(),
            "removedFields": self.removed_fields.iter().cloned().map(Bson::String).collect::<Vec<_>>(),
            "truncatedArrays": self.truncated_arrays.iter().map(|(f, n)| bson::doc!{"field": f, "newSize": *n}).collect::<Vec<_>>(),
        };
        if disambiguated {
            d.insert("disambiguatedPaths", self.disambiguated_paths.clone());
        }
        d
    }
}

/// A parsed update.
#[derive(Debug, Clone)]
pub enum UpdateSpec {
    Replacement(Document),
    Operators(Vec<(String, Document)>),
}

impl UpdateSpec {
    pub fn parse(u: &Document) -> CmdResult<UpdateSpec> {
        let first_dollar = u.keys().next().map(|k| k.starts_with('$'));
        match first_dollar {
            None | Some(false) => {
                for k in u.keys() {
                    if k.starts_with('$') {
                        return Err(CommandError::new(
                            codes::DOLLAR_PREFIXED_FIELD_NAME,
                            format!(
                                "The dollar ($) prefixed field '{k}' in '{k}' is not allowed in \
                                 the context of an update's replacement document. Consider using \
                                 an aggregation pipeline with $replaceWith."
                            ),
                        ));
                    }
                }
                Ok(UpdateSpec::Replacement(u.clone()))
            }
            Some(true) => {
                let mut ops = Vec::new();
                for (k, v) in u {
                    if !k.starts_with('$') {
                        return Err(CommandError::failed_to_parse(format!(
                            "Unknown modifier: {k}. Expected a valid update modifier or \
                             pipeline-style update specified as an array"
                        )));
                    }
                    let known = [
                        "$set",
                        "$unset",
                        "$inc",
                        "$mul",
                        "$min",
                        "$max",
                        "$push",
                        "$pull",
                        "$pullAll",
                        "$addToSet",
                        "$pop",
                        "$rename",
                        "$setOnInsert",
                        "$currentDate",
                    ];
                    if !known.contains(&k.as_str()) {
                        if k == "$bit" {
                            return Err(CommandError::not_implemented("the $bit update operator"));
                        }
                        return Err(CommandError::failed_to_parse(format!(
                            "Unknown modifier: {k}. Expected a valid update modifier or \
                             pipeline-style update specified as an array"
                        )));
                    }
                    let d = match v {
                        Bson::Document(d) => d.clone(),
                        other => {
                            return Err(CommandError::failed_to_parse(format!(
                                "Modifiers operate on fields but we found type {} instead. For \
                                 example: {{$mod: {{<field>: ...}}}} not {{{k}: {other}}}",
                                type_name(other)
                            )))
                        }
                    };
                    if d.is_empty() {
                        return Err(CommandError::failed_to_parse(format!(
                            "'{k}' is empty. You must specify a field like so: {{{k}: {{<field_name>: ...}}}}"
                        )));
                    }
                    ops.push((k.clone(), d));
                }
                check_conflicts(&ops)?;
                Ok(UpdateSpec::Operators(ops))
            }
        }
    }

    pub fn is_replacement(&self) -> bool {
        matches!(self, UpdateSpec::Replacement(_))
    }
}

fn type_name(b: &Bson) -> &'static str {
    match b {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        // The rest of `typeName` (src/mongo/bson/bsontypes.cpp).
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Symbol(_) => "symbol",
        Bson::Undefined => "undefined",
        Bson::DbPointer(_) => "dbPointer",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

/// mongod refuses two operators touching the same path or a path and its prefix.
fn check_conflicts(ops: &[(String, Document)]) -> CmdResult<()> {
    let mut paths: Vec<String> = Vec::new();
    for (op, d) in ops {
        for (k, v) in d {
            let mut targets = vec![k.clone()];
            if op == "$rename" {
                if let Bson::String(to) = v {
                    targets.push(to.clone());
                }
            }
            for t in targets {
                let t = t.replace(".$[]", "").replace(".$", "");
                for p in &paths {
                    if p == &t || t.starts_with(&format!("{p}.")) || p.starts_with(&format!("{t}."))
                    {
                        return Err(CommandError::new(
                            codes::CONFLICTING_UPDATE_OPERATORS,
                            format!("Updating the path '{t}' would create a conflict at '{p}'"),
                        ));
                    }
                }
                paths.push(t);
            }
        }
    }
    Ok(())
}

/// What one update did to one document.
#[derive(Debug, Clone)]
pub struct Applied {
    pub doc: Document,
    pub changed: bool,
    pub description: UpdateDescription,
}

enum Log {
    Updated(String),
    Removed(String),
    /// Explicit value (a `$push` element), path already exact.
    Value(String, Bson),
}

/// Applies a replacement (keeping `_id`).
pub fn apply_replacement(old: &Document, repl: &Document) -> CmdResult<Document> {
    let id = old.get("_id").cloned().unwrap_or(Bson::Null);
    if let Some(new_id) = repl.get("_id") {
        if !same_value(new_id, &id) {
            return Err(CommandError::new(
                codes::IMMUTABLE_FIELD,
                format!(
                    "After applying the update, the (immutable) field '_id' was found to have \
                     been altered to _id: {new_id}"
                ),
            ));
        }
    }
    let mut out = Document::new();
    out.insert("_id", id);
    for (k, v) in repl {
        if k != "_id" {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// Applies update operators to `old`. `query` resolves the positional `$`; `inserting` enables
/// `$setOnInsert`.
pub fn apply_operators(
    old: &Document,
    ops: &[(String, Document)],
    query: Option<&Expr>,
    inserting: bool,
) -> CmdResult<Applied> {
    let mut doc = old.clone();
    let mut logs: Vec<Log> = Vec::new();
    let now = bson::DateTime::now();
    for (op, args) in ops {
        for (raw_path, arg) in args {
            if raw_path.is_empty() || raw_path.split('.').any(str::is_empty) {
                return Err(CommandError::new(
                    codes::EMPTY_FIELD_NAME,
                    format!("The update path '{raw_path}' contains an empty field name, which is not allowed."),
                ));
            }
            let paths = expand_positional(&doc, raw_path, query)?;
            for path in paths {
                if path == "_id" || path.starts_with("_id.") {
                    if op == "$setOnInsert" && inserting {
                        // allowed only when inserting; _id is then taken from it
                    } else {
                        return Err(CommandError::new(
                            codes::IMMUTABLE_FIELD,
                            format!(
                                "Performing an update on the path '{path}' would modify the \
                                 immutable field '_id'"
                            ),
                        ));
                    }
                }
                apply_one(&mut doc, op, &path, arg, inserting, &now, &mut logs)?;
            }
        }
    }
    let changed = doc != *old;
    let mut description = UpdateDescription::default();
    if changed {
        for log in logs {
            match log {
                Log::Updated(p) => {
                    let v = get_path(&doc, &p).cloned().unwrap_or(Bson::Null);
                    description.updated_fields.insert(p, v);
                }
                Log::Value(p, v) => {
                    description.updated_fields.insert(p, v);
                }
                Log::Removed(p) => description.removed_fields.push(p),
            }
        }
    }
    Ok(Applied {
        doc,
        changed,
        description,
    })
}

/// Resolves `a.$.b` (first array element matched by the query) and `a.$[].b` (every element).
fn expand_positional(doc: &Document, path: &str, query: Option<&Expr>) -> CmdResult<Vec<String>> {
    let parts: Vec<&str> = path.split('.').collect();
    if !parts.iter().any(|p| p.starts_with('$')) {
        return Ok(vec![path.to_string()]);
    }
    let mut results = vec![String::new()];
    for (i, part) in parts.iter().enumerate() {
        let mut next = Vec::new();
        for prefix in &results {
            let join = |s: &str| {
                if prefix.is_empty() {
                    s.to_string()
                } else {
                    format!("{prefix}.{s}")
                }
            };
            match *part {
                "$" => {
                    let arr_path = prefix.clone();
                    let idx = positional_index(doc, &arr_path, query).ok_or_else(|| {
                        CommandError::bad_value(
                            "The positional operator did not find the match needed from the query.",
                        )
                    })?;
                    next.push(join(&idx.to_string()));
                }
                "$[]" => {
                    let len = match get_path(doc, prefix) {
                        Some(Bson::Array(a)) => a.len(),
                        _ => {
                            return Err(CommandError::bad_value(format!(
                                "The path '{prefix}' must exist in the document in order to apply array updates."
                            )))
                        }
                    };
                    for j in 0..len {
                        next.push(join(&j.to_string()));
                    }
                }
                p if p.starts_with("$[") => {
                    return Err(CommandError::not_implemented(
                        "arrayFilters (filtered positional $[<id>])",
                    ))
                }
                p if p.starts_with('$') && i > 0 => {
                    return Err(CommandError::new(
                        codes::DOLLAR_PREFIXED_FIELD_NAME,
                        format!(
                        "The dollar ($) prefixed field '{p}' in '{path}' is not valid for storage."
                    ),
                    ))
                }
                p => next.push(join(p)),
            }
        }
        results = next;
    }
    Ok(results)
}

fn positional_index(doc: &Document, arr_path: &str, query: Option<&Expr>) -> Option<usize> {
    let arr = match get_path(doc, arr_path) {
        Some(Bson::Array(a)) => a,
        _ => return None,
    };
    let query = query?;
    let comps: Vec<&str> = arr_path.split('.').collect();
    let mut preds = Vec::new();
    collect_preds(query, &comps, &mut preds);
    if preds.is_empty() {
        return None;
    }
    for (i, el) in arr.iter().enumerate() {
        let wrapper = bson::doc! {"e": el.clone()};
        let raw = bson::RawDocumentBuf::from_document(&wrapper).ok()?;
        let ok = preds.iter().all(|(rest, expr_path_pred)| {
            let mut path = vec!["e".to_string()];
            path.extend(rest.iter().cloned());
            let e = Expr::Path(path, expr_path_pred.clone());
            e.matches(&raw)
        });
        if ok {
            return Some(i);
        }
    }
    None
}

fn collect_preds(e: &Expr, comps: &[&str], out: &mut Vec<(Vec<String>, crate::matcher::Pred)>) {
    match e {
        Expr::And(v) => v.iter().for_each(|x| collect_preds(x, comps, out)),
        Expr::Path(p, pred)
            if p.len() >= comps.len() && p.iter().zip(comps).all(|(a, b)| a == b) =>
        {
            out.push((p[comps.len()..].to_vec(), pred.clone()));
        }
        _ => {}
    }
}

pub fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut cur: Option<&Bson> = None;
    for (i, part) in path.split('.').enumerate() {
        cur = if i == 0 {
            doc.get(part)
        } else {
            match cur? {
                Bson::Document(d) => d.get(part),
                Bson::Array(a) => part.parse::<usize>().ok().and_then(|j| a.get(j)),
                _ => None,
            }
        };
    }
    cur
}

/// Binary equality of values (type and value), as mongod's no-op detection uses.
fn same_value(a: &Bson, b: &Bson) -> bool {
    a == b
}

/// Where a path leads: the container and the last component.
enum Slot<'a> {
    Doc(&'a mut Document, String),
    Arr(&'a mut Vec<Bson>, usize),
}

/// Walks to the parent of `path`, creating missing documents when `create` is set. Returns the
/// slot and the index of the first component that had to be created (for logging).
fn slot_for<'a>(
    doc: &'a mut Document,
    path: &str,
    create: bool,
) -> CmdResult<Option<(Slot<'a>, Option<usize>)>> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut created_at: Option<usize> = None;
    let mut cur = Slot::Doc(doc, parts[0].to_string());
    for (i, part) in parts.iter().enumerate().skip(1) {
        // Descend into cur's target, creating it when missing.
        let next_container: &mut Bson = match cur {
            Slot::Doc(d, key) => {
                if !d.contains_key(&key) {
                    if !create {
                        return Ok(None);
                    }
                    created_at.get_or_insert(i - 1);
                    d.insert(key.clone(), Bson::Document(Document::new()));
                }
                match d.get_mut(&key) {
                    Some(b) => b,
                    None => return Ok(None),
                }
            }
            Slot::Arr(a, idx) => {
                if idx >= a.len() {
                    if !create {
                        return Ok(None);
                    }
                    created_at.get_or_insert(i - 1);
                    while a.len() <= idx {
                        a.push(Bson::Null);
                    }
                    a[idx] = Bson::Document(Document::new());
                }
                &mut a[idx]
            }
        };
        cur = match next_container {
            Bson::Document(d) => Slot::Doc(d, part.to_string()),
            Bson::Array(a) => match part.parse::<usize>() {
                Ok(j) => Slot::Arr(a, j),
                Err(_) => {
                    return Err(CommandError::new(
                        codes::PATH_NOT_VIABLE,
                        format!(
                            "Cannot create field '{part}' in element {{{}: {}}}",
                            parts[i - 1],
                            Bson::Array(a.clone())
                        ),
                    ))
                }
            },
            other => {
                if !create {
                    return Ok(None);
                }
                return Err(CommandError::new(
                    codes::PATH_NOT_VIABLE,
                    format!(
                        "Cannot create field '{part}' in element {{{}: {other}}}",
                        parts[i - 1]
                    ),
                ));
            }
        };
    }
    Ok(Some((cur, created_at)))
}

fn slot_get<'s>(slot: &'s Slot<'_>) -> Option<&'s Bson> {
    match slot {
        Slot::Doc(d, k) => d.get(k),
        Slot::Arr(a, i) => a.get(*i),
    }
}

fn slot_set(slot: &mut Slot<'_>, v: Bson) -> bool {
    match slot {
        Slot::Doc(d, k) => {
            let created = !d.contains_key(k.as_str());
            d.insert(k.clone(), v);
            created
        }
        Slot::Arr(a, i) => {
            let created = *i >= a.len();
            while a.len() <= *i {
                a.push(Bson::Null);
            }
            a[*i] = v;
            created
        }
    }
}

fn log_path_for(path: &str, created_at: Option<usize>, newly_created_leaf: bool) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match created_at {
        Some(i) => parts[..=i].join("."),
        None => {
            let _ = newly_created_leaf;
            path.to_string()
        }
    }
}

fn id_string(doc: &Document) -> String {
    doc.get("_id")
        .map(|v| format!("{{_id: {v}}}"))
        .unwrap_or_else(|| "{}".into())
}

#[allow(clippy::too_many_arguments)]
fn apply_one(
    doc: &mut Document,
    op: &str,
    path: &str,
    arg: &Bson,
    inserting: bool,
    now: &bson::DateTime,
    logs: &mut Vec<Log>,
) -> CmdResult<()> {
    let id_str = id_string(doc);
    match op {
        "$set" | "$setOnInsert" => {
            if op == "$setOnInsert" && !inserting {
                return Ok(());
            }
            set_value(doc, path, arg.clone(), logs)
        }
        "$currentDate" => {
            let v = match arg {
                Bson::Boolean(true) => Bson::DateTime(*now),
                Bson::Document(d) if d.get_str("$type") == Ok("date") => Bson::DateTime(*now),
                Bson::Document(d) if d.get_str("$type") == Ok("timestamp") => {
                    Bson::Timestamp(bson::Timestamp {
                        time: (now.timestamp_millis() / 1000) as u32,
                        increment: 1,
                    })
                }
                _ => {
                    return Err(CommandError::bad_value(
                        "The '$type' string field is required to be 'date' or 'timestamp'",
                    ))
                }
            };
            set_value(doc, path, v, logs)
        }
        "$unset" => {
            let Some((mut slot, _)) = slot_for(doc, path, false)? else {
                return Ok(());
            };
            match &mut slot {
                Slot::Doc(d, k) => {
                    if d.remove(k.as_str()).is_some() {
                        logs.push(Log::Removed(path.to_string()));
                    }
                }
                Slot::Arr(a, i) => {
                    if *i < a.len() && a[*i] != Bson::Null {
                        a[*i] = Bson::Null;
                        logs.push(Log::Updated(path.to_string()));
                    }
                }
            }
            Ok(())
        }
        "$inc" | "$mul" => {
            if !is_numeric(arg) {
                let verb = if op == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(CommandError::type_mismatch(format!(
                    "Cannot {verb} with non-numeric argument: {{{path}: {arg}}}"
                )));
            }
            let current = slot_for(doc, path, false)?.and_then(|(s, _)| slot_get(&s).cloned());
            let new = match &current {
                None => {
                    if op == "$inc" {
                        arg.clone()
                    } else {
                        zero_like(arg)
                    }
                }
                Some(v) if is_numeric(v) => arith(op, v, arg)?,
                Some(v) => {
                    return Err(CommandError::type_mismatch(format!(
                        "Cannot apply {op} to a value of non-numeric type. {id_str} has the field \
                         '{}' of non-numeric type {}",
                        path.rsplit('.').next().unwrap_or(path),
                        type_name(v)
                    )))
                }
            };
            set_value(doc, path, new, logs)
        }
        "$min" | "$max" => {
            let current = slot_for(doc, path, false)?.and_then(|(s, _)| slot_get(&s).cloned());
            let replace = match &current {
                None => true,
                Some(v) => {
                    let ord = crate::ordering::compare(
                        &bson::RawBson::try_from(arg.clone())
                            .map_err(|e| CommandError::bad_value(e.to_string()))?
                            .as_raw_bson_ref(),
                        &bson::RawBson::try_from(v.clone())
                            .map_err(|e| CommandError::bad_value(e.to_string()))?
                            .as_raw_bson_ref(),
                    );
                    (op == "$min" && ord == std::cmp::Ordering::Less)
                        || (op == "$max" && ord == std::cmp::Ordering::Greater)
                }
            };
            if replace {
                set_value(doc, path, arg.clone(), logs)?;
            }
            Ok(())
        }
        "$rename" => {
            let to = match arg {
                Bson::String(s) => s.clone(),
                _ => {
                    return Err(CommandError::bad_value(format!(
                        "The 'to' field for $rename must be a string: {path}: {arg}"
                    )))
                }
            };
            if to == path {
                return Err(CommandError::bad_value(format!(
                    "The source and target field for $rename must differ: {path}: \"{to}\""
                )));
            }
            let value = match slot_for(doc, path, false)? {
                Some((Slot::Doc(d, k), _)) => d.remove(k.as_str()),
                Some((Slot::Arr(..), _)) => {
                    return Err(CommandError::bad_value(
                        "The source field cannot be an array element",
                    ))
                }
                None => None,
            };
            if let Some(v) = value {
                logs.push(Log::Removed(path.to_string()));
                set_value(doc, &to, v, logs)?;
            }
            Ok(())
        }
        "$push" | "$addToSet" => {
            let (values, position, slice, sort) = parse_push_arg(op, arg)?;
            let current = slot_for(doc, path, false)?.and_then(|(s, _)| slot_get(&s).cloned());
            let mut arr = match current {
                None => Vec::new(),
                Some(Bson::Array(a)) => a,
                Some(other) => {
                    return Err(CommandError::bad_value(format!(
                    "The field '{path}' must be an array but is of type {} in document {id_str}",
                    type_name(&other)
                )))
                }
            };
            let existed = slot_for(doc, path, false)?.is_some();
            let old_len = arr.len();
            if op == "$addToSet" {
                let mut added = false;
                for v in values {
                    if !arr.iter().any(|x| x == &v) {
                        arr.push(v);
                        added = true;
                    }
                }
                if !added && existed {
                    return Ok(());
                }
                let (mut slot, created_at) = slot_for(doc, path, true)?
                    .ok_or_else(|| CommandError::new(codes::INTERNAL_ERROR, "path vanished"))?;
                slot_set(&mut slot, Bson::Array(arr));
                logs.push(Log::Updated(log_path_for(path, created_at, !existed)));
                return Ok(());
            }
            let simple_append =
                existed && old_len > 0 && position.is_none() && slice.is_none() && sort.is_none();
            let n_values = values.len();
            match position {
                Some(p) => {
                    let len = arr.len() as i64;
                    let at = if p < 0 { (len + p).max(0) } else { p.min(len) } as usize;
                    for (j, v) in values.into_iter().enumerate() {
                        arr.insert(at + j, v);
                    }
                }
                None => arr.extend(values),
            }
            if let Some(s) = &sort {
                sort_array(&mut arr, s)?;
            }
            if let Some(n) = slice {
                if n >= 0 {
                    arr.truncate(n as usize);
                } else {
                    let keep = (-n) as usize;
                    if arr.len() > keep {
                        arr.drain(..arr.len() - keep);
                    }
                }
            }
            if existed && arr.len() == old_len && n_values == 0 {
                return Ok(());
            }
            let (mut slot, created_at) = slot_for(doc, path, true)?
                .ok_or_else(|| CommandError::new(codes::INTERNAL_ERROR, "path vanished"))?;
            slot_set(&mut slot, Bson::Array(arr.clone()));
            if simple_append {
                for (j, v) in arr.iter().enumerate().skip(old_len) {
                    logs.push(Log::Value(format!("{path}.{j}"), v.clone()));
                }
            } else {
                logs.push(Log::Updated(log_path_for(path, created_at, !existed)));
            }
            Ok(())
        }
        "$pull" | "$pullAll" | "$pop" => {
            let Some((mut slot, _)) = slot_for(doc, path, false)? else {
                return Ok(());
            };
            let arr = match slot_get(&slot) {
                None => return Ok(()),
                Some(Bson::Array(a)) => a.clone(),
                Some(other) => {
                    let what = if op == "$pop" { "$pop" } else { "$pull" };
                    let _ = what;
                    return Err(CommandError::bad_value(format!(
                        "Cannot apply {op} to a non-array value"
                    ))
                    .with_extra("type", type_name(other)));
                }
            };
            let new: Vec<Bson> = match op {
                "$pop" => {
                    let n = match arg {
                        Bson::Int32(i) => i64::from(*i),
                        Bson::Int64(i) => *i,
                        Bson::Double(d) => *d as i64,
                        _ => return Err(CommandError::type_mismatch("Expected a number in: $pop")),
                    };
                    let mut a = arr.clone();
                    if !a.is_empty() {
                        if n >= 0 {
                            a.pop();
                        } else {
                            a.remove(0);
                        }
                    }
                    a
                }
                "$pullAll" => {
                    let vals = match arg {
                        Bson::Array(v) => v.clone(),
                        _ => {
                            return Err(CommandError::bad_value(
                                "$pullAll requires an array argument",
                            ))
                        }
                    };
                    arr.iter().filter(|x| !vals.contains(x)).cloned().collect()
                }
                _ => {
                    let cond = PullCond::parse(arg)?;
                    let mut out = Vec::new();
                    for x in &arr {
                        if !cond.matches(x)? {
                            out.push(x.clone());
                        }
                    }
                    out
                }
            };
            if new.len() != arr.len() {
                slot_set(&mut slot, Bson::Array(new));
                logs.push(Log::Updated(path.to_string()));
            }
            Ok(())
        }
        other => Err(CommandError::failed_to_parse(format!(
            "Unknown modifier: {other}"
        ))),
    }
}

fn set_value(doc: &mut Document, path: &str, value: Bson, logs: &mut Vec<Log>) -> CmdResult<()> {
    let (mut slot, created_at) = slot_for(doc, path, true)?
        .ok_or_else(|| CommandError::new(codes::INTERNAL_ERROR, "path vanished"))?;
    if let Some(existing) = slot_get(&slot) {
        if same_value(existing, &value) {
            return Ok(());
        }
    }
    let created = slot_set(&mut slot, value);
    logs.push(Log::Updated(log_path_for(path, created_at, created)));
    Ok(())
}

fn is_numeric(b: &Bson) -> bool {
    matches!(
        b,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

fn zero_like(b: &Bson) -> Bson {
    match b {
        Bson::Int32(_) => Bson::Int32(0),
        Bson::Int64(_) => Bson::Int64(0),
        Bson::Decimal128(_) => Bson::Decimal128(
            "0".parse()
                .unwrap_or_else(|_| bson::Decimal128::from_bytes([0; 16])),
        ),
        _ => Bson::Double(0.0),
    }
}

/// `$inc`/`$mul` arithmetic with mongod's `SafeNum` widening: int32 overflows to int64, int64
/// overflows to double.
fn arith(op: &str, a: &Bson, b: &Bson) -> CmdResult<Bson> {
    use Bson::*;
    let mul = op == "$mul";
    Ok(match (a, b) {
        (Decimal128(_), _) | (_, Decimal128(_)) => {
            return Err(CommandError::not_implemented(format!(
                "{op} on decimal values"
            )))
        }
        (Double(_), _) | (_, Double(_)) => {
            let (x, y) = (as_f64(a), as_f64(b));
            Double(if mul { x * y } else { x + y })
        }
        (Int32(x), Int32(y)) => {
            let r = if mul {
                x.checked_mul(*y)
            } else {
                x.checked_add(*y)
            };
            match r {
                Some(v) => Int32(v),
                None => {
                    let (x, y) = (i64::from(*x), i64::from(*y));
                    Int64(if mul { x * y } else { x + y })
                }
            }
        }
        _ => {
            let (x, y) = (as_i64(a), as_i64(b));
            let r = if mul {
                x.checked_mul(y)
            } else {
                x.checked_add(y)
            };
            match r {
                Some(v) => Int64(v),
                None => Double(if mul {
                    x as f64 * y as f64
                } else {
                    x as f64 + y as f64
                }),
            }
        }
    })
}

fn as_f64(b: &Bson) -> f64 {
    match b {
        Bson::Int32(i) => f64::from(*i),
        Bson::Int64(i) => *i as f64,
        Bson::Double(d) => *d,
        _ => 0.0,
    }
}

fn as_i64(b: &Bson) -> i64 {
    match b {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        Bson::Double(d) => *d as i64,
        _ => 0,
    }
}

type PushArg = (Vec<Bson>, Option<i64>, Option<i64>, Option<Bson>);

fn parse_push_arg(op: &str, arg: &Bson) -> CmdResult<PushArg> {
    if let Bson::Document(d) = arg {
        if d.contains_key("$each") {
            let each = match d.get("$each") {
                Some(Bson::Array(a)) => a.clone(),
                _ => {
                    return Err(CommandError::bad_value(format!(
                        "The argument to $each in {op} must be an array"
                    )))
                }
            };
            let mut position = None;
            let mut slice = None;
            let mut sort = None;
            for (k, v) in d {
                match k.as_str() {
                    "$each" => {}
                    "$position" if op == "$push" => position = Some(as_i64(v)),
                    "$slice" if op == "$push" => slice = Some(as_i64(v)),
                    "$sort" if op == "$push" => sort = Some(v.clone()),
                    other => {
                        return Err(CommandError::bad_value(format!(
                            "Unrecognized clause in {op}: {other}"
                        )))
                    }
                }
            }
            return Ok((each, position, slice, sort));
        }
    }
    Ok((vec![arg.clone()], None, None, None))
}

fn to_raw(b: &Bson) -> bson::RawBson {
    bson::RawBson::try_from(b.clone()).unwrap_or(bson::RawBson::Null)
}

fn sort_array(arr: &mut [Bson], spec: &Bson) -> CmdResult<()> {
    match spec {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
            let asc = as_i64(spec) >= 0;
            arr.sort_by(|a, b| {
                let o = crate::ordering::compare(&to_raw(a).as_raw_bson_ref(), &to_raw(b).as_raw_bson_ref());
                if asc {
                    o
                } else {
                    o.reverse()
                }
            });
            Ok(())
        }
        Bson::Document(d) => {
            let keys: Vec<(Vec<String>, bool)> = d
                .iter()
                .map(|(k, v)| (k.split('.').map(str::to_string).collect(), as_i64(v) >= 0))
                .collect();
            arr.sort_by(|a, b| {
                let (ra, rb) = (wrap_raw(a), wrap_raw(b));
                for (path, asc) in &keys {
                    let ka = crate::matcher::sort_key(&ra, path, *asc);
                    let kb = crate::matcher::sort_key(&rb, path, *asc);
                    let o = crate::ordering::compare(&ka, &kb);
                    let o = if *asc { o } else { o.reverse() };
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
            Ok(())
        }
        _ => Err(CommandError::bad_value("The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields")),
    }
}

fn wrap_raw(b: &Bson) -> bson::RawDocumentBuf {
    match b {
        Bson::Document(d) => bson::RawDocumentBuf::from_document(d).unwrap_or_default(),
        _ => bson::RawDocumentBuf::new(),
    }
}

/// The condition of a `$pull`: a value, or a query on elements.
enum PullCond {
    Value(Bson),
    Query(Expr),
    ValueOps(Expr),
}

impl PullCond {
    fn parse(arg: &Bson) -> CmdResult<PullCond> {
        match arg {
            Bson::Document(d) => {
                let raw = bson::RawDocumentBuf::from_document(d)
                    .map_err(|e| CommandError::bad_value(e.to_string()))?;
                if d.keys().next().is_some_and(|k| k.starts_with('$'))
                    && !matches!(
                        d.keys().next().map(String::as_str),
                        Some("$and" | "$or" | "$nor")
                    )
                {
                    // {$gte: 6}: applies to the element value itself.
                    let wrapped = bson::doc! {"e": d.clone()};
                    let raw = bson::RawDocumentBuf::from_document(&wrapped)
                        .map_err(|e| CommandError::bad_value(e.to_string()))?;
                    Ok(PullCond::ValueOps(Expr::parse(&raw)?))
                } else {
                    Ok(PullCond::Query(Expr::parse(&raw)?))
                }
            }
            other => Ok(PullCond::Value(other.clone())),
        }
    }

    fn matches(&self, x: &Bson) -> CmdResult<bool> {
        Ok(match self {
            PullCond::Value(v) => {
                let (a, b) = (to_raw(x), to_raw(v));
                crate::ordering::type_class(&a.as_raw_bson_ref())
                    == crate::ordering::type_class(&b.as_raw_bson_ref())
                    && crate::ordering::compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref())
                        == std::cmp::Ordering::Equal
            }
            PullCond::Query(e) => match x {
                Bson::Document(d) => {
                    let raw = bson::RawDocumentBuf::from_document(d)
                        .map_err(|e| CommandError::bad_value(e.to_string()))?;
                    e.matches(&raw)
                }
                _ => false,
            },
            PullCond::ValueOps(e) => {
                let raw = bson::RawDocumentBuf::from_document(&bson::doc! {"e": x.clone()})
                    .map_err(|e| CommandError::bad_value(e.to_string()))?;
                e.matches(&raw)
            }
        })
    }
}

/// The document an upsert starts from: the query's top-level equality fields (mongod's
/// `extractEqualityMatches`), `_id` first.
pub fn upsert_seed(filter: &RawDocument) -> CmdResult<Document> {
    let mut seed = Document::new();
    fn walk(filter: &RawDocument, seed: &mut Document) -> CmdResult<()> {
        for item in filter.iter() {
            let (k, v) = item.map_err(|e| CommandError::bad_value(e.to_string()))?;
            if k == "$and" {
                if let bson::RawBsonRef::Array(a) = v {
                    for e in a.into_iter().flatten() {
                        if let bson::RawBsonRef::Document(d) = e {
                            walk(d, seed)?;
                        }
                    }
                }
                continue;
            }
            if k.starts_with('$') {
                continue;
            }
            let value = match v {
                bson::RawBsonRef::Document(d) => match d.iter().next() {
                    Some(Ok(("$eq", inner))) => Some(inner),
                    Some(Ok((op, _))) if op.starts_with('$') => None,
                    _ => Some(v),
                },
                bson::RawBsonRef::RegularExpression(_) => None,
                other => Some(other),
            };
            if let Some(value) = value {
                let b = Bson::try_from(value.to_raw_bson())
                    .map_err(|e| CommandError::bad_value(e.to_string()))?;
                let mut logs = Vec::new();
                set_value(seed, k, b, &mut logs)?;
            }
        }
        Ok(())
    }
    walk(filter, &mut seed)?;
    Ok(seed)
}

/// Computes the `updateDescription` between two versions of a document the way mongod's
/// `doc_diff::computeOplogDiff` does for pipeline-style updates: nested documents are diffed
/// field by field, arrays element by element, with `truncatedArrays` for shrunk arrays.
pub fn diff_documents(old: &Document, new: &Document) -> UpdateDescription {
    let mut desc = UpdateDescription::default();
    diff_into(old, new, "", &mut desc);
    desc
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

fn diff_into(old: &Document, new: &Document, prefix: &str, desc: &mut UpdateDescription) {
    for (k, _) in old {
        if !new.contains_key(k) {
            desc.removed_fields.push(join(prefix, k));
        }
    }
    for (k, nv) in new {
        let path = join(prefix, k);
        match old.get(k) {
            None => {
                desc.updated_fields.insert(path, nv.clone());
            }
            Some(ov) if ov == nv => {}
            Some(Bson::Document(od)) => match nv {
                Bson::Document(nd) => diff_into(od, nd, &path, desc),
                _ => {
                    desc.updated_fields.insert(path, nv.clone());
                }
            },
            Some(Bson::Array(oa)) => match nv {
                Bson::Array(na) => {
                    for (i, el) in na.iter().enumerate() {
                        let p = format!("{path}.{i}");
                        match oa.get(i) {
                            Some(o) if o == el => {}
                            Some(Bson::Document(od)) => match el {
                                Bson::Document(nd) => diff_into(od, nd, &p, desc),
                                _ => {
                                    desc.updated_fields.insert(p, el.clone());
                                }
                            },
                            _ => {
                                desc.updated_fields.insert(p, el.clone());
                            }
                        }
                    }
                    if na.len() < oa.len() {
                        desc.truncated_arrays.push((path, na.len() as i32));
                    }
                }
                _ => {
                    desc.updated_fields.insert(path, nv.clone());
                }
            },
            Some(_) => {
                desc.updated_fields.insert(path, nv.clone());
            }
        }
    }
}

/// Runs the `$set`/`$addFields`, `$unset`, `$project` (inclusion of plain fields),
/// `$replaceWith`/`$replaceRoot` stages of a pipeline-style update with literal values and
/// `"$field"` references.
pub fn apply_pipeline(old: &Document, pipeline: &[Document]) -> CmdResult<Document> {
    let mut doc = old.clone();
    for stage in pipeline {
        let (name, arg) = stage
            .iter()
            .next()
            .ok_or_else(|| CommandError::bad_value("empty pipeline stage"))?;
        match (name.as_str(), arg) {
            ("$set" | "$addFields", Bson::Document(fields)) => {
                for (k, v) in fields {
                    let value = eval_expr(&doc, v)?;
                    let mut logs = Vec::new();
                    match value {
                        Some(v) => set_value(&mut doc, k, v, &mut logs)?,
                        None => apply_one(
                            &mut doc,
                            "$unset",
                            k,
                            &Bson::Int32(1),
                            false,
                            &bson::DateTime::now(),
                            &mut logs,
                        )?,
                    }
                }
            }
            ("$unset", fields) => {
                let list: Vec<String> = match fields {
                    Bson::String(s) => vec![s.clone()],
                    Bson::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => {
                        return Err(CommandError::bad_value(
                            "$unset specification must be a string or an array",
                        ))
                    }
                };
                for k in list {
                    let mut logs = Vec::new();
                    apply_one(
                        &mut doc,
                        "$unset",
                        &k,
                        &Bson::Int32(1),
                        false,
                        &bson::DateTime::now(),
                        &mut logs,
                    )?;
                }
            }
            ("$replaceWith", v) | ("$replaceRoot", v) => {
                let v = if name == "$replaceRoot" {
                    match v {
                        Bson::Document(d) => d.get("newRoot").cloned().unwrap_or(Bson::Null),
                        _ => Bson::Null,
                    }
                } else {
                    v.clone()
                };
                match eval_expr(&doc, &v)? {
                    Some(Bson::Document(d)) => {
                        let mut out = Document::new();
                        if let Some(id) = doc.get("_id") {
                            out.insert("_id", id.clone());
                        }
                        for (k, v) in d {
                            if k != "_id" {
                                out.insert(k, v);
                            }
                        }
                        doc = out;
                    }
                    _ => {
                        return Err(CommandError::new(
                            40228,
                            "'replacement document' must evaluate to an object",
                        ))
                    }
                }
            }
            (other, _) => {
                return Err(CommandError::not_implemented(format!(
                    "the {other} stage in pipeline-style updates"
                )))
            }
        }
    }
    Ok(doc)
}

fn eval_expr(doc: &Document, v: &Bson) -> CmdResult<Option<Bson>> {
    crate::expression::evaluate(doc, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn run(old: Document, u: Document) -> Applied {
        match UpdateSpec::parse(&u).expect("parse") {
            UpdateSpec::Operators(ops) => apply_operators(&old, &ops, None, false).expect("apply"),
            UpdateSpec::Replacement(_) => panic!("replacement"),
        }
    }

    #[test]
    fn set_unset_inc_log_paths() {
        let a = run(
            doc! {"_id": 1, "a": {"b": 1}, "c": 1, "n": 1},
            doc! {"$set": {"a.b": 2, "x.y": 3}, "$unset": {"c": ""}, "$inc": {"n": 2}},
        );
        assert!(a.changed);
        assert_eq!(a.doc, doc! {"_id": 1, "a": {"b": 2}, "n": 3, "x": {"y": 3}});
        assert_eq!(
            a.description.updated_fields,
            doc! {"a.b": 2, "x": {"y": 3}, "n": 3}
        );
        assert_eq!(a.description.removed_fields, vec!["c".to_string()]);
    }

    #[test]
    fn push_appends_log_elements_pull_logs_array() {
        let a = run(
            doc! {"_id": 1, "arr": [1, 2]},
            doc! {"$push": {"arr": {"$each": [3, 4]}}},
        );
        assert_eq!(a.description.updated_fields, doc! {"arr.2": 3, "arr.3": 4});
        let b = run(
            doc! {"_id": 1, "arr": [1, 2, 3]},
            doc! {"$pull": {"arr": {"$gte": 2}}},
        );
        assert_eq!(b.doc, doc! {"_id": 1, "arr": [1]});
        assert_eq!(b.description.updated_fields, doc! {"arr": [1]});
    }

    #[test]
    fn noop_and_errors() {
        let a = run(doc! {"_id": 1, "a": 1}, doc! {"$set": {"a": 1}});
        assert!(!a.changed);
        assert!(UpdateSpec::parse(&doc! {"$set": {"a": 1}, "$inc": {"a": 1}}).is_err());
        let ops = match UpdateSpec::parse(&doc! {"$set": {"_id": 2}}).expect("parse") {
            UpdateSpec::Operators(o) => o,
            _ => unreachable!(),
        };
        let e = apply_operators(&doc! {"_id": 1}, &ops, None, false).expect_err("immutable");
        assert_eq!(e.code, 66);
        let inc = match UpdateSpec::parse(&doc! {"$inc": {"a": 1}}).expect("parse") {
            UpdateSpec::Operators(o) => o,
            _ => unreachable!(),
        };
        let e = apply_operators(&doc! {"_id": 1, "a": "x"}, &inc, None, false).expect_err("type");
        assert_eq!(e.code, 14);
    }

    #[test]
    fn int32_overflow_widens() {
        let a = run(doc! {"_id": 1, "n": i32::MAX}, doc! {"$inc": {"n": 1}});
        assert_eq!(a.doc.get("n"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    }

    #[test]
    fn diff_truncates_arrays() {
        let d = diff_documents(
            &doc! {"_id": 1, "a": [1, 2, 3], "b": 1},
            &doc! {"_id": 1, "a": [1, 5]},
        );
        assert_eq!(d.updated_fields, doc! {"a.1": 5});
        assert_eq!(d.removed_fields, vec!["b".to_string()]);
        assert_eq!(d.truncated_arrays, vec![("a".to_string(), 2)]);
    }

    #[test]
    fn positional_operator() {
        let q = Expr::parse(&bson::rawdoc! {"arr.k": 2}).expect("q");
        let ops = match UpdateSpec::parse(&doc! {"$set": {"arr.$.v": 9}}).expect("p") {
            UpdateSpec::Operators(o) => o,
            _ => unreachable!(),
        };
        let a = apply_operators(
            &doc! {"_id": 1, "arr": [{"k": 1}, {"k": 2}]},
            &ops,
            Some(&q),
            false,
        )
        .expect("apply");
        assert_eq!(a.doc, doc! {"_id": 1, "arr": [{"k": 1}, {"k": 2, "v": 9}]});
        assert_eq!(a.description.updated_fields, doc! {"arr.1.v": 9});
    }
}
