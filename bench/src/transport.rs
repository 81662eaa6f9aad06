//! The same benchmark moves over our bus and upstream's: a tiny common interface.

use std::time::{Duration, Instant};

/// What the benchmark needs from a bus.
pub trait Transport: Sized {
    /// Row label and child-process key.
    const NAME: &'static str;
    fn listen(path: &str, cap: usize) -> Self;
    fn connect(path: &str) -> Self;
    /// Sends one message, flushed, retrying while the ring is full.
    fn send(&self, data: &[u8]);
    /// Sends without flushing (the ring publishes every 32), retrying while full.
    fn send_unflushed(&self, data: &[u8]);
    fn flush(&self);
    /// Receives one message (blocking).
    fn recv(&self, spin: u32);
    /// Drains one batch (blocking), returning how many messages it held.
    fn drain(&self, spin: u32) -> usize;
}

/// Waits (at most 20 s) until a listener has created `path`.
pub fn wait_for_socket(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(path).exists() {
        assert!(Instant::now() < deadline, "nobody listened on {path}");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(5));
}

fn connect_retry<T: Transport>(path: &str) -> T {
    wait_for_socket(path);
    T::connect(path)
}

fn echo<T: Transport>(a: &str, b: &str, n: usize) {
    let rx = connect_retry::<T>(a);
    let tx = connect_retry::<T>(b);
    let msg = [9u8; super::PAYLOAD];
    for _ in 0..n {
        rx.recv(super::SPIN);
        tx.send(&msg);
    }
}

fn stream<T: Transport>(a: &str, n: usize) {
    let tx = connect_retry::<T>(a);
    let msg = [5u8; super::PAYLOAD];
    for _ in 0..n {
        tx.send_unflushed(&msg);
    }
    tx.flush();
    // Keep the mapping until the consumer is done (it owns the arena, so just linger).
    std::thread::sleep(Duration::from_millis(300));
}

/// Runs the child role `what` over transport `name`.
pub fn dispatch_child(what: &str, name: &str, args: &[&str]) {
    fn run<T: Transport>(what: &str, args: &[&str]) {
        match what {
            "echo" => echo::<T>(args[0], args[1], args[2].parse().expect("count")),
            "stream" => stream::<T>(args[0], args[1].parse().expect("count")),
            other => panic!("unknown child role {other}"),
        }
    }
    match name {
        Ours::<true>::NAME => run::<Ours<true>>(what, args),
        Ours::<false>::NAME => run::<Ours<false>>(what, args),
        #[cfg(feature = "upstream")]
        Upstream::NAME => run::<Upstream>(what, args),
        other => panic!("unknown transport {other}"),
    }
}

/// Our bus: with `FAST`, the fast ring protocol two peers of ours negotiate; without,
/// upstream's ABI v0x04 (what an upstream peer gets).
pub struct Ours<const FAST: bool>(tachyon::Bus);

impl<const FAST: bool> Transport for Ours<FAST> {
    const NAME: &'static str = if FAST { "ours" } else { "ours-compat" };
    fn listen(path: &str, cap: usize) -> Self {
        let opts = tachyon::ListenOptions::new().fast_mode(FAST);
        let wait = tachyon::Wait::new().timeout(Duration::from_secs(30));
        let bus = tachyon::Bus::listen_opts(path, cap, &opts, wait).expect("listen");
        let expected = if FAST { tachyon::RingMode::Fast } else { tachyon::RingMode::Compat };
        assert_eq!(bus.ring_mode(), expected, "negotiated ring mode");
        Self(bus)
    }
    fn connect(path: &str) -> Self {
        Self(tachyon::Bus::connect(path).expect("connect"))
    }
    fn send(&self, data: &[u8]) {
        loop {
            match self.0.send(data, 1) {
                Ok(()) => return,
                Err(tachyon::Error::Full { .. }) => std::hint::spin_loop(),
                Err(e) => panic!("send: {e}"),
            }
        }
    }
    fn send_unflushed(&self, data: &[u8]) {
        loop {
            match self.0.acquire_tx(data.len()) {
                Ok(mut tx) => {
                    tx.bytes_mut().copy_from_slice(data);
                    tx.commit_unflushed(data.len(), 1).expect("commit");
                    return;
                }
                Err(tachyon::Error::Full { .. }) => std::hint::spin_loop(),
                Err(e) => panic!("acquire_tx: {e}"),
            }
        }
    }
    fn flush(&self) {
        self.0.flush();
    }
    fn recv(&self, spin: u32) {
        let m = self.0.acquire_rx(spin).expect("recv");
        std::hint::black_box(m.data());
    }
    fn drain(&self, spin: u32) -> usize {
        let b = self.0.drain_batch(1024, spin).expect("drain");
        for m in &b {
            std::hint::black_box(m.data());
        }
        b.len()
    }
}

/// Upstream's `tachyon-ipc` 0.5.1 (C++ core through its Rust wrapper).
#[cfg(feature = "upstream")]
pub struct Upstream(tachyon_ipc::Bus);

#[cfg(feature = "upstream")]
impl Transport for Upstream {
    const NAME: &'static str = "upstream";
    fn listen(path: &str, cap: usize) -> Self {
        Self(tachyon_ipc::Bus::listen(path, cap).expect("listen"))
    }
    fn connect(path: &str) -> Self {
        Self(tachyon_ipc::Bus::connect(path).expect("connect"))
    }
    fn send(&self, data: &[u8]) {
        while self.0.send(data, 1).is_err() {
            std::hint::spin_loop();
        }
    }
    fn send_unflushed(&self, data: &[u8]) {
        loop {
            if let Ok(tx) = self.0.acquire_tx(data.len()) {
                tx.write(data);
                tx.commit_unflushed(data.len(), 1).expect("commit");
                return;
            }
            // Upstream does not flush on full; without this a batch could wait for ever.
            self.0.flush();
            std::hint::spin_loop();
        }
    }
    fn flush(&self) {
        self.0.flush();
    }
    fn recv(&self, spin: u32) {
        let m = self.0.acquire_rx(spin).expect("recv");
        std::hint::black_box(m.data());
        m.commit().expect("commit");
    }
    fn drain(&self, spin: u32) -> usize {
        let b = self.0.drain_batch(1024, spin).expect("drain");
        for m in &b {
            std::hint::black_box(m.data());
        }
        let n = b.len();
        b.commit().expect("commit");
        n
    }
}
