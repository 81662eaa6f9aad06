//! The SPSC ring: a [`Producer`] and a [`Consumer`] handle over one [`Arena`].
//!
//! Shaped like `rtrb`: each handle keeps its own index locally and a cached copy of the
//! other side's, and loads the shared atomic only when the cache says "maybe full" or
//! "maybe empty". The producer stores `head` after at most 32 commits or on flush, as
//! WIRE.md says. The consumer stores `tail` at every commit (a batch commits once). That
//! is wire-compatible, and unlike upstream's every-32 publication it never strands freed
//! bytes behind a consumer that pauses, so a producer never waits for room that is free.
//!
//! Everything read from the arena is untrusted. A bad index or header moves the arena to
//! `FatalError` and returns [`Error::Corrupted`]; nothing here panics on peer input or
//! touches memory outside the mapping.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::arena::Arena;
use crate::error::{Error, Result};
use crate::layout::{self, state, MSG_HEADER_SIZE, PUBLISH_BATCH, SKIP_MARKER};
use crate::wait;

/// Bytes between a counter and a later one (wrapping, as the counters are monotonic u64).
#[inline]
fn distance(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from)
}

/// Physical ring offset of a byte counter.
#[inline]
fn phys(counter: u64, capacity: usize) -> usize {
    debug_assert!(capacity.is_power_of_two());
    (counter & (capacity as u64 - 1)) as usize
}

/// Fails with `PeerDead` if the arena is in the `FatalError` state, and with
/// `PeerClosed` once the peer left cleanly (`Disconnected`). A consumer checks this only
/// when its ring is empty, so everything sent before a clean exit is delivered first.
#[inline]
fn check_alive(arena: &Arena) -> Result<()> {
    match arena.state() {
        state::FATAL_ERROR => Err(Error::PeerDead("the shared ring is in the FatalError state")),
        state::DISCONNECTED => Err(Error::PeerClosed),
        _ => Ok(()),
    }
}

/// Moves the arena to `FatalError` and returns the error to report.
#[cold]
fn corrupted(arena: &Arena, what: &'static str) -> Error {
    arena.set_fatal();
    Error::Corrupted(what)
}

/// A slot reserved by [`Producer::acquire`]. Dropping it without commit rolls back: no
/// shared state changed at acquire.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Skip bytes to write as a marker before the slot (0 if the slot fits before the end).
    skip: u64,
    /// Slot size (header + payload rounded to 64), from the requested maximum.
    slot: u64,
    /// Physical offset of the slot's header.
    phys: usize,
    /// Largest payload the caller may commit.
    max: usize,
}

impl Reservation {
    /// The most payload bytes this slot can carry.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// The writing side of a ring.
#[derive(Debug)]
pub(crate) struct Producer {
    arena: Arc<Arena>,
    /// Local head: includes commits not yet published.
    head: u64,
    /// Last tail read from the arena.
    cached_tail: u64,
    /// Commits since the last head store.
    unpublished: u32,
    /// A reservation is parked (see [`crate::ParkedTx`]): no other may be made.
    pub parked: bool,
}

impl Producer {
    /// A producer starting at the arena's current head.
    pub fn new(arena: Arc<Arena>) -> Self {
        // Acquire: pairs with the release stores of a previous producer, if any.
        let head = arena.head().load(Ordering::Acquire);
        let cached_tail = arena.tail().load(Ordering::Acquire);
        // Every slot starts on a 64-byte boundary; a peer that formatted the arena with
        // another head would make us write headers out of line. Refuse it up front: the
        // FatalError state makes the first acquire report it.
        // Likewise a tail that is not within one ring behind the head (found by the
        // `arena_attach` fuzz target: it made the free-space sum overflow).
        if head % MSG_HEADER_SIZE as u64 != 0
            || distance(cached_tail, head) > arena.capacity() as u64
        {
            arena.set_fatal();
        }
        Self { arena, head, cached_tail, unpublished: 0, parked: false }
    }

    /// Reserves a slot for up to `max` payload bytes. Fails with `Full` when there is no
    /// room now, `MessageTooLarge` when there never will be.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire(&mut self, max: usize) -> Result<Reservation> {
        check_alive(&self.arena)?;
        let cap = self.arena.capacity();
        let slot = match layout::slot_size(max) {
            Some(s) if s <= cap => s as u64,
            _ => return Err(Error::MessageTooLarge { size: max, max: layout::max_payload(cap) }),
        };
        let p = phys(self.head, cap);
        let to_end = (cap - p) as u64;
        let skip = if to_end < slot { to_end } else { 0 };
        let needed = skip + slot;
        // Saturating: `cached_tail` is validated, but a sum of peer-derived values must
        // never be able to wrap.
        if distance(self.cached_tail, self.head).saturating_add(needed) > cap as u64 {
            self.refresh_tail()?;
            let used = distance(self.cached_tail, self.head);
            if used.saturating_add(needed) > cap as u64 {
                // Commits the consumer cannot see yet would keep the ring full for ever.
                self.flush();
                return Err(Error::Full {
                    needed: needed as usize,
                    free: (cap as u64 - used) as usize,
                });
            }
        }
        let phys = if skip > 0 { 0 } else { p };
        Ok(Reservation { skip, slot, phys, max })
    }

    /// The arena this producer writes.
    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Re-reads the consumer's tail and checks it is plausible.
    #[inline]
    fn refresh_tail(&mut self) -> Result<()> {
        // Acquire: pairs with the consumer's release store of tail, so the consumer's reads
        // of the slots it released happen before we overwrite them.
        let tail = self.arena.tail().load(Ordering::Acquire);
        // The tail may never pass our head nor fall more than a ring behind it.
        if distance(tail, self.head) > self.arena.capacity() as u64 {
            return Err(corrupted(&self.arena, "consumer tail is outside the ring"));
        }
        self.cached_tail = tail;
        Ok(())
    }

    /// The writable payload of a reservation.
    #[inline]
    pub fn payload_mut(&mut self, r: &Reservation) -> &mut [u8] {
        // SAFETY: `r` came from `acquire` on this producer (reservations are not Clone and
        // only this module makes them), and `&mut self` means no other payload slice of
        // this producer is alive. The slot lies past the published head, so the consumer
        // does not read it.
        unsafe { self.arena.payload_mut(r.phys, r.max) }
    }

    /// Commits a reservation with `size` payload bytes. Publishes `head` when 32 commits
    /// are pending (the caller flushes otherwise).
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    #[allow(clippy::needless_pass_by_value)] // consumes the reservation so it cannot be reused
    pub fn commit(
        &mut self,
        r: Reservation,
        size: usize,
        type_id: u32,
        cid: Option<u64>,
    ) -> Result<()> {
        if size > r.max {
            return Err(Error::InvalidSize { size, max: r.max });
        }
        if r.skip > 0 {
            self.arena.write_skip_marker(phys(self.head, self.arena.capacity()));
        }
        self.arena.write_msg_header(r.phys, size as u32, type_id, r.slot as u32, cid);
        self.head = self.head.wrapping_add(r.skip + r.slot);
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_BATCH {
            self.flush();
        }
        Ok(())
    }

    /// Publishes every commit so far and wakes a sleeping consumer.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn flush(&mut self) {
        if self.unpublished == 0 {
            return;
        }
        // Release: makes the headers and payloads written before it visible to a consumer
        // that acquires this head.
        self.arena.head().store(self.head, Ordering::Release);
        self.unpublished = 0;
        wait::wake_consumer(self.arena.consumer_sleeping());
    }
}

/// A message found by the consumer: where it is and what its validated header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Counter just past this slot: the tail after committing it.
    pub end: u64,
    /// RPC correlation id (meaningless on SPSC rings).
    pub correlation_id: u64,
    /// Physical offset of the slot header (below the capacity, so it fits 32 bits).
    pub phys: u32,
    /// Payload bytes (validated against the slot, so below the capacity).
    pub size: u32,
    /// `route << 16 | msg_type`.
    pub type_id: u32,
}

/// The reading side of a ring.
#[derive(Debug)]
pub(crate) struct Consumer {
    arena: Arc<Arena>,
    /// Local tail, published at every commit.
    tail: u64,
    /// Last head read from the arena.
    cached_head: u64,
}

impl Consumer {
    /// A consumer starting at the arena's current tail.
    pub fn new(arena: Arc<Arena>) -> Self {
        let tail = arena.tail().load(Ordering::Acquire);
        Self { arena, cached_head: tail, tail }
    }

    /// The local tail: where the next [`Self::peek`] starts.
    #[inline]
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// Finds the message at counter `at` (the tail, or further on for batch reads) without
    /// consuming it. `Ok(None)` when nothing is published there yet; in that case the
    /// consumer also publishes its tail, so a waiting producer sees every released byte.
    // Always inlined: the spin loops of every receive path call it, and as an outlined
    // call (which LLVM picks once it has several callers) it added ~20 ns to a round
    // trip in `tachyon-bench`.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn peek(&mut self, at: u64) -> Result<Option<Slot>> {
        let cap = self.arena.capacity();
        let mut at = at;
        loop {
            if at == self.cached_head {
                self.refresh_head()?;
                if at == self.cached_head {
                    // Empty: the moment to notice a peer's FatalError or clean exit.
                    if let Err(e) = check_alive(&self.arena) {
                        // A producer publishes its last head before it marks the arena
                        // `Disconnected`, but our head load above may predate both: look
                        // again before saying it left, so nothing it sent is lost.
                        self.refresh_head()?;
                        if at == self.cached_head || !matches!(e, Error::PeerClosed) {
                            return Err(e);
                        }
                        continue;
                    }
                    return Ok(None);
                }
            }
            let p = phys(at, cap);
            // The payload line is the next miss after the header: start it now.
            self.arena.prefetch(p + MSG_HEADER_SIZE);
            let h = self.arena.read_msg_header(p);
            let available = distance(at, self.cached_head);
            if h.size == SKIP_MARKER {
                let skip = (cap - p) as u64;
                if skip > available {
                    return Err(corrupted(&self.arena, "skip marker runs past the published head"));
                }
                at = at.wrapping_add(skip);
                continue;
            }
            let reserved = h.reserved_size as usize;
            if reserved < MSG_HEADER_SIZE || reserved > cap || reserved % MSG_HEADER_SIZE != 0 {
                return Err(corrupted(
                    &self.arena,
                    "message reserved_size is not a 64-byte multiple in 64..=capacity",
                ));
            }
            if h.size as usize > reserved - MSG_HEADER_SIZE {
                return Err(corrupted(&self.arena, "message size exceeds its reserved slot"));
            }
            if p + reserved > cap {
                return Err(corrupted(&self.arena, "message slot runs past the end of the ring"));
            }
            if reserved as u64 > available {
                return Err(corrupted(&self.arena, "message slot runs past the published head"));
            }
            return Ok(Some(Slot {
                end: at.wrapping_add(reserved as u64),
                phys: p as u32,
                size: h.size,
                type_id: h.type_id,
                correlation_id: h.correlation_id,
            }));
        }
    }

    /// Re-reads the producer's head and checks it is plausible.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn refresh_head(&mut self) -> Result<()> {
        // The tail is ours, but its first value came from shared memory: it must sit on
        // a slot boundary before we read a header there. (This runs before any message at
        // a new position is read; positions after it only move by whole slots.)
        if self.tail % MSG_HEADER_SIZE as u64 != 0 {
            return Err(corrupted(&self.arena, "consumer tail is not on a 64-byte slot boundary"));
        }
        // Acquire: pairs with the producer's release store, making the slots up to this
        // head (headers and payloads) visible.
        let head = self.arena.head().load(Ordering::Acquire);
        if distance(self.tail, head) > self.arena.capacity() as u64 {
            return Err(corrupted(
                &self.arena,
                "producer head is behind the tail or more than a ring ahead",
            ));
        }
        self.cached_head = head;
        Ok(())
    }

    /// The payload of a slot returned by [`Self::peek`].
    #[inline]
    pub fn payload(&self, slot: &Slot) -> &[u8] {
        self.arena.payload(slot.phys as usize, slot.size as usize)
    }

    /// The arena this consumer reads.
    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Consumes everything up to `end` (a slot's `end`) and publishes the new tail.
    ///
    /// Publishing at every commit (a batch commits once) differs from upstream, which
    /// waits for 32 commits and so strands freed bytes whenever a consumer pauses with
    /// fewer unpublished: a producer then waits for room that is free. The store is cheap:
    /// the tail line stays in our cache until the producer reads it, which it does only
    /// when its cached tail says the ring may be full.
    #[inline]
    pub fn advance(&mut self, end: u64) {
        debug_assert!(distance(self.tail, end) <= distance(self.tail, self.cached_head));
        self.tail = end;
        // Release: our reads of the released slots happen before the producer, acquiring
        // this tail, overwrites them.
        self.arena.tail().store(end, Ordering::Release);
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Plays a hostile producer: arbitrary `data` decides the published head, the starting
/// tail and a series of message headers, then a consumer drains the ring. Must never
/// panic nor read outside the mapping; errors are the expected outcome. Used by the
/// `cargo fuzz` target and by tests.
///
/// Layout of `data`: `head u64`, `tail u64`, then 13-byte records of
/// `slot u8` (header index, times 64) `size u32`, `type_id u32`, `reserved_size u32`.
#[doc(hidden)]
pub fn fuzz_consumer(data: &[u8]) {
    const CAP: usize = 4096;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let (head, tail) = match data {
        h if h.len() >= 16 => (word(&data[0..8]), word(&data[8..16])),
        _ => return,
    };
    let arena = Arc::new(Arena::create(CAP).expect("memfd_create works in tests"));
    arena.tail().store(tail, Ordering::Relaxed);
    for rec in data[16..].chunks_exact(13) {
        let u = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        let at = (rec[0] as usize * MSG_HEADER_SIZE) % CAP;
        arena.write_msg_header(at, u(1), u(5), u(9), Some(0));
    }
    arena.head().store(head, Ordering::Release);
    let mut consumer = Consumer::new(arena.clone());
    for _ in 0..256 {
        let at = consumer.position();
        match consumer.peek(at) {
            Ok(Some(slot)) => {
                let sum: u64 = consumer.payload(&slot).iter().map(|&b| u64::from(b)).sum();
                std::hint::black_box(sum);
                consumer.advance(slot.end);
            }
            Ok(None) => return,
            Err(_) => {
                assert_eq!(
                    arena.state(),
                    state::FATAL_ERROR,
                    "an error must leave the arena fatal or dead"
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
