//! RPC over TCP: the same routing model as shared memory (msg_type dispatch,
//! correlation ids, the 0xFFFF error reply) between machines.
//!
//! - [`TcpServer`] serves a [`crate::rpc::Dispatcher`] on reactor threads driven by
//!   io_uring (epoll where io_uring is missing or forbidden; [`capabilities`] says which);
//! - [`TcpClient`] calls it: blocking, pipelined, with deadlines, cancels and dead-peer
//!   detection;
//! - the frames are documented byte by byte in `docs/TCP.md` ([`frame`]).
//!
//! - [`RawTcpServer`] serves plain byte streams on the same reactors, with backpressure
//!   instead of loss when its consumer lags, or answers by itself ([`Responder`]: a TCP
//!   echo, a fixed HTTP response) for benchmarks;
//! - TLS 1.3 and mutual TLS with rustls ([`ServerTls`], [`ClientTls`]), on the same
//!   reactors; handlers see the verified caller through [`peer_identity`].
//!
//! Secure by default: a server without TLS binds loopback unless told to serve
//! plaintext to other machines ([`TcpServerOptions::insecure`]).

// Three layers: the generic reactor (sockets in, bytes out), TLS as a filter on its
// connections, and what is served over it: RPC frames, or raw byte streams.
mod raw;
pub(crate) mod reactor;
mod responder;
pub(crate) mod rpc;
pub(crate) mod tls;

pub use raw::{RawEvent, RawServerHandle, RawServerOptions, RawStats, RawTcpServer};
pub use reactor::probe::{capabilities, Backend, Capabilities};
pub use responder::{FixedHttp, Responder};
pub use rpc::async_handlers::{AsyncEndpoint, AsyncHandlers};
pub use rpc::client::{CallFuture, TcpClient, TcpClientOptions};
pub use rpc::deferred::{DeferredCall, DeferredHandler};
pub use rpc::frame;
pub use rpc::server::{BatchScope, TcpServer, TcpServerHandle, TcpServerOptions, TcpStatsSnapshot};
pub use tls::identity::{NameAttribute, PeerIdentity};
pub use tls::{peer_identity, ClientTls, ServerTls};
