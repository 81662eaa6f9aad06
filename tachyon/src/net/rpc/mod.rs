//! RPC over the reactors: the frames of `docs/TCP.md` ([`frame`]), one server
//! connection as a sans-IO state machine ([`conn`]), the [`server`] (inline handlers, the
//! worker [`pool`], [`deferred`] answers, [`async_handlers`]) and the [`client`]. Built on
//! [`crate::net::reactor`], [`crate::net::tls`] and the routing of [`crate::rpc`].

pub(crate) mod async_handlers;
pub(crate) mod client;
pub(crate) mod conn;
pub(crate) mod deferred;
pub mod frame;
pub(crate) mod pool;
pub(crate) mod server;
