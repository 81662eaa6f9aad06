//! [`RpcServer`]: many callers on one socket path, each with its own pair of rings.
//!
//! Upstream's listen is one-shot. The server keeps its socket bound and accepts callers
//! as they come; a new caller is noticed at once, with no polling interval. Each caller
//! gets fresh arenas and a thread running the shared [`Dispatcher`]. The number of
//! callers is bounded: one over the limit is turned away with a refusal our connector
//! reports as [`Error::Refused`]. A thread per client keeps a slow handler from
//! blocking other clients. The client limit bounds the thread count.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bootstrap::{ListenSpec, Listener, Refusal};
use crate::error::{Error, Result};
use crate::rpc::bus::RpcBus;
use crate::rpc::dispatch::{Dispatcher, ServeOptions};

/// Settings of an [`RpcServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Request ring capacity per client (default 64 KiB).
    pub cap_fwd: usize,
    /// Reply ring capacity per client (default 64 KiB).
    pub cap_rev: usize,
    /// Most clients served at once (default 64); more are refused.
    pub max_clients: usize,
    /// How each client is served.
    pub serve: ServeOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { cap_fwd: 1 << 16, cap_rev: 1 << 16, max_clients: 64, serve: ServeOptions::default() }
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

    /// Client limit.
    #[must_use]
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// How long a reply may wait for room (`None`: as long as the client lives).
    #[must_use]
    pub fn reply_timeout(mut self, t: Option<Duration>) -> Self {
        self.serve.reply_timeout = t;
        self
    }

    /// Where errors that end a client or are skipped go (default: stderr).
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
    active: Arc<AtomicUsize>,
}

/// Decrements the active-client count when a client's thread ends, however it ends.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RpcServer {
    /// Binds `socket_path` (replacing a stale socket file) and starts listening.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`], [`Error::InvalidPath`], [`Error::Io`].
    pub fn bind(socket_path: &str, opts: ServerOptions) -> Result<Self> {
        for cap in [opts.cap_fwd, opts.cap_rev] {
            if !crate::layout::is_valid_capacity(cap) {
                return Err(Error::InvalidCapacity(cap));
            }
        }
        let backlog = i32::try_from(opts.max_clients.clamp(1, 128)).unwrap_or(128);
        Ok(Self {
            listener: Listener::bind(socket_path, backlog)?,
            opts,
            stop: Arc::new(AtomicBool::new(false)),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A handle that stops [`RpcServer::serve`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Clients being served right now.
    pub fn active_clients(&self) -> usize {
        self.active.load(Ordering::SeqCst)
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
            let conn = match self
                .listener
                .accept(ListenSpec { timeout: None, interrupt: Some(&mut stopping) })
            {
                Ok(c) => c,
                Err(Error::Interrupted) => return Ok(()),
                Err(e) => return Err(e),
            };
            clients.retain(|c| !c.is_finished());
            if self.stop.load(Ordering::SeqCst) {
                conn.refuse(Refusal::ShuttingDown);
                return Ok(());
            }
            if self.active.load(Ordering::SeqCst) >= self.opts.max_clients {
                conn.refuse(Refusal::TooManyClients);
                continue;
            }
            self.active.fetch_add(1, Ordering::SeqCst);
            let slot = ClientSlot(self.active.clone());
            let (d, stop, opts) = (dispatcher.clone(), self.stop.clone(), self.opts.clone());
            let spawned =
                std::thread::Builder::new().name("tachyon-rpc-client".into()).spawn(move || {
                    let _slot = slot;
                    let served = RpcBus::offer(conn, opts.cap_fwd, opts.cap_rev)
                        .and_then(|bus| d.serve(&bus, &stop, &opts.serve));
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
