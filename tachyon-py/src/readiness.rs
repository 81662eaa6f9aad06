//! `tachyon._tachyon.Readiness`: waits for a bus to have something to receive without
//! holding the bus, so an asyncio pump thread can wait while the event loop keeps using
//! the bus (sending calls, replying) without contention.

use pyo3::prelude::*;
use tachyon::{RxReadiness, Wait};

use crate::bus::{blocking, timeout};

/// Waits for a bus's receive ring to hold a message (the message stays in the ring).
#[pyclass(module = "tachyon._tachyon", name = "Readiness", frozen)]
pub struct Readiness {
    inner: RxReadiness,
}

impl Readiness {
    pub(crate) fn new(inner: RxReadiness) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Readiness {
    /// Waits up to `timeout` seconds (for ever if `None`) with the GIL released. Returns
    /// `True` once a message is there, `False` on timeout; raises `PeerDeadError` once the
    /// ring is empty and the peer is gone.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = self::timeout(timeout)?;
        blocking(py, |check| match self.inner.wait(Wait::new().timeout_opt(t).interrupt(check)) {
            Ok(()) => Ok(true),
            Err(tachyon::Error::Timeout(_)) => Ok(false),
            Err(e) => Err(e.into()),
        })
    }
}
