//! Awaitable receive on a [`Bus`]: [`Bus::recv_async`] (a future of the same zero-copy
//! [`RxGuard`] as `acquire_rx`, borrowed from the bus, so it may be held across
//! `.await`s) and [`Bus::messages`] (a `Stream` of owned messages).
//!
//! Executor-independent: a future that finds the ring empty registers its waker with the
//! bus's *waker thread* (started by the first such future), which sleeps in the ring's
//! futex through [`RxReadiness`] and wakes the task when a message lands, the peer goes,
//! or the bus closes. No future spins; the price is one thread per bus received from
//! asynchronously and one thread hop per wake-up (none while messages are waiting: a
//! future that finds one takes it at once).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::bus::Bus;
use crate::shm::halves::{RxGuard, RxReadiness};
use crate::shm::wait::Wait;
use crate::sync::lock;

/// The waker thread of one bus and the task it wakes.
#[derive(Debug)]
pub(crate) struct RxWaker {
    waker: Mutex<Option<Waker>>,
    changed: Condvar,
    stop: AtomicBool,
}

impl RxWaker {
    fn start(ready: RxReadiness) -> Arc<Self> {
        let me = Arc::new(Self {
            waker: Mutex::new(None),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let w = me.clone();
        let _ = std::thread::Builder::new()
            .name("tachyon-rx-waker".into())
            .spawn(move || w.run(&ready));
        me
    }

    fn run(&self, ready: &RxReadiness) {
        loop {
            {
                let mut slot = lock(&self.waker);
                while slot.is_none() && !self.stop.load(Ordering::Acquire) {
                    slot = self.changed.wait(slot).unwrap_or_else(PoisonError::into_inner);
                }
                if self.stop.load(Ordering::Acquire) {
                    if let Some(w) = slot.take() {
                        w.wake();
                    }
                    return;
                }
            }
            // Without any lock: a message, the peer's end or a close ends the wait.
            // No spinning: this thread may share a CPU with the task it wakes.
            let outcome = ready.wait(Wait::new().spin(0).timeout(Duration::from_millis(200)));
            if matches!(outcome, Err(Error::Timeout(_) | Error::Interrupted)) {
                continue;
            }
            if let Some(w) = lock(&self.waker).take() {
                w.wake();
            }
            if matches!(outcome, Err(Error::Closed)) {
                return; // the bus is gone: nothing will come
            }
            if outcome.is_err() {
                // The peer is gone: the task learns it from its next try; do not spin.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn register(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        let was_empty = slot.is_none();
        *slot = Some(waker.clone());
        if was_empty {
            self.changed.notify_all();
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _slot = lock(&self.waker);
        self.changed.notify_all();
    }
}

/// The future of [`Bus::recv_async`].
#[must_use = "a receive future does nothing unless awaited"]
#[derive(Debug)]
pub struct RecvFuture<'a> {
    bus: &'a Bus,
}

impl<'a> std::future::Future for RecvFuture<'a> {
    type Output = Result<RxGuard<'a>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let bus = self.bus;
        match bus.try_recv() {
            Ok(Some(g)) => Poll::Ready(Ok(g)),
            Ok(None) => {
                // Registered before looking again: a message that lands in between is
                // seen now or wakes us.
                bus.rx_waker().register(cx.waker());
                match bus.try_recv() {
                    Ok(Some(g)) => Poll::Ready(Ok(g)),
                    Ok(None) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// An owned message of [`Bus::messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Its type id.
    pub type_id: u32,
    /// Its payload.
    pub data: Vec<u8>,
}

/// The stream of [`Bus::messages`]: each message copied out, in order; it ends when the
/// peer closes the bus, and yields the error (then ends) when the peer dies.
#[derive(Debug)]
pub struct Messages<'a> {
    bus: &'a Bus,
    done: bool,
}

impl futures_core::Stream for Messages<'_> {
    type Item = Result<OwnedMessage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut fut = RecvFuture { bus: self.bus };
        match Pin::new(&mut fut).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(g)) => {
                let m = OwnedMessage { type_id: g.type_id(), data: g.data().to_vec() };
                drop(g); // commits: the slot is free for the producer
                Poll::Ready(Some(Ok(m)))
            }
            Poll::Ready(Err(Error::PeerClosed | Error::Closed)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

use std::future::Future as _;

impl Bus {
    /// Waits for the next message without blocking a thread: the same zero-copy guard as
    /// [`Bus::acquire_rx`] (commit by dropping it), under any executor.
    ///
    /// ```no_run
    /// # async fn f(bus: &tachyon::Bus) -> tachyon::Result<()> {
    /// let msg = bus.recv_async().await?;
    /// println!("{} bytes of type {}", msg.data().len(), msg.type_id());
    /// # Ok(()) }
    /// ```
    pub fn recv_async(&self) -> RecvFuture<'_> {
        RecvFuture { bus: self }
    }

    /// The messages as a `Stream`, each copied out (`futures::StreamExt::next` to take
    /// them); it ends when the peer closes the bus.
    pub fn messages(&self) -> Messages<'_> {
        Messages { bus: self, done: false }
    }

    fn rx_waker(&self) -> &RxWaker {
        self.async_rx.get_or_init(|| RxWaker::start(self.rx_readiness()))
    }
}
