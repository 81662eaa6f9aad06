//! [`Cell`]: a core bus shared by a JS object, its zero-copy guards and its async pump
//! thread; closable once, from any of them.
//!
//! The lock is only ever held for a non-blocking step, except by the blocking methods
//! the caller chose (`recv`, `wait`, ...) on the JS thread. The pump thread waits for
//! messages through `RxReadiness`, without the lock, so it never stalls the JS thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::errors::BindError;
use crate::lock;

type Deferred<T> = Box<dyn FnOnce(&T) + Send>;

/// A bus behind a lock; `None` once closed.
pub struct Cell<T> {
    inner: Mutex<Option<T>>,
    /// Work queued by garbage-collection finalizers, which may run while this thread
    /// already holds `inner` (a GC inside a native call) and so must never wait for it.
    deferred: Mutex<Vec<Deferred<T>>>,
    /// Whether `deferred` may hold work: the hot path checks this flag, not the lock.
    has_deferred: AtomicBool,
}

impl<T> Cell<T> {
    /// Wraps an open bus.
    pub fn new(bus: T) -> Self {
        Self {
            inner: Mutex::new(Some(bus)),
            deferred: Mutex::new(Vec::new()),
            has_deferred: AtomicBool::new(false),
        }
    }

    fn open(&self) -> MutexGuard<'_, Option<T>> {
        let guard = lock(&self.inner);
        // Acquire: pairs with the release store in `soon`, after its push.
        if self.has_deferred.swap(false, Ordering::Acquire) {
            let pending = std::mem::take(&mut *lock(&self.deferred));
            if let Some(bus) = guard.as_ref() {
                for f in pending {
                    f(bus);
                }
            }
        }
        guard
    }

    /// Runs `f` on the open bus.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> Result<R, BindError>) -> Result<R, BindError> {
        let guard = self.open();
        f(guard.as_ref().ok_or(BindError::Closed)?)
    }

    /// Runs `f` on the bus now if its lock is free, else the next time anyone takes it
    /// (never, if the bus closes first). For finalizers.
    pub fn soon(&self, f: impl FnOnce(&T) + Send + 'static) {
        if let Ok(guard) = self.inner.try_lock() {
            if let Some(bus) = guard.as_ref() {
                f(bus);
            }
        } else {
            lock(&self.deferred).push(Box::new(f));
            // Release: the push is visible to whoever sees the flag.
            self.has_deferred.store(true, Ordering::Release);
        }
    }

    /// Takes the bus out (closing it for every holder). Idempotent.
    pub fn close(&self) -> Option<T> {
        lock(&self.deferred).clear();
        lock(&self.inner).take()
    }

    /// Whether the bus was closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner).is_none()
    }
}
