//! `tachyon.RpcBus`: the caller and callee ends of an RPC bus for Python. Replies and
//! requests are copied out of shared memory, so the objects are safe to keep.

use std::borrow::Cow;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tachyon::rpc::{ParkedRpcTx, RpcBus};
use tachyon::Wait;

use crate::bus::{blocking, bytes_from, timeout};
use crate::guarded::Guarded;
use crate::zero_copy::{TxGuard, TxParked};

/// A request being served (callee side), or a reply (caller side): a copy of the message
/// with its correlation id. Usable as a context manager, as upstream's guards are.
#[pyclass(module = "tachyon._tachyon", frozen, get_all)]
pub struct RpcMessage {
    /// The id a reply must carry (and that a reply answers).
    correlation_id: u64,
    /// The msg_type.
    type_id: u32,
    /// Payload size.
    actual_size: usize,
    /// The payload (a copy).
    data: Py<PyBytes>,
}

#[pymethods]
impl RpcMessage {
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    #[allow(clippy::unused_self)] // the context-manager protocol needs a method
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        false
    }

    fn __bytes__(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "RpcMessage(correlation_id={}, type_id={}, actual_size={})",
            self.correlation_id, self.type_id, self.actual_size
        )
    }
}

/// One end of an RPC bus: the listener serves (callee), the connector calls (caller).
#[pyclass(module = "tachyon._tachyon", name = "RpcBus", frozen, weakref)]
pub struct PyRpcBus {
    pub(crate) bus: Guarded<RpcBus>,
}

impl PyRpcBus {
    /// Reads a request or reply into an `RpcMessage` (one copy, straight into `bytes`).
    fn message(correlation_id: u64, type_id: u16, data: &[u8]) -> RpcMessage {
        RpcMessage {
            correlation_id,
            type_id: u32::from(type_id),
            actual_size: data.len(),
            data: bytes_from(data),
        }
    }
}

/// Parks a reserved RPC slot, with the address and length of its payload.
fn park(mut g: tachyon::rpc::RpcTxGuard<'_>) -> (ParkedRpcTx, usize, usize) {
    let bytes = g.bytes_mut();
    let (addr, len) = (bytes.as_mut_ptr() as usize, bytes.len());
    (g.park(), addr, len)
}

fn wait_for(t: Option<Duration>, check: &mut dyn FnMut() -> bool) -> Wait<'_> {
    Wait::new().timeout_opt(t).interrupt(check)
}

#[pymethods]
impl PyRpcBus {
    /// Creates both rings and waits for one caller at `socket_path` (the callee end).
    #[staticmethod]
    #[pyo3(signature = (socket_path, cap_fwd, cap_rev, timeout=None))]
    fn listen(
        py: Python<'_>,
        socket_path: String,
        cap_fwd: usize,
        cap_rev: usize,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let t = self::timeout(timeout)?;
        let bus = blocking(py, move |check| {
            Ok(RpcBus::listen_with(&socket_path, cap_fwd, cap_rev, wait_for(t, check))?)
        })?;
        let closer = bus.closer();
        Ok(Self { bus: Guarded::new(bus, closer) })
    }

    /// Upstream's name for `RpcBus.listen`.
    #[staticmethod]
    #[pyo3(signature = (socket_path, cap_fwd, cap_rev, timeout=None))]
    fn rpc_listen(
        py: Python<'_>,
        socket_path: String,
        cap_fwd: usize,
        cap_rev: usize,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        Self::listen(py, socket_path, cap_fwd, cap_rev, timeout)
    }

    /// Upstream's name for `RpcBus.connect`.
    #[staticmethod]
    #[pyo3(signature = (socket_path, timeout=None))]
    fn rpc_connect(py: Python<'_>, socket_path: String, timeout: Option<f64>) -> PyResult<Self> {
        Self::connect(py, socket_path, timeout)
    }

    /// Connects to a callee at `socket_path` (the caller end). Fails at once with
    /// `TachyonConnectionError` if nobody listens; waits at most `timeout` seconds
    /// (default 10) for the callee to answer, and Ctrl-C interrupts it.
    #[staticmethod]
    #[pyo3(signature = (socket_path, timeout=None))]
    fn connect(py: Python<'_>, socket_path: String, timeout: Option<f64>) -> PyResult<Self> {
        let t = crate::bus::timeout(timeout)?;
        let bus = blocking(py, move |check| {
            let opts = tachyon::ConnectOptions::default();
            Ok(RpcBus::connect_with(
                &socket_path,
                &opts,
                Wait::new().timeout_opt(t).interrupt(check),
            )?)
        })?;
        let closer = bus.closer();
        Ok(Self { bus: Guarded::new(bus, closer) })
    }

    /// Sends a request and returns its correlation id. Waits for room as long as the
    /// callee lives, or up to `timeout` seconds.
    #[pyo3(signature = (payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn call(
        &self,
        py: Python<'_>,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        blocking(py, |check| {
            self.bus.with(|bus| {
                let mut tx = bus.acquire_call_with(payload.len(), wait_for(t, check))?;
                tx.bytes_mut().copy_from_slice(payload);
                Ok(tx.commit(payload.len(), msg_type)?)
            })
        })
    }

    /// Reserves a request slot of `size` bytes for zero-copy writing; leaving the `with`
    /// block commits it as `msg_type` (read the id from `tx.correlation_id`).
    #[pyo3(signature = (size, msg_type, timeout=None))]
    fn call_zero_copy(
        slf: &Bound<'_, Self>,
        size: usize,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<TxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let (parked, addr, len) = blocking(slf.py(), |check| {
            this.bus.with(|bus| Ok(park(bus.acquire_call_with(size, wait_for(t, check))?)))
        })?;
        let parked = TxParked::Rpc(slf.clone().unbind(), parked);
        Ok(TxGuard::new(parked, addr, len, size, u32::from(msg_type), None))
    }

    /// Reserves the reply slot for request `correlation_id` for zero-copy writing;
    /// leaving the `with` block commits it as `msg_type`.
    #[pyo3(signature = (correlation_id, size, msg_type, timeout=None))]
    fn reply_zero_copy(
        slf: &Bound<'_, Self>,
        correlation_id: u64,
        size: usize,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<TxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let (parked, addr, len) = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                Ok(park(bus.acquire_reply_with(correlation_id, size, wait_for(t, check))?))
            })
        })?;
        let parked = TxParked::Rpc(slf.clone().unbind(), parked);
        Ok(TxGuard::new(parked, addr, len, size, u32::from(msg_type), Some(correlation_id)))
    }

    /// Waits for the reply to call `correlation_id`. An error reply (msg_type 0xFFFF)
    /// raises `TachyonRpcError`; replies to other calls are kept for their waiters.
    #[pyo3(signature = (correlation_id, timeout=None))]
    fn wait(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        timeout: Option<f64>,
    ) -> PyResult<RpcMessage> {
        let t = self::timeout(timeout)?;
        blocking(py, |check| {
            self.bus.with(|bus| {
                let r = bus.wait_with(correlation_id, wait_for(t, check))?;
                Ok(Self::message(correlation_id, r.msg_type(), r.data()))
            })
        })
    }

    /// Awaitable call for asyncio: sends the request, then awaits its reply, which this
    /// bus's one reply thread hands over (no thread per pending call). Returns the reply
    /// bytes; an error reply raises `TachyonRpcError`, `timeout` raises
    /// `TachyonTimeoutError` (and abandons the call). Do not mix with blocking `wait`s on
    /// the same bus.
    #[pyo3(signature = (payload, msg_type, timeout=None))]
    fn call_async<'py>(
        slf: &Bound<'py, Self>,
        payload: &Bound<'py, PyAny>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("tachyon.aio")?
            .call_method1("call_async", (slf, payload, msg_type, timeout))
    }

    /// A waiter for the receive ring to hold a message, usable without the bus's lock
    /// (the asyncio pumps wait on it).
    fn readiness(&self, py: Python<'_>) -> PyResult<crate::readiness::Readiness> {
        self.bus.with_gil(py, |bus| Ok(crate::readiness::Readiness::new(bus.rx_readiness())))
    }

    /// Waits for the reply to whichever call in flight is answered first (for event
    /// loops). An error reply is returned as it is, with `type_id` 0xFFFF: decode it with
    /// `_decode_error`. Raises `TachyonError` if no call is in flight.
    #[pyo3(signature = (timeout=None))]
    fn next_reply(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<RpcMessage> {
        let t = self::timeout(timeout)?;
        blocking(py, |check| {
            self.bus.with(|bus| {
                let r = bus.next_reply_with(wait_for(t, check))?;
                Ok(Self::message(r.correlation_id(), r.msg_type(), r.data()))
            })
        })
    }

    /// Gives up on call `correlation_id`: its reply, if it comes, is dropped.
    fn abandon(&self, py: Python<'_>, correlation_id: u64) -> PyResult<()> {
        self.bus.with_gil(py, |bus| {
            bus.abandon(correlation_id);
            Ok(())
        })
    }

    /// Calls `msg_type` and waits for the reply, all within `timeout`; returns its bytes.
    #[pyo3(signature = (payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn invoke(
        &self,
        py: Python<'_>,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyBytes>> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        let data = blocking(py, |_| self.bus.with(|bus| Ok(bus.invoke(msg_type, payload, t)?)))?;
        Ok(PyBytes::new(py, &data).unbind())
    }

    /// Waits for the next request (callee end) and returns a copy of it.
    #[pyo3(signature = (timeout=None))]
    fn serve(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<RpcMessage> {
        let t = self::timeout(timeout)?;
        blocking(py, |check| {
            self.bus.with(|bus| {
                let r = bus.serve_with(wait_for(t, check))?;
                Ok(Self::message(r.correlation_id(), r.msg_type(), r.data()))
            })
        })
    }

    /// Sends the reply to request `correlation_id`, waiting for room up to `timeout`.
    #[pyo3(signature = (correlation_id, payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn reply(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        blocking(py, |check| {
            self.bus.with(|bus| {
                Ok(bus.reply_with(correlation_id, payload, msg_type, wait_for(t, check))?)
            })
        })
    }

    /// Sends a structured error reply (msg_type 0xFFFF) to request `correlation_id`.
    #[pyo3(signature = (correlation_id, msg_type, code, message, timeout=None))]
    fn reply_error(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        msg_type: u16,
        code: u32,
        message: String,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = self::timeout(timeout)?;
        let e = tachyon::rpc::RpcError::new(msg_type, code, message);
        blocking(py, |check| {
            self.bus.with(|bus| Ok(bus.reply_error(correlation_id, &e, wait_for(t, check))?))
        })
    }

    /// Calls not yet answered.
    #[getter]
    fn in_flight(&self, py: Python<'_>) -> PyResult<usize> {
        self.bus.with_gil(py, |bus| Ok(bus.in_flight()))
    }

    /// Pure-spin mode on both rings.
    fn set_polling_mode(&self, py: Python<'_>, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let enabled = enabled.is_truthy()?;
        self.bus.with_gil(py, |bus| {
            bus.set_polling_mode(enabled);
            Ok(())
        })
    }

    /// Unmaps both rings. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.bus.close(py);
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.bus.is_closed(py)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

/// Encodes the structured error reply payload (2-byte big-endian msg_type, then a
/// MessagePack map `{code, message}`), as the Rust dispatcher sends it.
#[pyfunction]
pub fn encode_error(py: Python<'_>, msg_type: u16, code: u32, message: String) -> Py<PyBytes> {
    PyBytes::new(py, &tachyon::rpc::RpcError::new(msg_type, code, message).encode()).unbind()
}

/// Decodes an error reply payload into `(msg_type, code, message)`; a bare upstream
/// sentinel gives code 0.
#[pyfunction]
pub fn decode_error(payload: &[u8]) -> (u16, u32, String) {
    let e = tachyon::rpc::RpcError::decode(payload);
    (e.msg_type, e.code, e.message)
}
