//! The Tachyon schema language: one `*.tachyon` file per package under `schemas/`, the
//! one source of truth for the types and msg_types that Rust, Python and TypeScript
//! share. This crate parses and checks schemas ([`load_dir`]), keeps the evolution lock
//! ([`lock`]), and generates code for each language ([`gen`]). It needs no outside
//! compiler: `tachyon::include_schema!`, `python -m tachyon.codegen` and
//! `npx tachyon-codegen` all call it.
//!
//! ```
//! let pkgs = tachyon_schema::load_str("quote.tachyon", "package quote;\n\
//!     struct QuoteReq { symbol: string; qty: u32; venue?: string; }\n\
//!     struct Quote { bid: f64; ask: f64; }\n\
//!     service Quotes { rpc quote(QuoteReq) -> Quote = 1; rpc echo(bytes) -> bytes = 2; }\n").unwrap();
//! assert_eq!(pkgs[0].services[0].methods[1].msg_type, 2);
//! let err = tachyon_schema::load_str("bad.tachyon", "package q;\nstruct A { b: B; }\n").unwrap_err();
//! assert!(err.to_string().contains("--> bad.tachyon:2:15"));
//! ```
//!
//! The language, the wire rules and the evolution rules are in `docs/SCHEMA.md`.

mod canonical;
mod check;
pub mod diag;
pub mod gen;
mod lexer;
pub mod lock;
pub mod model;
mod parser;

use std::path::{Path, PathBuf};

pub use canonical::{fingerprint, text as canonical_text};
pub use diag::{Diagnostic, Errors};
pub use model::Package;

/// Parses and checks every `*.tachyon` file directly in `dir` (sorted by name).
///
/// # Errors
/// Every syntax and semantic error, each with file, line and column; or a file that
/// cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<Package>, Errors> {
    let io = |e: std::io::Error, p: &Path| {
        Errors(vec![Diagnostic::new(p, "", diag::Span::default(), format!("cannot read: {e}"), "")])
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(e, dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tachyon"))
        .collect();
    files.sort();
    let mut sources = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| io(e, &f))?;
        sources.push((f, text));
    }
    load_sources(&sources)
}

/// Parses and checks one schema given as text (`name` is used in diagnostics).
///
/// # Errors
/// As [`load_dir`].
pub fn load_str(name: &str, source: &str) -> Result<Vec<Package>, Errors> {
    load_sources(&[(PathBuf::from(name), source.to_string())])
}

/// Parses and checks a set of schema files given as `(path, text)`.
///
/// # Errors
/// As [`load_dir`].
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<Vec<Package>, Errors> {
    let mut pkgs = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in sources {
        match parser::parse(path, text) {
            Ok(p) => pkgs.push(p),
            Err(e) => errors.push(e),
        }
    }
    errors.extend(check::check(&mut pkgs));
    if errors.is_empty() {
        Ok(pkgs)
    } else {
        Err(Errors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        load_str("t.tachyon", src).unwrap_err().to_string()
    }

    #[test]
    fn semantic_errors_are_located() {
        let e = err("package q;\nservice S {\n  rpc a(bytes) -> bytes = 1;\n  rpc b(bytes) -> bytes = 1;\n}\n");
        assert!(e.contains("msg_type 1 of `q.S.b` is already used by `q.S.a`"), "{e}");
        assert!(e.contains("--> t.tachyon:4:27"), "{e}");
        let e = err("package q;\nstruct A { b: Nope; }\n");
        assert!(e.contains("unknown type `Nope`") && e.contains("t.tachyon:2:15"), "{e}");
        let e = err("package q;\nstruct A { b: B; }\nstruct B { a?: A; }\n");
        assert!(e.contains("recursive type without indirection: A -> B -> A"), "{e}");
        load_str("t", "package q;\nstruct A { b: list<A>; m: map<string, A>; }\n").unwrap();
        let e = err("package q;\nstruct A { x: u8 = 300; }\n");
        assert!(e.contains("300 is outside 0..=255"), "{e}");
        let e = err("package q;\nstruct A { class: u8; }\n");
        assert!(e.contains("keyword"), "{e}");
    }

    #[test]
    fn msg_types_are_unique_across_files() {
        let a = (
            PathBuf::from("a.tachyon"),
            "package a; service S { rpc x(bytes) -> bytes = 9; }".to_string(),
        );
        let b = (
            PathBuf::from("b.tachyon"),
            "package b; service T { rpc y(bytes) -> bytes = 9; }".to_string(),
        );
        let e = load_sources(&[a, b]).unwrap_err().to_string();
        assert!(e.contains("already used by `a.S.x`") && e.contains("b.tachyon:1:"), "{e}");
    }
}
