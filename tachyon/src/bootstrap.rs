//! Bootstrap over a UNIX socket: the listener hands its memfd(s) to one connector.
//!
//! The upstream exchange (WIRE.md) is one `sendmsg` of a 32-byte [`Handshake`] with the
//! fds attached. Two Tachyon peers then go one step further, in a way upstream ignores:
//!
//! 1. After the handshake the listener sends an 8-byte hello (`"TCHX"`, version). An
//!    upstream connector reads only 32 bytes and closes, so it never sees it.
//! 2. Our connector answers with 8 bytes (`"TCHX"`, status: accepted or rejected). An
//!    upstream connector just closes, which the listener sees as EOF.
//! 3. If both sides spoke, they keep the socket open as a [`PeerLink`]. It carries no
//!    data. When either process exits, or drops its bus, the kernel closes its end and
//!    the other side sees a hang-up. This is how a blocked call learns that its peer is
//!    dead. We use this instead of heartbeats or a pidfd: it costs nothing while both live,
//!    cannot be fooled by pid reuse, and also covers a peer that merely closed its bus.
//!
//! With an upstream peer there is no socket link. We fall back to a pidfd of the peer
//! process (its pid from `SO_PEERCRED`), which notices when the process exits but not
//! when it merely drops its bus. Blocking calls rely on the caller's timeout for the rest.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketType,
};

use crate::error::{Error, Result};
use crate::layout::{self, FLAG_RPC, HANDSHAKE_SIZE};

/// How long a listener waits for the connector's extension answer. An upstream connector
/// answers at once (by closing), ours at once (by writing), so this only bounds a peer
/// that connects and then hangs.
const EXT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connector waits for the listener's hello after the handshake.
const EXT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Listener poll interval, so signals and deadlines are noticed (upstream uses 100 ms).
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// `sun_path` is 108 bytes including the NUL.
const MAX_PATH_LEN: usize = 107;

const EXT_MAGIC: [u8; 4] = *b"TCHX";
const EXT_VERSION: u32 = 1;
const EXT_ACCEPTED: u32 = 0;
const EXT_REJECTED: u32 = 1;

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

/// How we notice that the peer is gone: the socket kept open between two Tachyon peers,
/// or else a pidfd of the peer process.
#[derive(Debug, Default)]
pub struct PeerLink {
    sock: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
}

impl PeerLink {
    /// A link that knows nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// A link over a socket both Tachyon peers keep open.
    fn socket(sock: OwnedFd) -> Self {
        Self { sock: Some(sock), pidfd: None }
    }

    /// A link watching the process at the other end of `sock` (an upstream peer).
    fn process_of(sock: &OwnedFd) -> Self {
        let pidfd = rustix::net::sockopt::socket_peercred(sock)
            .ok()
            .filter(|cred| cred.pid != rustix::process::getpid())
            .and_then(|cred| {
                rustix::process::pidfd_open(cred.pid, rustix::process::PidfdFlags::empty()).ok()
            });
        Self { sock: None, pidfd }
    }

    /// Whether the peer negotiated a liveness socket (it is a Tachyon peer), so even a
    /// peer that drops its bus but lives on is noticed.
    pub fn is_linked(&self) -> bool {
        self.sock.is_some()
    }

    /// Whether anything watches the peer (a socket link or a pidfd).
    pub fn is_watched(&self) -> bool {
        self.sock.is_some() || self.pidfd.is_some()
    }

    /// Checks, without blocking, whether the peer is still there.
    ///
    /// # Errors
    /// [`Error::PeerDead`] when the peer closed its end (it exited, crashed, or dropped
    /// its bus).
    pub fn check(&self) -> Result<()> {
        if let Some(pidfd) = &self.pidfd {
            let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
            let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
            if matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
                return Err(Error::PeerDead("the peer process exited"));
            }
        }
        let Some(sock) = &self.sock else { return Ok(()) };
        let mut fds = [PollFd::new(sock, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }))
        {
            Ok(0) | Err(Errno::INTR) => Ok(()),
            Ok(_) => {
                let ev = fds[0].revents();
                if ev.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP) {
                    return Err(Error::PeerDead("the peer process exited or closed its bus"));
                }
                // Readable: the peer never writes after the handshake, so this is EOF (or
                // a peer breaking the protocol, which we treat the same).
                let mut b = [0u8; 1];
                match rustix::net::recv(sock, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
                    Ok((0, _)) => Err(Error::PeerDead("the peer process exited or closed its bus")),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(Error::io("poll peer link", e)),
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

/// Options of a listen: deadline and a periodic interrupt check.
pub struct ListenSpec<'a> {
    /// Give up after this long without a connector.
    pub timeout: Option<Duration>,
    /// Called every 100 ms while waiting; an error ends the listen.
    pub interrupt: Option<&'a mut dyn FnMut() -> Result<()>>,
}

/// A bound, listening UNIX socket. The socket file is removed when this is dropped.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: String,
}

impl Listener {
    /// Binds `path` (replacing a stale socket file) and listens with `backlog`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] or [`Error::Io`].
    pub fn bind(path: &str, backlog: i32) -> Result<Self> {
        let addr = socket_addr(path)?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove stale socket file", e)),
        }
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::io("create listening socket", e))?;
        rustix::net::bind(&fd, &addr).map_err(|e| Error::io("bind socket path", e))?;
        let listener = Self { fd, path: path.to_owned() };
        rustix::net::listen(&listener.fd, backlog).map_err(|e| Error::io("listen on socket", e))?;
        Ok(listener)
    }

    /// Waits for the next connector (polling every 100 ms for the deadline and the
    /// interrupt check; a new connector is noticed at once).
    ///
    /// # Errors
    /// [`Error::Timeout`], the interrupt check's error, or [`Error::Io`].
    pub fn accept(&self, spec: ListenSpec<'_>) -> Result<Accepted> {
        accept_with(&self.fd, spec).map(Accepted)
    }

    /// The socket path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An accepted connection that has not yet been offered a bus.
#[derive(Debug)]
pub struct Accepted(OwnedFd);

impl Accepted {
    /// Sends the handshake and `fds`, then negotiates the liveness link.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] if our connector rejects the handshake, [`Error::Io`] if
    /// the send fails.
    pub fn offer(self, hs: &Handshake, fds: &[BorrowedFd<'_>]) -> Result<PeerLink> {
        send_handshake(&self.0, hs, fds)?;
        negotiate_as_listener(self.0)
    }

    /// Turns the connector away with a reason our connector reports as
    /// [`Error::Refused`]. An upstream connector sees a short handshake and fails too.
    pub fn refuse(self, reason: Refusal) {
        let _ = rustix::net::send(&self.0, &ext_frame(reason as u32), SendFlags::NOSIGNAL);
    }
}

/// Why a server turned a connector away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Refusal {
    /// The server already serves its maximum number of clients.
    TooManyClients = 0x100,
    /// The server is shutting down.
    ShuttingDown = 0x101,
}

/// Listens on `path` for one connector and hands it `fds` with `hs`. One-shot, like
/// upstream: the socket file exists only while waiting.
///
/// # Errors
/// [`Error::InvalidPath`], [`Error::Timeout`], [`Error::AbiMismatch`] (our connector
/// rejected the handshake), or [`Error::Io`].
pub fn listen(
    path: &str,
    hs: &Handshake,
    fds: &[BorrowedFd<'_>],
    spec: ListenSpec<'_>,
) -> Result<PeerLink> {
    let listener = Listener::bind(path, 1)?;
    let conn = listener.accept(spec)?;
    drop(listener);
    conn.offer(hs, fds)
}

fn accept_with(listener: &OwnedFd, mut spec: ListenSpec<'_>) -> Result<OwnedFd> {
    let deadline = spec.timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let mut wait = ACCEPT_POLL;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(spec.timeout.unwrap_or_default()));
            }
            wait = wait.min(left);
        }
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let ts = rustix::time::Timespec::try_from(wait).expect("100 ms fits a timespec");
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(_) => match rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC) {
                Ok(c) => return Ok(c),
                Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => {}
                Err(e) => return Err(Error::io("accept connector", e)),
            },
            Err(e) => return Err(Error::io("poll listening socket", e)),
        }
        if let Some(check) = spec.interrupt.as_mut() {
            check()?;
        }
    }
}

fn send_handshake(conn: &OwnedFd, hs: &Handshake, fds: &[BorrowedFd<'_>]) -> Result<()> {
    let bytes = hs.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Error::io("attach fds", std::io::Error::other("control buffer too small")));
    }
    loop {
        match rustix::net::sendmsg(conn, &[IoSlice::new(&bytes)], &mut control, SendFlags::NOSIGNAL)
        {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(Error::io("send handshake", std::io::Error::other("short write"))),
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::io("send handshake", e)),
        }
    }
}

fn ext_frame(word: u32) -> [u8; 8] {
    let mut f = [0u8; 8];
    f[..4].copy_from_slice(&EXT_MAGIC);
    f[4..].copy_from_slice(&word.to_ne_bytes());
    f
}

fn negotiate_as_listener(conn: OwnedFd) -> Result<PeerLink> {
    // The peer may be upstream and gone already: a failed send just means "no link".
    let fallback = PeerLink::process_of(&conn);
    if rustix::net::send(&conn, &ext_frame(EXT_VERSION), SendFlags::NOSIGNAL).is_err() {
        return Ok(fallback);
    }
    match read_frame(&conn, EXT_ANSWER_TIMEOUT)? {
        Some(EXT_ACCEPTED) => Ok(PeerLink::socket(conn)),
        Some(EXT_REJECTED) => Err(Error::AbiMismatch(
            "the connector rejected the handshake (other bus kind)".to_owned(),
        )),
        _ => Ok(fallback),
    }
}

/// Reads one 8-byte extension frame. `None` on EOF, timeout or a frame that is not ours.
fn read_frame(sock: &OwnedFd, timeout: Duration) -> Result<Option<u32>> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut fds = [PollFd::new(sock, PollFlags::IN)];
        let ts = rustix::time::Timespec::try_from(left)
            .unwrap_or(rustix::time::Timespec { tv_sec: 5, tv_nsec: 0 });
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Error::io("poll bootstrap socket", e)),
        }
        match rustix::net::recv(sock, &mut buf[got..], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => got += n,
            Err(Errno::INTR | Errno::AGAIN) => {}
            Err(_) => return Ok(None),
        }
    }
    if buf[..4] != EXT_MAGIC {
        return Ok(None);
    }
    Ok(Some(u32::from_ne_bytes(buf[4..].try_into().expect("4 bytes"))))
}

/// What a connector receives: the validated handshake, its fds in order, and the link.
#[derive(Debug)]
pub struct Connection {
    /// The validated handshake.
    pub handshake: Handshake,
    /// The fds, `[fwd]` or `[fwd, rev]`.
    pub fds: Vec<OwnedFd>,
    /// Liveness link, if the listener is a Tachyon peer.
    pub link: PeerLink,
}

/// Connects to a listener at `path`, expecting a bus of kind `want`. Fails at once if
/// nobody listens (retrying is the caller's job, as upstream).
///
/// # Errors
/// [`Error::AbiMismatch`] (and the received fds are closed) if the handshake is not v0x04
/// of kind `want`; [`Error::Io`] if the connection fails.
pub fn connect(path: &str, want: BusKind) -> Result<Connection> {
    let addr = socket_addr(path)?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create socket", e))?;
    loop {
        match rustix::net::connect(&sock, &addr) {
            Ok(()) => break,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::io("connect to listener (is it listening?)", e)),
        }
    }
    let (bytes, fds) = recv_handshake(&sock)?;
    let checked = Handshake::decode(&bytes).and_then(|hs| {
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
        Ok(hs)
    });
    let hello = read_frame(&sock, EXT_HELLO_TIMEOUT)?;
    let ours = hello.is_some_and(|v| v >= EXT_VERSION);
    match checked {
        Ok(handshake) => {
            let link = if ours
                && rustix::net::send(&sock, &ext_frame(EXT_ACCEPTED), SendFlags::NOSIGNAL).is_ok()
            {
                PeerLink::socket(sock)
            } else {
                PeerLink::process_of(&sock)
            };
            Ok(Connection { handshake, fds, link })
        }
        Err(e) => {
            if ours {
                let _ = rustix::net::send(&sock, &ext_frame(EXT_REJECTED), SendFlags::NOSIGNAL);
            }
            Err(e)
        }
    }
}

fn recv_handshake(sock: &OwnedFd) -> Result<([u8; HANDSHAKE_SIZE], Vec<OwnedFd>)> {
    let mut bytes = [0u8; HANDSHAKE_SIZE];
    let mut fds = Vec::new();
    let mut got = 0;
    while got < HANDSHAKE_SIZE {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut bytes[got..])];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
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
            Err(Errno::INTR) => {}
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
