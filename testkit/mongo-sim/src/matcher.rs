//! Query matching with mongod's semantics: equality and comparison operators with type
//! bracketing, `$in`/`$nin`, `$and`/`$or`/`$nor`/`$not`, `$exists`, `$type`, `$size`, `$all`,
//! `$elemMatch`, `$regex`, `$mod`, dotted paths and implicit array traversal.
//!
//! Semantics follow mongod's `src/mongo/db/matcher/expression_leaf.cpp`
//! (`ComparisonMatchExpressionBase::matchesSingleElement`): values of different canonical types
//! never compare, except Null/Undefined equality and MinKey/MaxKey bounds; a path that meets an
//! array matches if any element (or the array itself) matches; negations (`$ne`, `$nin`, `$not`,
//! `$exists: false`) negate the whole path predicate.

use std::cmp::Ordering;

use bson::{RawArray, RawBson, RawBsonRef, RawDocument};

use crate::error::{CmdResult, CommandError};
use crate::ordering::{compare, type_class};

/// A compiled query filter.
#[derive(Debug, Clone)]
pub enum Expr {
    True,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Nor(Vec<Expr>),
    Path(Vec<String>, Pred),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A predicate on the values found at a path.
#[derive(Debug, Clone)]
pub enum Pred {
    Cmp(CmpOp, RawBson),
    In(Vec<RawBson>, Vec<regex::Regex>),
    Exists,
    Type(Vec<u8>, bool),
    Size(i64),
    All(Vec<RawBson>),
    ElemMatchValue(Vec<Pred>),
    ElemMatchDoc(Box<Expr>),
    Regex(regex::Regex),
    Mod(i64, i64),
    /// All of these (an operator document with several operators).
    AllOf(Vec<Pred>),
    /// Negation of a whole path predicate.
    Not(Box<Pred>),
}

impl Expr {
    /// Compiles a filter document.
    pub fn parse(filter: &RawDocument) -> CmdResult<Expr> {
        let mut parts = Vec::new();
        for item in filter.iter() {
            let (key, value) = item.map_err(bad_bson)?;
            if let Some(op) = key.strip_prefix('$') {
                match op {
                    "and" | "or" | "nor" => {
                        let arr = match value {
                            RawBsonRef::Array(a) => a,
                            _ => {
                                return Err(CommandError::bad_value(format!(
                                    "${op} must be an array"
                                )))
                            }
                        };
                        let mut subs = Vec::new();
                        for el in arr.into_iter() {
                            match el.map_err(bad_bson)? {
                                RawBsonRef::Document(d) => subs.push(Expr::parse(d)?),
                                _ => {
                                    return Err(CommandError::bad_value(format!(
                                        "${op} argument's entries must be objects"
                                    )))
                                }
                            }
                        }
                        if subs.is_empty() {
                            return Err(CommandError::bad_value(format!(
                                "${op} argument must be a non-empty array"
                            )));
                        }
                        parts.push(match op {
                            "and" => Expr::And(subs),
                            "or" => Expr::Or(subs),
                            _ => Expr::Nor(subs),
                        });
                    }
                    "comment" => {}
                    "expr" | "where" | "text" | "jsonSchema" | "sampleRate" => {
                        return Err(CommandError::not_implemented(format!("the ${op} operator")))
                    }
                    _ => {
                        return Err(CommandError::bad_value(format!(
                            "unknown top level operator: ${op}. If you have a field name that \
                             starts with a '$' symbol, consider using $getField or $setField."
                        )))
                    }
                }
                continue;
            }
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let pred = parse_value_predicate(value)?;
            parts.push(Expr::Path(path, pred));
        }
        Ok(match parts.len() {
            0 => Expr::True,
            1 => parts.pop().unwrap_or(Expr::True),
            _ => Expr::And(parts),
        })
    }

    pub fn matches(&self, doc: &RawDocument) -> bool {
        match self {
            Expr::True => true,
            Expr::And(v) => v.iter().all(|e| e.matches(doc)),
            Expr::Or(v) => v.iter().any(|e| e.matches(doc)),
            Expr::Nor(v) => !v.iter().any(|e| e.matches(doc)),
            Expr::Path(path, pred) => pred.matches_path(doc, path),
        }
    }

    pub fn is_true(&self) -> bool {
        matches!(self, Expr::True)
    }
}

fn bad_bson(e: bson::raw::Error) -> CommandError {
    CommandError::new(22, format!("invalid BSON: {e}"))
}

fn is_operator_doc(d: &RawDocument) -> bool {
    matches!(d.iter().next(), Some(Ok((k, _))) if k.starts_with('$'))
}

/// Parses the value of `{path: value}`.
fn parse_value_predicate(value: RawBsonRef<'_>) -> CmdResult<Pred> {
    match value {
        RawBsonRef::Document(d) if is_operator_doc(d) => parse_operator_doc(d),
        RawBsonRef::RegularExpression(r) => Ok(Pred::Regex(build_regex(r.pattern, r.options)?)),
        other => Ok(Pred::Cmp(CmpOp::Eq, other.to_raw_bson())),
    }
}

fn parse_operator_doc(d: &RawDocument) -> CmdResult<Pred> {
    let mut preds = Vec::new();
    let mut regex_options: Option<&str> = None;
    let mut regex_pattern: Option<(String, String)> = None;
    for item in d.iter() {
        let (op, v) = item.map_err(bad_bson)?;
        let pred = match op {
            "$eq" => Pred::Cmp(CmpOp::Eq, v.to_raw_bson()),
            "$ne" => Pred::Not(Box::new(Pred::Cmp(CmpOp::Eq, v.to_raw_bson()))),
            "$lt" => Pred::Cmp(CmpOp::Lt, v.to_raw_bson()),
            "$lte" => Pred::Cmp(CmpOp::Lte, v.to_raw_bson()),
            "$gt" => Pred::Cmp(CmpOp::Gt, v.to_raw_bson()),
            "$gte" => Pred::Cmp(CmpOp::Gte, v.to_raw_bson()),
            "$in" | "$nin" => {
                let arr = match v {
                    RawBsonRef::Array(a) => a,
                    _ => return Err(CommandError::bad_value(format!("{op} needs an array"))),
                };
                let (vals, regexes) = parse_in_list(arr)?;
                let p = Pred::In(vals, regexes);
                if op == "$in" {
                    p
                } else {
                    Pred::Not(Box::new(p))
                }
            }
            "$exists" => {
                if truthy(&v) {
                    Pred::Exists
                } else {
                    Pred::Not(Box::new(Pred::Exists))
                }
            }
            "$type" => parse_type(v)?,
            "$size" => match v {
                RawBsonRef::Int32(i) => Pred::Size(i64::from(i)),
                RawBsonRef::Int64(i) => Pred::Size(i),
                RawBsonRef::Double(f) if f.fract() == 0.0 => Pred::Size(f as i64),
                _ => {
                    return Err(CommandError::bad_value(
                        "Failed to parse $size. Expected a number in: $size",
                    ))
                }
            },
            "$all" => match v {
                RawBsonRef::Array(a) => Pred::All(
                    a.into_iter()
                        .map(|e| e.map(|e| e.to_raw_bson()).map_err(bad_bson))
                        .collect::<CmdResult<_>>()?,
                ),
                _ => return Err(CommandError::bad_value("$all needs an array")),
            },
            "$elemMatch" => match v {
                RawBsonRef::Document(sub) => {
                    if is_operator_doc(sub) && !starts_with_logical(sub) {
                        match parse_operator_doc(sub)? {
                            Pred::AllOf(v) => Pred::ElemMatchValue(v),
                            p => Pred::ElemMatchValue(vec![p]),
                        }
                    } else {
                        Pred::ElemMatchDoc(Box::new(Expr::parse(sub)?))
                    }
                }
                _ => return Err(CommandError::bad_value("$elemMatch needs an Object")),
            },
            "$not" => match v {
                RawBsonRef::Document(sub) if is_operator_doc(sub) => {
                    Pred::Not(Box::new(parse_operator_doc(sub)?))
                }
                RawBsonRef::RegularExpression(r) => {
                    Pred::Not(Box::new(Pred::Regex(build_regex(r.pattern, r.options)?)))
                }
                _ => return Err(CommandError::bad_value("$not needs a regex or a document")),
            },
            "$regex" => {
                match v {
                    RawBsonRef::String(s) => {
                        regex_pattern = Some((s.to_string(), String::new()));
                    }
                    RawBsonRef::RegularExpression(r) => {
                        regex_pattern = Some((r.pattern.to_string(), r.options.to_string()));
                    }
                    _ => return Err(CommandError::bad_value("$regex has to be a string")),
                }
                continue;
            }
            "$options" => {
                match v {
                    RawBsonRef::String(s) => regex_options = Some(s),
                    _ => return Err(CommandError::bad_value("$options has to be a string")),
                }
                continue;
            }
            "$mod" => {
                let arr = match v {
                    RawBsonRef::Array(a) => a,
                    _ => {
                        return Err(CommandError::bad_value(
                            "malformed mod, needs to be an array",
                        ))
                    }
                };
                let nums: Vec<i64> = arr
                    .into_iter()
                    .filter_map(|e| e.ok())
                    .filter_map(|e| as_i64(&e))
                    .collect();
                if nums.len() != 2 || nums[0] == 0 {
                    return Err(CommandError::bad_value(
                        "malformed mod, not enough elements",
                    ));
                }
                Pred::Mod(nums[0], nums[1])
            }
            "$comment" => continue,
            other => {
                return Err(CommandError::bad_value(format!(
                    "unknown operator: {other}"
                )))
            }
        };
        preds.push(pred);
    }
    if let Some((pattern, mut opts)) = regex_pattern {
        if let Some(o) = regex_options {
            opts = o.to_string();
        }
        preds.push(Pred::Regex(build_regex(&pattern, &opts)?));
    } else if regex_options.is_some() {
        return Err(CommandError::bad_value("$options needs a $regex"));
    }
    Ok(if preds.len() == 1 {
        preds.pop().unwrap_or(Pred::AllOf(Vec::new()))
    } else {
        Pred::AllOf(preds)
    })
}

fn starts_with_logical(d: &RawDocument) -> bool {
    matches!(d.iter().next(), Some(Ok((k, _))) if matches!(k, "$and" | "$or" | "$nor"))
}

fn parse_in_list(arr: &RawArray) -> CmdResult<(Vec<RawBson>, Vec<regex::Regex>)> {
    let mut vals = Vec::new();
    let mut regexes = Vec::new();
    for e in arr.into_iter() {
        match e.map_err(bad_bson)? {
            RawBsonRef::RegularExpression(r) => regexes.push(build_regex(r.pattern, r.options)?),
            RawBsonRef::Document(d) if is_operator_doc(d) => {
                return Err(CommandError::bad_value("cannot nest $ under $in"))
            }
            other => vals.push(other.to_raw_bson()),
        }
    }
    Ok((vals, regexes))
}

fn truthy(v: &RawBsonRef<'_>) -> bool {
    match v {
        RawBsonRef::Boolean(b) => *b,
        RawBsonRef::Int32(i) => *i != 0,
        RawBsonRef::Int64(i) => *i != 0,
        RawBsonRef::Double(d) => *d != 0.0,
        RawBsonRef::Null | RawBsonRef::Undefined => false,
        _ => true,
    }
}

pub fn as_i64(v: &RawBsonRef<'_>) -> Option<i64> {
    match v {
        RawBsonRef::Int32(i) => Some(i64::from(*i)),
        RawBsonRef::Int64(i) => Some(*i),
        RawBsonRef::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// BSON type numbers accepted by `$type` (aliases as in mongod's `findBSONTypeAlias`).
fn parse_type(v: RawBsonRef<'_>) -> CmdResult<Pred> {
    fn one(v: &RawBsonRef<'_>, out: &mut Vec<u8>, number: &mut bool) -> CmdResult<()> {
        if let Some(n) = as_i64(v) {
            let t = match n {
                -1 => 0xFF,
                127 => 0x7F,
                1..=19 => n as u8,
                _ => {
                    return Err(CommandError::bad_value(format!(
                        "Invalid numerical type code: {n}"
                    )))
                }
            };
            out.push(t);
            return Ok(());
        }
        let s = match v {
            RawBsonRef::String(s) => *s,
            _ => {
                return Err(CommandError::type_mismatch(
                    "type must be represented as a number or a string",
                ))
            }
        };
        let t = match s {
            "double" => 1,
            "string" => 2,
            "object" => 3,
            "array" => 4,
            "binData" => 5,
            "undefined" => 6,
            "objectId" => 7,
            "bool" => 8,
            "date" => 9,
            "null" => 10,
            "regex" => 11,
            "dbPointer" => 12,
            "javascript" => 13,
            "symbol" => 14,
            "javascriptWithScope" => 15,
            "int" => 16,
            "timestamp" => 17,
            "long" => 18,
            "decimal" => 19,
            "minKey" => 0xFF,
            "maxKey" => 0x7F,
            "number" => {
                *number = true;
                return Ok(());
            }
            other => {
                return Err(CommandError::bad_value(format!(
                    "Unknown type name alias: {other}"
                )))
            }
        };
        out.push(t);
        Ok(())
    }
    let mut types = Vec::new();
    let mut number = false;
    match v {
        RawBsonRef::Array(a) => {
            for e in a.into_iter() {
                one(&e.map_err(bad_bson)?, &mut types, &mut number)?;
            }
        }
        other => one(&other, &mut types, &mut number)?,
    }
    Ok(Pred::Type(types, number))
}

pub fn build_regex(pattern: &str, options: &str) -> CmdResult<regex::Regex> {
    let mut b = regex::RegexBuilder::new(pattern);
    for c in options.chars() {
        match c {
            'i' => {
                b.case_insensitive(true);
            }
            'm' => {
                b.multi_line(true);
            }
            's' => {
                b.dot_matches_new_line(true);
            }
            'x' => {
                b.ignore_whitespace(true);
            }
            'u' => {}
            other => {
                return Err(CommandError::bad_value(format!(
                    "invalid flag in regex options: {other}"
                )))
            }
        }
    }
    // PCRE features the `regex` crate lacks (look-around, back-references) fail here: an error,
    // not a different match.
    b.build()
        .map_err(|e| CommandError::new(51091, format!("Regular expression is invalid: {e}")))
}

/// One value found while walking a path.
#[derive(Debug, Clone, Copy)]
pub enum Cand<'a> {
    Missing,
    /// A value; `true` when it is an element of an array reached at the end of the path.
    Value(RawBsonRef<'a>, bool),
}

/// Calls `f` for every value at `path` (mongod's implicit array traversal), stopping at the first
/// `true`.
pub fn visit_path<'a>(
    doc: &'a RawDocument,
    path: &[String],
    f: &mut dyn FnMut(Cand<'a>) -> bool,
) -> bool {
    let v = doc.get(&path[0]).ok().flatten();
    visit_value(v, &path[1..], f)
}

fn visit_value<'a>(
    v: Option<RawBsonRef<'a>>,
    rest: &[String],
    f: &mut dyn FnMut(Cand<'a>) -> bool,
) -> bool {
    match v {
        None => f(Cand::Missing),
        Some(val) if rest.is_empty() => {
            if let RawBsonRef::Array(arr) = val {
                for e in arr.into_iter().flatten() {
                    if f(Cand::Value(e, true)) {
                        return true;
                    }
                }
            }
            f(Cand::Value(val, false))
        }
        Some(RawBsonRef::Document(d)) => visit_path(d, rest, f),
        Some(RawBsonRef::Array(arr)) => {
            let comp = &rest[0];
            if !comp.is_empty() && comp.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(idx) = comp.parse::<usize>() {
                    if let Ok(Some(e)) = arr.get(idx) {
                        if visit_value(Some(e), &rest[1..], f) {
                            return true;
                        }
                    }
                }
            }
            for e in arr.into_iter().flatten() {
                if let RawBsonRef::Document(d) = e {
                    if visit_path(d, rest, f) {
                        return true;
                    }
                }
            }
            false
        }
        Some(_) => f(Cand::Missing),
    }
}

impl Pred {
    fn matches_path(&self, doc: &RawDocument, path: &[String]) -> bool {
        match self {
            Pred::Not(inner) => !inner.matches_path(doc, path),
            Pred::AllOf(ps) => ps.iter().all(|p| p.matches_path(doc, path)),
            _ => visit_path(doc, path, &mut |c| self.matches_cand(c)),
        }
    }

    /// Whether one candidate value satisfies this (positive) predicate.
    fn matches_cand(&self, c: Cand<'_>) -> bool {
        match self {
            Pred::Cmp(op, rhs) => cmp_matches(*op, c, &rhs.as_raw_bson_ref()),
            Pred::In(vals, regexes) => {
                vals.iter()
                    .any(|v| cmp_matches(CmpOp::Eq, c, &v.as_raw_bson_ref()))
                    || matches!(c, Cand::Value(RawBsonRef::String(s), _) if regexes.iter().any(|r| r.is_match(s)))
            }
            Pred::Exists => matches!(c, Cand::Value(_, _)),
            Pred::Type(types, number) => match c {
                Cand::Value(v, _) => {
                    (*number && crate::ordering::is_number(&v))
                        || types.contains(&(v.element_type() as u8))
                }
                Cand::Missing => false,
            },
            Pred::Size(n) => {
                matches!(c, Cand::Value(RawBsonRef::Array(a), false) if a.into_iter().count() as i64 == *n)
            }
            Pred::All(vals) => {
                if vals.is_empty() {
                    return false;
                }
                match c {
                    Cand::Value(RawBsonRef::Array(a), false) => vals.iter().all(|v| {
                        let v = v.as_raw_bson_ref();
                        a.into_iter().flatten().any(|e| {
                            compare(&e, &v) == Ordering::Equal && type_class(&e) == type_class(&v)
                        }) || compare(&RawBsonRef::Array(a), &v) == Ordering::Equal
                    }),
                    Cand::Value(v, false) => vals.iter().all(|x| {
                        let x = x.as_raw_bson_ref();
                        type_class(&v) == type_class(&x) && compare(&v, &x) == Ordering::Equal
                    }),
                    _ => false,
                }
            }
            Pred::ElemMatchValue(preds) => match c {
                Cand::Value(RawBsonRef::Array(a), false) => a
                    .into_iter()
                    .flatten()
                    .any(|e| preds.iter().all(|p| p.matches_single(e))),
                _ => false,
            },
            Pred::ElemMatchDoc(expr) => match c {
                Cand::Value(RawBsonRef::Array(a), false) => a
                    .into_iter()
                    .flatten()
                    .any(|e| matches!(e, RawBsonRef::Document(d) if expr.matches(d))),
                _ => false,
            },
            Pred::Regex(r) => match c {
                Cand::Value(RawBsonRef::String(s) | RawBsonRef::Symbol(s), _) => r.is_match(s),
                Cand::Value(RawBsonRef::RegularExpression(q), _) => r.as_str() == q.pattern,
                _ => false,
            },
            Pred::Mod(d, rem) => match c {
                Cand::Value(v, _) => match v {
                    RawBsonRef::Int32(_) | RawBsonRef::Int64(_) | RawBsonRef::Double(_) => {
                        let x = match v {
                            RawBsonRef::Double(f) if f.is_finite() => f.trunc() as i64,
                            RawBsonRef::Double(_) => return false,
                            other => as_i64(&other).unwrap_or(0),
                        };
                        x.wrapping_rem(*d) == *rem
                    }
                    _ => false,
                },
                Cand::Missing => false,
            },
            Pred::AllOf(ps) => ps.iter().all(|p| p.matches_cand(c)),
            Pred::Not(inner) => !inner.matches_cand(c),
        }
    }

    /// `$elemMatch` on values: the predicate applies to the element itself (no traversal).
    fn matches_single(&self, v: RawBsonRef<'_>) -> bool {
        match self {
            Pred::Not(inner) => !inner.matches_single(v),
            Pred::AllOf(ps) => ps.iter().all(|p| p.matches_single(v)),
            _ => self.matches_cand(Cand::Value(v, false)),
        }
    }
}

/// `ComparisonMatchExpressionBase::matchesSingleElement`, plus the rule that `{a: null}` matches
/// a missing `a`.
fn cmp_matches(op: CmpOp, c: Cand<'_>, rhs: &RawBsonRef<'_>) -> bool {
    let lhs = match c {
        Cand::Missing => {
            // A missing field compares as null for equality-with-null semantics only.
            return matches!(rhs, RawBsonRef::Null)
                && matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
        }
        Cand::Value(v, _) => v,
    };
    let (tl, tr) = (type_class(&lhs), type_class(rhs));
    if tl != tr {
        // Null and Undefined are equal for matching.
        if (tl == 1 && tr == 2) || (tl == 2 && tr == 1) {
            return matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
        }
        return match rhs {
            RawBsonRef::MaxKey => matches!(op, CmpOp::Lt | CmpOp::Lte),
            RawBsonRef::MinKey => matches!(op, CmpOp::Gt | CmpOp::Gte),
            _ => false,
        };
    }
    if tl == 3 {
        let (ln, rn) = (is_nan(&lhs), is_nan(rhs));
        if ln || rn {
            let both = ln && rn;
            return match op {
                CmpOp::Lt | CmpOp::Gt => false,
                _ => both,
            };
        }
    }
    let ord = compare(&lhs, rhs);
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Lte => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Gte => ord != Ordering::Less,
    }
}

fn is_nan(v: &RawBsonRef<'_>) -> bool {
    match v {
        RawBsonRef::Double(d) => d.is_nan(),
        RawBsonRef::Decimal128(d) => {
            let b = u128::from_le_bytes(d.bytes());
            (b >> 122) & 0x1f == 0x1f
        }
        _ => false,
    }
}

/// The sort key of a document for one sort path: the smallest (ascending) or largest
/// (descending) value found, arrays contributing their elements; missing is null (mongod's
/// `SortKeyGenerator`).
pub fn sort_key<'a>(doc: &'a RawDocument, path: &[String], ascending: bool) -> RawBsonRef<'a> {
    let mut best: Option<RawBsonRef<'a>> = None;
    let mut saw_empty_array = false;
    visit_path(doc, path, &mut |c| {
        let v = match c {
            Cand::Missing => RawBsonRef::Null,
            Cand::Value(RawBsonRef::Array(a), false) => {
                if a.into_iter().next().is_none() {
                    saw_empty_array = true;
                }
                return false;
            }
            Cand::Value(v, _) => v,
        };
        best = Some(match best {
            None => v,
            Some(b) => {
                let ord = compare(&v, &b);
                if (ascending && ord == Ordering::Less) || (!ascending && ord == Ordering::Greater)
                {
                    v
                } else {
                    b
                }
            }
        });
        false
    });
    match best {
        Some(v) => v,
        // An empty array sorts before null (as undefined).
        None if saw_empty_array => RawBsonRef::Undefined,
        None => RawBsonRef::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn m(filter: bson::RawDocumentBuf, doc: bson::RawDocumentBuf) -> bool {
        Expr::parse(&filter).expect("parse").matches(&doc)
    }

    #[test]
    fn type_bracketing() {
        assert!(m(rawdoc! {"a": {"$gt": 1}}, rawdoc! {"a": 2.5}));
        assert!(!m(rawdoc! {"a": {"$gt": 1}}, rawdoc! {"a": "zzz"}));
        assert!(!m(rawdoc! {"a": {"$lt": "a"}}, rawdoc! {"a": 1}));
        assert!(m(
            rawdoc! {"a": {"$gt": bson::RawBson::MinKey}},
            rawdoc! {"a": "x"}
        ));
    }

    #[test]
    fn arrays_and_paths() {
        assert!(m(rawdoc! {"a": 5}, rawdoc! {"a": [1, 5]}));
        assert!(m(rawdoc! {"a": [1, 5]}, rawdoc! {"a": [1, 5]}));
        assert!(m(rawdoc! {"a.b": 2}, rawdoc! {"a": [{"b": 1}, {"b": 2}]}));
        assert!(m(rawdoc! {"a.1": 5}, rawdoc! {"a": [1, 5]}));
        assert!(!m(rawdoc! {"a": {"$ne": 5}}, rawdoc! {"a": [1, 5]}));
        assert!(m(rawdoc! {"a": null}, rawdoc! {"b": 1}));
        assert!(m(rawdoc! {"a": {"$exists": false}}, rawdoc! {"b": 1}));
        assert!(m(rawdoc! {"a": {"$in": [3, 5]}}, rawdoc! {"a": [5]}));
        assert!(m(rawdoc! {"a": {"$nin": [3]}}, rawdoc! {}));
        assert!(m(rawdoc! {"$or": [{"a": 1}, {"b": 2}]}, rawdoc! {"b": 2}));
        assert!(m(
            rawdoc! {"a": {"$elemMatch": {"$gt": 2, "$lt": 4}}},
            rawdoc! {"a": [1, 3]}
        ));
        assert!(!m(
            rawdoc! {"a": {"$elemMatch": {"$gt": 2, "$lt": 3}}},
            rawdoc! {"a": [1, 3]}
        ));
        assert!(m(rawdoc! {"a": {"$size": 2}}, rawdoc! {"a": [1, 3]}));
        assert!(m(
            rawdoc! {"a": {"$regex": "^ab", "$options": "i"}},
            rawdoc! {"a": "ABc"}
        ));
        assert!(m(rawdoc! {"a": {"$type": "number"}}, rawdoc! {"a": 1i64}));
        assert!(m(rawdoc! {"a": {"$not": {"$gt": 3}}}, rawdoc! {"a": 1}));
    }

    #[test]
    fn unknown_operators_are_errors() {
        assert!(Expr::parse(&rawdoc! {"a": {"$foo": 1}}).is_err());
        assert!(Expr::parse(&rawdoc! {"$foo": 1}).is_err());
    }
}
