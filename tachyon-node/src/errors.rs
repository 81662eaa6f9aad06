//! Rust errors to JavaScript errors. Every error the addon throws carries a `code`
//! (`ERR_TACHYON_*`); the JS layer's type guards (`isFull`, `isPeerDead`, ...) read it.

use napi::Status;

/// The `code` of a thrown error: one `ERR_TACHYON_*` string per kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for Code {
    fn from(s: Status) -> Self {
        match s {
            Status::InvalidArg
            | Status::ObjectExpected
            | Status::StringExpected
            | Status::NumberExpected
            | Status::BooleanExpected
            | Status::ArrayExpected => Self(INVALID_ARG),
            _ => Self("ERR_TACHYON_NAPI"),
        }
    }
}

/// A bad argument (a size, a timeout, a name).
pub const INVALID_ARG: &str = "ERR_TACHYON_INVALID_ARG";

/// The addon's error type (what every fallible native call returns).
pub type JsError = napi::Error<Code>;

/// Why a binding call failed: the core's error, a closed bus, or a bad argument.
#[derive(Debug)]
pub enum BindError {
    /// The bus was closed with `close()` or `Symbol.dispose`.
    Closed,
    /// An argument the core never sees was refused.
    Arg(String),
    /// A zero-copy guard was used out of order (buffer already taken, committed twice).
    Guard(String),
    /// An error of the Rust core.
    Core(tachyon::Error),
}

impl From<tachyon::Error> for BindError {
    fn from(e: tachyon::Error) -> Self {
        Self::Core(e)
    }
}

/// The `ERR_TACHYON_*` code and the message of a binding error.
pub fn describe(e: &BindError) -> (&'static str, String) {
    use tachyon::Error as E;
    match e {
        BindError::Closed => ("ERR_TACHYON_CLOSED", "the bus is closed".to_owned()),
        BindError::Arg(m) => (INVALID_ARG, m.clone()),
        BindError::Guard(m) => ("ERR_TACHYON_GUARD", m.clone()),
        BindError::Core(e) => {
            let code = match e {
                E::Full { .. } => "ERR_TACHYON_FULL",
                E::PeerDead(_) | E::Corrupted(_) => "ERR_TACHYON_PEER_DEAD",
                E::PeerClosed => "ERR_TACHYON_PEER_CLOSED",
                E::Closed => "ERR_TACHYON_CLOSED",
                E::Connect { .. } => "ERR_TACHYON_CONNECT",
                E::PermissionDenied(_) => "ERR_TACHYON_PERMISSION",
                E::AddrInUse { .. } => "ERR_TACHYON_ADDR_IN_USE",
                E::CapacityLimit { .. } => "ERR_TACHYON_CAPACITY_LIMIT",
                E::AbiMismatch(_) => "ERR_TACHYON_ABI_MISMATCH",
                E::Timeout(_) => "ERR_TACHYON_TIMEOUT",
                E::Interrupted => "ERR_TACHYON_INTERRUPTED",
                E::Refused(_) => "ERR_TACHYON_REFUSED",
                E::Tls(_) => "ERR_TACHYON_TLS",
                E::Protocol(_) => "ERR_TACHYON_PROTOCOL",
                E::Rpc(_) => "ERR_TACHYON_RPC",
                E::Busy(_) => "ERR_TACHYON_BUSY",
                E::MessageTooLarge { .. } => "ERR_TACHYON_TOO_LARGE",
                E::InvalidCapacity(_)
                | E::InvalidPath { .. }
                | E::InvalidSize { .. }
                | E::InvalidNumaNode(_)
                | E::InvalidArgument(_)
                | E::InvalidName { .. } => INVALID_ARG,
                E::Io { .. } => "ERR_TACHYON_IO",
                E::CorruptChannel { .. } => "ERR_TACHYON_CORRUPT",
                _ => "ERR_TACHYON",
            };
            (code, e.to_string())
        }
    }
}

impl From<napi::Error> for BindError {
    fn from(e: napi::Error) -> Self {
        Self::Guard(format!("{}: {}", e.status, e.reason))
    }
}

impl From<BindError> for JsError {
    fn from(e: BindError) -> Self {
        let (code, message) = describe(&e);
        napi::Error::new(Code(code), message)
    }
}

/// Converts a core error.
pub fn core(e: tachyon::Error) -> JsError {
    BindError::Core(e).into()
}

/// A bad-argument error.
pub fn arg(message: impl Into<String>) -> JsError {
    BindError::Arg(message.into()).into()
}

/// Converts an optional timeout in milliseconds.
pub fn timeout(ms: Option<f64>) -> Result<Option<std::time::Duration>, JsError> {
    match ms {
        None => Ok(None),
        Some(ms) if ms.is_finite() && ms >= 0.0 => {
            Ok(Some(std::time::Duration::from_secs_f64(ms / 1000.0)))
        }
        Some(ms) => Err(arg(format!("timeoutMs must be a non-negative number, got {ms}"))),
    }
}

/// Checks a u16 msg_type argument.
pub fn msg_type(v: u32) -> Result<u16, JsError> {
    u16::try_from(v).map_err(|_| arg(format!("msgType must be in 0..=65535, got {v}")))
}

/// Converts napi's own errors (allocation, detach) into the addon's error type.
pub trait NapiExt<T> {
    /// The same result with an `ERR_TACHYON_*`-coded error.
    fn js(self) -> Result<T, JsError>;
}

impl<T> NapiExt<T> for napi::Result<T> {
    fn js(self) -> Result<T, JsError> {
        self.map_err(|e| napi::Error::new(Code::from(e.status), e.reason.clone()))
    }
}
