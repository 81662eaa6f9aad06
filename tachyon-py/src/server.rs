//! `tachyon._tachyon.RpcServer`: the core's multi-client RPC server with Python handlers.
//!
//! The Rust server accepts callers on one socket path, each on its own thread with its
//! own pair of rings. Each registered msg_type becomes a core handler that takes the GIL,
//! calls the Python handler with the request, and maps a Python exception onto the
//! structured error reply (its `rpc_code` attribute, else `HANDLER_ERROR`). Waiting,
//! accepting and replying all happen with the GIL released.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator};
use tachyon::rpc::{
    code, Dispatcher, RpcServer, ServerError, ServerHandle, ServerOptions, StreamSink,
};

use crate::bus::{blocking, timeout};
use crate::errors::to_py;

/// Calls a Python handler on `request`; an exception becomes the error reply, after
/// `on_error(msg_type, exception)` has seen it (the package logs it by default).
pub(crate) fn call_handler(
    handler: &Py<PyAny>,
    on_error: Option<&Py<PyAny>>,
    msg_type: u16,
    request: &[u8],
) -> Result<Vec<u8>, ServerError> {
    Python::attach(|py| {
        let result =
            handler.call1(py, (PyBytes::new(py, request),)).and_then(|r| to_bytes(r.bind(py)));
        result.map_err(|e| server_error(py, &e, on_error, msg_type))
    })
}

/// A handler's result as bytes (anything with `__bytes__` too).
fn to_bytes(r: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    r.extract::<Vec<u8>>().or_else(|_| r.call_method0("__bytes__")?.extract())
}

/// A Python exception as the error reply (its `rpc_code`, else `HANDLER_ERROR`), after
/// `on_error(msg_type, exception)` has seen it.
fn server_error(
    py: Python<'_>,
    e: &PyErr,
    on_error: Option<&Py<PyAny>>,
    msg_type: u16,
) -> ServerError {
    let value = e.value(py);
    if let Some(hook) = on_error {
        if let Err(hook_failed) = hook.call1(py, (msg_type, value.clone())) {
            hook_failed.write_unraisable(py, Some(hook.bind(py)));
        }
    }
    let code =
        value.getattr("rpc_code").and_then(|c| c.extract::<u32>()).unwrap_or(code::HANDLER_ERROR);
    let kind = value.get_type().name().map_or_else(|_| "Exception".to_owned(), |n| n.to_string());
    ServerError::new(code, format!("{kind}: {value}"))
}

/// Serves one streaming call with a Python handler: `handler(request)` returns an
/// iterable of `bytes`; each item is taken with the GIL and sent without it. When the
/// caller cancels (or the transport fails) the iterator's `close()` runs, so a
/// generator's `finally` blocks do.
pub(crate) fn call_stream_handler(
    handler: &Py<PyAny>,
    on_error: Option<&Py<PyAny>>,
    msg_type: u16,
    request: &[u8],
    sink: &mut StreamSink<'_>,
) -> Result<(), ServerError> {
    let iter: Py<PyAny> = Python::attach(|py| {
        handler
            .call1(py, (PyBytes::new(py, request),))
            .and_then(|r| Ok(r.bind(py).try_iter()?.into_any().unbind()))
            .map_err(|e| server_error(py, &e, on_error, msg_type))
    })?;
    let close = |iter: &Py<PyAny>| {
        Python::attach(|py| {
            let it = iter.bind(py);
            if it.hasattr("close").unwrap_or(false) {
                if let Err(e) = it.call_method0("close") {
                    e.write_unraisable(py, Some(it));
                }
            }
        });
    };
    loop {
        let next = Python::attach(|py| {
            let mut it = iter.bind(py).cast::<PyIterator>().map_err(PyErr::from)?.clone();
            it.next().map(|r| r.and_then(|item| to_bytes(&item))).transpose()
        });
        let item = match next {
            Ok(Some(item)) => item,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Python::attach(|py| server_error(py, &e, on_error, msg_type))),
        };
        if let Err(e) = sink.send(&item) {
            close(&iter);
            return Err(e);
        }
    }
}

/// A multi-client RPC server running on background threads. Python handlers are called
/// with the request `bytes` and return bytes; an exception becomes the error reply.
#[pyclass(module = "tachyon._tachyon", name = "RpcServer", frozen)]
pub struct PyRpcServer {
    handle: std::sync::Mutex<Option<ServerHandle>>,
    stop: tachyon::rpc::StopHandle,
    path: String,
    stats: tachyon::ServerStatsReader,
}

#[pymethods]
impl PyRpcServer {
    /// Binds `socket_path` and starts serving `handlers` (`{msg_type: (name, fn)}`)
    /// on background threads, one per client, at most `max_clients` at once.
    /// `reply_timeout` bounds how long a reply waits for room in a client's ring.
    /// `on_error(msg_type, exception)` sees every handler exception (after its error
    /// reply went out); server-side problems (a refused connector, a stalled handshake)
    /// go to `on_server_error(message)`. `streams` (`{msg_type: (name, fn)}`) are
    /// server-streaming handlers: `fn(request)` returns an iterable of `bytes` items.
    #[staticmethod]
    #[pyo3(signature = (socket_path, handlers, cap_fwd=65536, cap_rev=65536, max_clients=64, reply_timeout=10.0, on_error=None, on_server_error=None, streams=None))]
    #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // pyo3 arguments
    fn start(
        py: Python<'_>,
        socket_path: String,
        handlers: &Bound<'_, PyDict>,
        cap_fwd: usize,
        cap_rev: usize,
        max_clients: usize,
        reply_timeout: Option<f64>,
        on_error: Option<Py<PyAny>>,
        on_server_error: Option<Py<PyAny>>,
        streams: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if max_clients == 0 {
            return Err(PyValueError::new_err("max_clients must be at least 1"));
        }
        let reply_timeout: Option<Duration> = timeout(reply_timeout)?;
        let d = python_dispatcher(py, handlers, streams, on_error.as_ref())?;
        let mut opts = ServerOptions::default()
            .capacity(cap_fwd, cap_rev)
            .max_clients(max_clients)
            .reply_timeout(reply_timeout);
        if let Some(hook) = on_server_error {
            opts = opts.on_error(server_error_hook(hook));
        }
        let path = socket_path.clone();
        let server = blocking(py, move |_| Ok(RpcServer::bind(&socket_path, opts)?))?;
        let stop = server.stop_handle();
        let stats = server.stats_reader();
        let handle = server.spawn(Arc::new(d));
        Ok(Self { handle: std::sync::Mutex::new(Some(handle)), stop, path, stats })
    }

    /// The socket path clients connect to.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Clients accepted, refused and active, requests answered, protocol errors, and
    /// `errors` (`{code: count}` of error replies). Readable after `stop()` too.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        crate::stats::server_stats(py, &self.stats.read())
    }

    /// Whether the server is still running.
    #[getter]
    fn running(&self) -> bool {
        self.handle.lock().is_ok_and(|h| h.is_some())
    }

    /// Stops accepting, ends every client's loop and waits for the threads (with the GIL
    /// released, so handlers in progress can finish). Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.stop.stop();
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        match handle {
            Some(h) => py.detach(move || h.stop()).map_err(|e| to_py(py, e.into())),
            None => Ok(()),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
}

impl Drop for PyRpcServer {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(h) = self.handle.get_mut().ok().and_then(Option::take) {
            // Client threads may wait for the GIL to run a handler: join without it.
            Python::attach(|py| py.detach(move || drop(h.stop())));
        }
    }
}

/// The dispatcher of a Python server: `handlers` and `streams` map msg_type to
/// `(name, fn)`; `on_error(msg_type, exception)` sees every handler exception.
pub(crate) fn python_dispatcher(
    py: Python<'_>,
    handlers: &Bound<'_, PyDict>,
    streams: Option<&Bound<'_, PyDict>>,
    on_error: Option<&Py<PyAny>>,
) -> PyResult<Dispatcher> {
    let mut d = Dispatcher::new();
    for (msg_type, entry) in handlers.iter() {
        let msg_type: u16 = msg_type.extract()?;
        let (name, handler): (String, Py<PyAny>) = entry.extract()?;
        let hook = on_error.map(|h| h.clone_ref(py));
        d.register_raw_fallible(msg_type, name, move |req| {
            call_handler(&handler, hook.as_ref(), msg_type, req)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    for (msg_type, entry) in streams.into_iter().flat_map(PyDictMethods::iter) {
        let msg_type: u16 = msg_type.extract()?;
        let (name, handler): (String, Py<PyAny>) = entry.extract()?;
        let hook = on_error.map(|h| h.clone_ref(py));
        d.register_stream_raw(msg_type, name, move |req: &[u8], sink: &mut StreamSink<'_>| {
            call_stream_handler(&handler, hook.as_ref(), msg_type, req, sink)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    Ok(d)
}

/// A server's `on_error` option that hands each server-side problem's message to the
/// Python callable `hook` (an exception it raises is reported as unraisable).
pub(crate) fn server_error_hook(hook: Py<PyAny>) -> impl Fn(&tachyon::Error) + Send + Sync {
    move |e| {
        let message = e.to_string();
        Python::attach(|py| {
            if let Err(failed) = hook.call1(py, (message,)) {
                failed.write_unraisable(py, Some(hook.bind(py)));
            }
        });
    }
}
