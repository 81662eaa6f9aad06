//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): `count` buffers of
//! `size` bytes the kernel picks from for multishot receives. A completion names the
//! buffer it filled; the reactor reads it in place, then gives it back with
//! [`BufRing::recycle`].
//!
//! One of the modules that touch the kernel's rings, so it holds `unsafe` code: the ring
//! of entries is a page-aligned anonymous mapping shared with the kernel, and the buffers
//! are memory the kernel writes into while it owns them.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use memmap2::MmapMut;

use crate::error::{Error, Result};

/// A registered buffer ring and its buffers.
#[derive(Debug)]
pub struct BufRing {
    /// The entries, shared with the kernel (page aligned, as it requires).
    entries: MmapMut,
    /// The buffers, one anonymous mapping the kernel writes into.
    buffers: MmapMut,
    size: usize,
    count: u16,
    mask: u16,
    /// Our copy of the tail (entries handed to the kernel so far).
    tail: u16,
    bgid: u16,
}

impl BufRing {
    /// Registers `count` (a power of two) buffers of `size` bytes as group `bgid`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad count or size; [`Error::Io`] when mapping or
    /// registering fails.
    pub fn new(ring: &IoUring, bgid: u16, count: u16, size: usize) -> Result<Self> {
        if !count.is_power_of_two() || size == 0 {
            return Err(Error::InvalidArgument("buffer ring: count must be a power of two".into()));
        }
        let entries = MmapMut::map_anon(usize::from(count) * std::mem::size_of::<BufRingEntry>())
            .map_err(|e| Error::io("map the buffer ring", e))?;
        let buffers = MmapMut::map_anon(size * usize::from(count))
            .map_err(|e| Error::io("map the receive buffers", e))?;
        let mut ring_buf = Self { entries, buffers, size, count, mask: count - 1, tail: 0, bgid };
        // SAFETY: the entries mapping is page aligned (mmap), `count` entries long, and
        // lives as long as `self`; `Drop` unregisters it before unmapping.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ring_buf.entries.as_ptr() as u64, count, bgid, 0)
                .map_err(|e| Error::io("register the buffer ring", e))?;
        }
        for bid in 0..count {
            ring_buf.push(bid);
        }
        ring_buf.publish();
        Ok(ring_buf)
    }

    fn base(&self) -> NonNull<BufRingEntry> {
        // The mapping is page aligned (mmap), more than any entry needs.
        #[allow(clippy::cast_ptr_alignment)]
        let entries = self.entries.as_ptr().cast_mut().cast::<BufRingEntry>();
        NonNull::new(entries).expect("mapped")
    }

    /// Writes buffer `bid` into the next entry (not yet visible to the kernel).
    fn push(&mut self, bid: u16) {
        assert!(bid < self.count);
        let idx = usize::from(self.tail & self.mask);
        let addr = self.buffers.as_ptr() as u64 + u64::from(bid) * self.size as u64;
        // SAFETY: `idx < count`, so the entry lies inside the mapping; the kernel reads an
        // entry only once the tail passes it, which `publish` does after this write.
        unsafe {
            let e = &mut *self.base().as_ptr().add(idx);
            e.set_addr(addr);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed entry visible to the kernel.
    fn publish(&self) {
        // SAFETY: the base is the ring's first entry, initialized by `push`, so the tail
        // field overlays it as the kernel ABI says; it is a u16 the kernel reads, so we
        // store it atomically with release ordering (the entries before it are visible).
        unsafe {
            let tail = BufRingEntry::tail(self.base().as_ptr()).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The bytes the kernel put in buffer `bid` (`len` of them). Call it only for a
    /// buffer a completion handed over and not yet recycled.
    ///
    /// # Panics
    /// If `bid` is not one of the ring's buffers.
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count);
        let start = usize::from(bid) * self.size;
        // SAFETY: `start + min(len, size)` lies inside the buffers mapping; the kernel
        // wrote this buffer before posting the completion that named it, and does not
        // touch it again until `recycle` hands it back (which needs `&mut self`, so no
        // slice from here outlives that).
        unsafe { std::slice::from_raw_parts(self.buffers.as_ptr().add(start), len.min(self.size)) }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// The buffer group id to name in receive requests.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }
}
