//! Appending: the append lock (robust: a dead holder's half-done append is finished or undone), reserving room, evicting the oldest entries, and applying the intent.

use crate::error::{Error, Result};
use layout::{state, EntryHeader, Intent, ENTRY_HEADER};
use owner::Owner;
use rustix::thread::futex;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::{corrupt, layout, owner, Channel, LockGuard, CONTENDED, MAX_POSITION};

impl Channel {
    /// Appends an entry and returns its id. Evicts the oldest entries if the channel is
    /// full; waits (up to the append timeout) only for the lock, or for an older writer
    /// still copying into the space this entry needs.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] for an entry that cannot fit the channel,
    /// [`Error::InvalidArgument`] for a media type over 255 bytes, [`Error::Timeout`],
    /// [`Error::CorruptChannel`](crate::Error::CorruptChannel).
    pub fn append(&self, media_type: &str, payload: &[u8]) -> Result<u64> {
        if media_type.len() > layout::MAX_MEDIA {
            return Err(Error::InvalidArgument(format!(
                "a media type is at most {} bytes, got {}",
                layout::MAX_MEDIA,
                media_type.len()
            )));
        }
        let max = self.max_payload(media_type);
        let total = match layout::entry_len(media_type.len(), payload.len()) {
            Some(t) if payload.len() <= max && t <= self.capacity() => t,
            _ => return Err(Error::MessageTooLarge { size: payload.len(), max }),
        };
        let me = owner::me();
        let deadline = Instant::now() + self.append_timeout;
        let intent = {
            let guard = self.lock(me, deadline)?;
            let intent = self.reserve(me, total, media_type.len(), payload.len(), deadline);
            drop(guard);
            intent?
        };
        // Copy the entry in, outside the lock, then publish it.
        let a = &self.area;
        let ok = a.write_body(intent.pos, ENTRY_HEADER as u64, media_type.as_bytes())
            && a.write_body(intent.pos, (ENTRY_HEADER + media_type.len()) as u64, payload);
        let state_word = a.entry_state(intent.pos);
        match (ok, state_word) {
            (true, Some(s)) => {
                // Release: a reader that sees "published" sees the bytes copied above.
                s.store(state::PUBLISHED, Ordering::Release);
            }
            _ => return Err(corrupt(&self.path, "a reserved entry lies outside the file")),
        }
        self.notify();
        Ok(intent.id)
    }

    /// Wakes readers asleep in [`Channel::wait_for`], if any.
    pub(super) fn notify(&self) {
        let a = &self.area;
        let word = a.u32_at(layout::OFF_NOTIFY);
        // SeqCst bump, then SeqCst load of the sleeper count, against a sleeper's SeqCst
        // "count myself, then re-check the word" (Dekker): in the single order of SeqCst
        // operations one side sees the other, so no wake-up is lost, and no fence is
        // needed beyond the locked add itself.
        word.fetch_add(1, Ordering::SeqCst);
        if a.u32_at(layout::OFF_WAITERS).load(Ordering::SeqCst) > 0 {
            let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        }
    }

    /// Takes the append lock, taking it over from a dead holder (and finishing what the
    /// holder was doing). The lock word holds the holder's pid, with [`CONTENDED`] set
    /// once someone sleeps on it, so an unlock calls `futex_wake` only then (a
    /// classic futex mutex, with the pid for telling a dead holder).
    pub(super) fn lock(&self, me: Owner, deadline: Instant) -> Result<LockGuard<'_>> {
        let a = &self.area;
        let word = a.u32_at(layout::OFF_LOCK);
        let mut spins = 0u32;
        // After sleeping once, take the lock marked contended: others may sleep too.
        let mut mine = me.pid;
        // A holder records its start time just after taking the lock, so a start time
        // that does not match its pid may be the previous holder's for a moment. Only a
        // mismatch that lasts, with the lock word unchanged, means a reused pid.
        let mut mismatch: Option<(u32, Instant)> = None;
        while let Err(cur) = word.compare_exchange(0, mine, Ordering::Acquire, Ordering::Relaxed) {
            spins += 1;
            if spins < 32 {
                std::hint::spin_loop();
                continue;
            }
            if spins < 40 {
                // The holder may be preempted on this very CPU (more writers than
                // CPUs): let it run before paying for a futex sleep.
                std::thread::yield_now();
                continue;
            }
            let holder = cur & !CONTENDED;
            let start = a.u64_at(layout::OFF_LOCK_START).load(Ordering::Acquire);
            let dead = match owner::liveness(Owner { pid: holder, start }) {
                owner::Liveness::Alive => {
                    mismatch = None;
                    false
                }
                owner::Liveness::Dead => true,
                owner::Liveness::OtherStart => match mismatch {
                    Some((pid, since)) if pid == holder => {
                        since.elapsed() >= Duration::from_millis(200)
                    }
                    _ => {
                        mismatch = Some((holder, Instant::now()));
                        false
                    }
                },
            };
            if dead
                && word
                    .compare_exchange(cur, me.pid | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break; // taken over from a dead holder (still marked: others may sleep)
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(self.append_timeout));
            }
            if cur & CONTENDED == 0
                && word
                    .compare_exchange(cur, cur | CONTENDED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Sleep until the holder unlocks (or 10 ms, to look at it again).
            let left = (deadline - now).min(Duration::from_millis(10));
            let ts = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(left.subsec_nanos()).max(1),
            };
            let _ = futex::wait(word, futex::Flags::empty(), cur | CONTENDED, Some(&ts));
            mine = me.pid | CONTENDED;
        }
        a.u64_at(layout::OFF_LOCK_START).store(me.start, Ordering::Release);
        // A holder that died mid-way left its intent: finish it.
        if a.u32_at(layout::OFF_INTENT_VALID).load(Ordering::Acquire) != 0 {
            let mut w = [0u64; Intent::WORDS];
            for (i, x) in w.iter_mut().enumerate() {
                *x = a.u64_at(layout::OFF_INTENT + 8 * i).load(Ordering::Relaxed);
            }
            let intent = Intent::from_words(w);
            if !intent.is_sane(a.capacity(), MAX_POSITION) || !self.apply(&intent) {
                // Unlock before failing, or nobody could append again.
                drop(LockGuard { ch: self });
                return Err(corrupt(&self.path, "a dead writer's intent lies outside the file"));
            }
        }
        Ok(LockGuard { ch: self })
    }

    /// Under the lock: finds room for an entry of `total` bytes (evicting the oldest
    /// entries), writes the intent, applies it, and returns it.
    pub(super) fn reserve(
        &self,
        me: Owner,
        total: u64,
        media_len: usize,
        payload_len: usize,
        deadline: Instant,
    ) -> Result<Intent> {
        let a = &self.area;
        let cap = a.capacity();
        let (head, tail, next) = self.indices()?;
        let mut pos = tail;
        let room = cap - pos % cap;
        let (pad_at, pad_len) = if room < total { (pos, room) } else { (0, 0) };
        if room < total {
            pos += room;
        }
        let new_tail = pos + total;
        let mut new_head = head;
        while new_tail - new_head > cap {
            if new_head >= tail {
                // Everything before the old tail is evicted; what is left is the padding
                // this append writes, which holds nothing.
                new_head = pos;
                break;
            }
            new_head = self.evict(new_head, deadline)?;
        }
        let intent = Intent {
            head: new_head,
            pad_at,
            pad_len,
            pos,
            id: next,
            entry_len: total,
            payload_len: payload_len as u64,
            media_len: media_len as u64,
            pid: u64::from(me.pid),
            start: me.start,
        };
        for (i, w) in intent.to_words().into_iter().enumerate() {
            a.u64_at(layout::OFF_INTENT + 8 * i).store(w, Ordering::Relaxed);
        }
        a.u32_at(layout::OFF_INTENT_VALID).store(1, Ordering::Release);
        if !self.apply(&intent) {
            return Err(corrupt(&self.path, "an entry would lie outside the file"));
        }
        Ok(intent)
    }

    /// The position after the oldest entry at `head`, for eviction: an entry still being
    /// written by a live writer is waited for; one whose writer died is abandoned.
    pub(super) fn evict(&self, head: u64, deadline: Instant) -> Result<u64> {
        let a = &self.area;
        let cap = a.capacity();
        let room = cap - head % cap;
        if room < ENTRY_HEADER as u64 {
            return Ok(head + room);
        }
        loop {
            let h = a
                .read_entry_header(head)
                .ok_or_else(|| corrupt(&self.path, "the head lies outside the file"))?;
            let len = u64::from(h.entry_len);
            if len < ENTRY_HEADER as u64 || len % 8 != 0 || len > room {
                return Err(corrupt(&self.path, format!("entry at {head} has length {len}")));
            }
            if h.state != state::WRITING {
                return Ok(head + len);
            }
            if !owner::alive(Owner { pid: h.pid, start: h.start }) {
                if let Some(s) = a.entry_state(head) {
                    let _ = s.compare_exchange(
                        state::WRITING,
                        state::ABANDONED,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                return Ok(head + len);
            }
            // A live writer is still copying into the oldest entry: it is nearly done.
            if Instant::now() >= deadline {
                return Err(Error::Timeout(self.append_timeout));
            }
            std::thread::yield_now();
        }
    }

    /// Applies an intent: head, padding, the entry's header, next id, tail, in that
    /// order, then clears the intent. Every step is an absolute store, so a second
    /// application (by whoever took the lock from a dead holder) changes nothing more.
    pub(super) fn apply(&self, i: &Intent) -> bool {
        let a = &self.area;
        // The head first: a reader that copied an evicted entry sees it moved and drops
        // the copy. The release fence keeps every store below (entry headers here, the
        // payload the writer copies next) after this one, as a seqlock writer does;
        // readers pair it with an acquire fence between their copy and their head check.
        let head = a.u64_at(layout::OFF_HEAD);
        if head.load(Ordering::Relaxed) != i.head {
            head.store(i.head, Ordering::Relaxed);
            fence(Ordering::Release);
        }
        let (Ok(entry_len), Ok(payload_len), Ok(media_len), Ok(pid)) = (
            u32::try_from(i.entry_len),
            u32::try_from(i.payload_len),
            u16::try_from(i.media_len),
            u32::try_from(i.pid),
        ) else {
            return false;
        };
        if i.pad_len >= ENTRY_HEADER as u64 {
            let pad = EntryHeader {
                state: state::PADDING,
                payload_len: 0,
                id: 0,
                entry_len: u32::try_from(i.pad_len).unwrap_or(u32::MAX),
                media_len: 0,
                pid: 0,
                start: 0,
            };
            if !a.write_entry_header(i.pad_at, &pad) {
                return false;
            }
        }
        let h = EntryHeader {
            state: state::WRITING,
            payload_len,
            id: i.id,
            entry_len,
            media_len,
            pid,
            start: i.start,
        };
        if !a.write_entry_header(i.pos, &h) {
            return false;
        }
        a.u64_at(layout::OFF_NEXT_ID).store(i.id + 1, Ordering::Release);
        a.u64_at(layout::OFF_TAIL).store(i.pos + i.entry_len, Ordering::Release);
        a.u32_at(layout::OFF_INTENT_VALID).store(0, Ordering::Release);
        true
    }

    // (reading: read.rs)------------------------------------------------------------------
}
