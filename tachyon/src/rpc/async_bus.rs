//! [`AsyncRpcBus`]: awaitable calls over shared memory, for any executor (tokio,
//! `futures::executor`, smol), with no runtime dependency.
//!
//! An [`RpcBus`] belongs to one thread at a time; this wraps it for many tasks: a call
//! takes the bus's lock for as long as it takes to put its request in the ring (no
//! waiting inside the lock), and a *pump* thread, started by the first call and asleep
//! while nothing awaits, waits for replies through [`crate::RxReadiness`] (without the
//! bus lock, so calls keep going out), drains what arrived, and wakes each reply's
//! future. Replies complete their futures in the order they arrive.
//!
//! What it costs, and why: one thread per bus and one thread hop per reply (the pump wakes
//! the task), against a blocking caller that spins on the ring itself. That is the price
//! of executor independence without busy polling: a future never spins, and the pump
//! sleeps in the ring's futex between replies. A full request ring parks the call's
//! future; the pump retries it after each batch of replies (the callee made progress)
//! and at least every 50 ms.
//!
//! Deadlines: the pump wakes a future whose deadline passed; its call is abandoned (the
//! callee may still answer: the late reply is dropped). A dropped future abandons its
//! call the same way. A dead callee fails every waiting future with `PeerDead`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rpc::{RpcBus, RpcError, MSG_TYPE_ERROR};
use crate::shm::wait::Wait;
use crate::sync::lock;
use crate::RxReadiness;

/// How often a waiting pump looks at deadlines and at parked senders.
const SLICE: Duration = Duration::from_millis(50);

/// How long a call's first poll looks for its own reply before handing the wait to the
/// pump. A callee on another CPU answers in about a microsecond; waking a task from the
/// pump costs ten or more on this kind of VM. The spin is short and bounded, and only
/// the first poll does it.
const FIRST_POLL_SPIN: Duration = Duration::from_micros(20);

/// One call a future awaits.
#[derive(Default)]
struct Waiting {
    waker: Option<Waker>,
    deadline: Option<Instant>,
    outcome: Option<Result<Vec<u8>>>,
}

#[derive(Default)]
struct State {
    /// Calls sent and awaited, by correlation id.
    calls: HashMap<u64, Waiting>,
    /// Futures whose request found the ring full.
    senders: Vec<Waker>,
    /// The earliest deadline of a future still sending.
    sender_deadline: Option<Instant>,
    /// Why every call fails from now on.
    dead: Option<Error>,
    /// The bus was dropped: the pump ends.
    closed: bool,
}

impl State {
    fn idle(&self) -> bool {
        self.calls.is_empty() && self.senders.is_empty()
    }
}

struct Inner {
    /// Handles alive (the pump's reference does not count): the last one stops the pump.
    handles: std::sync::atomic::AtomicUsize,
    bus: Mutex<RpcBus>,
    ready: RxReadiness,
    state: Mutex<State>,
    wake: Condvar,
    pump: Mutex<Option<JoinHandle<()>>>,
}

/// An [`RpcBus`] (the caller end) for async code: clone it into as many tasks as you like.
///
/// ```no_run
/// # async fn f() -> tachyon::Result<()> {
/// use std::time::Duration;
/// use tachyon::rpc::{AsyncRpcBus, RpcBus};
/// let bus = AsyncRpcBus::new(RpcBus::connect("/tmp/svc.sock")?);
/// let reply = bus.call_async(b"ping", 1, Some(Duration::from_secs(1))).await?;
/// # Ok(()) }
/// ```
pub struct AsyncRpcBus(Arc<Inner>);

impl Clone for AsyncRpcBus {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(self.0.clone())
    }
}

impl std::fmt::Debug for AsyncRpcBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRpcBus").finish_non_exhaustive()
    }
}

impl AsyncRpcBus {
    /// Wraps the caller end of an RPC bus.
    pub fn new(bus: RpcBus) -> Self {
        let ready = bus.rx_readiness();
        Self(Arc::new(Inner {
            handles: std::sync::atomic::AtomicUsize::new(1),
            bus: Mutex::new(bus),
            ready,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            pump: Mutex::new(None),
        }))
    }

    /// Calls `msg_type` with `payload`; the future completes with the reply's payload, or
    /// the error ([`Error::Rpc`] for an error reply, [`Error::Timeout`] after `timeout`,
    /// [`Error::PeerDead`]). Dropping the future before it completes abandons the call.
    pub fn call_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> AsyncCall<'a> {
        AsyncCall {
            bus: self,
            payload,
            msg_type,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            cid: None,
            done: false,
        }
    }

    /// Calls awaited now.
    pub fn in_flight(&self) -> usize {
        lock(&self.0.bus).in_flight()
    }

    /// Runs `f` on the bus (for its blocking API: notify, streams, statistics).
    pub fn with<R>(&self, f: impl FnOnce(&RpcBus) -> R) -> R {
        f(&lock(&self.0.bus))
    }

    fn start_pump(&self) {
        let mut slot = lock(&self.0.pump);
        if slot.is_some() {
            return;
        }
        let inner = self.0.clone();
        *slot = std::thread::Builder::new()
            .name("tachyon-rpc-pump".into())
            .spawn(move || pump(&inner))
            .ok();
    }
}

impl Drop for AsyncRpcBus {
    /// The last handle stops the pump (which holds the bus until then).
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            lock(&self.0.state).closed = true;
            self.0.wake.notify_all();
            if let Some(t) = lock(&self.0.pump).take() {
                if t.thread().id() != std::thread::current().id() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// The future of [`AsyncRpcBus::call_async`].
#[must_use = "a call future does nothing unless awaited (dropping it abandons the call)"]
pub struct AsyncCall<'a> {
    bus: &'a AsyncRpcBus,
    payload: &'a [u8],
    msg_type: u16,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cid: Option<u64>,
    done: bool,
}

impl std::fmt::Debug for AsyncCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncCall")
            .field("msg_type", &self.msg_type)
            .field("correlation_id", &self.cid)
            .finish_non_exhaustive()
    }
}

impl Future for AsyncCall<'_> {
    type Output = Result<Vec<u8>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &this.bus.0;
        if this.done {
            return Poll::Ready(Err(Error::Protocol(
                "a call future was polled after it completed".into(),
            )));
        }
        let timed_out = this.deadline.is_some_and(|d| Instant::now() >= d);
        let Some(cid) = this.cid else {
            if timed_out {
                this.done = true;
                return Poll::Ready(Err(Error::Timeout(this.timeout.unwrap_or_default())));
            }
            // Lock order everywhere: bus, then state.
            let bus = lock(&inner.bus);
            let mut st = lock(&inner.state);
            if let Some(e) = &st.dead {
                this.done = true;
                return Poll::Ready(Err(e.clone()));
            }
            match bus.call(this.payload, this.msg_type) {
                Ok(cid) => {
                    this.cid = Some(cid);
                    st.calls.insert(
                        cid,
                        Waiting {
                            waker: Some(cx.waker().clone()),
                            deadline: this.deadline,
                            outcome: None,
                        },
                    );
                }
                Err(Error::Full { .. }) => {
                    st.senders.push(cx.waker().clone());
                    if let Some(d) = this.deadline {
                        st.sender_deadline = Some(st.sender_deadline.map_or(d, |x| x.min(d)));
                    }
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
            }
            drop((bus, st));
            if let Some(cid) = this.cid {
                if let Some(outcome) = spin_for_reply(inner, cid) {
                    this.done = true;
                    return Poll::Ready(outcome);
                }
            }
            inner.wake.notify_all();
            this.bus.start_pump();
            return Poll::Pending;
        };
        let mut st = lock(&inner.state);
        let Some(w) = st.calls.get_mut(&cid) else {
            this.done = true;
            return Poll::Ready(Err(Error::Protocol(format!("call {cid} is not awaited"))));
        };
        if let Some(outcome) = w.outcome.take() {
            st.calls.remove(&cid);
            this.done = true;
            return Poll::Ready(outcome);
        }
        if timed_out {
            st.calls.remove(&cid);
            drop(st);
            lock(&inner.bus).abandon(cid);
            this.done = true;
            return Poll::Ready(Err(Error::Timeout(this.timeout.unwrap_or_default())));
        }
        w.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for AsyncCall<'_> {
    /// A call still awaited is abandoned: its reply is dropped when it comes.
    fn drop(&mut self) {
        if let (Some(cid), false) = (self.cid, self.done) {
            let inner = &self.bus.0;
            let bus = lock(&inner.bus);
            let answered =
                lock(&inner.state).calls.remove(&cid).is_some_and(|w| w.outcome.is_some());
            if !answered {
                bus.abandon(cid);
            }
        }
    }
}

/// Looks for call `cid`'s own reply for up to [`FIRST_POLL_SPIN`]; takes it if it came
/// (other replies met meanwhile are kept aside by the bus for the pump).
fn spin_for_reply(inner: &Inner, cid: u64) -> Option<Result<Vec<u8>>> {
    let start = std::time::Instant::now();
    loop {
        {
            let bus = lock(&inner.bus);
            let mut st = lock(&inner.state);
            if let Some(w) = st.calls.get_mut(&cid) {
                if let Some(outcome) = w.outcome.take() {
                    st.calls.remove(&cid);
                    return Some(outcome); // the pump got it first
                }
            }
            let outcome = match bus.wait_with(cid, Wait::new().spin(0).timeout(Duration::ZERO)) {
                Ok(r) => Some(Ok(r.data().to_vec())),
                Err(Error::Timeout(_)) => None,
                Err(e) => Some(Err(e)),
            };
            if let Some(outcome) = outcome {
                st.calls.remove(&cid);
                bus.settle_rx();
                return Some(outcome);
            }
        }
        if start.elapsed() >= FIRST_POLL_SPIN {
            return None;
        }
        std::hint::spin_loop();
    }
}

/// Waits for replies while futures await them; sleeps while none do.
fn pump(inner: &Inner) {
    loop {
        let deadline = {
            let mut st = lock(&inner.state);
            while !st.closed && st.idle() {
                st = inner.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.closed {
                for (_, w) in st.calls.drain() {
                    if let Some(k) = w.waker {
                        k.wake();
                    }
                }
                return;
            }
            st.calls.values().filter_map(|w| w.deadline).chain(st.sender_deadline).min()
        };
        let slice =
            deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()).min(SLICE));
        // Without the bus lock: calls keep going out meanwhile.
        // No spinning: the pump may share a CPU with the tasks it wakes.
        let outcome = inner.ready.wait(Wait::new().spin(0).timeout(slice));
        let bus = lock(&inner.bus);
        let mut st = lock(&inner.state);
        match outcome {
            Ok(()) => {
                if !drain(&bus, &mut st, true) {
                    // Something is in the ring that is not a reply to take (a zero-copy
                    // guard holds it): do not spin on it.
                    drop((bus, st));
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            }
            Err(Error::Timeout(_)) => {
                drain(&bus, &mut st, false);
            }
            Err(e) => {
                drain(&bus, &mut st, false); // what is left in the ring comes first
                for w in st.calls.values_mut() {
                    if w.outcome.is_none() {
                        w.outcome = Some(Err(e.clone()));
                        if let Some(k) = w.waker.take() {
                            k.wake();
                        }
                    }
                }
                st.dead = Some(e);
            }
        }
        // Deadlines (the futures give their calls up when polled), and parked senders.
        let now = Instant::now();
        for w in st.calls.values_mut() {
            if w.outcome.is_none() && w.deadline.is_some_and(|d| d <= now) {
                if let Some(k) = w.waker.take() {
                    k.wake();
                }
            }
        }
        st.sender_deadline = None;
        for k in st.senders.drain(..) {
            k.wake();
        }
    }
}

/// Takes every reply in the ring and completes its future; whether it took anything.
/// `ready`: the ring said it holds a message, which may not be committed for a moment
/// yet, so the first take may spin briefly (bounded) instead of giving up.
fn drain(bus: &RpcBus, st: &mut State, ready: bool) -> bool {
    let mut took = false;
    while bus.in_flight() > bus.streams_in_flight() {
        let wait = if ready && !took {
            Wait::new().spin(2_000).timeout(Duration::from_micros(200))
        } else {
            Wait::new().spin(0).timeout(Duration::ZERO)
        };
        match bus.next_reply_with(wait) {
            Ok(r) => {
                took = true;
                let cid = r.correlation_id();
                let outcome = if r.msg_type() == MSG_TYPE_ERROR {
                    Err(Error::Rpc(RpcError::decode(r.data())))
                } else {
                    Ok(r.data().to_vec())
                };
                drop(r);
                if let Some(w) = st.calls.get_mut(&cid) {
                    w.outcome = Some(outcome);
                    if let Some(k) = w.waker.take() {
                        k.wake();
                    }
                }
            }
            // A reply for an abandoned call: the core consumed and reported it.
            Err(Error::Protocol(_)) => took = true,
            Err(_) => break,
        }
    }
    // A fast-mode consumer publishes how far it read only once it finds the ring empty:
    // look once more, or the readiness would keep reporting the replies taken here.
    bus.settle_rx();
    took
}
