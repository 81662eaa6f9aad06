//! RPC over TCP, for real: both backends (io_uring and epoll) run the same suite, over
//! loopback and across two network namespaces joined by a veth pair (the cross-host path).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::frame::{self, Goaway, GoawayCode, Header, Hello, Kind, HEADER_LEN};
use tachyon::net::{
    Backend, TcpClient, TcpClientOptions, TcpServer, TcpServerHandle, TcpServerOptions,
};
use tachyon::rpc::{code, Caller, RpcBus, RpcServer, ServerOptions};
use tachyon::Error;
use tachyon_tests::service::{add, boom, echo, fail, sleep_ms, sleeps, whoami, AddReq, AddResp};
use tachyon_tests::{checksum, fill_payload, payload_size, peer_bin, socket_path, tcp_peer};

const BACKENDS: [Backend; 2] = [Backend::IoUring, Backend::Epoll];
const T: Duration = Duration::from_secs(20);

fn serve(backend: Backend, opts: TcpServerOptions) -> TcpServerHandle {
    let server =
        TcpServer::bind("tcp://127.0.0.1:0", opts.backend(backend).on_error(|_| {})).unwrap();
    assert_eq!(server.backend(), backend);
    server.spawn(Arc::new(tachyon_tests::service::dispatcher())).unwrap()
}

fn client(h: &TcpServerHandle) -> TcpClient {
    TcpClient::connect(&h.address()).unwrap()
}

#[test]
fn round_trips_typed_raw_and_every_error_on_both_backends() {
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default());
        let c = client(&h);
        assert_eq!(echo::call(&c, b"over tcp").unwrap(), b"over tcp", "{b:?}");
        assert_eq!(add::call(&c, &AddReq { a: 40, b: 2 }).unwrap(), AddResp { sum: 42 });
        assert_eq!(whoami::call(&c, &()).unwrap(), std::process::id());
        let rpc = |e: Error| match e {
            Error::Rpc(e) => e.code,
            other => panic!("{b:?}: not an rpc error: {other}"),
        };
        assert_eq!(rpc(fail::call(&c, &"no".to_owned()).unwrap_err()), code::HANDLER_ERROR);
        assert_eq!(rpc(boom::call(&c, b"x").unwrap_err()), code::HANDLER_PANIC);
        assert_eq!(rpc(c.invoke(b"", 999, Some(T)).unwrap_err()), code::UNKNOWN_MSG_TYPE);
        assert_eq!(rpc(c.invoke(b"\xc1", 2, Some(T)).unwrap_err()), code::BAD_REQUEST);
        // The server survived the panic and serves on.
        assert_eq!(echo::call(&c, b"still here").unwrap(), b"still here");
        assert!(h.stats().requests >= 8);
        // Error replies by code (a reactor adds its counts after its turn: wait for it).
        let want = std::collections::BTreeMap::from([
            (code::UNKNOWN_MSG_TYPE, 1),
            (code::HANDLER_ERROR, 1),
            (code::HANDLER_PANIC, 1),
            (code::BAD_REQUEST, 1),
        ]);
        let deadline = std::time::Instant::now() + T;
        while h.stats().errors != want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(h.stats().errors, want, "{b:?}");
        h.shutdown().unwrap();
    }
}

/// A raw server speaking the frames by hand: each connection takes `n` requests, then
/// answers them newest first.
fn reversing_server(n: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..64 {
            let (mut sock, _) = listener.accept().unwrap();
            workers.push(std::thread::spawn(move || {
                let mut head = [0u8; HEADER_LEN];
                sock.read_exact(&mut head).unwrap();
                let hello = Header::decode(&head, 64).unwrap();
                let mut body = vec![0; hello.len as usize];
                sock.read_exact(&mut body).unwrap();
                sock.write_all(
                    &Hello { version: 1, max_frame: 1 << 20, max_in_flight: 16 }.frame(),
                )
                .unwrap();
                let mut calls = Vec::new();
                for _ in 0..n {
                    sock.read_exact(&mut head).unwrap();
                    let req = Header::decode(&head, 1 << 20).unwrap();
                    let mut payload = vec![0; req.len as usize];
                    sock.read_exact(&mut payload).unwrap();
                    calls.push((req, payload));
                }
                let mut out = Vec::new();
                for (h, p) in calls.iter().rev() {
                    frame::push_message(&mut out, Kind::Reply, h.type_id, h.correlation_id, 0, p);
                }
                sock.write_all(&out).unwrap();
                let _ = sock.read(&mut head); // until the client goes
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
    });
    (addr, server)
}

#[test]
fn sixty_four_connections_of_sixteen_pipelined_calls_with_replies_out_of_order() {
    let (addr, server) = reversing_server(16);
    let c = TcpClient::connect_with(&addr, &TcpClientOptions::default().connections(64)).unwrap();
    let cids: Vec<(u64, u32)> =
        (0..64 * 16u32).map(|i| (c.call(&i.to_le_bytes(), 1).unwrap(), i)).collect();
    assert_eq!(c.in_flight(), 1024);
    // Wait in send order: most replies arrive before their waiter and are parked.
    for (cid, i) in cids {
        assert_eq!(c.wait_timeout(cid, T).unwrap(), i.to_le_bytes());
    }
    assert_eq!(c.in_flight(), 0);
    drop(c);
    server.join().unwrap();

    // And 64 x 16 against the real server, on both backends, with checksums.
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default());
        let c = TcpClient::connect_with(&h.address(), &TcpClientOptions::default().connections(64))
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for round in 0..4u64 {
                        let base = (t * 4 + round) * 64;
                        let calls: Vec<(u64, u64)> = (base..base + 64)
                            .map(|k| {
                                let mut p = vec![0; payload_size(9, k, 512)];
                                fill_payload(k, &mut p);
                                (k, c.call_timeout(&p, 1, T).unwrap())
                            })
                            .collect();
                        for (k, cid) in calls {
                            let got = c.wait_timeout(cid, T).unwrap();
                            let mut want = vec![0; payload_size(9, k, 512)];
                            fill_payload(k, &mut want);
                            assert_eq!(got, want, "{b:?} call {k}");
                        }
                    }
                });
            }
        });
        assert_eq!(h.stats().accepted, 64);
        h.shutdown().unwrap();
    }
}

#[test]
fn a_million_checksummed_calls_without_loss_on_both_backends() {
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default());
        let c = TcpClient::connect_with(&h.address(), &TcpClientOptions::default().connections(2))
            .unwrap();
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let c = &c;
                s.spawn(move || {
                    let mut k = t * 500_000;
                    let end = k + 500_000;
                    let mut p = Vec::new();
                    while k < end {
                        let calls: Vec<(u64, u64, u32)> = (k..(k + 64).min(end))
                            .map(|i| {
                                p.resize(payload_size(3, i, 64), 0);
                                fill_payload(i, &mut p);
                                (i, c.call_timeout(&p, 1, T).unwrap(), checksum(&p))
                            })
                            .collect();
                        for (i, cid, sum) in calls {
                            let got = c.wait_timeout(cid, T).unwrap();
                            assert_eq!(
                                (got.len(), checksum(&got)),
                                (payload_size(3, i, 64), sum),
                                "{b:?} call {i}"
                            );
                        }
                        k = (k + 64).min(end);
                    }
                });
            }
        });
        eprintln!("{b:?}: 1,000,000 calls in {:?}", start.elapsed());
        assert!(h.stats().requests >= 1_000_000);
        h.shutdown().unwrap();
    }
}

#[test]
fn deadlines_cancels_and_a_reused_window() {
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default());
        let c =
            TcpClient::connect_with(&h.address(), &TcpClientOptions::default().max_in_flight(2))
                .unwrap();
        let start = Instant::now();
        let e = sleep_ms::call_timeout(&c, &300, Duration::from_millis(50)).unwrap_err();
        // A Timeout, not the reply, and not before the deadline.
        assert!(matches!(e, Error::Timeout(_)), "{b:?}: {e}");
        assert!(start.elapsed() >= Duration::from_millis(50), "{:?}", start.elapsed());
        assert_eq!(c.in_flight(), 0, "a timed-out invoke abandons its call");
        // The window: two slow calls fill it; a third cannot go without waiting.
        let slow: Vec<u64> = (0..2).map(|_| c.call(&rmp_serde_u64(200), 5).unwrap()).collect();
        assert!(matches!(c.call(b"x", 1), Err(Error::Full { .. })));
        for cid in &slow {
            c.abandon(*cid); // cancel frames go out; the late replies are dropped
        }
        assert_eq!(c.in_flight(), 0);
        assert_eq!(echo::call_timeout(&c, b"reused", T).unwrap(), b"reused");
        std::thread::sleep(Duration::from_millis(450)); // the abandoned replies arrive meanwhile
        assert_eq!(echo::call_timeout(&c, b"clean", T).unwrap(), b"clean");
        h.shutdown().unwrap();
    }
}

fn rmp_serde_u64(v: u64) -> Vec<u8> {
    tachyon::rpc::codec::encode(&v).unwrap()
}

#[test]
fn a_killed_server_fails_calls_in_flight_with_peer_dead() {
    for b in ["io_uring", "epoll"] {
        let (mut srv, addr, _) = tcp_peer(&["--addr", "tcp://127.0.0.1:0", "--backend", b], None);
        let c = TcpClient::connect(&addr).unwrap();
        let cid = c.call(&rmp_serde_u64(10_000), 5).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        srv.0.kill().unwrap();
        // PeerDead, long before the wait's own timeout (which would be a Timeout).
        let e = c.wait_timeout(cid, T).unwrap_err();
        assert!(matches!(e, Error::PeerDead(_)), "{b}: {e}");
    }
}

#[test]
fn a_stopped_server_times_calls_out_then_recovers_after_sigcont() {
    let (srv, addr, _) = tcp_peer(&["--addr", "tcp://127.0.0.1:0"], None);
    let c = TcpClient::connect(&addr).unwrap();
    assert_eq!(echo::call_timeout(&c, b"before", T).unwrap(), b"before");
    let pid = rustix::process::Pid::from_child(&srv.0);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    // The signal lands asynchronously: wait until the process is stopped.
    let stat = format!("/proc/{}/stat", srv.0.id());
    let stopped = || {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'))
    };
    let t0 = Instant::now();
    while !stopped() {
        assert!(t0.elapsed() < T, "SIGSTOP did not stop the server");
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..3 {
        let e = echo::call_timeout(&c, b"stopped", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
    }
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    assert_eq!(echo::call_timeout(&c, b"after", T).unwrap(), b"after");
}

/// Opens a raw connection, optionally sends our hello, and returns it.
fn raw(addr: std::net::SocketAddr, hello: Option<Hello>) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Some(h) = hello {
        s.write_all(&h.frame()).unwrap();
        let mut head = [0u8; HEADER_LEN + frame::HELLO_LEN];
        s.read_exact(&mut head).unwrap();
    }
    s
}

/// Reads until EOF; returns the goaway the server sent (the last frame).
fn goaway_of(mut s: TcpStream) -> GoawayCode {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let d = frame::Decoder::new(1 << 20);
    let mut at = 0;
    let mut last = None;
    while let Ok(frame::Step::Frame { header, payload, used }) = d.next(&all[at..]) {
        if header.kind == Kind::Goaway {
            last = Some(Goaway::decode(payload).code);
        }
        at += used;
    }
    last.unwrap_or_else(|| panic!("no goaway in {} bytes", all.len()))
}

#[test]
fn bad_input_closes_only_that_connection_with_a_reason() {
    let hello = Hello { version: 1, max_frame: 1 << 20, max_in_flight: 4 };
    for b in BACKENDS {
        let opts = TcpServerOptions::default()
            .max_frame(1 << 16)
            .max_connections(8)
            .timeouts(Duration::from_millis(300), Duration::from_millis(300));
        let h = serve(b, opts);
        let addr = h.local_addr();
        let good = client(&h);
        let still_good = |what: &str| {
            assert_eq!(
                echo::call_timeout(&good, what.as_bytes(), T).unwrap(),
                what.as_bytes(),
                "{b:?} after {what}"
            );
        };

        // A frame over the negotiated maximum.
        let mut s = raw(addr, Some(hello));
        s.write_all(
            &Header { len: 1 << 17, correlation_id: 1, ..Header::new(Kind::Request) }.encode(),
        )
        .unwrap();
        assert_eq!(goaway_of(s), GoawayCode::FrameTooLarge, "{b:?}");
        still_good("too large");
        // A header of garbage, and an unknown kind.
        let mut s = raw(addr, Some(hello));
        s.write_all(&[0xAB; HEADER_LEN]).unwrap();
        assert_eq!(goaway_of(s), GoawayCode::Protocol);
        let mut s = raw(addr, Some(hello));
        let mut bytes = Header { correlation_id: 1, ..Header::new(Kind::Request) }.encode();
        bytes[4] = 42;
        s.write_all(&bytes).unwrap();
        assert_eq!(goaway_of(s), GoawayCode::Protocol);
        still_good("garbage");
        // A request before the hello; a hello that never comes; a frame that stalls.
        let mut s = raw(addr, None);
        let mut req = Vec::new();
        frame::push_message(&mut req, Kind::Request, 1, 1, 0, b"early");
        s.write_all(&req).unwrap();
        assert_eq!(goaway_of(s), GoawayCode::Protocol);
        assert_eq!(goaway_of(raw(addr, None)), GoawayCode::HelloTimeout);
        let mut s = raw(addr, Some(hello));
        s.write_all(&req[..10]).unwrap(); // slowloris: a frame cut short, then silence
        assert_eq!(goaway_of(s), GoawayCode::ReadTimeout);
        still_good("timeouts");
        // More calls in flight than negotiated (sent without reading a reply).
        let mut s = raw(addr, Some(hello));
        let mut burst = Vec::new();
        for cid in 1..=32 {
            frame::push_message(&mut burst, Kind::Request, 1, cid, 0, b"x");
        }
        s.write_all(&burst).unwrap();
        assert_eq!(goaway_of(s), GoawayCode::TooManyInFlight);
        still_good("in flight");
        // More connections than the limit.
        let mut held: Vec<TcpStream> = (0..7).map(|_| raw(addr, Some(hello))).collect();
        let extra = raw(addr, None);
        assert_eq!(goaway_of(extra), GoawayCode::TooManyConnections);
        assert!(matches!(TcpClient::connect(&h.address()), Err(Error::Refused(_))));
        held.clear();
        std::thread::sleep(Duration::from_millis(100));
        still_good("the limit");
        let stats = h.stats();
        assert!(stats.protocol_errors >= 7, "{b:?}: {stats:?}");
        assert!(stats.refused >= 2, "{b:?}: {stats:?}");
        h.shutdown().unwrap();
    }
}

#[test]
fn a_graceful_shutdown_answers_calls_in_flight_then_says_goaway() {
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default());
        let c = client(&h);
        let slow = c.call(&rmp_serde_u64(300), 5).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let stopper = std::thread::spawn(move || h.shutdown());
        let reply = c.wait_timeout(slow, T).unwrap();
        assert_eq!(tachyon::rpc::codec::decode::<u64>(&reply).unwrap(), 300, "{b:?}");
        stopper.join().unwrap().unwrap();
        let e = echo::call_timeout(&c, b"after", T).unwrap_err();
        assert!(
            matches!(e, Error::PeerClosed | Error::Refused(_) | Error::PeerDead(_)),
            "{b:?}: {e}"
        );
    }
}

#[test]
fn a_remote_address_must_be_allowed_and_tcp_is_probed() {
    let e = TcpServer::bind("tcp://0.0.0.0:0", TcpServerOptions::default()).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    assert!(
        TcpServer::bind("tcp://0.0.0.0:0", TcpServerOptions::default().allow_remote(true)).is_ok()
    );
    let caps = tachyon::net::capabilities();
    // This machine (Linux 6.18, io_uring enabled) runs the io_uring backend.
    assert_eq!(caps.backend, Backend::IoUring, "{caps:?}");
    assert!(caps.opcodes.iter().any(|(n, ok)| *n == "RecvMulti" && *ok), "{caps:?}");
}

#[test]
fn the_same_service_over_shared_memory_and_tcp_at_once() {
    fn twice(c: &impl Caller) -> i64 {
        add::call(c, &AddReq { a: 20, b: 1 }).unwrap().sum * 2
    }
    let d = Arc::new(tachyon_tests::service::dispatcher());
    let path = socket_path("both");
    let shm =
        RpcServer::bind(&path, ServerOptions::default().on_error(|_| {})).unwrap().spawn(d.clone());
    let tcp = TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default())
        .unwrap()
        .spawn(d)
        .unwrap();
    let over_shm = RpcBus::connect(&path).unwrap();
    let over_tcp = TcpClient::connect(&tcp.address()).unwrap();
    assert_eq!(twice(&over_shm), 42);
    assert_eq!(twice(&over_tcp), 42);
    drop(over_shm);
    drop(shm);
    tcp.shutdown().unwrap();
}

#[test]
fn a_worker_pool_keeps_slow_handlers_off_the_reactor() {
    for b in BACKENDS {
        let h = serve(b, TcpServerOptions::default().workers(2));
        let c = TcpClient::connect_with(&h.address(), &TcpClientOptions::default().connections(2))
            .unwrap();
        // A slow call does not hold up a fast one behind it: the fast reply comes while
        // the slow handler is still asleep.
        let (_, finished) = sleeps(2001);
        let slow = c.call(&rmp_serde_u64(2001), 5).unwrap();
        assert_eq!(echo::call_timeout(&c, b"quick", T).unwrap(), b"quick");
        assert_eq!(sleeps(2001).1, finished, "{b:?}: the quick call waited for the slow one");
        assert_eq!(
            tachyon::rpc::codec::decode::<u64>(&c.wait_timeout(slow, T).unwrap()).unwrap(),
            2001
        );
        // Panics and errors are answered from workers too.
        assert!(
            matches!(boom::call(&c, b"x"), Err(Error::Rpc(e)) if e.code == code::HANDLER_PANIC)
        );
        h.shutdown().unwrap();

        // One worker: a call queued behind a slow one, with a deadline that passes in the
        // queue, is answered DEADLINE_EXCEEDED instead of running late.
        let h = serve(b, TcpServerOptions::default().workers(1));
        let mut s =
            raw(h.local_addr(), Some(Hello { version: 1, max_frame: 1 << 20, max_in_flight: 8 }));
        let mut req = Vec::new();
        frame::push_message(&mut req, Kind::Request, 5, 1, 0, &rmp_serde_u64(300));
        frame::push_message(&mut req, Kind::Request, 5, 2, 50_000, &rmp_serde_u64(5000));
        s.write_all(&req).unwrap();
        let mut replies = Vec::new();
        let mut head = [0u8; HEADER_LEN];
        for _ in 0..2 {
            s.read_exact(&mut head).unwrap();
            let hd = Header::decode(&head, 1 << 20).unwrap();
            let mut p = vec![0; hd.len as usize];
            s.read_exact(&mut p).unwrap();
            replies.push((hd.correlation_id, hd.msg_type(), p));
        }
        // The second reply is the error, not the 5 s call's answer: it never ran.
        assert_eq!((replies[0].0, replies[0].1), (1, 5), "{b:?}");
        assert_eq!((replies[1].0, replies[1].1), (2, 0xFFFF), "{b:?}");
        assert_eq!(tachyon::rpc::RpcError::decode(&replies[1].2).code, code::DEADLINE_EXCEEDED);

        // A queued call its caller abandons is skipped: the next call does not wait for it.
        let c = client(&h);
        let before = sleeps(3001).0;
        let first = c.call(&rmp_serde_u64(500), 5).unwrap();
        let second = c.call(&rmp_serde_u64(3001), 5).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.abandon(second);
        assert_eq!(echo::call_timeout(&c, b"next", T).unwrap(), b"next");
        // The abandoned sleep never started: it was skipped in the queue.
        assert_eq!(sleeps(3001).0, before, "{b:?}: the cancelled call ran");
        c.abandon(first);
        // A graceful shutdown waits for work on the pool before its goaway.
        let slow = c.call(&rmp_serde_u64(300), 5).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let stopper = std::thread::spawn(move || h.shutdown());
        assert_eq!(
            tachyon::rpc::codec::decode::<u64>(&c.wait_timeout(slow, T).unwrap()).unwrap(),
            300,
            "{b:?}"
        );
        stopper.join().unwrap().unwrap();
    }
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct Netns {
    a: String,
    b: String,
}

impl Netns {
    fn new(tag: &str) -> Option<Self> {
        let ok = |args: &[&str]| Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        let id = format!("{}{}", std::process::id() % 10000, tag);
        let (a, b) = (format!("tya{id}"), format!("tyb{id}"));
        let (va, vb) = (format!("va{id}"), format!("vb{id}"));
        let steps: [&[&str]; 9] = [
            &["netns", "add", &a],
            &["netns", "add", &b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &a],
            &["link", "set", &vb, "netns", &b],
            &["-n", &a, "addr", "add", "10.77.0.1/24", "dev", &va],
            &["-n", &b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            &["-n", &a, "link", "set", &va, "up"],
            &["-n", &b, "link", "set", &vb, "up"],
        ];
        // Built first, so a setup that fails half-way is still cleaned up.
        let ns = Self { a: a.clone(), b: b.clone() };
        for s in steps {
            if !ok(s) {
                return None;
            }
        }
        let _ = ok(&["-n", &ns.a, "link", "set", "lo", "up"]);
        let _ = ok(&["-n", &ns.b, "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn link_down(&self) {
        let dev = format!("va{}", &self.a[3..]);
        let _ = Command::new("ip").args(["-n", &self.a, "link", "set", &dev, "down"]).status();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

fn netns_or_skip(test: &str, tag: &str) -> Option<Netns> {
    let ns = if rustix::process::geteuid().is_root() { Netns::new(tag) } else { None };
    if ns.is_none() {
        let why = format!("{test}: skipped, network namespaces need root and iproute2");
        assert!(std::env::var("TACHYON_REQUIRE_PEERS").as_deref() != Ok("1"), "{why}");
        eprintln!("{why}");
    }
    ns
}

#[test]
fn across_two_network_namespaces_on_both_backends() {
    let Some(ns) = netns_or_skip("across_two_network_namespaces_on_both_backends", "x") else {
        return;
    };
    for (i, b) in ["io_uring", "epoll"].iter().enumerate() {
        let addr = format!("tcp://10.77.0.1:{}", 7100 + i);
        let (_srv, got, _) =
            tcp_peer(&["--addr", &addr, "--backend", b, "--allow-remote"], Some(&ns.a));
        assert_eq!(got, addr);
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.b])
            .arg(peer_bin())
            .args([
                "tcp-call",
                "--addr",
                &addr,
                "--count",
                "20000",
                "--pipeline",
                "32",
                "--max-size",
                "2048",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{b}: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("ok 20000 messages")
                && stdout.contains("rpc-error msg_type=999 code=1"),
            "{stdout}"
        );
    }
}

#[test]
fn a_vanished_network_fails_calls_with_peer_dead_within_the_bound() {
    let Some(ns) =
        netns_or_skip("a_vanished_network_fails_calls_with_peer_dead_within_the_bound", "d")
    else {
        return;
    };
    let addr = "tcp://10.77.0.1:7200";
    // Workers keep the server's reactor free to answer pings while the call sleeps, so
    // only the network going away can make the client give up.
    let (_srv, _, _) = tcp_peer(&["--addr", addr, "--allow-remote", "--workers", "2"], Some(&ns.a));
    let mut long = Command::new("ip")
        .args(["netns", "exec", &ns.b])
        .arg(peer_bin())
        .args([
            "tcp-sleep",
            "--addr",
            addr,
            "--count",
            "20000",
            "--dead-peer-ms",
            "1500",
            "--timeout-ms",
            "30000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(long.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "calling");
    // Well past the ping interval: the server answers pings while the handler sleeps.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(long.try_wait().unwrap().is_none(), "the client gave up on a live server");
    let start = Instant::now();
    ns.link_down();
    let out = long.wait_with_output().unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    // PeerDead ends it: the 20 s call would otherwise have answered, and its 30 s
    // timeout would be a Timeout.
    assert!(!out.status.success() && err.contains("PeerDead"), "{err}");
    eprintln!("PeerDead {took:?} after the link went down (dead-peer bound 1.5 s)");
}

#[test]
fn mutual_tls_across_two_network_namespaces_admits_only_certified_clients() {
    let Some(ns) = netns_or_skip("mutual_tls_across_two_network_namespaces", "t") else {
        return;
    };
    let dir = tachyon_tests::scratch_path("pki-ns");
    tachyon_tests::pki::write(&dir, &["10.77.0.1".to_owned()]).unwrap();
    let dir = dir.to_str().unwrap();
    let addr = "tcp://10.77.0.1:7150";
    // No --allow-remote: TLS is what makes a non-loopback address servable.
    let (_srv, got, _) = tcp_peer(&["--addr", addr, "--tls-dir", dir], Some(&ns.a));
    assert_eq!(got, addr);
    let call = |identity: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns.b])
            .arg(peer_bin())
            .args(["tcp-call", "--addr", addr, "--count", "2000", "--pipeline", "16"])
            .args(["--tls-dir", dir, "--tls-identity", identity])
            .output()
            .unwrap()
    };
    let out = call("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("ok 2000 messages")
            && stdout.contains("rpc-error msg_type=999 code=1")
            && stdout.contains("caller=client-a"),
        "{stdout}"
    );
    for identity in ["rogue", "none"] {
        let out = call(identity);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("Tls:"), "{identity}: {stderr}");
    }
}

#[test]
fn pipelined_requests_reach_the_batch_scope_in_batches() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let scopes = Arc::new(AtomicU64::new(0));
    let seen = scopes.clone();
    let h = serve(
        Backend::IoUring,
        TcpServerOptions::default().batch_scope(move |work| {
            seen.fetch_add(1, Ordering::Relaxed);
            work();
        }),
    );
    let c = client(&h);
    let cids: Vec<u64> = (0..500u32).map(|i| c.call(&i.to_le_bytes(), 1).unwrap()).collect();
    for (i, cid) in cids.into_iter().enumerate() {
        assert_eq!(c.wait_timeout(cid, T).unwrap(), (i as u32).to_le_bytes());
    }
    let batches = scopes.load(Ordering::Relaxed);
    assert_eq!(h.stats().requests, 500);
    assert!((1..500).contains(&batches), "{batches} scopes for 500 pipelined requests");
}

#[test]
fn deferred_handlers_get_batches_and_answer_from_any_thread_in_any_order() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use tachyon::net::DeferredCall;
    let (tx, rx) = mpsc::channel::<Vec<DeferredCall>>();
    let tx = Mutex::new(tx);
    let batches = Arc::new(AtomicU64::new(0));
    let seen = batches.clone();
    let h = serve(
        Backend::IoUring,
        TcpServerOptions::default().deferred(move |calls| {
            seen.fetch_add(1, Ordering::Relaxed);
            let _ = tx.lock().unwrap().send(calls);
        }),
    );
    // The "event loop": answers each batch newest first, from its own thread.
    let answering = std::thread::spawn(move || {
        let mut oneways = 0;
        while let Ok(mut calls) = rx.recv() {
            while let Some(call) = calls.pop() {
                match call.msg_type {
                    1 => {
                        let data = call.payload.clone();
                        call.reply(data);
                    }
                    2 => drop(call), // forgotten: the caller gets HANDLER_ERROR
                    3 => call.fail(tachyon::rpc::ServerError::new(418, "teapot")),
                    9 if call.is_oneway() => oneways += 1,
                    _ => {}
                }
            }
        }
        oneways
    });
    let c = client(&h);
    let cids: Vec<u64> = (0..300u32).map(|i| c.call(&i.to_le_bytes(), 1).unwrap()).collect();
    for (i, cid) in cids.into_iter().enumerate() {
        assert_eq!(c.wait_timeout(cid, T).unwrap(), (i as u32).to_le_bytes());
    }
    let rpc = |e: Error| match e {
        Error::Rpc(e) => (e.code, e.message),
        other => panic!("{other}"),
    };
    let (code_, msg) = rpc(c.invoke(b"", 2, Some(T)).unwrap_err());
    assert_eq!(code_, code::HANDLER_ERROR);
    assert!(msg.contains("without answering"), "{msg}");
    assert_eq!(rpc(c.invoke(b"", 3, Some(T)).unwrap_err()).0, 418);
    c.notify(b"fire", 9, Some(T)).unwrap();
    assert_eq!(c.invoke(b"after", 1, Some(T)).unwrap(), b"after");
    let n = batches.load(Ordering::Relaxed);
    assert!(n < 300, "{n} batches for 300 pipelined calls");
    h.shutdown().unwrap();
    assert_eq!(answering.join().unwrap(), 1, "the oneway request reached the handler");
}
