//! Counters of this process's side of a bus or server: what it sent and received, how
//! often it waited, slept, timed out or met a dead peer.
//!
//! Nothing here lives in shared memory: each process counts its own side, so a hostile
//! peer cannot forge the numbers and no cache line bounces between processes. A
//! per-message count is a plain load and store of a word only one thread writes at a
//! time (the ring half's owner), with no locked instruction. Rare events (sleeps,
//! timeouts) use an atomic add, since any thread may hit them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;

/// One counter. [`Counter::add_owned`] is for a counter with one writer at a time (it
/// may lose counts if two threads race); [`Counter::add`] for any number of writers.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`, written by the counter's single writer: a load and a store, no lock.
    #[inline]
    pub fn add_owned(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds `n` from any thread.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from any thread (for gauges).
    #[cfg_attr(not(feature = "tcp"), allow(dead_code))] // the TCP server's active count
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The value now.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one ring, as this process sees it, kept beside (never inside) the
/// process's mapping of the arena. Aligned to its own cache lines, so the words other
/// threads read next to it (the arena's base and capacity) never share a line with the
/// counters the ring's owner writes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct RingStats {
    pub sent_messages: Counter,
    pub sent_bytes: Counter,
    pub received_messages: Counter,
    pub received_bytes: Counter,
    pub full: Counter,
    pub sleeps: Counter,
    pub watchdog_rescues: Counter,
    pub wakes: Counter,
    pub timeouts: Counter,
    pub peer_deaths: Counter,
    pub protocol_errors: Counter,
}

impl RingStats {
    /// The producer committed a message of `size` payload bytes.
    #[inline]
    pub fn sent(&self, size: usize) {
        self.sent_messages.add_owned(1);
        self.sent_bytes.add_owned(size as u64);
    }

    /// The consumer handed out a message of `size` payload bytes.
    #[inline]
    pub fn received(&self, size: u32) {
        self.received_messages.add_owned(1);
        self.received_bytes.add_owned(u64::from(size));
    }

    /// Counts `e` if it is a timeout, a dead peer or a protocol violation.
    pub fn failed(&self, e: &Error) {
        match e {
            Error::Timeout(_) => self.timeouts.add(1),
            Error::PeerDead(_) => self.peer_deaths.add(1),
            Error::Protocol(_) | Error::Corrupted(_) => self.protocol_errors.add(1),
            _ => {}
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> BusStats {
        BusStats {
            sent_messages: self.sent_messages.get(),
            sent_bytes: self.sent_bytes.get(),
            received_messages: self.received_messages.get(),
            received_bytes: self.received_bytes.get(),
            full_waits: self.full.get(),
            sleeps: self.sleeps.get(),
            watchdog_rescues: self.watchdog_rescues.get(),
            wakes: self.wakes.get(),
            timeouts: self.timeouts.get(),
            peer_deaths: self.peer_deaths.get(),
            protocol_errors: self.protocol_errors.get(),
        }
    }
}

/// What this process's side of a bus has done since the bus was made: plain numbers,
/// read without stopping the bus (see [`crate::Bus::stats`]).
///
/// The counts are this side's only. A message counts once it is committed (sent) or
/// handed to the caller (received), so a receiver's count may trail the sender's by the
/// messages still in the ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages this side committed.
    pub sent_messages: u64,
    /// Payload bytes of those messages.
    pub sent_bytes: u64,
    /// Messages this side received.
    pub received_messages: u64,
    /// Payload bytes of those messages.
    pub received_bytes: u64,
    /// Times a send found the ring full and had to wait (or failed with `Full`): one per
    /// episode, however often the send retried before room appeared.
    pub full_waits: u64,
    /// Times a receive went to sleep on the futex.
    pub sleeps: u64,
    /// Sleeps that no wake-up ended: the futex wait ran out (the 200 ms watchdog, or the
    /// caller's deadline) with nobody having woken the sleeper, and a message was there.
    /// Each one is a lost wake-up that cost its full sleep; a healthy bus keeps this 0.
    pub watchdog_rescues: u64,
    /// Times a send woke a sleeping receiver.
    pub wakes: u64,
    /// Waits that ran out of time (`Timeout`; a zero-timeout poll is not one).
    pub timeouts: u64,
    /// Times the peer was found dead.
    pub peer_deaths: u64,
    /// Corruption or protocol violations seen on the ring.
    pub protocol_errors: u64,
}

impl std::ops::Add for BusStats {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            sent_messages: self.sent_messages + o.sent_messages,
            sent_bytes: self.sent_bytes + o.sent_bytes,
            received_messages: self.received_messages + o.received_messages,
            received_bytes: self.received_bytes + o.received_bytes,
            full_waits: self.full_waits + o.full_waits,
            sleeps: self.sleeps + o.sleeps,
            watchdog_rescues: self.watchdog_rescues + o.watchdog_rescues,
            wakes: self.wakes + o.wakes,
            timeouts: self.timeouts + o.timeouts,
            peer_deaths: self.peer_deaths + o.peer_deaths,
            protocol_errors: self.protocol_errors + o.protocol_errors,
        }
    }
}

impl BusStats {
    /// The counters as `(name, value)` pairs, in a fixed order: what the language
    /// bindings and the `metrics` feature publish.
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("sent_messages", self.sent_messages),
            ("sent_bytes", self.sent_bytes),
            ("received_messages", self.received_messages),
            ("received_bytes", self.received_bytes),
            ("full_waits", self.full_waits),
            ("sleeps", self.sleeps),
            ("watchdog_rescues", self.watchdog_rescues),
            ("wakes", self.wakes),
            ("timeouts", self.timeouts),
            ("peer_deaths", self.peer_deaths),
            ("protocol_errors", self.protocol_errors),
        ]
    }
}

/// Reads a bus's [`BusStats`] from any thread, without borrowing the bus (see
/// [`crate::Bus::stats_reader`]). It keeps the bus's mappings alive while it lives.
#[derive(Clone)]
pub struct StatsReader {
    read: Arc<dyn Fn() -> BusStats + Send + Sync>,
}

impl std::fmt::Debug for StatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsReader").field("now", &(self.read)()).finish()
    }
}

impl StatsReader {
    /// A reader that sums the counters of `rings` (each one ring's [`RingStats`]).
    pub(crate) fn new<R>(rings: Vec<R>) -> Self
    where
        R: std::ops::Deref + Send + Sync + 'static,
        R::Target: AsRef<RingStats>,
    {
        Self {
            read: Arc::new(move || {
                rings.iter().fold(BusStats::default(), |sum, r| sum + (**r).as_ref().snapshot())
            }),
        }
    }

    /// The counters now.
    pub fn read(&self) -> BusStats {
        (self.read)()
    }
}

/// The counters of a server, shared by its serving threads.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    pub accepted: Counter,
    pub refused: Counter,
    pub active: Counter,
    pub requests: Counter,
    pub protocol_errors: Counter,
    pub paused: Counter,
    /// Error replies by code (the error path only, so a lock is fine).
    errors: Mutex<BTreeMap<u32, u64>>,
}

impl ServerCounters {
    /// Counts error replies: `code` answered `n` more times.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the servers
    pub fn errors(&self, code: u32, n: u64) {
        let mut map = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(code).or_default() += n;
    }

    /// The counters now.
    pub fn snapshot(&self) -> ServerStats {
        ServerStats {
            accepted: self.accepted.get(),
            refused: self.refused.get(),
            active: self.active.get(),
            requests: self.requests.get(),
            protocol_errors: self.protocol_errors.get(),
            paused: self.paused.get(),
            errors: self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

/// Reads a server's [`ServerStats`] from any thread, also after the server moved into
/// its serving thread (see [`crate::rpc::RpcServer::stats_reader`] and
/// `TcpServerHandle::stats_reader`).
#[derive(Debug, Clone)]
pub struct ServerStatsReader {
    counters: Arc<ServerCounters>,
}

impl ServerStatsReader {
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the servers
    pub(crate) fn new(counters: Arc<ServerCounters>) -> Self {
        Self { counters }
    }

    /// The counters now.
    pub fn read(&self) -> ServerStats {
        self.counters.snapshot()
    }
}

/// What a server has done since it was bound: plain numbers, cheap to read at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Clients (connections) accepted.
    pub accepted: u64,
    /// Clients turned away (at the client limit, shutting down, or failing the handshake).
    pub refused: u64,
    /// Clients served now.
    pub active: u64,
    /// Requests answered (error replies included).
    pub requests: u64,
    /// Clients dropped, or requests skipped, for breaking the protocol.
    pub protocol_errors: u64,
    /// Times a connection's reading was paused by backpressure (TCP only).
    pub paused: u64,
    /// Error replies sent, by error code (see [`crate::rpc::code`]).
    pub errors: BTreeMap<u32, u64>,
}

impl ServerStats {
    /// Error replies sent, all codes together.
    pub fn error_replies(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The scalar counters as `(name, value)` pairs, in a fixed order.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("accepted", self.accepted),
            ("refused", self.refused),
            ("active", self.active),
            ("requests", self.requests),
            ("protocol_errors", self.protocol_errors),
            ("paused", self.paused),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_failures_land_in_their_counter() {
        let s = RingStats::default();
        s.sent(10);
        s.sent(5);
        s.received(7);
        s.failed(&Error::Timeout(std::time::Duration::from_millis(1)));
        s.failed(&Error::PeerDead("gone"));
        s.failed(&Error::Protocol("x".into()));
        s.failed(&Error::Closed);
        let b = s.snapshot();
        assert_eq!((b.sent_messages, b.sent_bytes), (2, 15));
        assert_eq!((b.received_messages, b.received_bytes), (1, 7));
        assert_eq!((b.timeouts, b.peer_deaths, b.protocol_errors), (1, 1, 1));
        let twice = b + b;
        assert_eq!(twice.sent_bytes, 30);
        assert_eq!(twice.fields()[1], ("sent_bytes", 30));
    }

    #[test]
    fn server_errors_are_kept_by_code() {
        let c = ServerCounters::default();
        c.errors(2, 1);
        c.errors(100, 2);
        c.errors(2, 1);
        let s = c.snapshot();
        assert_eq!(s.errors, BTreeMap::from([(2, 2), (100, 2)]));
        assert_eq!(s.error_replies(), 4);
    }
}
