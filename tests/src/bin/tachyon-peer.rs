//! `tachyon-peer`: the other process in cross-process and cross-language tests.
//!
//! ```text
//! tachyon-peer produce  --path P (--listen CAP | --connect) [--count N] [--seed S] [--max-size B] [--batch K]
//! tachyon-peer consume  --path P (--listen CAP | --connect) [--count N] [--seed S] [--max-size B] [--timeout-ms T]
//! tachyon-peer connect-only --path P
//! tachyon-peer rpc-serve    --path P [--max-clients N] [--per-process N]   # tests' service
//!                           [--socket-mode OCTAL] [--allow-uid UID]...
//!                           (prints `ready`, then `server-error: ...` per reported error)
//! tachyon-peer rpc-call ... [--trust-uid UID]...   # trust a listener of another user
//! tachyon-peer tcp-serve --addr tcp://H:P [--backend auto|io_uring|epoll] [--allow-remote]
//!                        [--max-connections N] [--workers N]   # the tests' service over TCP
//! tachyon-peer tcp-call  --addr tcp://H:P [--count N] [--pipeline K] [--dead-peer-ms D]
//! tachyon-peer tcp-sleep --addr tcp://H:P --count MS [--dead-peer-ms D]   # one slow call
//! tachyon-peer rpc-reverse  --path P [--count N]   # one client: N requests, answered in reverse
//! tachyon-peer rpc-call     --path P [--count N]   # echo calls, then an unknown msg_type
//! tachyon-peer rpc-add      --path P [--count N]   # typed calls of `add` (msg_type 2)
//! tachyon-peer rpc-bench    --path P [--count N]   # N timed 32-byte echo calls: `rtt p50=.. p99=..`
//! ```
//! Common flags: `--compat` keeps the bus on upstream's ABI v0x04 (no fast mode). Every
//! role that opens a bus prints `ring-mode fast|compat` on stderr.
//! Streams use the deterministic payloads of `tachyon_tests` (CRC-32 in `type_id`).
//! Success prints `ok <n> messages`; failure prints `error: <Kind>: <message>` on stderr
//! and exits 1.

use std::time::{Duration, Instant};

use std::io::Write as _;
use tachyon::{Bus, Error, Wait};
use tachyon_tests::{checksum, fill_payload, payload_size, verify};

struct Args {
    role: String,
    path: String,
    listen: Option<usize>,
    count: u64,
    seed: u64,
    max_size: usize,
    timeout: Duration,
    batch: u64,
    max_clients: usize,
    per_process: Option<usize>,
    socket_mode: Option<u32>,
    allow_uid: Vec<u32>,
    trust_uid: Vec<u32>,
    method: String,
    client: String,
    data: String,
    addr: String,
    backend: String,
    allow_remote: bool,
    max_connections: usize,
    pipeline: u64,
    dead_peer_ms: u64,
    workers: usize,
    compat: bool,
    /// A PKI from `gen-certs`: serve mutual TLS, or call with the identity below.
    tls_dir: Option<String>,
    /// Which client certificate to present: `client`, `rogue` or `none`.
    tls_identity: String,
    /// tcp-call: also call the typed `add` (msg_type 2).
    typed: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let role = it.next().ok_or("missing role")?;
    let mut a = Args {
        role,
        path: String::new(),
        listen: None,
        count: 1000,
        seed: 1,
        max_size: 4096,
        timeout: Duration::from_secs(10),
        batch: 1,
        max_clients: 64,
        per_process: None,
        socket_mode: None,
        allow_uid: Vec::new(),
        trust_uid: Vec::new(),
        method: "echo".into(),
        client: "rust".into(),
        data: String::new(),
        addr: String::new(),
        backend: "auto".into(),
        allow_remote: false,
        max_connections: 1024,
        pipeline: 1,
        dead_peer_ms: 10_000,
        workers: 0,
        compat: false,
        tls_dir: None,
        tls_identity: "client".into(),
        typed: false,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--path" => a.path = val()?,
            "--listen" => a.listen = Some(num(val()?)? as usize),
            "--connect" => a.listen = None,
            "--count" => a.count = num(val()?)?,
            "--seed" => a.seed = num(val()?)?,
            "--max-size" => a.max_size = num(val()?)? as usize,
            "--timeout-ms" => a.timeout = Duration::from_millis(num(val()?)?),
            "--batch" => a.batch = num(val()?)?.max(1),
            "--max-clients" => a.max_clients = num(val()?)? as usize,
            "--per-process" => a.per_process = Some(num(val()?)? as usize),
            "--socket-mode" => {
                a.socket_mode = Some(u32::from_str_radix(&val()?, 8).map_err(|e| e.to_string())?);
            }
            "--allow-uid" => a.allow_uid.push(num(val()?)? as u32),
            "--trust-uid" => a.trust_uid.push(num(val()?)? as u32),
            "--method" => a.method = val()?,
            "--client" => a.client = val()?,
            "--data" => a.data = val()?,
            "--addr" => a.addr = val()?,
            "--backend" => a.backend = val()?,
            "--allow-remote" => a.allow_remote = true,
            "--max-connections" => a.max_connections = num(val()?)? as usize,
            "--pipeline" => a.pipeline = num(val()?)?.max(1),
            "--dead-peer-ms" => a.dead_peer_ms = num(val()?)?,
            "--workers" => a.workers = num(val()?)? as usize,
            "--compat" => a.compat = true,
            "--tls-dir" => a.tls_dir = Some(val()?),
            "--tls-identity" => a.tls_identity = val()?,
            "--typed" => a.typed = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.path.is_empty() && a.addr.is_empty() {
        return Err("--path (or --addr) is required".into());
    }
    Ok(a)
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Full { .. } => "Full",
        Error::MessageTooLarge { .. } => "MessageTooLarge",
        Error::InvalidSize { .. } => "InvalidSize",
        Error::AbiMismatch(_) => "AbiMismatch",
        Error::PeerDead(_) => "PeerDead",
        Error::Corrupted(_) => "Corrupted",
        Error::Timeout(_) => "Timeout",
        Error::Interrupted => "Interrupted",
        Error::InvalidCapacity(_) => "InvalidCapacity",
        Error::InvalidPath { .. } => "InvalidPath",
        Error::Busy(_) => "Busy",
        Error::InvalidNumaNode(_) => "InvalidNumaNode",
        Error::Io { .. } => "Io",
        Error::Connect { .. } => "Connect",
        Error::PeerClosed => "PeerClosed",
        Error::Closed => "Closed",
        Error::PermissionDenied(_) => "PermissionDenied",
        Error::AddrInUse { .. } => "AddrInUse",
        Error::CapacityLimit { .. } => "CapacityLimit",
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::InvalidAddress { .. } => "InvalidAddress",
        Error::Unsupported(_) => "Unsupported",
        Error::Refused(_) => "Refused",
        Error::Protocol(_) => "Protocol",
        Error::Rpc(_) => "Rpc",
        Error::Codec(_) => "Codec",
        Error::Tls(_) => "Tls",
        _ => "Other",
    }
}

/// Connects, retrying while nobody listens yet (retrying is the caller's job).
fn connect(path: &str, timeout: Duration, fast: bool) -> tachyon::Result<Bus> {
    let deadline = Instant::now() + timeout;
    let opts = tachyon::ConnectOptions::new().fast_mode(fast);
    loop {
        match Bus::connect_with(path, &opts, Wait::new()) {
            Err(Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn mode_name(m: tachyon::RingMode) -> &'static str {
    match m {
        tachyon::RingMode::Fast => "fast",
        tachyon::RingMode::Compat => "compat",
    }
}

fn open(a: &Args) -> tachyon::Result<Bus> {
    let bus = match a.listen {
        Some(cap) => {
            let opts = tachyon::ListenOptions::new().fast_mode(!a.compat);
            Bus::listen_opts(&a.path, cap, &opts, Wait::new().timeout(a.timeout))
        }
        None => connect(&a.path, a.timeout, !a.compat),
    }?;
    eprintln!("ring-mode {}", mode_name(bus.ring_mode()));
    Ok(bus)
}

fn produce(a: &Args) -> tachyon::Result<u64> {
    let bus = open(a)?;
    for i in 0..a.count {
        let n = payload_size(a.seed, i, a.max_size);
        let mut tx = bus.acquire_tx_with(n, Wait::new().timeout(a.timeout))?;
        let buf = &mut tx.bytes_mut()[..n];
        fill_payload(i, buf);
        let sum = checksum(buf);
        if (i + 1) % a.batch == 0 {
            tx.commit(n, sum)?;
        } else {
            tx.commit_unflushed(n, sum)?;
        }
    }
    bus.flush();
    // Stay until the consumer has drained the ring, or is gone.
    let deadline = Instant::now() + a.timeout;
    while Instant::now() < deadline && bus.check_peer().is_ok() && bus.has_peer_link() {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(a.count)
}

fn consume(a: &Args) -> Result<u64, String> {
    let bus = open(a).map_err(|e| format!("{}: {e}", kind(&e)))?;
    let mut scratch = Vec::new();
    let mut i = 0;
    while i < a.count {
        let batch = bus
            .drain_batch_with(256, Wait::new().timeout(a.timeout))
            .map_err(|e| format!("{}: {e} (after {i} messages)", kind(&e)))?;
        for m in &batch {
            verify(a.seed, i, a.max_size, m.data(), m.type_id(), &mut scratch)
                .map_err(|e| format!("Verify: {e}"))?;
            i += 1;
        }
    }
    Ok(i)
}

fn rpc_serve(a: &Args) -> tachyon::Result<u64> {
    use tachyon::rpc::{RpcServer, ServerOptions};
    // Errors the server reports (refused users, stalled handshakes) go to stdout, one
    // line each, for the tests to read.
    let mut opts = ServerOptions::default().max_clients(a.max_clients).on_error(|e| {
        println!("server-error: {e}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    });
    if let Some(n) = a.per_process {
        opts = opts.max_clients_per_process(n);
    }
    let mut listen = tachyon::ListenOptions::new().fast_mode(!a.compat);
    if let Some(mode) = a.socket_mode {
        listen = listen.socket_mode(mode);
    }
    for uid in &a.allow_uid {
        listen = listen.allow_uid(*uid);
    }
    opts = opts.listen(listen);
    let server = RpcServer::bind(&a.path, opts)?;
    println!("ready");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    server.serve(std::sync::Arc::new(tachyon_tests::service::dispatcher()))?;
    Ok(0)
}

/// Takes `count` requests, then answers them newest first (echoing each payload).
fn rpc_reverse(a: &Args) -> tachyon::Result<u64> {
    let bus = tachyon::rpc::RpcBus::listen_timeout(&a.path, 1 << 16, 1 << 16, a.timeout)?;
    let mut held = Vec::new();
    for _ in 0..a.count {
        let req = bus.serve_timeout(a.timeout)?;
        held.push((req.correlation_id(), req.msg_type(), req.data().to_vec()));
    }
    for (cid, mt, data) in held.iter().rev() {
        bus.reply_timeout(*cid, data, *mt, a.timeout)?;
    }
    // Stay until the caller has read everything and left.
    while bus.check_peer().is_ok() {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(a.count)
}

/// Connects an RPC caller, retrying while nobody listens yet.
fn connect_rpc(a: &Args) -> tachyon::Result<tachyon::rpc::RpcBus> {
    let deadline = Instant::now() + a.timeout;
    let mut opts = tachyon::ConnectOptions::new().fast_mode(!a.compat);
    for uid in &a.trust_uid {
        opts = opts.allow_uid(*uid);
    }
    loop {
        match tachyon::rpc::RpcBus::connect_with(&a.path, &opts, Wait::new()) {
            Err(Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(bus) => {
                eprintln!("ring-mode {}", mode_name(bus.ring_mode()));
                return Ok(bus);
            }
            other => return other,
        }
    }
}

/// Echo calls against any RPC callee, then a call to an unknown msg_type.
fn rpc_call(a: &Args) -> tachyon::Result<u64> {
    let bus = connect_rpc(a)?;
    for i in 0..a.count {
        let n = payload_size(a.seed, i, a.max_size).max(1);
        let mut buf = vec![0u8; n];
        fill_payload(i, &mut buf);
        let got = bus.invoke(&buf, 1, Some(a.timeout))?;
        if got != buf {
            return Err(Error::Protocol(format!("echo {i} came back different")));
        }
    }
    match bus.invoke(b"anyone?", 999, Some(a.timeout)) {
        Err(Error::Rpc(e)) => println!("rpc-error msg_type={} code={}", e.msg_type, e.code),
        Ok(_) => return Err(Error::Protocol("unknown msg_type answered normally".into())),
        Err(e) => return Err(e),
    }
    Ok(a.count)
}

/// `--count` timed 32-byte echo calls (after 2000 untimed): the Rust-to-Rust row of
/// the bindings' benchmarks, measured the same way they measure theirs.
fn rpc_bench(a: &Args) -> tachyon::Result<u64> {
    let bus = connect_rpc(a)?;
    let msg = [3u8; 32];
    for _ in 0..2000 {
        bus.invoke(&msg, 1, Some(a.timeout))?;
    }
    let mut ns: Vec<u64> = Vec::with_capacity(a.count as usize);
    for _ in 0..a.count {
        let t = Instant::now();
        bus.invoke(&msg, 1, Some(a.timeout))?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    if ns.is_empty() {
        return Ok(0);
    }
    // Percentile by integer rank: `per_mille` thousandths of the sorted samples.
    let at = |per_mille: usize| ns[(ns.len() * per_mille / 1000).min(ns.len() - 1)];
    println!("rtt p50={} p99={}", at(500), at(990));
    Ok(a.count)
}

/// Typed calls of the service's `add` (MessagePack `{a, b}` -> `{sum}`) against any callee.
fn rpc_add(a: &Args) -> tachyon::Result<u64> {
    use tachyon_tests::service::{add, AddReq};
    let bus = connect_rpc(a)?;
    for i in 0..i64::try_from(a.count).unwrap_or(i64::MAX) {
        let (x, y) = (i, -3 * i);
        let got = add::call_timeout(&bus, &AddReq { a: x, b: y }, a.timeout)?;
        if got.sum != x + y {
            return Err(Error::Protocol(format!("add({x}, {y}) returned {}", got.sum)));
        }
    }
    Ok(a.count)
}

/// Calls the Tiga method named `--method` with the data `--data` as client `--client`
/// (a Rust client of a Node `startTigaServer`), and prints the answer.
fn tiga_call(a: &Args) -> tachyon::Result<u64> {
    use tachyon::rpc::tiga;
    let bus = connect_rpc(a)?;
    for i in 0..a.count {
        let data = format!("{}#{i}", a.data);
        let (msg_type, payload) = tiga::encode_call(&a.method, &a.client, data.as_bytes())?;
        match bus.invoke(&payload, msg_type, Some(a.timeout)) {
            Ok(reply) => println!("reply {}", String::from_utf8_lossy(&reply)),
            Err(Error::Rpc(e)) => println!("rpc-error code={} message={}", e.code, e.message),
            Err(e) => return Err(e),
        }
    }
    Ok(a.count)
}

fn backend(name: &str) -> Result<tachyon::net::Backend, String> {
    use tachyon::net::Backend;
    match name {
        "auto" => Ok(Backend::Auto),
        "io_uring" => Ok(Backend::IoUring),
        "epoll" => Ok(Backend::Epoll),
        other => Err(format!("unknown backend {other}")),
    }
}

/// Serves the tests' service over TCP until killed; prints `ready <address> <backend>`.
fn tcp_serve(a: &Args) -> Result<u64, String> {
    use tachyon::net::{TcpServer, TcpServerOptions};
    let opts = TcpServerOptions::default()
        .backend(backend(&a.backend)?)
        .allow_remote(a.allow_remote)
        .max_connections(a.max_connections)
        .workers(a.workers)
        .on_error(|e| {
            // Not println!: a test that stopped reading must not panic the reactor.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "server-error: {e}");
            let _ = out.flush();
        });
    let opts = match &a.tls_dir {
        Some(dir) => {
            let dir = std::path::Path::new(dir);
            let tls = tachyon::net::ServerTls::from_pem_files(
                dir.join("server.pem"),
                dir.join("server.key"),
                Some(&dir.join("ca.pem")),
            )
            .map_err(|e| format!("{}: {e}", kind(&e)))?;
            opts.tls(tls)
        }
        None => opts,
    };
    let server = TcpServer::bind(&a.addr, opts).map_err(|e| format!("{}: {e}", kind(&e)))?;
    let handle = server
        .spawn(std::sync::Arc::new(tachyon_tests::service::dispatcher()))
        .map_err(|e| format!("{}: {e}", kind(&e)))?;
    println!("ready {} {}", handle.address(), handle.backend().name());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    loop {
        std::thread::park();
    }
}

fn tcp_connect(a: &Args) -> tachyon::Result<tachyon::net::TcpClient> {
    use tachyon::net::{TcpClient, TcpClientOptions};
    let opts = TcpClientOptions::default()
        .connect_timeout(a.timeout)
        .dead_peer_timeout(Duration::from_millis(a.dead_peer_ms));
    let opts = match &a.tls_dir {
        Some(dir) => {
            let dir = std::path::Path::new(dir);
            let (cert, key) = match a.tls_identity.as_str() {
                "none" => (None, None),
                who => (Some(dir.join(format!("{who}.pem"))), Some(dir.join(format!("{who}.key")))),
            };
            let identity = cert.as_deref().zip(key.as_deref());
            opts.tls(tachyon::net::ClientTls::from_pem_files(dir.join("ca.pem"), identity)?)
        }
        None => opts,
    };
    let deadline = Instant::now() + a.timeout;
    loop {
        match TcpClient::connect_with(&a.addr, &opts) {
            Err(Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// One call of the `sleep_ms` handler (`--count` milliseconds) over TCP; prints
/// `calling` once the connection is up.
fn tcp_sleep(a: &Args) -> tachyon::Result<u64> {
    let client = tcp_connect(a)?;
    println!("calling");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    tachyon_tests::service::sleep_ms::call_timeout(&client, &a.count, a.timeout)
}

/// `--count` checksummed echo calls over TCP, `--pipeline` in flight at a time, then a
/// call to an unknown msg_type.
fn tcp_call(a: &Args) -> tachyon::Result<u64> {
    let client = tcp_connect(a)?;
    let mut i = 0;
    let mut buf = Vec::new();
    while i < a.count {
        let batch: Vec<(u64, u64)> = (i..(i + a.pipeline).min(a.count))
            .map(|k| {
                let n = payload_size(a.seed, k, a.max_size);
                buf.resize(n, 0);
                fill_payload(k, &mut buf);
                client.call_timeout(&buf, 1, a.timeout).map(|cid| (k, cid))
            })
            .collect::<tachyon::Result<_>>()?;
        for (k, cid) in batch {
            let got = client.wait_timeout(cid, a.timeout)?;
            let n = payload_size(a.seed, k, a.max_size);
            buf.resize(n, 0);
            fill_payload(k, &mut buf);
            if got != buf {
                return Err(Error::Protocol(format!("echo {k} came back different")));
            }
        }
        i = (i + a.pipeline).min(a.count);
    }
    match client.invoke(b"anyone?", 999, Some(a.timeout)) {
        Err(Error::Rpc(e)) => println!("rpc-error msg_type={} code={}", e.msg_type, e.code),
        Ok(_) => return Err(Error::Protocol("unknown msg_type answered normally".into())),
        Err(e) => return Err(e),
    }
    if a.typed {
        let sum = tachyon_tests::service::add::call_timeout(
            &client,
            &tachyon_tests::service::AddReq { a: 40, b: 2 },
            a.timeout,
        )?;
        if sum.sum != 42 {
            return Err(Error::Protocol(format!("add gave {}", sum.sum)));
        }
        println!("add=42");
    }
    if a.tls_dir.is_some() {
        let who = tachyon_tests::service::caller::call_timeout(&client, &(), a.timeout)?;
        println!("caller={who}");
    }
    Ok(a.count)
}

/// Writes a test PKI into `--path`; `--addr` lists extra server names, comma-separated.
fn gen_certs(a: &Args) -> Result<u64, String> {
    let extra: Vec<String> =
        a.addr.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    tachyon_tests::pki::write(std::path::Path::new(&a.path), &extra)?;
    Ok(0)
}

/// Serves the schema-generated `Conformance` service (a mirror) to many clients.
fn schema_serve(a: &Args) -> tachyon::Result<u64> {
    use tachyon::rpc::{RpcServer, ServerOptions};
    use tachyon_tests::schema::{conformance, Mirror};
    let server = RpcServer::bind(&a.path, ServerOptions::default())?;
    println!("ready");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    server.serve(std::sync::Arc::new(conformance::conformance::dispatcher(Mirror::default())))?;
    Ok(0)
}

/// Calls a `Conformance` server (any language) through the generated Rust client:
/// `verify`, then `count` random values through `mirror` (each must come back equal as
/// a value), then `check` answering with the schema's `rejected` error code.
fn schema_call(a: &Args) -> tachyon::Result<u64> {
    use tachyon_tests::schema::{ConformanceClient, Rng};
    let bus = connect_rpc(a)?;
    let client = ConformanceClient::new(&bus).with_timeout(a.timeout);
    client.verify()?;
    let mut rng = Rng(a.seed);
    for i in 0..a.count {
        let v = rng.everything(2);
        let back = client.mirror(&v)?;
        if back != v {
            return Err(Error::Protocol(format!(
                "value {i} came back different:\nsent {v:?}\ngot  {back:?}"
            )));
        }
    }
    let mut v = rng.everything(0);
    v.text = "reject".into();
    match client.check(&v) {
        Err(Error::Rpc(e)) if e.code == 100 => {
            println!("rejected code={} message={}", e.code, e.message);
        }
        other => return Err(Error::Protocol(format!("check(reject) answered {other:?}"))),
    }
    v.text = "fine".into();
    if !client.check(&v)? {
        return Err(Error::Protocol("check(fine) answered false".into()));
    }
    // Oneway sends take no reply; the server sees them in order, before the next call.
    let before = client.recorded(b"")?;
    for _ in 0..50 {
        client.record(&v.leaf)?;
    }
    let after = client.recorded(b"")?;
    if after != before + 50 {
        return Err(Error::Protocol(format!(
            "50 oneway records: the server counted {}",
            after - before
        )));
    }
    println!("oneway recorded={}", after - before);
    Ok(a.count)
}

/// Serves the schema-generated `Feed` service (server streaming) to many clients.
fn feed_serve(a: &Args) -> tachyon::Result<u64> {
    use tachyon::rpc::{RpcServer, ServerOptions};
    use tachyon_tests::schema::{feed_schema::feed, FeedServer};
    let server = RpcServer::bind(&a.path, ServerOptions::default())?;
    println!("ready");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    server.serve(std::sync::Arc::new(feed::feed::dispatcher(FeedServer::default())))?;
    Ok(0)
}

/// Streams from a `Feed` server (any language) through the generated Rust client:
/// `--count` ticks in order, then a cancel midway (see `check_feed`).
fn feed_call(a: &Args) -> tachyon::Result<u64> {
    use tachyon_tests::schema::{check_feed, FeedClient};
    let bus = connect_rpc(a)?;
    let client = FeedClient::new(&bus).with_timeout(a.timeout);
    let count = u32::try_from(a.count).map_err(|_| Error::InvalidArgument("--count".into()))?;
    let stopped = check_feed(&client, count, || bus.in_flight())?;
    println!("streamed {count} ticks; cancelled after the server sent {stopped}");
    Ok(a.count)
}

fn open_channel(a: &Args) -> tachyon::Result<tachyon::channel::Channel> {
    use tachyon::channel::{Channel, ChannelOptions};
    let mut opts = ChannelOptions::default();
    if let Some(cap) = a.listen {
        opts = opts.capacity(cap as u64);
    }
    Channel::open_path(&a.path, &opts)
}

/// Appends `--count` checksummed entries (see `tachyon_tests::channel_entry`) as writer
/// `--seed`, payloads up to `--max-size` bytes.
fn channel_write(a: &Args) -> tachyon::Result<u64> {
    let ch = open_channel(a)?;
    let mut buf = Vec::new();
    for seq in 0..a.count {
        tachyon_tests::channel_entry(a.seed, seq, a.max_size, &mut buf);
        ch.append("application/x-tachyon-test", &buf)?;
    }
    Ok(a.count)
}

/// Reads until `--count` ids have been accounted for (read, lost or abandoned), checking
/// every entry and that ids are accounted for exactly once; prints the totals.
fn channel_read(a: &Args) -> tachyon::Result<u64> {
    let ch = open_channel(a)?;
    println!("ready");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let (mut last_id, mut read, mut overrun, mut abandoned) = (0u64, 0u64, 0u64, 0u64);
    let mut next_seq = std::collections::HashMap::new();
    while last_id < a.count {
        if !ch.wait_for(last_id, Some(a.timeout))? {
            return Err(Error::Protocol(format!(
                "no entry after {last_id} within {:?}",
                a.timeout
            )));
        }
        let b = ch.read(last_id, 4096)?;
        let got = b.entries.len() as u64 + b.lost + b.abandoned;
        if b.last_id - last_id != got {
            return Err(Error::Protocol(format!(
                "ids {}..={} came as {} entries, {} lost, {} abandoned",
                last_id + 1,
                b.last_id,
                b.entries.len(),
                b.lost,
                b.abandoned
            )));
        }
        for e in &b.entries {
            let (writer, seq) = tachyon_tests::check_channel_entry(&e.data, a.max_size)
                .map_err(|m| Error::Protocol(format!("entry {}: {m}", e.id)))?;
            let want: &mut u64 = next_seq.entry(writer).or_default();
            if seq < *want {
                return Err(Error::Protocol(format!(
                    "entry {}: writer {writer} seq {seq} after {}",
                    e.id, *want
                )));
            }
            *want = seq + 1;
        }
        read += b.entries.len() as u64;
        overrun += b.lost;
        abandoned += b.abandoned;
        last_id = b.last_id;
    }
    println!("read {read} lost {overrun} abandoned {abandoned}");
    Ok(read)
}

/// Reserves an entry and never publishes it (the test kills this process), after `--count`
/// normal entries.
fn channel_hang(a: &Args) -> tachyon::Result<u64> {
    let ch = open_channel(a)?;
    for i in 0..a.count {
        ch.append("text/plain", format!("before {i}").as_bytes())?;
    }
    let id = if a.method == "lock" {
        tachyon::channel::testing::die_holding_lock(&ch)?;
        0
    } else {
        tachyon::channel::testing::reserve_and_stop(&ch, 100)?
    };
    println!("stuck {id}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    loop {
        std::thread::park();
    }
}

/// Appends `--count` entries carrying the monotonic clock in ns, `--batch` ms apart: a
/// reader measures append-to-wake-up latency.
fn channel_ping(a: &Args) -> tachyon::Result<u64> {
    let ch = open_channel(a)?;
    for _ in 0..a.count {
        std::thread::sleep(Duration::from_millis(a.batch));
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let ns = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec).unwrap_or(0);
        ch.append("", &ns.to_le_bytes())?;
    }
    Ok(a.count)
}

/// Shared buffers: `--path` names the buffer as node-ipcbuffer does (`*name`, a key, a
/// path), `--count` its size. `--method write` fills bytes 64.. with `fill_payload(seed)`
/// content, then sets word 0 to 1 and notifies; `--method wait` attaches, sleeps until
/// word 0 is not 0, and checks the content.
fn buffer(a: &Args) -> tachyon::Result<u64> {
    use std::sync::atomic::Ordering;
    use tachyon::{BufferKind, SharedBuffer, SharedBufferOptions};
    let kind = BufferKind::parse(&a.path);
    let size = usize::try_from(a.count).unwrap_or(usize::MAX);
    let mut want = vec![0u8; size.saturating_sub(64)];
    tachyon_tests::fill_payload(a.seed, &mut want);
    match a.method.as_str() {
        "write" => {
            let mut buf = SharedBuffer::open(&kind, size, &SharedBufferOptions::default())?;
            buf[64..].copy_from_slice(&want);
            buf.atomic_u32(0)?.store(1, Ordering::Release);
            buf.notify(0, u32::MAX)?;
            Ok(a.count)
        }
        "wait" => {
            let buf =
                SharedBuffer::open(&kind, size, &SharedBufferOptions::default().create(false))?;
            println!("attached");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            if !buf.wait(0, 0, Some(a.timeout))? {
                return Err(Error::Timeout(a.timeout));
            }
            if buf[64..] != want[..] {
                return Err(Error::Protocol("the shared bytes differ".into()));
            }
            Ok(a.count)
        }
        other => Err(Error::InvalidArgument(format!("--method {other}: write or wait"))),
    }
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("usage error: {e}");
            std::process::exit(2);
        }
    };
    let result = match a.role.as_str() {
        "produce" => produce(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "consume" => consume(&a),
        "rpc-serve" => rpc_serve(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "rpc-reverse" => rpc_reverse(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "rpc-call" => rpc_call(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "rpc-add" => rpc_add(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "rpc-bench" => rpc_bench(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "schema-serve" => schema_serve(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "schema-call" => schema_call(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "feed-serve" => feed_serve(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "channel-write" => channel_write(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "buffer" => buffer(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "channel-read" => channel_read(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "channel-hang" => channel_hang(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "channel-ping" => channel_ping(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "feed-call" => feed_call(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "tiga-call" => tiga_call(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "tcp-serve" => tcp_serve(&a),
        "gen-certs" => gen_certs(&a),
        "tcp-call" => tcp_call(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "tcp-sleep" => tcp_sleep(&a).map_err(|e| format!("{}: {e}", kind(&e))),
        "connect-only" => connect(&a.path, a.timeout, !a.compat)
            .map(|_| 0)
            .map_err(|e| format!("{}: {e}", kind(&e))),
        other => Err(format!("Usage: unknown role {other}")),
    };
    match result {
        Ok(n) => println!("ok {n} messages"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
