//! The zero-copy send guard for Python: `TxGuard`, a writable slot in shared memory
//! exported through the buffer protocol, so `memoryview(tx)` writes the ring itself.
//! (Receive guards live in [`crate::rx`].)
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
use tachyon::ParkedTx;

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
    /// A request slot of an RPC bus (its id is assigned at commit).
    call: bool,
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
        let call = correlation_id.is_none() && matches!(parked, TxParked::Rpc(..));
        Self {
            state: Mutex::new(TxState {
                call,
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

    /// Upstream's name on RPC slots: the msg_type the commit will carry.
    #[getter]
    fn msg_type(&self) -> u32 {
        lock(&self.state).type_id & 0xFFFF
    }

    #[setter]
    fn set_msg_type(&self, msg_type: u16) {
        lock(&self.state).type_id = u32::from(msg_type);
    }

    /// Upstream's name: the correlation id a committed call got (0 before the commit,
    /// and for replies).
    #[getter]
    fn out_cid(&self) -> u64 {
        let s = lock(&self.state);
        if s.parked.is_some() || !s.call {
            return 0;
        }
        s.correlation_id.unwrap_or(0)
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
