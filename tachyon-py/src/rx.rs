//! Received messages read in place: `RxGuard` (`Bus.recv_zero_copy`), `RpcRxGuard`
//! (`RpcBus.serve` / `wait` / `next_reply`), `RxBatchGuard` and its `RxMsgView` items
//! (`Bus.drain_batch`). Each exports its payload through the buffer protocol (and
//! batch items through DLPack), so `memoryview(rx)` or `numpy.from_dlpack(item)` reads
//! the ring itself.
//!
//! The core's receive guards borrow the bus, which a Python object cannot hold, so the
//! messages are *parked* ([`tachyon::ParkedRx`]): unreleased in the ring, their memory
//! mapped, while a [`Held`] owns the token. Three ways end it:
//! - leaving the `with` block (or `commit()`) releases the slots. While a memoryview or
//!   DLPack tensor of them is still alive this raises `BufferError` and keeps them, so no
//!   view ever points at reused memory;
//! - the next receive on the same bus *detaches* them first: their payloads are copied
//!   out (views made later read the copy) and the slots released. So code that never
//!   leaves a `with` block (`rx = bus.serve()`) keeps working; a live view of the old
//!   message makes that receive raise `BufferError` instead;
//! - the guard objects going away releases them.

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use pyo3::exceptions::{PyBufferError, PyIndexError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use tachyon::ParkedRx;

use crate::bus::PyBus;
use crate::errors::BindError;
use crate::rpc::PyRpcBus;

/// The bus that owns parked messages.
pub(crate) enum Owner {
    /// An SPSC bus.
    Bus(Py<PyBus>),
    /// An RPC bus.
    Rpc(Py<PyRpcBus>),
}

impl Owner {
    /// Releases `parked` in the owner's ring (nothing to do once the bus is closed).
    fn release(&self, py: Python<'_>, parked: ParkedRx) -> PyResult<()> {
        match self {
            Self::Bus(b) => {
                let b = b.get();
                if b.bus.is_closed(py) {
                    return Ok(());
                }
                b.bus.with_gil(py, move |bus| Ok(bus.commit_parked(parked)?))
            }
            Self::Rpc(b) => {
                let b = b.get();
                if b.bus.is_closed(py) {
                    return Ok(());
                }
                b.bus.with_gil(py, move |bus| Ok(bus.commit_parked(parked)?))
            }
        }
    }
}

/// One message of a receive: where its payload is, its header, and a copy once detached.
pub(crate) struct Item {
    /// Payload address and length in the ring; valid while the owning [`Held`] is parked.
    pub addr: usize,
    pub len: usize,
    pub type_id: u32,
    pub correlation_id: u64,
    /// The payload, copied out (detached, or a reply that was already a copy).
    pub copy: Option<Py<PyBytes>>,
}

/// The messages of one zero-copy receive and the token that keeps them in the ring.
pub(crate) struct Held {
    owner: Owner,
    parked: Option<ParkedRx>,
    items: Vec<Item>,
    /// Live buffer-protocol views and DLPack tensors of these payloads.
    exports: usize,
    /// Released by the user (`with` exit, `commit()`): payloads no longer readable.
    released: bool,
}

/// A [`Held`] shared by its Python objects and (weakly) by its bus.
pub(crate) type Shared = Arc<Mutex<Held>>;

fn lock(h: &Shared) -> MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(PoisonError::into_inner)
}

fn still_exported(n: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "{n} memoryview(s) or DLPack tensor(s) of this message are still alive; release \
         them (`with memoryview(rx) as m:`, `del array`) first. The message stays held \
         until they are gone."
    ))
}

fn released() -> PyErr {
    PyBufferError::new_err(
        "the message was released when its `with` block ended (or by commit()); copy what \
         you need inside the block",
    )
}

impl Held {
    /// Messages parked in `owner`'s ring (`parked` is `None` for copies only).
    pub fn new(owner: Owner, parked: Option<ParkedRx>, items: Vec<Item>) -> Shared {
        Arc::new(Mutex::new(Self { owner, parked, items, exports: 0, released: false }))
    }

    /// The payload of item `i`: in the ring while parked, else its copy.
    fn payload(&self, py: Python<'_>, i: usize) -> PyResult<(*const u8, usize)> {
        let item = self.items.get(i).ok_or_else(|| PyIndexError::new_err("no such message"))?;
        if self.parked.is_some() {
            return Ok((item.addr as *const u8, item.len));
        }
        match &item.copy {
            Some(b) => {
                let b = b.bind(py).as_bytes();
                Ok((b.as_ptr(), b.len()))
            }
            None => Err(released()),
        }
    }
}

/// What a receive on a bus does first: detach the messages of the previous zero-copy
/// receive still held (copy them out, release their slots), so the ring can move on.
/// Called with the bus's lock held, through `commit` (its `commit_parked`).
///
/// # Errors
/// `BufferError` if a view of those messages is still alive (they stay held).
pub(crate) fn detach_previous(
    slot: &Mutex<Weak<Mutex<Held>>>,
    commit: impl FnOnce(ParkedRx) -> tachyon::Result<()>,
) -> Result<(), BindError> {
    let prev = slot.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
    let Some(prev) = prev else { return Ok(()) };
    let parked = {
        let mut h = lock(&prev);
        if h.parked.is_none() {
            return Ok(());
        }
        if h.exports > 0 {
            return Err(BindError::Buffer(format!(
                "{} memoryview(s) of the previous message are still alive; release them \
                 (or leave its `with` block) before receiving the next one",
                h.exports
            )));
        }
        Python::attach(|py| {
            for item in &mut h.items {
                // SAFETY: the message is parked (checked above, and `h` is locked), so
                // its payload is mapped and unchanged.
                let data = unsafe { std::slice::from_raw_parts(item.addr as *const u8, item.len) };
                item.copy = Some(PyBytes::new(py, data).unbind());
            }
        });
        h.parked.take()
    };
    // The lock on `prev` is gone: dropping it cannot re-enter this bus.
    match parked {
        Some(p) => Ok(commit(p)?),
        None => Ok(()),
    }
}

/// Remembers `held` as the bus's latest zero-copy receive.
pub(crate) fn remember(slot: &Mutex<Weak<Mutex<Held>>>, held: &Shared) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(held);
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(p) = self.parked.take() {
            Python::attach(|py| {
                let _ = self.owner.release(py, p);
            });
        }
    }
}

/// Releases the parked messages now (user's exit or commit), refusing while exported.
fn release(py: Python<'_>, held: &Shared) -> PyResult<()> {
    let (parked, owner_bus) = {
        let mut h = lock(held);
        if h.parked.is_some() && h.exports > 0 {
            return Err(still_exported(h.exports));
        }
        h.released = true;
        let owner = match &h.owner {
            Owner::Bus(b) => Owner::Bus(b.clone_ref(py)),
            Owner::Rpc(b) => Owner::Rpc(b.clone_ref(py)),
        };
        (h.parked.take(), owner)
    };
    match parked {
        Some(p) => owner_bus.release(py, p),
        None => Ok(()),
    }
}

/// Exports item `i` of `held` to a buffer-protocol view owned by `slf`.
///
/// # Safety
/// As [`crate::zero_copy::export`]: `view` is the struct passed to `__getbuffer__`.
unsafe fn export_item(
    slf: &Bound<'_, PyAny>,
    held: &Shared,
    i: usize,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> PyResult<()> {
    let mut h = lock(held);
    if h.released && h.parked.is_none() && h.items.get(i).is_some_and(|it| it.copy.is_none()) {
        return Err(released());
    }
    let (ptr, len) = h.payload(slf.py(), i)?;
    // SAFETY: while parked, the payload is mapped and the producer cannot reuse it, and
    // the slot is not released while `exports > 0` (see `release`, `detach_previous`);
    // a copy lives in `held`, which `slf` (the view's owner) keeps alive. Read-only.
    unsafe { crate::zero_copy::export(slf, view, ptr.cast_mut(), len, true, flags)? };
    h.exports += 1;
    Ok(())
}

fn unexport(held: &Shared) {
    let mut h = lock(held);
    h.exports = h.exports.saturating_sub(1);
}

/// A copy of item `i`'s payload as `bytes`.
fn bytes_of(py: Python<'_>, held: &Shared, i: usize) -> PyResult<Py<PyBytes>> {
    let h = lock(held);
    if let Some(b) = h.items.get(i).and_then(|it| it.copy.as_ref()) {
        return Ok(b.clone_ref(py));
    }
    if h.released {
        return Err(released());
    }
    let (ptr, len) = h.payload(py, i)?;
    // SAFETY: parked (or a copy): see `export_item`; `h` stays locked for the copy.
    let data = unsafe { std::slice::from_raw_parts(ptr, len) };
    Ok(PyBytes::new(py, data).unbind())
}

/// The methods every guard over one held message has (its `held`): `data` and
/// `bytes()` copies, and `commit()` and the context manager, which release the slot.
/// `pyclass`es cannot share methods through generics, so this writes each one's
/// `#[pymethods]` block with its own methods added (the buffer protocol among them:
/// pyo3's wrappers of `unsafe fn`s do not compile inside a `macro_rules!`).
macro_rules! held_message_methods {
    ($ty:ident { $($own:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($own)*

        /// The payload as `bytes` (a copy, safe to keep).
        #[getter]
        fn data(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
            bytes_of(py, &self.held, 0)
        }

        /// Releases the slot now (leaving the `with` block does the same).
        fn commit(&self, py: Python<'_>) -> PyResult<()> {
            release(py, &self.held)
        }

        fn __bytes__(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
            bytes_of(py, &self.held, 0)
        }

        fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
            slf
        }

        /// Releases the slot. Raises `BufferError` (and holds the slot) if a memoryview of
        /// it is still alive.
        #[pyo3(signature = (*_exc))]
        fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
            release(py, &self.held)?;
            Ok(false)
        }

        }
    };
}

/// A message received with `Bus.recv_zero_copy`, read in place: `memoryview(rx)` is the
/// payload in shared memory (read-only). Leaving the `with` block releases the slot.
#[pyclass(module = "tachyon._tachyon", name = "RxGuard", frozen)]
pub struct RxGuard {
    held: Shared,
    /// `route << 16 | msg_type`.
    #[pyo3(get)]
    type_id: u32,
    /// Payload size in bytes.
    #[pyo3(get)]
    actual_size: usize,
}

impl RxGuard {
    pub(crate) fn new(held: Shared, type_id: u32, actual_size: usize) -> Self {
        Self { held, type_id, actual_size }
    }
}

held_message_methods!(RxGuard {
    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let held = slf.get().held.clone();
        // SAFETY: `view` is the struct Python passed to `__getbuffer__`.
        unsafe { export_item(slf.as_any(), &held, 0, view, flags) }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(&self.held);
    }

    /// Payload size in bytes (upstream's batch-item name).
    #[getter]
    fn size(&self) -> usize {
        self.actual_size
    }

    fn __repr__(&self) -> String {
        format!("RxGuard(type_id={}, actual_size={})", self.type_id, self.actual_size)
    }
});

/// A request being served or a reply, read in place while it is held (upstream's
/// `RpcRxGuard`): `memoryview(rx)` is the payload in shared memory, `rx.data` a copy.
/// Leaving the `with` block releases the slot; so does the next receive on the bus,
/// which first copies the payload out so `data` stays readable.
#[pyclass(module = "tachyon._tachyon", name = "RpcRxGuard", frozen)]
pub struct RpcRxGuard {
    held: Shared,
    /// The id a reply must carry (and that a reply answers).
    #[pyo3(get)]
    correlation_id: u64,
    /// The msg_type.
    #[pyo3(get)]
    type_id: u32,
    /// Payload size.
    #[pyo3(get)]
    actual_size: usize,
}

impl RpcRxGuard {
    pub(crate) fn new(held: Shared, correlation_id: u64, type_id: u32, actual_size: usize) -> Self {
        Self { held, correlation_id, type_id, actual_size }
    }
}

held_message_methods!(RpcRxGuard {
    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let held = slf.get().held.clone();
        // SAFETY: `view` is the struct Python passed to `__getbuffer__`.
        unsafe { export_item(slf.as_any(), &held, 0, view, flags) }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(&self.held);
    }

    /// The msg_type (upstream's name on RPC guards).
    #[getter]
    fn msg_type(&self) -> u32 {
        self.type_id
    }

    fn __repr__(&self) -> String {
        format!(
            "RpcRxGuard(correlation_id={}, type_id={}, actual_size={})",
            self.correlation_id, self.type_id, self.actual_size
        )
    }
});

/// Messages drained in one crossing into native code, read in place until the batch
/// is released (leaving the `with` block, `commit()`, or the next receive, which copies
/// them out first). `len`, indexing and iteration give `RxMsgView` items.
#[pyclass(module = "tachyon._tachyon", name = "RxBatchGuard", frozen, sequence)]
pub struct RxBatchGuard {
    held: Shared,
    len: usize,
}

impl RxBatchGuard {
    pub(crate) fn new(held: Shared, len: usize) -> Self {
        Self { held, len }
    }
}

#[pymethods]
impl RxBatchGuard {
    fn __len__(&self) -> usize {
        self.len
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<RxMsgView> {
        let n = isize::try_from(self.len).unwrap_or(isize::MAX);
        let i = if index < 0 { index + n } else { index };
        let i = usize::try_from(i)
            .ok()
            .filter(|&i| i < self.len)
            .ok_or_else(|| PyIndexError::new_err("batch index out of range"))?;
        Ok(RxMsgView::of(py, &self.held, i))
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items: Vec<RxMsgView> =
            (0..self.len).map(|i| RxMsgView::of(py, &self.held, i)).collect();
        let list = pyo3::types::PyList::new(py, items)?;
        Ok(list.as_any().try_iter()?.into_any().unbind())
    }

    /// Releases every message now (leaving the `with` block does the same).
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        release(py, &self.held)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Releases the messages. Raises `BufferError` (and holds them) if a memoryview or
    /// DLPack tensor of one is still alive.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        release(py, &self.held)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("RxBatchGuard(len={})", self.len)
    }
}

/// One message of an `RxBatchGuard`, read in place: `memoryview(item)` and
/// `numpy.from_dlpack(item)` see the payload in shared memory (no copy) until the batch
/// is released; `item.data` is a copy.
#[pyclass(module = "tachyon._tachyon", name = "RxMsgView", frozen)]
pub struct RxMsgView {
    held: Shared,
    index: usize,
    /// `route << 16 | msg_type`.
    #[pyo3(get)]
    type_id: u32,
    /// Payload size in bytes.
    #[pyo3(get)]
    actual_size: usize,
}

impl RxMsgView {
    fn of(_py: Python<'_>, held: &Shared, index: usize) -> Self {
        let (type_id, actual_size) = {
            let h = lock(held);
            let it = &h.items[index];
            (it.type_id, it.len)
        };
        Self { held: held.clone(), index, type_id, actual_size }
    }
}

#[pymethods]
impl RxMsgView {
    /// Payload size in bytes (upstream's Node name; `actual_size` is Python's).
    #[getter]
    fn size(&self) -> usize {
        self.actual_size
    }

    /// The payload as `bytes` (a copy, safe to keep).
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        bytes_of(py, &self.held, self.index)
    }

    fn __bytes__(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        bytes_of(py, &self.held, self.index)
    }

    #[allow(clippy::needless_pass_by_value)] // the signature pyo3 requires
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (held, i) = (slf.get().held.clone(), slf.get().index);
        // SAFETY: `view` is the struct Python passed to `__getbuffer__`.
        unsafe { export_item(slf.as_any(), &held, i, view, flags) }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(&self.held);
    }

    /// A DLPack capsule of the payload (1-D `uint8`, CPU, read-only when the consumer
    /// asks for DLPack 1.0 or later). The batch cannot be released while the tensor made
    /// from it lives.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = stream; // CPU memory: no stream to synchronize with
        if let Some(dev) = dl_device {
            if dev != (1, 0) {
                return Err(pyo3::exceptions::PyBufferError::new_err(format!(
                    "the payload lives in CPU memory (device (1, 0)), not {dev:?}"
                )));
            }
        }
        if copy == Some(true) {
            return Err(pyo3::exceptions::PyBufferError::new_err(
                "RxMsgView exports without copying; use item.data for a copy",
            ));
        }
        let this = slf.get();
        let (ptr, len) = {
            let mut h = lock(&this.held);
            if h.released && h.parked.is_none() && h.items[this.index].copy.is_none() {
                return Err(released());
            }
            let p = h.payload(slf.py(), this.index)?;
            h.exports += 1;
            p
        };
        let versioned = max_version.is_some_and(|(major, _)| major >= 1);
        let owner = slf.clone().into_any().unbind();
        crate::dlpack::capsule(
            slf.py(),
            ptr.cast_mut().cast::<c_void>(),
            len,
            owner,
            this.held.clone(),
            versioned,
        )
    }

    /// `(kDLCPU, 0)`: the payload is in host memory.
    #[allow(clippy::unused_self)]
    fn __dlpack_device__(&self) -> (i32, i32) {
        (1, 0)
    }

    fn __repr__(&self) -> String {
        format!("RxMsgView(type_id={}, actual_size={})", self.type_id, self.actual_size)
    }
}

/// Ends one DLPack export of `held` (the tensor's deleter).
pub(crate) fn dlpack_released(held: &Shared) {
    unexport(held);
}
