//! Bootstrap over a UNIX socket: the listener hands its memfd(s) to one connector.
//!
//! The upstream exchange (WIRE.md) is one `sendmsg` of a 32-byte [`Handshake`] with the
//! fds attached. Two Tachyon peers then go one step further, in a way upstream ignores:
//!
//! 1. After the handshake the listener sends an 8-byte hello (`"TCHX"`, version). An
//!    upstream connector reads only 32 bytes and closes, so it never sees it.
//! 2. Our connector answers with 8 bytes (`"TCHX"`, status: accepted or rejected). An
//!    upstream connector just closes, which the listener sees as EOF.
//! 3. If both sides spoke, they keep the socket open as the liveness link (see
//!    [`crate::shm::liveness`]). With an upstream peer we watch a pidfd of its process.
//!
//! Who may connect, checked on both sides before any fd travels:
//! - the socket file is created with mode 0600 (whatever the umask), before `listen`,
//!   so nobody can connect while it is wider;
//! - the listener reads the connector's uid with `SO_PEERCRED` and refuses any uid but
//!   its own (and those it allows), with a refusal frame our connector reports as
//!   [`Error::PermissionDenied`];
//! - the connector checks that the socket file and the listening process belong to its
//!   own uid (or one it allows), so a socket squatted by another user is never used.
//!
//! Binding removes only a stale socket (one nobody accepts on); a live socket or any
//! other file in the way is an error, and a listener unlinks its path on drop only if
//! the file there is still the socket it created.
//!
//! Every wait is bounded: the connector by its connect timeout (and an interrupt check
//! every 100 ms), the listener by its handshake timeout.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

mod connect;
#[cfg(feature = "test-hooks")]
mod fuzz;
mod listen;
mod socket;
mod wire;
pub use connect::*;
#[cfg(feature = "test-hooks")]
pub use fuzz::fuzz_bootstrap;
pub use listen::*;
pub use socket::*;
pub use wire::*;

/// Once a handshake is known to be bad, how long a connector still waits for the
/// listener's hello (to tell an upstream listener from ours, and answer ours). Ours
/// sends it right behind the handshake, so this is only reached by odd peers.
const EXT_HELLO_AFTER_FAILURE: Duration = Duration::from_millis(250);
/// Poll interval of every wait here, so signals, interrupt checks and deadlines are
/// noticed (upstream uses 100 ms).
const POLL_STEP: Duration = Duration::from_millis(100);
/// `sun_path` is 108 bytes including the NUL.
const MAX_PATH_LEN: usize = 107;

const EXT_MAGIC: [u8; 4] = *b"TCHX";
/// The listener's hello: 1 = a liveness link, 2 = that and the fast ring protocol.
const EXT_VERSION: u32 = 1;
const EXT_VERSION_FAST: u32 = 2;
/// The connector's answers.
const EXT_ACCEPTED: u32 = 0;
const EXT_REJECTED: u32 = 1;
const EXT_ACCEPTED_FAST: u32 = 2;

/// A deadline and a periodic interrupt check, for the waits of a listen or a connect.
pub struct ListenSpec<'a> {
    /// Give up after this long (from the first wait).
    pub timeout: Option<Duration>,
    /// Called every 100 ms while waiting; an error ends the wait.
    pub interrupt: Option<&'a mut dyn FnMut() -> Result<()>>,
}

impl ListenSpec<'_> {
    #[cfg(feature = "test-hooks")]
    /// No deadline, no interrupt check.
    pub fn forever() -> Self {
        Self { timeout: None, interrupt: None }
    }
}

/// A running deadline: [`ListenSpec`] with its clock started.
struct Deadline<'s, 'a> {
    at: Option<Instant>,
    timeout: Option<Duration>,
    spec: &'s mut ListenSpec<'a>,
}

impl<'s, 'a> Deadline<'s, 'a> {
    fn start(spec: &'s mut ListenSpec<'a>) -> Self {
        let timeout = spec.timeout;
        Self { at: timeout.and_then(|t| Instant::now().checked_add(t)), timeout, spec }
    }

    /// How long the next poll may sleep: at most [`POLL_STEP`] and what is left.
    fn step(&self) -> Result<Duration> {
        match self.at {
            None => Ok(POLL_STEP),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::Timeout(self.timeout.unwrap_or_default()))
                } else {
                    Ok(left.min(POLL_STEP))
                }
            }
        }
    }

    fn check(&mut self) -> Result<()> {
        match self.spec.interrupt.as_mut() {
            Some(f) => f(),
            None => Ok(()),
        }
    }

    /// Polls `fd` for `events` until ready, the deadline, or an interrupt.
    fn poll(&mut self, fd: BorrowedFd<'_>, events: PollFlags) -> Result<PollFlags> {
        loop {
            let step = self.step()?;
            let mut fds = [PollFd::new(&fd, events)];
            let ts = rustix::time::Timespec::try_from(step)
                .unwrap_or(rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 });
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(Errno::INTR) => {}
                Ok(_) => return Ok(fds[0].revents()),
                Err(e) => return Err(Error::io("poll socket", e)),
            }
            self.check()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips_and_matches_wire_bytes() {
        let hs = Handshake::spsc(4096);
        let b = hs.encode();
        assert_eq!(&b[0..4], &0x5441_4348u32.to_ne_bytes());
        assert_eq!(&b[4..8], &4u32.to_ne_bytes());
        assert_eq!(&b[8..12], &4096u32.to_ne_bytes());
        assert_eq!(&b[12..16], &(768u32 + 4096).to_ne_bytes());
        assert_eq!(&b[16..24], &[0u8; 8]);
        assert_eq!(&b[24..28], &64u32.to_ne_bytes());
        assert_eq!(&b[28..32], &0u32.to_ne_bytes());
        assert_eq!(Handshake::decode(&b).unwrap(), hs);
        let rpc = Handshake::rpc(1024, 2048);
        assert_eq!(Handshake::decode(&rpc.encode()).unwrap(), rpc);
    }

    #[test]
    fn handshake_rejects_each_bad_field() {
        for (word, value) in [(0usize, 0xDEAD_BEEFu32), (1, 3), (6, 32), (7, 2), (7, 3)] {
            let mut b = Handshake::spsc(64).encode();
            b[word * 4..word * 4 + 4].copy_from_slice(&value.to_ne_bytes());
            assert!(matches!(Handshake::decode(&b), Err(Error::AbiMismatch(_))), "word {word}");
        }
    }

    #[test]
    fn socket_paths_are_checked() {
        assert!(matches!(socket_addr(""), Err(Error::InvalidPath { .. })));
        assert!(matches!(socket_addr(&"x".repeat(108)), Err(Error::InvalidPath { .. })));
        assert!(matches!(socket_addr("a\0b"), Err(Error::InvalidPath { .. })));
        assert!(socket_addr(&format!("/tmp/{}", "x".repeat(102))).is_ok());
    }
}
