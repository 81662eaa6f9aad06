//! The listener: bind, accept an allowed connector, offer it a bus and negotiate the extension.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{SendFlags, SocketFlags};

use crate::error::{Error, Result};
use crate::shm::liveness::PeerWatch;
use crate::shm::options::ListenOptions;

use super::{
    clear_path, ext_frame, file_id, negotiate_as_listener, peer_cred, send_handshake, socket_addr,
    stream_socket, Deadline, FileId, Handshake, ListenSpec, PeerCred,
};

/// A bound, listening UNIX socket. Its socket file is removed when this is dropped, if
/// it is still the one this listener created.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: String,
    file: Option<FileId>,
    opts: ListenOptions,
}

impl Listener {
    /// Binds `path` (removing a stale socket file, refusing anything else in the way),
    /// sets the socket's mode, and listens with `backlog`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] (bad path, or a non-socket file in the way),
    /// [`Error::AddrInUse`] (a live listener has the path), [`Error::Io`].
    pub fn bind(path: &str, backlog: i32, opts: &ListenOptions) -> Result<Self> {
        let addr = socket_addr(path)?;
        clear_path(path, &addr)?;
        let fd = stream_socket(SocketFlags::CLOEXEC)?;
        match rustix::net::bind(&fd, &addr) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => return Err(Error::AddrInUse { path: path.to_owned() }),
            Err(e) => return Err(Error::io("bind socket path", e)),
        }
        let mut listener =
            Self { fd, path: path.to_owned(), file: file_id(path), opts: opts.clone() };
        // Before `listen`: until then every connect is refused, so nobody gets in while
        // the mode is still the umask's.
        rustix::fs::chmod(path, Mode::from_raw_mode(opts.socket_mode))
            .map_err(|e| Error::io("set the socket file's mode", e))?;
        listener.file = file_id(path);
        rustix::net::listen(&listener.fd, backlog).map_err(|e| Error::io("listen on socket", e))?;
        Ok(listener)
    }

    /// Waits for the next connector whose uid is allowed (polling every 100 ms for the
    /// deadline and the interrupt check; a new connector is noticed at once). A
    /// connector of another uid is turned away (it gets [`Error::PermissionDenied`]) and
    /// reported to `refused`; the wait goes on.
    ///
    /// # Errors
    /// [`Error::Timeout`], the interrupt check's error, or [`Error::Io`].
    pub fn accept(
        &self,
        spec: &mut ListenSpec<'_>,
        refused: &mut dyn FnMut(Error),
    ) -> Result<Accepted> {
        let _span =
            tracing::debug_span!(target: "tachyon", "accept", transport = "shm", address = %self.path)
                .entered();
        let mut deadline = Deadline::start(spec);
        loop {
            deadline.poll(self.fd.as_fd(), PollFlags::IN)?;
            let conn = match rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC) {
                Ok(c) => c,
                Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => continue,
                Err(e) => return Err(Error::io("accept connector", e)),
            };
            let cred = peer_cred(&conn);
            let accepted = Accepted { fd: conn, cred };
            match cred {
                Some(c) if self.opts.allows(c.uid) => {
                    tracing::event!(name: "accepted", target: "tachyon", tracing::Level::INFO,
                        transport = "shm", address = %self.path, peer_pid = c.pid, peer_uid = c.uid,
                        "accepted a connector on {} (pid {})", self.path, c.pid);
                    return Ok(accepted);
                }
                _ => {
                    let uid = cred.map_or_else(|| "unknown".to_owned(), |c| c.uid.to_string());
                    refused_event(&self.path, Refusal::NotAllowed);
                    accepted.refuse(Refusal::NotAllowed);
                    refused(Error::PermissionDenied(format!(
                        "refused a connector on {} running as uid {uid}; allow it with \
                         ListenOptions::allow_uid",
                        self.path
                    )));
                }
            }
        }
    }

    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
    /// The socket path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Unlink only our own socket: another server may have replaced a path we lost.
        if self.file.is_some() && file_id(&self.path) == self.file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An accepted connection that has not yet been offered a bus.
#[derive(Debug)]
#[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
pub struct Accepted {
    fd: OwnedFd,
    cred: Option<PeerCred>,
}

/// The other end of a bus, as the handshake left it.
#[derive(Debug)]
pub struct Peer {
    /// How to notice that it is gone.
    pub watch: PeerWatch,
    /// Whether both ends are ours and agreed on the fast ring protocol
    /// ([`crate::shm::layout::RingMode::Fast`]).
    pub fast: bool,
}

/// What became of an offer.
#[derive(Debug)]
pub enum Offered {
    /// The connector took the bus.
    Taken(Peer),
    /// The connector had left before the handshake (a probe, or a connector that gave
    /// up): nothing was handed over.
    Left,
    /// The connector neither answered nor closed within the handshake timeout; it was
    /// dropped (it may hold the fds, but nobody serves them).
    Stalled,
}

impl Accepted {
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
    /// The connector's credentials, if the kernel gave them.
    pub fn cred(&self) -> Option<PeerCred> {
        self.cred
    }

    /// Sends the handshake and `fds`, then negotiates the liveness link (and the fast
    /// ring protocol, if `fast`), waiting at most `timeout` for the connector's answer.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] if our connector rejects the handshake, [`Error::Io`] if
    /// the send fails.
    pub fn offer(
        self,
        hs: &Handshake,
        fds: &[BorrowedFd<'_>],
        timeout: Duration,
        fast: bool,
    ) -> Result<Offered> {
        let _span =
            tracing::debug_span!(target: "tachyon", "handshake", transport = "shm", side = "listener")
                .entered();
        match send_handshake(&self.fd, hs, fds) {
            Ok(()) => {}
            Err(Errno::PIPE | Errno::CONNRESET) => return Ok(Offered::Left),
            Err(e) => return Err(Error::io("send handshake", e)),
        }
        let offered = negotiate_as_listener(self.fd, timeout, fast);
        match &offered {
            Ok(Offered::Stalled) => tracing::event!(name: "handshake_failed", target: "tachyon",
                tracing::Level::WARN, transport = "shm", side = "listener",
                error = "the connector did not answer in time", "a connector stalled in the handshake"),
            Err(e) => tracing::event!(name: "handshake_failed", target: "tachyon",
                tracing::Level::WARN, transport = "shm", side = "listener", error = %e,
                "the handshake failed: {e}"),
            _ => {}
        }
        offered
    }

    /// Turns the connector away with a reason our connector reports as
    /// [`Error::Refused`] or [`Error::PermissionDenied`]. An upstream connector sees a
    /// short handshake and fails too.
    pub fn refuse(self, reason: Refusal) {
        if reason != Refusal::NotAllowed {
            refused_event("", reason);
        }
        let _ = rustix::net::send(&self.fd, &ext_frame(reason as u32), SendFlags::NOSIGNAL);
    }
}

/// Reports a connector turned away (`refused`).
pub(super) fn refused_event(path: &str, reason: Refusal) {
    tracing::event!(name: "refused", target: "tachyon", tracing::Level::WARN, transport = "shm",
        address = path, reason = ?reason, "turned a connector away: {reason:?}");
}

/// Why a server turned a connector away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Refusal {
    /// The server already serves its maximum number of clients.
    TooManyClients = 0x100,
    /// The server is shutting down.
    ShuttingDown = 0x101,
    /// The connector's uid is not allowed.
    NotAllowed = 0x102,
    /// The connector's process already holds its share of the client slots.
    TooManyFromProcess = 0x103,
}

/// Listens on `path` for one allowed connector and hands it `fds` with `hs`. One-shot,
/// like upstream: the socket file exists only while waiting. Connectors of other users
/// and connectors that leave before the handshake are skipped (the first are reported
/// to `refused`).
///
/// # Errors
/// [`Error::InvalidPath`], [`Error::AddrInUse`], [`Error::Timeout`],
/// [`Error::AbiMismatch`] (our connector rejected the handshake), or [`Error::Io`].
pub fn listen(
    path: &str,
    hs: &Handshake,
    fds: &[BorrowedFd<'_>],
    opts: &ListenOptions,
    spec: ListenSpec<'_>,
    refused: &mut dyn FnMut(Error),
) -> Result<Peer> {
    let listener = Listener::bind(path, 1, opts)?;
    let mut spec = spec;
    let deadline = spec.timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // One deadline for the whole listen, however many connectors are skipped.
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut step = ListenSpec { timeout: left, interrupt: spec.interrupt.take() };
        let conn = listener.accept(&mut step, refused);
        spec.interrupt = step.interrupt.take();
        let conn = match conn {
            Err(Error::Timeout(_)) => return Err(Error::Timeout(spec.timeout.unwrap_or_default())),
            other => other?,
        };
        match conn.offer(hs, fds, opts.handshake_timeout, opts.fast_mode)? {
            Offered::Taken(peer) => return Ok(peer),
            Offered::Left => {}
            Offered::Stalled => refused(Error::Timeout(opts.handshake_timeout)),
        }
    }
}
