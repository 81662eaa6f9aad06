//! Deferred handlers: a server whose handlers live elsewhere (a JavaScript event loop, an
//! async runtime) takes every unary request as a [`DeferredCall`], gathered per reactor
//! loop turn and handed over in one batch, and answered later from any thread. No
//! thread waits for an answer: a call is in flight on its connection until its answer
//! comes, counted against the window like any other.
//!
//! A call dropped without an answer is answered with `HANDLER_ERROR`, so a forgotten
//! call never hangs its caller; a call its caller cancelled (or whose connection
//! closed) accepts an answer and drops it.

use std::sync::Arc;
use std::time::Instant;

use crate::net::rpc::pool::{ConnId, Done, Finished, JobCtl};
use crate::net::PeerIdentity;
use crate::rpc::{code, RpcError, ServerError, MSG_TYPE_ERROR};

/// Where a deferred call's answer goes.
pub(crate) struct Replier {
    pub conn: ConnId,
    pub correlation_id: u64,
    /// The request's type_id (its route stays on the reply).
    pub type_id: u32,
    pub finished: Arc<Finished>,
    pub ctl: Arc<JobCtl>,
}

/// One request for a deferred handler (see [`crate::net::TcpServerOptions::deferred`]).
pub struct DeferredCall {
    /// The request's msg_type.
    pub msg_type: u16,
    /// The request's payload.
    pub payload: Vec<u8>,
    /// The caller's verified certificate (mutual TLS).
    pub peer: Option<Arc<PeerIdentity>>,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    replier: Option<Replier>,
}

impl std::fmt::Debug for DeferredCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredCall")
            .field("msg_type", &self.msg_type)
            .field("len", &self.payload.len())
            .field("oneway", &self.replier.is_none())
            .finish_non_exhaustive()
    }
}

impl DeferredCall {
    pub(crate) fn new(
        msg_type: u16,
        payload: &[u8],
        deadline: Option<Instant>,
        replier: Option<Replier>,
    ) -> Self {
        Self {
            msg_type,
            payload: payload.to_vec(),
            peer: crate::net::tls::peer_identity(),
            deadline,
            replier,
        }
    }

    /// Whether the caller expects no answer (a oneway request).
    pub fn is_oneway(&self) -> bool {
        self.replier.is_none()
    }

    /// Whether the caller gave up (a cancel, a closed connection): an answer is dropped.
    pub fn is_cancelled(&self) -> bool {
        self.replier.as_ref().is_some_and(|r| r.ctl.is_cancelled())
    }

    /// Answers with `data`, as the request's msg_type.
    pub fn reply(mut self, data: Vec<u8>) {
        let mt = self.msg_type;
        self.send(mt, data);
    }

    /// Answers with the error reply for `e`.
    pub fn fail(mut self, e: ServerError) {
        let body = RpcError::new(self.msg_type, e.code, e.message).encode();
        self.send(MSG_TYPE_ERROR, body);
    }

    fn send(&mut self, msg_type: u16, response: Vec<u8>) {
        let Some(r) = self.replier.take() else { return };
        let type_id =
            (!r.ctl.is_cancelled()).then_some((r.type_id & 0xFFFF_0000) | u32::from(msg_type));
        r.finished.push(Done {
            conn: r.conn,
            correlation_id: r.correlation_id,
            type_id,
            response,
            last: true,
        });
    }
}

impl Drop for DeferredCall {
    fn drop(&mut self) {
        if self.replier.is_some() {
            let body = RpcError::new(
                self.msg_type,
                code::HANDLER_ERROR,
                "the handler dropped the call without answering",
            )
            .encode();
            self.send(MSG_TYPE_ERROR, body);
        }
    }
}

/// Where a server hands its batches of deferred calls.
pub type DeferredHandler = Arc<dyn Fn(Vec<DeferredCall>) + Send + Sync>;
