//! RPC echo: round trips and pipelined calls, ours and upstream's, through one interface.

use std::time::{Duration, Instant};

use crate::{child, sock, PAYLOAD, SPIN, WARMUP};

/// Calls in flight per pipelined round.
pub const PIPELINE: usize = 16;

/// What the RPC benchmark needs from an RPC bus.
pub trait RpcTransport: Sized {
    /// Row label and child-process key.
    const NAME: &'static str;
    fn listen(path: &str) -> Self;
    fn connect(path: &str) -> Self;
    fn call(&self, payload: &[u8]) -> u64;
    fn wait(&self, cid: u64);
    /// Callee: echoes `n` requests.
    fn serve_echo(&self, n: usize);
}

fn connect_retry<T: RpcTransport>(path: &str) -> T {
    crate::transport::wait_for_socket(path);
    T::connect(path)
}

/// Round trips (ns) of `samples` calls, then pipelined calls per second over `pipelined`
/// calls in rounds of [`PIPELINE`].
pub fn measure<T: RpcTransport>(samples: usize, pipelined: usize) -> (Vec<u64>, f64) {
    measure_against::<T>(T::NAME, samples, pipelined)
}

/// Like [`measure`], with the callee of transport `callee` (the wire is the same, so
/// ours and upstream's can be mixed to see which side costs what).
pub fn measure_against<T: RpcTransport>(
    callee: &str,
    samples: usize,
    pipelined: usize,
) -> (Vec<u64>, f64) {
    let path = sock(&format!("rpc-{}-{callee}", T::NAME));
    let rounds = pipelined / PIPELINE;
    let total = WARMUP + samples + rounds * PIPELINE;
    let mut peer = child(&["rpc-echo", callee, &path, &total.to_string()]);
    let c = connect_retry::<T>(&path);
    let msg = [3u8; PAYLOAD];
    let mut rtt = Vec::with_capacity(samples);
    for i in 0..WARMUP + samples {
        let t = Instant::now();
        let cid = c.call(&msg);
        c.wait(cid);
        if i >= WARMUP {
            rtt.push(t.elapsed().as_nanos() as u64);
        }
    }
    let t = Instant::now();
    let mut cids = [0u64; PIPELINE];
    for _ in 0..rounds {
        for cid in &mut cids {
            *cid = c.call(&msg);
        }
        for cid in cids {
            c.wait(cid);
        }
    }
    let rate = (rounds * PIPELINE) as f64 / t.elapsed().as_secs_f64();
    drop(c);
    assert!(peer.wait().expect("wait rpc child").success());
    (rtt, rate)
}

/// Runs the callee role for transport `name`.
pub fn dispatch_child(name: &str, path: &str, n: usize) {
    match name {
        Ours::<true>::NAME => Ours::<true>::listen(path).serve_echo(n),
        Ours::<false>::NAME => Ours::<false>::listen(path).serve_echo(n),
        OursDispatcher::NAME => OursDispatcher::listen(path).serve_echo(n),
        #[cfg(feature = "upstream")]
        Upstream::NAME => Upstream::listen(path).serve_echo(n),
        other => panic!("unknown rpc transport {other}"),
    }
}

/// Our RpcBus, callee as a plain serve/reply loop; `FAST` as for the SPSC bus.
pub struct Ours<const FAST: bool>(tachyon::rpc::RpcBus);

impl<const FAST: bool> RpcTransport for Ours<FAST> {
    const NAME: &'static str = if FAST { "ours" } else { "ours-compat" };
    fn listen(path: &str) -> Self {
        let opts = tachyon::ListenOptions::new().fast_mode(FAST);
        let wait = tachyon::Wait::new().timeout(Duration::from_secs(30));
        Self(
            tachyon::rpc::RpcBus::listen_opts(path, 1 << 16, 1 << 16, &opts, wait).expect("listen"),
        )
    }
    fn connect(path: &str) -> Self {
        Self(tachyon::rpc::RpcBus::connect(path).expect("connect"))
    }
    fn call(&self, payload: &[u8]) -> u64 {
        loop {
            match self.0.call(payload, 1) {
                Ok(cid) => return cid,
                Err(tachyon::Error::Full { .. }) => std::hint::spin_loop(),
                Err(e) => panic!("call: {e}"),
            }
        }
    }
    fn wait(&self, cid: u64) {
        let r = self.0.wait_with(cid, tachyon::Wait::new().spin(SPIN)).expect("wait");
        std::hint::black_box(r.data());
    }
    fn serve_echo(&self, n: usize) {
        for _ in 0..n {
            let req = self.0.serve_with(tachyon::Wait::new().spin(SPIN)).expect("serve");
            let (cid, mt) = (req.correlation_id(), req.msg_type());
            let mut buf = [0u8; PAYLOAD];
            buf.copy_from_slice(&req.data()[..PAYLOAD]);
            drop(req);
            self.0.reply(cid, &buf, mt).expect("reply");
        }
    }
}

/// Our RpcBus (fast mode), callee running the `Dispatcher` (what `#[tachyon_rpc]`
/// servers use).
pub struct OursDispatcher(Ours<true>);

impl RpcTransport for OursDispatcher {
    const NAME: &'static str = "ours-dispatcher";
    fn listen(path: &str) -> Self {
        Self(Ours::listen(path))
    }
    fn connect(path: &str) -> Self {
        Self(Ours::connect(path))
    }
    fn call(&self, payload: &[u8]) -> u64 {
        self.0.call(payload)
    }
    fn wait(&self, cid: u64) {
        self.0.wait(cid);
    }
    fn serve_echo(&self, n: usize) {
        let mut d = tachyon::rpc::Dispatcher::new();
        d.register_raw(1, "echo", <[u8]>::to_vec).expect("register");
        let opts = tachyon::rpc::ServeOptions::default();
        let mut scratch = Vec::new();
        for _ in 0..n {
            d.serve_one(&self.0 .0, tachyon::Wait::new().spin(SPIN), &opts, &mut scratch)
                .expect("serve");
        }
    }
}

/// Upstream's `tachyon-ipc` 0.5.1 RpcBus.
#[cfg(feature = "upstream")]
pub struct Upstream(tachyon_ipc::RpcBus);

#[cfg(feature = "upstream")]
impl RpcTransport for Upstream {
    const NAME: &'static str = "upstream";
    fn listen(path: &str) -> Self {
        Self(tachyon_ipc::RpcBus::listen(path, 1 << 16, 1 << 16).expect("listen"))
    }
    fn connect(path: &str) -> Self {
        Self(tachyon_ipc::RpcBus::connect(path).expect("connect"))
    }
    fn call(&self, payload: &[u8]) -> u64 {
        loop {
            if let Ok(cid) = self.0.call(payload, 1) {
                return cid;
            }
            std::hint::spin_loop();
        }
    }
    fn wait(&self, cid: u64) {
        let r = self.0.wait(cid, SPIN).expect("wait");
        std::hint::black_box(r.data());
        r.commit().expect("commit");
    }
    fn serve_echo(&self, n: usize) {
        let mut buf = [0u8; PAYLOAD];
        for _ in 0..n {
            let req = self.0.serve(SPIN).expect("serve");
            let (cid, tid) = (req.correlation_id, req.type_id);
            buf.copy_from_slice(&req.data()[..PAYLOAD]);
            req.commit().expect("commit");
            self.0.reply(cid, &buf, tid).expect("reply");
        }
    }
}
