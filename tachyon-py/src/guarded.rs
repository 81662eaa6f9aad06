//! [`Guarded`]: a core bus shared by a Python object, closable, and safe to wait on with
//! the GIL released.
//!
//! The rule it enforces: never wait for the lock while holding the GIL. A thread blocked
//! in a wait holds the lock and re-takes the GIL for its Ctrl-C checks, so waiting for the
//! lock with the GIL held would deadlock.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

use crate::errors::{to_py, BindError};

/// A bus behind a lock; `None` once closed.
pub struct Guarded<T> {
    inner: Mutex<Option<T>>,
    /// Ends the bus's blocked calls without the lock (a waiter holds it).
    closer: tachyon::Closer,
}

impl<T: Send> Guarded<T> {
    /// Wraps an open bus with the closer that ends its blocked calls.
    pub fn new(bus: T, closer: tachyon::Closer) -> Self {
        Self { inner: Mutex::new(Some(bus)), closer }
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the open bus. Call this only with the GIL released (inside
    /// `blocking`), where waiting for the lock is harmless.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> Result<R, BindError>) -> Result<R, BindError> {
        let guard = self.lock();
        f(guard.as_ref().ok_or(BindError::Closed)?)
    }

    /// Runs `f` on the open bus at once if the lock is free (with the GIL held: it never
    /// waits). `None` if the lock is taken or `f` declines; the caller then takes its
    /// blocking path.
    pub fn try_now<R>(&self, f: impl FnOnce(&T) -> Option<R>) -> Option<R> {
        let guard = self.inner.try_lock().ok()?;
        f(guard.as_ref()?)
    }

    /// Runs `f` on the slot from a method called with the GIL held: takes the lock if it
    /// is free, else releases the GIL while waiting for it.
    fn with_slot<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Option<T>) -> R + Send) -> R {
        if let Ok(mut guard) = self.inner.try_lock() {
            return f(&mut guard);
        }
        py.detach(|| f(&mut self.lock()))
    }

    /// Runs `f` on the open bus from a method called with the GIL held.
    pub fn with_gil<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&T) -> Result<R, BindError> + Send,
    ) -> PyResult<R> {
        self.with_slot(py, |b| b.as_ref().map_or(Err(BindError::Closed), f))
            .map_err(|e| to_py(py, e))
    }

    /// Closes (drops) the bus. Idempotent. A call blocked on the bus in another thread
    /// (it holds the lock) is woken first and fails with "the bus is closed", so this
    /// never waits for it longer than it takes to notice.
    pub fn close(&self, py: Python<'_>) {
        self.closer.close();
        let bus = self.with_slot(py, Option::take);
        drop(bus);
    }

    /// Whether the bus was closed.
    pub fn is_closed(&self, py: Python<'_>) -> bool {
        self.with_slot(py, |b| b.is_none())
    }
}
