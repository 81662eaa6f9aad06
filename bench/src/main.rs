//! `tachyon-bench`: measures, in one run and side by side, a raw two-process cache-line
//! ping-pong (the floor), our SPSC bus, and upstream's `tachyon-ipc` crate (feature
//! `upstream`). Prints one table. Each measurement runs the peer as a child process.
//!
//! ```text
//! tachyon-bench [--samples N] [--stream N]     # parent: runs everything, prints the table
//! tachyon-bench child <what> <args...>         # internal: the other process
//! ```
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod floor;
mod rpc;
mod stats;
mod transport;

use std::process::{Child, Command};
use std::time::Instant;

use stats::Summary;
use transport::Transport;

const PAYLOAD: usize = 32;
const WARMUP: usize = 10_000;
const SPIN: u32 = 100_000;

fn child(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .arg("child")
        .args(args)
        .spawn()
        .expect("spawn bench child")
}

fn sock(name: &str) -> String {
    format!("/tmp/tachyon-bench-{}-{name}.sock", std::process::id())
}

/// Round trips of a 32-byte message over two buses (SPSC is one-way): parent -> child on
/// `a`, child -> parent on `b`.
fn rtt<T: Transport>(samples: usize) -> Vec<u64> {
    let (a, b) = (sock(&format!("{}-a", T::NAME)), sock(&format!("{}-b", T::NAME)));
    let total = samples + WARMUP;
    let mut peer = child(&["echo", T::NAME, &a, &b, &total.to_string()]);
    let tx = T::listen(&a, 1 << 16);
    let rx = T::listen(&b, 1 << 16);
    let msg = [7u8; PAYLOAD];
    let mut out = Vec::with_capacity(samples);
    for i in 0..total {
        let t = Instant::now();
        tx.send(&msg);
        rx.recv(SPIN);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= WARMUP {
            out.push(ns);
        }
    }
    assert!(peer.wait().expect("wait child").success());
    out
}

/// Messages per second: the child streams `n` 32-byte messages, we drain in batches.
fn throughput<T: Transport>(n: usize) -> f64 {
    let a = sock(&format!("{}-stream", T::NAME));
    let mut peer = child(&["stream", T::NAME, &a, &n.to_string()]);
    let rx = T::listen(&a, 1 << 20);
    let mut got = rx.drain(SPIN);
    let t = Instant::now();
    while got < n {
        got += rx.drain(SPIN);
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(peer.wait().expect("wait child").success());
    n as f64 / secs
}

fn run_child(args: &[String]) {
    let what = args[0].as_str();
    if what == "rpc-echo" {
        rpc::dispatch_child(&args[1], &args[2], args[3].parse().expect("count"));
        return;
    }
    if what == "floor" {
        floor::child(&args[1], args[2].parse().expect("count"));
        return;
    }
    let name = args[1].as_str();
    let rest: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    transport::dispatch_child(what, name, &rest);
}

/// Software cost alone: both ends in one thread, so no cache line crosses cores.
#[allow(clippy::many_single_char_names, clippy::similar_names)]
fn inproc(n: usize) {
    use std::time::Duration;
    let t = Duration::from_secs(10);
    let (pa, pb) = (sock("inproc-a"), sock("inproc-b"));
    let l = std::thread::spawn({
        let (pa, pb) = (pa.clone(), pb.clone());
        move || {
            (
                tachyon::Bus::listen_timeout(&pa, 1 << 16, t).unwrap(),
                tachyon::Bus::listen_timeout(&pb, 1 << 16, t).unwrap(),
            )
        }
    });
    let connect = |p: &str| loop {
        if let Ok(b) = tachyon::Bus::connect(p) {
            break b;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let (ca, cb) = (connect(&pa), connect(&pb));
    let (la, lb) = l.join().unwrap();
    let msg = [1u8; PAYLOAD];
    let start = Instant::now();
    let spsc_n = if std::env::var_os("TACHYON_BENCH_RPC_ONLY").is_some() { 0 } else { n };
    for _ in 0..spsc_n {
        la.send(&msg, 1).unwrap();
        drop(ca.acquire_rx(SPIN).unwrap());
        cb.send(&msg, 1).unwrap();
        drop(lb.acquire_rx(SPIN).unwrap());
    }
    println!(
        "in-process SPSC ping+pong: {:.1} ns",
        start.elapsed().as_nanos() as f64 / spsc_n.max(1) as f64
    );
    let pr = sock("inproc-rpc");
    let l = std::thread::spawn({
        let pr = pr.clone();
        move || tachyon::rpc::RpcBus::listen_timeout(&pr, 1 << 16, 1 << 16, t).unwrap()
    });
    let caller = loop {
        if let Ok(b) = tachyon::rpc::RpcBus::connect(&pr) {
            break b;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let callee = l.join().unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let cid = caller.call(&msg, 1).unwrap();
        let req = callee.serve().unwrap();
        let (c, m) = (req.correlation_id(), req.msg_type());
        drop(req);
        callee.reply(c, &msg, m).unwrap();
        drop(caller.wait(cid).unwrap());
    }
    println!(
        "in-process RPC call+serve+reply+wait: {:.1} ns",
        start.elapsed().as_nanos() as f64 / n as f64
    );
    #[cfg(feature = "upstream")]
    {
        let pu = sock("inproc-up");
        let l = std::thread::spawn({
            let pu = pu.clone();
            move || tachyon_ipc::RpcBus::listen(&pu, 1 << 16, 1 << 16).unwrap()
        });
        let caller = loop {
            if std::path::Path::new(&pu).exists() {
                std::thread::sleep(Duration::from_millis(5));
                if let Ok(b) = tachyon_ipc::RpcBus::connect(&pu) {
                    break b;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let callee = l.join().unwrap();
        let start = Instant::now();
        for _ in 0..n {
            let cid = caller.call(&msg, 1).unwrap();
            let req = callee.serve(SPIN).unwrap();
            let (c, m) = (req.correlation_id, req.type_id);
            req.commit().unwrap();
            callee.reply(c, &msg, m).unwrap();
            caller.wait(cid, SPIN).unwrap().commit().unwrap();
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64;
        println!("in-process upstream RPC call+serve+reply+wait: {per:.1} ns");
    }
}

/// Median of a few throughput runs.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// One linear report: measure in interleaved rounds, then print; splitting it would only
// scatter the `upstream` feature gates.
#[allow(clippy::too_many_lines)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        run_child(&args[1..]);
        return;
    }
    let mut samples: usize = 200_000;
    let mut stream: usize = 5_000_000;
    let mut rounds: usize = 5;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = || {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--samples" => samples = num(),
            "--stream" => stream = num(),
            "--rounds" => rounds = num(),
            "--only" => only = it.next().cloned(),
            other => panic!("unknown argument {other}"),
        }
    }
    if let Some(what) = only {
        // One measurement alone, e.g. under a profiler.
        let (rtt, rate) = match what.as_str() {
            "inproc" => {
                inproc(samples);
                return;
            }
            "spsc-ours" => (rtt::<transport::Ours>(samples), 0.0),
            #[cfg(feature = "upstream")]
            "spsc-upstream" => (rtt::<transport::Upstream>(samples), 0.0),
            "rpc-ours" => rpc::measure::<rpc::Ours>(samples, samples),
            #[cfg(feature = "upstream")]
            "rpc-ours-to-upstream" => {
                rpc::measure_against::<rpc::Ours>("upstream", samples, samples)
            }
            #[cfg(feature = "upstream")]
            "rpc-upstream-to-ours" => {
                rpc::measure_against::<rpc::Upstream>("ours", samples, samples)
            }
            "rpc-dispatcher" => rpc::measure::<rpc::OursDispatcher>(samples, samples),
            #[cfg(feature = "upstream")]
            "rpc-upstream" => rpc::measure::<rpc::Upstream>(samples, samples),
            other => panic!("--only: unknown measurement {other}"),
        };
        Summary::of(rtt).print(&what);
        println!("pipelined: {:.2} M calls/s", rate / 1e6);
        return;
    }
    let per_round = samples.div_ceil(rounds);
    println!(
        "tachyon-bench: {} round trips each ({rounds} interleaved rounds, {WARMUP} warm-up per round), \
         {PAYLOAD}-byte payloads; streaming {stream} messages x {rounds} rounds",
        per_round * rounds
    );
    let (mut floor, mut ours, mut ours_tp) = (Vec::new(), Vec::new(), Vec::new());
    #[cfg(feature = "upstream")]
    let (mut up, mut up_tp) = (Vec::new(), Vec::new());
    let (mut rpc_ours, mut rpc_ours_rate, mut rpc_disp, mut rpc_disp_rate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    #[cfg(feature = "upstream")]
    let (mut rpc_up, mut rpc_up_rate) = (Vec::new(), Vec::new());
    let pipelined = per_round * 2;
    for _ in 0..rounds {
        let (r, rate) = rpc::measure::<rpc::Ours>(per_round, pipelined);
        rpc_ours.extend(r);
        rpc_ours_rate.push(rate);
        let (r, rate) = rpc::measure::<rpc::OursDispatcher>(per_round, pipelined);
        rpc_disp.extend(r);
        rpc_disp_rate.push(rate);
        #[cfg(feature = "upstream")]
        {
            let (r, rate) = rpc::measure::<rpc::Upstream>(per_round, pipelined);
            rpc_up.extend(r);
            rpc_up_rate.push(rate);
        }
        floor.extend(floor::rtt(per_round + WARMUP, WARMUP));
        ours.extend(rtt::<transport::Ours>(per_round));
        #[cfg(feature = "upstream")]
        up.extend(rtt::<transport::Upstream>(per_round));
        ours_tp.push(throughput::<transport::Ours>(stream));
        #[cfg(feature = "upstream")]
        up_tp.push(throughput::<transport::Upstream>(stream));
    }
    println!("(ns)                                 min      p50      p90      p99    p99.9");
    let floor = Summary::of(floor);
    floor.print("raw cache-line ping-pong (floor)");
    let ours = Summary::of(ours);
    ours.print("tachyon (ours) SPSC round trip");
    #[cfg(feature = "upstream")]
    let upstream = {
        let s = Summary::of(up);
        s.print("upstream tachyon-ipc 0.5.1 round trip");
        Some((s, median(up_tp)))
    };
    #[cfg(not(feature = "upstream"))]
    let upstream: Option<(Summary, f64)> = {
        println!("upstream tachyon-ipc 0.5.1             (not built: needs --features upstream and clang-19; `make bench`)");
        None
    };
    let ours_tp = median(ours_tp);
    println!();
    println!("streaming 32-byte messages, median of {rounds}: ours {:.2} M msg/s", ours_tp / 1e6);
    if let Some((_, up_tp)) = &upstream {
        println!(
            "streaming 32-byte messages, median of {rounds}: upstream {:.2} M msg/s",
            up_tp / 1e6
        );
    }
    println!();
    println!("RPC echo, {PAYLOAD}-byte payload (ns)       min      p50      p90      p99    p99.9");
    let rpc_ours = Summary::of(rpc_ours);
    rpc_ours.print("tachyon (ours) RpcBus");
    Summary::of(rpc_disp).print("tachyon (ours) RpcBus + Dispatcher");
    #[cfg(feature = "upstream")]
    let rpc_up = {
        let s = Summary::of(rpc_up);
        s.print("upstream tachyon-ipc 0.5.1 RpcBus");
        Some((s, median(rpc_up_rate)))
    };
    #[cfg(not(feature = "upstream"))]
    let rpc_up: Option<(Summary, f64)> = None;
    let rpc_ours_rate = median(rpc_ours_rate);
    println!(
        "pipelined calls ({} in flight), median of {rounds}: ours {:.2} M calls/s, ours + Dispatcher {:.2} M calls/s",
        rpc::PIPELINE,
        rpc_ours_rate / 1e6,
        median(rpc_disp_rate) / 1e6
    );
    if let Some((_, r)) = &rpc_up {
        println!(
            "pipelined calls ({} in flight), median of {rounds}: upstream {:.2} M calls/s",
            rpc::PIPELINE,
            r / 1e6
        );
    }
    println!();
    println!("ratios (same run):");
    println!("  ours p50 / floor p50          = {:.2}", ours.p50 as f64 / floor.p50.max(1) as f64);
    if let Some((up, up_tp)) = &upstream {
        println!(
            "  ours p50 / upstream p50       = {:.2}  (target <= 1.00)",
            ours.p50 as f64 / up.p50.max(1) as f64
        );
        println!("  ours rate / upstream rate     = {:.2}  (target >= 1.00)", ours_tp / up_tp);
    }
    if let Some((up, r)) = &rpc_up {
        println!(
            "  RPC ours p50 / upstream p50   = {:.2}  (target <= 1.00)",
            rpc_ours.p50 as f64 / up.p50.max(1) as f64
        );
        println!("  RPC pipelined ours / upstream = {:.2}", rpc_ours_rate / r);
    }
}
