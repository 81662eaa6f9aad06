//! Server-streaming calls: one request, then any number of replies with its correlation
//! id, ended by an explicit end-of-stream.
//!
//! On the wire (shared memory), for a streaming method of msg_type `M` called with id `C`:
//! - each item is a reply `(C, M, item)`;
//! - the end is a reply `(C, 0xFFFE, empty)` ([`MSG_TYPE_STREAM_END`]);
//! - a failure is the usual error reply `(C, 0xFFFF, error)`, which ends the stream too;
//! - the caller cancels with a oneway request (id 0) of msg_type 0xFFFE whose payload is
//!   `C` as 8 little-endian bytes. The server stops at its next item and still sends the
//!   end, so the caller's window is freed by the end, as for any call.
//!
//! Only streaming calls use 0xFFFE as a reply, and no stream may be registered on it.
//! A unary handler may still sit on 0xFFFE (a Tiga hashed name can land there). In a
//! dispatcher that has streams, a oneway request to it with an 8-byte payload reads as
//! a cancel and is dropped. Upstream never sends either form. Items of a stream the caller reads while other calls are in flight are
//! queued for it, in order; items of a cancelled stream are dropped.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rpc::codec;
pub(crate) use crate::rpc::dispatch::StreamFn;
use crate::rpc::dispatch::{panic_message, ServeOptions, Transport};
use crate::rpc::error::{code, RpcError, ServerError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::shm::wait::Wait;

/// The msg_type of the reply that ends a stream, and of a caller's cancel request.
pub const MSG_TYPE_STREAM_END: u16 = 0xFFFE;

/// A request copied out of the transport (kept while a stream runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRequest {
    /// The id its reply must carry (0: oneway).
    pub correlation_id: u64,
    /// Its msg_type.
    pub msg_type: u16,
    /// Its payload.
    pub data: Vec<u8>,
}

impl OwnedRequest {
    /// The stream this is a cancel request for, if it is one.
    pub fn cancels(&self) -> Option<u64> {
        let id: [u8; 8] = self.data.as_slice().try_into().ok()?;
        (self.correlation_id == crate::rpc::ONEWAY_CID && self.msg_type == MSG_TYPE_STREAM_END)
            .then(|| u64::from_le_bytes(id))
    }
}

/// Where a streaming handler's items go: implemented by the serving loop.
pub(crate) trait ItemSink {
    /// Sends one item; fails once the caller cancelled or the transport failed.
    fn send(&mut self, item: &[u8]) -> std::result::Result<(), ServerError>;
    /// Whether the caller cancelled (checked without sending).
    fn cancelled(&mut self) -> bool;
}

/// What a streaming handler writes its items to. Each [`StreamSink::send`] is one reply
/// with the call's id; returning from the handler ends the stream (an `Err` ends it with
/// the error reply instead).
///
/// ```
/// use tachyon::rpc::{Dispatcher, ServerError};
/// let mut d = Dispatcher::new();
/// d.register_stream_raw(5, "count", |req: &[u8], sink| {
///     for i in 0..req.first().copied().unwrap_or(0) {
///         sink.send(&[i])?; // fails once the caller cancelled: `?` ends the handler
///     }
///     Ok::<_, ServerError>(())
/// }).unwrap();
/// ```
pub struct StreamSink<'a> {
    inner: &'a mut dyn ItemSink,
    sent: u64,
}

impl std::fmt::Debug for StreamSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink").field("sent", &self.sent).finish_non_exhaustive()
    }
}

impl<'a> StreamSink<'a> {
    pub(crate) fn new(inner: &'a mut dyn ItemSink) -> Self {
        Self { inner, sent: 0 }
    }

    /// Sends one item (waiting for room in the reply ring up to the server's reply
    /// timeout).
    ///
    /// # Errors
    /// [`code::CANCELLED`] once the caller cancelled or the transport failed: return it
    /// (with `?`) to end the handler.
    pub fn send(&mut self, item: &[u8]) -> std::result::Result<(), ServerError> {
        self.inner.send(item)?;
        self.sent += 1;
        Ok(())
    }

    /// Whether the caller cancelled the stream (for a handler that works long between
    /// items).
    pub fn is_cancelled(&mut self) -> bool {
        self.inner.cancelled()
    }

    /// Items sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// A [`StreamSink`] of typed items (MessagePack, as typed replies).
pub struct TypedSink<'s, 'a, T: ?Sized> {
    raw: &'s mut StreamSink<'a>,
    buf: Vec<u8>,
    _items: PhantomData<fn(&T)>,
}

impl<T: ?Sized> std::fmt::Debug for TypedSink<'_, '_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedSink").field("sent", &self.raw.sent()).finish_non_exhaustive()
    }
}

impl<'s, 'a, T: Serialize + ?Sized> TypedSink<'s, 'a, T> {
    /// Typed items over `raw`.
    pub fn new(raw: &'s mut StreamSink<'a>) -> Self {
        Self { raw, buf: Vec::new(), _items: PhantomData }
    }

    /// Encodes and sends one item.
    ///
    /// # Errors
    /// [`code::BAD_RESPONSE`] if the item does not encode; as [`StreamSink::send`].
    pub fn send(&mut self, item: &T) -> std::result::Result<(), ServerError> {
        self.buf.clear();
        codec::encode_into(item, &mut self.buf).map_err(|e| {
            ServerError::new(code::BAD_RESPONSE, format!("cannot encode a stream item: {e}"))
        })?;
        self.raw.send(&self.buf)
    }

    /// Whether the caller cancelled the stream.
    pub fn is_cancelled(&mut self) -> bool {
        self.raw.is_cancelled()
    }

    /// Items sent so far.
    pub fn sent(&self) -> u64 {
        self.raw.sent()
    }
}

/// The caller's side of one stream on some transport.
pub trait StreamSource {
    /// The next item; `Ok(None)` once the stream ended.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the server ended the stream with an error;
    /// [`Error::Timeout`], [`Error::PeerDead`] and the transport's own errors.
    fn next_item(&mut self) -> Result<Option<Vec<u8>>>;
}

/// A stream of raw items from a server-streaming call. Iterate it, or call
/// [`ReplyStream::next_item`]. Dropping it before the end cancels the call.
pub struct ReplyStream<'a> {
    src: Box<dyn StreamSource + 'a>,
}

impl std::fmt::Debug for ReplyStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream").finish_non_exhaustive()
    }
}

impl<'a> ReplyStream<'a> {
    /// A stream reading from `src`.
    pub fn new(src: impl StreamSource + 'a) -> Self {
        Self { src: Box::new(src) }
    }

    /// The next item; `Ok(None)` once the stream ended.
    ///
    /// # Errors
    /// As [`StreamSource::next_item`].
    pub fn next_item(&mut self) -> Result<Option<Vec<u8>>> {
        self.src.next_item()
    }
}

impl Iterator for ReplyStream<'_> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// A stream of typed items (decoded from MessagePack).
pub struct TypedStream<'a, T> {
    raw: ReplyStream<'a>,
    _items: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TypedStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedStream").finish_non_exhaustive()
    }
}

impl<'a, T: DeserializeOwned> TypedStream<'a, T> {
    /// Typed items of `raw`.
    pub fn new(raw: ReplyStream<'a>) -> Self {
        Self { raw, _items: PhantomData }
    }

    /// The next item; `Ok(None)` once the stream ended.
    ///
    /// # Errors
    /// As [`ReplyStream::next_item`], plus [`Error::Codec`].
    pub fn next_item(&mut self) -> Result<Option<T>> {
        match self.raw.next_item()? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

impl<T: DeserializeOwned> Iterator for TypedStream<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// The items a caller's stream has received and not yet taken, and whether it gave up.
#[derive(Debug, Default)]
pub(crate) struct StreamQueue {
    /// Replies kept for the stream's reader: `(msg_type, data)`, in arrival order.
    pub items: VecDeque<(u16, Vec<u8>)>,
    /// Cancelled: items are dropped until the end arrives.
    pub cancelled: bool,
}

// ---- serving side ------------------------------------------------------------------

/// Serves one streaming call with handler `f` (named `name`): its items as replies,
/// then the end (or its error). Requests that arrive meanwhile go to `pending`.
pub(crate) fn serve<T: Transport>(
    f: &StreamFn,
    name: &str,
    transport: &T,
    req: &OwnedRequest,
    opts: &ServeOptions,
    pending: &mut VecDeque<OwnedRequest>,
) -> Result<()> {
    let cid = req.correlation_id;
    let mut sink = TransportSink {
        transport,
        cid,
        msg_type: req.msg_type,
        opts,
        pending,
        cancelled: false,
        failed: None,
    };
    let error = run_handler(f, name, req.msg_type, &req.data, &mut sink);
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    if cid == ONEWAY_CID {
        if let Some(e) = error {
            opts.report(&Error::Rpc(e));
        }
        return Ok(());
    }
    let wait = Wait::new().timeout_opt(opts.reply_timeout);
    match error {
        None => transport.send_reply(cid, MSG_TYPE_STREAM_END, &[], wait),
        Some(e) => transport.send_reply(cid, MSG_TYPE_ERROR, &e.encode(), wait),
    }
}

/// Runs streaming handler `f` (named `name`, serving `msg_type`) on request `data`,
/// its items going to `sink`. Returns the error reply that must end the stream, if any:
/// `None` for a clean end, and for a handler that stopped because the caller cancelled.
pub(crate) fn run_handler(
    f: &StreamFn,
    name: &str,
    msg_type: u16,
    data: &[u8],
    sink: &mut dyn ItemSink,
) -> Option<RpcError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| f(data, &mut StreamSink::new(&mut *sink))));
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(_)) if sink.cancelled() => None,
        Ok(Err(e)) => Some(RpcError::new(msg_type, e.code, e.message)),
        Err(panic) => Some(RpcError::new(
            msg_type,
            code::HANDLER_PANIC,
            format!("handler `{name}` panicked: {}", panic_message(&*panic)),
        )),
    }
}

/// Requests a stream keeps for later while it watches for its cancel; past this it stops
/// looking (the rest wait in the ring).
const MAX_PENDING: usize = 4096;

/// A streaming handler's items, sent as replies on `transport`; between items it picks
/// up requests that arrived meanwhile, noticing its own cancel and keeping the others.
struct TransportSink<'t, T: Transport> {
    transport: &'t T,
    cid: u64,
    msg_type: u16,
    opts: &'t ServeOptions,
    pending: &'t mut VecDeque<OwnedRequest>,
    cancelled: bool,
    failed: Option<Error>,
}

impl<T: Transport> TransportSink<'_, T> {
    fn poll_cancel(&mut self) {
        poll_cancel(self.transport, self.cid, self.pending, &mut self.cancelled, &mut self.failed);
    }
}

/// Takes the requests waiting on `transport`: a cancel of stream `cid` sets `cancelled`,
/// the rest are kept in `pending` (up to [`MAX_PENDING`]).
fn poll_cancel<T: Transport>(
    transport: &T,
    cid: u64,
    pending: &mut VecDeque<OwnedRequest>,
    cancelled: &mut bool,
    failed: &mut Option<Error>,
) {
    while failed.is_none() && pending.len() < MAX_PENDING {
        match transport.try_next_request() {
            Ok(Some(r)) => match r.cancels() {
                Some(id) if id == cid => *cancelled = true,
                Some(_) => {} // a late cancel of a stream that already ended
                None => pending.push_back(r),
            },
            Ok(None) => break,
            Err(e) => *failed = Some(e),
        }
    }
}

impl<T: Transport> ItemSink for TransportSink<'_, T> {
    fn send(&mut self, item: &[u8]) -> Result<(), ServerError> {
        self.poll_cancel();
        if self.cancelled || self.failed.is_some() {
            return Err(ServerError::new(code::CANCELLED, "the caller cancelled the stream"));
        }
        if self.cid == ONEWAY_CID {
            return Ok(()); // nobody reads the items of a oneway stream call
        }
        // While the reply ring is full, keep looking for the cancel: a caller that
        // cancelled and then stopped reading must not hold this thread for the whole
        // reply timeout.
        let (transport, cid, msg_type) = (self.transport, self.cid, self.msg_type);
        let reply_timeout = self.opts.reply_timeout;
        let (pending, cancelled, failed) =
            (&mut *self.pending, &mut self.cancelled, &mut self.failed);
        let mut check = || {
            poll_cancel(transport, cid, pending, cancelled, failed);
            *cancelled || failed.is_some()
        };
        let wait = Wait::new().timeout_opt(reply_timeout).interrupt(&mut check);
        match transport.send_reply(cid, msg_type, item, wait) {
            Ok(()) => Ok(()),
            Err(Error::Interrupted) if self.cancelled => {
                Err(ServerError::new(code::CANCELLED, "the caller cancelled the stream"))
            }
            Err(e) => {
                if self.failed.is_none() {
                    self.failed = Some(e);
                }
                Err(ServerError::new(code::CANCELLED, "the stream's transport failed"))
            }
        }
    }

    fn cancelled(&mut self) -> bool {
        self.poll_cancel();
        self.cancelled || self.failed.is_some()
    }
}

/// `Error::InvalidArgument` for a transport without streams.
pub(crate) fn unsupported(what: &str) -> Error {
    Error::InvalidArgument(format!("server-streaming calls are not carried over {what} yet"))
}
