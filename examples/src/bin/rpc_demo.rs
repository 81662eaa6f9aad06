//! `rpc_demo`: a Rust RPC server of the `Quotes` service (`schemas/quote.tachyon`) in
//! one process, its generated client in another, and what the client measured.
//!
//! ```text
//! rpc_demo                        # starts the server as a child process, runs the
//!                                 # client, prints what it measured
//! rpc_demo --python PY SCRIPT     # then runs a Python caller (SCRIPT PATH) too
//! rpc_demo --node NODE SCRIPT     # and/or a Node caller (both flags may be given)
//! rpc_demo server P               # the server alone, on socket path P
//! ```
#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::rpc::{RpcBus, RpcServer, ServerOptions};
use tachyon_examples::{quote, QuoteReq, QuotesClient, Side};

const CALLS: usize = 50_000;

fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Pins this process (and the children it starts later) to `cpu`; `false` when the
/// machine has no such CPU. (Not `available_parallelism`: it counts only the CPUs this
/// process may already use, so a child of a pinned parent would see one.)
fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

fn measure(label: &str, mut f: impl FnMut()) -> u64 {
    let mut ns: Vec<u64> = (0..CALLS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    ns.sort_unstable();
    let p50 = percentile(&ns, 0.5);
    println!(
        "  {label:<34} p50 {p50:>6} ns   p99 {:>6} ns   ({CALLS} calls)",
        percentile(&ns, 0.99)
    );
    p50
}

fn client(path: &str) -> tachyon::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let c = loop {
        match RpcBus::connect(path) {
            Ok(c) => break c,
            Err(tachyon::Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    };
    println!("rpc_demo: client connected (liveness link: {})", c.has_peer_link());
    let client = QuotesClient::new(&c).with_timeout(Duration::from_secs(5));
    client.verify()?;
    println!(
        "  client.verify()                    -> the server serves quote.Quotes {}",
        quote::FINGERPRINT
    );
    let req = QuoteReq { symbol: "TCHY".into(), qty: 100, venue: None, side: Side::Buy };
    let q = client.quote(&req)?;
    println!("  client.quote(TCHY x100)            -> bid {:.2} ask {:.2}", q.bid, q.ask);
    match client.quote(&QuoteReq { symbol: String::new(), qty: 0, venue: None, side: Side::Buy }) {
        Err(tachyon::Error::Rpc(e)) => {
            println!("  client.quote(bad request)          -> RpcError: {e}");
        }
        other => println!("  client.quote(bad request)          -> unexpected {other:?}"),
    }
    match c.invoke(b"?", 77, Some(Duration::from_secs(1))) {
        Err(tachyon::Error::Rpc(e)) => {
            println!("  invoke(unknown msg_type 77)        -> RpcError: {e}");
        }
        other => println!("  invoke(unknown msg_type 77)        -> unexpected {other:?}"),
    }
    println!("round trips (client and server in separate processes):");
    let payload = [7u8; 32];
    for _ in 0..5_000 {
        client.echo(&payload)?;
    }
    let raw = measure("client.echo, 32 raw bytes", || {
        client.echo(&payload).expect("echo");
    });
    let typed = measure("client.quote, typed MessagePack", || {
        client.quote(&req).expect("quote");
    });
    println!("  typed/raw p50                      {:.2}x", typed as f64 / raw as f64);
    let t = Instant::now();
    let rounds = CALLS / 16;
    for _ in 0..rounds {
        let cids: Vec<u64> =
            (0..16).map(|_| c.call(&payload, quote::quotes::ECHO).expect("call")).collect();
        for cid in cids {
            c.wait(cid).expect("wait");
        }
    }
    println!(
        "  pipelined echo, 16 in flight          {:.2} M calls/s",
        (rounds * 16) as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    Ok(())
}

fn main() -> tachyon::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("server") {
        if let Some(cpu) = args.get(3).and_then(|c| c.parse().ok()).filter(|_| args[2] == "--cpu") {
            pin(cpu);
        }
        let server = RpcServer::bind(&args[1], ServerOptions::default())?;
        // SIGINT or SIGTERM: stop serving; dropping the server removes its socket.
        let stop = server.stop_handle();
        ctrlc::set_handler(move || stop.stop())
            .map_err(|e| tachyon::Error::InvalidArgument(format!("signal handler: {e}")))?;
        return server.serve(Arc::new(tachyon_examples::service()));
    }
    let path = std::env::temp_dir()
        .join(format!("tachyon-rpc-demo-{}.sock", std::process::id()))
        .display()
        .to_string();
    // The callers (this process, then the Python and Node ones it starts) on CPU 0, the
    // server on CPU 1.
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) && pin(0);
    let mut server = Command::new(std::env::current_exe().expect("current exe"))
        .args(["server", &path, "--cpu", "1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    println!("rpc_demo: server process {} serving `quote` (msg_type 1) and `echo` (msg_type 2) at {path}", server.id());
    if pinned {
        println!("rpc_demo: CPU placement: callers on CPU 0, the server on CPU 1");
    } else {
        println!("rpc_demo: CPU placement: one CPU, shared by callers and server");
    }
    let mut result = client(&path);
    // Callers in other languages: `--python PY SCRIPT` and `--node NODE SCRIPT`.
    for flag in args.chunks(3) {
        let [lang, program, script] = flag else { break };
        let lang = lang.trim_start_matches("--");
        println!();
        let status = Command::new(program).args([script.as_str(), &path]).status();
        if !status.as_ref().is_ok_and(std::process::ExitStatus::success) {
            result = Err(tachyon::Error::Protocol(format!("the {lang} caller failed: {status:?}")));
        }
    }
    // SIGTERM, so the server stops and removes its socket.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&server),
        rustix::process::Signal::TERM,
    );
    let _ = server.wait();
    result
}
