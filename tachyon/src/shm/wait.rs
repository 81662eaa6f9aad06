//! How a blocked side waits: spin, then sleep on the shared futex with a 200 ms watchdog.
//!
//! The consumer waits on the arena's `consumer_sleeping` word, which the producer wakes
//! after every head store (see [`wake_consumer`]). The ABI has no futex for a producer
//! waiting for space, so that side spins, yields, then naps in short steps.
//!
//! [`block_on`] is the one wait loop of the crate. It takes a `poll` closure that tries the
//! operation and an `idle` closure called at least every [`WATCHDOG`] (liveness of the
//! peer, the caller's interrupt check). Deadlines are checked at the same points.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::observe::stats::RingStats;
use crate::shm::layout::{sleep, DEFAULT_SPIN_THRESHOLD};
use crate::shm::liveness::{wake_sleepers, Alarm, PeerLink};

/// Upper bound on one futex sleep: a sleeper re-checks everything at least this often.
pub const WATCHDOG: Duration = Duration::from_millis(200);

/// How often a spinning waiter (polling mode, or a producer waiting for space) runs its
/// idle checks.
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(10);

/// What a blocking call waits for and how long. The clock is read only once the first
/// attempt has failed, so a call that succeeds at once never pays for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitSpec {
    /// Spins before the first sleep.
    pub spin: u32,
    /// How long to wait at most, if there is a limit.
    pub timeout: Option<Duration>,
    /// When to give up, set from `timeout` when waiting starts.
    deadline: Option<Instant>,
}

impl WaitSpec {
    /// Waits without a deadline.
    pub fn forever(spin: u32) -> Self {
        Self { spin, deadline: None, timeout: None }
    }

    /// Waits at most `timeout` from the first failed attempt.
    pub fn timeout(spin: u32, timeout: Duration) -> Self {
        Self { spin, deadline: None, timeout: Some(timeout) }
    }

    fn start(&mut self) {
        self.deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
    }

    fn check_deadline(&self, now: Instant) -> Result<()> {
        match self.deadline {
            Some(d) if now >= d => Err(Error::Timeout(self.timeout.unwrap_or_default())),
            _ => Ok(()),
        }
    }

    fn sleep_for(&self, now: Instant) -> Duration {
        self.deadline.map_or(WATCHDOG, |d| d.saturating_duration_since(now).min(WATCHDOG))
    }
}

/// How a producer's "publish, then look at the sleep word" is ordered against a
/// consumer's "announce sleep, then look for messages" (a store-load pattern that needs a
/// full barrier on one side or the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// A `SeqCst` fence on both sides (upstream's protocol; ~100 ns per producer flush).
    Fence,
    /// Fast mode between two peers of ours, both registered with
    /// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`. The design was for the producer to need
    /// only a compiler fence and the sleeper to issue `membarrier(GLOBAL_EXPEDITED)`, but
    /// that lost wake-ups under test (see [`wake_consumer`]), so the producer fences too.
    /// With a full fence on both sides the membarrier adds nothing, and it cost about
    /// 0.6 ms per sleep on a 2-vCPU VM (an IPI to every CPU), which every async caller
    /// (whose callee sleeps between requests) paid per call: the sleeper no longer
    /// issues it.
    Membarrier,
}

/// Whether this process is registered for `membarrier(GLOBAL_EXPEDITED)` (registered on
/// the first call). The fast mode is offered and accepted only when it is.
pub(crate) fn membarrier_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        use rustix::thread::{membarrier, MembarrierCommand};
        membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// The sleeper's side of [`Barrier`]: between announcing a sleep and the last look.
#[inline]
fn sleeper_barrier(barrier: Barrier) {
    // Both sides fence (see [`Barrier::Membarrier`] for why no membarrier any more).
    let _ = barrier;
    fence(Ordering::SeqCst);
}

/// Producer side: wakes a consumer sleeping on `word`. Called after every store of
/// `head`.
///
/// WIRE.md's waker only calls `FUTEX_WAKE`, which loses a wake that lands between the
/// sleeper's last check of the ring and its `FUTEX_WAIT(expected = SLEEPING)`: the
/// sleeper then sleeps a whole watchdog period. We move the word back to `AWAKE` first
/// (see [`crate::shm::liveness`]), so such a `FUTEX_WAIT` returns at once. An upstream
/// consumer, which stores 0 after every wake-up anyway, sees nothing but a spurious wake.
#[inline]
/// Returns whether a sleeper was woken.
pub(crate) fn wake_consumer(word: &AtomicU32, barrier: Barrier) -> bool {
    // Pairs with the consumer's barrier between "store 1" and "re-check the ring" (see
    // [`Barrier`]). Either the consumer's re-check sees our publication, or we see its 1.
    // No load of the word may come before it: a relaxed load may be hoisted above the
    // publishing release stores, and its value reused below.
    //
    // Fast mode used to rely on the sleeper's `membarrier(GLOBAL_EXPEDITED)` with only a
    // compiler fence here, and lost a wake-up in about 1 of 3 runs of the 100,000-cycle
    // test (`tests/wakeups.rs`); with a full fence on both sides, none in 37 runs. Until
    // that asymmetric scheme is understood, the producer pays for a real fence.
    let _ = barrier;
    fence(Ordering::SeqCst);
    if word.load(Ordering::Relaxed) == sleep::POLLING {
        return false;
    }
    wake_sleepers(word)
}

/// What a waiter watches: the shared index whose change may end the wait (`head` for a
/// consumer, `tail` for a producer waiting for room), the futex to sleep on, if any, and
/// the bus's alarm (peer gone, or closed from another thread).
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    /// The index the peer moves when there is something new.
    pub index: &'a AtomicU64,
    /// The consumer's futex word, or `None` to spin and nap (producer).
    pub futex: Option<&'a AtomicU32>,
    /// Raised when the wait must end early; checked before every sleep and nap.
    pub alarm: Option<&'a Alarm>,
    /// How the sleep announcement is ordered against the producer's wake.
    pub barrier: Barrier,
    /// Where sleeps, timeouts and dead peers of this wait are counted.
    pub stats: Option<&'a RingStats>,
}

impl Watch<'_> {
    #[inline]
    fn alarmed(&self) -> bool {
        self.alarm.is_some_and(Alarm::is_raised)
    }
}

/// Runs `poll` until it yields a value, waiting in between.
///
/// * `watch`: what to spin on and sleep on.
/// * `poll`: tries the operation; `Ok(None)` means "not yet".
/// * `idle`: called after every sleep, every [`IDLE_CHECK_EVERY`] while spinning, and at
///   once when the alarm is raised; an error from it ends the wait (interrupted, closed),
///   `Ok(Some(e))` says the peer is gone. Then `poll` gets one last try, so what the peer
///   sent before it left is still delivered, and the wait ends with `e`.
///
/// The loop calls `poll` from exactly one place, so the compiler inlines it: the path
/// from "the index moved" to "here is your message" is straight-line code. While
/// spinning, only the watched index is loaded (one load, one compare, a pause), and
/// `poll` runs when it moves.
#[inline]
pub(crate) fn block_on<T>(
    watch: Watch<'_>,
    spec: &WaitSpec,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut idle: impl FnMut() -> Result<Option<Error>>,
) -> Result<T> {
    // Load the index before the first attempt: a move during the attempt is not missed.
    let mut last = watch.index.load(Ordering::Relaxed);
    let mut spec = *spec;
    let mut spins_left = spec.spin;
    let mut state = Phase::First;
    let mut next_idle = None;
    let mut naps: u32 = 0;
    // The last sleep ran out with nobody having woken it: if the poll after it finds
    // something, a wake-up was lost (or never sent) and only the timeout ended the sleep.
    let mut slept_out = false;
    loop {
        let polled = poll();
        if std::mem::take(&mut slept_out) && matches!(polled, Ok(Some(_))) {
            if let Some(stats) = watch.stats {
                stats.watchdog_rescues.add(1);
            }
        }
        if let Phase::Announced(word) = state {
            if !matches!(polled, Ok(None)) {
                let _ = word.compare_exchange(
                    sleep::SLEEPING,
                    sleep::AWAKE,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                );
            }
        }
        if let Some(v) = polled? {
            return Ok(v);
        }
        match std::mem::replace(&mut state, Phase::Spinning) {
            Phase::First => spec.start(),
            Phase::PeerGone(e) => {
                if let Some(stats) = watch.stats {
                    stats.failed(&e);
                    crate::observe::events::peer_gone(&e);
                }
                return Err(e);
            }
            Phase::Announced(word) => {
                // Still empty after announcing: sleep until woken or the watchdog fires,
                // unless the alarm went up (checked after the announcement: see
                // `crate::shm::liveness` for why no raise is lost).
                if !watch.alarmed() {
                    slept_out = sleep_on(word, &spec, watch.stats);
                }
                let _ = word.compare_exchange(
                    sleep::SLEEPING,
                    sleep::AWAKE,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                );
                next_idle = Some(Instant::now() + IDLE_CHECK_EVERY);
                state = match idle()? {
                    Some(gone) => Phase::PeerGone(gone),
                    None => Phase::Spinning,
                };
                continue;
            }
            Phase::Spinning => {}
        }
        // Spin until the watched index moves or the spin budget is spent.
        let mut moved = false;
        while spins_left > 0 {
            spins_left -= 1;
            std::hint::spin_loop();
            let now = watch.index.load(Ordering::Relaxed);
            if now != last {
                last = now;
                moved = true;
                break;
            }
        }
        if moved {
            continue;
        }
        // Past the spin budget: deadline, idle checks, then nap or sleep.
        let now = Instant::now();
        if let Err(e) = spec.check_deadline(now) {
            // A zero timeout is a poll ("anything there?"), not a wait that ran out.
            if let (Some(stats), false) = (watch.stats, spec.timeout == Some(Duration::ZERO)) {
                stats.failed(&e);
            }
            return Err(e);
        }
        let sleeper = watch.futex.filter(|w| w.load(Ordering::Relaxed) != sleep::POLLING);
        let Some(word) = sleeper else {
            // Polling mode or producer: no futex. Back off gently between polls.
            if watch.alarmed() || next_idle.is_none_or(|t| now >= t) {
                next_idle = Some(now + IDLE_CHECK_EVERY);
                if let Some(gone) = idle()? {
                    state = Phase::PeerGone(gone);
                    continue;
                }
            }
            nap(watch.futex.is_some(), &mut naps);
            continue;
        };
        // Announce the sleep without clobbering pure-spin mode (2), unlike upstream,
        // then poll once more before sleeping.
        if word
            .compare_exchange(sleep::AWAKE, sleep::SLEEPING, Ordering::SeqCst, Ordering::Relaxed)
            .is_err_and(|seen| seen == sleep::POLLING)
        {
            continue;
        }
        // Pairs with `wake_consumer`; see there.
        sleeper_barrier(watch.barrier);
        state = Phase::Announced(word);
    }
}

/// Sleeps on `word` (announced as SLEEPING) until woken, the watchdog or the deadline.
/// Returns whether the sleep ran out with no waker having come: a waker moves the word to
/// AWAKE before its `FUTEX_WAKE`, so a word still SLEEPING after a timeout means none did.
fn sleep_on(word: &AtomicU32, spec: &WaitSpec, stats: Option<&RingStats>) -> bool {
    if let Some(stats) = stats {
        stats.sleeps.add(1);
    }
    let ts = rustix::time::Timespec::try_from(spec.sleep_for(Instant::now()))
        .unwrap_or(rustix::time::Timespec { tv_sec: 0, tv_nsec: 200_000_000 });
    // Any outcome is fine: woken, timed out, EAGAIN (word changed), EINTR. The loop
    // re-checks the ring, the deadline and the idle checks.
    let r = futex::wait(word, futex::Flags::empty(), sleep::SLEEPING, Some(&ts));
    r == Err(rustix::io::Errno::TIMEDOUT) && word.load(Ordering::SeqCst) == sleep::SLEEPING
}

/// Where [`block_on`] is between two polls.
enum Phase<'a> {
    /// Before the first poll.
    First,
    /// Spinning, or past the spin budget and napping.
    Spinning,
    /// Announced sleep on this futex word; one more poll, then sleep.
    Announced(&'a AtomicU32),
    /// The idle check found the peer gone; one last poll, then this error.
    PeerGone(Error),
}

/// One backoff step for a waiter that cannot sleep on a futex.
fn nap(polling_consumer: bool, naps: &mut u32) {
    if polling_consumer {
        // Pure-spin mode: the caller asked for latency over CPU.
        std::hint::spin_loop();
        return;
    }
    *naps = naps.saturating_add(1);
    match *naps {
        0..=64 => std::hint::spin_loop(),
        65..=256 => std::thread::yield_now(),
        _ => std::thread::sleep(Duration::from_micros(50)),
    }
}

/// How a blocking call waits: spin count, timeout, and an interrupt check.
///
/// ```
/// use std::time::Duration;
/// let w = tachyon::Wait::new().spin(1_000).timeout(Duration::from_millis(5));
/// # let _ = w;
/// ```
#[derive(Default)]
pub struct Wait<'a> {
    spin: Option<u32>,
    timeout: Option<Duration>,
    interrupt: Option<&'a mut dyn FnMut() -> bool>,
}

impl<'a> Wait<'a> {
    /// Spin 10,000 times, then sleep; no timeout; not interruptible.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spins before the first futex sleep (default 10,000).
    #[must_use]
    pub fn spin(mut self, spin: u32) -> Self {
        self.spin = Some(spin);
        self
    }

    /// Fails with [`Error::Timeout`] after this long.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Like [`Self::timeout`], but `None` means no timeout.
    #[must_use]
    pub fn timeout_opt(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called at least every 200 ms while blocked; returning `true` ends the wait with
    /// [`Error::Interrupted`]. Bindings use this to deliver Ctrl-C.
    #[must_use]
    pub fn interrupt(mut self, check: &'a mut dyn FnMut() -> bool) -> Self {
        self.interrupt = Some(check);
        self
    }

    /// The timeout, if any.
    pub(crate) fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether this wait may not wait at all (a zero timeout).
    pub fn is_immediate(&self) -> bool {
        self.timeout == Some(Duration::ZERO)
    }

    pub(crate) fn spec(&self) -> WaitSpec {
        let spin = self.spin.unwrap_or(DEFAULT_SPIN_THRESHOLD);
        match self.timeout {
            Some(t) => WaitSpec::timeout(spin, t),
            None => WaitSpec::forever(spin),
        }
    }

    /// Runs the interrupt check.
    pub(crate) fn check_interrupt(&mut self) -> Result<()> {
        let interrupted = self.interrupt.as_mut().is_some_and(|f| f());
        if interrupted {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}

/// Blocks until `attempt` yields, treating a hang-up of `link` as a gone peer only once
/// `attempt` has come back empty after it: messages sent before the peer left are still
/// delivered. Shared by every blocking call of [`crate::Bus`] and the RPC layer.
#[inline]
pub(crate) fn block_until<T>(
    watch: Watch<'_>,
    link: &PeerLink,
    mut wait: Wait<'_>,
    attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let spec = wait.spec();
    let watch = Watch { alarm: Some(link.alarm()), ..watch };
    block_on(watch, &spec, attempt, || {
        wait.check_interrupt()?;
        idle_check(link)
    })
}

/// The idle check of a wait on a bus with `link`: `Err` ends the wait now (closed),
/// `Ok(Some(e))` says the peer is gone (one last poll, then `e`).
pub(crate) fn idle_check(link: &PeerLink) -> Result<Option<Error>> {
    match link.check() {
        Ok(()) => Ok(None),
        Err(e @ (Error::PeerDead(_) | Error::PeerClosed)) => Ok(Some(e)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::many_single_char_names)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn deadline_passes_with_timeout_error() {
        let w = AtomicU32::new(0);
        let spec = WaitSpec::timeout(10, Duration::from_millis(50));
        let t = Instant::now();
        let i = AtomicU64::new(0);
        let r: Result<()> = block_on(
            Watch { index: &i, futex: Some(&w), alarm: None, barrier: Barrier::Fence, stats: None },
            &spec,
            || Ok(None),
            || Ok(None),
        );
        assert!(matches!(r, Err(Error::Timeout(d)) if d == Duration::from_millis(50)));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(w.load(Ordering::Relaxed), sleep::AWAKE);
    }

    #[test]
    fn polling_mode_is_never_overwritten() {
        let w = AtomicU32::new(sleep::POLLING);
        let spec = WaitSpec::timeout(0, Duration::from_millis(30));
        let i = AtomicU64::new(0);
        let r: Result<()> = block_on(
            Watch { index: &i, futex: Some(&w), alarm: None, barrier: Barrier::Fence, stats: None },
            &spec,
            || Ok(None),
            || Ok(None),
        );
        assert!(matches!(r, Err(Error::Timeout(_))));
        assert_eq!(w.load(Ordering::Relaxed), sleep::POLLING);
    }

    #[test]
    fn idle_error_ends_the_wait() {
        let w = AtomicU32::new(0);
        let spec = WaitSpec::forever(0);
        let i = AtomicU64::new(0);
        let r: Result<()> = block_on(
            Watch { index: &i, futex: Some(&w), alarm: None, barrier: Barrier::Fence, stats: None },
            &spec,
            || Ok(None),
            || Err(Error::Interrupted),
        );
        assert!(matches!(r, Err(Error::Interrupted)));
    }

    /// Sleeps until `flag` is 1, set by a thread that waits for the sleep announcement
    /// and then wakes the sleeper or not; returns the sleeper's counters.
    fn sleep_until_flagged(wake: bool) -> crate::observe::stats::BusStats {
        let w = Arc::new(AtomicU32::new(0));
        let flag = Arc::new(AtomicU32::new(0));
        let (w2, f2) = (w.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::SeqCst) != sleep::SLEEPING {
                std::thread::yield_now();
            }
            if !wake {
                // Let the sleeper get past its last poll into the futex wait.
                std::thread::sleep(Duration::from_millis(20));
            }
            f2.store(1, Ordering::SeqCst);
            if wake {
                wake_consumer(&w2, Barrier::Fence);
            }
        });
        let stats = RingStats::default();
        let spec = WaitSpec::forever(0);
        let i = AtomicU64::new(0);
        block_on(
            Watch {
                index: &i,
                futex: Some(&w),
                alarm: None,
                barrier: Barrier::Fence,
                stats: Some(&stats),
            },
            &spec,
            || Ok((flag.load(Ordering::SeqCst) == 1).then_some(())),
            || Ok(None),
        )
        .unwrap();
        t.join().unwrap();
        stats.snapshot()
    }

    #[test]
    fn sleeper_is_woken_by_wake_consumer() {
        let s = sleep_until_flagged(true);
        // Woken by the futex (or never asleep), not rescued by the 200 ms watchdog.
        assert_eq!(s.watchdog_rescues, 0, "{s:?}");
    }

    #[test]
    fn a_lost_wake_up_is_counted_as_a_watchdog_rescue() {
        // Publishing without a wake is what a lost wake-up looks like to the sleeper. The
        // flag may land before the sleeper's last poll (then it never sleeps): a few tries.
        let mut tries = Vec::new();
        while tries.len() < 5 && !tries.contains(&1) {
            tries.push(sleep_until_flagged(false).watchdog_rescues);
        }
        assert!(tries.contains(&1) && tries.iter().all(|&r| r <= 1), "rescues per try: {tries:?}");
    }
}
