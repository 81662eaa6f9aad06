//! [`RpcServer`]: many callers on one socket path, each with its own pair of rings.
//!
//! Upstream's listen is one-shot. The server keeps its socket bound and accepts callers
//! as they come; a new caller is noticed at once, with no polling interval. Each caller
//! gets fresh arenas and a thread running the shared [`Dispatcher`]. The number of
//! callers is bounded: one over the limit is turned away with a refusal our connector
//! reports as [`Error::Refused`]. A thread per client keeps a slow handler from
//! blocking other clients. The client limit bounds the thread count.
//!
//! Slots cannot be hoarded: a connector must finish the handshake within the handshake
//! timeout; a client's slot is freed the moment its link closes (the liveness watcher
//! wakes its thread); and no process may hold more than its share of the slots
//! (`max_clients_per_process`), because an upstream-style client that reads the
//! handshake and closes the socket cannot be proven gone while its process lives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::observe::stats::{ServerCounters, ServerStats, ServerStatsReader};
use crate::rpc::bus::{RpcBus, RpcRequest};
use crate::rpc::dispatch::{Dispatcher, ServeOptions, Transport};
use crate::rpc::stream::OwnedRequest;
use crate::shm::bootstrap::{ListenSpec, Listener, Refusal};
use crate::shm::options::ListenOptions;
use crate::shm::wait::Wait;

/// Settings of an [`RpcServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Request ring capacity per client (default 64 KiB).
    pub cap_fwd: usize,
    /// Reply ring capacity per client (default 64 KiB).
    pub cap_rev: usize,
    /// Most clients served at once (default 64, at least 1); more are refused.
    pub max_clients: usize,
    /// Most clients one process may hold (default: half of `max_clients`, at least 1).
    pub max_clients_per_process: Option<usize>,
    /// Who may connect, the socket's mode, and the handshake timeout.
    pub listen: ListenOptions,
    /// How each client is served.
    pub serve: ServeOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            cap_fwd: 1 << 16,
            cap_rev: 1 << 16,
            max_clients: 64,
            max_clients_per_process: None,
            listen: ListenOptions::default(),
            serve: ServeOptions::default(),
        }
    }
}

impl ServerOptions {
    /// Ring capacities per client.
    #[must_use]
    pub fn capacity(mut self, cap_fwd: usize, cap_rev: usize) -> Self {
        self.cap_fwd = cap_fwd;
        self.cap_rev = cap_rev;
        self
    }

    /// Client limit (at least 1; [`RpcServer::bind`] refuses 0).
    #[must_use]
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Per-process client limit (at least 1, at most `max_clients`).
    #[must_use]
    pub fn max_clients_per_process(mut self, n: usize) -> Self {
        self.max_clients_per_process = Some(n);
        self
    }

    /// Access rules: socket mode, allowed users, handshake timeout.
    #[must_use]
    pub fn listen(mut self, listen: ListenOptions) -> Self {
        self.listen = listen;
        self
    }

    /// The per-process limit in force: as set, or by default a quarter of the slots
    /// (at least one) kept for other processes.
    pub fn per_process_limit(&self) -> usize {
        self.max_clients_per_process.unwrap_or_else(|| {
            let reserved = (self.max_clients / 4).max(1);
            self.max_clients.saturating_sub(reserved).max(1)
        })
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`] or [`Error::InvalidArgument`].
    pub fn validate(&self) -> Result<()> {
        for cap in [self.cap_fwd, self.cap_rev] {
            if !crate::shm::layout::is_valid_capacity(cap) {
                return Err(Error::InvalidCapacity(cap));
            }
        }
        if self.max_clients == 0 {
            return Err(Error::InvalidArgument(
                "max_clients must be at least 1 (a server for nobody refuses everyone)".into(),
            ));
        }
        if self.max_clients_per_process == Some(0) {
            return Err(Error::InvalidArgument(
                "max_clients_per_process must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// How long a reply may wait for room (`None`: as long as the client lives).
    #[must_use]
    pub fn reply_timeout(mut self, t: Option<Duration>) -> Self {
        self.serve.reply_timeout = t;
        self
    }

    /// Where errors that end a client or are skipped go (default: a `tracing` warning
    /// under the `tachyon` target).
    #[must_use]
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.serve.on_error = Arc::new(f);
        self
    }
}

/// Stops a running server from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the server to stop: it stops accepting and its clients' loops end within
    /// about 200 ms.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A bound multi-client RPC server.
///
/// ```no_run
/// use std::sync::Arc;
/// use tachyon::rpc::{Dispatcher, RpcServer, ServerOptions};
/// # fn main() -> tachyon::Result<()> {
/// let mut d = Dispatcher::new();
/// d.register_raw(1, "echo", |r: &[u8]| r.to_vec()).unwrap();
/// let server = RpcServer::bind("/tmp/echo.sock", ServerOptions::default().max_clients(8))?;
/// server.serve(Arc::new(d))?; // until stopped
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RpcServer {
    listener: Listener,
    opts: ServerOptions,
    stop: Arc<AtomicBool>,
    per_pid: Arc<Mutex<HashMap<i32, usize>>>,
    /// Its counters, `active` included (the client limit is checked against it).
    counters: Arc<ServerCounters>,
}

/// Gives back a client's slot (overall and per process) when its thread ends, however
/// it ends.
struct ClientSlot {
    counters: Arc<ServerCounters>,
    per_pid: Arc<Mutex<HashMap<i32, usize>>>,
    pid: i32,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.per_pid.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.pid) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.pid);
            }
        }
        self.counters.active.sub(1);
    }
}

impl RpcServer {
    /// Binds `socket_path` (replacing a stale socket, refusing a live one or any other
    /// file) and starts listening.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`], [`Error::InvalidArgument`] (`max_clients == 0`),
    /// [`Error::InvalidPath`], [`Error::AddrInUse`], [`Error::Io`].
    pub fn bind(socket_path: &str, opts: ServerOptions) -> Result<Self> {
        opts.validate()?;
        let backlog = i32::try_from(opts.max_clients.clamp(1, 128)).unwrap_or(128);
        Ok(Self {
            listener: Listener::bind(socket_path, backlog, &opts.listen)?,
            opts,
            stop: Arc::new(AtomicBool::new(false)),
            per_pid: Arc::new(Mutex::new(HashMap::new())),
            counters: Arc::default(),
        })
    }

    /// Takes a slot for a client of process `pid`, or says why not.
    fn take_slot(&self, pid: i32) -> std::result::Result<ClientSlot, Refusal> {
        let mut m = self.per_pid.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked and taken under the per-pid lock, so two accepts cannot both pass it.
        if self.counters.active.get() >= self.opts.max_clients as u64 {
            return Err(Refusal::TooManyClients);
        }
        let held = m.entry(pid).or_insert(0);
        if *held >= self.opts.per_process_limit() {
            return Err(Refusal::TooManyFromProcess);
        }
        *held += 1;
        self.counters.active.add(1);
        Ok(ClientSlot { counters: self.counters.clone(), per_pid: self.per_pid.clone(), pid })
    }

    /// A handle that stops [`RpcServer::serve`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Clients being served right now.
    pub fn active_clients(&self) -> usize {
        usize::try_from(self.counters.active.get()).unwrap_or(usize::MAX)
    }

    /// What the server has done so far: clients accepted, refused and active, requests
    /// answered, and error replies by code.
    pub fn stats(&self) -> ServerStats {
        self.stats_reader().read()
    }

    /// A `Send + Sync` handle that reads [`RpcServer::stats`] from any thread, also
    /// after the server moved into [`RpcServer::spawn`].
    pub fn stats_reader(&self) -> ServerStatsReader {
        ServerStatsReader::new(self.counters.clone())
    }

    /// The socket path.
    pub fn path(&self) -> &str {
        self.listener.path()
    }

    /// Accepts callers and serves each on its own thread with `dispatcher`, until
    /// stopped. Then it waits for the client threads and returns. The socket file is
    /// removed when the server is dropped.
    ///
    /// # Errors
    /// [`Error::Io`] if accepting fails.
    #[allow(clippy::needless_pass_by_value)] // the server keeps a share for its clients
    pub fn serve(&self, dispatcher: Arc<Dispatcher>) -> Result<()> {
        let mut clients: Vec<JoinHandle<()>> = Vec::new();
        let result = self.accept_loop(&dispatcher, &mut clients);
        self.stop.store(true, Ordering::SeqCst);
        for c in clients {
            let _ = c.join();
        }
        result
    }

    fn accept_loop(
        &self,
        dispatcher: &Arc<Dispatcher>,
        clients: &mut Vec<JoinHandle<()>>,
    ) -> Result<()> {
        loop {
            let mut stopping =
                || if self.stop.load(Ordering::SeqCst) { Err(Error::Interrupted) } else { Ok(()) };
            let mut spec = ListenSpec { timeout: None, interrupt: Some(&mut stopping) };
            let conn = match self.listener.accept(&mut spec, &mut |e| self.opts.serve.report(&e)) {
                Ok(c) => c,
                Err(Error::Interrupted) => return Ok(()),
                Err(e) => return Err(e),
            };
            clients.retain(|c| !c.is_finished());
            if self.stop.load(Ordering::SeqCst) {
                conn.refuse(Refusal::ShuttingDown);
                self.counters.refused.add(1);
                return Ok(());
            }
            let pid = conn.cred().map_or(0, |c| c.pid);
            let slot = match self.take_slot(pid) {
                Ok(slot) => slot,
                Err(why) => {
                    conn.refuse(why);
                    self.counters.refused.add(1);
                    continue;
                }
            };
            let (d, stop, opts) = (dispatcher.clone(), self.stop.clone(), self.opts.clone());
            let counters = self.counters.clone();
            let spawned =
                std::thread::Builder::new().name("tachyon-rpc-client".into()).spawn(move || {
                    let _slot = slot;
                    let timeout = opts.listen.handshake_timeout;
                    let served = RpcBus::offer(
                        conn,
                        opts.cap_fwd,
                        opts.cap_rev,
                        timeout,
                        opts.listen.fast_mode,
                    )
                    .and_then(|bus| {
                        match bus {
                            Some(bus) => {
                                counters.accepted.add(1);
                                let counted = Counted { bus: &bus, counters: &counters };
                                serve_client(&d, &counted, pid, &stop, &opts.serve)
                            }
                            None => Ok(()), // left before the handshake: a probe
                        }
                    });
                    if let Err(e) = served {
                        opts.serve.report(&e);
                    }
                });
            match spawned {
                Ok(h) => clients.push(h),
                Err(e) => self.opts.serve.report(&Error::io("spawn client thread", e)),
            }
        }
    }

    /// Runs [`RpcServer::serve`] on a background thread.
    pub fn spawn(self, dispatcher: Arc<Dispatcher>) -> ServerHandle {
        let stop = self.stop_handle();
        let thread = std::thread::spawn(move || self.serve(dispatcher));
        ServerHandle { stop, thread: Some(thread) }
    }
}

/// Serves one client until it leaves, the server stops, or (for an upstream-style client
/// without a liveness link) its process provably lets go of the bus.
fn serve_client(
    d: &Dispatcher,
    counted: &Counted<'_>,
    pid: i32,
    stop: &AtomicBool,
    opts: &ServeOptions,
) -> Result<()> {
    let bus = counted.bus;
    let unlinked_inode = if bus.has_peer_link() { None } else { bus.request_arena_inode() };
    let mut last_look = std::time::Instant::now();
    let mut done = || {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        match unlinked_inode {
            Some(ino) if pid > 0 && last_look.elapsed() >= crate::WATCHDOG => {
                last_look = std::time::Instant::now();
                crate::shm::liveness::process_holds(pid, ino) == Some(false)
            }
            _ => false,
        }
    };
    d.serve_until(counted, &mut done, opts)
}

/// A client's bus, counting into its server's counters what passes through it.
struct Counted<'a> {
    bus: &'a RpcBus,
    counters: &'a ServerCounters,
}

impl Counted<'_> {
    fn count<T>(&self, r: &Result<T>) {
        if matches!(r, Err(Error::Protocol(_) | Error::Corrupted(_))) {
            self.counters.protocol_errors.add(1);
        }
    }
}

impl Transport for Counted<'_> {
    type Request<'b>
        = RpcRequest<'b>
    where
        Self: 'b;

    fn next_request(&self, wait: Wait<'_>) -> Result<RpcRequest<'_>> {
        let r = self.bus.next_request(wait);
        self.count(&r);
        if r.is_ok() {
            self.counters.requests.add(1);
        }
        r
    }

    fn send_reply(&self, cid: u64, msg_type: u16, payload: &[u8], wait: Wait<'_>) -> Result<()> {
        if msg_type == crate::rpc::MSG_TYPE_ERROR {
            self.counters.errors(crate::rpc::RpcError::decode(payload).code, 1);
        }
        self.bus.send_reply(cid, msg_type, payload, wait)
    }

    fn try_next_request(&self) -> Result<Option<OwnedRequest>> {
        let r = self.bus.try_next_request();
        self.count(&r);
        if matches!(r, Ok(Some(_))) {
            self.counters.requests.add(1);
        }
        r
    }

    fn nudge(&self) -> Option<crate::Nudge> {
        Transport::nudge(self.bus)
    }
}

/// A server running on a background thread; dropping it stops the server and waits.
#[derive(Debug)]
pub struct ServerHandle {
    stop: StopHandle,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Stops the server and waits for it and its clients' threads.
    ///
    /// # Errors
    /// The error that ended serving, if any.
    pub fn stop(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        self.stop.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::io("server thread", std::io::Error::other("panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
