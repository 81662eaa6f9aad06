//! Named methods over RPC, in the shape of Tiga's `onInvoke(method, data, context)`
//! servers, and how a method name maps onto a msg_type.
//!
//! RPC routes on a 16-bit msg_type; Tiga routes on a method name. The mapping:
//!
//! - **Numbered methods.** A name that is a plain decimal number from `"0"` to
//!   `"32767"` (no sign, no leading zero) *is* that msg_type, and the payload is the data
//!   as it is. A Tiga client calls a Rust `#[tachyon_rpc(msg_type = 7)]` handler as
//!   method `"7"`, and a Tiga server sees a plain `call(data, 7)` as method `"7"`.
//! - **Named methods.** Any other name maps to [`method_id`]: the 32-bit FNV-1a hash of
//!   its UTF-8 bytes, folded into `0x8000..=0xFFFE` (the upper half, so names never
//!   collide with numbered handlers, and never 0xFFFF, the error sentinel). The payload
//!   is an envelope that carries the name and the caller's client id, so the server
//!   learns both without a registry:
//!
//!   ```text
//!   u8 name_len | name (UTF-8) | u8 client_len | client id (UTF-8) | data
//!   ```
//!
//!   A server checks that the name hashes to the msg_type it came with, so a request
//!   from a client that does not know the envelope is refused (`BAD_REQUEST`), never
//!   misread.
//!
//! Channel names follow Tiga: a client uses `<channel>.req.<clientId>` and
//! `<channel>.resp.<clientId>`. Here both name one multi-client RPC server listening at
//! `<ipcDirectory>/<channel>.sock` ([`socket_path`]).
//!
//! ```
//! use tachyon::rpc::tiga;
//! let (msg_type, payload) = tiga::encode_call("echo", "client-1", b"hi").unwrap();
//! assert_eq!(msg_type, tiga::method_id("echo").unwrap());
//! let call = tiga::decode_call(msg_type, &payload).unwrap();
//! assert_eq!((call.method.as_ref(), call.client_id, call.data), ("echo", "client-1", &b"hi"[..]));
//! // A numbered method is the msg_type itself, with the data as it is.
//! assert_eq!(tiga::encode_call("7", "c", b"x").unwrap(), (7, b"x".to_vec()));
//! ```

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::rpc::error::{code, ServerError};

/// The lowest msg_type a named method maps to; numbered methods stay below it.
pub const NAMED_BASE: u16 = 0x8000;

/// The longest method name or client id, in UTF-8 bytes (one length byte each).
pub const MAX_NAME_LEN: usize = 255;

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidName { name: name.to_owned(), reason }
}

/// The msg_type of a numbered method (`"0"`..=`"32767"`, canonical decimal), if `name`
/// is one.
fn numbered(name: &str) -> Option<u16> {
    let canonical = !name.is_empty()
        && name.len() <= 5
        && name.bytes().all(|b| b.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'));
    let n: u16 = if canonical { name.parse().ok()? } else { return None };
    (n < NAMED_BASE).then_some(n)
}

/// The msg_type that method `name` is routed on (see the module docs).
///
/// # Errors
/// [`Error::InvalidName`] for an empty name or one longer than [`MAX_NAME_LEN`] bytes.
pub fn method_id(name: &str) -> Result<u16> {
    if let Some(n) = numbered(name) {
        return Ok(n);
    }
    check_len(name, false)?;
    let mut h: u32 = 0x811C_9DC5;
    for &b in name.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let folded = (h ^ (h >> 16)) & 0xFFFF;
    // 0x7FFF values (0x8000..=0xFFFE): 0xFFFF is the error sentinel.
    Ok(NAMED_BASE + (folded % 0x7FFF) as u16)
}

fn check_len(s: &str, may_be_empty: bool) -> Result<()> {
    if s.is_empty() && !may_be_empty {
        return Err(invalid(s, "must not be empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(invalid(s, "longer than 255 UTF-8 bytes"));
    }
    Ok(())
}

/// The msg_type and payload that call method `method` with `data` from `client_id`.
///
/// # Errors
/// [`Error::InvalidName`] for a bad method name or a client id over 255 bytes.
pub fn encode_call(method: &str, client_id: &str, data: &[u8]) -> Result<(u16, Vec<u8>)> {
    if let Some(n) = numbered(method) {
        return Ok((n, data.to_vec()));
    }
    let msg_type = method_id(method)?;
    check_len(client_id, true)?;
    let mut out = Vec::with_capacity(2 + method.len() + client_id.len() + data.len());
    out.push(method.len() as u8);
    out.extend_from_slice(method.as_bytes());
    out.push(client_id.len() as u8);
    out.extend_from_slice(client_id.as_bytes());
    out.extend_from_slice(data);
    Ok((msg_type, out))
}

/// A call as a Tiga server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TigaCall<'a> {
    /// The method name (the decimal msg_type for a numbered method).
    pub method: Cow<'a, str>,
    /// The caller's client id (empty for a numbered method: plain RPC calls carry none).
    pub client_id: &'a str,
    /// The data, without the envelope.
    pub data: &'a [u8],
}

fn bad(msg: String) -> ServerError {
    ServerError::new(code::BAD_REQUEST, msg)
}

/// Reads a request (`msg_type`, `payload`) as a Tiga call (see the module docs).
///
/// # Errors
/// A `BAD_REQUEST` [`ServerError`] for a named msg_type whose envelope is truncated,
/// is not UTF-8, or names a method that does not hash to `msg_type`.
pub fn decode_call(msg_type: u16, payload: &[u8]) -> Result<TigaCall<'_>, ServerError> {
    if msg_type < NAMED_BASE {
        return Ok(TigaCall {
            method: Cow::Owned(msg_type.to_string()),
            client_id: "",
            data: payload,
        });
    }
    let field = |at: usize, what: &str| -> Result<(&str, usize), ServerError> {
        let len = usize::from(
            *payload.get(at).ok_or_else(|| bad(format!("named call without its {what} length")))?,
        );
        let bytes = payload
            .get(at + 1..at + 1 + len)
            .ok_or_else(|| bad(format!("named call truncated inside its {what}")))?;
        let s = std::str::from_utf8(bytes).map_err(|_| bad(format!("{what} is not UTF-8")))?;
        Ok((s, at + 1 + len))
    };
    let (method, next) = field(0, "method name")?;
    let (client_id, next) = field(next, "client id")?;
    if method_id(method).ok() != Some(msg_type) || numbered(method).is_some() {
        return Err(bad(format!(
            "msg_type {msg_type} is in the named-method range but its payload names {method:?}; \
             build named calls with tiga::encode_call"
        )));
    }
    Ok(TigaCall { method: Cow::Borrowed(method), client_id, data: &payload[next..] })
}

/// A Tiga client's channel and id, read from its request and response names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNames {
    /// The server's channel name.
    pub channel: String,
    /// The client's id.
    pub client_id: String,
}

/// Reads `<channel>.req.<clientId>` and `<channel>.resp.<clientId>`.
///
/// # Errors
/// [`Error::InvalidName`] if either name has another shape, they disagree, or the
/// channel contains `/` (it names a socket file).
pub fn parse_names(request_name: &str, response_name: &str) -> Result<ChannelNames> {
    let (channel, client_id) = request_name.rsplit_once(".req.").ok_or_else(|| {
        invalid(request_name, "a request name is shaped <channel>.req.<clientId>")
    })?;
    if channel.is_empty() || client_id.is_empty() {
        return Err(invalid(request_name, "channel and client id must not be empty"));
    }
    if channel.contains('/') || channel.contains('\0') {
        return Err(invalid(request_name, "a channel name must not contain '/' or NUL"));
    }
    check_len(client_id, false)?;
    if response_name != format!("{channel}.resp.{client_id}") {
        return Err(invalid(
            response_name,
            "the response name must be <channel>.resp.<clientId> for the same channel and client",
        ));
    }
    Ok(ChannelNames { channel: channel.to_owned(), client_id: client_id.to_owned() })
}

/// Where the server of `channel` listens: `<ipc_directory>/<channel>.sock`.
pub fn socket_path(ipc_directory: &str, channel: &str) -> String {
    format!("{}/{channel}.sock", ipc_directory.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_into_the_upper_half_and_numbers_to_themselves() {
        for name in ["echo", "add", "a", "Ω", &"x".repeat(255)] {
            let id = method_id(name).unwrap();
            assert!((NAMED_BASE..0xFFFF).contains(&id), "{name}: {id:#x}");
        }
        assert_eq!(method_id("0").unwrap(), 0);
        assert_eq!(method_id("32767").unwrap(), 32767);
        // Not canonical or out of range: hashed like any name.
        for name in ["07", "32768", "65535", "+1", "-1", "1.0"] {
            assert!(method_id(name).unwrap() >= NAMED_BASE, "{name}");
        }
        assert!(matches!(method_id(""), Err(Error::InvalidName { .. })));
        assert!(matches!(method_id(&"x".repeat(256)), Err(Error::InvalidName { .. })));
        // Stable across releases: clients in other languages compute the same value.
        assert_eq!(method_id("echo").unwrap(), method_id("echo").unwrap());
    }

    #[test]
    fn envelopes_round_trip_and_bad_ones_are_refused() {
        let (t, p) = encode_call("sum", "", &[1, 2, 3]).unwrap();
        let c = decode_call(t, &p).unwrap();
        assert_eq!((c.method.as_ref(), c.client_id, c.data), ("sum", "", &[1u8, 2, 3][..]));
        assert!(encode_call("sum", &"c".repeat(256), b"").is_err());
        // Truncated, wrong name for the msg_type, not UTF-8, empty.
        for cut in 0..p.len() - 3 {
            assert_eq!(decode_call(t, &p[..cut]).unwrap_err().code, code::BAD_REQUEST, "{cut}");
        }
        let (_, other) = encode_call("other", "", b"").unwrap();
        assert!(decode_call(t, &other).is_err());
        assert!(decode_call(t, &[2, 0xFF, 0xFE, 0]).is_err());
        // Numbered calls pass through.
        let c = decode_call(5, b"raw").unwrap();
        assert_eq!((c.method.as_ref(), c.client_id, c.data), ("5", "", &b"raw"[..]));
    }

    #[test]
    fn channel_names() {
        let n = parse_names("quotes.req.c1", "quotes.resp.c1").unwrap();
        assert_eq!((n.channel.as_str(), n.client_id.as_str()), ("quotes", "c1"));
        let n = parse_names("a.b.req.x", "a.b.resp.x").unwrap();
        assert_eq!(n.channel, "a.b");
        for (req, resp) in [
            ("quotes", "quotes.resp.c1"),
            ("quotes.req.c1", "quotes.resp.c2"),
            (".req.c1", ".resp.c1"),
            ("q.req.", "q.resp."),
            ("a/b.req.c", "a/b.resp.c"),
        ] {
            assert!(parse_names(req, resp).is_err(), "{req} {resp}");
        }
        assert_eq!(socket_path("/tmp/ipc/", "q"), "/tmp/ipc/q.sock");
        assert_eq!(socket_path("/tmp/ipc", "q"), "/tmp/ipc/q.sock");
    }
}
