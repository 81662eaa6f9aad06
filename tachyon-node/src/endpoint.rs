//! What a JS bus object holds: the shared [`Cell`] and, once something is awaited, its
//! pump thread; and [`ListenTask`], which opens a bus on a libuv worker thread.

use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::{Either, ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::cell::Cell;
use crate::errors::{BindError, JsError};
use crate::pump::{ErrInfo, Pump, Source};

/// The native state behind `Bus` and `RpcBus`.
pub struct Endpoint<S: Source> {
    /// The bus, shared with zero-copy slots and the pump.
    pub cell: Arc<Cell<S::Bus>>,
    pump: Mutex<Option<Pump<S>>>,
}

impl<S: Source + Default> Endpoint<S> {
    /// Wraps an open bus.
    pub fn new(bus: S::Bus) -> Self {
        Self { cell: Arc::new(Cell::new(bus)), pump: Mutex::new(None) }
    }

    /// Runs `f` on the open bus.
    pub fn with<R>(&self, f: impl FnOnce(&S::Bus) -> Result<R, BindError>) -> Result<R, JsError> {
        Ok(self.cell.with(f)?)
    }

    /// Runs `f` on the pump, starting it the first time.
    pub fn pump<R>(&self, f: impl FnOnce(&Pump<S>) -> R) -> Result<R, JsError> {
        let mut p = self.pump.lock().unwrap_or_else(PoisonError::into_inner);
        if p.is_none() {
            let ready = self.cell.with(|b| Ok(S::readiness(b)))?;
            *p = Some(Pump::start(self.cell.clone(), ready, S::default()));
        }
        Ok(f(p.as_ref().expect("just set")))
    }

    /// Closes the bus (idempotent); the pump's waiters get `ERR_TACHYON_CLOSED`.
    pub fn close(&self) {
        if let Some(p) = self.pump.lock().unwrap_or_else(PoisonError::into_inner).take() {
            p.stop();
        }
        drop(self.cell.close());
    }
}

/// Cancels a blocking wait running off the JS thread (an `AbortSignal` in the JS layer
/// calls `cancel()`); the wait notices within 100 ms and fails with
/// `ERR_TACHYON_INTERRUPTED`.
#[napi_derive::napi]
#[derive(Default)]
pub struct NativeCancel {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[napi_derive::napi]
impl NativeCancel {
    /// A token not cancelled yet.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the wait it was given to.
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl NativeCancel {
    /// The flag to check from the waiting thread.
    pub fn flag(token: Option<&NativeCancel>) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        token.map_or_else(Default::default, |t| t.flag.clone())
    }
}

/// Opens a bus off the JS thread (`listenAsync`): `open` runs on a libuv worker, `wrap`
/// makes the JS object on the JS thread.
pub struct ListenTask<B, N> {
    open: Option<Box<dyn FnOnce() -> tachyon::Result<B> + Send>>,
    wrap: fn(B) -> N,
}

impl<B, N> ListenTask<B, N> {
    /// A task running `open`, then `wrap`.
    pub fn new(
        open: impl FnOnce() -> tachyon::Result<B> + Send + 'static,
        wrap: fn(B) -> N,
    ) -> Self {
        Self { open: Some(Box::new(open)), wrap }
    }
}

impl<B: Send + 'static, N: ToNapiValue + TypeName> Task for ListenTask<B, N> {
    type Output = Result<B, ErrInfo>;
    type JsValue = Either<N, ErrInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let open = self.open.take().ok_or_else(|| napi::Error::from_reason("ran twice"))?;
        Ok(open().map_err(|e| BindError::Core(e).into()))
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match out {
            Ok(bus) => Either::A((self.wrap)(bus)),
            Err(e) => Either::B(e),
        })
    }
}
