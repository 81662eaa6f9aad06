//! RPC between two real processes: this test is the caller, a `tachyon-peer` child the
//! callee (the `#[tachyon_rpc]` service of `tachyon_tests::service`).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use tachyon::rpc::{code, RpcBus};
use tachyon::Error;
use tachyon_tests::service::{add, boom, echo, fail, sleep_ms, whoami, AddReq, AddResp};
use tachyon_tests::{socket_path, spawn_peer, KillOnDrop};

const T: Duration = Duration::from_secs(20);

/// Starts the multi-client server and waits until it is bound.
fn server(path: &str, extra: &[&str]) -> KillOnDrop {
    let mut args = vec!["rpc-serve", "--path", path];
    args.extend_from_slice(extra);
    let mut child = KillOnDrop(spawn_peer(&args));
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().expect("piped")).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn connect(path: &str) -> RpcBus {
    let deadline = Instant::now() + T;
    loop {
        match RpcBus::connect(path) {
            Ok(b) => return b,
            Err(Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}

#[test]
fn round_trips_raw_and_typed() {
    let path = socket_path("rpc-basic");
    let _srv = server(&path, &[]);
    let c = connect(&path);
    assert!(c.has_peer_link());
    assert_eq!(echo::call(&c, b"hello").unwrap(), b"hello");
    assert_eq!(add::call(&c, &AddReq { a: 40, b: 2 }).unwrap(), AddResp { sum: 42 });
    // Low level: call returns the id, wait takes it; ids start at 1.
    let cid = c.call(b"low level", echo::MSG_TYPE).unwrap();
    assert!(cid >= 1);
    assert_eq!(c.wait_timeout(cid, T).unwrap().data(), b"low level");
    // Zero-copy call.
    let mut tx = c.acquire_call(16).unwrap();
    tx.bytes_mut()[..4].copy_from_slice(b"zero");
    let cid = tx.commit(4, echo::MSG_TYPE).unwrap();
    assert_eq!(c.wait_timeout(cid, T).unwrap().data(), b"zero");
}

#[test]
fn sixty_four_calls_in_flight_answered_in_reverse_order() {
    let path = socket_path("rpc-reverse");
    let _callee = KillOnDrop(spawn_peer(&["rpc-reverse", "--path", &path, "--count", "64"]));
    let c = connect(&path);
    let cids: Vec<u64> = (0..64u32).map(|i| c.call(&i.to_le_bytes(), 7).unwrap()).collect();
    assert_eq!(c.in_flight(), 64);
    // Wait in call order: every reply but the last arrives "early" and is kept aside.
    for (i, cid) in cids.iter().enumerate() {
        let r = c.wait_timeout(*cid, T).unwrap();
        assert_eq!(r.data(), &(i as u32).to_le_bytes());
        assert_eq!((r.correlation_id(), r.msg_type()), (*cid, 7));
    }
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn unknown_msg_type_handler_error_and_panic_are_typed_errors_and_the_server_survives() {
    let path = socket_path("rpc-errors");
    let _srv = server(&path, &[]);
    let c = connect(&path);
    match c.invoke(b"?", 999, Some(T)) {
        Err(Error::Rpc(e)) => {
            assert_eq!((e.msg_type, e.code), (999, code::UNKNOWN_MSG_TYPE), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match fail::call(&c, &"why".to_owned()) {
        Err(Error::Rpc(e)) => {
            assert_eq!((e.msg_type, e.code), (fail::MSG_TYPE, code::HANDLER_ERROR));
            assert_eq!(e.message, "failing on purpose: why");
        }
        other => panic!("{other:?}"),
    }
    match boom::call(&c, b"x") {
        Err(Error::Rpc(e)) => {
            assert_eq!(e.code, code::HANDLER_PANIC);
            assert!(e.message.contains("boom handler called with 1 bytes"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    // A request the typed handler cannot decode.
    match c.invoke(b"\xc1 not msgpack", add::MSG_TYPE, Some(T)) {
        Err(Error::Rpc(e)) => assert_eq!(e.code, code::BAD_REQUEST),
        other => panic!("{other:?}"),
    }
    assert_eq!(echo::call(&c, b"still serving").unwrap(), b"still serving");
}

#[test]
fn a_deadline_passing_is_a_timeout_and_the_late_reply_does_not_confuse_later_calls() {
    let path = socket_path("rpc-deadline");
    let _srv = server(&path, &[]);
    let c = connect(&path);
    let start = Instant::now();
    let err = sleep_ms::call_timeout(&c, &500, Duration::from_millis(100)).unwrap_err();
    // A Timeout (not the reply) ends it, and not before the deadline.
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(100), "{:?}", start.elapsed());
    // The late reply to the abandoned call is dropped; the next call gets its own.
    assert_eq!(add::call_timeout(&c, &AddReq { a: 1, b: 1 }, T).unwrap().sum, 2);
}

#[test]
fn callee_killed_while_a_call_waits_gives_peer_dead() {
    let path = socket_path("rpc-kill");
    let mut srv = server(&path, &[]);
    let c = connect(&path);
    let cid =
        c.call(&tachyon::rpc::codec::encode(&60_000u64).unwrap(), sleep_ms::MSG_TYPE).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    srv.0.kill().unwrap();
    srv.0.wait().unwrap();
    // Only death detection ends the wait as PeerDead (its timeout would be a Timeout).
    let err = c.wait_timeout(cid, Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, Error::PeerDead(_)), "{err}");
}

#[test]
fn eight_clients_on_one_server_at_once() {
    let path = socket_path("rpc-eight");
    let _srv = server(&path, &["--max-clients", "8", "--per-process", "8"]);
    let server_pid = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8i64)
            .map(|k| {
                let path = path.clone();
                s.spawn(move || {
                    let c = connect(&path);
                    for i in 0..2_000i64 {
                        assert_eq!(
                            add::call_timeout(&c, &AddReq { a: k, b: i }, T).unwrap().sum,
                            k + i
                        );
                    }
                    whoami::call(&c, &()).unwrap()
                })
            })
            .collect();
        let pids: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(pids.windows(2).all(|w| w[0] == w[1]), "one server process: {pids:?}");
        pids[0]
    });
    assert_ne!(server_pid, std::process::id());
}

#[test]
fn a_client_over_the_limit_is_refused_with_a_clear_error() {
    let path = socket_path("rpc-limit");
    let _srv = server(&path, &["--max-clients", "2", "--per-process", "2"]);
    let a = connect(&path);
    let b = connect(&path);
    assert!(echo::call(&a, b"a").is_ok() && echo::call(&b, b"b").is_ok());
    match RpcBus::connect(&path) {
        Err(Error::Refused(why)) => assert!(why.contains("maximum number of clients"), "{why}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    // A slot frees up when a client leaves.
    drop(a);
    let deadline = Instant::now() + T;
    let c = loop {
        match RpcBus::connect(&path) {
            Ok(c) => break c,
            Err(Error::Refused(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(echo::call(&c, b"c").unwrap(), b"c");
}

#[test]
fn spsc_connector_and_rpc_roles_are_checked() {
    let path = socket_path("rpc-abi");
    let _srv = server(&path, &[]);
    // An SPSC connector against the RPC server: refused on both sides, cleanly.
    match tachyon::Bus::connect(&path) {
        Err(Error::AbiMismatch(m)) => assert!(m.contains("Rpc"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The server is still serving RPC clients.
    let c = connect(&path);
    assert_eq!(echo::call(&c, b"ok").unwrap(), b"ok");
    // Callee-only operations on the caller end are refused.
    assert!(matches!(c.serve_timeout(Duration::from_millis(1)), Err(Error::Protocol(_))));
    assert!(matches!(c.wait_timeout(12345, Duration::from_millis(1)), Err(Error::Protocol(_))));
}

#[test]
fn server_and_bus_stats_count_what_clients_in_other_processes_did() {
    use std::sync::Arc;
    use tachyon::rpc::{Dispatcher, RpcServer, ServerOptions};

    let path = socket_path("rpc-stats");
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", |r: &[u8]| r.to_vec()).unwrap();
    let server = RpcServer::bind(&path, ServerOptions::default().max_clients(1)).unwrap();
    let reader = server.stats_reader();
    let handle = server.spawn(Arc::new(d));

    // Our own client takes the only slot: a child's connect is refused.
    let ours = connect(&path);
    assert_eq!(ours.invoke(b"mine", 1, Some(T)).unwrap(), b"mine");
    let refused = spawn_peer(&["rpc-call", "--path", &path, "--count", "1"]).wait().unwrap();
    assert!(!refused.success(), "a client over the limit is refused");
    let bus = ours.stats();
    assert_eq!((bus.sent_messages, bus.sent_bytes), (1, 4));
    assert_eq!((bus.received_messages, bus.received_bytes), (1, 4));
    assert_eq!((bus.timeouts, bus.peer_deaths, bus.protocol_errors), (0, 0, 0));
    drop(ours);

    // Then a child makes 10 echo calls and one to an unknown msg_type.
    let deadline = Instant::now() + T;
    while reader.read().active > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut child = spawn_peer(&["rpc-call", "--path", &path, "--count", "10"]);
    assert!(child.wait().unwrap().success());
    while reader.read().active > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = reader.read();
    assert_eq!((s.accepted, s.refused, s.active), (2, 1, 0), "{s:?}");
    assert_eq!(s.requests, 1 + 11, "{s:?}");
    assert_eq!(s.errors, std::collections::BTreeMap::from([(code::UNKNOWN_MSG_TYPE, 1)]));
    assert_eq!(s.error_replies(), 1);
    handle.stop().unwrap();
}
