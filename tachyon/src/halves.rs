//! The two halves of a ring endpoint: [`TxHalf`] produces into an arena, [`RxHalf`]
//! consumes from one, and the RAII guards they hand out.
//!
//! A [`crate::Bus`] holds both halves on one arena; an RPC bus holds a `TxHalf` on one
//! arena and an `RxHalf` on the other. Each half keeps its ring handle in a `RefCell`, so
//! a second guard while one is open is a typed [`Error::Busy`], not a data race.

use std::cell::{RefCell, RefMut};
use std::sync::Arc;

use crate::arena::Arena;
use crate::bootstrap::PeerLink;
use crate::error::{Error, Result};
use crate::ring::{Consumer, Producer, Reservation, Slot};
use crate::wait::{block_until, Wait, Watch};

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
        self.producer.try_borrow_mut().map_err(|_| Error::Busy("TX"))
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
        let watch = Watch { index: self.arena.tail(), futex: None };
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
            }),
            arena,
        }
    }

    /// New messages move the producer's head; sleep on the consumer futex.
    #[inline]
    fn watch(&self) -> Watch<'_> {
        Watch { index: self.arena.head(), futex: Some(self.arena.consumer_sleeping()) }
    }

    #[inline]
    fn state(&self) -> Result<RefMut<'_, RxState>> {
        self.state.try_borrow_mut().map_err(|_| Error::Busy("RX"))
    }

    /// Waits for the next message as `wait` says.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire_with(&self, link: &PeerLink, wait: Wait<'_>) -> Result<RxGuard<'_>> {
        let mut rx = self.state()?;
        let slot = block_until(self.watch(), link, wait, || {
            let at = rx.consumer.position();
            rx.consumer.peek(at)
        })?;
        Ok(RxGuard { rx, slot })
    }

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
        let slot = block_until(self.watch(), link, wait, || loop {
            let at = rx.consumer.position();
            let Some(slot) = rx.consumer.peek(at)? else { return Ok(None) };
            if is_wanted(&slot) {
                return Ok(Some(slot));
            }
            let kept = other(&slot, rx.consumer.payload(&slot));
            rx.consumer.advance(slot.end);
            kept?;
        })?;
        Ok(RxGuard { rx, slot })
    }

    /// The next message, if one is there.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Option<RxGuard<'_>>> {
        let mut rx = self.state()?;
        let at = rx.consumer.position();
        Ok(rx.consumer.peek(at)?.map(|slot| RxGuard { rx, slot }))
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
        let first = block_until(self.watch(), link, wait, || {
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
    /// [`Bus::flush`] after the last message of a burst.
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
}

/// A received message, read in place. Dropping the guard (or [`RxGuard::commit`])
/// releases the slot.
#[derive(Debug)]
pub struct RxGuard<'bus> {
    rx: RefMut<'bus, RxState>,
    slot: Slot,
}

impl RxGuard<'_> {
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
}

impl Drop for RxGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.consumer.advance(self.slot.end);
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
