//! `tachyon._tachyon.Channel`: a log channel of the core ([`tachyon::channel`]) for
//! Python. Appends and reads copy; `wait` sleeps on the channel's futex word with the
//! GIL released (Ctrl-C ends it within 200 ms), and `close()` wakes it at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tachyon::channel::{Channel, ChannelOptions};

use crate::bus::{blocking_until, timeout};
use crate::errors::{to_py, BindError};

/// One entry of a channel.
#[pyclass(module = "tachyon._tachyon", name = "ChannelEntry", frozen)]
pub struct PyChannelEntry {
    /// Its id (1 for the channel's first entry).
    #[pyo3(get)]
    id: u64,
    /// Its media type ("" when none was given).
    #[pyo3(get)]
    media_type: String,
    data: Py<PyBytes>,
}

#[pymethods]
impl PyChannelEntry {
    /// Its payload.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "ChannelEntry(id={}, media_type={:?}, data=<{} bytes>)",
            self.id,
            self.media_type,
            self.data.bind(py).as_bytes().len()
        )
    }
}

/// What a read found after the caller's last id.
#[pyclass(module = "tachyon._tachyon", name = "ChannelRead", frozen)]
pub struct PyChannelRead {
    /// Entries, oldest first.
    #[pyo3(get)]
    entries: Vec<Py<PyChannelEntry>>,
    /// The id to pass to the next read.
    #[pyo3(get)]
    last_id: u64,
    /// Entries overwritten before this reader got to them.
    #[pyo3(get)]
    lost: u64,
    /// Entries whose writer died mid-append.
    #[pyo3(get)]
    abandoned: u64,
}

#[pymethods]
impl PyChannelRead {
    fn __repr__(&self) -> String {
        format!(
            "ChannelRead(entries=<{}>, last_id={}, lost={}, abandoned={})",
            self.entries.len(),
            self.last_id,
            self.lost,
            self.abandoned
        )
    }
}

/// A log channel file `<directory>/<name>`, created (0600) if missing.
#[pyclass(module = "tachyon._tachyon", name = "Channel", frozen, subclass)]
pub struct PyChannel {
    ch: Arc<Channel>,
    closed: Arc<AtomicBool>,
}

#[pymethods]
impl PyChannel {
    #[new]
    #[pyo3(signature = (name, ipc_directory, *, capacity=None, create=true, mode=0o600))]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments by value
    fn new(
        py: Python<'_>,
        name: &str,
        ipc_directory: std::path::PathBuf,
        capacity: Option<u64>,
        create: bool,
        mode: u32,
    ) -> PyResult<Self> {
        let mut opts = ChannelOptions::default().create(create).mode(mode);
        if let Some(c) = capacity {
            opts = opts.capacity(c);
        }
        let ch = Channel::open_with(&ipc_directory, name, &opts)
            .map_err(|e| to_py(py, BindError::Core(e)))?;
        Ok(Self { ch: Arc::new(ch), closed: Arc::default() })
    }

    /// Appends an entry; returns its id.
    #[pyo3(signature = (data, media_type=""))]
    fn write(&self, py: Python<'_>, data: &[u8], media_type: &str) -> PyResult<u64> {
        self.ch.append(media_type, data).map_err(|e| to_py(py, BindError::Core(e)))
    }

    /// Up to `max_entries` entries after `last_id` (0: from the oldest kept).
    #[pyo3(signature = (last_id=0, max_entries=4096))]
    fn read(&self, py: Python<'_>, last_id: u64, max_entries: usize) -> PyResult<PyChannelRead> {
        let b = self.ch.read(last_id, max_entries).map_err(|e| to_py(py, BindError::Core(e)))?;
        let entries = b
            .entries
            .into_iter()
            .map(|e| {
                Py::new(
                    py,
                    PyChannelEntry {
                        id: e.id,
                        media_type: e.media_type,
                        data: PyBytes::new(py, &e.data).unbind(),
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(PyChannelRead { entries, last_id: b.last_id, lost: b.lost, abandoned: b.abandoned })
    }

    /// Waits until an entry after `last_id` can be read: True, or False after `timeout`
    /// seconds (or once closed). The GIL is released meanwhile.
    #[pyo3(signature = (last_id, timeout=None))]
    fn wait(&self, py: Python<'_>, last_id: u64, timeout: Option<f64>) -> PyResult<bool> {
        let t = self::timeout(timeout)?;
        let ch = &self.ch;
        blocking_until(py, &self.closed, |stop| ch.wait_until(last_id, t, stop))
    }

    /// The newest id reserved so far (0 for none).
    fn last_id(&self, py: Python<'_>) -> PyResult<u64> {
        self.ch.last_id().map_err(|e| to_py(py, BindError::Core(e)))
    }

    /// Bytes of entries the channel keeps.
    #[getter]
    fn capacity(&self) -> u64 {
        self.ch.capacity()
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.ch.path().display().to_string()
    }

    /// Ends every pending and later `wait` of this handle (they return False).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ch.wake_all();
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("Channel(path={:?}, capacity={})", self.path(), self.capacity())
    }
}
