//! Python: one plain module per package (`<package>.py`), meant to be checked in.
//! msgspec structs (typed, validating, unknown keys ignored), msg_type and error-code
//! enums, a server `Protocol` per service (methods may be `async`), `<service>_dispatcher(impl)`
//! for `tachyon.RpcDispatcher`/`RpcServer`, and a client with sync and `async` methods.

use std::fmt::Write as _;

use super::{header, shouting, snake};
use crate::canonical::literal;
use crate::model::{Literal, Package, Service, Type};

fn ty(t: &Type) -> String {
    match t {
        Type::Int { signed, bits } => format!("_rt.{}{bits}", if *signed { 'I' } else { 'U' }),
        Type::F32 | Type::F64 => "float".into(),
        Type::Bool => "bool".into(),
        Type::String | Type::Enum(_) => "str".into(),
        Type::Bytes => "bytes".into(),
        Type::List(inner) => format!("list[{}]", ty(inner)),
        Type::Map(inner) => format!("dict[str, {}]", ty(inner)),
        Type::Struct(n) | Type::Named(n, _) => n.clone(),
    }
}

fn py_literal(d: &Literal) -> String {
    match d {
        Literal::Bool(true) => "True".into(),
        Literal::Bool(false) => "False".into(),
        other => literal(other),
    }
}

fn docstring(out: &mut String, indent: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let body =
        lines.join(&format!("\n{indent}")).replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    let _ = writeln!(out, "{indent}\"\"\"{body}\"\"\"");
}

/// A decoder's variable name for a type.
fn decoder_name(t: &Type) -> String {
    let mut s = String::from("_DEC_");
    for ch in ty(t).chars() {
        s.push(if ch.is_ascii_alphanumeric() { ch } else { '_' });
    }
    s
}

/// `(file name, text)` of the module for `pkg`.
pub fn generate(pkg: &Package) -> (String, String) {
    let mut out = header("#", pkg);
    docstring(
        &mut out,
        "",
        &if pkg.doc.is_empty() {
            vec![format!("Types and clients of the `{}` schema package.", pkg.name)]
        } else {
            pkg.doc.clone()
        },
    );
    let streams = pkg.services.iter().any(|s| s.methods.iter().any(|m| m.stream));
    out.push_str(if streams {
        "\nfrom __future__ import annotations\n\nimport enum\nfrom typing import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Optional, Protocol, Union\n\nimport msgspec\n\nimport tachyon\nfrom tachyon import schema as _rt\n\n"
    } else {
        "\nfrom __future__ import annotations\n\nimport enum\nfrom typing import Awaitable, Optional, Protocol, Union\n\nimport msgspec\n\nimport tachyon\nfrom tachyon import schema as _rt\n\n"
    });
    let _ = writeln!(out, "PACKAGE = {:?}", pkg.name);
    let _ = writeln!(out, "SCHEMA = {:?}", crate::canonical_text(pkg));
    let _ = writeln!(out, "FINGERPRINT = {:?}", crate::fingerprint(pkg));
    for e in &pkg.enums {
        let _ = writeln!(out, "\n\nclass {}(enum.StrEnum):", e.name);
        docstring(
            &mut out,
            "    ",
            &if e.doc.is_empty() {
                vec![format!("Values of `{}`. Fields of this type are `str`: a newer peer's value is kept as is.", e.name)]
            } else {
                e.doc.clone()
            },
        );
        for v in &e.values {
            let _ = writeln!(out, "    {} = {v:?}", shouting(v));
        }
    }
    for s in &pkg.structs {
        let _ = writeln!(
            out,
            "\n\nclass {}(msgspec.Struct, kw_only=True, omit_defaults=True):",
            s.name
        );
        docstring(
            &mut out,
            "    ",
            &if s.doc.is_empty() {
                vec![format!("The `{}` struct (a MessagePack map keyed by field name).", s.name)]
            } else {
                s.doc.clone()
            },
        );
        if s.fields.is_empty() {
            out.push_str("    pass\n");
        }
        for f in &s.fields {
            let t = ty(&f.ty);
            if f.optional {
                let _ = writeln!(out, "    {}: Optional[{t}] = None", f.name);
            } else if let Some(d) = &f.default {
                let _ = writeln!(out, "    {}: {t} = {}", f.name, py_literal(d));
            } else {
                let _ = writeln!(out, "    {}: {t}", f.name);
            }
            docstring(&mut out, "    ", &f.doc);
        }
    }
    // One decoder per typed reply and request type.
    let mut decoders: Vec<Type> = Vec::new();
    for s in &pkg.services {
        for m in &s.methods {
            let reply = if m.oneway { None } else { Some(&m.response) };
            for t in std::iter::once(&m.request).chain(reply) {
                if *t != Type::Bytes && !decoders.contains(t) {
                    decoders.push(t.clone());
                }
            }
        }
    }
    for t in &pkg.topics {
        if t.ty != Type::Bytes && !decoders.contains(&t.ty) {
            decoders.push(t.ty.clone());
        }
    }
    if !decoders.is_empty() {
        out.push('\n');
    }
    for t in &decoders {
        let _ = writeln!(out, "{} = msgspec.msgpack.Decoder({})", decoder_name(t), ty(t));
    }
    for s in &pkg.services {
        service(&mut out, pkg, s);
    }
    if !pkg.topics.is_empty() {
        topics(&mut out, pkg);
    }
    (format!("{}.py", pkg.name), out)
}

/// `Topic`, and `send_<topic>`, `decode_<topic>` and `decode_message`.
fn topics(out: &mut String, pkg: &Package) {
    let _ = writeln!(out, "\n\nclass Topic(enum.IntEnum):\n    \"\"\"The msg_types of the package's topics (typed messages one way over a ``tachyon.Bus``).\"\"\"");
    for t in &pkg.topics {
        let _ = writeln!(out, "    {} = {}", shouting(&t.name), t.msg_type);
    }
    let mut values = Vec::new();
    for t in &pkg.topics {
        let (arg, payload, value, decode) = if t.ty == Type::Bytes {
            (
                "Union[bytes, bytearray, memoryview]".to_string(),
                "msg".to_string(),
                "bytes".to_string(),
                "bytes(data)".to_string(),
            )
        } else {
            (
                ty(&t.ty),
                "_rt.encode(msg)".to_string(),
                ty(&t.ty),
                format!("{}.decode(data)", decoder_name(&t.ty)),
            )
        };
        values.push(value.clone());
        let _ = writeln!(out, "\n\ndef send_{n}(bus: tachyon.Bus, msg: {arg}, *, timeout: Optional[float] = None) -> None:", n = t.name);
        docstring(
            out,
            "    ",
            &if t.doc.is_empty() {
                vec![format!("Sends ``msg`` as a `{}` message.", t.name)]
            } else {
                t.doc.clone()
            },
        );
        let _ = writeln!(out, "    bus.send({payload}, Topic.{}, timeout)", shouting(&t.name));
        let _ = writeln!(out, "\n\ndef decode_{n}(data: Union[bytes, bytearray, memoryview]) -> {value}:\n    \"\"\"Decodes a `{n}` message.\"\"\"\n    return {decode}", n = t.name);
    }
    values.dedup();
    let _ = writeln!(
        out,
        "\n\ndef decode_message(type_id: int, data: Union[bytes, bytearray, memoryview]) -> Optional[tuple[Topic, Union[{}]]]:\n    \"\"\"The topic and decoded value of a received message; ``None`` when its msg_type is none of this package's topics.\"\"\"\n    mt = type_id & 0xFFFF",
        values.join(", ")
    );
    for t in &pkg.topics {
        let _ = writeln!(
            out,
            "    if mt == Topic.{k}:\n        return (Topic.{k}, decode_{n}(data))",
            k = shouting(&t.name),
            n = t.name
        );
    }
    let _ = writeln!(out, "    return None");
}

#[allow(clippy::too_many_lines)] // one template, read top to bottom like the module it writes
fn service(out: &mut String, pkg: &Package, s: &Service) {
    let svc = &s.name;
    let _ = writeln!(
        out,
        "\n\nclass {svc}MsgType(enum.IntEnum):\n    \"\"\"The msg_types of `{svc}`.\"\"\""
    );
    for m in &s.methods {
        let _ = writeln!(out, "    {} = {}", shouting(&m.name), m.msg_type);
    }
    let _ = writeln!(out, "    DESCRIBE = {}", crate::model::DESCRIBE_MSG_TYPE);
    if !s.errors.is_empty() {
        let _ = writeln!(out, "\n\nclass {svc}Error(enum.IntEnum):\n    \"\"\"Application error codes of `{svc}`: raise ``tachyon.ServiceError({svc}Error.X, message)``.\"\"\"");
        for e in &s.errors {
            let _ = writeln!(out, "    {} = {}", shouting(&e.name), e.code);
        }
    }
    let _ = writeln!(
        out,
        "\n\n{svc_up}_DESCRIPTION = _rt.Description(package={pkg:?}, service={svc:?}, fingerprint=FINGERPRINT, schema=SCHEMA)",
        svc_up = shouting(svc),
        pkg = pkg.name
    );
    // Server protocol.
    let _ = writeln!(out, "\n\nclass {svc}Server(Protocol):");
    docstring(
        out,
        "    ",
        &if s.doc.is_empty() {
            vec![format!("What a `{svc}` server implements (each method may be `async def`).")]
        } else {
            s.doc.clone()
        },
    );
    for m in &s.methods {
        let (req, resp) = (
            if m.request == Type::Bytes { "memoryview".to_string() } else { ty(&m.request) },
            if m.oneway {
                "None".to_string()
            } else if m.response == Type::Bytes {
                "bytes".to_string()
            } else {
                ty(&m.response)
            },
        );
        if m.stream {
            let _ = writeln!(
                out,
                "    def {}(self, req: {req}, /) -> Union[Iterable[{resp}], AsyncIterable[{resp}]]:",
                m.name
            );
        } else {
            let _ = writeln!(
                out,
                "    def {}(self, req: {req}, /) -> Union[{resp}, Awaitable[{resp}]]:",
                m.name
            );
        }
        docstring(
            out,
            "        ",
            &if m.doc.is_empty() {
                vec![format!("msg_type {}.", m.msg_type)]
            } else {
                m.doc.clone()
            },
        );
        let _ = writeln!(out, "        ...");
    }
    // Dispatcher.
    let _ = writeln!(
        out,
        "\n\ndef {}_dispatcher(impl: {svc}Server) -> tachyon.RpcDispatcher:\n    \"\"\"A dispatcher serving ``impl``'s methods and ``describe``, for ``RpcServer`` or ``serve_forever``.\"\"\"\n    d = tachyon.RpcDispatcher()",
        snake(svc)
    );
    for m in &s.methods {
        let mt = format!("{svc}MsgType.{}", shouting(&m.name));
        if m.stream {
            let dec = if m.request == Type::Bytes {
                "None".to_string()
            } else {
                decoder_name(&m.request)
            };
            let typed = if m.response == Type::Bytes { "False" } else { "True" };
            let _ = writeln!(
                out,
                "    d.register(_rt.stream_endpoint({mt}, {:?}, impl.{}, {dec}, typed_items={typed}))",
                m.name, m.name
            );
            continue;
        }
        let line = match (m.request == Type::Bytes, m.response == Type::Bytes) {
            (true, _) if m.oneway => {
                format!("_rt.oneway_raw_endpoint({mt}, {:?}, impl.{})", m.name, m.name)
            }
            (false, _) if m.oneway => format!(
                "_rt.oneway_endpoint({mt}, {:?}, impl.{}, {})",
                m.name,
                m.name,
                decoder_name(&m.request)
            ),
            (true, true) => format!("_rt.raw_endpoint({mt}, {:?}, impl.{})", m.name, m.name),
            (false, false) => format!(
                "_rt.typed_endpoint({mt}, {:?}, impl.{}, {})",
                m.name,
                m.name,
                decoder_name(&m.request)
            ),
            (true, false) => format!("_rt.raw_in_endpoint({mt}, {:?}, impl.{})", m.name, m.name),
            (false, true) => format!(
                "_rt.raw_out_endpoint({mt}, {:?}, impl.{}, {})",
                m.name,
                m.name,
                decoder_name(&m.request)
            ),
        };
        let _ = writeln!(out, "    d.register({line})");
    }
    let _ = writeln!(
        out,
        "    d.register(_rt.describe_endpoint({}_DESCRIPTION))\n    return d",
        shouting(svc)
    );
    // Client.
    let _ = writeln!(
        out,
        "\n\nclass {svc}Client:
    \"\"\"A typed client of `{svc}` over a caller end (``tachyon.RpcBus.connect(path)``).

    Every method takes ``timeout`` (seconds; default the client's). An error reply raises
    ``tachyon.TachyonRpcError`` with its ``code``.
    \"\"\"

    def __init__(self, bus: _rt.Caller, *, timeout: Optional[float] = None) -> None:
        self._bus = bus
        self._timeout = timeout

    @property
    def bus(self) -> _rt.Caller:
        \"\"\"The transport.\"\"\"
        return self._bus

    def describe(self, *, timeout: Optional[float] = None) -> _rt.Description:
        \"\"\"Which schema the server serves.\"\"\"
        return _rt.decode_description(self._bus.invoke(b\"\", {svc}MsgType.DESCRIBE, self._timeout if timeout is None else timeout))

    def verify(self, *, timeout: Optional[float] = None) -> None:
        \"\"\"Raises ``tachyon.SchemaMismatchError`` naming every schema line the server and this client disagree on.\"\"\"
        self.describe(timeout=timeout).verify({up}_DESCRIPTION)

    async def describe_async(self, *, timeout: Optional[float] = None) -> _rt.Description:
        \"\"\"Awaitable :meth:`describe`.\"\"\"
        return _rt.decode_description(await _rt.invoke_async(self._bus, b\"\", {svc}MsgType.DESCRIBE, self._timeout if timeout is None else timeout))",
        up = shouting(svc)
    );
    for m in &s.methods {
        let mt = format!("{svc}MsgType.{}", shouting(&m.name));
        let (req_t, payload) = if m.request == Type::Bytes {
            ("Union[bytes, bytearray, memoryview]".to_string(), "req".to_string())
        } else {
            (ty(&m.request), "_rt.encode(req)".to_string())
        };
        if m.oneway {
            let doc = if m.doc.is_empty() {
                vec![format!(
                    "Sends `{}` (msg_type {}), oneway: no reply comes back.",
                    m.name, m.msg_type
                )]
            } else {
                m.doc.clone()
            };
            let _ = writeln!(
                out,
                "\n    def {}(self, req: {req_t}, *, timeout: Optional[float] = None) -> None:",
                m.name
            );
            docstring(out, "        ", &doc);
            let _ = writeln!(out, "        self._bus.notify({payload}, {mt}, self._timeout if timeout is None else timeout)");
            let _ = writeln!(out, "\n    async def {}_async(self, req: {req_t}, *, timeout: Optional[float] = None) -> None:", m.name);
            let _ = writeln!(out, "        \"\"\"Awaitable :meth:`{}` (sending waits only for room in the ring).\"\"\"", m.name);
            let _ = writeln!(out, "        self._bus.notify({payload}, {mt}, self._timeout if timeout is None else timeout)");
            continue;
        }
        if m.stream {
            let (item_t, dec) = if m.response == Type::Bytes {
                ("bytes".to_string(), "None".to_string())
            } else {
                (ty(&m.response), decoder_name(&m.response))
            };
            let mut doc = if m.doc.is_empty() {
                vec![format!("Streams `{}` (msg_type {}).", m.name, m.msg_type)]
            } else {
                m.doc.clone()
            };
            doc.push("Items come in order; ``timeout`` bounds each. Closing the iterator early (``break``) cancels the call.".into());
            let _ = writeln!(
                out,
                "\n    def {}(self, req: {req_t}, *, timeout: Optional[float] = None) -> Iterator[{item_t}]:",
                m.name
            );
            docstring(out, "        ", &doc);
            let _ = writeln!(out, "        return _rt.open_stream(self._bus, {payload}, {mt}, self._timeout if timeout is None else timeout, {dec})");
            let _ = writeln!(out, "\n    def {}_async(self, req: {req_t}, *, timeout: Optional[float] = None) -> AsyncIterator[{item_t}]:", m.name);
            let _ = writeln!(out, "        \"\"\"`async for` form of :meth:`{}`.\"\"\"", m.name);
            let _ = writeln!(out, "        return _rt.open_stream_async(self._bus, {payload}, {mt}, self._timeout if timeout is None else timeout, {dec})");
            continue;
        }
        let (resp_t, wrap_open, wrap_close) = if m.response == Type::Bytes {
            ("bytes".to_string(), String::new(), String::new())
        } else {
            (ty(&m.response), format!("{}.decode(", decoder_name(&m.response)), ")".to_string())
        };
        let doc = if m.doc.is_empty() {
            vec![format!("Calls `{}` (msg_type {}).", m.name, m.msg_type)]
        } else {
            m.doc.clone()
        };
        let _ = writeln!(
            out,
            "\n    def {}(self, req: {req_t}, *, timeout: Optional[float] = None) -> {resp_t}:",
            m.name
        );
        docstring(out, "        ", &doc);
        let _ = writeln!(
            out,
            "        return {wrap_open}self._bus.invoke({payload}, {mt}, self._timeout if timeout is None else timeout){wrap_close}"
        );
        let _ = writeln!(out, "\n    async def {}_async(self, req: {req_t}, *, timeout: Optional[float] = None) -> {resp_t}:", m.name);
        let _ = writeln!(out, "        \"\"\"Awaitable :meth:`{}`.\"\"\"", m.name);
        let _ = writeln!(
            out,
            "        return {wrap_open}await _rt.invoke_async(self._bus, {payload}, {mt}, self._timeout if timeout is None else timeout){wrap_close}"
        );
    }
}
