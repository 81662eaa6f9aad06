//! `tachyon inspect [PID]`: the arenas of [`tachyon::inspect`], as a table or JSON.

use tachyon::inspect::ArenaInfo;

/// The arenas as JSON: a list of objects, one per arena a process holds.
pub fn to_json(arenas: &[ArenaInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        arenas
            .iter()
            .map(|a| {
                serde_json::json!({
                    "pid": a.pid,
                    "fd": a.fd,
                    "inode": a.inode,
                    "kind": a.kind,
                    "capacity": a.capacity,
                    "state": a.state,
                    "head": a.head,
                    "tail": a.tail,
                    "fill": a.fill,
                    "consumer": a.consumer,
                    "mode": a.mode,
                    "published_messages": a.published_messages,
                    "consumed_messages": a.consumed_messages,
                    "consumer_sleeps": a.consumer_sleeps,
                    "peers": a.peers,
                })
            })
            .collect(),
    )
}

/// One line per arena.
pub fn print_table(arenas: &[ArenaInfo]) {
    if arenas.is_empty() {
        println!("no Tachyon arenas found (only this user's processes are looked at)");
        return;
    }
    println!(
        "{:>8} {:>4} {:<13} {:>10} {:<12} {:>12} {:>12} {:>7} {:<9} {:<10} peers",
        "pid", "fd", "kind", "capacity", "state", "head", "tail", "fill", "consumer", "mode"
    );
    for a in arenas {
        #[allow(clippy::cast_precision_loss)]
        let pct = if a.capacity == 0 { 0.0 } else { a.fill as f64 * 100.0 / a.capacity as f64 };
        let peers: Vec<String> = a.peers.iter().map(ToString::to_string).collect();
        println!(
            "{:>8} {:>4} {:<13} {:>10} {:<12} {:>12} {:>12} {:>6.1}% {:<9} {:<10} {}",
            a.pid,
            a.fd,
            a.kind,
            a.capacity,
            a.state,
            a.head,
            a.tail,
            pct,
            a.consumer,
            a.mode,
            if peers.is_empty() { "-".to_owned() } else { peers.join(",") }
        );
    }
}
