//! `tachyon.RpcBus`: the caller and callee ends of an RPC bus for Python. Requests and
//! replies come as `RpcRxGuard`s, read in place while held (see [`crate::rx`]); their
//! `data` is a copy, safe to keep.

use std::borrow::Cow;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tachyon::rpc::{ParkedReply, ParkedRpcTx, RpcBus};
use tachyon::Wait;

use crate::bus::{blocking, timeout};
use crate::guarded::Guarded;
use crate::rx::{detach_previous, remember, Held, Item, Owner, RpcRxGuard};
use crate::zero_copy::{TxGuard, TxParked};

/// One end of an RPC bus: the listener serves (callee), the connector calls (caller).
#[pyclass(module = "tachyon._tachyon", name = "RpcBus", frozen, weakref)]
pub struct PyRpcBus {
    pub(crate) bus: Guarded<RpcBus>,
    /// The latest zero-copy receive, detached by the next receive if still held.
    held: Mutex<Weak<Mutex<Held>>>,
    /// Reads the counters without waiting for a call in progress.
    stats: tachyon::StatsReader,
}

/// A received request or reply before it becomes a Python guard.
struct Received {
    parked: Option<tachyon::ParkedRx>,
    item: Item,
}

impl Received {
    /// A message read in place: parked (zero copy) or copied out now.
    fn of(cid: u64, msg_type: u16, data: &[u8], zero_copy: bool) -> (Self, bool) {
        let item = Item {
            addr: data.as_ptr() as usize,
            len: data.len(),
            type_id: u32::from(msg_type),
            correlation_id: cid,
            copy: (!zero_copy).then(|| crate::bus::bytes_from(data)),
        };
        (Self { parked: None, item }, zero_copy)
    }
}

impl PyRpcBus {
    fn wrap(bus: RpcBus) -> Self {
        let stats = bus.stats_reader();
        let closer = bus.closer();
        Self { bus: Guarded::new(bus, closer), held: Mutex::new(Weak::new()), stats }
    }

    /// Makes the Python guard of a received message (and remembers a parked one).
    fn guard(slf: &Bound<'_, Self>, r: Received) -> RpcRxGuard {
        let (cid, type_id, len) = (r.item.correlation_id, r.item.type_id, r.item.len);
        let zero_copy = r.parked.is_some();
        let held = Held::new(Owner::Rpc(slf.clone().unbind()), r.parked, vec![r.item]);
        if zero_copy {
            remember(&slf.get().held, &held);
        }
        RpcRxGuard::new(held, cid, type_id, len)
    }
}

impl PyRpcBus {
    /// Sends `reply` if any, then waits for the next request and copies it out.
    fn serve_raw_after(
        &self,
        py: Python<'_>,
        reply: Option<(u64, &[u8], u16)>,
        t: Option<Duration>,
    ) -> PyResult<(u64, u16, Py<PyBytes>)> {
        let (cid, mt, data) = blocking(py, |check| {
            self.bus.with(|bus| {
                detach_previous(&self.held, |p| bus.commit_parked(p))?;
                if let Some((cid, payload, mt)) = reply {
                    bus.reply_with(cid, payload, mt, wait_for(t, check))?;
                }
                let req = bus.serve_with(wait_for(t, check))?;
                Ok((req.correlation_id(), req.msg_type(), req.data().to_vec()))
            })
        })?;
        Ok((cid, mt, PyBytes::new(py, &data).unbind()))
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

impl PyRpcBus {
    /// A reply as a [`Received`]: parked in place, or a copy (`zero_copy` false, or a
    /// reply that had been kept aside).
    fn received(r: tachyon::rpc::RpcReply<'_>, zero_copy: bool) -> Received {
        let (cid, mt) = (r.correlation_id(), r.msg_type());
        let (mut out, park) = Received::of(cid, mt, r.data(), zero_copy);
        if park {
            match r.park() {
                ParkedReply::Slot(p) => out.parked = Some(p),
                ParkedReply::Copy(v) => out.item.copy = Some(crate::bus::bytes_from(&v)),
            }
        }
        out
    }
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
        Ok(Self::wrap(bus))
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
        Ok(Self::wrap(bus))
    }

    /// Sends a request and returns its correlation id. Waits for room as long as the
    /// callee lives, or up to `timeout` seconds. `max_payload_size` reserves a larger
    /// slot than the payload (upstream's argument); `spin_threshold` is accepted for
    /// upstream's signature.
    #[pyo3(signature = (payload, msg_type, max_payload_size=None, spin_threshold=10000, *, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn call(
        &self,
        py: Python<'_>,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        max_payload_size: Option<usize>,
        spin_threshold: u32,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        let reserve = max_payload_size.unwrap_or(payload.len()).max(payload.len());
        blocking(py, |check| {
            self.bus.with(|bus| {
                let wait = wait_for(t, check).spin(spin_threshold);
                let mut tx = bus.acquire_call_with(reserve, wait)?;
                tx.bytes_mut()[..payload.len()].copy_from_slice(payload);
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

    /// Waits for the reply to call `correlation_id` and returns it as an `RpcRxGuard`
    /// (read in place until released; `zero_copy=False` copies it out at once). An error
    /// reply (msg_type 0xFFFF) raises `TachyonRpcError`; replies to other calls are kept
    /// for their waiters.
    #[pyo3(signature = (correlation_id, spin_threshold=10000, *, timeout=None, zero_copy=true))]
    fn wait(
        slf: &Bound<'_, Self>,
        correlation_id: u64,
        spin_threshold: u32,
        timeout: Option<f64>,
        zero_copy: bool,
    ) -> PyResult<RpcRxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let r = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                let wait = wait_for(t, check).spin(spin_threshold);
                let r = bus.wait_with(correlation_id, wait)?;
                Ok(Self::received(r, zero_copy))
            })
        })?;
        Ok(Self::guard(slf, r))
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
    #[pyo3(signature = (timeout=None, *, zero_copy=true))]
    fn next_reply(
        slf: &Bound<'_, Self>,
        timeout: Option<f64>,
        zero_copy: bool,
    ) -> PyResult<RpcRxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let r = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                let r = bus.next_reply_with(wait_for(t, check))?;
                Ok(Self::received(r, zero_copy))
            })
        })?;
        Ok(Self::guard(slf, r))
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
        let data = blocking(py, |_| {
            self.bus.with(|bus| {
                detach_previous(&self.held, |p| bus.commit_parked(p))?;
                Ok(bus.invoke(payload, msg_type, t)?)
            })
        })?;
        Ok(PyBytes::new(py, &data).unbind())
    }

    /// Starts a server-streaming call of `msg_type` and returns its `ReplyStream`: iterate
    /// it for the items (`bytes`, in order). `timeout` bounds the wait for room to send
    /// and each item. Leaving its `with` block or dropping it before the end cancels it.
    #[pyo3(signature = (payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn call_stream(
        slf: &Bound<'_, Self>,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<crate::stream::PyReplyStream> {
        let py = slf.py();
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let payload: &[u8] = &payload;
        let cid = blocking(py, |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                Ok(bus.call_stream_with(payload, msg_type, wait_for(t, check))?)
            })
        })?;
        Ok(crate::stream::PyReplyStream::new(slf.clone().unbind(), cid, t))
    }

    /// Sends a oneway request: the callee runs its handler and sends no reply. Waits up
    /// to `timeout` for room in the request ring (`None`: as long as the callee lives).
    #[pyo3(signature = (payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn notify(
        &self,
        py: Python<'_>,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        blocking(py, |check| {
            self.bus.with(|bus| Ok(bus.notify_with(payload, msg_type, wait_for(t, check))?))
        })
    }

    /// Waits for the next request (callee end) and returns it as an `RpcRxGuard`: read
    /// it in place with `memoryview(rx)` inside `with callee.serve() as rx:` (or copy it
    /// out at once with `zero_copy=False`).
    #[pyo3(signature = (spin_threshold=10000, *, timeout=None, zero_copy=true))]
    fn serve(
        slf: &Bound<'_, Self>,
        spin_threshold: u32,
        timeout: Option<f64>,
        zero_copy: bool,
    ) -> PyResult<RpcRxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let r = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                let req = bus.serve_with(wait_for(t, check).spin(spin_threshold))?;
                let (mut r, park) =
                    Received::of(req.correlation_id(), req.msg_type(), req.data(), zero_copy);
                if park {
                    r.parked = Some(req.park());
                }
                Ok(r)
            })
        })?;
        Ok(Self::guard(slf, r))
    }

    /// Waits for the next request and returns `(correlation_id, msg_type, data)` with the
    /// data copied out: the cheapest form for a serve loop (no guard object).
    #[pyo3(signature = (timeout=None))]
    fn serve_raw(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(u64, u16, Py<PyBytes>)> {
        let t = self::timeout(timeout)?;
        self.serve_raw_after(py, None, t)
    }

    /// Replies to `correlation_id`, then serves the next request as `serve_raw` does:
    /// one call per request for a serve loop.
    #[pyo3(signature = (correlation_id, payload, msg_type, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn reply_and_serve_raw(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        timeout: Option<f64>,
    ) -> PyResult<(u64, u16, Py<PyBytes>)> {
        let t = self::timeout(timeout)?;
        self.serve_raw_after(py, Some((correlation_id, &payload, msg_type)), t)
    }

    /// Sends the reply to request `correlation_id`, waiting for room up to `timeout`.
    /// `max_payload_size` reserves a larger slot (upstream's argument).
    #[pyo3(signature = (correlation_id, payload, msg_type, max_payload_size=None, *, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn reply(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        payload: Cow<'_, [u8]>,
        msg_type: u16,
        max_payload_size: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = self::timeout(timeout)?;
        let payload: &[u8] = &payload;
        let reserve = max_payload_size.unwrap_or(payload.len()).max(payload.len());
        if correlation_id == tachyon::rpc::ONEWAY_CID {
            return Ok(()); // a oneway request takes no reply
        }
        blocking(py, |check| {
            self.bus.with(|bus| {
                let mut tx = bus.acquire_reply_with(correlation_id, reserve, wait_for(t, check))?;
                tx.bytes_mut()[..payload.len()].copy_from_slice(payload);
                tx.commit(payload.len(), msg_type)?;
                Ok(())
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

    /// This side's counters on both rings (a dict of ints, as `Bus.stats()`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        crate::stats::bus_stats(py, &self.stats.read())
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
