//! `tachyon-rust-rpc-bench`: unary echo over TCP, tonic and tarpc against Tachyon's async
//! client (`TcpClient::call_async`), in one run.
//!
//! ```text
//! tachyon-rust-rpc-bench [--rounds R] [--seconds S] [--samples N]
//! tachyon-rust-rpc-bench server <tonic|tarpc|tachyon>   # internal: print "ready PORT"
//! ```
//!
//! Servers run in their own process pinned to CPU 1 (tonic and tarpc on a one-thread
//! tokio runtime, Tachyon's on its io_uring reactor); the client is pinned to CPU 0 on a
//! tokio current-thread runtime. Latency: 32-byte round trips one at a time. Throughput:
//! 256 calls in flight (`join_all`). Rounds alternate; medians are printed. tarpc uses
//! its bincode transport (its fastest serde format).
#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod pb {
    tonic::include_proto!("tachyonbench");
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::Blob;
use tachyon_bench::{median, pct, pin, RoundArgs, Server};

const PAYLOAD: [u8; 32] = [7; 32];
const DEPTH: usize = 256;

struct Svc;

#[tonic::async_trait]
impl Echo for Svc {
    async fn echo(&self, req: tonic::Request<Blob>) -> Result<tonic::Response<Blob>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }
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
    if kind == "tarpc" {
        rt.block_on(tarpc_serve());
        return;
    }
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

/// tarpc's echo service.
#[tarpc::service]
trait TarpcEcho {
    async fn echo(data: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct TarpcSvc;

impl TarpcEcho for TarpcSvc {
    async fn echo(self, _: tarpc::context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

async fn tarpc_serve() {
    use futures::StreamExt;
    use tarpc::server::{BaseChannel, Channel};
    let listener = tarpc::serde_transport::tcp::listen(
        "127.0.0.1:0",
        tarpc::tokio_serde::formats::Bincode::default,
    )
    .await
    .expect("bind");
    println!("ready {}", listener.local_addr().port());
    listener
        .filter_map(|r| futures::future::ready(r.ok()))
        .map(|t| {
            let _ = t.get_ref().set_nodelay(true); // as tonic's and ours
            BaseChannel::with_defaults(t)
        })
        .for_each(|channel| async move {
            tokio::spawn(channel.execute(TarpcSvc.serve()).for_each(|f| async move {
                tokio::spawn(f);
            }));
        })
        .await;
}

async fn tarpc_row(port: u16, samples: usize, seconds: f64) -> (f64, f64, f64) {
    let transport = tarpc::serde_transport::tcp::connect(
        ("127.0.0.1", port),
        tarpc::tokio_serde::formats::Bincode::default,
    )
    .await
    .expect("connect");
    let _ = transport.get_ref().set_nodelay(true);
    let mut config = tarpc::client::Config::default();
    config.max_in_flight_requests = DEPTH * 2;
    let c = TarpcEchoClient::new(config, transport).spawn();
    let c = &c;
    row(samples, seconds, || async move {
        c.echo(tarpc::context::current(), PAYLOAD.to_vec()).await.expect("echo");
    })
    .await
}

/// One client's row: `call` timed one at a time (a tenth first as warm-up), then
/// `DEPTH` at once for `seconds`. (p50 us, p99 us, calls/s)
async fn row<F, Fut>(samples: usize, seconds: f64, call: F) -> (f64, f64, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut v = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let t = Instant::now();
        call().await;
        if i >= samples / 10 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        futures::future::join_all((0..DEPTH).map(|_| call())).await;
        n += DEPTH;
    }
    (p50, p99, n as f64 / start.elapsed().as_secs_f64())
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

async fn tonic_row(port: u16, samples: usize, seconds: f64) -> (f64, f64, f64) {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    let c = EchoClient::new(ch);
    row(samples, seconds, || {
        let mut c = c.clone();
        async move {
            c.echo(Blob { data: PAYLOAD.to_vec() }).await.expect("echo");
        }
    })
    .await
}

async fn tachyon_row(port: u16, samples: usize, seconds: f64) -> (f64, f64, f64) {
    let c = tachyon::net::TcpClient::connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let c = &c;
    row(samples, seconds, || async move {
        c.call_async(&PAYLOAD, 1, None).await.expect("echo");
    })
    .await
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("server") {
        serve(&argv[2]);
        return;
    }
    let RoundArgs { rounds, seconds, samples } =
        RoundArgs::parse(&argv, "async TCP calls against tonic and tarpc, unary echo");
    pin(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    const KINDS: [&str; 3] = ["tonic", "tarpc", "tachyon"];
    let mut rows: Vec<[Vec<f64>; 3]> = KINDS.iter().map(|_| [Vec::new(), Vec::new(), Vec::new()]).collect();
    for _ in 0..rounds {
        for (k, kind) in KINDS.iter().enumerate() {
            let s = Server::this_exe(1, &[kind]);
            std::thread::sleep(Duration::from_millis(50));
            let port = s.port();
            let r = rt.block_on(async {
                match *kind {
                    "tonic" => tonic_row(port, samples, seconds).await,
                    "tarpc" => tarpc_row(port, samples, seconds).await,
                    _ => tachyon_row(port, samples, seconds).await,
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
    println!("{:<36} {:>9} {:>9} {:>12}", "", "p50 us", "p99 us", "calls/s");
    let labels = [
        "tonic 0.12 (one connection)",
        "tarpc 0.37 (bincode, one connection)",
        "tachyon TcpClient::call_async",
    ];
    let mut med = Vec::new();
    for (label, r) in labels.iter().zip(rows.iter_mut()) {
        let m = (median(&mut r[0]), median(&mut r[1]), median(&mut r[2]));
        println!("{label:<36} {:>9.2} {:>9.2} {:>12.0}", m.0, m.1, m.2);
        med.push(m);
    }
    println!(
        "tachyon/tonic: p50 {:.2}x (target <= 0.5x), throughput {:.2}x (target >= 2x)",
        med[2].0 / med[0].0,
        med[2].2 / med[0].2
    );
    println!(
        "tachyon/tarpc: p50 {:.2}x, throughput {:.2}x",
        med[2].0 / med[1].0,
        med[2].2 / med[1].2
    );
}
