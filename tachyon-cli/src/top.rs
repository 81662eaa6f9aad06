//! `tachyon top [PID]`: [`tachyon::inspect`] refreshed. Between two looks, the bytes a
//! ring's producer published (`head`) and its consumer released (`tail`) give each
//! ring's throughput, without touching the ring. On a fast-mode ring each side also
//! keeps its message count (and the consumer its futex sleeps) beside its index, which
//! gives messages and sleeps per second; a compatible ring's bytes are upstream's, so
//! those columns show `-` there.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tachyon::inspect::ArenaInfo;

/// What a refresh remembers of a ring for the next one.
#[derive(Clone, Copy)]
struct Seen {
    head: u64,
    tail: u64,
    messages: Option<u64>,
    sleeps: Option<u64>,
}

impl Seen {
    fn of(a: &ArenaInfo) -> Self {
        Self {
            head: a.head,
            tail: a.tail,
            messages: a.published_messages,
            sleeps: a.consumer_sleeps,
        }
    }
}

/// Refreshes every `interval` until `count` refreshes were printed (or for ever).
pub fn run(pid: Option<i32>, interval: Duration, count: Option<u64>) {
    let pids = pid.map(|p| vec![p]);
    let mut last: HashMap<(i32, u64), Seen> = HashMap::new();
    let mut at = Instant::now();
    let mut first = true;
    let mut printed = 0;
    loop {
        let arenas = tachyon::inspect::arenas(pids.as_deref());
        let secs = at.elapsed().as_secs_f64().max(1e-3);
        at = Instant::now();
        if !first {
            print(&arenas, &last, secs);
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return;
            }
        }
        first = false;
        last = arenas.iter().map(|a| ((a.pid, a.inode), Seen::of(a))).collect();
        std::thread::sleep(interval);
    }
}

#[allow(clippy::cast_precision_loss)]
fn print(arenas: &[ArenaInfo], last: &HashMap<(i32, u64), Seen>, secs: f64) {
    println!(
        "{:>8} {:>4} {:<13} {:>12} {:>14} {:>14} {:>7} {:>9} {:<9} {:<10}",
        "pid",
        "fd",
        "kind",
        "msgs/s",
        "in bytes/s",
        "out bytes/s",
        "fill",
        "sleeps/s",
        "consumer",
        "mode"
    );
    for a in arenas {
        let then = last.get(&(a.pid, a.inode)).copied().unwrap_or_else(|| Seen::of(a));
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let opt_rate = |now: Option<u64>, then: Option<u64>| match (now, then) {
            (Some(n), Some(t)) => format!("{:.0}", rate(n, t)),
            _ => "-".to_owned(),
        };
        let fill = if a.capacity == 0 { 0.0 } else { a.fill as f64 * 100.0 / a.capacity as f64 };
        println!(
            "{:>8} {:>4} {:<13} {:>12} {:>14.0} {:>14.0} {:>6.1}% {:>9} {:<9} {:<10}",
            a.pid,
            a.fd,
            a.kind,
            opt_rate(a.published_messages, then.messages),
            rate(a.head, then.head),
            rate(a.tail, then.tail),
            fill,
            opt_rate(a.consumer_sleeps, then.sleeps),
            a.consumer,
            a.mode
        );
    }
    println!();
}
