//! The dispatcher: msg_type to named handler, over any [`Transport`].
//!
//! Handlers get the request bytes and fill a response buffer. An unknown msg_type, a
//! handler error, a request that cannot be decoded, or a handler panic all become the
//! structured 0xFFFF error reply, so the caller is never left waiting. The server keeps
//! serving.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rpc::deferred::{DeferredFn, DeferredRequest};
use crate::rpc::error::{code, RpcError, ServerError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::rpc::stream::{self, OwnedRequest, StreamSink, TypedSink, MSG_TYPE_STREAM_END};
use crate::shm::wait::Wait;

mod transport;
pub use transport::*;

/// A handler the dispatcher can route to. `#[tachyon_rpc]` generates one per function.
pub trait Endpoint: Send + Sync + 'static {
    /// The msg_type it answers (never 0xFFFF).
    const MSG_TYPE: u16;
    /// Its name, for errors and introspection.
    const NAME: &'static str;
    /// Handles one request, writing the response into `response` (empty on entry).
    ///
    /// # Errors
    /// A [`ServerError`] becomes the caller's [`RpcError`].
    fn handle(&self, request: &[u8], response: &mut Vec<u8>) -> Result<(), ServerError>;
}

/// Why a handler could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 0xFFFF is the error sentinel.
    #[error("msg_type 0xFFFF is reserved for the error sentinel")]
    Reserved,
    /// 0xFFFE ends streams and carries their cancels: no stream may use it.
    #[error("msg_type 0xFFFE is reserved for stream ends and cancels")]
    ReservedForStreams,
    /// Another handler already has this msg_type.
    #[error("msg_type {msg_type} is already registered by `{existing}`")]
    Duplicate {
        /// The contested msg_type.
        msg_type: u16,
        /// The handler that has it.
        existing: String,
    },
}

type HandlerFn = dyn Fn(&[u8], &mut Vec<u8>) -> Result<(), ServerError> + Send + Sync;
type FallbackFn = dyn Fn(u16, &[u8], &mut Vec<u8>) -> Result<(), ServerError> + Send + Sync;
pub(crate) type StreamFn =
    dyn Fn(&[u8], &mut StreamSink<'_>) -> Result<(), ServerError> + Send + Sync;

/// Fibonacci hashing of the u16 msg_type: the lookup runs once per request, so it
/// skips SipHash (no untrusted key can degrade a table this small).
#[derive(Default)]
struct MsgTypeHasher(u64);

impl std::hash::Hasher for MsgTypeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Handlers = HashMap<u16, Handler, std::hash::BuildHasherDefault<MsgTypeHasher>>;

struct Handler<F: ?Sized = HandlerFn> {
    name: Cow<'static, str>,
    f: Box<F>,
}

/// Maps msg_type to handler. Share it (`Arc<Dispatcher>`) between server threads.
///
/// ```
/// use tachyon::rpc::{Dispatcher, ServerError};
/// let mut d = Dispatcher::new();
/// d.register_raw(1, "echo", |req: &[u8]| req.to_vec()).unwrap();
/// d.register_typed(2, "add", |(a, b): (i64, i64)| Ok::<_, ServerError>(a + b)).unwrap();
/// assert_eq!(d.handler_name(2), Some("add"));
/// ```
#[derive(Default)]
pub struct Dispatcher {
    handlers: Handlers,
    fallback: Option<Handler<FallbackFn>>,
    /// Server-streaming handlers (see [`crate::rpc::StreamSink`]).
    streams: HashMap<u16, Handler<StreamFn>>,
    /// Where requests without a handler go to be answered later, and how long they may
    /// take ([`Dispatcher::set_deferred`]).
    deferred: Option<(std::sync::Arc<DeferredFn>, Option<Duration>)>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m: Vec<_> = self.handlers.iter().map(|(k, h)| (*k, h.name.as_ref())).collect();
        m.extend(self.streams.iter().map(|(k, h)| (*k, h.name.as_ref())));
        let fallback = self.fallback.as_ref().map(|h| h.name.as_ref());
        m.sort_unstable();
        f.debug_struct("Dispatcher")
            .field("handlers", &m)
            .field("fallback", &fallback)
            .field("deferred", &self.deferred.as_ref().map(|(_, timeout)| timeout))
            .finish()
    }
}

/// Decodes a typed request, runs `f`, encodes the response. Used by typed handlers and
/// the code `#[tachyon_rpc]` generates.
///
/// # Errors
/// [`code::BAD_REQUEST`] if the request does not decode as `Req`, the handler's own
/// error, or [`code::BAD_RESPONSE`] if the response does not encode.
pub fn handle_typed<Req, Resp, Err>(
    request: &[u8],
    response: &mut Vec<u8>,
    f: impl FnOnce(Req) -> Result<Resp, Err>,
) -> Result<(), ServerError>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Err: Into<ServerError>,
{
    let req: Req = decode_request(request)?;
    let resp = f(req).map_err(Into::into)?;
    rmp_serde::encode::write_named(response, &resp).map_err(|e| {
        ServerError::new(code::BAD_RESPONSE, format!("cannot encode the response: {e}"))
    })
}

/// Decodes a typed request, failing with [`code::BAD_REQUEST`].
///
/// # Errors
/// [`code::BAD_REQUEST`] if `request` is not a MessagePack `Req`.
pub fn decode_request<Req: DeserializeOwned>(request: &[u8]) -> Result<Req, ServerError> {
    rmp_serde::from_slice(request)
        .map_err(|e| ServerError::new(code::BAD_REQUEST, format!("cannot decode the request: {e}")))
}

/// Encodes a typed response, failing with [`code::BAD_RESPONSE`].
///
/// # Errors
/// [`code::BAD_RESPONSE`] if serde refuses the value.
pub fn encode_response<Resp: Serialize + ?Sized>(resp: &Resp) -> Result<Vec<u8>, ServerError> {
    let mut out = Vec::new();
    rmp_serde::encode::write_named(&mut out, resp).map_err(|e| {
        ServerError::new(code::BAD_RESPONSE, format!("cannot encode the response: {e}"))
    })?;
    Ok(out)
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(
        &mut self,
        msg_type: u16,
        name: Cow<'static, str>,
        f: Box<HandlerFn>,
    ) -> Result<&mut Self, RegisterError> {
        if msg_type == MSG_TYPE_ERROR {
            return Err(RegisterError::Reserved);
        }
        self.check_free(msg_type)?;
        self.handlers.insert(msg_type, Handler { name, f });
        Ok(self)
    }

    fn check_free(&self, msg_type: u16) -> Result<(), RegisterError> {
        if msg_type == MSG_TYPE_ERROR {
            return Err(RegisterError::Reserved);
        }
        let taken = self.handlers.get(&msg_type).map(|h| &h.name);
        if let Some(name) = taken.or_else(|| self.streams.get(&msg_type).map(|h| &h.name)) {
            return Err(RegisterError::Duplicate { msg_type, existing: name.to_string() });
        }
        Ok(())
    }

    /// Registers a server-streaming handler: it gets the raw request and sends any
    /// number of items through the [`StreamSink`]; returning ends the stream (an `Err`
    /// ends it with that error). Served over shared memory; other transports answer
    /// [`code::UNSUPPORTED`].
    ///
    /// # Errors
    /// [`RegisterError`] for 0xFFFF, 0xFFFE or a msg_type already taken.
    pub fn register_stream_raw<F, E>(
        &mut self,
        msg_type: u16,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<&mut Self, RegisterError>
    where
        F: Fn(&[u8], &mut StreamSink<'_>) -> Result<(), E> + Send + Sync + 'static,
        E: Into<ServerError>,
    {
        if msg_type == MSG_TYPE_STREAM_END {
            return Err(RegisterError::ReservedForStreams);
        }
        self.check_free(msg_type)?;
        self.streams.insert(
            msg_type,
            Handler {
                name: name.into(),
                f: Box::new(move |req, sink| f(req, sink).map_err(Into::into)),
            },
        );
        Ok(self)
    }

    /// Registers a typed server-streaming handler: the request is decoded from
    /// MessagePack (else [`code::BAD_REQUEST`]) and each item encoded.
    ///
    /// # Errors
    /// As [`Dispatcher::register_stream_raw`].
    pub fn register_stream_typed<Req, Item, F>(
        &mut self,
        msg_type: u16,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<&mut Self, RegisterError>
    where
        Req: DeserializeOwned,
        Item: Serialize,
        F: Fn(Req, &mut TypedSink<'_, '_, Item>) -> Result<(), ServerError> + Send + Sync + 'static,
    {
        self.register_stream_raw(msg_type, name, move |req: &[u8], sink: &mut StreamSink<'_>| {
            let req: Req = decode_request(req)?;
            f(req, &mut TypedSink::new(sink))
        })
    }

    /// Registers a generated (or hand-written) [`Endpoint`].
    ///
    /// # Errors
    /// [`RegisterError`] for 0xFFFF or a msg_type already taken.
    pub fn register<E: Endpoint>(&mut self, endpoint: E) -> Result<&mut Self, RegisterError> {
        self.insert(
            E::MSG_TYPE,
            Cow::Borrowed(E::NAME),
            Box::new(move |req, out| endpoint.handle(req, out)),
        )
    }

    /// Builder form of [`Dispatcher::register`], used by `tachyon_macros::dispatcher!`
    /// after it has checked msg_types for duplicates at compile time.
    ///
    /// # Panics
    /// On a duplicate msg_type, which `dispatcher!` rules out at compile time.
    #[must_use]
    pub fn with<E: Endpoint>(mut self, endpoint: E) -> Self {
        if let Err(e) = self.register(endpoint) {
            panic!("{e}");
        }
        self
    }

    /// Registers a raw handler: request bytes (read in place) in, response bytes out.
    ///
    /// # Errors
    /// [`RegisterError`] for 0xFFFF or a msg_type already taken.
    pub fn register_raw<F>(
        &mut self,
        msg_type: u16,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<&mut Self, RegisterError>
    where
        F: Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    {
        self.register_raw_fallible(msg_type, name, move |req| {
            Ok::<_, std::convert::Infallible>(f(req))
        })
    }

    /// Registers a raw handler that can fail; its error becomes the caller's
    /// [`RpcError`].
    ///
    /// # Errors
    /// [`RegisterError`] for 0xFFFF or a msg_type already taken.
    pub fn register_raw_fallible<F, E>(
        &mut self,
        msg_type: u16,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<&mut Self, RegisterError>
    where
        F: Fn(&[u8]) -> Result<Vec<u8>, E> + Send + Sync + 'static,
        E: Into<ServerError>,
    {
        self.insert(
            msg_type,
            name.into(),
            Box::new(move |req, out| {
                *out = f(req).map_err(Into::into)?;
                Ok(())
            }),
        )
    }

    /// Registers a typed handler: the request and response travel as MessagePack.
    ///
    /// # Errors
    /// [`RegisterError`] for 0xFFFF or a msg_type already taken.
    pub fn register_typed<Req, Resp, E, F>(
        &mut self,
        msg_type: u16,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<&mut Self, RegisterError>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        E: Into<ServerError>,
        F: Fn(Req) -> Result<Resp, E> + Send + Sync + 'static,
    {
        self.insert(msg_type, name.into(), Box::new(move |req, out| handle_typed(req, out, &f)))
    }

    /// Registers the handler for every msg_type without a handler of its own. It gets
    /// the msg_type with the request; language bindings route on it (a Node or Python
    /// callback that sees every request). A second call replaces the first.
    ///
    /// ```
    /// use tachyon::rpc::{Dispatcher, ServerError, MSG_TYPE_ERROR};
    /// let mut d = Dispatcher::new();
    /// d.set_fallback("any", |msg_type, req: &[u8]| {
    ///     Ok::<_, ServerError>([&msg_type.to_be_bytes()[..], req].concat())
    /// });
    /// let mut out = Vec::new();
    /// assert_eq!(d.dispatch(7, b"x", &mut out), 7);
    /// assert_eq!(out, b"\0\x07x");
    /// // 0xFFFF is the error sentinel, never a request: no handler gets it.
    /// assert_eq!(d.dispatch(MSG_TYPE_ERROR, b"", &mut out), MSG_TYPE_ERROR);
    /// ```
    pub fn set_fallback<F, E>(&mut self, name: impl Into<Cow<'static, str>>, f: F) -> &mut Self
    where
        F: Fn(u16, &[u8]) -> Result<Vec<u8>, E> + Send + Sync + 'static,
        E: Into<ServerError>,
    {
        self.fallback = Some(Handler {
            name: name.into(),
            f: Box::new(move |msg_type, req, out| {
                *out = f(msg_type, req).map_err(Into::into)?;
                Ok(())
            }),
        });
        self
    }

    /// Hands every request for a msg_type without a handler of its own to `f`, to be
    /// answered later from any thread ([`DeferredRequest::reply`]), instead of to the
    /// fallback. Serving a shared-memory client ([`Dispatcher::serve`], the
    /// [`crate::rpc::RpcServer`]) then never waits for such a handler: many calls of one
    /// client run at once and their replies go out as they finish. A call not answered
    /// within `timeout` is answered `HANDLER_ERROR` (its late answer dropped).
    ///
    /// This is how `net::AsyncHandlers::into_dispatcher` (feature `tcp`) serves `async fn`
    /// handlers. Over TCP, use `net::TcpServerOptions::deferred` instead.
    pub fn set_deferred(
        &mut self,
        timeout: Option<Duration>,
        f: impl Fn(DeferredRequest) + Send + Sync + 'static,
    ) -> &mut Self {
        self.deferred = Some((std::sync::Arc::new(f), timeout));
        self
    }

    /// Whether a blocking (non-streaming) handler or the fallback answers `msg_type`.
    pub(crate) fn has_blocking_handler(&self, msg_type: u16) -> bool {
        self.handlers.contains_key(&msg_type)
            || (self.deferred.is_none() && self.fallback.is_some())
            || (self.deferred.is_some() && msg_type == MSG_TYPE_ERROR)
    }

    /// The streaming handler of `msg_type`, with its name.
    pub(crate) fn stream_handler(&self, msg_type: u16) -> Option<(&StreamFn, &str)> {
        self.streams.get(&msg_type).map(|h| (&*h.f, h.name.as_ref()))
    }

    /// The name of the handler for `msg_type` (the fallback's if it has none of its own).
    pub fn handler_name(&self, msg_type: u16) -> Option<&str> {
        self.handlers
            .get(&msg_type)
            .map(|h| h.name.as_ref())
            .or_else(|| self.streams.get(&msg_type).map(|h| h.name.as_ref()))
            .or_else(|| self.fallback.as_ref().map(|h| h.name.as_ref()))
    }

    /// Whether any server-streaming handler is registered.
    pub fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Whether `msg_type` is served by a streaming handler.
    pub fn is_stream(&self, msg_type: u16) -> bool {
        !self.streams.is_empty() && self.streams.contains_key(&msg_type)
    }

    /// The registered msg_types, sorted.
    pub fn msg_types(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.handlers.keys().chain(self.streams.keys()).copied().collect();
        v.sort_unstable();
        v
    }

    /// Runs the handler for `msg_type` on `request`, leaving the reply payload in
    /// `response`, and returns the reply's msg_type: `msg_type` itself, or 0xFFFF with an
    /// encoded [`RpcError`] for an unknown msg_type, a failing or panicking handler.
    pub fn dispatch(&self, msg_type: u16, request: &[u8], response: &mut Vec<u8>) -> u16 {
        response.clear();
        let (name, outcome) = if let Some(h) = self.handlers.get(&msg_type) {
            (&h.name, catch_unwind(AssertUnwindSafe(|| (h.f)(request, response))))
        } else if let Some(h) = self.streams.get(&msg_type) {
            let e = RpcError::new(
                msg_type,
                code::UNSUPPORTED,
                format!("`{}` streams its replies, which this transport does not carry", h.name),
            );
            e.encode_into(response);
            return MSG_TYPE_ERROR;
        } else if let Some(h) = self.fallback.as_ref().filter(|_| msg_type != MSG_TYPE_ERROR) {
            (&h.name, catch_unwind(AssertUnwindSafe(|| (h.f)(msg_type, request, response))))
        } else {
            let e = RpcError::new(
                msg_type,
                code::UNKNOWN_MSG_TYPE,
                format!("no handler for msg_type {msg_type}"),
            );
            e.encode_into(response);
            return MSG_TYPE_ERROR;
        };
        let err = match outcome {
            Ok(Ok(())) => return msg_type,
            Ok(Err(e)) => RpcError::new(msg_type, e.code, e.message),
            Err(panic) => RpcError::new(
                msg_type,
                code::HANDLER_PANIC,
                format!("handler `{name}` panicked: {}", panic_message(&*panic)),
            ),
        };
        response.clear();
        err.encode_into(response);
        MSG_TYPE_ERROR
    }

    /// Serves one request from `transport`: waits as `wait` says, dispatches, replies.
    ///
    /// # Errors
    /// The transport's errors (`Timeout`, `PeerDead`, `Interrupted`, ...).
    pub fn serve_one<T: Transport>(
        &self,
        transport: &T,
        wait: Wait<'_>,
        opts: &ServeOptions,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if self.streams.is_empty() {
            // The hot path: the request is read in place.
            let (cid, msg_type, reply_type) = {
                let req = transport.next_request(wait)?;
                let reply_type = self.dispatch(req.msg_type(), req.data(), scratch);
                (req.correlation_id(), req.msg_type(), reply_type)
            };
            return Self::finish(transport, cid, msg_type, reply_type, opts, scratch);
        }
        // With streaming handlers, requests that arrive while a stream runs are kept and
        // served after it, in order.
        let first = {
            let req = transport.next_request(wait)?;
            OwnedRequest {
                correlation_id: req.correlation_id(),
                msg_type: req.msg_type(),
                data: req.data().to_vec(),
            }
        };
        let mut pending = VecDeque::from([first]);
        while let Some(req) = pending.pop_front() {
            if req.cancels().is_some() {
                continue; // a cancel for a stream that has already ended
            }
            if let Some(h) = self.streams.get(&req.msg_type) {
                stream::serve(&*h.f, &h.name, transport, &req, opts, &mut pending)?;
            } else {
                let reply_type = self.dispatch(req.msg_type, &req.data, scratch);
                Self::finish(
                    transport,
                    req.correlation_id,
                    req.msg_type,
                    reply_type,
                    opts,
                    scratch,
                )?;
            }
        }
        Ok(())
    }

    /// Sends the reply `dispatch` left in `scratch`, or none for a oneway request.
    fn finish<T: Transport>(
        transport: &T,
        cid: u64,
        msg_type: u16,
        reply_type: u16,
        opts: &ServeOptions,
        scratch: &[u8],
    ) -> Result<()> {
        if cid == ONEWAY_CID {
            // A oneway request takes no reply; its failure is the server's to report.
            if reply_type == MSG_TYPE_ERROR {
                let e = RpcError::decode(scratch);
                opts.report(&Error::Rpc(RpcError { msg_type, ..e }));
            }
            return Ok(());
        }
        transport.send_reply(cid, reply_type, scratch, Wait::new().timeout_opt(opts.reply_timeout))
    }

    /// Serves `transport` until its peer is gone (then returns `Ok`), `stop` is set
    /// (checked at least every 200 ms), or an error other than a protocol violation
    /// happens. Protocol violations are reported to `opts.on_error` and skipped.
    ///
    /// # Errors
    /// The first transport error that ends serving (not `PeerDead`).
    pub fn serve<T: Transport>(
        &self,
        transport: &T,
        stop: &AtomicBool,
        opts: &ServeOptions,
    ) -> Result<()> {
        self.serve_until(transport, &mut || stop.load(Ordering::Relaxed), opts)
    }

    /// Like [`Dispatcher::serve`], ending when `done` (checked at least every 200 ms
    /// while idle) returns `true`.
    ///
    /// # Errors
    /// As [`Dispatcher::serve`].
    pub fn serve_until<T: Transport>(
        &self,
        transport: &T,
        done: &mut dyn FnMut() -> bool,
        opts: &ServeOptions,
    ) -> Result<()> {
        if let Some((f, timeout)) = &self.deferred {
            return crate::rpc::deferred::serve(self, &**f, *timeout, transport, done, opts);
        }
        let mut scratch = Vec::new();
        let mut ended = false;
        loop {
            let mut check = || {
                ended = done();
                ended
            };
            match self.serve_one(transport, Wait::new().interrupt(&mut check), opts, &mut scratch) {
                Ok(()) => {}
                Err(Error::PeerDead(_) | Error::PeerClosed) => return Ok(()),
                Err(Error::Interrupted) if ended => return Ok(()),
                Err(e @ Error::Protocol(_)) => opts.report(&e),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests;
