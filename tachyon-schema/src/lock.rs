//! `schemas/tachyon.lock`: every released msg_type, field and type, and the check that
//! names the evolution rule a schema change breaks. A deliberate break needs an
//! explicit flag (`tachyon-codegen lock --allow-breaking`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Package;

/// What was released: per package, its structs, enums and services.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// The lock format's version.
    pub version: u32,
    /// Packages by name.
    pub packages: BTreeMap<String, PackageLock>,
}

/// One package as released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackageLock {
    /// Structs by name.
    pub structs: BTreeMap<String, StructLock>,
    /// Enums by name: their values.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Services by name.
    pub services: BTreeMap<String, ServiceLock>,
    /// Topics by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topics: BTreeMap<String, TopicLock>,
}

/// A topic as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicLock {
    /// Its msg_type.
    pub msg_type: u16,
    /// Its message type's spelling.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A struct as released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StructLock {
    /// Fields by name.
    pub fields: BTreeMap<String, FieldLock>,
    /// Reserved field names.
    pub reserved: Vec<String>,
}

/// A field as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldLock {
    /// Its type as the schema spells it.
    #[serde(rename = "type")]
    pub ty: String,
    /// `name?:`.
    pub optional: bool,
    /// Has a default (so readers never miss it).
    pub has_default: bool,
}

/// A service as released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceLock {
    /// Methods by name.
    pub methods: BTreeMap<String, MethodLock>,
    /// Error codes by name.
    pub errors: BTreeMap<String, u32>,
}

/// A method as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodLock {
    /// Its msg_type.
    pub msg_type: u16,
    /// The request type's spelling.
    pub request: String,
    /// The reply type's spelling.
    pub response: String,
}

/// A change that breaks a released peer: the rule and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name, e.g. `required-field-added`.
    pub rule: &'static str,
    /// What it applies to, e.g. `quote.QuoteReq.venue`.
    pub item: String,
    /// What changed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaking change [{}] {}: {}", self.rule, self.item, self.detail)
    }
}

impl Lock {
    /// The lock of the given (checked) packages.
    pub fn of(packages: &[Package]) -> Self {
        let mut lock = Lock { version: 1, packages: BTreeMap::new() };
        for p in packages {
            let mut pl = PackageLock::default();
            for s in &p.structs {
                let fields = s
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            FieldLock {
                                ty: f.ty.spelling(),
                                optional: f.optional,
                                has_default: f.default.is_some(),
                            },
                        )
                    })
                    .collect();
                pl.structs
                    .insert(s.name.clone(), StructLock { fields, reserved: s.reserved.clone() });
            }
            for e in &p.enums {
                pl.enums.insert(e.name.clone(), e.values.clone());
            }
            for s in &p.services {
                let methods = s
                    .methods
                    .iter()
                    .map(|m| {
                        (
                            m.name.clone(),
                            MethodLock {
                                msg_type: m.msg_type,
                                request: m.request.spelling(),
                                response: if m.oneway {
                                    "oneway".into()
                                } else if m.stream {
                                    format!("stream {}", m.response.spelling())
                                } else {
                                    m.response.spelling()
                                },
                            },
                        )
                    })
                    .collect();
                let errors = s.errors.iter().map(|e| (e.name.clone(), e.code)).collect();
                pl.services.insert(s.name.clone(), ServiceLock { methods, errors });
            }
            for t in &p.topics {
                pl.topics.insert(
                    t.name.clone(),
                    TopicLock { msg_type: t.msg_type, ty: t.ty.spelling() },
                );
            }
            lock.packages.insert(p.name.clone(), pl);
        }
        lock
    }

    /// Reads a lock file's text.
    ///
    /// # Errors
    /// The JSON error, for a file that is not a lock.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a tachyon.lock: {e}"))
    }

    /// The lock file's text (stable: sorted keys, two-space indent, final newline).
    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Every way `new` breaks peers built against `old`.
#[allow(clippy::too_many_lines)] // one block per rule, in the order docs/SCHEMA.md lists them
pub fn check(old: &Lock, new: &Lock) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut push = |rule, item: String, detail: String| v.push(Violation { rule, item, detail });
    for (pname, op) in &old.packages {
        let Some(np) = new.packages.get(pname) else {
            push("package-removed", pname.clone(), "the package is gone".into());
            continue;
        };
        for (sname, os) in &op.structs {
            let item = format!("{pname}.{sname}");
            let Some(ns) = np.structs.get(sname) else {
                push("struct-removed", item, "the struct is gone".into());
                continue;
            };
            for (fname, of) in &os.fields {
                let item = format!("{pname}.{sname}.{fname}");
                match ns.fields.get(fname) {
                    None if !of.optional && !of.has_default => {
                        push("required-field-removed", item, "old readers require it".into());
                    }
                    None if !ns.reserved.contains(fname) => {
                        push(
                            "field-removed-not-reserved",
                            item,
                            format!("add `reserved {fname};` so the name is never reused"),
                        );
                    }
                    None => {}
                    Some(nf) => {
                        if nf.ty != of.ty {
                            push(
                                "field-type-changed",
                                item.clone(),
                                format!("{} -> {}", of.ty, nf.ty),
                            );
                        }
                        if of.optional && !nf.optional && !nf.has_default {
                            push(
                                "field-made-required",
                                item,
                                "old writers may leave it out".into(),
                            );
                        }
                    }
                }
            }
            for (fname, nf) in &ns.fields {
                if !os.fields.contains_key(fname) && !nf.optional && !nf.has_default {
                    push(
                        "required-field-added",
                        format!("{pname}.{sname}.{fname}"),
                        "old writers never send it: make it optional or give it a default".into(),
                    );
                }
                if os.reserved.contains(fname) {
                    push(
                        "reserved-name-reused",
                        format!("{pname}.{sname}.{fname}"),
                        "the name was retired".into(),
                    );
                }
            }
        }
        for (ename, ov) in &op.enums {
            let item = format!("{pname}.{ename}");
            match np.enums.get(ename) {
                None => push("enum-removed", item, "the enum is gone".into()),
                Some(nv) => {
                    for val in ov.iter().filter(|x| !nv.contains(x)) {
                        push("enum-value-removed", item.clone(), format!("`{val}` is gone"));
                    }
                }
            }
        }
        for (svname, osv) in &op.services {
            let item = format!("{pname}.{svname}");
            let Some(nsv) = np.services.get(svname) else {
                push("service-removed", item, "the service is gone".into());
                continue;
            };
            for (mname, om) in &osv.methods {
                let item = format!("{pname}.{svname}.{mname}");
                match nsv.methods.get(mname) {
                    None => push(
                        "method-removed",
                        item,
                        format!("old clients still call msg_type {}", om.msg_type),
                    ),
                    Some(nm) => {
                        if nm.msg_type != om.msg_type {
                            push(
                                "msg-type-changed",
                                item.clone(),
                                format!("{} -> {}", om.msg_type, nm.msg_type),
                            );
                        }
                        if nm.request != om.request || nm.response != om.response {
                            push(
                                "method-signature-changed",
                                item,
                                format!(
                                    "({}) -> {} became ({}) -> {}",
                                    om.request, om.response, nm.request, nm.response
                                ),
                            );
                        }
                    }
                }
            }
            for (ename, code) in &osv.errors {
                if let Some(nc) = nsv.errors.get(ename) {
                    if nc != code {
                        push(
                            "error-code-changed",
                            format!("{pname}.{svname}.{ename}"),
                            format!("{code} -> {nc}"),
                        );
                    }
                }
            }
        }
    }
    for (pname, op) in &old.packages {
        let Some(np) = new.packages.get(pname) else { continue };
        for (tname, ot) in &op.topics {
            let item = format!("{pname}.{tname}");
            match np.topics.get(tname) {
                None => push(
                    "topic-removed",
                    item,
                    format!("old receivers still expect msg_type {}", ot.msg_type),
                ),
                Some(nt) => {
                    if nt.msg_type != ot.msg_type {
                        push(
                            "msg-type-changed",
                            item.clone(),
                            format!("{} -> {}", ot.msg_type, nt.msg_type),
                        );
                    }
                    if nt.ty != ot.ty {
                        push("topic-type-changed", item, format!("{} -> {}", ot.ty, nt.ty));
                    }
                }
            }
        }
    }
    // A msg_type released for one method and now used by another, anywhere.
    let released: BTreeMap<u16, String> = methods(old);
    for (mt, now) in methods(new) {
        if let Some(was) = released.get(&mt) {
            if *was != now {
                push("msg-type-reused", now, format!("msg_type {mt} was released as `{was}`"));
            }
        }
    }
    v
}

fn methods(l: &Lock) -> BTreeMap<u16, String> {
    let mut out = BTreeMap::new();
    for (p, pl) in &l.packages {
        for (s, sl) in &pl.services {
            for (m, ml) in &sl.methods {
                out.insert(ml.msg_type, format!("{p}.{s}.{m}"));
            }
        }
        for (t, tl) in &pl.topics {
            out.insert(tl.msg_type, format!("{p}.{t}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(src: &str) -> Lock {
        Lock::of(&crate::load_str("t.tachyon", src).unwrap())
    }

    const V1: &str =
        "package q;\nstruct R { a: u32; b?: string; }\nservice S { rpc get(R) -> R = 1; }\n";

    #[test]
    fn compatible_changes_pass() {
        let v2 = "package q;\nstruct R { a: u32; b?: string; c?: u8; d: u8 = 3; }\nservice S { rpc get(R) -> R = 1; rpc put(R) -> R = 2; }\n";
        assert_eq!(check(&lock(V1), &lock(v2)), vec![]);
        assert_eq!(Lock::parse(&lock(V1).to_text()).unwrap(), lock(V1));
    }

    #[test]
    fn each_breaking_change_names_its_rule() {
        let rules = |src: &str| {
            check(&lock(V1), &lock(src)).into_iter().map(|v| v.rule).collect::<Vec<_>>()
        };
        assert_eq!(rules("package q;\nstruct R { a: u32; b?: string; c: u8; }\nservice S { rpc get(R) -> R = 1; }\n"), vec!["required-field-added"]);
        assert_eq!(rules("package q;\nstruct R { a: u64; b?: string; }\nservice S { rpc get(R) -> R = 1; }\n"), vec!["field-type-changed"]);
        assert_eq!(rules("package q;\nstruct R { a: u32; b?: string; }\nservice S { rpc get(R) -> R = 2; rpc other(R) -> R = 1; }\n"), vec!["msg-type-changed", "msg-type-reused"]);
        assert_eq!(
            rules("package q;\nstruct R { a: u32; }\nservice S { rpc get(R) -> R = 1; }\n"),
            vec!["field-removed-not-reserved"]
        );
        assert_eq!(rules("package q;\nstruct R { a: u32; reserved b; }\nservice S { rpc get(R) -> R = 1; }\n"), Vec::<&str>::new());
    }
}
