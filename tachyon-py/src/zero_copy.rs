//! Zero-copy guards for Python: `TxGuard` (a writable slot in shared memory) and
//! `RxGuard` (a received message read in place), both exported through the buffer
//! protocol, so `memoryview(guard)` reads or writes the ring itself.
//!
//! The core's guards borrow the bus, which a Python object cannot hold, so they are
//! *parked* ([`tachyon::ParkedTx`], [`tachyon::ParkedRx`]): the slot stays reserved (TX) or
//! unreleased (RX) and its memory stays mapped while the token lives, and every other
//! send (TX) or receive (RX) on the bus fails with a `Busy` error meanwhile.
//!
//! The one rule this module keeps: **no memoryview outlives the slot.** Leaving the guard
//! while a memoryview of it is still exported raises `BufferError` and leaves the slot
//! parked, so the view never points at reused memory; the slot is rolled back (TX) or
//! released (RX) when the guard object itself goes away, which Python does only after
//! every view of it is gone.

use std::ffi::c_int;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tachyon::rpc::ParkedRpcTx;
use tachyon::{ParkedRx, ParkedTx};

use crate::bus::PyBus;
use crate::rpc::PyRpcBus;

/// Where a parked TX slot goes back to.
pub(crate) enum TxParked {
    /// A slot of a `Bus`.
    Bus(Py<PyBus>, ParkedTx),
    /// A request (`cid` assigned at commit) or reply slot of an `RpcBus`.
    Rpc(Py<PyRpcBus>, ParkedRpcTx),
}

/// What a TX guard knows: the parked slot (until commit or rollback), where it lives, and
/// the header fields for the commit.
struct TxState {
    parked: Option<TxParked>,
    /// Address and length of the writable slot; valid while `parked` is `Some`.
    addr: usize,
    len: usize,
    exports: usize,
    actual_size: usize,
    type_id: u32,
    correlation_id: Option<u64>,
}

/// A reserved slot in shared memory. Write it through `memoryview(tx)`, set
/// `actual_size`, and leave the `with` block: it is committed and flushed then, or rolled
/// back if the block raised.
#[pyclass(module = "tachyon._tachyon", name = "TxGuard", frozen)]
pub struct TxGuard {
    state: Mutex<TxState>,
}

/// Locks a guard's state. Held only for field updates, never while waiting on anything.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn still_exported(n: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "{n} memoryview(s) of this slot are still alive; release them (`with memoryview(g) \
         as m:`) before leaving the guard. The slot stays held until they are gone."
    ))
}

impl TxGuard {
    /// A guard over a parked slot at `addr..addr + len`.
    pub(crate) fn new(
        parked: TxParked,
        addr: usize,
        len: usize,
        actual_size: usize,
        type_id: u32,
        correlation_id: Option<u64>,
    ) -> Self {
        Self {
            state: Mutex::new(TxState {
                parked: Some(parked),
                addr,
                len,
                exports: 0,
                actual_size,
                type_id,
                correlation_id,
            }),
        }
    }

    /// Takes the parked slot for commit or rollback, refusing while it is exported.
    fn take(&self) -> PyResult<Option<TxParked>> {
        let mut s = lock(&self.state);
        if s.exports > 0 {
            return Err(still_exported(s.exports));
        }
        Ok(s.parked.take())
    }

    /// Commits `parked` with the guard's header fields; returns the correlation id (RPC).
    fn commit_parked(&self, py: Python<'_>, parked: TxParked) -> PyResult<Option<u64>> {
        let (size, type_id) = {
            let s = lock(&self.state);
            (s.actual_size, s.type_id)
        };
        let cid = match parked {
            TxParked::Bus(bus, p) => {
                bus.get()
                    .bus
                    .with_gil(py, move |b| Ok(b.resume_tx(p)?.commit(size, type_id)?))?;
                None
            }
            TxParked::Rpc(bus, p) => {
                let msg_type = tachyon::msg_type(type_id);
                Some(
                    bus.get()
                        .bus
                        .with_gil(py, move |b| Ok(b.resume(p)?.commit(size, msg_type)?))?,
                )
            }
        };
        let mut s = lock(&self.state);
        s.correlation_id = cid.or(s.correlation_id);
        Ok(s.correlation_id)
    }
}

/// Rolls a parked slot back (nothing was published). Closed buses are already gone.
fn rollback(py: Python<'_>, parked: TxParked) {
    // Errors mean the bus was closed (its ring is gone with it): nothing to undo.
    let _ = match parked {
        TxParked::Bus(bus, p) => bus.get().bus.with_gil(py, move |b| {
            b.resume_tx(p)?.rollback();
            Ok(())
        }),
        TxParked::Rpc(bus, p) => bus.get().bus.with_gil(py, move |b| {
            drop(b.resume(p)?);
            Ok(())
        }),
    };
}

#[pymethods]
impl TxGuard {
    /// Bytes to commit (at most `max_size`); set it after writing.
    #[getter]
    fn actual_size(&self) -> usize {
        lock(&self.state).actual_size
    }

    #[setter]
    fn set_actual_size(&self, size: usize) -> PyResult<()> {
        let mut s = lock(&self.state);
        if size > s.len {
            return Err(PyValueError::new_err(format!(
                "actual_size {size} exceeds the slot's {} bytes",
                s.len
            )));
        }
        s.actual_size = size;
        Ok(())
    }

    /// The writable size of the slot.
    #[getter]
    fn max_size(&self) -> usize {
        lock(&self.state).len
    }

    /// The type id (on an RPC bus, the msg_type) the commit will carry.
    #[getter]
    fn type_id(&self) -> u32 {
        lock(&self.state).type_id
    }

    #[setter]
    fn set_type_id(&self, type_id: u32) {
        lock(&self.state).type_id = type_id;
    }

    /// The correlation id: a reply's at once, a call's once committed (else `None`).
    #[getter]
    fn correlation_id(&self) -> Option<u64> {
        lock(&self.state).correlation_id
    }

    /// Commits now (leaving the `with` block does the same). Returns the correlation id
    /// on an RPC bus, else `None`.
    fn commit(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        match self.take()? {
            Some(p) => self.commit_parked(py, p),
            None => Err(PyValueError::new_err("the slot was already committed or rolled back")),
        }
    }

    /// Abandons the slot: nothing is sent.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(p) = self.take()? {
            rollback(py, p);
        }
        Ok(())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Commits, or rolls back if the block raised. Raises `BufferError` (and holds the
    /// slot) if a memoryview of it is still alive.
    #[pyo3(signature = (*exc))]
    fn __exit__(&self, py: Python<'_>, exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let failed = exc.get_item(0).is_ok_and(|t| !t.is_none());
        match self.take()? {
            Some(p) if failed => rollback(py, p),
            Some(p) => {
                self.commit_parked(py, p)?;
            }
            None => {}
        }
        Ok(false)
    }

    /// Exports the slot, writable, to `memoryview(tx)`.
    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let mut s = lock(&this.state);
        if s.parked.is_none() {
            return Err(PyBufferError::new_err("the slot was already committed or rolled back"));
        }
        // SAFETY: `addr..addr + len` is the reserved slot, writable by us alone: the
        // reservation is parked in `s.parked`, which keeps the ring's mapping alive and
        // the slot unpublished, and it is not given back while `exports > 0` (see `take`).
        unsafe { export(slf.as_any(), view, s.addr as *mut u8, s.len, false, flags)? };
        s.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut s = lock(&self.state);
        s.exports = s.exports.saturating_sub(1);
    }

    fn __repr__(&self) -> String {
        let s = lock(&self.state);
        format!(
            "TxGuard(max_size={}, actual_size={}, type_id={}, open={})",
            s.len,
            s.actual_size,
            s.type_id,
            s.parked.is_some()
        )
    }
}

impl Drop for TxGuard {
    fn drop(&mut self) {
        let parked = self.state.get_mut().unwrap_or_else(PoisonError::into_inner).parked.take();
        if let Some(p) = parked {
            Python::attach(|py| rollback(py, p));
        }
    }
}

/// What an RX guard knows: the parked message (until released) and where it lives.
struct RxState {
    parked: Option<(Py<PyBus>, ParkedRx)>,
    /// Address and length of the payload; valid while `parked` is `Some`.
    addr: usize,
    len: usize,
    exports: usize,
}

/// A received message read in place: `memoryview(rx)` is the payload in shared memory
/// (read-only). Leaving the `with` block releases the slot to the producer.
#[pyclass(module = "tachyon._tachyon", name = "RxGuard", frozen)]
pub struct RxGuard {
    state: Mutex<RxState>,
    /// `route << 16 | msg_type`.
    #[pyo3(get)]
    type_id: u32,
    /// Payload size in bytes.
    #[pyo3(get)]
    actual_size: usize,
}

impl RxGuard {
    /// A guard over a parked message whose payload is at `addr..addr + len`.
    pub(crate) fn new(
        bus: Py<PyBus>,
        parked: ParkedRx,
        addr: usize,
        len: usize,
        type_id: u32,
    ) -> Self {
        Self {
            state: Mutex::new(RxState { parked: Some((bus, parked)), addr, len, exports: 0 }),
            type_id,
            actual_size: len,
        }
    }
}

/// Releases parked messages. A closed bus has no ring left to release them in.
fn release(py: Python<'_>, bus: &Py<PyBus>, parked: ParkedRx) -> PyResult<()> {
    if bus.get().bus.is_closed(py) {
        return Ok(());
    }
    bus.get().bus.with_gil(py, move |b| Ok(b.commit_parked(parked)?))
}

#[pymethods]
impl RxGuard {
    /// Releases the slot now (leaving the `with` block does the same).
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let taken = {
            let mut s = lock(&self.state);
            if s.exports > 0 {
                return Err(still_exported(s.exports));
            }
            s.parked.take()
        };
        match taken {
            Some((bus, p)) => release(py, &bus, p),
            None => Ok(()),
        }
    }

    /// The payload as `bytes` (a copy, safe to keep).
    fn __bytes__(&self, py: Python<'_>) -> PyResult<Py<pyo3::types::PyBytes>> {
        let s = lock(&self.state);
        if s.parked.is_none() {
            return Err(PyBufferError::new_err("the message was already released"));
        }
        // SAFETY: as in `__getbuffer__`: the message is parked, so its payload is mapped
        // and not overwritten while `s` (and so `parked`) is held.
        let data = unsafe { std::slice::from_raw_parts(s.addr as *const u8, s.len) };
        Ok(pyo3::types::PyBytes::new(py, data).unbind())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Releases the slot. Raises `BufferError` (and holds the slot) if a memoryview of
    /// it is still alive.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.commit(py)?;
        Ok(false)
    }

    /// Exports the payload, read-only, to `memoryview(rx)`.
    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let mut s = lock(&this.state);
        if s.parked.is_none() {
            return Err(PyBufferError::new_err("the message was already released"));
        }
        // SAFETY: `addr..addr + len` is the payload of a parked message: the token keeps
        // the mapping alive and the producer from reusing the slot, and it is not
        // released while `exports > 0` (see `commit`). The view is read-only.
        unsafe { export(slf.as_any(), view, s.addr as *mut u8, s.len, true, flags)? };
        s.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut s = lock(&self.state);
        s.exports = s.exports.saturating_sub(1);
    }

    fn __repr__(&self) -> String {
        format!("RxGuard(type_id={}, actual_size={})", self.type_id, self.actual_size)
    }
}

impl Drop for RxGuard {
    fn drop(&mut self) {
        let parked = self.state.get_mut().unwrap_or_else(PoisonError::into_inner).parked.take();
        if let Some((bus, p)) = parked {
            Python::attach(|py| {
                let _ = release(py, &bus, p);
            });
        }
    }
}

/// Fills `view` with an export of `ptr..ptr + len` owned by `owner` (read-only if
/// `readonly`; a writable request of a read-only export fails with `BufferError`).
///
/// # Safety
/// `view` must be the buffer struct passed to `__getbuffer__`, and the memory must stay
/// valid (and, if `readonly`, unchanged) for as long as `owner` lives or exports it.
pub(crate) unsafe fn export(
    owner: &Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
    flags: c_int,
) -> PyResult<()> {
    // SAFETY: the caller's contract; FillInfo takes a reference to `owner` for the view,
    // which the matching PyBuffer_Release drops.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            ffi::Py_ssize_t::try_from(len).unwrap_or(ffi::Py_ssize_t::MAX),
            c_int::from(readonly),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(owner.py()))
    }
}
