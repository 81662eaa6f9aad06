//! Opening a client connection: the non-blocking connect with its deadline, the TLS
//! handshake, and the hello exchange that negotiates the frame size and window.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::{Conn, Inbox, Reader, TcpClientOptions, WriteBufs};
use crate::error::{Error, Result};
use crate::net::rpc::frame::{self, Decoder, Goaway, GoawayCode, Hello, Kind, Step, HEADER_LEN};

pub(super) fn io(context: &'static str) -> impl Fn(Errno) -> Error {
    move |e| Error::io(context, e)
}

/// Waits for `fd` to be ready for `events` until `deadline` (none: for ever).
pub(super) fn wait_fd(fd: &OwnedFd, events: PollFlags, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Some(
                    rustix::time::Timespec::try_from(left)
                        .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 }),
                )
            }
            None => None,
        };
        let mut fds = [PollFd::new(fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(Error::io("poll a TCP socket", e)),
        }
    }
}

/// Writes all of `buf` before `deadline`.
pub(super) fn write_all(
    fd: &OwnedFd,
    mut buf: &[u8],
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<()> {
    while !buf.is_empty() {
        match rustix::net::send(
            fd,
            buf,
            rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
        ) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::AGAIN) => {
                if !wait_fd(fd, PollFlags::OUT, deadline)? {
                    return Err(Error::Timeout(timeout));
                }
            }
            Err(Errno::INTR) => {}
            Err(Errno::PIPE | Errno::CONNRESET) => {
                return Err(Error::PeerDead("the server closed the connection"))
            }
            Err(e) => return Err(Error::io("send to the server", e)),
        }
    }
    Ok(())
}

/// Opens one connection and exchanges hellos, in a `connect` span.
pub(super) fn open(
    addr: std::net::SocketAddr,
    host: &str,
    index: u64,
    opts: &TcpClientOptions,
) -> Result<Conn> {
    let tls = opts.tls.is_some();
    let _span =
        tracing::debug_span!(target: "tachyon", "connect", transport = "tcp", address = %addr, tls)
            .entered();
    let opened = open_traced(addr, host, index, opts);
    match &opened {
        Ok(c) => tracing::event!(name: "connected", target: "tachyon", tracing::Level::INFO,
            transport = "tcp", address = %addr, tls, max_in_flight = c.max_in_flight,
            "connected to {addr}"),
        Err(e) => tracing::event!(name: "connect_failed", target: "tachyon", tracing::Level::DEBUG,
            transport = "tcp", address = %addr, error = %e, "connecting to {addr} failed: {e}"),
    }
    opened
}

fn open_traced(
    addr: std::net::SocketAddr,
    host: &str,
    index: u64,
    opts: &TcpClientOptions,
) -> Result<Conn> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let deadline = Instant::now() + opts.connect_timeout;
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let sock = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(io("create a TCP socket"))?;
    let connect_err = |e: Errno| Error::Connect { path: addr.to_string(), source: e.into() };
    match rustix::net::connect(&sock, &addr) {
        Ok(()) => {}
        Err(Errno::INPROGRESS | Errno::INTR) => {
            if !wait_fd(&sock, PollFlags::OUT, Some(deadline))? {
                return Err(Error::Timeout(opts.connect_timeout));
            }
            if let Some(e) =
                rustix::net::sockopt::socket_error(&sock).map_err(io("read SO_ERROR"))?.err()
            {
                return Err(connect_err(e));
            }
        }
        Err(e) => return Err(connect_err(e)),
    }
    crate::net::reactor::socket::tune(&sock, opts.dead_peer_timeout);
    let _handshake =
        tracing::debug_span!(target: "tachyon", "handshake", transport = "tcp", side = "client")
            .entered();
    let mut tls = match &opts.tls {
        Some(t) => {
            let mut session = t.session(host)?;
            handshake(&sock, &mut session, deadline, opts.connect_timeout)?;
            Some(session)
        }
        None => None,
    };
    let hello = Hello {
        version: frame::VERSION,
        max_frame: opts.max_frame,
        max_in_flight: opts.max_in_flight,
    };
    let mut first = hello.frame();
    if let Some(session) = tls.as_mut() {
        let mut wire = Vec::new();
        crate::net::tls::seal_client(session, &first, &mut wire);
        first = wire;
    }
    write_all(&sock, &first, Some(deadline), opts.connect_timeout)?;
    let (granted, buf) = read_hello(&sock, tls.as_mut(), addr, deadline, opts.connect_timeout)?;
    if granted.version < 1 {
        return Err(Error::AbiMismatch(format!(
            "the server speaks TCP frame version {}",
            granted.version
        )));
    }
    let consumed = HEADER_LEN + frame::HELLO_LEN;
    let inbox = Inbox { buf: buf[consumed..].to_vec(), ..Inbox::default() };
    // From here the socket blocks on receive (bounded by SO_RCVTIMEO), so a waiting
    // reader needs one syscall per reply, not a poll and a read; sends pass MSG_DONTWAIT.
    rustix::io::ioctl_fionbio(&sock, false).map_err(io("make the socket blocking"))?;
    let first_timeout = (opts.dead_peer_timeout / 4).max(Duration::from_millis(50));
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(first_timeout),
    )
    .map_err(io("set SO_RCVTIMEO"))?;
    Ok(Conn {
        sock,
        index,
        #[cfg(feature = "tokio")]
        tokio_fd: Mutex::new(None),
        writer: Mutex::new(WriteBufs::default()),
        inbox: Mutex::new(inbox),
        changed: Condvar::new(),
        reader: Mutex::new(Reader {
            chunk: vec![0; 64 << 10],
            plain: Vec::new(),
            timeout: first_timeout,
        }),
        next_seq: AtomicU64::new(1),
        in_flight: AtomicUsize::new(0),
        max_in_flight: granted.max_in_flight.max(1) as usize,
        decoder: Decoder::new(granted.max_frame.min(opts.max_frame)),
        dead_peer: opts.dead_peer_timeout,
        tls: tls.map(Mutex::new),
        pump: Mutex::new(None),
        closed: std::sync::atomic::AtomicBool::new(false),
    })
}

/// Reads the server's hello (or a goaway: a full server, a refusal, a server that wants
/// TLS). Returns it and every byte read after it.
pub(super) fn read_hello(
    sock: &OwnedFd,
    mut tls: Option<&mut rustls::ClientConnection>,
    addr: std::net::SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Hello, Vec<u8>)> {
    let mut buf = Vec::with_capacity(64);
    let decoder = Decoder::new(4096);
    let granted = loop {
        if let Ok(Step::Frame { header, payload, .. }) = decoder.next(&buf) {
            match header.kind {
                Kind::Hello => {
                    break Hello::decode(payload).map_err(|e| Error::Protocol(e.to_string()))?
                }
                Kind::Goaway => {
                    let g = Goaway::decode(payload);
                    if g.message.contains("requires TLS") {
                        return Err(Error::Tls(format!(
                            "{addr} requires TLS; give the client TLS options"
                        )));
                    }
                    return Err(match g.code {
                        GoawayCode::TooManyConnections => Error::Refused("the server already serves its maximum number of connections; retry later"),
                        GoawayCode::Shutdown => Error::Refused("the server is shutting down"),
                        _ => Error::Protocol(format!("the server refused the connection: {}", g.message)),
                    });
                }
                k => {
                    return Err(Error::Protocol(format!(
                        "the server answered the hello with a {k:?} frame"
                    )))
                }
            }
        }
        if decoder.next(&buf).is_err() {
            if tls.is_none() && buf.first() == Some(&0x15) {
                // A TLS alert record: the server expected a TLS handshake.
                return Err(Error::Tls(format!("{addr} speaks TLS; give the client TLS options")));
            }
            return Err(Error::Protocol("the server's first frame is not a valid hello".into()));
        }
        if !wait_fd(sock, PollFlags::IN, Some(deadline))? {
            return Err(Error::Timeout(timeout));
        }
        let mut chunk = [0u8; 256];
        match rustix::io::read(sock, &mut chunk) {
            Ok(0) => {
                return Err(Error::PeerDead("the server closed the connection during the hello"))
            }
            Ok(n) => match tls.as_deref_mut() {
                None => buf.extend_from_slice(&chunk[..n]),
                Some(session) => {
                    crate::net::tls::open_client(session, &chunk[..n], &mut buf)
                        .map_err(|e| Error::Tls(format!("{addr} ended the TLS session: {e}")))?;
                }
            },
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(Errno::CONNRESET) if tls.is_some() => {
                return Err(Error::Tls(format!("{addr} closed the TLS session during the hello")))
            }
            Err(e) => return Err(Error::io("read the server's hello", e)),
        }
    };
    Ok((granted, buf))
}

/// Runs a client's TLS handshake on the non-blocking `sock` until `deadline`.
pub(super) fn handshake(
    sock: &OwnedFd,
    session: &mut rustls::ClientConnection,
    deadline: Instant,
    timeout: Duration,
) -> Result<()> {
    let mut chunk = vec![0u8; 16 << 10];
    let mut wire = Vec::new();
    loop {
        wire.clear();
        crate::net::tls::seal_client(session, &[], &mut wire);
        if !wire.is_empty() {
            write_all(sock, &wire, Some(deadline), timeout)?;
        }
        if !session.is_handshaking() {
            return Ok(());
        }
        if !wait_fd(sock, PollFlags::IN, Some(deadline))? {
            return Err(Error::Tls(format!("the TLS handshake did not finish within {timeout:?}")));
        }
        let n =
            match rustix::io::read(sock, &mut chunk) {
                Ok(0) | Err(Errno::CONNRESET) => return Err(Error::Tls(
                    "the server closed the connection during the TLS handshake; is it serving TLS?"
                        .into(),
                )),
                Ok(n) => n,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(Error::io("read the TLS handshake", e)),
            };
        let mut early = Vec::new();
        if let Err(e) = crate::net::tls::open_client(session, &chunk[..n], &mut early) {
            // Send the alert rustls queued, so the server learns why.
            wire.clear();
            crate::net::tls::seal_client(session, &[], &mut wire);
            let _ = write_all(sock, &wire, Some(deadline), timeout);
            return Err(Error::Tls(format!("handshake failed: {e}")));
        }
        if !early.is_empty() {
            return Err(Error::Protocol("the server sent data before the hello exchange".into()));
        }
    }
}
