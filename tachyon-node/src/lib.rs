//! The native addon of the `tachyon-node` npm package (napi-rs).
//!
//! It is thin over the Rust core: `NativeBus`, `NativeRpcBus` and `NativeServer` wrap
//! [`tachyon::Bus`], [`tachyon::rpc::RpcBus`] and [`tachyon::rpc::RpcServer`]. The JS
//! layer in `tachyon-node/lib` adds what JS users expect and the addon should not own:
//! `Symbol.dispose`, typed errors and their guards, async iterators, the Tiga API.
#![deny(unsafe_op_in_unsafe_fn)]
// napi-rs hands arguments over by value; ids cross to JS as numbers (exact below 2^53,
// and checked on the way back in). Every fallible function throws a JS error with an
// ERR_TACHYON_* code, documented once in errors.rs and the package's index.d.ts.
#![allow(
    clippy::missing_errors_doc,
    clippy::needless_pass_by_value,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)]

/// Locks `m`, ignoring poisoning: the addon's mutexes guard plain data each critical
/// section leaves consistent, and a panic in a JS callback's neighbourhood must not take
/// the bus with it.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod bus;
mod cell;
mod channel;
mod endpoint;
mod errors;
pub mod events;
mod pump;
mod raw_tcp;
pub use raw_tcp::{tcp_capabilities, ProbeEntry, TcpCapabilities};
pub use server::{server_defaults, ServerDefaults};
mod rpc;
mod server;
mod shared_buffer;
mod slots;
mod stats;
mod tcp;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::errors::{arg, JsError};

/// Runs the `tachyon` command line `argv` (program name first) and returns its exit
/// code. It blocks the thread it runs on: `npx tachyon` is its only caller.
#[napi]
pub fn cli_main(argv: Vec<String>) -> u32 {
    u32::from(tachyon_cli::run(argv))
}

/// One error code of the 0xFFFF reply.
#[napi(object)]
pub struct RpcCodeEntry {
    /// Its name (`HANDLER_ERROR`).
    pub name: String,
    /// Its value.
    pub code: u32,
}

/// The core's error-code table (`tachyon::rpc::code::ALL`): the JS `RpcCode` is built
/// from it.
#[napi]
pub fn rpc_codes() -> Vec<RpcCodeEntry> {
    tachyon::rpc::code::ALL
        .iter()
        .map(|&(name, code)| RpcCodeEntry { name: name.to_owned(), code })
        .collect()
}

/// `route << 16 | msg_type`.
#[napi]
pub fn make_type_id(route: u32, msg_type: u32) -> Result<u32, JsError> {
    let r = u16::try_from(route)
        .map_err(|_| arg(format!("route must be in 0..=65535, got {route}")))?;
    Ok(tachyon::make_type_id(r, errors::msg_type(msg_type)?))
}

/// The route of a type id (its high 16 bits).
#[napi]
pub fn route_id(type_id: u32) -> u32 {
    u32::from(tachyon::route_id(type_id))
}

/// The msg_type of a type id (its low 16 bits).
#[napi]
pub fn msg_type(type_id: u32) -> u32 {
    u32::from(tachyon::msg_type(type_id))
}

/// The msg_type a Tiga method name routes on (see `tachyon::rpc::tiga`).
#[napi]
pub fn method_id(name: String) -> Result<u32, JsError> {
    Ok(u32::from(tachyon::rpc::tiga::method_id(&name).map_err(errors::core)?))
}

/// One generated file.
#[napi(object)]
pub struct GeneratedFile {
    /// Its name (`quote.js`, `quote.d.ts`).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// Checks every schema in `schema_dir` and generates the `lang` ("typescript" or
/// "python") modules. A bad schema throws ERR_TACHYON_SCHEMA naming file, line and column.
#[napi]
pub fn codegen(schema_dir: String, lang: String) -> Result<Vec<GeneratedFile>, JsError> {
    let lang: tachyon_schema::gen::Lang =
        lang.parse().map_err(|m| napi::Error::new(errors::Code(errors::INVALID_ARG), m))?;
    let pkgs = tachyon_schema::load_dir(std::path::Path::new(&schema_dir))
        .map_err(|e| napi::Error::new(errors::Code("ERR_TACHYON_SCHEMA"), e.to_string()))?;
    Ok(tachyon_schema::gen::files(lang, &pkgs)
        .map_err(|e| napi::Error::new(errors::Code("ERR_TACHYON_SCHEMA"), e))?
        .into_iter()
        .map(|(name, text)| GeneratedFile { name, text })
        .collect())
}

/// A Tiga call ready to send.
#[napi(object)]
pub struct TigaCall {
    /// Route it on this msg_type.
    pub msg_type: u32,
    /// Send this payload.
    pub payload: Buffer,
}

/// Builds the msg_type and payload that call `method` with `data` from `clientId`.
#[napi]
pub fn tiga_encode(method: String, client_id: String, data: &[u8]) -> Result<TigaCall, JsError> {
    let (t, p) =
        tachyon::rpc::tiga::encode_call(&method, &client_id, data).map_err(errors::core)?;
    Ok(TigaCall { msg_type: u32::from(t), payload: p.into() })
}

/// A Tiga client's channel and id.
#[napi(object)]
pub struct TigaNames {
    /// The server's channel.
    pub channel: String,
    /// The client's id.
    pub client_id: String,
}

/// Reads `<channel>.req.<clientId>` / `<channel>.resp.<clientId>`.
#[napi]
pub fn tiga_parse_names(request_name: String, response_name: String) -> Result<TigaNames, JsError> {
    let n = tachyon::rpc::tiga::parse_names(&request_name, &response_name).map_err(errors::core)?;
    Ok(TigaNames { channel: n.channel, client_id: n.client_id })
}

/// `<ipcDirectory>/<channel>.sock`.
#[napi]
pub fn tiga_socket_path(ipc_directory: String, channel: String) -> String {
    tachyon::rpc::tiga::socket_path(&ipc_directory, &channel)
}
