//! Who may connect, and that no client can hold a server hostage: the regression tests of
//! the security and reliability issue, each across real processes and real sockets.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tachyon::rpc::{RpcBus, RpcServer, ServerOptions};
use tachyon::{Bus, ConnectOptions, Error, Wait};
use tachyon_tests::service::echo;
use tachyon_tests::{peer_bin, socket_path, KillOnDrop};

const NOBODY: u32 = 65534;

/// Starts `tachyon-peer rpc-serve` with `args` (as `uid` if given), waits for `ready`, and
/// hands back the child and a channel of the lines it prints afterwards.
fn serve(path: &str, args: &[&str], uid: Option<u32>) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut cmd = Command::new(peer_bin());
    cmd.args(["rpc-serve", "--path", path]).args(args).stdout(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().expect("spawn tachyon-peer");
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(20)).expect("server printed nothing");
    assert_eq!(ready, "ready");
    (KillOnDrop(child), rx)
}

/// Runs `tachyon-peer rpc-call` against `path` as `uid`, returning (success, stderr).
fn call_as(uid: u32, path: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(peer_bin())
        .args(["rpc-call", "--path", path, "--count", "3", "--timeout-ms", "5000"])
        .args(extra)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run tachyon-peer");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Whether this test can switch users; otherwise says why it skips (and fails when the
/// run requires every peer, as `make test` does).
fn can_switch_users(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let why = format!("{test}: skipped, switching to uid {NOBODY} needs root");
    assert!(std::env::var("TACHYON_REQUIRE_PEERS").as_deref() != Ok("1"), "{why}");
    eprintln!("{why}");
    false
}

/// A directory every user may enter and write, removed on drop.
struct SharedDir(std::path::PathBuf);

impl SharedDir {
    fn new(name: &str) -> Self {
        let dir = tachyon_tests::scratch_path(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Self(dir)
    }
    fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn connect(path: &str) -> RpcBus {
    let deadline = Instant::now() + Duration::from_secs(20);
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
fn sockets_are_0600_whatever_the_umask() {
    let path = socket_path("umask");
    let mut child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" rpc-serve --path \"$1\""])
        .arg(peer_bin())
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let _child = KillOnDrop(child);
    assert_eq!(line.trim(), "ready");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "server socket mode under umask 000");

    // A one-shot listener too.
    let path = socket_path("umask-oneshot");
    let child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" consume --path \"$1\" --listen 4096 --count 1"])
        .arg(peer_bin())
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(&path).exists() {
        assert!(Instant::now() < deadline, "listener never bound");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "one-shot socket mode under umask 000");
}

#[test]
fn another_user_is_refused_on_both_sides_unless_allowed() {
    if !can_switch_users("another_user_is_refused_on_both_sides_unless_allowed") {
        return;
    }
    let dir = SharedDir::new("uids");

    // Root's server, socket widened on purpose, nobody not allowed: the server refuses
    // the connector (SO_PEERCRED) and both sides say so.
    let path = dir.path("wide.sock");
    let (_srv, lines) = serve(&path, &["--socket-mode", "666"], None);
    let (ok, err) = call_as(NOBODY, &path, &["--trust-uid", "0"]);
    assert!(!ok && err.contains("PermissionDenied"), "connector: {err}");
    let report = lines.recv_timeout(Duration::from_secs(10)).expect("server reported nothing");
    assert!(report.contains("uid 65534") && report.contains("permission denied"), "{report}");

    // The connector does not trust a socket of another user by default.
    let (ok, err) = call_as(NOBODY, &path, &[]);
    assert!(!ok && err.contains("PermissionDenied") && err.contains("uid 0"), "{err}");

    // Allowed on both sides, it works.
    let path = dir.path("allowed.sock");
    let (_srv, _lines) = serve(&path, &["--socket-mode", "666", "--allow-uid", "65534"], None);
    let (ok, err) = call_as(NOBODY, &path, &["--trust-uid", "0"]);
    assert!(ok, "an allowed user is served: {err}");

    // With the default mode, nobody cannot even reach root's socket.
    let path = dir.path("default.sock");
    let (_srv, _lines) = serve(&path, &["--allow-uid", "65534"], None);
    let (ok, err) = call_as(NOBODY, &path, &["--trust-uid", "0"]);
    assert!(!ok && err.contains("Permission denied"), "{err}");
}

#[test]
fn a_socket_squatted_by_another_user_is_never_used() {
    if !can_switch_users("a_socket_squatted_by_another_user_is_never_used") {
        return;
    }
    let dir = SharedDir::new("squat");
    let path = dir.path("squat.sock");
    // nobody's server, which even allows root: root's client must still refuse it.
    let (_srv, _lines) = serve(&path, &["--socket-mode", "666", "--allow-uid", "0"], Some(NOBODY));
    match RpcBus::connect(&path) {
        Err(Error::PermissionDenied(why)) => assert!(why.contains("uid 65534"), "{why}"),
        other => panic!("connected to a squatter: {:?}", other.map(|_| ())),
    }
    // Trusting that user on purpose works.
    let opts = ConnectOptions::new().allow_uid(NOBODY);
    let bus = RpcBus::connect_with(&path, &opts, Wait::new()).unwrap();
    assert_eq!(echo::call(&bus, b"hi").unwrap(), b"hi");
}

/// Connects like upstream's connector does (read the 32-byte handshake, close the
/// socket), keeping (`keep_fds`) or closing the received memfds, and stays alive.
fn upstream_style_connect(path: &str, keep_fds: bool) -> Result<Vec<std::os::fd::OwnedFd>, u32> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    rustix::net::connect(&sock, &rustix::net::SocketAddrUnix::new(path).unwrap()).unwrap();
    let mut bytes = [0u8; 32];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        &sock,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    if msg.bytes == 8 {
        return Err(u32::from_ne_bytes(bytes[4..8].try_into().unwrap())); // a refusal frame
    }
    assert_eq!(msg.bytes, 32);
    Ok(if keep_fds { fds } else { Vec::new() })
}

#[test]
fn one_process_cannot_take_every_slot() {
    let path = socket_path("hoard");
    let (_srv, _lines) = serve(&path, &["--max-clients", "4"], None);
    // Four upstream-style connections from this process that keep the memfds (so they
    // look alive): the default per-process share of 4 slots is 3.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        match upstream_style_connect(&path, true) {
            Ok(fds) => held.push(fds),
            Err(code) => {
                assert_eq!(code, 0x103, "refused for holding too many slots");
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (3, 1));
    // Another process still gets served at once.
    let out = Command::new(peer_bin())
        .args(["rpc-call", "--path", &path, "--count", "3", "--timeout-ms", "5000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_client_that_let_go_of_the_bus_frees_its_slot_while_its_process_lives() {
    let path = socket_path("letgo");
    let (_srv, _lines) = serve(&path, &["--max-clients", "2", "--per-process", "2"], None);
    // Upstream-style connections that close the memfds at once: provably gone, though
    // this process lives on. Their slots come back within a watchdog tick or two.
    for _ in 0..2 {
        upstream_style_connect(&path, false).unwrap();
    }
    let start = Instant::now();
    let bus = loop {
        match RpcBus::connect(&path) {
            Ok(b) => break b,
            Err(Error::Refused(_)) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("slots never came back: {e}"),
        }
    };
    assert_eq!(echo::call(&bus, b"x").unwrap(), b"x");
}

#[test]
fn a_stalled_handshake_is_dropped_after_the_handshake_timeout() {
    let path = socket_path("stall");
    let (_srv, lines) = serve(&path, &["--max-clients", "2", "--per-process", "2"], None);
    // Two connections that never read anything (and never close).
    let addr = rustix::net::SocketAddrUnix::new(path.as_str()).unwrap();
    let stalled_at = Instant::now();
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let s = rustix::net::socket(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                None,
            )
            .unwrap();
            rustix::net::connect(&s, &addr).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(RpcBus::connect(&path), Err(Error::Refused(_))), "both slots held");
    let start = Instant::now();
    let bus = loop {
        match RpcBus::connect(&path) {
            Ok(b) => break b,
            Err(Error::Refused(_)) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    // Dropped by the 2 s default handshake timeout, not before it.
    assert!(stalled_at.elapsed() >= Duration::from_secs(2), "{:?}", stalled_at.elapsed());
    assert_eq!(echo::call(&bus, b"ok").unwrap(), b"ok");
    let report = lines.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(report.contains("timed out"), "{report}");
    drop(stalled);
}

#[test]
fn connect_never_hangs_on_a_silent_or_stopped_listener() {
    // A listener that accepts and never writes.
    let path = socket_path("silent");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let start = Instant::now();
    let err = RpcBus::connect_timeout(&path, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
    // And an interrupt check ends it as well (Interrupted, not the default timeout).
    let mut calls = 0;
    let mut check = || {
        calls += 1;
        calls > 2
    };
    let err = Bus::connect_with(&path, &ConnectOptions::new(), Wait::new().interrupt(&mut check))
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert_eq!(calls, 3, "the third check ended it");
    drop(listener);
    let _ = std::fs::remove_file(&path);

    // A SIGSTOPped server: deadline errors, then recovery after SIGCONT.
    let path = socket_path("stopped");
    let (srv, _lines) = serve(&path, &[], None);
    let pid = rustix::process::Pid::from_child(&srv.0);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let err = RpcBus::connect_timeout(&path, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let bus = connect(&path);
    assert_eq!(echo::call(&bus, b"back").unwrap(), b"back");
}

#[test]
fn bind_removes_only_a_stale_socket_and_unlinks_only_its_own() {
    let opts = || ServerOptions::default().on_error(|_| {});
    let d = || std::sync::Arc::new(tachyon_tests::service::dispatcher());

    // A regular file in the way is refused and left alone.
    let path = socket_path("file");
    std::fs::write(&path, b"precious").unwrap();
    assert!(matches!(RpcServer::bind(&path, opts()), Err(Error::InvalidPath { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();

    // A live server keeps its path: a second bind fails, the first still serves.
    let path = socket_path("live");
    let first = RpcServer::bind(&path, opts()).unwrap().spawn(d());
    assert!(matches!(RpcServer::bind(&path, opts()), Err(Error::AddrInUse { .. })));
    assert_eq!(echo::call(&connect(&path), b"1").unwrap(), b"1");

    // A stale socket (nobody accepts on it) is replaced.
    let stale = socket_path("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(std::path::Path::new(&stale).exists());
    let s = RpcServer::bind(&stale, opts()).unwrap().spawn(d());
    assert_eq!(echo::call(&connect(&stale), b"2").unwrap(), b"2");
    drop(s);
    assert!(!std::path::Path::new(&stale).exists(), "a server removes its own socket");

    // The first server's path taken over after its file was removed: when the first
    // stops, it must not delete the second one's socket.
    std::fs::remove_file(&path).unwrap();
    let second = RpcServer::bind(&path, opts()).unwrap().spawn(d());
    first.stop().unwrap();
    assert!(std::path::Path::new(&path).exists(), "the second server's socket survived");
    assert_eq!(echo::call(&connect(&path), b"3").unwrap(), b"3");
    drop(second);
}

#[test]
fn a_closed_connection_frees_its_slot_at_once() {
    let path = socket_path("churn");
    let (_srv, _lines) = serve(&path, &["--max-clients", "4", "--per-process", "4"], None);
    let mut served = 0;
    for i in 0..50u32 {
        let bus = connect(&path);
        assert_eq!(echo::call(&bus, &i.to_ne_bytes()).unwrap(), i.to_ne_bytes());
        served += 1;
        drop(bus);
    }
    assert_eq!(served, 50, "one connection at a time is always served");
}

#[test]
fn max_clients_zero_is_refused() {
    let err =
        RpcServer::bind(&socket_path("zero"), ServerOptions::default().max_clients(0)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn refused_handshakes_fail_fast_on_both_sides() {
    // An SPSC connector to an RPC server, and an RPC connector to an SPSC listener.
    let path = socket_path("kind");
    let (_srv, _lines) = serve(&path, &[], None);
    // Refused as a mismatch (a hang would end as a Timeout instead).
    assert!(matches!(Bus::connect(&path), Err(Error::AbiMismatch(_))));

    let path = socket_path("kind2");
    let p2 = path.clone();
    let listener =
        std::thread::spawn(move || Bus::listen_timeout(&p2, 4096, Duration::from_secs(20)));
    let err = loop {
        match RpcBus::connect(&path) {
            Err(Error::Connect { .. }) => std::thread::sleep(Duration::from_millis(2)),
            other => break other.map(|_| ()).unwrap_err(),
        }
    };
    assert!(matches!(err, Error::AbiMismatch(_)), "{err}");
    let other_side = listener.join().unwrap();
    assert!(matches!(other_side, Err(Error::AbiMismatch(_))), "{:?}", other_side.map(|_| ()));
}

/// A sparse, sealed memfd with a valid arena header for a `cap`-byte ring.
fn hostile_memfd(cap: usize) -> std::os::fd::OwnedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create("hostile", MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, 768 + cap as u64).unwrap();
    let mut header = [0u8; 20];
    for (i, w) in [0x5441_4348u32, 4, cap as u32, 64, 2].iter().enumerate() {
        header[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    rustix::io::pwrite(&fd, &header, 0).unwrap();
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .unwrap();
    fd
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// Plays a listener that offers `fds` with handshake `hs`, on a thread.
fn hostile_listener(
    path: &str,
    hs: tachyon::__testing::Handshake,
    fds: Vec<std::os::fd::OwnedFd>,
) -> std::thread::JoinHandle<()> {
    use std::os::fd::AsFd;
    let path = path.to_owned();
    std::thread::spawn(move || {
        let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        let spec = tachyon::__testing::ListenSpec {
            timeout: Some(Duration::from_secs(20)),
            interrupt: None,
        };
        let _ = tachyon::__testing::listen(
            &path,
            &hs,
            &borrowed,
            &tachyon::ListenOptions::default(),
            spec,
            &mut |_| {},
        );
    })
}

fn connect_spsc_with(path: &str, opts: &ConnectOptions) -> tachyon::Result<Bus> {
    loop {
        match Bus::connect_with(path, opts, Wait::new()) {
            Err(Error::Connect { .. }) => std::thread::sleep(Duration::from_millis(2)),
            other => return other,
        }
    }
}

#[test]
fn a_hostile_listener_cannot_make_a_connector_populate_gigabytes() {
    const CAP: usize = 1 << 31;
    let hs = tachyon::__testing::Handshake::spsc(CAP);
    // Above the default 1 GiB limit: refused before anything is mapped.
    let path = socket_path("huge");
    let l = hostile_listener(&path, hs, vec![hostile_memfd(CAP)]);
    let err = connect_spsc_with(&path, &ConnectOptions::new()).unwrap_err();
    assert!(matches!(err, Error::CapacityLimit { offered, .. } if offered >= CAP), "{err}");
    l.join().unwrap();

    // Allowed on purpose: mapped, but not populated.
    let path = socket_path("huge2");
    let l = hostile_listener(&path, hs, vec![hostile_memfd(CAP)]);
    let before = rss_bytes();
    let bus = connect_spsc_with(&path, &ConnectOptions::new().max_capacity(CAP)).unwrap();
    let grew = rss_bytes().saturating_sub(before);
    assert_eq!(bus.capacity(), CAP);
    assert!(grew < 256 << 20, "connecting grew RSS by {} MiB", grew >> 20);
    drop(bus);
    l.join().unwrap();
}

#[test]
fn an_rpc_handshake_with_one_memfd_twice_is_refused() {
    use std::os::fd::AsFd;
    let path = socket_path("twice");
    let fd = hostile_memfd(4096);
    let dup = rustix::io::dup(fd.as_fd()).unwrap();
    let l = hostile_listener(&path, tachyon::__testing::Handshake::rpc(4096, 4096), vec![fd, dup]);
    let err = loop {
        match RpcBus::connect(&path) {
            Err(Error::Connect { .. }) => std::thread::sleep(Duration::from_millis(2)),
            other => break other.map(|_| ()).unwrap_err(),
        }
    };
    assert!(matches!(&err, Error::AbiMismatch(m) if m.contains("same shared memory")), "{err}");
    l.join().unwrap();
}

#[test]
fn a_stray_reply_is_dropped_and_the_real_one_still_arrives() {
    let path = socket_path("stray");
    let p2 = path.clone();
    let callee = std::thread::spawn(move || {
        let bus = RpcBus::listen_timeout(&p2, 4096, 4096, Duration::from_secs(20)).unwrap();
        let req = bus.serve_timeout(Duration::from_secs(10)).unwrap();
        let (cid, mt, data) = (req.correlation_id(), req.msg_type(), req.data().to_vec());
        drop(req);
        bus.reply(999, b"stray", mt).unwrap(); // a correlation id never issued
        std::thread::sleep(Duration::from_millis(20));
        bus.reply(cid, &data, mt).unwrap();
        // Stay until the caller is done.
        while bus.check_peer().is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let bus = connect(&path);
    let cid = bus.call(b"real", 1).unwrap();
    let reply = bus.wait_timeout(cid, Duration::from_secs(10)).unwrap();
    assert_eq!(reply.data(), b"real");
    drop(reply);
    assert_eq!(bus.stray_replies(), 1);
    drop(bus);
    callee.join().unwrap();
}

#[test]
fn a_killed_peer_is_dead_and_a_closed_one_is_closed() {
    // Killed mid-stream: PeerDead, after everything it sent.
    let path = socket_path("killed");
    let mut child = KillOnDrop(
        Command::new(peer_bin())
            .args(["produce", "--path", &path, "--connect", "--count", "100000000"])
            .args(["--max-size", "8", "--timeout-ms", "60000"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bus = Bus::listen_timeout(&path, 1 << 16, Duration::from_secs(20)).unwrap();
    let _ = bus.recv_timeout(Duration::from_secs(10)).unwrap();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // PeerDead, not the receive's 30 s Timeout.
    let err = loop {
        match bus.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::PeerDead(_)), "{err}");

    // Closed on purpose: PeerClosed.
    let path = socket_path("closed");
    let mut child = KillOnDrop(
        Command::new(peer_bin())
            .args(["produce", "--path", &path, "--connect", "--count", "5", "--max-size", "8"])
            .args(["--timeout-ms", "300"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bus = Bus::listen_timeout(&path, 1 << 16, Duration::from_secs(20)).unwrap();
    let mut got = 0;
    let err = loop {
        match bus.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::PeerClosed), "{err}");
    assert_eq!(got, 5);
    child.0.wait().unwrap();
}
