//! The socket and its file: path checks, peer credentials, whether a socket is live, clearing a stale one, and who owns it.

use std::os::fd::OwnedFd;

use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::error::{Error, Result};
use crate::shm::liveness::PeerWatch;
use crate::shm::options::ConnectOptions;

use super::{connect_error, MAX_PATH_LEN};

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

/// Who is at the other end of a UNIX socket (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id (at connect or listen time).
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
}

pub(super) fn peer_cred(sock: &OwnedFd) -> Option<PeerCred> {
    rustix::net::sockopt::socket_peercred(sock)
        .ok()
        .map(|c| PeerCred { pid: c.pid.as_raw_nonzero().get(), uid: c.uid.as_raw() })
}

/// A pidfd of the process at the other end of `sock` (an upstream peer).
pub(super) fn process_of(sock: &OwnedFd) -> PeerWatch {
    let pidfd = rustix::net::sockopt::socket_peercred(sock)
        .ok()
        .filter(|cred| cred.pid != rustix::process::getpid())
        .and_then(|cred| {
            rustix::process::pidfd_open(cred.pid, rustix::process::PidfdFlags::empty()).ok()
        });
    pidfd.map_or(PeerWatch::Nothing, PeerWatch::Process)
}

pub(super) fn stream_socket(flags: SocketFlags) -> Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)
        .map_err(|e| Error::io("create UNIX socket", e))
}

/// Whether a process accepts connections on the socket at `addr` (probed with a
/// non-blocking connect that is closed at once; our listeners skip such a probe).
pub(super) fn is_live(addr: &SocketAddrUnix) -> Result<bool> {
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
pub(super) struct FileId {
    pub(super) dev: u64,
    pub(super) ino: u64,
}

pub(super) fn file_id(path: &str) -> Option<FileId> {
    let st = rustix::fs::lstat(path).ok()?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths vary by target
    Some(FileId { dev: st.st_dev as u64, ino: st.st_ino as u64 })
}

/// Clears the way for a bind at `path`: nothing there is fine, a stale socket is
/// removed, anything else is refused.
pub(super) fn clear_path(path: &str, addr: &SocketAddrUnix) -> Result<()> {
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

/// Checks that the socket file at `path` belongs to a trusted uid.
pub(super) fn check_socket_owner(path: &str, opts: &ConnectOptions) -> Result<()> {
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
