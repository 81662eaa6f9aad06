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

#[cfg(any(test, feature = "test-hooks"))]
/// Fuzzes a server connection: the first bytes pick the limits and how the stream is cut
/// into reads; the rest is what a hostile client sends. The connection must answer or
/// close with a goaway, never panic, and everything it sends must be well-formed frames.
pub(crate) fn fuzz_conn(data: &[u8]) {
    let [frame_byte, window_byte, cut_byte, rest @ ..] = data else { return };
    let limits = Limits {
        max_frame: 1 + (u32::from(*frame_byte) << 6),
        max_in_flight: 1 + u32::from(*window_byte & 0x0F),
        hello_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        high_water: 256 << (*window_byte >> 4),
        low_water: 64,
        handler_timeout: None,
    };
    let cut = 1 + usize::from(*cut_byte);
    let mut dispatcher = Dispatcher::new();
    dispatcher.register_raw(1, "echo", <[u8]>::to_vec).expect("one handler");
    let t0 = Instant::now();
    let mut conn = Conn::new(limits, t0);
    let mut sent = Vec::new();
    for (i, part) in rest.chunks(cut).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 300);
        conn.on_bytes(part, now, &mut Inline(&dispatcher));
        conn.check_timeouts(now);
        let _ = conn.wants_read();
        // Half of what is queued goes out each turn.
        let half = conn.output().len().div_ceil(2);
        sent.extend_from_slice(&conn.output()[..half]);
        conn.sent(half);
    }
    conn.shutdown();
    sent.extend_from_slice(&conn.take_output());
    let dec = Decoder::new(frame::MAX_FRAME_LIMIT);
    let mut at = 0;
    while at < sent.len() {
        match dec.next(&sent[at..]) {
            Ok(Step::Frame { used, .. }) => at += used,
            other => panic!("the server sent a bad frame: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_frame: 1 << 20,
            max_in_flight: 4,
            hello_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            high_water: 1 << 16,
            low_water: 1 << 12,
            handler_timeout: None,
        }
    }

    fn dispatcher() -> Dispatcher {
        let mut d = Dispatcher::new();
        d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
        d
    }

    fn frames(bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        let mut at = 0;
        while let Ok(Step::Frame { header, payload, used }) = d.next(&bytes[at..]) {
            out.push((header, payload.to_vec()));
            at += used;
        }
        out
    }

    fn hello() -> Vec<u8> {
        Hello { version: 1, max_frame: 1 << 16, max_in_flight: 16 }.frame()
    }

    #[test]
    fn hello_then_requests_split_anywhere_are_answered_in_order() {
        let d = dispatcher();
        let mut stream = hello();
        for cid in 1..=3u64 {
            frame::push_message(&mut stream, Kind::Request, 1, cid, 0, &cid.to_le_bytes());
        }
        for chunk in [1usize, 7, 24, 1000] {
            let mut c = Conn::new(limits(), Instant::now());
            for part in stream.chunks(chunk) {
                c.on_bytes(part, Instant::now(), &mut Inline(&d));
            }
            let out = frames(c.output());
            assert_eq!(out[0].0.kind, Kind::Hello);
            let h = Hello::decode(&out[0].1).unwrap();
            assert_eq!((h.max_frame, h.max_in_flight), (1 << 16, 4), "the smaller limits win");
            let replies: Vec<u64> = out[1..].iter().map(|(h, _)| h.correlation_id).collect();
            assert_eq!(replies, [1, 2, 3], "chunks of {chunk}");
            assert!(c.closing().is_none());
        }
    }

    #[test]
    fn bad_input_closes_with_a_reason() {
        let d = dispatcher();
        let mut c = Conn::new(limits(), Instant::now());
        let mut req = Vec::new();
        frame::push_message(&mut req, Kind::Request, 1, 1, 0, b"x");
        c.on_bytes(&req, Instant::now(), &mut Inline(&d));
        assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol, "a request before the hello");

        let mut c = Conn::new(limits(), Instant::now());
        let mut big = hello();
        big.extend_from_slice(
            &Header { len: 1 << 17, ..Header { correlation_id: 1, ..Header::new(Kind::Request) } }
                .encode(),
        );
        c.on_bytes(&big, Instant::now(), &mut Inline(&d));
        assert_eq!(c.closing().unwrap().code, GoawayCode::FrameTooLarge);
        let out = frames(c.output());
        assert_eq!(out.last().unwrap().0.kind, Kind::Goaway);

        let mut c = Conn::new(limits(), Instant::now());
        let mut junk = hello();
        junk.extend_from_slice(&[0xEE; 24]);
        c.on_bytes(&junk, Instant::now(), &mut Inline(&d));
        assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol);
    }

    #[test]
    fn a_missing_hello_and_a_stalled_frame_time_out() {
        let t0 = Instant::now();
        let mut c = Conn::new(limits(), t0);
        c.check_timeouts(t0 + Duration::from_millis(500));
        assert!(c.closing().is_none());
        c.check_timeouts(t0 + Duration::from_secs(2));
        assert_eq!(c.closing().unwrap().code, GoawayCode::HelloTimeout);

        let d = dispatcher();
        let mut c = Conn::new(limits(), t0);
        let mut bytes = hello();
        bytes.extend_from_slice(&[1, 0, 0]); // a header cut short
        c.on_bytes(&bytes, t0, &mut Inline(&d));
        c.check_timeouts(t0 + Duration::from_secs(2));
        assert_eq!(c.closing().unwrap().code, GoawayCode::ReadTimeout);
    }

    #[test]
    fn replies_piling_up_pause_reading_until_they_drain() {
        let d = dispatcher();
        let mut c =
            Conn::new(Limits { high_water: 256, low_water: 64, ..limits() }, Instant::now());
        let mut bytes = hello();
        for cid in 1..=4 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, &[7; 100]);
        }
        c.on_bytes(&bytes, Instant::now(), &mut Inline(&d));
        assert!(!c.wants_read());
        let n = c.output().len() - 32;
        c.sent(n);
        assert!(c.wants_read());
        assert_eq!(c.counts.paused, 1);
    }

    const HEADER_LEN_FOR_TESTS: usize = frame::HEADER_LEN;

    /// Hands every request off, keeping the controls (msg_type 5 streams).
    struct Deferred(Vec<(u64, Arc<JobCtl>)>);

    impl Handler for Deferred {
        fn request(&mut self, h: &Header, _: &[u8], _: &mut Vec<u8>) -> Answer {
            let ctl = Arc::new(JobCtl::new(h.msg_type() == 5));
            self.0.push((h.correlation_id, ctl.clone()));
            Answer::Later(ctl)
        }
    }

    #[test]
    fn stream_items_flow_outside_the_window_and_a_cancel_still_ends_the_stream() {
        let mut w = Deferred(Vec::new());
        let mut c = Conn::new(limits(), Instant::now()); // max 4 in flight
        let mut bytes = hello();
        frame::push_message(&mut bytes, Kind::Request, 5, 1, 0, b"s");
        c.on_bytes(&bytes, Instant::now(), &mut w);
        for _ in 0..10 {
            c.finished(1, Some(5), b"item", false);
        }
        // Ten items queued: still room for three more calls.
        let mut bytes = Vec::new();
        for cid in 2..=4 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        c.on_bytes(&bytes, Instant::now(), &mut w);
        assert!(c.closing().is_none(), "{:?}", c.closing());
        // The client cancels: the stream's control says so, later items are dropped,
        // and its end still goes out.
        let mut bytes = Vec::new();
        frame::push_control(&mut bytes, Kind::Cancel, 1);
        c.on_bytes(&bytes, Instant::now(), &mut w);
        assert!(w.0[0].1.is_cancelled());
        c.finished(1, Some(5), b"late", false);
        c.finished(1, Some(0xFFFE), b"", true);
        let out = frames(c.output());
        let got: Vec<(u16, &[u8])> =
            out[1..].iter().map(|(h, p)| (h.msg_type(), p.as_slice())).collect();
        assert_eq!(got.len(), 11);
        assert!(got[..10].iter().all(|&(mt, p)| mt == 5 && p == b"item"));
        assert_eq!(got[10], (0xFFFE, &b""[..]));
        // A closed connection cancels what workers hold.
        let held = w.0[1].1.clone();
        drop(c);
        assert!(held.is_cancelled());
    }

    #[test]
    fn a_call_its_handler_does_not_answer_in_time_gets_handler_error_and_its_late_answer_is_dropped(
    ) {
        let mut w = Deferred(Vec::new());
        let limits = Limits { handler_timeout: Some(Duration::from_millis(50)), ..limits() };
        let mut c = Conn::new(limits, Instant::now());
        let mut bytes = hello();
        for cid in 1..=3 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        let t0 = Instant::now();
        c.on_bytes(&bytes, t0, &mut w);
        c.sent(c.output().len()); // the hello
        c.finished(2, Some(1), b"on time", true);
        c.check_timeouts(t0); // nothing expired yet
        let out = frames(c.output());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.correlation_id, out[0].1.as_slice()), (2, &b"on time"[..]));
        c.sent(c.output().len());
        c.check_timeouts(t0 + Duration::from_millis(200));
        let out = frames(c.output());
        let got: Vec<_> = out.iter().map(|(h, _)| (h.correlation_id, h.msg_type())).collect();
        assert_eq!(got, [(1, MSG_TYPE_ERROR), (3, MSG_TYPE_ERROR)]);
        let e = crate::rpc::RpcError::decode(&out[0].1);
        assert_eq!(e.code, crate::rpc::code::HANDLER_ERROR);
        assert!(e.message.contains("did not answer"), "{}", e.message);
        assert!(w.0[0].1.is_cancelled() && w.0[2].1.is_cancelled());
        // The late answers go nowhere, and the window is free again.
        c.sent(c.output().len());
        c.finished(1, None, b"late", true);
        c.finished(3, Some(1), b"late", true);
        assert!(c.output().is_empty());
        let mut more = Vec::new();
        for cid in 4..=7 {
            frame::push_message(&mut more, Kind::Request, 1, cid, 0, b"x");
        }
        c.on_bytes(&more, Instant::now(), &mut w);
        assert!(c.closing().is_none(), "four calls fit the window again");
    }

    #[test]
    fn calls_on_workers_count_in_flight_take_cancels_and_hold_the_goaway() {
        let mut w = Deferred(Vec::new());
        let mut c = Conn::new(limits(), Instant::now());
        let mut bytes = hello();
        for cid in 1..=3 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        frame::push_control(&mut bytes, Kind::Cancel, 2);
        frame::push_control(&mut bytes, Kind::Ping, 9);
        c.on_bytes(&bytes, Instant::now(), &mut w);
        assert!(w.0[1].1.is_cancelled(), "the cancel reached call 2's flag");
        assert!(!w.0[0].1.is_cancelled());
        let out = frames(c.output());
        assert_eq!(out.len(), 2, "a hello and a pong, no replies yet");
        assert_eq!(out[1].0.kind, Kind::Pong);

        // A graceful shutdown waits for the three calls.
        c.shutdown();
        assert!(c.closing().is_none() && !c.wants_read());
        c.finished(3, Some(1), b"three", true);
        c.finished(2, None, b"", true); // cancelled: no reply
        c.finished(7, Some(1), b"never asked", true); // unknown: ignored
        assert!(c.closing().is_none());
        c.finished(1, Some(1), b"one", true);
        assert_eq!(c.closing().unwrap().code, GoawayCode::Shutdown);
        let out = frames(c.output());
        let got: Vec<(Kind, u64)> =
            out[2..].iter().map(|(h, _)| (h.kind, h.correlation_id)).collect();
        assert_eq!(got, [(Kind::Reply, 3), (Kind::Reply, 1), (Kind::Goaway, 0)]);

        // Calls on workers count against the in-flight window.
        let mut c = Conn::new(limits(), Instant::now());
        let mut bytes = hello();
        for cid in 1..=5 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
        assert_eq!(c.closing().unwrap().code, GoawayCode::TooManyInFlight);

        // A cancel frees its place in the window, whether the call waits for a worker
        // or its reply waits for the socket.
        let mut c = Conn::new(limits(), Instant::now());
        let mut bytes = hello();
        for cid in 1..=4 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        frame::push_control(&mut bytes, Kind::Cancel, 1);
        frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
        c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
        assert!(c.closing().is_none());
        let d = dispatcher();
        let mut c = Conn::new(limits(), Instant::now());
        let mut bytes = hello();
        for cid in 1..=4 {
            frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
        }
        c.on_bytes(&bytes, Instant::now(), &mut Inline(&d));
        let mut more = Vec::new();
        frame::push_control(&mut more, Kind::Cancel, 2);
        frame::push_message(&mut more, Kind::Request, 1, 5, 0, b"x");
        c.on_bytes(&more, Instant::now(), &mut Inline(&d));
        assert!(c.closing().is_none(), "the cancelled reply left the window");
        // Replies handed to the socket leave it too, even when a send is partial.
        let hello_len = HEADER_LEN_FOR_TESTS + frame::HELLO_LEN;
        let reply_len = HEADER_LEN_FOR_TESTS + 1;
        c.sent(hello_len + 3 * reply_len + 3); // the hello, replies 1 to 3, part of 4
        let mut more = Vec::new();
        frame::push_message(&mut more, Kind::Request, 1, 6, 0, b"x");
        frame::push_message(&mut more, Kind::Request, 1, 7, 0, b"x");
        c.on_bytes(&more, Instant::now(), &mut Inline(&d));
        assert!(c.closing().is_none(), "two replies went out, two calls came in");
        let mut over = Vec::new();
        frame::push_message(&mut over, Kind::Request, 1, 8, 0, b"x");
        c.on_bytes(&over, Instant::now(), &mut Inline(&d));
        assert_eq!(c.closing().unwrap().code, GoawayCode::TooManyInFlight);

        // A correlation id reused while its call is still on a worker.
        let mut c = Conn::new(limits(), Instant::now());
        let mut bytes = hello();
        frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
        frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
        c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
        assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol);
    }
}
