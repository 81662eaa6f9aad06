//! The fast ring protocol between two processes of ours: negotiated when both sides
//! offer it, refused by either side on request, and safe against a peer that agrees to it
//! and then writes garbage. (Upstream peers never get it: `tests/interop` checks that
//! our side reports `ring-mode compat` against upstream's package.)

use std::process::{Command, Stdio};
use std::time::Duration;

use tachyon::rpc::{RpcBus, RpcServer, ServeOptions, ServerOptions};
use tachyon::{Bus, ListenOptions, RingMode, Wait};
use tachyon_tests::{peer_bin, socket_path};

const T: Duration = Duration::from_secs(20);

/// Starts `tachyon-peer args` with its stdout and stderr piped.
fn peer(args: &[&str]) -> std::process::Child {
    Command::new(peer_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tachyon-peer")
}

fn finish(child: std::process::Child) -> (bool, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ours_with_ours_picks_the_fast_mode_unless_either_side_says_no() {
    // (listener offers, connector accepts) -> mode
    for (offer, accept) in [(true, true), (false, true), (true, false)] {
        let path = socket_path(&format!("mode-{offer}-{accept}"));
        let mut args = vec!["consume", "--path", &path, "--connect", "--count", "3000"];
        if !accept {
            args.push("--compat");
        }
        let child = peer(&args);
        let opts = ListenOptions::new().fast_mode(offer);
        let bus = Bus::listen_opts(&path, 1 << 16, &opts, Wait::new().timeout(T)).unwrap();
        let want = if offer && accept { RingMode::Fast } else { RingMode::Compat };
        assert_eq!(bus.ring_mode(), want, "offer {offer}, accept {accept}");
        let mut buf = vec![0u8; 4096];
        for i in 0..3000 {
            let n = tachyon_tests::payload_size(1, i, 4096);
            tachyon_tests::fill_payload(i, &mut buf[..n]);
            bus.send_timeout(&buf[..n], tachyon_tests::checksum(&buf[..n]), T).unwrap();
        }
        let (ok, out, err) = finish(child);
        assert!(ok && out.trim() == "ok 3000 messages", "{out}{err}");
        let name = if want == RingMode::Fast { "fast" } else { "compat" };
        assert!(err.contains(&format!("ring-mode {name}")), "the peer agrees: {err}");
    }
}

#[test]
fn rpc_buses_and_the_rpc_server_run_both_rings_fast() {
    // One-shot RpcBus: we listen, the peer calls.
    let path = socket_path("rpc-fast");
    let child = peer(&["rpc-call", "--path", &path, "--count", "2000", "--max-size", "2048"]);
    let callee = RpcBus::listen_timeout(&path, 1 << 16, 1 << 16, T).unwrap();
    assert_eq!(callee.ring_mode(), RingMode::Fast);
    let d = tachyon_tests::service::dispatcher();
    let (opts, mut scratch, mut served) = (ServeOptions::default(), Vec::new(), 0);
    // Until the caller leaves (its last call is the unknown msg_type).
    while d.serve_one(&callee, Wait::new().timeout(T), &opts, &mut scratch).is_ok() {
        served += 1;
    }
    let (ok, out, err) = finish(child);
    assert!(ok && out.ends_with("ok 2000 messages\n"), "{out}{err}");
    assert!(err.contains("ring-mode fast"), "{err}");
    assert!(served >= 2001, "served {served}");

    // The multi-client server: a caller of ours gets the fast mode, one that declines
    // gets ABI v0x04, side by side.
    let path = socket_path("srv-fast");
    let handle = RpcServer::bind(&path, ServerOptions::default())
        .unwrap()
        .spawn(std::sync::Arc::new(tachyon_tests::service::dispatcher()));
    let fast = peer(&["rpc-call", "--path", &path, "--count", "500"]);
    let compat = peer(&["rpc-call", "--path", &path, "--count", "500", "--compat"]);
    let (ok, out, err) = finish(fast);
    assert!(ok && out.ends_with("ok 500 messages\n") && err.contains("ring-mode fast"), "{err}");
    let (ok, out, err) = finish(compat);
    assert!(ok && out.ends_with("ok 500 messages\n") && err.contains("ring-mode compat"), "{err}");
    drop(handle);
}

/// A forged slot: offset, size, reserved size.
type Forged = (usize, u32, u32);

/// A sealed memfd with a valid arena header for a `cap`-byte ring, and `slots` forged
/// fast-mode slots: `(offset, size, reserved_size)`, each with a valid commit word.
fn forged_arena(cap: usize, slots: &[Forged]) -> std::os::fd::OwnedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create("forged", MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, 768 + cap as u64).unwrap();
    let mut header = [0u8; 20];
    for (i, w) in [0x5441_4348u32, 4, cap as u32, 64, 2].iter().enumerate() {
        header[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    rustix::io::pwrite(&fd, &header, 0).unwrap();
    for &(at, size, reserved) in slots {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&size.to_ne_bytes());
        h[4..8].copy_from_slice(&7u32.to_ne_bytes());
        h[8..12].copy_from_slice(&reserved.to_ne_bytes());
        h[24..32].copy_from_slice(&(at as u64 + 1).to_ne_bytes()); // "published"
        rustix::io::pwrite(&fd, &h, 768 + at as u64).unwrap();
    }
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .unwrap();
    fd
}

#[test]
fn a_peer_that_agrees_to_the_fast_mode_then_writes_garbage_gets_corrupted() {
    use std::os::fd::AsFd;
    const CAP: usize = 1 << 16;
    let cases: [(&str, Vec<Forged>); 4] = [
        ("reserved-not-64", vec![(0, 5, 100)]),
        ("size-beyond-slot", vec![(0, 200, 128)]),
        ("beyond-the-ring", vec![(0, 5, 1 << 17)]),
        ("skip-at-start", vec![(0, u32::MAX, 0)]),
    ];
    for (name, slots) in cases {
        let path = socket_path(&format!("garbage-{name}"));
        let child = peer(&["consume", "--path", &path, "--connect", "--count", "10"]);
        let fd = forged_arena(CAP, &slots);
        let spec = tachyon::__testing::ListenSpec {
            timeout: Some(Duration::from_secs(20)),
            interrupt: None,
        };
        let peer = tachyon::__testing::listen(
            &path,
            &tachyon::__testing::Handshake::spsc(CAP),
            &[fd.as_fd()],
            &ListenOptions::default(),
            spec,
            &mut |_| {},
        )
        .unwrap();
        assert!(peer.fast, "{name}: the connector agreed to the fast mode");
        let (ok, _, err) = finish(child);
        assert!(!ok, "{name}: the consumer accepted garbage");
        assert!(err.contains("ring-mode fast"), "{name}: {err}");
        assert!(err.contains("Corrupted"), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        // The consumer also left the arena in the FatalError state.
        let mut state = [0u8; 4];
        rustix::io::pread(&fd, &mut state, 16).unwrap();
        assert_eq!(u32::from_ne_bytes(state), 4, "{name}: FatalError");
    }
}
