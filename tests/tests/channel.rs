//! Log channels across real processes: concurrent writers and a reader that accounts
//! for every id (read, lost to an overrun, or abandoned), writers killed mid-append,
//! append-to-wake-up latency, and files that are not channels.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tachyon::channel::{Channel, ChannelOptions};
use tachyon::Error;
use tachyon_tests::peer_bin;

fn dir() -> tempdir::Dir {
    tempdir::Dir::new()
}

mod tempdir {
    /// A fresh directory under /tmp, removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = tachyon_tests::scratch_path("ch");
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        pub fn file(&self, name: &str) -> String {
            self.0.join(name).display().to_string()
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn peer(args: &[&str]) -> Child {
    Command::new(peer_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tachyon-peer (built by `cargo build -p tachyon-tests`)")
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    line.trim().to_owned()
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `writers` processes append `total` entries between them while a reader process reads
/// them all; every id must be accounted for, and the report must match.
fn writers_and_a_reader(writers: u64, total: u64, capacity: &str) -> (u64, u64) {
    let d = dir();
    let path = d.file("events");
    let count = (total / writers).to_string();
    let all = (total / writers * writers).to_string();
    let mut reader = peer(&[
        "channel-read",
        "--path",
        &path,
        "--listen",
        capacity,
        "--count",
        &all,
        "--max-size",
        "64",
        "--timeout-ms",
        "20000",
    ]);
    assert_eq!(first_line(&mut reader), "ready");
    let ws: Vec<Child> = (1..=writers)
        .map(|w| {
            peer(&[
                "channel-write",
                "--path",
                &path,
                "--listen",
                capacity,
                "--count",
                &count,
                "--seed",
                &w.to_string(),
                "--max-size",
                "64",
            ])
        })
        .collect();
    for w in ws {
        assert!(finish(w).contains(&format!("ok {count} messages")));
    }
    let out = finish(reader);
    let line = out.lines().find(|l| l.starts_with("read ")).unwrap_or_else(|| panic!("{out}"));
    let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (read, lost, abandoned) = (n[0], n[1], n[2]);
    assert_eq!(read + lost + abandoned, total / writers * writers, "{line}");
    assert_eq!(abandoned, 0, "{line}");
    // The log itself, read afterwards: the newest entries, contiguous up to the last id.
    let ch = Channel::open_path(&path, &ChannelOptions::default()).unwrap();
    assert_eq!(ch.last_id().unwrap(), total / writers * writers);
    let b = ch.read(0, usize::MAX).unwrap();
    assert_eq!(b.last_id, ch.last_id().unwrap());
    assert_eq!(b.lost + b.entries.len() as u64, b.last_id, "ids before the kept ones are lost");
    assert!(b.entries.windows(2).all(|w| w[1].id == w[0].id + 1));
    (read, lost)
}

#[test]
fn two_writer_processes_a_million_entries_every_id_accounted_for() {
    let (read, lost) = writers_and_a_reader(2, 1_000_000, "1048576");
    println!("2 writers, 1,000,000 entries, 1 MiB channel: read {read}, lost to overruns {lost}");
}

#[test]
fn four_writer_processes_a_million_entries_every_id_accounted_for() {
    // A small channel: the reader is overrun, and says by how much.
    let (read, lost) = writers_and_a_reader(4, 1_000_000, "65536");
    println!("4 writers, 1,000,000 entries, 64 KiB channel: read {read}, lost to overruns {lost}");
}

#[test]
fn a_writer_killed_mid_append_does_not_wedge_the_channel() {
    for how in ["entry", "lock"] {
        let d = dir();
        let path = d.file("killed");
        let mut stuck = peer(&["channel-hang", "--path", &path, "--count", "10", "--method", how]);
        let line = first_line(&mut stuck);
        assert!(line.starts_with("stuck"), "{line}");
        // kill -9, and reap it (a zombie counts as dead too, but be tidy).
        stuck.kill().unwrap();
        stuck.wait().unwrap();
        let started = Instant::now();
        let w = peer(&[
            "channel-write",
            "--path",
            &path,
            "--count",
            "1000",
            "--seed",
            "7",
            "--max-size",
            "64",
        ]);
        assert!(finish(w).contains("ok 1000 messages"));
        eprintln!("{how}: the writer took over the dead writer's lock in {:?}", started.elapsed());
        let ch = Channel::open_path(&path, &ChannelOptions::default()).unwrap();
        let b = ch.read(0, usize::MAX).unwrap();
        assert_eq!(b.lost, 0);
        // Either way the dead writer's entry was reserved (the lock's new holder finished
        // the reservation the dead one wrote down), never published: abandoned.
        assert_eq!(b.abandoned, 1, "{how}");
        assert_eq!(b.entries.len(), 1010);
        assert_eq!(b.last_id, 1011);
        assert_eq!(
            b.entries[..10].iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
            (0..10).map(|i| format!("before {i}").into_bytes()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_sleeping_reader_wakes_on_each_append_latency_measured() {
    let d = dir();
    let path = d.file("ping");
    let ch = Channel::open_path(&path, &ChannelOptions::default()).unwrap();
    let w = peer(&["channel-ping", "--path", &path, "--count", "300", "--batch", "2"]);
    let mut last = 0;
    let mut latencies = Vec::new();
    while latencies.len() < 300 {
        assert!(ch.wait_for(last, Some(Duration::from_secs(10))).unwrap(), "no wake-up");
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let now = u64::try_from(now.tv_sec).unwrap() * 1_000_000_000
            + u64::try_from(now.tv_nsec).unwrap();
        let b = ch.read(last, 16).unwrap();
        for e in &b.entries {
            let sent = u64::from_le_bytes(e.data[..8].try_into().unwrap());
            latencies.push(now.saturating_sub(sent));
        }
        last = b.last_id;
    }
    finish(w);
    latencies.sort_unstable();
    let us = |ns: u64| format!("{}.{:01}", ns / 1000, ns % 1000 / 100);
    let p = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
    println!(
        "append-to-wake-up across processes (unpinned): p50 {} us, p99 {} us, max {} us",
        us(p(50)),
        us(p(99)),
        us(latencies[latencies.len() - 1])
    );
    // A wait with nothing to come times out.
    let t = Instant::now();
    assert!(!ch.wait_for(last, Some(Duration::from_millis(50))).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn basics_ids_media_types_persistence_and_bad_input() {
    let d = dir();
    let ch = Channel::open(&d.0, "basics").unwrap();
    assert_eq!(ch.last_id().unwrap(), 0);
    assert_eq!(ch.read(0, 10).unwrap(), tachyon::channel::ReadBatch::default());
    assert_eq!(ch.append("text/plain", b"one").unwrap(), 1);
    assert_eq!(ch.append("", b"").unwrap(), 2);
    let b = ch.read(0, 10).unwrap();
    assert_eq!(b.entries.len(), 2);
    assert_eq!(
        (b.entries[0].id, b.entries[0].media_type.as_str(), &b.entries[0].data[..]),
        (1, "text/plain", &b"one"[..])
    );
    assert_eq!(b.last_id, 2);
    assert_eq!(ch.read(1, 10).unwrap().entries[0].id, 2);
    assert!(ch.read(2, 10).unwrap().entries.is_empty());
    // The file outlives the handle, mode 0600.
    drop(ch);
    let meta = std::fs::metadata(d.0.join("basics")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let ch = Channel::open(&d.0, "basics").unwrap();
    assert_eq!(ch.read(0, 10).unwrap().entries.len(), 2);
    // Too large, a long media type, bad names, a bad capacity.
    let max = ch.max_payload("m");
    assert!(matches!(ch.append("m", &vec![0; max + 1]), Err(Error::MessageTooLarge { .. })));
    assert_eq!(ch.append("m", &vec![7; max]).unwrap(), 3);
    let b = ch.read(0, 10).unwrap();
    assert_eq!((b.lost, b.entries.len()), (2, 1), "the largest entry evicted the others");
    assert!(matches!(ch.append(&"x".repeat(256), b""), Err(Error::InvalidArgument(_))));
    for bad in ["", ".", "..", "a/b"] {
        assert!(matches!(Channel::open(&d.0, bad), Err(Error::InvalidName { .. })), "{bad:?}");
    }
    let opts = ChannelOptions::default().capacity(100);
    assert!(matches!(Channel::open_with(&d.0, "c", &opts), Err(Error::InvalidArgument(_))));
    let opts = ChannelOptions::default().create(false);
    assert!(matches!(Channel::open_with(&d.0, "missing", &opts), Err(Error::Io { .. })));
}

#[test]
fn overwriting_reports_exactly_what_was_lost() {
    let d = dir();
    let ch = Channel::open_with(&d.0, "small", &ChannelOptions::default().capacity(4096)).unwrap();
    for i in 0..1000u32 {
        ch.append("", &i.to_le_bytes()).unwrap();
    }
    let b = ch.read(0, usize::MAX).unwrap();
    let first = b.entries[0].id;
    assert_eq!(b.lost, first - 1);
    assert_eq!(b.last_id, 1000);
    for e in &b.entries {
        assert_eq!(u64::from(u32::from_le_bytes(e.data[..].try_into().unwrap())) + 1, e.id);
    }
    // A reader part-way: the same accounting.
    let b = ch.read(500, usize::MAX).unwrap();
    assert_eq!(b.lost, first - 501);
    // Threads appending and reading at once, entries of many sizes.
    let ch = std::sync::Arc::new(ch);
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let ch = ch.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for seq in 0..20_000 {
                    tachyon_tests::channel_entry(w, seq, 300, &mut buf);
                    ch.append("t", &buf).unwrap();
                }
            })
        })
        .collect();
    let mut last = 1000;
    let mut seen = 0;
    while last < 1000 + 80_000 {
        ch.wait_for(last, Some(Duration::from_secs(10))).unwrap();
        let b = ch.read(last, 64).unwrap();
        assert_eq!(b.last_id - last, b.entries.len() as u64 + b.lost + b.abandoned);
        for e in &b.entries {
            tachyon_tests::check_channel_entry(&e.data, 300).unwrap();
        }
        seen += b.entries.len();
        last = b.last_id;
    }
    for w in writers {
        w.join().unwrap();
    }
    assert!(seen > 0);
}

#[test]
fn files_that_are_not_channels_are_refused() {
    let d = dir();
    let path = d.0.join("bad");
    let open = || Channel::open_path(&path, &ChannelOptions::default().create(false));
    let corrupt = |r: tachyon::Result<Channel>, what: &str| match r {
        Err(Error::CorruptChannel { reason, .. }) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected CorruptChannel ({what}), got {other:?}"),
    };
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    corrupt(open(), "bad magic");
    // A real channel, then damaged in different ways.
    let fresh = || {
        let _ = std::fs::remove_file(&path);
        drop(Channel::open_path(&path, &ChannelOptions::default().capacity(4096)).unwrap());
    };
    let overwrite = |off: usize, bytes: &[u8]| {
        let mut f = std::fs::read(&path).unwrap();
        f[off..off + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&path, f).unwrap();
    };
    fresh();
    overwrite(8, &2u32.to_le_bytes());
    corrupt(open(), "version 2");
    fresh();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(4096 + 2048).unwrap();
    corrupt(open(), "truncated");
    fresh();
    overwrite(80, &64u64.to_le_bytes()); // head past tail
    corrupt(open(), "impossible indices");
    fresh();
    {
        let ch = open().unwrap();
        ch.append("", b"fine").unwrap();
    }
    overwrite(4096 + 16, &3u32.to_le_bytes()); // the entry's length: not a multiple of 8
    let ch = open().unwrap();
    match ch.read(0, 10) {
        Err(Error::CorruptChannel { reason, .. }) => assert!(reason.contains("length"), "{reason}"),
        other => panic!("expected CorruptChannel, got {other:?}"),
    }
}
