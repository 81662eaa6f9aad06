//! The core's counters as plain Python dicts.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A bus's counters: `{"sent_messages": int, ...}`.
pub(crate) fn bus_stats<'py>(
    py: Python<'py>,
    s: &tachyon::BusStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in s.fields() {
        d.set_item(name, value)?;
    }
    Ok(d)
}

/// A server's counters, with `"errors": {code: count}`.
pub(crate) fn server_stats<'py>(
    py: Python<'py>,
    s: &tachyon::ServerStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in s.fields() {
        d.set_item(name, value)?;
    }
    let errors = PyDict::new(py);
    for (code, n) in &s.errors {
        errors.set_item(code, n)?;
    }
    d.set_item("errors", errors)?;
    Ok(d)
}
