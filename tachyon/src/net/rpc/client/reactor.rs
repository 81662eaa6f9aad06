//! Call futures on tokio's reactor (the `tokio` feature): inside a tokio runtime, a
//! connection's socket is registered with tokio through `AsyncFd`, and the task whose
//! call waits reads the socket itself when tokio says it is readable. Replies for other
//! calls are parked for them and their tasks woken, as the pump thread would; no thread
//! of ours stands between the socket and the task, so a reply costs no thread hop.
//!
//! One waiting future at a time watches the socket (the inbox's `fd_watcher`); the
//! others wait for their reply to be parked. The watcher hands the role on when its own
//! call completes (waking another waiting future), and a blocking caller that read for
//! everyone wakes one when its turn ends, so some future always watches while any
//! waits. Deadlines are kept by one process-wide timer thread ([`super::timer`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{lock, Conn};

/// The connection's socket as tokio's reactor sees it: a duplicate of its fd, owned by
/// the registration (so it stays open exactly as long as tokio watches it).
#[derive(Debug)]
pub(super) struct SockFd(OwnedFd);

impl AsRawFd for SockFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A connection's registration with a tokio runtime's reactor.
pub(super) type Registration = Arc<AsyncFd<SockFd>>;

/// What a watching future learned from the socket.
pub(super) enum Watched {
    /// Read what was there; look at the inbox again.
    Progress,
    /// Nothing to read: tokio wakes the task when there is.
    Pending,
    /// The runtime cannot watch the socket (it is shutting down): wait another way.
    Unavailable,
}

impl Conn {
    /// The socket's registration with tokio's reactor, made on first use inside a
    /// runtime. `None` outside one (or when tokio refused it). The registration stays
    /// with the runtime that made it: use one client from one runtime.
    pub(super) fn tokio_fd(&self) -> Option<Registration> {
        // Only inside a runtime: outside, nobody drives tokio's reactor for this poll.
        tokio::runtime::Handle::try_current().ok()?;
        let mut slot = lock(&self.tokio_fd);
        if let Some(r) = &*slot {
            return Some(r.clone());
        }
        let fd = SockFd(self.sock.try_clone().ok()?);
        // SAFETY: `SockFd` owns its fd, which therefore stays open (and the same file
        // description) for as long as the `AsyncFd` holding it, and always returns it.
        let r = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()?;
        let r = Arc::new(r);
        *slot = Some(r.clone());
        Some(r)
    }

    /// Forgets the registration (its runtime is gone); futures fall back to the pump.
    pub(super) fn drop_tokio_fd(&self) {
        lock(&self.tokio_fd).take();
    }

    /// Reads for everyone if tokio says the socket is readable (the watching future's
    /// poll); otherwise tokio wakes the task when it is.
    pub(super) fn watch(&self, fd: &AsyncFd<SockFd>, cx: &mut Context<'_>) -> Watched {
        let mut guard = match fd.poll_read_ready(cx) {
            Poll::Pending => return Watched::Pending,
            Poll::Ready(Err(_)) => return Watched::Unavailable,
            Poll::Ready(Ok(g)) => g,
        };
        {
            let mut inbox = lock(&self.inbox);
            if inbox.reading {
                return Watched::Progress; // a blocking caller got there first
            }
            inbox.reading = true;
        }
        let outcome = self.read_some(None, true);
        let mut inbox = lock(&self.inbox);
        inbox.reading = false;
        match outcome {
            Ok(true) => {}
            Ok(false) => guard.clear_ready(),
            Err(why) => {
                if inbox.dead.is_none() {
                    inbox.dead = Some(why);
                }
            }
        }
        let failed = inbox.dead.is_some();
        if failed {
            for (_, w) in inbox.wakers.drain() {
                w.waker.wake();
            }
        }
        if inbox.sleepers > 0 {
            self.changed.notify_all();
        }
        Watched::Progress
    }
}
