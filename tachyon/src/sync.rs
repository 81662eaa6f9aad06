//! Mutex locking that carries on after a panic elsewhere.
//!
//! Every mutex of the crate guards plain data (queues, maps of waiters, slots) that each
//! critical section leaves consistent before anything can panic, and is held for a few
//! instructions; a panic in some other code that held one (a user's handler, say) must
//! not take the bus or server down with it. So poisoning is ignored, in one place.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning (see the module documentation).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
