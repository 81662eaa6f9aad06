//! `tachyon._tachyon.ReplyStream`: the caller's side of a server-streaming call on an
//! `RpcBus`. Iterating it waits for each item with the GIL released; leaving its `with`
//! block, `cancel()`, or dropping it before the end cancels the call on the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::bus::{blocking, timeout};
use crate::rpc::PyRpcBus;

/// The items of one server-streaming call, as `bytes`, in order.
#[pyclass(module = "tachyon._tachyon", name = "ReplyStream", frozen)]
pub struct PyReplyStream {
    bus: Py<PyRpcBus>,
    cid: u64,
    /// How long one item may take by default.
    timeout: Option<Duration>,
    /// Ended (the end, an error, a cancel): nothing more to read or cancel.
    done: AtomicBool,
}

impl PyReplyStream {
    pub(crate) fn new(bus: Py<PyRpcBus>, cid: u64, timeout: Option<Duration>) -> Self {
        Self { bus, cid, timeout, done: AtomicBool::new(false) }
    }

    fn next_item(&self, py: Python<'_>, t: Option<Duration>) -> PyResult<Option<Py<PyBytes>>> {
        if self.done.load(Ordering::Acquire) {
            return Ok(None);
        }
        let bus = self.bus.get();
        let cid = self.cid;
        let r = blocking(py, |check| {
            bus.bus.with(|b| {
                let wait = tachyon::Wait::new().timeout_opt(t).interrupt(check);
                Ok(b.next_stream_item_with(cid, wait)?.map(|r| r.data().to_vec()))
            })
        });
        match r {
            Ok(Some(item)) => Ok(Some(PyBytes::new(py, &item).unbind())),
            Ok(None) => {
                self.done.store(true, Ordering::Release);
                Ok(None)
            }
            Err(e) => {
                // A timeout or Ctrl-C leaves the stream open; anything else ended it.
                let open = e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py);
                if !open {
                    self.done.store(true, Ordering::Release);
                }
                Err(e)
            }
        }
    }

    fn cancel_now(&self, py: Python<'_>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        let bus = self.bus.get();
        let cid = self.cid;
        // A closed bus has nothing to cancel.
        let _ = bus.bus.with_gil(py, |b| {
            b.cancel_stream(cid);
            Ok(())
        });
    }
}

#[pymethods]
impl PyReplyStream {
    /// The call's correlation id.
    #[getter]
    fn correlation_id(&self) -> u64 {
        self.cid
    }

    /// Whether the stream has ended (or was cancelled).
    #[getter]
    fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        self.next_item(py, self.timeout)
    }

    /// The next item, waiting up to `timeout` seconds (default: the stream's); `None`
    /// once the stream ended.
    ///
    /// :raises TachyonRpcError: the server ended the stream with an error.
    /// :raises TachyonTimeoutError: no item in time (the stream stays open).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyBytes>>> {
        let t = match timeout {
            Some(_) => self::timeout(timeout)?,
            None => self.timeout,
        };
        self.next_item(py, t)
    }

    /// Cancels the call: the server stops at its next item. Idempotent.
    fn cancel(&self, py: Python<'_>) {
        self.cancel_now(py);
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.cancel_now(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("ReplyStream(correlation_id={}, done={})", self.cid, self.done())
    }
}

impl Drop for PyReplyStream {
    fn drop(&mut self) {
        if !*self.done.get_mut() {
            Python::attach(|py| self.cancel_now(py));
        }
    }
}
