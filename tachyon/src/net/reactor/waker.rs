//! [`Waker`]: an eventfd a reactor waits on, so another thread can wake it (to stop it,
//! or to hand it work).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A shared eventfd: `wake` from any thread, `drain` on the reactor.
#[derive(Debug, Clone)]
pub(crate) struct Waker(Arc<OwnedFd>);

impl Waker {
    pub fn new() -> Result<Self> {
        let fd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::io("create an eventfd", e))?;
        Ok(Self(Arc::new(fd)))
    }

    /// Makes the eventfd readable (and so wakes its reactor).
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }

    /// Resets it after a wake-up.
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&*self.0, &mut b);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
