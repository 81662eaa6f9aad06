//! SPSC bus between two real processes: this test and a `tachyon-peer` child.

use std::io::Read;
use std::time::{Duration, Instant};

use tachyon::{Bus, Error, ListenOptions, RingMode, Wait};
use tachyon_tests::{socket_path, spawn_peer, verify, KillOnDrop};

const MILLION: u64 = 1_000_000;
/// Each test runs with the fast ring protocol (two peers of ours) and without it
/// (upstream's ABI v0x04, as with an upstream peer).
const MODES: [bool; 2] = [true, false];

/// Listens for the peer, offering the fast mode or not, and checks what was agreed.
fn listen(path: &str, capacity: usize, fast: bool) -> Bus {
    let opts = ListenOptions::new().fast_mode(fast);
    let bus = Bus::listen_opts(path, capacity, &opts, Wait::new().timeout(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(bus.ring_mode(), RingMode::for_ring(fast, capacity));
    bus
}

fn finish(mut child: KillOnDrop) -> String {
    let status = child.0.wait().expect("wait peer");
    let mut out = String::new();
    child.0.stdout.take().expect("piped").read_to_string(&mut out).unwrap();
    assert!(status.success(), "peer failed ({status}); stdout: {out}");
    out
}

#[test]
fn million_random_size_messages_from_child_to_us_none_lost_or_reordered() {
    for fast in MODES {
        let path = socket_path(&format!("million-in-{fast}"));
        let child = KillOnDrop(spawn_peer(&[
            "produce",
            "--path",
            &path,
            "--connect",
            "--count",
            &MILLION.to_string(),
            "--seed",
            "7",
            "--max-size",
            "4096",
            "--batch",
            "16",
        ]));
        let bus = listen(&path, 1 << 20, fast);
        assert!(bus.has_peer_link(), "two Tachyon peers negotiate a liveness link");
        let mut scratch = Vec::new();
        let (mut i, mut bytes) = (0, 0);
        while i < MILLION {
            let batch =
                bus.drain_batch_with(512, Wait::new().timeout(Duration::from_secs(20))).unwrap();
            for m in &batch {
                verify(7, i, 4096, m.data(), m.type_id(), &mut scratch).unwrap();
                i += 1;
                bytes += m.len() as u64;
            }
        }
        // This side's counters: every message received, nothing sent, nothing wrong.
        let s = bus.stats();
        assert_eq!((s.received_messages, s.received_bytes), (MILLION, bytes), "{s:?}");
        assert_eq!((s.sent_messages, s.timeouts, s.peer_deaths, s.protocol_errors), (0, 0, 0, 0));
        drop(bus);
        assert_eq!(finish(child).trim(), "ok 1000000 messages");
        assert!(!std::path::Path::new(&path).exists(), "listen removes the socket file");
    }
}

#[test]
fn million_random_size_messages_from_us_to_child() {
    for fast in MODES {
        let path = socket_path(&format!("million-out-{fast}"));
        let child = KillOnDrop(spawn_peer(&[
            "consume",
            "--path",
            &path,
            "--connect",
            "--count",
            &MILLION.to_string(),
            "--seed",
            "9",
            "--max-size",
            "4096",
        ]));
        let bus = listen(&path, 1 << 18, fast);
        let mut buf = vec![0u8; 4096];
        let mut bytes = 0;
        for i in 0..MILLION {
            let n = tachyon_tests::payload_size(9, i, 4096);
            bytes += n as u64;
            tachyon_tests::fill_payload(i, &mut buf[..n]);
            bus.send_timeout(
                &buf[..n],
                tachyon_tests::checksum(&buf[..n]),
                Duration::from_secs(20),
            )
            .unwrap();
        }
        let s = bus.stats();
        assert_eq!((s.sent_messages, s.sent_bytes, s.received_messages), (MILLION, bytes, 0));
        // The reader in the other process sleeps when it catches up; each sleep it
        // announced needed a wake from us (the two counts are from different processes,
        // so only "some" is certain).
        eprintln!("stats of the sending side: {s:?}");
        assert_eq!(finish(child).trim(), "ok 1000000 messages");
    }
}

#[test]
fn producer_killed_mid_stream_gives_peer_dead_not_a_hang() {
    for fast in MODES {
        let path = socket_path(&format!("kill-producer-{fast}"));
        let mut child = KillOnDrop(spawn_peer(&[
            "produce",
            "--path",
            &path,
            "--connect",
            "--count",
            "100000000",
            "--max-size",
            "256",
        ]));
        let bus = listen(&path, 1 << 16, fast);
        for _ in 0..10_000 {
            bus.acquire_rx(1000).unwrap();
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        // Only dead-peer detection ends this loop before its generous timeout (which would
        // be a Timeout error, not PeerDead).
        let mut drained = 0u64;
        let err = loop {
            match bus.acquire_rx_with(Wait::new().spin(1000).timeout(Duration::from_secs(30))) {
                Ok(_) => drained += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::PeerDead(_)), "{err}");
        let s = bus.stats();
        assert_eq!((s.peer_deaths, s.received_messages), (1, 10_000 + drained), "{s:?}");
        eprintln!("drained {drained} messages left in the ring, then: {err}");
    }
}

#[test]
fn consumer_that_exits_gives_the_blocked_producer_peer_closed() {
    for fast in MODES {
        let path = socket_path(&format!("kill-consumer-{fast}"));
        let mut child = KillOnDrop(spawn_peer(&[
            "consume",
            "--path",
            &path,
            "--connect",
            "--count",
            "10",
            "--max-size",
            "0",
        ]));
        let bus = listen(&path, 1024, fast);
        for i in 0..10 {
            bus.send_timeout(&[], tachyon_tests::checksum(&[]), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        child.0.wait().unwrap();
        // The child exited (cleanly) after 10; fill the 4-slot ring, then a blocked send must
        // fail (long before its 30 s timeout), saying the consumer left on purpose.
        let err = loop {
            if let Err(e) = bus.send_timeout(&[], 0, Duration::from_secs(30)) {
                break e;
            }
        };
        assert!(matches!(err, Error::PeerClosed), "{err}");
    }
}

#[test]
fn zero_length_messages_cross_processes() {
    for fast in MODES {
        let path = socket_path(&format!("zero-{fast}"));
        let child = KillOnDrop(spawn_peer(&[
            "consume",
            "--path",
            &path,
            "--connect",
            "--count",
            "5000",
            "--max-size",
            "0",
        ]));
        let bus = listen(&path, 4096, fast);
        for _ in 0..5000 {
            bus.send_timeout(&[], tachyon_tests::checksum(&[]), Duration::from_secs(10)).unwrap();
        }
        assert_eq!(finish(child).trim(), "ok 5000 messages");
    }
}

#[test]
fn listen_timeout_expires_and_removes_the_socket_file() {
    let path = socket_path("nobody");
    let start = Instant::now();
    let err = Bus::listen_timeout(&path, 4096, Duration::from_millis(150)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn listen_is_interruptible() {
    let path = socket_path("interrupt");
    let mut calls = 0;
    let mut check = || {
        calls += 1;
        calls > 2
    };
    let err = Bus::listen_with(&path, 4096, Wait::new().interrupt(&mut check)).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn connecting_to_nothing_fails_at_once() {
    let err = Bus::connect(&socket_path("absent")).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}

#[test]
fn bad_arguments_get_typed_errors() {
    assert!(matches!(Bus::listen(&socket_path("cap"), 1000), Err(Error::InvalidCapacity(1000))));
    assert!(matches!(Bus::listen(&"x".repeat(200), 4096), Err(Error::InvalidPath { .. })));
}

#[test]
fn rpc_listener_and_spsc_connector_reject_each_other_cleanly() {
    use tachyon::__testing::{self as bootstrap, Handshake, ListenSpec};
    let path = socket_path("abi");
    let child = KillOnDrop(spawn_peer(&["connect-only", "--path", &path]));
    // An RPC handshake (flags = 1) with two arenas, as an RPC listener sends it.
    let fwd = tachyon::__testing::SharedMemory::create("t", 768 + 4096).unwrap();
    let rev = tachyon::__testing::SharedMemory::create("t", 768 + 4096).unwrap();
    let spec = ListenSpec { timeout: Some(Duration::from_secs(20)), interrupt: None };
    let err = bootstrap::listen(
        &path,
        &Handshake::rpc(4096, 4096),
        &[fwd.fd(), rev.fd()],
        &tachyon::ListenOptions::default(),
        spec,
        &mut |e| panic!("no connector should be refused: {e}"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::AbiMismatch(_)), "listener learns the connector refused: {err}");
    let mut child = child;
    let status = child.0.wait().unwrap();
    assert!(!status.success());
}
