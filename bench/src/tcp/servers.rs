//! The echo servers the TCP benchmark compares, each run as its own process: the
//! blocking `std::net` floor, tokio (current_thread), raw io_uring (multishot accept and
//! receive into a provided buffer ring), and ours (`TcpServer`, io_uring or epoll). Node's
//! `net` server is a script (`NODE_ECHO`). Each binds 127.0.0.1:0 and prints `ready
//! <port>`, then serves until killed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Node's own `net` echo server.
pub const NODE_ECHO: &str = r"
const net = require('node:net');
const server = net.createServer({ noDelay: true }, (s) => {
  s.on('data', (d) => s.write(d));
  s.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => console.log('ready ' + server.address().port));
";

fn ready(port: u16) {
    println!("ready {port}");
    std::io::stdout().flush().expect("stdout");
}

/// Runs the server `kind` until killed.
pub fn run(kind: &str) {
    match kind {
        "std" => std_echo(),
        "tokio" => tokio_echo(),
        "uring" => uring_echo(),
        "ours-uring" => ours(tachyon::net::Backend::IoUring),
        "ours-epoll" => ours(tachyon::net::Backend::Epoll),
        other => panic!("unknown server {other}"),
    }
}

/// A thread per connection, blocking reads and writes: the floor.
fn std_echo() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    ready(l.local_addr().expect("addr").port());
    for s in l.incoming() {
        let mut s = s.expect("accept");
        s.set_nodelay(true).expect("nodelay");
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn tokio_echo() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        ready(l.local_addr().expect("addr").port());
        loop {
            let (mut s, _) = l.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

fn ours(backend: tachyon::net::Backend) {
    let mut d = tachyon::rpc::Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).expect("register");
    let opts = tachyon::net::TcpServerOptions::default().backend(backend);
    let server = tachyon::net::TcpServer::bind("tcp://127.0.0.1:0", opts).expect("bind");
    let handle = server.spawn(Arc::new(d)).expect("spawn");
    ready(handle.local_addr().port());
    loop {
        std::thread::park();
    }
}

const ACCEPT: u64 = u64::MAX;
const SEND: u64 = 1 << 40;

/// A raw io_uring echo: one multishot accept, one multishot receive per connection into
/// a provided buffer ring, one send per received chunk.
fn uring_echo() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    ready(l.local_addr().expect("addr").port());
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(1024)
        .expect("io_uring");
    let mut bufs = tachyon::__bench::BufRing::new(&ring, 7, 512, 16 << 10).expect("buffer ring");
    let mut conns: Vec<Option<OwnedFd>> = Vec::new();
    // Send buffers by connection: the kernel reads them until the send completes.
    let mut sending: Vec<Vec<Vec<u8>>> = Vec::new();
    let push = |ring: &mut IoUring, e: &squeue::Entry| loop {
        // SAFETY: every entry points at memory that outlives its operation: the listener
        // and connection fds stay open until the process ends, and send buffers stay in
        // `sending` until their completion.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return;
        }
        ring.submit().expect("submit");
    };
    let accept = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd())).build().user_data(ACCEPT);
    push(&mut ring, &accept);
    let mut done: Vec<(u64, i32, u32)> = Vec::new();
    loop {
        ring.submit_and_wait(1).expect("submit_and_wait");
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        for &(data, res, flags) in &done {
            if data == ACCEPT {
                assert!(res >= 0, "accept failed: {res}");
                // SAFETY: a successful accept's result is a new fd we own.
                let fd = unsafe { OwnedFd::from_raw_fd(res) };
                rustix::net::sockopt::set_tcp_nodelay(&fd, true).expect("nodelay");
                let i = conns.len() as u64;
                let recv = opcode::RecvMulti::new(types::Fd(fd.as_raw_fd()), bufs.bgid())
                    .build()
                    .user_data(i);
                conns.push(Some(fd));
                sending.push(Vec::new());
                push(&mut ring, &recv);
            } else if data & SEND != 0 {
                let i = (data & !SEND) as usize;
                let sent = sending[i].remove(0);
                assert!(res < 0 || res as usize == sent.len(), "a short send: {res}");
            } else {
                let i = data as usize;
                if res <= 0 {
                    conns[i] = None;
                    continue;
                }
                let bid = cqueue::buffer_select(flags).expect("buffer id");
                let bytes = bufs.get(bid, res as usize).to_vec();
                bufs.recycle(bid);
                let fd: RawFd = conns[i].as_ref().map_or(-1, AsRawFd::as_raw_fd);
                let send = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), bytes.len() as u32)
                    .build()
                    .user_data(SEND | i as u64);
                sending[i].push(bytes);
                push(&mut ring, &send);
                if !cqueue::more(flags) {
                    let again = opcode::RecvMulti::new(types::Fd(fd), bufs.bgid())
                        .build()
                        .user_data(i as u64);
                    push(&mut ring, &again);
                }
            }
        }
    }
}
