//! The SPSC ring: a [`Producer`] and a [`Consumer`] handle over one [`Arena`].
//!
//! Shaped like `rtrb`: each handle keeps its own index locally and a cached copy of the
//! other side's, and loads the shared atomic only when the cache says "maybe full" or
//! "maybe empty". The producer stores `head` after at most 32 commits or on flush, as
//! WIRE.md says. The consumer stores `tail` at every commit (a batch commits once). That
//! is wire-compatible, and unlike upstream's every-32 publication it never strands freed
//! bytes behind a consumer that pauses, so a producer never waits for room that is free.
//!
//! Two protocols run over the same arena ([`RingMode`]): upstream's (the consumer
//! learns of new messages from `head`), and, when both peers are ours, the fast mode (the
//! consumer polls the commit word of the slot it reads next, so a small message costs
//! it one cache line and the shared `head` line never bounces). The producer stores
//! `head` on flush in both, so readiness waits and the futex protocol are the same.
//!
//! Everything read from the arena is untrusted. A bad index or header moves the arena to
//! `FatalError` and returns [`Error::Corrupted`]; nothing here panics on peer input or
//! touches memory outside the mapping.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::shm::arena::Arena;
use crate::shm::layout::{arena_off, state, RingMode, MSG_HEADER_SIZE, PUBLISH_BATCH, SKIP_MARKER};
use crate::shm::wait;

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

/// The word a waiter for the message at `position` spins on: the shared `head` in
/// compat mode, that slot's commit word in fast mode.
#[inline]
pub(crate) fn watch_word(arena: &Arena, position: u64) -> &std::sync::atomic::AtomicU64 {
    match arena.mode() {
        RingMode::Compat => arena.head(),
        RingMode::Fast => arena.commit_word(phys(position, arena.capacity())),
    }
}

/// Moves the arena to `FatalError` and returns the error to report.
#[cold]
fn corrupted(arena: &Arena, what: &'static str) -> Error {
    arena.set_fatal();
    arena.stats().protocol_errors.add(1);
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
    mode: RingMode,
    /// Local head: includes commits not yet published.
    head: u64,
    /// Last tail read from the arena.
    cached_tail: u64,
    /// Commits since the last head store.
    unpublished: u32,
    /// Fast mode: commit words to store at the next flush, in ring order (a message and
    /// its skip marker each take one; at most [`PUBLISH_BATCH`] messages are pending).
    pending: PendingCommits,
    /// A reservation is parked (see [`crate::ParkedTx`]): no other may be made.
    pub parked: bool,
    /// The last acquire found the ring full: one full-ring episode is counted however
    /// many times it is retried.
    full: bool,
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
        Self {
            mode: arena.mode(),
            arena,
            head,
            cached_tail,
            unpublished: 0,
            pending: PendingCommits::default(),
            parked: false,
            full: false,
        }
    }

    /// Reserves a slot for up to `max` payload bytes. Fails with `Full` when there is no
    /// room now, `MessageTooLarge` when there never will be.
    #[allow(clippy::inline_always)] // see `block_on`: outlined, this costs a call per message
    #[inline(always)]
    pub fn acquire(&mut self, max: usize) -> Result<Reservation> {
        check_alive(&self.arena)?;
        let cap = self.arena.capacity();
        // The fast mode keeps one line free behind the head (see `commit`).
        let usable = self.mode.usable(cap) as u64;
        let slot = match self.mode.slot_size(max) {
            Some(s) if s as u64 <= usable => s as u64,
            _ => return Err(Error::MessageTooLarge { size: max, max: self.mode.max_payload(cap) }),
        };
        let p = phys(self.head, cap);
        let to_end = (cap - p) as u64;
        let skip = if to_end < slot { to_end } else { 0 };
        let needed = skip + slot;
        // Saturating: `cached_tail` is validated, but a sum of peer-derived values must
        // never be able to wrap.
        if distance(self.cached_tail, self.head).saturating_add(needed) > usable {
            self.refresh_tail()?;
            let used = distance(self.cached_tail, self.head);
            if used.saturating_add(needed) > usable {
                // Commits the consumer cannot see yet would keep the ring full for ever.
                self.flush();
                if !self.full {
                    self.full = true;
                    self.arena.stats().full.add_owned(1);
                }
                return Err(Error::Full {
                    needed: needed as usize,
                    free: usable.saturating_sub(used) as usize,
                });
            }
        }
        let phys = if skip > 0 { 0 } else { p };
        self.full = false;
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
        unsafe { self.arena.payload_mut(r.phys, self.mode.payload_offset(), r.max) }
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
        let cap = self.arena.capacity();
        match self.mode {
            RingMode::Compat => {
                if r.skip > 0 {
                    self.arena.write_skip_marker(phys(self.head, cap));
                }
                self.arena.write_msg_header(r.phys, size as u32, type_id, r.slot as u32, cid);
            }
            RingMode::Fast => {
                // The header now, its commit word at flush (in ring order), so the
                // consumer never polls a line the producer is still filling.
                let start = self.head;
                if r.skip > 0 {
                    let p = phys(start, cap);
                    self.arena.write_skip_marker(p);
                    self.pending.push(p, start.wrapping_add(1));
                }
                self.arena.write_msg_header(r.phys, size as u32, type_id, r.slot as u32, cid);
                self.pending.push(r.phys, start.wrapping_add(r.skip).wrapping_add(1));
            }
        }
        self.head = self.head.wrapping_add(r.skip + r.slot);
        self.unpublished += 1;
        self.arena.stats().sent(size);
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
        if self.mode == RingMode::Fast {
            // Every line of the free space has a zero commit word: the consumer zeroes
            // them before it releases them (`Consumer::release`), so the slot after the
            // last one (at `head`, in the guard line `acquire` keeps free) does not read
            // as published. The pending slots are complete before the first commit word
            // below, so a consumer that reaches one of them early reads a finished slot.
            for &(p, value) in self.pending.as_slice() {
                // Release: this slot's header and payload, and the clears above and at
                // commit, are visible to a consumer that acquires this word.
                self.arena.commit_word(p as usize).store(value, Ordering::Release);
            }
            self.pending.clear();
        }
        if self.mode == RingMode::Fast {
            // For `tachyon top`: our message count, in head's line (the peer never reads
            // it; a compatible ring's bytes stay upstream's). Stored before head, while we
            // own the line: after it, a consumer reading head takes the line away and this
            // store pulls it back, a transfer per flush (it cost a third of the streaming
            // rate).
            let sent = self.arena.stats().sent_messages.get();
            self.arena
                .published_counter(arena_off::PUBLISHED_MESSAGES)
                .store(sent, Ordering::Relaxed);
        }
        // Release: makes the headers and payloads written before it visible to a consumer
        // that acquires this head.
        self.arena.head().store(self.head, Ordering::Release);
        self.unpublished = 0;
        if wait::wake_consumer(self.arena.consumer_sleeping(), self.mode.barrier()) {
            self.arena.stats().wakes.add_owned(1);
        }
    }
}

/// The fast mode's commit words waiting for a flush: `(slot offset, value)`.
#[derive(Debug)]
struct PendingCommits {
    len: usize,
    entries: [(u32, u64); 2 * PUBLISH_BATCH as usize],
}

impl Default for PendingCommits {
    fn default() -> Self {
        Self { len: 0, entries: [(0, 0); 2 * PUBLISH_BATCH as usize] }
    }
}

impl PendingCommits {
    #[inline]
    fn push(&mut self, phys: usize, value: u64) {
        // A flush every PUBLISH_BATCH commits, each adding a message and at most one
        // skip marker, bounds the count.
        self.entries[self.len] = (phys as u32, value);
        self.len += 1;
    }

    #[inline]
    fn as_slice(&self) -> &[(u32, u64)] {
        &self.entries[..self.len]
    }

    #[inline]
    fn clear(&mut self) {
        self.len = 0;
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
    mode: RingMode,
    /// Local tail: everything before it is consumed.
    tail: u64,
    /// The tail as published (compat: always `tail`; fast: see [`Consumer::release`]).
    released: u64,
    /// Last head read from the arena.
    cached_head: u64,
}

/// Fast mode: consumed bytes are released to the producer at the latest once this share
/// of the ring (1/4) is consumed, and whenever the ring is found empty.
const RELEASE_SHIFT: u32 = 2;

impl Consumer {
    /// A consumer starting at the arena's current tail.
    pub fn new(arena: Arc<Arena>) -> Self {
        let tail = arena.tail().load(Ordering::Acquire);
        Self { mode: arena.mode(), arena, cached_head: tail, tail, released: tail }
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
        if self.mode == RingMode::Fast {
            return self.peek_fast(at);
        }
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

    /// [`Self::peek`] in the fast mode: the slot's own commit word says whether it is
    /// published; `head` is never read.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn peek_fast(&mut self, at: u64) -> Result<Option<Slot>> {
        let cap = self.arena.capacity();
        let mut at = at;
        loop {
            // Positions move by whole slots from a tail that came from shared memory: it
            // must sit on a slot boundary before a header is read there.
            if at % MSG_HEADER_SIZE as u64 != 0 {
                return Err(corrupted(&self.arena, "consumer position is not on a 64-byte slot"));
            }
            let p = phys(at, cap);
            // Acquire: pairs with the producer's release store of this word, making the
            // slot's header and payload visible.
            let published =
                |c: &Self| c.arena.commit_word(p).load(Ordering::Acquire) == at.wrapping_add(1);
            if !published(self) {
                // Empty: the moment to hand consumed bytes back (off the reply's path),
                // and to notice a peer's FatalError or clean exit. A producer commits
                // before it marks the arena `Disconnected`: look again before saying it
                // left, so nothing it sent is lost.
                self.release();
                if let Err(e) = check_alive(&self.arena) {
                    if matches!(e, Error::PeerClosed) && published(self) {
                        continue;
                    }
                    return Err(e);
                }
                return Ok(None);
            }
            let h = self.arena.read_msg_header(p);
            if h.size == SKIP_MARKER {
                // A producer writes a marker only where a slot does not fit before the
                // end, so never at the ring's start.
                if p == 0 {
                    return Err(corrupted(&self.arena, "skip marker at the start of the ring"));
                }
                at = at.wrapping_add((cap - p) as u64);
                continue;
            }
            let reserved = h.reserved_size as usize;
            let usable = self.mode.usable(cap);
            if reserved < MSG_HEADER_SIZE || reserved > usable || reserved % MSG_HEADER_SIZE != 0 {
                return Err(corrupted(
                    &self.arena,
                    "message reserved_size is not a 64-byte multiple in 64..=usable capacity",
                ));
            }
            if h.size as usize > reserved - self.mode.payload_offset() {
                return Err(corrupted(&self.arena, "message size exceeds its reserved slot"));
            }
            if p + reserved > cap {
                return Err(corrupted(&self.arena, "message slot runs past the end of the ring"));
            }
            let end = at.wrapping_add(reserved as u64);
            // Reading ahead (batches) never runs more than a ring past the tail.
            if distance(self.tail, end) > usable as u64 {
                return Err(corrupted(&self.arena, "published slots run more than a ring ahead"));
            }
            if h.size as usize > MSG_HEADER_SIZE - self.mode.payload_offset() {
                // The payload spills past the header line: start that miss now.
                self.arena.prefetch(p + MSG_HEADER_SIZE);
            }
            return Ok(Some(Slot {
                end,
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
        self.arena.payload(slot.phys as usize, self.mode.payload_offset(), slot.size as usize)
    }

    /// The arena this consumer reads.
    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Consumes everything up to `end` (a slot's `end`).
    ///
    /// Compat mode publishes the tail at once (a batch commits once), unlike upstream,
    /// which waits for 32 commits and so strands freed bytes whenever a consumer pauses
    /// with fewer unpublished: a producer then waits for room that is free. The store is
    /// cheap: the tail line stays in our cache until the producer reads it, which it
    /// does only when its cached tail says the ring may be full.
    ///
    /// Fast mode publishes it in [`Consumer::release`]: when the ring is found empty, or
    /// once a quarter of the ring is consumed.
    #[inline]
    pub fn advance(&mut self, end: u64) {
        debug_assert!(
            self.mode == RingMode::Fast
                || distance(self.tail, end) <= distance(self.tail, self.cached_head)
        );
        self.tail = end;
        match self.mode {
            RingMode::Compat => {
                self.released = end;
                // Release: our reads of the released slots happen before the producer,
                // acquiring this tail, overwrites them.
                self.arena.tail().store(end, Ordering::Release);
            }
            RingMode::Fast => {
                if distance(self.released, end) >= (self.arena.capacity() >> RELEASE_SHIFT) as u64 {
                    self.release();
                }
            }
        }
    }

    /// Fast mode: hands the consumed bytes back to the producer. First it zeroes the
    /// commit word of every line in them, since any line may start a slot on a later
    /// lap and must not then read as published (a line that held payload may hold
    /// anything there); then it publishes the tail. Done off the critical path: when the
    /// ring is empty, or in bulk, never between reading a message and answering it.
    #[inline]
    fn release(&mut self) {
        if self.released == self.tail {
            return;
        }
        let cap = self.arena.capacity();
        let mut at = self.released;
        while at != self.tail {
            self.arena.commit_word(phys(at, cap)).store(0, Ordering::Relaxed);
            at = at.wrapping_add(MSG_HEADER_SIZE as u64);
        }
        self.released = self.tail;
        // For `tachyon top`, in tail's line: messages received and sleeps so far. Before
        // the tail store, for the reason given in `Producer::flush`.
        let stats = self.arena.stats();
        self.arena
            .published_counter(arena_off::CONSUMED_MESSAGES)
            .store(stats.received_messages.get(), Ordering::Relaxed);
        self.arena
            .published_counter(arena_off::CONSUMER_SLEEPS)
            .store(stats.sleeps.get(), Ordering::Relaxed);
        // Release: the zeroes above, and our reads of the released slots, happen before
        // the producer, acquiring this tail, writes these lines again.
        self.arena.tail().store(self.tail, Ordering::Release);
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(any(test, feature = "test-hooks"))]
mod fuzz;
#[cfg(any(test, feature = "test-hooks"))]
pub use fuzz::{fuzz_consumer, fuzz_consumer_fast};

#[cfg(test)]
mod tests;
