//! Bootstrap over a UNIX socket: the listener hands its memfd(s) to one connector.
//!
//! The upstream exchange (WIRE.md) is one `sendmsg` of a 32-byte [`Handshake`] with the
//! fds attached. Two Tachyon peers then go one step further, in a way upstream ignores:
//!
//! 1. After the handshake the listener sends an 8-byte hello (`"TCHX"`, version). An
//!    upstream connector reads only 32 bytes and closes, so it never sees it.
//! 2. Our connector answers with 8 bytes (`"TCHX"`, status: accepted or rejected). An
//!    upstream connector just closes, which the listener sees as EOF.
//! 3. If both sides spoke, they keep the socket open as the liveness link (see
//!    [`crate::shm::liveness`]). With an upstream peer we watch a pidfd of its process.
//!
//! Who may connect, checked on both sides before any fd travels:
//! - the socket file is created with mode 0600 (whatever the umask), before `listen`,
//!   so nobody can connect while it is wider;
//! - the listener reads the connector's uid with `SO_PEERCRED` and refuses any uid but
//!   its own (and those it allows), with a refusal frame our connector reports as
//!   [`Error::PermissionDenied`];
//! - the connector checks that the socket file and the listening process belong to its
//!   own uid (or one it allows), so a socket squatted by another user is never used.
//!
//! Binding removes only a stale socket (one nobody accepts on); a live socket or any
//! other file in the way is an error, and a listener unlinks its path on drop only if
//! the file there is still the socket it created.
//!
//! Every wait is bounded: the connector by its connect timeout (and an interrupt check
//! every 100 ms), the listener by its handshake timeout.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::error::{Error, Result};
use crate::shm::layout::{self, FLAG_RPC, HANDSHAKE_SIZE};
use crate::shm::liveness::PeerWatch;
use crate::shm::options::{ConnectOptions, ListenOptions};

/// Once a handshake is known to be bad, how long a connector still waits for the
/// listener's hello (to tell an upstream listener from ours, and answer ours). Ours
/// sends it right behind the handshake, so this is only reached by odd peers.
const EXT_HELLO_AFTER_FAILURE: Duration = Duration::from_millis(250);
/// Poll interval of every wait here, so signals, interrupt checks and deadlines are
/// noticed (upstream uses 100 ms).
const POLL_STEP: Duration = Duration::from_millis(100);
/// `sun_path` is 108 bytes including the NUL.
const MAX_PATH_LEN: usize = 107;

const EXT_MAGIC: [u8; 4] = *b"TCHX";
/// The listener's hello: 1 = a liveness link, 2 = that and the fast ring protocol.
const EXT_VERSION: u32 = 1;
const EXT_VERSION_FAST: u32 = 2;
/// The connector's answers.
const EXT_ACCEPTED: u32 = 0;
const EXT_REJECTED: u32 = 1;
const EXT_ACCEPTED_FAST: u32 = 2;

/// Which kind of bus a handshake describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// One arena, one direction.
    Spsc,
    /// Two arenas: `fwd` (caller to callee) and `rev` (callee to caller).
    Rpc,
}

/// The 32-byte bootstrap struct: eight native-endian u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Ring capacity of the first (or only) arena.
    pub capacity_fwd: u32,
    /// `768 + capacity_fwd`.
    pub shm_size_fwd: u32,
    /// Ring capacity of the RPC reverse arena (0 for SPSC).
    pub capacity_rev: u32,
    /// `768 + capacity_rev` (0 for SPSC).
    pub shm_size_rev: u32,
    /// SPSC or RPC (flags bit 0).
    pub kind: BusKind,
}

impl Handshake {
    /// The handshake for an SPSC bus of `capacity` bytes.
    pub fn spsc(capacity: usize) -> Self {
        Self {
            capacity_fwd: capacity as u32,
            shm_size_fwd: layout::shm_size(capacity) as u32,
            capacity_rev: 0,
            shm_size_rev: 0,
            kind: BusKind::Spsc,
        }
    }

    #[cfg(any(feature = "rpc", test, feature = "test-hooks"))]
    /// The handshake for an RPC bus.
    pub fn rpc(cap_fwd: usize, cap_rev: usize) -> Self {
        Self {
            capacity_fwd: cap_fwd as u32,
            shm_size_fwd: layout::shm_size(cap_fwd) as u32,
            capacity_rev: cap_rev as u32,
            shm_size_rev: layout::shm_size(cap_rev) as u32,
            kind: BusKind::Rpc,
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_SIZE] {
        let flags = match self.kind {
            BusKind::Spsc => 0,
            BusKind::Rpc => FLAG_RPC,
        };
        let words = [
            layout::MAGIC,
            layout::VERSION,
            self.capacity_fwd,
            self.shm_size_fwd,
            self.capacity_rev,
            self.shm_size_rev,
            layout::MSG_ALIGNMENT,
            flags,
        ];
        let mut out = [0u8; HANDSHAKE_SIZE];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// Parses and validates wire bytes: magic, version, alignment and flags must match
    /// exactly, as upstream requires.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] naming the first field that differs.
    pub fn decode(bytes: &[u8; HANDSHAKE_SIZE]) -> Result<Self> {
        let w = |i: usize| {
            u32::from_ne_bytes([bytes[i * 4], bytes[i * 4 + 1], bytes[i * 4 + 2], bytes[i * 4 + 3]])
        };
        let mismatch = |what: &str, got: u32, want: u32| {
            Err(Error::AbiMismatch(format!("handshake {what} is {got:#x}, expected {want:#x}")))
        };
        if w(0) != layout::MAGIC {
            return mismatch("magic", w(0), layout::MAGIC);
        }
        if w(1) != layout::VERSION {
            return mismatch("version", w(1), layout::VERSION);
        }
        if w(6) != layout::MSG_ALIGNMENT {
            return mismatch("msg_alignment", w(6), layout::MSG_ALIGNMENT);
        }
        let kind = match w(7) {
            0 => BusKind::Spsc,
            FLAG_RPC => BusKind::Rpc,
            f => return mismatch("flags", f, 0),
        };
        Ok(Self {
            capacity_fwd: w(2),
            shm_size_fwd: w(3),
            capacity_rev: w(4),
            shm_size_rev: w(5),
            kind,
        })
    }

    /// Number of fds that travel with this handshake.
    pub fn fd_count(&self) -> usize {
        match self.kind {
            BusKind::Spsc => 1,
            BusKind::Rpc => 2,
        }
    }
}

/// Checks a socket path and builds its address.
///
/// # Errors
/// [`Error::InvalidPath`] for an empty path, one of 108 bytes or more, or one with a NUL.
pub fn socket_addr(path: &str) -> Result<SocketAddrUnix> {
    let invalid = |reason| Error::InvalidPath { path: path.to_owned(), reason };
    if path.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(invalid("UNIX socket paths must be shorter than 108 bytes"));
    }
    if path.contains('\0') {
        return Err(invalid("the path contains a NUL byte"));
    }
    SocketAddrUnix::new(path).map_err(|_| invalid("not a valid UNIX socket path"))
}

/// A deadline and a periodic interrupt check, for the waits of a listen or a connect.
pub struct ListenSpec<'a> {
    /// Give up after this long (from the first wait).
    pub timeout: Option<Duration>,
    /// Called every 100 ms while waiting; an error ends the wait.
    pub interrupt: Option<&'a mut dyn FnMut() -> Result<()>>,
}

impl ListenSpec<'_> {
    #[cfg(any(test, feature = "test-hooks"))]
    /// No deadline, no interrupt check.
    pub fn forever() -> Self {
        Self { timeout: None, interrupt: None }
    }
}

/// A running deadline: [`ListenSpec`] with its clock started.
struct Deadline<'s, 'a> {
    at: Option<Instant>,
    timeout: Option<Duration>,
    spec: &'s mut ListenSpec<'a>,
}

impl<'s, 'a> Deadline<'s, 'a> {
    fn start(spec: &'s mut ListenSpec<'a>) -> Self {
        let timeout = spec.timeout;
        Self { at: timeout.and_then(|t| Instant::now().checked_add(t)), timeout, spec }
    }

    /// How long the next poll may sleep: at most [`POLL_STEP`] and what is left.
    fn step(&self) -> Result<Duration> {
        match self.at {
            None => Ok(POLL_STEP),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::Timeout(self.timeout.unwrap_or_default()))
                } else {
                    Ok(left.min(POLL_STEP))
                }
            }
        }
    }

    fn check(&mut self) -> Result<()> {
        match self.spec.interrupt.as_mut() {
            Some(f) => f(),
            None => Ok(()),
        }
    }

    /// Polls `fd` for `events` until ready, the deadline, or an interrupt.
    fn poll(&mut self, fd: BorrowedFd<'_>, events: PollFlags) -> Result<PollFlags> {
        loop {
            let step = self.step()?;
            let mut fds = [PollFd::new(&fd, events)];
            let ts = rustix::time::Timespec::try_from(step)
                .unwrap_or(rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 });
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(Errno::INTR) => {}
                Ok(_) => return Ok(fds[0].revents()),
                Err(e) => return Err(Error::io("poll socket", e)),
            }
            self.check()?;
        }
    }
}

/// Who is at the other end of a UNIX socket (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id (at connect or listen time).
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
}

fn peer_cred(sock: &OwnedFd) -> Option<PeerCred> {
    rustix::net::sockopt::socket_peercred(sock)
        .ok()
        .map(|c| PeerCred { pid: c.pid.as_raw_nonzero().get(), uid: c.uid.as_raw() })
}

/// A pidfd of the process at the other end of `sock` (an upstream peer).
fn process_of(sock: &OwnedFd) -> PeerWatch {
    let pidfd = rustix::net::sockopt::socket_peercred(sock)
        .ok()
        .filter(|cred| cred.pid != rustix::process::getpid())
        .and_then(|cred| {
            rustix::process::pidfd_open(cred.pid, rustix::process::PidfdFlags::empty()).ok()
        });
    pidfd.map_or(PeerWatch::Nothing, PeerWatch::Process)
}

fn stream_socket(flags: SocketFlags) -> Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)
        .map_err(|e| Error::io("create UNIX socket", e))
}

/// Whether a process accepts connections on the socket at `addr` (probed with a
/// non-blocking connect that is closed at once; our listeners skip such a probe).
fn is_live(addr: &SocketAddrUnix) -> Result<bool> {
    let probe = stream_socket(SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)?;
    match rustix::net::connect(&probe, addr) {
        // Accepted, queued on a full backlog, or someone else's socket we may not touch:
        // in every case a live listener owns the path.
        Ok(()) | Err(Errno::AGAIN | Errno::INPROGRESS | Errno::ACCESS | Errno::PERM) => Ok(true),
        Err(Errno::CONNREFUSED | Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::io("probe existing socket", e)),
    }
}

/// The identity of the socket file a listener created, to unlink only that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &str) -> Option<FileId> {
    let st = rustix::fs::lstat(path).ok()?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths vary by target
    Some(FileId { dev: st.st_dev as u64, ino: st.st_ino as u64 })
}

/// Clears the way for a bind at `path`: nothing there is fine, a stale socket is
/// removed, anything else is refused.
fn clear_path(path: &str, addr: &SocketAddrUnix) -> Result<()> {
    let st = match rustix::fs::lstat(path) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::io("inspect the socket path", e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "a file that is not a socket is in the way; refusing to delete it",
        });
    }
    if is_live(addr)? {
        return Err(Error::AddrInUse { path: path.to_owned() });
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove stale socket file", e)),
    }
}

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
fn refused_event(path: &str, reason: Refusal) {
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

fn send_handshake(
    conn: &OwnedFd,
    hs: &Handshake,
    fds: &[BorrowedFd<'_>],
) -> std::result::Result<(), Errno> {
    let bytes = hs.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::NOBUFS);
    }
    loop {
        // A fresh connection's send buffer is empty: 32 bytes never block.
        match rustix::net::sendmsg(conn, &[IoSlice::new(&bytes)], &mut control, SendFlags::NOSIGNAL)
        {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(Errno::PIPE),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn ext_frame(word: u32) -> [u8; 8] {
    let mut f = [0u8; 8];
    f[..4].copy_from_slice(&EXT_MAGIC);
    f[4..].copy_from_slice(&word.to_ne_bytes());
    f
}

fn negotiate_as_listener(conn: OwnedFd, timeout: Duration, fast: bool) -> Result<Offered> {
    // The peer may be upstream and gone already: a failed send just means "no link".
    let fallback = Peer { watch: process_of(&conn), fast: false };
    // The fast mode's wake protocol needs membarrier (see `wait::Barrier`).
    let fast = fast && crate::shm::wait::membarrier_registered();
    let hello = if fast { EXT_VERSION_FAST } else { EXT_VERSION };
    if rustix::net::send(&conn, &ext_frame(hello), SendFlags::NOSIGNAL).is_err() {
        return Ok(Offered::Taken(fallback));
    }
    let mut spec = ListenSpec { timeout: Some(timeout), interrupt: None };
    match read_frame(&conn, &mut Deadline::start(&mut spec))? {
        Frame::Word(EXT_ACCEPTED) => {
            Ok(Offered::Taken(Peer { watch: PeerWatch::Socket(conn), fast: false }))
        }
        // Only an offered fast mode can be accepted; anything else is a confused peer,
        // served as an upstream one.
        Frame::Word(EXT_ACCEPTED_FAST) if fast => {
            Ok(Offered::Taken(Peer { watch: PeerWatch::Socket(conn), fast: true }))
        }
        Frame::Word(EXT_REJECTED) => Err(Error::AbiMismatch(
            "the connector rejected the handshake (other bus kind, or too large)".to_owned(),
        )),
        // EOF: an upstream connector, which reads 32 bytes and closes.
        Frame::Eof | Frame::Word(_) | Frame::Foreign => Ok(Offered::Taken(fallback)),
        // Neither ours (which answers at once) nor upstream's (which closes at once):
        // a connector that stalls must not hold the listener.
        Frame::TimedOut => Ok(Offered::Stalled),
    }
}

/// What [`read_frame`] found.
enum Frame {
    /// One of our extension frames, with its word.
    Word(u32),
    /// The peer closed (or reset) the socket.
    Eof,
    /// Eight bytes that are not ours.
    Foreign,
    /// Nothing came in time.
    TimedOut,
}

/// Reads one 8-byte extension frame.
fn read_frame(sock: &OwnedFd, deadline: &mut Deadline<'_, '_>) -> Result<Frame> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        match deadline.poll(sock.as_fd(), PollFlags::IN) {
            Ok(_) => {}
            Err(Error::Timeout(_)) => return Ok(Frame::TimedOut),
            Err(e) => return Err(e),
        }
        match rustix::net::recv(sock, &mut buf[got..], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(Frame::Eof),
            Ok((n, _)) => got += n,
            Err(Errno::INTR | Errno::AGAIN) => {}
            Err(_) => return Ok(Frame::Eof),
        }
    }
    if buf[..4] != EXT_MAGIC {
        return Ok(Frame::Foreign);
    }
    Ok(Frame::Word(u32::from_ne_bytes(buf[4..].try_into().expect("4 bytes"))))
}

/// What a connector receives: the validated handshake, its fds in order, and how to
/// watch the listener.
#[derive(Debug)]
pub struct Connection {
    /// The validated handshake.
    pub handshake: Handshake,
    /// The fds, `[fwd]` or `[fwd, rev]`.
    pub fds: Vec<OwnedFd>,
    /// How to notice that the listener is gone.
    pub watch: PeerWatch,
    /// Whether both ends agreed on the fast ring protocol.
    pub fast: bool,
}

fn connect_error(path: &str, source: impl Into<std::io::Error>) -> Error {
    Error::Connect { path: path.to_owned(), source: source.into() }
}

/// Checks that the socket file at `path` belongs to a trusted uid.
fn check_socket_owner(path: &str, opts: &ConnectOptions) -> Result<()> {
    let st = rustix::fs::stat(path).map_err(|e| connect_error(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(connect_error(path, std::io::Error::other("the path is not a socket")));
    }
    if !opts.allows(st.st_uid) {
        return Err(Error::PermissionDenied(format!(
            "the socket {path} belongs to uid {}, not to this user ({}); refusing to use it \
             (trust that uid with ConnectOptions::allow_uid)",
            st.st_uid,
            rustix::process::geteuid().as_raw()
        )));
    }
    Ok(())
}

/// Connects to a listener at `path`, expecting a bus of kind `want`, within
/// `opts.timeout` (or `spec.timeout` if set). Fails at once if nobody listens (retrying
/// is the caller's job, as upstream).
///
/// # Errors
/// [`Error::Connect`] if nobody listens there; [`Error::PermissionDenied`] if the socket
/// or the listener belongs to an untrusted uid, or the listener refused ours;
/// [`Error::Refused`] (server full or stopping); [`Error::AbiMismatch`] (and the
/// received fds are closed) if the handshake is not v0x04 of kind `want`;
/// [`Error::CapacityLimit`]; [`Error::Timeout`]; the interrupt check's error.
pub fn connect(
    path: &str,
    want: BusKind,
    opts: &ConnectOptions,
    spec: ListenSpec<'_>,
) -> Result<Connection> {
    let _span =
        tracing::debug_span!(target: "tachyon", "connect", transport = "shm", address = path, kind = ?want)
            .entered();
    let connected = connect_traced(path, want, opts, spec);
    match &connected {
        Ok(c) => tracing::event!(name: "connected", target: "tachyon", tracing::Level::INFO,
            transport = "shm", address = path, kind = ?want, fast = c.fast,
            linked = matches!(c.watch, PeerWatch::Socket(_)), "connected to {path}"),
        Err(e) => tracing::event!(name: "connect_failed", target: "tachyon", tracing::Level::DEBUG,
            transport = "shm", address = path, error = %e, "connecting to {path} failed: {e}"),
    }
    connected
}

fn connect_traced(
    path: &str,
    want: BusKind,
    opts: &ConnectOptions,
    spec: ListenSpec<'_>,
) -> Result<Connection> {
    let addr = socket_addr(path)?;
    let mut spec = spec;
    spec.timeout = Some(spec.timeout.unwrap_or(opts.timeout));
    let mut deadline = Deadline::start(&mut spec);
    check_socket_owner(path, opts)?;
    let sock = stream_socket(SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)?;
    loop {
        match rustix::net::connect(&sock, &addr) {
            Ok(()) => break,
            Err(Errno::INTR) => {}
            // The listener's backlog is full: it exists but is busy. Wait for room.
            Err(Errno::AGAIN) => {
                deadline.step()?;
                std::thread::sleep(Duration::from_millis(1));
                deadline.check()?;
            }
            Err(e) => return Err(connect_error(path, e)),
        }
    }
    match peer_cred(&sock) {
        Some(c) if opts.allows(c.uid) => {}
        cred => {
            return Err(Error::PermissionDenied(format!(
                "the process listening on {path} runs as uid {}, not as this user; refusing \
                 it (trust that uid with ConnectOptions::allow_uid)",
                cred.map_or_else(|| "unknown".to_owned(), |c| c.uid.to_string())
            )))
        }
    }
    handshake_over(sock, want, opts, &mut deadline)
}

/// The connector's side of the exchange on a connected socket: every byte and fd in it
/// comes from the listener and is untrusted.
fn handshake_over(
    sock: OwnedFd,
    want: BusKind,
    opts: &ConnectOptions,
    deadline: &mut Deadline<'_, '_>,
) -> Result<Connection> {
    let _span =
        tracing::debug_span!(target: "tachyon", "handshake", transport = "shm", side = "connector")
            .entered();
    let (bytes, fds) = recv_handshake(&sock, deadline)?;
    let checked =
        Handshake::decode(&bytes).and_then(|hs| validate(&hs, want, &fds, opts).map(|()| hs));
    // Our listener sends its hello right behind the handshake; once the handshake is
    // known bad, do not wait long for it.
    let hello = if checked.is_ok() {
        read_frame(&sock, deadline)?
    } else {
        let mut hello_spec = ListenSpec { timeout: Some(EXT_HELLO_AFTER_FAILURE), interrupt: None };
        read_frame(&sock, &mut Deadline::start(&mut hello_spec)).unwrap_or(Frame::Eof)
    };
    let ours = matches!(hello, Frame::Word(v) if v >= EXT_VERSION);
    let fast = opts.fast_mode
        && matches!(hello, Frame::Word(v) if v >= EXT_VERSION_FAST)
        && crate::shm::wait::membarrier_registered();
    match checked {
        Ok(handshake) => {
            let answer = ext_frame(if fast { EXT_ACCEPTED_FAST } else { EXT_ACCEPTED });
            let linked = ours && rustix::net::send(&sock, &answer, SendFlags::NOSIGNAL).is_ok();
            let watch = if linked { PeerWatch::Socket(sock) } else { process_of(&sock) };
            // Fast only once the listener has our answer: it then knows it too.
            Ok(Connection { handshake, fds, watch, fast: fast && linked })
        }
        Err(e) => {
            if ours {
                let _ = rustix::net::send(&sock, &ext_frame(EXT_REJECTED), SendFlags::NOSIGNAL);
            }
            tracing::event!(name: "handshake_failed", target: "tachyon", tracing::Level::WARN,
                transport = "shm", side = "connector", error = %e, "rejected the listener's handshake: {e}");
            Err(e)
        }
    }
}

#[cfg(any(test, feature = "test-hooks"))]
/// Plays a hostile listener against our connector, and a hostile connector against our
/// listener's negotiation: `data` is what the other end writes (its first byte says how
/// many memfds travel with it and which bus kind is wanted). Never panics; errors are
/// the expected outcome. For `cargo fuzz` and the corpus replay.
///
/// # Panics
/// When a connection it accepts breaks an invariant (that is the bug it looks for).
#[doc(hidden)]
pub fn fuzz_bootstrap(data: &[u8]) {
    use crate::shm::region::SharedMemory;
    let Some((&control, bytes)) = data.split_first() else { return };
    let pair = || {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .expect("socketpair works in tests")
    };
    let bytes = &bytes[..bytes.len().min(4096)];
    // Connector side: a listener that sends `bytes` (and 0 to 3 memfds), then closes.
    let (ours, theirs) = pair();
    let shms: Vec<SharedMemory> = (0..(control & 3))
        .map(|_| SharedMemory::create("fuzz", 768 + 4096).expect("memfd works in tests"))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = shms.iter().map(SharedMemory::fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let _ = cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    }
    let _ = rustix::net::sendmsg(&theirs, &[IoSlice::new(bytes)], &mut cmsg, SendFlags::NOSIGNAL);
    drop(theirs);
    let want = if control & 4 == 0 { BusKind::Spsc } else { BusKind::Rpc };
    let opts = ConnectOptions::default().max_capacity(1 << 20);
    let mut spec = ListenSpec { timeout: Some(Duration::from_millis(50)), interrupt: None };
    if let Ok(conn) = handshake_over(ours, want, &opts, &mut Deadline::start(&mut spec)) {
        assert_eq!(conn.fds.len(), conn.handshake.fd_count(), "validated fd count");
    }
    // Listener side: a connector that answers with `bytes`, then closes.
    let (ours, theirs) = pair();
    let _ = rustix::net::send(&theirs, bytes, SendFlags::NOSIGNAL);
    // Half-close: our hello still goes out, then our read sees the bytes and EOF.
    let _ = rustix::net::shutdown(&theirs, rustix::net::Shutdown::Write);
    let offer_fast = control & 0x40 != 0;
    if let Ok(Offered::Taken(peer)) =
        negotiate_as_listener(ours, Duration::from_millis(50), offer_fast)
    {
        assert!(!peer.fast || offer_fast, "the fast mode was never offered");
    }
    drop(theirs);
    // And a refusal frame or short handshake.
    let _ = refusal_or_short(&bytes[..bytes.len().min(HANDSHAKE_SIZE - 1)]);
}

/// Checks a decoded handshake against what the connector wants and accepts.
fn validate(hs: &Handshake, want: BusKind, fds: &[OwnedFd], opts: &ConnectOptions) -> Result<()> {
    if hs.kind != want {
        return Err(Error::AbiMismatch(format!(
            "listener offers a {:?} bus, expected {want:?}",
            hs.kind
        )));
    }
    if fds.len() != hs.fd_count() {
        return Err(Error::AbiMismatch(format!(
            "received {} fds, expected {}",
            fds.len(),
            hs.fd_count()
        )));
    }
    let caps = match hs.kind {
        BusKind::Spsc => vec![(hs.capacity_fwd, hs.shm_size_fwd)],
        BusKind::Rpc => {
            vec![(hs.capacity_fwd, hs.shm_size_fwd), (hs.capacity_rev, hs.shm_size_rev)]
        }
    };
    for (cap, shm) in caps {
        let (cap, shm) = (cap as usize, shm as usize);
        if cap > opts.max_capacity || shm > layout::shm_size(opts.max_capacity) {
            return Err(Error::CapacityLimit { offered: cap.max(shm), limit: opts.max_capacity });
        }
    }
    if let [a, b] = fds {
        let same = |x: &OwnedFd, y: &OwnedFd| match (rustix::fs::fstat(x), rustix::fs::fstat(y)) {
            (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
            _ => true,
        };
        if same(a, b) {
            return Err(Error::AbiMismatch(
                "the listener sent the same shared memory for both RPC rings".to_owned(),
            ));
        }
    }
    Ok(())
}

fn recv_handshake(
    sock: &OwnedFd,
    deadline: &mut Deadline<'_, '_>,
) -> Result<([u8; HANDSHAKE_SIZE], Vec<OwnedFd>)> {
    let mut bytes = [0u8; HANDSHAKE_SIZE];
    let mut fds = Vec::new();
    let mut got = 0;
    while got < HANDSHAKE_SIZE {
        deadline.poll(sock.as_fd(), PollFlags::IN)?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut bytes[got..])];
        match rustix::net::recvmsg(
            sock,
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        ) {
            Ok(msg) => {
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(rights) = m {
                        fds.extend(rights);
                    }
                }
                if msg.bytes == 0 {
                    return Err(refusal_or_short(&bytes[..got]));
                }
                got += msg.bytes;
            }
            Err(Errno::INTR | Errno::AGAIN) => {}
            Err(Errno::CONNRESET) => return Err(refusal_or_short(&bytes[..got])),
            Err(e) => return Err(Error::io("receive handshake", e)),
        }
    }
    Ok((bytes, fds))
}

/// The error for a handshake cut short: a server's refusal frame, or a bad peer.
fn refusal_or_short(got: &[u8]) -> Error {
    if got.len() == 8 && got[..4] == EXT_MAGIC {
        let code = u32::from_ne_bytes([got[4], got[5], got[6], got[7]]);
        if code == Refusal::TooManyClients as u32 {
            return Error::Refused(
                "the server already serves its maximum number of clients; retry later",
            );
        }
        if code == Refusal::ShuttingDown as u32 {
            return Error::Refused("the server is shutting down");
        }
        if code == Refusal::TooManyFromProcess as u32 {
            return Error::Refused(
                "this process already holds its share of the server's client slots",
            );
        }
        if code == Refusal::NotAllowed as u32 {
            return Error::PermissionDenied(
                "the listener refused this user (its uid is not allowed there)".to_owned(),
            );
        }
    }
    Error::AbiMismatch(format!(
        "listener closed after {} of {HANDSHAKE_SIZE} handshake bytes",
        got.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips_and_matches_wire_bytes() {
        let hs = Handshake::spsc(4096);
        let b = hs.encode();
        assert_eq!(&b[0..4], &0x5441_4348u32.to_ne_bytes());
        assert_eq!(&b[4..8], &4u32.to_ne_bytes());
        assert_eq!(&b[8..12], &4096u32.to_ne_bytes());
        assert_eq!(&b[12..16], &(768u32 + 4096).to_ne_bytes());
        assert_eq!(&b[16..24], &[0u8; 8]);
        assert_eq!(&b[24..28], &64u32.to_ne_bytes());
        assert_eq!(&b[28..32], &0u32.to_ne_bytes());
        assert_eq!(Handshake::decode(&b).unwrap(), hs);
        let rpc = Handshake::rpc(1024, 2048);
        assert_eq!(Handshake::decode(&rpc.encode()).unwrap(), rpc);
    }

    #[test]
    fn handshake_rejects_each_bad_field() {
        for (word, value) in [(0usize, 0xDEAD_BEEFu32), (1, 3), (6, 32), (7, 2), (7, 3)] {
            let mut b = Handshake::spsc(64).encode();
            b[word * 4..word * 4 + 4].copy_from_slice(&value.to_ne_bytes());
            assert!(matches!(Handshake::decode(&b), Err(Error::AbiMismatch(_))), "word {word}");
        }
    }

    #[test]
    fn socket_paths_are_checked() {
        assert!(matches!(socket_addr(""), Err(Error::InvalidPath { .. })));
        assert!(matches!(socket_addr(&"x".repeat(108)), Err(Error::InvalidPath { .. })));
        assert!(matches!(socket_addr("a\0b"), Err(Error::InvalidPath { .. })));
        assert!(socket_addr(&format!("/tmp/{}", "x".repeat(102))).is_ok());
    }
}
