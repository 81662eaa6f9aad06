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

/// Refreshes every `interval` until `count` refreshes were printed (or for ever), as a
/// table or (`json`) one JSON object per line.
pub fn run(pid: Option<i32>, interval: Duration, count: Option<u64>, json: bool) {
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
            let rates = rates(&arenas, &last, secs);
            if json {
                print_json(&rates, secs);
            } else {
                print(&rates);
            }
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

/// One ring's rates over a refresh.
struct Rates<'a> {
    arena: &'a ArenaInfo,
    messages: Option<f64>,
    bytes_in: f64,
    bytes_out: f64,
    sleeps: Option<f64>,
    fill_pct: f64,
}

#[allow(clippy::cast_precision_loss)]
fn rates<'a>(
    arenas: &'a [ArenaInfo],
    last: &HashMap<(i32, u64), Seen>,
    secs: f64,
) -> Vec<Rates<'a>> {
    let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
    let opt_rate = |now: Option<u64>, then: Option<u64>| Some(rate(now?, then?));
    arenas
        .iter()
        .map(|a| {
            let then = last.get(&(a.pid, a.inode)).copied().unwrap_or_else(|| Seen::of(a));
            Rates {
                arena: a,
                messages: opt_rate(a.published_messages, then.messages),
                bytes_in: rate(a.head, then.head),
                bytes_out: rate(a.tail, then.tail),
                sleeps: opt_rate(a.consumer_sleeps, then.sleeps),
                fill_pct: if a.capacity == 0 {
                    0.0
                } else {
                    a.fill as f64 * 100.0 / a.capacity as f64
                },
            }
        })
        .collect()
}

fn print(rates: &[Rates<'_>]) {
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
    let or_dash = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    for r in rates {
        let a = r.arena;
        println!(
            "{:>8} {:>4} {:<13} {:>12} {:>14.0} {:>14.0} {:>6.1}% {:>9} {:<9} {:<10}",
            a.pid,
            a.fd,
            a.kind,
            or_dash(r.messages),
            r.bytes_in,
            r.bytes_out,
            r.fill_pct,
            or_dash(r.sleeps),
            a.consumer,
            a.mode
        );
    }
    println!();
}

fn print_json(rates: &[Rates<'_>], secs: f64) {
    let rings: Vec<_> = rates
        .iter()
        .map(|r| {
            let a = r.arena;
            serde_json::json!({
                "pid": a.pid,
                "fd": a.fd,
                "inode": a.inode,
                "kind": a.kind,
                "mode": a.mode,
                "consumer": a.consumer,
                "fill": a.fill,
                "bytes_in_per_s": r.bytes_in,
                "bytes_out_per_s": r.bytes_out,
                "messages_per_s": r.messages,
                "sleeps_per_s": r.sleeps,
            })
        })
        .collect();
    println!("{}", serde_json::json!({ "interval_s": secs, "rings": rings }));
}
