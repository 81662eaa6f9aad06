//! Which calls of a caller are still waiting for a reply.
//!
//! Correlation ids are handed out in increasing order, so a sliding window over them
//! answers "is this id in flight?" in O(1), without hashing. That matters because the
//! question is asked on every call and every reply.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Answered (or never issued); the window may move past it.
    Done,
    /// Sent, reply not yet taken.
    Waiting,
    /// The caller gave up; a late reply is to be dropped.
    Abandoned,
}

/// The window of correlation ids from the oldest unfinished call to the newest.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    base: u64,
    states: VecDeque<State>,
    waiting: usize,
}

impl InFlight {
    fn index(&self, cid: u64) -> Option<usize> {
        let i = usize::try_from(cid.checked_sub(self.base)?).ok()?;
        (i < self.states.len()).then_some(i)
    }

    fn state(&self, cid: u64) -> State {
        self.index(cid).map_or(State::Done, |i| self.states[i])
    }

    fn set(&mut self, cid: u64, s: State) {
        if let Some(i) = self.index(cid) {
            let old = std::mem::replace(&mut self.states[i], s);
            self.waiting = self.waiting + usize::from(s == State::Waiting)
                - usize::from(old == State::Waiting);
        }
        while self.states.front() == Some(&State::Done) {
            self.states.pop_front();
            self.base += 1;
        }
    }

    /// Records a new call. Ids must increase; a wrap to 1 (after 2^64 calls) restarts
    /// the window.
    pub fn insert(&mut self, cid: u64) {
        if self.states.is_empty() || cid < self.base {
            self.states.clear();
            self.base = cid;
        }
        while self.base + (self.states.len() as u64) < cid {
            self.states.push_back(State::Done);
        }
        self.states.push_back(State::Waiting);
        self.waiting += 1;
    }

    /// Whether `cid` is sent and its reply not yet taken.
    pub fn is_waiting(&self, cid: u64) -> bool {
        self.state(cid) == State::Waiting
    }

    /// Whether the caller gave up on `cid`.
    pub fn is_abandoned(&self, cid: u64) -> bool {
        self.state(cid) == State::Abandoned
    }

    /// The reply to `cid` was taken (or dropped).
    pub fn finish(&mut self, cid: u64) {
        self.set(cid, State::Done);
    }

    /// The caller gave up on `cid`.
    pub fn abandon(&mut self, cid: u64) {
        if self.is_waiting(cid) {
            self.set(cid, State::Abandoned);
        }
    }

    /// Calls still waiting.
    pub fn len(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_tracks_out_of_order_completion() {
        let mut f = InFlight::default();
        for cid in 1..=5 {
            f.insert(cid);
        }
        assert_eq!(f.len(), 5);
        f.finish(3);
        assert!(!f.is_waiting(3) && f.is_waiting(1));
        f.finish(1);
        f.finish(2);
        assert_eq!(f.base, 4, "the window slides past finished ids");
        f.abandon(4);
        assert!(f.is_abandoned(4) && !f.is_waiting(4));
        assert_eq!(f.len(), 1);
        f.finish(4);
        f.finish(5);
        assert_eq!((f.len(), f.states.len()), (0, 0));
        assert!(!f.is_waiting(99) && !f.is_waiting(0));
    }
}
