//! Tokens to a [`Package`]: a recursive-descent parser over the grammar in
//! `docs/SCHEMA.md`. The first syntax error stops the file, with its place.

use std::path::Path;

use crate::diag::{Diagnostic, Span};
use crate::lexer::{lex, Tok, Token};
use crate::model::{
    Enum, ErrorCode, Field, Literal, Method, Package, Service, Struct, Topic, Type,
};

/// Parses one schema file.
///
/// # Errors
/// The first syntax error, located.
pub fn parse(path: &Path, source: &str) -> Result<Package, Diagnostic> {
    let tokens = lex(source).map_err(|e| Diagnostic::new(path, source, e.span, e.message, ""))?;
    let mut p = Parser { path, source, tokens, pos: 0 };
    p.package()
}

struct Parser<'a> {
    path: &'a Path,
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, Diagnostic>;

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(v) => format!("integer `{v}`"),
        Tok::Float(v) => format!("number `{v}`"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Doc(_) => "a doc comment".into(),
        Tok::Punct('→') => "`->`".into(),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Eof => "end of file".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }
    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }
    fn error(
        &self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(self.path, self.source, span, message, label)
    }
    fn unexpected(&self, wanted: &str) -> Diagnostic {
        let t = self.peek();
        self.error(
            t.span,
            format!("expected {wanted}, found {}", describe(&t.tok)),
            format!("expected {wanted}"),
        )
    }
    fn is_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == w)
    }
    fn punct(&mut self, c: char) -> PResult<Span> {
        if self.is_punct(c) {
            Ok(self.next().span)
        } else {
            Err(self.unexpected(&format!(
                "`{}`",
                if c == '→' { "->".to_string() } else { c.to_string() }
            )))
        }
    }
    fn word(&mut self, w: &str) -> PResult<Span> {
        if self.is_word(w) {
            Ok(self.next().span)
        } else {
            Err(self.unexpected(&format!("`{w}`")))
        }
    }
    fn ident(&mut self, what: &str) -> PResult<(String, Span)> {
        match self.peek().tok.clone() {
            Tok::Ident(s) => {
                let span = self.next().span;
                Ok((s, span))
            }
            _ => Err(self.unexpected(what)),
        }
    }
    fn int(&mut self, what: &str) -> PResult<(u64, Span)> {
        match self.peek().tok {
            Tok::Int(v) => {
                let span = self.next().span;
                Ok((v, span))
            }
            _ => Err(self.unexpected(what)),
        }
    }
    fn docs(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Tok::Doc(d) = &self.peek().tok {
            out.push(d.clone());
            self.next();
        }
        out
    }

    fn package(&mut self) -> PResult<Package> {
        let doc = self.docs();
        self.word("package")?;
        let (name, _) = self.ident("a package name")?;
        self.punct(';')?;
        let mut pkg = Package {
            path: self.path.to_path_buf(),
            source: self.source.to_string(),
            name,
            doc,
            structs: Vec::new(),
            enums: Vec::new(),
            services: Vec::new(),
            topics: Vec::new(),
        };
        loop {
            let doc = self.docs();
            if self.peek().tok == Tok::Eof {
                return Ok(pkg);
            }
            if self.is_word("struct") {
                pkg.structs.push(self.structure(doc)?);
            } else if self.is_word("enum") {
                pkg.enums.push(self.enumeration(doc)?);
            } else if self.is_word("service") {
                pkg.services.push(self.service(doc)?);
            } else if self.is_word("topic") {
                pkg.topics.push(self.topic(doc)?);
            } else {
                return Err(self.unexpected("`struct`, `enum`, `service` or `topic`"));
            }
        }
    }

    fn structure(&mut self, doc: Vec<String>) -> PResult<Struct> {
        self.word("struct")?;
        let (name, span) = self.ident("a struct name")?;
        self.punct('{')?;
        let mut s = Struct { name, doc, fields: Vec::new(), reserved: Vec::new(), span };
        loop {
            let doc = self.docs();
            if self.is_punct('}') {
                self.next();
                return Ok(s);
            }
            if self.is_word("reserved") {
                self.next();
                loop {
                    match self.peek().tok.clone() {
                        Tok::Ident(n) | Tok::Str(n) => {
                            self.next();
                            s.reserved.push(n);
                        }
                        _ => return Err(self.unexpected("a reserved field name")),
                    }
                    if self.is_punct(',') {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.punct(';')?;
                continue;
            }
            let (fname, fspan) = self.ident("a field name or `}`")?;
            let optional = if self.is_punct('?') {
                self.next();
                true
            } else {
                false
            };
            self.punct(':')?;
            let ty = self.ty()?;
            let default = if self.is_punct('=') {
                self.next();
                Some(self.literal()?)
            } else {
                None
            };
            self.punct(';')?;
            s.fields.push(Field { name: fname, doc, ty, optional, default, span: fspan });
        }
    }

    fn literal(&mut self) -> PResult<Literal> {
        let negative = if self.is_punct('-') {
            self.next();
            true
        } else {
            false
        };
        let t = self.peek().tok.clone();
        let lit = match t {
            Tok::Int(v) => Literal::Int(if negative { -i128::from(v) } else { i128::from(v) }),
            Tok::Float(v) => Literal::Float(if negative { -v } else { v }),
            Tok::Str(s) if !negative => Literal::Str(s),
            Tok::Ident(w) if !negative && (w == "true" || w == "false") => {
                Literal::Bool(w == "true")
            }
            Tok::Ident(w) if !negative => Literal::Str(w),
            _ => return Err(self.unexpected("a default value")),
        };
        self.next();
        Ok(lit)
    }

    fn ty(&mut self) -> PResult<Type> {
        let (name, span) = self.ident("a type")?;
        Ok(match name.as_str() {
            "u8" => Type::Int { signed: false, bits: 8 },
            "u16" => Type::Int { signed: false, bits: 16 },
            "u32" => Type::Int { signed: false, bits: 32 },
            "u64" => Type::Int { signed: false, bits: 64 },
            "i8" => Type::Int { signed: true, bits: 8 },
            "i16" => Type::Int { signed: true, bits: 16 },
            "i32" => Type::Int { signed: true, bits: 32 },
            "i64" => Type::Int { signed: true, bits: 64 },
            "f32" => Type::F32,
            "f64" => Type::F64,
            "bool" => Type::Bool,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "list" => {
                self.punct('<')?;
                let inner = self.ty()?;
                self.punct('>')?;
                Type::List(Box::new(inner))
            }
            "map" => {
                self.punct('<')?;
                let (key, kspan) = self.ident("`string`")?;
                if key != "string" {
                    return Err(self.error(
                        kspan,
                        format!("map keys must be `string`, found `{key}`"),
                        "only string keys",
                    ));
                }
                self.punct(',')?;
                let inner = self.ty()?;
                self.punct('>')?;
                Type::Map(Box::new(inner))
            }
            _ => Type::Named(name, span),
        })
    }

    fn enumeration(&mut self, doc: Vec<String>) -> PResult<Enum> {
        self.word("enum")?;
        let (name, span) = self.ident("an enum name")?;
        self.punct('{')?;
        let mut values = Vec::new();
        loop {
            self.docs();
            if self.is_punct('}') {
                self.next();
                break;
            }
            let (v, _) = self.ident("an enum value or `}`")?;
            values.push(v);
            if self.is_punct(',') {
                self.next();
            } else {
                self.docs();
                self.punct('}')?;
                break;
            }
        }
        Ok(Enum { name, doc, values, span })
    }

    fn msg_type(&mut self) -> PResult<(u16, Span)> {
        let (v, span) = self.int("a msg_type")?;
        if !(1..=0x7FFE).contains(&v) {
            return Err(self.error(
                span,
                format!("msg_type {v} is out of range: schemas use 1..=0x7FFE (0x7FFF is `describe`, 0x8000 and up are Tiga's hashed names, 0xFFFF the error sentinel)"),
                "out of range",
            ));
        }
        Ok((v as u16, span))
    }

    fn service(&mut self, doc: Vec<String>) -> PResult<Service> {
        self.word("service")?;
        let (name, span) = self.ident("a service name")?;
        self.punct('{')?;
        let mut s = Service {
            name,
            doc,
            methods: Vec::new(),
            errors: Vec::new(),
            reserved: Vec::new(),
            span,
        };
        loop {
            let doc = self.docs();
            if self.is_punct('}') {
                self.next();
                return Ok(s);
            }
            if self.is_word("reserved") {
                self.next();
                loop {
                    let (v, _) = self.msg_type()?;
                    s.reserved.push(v);
                    if self.is_punct(',') {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.punct(';')?;
            } else if self.is_word("error") {
                self.next();
                let (ename, espan) = self.ident("an error name")?;
                self.punct('=')?;
                let (code, cspan) = self.int("an error code")?;
                let code = u32::try_from(code)
                    .ok()
                    .filter(|c| *c >= crate::model::FIRST_APP_ERROR_CODE)
                    .ok_or_else(|| {
                        self.error(cspan, format!("error code {code} is out of range: application codes are 100..=4294967295 (0..=99 are the framework's)"), "out of range")
                    })?;
                self.punct(';')?;
                s.errors.push(ErrorCode { name: ename, doc, code, span: espan });
            } else {
                let oneway = self.is_word("oneway");
                if oneway {
                    self.next();
                }
                if !self.is_word("rpc") {
                    return Err(self.unexpected("`rpc`, `oneway`, `error`, `reserved` or `}`"));
                }
                self.next();
                let (mname, mspan) = self.ident("a method name")?;
                self.punct('(')?;
                let request = self.ty()?;
                self.punct(')')?;
                let mut stream = false;
                let response = if oneway {
                    if self.is_punct('→') {
                        let t = self.next();
                        return Err(self.error(
                            t.span,
                            "a oneway method has no reply type",
                            "remove `-> T`",
                        ));
                    }
                    Type::Bytes
                } else {
                    let (ty, streams) = self.response()?;
                    stream = streams;
                    ty
                };
                self.punct('=')?;
                let (msg_type, tspan) = self.msg_type()?;
                self.punct(';')?;
                s.methods.push(Method {
                    name: mname,
                    doc,
                    request,
                    response,
                    oneway,
                    stream,
                    msg_type,
                    span: mspan,
                    msg_type_span: tspan,
                });
            }
        }
    }

    fn topic(&mut self, doc: Vec<String>) -> PResult<Topic> {
        self.word("topic")?;
        let (name, span) = self.ident("a topic name")?;
        self.punct(':')?;
        let ty = self.ty()?;
        self.punct('=')?;
        let (msg_type, msg_type_span) = self.msg_type()?;
        self.punct(';')?;
        Ok(Topic { name, doc, ty, msg_type, span, msg_type_span })
    }

    /// `-> T` or `-> stream T`: the reply type, and whether it streams.
    fn response(&mut self) -> PResult<(Type, bool)> {
        self.punct('→')?;
        let stream = self.is_word("stream");
        if stream {
            self.next();
        }
        Ok((self.ty()?, stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTE: &str = "package quote;\n\
        /// A request.\n\
        struct QuoteReq { symbol: string; qty: u32; venue?: string; reserved old; }\n\
        enum Side { buy, sell }\n\
        service Quotes {\n\
            rpc quote(QuoteReq) -> Quote = 1;\n\
            rpc echo(bytes) -> bytes = 2;\n\
            oneway rpc log(string) = 3;\n\
            error unknown_symbol = 100;\n\
        }\n";

    #[test]
    fn parses_the_issue_example() {
        let p = parse(Path::new("q.tachyon"), QUOTE).unwrap();
        assert_eq!(p.name, "quote");
        assert_eq!(p.structs[0].doc, vec!["A request."]);
        assert_eq!(p.structs[0].fields.len(), 3);
        assert!(p.structs[0].fields[2].optional);
        assert_eq!(p.structs[0].reserved, vec!["old"]);
        assert_eq!(p.enums[0].values, vec!["buy", "sell"]);
        let s = &p.services[0];
        assert_eq!(s.methods.iter().map(|m| m.msg_type).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(s.methods[2].oneway && !s.methods[0].oneway);
        assert_eq!(s.errors[0].code, 100);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse(Path::new("bad.tachyon"), "package q;\nstruct A {\n  x u32;\n}").unwrap_err();
        assert_eq!((e.span.line, e.span.col), (3, 5));
        assert_eq!(e.message, "expected `:`, found `u32`");
        let rendered = e.to_string();
        assert!(rendered.contains("--> bad.tachyon:3:5"), "{rendered}");
        assert!(rendered.contains("3 |   x u32;"), "{rendered}");
        let e = parse(Path::new("b"), "package q; service S { rpc a(bytes) -> bytes = 0x8000; }")
            .unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
    }
}
