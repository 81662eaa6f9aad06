//! One thread for the whole process that wakes call futures at their deadlines, for
//! futures that wait on tokio's reactor (no pump thread of their own looks at the
//! clock). It sleeps until the earliest deadline; registering a later one costs a lock
//! and a map insert, no system call. A future removes its entry when it completes or is
//! dropped ([`Alarm`]'s drop), so the map holds only futures still waiting.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
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

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_at_the_deadline_and_not_after_a_drop() {
        let fired = Arc::new(Count(AtomicUsize::new(0)));
        let dropped = Arc::new(Count(AtomicUsize::new(0)));
        let t0 = Instant::now();
        let _late = Alarm::set(t0 + Duration::from_millis(80), Waker::from(fired.clone()));
        drop(Alarm::set(t0 + Duration::from_millis(20), Waker::from(dropped.clone())));
        // An earlier deadline registered after a later one still fires first.
        let early = Arc::new(Count(AtomicUsize::new(0)));
        let _early = Alarm::set(t0 + Duration::from_millis(40), Waker::from(early.clone()));
        while early.0.load(Ordering::SeqCst) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(t0.elapsed() >= Duration::from_millis(40));
        assert_eq!(fired.0.load(Ordering::SeqCst), 0);
        while fired.0.load(Ordering::SeqCst) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(t0.elapsed() >= Duration::from_millis(80));
        assert_eq!(dropped.0.load(Ordering::SeqCst), 0, "a dropped alarm never fires");
    }
}
