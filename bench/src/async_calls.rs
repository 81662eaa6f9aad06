//! `tachyon-async-bench`: awaitable calls against blocking ones, over shared memory and
//! TCP, side by side in one run.
//!
//! ```text
//! tachyon-async-bench [--rounds R] [--seconds S] [--samples N]
//! tachyon-async-bench server <shm PATH | tcp>   # internal: serve echo, print "ready [PORT]"
//! ```
//!
//! The server runs in its own process pinned to CPU 1, the client on CPU 0 (shared
//! memory spins, so both on one CPU would measure the scheduler). Latency: 32-byte round
//! trips one at a time: blocking `invoke` against `call_async(..).await` on a tokio
//! current-thread runtime (over TCP, with the `tokio` feature, on tokio's reactor; and
//! the same futures under `futures`' executor, waiting through the pump thread).
//! Throughput: 256 calls in flight (blocking: send all, then wait each; async:
//! `join_all` of 256 futures), repeated for `--seconds`. Rounds alternate; medians are
//! printed.
#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{TcpClient, TcpClientOptions, TcpServer, TcpServerOptions};
use tachyon::rpc::{AsyncRpcBus, Dispatcher, RpcBus, RpcServer, ServerOptions};
use tachyon_bench::{median, pct, pin, RoundArgs, Server};

const PAYLOAD: [u8; 32] = [7; 32];
const DEPTH: usize = 256;

fn echo() -> Arc<Dispatcher> {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).expect("register");
    Arc::new(d)
}

fn serve(kind: &str, path: Option<&String>) {
    if kind == "shm" {
        let path = path.expect("a socket path");
        let server = RpcServer::bind(path, ServerOptions::default()).expect("bind");
        println!("ready");
        server.serve(echo()).expect("serve");
    } else {
        let server =
            TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default()).expect("bind");
        let h = server.spawn(echo()).expect("spawn");
        println!("ready {}", h.local_addr().port());
        loop {
            std::thread::park();
        }
    }
}

/// One round of one row: (p50 us, p99 us, calls/s).
type Row = (f64, f64, f64);

fn timed(samples: usize, mut one: impl FnMut()) -> (f64, f64) {
    let mut v = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let t = Instant::now();
        one();
        if i >= samples / 10 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    (pct(&mut v, 0.5), pct(&mut v, 0.99))
}

fn rate(seconds: f64, mut batch: impl FnMut() -> usize) -> f64 {
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        batch();
    }
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed().as_secs_f64() < seconds {
        n += batch();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn shm_rows(samples: usize, seconds: f64, rt: &tokio::runtime::Runtime) -> [Row; 2] {
    let path =
        std::env::temp_dir().join(format!("tachyon-async-bench-{}.sock", std::process::id()));
    let path = path.to_string_lossy().into_owned();
    let _s = Server::this_exe(1, &["shm", &path]);
    let bus = RpcBus::connect(&path).expect("connect");
    let (p50, p99) = timed(samples, || {
        let cid = bus.call(&PAYLOAD, 1).expect("call");
        assert_eq!(bus.wait(cid).expect("reply").data().len(), PAYLOAD.len());
    });
    let tput = rate(seconds, || {
        let cids: Vec<u64> = (0..DEPTH).map(|_| bus.call(&PAYLOAD, 1).expect("call")).collect();
        for cid in cids {
            drop(bus.wait(cid).expect("reply"));
        }
        DEPTH
    });
    let blocking = (p50, p99, tput);
    let bus = AsyncRpcBus::new(bus);
    let (p50, p99) = timed(samples, || {
        rt.block_on(bus.call_async(&PAYLOAD, 1, None)).expect("reply");
    });
    let tput = rate(seconds, || {
        let calls = (0..DEPTH).map(|_| bus.call_async(&PAYLOAD, 1, None));
        for r in rt.block_on(futures::future::join_all(calls)) {
            r.expect("reply");
        }
        DEPTH
    });
    [blocking, (p50, p99, tput)]
}

fn tcp_rows(samples: usize, seconds: f64, rt: &tokio::runtime::Runtime) -> [Row; 3] {
    let s = Server::this_exe(1, &["tcp"]);
    let addr = format!("tcp://127.0.0.1:{}", s.port());
    let c = TcpClient::connect_with(&addr, &TcpClientOptions::default().connections(4))
        .expect("connect");
    let (p50, p99) = timed(samples, || {
        c.invoke(&PAYLOAD, 1, None).expect("reply");
    });
    let tput = rate(seconds, || {
        let cids: Vec<u64> = (0..DEPTH).map(|_| c.call(&PAYLOAD, 1).expect("call")).collect();
        for cid in cids {
            c.wait(cid).expect("reply");
        }
        DEPTH
    });
    let blocking = (p50, p99, tput);
    let (p50, p99) = timed(samples, || {
        rt.block_on(c.call_async(&PAYLOAD, 1, None)).expect("reply");
    });
    let tput = rate(seconds, || {
        let calls = (0..DEPTH).map(|_| c.call_async(&PAYLOAD, 1, None));
        for r in rt.block_on(futures::future::join_all(calls)) {
            r.expect("reply");
        }
        DEPTH
    });
    let on_tokio = (p50, p99, tput);
    // The same futures outside tokio (futures' executor): they wait through the pump.
    let c = TcpClient::connect_with(&addr, &TcpClientOptions::default().connections(4))
        .expect("connect");
    let (p50, p99) = timed(samples, || {
        futures::executor::block_on(c.call_async(&PAYLOAD, 1, None)).expect("reply");
    });
    let tput = rate(seconds, || {
        let calls = (0..DEPTH).map(|_| c.call_async(&PAYLOAD, 1, None));
        for r in futures::executor::block_on(futures::future::join_all(calls)) {
            r.expect("reply");
        }
        DEPTH
    });
    [blocking, on_tokio, (p50, p99, tput)]
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("server") {
        serve(&argv[2], argv.get(3));
        return;
    }
    let RoundArgs { rounds, seconds, samples } = RoundArgs::parse(
        &argv,
        "awaitable calls against blocking ones, over shared memory and TCP (CPU placement printed)",
    );
    pin(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let labels = [
        "shared memory, blocking (RpcBus)",
        "shared memory, async (AsyncRpcBus)",
        "TCP, blocking (TcpClient)",
        "TCP, async on tokio's reactor",
        "TCP, async via the pump (futures executor)",
    ];
    let mut rows: Vec<[Vec<f64>; 3]> =
        (0..labels.len()).map(|_| [Vec::new(), Vec::new(), Vec::new()]).collect();
    for _ in 0..rounds {
        let shm = shm_rows(samples, seconds, &rt);
        let tcp = tcp_rows(samples, seconds, &rt);
        for (i, r) in shm.iter().chain(tcp.iter()).enumerate() {
            rows[i][0].push(r.0);
            rows[i][1].push(r.1);
            rows[i][2].push(r.2);
        }
    }
    println!(
        "Async against blocking calls, {}-byte echo. Server process on CPU 1, client on CPU 0 \
         (tokio current-thread runtime for the async rows). Throughput: {DEPTH} calls in \
         flight. {rounds} rounds, medians.",
        PAYLOAD.len()
    );
    println!("{:<44} {:>9} {:>9} {:>12}", "", "p50 us", "p99 us", "calls/s");
    let mut med = Vec::new();
    for (label, r) in labels.iter().zip(rows.iter_mut()) {
        let m = (median(&mut r[0]), median(&mut r[1]), median(&mut r[2]));
        println!("{label:<44} {:>9.2} {:>9.2} {:>12.0}", m.0, m.1, m.2);
        med.push(m);
    }
    println!(
        "async/blocking p50: shared memory {:.2}x (target: within 2x), TCP on tokio {:.2}x, \
         TCP via the pump {:.2}x",
        med[1].0 / med[0].0,
        med[3].0 / med[2].0,
        med[4].0 / med[2].0
    );
}
