//! RPC over TCP for Python: `tachyon._tachyon.TcpClient` (the caller, with the same
//! `call`/`wait`/`invoke`/`notify` as `RpcBus`) and `TcpRpcServer` (the core's io_uring
//! server with Python handlers). Waits run with the GIL released.
//!
//! The server runs handlers on its reactor thread (or `workers` threads): one thread
//! per reactor, never one per connection. Each request takes the GIL for its handler.

use std::borrow::Cow;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tachyon::net::{
    ClientTls, ServerTls, TcpClient, TcpClientOptions, TcpServer, TcpServerHandle, TcpServerOptions,
};

use crate::bus::{blocking, timeout};
use crate::errors::{to_py, BindError};

/// A caller over TCP: `tachyon.connect("tcp://host:port")`.
#[pyclass(module = "tachyon._tachyon", name = "TcpClient", frozen)]
pub struct PyTcpClient {
    client: Arc<TcpClient>,
}

#[pymethods]
impl PyTcpClient {
    /// Connects to `address` (`tcp://host:port`) within `timeout` seconds (10 s by
    /// default), with `connections` TCP connections (1 by default); over TLS 1.3 with
    /// `tls = (ca_pem, cert_pem, key_pem, server_name)` (the last three may be None).
    #[staticmethod]
    #[pyo3(signature = (address, timeout=None, connections=1, tls=None))]
    #[allow(clippy::type_complexity)] // the PEM tuple the Python layer builds
    fn connect(
        py: Python<'_>,
        address: String,
        timeout: Option<f64>,
        connections: usize,
        tls: Option<(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>)>,
    ) -> PyResult<Self> {
        let mut opts = TcpClientOptions::default().connections(connections);
        if let Some((ca, cert, key, name)) = tls {
            let identity = match (&cert, &key) {
                (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
                (None, None) => None,
                _ => {
                    return Err(PyValueError::new_err(
                        "a client certificate needs its key, and a key its certificate",
                    ))
                }
            };
            let mut t =
                ClientTls::from_pem(&ca, identity).map_err(|e| to_py(py, BindError::Core(e)))?;
            if let Some(name) = name {
                t = t.server_name(name);
            }
            opts = opts.tls(t);
        }
        if let Some(t) = self::timeout(timeout)? {
            opts = opts.connect_timeout(t);
        }
        let client = blocking(py, move |_| Ok(TcpClient::connect_with(&address, &opts)?))?;
        Ok(Self { client: Arc::new(client) })
    }

    /// Sends a request; returns its correlation id (waits up to `timeout` for room in
    /// the in-flight window; fails at once without one when the window is full).
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
        let c = &self.client;
        blocking(py, |_| {
            Ok(match t {
                Some(t) => c.call_timeout(payload, msg_type, t)?,
                None => c.call(payload, msg_type)?,
            })
        })
    }

    /// Waits for the reply to `correlation_id`; returns its bytes.
    #[pyo3(signature = (correlation_id, timeout=None))]
    fn wait(
        &self,
        py: Python<'_>,
        correlation_id: u64,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyBytes>> {
        let t = self::timeout(timeout)?;
        let c = &self.client;
        let data = blocking(py, |_| {
            Ok(match t {
                Some(t) => c.wait_timeout(correlation_id, t)?,
                None => c.wait(correlation_id)?,
            })
        })?;
        Ok(PyBytes::new(py, &data).unbind())
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
        let c = &self.client;
        let data = blocking(py, |_| Ok(c.invoke(payload, msg_type, t)?))?;
        Ok(PyBytes::new(py, &data).unbind())
    }

    /// Sends a oneway request (no reply).
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
        let c = &self.client;
        blocking(py, |_| Ok(c.notify(payload, msg_type, t)?))
    }

    /// Gives up on a call; a cancel frame tells the server.
    fn abandon(&self, correlation_id: u64) {
        self.client.abandon(correlation_id);
    }

    /// Calls sent and not answered.
    #[getter]
    fn in_flight(&self) -> usize {
        self.client.in_flight()
    }

    /// The address it connected to.
    #[getter]
    fn address(&self) -> String {
        self.client.address().to_owned()
    }

    fn __repr__(&self) -> String {
        format!("TcpClient({:?})", self.client.address())
    }
}

/// The core's TCP RPC server serving Python handlers.
#[pyclass(module = "tachyon._tachyon", name = "TcpRpcServer", frozen)]
pub struct PyTcpRpcServer {
    handle: std::sync::Mutex<Option<TcpServerHandle>>,
    address: String,
    stats: tachyon::ServerStatsReader,
}

#[pymethods]
impl PyTcpRpcServer {
    /// Binds `address` (`tcp://host:port`; port 0 picks one) and serves `handlers`
    /// (`{msg_type: (name, fn)}`) and `streams` like `RpcServer.start`. `workers` runs
    /// handlers on that many threads instead of the reactor; `allow_remote` serves
    /// plaintext to other machines; `tls = (cert_pem, key_pem, client_ca_pem)` serves
    /// TLS 1.3 (mutual when the CA is given).
    #[staticmethod]
    #[pyo3(signature = (address, handlers, workers=0, allow_remote=false, on_error=None, on_server_error=None, streams=None, tls=None))]
    #[allow(clippy::needless_pass_by_value, clippy::too_many_arguments, clippy::type_complexity)] // pyo3 arguments
    fn start(
        py: Python<'_>,
        address: String,
        handlers: &Bound<'_, PyDict>,
        workers: usize,
        allow_remote: bool,
        on_error: Option<Py<PyAny>>,
        on_server_error: Option<Py<PyAny>>,
        streams: Option<&Bound<'_, PyDict>>,
        tls: Option<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)>,
    ) -> PyResult<Self> {
        let d = crate::server::python_dispatcher(py, handlers, streams, on_error.as_ref())?;
        let mut opts = TcpServerOptions::default().workers(workers).allow_remote(allow_remote);
        if workers == 0 {
            // Inline handlers: one GIL acquisition per received batch of requests (each
            // handler's own acquisition inside it is then only a count).
            opts = opts.batch_scope(|work| Python::attach(|_| work()));
        }
        if let Some((cert, key, ca)) = tls {
            let t = ServerTls::from_pem(&cert, &key, ca.as_deref())
                .map_err(|e| to_py(py, BindError::Core(e)))?;
            opts = opts.tls(t);
        }
        if let Some(hook) = on_server_error {
            opts = opts.on_error(crate::server::server_error_hook(hook));
        }
        let handle = blocking(py, move |_| {
            let server = TcpServer::bind(&address, opts)?;
            Ok(server.spawn(Arc::new(d))?)
        })?;
        let address = handle.address();
        let stats = handle.stats_reader();
        Ok(Self { handle: std::sync::Mutex::new(Some(handle)), address, stats })
    }

    /// The address clients connect to (`tcp://host:port`, the real port).
    #[getter]
    fn path(&self) -> &str {
        &self.address
    }

    /// Connections accepted, refused and active, requests, protocol errors,
    /// backpressure pauses, and `errors` (`{code: count}`), as `RpcServer.stats()`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        crate::stats::server_stats(py, &self.stats.read())
    }

    /// Whether it still serves.
    #[getter]
    fn running(&self) -> bool {
        self.handle.lock().is_ok_and(|h| h.is_some())
    }

    /// Answers what arrived, says goaway, closes (GIL released). Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        match handle {
            Some(h) => py.detach(move || h.shutdown()).map_err(|e| to_py(py, BindError::Core(e))),
            None => Ok(()),
        }
    }
}

impl Drop for PyTcpRpcServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.get_mut().ok().and_then(Option::take) {
            // Reactor threads may wait for the GIL to run a handler: shut down without it.
            Python::attach(|py| py.detach(move || drop(h.shutdown())));
        }
    }
}

/// One subject attribute as the Python layer wraps it: `(oid, short_name, value)`.
type NameAttribute = (String, Option<&'static str>, String);

/// The verified client certificate of the call this thread is handling (mutual TLS):
/// `(common_name, subject, dns_names, uri_names, ip_addresses, email_addresses,
/// certificate_der)`, or None. The core parsed it (`tachyon::net::PeerIdentity`).
#[pyfunction]
#[allow(clippy::type_complexity)] // a plain tuple the Python layer wraps
pub fn peer_identity(
    py: Python<'_>,
) -> Option<(
    Option<String>,
    Vec<Vec<NameAttribute>>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Bound<'_, PyBytes>,
)> {
    tachyon::net::peer_identity().map(|p| {
        (
            p.common_name.clone(),
            p.subject
                .iter()
                .map(|rdn| rdn.iter().map(|a| (a.oid.clone(), a.name, a.value.clone())).collect())
                .collect(),
            p.dns_names.clone(),
            p.uri_names.clone(),
            p.ip_addresses.iter().map(ToString::to_string).collect(),
            p.email_addresses.clone(),
            PyBytes::new(py, &p.certificate),
        )
    })
}
