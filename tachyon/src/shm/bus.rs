//! [`Bus`]: one SPSC ring between two processes, with RAII guards for zero-copy use.
//!
//! The API mirrors upstream's Rust crate (`tachyon-ipc`) so users can switch, and adds
//! what it lacks: timeouts on every blocking call, dead-peer detection, a non-blocking
//! receive, and typed errors.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::observe::stats::{BusStats, StatsReader};
use crate::shm::arena::Arena;
use crate::shm::bootstrap::{self, BusKind, Handshake, ListenSpec};
use crate::shm::halves::{
    ParkedRx, ParkedTx, RxBatch, RxGuard, RxHalf, RxReadiness, TxGuard, TxHalf,
};
use crate::shm::layout::{state, RingMode};
use crate::shm::liveness::{Closer, PeerLink, PeerWatch};
use crate::shm::options::{ConnectOptions, ListenOptions};
use crate::shm::wait::Wait;

/// The state word of a bus's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusState {
    /// Never formatted.
    Uninitialized,
    /// Being formatted.
    Initializing,
    /// Usable.
    Ready,
    /// Closed by a side.
    Disconnected,
    /// A side saw corruption; the bus is unusable.
    FatalError,
    /// Any other value (upstream's `Unknown`, or garbage).
    Unknown(u32),
}

impl BusState {
    pub(crate) fn from_raw(v: u32) -> Self {
        match v {
            state::UNINITIALIZED => Self::Uninitialized,
            state::INITIALIZING => Self::Initializing,
            state::READY => Self::Ready,
            state::DISCONNECTED => Self::Disconnected,
            state::FATAL_ERROR => Self::FatalError,
            other => Self::Unknown(other),
        }
    }
}

/// A single-producer, single-consumer shared-memory bus.
///
/// One process calls [`Bus::listen`], the other [`Bus::connect`]; then one of them sends
/// and the other receives. `Bus` is `Send` but not `Sync`: use it from one thread at a
/// time.
///
/// ```no_run
/// use tachyon::Bus;
/// # fn main() -> tachyon::Result<()> {
/// // process A
/// let bus = Bus::listen("/tmp/demo.sock", 1 << 16)?;
/// let msg = bus.recv_timeout(std::time::Duration::from_secs(1))?;
/// assert_eq!(msg.data(), b"hello");
/// # Ok(()) }
/// // process B: Bus::connect("/tmp/demo.sock")?.send(b"hello", 1)?;
/// ```
#[derive(Debug)]
pub struct Bus {
    arena: Arc<Arena>,
    tx: TxHalf,
    rx: RxHalf,
    link: Arc<PeerLink>,
    /// The waker thread of `recv_async`, started by its first wait.
    pub(crate) async_rx: std::sync::OnceLock<Arc<crate::shm::recv_async::RxWaker>>,
}

impl Bus {
    fn from_arena(arena: Arena, watch: PeerWatch, fast: bool) -> Self {
        // Before the halves exist: they read the ring protocol once.
        arena.set_fast(fast);
        let arena = Arc::new(arena);
        Self {
            tx: TxHalf::new(arena.clone()),
            rx: RxHalf::new(arena.clone()),
            link: Arc::new(PeerLink::new(watch, &arena, &[&arena])),
            arena,
            async_rx: std::sync::OnceLock::new(),
        }
    }

    /// Creates a `capacity`-byte ring and waits, without limit, for one peer to connect
    /// at `socket_path`. The socket file is removed afterwards, as upstream does.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`], [`Error::InvalidPath`], [`Error::AbiMismatch`] (our
    /// connector expected an RPC bus), [`Error::Io`].
    pub fn listen(socket_path: &str, capacity: usize) -> Result<Self> {
        Self::listen_with(socket_path, capacity, Wait::new())
    }

    /// Like [`Bus::listen`], failing with [`Error::Timeout`] if no peer connects in time.
    ///
    /// # Errors
    /// As [`Bus::listen`], plus [`Error::Timeout`].
    pub fn listen_timeout(socket_path: &str, capacity: usize, timeout: Duration) -> Result<Self> {
        Self::listen_with(socket_path, capacity, Wait::new().timeout(timeout))
    }

    /// Like [`Bus::listen`], with a timeout and interrupt check from `wait`.
    ///
    /// # Errors
    /// As [`Bus::listen_timeout`], plus [`Error::Interrupted`].
    pub fn listen_with(socket_path: &str, capacity: usize, wait: Wait<'_>) -> Result<Self> {
        Self::listen_opts(socket_path, capacity, &ListenOptions::default(), wait)
    }

    /// Like [`Bus::listen_with`], with the access rules of `opts` (socket mode, which
    /// users may connect, handshake timeout). A connector of a user that is not allowed
    /// is turned away and logged; the listen goes on.
    ///
    /// # Errors
    /// As [`Bus::listen_with`], plus [`Error::AddrInUse`] when a live listener holds the
    /// path.
    pub fn listen_opts(
        socket_path: &str,
        capacity: usize,
        opts: &ListenOptions,
        mut wait: Wait<'_>,
    ) -> Result<Self> {
        let arena = Arena::create(capacity)?;
        let timeout = wait.timeout_value();
        let mut check = || wait.check_interrupt();
        let spec = ListenSpec { timeout, interrupt: Some(&mut check) };
        let peer = bootstrap::listen(
            socket_path,
            &Handshake::spsc(capacity),
            &[arena.shm().fd()],
            opts,
            spec,
            &mut |e| tracing::warn!(target: "tachyon", "{e}"),
        )?;
        Ok(Self::from_arena(arena, peer.watch, peer.fast))
    }

    /// Connects to a listener at `socket_path` and attaches its ring, within the default
    /// 10 s. Fails at once if nobody is listening.
    ///
    /// # Errors
    /// [`Error::Connect`] if nobody listens there; [`Error::PermissionDenied`] if the
    /// socket or the listener belongs to another user; [`Error::AbiMismatch`] if the
    /// listener is not an SPSC v0x04 bus (its fds are closed); [`Error::Timeout`] if the
    /// listener never answers; [`Error::CapacityLimit`]; [`Error::InvalidPath`].
    pub fn connect(socket_path: &str) -> Result<Self> {
        Self::connect_with(socket_path, &ConnectOptions::default(), Wait::new())
    }

    /// Like [`Bus::connect`], giving up after `timeout`.
    ///
    /// # Errors
    /// As [`Bus::connect`].
    pub fn connect_timeout(socket_path: &str, timeout: Duration) -> Result<Self> {
        Self::connect_with(socket_path, &ConnectOptions::default().timeout(timeout), Wait::new())
    }

    /// Like [`Bus::connect`], with `opts` (timeout, trusted users, largest ring) and the
    /// interrupt check of `wait` (run every 100 ms; a timeout in `wait` overrides the
    /// one in `opts`).
    ///
    /// # Errors
    /// As [`Bus::connect`], plus [`Error::Interrupted`].
    pub fn connect_with(
        socket_path: &str,
        opts: &ConnectOptions,
        mut wait: Wait<'_>,
    ) -> Result<Self> {
        let timeout = wait.timeout_value();
        let mut check = || wait.check_interrupt();
        let spec = ListenSpec { timeout, interrupt: Some(&mut check) };
        let conn = bootstrap::connect(socket_path, BusKind::Spsc, opts, spec)?;
        let hs = conn.handshake;
        let Some(fd) = conn.fds.into_iter().next() else {
            return Err(Error::AbiMismatch("the listener sent no shared-memory fd".to_owned()));
        };
        let arena = Arena::attach(fd, hs.shm_size_fwd as usize)?;
        if arena.capacity() != hs.capacity_fwd as usize {
            return Err(Error::AbiMismatch(format!(
                "handshake capacity {} differs from the arena's {}",
                hs.capacity_fwd,
                arena.capacity()
            )));
        }
        Ok(Self::from_arena(arena, conn.watch, conn.fast))
    }

    /// A handle that ends this bus's blocked calls from another thread (they fail with
    /// [`Error::Closed`]). For bindings whose `close()` can race a waiter.
    pub fn closer(&self) -> Closer {
        self.link.closer()
    }

    /// A handle that wakes this bus's blocked receive from another thread of this
    /// process, so its interrupt check runs at once (see [`crate::Nudge`]): a loop that
    /// waits for messages and for work from other threads at once.
    pub fn nudge(&self) -> crate::Nudge {
        self.link.nudge()
    }

    /// Copies `data` into the ring as one message and publishes it. Does not wait: a full
    /// ring fails with [`Error::Full`] (see [`Bus::send_timeout`]).
    ///
    /// # Errors
    /// [`Error::Full`], [`Error::MessageTooLarge`], [`Error::PeerDead`], [`Error::Busy`].
    #[inline]
    pub fn send(&self, data: &[u8], type_id: u32) -> Result<()> {
        let mut tx = self.acquire_tx(data.len())?;
        tx.bytes_mut().copy_from_slice(data);
        tx.commit(data.len(), type_id)
    }

    /// Like [`Bus::send`], but waits up to `timeout` for room in the ring.
    ///
    /// # Errors
    /// As [`Bus::send`], with [`Error::Timeout`] in place of `Full`, and
    /// [`Error::PeerDead`] if the consumer goes away while we wait.
    pub fn send_timeout(&self, data: &[u8], type_id: u32, timeout: Duration) -> Result<()> {
        let mut tx = self.acquire_tx_with(data.len(), Wait::new().timeout(timeout))?;
        tx.bytes_mut().copy_from_slice(data);
        tx.commit(data.len(), type_id)
    }

    /// Reserves a slot for up to `max_size` payload bytes. Write through the guard, then
    /// [`TxGuard::commit`]; dropping the guard rolls back.
    ///
    /// # Errors
    /// [`Error::Full`] (no waiting), [`Error::MessageTooLarge`], [`Error::PeerDead`],
    /// [`Error::Busy`] if another TX guard is open.
    #[inline]
    pub fn acquire_tx(&self, max_size: usize) -> Result<TxGuard<'_>> {
        self.tx.acquire(max_size)
    }

    /// Like [`Bus::acquire_tx`], but waits for room as `wait` says.
    ///
    /// # Errors
    /// As [`Bus::acquire_tx`], with [`Error::Timeout`] / [`Error::Interrupted`] in place
    /// of `Full`.
    pub fn acquire_tx_with(&self, max_size: usize, wait: Wait<'_>) -> Result<TxGuard<'_>> {
        self.tx.acquire_with(max_size, &self.link, wait)
    }

    /// Takes back a slot parked by [`TxGuard::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if a TX guard is open, [`Error::Protocol`] if the slot belongs to
    /// another bus.
    pub fn resume_tx(&self, parked: ParkedTx) -> Result<TxGuard<'_>> {
        self.tx.resume(parked)
    }

    /// Releases messages parked by [`RxGuard::park`] or [`RxBatch::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if an RX guard is open, [`Error::Protocol`] if they belong to
    /// another bus.
    #[allow(clippy::needless_pass_by_value)] // consumes the token so it cannot be reused
    pub fn commit_parked(&self, parked: ParkedRx) -> Result<()> {
        self.rx.commit_parked(parked)
    }

    /// Publishes every message committed with [`TxGuard::commit_unflushed`].
    #[inline]
    pub fn flush(&self) {
        self.tx.flush();
    }

    /// Waits for the next message: spins `spin_threshold` times, then sleeps on the futex.
    /// Returns [`Error::PeerDead`] once the ring is empty and the peer is known to be gone.
    /// With an upstream peer (no liveness link) it waits for ever, like upstream; use
    /// [`Bus::recv_timeout`] to bound it.
    ///
    /// # Errors
    /// [`Error::PeerDead`], [`Error::Corrupted`], [`Error::Busy`].
    #[inline]
    pub fn acquire_rx(&self, spin_threshold: u32) -> Result<RxGuard<'_>> {
        self.acquire_rx_with(Wait::new().spin(spin_threshold))
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    /// As [`Bus::acquire_rx`], plus [`Error::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RxGuard<'_>> {
        self.acquire_rx_with(Wait::new().timeout(timeout))
    }

    /// Waits for the next message as `wait` says.
    ///
    /// # Errors
    /// As [`Bus::recv_timeout`], plus [`Error::Interrupted`].
    #[inline]
    pub fn acquire_rx_with(&self, wait: Wait<'_>) -> Result<RxGuard<'_>> {
        self.rx.acquire_with(&self.link, wait)
    }

    /// Returns the next message if one is there, without waiting.
    ///
    /// # Errors
    /// [`Error::PeerDead`], [`Error::Corrupted`], [`Error::Busy`].
    #[inline]
    pub fn try_recv(&self) -> Result<Option<RxGuard<'_>>> {
        self.rx.try_acquire()
    }

    /// Waits for at least one message, then takes up to `max_msgs` in one go. The batch
    /// commits them all when dropped.
    ///
    /// # Errors
    /// As [`Bus::acquire_rx`].
    #[inline]
    pub fn drain_batch(&self, max_msgs: usize, spin_threshold: u32) -> Result<RxBatch<'_>> {
        self.drain_batch_with(max_msgs, Wait::new().spin(spin_threshold))
    }

    /// Like [`Bus::drain_batch`], waiting as `wait` says.
    ///
    /// # Errors
    /// As [`Bus::acquire_rx_with`].
    #[inline]
    pub fn drain_batch_with(&self, max_msgs: usize, wait: Wait<'_>) -> Result<RxBatch<'_>> {
        self.rx.drain_with(max_msgs, &self.link, wait)
    }

    /// Pure-spin (polling) mode: the consumer never sleeps and the producer skips the
    /// wake-up check. Unlike upstream, the mode stays set until turned off.
    pub fn set_polling_mode(&self, enabled: bool) {
        self.arena.set_polling(enabled);
    }

    /// Binds the ring's memory to NUMA node `node` (`MPOL_PREFERRED`, moving pages).
    ///
    /// # Errors
    /// [`Error::InvalidNumaNode`], or [`Error::Io`] from `mbind`.
    pub fn set_numa_node(&self, node: i32) -> Result<()> {
        self.arena.shm().bind_numa_node(node)
    }

    /// What this side of the bus has sent, received, waited for and met so far (see
    /// [`BusStats`]). Counted in this process only; reading them costs a few loads.
    ///
    /// ```no_run
    /// # fn main() -> tachyon::Result<()> {
    /// let bus = tachyon::Bus::connect("/tmp/demo.sock")?;
    /// bus.send(b"hello", 1)?;
    /// assert_eq!(bus.stats().sent_messages, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> BusStats {
        self.arena.stats().snapshot()
    }

    /// A `Send + Sync` handle that reads [`Bus::stats`] from any thread (for a metrics
    /// exporter), without borrowing the bus.
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader::new(vec![self.arena.clone()])
    }

    /// The arena's state word.
    pub fn state(&self) -> BusState {
        BusState::from_raw(self.arena.state())
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.arena.capacity()
    }

    /// Largest payload one message can carry (`capacity - 64` in compat mode,
    /// `capacity - 96` in fast mode).
    pub fn max_payload(&self) -> usize {
        self.arena.mode().max_payload(self.arena.capacity())
    }

    /// The ring protocol this bus runs: [`RingMode::Fast`] when both peers are ours and
    /// agreed on it at the handshake, [`RingMode::Compat`] (upstream's ABI v0x04) otherwise.
    pub fn ring_mode(&self) -> RingMode {
        self.arena.mode()
    }

    /// A handle that waits for this bus to have a message to receive, without borrowing
    /// the bus: for event loops that wait on one thread and receive on another.
    pub fn rx_readiness(&self) -> RxReadiness {
        self.rx.readiness(&self.link)
    }

    /// Whether the peer is a Tachyon peer with a liveness link (so a blocked call notices
    /// its death). `false` with an upstream peer.
    pub fn has_peer_link(&self) -> bool {
        self.link.is_linked()
    }

    /// Checks now whether the peer is known to be gone.
    ///
    /// # Errors
    /// [`Error::PeerDead`] if the peer's process or bus is gone, or the arena is in
    /// `FatalError`; [`Error::PeerClosed`] if it closed its bus; [`Error::Closed`] after
    /// [`Closer::close`].
    pub fn check_peer(&self) -> Result<()> {
        if self.arena.state() == state::FATAL_ERROR {
            return Err(Error::PeerDead("the shared ring is in the FatalError state"));
        }
        self.link.check()
    }
}

impl Drop for Bus {
    /// Ends the `recv_async` waker thread, if one started.
    fn drop(&mut self) {
        if let Some(w) = self.async_rx.get() {
            w.stop();
        }
    }
}
