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

/// Round trips of 32 bytes on one blocking `std::net` connection.
pub fn rtt_echo(port: u16, samples: usize, warmup: usize) -> Vec<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; PAYLOAD];
    let mut back = [0u8; PAYLOAD];
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + warmup {
        let t = Instant::now();
        s.write_all(&msg).expect("write");
        s.read_exact(&mut back).expect("read");
        if i >= warmup {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    out
}

/// Round trips of 32 bytes through our blocking `TcpClient` (echo, msg_type 1).
pub fn rtt_ours(port: u16, samples: usize, warmup: usize) -> Vec<u64> {
    let c = tachyon::net::TcpClient::connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let msg = [7u8; PAYLOAD];
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + warmup {
        let t = Instant::now();
        let r = c.invoke(1, &msg, None).expect("call");
        if i >= warmup {
            out.push(t.elapsed().as_nanos() as u64);
        }
        assert_eq!(r.len(), PAYLOAD);
    }
    out
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
