//! How a blocked call learns, within microseconds, that its peer is gone or that its own
//! side closed the bus.
//!
//! Two Tachyon peers keep the bootstrap socket open as a [`PeerLink`] (see
//! [`crate::shm::bootstrap`]). It carries no data; when either process exits or drops its bus,
//! the kernel closes its end. With an upstream peer there is no such socket, and we watch
//! a pidfd of the peer process instead (it notices an exit, not a dropped bus).
//!
//! A blocked call sleeps on its ring's futex, so something must wake it when the link
//! breaks. One thread per process, the **watcher**, waits in `epoll` on every link and
//! pidfd of the process; when one fires it raises that bus's [`Alarm`], which wakes the
//! sleeper at once. The same alarm serves a local `close()` from another thread (a Python
//! or Node binding closing a bus that a waiter is blocked on). The watcher costs nothing
//! per message and one thread per process; without it (epoll or thread creation failed),
//! sleepers still notice at their 200 ms watchdog tick.
//!
//! The sleep protocol, which makes a raise never lost: the sleeper stores `SLEEPING` in
//! the futex word, issues a SeqCst fence, checks the ring and the alarm flags, then
//! `FUTEX_WAIT`s expecting `SLEEPING`. The raiser sets its flag, issues a SeqCst fence,
//! and if it reads `SLEEPING` moves the word back to `AWAKE` before `FUTEX_WAKE`. Either
//! the sleeper sees the flag, or the raiser sees the announcement, and then the changed
//! word makes a `FUTEX_WAIT` that has not started yet return at once.
//!
//! A peer that leaves cleanly (drops its bus) first marks the arenas `Disconnected`, then
//! closes the link; a killed process cannot. So a blocked call reports
//! [`Error::PeerClosed`] for the first and [`Error::PeerDead`] for the second, after
//! delivering everything the peer sent.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::event::epoll;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::shm::arena::Arena;
use crate::shm::layout::{sleep, state};

/// How the bootstrap left us able to watch the peer.
#[derive(Debug, Default)]
pub enum PeerWatch {
    /// Nothing: a test harness, or an upstream peer whose pid we could not open.
    #[default]
    Nothing,
    /// The bootstrap socket, kept open by two Tachyon peers.
    Socket(OwnedFd),
    /// A pidfd of the peer process (an upstream peer).
    Process(OwnedFd),
}

impl PeerWatch {
    fn fd(&self) -> Option<&OwnedFd> {
        match self {
            Self::Nothing => None,
            Self::Socket(fd) | Self::Process(fd) => Some(fd),
        }
    }
}

/// Flags that end every blocked call of one bus, and the futex they wake.
#[derive(Debug)]
pub(crate) struct Alarm {
    /// The watcher saw the link or the peer process end.
    gone: AtomicBool,
    /// This side closed the bus (from any thread).
    closed: AtomicBool,
    /// Another thread of this process has work for the receiver ([`Nudge`]).
    nudged: AtomicBool,
    /// The arena this side consumes: its sleepers wait on its futex word.
    rx: Option<Arc<Arena>>,
}

impl Alarm {
    fn new(rx: Option<Arc<Arena>>) -> Self {
        Self {
            gone: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            nudged: AtomicBool::new(false),
            rx,
        }
    }

    /// Whether a flag is up; checked by a sleeper after announcing its sleep.
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
            || self.closed.load(Ordering::Relaxed)
            || self.nudged.load(Ordering::Relaxed)
    }

    fn raise(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        // SeqCst fence: pairs with the sleeper's fence between announcing its sleep and
        // checking the flags (module docs).
        fence(Ordering::SeqCst);
        if let Some(rx) = &self.rx {
            wake_sleepers(rx.consumer_sleeping());
        }
    }
}

/// Moves a `SLEEPING` futex word back to `AWAKE` and wakes every sleeper on it. Changing
/// the word before waking is what makes a wake that lands just before the sleeper's
/// `FUTEX_WAIT` count: that wait then finds the word changed and returns at once.
#[inline]
pub(crate) fn wake_sleepers(word: &AtomicU32) -> bool {
    if word.load(Ordering::Relaxed) == sleep::SLEEPING
        && word
            .compare_exchange(sleep::SLEEPING, sleep::AWAKE, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    {
        // Shared (not private) futex: the sleeper may be in another process. An error
        // only means nobody was woken.
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        return true;
    }
    false
}

/// Ends every blocked call of a bus from any thread: they fail with [`Error::Closed`].
/// Language bindings hand one to `close()`, which may run while another thread waits on
/// the bus. Cheap to clone; raising it twice is harmless.
#[derive(Debug, Clone)]
pub struct Closer(Arc<Alarm>);

impl Closer {
    /// Raises the alarm: blocked calls wake at once (a sender waiting for room within
    /// about 50 us) and fail with [`Error::Closed`]. The bus itself stays usable for
    /// non-blocking calls until its owner drops it.
    pub fn close(&self) {
        self.0.raise(&self.0.closed);
    }
}

/// Wakes a bus's receiver blocked in a wait from another thread of this process, so the
/// wait's interrupt check ([`crate::Wait::interrupt`]) runs at once. A loop that also
/// waits for work from other threads (replies finished by async tasks) uses it: the
/// thread that queues the work nudges, and the loop's interrupt check takes the nudge
/// ([`Nudge::take`]) and ends the wait. A nudge raised before the receiver announces
/// its sleep is not lost: the sleeper checks for it after announcing.
///
/// Only a wait that takes the nudge in its interrupt check should be nudged: a wait
/// that does not spins through its idle checks until someone takes it.
#[derive(Debug, Clone)]
pub struct Nudge(Arc<Alarm>);

impl Nudge {
    /// Wakes the receiver (if it sleeps) and leaves the nudge raised until taken.
    pub fn nudge(&self) {
        self.0.raise(&self.0.nudged);
    }

    /// Takes the nudge: whether it was raised since the last take.
    pub fn take(&self) -> bool {
        self.0.nudged.swap(false, Ordering::AcqRel)
    }
}

/// The liveness side of a bus: what we watch, the alarm, and the arenas to mark
/// `Disconnected` when we leave.
#[derive(Debug)]
pub struct PeerLink {
    watch: PeerWatch,
    alarm: Arc<Alarm>,
    arenas: Vec<Arc<Arena>>,
    registration: Option<(Arc<Watcher>, u64)>,
}

impl Default for PeerLink {
    fn default() -> Self {
        Self::none()
    }
}

impl PeerLink {
    /// A link that watches nothing (tests, or a peer we cannot watch).
    pub fn none() -> Self {
        Self {
            watch: PeerWatch::Nothing,
            alarm: Arc::new(Alarm::new(None)),
            arenas: Vec::new(),
            registration: None,
        }
    }

    /// Watches the peer as `watch` says. `rx` is the arena this side consumes (its
    /// sleepers are woken when the peer goes); `arenas` are every arena of the bus.
    pub(crate) fn new(watch: PeerWatch, rx: &Arc<Arena>, arenas: &[&Arc<Arena>]) -> Self {
        let alarm = Arc::new(Alarm::new(Some(rx.clone())));
        let registration = watch.fd().and_then(|fd| Watcher::register(fd, &alarm));
        Self { watch, alarm, arenas: arenas.iter().map(|a| Arc::clone(a)).collect(), registration }
    }

    /// Whether the peer negotiated a liveness socket (it is a Tachyon peer), so even a
    /// peer that drops its bus but lives on is noticed.
    pub fn is_linked(&self) -> bool {
        matches!(self.watch, PeerWatch::Socket(_))
    }

    /// Whether anything watches the peer (a socket link or a pidfd).
    pub fn is_watched(&self) -> bool {
        !matches!(self.watch, PeerWatch::Nothing)
    }

    /// A handle that ends this bus's blocked calls from any thread.
    pub(crate) fn closer(&self) -> Closer {
        Closer(self.alarm.clone())
    }

    /// A handle that wakes this side's receiver (see [`Nudge`]).
    pub(crate) fn nudge(&self) -> Nudge {
        Nudge(self.alarm.clone())
    }

    /// The alarm a sleeper checks before it sleeps.
    pub(crate) fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// A share of the alarm, for a waiter that does not hold the link.
    pub(crate) fn alarm_handle(&self) -> Arc<Alarm> {
        self.alarm.clone()
    }

    /// The error for a peer that is gone: [`Error::PeerClosed`] if it marked an arena
    /// `Disconnected` on its way out, [`Error::PeerDead`] otherwise.
    pub(crate) fn gone_error(&self) -> Error {
        if self.arenas.iter().any(|a| a.state() == state::DISCONNECTED) {
            Error::PeerClosed
        } else {
            Error::PeerDead("the peer process exited or closed its bus")
        }
    }

    /// Checks, without blocking, whether the peer is still there and the bus open.
    ///
    /// # Errors
    /// [`Error::Closed`] if this side closed the bus; [`Error::PeerClosed`] or
    /// [`Error::PeerDead`] when the peer is gone.
    pub fn check(&self) -> Result<()> {
        if self.alarm.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        if self.alarm.gone.load(Ordering::Relaxed) || self.poll_gone()? {
            return Err(self.gone_error());
        }
        Ok(())
    }

    /// Polls the watched fd once. A link socket that is readable is gone too: a Tachyon
    /// peer never writes after the handshake, so readable means EOF (or a peer breaking
    /// the protocol, which we treat the same).
    fn poll_gone(&self) -> Result<bool> {
        let Some(fd) = self.watch.fd() else { return Ok(false) };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(0) | Err(Errno::INTR) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(Error::io("poll peer link", e)),
        }
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        if let Some((watcher, token)) = self.registration.take() {
            watcher.unregister(self.watch.fd(), token);
        }
        // A clean exit: tell a Tachyon peer (which checks the state) that we left on
        // purpose, before the socket closes. Never with an upstream peer, whose reaction
        // to the state word we do not control; never over a FatalError.
        if self.is_linked() {
            for a in &self.arenas {
                a.mark_disconnected();
            }
        }
        // Wake this bus's own waiters that do not hold the link (`RxReadiness`).
        self.alarm.raise(&self.alarm.closed);
    }
}

#[cfg_attr(not(feature = "rpc"), allow(dead_code))] // used by the RPC layer
/// Whether process `pid` still maps or holds open the memfd with inode `ino`, read from
/// `/proc` (same user only). `Some(false)` proves it let go of the bus (or is gone);
/// `None` means it cannot be told (no `/proc`, no permission).
///
/// An upstream-style peer keeps no liveness socket, so a server cannot tell a client that
/// dropped its bus from one that is idle, except by looking: this is that look.
pub(crate) fn process_holds(pid: i32, ino: u64) -> Option<bool> {
    let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    // Fields: address perms offset dev inode path; the inode is the fifth.
    let ino_text = ino.to_string();
    if maps.lines().any(|l| l.split_whitespace().nth(4) == Some(ino_text.as_str())) {
        return Some(true);
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return None };
    for fd in fds.flatten() {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths vary by target
        if rustix::fs::stat(fd.path()).is_ok_and(|st| st.st_ino as u64 == ino) {
            return Some(true);
        }
    }
    Some(false)
}

/// The process's watcher thread: an epoll set of every link and pidfd, each mapped to
/// the alarm it raises.
#[derive(Debug)]
struct Watcher {
    epoll: OwnedFd,
    alarms: Mutex<HashMap<u64, Arc<Alarm>>>,
    next: AtomicU64,
    pid: rustix::process::Pid,
}

/// The watcher of this process (re-made in a forked child, which has no threads).
static WATCHER: Mutex<Option<Arc<Watcher>>> = Mutex::new(None);

impl Watcher {
    fn get() -> Option<Arc<Self>> {
        let mut slot = WATCHER.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = rustix::process::getpid();
        if let Some(w) = slot.as_ref().filter(|w| w.pid == pid) {
            return Some(w.clone());
        }
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
        let w = Arc::new(Self {
            epoll,
            alarms: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            pid,
        });
        let run = w.clone();
        std::thread::Builder::new()
            .name("tachyon-liveness".into())
            .spawn(move || run.run())
            .ok()?;
        *slot = Some(w.clone());
        Some(w)
    }

    fn register(fd: &OwnedFd, alarm: &Arc<Alarm>) -> Option<(Arc<Self>, u64)> {
        let w = Self::get()?;
        let token = w.next.fetch_add(1, Ordering::Relaxed);
        w.alarms.lock().unwrap_or_else(PoisonError::into_inner).insert(token, alarm.clone());
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::HUP
            | epoll::EventFlags::ERR
            | epoll::EventFlags::ONESHOT;
        if epoll::add(&w.epoll, fd, epoll::EventData::new_u64(token), flags).is_err() {
            w.alarms.lock().unwrap_or_else(PoisonError::into_inner).remove(&token);
            return None;
        }
        Some((w, token))
    }

    fn unregister(&self, fd: Option<&OwnedFd>, token: u64) {
        self.alarms.lock().unwrap_or_else(PoisonError::into_inner).remove(&token);
        if let Some(fd) = fd {
            let _ = epoll::delete(&self.epoll, fd.as_fd());
        }
    }

    fn run(&self) {
        let empty =
            epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
        let mut events = [empty; 32];
        loop {
            let n = match epoll::wait(&self.epoll, &mut events[..], None) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(_) => return, // the epoll fd broke: sleepers fall back to their watchdog
            };
            for ev in &events[..n] {
                let alarm = self
                    .alarms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&ev.data.u64());
                if let Some(alarm) = alarm {
                    alarm.raise(&alarm.gone);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_closed_socket_raises_the_alarm_and_wakes_the_futex() {
        let arena = Arc::new(Arena::create(4096).unwrap());
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let link = PeerLink::new(PeerWatch::Socket(a), &arena, &[&arena]);
        assert!(link.check().is_ok());
        let word = arena.consumer_sleeping();
        word.store(sleep::SLEEPING, Ordering::SeqCst);
        let start = Instant::now();
        drop(b);
        while !link.alarm().is_raised() {
            assert!(start.elapsed() < Duration::from_secs(30), "the watcher never fired");
            std::thread::yield_now();
        }
        // The raise sets the flag first, then moves the word and wakes (the order the
        // sleeper protocol needs): the word may lag the flag by a moment.
        while word.load(Ordering::SeqCst) != sleep::AWAKE {
            assert!(start.elapsed() < Duration::from_secs(30), "the raise never moved the word");
            std::thread::yield_now();
        }
        assert!(matches!(link.check(), Err(Error::PeerDead(_))));
        arena.mark_disconnected();
        assert!(matches!(link.check(), Err(Error::PeerClosed)));
    }

    #[test]
    fn a_closer_ends_checks_with_closed() {
        let arena = Arc::new(Arena::create(4096).unwrap());
        let link = PeerLink::new(PeerWatch::Nothing, &arena, &[&arena]);
        link.closer().close();
        assert!(matches!(link.check(), Err(Error::Closed)));
    }
}
