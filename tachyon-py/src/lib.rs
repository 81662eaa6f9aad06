//! The native module `tachyon._tachyon`: thin bindings over the Rust core. The Python
//! package `tachyon` re-exports it.

mod bus;
mod errors;

use pyo3::prelude::*;

/// Packs a route and a message type into a type id.
#[pyfunction]
fn make_type_id(route: u16, msg_type: u16) -> u32 {
    tachyon::make_type_id(route, msg_type)
}

/// The route id in bits 31..16 of a type id.
#[pyfunction]
fn route_id(type_id: u32) -> u16 {
    tachyon::route_id(type_id)
}

/// The message type in bits 15..0 of a type id.
#[pyfunction]
fn msg_type(type_id: u32) -> u16 {
    tachyon::msg_type(type_id)
}

#[pymodule]
fn _tachyon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bus::PyBus>()?;
    m.add_class::<bus::Message>()?;
    m.add_function(wrap_pyfunction!(make_type_id, m)?)?;
    m.add_function(wrap_pyfunction!(route_id, m)?)?;
    m.add_function(wrap_pyfunction!(msg_type, m)?)?;
    Ok(())
}
