//! TypeScript: `<package>.js` (CommonJS, loadable from `require` and `import` with no
//! compile step) plus `<package>.d.ts`. Interfaces, a `MsgType` map, a server interface,
//! `<service>Handlers(impl)` for `createRpcServer`, and a client whose methods return
//! Promises (and `…Sync` forms). Writers copy only schema fields; readers check every
//! type and range. 64-bit integers are `bigint`. The runtime is `tachyon-rpc/schema`
//! (msgpackr, with `undefined` written as nil).

use std::fmt::Write as _;

use super::{camel, header, shouting};
use crate::canonical::literal;
use crate::model::{Literal, Package, Service, Struct, Type};

/// The TypeScript type.
fn ts(t: &Type) -> String {
    match t {
        Type::Int { bits: 64, .. } => "bigint".into(),
        Type::Int { .. } | Type::F32 | Type::F64 => "number".into(),
        Type::Bool => "boolean".into(),
        Type::String => "string".into(),
        Type::Bytes => "Uint8Array".into(),
        Type::List(inner) => format!("Array<{}>", ts(inner)),
        Type::Map(inner) => format!("Record<string, {}>", ts(inner)),
        Type::Struct(n) | Type::Enum(n) | Type::Named(n, _) => n.clone(),
    }
}

/// A JS expression reading `v` (at `path`, a JS string expression) as `t`.
fn read(t: &Type, v: &str, path: &str, depth: usize) -> String {
    match t {
        Type::Int { signed, bits: 64 } => format!("rt.bigint({v}, {signed}, {path})"),
        Type::Int { signed, bits } => {
            let (lo, hi) = if *signed {
                (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
            } else {
                (0, (1i64 << bits) - 1)
            };
            format!("rt.int({v}, {lo}, {hi}, {path})")
        }
        Type::F32 | Type::F64 => format!("rt.num({v}, {path})"),
        Type::Bool => format!("rt.bool({v}, {path})"),
        Type::String | Type::Enum(_) => format!("rt.str({v}, {path})"),
        Type::Bytes => format!("rt.bytes({v}, {path})"),
        Type::List(inner) => {
            let (x, p) = (format!("x{depth}"), format!("p{depth}"));
            format!("rt.list({v}, {path}, ({x}, {p}) => {})", read(inner, &x, &p, depth + 1))
        }
        Type::Map(inner) => {
            let (x, p) = (format!("x{depth}"), format!("p{depth}"));
            format!("rt.dict({v}, {path}, ({x}, {p}) => {})", read(inner, &x, &p, depth + 1))
        }
        Type::Struct(n) | Type::Named(n, _) => format!("read{n}({v}, {path})"),
    }
}

/// A JS expression turning `v` of type `t` into what goes on the wire.
fn write(t: &Type, v: &str, depth: usize) -> String {
    match t {
        Type::List(inner) if needs_write(inner) => {
            let x = format!("x{depth}");
            format!("rt.listOut({v}, ({x}) => {})", write(inner, &x, depth + 1))
        }
        Type::Map(inner) if needs_write(inner) => {
            let x = format!("x{depth}");
            format!("rt.dictOut({v}, ({x}) => {})", write(inner, &x, depth + 1))
        }
        Type::Struct(n) | Type::Named(n, _) => format!("write{n}({v})"),
        _ => v.to_string(),
    }
}

fn needs_write(t: &Type) -> bool {
    match t {
        Type::Struct(_) | Type::Named(..) => true,
        Type::List(i) | Type::Map(i) => needs_write(i),
        _ => false,
    }
}

fn js_literal(d: &Literal, t: &Type) -> String {
    match (d, t) {
        (Literal::Int(v), Type::Int { bits: 64, .. }) => format!("{v}n"),
        (other, _) => literal(other),
    }
}

fn jsdoc(out: &mut String, indent: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for l in lines {
        let _ = writeln!(out, "{indent} * {}", l.replace("*/", "* /"));
    }
    let _ = writeln!(out, "{indent} */");
}

/// `[(file name, text)]`: the `.js` module and its `.d.ts`.
pub fn generate(pkg: &Package) -> Vec<(String, String)> {
    let (mut js, mut dts) = (header("//", pkg), header("//", pkg));
    js.push_str("'use strict';\n\nconst rt = require('tachyon-rpc/schema');\n\n");
    dts.push_str(
        "import type { Caller, CallOptions, Description, Handlers } from 'tachyon-rpc/schema';\n\n",
    );
    let _ = writeln!(js, "exports.PACKAGE = {:?};", pkg.name);
    let _ = writeln!(js, "exports.SCHEMA = {:?};", crate::canonical_text(pkg));
    let _ = writeln!(js, "exports.FINGERPRINT = {:?};", crate::fingerprint(pkg));
    let _ = writeln!(
        dts,
        "/** The schema package's name. */\nexport declare const PACKAGE: {:?};",
        pkg.name
    );
    dts.push_str("/** The package's schema in canonical form (what `describe` returns). */\nexport declare const SCHEMA: string;\n/** FNV-1a 64 of SCHEMA. */\nexport declare const FINGERPRINT: string;\n");
    for e in &pkg.enums {
        let consts: Vec<String> =
            e.values.iter().map(|v| format!("{}: {v:?}", shouting(v))).collect();
        let _ = writeln!(js, "\nexports.{} = Object.freeze({{ {} }});", e.name, consts.join(", "));
        jsdoc(
            &mut dts,
            "",
            &if e.doc.is_empty() {
                vec![format!(
                    "Values of `{}` (a newer peer's value is kept as a plain string).",
                    e.name
                )]
            } else {
                e.doc.clone()
            },
        );
        let union: Vec<String> = e.values.iter().map(|v| format!("{v:?}")).collect();
        let readonly: Vec<String> =
            e.values.iter().map(|v| format!("readonly {}: {v:?}", shouting(v))).collect();
        let _ = writeln!(dts, "export type {} = {} | (string & {{}});", e.name, union.join(" | "));
        let _ = writeln!(dts, "export declare const {}: {{ {} }};", e.name, readonly.join("; "));
    }
    for s in &pkg.structs {
        structure(&mut js, &mut dts, s);
    }
    for s in &pkg.services {
        service(&mut js, &mut dts, pkg, s);
    }
    if !pkg.topics.is_empty() {
        topics(&mut js, &mut dts, pkg);
    }
    vec![(format!("{}.js", pkg.name), js), (format!("{}.d.ts", pkg.name), dts)]
}

fn structure(js: &mut String, dts: &mut String, s: &Struct) {
    let n = &s.name;
    // Reader.
    let _ = writeln!(
        js,
        "\nfunction read{n}(v, path = {n:?}) {{\n  rt.map(v, path);\n  const o = {{}};"
    );
    for f in &s.fields {
        let key = format!("v[{:?}]", f.name);
        let path = format!("path + {:?}", format!(".{}", f.name));
        let r = read(&f.ty, &key, &path, 0);
        if f.optional {
            let _ =
                writeln!(js, "  if ({key} !== undefined && {key} !== null) o[{:?}] = {r};", f.name);
        } else if let Some(d) = &f.default {
            let _ = writeln!(
                js,
                "  o[{:?}] = {key} === undefined || {key} === null ? {} : {r};",
                f.name,
                js_literal(d, &f.ty)
            );
        } else {
            let _ = writeln!(js, "  o[{:?}] = {r};", f.name);
        }
    }
    let _ = writeln!(js, "  return o;\n}}\nexports.read{n} = read{n};");
    // Writer: schema fields only.
    let _ = writeln!(js, "function write{n}(v) {{\n  rt.map(v, {n:?});\n  const o = {{}};");
    for f in &s.fields {
        let key = format!("v[{:?}]", f.name);
        let w = write(&f.ty, &key, 0);
        if f.optional || f.default.is_some() {
            let _ =
                writeln!(js, "  if ({key} !== undefined && {key} !== null) o[{:?}] = {w};", f.name);
        } else {
            let _ = writeln!(js, "  o[{:?}] = {w};", f.name);
        }
    }
    let _ = writeln!(js, "  return o;\n}}\nexports.write{n} = write{n};");
    let _ = writeln!(js, "exports.encode{n} = (v) => rt.encode(write{n}(v));\nexports.decode{n} = (b) => read{n}(rt.decode(b));");
    // Declarations.
    jsdoc(
        dts,
        "",
        &if s.doc.is_empty() {
            vec![format!("The `{n}` struct (a MessagePack map keyed by field name).")]
        } else {
            s.doc.clone()
        },
    );
    let _ = writeln!(dts, "export interface {n} {{");
    for f in &s.fields {
        jsdoc(dts, "  ", &f.doc);
        if f.optional {
            let _ = writeln!(dts, "  {}?: {} | null;", f.name, ts(&f.ty));
        } else if f.default.is_some() {
            let _ = writeln!(
                dts,
                "  /** Default when absent: {}. */\n  {}?: {};",
                literal(f.default.as_ref().expect("checked")),
                f.name,
                ts(&f.ty)
            );
        } else {
            let _ = writeln!(dts, "  {}: {};", f.name, ts(&f.ty));
        }
    }
    let _ = writeln!(dts, "}}");
    let _ = writeln!(
        dts,
        "/** Reads a decoded value as `{n}`, checking every type and range (throws ERR_TACHYON_CODEC). */
export declare function read{n}(v: unknown, path?: string): {n};
/** `{n}`'s wire form: only schema fields. */
export declare function write{n}(v: {n}): Record<string, unknown>;
/** Encodes `{n}` as MessagePack. */
export declare function encode{n}(v: {n}): Buffer;
/** Decodes MessagePack as `{n}`. */
export declare function decode{n}(b: Uint8Array): {n};"
    );
}

#[allow(clippy::too_many_lines)] // one template, read top to bottom like the module it writes
fn service(js: &mut String, dts: &mut String, pkg: &Package, s: &Service) {
    let svc = &s.name;
    let lower = camel(svc);
    // msg_types and errors.
    let mts: Vec<String> =
        s.methods.iter().map(|m| format!("{}: {}", shouting(&m.name), m.msg_type)).collect();
    let describe = crate::model::DESCRIBE_MSG_TYPE;
    let _ = writeln!(js, "\nconst {svc}MsgType = Object.freeze({{ {}, DESCRIBE: {describe} }});\nexports.{svc}MsgType = {svc}MsgType;", mts.join(", "));
    let _ = writeln!(dts, "\n/** The msg_types of `{svc}`. */\nexport declare const {svc}MsgType: {{ {}; readonly DESCRIBE: {describe} }};", s.methods.iter().map(|m| format!("readonly {}: {}", shouting(&m.name), m.msg_type)).collect::<Vec<_>>().join("; "));
    let errs: Vec<String> =
        s.errors.iter().map(|e| format!("{}: {}", shouting(&e.name), e.code)).collect();
    let _ = writeln!(js, "exports.{svc}Error = Object.freeze({{ {} }});", errs.join(", "));
    let _ = writeln!(dts, "/** Application error codes of `{svc}`: throw `new ServiceError({svc}Error.X, message)`. */\nexport declare const {svc}Error: {{ {} }};", s.errors.iter().map(|e| format!("readonly {}: {}", shouting(&e.name), e.code)).collect::<Vec<_>>().join("; "));
    let _ = writeln!(
        js,
        "const {lower}Description = Object.freeze({{ package: {:?}, service: {svc:?}, fingerprint: exports.FINGERPRINT, schema: exports.SCHEMA }});\nexports.{lower}Description = {lower}Description;",
        pkg.name
    );
    let _ = writeln!(dts, "/** What a `{svc}` server answers to `describe`. */\nexport declare const {lower}Description: Description;");
    // Server interface and handlers.
    jsdoc(
        dts,
        "",
        &if s.doc.is_empty() {
            vec![format!("What a `{svc}` server implements (methods may return Promises).")]
        } else {
            s.doc.clone()
        },
    );
    let _ = writeln!(dts, "export interface {svc}Server {{");
    let _ = writeln!(js, "function {lower}Handlers(impl) {{\n  return {{");
    for m in &s.methods {
        let (req, resp) = (
            if m.request == Type::Bytes { "Buffer".to_string() } else { ts(&m.request) },
            if m.oneway {
                "void".to_string()
            } else if m.response == Type::Bytes {
                "Uint8Array".to_string()
            } else {
                ts(&m.response)
            },
        );
        jsdoc(
            dts,
            "  ",
            &if m.doc.is_empty() {
                vec![format!("msg_type {}.", m.msg_type)]
            } else {
                m.doc.clone()
            },
        );
        let arg =
            if m.request == Type::Bytes { "data".to_string() } else { rt_read_request(&m.request) };
        if m.stream {
            let _ = writeln!(
                dts,
                "  {}(req: {req}): Iterable<{resp}> | AsyncIterable<{resp}>;",
                m.name
            );
            let out = if m.response == Type::Bytes {
                "rt.bytesOut(r)".to_string()
            } else {
                format!("rt.encode({})", write(&m.response, "r", 0))
            };
            let _ = writeln!(
                js,
                "    [{}]: rt.streaming(async function* (data) {{ for await (const r of impl[{:?}]({arg})) yield {out}; }}),",
                m.msg_type, m.name
            );
            continue;
        }
        let _ = writeln!(dts, "  {}(req: {req}): {resp} | Promise<{resp}>;", m.name);
        let out = if m.oneway {
            "(void r, rt.EMPTY)".to_string()
        } else if m.response == Type::Bytes {
            "rt.bytesOut(r)".to_string()
        } else {
            format!("rt.encode({})", write(&m.response, "r", 0))
        };
        let _ = writeln!(
            js,
            "    [{}]: async (data) => {{ const r = await impl[{:?}]({arg}); return {out}; }},",
            m.msg_type, m.name
        );
    }
    let _ = writeln!(dts, "}}");
    let _ = writeln!(js, "    [{describe}]: () => rt.encode({lower}Description),\n  }};\n}}\nexports.{lower}Handlers = {lower}Handlers;");
    let _ = writeln!(dts, "/** `createRpcServer({{ socketPath, handlers: {lower}Handlers(impl) }})`: serves `impl` and `describe`. */\nexport declare function {lower}Handlers(impl: {svc}Server): Handlers;");
    // Client.
    let _ = writeln!(
        js,
        "class {svc}Client {{
  constructor(bus, opts = {{}}) {{
    this.bus = bus;
    this.timeoutMs = opts.timeoutMs;
  }}
  async describe(opts) {{
    return rt.readDescription(rt.decode(await rt.call(this, {describe}, rt.EMPTY, opts)));
  }}
  describeSync(opts) {{
    return rt.readDescription(rt.decode(rt.invoke(this, {describe}, rt.EMPTY, opts)));
  }}
  async verify(opts) {{
    rt.verify(await this.describe(opts), {lower}Description);
  }}"
    );
    let _ = writeln!(
        dts,
        "/** A typed client of `{svc}` over an `RpcBus` (caller end). An error reply rejects with `TachyonRpcError`. */
export declare class {svc}Client {{
  constructor(bus: Caller, opts?: {{ timeoutMs?: number }});
  readonly bus: Caller;
  timeoutMs: number | undefined;
  /** Which schema the server serves. */
  describe(opts?: CallOptions): Promise<Description>;
  describeSync(opts?: CallOptions): Description;
  /** Rejects (ERR_TACHYON_SCHEMA) naming every schema line the server and this client disagree on. */
  verify(opts?: CallOptions): Promise<void>;"
    );
    for m in &s.methods {
        let payload = if m.request == Type::Bytes {
            "req".to_string()
        } else {
            format!("rt.encode({})", write(&m.request, "req", 0))
        };
        if m.oneway {
            let _ = writeln!(
                js,
                "  async {name}(req, opts) {{\n    rt.notify(this, {mt}, {payload}, opts);\n  }}\n  {name}Sync(req, opts) {{\n    rt.notify(this, {mt}, {payload}, opts);\n  }}",
                mt = m.msg_type,
                name = m.name
            );
            let req =
                if m.request == Type::Bytes { "Uint8Array".to_string() } else { ts(&m.request) };
            jsdoc(
                dts,
                "  ",
                &if m.doc.is_empty() {
                    vec![format!(
                        "Sends `{}` (msg_type {}), oneway: no reply comes back.",
                        m.name, m.msg_type
                    )]
                } else {
                    m.doc.clone()
                },
            );
            let _ = writeln!(dts, "  {}(req: {req}, opts?: CallOptions): Promise<void>;", m.name);
            let _ = writeln!(dts, "  /** `{}`, returning once the request is in the ring. */\n  {}Sync(req: {req}, opts?: CallOptions): void;", m.name, m.name);
            continue;
        }
        if m.stream {
            let read = if m.response == Type::Bytes {
                "(b) => b".to_string()
            } else {
                format!("(b) => {}", rt_read_reply(&m.response, "b"))
            };
            let _ = writeln!(
                js,
                "  {name}(req, opts) {{\n    return rt.stream(this, {}, {payload}, opts, {read});\n  }}",
                m.msg_type,
                name = m.name
            );
            let (req, item) = (
                if m.request == Type::Bytes { "Uint8Array".to_string() } else { ts(&m.request) },
                if m.response == Type::Bytes { "Buffer".to_string() } else { ts(&m.response) },
            );
            let mut doc = if m.doc.is_empty() {
                vec![format!("Streams `{}` (msg_type {}).", m.name, m.msg_type)]
            } else {
                m.doc.clone()
            };
            doc.push("Items come in order (`for await`); `opts.timeoutMs` bounds each; leaving the loop early cancels the call.".into());
            jsdoc(dts, "  ", &doc);
            let _ = writeln!(
                dts,
                "  {}(req: {req}, opts?: CallOptions): AsyncGenerator<{item}, void, undefined>;",
                m.name
            );
            continue;
        }
        let finish = |r: &str| {
            if m.response == Type::Bytes {
                r.to_string()
            } else {
                rt_read_reply(&m.response, r)
            }
        };
        let _ = writeln!(
            js,
            "  async {name}(req, opts) {{\n    return {};\n  }}\n  {name}Sync(req, opts) {{\n    return {};\n  }}",
            finish(&format!("await rt.call(this, {}, {payload}, opts)", m.msg_type)),
            finish(&format!("rt.invoke(this, {}, {payload}, opts)", m.msg_type)),
            name = m.name
        );
        let (req, resp) = (
            if m.request == Type::Bytes { "Uint8Array".to_string() } else { ts(&m.request) },
            if m.response == Type::Bytes { "Buffer".to_string() } else { ts(&m.response) },
        );
        jsdoc(
            dts,
            "  ",
            &if m.doc.is_empty() {
                vec![format!("Calls `{}` (msg_type {}).", m.name, m.msg_type)]
            } else {
                m.doc.clone()
            },
        );
        let _ = writeln!(dts, "  {}(req: {req}, opts?: CallOptions): Promise<{resp}>;", m.name);
        let _ = writeln!(dts, "  /** Blocking form of `{}` (blocks the event loop until the reply). */\n  {}Sync(req: {req}, opts?: CallOptions): {resp};", m.name, m.name);
    }
    let _ = writeln!(js, "}}\nexports.{svc}Client = {svc}Client;");
    let _ = writeln!(dts, "}}");
}

fn rt_read_request(t: &Type) -> String {
    format!("rt.request(() => {})", read(t, "rt.decode(data)", "'request'", 0))
}

fn rt_read_reply(t: &Type, expr: &str) -> String {
    read(t, &format!("rt.decode({expr})"), "'reply'", 0)
}

/// `Topic`, `send<Topic>`, `decode<Topic>` and `decodeMessage`.
fn topics(js: &mut String, dts: &mut String, pkg: &Package) {
    let consts: Vec<String> =
        pkg.topics.iter().map(|t| format!("{}: {}", shouting(&t.name), t.msg_type)).collect();
    let _ = writeln!(js, "\nexports.Topic = Object.freeze({{ {} }});", consts.join(", "));
    let decl: Vec<String> = pkg
        .topics
        .iter()
        .map(|t| format!("readonly {}: {}", shouting(&t.name), t.msg_type))
        .collect();
    let _ = writeln!(dts, "\n/** The msg_types of the package's topics (typed messages one way over a Bus). */\nexport declare const Topic: {{ {} }};", decl.join("; "));
    let mut union = Vec::new();
    for t in &pkg.topics {
        let p = super::pascal(&t.name);
        let (arg, payload, value, decode) = if t.ty == Type::Bytes {
            ("Uint8Array".to_string(), "msg".to_string(), "Buffer".to_string(), "data".to_string())
        } else {
            (
                ts(&t.ty),
                format!("rt.encode({})", write(&t.ty, "msg", 0)),
                ts(&t.ty),
                read(&t.ty, "rt.decode(data)", &format!("{:?}", t.name), 0),
            )
        };
        let _ = writeln!(
            js,
            "exports.send{p} = (bus, msg, opts) => bus.send({payload}, {}, opts);",
            t.msg_type
        );
        let _ = writeln!(js, "exports.decode{p} = (data) => {decode};");
        jsdoc(
            dts,
            "",
            &if t.doc.is_empty() {
                vec![format!("Sends `msg` as a `{}` message (a full ring throws ERR_TACHYON_FULL unless opts.timeoutMs allows waiting).", t.name)]
            } else {
                t.doc.clone()
            },
        );
        let _ = writeln!(dts, "export declare function send{p}(bus: {{ send(data: Uint8Array, typeId: number, opts?: {{ timeoutMs?: number }}): void }}, msg: {arg}, opts?: {{ timeoutMs?: number }}): void;");
        let _ = writeln!(dts, "/** Decodes a `{}` message (throws ERR_TACHYON_CODEC when it does not fit). */\nexport declare function decode{p}(data: Uint8Array): {value};", t.name);
        union.push(format!("{{ topic: {:?}; value: {value} }}", t.name));
    }
    let _ =
        writeln!(js, "exports.decodeMessage = (typeId, data) => {{\n  switch (typeId & 0xffff) {{");
    for t in &pkg.topics {
        let _ = writeln!(
            js,
            "    case {}: return {{ topic: {:?}, value: exports.decode{}(data) }};",
            t.msg_type,
            t.name,
            super::pascal(&t.name)
        );
    }
    let _ = writeln!(js, "    default: return null;\n  }}\n}};");
    let _ = writeln!(
        dts,
        "/** A received message of one of the package's topics. */\nexport type TopicMessage = {};",
        union.join(" | ")
    );
    let _ = writeln!(dts, "/** The topic and decoded value of a received message; null when its msg_type is none of this package's topics. */\nexport declare function decodeMessage(typeId: number, data: Uint8Array): TopicMessage | null;");
}
