//! Shared pieces of the cross-process tests: deterministic payloads and peer spawning.
//!
//! The payload scheme is simple enough for Python to reproduce quickly
//! (`tests/interop/payloads.py`), so any pair of peers can check each other's stream.
#![allow(clippy::missing_panics_doc)]

pub mod pki;
pub mod schema;
pub mod service;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Splitmix64: a tiny, well-mixed PRNG step.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Payload size of message `i` of a stream: uniform in `0..=max`.
pub fn payload_size(seed: u64, i: u64, max: usize) -> usize {
    (splitmix64(seed ^ i) % (max as u64 + 1)) as usize
}

/// Fills `out` with the content of message `i`: byte `j` is `(i + 31 j) mod 251`.
pub fn fill_payload(i: u64, out: &mut [u8]) {
    let mut v = (i % 251) as u32;
    for b in out {
        *b = v as u8;
        v += 31;
        if v >= 251 {
            v -= 251;
        }
    }
}

/// The checksum carried in `type_id`: CRC-32 (IEEE) of the payload.
pub fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Verifies message `i` of a stream.
///
/// # Errors
/// A description of the first difference: size, checksum or content.
pub fn verify(
    seed: u64,
    i: u64,
    max: usize,
    payload: &[u8],
    type_id: u32,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let want = payload_size(seed, i, max);
    if payload.len() != want {
        return Err(format!("message {i}: size {} but expected {want}", payload.len()));
    }
    if checksum(payload) != type_id {
        return Err(format!("message {i}: checksum mismatch"));
    }
    scratch.resize(want, 0);
    fill_payload(i, scratch);
    if payload != &scratch[..] {
        return Err(format!("message {i}: content differs (lost or reordered message)"));
    }
    Ok(())
}

/// The payload of entry `seq` of channel writer `writer`: the writer and seq (8 bytes
/// each, little-endian), the CRC-32 of the rest (4 bytes), then `payload_size` bytes of
/// `fill_payload` content (at most `max`).
pub fn channel_entry(writer: u64, seq: u64, max: usize, out: &mut Vec<u8>) {
    let n = payload_size(writer.wrapping_mul(0x1_0000_0001) ^ 7, seq, max);
    out.clear();
    out.extend_from_slice(&writer.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.resize(20 + n, 0);
    fill_payload(seq ^ writer, &mut out[20..]);
    let crc = checksum(&out[20..]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// Checks a [`channel_entry`] payload; returns its writer and seq.
///
/// # Errors
/// What does not match.
pub fn check_channel_entry(data: &[u8], max: usize) -> Result<(u64, u64), String> {
    if data.len() < 20 {
        return Err(format!("{} bytes is shorter than the 20-byte prefix", data.len()));
    }
    let writer = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let seq = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
    let mut want = Vec::new();
    channel_entry(writer, seq, max, &mut want);
    if data != want.as_slice() {
        return Err(format!("writer {writer} seq {seq}: content or checksum differs"));
    }
    Ok((writer, seq))
}

/// Path of the `tachyon-peer` binary: `$TACHYON_PEER`, or the one cargo built next to
/// the running test (`target/<profile>/deps/<test>` -> `target/<profile>/tachyon-peer`).
pub fn peer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TACHYON_PEER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    profile_dir.join("tachyon-peer")
}

/// This test process's scratch directory: a fresh directory under the temp dir, made on
/// first use and removed with everything in it when the process exits (also after a
/// failed test: the test harness exits through `exit`, which runs the removal).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_scratch() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    DIR.get_or_init(|| {
        let d = tempfile::Builder::new()
            .prefix(&format!("tachyon-test-{}-", std::process::id()))
            .tempdir()
            .expect("make the scratch directory")
            .keep();
        // Peers running as other users (the permission tests) must reach files in it.
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the scratch directory");
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as atexit requires;
        // it only reads a OnceLock that is set before this call.
        unsafe { libc::atexit(remove_scratch) };
        d
    })
}

/// A fresh path in [`scratch_dir`], its file name ending in `name` (a counter in
/// front keeps two calls with one name apart).
pub fn scratch_path(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    scratch_dir().join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// A unique socket path in [`scratch_dir`].
pub fn socket_path(name: &str) -> String {
    scratch_path(&format!("{name}.sock")).display().to_string()
}

/// Spawns `tachyon-peer` with `args`, stdout piped, stderr inherited.
pub fn spawn_peer(args: &[&str]) -> Child {
    Command::new(peer_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tachyon-peer")
}

/// Kills a child on drop, so a failing test leaves no process behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tachyon-peer tcp-serve` (in `netns` if given) and waits for its address;
/// the receiver gets the rest of its stdout, a line at a time.
pub fn tcp_peer(
    args: &[&str],
    netns: Option<&str>,
) -> (KillOnDrop, String, std::sync::mpsc::Receiver<String>) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(peer_bin());
            c
        }
        None => Command::new(peer_bin()),
    };
    let mut child = cmd.arg("tcp-serve").args(args).stdout(Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let ready =
        rx.recv_timeout(std::time::Duration::from_secs(30)).expect("tcp-serve printed nothing");
    let addr = ready.split_whitespace().nth(1).expect("ready <addr>").to_owned();
    (KillOnDrop(child), addr, rx)
}
