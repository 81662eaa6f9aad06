//! RPC over a pair of shared-memory rings: [`RpcBus`], the multi-client [`RpcServer`],
//! the [`Dispatcher`], typed MessagePack payloads, and structured errors.
//!
//! Wire-compatible with upstream Tachyon's RPC: requests carry `type_id = msg_type` and
//! a correlation id from 1; replies carry the same id. Failures come back as msg_type
//! 0xFFFF with a 2-byte big-endian failed msg_type (what upstream's Python decoder reads)
//! followed by a MessagePack map `{code, message}`. The caller turns them into
//! [`RpcError`], never into a normal response.

mod async_bus;
mod bus;
mod caller;
pub mod codec;
mod deferred;
mod describe;
mod dispatch;
mod error;
mod in_flight;
mod server;
pub(crate) mod stream;
pub mod tiga;

pub use async_bus::{AsyncCall, AsyncRpcBus};
pub use bus::{ParkedReply, ParkedRpcTx, Role, RpcBus, RpcReply, RpcRequest, RpcTxGuard};
pub use caller::{invoke_typed_async, AsyncCaller, BoxFuture, Caller};
pub use deferred::DeferredRequest;
pub use describe::Description;
pub use dispatch::{
    decode_request, encode_response, handle_typed, Dispatcher, Endpoint, RegisterError, Request,
    ServeOptions, Transport,
};
pub use error::{code, code_name, RpcError, ServerError, MSG_TYPE_ERROR, ONEWAY_CID};
pub use server::{RpcServer, ServerHandle, ServerOptions, StopHandle};
pub use stream::{
    OwnedRequest, ReplyStream, StreamSink, StreamSource, TypedSink, TypedStream,
    MSG_TYPE_STREAM_END,
};
