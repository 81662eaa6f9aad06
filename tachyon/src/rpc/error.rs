//! The structured error reply: msg_type `0xFFFF`, a 2-byte big-endian failed msg_type
//! (what upstream's Python decoder reads), then a MessagePack map `{code, message}`.

use serde::{Deserialize, Serialize};

/// The reserved msg_type of error replies.
pub const MSG_TYPE_ERROR: u16 = 0xFFFF;

/// The correlation id of a oneway request: the callee runs its handler and sends no
/// reply. Upstream's callers number their calls from 1, so it never meets one.
pub const ONEWAY_CID: u64 = 0;

/// Error codes carried in [`RpcError::code`].
pub mod code {
    /// The peer sent the upstream 2-byte sentinel with no detail.
    pub const UPSTREAM: u32 = 0;
    /// No handler is registered for the msg_type.
    pub const UNKNOWN_MSG_TYPE: u32 = 1;
    /// The handler returned an error.
    pub const HANDLER_ERROR: u32 = 2;
    /// The handler panicked (the server kept serving).
    pub const HANDLER_PANIC: u32 = 3;
    /// The request payload could not be decoded for this handler.
    pub const BAD_REQUEST: u32 = 4;
    /// The handler's response could not be encoded.
    pub const BAD_RESPONSE: u32 = 5;
    /// The error reply itself was malformed.
    pub const MALFORMED: u32 = 6;
    /// The call's deadline passed before a handler could start it (it waited in a
    /// server's worker queue too long).
    pub const DEADLINE_EXCEEDED: u32 = 7;
    /// The caller cancelled the call (a stream it stopped reading).
    pub const CANCELLED: u32 = 8;
    /// The transport cannot carry this kind of call (a streaming method where streams
    /// are not carried).
    pub const UNSUPPORTED: u32 = 9;

    /// Every code above by name, in order: the one table the Python (`tachyon.RpcCode`)
    /// and Node (`RpcCode`) packages export, and their tests compare against.
    pub const ALL: &[(&str, u32)] = &[
        ("UPSTREAM", UPSTREAM),
        ("UNKNOWN_MSG_TYPE", UNKNOWN_MSG_TYPE),
        ("HANDLER_ERROR", HANDLER_ERROR),
        ("HANDLER_PANIC", HANDLER_PANIC),
        ("BAD_REQUEST", BAD_REQUEST),
        ("BAD_RESPONSE", BAD_RESPONSE),
        ("MALFORMED", MALFORMED),
        ("DEADLINE_EXCEEDED", DEADLINE_EXCEEDED),
        ("CANCELLED", CANCELLED),
        ("UNSUPPORTED", UNSUPPORTED),
    ];
}

/// A failed call, as the caller sees it: which msg_type failed, a code from [`code`],
/// and the server's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote call to msg_type {msg_type} failed ({}, code {code}): {message}", code_name(*.code))]
pub struct RpcError {
    /// The msg_type of the request that failed.
    pub msg_type: u16,
    /// Why, as one of the [`code`] constants (or an application's own).
    pub code: u32,
    /// Human-readable detail from the server.
    pub message: String,
}

/// The name of a [`code`].
pub fn code_name(c: u32) -> &'static str {
    match c {
        code::UPSTREAM => "upstream error",
        code::UNKNOWN_MSG_TYPE => "unknown msg_type",
        code::HANDLER_ERROR => "handler error",
        code::HANDLER_PANIC => "handler panic",
        code::BAD_REQUEST => "bad request",
        code::BAD_RESPONSE => "bad response",
        code::MALFORMED => "malformed error reply",
        code::DEADLINE_EXCEEDED => "deadline exceeded",
        code::CANCELLED => "cancelled",
        code::UNSUPPORTED => "unsupported",
        _ => "application error",
    }
}

#[derive(Serialize, Deserialize)]
struct Body<'a> {
    code: u32,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

impl RpcError {
    /// Builds an error for `msg_type`.
    pub fn new(msg_type: u16, code: u32, message: impl Into<String>) -> Self {
        Self { msg_type, code, message: message.into() }
    }

    /// The reply payload: 2-byte big-endian msg_type, then the MessagePack map.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.message.len());
        self.encode_into(&mut out);
        out
    }

    /// Like [`RpcError::encode`], appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.msg_type.to_be_bytes());
        let body = Body { code: self.code, message: self.message.as_str().into() };
        // Encoding a u32 and a str into a Vec cannot fail.
        let _ = rmp_serde::encode::write_named(out, &body);
    }

    /// Reads an error reply payload. Never fails: a bare upstream sentinel (2 bytes) or
    /// a malformed body becomes an error with code [`code::UPSTREAM`] or
    /// [`code::MALFORMED`].
    pub fn decode(payload: &[u8]) -> Self {
        let Some((head, body)) = payload.split_first_chunk::<2>() else {
            return Self::new(
                0,
                code::MALFORMED,
                format!("error reply of {} bytes", payload.len()),
            );
        };
        let msg_type = u16::from_be_bytes(*head);
        if body.is_empty() {
            return Self::new(
                msg_type,
                code::UPSTREAM,
                "the peer reported a failure without detail",
            );
        }
        match rmp_serde::from_slice::<Body<'_>>(body) {
            Ok(b) => Self::new(msg_type, b.code, b.message.into_owned()),
            Err(e) => Self::new(msg_type, code::MALFORMED, format!("undecodable error body: {e}")),
        }
    }
}

/// What a handler returns on failure: a [`code`] (default [`code::HANDLER_ERROR`]) and
/// a message. Convert your error into it with `From`, or build one with [`ServerError::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The code sent to the caller.
    pub code: u32,
    /// The message sent to the caller.
    pub message: String,
}

impl ServerError {
    /// An error with an explicit code.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for ServerError {}

impl From<String> for ServerError {
    fn from(message: String) -> Self {
        Self::new(code::HANDLER_ERROR, message)
    }
}

impl From<&str> for ServerError {
    fn from(message: &str) -> Self {
        Self::new(code::HANDLER_ERROR, message)
    }
}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        Self::new(code::HANDLER_ERROR, e.to_string())
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for ServerError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::new(code::HANDLER_ERROR, e.to_string())
    }
}

impl From<std::convert::Infallible> for ServerError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_with_the_big_endian_msg_type() {
        let e = RpcError::new(0x0102, code::HANDLER_ERROR, "boom");
        let bytes = e.encode();
        assert_eq!(&bytes[..2], &[0x01, 0x02]);
        // fixmap of 2: "code" then "message"
        assert_eq!(bytes[2], 0x82);
        assert_eq!(RpcError::decode(&bytes), e);
    }

    #[test]
    fn upstream_sentinel_and_garbage_decode_to_typed_errors() {
        let up = RpcError::decode(&[0x00, 0x07]);
        assert_eq!((up.msg_type, up.code), (7, code::UPSTREAM));
        assert_eq!(RpcError::decode(&[1]).code, code::MALFORMED);
        assert_eq!(RpcError::decode(&[0, 1, 0xC1]).code, code::MALFORMED);
    }
}
