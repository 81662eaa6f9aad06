//! The bytes of a channel file, and the only code that touches them.
//!
//! ```text
//! offset  size  header (4096 bytes, all little-endian)
//!      0     8  magic "TCHYCHAN"
//!      8     4  version (1)
//!     12     4  header length (4096)
//!     16     8  capacity: bytes of the entry area (a multiple of 8)
//!     64     4  append lock: the holder's pid, 0 when free; bit 31 set while
//!                someone sleeps waiting for it (the unlocker wakes them only then)
//!     68     4  intent valid: an append's header updates are being applied
//!     72     8  the lock holder's start time (0 while unknown)
//!     80     8  head: logical position of the oldest entry still kept
//!     88     8  tail: logical position where the next entry goes
//!     96     8  next id
//!    104    80  the intent: what an append's header updates are (see `Intent`)
//!    256     4  notify: bumped after every publish (a futex word)
//!    260     4  readers asleep on `notify` (a publish wakes them only if any)
//!
//! What an append changes under its lock sits in two cache lines (64..192), so the
//! lock moves between processes with as few lines as possible; the notify word, which
//! every publish bumps outside the lock, has a line of its own.
//!   4096        the entry area: `capacity` bytes
//! ```
//!
//! An entry sits at a logical position `p` (at byte `p % capacity` of the area), 8-byte
//! aligned, and never wraps: one that would cross the end is preceded by a padding
//! entry (or, when fewer than 40 bytes remain, by nothing: readers skip such a tail).
//!
//! ```text
//! offset  size  entry header (40 bytes)
//!      0     4  state: 0 being written, 1 published, 2 padding, 3 abandoned
//!      4     4  payload length
//!      8     8  id
//!     16     4  entry length: header, media type and payload, rounded up to 8
//!     20     2  media type length (at most 255)
//!     24     4  the writer's pid
//!     32     8  the writer's start time
//!     40        media type (UTF-8), then the payload
//! ```
//!
//! Everything here is read from a file any process of the user may write: every length
//! and position is checked against the mapping before it is used.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// The file's first 8 bytes.
pub(crate) const MAGIC: [u8; 8] = *b"TCHYCHAN";
/// The layout version this code reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Bytes before the entry area.
pub(crate) const HEADER_LEN: usize = 4096;
/// Bytes of an entry's header.
pub(crate) const ENTRY_HEADER: usize = 40;
/// The longest media type.
pub(crate) const MAX_MEDIA: usize = 255;
/// The smallest entry area.
pub(crate) const MIN_CAPACITY: u64 = 4096;
/// The largest entry area (1 TiB).
pub(crate) const MAX_CAPACITY: u64 = 1 << 40;

/// Entry states.
pub(crate) mod state {
    pub const WRITING: u32 = 0;
    pub const PUBLISHED: u32 = 1;
    pub const PADDING: u32 = 2;
    pub const ABANDONED: u32 = 3;
}

pub(crate) const OFF_CAPACITY: usize = 16;
pub(crate) const OFF_LOCK: usize = 64;
pub(crate) const OFF_INTENT_VALID: usize = 68;
pub(crate) const OFF_LOCK_START: usize = 72;
pub(crate) const OFF_HEAD: usize = 80;
pub(crate) const OFF_TAIL: usize = 88;
pub(crate) const OFF_NEXT_ID: usize = 96;
pub(crate) const OFF_INTENT: usize = 104;
pub(crate) const OFF_NOTIFY: usize = 256;
pub(crate) const OFF_WAITERS: usize = 260;

/// What an append changes in the header and the entry area, written down before it
/// changes them, so that whoever takes the lock after a holder died mid-way can finish
/// the job (every field is an absolute value: applying it twice is applying it once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Intent {
    /// The new head.
    pub head: u64,
    /// Where a padding entry goes, and its length (0: none).
    pub pad_at: u64,
    pub pad_len: u64,
    /// Where the entry goes.
    pub pos: u64,
    /// Its id.
    pub id: u64,
    /// Its entry length, payload length and media type length.
    pub entry_len: u64,
    pub payload_len: u64,
    pub media_len: u64,
    /// Its writer.
    pub pid: u64,
    pub start: u64,
}

impl Intent {
    pub(crate) const WORDS: usize = 10;

    pub(crate) fn to_words(self) -> [u64; Self::WORDS] {
        [
            self.head,
            self.pad_at,
            self.pad_len,
            self.pos,
            self.id,
            self.entry_len,
            self.payload_len,
            self.media_len,
            self.pid,
            self.start,
        ]
    }

    /// Whether a dead writer's intent, read back from the file, is one an append could
    /// have written (so applying it stays inside the file and overflows nothing).
    pub(crate) fn is_sane(&self, capacity: u64, max_position: u64) -> bool {
        self.pos <= max_position
            && self.head <= self.pos
            && self.pad_at <= self.pos
            && self.pad_len < capacity
            && self.id >= 1
            && self.id < max_position
            && self.entry_len >= ENTRY_HEADER as u64
            && self.entry_len <= capacity
            && self.payload_len <= capacity
            && self.media_len <= MAX_MEDIA as u64
    }

    pub(crate) fn from_words(w: [u64; Self::WORDS]) -> Self {
        Self {
            head: w[0],
            pad_at: w[1],
            pad_len: w[2],
            pos: w[3],
            id: w[4],
            entry_len: w[5],
            payload_len: w[6],
            media_len: w[7],
            pid: w[8],
            start: w[9],
        }
    }
}

/// An entry header as read (copied out, then checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub state: u32,
    pub payload_len: u32,
    pub id: u64,
    pub entry_len: u32,
    pub media_len: u16,
    pub pid: u32,
    pub start: u64,
}

/// The length of an entry with this media type and payload, or `None` past `u32`.
pub(crate) fn entry_len(media: usize, payload: usize) -> Option<u64> {
    let raw = (ENTRY_HEADER as u64).checked_add(media as u64)?.checked_add(payload as u64)?;
    let len = raw.checked_add(7)? & !7;
    u32::try_from(len).is_ok().then_some(len)
}

/// A mapped channel file: typed access to its header words and its entry area.
pub(crate) struct Area {
    base: *mut u8,
    capacity: u64,
}

// SAFETY: `Area` only hands out atomics and copies through raw pointers into a shared
// mapping that lives as long as the `Channel` owning both; nothing in it is tied to a
// thread.
unsafe impl Send for Area {}
// SAFETY: as above; concurrent access goes through atomics, and the entry copies are
// validated seqlock-style by the callers.
unsafe impl Sync for Area {}

impl Area {
    /// `base..base + len` must stay mapped (shared, read-write) for the `Area`'s life and
    /// be 8-byte aligned; `len` must be `HEADER_LEN + capacity`.
    ///
    /// # Safety
    /// As above: the caller keeps the mapping alive and of that length.
    pub(crate) unsafe fn new(base: *mut u8, len: usize, capacity: u64) -> Self {
        debug_assert_eq!(len as u64, HEADER_LEN as u64 + capacity);
        debug_assert_eq!(base as usize % 8, 0);
        Self { base, capacity }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The header word at `off` (a fixed offset below `HEADER_LEN`, 8-aligned).
    #[allow(clippy::cast_ptr_alignment)] // the base is page-aligned and `off` is checked
    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= HEADER_LEN);
        // SAFETY: in bounds and aligned (checked above); the mapping outlives `self`, and
        // `AtomicU64` has the layout of `u64`; every access to these bytes is atomic.
        unsafe { &*self.base.add(off).cast::<AtomicU64>() }
    }

    /// The 32-bit header word at `off` (4-aligned, below `HEADER_LEN`).
    #[allow(clippy::cast_ptr_alignment)] // the base is page-aligned and `off` is checked
    pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= HEADER_LEN);
        // SAFETY: as `u64_at`.
        unsafe { &*self.base.add(off).cast::<AtomicU32>() }
    }

    /// The file's first 16 bytes (magic, version, header length), copied.
    pub(crate) fn prefix(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: 16 bytes at the start of a mapping at least `HEADER_LEN` long.
        unsafe { std::ptr::copy_nonoverlapping(self.base, out.as_mut_ptr(), 16) };
        out
    }

    /// Writes the file's first 16 bytes (the creator, before anyone else reads them).
    pub(crate) fn set_prefix(&self, bytes: &[u8; 16]) {
        // SAFETY: as `prefix`; the creator writes these once, before publishing the
        // magic word with release ordering.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base, 16) };
    }

    /// Byte offset in the mapping of logical position `pos` plus `within` bytes, if the
    /// `n` bytes there lie inside one lap of the entry area.
    fn data(&self, pos: u64, within: u64, n: u64) -> Option<usize> {
        let phys = pos % self.capacity;
        let end = phys.checked_add(within)?.checked_add(n)?;
        (end <= self.capacity).then(|| HEADER_LEN + (phys + within) as usize)
    }

    /// The state word of the entry at `pos` (8-aligned, with a header's room left in
    /// the lap).
    #[allow(clippy::cast_ptr_alignment)] // the base is page-aligned and `off` is checked
    pub(crate) fn entry_state(&self, pos: u64) -> Option<&AtomicU32> {
        let off = self.data(pos, 0, ENTRY_HEADER as u64)?;
        (off % 8 == 0).then(|| {
            // SAFETY: in bounds (checked by `data`) and aligned; the word is only ever
            // accessed atomically.
            unsafe { &*self.base.add(off).cast::<AtomicU32>() }
        })
    }

    /// Copies the header of the entry at `pos`.
    pub(crate) fn read_entry_header(&self, pos: u64) -> Option<EntryHeader> {
        let off = self.data(pos, 0, ENTRY_HEADER as u64)?;
        let mut b = [0u8; ENTRY_HEADER];
        // SAFETY: `ENTRY_HEADER` bytes in bounds (checked by `data`). Another process may
        // be writing them: the copy may be torn, and the caller validates it (and the
        // head) before trusting it.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), b.as_mut_ptr(), ENTRY_HEADER) };
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(EntryHeader {
            state: u32_at(0),
            payload_len: u32_at(4),
            id: u64_at(8),
            entry_len: u32_at(16),
            media_len: u16::from_le_bytes([b[20], b[21]]),
            pid: u32_at(24),
            start: u64_at(32),
        })
    }

    /// Writes the header of an entry at `pos` (state last, with the others plain).
    pub(crate) fn write_entry_header(&self, pos: u64, h: &EntryHeader) -> bool {
        let Some(off) = self.data(pos, 0, ENTRY_HEADER as u64) else { return false };
        let mut b = [0u8; ENTRY_HEADER];
        b[4..8].copy_from_slice(&h.payload_len.to_le_bytes());
        b[8..16].copy_from_slice(&h.id.to_le_bytes());
        b[16..20].copy_from_slice(&h.entry_len.to_le_bytes());
        b[20..22].copy_from_slice(&h.media_len.to_le_bytes());
        b[24..28].copy_from_slice(&h.pid.to_le_bytes());
        b[32..40].copy_from_slice(&h.start.to_le_bytes());
        // SAFETY: in bounds (checked by `data`); the bytes after the state word belong to
        // the lock holder writing this entry (readers do not read past the tail, and the
        // head moved past any older entry here first).
        unsafe {
            std::ptr::copy_nonoverlapping(
                b[4..].as_ptr(),
                self.base.add(off + 4),
                ENTRY_HEADER - 4,
            );
        }
        if let Some(s) = self.entry_state(pos) {
            s.store(h.state, std::sync::atomic::Ordering::Release);
        }
        true
    }

    /// Copies `src` into the entry at `pos`, `within` bytes after its start.
    pub(crate) fn write_body(&self, pos: u64, within: u64, src: &[u8]) -> bool {
        let Some(off) = self.data(pos, within, src.len() as u64) else { return false };
        // SAFETY: in bounds (checked by `data`); the entry was reserved by this writer,
        // so no other writer touches these bytes, and readers do not read them before
        // the entry's state says published.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), src.len()) };
        true
    }

    /// Copies `n` bytes of the entry at `pos`, `within` bytes after its start.
    pub(crate) fn read_body(&self, pos: u64, within: u64, n: u64, out: &mut Vec<u8>) -> bool {
        let Some(off) = self.data(pos, within, n) else { return false };
        let n = n as usize;
        out.reserve(n);
        let at = out.len();
        // SAFETY: `n` bytes in bounds (checked by `data`), into room just reserved. A
        // writer lapping the area may overwrite them meanwhile: the caller re-reads the
        // head afterwards and drops the copy if it moved past this entry.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(off), out.as_mut_ptr().add(at), n);
            out.set_len(at + n);
        }
        true
    }
}
