//! A small predicate language for the `filter` transform, evaluated with Arrow kernels.
//!
//! Grammar (case-insensitive keywords):
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | compare
//! compare := column ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") literal
//!          | column "is" ["not"] "null"
//!          | column ["not"] "in" "(" literal ("," literal)* ")"
//! column  := identifier | `quoted name` | "quoted name"
//! literal := 'text' | number | true | false
//! ```
//!
//! SQL semantics: comparisons with null are null, and a row whose predicate is null or false is not
//! kept. A column missing from a batch is all null. Literals are cast to the column's type.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Datum, RecordBatch, Scalar, StringArray};
use arrow::compute::kernels::boolean::{and_kleene, not, or_kleene};
use arrow::compute::kernels::cmp;
use arrow::compute::{cast, is_not_null, is_null};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

/// A parse error, with the byte offset in the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("in predicate at offset {offset}: {message}")]
pub struct PredicateError {
    /// Where, in bytes from the start.
    pub offset: usize,
    /// What.
    pub message: String,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `'text'`
    Text(String),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// `true` / `false`
    Bool(bool),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`, `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    /// `a and b`
    And(Box<Predicate>, Box<Predicate>),
    /// `a or b`
    Or(Box<Predicate>, Box<Predicate>),
    /// `not a`
    Not(Box<Predicate>),
    /// `col op literal`
    Compare(String, CmpOp, Literal),
    /// `col is null` (`negated`: `is not null`)
    IsNull(String, bool),
    /// `col in (...)` (`negated`: `not in`)
    In(String, Vec<Literal>, bool),
}

impl std::str::FromStr for Predicate {
    type Err = PredicateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            len: text.len(),
        };
        let expr = p.or()?;
        match p.peek() {
            None => Ok(expr),
            Some((offset, t)) => Err(PredicateError {
                offset,
                message: format!("unexpected {t:?}"),
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Lit(Literal),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, PredicateError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let err = |offset, message: &str| PredicateError {
        offset,
        message: message.to_owned(),
    };
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((at, Token::LParen));
                i += 1;
            }
            ')' => {
                out.push((at, Token::RParen));
                i += 1;
            }
            ',' => {
                out.push((at, Token::Comma));
                i += 1;
            }
            '\'' | '"' | '`' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(at, "unterminated quote")),
                        Some((_, q)) if *q == c => {
                            // A doubled quote is a literal quote.
                            if chars.get(i + 1).map(|x| x.1) == Some(c) {
                                s.push(c);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((
                    at,
                    if c == '\'' {
                        Token::Lit(Literal::Text(s))
                    } else {
                        Token::Ident(s)
                    },
                ));
            }
            '=' => {
                out.push((at, Token::Op("=")));
                i += 1;
            }
            '!' | '<' | '>' => {
                let next = chars.get(i + 1).map(|x| x.1);
                let op = match (c, next) {
                    ('!', Some('=')) => "!=",
                    ('<', Some('=')) => "<=",
                    ('<', Some('>')) => "!=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    _ => return Err(err(at, "expected `!=`")),
                };
                i += if op.len() == 2 || (c == '<' && next == Some('>')) {
                    2
                } else {
                    1
                };
                out.push((at, Token::Op(op)));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].1.is_ascii_alphanumeric()
                        || chars[i].1 == '.'
                        || ((chars[i].1 == '-' || chars[i].1 == '+')
                            && matches!(chars[i - 1].1, 'e' | 'E')))
                {
                    i += 1;
                }
                let end = chars.get(i).map_or(text.len(), |x| x.0);
                let word = &text[chars[start].0..end];
                let lit = if let Ok(v) = word.parse::<i64>() {
                    Literal::Int(v)
                } else if let Ok(v) = word.parse::<f64>() {
                    Literal::Float(v)
                } else {
                    return Err(err(at, &format!("`{word}` is not a number")));
                };
                out.push((at, Token::Lit(lit)));
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_alphanumeric() || matches!(chars[i].1, '_' | '$' | '.'))
                {
                    i += 1;
                }
                let end = chars.get(i).map_or(text.len(), |x| x.0);
                let word = &text[chars[start].0..end];
                let token = match word.to_ascii_lowercase().as_str() {
                    "true" => Token::Lit(Literal::Bool(true)),
                    "false" => Token::Lit(Literal::Bool(false)),
                    _ => Token::Ident(word.to_owned()),
                };
                out.push((at, token));
            }
            other => return Err(err(at, &format!("unexpected character `{other}`"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, Token)> {
        self.tokens.get(self.pos).cloned()
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.len, |t| t.0)
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.tokens.get(self.pos) {
            Some((_, Token::Ident(w))) if w.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), PredicateError> {
        match self.tokens.get(self.pos) {
            Some((_, t)) if *t == token => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(PredicateError {
                offset: self.offset(),
                message: format!("expected {what}"),
            }),
        }
    }

    fn or(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Predicate::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Predicate::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Predicate, PredicateError> {
        if self.keyword("not") {
            return Ok(Predicate::Not(Box::new(self.unary()?)));
        }
        if matches!(self.peek(), Some((_, Token::LParen))) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Token::RParen, "`)`")?;
            return Ok(inner);
        }
        self.compare()
    }

    fn literal(&mut self) -> Result<Literal, PredicateError> {
        match self.peek() {
            Some((_, Token::Lit(l))) => {
                self.pos += 1;
                Ok(l)
            }
            _ => Err(PredicateError {
                offset: self.offset(),
                message: "expected a literal ('text', a number, true or false)".into(),
            }),
        }
    }

    fn compare(&mut self) -> Result<Predicate, PredicateError> {
        let column = match self.peek() {
            Some((_, Token::Ident(name))) => {
                self.pos += 1;
                name
            }
            _ => {
                return Err(PredicateError {
                    offset: self.offset(),
                    message: "expected a column name".into(),
                })
            }
        };
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("null") {
                return Err(PredicateError {
                    offset: self.offset(),
                    message: "expected `null`".into(),
                });
            }
            return Ok(Predicate::IsNull(column, negated));
        }
        let negated = self.keyword("not");
        if self.keyword("in") {
            self.expect(Token::LParen, "`(`")?;
            let mut items = vec![self.literal()?];
            while matches!(self.peek(), Some((_, Token::Comma))) {
                self.pos += 1;
                items.push(self.literal()?);
            }
            self.expect(Token::RParen, "`)`")?;
            return Ok(Predicate::In(column, items, negated));
        }
        if negated {
            return Err(PredicateError {
                offset: self.offset(),
                message: "expected `in` after `not`".into(),
            });
        }
        let op = match self.peek() {
            Some((_, Token::Op(op))) => {
                self.pos += 1;
                match op {
                    "=" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                }
            }
            _ => {
                return Err(PredicateError {
                    offset: self.offset(),
                    message: "expected a comparison (=, !=, <, <=, >, >=), `is`, or `in`".into(),
                })
            }
        };
        Ok(Predicate::Compare(column, op, self.literal()?))
    }
}

impl Predicate {
    /// Evaluates over `rows`: true, false or null per row.
    pub fn evaluate(&self, rows: &RecordBatch) -> Result<BooleanArray, ArrowError> {
        let n = rows.num_rows();
        match self {
            Predicate::And(a, b) => and_kleene(&a.evaluate(rows)?, &b.evaluate(rows)?),
            Predicate::Or(a, b) => or_kleene(&a.evaluate(rows)?, &b.evaluate(rows)?),
            Predicate::Not(a) => not(&a.evaluate(rows)?),
            Predicate::IsNull(col, negated) => match rows.column_by_name(col) {
                Some(c) if *negated => is_not_null(c),
                Some(c) => is_null(c),
                None => Ok(BooleanArray::from(vec![!*negated; n])),
            },
            Predicate::Compare(col, op, lit) => match rows.column_by_name(col) {
                None => Ok(BooleanArray::new_null(n)),
                Some(c) => compare(c, *op, lit),
            },
            Predicate::In(col, items, negated) => {
                let Some(c) = rows.column_by_name(col) else {
                    return Ok(BooleanArray::new_null(n));
                };
                let mut acc = BooleanArray::from(vec![false; n]);
                for item in items {
                    acc = or_kleene(&acc, &compare(c, CmpOp::Eq, item)?)?;
                }
                if *negated {
                    not(&acc)
                } else {
                    Ok(acc)
                }
            }
        }
    }
}

fn compare(column: &ArrayRef, op: CmpOp, literal: &Literal) -> Result<BooleanArray, ArrowError> {
    // `n < 5.5` on an integer column compares as numbers; casting 5.5 to an integer would not.
    let widened;
    let column = if matches!(literal, Literal::Float(_)) && column.data_type().is_integer() {
        widened = cast(column, &DataType::Float64)?;
        &widened
    } else {
        column
    };
    let scalar = literal_as(column.data_type(), literal)?;
    let scalar = Scalar::new(scalar);
    let lhs: &dyn Datum = column;
    match op {
        CmpOp::Eq => cmp::eq(lhs, &scalar),
        CmpOp::Ne => cmp::neq(lhs, &scalar),
        CmpOp::Lt => cmp::lt(lhs, &scalar),
        CmpOp::Le => cmp::lt_eq(lhs, &scalar),
        CmpOp::Gt => cmp::gt(lhs, &scalar),
        CmpOp::Ge => cmp::gt_eq(lhs, &scalar),
    }
}

/// The literal as a one-element array of `target`'s type.
fn literal_as(target: &DataType, literal: &Literal) -> Result<ArrayRef, ArrowError> {
    let source: ArrayRef = match literal {
        Literal::Text(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Int(v) => Arc::new(arrow::array::Int64Array::from(vec![*v])),
        Literal::Float(v) => Arc::new(arrow::array::Float64Array::from(vec![*v])),
        Literal::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
    };
    let cast_to = cast(&source, target)?;
    if cast_to.null_count() > 0 {
        return Err(ArrowError::CastError(format!(
            "{literal:?} cannot be compared with a {target} column"
        )));
    }
    Ok(cast_to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn rows() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(1), Some(5), None, Some(10)])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    Some("it's"),
                    None,
                ])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn eval(expr: &str) -> Vec<Option<bool>> {
        let p: Predicate = expr.parse().unwrap();
        p.evaluate(&rows()).unwrap().iter().collect()
    }

    #[test]
    fn comparisons_follow_sql_null_semantics() {
        assert_eq!(
            eval("n > 2"),
            vec![Some(false), Some(true), None, Some(true)]
        );
        assert_eq!(
            // Kleene logic: null and false is false; true and null is null.
            eval("n >= 5 and s = 'b'"),
            vec![Some(false), Some(true), Some(false), None]
        );
        assert_eq!(
            eval("n = 1 or s is null"),
            vec![Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            eval("not (n <> 10)"),
            vec![Some(false), Some(false), None, Some(true)]
        );
        assert_eq!(
            eval("s in ('a', 'it''s')"),
            vec![Some(true), Some(false), Some(true), None]
        );
        assert_eq!(
            eval("n not in (1, 10)"),
            vec![Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(eval("missing = 3"), vec![None, None, None, None]);
        assert_eq!(eval("missing IS NULL"), vec![Some(true); 4]);
        assert_eq!(
            eval("`n` < 5.5"),
            vec![Some(true), Some(true), None, Some(false)]
        );
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let e = "n >".parse::<Predicate>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "in predicate at offset 3: expected a literal ('text', a number, true or false)"
        );
        let e = "n = 1 extra".parse::<Predicate>().unwrap_err();
        assert_eq!(e.offset, 6);
        let e = "s = 'open".parse::<Predicate>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "in predicate at offset 4: unterminated quote"
        );
    }

    #[test]
    fn incompatible_literals_are_errors_not_silent_mismatches() {
        let p: Predicate = "n = 'abc'".parse().unwrap();
        assert!(p.evaluate(&rows()).is_err());
    }
}
