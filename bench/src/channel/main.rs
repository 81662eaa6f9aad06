//! `tachyon-channel-bench`: log channels next to a UNIX datagram socket, in one run.
//!
//! - Append throughput: 1 and 4 writer processes appending 64-byte entries to one
//!   channel, against the same number of processes sending 64-byte datagrams to one
//!   receiving socket (a datagram socket is the usual kernel way to fan many writers
//!   into one log).
//! - Append-to-wake-up latency: a process asleep in `Channel::wait_for` woken by another
//!   process's append, against a bare futex ping between the same two processes.
//!
//! ```text
//! tachyon-channel-bench [--entries N] [--samples N]
//! ```
//! The parent runs on CPU 0; a single child on CPU 1; four writers are spread by the
//! scheduler over both CPUs (two vCPUs here).
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tachyon::channel::{Channel, ChannelOptions};

const ENTRY: usize = 64;
const PARENT_CPU: usize = 0;
const CHILD_CPU: usize = 1;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn unpin() {
    let mut set = rustix::thread::CpuSet::new();
    set.set(PARENT_CPU);
    set.set(CHILD_CPU);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn child(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .arg("child")
        .args(args)
        .spawn()
        .expect("spawn child")
}

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn tmp(name: &str) -> String {
    format!("/dev/shm/tachyon-chbench-{}-{name}", std::process::id())
}

/// Entries per second appended by `writers` processes, `per` entries each.
fn channel_appends(writers: usize, per: u64) -> f64 {
    let path = tmp(&format!("ch{writers}"));
    let _ = std::fs::remove_file(&path);
    drop(
        Channel::open_path(&path, &ChannelOptions::default().capacity(64 << 20)).expect("channel"),
    );
    let start = Instant::now();
    let kids: Vec<Child> = (0..writers)
        .map(|_| child(&["append", &path, &per.to_string(), &writers.to_string()]))
        .collect();
    for mut k in kids {
        assert!(k.wait().expect("wait").success());
    }
    let rate = (writers as u64 * per) as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

/// Datagrams per second received from `writers` sender processes, `per` each.
fn socket_sends(writers: usize, per: u64) -> f64 {
    let path = tmp(&format!("dg{writers}"));
    let _ = std::fs::remove_file(&path);
    let rx = UnixDatagram::bind(&path).expect("bind");
    rx.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let start = Instant::now();
    let kids: Vec<Child> = (0..writers)
        .map(|_| child(&["send", &path, &per.to_string(), &writers.to_string()]))
        .collect();
    let mut buf = [0u8; 256];
    let total = writers as u64 * per;
    for _ in 0..total {
        rx.recv(&mut buf).expect("recv");
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    for mut k in kids {
        assert!(k.wait().expect("wait").success());
    }
    let _ = std::fs::remove_file(&path);
    rate
}

/// Latencies (ns) from a child's append to this process waking in `wait_for`.
fn channel_wakeups(samples: u64) -> Vec<u64> {
    let path = tmp("wake");
    let _ = std::fs::remove_file(&path);
    let ch = Channel::open_path(&path, &ChannelOptions::default()).expect("channel");
    let mut k = child(&["ping-channel", &path, &samples.to_string()]);
    let mut out = Vec::new();
    let mut last = 0;
    while (out.len() as u64) < samples {
        assert!(ch.wait_for(last, Some(Duration::from_secs(10))).expect("wait"));
        let woke = now_ns();
        let b = ch.read(last, 16).expect("read");
        for e in &b.entries {
            let sent = u64::from_le_bytes(e.data[..8].try_into().expect("8 bytes"));
            out.push(woke.saturating_sub(sent));
        }
        last = b.last_id;
    }
    assert!(k.wait().expect("wait").success());
    let _ = std::fs::remove_file(&path);
    out
}

fn shared_words(path: &str) -> memmap2::MmapMut {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open");
    f.set_len(4096).expect("size");
    // SAFETY: a file of this benchmark, sized above; both processes only touch it through
    // the atomics of `words`.
    unsafe { memmap2::MmapMut::map_mut(&f) }.expect("map")
}

/// The futex word (offset 0) and the stamp (offset 64) of a ping file.
fn words(m: &memmap2::MmapMut) -> (&AtomicU32, &AtomicU64) {
    // SAFETY: both offsets are aligned and inside the page-aligned 4096-byte mapping,
    // which outlives the references.
    unsafe {
        (
            AtomicU32::from_ptr(m.as_ptr().cast_mut().cast()),
            AtomicU64::from_ptr(m.as_ptr().add(64).cast_mut().cast()),
        )
    }
}

/// Latencies (ns) of a bare futex wake-up from a child process.
fn futex_wakeups(samples: u64) -> Vec<u64> {
    let path = tmp("futex");
    let m = shared_words(&path);
    let (word, stamp) = words(&m);
    word.store(0, Ordering::SeqCst);
    let mut k = child(&["ping-futex", &path, &samples.to_string()]);
    let mut out = Vec::new();
    let mut seen = 0;
    // Until the child's last ping: two pings may land between two looks (only the
    // newest stamp is there to measure), so count pings, not samples.
    while u64::from(seen) < samples {
        let v = word.load(Ordering::Acquire);
        if v == seen {
            let ts = rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 };
            let flags = rustix::thread::futex::Flags::empty();
            let _ = rustix::thread::futex::wait(word, flags, seen, Some(&ts));
            continue;
        }
        out.push(now_ns().saturating_sub(stamp.load(Ordering::Acquire)));
        seen = v;
    }
    assert!(k.wait().expect("wait").success());
    let _ = std::fs::remove_file(&path);
    out
}

fn run_child(args: &[String]) {
    let n: u64 = args[2].parse().expect("count");
    match args[0].as_str() {
        "append" => {
            if args[3] == "1" {
                pin(CHILD_CPU);
            }
            let ch = Channel::open_path(&args[1], &ChannelOptions::default()).expect("channel");
            let entry = [7u8; ENTRY];
            for _ in 0..n {
                ch.append("", &entry).expect("append");
            }
        }
        "send" => {
            if args[3] == "1" {
                pin(CHILD_CPU);
            }
            let tx = UnixDatagram::unbound().expect("socket");
            let msg = [7u8; ENTRY];
            for _ in 0..n {
                tx.send_to(&msg, &args[1]).expect("send");
            }
        }
        "ping-channel" => {
            pin(CHILD_CPU);
            let ch = Channel::open_path(&args[1], &ChannelOptions::default()).expect("channel");
            for _ in 0..n {
                std::thread::sleep(Duration::from_micros(500));
                ch.append("", &now_ns().to_le_bytes()).expect("append");
            }
        }
        "ping-futex" => {
            pin(CHILD_CPU);
            let m = shared_words(&args[1]);
            let (word, stamp) = words(&m);
            for _ in 0..n {
                std::thread::sleep(Duration::from_micros(500));
                stamp.store(now_ns(), Ordering::Release);
                word.fetch_add(1, Ordering::Release);
                let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
            }
        }
        other => panic!("unknown child {other}"),
    }
}

fn pct(mut v: Vec<u64>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1e3;
    (at(0.50), at(0.99))
}

/// Log channel appends and wake-ups against a UNIX datagram socket and a futex (CPU
/// placement printed).
#[derive(clap::Parser)]
#[command(name = "tachyon-channel-bench")]
struct Args {
    /// Entries per throughput measurement.
    #[arg(long, default_value_t = 2_000_000)]
    entries: u64,
    /// Wake-ups timed.
    #[arg(long, default_value_t = 2_000)]
    samples: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        run_child(&args[1..]);
        return;
    }
    let Args { entries, samples } = clap::Parser::parse();
    println!(
        "tachyon-channel-bench: {entries} {ENTRY}-byte entries per measurement, {samples} wake-ups; \
         parent on CPU {PARENT_CPU}, a single child on CPU {CHILD_CPU}, four writers unpinned over both"
    );
    println!("\nappend throughput (M entries/s)          1 writer   4 writers");
    unpin();
    let ch1 = channel_appends(1, entries);
    let ch4 = channel_appends(4, entries / 4);
    let dg1 = socket_sends(1, entries);
    let dg4 = socket_sends(4, entries / 4);
    println!("tachyon channel (64 MiB, file in /dev/shm) {:>8.2}  {:>9.2}", ch1 / 1e6, ch4 / 1e6);
    println!("UNIX datagram socket, one receiver         {:>8.2}  {:>9.2}", dg1 / 1e6, dg4 / 1e6);
    pin(PARENT_CPU);
    println!("\nappend-to-wake-up latency (us)                p50       p99");
    let (c50, c99) = pct(channel_wakeups(samples));
    let (f50, f99) = pct(futex_wakeups(samples));
    println!("channel: wait_for woken by an append     {c50:>9.1} {c99:>9.1}");
    println!("bare futex ping between the same two     {f50:>9.1} {f99:>9.1}");
    println!("\nratios (same run):");
    println!(
        "  append throughput, channel / socket, 1 writer   {:>6.2}  (target >= 10)",
        ch1 / dg1
    );
    println!(
        "  append throughput, channel / socket, 4 writers  {:>6.2}  (target >= 10)",
        ch4 / dg4
    );
    println!("  wake-up p50, channel / futex ping               {:>6.2}  (target <= 2)", c50 / f50);
}
