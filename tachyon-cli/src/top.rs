//! `tachyon top [PID]`: [`tachyon::inspect`] refreshed. Between two looks, the bytes a
//! ring's producer published (`head`) and its consumer released (`tail`) give each
//! ring's throughput, without touching the ring.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tachyon::inspect::ArenaInfo;

/// Refreshes every `interval` until `count` refreshes were printed (or for ever).
pub fn run(pid: Option<i32>, interval: Duration, count: Option<u64>) {
    let pids = pid.map(|p| vec![p]);
    let mut last: HashMap<(i32, u64), (u64, u64)> = HashMap::new();
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
        last = arenas.iter().map(|a| ((a.pid, a.inode), (a.head, a.tail))).collect();
        std::thread::sleep(interval);
    }
}

#[allow(clippy::cast_precision_loss)]
fn print(arenas: &[ArenaInfo], last: &HashMap<(i32, u64), (u64, u64)>, secs: f64) {
    println!(
        "{:>8} {:>4} {:<13} {:>14} {:>14} {:>7} {:<9} {:<10}",
        "pid", "fd", "kind", "in bytes/s", "out bytes/s", "fill", "consumer", "mode"
    );
    for a in arenas {
        let (h0, t0) = last.get(&(a.pid, a.inode)).copied().unwrap_or((a.head, a.tail));
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let fill = if a.capacity == 0 { 0.0 } else { a.fill as f64 * 100.0 / a.capacity as f64 };
        println!(
            "{:>8} {:>4} {:<13} {:>14.0} {:>14.0} {:>6.1}% {:<9} {:<10}",
            a.pid,
            a.fd,
            a.kind,
            rate(a.head, h0),
            rate(a.tail, t0),
            fill,
            a.consumer,
            a.mode
        );
    }
    println!();
}
