//! Raw TCP byte streams on the reactors (no frames): events in order, writes, end and
//! destroy, and backpressure instead of loss under a consumer slower than its sender.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tachyon::net::{Backend, RawEvent, RawServerOptions, RawTcpServer};
use tachyon::Error;

const T: Duration = Duration::from_secs(20);

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(7).wrapping_add(3) % 251) as u8
}

#[test]
fn echo_end_and_destroy_on_both_backends() {
    for backend in [Backend::IoUring, Backend::Epoll] {
        let opts = RawServerOptions { backend, ..RawServerOptions::default() };
        let (tx, rx) = mpsc::channel();
        let server = RawTcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
        let addr = server.local_addr();
        let h = server
            .spawn_with(move |h, events| {
                for e in events {
                    if let RawEvent::Data { conn, data } = &e {
                        h.consumed(*conn, data.len());
                        match data.as_slice() {
                            b"bye" => {
                                h.send(*conn, b"later".to_vec());
                                h.end(*conn);
                            }
                            b"kill" => {
                                h.send(*conn, b"never sent".to_vec());
                                h.destroy(*conn);
                            }
                            d => h.send(*conn, [b"echo:", d].concat()),
                        }
                    }
                    let _ = tx.send(e);
                }
            })
            .unwrap();
        assert_eq!(h.backend(), backend);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 9];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"echo:ping", "{backend:?}");
        c.write_all(b"bye").unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"later", "end sends what is queued, then closes");

        let mut k = TcpStream::connect(addr).unwrap();
        k.set_read_timeout(Some(T)).unwrap();
        k.write_all(b"kill").unwrap();
        let mut rest = Vec::new();
        let _ = k.read_to_end(&mut rest);
        assert!(rest.is_empty(), "destroy drops what is queued");

        let mut events: Vec<RawEvent> = Vec::new();
        while events.iter().filter(|e| matches!(e, RawEvent::Close { .. })).count() < 2 {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let opens = events.iter().filter(|e| matches!(e, RawEvent::Open { .. })).count();
        let closes = events.iter().filter(|e| matches!(e, RawEvent::Close { .. })).count();
        assert_eq!((opens, closes), (2, 2), "{events:?}");
        let s = h.stats();
        assert_eq!(s.bytes_received, 4 + 3 + 4);
        assert_eq!(s.connections.accepted, 2);
        h.shutdown().unwrap();
    }
}

#[test]
fn a_slow_consumer_pauses_the_sender_and_loses_nothing() {
    for backend in [Backend::IoUring, Backend::Epoll] {
        const TOTAL: u64 = 48 << 20;
        let opts =
            RawServerOptions { backend, high_water: 256 << 10, ..RawServerOptions::default() };
        let (tx, rx) = mpsc::channel::<RawEvent>();
        let server = RawTcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
        let addr = server.local_addr();
        let h =
            server.spawn(move |events| events.into_iter().for_each(|e| drop(tx.send(e)))).unwrap();
        let sender = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let chunk: Vec<u8> = (0..(1u64 << 20)).map(pattern).collect();
            let mut sent = 0u64;
            while sent < TOTAL {
                // The pattern repeats every 251 bytes and 1 MiB is not a multiple: send
                // the right slice of it.
                let off = (sent % 251) as usize;
                let len = ((TOTAL - sent) as usize).min(chunk.len() - 251);
                let n = c.write(&chunk[off..off + len]).unwrap();
                sent += n as u64;
            }
            sent
        });
        // The consumer: slow (a pause now and then), counting and checking every byte.
        let (mut got, mut conn_id, mut max_backlog) = (0u64, None, 0usize);
        let mut backlog = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while got < TOTAL {
            assert!(Instant::now() < deadline, "{backend:?}: stuck at {got}");
            match rx.recv_timeout(T).unwrap() {
                RawEvent::Open { conn, .. } => conn_id = Some(conn),
                RawEvent::Data { conn, data } => {
                    for (k, b) in data.iter().enumerate() {
                        assert_eq!(
                            *b,
                            pattern(got + k as u64),
                            "{backend:?}: byte {}",
                            got + k as u64
                        );
                    }
                    got += data.len() as u64;
                    backlog += data.len();
                    max_backlog = max_backlog.max(backlog);
                    // Consuming waits for a batch well under the high-water mark (one
                    // that waited for more than the mark would wait for ever).
                    if backlog >= 128 << 10 || got == TOTAL {
                        std::thread::sleep(Duration::from_millis(2));
                        h.consumed(conn, backlog);
                        backlog = 0;
                    }
                }
                RawEvent::Close { .. } => panic!("{backend:?}: closed early at {got}"),
            }
        }
        assert!(conn_id.is_some());
        assert_eq!(sender.join().unwrap(), TOTAL);
        let s = h.stats();
        assert_eq!(s.bytes_received, TOTAL, "{backend:?}");
        assert!(s.pauses > 0, "{backend:?}: the consumer never held the sender back: {s:?}");
        // Delivered-but-unconsumed bytes never pass the high-water mark by more than a
        // receive's worth.
        assert!(max_backlog <= (256 << 10) + (128 << 10), "{backend:?}: {max_backlog}");
        h.shutdown().unwrap();
    }
}

#[test]
fn limits_and_insecure_binding() {
    let e = RawTcpServer::bind("tcp://0.0.0.0:0", RawServerOptions::default()).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    let opts = RawServerOptions {
        max_connections: 1,
        idle_timeout: Some(Duration::from_millis(200)),
        ..RawServerOptions::default()
    };
    let server = RawTcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
    let addr = server.local_addr();
    let h = server.spawn(|_| {}).unwrap();
    let mut first = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut second = TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(second.read(&mut b).unwrap_or(0), 0, "over the limit: closed at once");
    // The idle one is closed after its timeout.
    first.set_read_timeout(Some(T)).unwrap();
    // Closed by the server (end of stream), not ended by our 20 s read timeout.
    assert_eq!(first.read(&mut b).expect("closed, not timed out"), 0);
    assert_eq!(h.stats().connections.refused, 1);
    h.shutdown().unwrap();
}
