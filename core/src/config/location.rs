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
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let at = line_col(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim_end_matches('\r');
    let end = floor_char_boundary(text, span.end.clamp(start, line_end));
    let width = text[start..end].chars().count().max(1);
    let gutter = at.line.to_string().len();
    format!(
        "{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
        "",
        at.line,
        line,
        "",
        " ".repeat(at.column - 1),
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
}
