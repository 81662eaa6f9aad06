//! The sockets the reactors serve: binding a listener, reading addresses, and the
//! per-connection options that bound how long a dead peer goes unnoticed.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::address::Address;
use crate::error::{Error, Result};

/// The socket address to bind for `address` (`tcp://host:port` or `host:port`).
pub(crate) fn resolve_bind(address: &str) -> Result<SocketAddr> {
    let addr = match Address::parse(address) {
        Ok(a @ Address::Tcp { .. }) => a,
        Ok(Address::Unix(_)) if address.contains(':') && !address.starts_with("unix:") => {
            Address::parse(&format!("tcp://{address}"))?
        }
        Ok(Address::Unix(_)) => {
            return Err(Error::InvalidAddress {
                address: address.to_owned(),
                reason: "a TCP server needs tcp://host:port",
            })
        }
        Err(e) => return Err(e),
    };
    Ok(addr.resolve()?[0])
}

/// Makes one listening socket (non-blocking, `SO_REUSEPORT`).
pub(crate) fn listener(addr: SocketAddr) -> Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| Error::io("create TCP socket", e))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)
        .map_err(|e| Error::io("set SO_REUSEADDR", e))?;
    rustix::net::sockopt::set_socket_reuseport(&fd, true)
        .map_err(|e| Error::io("set SO_REUSEPORT", e))?;
    match rustix::net::bind(&fd, &addr) {
        Ok(()) => {}
        Err(rustix::io::Errno::ADDRINUSE) => {
            return Err(Error::AddrInUse { path: addr.to_string() });
        }
        Err(e) => return Err(Error::io("bind TCP address", e)),
    }
    rustix::net::listen(&fd, 1024).map_err(|e| Error::io("listen on TCP", e))?;
    Ok(fd)
}

/// The address `fd` is bound to.
pub(crate) fn local_addr(fd: &OwnedFd) -> Result<SocketAddr> {
    let a =
        rustix::net::getsockname(fd.as_fd()).map_err(|e| Error::io("read the bound address", e))?;
    SocketAddr::try_from(a).map_err(|_| {
        Error::io("read the bound address", std::io::Error::other("not an IP address"))
    })
}

/// The address of the other end of `fd`, for logs.
pub(crate) fn peer_of(fd: &OwnedFd) -> String {
    rustix::net::getpeername(fd)
        .ok()
        .flatten()
        .and_then(|a| SocketAddr::try_from(a).ok())
        .map_or_else(|| "an unknown peer".to_owned(), |a| a.to_string())
}

/// Applies the per-connection socket options: no Nagle delay, and a bound on how long
/// a dead peer goes unnoticed (`TCP_USER_TIMEOUT` for unacknowledged data, keepalive for
/// an idle connection).
pub(crate) fn tune(fd: &OwnedFd, dead_peer: Duration) {
    use rustix::net::sockopt;
    let _ = sockopt::set_tcp_nodelay(fd, true);
    let _ =
        sockopt::set_tcp_user_timeout(fd, u32::try_from(dead_peer.as_millis()).unwrap_or(u32::MAX));
    let _ = sockopt::set_socket_keepalive(fd, true);
    let idle = (dead_peer / 2).max(Duration::from_secs(1));
    let _ = sockopt::set_tcp_keepidle(fd, idle);
    let _ = sockopt::set_tcp_keepintvl(fd, Duration::from_secs(1));
    let _ =
        sockopt::set_tcp_keepcnt(fd, u32::try_from((dead_peer / 2).as_secs()).unwrap_or(5).max(1));
}
