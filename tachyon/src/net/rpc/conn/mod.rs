//! One server connection as a state machine, with no I/O: bytes in, frames parsed and
//! dispatched, reply bytes out. Both reactors (io_uring and epoll) drive the same code,
//! so they behave the same, and tests drive it with plain byte slices.
//!
//! Everything that arrives is hostile until checked: a bad header, an unknown kind, a
//! frame over the negotiated maximum, a request before the hello, more calls in flight
//! than negotiated, a hello that never comes or a frame that stalls mid-way each end
//! this connection (a goaway with the reason, then close) and nothing else.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::rpc::frame::{
    self, Decoder, FrameError, Goaway, GoawayCode, Header, Hello, Kind, Step,
};
use crate::net::rpc::pool::JobCtl;
use crate::net::tls::{Opened, ServerSession};
use crate::rpc::{Dispatcher, MSG_TYPE_ERROR};

/// The limits a server connection enforces.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest payload accepted (before the hello, only a hello fits).
    pub max_frame: u32,
    /// Most calls a client may have unanswered on this connection.
    pub max_in_flight: u32,
    /// How long a client may take to send its hello.
    pub hello_timeout: Duration,
    /// How long a frame may stay half-received.
    pub read_timeout: Duration,
    /// Stop reading from a client whose replies pile up past this many bytes...
    pub high_water: usize,
    /// ...until they drain below this many.
    pub low_water: usize,
    /// A unary call handed off (to a worker or a deferred handler) and not answered
    /// within this is answered `HANDLER_ERROR`; its late answer is dropped.
    pub handler_timeout: Option<Duration>,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's hello (since when).
    Hello(Instant),
    /// Serving calls.
    Open,
    /// A goaway is queued; send what is left, then close.
    Closing,
}

/// Why the reactor must close a connection now (after sending what is queued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closing {
    /// The goaway's code.
    pub code: GoawayCode,
    /// What went wrong, for the log and the counters.
    pub reason: String,
}

/// How a request was taken.
pub(crate) enum Answer {
    /// Answered already: the reply's msg_type (0xFFFF for an error); the payload is in
    /// the response buffer.
    Now(u16),
    /// Handed to a worker; the reply (a stream's items, then its end) comes through
    /// [`Conn::finished`]. Cancelling skips the call if no worker has started it, and
    /// stops a stream.
    Later(Arc<JobCtl>),
}

/// What a connection hands each request to.
pub(crate) trait Handler {
    /// Takes a request: answers it into `response` now, or hands it off.
    fn request(&mut self, header: &Header, payload: &[u8], response: &mut Vec<u8>) -> Answer;
}

/// The inline handler: the dispatcher runs on the reactor thread.
pub(crate) struct Inline<'a>(pub &'a Dispatcher);

impl Handler for Inline<'_> {
    fn request(&mut self, h: &Header, payload: &[u8], response: &mut Vec<u8>) -> Answer {
        Answer::Now(self.0.dispatch(h.msg_type(), payload, response))
    }
}

/// Counters of one connection, summed by the server.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    pub requests: u64,
    pub replies: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub paused: u64,
    /// Error replies by code, not yet added to the server's counters.
    pub errors: Vec<(u32, u64)>,
}

impl Counts {
    /// Counts an error reply with `body` (the error path only: it decodes the body).
    fn error_reply(&mut self, body: &[u8]) {
        let code = crate::rpc::RpcError::decode(body).code;
        match self.errors.iter_mut().find(|e| e.0 == code) {
            Some(e) => e.1 += 1,
            None => self.errors.push((code, 1)),
        }
    }
}

/// One client connection of a server.
#[derive(Debug)]
pub(crate) struct Conn {
    phase: Phase,
    /// Bytes of a frame not complete yet.
    input: Vec<u8>,
    /// Frames to send.
    output: Vec<u8>,
    decoder: Decoder,
    limits: Limits,
    /// Highest correlation id seen (the goaway's `last_cid`).
    last_cid: u64,
    /// Replies queued and not yet handed to the socket, as (where the reply ends in the
    /// output stream, its call, whether it is a stream's item): the calls among them
    /// are calls the client still has in flight, as the server sees them. A cancel
    /// takes its call out (the client stopped counting it).
    unsent: VecDeque<(u64, u64, bool)>,
    /// How many of `unsent` are stream items (they do not count as calls in flight).
    items_unsent: usize,
    /// Bytes of output handed to the socket so far (positions in `unsent` count from
    /// the start of the connection).
    out_base: u64,
    /// When the first byte of the frame still buffered arrived.
    partial_since: Option<Instant>,
    /// Calls handed to workers and not answered yet (streams not ended yet).
    jobs: HashMap<u64, Arc<JobCtl>>,
    /// When handed-off unary calls expire, in the order they were handed off (one
    /// timeout for all, so the front expires first): (when, call, its type id, its job).
    expiries: VecDeque<(Instant, u64, u32, Arc<JobCtl>)>,
    /// A graceful shutdown waits for `jobs` before its goaway.
    draining: bool,
    /// Whether reading is paused by backpressure.
    paused: bool,
    closing: Option<Closing>,
    scratch: Vec<u8>,
    /// A sent output buffer handed back, to become the next output (no regrowth).
    spare: Vec<u8>,
    /// Counters.
    pub counts: Counts,
    /// The counters (requests, pauses) already added to the server's.
    pub reported: (u64, u64),
    /// TLS: `output` is plaintext that [`Conn::seal`] encrypts into `wire`, which is
    /// what goes to the socket.
    tls: Option<Box<ServerSession>>,
    wire: Vec<u8>,
    /// Plaintext decrypted from one receive (reused).
    plain_in: Vec<u8>,
}

impl Conn {
    /// A connection accepted at `now`.
    pub fn new(limits: Limits, now: Instant) -> Self {
        Self {
            phase: Phase::Hello(now),
            input: Vec::new(),
            output: Vec::new(),
            // Before the hello, only a hello fits.
            decoder: Decoder::new(frame::HELLO_LEN as u32),
            limits,
            last_cid: 0,
            unsent: VecDeque::new(),
            items_unsent: 0,
            out_base: 0,
            partial_since: None,
            jobs: HashMap::new(),
            expiries: VecDeque::new(),
            draining: false,
            paused: false,
            closing: None,
            scratch: Vec::new(),
            spare: Vec::new(),
            counts: Counts::default(),
            reported: (0, 0),
            tls: None,
            wire: Vec::new(),
            plain_in: Vec::new(),
        }
    }

    /// A connection accepted at `now` that speaks TLS from its first byte.
    pub fn with_tls(limits: Limits, now: Instant, session: ServerSession) -> Self {
        let mut conn = Self::new(limits, now);
        conn.tls = Some(Box::new(session));
        conn
    }

    /// The verified client identity (mutual TLS, once the handshake is done).
    pub fn peer(&self) -> Option<&std::sync::Arc<crate::net::PeerIdentity>> {
        self.tls.as_ref().and_then(|t| t.peer.as_ref())
    }

    /// Bytes to send.
    pub fn output(&self) -> &[u8] {
        if self.tls.is_some() {
            &self.wire
        } else {
            &self.output
        }
    }

    /// `n` bytes of the output went out.
    pub fn sent(&mut self, n: usize) {
        self.counts.bytes_out += n as u64;
        if self.tls.is_some() {
            self.wire.drain(..n);
        } else {
            self.advance(n);
        }
    }

    /// `n` bytes of plaintext output left the connection (to the socket, or into TLS).
    fn advance(&mut self, n: usize) {
        self.output.drain(..n);
        self.out_base += n as u64;
        while let Some(&(end, cid, item)) = self.unsent.front() {
            if end > self.out_base {
                break;
            }
            self.unsent.pop_front();
            if item {
                self.item_left(cid);
            }
        }
    }

    /// A stream's item left the connection: its handler may send one more.
    fn item_left(&mut self, cid: u64) {
        self.items_unsent -= 1;
        if let Some(ctl) = self.jobs.get(&cid) {
            ctl.release();
        }
    }

    /// Takes the whole output (a reactor that sends from its own buffer; it hands the
    /// buffer back with [`Conn::give_back`] once sent).
    pub fn take_output(&mut self) -> Vec<u8> {
        let spare = std::mem::take(&mut self.spare);
        if self.tls.is_some() {
            let out = std::mem::replace(&mut self.wire, spare);
            self.counts.bytes_out += out.len() as u64;
            return out;
        }
        let out = std::mem::replace(&mut self.output, spare);
        self.counts.bytes_out += out.len() as u64;
        self.out_base += out.len() as u64;
        while let Some((_, cid, item)) = self.unsent.pop_front() {
            if item {
                self.item_left(cid);
            }
        }
        out
    }

    /// Returns a buffer from [`Conn::take_output`] once the kernel is done with it.
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        // Keep one spare, and not a huge one for ever (a large reply passed once).
        if buf.capacity() <= 1 << 20 && buf.capacity() > self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }

    /// Whether the reactor should close the connection once the output is sent.
    pub fn closing(&self) -> Option<&Closing> {
        self.closing.as_ref()
    }

    /// Whether the reactor should be reading (false while replies pile up, or closing).
    pub fn wants_read(&mut self) -> bool {
        if self.closing.is_some() || self.draining {
            return false;
        }
        let queued = self.output.len() + self.wire.len();
        if self.paused {
            if queued <= self.limits.low_water {
                self.paused = false;
            }
        } else if queued >= self.limits.high_water {
            self.paused = true;
            self.counts.paused += 1;
        }
        !self.paused
    }

    /// Queues a goaway and stops reading.
    pub fn close(&mut self, code: GoawayCode, reason: impl Into<String>) {
        if self.closing.is_some() {
            return;
        }
        let reason = reason.into();
        self.output.extend_from_slice(
            &Goaway { last_cid: self.last_cid, code, message: reason.clone() }.frame(),
        );
        self.phase = Phase::Closing;
        self.closing = Some(Closing { code, reason });
        self.seal();
    }

    /// Encrypts the plaintext output onto the wire (TLS only); a closing connection's
    /// goaway is followed by a close_notify.
    fn seal(&mut self) {
        let Some(tls) = self.tls.as_mut() else { return };
        let n = self.output.len();
        tls.seal(&self.output, self.closing.is_some(), &mut self.wire);
        self.advance(n);
    }

    /// Handles bytes from the socket. Frames complete in `bytes` are parsed in place.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant, handler: &mut dyn Handler) {
        if self.closing.is_some() || bytes.is_empty() {
            return;
        }
        let first = self.counts.bytes_in == 0;
        self.counts.bytes_in += bytes.len() as u64;
        // A TLS record starts 0x16 0x03; a Tachyon hello starts with its length, 16.
        let looks_tls = bytes[0] == 0x16;
        let Some(tls) = self.tls.as_mut() else {
            if first && looks_tls {
                return self.close(
                    GoawayCode::Protocol,
                    "this server does not speak TLS; connect without TLS options",
                );
            }
            return self.on_plain(bytes, now, handler);
        };
        if first && !looks_tls {
            // A plaintext client: tell it in its own protocol, not in a TLS alert.
            let message = "this server requires TLS; connect with TLS options".to_owned();
            self.wire.extend_from_slice(
                &Goaway { last_cid: 0, code: GoawayCode::Protocol, message: message.clone() }
                    .frame(),
            );
            self.phase = Phase::Closing;
            self.closing = Some(Closing { code: GoawayCode::Protocol, reason: message });
            return;
        }
        let mut plain = std::mem::take(&mut self.plain_in);
        if let Opened::Failed(reason) = tls.open(bytes, &mut plain) {
            self.phase = Phase::Closing;
            self.closing = Some(Closing { code: GoawayCode::Protocol, reason });
        }
        if !plain.is_empty() && self.closing.is_none() {
            self.on_plain(&plain, now, handler);
        }
        plain.clear();
        self.plain_in = plain;
        self.seal();
    }

    /// Handles plaintext bytes.
    fn on_plain(&mut self, bytes: &[u8], now: Instant, handler: &mut dyn Handler) {
        if self.input.is_empty() {
            let used = self.process(bytes, handler);
            if self.closing.is_none() && used < bytes.len() {
                self.input.extend_from_slice(&bytes[used..]);
            }
        } else {
            self.input.extend_from_slice(bytes);
            let input = std::mem::take(&mut self.input);
            let used = self.process(&input, handler);
            self.input = input;
            self.input.drain(..used);
        }
        self.partial_since =
            if self.input.is_empty() { None } else { Some(self.partial_since.unwrap_or(now)) };
    }

    /// Processes every complete frame at the front of `buf`; returns the bytes used.
    fn process(&mut self, buf: &[u8], handler: &mut dyn Handler) -> usize {
        let mut at = 0;
        while self.closing.is_none() {
            match self.decoder.next(&buf[at..]) {
                Ok(Step::Frame { header, payload, used }) => {
                    at += used;
                    self.on_frame(&header, payload, handler);
                }
                Ok(Step::Partial) => break,
                Err(e) => {
                    let code = match e {
                        FrameError::TooLarge { .. } => GoawayCode::FrameTooLarge,
                        _ => GoawayCode::Protocol,
                    };
                    self.close(code, e.to_string());
                }
            }
        }
        at
    }

    fn on_frame(&mut self, h: &Header, payload: &[u8], handler: &mut dyn Handler) {
        match (self.phase, h.kind) {
            (Phase::Hello(_), Kind::Hello) => self.on_hello(payload),
            (Phase::Hello(_), k) => {
                self.close(GoawayCode::Protocol, format!("{k:?} frame before the hello"));
            }
            (Phase::Open, Kind::Request) => self.on_request(h, payload, handler),
            (Phase::Open, Kind::Ping) => {
                frame::push_control(&mut self.output, Kind::Pong, h.correlation_id);
            }
            (Phase::Open, Kind::Cancel) => {
                // The client no longer counts the call in its window, so neither do
                // we. A call still waiting for a worker is skipped; a reply already
                // queued still goes out (the client drops it). A stream stops, and its
                // end still goes out: the client counts it until then.
                let cid = h.correlation_id;
                match self.jobs.get(&cid) {
                    Some(ctl) if ctl.is_stream() => ctl.cancel(),
                    Some(_) => {
                        if let Some(ctl) = self.jobs.remove(&cid) {
                            ctl.cancel();
                        }
                    }
                    None => {}
                }
                if let Some(at) = self.unsent.iter().position(|&(_, c, item)| c == cid && !item) {
                    self.unsent.remove(at);
                }
            }
            (Phase::Open, Kind::Goaway) => {
                self.close(GoawayCode::Shutdown, "the client said goaway");
            }
            (Phase::Open, Kind::Pong) | (Phase::Closing, _) => {}
            (Phase::Open, k) => {
                self.close(GoawayCode::Protocol, format!("unexpected {k:?} frame from a client"));
            }
        }
    }

    fn on_hello(&mut self, payload: &[u8]) {
        let hello = match Hello::decode(payload) {
            Ok(h) => h,
            Err(e) => return self.close(GoawayCode::Protocol, e.to_string()),
        };
        if hello.version < 1 {
            return self.close(
                GoawayCode::Version,
                format!("no common version (client speaks {})", hello.version),
            );
        }
        let max_frame = self.limits.max_frame.min(hello.max_frame.max(1));
        let max_in_flight = self.limits.max_in_flight.min(hello.max_in_flight.max(1));
        self.limits.max_frame = max_frame;
        self.limits.max_in_flight = max_in_flight;
        self.decoder.set_max_len(max_frame);
        let version = hello.version.min(frame::VERSION);
        self.output.extend_from_slice(&Hello { version, max_frame, max_in_flight }.frame());
        self.phase = Phase::Open;
    }

    /// Runs the handler for one request with the caller's identity in scope. The reply
    /// is written into the connection's scratch buffer, returned with the answer; give
    /// it back with [`Self::reuse`].
    fn run_handler(
        &mut self,
        h: &Header,
        payload: &[u8],
        handler: &mut dyn Handler,
    ) -> (Answer, Vec<u8>) {
        let mut response = std::mem::take(&mut self.scratch);
        let answer =
            crate::net::tls::with_peer(self.peer(), || handler.request(h, payload, &mut response));
        (answer, response)
    }

    fn reuse(&mut self, mut response: Vec<u8>) {
        response.clear();
        self.scratch = response;
    }

    fn on_request(&mut self, h: &Header, payload: &[u8], handler: &mut dyn Handler) {
        self.counts.requests += 1;
        if h.correlation_id == crate::rpc::ONEWAY_CID {
            return self.on_oneway(h, payload, handler);
        }
        self.last_cid = self.last_cid.max(h.correlation_id);
        // A call stays in flight until its reply reaches the socket (inline calls are
        // answered at once, worker calls when they finish). A client that keeps sending
        // without reading breaks the window.
        let in_flight = self.unsent.len() - self.items_unsent + self.jobs.len();
        if in_flight >= self.limits.max_in_flight as usize {
            return self.close(
                GoawayCode::TooManyInFlight,
                format!("more than {} calls in flight", self.limits.max_in_flight),
            );
        }
        if self.jobs.contains_key(&h.correlation_id) {
            return self.close(
                GoawayCode::Protocol,
                format!("correlation id {} is already in flight", h.correlation_id),
            );
        }
        let (answer, response) = self.run_handler(h, payload, handler);
        match answer {
            Answer::Now(msg_type) => {
                let type_id = (h.type_id & 0xFFFF_0000) | u32::from(msg_type);
                self.push_frame(type_id, h.correlation_id, &response, false);
            }
            Answer::Later(ctl) => {
                if let (Some(t), false) = (self.limits.handler_timeout, ctl.is_stream()) {
                    let at = Instant::now() + t;
                    self.expiries.push_back((at, h.correlation_id, h.type_id, ctl.clone()));
                }
                self.jobs.insert(h.correlation_id, ctl);
            }
        }
        self.reuse(response);
    }

    /// A oneway request: run it, send nothing back. A worker runs it untracked (it cannot
    /// be cancelled and shutdown does not wait for it); a failure is logged here.
    fn on_oneway(&mut self, h: &Header, payload: &[u8], handler: &mut dyn Handler) {
        let (answer, response) = self.run_handler(h, payload, handler);
        if let Answer::Now(MSG_TYPE_ERROR) = answer {
            let e = crate::rpc::RpcError::decode(&response);
            tracing::warn!(target: "tachyon", msg_type = h.msg_type(), code = e.code, "a oneway request failed: {}", e.message);
        }
        self.reuse(response);
    }

    /// A worker finished call `cid` (`last`), or sent an item of stream `cid`: queue the
    /// reply (none for a call that was cancelled, nor for items of a cancelled stream).
    pub fn finished(&mut self, cid: u64, type_id: Option<u32>, response: &[u8], last: bool) {
        if !last {
            let live = self.jobs.get(&cid).is_some_and(|c| !c.is_cancelled());
            if let (true, None, Some(type_id)) = (live, &self.closing, type_id) {
                if response.len() > self.limits.max_frame as usize {
                    // The client would refuse the item: end the stream with the reason.
                    self.push_frame(type_id, cid, response, false);
                    if let Some(ctl) = self.jobs.remove(&cid) {
                        ctl.cancel();
                    }
                } else {
                    self.push_frame(type_id, cid, response, true);
                }
                self.seal();
            }
            return;
        }
        if self.jobs.remove(&cid).is_none() || self.closing.is_some() {
            return;
        }
        if let Some(type_id) = type_id {
            self.push_frame(type_id, cid, response, false);
            self.seal();
        }
        if self.draining && self.jobs.is_empty() {
            self.close(GoawayCode::Shutdown, "the server is shutting down");
        }
    }

    fn push_frame(&mut self, type_id: u32, cid: u64, payload: &[u8], item: bool) {
        self.counts.replies += 1;
        if payload.len() > self.limits.max_frame as usize {
            // A reply the client would refuse: tell it why instead.
            let e = crate::rpc::RpcError::new(
                crate::msg_type(type_id),
                crate::rpc::code::BAD_RESPONSE,
                format!(
                    "the {}-byte reply exceeds the connection's {}-byte frame limit",
                    payload.len(),
                    self.limits.max_frame
                ),
            );
            let body = e.encode();
            self.counts.error_reply(&body);
            frame::push_message(
                &mut self.output,
                Kind::Reply,
                u32::from(MSG_TYPE_ERROR),
                cid,
                0,
                &body,
            );
        } else {
            if crate::msg_type(type_id) == MSG_TYPE_ERROR {
                self.counts.error_reply(payload);
            }
            frame::push_message(&mut self.output, Kind::Reply, type_id, cid, 0, payload);
        }
        self.unsent.push_back((self.out_base + self.output.len() as u64, cid, item));
        self.items_unsent += usize::from(item);
    }

    /// Ends the connection if its hello or a half-received frame is overdue.
    pub fn check_timeouts(&mut self, now: Instant) {
        if let Phase::Hello(since) = self.phase {
            if now.duration_since(since) >= self.limits.hello_timeout {
                return self.close(GoawayCode::HelloTimeout, "no hello in time");
            }
        }
        if self.partial_since.is_some_and(|t| now.duration_since(t) >= self.limits.read_timeout) {
            self.close(GoawayCode::ReadTimeout, "a frame stalled mid-way");
        }
        self.expire_calls(now);
    }

    /// Answers the handed-off calls whose handler took longer than the handler timeout
    /// with `HANDLER_ERROR`, and cancels them (their late answers are dropped).
    fn expire_calls(&mut self, now: Instant) {
        let Some(timeout) = self.limits.handler_timeout else { return };
        // Forget the calls answered since the last check, so the list holds at most
        // one check's worth of calls beyond those in flight.
        let jobs = &self.jobs;
        self.expiries.retain(|e| jobs.get(&e.1).is_some_and(|j| Arc::ptr_eq(j, &e.3)));
        let mut expired = false;
        while self.expiries.front().is_some_and(|e| e.0 <= now) {
            let Some((_, cid, type_id, ctl)) = self.expiries.pop_front() else { break };
            self.jobs.remove(&cid);
            ctl.cancel();
            expired = true;
            if self.closing.is_none() {
                let msg_type = (type_id & 0xFFFF) as u16;
                let body = crate::rpc::RpcError::new(
                    msg_type,
                    crate::rpc::code::HANDLER_ERROR,
                    format!("the handler did not answer within {timeout:?}"),
                )
                .encode();
                let error_type = (type_id & 0xFFFF_0000) | u32::from(MSG_TYPE_ERROR);
                self.push_frame(error_type, cid, &body, false);
            }
        }
        if expired {
            self.seal();
            if self.draining && self.jobs.is_empty() {
                self.close(GoawayCode::Shutdown, "the server is shutting down");
            }
        }
    }

    /// A graceful shutdown: answer what arrived (waiting for calls on workers), then
    /// say goaway.
    pub fn shutdown(&mut self) {
        // Streams could run for ever: stop them (each still sends its end).
        for ctl in self.jobs.values().filter(|c| c.is_stream()) {
            ctl.cancel();
        }
        if self.jobs.is_empty() {
            self.close(GoawayCode::Shutdown, "the server is shutting down");
        } else {
            self.draining = true;
        }
    }
}

impl crate::net::reactor::service::Session for Conn {
    fn output(&self) -> &[u8] {
        Conn::output(self)
    }
    fn sent(&mut self, n: usize) {
        Conn::sent(self, n);
    }
    fn take_output(&mut self) -> Vec<u8> {
        Conn::take_output(self)
    }
    fn give_back(&mut self, buf: Vec<u8>) {
        Conn::give_back(self, buf);
    }
    fn is_closing(&self) -> bool {
        self.closing.is_some()
    }
    fn wants_read(&mut self) -> bool {
        Conn::wants_read(self)
    }
    fn check_timeouts(&mut self, now: Instant) {
        Conn::check_timeouts(self, now);
    }
    fn shutdown(&mut self) {
        Conn::shutdown(self);
    }
}

impl Drop for Conn {
    /// A closed connection cancels what its workers still hold: queued calls are
    /// skipped, and streams stop at their next item.
    fn drop(&mut self) {
        for ctl in self.jobs.values() {
            ctl.cancel();
        }
    }
}

#[cfg(feature = "test-hooks")]
mod fuzz;
#[cfg(feature = "test-hooks")]
pub(crate) use fuzz::*;
#[cfg(test)]
mod tests;
