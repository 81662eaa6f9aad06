//! The two loads: blocking round trips on one connection (latency), and 64 connections
//! with 16 calls in flight each, driven by one epoll thread (throughput). The same load
//! drives every server; ours gets well-formed request frames after a hello, the echo
//! servers get bare 32-byte messages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::io::Errno;
use tachyon::net::frame::{self, Hello, Kind, HEADER_LEN};

/// Payload bytes per call.
pub const PAYLOAD: usize = 32;

/// A connected latency client: one round trip at a time.
pub enum RttClient {
    /// Bare 32-byte echo over `std::net`.
    Echo(TcpStream),
    /// Our request frames over `std::net` (after the hello).
    Frames(TcpStream, Vec<u8>),
    /// Our blocking `TcpClient`.
    Ours(tachyon::net::TcpClient),
}

impl RttClient {
    /// Connects the kind of client `kind` names to `port`.
    pub fn connect(kind: Client, port: u16) -> Self {
        let plain = || {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        };
        match kind {
            Client::Echo => Self::Echo(plain()),
            Client::Frames => {
                let mut s = plain();
                let h = Hello { version: 1, max_frame: 1 << 20, max_in_flight: 16 };
                s.write_all(&h.frame()).expect("hello");
                let mut back = [0u8; HEADER_LEN + frame::HELLO_LEN];
                s.read_exact(&mut back).expect("the server's hello");
                let mut req = Vec::new();
                frame::push_message(&mut req, Kind::Request, 1, 1, 0, &[7; PAYLOAD]);
                Self::Frames(s, req)
            }
            Client::Ours => Self::Ours(
                tachyon::net::TcpClient::connect(&format!("tcp://127.0.0.1:{port}"))
                    .expect("connect"),
            ),
        }
    }

    /// `n` round trips, their times appended to `out`.
    pub fn run(&mut self, n: usize, out: &mut Vec<u64>) {
        let msg = [7u8; PAYLOAD];
        let mut back = [0u8; HEADER_LEN + PAYLOAD];
        for _ in 0..n {
            let t = Instant::now();
            match self {
                Self::Echo(s) => {
                    s.write_all(&msg).expect("write");
                    s.read_exact(&mut back[..PAYLOAD]).expect("read");
                }
                Self::Frames(s, req) => {
                    s.write_all(req).expect("write");
                    s.read_exact(&mut back).expect("read");
                }
                Self::Ours(c) => {
                    let r = c.invoke(&msg, 1, None).expect("call");
                    assert_eq!(r.len(), PAYLOAD);
                }
            }
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
}

/// Which client a latency row uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Bare echo (the anchors).
    Echo,
    /// Our frames, written by hand over `std::net`.
    Frames,
    /// Our `TcpClient`.
    Ours,
}

struct Conn {
    s: TcpStream,
    /// Reply bytes still expected for the batch in flight.
    owed: usize,
}

/// `conns` connections, `depth` calls in flight on each: sends a batch, reads its
/// replies, sends the next. Returns the calls completed in `window` (after `warmup`).
/// `framed`: speak our frames (hello first) instead of bare echo.
pub fn pipelined(
    port: u16,
    conns: usize,
    depth: usize,
    framed: bool,
    warmup: Duration,
    window: Duration,
    on_window: &mut dyn FnMut(bool),
) -> u64 {
    let mut batch = Vec::new();
    let reply_len;
    if framed {
        for i in 0..depth {
            frame::push_message(&mut batch, Kind::Request, 1, i as u64 + 1, 0, &[7; PAYLOAD]);
        }
        reply_len = depth * (HEADER_LEN + PAYLOAD);
    } else {
        batch = vec![7u8; depth * PAYLOAD];
        reply_len = batch.len();
    }
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let mut cs = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        if framed {
            let h = Hello { version: 1, max_frame: 1 << 20, max_in_flight: 1024 };
            s.write_all(&h.frame()).expect("hello");
            let mut back = [0u8; HEADER_LEN + frame::HELLO_LEN];
            s.read_exact(&mut back).expect("the server's hello");
        }
        s.set_nonblocking(true).expect("nonblocking");
        epoll::add(&ep, s.as_fd(), epoll::EventData::new_u64(i as u64), epoll::EventFlags::IN)
            .expect("epoll add");
        cs.push(Conn { s, owed: 0 });
    }
    let send = |c: &mut Conn| {
        // A batch is far below the socket buffer: it goes out whole.
        c.s.write_all(&batch).expect("send a batch");
        c.owed = reply_len;
    };
    for c in &mut cs {
        send(c);
    }
    let empty =
        epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
    let mut events = vec![empty; 128];
    let mut buf = vec![0u8; 256 << 10];
    let start = Instant::now();
    let mut measuring = false;
    let mut calls = 0u64;
    loop {
        let now = Instant::now();
        if !measuring && now >= start + warmup {
            measuring = true;
            calls = 0;
            on_window(true);
        }
        if now >= start + warmup + window {
            on_window(false);
            return calls;
        }
        let n = epoll::wait(&ep, &mut events[..], None).expect("epoll_wait");
        for ev in &events[..n] {
            let c = &mut cs[ev.data.u64() as usize];
            loop {
                match c.s.read(&mut buf) {
                    Ok(0) => panic!("the server closed a connection"),
                    Ok(k) => {
                        assert!(k <= c.owed, "more reply bytes than calls");
                        c.owed -= k;
                        if c.owed == 0 {
                            calls += depth as u64;
                            send(c);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(Errno::INTR.raw_os_error()) => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
}
