//! Rust: what `tachyon::include_schema!` expands to. Types with serde (MessagePack maps
//! keyed by field name), msg_type constants, a server trait per service, its
//! `dispatcher(impl)`, and a typed client over any `tachyon::rpc::Caller`.

use std::fmt::Write as _;

use super::{pascal, shouting, snake};
use crate::model::{Enum, Field, Literal, Package, Service, Struct, Type};

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
    "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static",
    "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized",
    "virtual", "yield", "try", "gen",
];

fn ident(name: &str) -> String {
    if RUST_KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

fn doc(out: &mut String, indent: &str, lines: &[String], fallback: &str) {
    if lines.is_empty() {
        let _ = writeln!(out, "{indent}#[doc = {fallback:?}]");
    }
    for l in lines {
        let _ = writeln!(out, "{indent}#[doc = {:?}]", format!(" {l}"));
    }
}

/// The Rust type of a schema type. `nested`: inside a list or map, where bytes need
/// `ByteBuf` (a field-level `with` cannot reach them).
fn ty(t: &Type, nested: bool) -> String {
    match t {
        Type::Int { signed, bits } => format!("{}{bits}", if *signed { 'i' } else { 'u' }),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Bool => "bool".into(),
        Type::String => "::std::string::String".into(),
        Type::Bytes if nested => "::tachyon::__private::serde_bytes::ByteBuf".into(),
        Type::Bytes => "::std::vec::Vec<u8>".into(),
        Type::List(inner) => format!("::std::vec::Vec<{}>", ty(inner, true)),
        Type::Map(inner) => {
            format!("::std::collections::BTreeMap<::std::string::String, {}>", ty(inner, true))
        }
        Type::Struct(n) | Type::Enum(n) | Type::Named(n, _) => n.clone(),
    }
}

fn literal(d: &Literal, t: &Type) -> String {
    match (d, t) {
        (Literal::Int(v), Type::F32 | Type::F64) => format!("{v}.0"),
        (Literal::Int(v), _) => v.to_string(),
        (Literal::Float(v), _) => format!("{v:?}"),
        (Literal::Bool(v), _) => v.to_string(),
        (Literal::Str(s), Type::Enum(e)) => format!("{e}::{}", pascal(s)),
        (Literal::Str(s), _) => format!("::std::string::String::from({s:?})"),
    }
}

/// The body of `pub mod <package> { ... }` for one package.
pub fn generate(pkg: &Package) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "/// The package's schema, in canonical form (what `describe` returns).");
    let _ = writeln!(out, "pub const SCHEMA: &str = {:?};", crate::canonical_text(pkg));
    let _ = writeln!(out, "/// FNV-1a 64 of [`SCHEMA`].");
    let _ = writeln!(out, "pub const FINGERPRINT: &str = {:?};", crate::fingerprint(pkg));
    for e in &pkg.enums {
        enumeration(&mut out, e);
    }
    let mut defaults = String::new();
    for s in &pkg.structs {
        structure(&mut out, &mut defaults, s);
    }
    if !defaults.is_empty() {
        let _ = writeln!(out, "#[allow(non_snake_case)]\nmod __defaults {{\n    #[allow(unused_imports)]\n    use super::*;\n{defaults}}}");
    }
    for s in &pkg.services {
        service(&mut out, pkg, s);
    }
    if !pkg.topics.is_empty() {
        topics(&mut out, pkg);
    }
    out
}

/// `pub mod topics`: msg_types, a `Message` enum, `send_<topic>` and `decode`.
fn topics(out: &mut String, pkg: &Package) {
    let _ = writeln!(out, "/// The package's topics: typed messages sent one way over a [`::tachyon::Bus`].\npub mod topics {{\n    #[allow(unused_imports)]\n    use super::*;");
    for t in &pkg.topics {
        let _ = writeln!(
            out,
            "    /// The msg_type of `{}` messages.\n    pub const {}: u16 = {};",
            t.name,
            shouting(&t.name),
            t.msg_type
        );
    }
    let _ = writeln!(out, "    /// A received message of one of the package's topics.\n    #[derive(Debug, Clone, PartialEq)]\n    pub enum Message {{");
    for t in &pkg.topics {
        doc(out, "        ", &t.doc, &format!(" A `{}` message.", t.name));
        let _ = writeln!(out, "        {}({}),", pascal(&t.name), ty(&t.ty, false));
    }
    let _ = writeln!(out, "    }}");
    for t in &pkg.topics {
        let (arg, payload) = if t.ty == Type::Bytes {
            ("&[u8]".to_string(), "msg".to_string())
        } else {
            (format!("&{}", ty(&t.ty, false)), "&::tachyon::rpc::codec::encode(msg)?".to_string())
        };
        let _ = writeln!(
            out,
            "    /// Sends `msg` as a `{name}` message. A full ring fails at once with `Full`, unless\n    /// `timeout` allows waiting for room.\n    ///\n    /// # Errors\n    /// `Full`, `Timeout`, `PeerDead`, codec errors.\n    pub fn send_{snake}(bus: &::tachyon::Bus, msg: {arg}, timeout: ::core::option::Option<::std::time::Duration>) -> ::tachyon::Result<()> {{\n        let payload: &[u8] = {payload};\n        match timeout {{\n            ::core::option::Option::Some(t) => bus.send_timeout(payload, u32::from({k}), t),\n            ::core::option::Option::None => bus.send(payload, u32::from({k})),\n        }}\n    }}",
            name = t.name,
            snake = snake(&t.name),
            k = shouting(&t.name),
        );
    }
    let _ = writeln!(
        out,
        "    /// Decodes a received message by its msg_type: `Ok(None)` when it is none of this\n    /// package's topics.\n    ///\n    /// # Errors\n    /// `Codec` for a message that does not decode as its topic's type.\n    pub fn decode(type_id: u32, data: &[u8]) -> ::tachyon::Result<::core::option::Option<Message>> {{\n        ::core::result::Result::Ok(::core::option::Option::Some(match ::tachyon::msg_type(type_id) {{"
    );
    for t in &pkg.topics {
        let value = if t.ty == Type::Bytes {
            "data.to_vec()".to_string()
        } else {
            "::tachyon::rpc::codec::decode(data)?".to_string()
        };
        let _ = writeln!(
            out,
            "            {} => Message::{}({value}),",
            shouting(&t.name),
            pascal(&t.name)
        );
    }
    let _ = writeln!(out, "            _ => return ::core::result::Result::Ok(::core::option::Option::None),\n        }}))\n    }}\n}}");
}

fn enumeration(out: &mut String, e: &Enum) {
    doc(out, "", &e.doc, &format!(" The `{}` enum of the schema (a string on the wire).", e.name));
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum {} {{",
        e.name
    );
    for v in &e.values {
        let _ = writeln!(out, "    /// `{v}` on the wire.\n    {},", pascal(v));
    }
    let _ = writeln!(out, "    /// A value this schema does not know (a newer peer's), kept as sent.\n    Other(::std::string::String),\n}}");
    let _ = writeln!(out, "impl {} {{\n    /// The value as it travels.\n    pub fn as_str(&self) -> &str {{\n        match self {{", e.name);
    for v in &e.values {
        let _ = writeln!(out, "            Self::{} => {v:?},", pascal(v));
    }
    let _ = writeln!(out, "            Self::Other(s) => s,\n        }}\n    }}\n}}");
    let _ = writeln!(
        out,
        "impl ::tachyon::__private::serde::Serialize for {n} {{
    fn serialize<S: ::tachyon::__private::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {{
        s.serialize_str(self.as_str())
    }}
}}
impl<'de> ::tachyon::__private::serde::Deserialize<'de> for {n} {{
    fn deserialize<D: ::tachyon::__private::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {{
        let s = <::std::string::String as ::tachyon::__private::serde::Deserialize>::deserialize(d)?;
        ::core::result::Result::Ok(match s.as_str() {{",
        n = e.name
    );
    for v in &e.values {
        let _ = writeln!(out, "            {v:?} => Self::{},", pascal(v));
    }
    let _ = writeln!(out, "            _ => Self::Other(s),\n        }})\n    }}\n}}");
}

fn structure(out: &mut String, defaults: &mut String, s: &Struct) {
    doc(
        out,
        "",
        &s.doc,
        &format!(" The `{}` struct of the schema (a MessagePack map keyed by field name).", s.name),
    );
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq, ::tachyon::__private::serde::Serialize, ::tachyon::__private::serde::Deserialize)]\n#[serde(crate = \"::tachyon::__private::serde\")]\npub struct {} {{",
        s.name
    );
    for f in &s.fields {
        field(out, defaults, s, f);
    }
    let _ = writeln!(out, "}}");
}

fn field(out: &mut String, defaults: &mut String, s: &Struct, f: &Field) {
    doc(
        out,
        "    ",
        &f.doc,
        &format!(" `{}`{}.", f.name, if f.optional { " (optional)" } else { "" }),
    );
    let mut attrs: Vec<String> = Vec::new();
    let bytes = f.ty == Type::Bytes;
    if bytes {
        attrs.push("with = \"::tachyon::__private::serde_bytes\"".into());
    }
    let mut t = ty(&f.ty, false);
    if f.optional {
        attrs.push("default".into());
        attrs.push("skip_serializing_if = \"::core::option::Option::is_none\"".into());
        t = format!("::core::option::Option<{t}>");
    } else if let Some(d) = &f.default {
        let fname = format!("{}_{}", snake(&s.name), f.name);
        let _ = writeln!(
            defaults,
            "    pub(super) fn {fname}() -> {t} {{\n        {}\n    }}",
            literal(d, &f.ty)
        );
        attrs.push(format!("default = \"__defaults::{fname}\""));
    }
    if ident(&f.name) != f.name {
        attrs.push(format!("rename = {:?}", f.name));
    }
    if !attrs.is_empty() {
        let _ = writeln!(out, "    #[serde({})]", attrs.join(", "));
    }
    let _ = writeln!(out, "    pub {}: {t},", ident(&f.name));
}

#[allow(clippy::too_many_lines)] // one template, read top to bottom like the module it writes
fn service(out: &mut String, pkg: &Package, s: &Service) {
    let module = snake(&s.name);
    let trait_doc: Vec<String> = if s.doc.is_empty() {
        vec![format!(
            "The `{}` service: implement it, then serve [`{module}::dispatcher`].",
            s.name
        )]
    } else {
        s.doc.clone()
    };
    doc(out, "", &trait_doc, "");
    let _ = writeln!(
        out,
        "pub trait {}: ::core::marker::Send + ::core::marker::Sync + 'static {{",
        s.name
    );
    for m in &s.methods {
        let mdoc = if m.doc.is_empty() {
            vec![format!("`{}` (msg_type {}).", m.name, m.msg_type)]
        } else {
            m.doc.clone()
        };
        doc(out, "    ", &mdoc, "");
        let _ = writeln!(out, "    ///\n    /// # Errors\n    /// The [`::tachyon::rpc::ServerError`] the caller gets as its error reply.");
        let req =
            if m.request == Type::Bytes { "&[u8]".to_string() } else { ty(&m.request, false) };
        if m.stream {
            let sink = if m.response == Type::Bytes {
                "::tachyon::rpc::StreamSink<'_>".to_string()
            } else {
                format!("::tachyon::rpc::TypedSink<'_, '_, {}>", ty(&m.response, false))
            };
            let _ = writeln!(
                out,
                "    /// Streams: send each item through `sink` (a failed send means the caller\n    /// cancelled: return its error with `?`); returning ends the stream.\n    fn {}(&self, req: {req}, sink: &mut {sink}) -> ::core::result::Result<(), ::tachyon::rpc::ServerError>;",
                ident(&m.name),
            );
            continue;
        }
        let _ = writeln!(
            out,
            "    fn {}(&self, req: {req}) -> ::core::result::Result<{}, ::tachyon::rpc::ServerError>;",
            ident(&m.name),
            if m.oneway { "()".to_string() } else { ty(&m.response, false) }
        );
    }
    let _ = writeln!(out, "}}");
    async_trait(out, s);

    // The module: msg_types, error codes, the dispatcher.
    let _ = writeln!(
        out,
        "/// msg_types, error codes and the dispatcher of the `{}` service.\npub mod {module} {{",
        s.name
    );
    let _ = writeln!(out, "    #[allow(unused_imports)]\n    use super::*;");
    let _ = writeln!(out, "    /// The service's name.\n    pub const NAME: &str = {:?};", s.name);
    for m in &s.methods {
        let _ = writeln!(
            out,
            "    /// The msg_type of `{}`.\n    pub const {}: u16 = {};",
            m.name,
            shouting(&m.name),
            m.msg_type
        );
    }
    let _ = writeln!(
        out,
        "    /// The msg_type of the generated `describe`.\n    pub const DESCRIBE: u16 = {};",
        crate::model::DESCRIBE_MSG_TYPE
    );
    let _ = writeln!(out, "    /// The service's application error codes (the `code` of its error replies).\n    pub mod errors {{");
    for e in &s.errors {
        let edoc = if e.doc.is_empty() { vec![format!("`{}`.", e.name)] } else { e.doc.clone() };
        doc(out, "        ", &edoc, "");
        let _ = writeln!(out, "        pub const {}: u32 = {};", shouting(&e.name), e.code);
        let _ = writeln!(
            out,
            "        /// A [`::tachyon::rpc::ServerError`] with code [`{c}`].\n        pub fn {f}(message: impl ::core::convert::Into<::std::string::String>) -> ::tachyon::rpc::ServerError {{\n            ::tachyon::rpc::ServerError::new({c}, message)\n        }}",
            c = shouting(&e.name),
            f = ident(&snake(&e.name)),
        );
    }
    let _ = writeln!(out, "    }}");
    let _ = writeln!(
        out,
        "    /// What `describe` answers.
    pub fn description() -> ::tachyon::rpc::Description {{
        ::tachyon::rpc::Description::new({:?}, NAME, FINGERPRINT, SCHEMA)
    }}",
        pkg.name
    );
    let _ = writeln!(
        out,
        "    /// A dispatcher serving `server`'s methods, and `describe`.
    ///
    /// # Panics
    /// Never: the schema checker made every msg_type unique.
    pub fn dispatcher<S: super::{}>(server: S) -> ::tachyon::rpc::Dispatcher {{
        let server = ::std::sync::Arc::new(server);
        let mut d = ::tachyon::rpc::Dispatcher::new();",
        s.name
    );
    for m in &s.methods {
        let call = format!("s.{}(req)", ident(&m.name));
        let konst = shouting(&m.name);
        let reg = match (m.request == Type::Bytes, m.response == Type::Bytes) {
            _ if m.stream => {
                let name = ident(&m.name);
                match (m.request == Type::Bytes, m.response == Type::Bytes) {
                    (true, true) => format!(
                        "d.register_stream_raw({konst}, {:?}, move |req: &[u8], sink: &mut ::tachyon::rpc::StreamSink<'_>| s.{name}(req, sink))",
                        m.name
                    ),
                    (true, false) => format!(
                        "d.register_stream_raw({konst}, {:?}, move |req: &[u8], sink: &mut ::tachyon::rpc::StreamSink<'_>| s.{name}(req, &mut ::tachyon::rpc::TypedSink::new(sink)))",
                        m.name
                    ),
                    (false, true) => format!(
                        "d.register_stream_raw({konst}, {:?}, move |req: &[u8], sink: &mut ::tachyon::rpc::StreamSink<'_>| {{ let req: {} = ::tachyon::__private::decode_request(req)?; s.{name}(req, sink) }})",
                        m.name,
                        ty(&m.request, false)
                    ),
                    (false, false) => format!(
                        "d.register_stream_typed({konst}, {:?}, move |req: {}, sink: &mut ::tachyon::rpc::TypedSink<'_, '_, {}>| s.{name}(req, sink))",
                        m.name,
                        ty(&m.request, false),
                        ty(&m.response, false)
                    ),
                }
            }
            // A oneway method: answered (empty) only when called with a correlation id;
            // a oneway send (correlation id 0) gets no reply.
            (true, _) if m.oneway => format!(
                "d.register_raw_fallible({konst}, {:?}, move |req: &[u8]| {call}.map(|()| ::std::vec::Vec::new()))",
                m.name
            ),
            (false, _) if m.oneway => format!(
                "d.register_raw_fallible({konst}, {:?}, move |req: &[u8]| {{ let req: {} = ::tachyon::__private::decode_request(req)?; {call}.map(|()| ::std::vec::Vec::new()) }})",
                m.name,
                ty(&m.request, false)
            ),
            (true, true) => format!("d.register_raw_fallible({konst}, {:?}, move |req: &[u8]| {call})", m.name),
            (false, false) => format!("d.register_typed({konst}, {:?}, move |req: {}| {call})", m.name, ty(&m.request, false)),
            (true, false) => format!(
                "d.register_raw_fallible({konst}, {:?}, move |req: &[u8]| ::tachyon::__private::encode_response(&{call}?))",
                m.name
            ),
            (false, true) => format!(
                "d.register_raw_fallible({konst}, {:?}, move |req: &[u8]| {{ let req: {} = ::tachyon::__private::decode_request(req)?; {call} }})",
                m.name,
                ty(&m.request, false)
            ),
        };
        let _ = writeln!(
            out,
            "        {{\n            let s = ::std::sync::Arc::clone(&server);\n            {reg}\n                .expect(\"msg_types are unique\");\n        }}"
        );
    }
    let _ = writeln!(
        out,
        "        let described = description().encode();
        d.register_raw(DESCRIBE, \"describe\", move |_: &[u8]| described.clone()).expect(\"0x7FFF is free\");
        d
    }}"
    );
    async_routes(out, s);
    let _ = writeln!(out, "}}");
    client(out, s);
}

fn client(out: &mut String, s: &Service) {
    let module = snake(&s.name);
    let name = format!("{}Client", s.name);
    let _ = writeln!(
        out,
        "/// A typed client of the `{svc}` service over any transport (`&RpcBus`, `&TcpClient`, ...).
#[derive(Debug, Clone)]
pub struct {name}<C> {{
    caller: C,
    timeout: ::core::option::Option<::std::time::Duration>,
}}
impl<C> {name}<C> {{
    /// A client calling through `caller`, with no deadline (calls still fail when the peer dies).
    pub fn new(caller: C) -> Self {{
        Self {{ caller, timeout: ::core::option::Option::None }}
    }}
    /// The same client with a deadline on every call.
    #[must_use]
    pub fn with_timeout(mut self, timeout: ::std::time::Duration) -> Self {{
        self.timeout = ::core::option::Option::Some(timeout);
        self
    }}
    /// The transport.
    pub fn caller(&self) -> &C {{
        &self.caller
    }}
}}
impl<C: ::tachyon::rpc::Caller> {name}<C> {{
    /// Asks the server which schema it serves.
    ///
    /// # Errors
    /// Transport errors; an error reply from a server that has no `describe`.
    pub fn describe(&self) -> ::tachyon::Result<::tachyon::rpc::Description> {{
        let reply = ::tachyon::rpc::Caller::invoke(&self.caller, &[], {module}::DESCRIBE, self.timeout)?;
        ::tachyon::rpc::Description::decode(&reply)
    }}
    /// Checks that the server serves this very schema.
    ///
    /// # Errors
    /// [`::tachyon::Error::Protocol`] naming every schema line the two sides disagree on.
    pub fn verify(&self) -> ::tachyon::Result<()> {{
        self.describe()?.verify(&{module}::description())
    }}",
        svc = s.name
    );
    for m in &s.methods {
        let mdoc = if m.doc.is_empty() {
            vec![format!("Calls `{}` (msg_type {}).", m.name, m.msg_type)]
        } else {
            m.doc.clone()
        };
        doc(out, "    ", &mdoc, "");
        let _ = writeln!(out, "    ///\n    /// # Errors\n    /// [`::tachyon::Error::Rpc`] for an error reply; transport, timeout and codec errors.");
        let konst = format!("{module}::{}", shouting(&m.name));
        let (req_t, resp_t) = (
            if m.request == Type::Bytes {
                "&[u8]".to_string()
            } else {
                format!("&{}", ty(&m.request, false))
            },
            if m.oneway { "()".to_string() } else { ty(&m.response, false) },
        );
        if m.stream {
            let payload = if m.request == Type::Bytes {
                "req".to_string()
            } else {
                "&::tachyon::rpc::codec::encode(req)?".to_string()
            };
            let open = format!("::tachyon::rpc::Caller::open_stream(&self.caller, {payload}, {konst}, self.timeout)");
            let (ret, body) = if m.response == Type::Bytes {
                ("::tachyon::rpc::ReplyStream<'_>".to_string(), open)
            } else {
                (
                    format!("::tachyon::rpc::TypedStream<'_, {}>", ty(&m.response, false)),
                    format!(
                        "::core::result::Result::Ok(::tachyon::rpc::TypedStream::new({open}?))"
                    ),
                )
            };
            let _ = writeln!(
                out,
                "    /// Streams: iterate the result (each item within the client's timeout); dropping it\n    /// before the end cancels the call.\n    pub fn {}(&self, req: {req_t}) -> ::tachyon::Result<{ret}> {{\n        {body}\n    }}",
                ident(&m.name)
            );
            continue;
        }
        let body = match (m.request == Type::Bytes, m.response == Type::Bytes) {
            (true, _) if m.oneway => {
                format!("::tachyon::rpc::Caller::notify(&self.caller, req, {konst}, self.timeout)")
            }
            (false, _) if m.oneway => format!(
                "::tachyon::rpc::Caller::notify(&self.caller, &::tachyon::rpc::codec::encode(req)?, {konst}, self.timeout)"
            ),
            (false, false) => format!("::tachyon::rpc::Caller::invoke_typed(&self.caller, req, {konst}, self.timeout)"),
            (true, true) => format!("::tachyon::rpc::Caller::invoke(&self.caller, req, {konst}, self.timeout)"),
            (false, true) => format!(
                "::tachyon::rpc::Caller::invoke(&self.caller, &::tachyon::rpc::codec::encode(req)?, {konst}, self.timeout)"
            ),
            (true, false) => format!(
                "::tachyon::rpc::codec::decode(&::tachyon::rpc::Caller::invoke(&self.caller, req, {konst}, self.timeout)?)"
            ),
        };
        let _ = writeln!(
            out,
            "    pub fn {}(&self, req: {req_t}) -> ::tachyon::Result<{resp_t}> {{\n        {body}\n    }}",
            ident(&m.name)
        );
    }
    let _ = writeln!(out, "}}");
    async_client(out, s);
}

/// The awaitable methods, over any [`tachyon::rpc::AsyncCaller`] (`AsyncRpcBus`,
/// `TcpClient`): unary calls as `<method>_async`. Streams and oneway calls stay on the
/// blocking client.
fn async_client(out: &mut String, s: &Service) {
    let module = snake(&s.name);
    let name = format!("{}Client", s.name);
    let _ = writeln!(out, "impl<C: ::tachyon::rpc::AsyncCaller> {name}<C> {{");
    for m in s.methods.iter().filter(|m| !m.stream && !m.oneway) {
        let konst = format!("{module}::{}", shouting(&m.name));
        let req_t = if m.request == Type::Bytes {
            "&[u8]".to_string()
        } else {
            format!("&{}", ty(&m.request, false))
        };
        let resp_t = ty(&m.response, false);
        let payload = if m.request == Type::Bytes {
            "::std::borrow::Cow::Borrowed(req)".to_string()
        } else {
            "::std::borrow::Cow::Owned(::tachyon::rpc::codec::encode(req)?)".to_string()
        };
        let decode = if m.response == Type::Bytes {
            "::core::result::Result::Ok(reply)".to_string()
        } else {
            "::tachyon::rpc::codec::decode(&reply)".to_string()
        };
        let _ = writeln!(
            out,
            "    /// Awaits `{orig}` (msg_type {mt}) under any executor; dropping the future cancels the call.\n    ///\n    /// # Errors\n    /// [`::tachyon::Error::Rpc`] for an error reply; transport, timeout and codec errors.\n    pub async fn {fname}_async(&self, req: {req_t}) -> ::tachyon::Result<{resp_t}> {{\n        let payload: ::std::borrow::Cow<'_, [u8]> = {payload};\n        let reply = ::tachyon::rpc::AsyncCaller::invoke_async(&self.caller, &payload, {konst}, self.timeout).await?;\n        {decode}\n    }}",
            orig = m.name,
            mt = m.msg_type,
            fname = ident(&m.name),
        );
    }
    let _ = writeln!(out, "}}");
}

/// The service with `async` methods (every unary and oneway method; streams stay on the
/// blocking trait): `impl {Service}Async for MyServer { async fn method(&self, req) -> ... }`.
fn async_trait(out: &mut String, s: &Service) {
    let _ = writeln!(
        out,
        "/// The `{svc}` service with `async` methods, served on your runtime through\n/// `{module}::async_handlers` and `tachyon::net::AsyncHandlers` (streaming methods stay on\n/// [`{svc}`]).\npub trait {svc}Async: ::core::marker::Send + ::core::marker::Sync + 'static {{",
        svc = s.name,
        module = snake(&s.name),
    );
    for m in s.methods.iter().filter(|m| !m.stream) {
        let req = if m.request == Type::Bytes {
            "::std::vec::Vec<u8>".to_string()
        } else {
            ty(&m.request, false)
        };
        let resp = if m.oneway { "()".to_string() } else { ty(&m.response, false) };
        let _ = writeln!(
            out,
            "    /// `{orig}` (msg_type {mt}), awaited.\n    ///\n    /// # Errors\n    /// The [`::tachyon::rpc::ServerError`] the caller gets as its error reply.\n    fn {name}(&self, req: {req}) -> impl ::core::future::Future<Output = ::core::result::Result<{resp}, ::tachyon::rpc::ServerError>> + ::core::marker::Send;",
            orig = m.name,
            mt = m.msg_type,
            name = ident(&m.name),
        );
    }
    let _ = writeln!(out, "}}");
}

/// `async_handlers(server, handlers)`: the async trait's methods and `describe`, routed on
/// an [`tachyon::net::AsyncHandlers`].
fn async_routes(out: &mut String, s: &Service) {
    let _ = writeln!(
        out,
        "    /// Routes `server`'s async methods, and `describe`, on `handlers` (serve them with\n    /// `TcpServerOptions::deferred(handlers.into_deferred())`).\n    ///\n    /// # Panics\n    /// If `handlers` already routes one of this service's msg_types.\n    pub fn async_handlers<S: super::{svc}Async>(server: S, handlers: ::tachyon::net::AsyncHandlers) -> ::tachyon::net::AsyncHandlers {{\n        let server = ::std::sync::Arc::new(server);\n        let described = description().encode();\n        let mut h = handlers.route(DESCRIBE, move |_| {{ let d = described.clone(); async move {{ ::core::result::Result::Ok(d) }} }});",
        svc = s.name,
    );
    for m in s.methods.iter().filter(|m| !m.stream) {
        let konst = shouting(&m.name);
        let name = ident(&m.name);
        let route = match (m.request == Type::Bytes, m.response == Type::Bytes || m.oneway) {
            (true, true) if m.oneway => format!(
                "h.route({konst}, move |req: ::std::vec::Vec<u8>| {{ let s = ::std::sync::Arc::clone(&s); async move {{ s.{name}(req).await.map(|()| ::std::vec::Vec::new()) }} }})"
            ),
            (false, _) if m.oneway => format!(
                "h.route_typed({konst}, move |req: {rq}| {{ let s = ::std::sync::Arc::clone(&s); async move {{ s.{name}(req).await }} }})",
                rq = ty(&m.request, false)
            ),
            (true, true) => format!(
                "h.route({konst}, move |req: ::std::vec::Vec<u8>| {{ let s = ::std::sync::Arc::clone(&s); async move {{ s.{name}(req).await }} }})"
            ),
            (true, false) => format!(
                "h.route({konst}, move |req: ::std::vec::Vec<u8>| {{ let s = ::std::sync::Arc::clone(&s); async move {{ ::tachyon::__private::encode_response(&s.{name}(req).await?) }} }})"
            ),
            (false, true) => format!(
                "h.route({konst}, move |req: ::std::vec::Vec<u8>| {{ let s = ::std::sync::Arc::clone(&s); async move {{ let req: {rq} = ::tachyon::__private::decode_request(&req)?; s.{name}(req).await }} }})",
                rq = ty(&m.request, false)
            ),
            (false, false) => format!(
                "h.route_typed({konst}, move |req: {rq}| {{ let s = ::std::sync::Arc::clone(&s); async move {{ s.{name}(req).await }} }})",
                rq = ty(&m.request, false)
            ),
        };
        let _ = writeln!(
            out,
            "        h = {{
            let s = ::std::sync::Arc::clone(&server);
            {route}
        }};"
        );
    }
    let _ = writeln!(
        out,
        "        h
    }}"
    );
}
