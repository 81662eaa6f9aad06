//! The epoll reactor: the fallback where io_uring is missing or forbidden. Non-blocking
//! sockets, level-triggered readiness, one loop per reactor thread: wait, accept, read
//! and dispatch (through [`Conn`]), then write every connection's coalesced replies.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::net::conn::Conn;
use crate::net::frame::{Goaway, GoawayCode};
use crate::net::pool::{ConnId, Done, Finished};
use crate::net::server::{tune, Shared};
use crate::net::waker::Waker;

const LISTENER: u64 = 0;
const WAKER: u64 = 1;
const FIRST_CONN: u64 = 2;
/// How often timers (hello and read timeouts) are checked.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// How long a graceful shutdown waits for clients to take their last replies.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

struct Slot {
    fd: OwnedFd,
    conn: Conn,
    generation: u32,
    reading: bool,
    writing: bool,
    reported: (u64, u64),
}

/// Runs one reactor on `listener` until the server stops.
pub(crate) fn run(listener: &OwnedFd, shared: &Shared, waker: &Waker) -> Result<()> {
    let ep =
        epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("create epoll", e))?;
    let io = |e| Error::io("register with epoll", e);
    epoll::add(&ep, listener, epoll::EventData::new_u64(LISTENER), epoll::EventFlags::IN)
        .map_err(io)?;
    epoll::add(&ep, waker.fd(), epoll::EventData::new_u64(WAKER), epoll::EventFlags::IN)
        .map_err(io)?;
    let mut r = Reactor {
        ep,
        shared,
        slots: Vec::new(),
        free: Vec::new(),
        buf: vec![0; 64 << 10],
        generation: 0,
        finished: Arc::new(Finished::new(waker.clone())),
    };
    let mut done = Vec::new();
    let empty =
        epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
    let mut events = vec![empty; 256];
    let mut next_tick = Instant::now() + TICK;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let wait = next_tick.saturating_duration_since(now).min(TICK);
        let ts = rustix::time::Timespec::try_from(wait)
            .unwrap_or(rustix::time::Timespec { tv_sec: 0, tv_nsec: 1 });
        let n = match epoll::wait(&r.ep, &mut events[..], Some(&ts)) {
            Ok(n) => n,
            Err(Errno::INTR) => 0,
            Err(e) => return Err(Error::io("epoll_wait", e)),
        };
        for ev in &events[..n] {
            match ev.data.u64() {
                LISTENER => r.accept_all(listener),
                WAKER => waker.drain(),
                t => r.on_conn(usize::try_from(t - FIRST_CONN).unwrap_or(usize::MAX), ev.flags),
            }
        }
        r.take_finished(&mut done);
        let now = Instant::now();
        if shared.stopping.load(Ordering::Relaxed) && drain_until.is_none() {
            let _ = epoll::delete(&r.ep, listener);
            for i in 0..r.slots.len() {
                if let Some(s) = r.slots[i].as_mut() {
                    s.conn.shutdown();
                }
            }
            drain_until = Some(now + DRAIN);
        }
        if now >= next_tick {
            next_tick = now + TICK;
            for s in r.slots.iter_mut().flatten() {
                s.conn.check_timeouts(now);
            }
        }
        r.flush_all();
        if let Some(until) = drain_until {
            if r.slots.iter().all(Option::is_none) || now >= until {
                for i in 0..r.slots.len() {
                    r.close(i);
                }
                return Ok(());
            }
        }
    }
}

struct Reactor<'a> {
    ep: OwnedFd,
    shared: &'a Shared,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    buf: Vec<u8>,
    generation: u32,
    /// Replies from the worker pool.
    finished: Arc<Finished>,
}

impl Reactor<'_> {
    /// Queues the replies workers finished on their connections.
    fn take_finished(&mut self, done: &mut Vec<Done>) {
        if self.shared.pool.is_none() {
            return;
        }
        self.finished.take(done);
        for d in done.drain(..) {
            let slot = self.slots.get_mut(d.conn.slot).and_then(Option::as_mut);
            if let Some(s) = slot.filter(|s| s.generation == d.conn.generation) {
                s.conn.finished(d.correlation_id, d.type_id, &d.response, d.last);
            }
        }
    }

    fn accept_all(&mut self, listener: &OwnedFd) {
        loop {
            let fd = match rustix::net::accept_with(
                listener,
                rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
            ) {
                Ok(fd) => fd,
                Err(Errno::AGAIN | Errno::INTR) => return,
                Err(Errno::CONNABORTED) => continue,
                Err(e) => {
                    self.shared.report(&Error::io("accept a TCP connection", e));
                    return;
                }
            };
            self.admit(fd);
        }
    }

    fn admit(&mut self, fd: OwnedFd) {
        let stats = &self.shared.stats;
        if stats.active.load(Ordering::Relaxed) >= self.shared.opts.max_connections as u64 {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            let bye = Goaway {
                last_cid: 0,
                code: GoawayCode::TooManyConnections,
                message: "the server is at its connection limit".into(),
            };
            let _ = rustix::net::send(
                &fd,
                &bye.frame(),
                rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
            );
            return;
        }
        tune(&fd, self.shared.opts.dead_peer_timeout);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.active.fetch_add(1, Ordering::Relaxed);
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let token = epoll::EventData::new_u64(FIRST_CONN + i as u64);
        if let Err(e) =
            epoll::add(&self.ep, &fd, token, epoll::EventFlags::IN | epoll::EventFlags::RDHUP)
        {
            self.shared.report(&Error::io("register a connection", e));
            stats.active.fetch_sub(1, Ordering::Relaxed);
            self.free.push(i);
            return;
        }
        let Some(conn) = self.shared.new_conn() else { return };
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.slots[i] =
            Some(Slot { fd, conn, generation, reading: true, writing: false, reported: (0, 0) });
    }

    fn on_conn(&mut self, i: usize, flags: epoll::EventFlags) {
        let Some(Some(slot)) = self.slots.get_mut(i) else { return };
        if flags.intersects(
            epoll::EventFlags::IN
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::HUP
                | epoll::EventFlags::ERR,
        ) && slot.reading
        {
            let mut eof = false;
            // Bounded, so one busy client cannot starve the others.
            for _ in 0..16 {
                match rustix::io::read(&slot.fd, &mut self.buf[..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        let id = ConnId { slot: i, generation: slot.generation };
                        self.shared.on_bytes(&mut slot.conn, id, &self.finished, &self.buf[..n]);
                        if n < self.buf.len() || slot.conn.closing().is_some() {
                            break;
                        }
                    }
                    Err(Errno::AGAIN | Errno::INTR) => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            report_counts(self.shared, &slot.conn, &mut slot.reported);
            if eof {
                self.close(i);
                return;
            }
        }
        if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR)
            && !flags.contains(epoll::EventFlags::IN)
        {
            self.close(i);
        }
    }

    /// Writes what every connection has to send, updates interests, closes the done.
    fn flush_all(&mut self) {
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].as_mut() else { continue };
            let mut dead = false;
            while !slot.conn.output().is_empty() {
                match rustix::net::send(
                    &slot.fd,
                    slot.conn.output(),
                    rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
                ) {
                    Ok(n) => slot.conn.sent(n),
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            if dead || (slot.conn.closing().is_some() && slot.conn.output().is_empty()) {
                self.close(i);
                continue;
            }
            let reading = slot.conn.wants_read();
            let writing = !slot.conn.output().is_empty();
            if (reading, writing) != (slot.reading, slot.writing) {
                let mut f = epoll::EventFlags::RDHUP;
                if reading {
                    f |= epoll::EventFlags::IN;
                }
                if writing {
                    f |= epoll::EventFlags::OUT;
                }
                let _ = epoll::modify(
                    &self.ep,
                    &slot.fd,
                    epoll::EventData::new_u64(FIRST_CONN + i as u64),
                    f,
                );
                slot.reading = reading;
                slot.writing = writing;
            }
        }
    }

    fn close(&mut self, i: usize) {
        let Some(mut slot) = self.slots.get_mut(i).and_then(Option::take) else { return };
        let _ = epoll::delete(&self.ep, slot.fd.as_fd());
        report_counts(self.shared, &slot.conn, &mut slot.reported);
        report_close(self.shared, &slot.conn, slot.fd.as_fd());
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
        self.free.push(i);
    }
}

/// Adds what a connection did since the last report (`reported`: requests, pauses) to
/// the server's counters.
pub(crate) fn report_counts(shared: &Shared, conn: &Conn, reported: &mut (u64, u64)) {
    let (req, paused) = (conn.counts.requests, conn.counts.paused);
    shared.stats.requests.fetch_add(req - reported.0, Ordering::Relaxed);
    shared.stats.paused.fetch_add(paused - reported.1, Ordering::Relaxed);
    *reported = (req, paused);
}

/// Counts and reports a connection closed for breaking the protocol.
pub(crate) fn report_close(shared: &Shared, conn: &Conn, fd: std::os::fd::BorrowedFd<'_>) {
    if let Some(c) = conn.closing() {
        if c.code != GoawayCode::Shutdown {
            shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            let peer = rustix::net::getpeername(fd)
                .ok()
                .flatten()
                .and_then(|a| std::net::SocketAddr::try_from(a).ok());
            let who = peer.map_or_else(|| "a client".to_owned(), |p| p.to_string());
            shared
                .report(&Error::Protocol(format!("closed the connection of {who}: {}", c.reason)));
        }
    }
}
