//! Reading: batches from an id, lost and abandoned entries counted, and waiting for new ones.

use crate::error::Result;
use layout::{state, EntryHeader, ENTRY_HEADER};
use owner::Owner;
use rustix::thread::futex;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::{corrupt, layout, owner, Channel, Entry, ReadBatch, MAX_POSITION, WATCHDOG};

impl Channel {
    /// Up to `max` entries after `last_id`, oldest first. Stops early at an entry whose
    /// writer is still copying it in.
    ///
    /// # Errors
    /// [`Error::CorruptChannel`](crate::Error::CorruptChannel) for an entry or index that breaks the layout.
    pub fn read(&self, last_id: u64, max: usize) -> Result<ReadBatch> {
        let mut out = ReadBatch { last_id, ..ReadBatch::default() };
        if last_id >= MAX_POSITION {
            return Ok(ReadBatch { last_id, ..ReadBatch::default() }); // no id comes after
        }
        let mut want = last_id + 1; // the next id the caller has not seen
        'restart: loop {
            let (head, tail, next_id) = self.indices()?;
            let mut pos = {
                let c = self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if c.0 == want && c.1 >= head && c.1 <= tail {
                    c.1
                } else {
                    head
                }
            };
            let cap = self.area.capacity();
            while pos < tail && out.entries.len() < max {
                let room = cap - pos % cap;
                if room < ENTRY_HEADER as u64 {
                    pos += room;
                    continue;
                }
                let Some(h) = self.area.read_entry_header(pos) else {
                    return Err(corrupt(&self.path, "an entry lies outside the file"));
                };
                let len = u64::from(h.entry_len);
                let sane = len >= ENTRY_HEADER as u64
                    && len % 8 == 0
                    && len <= room
                    && pos + len <= tail
                    && (h.state == state::PADDING
                        || (h.id >= 1
                            && h.id < next_id
                            && h.media_len as usize <= layout::MAX_MEDIA
                            && layout::entry_len(h.media_len as usize, h.payload_len as usize)
                                == Some(len)));
                if !sane {
                    if self.overwritten(pos) {
                        continue 'restart; // a writer lapped us: start again from the head
                    }
                    return Err(corrupt(
                        &self.path,
                        format!("entry at {pos}: length {len}, state {}", h.state),
                    ));
                }
                let state = self.settle(pos, &h);
                match state {
                    state::PADDING => {
                        pos += len;
                        continue;
                    }
                    state::WRITING => break, // still being copied in: stop here, in order
                    state::PUBLISHED | state::ABANDONED => {}
                    other => {
                        if self.overwritten(pos) {
                            continue 'restart;
                        }
                        return Err(corrupt(
                            &self.path,
                            format!("entry at {pos} has state {other}"),
                        ));
                    }
                }
                if h.id < want {
                    pos += len;
                    continue; // seen already
                }
                let mut entry = None;
                if state == state::PUBLISHED {
                    let Some(e) = self.copy_entry(pos, &h) else {
                        continue 'restart; // torn by a writer lapping us
                    };
                    entry = Some(e);
                }
                if h.id > want {
                    out.lost += h.id - want; // overwritten before we got here
                }
                match entry {
                    Some(e) => out.entries.push(e),
                    None => out.abandoned += 1,
                }
                want = h.id.saturating_add(1);
                out.last_id = h.id;
                pos += len;
            }
            // Entries before the head that the caller never saw were overwritten.
            if out.entries.is_empty() && out.abandoned == 0 {
                want = self.count_evicted(want, pos >= tail, &mut out)?;
            }
            *self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (want, pos);
            return Ok(out);
        }
    }

    /// The state of the entry at `pos`, marking it abandoned first if it is still being
    /// written by a process that died.
    pub(super) fn settle(&self, pos: u64, h: &EntryHeader) -> u32 {
        if h.state != state::WRITING || owner::alive(Owner { pid: h.pid, start: h.start }) {
            return h.state;
        }
        self.area.entry_state(pos).map_or(state::ABANDONED, |s| {
            match s.compare_exchange(
                state::WRITING,
                state::ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => state::ABANDONED,
                Err(now) => now,
            }
        })
    }

    /// Copies the published entry at `pos`; `None` if a writer lapping the area
    /// overwrote it meanwhile (the copy may be torn and is dropped).
    pub(super) fn copy_entry(&self, pos: u64, h: &EntryHeader) -> Option<Entry> {
        let media_len = u64::from(h.media_len);
        let mut media = Vec::new();
        let mut data = Vec::with_capacity(h.payload_len as usize);
        let ok = self.area.read_body(pos, ENTRY_HEADER as u64, media_len, &mut media)
            && self.area.read_body(
                pos,
                ENTRY_HEADER as u64 + media_len,
                u64::from(h.payload_len),
                &mut data,
            );
        // Acquire: the copies above come before the head check below.
        fence(Ordering::Acquire);
        if !ok || self.overwritten(pos) {
            return None;
        }
        let media_type = String::from_utf8(media)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Some(Entry { id: h.id, media_type, data })
    }

    /// A read that found nothing: entries from `want` up to the oldest kept one were
    /// overwritten (all handed-out ids, if nothing is kept and the walk reached the
    /// tail). Counts them in `out`; returns the next id to want.
    pub(super) fn count_evicted(
        &self,
        want: u64,
        at_tail: bool,
        out: &mut ReadBatch,
    ) -> Result<u64> {
        let (head, _, next) = self.indices()?;
        let first = match self.first_id(head, next) {
            Some(first) => first,
            None if at_tail => next,
            None => return Ok(want),
        };
        if first > want {
            out.lost += first - want;
            out.last_id = first - 1;
            return Ok(first);
        }
        Ok(want)
    }

    /// Whether the head moved past `pos` (an entry there was overwritten).
    pub(super) fn overwritten(&self, pos: u64) -> bool {
        self.area.u64_at(layout::OFF_HEAD).load(Ordering::Acquire) > pos
    }

    /// The id of the oldest kept entry (skipping padding), if any. `None` too when what
    /// is read there cannot be trusted: an id outside `1..next`, a length that breaks the
    /// layout, or a writer that moved the head past it meanwhile (the bytes may then be
    /// another entry's payload, and a "first id" read from them would count millions of
    /// entries as lost).
    pub(super) fn first_id(&self, mut pos: u64, next: u64) -> Option<u64> {
        let cap = self.area.capacity();
        let tail = self.area.u64_at(layout::OFF_TAIL).load(Ordering::Acquire);
        while pos < tail {
            let room = cap - pos % cap;
            if room < ENTRY_HEADER as u64 {
                pos += room;
                continue;
            }
            let h = self.area.read_entry_header(pos)?;
            let len = u64::from(h.entry_len);
            if len < ENTRY_HEADER as u64 || len % 8 != 0 || len > room {
                return None;
            }
            // Acquire: the header read above comes before the head check below.
            fence(Ordering::Acquire);
            if self.overwritten(pos) {
                return None;
            }
            if h.state != state::PADDING {
                return (1..next).contains(&h.id).then_some(h.id);
            }
            pos += len;
        }
        None
    }

    /// Waits until an entry after `last_id` can be read (published, or abandoned by a
    /// dead writer), up to `timeout` (`None`: for ever). `Ok(false)` on a timeout.
    ///
    /// # Errors
    /// [`Error::CorruptChannel`](crate::Error::CorruptChannel).
    pub fn wait_for(&self, last_id: u64, timeout: Option<Duration>) -> Result<bool> {
        self.wait_until(last_id, timeout, &|| false)
    }

    /// As [`Channel::wait_for`], giving up (`Ok(false)`) as soon as `stop()` says so; call
    /// [`Channel::wake_all`] after setting what `stop` reads, to wake it.
    ///
    /// # Errors
    /// As [`Channel::wait_for`].
    pub fn wait_until(
        &self,
        last_id: u64,
        timeout: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let a = &self.area;
        let word = a.u32_at(layout::OFF_NOTIFY);
        let waiters = a.u32_at(layout::OFF_WAITERS);
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let seen = word.load(Ordering::Acquire);
            if self.readable_after(last_id)? {
                return Ok(true);
            }
            if stop() {
                return Ok(false);
            }
            let slice = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    (d - now).min(WATCHDOG)
                }
                None => WATCHDOG,
            };
            waiters.fetch_add(1, Ordering::SeqCst);
            // SeqCst: pairs with the writer's bump in `notify` (see there).
            if word.load(Ordering::SeqCst) == seen {
                let ts = rustix::time::Timespec {
                    tv_sec: i64::try_from(slice.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(slice.subsec_nanos()),
                };
                let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&ts));
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes every thread and process asleep in [`Channel::wait_for`] on this channel
    /// (they look, and sleep again if nothing is there for them).
    pub fn wake_all(&self) {
        let word = self.area.u32_at(layout::OFF_NOTIFY);
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    }

    /// Whether a read after `last_id` would return something (an entry, a loss or an
    /// abandoned entry).
    pub(super) fn readable_after(&self, last_id: u64) -> Result<bool> {
        let next = self.area.u64_at(layout::OFF_NEXT_ID).load(Ordering::Acquire);
        if next <= last_id.saturating_add(1) {
            return Ok(false); // nothing reserved after it yet
        }
        let b = self.read(last_id, 1)?;
        Ok(!b.entries.is_empty() || b.lost > 0 || b.abandoned > 0)
    }
}
