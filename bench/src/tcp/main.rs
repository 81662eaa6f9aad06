//! `tachyon-tcp-bench`: RPC over TCP against its anchors, side by side in one run.
//!
//! ```text
//! tachyon-tcp-bench [--samples N] [--rounds R] [--seconds S] [--rtt-cpu C] [--client-cpu C] [--server-cpu C]
//! tachyon-tcp-bench --only <std|tokio|uring|node|ours-uring|ours-epoll>  # one latency, for profiling
//! tachyon-tcp-bench server <std|tokio|uring|ours-uring|ours-epoll>   # internal
//! ```
//!
//! Latency: 32-byte round trips on one connection, client and server pinned to the same
//! CPU (`--rtt-cpu`, default 0): a wake-up across vCPUs adds 50 to 70 us on this VM and
//! would drown what is measured. Throughput: 64 connections with 16 calls in flight each,
//! the client on `--client-cpu` (0) and the server on `--server-cpu` (1), with the server's
//! CPU time per call read from `/proc/<pid>/task/*/schedstat`. Rounds interleave the
//! servers so machine noise hits them alike; the medians of the rounds are printed.
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod load;
mod servers;

use std::process::Command;
use std::time::Duration;

use load::Client;
use tachyon_bench::{median, pct, pin, Server};

/// The servers compared: kind, label, whether the load speaks our frames, and the
/// latency client.
const SERVERS: [(&str, &str, bool, Client); 7] = [
    ("std", "std::net blocking echo (floor)", false, Client::Echo),
    ("tokio", "tokio current_thread echo", false, Client::Echo),
    ("uring", "raw io_uring echo (multishot+bufring)", false, Client::Echo),
    ("node", "Node net echo", false, Client::Echo),
    ("ours-uring", "ours, io_uring server (TcpClient)", true, Client::Ours),
    ("ours-epoll", "ours, epoll server (TcpClient)", true, Client::Ours),
    ("ours-uring", "ours, io_uring server (std::net client)", true, Client::Frames),
];

/// Round trips per server before moving on to the next: latency rows interleave in
/// chunks this small, so machine noise (this VM's is large) hits every row alike.
const CHUNK: usize = 500;

/// RPC over TCP against std::net, tokio, raw io_uring and Node's net (CPU placement is
/// printed).
#[derive(clap::Parser)]
#[command(name = "tachyon-tcp-bench")]
struct Args {
    /// Round trips timed per latency row.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Rounds; medians are printed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each throughput run.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// The CPU of both sides of the latency rows.
    #[arg(long, default_value_t = 0)]
    rtt_cpu: usize,
    /// The client's CPU in the throughput rows.
    #[arg(long, default_value_t = 0)]
    client_cpu: usize,
    /// The server's CPU in the throughput rows.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// One server's latency alone, e.g. under a profiler (std, tokio, uring, node,
    /// ours-uring, ours-epoll).
    #[arg(long)]
    only: Option<String>,
    /// One server's throughput alone.
    #[arg(long)]
    only_tput: Option<String>,
}

fn parse() -> Args {
    <Args as clap::Parser>::parse()
}

/// A server of `kind` on `cpu`: Node's runs the echo script, ours are this binary.
fn start(kind: &str, cpu: usize) -> Server {
    if kind == "node" {
        let mut node = Command::new("node");
        node.args(["-e", servers::NODE_ECHO]);
        Server::pinned(cpu, &node)
    } else {
        Server::this_exe(cpu, &[kind])
    }
}

#[derive(Default, Clone)]
struct Row {
    p50: Vec<f64>,
    p99: Vec<f64>,
    calls_s: Vec<f64>,
    cpu_ns: Vec<f64>,
}

// One linear report: measure in interleaved rounds, then print.
#[allow(clippy::too_many_lines)]
fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("server") {
        servers::run(&argv[2]);
        return;
    }
    let a = parse();
    if let Some(kind) = a.only.as_deref() {
        // One server's latency alone (raw frame client for ours), e.g. under a profiler.
        pin(0);
        let s = start(kind, 0);
        let client = if kind.starts_with("ours") { Client::Frames } else { Client::Echo };
        let mut c = load::RttClient::connect(client, s.port());
        let mut v = Vec::new();
        c.run(10_000, &mut v);
        v.clear();
        c.run(200_000, &mut v);
        println!("{kind}: p50 {:.2} us, p99 {:.2} us", pct(&mut v, 0.5), pct(&mut v, 0.99));
        return;
    }
    if let Some(kind) = a.only_tput.as_deref() {
        // One server's throughput alone, e.g. under a profiler.
        pin(0);
        let s = start(kind, 1);
        let (mut at, mut used) = (0, 0);
        let window = Duration::from_secs(3);
        let calls = load::pipelined(
            s.port(),
            64,
            16,
            kind.starts_with("ours"),
            Duration::from_millis(300),
            window,
            &mut |start| if start { at = s.cpu_ns() } else { used = s.cpu_ns() - at },
        );
        println!(
            "{kind}: {:.0} calls/s, {:.0} server ns/call",
            calls as f64 / window.as_secs_f64(),
            used as f64 / calls.max(1) as f64
        );
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "TCP echo, {}-byte payloads; {cpus} CPUs. Latency: client and server both pinned to CPU {}. \
         Throughput: 64 connections x 16 in flight, client on CPU {}, server on CPU {}.",
        load::PAYLOAD, a.rtt_cpu, a.client_cpu, a.server_cpu
    );
    let mut rows = vec![Row::default(); SERVERS.len()];
    let warmup = a.samples / 10;
    let window = Duration::from_secs_f64(a.seconds);
    for round in 0..a.rounds {
        // Latency, on one CPU: every server up at once, visited in turn in small chunks.
        pin(a.rtt_cpu);
        let servers: Vec<Server> =
            SERVERS.iter().map(|(kind, ..)| start(kind, a.rtt_cpu)).collect();
        let mut clients: Vec<load::RttClient> = SERVERS
            .iter()
            .zip(&servers)
            .map(|((_, _, _, c), s)| load::RttClient::connect(*c, s.port()))
            .collect();
        let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(a.samples); SERVERS.len()];
        let mut scratch = Vec::new();
        for c in &mut clients {
            c.run(warmup, &mut scratch);
        }
        for _ in 0..a.samples.div_ceil(CHUNK) {
            for (c, v) in clients.iter_mut().zip(&mut samples) {
                c.run(CHUNK, v);
            }
        }
        drop(clients);
        drop(servers);
        for (row, v) in rows.iter_mut().zip(&mut samples) {
            row.p50.push(pct(v, 0.50));
            row.p99.push(pct(v, 0.99));
        }
        for (i, (kind, _, framed, _)) in SERVERS.iter().enumerate() {
            // Throughput, on two.
            pin(a.client_cpu);
            let s = start(kind, a.server_cpu);
            let mut cpu_at = 0;
            let mut cpu_used = 0;
            let calls = load::pipelined(
                s.port(),
                64,
                16,
                *framed,
                Duration::from_millis(300),
                window,
                &mut |start| {
                    if start {
                        cpu_at = s.cpu_ns();
                    } else {
                        cpu_used = s.cpu_ns() - cpu_at;
                    }
                },
            );
            rows[i].calls_s.push(calls as f64 / window.as_secs_f64());
            rows[i].cpu_ns.push(cpu_used as f64 / calls.max(1) as f64);
        }
        eprintln!("round {} of {} done", round + 1, a.rounds);
    }
    println!(
        "{:<40} {:>9} {:>9} {:>12} {:>14}",
        "server (median of rounds)", "p50 us", "p99 us", "calls/s", "server ns/call"
    );
    let mut med = Vec::new();
    for (i, (_, label, ..)) in SERVERS.iter().enumerate() {
        let r = &mut rows[i];
        let m =
            (median(&mut r.p50), median(&mut r.p99), median(&mut r.calls_s), median(&mut r.cpu_ns));
        println!("{label:<40} {:>9.2} {:>9.2} {:>12.0} {:>14.0}", m.0, m.1, m.2, m.3);
        med.push(m);
    }
    let (floor, tokio, ours_u, ours_e) = (med[0], med[1], med[4], med[5]);
    println!(
        "ratios (targets: RTT p50 <= 1.15x the floor; calls/s >= tokio's at <= its CPU/call):"
    );
    println!(
        "  ours io_uring RTT p50 / floor            {:.2}x   (epoll server {:.2}x)",
        ours_u.0 / floor.0,
        ours_e.0 / floor.0
    );
    println!(
        "  ours io_uring calls/s / tokio            {:.2}x   (epoll server {:.2}x)",
        ours_u.2 / tokio.2,
        ours_e.2 / tokio.2
    );
    println!(
        "  ours io_uring server CPU/call / tokio    {:.2}x   (epoll server {:.2}x)",
        ours_u.3 / tokio.3,
        ours_e.3 / tokio.3
    );
}
