//! The reading side of a client connection: whoever waits reads the socket for
//! everyone (one reader at a time), parks each reply for its owner and wakes it; stream
//! items queue per call; a silent server is pinged and, past the dead-peer bound,
//! declared dead.

use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::{leak, lock, Conn, DeadReason, Inbox, Reader, ReplyOutcome, StreamEvent};
use crate::error::{Error, Result};
use crate::net::rpc::frame::{Goaway, GoawayCode, Header, Kind, Step};
use crate::rpc::{RpcError, MSG_TYPE_ERROR, MSG_TYPE_STREAM_END};

impl Conn {
    /// Sleeps on `changed` (up to `left`), counted in `sleepers`.
    pub(super) fn sleep<'a>(
        &self,
        mut inbox: MutexGuard<'a, Inbox>,
        left: Option<Duration>,
    ) -> MutexGuard<'a, Inbox> {
        inbox.sleepers += 1;
        let mut inbox = match left {
            Some(left) => {
                self.changed.wait_timeout(inbox, left).unwrap_or_else(PoisonError::into_inner).0
            }
            None => self.changed.wait(inbox).unwrap_or_else(PoisonError::into_inner),
        };
        inbox.sleepers -= 1;
        inbox
    }

    /// Wakes the sleepers, if any (after a change made under `inbox`).
    pub(super) fn wake(&self, mut inbox: MutexGuard<'_, Inbox>) {
        let any = inbox.sleepers > 0;
        let window = std::mem::take(&mut inbox.window_wakers);
        if inbox.dead.is_some() {
            for (_, w) in inbox.wakers.drain() {
                w.waker.wake();
            }
        }
        drop(inbox);
        for w in window {
            w.waker.wake();
        }
        if any {
            self.changed.notify_all();
        }
    }

    pub(super) fn finish(&self, cid: u64) {
        let mut inbox = lock(&self.inbox);
        if inbox.pending.remove(&cid) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.wake(inbox);
    }

    pub(super) fn abandon(&self, cid: u64) {
        let mut inbox = lock(&self.inbox);
        let was_pending = inbox.pending.remove(&cid);
        if inbox.parked.remove(&cid).is_none() && was_pending {
            inbox.abandoned.insert(cid);
        }
        if was_pending {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        let dead = inbox.dead.is_some();
        self.wake(inbox);
        if was_pending && !dead {
            self.send_control(Kind::Cancel, cid);
        }
    }

    /// Ends stream `cid` in the inbox: it no longer holds a slot of the window.
    pub(super) fn end_stream(&self, inbox: &mut Inbox, cid: u64) {
        inbox.streams.remove(&cid);
        if inbox.pending.remove(&cid) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn cancel_stream(&self, cid: u64) {
        let mut inbox = lock(&self.inbox);
        let (open, dead) = (inbox.pending.contains(&cid), inbox.dead.is_some());
        let Some(q) = inbox.streams.get_mut(&cid) else { return };
        if !open || dead {
            // Its end has arrived already (or never will): nothing to tell the server.
            self.end_stream(&mut inbox, cid);
            return self.wake(inbox);
        }
        q.cancelled = true;
        q.events.clear();
        drop(inbox);
        self.send_control(Kind::Cancel, cid);
    }

    /// Waits for the next item of stream `cid`, reading the socket if nobody else is.
    pub(super) fn next_item(
        &self,
        cid: u64,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Option<Vec<u8>>> {
        let mut inbox = lock(&self.inbox);
        loop {
            let Some(q) = inbox.streams.get_mut(&cid).filter(|q| !q.cancelled) else {
                return Err(Error::Protocol(format!(
                    "correlation id {cid} is not a stream in flight on this client"
                )));
            };
            match q.events.pop_front() {
                Some(StreamEvent::Item(item)) => return Ok(Some(item)),
                Some(StreamEvent::End) => {
                    self.end_stream(&mut inbox, cid);
                    return Ok(None);
                }
                Some(StreamEvent::Failed(e)) => {
                    self.end_stream(&mut inbox, cid);
                    return Err(e);
                }
                None => {}
            }
            if let Some(d) = &inbox.dead {
                let e = d.error(cid);
                self.end_stream(&mut inbox, cid);
                self.wake(inbox);
                return Err(e);
            }
            if let Some((at, t)) = deadline {
                if Instant::now() >= at {
                    return Err(Error::Timeout(t));
                }
            }
            inbox = self.take_turn(inbox, deadline);
        }
    }

    /// Sleeps while another thread reads the socket, or reads it once: what arrives is
    /// parked for its owners, and the sleepers are woken to look.
    pub(super) fn take_turn<'a>(
        &'a self,
        mut inbox: MutexGuard<'a, Inbox>,
        deadline: Option<(Instant, Duration)>,
    ) -> MutexGuard<'a, Inbox> {
        if inbox.reading {
            let until = deadline.map(|(at, _)| at.saturating_duration_since(Instant::now()));
            return self.sleep(inbox, until);
        }
        inbox.reading = true;
        drop(inbox);
        let outcome = self.read_once(deadline.map(|(at, _)| at));
        let mut inbox = lock(&self.inbox);
        inbox.reading = false;
        if let Err(why) = outcome {
            if inbox.dead.is_none() {
                inbox.dead = Some(why);
            }
            for (_, w) in inbox.wakers.drain() {
                w.waker.wake();
            }
        }
        // A future watching the socket through tokio may have found us reading and
        // stopped watching: it looks again.
        if let Some(w) = inbox.fd_watcher.and_then(|cid| inbox.wakers.get(&cid)) {
            w.waker.wake_by_ref();
        }
        if inbox.sleepers > 0 {
            self.changed.notify_all();
        }
        inbox
    }

    pub(super) fn fail(&self, why: DeadReason) {
        let mut inbox = lock(&self.inbox);
        if inbox.dead.is_none() {
            inbox.dead = Some(why);
        }
        self.wake(inbox);
    }

    /// Waits for `cid`'s reply, reading the socket if nobody else is.
    pub(super) fn wait(&self, cid: u64, deadline: Option<(Instant, Duration)>) -> ReplyOutcome {
        let mut inbox = lock(&self.inbox);
        loop {
            if let Some(r) = inbox.parked.remove(&cid) {
                // `finish`, under the lock already held.
                if inbox.pending.remove(&cid) {
                    self.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                self.wake(inbox);
                return r;
            }
            if !inbox.pending.contains(&cid) {
                return Err(Error::Protocol(format!(
                    "correlation id {cid} is not in flight on this client"
                )));
            }
            if let Some(d) = &inbox.dead {
                let e = d.error(cid);
                drop(inbox);
                self.finish(cid);
                return Err(e);
            }
            if let Some((at, t)) = deadline {
                if Instant::now() >= at {
                    return Err(Error::Timeout(t));
                }
            }
            inbox = self.take_turn(inbox, deadline);
        }
    }

    /// One read: waits for bytes (until `deadline`, or a ping interval), then parses and
    /// parks every complete frame. `Err` when the connection is finished.
    pub(super) fn read_once(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), DeadReason> {
        self.read_some(deadline, false).map(|_| ())
    }

    /// Reads once and handles what arrived. Blocking (within the receive timeout, the
    /// watchdog running when it passes), or with `nonblocking` returning `Ok(false)`
    /// at once when nothing is there (`Ok(true)`: something was read, or the deadline
    /// passed).
    pub(super) fn read_some(
        &self,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> std::result::Result<bool, DeadReason> {
        let ping_every = (self.dead_peer / 4).max(Duration::from_millis(50));
        let mut reader = lock(&self.reader);
        // The receive timeout: the ping interval, or less when the deadline is nearer.
        // Rounded down to a power of two of milliseconds, so calls with similar budgets
        // reuse the socket's setting instead of paying a syscall each.
        let want = match deadline {
            None => ping_every,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(true);
                }
                if left >= ping_every {
                    ping_every
                } else {
                    let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                    if ms == 0 {
                        left
                    } else {
                        Duration::from_millis(1 << ms.ilog2())
                    }
                }
            }
        };
        if !nonblocking && (reader.timeout > want || reader.timeout < want / 2) {
            rustix::net::sockopt::set_socket_timeout(
                &self.sock,
                rustix::net::sockopt::Timeout::Recv,
                Some(want.max(Duration::from_micros(1))),
            )
            .map_err(|_| DeadReason::Dead("setting the receive timeout failed"))?;
            reader.timeout = want;
        }
        let Reader { chunk, plain, .. } = &mut *reader;
        let flags = if nonblocking {
            rustix::net::RecvFlags::DONTWAIT
        } else {
            rustix::net::RecvFlags::empty()
        };
        let n = match rustix::net::recv(&self.sock, &mut chunk[..], flags) {
            Ok((0, _)) => return Err(self.eof_reason()),
            Ok((n, _)) => n,
            Err(Errno::AGAIN) if nonblocking => return Ok(false),
            Err(Errno::AGAIN) => return self.watchdog().map(|()| true),
            Err(Errno::INTR) => return Ok(true),
            Err(_) => return Err(DeadReason::Dead("the connection to the server was reset")),
        };
        let fresh: &[u8] = match &self.tls {
            None => &chunk[..n],
            Some(tls) => {
                plain.clear();
                let opened = crate::net::tls::open_client(&mut lock(tls), &chunk[..n], plain);
                if let Err(e) = opened {
                    return Err(DeadReason::Dead(leak(&format!("the TLS session failed: {e}"))));
                }
                plain
            }
        };
        let mut inbox = lock(&self.inbox);
        inbox.last_rx = Some(Instant::now());
        inbox.ping_sent = None;
        // Frames are parsed straight from the receive buffer; only a frame cut by the
        // end of this read is copied, to wait for the rest.
        let carried = std::mem::take(&mut inbox.buf);
        let joined;
        let bytes: &[u8] = if carried.is_empty() {
            fresh
        } else {
            let mut v = carried;
            v.extend_from_slice(fresh);
            joined = v;
            &joined
        };
        let mut at = 0;
        let mut result = Ok(());
        loop {
            match self.decoder.next(&bytes[at..]) {
                Ok(Step::Frame { header, payload, used }) => {
                    at += used;
                    if let Err(why) = self.on_frame(&mut inbox, &header, payload) {
                        result = Err(why);
                        break;
                    }
                }
                Ok(Step::Partial) => break,
                Err(e) => {
                    result =
                        Err(DeadReason::Dead(leak(&format!("the server sent a bad frame: {e}"))));
                    break;
                }
            }
        }
        inbox.buf = bytes[at..].to_vec();
        result.map(|()| true)
    }

    pub(super) fn on_frame(
        &self,
        inbox: &mut Inbox,
        h: &Header,
        payload: &[u8],
    ) -> std::result::Result<(), DeadReason> {
        match h.kind {
            Kind::Reply => {
                let cid = h.correlation_id;
                if let Some(q) = inbox.streams.get_mut(&cid) {
                    let mt = h.msg_type();
                    let last = mt == MSG_TYPE_STREAM_END || mt == MSG_TYPE_ERROR;
                    if !q.cancelled {
                        q.events.push_back(match mt {
                            MSG_TYPE_STREAM_END => StreamEvent::End,
                            MSG_TYPE_ERROR => {
                                StreamEvent::Failed(Error::Rpc(RpcError::decode(payload)))
                            }
                            _ => StreamEvent::Item(payload.to_vec()),
                        });
                        // The slot is freed when the reader takes the end.
                    } else if last {
                        self.end_stream(inbox, cid);
                    }
                    return Ok(());
                }
                if inbox.abandoned.remove(&cid) {
                    return Ok(()); // its caller gave up
                }
                if !inbox.pending.contains(&cid) || inbox.parked.contains_key(&cid) {
                    tracing::warn!(target: "tachyon", correlation_id = cid, "dropped a TCP reply for a call that is not in flight");
                    return Ok(());
                }
                let mt = h.msg_type();
                let outcome = if mt == MSG_TYPE_ERROR {
                    Err(Error::Rpc(RpcError::decode(payload)))
                } else {
                    Ok((mt, payload.to_vec()))
                };
                inbox.parked.insert(cid, outcome);
                if let Some(w) = inbox.wakers.remove(&cid) {
                    w.waker.wake();
                }
                Ok(())
            }
            Kind::Ping => {
                self.send_control(Kind::Pong, h.correlation_id);
                Ok(())
            }
            Kind::Pong => Ok(()),
            Kind::Goaway => {
                let g = Goaway::decode(payload);
                Err(match g.code {
                    GoawayCode::Shutdown => DeadReason::Goaway(g.last_cid, g.message),
                    _ => DeadReason::Dead(leak(&format!(
                        "the server closed the connection: {}",
                        g.message
                    ))),
                })
            }
            k => Err(DeadReason::Dead(leak(&format!("the server sent an unexpected {k:?} frame")))),
        }
    }

    /// Nothing arrived for a while: ping the server if calls are outstanding, and call it
    /// dead if it stays silent past the bound.
    pub(super) fn watchdog(&self) -> std::result::Result<(), DeadReason> {
        let mut inbox = lock(&self.inbox);
        if inbox.pending.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let last = *inbox.last_rx.get_or_insert(now);
        if now.duration_since(last) >= self.dead_peer {
            return Err(DeadReason::Dead(
                "the server stopped answering (no pong within the dead-peer bound)",
            ));
        }
        if inbox.ping_sent.is_none() {
            inbox.ping_sent = Some(now);
            drop(inbox);
            self.send_control(Kind::Ping, 1);
        }
        Ok(())
    }

    pub(super) fn eof_reason(&self) -> DeadReason {
        match &lock(&self.inbox).dead {
            Some(d @ DeadReason::Goaway(..)) => d.clone(),
            _ => DeadReason::Dead("the server closed the connection"),
        }
    }
}
