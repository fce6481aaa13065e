//! Aggregation expressions, the subset the simulator evaluates: field paths (`"$a.b"`, traversing
//! arrays as mongod does), the variables `$$ROOT`, `$$CURRENT` and `$$REMOVE`, `{$literal: v}`,
//! constants, and objects and arrays of those (`Expression::parseOperand` and
//! `ExpressionFieldPath` in mongod's `src/mongo/db/pipeline/expression.cpp`). Any other operator
//! mongod knows is refused with NotImplemented (238); an operator mongod does not know is
//! InvalidPipelineOperator (168) "Unrecognized expression".
//!
//! Used by `$project` computed fields, `$addFields`/`$set`, `$replaceRoot`/`$replaceWith`
//! (also after `$changeStream`), `$group` keys and pipeline-style updates.

use bson::{Bson, Document};

use crate::error::{codes, CmdResult, CommandError};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    /// `"$a.b"` or `"$$ROOT.a.b"`: the components after the root.
    Path(Vec<String>),
    /// `$$REMOVE`: the field is left out.
    Remove,
    /// A constant.
    Literal(Bson),
    /// An object of expressions (evaluated field by field; missing values are left out).
    Object(Vec<(String, Expression)>),
    /// An array of expressions (missing values become null).
    Array(Vec<Expression>),
}

/// Expression operators of mongod 7.0 (`REGISTER_EXPRESSION` in `expression.cpp` and friends):
/// known, so refused as not implemented rather than as unknown.
const KNOWN_OPERATORS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "add",
    "allElementsTrue",
    "and",
    "anyElementTrue",
    "arrayElemAt",
    "arrayToObject",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "binarySize",
    "bitAnd",
    "bitNot",
    "bitOr",
    "bitXor",
    "bsonSize",
    "ceil",
    "cmp",
    "concat",
    "concatArrays",
    "cond",
    "convert",
    "cos",
    "cosh",
    "dateAdd",
    "dateDiff",
    "dateFromParts",
    "dateFromString",
    "dateSubtract",
    "dateToParts",
    "dateToString",
    "dateTrunc",
    "dayOfMonth",
    "dayOfWeek",
    "dayOfYear",
    "degreesToRadians",
    "divide",
    "eq",
    "exp",
    "filter",
    "first",
    "firstN",
    "floor",
    "function",
    "getField",
    "gt",
    "gte",
    "hour",
    "ifNull",
    "in",
    "indexOfArray",
    "indexOfBytes",
    "indexOfCP",
    "isArray",
    "isNumber",
    "isoDayOfWeek",
    "isoWeek",
    "isoWeekYear",
    "last",
    "lastN",
    "let",
    "literal",
    "ln",
    "log",
    "log10",
    "lt",
    "lte",
    "ltrim",
    "map",
    "max",
    "maxN",
    "median",
    "mergeObjects",
    "meta",
    "millisecond",
    "min",
    "minN",
    "minute",
    "mod",
    "month",
    "multiply",
    "ne",
    "not",
    "objectToArray",
    "or",
    "percentile",
    "pow",
    "radiansToDegrees",
    "rand",
    "range",
    "reduce",
    "regexFind",
    "regexFindAll",
    "regexMatch",
    "replaceAll",
    "replaceOne",
    "reverseArray",
    "round",
    "rtrim",
    "sampleRate",
    "second",
    "setDifference",
    "setEquals",
    "setField",
    "setIntersection",
    "setIsSubset",
    "setUnion",
    "sin",
    "sinh",
    "size",
    "slice",
    "sortArray",
    "split",
    "sqrt",
    "stdDevPop",
    "stdDevSamp",
    "strLenBytes",
    "strLenCP",
    "strcasecmp",
    "substr",
    "substrBytes",
    "substrCP",
    "subtract",
    "sum",
    "switch",
    "tan",
    "tanh",
    "toBool",
    "toDate",
    "toDecimal",
    "toDouble",
    "toHashedIndexKey",
    "toInt",
    "toLong",
    "toLower",
    "toObjectId",
    "toString",
    "toUpper",
    "trim",
    "trunc",
    "tsIncrement",
    "tsSecond",
    "type",
    "unsetField",
    "week",
    "year",
    "zip",
];

impl Expression {
    /// Parses an operand: a string starting with `$` is a field path or a variable, an object
    /// whose only field starts with `$` an operator, another object or array is evaluated
    /// element by element, anything else is a constant.
    pub fn parse(v: &Bson) -> CmdResult<Expression> {
        match v {
            Bson::String(s) if s.starts_with("$$") => {
                let (var, rest) = s[2..].split_once('.').unwrap_or((&s[2..], ""));
                match var {
                    "ROOT" | "CURRENT" => Ok(Expression::Path(split_path(rest))),
                    "REMOVE" if rest.is_empty() => Ok(Expression::Remove),
                    _ => Err(CommandError::not_implemented(format!(
                        "the variable $${var}"
                    ))),
                }
            }
            Bson::String(s) if s.starts_with('$') => {
                if s.len() == 1 {
                    return Err(CommandError::new(
                        16872,
                        "'$' by itself is not a valid FieldPath",
                    ));
                }
                Ok(Expression::Path(split_path(&s[1..])))
            }
            Bson::Document(d) => {
                if let Some(op) = d.keys().next().filter(|k| k.starts_with('$')) {
                    if d.len() > 1 {
                        return Err(CommandError::new(
                            15983,
                            format!(
                                "An object representing an expression must have exactly one \
                                 field: {d}"
                            ),
                        ));
                    }
                    return Self::operator(op, &d[op]);
                }
                let mut fields = Vec::with_capacity(d.len());
                for (k, x) in d {
                    fields.push((k.clone(), Expression::parse(x)?));
                }
                Ok(Expression::Object(fields))
            }
            Bson::Array(a) => Ok(Expression::Array(
                a.iter().map(Expression::parse).collect::<CmdResult<_>>()?,
            )),
            other => Ok(Expression::Literal(other.clone())),
        }
    }

    fn operator(op: &str, arg: &Bson) -> CmdResult<Expression> {
        match &op[1..] {
            "literal" => Ok(Expression::Literal(arg.clone())),
            name if KNOWN_OPERATORS.contains(&name) => Err(CommandError::not_implemented(format!(
                "the {op} expression"
            ))),
            _ => Err(CommandError::new(
                codes::INVALID_PIPELINE_OPERATOR,
                format!("Unrecognized expression '{op}'"),
            )),
        }
    }

    /// The value for `doc`; `None` when missing (or `$$REMOVE`).
    pub fn evaluate(&self, doc: &Document) -> Option<Bson> {
        match self {
            Expression::Path(parts) if parts.is_empty() => Some(Bson::Document(doc.clone())),
            Expression::Path(parts) => {
                let first = doc.get(&parts[0])?;
                traverse(first, &parts[1..])
            }
            Expression::Remove => None,
            Expression::Literal(v) => Some(v.clone()),
            Expression::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = e.evaluate(doc) {
                        out.insert(k.clone(), v);
                    }
                }
                Some(Bson::Document(out))
            }
            Expression::Array(items) => Some(Bson::Array(
                items
                    .iter()
                    .map(|e| e.evaluate(doc).unwrap_or(Bson::Null))
                    .collect(),
            )),
        }
    }
}

fn split_path(p: &str) -> Vec<String> {
    if p.is_empty() {
        Vec::new()
    } else {
        p.split('.').map(str::to_owned).collect()
    }
}

/// `ExpressionFieldPath` over arrays: a path through an array applies to each element, and the
/// values found (missing ones left out) form an array.
fn traverse(v: &Bson, rest: &[String]) -> Option<Bson> {
    let Some(part) = rest.first() else {
        return Some(v.clone());
    };
    match v {
        Bson::Document(d) => traverse(d.get(part)?, &rest[1..]),
        Bson::Array(a) => Some(Bson::Array(
            a.iter().filter_map(|e| traverse(e, rest)).collect(),
        )),
        _ => None,
    }
}

/// Parses and evaluates `v` against `doc` (for one-off evaluations).
pub fn evaluate(doc: &Document, v: &Bson) -> CmdResult<Option<Bson>> {
    Ok(Expression::parse(v)?.evaluate(doc))
}

/// Sets `value` at the dotted `path` of `doc`, creating documents on the way and replacing what
/// is there (a field path through an array is not set, as in `$addFields`' "cannot create field"
/// cases, which the simulator refuses).
pub fn set_path(doc: &mut Document, path: &[String], value: Bson) -> CmdResult<()> {
    let (first, rest) = path
        .split_first()
        .ok_or_else(|| CommandError::bad_value("an empty field path"))?;
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return Ok(());
    }
    match doc.get_mut(first) {
        Some(Bson::Document(sub)) => set_path(sub, rest, value),
        Some(Bson::Array(_)) => Err(CommandError::not_implemented(format!(
            "setting the field '{}' through the array '{first}'",
            rest.join(".")
        ))),
        _ => {
            let mut sub = Document::new();
            set_path(&mut sub, rest, value)?;
            doc.insert(first.clone(), sub);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn paths_literals_objects_and_refusals() {
        let d = doc! {"a": {"b": 1}, "xs": [{"v": 1}, {"w": 2}, {"v": 3}]};
        let ev = |v: Bson| evaluate(&d, &v).unwrap();
        assert_eq!(ev(Bson::String("$a.b".into())), Some(Bson::Int32(1)));
        assert_eq!(ev(Bson::String("$xs.v".into())), Some(bson::bson!([1, 3])));
        assert_eq!(ev(Bson::String("$nope".into())), None);
        assert_eq!(
            ev(Bson::String("$$ROOT.a".into())),
            Some(bson::bson!({"b": 1}))
        );
        assert_eq!(
            ev(Bson::String("plain".into())),
            Some(Bson::String("plain".into()))
        );
        assert_eq!(
            ev(bson::bson!({"$literal": "$a"})),
            Some(Bson::String("$a".into()))
        );
        assert_eq!(
            ev(bson::bson!({"k": "$a.b", "m": "$nope", "l": ["$a.b", "$nope"]})),
            Some(bson::bson!({"k": 1, "l": [1, null]}))
        );
        assert_eq!(
            evaluate(&d, &bson::bson!({"$concat": ["a"]}))
                .unwrap_err()
                .code,
            238
        );
        assert_eq!(
            evaluate(&d, &bson::bson!({"$nosuch": 1})).unwrap_err().code,
            168
        );
    }
}
