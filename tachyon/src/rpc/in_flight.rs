//! Which calls of a caller are still waiting for a reply, and the ids to hand out.
//!
//! Correlation ids are issued in increasing order and nearly always answered in order, so
//! the state is a low-water mark (every id below it is finished) and the next id; only
//! ids finished out of order, or abandoned, go into small sets. Issuing, checking and
//! finishing an in-order call are a few instructions each; this runs on every call.

use std::collections::BTreeSet;

/// The calls between the oldest unfinished one and the next to issue.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// Every id below this is finished.
    low: u64,
    /// The next id to issue (ids start at 1; 0 is never valid).
    next: u64,
    /// Ids at or above `low` that finished out of order.
    done: BTreeSet<u64>,
    /// Ids the caller gave up on; their late replies are dropped.
    abandoned: BTreeSet<u64>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { low: 1, next: 1, done: BTreeSet::new(), abandoned: BTreeSet::new() }
    }
}

impl InFlight {
    /// Hands out the next correlation id and records it as waiting.
    #[inline]
    pub fn issue(&mut self) -> u64 {
        let cid = self.next;
        // After 2^64 - 1 calls the ids wrap to 1 (0 is never valid); start afresh.
        if cid == u64::MAX {
            *self = Self::default();
        } else {
            self.next = cid + 1;
        }
        cid
    }

    #[inline]
    fn issued(&self, cid: u64) -> bool {
        cid >= self.low && cid < self.next
    }

    /// Whether `cid` is issued and its reply not yet taken.
    #[inline]
    pub fn is_waiting(&self, cid: u64) -> bool {
        self.issued(cid)
            && (self.done.is_empty() || !self.done.contains(&cid))
            && (self.abandoned.is_empty() || !self.abandoned.contains(&cid))
    }

    /// Whether the caller gave up on `cid`.
    #[inline]
    pub fn is_abandoned(&self, cid: u64) -> bool {
        !self.abandoned.is_empty() && self.abandoned.contains(&cid)
    }

    /// The reply to `cid` was taken, or dropped.
    #[inline]
    pub fn finish(&mut self, cid: u64) {
        if !self.issued(cid) {
            return;
        }
        if !self.abandoned.is_empty() {
            self.abandoned.remove(&cid);
        }
        if cid != self.low {
            self.done.insert(cid);
            return;
        }
        self.low += 1;
        while !self.done.is_empty() && self.done.remove(&self.low) {
            self.low += 1;
        }
    }

    /// The caller gives up on `cid`.
    pub fn abandon(&mut self, cid: u64) {
        if self.is_waiting(cid) {
            self.abandoned.insert(cid);
        }
    }

    /// Calls still waiting.
    pub fn len(&self) -> usize {
        let span = usize::try_from(self.next - self.low).unwrap_or(usize::MAX);
        span.saturating_sub(self.done.len() + self.abandoned.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_out_of_order_completion_and_abandoned_calls() {
        let mut f = InFlight::default();
        let ids: Vec<u64> = (0..5).map(|_| f.issue()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(f.len(), 5);
        f.finish(3);
        assert!(!f.is_waiting(3) && f.is_waiting(1));
        f.finish(1);
        f.finish(2);
        assert_eq!(f.low, 4, "the low-water mark passes ids finished out of order");
        assert!(f.done.is_empty());
        f.abandon(4);
        assert!(f.is_abandoned(4) && !f.is_waiting(4));
        assert_eq!(f.len(), 1);
        f.finish(4);
        f.finish(5);
        assert_eq!((f.len(), f.low), (0, 6));
        assert!(!f.is_waiting(99) && !f.is_waiting(0) && !f.is_waiting(5));
    }
}
