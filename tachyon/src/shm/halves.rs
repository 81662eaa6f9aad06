//! The two halves of a ring endpoint: [`TxHalf`] produces into an arena, [`RxHalf`]
//! consumes from one, and the RAII guards they hand out.
//!
//! A [`crate::Bus`] holds both halves on one arena; an RPC bus holds a `TxHalf` on one
//! arena and an `RxHalf` on the other. Each half keeps its ring handle in a `RefCell`, so
//! a second guard while one is open is a typed [`Error::Busy`], not a data race.

use std::cell::{RefCell, RefMut};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::shm::arena::Arena;
use crate::shm::liveness::{Alarm, PeerLink};
use crate::shm::ring::{Consumer, Producer, Reservation, Slot};
use crate::shm::wait::{block_on, block_until, idle_check, Barrier, Wait, Watch};

/// The producing half over one arena.
#[derive(Debug)]
pub(crate) struct TxHalf {
    arena: Arc<Arena>,
    producer: RefCell<Producer>,
}

impl TxHalf {
    pub fn new(arena: Arc<Arena>) -> Self {
        Self { producer: RefCell::new(Producer::new(arena.clone())), arena }
    }

    #[inline]
    fn producer(&self) -> Result<RefMut<'_, Producer>> {
        match self.producer.try_borrow_mut() {
            Ok(p) if !p.parked => Ok(p),
            _ => Err(Error::Busy("TX")),
        }
    }

    /// Takes back a slot parked by [`TxGuard::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if a guard is open; [`Error::Protocol`] if `parked` belongs to
    /// another ring.
    pub fn resume(&self, parked: ParkedTx) -> Result<TxGuard<'_>> {
        let mut producer = self.producer.try_borrow_mut().map_err(|_| Error::Busy("TX"))?;
        if !producer.parked || !Arc::ptr_eq(producer.arena(), &parked.arena) {
            return Err(Error::Protocol("a parked TX slot resumed on another ring".into()));
        }
        producer.parked = false;
        Ok(TxGuard { producer, reservation: parked.reservation })
    }

    /// Reserves a slot now or fails with `Full`.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire(&self, max_size: usize) -> Result<TxGuard<'_>> {
        let mut producer = self.producer()?;
        let reservation = producer.acquire(max_size)?;
        Ok(TxGuard { producer, reservation })
    }

    /// Reserves a slot, waiting for room as `wait` says.
    pub fn acquire_with(
        &self,
        max_size: usize,
        link: &PeerLink,
        wait: Wait<'_>,
    ) -> Result<TxGuard<'_>> {
        let mut producer = self.producer()?;
        // Room appears when the consumer moves its tail.
        let watch = Watch {
            index: self.arena.tail(),
            futex: None,
            alarm: None,
            barrier: Barrier::Fence,
            stats: Some(self.arena.stats()),
        };
        let reservation = block_until(watch, link, wait, || match producer.acquire(max_size) {
            Ok(r) => Ok(Some(r)),
            Err(Error::Full { .. }) => Ok(None),
            Err(e) => Err(e),
        })?;
        Ok(TxGuard { producer, reservation })
    }

    /// Publishes pending commits (no-op while a TX guard is open).
    #[inline]
    pub fn flush(&self) {
        if let Ok(mut p) = self.producer.try_borrow_mut() {
            p.flush();
        }
    }
}

/// Consumer state behind the half's `RefCell`: the consumer and a reusable batch buffer.
#[derive(Debug)]
struct RxState {
    consumer: Consumer,
    batch: Vec<Slot>,
    /// Messages are parked (see [`ParkedRx`]): nothing else may be read.
    parked: bool,
}

/// The consuming half over one arena.
#[derive(Debug)]
pub(crate) struct RxHalf {
    arena: Arc<Arena>,
    state: RefCell<RxState>,
}

impl RxHalf {
    pub fn new(arena: Arc<Arena>) -> Self {
        Self {
            state: RefCell::new(RxState {
                consumer: Consumer::new(arena.clone()),
                batch: Vec::new(),
                parked: false,
            }),
            arena,
        }
    }

    /// What a wait for the message at `position` spins on (the producer's head, or in
    /// fast mode that slot's commit word) and sleeps on (the consumer futex).
    #[inline]
    fn watch(&self, position: u64) -> Watch<'_> {
        Watch {
            index: crate::shm::ring::watch_word(&self.arena, position),
            futex: Some(self.arena.consumer_sleeping()),
            alarm: None,
            barrier: self.arena.mode().barrier(),
            stats: Some(self.arena.stats()),
        }
    }

    #[inline]
    fn state(&self) -> Result<RefMut<'_, RxState>> {
        match self.state.try_borrow_mut() {
            Ok(rx) if !rx.parked => Ok(rx),
            _ => Err(Error::Busy("RX")),
        }
    }

    /// A waiter for this ring to hold a message, sharing the arena and `link`.
    pub fn readiness(&self, link: &Arc<PeerLink>) -> RxReadiness {
        RxReadiness {
            arena: self.arena.clone(),
            link: Arc::downgrade(link),
            alarm: link.alarm_handle(),
        }
    }

    /// Releases the messages parked by [`RxGuard::park`] or [`RxBatch::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if a guard is open; [`Error::Protocol`] if `parked` belongs to
    /// another ring.
    #[allow(clippy::needless_pass_by_value)] // consumes the token so it cannot be reused
    pub fn commit_parked(&self, parked: ParkedRx) -> Result<()> {
        let mut rx = self.state.try_borrow_mut().map_err(|_| Error::Busy("RX"))?;
        if !rx.parked || !Arc::ptr_eq(rx.consumer.arena(), &parked.arena) {
            return Err(Error::Protocol("parked RX slots committed on another ring".into()));
        }
        rx.parked = false;
        rx.consumer.advance(parked.end);
        Ok(())
    }

    /// Waits for the next message as `wait` says.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire_with(&self, link: &PeerLink, wait: Wait<'_>) -> Result<RxGuard<'_>> {
        let mut rx = self.state()?;
        let watch = self.watch(rx.consumer.position());
        let slot = block_until(watch, link, wait, || {
            let at = rx.consumer.position();
            rx.consumer.peek(at)
        })?;
        self.arena.stats().received(slot.size);
        Ok(RxGuard { rx, slot })
    }

    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
    /// Waits for the first message that `is_wanted` accepts. Messages before it go to
    /// `other` with their payload and are consumed (the caller copies what it needs); an
    /// error from `other` ends the wait. The RX state stays borrowed for the whole wait.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire_filtered_with(
        &self,
        link: &PeerLink,
        wait: Wait<'_>,
        is_wanted: impl Fn(&Slot) -> bool,
        mut other: impl FnMut(&Slot, &[u8]) -> Result<()>,
    ) -> Result<RxGuard<'_>> {
        let mut rx = self.state()?;
        let watch = self.watch(rx.consumer.position());
        let stats = self.arena.stats();
        let slot = block_until(watch, link, wait, || loop {
            let at = rx.consumer.position();
            let Some(slot) = rx.consumer.peek(at)? else { return Ok(None) };
            stats.received(slot.size);
            if is_wanted(&slot) {
                return Ok(Some(slot));
            }
            let kept = other(&slot, rx.consumer.payload(&slot));
            rx.consumer.advance(slot.end);
            kept?;
        })?;
        Ok(RxGuard { rx, slot })
    }

    /// Looks at the ring without taking anything: a fast-mode consumer that finds it
    /// empty publishes its tail, so [`RxReadiness`] (which compares the shared indices)
    /// stops reporting messages this side already consumed.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
    pub(crate) fn settle(&self) {
        if let Ok(mut rx) = self.state() {
            let at = rx.consumer.position();
            let _ = rx.consumer.peek(at);
        }
    }

    /// The next message, if one is there.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Option<RxGuard<'_>>> {
        let mut rx = self.state()?;
        let at = rx.consumer.position();
        let slot = rx.consumer.peek(at)?;
        Ok(slot.map(|slot| {
            self.arena.stats().received(slot.size);
            RxGuard { rx, slot }
        }))
    }

    /// Waits for one message, then takes up to `max_msgs`.
    #[inline]
    pub fn drain_with(
        &self,
        max_msgs: usize,
        link: &PeerLink,
        wait: Wait<'_>,
    ) -> Result<RxBatch<'_>> {
        let mut rx = self.state()?;
        let max_msgs = max_msgs.max(1);
        let watch = self.watch(rx.consumer.position());
        let first = block_until(watch, link, wait, || {
            let at = rx.consumer.position();
            rx.consumer.peek(at)
        })?;
        let RxState { consumer, batch, .. } = &mut *rx;
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
        let stats = self.arena.stats();
        for s in batch.iter() {
            stats.received(s.size);
        }
        Ok(RxBatch { rx })
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
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
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
    /// [`crate::Bus::flush`] after the last message of a burst.
    ///
    /// # Errors
    /// As [`TxGuard::commit`].
    #[inline]
    pub fn commit_unflushed(self, actual_size: usize, type_id: u32) -> Result<()> {
        self.commit_inner(actual_size, type_id, None).map(drop)
    }

    /// Commits with an optional RPC correlation id, returning the producer for a flush.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
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

    /// Detaches the slot from this borrow of the bus, for a language binding whose guard
    /// object cannot hold one. Until [`crate::Bus::resume_tx`] takes it back, every other
    /// TX call fails with [`Error::Busy`]. The slot's memory stays mapped while the token
    /// lives, even if the bus is dropped.
    pub fn park(self) -> ParkedTx {
        let TxGuard { mut producer, reservation } = self;
        producer.parked = true;
        ParkedTx { arena: producer.arena().clone(), reservation }
    }
}

/// Waits for a ring to hold a message without borrowing its bus (see
/// [`crate::Bus::rx_readiness`]). It only watches: the message stays in the ring for the
/// bus's own receive calls. `Send + Sync`, so it can wait on one thread while the bus is
/// used on another.
///
/// It does not keep the bus alive: once the bus is dropped (or closed through its
/// [`crate::Closer`]), a blocked `wait` wakes at once and reports [`Error::Closed`].
#[derive(Debug, Clone)]
pub struct RxReadiness {
    arena: Arc<Arena>,
    link: std::sync::Weak<PeerLink>,
    alarm: Arc<Alarm>,
}

impl RxReadiness {
    /// Returns once the ring holds a message (at once if it already does), spinning and
    /// sleeping as `wait` says.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Interrupted`]; [`Error::Closed`] once the bus is
    /// closed or dropped; [`Error::PeerClosed`] or [`Error::PeerDead`] once the ring is
    /// empty and the peer is gone.
    pub fn wait(&self, mut wait: Wait<'_>) -> Result<()> {
        let spec = wait.spec();
        let watch = Watch {
            index: self.arena.head(),
            futex: Some(self.arena.consumer_sleeping()),
            alarm: Some(&self.alarm),
            barrier: self.arena.mode().barrier(),
            stats: None,
        };
        let poll = || {
            // Acquire: pairs with the producer's release store of head.
            let head = self.arena.head().load(std::sync::atomic::Ordering::Acquire);
            let tail = self.arena.tail().load(std::sync::atomic::Ordering::Acquire);
            Ok((head != tail).then_some(()))
        };
        block_on(watch, &spec, poll, || {
            wait.check_interrupt()?;
            let link = self.link.upgrade().ok_or(Error::Closed)?;
            idle_check(&link)
        })
    }
}

/// A TX slot detached from its guard by [`TxGuard::park`]. Dropping it without resuming
/// leaves the bus's TX side [`Error::Busy`].
#[derive(Debug)]
pub struct ParkedTx {
    arena: Arc<Arena>,
    reservation: Reservation,
}

/// Received messages detached from their guard by [`RxGuard::park`] or
/// [`RxBatch::park`]. They stay unreleased (and their memory mapped) until
/// [`crate::Bus::commit_parked`]; meanwhile every other RX call fails with
/// [`Error::Busy`].
#[derive(Debug)]
pub struct ParkedRx {
    arena: Arc<Arena>,
    end: u64,
}

/// A received message, read in place. Dropping the guard (or [`RxGuard::commit`])
/// releases the slot.
#[derive(Debug)]
pub struct RxGuard<'bus> {
    rx: RefMut<'bus, RxState>,
    slot: Slot,
}

impl RxGuard<'_> {
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
    /// The RPC correlation id of the message (meaningless on SPSC buses).
    #[inline]
    pub(crate) fn correlation_id(&self) -> u64 {
        self.slot.correlation_id
    }

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
        self.slot.size as usize
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

    /// Detaches the message from this borrow of the bus, unreleased, for a language
    /// binding whose guard object cannot hold one. See [`ParkedRx`].
    pub fn park(mut self) -> ParkedRx {
        self.rx.parked = true;
        ParkedRx { arena: self.rx.consumer.arena().clone(), end: self.slot.end }
    }
}

impl Drop for RxGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.rx.parked {
            self.rx.consumer.advance(self.slot.end);
        }
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

    /// Detaches the messages from this borrow of the bus, unreleased, for a language
    /// binding whose batch object cannot hold one. See [`ParkedRx`].
    pub fn park(mut self) -> ParkedRx {
        let end = self.rx.batch.last().map_or_else(|| self.rx.consumer.position(), |s| s.end);
        self.rx.parked = true;
        ParkedRx { arena: self.rx.consumer.arena().clone(), end }
    }
}

impl Drop for RxBatch<'_> {
    #[inline]
    fn drop(&mut self) {
        let RxState { consumer, batch, parked } = &mut *self.rx;
        if let (Some(last), false) = (batch.last(), *parked) {
            consumer.advance(last.end);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(cap: usize) -> (TxHalf, RxHalf) {
        let arena = Arc::new(Arena::create(cap).unwrap());
        (TxHalf::new(arena.clone()), RxHalf::new(arena))
    }

    #[test]
    fn a_parked_tx_slot_blocks_other_sends_until_resumed() {
        let (tx, rx) = halves(4096);
        let mut g = tx.acquire(8).unwrap();
        g.write(b"parked!!").unwrap();
        let parked = g.park();
        assert!(matches!(tx.acquire(8), Err(Error::Busy("TX"))));
        assert!(rx.try_acquire().unwrap().is_none(), "nothing published while parked");
        tx.resume(parked).unwrap().commit(8, 7).unwrap();
        let m = rx.try_acquire().unwrap().unwrap();
        assert_eq!((m.data(), m.type_id()), (&b"parked!!"[..], 7));
    }

    #[test]
    fn a_parked_slot_cannot_be_resumed_on_another_ring() {
        let (tx, _rx) = halves(4096);
        let (other, _) = halves(4096);
        let parked = tx.acquire(8).unwrap().park();
        assert!(matches!(other.resume(parked), Err(Error::Protocol(_))));
        assert!(matches!(tx.acquire(8), Err(Error::Busy("TX"))));
    }

    #[test]
    fn parked_rx_messages_stay_unreleased_until_committed() {
        let (tx, rx) = halves(4096);
        for i in 0..3u8 {
            tx.acquire(1).unwrap().commit(1, u32::from(i)).unwrap();
        }
        let parked = rx.try_acquire().unwrap().unwrap().park();
        assert!(matches!(rx.try_acquire(), Err(Error::Busy("RX"))));
        rx.commit_parked(parked).unwrap();
        let batch = rx.drain_with(8, &PeerLink::none(), Wait::new()).unwrap();
        assert_eq!(batch.iter().map(|m| m.type_id()).collect::<Vec<_>>(), [1, 2]);
        let parked = batch.park();
        assert!(matches!(rx.try_acquire(), Err(Error::Busy("RX"))));
        rx.commit_parked(parked).unwrap();
        assert!(rx.try_acquire().unwrap().is_none());
    }
}
