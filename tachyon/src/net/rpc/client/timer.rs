//! One thread for the whole process that wakes call futures at their deadlines, for
//! futures that wait on tokio's reactor (no pump thread of their own looks at the
//! clock). It sleeps until the earliest deadline; registering a later one costs a lock
//! and a map insert, no system call. A future removes its entry when it completes or is
//! dropped ([`Alarm`]'s drop), so the map holds only futures still waiting.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use std::time::Instant;

#[derive(Default)]
struct State {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    started: bool,
}

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| Timer { state: Mutex::new(State::default()), changed: Condvar::new() })
}

/// A registered deadline: `waker` is woken once it passes, unless this is dropped first.
#[derive(Debug)]
pub(super) struct Alarm {
    key: (Instant, u64),
    /// The waker registered (a repoll with the same one keeps this alarm).
    waker: Waker,
}

impl Alarm {
    /// Wakes `waker` at `at`.
    pub(super) fn set(at: Instant, waker: Waker) -> Self {
        let t = timer();
        let mut s = lock(&t.state);
        s.next_id += 1;
        let key = (at, s.next_id);
        let earliest = s.entries.first_key_value().is_none_or(|(k, _)| key < *k);
        s.entries.insert(key, waker.clone());
        if !s.started {
            s.started = std::thread::Builder::new()
                .name("tachyon-deadlines".into())
                .spawn(|| run(timer()))
                .is_ok();
        } else if earliest {
            t.changed.notify_one();
        }
        Self { key, waker }
    }

    /// Whether this alarm is for `at` and wakes what `waker` wakes.
    pub(super) fn covers(&self, at: Instant, waker: &Waker) -> bool {
        self.key.0 == at && self.waker.will_wake(waker)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        lock(&timer().state).entries.remove(&self.key);
    }
}

fn run(t: &Timer) {
    let mut s = lock(&t.state);
    loop {
        let now = Instant::now();
        while let Some(entry) = s.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
        s = match s.entries.first_key_value().map(|(k, _)| k.0) {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                t.changed.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0
            }
            None => t.changed.wait(s).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    /// A waker that notes when, and in which order, it was woken.
    struct Note(&'static str, Arc<Mutex<Vec<(&'static str, Instant)>>>);
    impl Wake for Note {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push((self.0, Instant::now()));
        }
    }

    #[test]
    fn wakes_at_the_deadline_and_not_after_a_drop() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let waker = |name| Waker::from(Arc::new(Note(name, log.clone())));
        let t0 = Instant::now();
        let _late = Alarm::set(t0 + Duration::from_millis(80), waker("late"));
        drop(Alarm::set(t0 + Duration::from_millis(20), waker("dropped")));
        // An earlier deadline registered after a later one still fires first.
        let _early = Alarm::set(t0 + Duration::from_millis(40), waker("early"));
        while log.lock().unwrap().len() < 2 {
            assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(1));
        }
        let log = log.lock().unwrap();
        let names: Vec<_> = log.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["early", "late"], "in deadline order; a dropped alarm never fires");
        assert!(log[0].1 >= t0 + Duration::from_millis(40), "early fired before its deadline");
        assert!(log[1].1 >= t0 + Duration::from_millis(80), "late fired before its deadline");
    }
}
