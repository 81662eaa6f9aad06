//! The canonical text of a package (comments dropped, one item per line) and its
//! fingerprint: what `describe` returns, so a client can say where it disagrees.

use std::fmt::Write as _;

use crate::model::{Literal, Package};

/// The package as a normalized schema text.
pub fn text(p: &Package) -> String {
    let mut out = format!("package {};\n", p.name);
    for e in &p.enums {
        let _ = writeln!(out, "enum {} {{ {} }}", e.name, e.values.join(", "));
    }
    for s in &p.structs {
        let _ = write!(out, "struct {} {{", s.name);
        for f in &s.fields {
            let _ = write!(
                out,
                " {}{}: {}",
                f.name,
                if f.optional { "?" } else { "" },
                f.ty.spelling()
            );
            if let Some(d) = &f.default {
                let _ = write!(out, " = {}", literal(d));
            }
            out.push(';');
        }
        if !s.reserved.is_empty() {
            let _ = write!(out, " reserved {};", s.reserved.join(", "));
        }
        out.push_str(" }\n");
    }
    for s in &p.services {
        let _ = write!(out, "service {} {{", s.name);
        for m in &s.methods {
            if m.oneway {
                let _ = write!(
                    out,
                    " oneway rpc {}({}) = {};",
                    m.name,
                    m.request.spelling(),
                    m.msg_type
                );
            } else {
                let _ = write!(
                    out,
                    " rpc {}({}) -> {}{} = {};",
                    m.name,
                    m.request.spelling(),
                    if m.stream { "stream " } else { "" },
                    m.response.spelling(),
                    m.msg_type
                );
            }
        }
        for e in &s.errors {
            let _ = write!(out, " error {} = {};", e.name, e.code);
        }
        if !s.reserved.is_empty() {
            let r: Vec<String> = s.reserved.iter().map(ToString::to_string).collect();
            let _ = write!(out, " reserved {};", r.join(", "));
        }
        out.push_str(" }\n");
    }
    for t in &p.topics {
        let _ = writeln!(out, "topic {}: {} = {};", t.name, t.ty.spelling(), t.msg_type);
    }
    out
}

/// A default value as the schema spells it.
pub fn literal(d: &Literal) -> String {
    match d {
        Literal::Int(v) => v.to_string(),
        Literal::Float(v) => format!("{v:?}"),
        Literal::Bool(v) => v.to_string(),
        Literal::Str(s) => format!("{s:?}"),
    }
}

/// FNV-1a 64 of the canonical text, as 16 hex digits.
pub fn fingerprint(p: &Package) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text(p).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
