//! What a dispatcher serves over: the [`Transport`] trait (a source of requests that
//! takes replies), its [`Request`]s, how serving is tuned ([`ServeOptions`]), and the
//! shared-memory [`RpcBus`] as one.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rpc::bus::{RpcBus, RpcRequest};
use crate::rpc::stream::OwnedRequest;
use crate::shm::wait::Wait;

/// How a dispatcher serves: how long a reply may wait for room, and where errors that
/// do not end serving go.
#[derive(Clone)]
pub struct ServeOptions {
    /// How long a reply waits for room in the reply ring (`None`: as long as the peer
    /// lives). Default 10 s.
    pub reply_timeout: Option<Duration>,
    /// Receives errors that are skipped (protocol violations) or that end a client.
    /// Default: a `tracing` warning under the `tachyon` target.
    pub on_error: std::sync::Arc<dyn Fn(&Error) + Send + Sync>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            reply_timeout: Some(Duration::from_secs(10)),
            on_error: std::sync::Arc::new(|e| tracing::warn!(target: "tachyon", "rpc server: {e}")),
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("reply_timeout", &self.reply_timeout)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    pub(crate) fn report(&self, e: &Error) {
        (self.on_error)(e);
    }
}

/// A request as a [`Transport`] hands it out.
pub trait Request {
    /// The id the reply must carry.
    fn correlation_id(&self) -> u64;
    /// The request's msg_type.
    fn msg_type(&self) -> u16;
    /// The request payload.
    fn data(&self) -> &[u8];
}

/// Where a dispatcher gets requests and sends replies: the shared-memory [`RpcBus`]
/// today, and any other carrier of the same envelope.
pub trait Transport {
    /// A request, possibly borrowed from the transport (zero-copy).
    type Request<'a>: Request
    where
        Self: 'a;
    /// Waits for the next request.
    ///
    /// # Errors
    /// `PeerDead` when the peer is gone; `Timeout`/`Interrupted` from `wait`.
    fn next_request(&self, wait: Wait<'_>) -> Result<Self::Request<'_>>;
    /// Sends a reply.
    ///
    /// # Errors
    /// Transport errors.
    fn send_reply(&self, cid: u64, msg_type: u16, payload: &[u8], wait: Wait<'_>) -> Result<()>;
    /// A request already waiting, copied out, without waiting (a stream looks for its
    /// cancel between items). `Ok(None)` by default: no cancel is ever seen.
    ///
    /// # Errors
    /// `PeerDead` when the peer is gone.
    fn try_next_request(&self) -> Result<Option<OwnedRequest>> {
        Ok(None)
    }
    /// A handle that ends a wait in [`Transport::next_request`] from another thread,
    /// so its interrupt check runs ([`crate::Nudge`]). `None` by default: a loop that
    /// needs one looks for work from other threads every millisecond instead.
    fn nudge(&self) -> Option<crate::Nudge> {
        None
    }
}

/// A panic's message, when it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

impl Request for RpcRequest<'_> {
    fn correlation_id(&self) -> u64 {
        RpcRequest::correlation_id(self)
    }
    fn msg_type(&self) -> u16 {
        RpcRequest::msg_type(self)
    }
    fn data(&self) -> &[u8] {
        RpcRequest::data(self)
    }
}

impl Transport for RpcBus {
    type Request<'a> = RpcRequest<'a>;

    fn next_request(&self, wait: Wait<'_>) -> Result<RpcRequest<'_>> {
        self.serve_with(wait)
    }

    fn send_reply(&self, cid: u64, msg_type: u16, payload: &[u8], wait: Wait<'_>) -> Result<()> {
        self.reply_with(cid, payload, msg_type, wait)
    }

    fn nudge(&self) -> Option<crate::Nudge> {
        Some(RpcBus::nudge(self))
    }

    fn try_next_request(&self) -> Result<Option<OwnedRequest>> {
        match self.serve_with(Wait::new().spin(0).timeout(Duration::ZERO)) {
            Ok(r) => Ok(Some(OwnedRequest {
                correlation_id: r.correlation_id(),
                msg_type: r.msg_type(),
                data: r.data().to_vec(),
            })),
            Err(Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
