//! Every semantic rule of the language, over all packages at once: names resolve,
//! msg_types are unique across `schemas/`, defaults fit their types, and no struct
//! contains itself without a `list` or `map` in between.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::{Diagnostic, Span};
use crate::model::{Literal, Package, Type};

/// Names the generated Python could not use as attributes.
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];
/// Names Rust cannot take even as raw identifiers.
const RUST_UNRAWABLE: &[&str] = &["self", "Self", "super", "crate", "_"];
/// Names the generators use themselves.
const BUILTIN_TYPES: &[&str] = &[
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "bool", "string", "bytes",
    "list", "map",
];

struct Checker<'a> {
    pkg: &'a Package,
    errors: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, span: Span, message: impl Into<String>, label: impl Into<String>) {
        self.errors.push(Diagnostic::new(&self.pkg.path, &self.pkg.source, span, message, label));
    }

    fn name(&mut self, name: &str, span: Span, what: &str) {
        if PYTHON_KEYWORDS.contains(&name) || RUST_UNRAWABLE.contains(&name) {
            self.err(
                span,
                format!("`{name}` cannot name a {what}: it is a keyword in a generated language"),
                "reserved word",
            );
        }
    }
}

/// Resolves named types in place and checks every rule. All errors are collected.
pub fn check(packages: &mut [Package]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut seen_pkg: HashMap<String, usize> = HashMap::new();
    // msg_type -> (package index, what, span)
    let mut msg_types: BTreeMap<u16, String> = BTreeMap::new();
    for i in 0..packages.len() {
        if let Some(first) = seen_pkg.insert(packages[i].name.clone(), i) {
            let span = Span { offset: 0, line: 1, col: 1, len: 7 };
            let other = packages[first].path.display().to_string();
            let p = &packages[i];
            errors.push(Diagnostic::new(
                &p.path,
                &p.source,
                span,
                format!("package `{}` is also defined in {other}", p.name),
                "duplicate package",
            ));
        }
        resolve(&mut packages[i], &mut errors);
        let p = &packages[i];
        let mut c = Checker { pkg: p, errors: &mut errors };
        rules(&mut c);
        for s in &p.services {
            for m in &s.methods {
                let what = format!("{}.{}.{}", p.name, s.name, m.name);
                if let Some(prev) = msg_types.insert(m.msg_type, what.clone()) {
                    c.err(
                        m.msg_type_span,
                        format!("msg_type {} of `{what}` is already used by `{prev}`", m.msg_type),
                        "used twice",
                    );
                }
            }
        }
        for t in &p.topics {
            let what = format!("{}.{}", p.name, t.name);
            if let Some(prev) = msg_types.insert(t.msg_type, what.clone()) {
                c.err(
                    t.msg_type_span,
                    format!(
                        "msg_type {} of topic `{what}` is already used by `{prev}`",
                        t.msg_type
                    ),
                    "used twice",
                );
            }
        }
    }
    errors.sort_by(|a, b| (&a.file, a.span.offset).cmp(&(&b.file, b.span.offset)));
    errors
}

fn resolve(p: &mut Package, errors: &mut Vec<Diagnostic>) {
    let structs: HashSet<String> = p.structs.iter().map(|s| s.name.clone()).collect();
    let enums: HashSet<String> = p.enums.iter().map(|e| e.name.clone()).collect();
    let (path, source) = (p.path.clone(), p.source.clone());
    let mut fix = |t: &mut Type| {
        resolve_type(t, &structs, &enums, &mut |span, n| {
            errors.push(Diagnostic::new(
                &path,
                &source,
                span,
                format!("unknown type `{n}`"),
                "not a struct or enum of this package, nor a built-in type",
            ));
        });
    };
    for s in &mut p.structs {
        for f in &mut s.fields {
            fix(&mut f.ty);
        }
    }
    for t in &mut p.topics {
        fix(&mut t.ty);
    }
    for s in &mut p.services {
        for m in &mut s.methods {
            fix(&mut m.request);
            if !m.oneway {
                fix(&mut m.response);
            }
        }
    }
}

fn resolve_type(
    t: &mut Type,
    structs: &HashSet<String>,
    enums: &HashSet<String>,
    bad: &mut dyn FnMut(Span, &str),
) {
    match t {
        Type::List(inner) | Type::Map(inner) => resolve_type(inner, structs, enums, bad),
        Type::Named(n, span) => {
            if structs.contains(n.as_str()) {
                *t = Type::Struct(n.clone());
            } else if enums.contains(n.as_str()) {
                *t = Type::Enum(n.clone());
            } else {
                bad(*span, n);
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_lines)] // one block per rule, in the order docs/SCHEMA.md lists them
fn rules(c: &mut Checker<'_>) {
    let p = c.pkg;
    let mut types: HashMap<&str, Span> = HashMap::new();
    let named = p
        .structs
        .iter()
        .map(|s| (&s.name, s.span))
        .chain(p.enums.iter().map(|e| (&e.name, e.span)));
    for (name, span) in named {
        if BUILTIN_TYPES.contains(&name.as_str()) {
            c.err(span, format!("`{name}` is a built-in type"), "rename it");
        } else if types.insert(name, span).is_some() {
            c.err(
                span,
                format!("type `{name}` is defined twice in package `{}`", p.name),
                "defined again here",
            );
        }
        c.name(name, span, "type");
    }
    for s in &p.structs {
        let mut fields = HashSet::new();
        for f in &s.fields {
            c.name(&f.name, f.span, "field");
            if !fields.insert(f.name.as_str()) {
                c.err(
                    f.span,
                    format!("field `{}` appears twice in `{}`", f.name, s.name),
                    "duplicate field",
                );
            }
            if s.reserved.contains(&f.name) {
                c.err(
                    f.span,
                    format!("field name `{}` is reserved in `{}`", f.name, s.name),
                    "reserved name",
                );
            }
            if let Some(d) = &f.default {
                if f.optional {
                    c.err(
                        f.span,
                        format!("field `{}` is optional and has a default: pick one", f.name),
                        "optional with default",
                    );
                } else if let Err(why) = default_fits(d, &f.ty, p) {
                    c.err(
                        f.span,
                        format!(
                            "the default of `{}.{}` does not fit its type {}: {why}",
                            s.name,
                            f.name,
                            f.ty.spelling()
                        ),
                        "bad default",
                    );
                }
            }
        }
    }
    for e in &p.enums {
        let mut seen = HashSet::new();
        if e.values.is_empty() {
            c.err(e.span, format!("enum `{}` has no values", e.name), "empty enum");
        }
        for v in &e.values {
            if crate::gen::pascal(v) == "Other" {
                c.err(e.span, format!("enum `{}` cannot have the value `{v}`: generated code keeps unknown values in `Other`", e.name), "reserved value");
            }
            if !seen.insert(v) {
                c.err(e.span, format!("enum `{}` lists `{v}` twice", e.name), "duplicate value");
            }
        }
    }
    for s in &p.services {
        c.name(&s.name, s.span, "service");
        let mut method_names = HashSet::new();
        for m in &s.methods {
            c.name(&m.name, m.span, "method");
            if m.name == "describe" {
                c.err(
                    m.span,
                    "`describe` is generated for every service (msg_type 0x7FFF)",
                    "reserved method name",
                );
            }
            if !method_names.insert(m.name.as_str()) {
                c.err(
                    m.span,
                    format!("method `{}` appears twice in service `{}`", m.name, s.name),
                    "duplicate method",
                );
            }
            if s.reserved.contains(&m.msg_type) {
                c.err(
                    m.msg_type_span,
                    format!("msg_type {} is reserved in service `{}`", m.msg_type, s.name),
                    "reserved msg_type",
                );
            }
        }
        let mut codes = HashMap::new();
        for e in &s.errors {
            c.name(&e.name, e.span, "error");
            if !method_names.insert(e.name.as_str()) {
                c.err(
                    e.span,
                    format!(
                        "`{}` names both an error and a method (or another error) of `{}`",
                        e.name, s.name
                    ),
                    "duplicate name",
                );
            }
            if let Some(prev) = codes.insert(e.code, &e.name) {
                c.err(
                    e.span,
                    format!("error code {} is used by `{prev}` too", e.code),
                    "duplicate code",
                );
            }
        }
    }
    let mut topics = HashSet::new();
    for t in &p.topics {
        c.name(&t.name, t.span, "topic");
        if !topics.insert(t.name.as_str()) {
            c.err(t.span, format!("topic `{}` is defined twice", t.name), "duplicate topic");
        }
    }
    cycles(c);
}

fn default_fits(d: &Literal, ty: &Type, p: &Package) -> Result<(), String> {
    match (d, ty) {
        (Literal::Int(v), Type::Int { signed, bits }) => {
            let (lo, hi) = if *signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if (lo..=hi).contains(v) {
                Ok(())
            } else {
                Err(format!("{v} is outside {lo}..={hi}"))
            }
        }
        (Literal::Int(_) | Literal::Float(_), Type::F32 | Type::F64)
        | (Literal::Bool(_), Type::Bool)
        | (Literal::Str(_), Type::String) => Ok(()),
        (Literal::Str(v), Type::Enum(e)) => {
            let en = p.enums.iter().find(|x| &x.name == e).ok_or("unknown enum")?;
            if en.values.contains(v) {
                Ok(())
            } else {
                Err(format!("`{v}` is not a value of `{e}`"))
            }
        }
        _ => Err("only integers, floats, bools, strings and enum values take defaults".into()),
    }
}

/// A struct that contains itself through required or optional fields has no finite
/// encoding in Rust; `list` and `map` break the cycle.
fn cycles(c: &mut Checker<'_>) {
    let p = c.pkg;
    let direct = |name: &str| -> Vec<(String, Span)> {
        p.structs
            .iter()
            .find(|s| s.name == name)
            .map(|s| {
                s.fields
                    .iter()
                    .filter_map(|f| match &f.ty {
                        Type::Struct(n) => Some((n.clone(), f.span)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut reported = HashSet::new();
    for s in &p.structs {
        // Depth-first from s, looking for a path back to s.
        let mut stack: Vec<(String, Vec<String>, Span)> = direct(&s.name)
            .into_iter()
            .map(|(n, sp)| (n.clone(), vec![s.name.clone(), n], sp))
            .collect();
        let mut visited = HashSet::new();
        while let Some((at, path, first_span)) = stack.pop() {
            if at == s.name {
                if reported.insert(s.name.clone()) {
                    c.err(
                        first_span,
                        format!("recursive type without indirection: {}", path.join(" -> ")),
                        "put this field in a `list` or `map`",
                    );
                }
                break;
            }
            if !visited.insert(at.clone()) {
                continue;
            }
            for (n, _) in direct(&at) {
                let mut next = path.clone();
                next.push(n.clone());
                stack.push((n, next, first_span));
            }
        }
    }
}
