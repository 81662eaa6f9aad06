//! The connector: reach the listener within the connect timeout, take its handshake and fds, validate them and answer.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketFlags};

use crate::error::{Error, Result};
use crate::shm::layout::{self, HANDSHAKE_SIZE};
use crate::shm::liveness::PeerWatch;
use crate::shm::options::ConnectOptions;

use super::{
    check_socket_owner, ext_frame, peer_cred, process_of, read_frame, socket_addr, stream_socket,
    BusKind, Deadline, Frame, Handshake, ListenSpec, Refusal, EXT_ACCEPTED, EXT_ACCEPTED_FAST,
    EXT_HELLO_AFTER_FAILURE, EXT_MAGIC, EXT_REJECTED, EXT_VERSION, EXT_VERSION_FAST,
};

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

pub(super) fn connect_error(path: &str, source: impl Into<std::io::Error>) -> Error {
    Error::Connect { path: path.to_owned(), source: source.into() }
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

pub(super) fn connect_traced(
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
pub(super) fn handshake_over(
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

/// Checks a decoded handshake against what the connector wants and accepts.
pub(super) fn validate(
    hs: &Handshake,
    want: BusKind,
    fds: &[OwnedFd],
    opts: &ConnectOptions,
) -> Result<()> {
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

pub(super) fn recv_handshake(
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
pub(super) fn refusal_or_short(got: &[u8]) -> Error {
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
