//! Requests answered later, from any thread: what lets a shared-memory server run
//! `async fn` handlers (or any handler that finishes elsewhere) with many calls of one
//! client in flight at once.
//!
//! A dispatcher with a deferred handler ([`crate::rpc::Dispatcher::set_deferred`])
//! serves each client with a loop that never waits for a handler: a request for a
//! msg_type without a blocking handler becomes a [`DeferredRequest`], handed over at
//! once; the loop goes back to receiving. Whoever holds the request answers it when
//! ready ([`DeferredRequest::reply`], [`DeferredRequest::fail`]): the answer is queued
//! and the loop is woken through the bus's [`Nudge`] to send it, so replies go out in
//! the order they finish. Only the loop's thread writes the reply ring, which stays a
//! single-producer ring.
//!
//! What it costs: a copy of each request (the handler outlives the ring slot), a lock
//! per answer, and a wake-up of the serving thread per answer that finds it asleep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rpc::dispatch::{Dispatcher, Request, ServeOptions, Transport};
use crate::rpc::error::{code, RpcError, ServerError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::rpc::stream::{self, OwnedRequest};
use crate::shm::liveness::Nudge;
use crate::shm::wait::Wait;
use crate::sync::lock;

/// The most calls of one client a deferring loop hands out before it waits for answers.
const MAX_OUTSTANDING: usize = 4096;

/// Without a nudge (a transport that has none), how often the loop looks for answers.
const POLL_SLICE: Duration = Duration::from_millis(1);

/// One finished request: its sequence number (0 for a oneway request), msg_type and
/// outcome.
type Answer = (u64, u16, std::result::Result<Vec<u8>, ServerError>);

/// Answers finished on other threads, waiting for the serving loop.
struct Answers {
    queue: Mutex<Vec<Answer>>,
    nudge: Option<Nudge>,
}

impl Answers {
    fn push(&self, answer: Answer) {
        lock(&self.queue).push(answer);
        if let Some(n) = &self.nudge {
            n.nudge();
        }
    }
}

/// A request handed to a deferred handler; answer it from any thread, once. Dropping it
/// unanswered answers `HANDLER_ERROR`, so the caller is never left waiting.
#[must_use = "a deferred request must be answered (dropping it answers HANDLER_ERROR)"]
pub struct DeferredRequest {
    /// The request's msg_type.
    pub msg_type: u16,
    /// The request's payload (copied out of the ring).
    pub payload: Vec<u8>,
    seq: u64,
    oneway: bool,
    answers: Option<Arc<Answers>>,
}

impl std::fmt::Debug for DeferredRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredRequest")
            .field("msg_type", &self.msg_type)
            .field("len", &self.payload.len())
            .field("oneway", &self.oneway)
            .finish_non_exhaustive()
    }
}

impl DeferredRequest {
    /// Whether the caller expects no answer (a oneway request; an answer is dropped, a
    /// failure logged).
    pub fn is_oneway(&self) -> bool {
        self.oneway
    }

    /// Answers with `data`, as the request's msg_type.
    pub fn reply(mut self, data: Vec<u8>) {
        self.answer(Ok(data));
    }

    /// Answers with the error reply for `e`.
    pub fn fail(mut self, e: ServerError) {
        self.answer(Err(e));
    }

    fn answer(&mut self, outcome: std::result::Result<Vec<u8>, ServerError>) {
        if let Some(a) = self.answers.take() {
            let seq = if self.oneway { 0 } else { self.seq };
            a.push((seq, self.msg_type, outcome));
        }
    }
}

impl Drop for DeferredRequest {
    fn drop(&mut self) {
        self.answer(Err(ServerError::new(
            code::HANDLER_ERROR,
            "the handler dropped the call without answering",
        )));
    }
}

/// Where a dispatcher hands its deferred requests.
pub(crate) type DeferredFn = dyn Fn(DeferredRequest) + Send + Sync;

/// A call handed out and not answered yet.
struct Outstanding {
    cid: u64,
    msg_type: u16,
    expires: Option<Instant>,
}

/// Serves `transport` like [`Dispatcher::serve_until`], handing requests without a
/// blocking handler to `deferred` and sending answers as they come back.
pub(crate) fn serve<T: Transport>(
    d: &Dispatcher,
    deferred: &DeferredFn,
    timeout: Option<Duration>,
    transport: &T,
    done: &mut dyn FnMut() -> bool,
    opts: &ServeOptions,
) -> Result<()> {
    let nudge = transport.nudge();
    let mut l = Loop {
        d,
        deferred,
        timeout,
        transport,
        opts,
        answers: Arc::new(Answers { queue: Mutex::new(Vec::new()), nudge: nudge.clone() }),
        outstanding: BTreeMap::new(),
        seq: 0,
        scratch: Vec::new(),
    };
    let mut finished = Vec::new();
    loop {
        std::mem::swap(&mut finished, &mut *lock(&l.answers.queue));
        l.send_answers(&mut finished)?;
        l.expire()?;
        // Wait for a request, an answer (the nudge), the next expiry, or the end.
        let next_expiry = l.outstanding.first_key_value().and_then(|(_, o)| o.expires);
        let mut slice = next_expiry.map(|t| t.saturating_duration_since(Instant::now()));
        if nudge.is_none() {
            slice = Some(slice.map_or(POLL_SLICE, |s| s.min(POLL_SLICE)));
        }
        let mut ended = false;
        let mut check = || {
            ended = done();
            let answered = nudge.as_ref().is_some_and(Nudge::take);
            ended || answered
        };
        if l.outstanding.len() >= MAX_OUTSTANDING {
            // Answers first: take no more calls until some come back.
            if !check() {
                std::thread::sleep(POLL_SLICE);
            }
            if ended {
                return Ok(());
            }
            continue;
        }
        let wait = Wait::new().interrupt(&mut check).timeout_opt(slice);
        let req = match transport.next_request(wait) {
            Ok(r) => OwnedRequest {
                correlation_id: r.correlation_id(),
                msg_type: r.msg_type(),
                data: r.data().to_vec(),
            },
            Err(Error::PeerDead(_) | Error::PeerClosed) => return Ok(()),
            Err(Error::Interrupted) if ended => return Ok(()),
            Err(Error::Interrupted | Error::Timeout(_)) => continue,
            Err(e @ Error::Protocol(_)) => {
                opts.report(&e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some((f, name)) = d.stream_handler(req.msg_type) {
            let mut pending = std::collections::VecDeque::new();
            stream::serve(f, name, transport, &req, opts, &mut pending)?;
            // Requests that came during the stream, in order.
            for r in pending {
                l.take(r)?;
            }
            continue;
        }
        l.take(req)?;
    }
}

/// The state of one client's deferring loop.
struct Loop<'a, T> {
    d: &'a Dispatcher,
    deferred: &'a DeferredFn,
    timeout: Option<Duration>,
    transport: &'a T,
    opts: &'a ServeOptions,
    answers: Arc<Answers>,
    /// By sequence number: with one timeout for all, the first expires first.
    outstanding: BTreeMap<u64, Outstanding>,
    seq: u64,
    scratch: Vec<u8>,
}

impl<T: Transport> Loop<'_, T> {
    /// Sends the answers that came back (dropping those that expired meanwhile).
    fn send_answers(&mut self, finished: &mut Vec<Answer>) -> Result<()> {
        for (s, msg_type, outcome) in finished.drain(..) {
            if s == 0 {
                if let Err(e) = outcome {
                    self.opts.report(&Error::Rpc(RpcError::new(msg_type, e.code, e.message)));
                }
                continue;
            }
            let Some(o) = self.outstanding.remove(&s) else { continue }; // expired already
            let (reply_type, body) = match outcome {
                Ok(data) => (msg_type, data),
                Err(e) => (MSG_TYPE_ERROR, RpcError::new(msg_type, e.code, e.message).encode()),
            };
            send(self.transport, o.cid, msg_type, reply_type, &body, self.opts)?;
        }
        Ok(())
    }

    /// Answers `HANDLER_ERROR` to the calls past the timeout.
    fn expire(&mut self) -> Result<()> {
        let now = Instant::now();
        while let Some(entry) = self.outstanding.first_entry() {
            if entry.get().expires.is_none_or(|t| t > now) {
                break;
            }
            let o = entry.remove();
            let t = self.timeout.unwrap_or_default();
            let body = RpcError::new(
                o.msg_type,
                code::HANDLER_ERROR,
                format!("the handler did not answer within {t:?}"),
            )
            .encode();
            send(self.transport, o.cid, o.msg_type, MSG_TYPE_ERROR, &body, self.opts)?;
        }
        Ok(())
    }

    /// Answers `req` at once if a blocking handler has it, else hands it out.
    fn take(&mut self, req: OwnedRequest) -> Result<()> {
        if req.cancels().is_some() {
            return Ok(()); // a cancel for a stream that has already ended
        }
        if self.d.has_blocking_handler(req.msg_type) {
            let reply_type = self.d.dispatch(req.msg_type, &req.data, &mut self.scratch);
            let (cid, mt) = (req.correlation_id, req.msg_type);
            return send(self.transport, cid, mt, reply_type, &self.scratch, self.opts);
        }
        self.seq += 1;
        let oneway = req.correlation_id == ONEWAY_CID;
        if !oneway {
            let expires = self.timeout.map(|t| Instant::now() + t);
            let o = Outstanding { cid: req.correlation_id, msg_type: req.msg_type, expires };
            self.outstanding.insert(self.seq, o);
        }
        (self.deferred)(DeferredRequest {
            msg_type: req.msg_type,
            payload: req.data,
            seq: self.seq,
            oneway,
            answers: Some(self.answers.clone()),
        });
        Ok(())
    }
}

/// Sends one reply (none for a oneway request, whose failure is reported instead).
fn send(
    transport: &impl Transport,
    cid: u64,
    msg_type: u16,
    reply_type: u16,
    body: &[u8],
    opts: &ServeOptions,
) -> Result<()> {
    if cid == ONEWAY_CID {
        if reply_type == MSG_TYPE_ERROR {
            let e = RpcError::decode(body);
            opts.report(&Error::Rpc(RpcError { msg_type, ..e }));
        }
        return Ok(());
    }
    transport.send_reply(cid, reply_type, body, Wait::new().timeout_opt(opts.reply_timeout))
}
