//! The io_uring reactor. One ring per reactor thread, set up `SINGLE_ISSUER |
//! DEFER_TASKRUN` where the kernel has it. One multishot accept on the listener; one
//! multishot receive per connection, into a provided buffer ring, so a frame is parsed
//! straight out of the buffer the kernel filled; replies coalesced per loop turn into
//! one send per connection (`SEND_ZC` for large ones, where supported). Each loop turn
//! submits once and drains every completion.
//!
//! A completion's `user_data` names the operation and the connection:
//! `generation << 32 | slot << 8 | op`, so a completion for a slot closed and reused
//! since is recognised and ignored.
//!
//! Backpressure: a connection whose unsent replies pass the high-water mark has its
//! multishot receive cancelled; TCP's own flow control then pushes back on the client.
//! The receive is re-armed once the replies drain below the low-water mark.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::error::{Error, Result};
use crate::net::reactor::bufring::BufRing;
use crate::net::reactor::epoll::{DRAIN, TICK};
use crate::net::reactor::service::{ConnId, Mailbox, Service, Session};
use crate::net::reactor::socket::tune;
use crate::net::reactor::waker::Waker;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_SEND_ZC: u64 = 4;
const OP_WAKE: u64 = 5;
const OP_CANCEL: u64 = 6;
/// Replies at least this large go out with `SEND_ZC` (where supported).
const ZC_THRESHOLD: usize = 64 << 10;
const BUF_COUNT: u16 = 512;
const BUF_SIZE: usize = 16 << 10;
const BGID: u16 = 1;

fn ud(slot: usize, generation: u32, op: u64) -> u64 {
    (u64::from(generation) << 32) | ((slot as u64) << 8) | op
}

fn split(ud: u64) -> (usize, u32, u64) {
    (((ud >> 8) & 0xFF_FFFF) as usize, (ud >> 32) as u32, ud & 0xFF)
}

/// An outgoing buffer the kernel may still read from.
struct Sending {
    buf: Vec<u8>,
    off: usize,
    /// A send submitted whose completion has not come yet.
    in_flight: bool,
    /// A zero-copy send whose notification has not come yet (the kernel may still read
    /// the buffer).
    zc_notif_pending: bool,
}

// Four independent flags, each tracking one kernel operation or decision.
#[allow(clippy::struct_excessive_bools)]
struct Slot<T> {
    fd: OwnedFd,
    conn: T,
    generation: u32,
    recv_armed: bool,
    cancel_sent: bool,
    sending: Option<Sending>,
    /// The reactor decided to close it (after in-flight operations end).
    closing: bool,
    /// The peer sent EOF; the session closes once its output is sent.
    eof: bool,
}

struct Reactor<'a, S: Service> {
    // Field order matters: the ring goes first (its close unregisters the buffer ring)
    // before the buffers are unmapped.
    ring: IoUring,
    bufs: BufRing,
    shared: &'a S,
    slots: Vec<Option<Slot<S::Session>>>,
    free: Vec<usize>,
    generation: u32,
    zc: bool,
    wake_buf: Box<[u8; 8]>,
    accept_armed: bool,
    stopping: bool,
    /// What other threads posted (worker replies, writes from JavaScript).
    finished: Arc<Mailbox<S::Message>>,
    /// What the service gathers this loop turn.
    turn: S::Turn,
}

fn build_ring() -> Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(1024)
        .or_else(|_| IoUring::builder().setup_cqsize(8192).build(1024))
        .map_err(|e| Error::io("create an io_uring", e))
}

/// Runs one io_uring reactor on `listener` until the server stops.
pub(crate) fn run<S: Service>(listener: &OwnedFd, shared: &S, waker: &Waker) -> Result<()> {
    let ring = build_ring()?;
    let bufs = BufRing::new(&ring, BGID, BUF_COUNT, BUF_SIZE)?;
    let mut r = Reactor {
        ring,
        bufs,
        shared,
        slots: Vec::new(),
        free: Vec::new(),
        generation: 1,
        zc: crate::net::reactor::probe::has("SendZc"),
        wake_buf: Box::new([0; 8]),
        accept_armed: false,
        stopping: false,
        finished: Arc::new(Mailbox::new(waker.clone())),
        turn: S::Turn::default(),
    };
    shared.started(&r.finished);
    let mut done = Vec::new();
    r.arm_accept(listener.as_raw_fd())?;
    r.arm_wake(waker.fd().as_raw_fd())?;
    let mut next_tick = Instant::now() + TICK;
    let mut drain_until: Option<Instant> = None;
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now()).min(TICK);
        let ts = types::Timespec::new().sec(wait.as_secs()).nsec(wait.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match r.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {
            }
            Err(e) => return Err(Error::io("io_uring_enter", e)),
        }
        cqes.clear();
        cqes.extend(r.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        for &(data, res, flags) in &cqes {
            r.on_completion(data, res, flags, listener.as_raw_fd(), waker)?;
        }
        r.take_finished(&mut done);
        let now = Instant::now();
        if shared.common().stopping.load(Ordering::Relaxed) && !r.stopping {
            r.stopping = true;
            if r.accept_armed {
                r.push(
                    &opcode::AsyncCancel::new(ud(0, 0, OP_ACCEPT))
                        .build()
                        .user_data(ud(0, 0, OP_CANCEL)),
                )?;
            }
            for s in r.slots.iter_mut().flatten() {
                s.conn.shutdown();
            }
            drain_until = Some(now + DRAIN);
        }
        if now >= next_tick {
            next_tick = now + TICK;
            for s in r.slots.iter_mut().flatten() {
                s.conn.check_timeouts(now);
            }
        }
        r.step_all()?;
        shared.turn_end(&mut r.turn);
        if let Some(until) = drain_until {
            if r.slots.iter().all(Option::is_none) {
                return Ok(());
            }
            if now >= until {
                // Clients that did not take their last replies in time: cut them off,
                // but only once the kernel is done with their buffers.
                for s in r.slots.iter_mut().flatten() {
                    s.closing = true;
                }
                r.step_all()?;
                shared.turn_end(&mut r.turn);
                if r.slots.iter().all(Option::is_none) {
                    return Ok(());
                }
            }
        }
    }
}

impl<S: Service> Reactor<'_, S> {
    /// Hands every posted message to its connection (dropped if it closed since).
    fn take_finished(&mut self, done: &mut Vec<S::Message>) {
        self.finished.take(done);
        let shared = self.shared;
        for d in done.drain(..) {
            let to = S::target(&d);
            if let Some(s) = self.slot(to.slot, to.generation) {
                shared.deliver(&mut s.conn, d);
            }
        }
    }

    /// Queues a submission, submitting first if the queue is full.
    fn push(&mut self, e: &squeue::Entry) -> Result<()> {
        loop {
            // SAFETY: every entry this reactor builds points at memory that outlives the
            // operation: the listener, the waker's buffer and each connection's fd live
            // in `self` until their operations complete, and send buffers stay in their
            // slot's `sending` until the kernel's completion (and, for SEND_ZC, its
            // notification) says it is done with them.
            let pushed = unsafe { self.ring.submission().push(e) };
            if pushed.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(|err| Error::io("io_uring submit", err))?;
        }
    }

    fn arm_accept(&mut self, fd: RawFd) -> Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(0, 0, OP_ACCEPT));
        self.accept_armed = true;
        self.push(&e)
    }

    fn arm_wake(&mut self, fd: RawFd) -> Result<()> {
        let e = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(ud(0, 0, OP_WAKE));
        self.push(&e)
    }

    fn arm_recv(&mut self, i: usize) -> Result<()> {
        let Some(s) = self.slots[i].as_mut() else { return Ok(()) };
        s.recv_armed = true;
        s.cancel_sent = false;
        let e = opcode::RecvMulti::new(types::Fd(s.fd.as_raw_fd()), self.bufs.bgid())
            .build()
            .user_data(ud(i, s.generation, OP_RECV));
        self.push(&e)
    }

    fn on_completion(
        &mut self,
        data: u64,
        res: i32,
        flags: u32,
        listener: RawFd,
        waker: &Waker,
    ) -> Result<()> {
        let (i, generation, op) = split(data);
        match op {
            OP_ACCEPT => {
                if res >= 0 {
                    // SAFETY: a successful accept completion's result is a new fd we own.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
                    self.admit(fd)?;
                } else if res != -libc::ECANCELED {
                    self.shared.report_error(&Error::io(
                        "accept a TCP connection",
                        std::io::Error::from_raw_os_error(-res),
                    ));
                }
                if !cqueue::more(flags) {
                    self.accept_armed = false;
                    if !self.stopping && res != -libc::ECANCELED {
                        self.arm_accept(listener)?;
                    }
                }
            }
            OP_WAKE => {
                waker.drain();
                if !self.stopping {
                    self.arm_wake(waker.fd().as_raw_fd())?;
                }
            }
            OP_RECV => self.on_recv(i, generation, res, flags)?,
            OP_SEND | OP_SEND_ZC => self.on_send(i, generation, op, res, flags),
            _ => {} // cancel results
        }
        Ok(())
    }

    fn admit(&mut self, fd: OwnedFd) -> Result<()> {
        let common = self.shared.common();
        let stats = &common.stats;
        if self.stopping || stats.active.get() >= common.max_connections as u64 {
            stats.refused.add(1);
            self.shared.refuse(&fd);
            return Ok(());
        }
        tune(&fd, common.dead_peer);
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.generation = self.generation.wrapping_add(1).max(1);
        let generation = self.generation;
        let Some(conn) =
            self.shared.admit(ConnId { slot: i, generation }, &fd, &self.finished, &mut self.turn)
        else {
            self.free.push(i);
            return Ok(());
        };
        stats.accepted.add(1);
        stats.active.add(1);
        self.slots[i] = Some(Slot {
            fd,
            conn,
            generation,
            recv_armed: false,
            cancel_sent: false,
            sending: None,
            closing: false,
            eof: false,
        });
        self.arm_recv(i)
    }

    fn slot(&mut self, i: usize, generation: u32) -> Option<&mut Slot<S::Session>> {
        self.slots.get_mut(i)?.as_mut().filter(|s| s.generation == generation)
    }

    fn on_recv(&mut self, i: usize, generation: u32, res: i32, flags: u32) -> Result<()> {
        let shared = self.shared;
        let Some(s) =
            self.slots.get_mut(i).and_then(Option::as_mut).filter(|s| s.generation == generation)
        else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.recycle(bid);
            }
            return Ok(());
        };
        if res > 0 {
            let bid = cqueue::buffer_select(flags).ok_or_else(|| {
                Error::io("multishot receive", std::io::Error::other("no buffer id"))
            })?;
            let bytes = self.bufs.get(bid, res.unsigned_abs() as usize);
            if !s.closing {
                let id = ConnId { slot: i, generation };
                shared.on_bytes(&mut s.conn, id, &self.finished, &mut self.turn, bytes);
                shared.report(&mut s.conn);
            }
            self.bufs.recycle(bid);
        } else if res == 0 {
            // EOF: done with this client (once its output is sent, if the session says).
            if s.conn.on_eof() {
                s.closing = true;
            } else {
                s.eof = true;
            }
        } else if res < 0 && res != -libc::ECANCELED && res != -libc::ENOBUFS {
            // An error (reset, the dead-peer timeout): done with this client.
            s.closing = true;
        }
        if !cqueue::more(flags) {
            s.recv_armed = false;
            s.cancel_sent = false;
        }
        Ok(())
    }

    fn on_send(&mut self, i: usize, generation: u32, op: u64, res: i32, flags: u32) {
        let Some(s) = self.slot(i, generation) else { return };
        let Some(sending) = s.sending.as_mut() else { return };
        if op == OP_SEND_ZC && cqueue::notif(flags) {
            sending.zc_notif_pending = false;
        } else {
            sending.in_flight = false;
            if op == OP_SEND_ZC {
                sending.zc_notif_pending = cqueue::more(flags);
            }
            if res < 0 {
                s.closing = true;
            } else {
                sending.off += res.unsigned_abs() as usize;
            }
        }
    }

    /// After a batch of completions: start sends, pause or resume receives, close.
    fn step_all(&mut self) -> Result<()> {
        for i in 0..self.slots.len() {
            let Some(s) = self.slots[i].as_mut() else { continue };
            // A finished send frees its buffer (a zero-copy one once notified).
            let done = s.sending.as_ref().is_some_and(|b| {
                !b.in_flight && !b.zc_notif_pending && (b.off >= b.buf.len() || s.closing)
            });
            if done {
                if let Some(b) = s.sending.take() {
                    s.conn.give_back(b.buf);
                }
            }
            if s.conn.is_closing() && s.conn.output().is_empty() && s.sending.is_none() {
                s.closing = true;
            }
            if !s.closing {
                // Continue a partial send, or start the next one with everything queued.
                let partial = s
                    .sending
                    .as_ref()
                    .is_some_and(|b| !b.in_flight && !b.zc_notif_pending && b.off < b.buf.len());
                if s.sending.is_none() && !s.conn.output().is_empty() {
                    s.sending = Some(Sending {
                        buf: s.conn.take_output(),
                        off: 0,
                        in_flight: false,
                        zc_notif_pending: false,
                    });
                    self.submit_send(i)?;
                } else if partial {
                    self.submit_send(i)?;
                }
            }
            let Some(s) = self.slots[i].as_mut() else { continue };
            let wants = !s.closing && !s.eof && s.conn.wants_read();
            self.shared.report(&mut s.conn);
            if wants && !s.recv_armed {
                self.arm_recv(i)?;
            } else if !wants && s.recv_armed && !s.cancel_sent {
                s.cancel_sent = true;
                let target = ud(i, s.generation, OP_RECV);
                self.push(
                    &opcode::AsyncCancel::new(target).build().user_data(ud(i, 0, OP_CANCEL)),
                )?;
            }
            let Some(s) = self.slots[i].as_mut() else { continue };
            if s.closing && !s.recv_armed && s.sending.is_none() {
                let mut s = self.slots[i].take().expect("present");
                self.shared.on_close(&mut s.conn, std::os::fd::AsFd::as_fd(&s.fd), &mut self.turn);
                self.shared.common().stats.active.sub(1);
                self.free.push(i);
                drop(s); // closes the fd: nothing in the kernel refers to it any more
            }
        }
        Ok(())
    }

    fn submit_send(&mut self, i: usize) -> Result<()> {
        let zc_allowed = self.zc;
        let Some(s) = self.slots[i].as_mut() else { return Ok(()) };
        let generation = s.generation;
        let fd = types::Fd(s.fd.as_raw_fd());
        let Some(b) = s.sending.as_mut() else { return Ok(()) };
        let rest = &b.buf[b.off..];
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let e = if zc_allowed && rest.len() >= ZC_THRESHOLD {
            opcode::SendZc::new(fd, rest.as_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud(i, generation, OP_SEND_ZC))
        } else {
            opcode::Send::new(fd, rest.as_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud(i, generation, OP_SEND))
        };
        // In flight until its completion: `step_all` neither frees nor resends it.
        b.in_flight = true;
        self.push(&e)
    }
}
