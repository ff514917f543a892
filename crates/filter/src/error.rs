//! Errors of the filter language: the one error enum of this crate, and the positions it
//! carries.
//!
//! Every error a user can cause by what they typed names *where* (a [`Position`]: byte offset,
//! 1-based line and column), *what was found* and *what was expected*. It renders two ways:
//! as text with a caret under the position ([`FilterError::render`]) for terminals, and as
//! JSON ([`FilterError::to_json`]) for the web UI:
//!
//! ```text
//! {"message": "...", "offset": 12, "line": 1, "column": 13, "expected": ["a port number"]}
//! ```
//!
//! Evaluation errors (a batch that lacks a column) carry no position.

use serde::Serialize;
use std::fmt;

/// A place in the source text. Invariant: `offset` is a byte offset on a UTF-8 character
/// boundary of the text it was computed from; `line` and `column` are 1-based, the column is
/// counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Position {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `src` (clamped to the end of `src`).
    pub fn at(src: &str, offset: usize) -> Position {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = src[line_start..offset].chars().count() + 1;
        Position {
            offset,
            line,
            column,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Joins expected alternatives as "a, b or c".
fn one_of(expected: &[String]) -> String {
    match expected {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Everything that can go wrong in this crate. Variants are named by cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A token that the grammar does not allow here.
    #[error("{at}: found {found}, expected {}", one_of(expected))]
    UnexpectedToken {
        at: Position,
        found: String,
        expected: Vec<String>,
    },
    /// The text ended where more was needed.
    #[error("{at}: the filter ends here, expected {}", one_of(expected))]
    UnexpectedEnd { at: Position, expected: Vec<String> },
    /// A character that starts no token.
    #[error("{at}: character '{found}' is not part of the filter language")]
    InvalidCharacter { at: Position, found: char },
    /// A word where a number was needed, or a malformed number.
    #[error("{at}: '{found}' is not a number, expected {}", one_of(expected))]
    InvalidNumber {
        at: Position,
        found: String,
        expected: Vec<String>,
    },
    /// A number that does not fit the field or the keyword.
    #[error("{at}: {found} is out of range, expected {}", one_of(expected))]
    OutOfRange {
        at: Position,
        found: String,
        expected: Vec<String>,
    },
    /// A malformed address, prefix or netmask.
    #[error("{at}: '{found}' is not valid here: {reason}")]
    InvalidAddress {
        at: Position,
        found: String,
        reason: String,
        expected: Vec<String>,
    },
    /// A protocol name that is not known.
    #[error(
        "{at}: unknown protocol '{found}', expected a protocol name (tcp, udp, icmp, ...) or a number 0..255"
    )]
    UnknownProtocol { at: Position, found: String },
    /// A word that is neither a keyword nor a field of the schema.
    #[error(
        "{at}: '{found}' is neither a keyword nor a field name, expected {}",
        one_of(expected)
    )]
    UnknownField {
        at: Position,
        found: String,
        expected: Vec<String>,
    },
    /// Letters after `flags` that are not TCP flag letters.
    #[error(
        "{at}: '{found}' are not TCP flags, expected letters of FSRPAUEC (or X for FSRPAU) or a number"
    )]
    InvalidFlags { at: Position, found: String },
    /// An nfdump keyword whose field the flow schema does not carry.
    #[error("{at}: '{found}' is not supported: {reason}")]
    Unsupported {
        at: Position,
        found: String,
        reason: String,
    },
    /// An operator or value that does not suit the field's type.
    #[error(
        "{at}: {found} does not apply to field {field}, expected {}",
        one_of(expected)
    )]
    TypeMismatch {
        at: Position,
        found: String,
        field: String,
        expected: Vec<String>,
    },
    /// A rule of an ACL rule list names an action that is not a valid label.
    #[error(
        "{at}: '{found}' is not a valid action, expected permit, deny or a label of [A-Za-z0-9_-]"
    )]
    InvalidAction { at: Position, found: String },
    /// Column-wise evaluation on a batch that does not carry a column the predicate reads (a
    /// schema field or a user-defined element).
    #[error("the batch does not carry column {field}; load it before filtering")]
    ColumnMissing { field: String },
    /// A batch whose column has another length than the batch (a broken store invariant).
    #[error(
        "internal error: column {field} has {got} values for a batch of {want}; please report this bug"
    )]
    ColumnLength {
        field: String,
        got: usize,
        want: usize,
    },
}

/// The JSON form of an error, for the web UI.
#[derive(Serialize)]
struct JsonError<'a> {
    message: String,
    offset: Option<usize>,
    line: Option<usize>,
    column: Option<usize>,
    expected: &'a [String],
    found: Option<String>,
}

impl FilterError {
    /// Where the error is, when the user's text caused it.
    pub fn position(&self) -> Option<Position> {
        use FilterError::*;
        match self {
            UnexpectedToken { at, .. }
            | UnexpectedEnd { at, .. }
            | InvalidCharacter { at, .. }
            | InvalidNumber { at, .. }
            | OutOfRange { at, .. }
            | InvalidAddress { at, .. }
            | UnknownProtocol { at, .. }
            | UnknownField { at, .. }
            | InvalidFlags { at, .. }
            | Unsupported { at, .. }
            | TypeMismatch { at, .. }
            | InvalidAction { at, .. } => Some(*at),
            ColumnMissing { .. } | ColumnLength { .. } => None,
        }
    }

    /// What would have been accepted at the position (empty when nothing specific).
    pub fn expected(&self) -> &[String] {
        use FilterError::*;
        match self {
            UnexpectedToken { expected, .. }
            | UnexpectedEnd { expected, .. }
            | InvalidNumber { expected, .. }
            | OutOfRange { expected, .. }
            | InvalidAddress { expected, .. }
            | UnknownField { expected, .. }
            | TypeMismatch { expected, .. } => expected,
            _ => &[],
        }
    }

    /// What was found at the position, as the user wrote it.
    pub fn found(&self) -> Option<String> {
        use FilterError::*;
        match self {
            UnexpectedToken { found, .. }
            | InvalidNumber { found, .. }
            | OutOfRange { found, .. }
            | InvalidAddress { found, .. }
            | UnknownProtocol { found, .. }
            | UnknownField { found, .. }
            | InvalidFlags { found, .. }
            | Unsupported { found, .. }
            | TypeMismatch { found, .. }
            | InvalidAction { found, .. } => Some(found.clone()),
            InvalidCharacter { found, .. } => Some(found.to_string()),
            UnexpectedEnd { .. } => Some("end of filter".to_string()),
            ColumnMissing { .. } | ColumnLength { .. } => None,
        }
    }

    /// The message without its "line L, column C: " prefix.
    pub fn message(&self) -> String {
        let full = self.to_string();
        match self.position() {
            Some(p) => full
                .strip_prefix(&format!("{p}: "))
                .map(str::to_string)
                .unwrap_or(full),
            None => full,
        }
    }

    /// The error as text for a terminal: the message, the offending line and a caret under the
    /// position. `src` must be the text the error was found in.
    pub fn render(&self, src: &str) -> String {
        let Some(at) = self.position() else {
            return format!("error: {self}");
        };
        let line_start = src[..at.offset.min(src.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line_end = src[line_start..]
            .find('\n')
            .map_or(src.len(), |i| line_start + i);
        let text = &src[line_start..line_end];
        format!(
            "error: {}\n  at line {}, column {}:\n    {}\n    {}^",
            self.message(),
            at.line,
            at.column,
            text,
            " ".repeat(at.column - 1)
        )
    }

    /// The error as the web UI's JSON object:
    /// `{"message", "offset", "line", "column", "expected", "found"}` (position fields are
    /// `null` for evaluation errors).
    pub fn to_json(&self) -> serde_json::Value {
        let at = self.position();
        serde_json::to_value(JsonError {
            message: self.message(),
            offset: at.map(|p| p.offset),
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            expected: self.expected(),
            found: self.found(),
        })
        .expect("a plain struct always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let src = "proto tcp\nand  port é 80";
        assert_eq!(
            Position::at(src, 0),
            Position {
                offset: 0,
                line: 1,
                column: 1
            }
        );
        let p = Position::at(src, src.find('é').unwrap());
        assert_eq!((p.line, p.column), (2, 11));
        let after = Position::at(src, src.find("80").unwrap());
        assert_eq!((after.line, after.column), (2, 13));
        assert_eq!(Position::at(src, 1000).offset, src.len());
    }

    #[test]
    fn errors_render_a_caret_and_json() {
        let src = "proto tcp and port x";
        let e = FilterError::InvalidNumber {
            at: Position::at(src, 19),
            found: "x".into(),
            expected: vec!["a port number".into()],
        };
        let text = e.render(src);
        assert!(
            text.contains("'x' is not a number, expected a port number"),
            "{text}"
        );
        assert!(
            text.ends_with("    proto tcp and port x\n                       ^"),
            "{text}"
        );
        let j = e.to_json();
        assert_eq!(j["offset"], 19);
        assert_eq!(j["line"], 1);
        assert_eq!(j["column"], 20);
        assert_eq!(j["expected"][0], "a port number");
        assert_eq!(j["found"], "x");
        assert!(!j["message"].as_str().unwrap().starts_with("line"));
        let m = FilterError::ColumnMissing {
            field: "proto".into(),
        };
        assert_eq!(m.to_json()["line"], serde_json::Value::Null);
        assert!(m.render("").contains("column proto"));
    }
}
