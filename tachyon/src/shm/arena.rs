//! An arena: the 768-byte header and the data ring inside one [`SharedMemory`] mapping.
//!
//! This module turns raw shared memory into typed, bounds-checked accessors. It is where
//! pointers into the mapping are made, so it holds most of the crate's `unsafe` code. Every
//! word shared with the peer is accessed as an atomic, because the peer (possibly hostile)
//! may write it at any time. Each accessor checks its bounds with `assert!`. The ring logic
//! validates untrusted values before they get here, so the asserts guard this crate's own
//! invariants, not the peer's input.

use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::shm::layout::{self, arena_off, msg_off, state, ARENA_HEADER_SIZE, MSG_HEADER_SIZE};
use crate::shm::region::SharedMemory;

/// A message header as read from the ring (untrusted until validated by the consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgHeader {
    pub size: u32,
    pub type_id: u32,
    pub reserved_size: u32,
    pub correlation_id: u64,
}

/// A formatted or attached arena.
#[derive(Debug)]
pub(crate) struct Arena {
    shm: SharedMemory,
    base: NonNull<u8>,
    capacity: usize,
    /// Whether the peers negotiated the fast mode for this ring (a local decision of the
    /// handshake, never read from shared memory). Set before any producer or consumer
    /// is made.
    fast: AtomicBool,
    /// This process's counters for the ring (process-local, never in the mapping).
    stats: crate::observe::stats::RingStats,
}

// SAFETY: the arena is a handle on process-shared memory. Every shared word is accessed
// through atomics, and the ring bytes are accessed only by the single producer or single
// consumer that owns a reservation. Moving or sharing the handle between threads adds
// nothing beyond what another process can already do.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` hands out only atomics and bounds-checked reads.
unsafe impl Sync for Arena {}

impl Arena {
    /// Creates and formats a new arena with a `capacity`-byte ring, in a memfd named
    /// for an SPSC bus.
    pub fn create(capacity: usize) -> Result<Self> {
        Self::create_named(capacity, layout::memfd_name::SPSC)
    }

    /// As [`Arena::create`], in a memfd named `name` (one of [`layout::memfd_name`]):
    /// the name is how `tachyon inspect` tells what a process's arena is for.
    pub fn create_named(capacity: usize, name: &str) -> Result<Self> {
        if !layout::is_valid_capacity(capacity) {
            return Err(Error::InvalidCapacity(capacity));
        }
        let shm = SharedMemory::create(name, layout::shm_size(capacity))?;
        let arena = Self {
            base: shm.as_ptr(),
            shm,
            capacity,
            fast: AtomicBool::new(false),
            stats: crate::observe::stats::RingStats::default(),
        };
        arena.format();
        Ok(arena)
    }

    /// Attaches to an arena a peer formatted, checking everything WIRE.md lists plus the
    /// version: mapping >= 768, magic, version, alignment 64, capacity a power of two
    /// >= 64, mapping >= 768 + capacity.
    pub fn attach(fd: OwnedFd, shm_size: usize) -> Result<Self> {
        if shm_size < ARENA_HEADER_SIZE {
            return Err(Error::AbiMismatch(format!(
                "shm_size {shm_size} is below the 768-byte header"
            )));
        }
        let shm = SharedMemory::attach_with(fd, shm_size, crate::shm::options::POPULATE_LIMIT)?;
        let mut arena = Self {
            base: shm.as_ptr(),
            shm,
            capacity: 0,
            fast: AtomicBool::new(false),
            stats: crate::observe::stats::RingStats::default(),
        };
        let magic = arena.u32_at(arena_off::MAGIC).load(Ordering::Acquire);
        let version = arena.u32_at(arena_off::VERSION).load(Ordering::Acquire);
        let align = arena.u32_at(arena_off::MSG_ALIGNMENT).load(Ordering::Acquire);
        let capacity = arena.u32_at(arena_off::CAPACITY).load(Ordering::Acquire) as usize;
        if magic != layout::MAGIC {
            return Err(Error::AbiMismatch(format!(
                "arena magic {magic:#x}, expected {:#x}",
                layout::MAGIC
            )));
        }
        if version != layout::VERSION {
            return Err(Error::AbiMismatch(format!(
                "arena version {version:#x}, expected {:#x}",
                layout::VERSION
            )));
        }
        if align != layout::MSG_ALIGNMENT {
            return Err(Error::AbiMismatch(format!("arena alignment {align}, expected 64")));
        }
        if !layout::is_valid_capacity(capacity) || layout::shm_size(capacity) > shm_size {
            return Err(Error::AbiMismatch(format!(
                "arena capacity {capacity} is invalid for a {shm_size}-byte mapping"
            )));
        }
        arena.capacity = capacity;
        Ok(arena)
    }

    /// Writes the header fields, zeroes the indices, and stores `Ready` last (release), so
    /// a peer that sees `Ready` sees the rest.
    fn format(&self) {
        self.u32_at(arena_off::STATE).store(state::INITIALIZING, Ordering::Relaxed);
        self.u32_at(arena_off::MAGIC).store(layout::MAGIC, Ordering::Relaxed);
        self.u32_at(arena_off::VERSION).store(layout::VERSION, Ordering::Relaxed);
        self.u32_at(arena_off::CAPACITY).store(self.capacity as u32, Ordering::Relaxed);
        self.u32_at(arena_off::MSG_ALIGNMENT).store(layout::MSG_ALIGNMENT, Ordering::Relaxed);
        self.head().store(0, Ordering::Relaxed);
        self.tail().store(0, Ordering::Relaxed);
        self.consumer_sleeping().store(layout::sleep::AWAKE, Ordering::Relaxed);
        self.u64_at(arena_off::PRODUCER_HEARTBEAT).store(0, Ordering::Relaxed);
        self.u64_at(arena_off::CONSUMER_HEARTBEAT).store(0, Ordering::Relaxed);
        // Release: publishes every store above to a peer that acquires `state == Ready`.
        self.u32_at(arena_off::STATE).store(state::READY, Ordering::Release);
    }

    /// The shared-memory region (for its fd and NUMA binding).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// This process's counters for the ring.
    #[inline]
    pub fn stats(&self) -> &crate::observe::stats::RingStats {
        &self.stats
    }

    /// Ring capacity in bytes (validated power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= ARENA_HEADER_SIZE);
        // SAFETY: `off` is 4-aligned and inside the 768-byte header, and the mapping is
        // page aligned and at least 768 bytes long, so the pointer is aligned and valid for
        // as long as `self` (which owns the mapping) lives. The word is shared with another
        // process, which is why it is only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    #[inline]
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= ARENA_HEADER_SIZE);
        // SAFETY: as in `u32_at`, with 8-byte alignment checked.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    /// The producer's byte counter.
    #[inline]
    pub fn head(&self) -> &AtomicU64 {
        self.u64_at(arena_off::HEAD)
    }

    /// The consumer's byte counter.
    #[inline]
    pub fn tail(&self) -> &AtomicU64 {
        self.u64_at(arena_off::TAIL)
    }

    /// A word of the header padding a fast-mode side publishes a counter in (one of
    /// [`arena_off::PUBLISHED_MESSAGES`], [`arena_off::CONSUMED_MESSAGES`],
    /// [`arena_off::CONSUMER_SLEEPS`]).
    #[inline]
    pub fn published_counter(&self, off: usize) -> &AtomicU64 {
        debug_assert!(matches!(
            off,
            arena_off::PUBLISHED_MESSAGES
                | arena_off::CONSUMED_MESSAGES
                | arena_off::CONSUMER_SLEEPS
        ));
        self.u64_at(off)
    }

    /// The futex word: 0 awake, 1 sleeping, 2 pure-spin.
    #[inline]
    pub fn consumer_sleeping(&self) -> &AtomicU32 {
        self.u32_at(arena_off::CONSUMER_SLEEPING)
    }

    /// Turns pure-spin (polling) mode on or off. Off only clears the polling value, so it
    /// never disturbs a consumer that is sleeping at that moment.
    pub fn set_polling(&self, enabled: bool) {
        let word = self.consumer_sleeping();
        if enabled {
            word.store(layout::sleep::POLLING, Ordering::SeqCst);
        } else {
            let _ = word.compare_exchange(
                layout::sleep::POLLING,
                layout::sleep::AWAKE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            );
        }
    }

    /// The arena state word.
    #[inline]
    pub fn state(&self) -> u32 {
        // Acquire: a peer that sets FatalError after writing something wants us to see it.
        self.u32_at(arena_off::STATE).load(Ordering::Acquire)
    }

    /// Marks a clean exit: `Ready` becomes `Disconnected` (a `FatalError` stays).
    pub fn mark_disconnected(&self) {
        let _ = self.u32_at(arena_off::STATE).compare_exchange(
            state::READY,
            state::DISCONNECTED,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    #[cfg(feature = "test-hooks")]
    /// Stores any state word, as a hostile peer could (fuzzing and tests).
    pub(crate) fn set_state_for_tests(&self, v: u32) {
        self.u32_at(arena_off::STATE).store(v, Ordering::Release);
    }

    /// Moves the arena to the `FatalError` state.
    pub fn set_fatal(&self) {
        self.u32_at(arena_off::STATE).store(state::FATAL_ERROR, Ordering::Release);
    }

    #[inline]
    fn msg_word<T>(&self, phys: usize, off: usize) -> *mut T {
        assert!(phys % MSG_HEADER_SIZE == 0 && phys + MSG_HEADER_SIZE <= self.capacity);
        // SAFETY: `phys + 64 <= capacity` and the data ring starts at 768 inside a mapping
        // of at least 768 + capacity bytes, so the header lies inside the mapping. The
        // header start is 64-aligned (mapping page aligned, 768 and `phys` multiples of 64)
        // and `off` is a field offset inside it, so the word is naturally aligned.
        unsafe { self.base.as_ptr().add(ARENA_HEADER_SIZE + phys + off).cast() }
    }

    /// Reads the message header at ring offset `phys` (a multiple of 64).
    #[inline]
    pub fn read_msg_header(&self, phys: usize) -> MsgHeader {
        // SAFETY: (all four loads) `msg_word` returns an aligned pointer inside the mapping,
        // valid while `self` lives. The peer may write it concurrently, hence atomic loads.
        // Relaxed suffices: the acquire load of `head` that made this slot visible orders
        // these reads after the producer's writes.
        unsafe {
            MsgHeader {
                size: AtomicU32::from_ptr(self.msg_word(phys, msg_off::SIZE))
                    .load(Ordering::Relaxed),
                type_id: AtomicU32::from_ptr(self.msg_word(phys, msg_off::TYPE_ID))
                    .load(Ordering::Relaxed),
                reserved_size: AtomicU32::from_ptr(self.msg_word(phys, msg_off::RESERVED_SIZE))
                    .load(Ordering::Relaxed),
                correlation_id: AtomicU64::from_ptr(self.msg_word(phys, msg_off::CORRELATION_ID))
                    .load(Ordering::Relaxed),
            }
        }
    }

    /// Writes a message header at `phys`. `correlation_id` is written only for RPC, as
    /// upstream does (a plain SPSC commit writes bytes 0..12).
    #[inline]
    pub fn write_msg_header(
        &self,
        phys: usize,
        size: u32,
        type_id: u32,
        reserved: u32,
        cid: Option<u64>,
    ) {
        // SAFETY: (all stores) aligned words inside the mapping (see `msg_word`). Relaxed stores:
        // the release store of `head` that publishes this slot orders them.
        unsafe {
            AtomicU32::from_ptr(self.msg_word(phys, msg_off::SIZE)).store(size, Ordering::Relaxed);
            AtomicU32::from_ptr(self.msg_word(phys, msg_off::TYPE_ID))
                .store(type_id, Ordering::Relaxed);
            AtomicU32::from_ptr(self.msg_word(phys, msg_off::RESERVED_SIZE))
                .store(reserved, Ordering::Relaxed);
            if let Some(cid) = cid {
                AtomicU64::from_ptr(self.msg_word(phys, msg_off::CORRELATION_ID))
                    .store(cid, Ordering::Relaxed);
            }
        }
    }

    /// Hints the CPU to start loading the ring line at `phys` (a read prefetch). Used for
    /// a payload line while the header above it is still a cache miss, so the two misses
    /// overlap instead of running one after the other. A no-op off x86-64 or outside the
    /// ring.
    #[inline]
    pub fn prefetch(&self, phys: usize) {
        #[cfg(target_arch = "x86_64")]
        if phys < self.capacity {
            // SAFETY: `phys < capacity`, so the address lies inside the mapping; a
            // prefetch never faults and never changes memory.
            unsafe {
                let p = self.base.as_ptr().add(ARENA_HEADER_SIZE + phys);
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = phys;
    }

    /// The ring protocol this arena runs.
    #[inline]
    pub fn mode(&self) -> layout::RingMode {
        layout::RingMode::for_ring(self.fast.load(Ordering::Relaxed), self.capacity)
    }

    /// Records what the handshake negotiated (before producers and consumers exist). The
    /// fast mode also needs this process registered for membarrier (`wait::Barrier`),
    /// which negotiation already checked.
    pub fn set_fast(&self, fast: bool) {
        let fast = fast && crate::shm::wait::membarrier_registered();
        self.fast.store(fast, Ordering::Relaxed);
        if self.mode() == layout::RingMode::Fast {
            // Both peers are ours: say so in the header's padding, for readers such as
            // `tachyon inspect` (a compatible ring's bytes stay exactly upstream's).
            self.u32_at(arena_off::MODE_MARK).store(layout::FAST_MARK, Ordering::Relaxed);
        }
    }

    /// The fast mode's commit word of the slot at ring offset `phys` (a multiple of 64):
    /// see [`layout::RingMode::Fast`].
    #[inline]
    pub fn commit_word(&self, phys: usize) -> &AtomicU64 {
        // SAFETY: `msg_word` returns an aligned pointer inside the mapping (the commit
        // word lies inside the 64-byte header line), valid as long as `&self`. The peer
        // may write it at any time, hence an atomic.
        unsafe { AtomicU64::from_ptr(self.msg_word(phys, layout::fast::COMMIT)) }
    }

    /// Writes a skip marker (`size = 0xFFFFFFFF`, rest zero) at `phys`.
    #[inline]
    pub fn write_skip_marker(&self, phys: usize) {
        self.write_msg_header(phys, layout::SKIP_MARKER, 0, 0, Some(0));
    }

    /// `off` is the payload's offset in the slot (64 in compat mode, 32 in fast mode).
    #[inline]
    fn payload_ptr(&self, phys: usize, off: usize, len: usize) -> *mut u8 {
        assert!(
            phys % MSG_HEADER_SIZE == 0
                && off <= MSG_HEADER_SIZE
                && len <= self.capacity
                && phys + off + len <= self.capacity
        );
        // SAFETY: the range `768 + phys + off .. + len` lies inside the mapping, as checked.
        unsafe { self.base.as_ptr().add(ARENA_HEADER_SIZE + phys + off) }
    }

    /// The payload bytes (`len` of them, from offset `off`) of the slot at `phys`.
    ///
    /// The bytes live in shared memory; a hostile peer could change them while the slice
    /// is alive, but it can never make the slice point outside the mapping.
    #[inline]
    pub fn payload(&self, phys: usize, off: usize, len: usize) -> &[u8] {
        // SAFETY: `payload_ptr` checked the range is inside the mapping, which lives as long
        // as `&self`. The consumer reads only slots the producer published and will not
        // touch again until the consumer publishes a tail past them.
        unsafe { std::slice::from_raw_parts(self.payload_ptr(phys, off, len), len) }
    }

    /// The writable payload bytes (`len`, from offset `off`) of the slot at `phys`.
    ///
    /// # Safety
    /// The caller must hold the producer's reservation of this slot and must not create a
    /// second slice over the same bytes while this one lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn payload_mut(&self, phys: usize, off: usize, len: usize) -> &mut [u8] {
        // SAFETY: the range is inside the mapping (checked by `payload_ptr`); exclusivity is
        // the caller's contract. The consumer never reads past the published head, which
        // does not cover a reserved slot until it is committed.
        unsafe { std::slice::from_raw_parts_mut(self.payload_ptr(phys, off, len), len) }
    }
}

/// What the counters of a bus's reader sum: each arena's ring counters.
impl AsRef<crate::observe::stats::RingStats> for Arena {
    fn as_ref(&self) -> &crate::observe::stats::RingStats {
        self.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_formats_the_header() {
        let a = Arena::create(4096).unwrap();
        assert_eq!(a.state(), state::READY);
        assert_eq!(a.capacity(), 4096);
        assert_eq!(a.u32_at(arena_off::MAGIC).load(Ordering::Relaxed), layout::MAGIC);
        assert_eq!(a.shm().len(), 768 + 4096);
    }

    #[test]
    fn invalid_capacity_is_rejected() {
        assert!(matches!(Arena::create(100), Err(Error::InvalidCapacity(100))));
        assert!(matches!(Arena::create(32), Err(Error::InvalidCapacity(32))));
    }

    #[test]
    fn msg_header_round_trips() {
        let a = Arena::create(1024).unwrap();
        a.write_msg_header(128, 5, 0x0001_0002, 128, Some(77));
        let h = a.read_msg_header(128);
        assert_eq!(
            h,
            MsgHeader { size: 5, type_id: 0x0001_0002, reserved_size: 128, correlation_id: 77 }
        );
    }
}
