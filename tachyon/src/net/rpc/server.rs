//! [`TcpServer`]: the RPC server over TCP. Reactor threads (one by default), each with
//! its own `SO_REUSEPORT` listener, serve every connection through the same
//! [`Dispatcher`] as the shared-memory server, inline on the reactor (or, opted into
//! with [`TcpServerOptions::workers`], on a pool for slow handlers): no thread per
//! client. io_uring drives the I/O where the kernel allows it (multishot accept,
//! multishot receive into a provided buffer ring, replies coalesced per loop turn);
//! epoll does where it does not, with the same behaviour.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::net::reactor::probe::{self, Backend};
use crate::net::reactor::service::{Common, Service, TcpStats};
use crate::net::reactor::socket::{listener, local_addr, peer_of, resolve_bind};
use crate::net::rpc::conn::{Conn, Inline, Limits};
use crate::net::rpc::deferred::{DeferredCall, DeferredHandler, Replier};
use crate::net::rpc::frame::{Goaway, GoawayCode};
use crate::net::rpc::pool::{ConnId, Done, Finished, JobCtl, Offload, Pool};
use crate::net::tls::ServerSession;
pub use crate::net::tls::ServerTls;
use crate::rpc::Dispatcher;

/// Settings of a [`TcpServer`].
#[derive(Clone)]
pub struct TcpServerOptions {
    /// Reactor threads (default 1), each with its own listener (`SO_REUSEPORT`).
    pub reactors: usize,
    /// Worker threads for handlers (default 0: handlers run inline on the reactor, the
    /// fastest for quick handlers). Give slow or blocking handlers a pool, so the
    /// reactor keeps serving other calls and answering pings meanwhile.
    pub workers: usize,
    /// Threads that run server-streaming handlers when `workers` is 0 (default 4): at
    /// most this many streams run at once, more wait their turn. With workers, streams
    /// run on them.
    pub stream_workers: usize,
    /// A stream whose client takes no item for this long (default 30 s) is ended with
    /// `DEADLINE_EXCEEDED`, freeing its worker.
    pub stream_stall_timeout: Duration,
    /// Most connections at once (default 1024); more get a goaway and are closed.
    pub max_connections: usize,
    /// Largest frame payload accepted (default 16 MiB; the hello negotiates it down).
    pub max_frame: u32,
    /// Most calls a client may have in flight on one connection (default 1024).
    pub max_in_flight: u32,
    /// How long a new connection may take to send its hello (default 5 s).
    pub hello_timeout: Duration,
    /// How long a frame may stay half-received (default 30 s): slowloris defence.
    pub read_timeout: Duration,
    /// Stop reading from a client whose unsent replies pass this many bytes (4 MiB)...
    pub high_water: usize,
    /// ...and read again below this many (1 MiB).
    pub low_water: usize,
    /// Which I/O backend (default: io_uring where available, else epoll).
    pub backend: Backend,
    /// Allow binding an address other than loopback (default false: a server reachable
    /// from other machines must be asked for).
    pub allow_remote: bool,
    /// `TCP_USER_TIMEOUT` and keepalive bound on a dead peer (default 10 s).
    pub dead_peer_timeout: Duration,
    /// Where connection-level problems go (default: a `tracing` warning).
    pub on_error: Arc<dyn Fn(&Error) + Send + Sync>,
    /// TLS 1.3 (default none: plaintext). With a client CA, mutual TLS: clients without
    /// a certificate it signed are refused, and handlers see who called through
    /// [`crate::net::peer_identity`].
    pub tls: Option<ServerTls>,
    /// Runs around each batch of requests a reactor takes from one receive (default
    /// none). A binding whose handlers need an interpreter lock takes it here, once per
    /// batch instead of once per request.
    pub batch_scope: Option<BatchScope>,
    /// Hands every unary request, in batches per reactor loop turn, to a handler that
    /// answers later from any thread (default none: the dispatcher answers). For
    /// bindings whose handlers run on an event loop; streaming methods still run on the
    /// dispatcher.
    pub deferred: Option<DeferredHandler>,
    /// A unary call on a worker or with the deferred handler that is not answered
    /// within this (checked every 100 ms) is answered `HANDLER_ERROR`, and its late
    /// answer dropped (default none: the caller's own deadline bounds its wait). A
    /// worker cannot be interrupted: a stuck handler keeps its thread.
    pub handler_timeout: Option<Duration>,
}

/// See [`TcpServerOptions::batch_scope`]: called with the batch's work, which it must run
/// exactly once.
pub type BatchScope = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

impl Default for TcpServerOptions {
    fn default() -> Self {
        Self {
            reactors: 1,
            workers: 0,
            stream_workers: 4,
            stream_stall_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_frame: 16 << 20,
            max_in_flight: 1024,
            hello_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            high_water: 4 << 20,
            low_water: 1 << 20,
            backend: Backend::Auto,
            allow_remote: false,
            dead_peer_timeout: Duration::from_secs(10),
            on_error: Arc::new(|e| tracing::warn!(target: "tachyon", "tcp server: {e}")),
            tls: None,
            batch_scope: None,
            deferred: None,
            handler_timeout: None,
        }
    }
}

impl std::fmt::Debug for TcpServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServerOptions")
            .field("reactors", &self.reactors)
            .field("workers", &self.workers)
            .field("stream_workers", &self.stream_workers)
            .field("stream_stall_timeout", &self.stream_stall_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_frame", &self.max_frame)
            .field("max_in_flight", &self.max_in_flight)
            .field("backend", &self.backend)
            .field("allow_remote", &self.allow_remote)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl TcpServerOptions {
    /// Reactor threads.
    #[must_use]
    pub fn reactors(mut self, n: usize) -> Self {
        self.reactors = n;
        self
    }

    /// Worker threads for handlers (0: inline on the reactors).
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Threads for streaming handlers on a server without workers, and how long a
    /// stream may wait for its client to take an item.
    #[must_use]
    pub fn streams(mut self, workers: usize, stall_timeout: Duration) -> Self {
        self.stream_workers = workers;
        self.stream_stall_timeout = stall_timeout;
        self
    }

    /// Connection limit.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Largest frame payload.
    #[must_use]
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Calls in flight per connection.
    #[must_use]
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Hello and read timeouts.
    #[must_use]
    pub fn timeouts(mut self, hello: Duration, read: Duration) -> Self {
        self.hello_timeout = hello;
        self.read_timeout = read;
        self
    }

    /// The backend to use.
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Allows serving plaintext on a non-loopback address (reachable from other
    /// machines): anyone who can reach the port can call every handler and read every
    /// reply. A TLS server needs no such permission.
    #[must_use]
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// The same as [`TcpServerOptions::allow_remote`], by the name the bindings use.
    #[must_use]
    pub fn insecure(self, insecure: bool) -> Self {
        self.allow_remote(insecure)
    }

    /// Runs each received batch of requests inside `scope` (see
    /// [`TcpServerOptions::batch_scope`]).
    #[must_use]
    pub fn batch_scope(mut self, scope: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) -> Self {
        self.batch_scope = Some(Arc::new(scope));
        self
    }

    /// Hands unary requests to `handler` in batches (see [`TcpServerOptions::deferred`]).
    #[must_use]
    pub fn deferred(mut self, handler: impl Fn(Vec<DeferredCall>) + Send + Sync + 'static) -> Self {
        self.deferred = Some(Arc::new(handler));
        self
    }

    /// Answers calls their handler has not answered within `timeout` with
    /// `HANDLER_ERROR` (see [`TcpServerOptions::handler_timeout`]).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }

    /// Serves TLS 1.3 (mutual TLS when `tls` names a client CA).
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Backpressure marks.
    #[must_use]
    pub fn water_marks(mut self, high: usize, low: usize) -> Self {
        self.high_water = high;
        self.low_water = low.min(high);
        self
    }

    /// Where connection-level problems go.
    #[must_use]
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Arc::new(f);
        self
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            max_in_flight: self.max_in_flight,
            hello_timeout: self.hello_timeout,
            read_timeout: self.read_timeout,
            high_water: self.high_water,
            low_water: self.low_water,
            handler_timeout: self.handler_timeout,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_owned()));
        if self.reactors == 0 || self.reactors > 64 {
            return bad("reactors must be in 1..=64");
        }
        if self.workers > 1024 {
            return bad("workers must be at most 1024");
        }
        if self.stream_workers == 0 || self.stream_workers > 1024 {
            return bad("stream_workers must be in 1..=1024");
        }
        if self.stream_stall_timeout.is_zero() {
            return bad("stream_stall_timeout must be more than zero");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_frame == 0 || self.max_frame > crate::net::rpc::frame::MAX_FRAME_LIMIT {
            return bad("max_frame must be in 1..=1 GiB");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        Ok(())
    }
}

/// A snapshot of a TCP server's counters (the same shape as a shared-memory server's).
pub type TcpStatsSnapshot = crate::ServerStats;

/// What every reactor of a server shares: the RPC service.
pub(crate) struct Shared {
    pub common: Common,
    pub opts: TcpServerOptions,
    pub dispatcher: Arc<Dispatcher>,
    /// The worker pool, if the options asked for one or the dispatcher streams.
    pub pool: Option<Pool>,
}

impl Service for Shared {
    type Session = Conn;
    type Message = Done;
    /// Deferred calls gathered this loop turn.
    type Turn = Vec<DeferredCall>;

    fn common(&self) -> &Common {
        &self.common
    }

    /// A connection for a client just accepted (`None`, reported, if its TLS session
    /// cannot start).
    fn admit(
        &self,
        _: ConnId,
        fd: &OwnedFd,
        _: &Arc<Finished>,
        _: &mut Vec<DeferredCall>,
    ) -> Option<Conn> {
        let now = std::time::Instant::now();
        let limits = self.opts.limits();
        tracing::event!(name: "accepted", target: "tachyon", tracing::Level::INFO,
            transport = "tcp", peer = %peer_of(fd), tls = self.opts.tls.is_some(),
            "accepted a TCP connection from {}", peer_of(fd));
        match &self.opts.tls {
            None => Some(Conn::new(limits, now)),
            Some(tls) => match ServerSession::new(tls) {
                Ok(s) => Some(Conn::with_tls(limits, now, s)),
                Err(e) => {
                    self.report_error(&e);
                    None
                }
            },
        }
    }

    /// Feeds bytes a connection received to it, dispatching inline or on the pool.
    fn on_bytes(
        &self,
        conn: &mut Conn,
        id: ConnId,
        finished: &Arc<Finished>,
        batch: &mut Vec<DeferredCall>,
        bytes: &[u8],
    ) {
        let now = std::time::Instant::now();
        if self.opts.deferred.is_some() {
            let mut h = Deferring { shared: self, conn: id, finished, batch };
            return conn.on_bytes(bytes, now, &mut h);
        }
        match &self.pool {
            None => match &self.opts.batch_scope {
                Some(scope) => {
                    scope(&mut || conn.on_bytes(bytes, now, &mut Inline(self.dispatcher.as_ref())));
                }
                None => conn.on_bytes(bytes, now, &mut Inline(self.dispatcher.as_ref())),
            },
            Some(pool) => conn.on_bytes(
                bytes,
                now,
                &mut Offload {
                    pool,
                    dispatcher: &self.dispatcher,
                    streams_only: self.opts.workers == 0,
                    conn: id,
                    finished,
                },
            ),
        }
    }

    fn target(d: &Done) -> ConnId {
        d.conn
    }

    fn deliver(&self, conn: &mut Conn, d: Done) {
        conn.finished(d.correlation_id, d.type_id, &d.response, d.last);
    }

    fn report(&self, conn: &mut Conn) {
        let stats = &self.common.stats;
        let (req, paused) = (conn.counts.requests, conn.counts.paused);
        let (seen_req, seen_paused) = conn.reported;
        stats.requests.add(req - seen_req);
        stats.paused.add(paused - seen_paused);
        conn.reported = (req, paused);
        for (code, n) in conn.counts.errors.drain(..) {
            stats.errors(code, n);
        }
    }

    /// Counts and reports a connection closed for breaking the protocol.
    fn on_close(
        &self,
        conn: &mut Conn,
        fd: std::os::fd::BorrowedFd<'_>,
        _: &mut Vec<DeferredCall>,
    ) {
        self.report(conn);
        if let Some(c) = conn.closing() {
            if c.code != GoawayCode::Shutdown {
                self.common.stats.protocol_errors.add(1);
                let peer = rustix::net::getpeername(fd)
                    .ok()
                    .flatten()
                    .and_then(|a| SocketAddr::try_from(a).ok());
                let who = peer.map_or_else(|| "a client".to_owned(), |p| p.to_string());
                self.report_error(&Error::Protocol(format!(
                    "closed the connection of {who}: {}",
                    c.reason
                )));
            }
        }
    }

    fn turn_end(&self, batch: &mut Vec<DeferredCall>) {
        if let Some(handler) = &self.opts.deferred {
            let batch = std::mem::take(batch);
            if !batch.is_empty() {
                handler(batch);
            }
        }
    }

    /// A client over the connection limit is told so in a goaway.
    fn refuse(&self, fd: &OwnedFd) {
        tracing::event!(name: "refused", target: "tachyon", tracing::Level::WARN,
            transport = "tcp", peer = %peer_of(fd), reason = "connection limit",
            "refused a TCP connection from {}: the server is at its connection limit", peer_of(fd));
        let bye = Goaway {
            last_cid: 0,
            code: GoawayCode::TooManyConnections,
            message: "the server is at its connection limit".into(),
        };
        let _ = rustix::net::send(
            fd,
            &bye.frame(),
            rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
        );
    }
}

/// The handler of a server with a deferred handler: unary requests become
/// [`DeferredCall`]s for this loop turn's batch; streams run on the pool.
struct Deferring<'a> {
    shared: &'a Shared,
    conn: ConnId,
    finished: &'a Arc<Finished>,
    /// This loop turn's batch.
    batch: &'a mut Vec<DeferredCall>,
}

impl crate::net::rpc::conn::Handler for Deferring<'_> {
    fn request(
        &mut self,
        h: &crate::net::rpc::frame::Header,
        payload: &[u8],
        response: &mut Vec<u8>,
    ) -> crate::net::rpc::conn::Answer {
        let mt = h.msg_type();
        if self.shared.dispatcher.is_stream(mt) {
            if let Some(pool) = &self.shared.pool {
                return Offload {
                    pool,
                    dispatcher: &self.shared.dispatcher,
                    streams_only: true,
                    conn: self.conn,
                    finished: self.finished,
                }
                .request(h, payload, response);
            }
        }
        let deadline = (h.deadline_us > 0)
            .then(|| std::time::Instant::now() + Duration::from_micros(u64::from(h.deadline_us)));
        let ctl = Arc::new(JobCtl::new(false));
        let reply_to = (h.correlation_id != crate::rpc::ONEWAY_CID).then(|| Replier {
            conn: self.conn,
            correlation_id: h.correlation_id,
            type_id: h.type_id,
            finished: self.finished.clone(),
            ctl: ctl.clone(),
        });
        let call = DeferredCall::new(mt, payload, deadline, reply_to);
        self.batch.push(call);
        crate::net::rpc::conn::Answer::Later(ctl)
    }
}

/// A bound TCP RPC server.
///
/// ```no_run
/// use std::sync::Arc;
/// use tachyon::net::{TcpServer, TcpServerOptions};
/// use tachyon::rpc::Dispatcher;
/// # fn main() -> tachyon::Result<()> {
/// let mut d = Dispatcher::new();
/// d.register_raw(1, "echo", |r: &[u8]| r.to_vec()).unwrap();
/// let server = TcpServer::bind("tcp://127.0.0.1:7000", TcpServerOptions::default())?;
/// let handle = server.spawn(Arc::new(d))?;
/// // ... later: answer what arrived, say goaway, close
/// handle.shutdown()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpServer {
    listeners: Vec<OwnedFd>,
    local: SocketAddr,
    backend: Backend,
    opts: TcpServerOptions,
}

impl TcpServer {
    /// Binds `address` (`tcp://host:port`, or `host:port`; port 0 picks a free one).
    /// A non-loopback address needs [`TcpServerOptions::allow_remote`].
    ///
    /// # Errors
    /// [`Error::InvalidAddress`], [`Error::InvalidArgument`] (bad options),
    /// [`Error::PermissionDenied`] (a remote address without `allow_remote`),
    /// [`Error::AddrInUse`], [`Error::Unsupported`] (io_uring forced but unavailable),
    /// [`Error::Io`].
    pub fn bind(address: &str, opts: TcpServerOptions) -> Result<Self> {
        opts.validate()?;
        let first = resolve_bind(address)?;
        if !first.ip().is_loopback() && !opts.allow_remote && opts.tls.is_none() {
            return Err(Error::PermissionDenied(format!(
                "{first} is reachable from other machines and this server has no TLS: give it \
                 TcpServerOptions::tls, or pass insecure(true) to serve plaintext anyway"
            )));
        }
        let backend = probe::choose(opts.backend)?;
        let fd = listener(first)?;
        let local = local_addr(&fd)?;
        let mut listeners = vec![fd];
        for _ in 1..opts.reactors {
            listeners.push(listener(local)?);
        }
        if !local.ip().is_loopback() && opts.tls.is_none() {
            tracing::warn!(target: "tachyon", "tcp server on {local} serves plaintext to other machines (insecure): anyone who reaches it can call every handler");
        }
        Ok(Self { listeners, local, backend, opts })
    }

    /// The bound address (with the port the kernel picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The backend its reactors run.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts the reactor threads, serving `dispatcher` until the handle stops them.
    ///
    /// # Errors
    /// [`Error::Io`] if a reactor cannot be set up (an io_uring the kernel refuses).
    pub fn spawn(self, dispatcher: Arc<Dispatcher>) -> Result<TcpServerHandle> {
        let stats = Arc::new(TcpStats::default());
        let stall = self.opts.stream_stall_timeout;
        let pool = match self.opts.workers {
            _ if self.opts.deferred.is_some() && dispatcher.has_streams() => {
                Some(Pool::start(self.opts.stream_workers, &dispatcher, stall)?)
            }
            _ if self.opts.deferred.is_some() => None,
            0 if dispatcher.has_streams() => {
                Some(Pool::start(self.opts.stream_workers, &dispatcher, stall)?)
            }
            0 => None,
            n => Some(Pool::start(n, &dispatcher, stall)?),
        };
        let shared = Arc::new(Shared {
            common: Common {
                stopping: AtomicBool::new(false),
                stats: stats.clone(),
                max_connections: self.opts.max_connections,
                dead_peer: self.opts.dead_peer_timeout,
                on_error: self.opts.on_error.clone(),
            },
            opts: self.opts.clone(),
            dispatcher,
            pool,
        });
        let mut wakers = Vec::new();
        let mut threads = Vec::new();
        for (i, fd) in self.listeners.into_iter().enumerate() {
            let waker = crate::net::reactor::waker::Waker::new()?;
            wakers.push(waker.clone());
            let shared = shared.clone();
            let backend = self.backend;
            let t = std::thread::Builder::new()
                .name(format!("tachyon-tcp-{i}"))
                .spawn(move || match backend {
                    Backend::IoUring => crate::net::reactor::uring::run(&fd, &*shared, &waker),
                    _ => crate::net::reactor::epoll::run(&fd, &*shared, &waker),
                })
                .map_err(|e| Error::io("spawn a reactor thread", e))?;
            threads.push(t);
        }
        Ok(TcpServerHandle {
            shared,
            wakers,
            threads,
            local: self.local,
            backend: self.backend,
            stats,
        })
    }
}

/// A running server. [`TcpServerHandle::shutdown`] stops it gracefully; dropping the
/// handle does the same.
pub struct TcpServerHandle {
    shared: Arc<Shared>,
    wakers: Vec<crate::net::reactor::waker::Waker>,
    threads: Vec<JoinHandle<Result<()>>>,
    local: SocketAddr,
    backend: Backend,
    stats: Arc<TcpStats>,
}

impl std::fmt::Debug for TcpServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServerHandle")
            .field("local", &self.local)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl TcpServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The `tcp://` address clients connect to.
    pub fn address(&self) -> String {
        Address::Tcp { host: self.local.ip().to_string(), port: self.local.port() }.to_string()
    }

    /// The backend the reactors run.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The counters now.
    pub fn stats(&self) -> TcpStatsSnapshot {
        self.stats.snapshot()
    }

    /// A `Send + Sync` handle that reads [`TcpServerHandle::stats`] from any thread, also
    /// after the handle is shut down (the last counts stay readable).
    pub fn stats_reader(&self) -> crate::ServerStatsReader {
        crate::ServerStatsReader::new(self.stats.clone())
    }

    /// Stops gracefully: stops accepting, answers the requests already received, sends
    /// every client a goaway, closes, and waits for the reactor threads.
    ///
    /// # Errors
    /// The first error a reactor ended with.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        self.shared.common.stopping.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            w.wake();
        }
        let mut first = Ok(());
        for t in self.threads.drain(..) {
            let r = t.join().unwrap_or_else(|_| {
                Err(Error::io("reactor thread", std::io::Error::other("panicked")))
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for TcpServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
