//! [`Bus`]: one SPSC ring between two processes, with RAII guards for zero-copy use.
//!
//! The API mirrors upstream's Rust crate (`tachyon-ipc`) so users can switch, and adds
//! what it lacks: timeouts on every blocking call, dead-peer detection, a non-blocking
//! receive, and typed errors.

use std::cell::{Cell, RefCell, RefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::arena::Arena;
use crate::bootstrap::{self, BusKind, Handshake, ListenSpec, PeerLink};
use crate::error::{Error, Result};
use crate::layout::{self, sleep, state, DEFAULT_SPIN_THRESHOLD};
use crate::ring::{Consumer, Producer, Reservation, Slot};
use crate::wait::{self, WaitSpec};

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

/// How a blocking call waits: spin count, timeout, and an interrupt check.
///
/// ```
/// use std::time::Duration;
/// let w = tachyon::Wait::new().spin(1_000).timeout(Duration::from_millis(5));
/// # let _ = w;
/// ```
#[derive(Default)]
pub struct Wait<'a> {
    spin: Option<u32>,
    timeout: Option<Duration>,
    interrupt: Option<&'a mut dyn FnMut() -> bool>,
}

impl<'a> Wait<'a> {
    /// Spin 10,000 times, then sleep; no timeout; not interruptible.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spins before the first futex sleep (default 10,000).
    #[must_use]
    pub fn spin(mut self, spin: u32) -> Self {
        self.spin = Some(spin);
        self
    }

    /// Fails with [`Error::Timeout`] after this long.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Like [`Self::timeout`], but `None` means no timeout.
    #[must_use]
    pub fn timeout_opt(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called at least every 200 ms while blocked; returning `true` ends the wait with
    /// [`Error::Interrupted`]. Bindings use this to deliver Ctrl-C.
    #[must_use]
    pub fn interrupt(mut self, check: &'a mut dyn FnMut() -> bool) -> Self {
        self.interrupt = Some(check);
        self
    }

    pub(crate) fn spec(&self) -> WaitSpec {
        let spin = self.spin.unwrap_or(DEFAULT_SPIN_THRESHOLD);
        match self.timeout {
            Some(t) => WaitSpec::timeout(spin, t),
            None => WaitSpec::forever(spin),
        }
    }

    /// Runs the interrupt check.
    pub(crate) fn check_interrupt(&mut self) -> Result<()> {
        let interrupted = self.interrupt.as_mut().is_some_and(|f| f());
        if interrupted {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}

/// Blocks until `attempt` yields, treating a hang-up of `link` as a dead peer only once
/// `attempt` has come back empty after it: messages sent before the peer died are still
/// delivered. Shared by every blocking call of [`Bus`] and the RPC layer.
#[inline]
pub(crate) fn block_until<T>(
    word: Option<&std::sync::atomic::AtomicU32>,
    link: &PeerLink,
    mut wait: Wait<'_>,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let spec = wait.spec();
    let gone = Cell::new(false);
    wait::block_on(
        word,
        &spec,
        || match attempt()? {
            Some(v) => Ok(Some(v)),
            None if gone.get() => Err(Error::PeerDead("the peer process exited or closed its bus")),
            None => Ok(None),
        },
        || {
            if link.check().is_err() {
                gone.set(true);
            }
            wait.check_interrupt()
        },
    )
}

/// Consumer state behind the bus's `RefCell`: the consumer and a reusable batch buffer.
#[derive(Debug)]
struct RxState {
    consumer: Consumer,
    batch: Vec<Slot>,
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
    tx: RefCell<Producer>,
    rx: RefCell<RxState>,
    link: PeerLink,
}

impl Bus {
    fn from_arena(arena: Arena, link: PeerLink) -> Self {
        let arena = Arc::new(arena);
        Self {
            tx: RefCell::new(Producer::new(arena.clone())),
            rx: RefCell::new(RxState { consumer: Consumer::new(arena.clone()), batch: Vec::new() }),
            arena,
            link,
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
    pub fn listen_with(socket_path: &str, capacity: usize, mut wait: Wait<'_>) -> Result<Self> {
        let arena = Arena::create(capacity)?;
        let timeout = wait.timeout;
        let mut check = || wait.check_interrupt();
        let spec = ListenSpec { timeout, interrupt: Some(&mut check) };
        let link =
            bootstrap::listen(socket_path, &Handshake::spsc(capacity), &[arena.shm().fd()], spec)?;
        Ok(Self::from_arena(arena, link))
    }

    /// Connects to a listener at `socket_path` and attaches its ring. Fails at once if
    /// nobody is listening.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] if the listener is not an SPSC v0x04 bus (its fds are
    /// closed), [`Error::InvalidPath`], [`Error::Io`].
    pub fn connect(socket_path: &str) -> Result<Self> {
        let conn = bootstrap::connect(socket_path, BusKind::Spsc)?;
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
        Ok(Self::from_arena(arena, conn.link))
    }

    #[inline]
    fn producer(&self) -> Result<RefMut<'_, Producer>> {
        self.tx.try_borrow_mut().map_err(|_| Error::Busy("TX"))
    }

    #[inline]
    fn rx_state(&self) -> Result<RefMut<'_, RxState>> {
        self.rx.try_borrow_mut().map_err(|_| Error::Busy("RX"))
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
        let mut producer = self.producer()?;
        let reservation = producer.acquire(max_size)?;
        Ok(TxGuard { producer, reservation })
    }

    /// Like [`Bus::acquire_tx`], but waits for room as `wait` says.
    ///
    /// # Errors
    /// As [`Bus::acquire_tx`], with [`Error::Timeout`] / [`Error::Interrupted`] in place
    /// of `Full`.
    pub fn acquire_tx_with(&self, max_size: usize, wait: Wait<'_>) -> Result<TxGuard<'_>> {
        let mut producer = self.producer()?;
        let reservation =
            block_until(None, &self.link, wait, || match producer.acquire(max_size) {
                Ok(r) => Ok(Some(r)),
                Err(Error::Full { .. }) => Ok(None),
                Err(e) => Err(e),
            })?;
        Ok(TxGuard { producer, reservation })
    }

    /// Publishes every message committed with [`TxGuard::commit_unflushed`].
    #[inline]
    pub fn flush(&self) {
        if let Ok(mut p) = self.tx.try_borrow_mut() {
            p.flush();
        }
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
        let mut rx = self.rx_state()?;
        let slot = block_until(Some(self.arena.consumer_sleeping()), &self.link, wait, || {
            let at = rx.consumer.position();
            rx.consumer.peek(at)
        })?;
        Ok(RxGuard { rx, slot })
    }

    /// Returns the next message if one is there, without waiting.
    ///
    /// # Errors
    /// [`Error::PeerDead`], [`Error::Corrupted`], [`Error::Busy`].
    #[inline]
    pub fn try_recv(&self) -> Result<Option<RxGuard<'_>>> {
        let mut rx = self.rx_state()?;
        let at = rx.consumer.position();
        Ok(rx.consumer.peek(at)?.map(|slot| RxGuard { rx, slot }))
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
        let mut rx = self.rx_state()?;
        let max_msgs = max_msgs.max(1);
        let first = block_until(Some(self.arena.consumer_sleeping()), &self.link, wait, || {
            let at = rx.consumer.position();
            rx.consumer.peek(at)
        })?;
        let RxState { consumer, batch } = &mut *rx;
        batch.clear();
        batch.push(first);
        let mut at = first.end;
        while batch.len() < max_msgs {
            // A corrupt slot after good ones ends the batch; the arena is already in
            // FatalError, so the next call reports it.
            match consumer.peek(at) {
                Ok(Some(s)) => {
                    at = s.end;
                    batch.push(s);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok(RxBatch { rx })
    }

    /// Pure-spin (polling) mode: the consumer never sleeps and the producer skips the
    /// wake-up check. Unlike upstream, the mode stays set until turned off.
    pub fn set_polling_mode(&self, enabled: bool) {
        let word = self.arena.consumer_sleeping();
        if enabled {
            word.store(sleep::POLLING, Ordering::SeqCst);
        } else {
            let _ = word.compare_exchange(
                sleep::POLLING,
                sleep::AWAKE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            );
        }
    }

    /// Binds the ring's memory to NUMA node `node` (`MPOL_PREFERRED`, moving pages).
    ///
    /// # Errors
    /// [`Error::InvalidNumaNode`], or [`Error::Io`] from `mbind`.
    pub fn set_numa_node(&self, node: i32) -> Result<()> {
        self.arena.shm().bind_numa_node(node)
    }

    /// The arena's state word.
    pub fn state(&self) -> BusState {
        BusState::from_raw(self.arena.state())
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.arena.capacity()
    }

    /// Largest payload one message can carry (`capacity - 64`).
    pub fn max_payload(&self) -> usize {
        layout::max_payload(self.arena.capacity())
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
    /// `FatalError`.
    pub fn check_peer(&self) -> Result<()> {
        if self.arena.state() == state::FATAL_ERROR {
            return Err(Error::PeerDead("the shared ring is in the FatalError state"));
        }
        self.link.check()
    }
}

/// A reserved TX slot. Write the payload, then commit; dropping it rolls back.
#[derive(Debug)]
pub struct TxGuard<'bus> {
    producer: RefMut<'bus, Producer>,
    reservation: Reservation,
}

impl<'bus> TxGuard<'bus> {
    /// The writable slot: `max_size` bytes in shared memory.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.producer.payload_mut(&self.reservation)
    }

    /// Copies `data` to the start of the slot.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] if `data` is longer than the slot.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let max = self.max_size();
        let dst = self
            .bytes_mut()
            .get_mut(..data.len())
            .ok_or(Error::InvalidSize { size: data.len(), max })?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The most payload bytes this slot can take.
    pub fn max_size(&self) -> usize {
        self.reservation.max()
    }

    /// Commits `actual_size` bytes with `type_id` and publishes at once.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] if `actual_size > max_size` (the slot is rolled back).
    #[inline]
    pub fn commit(self, actual_size: usize, type_id: u32) -> Result<()> {
        let mut producer = self.commit_inner(actual_size, type_id, None)?;
        producer.flush();
        Ok(())
    }

    /// Commits without publishing (the ring still publishes every 32 commits). Call
    /// [`Bus::flush`] after the last message of a burst.
    ///
    /// # Errors
    /// As [`TxGuard::commit`].
    #[inline]
    pub fn commit_unflushed(self, actual_size: usize, type_id: u32) -> Result<()> {
        self.commit_inner(actual_size, type_id, None).map(drop)
    }

    /// Commits with an optional RPC correlation id, returning the producer for a flush.
    #[inline]
    pub(crate) fn commit_inner(
        self,
        actual_size: usize,
        type_id: u32,
        cid: Option<u64>,
    ) -> Result<RefMut<'bus, Producer>> {
        let TxGuard { mut producer, reservation } = self;
        producer.commit(reservation, actual_size, type_id, cid)?;
        Ok(producer)
    }

    /// Abandons the slot. Nothing was published, so nothing changes (dropping the guard
    /// does the same).
    pub fn rollback(self) {}
}

/// A received message, read in place. Dropping the guard (or [`RxGuard::commit`])
/// releases the slot.
#[derive(Debug)]
pub struct RxGuard<'bus> {
    rx: RefMut<'bus, RxState>,
    slot: Slot,
}

impl RxGuard<'_> {
    /// The payload, borrowed from shared memory.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.rx.consumer.payload(&self.slot)
    }

    /// `route << 16 | msg_type` of the message.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.slot.type_id
    }

    /// Payload length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.slot.size
    }

    /// Whether the payload is empty (zero-length messages are legal).
    pub fn is_empty(&self) -> bool {
        self.slot.size == 0
    }

    /// Releases the slot now (dropping the guard does the same).
    ///
    /// # Errors
    /// Never fails today; kept as `Result` to mirror upstream.
    pub fn commit(self) -> Result<()> {
        Ok(())
    }
}

impl Drop for RxGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.consumer.advance(self.slot.end, 1);
    }
}

/// Messages drained together; all are released when the batch is dropped or committed.
#[derive(Debug)]
pub struct RxBatch<'bus> {
    rx: RefMut<'bus, RxState>,
}

/// One message of an [`RxBatch`].
#[derive(Debug, Clone, Copy)]
pub struct RxMsg<'batch> {
    data: &'batch [u8],
    type_id: u32,
}

impl<'batch> RxMsg<'batch> {
    /// The payload, borrowed from shared memory until the batch is released.
    #[inline]
    pub fn data(&self) -> &'batch [u8] {
        self.data
    }

    /// `route << 16 | msg_type`.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.type_id
    }

    /// Payload length.
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl RxBatch<'_> {
    /// Number of messages.
    #[inline]
    pub fn len(&self) -> usize {
        self.rx.batch.len()
    }

    /// Never true: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.rx.batch.is_empty()
    }

    /// The `i`-th message.
    pub fn get(&self, i: usize) -> Option<RxMsg<'_>> {
        let slot = self.rx.batch.get(i)?;
        Some(RxMsg { data: self.rx.consumer.payload(slot), type_id: slot.type_id })
    }

    /// Iterates over the messages in ring order.
    pub fn iter(&self) -> RxBatchIter<'_> {
        RxBatchIter { consumer: &self.rx.consumer, slots: self.rx.batch.iter() }
    }

    /// Releases every message now (dropping the batch does the same).
    ///
    /// # Errors
    /// Never fails today; kept as `Result` to mirror upstream.
    pub fn commit(self) -> Result<()> {
        Ok(())
    }
}

impl Drop for RxBatch<'_> {
    #[inline]
    fn drop(&mut self) {
        let RxState { consumer, batch } = &mut *self.rx;
        if let Some(last) = batch.last() {
            consumer.advance(last.end, batch.len() as u32);
        }
        batch.clear();
    }
}

impl<'a> IntoIterator for &'a RxBatch<'_> {
    type Item = RxMsg<'a>;
    type IntoIter = RxBatchIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the messages of an [`RxBatch`].
#[derive(Debug)]
pub struct RxBatchIter<'a> {
    consumer: &'a Consumer,
    slots: std::slice::Iter<'a, Slot>,
}

impl<'a> Iterator for RxBatchIter<'a> {
    type Item = RxMsg<'a>;

    #[inline]
    fn next(&mut self) -> Option<RxMsg<'a>> {
        let s = self.slots.next()?;
        Some(RxMsg { data: self.consumer.payload(s), type_id: s.type_id })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for RxBatchIter<'_> {}
