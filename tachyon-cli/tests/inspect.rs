//! `tachyon inspect` against live buses of the Rust peer in another process: it finds
//! each arena, reports what the processes know (capacity, fill, mode, the peer), and
//! leaves every byte of the arena as it was. (The Python and Node buses are inspected
//! from pytest: tests/cli/test_inspect.py.)

use std::process::Command;
use std::time::{Duration, Instant};

use tachyon_tests::{socket_path, spawn_peer, KillOnDrop};

fn inspect(pid: u32) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["inspect", &pid.to_string(), "--json"])
        .output()
        .expect("run tachyon inspect");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn connect_retry(path: &str, fast: bool) -> tachyon::Bus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opts = tachyon::ConnectOptions::new().fast_mode(fast);
        match tachyon::Bus::connect_with(path, &opts, tachyon::Wait::new()) {
            Ok(b) => return b,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Every byte of arena `fd` of `pid`, read through /proc.
fn arena_bytes(pid: u32, fd: u64) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/fd/{fd}")).expect("read the arena")
}

fn spsc_is_reported_and_left_untouched(fast: bool) {
    let path = socket_path(if fast { "inspect-fast" } else { "inspect-compat" });
    let mut args = vec![
        "produce",
        "--path",
        &path,
        "--listen",
        "65536",
        "--count",
        "20",
        "--max-size",
        "200",
        "--seed",
        "3",
        "--timeout-ms",
        "20000",
    ];
    if !fast {
        args.push("--compat");
    }
    let producer = KillOnDrop(spawn_peer(&args));
    let pid = producer.0.id();
    let bus = connect_retry(&path, fast);
    // The producer sends its 20 messages; we take none of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let arena = loop {
        let v = inspect(pid);
        let spsc: Vec<_> =
            v.as_array().unwrap().iter().filter(|a| a["kind"] == "spsc").cloned().collect();
        if let Some(a) = spsc.first().filter(|a| a["fill"].as_u64().unwrap() > 0) {
            std::thread::sleep(Duration::from_millis(50));
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no filled arena in {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let arena = {
        // Settled: read again, now that the producer is idle.
        let v = inspect(pid);
        v.as_array().unwrap().iter().find(|a| a["inode"] == arena["inode"]).unwrap().clone()
    };
    assert_eq!(arena["capacity"], 65536);
    assert_eq!(arena["state"], "ready");
    assert_eq!(arena["mode"], if fast { "fast" } else { "compatible" });
    assert_eq!(bus.ring_mode() == tachyon::RingMode::Fast, fast);
    let (head, tail, fill) = (
        arena["head"].as_u64().unwrap(),
        arena["tail"].as_u64().unwrap(),
        arena["fill"].as_u64().unwrap(),
    );
    assert_eq!(fill, head - tail);
    assert!(head > 20 * 64 && tail == 0, "{arena}");
    // A fast ring carries each side's message count (what the producer process knows it
    // sent); a compatible ring's bytes are upstream's, so nothing is there.
    if fast {
        assert_eq!(arena["published_messages"], 20, "{arena}");
        assert_eq!(arena["consumed_messages"], 0, "{arena}");
    } else {
        assert!(arena["published_messages"].is_null() && arena["consumer_sleeps"].is_null());
    }
    let me = std::process::id();
    assert!(arena["peers"].as_array().unwrap().iter().any(|p| p == me), "{arena}");
    // Read-only: the arena's bytes are the same before and after inspecting it.
    let fd = arena["fd"].as_u64().unwrap();
    let before = arena_bytes(pid, fd);
    for _ in 0..3 {
        inspect(pid);
    }
    let plain = Command::new(env!("CARGO_BIN_EXE_tachyon")).args(["inspect"]).output().unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).contains(&pid.to_string()));
    assert!(before == arena_bytes(pid, fd), "inspect changed the arena");
    // What the consumer then reads is what the producer sent.
    let mut n = 0;
    while n < 20 {
        let batch =
            bus.drain_batch_with(64, tachyon::Wait::new().timeout(Duration::from_secs(5))).unwrap();
        n += batch.len();
    }
}

#[test]
fn a_fast_spsc_bus_is_reported_and_left_untouched() {
    spsc_is_reported_and_left_untouched(true);
}

#[test]
fn a_compatible_spsc_bus_is_reported_and_left_untouched() {
    spsc_is_reported_and_left_untouched(false);
}

#[test]
fn an_rpc_server_s_two_arenas_per_client_are_reported() {
    let path = socket_path("inspect-rpc");
    let server = KillOnDrop(spawn_peer(&["rpc-serve", "--path", &path]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let bus = loop {
        match tachyon::rpc::RpcBus::connect(&path) {
            Ok(b) => break b,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(bus.invoke(b"hi", 1, Some(Duration::from_secs(5))).unwrap(), b"hi");
    let v = inspect(server.0.id());
    let kinds: Vec<&str> =
        v.as_array().unwrap().iter().filter_map(|a| a["kind"].as_str()).collect();
    assert!(kinds.contains(&"rpc requests") && kinds.contains(&"rpc replies"), "{v:#}");
    for a in v.as_array().unwrap() {
        assert_eq!(a["state"], "ready", "{a}");
        assert!(a["peers"].as_array().unwrap().iter().any(|p| p == std::process::id()), "{a}");
    }
    // An unknown pid is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["inspect", "999999999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process"));
}

#[test]
fn top_shows_a_busy_ring_s_throughput() {
    let path = socket_path("top-busy");
    let producer = KillOnDrop(spawn_peer(&[
        "produce",
        "--path",
        &path,
        "--listen",
        "65536",
        "--count",
        "50000000",
        "--max-size",
        "64",
        "--seed",
        "5",
        "--timeout-ms",
        "20000",
    ]));
    let pid = producer.0.id();
    let bus = connect_retry(&path, true);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let w = tachyon::Wait::new().timeout(Duration::from_millis(100));
                if let Ok(batch) = bus.drain_batch_with(256, w) {
                    drop(batch);
                }
            }
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["top", &pid.to_string(), "--interval-ms", "300", "--count", "2"])
        .output()
        .expect("run tachyon top");
    let json = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["top", &pid.to_string(), "--interval-ms", "200", "--count", "1", "--json"])
        .output()
        .expect("run tachyon top --json");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    consumer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" spsc ")).collect();
    assert_eq!(rows.len(), 2, "two refreshes: {text}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0], pid.to_string());
        let msgs: f64 = cols[3].parse().unwrap();
        let bytes_in: f64 = cols[4].parse().unwrap();
        assert!(msgs > 0.0 && bytes_in > 0.0, "a busy fast ring moves messages and bytes: {row}");
        assert!(cols[7].parse::<f64>().is_ok(), "sleeps/s is a number on a fast ring: {row}");
    }
    // --json: one object per refresh and line, with the same rates.
    let line = String::from_utf8_lossy(&json.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    let ring = v["rings"].as_array().unwrap().iter().find(|r| r["kind"] == "spsc").unwrap();
    assert_eq!(ring["mode"], "fast");
    assert!(ring["messages_per_s"].as_f64().unwrap() > 0.0, "{ring}");
    assert!(ring["bytes_in_per_s"].as_f64().unwrap() > 0.0, "{ring}");
}
