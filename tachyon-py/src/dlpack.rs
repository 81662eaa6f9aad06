//! DLPack export of a payload in shared memory: a 1-D `uint8` CPU tensor that a consumer
//! (`numpy.from_dlpack`, `torch.from_dlpack`, ...) wraps without copying.
//!
//! The structs are the C ABI of `dlpack.h` (v1.0): the legacy `DLManagedTensor` in a
//! `"dltensor"` capsule, or, for a consumer that asks for DLPack 1.0 or later,
//! `DLManagedTensorVersioned` in a `"dltensor_versioned"` capsule with the read-only
//! flag. A consumer renames the capsule (`"used_..."`) and calls the deleter when its
//! tensor dies; a capsule never consumed calls it from its own destructor. The deleter
//! ends the export, so the batch can be released only after every tensor is gone.

use std::ffi::{c_char, c_void, CStr};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::rx::{dlpack_released, Shared};

#[repr(C)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

#[repr(C)]
struct DLPackVersion {
    major: u32,
    minor: u32,
}

#[repr(C)]
struct DLManagedTensorVersioned {
    version: DLPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DLTensor,
}

const K_DL_CPU: i32 = 1;
const K_DL_UINT: u8 = 1;
const DLPACK_FLAG_BITMASK_READ_ONLY: u64 = 1;

const LEGACY: &CStr = c"dltensor";
const VERSIONED: &CStr = c"dltensor_versioned";

/// What a tensor keeps alive: its shape, the Python object that owns the payload (and
/// through it the parked messages), and the export to end.
struct Ctx {
    shape: [i64; 1],
    /// Held only to keep the exporting object (and so the payload) alive.
    _owner: Py<PyAny>,
    held: Shared,
}

fn tensor(data: *mut c_void, shape: *mut i64) -> DLTensor {
    DLTensor {
        data,
        device: DLDevice { device_type: K_DL_CPU, device_id: 0 },
        ndim: 1,
        dtype: DLDataType { code: K_DL_UINT, bits: 8, lanes: 1 },
        shape,
        strides: std::ptr::null_mut(),
        byte_offset: 0,
    }
}

/// Frees a context: ends the export and drops the owner reference (with the GIL).
///
/// # Safety
/// `ctx` must come from `Box::into_raw` in [`capsule`] and not have been freed.
unsafe fn free_ctx(ctx: *mut c_void) {
    // SAFETY: the caller's contract.
    let ctx = unsafe { Box::from_raw(ctx.cast::<Ctx>()) };
    Python::attach(|_py| {
        dlpack_released(&ctx.held);
        drop(ctx);
    });
}

unsafe extern "C" fn delete_legacy(t: *mut DLManagedTensor) {
    if t.is_null() {
        return;
    }
    // SAFETY: `t` was made by `Box::into_raw` in `capsule` and is deleted once, by the
    // consumer or the capsule destructor (DLPack's contract).
    let t = unsafe { Box::from_raw(t) };
    // SAFETY: its context came from `Box::into_raw` in `capsule`.
    unsafe { free_ctx(t.manager_ctx) };
}

unsafe extern "C" fn delete_versioned(t: *mut DLManagedTensorVersioned) {
    if t.is_null() {
        return;
    }
    // SAFETY: as in `delete_legacy`.
    let t = unsafe { Box::from_raw(t) };
    // SAFETY: as in `delete_legacy`.
    unsafe { free_ctx(t.manager_ctx) };
}

/// Capsule destructor: deletes the tensor unless a consumer took it (renamed the
/// capsule, and owns the deleter call from then on).
unsafe extern "C" fn destroy_capsule(capsule: *mut ffi::PyObject) {
    // SAFETY: Python calls this with the capsule being destroyed; the name checks tell
    // which struct it holds and whether it is still ours.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, LEGACY.as_ptr()) == 1 {
            let t = ffi::PyCapsule_GetPointer(capsule, LEGACY.as_ptr()).cast::<DLManagedTensor>();
            delete_legacy(t);
        } else if ffi::PyCapsule_IsValid(capsule, VERSIONED.as_ptr()) == 1 {
            let t = ffi::PyCapsule_GetPointer(capsule, VERSIONED.as_ptr())
                .cast::<DLManagedTensorVersioned>();
            delete_versioned(t);
        }
        // "used_..." capsules: the consumer owns the tensor now. A failed lookup sets an
        // exception a destructor must not leave behind.
        ffi::PyErr_Clear();
    }
}

/// A DLPack capsule over `len` bytes at `data`, keeping `owner` alive and counting as an
/// export of `held` until the tensor is deleted. The caller has already counted it.
pub(crate) fn capsule(
    py: Python<'_>,
    data: *mut c_void,
    len: usize,
    owner: Py<PyAny>,
    held: Shared,
    versioned: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let ctx = Box::into_raw(Box::new(Ctx { shape: [len], _owner: owner, held }));
    // SAFETY: `ctx` is a live box; its `shape` lives as long as the tensor (freed by the
    // same deleter).
    let shape = unsafe { (*ctx).shape.as_mut_ptr() };
    let (ptr, name): (*mut c_void, *const c_char) = if versioned {
        let t = Box::new(DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 0 },
            manager_ctx: ctx.cast(),
            deleter: Some(delete_versioned),
            flags: DLPACK_FLAG_BITMASK_READ_ONLY,
            dl_tensor: tensor(data, shape),
        });
        (Box::into_raw(t).cast(), VERSIONED.as_ptr())
    } else {
        let t = Box::new(DLManagedTensor {
            dl_tensor: tensor(data, shape),
            manager_ctx: ctx.cast(),
            deleter: Some(delete_legacy),
        });
        (Box::into_raw(t).cast(), LEGACY.as_ptr())
    };
    // SAFETY: `ptr` is a tensor struct named by `name`; the destructor frees it unless a
    // consumer takes it.
    let cap = unsafe { ffi::PyCapsule_New(ptr, name, Some(destroy_capsule)) };
    if cap.is_null() {
        // SAFETY: the capsule was not made: free the tensor ourselves, once.
        unsafe {
            if versioned {
                delete_versioned(ptr.cast());
            } else {
                delete_legacy(ptr.cast());
            }
        }
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `cap` is a new, owned reference.
    Ok(unsafe { Bound::from_owned_ptr(py, cap) })
}
