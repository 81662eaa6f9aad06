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
#[cfg(feature = "iceoryx2")]
mod iceoryx;
mod rpc;
mod stats;
mod transport;

use clap::Parser;
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
    std::env::temp_dir()
        .join(format!("tachyon-bench-{}-{name}.sock", std::process::id()))
        .display()
        .to_string()
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
    #[cfg(feature = "iceoryx2")]
    match what {
        "ice-echo" => return iceoryx::echo_child(&args[1], &args[2], args[3].parse().expect("n")),
        "ice-stream" => {
            return iceoryx::stream_child(&args[1], &args[2], args[3].parse().expect("n"))
        }
        _ => {}
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

/// Pins the calling thread (and the threads and children it starts later) to `cpu`.
fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

/// CPU the benchmark process runs on, and the one its children run on.
const PARENT_CPU: usize = 0;
const CHILD_CPU: usize = 1;

/// What one system measured over the rounds.
#[derive(Default)]
struct Row {
    spsc: Vec<u64>,
    stream: Vec<f64>,
    rpc: Vec<u64>,
    rpc_rate: Vec<f64>,
}

impl Row {
    fn spsc_p50(&self) -> Option<f64> {
        (!self.spsc.is_empty()).then(|| Summary::of(self.spsc.clone()).p50 as f64)
    }
    fn rpc_p50(&self) -> Option<f64> {
        (!self.rpc.is_empty()).then(|| Summary::of(self.rpc.clone()).p50 as f64)
    }
    fn stream(&self) -> Option<f64> {
        (!self.stream.is_empty()).then(|| median(self.stream.clone()))
    }
    fn rpc_rate(&self) -> Option<f64> {
        (!self.rpc_rate.is_empty()).then(|| median(self.rpc_rate.clone()))
    }
}

fn ratio(label: &str, a: Option<f64>, b: Option<f64>, target: &str) {
    if let (Some(a), Some(b)) = (a, b) {
        println!("  {label:<44} {:>6.2}  ({target})", a / b);
    }
}

/// The shared-memory plane side by side: the cache-line floor, SPSC round trips and
/// streaming, RPC echo and pipelined RPC; ours (fast and compatible mode) against upstream
/// (feature `upstream`) and iceoryx2 (feature `iceoryx2`). CPU placement is printed.
#[derive(clap::Parser)]
#[command(name = "tachyon-bench")]
struct Args {
    /// Round trips timed per latency measurement.
    #[arg(long, default_value_t = 200_000)]
    samples: usize,
    /// Messages per streaming measurement.
    #[arg(long, default_value_t = 5_000_000)]
    stream: usize,
    /// Rounds; medians are printed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// One measurement alone, e.g. under a profiler (inproc, spsc-ours, stream-ours, ...).
    #[arg(long)]
    only: Option<String>,
}

// One linear report: measure in interleaved rounds, then print; splitting it would only
// scatter the feature gates.
#[allow(clippy::too_many_lines)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        pin(CHILD_CPU);
        run_child(&args[1..]);
        return;
    }
    let Args { samples, stream, rounds, only } = Args::parse();
    pin(PARENT_CPU);
    if let Some(what) = only {
        // One measurement alone, e.g. under a profiler.
        let (rtt, rate) = match what.as_str() {
            "inproc" => {
                inproc(samples);
                return;
            }
            "spsc-ours" => (rtt::<transport::Ours<true>>(samples), 0.0),
            "spsc-ours-compat" => (rtt::<transport::Ours<false>>(samples), 0.0),
            "stream-ours" => {
                println!("{:.2} M msg/s", throughput::<transport::Ours<true>>(samples) / 1e6);
                return;
            }
            #[cfg(feature = "upstream")]
            "stream-upstream" => {
                println!("{:.2} M msg/s", throughput::<transport::Upstream>(samples) / 1e6);
                return;
            }
            #[cfg(feature = "upstream")]
            "spsc-upstream" => (rtt::<transport::Upstream>(samples), 0.0),
            "rpc-ours" => rpc::measure::<rpc::Ours<true>>(samples, samples),
            "rpc-ours-compat" => rpc::measure::<rpc::Ours<false>>(samples, samples),
            #[cfg(feature = "upstream")]
            "rpc-ours-to-upstream" => {
                rpc::measure_against::<rpc::Ours<false>>("upstream", samples, samples)
            }
            #[cfg(feature = "upstream")]
            "rpc-upstream-to-ours" => {
                rpc::measure_against::<rpc::Upstream>("ours-compat", samples, samples)
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
         {PAYLOAD}-byte payloads; streaming {stream} messages x {rounds} rounds; \
         this process on CPU {PARENT_CPU}, its peers on CPU {CHILD_CPU}",
        per_round * rounds
    );
    let (mut floor, mut fast, mut compat, mut disp) =
        (Vec::new(), Row::default(), Row::default(), Row::default());
    #[cfg(feature = "upstream")]
    let mut up = Row::default();
    #[cfg(feature = "iceoryx2")]
    let mut ice = Row::default();
    let pipelined = per_round * 2;
    for _ in 0..rounds {
        floor.extend(floor::rtt(per_round + WARMUP, WARMUP));
        fast.spsc.extend(rtt::<transport::Ours<true>>(per_round));
        compat.spsc.extend(rtt::<transport::Ours<false>>(per_round));
        #[cfg(feature = "upstream")]
        up.spsc.extend(rtt::<transport::Upstream>(per_round));
        #[cfg(feature = "iceoryx2")]
        ice.spsc.extend(iceoryx::rtt(per_round));
        fast.stream.push(throughput::<transport::Ours<true>>(stream));
        compat.stream.push(throughput::<transport::Ours<false>>(stream));
        #[cfg(feature = "upstream")]
        up.stream.push(throughput::<transport::Upstream>(stream));
        #[cfg(feature = "iceoryx2")]
        ice.stream.push(iceoryx::throughput(stream));
        for (row, (r, rate)) in [
            (&mut fast, rpc::measure::<rpc::Ours<true>>(per_round, pipelined)),
            (&mut compat, rpc::measure::<rpc::Ours<false>>(per_round, pipelined)),
            (&mut disp, rpc::measure::<rpc::OursDispatcher>(per_round, pipelined)),
            #[cfg(feature = "upstream")]
            (&mut up, rpc::measure::<rpc::Upstream>(per_round, pipelined)),
        ] {
            row.rpc.extend(r);
            row.rpc_rate.push(rate);
        }
    }
    println!(
        "SPSC round trip (ns)                         min      p50      p90      p99    p99.9"
    );
    let floor = Summary::of(floor);
    floor.print("raw cache-line ping-pong (floor)");
    Summary::of(fast.spsc.clone()).print("ours, fast mode");
    Summary::of(compat.spsc.clone()).print("ours, compat mode (ABI v0x04)");
    #[cfg(feature = "upstream")]
    Summary::of(up.spsc.clone()).print("upstream tachyon-ipc 0.5.1");
    #[cfg(not(feature = "upstream"))]
    println!("upstream tachyon-ipc 0.5.1               (not built: --features upstream, clang-19; `make bench`)");
    #[cfg(feature = "iceoryx2")]
    Summary::of(ice.spsc.clone()).print("iceoryx2 publish-subscribe");
    #[cfg(not(feature = "iceoryx2"))]
    println!(
        "iceoryx2 publish-subscribe               (not built: --features iceoryx2; `make bench`)"
    );
    println!();
    println!("streaming 32-byte messages, median of {rounds} (M msg/s)");
    #[cfg_attr(not(any(feature = "upstream", feature = "iceoryx2")), allow(unused_mut))]
    let mut rows: Vec<(&str, &Row)> =
        vec![("ours, fast mode", &fast), ("ours, compat mode", &compat)];
    #[cfg(feature = "upstream")]
    rows.push(("upstream tachyon-ipc 0.5.1", &up));
    #[cfg(feature = "iceoryx2")]
    rows.push(("iceoryx2 publish-subscribe", &ice));
    for (name, row) in &rows {
        if let Some(v) = row.stream() {
            println!("{name:<44} {:>8.2}", v / 1e6);
        }
    }
    println!();
    println!(
        "RPC echo round trip (ns)                     min      p50      p90      p99    p99.9"
    );
    Summary::of(fast.rpc.clone()).print("ours, fast mode");
    Summary::of(compat.rpc.clone()).print("ours, compat mode");
    Summary::of(disp.rpc.clone()).print("ours, fast mode + Dispatcher");
    #[cfg(feature = "upstream")]
    Summary::of(up.rpc.clone()).print("upstream tachyon-ipc 0.5.1");
    println!();
    println!("pipelined RPC ({} in flight), median of {rounds} (M calls/s)", rpc::PIPELINE);
    #[cfg_attr(not(feature = "upstream"), allow(unused_mut))]
    let mut rows: Vec<(&str, &Row)> = vec![
        ("ours, fast mode", &fast),
        ("ours, compat mode", &compat),
        ("ours, fast mode + Dispatcher", &disp),
    ];
    #[cfg(feature = "upstream")]
    rows.push(("upstream tachyon-ipc 0.5.1", &up));
    for (name, row) in &rows {
        if let Some(v) = row.rpc_rate() {
            println!("{name:<44} {:>8.2}", v / 1e6);
        }
    }
    println!();
    println!("ratios (same run):");
    let floor_p50 = Some(floor.p50 as f64);
    ratio("SPSC p50, fast / floor", fast.spsc_p50(), floor_p50, "target <= 1.15");
    ratio("SPSC p50, compat / floor", compat.spsc_p50(), floor_p50, "for reference");
    #[cfg(feature = "upstream")]
    {
        ratio("SPSC p50, fast / upstream", fast.spsc_p50(), up.spsc_p50(), "lower is better");
        ratio("streaming, fast / upstream", fast.stream(), up.stream(), "target >= 1.5");
        ratio("RPC echo p50, fast / upstream", fast.rpc_p50(), up.rpc_p50(), "target <= 0.8");
        ratio(
            "RPC echo p50, fast+Dispatcher / upstream",
            disp.rpc_p50(),
            up.rpc_p50(),
            "lower is better",
        );
        ratio("pipelined RPC, fast / upstream", fast.rpc_rate(), up.rpc_rate(), "higher is better");
    }
    ratio("streaming, fast / compat", fast.stream(), compat.stream(), "higher is better");
    ratio("RPC echo p50, fast / compat", fast.rpc_p50(), compat.rpc_p50(), "lower is better");
    #[cfg(feature = "iceoryx2")]
    {
        ratio("SPSC p50, fast / iceoryx2", fast.spsc_p50(), ice.spsc_p50(), "lower is better");
        ratio("streaming, fast / iceoryx2", fast.stream(), ice.stream(), "higher is better");
    }
}
