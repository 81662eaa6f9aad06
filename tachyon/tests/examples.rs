//! The crate's examples (`cargo run --example ...`), run for real: the two-program SPSC
//! example, and the RPC server with its client and a graceful shutdown on SIGINT and on
//! SIGTERM (each removes the socket).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, which `cargo test` builds.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    profile.join("examples").join(name)
}

/// A socket path in `dir`.
fn socket(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(format!("{name}.sock")).display().to_string()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tachyon-examples-").tempdir().unwrap()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn consumer_and_producer_are_two_programs() {
    let dir = scratch();
    let path = socket(&dir, "spsc");
    // (The consumer gives up by itself after 10 s if the producer never comes.)
    let consumer =
        Command::new(example("consumer")).arg(&path).stdout(Stdio::piped()).spawn().unwrap();
    let producer = Command::new(example("producer")).arg(&path).output().unwrap();
    assert!(producer.status.success(), "{}", String::from_utf8_lossy(&producer.stderr));
    let out = consumer.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["got \"hello\" (type 1)", "got \"again\" (type 2)", "got \"abc\" (type 7)"]
    );
}

#[test]
fn rpc_server_serves_the_client_and_shuts_down_gracefully_on_sigint_and_sigterm() {
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        rpc_server_stops_on(signal);
    }
}

fn rpc_server_stops_on(signal: rustix::process::Signal) {
    let dir = scratch();
    let path = socket(&dir, "rpc");
    let mut server = Kill(
        Command::new(example("rpc_server")).arg(&path).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("serving quote"), "{first}");
    let client = Command::new(example("rpc_client")).arg(&path).output().unwrap();
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    assert_eq!(
        String::from_utf8_lossy(&client.stdout).lines().collect::<Vec<_>>(),
        [
            "quote TCHY x100 -> bid 103.99 ask 104.01",
            "echo -> ping",
            "quote x0 -> error 400: qty must be at least 1"
        ]
    );
    // The signal: the server stops accepting, ends its sessions, removes its socket,
    // exits 0.
    let pid = rustix::process::Pid::from_child(&server.0);
    rustix::process::kill_process(pid, signal).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the server did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{signal:?}: {status:?}");
    assert!(lines.next().unwrap().unwrap().starts_with("stopped"));
    assert!(!std::path::Path::new(&path).exists(), "{signal:?}: the socket was not removed");
}
