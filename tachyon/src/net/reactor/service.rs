//! What a reactor serves. The reactors ([`crate::net::reactor::uring`], [`crate::net::reactor::epoll`]) own
//! the sockets and every system call; a [`Service`] decides what a connection is (an RPC
//! connection speaking frames, or a raw byte stream handed to JavaScript) through its
//! [`Session`]s, which do no I/O of their own.
//!
//! Other threads reach a reactor through its [`Mailbox`]: worker replies for RPC,
//! JavaScript's writes for raw streams. A post wakes the reactor once per batch.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::net::reactor::waker::Waker;
use crate::sync::lock;

/// Which connection of which reactor a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId {
    /// The connection's slot in its reactor.
    pub slot: usize,
    /// The slot's generation (a reused slot has a new one).
    pub generation: u32,
}

/// One connection's state, without I/O: bytes the reactor received go in through the
/// service; bytes to send come out of [`Session::output`].
pub(crate) trait Session {
    /// Bytes to send.
    fn output(&self) -> &[u8];
    /// `n` bytes of the output went out.
    fn sent(&mut self, n: usize);
    /// Takes the whole output (a reactor that sends from its own buffer).
    fn take_output(&mut self) -> Vec<u8>;
    /// Returns a buffer from [`Session::take_output`] once the kernel is done with it.
    fn give_back(&mut self, buf: Vec<u8>);
    /// Whether to close once the output is sent.
    fn is_closing(&self) -> bool;
    /// Whether the reactor should be receiving (false pauses: backpressure).
    fn wants_read(&mut self) -> bool;
    /// Timers (hello, stalled frames).
    fn check_timeouts(&mut self, now: Instant);
    /// A graceful shutdown began.
    fn shutdown(&mut self);
    /// The peer sent EOF: true to close at once, false to close once the output is sent.
    fn on_eof(&mut self) -> bool {
        true
    }
}

/// The connection counters a server's reactors share (see [`crate::ServerStats`]).
pub(crate) type TcpStats = crate::observe::stats::ServerCounters;

/// What every reactor of a server shares, whatever it serves.
pub(crate) struct Common {
    /// Set to stop: reactors say goodbye to everyone, drain, and exit.
    pub stopping: AtomicBool,
    pub stats: Arc<TcpStats>,
    pub max_connections: usize,
    pub dead_peer: Duration,
    pub on_error: Arc<dyn Fn(&Error) + Send + Sync>,
}

/// What a reactor serves.
pub(crate) trait Service: Sync {
    /// One connection.
    type Session: Session;
    /// What other threads post to a reactor.
    type Message: Send;
    /// What one reactor gathers during a loop turn, handed over in [`Service::turn_end`]
    /// (owned by the reactor thread, so gathering takes no lock).
    type Turn: Default;

    /// The shared settings and counters.
    fn common(&self) -> &Common;
    /// A connection just accepted (`None` closes it: its session could not start).
    fn admit(
        &self,
        id: ConnId,
        fd: &OwnedFd,
        mailbox: &Arc<Mailbox<Self::Message>>,
        turn: &mut Self::Turn,
    ) -> Option<Self::Session>;
    /// Bytes a connection received.
    fn on_bytes(
        &self,
        session: &mut Self::Session,
        id: ConnId,
        mailbox: &Arc<Mailbox<Self::Message>>,
        turn: &mut Self::Turn,
        bytes: &[u8],
    );
    /// The connection a message is for.
    fn target(message: &Self::Message) -> ConnId;
    /// Applies a message to its connection.
    fn deliver(&self, session: &mut Self::Session, message: Self::Message);
    /// Adds what a connection did since the last report to the counters.
    fn report(&self, session: &mut Self::Session);
    /// A connection is being closed (its fd still open).
    fn on_close(&self, session: &mut Self::Session, fd: BorrowedFd<'_>, turn: &mut Self::Turn);

    /// The reactor starts, with its mailbox (a service other threads write through
    /// keeps it).
    fn started(&self, _mailbox: &Arc<Mailbox<Self::Message>>) {}

    /// A loop turn ended: what the service gathered during it can go out in one batch.
    fn turn_end(&self, _turn: &mut Self::Turn) {}

    /// Turns away a client over the connection limit (before closing it).
    fn refuse(&self, _fd: &OwnedFd) {}

    /// Reports a server-side problem.
    fn report_error(&self, e: &Error) {
        (self.common().on_error)(e);
    }
}

/// One reactor's inbox: any thread posts, the reactor takes everything each loop turn.
#[derive(Debug)]
pub(crate) struct Mailbox<M> {
    queue: Mutex<Vec<M>>,
    /// Whether a wake-up is already on its way.
    woken: AtomicBool,
    waker: Waker,
}

impl<M> Mailbox<M> {
    pub fn new(waker: Waker) -> Self {
        Self { queue: Mutex::new(Vec::new()), woken: AtomicBool::new(false), waker }
    }

    /// Posts `message` and wakes the reactor (once per batch).
    pub fn push(&self, message: M) {
        lock(&self.queue).push(message);
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Everything posted since the last call (reactor side).
    pub fn take(&self, into: &mut Vec<M>) {
        self.woken.store(false, Ordering::Release);
        into.append(&mut lock(&self.queue));
    }
}
