//! Schema text to tokens, each with its [`Span`]. `//` and `/* */` comments are skipped;
//! `///` doc comments become tokens so the parser can attach them to the next item.

use crate::diag::Span;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or keyword.
    Ident(String),
    /// An integer literal (decimal or `0x` hex), sign not included.
    Int(u64),
    /// A floating-point literal.
    Float(f64),
    /// A double-quoted string literal, unescaped.
    Str(String),
    /// A `///` comment line, without the slashes and one leading space.
    Doc(String),
    /// One of `{ } ( ) < > ; : , ? = -`, or `->` as `'>'` preceded by `'-'` folded to `'→'`.
    Punct(char),
    /// End of input.
    Eof,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its place.
    pub span: Span,
}

/// A lexing error: what, and where.
#[derive(Debug)]
pub struct LexError {
    /// Where.
    pub span: Span,
    /// What.
    pub message: String,
}

struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }
    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
    fn here(&self) -> Span {
        Span { offset: self.pos, line: self.line, col: self.col, len: 1 }
    }
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
///
/// # Errors
/// An unterminated string or comment, a bad number, or a character the language does
/// not use.
pub fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut c = Cursor { src, pos: 0, line: 1, col: 1 };
    let mut out = Vec::new();
    while let Some(ch) = c.peek() {
        let start = c.here();
        let finish = |c: &Cursor<'_>, tok: Tok| Token {
            tok,
            span: Span { len: c.pos - start.offset, ..start },
        };
        if ch.is_whitespace() {
            c.bump();
        } else if ch == '/' && c.peek2() == Some('/') {
            let line_end = src[c.pos..].find('\n').map_or(src.len(), |i| c.pos + i);
            let text = &src[c.pos..line_end];
            let is_doc = text.starts_with("///") && !text.starts_with("////");
            while c.pos < line_end {
                c.bump();
            }
            if is_doc {
                let body = &text[3..];
                let body = body.strip_prefix(' ').unwrap_or(body);
                out.push(finish(&c, Tok::Doc(body.trim_end().to_string())));
            }
        } else if ch == '/' && c.peek2() == Some('*') {
            c.bump();
            c.bump();
            loop {
                match c.peek() {
                    None => {
                        return Err(LexError {
                            span: start,
                            message: "unterminated block comment".into(),
                        })
                    }
                    Some('*') if c.peek2() == Some('/') => {
                        c.bump();
                        c.bump();
                        break;
                    }
                    Some(_) => {
                        c.bump();
                    }
                }
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            while c.peek().is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                c.bump();
            }
            out.push(finish(&c, Tok::Ident(src[start.offset..c.pos].to_string())));
        } else if ch.is_ascii_digit() {
            out.push(number(&mut c, start)?);
        } else if ch == '"' {
            c.bump();
            let mut s = String::new();
            loop {
                match c.bump() {
                    None | Some('\n') => {
                        return Err(LexError {
                            span: start,
                            message: "unterminated string literal".into(),
                        })
                    }
                    Some('"') => break,
                    Some('\\') => {
                        match c.bump() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('\\') => s.push('\\'),
                            Some('"') => s.push('"'),
                            _ => return Err(LexError {
                                span: Span { len: 2, ..c.here() },
                                message:
                                    "unknown escape in string literal (use \\n, \\t, \\\\ or \\\")"
                                        .into(),
                            }),
                        }
                    }
                    Some(other) => s.push(other),
                }
            }
            out.push(finish(&c, Tok::Str(s)));
        } else if ch == '-' && c.peek2() == Some('>') {
            c.bump();
            c.bump();
            out.push(finish(&c, Tok::Punct('→')));
        } else if "{}()<>;:,?=-.".contains(ch) {
            c.bump();
            out.push(finish(&c, Tok::Punct(ch)));
        } else {
            return Err(LexError { span: start, message: format!("unexpected character `{ch}`") });
        }
    }
    out.push(Token { tok: Tok::Eof, span: c.here() });
    Ok(out)
}

fn number(c: &mut Cursor<'_>, start: Span) -> Result<Token, LexError> {
    let bad = |message: String| LexError { span: start, message };
    if c.peek() == Some('0') && matches!(c.peek2(), Some('x' | 'X')) {
        c.bump();
        c.bump();
        while c.peek().is_some_and(|ch| ch.is_ascii_hexdigit() || ch == '_') {
            c.bump();
        }
        let text = c.src[start.offset + 2..c.pos].replace('_', "");
        let v = u64::from_str_radix(&text, 16).map_err(|e| bad(format!("bad hex integer: {e}")))?;
        return Ok(Token { tok: Tok::Int(v), span: Span { len: c.pos - start.offset, ..start } });
    }
    let mut float = false;
    while let Some(ch) = c.peek() {
        if ch.is_ascii_digit() || ch == '_' {
            c.bump();
        } else if (ch == '.' && c.peek2().is_some_and(|d| d.is_ascii_digit()))
            || ch == 'e'
            || ch == 'E'
        {
            float = true;
            c.bump();
            if matches!(c.peek(), Some('+' | '-')) {
                c.bump();
            }
        } else {
            break;
        }
    }
    let text = c.src[start.offset..c.pos].replace('_', "");
    let span = Span { len: c.pos - start.offset, ..start };
    let tok = if float {
        Tok::Float(text.parse().map_err(|e| bad(format!("bad number `{text}`: {e}")))?)
    } else {
        Tok::Int(text.parse().map_err(|e| bad(format!("bad integer `{text}`: {e}")))?)
    };
    Ok(Token { tok, span })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_lines_and_columns() {
        let toks = lex("package q;\n/// hi\nstruct A { x?: u32 = 0x10; }").unwrap();
        assert_eq!(toks[0].tok, Tok::Ident("package".into()));
        assert_eq!(toks[3].tok, Tok::Doc("hi".into()));
        assert_eq!((toks[3].span.line, toks[3].span.col), (2, 1));
        let x = toks.iter().find(|t| t.tok == Tok::Ident("x".into())).unwrap();
        assert_eq!((x.span.line, x.span.col), (3, 12));
        assert!(toks.iter().any(|t| t.tok == Tok::Int(16)));
        assert_eq!(lex("a -> b").unwrap()[1].tok, Tok::Punct('→'));
    }

    #[test]
    fn bad_input_is_located() {
        let e = lex("struct A {\n  x: \"oops\n}").unwrap_err();
        assert_eq!((e.span.line, e.span.col), (2, 6));
        assert!(lex("a $ b").unwrap_err().message.contains('$'));
        assert!(lex("/* never ends").is_err());
    }
}
