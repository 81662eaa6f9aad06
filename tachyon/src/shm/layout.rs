//! Byte layout of upstream Tachyon ABI v0x04 (`shared/WIRE.md`), checked at compile time.
//!
//! Nothing here touches memory: these are the numbers every other module uses. The
//! [`ArenaHeaderLayout`] and [`MsgHeaderLayout`] structs exist only so `offset_of!` can
//! prove, at compile time, that the constants match a `#[repr(C)]` description of the
//! same bytes. They are never constructed.

use core::mem::{offset_of, size_of};

/// `"TACH"`: the first word of every arena header and handshake.
pub const MAGIC: u32 = 0x5441_4348;
/// The ABI version this crate speaks.
pub const VERSION: u32 = 0x04;
/// Alignment of every message slot, in bytes.
pub const MSG_ALIGNMENT: u32 = 64;
/// Size of the arena header that precedes the data ring.
pub const ARENA_HEADER_SIZE: usize = 768;
/// Size of the header in front of every message payload.
pub const MSG_HEADER_SIZE: usize = 64;
/// `size` value of a skip marker written at the ring's end before wrapping.
pub const SKIP_MARKER: u32 = 0xFFFF_FFFF;
/// The producer publishes `head` at the latest after this many commits; the consumer
/// publishes `tail` after this many.
pub const PUBLISH_BATCH: u32 = 32;
/// Smallest ring capacity the ABI allows.
pub const MIN_CAPACITY: usize = 64;
/// Largest ring capacity: `768 + capacity` must fit the handshake's u32 `shm_size`.
pub const MAX_CAPACITY: usize = 1 << 31;
/// Futex spin count before sleeping, as upstream defaults it.
pub const DEFAULT_SPIN_THRESHOLD: u32 = 10_000;
/// Bit 0 of the handshake `flags`: the peer is an RPC bus (two arenas).
pub const FLAG_RPC: u32 = 1;
/// Size of the bootstrap handshake struct.
pub const HANDSHAKE_SIZE: usize = 32;
/// `"FAST"`, written by both peers at [`arena_off::MODE_MARK`] (header padding) when a
/// ring runs the fast protocol; a compatible ring keeps the zero upstream leaves there.
pub const FAST_MARK: u32 = 0x4641_5354;

/// The names of the memfds arenas live in (what `/proc/PID/fd` shows).
pub mod memfd_name {
    /// The ring of an SPSC bus.
    pub const SPSC: &str = "tachyon_arena";
    /// An RPC bus's requests (caller to callee).
    pub const RPC_FWD: &str = "tachyon_rpc_fwd";
    /// An RPC bus's replies (callee to caller).
    pub const RPC_REV: &str = "tachyon_rpc_rev";
}

/// Values of the arena `state` word.
pub mod state {
    /// Arena memory exists but was never formatted.
    pub const UNINITIALIZED: u32 = 0;
    /// The listener is writing the header.
    pub const INITIALIZING: u32 = 1;
    /// Formatted and usable.
    pub const READY: u32 = 2;
    /// A side closed the bus.
    pub const DISCONNECTED: u32 = 3;
    /// A side saw a corrupt header or index; the bus is unusable.
    pub const FATAL_ERROR: u32 = 4;
    /// Reserved by upstream (documents the wire value; never stored by this crate).
    #[allow(dead_code)]
    pub const UNKNOWN: u32 = 5;
}

/// Values of the `consumer_sleeping` futex word.
pub mod sleep {
    /// The consumer is awake.
    pub const AWAKE: u32 = 0;
    /// The consumer is (about to be) in `FUTEX_WAIT`.
    pub const SLEEPING: u32 = 1;
    /// Pure-spin (polling) mode: the consumer never sleeps, producers skip the wake.
    pub const POLLING: u32 = 2;
}

/// `#[repr(C)]` description of the 768-byte arena header, for the layout checks only.
#[repr(C)]
#[allow(dead_code)]
pub(crate) struct ArenaHeaderLayout {
    magic: u32,
    version: u32,
    capacity: u32,
    msg_alignment: u32,
    state: u32,
    _pad0: [u8; 108],
    head: u64,
    _pad1: [u8; 120],
    tail: u64,
    _pad2: [u8; 120],
    consumer_sleeping: u32,
    _pad3: [u8; 124],
    producer_heartbeat: u64,
    _pad4: [u8; 120],
    consumer_heartbeat: u64,
    _pad5: [u8; 120],
}

/// `#[repr(C)]` description of the 64-byte message header, for the layout checks only.
#[repr(C)]
#[allow(dead_code)]
pub(crate) struct MsgHeaderLayout {
    size: u32,
    type_id: u32,
    reserved_size: u32,
    _pad0: u32,
    correlation_id: u64,
    _pad1: [u8; 40],
}

/// Byte offsets inside the arena header.
pub mod arena_off {
    use super::{offset_of, ArenaHeaderLayout as L};
    /// `magic u32`
    pub const MAGIC: usize = offset_of!(L, magic);
    /// `version u32`
    pub const VERSION: usize = offset_of!(L, version);
    /// `capacity u32`
    pub const CAPACITY: usize = offset_of!(L, capacity);
    /// `msg_alignment u32`
    pub const MSG_ALIGNMENT: usize = offset_of!(L, msg_alignment);
    /// `state u32`
    pub const STATE: usize = offset_of!(L, state);
    /// `head u64`, on its own 128-byte line pair
    pub const HEAD: usize = offset_of!(L, head);
    /// `tail u64`
    pub const TAIL: usize = offset_of!(L, tail);
    /// `consumer_sleeping u32` (the futex word)
    pub const CONSUMER_SLEEPING: usize = offset_of!(L, consumer_sleeping);
    /// `producer_heartbeat u64` (upstream never writes it)
    pub const PRODUCER_HEARTBEAT: usize = offset_of!(L, producer_heartbeat);
    /// `consumer_heartbeat u64` (upstream never writes it)
    pub const CONSUMER_HEARTBEAT: usize = offset_of!(L, consumer_heartbeat);
    /// In the padding after `state`: [`super::FAST_MARK`] on a fast-protocol ring.
    pub const MODE_MARK: usize = 64;
    /// Fast mode only, in the padding of the producer's line: the messages it has
    /// published, stored with each head store (for `tachyon top`; nobody else reads it).
    pub const PUBLISHED_MESSAGES: usize = HEAD + 8;
    /// Fast mode only, in the padding of the consumer's line: the messages it has
    /// received, stored with each tail store.
    pub const CONSUMED_MESSAGES: usize = TAIL + 8;
    /// Fast mode only, beside [`CONSUMED_MESSAGES`]: the consumer's futex sleeps so far.
    pub const CONSUMER_SLEEPS: usize = TAIL + 16;
}

/// Byte offsets inside a message header.
pub mod msg_off {
    use super::{offset_of, MsgHeaderLayout as L};
    /// Committed payload length.
    pub const SIZE: usize = offset_of!(L, size);
    /// `route_id << 16 | msg_type`.
    pub const TYPE_ID: usize = offset_of!(L, type_id);
    /// Whole slot size including this header, a multiple of 64.
    pub const RESERVED_SIZE: usize = offset_of!(L, reserved_size);
    /// RPC correlation id (ignored on SPSC buses).
    pub const CORRELATION_ID: usize = offset_of!(L, correlation_id);
}

// Every offset in WIRE.md, proven against the repr(C) description.
const _: () = {
    assert!(size_of::<ArenaHeaderLayout>() == ARENA_HEADER_SIZE);
    assert!(arena_off::MAGIC == 0);
    assert!(arena_off::VERSION == 4);
    assert!(arena_off::CAPACITY == 8);
    assert!(arena_off::MSG_ALIGNMENT == 12);
    assert!(arena_off::STATE == 16);
    assert!(
        arena_off::MODE_MARK >= arena_off::STATE + 4 && arena_off::MODE_MARK + 4 <= arena_off::HEAD
    );
    assert!(arena_off::HEAD == 128);
    assert!(arena_off::TAIL == 256);
    assert!(arena_off::CONSUMER_SLEEPING == 384);
    assert!(arena_off::PRODUCER_HEARTBEAT == 512);
    assert!(arena_off::CONSUMER_HEARTBEAT == 640);
    assert!(size_of::<MsgHeaderLayout>() == MSG_HEADER_SIZE);
    assert!(msg_off::SIZE == 0);
    assert!(msg_off::TYPE_ID == 4);
    assert!(msg_off::RESERVED_SIZE == 8);
    assert!(msg_off::CORRELATION_ID == 16);
    assert!(MSG_HEADER_SIZE == MSG_ALIGNMENT as usize);
    assert!(ARENA_HEADER_SIZE % MSG_ALIGNMENT as usize == 0);
    assert!(MAX_CAPACITY + ARENA_HEADER_SIZE <= u32::MAX as usize);
    // The fast mode's commit word and payload start inside the 64-byte header line, after
    // the fields both modes share.
    assert!(fast::COMMIT >= msg_off::CORRELATION_ID + 8);
    assert!(fast::PAYLOAD >= fast::COMMIT + 8 && fast::PAYLOAD < MSG_HEADER_SIZE);
    assert!(fast::GUARD == MSG_HEADER_SIZE);
};

/// The ring protocol a pair of peers speaks, decided at the handshake.
///
/// * `Compat`: upstream ABI v0x04 exactly. The consumer learns of new messages from the
///   shared `head`; the payload follows the 64-byte header.
/// * `Fast`: both peers are ours (negotiated by the bootstrap's extension frame). Same
///   arena header, head, tail and futex word, but each slot carries its own commit word
///   (`fast::COMMIT`): the producer stores `position + 1` there last, with release
///   ordering, and the consumer polls the slot it reads next instead of `head`. The
///   payload starts at byte 32 of the slot, so a message of up to 32 bytes is one cache
///   line. Commit words are stored at flush (after 32 commits, or when the caller
///   flushes), in ring order, so the consumer never polls a line still being filled.
///   Before that, the producer zeroes the commit word where the next slot will start
///   (kept free by one reserved line at the end of the free space), so stale bytes from
///   an earlier lap never read as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingMode {
    /// Upstream's protocol (ABI v0x04, byte-exact).
    #[default]
    Compat,
    /// Our per-slot commit protocol (both peers are ours).
    Fast,
}

/// The fast mode's slot layout (see [`RingMode::Fast`]).
pub mod fast {
    /// Offset of the commit word (u64) in a slot: `position + 1` once published.
    pub const COMMIT: usize = 24;
    /// Offset of the payload in a slot.
    pub const PAYLOAD: usize = 32;
    /// Free space always kept behind the head, so the next slot's commit word can be
    /// cleared before the current one is published.
    pub const GUARD: usize = 64;
    /// Smallest ring on which two peers of ours switch to the fast mode (below it the
    /// guard line would cost too large a share of the ring).
    pub const MIN_CAPACITY: usize = 1024;
}

impl RingMode {
    /// The mode a ring of `capacity` bytes runs when the peers negotiated `fast`.
    pub const fn for_ring(fast: bool, capacity: usize) -> Self {
        if fast && capacity >= fast::MIN_CAPACITY {
            Self::Fast
        } else {
            Self::Compat
        }
    }

    /// Where a slot's payload starts.
    #[inline]
    pub const fn payload_offset(self) -> usize {
        match self {
            Self::Compat => MSG_HEADER_SIZE,
            Self::Fast => fast::PAYLOAD,
        }
    }

    /// Bytes of the ring a producer may fill (the fast mode keeps a guard line free).
    #[inline]
    pub const fn usable(self, capacity: usize) -> usize {
        match self {
            Self::Compat => capacity,
            Self::Fast => capacity - fast::GUARD,
        }
    }

    /// Slot size for up to `max_payload` bytes: payload offset plus payload, rounded up
    /// to 64. `None` on overflow.
    #[inline]
    pub const fn slot_size(self, max_payload: usize) -> Option<usize> {
        match max_payload.checked_add(self.payload_offset() + MSG_ALIGNMENT as usize - 1) {
            Some(n) => Some(n & !(MSG_ALIGNMENT as usize - 1)),
            None => None,
        }
    }

    /// How this mode orders the sleep/wake handshake.
    #[inline]
    pub(crate) const fn barrier(self) -> crate::shm::wait::Barrier {
        match self {
            Self::Compat => crate::shm::wait::Barrier::Fence,
            Self::Fast => crate::shm::wait::Barrier::Membarrier,
        }
    }

    /// Largest payload one message can carry on a ring of `capacity` bytes.
    #[inline]
    pub const fn max_payload(self, capacity: usize) -> usize {
        self.usable(capacity) - self.payload_offset()
    }
}

#[cfg(any(test, feature = "test-hooks"))]
/// Slot size for a payload of at most `max_payload` bytes: header plus payload, rounded up
/// to 64. `None` when the arithmetic would overflow.
#[inline]
pub const fn slot_size(max_payload: usize) -> Option<usize> {
    match max_payload.checked_add(MSG_HEADER_SIZE + MSG_ALIGNMENT as usize - 1) {
        Some(n) => Some(n & !(MSG_ALIGNMENT as usize - 1)),
        None => None,
    }
}

/// Total shared-memory size of an arena with a `capacity`-byte ring.
#[inline]
pub const fn shm_size(capacity: usize) -> usize {
    ARENA_HEADER_SIZE + capacity
}

/// Whether `capacity` is a legal ring size: a power of two in `64..=2^31`.
#[inline]
pub const fn is_valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
}

#[cfg(feature = "test-hooks")]
/// Largest payload a ring of `capacity` bytes can carry in one message.
#[inline]
pub const fn max_payload(capacity: usize) -> usize {
    capacity - MSG_HEADER_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_size_rounds_header_and_payload_to_64() {
        assert_eq!(slot_size(0), Some(64));
        assert_eq!(slot_size(1), Some(128));
        assert_eq!(slot_size(64), Some(128));
        assert_eq!(slot_size(65), Some(192));
        assert_eq!(slot_size(usize::MAX), None);
    }

    #[test]
    fn fast_slots_carry_32_bytes_in_one_line() {
        let f = RingMode::Fast;
        assert_eq!(f.slot_size(0), Some(64));
        assert_eq!(f.slot_size(32), Some(64));
        assert_eq!(f.slot_size(33), Some(128));
        assert_eq!(f.max_payload(1024), 1024 - 64 - 32);
        assert_eq!(RingMode::Compat.slot_size(32), slot_size(32));
        assert_eq!(RingMode::for_ring(true, 512), RingMode::Compat);
        assert_eq!(RingMode::for_ring(true, 1024), RingMode::Fast);
        assert_eq!(RingMode::for_ring(false, 1 << 20), RingMode::Compat);
    }

    #[test]
    fn capacity_rules() {
        assert!(is_valid_capacity(64));
        assert!(is_valid_capacity(1 << 31));
        assert!(!is_valid_capacity(32));
        assert!(!is_valid_capacity(96));
        assert!(!is_valid_capacity(1 << 32));
        assert!(!is_valid_capacity(0));
    }
}
