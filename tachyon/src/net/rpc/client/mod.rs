//! [`TcpClient`]: the RPC caller over TCP. Blocking, and it does its own socket I/O on
//! the calling threads: a caller that handed each request to an I/O thread would pay a
//! thread hop each way (about 55 us across vCPUs here). Many threads may call at once:
//! the first waiter reads the socket for everyone and parks replies for their owners, as
//! [`crate::rpc::RpcBus`] does with its ring.
//!
//! Calls are pipelined (any number up to the window the hello negotiated, replies in any
//! order), carry their remaining deadline to the server, and send a cancel frame when
//! their caller gives up. A dead server fails every call in flight with `PeerDead`
//! within the dead-peer bound: at once on a reset or EOF, and through ping/pong when the
//! network goes silent while calls are outstanding.
//!
//! Server-streaming calls ([`TcpClient::call_stream`]) take one slot of the window from
//! their request to their end. Their items are queued for their reader as they arrive
//! (in order); a cancel frame stops the server, whose end then frees the slot.

mod caller;
mod connect;
use connect::{open, write_all};
mod future;
mod inbox;
#[cfg(feature = "tokio")]
mod reactor;
#[cfg(feature = "tokio")]
mod timer;

pub use future::CallFuture;

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::error::{Error, Result};
use crate::net::rpc::frame::{self, Decoder, Kind};
use crate::rpc::{StreamSource, MSG_TYPE_ERROR, MSG_TYPE_STREAM_END};
use crate::sync::lock;

/// Settings of a [`TcpClient`].
#[derive(Debug, Clone)]
pub struct TcpClientOptions {
    /// Connections to open (default 1); calls are spread over them.
    pub connections: usize,
    /// Bound on connecting and the hello exchange (default 10 s).
    pub connect_timeout: Duration,
    /// Calls in flight per connection this client asks for (default 1024; the server
    /// may grant fewer).
    pub max_in_flight: u32,
    /// Largest reply payload accepted (default 16 MiB).
    pub max_frame: u32,
    /// A server silent this long while calls wait is dead (default 10 s); pings go out
    /// after a quarter of it.
    pub dead_peer_timeout: Duration,
    /// TLS 1.3 (default none: plaintext). The server's certificate is checked against
    /// the CA given, and against the address's host unless a name is set.
    pub tls: Option<crate::net::ClientTls>,
}

impl Default for TcpClientOptions {
    fn default() -> Self {
        Self {
            connections: 1,
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            max_frame: 16 << 20,
            dead_peer_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

impl TcpClientOptions {
    /// Connections to open.
    #[must_use]
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// Connect and hello bound.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Window per connection.
    #[must_use]
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Dead-peer bound.
    #[must_use]
    pub fn dead_peer_timeout(mut self, t: Duration) -> Self {
        self.dead_peer_timeout = t;
        self
    }

    /// Connects over TLS 1.3.
    #[must_use]
    pub fn tls(mut self, tls: crate::net::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A reply: its msg_type and payload (an error reply is returned as `Err(Rpc)` by
/// [`TcpClient::wait`], never as a reply).
type ReplyOutcome = Result<(u16, Vec<u8>)>;

/// The reading side of a connection, shared by its waiters.
#[derive(Debug, Default)]
struct Inbox {
    /// Bytes of a frame not complete yet.
    buf: Vec<u8>,
    /// Replies read for calls whose waiter has not taken them.
    parked: HashMap<u64, ReplyOutcome>,
    /// Calls sent and not answered (their waiters may not be waiting yet).
    pending: HashSet<u64>,
    /// Calls given up on: a late reply is dropped.
    abandoned: HashSet<u64>,
    /// Server-streaming calls not yet taken to their end.
    streams: HashMap<u64, StreamQueue>,
    /// Someone is reading the socket now.
    reading: bool,
    /// The connection failed: every call on it fails with this.
    dead: Option<DeadReason>,
    /// When a byte last arrived (for the ping/pong watchdog).
    last_rx: Option<Instant>,
    /// A ping sent and not answered yet (its send time).
    ping_sent: Option<Instant>,
    /// Threads asleep on `changed` (a notify is a syscall; skip it when nobody sleeps).
    sleepers: usize,
    /// Calls awaited by futures ([`TcpClient::call_async`]): woken when their reply is
    /// parked or the connection fails; the pump thread expires their deadlines.
    wakers: HashMap<u64, AsyncWait>,
    /// Futures waiting for room in the window (woken when a slot frees; the pump
    /// thread expires their deadlines).
    window_wakers: Vec<AsyncWait>,
    /// The future watching the socket through tokio's reactor, if one does (`tokio`).
    fd_watcher: Option<u64>,
}

/// What a stream's reader has not taken yet.
#[derive(Debug, Default)]
struct StreamQueue {
    events: VecDeque<StreamEvent>,
    /// The caller cancelled: items are dropped until the end arrives.
    cancelled: bool,
}

#[derive(Debug)]
enum StreamEvent {
    Item(Vec<u8>),
    End,
    Failed(Error),
}

/// What the thread reading a connection uses; only the reader touches it.
#[derive(Debug)]
struct Reader {
    /// Where bytes are received (allocated once: a fresh buffer per read would cost
    /// more than the read).
    chunk: Vec<u8>,
    /// Plaintext decrypted from `chunk` (TLS only).
    plain: Vec<u8>,
    /// The receive timeout set on the socket now.
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum DeadReason {
    /// Reset, EOF without a goaway, silence past the bound, a bad frame.
    Dead(&'static str),
    /// A graceful goaway: calls up to its `last_cid` were answered.
    Goaway(u64, String),
}

impl DeadReason {
    fn error(&self, cid: u64) -> Error {
        match self {
            Self::Dead(why) => Error::PeerDead(why),
            Self::Goaway(last, _) if cid <= *last => Error::PeerClosed,
            Self::Goaway(_, msg) => {
                Error::Refused(if msg.is_empty() { "the server said goaway" } else { leak(msg) })
            }
        }
    }
}

/// Goaway messages are few and short: keep them for `Error::Refused`'s `&'static str`.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// A future awaiting a call's reply.
#[derive(Debug)]
struct AsyncWait {
    waker: std::task::Waker,
    deadline: Option<Instant>,
}

/// The buffers a connection's writer frames and seals in, kept between calls.
#[derive(Debug, Default)]
struct WriteBufs {
    frame: Vec<u8>,
    sealed: Vec<u8>,
}

impl WriteBufs {
    /// Keeps small buffers, not the largest request ever sent.
    fn trim(&mut self) {
        for b in [&mut self.frame, &mut self.sealed] {
            if b.capacity() > 1 << 20 {
                *b = Vec::new();
            }
        }
    }
}

/// One TCP connection of a client.
#[derive(Debug)]
struct Conn {
    /// The socket's registration with tokio's reactor, made by the first future polled
    /// inside a runtime.
    #[cfg(feature = "tokio")]
    tokio_fd: Mutex<Option<reactor::Registration>>,
    sock: OwnedFd,
    index: u64,
    /// Serialises writes; holds the buffers requests are framed and sealed in (reused,
    /// so a call allocates nothing to send).
    writer: Mutex<WriteBufs>,
    inbox: Mutex<Inbox>,
    changed: Condvar,
    reader: Mutex<Reader>,
    next_seq: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: usize,
    decoder: Decoder,
    dead_peer: Duration,
    /// The TLS session, if any: the writer seals under `writer`, the reader opens under
    /// `reader`; each holds this lock only to run rustls, never across a syscall.
    tls: Option<Mutex<rustls::ClientConnection>>,
    /// The thread that reads for futures, started by the first one.
    pump: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The client was dropped: the pump ends.
    closed: std::sync::atomic::AtomicBool,
}

/// A blocking RPC client over TCP.
///
/// ```no_run
/// use std::time::Duration;
/// use tachyon::net::TcpClient;
/// # fn main() -> tachyon::Result<()> {
/// let client = TcpClient::connect("tcp://127.0.0.1:7000")?;
/// let reply = client.invoke(b"ping", 1, Some(Duration::from_secs(1)))?;
/// // Pipelined: send many, then wait for each (replies may come in any order).
/// let cids: Vec<u64> = (0..16).map(|_| client.call(b"x", 1)).collect::<Result<_, _>>()?;
/// for cid in cids {
///     client.wait_timeout(cid, Duration::from_secs(1))?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpClient {
    conns: Vec<Arc<Conn>>,
    next_conn: AtomicUsize,
    address: String,
}

impl TcpClient {
    /// Connects to `address` (`tcp://host:port`) with the default options.
    ///
    /// # Errors
    /// As [`TcpClient::connect_with`].
    pub fn connect(address: &str) -> Result<Self> {
        Self::connect_with(address, &TcpClientOptions::default())
    }

    /// Connects `opts.connections` connections and exchanges hellos.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`], [`Error::Connect`] (refused, unreachable),
    /// [`Error::Timeout`], [`Error::Refused`] (the server is full or stopping),
    /// [`Error::Protocol`] (not a Tachyon server).
    pub fn connect_with(address: &str, opts: &TcpClientOptions) -> Result<Self> {
        let parsed = Address::parse(address)?;
        if !matches!(parsed, Address::Tcp { .. }) {
            return Err(Error::InvalidAddress {
                address: address.to_owned(),
                reason: "a TCP client needs tcp://host:port",
            });
        }
        if opts.connections == 0 || opts.connections > 256 {
            return Err(Error::InvalidArgument("connections must be in 1..=256".into()));
        }
        let addrs = parsed.resolve()?;
        let Address::Tcp { host, .. } = &parsed else { unreachable!("checked above") };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let mut last = None;
        for addr in addrs {
            let conns: Result<Vec<Arc<Conn>>> = (0..opts.connections)
                .map(|i| open(addr, &host, i as u64, opts).map(Arc::new))
                .collect();
            match conns {
                Ok(conns) => {
                    return Ok(Self {
                        conns,
                        next_conn: AtomicUsize::new(0),
                        address: address.to_owned(),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::io("connect", std::io::Error::other("no address"))))
    }

    /// The address it connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Calls sent and not answered, over every connection.
    pub fn in_flight(&self) -> usize {
        self.conns.iter().map(|c| c.in_flight.load(Ordering::Relaxed)).sum()
    }

    fn conn_of(&self, cid: u64) -> Result<&Conn> {
        self.conns
            .get((cid & 0xFF) as usize)
            .map(|c| &**c)
            .ok_or_else(|| Error::Protocol(format!("correlation id {cid} is not from this client")))
    }

    /// Sends a request without waiting for room in the window: a full window fails with
    /// [`Error::Full`]. Returns the correlation id to [`wait`](Self::wait) for.
    ///
    /// # Errors
    /// [`Error::Full`], [`Error::PeerDead`], [`Error::MessageTooLarge`].
    pub fn call(&self, payload: &[u8], msg_type: u16) -> Result<u64> {
        self.send(payload, msg_type, Some(Duration::ZERO), None)
    }

    /// Like [`call`](Self::call), waiting up to `timeout` for room in the window.
    ///
    /// # Errors
    /// As [`call`](Self::call), with [`Error::Timeout`] for `Full`.
    pub fn call_timeout(&self, payload: &[u8], msg_type: u16, timeout: Duration) -> Result<u64> {
        self.send(payload, msg_type, Some(timeout), Some(timeout))
    }

    fn send(
        &self,
        payload: &[u8],
        msg_type: u16,
        wait: Option<Duration>,
        budget: Option<Duration>,
    ) -> Result<u64> {
        if msg_type == MSG_TYPE_ERROR {
            return Err(Error::InvalidArgument("msg_type 0xFFFF is the error sentinel".into()));
        }
        let n = self.conns.len();
        let start = self.next_conn.fetch_add(1, Ordering::Relaxed);
        // The first connection with room, starting round-robin; wait on the first one.
        let conn = (0..n)
            .map(|k| &self.conns[(start + k) % n])
            .find(|c| c.in_flight.load(Ordering::Relaxed) < c.max_in_flight)
            .unwrap_or(&self.conns[start % n]);
        conn.send(payload, msg_type, wait, budget)
    }

    /// Sends a oneway request (correlation id 0): the server runs the handler and sends
    /// no reply, so it takes no room in the in-flight window. `timeout` bounds the write
    /// (`None`: as long as the connection lives); a write cut short ends the connection,
    /// since the stream would no longer be framed.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], [`Error::PeerDead`], [`Error::Timeout`].
    pub fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()> {
        if msg_type == MSG_TYPE_ERROR {
            return Err(Error::InvalidArgument("msg_type 0xFFFF is the error sentinel".into()));
        }
        let n = self.conns.len();
        let start = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.conns[start % n].notify(payload, msg_type, timeout)
    }

    /// Waits (without a deadline, but never past the dead-peer bound) for the reply to
    /// `cid`.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait(&self, cid: u64) -> Result<Vec<u8>> {
        self.conn_of(cid)?.wait(cid, None).map(|(_, d)| d)
    }

    /// Waits up to `timeout` for the reply to `cid`. On a timeout the call stays in
    /// flight (wait again, or [`abandon`](Self::abandon) it).
    ///
    /// # Errors
    /// [`Error::Rpc`] for an error reply, [`Error::Timeout`], [`Error::PeerDead`],
    /// [`Error::PeerClosed`] (a server that shut down), [`Error::Protocol`].
    pub fn wait_timeout(&self, cid: u64, timeout: Duration) -> Result<Vec<u8>> {
        self.conn_of(cid)?.wait(cid, Some((Instant::now() + timeout, timeout))).map(|(_, d)| d)
    }

    /// Gives up on `cid`: a cancel frame tells the server, and a late reply is dropped.
    pub fn abandon(&self, cid: u64) {
        if let Ok(c) = self.conn_of(cid) {
            c.abandon(cid);
        }
    }

    /// Calls `msg_type` and waits for the reply, all within `timeout` (`None`: as long as
    /// the server lives). A call that times out is abandoned.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout) and [`call`](Self::call).
    pub fn invoke(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>> {
        let start = Instant::now();
        let cid =
            self.send(payload, msg_type, timeout.or(Some(Duration::from_secs(3600))), timeout)?;
        let conn = self.conn_of(cid)?;
        let left = timeout.map(|t| (start + t, t));
        let r = conn.wait(cid, left);
        if r.is_err() {
            conn.abandon(cid);
        }
        r.map(|(_, d)| d)
    }

    /// Starts a server-streaming call, waiting up to `timeout` for room in the window
    /// (`None`: as long as the server lives). Read its items with
    /// [`next_stream_item`](Self::next_stream_item); it holds its slot until its end.
    ///
    /// # Errors
    /// As [`call_timeout`](Self::call_timeout).
    pub fn call_stream(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<u64> {
        if msg_type == MSG_TYPE_ERROR || msg_type == MSG_TYPE_STREAM_END {
            return Err(Error::InvalidArgument(format!("msg_type {msg_type:#06x} is reserved")));
        }
        let n = self.conns.len();
        let start = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let conn = (0..n)
            .map(|k| &self.conns[(start + k) % n])
            .find(|c| c.in_flight.load(Ordering::Relaxed) < c.max_in_flight)
            .unwrap_or(&self.conns[start % n]);
        conn.send_as(payload, msg_type, timeout.or(Some(Duration::from_secs(3600))), None, true)
    }

    /// The next item of stream `cid`, waiting up to `timeout` (`None`: as long as the
    /// server lives); `Ok(None)` once the stream ended.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the server ended the stream with an error; [`Error::Timeout`]
    /// (the stream stays open); [`Error::PeerDead`], [`Error::PeerClosed`];
    /// [`Error::Protocol`] if `cid` is not a stream in flight on this client.
    pub fn next_stream_item(&self, cid: u64, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        self.conn_of(cid)?.next_item(cid, timeout.map(|t| (Instant::now() + t, t)))
    }

    /// Cancels stream `cid`: a cancel frame stops the server, and items still on their
    /// way are dropped.
    pub fn cancel_stream(&self, cid: u64) {
        if let Ok(c) = self.conn_of(cid) {
            c.cancel_stream(cid);
        }
    }
}

/// The caller's side of a stream on a [`TcpClient`]: what
/// [`crate::rpc::Caller::open_stream`] returns for TCP. Dropping it before the end
/// cancels the stream.
#[derive(Debug)]
pub(crate) struct TcpStream<'c> {
    pub client: &'c TcpClient,
    pub cid: u64,
    /// How long one item may take.
    pub timeout: Option<Duration>,
    pub done: bool,
}

impl StreamSource for TcpStream<'_> {
    fn next_item(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let r = self.client.next_stream_item(self.cid, self.timeout);
        // A timeout leaves the stream open; anything else ended it.
        self.done = !matches!(r, Ok(Some(_)) | Err(Error::Timeout(_)));
        r
    }
}

impl Drop for TcpStream<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.client.cancel_stream(self.cid);
        }
    }
}

impl Conn {
    /// Writes the frames in `w.frame` (sealed first over TLS, into `w.sealed`). The
    /// caller holds `writer`, which keeps frames whole and in order.
    fn flush(&self, w: &mut WriteBufs, deadline: Option<Instant>, timeout: Duration) -> Result<()> {
        let WriteBufs { frame, sealed } = w;
        let sent = match &self.tls {
            None => write_all(&self.sock, frame, deadline, timeout),
            Some(tls) => {
                sealed.clear();
                crate::net::tls::seal_client(&mut lock(tls), frame, sealed);
                write_all(&self.sock, sealed, deadline, timeout)
            }
        };
        w.trim();
        sent
    }

    /// Sends one control frame (cancel, ping, pong), best effort: a broken connection
    /// is found by the reader.
    fn send_control(&self, kind: Kind, cid: u64) {
        let mut w = lock(&self.writer);
        w.frame.clear();
        frame::push_control(&mut w.frame, kind, cid);
        let _ =
            self.flush(&mut w, Some(Instant::now() + Duration::from_millis(100)), Duration::ZERO);
    }

    fn send(
        &self,
        payload: &[u8],
        msg_type: u16,
        wait: Option<Duration>,
        budget: Option<Duration>,
    ) -> Result<u64> {
        self.send_as(payload, msg_type, wait, budget, false)
    }

    /// Sends a request (a streaming one if `stream`: its queue exists before the
    /// request leaves, so no item can arrive unclaimed).
    fn send_as(
        &self,
        payload: &[u8],
        msg_type: u16,
        wait: Option<Duration>,
        budget: Option<Duration>,
        stream: bool,
    ) -> Result<u64> {
        // The negotiated maximum applies both ways.
        let max = self.decoder.max_len();
        if payload.len() > max as usize {
            return Err(Error::MessageTooLarge { size: payload.len(), max: max as usize });
        }
        let deadline = wait.map(|t| Instant::now() + t);
        // A slot in the window, and a correlation id.
        let cid = {
            let mut inbox = lock(&self.inbox);
            loop {
                if let Some(d) = &inbox.dead {
                    return Err(d.error(u64::MAX));
                }
                if self.in_flight.load(Ordering::Relaxed) < self.max_in_flight {
                    self.in_flight.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                match deadline {
                    Some(d) if Instant::now() >= d => {
                        return Err(if wait == Some(Duration::ZERO) {
                            Error::Full { needed: 1, free: 0 }
                        } else {
                            Error::Timeout(wait.unwrap_or_default())
                        });
                    }
                    Some(d) => {
                        inbox =
                            self.sleep(inbox, Some(d.saturating_duration_since(Instant::now())));
                    }
                    None => inbox = self.sleep(inbox, None),
                }
            }
            let cid = (self.next_seq.fetch_add(1, Ordering::Relaxed) << 8) | self.index;
            inbox.pending.insert(cid);
            if stream {
                inbox.streams.insert(cid, StreamQueue::default());
            }
            cid
        };
        let budget_us =
            budget.map_or(0, |b| u32::try_from(b.as_micros()).unwrap_or(u32::MAX).max(1));
        let sent = {
            let mut w = lock(&self.writer);
            w.frame.clear();
            frame::push_message(
                &mut w.frame,
                Kind::Request,
                u32::from(msg_type),
                cid,
                budget_us,
                payload,
            );
            self.flush(&mut w, None, Duration::ZERO)
        };
        if let Err(e) = sent {
            if stream {
                lock(&self.inbox).streams.remove(&cid);
            }
            self.finish(cid);
            self.fail(DeadReason::Dead("the connection to the server broke"));
            return Err(e);
        }
        Ok(cid)
    }

    fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()> {
        let max = self.decoder.max_len();
        if payload.len() > max as usize {
            return Err(Error::MessageTooLarge { size: payload.len(), max: max as usize });
        }
        if let Some(d) = &lock(&self.inbox).dead {
            return Err(d.error(u64::MAX));
        }
        let sent = {
            let mut w = lock(&self.writer);
            w.frame.clear();
            frame::push_message(&mut w.frame, Kind::Request, u32::from(msg_type), 0, 0, payload);
            let deadline = timeout.map(|t| Instant::now() + t);
            self.flush(&mut w, deadline, timeout.unwrap_or_default())
        };
        if sent.is_err() {
            self.fail(DeadReason::Dead("a oneway request could not be written whole"));
        }
        sent
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        for c in &self.conns {
            c.closed.store(true, Ordering::Release);
            let _ = rustix::net::shutdown(c.sock.as_fd(), rustix::net::Shutdown::Both);
            c.changed.notify_all();
        }
        for c in &self.conns {
            if let Some(t) = lock(&c.pump).take() {
                let _ = t.join();
            }
        }
    }
}
