//! `tachyon-tonic-bench`: unary echo over TCP, tonic against Tachyon's async client
//! (`TcpClient::call_async`) and blocking client, in one run.
//!
//! ```text
//! tachyon-tonic-bench [--rounds R] [--seconds S] [--samples N]
//! tachyon-tonic-bench server <tonic|tachyon>   # internal: print "ready PORT"
//! ```
//!
//! Servers run in their own process pinned to CPU 1 (tonic on a one-thread tokio runtime,
//! Tachyon's on its io_uring reactor); the client is pinned to CPU 0 on a tokio
//! current-thread runtime. Latency: 32-byte round trips one at a time. Throughput: 256
//! calls in flight (`join_all`). Rounds alternate; medians are printed.
#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod pb {
    tonic::include_proto!("tachyonbench");
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::Blob;

const PAYLOAD: [u8; 32] = [7; 32];
const DEPTH: usize = 256;

struct Svc;

#[tonic::async_trait]
impl Echo for Svc {
    async fn echo(&self, req: tonic::Request<Blob>) -> Result<tonic::Response<Blob>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

fn serve(kind: &str) {
    if kind == "tachyon" {
        let mut d = tachyon::rpc::Dispatcher::new();
        d.register_raw(1, "echo", <[u8]>::to_vec).expect("register");
        let server = tachyon::net::TcpServer::bind("tcp://127.0.0.1:0", Default::default())
            .expect("bind");
        let h = server.spawn(Arc::new(d)).expect("spawn");
        println!("ready {}", h.local_addr().port());
        loop {
            std::thread::park();
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("ready {}", l.local_addr().expect("addr").port());
        tonic::transport::Server::builder()
            .add_service(EchoServer::new(Svc))
            .serve_with_incoming(tokio_stream_of(l))
            .await
            .expect("serve");
    });
}

fn tokio_stream_of(
    l: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(l, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}

struct Server(Child, u16);

impl Server {
    fn start(kind: &str) -> Self {
        let mut child = Command::new("taskset")
            .args(["-c", "1"])
            .arg(std::env::current_exe().expect("exe"))
            .args(["server", kind])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready");
        let port = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).expect("port");
        Self(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    v.sort_unstable();
    let i = (((v.len() as f64) * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn tonic_row(port: u16, samples: usize, seconds: f64) -> (f64, f64, f64) {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    let mut c = EchoClient::new(ch);
    let mut v = Vec::new();
    for i in 0..samples + samples / 10 {
        let t = Instant::now();
        c.echo(Blob { data: PAYLOAD.to_vec() }).await.expect("echo");
        if i >= samples / 10 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        let calls = (0..DEPTH).map(|_| {
            let mut c = c.clone();
            async move { c.echo(Blob { data: PAYLOAD.to_vec() }).await }
        });
        for r in futures::future::join_all(calls).await {
            r.expect("echo");
        }
        n += DEPTH;
    }
    (p50, p99, n as f64 / start.elapsed().as_secs_f64())
}

async fn tachyon_row(port: u16, samples: usize, seconds: f64) -> (f64, f64, f64) {
    let c = tachyon::net::TcpClient::connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let mut v = Vec::new();
    for i in 0..samples + samples / 10 {
        let t = Instant::now();
        c.call_async(&PAYLOAD, 1, None).await.expect("echo");
        if i >= samples / 10 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        let calls = (0..DEPTH).map(|_| c.call_async(&PAYLOAD, 1, None));
        for r in futures::future::join_all(calls).await {
            r.expect("echo");
        }
        n += DEPTH;
    }
    (p50, p99, n as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("server") {
        serve(&argv[2]);
        return;
    }
    let (mut rounds, mut seconds, mut samples) = (3usize, 2.0f64, 10_000usize);
    let mut it = argv.iter().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => rounds = v.parse().expect("--rounds"),
            "--seconds" => seconds = v.parse().expect("--seconds"),
            "--samples" => samples = v.parse().expect("--samples"),
            other => panic!("unknown flag {other}"),
        }
    }
    pin(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let mut rows = [[Vec::new(), Vec::new(), Vec::new()], [Vec::new(), Vec::new(), Vec::new()]];
    for _ in 0..rounds {
        for (k, kind) in ["tonic", "tachyon"].iter().enumerate() {
            let s = Server::start(kind);
            std::thread::sleep(Duration::from_millis(50));
            let r = rt.block_on(async {
                if k == 0 {
                    tonic_row(s.1, samples, seconds).await
                } else {
                    tachyon_row(s.1, samples, seconds).await
                }
            });
            rows[k][0].push(r.0);
            rows[k][1].push(r.1);
            rows[k][2].push(r.2);
        }
    }
    println!(
        "Unary echo of {} bytes over loopback TCP, async clients on a tokio current-thread \
         runtime pinned to CPU 0; servers in their own process on CPU 1. Throughput: {DEPTH} \
         calls in flight. {rounds} rounds, medians.",
        PAYLOAD.len()
    );
    println!("{:<34} {:>9} {:>9} {:>12}", "", "p50 us", "p99 us", "calls/s");
    let mut med = Vec::new();
    for (label, r) in ["tonic 0.12 (one connection)", "tachyon TcpClient::call_async"].iter().zip(rows.iter_mut()) {
        let m = (median(&mut r[0]), median(&mut r[1]), median(&mut r[2]));
        println!("{label:<34} {:>9.2} {:>9.2} {:>12.0}", m.0, m.1, m.2);
        med.push(m);
    }
    println!(
        "tachyon/tonic: p50 {:.2}x (target <= 0.5x), throughput {:.2}x (target >= 2x)",
        med[1].0 / med[0].0,
        med[1].2 / med[0].2
    );
}
