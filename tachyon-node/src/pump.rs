//! The async side: one pump thread per bus that waits for messages (or replies) off the
//! JS thread and settles Promises.
//!
//! The thread runs only while something awaits. It waits through `RxReadiness` (no bus
//! lock, so the JS thread is never stalled), then takes the lock for a non-blocking
//! drain, copies what arrived and resolves the waiting Promises in order. Each pending
//! Promise keeps the event loop alive; deadlines are checked at least every 50 ms.
//!
//! Promises resolve to an outcome, never reject: either the value or an [`ErrInfo`]
//! the JS layer turns into its typed error (so async errors carry the same
//! `ERR_TACHYON_*` codes as sync ones).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Buffer, Either, Uint32Array};
use napi::{Env, JsDeferred};
use napi_derive::napi;
use tachyon::{RxReadiness, Wait};

use crate::cell::Cell;
use crate::errors::{describe, BindError};
use crate::lock;

/// How often a waiting pump looks at deadlines and at `close()`.
const SLICE: Duration = Duration::from_millis(50);

/// An error, as async outcomes carry it.
#[napi(object)]
pub struct ErrInfo {
    /// `ERR_TACHYON_*`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl From<BindError> for ErrInfo {
    fn from(e: BindError) -> Self {
        let (code, message) = describe(&e);
        Self { code: code.to_owned(), message }
    }
}

/// Messages received together, packed: one Buffer with every payload back to back,
/// and each message's size and type id. The JS layer slices it into messages (one
/// crossing and one allocation per batch, not per message).
#[napi(object)]
pub struct Packed {
    /// The payloads, back to back.
    pub data: Buffer,
    /// Payload sizes, in order.
    pub sizes: Uint32Array,
    /// Type ids, in order.
    pub type_ids: Uint32Array,
}

impl Packed {
    /// Takes up to `max` messages from `bus` without waiting. `Ok(None)` if none was
    /// there; an error only if it came before any message.
    pub fn take(bus: &tachyon::Bus, max: usize) -> Result<Option<Self>, tachyon::Error> {
        let (mut data, mut sizes, mut type_ids) = (Vec::new(), Vec::new(), Vec::new());
        while sizes.len() < max {
            match bus.try_recv() {
                Ok(Some(m)) => {
                    data.extend_from_slice(m.data());
                    sizes.push(m.len() as u32);
                    type_ids.push(m.type_id());
                }
                Err(e) if sizes.is_empty() => return Err(e),
                // Empty now, or an error after some messages (the next receive reports it).
                Ok(None) | Err(_) => break,
            }
        }
        Ok((!sizes.is_empty()).then(|| Self {
            data: data.into(),
            sizes: Uint32Array::new(sizes),
            type_ids: Uint32Array::new(type_ids),
        }))
    }
}

/// A decoded 0xFFFF error reply.
#[napi(object)]
pub struct RpcErrorInfo {
    /// The msg_type that failed.
    pub msg_type: u32,
    /// The error code (`tachyon::rpc::code`; 0 for upstream's bare sentinel).
    pub code: u32,
    /// What went wrong.
    pub message: String,
}

impl From<tachyon::rpc::RpcError> for RpcErrorInfo {
    fn from(e: tachyon::rpc::RpcError) -> Self {
        Self { msg_type: u32::from(e.msg_type), code: e.code, message: e.message }
    }
}

/// An RPC reply. An error reply (msg_type 0xFFFF) comes decoded, once, in `error`;
/// the JS layer throws it as `TachyonRpcError`.
#[napi(object)]
pub struct Reply {
    /// The payload (empty for an error reply).
    pub data: Buffer,
    /// The reply's msg_type (0xFFFF for an error reply).
    pub msg_type: u32,
    /// The call it answers.
    pub correlation_id: f64,
    /// The decoded error of a 0xFFFF reply.
    pub error: Option<RpcErrorInfo>,
}

impl Reply {
    /// The reply to call `cid`, decoding an error reply.
    pub fn new(cid: u64, msg_type: u16, data: &[u8]) -> Self {
        if msg_type == tachyon::rpc::MSG_TYPE_ERROR {
            return Self::failed(cid, tachyon::rpc::RpcError::decode(data));
        }
        Self {
            data: data.to_vec().into(),
            msg_type: u32::from(msg_type),
            correlation_id: cid as f64,
            error: None,
        }
    }

    /// The error reply to call `cid`.
    pub fn failed(cid: u64, e: tachyon::rpc::RpcError) -> Self {
        Self {
            data: Vec::new().into(),
            msg_type: u32::from(tachyon::rpc::MSG_TYPE_ERROR),
            correlation_id: cid as f64,
            error: Some(e.into()),
        }
    }
}

type Resolver<T> = Box<dyn FnOnce(Env) -> napi::Result<Either<T, ErrInfo>> + Send>;
/// A Promise settled from the pump thread.
pub type Deferred<T> = JsDeferred<Either<T, ErrInfo>, Resolver<T>>;

/// Settles `d` with `outcome`.
pub fn settle<T: napi::bindgen_prelude::ToNapiValue + Send + 'static>(
    d: Deferred<T>,
    outcome: Result<T, ErrInfo>,
) {
    d.resolve(Box::new(move |_| {
        Ok(match outcome {
            Ok(v) => Either::A(v),
            Err(e) => Either::B(e),
        })
    }));
}

fn timeout_err(after: Duration) -> ErrInfo {
    BindError::Core(tachyon::Error::Timeout(after)).into()
}

fn closed() -> ErrInfo {
    BindError::Closed.into()
}

/// What a pump does between waits: the bus-specific half.
pub trait Source: Send + 'static {
    /// The bus type in the cell.
    type Bus: Send + 'static;
    /// What the pump waits on.
    fn readiness(bus: &Self::Bus) -> RxReadiness;
    /// Whether anything is waiting (the pump sleeps otherwise).
    fn idle(&self) -> bool;
    /// The earliest deadline of a waiter.
    fn next_deadline(&self) -> Option<Instant>;
    /// Takes what the bus holds now and settles waiters (bus lock held). Returns
    /// whether it settled anything.
    fn deliver(&mut self, bus: &Self::Bus) -> bool;
    /// Settles waiters whose deadline passed (bus lock held, so calls can be abandoned).
    fn expire(&mut self, bus: Option<&Self::Bus>, now: Instant);
    /// Settles every waiter with `err`.
    fn fail_all(&mut self, err: &dyn Fn() -> ErrInfo);
}

struct Shared<S> {
    state: Mutex<(S, bool)>,
    wake: Condvar,
}

/// A pump: the waiters' state plus the thread serving them.
pub struct Pump<S: Source> {
    shared: Arc<Shared<S>>,
}

impl<S: Source> Pump<S> {
    /// Starts the thread serving `source`'s waiters on `cell`.
    pub fn start(cell: Arc<Cell<S::Bus>>, ready: RxReadiness, source: S) -> Self {
        let shared = Arc::new(Shared { state: Mutex::new((source, false)), wake: Condvar::new() });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("tachyon-node-pump".into())
            .spawn(move || run(&s, &cell, &ready))
            .expect("cannot spawn the tachyon pump thread");
        Self { shared }
    }

    /// Changes the waiters' state and wakes the thread.
    fn update<R>(&self, f: impl FnOnce(&mut S, bool) -> R) -> R {
        let mut st = lock(&self.shared.state);
        let (source, stopped) = &mut *st;
        let r = f(source, *stopped);
        self.shared.wake.notify_one();
        r
    }

    /// Stops the thread; every waiter gets `ERR_TACHYON_CLOSED`.
    pub fn stop(&self) {
        self.update(|s, _| s.fail_all(&closed));
        lock(&self.shared.state).1 = true;
        self.shared.wake.notify_one();
    }
}

fn run<S: Source>(shared: &Shared<S>, cell: &Cell<S::Bus>, ready: &RxReadiness) {
    loop {
        let deadline = {
            let mut st = lock(&shared.state);
            while !st.1 && st.0.idle() {
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.1 {
                return;
            }
            st.0.next_deadline()
        };
        let now = Instant::now();
        let slice = deadline.map_or(SLICE, |d| d.saturating_duration_since(now).min(SLICE));
        let outcome = ready.wait(Wait::new().timeout(slice));
        // Lock order everywhere: bus, then waiters.
        let mut stalled = false;
        let _ = cell.with(|bus| {
            let mut st = lock(&shared.state);
            match &outcome {
                Ok(()) => stalled = !st.0.deliver(bus),
                Err(tachyon::Error::Timeout(_) | tachyon::Error::Closed) => {}
                Err(e) => {
                    // The peer is gone (dead or closed) or the ring broke: what is left
                    // in the ring comes first, then every waiter learns why.
                    let _ = st.0.deliver(bus);
                    st.0.fail_all(&|| BindError::Core(e.clone()).into());
                }
            }
            st.0.expire(Some(bus), Instant::now());
            Ok(())
        });
        if cell.is_closed() {
            let mut st = lock(&shared.state);
            st.0.fail_all(&closed);
        } else if stalled {
            // A message is there but nobody could take it (a zero-copy guard holds the
            // ring, or a stray reply): do not spin on it.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

// ---- SPSC bus: FIFO receivers --------------------------------------------------------

struct Receiver {
    max: usize,
    deadline: Option<(Instant, Duration)>,
    deferred: Deferred<Packed>,
}

/// Waiting receives of one SPSC bus, in order.
#[derive(Default)]
pub struct Receives {
    waiters: VecDeque<Receiver>,
}

impl Source for Receives {
    type Bus = tachyon::Bus;

    fn readiness(bus: &tachyon::Bus) -> RxReadiness {
        bus.rx_readiness()
    }

    fn idle(&self) -> bool {
        self.waiters.is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiters.iter().filter_map(|w| w.deadline.map(|d| d.0)).min()
    }

    fn deliver(&mut self, bus: &tachyon::Bus) -> bool {
        let mut progress = false;
        while let Some(w) = self.waiters.front() {
            let got = match Packed::take(bus, w.max) {
                Ok(None) => return progress,
                Ok(Some(p)) => Ok(p),
                Err(e) => Err(BindError::Core(e).into()),
            };
            let w = self.waiters.pop_front().expect("front exists");
            settle(w.deferred, got);
            progress = true;
        }
        progress
    }

    fn expire(&mut self, _bus: Option<&tachyon::Bus>, now: Instant) {
        let (late, keep): (VecDeque<_>, VecDeque<_>) =
            self.waiters.drain(..).partition(|w| w.deadline.is_some_and(|d| d.0 <= now));
        self.waiters = keep;
        for w in late {
            let after = w.deadline.map_or(Duration::ZERO, |d| d.1);
            settle(w.deferred, Err(timeout_err(after)));
        }
    }

    fn fail_all(&mut self, err: &dyn Fn() -> ErrInfo) {
        for w in self.waiters.drain(..) {
            settle(w.deferred, Err(err()));
        }
    }
}

/// The pump of an SPSC bus.
pub type BusPump = Pump<Receives>;

impl BusPump {
    /// Queues a receive of up to `max` messages.
    pub fn receive(&self, max: usize, timeout: Option<Duration>, d: Deferred<Packed>) {
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        self.update(|s, stopped| {
            if stopped {
                settle(d, Err(closed()));
            } else {
                s.waiters.push_back(Receiver { max, deadline, deferred: d });
            }
        });
    }
}

// ---- RPC bus: replies by correlation id -----------------------------------------------

struct Caller {
    deadline: Option<(Instant, Duration)>,
    deferred: Deferred<Reply>,
}

/// Calls awaiting their reply on one RPC bus, and replies that came first; streams
/// awaiting their next item (the core keeps items that came first).
#[derive(Default)]
pub struct Replies {
    waiters: HashMap<u64, Caller>,
    early: HashMap<u64, Reply>,
    streams: HashMap<u64, Caller>,
}

/// A stream's next item as a [`Reply`]: the item, the end (msg_type 0xFFFE, empty), or
/// the error that ended it. `Ok(None)`: nothing yet.
pub fn stream_item(
    bus: &tachyon::rpc::RpcBus,
    cid: u64,
    wait: Wait<'_>,
) -> Result<Option<Reply>, BindError> {
    match bus.next_stream_item_with(cid, wait) {
        Ok(Some(r)) => Ok(Some(Reply::new(cid, r.msg_type(), r.data()))),
        Ok(None) => Ok(Some(Reply::new(cid, tachyon::rpc::MSG_TYPE_STREAM_END, &[]))),
        Err(tachyon::Error::Rpc(e)) => Ok(Some(Reply::failed(cid, e))),
        Err(tachyon::Error::Timeout(_)) => Ok(None),
        Err(e) => Err(BindError::Core(e)),
    }
}

impl Source for Replies {
    type Bus = tachyon::rpc::RpcBus;

    fn readiness(bus: &tachyon::rpc::RpcBus) -> RxReadiness {
        bus.rx_readiness()
    }

    fn idle(&self) -> bool {
        self.waiters.is_empty() && self.streams.is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiters
            .values()
            .chain(self.streams.values())
            .filter_map(|w| w.deadline.map(|d| d.0))
            .min()
    }

    fn deliver(&mut self, bus: &tachyon::rpc::RpcBus) -> bool {
        let mut progress = false;
        let waiting: Vec<u64> = self.streams.keys().copied().collect();
        for cid in waiting {
            match stream_item(bus, cid, Wait::new().spin(0).timeout(Duration::ZERO)) {
                Ok(None) => {}
                outcome => {
                    progress = true;
                    if let Some(w) = self.streams.remove(&cid) {
                        match outcome {
                            Ok(Some(item)) => settle(w.deferred, Ok(item)),
                            Err(e) => settle(w.deferred, Err(e.into())),
                            Ok(None) => unreachable!(),
                        }
                    }
                }
            }
        }
        loop {
            if bus.in_flight() <= bus.streams_in_flight() {
                return progress; // no unary call in flight (streams are read above)
            }
            match bus.next_reply_with(Wait::new().spin(0).timeout(Duration::ZERO)) {
                Ok(r) => {
                    let cid = r.correlation_id();
                    let reply = Reply::new(cid, r.msg_type(), r.data());
                    drop(r);
                    progress = true;
                    match self.waiters.remove(&cid) {
                        Some(w) => settle(w.deferred, Ok(reply)),
                        None => {
                            self.early.insert(cid, reply);
                        }
                    }
                }
                Err(tachyon::Error::Timeout(_)) => return progress,
                // A reply nobody asked for: the core consumed and reported it.
                Err(tachyon::Error::Protocol(_)) => progress = true,
                Err(e) => {
                    let info = || ErrInfo::from(BindError::Core(e.clone()));
                    self.fail_all(&info);
                    return true;
                }
            }
        }
    }

    fn expire(&mut self, bus: Option<&tachyon::rpc::RpcBus>, now: Instant) {
        // A stream's item that is late times out its wait; the stream stays open.
        let late: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, w)| w.deadline.is_some_and(|d| d.0 <= now))
            .map(|(cid, _)| *cid)
            .collect();
        for cid in late {
            if let Some(w) = self.streams.remove(&cid) {
                settle(w.deferred, Err(timeout_err(w.deadline.map_or(Duration::ZERO, |d| d.1))));
            }
        }
        let late: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline.is_some_and(|d| d.0 <= now))
            .map(|(cid, _)| *cid)
            .collect();
        for cid in late {
            if let Some(w) = self.waiters.remove(&cid) {
                if let Some(bus) = bus {
                    bus.abandon(cid); // a late reply is dropped, never misdelivered
                }
                settle(w.deferred, Err(timeout_err(w.deadline.map_or(Duration::ZERO, |d| d.1))));
            }
        }
    }

    fn fail_all(&mut self, err: &dyn Fn() -> ErrInfo) {
        for (_, w) in self.waiters.drain().chain(self.streams.drain()) {
            settle(w.deferred, Err(err()));
        }
    }
}

/// The pump of an RPC caller.
pub type RpcPump = Pump<Replies>;

impl RpcPump {
    /// Drops the wait for call `cid` (settling it as interrupted) and any early reply.
    pub fn forget(&self, cid: u64) {
        self.update(|s, _| {
            if let Some(w) = s.waiters.remove(&cid) {
                settle(w.deferred, Err(BindError::Core(tachyon::Error::Interrupted).into()));
            }
            s.early.remove(&cid);
        });
    }

    /// Registers the wait for stream `cid`'s next item (the caller looked first).
    pub fn await_stream_item(&self, cid: u64, timeout: Option<Duration>, d: Deferred<Reply>) {
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        self.update(|s, stopped| {
            if stopped {
                settle(d, Err(closed()));
            } else if let Some(old) = s.streams.insert(cid, Caller { deadline, deferred: d }) {
                let e = BindError::Arg(format!("stream {cid} already has a pending next()"));
                settle(old.deferred, Err(e.into()));
            }
        });
    }

    /// Drops the wait for stream `cid`'s next item (settling it as interrupted).
    pub fn forget_stream(&self, cid: u64) {
        self.update(|s, _| {
            if let Some(w) = s.streams.remove(&cid) {
                settle(w.deferred, Err(BindError::Core(tachyon::Error::Interrupted).into()));
            }
        });
    }

    /// Registers the wait for call `cid` (settled at once if its reply came first).
    pub fn await_reply(&self, cid: u64, timeout: Option<Duration>, d: Deferred<Reply>) {
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        self.update(|s, stopped| {
            if let Some(reply) = s.early.remove(&cid) {
                settle(d, Ok(reply));
            } else if stopped {
                settle(d, Err(closed()));
            } else {
                s.waiters.insert(cid, Caller { deadline, deferred: d });
            }
        });
    }
}
