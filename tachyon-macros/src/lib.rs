//! Procedural macros for Tachyon RPC.
//!
//! - `#[tachyon_rpc(msg_type = N)]` on a plain function makes it an RPC endpoint. The
//!   function stays as written, callable directly. Beside it appears a module of the
//!   same name holding `MSG_TYPE`, `NAME`, an `Endpoint` type implementing
//!   `tachyon::rpc::Endpoint`, and typed client calls `call` and `call_timeout`.
//! - `dispatcher![a, b, c]` builds a `tachyon::rpc::Dispatcher` from endpoints. It fails
//!   to compile when two of them share a msg_type.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tachyon_macros::{dispatcher, tachyon_rpc};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Add { a: i64, b: i64 }
//!
//! #[tachyon_rpc(msg_type = 1)]
//! pub fn add(req: Add) -> i64 { req.a + req.b }
//!
//! #[tachyon_rpc(msg_type = 2)]
//! pub fn echo(req: &[u8]) -> Vec<u8> { req.to_vec() }
//!
//! fn main() {
//!     let d = dispatcher![add, echo];                   // server side
//!     assert_eq!((add::MSG_TYPE, d.handler_name(2)), (1, Some("echo")));
//! }
//!
//! fn client(client: &tachyon::rpc::RpcBus) -> tachyon::Result<i64> {
//!     add::call(client, &Add { a: 1, b: 2 })            // client side
//! }
//! ```
//!
//! Handler forms: `fn(Req) -> Resp`, `fn(Req) -> Result<Resp, E>` with
//! `E: Into<tachyon::rpc::ServerError>` (typed, MessagePack on the wire), and
//! `fn(&[u8]) -> Vec<u8>` / `-> Result<Vec<u8>, E>` (raw bytes, request read in place).
//! Generated code names everything by absolute path, so it needs no imports; the crate
//! using it depends on `tachyon` and `serde`. Put handlers at module level: the generated
//! module sees its parent module's items (`use super::*`), not those of a function body.

mod ast;
mod attr;
mod dispatcher;
mod expand;
mod fallback;
mod schema;
mod valid;

use proc_macro::TokenStream;

/// Turns a function into an RPC endpoint with a typed client. See the crate docs.
#[proc_macro_attribute]
pub fn tachyon_rpc(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let Ok(func) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let err = syn::Error::new_spanned(&item, "#[tachyon_rpc] applies to free functions");
        let mut out = err.to_compile_error();
        out.extend(item);
        return out.into();
    };
    let handler = ast::Handler::from_fn(&func);
    let expanded = match attr::parse(args.into()) {
        Ok(attr) => match valid::check(&attr, &handler) {
            Ok(()) => expand::endpoint(&func, &attr, &handler),
            Err(e) => fallback::endpoint(&func, Some(&attr), &e),
        },
        Err(e) => fallback::endpoint(&func, None, &e),
    };
    expanded.into()
}

/// Builds a `tachyon::rpc::Dispatcher` from `#[tachyon_rpc]` functions (by path).
/// Two endpoints with one msg_type are a compile-time error.
#[proc_macro]
pub fn dispatcher(input: TokenStream) -> TokenStream {
    match dispatcher::expand(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Generates the types, msg_types, server trait, dispatcher and typed client of a
/// schema: `include_schema!("quote")` reads `schemas/quote.tachyon` (in the crate's
/// directory or the nearest ancestor with one) and expands to `pub mod quote { ... }`.
/// A bad schema is a compile error naming its file, line and column.
#[proc_macro]
pub fn include_schema(input: TokenStream) -> TokenStream {
    match schema::expand(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
