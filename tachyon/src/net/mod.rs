//! RPC over TCP: the same routing model as shared memory (msg_type dispatch,
//! correlation ids, the 0xFFFF error reply) between machines.
//!
//! - [`TcpServer`] serves a [`crate::rpc::Dispatcher`] on reactor threads driven by
//!   io_uring (epoll where io_uring is missing or forbidden; [`capabilities`] says which);
//! - [`TcpClient`] calls it: blocking, pipelined, with deadlines, cancels and dead-peer
//!   detection;
//! - the frames are documented byte by byte in `docs/TCP.md` ([`frame`]).
//!
//! Secure by default: a server binds loopback unless told otherwise
//! ([`TcpServerOptions::allow_remote`]).

pub(crate) mod bufring;
pub(crate) mod client;
pub(crate) mod conn;
pub(crate) mod epoll;
pub mod frame;
mod pool;
mod probe;
mod server;
mod uring;
mod waker;

pub use client::{TcpClient, TcpClientOptions};
pub use probe::{capabilities, Backend, Capabilities};
pub use server::{TcpServer, TcpServerHandle, TcpServerOptions, TcpStats, TcpStatsSnapshot};
