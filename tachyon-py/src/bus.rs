//! `tachyon.Bus`: the SPSC bus for Python. Every blocking call releases the GIL, takes an
//! optional `timeout` in seconds, and checks for Ctrl-C at least every 200 ms.

use std::borrow::Cow;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tachyon::Wait;

use crate::errors::{to_py, BindError};
use crate::guarded::Guarded;
use crate::rx::{detach_previous, remember, Held, Item, Owner, RxBatchGuard, RxGuard};
use crate::zero_copy::{TxGuard, TxParked};

/// A message received from a bus: its type id, size and a copy of its bytes (safe to
/// keep).
#[pyclass(module = "tachyon._tachyon", frozen, get_all)]
pub struct Message {
    /// `route << 16 | msg_type`.
    type_id: u32,
    /// Payload size in bytes.
    size: usize,
    /// The payload.
    data: Py<PyBytes>,
}

#[pymethods]
impl Message {
    /// Payload size in bytes (the name upstream's batch items use).
    #[getter]
    fn actual_size(&self) -> usize {
        self.size
    }

    fn __bytes__(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data.clone_ref(py)
    }

    /// Exports the payload, read-only, to `memoryview(msg)`.
    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        let data = slf.get().data.bind(slf.py()).as_bytes();
        let (ptr, len) = (data.as_ptr(), data.len());
        // SAFETY: `ptr..ptr + len` is the immutable storage of the `bytes` object this
        // message holds; the view holds a reference to the message, so it stays alive.
        unsafe { crate::zero_copy::export(slf.as_any(), view, ptr.cast_mut(), len, true, flags) }
    }

    fn __repr__(&self) -> String {
        format!("Message(type_id={}, size={})", self.type_id, self.size)
    }
}

/// Copies `data` (read in place from shared memory) into a new `bytes` object. Called
/// with the GIL released, while the message's guard is still held: it takes the GIL for
/// the copy, so the payload is copied once, straight into Python's memory.
pub(crate) fn bytes_from(data: &[u8]) -> Py<PyBytes> {
    Python::attach(|py| PyBytes::new(py, data).unbind())
}

/// Whether `e` ends a stream cleanly: `PeerClosedError` (the peer closed its bus after
/// sending) or `BusClosedError` (this side was closed).
pub(crate) fn is_peer_closed(py: Python<'_>, e: &PyErr) -> bool {
    let Ok(m) = py.import("tachyon._errors") else { return false };
    ["PeerClosedError", "BusClosedError"].iter().any(|name| {
        m.getattr(*name).is_ok_and(|cls| e.get_type(py).is_subclass(&cls).unwrap_or(false))
    })
}

/// Runs a wait that gives up when `stop` says so, with the GIL released: `f` gets a
/// `stop` that is true once `closed` is set or Ctrl-C arrived. A wait that ended for
/// Ctrl-C raises `KeyboardInterrupt`; one that ended for `closed` returns `false`.
pub(crate) fn blocking_until(
    py: Python<'_>,
    closed: &std::sync::atomic::AtomicBool,
    f: impl FnOnce(&dyn Fn() -> bool) -> tachyon::Result<bool> + Send,
) -> PyResult<bool> {
    blocking(py, |check| {
        let check = std::cell::RefCell::new(check);
        let interrupted = std::cell::Cell::new(false);
        let stop = || {
            if closed.load(std::sync::atomic::Ordering::Acquire) || interrupted.get() {
                return true;
            }
            let hit = (check.borrow_mut())();
            interrupted.set(hit);
            hit
        };
        let woke = f(&stop)?;
        if interrupted.get() {
            return Err(BindError::Core(tachyon::Error::Interrupted));
        }
        Ok(woke)
    })
}

/// Converts an optional timeout in seconds.
pub(crate) fn timeout(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, got {s}"
        ))),
    }
}

/// Runs `f` with the GIL released. `f` gets an interrupt check that re-takes the GIL to
/// look for signals; a pending `KeyboardInterrupt` (or any signal handler's exception)
/// ends the wait and is raised as it is.
pub(crate) fn blocking<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&mut dyn FnMut() -> bool) -> Result<T, BindError> + Send,
) -> PyResult<T> {
    let mut signal: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut check = || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    signal = Some(e);
                    true
                }
            })
        };
        f(&mut check)
    });
    match result {
        Ok(v) => Ok(v),
        Err(BindError::Core(tachyon::Error::Interrupted)) if signal.is_some() => {
            Err(signal.unwrap_or_else(|| PyValueError::new_err("interrupted")))
        }
        Err(e) => Err(to_py(py, e)),
    }
}

/// A single-producer, single-consumer shared-memory bus.
///
/// One process calls `Bus.listen`, the other `Bus.connect`; one side sends, the other
/// receives. Use it as a context manager: leaving the block unmaps the shared memory.
#[pyclass(module = "tachyon._tachyon", name = "Bus", frozen, weakref)]
pub struct PyBus {
    pub(crate) bus: Guarded<tachyon::Bus>,
    /// The latest zero-copy receive, detached by the next receive if still held.
    held: Mutex<Weak<Mutex<Held>>>,
    /// Reads the counters without waiting for a receive in progress.
    stats: tachyon::StatsReader,
}

impl PyBus {
    fn wrap(bus: tachyon::Bus) -> Self {
        let closer = bus.closer();
        let stats = bus.stats_reader();
        Self { bus: Guarded::new(bus, closer), held: Mutex::new(Weak::new()), stats }
    }
}

#[pymethods]
impl PyBus {
    /// Creates a ring of `capacity` bytes and waits for one peer at `socket_path`.
    #[staticmethod]
    #[pyo3(signature = (socket_path, capacity, timeout=None))]
    fn listen(
        py: Python<'_>,
        socket_path: String,
        capacity: usize,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let t = self::timeout(timeout)?;
        let bus = blocking(py, move |check| {
            Ok(tachyon::Bus::listen_with(
                &socket_path,
                capacity,
                Wait::new().timeout_opt(t).interrupt(check),
            )?)
        })?;
        Ok(Self::wrap(bus))
    }

    /// Connects to a listener at `socket_path`. Fails at once with
    /// `TachyonConnectionError` if nobody listens; waits at most `timeout` seconds
    /// (default 10) for the listener to answer, and Ctrl-C interrupts it.
    #[staticmethod]
    #[pyo3(signature = (socket_path, timeout=None))]
    fn connect(py: Python<'_>, socket_path: String, timeout: Option<f64>) -> PyResult<Self> {
        let t = self::timeout(timeout)?;
        let bus = blocking(py, move |check| {
            let opts = tachyon::ConnectOptions::default();
            Ok(tachyon::Bus::connect_with(
                &socket_path,
                &opts,
                Wait::new().timeout_opt(t).interrupt(check),
            )?)
        })?;
        Ok(Self::wrap(bus))
    }

    /// Sends `data` as one message. Waits for room as long as the peer lives (or up to
    /// `timeout` seconds; `timeout=0` never waits and raises `BufferFullError`).
    #[pyo3(signature = (data, type_id=0, timeout=None))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn send(
        &self,
        py: Python<'_>,
        data: Cow<'_, [u8]>,
        type_id: u32,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = self::timeout(timeout)?;
        let data: &[u8] = &data;
        // Fast path, GIL held: room in the ring now, no waiting, no GIL release.
        let sent = self.bus.try_now(|bus| match bus.send(data, type_id) {
            Err(tachyon::Error::Full { .. }) => None,
            other => Some(other),
        });
        if let Some(sent) = sent {
            return sent.map_err(|e| to_py(py, e.into()));
        }
        blocking(py, |check| {
            self.bus.with(|bus| {
                if t == Some(Duration::ZERO) {
                    return Ok(bus.send(data, type_id)?);
                }
                let mut tx =
                    bus.acquire_tx_with(data.len(), Wait::new().timeout_opt(t).interrupt(check))?;
                tx.bytes_mut().copy_from_slice(data);
                Ok(tx.commit(data.len(), type_id)?)
            })
        })
    }

    /// Waits for the next message (up to `timeout` seconds) and returns a copy of it.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        let t = self::timeout(timeout)?;
        let (type_id, size, data) = blocking(py, |check| {
            self.bus.with(|bus| {
                detach_previous(&self.held, |p| bus.commit_parked(p))?;
                let m = bus.acquire_rx_with(Wait::new().timeout_opt(t).interrupt(check))?;
                Ok((m.type_id(), m.len(), bytes_from(m.data())))
            })
        })?;
        Ok(Message { type_id, size, data })
    }

    /// Reserves a slot of `size` bytes for zero-copy writing: write it through
    /// `memoryview(tx)`, set `tx.actual_size`, leave the `with` block to commit and flush
    /// (an exception rolls back). Waits for room like `send`.
    #[pyo3(signature = (size, type_id=0, timeout=None))]
    fn send_zero_copy(
        slf: &Bound<'_, Self>,
        size: usize,
        type_id: u32,
        timeout: Option<f64>,
    ) -> PyResult<TxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let (parked, addr, len) = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                let mut g =
                    bus.acquire_tx_with(size, Wait::new().timeout_opt(t).interrupt(check))?;
                let bytes = g.bytes_mut();
                let (addr, len) = (bytes.as_mut_ptr() as usize, bytes.len());
                Ok((g.park(), addr, len))
            })
        })?;
        let parked = TxParked::Bus(slf.clone().unbind(), parked);
        Ok(TxGuard::new(parked, addr, len, size, type_id, None))
    }

    /// Waits for the next message (up to `timeout` seconds) and returns a guard that
    /// reads it in place through `memoryview(rx)`; leaving the `with` block releases it.
    #[pyo3(signature = (timeout=None))]
    fn recv_zero_copy(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<RxGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let (parked, item) = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                let m = bus.acquire_rx_with(Wait::new().timeout_opt(t).interrupt(check))?;
                let item = Item {
                    addr: m.data().as_ptr() as usize,
                    len: m.len(),
                    type_id: m.type_id(),
                    correlation_id: 0,
                    copy: None,
                };
                Ok((m.park(), item))
            })
        })?;
        let (type_id, len) = (item.type_id, item.len);
        let held = Held::new(Owner::Bus(slf.clone().unbind()), Some(parked), vec![item]);
        remember(&this.held, &held);
        Ok(RxGuard::new(held, type_id, len))
    }

    /// Waits for at least one message (spinning `spin_threshold` times before sleeping,
    /// up to `timeout` seconds), then takes up to `max_msgs` in one crossing into native
    /// code. Returns an `RxBatchGuard` of `RxMsgView`s read in place (buffer protocol and
    /// DLPack); leaving the `with` block releases them.
    #[pyo3(signature = (max_msgs=1024, spin_threshold=10000, timeout=None))]
    fn drain_batch(
        slf: &Bound<'_, Self>,
        max_msgs: usize,
        spin_threshold: u32,
        timeout: Option<f64>,
    ) -> PyResult<RxBatchGuard> {
        let t = self::timeout(timeout)?;
        let this = slf.get();
        let (parked, items) = blocking(slf.py(), |check| {
            this.bus.with(|bus| {
                detach_previous(&this.held, |p| bus.commit_parked(p))?;
                let wait = Wait::new().spin(spin_threshold).timeout_opt(t).interrupt(check);
                let batch = bus.drain_batch_with(max_msgs, wait)?;
                let items: Vec<Item> = batch
                    .iter()
                    .map(|m| Item {
                        addr: m.data().as_ptr() as usize,
                        len: m.len(),
                        type_id: m.type_id(),
                        correlation_id: 0,
                        copy: None,
                    })
                    .collect();
                Ok((batch.park(), items))
            })
        })?;
        let len = items.len();
        let held = Held::new(Owner::Bus(slf.clone().unbind()), Some(parked), items);
        remember(&this.held, &held);
        Ok(RxBatchGuard::new(held, len))
    }

    /// Awaitable receive for asyncio: the wait runs on this bus's one receiver thread
    /// (started on demand, never one per pending call), so the event loop stays free.
    /// Raises `TachyonTimeoutError` after `timeout` seconds. A receive cancelled after
    /// its message arrived keeps that message for the next `recv_async`. Do not mix with
    /// blocking receives on the same bus.
    #[pyo3(signature = (timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("tachyon.aio")?.call_method1("recv_async", (slf, timeout))
    }

    /// A waiter for the receive ring to hold a message, usable without the bus's lock
    /// (the asyncio pumps wait on it).
    fn readiness(&self, py: Python<'_>) -> PyResult<crate::readiness::Readiness> {
        self.bus.with_gil(py, |bus| Ok(crate::readiness::Readiness::new(bus.rx_readiness())))
    }

    /// `async for msg in bus:` receives until the peer is gone.
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("tachyon.aio")?.call_method1("anext_message", (slf,))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Blocks until the next message arrives. Ends (`StopIteration`) once the peer has
    /// closed its bus and everything it sent was delivered; raises `PeerDeadError` if it
    /// died instead.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        match self.recv(py, None) {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_peer_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes messages committed without flushing.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.bus.with_gil(py, |bus| {
            bus.flush();
            Ok(())
        })
    }

    /// Pure-spin mode: the consumer never sleeps (stays set, unlike upstream).
    fn set_polling_mode(&self, py: Python<'_>, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let enabled = enabled.is_truthy()?;
        self.bus.with_gil(py, |bus| {
            bus.set_polling_mode(enabled);
            Ok(())
        })
    }

    /// Binds the ring's memory to NUMA node `node_id` (0..64).
    fn set_numa_node(&self, py: Python<'_>, node_id: i32) -> PyResult<()> {
        self.bus.with_gil(py, |bus| Ok(bus.set_numa_node(node_id)?))
    }

    /// This side's counters: messages and bytes each way, full-ring waits, sleeps,
    /// wakes, timeouts, peer deaths, protocol errors (a dict of ints). Never blocks.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        crate::stats::bus_stats(py, &self.stats.read())
    }

    /// Ring capacity in bytes.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        self.bus.with_gil(py, |bus| Ok(bus.capacity()))
    }

    /// Whether the peer is a Tachyon peer with a liveness link.
    #[getter]
    fn has_peer_link(&self, py: Python<'_>) -> PyResult<bool> {
        self.bus.with_gil(py, |bus| Ok(bus.has_peer_link()))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.bus.is_closed(py)
    }

    /// Unmaps the shared memory. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.bus.close(py);
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
