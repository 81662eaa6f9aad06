//! `tachyon-tls-bench`: our TCP transport with TLS 1.3 against the same without, side by
//! side in one run.
//!
//! ```text
//! tachyon-tls-bench [--rounds R] [--seconds S] [--samples N]
//! tachyon-tls-bench server <plain|tls> DIR   # internal: serve echo, print "ready PORT"
//! ```
//!
//! Latency: 32-byte round trips on one connection with our `TcpClient`, client and server
//! pinned to CPU 0 (a wake-up across vCPUs adds 50 to 70 us here). Throughput: one
//! client thread on CPU 0 keeps 64 connections x 16 calls in flight (1,024 pipelined
//! calls, then their replies) against the server on CPU 1. Rounds alternate plain and
//! TLS; medians are printed. The certificates are made fresh by the run (rcgen).
#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{
    ClientTls, ServerTls, TcpClient, TcpClientOptions, TcpServer, TcpServerOptions,
};
use tachyon_bench::{median, pct, pin, RoundArgs, Server};

const PAYLOAD: usize = 32;

fn pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert =
            CertificateParams::new(names).expect("params").signed_by(&key, &ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(vec!["127.0.0.1".into()]);
    let (client, client_key) = leaf(vec!["bench-client".into()]);
    std::fs::create_dir_all(dir).expect("mkdir");
    for (n, t) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("server.key", server_key),
        ("client.pem", client),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(n), t).expect("write a certificate");
    }
}

fn serve(kind: &str, dir: &Path) {
    let mut d = tachyon::rpc::Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).expect("register");
    let mut opts = TcpServerOptions::default();
    if kind == "tls" {
        let ca = dir.join("ca.pem");
        opts = opts.tls(
            ServerTls::from_pem_files(dir.join("server.pem"), dir.join("server.key"), Some(&ca))
                .expect("server tls"),
        );
    }
    let server = TcpServer::bind("tcp://127.0.0.1:0", opts).expect("bind");
    let h = server.spawn(Arc::new(d)).expect("spawn");
    println!("ready {}", h.local_addr().port());
    loop {
        std::thread::park();
    }
}

fn client(kind: &str, port: u16, dir: &Path, connections: usize) -> TcpClient {
    let mut opts = TcpClientOptions::default().connections(connections).max_in_flight(16);
    if kind == "tls" {
        let (c, k) = (dir.join("client.pem"), dir.join("client.key"));
        opts = opts.tls(
            ClientTls::from_pem_files(dir.join("ca.pem"), Some((c.as_path(), k.as_path())))
                .expect("client tls"),
        );
    }
    TcpClient::connect_with(&format!("tcp://127.0.0.1:{port}"), &opts).expect("connect")
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("server") {
        serve(&argv[2], Path::new(&argv[3]));
        return;
    }
    let RoundArgs { rounds, seconds, samples } =
        RoundArgs::parse(&argv, "TLS 1.3 (mutual) against plaintext RPC over TCP, side by side");
    let dir = std::env::temp_dir().join(format!("tachyon-tls-bench-{}", std::process::id()));
    let dir_s = dir.to_str().expect("a UTF-8 temporary directory");
    pki(&dir);
    println!(
        "TLS 1.3 (mutual, rustls + ring, AES-GCM) against plaintext, {PAYLOAD}-byte echo. Latency: \
         one connection, client and server pinned to CPU 0. Throughput: 64 connections x 16 in \
         flight from one client thread on CPU 0, server on CPU 1. {rounds} rounds, medians."
    );
    pin(0);
    let kinds = ["plain", "tls"];
    let mut p50 = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    let mut tput = [Vec::new(), Vec::new()];
    let msg = [7u8; PAYLOAD];
    for _ in 0..rounds {
        for (k, kind) in kinds.iter().enumerate() {
            // Latency.
            let s = Server::this_exe(0, &[kind, dir_s]);
            let c = client(kind, s.port(), &dir, 1);
            let mut v = Vec::with_capacity(samples);
            for i in 0..samples + samples / 10 {
                let t = Instant::now();
                c.invoke(&msg, 1, None).expect("call");
                if i >= samples / 10 {
                    v.push(t.elapsed().as_nanos() as u64);
                }
            }
            p50[k].push(pct(&mut v, 0.5));
            p99[k].push(pct(&mut v, 0.99));
            drop(c);
            drop(s);
            // Throughput.
            let s = Server::this_exe(1, &[kind, dir_s]);
            let c = client(kind, s.port(), &dir, 64);
            let run = |until: Instant| {
                let mut calls = 0u64;
                while Instant::now() < until {
                    let cids: Vec<u64> =
                        (0..64 * 16).map(|_| c.call(&msg, 1).expect("call")).collect();
                    for cid in cids {
                        c.wait(cid).expect("reply");
                    }
                    calls += 64 * 16;
                }
                calls
            };
            run(Instant::now() + Duration::from_millis(300));
            let t = Instant::now();
            let calls = run(t + Duration::from_secs_f64(seconds));
            tput[k].push(calls as f64 / t.elapsed().as_secs_f64());
        }
    }
    println!("{:<12} {:>10} {:>10} {:>14}", "", "p50 us", "p99 us", "calls/s");
    let mut med = [(0.0, 0.0, 0.0); 2];
    for (k, kind) in kinds.iter().enumerate() {
        med[k] = (median(&mut p50[k]), median(&mut p99[k]), median(&mut tput[k]));
        println!("{kind:<12} {:>10.2} {:>10.2} {:>14.0}", med[k].0, med[k].1, med[k].2);
    }
    println!(
        "TLS against plaintext: p50 {:.2}x, pipelined throughput {:.2}x of plaintext's \
         (target: TLS within 1.3x, i.e. throughput at least 0.77x)",
        med[1].0 / med[0].0,
        med[1].2 / med[0].2
    );
    let _ = std::fs::remove_dir_all(&dir);
}
