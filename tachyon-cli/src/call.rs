//! `tachyon call ADDR MSG_TYPE [PAYLOAD]`: one call to any Tachyon server, like `grpcurl`.
//!
//! The address picks the transport: `tcp://host:port` is the TCP transport, anything
//! else the UNIX socket path of a shared-memory `RpcServer`. The request is text by
//! default, or `--hex`, or `--json` (sent as MessagePack, what typed handlers decode).
//! The reply is printed as JSON when it is a whole MessagePack value, as text when it
//! is UTF-8, else as hex (`--out` picks one). A 0xFFFF error reply is decoded and
//! printed to stderr with exit code 3; a transport error exits 1.
//!
//! With `--schema` (a `.tachyon` file or a directory of them), the method can be named
//! (`quote` or `Quotes.quote`) instead of numbered; a typed method's request is then
//! read as JSON, and an application error code is printed by its name.

use std::time::Duration;

use tachyon::rpc::{code_name, RpcBus};
use tachyon::Error;

/// How the reply is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Out {
    /// JSON if the reply is one MessagePack value, else text if UTF-8, else hex.
    Auto,
    /// The reply decoded from MessagePack, as JSON.
    Json,
    /// The reply as UTF-8 text.
    Text,
    /// The reply's bytes in hex.
    Hex,
}

/// The `call` subcommand's arguments.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// `tcp://host:port`, or the UNIX socket path of a shared-memory server.
    pub address: String,
    /// The msg_type to call (0 to 65533), or with `--schema` a method's name
    /// (`method` or `Service.method`).
    pub method: String,
    /// The request as text (empty when left out).
    #[arg(conflicts_with_all = ["hex", "json"])]
    pub payload: Option<String>,
    /// The request as hex bytes (`de ad be ef` or `deadbeef`).
    #[arg(long)]
    pub hex: Option<String>,
    /// The request as a JSON value, sent as MessagePack (for typed handlers).
    #[arg(long)]
    pub json: Option<String>,
    /// How to print the reply.
    #[arg(long, value_enum, default_value_t = Out::Auto)]
    pub out: Out,
    /// A schema (`.tachyon` file, or a directory of them) naming the methods.
    #[arg(long)]
    pub schema: Option<std::path::PathBuf>,
    /// How long to wait for the reply, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// What went wrong, with the process exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// 1: bad input or a transport error; 3: the server's error reply.
    pub code: u8,
    /// Said on stderr.
    pub message: String,
}

fn usage(message: String) -> Failure {
    Failure { code: 1, message }
}

/// Makes the call and renders the reply.
///
/// # Errors
/// A [`Failure`] for bad input, a transport error or an error reply.
pub fn run(a: &CallArgs) -> Result<String, Failure> {
    let target = resolve(a)?;
    if target.msg_type >= 0xFFFE {
        return Err(usage(format!("msg_type {:#x} is reserved", target.msg_type)));
    }
    let request = request(a, target.typed)?;
    let timeout = Some(Duration::from_millis(a.timeout_ms));
    let reply = if a.address.starts_with("tcp://") {
        let c = tachyon::net::TcpClient::connect(&a.address).map_err(transport)?;
        c.invoke(&request, target.msg_type, timeout)
    } else {
        let bus = RpcBus::connect(&a.address).map_err(transport)?;
        bus.invoke(&request, target.msg_type, timeout)
    };
    match reply {
        Ok(bytes) => render(&bytes, a.out),
        Err(Error::Rpc(e)) => {
            let name = target
                .errors
                .iter()
                .find(|(_, c)| *c == e.code)
                .map_or_else(|| code_name(e.code).to_owned(), |(n, _)| n.clone());
            Err(Failure {
                code: 3,
                message: format!(
                    "error reply to msg_type {}: {name} (code {}): {}",
                    e.msg_type, e.code, e.message
                ),
            })
        }
        Err(e) => Err(transport(e)),
    }
}

/// What is called: its msg_type, whether a schema says its request is typed
/// (MessagePack), and the service's application error codes by name.
struct Target {
    msg_type: u16,
    typed: bool,
    errors: Vec<(String, u32)>,
}

fn resolve(a: &CallArgs) -> Result<Target, Failure> {
    let Some(schema) = &a.schema else {
        let msg_type = a.method.parse::<u16>().map_err(|_| {
            usage(format!(
                "{:?} is not a msg_type (0..65533); name methods with --schema",
                a.method
            ))
        })?;
        return Ok(Target { msg_type, typed: false, errors: Vec::new() });
    };
    let packages = if schema.is_dir() {
        tachyon_schema::load_dir(schema)
    } else {
        let text = std::fs::read_to_string(schema)
            .map_err(|e| usage(format!("{}: {e}", schema.display())))?;
        tachyon_schema::load_str(&schema.to_string_lossy(), &text)
    }
    .map_err(|e| usage(format!("{}: {e}", schema.display())))?;
    let (service, method) = match a.method.split_once('.') {
        Some((s, m)) => (Some(s), m),
        None => (None, a.method.as_str()),
    };
    let mut known = Vec::new();
    for svc in packages.iter().flat_map(|p| &p.services) {
        for m in &svc.methods {
            known.push(format!("{}.{} = {}", svc.name, m.name, m.msg_type));
            if m.name == method && service.is_none_or(|s| s == svc.name) {
                return Ok(Target {
                    msg_type: m.msg_type,
                    typed: m.request != tachyon_schema::model::Type::Bytes,
                    errors: svc.errors.iter().map(|e| (e.name.clone(), e.code)).collect(),
                });
            }
        }
    }
    if let Ok(msg_type) = a.method.parse::<u16>() {
        return Ok(Target { msg_type, typed: false, errors: Vec::new() });
    }
    Err(usage(format!(
        "no method {:?} in {}; it has: {}",
        a.method,
        schema.display(),
        known.join(", ")
    )))
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(transport)`
fn transport(e: Error) -> Failure {
    usage(e.to_string())
}

fn request(a: &CallArgs, typed: bool) -> Result<Vec<u8>, Failure> {
    if let Some(h) = &a.hex {
        return hex(h);
    }
    // A typed method's request is JSON, given with --json or as the payload.
    let json = a.json.as_ref().or(a.payload.as_ref().filter(|_| typed));
    if let Some(j) = json {
        let v: serde_json::Value =
            serde_json::from_str(j).map_err(|e| usage(format!("the request is not JSON: {e}")))?;
        return tachyon::rpc::codec::encode(&v).map_err(|e| usage(format!("--json: {e}")));
    }
    Ok(a.payload.clone().unwrap_or_default().into_bytes())
}

fn hex(s: &str) -> Result<Vec<u8>, Failure> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(usage("--hex needs an even number of hex digits".into()));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p).ok().and_then(|d| u8::from_str_radix(d, 16).ok()).ok_or_else(
                || usage(format!("--hex: {:?} is not a hex byte", String::from_utf8_lossy(p))),
            )
        })
        .collect()
}

/// The reply decoded as exactly one MessagePack value (no bytes left over).
fn as_msgpack(bytes: &[u8]) -> Option<serde_json::Value> {
    let mut cursor = std::io::Cursor::new(bytes);
    let v: serde_json::Value = rmp_serde::from_read(&mut cursor).ok()?;
    (usize::try_from(cursor.position()).ok() == Some(bytes.len())).then_some(v)
}

fn render(bytes: &[u8], out: Out) -> Result<String, Failure> {
    let hex = || {
        bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    Ok(match out {
        Out::Hex => hex(),
        Out::Text => String::from_utf8(bytes.to_vec())
            .map_err(|_| usage(format!("the reply is not UTF-8 text: {}", hex())))?,
        Out::Json => as_msgpack(bytes)
            .ok_or_else(|| usage(format!("the reply is not one MessagePack value: {}", hex())))?
            .to_string(),
        Out::Auto => match (as_msgpack(bytes), std::str::from_utf8(bytes)) {
            // Text that also parses as MessagePack (a digit is a fixint): text wins
            // unless the value is a map, an array or a string.
            (
                Some(
                    v @ (serde_json::Value::Object(_)
                    | serde_json::Value::Array(_)
                    | serde_json::Value::String(_)),
                ),
                _,
            ) => v.to_string(),
            (_, Ok(text)) if !text.is_empty() => text.to_owned(),
            (Some(v), _) => v.to_string(),
            (None, _) => hex(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_rendering() {
        assert_eq!(hex("de ad BE ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert!(hex("abc").is_err() && hex("zz").is_err());
        let map = tachyon::rpc::codec::encode(&serde_json::json!({"sum": 3})).unwrap();
        assert_eq!(render(&map, Out::Auto).unwrap(), r#"{"sum":3}"#);
        assert_eq!(render(b"hello", Out::Auto).unwrap(), "hello");
        assert_eq!(render(&[0xff, 0x00], Out::Auto).unwrap(), "ff00");
        assert_eq!(render(b"hi", Out::Hex).unwrap(), "6869");
        assert!(render(&[0xff], Out::Text).is_err());
    }
}
