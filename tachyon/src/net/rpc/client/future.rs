//! Awaitable calls over TCP: [`TcpClient::call_async`] returns a [`CallFuture`] that works
//! under any executor (tokio, `futures::executor`, smol), with no runtime dependency.
//!
//! Design, and what it costs: each connection gets one *pump* thread, started by its
//! first future, that reads the socket whenever futures wait on it (taking its turn with
//! blocking waiters, who read for everyone as before). A reply parked for a future wakes
//! that future's waker; a failed connection wakes them all. So a future never polls in a
//! loop, any number of calls from any number of tasks share the connection's window,
//! and replies complete their futures in whatever order they arrive. The price is one
//! thread per connection used asynchronously and one thread hop per reply (the pump
//! wakes the task); the blocking calls keep their zero-hop path.
//!
//! With the `tokio` feature, a future polled inside a tokio runtime does without the
//! pump: the socket is registered with tokio's reactor and the waiting task reads its
//! reply itself ([`super::reactor`]), so a reply costs no thread hop; a process-wide
//! timer thread keeps the deadlines. Outside tokio the same future uses the pump.
//!
//! Deadlines: the pump wakes a future whose deadline passed, which then gives up its
//! call. Cancellation by drop: a future dropped before its reply came abandons the call
//! (a cancel frame tells the server, and the late reply is dropped), freeing its place
//! in the window at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{lock, AsyncWait, Conn, Inbox, TcpClient};
use crate::error::{Error, Result};

enum State {
    /// Not sent yet (the window was full).
    Unsent,
    /// Sent: waiting for the reply to this call.
    Sent(u64),
    /// Returned its result.
    Done,
}

/// The reply to a call made with [`TcpClient::call_async`]: its payload, or the error
/// (the server's error reply as [`Error::Rpc`], [`Error::Timeout`], [`Error::PeerDead`]).
/// Dropping it before it completes cancels the call.
#[must_use = "a call future does nothing unless awaited (dropping it cancels the call)"]
pub struct CallFuture<'a> {
    conn: &'a Arc<Conn>,
    payload: &'a [u8],
    msg_type: u16,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    state: State,
    /// The process-wide timer's hold on our deadline, while we wait on tokio's reactor.
    #[cfg(feature = "tokio")]
    alarm: Option<super::timer::Alarm>,
}

impl std::fmt::Debug for CallFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cid = match self.state {
            State::Sent(cid) => Some(cid),
            _ => None,
        };
        f.debug_struct("CallFuture")
            .field("msg_type", &self.msg_type)
            .field("correlation_id", &cid)
            .finish_non_exhaustive()
    }
}

impl TcpClient {
    /// Calls `msg_type` with `payload`; the future completes with the reply. `timeout`
    /// bounds the whole call (waiting for room in the window included) and is sent to
    /// the server as the call's budget.
    ///
    /// ```no_run
    /// # async fn f(client: &tachyon::net::TcpClient) -> tachyon::Result<()> {
    /// use std::time::Duration;
    /// let reply = client.call_async(b"ping", 1, Some(Duration::from_secs(1))).await?;
    /// # Ok(()) }
    /// ```
    pub fn call_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> CallFuture<'a> {
        let n = self.conns.len();
        let conn = &self.conns[self.next_conn.fetch_add(1, Ordering::Relaxed) % n];
        CallFuture {
            conn,
            payload,
            msg_type,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            state: State::Unsent,
            #[cfg(feature = "tokio")]
            alarm: None,
        }
    }
}

impl CallFuture<'_> {
    fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn timeout_error(&self) -> Error {
        Error::Timeout(self.timeout.unwrap_or_default())
    }

    /// Completes the call if its reply is parked, its connection failed or its deadline
    /// passed; otherwise hands the inbox back, still locked, so the caller registers its
    /// waker before anyone can park the reply.
    fn settle<'g>(
        &mut self,
        cid: u64,
        mut inbox: MutexGuard<'g, Inbox>,
    ) -> std::result::Result<Result<Vec<u8>>, MutexGuard<'g, Inbox>> {
        let conn = self.conn;
        if let Some(r) = inbox.parked.remove(&cid) {
            inbox.wakers.remove(&cid);
            hand_over(&mut inbox, cid);
            if inbox.pending.remove(&cid) {
                conn.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
            conn.wake(inbox);
            self.state = State::Done;
            return Ok(r.map(|(_, data)| data));
        }
        if let Some(dead) = &inbox.dead {
            let e = dead.error(cid);
            inbox.wakers.remove(&cid);
            hand_over(&mut inbox, cid);
            drop(inbox);
            conn.finish(cid);
            self.state = State::Done;
            return Ok(Err(e));
        }
        if self.timed_out() {
            inbox.wakers.remove(&cid);
            hand_over(&mut inbox, cid);
            drop(inbox);
            conn.abandon(cid);
            self.state = State::Done;
            return Ok(Err(self.timeout_error()));
        }
        Err(inbox)
    }

    /// Whether futures polled here wait on tokio's reactor (the `tokio` feature, inside
    /// a tokio runtime).
    fn on_tokio() -> bool {
        #[cfg(feature = "tokio")]
        if tokio::runtime::Handle::try_current().is_ok() {
            return true;
        }
        false
    }

    /// Has the process-wide timer wake us at our deadline (on tokio: no pump does).
    #[cfg(feature = "tokio")]
    fn arm(&mut self, cx: &Context<'_>) {
        let Some(d) = self.deadline else { return };
        // A repoll by the same task keeps its alarm: no lock, no map update.
        if !self.alarm.as_ref().is_some_and(|a| a.covers(d, cx.waker())) {
            self.alarm = Some(super::timer::Alarm::set(d, cx.waker().clone()));
        }
    }

    /// Waits on tokio's reactor: reads the socket itself when it is the watching future,
    /// else waits for its reply to be parked. `None`: tokio cannot watch the socket.
    #[cfg(feature = "tokio")]
    fn poll_on_tokio(&mut self, cid: u64, cx: &mut Context<'_>) -> Option<Poll<Result<Vec<u8>>>> {
        use super::reactor::Watched;
        let conn = self.conn;
        let fd = conn.tokio_fd()?;
        loop {
            let mut inbox = match self.settle(cid, lock(&conn.inbox)) {
                Ok(done) => return Some(Poll::Ready(done)),
                Err(inbox) => inbox,
            };
            let waiter = AsyncWait { waker: cx.waker().clone(), deadline: self.deadline };
            inbox.wakers.insert(cid, waiter);
            if inbox.reading || inbox.fd_watcher.is_some_and(|w| w != cid) {
                // Someone else reads, or watches: they park our reply, and wake us.
                drop(inbox);
                self.arm(cx);
                return Some(Poll::Pending);
            }
            inbox.fd_watcher = Some(cid);
            drop(inbox);
            match conn.watch(&fd, cx) {
                Watched::Progress => {}
                Watched::Pending => {
                    self.arm(cx);
                    return Some(Poll::Pending);
                }
                Watched::Unavailable => {
                    let mut inbox = lock(&conn.inbox);
                    hand_over(&mut inbox, cid);
                    conn.drop_tokio_fd();
                    return None;
                }
            }
        }
    }
}

/// Future `cid` stops waiting: if it watched the socket for the others, another waiting
/// future is woken to take over.
fn hand_over(inbox: &mut super::Inbox, cid: u64) {
    if inbox.fd_watcher == Some(cid) {
        inbox.fd_watcher = None;
        if let Some(w) = inbox.wakers.values().next() {
            w.waker.wake_by_ref();
        }
    }
}

impl Future for CallFuture<'_> {
    type Output = Result<Vec<u8>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let State::Unsent = this.state {
            if this.timed_out() {
                this.state = State::Done;
                return Poll::Ready(Err(this.timeout_error()));
            }
            let budget = this.deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match this.conn.send(this.payload, this.msg_type, Some(Duration::ZERO), budget) {
                Ok(cid) => this.state = State::Sent(cid),
                Err(Error::Full { .. }) => {
                    let mut inbox = lock(&this.conn.inbox);
                    inbox
                        .window_wakers
                        .push(AsyncWait { waker: cx.waker().clone(), deadline: this.deadline });
                    let room =
                        this.conn.in_flight.load(Ordering::Relaxed) < this.conn.max_in_flight;
                    let pump_sleeps = inbox.sleepers > 0;
                    drop(inbox);
                    if room {
                        cx.waker().wake_by_ref(); // a slot freed in between: try again
                    } else if Self::on_tokio() {
                        #[cfg(feature = "tokio")]
                        this.arm(cx);
                    } else if this.deadline.is_some() {
                        start_pump(this.conn); // it wakes us at the deadline
                        if pump_sleeps {
                            this.conn.changed.notify_all();
                        }
                    }
                    return Poll::Pending;
                }
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e));
                }
            }
        }
        let State::Sent(cid) = this.state else {
            return Poll::Ready(Err(Error::Protocol(
                "a call future was polled after it completed".into(),
            )));
        };
        #[cfg(feature = "tokio")]
        if let Some(p) = this.poll_on_tokio(cid, cx) {
            return p;
        }
        let mut inbox = match this.settle(cid, lock(&this.conn.inbox)) {
            Ok(done) => return Poll::Ready(done),
            Err(inbox) => inbox,
        };
        inbox.wakers.insert(cid, AsyncWait { waker: cx.waker().clone(), deadline: this.deadline });
        let pump_sleeps = inbox.sleepers > 0;
        drop(inbox);
        start_pump(this.conn);
        if pump_sleeps {
            this.conn.changed.notify_all();
        }
        Poll::Pending
    }
}

impl Drop for CallFuture<'_> {
    /// A call still in flight is abandoned: the server is told, its reply dropped, and
    /// its place in the window freed.
    fn drop(&mut self) {
        if let State::Sent(cid) = self.state {
            let mut inbox = lock(&self.conn.inbox);
            inbox.wakers.remove(&cid);
            hand_over(&mut inbox, cid);
            drop(inbox);
            self.conn.abandon(cid);
        }
    }
}

/// Starts the connection's pump thread if it is not running.
fn start_pump(conn: &Arc<Conn>) {
    let mut slot = lock(&conn.pump);
    if slot.is_some() || conn.closed.load(Ordering::Acquire) {
        return;
    }
    let c = conn.clone();
    *slot =
        std::thread::Builder::new().name("tachyon-tcp-pump".into()).spawn(move || pump(&c)).ok();
}

/// Reads for the futures of one connection while any wait; sleeps while none do.
fn pump(conn: &Conn) {
    let mut inbox = lock(&conn.inbox);
    loop {
        if conn.closed.load(Ordering::Acquire) {
            for (_, w) in inbox.wakers.drain() {
                w.waker.wake();
            }
            for w in inbox.window_wakers.drain(..) {
                w.waker.wake();
            }
            return;
        }
        // Wake the futures whose deadline passed; they give their calls up when polled.
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut expire = |w: &AsyncWait| match w.deadline {
            Some(d) if d <= now => {
                w.waker.wake_by_ref();
                false
            }
            Some(d) => {
                next = Some(next.map_or(d, |n: Instant| n.min(d)));
                true
            }
            None => true,
        };
        inbox.wakers.retain(|_, w| expire(w));
        inbox.window_wakers.retain(|w| expire(w));
        if inbox.dead.is_some() {
            for (_, w) in inbox.wakers.drain() {
                w.waker.wake();
            }
            for w in inbox.window_wakers.drain(..) {
                w.waker.wake();
            }
        }
        if inbox.wakers.is_empty() && inbox.window_wakers.is_empty() {
            inbox = conn.sleep(inbox, None);
            continue;
        }
        inbox = conn.take_turn(inbox, next.map(|d| (d, Duration::ZERO)));
    }
}
