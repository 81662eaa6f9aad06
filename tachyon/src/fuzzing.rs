//! Entry points for `cargo fuzz` (`tachyon/fuzz/`) and for the corpus replay that
//! `make test` runs: one function per parser of untrusted bytes. Each takes arbitrary
//! bytes, plays a hostile peer with them, and must never panic, hang or touch memory
//! outside a mapping. Errors are the expected outcome. Not a stable API.
// A fuzz target panics exactly when an invariant breaks: that is how it reports a bug.
#![allow(clippy::missing_panics_doc)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
#[cfg(feature = "rpc")]
use std::time::Duration;

#[cfg(feature = "rpc")]
use crate::rpc::{Dispatcher, RpcBus, RpcError, ServerError, MSG_TYPE_ERROR};
use crate::shm::arena::Arena;
use crate::shm::layout::{self, sleep, state};
use crate::shm::ring::Producer;
#[cfg(feature = "rpc")]
use crate::Wait;

pub use crate::shm::bootstrap::fuzz_bootstrap as bootstrap;
pub use crate::shm::ring::fuzz_consumer as consumer;
pub use crate::shm::ring::fuzz_consumer_fast as consumer_fast;

/// A fuzz target: arbitrary bytes in, a panic only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target, by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("consumer", consumer),
    ("consumer_fast", consumer_fast),
    ("bootstrap", bootstrap),
    ("arena_attach", arena_attach),
    ("producer", producer),
    ("channel_file", channel_file),
    #[cfg(feature = "rpc")]
    ("rpc_error", rpc_error),
    #[cfg(feature = "rpc")]
    ("tiga_call", tiga_call),
    #[cfg(feature = "rpc")]
    ("typed_dispatch", typed_dispatch),
    #[cfg(feature = "rpc")]
    ("rpc_correlation", rpc_correlation),
    #[cfg(feature = "tcp")]
    ("frames", frames),
    #[cfg(feature = "tcp")]
    ("tcp_conn", tcp_conn),
    #[cfg(feature = "tcp")]
    ("peer_identity", peer_identity),
];

/// Identity extraction from a client certificate (arbitrary DER): never a panic, and a
/// reported common name is the subject's only CN attribute.
#[cfg(feature = "tcp")]
pub fn peer_identity(data: &[u8]) {
    crate::net::tls::identity::fuzz_identity(data);
}

/// A channel file patched by a hostile writer, then opened, read, waited on and
/// appended to.
pub fn channel_file(data: &[u8]) {
    crate::ipc::channel::fuzz_file(data);
}

/// The TCP frame decoder: every frame it accepts re-encodes to the same bytes, and
/// hello, goaway and error payloads decode without a panic.
#[cfg(feature = "tcp")]
pub fn frames(data: &[u8]) {
    crate::net::rpc::frame::fuzz_frames(data);
}

/// A TCP server connection fed a hostile client's bytes, cut at arbitrary points.
#[cfg(feature = "tcp")]
pub fn tcp_conn(data: &[u8]) {
    crate::net::rpc::conn::fuzz_conn(data);
}

/// Little-endian words taken from the front of a byte slice, zero when it runs out.
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A memfd whose first bytes are `header` (the rest of `len` zero), sealed like a
/// peer's would be; then `Arena::attach` with an announced size taken from the data.
/// Whatever the header says, attach either refuses it or yields an arena whose ring a
/// consumer and a producer can use without leaving the mapping.
pub fn arena_attach(data: &[u8]) {
    use rustix::fs::{MemfdFlags, SealFlags};
    let mut w = Words(data);
    // Mapping sizes around the interesting edges: below the header, exact, small rings.
    let len = 768 + (w.u32() as usize % (3 * 4096 + 1));
    let announced = match w.u8() % 3 {
        0 => len,
        1 => len.saturating_sub(w.u32() as usize % 1024),
        _ => len + w.u32() as usize % 1024,
    };
    let header: Vec<u8> = w.0.iter().copied().take(layout::ARENA_HEADER_SIZE).collect();
    let fd = rustix::fs::memfd_create("fuzz", MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC)
        .expect("memfd works in tests");
    rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate works in tests");
    let _ = rustix::io::pwrite(&fd, &header, 0);
    if data.first().is_some_and(|b| b & 1 == 0) {
        let _ = rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW);
    }
    let Ok(arena) = Arena::attach(fd, announced) else { return };
    let arena = Arc::new(arena);
    assert!(layout::is_valid_capacity(arena.capacity()));
    assert!(layout::shm_size(arena.capacity()) <= announced);
    let mut producer = Producer::new(arena.clone());
    if let Ok(r) = producer.acquire(8) {
        producer.payload_mut(&r)[..8].copy_from_slice(b"fuzzfuzz");
        let _ = producer.commit(r, 8, 1, None);
        producer.flush();
    }
    consumer_drain(&arena);
}

fn consumer_drain(arena: &Arc<Arena>) {
    let mut c = crate::shm::ring::Consumer::new(arena.clone());
    for _ in 0..64 {
        let at = c.position();
        match c.peek(at) {
            Ok(Some(slot)) => {
                std::hint::black_box(c.payload(&slot).len());
                c.advance(slot.end);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// A hostile consumer against our producer: between the producer's steps, the bytes
/// rewrite the shared `tail`, the sleep word and the state. The producer must refuse a
/// tail outside the ring (and go FatalError), never write outside the mapping, and wake
/// or skip a sleeper without harm.
pub fn producer(data: &[u8]) {
    let arena = Arc::new(Arena::create(4096).expect("memfd works in tests"));
    let mut p = Producer::new(arena.clone());
    let mut w = Words(data);
    while !w.is_empty() {
        match w.u8() % 6 {
            0 => arena.tail().store(w.u64(), Ordering::Release),
            1 => arena.consumer_sleeping().store(w.u32() % 4, Ordering::Release),
            2 => {
                let v = [state::READY, state::DISCONNECTED, state::FATAL_ERROR, w.u32()];
                arena.set_state_for_tests(v[w.u8() as usize % 4]);
            }
            3 => p.flush(),
            _ => {
                let size = w.u32() as usize % 5000;
                match p.acquire(size) {
                    Ok(r) => {
                        let max = r.max();
                        assert!(max >= size, "a reservation holds what was asked");
                        p.payload_mut(&r).fill(0xA5);
                        let _ = p.commit(r, size.min(max), w.u32(), Some(w.u64()));
                    }
                    Err(e) => {
                        let tail_bad = matches!(e, crate::Error::Corrupted(_));
                        assert!(!tail_bad || arena.state() == state::FATAL_ERROR);
                    }
                }
            }
        }
    }
    // A sleeper word the peer set to anything: waking must be harmless.
    let _ = arena.consumer_sleeping().compare_exchange(
        sleep::SLEEPING,
        sleep::AWAKE,
        Ordering::SeqCst,
        Ordering::Relaxed,
    );
}

/// `RpcError::decode` of arbitrary bytes, and its round trip.
#[cfg(feature = "rpc")]
pub fn rpc_error(data: &[u8]) {
    let e = RpcError::decode(data);
    std::hint::black_box(e.to_string());
    let again = RpcError::decode(&e.encode());
    assert_eq!(again, e, "encode then decode is the identity");
}

/// `tiga::decode_call` of arbitrary bytes under every kind of msg_type.
#[cfg(feature = "rpc")]
pub fn tiga_call(data: &[u8]) {
    let mut w = Words(data);
    let msg_type = (w.u32() & 0xFFFF) as u16;
    let payload = w.0;
    if let Ok(call) = crate::rpc::tiga::decode_call(msg_type, payload) {
        assert!(call.data.len() <= payload.len());
        if msg_type >= 0x8000 && msg_type != MSG_TYPE_ERROR {
            // A named call decodes only if its name hashes to its msg_type.
            assert_eq!(crate::rpc::tiga::method_id(&call.method).ok(), Some(msg_type));
        }
    }
    let _ = crate::rpc::tiga::decode_call(0x8000 | msg_type, payload);
}

/// Typed handlers of many shapes fed arbitrary MessagePack: every request gets either a
/// normal reply or a well-formed error reply, and the dispatcher keeps serving.
#[cfg(feature = "rpc")]
pub fn typed_dispatch(data: &[u8]) {
    use std::collections::HashMap;
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Quote {
        symbol: String,
        qty: u32,
        venue: Option<String>,
        tag: Vec<u8>,
    }
    thread_local! {
        static D: Dispatcher = {
            let mut d = Dispatcher::new();
            d.register_typed(1, "quote", |q: Quote| Ok::<_, ServerError>(q)).expect("fresh");
            d.register_typed(2, "add", |(a, b): (i64, i64)| {
                a.checked_add(b).ok_or_else(|| ServerError::from("overflow"))
            })
            .expect("fresh");
            d.register_typed(3, "map", |m: HashMap<String, Vec<f64>>| {
                Ok::<_, ServerError>(m.len())
            })
            .expect("fresh");
            d.register_typed(4, "text", |s: String| Ok::<_, ServerError>(s.len()))
                .expect("fresh");
            d
        };
    }
    let Some((&which, payload)) = data.split_first() else { return };
    let msg_type = u16::from(which % 6);
    let mut out = Vec::new();
    let reply = D.with(|d| d.dispatch(msg_type, payload, &mut out));
    if reply == MSG_TYPE_ERROR {
        let e = RpcError::decode(&out);
        assert_eq!(e.msg_type, msg_type, "the error names the failed msg_type");
        assert_ne!(e.code, crate::rpc::code::MALFORMED, "our error replies are well formed");
    } else {
        assert_eq!(reply, msg_type);
    }
}

/// A hostile callee against our caller's correlation logic: the bytes interleave the
/// caller's calls, waits and abandons with replies the callee writes (any correlation
/// id: stray, duplicate, out of order, 0, for abandoned calls, error replies). A wait
/// may only ever return the reply for the id it waited for.
#[cfg(feature = "rpc")]
pub fn rpc_correlation(data: &[u8]) {
    let fwd = Arena::create(1 << 14).expect("memfd works in tests");
    let rev = Arc::new(Arena::create(1 << 12).expect("memfd works in tests"));
    let bus = RpcBus::for_fuzzing(fwd, &rev);
    let mut callee = Producer::new(rev.clone());
    let mut issued: Vec<u64> = Vec::new();
    let mut w = Words(data);
    let now = || Wait::new().spin(0).timeout(Duration::ZERO);
    while !w.is_empty() {
        match w.u8() % 6 {
            0 => {
                if let Ok(cid) = bus.call(b"req", 1) {
                    issued.push(cid);
                }
            }
            1 => {
                // A reply with a chosen id: one just issued, any issued, or anything.
                let cid = match w.u8() % 3 {
                    0 => issued.last().copied().unwrap_or(0),
                    1 => issued.get(w.u8() as usize % issued.len().max(1)).copied().unwrap_or(0),
                    _ => w.u64() % 64,
                };
                let mt = if w.u8() % 4 == 0 { MSG_TYPE_ERROR } else { 1 };
                let len = w.u8() as usize % 40;
                if let Ok(r) = callee.acquire(len) {
                    let body: Vec<u8> = w.0.iter().copied().take(len).collect();
                    callee.payload_mut(&r)[..body.len()].copy_from_slice(&body);
                    let _ = callee.commit(r, body.len(), u32::from(mt), Some(cid));
                    callee.flush();
                }
            }
            2 => {
                let Some(&cid) = issued.get(w.u8() as usize % issued.len().max(1)) else {
                    continue;
                };
                match bus.wait_with(cid, now()) {
                    Ok(reply) => assert_eq!(reply.correlation_id(), cid),
                    Err(crate::Error::Rpc(e)) => {
                        std::hint::black_box(e.code);
                    }
                    Err(_) => {}
                }
            }
            3 => {
                if let Ok(reply) = bus.next_reply_with(now()) {
                    let cid = reply.correlation_id();
                    assert!(issued.contains(&cid), "next_reply returned an id never issued");
                }
            }
            4 => {
                if let Some(&cid) = issued.get(w.u8() as usize % issued.len().max(1)) {
                    bus.abandon(cid);
                }
            }
            _ => {
                std::hint::black_box(bus.in_flight());
            }
        }
    }
}
