//! The epoll reactor: the fallback where io_uring is missing or forbidden. Non-blocking
//! sockets, level-triggered readiness, one loop per reactor thread: wait, accept, read
//! and hand bytes to the service's sessions, then write every connection's coalesced
//! output.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::net::reactor::service::{ConnId, Mailbox, Service, Session};
use crate::net::reactor::socket::tune;
use crate::net::reactor::waker::Waker;

const LISTENER: u64 = 0;
const WAKER: u64 = 1;
const FIRST_CONN: u64 = 2;
/// How often timers (hello and read timeouts) are checked.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// How long a graceful shutdown waits for clients to take their last replies.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

struct Slot<T> {
    fd: OwnedFd,
    conn: T,
    generation: u32,
    reading: bool,
    writing: bool,
    /// The peer sent EOF; the session closes once its output is sent.
    eof: bool,
}

/// Runs one reactor on `listener` until the server stops.
pub(crate) fn run<S: Service>(listener: &OwnedFd, shared: &S, waker: &Waker) -> Result<()> {
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
        finished: Arc::new(Mailbox::new(waker.clone())),
        turn: S::Turn::default(),
    };
    shared.started(&r.finished);
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
        if shared.common().stopping.load(Ordering::Relaxed) && drain_until.is_none() {
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
                shared.turn_end(&mut r.turn);
                return Ok(());
            }
        }
        shared.turn_end(&mut r.turn);
    }
}

struct Reactor<'a, S: Service> {
    ep: OwnedFd,
    shared: &'a S,
    slots: Vec<Option<Slot<S::Session>>>,
    free: Vec<usize>,
    buf: Vec<u8>,
    generation: u32,
    /// What other threads posted (worker replies, writes from JavaScript).
    finished: Arc<Mailbox<S::Message>>,
    /// What the service gathers this loop turn.
    turn: S::Turn,
}

impl<S: Service> Reactor<'_, S> {
    /// Hands every posted message to its connection (dropped if it closed since).
    fn take_finished(&mut self, done: &mut Vec<S::Message>) {
        self.finished.take(done);
        for d in done.drain(..) {
            let to = S::target(&d);
            let slot = self.slots.get_mut(to.slot).and_then(Option::as_mut);
            if let Some(s) = slot.filter(|s| s.generation == to.generation) {
                self.shared.deliver(&mut s.conn, d);
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
                    self.shared.report_error(&Error::io("accept a TCP connection", e));
                    return;
                }
            };
            self.admit(fd);
        }
    }

    fn admit(&mut self, fd: OwnedFd) {
        let common = self.shared.common();
        let stats = &common.stats;
        if stats.active.get() >= common.max_connections as u64 {
            stats.refused.add(1);
            self.shared.refuse(&fd);
            return;
        }
        tune(&fd, common.dead_peer);
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let Some(conn) =
            self.shared.admit(ConnId { slot: i, generation }, &fd, &self.finished, &mut self.turn)
        else {
            self.free.push(i);
            return;
        };
        let token = epoll::EventData::new_u64(FIRST_CONN + i as u64);
        if let Err(e) =
            epoll::add(&self.ep, &fd, token, epoll::EventFlags::IN | epoll::EventFlags::RDHUP)
        {
            self.shared.report_error(&Error::io("register a connection", e));
            self.free.push(i);
            return;
        }
        stats.accepted.add(1);
        stats.active.add(1);
        self.slots[i] =
            Some(Slot { fd, conn, generation, reading: true, writing: false, eof: false });
    }

    fn on_conn(&mut self, i: usize, flags: epoll::EventFlags) {
        let Some(Some(slot)) = self.slots.get_mut(i) else { return };
        if flags.intersects(
            epoll::EventFlags::IN
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::HUP
                | epoll::EventFlags::ERR,
        ) && slot.reading
            && !slot.eof
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
                        self.shared.on_bytes(
                            &mut slot.conn,
                            id,
                            &self.finished,
                            &mut self.turn,
                            &self.buf[..n],
                        );
                        if n < self.buf.len() || slot.conn.is_closing() || !slot.conn.wants_read() {
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
            self.shared.report(&mut slot.conn);
            if eof {
                if slot.conn.on_eof() {
                    self.close(i);
                    return;
                }
                slot.eof = true;
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
            if dead || (slot.conn.is_closing() && slot.conn.output().is_empty()) {
                self.close(i);
                continue;
            }
            let reading = slot.conn.wants_read() && !slot.eof;
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
        self.shared.on_close(&mut slot.conn, slot.fd.as_fd(), &mut self.turn);
        self.shared.common().stats.active.sub(1);
        self.free.push(i);
    }
}
