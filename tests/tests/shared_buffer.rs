//! Shared buffers across real processes: each kind (POSIX name, file, System V key)
//! written by one process while another sleeps in `wait` on a word of it; file contents
//! outliving their processes; sizes checked against the existing object; unlink.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tachyon::{BufferKind, Error, SharedBuffer, SharedBufferOptions};
use tachyon_tests::peer_bin;

fn unique(tag: &str) -> String {
    format!("tachyon-buf-{}-{tag}", std::process::id())
}

/// A process attaches `spec` and waits on word 0; another fills it and notifies.
fn across_processes(spec: &str, size: usize) {
    let size_arg = size.to_string();
    let mut waiter = Command::new(peer_bin())
        .args(["buffer", "--method", "wait", "--path", spec, "--count", &size_arg, "--seed", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(waiter.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "attached", "{spec}");
    let writer = Command::new(peer_bin())
        .args(["buffer", "--method", "write", "--path", spec, "--count", &size_arg, "--seed", "5"])
        .output()
        .unwrap();
    assert!(writer.status.success(), "{}", String::from_utf8_lossy(&writer.stderr));
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn each_kind_is_shared_between_processes_with_wait_and_notify() {
    // The object exists before the waiter attaches (it must not create it).
    let posix = unique("posix");
    let a = SharedBuffer::open(&BufferKind::posix(&posix), 65536, &SharedBufferOptions::default())
        .unwrap();
    assert!(a.created());
    across_processes(&format!("*{posix}"), 65536);
    a.unlink().unwrap();

    let dir = tachyon_tests::scratch_path("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shared.bin");
    let f =
        SharedBuffer::open(&BufferKind::File(file.clone()), 8192, &SharedBufferOptions::default())
            .unwrap();
    across_processes(file.to_str().unwrap(), 8192);
    drop(f);
    // The file keeps what the writer wrote after every process let go.
    let bytes = std::fs::read(&file).unwrap();
    let mut want = vec![0u8; 8192 - 64];
    tachyon_tests::fill_payload(5, &mut want);
    assert_eq!(&bytes[64..], &want[..]);
    assert_eq!(bytes[..4], 1u32.to_le_bytes());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();

    let key = i32::try_from(0x5400_0000 | (std::process::id() & 0xFFFF)).unwrap();
    let s =
        SharedBuffer::open(&BufferKind::SysV(key), 16384, &SharedBufferOptions::default()).unwrap();
    across_processes(&key.to_string(), 16384);
    s.unlink().unwrap();
}

#[test]
fn sizes_names_and_words_are_checked() {
    let name = unique("sizes");
    let kind = BufferKind::posix(&name);
    let mut a = SharedBuffer::open(&kind, 4096, &SharedBufferOptions::default()).unwrap();
    // A larger attach is refused; a smaller one, or size 0 (the whole object), is fine.
    let e = SharedBuffer::open(&kind, 8192, &SharedBufferOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("4096 bytes")), "{e}");
    let b = SharedBuffer::open(&kind, 100, &SharedBufferOptions::default()).unwrap();
    assert_eq!((b.len(), b.created()), (100, false));
    let whole = SharedBuffer::open(&kind, 0, &SharedBufferOptions::default()).unwrap();
    assert_eq!(whole.len(), 4096);
    a[10] = 42;
    assert_eq!(whole[10], 42, "the same bytes");
    // Atomics: bounds and alignment checked; a counter shared by both handles.
    assert!(a.atomic_u32(4094).is_err() && a.atomic_u64(4).is_err());
    a.atomic_u64(16).unwrap().fetch_add(3, Ordering::SeqCst);
    assert_eq!(whole.atomic_u64(16).unwrap().load(Ordering::SeqCst), 3);
    // A wait that nobody ends times out; one on a word that already differs returns.
    assert!(!b.wait(0, 0, Some(Duration::from_millis(30))).unwrap());
    assert!(b.wait(16, 0, Some(Duration::from_millis(30))).unwrap());
    a.unlink().unwrap();
    assert!(matches!(a.unlink(), Err(Error::Io { .. })), "already gone");
    let missing = SharedBufferOptions::default().create(false);
    assert!(matches!(SharedBuffer::open(&kind, 4096, &missing), Err(Error::Io { .. })));
    assert!(matches!(
        SharedBuffer::open(&kind, 0, &SharedBufferOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    // That failed open created the object, found it could not size it, and removed it.
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists(), "left in /dev/shm");
    assert!(matches!(
        SharedBuffer::open(&BufferKind::posix("a/b"), 64, &SharedBufferOptions::default()),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        SharedBuffer::open(&BufferKind::SysV(0), 64, &SharedBufferOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(BufferKind::parse("*x"), BufferKind::posix("x"));
    assert_eq!(BufferKind::parse("1234"), BufferKind::SysV(1234));
    assert_eq!(BufferKind::parse("/tmp/f"), BufferKind::File("/tmp/f".into()));
}
