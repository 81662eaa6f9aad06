//! [`RawTcpServer`]: plain TCP byte streams (no frames, no RPC) served by the same
//! reactors as the RPC transport, for code that speaks its own protocol (the Node
//! package's `createTcpServer` and `UringTcpServer` sit on it).
//!
//! What arrives goes to the consumer as [`RawEvent`]s, gathered per reactor loop turn and
//! handed over in one batch, on the reactor thread. The consumer writes back through the
//! [`RawServerHandle`], from any thread.
//!
//! **Backpressure, never loss.** Each connection may have at most
//! [`RawServerOptions::high_water`] bytes delivered and not yet [`consumed`]: past that
//! its receiving pauses (the kernel's socket buffer fills, and TCP's flow control slows
//! the sender) until the consumer catches up. A slow consumer therefore slows its
//! sender down; the server's memory stays bounded and no byte is dropped.
//!
//! [`consumed`]: RawServerHandle::consumed

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::net::reactor::probe::{self, Backend};
use crate::net::reactor::service::TcpStats;
use crate::net::reactor::service::{Common, ConnId, Mailbox, Service, Session};
use crate::net::reactor::socket::{listener, local_addr, resolve_bind};
use crate::net::reactor::waker::Waker;
use crate::net::TcpStatsSnapshot;
use crate::sync::lock;

/// Settings of a [`RawTcpServer`].
#[derive(Clone)]
pub struct RawServerOptions {
    /// Which I/O backend (default: io_uring where available, else epoll).
    pub backend: Backend,
    /// Most connections at once (default 1024); more are closed at once.
    pub max_connections: usize,
    /// Bytes a connection may have delivered and not consumed before its receiving
    /// pauses (default 1 MiB).
    pub high_water: usize,
    /// Close a connection that sends and receives nothing for this long (default: never).
    pub idle_timeout: Option<Duration>,
    /// Allow binding an address other than loopback. Raw streams have no TLS: anyone
    /// who reaches the port talks to the consumer.
    pub insecure: bool,
    /// `TCP_USER_TIMEOUT` and keepalive bound on a dead peer (default 10 s).
    pub dead_peer_timeout: Duration,
    /// Where server-side problems go (default: a `tracing` warning).
    pub on_error: Arc<dyn Fn(&Error) + Send + Sync>,
}

impl Default for RawServerOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            max_connections: 1024,
            high_water: 1 << 20,
            idle_timeout: None,
            insecure: false,
            dead_peer_timeout: Duration::from_secs(10),
            on_error: Arc::new(|e| tracing::warn!(target: "tachyon", "raw tcp server: {e}")),
        }
    }
}

impl std::fmt::Debug for RawServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawServerOptions")
            .field("backend", &self.backend)
            .field("max_connections", &self.max_connections)
            .field("high_water", &self.high_water)
            .field("idle_timeout", &self.idle_timeout)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// What happened on a connection. `conn` identifies it in [`RawServerHandle`] calls;
/// an id is never reused while its connection is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// A client connected.
    Open {
        /// The connection.
        conn: u64,
        /// The client's address.
        peer: Option<SocketAddr>,
    },
    /// Bytes arrived, in order. Call [`RawServerHandle::consumed`] once they are dealt
    /// with, or the connection's receiving pauses at the high-water mark.
    Data {
        /// The connection.
        conn: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The connection closed (the client left, [`RawServerHandle::end`] or
    /// [`RawServerHandle::destroy`] finished, or the server stopped). Nothing follows.
    Close {
        /// The connection.
        conn: u64,
    },
}

/// What the handle posts to the reactor.
#[derive(Debug)]
pub(crate) enum Command {
    Send(ConnId, Vec<u8>),
    End(ConnId),
    Destroy(ConnId),
    Consumed(ConnId, usize),
}

fn public_id(id: ConnId) -> u64 {
    (u64::from(id.generation) << 32) | id.slot as u64
}

fn conn_id(conn: u64) -> ConnId {
    ConnId { slot: (conn & 0xFFFF_FFFF) as usize, generation: (conn >> 32) as u32 }
}

/// Counters of a raw server beyond [`TcpStats`].
#[derive(Debug, Default)]
struct RawCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pauses: AtomicU64,
}

/// A snapshot of a raw server's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawStats {
    /// Connections accepted, refused, open now.
    pub connections: TcpStatsSnapshot,
    /// Bytes received from clients.
    pub bytes_received: u64,
    /// Bytes sent to clients.
    pub bytes_sent: u64,
    /// Times a connection's receiving paused because its consumer lagged.
    pub pauses: u64,
}

/// One connection: bytes queued to send, and the count of bytes delivered and not
/// consumed.
struct RawConn {
    id: ConnId,
    output: Vec<u8>,
    spare: Vec<u8>,
    unconsumed: usize,
    high_water: usize,
    /// Close once the output is sent (`end`, shutdown); what is sent after is dropped.
    ending: bool,
    /// The client sent EOF: close once the consumer has dealt with everything delivered
    /// (its answers still go out) and the output is sent.
    peer_done: bool,
    paused: bool,
    idle: Option<Duration>,
    last_active: Instant,
    /// Counters not yet added to the server's: bytes in, bytes out, pauses.
    unreported: (u64, u64, u64),
}

impl Session for RawConn {
    fn output(&self) -> &[u8] {
        &self.output
    }

    fn sent(&mut self, n: usize) {
        self.output.drain(..n);
        self.unreported.1 += n as u64;
        self.last_active = Instant::now();
    }

    fn take_output(&mut self) -> Vec<u8> {
        let out = std::mem::replace(&mut self.output, std::mem::take(&mut self.spare));
        self.unreported.1 += out.len() as u64;
        self.last_active = Instant::now();
        out
    }

    fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= 1 << 20 && buf.capacity() > self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }

    fn is_closing(&self) -> bool {
        self.ending || (self.peer_done && self.unconsumed == 0)
    }

    fn wants_read(&mut self) -> bool {
        let room = self.unconsumed < self.high_water;
        if !room && !self.paused {
            self.unreported.2 += 1;
        }
        self.paused = !room;
        room && !self.ending && !self.peer_done
    }

    fn check_timeouts(&mut self, now: Instant) {
        if self.idle.is_some_and(|t| now.duration_since(self.last_active) >= t) {
            self.output.clear();
            self.ending = true;
        }
    }

    fn shutdown(&mut self) {
        self.ending = true;
    }

    /// The client sent EOF: once the consumer has consumed what was delivered, send
    /// what is queued (its answers included), then close (Node's default for a socket
    /// that does not allow half-open connections).
    fn on_eof(&mut self) -> bool {
        self.peer_done = true;
        self.output.is_empty() && self.unconsumed == 0
    }
}

/// The raw-stream service of a reactor.
struct RawService {
    common: Common,
    high_water: usize,
    idle: Option<Duration>,
    counters: Arc<RawCounters>,
    sink: Box<dyn Fn(Vec<RawEvent>) + Send + Sync>,
    mailbox: Arc<OnceLock<Arc<Mailbox<Command>>>>,
}

impl Service for RawService {
    type Session = RawConn;
    type Message = Command;
    type Turn = Vec<RawEvent>;

    fn common(&self) -> &Common {
        &self.common
    }

    fn started(&self, mailbox: &Arc<Mailbox<Command>>) {
        let _ = self.mailbox.set(mailbox.clone());
    }

    fn admit(
        &self,
        id: ConnId,
        fd: &OwnedFd,
        _: &Arc<Mailbox<Command>>,
        events: &mut Vec<RawEvent>,
    ) -> Option<RawConn> {
        let peer =
            rustix::net::getpeername(fd).ok().flatten().and_then(|a| SocketAddr::try_from(a).ok());
        events.push(RawEvent::Open { conn: public_id(id), peer });
        Some(RawConn {
            id,
            output: Vec::new(),
            spare: Vec::new(),
            unconsumed: 0,
            high_water: self.high_water,
            ending: false,
            peer_done: false,
            paused: false,
            idle: self.idle,
            last_active: Instant::now(),
            unreported: (0, 0, 0),
        })
    }

    fn on_bytes(
        &self,
        c: &mut RawConn,
        id: ConnId,
        _: &Arc<Mailbox<Command>>,
        events: &mut Vec<RawEvent>,
        bytes: &[u8],
    ) {
        c.unconsumed += bytes.len();
        c.unreported.0 += bytes.len() as u64;
        c.last_active = Instant::now();
        events.push(RawEvent::Data { conn: public_id(id), data: bytes.to_vec() });
    }

    fn target(command: &Command) -> ConnId {
        match command {
            Command::Send(id, _)
            | Command::End(id)
            | Command::Destroy(id)
            | Command::Consumed(id, _) => *id,
        }
    }

    fn deliver(&self, c: &mut RawConn, command: Command) {
        match command {
            Command::Send(_, data) if !c.ending => {
                c.output.extend_from_slice(&data);
                c.last_active = Instant::now();
            }
            Command::Send(..) => {}
            Command::End(_) => c.ending = true,
            Command::Destroy(_) => {
                c.output.clear();
                c.ending = true;
            }
            Command::Consumed(_, n) => c.unconsumed = c.unconsumed.saturating_sub(n),
        }
    }

    fn report(&self, c: &mut RawConn) {
        let (i, o, p) = std::mem::take(&mut c.unreported);
        if i > 0 {
            self.counters.bytes_in.fetch_add(i, Ordering::Relaxed);
        }
        if o > 0 {
            self.counters.bytes_out.fetch_add(o, Ordering::Relaxed);
        }
        if p > 0 {
            self.counters.pauses.fetch_add(p, Ordering::Relaxed);
        }
    }

    fn on_close(&self, c: &mut RawConn, _: BorrowedFd<'_>, events: &mut Vec<RawEvent>) {
        self.report(c);
        events.push(RawEvent::Close { conn: public_id(c.id) });
    }

    fn turn_end(&self, events: &mut Vec<RawEvent>) {
        let batch = std::mem::take(events);
        if !batch.is_empty() {
            (self.sink)(batch);
        }
    }
}

/// A bound raw TCP server, not yet serving.
///
/// ```no_run
/// use tachyon::net::{RawEvent, RawServerOptions, RawTcpServer};
/// # fn main() -> tachyon::Result<()> {
/// let server = RawTcpServer::bind("tcp://127.0.0.1:0", RawServerOptions::default())?;
/// let handle = server.spawn_with(|handle, events| {
///     for e in events {
///         if let RawEvent::Data { conn, data } = e {
///             handle.consumed(conn, data.len());
///             handle.send(conn, data); // an echo
///         }
///     }
/// })?;
/// # handle.shutdown()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RawTcpServer {
    listener: OwnedFd,
    local: SocketAddr,
    backend: Backend,
    opts: RawServerOptions,
}

impl RawTcpServer {
    /// Binds `address` (`tcp://host:port`; port 0 picks one). A non-loopback address
    /// needs [`RawServerOptions::insecure`].
    ///
    /// # Errors
    /// [`Error::InvalidAddress`], [`Error::InvalidArgument`], [`Error::PermissionDenied`],
    /// [`Error::AddrInUse`], [`Error::Unsupported`] (io_uring forced but unavailable).
    pub fn bind(address: &str, opts: RawServerOptions) -> Result<Self> {
        if opts.max_connections == 0 || opts.high_water == 0 {
            return Err(Error::InvalidArgument(
                "max_connections and high_water must be at least 1".into(),
            ));
        }
        let addr = resolve_bind(address)?;
        if !addr.ip().is_loopback() && !opts.insecure {
            return Err(Error::PermissionDenied(format!(
                "{addr} is reachable from other machines and raw streams have no TLS: pass \
                 insecure to serve it anyway"
            )));
        }
        let backend = probe::choose(opts.backend)?;
        let listener = listener(addr)?;
        let local = local_addr(&listener)?;
        if !local.ip().is_loopback() {
            tracing::warn!(target: "tachyon", "raw tcp server on {local} accepts connections from other machines, without TLS");
        }
        Ok(Self { listener, local, backend, opts })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The backend its reactor runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts the reactor thread; `on_events` gets each loop turn's events, on that
    /// thread.
    ///
    /// # Errors
    /// [`Error::Io`] if the reactor cannot be set up.
    pub fn spawn(
        self,
        on_events: impl Fn(Vec<RawEvent>) + Send + Sync + 'static,
    ) -> Result<RawServerHandle> {
        let stats = Arc::new(TcpStats::default());
        let counters = Arc::new(RawCounters::default());
        let mailbox = Arc::new(OnceLock::new());
        let service = Arc::new(RawService {
            common: Common {
                stopping: AtomicBool::new(false),
                stats: stats.clone(),
                max_connections: self.opts.max_connections,
                dead_peer: self.opts.dead_peer_timeout,
                on_error: self.opts.on_error.clone(),
            },
            high_water: self.opts.high_water,
            idle: self.opts.idle_timeout,
            counters: counters.clone(),
            sink: Box::new(on_events),
            mailbox: mailbox.clone(),
        });
        let waker = Waker::new()?;
        let (backend, listener) = (self.backend, self.listener);
        let thread = {
            let (service, waker) = (service.clone(), waker.clone());
            std::thread::Builder::new()
                .name("tachyon-raw-tcp".into())
                .spawn(move || match backend {
                    Backend::IoUring => {
                        crate::net::reactor::uring::run(&listener, &*service, &waker)
                    }
                    _ => crate::net::reactor::epoll::run(&listener, &*service, &waker),
                })
                .map_err(|e| Error::io("spawn a reactor thread", e))?
        };
        Ok(RawServerHandle(Arc::new(Inner {
            service,
            mailbox,
            waker,
            thread: Mutex::new(Some(thread)),
            local: self.local,
            backend,
            stats,
            counters,
        })))
    }

    /// As [`RawTcpServer::spawn`], with the handle passed to `on_events` too (to answer
    /// from the reactor thread).
    ///
    /// # Errors
    /// As [`RawTcpServer::spawn`].
    pub fn spawn_with(
        self,
        on_events: impl Fn(&RawServerHandle, Vec<RawEvent>) + Send + Sync + 'static,
    ) -> Result<RawServerHandle> {
        let slot: Arc<OnceLock<RawServerHandle>> = Arc::new(OnceLock::new());
        let seen = slot.clone();
        let handle = self.spawn(move |events| {
            // The handle is set right after spawn returns; a batch before that waits.
            let h = loop {
                if let Some(h) = seen.get() {
                    break h;
                }
                std::thread::yield_now();
            };
            on_events(h, events);
        })?;
        let _ = slot.set(handle.clone());
        Ok(handle)
    }
}

struct Inner {
    service: Arc<RawService>,
    mailbox: Arc<OnceLock<Arc<Mailbox<Command>>>>,
    waker: Waker,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    local: SocketAddr,
    backend: Backend,
    stats: Arc<TcpStats>,
    counters: Arc<RawCounters>,
}

impl Drop for Inner {
    /// The last handle gone: stop the reactor (not from the reactor thread itself).
    fn drop(&mut self) {
        self.service.common.stopping.store(true, Ordering::SeqCst);
        self.waker.wake();
        if let Some(t) = lock(&self.thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// A running raw server: write to its connections from any thread. Clones share it;
/// [`RawServerHandle::shutdown`] stops it.
#[derive(Clone)]
pub struct RawServerHandle(Arc<Inner>);

impl std::fmt::Debug for RawServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawServerHandle").field("local", &self.0.local).finish_non_exhaustive()
    }
}

impl RawServerHandle {
    fn post(&self, command: Command) {
        // The reactor sets its mailbox before it accepts anything, so any connection
        // the caller knows of has one to post to.
        if let Some(m) = self.0.mailbox.get() {
            m.push(command);
        }
    }

    /// Queues `data` to send on `conn` (dropped if it closed, or is ending).
    pub fn send(&self, conn: u64, data: Vec<u8>) {
        if !data.is_empty() {
            self.post(Command::Send(conn_id(conn), data));
        }
    }

    /// Closes `conn` once what is queued is sent.
    pub fn end(&self, conn: u64) {
        self.post(Command::End(conn_id(conn)));
    }

    /// Closes `conn` now, dropping what is queued.
    pub fn destroy(&self, conn: u64) {
        self.post(Command::Destroy(conn_id(conn)));
    }

    /// Says `n` bytes delivered on `conn` were dealt with (resumes a paused receive).
    pub fn consumed(&self, conn: u64, n: usize) {
        if n > 0 {
            self.post(Command::Consumed(conn_id(conn), n));
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The backend the reactor runs.
    pub fn backend(&self) -> Backend {
        self.0.backend
    }

    /// The counters now.
    pub fn stats(&self) -> RawStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RawStats {
            connections: self.0.stats.snapshot(),
            bytes_received: l(&self.0.counters.bytes_in),
            bytes_sent: l(&self.0.counters.bytes_out),
            pauses: l(&self.0.counters.pauses),
        }
    }

    /// Stops: no more connections; every open one sends what is queued (up to a few
    /// seconds) and closes, each with its `Close` event. Idempotent.
    ///
    /// # Errors
    /// The error the reactor ended with, if any.
    pub fn shutdown(&self) -> Result<()> {
        self.0.service.common.stopping.store(true, Ordering::SeqCst);
        self.0.waker.wake();
        let thread = lock(&self.0.thread).take();
        match thread {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::io("raw reactor thread", std::io::Error::other("panicked")))
            }),
            None => Ok(()),
        }
    }
}
