//! The native module `tachyon._tachyon`: thin bindings over the Rust core. The Python
//! package `tachyon` re-exports it.

mod bus;
mod channel;
mod dlpack;
mod errors;
mod events;
mod guarded;
mod readiness;
mod rpc;
mod rx;
mod server;
mod shared_buffer;
mod stats;
mod stream;
mod tcp;
mod zero_copy;

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

/// The msg_type a Tiga method name routes on (see `tachyon::rpc::tiga`): a decimal
/// name "0".."32767" is that msg_type; any other name hashes into 0x8000..=0xFFFE.
#[pyfunction]
fn method_id(py: Python<'_>, name: &str) -> PyResult<u16> {
    tachyon::rpc::tiga::method_id(name).map_err(|e| errors::to_py(py, e.into()))
}

/// The `(msg_type, payload)` that call Tiga method `method` with `data` as `client_id`
/// (for example on a Node `startTigaServer`).
#[pyfunction]
#[pyo3(signature = (method, data, client_id="python"))]
fn tiga_call(
    py: Python<'_>,
    method: &str,
    data: &[u8],
    client_id: &str,
) -> PyResult<(u16, Py<pyo3::types::PyBytes>)> {
    let (t, p) = tachyon::rpc::tiga::encode_call(method, client_id, data)
        .map_err(|e| errors::to_py(py, e.into()))?;
    Ok((t, pyo3::types::PyBytes::new(py, &p).unbind()))
}

/// Checks every schema in `schema_dir` and generates `lang` ("python" or "typescript")
/// modules: a list of `(file name, text)`. A bad schema raises `ValueError` whose text
/// names each error's file, line and column.
#[pyfunction]
fn codegen(schema_dir: &str, lang: &str) -> PyResult<Vec<(String, String)>> {
    let lang: tachyon_schema::gen::Lang =
        lang.parse().map_err(pyo3::exceptions::PyValueError::new_err)?;
    let pkgs = tachyon_schema::load_dir(std::path::Path::new(schema_dir))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    tachyon_schema::gen::files(lang, &pkgs).map_err(pyo3::exceptions::PyValueError::new_err)
}

/// Runs the `tachyon` command line `argv` (program name first) with the GIL released;
/// returns its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| tachyon_cli::run(argv))
}

#[pymodule]
fn _tachyon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(events::forward_events, m)?)?;
    m.add_function(wrap_pyfunction!(events::next_events, m)?)?;
    m.add_function(wrap_pyfunction!(events::stop_events, m)?)?;
    m.add_class::<bus::PyBus>()?;
    m.add_class::<bus::Message>()?;
    m.add_class::<rx::RxBatchGuard>()?;
    m.add_class::<rx::RxMsgView>()?;
    m.add_class::<rpc::PyRpcBus>()?;
    m.add_class::<channel::PyChannel>()?;
    m.add_class::<tcp::PyTcpClient>()?;
    m.add_class::<tcp::PyTcpRpcServer>()?;
    m.add_class::<shared_buffer::PySharedBuffer>()?;
    m.add_class::<channel::PyChannelEntry>()?;
    m.add_class::<channel::PyChannelRead>()?;
    m.add_class::<stream::PyReplyStream>()?;
    m.add_class::<server::PyRpcServer>()?;
    m.add_class::<readiness::Readiness>()?;
    m.add_class::<zero_copy::TxGuard>()?;
    m.add_class::<rx::RxGuard>()?;
    m.add_class::<rx::RpcRxGuard>()?;
    m.add_function(wrap_pyfunction!(tcp::peer_identity, m)?)?;
    m.add_function(wrap_pyfunction!(rpc::encode_error, m)?)?;
    m.add_function(wrap_pyfunction!(rpc::decode_error, m)?)?;
    // The core's error-code table; `tachyon.RpcCode` must match it (a test checks).
    m.add("RPC_CODES", tachyon::rpc::code::ALL.to_vec())?;
    m.add_function(wrap_pyfunction!(make_type_id, m)?)?;
    m.add_function(wrap_pyfunction!(route_id, m)?)?;
    m.add_function(wrap_pyfunction!(msg_type, m)?)?;
    m.add_function(wrap_pyfunction!(method_id, m)?)?;
    m.add_function(wrap_pyfunction!(tiga_call, m)?)?;
    m.add_function(wrap_pyfunction!(codegen, m)?)?;
    Ok(())
}
