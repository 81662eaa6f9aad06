//! `tachyon._tachyon.SharedBuffer`: a shared buffer of the core ([`tachyon::SharedBuffer`])
//! for Python. It exports the buffer protocol (writable), so `memoryview`, `numpy` and
//! anything else that takes a buffer see the shared bytes themselves. `close()` unmaps
//! it, refused (`BufferError`) while views are exported; `wait` releases the GIL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use tachyon::{BufferKind, SharedBuffer, SharedBufferOptions};

use crate::bus::{blocking_until, timeout};
use crate::errors::{to_py, BindError};

struct State {
    buf: Option<Arc<SharedBuffer>>,
    exports: usize,
}

/// Bytes shared between processes: a POSIX object (`name`), a file (`path`) or a System
/// V segment (`key`).
#[pyclass(module = "tachyon._tachyon", name = "SharedBuffer", frozen)]
pub struct PySharedBuffer {
    state: Mutex<State>,
    closed: Arc<AtomicBool>,
    kind: BufferKind,
    len: usize,
    created: bool,
}

impl PySharedBuffer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self) -> PyResult<Arc<SharedBuffer>> {
        self.lock().buf.clone().ok_or_else(|| PyValueError::new_err("the shared buffer is closed"))
    }
}

fn core(py: Python<'_>, e: tachyon::Error) -> PyErr {
    to_py(py, BindError::Core(e))
}

#[pymethods]
#[allow(clippy::needless_pass_by_value)] // pyo3 hands `slf` and arguments over by value
impl PySharedBuffer {
    #[new]
    #[pyo3(signature = (size=0, *, name=None, path=None, key=None, mode=0o600, create=true))]
    fn new(
        py: Python<'_>,
        size: usize,
        name: Option<String>,
        path: Option<std::path::PathBuf>,
        key: Option<i32>,
        mode: u32,
        create: bool,
    ) -> PyResult<Self> {
        let kind = match (name, path, key) {
            (Some(n), None, None) => BufferKind::Posix(n),
            (None, Some(p), None) => BufferKind::File(p),
            (None, None, Some(k)) => BufferKind::SysV(k),
            _ => return Err(PyValueError::new_err("give exactly one of name=, path= or key=")),
        };
        let opts = SharedBufferOptions::default().mode(mode).create(create);
        let buf = SharedBuffer::open(&kind, size, &opts).map_err(|e| core(py, e))?;
        let (len, created) = (buf.len(), buf.created());
        Ok(Self {
            state: Mutex::new(State { buf: Some(Arc::new(buf)), exports: 0 }),
            closed: Arc::default(),
            kind,
            len,
            created,
        })
    }

    /// Exports the shared bytes, writable.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let mut st = this.lock();
        let Some(buf) = st.buf.as_ref() else {
            return Err(PyBufferError::new_err("the shared buffer is closed"));
        };
        let (ptr, len) = (buf.as_ptr(), buf.len());
        // SAFETY: the mapping stays while `exports > 0` (close refuses then), and the
        // view holds a reference to `slf`. Writable: the bytes are shared on purpose.
        unsafe { crate::zero_copy::export(slf.as_any(), view, ptr, len, false, flags)? };
        st.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        let this = slf.get();
        let mut st = this.lock();
        st.exports = st.exports.saturating_sub(1);
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Whether this handle created the object (rather than attaching it).
    #[getter]
    fn created(&self) -> bool {
        self.created
    }

    /// What it maps, e.g. `POSIX shared memory "name"`.
    #[getter]
    fn kind(&self) -> String {
        self.kind.to_string()
    }

    /// Writes a file-backed buffer back to its file (msync); a no-op for the others.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.get()?.flush().map_err(|e| core(py, e))
    }

    /// Removes the name (object, file or key); mappings stay.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        self.get()?.unlink().map_err(|e| core(py, e))
    }

    /// Sleeps (GIL released) while the 32-bit word at `offset` is `expected`: True once
    /// it differs or a notify came, False after `timeout` seconds (or once closed).
    #[pyo3(signature = (offset, expected, timeout=None))]
    fn wait(
        &self,
        py: Python<'_>,
        offset: usize,
        expected: u32,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let t = self::timeout(timeout)?;
        let buf = self.get()?;
        blocking_until(py, &self.closed, |stop| buf.wait_until(offset, expected, t, stop))
    }

    /// Wakes up to `count` (default all) waiters on the word at `offset`, in any process;
    /// returns how many woke.
    #[pyo3(signature = (offset, count=u32::MAX))]
    fn notify(&self, py: Python<'_>, offset: usize, count: u32) -> PyResult<usize> {
        self.get()?.notify(offset, count).map_err(|e| core(py, e))
    }

    /// The 32-bit word at `offset` (4-aligned), read atomically.
    fn load_u32(&self, py: Python<'_>, offset: usize) -> PyResult<u32> {
        let buf = self.get()?;
        Ok(buf.atomic_u32(offset).map_err(|e| core(py, e))?.load(Ordering::Acquire))
    }

    /// Stores `value` atomically in the 32-bit word at `offset` (pair with `notify`).
    fn store_u32(&self, py: Python<'_>, offset: usize, value: u32) -> PyResult<()> {
        let buf = self.get()?;
        buf.atomic_u32(offset).map_err(|e| core(py, e))?.store(value, Ordering::Release);
        Ok(())
    }

    /// Adds `n` atomically to the 64-bit word at `offset` (8-aligned): a cross-process
    /// counter. Returns the value before.
    fn fetch_add_u64(&self, py: Python<'_>, offset: usize, n: u64) -> PyResult<u64> {
        let buf = self.get()?;
        Ok(buf.atomic_u64(offset).map_err(|e| core(py, e))?.fetch_add(n, Ordering::AcqRel))
    }

    /// Unmaps the buffer (a file-backed one is flushed first) and ends pending waits.
    /// Refused while views (memoryview, numpy arrays) of it are alive. Idempotent.
    fn close(&self) -> PyResult<()> {
        self.closed.store(true, Ordering::Release);
        let buf = {
            let mut st = self.lock();
            if st.exports > 0 {
                return Err(PyBufferError::new_err(format!(
                    "{} views of the shared buffer are still alive; release them first",
                    st.exports
                )));
            }
            st.buf.take()
        };
        if let Some(buf) = buf {
            let _ = buf.notify(0, u32::MAX);
        }
        Ok(())
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().buf.is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let created = if self.created { "True" } else { "False" };
        format!("SharedBuffer({}, size={}, created={created})", self.kind, self.len)
    }
}
