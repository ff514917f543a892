//! The lexer of the expression language: text to tokens with byte spans.
//!
//! Like nfdump's scanner, a *word* is a run of `[A-Za-z0-9_:.-]`: keywords, numbers with
//! suffixes (`1M`), IPv4 and IPv6 addresses, ranges (`80-90`) and field names are all words,
//! told apart by the parser from where they stand. `/` is a token of its own, so
//! `10.0.0.0/8` is word, slash, word. `#` starts a comment that runs to the end of the line.
//! A string is `"..."`, where `\"` is a quote and `\\` a backslash (the values of
//! user-defined string elements); `~` is the "contains" operator.

use crate::error::{FilterError, Position};
use crate::ir::CmpOp;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Word,
    /// `"..."`, the quotes included in the span ([`unquote`] gives the text).
    Str,
    Tilde,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Slash,
    Amp,
    Cmp(CmpOp),
    AndAnd,
    OrOr,
    Bang,
    /// The end of the text; the lexer always emits exactly one, last.
    End,
}

/// A token and its span `start..end` (byte offsets into the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-')
}

/// Splits `src` into tokens; the last token is always [`Tok::End`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = src[i..].chars().next().expect("i is on a char boundary");
        let start = i;
        let two = |s: &str| src[i..].starts_with(s);
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += c.len_utf8();
                continue;
            }
            '#' => {
                i = src[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            c if is_word_char(c) => {
                let len = src[i..]
                    .find(|c: char| !is_word_char(c))
                    .unwrap_or(b.len() - i);
                (Tok::Word, len)
            }
            '"' => (Tok::Str, string_len(src, start)?),
            '~' => (Tok::Tilde, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '/' => (Tok::Slash, 1),
            '&' if two("&&") => (Tok::AndAnd, 2),
            '&' => (Tok::Amp, 1),
            '|' if two("||") => (Tok::OrOr, 2),
            '!' if two("!=") => (Tok::Cmp(CmpOp::Ne), 2),
            '!' => (Tok::Bang, 1),
            '=' if two("==") => (Tok::Cmp(CmpOp::Eq), 2),
            '=' => (Tok::Cmp(CmpOp::Eq), 1),
            '<' if two("<=") => (Tok::Cmp(CmpOp::Le), 2),
            '<' if two("<>") => (Tok::Cmp(CmpOp::Ne), 2),
            '<' => (Tok::Cmp(CmpOp::Lt), 1),
            '>' if two(">=") => (Tok::Cmp(CmpOp::Ge), 2),
            '>' => (Tok::Cmp(CmpOp::Gt), 1),
            other => {
                return Err(FilterError::InvalidCharacter {
                    at: Position::at(src, start),
                    found: other,
                });
            }
        };
        i += len;
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    out.push(Token {
        kind: Tok::End,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// The length of the string token starting with the quote at `start`, closing quote
/// included.
fn string_len(src: &str, start: usize) -> Result<usize, FilterError> {
    let mut escaped = false;
    for (i, c) in src[start + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Ok(i + 2),
            _ => {}
        }
    }
    Err(FilterError::UnexpectedEnd {
        at: Position::at(src, src.len()),
        expected: vec![format!(
            "'\"' to close the string that starts at {}",
            Position::at(src, start)
        )],
    })
}

/// The text of a string token (quotes removed; `\"` and `\\` unescaped, any other
/// backslash kept as it is).
pub(crate) fn unquote(token: &str) -> String {
    let inner = &token[1..token.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn words_operators_and_comments() {
        use Tok::*;
        assert_eq!(
            kinds("src net 10.0.0.0/8 && !(port>=1k) # comment\n|| x"),
            vec![
                Word,
                Word,
                Word,
                Slash,
                Word,
                AndAnd,
                Bang,
                LParen,
                Word,
                Cmp(CmpOp::Ge),
                Word,
                RParen,
                OrOr,
                Word,
                End
            ]
        );
        let t = lex("ip 2001:db8::1").unwrap();
        assert_eq!((t[1].start, t[1].end), (3, 14));
        assert_eq!(kinds("a != b <> c == d = e & f"), {
            vec![
                Word,
                Cmp(CmpOp::Ne),
                Word,
                Cmp(CmpOp::Ne),
                Word,
                Cmp(CmpOp::Eq),
                Word,
                Cmp(CmpOp::Eq),
                Word,
                Amp,
                Word,
                End,
            ]
        });
    }

    #[test]
    fn strings_are_one_token_with_escapes() {
        let src = r#"app = "a \"b\" \\ c\d" ~ "" x"#;
        let t = lex(src).unwrap();
        let kinds: Vec<Tok> = t.iter().map(|t| t.kind).collect();
        use Tok::*;
        assert_eq!(
            kinds,
            vec![Word, Cmp(CmpOp::Eq), Str, Tilde, Str, Word, End]
        );
        assert_eq!(unquote(&src[t[2].start..t[2].end]), r#"a "b" \ c\d"#);
        assert_eq!(unquote(&src[t[4].start..t[4].end]), "");
        let e = lex("app = \"abc").unwrap_err();
        assert!(matches!(e, FilterError::UnexpectedEnd { .. }), "{e}");
        assert_eq!(e.position().unwrap().column, 11);
        assert!(e.to_string().contains("column 7"), "{e}");
    }

    #[test]
    fn an_unknown_character_is_positioned() {
        let e = lex("port 80 @").unwrap_err();
        assert_eq!(e.position().unwrap().column, 9);
        assert!(matches!(
            e,
            FilterError::InvalidCharacter { found: '@', .. }
        ));
    }
}
