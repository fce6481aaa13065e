//! Positions in a configuration file: from byte offsets to line, column and a caret snippet.

use std::ops::Range;

/// A 1-based line and column (in characters) in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// The line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> LineCol {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    LineCol {
        line,
        column: text[line_start..offset].chars().count() + 1,
    }
}

/// The line holding `span.start`, with carets under the span, for error messages.
pub fn snippet(text: &str, span: &Range<usize>) -> String {
    snippet_redacted(text, span, &[])
}

/// A part of the text shown as something else (a secret value as `"***"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The bytes replaced.
    pub span: Range<usize>,
    /// What is shown instead.
    pub shown: String,
}

/// [`snippet`], with `replacements` shown instead of the text they cover; the carets stay under
/// the span as shown (a span inside a replacement is underlined as the whole replacement).
///
/// ```
/// use mirror_core::config::location::{snippet_redacted, Replacement};
/// let text = "auth = { secret = \"hunter2\", extra = 1 }";
/// let extra = text.find("extra").unwrap();
/// let shown = snippet_redacted(text, &(extra..extra + 5), &[Replacement {
///     span: 18..27,
///     shown: "\"***\"".into(),
/// }]);
/// assert_eq!(shown, "  |\n1 | auth = { secret = \"***\", extra = 1 }\n  |                          ^^^^^");
/// ```
pub fn snippet_redacted(text: &str, span: &Range<usize>, replacements: &[Replacement]) -> String {
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let at = line_col(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let mut line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    if text[line_start..line_end].ends_with('\r') {
        line_end -= 1;
    }
    let end = floor_char_boundary(text, span.end.clamp(start, line_end.max(start)));
    let mut shown = String::new();
    let mut column = 0usize;
    let (mut caret_from, mut caret_to) = (None, None);
    let mut i = line_start;
    while i < line_end {
        if let Some(r) = replacements
            .iter()
            .find(|r| r.span.start <= i && i < r.span.end)
        {
            let stop = r.span.end.min(line_end);
            let from = column;
            // A value that began on an earlier line (a multi-line string) shows as `***` here.
            let text = if r.span.start >= line_start {
                r.shown.as_str()
            } else {
                "***"
            };
            shown.push_str(text);
            column += text.chars().count();
            if caret_from.is_none() && (i..stop).contains(&start) {
                caret_from = Some(from);
            }
            if caret_to.is_none() && i < end && end <= stop {
                caret_to = Some(column);
            }
            i = stop;
            continue;
        }
        if i == start && caret_from.is_none() {
            caret_from = Some(column);
        }
        if i == end && caret_to.is_none() {
            caret_to = Some(column);
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        shown.push(c);
        column += 1;
        i += c.len_utf8();
    }
    let from = caret_from.unwrap_or(column);
    let to = caret_to.unwrap_or(column).max(from);
    let width = (to - from).max(1);
    let gutter = at.line.to_string().len();
    format!(
        "{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
        "",
        at.line,
        shown,
        "",
        " ".repeat(from),
        "^".repeat(width),
    )
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), LineCol { line: 1, column: 1 });
        let x = text.find("\"x").unwrap();
        assert_eq!(line_col(text, x), LineCol { line: 2, column: 6 });
        assert_eq!(
            snippet(text, &(x..x + 3)),
            "  |\n2 | bé = \"x\"\n  |      ^^^"
        );
    }

    #[test]
    fn replacements_keep_the_carets_under_the_key() {
        let text = "a = 1\nx = { pw = \"long-secret\", bad = 2 }\n";
        let secret = text.find("\"long").unwrap();
        let hidden = [Replacement {
            span: secret..secret + 13,
            shown: "\"***\"".into(),
        }];
        let bad = text.find("bad").unwrap();
        assert_eq!(
            snippet_redacted(text, &(bad..bad + 3), &hidden),
            "  |\n2 | x = { pw = \"***\", bad = 2 }\n  |                   ^^^"
        );
        // An error on the secret itself underlines its replacement.
        assert_eq!(
            snippet_redacted(text, &(secret..secret + 13), &hidden),
            "  |\n2 | x = { pw = \"***\", bad = 2 }\n  |            ^^^^^"
        );
        // A multi-line secret, seen from its second line.
        let text = "pw = \"\"\"\nline-two-secret\n\"\"\"\nbad = 1\n";
        let hidden = [Replacement {
            span: 5..text.find("\nbad").unwrap(),
            shown: "\"***\"".into(),
        }];
        assert_eq!(
            snippet_redacted(text, &(12..15), &hidden),
            "  |\n2 | ***\n  | ^^^"
        );
    }
}
