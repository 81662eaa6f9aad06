//! `NativeSharedBuffer`: a shared buffer of the core ([`tachyon::SharedBuffer`]) for
//! `lib/ipcbuffer.js`, which hands JS a real `Buffer` over the mapping (an external
//! buffer: no copy). The mapping lives as long as that `Buffer` and this handle; it is
//! unmapped (a file-backed one synced first) when both are collected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, BufferSlice};
use napi::{Env, Task};
use napi_derive::napi;
use tachyon::{BufferKind, SharedBuffer, SharedBufferOptions};

use crate::errors::{arg, core, timeout, BindError, JsError};
use crate::pump::ErrInfo;

/// A shared buffer, mapped.
#[napi]
pub struct NativeSharedBuffer {
    buf: Arc<SharedBuffer>,
    closed: Arc<AtomicBool>,
    exported: AtomicBool,
}

fn offset(v: u32) -> usize {
    v as usize
}

#[napi]
impl NativeSharedBuffer {
    /// Opens `kind` ("posix", "file" or "sysv") named `target` with `length` bytes (0:
    /// an existing object whole), created 0600 (or `mode`) if missing and `create`.
    #[napi(factory)]
    pub fn open(
        kind: String,
        target: String,
        length: f64,
        mode: Option<u32>,
        create: Option<bool>,
    ) -> Result<Self, JsError> {
        if !(length.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&length)) {
            return Err(arg(format!("length must be a non-negative integer, got {length}")));
        }
        let kind = match kind.as_str() {
            "posix" => BufferKind::Posix(target),
            "file" => BufferKind::File(target.into()),
            "sysv" => BufferKind::SysV(
                target
                    .parse()
                    .map_err(|_| arg(format!("a System V key is an integer, got {target}")))?,
            ),
            other => return Err(arg(format!("unknown buffer kind {other}"))),
        };
        let mut opts = SharedBufferOptions::default().create(create.unwrap_or(true));
        if let Some(m) = mode {
            opts = opts.mode(m);
        }
        let buf = SharedBuffer::open(&kind, length as usize, &opts).map_err(core)?;
        Ok(Self { buf: Arc::new(buf), closed: Arc::default(), exported: AtomicBool::new(false) })
    }

    /// The `Buffer` over the mapping (once per handle: Node refuses two `Buffer`s over
    /// the same memory).
    #[napi]
    pub fn buffer<'e>(&self, env: &'e Env) -> Result<BufferSlice<'e>, JsError> {
        if self.exported.swap(true, Ordering::AcqRel) {
            return Err(arg("this shared buffer's Buffer was made already"));
        }
        let keep = self.buf.clone();
        let (ptr, len) = (self.buf.as_ptr(), self.buf.len());
        // SAFETY: `ptr..ptr + len` is the mapping, which `keep` (moved into the
        // finalizer) keeps alive until V8 collects the Buffer.
        let slice =
            unsafe { BufferSlice::from_external(env, ptr, len, keep, |_, keep| drop(keep)) }
                .map_err(|e| arg(e.reason.clone()))?;
        // A runtime that forbids external buffers copies instead: then the Buffer would
        // not be shared. Ask where its bytes really are.
        let mut data = std::ptr::null_mut();
        let mut got = 0usize;
        // SAFETY: `slice` is a live Buffer of this env; the call only reads its info.
        let status = unsafe {
            napi::sys::napi_get_buffer_info(
                env.raw(),
                napi::JsValue::raw(&slice),
                &raw mut data,
                &raw mut got,
            )
        };
        if status != napi::sys::Status::napi_ok || data.cast::<u8>() != ptr {
            return Err(arg(
                "this runtime copies external buffers (no shared memory through a Buffer here)",
            ));
        }
        Ok(slice)
    }

    /// Bytes mapped.
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.buf.len() as f64
    }

    /// Whether this handle created the object.
    #[napi(getter)]
    pub fn created(&self) -> bool {
        self.buf.created()
    }

    /// Writes a file-backed buffer back to its file (msync).
    #[napi]
    pub fn flush(&self) -> Result<(), JsError> {
        self.buf.flush().map_err(core)
    }

    /// Removes the name; mappings stay.
    #[napi]
    pub fn unlink(&self) -> Result<(), JsError> {
        self.buf.unlink().map_err(core)
    }

    /// Blocks while the 32-bit word at `offset` holds `expected`: true once it differs
    /// or a notify came, false after `timeoutMs` (or once closed).
    #[napi]
    pub fn wait(
        &self,
        offset_: u32,
        expected: u32,
        timeout_ms: Option<f64>,
    ) -> Result<bool, JsError> {
        let t = timeout(timeout_ms)?;
        let closed = self.closed.clone();
        self.buf
            .wait_until(offset(offset_), expected, t, &|| closed.load(Ordering::Acquire))
            .map_err(core)
    }

    /// `wait` on a libuv worker thread.
    #[napi(ts_return_type = "Promise<boolean | ErrInfo>")]
    pub fn wait_async(
        &self,
        offset_: u32,
        expected: u32,
        timeout_ms: Option<f64>,
    ) -> Result<AsyncTask<BufferWait>, JsError> {
        let t = timeout(timeout_ms)?;
        // Checked now, so a bad offset throws at the call.
        self.buf.atomic_u32(offset(offset_)).map_err(core)?;
        Ok(AsyncTask::new(BufferWait {
            buf: self.buf.clone(),
            closed: self.closed.clone(),
            offset: offset(offset_),
            expected,
            timeout: t,
        }))
    }

    /// Wakes up to `count` waiters on the word at `offset`, in any process.
    #[napi]
    pub fn notify(&self, offset_: u32, count: Option<u32>) -> Result<u32, JsError> {
        let n = self.buf.notify(offset(offset_), count.unwrap_or(u32::MAX)).map_err(core)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Ends this handle's pending and later waits (they return false).
    #[napi]
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Wake this process's sleepers on any word: they look at `closed`.
        let _ = self.buf.notify(0, u32::MAX);
    }
}

/// A `waitAsync` on a libuv worker thread.
pub struct BufferWait {
    buf: Arc<SharedBuffer>,
    closed: Arc<AtomicBool>,
    offset: usize,
    expected: u32,
    timeout: Option<std::time::Duration>,
}

impl Task for BufferWait {
    type Output = Result<bool, ErrInfo>;
    type JsValue = napi::bindgen_prelude::Either<bool, ErrInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let closed = self.closed.clone();
        Ok(self
            .buf
            .wait_until(self.offset, self.expected, self.timeout, &|| {
                closed.load(Ordering::Acquire)
            })
            .map_err(|e| BindError::Core(e).into()))
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match out {
            Ok(b) => napi::bindgen_prelude::Either::A(b),
            Err(e) => napi::bindgen_prelude::Either::B(e),
        })
    }
}
