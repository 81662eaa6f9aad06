//! Rust errors to Python exceptions. The exception classes live in `tachyon/_errors.py`
//! (so `TachyonTimeoutError` can also be a `TimeoutError`); this module maps the one
//! Rust enum onto them.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Why a binding call failed: the core's error, or the bus being closed already.
#[derive(Debug)]
pub enum BindError {
    /// The bus was closed with `close()` or by leaving its `with` block.
    Closed,
    /// A zero-copy message could not be released: views of it are alive.
    Buffer(String),
    /// An error of the Rust core.
    Core(tachyon::Error),
}

impl From<tachyon::Error> for BindError {
    fn from(e: tachyon::Error) -> Self {
        Self::Core(e)
    }
}

fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let cls = py
        .import("tachyon._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match cls {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(e) => e,
    }
}

fn rpc_error(py: Python<'_>, e: &tachyon::rpc::RpcError) -> PyErr {
    let cls = py
        .import("tachyon._errors")
        .and_then(|m| m.getattr("TachyonRpcError"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match cls {
        Ok(cls) => PyErr::from_type(cls, (e.msg_type, e.code, e.message.clone())),
        Err(err) => err,
    }
}

/// The Python exception for a binding error.
pub fn to_py(py: Python<'_>, e: BindError) -> PyErr {
    use tachyon::Error as E;
    let e = match e {
        BindError::Closed => return raise(py, "BusClosedError", "the bus is closed".to_owned()),
        BindError::Buffer(m) => return pyo3::exceptions::PyBufferError::new_err(m),
        BindError::Core(e) => e,
    };
    let message = e.to_string();
    match e {
        E::Closed => raise(py, "BusClosedError", "the bus is closed".to_owned()),
        E::PeerDead(_) | E::Corrupted(_) => raise(py, "PeerDeadError", message),
        E::PeerClosed => raise(py, "PeerClosedError", message),
        E::Connect { .. } | E::Refused(_) => raise(py, "TachyonConnectionError", message),
        E::Tls(_) => raise(py, "TachyonTlsError", message),
        E::PermissionDenied(_) => raise(py, "TachyonPermissionError", message),
        E::AddrInUse { .. } => raise(py, "AddressInUseError", message),
        E::AbiMismatch(_) => raise(py, "AbiMismatchError", message),
        E::Full { .. } => raise(py, "BufferFullError", message),
        E::Timeout(_) => raise(py, "TachyonTimeoutError", message),
        E::Rpc(e) => rpc_error(py, &e),
        E::InvalidCapacity(_)
        | E::InvalidPath { .. }
        | E::InvalidSize { .. }
        | E::MessageTooLarge { .. }
        | E::InvalidNumaNode(_)
        | E::InvalidArgument(_)
        | E::InvalidName { .. } => PyValueError::new_err(message),
        E::Io { .. } => PyOSError::new_err(message),
        E::CorruptChannel { .. } => raise(py, "CorruptChannelError", message),
        _ => raise(py, "TachyonError", message),
    }
}
