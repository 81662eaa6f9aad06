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
};

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
    fn capacity_rules() {
        assert!(is_valid_capacity(64));
        assert!(is_valid_capacity(1 << 31));
        assert!(!is_valid_capacity(32));
        assert!(!is_valid_capacity(96));
        assert!(!is_valid_capacity(1 << 32));
        assert!(!is_valid_capacity(0));
    }
}
